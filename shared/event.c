#include "event.h"

#include "util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const action_names[] = {"create", "update", "delete", "snapshot"};
static const char *const kind_names[] = {"apply_failed", "remote_unavailable", "remote_recovered"};

const char *event_action_name(enum event_action action)
{
    return (size_t)action < DX_ARRAY_LEN(action_names) ? action_names[action] : "?";
}

int event_action_parse(const char *s, enum event_action *out)
{
    for (size_t i = 0; i < DX_ARRAY_LEN(action_names); i++)
        if (strcmp(s, action_names[i]) == 0) {
            *out = (enum event_action)i;
            return 0;
        }
    return -1;
}

const char *error_kind_name(enum error_kind kind)
{
    return (size_t)kind < DX_ARRAY_LEN(kind_names) ? kind_names[kind] : "?";
}

/* Largest integer a double holds exactly. */
#define EXACT_INT_MAX 9007199254740992.0

static bool is_integral(const cJSON *v)
{
    if (!cJSON_IsNumber(v))
        return false;
    double d = v->valuedouble;
    return isfinite(d) && d == floor(d) && fabs(d) <= EXACT_INT_MAX;
}

int event_key_text(const cJSON *key, char *buf, size_t len)
{
    if (cJSON_IsString(key) && key->valuestring[0]) {
        if (strlen(key->valuestring) >= len)
            return -1;
        util_strlcpy(buf, key->valuestring, len);
        return 0;
    }
    if (is_integral(key)) {
        snprintf(buf, len, "%lld", (long long)key->valuedouble);
        return 0;
    }
    return -1;
}

/* ---- encoding ---- */

static cJSON *str_or_null(const char *s)
{
    return s ? cJSON_CreateString(s) : cJSON_CreateNull();
}

static bool add(cJSON *obj, const char *name, cJSON *item)
{
    if (!item)
        return false;
    cJSON_AddItemToObject(obj, name, item);
    return true;
}

static cJSON *int_or_null(bool has, int64_t v)
{
    return has ? cJSON_CreateNumber((double)v) : cJSON_CreateNull();
}

/* JSON string, escaped as cJSON does: quotes, backslash and control characters; UTF-8 as is. */
static void put_str(struct util_buf *b, const char *s)
{
    if (!s) {
        util_buf_puts(b, "null");
        return;
    }
    util_buf_append(b, "\"", 1);
    const char *run = s;
    for (const char *c = s; *c; c++) {
        unsigned char ch = (unsigned char)*c;
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        util_buf_append(b, run, (size_t)(c - run));
        switch (ch) {
        case '"':
            util_buf_puts(b, "\\\"");
            break;
        case '\\':
            util_buf_puts(b, "\\\\");
            break;
        case '\n':
            util_buf_puts(b, "\\n");
            break;
        case '\r':
            util_buf_puts(b, "\\r");
            break;
        case '\t':
            util_buf_puts(b, "\\t");
            break;
        case '\b':
            util_buf_puts(b, "\\b");
            break;
        case '\f':
            util_buf_puts(b, "\\f");
            break;
        default:
            util_buf_printf(b, "\\u%04x", ch);
        }
        run = c + 1;
    }
    util_buf_puts(b, run);
    util_buf_append(b, "\"", 1);
}

static void put_json(struct util_buf *b, const cJSON *v)
{
    if (!v) {
        util_buf_puts(b, "null");
        return;
    }
    char *text = cJSON_PrintUnformatted(v);
    if (!text) {
        b->failed = true;
        return;
    }
    util_buf_puts(b, text);
    cJSON_free(text);
}

static void put_int(struct util_buf *b, bool has, int64_t v)
{
    if (has)
        util_buf_printf(b, "%lld", (long long)v);
    else
        util_buf_puts(b, "null");
}

int event_encode_into(const struct event *ev, struct util_buf *b)
{
    /* Written by hand, not through a cJSON tree: the producer encodes every change, and
     * duplicating data and delta into a new tree only to print it doubles the work. */
    util_buf_reset(b);
    util_buf_printf(b, "{\"version\":%d,\"event_id\":", EVENT_VERSION);
    put_str(b, ev->event_id);
    util_buf_puts(b, ",\"source\":");
    put_str(b, ev->source);
    util_buf_puts(b, ",\"collection\":");
    put_str(b, ev->collection);
    util_buf_puts(b, ",\"action\":");
    put_str(b, event_action_name(ev->action));
    util_buf_puts(b, ",\"key\":");
    put_json(b, ev->key);
    util_buf_puts(b, ",\"data\":");
    put_json(b, ev->data);
    util_buf_puts(b, ",\"delta\":");
    put_json(b, ev->delta);
    util_buf_puts(b, ",\"user\":");
    put_str(b, ev->user);
    util_buf_puts(b, ",\"timestamp\":");
    put_str(b, ev->timestamp);
    util_buf_puts(b, ",\"activity_id\":");
    put_int(b, ev->has_activity_id, ev->activity_id);
    util_buf_puts(b, ",\"revision_id\":");
    put_int(b, ev->has_revision_id, ev->revision_id);
    util_buf_puts(b, ",\"lsn\":");
    put_str(b, ev->lsn);
    if (ev->has_commit_us) {
        util_buf_puts(b, ",\"commit_us\":");
        put_int(b, true, ev->commit_us);
    }
    util_buf_puts(b, "}");
    return b->failed ? -1 : 0;
}

char *event_encode(const struct event *ev)
{
    struct util_buf b = {0};
    if (event_encode_into(ev, &b)) {
        util_buf_free(&b);
        return NULL;
    }
    return util_buf_steal(&b);
}

char *error_event_encode(const struct error_event *ev)
{
    cJSON *o = cJSON_CreateObject();
    char *out = NULL;
    if (!o)
        return NULL;
    bool loc = ev->has_location;
    if (!add(o, "version", cJSON_CreateNumber(EVENT_VERSION)) ||
        !add(o, "kind", cJSON_CreateString(error_kind_name(ev->kind))) ||
        !add(o, "source", str_or_null(ev->source)) || !add(o, "remote", str_or_null(ev->remote)) ||
        !add(o, "collection", str_or_null(ev->collection)) ||
        !add(o, "key", str_or_null(ev->key)) || !add(o, "action", str_or_null(ev->action)) ||
        !add(o, "event_id", str_or_null(ev->event_id)) ||
        !add(o, "status", cJSON_CreateNumber(ev->status)) ||
        !add(o, "code", cJSON_CreateString(ev->code ? ev->code : "")) ||
        !add(o, "message", cJSON_CreateString(ev->message ? ev->message : "")) ||
        !add(o, "attempts", cJSON_CreateNumber(ev->attempts)) ||
        !add(o, "timestamp", str_or_null(ev->timestamp)) ||
        !add(o, "topic", str_or_null(loc ? ev->topic : NULL)) ||
        !add(o, "partition", int_or_null(loc, ev->partition)) ||
        !add(o, "offset", int_or_null(loc, ev->offset)))
        goto out;
    out = cJSON_PrintUnformatted(o);
out:
    cJSON_Delete(o);
    return out;
}

/* ---- decoding ---- */

struct dec {
    char *err;
    size_t errlen;
};

static int derr(struct dec *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int derr(struct dec *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->err, d->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Parses the common frame: size, UTF-8, JSON, object, version. Returns the root or NULL. */
static cJSON *parse_frame(struct dec *d, const void *buf, size_t len)
{
    if (len == 0) {
        derr(d, "empty message");
        return NULL;
    }
    if (len > EVENT_MAX_BYTES) {
        derr(d, "message of %zu bytes is larger than the limit of %u", len, EVENT_MAX_BYTES);
        return NULL;
    }
    size_t bad;
    if (!util_utf8_valid(buf, len, &bad)) {
        derr(d, "not valid UTF-8 at byte %zu", bad);
        return NULL;
    }
    size_t off = 0;
    cJSON *root = util_json_parse(buf, len, &off);
    if (!root) {
        derr(d, "not valid JSON (or nested deeper than %d levels) near byte %zu",
             CJSON_NESTING_LIMIT, off);
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        derr(d, "not a JSON object");
        goto bad;
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "version");
    if (!v) {
        derr(d, "version: missing");
        goto bad;
    }
    if (!is_integral(v)) {
        derr(d, "version: expected an integer");
        goto bad;
    }
    if (v->valuedouble != EVENT_VERSION) {
        derr(d, "version: unsupported version %lld (this build reads version %d)",
             (long long)v->valuedouble, EVENT_VERSION);
        goto bad;
    }
    return root;
bad:
    cJSON_Delete(root);
    return NULL;
}

/* String member: required → must be present and a non-empty string; otherwise null/absent ok. */
static int take_str(struct dec *d, const cJSON *o, const char *name, bool required, char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v)) {
        if (required)
            return derr(d, "%s: missing", name);
        return 0;
    }
    if (!cJSON_IsString(v))
        return derr(d, "%s: expected a string", name);
    if (required && !v->valuestring[0])
        return derr(d, "%s: empty", name);
    if (!(*out = strdup(v->valuestring)))
        return derr(d, "out of memory");
    return 0;
}

static int take_int(struct dec *d, const cJSON *o, const char *name, bool required, bool *has,
                    int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v)) {
        if (required)
            return derr(d, "%s: missing", name);
        *has = false;
        return 0;
    }
    if (!is_integral(v))
        return derr(d, "%s: expected an integer", name);
    *has = true;
    *out = (int64_t)v->valuedouble;
    return 0;
}

/* Object member (data, delta): object, or null/absent when allowed. Detaches into *out. */
static int take_obj(struct dec *d, cJSON *o, const char *name, bool required, cJSON **out)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v)) {
        if (required)
            return derr(d, "%s: missing (an object is required for this action)", name);
        return 0;
    }
    if (!cJSON_IsObject(v))
        return derr(d, "%s: expected an object", name);
    *out = cJSON_DetachItemViaPointer(o, v);
    return 0;
}

int event_decode(const void *buf, size_t len, struct event *ev, char *err, size_t errlen)
{
    struct dec d = {err, errlen};
    memset(ev, 0, sizeof(*ev));
    cJSON *root = parse_frame(&d, buf, len);
    if (!root)
        return -1;
    char *action = NULL;
    char keybuf[1024];
    int rc = -1;
    if (take_str(&d, root, "event_id", true, &ev->event_id) ||
        take_str(&d, root, "source", true, &ev->source) ||
        take_str(&d, root, "collection", true, &ev->collection) ||
        take_str(&d, root, "action", true, &action))
        goto out;
    if (event_action_parse(action, &ev->action)) {
        derr(&d, "action: unknown action \"%.40s\"", action);
        goto out;
    }
    cJSON *key = cJSON_GetObjectItemCaseSensitive(root, "key");
    if (!key || cJSON_IsNull(key)) {
        derr(&d, "key: missing");
        goto out;
    }
    if (event_key_text(key, keybuf, sizeof(keybuf))) {
        derr(&d, "key: expected a non-empty string or an integer (at most %zu bytes)",
             sizeof(keybuf) - 1);
        goto out;
    }
    ev->key = cJSON_DetachItemViaPointer(root, key);
    if (!(ev->key_text = strdup(keybuf))) {
        derr(&d, "out of memory");
        goto out;
    }
    bool needs_data = ev->action != EVENT_DELETE;
    if (take_obj(&d, root, "data", needs_data, &ev->data) ||
        take_obj(&d, root, "delta", ev->action == EVENT_UPDATE, &ev->delta) ||
        take_str(&d, root, "user", false, &ev->user) ||
        take_str(&d, root, "timestamp", true, &ev->timestamp) ||
        take_int(&d, root, "activity_id", ev->action != EVENT_SNAPSHOT, &ev->has_activity_id,
                 &ev->activity_id) ||
        take_int(&d, root, "revision_id", false, &ev->has_revision_id, &ev->revision_id) ||
        take_str(&d, root, "lsn", false, &ev->lsn) ||
        take_int(&d, root, "commit_us", false, &ev->has_commit_us, &ev->commit_us))
        goto out;
    if (ev->has_commit_us && ev->commit_us < 0) {
        derr(&d, "commit_us: negative");
        goto out;
    }
    rc = 0;
out:
    free(action);
    cJSON_Delete(root);
    if (rc)
        event_free(ev);
    return rc;
}

void event_free(struct event *ev)
{
    free(ev->event_id);
    free(ev->source);
    free(ev->collection);
    cJSON_Delete(ev->key);
    free(ev->key_text);
    cJSON_Delete(ev->data);
    cJSON_Delete(ev->delta);
    free(ev->user);
    free(ev->timestamp);
    free(ev->lsn);
    memset(ev, 0, sizeof(*ev));
}

int error_event_decode(const void *buf, size_t len, struct error_event *ev, char *err,
                       size_t errlen)
{
    struct dec d = {err, errlen};
    memset(ev, 0, sizeof(*ev));
    cJSON *root = parse_frame(&d, buf, len);
    if (!root)
        return -1;
    char *kind = NULL;
    int rc = -1;
    bool has;
    int64_t n;
    if (take_str(&d, root, "kind", true, &kind))
        goto out;
    size_t k;
    for (k = 0; k < DX_ARRAY_LEN(kind_names); k++)
        if (strcmp(kind, kind_names[k]) == 0)
            break;
    if (k == DX_ARRAY_LEN(kind_names)) {
        derr(&d, "kind: unknown kind \"%.40s\"", kind);
        goto out;
    }
    ev->kind = (enum error_kind)k;
    bool item = ev->kind == ERROR_APPLY_FAILED;
    if (take_str(&d, root, "source", true, &ev->source) ||
        take_str(&d, root, "remote", true, &ev->remote) ||
        take_str(&d, root, "collection", item, &ev->collection) ||
        take_str(&d, root, "action", false, &ev->action) ||
        take_str(&d, root, "event_id", false, &ev->event_id) ||
        take_str(&d, root, "code", false, &ev->code) ||
        take_str(&d, root, "message", false, &ev->message) ||
        take_str(&d, root, "timestamp", true, &ev->timestamp) ||
        take_str(&d, root, "topic", item, &ev->topic))
        goto out;
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(root, "key");
    if (key && !cJSON_IsNull(key)) {
        char kb[1024];
        if (event_key_text(key, kb, sizeof(kb))) {
            derr(&d, "key: expected a string or an integer");
            goto out;
        }
        if (!(ev->key = strdup(kb))) {
            derr(&d, "out of memory");
            goto out;
        }
    }
    if (take_int(&d, root, "status", false, &has, &n))
        goto out;
    if (has && (n < 0 || n > 999)) {
        derr(&d, "status: %lld is not an HTTP status", (long long)n);
        goto out;
    }
    ev->status = has ? (int)n : 0;
    if (take_int(&d, root, "attempts", false, &has, &n))
        goto out;
    if (has && (n < 0 || n > INT32_MAX)) {
        derr(&d, "attempts: out of range");
        goto out;
    }
    ev->attempts = has ? (int)n : 0;
    bool has_off;
    n = 0;
    if (take_int(&d, root, "partition", item, &has, &n))
        goto out;
    if (has && (n < 0 || n > INT32_MAX)) {
        derr(&d, "partition: out of range");
        goto out;
    }
    ev->partition = (int32_t)n;
    if (take_int(&d, root, "offset", item, &has_off, &ev->offset))
        goto out;
    if (has_off && ev->offset < 0) {
        derr(&d, "offset: negative");
        goto out;
    }
    ev->has_location = ev->topic && has && has_off;
    rc = 0;
out:
    free(kind);
    cJSON_Delete(root);
    if (rc)
        error_event_free(ev);
    return rc;
}

void error_event_free(struct error_event *ev)
{
    free(ev->source);
    free(ev->remote);
    free(ev->collection);
    free(ev->key);
    free(ev->action);
    free(ev->event_id);
    free(ev->code);
    free(ev->message);
    free(ev->timestamp);
    free(ev->topic);
    memset(ev, 0, sizeof(*ev));
}
