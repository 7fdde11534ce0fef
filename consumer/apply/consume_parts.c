/* consume_parts.c: the partitions assigned to the consumer (consume_int.h): each one's queue,
 * lane, read-back state and resend filter, the offsets stored as its events settle, the pause of
 * a paused route's partitions, and the lag, pending and paused gauges. */
#include "consume_int.h"

#include "log.h"
#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATS_EVERY_MS 1000
/* Keys per partition whose newest activity_id is remembered (twice this at most, about 160 KB
 * when full): enough for what a restarted producer resends (since its last confirmed LSN, a few
 * seconds of changes). A resend of a key no longer remembered costs one idempotent request: the
 * clocks never let it move a field back (lww.h). With 4,096 the soak's busy partitions grew
 * towards 0.6 MB each. */
#define RECENT_KEYS 1024

/* ------------------------------------------------------------------------------------ parts */

static void release_event(struct partq_ev *e, void *opaque)
{
    (void)opaque;
    dlq_cancel(e->letter);
}

struct part *part_find(struct consume *c, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < c->nparts; i++)
        if (c->parts[i]->sp.partition == partition &&
            strcmp(c->parts[i]->sp.sub->topic, topic) == 0)
            return c->parts[i];
    return NULL;
}

struct part *part_of_message(struct consume *c, const rd_kafka_message_t *msg)
{
    for (size_t i = 0; i < c->nparts; i++) {
        struct part *p = c->parts[i];
        if (p->sp.partition == msg->partition && p->rkt == msg->rkt)
            return p;
    }
    struct part *p = part_find(c, rd_kafka_topic_name(msg->rkt), msg->partition);
    if (p)
        p->rkt = msg->rkt;
    return p;
}

struct part *part_add(struct consume *c, const struct routes_sub *sub, int32_t partition)
{
    if (c->nparts == c->capparts) {
        size_t cap = c->capparts ? c->capparts * 2 : 16;
        struct part **np = realloc(c->parts, cap * sizeof(*np));
        if (np)
            c->parts = np;
        struct dispatch_lane **nl = np ? realloc(c->lanes, cap * sizeof(*nl)) : NULL;
        if (nl)
            c->lanes = nl;
        struct state_part **ns = nl ? realloc(c->sps, cap * sizeof(*ns)) : NULL;
        if (!ns)
            return NULL;
        c->sps = ns;
        c->capparts = cap;
    }
    struct part *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    partq_init(&p->q, release_event, NULL);
    dispatch_lane_init(&p->lane, sub, partition, &p->q);
    p->sp = (struct state_part){sub, partition, &p->lane, &p->q, false, -1};
    p->has_recent = recent_init(&p->recent, RECENT_KEYS) == 0;
    c->lanes[c->nparts] = &p->lane;
    c->sps[c->nparts] = &p->sp;
    c->parts[c->nparts++] = p;
    return p;
}

#define PART_LAG_METRIC "dxsync_consumer_partition_lag_events"

/* The labels of p's lag gauge. */
static void part_labels(const struct consume *c, const struct part *p, char *out, size_t len)
{
    snprintf(out, len, "remote=\"%s\",topic=\"%s\",partition=\"%" PRId32 "\"", c->remote_name,
             p->sp.sub->topic, p->sp.partition);
}

void part_remove(struct consume *c, struct part *p)
{
    char l[400];
    part_labels(c, p, l, sizeof(l));
    metrics_remove(c->m, PART_LAG_METRIC, l); /* a revoked partition's lag is not ours to tell */
    dispatch_lane_drop(c->dispatch, &p->lane);
    if (p->rkq)
        rd_kafka_queue_destroy(p->rkq);
    partq_free(&p->q);
    if (p->has_recent)
        recent_free(&p->recent);
    for (size_t i = 0; i < c->nparts; i++)
        if (c->parts[i] == p) {
            memmove(&c->parts[i], &c->parts[i + 1], (c->nparts - i - 1) * sizeof(*c->parts));
            memmove(&c->lanes[i], &c->lanes[i + 1], (c->nparts - i - 1) * sizeof(*c->lanes));
            memmove(&c->sps[i], &c->sps[i + 1], (c->nparts - i - 1) * sizeof(*c->sps));
            c->nparts--;
            break;
        }
    free(p);
}

/* Frees p's settled prefix and stores the offset after it. */
void part_advance(struct consume *c, struct part *p)
{
    int64_t next = partq_advance(&p->q);
    if (next < 0)
        return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, p->sp.sub->topic, p->sp.partition)->offset = next;
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(c->rk, l);
    if (!err && l->elems[0].err)
        err = l->elems[0].err;
    rd_kafka_topic_partition_list_destroy(l);
    if (err)
        log_warn(COMP,
                 "event=offset_store_failed topic=%s partition=%" PRId32 " offset=%" PRId64
                 " error=%s",
                 p->sp.sub->topic, p->sp.partition, next, rd_kafka_err2name(err));
}

/* The partitions of a paused route ("enabled": false) are assigned to us as any other (the
 * group's assignment stays as it is, and so do their committed offsets) but not fetched: the
 * events wait in Kafka and resuming continues where the route stopped. */
void parts_pause_disabled(struct consume *c, const rd_kafka_topic_partition_list_t *l)
{
    rd_kafka_topic_partition_list_t *pause = rd_kafka_topic_partition_list_new(l->cnt);
    for (int i = 0; i < l->cnt; i++) {
        const struct part *p = part_find(c, l->elems[i].topic, l->elems[i].partition);
        if (p && part_paused(p))
            rd_kafka_topic_partition_list_add(pause, l->elems[i].topic, l->elems[i].partition);
    }
    if (pause->cnt) {
        rd_kafka_resp_err_t err = rd_kafka_pause_partitions(c->rk, pause);
        for (int i = 0; i < pause->cnt; i++)
            log_info(COMP, "event=partition_paused topic=%s partition=%" PRId32 " reason=%s",
                     pause->elems[i].topic, pause->elems[i].partition,
                     err || pause->elems[i].err ? rd_kafka_err2name(err ? err : pause->elems[i].err)
                                                : "route_disabled");
    }
    rd_kafka_topic_partition_list_destroy(pause);
}

/* ------------------------------------------------------------------------------- statistics */

/* p's fetch position (the next offset Kafka hands us), or -1 when not known yet. */
static int64_t fetch_position(const struct consume *c, const struct part *p)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, p->sp.sub->topic, p->sp.partition);
    int64_t off = -1;
    if (rd_kafka_position(c->rk, l) == RD_KAFKA_RESP_ERR_NO_ERROR && l->elems[0].err == 0)
        off = l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    return off;
}

void parts_stats(struct consume *c, int64_t now)
{
    if (now < c->next_stats_ms)
        return;
    c->next_stats_ms = now + STATS_EVERY_MS;
    int64_t lag = 0;
    size_t pending = 0, paused = 0;
    for (size_t i = 0; i < c->nparts; i++) {
        struct part *p = c->parts[i];
        pending += partq_len(&p->q);
        paused += part_paused(p);
        if (part_paused(
                p)) /* not fetched: its watermarks are not learnt (`status` tells its lag) */
            continue;
        int64_t lo, hi, next = partq_resume_offset(&p->q);
        if (next < 0)
            next = fetch_position(c, p); /* nothing taken since the assignment */
        if (rd_kafka_get_watermark_offsets(c->rk, p->sp.sub->topic, p->sp.partition, &lo, &hi) ||
            hi < 0)
            continue;
        if (next < 0 && hi == lo)
            next = hi; /* an empty partition: nothing to apply */
        if (next < 0)
            continue;
        int64_t part_lag = hi > next ? hi - next : 0;
        lag += part_lag;
        char l[400];
        part_labels(c, p, l, sizeof(l));
        metrics_set(metrics_gauge(c->m, PART_LAG_METRIC,
                                  "Events of one assigned partition not applied yet", l),
                    (double)part_lag);
    }
    metrics_set(c->m_lag, (double)lag);
    metrics_set(c->m_pending, (double)pending);
    metrics_set(c->m_paused, (double)paused);
    state_stats(c->state);
    const struct remote *r = &c->remote;
    if (r->down_since_ms) {
        char text[800];
        snprintf(text, sizeof(text), "remote %s does not answer: status %ld %s %s", c->remote_name,
                 r->down_status, r->down_code, r->down_message);
        metrics_note_error(c->m, text);
    }
    metrics_heartbeat(c->m);
}

/* ------------------------------------------------------------------------------ set-up */

void parts_register_metrics(struct consume *c)
{
    char l[160];
    snprintf(l, sizeof(l), "remote=\"%s\"", c->remote_name);
    c->m_lag = metrics_gauge(c->m, "dxsync_consumer_lag_events",
                             "Events in the assigned partitions not applied yet", l);
    c->m_pending = metrics_gauge(c->m, "dxsync_consumer_pending_events",
                                 "Events held in memory, waiting or in flight", l);
    c->m_paused = metrics_gauge(c->m, "dxsync_consumer_paused_partitions",
                                "Assigned partitions of paused routes (\"enabled\": false)", l);
}
