/* audit across sources: `audit --collection C --key K` without --source (replay.h). */
#include "replay.h"

#include "kread.h"

#include "event.h"
#include "kafka.h"
#include "log.h"
#include "lww.h"
#include "util.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* W_UNKNOWN: the remote's group could not be read (code: why, e.g. GROUP_AUTHORIZATION_FAILED) */
enum where_state { W_PENDING = 0, W_APPLIED, W_DEAD, W_UNKNOWN };

struct remote_state {
    const char *remote;
    enum where_state st;
    char code[64];
};

struct item_event {
    struct event ev;
    char *raw;
    const char *source;
    char topic[256];
    int32_t partition;
    int64_t offset;
    struct lww_stamp stamp;
    struct remote_state rs[16];
    size_t nrs;
};

struct audit {
    const struct config *cfg;
    const char *collection, *key;
    struct item_event *evs;
    size_t n, cap;
};

struct take {
    struct audit *a;
    const char *name; /* the source of the topic read, or the remote of the DLQ read */
};

static int take_event(void *arg, const rd_kafka_message_t *m)
{
    struct audit *a = ((struct take *)arg)->a;
    const char *source = ((struct take *)arg)->name;
    size_t kl = strlen(a->key);
    if (m->key_len != kl || memcmp(m->key, a->key, kl) != 0)
        return 0;
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 16;
        struct item_event *p = realloc(a->evs, nc * sizeof(*p));
        if (!p)
            return -1;
        a->evs = p;
        a->cap = nc;
    }
    struct item_event *ie = &a->evs[a->n];
    memset(ie, 0, sizeof(*ie));
    char why[256];
    if (event_decode(m->payload, m->len, &ie->ev, why, sizeof(why)))
        return 0; /* malformed: not an event of the item */
    ie->raw = malloc(m->len + 1);
    if (!ie->raw) {
        event_free(&ie->ev);
        return -1;
    }
    memcpy(ie->raw, m->payload, m->len);
    ie->raw[m->len] = '\0';
    ie->source = source;
    util_strlcpy(ie->topic, rd_kafka_topic_name(m->rkt), sizeof(ie->topic));
    ie->partition = m->partition;
    ie->offset = m->offset;
    a->n++;
    return 0;
}

/* A letter of the DLQ of remote (arg): marks the event it is the copy of. */
static int take_letter(void *arg, const rd_kafka_message_t *m)
{
    struct audit *a = ((struct take *)arg)->a;
    const char *remote = ((struct take *)arg)->name;
    char topic[256], part[16], off[24], code[64];
    kafka_header_get(m, "dxsync-original-topic", topic, sizeof(topic));
    kafka_header_get(m, "dxsync-original-partition", part, sizeof(part));
    kafka_header_get(m, "dxsync-original-offset", off, sizeof(off));
    kafka_header_get(m, "dxsync-error-code", code, sizeof(code));
    for (size_t i = 0; i < a->n; i++) {
        struct item_event *ie = &a->evs[i];
        if (strcmp(ie->topic, topic) != 0 || ie->partition != atoi(part) ||
            ie->offset != atoll(off))
            continue;
        for (size_t k = 0; k < ie->nrs; k++)
            if (strcmp(ie->rs[k].remote, remote) == 0) {
                ie->rs[k].st = W_DEAD;
                util_strlcpy(ie->rs[k].code, code, sizeof(ie->rs[k].code));
            }
    }
    return 0;
}

static int by_stamp(const void *pa, const void *pb)
{
    const struct item_event *x = pa, *y = pb;
    return lww_stamp_cmp(&x->stamp, &y->stamp);
}

static const char *state_name(const struct remote_state *r, char *buf, size_t len)
{
    if (r->st == W_DEAD)
        snprintf(buf, len, "dead-lettered(%s)", r->code[0] ? r->code : "?");
    else if (r->st == W_UNKNOWN)
        snprintf(buf, len, "unknown(%s)", r->code);
    else
        snprintf(buf, len, "%s", r->st == W_APPLIED ? "applied" : "pending");
    return buf;
}

int audit_all_run(const struct config *cfg, const char *collection, const char *key,
                  int64_t since_ms, bool json, FILE *out)
{
    char err[1024] = "", group[300];
    struct kafka_state st = {.component = "audit"};
    struct audit a = {.cfg = cfg, .collection = collection, .key = key};
    rd_kafka_t *rk = NULL;
    struct lww *w = NULL;
    const char **names = calloc(cfg->ninstances + 1, sizeof(char *));
    int rc = 1;
    size_t nsources = 0;
    if (!names) {
        snprintf(err, sizeof(err), "out of memory");
        goto out;
    }
    for (size_t i = 0; i < cfg->ninstances; i++)
        names[i] = cfg->instances[i].name;
    if (!(w = lww_new(names, cfg->ninstances))) {
        snprintf(err, sizeof(err), "out of memory");
        goto out;
    }
    snprintf(group, sizeof(group), "%s.audit", cfg->kafka.topic_prefix);
    if (!(rk = kafka_reader_new(cfg, &st, group, err, sizeof(err))))
        goto out;
    /* every source that publishes the collection: the key's partition of its topic */
    for (size_t i = 0; i < cfg->ninstances; i++) {
        const char *src = cfg->instances[i].name;
        if (!config_publishes(cfg, src, collection))
            continue;
        nsources++;
        char topic[256];
        if (kafka_topic_sync(cfg, src, collection, topic, sizeof(topic))) {
            snprintf(err, sizeof(err), "topic name too long");
            goto out;
        }
        int n = kread_partitions(rk, topic);
        if (n < 0) {
            snprintf(err, sizeof(err), "Kafka does not answer about %s", topic);
            goto out;
        }
        if (n == 0)
            continue; /* nothing published from there yet */
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        int32_t p = rd_kafka_msg_partitioner_murmur2(rkt, key, strlen(key), n, NULL, NULL);
        rd_kafka_topic_destroy(rkt);
        int64_t from = 0;
        if (since_ms >= 0) {
            rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(1);
            rd_kafka_topic_partition_list_add(t, topic, p)->offset = since_ms;
            if (rd_kafka_offsets_for_times(rk, t, KREAD_TIMEOUT_MS) == RD_KAFKA_RESP_ERR_NO_ERROR)
                from = t->elems[0].offset >= 0 ? t->elems[0].offset : INT64_MAX;
            rd_kafka_topic_partition_list_destroy(t);
        }
        struct take t = {&a, src};
        if (from != INT64_MAX &&
            kread_partition(rk, topic, p, from, take_event, &t, err, sizeof(err)))
            goto out;
    }
    if (nsources == 0) {
        snprintf(err, sizeof(err), "no route carries collection \"%s\"", collection);
        goto out;
    }
    /* the remotes each event is routed to */
    for (size_t i = 0; i < a.n; i++) {
        struct item_event *ie = &a.evs[i];
        lww_stamp_of(w, &ie->ev, &ie->stamp);
        for (size_t r = 0; r < cfg->nroutes && ie->nrs < DX_ARRAY_LEN(ie->rs); r++) {
            const struct config_route *rt = &cfg->routes[r];
            if (strcmp(rt->from, ie->source) != 0)
                continue;
            for (size_t c = 0; c < rt->ncollections; c++)
                if (strcmp(rt->collections[c].collection, collection) == 0)
                    ie->rs[ie->nrs++] = (struct remote_state){.remote = rt->to};
        }
    }
    /* applied: that remote's group committed past it; dead-lettered: in its DLQ */
    for (size_t i = 0; i < cfg->ninstances && a.n; i++) {
        const char *remote = cfg->instances[i].name;
        char g[300], dlq[300];
        snprintf(g, sizeof(g), "%s.apply.%s", cfg->kafka.topic_prefix, remote);
        snprintf(dlq, sizeof(dlq), "%s.dlq.%s", cfg->kafka.topic_prefix, remote);
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(4);
        for (size_t k = 0; k < a.n; k++)
            for (size_t r = 0; r < a.evs[k].nrs; r++)
                if (strcmp(a.evs[k].rs[r].remote, remote) == 0 &&
                    !rd_kafka_topic_partition_list_find(l, a.evs[k].topic, a.evs[k].partition))
                    rd_kafka_topic_partition_list_add(l, a.evs[k].topic, a.evs[k].partition);
        if (l->cnt) {
            bool warned = false;
            struct kafka_state gst = {.component = "audit"};
            char e2[1024];
            rd_kafka_t *grk = kafka_reader_new(cfg, &gst, g, e2, sizeof(e2));
            rd_kafka_resp_err_t gerr =
                grk ? rd_kafka_committed(grk, l, KREAD_TIMEOUT_MS) : RD_KAFKA_RESP_ERR__FAIL;
            /* a connection to the coordinator lost on the way: asked again, twice at most */
            for (int again = 0; grk && gerr == RD_KAFKA_RESP_ERR__TRANSPORT && again < 2; again++)
                gerr = rd_kafka_committed(grk, l, KREAD_TIMEOUT_MS);
            /* a group it may not read (no Describe on it) or that does not answer: said, and
             * the state shown as unknown, never as pending */
            for (size_t k = 0; k < a.n; k++) {
                rd_kafka_topic_partition_t *tp =
                    rd_kafka_topic_partition_list_find(l, a.evs[k].topic, a.evs[k].partition);
                rd_kafka_resp_err_t e = gerr ? gerr : tp ? tp->err : RD_KAFKA_RESP_ERR__FAIL;
                for (size_t r = 0; r < a.evs[k].nrs; r++) {
                    struct remote_state *rs = &a.evs[k].rs[r];
                    if (strcmp(rs->remote, remote) != 0)
                        continue;
                    if (e) {
                        rs->st = W_UNKNOWN;
                        util_strlcpy(rs->code, rd_kafka_err2name(e), sizeof(rs->code));
                    } else if (tp->offset > a.evs[k].offset) {
                        rs->st = W_APPLIED;
                    }
                }
                if (e && !warned) {
                    log_stderr("dxsync-consumer: audit: cannot read the committed offsets of "
                               "group %s (%s%s): what %s applied is shown as unknown\n",
                               g, grk ? rd_kafka_err2str(e) : e2,
                               e == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED ||
                                       e == RD_KAFKA_RESP_ERR__TIMED_OUT
                                   ? "; reading them needs Describe on that group, and a "
                                     "principal without it gets no answer"
                                   : "",
                               remote);
                    warned = true;
                }
            }
            if (grk) {
                rd_kafka_consumer_close(grk);
                rd_kafka_destroy(grk);
            }
            int n = kread_partitions(rk, dlq);
            struct take t = {&a, remote};
            for (int p = 0; p < n; p++)
                if (kread_partition(rk, dlq, p, 0, take_letter, &t, err, sizeof(err))) {
                    rd_kafka_topic_partition_list_destroy(l);
                    goto out;
                }
        }
        rd_kafka_topic_partition_list_destroy(l);
    }
    qsort(a.evs, a.n, sizeof(*a.evs), by_stamp);
    if (!json)
        fprintf(out, "# %s key %s from %zu source%s, oldest first (commit time, then source)\n",
                collection, key, nsources, nsources == 1 ? "" : "s");
    for (size_t i = 0; i < a.n; i++) {
        struct item_event *ie = &a.evs[i];
        char buf[96];
        if (json) {
            fprintf(out,
                    "{\"event\":%s,\"topic\":\"%s\",\"partition\":%d,\"offset\":%" PRId64
                    ",\"remotes\":{",
                    ie->raw, ie->topic, (int)ie->partition, ie->offset);
            for (size_t r = 0; r < ie->nrs; r++)
                fprintf(out, "%s\"%s\":\"%s\"", r ? "," : "", ie->rs[r].remote,
                        state_name(&ie->rs[r], buf, sizeof(buf)));
            fprintf(out, "}}\n");
            continue;
        }
        char fields[512] = "-";
        const cJSON *obj = ie->ev.action == EVENT_DELETE ? NULL
                           : ie->ev.delta                ? ie->ev.delta
                                                         : ie->ev.data;
        struct util_buf b = {0};
        for (const cJSON *it = cJSON_IsObject(obj) ? obj->child : NULL; it; it = it->next)
            util_buf_printf(&b, "%s%s", b.len ? "," : "", it->string);
        if (b.len)
            util_strlcpy(fields, b.data, sizeof(fields));
        util_buf_free(&b);
        fprintf(out, "%s  %-8s %-8s user=%s  fields=%s  event=%s  %s[%d]@%" PRId64 " ",
                ie->ev.timestamp, ie->source, event_action_name(ie->ev.action),
                ie->ev.user ? ie->ev.user : "-", fields, ie->ev.event_id, ie->topic,
                (int)ie->partition, ie->offset);
        for (size_t r = 0; r < ie->nrs; r++)
            fprintf(out, " %s=%s", ie->rs[r].remote, state_name(&ie->rs[r], buf, sizeof(buf)));
        fprintf(out, "\n");
    }
    if (!json)
        fprintf(out, "# %zu event%s\n", a.n, a.n == 1 ? "" : "s");
    rc = 0;
out:
    if (rc && err[0])
        log_stderr("dxsync-consumer: audit: %s\n", err);
    for (size_t i = 0; i < a.n; i++) {
        event_free(&a.evs[i].ev);
        free(a.evs[i].raw);
    }
    free(a.evs);
    if (rk) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    lww_free(w);
    free(names);
    return rc;
}
