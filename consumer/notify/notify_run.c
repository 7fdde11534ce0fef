/* notify_run: the notifier's Kafka loop and its Directus client (see notify_run.h). */
#include "notify_run.h"

#include "backoff.h"
#include "cli.h"
#include "directus.h"
#include "http.h"
#include "kafka.h"
#include "log.h"
#include "notify.h"
#include "signals.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLL_MAX_MS 200
#define COMP        "notifier"

/* One source instance: where its notifications go, and whether it is answering. */
struct target {
    const struct config_instance *inst;
    struct http_client *http;
    struct backoff b;
    int64_t retry_at_ms; /* no request before this (monotonic); 0: go */
    bool failing;
    struct metric *m_sent, *m_failed, *m_retries, *m_shortened;
};

/* A group whose window closed, composed and being created for each recipient in turn. */
struct outgoing {
    struct notify_group *g;
    struct notify_msg msg;
    struct target *t;
    const struct config_route *route;
    size_t done;  /* recipients notified or refused for good */
    int attempts; /* 5xx answers for the current recipient while Directus answers its ping */
    struct outgoing *next;
};

struct notifier {
    const struct config *cfg;
    struct metrics *m;
    struct kafka_state kst;
    rd_kafka_t *rk;
    char topic[256];
    char group[256];
    struct notify_digest *dig;
    struct notify_ledger *led;
    struct outgoing *out_head, *out_tail;
    size_t nout;
    struct target *targets;
    size_t ntargets;
    bool paused;
    bool oom;
    /* Per partition taken over: the events another notifier may have notified without
     * committing them (it died in between), [from, to): from its committed offset to the end
     * of the partition at our assignment. A group starting there is first looked for in
     * Directus (already_sent). */
    struct unsure {
        int32_t partition;
        int64_t from, to;
    } unsure[64];
    size_t nunsure;
    struct metric *m_events, *m_digested, *m_malformed, *m_no_route, *m_no_notify, *m_pending;
    struct metric *m_already;
};

/* A copy of an untrusted string that cannot break a key="value" log line. */
static const char *safe(const char *s, char *buf, size_t len)
{
    size_t i = 0;
    for (; s && s[i] && i + 1 < len; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[i] = c == '"' ? '\'' : c < 0x20 || c == '\\' || c == 0x7f ? '?' : (char)c;
    }
    buf[i] = '\0';
    return buf;
}

static struct target *target_of(struct notifier *n, const char *instance)
{
    for (size_t i = 0; i < n->ntargets; i++)
        if (strcmp(n->targets[i].inst->name, instance) == 0)
            return &n->targets[i];
    return NULL;
}

static void target_ok(struct target *t)
{
    if (t->failing)
        log_info(COMP, "event=directus_available instance=%s url=%s", t->inst->name, t->inst->url);
    t->failing = false;
    t->retry_at_ms = 0;
    backoff_reset(&t->b);
}

static void target_wait(struct target *t, const struct http_response *r, const char *why)
{
    int64_t d = backoff_next_after(&t->b, r->retry_after_s);
    t->retry_at_ms = util_mono_ms() + d;
    t->failing = true;
    metrics_add(t->m_retries, 1);
    log_warn(COMP,
             "event=directus_unavailable instance=%s url=%s status=%ld code=%s error=\"%s\" "
             "why=\"%s\" retry_ms=%lld",
             t->inst->name, t->inst->url, r->status, r->code[0] ? r->code : "-", r->message, why,
             (long long)d);
}

/* ---- offsets ---- */

static void store_offsets(struct notifier *n)
{
    struct notify_pos adv[64];
    size_t k;
    do {
        k = notify_ledger_advanced(n->led, adv, DX_ARRAY_LEN(adv));
        if (k == 0)
            break;
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)k);
        for (size_t i = 0; i < k; i++)
            rd_kafka_topic_partition_list_add(l, n->topic, adv[i].partition)->offset =
                adv[i].offset;
        rd_kafka_resp_err_t err = rd_kafka_offsets_store(n->rk, l);
        if (err)
            log_warn(COMP, "event=offset_store_failed error=\"%s\"", rd_kafka_err2str(err));
        for (int i = 0; i < l->cnt; i++)
            log_debug(COMP, "event=offset_stored partition=%d offset=%lld",
                      (int)l->elems[i].partition, (long long)l->elems[i].offset);
        rd_kafka_topic_partition_list_destroy(l);
    } while (k == DX_ARRAY_LEN(adv));
}

static void commit_sync(struct notifier *n)
{
    rd_kafka_resp_err_t err = rd_kafka_commit(n->rk, NULL, 0);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        log_warn(COMP, "event=commit_failed error=\"%s\"", rd_kafka_err2str(err));
}

/* ---- the outbox ---- */

static void outgoing_free(struct outgoing *o)
{
    notify_msg_free(&o->msg);
    notify_group_free(o->g);
    free(o);
}

/* The mark of g in its notifications: the error event it starts with. */
static void notify_ref(const struct notifier *n, const struct notify_group *g, char *out,
                       size_t len)
{
    snprintf(out, len, "[dxsync-ref %s/%d/%lld]", n->topic, (int)g->pos[0].partition,
             (long long)g->pos[0].offset);
}

/* Whether g may have been notified already by the notifier we took its partition over from. */
static bool unsure(const struct notifier *n, const struct notify_group *g)
{
    for (size_t i = 0; i < n->nunsure; i++)
        if (n->unsure[i].partition == g->pos[0].partition &&
            g->pos[0].offset >= n->unsure[i].from && g->pos[0].offset < n->unsure[i].to)
            return true;
    return false;
}

/* Whether rcpt holds a notification marked with g's ref in t's Directus (the previous reader
 * of its partition created it and died before committing). An answer that does not tell is
 * "no": a duplicate is better than a notification lost. */
static bool already_sent(struct notifier *n, struct outgoing *o, const char *rcpt)
{
    char ref[320], eref[1024], path[1400];
    notify_ref(n, o->g, ref, sizeof(ref));
    if (http_escape(ref, eref, sizeof(eref)))
        return false;
    snprintf(path, sizeof(path),
             "/notifications?fields=id&limit=1&filter[recipient][_eq]=%s"
             "&filter[message][_contains]=%s",
             rcpt, eref);
    struct http_response r;
    http_request(o->t->http, "GET", path, NULL, &r);
    bool found = false;
    if (r.status == 200 && r.body) {
        cJSON *root = cJSON_Parse(r.body);
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
        found = cJSON_IsArray(data) && cJSON_GetArraySize(data) > 0;
        cJSON_Delete(root);
    } else {
        log_warn(COMP,
                 "event=already_sent_unknown instance=%s recipient=%s status=%ld code=%s "
                 "(sending it: a duplicate at worst)",
                 o->t->inst->name, rcpt, r.status, r.code[0] ? r.code : "-");
    }
    http_response_free(&r);
    return found;
}

static void enqueue(struct notifier *n, struct notify_group *g)
{
    struct outgoing *o = calloc(1, sizeof(*o));
    if (!o || notify_compose(g, n->cfg, &o->msg)) {
        free(o);
        notify_group_free(g);
        n->oom = true;
        return;
    }
    /* Where the group's first event is: for whoever reads the notification, and the mark by
     * which a notifier taking over finds what was already sent (already_sent). */
    char ref[320];
    notify_ref(n, g, ref, sizeof(ref));
    struct util_buf b = {0};
    util_buf_printf(&b, "%s\n\n%s", o->msg.message ? o->msg.message : "", ref);
    char *msg = util_buf_steal(&b);
    if (!msg) {
        notify_msg_free(&o->msg);
        free(o);
        notify_group_free(g);
        n->oom = true;
        return;
    }
    free(o->msg.message);
    o->msg.message = msg;
    o->g = g;
    o->route = config_route_find(n->cfg, g->source, g->remote);
    o->t = target_of(n, g->source);
    if (n->out_tail)
        n->out_tail->next = o;
    else
        n->out_head = o;
    n->out_tail = o;
    n->nout++;
    log_debug(COMP, "event=notification_due source=%s remote=%s code=%s events=%zu", g->source,
              g->remote, g->code[0] ? g->code : "-", g->count);
}

static void free_outbox(struct notifier *n)
{
    while (n->out_head) {
        struct outgoing *o = n->out_head;
        n->out_head = o->next;
        outgoing_free(o);
    }
    n->out_tail = NULL;
    n->nout = 0;
}

static void discard_all(struct notifier *n, const char *why)
{
    size_t events = notify_ledger_pending(n->led);
    if (events)
        log_info(COMP,
                 "event=pending_handed_back reason=\"%s\" events=%zu (not committed: they are "
                 "notified after the next assignment)",
                 why, events);
    free_outbox(n);
    notify_digest_clear(n->dig);
    notify_ledger_clear(n->led);
}

enum post_result { POST_SENT, POST_WAIT, POST_REFUSED };

/* POSTs one notification. On POST_REFUSED, *r describes the refusal (caller frees it). */
static enum post_result post(struct notifier *n, struct outgoing *o, const struct notify_msg *msg,
                             const char *recipient, struct http_response *r)
{
    struct target *t = o->t;
    char *body = notify_msg_json(msg, recipient);
    if (!body) {
        n->oom = true;
        memset(r, 0, sizeof(*r));
        return POST_WAIT;
    }
    http_request(t->http, "POST", "/notifications", body, r);
    free(body);
    switch (directus_classify(r, true)) {
    case DIRECTUS_OK:
        return POST_SENT;
    case DIRECTUS_NONE:
    case DIRECTUS_OUTAGE:
    case DIRECTUS_NOT_DIRECTUS:
    case DIRECTUS_AUTH:
        target_wait(t, r, "no answer or a retryable status");
        return POST_WAIT;
    case DIRECTUS_SERVER_ERROR: {
        /* Directus's fault or the notification's? Ask whether Directus is well otherwise. */
        struct http_response ping;
        http_request(t->http, "GET", DIRECTUS_PING_PATH, NULL, &ping);
        enum directus_fault f = directus_fault_after_5xx(&ping);
        http_response_free(&ping);
        if (f == DIRECTUS_FAULT_OUTAGE) {
            target_wait(t, r, "server error and /server/ping fails");
            return POST_WAIT;
        }
        if (!directus_item_give_up(&o->attempts, n->cfg->consumer.item_attempts)) {
            target_wait(t, r, "server error for this notification");
            return POST_WAIT;
        }
        return POST_REFUSED;
    }
    case DIRECTUS_FORBIDDEN:
    case DIRECTUS_DUPLICATE:
    case DIRECTUS_REFUSED:
        break;
    }
    return POST_REFUSED;
}

/* Creates the notifications o still owes. True when o is finished (each recipient notified or
 * refused for good), false when its instance must be retried later. */
static bool send_outgoing(struct notifier *n, struct outgoing *o)
{
    struct target *t = o->t;
    const struct config_route *route = o->route;
    while (o->done < route->nnotify && !n->oom) {
        const char *rcpt = route->notify[o->done];
        bool dup = false;
        for (size_t i = 0; i < o->done && !dup; i++)
            dup = strcmp(route->notify[i], rcpt) == 0;
        if (!dup && unsure(n, o->g) && already_sent(n, o, rcpt)) {
            metrics_add(n->m_already, 1);
            log_info(COMP,
                     "event=notification_already_sent instance=%s recipient=%s errors_partition=%d "
                     "errors_offset=%lld (by the notifier that read it before)",
                     o->t->inst->name, rcpt, (int)o->g->pos[0].partition,
                     (long long)o->g->pos[0].offset);
            dup = true;
        }
        if (dup) {
            o->done++;
            continue;
        }
        struct http_response r;
        enum post_result pr = post(n, o, &o->msg, rcpt, &r);
        if (pr == POST_REFUSED) {
            /* Refused as composed: shorten it, drop collection and item, and try once more. */
            struct notify_msg small;
            char first_code[64];
            long first_status = r.status;
            util_strlcpy(first_code, r.code, sizeof(first_code));
            http_response_free(&r);
            if (notify_msg_shrunk(&o->msg, &small)) {
                n->oom = true;
                return false;
            }
            pr = post(n, o, &small, rcpt, &r);
            notify_msg_free(&small);
            if (pr == POST_SENT) {
                metrics_add(t->m_shortened, 1);
                log_warn(COMP,
                         "event=notification_shortened instance=%s recipient=%s status=%ld "
                         "code=%s (sent with a shorter subject and without collection and item)",
                         t->inst->name, rcpt, first_status, first_code[0] ? first_code : "-");
            } else if (pr == POST_REFUSED) {
                char subj[160];
                metrics_add(t->m_failed, 1);
                log_error(COMP,
                          "event=notification_refused instance=%s recipient=%s status=%ld "
                          "code=%s error=\"%s\" subject=\"%s\" events=%zu errors_partition=%d "
                          "errors_offset=%lld (given up: counted in "
                          "dxsync_notifier_notifications_failed_total)",
                          t->inst->name, rcpt, r.status, r.code[0] ? r.code : "-", r.message,
                          safe(o->msg.subject, subj, sizeof(subj)), o->g->count,
                          (int)o->g->pos[0].partition, (long long)o->g->pos[0].offset);
            }
        }
        http_response_free(&r);
        if (pr == POST_WAIT)
            return false;
        if (pr == POST_SENT) {
            metrics_add(t->m_sent, 1);
            target_ok(t);
            log_info(COMP,
                     "event=notification_sent instance=%s recipient=%s remote=%s code=%s "
                     "events=%zu",
                     t->inst->name, rcpt, o->g->remote, o->g->code[0] ? o->g->code : "-",
                     o->g->count);
        }
        o->done++;
        o->attempts = 0;
    }
    return !n->oom;
}

static void process_outbox(struct notifier *n)
{
    struct outgoing *prev = NULL, *o = n->out_head;
    while (o && !n->oom) {
        struct outgoing *next = o->next;
        if (o->t->retry_at_ms > util_mono_ms() || !send_outgoing(n, o)) {
            prev = o;
            o = next;
            continue;
        }
        for (size_t i = 0; i < o->g->npos; i++)
            notify_ledger_done(n->led, o->g->pos[i]);
        if (prev)
            prev->next = next;
        else
            n->out_head = next;
        if (n->out_tail == o)
            n->out_tail = prev;
        n->nout--;
        outgoing_free(o);
        o = next;
    }
}

static void take_due(struct notifier *n, int64_t now)
{
    struct notify_group *g;
    while (!n->oom && (g = notify_digest_take(n->dig, now)) != NULL)
        enqueue(n, g);
}

/* ---- reading ---- */

static void skip(struct notifier *n, struct notify_pos pos)
{
    notify_ledger_done(n->led, pos);
}

static void on_message(struct notifier *n, const rd_kafka_message_t *msg)
{
    if (msg->err) {
        if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            log_warn(COMP, "event=consume_error error=\"%s\"", rd_kafka_message_errstr(msg));
        return;
    }
    struct notify_pos pos = {msg->partition, msg->offset};
    if (notify_ledger_read(n->led, pos)) {
        n->oom = true;
        return;
    }
    metrics_add(n->m_events, 1);
    struct error_event ev;
    char err[512], s1[80], s2[80];
    if (error_event_decode(msg->payload, msg->len, &ev, err, sizeof(err))) {
        metrics_add(n->m_malformed, 1);
        log_warn(COMP,
                 "event=malformed_error_event partition=%d offset=%lld reason=\"%s\" (skipped)",
                 (int)pos.partition, (long long)pos.offset, safe(err, s1, sizeof(s1)));
        skip(n, pos);
        return;
    }
    const struct config_route *route = config_route_find(n->cfg, ev.source, ev.remote);
    if (!route) {
        metrics_add(n->m_no_route, 1);
        log_warn(COMP,
                 "event=error_event_skipped partition=%d offset=%lld source=%s remote=%s "
                 "reason=\"no route from %s to %s in the configuration\"",
                 (int)pos.partition, (long long)pos.offset, safe(ev.source, s1, sizeof(s1)),
                 safe(ev.remote, s2, sizeof(s2)), s1, s2);
        skip(n, pos);
        error_event_free(&ev);
        return;
    }
    if (route->nnotify == 0) {
        metrics_add(n->m_no_notify, 1);
        log_info(COMP,
                 "event=error_event_skipped partition=%d offset=%lld source=%s remote=%s "
                 "kind=%s code=%s reason=\"the route has no notify list\"",
                 (int)pos.partition, (long long)pos.offset, route->from, route->to,
                 error_kind_name(ev.kind), safe(ev.code && ev.code[0] ? ev.code : "-", s1, 64));
        skip(n, pos);
        error_event_free(&ev);
        return;
    }
    log_debug(COMP, "event=error_event partition=%d offset=%lld source=%s remote=%s kind=%s",
              (int)pos.partition, (long long)pos.offset, route->from, route->to,
              error_kind_name(ev.kind));
    long count = notify_digest_add(n->dig, &ev, pos, util_mono_ms());
    if (count < 0)
        n->oom = true;
    else if (count == 2)
        metrics_add(n->m_digested, 2); /* the first event became part of a digest too */
    else if (count > 2)
        metrics_add(n->m_digested, 1);
}

static void pause_or_resume(struct notifier *n)
{
    size_t pending = notify_ledger_pending(n->led);
    metrics_set(n->m_pending, (double)pending);
    bool want = pending > NOTIFY_MAX_PENDING;
    if (want == n->paused || (!want && pending > NOTIFY_MAX_PENDING / 2))
        return;
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(n->rk, &parts) || !parts)
        return;
    if (want)
        rd_kafka_pause_partitions(n->rk, parts);
    else
        rd_kafka_resume_partitions(n->rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    n->paused = want;
    log_warn(COMP, "event=%s pending_events=%zu", want ? "reading_paused" : "reading_resumed",
             pending);
}

/* At an assignment: per partition, what a notifier that read it before may have notified
 * without committing (unsure). Not knowing (Kafka does not answer in time) means nothing is
 * looked up: duplicates at worst. */
static void note_unsure(struct notifier *n, const rd_kafka_topic_partition_list_t *parts)
{
    n->nunsure = 0;
    rd_kafka_topic_partition_list_t *c = rd_kafka_topic_partition_list_copy(parts);
    if (rd_kafka_committed(n->rk, c, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < c->cnt && n->nunsure < DX_ARRAY_LEN(n->unsure); i++) {
            int64_t lo, hi, from = c->elems[i].offset;
            if (rd_kafka_query_watermark_offsets(n->rk, n->topic, c->elems[i].partition, &lo, &hi,
                                                 5000))
                continue;
            if (from < 0)
                from = lo;
            if (hi <= from)
                continue;
            n->unsure[n->nunsure++] = (struct unsure){c->elems[i].partition, from, hi};
            log_info(COMP, "event=takeover_range partition=%d from=%lld to=%lld",
                     (int)c->elems[i].partition, (long long)from, (long long)hi);
        }
    }
    rd_kafka_topic_partition_list_destroy(c);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct notifier *n = ((struct kafka_state *)opaque)->user;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        log_info(COMP, "event=partitions_assigned topic=%s count=%d", n->topic, parts->cnt);
        note_unsure(n, parts);
        rd_kafka_assign(rk, parts);
        n->paused = false;
        return;
    }
    /* Revoked (or a rebalance error): keep what is done, hand the rest back. Unsent
     * notifications are not committed, so whoever reads these partitions next sends them. */
    log_info(COMP, "event=partitions_revoked topic=%s count=%d", n->topic, parts ? parts->cnt : 0);
    store_offsets(n);
    commit_sync(n);
    discard_all(n, "partitions revoked");
    rd_kafka_assign(rk, NULL);
    n->paused = false;
}

/* ---- start and stop ---- */

static int setup_kafka(struct notifier *n, char *err, size_t errlen)
{
    /* A notifier that died holds its partitions until its session times out (librdkafka's
     * default is 45 s): 10 s lets a restarted one take over soon, as the consumer does. */
    static const char *const defaults[] = {"auto.commit.interval.ms", "1000", "session.timeout.ms",
                                           "10000", NULL};
    /* The range assignor is eager: a rebalance revokes everything, which discard_all relies
     * on (kafka_group_conf_new). */
    if (kafka_topic_errors(n->cfg, n->topic, sizeof(n->topic)) ||
        kafka_group_notify(n->cfg, n->group, sizeof(n->group))) {
        snprintf(err, errlen, "kafka.topic_prefix is too long for a topic name");
        return -1;
    }
    n->kst.component = COMP;
    n->kst.user = n;
    rd_kafka_conf_t *conf = kafka_group_conf_new(n->cfg, &n->kst, n->group, defaults, err, errlen);
    if (!conf)
        return -1;
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    if (!(n->rk = kafka_client_new(RD_KAFKA_CONSUMER, conf, "kafka", err, errlen)))
        return -1;
    rd_kafka_poll_set_consumer(n->rk);

    const char *topics[] = {n->topic};
    metrics_set_health(n->m, false, "waiting for Kafka");
    if (kafka_ensure_topics_wait(n->rk, n->cfg, topics, 1, &n->kst, &signals_stop)) {
        snprintf(err, errlen, "stopped while waiting for Kafka");
        return -1;
    }
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, n->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t se = rd_kafka_subscribe(n->rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (se) {
        snprintf(err, errlen, "subscribe to %s: %s", n->topic, rd_kafka_err2str(se));
        return -1;
    }
    return 0;
}

static int setup_targets(struct notifier *n, char *err, size_t errlen)
{
    n->targets = calloc(n->cfg->ninstances, sizeof(*n->targets));
    if (!n->targets) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    n->ntargets = n->cfg->ninstances;
    for (size_t i = 0; i < n->ntargets; i++) {
        struct target *t = &n->targets[i];
        t->inst = &n->cfg->instances[i];
        t->http = directus_client(t->inst, n->cfg->consumer.request_timeout_ms, err, errlen);
        if (!t->http)
            return -1;
        backoff_init(&t->b, 200, 30000, (uint64_t)util_wall_ms() + i);
        char labels[160];
        snprintf(labels, sizeof(labels), "source=\"%s\"", t->inst->name);
        t->m_sent = metrics_counter(n->m, "dxsync_notifier_notifications_sent_total",
                                    "Notifications created in Directus", labels);
        t->m_failed = metrics_counter(n->m, "dxsync_notifier_notifications_failed_total",
                                      "Notifications Directus refused for good (logged)", labels);
        t->m_retries = metrics_counter(n->m, "dxsync_notifier_send_retries_total",
                                       "Notification requests retried later", labels);
        t->m_shortened =
            metrics_counter(n->m, "dxsync_notifier_notifications_shortened_total",
                            "Notifications sent shortened after Directus refused them", labels);
    }
    return 0;
}

static void setup_metrics(struct notifier *n)
{
    struct metrics *m = n->m;
    n->m_events = metrics_counter(m, "dxsync_notifier_events_total", "Error events read", NULL);
    n->m_digested = metrics_counter(m, "dxsync_notifier_events_digested_total",
                                    "Error events folded into a digest notification", NULL);
    n->m_malformed = metrics_counter(m, "dxsync_notifier_events_skipped_total",
                                     "Error events skipped", "reason=\"malformed\"");
    n->m_no_route = metrics_counter(m, "dxsync_notifier_events_skipped_total",
                                    "Error events skipped", "reason=\"no_route\"");
    n->m_no_notify = metrics_counter(m, "dxsync_notifier_events_skipped_total",
                                     "Error events skipped", "reason=\"no_notify\"");
    n->m_pending = metrics_gauge(m, "dxsync_notifier_pending_events",
                                 "Error events read whose notifications are not created yet", NULL);
    n->m_already = metrics_counter(
        m, "dxsync_notifier_notifications_already_sent_total",
        "Notifications found already created by the notifier that read their events before", NULL);
}

/* Sends everything still open, for at most NOTIFY_STOP_FLUSH_MS, and commits what is done. */
static void flush_at_stop(struct notifier *n)
{
    static const volatile sig_atomic_t never = 0; /* a second signal exits at once anyway */
    take_due(n, INT64_MAX);
    int64_t deadline = util_mono_ms() + NOTIFY_STOP_FLUSH_MS;
    if (n->nout)
        log_info(COMP, "event=flushing notifications=%zu", n->nout);
    while (n->out_head && !n->oom && !n->kst.fatal) {
        process_outbox(n);
        store_offsets(n);
        int64_t now = util_mono_ms();
        if (!n->out_head || now >= deadline)
            break;
        int64_t wake = deadline;
        for (struct outgoing *o = n->out_head; o; o = o->next)
            if (o->t->retry_at_ms < wake)
                wake = o->t->retry_at_ms;
        util_sleep_ms(wake - now, &never);
    }
    if (n->out_head) {
        size_t events = 0;
        for (struct outgoing *o = n->out_head; o; o = o->next)
            events += o->g->npos;
        log_warn(COMP,
                 "event=unsent_at_stop notifications=%zu events=%zu (not committed: they are "
                 "sent after the next start)",
                 n->nout, events);
    }
    store_offsets(n);
    commit_sync(n);
}

int notify_run(const struct config *cfg, struct metrics *m)
{
    struct notifier n = {.cfg = cfg, .m = m};
    char err[1024] = "";
    int rc = 1;
    setup_metrics(&n);
    metrics_set_stall_ms(m, 120000);
    n.dig = notify_digest_new((int64_t)cfg->notify.digest_window_s * 1000);
    n.led = notify_ledger_new();
    if (!n.dig || !n.led) {
        snprintf(err, sizeof(err), "out of memory");
        goto fail;
    }
    if (setup_targets(&n, err, sizeof(err)) || setup_kafka(&n, err, sizeof(err))) {
        if (signals_stop && !n.kst.fatal) {
            rc = 0; /* stopped while waiting for Kafka */
            goto out;
        }
        if (n.kst.fatal)
            snprintf(err, sizeof(err), "kafka: %s", n.kst.fatal_reason);
        goto fail;
    }
    metrics_set_health(m, true, NULL);
    log_info(COMP, "event=started topic=%s group=%s digest_window_s=%d", n.topic, n.group,
             cfg->notify.digest_window_s);

    while (!signals_stop && !n.kst.fatal && !n.oom && !app_reload_wanted()) {
        metrics_heartbeat(m);
        take_due(&n, util_mono_ms());
        process_outbox(&n);
        store_offsets(&n);
        pause_or_resume(&n);
        int64_t now = util_mono_ms();
        int64_t wake = notify_digest_next_due(n.dig);
        for (struct outgoing *o = n.out_head; o; o = o->next)
            if (o->t->retry_at_ms < wake)
                wake = o->t->retry_at_ms;
        int64_t timeout = wake - now;
        if (timeout > POLL_MAX_MS)
            timeout = POLL_MAX_MS;
        if (timeout < 0)
            timeout = 0;
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(n.rk, (int)timeout);
        if (msg) {
            on_message(&n, msg);
            rd_kafka_message_destroy(msg);
        }
    }
    if (n.kst.fatal) {
        snprintf(err, sizeof(err), "kafka: %s", n.kst.fatal_reason);
        goto fail;
    }
    if (n.oom) {
        snprintf(err, sizeof(err), "out of memory");
        goto fail;
    }
    flush_at_stop(&n);
    rc = 0;
    log_info(COMP, "event=stopped");
    goto out;
fail:
    log_error(COMP, "event=stopping reason=\"%s\"", err);
    metrics_set_health(m, false, err);
    rc = 1;
out:
    if (n.rk) {
        rd_kafka_consumer_close(n.rk);
        rd_kafka_destroy(n.rk);
    }
    free_outbox(&n);
    notify_digest_free(n.dig);
    notify_ledger_free(n.led);
    for (size_t i = 0; i < n.ntargets; i++)
        http_client_free(n.targets[i].http);
    free(n.targets);
    return rc;
}
