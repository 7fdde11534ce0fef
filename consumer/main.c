/* dxsync-consumer: applies changes from Kafka to one remote Directus instance. */
#include "acl.h"
#include "admin.h"
#include "kafka.h"
#include "check.h"
#include "cli.h"
#include "dlqlist.h"
#include "redrive.h"
#include "verify.h"
#include "replay.h"
#include "routes.h"
#include "util.h"
#include "consume.h"
#include "log.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *const subcommands[] = {"run", "check",  "status", "replay", "audit",
                                          "dlq", "verify", "acls",   NULL};
/* They read and move offsets in Kafka only (acls: not even that): no instance token or database
 * is needed. */
static const char *const kafka_only[] = {"status", "replay", "audit", "dlq", "acls", NULL};
static const char *const dlq_actions[] = {"list", "redrive", NULL};

/* The remote's token, and a source's only where the command reads that source: its files'
 * bytes (run), its items and schema (check, verify, dlq redrive). */
static int consumer_require(const struct config *cfg, const struct cli_spec *spec,
                            const char *subcommand, char *err, size_t errlen)
{
    const char *remote = cli_value(spec, "remote");
    if (!remote || !config_instance_find(cfg, remote))
        return 0; /* app_instance names what is wrong */
    if (config_require_instance(cfg, remote, CONFIG_NEED_TOKEN, err, errlen))
        return -1;
    bool run = strcmp(subcommand, "run") == 0;
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct config_route *r = &cfg->routes[i];
        if (strcmp(r->to, remote) != 0 || (run && !config_route_collection(r, "directus_files")))
            continue;
        if (config_require_source(cfg, r,
                                  run ? "carries directus_files: their bytes are read from its "
                                        "source"
                                      : "is read at its source by this command",
                                  err, errlen))
            return -1;
    }
    return 0;
}

/* Whether name can be a member name (1-100 of A-Z a-z 0-9 . _ -). */
static bool member_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 100)
        return false;
    for (const char *s = name; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '_' || *s == '-'))
            return false;
    return true;
}

/* The member name of a consumer not given one: the host's name (a StatefulSet's pod name is
 * stable), "dxsync" when it has none. Returns out. */
static const char *default_member(char *out, size_t len)
{
    if (gethostname(out, len) || !out[0] || !member_valid(out))
        snprintf(out, len, "dxsync");
    out[len - 1] = '\0';
    return out;
}

/* A reload must leave the consumer something to read (consume_run would stop with
 * nothing_routed): the same routes_into it resolves its topics with. */
static int still_routed(const struct config *next, const char *remote, char *err, size_t errlen)
{
    struct routes_sub *subs = NULL;
    size_t n = 0;
    if (routes_into(next, remote, &subs, &n, err, errlen))
        return -1;
    routes_free(subs, n);
    if (n)
        return 0;
    snprintf(err, errlen,
             "routes: no route into %s any more: stop this consumer instead, or pause its routes "
             "with \"enabled\": false",
             remote);
    return -1;
}

/* --since TIME into *ms (-1 when not given). 0, or 2 (usage) after saying why. */
static int since_option(struct cli_spec *spec, int64_t *ms)
{
    const char *since = cli_value(spec, "since");
    *ms = -1;
    if (since && util_parse_time(since, util_wall_ms(), ms)) {
        log_stderr("dxsync-consumer: --since: \"%s\" is neither an ISO 8601 time "
                   "(2026-11-25T22:30:00Z) nor a duration (90s, 15m, 2h, 7d)\n",
                   since);
        return 2;
    }
    return 0;
}

/* replay --since TIME; audit --source S --collection C --key K [--since TIME] [--json]. */
static int replay_or_audit(struct app *app, struct cli_spec *spec, const char *remote)
{
    const char *since = cli_value(spec, "since");
    int64_t since_ms;
    if (since_option(spec, &since_ms))
        return 2;
    if (strcmp(app->cli.subcommand, "replay") == 0) {
        if (!since) {
            log_stderr("dxsync-consumer: replay needs --since TIME\n");
            return 2;
        }
        return replay_run(&app->cfg, remote, since_ms, stdout);
    }
    const char *source = cli_value(spec, "source"), *coll = cli_value(spec, "collection"),
               *key = cli_value(spec, "key");
    if (!coll || !key) {
        log_stderr("dxsync-consumer: audit needs --collection and --key (and --source to "
                   "read one source only)\n");
        return 2;
    }
    if (!source)
        return audit_all_run(&app->cfg, coll, key, since_ms, cli_option(spec, "json")->given,
                             stdout);
    if (!config_instance_find(&app->cfg, source)) {
        log_stderr("dxsync-consumer: --source: \"%s\" is not in %s\n", source,
                   app->cli.config_path);
        return 2;
    }
    return audit_run(&app->cfg, source, coll, key, since_ms, cli_option(spec, "json")->given,
                     stdout);
}

/* run's ACLs: Read on every topic it subscribes to (the sources' and the remote's own) and on
 * its group; Write on the errors topic and its dead-letter topic. It creates every one of these
 * topics that is missing (kafka_ensure_topics). */
static int run_acls(const struct config *cfg, const char *remote, struct acl_set *s, char *err,
                    size_t errlen)
{
    struct routes_sub *subs = NULL;
    size_t n = 0;
    char name[512];
    if (routes_into(cfg, remote, &subs, &n, err, errlen) ||
        routes_add_own(cfg, remote, &subs, &n, err, errlen))
        return -1;
    for (size_t i = 0; i < n; i++)
        acl_add(s, ACL_TOPIC, subs[i].topic, ACL_READ | ACL_DESCRIBE, true);
    routes_free(subs, n);
    if (kafka_group_apply(cfg, remote, name, sizeof(name)) == 0)
        acl_add(s, ACL_GROUP, name, ACL_READ, false);
    if (kafka_topic_errors(cfg, name, sizeof(name)) == 0)
        acl_add(s, ACL_TOPIC, name, ACL_WRITE | ACL_DESCRIBE, true);
    if (kafka_topic_dlq(cfg, remote, name, sizeof(name)) == 0)
        acl_add(s, ACL_TOPIC, name, ACL_WRITE | ACL_DESCRIBE, true);
    return 0;
}

static int print_acls(const struct config *cfg, const char *remote, const char *given)
{
    struct acl_set s = {0};
    char err[512], fallback[128], what[160];
    if (run_acls(cfg, remote, &s, err, sizeof(err))) {
        acl_free(&s);
        log_stderr("dxsync-consumer: acls: %s\n", err);
        return 2;
    }
    snprintf(fallback, sizeof(fallback), "dxsync-consumer-%s", remote);
    snprintf(what, sizeof(what), "dxsync-consumer --remote %s (run)", remote);
    return acl_command(cfg, &s, given, fallback, what);
}

int main(int argc, char **argv)
{
    struct cli_opt opts[] = {
        {.name = "remote", .metavar = "NAME", .help = "the instance to write into"},
        {.name = "member",
         .metavar = "NAME",
         .help = "run: this consumer's name in its group (static membership, group.instance.id) "
                 "and of its clock store; default: the host name. Give each consumer of one "
                 "remote its own, the same across its restarts"},
        {.name = "since",
         .metavar = "TIME",
         .help = "replay, audit, dlq list: ISO 8601 time or a duration back from now (2h, 30m, "
                 "7d)"},
        {.name = "source",
         .metavar = "NAME",
         .help = "audit: only the events from this instance (default: every source)"},
        {.name = "collection",
         .metavar = "C",
         .help = "audit: the item's collection; verify: only this collection"},
        {.name = "repair",
         .help = "verify: publish the source's row of each differing key (a delete for an extra "
                 "one) as a new event"},
        {.name = "key",
         .metavar = "K",
         .help = "audit: the item's primary key; dlq redrive: only its dead letters"},
        {.name = "json",
         .help = "audit: print the raw event envelopes; dlq list: one JSON object "
                 "per dead letter"},
        {.name = "code",
         .metavar = "CODE",
         .help = "dlq list, dlq redrive: only dead letters with this code"},
        {.name = "principal",
         .metavar = "NAME",
         .help = "acls: the Kafka principal (default: kafka.properties' sasl.username, else "
                 "dxsync-consumer-<remote>)"},
    };
    struct cli_spec spec = {
        .program = "dxsync-consumer",
        .summary = "apply changes from Kafka to one remote Directus instance",
        .usage = "  dxsync-consumer --remote NAME [--member NAME] [run]\n"
                 "  dxsync-consumer --remote NAME check\n"
                 "  dxsync-consumer --remote NAME status\n"
                 "  dxsync-consumer --remote NAME replay --since TIME\n"
                 "  dxsync-consumer audit [--source NAME] --collection C --key K [--since TIME] "
                 "[--json]\n"
                 "  dxsync-consumer --remote NAME dlq list [--code CODE] [--since TIME] [--json]\n"
                 "  dxsync-consumer --remote NAME dlq redrive [--code CODE] [--key K] [--since "
                 "TIME]\n"
                 "  dxsync-consumer --remote NAME verify [--collection C] [--repair] [--json]\n"
                 "  dxsync-consumer --remote NAME acls [--principal NAME]",
        .subcommands = subcommands,
        .kafka_only = kafka_only,
        .details =
            "Subcommands:\n"
            "  run      join group <prefix>.apply.<remote> and apply every routed event to the\n"
            "           remote as its sync user, batched and idempotent; a file's bytes are\n"
            "           streamed from its source's /assets; the default. Its convergence\n"
            "           clocks are kept in consumer.state_dir (default $STATE_DIRECTORY, else\n"
            "           $XDG_STATE_HOME/dxsync, else ~/.local/state/dxsync), so a restart reads\n"
            "           back only what came after its last checkpoint\n"
            "  check    report every problem with the remote (reachability, token, collections,\n"
            "           fields, permissions; files readable on their source) and exit 0 when\n"
            "           there is none\n"
            "  status   committed offset, end offset and lag per topic and partition\n"
            "  replay   move the remote's group back to TIME (its consumers must be stopped)\n"
            "  audit    print the history of one item, oldest first: from one source, or\n"
            "           without --source from every source, with its state on each remote\n"
            "           (applied, pending, dead-lettered)\n"
            "  dlq list print the remote's dead letters (time, source, collection, key,\n"
            "           action, status, code, message), oldest first per partition\n"
            "  dlq redrive\n"
            "           apply the remote's dead letters again, once each (group\n"
            "           <prefix>.redrive.<remote> remembers them), never over newer writes;\n"
            "           what fails again is dead-lettered anew; exit 1 when something did\n"
            "  verify   compare every item of each source with the remote on the routed fields\n"
            "           (paged, bounded memory): exit 0 when they agree, 3 when they differ;\n"
            "           --repair publishes the source's row of each differing key\n"
            "  acls     print the kafka-acls.sh commands granting run's principal what it\n"
            "           needs (Read on the topics routed into the remote and on its group,\n"
            "           Write on <prefix>.errors and <prefix>.dlq.<remote>) and the topics to\n"
            "           create beforehand; needs no secret and no Kafka\n\n"
            "status, replay, audit and dlq list talk to Kafka alone: the instances' token and\n"
            "database variables need not be set for them.\n\n"
            "Examples:\n"
            "  dxsync-consumer --remote b status\n"
            "  dxsync-consumer --remote b replay --since 2h\n"
            "  dxsync-consumer audit --source a --collection articles --key 42\n"
            "  dxsync-consumer audit --collection articles --key 42\n"
            "  dxsync-consumer --remote b dlq list --code PARENT_MISSING --since 1d\n"
            "  dxsync-consumer --remote b dlq redrive --code PARENT_MISSING\n"
            "  dxsync-consumer --remote b verify --collection articles --repair",
        .opts = opts,
        .nopts = sizeof(opts) / sizeof(opts[0]),
        .with_action = "dlq",
        .actions = dlq_actions,
        .require = consumer_require,
    };
    struct app app;
    int rc = app_start(&app, argc, argv, &spec);
    if (rc >= 0)
        goto out;
    const char *remote = NULL;
    if (strcmp(app.cli.subcommand, "audit") != 0) {
        const struct config_instance *inst = app_instance(&app, &spec, "remote");
        if (!inst) {
            rc = 2;
            goto out;
        }
        remote = inst->name;
    }
    if (strcmp(app.cli.subcommand, "acls") == 0) {
        rc = print_acls(&app.cfg, remote, cli_value(&spec, "principal"));
    } else if (strcmp(app.cli.subcommand, "verify") == 0) {
        rc = verify_run(&app.cfg, remote, cli_value(&spec, "collection"),
                        cli_option(&spec, "repair")->given, cli_option(&spec, "json")->given,
                        stdout);
    } else if (strcmp(app.cli.subcommand, "dlq") == 0) {
        int64_t since_ms;
        if (since_option(&spec, &since_ms)) {
            rc = 2;
            goto out;
        }
        char err[512];
        if (strcmp(app.cli.action, "list") == 0) {
            rc = dlq_list_run(&app.cfg, remote, cli_value(&spec, "code"), since_ms,
                              cli_option(&spec, "json")->given, stdout);
        } else if (config_require(&app.cfg, err, sizeof(err))) {
            log_stderr("dxsync-consumer: configuration error: %s\n", err);
            rc = 2;
        } else {
            struct redrive_filter f = {.code = cli_value(&spec, "code"),
                                       .key = cli_value(&spec, "key"),
                                       .since_ms = since_ms};
            rc = redrive_run(&app.cfg, remote, &f, stdout);
        }
    } else if (strcmp(app.cli.subcommand, "run") == 0) {
        char host[128];
        const char *member = cli_value(&spec, "member");
        if (member && !member_valid(member)) {
            log_stderr("dxsync-consumer: --member: \"%s\" is not a member name (1-100 of A-Z a-z "
                       "0-9 . _ -)\n",
                       member);
            rc = 2;
            goto out;
        }
        /* SIGHUP: each run ends as at a clean stop and the next takes the new configuration */
        char name[64];
        snprintf(name, sizeof(name), "%s", remote);
        app_serves(&app, name, still_routed);
        if (!member)
            member = default_member(host, sizeof(host));
        do
            rc = consume_run(&app.cfg, name, member, app.metrics);
        while (rc == 0 && app_reload_take(&app));
    } else if (strcmp(app.cli.subcommand, "check") == 0) {
        int problems;
        char err[512];
        struct acl_set s = {0};
        if (check_remote(&app.cfg, remote, stdout, &problems, err, sizeof(err)) ||
            run_acls(&app.cfg, remote, &s, err, sizeof(err))) {
            log_stderr("dxsync-consumer: check: %s\n", err);
            rc = 1;
        } else {
            struct report kr = {.out = stdout};
            acl_check(&kr, &app.cfg, &s);
            problems += kr.problems;
            report_summary(stdout, problems);
            rc = problems ? 1 : 0;
        }
        acl_free(&s);
    } else if (strcmp(app.cli.subcommand, "status") == 0) {
        rc = admin_status(&app.cfg, remote, stdout);
    } else {
        rc = replay_or_audit(&app, &spec, remote);
    }
out:
    app_stop(&app);
    cli_free(&spec);
    return rc;
}
