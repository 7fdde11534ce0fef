/* dxsync-notifier: turns sync errors into Directus notifications. */
#include "acl.h"
#include "cli.h"
#include "log.h"
#include "notify_run.h"

#include <string.h>

static const char *const subcommands[] = {"run", "acls", NULL};
static const char *const kafka_only[] = {"acls", NULL};

/* The tokens of the instances it writes notifications into: the sources of routes that notify. */
static int notifier_require(const struct config *cfg, const struct cli_spec *spec,
                            const char *subcommand, char *err, size_t errlen)
{
    (void)spec;
    (void)subcommand;
    for (size_t i = 0; i < cfg->nroutes; i++)
        if (cfg->routes[i].nnotify &&
            config_require_source(cfg, &cfg->routes[i], "notifies users of its source", err,
                                  errlen))
            return -1;
    return 0;
}

int main(int argc, char **argv)
{
    struct cli_opt opts[] = {
        {.name = "principal",
         .metavar = "NAME",
         .help = "acls: the Kafka principal (default: kafka.properties' sasl.username, else "
                 "dxsync-notifier)"},
    };
    struct cli_spec spec = {
        .program = "dxsync-notifier",
        .summary = "turn dxsync error events into Directus notifications",
        .usage = "  dxsync-notifier [run]\n"
                 "  dxsync-notifier acls [--principal NAME]",
        .subcommands = subcommands,
        .kafka_only = kafka_only,
        .details = "Reads <prefix>.errors in group <prefix>.notify and creates, in the source\n"
                   "instance of each failed route, one notification per user listed in the\n"
                   "route's \"notify\"; errors of one route and code within\n"
                   "notify.digest_window_s become one digest notification. Offsets are\n"
                   "committed only once the notifications covering them exist.\n\n"
                   "Subcommands:\n"
                   "  run    the default\n"
                   "  acls   print the kafka-acls.sh commands granting the notifier's principal\n"
                   "         what it needs (Read on <prefix>.errors and group <prefix>.notify)",
        .opts = opts,
        .nopts = sizeof(opts) / sizeof(opts[0]),
        .require = notifier_require,
    };
    struct app app;
    int rc = app_start(&app, argc, argv, &spec);
    if (rc >= 0)
        goto out;
    if (strcmp(app.cli.subcommand, "acls") == 0) {
        struct acl_set s = {0};
        acl_notifier(&app.cfg, &s);
        rc = acl_command(&app.cfg, &s, cli_value(&spec, "principal"), "dxsync-notifier",
                         "dxsync-notifier");
        goto out;
    }
    do /* SIGHUP: the run ends as at a clean stop and the next takes the new configuration */
        rc = notify_run(&app.cfg, app.metrics);
    while (rc == 0 && app_reload_take(&app));
out:
    app_stop(&app);
    cli_free(&spec);
    return rc;
}
