#include "check.h"

#include "directus.h"
#include "http.h"
#include "report.h"
#include "source.h"
#include "util.h"

#include <libpq-fe.h>
#include <string.h>

/* First row, first column of a one-parameter query, copied into buf; -1 when the query fails,
 * 0 when it returns no row (buf empty), 1 otherwise. */
static int scalar(PGconn *c, const char *sql, const char *param, char *buf, size_t len)
{
    const char *p[1] = {param};
    PGresult *res = PQexecParams(c, sql, param ? 1 : 0, NULL, param ? p : NULL, NULL, NULL, 0);
    int rc = -1;
    buf[0] = '\0';
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        rc = PQntuples(res) > 0;
        if (rc)
            util_strlcpy(buf, PQgetvalue(res, 0, 0), len);
    } else {
        util_strlcpy(buf, PQresultErrorMessage(res), len);
        size_t l = strlen(buf);
        while (l && buf[l - 1] == '\n')
            buf[--l] = '\0';
    }
    PQclear(res);
    return rc;
}

/* The majors the matrix (tests/matrix.sh) runs dxsync on; README's supported versions. */
#define PG_MAJOR_OLDEST 13
#define PG_MAJOR_NEWEST 18

void check_server_version(struct report *r, int num, const char *text)
{
    int major = num / 10000;
    if (!text)
        text = "?";
    if (num <= 0)
        report_problem(r, "cannot tell the PostgreSQL server's version");
    else if (major < PG_MAJOR_OLDEST)
        report_problem(r,
                       "PostgreSQL %s is not supported: dxsync runs on PostgreSQL %d to %d (its "
                       "logical decoding is tested on each; %d and older are past their end of "
                       "life): upgrade the server",
                       text, PG_MAJOR_OLDEST, PG_MAJOR_NEWEST, PG_MAJOR_OLDEST - 1);
    else if (major > PG_MAJOR_NEWEST)
        report_warn(r,
                    "PostgreSQL %s is newer than the majors dxsync is tested on (%d to %d): it "
                    "speaks pgoutput protocol 1, which newer servers keep, but nothing proves "
                    "this one yet",
                    text, PG_MAJOR_OLDEST, PG_MAJOR_NEWEST);
    else
        report_ok(r, "PostgreSQL %s (supported: %d to %d)", text, PG_MAJOR_OLDEST, PG_MAJOR_NEWEST);
}

static void check_database(struct report *r, PGconn *c, const char *slot)
{
    char v[512];
    scalar(c, "SHOW wal_level", NULL, v, sizeof(v));
    if (strcmp(v, "logical") == 0)
        report_ok(r, "wal_level is logical");
    else
        report_problem(
            r,
            "wal_level is \"%s\": set wal_level = logical in postgresql.conf and restart "
            "PostgreSQL",
            v);
    char super[8], repl[8];
    scalar(c, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user", NULL, super,
           sizeof(super));
    scalar(c, "SELECT rolreplication FROM pg_roles WHERE rolname = current_user", NULL, repl,
           sizeof(repl));
    bool is_super = strcmp(super, "t") == 0;
    int have = scalar(c, "SELECT plugin FROM pg_replication_slots WHERE slot_name = $1", slot, v,
                      sizeof(v));
    if (have == 1 && strcmp(v, "pgoutput") != 0)
        report_problem(r,
                       "replication slot %s uses plugin \"%s\", not pgoutput: drop it "
                       "(SELECT pg_drop_replication_slot('%s'))",
                       slot, v, slot);
    else if (have == 1)
        report_ok(r, "replication slot %s exists", slot);
    if (!is_super && strcmp(repl, "t") != 0)
        report_problem(r,
                       "the database user has neither SUPERUSER nor REPLICATION: it cannot %s "
                       "replication slot %s (ALTER ROLE ... REPLICATION)",
                       have == 1 ? "stream from" : "create", slot);
    else if (have != 1)
        report_ok(r, "replication slot %s will be created", slot);

    have = scalar(c,
                  "SELECT count(*) FROM pg_publication_tables WHERE pubname = $1 AND "
                  "tablename IN ('directus_activity', 'directus_revisions')",
                  slot, v, sizeof(v));
    char exists[8];
    scalar(c, "SELECT count(*) FROM pg_publication WHERE pubname = $1", slot, exists,
           sizeof(exists));
    if (strcmp(exists, "1") == 0) {
        if (strcmp(v, "2") == 0)
            report_ok(r, "publication %s covers directus_activity and directus_revisions", slot);
        else
            report_problem(r,
                           "publication %s exists but does not cover both directus_activity and "
                           "directus_revisions: drop it (DROP PUBLICATION %s) or add them",
                           slot, slot);
    } else {
        char create[8], owner[8];
        scalar(c, "SELECT has_database_privilege(current_database(), 'CREATE')", NULL, create,
               sizeof(create));
        scalar(c,
               "SELECT bool_and(pg_has_role(tableowner, 'USAGE')) FROM pg_tables WHERE "
               "tablename IN ('directus_activity', 'directus_revisions')",
               NULL, owner, sizeof(owner));
        if (is_super || (strcmp(create, "t") == 0 && strcmp(owner, "t") == 0))
            report_ok(r, "publication %s will be created", slot);
        else
            report_problem(
                r,
                "the database user cannot create publication %s: it needs CREATE on the "
                "database and to own directus_activity and directus_revisions (or create "
                "it as a superuser: CREATE PUBLICATION %s FOR TABLE directus_activity, "
                "directus_revisions WITH (publish = 'insert, update'))",
                slot, slot);
    }
}

/* The routed table's rows come through the publication (capture.h): it is in it, or the
 * producer can add it, and the user can read it (rows of events without a revision). */
static void check_table_published(struct report *r, PGconn *c, const char *slot, const char *coll)
{
    const char *p[2] = {slot, coll};
    PGresult *res = PQexecParams(
        c,
        "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1), "
        "EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND tablename = $2 AND "
        "schemaname = current_schema()), "
        "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user) OR EXISTS (SELECT 1 FROM "
        "pg_tables WHERE tablename = $2 AND schemaname = current_schema() AND "
        "pg_has_role(tableowner, 'USAGE')), "
        "has_table_privilege(quote_ident($2), 'SELECT')",
        2, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        report_problem(r, "collection \"%s\": cannot tell whether publication %s covers it: %s",
                       coll, slot, PQresultErrorMessage(res));
        PQclear(res);
        return;
    }
    bool pub = *PQgetvalue(res, 0, 0) == 't', in = *PQgetvalue(res, 0, 1) == 't';
    bool owner = *PQgetvalue(res, 0, 2) == 't', sel = *PQgetvalue(res, 0, 3) == 't';
    PQclear(res);
    if (in)
        report_ok(r, "publication %s covers table \"%s\"", slot, coll);
    else if (owner)
        report_ok(r, "table \"%s\" will be added to publication %s", coll, slot);
    else
        report_problem(r,
                       "table \"%s\" is not in publication %s and the database user does not "
                       "own it: its events would take their data from revision rows, which lack "
                       "many-to-one keys of nested writes; as its owner run ALTER PUBLICATION %s "
                       "ADD TABLE \"%s\"%s",
                       coll, slot, slot, coll,
                       pub ? "" : " once the producer created the publication");
    if (!sel)
        report_problem(r,
                       "the database user cannot read table \"%s\": GRANT SELECT ON \"%s\" TO "
                       "the producer's user",
                       coll, coll);
}

/* Many-to-one fields of a routed collection: the item they point at must reach the same remote,
 * or the child waits for it there and is dead-lettered (PARENT_MISSING). */
static void check_relations(struct report *r, PGconn *c, const struct config *cfg,
                            const struct config_route *route, const struct config_collection *cc)
{
    for (size_t f = 0; f < cc->nfields; f++) {
        const char *p[2] = {cc->collection, cc->fields[f]};
        PGresult *res = PQexecParams(c,
                                     "SELECT one_collection FROM directus_relations WHERE "
                                     "many_collection = $1 AND many_field = $2 AND "
                                     "one_collection IS NOT NULL",
                                     2, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
            const char *parent = PQgetvalue(res, 0, 0);
            if (!config_route_carries(cfg, route->from, route->to, parent))
                report_warn(
                    r,
                    "route %s -> %s: \"%s.%s\" points at \"%s\", which no route carries "
                    "from %s to %s: an item pointing at one %s does not have waits for "
                    "it, and is dead-lettered (PARENT_MISSING) after consumer.parent_wait_s",
                    route->from, route->to, cc->collection, cc->fields[f], parent, route->from,
                    route->to, route->to);
        }
        PQclear(res);
    }
}

static void check_collection(struct report *r, PGconn *c, const struct config *cfg,
                             const char *slot, const char *coll, const struct config_route *route,
                             const struct config_collection *cc)
{
    char v[512];
    /* Directus's own collections (files, folders) have no row there and record every change */
    bool system = strcmp(coll, DIRECTUS_FILES) == 0 || strcmp(coll, DIRECTUS_FOLDERS) == 0;
    int in_directus = system ? 1
                             : scalar(c,
                                      "SELECT coalesce(accountability, 'null') FROM "
                                      "directus_collections WHERE collection = $1",
                                      coll, v, sizeof(v));
    if (system)
        util_strlcpy(v, "all", sizeof(v));
    char table[8];
    scalar(c, "SELECT to_regclass(quote_ident($1)) IS NOT NULL", coll, table, sizeof(table));
    if (strcmp(table, "t") != 0 || in_directus != 1) {
        report_problem(r, "route %s -> %s: collection \"%s\" does not exist in %s", route->from,
                       route->to, coll, route->from);
        return;
    }
    if (strcmp(v, "all") != 0)
        report_problem(r,
                       "collection \"%s\": accountability is \"%s\"; set it to \"all\" (Settings > "
                       "Data Model > %s > Accountability) so Directus writes revisions",
                       coll, v, coll);
    else if (system)
        report_ok(r, "system collection \"%s\" (Directus records every change of it)", coll);
    else
        report_ok(r, "collection \"%s\" exists with accountability \"all\"", coll);
    check_table_published(r, c, slot, coll);
    check_relations(r, c, cfg, route, cc);
    for (size_t f = 0; f < cc->nfields; f++) {
        const char *field = cc->fields[f];
        char sql[512], col[8], special[256];
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass(quote_ident("
                 "'%s')) AND attname = $1 AND attnum > 0 AND NOT attisdropped",
                 coll); /* coll was validated by the config: letters, digits, _ and - */
        scalar(c, sql, field, col, sizeof(col));
        if (strcmp(col, "1") == 0)
            continue;
        const char *p[2] = {coll, field};
        PGresult *res = PQexecParams(c,
                                     "SELECT coalesce(special, ''), (SELECT many_collection FROM "
                                     "directus_relations WHERE one_collection = $1 AND "
                                     "one_field = $2 LIMIT 1) FROM directus_fields WHERE "
                                     "collection = $1 AND field = $2",
                                     2, NULL, p, NULL, NULL, 0);
        bool alias = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0;
        char via[128];
        util_strlcpy(special, alias ? PQgetvalue(res, 0, 0) : "", sizeof(special));
        util_strlcpy(via, alias ? PQgetvalue(res, 0, 1) : "", sizeof(via));
        PQclear(res);
        if (alias && via[0])
            report_problem(r,
                           "route %s -> %s: field \"%s.%s\" is an alias (%s), not a column: "
                           "remove it and route collection \"%s\" (its %s) instead",
                           route->from, route->to, coll, field, special[0] ? special : "no column",
                           via, strstr(special, "m2m") ? "junction" : "child collection");
        else if (alias)
            report_problem(r,
                           "route %s -> %s: field \"%s.%s\" is an alias (%s), not a column: route "
                           "the junction or child collection instead",
                           route->from, route->to, coll, field, special[0] ? special : "no column");
        else
            report_problem(r, "route %s -> %s: field \"%s.%s\" does not exist in %s", route->from,
                           route->to, coll, field, route->from);
    }
}

static void check_directus(struct report *r, const struct config_instance *inst)
{
    char err[256];
    struct http_client *h = directus_client(inst, 10000, err, sizeof(err));
    if (!h) {
        report_problem(r, "directus %s: %s", inst->url, err);
        return;
    }
    report_directus(r, h, inst->name, inst->url);
    http_client_free(h);
}

int producer_check(const struct config *cfg, const struct config_instance *inst, FILE *out)
{
    struct report r = {.out = out};
    char slot[64];
    snprintf(slot, sizeof(slot), "dxsync_%s", inst->name);
    check_directus(&r, inst);
    if (!inst->database) {
        report_problem(&r, "instance %s has no \"database\"", inst->name);
        return r.problems;
    }
    static const char *const keys[] = {"application_name", NULL};
    static const char *const vals[] = {"dxsync-check", NULL};
    PGconn *c = source_connect_params(inst->database, keys, vals);
    if (PQstatus(c) != CONNECTION_OK) {
        char disp[256];
        config_database_display(inst->database, disp, sizeof(disp));
        char e[512];
        util_strlcpy(e, PQerrorMessage(c), sizeof(e));
        for (char *p = e; *p; p++)
            if (*p == '\n')
                *p = ' ';
        report_problem(&r, "database of %s (%s) is not reachable: %s", inst->name, disp, e);
        PQfinish(c);
        return r.problems;
    }
    report_ok(&r, "database of %s is reachable", inst->name);
    check_server_version(&r, PQserverVersion(c), PQparameterStatus(c, "server_version"));
    check_database(&r, c, slot);
    size_t routes = 0;
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct config_route *route = &cfg->routes[i];
        if (strcmp(route->from, inst->name) != 0)
            continue;
        routes++;
        for (size_t j = 0; j < route->ncollections; j++)
            check_collection(&r, c, cfg, slot, route->collections[j].collection, route,
                             &route->collections[j]);
    }
    if (routes == 0)
        report_problem(&r, "no route starts at %s: its producer would publish nothing", inst->name);
    PQfinish(c);
    return r.problems;
}
