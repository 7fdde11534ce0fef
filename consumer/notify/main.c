/* dxsync-notifier: turns sync errors into Directus notifications. */
#include "cli.h"
#include "log.h"
#include "notify_run.h"

static const char *const subcommands[] = {"run", NULL};

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
    struct cli_spec spec = {
        .program = "dxsync-notifier",
        .summary = "turn dxsync error events into Directus notifications",
        .usage = "  dxsync-notifier [run]",
        .subcommands = subcommands,
        .details = "Reads <prefix>.errors in group <prefix>.notify and creates, in the source\n"
                   "instance of each failed route, one notification per user listed in the\n"
                   "route's \"notify\"; errors of one route and code within\n"
                   "notify.digest_window_s become one digest notification. Offsets are\n"
                   "committed only once the notifications covering them exist.",
        .opts = NULL,
        .nopts = 0,
        .require = notifier_require,
    };
    struct app app;
    int rc = app_start(&app, argc, argv, &spec);
    if (rc >= 0)
        goto out;
    do /* SIGHUP: the run ends as at a clean stop and the next takes the new configuration */
        rc = notify_run(&app.cfg, app.metrics);
    while (rc == 0 && app_reload_take(&app));
out:
    app_stop(&app);
    cli_free(&spec);
    return rc;
}
