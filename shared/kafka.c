#include "kafka.h"

#include "backoff.h"
#include "log.h"
#include "signals.h"
#include "util.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct kafka_state *st = opaque;
    const char *comp = st && st->component ? st->component : "kafka";
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, why, sizeof(why));
        log_error(comp, "event=kafka_fatal error=%s reason=%s", rd_kafka_err2name(orig),
                  LOG_Q(why));
        if (st) {
            util_strlcpy(st->fatal_reason, why, sizeof(st->fatal_reason));
            st->fatal = true;
        }
        return;
    }
    if (st) {
        st->brokers_down = err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN;
        /* all brokers down says less than the error before it (a handshake, a password) */
        if (!st->brokers_down || !st->last_error[0]) {
            util_strlcpy(st->last_error, reason, sizeof(st->last_error));
            log_redact(st->last_error, sizeof(st->last_error));
        }
    }
    log_warn(comp, "event=kafka_error error=%s reason=%s",
             rd_kafka_err2name((rd_kafka_resp_err_t)err), LOG_Q(reason));
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    enum log_level l = level <= 3   ? LOG_LEVEL_ERROR
                       : level <= 4 ? LOG_LEVEL_WARN
                       : level <= 6 ? LOG_LEVEL_INFO
                                    : LOG_LEVEL_DEBUG;
    /* librdkafka's own info lines are noise at our info level. */
    if (l == LOG_LEVEL_INFO)
        l = LOG_LEVEL_DEBUG;
    if (log_enabled(l))
        log_write(l, "librdkafka", "facility=%s msg=%s", LOG_Q(fac), LOG_Q(buf));
}

static int set(rd_kafka_conf_t *conf, const char *k, const char *v, const char *origin, char *err,
               size_t errlen)
{
    char e[512];
    if (rd_kafka_conf_set(conf, k, v, e, sizeof(e)) != RD_KAFKA_CONF_OK) {
        snprintf(err, errlen, "%s%s: %s", origin, k, e);
        return -1;
    }
    return 0;
}

rd_kafka_conf_t *kafka_conf_new(const struct config *cfg, struct kafka_state *state,
                                const char *const *defaults, const char *const *forced, char *err,
                                size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (set(conf, "bootstrap.servers", cfg->kafka.brokers, "kafka.brokers ", err, errlen) ||
        set(conf, "client.id", "dxsync", "", err, errlen))
        goto bad;
    for (size_t i = 0; defaults && defaults[i]; i += 2)
        if (set(conf, defaults[i], defaults[i + 1], "", err, errlen))
            goto bad;
    for (size_t i = 0; i < cfg->kafka.nproperties; i++)
        if (set(conf, cfg->kafka.properties[i].key, cfg->kafka.properties[i].value,
                "kafka.properties.", err, errlen))
            goto bad;
    for (size_t i = 0; forced && forced[i]; i += 2)
        if (set(conf, forced[i], forced[i + 1], "", err, errlen))
            goto bad;
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_opaque(conf, state);
    return conf;
bad:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

rd_kafka_t *kafka_client_new(rd_kafka_type_t type, rd_kafka_conf_t *conf, const char *what,
                             char *err, size_t errlen)
{
    char e[512];
    rd_kafka_t *rk = rd_kafka_new(type, conf, e, sizeof(e));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "%s: %s", what, e);
    }
    return rk;
}

static int fits(int n, size_t len)
{
    return n < 0 || (size_t)n >= len || n > 249 ? -1 : 0; /* Kafka names: at most 249 chars */
}

int kafka_topic_sync(const struct config *cfg, const char *source, const char *collection,
                     char *buf, size_t len)
{
    return fits(snprintf(buf, len, "%s.%s.%s", cfg->kafka.topic_prefix, source, collection), len);
}

int kafka_topic_errors(const struct config *cfg, char *buf, size_t len)
{
    return fits(snprintf(buf, len, "%s.errors", cfg->kafka.topic_prefix), len);
}

int kafka_topic_dlq(const struct config *cfg, const char *remote, char *buf, size_t len)
{
    return fits(snprintf(buf, len, "%s.dlq.%s", cfg->kafka.topic_prefix, remote), len);
}

int kafka_group_apply(const struct config *cfg, const char *remote, char *buf, size_t len)
{
    return fits(snprintf(buf, len, "%s.apply.%s", cfg->kafka.topic_prefix, remote), len);
}

int kafka_group_notify(const struct config *cfg, char *buf, size_t len)
{
    return fits(snprintf(buf, len, "%s.notify", cfg->kafka.topic_prefix), len);
}

/* The principal named in permission errors: kafka.properties' sasl.username, if any. */
static const char *principal(const struct config *cfg)
{
    for (size_t i = 0; i < cfg->kafka.nproperties; i++)
        if (strcmp(cfg->kafka.properties[i].key, "sasl.username") == 0)
            return cfg->kafka.properties[i].value;
    return NULL;
}

/* Which of topics the cluster's metadata shows with partitions, in seen[] (the rest are
 * missing, or hidden from a principal without Describe on them). Returns 0, or -1 with err set
 * when the metadata cannot be read. */
static int topics_seen(rd_kafka_t *rk, const char *const *topics, size_t ntopics, bool *seen,
                       int timeout_ms, char *err, size_t errlen)
{
    const struct rd_kafka_metadata *md = NULL;
    /* in slices of a second: a stop (SIGTERM) is not held up while no broker answers (down, a
     * wrong CA, a refused password) */
    int64_t deadline = util_mono_ms() + timeout_ms;
    rd_kafka_resp_err_t e;
    for (;;) {
        int64_t left = deadline - util_mono_ms();
        e = rd_kafka_metadata(rk, 1, NULL, &md, left > 1000 ? 1000 : left > 0 ? (int)left : 1);
        if (e != RD_KAFKA_RESP_ERR__TIMED_OUT || signals_stop || util_mono_ms() >= deadline)
            break;
    }
    if (e) {
        snprintf(err, errlen, "reading the topics' metadata: %s", rd_kafka_err2str(e));
        return -1;
    }
    for (size_t i = 0; i < ntopics; i++) {
        seen[i] = false;
        for (int t = 0; t < md->topic_cnt; t++)
            if (strcmp(md->topics[t].topic, topics[i]) == 0 && !md->topics[t].err &&
                md->topics[t].partition_cnt > 0)
                seen[i] = true;
    }
    rd_kafka_metadata_destroy(md);
    return 0;
}

int kafka_create_topics(rd_kafka_t *rk, const struct config *cfg, const char *const *topics,
                        size_t ntopics, const bool *seen, bool validate_only, int timeout_ms,
                        char *err, size_t errlen)
{
    int rc = -1;
    size_t nnew = 0;
    rd_kafka_NewTopic_t **nt = calloc(ntopics, sizeof(*nt));
    rd_kafka_queue_t *q = NULL;
    rd_kafka_AdminOptions_t *opts = NULL;
    rd_kafka_event_t *ev = NULL;
    char e[512];
    if (!nt) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char retention[32];
    snprintf(retention, sizeof(retention), "%lld", (long long)cfg->kafka.retention_ms);
    for (size_t i = 0; i < ntopics; i++) {
        if (seen && seen[i])
            continue;
        rd_kafka_NewTopic_t *t = rd_kafka_NewTopic_new(topics[i], cfg->kafka.partitions,
                                                       cfg->kafka.replication_factor, e, sizeof(e));
        if (!t) {
            snprintf(err, errlen, "topic %s: %s", topics[i], e);
            goto out;
        }
        nt[nnew++] = t;
        if (rd_kafka_NewTopic_set_config(t, "retention.ms", retention) ||
            rd_kafka_NewTopic_set_config(t, "max.message.bytes", KAFKA_MESSAGE_MAX_BYTES)) {
            snprintf(err, errlen, "topic %s: cannot set its configuration", topics[i]);
            goto out;
        }
    }
    q = rd_kafka_queue_new(rk);
    opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, e, sizeof(e));
    rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, e, sizeof(e));
    if (validate_only)
        rd_kafka_AdminOptions_set_validate_only(opts, 1, e, sizeof(e));
    rd_kafka_CreateTopics(rk, nt, nnew, opts, q);
    ev = rd_kafka_queue_poll(q, timeout_ms + 2000);
    if (!ev) {
        snprintf(err, errlen, "creating topics timed out after %d ms (is Kafka at %s up?)",
                 timeout_ms, cfg->kafka.brokers);
        goto out;
    }
    if (rd_kafka_event_error(ev)) {
        snprintf(err, errlen, "creating topics: %s", rd_kafka_event_error_string(ev));
        goto out;
    }
    const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
    size_t n;
    const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &n);
    for (size_t i = 0; i < n; i++) {
        rd_kafka_resp_err_t te = rd_kafka_topic_result_error(tr[i]);
        const char *name = rd_kafka_topic_result_name(tr[i]);
        if (te == RD_KAFKA_RESP_ERR_NO_ERROR && validate_only) {
            continue;
        } else if (te == RD_KAFKA_RESP_ERR_NO_ERROR) {
            log_info("kafka", "event=topic_created topic=%s partitions=%d", LOG_Q(name),
                     cfg->kafka.partitions);
        } else if (te == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
                   te == RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED) {
            const char *who = principal(cfg);
            snprintf(err, errlen,
                     "topic %s does not exist and %s%s may not create it (%s): create it "
                     "beforehand (%d partitions, retention.ms %lld, max.message.bytes %s) or "
                     "grant CREATE on it",
                     name, who ? "User:" : "", who ? who : "this client", rd_kafka_err2name(te),
                     cfg->kafka.partitions, (long long)cfg->kafka.retention_ms,
                     KAFKA_MESSAGE_MAX_BYTES);
            goto out;
        } else if (te != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            const char *msg = rd_kafka_topic_result_error_string(tr[i]);
            snprintf(err, errlen, "topic %s: %s", name, msg ? msg : rd_kafka_err2str(te));
            goto out;
        }
    }
    rc = 0;
out:
    if (ev)
        rd_kafka_event_destroy(ev);
    if (opts)
        rd_kafka_AdminOptions_destroy(opts);
    if (q)
        rd_kafka_queue_destroy(q);
    for (size_t i = 0; i < nnew; i++)
        rd_kafka_NewTopic_destroy(nt[i]);
    free(nt);
    return rc;
}

int kafka_ensure_topics(rd_kafka_t *rk, const struct config *cfg, const char *const *topics,
                        size_t ntopics, int timeout_ms, char *err, size_t errlen)
{
    if (ntopics == 0)
        return 0;
    bool *seen = calloc(ntopics, sizeof(*seen));
    int rc = -1;
    if (!seen) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    /* Describe first: topics an admin created beforehand need no Create permission. */
    if (topics_seen(rk, topics, ntopics, seen, timeout_ms, err, errlen))
        goto out;
    size_t missing = 0;
    for (size_t i = 0; i < ntopics; i++)
        missing += !seen[i];
    if (missing == 0) {
        rc = 0;
        goto out;
    }
    if (kafka_create_topics(rk, cfg, topics, ntopics, seen, false, timeout_ms, err, errlen))
        goto out;
    /* Created is not yet visible: the broker's metadata lags the controller a little, and a
     * consumer that subscribes before it sees the topic waits for the next metadata refresh
     * (minutes). Wait until every topic shows its partitions. A topic that exists but never
     * shows is one this principal may not Describe. */
    int64_t deadline = util_mono_ms() + timeout_ms;
    for (;;) {
        if (topics_seen(rk, topics, ntopics, seen, 5000, err, errlen) == 0) {
            size_t i = 0;
            while (i < ntopics && seen[i])
                i++;
            if (i == ntopics)
                break;
            if (util_mono_ms() >= deadline) {
                const char *who = principal(cfg);
                snprintf(err, errlen,
                         "topic %s exists but %s%s may not see it: grant DESCRIBE on it (and "
                         "READ or WRITE as the program needs)",
                         topics[i], who ? "User:" : "", who ? who : "this client");
                goto out;
            }
        } else if (util_mono_ms() >= deadline) {
            goto out;
        }
        util_sleep_ms(100, NULL);
    }
    rc = 0;
out:
    free(seen);
    return rc;
}

rd_kafka_resp_err_t kafka_produce(rd_kafka_t *rk, const char *topic, int32_t partition,
                                  const void *key, size_t keylen, void *value, size_t len,
                                  int msgflags, const struct kafka_header *hdrs, size_t nhdrs,
                                  void *opaque)
{
    rd_kafka_vu_t vu[16];
    size_t n = 0;
    vu[n].vtype = RD_KAFKA_VTYPE_TOPIC;
    vu[n++].u.cstr = topic;
    vu[n].vtype = RD_KAFKA_VTYPE_PARTITION;
    vu[n++].u.i32 = partition;
    if (key) {
        vu[n].vtype = RD_KAFKA_VTYPE_KEY;
        vu[n].u.mem.ptr = (void *)(uintptr_t)key;
        vu[n++].u.mem.size = keylen;
    }
    vu[n].vtype = RD_KAFKA_VTYPE_VALUE;
    vu[n].u.mem.ptr = value;
    vu[n++].u.mem.size = len;
    vu[n].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
    vu[n++].u.i = msgflags;
    vu[n].vtype = RD_KAFKA_VTYPE_OPAQUE;
    vu[n++].u.ptr = opaque;
    for (size_t i = 0; i < nhdrs && n < DX_ARRAY_LEN(vu); i++) {
        vu[n].vtype = RD_KAFKA_VTYPE_HEADER;
        vu[n].u.header.name = hdrs[i].name;
        vu[n].u.header.val = hdrs[i].value;
        vu[n++].u.header.size = (ssize_t)hdrs[i].len;
    }
    rd_kafka_error_t *e = rd_kafka_produceva(rk, vu, n);
    if (!e)
        return RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_resp_err_t code = rd_kafka_error_code(e);
    rd_kafka_error_destroy(e);
    return code;
}

void kafka_header_get(const rd_kafka_message_t *msg, const char *name, char *buf, size_t len)
{
    rd_kafka_headers_t *hdrs = NULL;
    const void *val;
    size_t sz;
    buf[0] = '\0';
    if (rd_kafka_message_headers(msg, &hdrs) || !hdrs)
        return;
    if (rd_kafka_header_get_last(hdrs, name, &val, &sz) || !val)
        return;
    if (sz >= len)
        sz = len - 1;
    memcpy(buf, val, sz);
    buf[sz] = '\0';
}

rd_kafka_conf_t *kafka_group_conf_new(const struct config *cfg, struct kafka_state *state,
                                      const char *group, const char *const *defaults, char *err,
                                      size_t errlen)
{
    const char *const forced[] = {"group.id",
                                  group,
                                  "enable.auto.offset.store",
                                  "false",
                                  "enable.auto.commit",
                                  "true",
                                  "auto.offset.reset",
                                  "earliest",
                                  "enable.partition.eof",
                                  "false",
                                  "partition.assignment.strategy",
                                  "range",
                                  NULL};
    return kafka_conf_new(cfg, state, defaults, forced, err, errlen);
}

int kafka_ensure_topics_wait(rd_kafka_t *rk, const struct config *cfg, const char *const *topics,
                             size_t ntopics, const struct kafka_state *state,
                             volatile sig_atomic_t *stop)
{
    struct backoff b;
    backoff_init(&b, 500, 30000, (uint64_t)util_wall_ms());
    char err[1024];
    while (!*stop && !state->fatal) {
        if (kafka_ensure_topics(rk, cfg, topics, ntopics, 15000, err, sizeof(err)) == 0)
            return 0;
        int64_t d = backoff_next(&b);
        log_warn(state->component, "event=ensure_topics_failed error=%s retry_ms=%" PRId64,
                 LOG_Q(err), d);
        util_sleep_ms(d, stop);
    }
    return -1;
}

void kafka_leave_group(rd_kafka_t *rk, const char *component)
{
    rd_kafka_resp_err_t err = rd_kafka_unsubscribe(rk);
    if (err) {
        log_warn(component, "event=unsubscribe_failed error=%s", rd_kafka_err2name(err));
        return;
    }
    /* librdkafka sends the LeaveGroup once the revoke is served, unless the handle is closing
     * by then: serve it here, and give the request a moment to leave */
    int64_t now = util_mono_ms(), until = now + 5000, empty_at = 0;
    while (now < until && (!empty_at || now < empty_at + 300)) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(rk, 50);
        if (msg)
            rd_kafka_message_destroy(msg); /* nothing of it was taken: read again later */
        rd_kafka_topic_partition_list_t *a = NULL;
        if (!empty_at && !rd_kafka_assignment(rk, &a) && a->cnt == 0)
            empty_at = util_mono_ms();
        if (a)
            rd_kafka_topic_partition_list_destroy(a);
        now = util_mono_ms();
    }
}

rd_kafka_t *kafka_reader_new(const struct config *cfg, struct kafka_state *st, const char *group,
                             char *err, size_t errlen)
{
    static const char *const forced[] = {"enable.auto.commit", "false", "enable.auto.offset.store",
                                         "false", NULL};
    rd_kafka_conf_t *conf = kafka_conf_new(cfg, st, NULL, forced, err, errlen);
    if (!conf)
        return NULL;
    char e[512];
    if (rd_kafka_conf_set(conf, "group.id", group, e, sizeof(e)) != RD_KAFKA_CONF_OK) {
        snprintf(err, errlen, "group.id: %.400s", e);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return kafka_client_new(RD_KAFKA_CONSUMER, conf, "kafka", err, errlen);
}
