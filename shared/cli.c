#include "cli.h"

#include "http.h"
#include "signals.h"
#include "util.h"

#include <curl/curl.h>
#include <getopt.h>
#include <librdkafka/rdkafka.h>
#include <stdlib.h>
#include <string.h>

/* The one app of this process, for app_reload_wanted (signals are process-wide too). */
static struct app *g_app;

/* Seconds a clean stop may take beyond the consumer's request timeout (signals.h). */
#define STOP_DEADLINE_S 60

enum { OPT_CONFIG = 1000, OPT_LOG_LEVEL, OPT_METRICS, OPT_HELP, OPT_VERSION, OPT_SPEC = 2000 };

void cli_print_help(const struct cli_spec *spec, FILE *f)
{
    fprintf(f, "%s — %s\n\nUsage:\n%s\n", spec->program, spec->summary, spec->usage);
    fprintf(f, "\nOptions:\n");
    for (size_t i = 0; i < spec->nopts; i++) {
        const struct cli_opt *o = &spec->opts[i];
        char left[64];
        snprintf(left, sizeof(left), "--%s%s%s", o->name, o->metavar ? " " : "",
                 o->metavar ? o->metavar : "");
        fprintf(f, "  %-26s %s%s\n", left, o->help, o->repeat ? " (repeatable)" : "");
    }
    fprintf(f, "  %-26s %s\n  %-26s %s\n  %-26s %s\n  %-26s %s\n  %-26s %s\n", "--config FILE",
            "configuration file (default: $DXSYNC_CONFIG, else dxsync.json)", "--log-level LEVEL",
            "error, warn, info (default) or debug; logs go to stderr", "--metrics-addr [HOST:]PORT",
            "serve /metrics (Prometheus) and /healthz; HOST defaults to 127.0.0.1", "--help",
            "show this help and exit", "--version", "print the version and exit");
    if (spec->details)
        fprintf(f, "\n%s\n", spec->details);
    fprintf(
        f, "\nExit status: 0 clean stop, 1 runtime failure, 2 usage or configuration "
           "error.\nSIGTERM/SIGINT stop cleanly; a second signal stops at once. SIGHUP (systemctl\n"
           "reload) re-reads the configuration while running: routes, fields, \"enabled\",\n"
           "batch and timeout settings; a change of kafka.brokers, kafka.topic_prefix or\n"
           "consumer.state_dir is refused in the log and the configuration in force stays.\n");
}

static struct cli_opt *find_opt(struct cli_spec *spec, const char *name)
{
    for (size_t i = 0; i < spec->nopts; i++)
        if (strcmp(spec->opts[i].name, name) == 0)
            return &spec->opts[i];
    return NULL;
}

const struct cli_opt *cli_option(const struct cli_spec *spec, const char *name)
{
    return find_opt((struct cli_spec *)spec, name);
}

const char *cli_value(const struct cli_spec *spec, const char *name)
{
    const struct cli_opt *o = cli_option(spec, name);
    return o && o->nvalues ? o->values[o->nvalues - 1] : NULL;
}

void cli_free(struct cli_spec *spec)
{
    for (size_t i = 0; i < spec->nopts; i++) {
        free(spec->opts[i].values);
        spec->opts[i].values = NULL;
        spec->opts[i].nvalues = 0;
        spec->opts[i].given = false;
    }
}

int cli_parse(int argc, char **argv, struct cli_spec *spec, struct cli_common *out, char *err,
              size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->log_level = LOG_LEVEL_INFO;
    const char *env = getenv("DXSYNC_CONFIG");
    out->config_path = env && *env ? env : "dxsync.json";

    size_t nlong = spec->nopts + 6;
    struct option *longopts = calloc(nlong, sizeof(*longopts));
    if (!longopts) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    longopts[0] = (struct option){"config", required_argument, NULL, OPT_CONFIG};
    longopts[1] = (struct option){"log-level", required_argument, NULL, OPT_LOG_LEVEL};
    longopts[2] = (struct option){"metrics-addr", required_argument, NULL, OPT_METRICS};
    longopts[3] = (struct option){"help", no_argument, NULL, OPT_HELP};
    longopts[4] = (struct option){"version", no_argument, NULL, OPT_VERSION};
    for (size_t i = 0; i < spec->nopts; i++)
        longopts[5 + i] = (struct option){spec->opts[i].name,
                                          spec->opts[i].metavar ? required_argument : no_argument,
                                          NULL, OPT_SPEC + (int)i};
    int rc = -1;
    optind = 0; /* glibc: full re-initialisation, so tests may parse more than once */
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "-h", longopts, NULL)) != -1) {
        if (c == 1) { /* a positional argument, in order ("-" in optstring) */
            if (out->subcommand && !out->action && spec->with_action &&
                strcmp(out->subcommand, spec->with_action) == 0) {
                out->action = optarg;
                continue;
            }
            if (out->subcommand) {
                snprintf(err, errlen, "unexpected argument \"%s\" (subcommand already \"%s\")",
                         optarg, out->subcommand);
                goto out;
            }
            out->subcommand = optarg;
        } else if (c == OPT_CONFIG) {
            out->config_path = optarg;
        } else if (c == OPT_LOG_LEVEL) {
            if (log_level_parse(optarg, &out->log_level)) {
                snprintf(err, errlen, "--log-level: \"%s\" is not one of error, warn, info, debug",
                         optarg);
                goto out;
            }
        } else if (c == OPT_METRICS) {
            if (metrics_parse_addr(optarg, out->metrics_host, sizeof(out->metrics_host),
                                   &out->metrics_port)) {
                snprintf(err, errlen, "--metrics-addr: \"%s\" is not [HOST:]PORT", optarg);
                goto out;
            }
            out->metrics = true;
        } else if (c == OPT_HELP || c == 'h') {
            cli_print_help(spec, stdout);
            rc = 1;
            goto out;
        } else if (c == OPT_VERSION) {
            printf("%s %s (librdkafka %s, %s)\n", spec->program, DXSYNC_VERSION,
                   rd_kafka_version_str(), curl_version());
            rc = 1;
            goto out;
        } else if (c >= OPT_SPEC && c < OPT_SPEC + (int)spec->nopts) {
            struct cli_opt *o = &spec->opts[c - OPT_SPEC];
            if (o->given && !o->repeat) {
                snprintf(err, errlen, "--%s given twice", o->name);
                goto out;
            }
            o->given = true;
            if (o->metavar) {
                if (!*optarg) {
                    snprintf(err, errlen, "--%s: empty value", o->name);
                    goto out;
                }
                const char **v = realloc(o->values, (o->nvalues + 1) * sizeof(*v));
                if (!v) {
                    snprintf(err, errlen, "out of memory");
                    goto out;
                }
                o->values = v;
                o->values[o->nvalues++] = optarg;
            }
        } else if (c == '?') {
            if (optopt >= OPT_SPEC || (optopt >= OPT_CONFIG && optopt <= OPT_METRICS))
                snprintf(err, errlen, "%s needs a value", argv[optind - 1]);
            else
                snprintf(err, errlen, "unknown option \"%s\"", argv[optind - 1]);
            goto out;
        } else {
            snprintf(err, errlen, "unknown option \"%s\"", argv[optind - 1]);
            goto out;
        }
    }
    if (!out->subcommand)
        out->subcommand = spec->subcommands[0];
    bool known = false;
    for (size_t i = 0; spec->subcommands[i]; i++)
        if (strcmp(out->subcommand, spec->subcommands[i]) == 0)
            known = true;
    if (known && spec->with_action && strcmp(out->subcommand, spec->with_action) == 0) {
        bool action_known = false;
        struct util_buf b = {0};
        for (size_t i = 0; spec->actions && spec->actions[i]; i++) {
            util_buf_printf(&b, "%s%s", i ? ", " : "", spec->actions[i]);
            action_known |= out->action && strcmp(out->action, spec->actions[i]) == 0;
        }
        if (!action_known) {
            if (out->action)
                snprintf(err, errlen, "unknown %s action \"%s\" (expected one of: %s)",
                         out->subcommand, out->action, b.data ? b.data : "");
            else
                snprintf(err, errlen, "%s needs an action: %s", out->subcommand,
                         b.data ? b.data : "");
            util_buf_free(&b);
            goto out;
        }
        util_buf_free(&b);
    }
    if (!known) {
        struct util_buf b = {0};
        for (size_t i = 0; spec->subcommands[i]; i++)
            util_buf_printf(&b, "%s%s", i ? ", " : "", spec->subcommands[i]);
        snprintf(err, errlen, "unknown subcommand \"%s\" (expected one of: %s)", out->subcommand,
                 b.data ? b.data : "");
        util_buf_free(&b);
        goto out;
    }
    rc = 0;
out:
    free(longopts);
    return rc;
}

/* The secrets the command needs of cfg: the program's own rule, else every instance's. */
static int app_require(const struct app *app, const struct config *cfg, char *err, size_t errlen)
{
    if (app->spec && app->spec->require)
        return app->spec->require(cfg, app->spec, app->cli.subcommand, err, errlen);
    return config_require(cfg, err, errlen);
}

int app_start(struct app *app, int argc, char **argv, struct cli_spec *spec)
{
    char err[1024];
    memset(app, 0, sizeof(*app));
    int rc = cli_parse(argc, argv, spec, &app->cli, err, sizeof(err));
    if (rc == 1)
        return 0;
    if (rc < 0) {
        log_stderr("%s: %s\nTry '%s --help'.\n", spec->program, err, spec->program);
        return 2;
    }
    log_set_level(app->cli.log_level);
    if (config_load_file(app->cli.config_path, &app->cfg, err, sizeof(err))) {
        log_stderr("%s: configuration error: %s\n", spec->program, err);
        return 2;
    }
    bool kafka_only = false;
    for (size_t i = 0; spec->kafka_only && spec->kafka_only[i]; i++)
        kafka_only |= strcmp(spec->kafka_only[i], app->cli.subcommand) == 0;
    app->spec = spec;
    if (!kafka_only && app_require(app, &app->cfg, err, sizeof(err))) {
        log_stderr("%s: configuration error: %s\n", spec->program, err);
        return 2;
    }
    config_register_secrets(&app->cfg);
    if (signals_install()) {
        log_stderr("%s: cannot install signal handlers\n", spec->program);
        return 1;
    }
    /* the longest clean stop: requests in flight up to their timeout, then the DLQ's
     * acknowledgements (10 s), the last commit and leaving the group (a session timeout) */
    signals_set_stop_deadline(STOP_DEADLINE_S +
                              (unsigned)app->cfg.consumer.request_timeout_ms / 1000);
    if (!spec->http_on_demand)
        http_global_init();
    app->metrics = metrics_new();
    if (!app->metrics) {
        log_stderr("%s: out of memory\n", spec->program);
        return 1;
    }
    metrics_set_program(app->metrics, spec->program);
    app->m_reloads_applied =
        metrics_counter(app->metrics, "dxsync_config_reloads_total",
                        "Configuration reloads (SIGHUP) by result", "result=\"applied\"");
    app->m_reloads_refused =
        metrics_counter(app->metrics, "dxsync_config_reloads_total",
                        "Configuration reloads (SIGHUP) by result", "result=\"refused\"");
    app->m_reload_ok = metrics_gauge(
        app->metrics, "dxsync_config_last_reload_successful",
        "0 when the last reload was refused (the configuration in force stays)", NULL);
    metrics_set(app->m_reload_ok, 1);
    g_app = app;
    if (app->cli.metrics && metrics_serve(app->metrics, app->cli.metrics_host,
                                          app->cli.metrics_port, &app->cfg.web, err, sizeof(err))) {
        log_stderr("%s: %s\n", spec->program, err);
        return 2;
    }
    return -1;
}

void app_serves(struct app *app, const char *instance, app_reload_check_fn check)
{
    snprintf(app->serves, sizeof(app->serves), "%s", instance ? instance : "");
    app->reload_check = check;
}

static void refuse(struct app *app, const char *why)
{
    log_error("reload",
              "event=reload_refused config=%s reason=%s hint=\"the configuration in "
              "force stays; fix the file and reload again\"",
              LOG_Q(app->cli.config_path), LOG_Q(why));
    metrics_add(app->m_reloads_refused, 1);
    metrics_set(app->m_reload_ok, 0);
}

bool app_reload_wanted(void)
{
    struct app *app = g_app;
    if (!app || app->has_next)
        return app && app->has_next;
    if (!signals_reload)
        return false;
    signals_reload = 0;
    char err[1024];
    struct config next;
    if (config_load_file(app->cli.config_path, &next, err, sizeof(err))) {
        refuse(app, err);
        return false;
    }
    if (app_require(app, &next, err, sizeof(err)) ||
        config_reload_check(&app->cfg, &next, app->serves[0] ? app->serves : NULL, err,
                            sizeof(err)) ||
        (app->reload_check && app->reload_check(&next, app->serves, err, sizeof(err)))) {
        config_free(&next);
        refuse(app, err);
        return false;
    }
    config_register_secrets(&next); /* before anything of it is logged */
    char changes[2048];
    config_reload_changes(&app->cfg, &next, changes, sizeof(changes));
    metrics_set(app->m_reload_ok, 1);
    if (!changes[0]) {
        log_info("reload", "event=reload_unchanged config=%s", LOG_Q(app->cli.config_path));
        config_free(&next);
        return false;
    }
    log_info("reload",
             "event=reload config=%s changes=%s hint=\"the run settles and commits "
             "what it holds, then starts again with the new configuration\"",
             LOG_Q(app->cli.config_path), LOG_Q(changes));
    app->next = next;
    app->has_next = true;
    return true;
}

const struct config *app_reload_next(void)
{
    return g_app && g_app->has_next ? &g_app->next : NULL;
}

int app_reload_take(struct app *app)
{
    if (!app->has_next || signals_stop)
        return 0;
    config_free(&app->cfg);
    app->cfg = app->next;
    memset(&app->next, 0, sizeof(app->next));
    app->has_next = false;
    metrics_add(app->m_reloads_applied, 1);
    log_info("reload", "event=reloaded config=%s", LOG_Q(app->cli.config_path));
    return 1;
}

void app_stop(struct app *app)
{
    g_app = NULL;
    if (app->has_next)
        config_free(&app->next);
    app->has_next = false;
    metrics_free(app->metrics);
    app->metrics = NULL;
    config_free(&app->cfg);
    log_clear_secrets();
    http_global_cleanup();
}

const struct config_instance *app_instance(const struct app *app, const struct cli_spec *spec,
                                           const char *opt)
{
    const char *name = cli_value(spec, opt);
    if (!name) {
        log_stderr("%s: --%s NAME is required for %s\n", spec->program, opt, app->cli.subcommand);
        return NULL;
    }
    const struct config_instance *inst = config_instance_find(&app->cfg, name);
    if (!inst)
        log_stderr("%s: --%s: \"%s\" is not in %s\n", spec->program, opt, name,
                   app->cli.config_path);
    return inst;
}
