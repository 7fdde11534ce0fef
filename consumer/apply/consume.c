#include "consume.h"

#include "apply.h"
#include "deadletter.h"
#include "http.h"
#include "kafka.h"
#include "log.h"
#include "plan.h"
#include "recent.h"
#include "routes.h"
#include "signals.h"
#include "util.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define COMP "consumer"
/* Messages taken from Kafka per turn of the loop before requests get their turn. */
#define DRAIN_BUDGET 2000
/* Longest sleep of the loop: signals are looked at this often. */
#define MAX_WAIT_MS    100
#define STATS_EVERY_MS 1000
/* Keys per partition whose newest activity_id is remembered (twice this at most). */
#define RECENT_KEYS 4096

enum pend_state { PEND_WAITING = 0, PEND_IN_BATCH, PEND_DONE, PEND_DLQ };
enum { TICKET_DLQ = 0, TICKET_ERROR = 1 };

struct consume;
struct part;

/* One message of a partition, from poll until its offset may be stored. */
struct pend {
    rd_kafka_message_t *msg; /* owned */
    struct event ev;         /* owned when decoded */
    bool decoded;
    enum pend_state state;
    int64_t arrived_ms;
    /* PEND_DLQ: the DLQ copy and the error event, each acknowledged by Kafka */
    int acks;      /* deliveries still awaited */
    unsigned redo; /* bit per kind whose delivery failed: produce it again */
    struct ticket *tickets[2];
    long fail_status;
    char *fail_code;
    char *fail_message;
    int fail_attempts;
};

/* The opaque of one produced DLQ or error message. */
struct ticket {
    struct pend *pend; /* NULL once the pend is gone (its partition was revoked) */
    struct part *part; /* valid only while pend is not NULL */
    int kind;
};

enum part_state {
    PART_IDLE = 0,  /* no batch */
    PART_READY,     /* the batch has a request to send */
    PART_IN_FLIGHT, /* its request is out */
    PART_WAITING    /* the batch waits (backoff) until wake_ms */
};

struct slot {
    CURL *easy;
    struct part *part; /* NULL when free */
};

struct part {
    const struct routes_sub *sub;
    int32_t partition;
    const rd_kafka_topic_t *rkt; /* learnt from the first message, to find the part fast */
    struct pend **q;             /* q[head..tail) in offset order */
    size_t head, tail, cap;
    size_t waiting;        /* pends in PEND_WAITING */
    int64_t last_offset;   /* highest offset queued, -1 */
    rd_kafka_queue_t *rkq; /* the partition's own queue (not forwarded), or NULL */
    bool full;             /* held queue_max events at the last drain: its queue may hold more */
    bool dirty;            /* the settled prefix may have grown */
    bool leaving;          /* revoked or stopping: no new request */
    bool has_recent;
    struct recent recent; /* newest activity_id per recent key: resends are skipped */
    enum part_state st;
    int64_t wake_ms;
    bool outage_wait; /* waiting because the remote is down: woken when it answers again */
    bool has_batch;
    struct apply_batch batch;
    struct pend **bpend; /* the pend of each batch item */
    struct slot *slot;
    struct http_response resp;
    int64_t sent_ms;
    enum apply_step sent_step;
};

struct pkcache {
    const char *collection;
    char pk[128];
    cJSON *fields;        /* the remote's fields of the collection (names), NULL if unknown */
    int64_t fields_at_ms; /* when they were read */
};

struct consume {
    const struct config *cfg;
    const char *remote;
    const struct config_instance *inst;
    struct metrics *m;
    struct routes_sub *subs;
    size_t nsubs;
    char group[256];
    char errors_topic[256];
    char dlq_topic[256];
    struct kafka_state cst; /* consumer */
    struct kafka_state pst; /* producer of DLQ and error events */
    rd_kafka_t *rk;
    rd_kafka_t *prod;
    rd_kafka_queue_t *queue;
    int wake[2];
    CURLM *multi;
    struct http_client *http;
    struct slot *slots;
    size_t nslots;
    size_t in_flight;
    struct part **parts;
    size_t nparts;
    size_t capparts;
    size_t rr;
    struct pkcache *pks;
    size_t npks;
    const struct event **scratch_evs;
    size_t scratch_cap;
    size_t *scratch_idx;
    size_t queue_max; /* events held per partition before we stop taking its messages */
    uint64_t seed;
    bool stopping;
    bool redo; /* some DLQ or error message must be produced again */
    size_t pending_total;
    /* the remote's availability */
    int64_t down_since_ms; /* 0: up */
    bool down_notified;
    long down_status;
    char down_code[64];
    char down_message[512];
    int down_retries;
    /* metrics */
    struct metric *m_applied[4];
    struct metric *m_skipped;
    struct metric *m_stale;
    struct metric *m_dead;
    struct metric *m_malformed;
    struct metric *m_latency;
    struct metric *m_batch;
    struct metric *m_retry_outage;
    struct metric *m_retry_item;
    struct metric *m_lag;
    struct metric *m_pending;
    struct metric *m_in_flight;
    struct metric *m_up;
    int64_t next_stats_ms;
};

/* ------------------------------------------------------------------------------------ pends */

static void pend_free(struct pend *p)
{
    if (!p)
        return;
    for (int k = 0; k < 2; k++)
        if (p->tickets[k])
            p->tickets[k]->pend = NULL; /* its delivery report finds nothing */
    if (p->msg)
        rd_kafka_message_destroy(p->msg);
    if (p->decoded)
        event_free(&p->ev);
    free(p->fail_code);
    free(p->fail_message);
    free(p);
}

/* ------------------------------------------------------------------------------------ parts */

static struct part *part_find(struct consume *c, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < c->nparts; i++)
        if (c->parts[i]->partition == partition && strcmp(c->parts[i]->sub->topic, topic) == 0)
            return c->parts[i];
    return NULL;
}

static struct part *part_of_message(struct consume *c, const rd_kafka_message_t *msg)
{
    for (size_t i = 0; i < c->nparts; i++) {
        struct part *p = c->parts[i];
        if (p->partition == msg->partition && p->rkt == msg->rkt)
            return p;
    }
    struct part *p = part_find(c, rd_kafka_topic_name(msg->rkt), msg->partition);
    if (p)
        p->rkt = msg->rkt;
    return p;
}

static struct part *part_add(struct consume *c, const struct routes_sub *sub, int32_t partition)
{
    if (c->nparts == c->capparts) {
        size_t cap = c->capparts ? c->capparts * 2 : 16;
        struct part **np = realloc(c->parts, cap * sizeof(*np));
        if (!np)
            return NULL;
        c->parts = np;
        c->capparts = cap;
    }
    struct part *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->sub = sub;
    p->partition = partition;
    p->last_offset = -1;
    p->has_recent = recent_init(&p->recent, RECENT_KEYS) == 0;
    c->parts[c->nparts++] = p;
    return p;
}

static void slot_release(struct consume *c, struct slot *s)
{
    curl_multi_remove_handle(c->multi, s->easy);
    if (s->part) {
        s->part->slot = NULL;
        http_response_free(&s->part->resp);
    }
    s->part = NULL;
    c->in_flight--;
}

static void part_remove(struct consume *c, struct part *p)
{
    if (p->slot)
        slot_release(c, p->slot);
    if (p->rkq)
        rd_kafka_queue_destroy(p->rkq);
    for (size_t i = p->head; i < p->tail; i++)
        pend_free(p->q[i]);
    c->pending_total -= p->tail - p->head;
    if (p->has_batch)
        apply_batch_free(&p->batch);
    free(p->bpend);
    free(p->q);
    if (p->has_recent)
        recent_free(&p->recent);
    for (size_t i = 0; i < c->nparts; i++)
        if (c->parts[i] == p) {
            memmove(&c->parts[i], &c->parts[i + 1], (c->nparts - i - 1) * sizeof(*c->parts));
            c->nparts--;
            break;
        }
    free(p);
}

static int part_push(struct part *p, struct pend *pe)
{
    if (p->tail == p->cap) {
        if (p->head > 0) {
            memmove(p->q, p->q + p->head, (p->tail - p->head) * sizeof(*p->q));
            p->tail -= p->head;
            p->head = 0;
        }
        if (p->tail == p->cap) {
            size_t cap = p->cap ? p->cap * 2 : 64;
            struct pend **nq = realloc(p->q, cap * sizeof(*nq));
            if (!nq)
                return -1;
            p->q = nq;
            p->cap = cap;
        }
    }
    p->q[p->tail++] = pe;
    return 0;
}

/* Frees the settled prefix of p's queue and stores the offset after it. */
static void part_advance(struct consume *c, struct part *p)
{
    p->dirty = false;
    int64_t next = -1;
    while (p->head < p->tail) {
        struct pend *pe = p->q[p->head];
        if (!(pe->state == PEND_DONE || (pe->state == PEND_DLQ && pe->acks == 0 && !pe->redo)))
            break;
        next = pe->msg->offset + 1;
        pend_free(pe);
        p->q[p->head++] = NULL;
        c->pending_total--;
    }
    if (p->head == p->tail)
        p->head = p->tail = 0;
    if (next >= 0) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, p->sub->topic, p->partition)->offset = next;
        rd_kafka_resp_err_t err = rd_kafka_offsets_store(c->rk, l);
        if (!err && l->elems[0].err)
            err = l->elems[0].err;
        rd_kafka_topic_partition_list_destroy(l);
        if (err)
            log_warn(COMP,
                     "event=offset_store_failed topic=%s partition=%" PRId32 " offset=%" PRId64
                     " error=%s",
                     p->sub->topic, p->partition, next, rd_kafka_err2name(err));
    }
}

/* ------------------------------------------------------------------ remote availability */

static void publish_remote_event(struct consume *c, enum error_kind kind)
{
    /* one per source routed into the remote: the notifier tells that source's route users */
    for (size_t i = 0; i < c->nsubs; i++) {
        bool seen = false;
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->subs[j].route->from, c->subs[i].route->from) == 0)
                seen = true;
        if (seen)
            continue;
        const char *source = c->subs[i].route->from;
        bool down = kind == ERROR_REMOTE_UNAVAILABLE;
        char *json = deadletter_remote_event(kind, source, c->remote, down ? c->down_status : 0,
                                             down ? c->down_code : "", down ? c->down_message : "",
                                             c->down_retries, util_wall_ms());
        if (!json) {
            log_error(COMP, "event=out_of_memory what=remote_event");
            continue;
        }
        rd_kafka_resp_err_t err = kafka_produce(c->prod, c->errors_topic, RD_KAFKA_PARTITION_UA,
                                                c->remote, strlen(c->remote), json, strlen(json),
                                                RD_KAFKA_MSG_F_FREE, NULL, 0, NULL);
        if (err) {
            free(json);
            log_error(COMP, "event=produce_failed topic=%s error=%s", c->errors_topic,
                      rd_kafka_err2name(err));
        }
    }
}

static void remote_up(struct consume *c)
{
    if (!c->down_since_ms)
        return;
    int64_t secs = (util_mono_ms() - c->down_since_ms) / 1000;
    log_info(COMP, "event=remote_recovered remote=%s down_s=%" PRId64 " retries=%d", c->remote,
             secs, c->down_retries);
    if (c->down_notified)
        publish_remote_event(c, ERROR_REMOTE_RECOVERED);
    c->down_since_ms = 0;
    c->down_notified = false;
    c->down_retries = 0;
    metrics_set(c->m_up, 1);
    /* the other partitions need not sit out their backoff: the remote answers again */
    int64_t now = util_mono_ms();
    for (size_t i = 0; i < c->nparts; i++)
        if (c->parts[i]->st == PART_WAITING && c->parts[i]->outage_wait &&
            c->parts[i]->wake_ms > now)
            c->parts[i]->wake_ms = now;
}

static void remote_down(struct consume *c, const struct http_response *r)
{
    c->down_retries++;
    c->down_status = r->status;
    util_strlcpy(c->down_code, r->code, sizeof(c->down_code));
    util_strlcpy(c->down_message, r->message, sizeof(c->down_message));
    if (c->down_since_ms)
        return;
    c->down_since_ms = util_mono_ms();
    metrics_set(c->m_up, 0);
    log_warn(COMP, "event=remote_unavailable remote=%s status=%ld code=%s message=\"%s\"",
             c->remote, r->status, r->code[0] ? r->code : "-", r->message);
}

static void remote_check_notify(struct consume *c, int64_t now)
{
    if (!c->down_since_ms || c->down_notified)
        return;
    if (now - c->down_since_ms < (int64_t)c->cfg->consumer.retry_notify_after_s * 1000)
        return;
    c->down_notified = true;
    log_warn(COMP, "event=remote_unavailable_published remote=%s down_s=%" PRId64, c->remote,
             (now - c->down_since_ms) / 1000);
    publish_remote_event(c, ERROR_REMOTE_UNAVAILABLE);
}

/* --------------------------------------------------------------------------- dead letters */

/* Produces a copy of orig's key and value with headers h (taken over on success; destroyed here
 * on failure) to topic. */
static rd_kafka_resp_err_t produce_copy(rd_kafka_t *rk, const char *topic,
                                        const rd_kafka_message_t *orig, rd_kafka_headers_t *h,
                                        void *opaque)
{
    rd_kafka_vu_t vu[7];
    size_t n = 0;
    vu[n].vtype = RD_KAFKA_VTYPE_TOPIC;
    vu[n++].u.cstr = topic;
    if (orig->key) {
        vu[n].vtype = RD_KAFKA_VTYPE_KEY;
        vu[n].u.mem.ptr = orig->key;
        vu[n++].u.mem.size = orig->key_len;
    }
    vu[n].vtype = RD_KAFKA_VTYPE_VALUE;
    vu[n].u.mem.ptr = orig->payload;
    vu[n++].u.mem.size = orig->len;
    vu[n].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
    vu[n++].u.i = RD_KAFKA_MSG_F_COPY;
    vu[n].vtype = RD_KAFKA_VTYPE_HEADERS;
    vu[n++].u.headers = h;
    vu[n].vtype = RD_KAFKA_VTYPE_OPAQUE;
    vu[n++].u.ptr = opaque;
    rd_kafka_error_t *e = rd_kafka_produceva(rk, vu, n);
    if (!e)
        return RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_resp_err_t code = rd_kafka_error_code(e);
    rd_kafka_error_destroy(e);
    rd_kafka_headers_destroy(h);
    return code;
}

static int produce_dead(struct consume *c, struct part *p, struct pend *pe, int kind)
{
    struct ticket *t = calloc(1, sizeof(*t));
    if (!t)
        return -1;
    t->pend = pe;
    t->part = p;
    t->kind = kind;
    char keybuf[1024];
    const char *key =
        pe->decoded ? pe->ev.key_text : deadletter_key_text(pe->msg, keybuf, sizeof(keybuf));
    char action[32] = "", event_id[256] = "";
    if (!pe->decoded) {
        kafka_header_get(pe->msg, "dxsync-action", action, sizeof(action));
        kafka_header_get(pe->msg, "dxsync-event-id", event_id, sizeof(event_id));
    }
    struct deadletter_failure f = {
        .source = p->sub->route->from,
        .remote = c->remote,
        .collection = p->sub->coll->collection,
        .key = key,
        .action = pe->decoded ? event_action_name(pe->ev.action)
                  : action[0] ? action
                              : NULL,
        .event_id = pe->decoded   ? pe->ev.event_id
                    : event_id[0] ? event_id
                                  : NULL,
        .status = pe->fail_status,
        .code = pe->fail_code,
        .message = pe->fail_message,
        .attempts = pe->fail_attempts,
        .topic = p->sub->topic,
        .partition = p->partition,
        .offset = pe->msg->offset,
    };
    rd_kafka_resp_err_t err;
    if (kind == TICKET_DLQ) {
        rd_kafka_headers_t *h = deadletter_headers(pe->msg, &f);
        if (!h) {
            free(t);
            return -1;
        }
        err = produce_copy(c->prod, c->dlq_topic, pe->msg, h, t);
    } else {
        char *json = deadletter_error_event(&f, util_wall_ms());
        if (!json) {
            free(t);
            return -1;
        }
        err = kafka_produce(c->prod, c->errors_topic, RD_KAFKA_PARTITION_UA, key,
                            key ? strlen(key) : 0, json, strlen(json), RD_KAFKA_MSG_F_FREE, NULL, 0,
                            t);
        if (err)
            free(json);
    }
    if (err) {
        free(t);
        log_warn(COMP, "event=produce_failed topic=%s error=%s",
                 kind == TICKET_DLQ ? c->dlq_topic : c->errors_topic, rd_kafka_err2name(err));
        return -1;
    }
    pe->tickets[kind] = t;
    return 0;
}

static const char *missing_field(struct consume *c, const struct event *ev, const char *pk);
static const char *pk_known(struct consume *c, const char *collection);

/* Sends pe to the DLQ with an apply_failed error event; its offset is stored once Kafka has
 * acknowledged both. */
static void dead_letter(struct consume *c, struct part *p, struct pend *pe, long status,
                        const char *code, const char *message, int attempts)
{
    pe->state = PEND_DLQ;
    pe->fail_status = status;
    pe->fail_code = strdup(code ? code : "");
    pe->fail_message = strdup(message ? message : "");
    pe->fail_attempts = attempts;
    pe->acks = 2;
    pe->redo = 0;
    for (int k = 0; k < 2; k++)
        if (produce_dead(c, p, pe, k)) {
            pe->redo |= 1u << k;
            c->redo = true;
        }
    metrics_add(c->m_dead, 1);
    char keybuf[1024];
    const char *key =
        pe->decoded ? pe->ev.key_text : deadletter_key_text(pe->msg, keybuf, sizeof(keybuf));
    log_warn(COMP,
             "event=dead_lettered topic=%s partition=%" PRId32 " offset=%" PRId64
             " key=%s event_id=%s status=%ld code=%s attempts=%d message=\"%s\"",
             p->sub->topic, p->partition, pe->msg->offset, key ? key : "-",
             pe->decoded ? pe->ev.event_id : "-", status, code && code[0] ? code : "-", attempts,
             message ? message : "");
}

/* Produces again what Kafka refused (rare: message.timeout.ms is infinite). */
static void redo_dead(struct consume *c)
{
    if (!c->redo)
        return;
    c->redo = false;
    for (size_t i = 0; i < c->nparts; i++) {
        struct part *p = c->parts[i];
        for (size_t j = p->head; j < p->tail; j++) {
            struct pend *pe = p->q[j];
            if (pe->state != PEND_DLQ || !pe->redo)
                continue;
            for (int k = 0; k < 2; k++)
                if ((pe->redo & (1u << k)) && produce_dead(c, p, pe, k) == 0)
                    pe->redo &= ~(1u << k);
            if (pe->redo)
                c->redo = true; /* Kafka still refuses: next turn */
        }
    }
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    (void)rk;
    struct kafka_state *st = opaque;
    struct consume *c = st->user;
    struct ticket *t = msg->_private;
    if (msg->err)
        log_warn(COMP, "event=delivery_failed topic=%s error=%s", rd_kafka_topic_name(msg->rkt),
                 rd_kafka_err2name(msg->err));
    if (!t)
        return;
    struct pend *pe = t->pend;
    if (pe) {
        pe->tickets[t->kind] = NULL;
        if (msg->err) {
            pe->redo |= 1u << t->kind;
            c->redo = true;
        } else {
            pe->acks--;
            t->part->dirty = true;
        }
    }
    free(t);
}

/* ---------------------------------------------------------------------------- messages in */

static void on_message(struct consume *c, rd_kafka_message_t *msg)
{
    if (msg->err) {
        if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            log_warn(COMP, "event=consume_error topic=%s partition=%" PRId32 " error=%s msg=\"%s\"",
                     msg->rkt ? rd_kafka_topic_name(msg->rkt) : "-", msg->partition,
                     rd_kafka_err2name(msg->err), rd_kafka_message_errstr(msg));
        rd_kafka_message_destroy(msg);
        return;
    }
    struct part *p = part_of_message(c, msg);
    if (!p || p->leaving || msg->offset <= p->last_offset) {
        rd_kafka_message_destroy(msg); /* not ours (any more), or seen already */
        return;
    }
    struct pend *pe = calloc(1, sizeof(*pe));
    if (!pe || part_push(p, pe)) {
        /* cannot keep it: ask Kafka for it again later */
        free(pe);
        log_error(COMP, "event=out_of_memory topic=%s partition=%" PRId32, p->sub->topic,
                  p->partition);
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, p->sub->topic, p->partition)->offset = msg->offset;
        rd_kafka_seek_partitions(c->rk, l, 1000);
        rd_kafka_topic_partition_list_destroy(l);
        rd_kafka_message_destroy(msg);
        return;
    }
    pe->msg = msg;
    pe->arrived_ms = util_mono_ms();
    p->last_offset = msg->offset;
    c->pending_total++;
    char err[512];
    if (event_decode(msg->payload, msg->len, &pe->ev, err, sizeof(err)) == 0) {
        pe->decoded = true;
        if (strcmp(pe->ev.source, p->sub->route->from) != 0 ||
            strcmp(pe->ev.collection, p->sub->coll->collection) != 0)
            snprintf(err, sizeof(err), "event of %.100s/%.100s on topic %s", pe->ev.source,
                     pe->ev.collection, p->sub->topic);
        else
            err[0] = '\0';
    }
    if (err[0]) {
        metrics_add(c->m_malformed, 1);
        dead_letter(c, p, pe, 0, DEADLETTER_MALFORMED, err, 0);
    } else if (pe->ev.has_activity_id && p->has_recent &&
               recent_stale(&p->recent, pe->ev.key_text, pe->ev.activity_id)) {
        pe->state = PEND_DONE; /* a resend of what we already have, or older */
        p->dirty = true;
        metrics_add(c->m_stale, 1);
        log_debug(COMP,
                  "event=stale_skipped topic=%s partition=%" PRId32 " offset=%" PRId64
                  " key=%s activity_id=%" PRId64,
                  p->sub->topic, p->partition, msg->offset, pe->ev.key_text, pe->ev.activity_id);
    } else if (!plan_touches(&pe->ev, p->sub->coll)) {
        pe->state = PEND_DONE;
        p->dirty = true;
        metrics_add(c->m_skipped, 1);
    } else {
        plan_prune(&pe->ev, p->sub->coll);
        const char *field = missing_field(c, &pe->ev, pk_known(c, p->sub->coll->collection));
        if (field) {
            char why[512];
            snprintf(why, sizeof(why),
                     "field %.100s.%.100s is routed from %.40s but does not exist on %.40s "
                     "(Directus would drop its value without a word): add it there or remove it "
                     "from the route",
                     pe->ev.collection, field, pe->ev.source, c->remote);
            dead_letter(c, p, pe, 0, "FIELD_NOT_ON_REMOTE", why, 0);
            return;
        }
        pe->state = PEND_WAITING;
        p->waiting++;
    }
}

/* Takes what Kafka has for us: rebalances, errors and any forwarded message from the consumer
 * queue first, then each partition's own queue while that partition holds fewer than
 * queue_max events (backpressure: librdkafka stops fetching a partition whose queue is full).
 * Returns true when nothing more is waiting for a partition that has room. */
static bool drain(struct consume *c)
{
    int budget = DRAIN_BUDGET;
    rd_kafka_message_t *msg;
    while (budget > 0 && (msg = rd_kafka_consumer_poll(c->rk, 0))) {
        on_message(c, msg);
        budget--;
    }
    if (budget == 0)
        return false;
    for (size_t i = 0; i < c->nparts; i++) {
        struct part *p = c->parts[i];
        while (p->rkq && !p->leaving && p->tail - p->head < c->queue_max) {
            if (budget-- <= 0)
                return false;
            if (!(msg = rd_kafka_consume_queue(p->rkq, 0)))
                break;
            on_message(c, msg);
        }
        p->full = p->tail - p->head >= c->queue_max;
    }
    return true;
}

/* --------------------------------------------------------------------------------- batches */

/* Keeps the field names of a GET /fields/<c> answer; false when it lists none. */
static bool remote_fields_set(struct pkcache *pc, const struct http_response *r)
{
    cJSON *root = r->body ? cJSON_ParseWithLength(r->body, r->len) : NULL;
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
    cJSON *names = cJSON_IsArray(data) ? cJSON_CreateArray() : NULL;
    for (const cJSON *f = names ? data->child : NULL; f; f = f->next) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(f, "field");
        if (cJSON_IsString(name))
            cJSON_AddItemToArray(names, cJSON_CreateString(name->valuestring));
    }
    cJSON_Delete(root);
    if (!names)
        return false;
    cJSON_Delete(pc->fields);
    pc->fields = names;
    pc->fields_at_ms = util_mono_ms();
    return true;
}

/* GET /fields/<c> now: learns the primary key and the field names of pc's collection. Returns 0,
 * or -1 when the remote did not answer with them. */
static int fields_fetch(struct consume *c, struct pkcache *pc)
{
    char path[512], esc[256];
    struct http_response r;
    if (http_escape(pc->collection, esc, sizeof(esc)))
        return -1;
    snprintf(path, sizeof(path), "/fields/%s", esc);
    int rc = -1;
    if (http_request(c->http, "GET", path, NULL, &r) == 0 && r.klass == HTTP_OK) {
        char pk[sizeof(pc->pk)];
        apply_pk_from_fields(&r, pk, sizeof(pk));
        if (pk[0] && strcmp(pk, pc->pk) != 0) {
            util_strlcpy(pc->pk, pk, sizeof(pc->pk));
            log_info(COMP, "event=primary_key collection=%s field=%s", pc->collection, pk);
        }
        rc = remote_fields_set(pc, &r) ? 0 : -1;
    }
    http_response_free(&r);
    return rc;
}

static bool remote_has(const struct pkcache *pc, const char *field)
{
    for (const cJSON *n = pc->fields ? pc->fields->child : NULL; n; n = n->next)
        if (strcmp(n->valuestring, field) == 0)
            return true;
    return false;
}

/* A routed field the event writes a value to that the remote's collection does not have, or NULL.
 * A null is no loss (the remote has no such field to hold it), so only non-null values count;
 * an update that does not touch such a field applies (its value was reported with the change
 * that wrote it).
 * Directus drops unknown fields without a word when the sync user may write every field ("*"):
 * the value would be lost silently, so such an event fails instead (and an operator hears of
 * it). The list is read again (at most every 30 s) before a field is called missing, so a
 * field added on the remote is seen without a restart. */
static const char *missing_field(struct consume *c, const struct event *ev, const char *pk)
{
    struct pkcache *pc = NULL;
    for (size_t i = 0; i < c->npks; i++)
        if (strcmp(c->pks[i].collection, ev->collection) == 0)
            pc = &c->pks[i];
    if (!pc || !pc->fields || !cJSON_IsObject(ev->data))
        return NULL;
    /* an update writes the fields its delta names (with their values from data); the rest
     * write every field of data */
    bool update = ev->action == EVENT_UPDATE && cJSON_IsObject(ev->delta);
    for (int pass = 0; pass < 2; pass++) {
        const char *missing = NULL;
        for (const cJSON *it = update ? ev->delta->child : ev->data->child; it && !missing;
             it = it->next) {
            const cJSON *v = update ? cJSON_GetObjectItemCaseSensitive(ev->data, it->string) : it;
            if (!cJSON_IsNull(v ? v : it) && !(pk && strcmp(it->string, pk) == 0) &&
                !remote_has(pc, it->string))
                missing = it->string;
        }
        if (!missing || pass == 1 || util_mono_ms() - pc->fields_at_ms < 30000)
            return missing;
        if (fields_fetch(c, pc))
            pc->fields_at_ms = util_mono_ms(); /* unreachable: ask again later */
    }
    return NULL;
}

static const char *pk_known(struct consume *c, const char *collection)
{
    for (size_t i = 0; i < c->npks; i++)
        if (strcmp(c->pks[i].collection, collection) == 0)
            return c->pks[i].pk[0] ? c->pks[i].pk : NULL;
    return NULL;
}

static void pk_learn(struct consume *c, const char *collection, const char *pk)
{
    for (size_t i = 0; i < c->npks; i++)
        if (strcmp(c->pks[i].collection, collection) == 0)
            util_strlcpy(c->pks[i].pk, pk, sizeof(c->pks[i].pk));
}

static int plan_batch(struct consume *c, struct part *p)
{
    size_t n = p->tail - p->head;
    size_t bmax = (size_t)c->cfg->consumer.batch_max;
    if (n > c->scratch_cap) {
        const struct event **e = realloc(c->scratch_evs, n * sizeof(*e));
        if (!e)
            return -1;
        c->scratch_evs = e;
        c->scratch_cap = n;
    }
    for (size_t i = 0; i < n; i++) {
        struct pend *pe = p->q[p->head + i];
        c->scratch_evs[i] = pe->state == PEND_WAITING ? &pe->ev : NULL;
    }
    size_t k = plan_next(c->scratch_evs, n, bmax, c->scratch_idx);
    if (k == 0)
        return 0;
    struct pend **bp = realloc(p->bpend, k * sizeof(*bp));
    if (!bp)
        return -1;
    p->bpend = bp;
    for (size_t i = 0; i < k; i++) {
        bp[i] = p->q[p->head + c->scratch_idx[i]];
        c->scratch_evs[i] = &bp[i]->ev;
    }
    struct apply_params params = {
        .collection = p->sub->coll->collection,
        .coll = p->sub->coll,
        .pk = pk_known(c, p->sub->coll->collection),
        .item_attempts = c->cfg->consumer.item_attempts,
        .seed = c->seed++,
    };
    if (apply_batch_init(&p->batch, &params, c->scratch_evs, k))
        return -1;
    for (size_t i = 0; i < k; i++)
        bp[i]->state = PEND_IN_BATCH;
    p->waiting -= k;
    p->has_batch = true;
    p->st = PART_READY;
    metrics_observe(c->m_batch, (double)k);
    return 0;
}

/* Settles the batch: applied items are done, failed ones go to the DLQ. A batch cut short
 * (revoke, stop) gives its other items back to the queue. */
static void settle_batch(struct consume *c, struct part *p)
{
    for (size_t i = 0; i < p->batch.nitems; i++) {
        const struct apply_item *it = &p->batch.items[i];
        struct pend *pe = p->bpend[i];
        switch (it->state) {
        case APPLY_APPLIED:
            pe->state = PEND_DONE;
            metrics_add(c->m_applied[pe->ev.action], 1);
            break;
        case APPLY_FAILED:
            dead_letter(c, p, pe, it->status, it->code, it->message, it->attempts);
            break;
        case APPLY_PENDING:
            pe->state = PEND_WAITING;
            p->waiting++;
            break;
        }
    }
    apply_batch_free(&p->batch);
    p->has_batch = false;
    p->st = PART_IDLE;
    p->dirty = true;
}

static struct slot *slot_free(struct consume *c)
{
    for (size_t i = 0; i < c->nslots; i++)
        if (!c->slots[i].part)
            return &c->slots[i];
    return NULL;
}

/* Sends the batch's next request, or settles it when it has none left. */
static void send_next(struct consume *c, struct part *p)
{
    struct apply_request req;
    int rc = apply_batch_next(&p->batch, &req);
    if (rc == 0) {
        settle_batch(c, p);
        return;
    }
    struct slot *s = rc > 0 ? slot_free(c) : NULL;
    if (!s || http_prepare(c->http, s->easy, req.method, req.path, req.body, &p->resp) ||
        curl_multi_add_handle(c->multi, s->easy) != CURLM_OK) {
        log_error(COMP, "event=request_not_started topic=%s partition=%" PRId32, p->sub->topic,
                  p->partition);
        http_response_free(&p->resp);
        p->st = PART_WAITING;
        p->wake_ms = util_mono_ms() + 1000;
        return;
    }
    s->part = p;
    p->slot = s;
    p->st = PART_IN_FLIGHT;
    p->sent_ms = util_mono_ms();
    p->sent_step = req.step;
    c->in_flight++;
    log_debug(COMP, "event=request topic=%s partition=%" PRId32 " method=%s path=%s items=%zu",
              p->sub->topic, p->partition, req.method, req.path, req.nitems);
}

static void count_request(struct consume *c, const struct part *p, const struct http_response *r)
{
    char labels[160];
    snprintf(labels, sizeof(labels), "remote=\"%s\",step=\"%s\",class=\"%s\"", c->remote,
             apply_step_name(p->sent_step), http_class_name(r->klass));
    metrics_add(metrics_counter(c->m, "dxsync_consumer_requests_total",
                                "Requests sent to the remote Directus, by step and outcome",
                                labels),
                1);
    metrics_observe(c->m_latency, r->seconds);
}

/* A transfer ended: feed its answer to the batch. */
static void on_transfer(struct consume *c, struct slot *s, CURLcode result)
{
    struct part *p = s->part;
    if (!p) {
        curl_multi_remove_handle(c->multi, s->easy);
        return;
    }
    http_finish(s->easy, result, &p->resp);
    curl_multi_remove_handle(c->multi, s->easy);
    s->part = NULL;
    p->slot = NULL;
    c->in_flight--;
    struct http_response *r = &p->resp;
    count_request(c, p, r);
    if (r->klass != HTTP_OK)
        log_debug(COMP,
                  "event=answer topic=%s partition=%" PRId32 " step=%s status=%ld class=%s "
                  "code=%s message=\"%s\"",
                  p->sub->topic, p->partition, apply_step_name(p->sent_step), r->status,
                  http_class_name(r->klass), r->code[0] ? r->code : "-", r->message);
    if (r->klass == HTTP_OK)
        remote_up(c);
    int64_t delay = 0;
    enum apply_verdict v = apply_batch_answer(&p->batch, r, &delay);
    if (p->sent_step == APPLY_STEP_FIELDS && !p->batch.need_fields) {
        if (p->batch.pk_guessed)
            log_warn(COMP,
                     "event=primary_key_unknown collection=%s assumed=id status=%ld "
                     "message=\"%s\"",
                     p->sub->coll->collection, r->status, r->message);
        else
            log_info(COMP, "event=primary_key collection=%s field=%s", p->sub->coll->collection,
                     p->batch.pk);
        pk_learn(c, p->sub->coll->collection, p->batch.pk);
    }
    if (v == APPLY_RETRY_OUTAGE) {
        remote_down(c, r);
        metrics_add(c->m_retry_outage, 1);
    } else if (v == APPLY_RETRY_ITEM) {
        metrics_add(c->m_retry_item, 1);
        log_info(COMP,
                 "event=item_retry topic=%s partition=%" PRId32 " status=%ld code=%s "
                 "delay_ms=%" PRId64,
                 p->sub->topic, p->partition, r->status, r->code[0] ? r->code : "-", delay);
    }
    http_response_free(r);
    switch (v) {
    case APPLY_DONE:
        settle_batch(c, p);
        break;
    case APPLY_NEXT:
        p->st = PART_READY;
        break;
    case APPLY_RETRY_OUTAGE:
    case APPLY_RETRY_ITEM:
        p->st = PART_WAITING;
        p->outage_wait = v == APPLY_RETRY_OUTAGE;
        p->wake_ms = util_mono_ms() + delay;
        break;
    }
}

static void transfers(struct consume *c)
{
    int running;
    curl_multi_perform(c->multi, &running);
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(c->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        for (size_t i = 0; i < c->nslots; i++)
            if (c->slots[i].easy == m->easy_handle) {
                on_transfer(c, &c->slots[i], m->data.result);
                break;
            }
    }
}

/* Whether p should start a batch now: something waits, and either linger is off, the batch
 * would be full, or the oldest waiting event has lingered long enough. */
static bool batch_due(struct consume *c, const struct part *p, bool drained, int64_t now,
                      int64_t *wake)
{
    if (!p->waiting)
        return false;
    size_t bmax = (size_t)c->cfg->consumer.batch_max;
    if (p->waiting >= bmax)
        return true;
    if (!drained)
        return false; /* more is on its way from Kafka: fill the batch first */
    int64_t linger = c->cfg->consumer.linger_ms;
    if (linger <= 0)
        return true;
    for (size_t i = p->head; i < p->tail; i++)
        if (p->q[i]->state == PEND_WAITING) {
            int64_t due = p->q[i]->arrived_ms + linger;
            if (due <= now)
                return true;
            if (due < *wake)
                *wake = due;
            return false;
        }
    return false;
}

/* Starts requests, partitions in turn, while slots are free. Returns the next time something
 * is due (a backoff or linger), or INT64_MAX. */
static int64_t schedule(struct consume *c, bool drained)
{
    int64_t now = util_mono_ms(), wake = INT64_MAX;
    size_t n = c->nparts;
    for (size_t k = 0; k < n && c->in_flight < c->nslots; k++) {
        struct part *p = c->parts[(c->rr + k) % n];
        if (p->leaving || c->stopping)
            continue;
        if (p->st == PART_WAITING) {
            if (p->wake_ms > now) {
                if (p->wake_ms < wake)
                    wake = p->wake_ms;
                continue;
            }
            p->st = PART_READY;
        }
        if (p->st == PART_IDLE && batch_due(c, p, drained, now, &wake) && plan_batch(c, p)) {
            log_error(COMP, "event=out_of_memory what=batch");
            continue;
        }
        if (p->st == PART_READY)
            send_next(c, p);
    }
    if (n)
        c->rr = (c->rr + 1) % n;
    /* what could not start for want of a slot is due as soon as one frees up */
    for (size_t k = 0; k < n; k++) {
        struct part *p = c->parts[k];
        if (p->st == PART_WAITING && p->wake_ms < wake)
            wake = p->wake_ms;
    }
    return wake;
}

/* ----------------------------------------------------------------------------- rebalances */

/* Lets the requests of the leaving partitions finish (bounded by the request timeout),
 * settles what they applied and stores those offsets. */
static void finish_leaving(struct consume *c)
{
    int64_t deadline = util_mono_ms() + c->cfg->consumer.request_timeout_ms + 2000;
    for (;;) {
        bool busy = false;
        for (size_t i = 0; i < c->nparts; i++)
            if (c->parts[i]->leaving && c->parts[i]->slot)
                busy = true;
        if (!busy || util_mono_ms() > deadline)
            break;
        curl_multi_poll(c->multi, NULL, 0, 50, NULL);
        transfers(c);
    }
    for (size_t i = 0; i < c->nparts; i++) {
        struct part *p = c->parts[i];
        if (p->leaving && p->has_batch && !p->slot)
            settle_batch(c, p);
    }
    /* the DLQ copies of what failed: their acknowledgements let the offsets move */
    rd_kafka_flush(c->prod, 5000);
    for (size_t i = 0; i < c->nparts; i++)
        if (c->parts[i]->leaving)
            part_advance(c, c->parts[i]);
}

static void commit_sync(struct consume *c)
{
    rd_kafka_resp_err_t err = rd_kafka_commit(c->rk, NULL, 0);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        log_warn(COMP, "event=commit_failed error=%s", rd_kafka_err2name(err));
}

static void on_revoke(struct consume *c, const rd_kafka_topic_partition_list_t *l)
{
    for (int i = 0; i < l->cnt; i++) {
        struct part *p = part_find(c, l->elems[i].topic, l->elems[i].partition);
        if (p)
            p->leaving = true;
    }
    finish_leaving(c);
    commit_sync(c);
    for (int i = 0; i < l->cnt; i++) {
        struct part *p = part_find(c, l->elems[i].topic, l->elems[i].partition);
        if (p) {
            log_info(COMP, "event=partition_revoked topic=%s partition=%" PRId32 " dropped=%zu",
                     p->sub->topic, p->partition, p->tail - p->head);
            part_remove(c, p);
        }
    }
}

static void on_assign(struct consume *c, const rd_kafka_topic_partition_list_t *l)
{
    for (int i = 0; i < l->cnt; i++) {
        const struct routes_sub *sub = routes_find(c->subs, c->nsubs, l->elems[i].topic);
        if (!sub || part_find(c, l->elems[i].topic, l->elems[i].partition))
            continue;
        if (!part_add(c, sub, l->elems[i].partition)) {
            log_error(COMP, "event=out_of_memory what=partition");
            continue;
        }
        log_info(COMP, "event=partition_assigned topic=%s partition=%" PRId32, sub->topic,
                 l->elems[i].partition);
    }
}

/* Each assigned partition gets its own queue, no longer forwarded to the consumer queue, so
 * that a partition with enough events waiting is simply not read (no pause, no refetch). */
static void take_queues(struct consume *c, const rd_kafka_topic_partition_list_t *l)
{
    for (int i = 0; i < l->cnt; i++) {
        struct part *p = part_find(c, l->elems[i].topic, l->elems[i].partition);
        if (!p || p->rkq)
            continue;
        p->rkq = rd_kafka_queue_get_partition(c->rk, l->elems[i].topic, l->elems[i].partition);
        if (!p->rkq) {
            log_warn(COMP, "event=partition_queue_missing topic=%s partition=%" PRId32,
                     p->sub->topic, p->partition);
            continue;
        }
        rd_kafka_queue_forward(p->rkq, NULL);
        if (c->wake[1] >= 0)
            rd_kafka_queue_io_event_enable(p->rkq, c->wake[1], "1", 1);
    }
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *l, void *opaque)
{
    struct kafka_state *st = opaque;
    struct consume *c = st->user;
    bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    rd_kafka_error_t *e = NULL;
    rd_kafka_resp_err_t ae = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        on_assign(c, l);
        if (coop)
            e = rd_kafka_incremental_assign(rk, l);
        else
            ae = rd_kafka_assign(rk, l);
        take_queues(c, l);
    } else {
        on_revoke(c, l);
        if (coop)
            e = rd_kafka_incremental_unassign(rk, l);
        else
            ae = rd_kafka_assign(rk, NULL);
    }
    if (e) {
        log_error(COMP, "event=assign_failed error=\"%s\"", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    } else if (ae) {
        log_error(COMP, "event=assign_failed error=%s", rd_kafka_err2name(ae));
    }
}

/* ------------------------------------------------------------------------------- statistics */

static void stats(struct consume *c, int64_t now)
{
    if (now < c->next_stats_ms)
        return;
    c->next_stats_ms = now + STATS_EVERY_MS;
    int64_t lag = 0;
    for (size_t i = 0; i < c->nparts; i++) {
        struct part *p = c->parts[i];
        int64_t lo, hi;
        if (rd_kafka_get_watermark_offsets(c->rk, p->sub->topic, p->partition, &lo, &hi) || hi < 0)
            continue;
        int64_t next;
        if (p->head < p->tail)
            next = p->q[p->head]->msg->offset;
        else if (p->last_offset >= 0)
            next = p->last_offset + 1;
        else
            continue;
        if (hi > next)
            lag += hi - next;
    }
    metrics_set(c->m_lag, (double)lag);
    metrics_set(c->m_pending, (double)c->pending_total);
    metrics_set(c->m_in_flight, (double)c->in_flight);
    metrics_heartbeat(c->m);
}

/* ------------------------------------------------------------------------------ set-up */

static void register_metrics(struct consume *c)
{
    char l[160];
    for (int a = 0; a < 4; a++) {
        snprintf(l, sizeof(l), "remote=\"%s\",action=\"%s\"", c->remote,
                 event_action_name((enum event_action)a));
        c->m_applied[a] = metrics_counter(c->m, "dxsync_consumer_events_applied_total",
                                          "Events the remote holds, by action", l);
    }
    snprintf(l, sizeof(l), "remote=\"%s\"", c->remote);
    c->m_skipped = metrics_counter(c->m, "dxsync_consumer_events_skipped_total",
                                   "Updates that touch no routed field", l);
    c->m_stale = metrics_counter(c->m, "dxsync_consumer_events_stale_total",
                                 "Events older than one already seen for their key (resends)", l);
    c->m_dead = metrics_counter(c->m, "dxsync_consumer_events_dead_lettered_total",
                                "Events sent to the DLQ", l);
    c->m_malformed = metrics_counter(c->m, "dxsync_consumer_events_malformed_total",
                                     "Messages that are not valid events (also dead-lettered)", l);
    c->m_latency = metrics_histogram(c->m, "dxsync_consumer_request_seconds",
                                     "Latency of requests to the remote", l, NULL, 0);
    static const double sizes[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000};
    c->m_batch = metrics_histogram(c->m, "dxsync_consumer_batch_size", "Events per batch", l, sizes,
                                   DX_ARRAY_LEN(sizes));
    c->m_lag = metrics_gauge(c->m, "dxsync_consumer_lag_events",
                             "Events in the assigned partitions not applied yet", l);
    c->m_pending = metrics_gauge(c->m, "dxsync_consumer_pending_events",
                                 "Events held in memory, waiting or in flight", l);
    c->m_in_flight = metrics_gauge(c->m, "dxsync_consumer_requests_in_flight",
                                   "Requests to the remote in flight", l);
    c->m_up = metrics_gauge(c->m, "dxsync_consumer_remote_up",
                            "1 while the remote answers, 0 during an outage", l);
    metrics_set(c->m_up, 1);
    snprintf(l, sizeof(l), "remote=\"%s\",reason=\"outage\"", c->remote);
    c->m_retry_outage = metrics_counter(c->m, "dxsync_consumer_retries_total",
                                        "Requests retried after a backoff", l);
    snprintf(l, sizeof(l), "remote=\"%s\",reason=\"item\"", c->remote);
    c->m_retry_item = metrics_counter(c->m, "dxsync_consumer_retries_total",
                                      "Requests retried after a backoff", l);
}

static int make_producer(struct consume *c, char *err, size_t errlen)
{
    /* a dead letter is as large as the event it copies */
    static const char *const defaults[] = {"linger.ms",
                                           "5",
                                           "message.max.bytes",
                                           KAFKA_MESSAGE_MAX_BYTES,
                                           "queue.buffering.max.kbytes",
                                           KAFKA_QUEUE_MAX_KBYTES,
                                           NULL};
    static const char *const forced[] = {"enable.idempotence", "true", "acks", "all",
                                         "message.timeout.ms", "0",    NULL};
    c->pst.component = COMP;
    c->pst.user = c;
    rd_kafka_conf_t *conf = kafka_conf_new(c->cfg, &c->pst, defaults, forced, err, errlen);
    if (!conf)
        return -1;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    if (!(c->prod = kafka_client_new(RD_KAFKA_PRODUCER, conf, "kafka producer", err, errlen)))
        return -1;
    return 0;
}

static int make_consumer(struct consume *c, char *err, size_t errlen)
{
    /* Prefetch little: events wait in our own queues, and held messages pin librdkafka's
     * fetch buffers, so small fetches keep the RSS small. */
    char min_msgs[16];
    snprintf(min_msgs, sizeof(min_msgs), "%zu", c->queue_max);
    const char *const defaults[] = {"queued.min.messages",
                                    min_msgs,
                                    "queued.max.messages.kbytes",
                                    "2048",
                                    "fetch.max.bytes",
                                    "1048576",
                                    "max.partition.fetch.bytes",
                                    "262144",
                                    "fetch.wait.max.ms",
                                    "100",
                                    "auto.commit.interval.ms",
                                    "1000",
                                    "session.timeout.ms",
                                    "10000",
                                    NULL};
    const char *forced[] = {"group.id",
                            c->group,
                            "enable.auto.offset.store",
                            "false",
                            "enable.auto.commit",
                            "true",
                            "auto.offset.reset",
                            "earliest",
                            "enable.partition.eof",
                            "false",
                            NULL};
    c->cst.component = COMP;
    c->cst.user = c;
    rd_kafka_conf_t *conf = kafka_conf_new(c->cfg, &c->cst, defaults, forced, err, errlen);
    if (!conf)
        return -1;
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    if (!(c->rk = kafka_client_new(RD_KAFKA_CONSUMER, conf, "kafka consumer", err, errlen)))
        return -1;
    rd_kafka_poll_set_consumer(c->rk);
    c->queue = rd_kafka_queue_get_consumer(c->rk);
    if (pipe(c->wake) == 0) {
        fcntl(c->wake[0], F_SETFL, O_NONBLOCK);
        fcntl(c->wake[1], F_SETFL, O_NONBLOCK);
        rd_kafka_queue_io_event_enable(c->queue, c->wake[1], "1", 1);
    } else {
        c->wake[0] = c->wake[1] = -1;
    }
    return 0;
}

/* Every topic we read or write exists before we subscribe (the start order never matters).
 * Kafka may not be up yet: retry until it is, or until asked to stop. */
static int ensure_topics(struct consume *c)
{
    const char **topics = calloc(c->nsubs + 2, sizeof(*topics));
    if (!topics)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < c->nsubs; i++)
        topics[n++] = c->subs[i].topic;
    topics[n++] = c->errors_topic;
    topics[n++] = c->dlq_topic;
    struct backoff b;
    backoff_init(&b, 500, 30000, (uint64_t)util_wall_ms());
    int rc = -1;
    char err[1024];
    while (!signals_stop) {
        if (kafka_ensure_topics(c->prod, c->cfg, topics, n, 15000, err, sizeof(err)) == 0) {
            rc = 0;
            break;
        }
        int64_t d = backoff_next(&b);
        log_warn(COMP, "event=ensure_topics_failed error=\"%s\" retry_ms=%" PRId64, err, d);
        util_sleep_ms(d, &signals_stop);
    }
    free(topics);
    return rc;
}

static int subscribe(struct consume *c)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)c->nsubs);
    for (size_t i = 0; i < c->nsubs; i++)
        rd_kafka_topic_partition_list_add(l, c->subs[i].topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(c->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err) {
        log_error(COMP, "event=subscribe_failed error=%s", rd_kafka_err2name(err));
        return -1;
    }
    return 0;
}

static int setup(struct consume *c, char *err, size_t errlen)
{
    if (kafka_group_apply(c->cfg, c->remote, c->group, sizeof(c->group)) ||
        kafka_topic_errors(c->cfg, c->errors_topic, sizeof(c->errors_topic)) ||
        kafka_topic_dlq(c->cfg, c->remote, c->dlq_topic, sizeof(c->dlq_topic))) {
        snprintf(err, errlen, "topic or group name too long");
        return -1;
    }
    size_t bmax = (size_t)c->cfg->consumer.batch_max;
    c->queue_max = bmax * 2 < 200 ? 200 : bmax * 2;
    c->seed = (uint64_t)util_wall_ms() ^ ((uint64_t)getpid() << 32);
    c->pks = calloc(c->nsubs, sizeof(*c->pks));
    c->scratch_idx = calloc(bmax, sizeof(*c->scratch_idx));
    if (!c->pks || !c->scratch_idx) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < c->nsubs; i++) {
        bool seen = false;
        for (size_t j = 0; j < c->npks; j++)
            if (strcmp(c->pks[j].collection, c->subs[i].coll->collection) == 0)
                seen = true;
        if (!seen)
            c->pks[c->npks++].collection = c->subs[i].coll->collection;
    }
    c->http = http_client_new(c->inst->url, c->inst->token, c->cfg->consumer.request_timeout_ms,
                              err, errlen);
    if (!c->http)
        return -1;
    /* Learn the primary keys now, so the first change is not delayed by it; what cannot be
     * learnt now (remote down) is learnt by the first batch. */
    for (size_t i = 0; i < c->npks; i++)
        fields_fetch(c, &c->pks[i]);
    c->multi = curl_multi_init();
    c->nslots = (size_t)c->cfg->consumer.max_in_flight;
    c->slots = calloc(c->nslots, sizeof(*c->slots));
    if (!c->multi || !c->slots) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)c->nslots + 2);
    for (size_t i = 0; i < c->nslots; i++)
        if (!(c->slots[i].easy = curl_easy_init())) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    register_metrics(c);
    return 0;
}

static void teardown(struct consume *c)
{
    while (c->nparts)
        part_remove(c, c->parts[c->nparts - 1]);
    free(c->parts);
    if (c->queue)
        rd_kafka_queue_destroy(c->queue);
    if (c->rk)
        rd_kafka_destroy(c->rk);
    if (c->prod) {
        rd_kafka_flush(c->prod, 10000);
        rd_kafka_purge(c->prod, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(c->prod, 0); /* delivery reports of the purged: their tickets */
        rd_kafka_destroy(c->prod);
    }
    for (size_t i = 0; c->slots && i < c->nslots; i++)
        if (c->slots[i].easy) {
            curl_multi_remove_handle(c->multi, c->slots[i].easy);
            curl_easy_cleanup(c->slots[i].easy);
        }
    free(c->slots);
    if (c->multi)
        curl_multi_cleanup(c->multi);
    http_client_free(c->http);
    if (c->wake[0] >= 0) {
        close(c->wake[0]);
        close(c->wake[1]);
    }
    for (size_t i = 0; c->pks && i < c->npks; i++)
        cJSON_Delete(c->pks[i].fields);
    free(c->pks);
    free(c->scratch_evs);
    free(c->scratch_idx);
    free(c->subs);
}

/* ------------------------------------------------------------------------------- the loop */

static void wait_for_work(struct consume *c, int64_t wake)
{
    int64_t now = util_mono_ms();
    int64_t t = wake == INT64_MAX ? MAX_WAIT_MS : wake - now;
    if (t < 0)
        t = 0;
    if (t > MAX_WAIT_MS)
        t = MAX_WAIT_MS;
    struct curl_waitfd wfd = {.fd = c->wake[0], .events = CURL_WAIT_POLLIN};
    curl_multi_poll(c->multi, c->wake[0] >= 0 ? &wfd : NULL, c->wake[0] >= 0 ? 1 : 0, (int)t, NULL);
    char buf[64];
    while (c->wake[0] >= 0 && read(c->wake[0], buf, sizeof(buf)) > 0)
        ;
}

/* The clean stop: let the requests in flight finish, settle what they did, wait for the DLQ
 * acknowledgements, store and commit. */
static void stop(struct consume *c)
{
    c->stopping = true;
    log_info(COMP, "event=stopping in_flight=%zu pending=%zu", c->in_flight, c->pending_total);
    for (size_t i = 0; i < c->nparts; i++)
        c->parts[i]->leaving = true;
    finish_leaving(c);
    commit_sync(c);
    rd_kafka_resp_err_t err = rd_kafka_consumer_close(c->rk);
    if (err)
        log_warn(COMP, "event=close_failed error=%s", rd_kafka_err2name(err));
}

int consume_run(const struct config *cfg, const char *remote, struct metrics *m)
{
    struct consume c;
    memset(&c, 0, sizeof(c));
    c.cfg = cfg;
    c.remote = remote;
    c.m = m;
    c.wake[0] = c.wake[1] = -1;
    c.inst = config_instance_find(cfg, remote);
    char err[1024];
    int rc = 1;
    if (!c.inst) {
        log_error(COMP, "event=unknown_remote remote=%s", remote);
        return 2;
    }
    if (routes_into(cfg, remote, &c.subs, &c.nsubs, err, sizeof(err))) {
        log_error(COMP, "event=setup_failed error=\"%s\"", err);
        return 1;
    }
    if (c.nsubs == 0) {
        log_error(COMP,
                  "event=nothing_routed remote=%s reason=\"no route has \\\"to\\\": "
                  "\\\"%s\\\"\"",
                  remote, remote);
        free(c.subs);
        return 2;
    }
    if (setup(&c, err, sizeof(err)) || make_producer(&c, err, sizeof(err)) ||
        make_consumer(&c, err, sizeof(err))) {
        log_error(COMP, "event=setup_failed error=\"%s\"", err);
        goto out;
    }
    metrics_set_stall_ms(m, (int64_t)cfg->consumer.request_timeout_ms * 2 + 60000);
    if (ensure_topics(&c)) {
        rc = signals_stop ? 0 : 1;
        goto out;
    }
    if (subscribe(&c))
        goto out;
    log_info(COMP,
             "event=started remote=%s url=%s group=%s topics=%zu batch_max=%d "
             "max_in_flight=%d linger_ms=%d",
             remote, c.inst->url, c.group, c.nsubs, cfg->consumer.batch_max,
             cfg->consumer.max_in_flight, cfg->consumer.linger_ms);
    while (!signals_stop && !c.cst.fatal && !c.pst.fatal) {
        bool drained = drain(&c);
        rd_kafka_poll(c.prod, 0);
        redo_dead(&c);
        transfers(&c);
        int64_t wake = schedule(&c, drained);
        transfers(&c);
        for (size_t i = 0; i < c.nparts; i++)
            if (c.parts[i]->dirty)
                part_advance(&c, c.parts[i]);
        int64_t now = util_mono_ms();
        remote_check_notify(&c, now);
        stats(&c, now);
        if (!drained)
            wake = now; /* Kafka has more for us */
        /* a free slot and a ready partition: go round again at once */
        for (size_t i = 0; i < c.nparts; i++) {
            const struct part *p = c.parts[i];
            if ((p->st == PART_READY && c.in_flight < c.nslots) ||
                (p->full && p->tail - p->head < c.queue_max))
                wake = now; /* a request to send, or room for what Kafka holds for p */
        }
        if (c.down_since_ms && !c.down_notified) {
            int64_t due = c.down_since_ms + (int64_t)cfg->consumer.retry_notify_after_s * 1000;
            if (due < wake)
                wake = due;
        }
        wait_for_work(&c, wake);
    }
    if (c.cst.fatal || c.pst.fatal) {
        log_error(COMP, "event=kafka_fatal reason=\"%s\"",
                  c.cst.fatal ? c.cst.fatal_reason : c.pst.fatal_reason);
        metrics_set_health(m, false, "kafka fatal error");
        rc = 1;
    } else {
        rc = 0;
    }
    stop(&c);
    log_info(COMP, "event=stopped remote=%s", remote);
out:
    teardown(&c);
    return rc;
}
