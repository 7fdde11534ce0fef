/* dxsync-consumer: applies changes from Kafka to one remote Directus instance. */
#include "admin.h"
#include "check.h"
#include "cli.h"
#include "consume.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

static const char *const subcommands[] = {"run", "check", "status", "replay", "audit", NULL};

int main(int argc, char **argv)
{
    struct cli_opt opts[] = {
        {.name = "remote", .metavar = "NAME", .help = "the instance to write into"},
        {.name = "since",
         .metavar = "TIME",
         .help = "replay, audit: ISO 8601 time or a duration back from now (2h, 30m, 7d)"},
        {.name = "source", .metavar = "NAME", .help = "audit: the instance the item comes from"},
        {.name = "collection", .metavar = "C", .help = "audit: the item's collection"},
        {.name = "key", .metavar = "K", .help = "audit: the item's primary key"},
        {.name = "json", .help = "audit: print the raw event envelopes"},
    };
    struct cli_spec spec = {
        .program = "dxsync-consumer",
        .summary = "apply changes from Kafka to one remote Directus instance",
        .usage = "  dxsync-consumer --remote NAME [run]\n"
                 "  dxsync-consumer --remote NAME check\n"
                 "  dxsync-consumer --remote NAME status\n"
                 "  dxsync-consumer --remote NAME replay --since TIME\n"
                 "  dxsync-consumer audit --source NAME --collection C --key K [--since TIME] "
                 "[--json]",
        .subcommands = subcommands,
        .details =
            "Subcommands:\n"
            "  run      join group <prefix>.apply.<remote> and apply every routed event to the\n"
            "           remote as its sync user, batched and idempotent; the default\n"
            "  check    report every problem with the remote (reachability, token, collections,\n"
            "           fields, permissions) and exit 0 when there is none\n"
            "  status   committed offset, end offset and lag per topic and partition\n"
            "  replay   move the remote's group back to TIME (its consumers must be stopped)\n"
            "  audit    print the history of one item, oldest first\n\n"
            "Examples:\n"
            "  dxsync-consumer --remote b status\n"
            "  dxsync-consumer --remote b replay --since 2h\n"
            "  dxsync-consumer audit --source a --collection articles --key 42",
        .opts = opts,
        .nopts = sizeof(opts) / sizeof(opts[0]),
    };
    struct app app;
    int rc = app_start(&app, argc, argv, &spec);
    if (rc >= 0)
        goto out;
    const char *remote = cli_value(&spec, "remote");
    if (strcmp(app.cli.subcommand, "audit") != 0) {
        if (!remote) {
            fprintf(stderr, "dxsync-consumer: --remote NAME is required for %s\n",
                    app.cli.subcommand);
            rc = 2;
            goto out;
        }
        if (!config_instance_find(&app.cfg, remote)) {
            fprintf(stderr, "dxsync-consumer: --remote: \"%s\" is not in %s\n", remote,
                    app.cli.config_path);
            rc = 2;
            goto out;
        }
    }
    if (strcmp(app.cli.subcommand, "run") == 0) {
        rc = consume_run(&app.cfg, remote, app.metrics);
    } else if (strcmp(app.cli.subcommand, "check") == 0) {
        rc = check_remote(&app.cfg, remote, stdout);
    } else if (strcmp(app.cli.subcommand, "status") == 0) {
        rc = admin_status(&app.cfg, remote, stdout);
    } else {
        log_error("consumer", "event=not_implemented subcommand=%s", app.cli.subcommand);
        rc = 1;
    }
out:
    app_stop(&app);
    cli_free(&spec);
    return rc;
}
