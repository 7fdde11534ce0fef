#include "source.h"

#include "directus.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

/* A collection whose metadata could not be read is not asked about again before this. */
#define SOURCE_RETRY_MS 5000

struct source_coll {
    struct capture_collection meta;
    bool loaded;
    int64_t next_try_ms; /* when missing: do not ask the catalog again before */
};

struct source {
    const struct config *cfg;
    const struct config_instance *inst;
    char slot[64];
    PGconn *conn;
    struct source_coll *colls;
    size_t ncolls;
    const char **names;
    void (*wait_cb)(void *);
    void *wait_opaque;
};

static int add_field(struct capture_collection *c, const char *f)
{
    for (size_t i = 0; i < c->nfields; i++)
        if (strcmp(c->fields[i], f) == 0)
            return 0;
    char **nf = realloc(c->fields, (c->nfields + 1) * sizeof(char *));
    if (!nf)
        return -1;
    c->fields = nf;
    if (!(c->fields[c->nfields] = strdup(f)))
        return -1;
    c->nfields++;
    return 0;
}

struct source *source_new(const struct config *cfg, const struct config_instance *instance)
{
    struct source *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->cfg = cfg;
    s->inst = instance;
    if (util_format(s->slot, sizeof(s->slot), "dxsync_%s", instance->name))
        s->slot[0] = '\0'; /* source_connect says so */
    for (size_t r = 0; r < cfg->nroutes; r++) {
        const struct config_route *route = &cfg->routes[r];
        if (strcmp(route->from, instance->name) != 0)
            continue;
        for (size_t j = 0; j < route->ncollections; j++) {
            const struct config_collection *cc = &route->collections[j];
            struct source_coll *sc = NULL;
            for (size_t k = 0; k < s->ncolls; k++)
                if (strcmp(s->colls[k].meta.name, cc->collection) == 0)
                    sc = &s->colls[k];
            if (!sc) {
                struct source_coll *n = realloc(s->colls, (s->ncolls + 1) * sizeof(*n));
                if (!n)
                    goto oom;
                s->colls = n;
                sc = &s->colls[s->ncolls++];
                memset(sc, 0, sizeof(*sc));
                if (!(sc->meta.name = strdup(cc->collection)))
                    goto oom;
            }
            for (size_t f = 0; f < cc->nfields; f++)
                if (add_field(&sc->meta, cc->fields[f]))
                    goto oom;
            /* a file's events say when its bytes change, whatever the route lists */
            for (size_t f = 0;
                 strcmp(cc->collection, DIRECTUS_FILES) == 0 && f < DIRECTUS_FILE_CONTENT_FIELDS;
                 f++)
                if (add_field(&sc->meta, directus_file_content_fields[f]))
                    goto oom;
        }
    }
    s->names = calloc(s->ncolls + 1, sizeof(char *));
    if (!s->names)
        goto oom;
    for (size_t k = 0; k < s->ncolls; k++)
        s->names[k] = s->colls[k].meta.name;
    return s;
oom:
    source_free(s);
    return NULL;
}

static void free_meta(struct capture_collection *m)
{
    free(m->pk);
    m->pk = NULL;
    for (size_t i = 0; i < m->ncolumns; i++)
        free(m->columns[i].name);
    free(m->columns);
    m->columns = NULL;
    m->ncolumns = 0;
}

void source_free(struct source *s)
{
    if (!s)
        return;
    if (s->conn)
        PQfinish(s->conn);
    for (size_t k = 0; k < s->ncolls; k++) {
        free_meta(&s->colls[k].meta);
        for (size_t i = 0; i < s->colls[k].meta.nfields; i++)
            free(s->colls[k].meta.fields[i]);
        free(s->colls[k].meta.fields);
        free(s->colls[k].meta.name);
    }
    free(s->colls);
    free(s->names);
    free(s);
}

PGconn *source_connect_params(const char *database, const char *const *keys,
                              const char *const *vals)
{
    const char *k[16], *v[16];
    size_t n = 0;
    k[n] = "dbname";
    v[n++] = database;
    k[n] = "options";
    v[n++] = SOURCE_SESSION_OPTIONS;
    k[n] = "connect_timeout";
    v[n++] = "10";
    for (size_t i = 0; keys && keys[i] && n < 15; i++) {
        k[n] = keys[i];
        v[n++] = vals[i];
    }
    k[n] = NULL;
    v[n] = NULL;
    return PQconnectdbParams(k, v, 1);
}

int source_connect(struct source *s, char *err, size_t errlen)
{
    if (s->conn && PQstatus(s->conn) == CONNECTION_OK)
        return 0;
    if (s->conn)
        PQfinish(s->conn);
    s->conn = NULL;
    if (!s->slot[0]) {
        snprintf(err, errlen, "replication slot name dxsync_%s is longer than %zu characters",
                 s->inst->name, sizeof(s->slot) - 1);
        return -1;
    }
    static const char *const keys[] = {"application_name", NULL};
    const char *vals[] = {"dxsync-producer", NULL};
    s->conn = source_connect_params(s->inst->database, keys, vals);
    if (PQstatus(s->conn) != CONNECTION_OK) {
        snprintf(err, errlen, "database of %s: %s", s->inst->name, PQerrorMessage(s->conn));
        PQfinish(s->conn);
        s->conn = NULL;
        return -1;
    }
    return 0;
}

PGconn *source_conn(struct source *s)
{
    return s->conn;
}

const char *source_slot(const struct source *s)
{
    return s->slot;
}

size_t source_collections(const struct source *s, const char *const **names)
{
    *names = s->names;
    return s->ncolls;
}

void source_set_wait_cb(struct source *s, void (*fn)(void *opaque), void *opaque)
{
    s->wait_cb = fn;
    s->wait_opaque = opaque;
}

static void trim(char *err)
{
    size_t l = strlen(err);
    while (l && (err[l - 1] == '\n' || err[l - 1] == ' '))
        err[--l] = '\0';
}

/* Runs a query with text parameters; returns the result when its status is ok, else NULL
 * with err set (the result cleared). While the server has not answered, the wait callback is
 * called about every second. */
static PGresult *query(struct source *s, const char *sql, int n, const char *const *params,
                       char *err, size_t errlen)
{
    PGconn *c = s->conn;
    if (!c || !PQsendQueryParams(c, sql, n, NULL, params, NULL, NULL, 0)) {
        snprintf(err, errlen, "%s", c ? PQerrorMessage(c) : "not connected");
        trim(err);
        return NULL;
    }
    while (PQisBusy(c)) {
        if (s->wait_cb)
            s->wait_cb(s->wait_opaque);
        int fd = PQsocket(c);
        if (fd < 0)
            break; /* PQgetResult says why */
        fd_set rfds;
        FD_ZERO(&rfds);
        FD_SET(fd, &rfds);
        struct timeval tv = {.tv_sec = 1, .tv_usec = 0};
        if (select(fd + 1, &rfds, NULL, NULL, &tv) < 0 && errno != EINTR)
            break;
        if (!PQconsumeInput(c))
            break;
    }
    PGresult *r = PQgetResult(c), *more;
    while ((more = PQgetResult(c))) /* the end of the command (NULL) */
        PQclear(more);
    ExecStatusType st = PQresultStatus(r);
    if (r && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK))
        return r;
    snprintf(err, errlen, "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(c));
    trim(err);
    PQclear(r);
    return NULL;
}

int source_token_user(struct source *s, const char *token, char *id, size_t idlen, char *err,
                      size_t errlen)
{
    if (source_connect(s, err, errlen))
        return -1;
    char len[24];
    snprintf(len, sizeof(len), "%zu", strlen(token));
    const char *p[1] = {len};
    PGresult *r = query(s,
                        "SELECT id::text, token FROM directus_users WHERE status = 'active' AND "
                        "token IS NOT NULL AND length(token) = $1::int",
                        1, p, err, errlen);
    if (!r)
        return -1;
    int found = 0;
    for (int i = 0; i < PQntuples(r) && !found; i++)
        if (strcmp(PQgetvalue(r, i, 1), token) == 0) {
            util_strlcpy(id, PQgetvalue(r, i, 0), idlen);
            found = 1;
        }
    PQclear(r);
    return found;
}

/* Adds the routed collection's table to the publication, so that pgoutput sends its rows (the
 * row as each transaction committed it, beside the activity and revision rows). A table that
 * does not exist yet is added once it does (source_lookup); one that cannot be added (the
 * database user does not own it) is reported, and its events take their data from the
 * revision rows alone. */
static bool publish_table(struct source *s, const char *table)
{
    char e[512];
    const char *p[2] = {s->slot, table};
    PGresult *r = query(s,
                        "SELECT to_regclass(quote_ident($2)) IS NOT NULL, EXISTS (SELECT 1 FROM "
                        "pg_publication_tables WHERE pubname = $1 AND tablename = $2 AND "
                        "schemaname = current_schema())",
                        2, p, e, sizeof(e));
    if (!r) {
        log_warn("producer", "event=publication_table_unknown table=%s reason=%s", LOG_Q(table),
                 LOG_Q(e));
        return false;
    }
    bool exists = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    bool published = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
    PQclear(r);
    if (!exists || published)
        return published;
    char *pub = PQescapeIdentifier(s->conn, s->slot, strlen(s->slot));
    char *tab = PQescapeIdentifier(s->conn, table, strlen(table));
    char sql[1024];
    int cut = !pub || !tab ||
              util_format(sql, sizeof(sql), "ALTER PUBLICATION %s ADD TABLE %s", pub, tab);
    PQfreemem(pub);
    PQfreemem(tab);
    if (cut) {
        log_warn("producer", "event=publication_table_failed table=%s reason=%s", LOG_Q(table),
                 LOG_Q("name too long"));
        return false;
    }
    if (!(r = query(s, sql, 0, NULL, e, sizeof(e)))) {
        log_warn("producer",
                 "event=publication_table_failed publication=%s table=%s reason=%s hint=%s",
                 LOG_Q(s->slot), LOG_Q(table), LOG_Q(e),
                 LOG_Q("its events take their data from Directus's revision rows, which can lack "
                       "a many-to-one key; let the table's owner run the ALTER PUBLICATION "
                       "statement, see dxsync-producer check"));
        return false;
    }
    PQclear(r);
    log_info("producer", "event=publication_table_added publication=%s table=%s", LOG_Q(s->slot),
             LOG_Q(table));
    return true;
}

int source_ensure_slot(struct source *s, char *err, size_t errlen)
{
    char e[512];
    const char *p[1] = {s->slot};
    PGresult *r =
        query(s, "SELECT pubupdate FROM pg_publication WHERE pubname = $1", 1, p, e, sizeof(e));
    if (!r) {
        snprintf(err, errlen, "looking up publication %s: %s", s->slot, e);
        return -1;
    }
    bool have_pub = PQntuples(r) > 0;
    bool updates = have_pub && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (have_pub && !updates) {
        /* made by an earlier version (inserts only): the routed tables' updates are wanted */
        char sql[256];
        if (util_format(sql, sizeof(sql), "ALTER PUBLICATION %s SET (publish = 'insert, update')",
                        s->slot)) {
            snprintf(err, errlen, "altering publication %s: the statement is too long", s->slot);
            return -1;
        }
        if (!(r = query(s, sql, 0, NULL, e, sizeof(e)))) {
            snprintf(err, errlen, "altering publication %s to publish updates: %s", s->slot, e);
            return -1;
        }
        PQclear(r);
        log_info("producer", "event=publication_altered publication=%s publish=%s", LOG_Q(s->slot),
                 LOG_Q("insert, update"));
    }
    if (!have_pub) {
        char sql[256];
        if (util_format(sql, sizeof(sql),
                        "CREATE PUBLICATION %s FOR TABLE directus_activity, directus_revisions "
                        "WITH (publish = 'insert, update')",
                        s->slot)) {
            snprintf(err, errlen, "creating publication %s: the statement is too long", s->slot);
            return -1;
        }
        if (!(r = query(s, sql, 0, NULL, e, sizeof(e)))) {
            snprintf(err, errlen, "creating publication %s: %s", s->slot, e);
            return -1;
        }
        PQclear(r);
        log_info("producer", "event=publication_created publication=%s", LOG_Q(s->slot));
    }
    for (size_t k = 0; k < s->ncolls; k++)
        s->colls[k].meta.published = publish_table(s, s->colls[k].meta.name);
    r = query(s, "SELECT plugin FROM pg_replication_slots WHERE slot_name = $1", 1, p, e,
              sizeof(e));
    if (!r) {
        snprintf(err, errlen, "looking up slot %s: %s", s->slot, e);
        return -1;
    }
    bool have_slot = PQntuples(r) > 0;
    bool right_plugin = have_slot && strcmp(PQgetvalue(r, 0, 0), "pgoutput") == 0;
    PQclear(r);
    if (have_slot && !right_plugin) {
        snprintf(err, errlen, "replication slot %s exists with another plugin than pgoutput",
                 s->slot);
        return -1;
    }
    if (!have_slot) {
        r = query(s, "SELECT pg_create_logical_replication_slot($1, 'pgoutput')", 1, p, e,
                  sizeof(e));
        if (!r) {
            snprintf(err, errlen, "creating replication slot %s: %s", s->slot, e);
            return -1;
        }
        PQclear(r);
        log_info("producer", "event=slot_created slot=%s", LOG_Q(s->slot));
    }
    return 0;
}

static enum capture_type map_type(const char *t)
{
    if (!strcmp(t, "smallint") || !strcmp(t, "integer") || !strcmp(t, "bigint"))
        return CAPTURE_INTEGER;
    if (!strcmp(t, "numeric") || !strcmp(t, "real") || !strcmp(t, "double precision"))
        return CAPTURE_NUMBER;
    if (!strcmp(t, "boolean"))
        return CAPTURE_BOOLEAN;
    return CAPTURE_TEXT;
}

static int load_meta(struct source *s, struct source_coll *sc, char *err, size_t errlen)
{
    const char *p[1] = {sc->meta.name};
    PGresult *r = query(s,
                        "SELECT a.attname, format_type(a.atttypid, NULL), "
                        "       COALESCE(a.attnum = ANY(i.indkey), false) "
                        "FROM pg_attribute a "
                        "LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary "
                        "WHERE a.attrelid = to_regclass(quote_ident($1)) AND a.attnum > 0 "
                        "  AND NOT a.attisdropped ORDER BY a.attnum",
                        1, p, err, errlen);
    if (!r)
        return -1;
    int n = PQntuples(r);
    if (n == 0) {
        PQclear(r);
        snprintf(err, errlen, "table %s does not exist", sc->meta.name);
        return -1;
    }
    free_meta(&sc->meta);
    sc->meta.columns = calloc((size_t)n, sizeof(*sc->meta.columns));
    if (!sc->meta.columns) {
        PQclear(r);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        struct capture_column *c = &sc->meta.columns[sc->meta.ncolumns++];
        c->name = strdup(PQgetvalue(r, i, 0));
        c->type = map_type(PQgetvalue(r, i, 1));
        if (strcmp(PQgetvalue(r, i, 2), "t") == 0 && !sc->meta.pk) {
            sc->meta.pk = strdup(PQgetvalue(r, i, 0));
            sc->meta.pk_type = c->type;
        }
    }
    PQclear(r);
    if (!sc->meta.pk) {
        snprintf(err, errlen, "table %s has no primary key", sc->meta.name);
        return -1;
    }
    for (size_t f = 0; f < sc->meta.nfields; f++) {
        bool column = false;
        for (size_t i = 0; i < sc->meta.ncolumns && !column; i++)
            column = strcmp(sc->meta.columns[i].name, sc->meta.fields[f]) == 0;
        if (!column)
            log_warn("producer", "event=field_not_a_column collection=%s field=%s hint=%s",
                     LOG_Q(sc->meta.name), LOG_Q(sc->meta.fields[f]),
                     LOG_Q("an alias (one-to-many or many-to-many) has no column and is not "
                           "synced: route the junction or child collection instead"));
    }
    sc->loaded = true;
    log_info("producer", "event=collection_loaded collection=%s pk=%s pk_type=%s columns=%zu",
             LOG_Q(sc->meta.name), LOG_Q(sc->meta.pk),
             sc->meta.pk_type == CAPTURE_INTEGER ? "integer" : "text", sc->meta.ncolumns);
    return 0;
}

enum capture_lookup source_lookup(void *source, const char *collection,
                                  const struct capture_collection **coll)
{
    struct source *s = source;
    *coll = NULL;
    for (size_t k = 0; k < s->ncolls; k++) {
        struct source_coll *sc = &s->colls[k];
        if (strcmp(sc->meta.name, collection) != 0)
            continue;
        if (sc->loaded) {
            *coll = &sc->meta;
            return CAPTURE_SYNCED;
        }
        /* Routed, but not known yet: "cannot tell now", never "not synced". */
        int64_t now = util_mono_ms();
        if (now < sc->next_try_ms)
            return CAPTURE_UNKNOWN;
        char err[512];
        if (source_connect(s, err, sizeof(err)) || load_meta(s, sc, err, sizeof(err))) {
            sc->next_try_ms = now + SOURCE_RETRY_MS;
            log_warn("producer", "event=collection_unavailable collection=%s reason=%s retry_ms=%d",
                     LOG_Q(collection), LOG_Q(err), SOURCE_RETRY_MS);
            return CAPTURE_UNKNOWN;
        }
        /* a table made after the start: its rows from now on */
        sc->meta.published = publish_table(s, sc->meta.name);
        *coll = &sc->meta;
        return CAPTURE_SYNCED;
    }
    return CAPTURE_NOT_SYNCED;
}

int source_fill_rows(struct source *s, struct capture_txn *txn, char *err, size_t errlen)
{
    size_t out = 0;
    for (size_t i = 0; i < txn->nevents; i++) {
        struct capture_event *e = &txn->events[i];
        if (e->needs_row) {
            char *table = PQescapeIdentifier(s->conn, e->coll->name, strlen(e->coll->name));
            char *pk = PQescapeIdentifier(s->conn, e->coll->pk, strlen(e->coll->pk));
            if (!table || !pk) {
                PQfreemem(table);
                PQfreemem(pk);
                snprintf(err, errlen, "%s", PQerrorMessage(s->conn));
                return -1;
            }
            char sql[1024];
            int cut =
                util_format(sql, sizeof(sql),
                            "SELECT row_to_json(t)::text FROM %s t WHERE %s::text = $1", table, pk);
            PQfreemem(table);
            PQfreemem(pk);
            if (cut) {
                snprintf(err, errlen, "reading a row of %s: table or key name too long",
                         e->coll->name);
                return -1;
            }
            const char *p[1] = {e->ev.key_text};
            PGresult *r = query(s, sql, 1, p, err, errlen);
            if (!r)
                return -1;
            if (PQntuples(r) == 0) {
                log_info("producer", "event=skip reason=row_gone collection=%s key=%s",
                         LOG_Q(e->coll->name), LOG_Q(e->ev.key_text));
                PQclear(r);
                event_free(&e->ev);
                continue;
            }
            size_t off;
            cJSON *row = util_json_parse(PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0), &off);
            PQclear(r);
            if (!row) {
                snprintf(err, errlen, "row of %s %s is not JSON", e->coll->name, e->ev.key_text);
                return -1;
            }
            capture_set_row(e, row);
        }
        if (out != i)
            txn->events[out] = txn->events[i];
        out++;
    }
    txn->nevents = out;
    return 0;
}
