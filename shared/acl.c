#include "acl.h"

#include "kafka.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

void acl_add(struct acl_set *s, enum acl_kind kind, const char *name, unsigned ops, bool created)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->e[i].kind == kind && strcmp(s->e[i].name, name) == 0) {
            s->e[i].ops |= ops;
            s->e[i].created |= created;
            return;
        }
    struct acl_entry *e = realloc(s->e, (s->n + 1) * sizeof(*e));
    char *copy = e ? strdup(name) : NULL;
    if (e)
        s->e = e;
    if (!copy) {
        s->oom = true;
        return;
    }
    s->e[s->n++] = (struct acl_entry){.kind = kind, .name = copy, .ops = ops, .created = created};
}

void acl_free(struct acl_set *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->e[i].name);
    free(s->e);
    memset(s, 0, sizeof(*s));
}

const char *acl_principal(const struct config *cfg, const char *given, const char *fallback,
                          char *buf, size_t len)
{
    const char *p = given;
    for (size_t i = 0; !p && i < cfg->kafka.nproperties; i++)
        if (strcmp(cfg->kafka.properties[i].key, "sasl.username") == 0)
            p = cfg->kafka.properties[i].value;
    if (!p || !*p)
        p = fallback;
    snprintf(buf, len, "%s%s", strncmp(p, "User:", 5) == 0 ? "" : "User:", p);
    return buf;
}

int acl_print(FILE *out, const struct config *cfg, const struct acl_set *s, const char *principal,
              const char *what)
{
    static const struct {
        unsigned op;
        const char *name;
    } ops[] = {{ACL_READ, "Read"}, {ACL_WRITE, "Write"}, {ACL_DESCRIBE, "Describe"}};
    if (s->oom)
        return -1;
    const char *b = cfg->kafka.brokers;
    fprintf(out,
            "# The Kafka ACLs of %s, principal %s: run them as an admin\n"
            "# (--command-config: the admin's client properties).\n",
            what, principal);
    for (size_t i = 0; i < s->n; i++) {
        const struct acl_entry *e = &s->e[i];
        fprintf(out,
                "kafka-acls.sh --bootstrap-server %s --command-config admin.properties --add "
                "--allow-principal %s",
                b, principal);
        for (size_t k = 0; k < DX_ARRAY_LEN(ops); k++)
            if (e->ops & ops[k].op)
                fprintf(out, " --operation %s", ops[k].name);
        fprintf(out, " --%s %s\n", e->kind == ACL_TOPIC ? "topic" : "group", e->name);
    }
    char retention[32];
    snprintf(retention, sizeof(retention), "%lld", (long long)cfg->kafka.retention_ms);
    bool header = false;
    for (size_t i = 0; i < s->n; i++) {
        const struct acl_entry *e = &s->e[i];
        if (!e->created)
            continue;
        if (!header)
            fprintf(out, "# It creates these topics when they are missing: create them beforehand\n"
                         "# (then it needs no Create), or grant Create on them instead:\n");
        header = true;
        fprintf(out,
                "#   kafka-topics.sh --bootstrap-server %s --command-config admin.properties "
                "--create --topic %s --partitions %d",
                b, e->name, cfg->kafka.partitions);
        if (cfg->kafka.replication_factor > 0)
            fprintf(out, " --replication-factor %d", cfg->kafka.replication_factor);
        fprintf(out, " --config retention.ms=%s --config max.message.bytes=%s\n", retention,
                KAFKA_MESSAGE_MAX_BYTES);
        fprintf(out,
                "#   or: kafka-acls.sh --bootstrap-server %s --command-config admin.properties "
                "--add --allow-principal %s --operation Create --topic %s\n",
                b, principal, e->name);
    }
    return ferror(out) ? -1 : 0;
}

int acl_command(const struct config *cfg, struct acl_set *s, const char *given,
                const char *fallback, const char *what)
{
    char principal[160];
    int rc = acl_print(stdout, cfg, s,
                       acl_principal(cfg, given, fallback, principal, sizeof(principal)), what)
                 ? 1
                 : 0;
    acl_free(s);
    return rc;
}

void acl_producer(const struct config *cfg, const char *instance, struct acl_set *s)
{
    char topic[512];
    for (size_t r = 0; r < cfg->nroutes; r++) {
        const struct config_route *route = &cfg->routes[r];
        if (strcmp(route->from, instance) != 0)
            continue;
        for (size_t j = 0; j < route->ncollections; j++)
            if (kafka_topic_sync(cfg, instance, route->collections[j].collection, topic,
                                 sizeof(topic)) == 0)
                acl_add(s, ACL_TOPIC, topic, ACL_WRITE | ACL_DESCRIBE, true);
    }
}

void acl_notifier(const struct config *cfg, struct acl_set *s)
{
    char name[512];
    if (kafka_topic_errors(cfg, name, sizeof(name)) == 0)
        acl_add(s, ACL_TOPIC, name, ACL_READ | ACL_DESCRIBE, true);
    if (kafka_group_notify(cfg, name, sizeof(name)) == 0)
        acl_add(s, ACL_GROUP, name, ACL_READ, false);
}
