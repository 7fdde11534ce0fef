#include "verify.h"

#include "directus.h"
#include "event.h"
#include "http.h"
#include "kafka.h"
#include "log.h"
#include "routes.h"
#include "signals.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAGE       1000
#define SHOW_MAX   50
#define TIMEOUT_MS 10000

struct coll_run {
    const struct config *cfg;
    const char *remote;
    const struct routes_sub *sub;
    struct http_client *src, *dst;
    char pk[128];
    bool repair, json, tty, replica; /* replica: the remote does not publish the collection */
    FILE *out;
    rd_kafka_t *prod;
    size_t compared, missing, extra, different, shown, repaired;
    int64_t t0;
    char err[1024];
};

/* SEARCH the collection's items (directus_items_path) with query; the data array (owned by *root)
 * or NULL with r->err set. */
static const cJSON *search(struct coll_run *r, struct http_client *h, const char *who, cJSON *query,
                           cJSON **root)
{
    *root = NULL;
    char path[600];
    if (directus_items_path(r->sub->coll->collection, path, sizeof(path))) {
        snprintf(r->err, sizeof(r->err), "collection name too long");
        cJSON_Delete(query);
        return NULL;
    }
    cJSON *body = cJSON_CreateObject();
    cJSON_AddItemToObject(body, "query", query);
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    if (!text) {
        snprintf(r->err, sizeof(r->err), "out of memory");
        return NULL;
    }
    struct http_response res;
    http_request(h, "SEARCH", path, text, &res);
    free(text);
    const cJSON *data = NULL;
    if (res.klass == HTTP_OK && res.body) {
        *root = cJSON_ParseWithLength(res.body, res.len);
        data = cJSON_GetObjectItemCaseSensitive(*root, "data");
        if (!cJSON_IsArray(data))
            data = NULL;
    }
    if (!data)
        snprintf(r->err, sizeof(r->err), "reading %s from %s: %ld %s%s%s", r->sub->coll->collection,
                 who, res.status, res.code, res.code[0] ? ": " : "", res.message);
    http_response_free(&res);
    return data;
}

static cJSON *fields_array(const struct coll_run *r)
{
    cJSON *f = cJSON_CreateArray();
    cJSON_AddItemToArray(f, cJSON_CreateString(r->pk));
    for (size_t i = 0; i < r->sub->coll->nfields; i++)
        if (strcmp(r->sub->coll->fields[i], r->pk) != 0)
            cJSON_AddItemToArray(f, cJSON_CreateString(r->sub->coll->fields[i]));
    return f;
}

/* A page of h's items sorted by key, after the key `after` (NULL: from the first). Directus
 * filters numbers with _gt, but not uuids nor strings (400 INVALID_QUERY): those pages go by
 * offset, the `seen` items before. */
static const cJSON *page(struct coll_run *r, struct http_client *h, const char *who,
                         const cJSON *after, size_t seen, cJSON **root)
{
    cJSON *q = cJSON_CreateObject();
    cJSON_AddItemToObject(q, "fields", fields_array(r));
    cJSON *sort = cJSON_AddArrayToObject(q, "sort");
    cJSON_AddItemToArray(sort, cJSON_CreateString(r->pk));
    cJSON_AddNumberToObject(q, "limit", PAGE);
    if (cJSON_IsNumber(after)) {
        cJSON *filter = cJSON_AddObjectToObject(q, "filter");
        cJSON *cond = cJSON_AddObjectToObject(filter, r->pk);
        cJSON_AddItemToObject(cond, "_gt", cJSON_Duplicate(after, true));
    } else if (after) {
        cJSON_AddNumberToObject(q, "offset", (double)seen);
    }
    return search(r, h, who, q, root);
}

/* h's items whose keys are those of items (a data array). */
static const cJSON *those(struct coll_run *r, struct http_client *h, const char *who,
                          const cJSON *items, cJSON **root)
{
    cJSON *q = cJSON_CreateObject();
    cJSON_AddItemToObject(q, "fields", fields_array(r));
    cJSON *keys = cJSON_CreateArray();
    const cJSON *it;
    cJSON_ArrayForEach(it, items)
    {
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(it, r->pk);
        if (k)
            cJSON_AddItemToArray(keys, cJSON_Duplicate(k, true));
    }
    cJSON *filter = cJSON_AddObjectToObject(q, "filter");
    cJSON *cond = cJSON_AddObjectToObject(filter, r->pk);
    cJSON_AddItemToObject(cond, "_in", keys);
    cJSON_AddNumberToObject(q, "limit", -1);
    return search(r, h, who, q, root);
}

static const cJSON *find_key(const struct coll_run *r, const cJSON *items, const cJSON *key)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, items)
    {
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(it, r->pk);
        if (k && util_json_same(k, key))
            return it;
    }
    return NULL;
}

/* One differing key: a line (the first SHOW_MAX; all in JSON). */
static void show(struct coll_run *r, const char *what, const cJSON *key, const char *detail)
{
    char k[256];
    if (event_key_text(key, k, sizeof(k)))
        util_strlcpy(k, "?", sizeof(k));
    if (r->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "collection", r->sub->coll->collection);
        cJSON_AddStringToObject(o, "source", r->sub->route->from);
        cJSON_AddStringToObject(o, "remote", r->remote);
        cJSON_AddStringToObject(o, "key", k);
        cJSON_AddStringToObject(o, "state", what);
        if (detail)
            cJSON_AddStringToObject(o, "fields", detail);
        char *s = cJSON_PrintUnformatted(o);
        if (s)
            fprintf(r->out, "%s\n", s);
        free(s);
        cJSON_Delete(o);
        return;
    }
    if (r->shown++ < SHOW_MAX)
        fprintf(r->out, "%-10s %-20s %-36s %s\n", what, r->sub->coll->collection, k,
                detail ? detail : "");
}

/* --repair: the source's row (snapshot) or a delete, into the source's topic, as a new write. */
static int publish_repair(struct coll_run *r, const cJSON *key, const cJSON *row)
{
    char topic[256], k[256], ts[32];
    if (kafka_topic_sync(r->cfg, r->sub->route->from, r->sub->coll->collection, topic,
                         sizeof(topic)) ||
        event_key_text(key, k, sizeof(k)))
        return -1;
    int64_t now = util_wall_ms();
    util_iso8601_ms(now, ts, sizeof(ts));
    struct event ev = {0};
    struct util_buf id = {0};
    util_buf_printf(&id, "%s:verify:%s:%s", r->sub->route->from, k, ts);
    ev.event_id = util_buf_steal(&id);
    ev.source = (char *)r->sub->route->from;
    ev.collection = (char *)r->sub->coll->collection;
    ev.action = row ? EVENT_SNAPSHOT : EVENT_DELETE;
    ev.key = (cJSON *)key;
    ev.key_text = k;
    ev.data = (cJSON *)row;
    ev.timestamp = ts;
    ev.has_commit_us = true;
    ev.commit_us = now * 1000;
    /* a delete must name an activity (the event format): 0, none, for a repair */
    ev.has_activity_id = !row;
    ev.activity_id = 0;
    char *json = event_encode(&ev);
    const char *action = row ? "snapshot" : "delete";
    struct kafka_header h[] = {{"dxsync-event-id", ev.event_id, strlen(ev.event_id)},
                               {"dxsync-action", action, strlen(action)},
                               {"dxsync-source", ev.source, strlen(ev.source)}};
    rd_kafka_resp_err_t e =
        json ? kafka_produce(r->prod, topic, RD_KAFKA_PARTITION_UA, k, strlen(k), json,
                             strlen(json), RD_KAFKA_MSG_F_FREE, h, DX_ARRAY_LEN(h), NULL)
             : RD_KAFKA_RESP_ERR__FAIL;
    free(ev.event_id);
    if (e) {
        free(json);
        snprintf(r->err, sizeof(r->err), "publishing a repair to %s: %s", topic,
                 rd_kafka_err2str(e));
        return -1;
    }
    rd_kafka_poll(r->prod, 0);
    r->repaired++;
    return 0;
}

static void progress(struct coll_run *r, const char *phase)
{
    if (r->tty)
        log_stderr("\r%s from %s: %s %zu items...", r->sub->coll->collection, r->sub->route->from,
                   phase, r->compared);
}

/* Pass 1: a source item against the remote's (NULL when it has none). */
static int source_item(struct coll_run *r, const cJSON *it, const cJSON *there)
{
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(it, r->pk);
    r->compared++;
    if (!there) {
        r->missing++;
        show(r, "missing", key, NULL);
        return r->repair ? publish_repair(r, key, it) : 0;
    }
    struct util_buf diff = {0};
    for (size_t f = 0; f < r->sub->coll->nfields; f++) {
        const char *name = r->sub->coll->fields[f];
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(it, name);
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(there, name);
        if ((!a) == (!b) && (!a || util_json_same(a, b)))
            continue;
        char *av = a ? cJSON_PrintUnformatted(a) : NULL;
        char *bv = b ? cJSON_PrintUnformatted(b) : NULL;
        util_buf_printf(&diff, "%s%s: %s=%.60s %s=%.60s", diff.len ? "; " : "", name,
                        r->sub->route->from, av ? av : "(absent)", r->remote, bv ? bv : "(absent)");
        free(av);
        free(bv);
    }
    int rc = 0;
    if (diff.len) {
        r->different++;
        show(r, "different", key, diff.data);
        if (r->repair)
            rc = publish_repair(r, key, it);
    }
    util_buf_free(&diff);
    return rc;
}

/* Pass 2: a remote item the source lacks (there NULL) is extra. */
static int remote_item(struct coll_run *r, const cJSON *it, const cJSON *there)
{
    if (there)
        return 0;
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(it, r->pk);
    r->extra++;
    show(r, "extra", key,
         r->replica ? NULL : "(the remote publishes this collection too: not repaired)");
    return r->repair && r->replica ? publish_repair(r, key, NULL) : 0;
}

/* Pages through `from` (sorted by key) and, for each page, the other side's items of its keys;
 * fn gets each item of the page and its counterpart (or NULL). 0, or -1 with r->err. */
static int pass(struct coll_run *r, struct http_client *from, const char *from_name,
                struct http_client *other, const char *other_name, const char *phase,
                int (*fn)(struct coll_run *, const cJSON *, const cJSON *))
{
    cJSON *after = NULL;
    int rc = 0;
    size_t seen = 0;
    for (size_t n = PAGE; n == PAGE && !rc;) {
        if (signals_stop) {
            snprintf(r->err, sizeof(r->err), "stopped by a signal");
            rc = -1;
            break;
        }
        cJSON *proot = NULL, *oroot = NULL;
        const cJSON *items = page(r, from, from_name, after, seen, &proot);
        n = items ? (size_t)cJSON_GetArraySize(items) : 0;
        const cJSON *theirs = n ? those(r, other, other_name, items, &oroot) : NULL;
        if (!items || (n && !theirs)) {
            rc = -1;
        } else if (n) {
            const cJSON *it;
            cJSON_ArrayForEach(it, items)
            {
                if (fn(r, it, find_key(r, theirs, cJSON_GetObjectItemCaseSensitive(it, r->pk)))) {
                    rc = -1;
                    break;
                }
            }
            seen += n;
            const cJSON *last = cJSON_GetArrayItem(items, (int)n - 1);
            cJSON_Delete(after);
            after = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(last, r->pk), true);
            progress(r, phase);
        }
        cJSON_Delete(proot);
        cJSON_Delete(oroot);
    }
    cJSON_Delete(after);
    return rc;
}

int verify_run(const struct config *cfg, const char *remote, const char *collection, bool repair,
               bool json, FILE *out)
{
    struct routes_sub *subs = NULL;
    size_t nsubs = 0, colls = 0;
    char err[1024] = "";
    struct http_client *dst = NULL;
    rd_kafka_t *prod = NULL;
    struct kafka_state st = {.component = "verify"};
    int rc = 1;
    bool differ = false;
    const struct config_instance *inst = config_instance_find(cfg, remote);
    if (!inst || routes_into(cfg, remote, &subs, &nsubs, err, sizeof(err)))
        goto out;
    long timeout = cfg->consumer.request_timeout_ms;
    if (!(dst = directus_client(inst, timeout, err, sizeof(err))))
        goto out;
    if (repair) {
        static const char *const forced[] = {"enable.idempotence", "true",           "acks", "all",
                                             "partitioner",        "murmur2_random", NULL};
        static const char *const defaults[] = {KAFKA_PRODUCER_SIZE_DEFAULTS, NULL};
        rd_kafka_conf_t *conf = kafka_conf_new(cfg, &st, defaults, forced, err, sizeof(err));
        if (!conf || !(prod = kafka_client_new(RD_KAFKA_PRODUCER, conf, "kafka", err, sizeof(err))))
            goto out;
    }
    bool tty = isatty(STDERR_FILENO) && !json;
    for (size_t i = 0; i < nsubs; i++) {
        const struct routes_sub *sub = &subs[i];
        if (collection && strcmp(collection, sub->coll->collection) != 0)
            continue;
        colls++;
        const struct config_instance *src = config_instance_find(cfg, sub->route->from);
        struct coll_run r = {.cfg = cfg,
                             .remote = remote,
                             .sub = sub,
                             .dst = dst,
                             .repair = repair,
                             .json = json,
                             .tty = tty,
                             .replica = !config_publishes(cfg, remote, sub->coll->collection),
                             .out = out,
                             .prod = prod,
                             .t0 = util_mono_ms()};
        if (!(r.src = directus_client(src, timeout, err, sizeof(err))))
            goto out;
        struct directus_fields f;
        char e[768];
        if (directus_fields_fetch(r.src, sub->coll->collection, &f, e, sizeof(e)) != DIRECTUS_OK) {
            snprintf(err, sizeof(err), "fields of %s on %s: %s", sub->coll->collection,
                     sub->route->from, e);
            http_client_free(r.src);
            goto out;
        }
        util_strlcpy(r.pk, f.pk ? f.pk : "id", sizeof(r.pk));
        directus_fields_free(&f);
        int prc = pass(&r, r.src, sub->route->from, dst, remote, "compared", source_item);
        if (!prc)
            prc = pass(&r, dst, remote, r.src, sub->route->from, "checked for extras after",
                       remote_item);
        http_client_free(r.src);
        if (tty)
            log_stderr("\r%60s\r", "");
        if (prc) {
            util_strlcpy(err, r.err, sizeof(err));
            goto out;
        }
        double secs = (double)(util_mono_ms() - r.t0) / 1000.0;
        if (r.missing || r.extra || r.different)
            differ = true;
        if (!json) {
            if (r.shown > SHOW_MAX)
                fprintf(out, "... %zu more (all of them with --json)\n", r.shown - SHOW_MAX);
            fprintf(out,
                    "# %s from %s to %s: %zu compared, %zu missing on %s, %zu extra on %s, %zu "
                    "different (%.1f s, %.0f items/s)\n",
                    sub->coll->collection, sub->route->from, remote, r.compared, r.missing, remote,
                    r.extra, remote, r.different, secs, secs > 0 ? (double)r.compared / secs : 0.0);
            if (repair)
                fprintf(out, "# %zu repair%s published to %s's topic\n", r.repaired,
                        r.repaired == 1 ? "" : "s", sub->route->from);
        }
    }
    if (!colls) {
        snprintf(err, sizeof(err), "no route into %s carries %s", remote,
                 collection ? collection : "any collection");
        goto out;
    }
    if (prod && rd_kafka_flush(prod, TIMEOUT_MS * 3) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, sizeof(err), "Kafka did not acknowledge every repair");
        goto out;
    }
    rc = differ ? 3 : 0;
out:
    if (rc == 1 && err[0])
        log_stderr("dxsync-consumer: verify: %s\n", err);
    if (prod)
        rd_kafka_destroy(prod);
    http_client_free(dst);
    free(subs);
    return rc;
}
