/* dxsync-producer: streams one Directus instance's changes into Kafka. */
#include "acl.h"
#include "cli.h"
#include "report.h"
#include "log.h"
#include "check.h"
#include "import.h"
#include "run.h"
#include "snapshot.h"

#include <stdio.h>
#include <string.h>

static const char *const subcommands[] = {"run",  "check", "snapshot", "import-extension-config",
                                          "acls", NULL};
static const char *const kafka_only[] = {"acls", NULL};

/* Its own instance's secrets only: the database, and the token when the sync user's id is to be
 * learnt with it (no "sync_user") or Directus is checked. */
static int producer_require(const struct config *cfg, const struct cli_spec *spec,
                            const char *subcommand, char *err, size_t errlen)
{
    const char *name = cli_value(spec, "instance");
    const struct config_instance *inst = name ? config_instance_find(cfg, name) : NULL;
    if (!inst)
        return 0; /* app_instance names what is wrong */
    int need = CONFIG_NEED_DATABASE;
    if (strcmp(subcommand, "check") == 0 || (strcmp(subcommand, "run") == 0 && !inst->sync_user))
        need |= CONFIG_NEED_TOKEN;
    return config_require_instance(cfg, name, need, err, errlen);
}

int main(int argc, char **argv)
{
    struct cli_opt opts[] = {
        {.name = "instance", .metavar = "NAME", .help = "the instance to read (required)"},
        {.name = "collection",
         .metavar = "C",
         .help = "snapshot: only this collection",
         .repeat = true},
        {.name = "principal",
         .metavar = "NAME",
         .help = "acls: the Kafka principal (default: kafka.properties' sasl.username, else "
                 "dxsync-producer-<instance>)"},
    };
    struct cli_spec spec = {
        .program = "dxsync-producer",
        .summary = "stream one Directus instance's changes into Kafka",
        .usage = "  dxsync-producer --instance NAME [run]\n"
                 "  dxsync-producer --instance NAME check\n"
                 "  dxsync-producer --instance NAME snapshot [--collection C]...\n"
                 "  dxsync-producer --instance NAME import-extension-config\n"
                 "  dxsync-producer --instance NAME acls [--principal NAME]",
        .subcommands = subcommands,
        .kafka_only = kafka_only,
        .details =
            "Subcommands:\n"
            "  run        read directus_activity/directus_revisions by logical replication (slot\n"
            "             and publication dxsync_<instance>) and publish one event per change to\n"
            "             <prefix>.<instance>.<collection>; the default\n"
            "  check      report every problem with the source (database, wal_level, privileges,\n"
            "             collections, fields, accountability) and exit 0 when there is none\n"
            "  snapshot   publish every current row of the routed collections as snapshot events\n"
            "  import-extension-config\n"
            "             print the routes JSON matching the hook extension's\n"
            "             data_sync_remote_sources (tokens are not printed)\n"
            "  acls       print the kafka-acls.sh commands granting this producer's principal\n"
            "             what it needs (Write and Describe on its topics) and the topics to\n"
            "             create beforehand; needs no secret and no Kafka\n\n"
            "Example:\n"
            "  DXSYNC_TOKEN_A=... dxsync-producer --config dxsync.json --instance a check",
        .opts = opts,
        .nopts = sizeof(opts) / sizeof(opts[0]),
        .http_on_demand = true,
        .require = producer_require,
    };
    struct app app;
    int rc = app_start(&app, argc, argv, &spec);
    if (rc >= 0)
        goto out;
    const struct config_instance *inst = app_instance(&app, &spec, "instance");
    if (!inst) {
        rc = 2;
        goto out;
    }
    const char *instance = inst->name;
    if (strcmp(app.cli.subcommand, "acls") == 0) {
        struct acl_set s = {0};
        char fallback[128], what[160];
        snprintf(fallback, sizeof(fallback), "dxsync-producer-%s", instance);
        snprintf(what, sizeof(what), "dxsync-producer --instance %s", instance);
        acl_producer(&app.cfg, instance, &s);
        rc = acl_command(&app.cfg, &s, cli_value(&spec, "principal"), fallback, what);
        goto out;
    }
    if (strcmp(app.cli.subcommand, "check") == 0) {
        int problems = producer_check(&app.cfg, inst, stdout);
        struct report kr = {.out = stdout};
        struct acl_set s = {0};
        acl_producer(&app.cfg, instance, &s);
        acl_check(&kr, &app.cfg, &s);
        acl_free(&s);
        problems += kr.problems;
        report_summary(stdout, problems);
        rc = problems ? 1 : 0;
        goto out;
    }
    if (strcmp(app.cli.subcommand, "import-extension-config") == 0) {
        if (!inst->database) {
            log_stderr("dxsync-producer: instance \"%s\" has no \"database\"\n", instance);
            rc = 2;
            goto out;
        }
        rc = producer_import(&app.cfg, inst, stdout, stderr);
        goto out;
    }
    if (strcmp(app.cli.subcommand, "snapshot") == 0) {
        const struct cli_opt *only = cli_option(&spec, "collection");
        rc = producer_snapshot(&app.cfg, inst, only->values, only->nvalues, app.metrics);
        goto out;
    }
    /* run */
    if (!inst->database) {
        log_stderr("dxsync-producer: instance \"%s\" has no \"database\" in %s\n", instance,
                   app.cli.config_path);
        rc = 2;
        goto out;
    }
    /* SIGHUP: the run ends as at a clean stop (what Kafka holds is confirmed) and the next
     * takes the new configuration */
    char name[64];
    snprintf(name, sizeof(name), "%s", instance);
    app_serves(&app, name, NULL);
    do {
        inst = config_instance_find(&app.cfg, name);
        if (!inst->database) {
            log_stderr("dxsync-producer: instance \"%s\" has no \"database\" in %s\n", name,
                       app.cli.config_path);
            rc = 2;
            break;
        }
        rc = producer_run(&app.cfg, inst, app.metrics);
    } while (rc == 0 && app_reload_take(&app));
out:
    app_stop(&app);
    cli_free(&spec);
    return rc;
}
