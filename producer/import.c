#include "import.h"

#include "source.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <libpq-fe.h>
#include <string.h>

/* http://host:8055/ and http://host:8055 are the same instance. */
static bool same_url(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    while (la && a[la - 1] == '/')
        la--;
    while (lb && b[lb - 1] == '/')
        lb--;
    return la == lb && strncmp(a, b, la) == 0;
}

/* The junction of users_notification, from directus_relations; the extension's defaults when
 * the relation is not recorded. */
static void junction(PGconn *c, char *table, char *own, char *user, size_t len)
{
    util_strlcpy(table, "data_sync_remote_sources_directus_users", len);
    util_strlcpy(own, "data_sync_remote_sources_id", len);
    util_strlcpy(user, "directus_users_id", len);
    PGresult *r = PQexec(c, "SELECT many_collection, many_field, junction_field FROM "
                            "directus_relations WHERE one_collection = "
                            "'data_sync_remote_sources' AND one_field = 'users_notification'");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 2)) {
        util_strlcpy(table, PQgetvalue(r, 0, 0), len);
        util_strlcpy(own, PQgetvalue(r, 0, 1), len);
        util_strlcpy(user, PQgetvalue(r, 0, 2), len);
    }
    PQclear(r);
}

static cJSON *notify_users(PGconn *c, const char *id, FILE *err_out)
{
    char table[128], own[128], user[128];
    junction(c, table, own, user, sizeof(table));
    char *t = PQescapeIdentifier(c, table, strlen(table));
    char *o = PQescapeIdentifier(c, own, strlen(own));
    char *u = PQescapeIdentifier(c, user, strlen(user));
    cJSON *arr = cJSON_CreateArray();
    char sql[1024];
    if (t && o && u &&
        util_format(sql, sizeof(sql),
                    "SELECT %s::text FROM %s WHERE %s::text = $1 AND %s IS NOT NULL", u, t, o, u)) {
        fprintf(err_out,
                "warning: users_notification of source %s not read: the names of its junction "
                "table %s are too long\n",
                id, table);
    } else if (t && o && u) {
        const char *p[1] = {id};
        PGresult *r = PQexecParams(c, sql, 1, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(r) == PGRES_TUPLES_OK) {
            for (int i = 0; i < PQntuples(r); i++)
                cJSON_AddItemToArray(arr, cJSON_CreateString(PQgetvalue(r, i, 0)));
        } else {
            fprintf(err_out, "warning: users_notification of source %s not read: %s", id,
                    PQresultErrorMessage(r));
        }
        PQclear(r);
    }
    PQfreemem(t);
    PQfreemem(o);
    PQfreemem(u);
    return arr;
}

/* The extension's schema: [{"collection": "...", "fields": ["..."]}], checked as its zod did. */
static cJSON *collections(const char *schema, const char *url, FILE *err_out)
{
    cJSON *s = cJSON_Parse(schema);
    bool okay = cJSON_IsArray(s) && cJSON_GetArraySize(s) > 0;
    for (const cJSON *it = okay ? s->child : NULL; it; it = it->next) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "collection");
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(it, "fields");
        okay = okay && cJSON_IsString(c) && cJSON_IsArray(f) && cJSON_GetArraySize(f) > 0;
        for (const cJSON *x = cJSON_IsArray(f) ? f->child : NULL; x; x = x->next)
            okay = okay && cJSON_IsString(x);
    }
    if (!okay) {
        fprintf(err_out,
                "problem: the schema of the source with url %s is not "
                "[{\"collection\": ..., \"fields\": [...]}]; skipped\n",
                url);
        cJSON_Delete(s);
        return NULL;
    }
    cJSON *out = cJSON_CreateArray();
    for (const cJSON *it = s->child; it; it = it->next) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "collection",
                              cJSON_Duplicate(cJSON_GetObjectItem(it, "collection"), true));
        cJSON_AddItemToObject(o, "fields",
                              cJSON_Duplicate(cJSON_GetObjectItem(it, "fields"), true));
        cJSON_AddItemToArray(out, o);
    }
    cJSON_Delete(s);
    return out;
}

int producer_import(const struct config *cfg, const struct config_instance *inst, FILE *out,
                    FILE *err_out)
{
    static const char *const keys[] = {"application_name", NULL};
    static const char *const vals[] = {"dxsync-import", NULL};
    PGconn *c = source_connect_params(inst->database, keys, vals);
    int rc = 1;
    cJSON *routes = NULL;
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(err_out, "problem: database of %s is not reachable: %s", inst->name,
                PQerrorMessage(c));
        goto out;
    }
    /* api_key is deliberately not selected: tokens never leave the database this way. */
    PGresult *r = PQexec(c, "SELECT id::text, url, schema::text FROM data_sync_remote_sources "
                            "WHERE status = 'published' ORDER BY url");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(err_out, "problem: cannot read data_sync_remote_sources in %s: %s", inst->name,
                PQresultErrorMessage(r));
        PQclear(r);
        goto out;
    }
    routes = cJSON_CreateArray();
    int unmapped = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *id = PQgetvalue(r, i, 0), *url = PQgetvalue(r, i, 1);
        const struct config_instance *to = NULL;
        for (size_t k = 0; k < cfg->ninstances; k++)
            if (same_url(cfg->instances[k].url, url))
                to = &cfg->instances[k];
        if (!to) {
            fprintf(err_out,
                    "problem: no configured instance has url %s: add it to "
                    "\"instances\" (with the token of its sync user) and import again\n",
                    url);
            unmapped++;
            continue;
        }
        if (to == inst) {
            fprintf(err_out, "problem: url %s is %s itself; skipped\n", url, inst->name);
            unmapped++;
            continue;
        }
        cJSON *cols = collections(PQgetisnull(r, i, 2) ? "" : PQgetvalue(r, i, 2), url, err_out);
        if (!cols) {
            unmapped++;
            continue;
        }
        cJSON *route = cJSON_CreateObject();
        cJSON_AddStringToObject(route, "from", inst->name);
        cJSON_AddStringToObject(route, "to", to->name);
        cJSON_AddItemToObject(route, "collections", cols);
        cJSON_AddItemToObject(route, "notify", notify_users(c, id, err_out));
        cJSON_AddItemToArray(routes, route);
    }
    PQclear(r);
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddItemToObject(doc, "routes", routes);
    routes = NULL;
    char *text = cJSON_Print(doc);
    if (text)
        fprintf(out, "%s\n", text);
    cJSON_free(text);
    cJSON_Delete(doc);
    rc = unmapped ? 1 : 0;
out:
    cJSON_Delete(routes);
    PQfinish(c);
    return rc;
}
