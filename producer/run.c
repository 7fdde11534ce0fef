#include "run.h"

#include "backoff.h"
#include "capture.h"
#include "cli.h"
#include "directus.h"
#include "http.h"
#include "log.h"
#include "pgoutput.h"
#include "publish.h"
#include "replication.h"
#include "signals.h"
#include "source.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATUS_INTERVAL_MS 10000
#define STATUS_MIN_GAP_MS  100

int producer_sync_user(const struct config_instance *inst, struct source *src, char *id,
                       size_t idlen, const char **how, char *err, size_t errlen)
{
    *how = "config";
    if (inst->sync_user) {
        util_strlcpy(id, inst->sync_user, idlen);
        return 0;
    }
    *how = "database";
    char lookup_err[512] = "";
    int found = src && inst->token
                    ? source_token_user(src, inst->token, id, idlen, lookup_err, sizeof(lookup_err))
                    : 0;
    if (found > 0)
        return 0;
    if (found < 0)
        log_info("producer",
                 "event=sync_user_lookup_failed instance=%s error=%s hint=\"asking Directus "
                 "(GET /users/me) instead\"",
                 inst->name, LOG_Q(lookup_err));
    *how = "directus";
    struct http_client *c = directus_client(inst, 10000, err, errlen);
    if (!c)
        return -1;
    struct backoff b;
    backoff_init(&b, 200, 30000, (uint64_t)util_wall_ms());
    int rc = -1;
    while (!signals_stop) {
        struct directus_user u;
        char why[768];
        enum directus_answer a = directus_user_fetch(c, &u, why, sizeof(why));
        if (a == DIRECTUS_OK) {
            util_strlcpy(id, u.id, idlen);
            rc = 0;
            break;
        }
        if (a == DIRECTUS_AUTH) {
            snprintf(err, errlen, "%s: %s: the token of instance %s is not valid", inst->url, why,
                     inst->name);
            break;
        }
        if (!directus_is_outage(a) && a != DIRECTUS_SERVER_ERROR) {
            snprintf(err, errlen, "%s: %s", inst->url, why); /* a refusal: never succeeds */
            break;
        }
        int64_t d = backoff_next(&b);
        log_warn("producer",
                 "event=directus_unreachable instance=%s url=%s error=\"%s\" retry_ms=%lld",
                 inst->name, inst->url, why, (long long)d);
        util_sleep_ms(d, &signals_stop);
    }
    if (rc && signals_stop && !err[0])
        snprintf(err, errlen, "stopped");
    http_client_free(c);
    return rc;
}

struct producer {
    const struct config *cfg;
    const struct config_instance *inst;
    struct metrics *m;
    struct source *src;
    struct publish *pub;
    struct capture *cap;
    struct pgoutput_decoder *dec;
    struct replication repl;
    bool repl_broken; /* a status update failed: the stream ends at the next read */
    bool holding;     /* a committed transaction is in hand, not yet in publish's watermark */
    char sync_user[64];
    struct metric *m_lsn, *m_lag_bytes, *m_lag_seconds, *m_reconnects, *m_active;
    int64_t standby_since; /* another producer holds the slot since (monotonic ms), 0 none */
};

/* How often a status goes to the server at the latest: 10 s, or a third of the
 * wal_sender_timeout this producer asks for when that is shorter (the server would otherwise end
 * a connection that waits on Kafka without reading). */
static int64_t status_interval(const struct producer *p)
{
    int64_t t = p->cfg->producer.wal_sender_timeout_ms / 3;
    return t > 0 && t < STATUS_INTERVAL_MS ? t : STATUS_INTERVAL_MS;
}

/* The slot is held by another producer of the instance: this one is a standby, healthy, and asks
 * for the slot again every producer.standby_retry_ms. Logged once when it starts waiting. */
static void stand_by(struct producer *p, const char *why)
{
    if (!p->standby_since) {
        p->standby_since = util_mono_ms();
        log_info("producer",
                 "event=standby instance=%s slot=%s reason=\"%s\" hint=\"another producer of "
                 "this instance streams from the slot; this one takes over when it lets go "
                 "(asking every %d ms)\"",
                 p->inst->name, source_slot(p->src), why, p->cfg->producer.standby_retry_ms);
    }
    metrics_set(p->m_active, 0);
    metrics_set_health(p->m, true, NULL);
    metrics_heartbeat(p->m);
}

/* The LSN that may be confirmed: acknowledged transactions, and, when nothing is pending and no
 * transaction is open or in hand (being completed, waiting, or given up on before publish took
 * it), everything the server has sent (idle sources must not hold WAL). */
static uint64_t flush_position(struct producer *p)
{
    int64_t t;
    uint64_t lsn = publish_confirmed(p->pub, &t);
    if (!p->holding && publish_idle(p->pub) && !capture_in_txn(p->cap) &&
        p->repl.received_lsn > lsn)
        lsn = p->repl.received_lsn;
    if (lsn < p->repl.flushed_lsn)
        lsn = p->repl.flushed_lsn; /* never report going backwards */
    return lsn;
}

static void update_metrics(struct producer *p, uint64_t flush)
{
    int64_t commit_ms;
    publish_confirmed(p->pub, &commit_ms);
    metrics_set(p->m_lsn, (double)flush);
    metrics_set(p->m_lag_bytes,
                p->repl.received_lsn > flush ? (double)(p->repl.received_lsn - flush) : 0);
    double lag_s = 0;
    if (!publish_idle(p->pub) && commit_ms > 0)
        lag_s = (double)(util_wall_ms() - commit_ms) / 1000.0;
    metrics_set(p->m_lag_seconds, lag_s > 0 ? lag_s : 0);
}

static int maybe_status(struct producer *p, char *err, size_t errlen)
{
    uint64_t flush = flush_position(p);
    int64_t since = util_mono_ms() - p->repl.last_status_ms;
    bool changed = flush != p->repl.flushed_lsn && since >= STATUS_MIN_GAP_MS;
    if (!changed && !p->repl.reply_requested && since < status_interval(p))
        return 0;
    update_metrics(p, flush);
    return replication_status(&p->repl, flush, false, err, errlen);
}

/* Called while the loop waits elsewhere (Kafka's queue full, SQL on the ordinary connection, a
 * transaction waiting for a collection's metadata): the replication connection gets its
 * standby status update at the usual interval, so the server does not end it after
 * wal_sender_timeout. Nothing is read from it meanwhile (the server waits for us), and the
 * flush position is the one of the loop: what Kafka acknowledged, never the transaction in hand. */
static void keepalive(void *opaque)
{
    struct producer *p = opaque;
    if (!p->repl.conn || p->repl_broken ||
        util_mono_ms() - p->repl.last_status_ms < status_interval(p))
        return;
    char err[256];
    uint64_t flush = flush_position(p);
    update_metrics(p, flush);
    if (replication_status(&p->repl, flush, false, err, sizeof(err))) {
        p->repl_broken = true;
        log_warn("producer", "event=status_failed reason=\"%s\"", err);
    }
}

/* Asks again, every 500 ms (the lookup asks the catalog every 5 s), until the waiting
 * transaction can be finished. NULL when stopped or on an error (err set). */
static struct capture_txn *wait_metadata(struct producer *p, char *err, size_t errlen)
{
    const char *coll;
    capture_waiting(p->cap, &coll);
    char why[320];
    snprintf(why, sizeof(why), "waiting for the metadata of collection %s", coll);
    log_warn("producer",
             "event=transaction_waiting collection=%s reason=metadata_unavailable "
             "hint=\"nothing after this transaction is confirmed until the collection's table "
             "can be read\"",
             LOG_Q(coll));
    metrics_set_health(p->m, false, why);
    int64_t since = util_mono_ms();
    struct capture_txn *txn = NULL;
    while (!signals_stop && !publish_failed(p->pub, err, errlen)) {
        for (int i = 0; i < 5 && !signals_stop; i++) {
            publish_poll(p->pub, 100);
            keepalive(p);
        }
        if (capture_resume(p->cap, &txn, err, errlen))
            return NULL;
        if (txn)
            break;
    }
    if (!txn) {
        if (signals_stop)
            snprintf(err, errlen, "stopped");
        return NULL;
    }
    log_info("producer", "event=transaction_resumed collection=%s waited_ms=%lld", LOG_Q(coll),
             (long long)(util_mono_ms() - since));
    metrics_set_health(p->m, true, NULL);
    return txn;
}

/* Handles one pgoutput message. -1 means: reconnect. */
static int on_data(struct producer *p, const uint8_t *data, size_t len, char *err, size_t errlen)
{
    struct pgoutput_msg msg;
    if (pgoutput_decode(p->dec, data, len, &msg, err, errlen))
        return -1;
    struct capture_txn *txn;
    if (capture_feed(p->cap, &msg, &txn, err, errlen))
        return -1;
    if (!txn && capture_waiting(p->cap, NULL)) {
        p->holding = true;
        if (!(txn = wait_metadata(p, err, errlen)))
            return -1;
    }
    if (!txn)
        return 0;
    p->holding = true; /* until publish has it: a failure below must not confirm past it */
    if (txn->nevents) {
        if (source_fill_rows(p->src, txn, err, errlen)) {
            char e2[256];
            if (source_connect(p->src, e2, sizeof(e2)) ||
                source_fill_rows(p->src, txn, err, errlen))
                return -1;
        }
    }
    if (publish_txn(p->pub, txn, &signals_stop, err, errlen))
        return -1;
    p->holding = false;
    return 0;
}

static void stream(struct producer *p)
{
    char err[1024];
    const uint8_t *data;
    size_t len;
    metrics_set_health(p->m, true, NULL);
    log_info("producer", "event=streaming instance=%s slot=%s", p->inst->name, source_slot(p->src));
    while (!signals_stop && !publish_failed(p->pub, err, sizeof(err)) && !app_reload_wanted()) {
        metrics_heartbeat(p->m);
        publish_poll(p->pub, 0);
        if (maybe_status(p, err, sizeof(err))) {
            log_warn("producer", "event=replication_lost reason=\"%s\"", err);
            return;
        }
        int timeout = publish_idle(p->pub) ? 100 : 5;
        enum replication_read rr =
            replication_read(&p->repl, timeout, &data, &len, err, sizeof(err));
        if (rr == REPL_CLOSED) {
            log_warn("producer", "event=replication_lost reason=\"%s\"", err);
            return;
        }
        if (rr == REPL_DATA && on_data(p, data, len, err, sizeof(err))) {
            if (!signals_stop)
                log_error("producer", "event=stream_error reason=\"%s\"", err);
            return;
        }
    }
}

static int setup(struct producer *p, char *err, size_t errlen)
{
    struct backoff b;
    backoff_init(&b, 200, 30000, (uint64_t)util_wall_ms());
    while (source_connect(p->src, err, errlen) || source_ensure_slot(p->src, err, errlen)) {
        if (signals_stop)
            return -1;
        int64_t d = backoff_next(&b);
        log_warn("producer", "event=database_unavailable reason=\"%s\" retry_ms=%lld", err,
                 (long long)d);
        metrics_set_health(p->m, false, err);
        util_sleep_ms(d, &signals_stop);
    }
    const char *const *names;
    size_t n = source_collections(p->src, &names);
    backoff_reset(&b);
    while (publish_ensure_topics(p->pub, names, n, err, errlen)) {
        if (signals_stop || publish_failed(p->pub, err, errlen))
            return -1;
        int64_t d = backoff_next(&b);
        log_warn("producer", "event=kafka_unavailable reason=\"%s\" retry_ms=%lld", err,
                 (long long)d);
        metrics_set_health(p->m, false, err);
        util_sleep_ms(d, &signals_stop);
    }
    for (size_t i = 0; i < n; i++) {
        const struct capture_collection *coll;
        source_lookup(p->src, names[i], &coll); /* load what exists now; the rest when it appears */
    }
    return 0;
}

int producer_run(const struct config *cfg, const struct config_instance *inst, struct metrics *m)
{
    struct producer p = {.cfg = cfg, .inst = inst, .m = m};
    char err[1024] = "";
    int rc = 1;
    char labels[96];
    snprintf(labels, sizeof(labels), "source=\"%s\"", inst->name);
    p.m_lsn = metrics_gauge(m, "dxsync_producer_confirmed_lsn",
                            "LSN confirmed to PostgreSQL as flushed", labels);
    p.m_lag_bytes = metrics_gauge(m, "dxsync_producer_replication_lag_bytes",
                                  "WAL received but not yet confirmed", labels);
    p.m_lag_seconds = metrics_gauge(m, "dxsync_producer_replication_lag_seconds",
                                    "Age of the oldest unconfirmed transaction", labels);
    p.m_reconnects = metrics_counter(m, "dxsync_producer_reconnects_total",
                                     "Replication connections lost", labels);
    p.m_active =
        metrics_gauge(m, "dxsync_producer_active",
                      "1 while this producer holds the slot and publishes; 0 standing by", labels);
    metrics_set_stall_ms(m, 120000);

    p.src = source_new(cfg, inst);
    const char *how = "";
    if (p.src &&
        producer_sync_user(inst, p.src, p.sync_user, sizeof(p.sync_user), &how, err, sizeof(err))) {
        log_error("producer", "event=sync_user_unknown reason=\"%s\"", err);
        source_free(p.src);
        return signals_stop ? 0 : 1;
    }
    if (p.src) {
        log_info("producer", "event=sync_user instance=%s user=%s from=%s", inst->name, p.sync_user,
                 how);
        /* the slot, for the status page and dashboards */
        char info[256];
        snprintf(info, sizeof(info), "source=\"%s\",slot=\"%s\"", inst->name, source_slot(p.src));
        metrics_set(metrics_gauge(m, "dxsync_producer_info", "1, labelled with the slot", info), 1);
    }
    p.pub = p.src ? publish_new(cfg, inst->name, m, err, sizeof(err)) : NULL;
    if (!p.src || !p.pub) {
        log_error("producer", "event=start_failed reason=\"%s\"", err[0] ? err : "out of memory");
        goto out;
    }
    struct capture_config cc = {
        .source = inst->name, .sync_user = p.sync_user, .lookup = source_lookup, .opaque = p.src};
    publish_set_wait_cb(p.pub, keepalive, &p);
    source_set_wait_cb(p.src, keepalive, &p);
    p.cap = capture_new(&cc);
    if (!p.cap)
        goto out;
    if (setup(&p, err, sizeof(err))) {
        rc = signals_stop ? 0 : 1;
        if (!signals_stop)
            log_error("producer", "event=start_failed reason=\"%s\"", err);
        goto out;
    }

    struct backoff b;
    backoff_init(&b, 200, 30000, (uint64_t)util_wall_ms());
    while (!signals_stop && !publish_failed(p.pub, err, sizeof(err)) && !app_reload_wanted()) {
        p.dec = pgoutput_decoder_new();
        if (!p.dec)
            goto out;
        p.repl_broken = false;
        int started =
            replication_start(&p.repl, inst->database, source_slot(p.src), source_slot(p.src),
                              cfg->producer.wal_sender_timeout_ms, err, sizeof(err));
        if (started == 1) { /* another producer streams: wait for the slot */
            pgoutput_decoder_free(p.dec);
            p.dec = NULL;
            stand_by(&p, err);
            util_sleep_ms(cfg->producer.standby_retry_ms, &signals_stop);
            continue;
        }
        if (started == 0) {
            if (p.standby_since)
                log_info("producer", "event=takeover instance=%s slot=%s standby_s=%.1f",
                         inst->name, source_slot(p.src),
                         (double)(util_mono_ms() - p.standby_since) / 1000.0);
            p.standby_since = 0;
            metrics_set(p.m_active, 1);
            backoff_reset(&b);
            stream(&p);
            metrics_set(p.m_active, 0);
        } else {
            log_warn("producer", "event=replication_unavailable reason=\"%s\"", err);
        }
        /* Leaving the stream: hand over what Kafka still owes, confirm it, then start over
         * from the slot's position (the server resends what was not confirmed). */
        bool reload = app_reload_wanted(); /* the stream was left for a reload, not lost */
        if (!reload)
            metrics_add(p.m_reconnects, 1);
        if (!signals_stop && !reload)
            metrics_set_health(m, false, "replication connection lost");
        if (signals_stop)
            publish_drain(p.pub, 10000, NULL); /* a second signal stops at once */
        else
            publish_drain(p.pub, -1, &signals_stop);
        if (p.repl.conn && PQstatus(p.repl.conn) == CONNECTION_OK)
            replication_status(&p.repl, flush_position(&p), false, err, sizeof(err));
        replication_stop(&p.repl);
        capture_reset(p.cap);
        p.holding = false; /* the server sends it again */
        pgoutput_decoder_free(p.dec);
        p.dec = NULL;
        if (signals_stop || reload || publish_failed(p.pub, err, sizeof(err)))
            break;
        int64_t d = backoff_next(&b);
        util_sleep_ms(d, &signals_stop);
        char e2[256];
        if (source_connect(p.src, e2, sizeof(e2)))
            log_warn("producer", "event=database_unavailable reason=\"%s\"", e2);
    }
    if (publish_failed(p.pub, err, sizeof(err))) {
        log_error("producer",
                  "event=stopping reason=\"%s\" (nothing more is confirmed; a "
                  "restart resends from the last confirmed LSN)",
                  err);
        metrics_set_health(m, false, err);
        rc = 1;
    } else {
        log_info("producer", "event=stopped instance=%s", inst->name);
        rc = 0;
    }
out:
    if (p.dec)
        pgoutput_decoder_free(p.dec);
    replication_stop(&p.repl);
    capture_free(p.cap);
    publish_free(p.pub, 5000);
    source_free(p.src);
    return rc;
}
