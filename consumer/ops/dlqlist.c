#include "dlqlist.h"

#include "event.h"
#include "kafka.h"
#include "log.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define TIMEOUT_MS 10000

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

int dlq_list_run(const struct config *cfg, const char *remote, const char *code, int64_t since_ms,
                 bool json, FILE *out)
{
    char err[1024] = "", topic[256], group[300];
    struct kafka_state st = {.component = "dlq"};
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_partition_list_t *assign = NULL;
    const struct rd_kafka_metadata *md = NULL;
    int64_t *hi = NULL, *next = NULL;
    int rc = 1;
    if (util_format(topic, sizeof(topic), "%s.dlq.%s", cfg->kafka.topic_prefix, remote) ||
        util_format(group, sizeof(group), "%s.dlq-list", cfg->kafka.topic_prefix)) {
        snprintf(err, sizeof(err), "topic prefix too long");
        goto out;
    }
    static const char *const forced[] = {"enable.auto.commit", "false", "enable.auto.offset.store",
                                         "false", NULL};
    rd_kafka_conf_t *conf = kafka_conf_new(cfg, &st, NULL, forced, err, sizeof(err));
    char e[512];
    if (!conf)
        goto out;
    if (rd_kafka_conf_set(conf, "group.id", group, e, sizeof(e)) != RD_KAFKA_CONF_OK) {
        snprintf(err, sizeof(err), "group.id: %s", e);
        rd_kafka_conf_destroy(conf);
        goto out;
    }
    if (!(rk = kafka_client_new(RD_KAFKA_CONSUMER, conf, "kafka", err, sizeof(err))))
        goto out;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t ke = rd_kafka_metadata(rk, 0, rkt, &md, TIMEOUT_MS);
    rd_kafka_topic_destroy(rkt);
    if (ke) {
        snprintf(err, sizeof(err), "metadata of %s: %s", topic, rd_kafka_err2str(ke));
        goto out;
    }
    int n = md->topic_cnt == 1 && !md->topics[0].err ? md->topics[0].partition_cnt : 0;
    if (n <= 0) {
        if (!json)
            fprintf(out,
                    "# %s does not exist: nothing was ever dead-lettered for %s\n# 0 dead "
                    "letters\n",
                    topic, remote);
        rc = 0;
        goto out;
    }
    hi = calloc((size_t)n, sizeof(*hi));
    next = calloc((size_t)n, sizeof(*next));
    assign = rd_kafka_topic_partition_list_new(n);
    if (!hi || !next || !assign) {
        snprintf(err, sizeof(err), "out of memory");
        goto out;
    }
    int64_t total = 0;
    for (int p = 0; p < n; p++) {
        int64_t lo;
        if ((ke = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi[p], TIMEOUT_MS))) {
            snprintf(err, sizeof(err), "%s [%d]: %s", topic, p, rd_kafka_err2str(ke));
            goto out;
        }
        next[p] = lo;
        total += hi[p] - lo;
        if (lo < hi[p])
            rd_kafka_topic_partition_list_add(assign, topic, p)->offset = lo;
    }
    if (!json)
        fprintf(out, "%-24s %-8s %-20s %-36s %-8s %-6s %-22s %s\n", "TIME", "SOURCE", "COLLECTION",
                "KEY", "ACTION", "STATUS", "CODE", "MESSAGE");
    if (assign->cnt && (ke = rd_kafka_assign(rk, assign))) {
        snprintf(err, sizeof(err), "assign: %s", rd_kafka_err2str(ke));
        goto out;
    }
    int64_t seen = 0, shown = 0, idle_since = util_mono_ms();
    while (seen < total && util_mono_ms() - idle_since < TIMEOUT_MS) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
        if (!m)
            continue;
        idle_since = util_mono_ms();
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                log_warn("dlq", "event=read_error error=%s", LOG_Q(rd_kafka_message_errstr(m)));
            rd_kafka_message_destroy(m);
            continue;
        }
        if (m->partition >= 0 && m->partition < n && m->offset >= next[m->partition]) {
            seen += m->offset + 1 - next[m->partition];
            next[m->partition] = m->offset + 1;
            struct dlq_entry de;
            dlq_entry_from(m, cfg->kafka.topic_prefix, &de);
            if ((!code || strcmp(code, de.code) == 0) && (since_ms < 0 || de.time_ms >= since_ms)) {
                dlq_entry_print(&de, json, out);
                shown++;
            }
        }
        rd_kafka_message_destroy(m);
    }
    if (seen < total) {
        snprintf(err, sizeof(err),
                 "read %" PRId64 " of %" PRId64 " dead letters: Kafka did not answer", seen, total);
        goto out;
    }
    if (!json)
        fprintf(out, "# %" PRId64 " dead letter%s shown of %" PRId64 " in %s\n", shown,
                shown == 1 ? "" : "s", total, topic);
    rc = 0;
out:
    if (rc && err[0])
        fprintf(stderr, "dxsync-consumer: dlq list: %s\n", err);
    if (md)
        rd_kafka_metadata_destroy(md);
    if (assign)
        rd_kafka_topic_partition_list_destroy(assign);
    free(hi);
    free(next);
    if (rk) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    return rc;
}
