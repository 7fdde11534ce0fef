#include "dlqlist.h"

#include "kread.h"

#include "event.h"
#include "kafka.h"
#include "log.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* <prefix>.<source>.<collection> → source and collection. */
static void from_topic(const char *prefix, const char *topic, struct dlq_entry *e)
{
    size_t pl = strlen(prefix);
    if (strncmp(topic, prefix, pl) != 0 || topic[pl] != '.')
        return;
    const char *s = topic + pl + 1, *dot = strchr(s, '.');
    if (!dot)
        return;
    snprintf(e->source, sizeof(e->source), "%.*s", (int)(dot - s), s);
    util_strlcpy(e->collection, dot + 1, sizeof(e->collection));
}

void dlq_entry_from(const rd_kafka_message_t *m, const char *prefix, struct dlq_entry *e)
{
    memset(e, 0, sizeof(*e));
    rd_kafka_timestamp_type_t tt;
    e->time_ms = rd_kafka_message_timestamp(m, &tt);
    kafka_header_get(m, "dxsync-error-status", e->status, sizeof(e->status));
    kafka_header_get(m, "dxsync-error-code", e->code, sizeof(e->code));
    kafka_header_get(m, "dxsync-error-message", e->message, sizeof(e->message));
    kafka_header_get(m, "dxsync-original-topic", e->topic, sizeof(e->topic));
    kafka_header_get(m, "dxsync-original-partition", e->partition, sizeof(e->partition));
    kafka_header_get(m, "dxsync-original-offset", e->offset, sizeof(e->offset));
    if (m->key && m->key_len)
        snprintf(e->key, sizeof(e->key), "%.*s", (int)m->key_len, (const char *)m->key);
    struct event ev;
    char why[256];
    if (m->payload && event_decode(m->payload, m->len, &ev, why, sizeof(why)) == 0) {
        util_strlcpy(e->source, ev.source, sizeof(e->source));
        util_strlcpy(e->collection, ev.collection, sizeof(e->collection));
        util_strlcpy(e->action, event_action_name(ev.action), sizeof(e->action));
        util_strlcpy(e->event_id, ev.event_id ? ev.event_id : "", sizeof(e->event_id));
        if (ev.key_text)
            util_strlcpy(e->key, ev.key_text, sizeof(e->key));
        event_free(&ev);
    } else {
        from_topic(prefix, e->topic, e);
    }
}

static const char *or_dash(const char *s)
{
    return s && *s ? s : "-";
}

void dlq_entry_print(const struct dlq_entry *e, bool json, FILE *out)
{
    char ts[32];
    util_iso8601_ms(e->time_ms, ts, sizeof(ts));
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "time", ts);
        cJSON_AddStringToObject(o, "source", e->source);
        cJSON_AddStringToObject(o, "collection", e->collection);
        cJSON_AddStringToObject(o, "key", e->key);
        cJSON_AddStringToObject(o, "action", e->action);
        cJSON_AddNumberToObject(o, "status", atoi(e->status));
        cJSON_AddStringToObject(o, "code", e->code);
        cJSON_AddStringToObject(o, "message", e->message);
        cJSON_AddStringToObject(o, "event_id", e->event_id);
        cJSON_AddStringToObject(o, "topic", e->topic);
        cJSON_AddNumberToObject(o, "partition", atoi(e->partition));
        cJSON_AddNumberToObject(o, "offset", (double)atoll(e->offset));
        char *s = cJSON_PrintUnformatted(o);
        if (s)
            fprintf(out, "%s\n", s);
        free(s);
        cJSON_Delete(o);
        return;
    }
    /* one line per letter: the message last, so that nothing after it is cut */
    char msg[512];
    util_strlcpy(msg, e->message, sizeof(msg));
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\t')
            *p = ' ';
    fprintf(out, "%-24s %-8s %-20s %-36s %-8s %-6s %-22s %s\n", ts, or_dash(e->source),
            or_dash(e->collection), or_dash(e->key), or_dash(e->action), or_dash(e->status),
            or_dash(e->code), msg);
}

struct listing {
    const struct config *cfg;
    const char *code;
    int64_t since_ms;
    bool json;
    FILE *out;
    int64_t seen, shown;
};

static int list_one(void *arg, const rd_kafka_message_t *m)
{
    struct listing *ls = arg;
    struct dlq_entry de;
    dlq_entry_from(m, ls->cfg->kafka.topic_prefix, &de);
    ls->seen++;
    if ((!ls->code || strcmp(ls->code, de.code) == 0) &&
        (ls->since_ms < 0 || de.time_ms >= ls->since_ms)) {
        dlq_entry_print(&de, ls->json, ls->out);
        ls->shown++;
    }
    return 0;
}

int dlq_list_run(const struct config *cfg, const char *remote, const char *code, int64_t since_ms,
                 bool json, FILE *out)
{
    char err[1024] = "", topic[256], group[300];
    struct kafka_state st = {.component = "dlq"};
    rd_kafka_t *rk = NULL;
    int rc = 1;
    if (util_format(topic, sizeof(topic), "%s.dlq.%s", cfg->kafka.topic_prefix, remote) ||
        util_format(group, sizeof(group), "%s.dlq-list", cfg->kafka.topic_prefix)) {
        snprintf(err, sizeof(err), "topic prefix too long");
        goto out;
    }
    if (!(rk = kafka_reader_new(cfg, &st, group, err, sizeof(err))))
        goto out;
    int n = kread_partitions(rk, topic);
    if (n < 0) {
        snprintf(err, sizeof(err), "Kafka does not answer about %s", topic);
        goto out;
    }
    if (n == 0) {
        if (!json)
            fprintf(out,
                    "# %s does not exist: nothing was ever dead-lettered for %s\n# 0 dead "
                    "letters\n",
                    topic, remote);
        rc = 0;
        goto out;
    }
    if (!json)
        fprintf(out, "%-24s %-8s %-20s %-36s %-8s %-6s %-22s %s\n", "TIME", "SOURCE", "COLLECTION",
                "KEY", "ACTION", "STATUS", "CODE", "MESSAGE");
    struct listing ls = {cfg, code, since_ms, json, out, 0, 0};
    for (int p = 0; p < n; p++)
        if (kread_partition(rk, topic, p, 0, list_one, &ls, err, sizeof(err)))
            goto out;
    if (!json)
        fprintf(out, "# %" PRId64 " dead letter%s shown of %" PRId64 " in %s\n", ls.shown,
                ls.shown == 1 ? "" : "s", ls.seen, topic);
    rc = 0;
out:
    if (rc && err[0])
        log_stderr("dxsync-consumer: dlq list: %s\n", err);
    if (rk) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    return rc;
}
