#include "replay.h"

#include "kread.h"

#include "event.h"
#include "kafka.h"
#include "log.h"
#include "routes.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

#define TIMEOUT_MS 15000

/* Members of the group now (-1 when Kafka cannot tell). */
static int group_members(rd_kafka_t *rk, const char *group, char *err, size_t errlen)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    const char *groups[1] = {group};
    rd_kafka_DescribeConsumerGroups(rk, groups, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, TIMEOUT_MS);
    int n = -1;
    if (!ev) {
        snprintf(err, errlen, "describing group %s timed out", group);
    } else if (rd_kafka_event_error(ev)) {
        snprintf(err, errlen, "describing group %s: %s", group, rd_kafka_event_error_string(ev));
    } else {
        size_t cnt;
        const rd_kafka_ConsumerGroupDescription_t **d =
            rd_kafka_DescribeConsumerGroups_result_groups(
                rd_kafka_event_DescribeConsumerGroups_result(ev), &cnt);
        if (cnt == 1) {
            const rd_kafka_error_t *ge = rd_kafka_ConsumerGroupDescription_error(d[0]);
            if (ge && rd_kafka_error_code(ge) != RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND)
                snprintf(err, errlen, "describing group %s: %s", group, rd_kafka_error_string(ge));
            else
                n = (int)rd_kafka_ConsumerGroupDescription_member_count(d[0]);
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    return n;
}

int replay_run(const struct config *cfg, const char *remote, int64_t since_ms, FILE *out)
{
    char err[1024] = "", group[256];
    struct kafka_state st = {.component = "replay"};
    struct routes_sub *subs = NULL;
    size_t nsubs = 0;
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_partition_list_t *parts = NULL, *before = NULL;
    rd_kafka_queue_t *q = NULL;
    rd_kafka_event_t *ev = NULL;
    int rc = 1;
    if (kafka_group_apply(cfg, remote, group, sizeof(group)) ||
        routes_into(cfg, remote, &subs, &nsubs, err, sizeof(err)))
        goto out;
    if (nsubs == 0) {
        snprintf(err, sizeof(err), "no route leads to %s", remote);
        goto out;
    }
    if (!(rk = kafka_reader_new(cfg, &st, group, err, sizeof(err))))
        goto out;
    /* a consumer that stopped stays a member (static membership) until its session times out:
     * wait that long for the group to empty before refusing */
    int64_t until = util_mono_ms() + cfg->consumer.session_timeout_ms + 5000;
    int members;
    bool said = false;
    while ((members = group_members(rk, group, err, sizeof(err))) > 0 && util_mono_ms() < until) {
        if (!said)
            log_stderr("replay: group %s has %d member%s; a stopped consumer stays one until its "
                       "session times out (consumer.session_timeout_ms = %d ms): waiting up to "
                       "%d s\n",
                       group, members, members == 1 ? "" : "s", cfg->consumer.session_timeout_ms,
                       cfg->consumer.session_timeout_ms / 1000 + 5);
        said = true;
        util_sleep_ms(1000, NULL);
    }
    if (members < 0)
        goto out;
    if (members > 0) {
        snprintf(err, sizeof(err),
                 "group %s has %d active member%s: stop every dxsync-consumer --remote %s first",
                 group, members, members == 1 ? "" : "s", remote);
        goto out;
    }
    parts = rd_kafka_topic_partition_list_new(16);
    for (size_t i = 0; i < nsubs; i++) {
        int n = kread_partitions(rk, subs[i].topic);
        if (n <= 0) {
            fprintf(out, "%s: no such topic yet; nothing to move\n", subs[i].topic);
            continue;
        }
        for (int p = 0; p < n; p++)
            rd_kafka_topic_partition_list_add(parts, subs[i].topic, p)->offset = since_ms;
    }
    if (parts->cnt == 0) {
        rc = 0;
        goto out;
    }
    before = rd_kafka_topic_partition_list_copy(parts);
    rd_kafka_resp_err_t e = rd_kafka_committed(rk, before, TIMEOUT_MS);
    if (e) {
        snprintf(err, sizeof(err), "reading the committed offsets: %s", rd_kafka_err2str(e));
        goto out;
    }
    e = rd_kafka_offsets_for_times(rk, parts, TIMEOUT_MS);
    if (e) {
        snprintf(err, sizeof(err), "finding offsets for the time: %s", rd_kafka_err2str(e));
        goto out;
    }
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &parts->elems[i];
        if (tp->offset < 0) { /* nothing that new: the end */
            int64_t lo, hi;
            if (rd_kafka_query_watermark_offsets(rk, tp->topic, tp->partition, &lo, &hi,
                                                 TIMEOUT_MS) == RD_KAFKA_RESP_ERR_NO_ERROR)
                tp->offset = hi;
        }
    }
    rd_kafka_AlterConsumerGroupOffsets_t *alter =
        rd_kafka_AlterConsumerGroupOffsets_new(group, parts);
    q = rd_kafka_queue_new(rk);
    rd_kafka_AlterConsumerGroupOffsets(rk, &alter, 1, NULL, q);
    rd_kafka_AlterConsumerGroupOffsets_destroy(alter);
    ev = rd_kafka_queue_poll(q, TIMEOUT_MS);
    if (!ev || rd_kafka_event_error(ev)) {
        snprintf(err, sizeof(err), "moving the offsets: %s",
                 ev ? rd_kafka_event_error_string(ev) : "timed out");
        goto out;
    }
    size_t ng;
    const rd_kafka_group_result_t **gr = rd_kafka_AlterConsumerGroupOffsets_result_groups(
        rd_kafka_event_AlterConsumerGroupOffsets_result(ev), &ng);
    const rd_kafka_error_t *ge = ng == 1 ? rd_kafka_group_result_error(gr[0]) : NULL;
    if (ng != 1 || ge) {
        snprintf(err, sizeof(err), "moving the offsets: %s",
                 ge ? rd_kafka_error_string(ge) : "no result");
        goto out;
    }
    const rd_kafka_topic_partition_list_t *res = rd_kafka_group_result_partitions(gr[0]);
    char when[32];
    util_iso8601_ms(since_ms, when, sizeof(when));
    fprintf(out, "group %s moved to %s\n%-40s %9s %12s %12s\n", group, when, "topic", "partition",
            "from", "to");
    int failed = 0;
    for (int i = 0; res && i < res->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &res->elems[i];
        rd_kafka_topic_partition_t *b =
            rd_kafka_topic_partition_list_find(before, tp->topic, tp->partition);
        char from[24];
        if (b && b->offset >= 0)
            snprintf(from, sizeof(from), "%lld", (long long)b->offset);
        else
            snprintf(from, sizeof(from), "-");
        if (tp->err) {
            failed++;
            fprintf(out, "%-40s %9d %12s %12s  %s\n", tp->topic, (int)tp->partition, from, "-",
                    rd_kafka_err2str(tp->err));
        } else {
            fprintf(out, "%-40s %9d %12s %12lld\n", tp->topic, (int)tp->partition, from,
                    (long long)tp->offset);
        }
    }
    rc = failed ? 1 : 0;
out:
    if (rc && err[0]) {
        log_stderr("dxsync-consumer: replay: %s\n", err);
        log_debug("replay", "event=refused reason=%s", LOG_Q(err));
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    if (q)
        rd_kafka_queue_destroy(q);
    if (parts)
        rd_kafka_topic_partition_list_destroy(parts);
    if (before)
        rd_kafka_topic_partition_list_destroy(before);
    if (rk)
        rd_kafka_destroy(rk);
    free(subs);
    return rc;
}

/* Changed fields of an event, for the audit line. */
static void changed(const struct event *ev, char *buf, size_t len)
{
    struct util_buf b = {0};
    const cJSON *obj = ev->action == EVENT_DELETE ? NULL : ev->delta ? ev->delta : ev->data;
    for (const cJSON *it = cJSON_IsObject(obj) ? obj->child : NULL; it; it = it->next)
        util_buf_printf(&b, "%s%s", b.len ? "," : "", it->string);
    util_strlcpy(buf, b.len ? b.data : "-", len);
    util_buf_free(&b);
}

int audit_run(const struct config *cfg, const char *source, const char *collection, const char *key,
              int64_t since_ms, bool json, FILE *out)
{
    char err[1024] = "", topic[256], group[300];
    struct kafka_state st = {.component = "audit"};
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_t *rkt = NULL;
    rd_kafka_topic_partition_list_t *assign = NULL;
    int rc = 1;
    if (kafka_topic_sync(cfg, source, collection, topic, sizeof(topic))) {
        snprintf(err, sizeof(err), "topic name too long");
        goto out;
    }
    if (util_format(group, sizeof(group), "%s.audit", cfg->kafka.topic_prefix)) { /* no commits */
        snprintf(err, sizeof(err), "group name %s.audit too long", cfg->kafka.topic_prefix);
        goto out;
    }
    if (!(rk = kafka_reader_new(cfg, &st, group, err, sizeof(err))))
        goto out;
    int n = kread_partitions(rk, topic);
    if (n <= 0) {
        snprintf(err, sizeof(err), "topic %s does not exist: nothing was ever published for %s.%s",
                 topic, source, collection);
        goto out;
    }
    rkt = rd_kafka_topic_new(rk, topic, NULL);
    int32_t part = rd_kafka_msg_partitioner_murmur2(rkt, key, strlen(key), n, NULL, NULL);
    int64_t lo, hi;
    rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, topic, part, &lo, &hi, TIMEOUT_MS);
    if (e) {
        snprintf(err, sizeof(err), "%s [%d]: %s", topic, (int)part, rd_kafka_err2str(e));
        goto out;
    }
    int64_t start = lo;
    if (since_ms >= 0) {
        rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(t, topic, part)->offset = since_ms;
        if (rd_kafka_offsets_for_times(rk, t, TIMEOUT_MS) == RD_KAFKA_RESP_ERR_NO_ERROR)
            start = t->elems[0].offset >= 0 ? t->elems[0].offset : hi;
        rd_kafka_topic_partition_list_destroy(t);
    }
    if (!json)
        fprintf(out, "# %s partition %d, offsets %lld to %lld, key %s\n", topic, (int)part,
                (long long)start, (long long)hi, key);
    assign = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(assign, topic, part)->offset = start;
    if ((e = rd_kafka_assign(rk, assign))) {
        snprintf(err, sizeof(err), "assign: %s", rd_kafka_err2str(e));
        goto out;
    }
    int64_t next = start, idle_since = util_mono_ms();
    size_t shown = 0;
    while (next < hi && util_mono_ms() - idle_since < TIMEOUT_MS) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
        if (!m)
            continue;
        idle_since = util_mono_ms();
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                log_warn("audit", "event=read_error error=%s", LOG_Q(rd_kafka_message_errstr(m)));
            rd_kafka_message_destroy(m);
            continue;
        }
        next = m->offset + 1;
        if (m->key_len == strlen(key) && memcmp(m->key, key, m->key_len) == 0) {
            shown++;
            if (json) {
                fprintf(out, "%.*s\n", (int)m->len, (const char *)m->payload);
            } else {
                struct event ev;
                char why[256], fields[1024];
                if (event_decode(m->payload, m->len, &ev, why, sizeof(why))) {
                    fprintf(out, "offset %lld: malformed event: %s\n", (long long)m->offset, why);
                } else {
                    changed(&ev, fields, sizeof(fields));
                    fprintf(out, "%s  %-8s  user=%s  fields=%s  event=%s  offset=%lld\n",
                            ev.timestamp, event_action_name(ev.action), ev.user ? ev.user : "-",
                            fields, ev.event_id, (long long)m->offset);
                    event_free(&ev);
                }
            }
        }
        rd_kafka_message_destroy(m);
    }
    if (next < hi) {
        snprintf(err, sizeof(err), "stopped at offset %lld of %lld: Kafka did not answer",
                 (long long)next, (long long)hi);
        goto out;
    }
    if (!json)
        fprintf(out, "# %zu event%s\n", shown, shown == 1 ? "" : "s");
    rc = 0;
out:
    if (rc && err[0])
        log_stderr("dxsync-consumer: audit: %s\n", err);
    if (assign)
        rd_kafka_topic_partition_list_destroy(assign);
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    if (rk) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    return rc;
}
