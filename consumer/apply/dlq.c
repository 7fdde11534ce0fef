/* dlq.c: each dead letter holds its two messages' tickets (the delivery opaques), so a delivery
 * report finds its letter without reaching into the event; the letter lives until both reports
 * are in, and forgets its event when the event goes first (dlq_cancel). */
#include "dlq.h"

#include "deadletter.h"
#include "log.h"
#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COMP "consumer"

enum { KIND_DLQ = 0, KIND_ERROR = 1, NKINDS = 2 };

struct dlq_ticket {
    struct dlq_letter *letter;
    int kind;
};

struct dlq_letter {
    struct dlq *d;
    struct dlq_letter *prev, *next; /* in d->letters */
    struct partq *q;                /* NULL once cancelled */
    struct partq_ev *e;             /* idem */
    const struct routes_sub *sub;
    int32_t partition;
    long status;
    char *code;
    char *message;
    int attempts;
    struct dlq_ticket tickets[NKINDS];
    int acks;        /* acknowledgements still awaited */
    int outstanding; /* produced, delivery report not in yet */
    unsigned redo;   /* bit per kind to produce again */
};

struct dlq {
    const struct config *cfg;
    const char *remote;
    char topic[256];
    char errors_topic[256];
    struct kafka_state st;
    rd_kafka_t *prod;
    struct dlq_letter *letters; /* every live letter */
    size_t unsettled;
    bool redo;
    struct metrics *m;
    struct metric *m_dead;
};

static void letter_unlink_free(struct dlq_letter *l)
{
    struct dlq *d = l->d;
    if (l->prev)
        l->prev->next = l->next;
    else
        d->letters = l->next;
    if (l->next)
        l->next->prev = l->prev;
    free(l->code);
    free(l->message);
    free(l);
}

/* A letter is finished when no report is still to come and its event is settled (acknowledged)
 * or gone (cancelled): either way l->e is NULL. */
static void letter_maybe_free(struct dlq_letter *l)
{
    if (l->outstanding == 0 && !l->e)
        letter_unlink_free(l);
}

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
    rd_kafka_headers_destroy(h); /* not taken over on failure */
    return code;
}

/* Produces the letter's message of kind. Returns 0 or -1 (Kafka refused it now, or memory). */
static int produce_kind(struct dlq *d, struct dlq_letter *l, int kind)
{
    const struct partq_ev *e = l->e;
    const rd_kafka_message_t *msg = e->msg;
    char keybuf[1024];
    const char *key =
        e->decoded ? e->ev.key_text : deadletter_key_text(msg, keybuf, sizeof(keybuf));
    char action[32] = "", event_id[256] = "";
    if (!e->decoded) {
        kafka_header_get(msg, "dxsync-action", action, sizeof(action));
        kafka_header_get(msg, "dxsync-event-id", event_id, sizeof(event_id));
    }
    struct deadletter_failure f = {
        .source = l->sub->route->from,
        .remote = d->remote,
        .collection = l->sub->coll->collection,
        .key = key,
        .action = e->decoded  ? event_action_name(e->ev.action)
                  : action[0] ? action
                              : NULL,
        .event_id = e->decoded    ? e->ev.event_id
                    : event_id[0] ? event_id
                                  : NULL,
        .status = l->status,
        .code = l->code,
        .message = l->message,
        .attempts = l->attempts,
        .topic = l->sub->topic,
        .partition = l->partition,
        .offset = e->offset,
    };
    struct dlq_ticket *t = &l->tickets[kind];
    rd_kafka_resp_err_t err;
    if (kind == KIND_DLQ) {
        rd_kafka_headers_t *h = deadletter_headers(msg, &f);
        if (!h)
            return -1;
        err = produce_copy(d->prod, d->topic, msg, h, t);
    } else {
        char *json = deadletter_error_event(&f, util_wall_ms());
        if (!json)
            return -1;
        err = kafka_produce(d->prod, d->errors_topic, RD_KAFKA_PARTITION_UA, key,
                            key ? strlen(key) : 0, json, strlen(json), RD_KAFKA_MSG_F_FREE, NULL, 0,
                            t);
        if (err)
            free(json);
    }
    if (err) {
        log_warn(COMP, "event=produce_failed topic=%s error=%s",
                 kind == KIND_DLQ ? d->topic : d->errors_topic, rd_kafka_err2name(err));
        return -1;
    }
    l->outstanding++;
    return 0;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    (void)rk;
    struct kafka_state *st = opaque;
    struct dlq *d = st->user;
    struct dlq_ticket *t = msg->_private;
    if (msg->err)
        log_warn(COMP, "event=delivery_failed topic=%s error=%s", rd_kafka_topic_name(msg->rkt),
                 rd_kafka_err2name(msg->err));
    if (!t)
        return; /* a remote event: nothing waits for it */
    struct dlq_letter *l = t->letter;
    l->outstanding--;
    if (l->e) {
        if (msg->err) {
            l->redo |= 1u << t->kind;
            d->redo = true;
        } else if (--l->acks == 0) {
            partq_set(l->q, l->e, PARTQ_DONE);
            l->e->letter = NULL;
            l->e = NULL;
            l->q = NULL;
            d->unsettled--;
        }
    }
    letter_maybe_free(l);
}

/* The status page's view: the count by code, the latest few, the last error. */
static void note_dead_letter(struct dlq *d, const struct partq_ev *e, const struct routes_sub *sub,
                             int32_t partition, const char *key, const struct dlq_why *why)
{
    const char *code = why->code && why->code[0] ? why->code : "UNKNOWN";
    char esc[192], l[320];
    snprintf(l, sizeof(l), "remote=\"%s\",code=\"%s\"", d->remote,
             metrics_label_escape(esc, sizeof(esc), code));
    metrics_add(metrics_counter(d->m, "dxsync_consumer_dead_letters_by_code_total",
                                "Events sent to the DLQ, by error code", l),
                1);
    struct metrics_dead_letter dl = {.time_ms = util_wall_ms(),
                                     .topic = sub->topic,
                                     .partition = partition,
                                     .offset = e->offset,
                                     .collection = sub->coll->collection,
                                     .key = key,
                                     .status = why->status,
                                     .code = code,
                                     .message = why->message};
    metrics_note_dead_letter(d->m, &dl);
    char text[1200];
    snprintf(text, sizeof(text), "dead letter: %s key %s: %s %s", sub->topic, key ? key : "", code,
             why->message ? why->message : "");
    metrics_note_error(d->m, text);
}

int dlq_send(struct dlq *d, struct partq *q, struct partq_ev *e, const struct routes_sub *sub,
             int32_t partition, const struct dlq_why *why)
{
    partq_set(q, e, PARTQ_DEAD);
    metrics_add(d->m_dead, 1);
    char keybuf[1024];
    const char *key =
        e->decoded ? e->ev.key_text : deadletter_key_text(e->msg, keybuf, sizeof(keybuf));
    note_dead_letter(d, e, sub, partition, key, why);
    log_warn(COMP,
             "event=dead_lettered topic=%s partition=%" PRId32 " offset=%" PRId64
             " key=%s event_id=%s status=%ld code=%s attempts=%d message=%s",
             sub->topic, partition, e->offset, LOG_Q(key),
             LOG_Q(e->decoded ? e->ev.event_id : NULL), why->status,
             LOG_Q(why->code && why->code[0] ? why->code : NULL), why->attempts,
             LOG_Q(why->message ? why->message : ""));
    struct dlq_letter *l = calloc(1, sizeof(*l));
    if (!l || !(l->code = strdup(why->code ? why->code : "")) ||
        !(l->message = strdup(why->message ? why->message : ""))) {
        if (l) {
            free(l->code);
            free(l);
        }
        log_error(COMP, "event=out_of_memory what=dead_letter topic=%s offset=%" PRId64, sub->topic,
                  e->offset);
        return -1;
    }
    l->d = d;
    l->q = q;
    l->e = e;
    l->sub = sub;
    l->partition = partition;
    l->status = why->status;
    l->attempts = why->attempts;
    l->acks = NKINDS;
    for (int k = 0; k < NKINDS; k++) {
        l->tickets[k].letter = l;
        l->tickets[k].kind = k;
    }
    l->next = d->letters;
    if (d->letters)
        d->letters->prev = l;
    d->letters = l;
    e->letter = l;
    d->unsettled++;
    for (int k = 0; k < NKINDS; k++)
        if (produce_kind(d, l, k)) {
            l->redo |= 1u << k;
            d->redo = true;
        }
    return 0;
}

void dlq_cancel(struct dlq_letter *l)
{
    if (!l || !l->e)
        return;
    l->e->letter = NULL;
    l->e = NULL;
    l->q = NULL;
    l->d->unsettled--;
    letter_maybe_free(l);
}

void dlq_poll(struct dlq *d)
{
    rd_kafka_poll(d->prod, 0);
    if (!d->redo)
        return;
    d->redo = false;
    for (struct dlq_letter *l = d->letters, *next; l; l = next) {
        next = l->next;
        if (!l->redo || !l->e)
            continue;
        for (int k = 0; k < NKINDS; k++)
            if ((l->redo & (1u << k)) && produce_kind(d, l, k) == 0)
                l->redo &= ~(1u << k);
        if (l->redo)
            d->redo = true; /* Kafka still refuses: next turn */
    }
}

void dlq_flush(struct dlq *d, int timeout_ms)
{
    rd_kafka_flush(d->prod, timeout_ms);
    rd_kafka_poll(d->prod, 0);
}

size_t dlq_unsettled(const struct dlq *d)
{
    return d->unsettled;
}

void dlq_remote_event(struct dlq *d, enum error_kind kind, const struct routes_sub *subs,
                      size_t nsubs, long status, const char *code, const char *message, int retries)
{
    /* one per source routed into the remote: the notifier tells that source's route users */
    for (size_t i = 0; i < nsubs; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(subs[j].route->from, subs[i].route->from) == 0;
        if (seen)
            continue;
        char *json = deadletter_remote_event(kind, subs[i].route->from, d->remote, status, code,
                                             message, retries, util_wall_ms());
        if (!json) {
            log_error(COMP, "event=out_of_memory what=remote_event");
            continue;
        }
        rd_kafka_resp_err_t err = kafka_produce(d->prod, d->errors_topic, RD_KAFKA_PARTITION_UA,
                                                d->remote, strlen(d->remote), json, strlen(json),
                                                RD_KAFKA_MSG_F_FREE, NULL, 0, NULL);
        if (err) {
            free(json);
            log_error(COMP, "event=produce_failed topic=%s error=%s", d->errors_topic,
                      rd_kafka_err2name(err));
        }
    }
}

rd_kafka_t *dlq_producer(struct dlq *d)
{
    return d->prod;
}

const struct kafka_state *dlq_kafka_state(const struct dlq *d)
{
    return &d->st;
}

const char *dlq_topic(const struct dlq *d)
{
    return d->topic;
}

const char *dlq_errors_topic(const struct dlq *d)
{
    return d->errors_topic;
}

struct dlq *dlq_new(const struct config *cfg, const char *remote, struct metrics *m, char *err,
                    size_t errlen)
{
    struct dlq *d = calloc(1, sizeof(*d));
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    d->cfg = cfg;
    d->remote = remote;
    if (kafka_topic_errors(cfg, d->errors_topic, sizeof(d->errors_topic)) ||
        kafka_topic_dlq(cfg, remote, d->topic, sizeof(d->topic))) {
        snprintf(err, errlen, "topic name too long (kafka.topic_prefix, remote %s)", remote);
        free(d);
        return NULL;
    }
    /* a dead letter is as large as the event it copies */
    static const char *const defaults[] = {"linger.ms", "5", KAFKA_PRODUCER_SIZE_DEFAULTS, NULL};
    static const char *const forced[] = {"enable.idempotence", "true", "acks", "all",
                                         "message.timeout.ms", "0",    NULL};
    d->st.component = COMP;
    d->st.user = d;
    rd_kafka_conf_t *conf = kafka_conf_new(cfg, &d->st, defaults, forced, err, errlen);
    if (!conf) {
        free(d);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    if (!(d->prod = kafka_client_new(RD_KAFKA_PRODUCER, conf, "kafka producer", err, errlen))) {
        free(d);
        return NULL;
    }
    char l[160];
    snprintf(l, sizeof(l), "remote=\"%s\"", remote);
    d->m = m;
    d->m_dead = metrics_counter(m, "dxsync_consumer_events_dead_lettered_total",
                                "Events sent to the DLQ", l);
    return d;
}

void dlq_free(struct dlq *d, int flush_ms)
{
    if (!d)
        return;
    rd_kafka_flush(d->prod, flush_ms);
    rd_kafka_purge(d->prod, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(d->prod, 0); /* delivery reports of the purged: their tickets */
    rd_kafka_destroy(d->prod);
    while (d->letters) {
        if (d->letters->e)
            d->letters->e->letter = NULL;
        letter_unlink_free(d->letters);
    }
    free(d);
}
