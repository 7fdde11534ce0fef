/* cli: the common flags of every dxsync program, the subcommand, and the program's own flags;
 * plus app_*, the start-up every main.c shares (config, logging, secrets, metrics). */
#ifndef DXSYNC_CLI_H
#define DXSYNC_CLI_H

#include "config.h"
#include "log.h"
#include "metrics.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct cli_opt {
    const char *name;    /* long name without dashes */
    const char *metavar; /* NULL for a flag without value */
    const char *help;
    bool repeat; /* may be given several times */
    /* filled by cli_parse */
    const char **values;
    size_t nvalues;
    bool given;
};

struct cli_spec {
    const char *program;
    const char *summary;            /* one line */
    const char *usage;              /* the usage lines, without "usage:" */
    const char *const *subcommands; /* NULL-terminated; the first is the default */
    const char *const *kafka_only;  /* NULL-terminated or NULL: subcommands that use no token or
                                       database (their variables may be unset) */
    const char *details;            /* text after the options: subcommands, examples */
    struct cli_opt *opts;
    size_t nopts;
    /* A subcommand taking an action word after it ("dlq list"), and its actions
     * (NULL-terminated); NULL when none does. */
    const char *with_action;
    const char *const *actions;
    /* The program talks HTTP only now and then (the producer: its sync user's id when the
     * database cannot tell it, and check): libcurl, and with it OpenSSL (2.3 MB of RSS), is
     * initialised by the first HTTP client (http_global_init) instead of at start. */
    bool http_on_demand;
    /* The secrets the subcommand needs (config_require_instance for each), checked at start
     * and at every reload, so that a process needs only its own; NULL: every instance's
     * (config_require). */
    int (*require)(const struct config *cfg, const struct cli_spec *spec, const char *subcommand,
                   char *err, size_t errlen);
};

struct cli_common {
    const char *config_path;
    enum log_level log_level;
    bool metrics;
    char metrics_host[64];
    int metrics_port;
    const char *subcommand;
    const char *action; /* the word after spec->with_action, else NULL */
};

/* Returns 0 to run, 1 when --help or --version was printed (exit 0), -1 on a usage error
 * (err holds the message; exit 2). Values point into argv. */
int cli_parse(int argc, char **argv, struct cli_spec *spec, struct cli_common *out, char *err,
              size_t errlen);
/* Last value given for option name, or NULL. */
const char *cli_value(const struct cli_spec *spec, const char *name);
const struct cli_opt *cli_option(const struct cli_spec *spec, const char *name);
void cli_print_help(const struct cli_spec *spec, FILE *f);
void cli_free(struct cli_spec *spec);

/* What every program has once started. */
struct app {
    struct cli_common cli;
    const struct cli_spec *spec;
    struct config cfg;
    struct metrics *metrics; /* never NULL after app_start */
    /* Reload (SIGHUP): the instance the process serves, which a new configuration must keep
     * ("" none), and a new configuration accepted, waiting for the run to end. */
    char serves[64];
    int (*reload_check)(const struct config *next, const char *instance, char *err, size_t errlen);
    struct config next;
    bool has_next;
    struct metric *m_reloads_applied, *m_reloads_refused, *m_reload_ok;
};

/* Parses flags, loads and validates the config, sets the log level, registers secrets,
 * installs signal handlers and starts the metrics server when asked.
 * Returns -1 to go on, or the exit code to leave with (0 after --help, 2 on bad input). */
int app_start(struct app *app, int argc, char **argv, struct cli_spec *spec);
void app_stop(struct app *app);

/* Reload without restart. SIGHUP (systemctl reload) asks for the configuration file to be read
 * again; a program's loop calls app_reload_wanted at every turn. It reads and checks the file
 * (config_reload_check: brokers, topic prefix, state folder and the instance the process serves
 * stay): a bad or refused one is logged (event=reload_refused, naming the key) and the
 * configuration in force stays; one that changes nothing is only logged; otherwise the changes
 * are logged and it returns true from then on: the loop ends as at a clean stop (everything
 * settled and committed), and main calls app_reload_take, which puts the new configuration in
 * force (1) for the next run, in the same process, its /metrics server and counters kept.
 * app_serves names the instance (main: --instance or --remote) and, when not NULL, a check of
 * the program's own (0, or -1 with err naming what the new file lacks). */
typedef int (*app_reload_check_fn)(const struct config *next, const char *instance, char *err,
                                   size_t errlen);
void app_serves(struct app *app, const char *instance, app_reload_check_fn check);
bool app_reload_wanted(void);
/* The configuration accepted by app_reload_wanted, before it is in force; NULL when none. */
const struct config *app_reload_next(void);
int app_reload_take(struct app *app);

/* The instance named by the option opt (e.g. "remote"), which the subcommand needs: NULL after
 * telling stderr that it is missing or not in the configuration (exit code 2 then). */
const struct config_instance *app_instance(const struct app *app, const struct cli_spec *spec,
                                           const char *opt);

#endif
