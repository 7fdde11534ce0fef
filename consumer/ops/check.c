/* check: the consumer's check command, against the live remote (see check.h). */
#include "directus.h"
#include "check.h"

#include "http.h"
#include "log.h"
#include "routes.h"
#include "util.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

static const cJSON *relation_of(const cJSON *rels, const char *field)
{
    const cJSON *rel;
    cJSON_ArrayForEach(rel, rels)
    {
        const cJSON *f = get(rel, "field");
        if (cJSON_IsString(f) && strcmp(f->valuestring, field) == 0)
            return rel;
    }
    return NULL;
}

static const char *text_of(const cJSON *o, const char *a, const char *b)
{
    const cJSON *v = get(b ? get(o, a) : o, b ? b : a);
    return cJSON_IsString(v) ? v->valuestring : "";
}

int check_relations(const cJSON *src, const cJSON *dst, const struct config *cfg,
                    const struct config_route *route, const struct config_collection *coll,
                    struct report *r)
{
    int n = 0;
    for (size_t i = 0; i < coll->nfields; i++) {
        const char *field = coll->fields[i];
        const cJSON *s = relation_of(src, field);
        const char *parent = s ? text_of(s, "related_collection", NULL) : "";
        if (!s || !*parent)
            continue; /* not a many-to-one on the source */
        const cJSON *d = relation_of(dst, field);
        const char *sdel = text_of(s, "schema", "on_delete");
        if (!d || strcmp(text_of(d, "related_collection", NULL), parent) != 0) {
            report_problem(r,
                           "route %s -> %s: \"%s.%s\" is a many-to-one to \"%s\" on %s but not on "
                           "%s: create the same relation on %s (Data Model > %s > %s)",
                           route->from, route->to, coll->collection, field, parent, route->from,
                           route->to, route->to, coll->collection, field);
            n++;
            continue;
        }
        const char *ddel = text_of(d, "schema", "on_delete");
        if (strcmp(sdel, ddel) != 0) {
            report_problem(r,
                           "route %s -> %s: \"%s.%s\" deletes children's link with \"%s\" on %s "
                           "and \"%s\" on %s: when a %s item is deleted, the two would differ; "
                           "configure the relation alike on both",
                           route->from, route->to, coll->collection, field,
                           *sdel ? sdel : "no foreign key", route->from,
                           *ddel ? ddel : "no foreign key", route->to, parent);
            n++;
        } else {
            report_ok(r, "\"%s.%s\" is a many-to-one to \"%s\" on %s and %s alike (on delete %s)",
                      coll->collection, field, parent, route->from, route->to, *sdel ? sdel : "-");
        }
        if (cfg && !config_route_carries(cfg, route->from, route->to, parent))
            report_warn(r,
                        "route %s -> %s: \"%s.%s\" points at \"%s\", which no route carries from "
                        "%s to %s: an item pointing at one %s lacks waits for it and is "
                        "dead-lettered (PARENT_MISSING) after consumer.parent_wait_s",
                        route->from, route->to, coll->collection, field, parent, route->from,
                        route->to, route->to);
    }
    return n;
}

/* GET /relations/<collection>: its data array (owned by *root), or NULL. */
static const cJSON *relations_fetch(struct http_client *h, const char *collection, cJSON **root)
{
    char path[300], esc[256];
    *root = NULL;
    if (http_escape(collection, esc, sizeof(esc)) ||
        util_format(path, sizeof(path), "/relations/%s", esc))
        return NULL;
    struct http_response res;
    http_request(h, "GET", path, NULL, &res);
    const cJSON *data = NULL;
    if (res.klass == HTTP_OK && res.body) {
        *root = cJSON_ParseWithLength(res.body, res.len);
        data = get(*root, "data");
        if (!cJSON_IsArray(data))
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

/* A route carrying files: its source must let the sync user read the records and the bytes
 * (/assets); a source whose files sit in several storage locations gets them all in the
 * remote's default one; the remote must take uploads as big as the largest file. */
static void check_files_source(struct report *r, const struct config *cfg,
                               const struct config_route *route, long timeout)
{
    const struct config_instance *src = config_instance_find(cfg, route->from);
    char e[512];
    struct http_client *sh = src ? directus_client(src, timeout, e, sizeof(e)) : NULL;
    if (!sh)
        return;
    struct http_response res;
    http_request(sh, "GET", "/files?fields=id,filesize&sort=-filesize&limit=1", NULL, &res);
    cJSON *root = directus_classify(&res, true) == DIRECTUS_OK && res.body
                      ? cJSON_ParseWithLength(res.body, res.len)
                      : NULL;
    const cJSON *data = get(root, "data");
    if (!cJSON_IsArray(data)) {
        char d[600];
        directus_describe(&res, d, sizeof(d));
        report_problem(r,
                       "route %s -> %s: the sync user of %s cannot list files (%s): grant it "
                       "read on directus_files there, or no file can travel",
                       route->from, route->to, route->from, d);
        goto out;
    }
    const cJSON *first = cJSON_GetArrayItem(data, 0);
    const char *id = text_of(first, "id", NULL);
    const cJSON *size = get(first, "filesize");
    double biggest = cJSON_IsNumber(size)   ? size->valuedouble
                     : cJSON_IsString(size) ? strtod(size->valuestring, NULL)
                                            : 0;
    if (!*id) {
        report_ok(r, "route %s -> %s: the sync user of %s may read files (there are none yet)",
                  route->from, route->to, route->from);
        goto out;
    }
    char esc[256], path[320];
    http_response_free(&res);
    if (http_escape(id, esc, sizeof(esc)) == 0) {
        snprintf(path, sizeof(path), "/assets/%s", esc);
        http_request(sh, "HEAD", path, NULL, &res);
        if (res.klass == HTTP_OK)
            report_ok(r, "route %s -> %s: the sync user of %s may read files and their bytes",
                      route->from, route->to, route->from);
        else
            report_problem(r,
                           "route %s -> %s: the sync user of %s reads file records but not "
                           "their bytes (HEAD %s: HTTP %ld)",
                           route->from, route->to, route->from, path, res.status);
        http_response_free(&res);
    }
    report_ok(r,
              "route %s -> %s: the largest file on %s has %.0f bytes; %s must accept uploads "
              "that big (its FILES_MAX_UPLOAD_SIZE)",
              route->from, route->to, route->from, biggest, route->to);
    http_request(sh, "GET", "/files?groupBy[]=storage&aggregate[count]=id", NULL, &res);
    cJSON_Delete(root);
    root = res.klass == HTTP_OK && res.body ? cJSON_ParseWithLength(res.body, res.len) : NULL;
    data = get(root, "data");
    if (cJSON_GetArraySize(data) > 1) {
        char names[256] = "";
        const cJSON *g;
        cJSON_ArrayForEach(g, data)
        {
            size_t n = strlen(names);
            snprintf(names + n, sizeof(names) - n, "%s%s", n ? ", " : "",
                     text_of(g, "storage", NULL));
        }
        report_warn(r,
                    "route %s -> %s: files on %s are in several storage locations (%s); %s "
                    "stores every one it receives in its default location",
                    route->from, route->to, route->from, names, route->to);
    }
out:
    http_response_free(&res);
    cJSON_Delete(root);
    http_client_free(sh);
}

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The skew between source's database clock and this host's: the convergence clocks are commit
 * times from that database, and the running consumer warns about commit times in its future. */
static void check_clock(struct report *r, const struct config *cfg,
                        const struct config_instance *src)
{
    if (!src->database) {
        report_warn(r,
                    "the clock of %s's database cannot be compared with this host's: no "
                    "\"database\" for %s here (the running consumer still warns about commit "
                    "times more than %d ms in its future)",
                    src->name, src->name, cfg->consumer.max_clock_skew_ms);
        return;
    }
    const char *k[] = {"dbname", "connect_timeout", NULL}, *v[] = {src->database, "5", NULL};
    PGconn *c = PQconnectdbParams(k, v, 1);
    PGresult *res = NULL;
    int64_t t0 = 0, t1 = 0;
    if (PQstatus(c) == CONNECTION_OK) {
        t0 = wall_us();
        res = PQexec(c, "SELECT (extract(epoch from clock_timestamp()) * 1000000)::bigint");
        t1 = wall_us();
    }
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        char why[300];
        snprintf(why, sizeof(why), "%s", PQerrorMessage(c));
        why[strcspn(why, "\n")] = '\0';
        report_warn(r, "the clock of %s's database cannot be read: %s", src->name, why);
    } else {
        int64_t db = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        int64_t skew_ms = (db - (t0 + t1) / 2) / 1000, within_ms = (t1 - t0) / 2000 + 1;
        int64_t abs_ms = skew_ms < 0 ? -skew_ms : skew_ms;
        if (abs_ms > cfg->consumer.max_clock_skew_ms)
            report_problem(r,
                           "the clock of %s's database runs %" PRId64 " ms %s this host's "
                           "(more than consumer.max_clock_skew_ms = %d): its writes win or lose "
                           "concurrent edits by that much; keep both on NTP",
                           src->name, abs_ms, skew_ms > 0 ? "ahead of" : "behind",
                           cfg->consumer.max_clock_skew_ms);
        else
            report_ok(r,
                      "the clock of %s's database is %" PRId64 " ms %s this host's (+/- %" PRId64
                      " ms; at most %d allowed)",
                      src->name, abs_ms, skew_ms >= 0 ? "ahead of" : "behind", within_ms,
                      cfg->consumer.max_clock_skew_ms);
    }
    PQclear(res);
    PQfinish(c);
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
    if (!(h = directus_client(inst, timeout, err, errlen)))
        goto out;
    rc = 0;
    if (nsubs == 0)
        report_problem(&r, "no route has \"to\": \"%s\": its consumer would apply nothing", remote);
    if (!report_directus(&r, h, remote, inst->url))
        goto out;
    const cJSON *perms = permissions_fetch(h, &perms_root);
    for (size_t i = 0; i < nsubs; i++) {
        check_collection(&r, h, &subs[i], perms);
        if (strcmp(subs[i].coll->collection, DIRECTUS_FILES) == 0)
            check_files_source(&r, cfg, subs[i].route, timeout);
    }
    /* relations: the same on the source and here */
    for (size_t i = 0; i < nsubs; i++) {
        const struct config_instance *src = config_instance_find(cfg, subs[i].route->from);
        char e[512];
        struct http_client *sh = src ? directus_client(src, timeout, e, sizeof(e)) : NULL;
        cJSON *sroot = NULL, *droot = NULL;
        const cJSON *srels = sh ? relations_fetch(sh, subs[i].coll->collection, &sroot) : NULL;
        const cJSON *drels = relations_fetch(h, subs[i].coll->collection, &droot);
        if (!srels || !drels)
            report_warn(&r,
                        "relations of \"%s\" cannot be compared: the sync users need read on "
                        "directus_relations on %s and %s",
                        subs[i].coll->collection, subs[i].route->from, remote);
        else
            check_relations(srels, drels, cfg, subs[i].route, subs[i].coll, &r);
        cJSON_Delete(sroot);
        cJSON_Delete(droot);
        http_client_free(sh);
    }
    /* the clocks of the sources, once each */
    for (size_t i = 0; i < nsubs; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(subs[j].route->from, subs[i].route->from) == 0;
        const struct config_instance *src = config_instance_find(cfg, subs[i].route->from);
        if (!seen && src)
            check_clock(&r, cfg, src);
    }
out:
    *problems = r.problems;
    cJSON_Delete(perms_root);
    http_client_free(h);
    free(subs);
    return rc;
}
