/* directus: Directus's REST answers read once for every program: classification, ping, the
 * 5xx rule, /users/me, /policies/me/globals and /fields (see directus.h). */
#include "directus.h"

#include "log.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- what an answer means ---- */

static const char *const answer_names[] = {"none",         "ok",        "outage",
                                           "not_directus", "auth",      "server_error",
                                           "forbidden",    "duplicate", "refused"};

const char *directus_answer_name(enum directus_answer a)
{
    return (size_t)a < DX_ARRAY_LEN(answer_names) ? answer_names[a] : "?";
}

/* The parsed body of a 2xx, or NULL when it has none or it is not JSON. */
static cJSON *body_json(const struct http_response *r)
{
    return r->body && r->len ? cJSON_ParseWithLength(r->body, r->len) : NULL;
}

/* Whether a 2xx carries what Directus sends: no body, or a JSON object with "data". Something
 * in front of Directus (a proxy's maintenance page, a cut connection) can answer 200 with
 * anything, and the write it answers for may never have happened. */
static bool directus_body(const struct http_response *r)
{
    if (r->status == 204 || !r->body || r->len == 0)
        return true;
    cJSON *root = body_json(r);
    bool ok = cJSON_IsObject(root) && cJSON_GetObjectItemCaseSensitive(root, "data");
    cJSON_Delete(root);
    return ok;
}

enum directus_answer directus_classify(const struct http_response *r, bool json)
{
    switch (r->klass) {
    case HTTP_NONE:
        return DIRECTUS_NONE;
    case HTTP_OK:
        return json && !directus_body(r) ? DIRECTUS_NOT_DIRECTUS : DIRECTUS_OK;
    case HTTP_TRANSIENT:
        return r->curl == CURLE_OK && r->status == 401 ? DIRECTUS_AUTH : DIRECTUS_OUTAGE;
    case HTTP_SERVER_ERROR:
        return DIRECTUS_SERVER_ERROR;
    case HTTP_FORBIDDEN:
        return DIRECTUS_FORBIDDEN;
    case HTTP_DUPLICATE:
        return DIRECTUS_DUPLICATE;
    case HTTP_PERMANENT:
        return DIRECTUS_REFUSED;
    }
    return DIRECTUS_NONE; /* a value outside the enum: as no answer */
}

bool directus_is_outage(enum directus_answer a)
{
    return a == DIRECTUS_NONE || a == DIRECTUS_OUTAGE || a == DIRECTUS_NOT_DIRECTUS ||
           a == DIRECTUS_AUTH;
}

void directus_describe(const struct http_response *r, char *buf, size_t len)
{
    if (!len)
        return;
    if (r->klass == HTTP_NONE || r->curl != CURLE_OK || r->status == 0) {
        snprintf(buf, len, "no answer%s%s", r->message[0] ? ": " : "", r->message);
    } else if (r->klass == HTTP_OK) {
        snprintf(buf, len, "HTTP %ld with a body that is not Directus's JSON", r->status);
    } else if (!r->code[0] && strncmp(r->message, "HTTP ", 5) == 0) {
        snprintf(buf, len, "%s", r->message); /* http_finish's "HTTP 502 with an empty body" */
    } else {
        snprintf(buf, len, "HTTP %ld%s%s%s%s", r->status, r->code[0] ? " " : "", r->code,
                 r->message[0] ? ": " : "", r->message);
    }
}

/* ---- ping, and the rule after a 5xx ---- */

bool directus_ping_ok(const struct http_response *r)
{
    return r->klass == HTTP_OK && r->body && strncmp(r->body, "pong", 4) == 0;
}

int directus_ping(struct http_client *c, char *err, size_t errlen)
{
    struct http_response r;
    http_request(c, "GET", DIRECTUS_PING_PATH, NULL, &r);
    int rc = 0;
    if (!directus_ping_ok(&r)) {
        rc = -1;
        if (r.klass == HTTP_OK)
            snprintf(err, errlen, "HTTP %ld to %s without \"pong\": not Directus", r.status,
                     DIRECTUS_PING_PATH);
        else
            directus_describe(&r, err, errlen);
    }
    http_response_free(&r);
    return rc;
}

enum directus_fault directus_fault_after_5xx(const struct http_response *ping)
{
    return directus_ping_ok(ping) ? DIRECTUS_FAULT_ITEM : DIRECTUS_FAULT_OUTAGE;
}

bool directus_item_give_up(int *failures, int attempts)
{
    return ++*failures >= attempts;
}

/* ---- who the token belongs to ---- */

/* The "data" member of a 2xx Directus answer (root: the document, caller deletes it). */
static const cJSON *answer_data(const struct http_response *r, cJSON **root)
{
    *root = r->klass == HTTP_OK ? body_json(r) : NULL;
    return cJSON_IsObject(*root) ? cJSON_GetObjectItemCaseSensitive(*root, "data") : NULL;
}

int directus_user_parse(const struct http_response *r, struct directus_user *u)
{
    cJSON *root;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(answer_data(r, &root), "id");
    int rc = -1;
    u->id[0] = '\0';
    if (cJSON_IsString(id) && id->valuestring[0] && strlen(id->valuestring) < sizeof(u->id)) {
        util_strlcpy(u->id, id->valuestring, sizeof(u->id));
        rc = 0;
    }
    cJSON_Delete(root);
    return rc;
}

enum directus_answer directus_user_fetch(struct http_client *c, struct directus_user *u, char *err,
                                         size_t errlen)
{
    struct http_response r;
    u->id[0] = '\0';
    http_request(c, "GET", DIRECTUS_USERS_ME_PATH, NULL, &r);
    enum directus_answer a = directus_classify(&r, true);
    if (a == DIRECTUS_FORBIDDEN)
        a = DIRECTUS_AUTH; /* a token that may not read its own user is of no use */
    if (a == DIRECTUS_OK && directus_user_parse(&r, u)) {
        a = DIRECTUS_REFUSED;
        snprintf(err, errlen, "GET /users/me answered HTTP %ld without a user id", r.status);
    } else if (a != DIRECTUS_OK) {
        char d[600];
        directus_describe(&r, d, sizeof(d));
        snprintf(err, errlen, "GET /users/me: %s", d);
    }
    http_response_free(&r);
    return a;
}

int directus_admin_parse(const struct http_response *r)
{
    cJSON *root;
    const cJSON *admin = cJSON_GetObjectItemCaseSensitive(answer_data(r, &root), "admin_access");
    int rc = cJSON_IsBool(admin) ? cJSON_IsTrue(admin) : -1;
    cJSON_Delete(root);
    return rc;
}

int directus_admin_fetch(struct http_client *c)
{
    struct http_response r;
    http_request(c, "GET", DIRECTUS_POLICIES_ME_PATH, NULL, &r);
    int rc = directus_admin_parse(&r);
    http_response_free(&r);
    return rc;
}

int directus_version_parse(const struct http_response *r, char *buf, size_t len)
{
    cJSON *root;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(answer_data(r, &root), "version");
    int major = -1;
    buf[0] = '\0';
    if (cJSON_IsString(v) && v->valuestring[0] >= '0' && v->valuestring[0] <= '9') {
        util_strlcpy(buf, v->valuestring, len);
        major = atoi(v->valuestring);
    }
    cJSON_Delete(root);
    return major;
}

int directus_version_fetch(struct http_client *c, char *buf, size_t len)
{
    struct http_response r;
    http_request(c, "GET", "/server/info", NULL, &r);
    int rc = directus_version_parse(&r, buf, len);
    http_response_free(&r);
    return rc;
}

/* ---- a collection's fields and primary key ---- */

static const char *const kind_names[] = {"a column",
                                         "a one-to-many alias",
                                         "a many-to-many alias",
                                         "a many-to-any alias",
                                         "a translations alias",
                                         "an alias"};

const char *directus_field_kind_name(enum directus_field_kind k)
{
    return (size_t)k < DX_ARRAY_LEN(kind_names) ? kind_names[k] : "?";
}

/* One-to-many, many-to-many, many-to-any and translations fields are aliases whatever their
 * type says; so is any field of type "alias". */
static enum directus_field_kind field_kind(const cJSON *field)
{
    static const struct {
        const char *special;
        enum directus_field_kind kind;
    } specials[] = {{"o2m", DIRECTUS_FIELD_O2M},
                    {"m2m", DIRECTUS_FIELD_M2M},
                    {"m2a", DIRECTUS_FIELD_M2A},
                    {"translations", DIRECTUS_FIELD_TRANSLATIONS}};
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(field, "meta");
    const cJSON *special = cJSON_GetObjectItemCaseSensitive(meta, "special");
    const cJSON *list = cJSON_IsArray(special) ? special : NULL;
    const cJSON *s;
    cJSON_ArrayForEach(s, list)
    {
        if (!cJSON_IsString(s))
            continue;
        for (size_t i = 0; i < DX_ARRAY_LEN(specials); i++)
            if (strcmp(s->valuestring, specials[i].special) == 0)
                return specials[i].kind;
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(field, "type");
    if (cJSON_IsString(type) && strcmp(type->valuestring, "alias") == 0)
        return DIRECTUS_FIELD_ALIAS;
    return DIRECTUS_FIELD_COLUMN;
}

/* prefix, then collection percent-encoded, into buf. */
static int collection_path(const char *prefix, const char *collection, char *buf, size_t len)
{
    size_t n = strlen(prefix);
    if (len <= n)
        return -1;
    memcpy(buf, prefix, n + 1);
    return http_escape(collection, buf + n, len - n);
}

int directus_fields_path(const char *collection, char *buf, size_t len)
{
    return collection_path("/fields/", collection, buf, len);
}

bool directus_syncable(const char *collection)
{
    return strncmp(collection, "directus_", 9) != 0 || strcmp(collection, DIRECTUS_FILES) == 0 ||
           strcmp(collection, DIRECTUS_FOLDERS) == 0;
}

int directus_items_path(const char *collection, char *buf, size_t len)
{
    const char *fixed = strcmp(collection, DIRECTUS_FILES) == 0     ? "/files"
                        : strcmp(collection, DIRECTUS_FOLDERS) == 0 ? "/folders"
                                                                    : NULL;
    if (fixed)
        return util_strlcpy(buf, fixed, len) >= len ? -1 : 0;
    return collection_path("/items/", collection, buf, len);
}

bool directus_file_computed(const char *field)
{
    static const char *const computed[] = {
        "storage",    "filename_disk", "filesize",    "width",       "height",
        "duration",   "metadata",      "charset",     "uploaded_on", "uploaded_by",
        "created_on", "modified_on",   "modified_by", "tus_id",      "tus_data"};
    for (size_t i = 0; i < DX_ARRAY_LEN(computed); i++)
        if (strcmp(field, computed[i]) == 0)
            return true;
    return false;
}

const char *const directus_file_content_fields[DIRECTUS_FILE_CONTENT_FIELDS] = {
    "filename_disk", "filesize", "uploaded_on"};

void directus_fields_free(struct directus_fields *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->v[i].name);
        free(f->v[i].type);
    }
    free(f->v);
    memset(f, 0, sizeof(*f));
}

int directus_fields_parse(const struct http_response *r, struct directus_fields *f, char *err,
                          size_t errlen)
{
    memset(f, 0, sizeof(*f));
    cJSON *root;
    const cJSON *data = answer_data(r, &root);
    int rc = -1;
    if (!cJSON_IsArray(data)) {
        snprintf(err, errlen, "not a field list (HTTP %ld)", r->status);
        goto out;
    }
    size_t cap = (size_t)cJSON_GetArraySize(data);
    if (cap && !(f->v = calloc(cap, sizeof(*f->v))))
        goto oom;
    const cJSON *e;
    cJSON_ArrayForEach(e, data)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "field");
        if (!cJSON_IsString(name) || f->n == cap)
            continue;
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(e, "type");
        const cJSON *schema = cJSON_GetObjectItemCaseSensitive(e, "schema");
        struct directus_field *d = &f->v[f->n];
        d->name = strdup(name->valuestring);
        d->type = strdup(cJSON_IsString(type) ? type->valuestring : "");
        f->n++; /* counted before checking, so that free releases what did get copied */
        if (!d->name || !d->type)
            goto oom;
        d->kind = field_kind(e);
        d->primary_key = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(schema, "is_primary_key"));
        if (d->primary_key && !f->pk && d->name[0])
            f->pk = d->name;
    }
    rc = 0;
    goto out;
oom:
    snprintf(err, errlen, "out of memory");
    directus_fields_free(f);
    rc = -2;
out:
    cJSON_Delete(root);
    return rc;
}

const struct directus_field *directus_fields_find(const struct directus_fields *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->v[i].name, name) == 0)
            return &f->v[i];
    return NULL;
}

enum directus_answer directus_fields_fetch(struct http_client *c, const char *collection,
                                           struct directus_fields *f, char *err, size_t errlen)
{
    char path[600];
    memset(f, 0, sizeof(*f));
    if (directus_fields_path(collection, path, sizeof(path))) {
        snprintf(err, errlen, "collection name too long for a path");
        return DIRECTUS_REFUSED;
    }
    struct http_response r;
    http_request(c, "GET", path, NULL, &r);
    enum directus_answer a = directus_classify(&r, true);
    char d[600];
    int prc = a == DIRECTUS_OK ? directus_fields_parse(&r, f, d, sizeof(d)) : 0;
    if (prc) {
        /* a 2xx of Directus's shape that lists no fields, or out of memory */
        a = prc == -2 ? DIRECTUS_NONE : DIRECTUS_NOT_DIRECTUS;
        snprintf(err, errlen, "GET %s: %s", path, d);
    } else if (a != DIRECTUS_OK) {
        directus_describe(&r, d, sizeof(d));
        snprintf(err, errlen, "GET %s: %s", path, d);
    }
    http_response_free(&r);
    return a;
}

bool directus_url_loopback(const char *url)
{
    const char *h = strstr(url, "://");
    h = h ? h + 3 : url;
    const char *at = strchr(h, '@'), *slash = strchr(h, '/');
    if (at && (!slash || at < slash))
        h = at + 1; /* user:password@ */
    size_t n = strcspn(h, ":/?#");
    if (h[0] == '[')
        return strncmp(h, "[::1]", 5) == 0;
    return (n == 9 && strncmp(h, "localhost", 9) == 0) ||
           (n >= 4 && strncmp(h, "127.", 4) == 0 && strspn(h, "0123456789.") >= n);
}

struct http_client *directus_client(const struct config_instance *in, long timeout_ms, char *err,
                                    size_t errlen)
{
    static char warned[16][64]; /* the instances warned about (a process has a few) */
    if (strncmp(in->url, "http://", 7) == 0 && !directus_url_loopback(in->url)) {
        bool seen = false;
        size_t i = 0;
        for (; i < DX_ARRAY_LEN(warned) && warned[i][0] && !seen; i++)
            seen = strcmp(warned[i], in->name) == 0;
        if (!seen) {
            if (i < DX_ARRAY_LEN(warned))
                util_strlcpy(warned[i], in->name, sizeof(warned[i]));
            log_warn("directus",
                     "event=plain_http instance=%s url=%s hint=\"the token crosses the network "
                     "unencrypted: use https (ca_file for a private CA)\"",
                     in->name, in->url);
        }
    }
    struct http_client *c = http_client_new(in->url, in->token, timeout_ms, err, errlen);
    if (c && http_client_tls(c, in->ca_file, in->client_cert, in->client_key)) {
        snprintf(err, errlen, "out of memory");
        http_client_free(c);
        return NULL;
    }
    return c;
}
