/* check: the consumer's check command, against the live remote (see check.h). */
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

int check_fields(const struct directus_fields *fields, const struct config_route *route,
                 const struct config_collection *coll, struct report *r)
{
    int n = 0;
    for (size_t i = 0; i < coll->nfields; i++) {
        const char *name = coll->fields[i];
        const struct directus_field *f = directus_fields_find(fields, name);
        if (!f) {
            report_problem(r, "route %s -> %s: field \"%s.%s\" does not exist in %s", route->from,
                           route->to, coll->collection, name, route->to);
            n++;
        } else if (f->kind != DIRECTUS_FIELD_COLUMN) {
            report_problem(r,
                           "route %s -> %s: field \"%s.%s\" is %s, not a column: route the "
                           "junction or child collection instead",
                           route->from, route->to, coll->collection, name,
                           directus_field_kind_name(f->kind));
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

int check_permissions(const cJSON *perms, const struct config_route *route,
                      const struct config_collection *coll, struct report *r)
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
            report_problem(r,
                           "route %s -> %s: the sync user has no %s permission on \"%s\" "
                           "(needed %s)",
                           route->from, route->to, actions[a], coll->collection, why[a]);
            n++;
            continue;
        }
        if (strcmp(actions[a], "delete") == 0)
            continue; /* deletes name no fields */
        const cJSON *allowed = get(p, "fields");
        for (size_t i = 0; i < coll->nfields; i++)
            if (!fields_allow(allowed, coll->fields[i])) {
                report_problem(r, "route %s -> %s: the sync user may not %s field \"%s.%s\"",
                               route->from, route->to, actions[a], coll->collection,
                               coll->fields[i]);
                n++;
            }
    }
    return n;
}

/* GET /permissions/me: the data object, or NULL when the answer does not hold one (the caller
 * deletes *root). */
static const cJSON *permissions_fetch(struct http_client *h, cJSON **root)
{
    struct http_response res;
    *root = NULL;
    http_request(h, "GET", "/permissions/me", NULL, &res);
    if (directus_classify(&res, true) == DIRECTUS_OK && res.body)
        *root = cJSON_ParseWithLength(res.body, res.len);
    const cJSON *data = get(*root, "data");
    if (!cJSON_IsObject(data)) {
        log_warn(COMP, "event=check_skipped what=permissions status=%ld", res.status);
        data = NULL;
    }
    http_response_free(&res);
    return data;
}

/* The routed collection of sub on the remote: its fields, then (when readable) permissions. */
static void check_collection(struct report *r, struct http_client *h, const struct routes_sub *sub,
                             const cJSON *perms)
{
    const struct config_route *route = sub->route;
    const struct config_collection *coll = sub->coll;
    struct directus_fields fields;
    char err[768];
    enum directus_answer a = directus_fields_fetch(h, coll->collection, &fields, err, sizeof(err));
    if (a == DIRECTUS_FORBIDDEN) {
        report_problem(r,
                       "route %s -> %s: collection \"%s\" does not exist in %s (or the sync "
                       "user may not read it)",
                       route->from, route->to, coll->collection, route->to);
        return;
    }
    if (a != DIRECTUS_OK) {
        report_problem(r, "route %s -> %s: collection \"%s\": %s", route->from, route->to,
                       coll->collection, err);
        return;
    }
    if (check_fields(&fields, route, coll, r) == 0)
        report_ok(r, "collection \"%s\" exists in %s with every routed field as a column",
                  coll->collection, route->to);
    directus_fields_free(&fields);
    if (perms && check_permissions(perms, route, coll, r) == 0)
        report_ok(r, "the sync user of %s may create, read, update and delete \"%s\"", route->to,
                  coll->collection);
}

int check_remote(const struct config *cfg, const char *remote, FILE *out, int *problems, char *err,
                 size_t errlen)
{
    const struct config_instance *inst = config_instance_find(cfg, remote);
    struct report r = {.out = out};
    struct routes_sub *subs = NULL;
    size_t nsubs = 0;
    struct http_client *h = NULL;
    cJSON *perms_root = NULL;
    int rc = -1;
    *problems = 0;
    if (!inst) {
        snprintf(err, errlen, "no instance named \"%s\"", remote);
        return -1;
    }
    if (routes_into(cfg, remote, &subs, &nsubs, err, errlen))
        return -1;
    long timeout =
        cfg->consumer.request_timeout_ms < 10000 ? cfg->consumer.request_timeout_ms : 10000;
    if (!(h = http_client_new(inst->url, inst->token, timeout, err, errlen)))
        goto out;
    rc = 0;
    if (nsubs == 0)
        report_problem(&r, "no route has \"to\": \"%s\": its consumer would apply nothing", remote);
    if (!report_directus(&r, h, remote, inst->url))
        goto out;
    const cJSON *perms = permissions_fetch(h, &perms_root);
    for (size_t i = 0; i < nsubs; i++)
        check_collection(&r, h, &subs[i], perms);
out:
    *problems = r.problems;
    cJSON_Delete(perms_root);
    http_client_free(h);
    free(subs);
    return rc;
}
