#include "fileop.h"

#include "directus.h"
#include "plan.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const step_names[] = {"file_source",   "file_probe", "file_remote",
                                         "file_transfer", "file_patch", "file_end"};

const char *fileop_step_name(enum fileop_step s)
{
    return (unsigned)s < sizeof(step_names) / sizeof(step_names[0]) ? step_names[s] : "?";
}

int fileop_init(struct fileop *op, const struct event *ev, const struct config_collection *coll,
                struct apply_item *it, bool content, bool metadata_only, int item_attempts,
                uint64_t seed)
{
    memset(op, 0, sizeof(*op));
    op->ev = ev;
    op->coll = coll;
    op->it = it;
    op->metadata_only = metadata_only;
    op->content = content && !metadata_only;
    op->item_attempts = item_attempts > 0 ? item_attempts : 1;
    backoff_init(&op->backoff, APPLY_BACKOFF_BASE_MS, APPLY_BACKOFF_MAX_MS, seed);
    backoff_init(&op->source_backoff, APPLY_BACKOFF_BASE_MS, APPLY_BACKOFF_MAX_MS, seed ^ 0x5bd1);
    if (util_strlcpy(op->id, ev->key_text, sizeof(op->id)) >= sizeof(op->id))
        return -1;
    char esc[800];
    struct util_buf p = {0}, s = {0};
    if (http_escape(op->id, esc, sizeof(esc)))
        return -1;
    util_buf_printf(&p, "/files/%s", esc);
    util_buf_printf(&s, "/assets/%s", esc);
    if (p.failed || s.failed) {
        util_buf_free(&p);
        util_buf_free(&s);
        return -1;
    }
    op->path = util_buf_steal(&p);
    op->src_path = util_buf_steal(&s);
    op->next = op->content ? FILEOP_SOURCE : FILEOP_REMOTE;
    return op->path && op->src_path ? 0 : -1;
}

void fileop_free(struct fileop *op)
{
    free(op->path);
    free(op->src_path);
    free(op->get_path);
    free(op->body);
    op->path = op->src_path = op->get_path = op->body = NULL;
}

/* ---- outcome ---- */

static void fail(struct fileop *op, long status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail(struct fileop *op, long status, const char *code, const char *fmt, ...)
{
    struct apply_item *it = op->it;
    it->state = APPLY_FAILED;
    it->status = status;
    util_strlcpy(it->code, code ? code : "", sizeof(it->code));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it->message, sizeof(it->message), fmt, ap);
    va_end(ap);
    op->next = FILEOP_END;
}

static void fail_with(struct fileop *op, const struct http_response *r)
{
    fail(op, r->status, r->code, "%s", r->message);
    util_strlcpy(op->it->field, r->field, sizeof(op->it->field));
    util_strlcpy(op->it->value, r->value, sizeof(op->it->value));
}

/* The step after what is known: bytes first (the source's record, the remote's, the
 * transfer), then the routed fields. */
static void choose(struct fileop *op)
{
    if (op->it->state == APPLY_FAILED || op->gone) {
        op->next = FILEOP_END;
        return;
    }
    if (op->content && !op->transferred) {
        op->next = !op->source_known   ? FILEOP_SOURCE
                   : !op->remote_known ? FILEOP_REMOTE
                                       : FILEOP_TRANSFER;
        return;
    }
    if (!op->remote_known) {
        op->next = FILEOP_REMOTE;
    } else if (!op->remote_has) {
        if (op->metadata_only) {
            op->next = FILEOP_END; /* the remote's own file is gone there: nothing to repair */
        } else {
            op->content = true; /* an update of a file the remote lacks: it needs the bytes */
            choose(op);
            return;
        }
    } else {
        op->next = FILEOP_PATCH;
    }
}

/* ---- requests ---- */

/* The routed fields written: all of data after a transfer or for a create, else delta's. The
 * key is in the path. NULL when there is none (or out of memory: *oom). */
static char *patch_body(const struct fileop *op, bool *oom)
{
    bool full = op->transferred || op->ev->action != EVENT_UPDATE;
    cJSON *o = plan_body(op->ev, op->coll, "id", full ? PLAN_BODY_FULL : PLAN_BODY_DELTA);
    if (!o) {
        *oom = true;
        return NULL;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(o, "id");
    char *text = o->child ? cJSON_PrintUnformatted(o) : NULL;
    if (o->child && !text)
        *oom = true;
    cJSON_Delete(o);
    return text;
}

int fileop_next(struct fileop *op, struct fileop_request *req)
{
    memset(req, 0, sizeof(*req));
    for (;;) {
        req->step = op->next;
        switch (op->next) {
        case FILEOP_SOURCE:
        case FILEOP_REMOTE: {
            bool src = op->next == FILEOP_SOURCE;
            struct util_buf u = {0};
            util_buf_printf(&u, "%s?fields=%s", op->path,
                            src ? "id,filesize,uploaded_on,type,filename_download" : "id");
            if (u.failed)
                return -1;
            free(op->get_path);
            op->get_path = util_buf_steal(&u);
            req->to_source = src;
            req->method = "GET";
            req->path = op->get_path;
            return 1;
        }
        case FILEOP_PROBE:
            req->to_source = true;
            req->method = "GET";
            req->path = "/files?fields=id&limit=1";
            return 1;
        case FILEOP_TRANSFER:
            req->method = op->remote_has ? "PATCH" : "POST";
            req->path = op->remote_has ? op->path : "/files";
            req->src_path = op->src_path;
            req->spec = (struct xfer_spec){.id = op->id,
                                           .create = !op->remote_has,
                                           .filename = op->filename,
                                           .type = op->type,
                                           .size = op->size};
            return 1;
        case FILEOP_PATCH: {
            bool oom = false;
            free(op->body);
            op->body = patch_body(op, &oom);
            if (oom)
                return -1;
            if (!op->body) {
                op->next = FILEOP_END; /* no routed field to write */
                continue;
            }
            req->method = "PATCH";
            req->path = op->path;
            req->body = op->body;
            return 1;
        }
        case FILEOP_END:
        default:
            if (op->it->state == APPLY_PENDING)
                op->it->state = APPLY_APPLIED;
            return 0;
        }
    }
}

/* ---- answers ---- */

static enum fileop_verdict item_fault(struct fileop *op, const struct http_response *r,
                                      int64_t *delay_ms)
{
    if (++op->item_failures >= op->item_attempts) {
        fail_with(op, r);
        return FILEOP_DONE;
    }
    *delay_ms = backoff_at(&op->backoff, op->item_failures - 1);
    return FILEOP_RETRY_ITEM;
}

static enum fileop_verdict source_down(struct fileop *op, int64_t *delay_ms)
{
    op->source_known = false;
    op->next = FILEOP_SOURCE;
    *delay_ms = backoff_next(&op->source_backoff);
    return FILEOP_RETRY_SOURCE;
}

static const char *string_of(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The source's record: whether its bytes are there for this event. */
static enum fileop_verdict source_record(struct fileop *op, const struct http_response *r,
                                         int64_t *delay_ms)
{
    cJSON *root = cJSON_ParseWithLength(r->body ? r->body : "", r->len);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "data");
    if (!cJSON_IsObject(d)) {
        cJSON_Delete(root);
        return source_down(op, delay_ms); /* not Directus's answer */
    }
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(d, "filesize");
    const char *up = string_of(d, "uploaded_on"), *type = string_of(d, "type"),
               *name = string_of(d, "filename_download");
    int64_t n = -1;
    if (cJSON_IsNumber(size) && size->valuedouble >= 0)
        n = (int64_t)size->valuedouble;
    else if (cJSON_IsString(size)) {
        char *end;
        long long v = strtoll(size->valuestring, &end, 10);
        if (end != size->valuestring && !*end && v >= 0)
            n = v;
    }
    /* this event's own upload is done once uploaded_on is set and no longer the event's */
    const char *was = string_of(op->ev->data, "uploaded_on");
    int64_t now_ms = util_wall_ms(), t_up = 0, t_was = 0;
    bool same = op->ev->action != EVENT_SNAPSHOT && up && was &&
                util_parse_time(up, now_ms, &t_up) == 0 &&
                util_parse_time(was, now_ms, &t_was) == 0 && t_up == t_was;
    if (n < 0 || !up || same) {
        fail(op, 0, FILEOP_NOT_READY,
             "the source has not finished storing file %s (uploaded_on %s, filesize %s)", op->id,
             up ? (same ? "still the event's" : up) : "not set", n < 0 ? "not set" : "set");
        cJSON_Delete(root);
        return FILEOP_DONE;
    }
    op->size = n;
    util_strlcpy(op->type, type && *type ? type : "application/octet-stream", sizeof(op->type));
    util_strlcpy(op->filename, name && *name ? name : op->id, sizeof(op->filename));
    util_strlcpy(op->uploaded_on, up, sizeof(op->uploaded_on));
    op->source_known = true;
    cJSON_Delete(root);
    return FILEOP_NEXT;
}

enum fileop_verdict fileop_answer(struct fileop *op, const struct http_response *r,
                                  int64_t *delay_ms)
{
    *delay_ms = 0;
    enum directus_answer a = directus_classify(r, true);
    enum fileop_step step = op->next;
    if (step == FILEOP_SOURCE || step == FILEOP_PROBE) {
        if (directus_is_outage(a) || a == DIRECTUS_SERVER_ERROR)
            return source_down(op, delay_ms);
        if (step == FILEOP_SOURCE && a == DIRECTUS_OK) {
            enum fileop_verdict v = source_record(op, r, delay_ms);
            if (v == FILEOP_NEXT)
                choose(op);
            return v;
        }
        if (step == FILEOP_SOURCE && a == DIRECTUS_FORBIDDEN) {
            op->next = FILEOP_PROBE; /* a file deleted since, or no access to files at all? */
            return FILEOP_NEXT;
        }
        if (step == FILEOP_PROBE && a == DIRECTUS_OK) {
            op->gone = true; /* deleted on the source since: its delete follows */
            choose(op);
            return FILEOP_NEXT;
        }
        if (a == DIRECTUS_FORBIDDEN)
            fail(op, r->status, "SOURCE_FORBIDDEN",
                 "the source refuses to list files to its sync user (%s): grant it read on "
                 "directus_files there",
                 r->message);
        else
            fail(op, r->status, r->code, "the source answered %s", r->message);
        return FILEOP_DONE;
    }
    if (directus_is_outage(a)) {
        *delay_ms = backoff_next_after(&op->backoff, r->retry_after_s);
        return FILEOP_RETRY_REMOTE;
    }
    backoff_reset(&op->backoff);
    if (a == DIRECTUS_SERVER_ERROR)
        return item_fault(op, r, delay_ms);
    if (step == FILEOP_REMOTE) {
        if (a == DIRECTUS_OK || a == DIRECTUS_FORBIDDEN) {
            cJSON *root =
                a == DIRECTUS_OK ? cJSON_ParseWithLength(r->body ? r->body : "", r->len) : NULL;
            op->remote_has = cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "data"));
            op->remote_known = true;
            cJSON_Delete(root);
            choose(op);
            return FILEOP_NEXT;
        }
        fail_with(op, r);
        return FILEOP_DONE;
    }
    if (step == FILEOP_PATCH) {
        if (a == DIRECTUS_OK) {
            op->next = FILEOP_END;
            return FILEOP_NEXT;
        }
        fail_with(op, r); /* a folder it points at may still come: the caller decides */
        return FILEOP_DONE;
    }
    fail_with(op, r);
    return FILEOP_DONE;
}

enum fileop_verdict fileop_transferred(struct fileop *op, const struct http_response *up,
                                       const struct xfer_result *dl, int64_t *delay_ms)
{
    *delay_ms = 0;
    enum directus_answer a = directus_classify(up, true);
    bool ours = up->curl == CURLE_ABORTED_BY_CALLBACK; /* aborted for the download's sake */
    if (ours || (a == DIRECTUS_OK && !dl->complete)) {
        op->remote_known = false; /* a create cut short may or may not have left the row */
        return source_down(op, delay_ms);
    }
    if (directus_is_outage(a)) {
        op->remote_known = false; /* a create cut short may or may not have left the row */
        choose(op);
        *delay_ms = backoff_next_after(&op->backoff, up->retry_after_s);
        return FILEOP_RETRY_REMOTE;
    }
    backoff_reset(&op->backoff);
    switch (a) {
    case DIRECTUS_OK:
        backoff_reset(&op->source_backoff);
        op->transferred = true;
        op->remote_has = op->remote_known = true;
        choose(op);
        return FILEOP_NEXT;
    case DIRECTUS_DUPLICATE:
        op->remote_known = false; /* created meanwhile: replace it */
        choose(op);
        return FILEOP_NEXT;
    case DIRECTUS_SERVER_ERROR:
        op->remote_known = false;
        choose(op);
        return item_fault(op, up, delay_ms);
    default:
        fail_with(op, up);
        return FILEOP_DONE;
    }
}

int64_t fileop_timeout_ms(int64_t size, int64_t base_ms)
{
    return base_ms + size / FILEOP_MIN_RATE * 1000;
}
