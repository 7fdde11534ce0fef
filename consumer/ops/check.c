#include "check.h"

#include "http.h"
#include "log.h"
#include "routes.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define COMP "consumer"

static const cJSON *get(const cJSON *o, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(o, name);
}

static const cJSON *field_named(const cJSON *fields, const char *name)
{
    const cJSON *f;
    cJSON_ArrayForEach(f, fields)
    {
        const cJSON *n = get(f, "field");
        if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
            return f;
    }
    return NULL;
}

/* One-to-many, many-to-many and many-to-any fields are aliases: no column holds them. */
static const char *alias_kind(const cJSON *field)
{
    const cJSON *type = get(field, "type");
    const cJSON *special = get(get(field, "meta"), "special");
    const cJSON *list = cJSON_IsArray(special) ? special : NULL;
    const cJSON *s;
    cJSON_ArrayForEach(s, list)
    {
        if (!cJSON_IsString(s))
            continue;
        if (strcmp(s->valuestring, "o2m") == 0)
            return "a one-to-many alias";
        if (strcmp(s->valuestring, "m2m") == 0)
            return "a many-to-many alias";
        if (strcmp(s->valuestring, "m2a") == 0)
            return "a many-to-any alias";
        if (strcmp(s->valuestring, "translations") == 0)
            return "a translations alias";
    }
    if (cJSON_IsString(type) && strcmp(type->valuestring, "alias") == 0)
        return "an alias";
    return NULL;
}

int check_fields(const cJSON *fields, const char *remote, const struct config_collection *coll,
                 FILE *out)
{
    int n = 0;
    for (size_t i = 0; i < coll->nfields; i++) {
        const char *name = coll->fields[i];
        const cJSON *f = field_named(fields, name);
        if (!f) {
            fprintf(out, "%s: field %s.%s is missing on the remote\n", remote, coll->collection,
                    name);
            n++;
            continue;
        }
        const char *alias = alias_kind(f);
        if (alias) {
            fprintf(out,
                    "%s: field %s.%s is %s, not a column: route the junction or child "
                    "collection instead\n",
                    remote, coll->collection, name, alias);
            n++;
        }
    }
    return n;
}

static bool fields_allow(const cJSON *allowed, const char *field)
{
    const cJSON *list = cJSON_IsArray(allowed) ? allowed : NULL;
    const cJSON *f;
    cJSON_ArrayForEach(f, list)
    {
        if (cJSON_IsString(f) &&
            (strcmp(f->valuestring, "*") == 0 || strcmp(f->valuestring, field) == 0))
            return true;
    }
    return false;
}

int check_permissions(const cJSON *perms, const char *remote, const struct config_collection *coll,
                      FILE *out)
{
    static const char *const actions[] = {"create", "read", "update", "delete"};
    static const char *const why[] = {"to create missing items", "to find which items exist",
                                      "to update items", "to delete items"};
    int n = 0;
    const cJSON *c = get(perms, coll->collection);
    for (size_t a = 0; a < sizeof(actions) / sizeof(actions[0]); a++) {
        const cJSON *p = get(c, actions[a]);
        const cJSON *access = get(p, "access");
        if (!cJSON_IsString(access) || strcmp(access->valuestring, "none") == 0) {
            fprintf(out, "%s: the sync user has no %s permission on %s (needed %s)\n", remote,
                    actions[a], coll->collection, why[a]);
            n++;
            continue;
        }
        if (strcmp(actions[a], "delete") == 0)
            continue; /* deletes name no fields */
        const cJSON *allowed = get(p, "fields");
        for (size_t i = 0; i < coll->nfields; i++)
            if (!fields_allow(allowed, coll->fields[i])) {
                fprintf(out, "%s: the sync user may not %s field %s.%s\n", remote, actions[a],
                        coll->collection, coll->fields[i]);
                n++;
            }
    }
    return n;
}

/* GET path; on a 2xx answer returns the parsed "data" member's document (caller deletes root). */
static cJSON *get_data(struct http_client *h, const char *path, struct http_response *r,
                       const cJSON **data)
{
    *data = NULL;
    http_request(h, "GET", path, NULL, r);
    if (r->klass != HTTP_OK)
        return NULL;
    cJSON *root = r->body ? cJSON_ParseWithLength(r->body, r->len) : NULL;
    *data = get(root, "data");
    return root;
}

int check_remote(const struct config *cfg, const char *remote, FILE *out)
{
    const struct config_instance *inst = config_instance_find(cfg, remote);
    struct routes_sub *subs = NULL;
    size_t nsubs = 0;
    char err[512];
    int findings = 0;
    struct http_client *h = NULL;
    struct http_response r = {0};
    cJSON *perms_root = NULL;
    if (!inst)
        return 1;
    if (routes_into(cfg, remote, &subs, &nsubs, err, sizeof(err))) {
        fprintf(out, "%s: %s\n", remote, err);
        return 1;
    }
    if (nsubs == 0) {
        fprintf(out, "%s: no route has \"to\": \"%s\": nothing would be applied\n", remote, remote);
        findings++;
    }
    long timeout =
        cfg->consumer.request_timeout_ms < 10000 ? cfg->consumer.request_timeout_ms : 10000;
    if (!(h = http_client_new(inst->url, inst->token, timeout, err, sizeof(err)))) {
        fprintf(out, "%s: %s\n", remote, err);
        findings++;
        goto out;
    }

    http_request(h, "GET", "/server/ping", NULL, &r);
    if (r.klass != HTTP_OK) {
        fprintf(out, "%s: unreachable at %s: %s\n", remote, inst->url,
                r.status ? "it does not answer /server/ping" : r.message);
        findings++;
        goto out;
    }
    http_response_free(&r);

    const cJSON *data;
    cJSON *root = get_data(h, "/users/me?fields=id", &r, &data);
    cJSON_Delete(root);
    if (r.status == 401 || r.status == 403) {
        fprintf(out, "%s: the token is not valid (%ld %s)\n", remote, r.status,
                r.code[0] ? r.code : "");
        findings++;
        goto out;
    }
    if (r.klass != HTTP_OK) {
        fprintf(out, "%s: GET /users/me failed: %ld %s\n", remote, r.status, r.message);
        findings++;
        goto out;
    }
    http_response_free(&r);

    root = get_data(h, "/policies/me/globals", &r, &data);
    if (cJSON_IsTrue(get(data, "admin_access"))) {
        fprintf(out,
                "%s: the token belongs to an admin: use a least-privilege sync user (an admin "
                "also gets unknown fields silently dropped)\n",
                remote);
        findings++;
    } else if (r.klass != HTTP_OK) {
        log_warn(COMP, "event=check_skipped what=admin_access status=%ld", r.status);
    }
    cJSON_Delete(root);
    http_response_free(&r);

    const cJSON *perms = NULL;
    perms_root = get_data(h, "/permissions/me", &r, &perms);
    if (!cJSON_IsObject(perms))
        log_warn(COMP, "event=check_skipped what=permissions status=%ld", r.status);
    http_response_free(&r);

    for (size_t i = 0; i < nsubs; i++) {
        const struct config_collection *coll = subs[i].coll;
        char esc[512], path[600];
        if (http_escape(coll->collection, esc, sizeof(esc)))
            continue;
        snprintf(path, sizeof(path), "/fields/%s", esc);
        root = get_data(h, path, &r, &data);
        if (r.klass == HTTP_FORBIDDEN) {
            fprintf(out,
                    "%s: collection %s is missing on the remote (or the sync user may not read "
                    "it)\n",
                    remote, coll->collection);
            findings++;
        } else if (r.klass != HTTP_OK || !cJSON_IsArray(data)) {
            fprintf(out, "%s: GET /fields/%s failed: %ld %s\n", remote, coll->collection, r.status,
                    r.message);
            findings++;
        } else {
            findings += check_fields(data, remote, coll, out);
            if (cJSON_IsObject(perms))
                findings += check_permissions(perms, remote, coll, out);
        }
        cJSON_Delete(root);
        http_response_free(&r);
    }
out:
    if (findings == 0)
        fprintf(out, "ok: %s at %s: %zu routed collection(s), fields and permissions in place\n",
                remote, inst->url, nsubs);
    http_response_free(&r);
    cJSON_Delete(perms_root);
    http_client_free(h);
    free(subs);
    return findings ? 1 : 0;
}
