/* dxsync-notifier: turns sync errors into Directus notifications. */
#include "cli.h"
#include "log.h"

static const char *const subcommands[] = {"run", NULL};

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
                   "notify.digest_window_s become one digest notification.",
        .opts = NULL,
        .nopts = 0,
    };
    struct app app;
    int rc = app_start(&app, argc, argv, &spec);
    if (rc >= 0)
        goto out;
    log_error("notifier", "event=not_implemented subcommand=%s", app.cli.subcommand);
    rc = 1;
out:
    app_stop(&app);
    return rc;
}
