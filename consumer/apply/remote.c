/* remote.c: field lists are Directus's own (directus_fields: a collection has tens of fields, a
 * linear scan is cheaper than anything cleverer); the outage record keeps the last failure for
 * the remote_unavailable event. */
#include "remote.h"

#include "log.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define COMP "consumer"

int remote_init(struct remote *r, const char *name, const struct routes_sub *subs, size_t nsubs,
                int retry_notify_after_s, struct metrics *m)
{
    memset(r, 0, sizeof(*r));
    r->name = name;
    r->retry_notify_after_s = retry_notify_after_s;
    r->colls = calloc(nsubs ? nsubs : 1, sizeof(*r->colls));
    if (!r->colls)
        return -1;
    for (size_t i = 0; i < nsubs; i++) {
        if (remote_coll(r, subs[i].coll->collection))
            continue;
        struct remote_coll *c = &r->colls[r->ncolls++];
        c->collection = subs[i].coll->collection;
        c->want = true;
        c->retry_ms = REMOTE_FIELDS_RETRY_MIN_MS;
    }
    char l[160];
    snprintf(l, sizeof(l), "remote=\"%s\"", name);
    r->m_up = metrics_gauge(m, "dxsync_consumer_remote_up",
                            "1 while the remote answers, 0 during an outage", l);
    metrics_set(r->m_up, 1);
    return 0;
}

void remote_free(struct remote *r)
{
    for (size_t i = 0; r->colls && i < r->ncolls; i++)
        directus_fields_free(&r->colls[i].fields);
    free(r->colls);
    r->colls = NULL;
    r->ncolls = 0;
}

struct remote_coll *remote_coll(struct remote *r, const char *collection)
{
    for (size_t i = 0; i < r->ncolls; i++)
        if (strcmp(r->colls[i].collection, collection) == 0)
            return &r->colls[i];
    return NULL;
}

const char *remote_pk(const struct remote *r, const char *collection)
{
    for (size_t i = 0; i < r->ncolls; i++)
        if (strcmp(r->colls[i].collection, collection) == 0)
            return r->colls[i].pk[0] ? r->colls[i].pk : NULL;
    return NULL;
}

void remote_set_pk(struct remote *r, const char *collection, const char *pk)
{
    struct remote_coll *c = remote_coll(r, collection);
    if (c && pk && pk[0] && strcmp(c->pk, pk) != 0) {
        util_strlcpy(c->pk, pk, sizeof(c->pk));
        log_info(COMP, "event=primary_key collection=%s field=%s", collection, LOG_Q(pk));
    }
}

/* The first routed field ev writes a non-null value to that c lacks, or NULL. */
static const char *first_missing(const struct remote_coll *c, const struct event *ev)
{
    if (!cJSON_IsObject(ev->data))
        return NULL;
    /* an update writes the fields its delta names (with their values from data); the rest
     * write every field of data */
    bool update = ev->action == EVENT_UPDATE && cJSON_IsObject(ev->delta);
    for (const cJSON *it = update ? ev->delta->child : ev->data->child; it; it = it->next) {
        const cJSON *v = update ? cJSON_GetObjectItemCaseSensitive(ev->data, it->string) : it;
        if (cJSON_IsNull(v ? v : it) || (c->pk[0] && strcmp(it->string, c->pk) == 0))
            continue;
        if (!directus_fields_find(&c->fields, it->string))
            return it->string;
    }
    return NULL;
}

enum remote_check remote_check_event(struct remote *r, const struct event *ev, int64_t seen_ms,
                                     const char **field)
{
    *field = NULL;
    struct remote_coll *c = remote_coll(r, ev->collection);
    if (!c || c->state == REMOTE_FIELDS_UNAVAILABLE)
        return REMOTE_CHECK_OK;
    if (c->state == REMOTE_FIELDS_UNKNOWN) {
        c->want = true;
        return REMOTE_CHECK_WAIT;
    }
    const char *missing = first_missing(c, ev);
    if (!missing)
        return REMOTE_CHECK_OK;
    /* Directus drops unknown fields without a word when the sync user may write every field
     * ("*"): the value would be lost silently. Read the list again before saying so, unless it
     * was read after the event arrived (a field added on the remote meanwhile is then seen). */
    if (c->fields_at_ms < seen_ms) {
        c->want = true;
        return REMOTE_CHECK_WAIT;
    }
    *field = missing;
    return REMOTE_CHECK_MISSING;
}

enum remote_check remote_check_dropped(struct remote *r, const char *collection, const char *field,
                                       bool first)
{
    struct remote_coll *c = remote_coll(r, collection);
    if (!c || c->state == REMOTE_FIELDS_UNAVAILABLE)
        return REMOTE_CHECK_OK;
    if (first && c->state == REMOTE_FIELDS_KNOWN && !directus_fields_find(&c->fields, field))
        return REMOTE_CHECK_MISSING; /* read since, and lacking it: no need to ask again */
    if (first) {
        c->want = true; /* the list says it has the field, but may be stale: read it again */
        c->ask_after_ms = 0;
    }
    if (c->want || c->asking || c->state != REMOTE_FIELDS_KNOWN)
        return REMOTE_CHECK_WAIT;
    return directus_fields_find(&c->fields, field) ? REMOTE_CHECK_OK : REMOTE_CHECK_MISSING;
}

const char *remote_refresh_due(struct remote *r, int64_t now_ms, int64_t *next_ms)
{
    for (size_t i = 0; i < r->ncolls; i++) {
        struct remote_coll *c = &r->colls[i];
        if (!c->want || c->asking)
            continue;
        if (c->ask_after_ms > now_ms) {
            if (c->ask_after_ms < *next_ms)
                *next_ms = c->ask_after_ms;
            continue;
        }
        c->asking = true;
        return c->collection;
    }
    return NULL;
}

void remote_fields_answer(struct remote *r, const char *collection, const struct http_response *ans,
                          int64_t now_ms)
{
    struct remote_coll *c = remote_coll(r, collection);
    if (!c)
        return;
    c->asking = false;
    struct directus_fields f;
    enum directus_answer a = ans ? directus_classify(ans, true) : DIRECTUS_NONE;
    if (a == DIRECTUS_OK && directus_fields_parse(ans, &f, NULL, 0) == 0) {
        remote_set_pk(r, collection, f.pk);
        directus_fields_free(&c->fields);
        c->fields = f;
        c->state = REMOTE_FIELDS_KNOWN;
        c->fields_at_ms = now_ms;
        c->want = false;
        c->retry_ms = REMOTE_FIELDS_RETRY_MIN_MS;
        log_debug(COMP, "event=fields_read collection=%s fields=%zu", collection, f.n);
        return;
    }
    /* no answer, or not Directus's, or a server error: the remote is down or hiccups; ask
     * again. A refusal (403: the sync user may not read the fields) will not change by asking:
     * go on without the check, and try again when the list would be stale. */
    if (directus_is_outage(a) || a == DIRECTUS_SERVER_ERROR || a == DIRECTUS_OK) {
        c->ask_after_ms = now_ms + c->retry_ms;
        c->retry_ms = c->retry_ms * 2 > REMOTE_FIELDS_RETRY_MAX_MS ? REMOTE_FIELDS_RETRY_MAX_MS
                                                                   : c->retry_ms * 2;
        log_debug(COMP, "event=fields_retry collection=%s status=%ld retry_ms=%" PRId64, collection,
                  ans ? ans->status : 0L, c->ask_after_ms - now_ms);
        return;
    }
    if (c->state != REMOTE_FIELDS_KNOWN) {
        c->state = REMOTE_FIELDS_UNAVAILABLE;
        log_warn(COMP,
                 "event=fields_unreadable collection=%s status=%ld code=%s message=%s "
                 "effect=\"routed fields the remote lacks are not detected\"",
                 collection, ans->status, LOG_Q(ans->code[0] ? ans->code : NULL),
                 LOG_Q(ans->message));
    }
    c->fields_at_ms = now_ms;
    c->want = false;
}

bool remote_answered(struct remote *r, int64_t now_ms, bool *was_notified)
{
    *was_notified = false;
    if (!r->down_since_ms)
        return false;
    log_info(COMP, "event=remote_recovered remote=%s down_s=%" PRId64 " retries=%d", r->name,
             (now_ms - r->down_since_ms) / 1000, r->down_retries);
    *was_notified = r->down_notified;
    r->down_since_ms = 0;
    r->down_notified = false;
    r->down_retries = 0;
    metrics_set(r->m_up, 1);
    return true;
}

void remote_failed(struct remote *r, const struct http_response *ans, int64_t now_ms)
{
    r->down_retries++;
    r->down_status = ans->status;
    util_strlcpy(r->down_code, ans->code, sizeof(r->down_code));
    util_strlcpy(r->down_message, ans->message, sizeof(r->down_message));
    if (r->down_since_ms)
        return;
    r->down_since_ms = now_ms > 0 ? now_ms : 1;
    metrics_set(r->m_up, 0);
    log_warn(COMP, "event=remote_unavailable remote=%s status=%ld code=%s message=%s", r->name,
             ans->status, LOG_Q(ans->code[0] ? ans->code : NULL), LOG_Q(ans->message));
}

bool remote_notify_due(struct remote *r, int64_t now_ms, int64_t *due_ms)
{
    if (!r->down_since_ms || r->down_notified)
        return false;
    int64_t due = r->down_since_ms + (int64_t)r->retry_notify_after_s * 1000;
    if (now_ms < due) {
        if (due < *due_ms)
            *due_ms = due;
        return false;
    }
    r->down_notified = true;
    log_warn(COMP, "event=remote_unavailable_published remote=%s down_s=%" PRId64, r->name,
             (now_ms - r->down_since_ms) / 1000);
    return true;
}
