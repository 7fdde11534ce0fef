#include "redrive.h"

#include "kread.h"

#include "apply.h"
#include "deadletter.h"
#include "directus.h"
#include "event.h"
#include "fileop.h"
#include "http.h"
#include "kafka.h"
#include "log.h"
#include "lww.h"
#include "plan.h"
#include "restore.h"
#include "routes.h"
#include "signals.h"
#include "util.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OUTAGE_GIVE_UP_MS 60000
#define META_PREFIX       "redriven:"
#define META_MAX          3500 /* Kafka's default offset.metadata.max.bytes is 4096 */

enum letter_state {
    L_PASSED = 0,
    L_DONE_BEFORE,
    L_TODO,
    L_APPLIED,
    L_SUPERSEDED,
    L_FAILED,
    L_LEFT
};

struct letter {
    rd_kafka_message_t *msg;
    int32_t partition;
    int64_t offset;
    bool decoded;
    struct event ev;
    const struct routes_sub *sub;
    int32_t orig_partition;
    int64_t orig_offset;
    char orig_topic[256];
    enum letter_state st;
};

struct run {
    const struct config *cfg;
    const char *remote;
    struct routes_sub *subs;
    size_t nsubs;
    struct lww *lww;
    struct letter *ls;
    size_t n, cap;
    rd_kafka_t *dlq_rk;  /* the redrive group's consumer of the DLQ */
    rd_kafka_t *read_rk; /* reads source topics for the clocks */
    rd_kafka_t *prod;    /* new dead letters and error events */
    struct http_client *http;
    char dlq_topic[256], errors_topic[256];
    FILE *out;
    size_t applied, superseded, failed, passed, left, before;
};

/* ------------------------------------------------------------------------- metadata */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

size_t redrive_meta_parse(const char *meta, size_t len, int64_t *offs, size_t max)
{
    size_t pl = strlen(META_PREFIX), n = 0;
    if (!meta || len <= pl || strncmp(meta, META_PREFIX, pl) != 0)
        return 0;
    char buf[META_MAX + 64];
    if (len >= sizeof(buf))
        return 0;
    memcpy(buf, meta + pl, len - pl);
    buf[len - pl] = '\0';
    for (char *tok = strtok(buf, ","); tok && n < max; tok = strtok(NULL, ",")) {
        int64_t v;
        if (util_parse_i64(tok, 0, INT64_MAX, &v))
            offs[n++] = v;
    }
    qsort(offs, n, sizeof(*offs), cmp_i64);
    return n;
}

int redrive_meta_format(const int64_t *offs, size_t n, int64_t committed, char *buf, size_t len)
{
    struct util_buf b = {0};
    util_buf_puts(&b, META_PREFIX);
    bool any = false;
    for (size_t i = 0; i < n; i++)
        if (offs[i] > committed) {
            util_buf_printf(&b, "%s%" PRId64, any ? "," : "", offs[i]);
            any = true;
        }
    int rc = 0;
    if (!any)
        buf[0] = '\0';
    else if (!b.data || b.len >= len || b.len > META_MAX)
        rc = -1;
    else
        memcpy(buf, b.data, b.len + 1);
    util_buf_free(&b);
    return rc;
}

static bool in_list(const int64_t *offs, size_t n, int64_t off)
{
    return bsearch(&off, offs, n, sizeof(*offs), cmp_i64) != NULL;
}

/* ---------------------------------------------------------------------------- Kafka */

struct observing {
    struct run *r;
    const struct routes_sub *sub;
};

/* A source event: into the clocks (as the consumer's restore does). */
static int observe(void *arg, const rd_kafka_message_t *m)
{
    struct run *r = ((struct observing *)arg)->r;
    const struct routes_sub *sub = ((struct observing *)arg)->sub;
    struct event ev;
    char why[256];
    if (event_decode(m->payload, m->len, &ev, why, sizeof(why)))
        return 0;
    if (strcmp(ev.collection, sub->coll->collection) == 0 && plan_touches(&ev, sub->coll)) {
        plan_prune(&ev, sub->coll);
        struct lww_where at = {
            .partition = m->partition, .offset = m->offset, .foreign = !sub->local};
        lww_observe(r->lww, &ev, &at);
    }
    event_free(&ev);
    return 0;
}

/* ------------------------------------------------------------------------- applying */

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Whether an outage that started at *since (-1: none) has lasted too long for this run (the
 * run stops; a later one goes on). */
static bool outage_too_long(int64_t *since, const char *who, const struct http_response *resp)
{
    if (*since < 0)
        *since = util_mono_ms();
    if (util_mono_ms() - *since <= OUTAGE_GIVE_UP_MS)
        return false;
    log_stderr("dxsync-consumer: dlq redrive: %s is unavailable (%ld %s): stopping; run it again "
               "later\n",
               who, resp->status, resp->message);
    return true;
}

/* Applies l, a file's create or update, alone (fileop.h, its bytes by xfer_run). Returns as
 * apply_one. */
static int apply_file(struct run *r, struct letter *l, struct apply_item *why)
{
    struct apply_item it = {.ev = &l->ev};
    struct fileop op;
    const struct config_instance *src = config_instance_find(r->cfg, l->sub->route->from);
    char err[256];
    long timeout = r->cfg->consumer.request_timeout_ms;
    struct http_client *sh = src ? directus_client(src, timeout, err, sizeof(err)) : NULL;
    int rc = -1;
    if (!sh || fileop_init(&op, &l->ev, l->sub->coll, &it, plan_file_content(&l->ev, l->sub->coll),
                           false, r->cfg->consumer.item_attempts, (uint64_t)l->offset)) {
        http_client_free(sh);
        return -1;
    }
    int64_t outage_since = -1;
    while (!signals_stop) {
        struct fileop_request req;
        int n = fileop_next(&op, &req);
        if (n < 0)
            break;
        if (n == 0) {
            *why = it;
            rc = it.state == APPLY_APPLIED ? 1 : 0;
            break;
        }
        struct http_response resp;
        int64_t delay = 0;
        enum fileop_verdict v;
        if (req.step == FILEOP_TRANSFER) {
            struct xfer_result xr;
            if (xfer_run(sh, req.src_path, r->http, req.method, req.path, &req.spec,
                         (long)fileop_timeout_ms(req.spec.size, timeout), &resp, &xr))
                break;
            v = fileop_transferred(&op, &resp, &xr, &delay);
            http_response_free(&xr.dl);
        } else {
            http_request(req.to_source ? sh : r->http, req.method, req.path, req.body, &resp);
            v = fileop_answer(&op, &resp, &delay);
        }
        bool down = v == FILEOP_RETRY_REMOTE || v == FILEOP_RETRY_SOURCE;
        if (down &&
            outage_too_long(&outage_since,
                            v == FILEOP_RETRY_SOURCE ? l->sub->route->from : r->remote, &resp)) {
            http_response_free(&resp);
            break;
        }
        if (!down)
            outage_since = -1;
        http_response_free(&resp);
        if (v != FILEOP_NEXT && v != FILEOP_DONE)
            sleep_ms(delay);
    }
    fileop_free(&op);
    http_client_free(sh);
    return rc;
}

struct refill_at {
    struct run *r;
    const char *collection;
    int32_t partition;
};

/* lww_refill_data's fetch: a source event read again. */
static int refill_fetch(void *opaque, const char *source, int64_t offset, struct event *out)
{
    struct refill_at *at = opaque;
    char err[512];
    const struct routes_sub *sub = routes_of(at->r->subs, at->r->nsubs, source, at->collection);
    if (!sub)
        return -1;
    rd_kafka_message_t *m = restore_fetch(at->r->read_rk, sub->topic, at->partition, offset,
                                          KREAD_TIMEOUT_MS, err, sizeof(err));
    if (!m) {
        log_warn("redrive", "event=fetch_failed error=%s", LOG_Q(err));
        return -1;
    }
    int rc = event_decode(m->payload, m->len, out, err, sizeof(err));
    rd_kafka_message_destroy(m);
    return rc;
}

/* Applies l alone. 1 applied, 0 failed (it holds why), -1 the remote is unavailable. */
static int apply_one(struct run *r, struct letter *l, struct apply_item *why)
{
    if (strcmp(l->sub->coll->collection, DIRECTUS_FILES) == 0 && l->ev.action != EVENT_DELETE)
        return apply_file(r, l, why);
    struct apply_params p = {.collection = l->sub->coll->collection,
                             .coll = l->sub->coll,
                             .pk = NULL,
                             .item_attempts = r->cfg->consumer.item_attempts,
                             .seed = (uint64_t)l->offset};
    const struct event *evs[1] = {&l->ev};
    struct apply_batch b;
    if (apply_batch_init(&b, &p, evs, 1))
        return -1;
    int64_t outage_since = -1;
    int rc = -1;
    bool refilled = false;
    for (;;) {
        if (signals_stop)
            break;
        size_t idx;
        if (!refilled && apply_batch_recreates(&b, &idx, 1)) {
            /* the item is missing: created from data, brought up to date first (lww.h) */
            struct refill_at at = {r, l->sub->coll->collection, l->orig_partition};
            size_t unread = 0;
            lww_refill_data(r->lww, &l->ev, refill_fetch, &at, &unread);
            if (unread)
                log_warn("redrive",
                         "event=refill_failed key=%s unread=%zu (those fields are created "
                         "with the values the letter holds)",
                         LOG_Q(l->ev.key_text), unread);
            refilled = true;
        }
        struct apply_request req;
        int n = apply_batch_next(&b, &req);
        if (n < 0)
            break;
        if (n == 0) {
            *why = b.items[0];
            rc = b.items[0].state == APPLY_APPLIED ? 1 : 0;
            break;
        }
        struct http_response resp;
        http_request(r->http, req.method, req.path, req.body, &resp);
        int64_t delay = 0;
        enum apply_verdict v = apply_batch_answer(&b, &resp, &delay);
        if (v == APPLY_RETRY_OUTAGE) {
            if (outage_too_long(&outage_since, r->remote, &resp)) {
                http_response_free(&resp);
                break;
            }
        } else {
            outage_since = -1;
        }
        http_response_free(&resp);
        if (v == APPLY_RETRY_OUTAGE || v == APPLY_RETRY_ITEM)
            sleep_ms(delay);
    }
    apply_batch_free(&b);
    return rc;
}

/* A letter that failed again: a new dead letter (its original's place kept) and an
 * apply_failed error event. 0, or -1 when Kafka refused them now. */
static int dead_letter_anew(struct run *r, const struct letter *l, const struct apply_item *it)
{
    struct deadletter_failure f = {
        .source = l->ev.source,
        .remote = r->remote,
        .collection = l->ev.collection,
        .key = l->ev.key_text,
        .action = event_action_name(l->ev.action),
        .event_id = l->ev.event_id,
        .status = it->status,
        .code = it->code,
        .message = it->message,
        .attempts = it->attempts,
        .topic = l->orig_topic,
        .partition = l->orig_partition,
        .offset = l->orig_offset,
    };
    rd_kafka_headers_t *src = NULL;
    if (rd_kafka_message_headers(l->msg, &src) != RD_KAFKA_RESP_ERR_NO_ERROR)
        src = NULL;
    rd_kafka_headers_t *h = deadletter_headers_over(src, &f);
    if (!h)
        return -1;
    rd_kafka_resp_err_t e = rd_kafka_producev(
        r->prod, RD_KAFKA_V_TOPIC(r->dlq_topic), RD_KAFKA_V_KEY(l->msg->key, l->msg->key_len),
        RD_KAFKA_V_VALUE(l->msg->payload, l->msg->len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
    if (e) {
        rd_kafka_headers_destroy(h);
        return -1;
    }
    char *json = deadletter_error_event(&f, util_wall_ms());
    if (!json)
        return -1;
    e = kafka_produce(r->prod, r->errors_topic, RD_KAFKA_PARTITION_UA, l->ev.key_text,
                      strlen(l->ev.key_text), json, strlen(json), RD_KAFKA_MSG_F_FREE, NULL, 0,
                      NULL);
    if (e) {
        free(json);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------ run */

static bool selected(const struct redrive_filter *f, const struct letter *l)
{
    char code[64];
    kafka_header_get(l->msg, "dxsync-error-code", code, sizeof(code));
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(l->msg, &tt);
    if (f->code && strcmp(f->code, code) != 0)
        return false;
    if (f->since_ms >= 0 && ts < f->since_ms)
        return false;
    if (f->key && (!l->decoded || strcmp(f->key, l->ev.key_text) != 0))
        return false;
    return true;
}

static int take_letter(struct run *r, rd_kafka_message_t *m)
{
    if (r->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 64;
        struct letter *ls = realloc(r->ls, nc * sizeof(*ls));
        if (!ls)
            return -1;
        r->ls = ls;
        r->cap = nc;
    }
    struct letter *l = &r->ls[r->n++];
    memset(l, 0, sizeof(*l));
    l->msg = m;
    l->partition = m->partition;
    l->offset = m->offset;
    char why[256], buf[32];
    l->decoded = m->payload && event_decode(m->payload, m->len, &l->ev, why, sizeof(why)) == 0;
    kafka_header_get(m, "dxsync-original-topic", l->orig_topic, sizeof(l->orig_topic));
    kafka_header_get(m, "dxsync-original-partition", buf, sizeof(buf));
    l->orig_partition = atoi(buf);
    kafka_header_get(m, "dxsync-original-offset", buf, sizeof(buf));
    l->orig_offset = atoll(buf);
    l->sub = routes_find(r->subs, r->nsubs, l->orig_topic);
    return 0;
}

static const char *state_word(enum letter_state s)
{
    switch (s) {
    case L_APPLIED:
        return "applied";
    case L_SUPERSEDED:
        return "superseded";
    case L_FAILED:
        return "failed again";
    case L_LEFT:
        return "left";
    case L_DONE_BEFORE:
        return "done before";
    case L_TODO:
        return "to do";
    case L_PASSED:
        break;
    }
    return "passed";
}

static void report(struct run *r, const struct letter *l, const char *detail)
{
    fprintf(r->out, "%-12s %-20s %-36s %-8s %s%s%s\n", state_word(l->st),
            l->decoded ? l->ev.collection : "-", l->decoded ? l->ev.key_text : "-",
            l->decoded ? event_action_name(l->ev.action) : "-", l->decoded ? l->ev.event_id : "",
            detail ? "  " : "", detail ? detail : "");
}

int redrive_run(const struct config *cfg, const char *remote, const struct redrive_filter *f,
                FILE *out)
{
    char err[1024] = "", group[300];
    struct run r = {.cfg = cfg, .remote = remote, .out = out};
    struct kafka_state st1 = {.component = "redrive"}, st2 = {.component = "redrive"},
                       st3 = {.component = "redrive"};
    rd_kafka_topic_partition_list_t *committed = NULL;
    int64_t **handled = NULL; /* per DLQ partition: offsets handled beyond the committed one */
    size_t *nhandled = NULL;
    int64_t *hi = NULL;
    int np = 0, rc = 1;
    const struct config_instance *inst = config_instance_find(cfg, remote);
    const char **names = calloc(cfg->ninstances + 1, sizeof(char *));
    if (!inst || !names) {
        snprintf(err, sizeof(err), "out of memory");
        goto out;
    }
    for (size_t i = 0; i < cfg->ninstances; i++)
        names[i] = cfg->instances[i].name;
    if (routes_into(cfg, remote, &r.subs, &r.nsubs, err, sizeof(err)) ||
        routes_add_own(cfg, remote, &r.subs, &r.nsubs, err, sizeof(err)))
        goto out;
    if (!(r.lww = lww_new(names, cfg->ninstances))) {
        snprintf(err, sizeof(err), "out of memory");
        goto out;
    }
    if (util_format(r.dlq_topic, sizeof(r.dlq_topic), "%s.dlq.%s", cfg->kafka.topic_prefix,
                    remote) ||
        util_format(r.errors_topic, sizeof(r.errors_topic), "%s.errors", cfg->kafka.topic_prefix) ||
        util_format(group, sizeof(group), "%s.redrive.%s", cfg->kafka.topic_prefix, remote)) {
        snprintf(err, sizeof(err), "topic prefix too long");
        goto out;
    }
    if (!(r.dlq_rk = kafka_reader_new(cfg, &st1, group, err, sizeof(err))))
        goto out;
    char rgroup[320];
    snprintf(rgroup, sizeof(rgroup), "%s.redrive-read", cfg->kafka.topic_prefix);
    if (!(r.read_rk = kafka_reader_new(cfg, &st2, rgroup, err, sizeof(err))))
        goto out;
    static const char *const pforced[] = {"enable.idempotence", "true", "acks", "all", NULL};
    static const char *const pdefaults[] = {KAFKA_PRODUCER_SIZE_DEFAULTS, NULL};
    rd_kafka_conf_t *pconf = kafka_conf_new(cfg, &st3, pdefaults, pforced, err, sizeof(err));
    if (!pconf || !(r.prod = kafka_client_new(RD_KAFKA_PRODUCER, pconf, "kafka", err, sizeof(err))))
        goto out;
    if (!(r.http = directus_client(inst, cfg->consumer.request_timeout_ms, err, sizeof(err))))
        goto out;

    np = kread_partitions(r.dlq_rk, r.dlq_topic);
    if (np < 0) {
        snprintf(err, sizeof(err), "Kafka does not answer about %s", r.dlq_topic);
        goto out;
    }
    if (np == 0) {
        fprintf(out, "# %s does not exist: nothing was ever dead-lettered for %s\n", r.dlq_topic,
                remote);
        rc = 0;
        goto out;
    }
    /* where the last redrive stopped */
    committed = rd_kafka_topic_partition_list_new(np);
    for (int p = 0; p < np; p++)
        rd_kafka_topic_partition_list_add(committed, r.dlq_topic, p);
    rd_kafka_resp_err_t ke = rd_kafka_committed(r.dlq_rk, committed, KREAD_TIMEOUT_MS);
    hi = calloc((size_t)np, sizeof(*hi));
    handled = calloc((size_t)np, sizeof(*handled));
    nhandled = calloc((size_t)np, sizeof(*nhandled));
    if (ke || !hi || !handled || !nhandled) {
        snprintf(err, sizeof(err), "committed offsets of group %s: %s", group,
                 ke ? rd_kafka_err2str(ke) : "out of memory");
        goto out;
    }
    for (int p = 0; p < np; p++) {
        rd_kafka_topic_partition_t *tp = &committed->elems[p];
        int64_t lo;
        if ((ke = rd_kafka_query_watermark_offsets(r.dlq_rk, r.dlq_topic, p, &lo, &hi[p],
                                                   KREAD_TIMEOUT_MS))) {
            snprintf(err, sizeof(err), "%s [%d]: %s", r.dlq_topic, p, rd_kafka_err2str(ke));
            goto out;
        }
        if (tp->offset < lo)
            tp->offset = lo;
        handled[p] = calloc(META_MAX / 2, sizeof(int64_t));
        if (!handled[p]) {
            snprintf(err, sizeof(err), "out of memory");
            goto out;
        }
        nhandled[p] = redrive_meta_parse(tp->metadata, tp->metadata_size, handled[p], META_MAX / 2);
    }
    /* the letters, from there to the end as it is now */
    for (int p = 0; p < np; p++) {
        int64_t next = committed->elems[p].offset;
        if (next >= hi[p])
            continue;
        rd_kafka_topic_partition_list_t *a = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(a, r.dlq_topic, p)->offset = next;
        ke = rd_kafka_assign(r.dlq_rk, a);
        rd_kafka_topic_partition_list_destroy(a);
        int64_t idle_since = util_mono_ms();
        while (!ke && next < hi[p] && util_mono_ms() - idle_since < KREAD_TIMEOUT_MS) {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(r.dlq_rk, 500);
            if (!m)
                continue;
            idle_since = util_mono_ms();
            if (m->err || m->offset < next) {
                rd_kafka_message_destroy(m);
                continue;
            }
            next = m->offset + 1;
            if (take_letter(&r, m)) {
                rd_kafka_message_destroy(m);
                snprintf(err, sizeof(err), "out of memory");
                goto out;
            }
        }
        rd_kafka_assign(r.dlq_rk, NULL);
        if (next < hi[p]) {
            snprintf(err, sizeof(err), "%s [%d]: read to %" PRId64 " of %" PRId64 "%s%s",
                     r.dlq_topic, p, next, hi[p], ke ? ": " : ": Kafka did not answer",
                     ke ? rd_kafka_err2str(ke) : "");
            goto out;
        }
    }
    /* which letters to handle */
    for (size_t i = 0; i < r.n; i++) {
        struct letter *l = &r.ls[i];
        if (in_list(handled[l->partition], nhandled[l->partition], l->offset)) {
            l->st = L_DONE_BEFORE;
            r.before++;
        } else if (!selected(f, l)) {
            l->st = L_PASSED;
            r.passed++;
        } else if (!l->decoded || !l->sub || l->sub->local) {
            l->st = L_LEFT; /* nothing can apply it: a malformed event, or a route gone */
            r.left++;
            report(&r, l,
                   !l->decoded ? "malformed: it can never apply (see dlq list)"
                               : "no route carries its topic into this remote now");
        } else {
            l->st = L_TODO;
        }
    }
    /* the clocks of their keys, from every topic of their collections into the remote */
    for (size_t i = 0; i < r.n; i++) {
        struct letter *l = &r.ls[i];
        if (l->st != L_TODO)
            continue;
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++)
            seen = r.ls[k].st == L_TODO && strcmp(r.ls[k].ev.collection, l->ev.collection) == 0 &&
                   r.ls[k].orig_partition == l->orig_partition;
        for (size_t s = 0; s < r.nsubs && !seen; s++) {
            const struct routes_sub *sub = &r.subs[s];
            if (strcmp(sub->coll->collection, l->ev.collection) != 0)
                continue;
            int n = kread_partitions(r.read_rk, sub->topic);
            if (n <= l->orig_partition)
                continue; /* not there (yet): nothing of it to know */
            struct observing o = {&r, sub};
            if (kread_partition(r.read_rk, sub->topic, l->orig_partition, 0, observe, &o, err,
                                sizeof(err)))
                goto out;
        }
    }
    /* apply, in the DLQ's order */
    for (size_t i = 0; i < r.n && !signals_stop; i++) {
        struct letter *l = &r.ls[i];
        if (l->st != L_TODO)
            continue;
        plan_prune(&l->ev, l->sub->coll);
        if (!plan_touches(&l->ev, l->sub->coll) ||
            lww_decide(r.lww, &l->ev, false, true) == LWW_SKIP) {
            l->st = L_SUPERSEDED;
            r.superseded++;
            report(&r, l, "newer writes of its fields are on the remote already");
            continue;
        }
        struct apply_item why;
        memset(&why, 0, sizeof(why));
        int a = apply_one(&r, l, &why);
        if (a < 0) {
            l->st = L_LEFT;
            r.left++;
            break; /* the remote is down: the rest waits for the next run */
        }
        if (a == 1) {
            l->st = L_APPLIED;
            r.applied++;
            report(&r, l, NULL);
            continue;
        }
        char detail[700];
        snprintf(detail, sizeof(detail), "%ld %s: %s", why.status, why.code, why.message);
        if (dead_letter_anew(&r, l, &why)) {
            l->st = L_LEFT;
            r.left++;
            report(&r, l, "failed again, and Kafka refused its new dead letter: kept");
            continue;
        }
        l->st = L_FAILED;
        r.failed++;
        report(&r, l, detail);
    }
    for (size_t i = 0; i < r.n; i++)
        if (r.ls[i].st == L_TODO) { /* stopped before it */
            r.ls[i].st = L_LEFT;
            r.left++;
        }
    if (rd_kafka_flush(r.prod, KREAD_TIMEOUT_MS) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, sizeof(err), "new dead letters not acknowledged by Kafka: nothing committed");
        goto out;
    }
    /* remember: the handled prefix as the offset, the handled letters beyond it as metadata */
    for (int p = 0; p < np; p++) {
        rd_kafka_topic_partition_t *tp = &committed->elems[p];
        int64_t pos = tp->offset;
        for (size_t i = 0; i < r.n; i++) {
            struct letter *l = &r.ls[i];
            if (l->partition != p)
                continue;
            bool done = l->st == L_APPLIED || l->st == L_SUPERSEDED || l->st == L_FAILED ||
                        l->st == L_DONE_BEFORE;
            if (done && nhandled[p] < META_MAX / 2 &&
                !in_list(handled[p], nhandled[p], l->offset)) {
                handled[p][nhandled[p]++] = l->offset;
                qsort(handled[p], nhandled[p], sizeof(int64_t), cmp_i64);
            }
        }
        while (pos < hi[p] && in_list(handled[p], nhandled[p], pos))
            pos++;
        char meta[META_MAX + 64];
        if (redrive_meta_format(handled[p], nhandled[p], pos, meta, sizeof(meta))) {
            snprintf(err, sizeof(err),
                     "too many letters handled beyond ones the filter passed over in %s [%d]: "
                     "redrive without a filter",
                     r.dlq_topic, p);
            goto out;
        }
        tp->offset = pos;
        free(tp->metadata);
        tp->metadata = meta[0] ? strdup(meta) : NULL;
        tp->metadata_size = meta[0] ? strlen(meta) : 0;
    }
    if ((ke = rd_kafka_commit(r.dlq_rk, committed, 0))) {
        snprintf(err, sizeof(err), "committing group %s: %s", group, rd_kafka_err2str(ke));
        goto out;
    }
    fprintf(out,
            "# redrive of %s: %zu applied, %zu superseded, %zu failed again (dead-lettered "
            "anew), %zu left for a later run, %zu passed over by the filter, %zu redriven before\n",
            remote, r.applied, r.superseded, r.failed, r.left, r.passed, r.before);
    rc = r.failed || r.left ? 1 : 0;
out:
    if (rc && err[0])
        log_stderr("dxsync-consumer: dlq redrive: %s\n", err);
    for (size_t i = 0; i < r.n; i++) {
        if (r.ls[i].decoded)
            event_free(&r.ls[i].ev);
        rd_kafka_message_destroy(r.ls[i].msg);
    }
    free(r.ls);
    for (int p = 0; handled && p < np; p++)
        free(handled[p]);
    free(handled);
    free(nhandled);
    free(hi);
    if (committed)
        rd_kafka_topic_partition_list_destroy(committed);
    if (r.dlq_rk) {
        rd_kafka_consumer_close(r.dlq_rk);
        rd_kafka_destroy(r.dlq_rk);
    }
    if (r.read_rk) {
        rd_kafka_consumer_close(r.read_rk);
        rd_kafka_destroy(r.read_rk);
    }
    if (r.prod)
        rd_kafka_destroy(r.prod);
    http_client_free(r.http);
    lww_free(r.lww);
    routes_free(r.subs, r.nsubs);
    free(names);
    return rc;
}
