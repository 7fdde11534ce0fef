#include "snapshot.h"

#include "capture.h"
#include "log.h"
#include "publish.h"
#include "signals.h"
#include "source.h"
#include "util.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FETCH 1000

static int exec_ok(PGconn *c, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;
    if (rc && snprintf(err, errlen, "%s: %s", sql, PQresultErrorMessage(r)) < 0)
        err[0] = '\0';
    PQclear(r);
    return rc;
}

/* Publishes one collection; returns rows published or -1. */
static long long one_collection(PGconn *c, struct publish *pub, const char *source,
                                const struct capture_collection *coll, const char *lsn,
                                const char *now, bool tty, char *err, size_t errlen)
{
    char *table = PQescapeIdentifier(c, coll->name, strlen(coll->name));
    char *pk = PQescapeIdentifier(c, coll->pk, strlen(coll->pk));
    long long done = 0, total = 0;
    struct capture_event *events = calloc(FETCH, sizeof(*events));
    char sql[1024];
    if (!table || !pk || !events) {
        snprintf(err, errlen, "out of memory");
        done = -1;
        goto out;
    }
    if (util_format(sql, sizeof(sql), "SELECT count(*) FROM %s", table)) {
        snprintf(err, errlen, "reading %s: table name too long", coll->name);
        done = -1;
        goto out;
    }
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        total = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    if (util_format(sql, sizeof(sql),
                    "DECLARE dxsync_snap NO SCROLL CURSOR FOR SELECT %s::text, "
                    "row_to_json(t)::text FROM %s t ORDER BY %s",
                    pk, table, pk)) {
        snprintf(err, errlen, "reading %s: table or key name too long", coll->name);
        done = -1;
        goto out;
    }
    if (exec_ok(c, sql, err, errlen)) {
        done = -1;
        goto out;
    }
    for (;;) {
        if (signals_stop) {
            snprintf(err, errlen, "stopped");
            done = -1;
            break;
        }
        r = PQexec(c, "FETCH " /* rows */ "1000 FROM dxsync_snap");
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            snprintf(err, errlen, "reading %s: %s", coll->name, PQresultErrorMessage(r));
            PQclear(r);
            done = -1;
            break;
        }
        int n = PQntuples(r);
        struct capture_txn txn = {.events = events, .nevents = 0};
        for (int i = 0; i < n; i++) {
            const char *key = PQgetvalue(r, i, 0);
            size_t off;
            cJSON *row = util_json_parse(PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1), &off);
            if (!row)
                continue;
            struct capture_event *e = &events[txn.nevents++];
            memset(e, 0, sizeof(*e));
            e->coll = coll;
            struct event *ev = &e->ev;
            struct util_buf id = {0}; /* the key has no length limit: never cut the id */
            util_buf_printf(&id, "%s:snapshot:%s:%s", source, key, now);
            ev->event_id = util_buf_steal(&id);
            ev->source = strdup(source);
            ev->collection = strdup(coll->name);
            ev->action = EVENT_SNAPSHOT;
            int64_t v;
            ev->key = coll->pk_type == CAPTURE_INTEGER &&
                              util_parse_i64(key, -9007199254740992LL, 9007199254740992LL, &v)
                          ? cJSON_CreateNumber((double)v)
                          : cJSON_CreateString(key);
            ev->key_text = strdup(key);
            ev->timestamp = strdup(now);
            ev->lsn = strdup(lsn);
            capture_set_row(e, row);
        }
        PQclear(r);
        int rc = txn.nevents ? publish_txn(pub, &txn, &signals_stop, err, errlen) : 0;
        for (size_t i = 0; i < txn.nevents; i++)
            event_free(&events[i].ev);
        if (rc) {
            done = -1;
            break;
        }
        done += n;
        if (tty)
            log_stderr("\r%s: %lld/%lld rows", coll->name, done, total);
        if (n < FETCH)
            break;
    }
    if (tty)
        log_stderr("\n");
    PQclear(PQexec(c, "CLOSE dxsync_snap"));
out:
    PQfreemem(table);
    PQfreemem(pk);
    free(events);
    return done;
}

int producer_snapshot(const struct config *cfg, const struct config_instance *inst,
                      const char *const *only, size_t nonly, struct metrics *m)
{
    char err[1024] = "";
    int rc = 1;
    struct source *src = source_new(cfg, inst);
    struct publish *pub = src ? publish_new(cfg, inst->name, m, err, sizeof(err)) : NULL;
    if (!src || !pub)
        goto out;
    const char *const *names;
    size_t n = source_collections(src, &names);
    for (size_t i = 0; i < nonly; i++) {
        bool found = false;
        for (size_t j = 0; j < n; j++)
            found = found || strcmp(only[i], names[j]) == 0;
        if (!found) {
            log_stderr("dxsync-producer: --collection %s: no route from %s names it\n", only[i],
                       inst->name);
            rc = 2;
            goto out;
        }
    }
    if (source_connect(src, err, sizeof(err)) ||
        publish_ensure_topics(pub, names, n, err, sizeof(err)))
        goto out;
    PGconn *c = source_conn(src);
    const struct capture_collection **colls = calloc(n ? n : 1, sizeof(*colls));
    if (!colls)
        goto out;
    size_t ncolls = 0;
    for (size_t j = 0; j < n; j++) {
        bool wanted = nonly == 0;
        for (size_t i = 0; i < nonly; i++)
            wanted = wanted || strcmp(only[i], names[j]) == 0;
        if (!wanted)
            continue;
        const struct capture_collection *coll = NULL;
        if (source_lookup(src, names[j], &coll) != CAPTURE_SYNCED) {
            snprintf(err, sizeof(err), "collection %s cannot be read (see the log)", names[j]);
            free(colls);
            goto out;
        }
        colls[ncolls++] = coll;
    }
    if (exec_ok(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err, sizeof(err))) {
        free(colls);
        goto out;
    }
    PGresult *r = PQexec(c, "SELECT pg_current_wal_lsn()::text");
    char lsn[32] = "";
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        util_strlcpy(lsn, PQgetvalue(r, 0, 0), sizeof(lsn));
    PQclear(r);
    char now[32];
    util_iso8601_ms(util_wall_ms(), now, sizeof(now));
    bool tty = isatty(STDERR_FILENO);
    long long total = 0;
    for (size_t j = 0; j < ncolls; j++) {
        long long done =
            one_collection(c, pub, inst->name, colls[j], lsn, now, tty, err, sizeof(err));
        if (done < 0) {
            free(colls);
            PQclear(PQexec(c, "ROLLBACK"));
            goto out;
        }
        printf("%s: %lld rows published\n", colls[j]->name, done);
        total += done;
    }
    free(colls);
    PQclear(PQexec(c, "COMMIT"));
    if (publish_drain(pub, -1, &signals_stop) || publish_failed(pub, err, sizeof(err))) {
        if (!err[0])
            snprintf(err, sizeof(err), "stopped before Kafka acknowledged every row");
        goto out;
    }
    printf("snapshot of %s at %s (LSN %s): %lld rows acknowledged by Kafka\n", inst->name, now, lsn,
           total);
    rc = 0;
out:
    if (rc == 1)
        log_error("producer", "event=snapshot_failed reason=%s",
                  LOG_Q(err[0] ? err : "out of memory"));
    publish_free(pub, 10000);
    source_free(src);
    return rc;
}
