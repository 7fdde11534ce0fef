#include "publish.h"

#include "kafka.h"
#include "log.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pending {
    uint64_t end_lsn;
    int64_t commit_time_ms;
    size_t outstanding; /* events not yet acknowledged */
    struct pending *next;
};

struct publish {
    const struct config *cfg;
    const char *source;
    struct kafka_state kst;
    rd_kafka_t *rk;
    struct pending *head, *tail;
    uint64_t confirmed;
    int64_t confirmed_time_ms;
    bool failed;
    size_t queued_bytes; /* event bytes handed to librdkafka and not yet reported */
    struct util_buf enc; /* the event being produced, encoded (librdkafka copies it) */
    char why[512];
    void (*wait_cb)(void *);
    void *wait_opaque;
    struct metric *m_events, *m_bytes, *m_txns, *m_errors, *m_queue;
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    (void)rk;
    struct publish *p = ((struct kafka_state *)opaque)->user;
    struct pending *t = msg->_private;
    p->queued_bytes -= msg->len < p->queued_bytes ? msg->len : p->queued_bytes;
    if (msg->err) {
        /* Idempotent producer without a delivery timeout: what gets here will never succeed
         * (too large, not authorised, fatal). Losing it is not an option: stop. */
        metrics_add(p->m_errors, 1);
        if (!p->failed) {
            p->failed = true;
            snprintf(p->why, sizeof(p->why), "delivery to %s failed: %s",
                     rd_kafka_topic_name(msg->rkt), rd_kafka_err2str(msg->err));
            log_error("producer", "event=delivery_failed topic=%s error=%s",
                      LOG_Q(rd_kafka_topic_name(msg->rkt)), LOG_Q(rd_kafka_err2str(msg->err)));
        }
        return;
    }
    metrics_add(p->m_events, 1);
    metrics_add(p->m_bytes, (double)msg->len);
    if (t && t->outstanding > 0)
        t->outstanding--;
}

static void advance(struct publish *p)
{
    if (p->failed || p->kst.fatal)
        return; /* confirm nothing more */
    while (p->head && p->head->outstanding == 0) {
        struct pending *t = p->head;
        p->confirmed = t->end_lsn;
        p->confirmed_time_ms = t->commit_time_ms;
        p->head = t->next;
        if (!p->head)
            p->tail = NULL;
        free(t);
    }
}

struct publish *publish_new(const struct config *cfg, const char *source, struct metrics *m,
                            char *err, size_t errlen)
{
    /* Small queues: the replication stream waits (QUEUE_FULL) instead of the process growing
     * with the backlog; a lone change still leaves at once (linger.ms 1). Measured with
     * tests/bench/producer.sh (200,000 events, medians of 3, in one hour on a loaded machine):
     * 2,000 messages and 128 KiB batches 29,800 events/s, 18.3 us CPU per event, 16.8 MB peak
     * RSS; 1,000 and 64 KiB 45,400/s, 12.0 us, 14.9 MB; 500 and 32 KiB 47,000/s, 10.7 us,
     * 13.6 MB (100,000 messages and 64 MB took 110 MB for the same throughput). 500 messages
     * are 8 ms of a catch-up here: with a broker 10 ms or more away, raise
     * queue.buffering.max.messages in kafka.properties. */
    static const char *const defaults[] = {"linger.ms",
                                           "1",
                                           "batch.num.messages",
                                           "500",
                                           "batch.size",
                                           "32768",
                                           "queue.buffering.max.messages",
                                           "500",
                                           KAFKA_PRODUCER_SIZE_DEFAULTS,
                                           "compression.codec",
                                           "none",
                                           NULL};
    static const char *const forced[] = {
        "enable.idempotence", "true",           "acks", "all", "message.timeout.ms", "0",
        "partitioner",        "murmur2_random", NULL};
    struct publish *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->cfg = cfg;
    p->source = source;
    char labels[128];
    if (util_format(labels, sizeof(labels), "source=\"%s\"", source)) {
        snprintf(err, errlen, "metric labels for source %s too long", source);
        goto fail;
    }
    p->kst.component = "producer";
    p->kst.user = p;
    rd_kafka_conf_t *conf = kafka_conf_new(cfg, &p->kst, defaults, forced, err, errlen);
    if (!conf)
        goto fail;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery); /* opaque: &p->kst, whose user is p */
    if (!(p->rk = kafka_client_new(RD_KAFKA_PRODUCER, conf, "kafka", err, errlen)))
        goto fail;
    p->m_events = metrics_counter(m, "dxsync_producer_events_published_total",
                                  "Events acknowledged by Kafka", labels);
    p->m_bytes = metrics_counter(m, "dxsync_producer_bytes_published_total",
                                 "Bytes of event values acknowledged by Kafka", labels);
    p->m_txns = metrics_counter(m, "dxsync_producer_transactions_total",
                                "Source transactions handed to Kafka", labels);
    p->m_errors = metrics_counter(m, "dxsync_producer_delivery_errors_total",
                                  "Events Kafka refused for good", labels);
    p->m_queue = metrics_gauge(m, "dxsync_producer_pending_transactions",
                               "Transactions waiting for Kafka acknowledgements", labels);
    return p;
fail:
    free(p);
    return NULL;
}

void publish_free(struct publish *p, int timeout_ms)
{
    if (!p)
        return;
    if (p->rk) {
        rd_kafka_flush(p->rk, timeout_ms);
        rd_kafka_destroy(p->rk);
    }
    while (p->head) {
        struct pending *t = p->head;
        p->head = t->next;
        free(t);
    }
    util_buf_free(&p->enc);
    free(p);
}

int publish_ensure_topics(struct publish *p, const char *const *collections, size_t n, char *err,
                          size_t errlen)
{
    char **names = calloc(n ? n : 1, sizeof(char *));
    int rc = -1;
    if (!names) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        names[i] = malloc(256);
        if (!names[i] || kafka_topic_sync(p->cfg, p->source, collections[i], names[i], 256)) {
            snprintf(err, errlen, "topic name for %s is too long", collections[i]);
            goto out;
        }
    }
    rc = kafka_ensure_topics(p->rk, p->cfg, (const char *const *)names, n, 30000, err, errlen);
out:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

static void serve(struct publish *p, int timeout_ms)
{
    rd_kafka_poll(p->rk, timeout_ms);
    advance(p);
}

void publish_poll(struct publish *p, int timeout_ms)
{
    serve(p, timeout_ms);
}

void publish_set_wait_cb(struct publish *p, void (*fn)(void *opaque), void *opaque)
{
    p->wait_cb = fn;
    p->wait_opaque = opaque;
}

/* One step of a wait for Kafka: serve it, then let the caller keep its other connections. */
static void wait_step(struct publish *p)
{
    serve(p, 100);
    if (p->wait_cb)
        p->wait_cb(p->wait_opaque);
}

int publish_txn(struct publish *p, const struct capture_txn *txn, const volatile sig_atomic_t *stop,
                char *err, size_t errlen)
{
    struct pending *t = calloc(1, sizeof(*t));
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    t->end_lsn = txn->end_lsn;
    t->commit_time_ms = txn->commit_time_ms;
    t->outstanding = txn->nevents;
    if (p->tail)
        p->tail->next = t;
    else
        p->head = t;
    p->tail = t;
    metrics_add(p->m_txns, 1);
    size_t handed = 0;
    for (size_t i = 0; i < txn->nevents; i++) {
        const struct event *ev = &txn->events[i].ev;
        char topic[256];
        if (kafka_topic_sync(p->cfg, p->source, ev->collection, topic, sizeof(topic))) {
            snprintf(err, errlen, "topic name for %s is too long", ev->collection);
            goto fail;
        }
        if (event_encode_into(ev, &p->enc)) {
            snprintf(err, errlen, "out of memory encoding %s", ev->event_id);
            goto fail;
        }
        const char *action = event_action_name(ev->action);
        const char *value = p->enc.data;
        size_t len = p->enc.len;
        /* keep librdkafka's queue small (KAFKA_QUEUE_SOFT_BYTES): its hard limit only has to
         * fit the largest event */
        while (p->queued_bytes > 0 && p->queued_bytes + len > KAFKA_QUEUE_SOFT_BYTES &&
               !(stop && *stop) && !p->kst.fatal && !p->failed)
            wait_step(p);
        for (;;) {
            const struct kafka_header hdrs[] = {
                {"dxsync-event-id", ev->event_id, strlen(ev->event_id)},
                {"dxsync-action", action, strlen(action)},
                {"dxsync-source", p->source, strlen(p->source)},
            };
            rd_kafka_resp_err_t e = kafka_produce(p->rk, topic, RD_KAFKA_PARTITION_UA, ev->key_text,
                                                  strlen(ev->key_text), (void *)value, len,
                                                  RD_KAFKA_MSG_F_COPY, hdrs, 3, t);
            if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
                p->queued_bytes += len;
                break;
            }
            if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL && rd_kafka_outq_len(p->rk) == 0)
                e = RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE; /* alone it does not fit the queue */
            if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL && !(stop && *stop) && !p->kst.fatal) {
                wait_step(p);
                continue;
            }
            if (e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
                snprintf(err, errlen,
                         "event %s is %zu bytes, more than Kafka takes: raise message.max.bytes "
                         "and queue.buffering.max.kbytes in kafka.properties and the topic's "
                         "max.message.bytes (%s); nothing after it is confirmed",
                         ev->event_id, len, topic);
            else
                snprintf(err, errlen, "producing %s to %s: %s", ev->event_id, topic,
                         rd_kafka_err2str(e));
            goto fail;
        }
        handed++;
        if (p->enc.cap > (1u << 20))
            util_buf_free(&p->enc); /* a large event does not keep its memory */
        rd_kafka_poll(p->rk, 0);
    }
    advance(p);
    metrics_set(p->m_queue, 0);
    return 0;
fail:
    /* The events not handed over will never be acknowledged: this transaction (and every
     * later one) stays unconfirmed, so a restart sends it again. */
    t->outstanding = t->outstanding - handed + 1;
    p->failed = true;
    util_strlcpy(p->why, err, sizeof(p->why));
    return -1;
}

uint64_t publish_confirmed(const struct publish *p, int64_t *commit_time_ms)
{
    if (commit_time_ms)
        *commit_time_ms = p->confirmed_time_ms;
    return p->confirmed;
}

bool publish_idle(const struct publish *p)
{
    return p->head == NULL;
}

int publish_drain(struct publish *p, int timeout_ms, const volatile sig_atomic_t *stop)
{
    int64_t end = util_mono_ms() + timeout_ms;
    while (!publish_idle(p)) {
        if (p->failed || p->kst.fatal)
            return -1;
        if (timeout_ms >= 0 && util_mono_ms() >= end)
            return -1;
        if (timeout_ms < 0 && stop && *stop)
            return -1;
        wait_step(p);
    }
    return 0;
}

bool publish_failed(const struct publish *p, char *why, size_t len)
{
    if (p->kst.fatal) {
        snprintf(why, len, "kafka fatal error: %s", p->kst.fatal_reason);
        return true;
    }
    if (p->failed) {
        util_strlcpy(why, p->why, len);
        return true;
    }
    return false;
}
