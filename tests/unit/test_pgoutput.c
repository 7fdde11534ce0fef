/* Unit tests of producer/pgoutput.c: messages recorded from PostgreSQL 15 by
 * tests/fixtures/pgoutput/record.sh, then hand-made and random garbage.
 *
 * Fixtures are read from $DXSYNC_FIXTURES/pgoutput/ (DXSYNC_FIXTURES is the tests/fixtures
 * folder), by default from DXSYNC_SOURCE_DIR/tests/fixtures/pgoutput/. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgoutput.h"
#include "testutil.h"

#ifndef DXSYNC_SOURCE_DIR
#error "compile with -DDXSYNC_SOURCE_DIR=\"/path/to/the/source\""
#endif

#define OID_INT4        23u
#define OID_TEXT        25u
#define OID_JSON        114u
#define OID_VARCHAR     1043u
#define OID_TIMESTAMPTZ 1184u
#define OID_UUID        2950u

#define SYNC_USER "e1e260ff-3b6f-4c34-a2f8-bf8a0d4e5a21"
#define ITEM_UUID "355d2d13-7d08-45b4-8536-fd6827173536"
#define TITLE     "Zo\u00eb says \\\"h\u00e9llo\\\" \u2014 \u65e5\u672c\u8a9e \U0001F680"

/* ---- fixtures --------------------------------------------------------------------- */

struct fmsg {
    uint64_t lsn; /* the lsn column of pg_logical_slot_get_binary_changes */
    uint8_t *data;
    size_t len;
};

struct fixture {
    struct fmsg *msgs;
    size_t n;
};

static int hexdigit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void fixture_path(const char *name, char *buf, size_t len)
{
    const char *root = getenv("DXSYNC_FIXTURES");
    if (root && *root)
        snprintf(buf, len, "%s/pgoutput/%s.hex", root, name);
    else
        snprintf(buf, len, "%s/tests/fixtures/pgoutput/%s.hex", DXSYNC_SOURCE_DIR, name);
}

/* Whether the fixture's server could not record it (NAME.absent, record.sh). */
static bool fixture_absent(const char *name)
{
    char path[4096];
    fixture_path(name, path, sizeof path);
    size_t n = strlen(path);
    snprintf(path + n - 4, sizeof path - (n - 4), ".absent");
    return access(path, F_OK) == 0;
}

static struct fixture *fixture_load(const char *name)
{
    char path[4096];
    fixture_path(name, path, sizeof path);
    testutil_skip_if_absent(path);
    FILE *fp = fopen(path, "r");
    if (!fp)
        fail_msg("cannot open fixture %s (set DXSYNC_FIXTURES to the tests/fixtures folder)", path);
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int lineno = 0;
    while ((got = getline(&line, &cap, fp)) >= 0) {
        lineno++;
        size_t n = (size_t)got;
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0 || line[0] == '#')
            continue;
        char *sp = strchr(line, ' ');
        if (!sp)
            fail_msg("%s:%d: expected \"<lsn> <hex>\"", path, lineno);
        *sp = '\0';
        const char *hex = sp + 1;
        size_t hexlen = strlen(hex);
        if (hexlen == 0 || hexlen % 2)
            fail_msg("%s:%d: odd or empty hex", path, lineno);
        struct fmsg m = {.len = hexlen / 2};
        if (pgoutput_lsn_parse(line, &m.lsn) != 0)
            fail_msg("%s:%d: bad lsn %s", path, lineno, line);
        m.data = malloc(m.len);
        assert_non_null(m.data);
        for (size_t i = 0; i < m.len; i++) {
            int hi = hexdigit(hex[2 * i]), lo = hexdigit(hex[2 * i + 1]);
            if (hi < 0 || lo < 0)
                fail_msg("%s:%d: bad hex at %zu", path, lineno, 2 * i);
            m.data[i] = (uint8_t)(hi << 4 | lo);
        }
        struct fmsg *msgs = realloc(f->msgs, (f->n + 1) * sizeof *msgs);
        assert_non_null(msgs);
        f->msgs = msgs;
        f->msgs[f->n++] = m;
    }
    free(line);
    fclose(fp);
    if (f->n == 0)
        fail_msg("fixture %s holds no message", path);
    return f;
}

static void fixture_free(struct fixture *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++)
        free(f->msgs[i].data);
    free(f->msgs);
    free(f);
}

static const char *const fixture_names[] = {"single-insert", "multi-row", "relation-change",
                                            "binary", "skipped"};
#define NFIXTURES (sizeof fixture_names / sizeof fixture_names[0])

/* ---- a decoded fixture, copied out of the decoder so later messages cannot change it --- */

struct dval {
    char kind;
    char *data; /* malloc'd copy, terminated; NULL for 'n' and 'u' */
    uint32_t len;
};

struct dmsg {
    char type;             /* the type byte */
    uint64_t file_lsn;     /* lsn column of the fixture */
    struct pgoutput_msg m; /* kind and the plain fields of begin, commit, skipped */
    /* relation and insert: */
    uint32_t oid;
    char *nspname;
    char *relname;
    char replident;
    int ncols;
    char **names;
    uint32_t *type_oids;
    int32_t *typmods;
    bool *keys;
    struct dval *vals; /* insert */
};

struct decoded {
    struct pgoutput_decoder *d;
    struct dmsg *msgs;
    size_t n;
    char types[64]; /* the type bytes in order, e.g. "BRIRIC" */
    size_t empty;   /* bare Begin, Commit pairs dropped (PostgreSQL 13, 14) */
};

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    assert_non_null(p);
    memcpy(p, s, n);
    return p;
}

static void copy_relation(struct dmsg *dm, const struct pgoutput_relation *rel)
{
    dm->oid = rel->oid;
    dm->nspname = xstrdup(rel->nspname);
    dm->relname = xstrdup(rel->relname);
    dm->replident = rel->replident;
    dm->ncols = rel->ncols;
    size_t n = (size_t)rel->ncols + 1;
    dm->names = calloc(n, sizeof *dm->names);
    dm->type_oids = calloc(n, sizeof *dm->type_oids);
    dm->typmods = calloc(n, sizeof *dm->typmods);
    dm->keys = calloc(n, sizeof *dm->keys);
    assert_true(dm->names && dm->type_oids && dm->typmods && dm->keys);
    for (int i = 0; i < rel->ncols; i++) {
        dm->names[i] = xstrdup(rel->cols[i].name);
        dm->type_oids[i] = rel->cols[i].type_oid;
        dm->typmods[i] = rel->cols[i].typmod;
        dm->keys[i] = rel->cols[i].key;
        assert_int_equal(pgoutput_relation_column(rel, rel->cols[i].name), i);
    }
}

/* PostgreSQL 13 and 14 send a transaction that changed no published table (an ALTER TABLE, a
 * change of an unpublished table) as a bare Begin and Commit; 15 and later skip it. Such pairs
 * decoded like any other (decode_fixture checked that); they are counted in dec->empty and
 * dropped, so that every server's fixture has the same shape. */
static void drop_empty_transactions(struct decoded *dec)
{
    size_t w = 0;
    for (size_t r = 0; r < dec->n; r++) {
        if (dec->msgs[r].type == 'B' && r + 1 < dec->n && dec->msgs[r + 1].type == 'C') {
            assert_true(dec->msgs[r + 1].m.commit.commit_lsn == dec->msgs[r].m.begin.final_lsn);
            dec->empty++;
            r++;
            continue;
        }
        dec->msgs[w] = dec->msgs[r];
        dec->types[w] = dec->types[r];
        w++;
    }
    dec->n = w;
    dec->types[w] = '\0';
}

/* Decodes every message of the fixture with one decoder; each must decode. */
static struct decoded *decode_fixture(const char *name)
{
    struct fixture *f = fixture_load(name);
    struct decoded *dec = calloc(1, sizeof *dec);
    assert_non_null(dec);
    dec->d = pgoutput_decoder_new();
    assert_non_null(dec->d);
    dec->msgs = calloc(f->n, sizeof *dec->msgs);
    assert_non_null(dec->msgs);
    assert_true(f->n < sizeof dec->types);
    for (size_t i = 0; i < f->n; i++) {
        struct dmsg *dm = &dec->msgs[dec->n++];
        char err[512];
        struct pgoutput_msg m;
        int rc = pgoutput_decode(dec->d, f->msgs[i].data, f->msgs[i].len, &m, err, sizeof err);
        if (rc != 0)
            fail_msg("%s message %zu: %s", name, i, err);
        assert_string_equal(err, "");
        dm->type = (char)f->msgs[i].data[0];
        dec->types[i] = dm->type;
        dm->file_lsn = f->msgs[i].lsn;
        dm->m = m;
        if (m.kind == PGOUTPUT_RELATION) {
            assert_int_equal(dm->type, 'R');
            assert_ptr_equal(m.relation.rel,
                             pgoutput_decoder_relation(dec->d, m.relation.rel->oid));
            copy_relation(dm, m.relation.rel);
        } else if (m.kind == PGOUTPUT_INSERT || m.kind == PGOUTPUT_UPDATE) {
            assert_int_equal(dm->type, m.kind == PGOUTPUT_INSERT ? 'I' : 'U');
            const struct pgoutput_relation *rel =
                m.kind == PGOUTPUT_INSERT ? m.insert.rel : m.update.rel;
            const struct pgoutput_tuple *tuple =
                m.kind == PGOUTPUT_INSERT ? &m.insert.tuple : &m.update.tuple;
            assert_ptr_equal(rel, pgoutput_decoder_relation(dec->d, rel->oid));
            assert_int_equal(tuple->ncols, rel->ncols);
            copy_relation(dm, rel);
            dm->vals = calloc((size_t)rel->ncols + 1, sizeof *dm->vals);
            assert_non_null(dm->vals);
            for (int c = 0; c < rel->ncols; c++) {
                const struct pgoutput_value *v = &tuple->vals[c];
                dm->vals[c].kind = v->kind;
                dm->vals[c].len = v->len;
                dm->vals[c].data = pgoutput_value_strdup(v);
                if (v->kind == 't' || v->kind == 'b') {
                    assert_non_null(dm->vals[c].data);
                    /* values point into the caller's buffer */
                    assert_true((const uint8_t *)v->data > f->msgs[i].data &&
                                (const uint8_t *)v->data + v->len <=
                                    f->msgs[i].data + f->msgs[i].len);
                    assert_true(pgoutput_value_equals(v, dm->vals[c].data) ||
                                strlen(dm->vals[c].data) != v->len);
                } else {
                    assert_null(dm->vals[c].data);
                    assert_null(v->data);
                    assert_int_equal(v->len, 0);
                    assert_false(pgoutput_value_equals(v, ""));
                }
            }
            /* pointers into the decoder are not kept */
            dm->m.insert.rel = NULL;
            dm->m.insert.tuple.vals = NULL;
            dm->m.update.rel = NULL;
            dm->m.update.tuple.vals = NULL;
        } else if (m.kind == PGOUTPUT_SKIPPED) {
            assert_int_equal(m.skipped.type, dm->type);
        } else if (m.kind == PGOUTPUT_BEGIN) {
            assert_int_equal(dm->type, 'B');
        } else {
            assert_int_equal(m.kind, PGOUTPUT_COMMIT);
            assert_int_equal(dm->type, 'C');
        }
        if (m.kind == PGOUTPUT_RELATION)
            dm->m.relation.rel = NULL;
    }
    fixture_free(f);
    drop_empty_transactions(dec);
    return dec;
}

static void decoded_free(struct decoded *dec)
{
    for (size_t i = 0; i < dec->n; i++) {
        struct dmsg *dm = &dec->msgs[i];
        for (int c = 0; c < dm->ncols; c++) {
            free(dm->names[c]);
            if (dm->vals)
                free(dm->vals[c].data);
        }
        free(dm->names);
        free(dm->type_oids);
        free(dm->typmods);
        free(dm->keys);
        free(dm->vals);
        free(dm->nspname);
        free(dm->relname);
    }
    free(dec->msgs);
    pgoutput_decoder_free(dec->d);
    free(dec);
}

static int col(const struct dmsg *dm, const char *name)
{
    for (int i = 0; i < dm->ncols; i++)
        if (strcmp(dm->names[i], name) == 0)
            return i;
    fail_msg("%s has no column %s", dm->relname, name);
    return -1;
}

/* The text value of column name, exactly want; want NULL means a null ('n'). */
static void assert_text(const struct dmsg *dm, const char *name, const char *want)
{
    assert_int_equal(dm->type, 'I');
    const struct dval *v = &dm->vals[col(dm, name)];
    if (!want) {
        if (v->kind != 'n')
            fail_msg("%s.%s: expected null, got kind %c", dm->relname, name, v->kind);
        return;
    }
    if (v->kind != 't')
        fail_msg("%s.%s: expected text, got kind %c", dm->relname, name, v->kind);
    assert_int_equal(v->len, strlen(want));
    assert_string_equal(v->data, want);
}

static const struct dval *bin(const struct dmsg *dm, const char *name, uint32_t len)
{
    const struct dval *v = &dm->vals[col(dm, name)];
    if (v->kind != 'b')
        fail_msg("%s.%s: expected binary, got kind %c", dm->relname, name, v->kind);
    assert_int_equal(v->len, len);
    return v;
}

static void assert_column(const struct dmsg *dm, int i, const char *name, uint32_t type_oid,
                          int32_t typmod, bool key)
{
    assert_string_equal(dm->names[i], name);
    assert_int_equal(dm->type_oids[i], type_oid);
    assert_int_equal(dm->typmods[i], typmod);
    assert_int_equal(dm->keys[i], key);
}

static void assert_activity_relation(const struct dmsg *dm, int ncols)
{
    assert_int_equal(dm->m.kind, PGOUTPUT_RELATION);
    assert_string_equal(dm->nspname, "public");
    assert_string_equal(dm->relname, "directus_activity");
    assert_int_equal(dm->replident, 'd');
    assert_int_equal(dm->ncols, ncols);
    assert_column(dm, 0, "id", OID_INT4, -1, true);
    assert_column(dm, 1, "action", OID_VARCHAR, 45 + 4, false);
    assert_column(dm, 2, "user", OID_UUID, -1, false);
    assert_column(dm, 3, "timestamp", OID_TIMESTAMPTZ, -1, false);
    assert_column(dm, 4, "ip", OID_VARCHAR, 50 + 4, false);
    assert_column(dm, 5, "user_agent", OID_TEXT, -1, false);
    assert_column(dm, 6, "collection", OID_VARCHAR, 64 + 4, false);
    assert_column(dm, 7, "item", OID_VARCHAR, 255 + 4, false);
    assert_column(dm, 8, "origin", OID_VARCHAR, 255 + 4, false);
    assert_column(dm, 9, "comment", OID_TEXT, -1, false);
}

static void assert_revisions_relation(const struct dmsg *dm, char replident)
{
    assert_int_equal(dm->m.kind, PGOUTPUT_RELATION);
    assert_string_equal(dm->nspname, "public");
    assert_string_equal(dm->relname, "directus_revisions");
    assert_int_equal(dm->replident, replident);
    assert_int_equal(dm->ncols, 8);
    bool full = replident == 'f';
    assert_column(dm, 0, "id", OID_INT4, -1, true);
    assert_column(dm, 1, "activity", OID_INT4, -1, full);
    assert_column(dm, 2, "collection", OID_VARCHAR, 64 + 4, full);
    assert_column(dm, 3, "item", OID_VARCHAR, 255 + 4, full);
    assert_column(dm, 4, "data", OID_JSON, -1, full);
    assert_column(dm, 5, "delta", OID_JSON, -1, full);
    assert_column(dm, 6, "parent", OID_INT4, -1, full);
    assert_column(dm, 7, "version", OID_UUID, -1, full);
}

/* Begin/Commit pairing and LSN order, for any fixture: every change sits between a Begin
 * and its Commit, the Begin's final LSN is the Commit's LSN, transactions come in commit
 * order, and the lsn column never goes back. Returns the number of transactions. */
static int check_transactions(const struct decoded *dec)
{
    int ntx = 0;
    bool in_tx = false;
    const struct pgoutput_msg *begin = NULL;
    uint64_t prev_end = 0, prev_file_lsn = 0;
    for (size_t i = 0; i < dec->n; i++) {
        const struct dmsg *dm = &dec->msgs[i];
        assert_true(dm->file_lsn >= prev_file_lsn);
        prev_file_lsn = dm->file_lsn;
        switch (dm->m.kind) {
        case PGOUTPUT_BEGIN:
            assert_false(in_tx);
            in_tx = true;
            begin = &dm->m;
            assert_true(begin->begin.final_lsn > prev_end);
            assert_true(begin->begin.xid >= 3); /* FirstNormalTransactionId */
            break;
        case PGOUTPUT_COMMIT:
            assert_true(in_tx);
            in_tx = false;
            assert_int_equal(dm->m.commit.flags, 0);
            assert_int_equal(dm->m.commit.commit_lsn, begin->begin.final_lsn);
            assert_true(dm->m.commit.end_lsn > dm->m.commit.commit_lsn);
            assert_int_equal(dm->m.commit.commit_time_us, begin->begin.commit_time_us);
            /* the SQL interface reports a Commit at the transaction's end */
            assert_int_equal(dm->file_lsn, dm->m.commit.end_lsn);
            {
                int64_t ms = pgoutput_time_to_unix_ms(dm->m.commit.commit_time_us);
                assert_true(ms > INT64_C(1704067200000)); /* after 2024-01-01 */
                assert_true(ms < INT64_C(4102444800000)); /* before 2100-01-01 */
            }
            prev_end = dm->m.commit.end_lsn;
            ntx++;
            break;
        default:
            assert_true(in_tx);
            assert_true(dm->file_lsn <= begin->begin.final_lsn);
            break;
        }
    }
    assert_false(in_tx);
    return ntx;
}

/* ---- recorded fixtures ------------------------------------------------------------- */

static void test_single_insert(void **state)
{
    (void)state;
    struct decoded *dec = decode_fixture("single-insert");
    assert_string_equal(dec->types, "BRIRIC");
    assert_int_equal(check_transactions(dec), 1);

    const struct dmsg *ra = &dec->msgs[1], *a = &dec->msgs[2];
    const struct dmsg *rr = &dec->msgs[3], *r = &dec->msgs[4];
    assert_activity_relation(ra, 10);
    assert_revisions_relation(rr, 'd');
    assert_int_equal(a->m.kind, PGOUTPUT_INSERT);
    assert_int_equal(a->oid, ra->oid);
    assert_int_equal(r->oid, rr->oid);
    assert_true(ra->oid != rr->oid);

    assert_text(a, "id", "1");
    assert_text(a, "action", "create");
    assert_text(a, "user", SYNC_USER);
    assert_text(a, "timestamp", "2026-11-25 22:30:39.839+00");
    assert_text(a, "ip", "203.0.113.7");
    assert_text(a, "user_agent", "Mozilla/5.0 (X11; Linux x86_64) \"dxsync\"");
    assert_text(a, "collection", "articles");
    assert_text(a, "item", ITEM_UUID);
    assert_text(a, "origin", "https://a.example.com");
    assert_text(a, "comment", NULL);

    assert_text(r, "id", "1");
    assert_text(r, "activity", "1");
    assert_text(r, "collection", "articles");
    assert_text(r, "item", ITEM_UUID);
    assert_text(r, "data", "{\"id\":\"" ITEM_UUID "\",\"title\":\"" TITLE "\",\"body\":null}");
    assert_text(r, "delta", "{\"title\":\"" TITLE "\",\"body\":null}");
    assert_text(r, "parent", NULL);
    assert_text(r, "version", NULL);

    /* the relations stay cached after the transaction */
    const struct pgoutput_relation *rel = pgoutput_decoder_relation(dec->d, ra->oid);
    assert_non_null(rel);
    assert_string_equal(rel->relname, "directus_activity");
    assert_int_equal(pgoutput_relation_column(rel, "user"), 2);
    assert_int_equal(pgoutput_relation_column(rel, "comment"), 9);
    assert_int_equal(pgoutput_relation_column(rel, "nope"), -1);
    assert_int_equal(pgoutput_relation_column(rel, ""), -1);
    assert_null(pgoutput_decoder_relation(dec->d, ra->oid + rr->oid));
    decoded_free(dec);
}

static void test_multi_row(void **state)
{
    (void)state;
    struct decoded *dec = decode_fixture("multi-row");
    assert_string_equal(dec->types, "BRIRIIIIIIC");
    assert_int_equal(check_transactions(dec), 1);
    assert_activity_relation(&dec->msgs[1], 10);
    assert_revisions_relation(&dec->msgs[3], 'd');

    static const struct {
        const char *rel, *id, *action_or_activity, *item, *extra;
    } want[] = {
        {"directus_activity", "2", "create", "10", NULL},
        {"directus_revisions", "2", "2", "10", "{\"id\":10,\"title\":\"first\"}"},
        {"directus_activity", "3", "create", "11", NULL},
        {"directus_revisions", "3", "3", "11", "{\"id\":11,\"title\":\"second\"}"},
        {"directus_activity", "4", "update", "10", NULL},
        {"directus_revisions", "4", "4", "10", "{\"id\":10,\"title\":\"first, edited\"}"},
        {"directus_activity", "5", "delete", "11", NULL},
    };
    size_t k = 0;
    for (size_t i = 0; i < dec->n; i++) {
        const struct dmsg *dm = &dec->msgs[i];
        if (dm->m.kind != PGOUTPUT_INSERT)
            continue;
        assert_true(k < sizeof want / sizeof want[0]);
        assert_string_equal(dm->relname, want[k].rel);
        assert_text(dm, "id", want[k].id);
        assert_text(dm, "item", want[k].item);
        assert_text(dm, "collection", "articles");
        if (strcmp(want[k].rel, "directus_activity") == 0) {
            assert_int_equal(dm->oid, dec->msgs[1].oid);
            assert_text(dm, "action", want[k].action_or_activity);
            assert_text(dm, "user", SYNC_USER);
            assert_text(dm, "timestamp", "2026-11-25 22:31:00+00");
            assert_text(dm, "user_agent", "curl/8.5.0");
            assert_text(dm, "comment", NULL);
        } else {
            assert_int_equal(dm->oid, dec->msgs[3].oid);
            assert_text(dm, "activity", want[k].action_or_activity);
            assert_text(dm, "data", want[k].extra);
            assert_text(dm, "parent", k == 5 ? "2" : NULL);
        }
        k++;
    }
    assert_int_equal(k, sizeof want / sizeof want[0]);
    const struct dmsg *upd = &dec->msgs[8];
    assert_text(upd, "delta", "{\"title\":\"first, edited\"}");
    decoded_free(dec);
}

static void test_relation_change(void **state)
{
    (void)state;
    struct decoded *dec = decode_fixture("relation-change");
    assert_string_equal(dec->types, "BRIRICBRIIC");
    assert_int_equal(check_transactions(dec), 2);

    const struct dmsg *r1 = &dec->msgs[1], *r2 = &dec->msgs[7];
    assert_activity_relation(r1, 10);
    assert_activity_relation(r2, 11); /* the first ten are unchanged */
    assert_int_equal(r2->oid, r1->oid);
    assert_column(r2, 10, "dxsync_note", OID_VARCHAR, 32 + 4, false);
    assert_revisions_relation(&dec->msgs[3], 'd');

    const struct dmsg *a1 = &dec->msgs[2], *a2 = &dec->msgs[8], *rev2 = &dec->msgs[9];
    assert_int_equal(a1->ncols, 10);
    assert_text(a1, "id", "6");
    assert_text(a1, "item", "20");
    assert_text(a1, "user", NULL);
    assert_text(a1, "ip", NULL);
    assert_text(a1, "timestamp", "2026-11-25 22:32:00+00");
    assert_int_equal(a2->ncols, 11);
    assert_text(a2, "id", "7");
    assert_text(a2, "item", "21");
    assert_text(a2, "dxsync_note", "after alter");
    assert_text(a2, "timestamp", "2026-11-25 22:33:00+00");
    /* directus_revisions was not altered: its cached relation serves the second insert */
    assert_int_equal(rev2->oid, dec->msgs[3].oid);
    assert_text(rev2, "activity", "7");
    assert_text(rev2, "data", "{\"id\":21}");

    /* the second Relation replaced the first in the cache */
    const struct pgoutput_relation *rel = pgoutput_decoder_relation(dec->d, r1->oid);
    assert_non_null(rel);
    assert_int_equal(rel->ncols, 11);
    assert_int_equal(pgoutput_relation_column(rel, "dxsync_note"), 10);
    decoded_free(dec);
}

static uint64_t be(const char *p, uint32_t n)
{
    uint64_t v = 0;
    for (uint32_t i = 0; i < n; i++)
        v = v << 8 | (uint8_t)p[i];
    return v;
}

static void test_binary_values(void **state)
{
    (void)state;
    struct decoded *dec = decode_fixture("binary");
    assert_string_equal(dec->types, "BRIRIC");
    assert_int_equal(check_transactions(dec), 1);
    assert_activity_relation(&dec->msgs[1], 11);
    const struct dmsg *a = &dec->msgs[2], *r = &dec->msgs[4];

    assert_int_equal(be(bin(a, "id", 4)->data, 4), 8);
    assert_string_equal(bin(a, "action", 6)->data, "create");
    const struct dval *user = bin(a, "user", 16);
    assert_int_equal(be(user->data, 8), UINT64_C(0xe1e260ff3b6f4c34));
    assert_int_equal(be(user->data + 8, 8), UINT64_C(0xa2f8bf8a0d4e5a21));
    /* timestamptz: microseconds since 2000-01-01 */
    assert_int_equal(be(bin(a, "timestamp", 8)->data, 8), 1000000);
    assert_string_equal(bin(a, "item", 2)->data, "30");
    assert_string_equal(bin(a, "comment", 6)->data, "binary");
    assert_text(a, "ip", NULL);
    assert_text(a, "dxsync_note", NULL);

    assert_int_equal(be(bin(r, "activity", 4)->data, 4), 8);
    /* json has no binary send format of its own: its text, with a version byte for jsonb
     * only, so json is the text itself */
    assert_string_equal(bin(r, "data", 9)->data, "{\"id\":30}");
    assert_text(r, "delta", NULL);
    decoded_free(dec);
}

static void test_skipped_messages(void **state)
{
    (void)state;
    struct decoded *dec = decode_fixture("skipped");
    assert_string_equal(dec->types, "BRURUDDCBYRICBUCBOICBMCBYRTC");
    assert_int_equal(check_transactions(dec), 6);

    const struct dmsg *ract = &dec->msgs[1], *rrev = &dec->msgs[3], *rmisc = &dec->msgs[10];
    assert_activity_relation(ract, 11);
    assert_revisions_relation(rrev, 'f');
    assert_string_equal(rmisc->relname, "dxsync_misc");
    assert_int_equal(rmisc->ncols, 3);
    assert_true(rmisc->type_oids[1] >= 16384); /* the enum: a user type, hence the 'Y' */

    int counts[256] = {0};
    for (size_t i = 0; i < dec->n; i++) {
        const struct dmsg *dm = &dec->msgs[i];
        if (dm->type != 'U')
            counts[(unsigned char)dm->type]++;
        if (dm->type == 'U') {
            /* the new row of an Update is decoded, whatever precedes it ('K', 'O' or nothing) */
            assert_int_equal(dm->m.kind, PGOUTPUT_UPDATE);
            assert_string_equal(pgoutput_kind_name(dm->m.kind), "update");
            counts['U']++;
            continue;
        }
        if (!strchr("DTYOM", dm->type))
            continue;
        assert_int_equal(dm->m.kind, PGOUTPUT_SKIPPED);
        assert_int_equal(dm->m.skipped.type, dm->type);
        assert_string_equal(pgoutput_kind_name(dm->m.kind), "skipped");
    }
    assert_int_equal(counts['U'], 3);
    assert_int_equal(counts['D'], 2);
    assert_int_equal(counts['T'], 1);
    assert_int_equal(counts['Y'], 2);
    assert_int_equal(counts['O'], 1);
    assert_int_equal(counts['M'], 1);

    /* Updates give their relation and new row; Delete names its relation, Truncate its first */
    assert_int_equal(dec->msgs[2].oid, ract->oid);             /* U activity */
    assert_int_equal(dec->msgs[4].oid, rrev->oid);             /* U revisions ('O' + 'N') */
    assert_int_equal(dec->msgs[5].m.skipped.relid, ract->oid); /* D activity ('K') */
    assert_int_equal(dec->msgs[6].m.skipped.relid, rrev->oid); /* D revisions ('O') */
    assert_int_equal(dec->msgs[14].oid, rmisc->oid);           /* U with a 'u' value */
    assert_int_equal(dec->msgs[14].vals[col(&dec->msgs[14], "note")].kind, 'u');
    assert_int_equal(dec->msgs[26].m.skipped.relid, rmisc->oid); /* T */
    assert_int_equal(dec->msgs[9].m.skipped.relid, 0);           /* Y */

    /* Inserts around them still decode: a 3000-byte TOASTable text, an enum */
    const struct dmsg *big = &dec->msgs[11];
    assert_text(big, "mood", "ok");
    const struct dval *note = &big->vals[col(big, "note")];
    assert_int_equal(note->kind, 't');
    assert_int_equal(note->len, 3000);
    assert_int_equal(strspn(note->data, "x"), 3000);
    assert_text(&dec->msgs[18], "note", "from elsewhere");
    assert_text(&dec->msgs[18], "mood", "meh");
    decoded_free(dec);
}

/* ---- every prefix, every byte: errors, never a crash ------------------------------- */

/* Decodes a copy in a buffer of exactly len bytes, so that ASan sees any read past it. */
static int decode_exact(struct pgoutput_decoder *d, const uint8_t *data, size_t len,
                        struct pgoutput_msg *m, char *err, size_t errlen)
{
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len)
        memcpy(copy, data, len);
    int rc = pgoutput_decode(d, copy, len, m, err, errlen);
    free(copy);
    return rc;
}

static void assert_failed(int rc, const struct pgoutput_msg *m, const char *err)
{
    assert_int_equal(rc, -1);
    assert_int_equal(m->kind, 0);
    assert_true(strlen(err) > 0);
    assert_non_null(strstr(err, "at byte "));
}

static void test_every_prefix(void **state)
{
    (void)state;
    size_t tried = 0, bytes = 0, absent = 0;
    for (size_t fi = 0; fi < NFIXTURES; fi++) {
        if (fixture_absent(fixture_names[fi])) {
            absent++;
            continue;
        }
        struct fixture *f = fixture_load(fixture_names[fi]);
        for (size_t k = 0; k < f->n; k++)
            bytes += f->msgs[k].len;
        struct pgoutput_decoder *d = pgoutput_decoder_new();
        assert_non_null(d);
        for (size_t k = 0; k < f->n; k++) {
            const struct fmsg *fm = &f->msgs[k];
            for (size_t p = 0; p < fm->len; p++) {
                struct pgoutput_msg m;
                char err[512];
                int rc = decode_exact(d, fm->data, p, &m, err, sizeof err);
                if (rc == 0)
                    fail_msg("%s message %zu: prefix of %zu of %zu bytes decoded",
                             fixture_names[fi], k, p, fm->len);
                assert_failed(rc, &m, err);
                tried++;
            }
            /* a failed Relation left the cache alone: the whole message and all that
             * follows still decode */
            struct pgoutput_msg m;
            char err[512];
            int rc = decode_exact(d, fm->data, fm->len, &m, err, sizeof err);
            if (rc != 0)
                fail_msg("%s message %zu after its prefixes: %s", fixture_names[fi], k, err);
            /* one byte too many is refused too */
            uint8_t *longer = malloc(fm->len + 1);
            assert_non_null(longer);
            memcpy(longer, fm->data, fm->len);
            longer[fm->len] = 0;
            rc = decode_exact(d, longer, fm->len + 1, &m, err, sizeof err);
            free(longer);
            assert_failed(rc, &m, err);
            assert_non_null(strstr(err, "unexpected bytes after the message"));
        }
        pgoutput_decoder_free(d);
        fixture_free(f);
    }
    assert_int_equal(tried, bytes);
    /* every fixture there is was tried: 3 on PostgreSQL 13 (no binary, no skipped), 5 after */
    print_message("%zu prefixes of %zu fixtures\n", tried, NFIXTURES - absent);
    assert_true(tried > (NFIXTURES - absent) * 1000);
}

static uint64_t rng_state = UINT64_C(0x9e3779b97f4a7c15);

static uint32_t rnd(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * UINT64_C(2685821657736338717)) >> 32);
}

/* Every byte of every message set to interesting values, with the relations of the
 * fixture cached: whatever comes back, no crash, no read out of bounds, and a failure
 * always says why. */
static void test_every_byte_mutated(void **state)
{
    (void)state;
    static const uint8_t values[] = {0x00, 0x01, 0x7f, 0x80, 0xff, 'n', 't', 'b', 'u', 'N'};
    for (size_t fi = 0; fi < NFIXTURES; fi++) {
        if (fixture_absent(fixture_names[fi]))
            continue;
        struct fixture *f = fixture_load(fixture_names[fi]);
        struct pgoutput_decoder *d = pgoutput_decoder_new();
        assert_non_null(d);
        for (size_t k = 0; k < f->n; k++) {
            const struct fmsg *fm = &f->msgs[k];
            uint8_t *buf = malloc(fm->len);
            assert_non_null(buf);
            for (size_t pos = 0; pos < fm->len; pos++) {
                for (size_t vi = 0; vi <= sizeof values; vi++) {
                    memcpy(buf, fm->data, fm->len);
                    buf[pos] = vi < sizeof values ? values[vi] : (uint8_t)rnd();
                    struct pgoutput_msg m;
                    char err[512];
                    if (pgoutput_decode(d, buf, fm->len, &m, err, sizeof err) != 0)
                        assert_failed(-1, &m, err);
                    else if (m.kind == PGOUTPUT_INSERT)
                        assert_int_equal(m.insert.tuple.ncols, m.insert.rel->ncols);
                }
            }
            free(buf);
            /* A mutated Relation may have replaced any cached relation (its OID mutated
             * into another's): start again from the real messages up to this one. */
            pgoutput_decoder_free(d);
            d = pgoutput_decoder_new();
            assert_non_null(d);
            for (size_t j = 0; j <= k; j++) {
                struct pgoutput_msg m;
                char err[512];
                if (pgoutput_decode(d, f->msgs[j].data, f->msgs[j].len, &m, err, sizeof err))
                    fail_msg("%s message %zu: %s", fixture_names[fi], j, err);
            }
        }
        pgoutput_decoder_free(d);
        fixture_free(f);
    }
}

static void test_random_bytes(void **state)
{
    (void)state;
    static const char types[] = "BCRIUDTYOMZ";
    struct pgoutput_decoder *d = pgoutput_decoder_new();
    assert_non_null(d);
    int ok = 0;
    for (int i = 0; i < 200000; i++) {
        size_t len = rnd() % 80;
        uint8_t *buf = malloc(len ? len : 1);
        assert_non_null(buf);
        for (size_t j = 0; j < len; j++)
            buf[j] = (uint8_t)rnd();
        if (len && rnd() % 2)
            buf[0] = (uint8_t)types[rnd() % (sizeof types - 1)];
        /* short lengths and counts now and then, so parsing goes deeper */
        if (len > 8 && rnd() % 2)
            buf[5] = buf[6] = 0;
        struct pgoutput_msg m;
        char err[256];
        int rc = pgoutput_decode(d, buf, len, &m, err, sizeof err);
        if (rc == 0)
            ok++;
        else
            assert_failed(rc, &m, err);
        free(buf);
    }
    pgoutput_decoder_free(d);
    (void)ok;
}

/* ---- hand-made messages ------------------------------------------------------------ */

struct mb {
    uint8_t b[512];
    size_t n;
};

static void put8(struct mb *m, unsigned v)
{
    assert_true(m->n < sizeof m->b);
    m->b[m->n++] = (uint8_t)v;
}

static void put16(struct mb *m, unsigned v)
{
    put8(m, v >> 8 & 0xff);
    put8(m, v & 0xff);
}

static void put32(struct mb *m, uint32_t v)
{
    put16(m, v >> 16);
    put16(m, v & 0xffff);
}

static void put64(struct mb *m, uint64_t v)
{
    put32(m, (uint32_t)(v >> 32));
    put32(m, (uint32_t)v);
}

static void putstr(struct mb *m, const char *s)
{
    size_t n = strlen(s) + 1;
    assert_true(m->n + n <= sizeof m->b);
    memcpy(m->b + m->n, s, n);
    m->n += n;
}

static void puttext(struct mb *m, char kind, const char *s)
{
    put8(m, (unsigned char)kind);
    put32(m, (uint32_t)strlen(s));
    for (const char *p = s; *p; p++)
        put8(m, (unsigned char)*p);
}

/* Relation 4242 public.t (id int4 key, name text), replica identity default. */
static struct mb relation_msg(uint32_t oid, int ncols)
{
    struct mb m = {.n = 0};
    put8(&m, 'R');
    put32(&m, oid);
    putstr(&m, "public");
    putstr(&m, "t");
    put8(&m, 'd');
    put16(&m, (unsigned)ncols);
    for (int i = 0; i < ncols; i++) {
        char name[16] = "id";
        if (i > 0)
            snprintf(name, sizeof name, "c%d", i);
        put8(&m, i == 0 ? 1 : 0);
        putstr(&m, name);
        put32(&m, i == 0 ? OID_INT4 : OID_TEXT);
        put32(&m, 0xffffffffu);
    }
    return m;
}

static struct mb insert_head(uint32_t oid, unsigned ncols)
{
    struct mb m = {.n = 0};
    put8(&m, 'I');
    put32(&m, oid);
    put8(&m, 'N');
    put16(&m, ncols);
    return m;
}

static struct pgoutput_decoder *decoder_with_t(int ncols)
{
    struct pgoutput_decoder *d = pgoutput_decoder_new();
    assert_non_null(d);
    struct mb r = relation_msg(4242, ncols);
    struct pgoutput_msg m;
    char err[256];
    assert_int_equal(pgoutput_decode(d, r.b, r.n, &m, err, sizeof err), 0);
    assert_int_equal(m.kind, PGOUTPUT_RELATION);
    return d;
}

static void expect_error(struct pgoutput_decoder *d, const struct mb *mb, const char *needle)
{
    struct pgoutput_msg m;
    char err[512];
    int rc = decode_exact(d, mb->b, mb->n, &m, err, sizeof err);
    assert_failed(rc, &m, err);
    if (!strstr(err, needle))
        fail_msg("error \"%s\" does not say \"%s\"", err, needle);
}

static void test_insert_value_kinds(void **state)
{
    (void)state;
    struct pgoutput_decoder *d = decoder_with_t(5);
    struct mb i = insert_head(4242, 5);
    puttext(&i, 't', "7");
    put8(&i, 'n');
    put8(&i, 'u');
    puttext(&i, 'b', "\x01\x02");
    puttext(&i, 't', "");
    struct pgoutput_msg m;
    char err[256];
    assert_int_equal(pgoutput_decode(d, i.b, i.n, &m, err, sizeof err), 0);
    assert_int_equal(m.kind, PGOUTPUT_INSERT);
    assert_string_equal(m.insert.rel->relname, "t");
    assert_string_equal(m.insert.rel->nspname, "public");
    assert_int_equal(m.insert.rel->cols[0].key, true);
    assert_int_equal(m.insert.rel->cols[1].typmod, -1);
    assert_int_equal(m.insert.tuple.ncols, 5);
    const struct pgoutput_value *v = m.insert.tuple.vals;
    assert_int_equal(v[0].kind, 't');
    assert_true(pgoutput_value_equals(&v[0], "7"));
    assert_false(pgoutput_value_equals(&v[0], "70"));
    assert_false(pgoutput_value_equals(&v[0], ""));
    assert_int_equal(v[1].kind, 'n');
    assert_null(pgoutput_value_strdup(&v[1]));
    assert_int_equal(v[2].kind, 'u');
    assert_null(pgoutput_value_strdup(&v[2]));
    assert_int_equal(v[3].kind, 'b');
    assert_int_equal(v[3].len, 2);
    assert_memory_equal(v[3].data, "\x01\x02", 2);
    assert_int_equal(v[4].kind, 't');
    assert_int_equal(v[4].len, 0);
    assert_true(pgoutput_value_equals(&v[4], ""));
    char *s = pgoutput_value_strdup(&v[4]);
    assert_string_equal(s, "");
    free(s);
    pgoutput_decoder_free(d);
}

static void test_bad_lengths_and_counts(void **state)
{
    (void)state;
    struct pgoutput_decoder *d = decoder_with_t(2);

    struct mb i = insert_head(4242, 2);
    puttext(&i, 't', "1");
    put8(&i, 't');
    put32(&i, 0x7fffffffu); /* the largest length, nothing behind it */
    put8(&i, 'x');
    expect_error(d, &i, "column 1 (\"c1\") length 2147483647 runs past the end (1 bytes left)");

    i = insert_head(4242, 2);
    puttext(&i, 't', "1");
    put8(&i, 'b');
    put32(&i, 0xffffffffu);
    expect_error(d, &i, "length is negative (-1)");

    i = insert_head(4242, 2);
    put8(&i, 't');
    put32(&i, 0x80000000u);
    expect_error(d, &i, "column 0 (\"id\") length is negative (-2147483648) at byte 9");

    i = insert_head(4242, 0xffff); /* a column count of -1 */
    expect_error(d, &i, "tuple column count is negative (-1) at byte 6");

    i = insert_head(4242, 0x8000);
    expect_error(d, &i, "negative (-32768)");

    i = insert_head(4242, 3); /* one more than the relation */
    expect_error(d, &i, "tuple has 3 columns, relation public.t (OID 4242) has 2");

    i = insert_head(4242, 2);
    puttext(&i, 't', "1");
    put8(&i, 'x');
    expect_error(d, &i, "column 1 (\"c1\") has unknown kind 0x78 at byte 14");

    i = insert_head(4242, 2);
    i.b[5] = 'O'; /* an Insert carries a new tuple only */
    puttext(&i, 't', "1");
    put8(&i, 'n');
    expect_error(d, &i, "expected new tuple tag 'N', got 0x4f at byte 5");

    /* 'R', OID at 1, "public" at 5, "t" at 12, replica identity at 14, count at 15 */
    struct mb r = relation_msg(4243, 1);
    r.b[15] = r.b[16] = 0xff;
    expect_error(d, &r, "column count is negative (-1) at byte 15");

    r = relation_msg(4243, 2);
    r.b[15] = 0x7f; /* 0x7f02 columns: far more than the bytes left */
    expect_error(d, &r, "column count 32514 does not fit in the 24 bytes left at byte 15");

    r = relation_msg(4243, 1);
    r.b[14] = 'x';
    expect_error(d, &r, "unknown replica identity 0x78 at byte 14");

    r = relation_msg(4243, 2);
    r.b[r.n - 9] = 'x'; /* the NUL of the last name: "c1x" ends in the type OID's 0 */
    expect_error(d, &r, "column 1 typmod needs 4 bytes, 3 left at byte 38 of 41");

    r = relation_msg(0, 1);
    expect_error(d, &r, "relation OID is 0 at byte 1");

    struct mb t = {.n = 0};
    put8(&t, 'T');
    put32(&t, 0xfffffffeu);
    put8(&t, 0);
    expect_error(d, &t, "relation count is negative (-2) at byte 1");

    t.n = 0;
    put8(&t, 'T');
    put32(&t, 0x40000000u);
    put8(&t, 0);
    put32(&t, 1);
    expect_error(d, &t, "relation count 1073741824 does not fit");

    struct mb msg = {.n = 0};
    put8(&msg, 'M');
    put8(&msg, 1);
    put64(&msg, 0x16B3748);
    putstr(&msg, "p");
    put32(&msg, 0x7fffffffu);
    put8(&msg, 'x');
    expect_error(d, &msg, "content length 2147483647 runs past the end (1 bytes left)");

    msg.n = 0;
    put8(&msg, 'Y');
    put32(&msg, 16385);
    putstr(&msg, "public");
    put8(&msg, 'm'); /* type name without its NUL */
    expect_error(d, &msg, "type name has no terminating NUL before the end at byte 12 of 13");

    /* the decoder still works after all that */
    i = insert_head(4242, 2);
    puttext(&i, 't', "1");
    put8(&i, 'n');
    struct pgoutput_msg m;
    assert_int_equal(pgoutput_decode(d, i.b, i.n, &m, NULL, 0), 0);
    assert_int_equal(m.kind, PGOUTPUT_INSERT);
    pgoutput_decoder_free(d);
}

static void test_unknown_relation_and_type(void **state)
{
    (void)state;
    struct pgoutput_decoder *d = decoder_with_t(1);

    struct mb i = insert_head(999, 1);
    puttext(&i, 't', "1");
    expect_error(d, &i, "relation OID 999 was never described by a Relation message at byte 1");

    struct mb z = {.n = 0};
    put8(&z, 'Z');
    put32(&z, 0);
    expect_error(d, &z, "unknown message type 'Z' (0x5a) at byte 0 of 5");

    z.n = 0;
    put8(&z, 0x01);
    expect_error(d, &z, "unknown message type 0x01 at byte 0 of 1");

    /* streaming and two-phase messages belong to protocol versions 2 and 3 */
    static const char later[] = "SEcAbPKr";
    for (const char *p = later; *p; p++) {
        z.n = 0;
        put8(&z, (unsigned char)*p);
        put32(&z, 1234);
        expect_error(d, &z, "unknown message type");
    }

    struct pgoutput_msg m;
    char err[128];
    assert_int_equal(pgoutput_decode(d, NULL, 0, &m, err, sizeof err), -1);
    assert_string_equal(err, "pgoutput unknown message: empty message at byte 0 of 0");

    /* no err buffer, or a tiny one: still no crash, and a terminated text */
    assert_int_equal(pgoutput_decode(d, z.b, z.n, &m, NULL, 0), -1);
    assert_int_equal(pgoutput_decode(d, i.b, i.n, &m, err, 0), -1);
    char tiny[8];
    assert_int_equal(pgoutput_decode(d, i.b, i.n, &m, tiny, sizeof tiny), -1);
    assert_int_equal(strlen(tiny), sizeof tiny - 1);
    pgoutput_decoder_free(d);
}

static void test_begin_commit(void **state)
{
    (void)state;
    struct pgoutput_decoder *d = pgoutput_decoder_new();
    assert_non_null(d);
    struct mb b = {.n = 0};
    put8(&b, 'B');
    put64(&b, 0x16B3748);
    put64(&b, (uint64_t)-1000); /* before 2000-01-01 */
    put32(&b, 0xfffffff0u);
    struct pgoutput_msg m;
    char err[256];
    assert_int_equal(pgoutput_decode(d, b.b, b.n, &m, err, sizeof err), 0);
    assert_int_equal(m.kind, PGOUTPUT_BEGIN);
    assert_int_equal(m.begin.final_lsn, 0x16B3748);
    assert_true(m.begin.commit_time_us == -1000);
    assert_int_equal(m.begin.xid, 0xfffffff0u);
    assert_string_equal(pgoutput_kind_name(m.kind), "begin");

    b.b[1] = b.b[2] = b.b[3] = b.b[4] = b.b[5] = b.b[6] = b.b[7] = b.b[8] = 0;
    expect_error(d, &b, "final LSN is not set at byte 1");

    struct mb c = {.n = 0};
    put8(&c, 'C');
    put8(&c, 0);
    put64(&c, 0x16B3748);
    put64(&c, 0x16B3778);
    put64(&c, 817424439839000);
    assert_int_equal(pgoutput_decode(d, c.b, c.n, &m, err, sizeof err), 0);
    assert_int_equal(m.kind, PGOUTPUT_COMMIT);
    assert_int_equal(m.commit.commit_lsn, 0x16B3748);
    assert_int_equal(m.commit.end_lsn, 0x16B3778);
    assert_true(m.commit.commit_time_us == 817424439839000);
    assert_true(pgoutput_time_to_unix_ms(m.commit.commit_time_us) == INT64_C(1764109239839));

    c.b[1] = 2;
    expect_error(d, &c, "unknown flags 0x02 at byte 1");
    c.b[1] = 0;
    c.b[16] = c.b[17] = 0; /* end LSN 0/16B0000: before the commit LSN */
    expect_error(d, &c, "end LSN 0/16B0000 is before commit LSN 0/16B3748 at byte 2");
    pgoutput_decoder_free(d);
}

static void test_relation_replaced_and_kept_on_error(void **state)
{
    (void)state;
    struct pgoutput_decoder *d = decoder_with_t(2);
    struct pgoutput_msg m;
    char err[256];

    /* a broken Relation for the same OID leaves the old one */
    struct mb r3 = relation_msg(4242, 3);
    assert_int_equal(decode_exact(d, r3.b, r3.n - 1, &m, err, sizeof err), -1);
    assert_int_equal(pgoutput_decoder_relation(d, 4242)->ncols, 2);

    /* a good one replaces it (ALTER TABLE ADD COLUMN) */
    assert_int_equal(pgoutput_decode(d, r3.b, r3.n, &m, err, sizeof err), 0);
    assert_int_equal(m.relation.rel->ncols, 3);
    assert_ptr_equal(pgoutput_decoder_relation(d, 4242), m.relation.rel);
    assert_string_equal(m.relation.rel->cols[2].name, "c2");

    struct mb i = insert_head(4242, 2);
    puttext(&i, 't', "1");
    put8(&i, 'n');
    expect_error(d, &i, "tuple has 2 columns, relation public.t (OID 4242) has 3");

    /* more relations than the first cache size; an empty namespace is pg_catalog; a
     * relation may have no column */
    for (uint32_t oid = 1; oid <= 40; oid++) {
        struct mb r = relation_msg(oid, (int)(oid % 4));
        assert_int_equal(pgoutput_decode(d, r.b, r.n, &m, err, sizeof err), 0);
    }
    for (uint32_t oid = 1; oid <= 40; oid++) {
        const struct pgoutput_relation *rel = pgoutput_decoder_relation(d, oid);
        assert_non_null(rel);
        assert_int_equal(rel->ncols, (int)(oid % 4));
        struct mb ins = insert_head(oid, oid % 4);
        for (uint32_t c = 0; c < oid % 4; c++)
            puttext(&ins, 't', "v");
        assert_int_equal(pgoutput_decode(d, ins.b, ins.n, &m, err, sizeof err), 0);
        assert_ptr_equal(m.insert.rel, rel);
    }
    struct mb cat = {.n = 0};
    put8(&cat, 'R');
    put32(&cat, 77);
    putstr(&cat, "");
    putstr(&cat, "pg_thing");
    put8(&cat, 'f');
    put16(&cat, 0);
    assert_int_equal(pgoutput_decode(d, cat.b, cat.n, &m, err, sizeof err), 0);
    assert_string_equal(m.relation.rel->nspname, "pg_catalog");
    assert_int_equal(m.relation.rel->replident, 'f');
    assert_int_equal(pgoutput_relation_column(m.relation.rel, "id"), -1);
    pgoutput_decoder_free(d);
    pgoutput_decoder_free(NULL);
}

static void test_lsn(void **state)
{
    (void)state;
    char buf[PGOUTPUT_LSN_BUFLEN];
    uint64_t v;
    assert_int_equal(pgoutput_lsn_format(0x16B3748, buf, sizeof buf), 0);
    assert_string_equal(buf, "0/16B3748");
    assert_int_equal(pgoutput_lsn_format(0, buf, sizeof buf), 0);
    assert_string_equal(buf, "0/0");
    assert_int_equal(pgoutput_lsn_format(UINT64_MAX, buf, sizeof buf), 0);
    assert_string_equal(buf, "FFFFFFFF/FFFFFFFF");
    assert_int_equal(pgoutput_lsn_format(UINT64_C(0x100000000), buf, sizeof buf), 0);
    assert_string_equal(buf, "1/0");
    assert_int_equal(pgoutput_lsn_format(0x16B3748, buf, 9), -1); /* needs 10 */
    assert_int_equal(pgoutput_lsn_format(0x16B3748, buf, 10), 0);
    assert_int_equal(pgoutput_lsn_format(1, buf, 0), -1);

    assert_int_equal(pgoutput_lsn_parse("0/16B3748", &v), 0);
    assert_int_equal(v, 0x16B3748);
    assert_int_equal(pgoutput_lsn_parse("ffffffff/ffffffff", &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(pgoutput_lsn_parse("1/0", &v), 0);
    assert_int_equal(v, UINT64_C(0x100000000));
    assert_int_equal(pgoutput_lsn_parse("00000000/00000001", &v), 0);
    assert_int_equal(v, 1);
    static const char *const bad[] = {"",     "/",           "0/",          "/0",    "0/1 ",
                                      " 0/1", "123456789/0", "0/123456789", "0x1/0", "-1/0",
                                      "+1/0", "1/2/3",       "g/0",         "0\\1",  "0/1\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (pgoutput_lsn_parse(bad[i], &v) != -1)
            fail_msg("\"%s\" parsed as an LSN", bad[i]);
    assert_int_equal(pgoutput_lsn_parse(NULL, &v), -1);

    for (int i = 0; i < 1000; i++) {
        uint64_t lsn = (uint64_t)rnd() << 32 | rnd();
        assert_int_equal(pgoutput_lsn_format(lsn, buf, sizeof buf), 0);
        assert_int_equal(pgoutput_lsn_parse(buf, &v), 0);
        assert_true(v == lsn);
    }
}

static void test_time_and_names(void **state)
{
    (void)state;
    assert_true(pgoutput_time_to_unix_ms(0) == INT64_C(946684800000));
    assert_true(pgoutput_time_to_unix_ms(-1) == INT64_C(946684799999));
    assert_true(pgoutput_time_to_unix_ms(-1000) == INT64_C(946684799999));
    assert_true(pgoutput_time_to_unix_ms(-1001) == INT64_C(946684799998));
    assert_true(pgoutput_time_to_unix_ms(1999) == INT64_C(946684800001));
    /* a commit time off the wire past what int64 microseconds since 1970 hold saturates (the
     * fuzzer found the overflow) */
    assert_true(pgoutput_time_to_unix_us(INT64_MAX) == INT64_MAX);
    assert_true(pgoutput_time_to_unix_us(INT64_MAX - INT64_C(946684800000000)) == INT64_MAX);
    assert_true(pgoutput_time_to_unix_us(0) == INT64_C(946684800000000));
    assert_true(pgoutput_time_to_unix_us(INT64_MIN) == INT64_MIN + INT64_C(946684800000000));
    assert_string_equal(pgoutput_kind_name(PGOUTPUT_COMMIT), "commit");
    assert_string_equal(pgoutput_kind_name(PGOUTPUT_RELATION), "relation");
    assert_string_equal(pgoutput_kind_name(PGOUTPUT_INSERT), "insert");
    assert_string_equal(pgoutput_kind_name((enum pgoutput_kind)0), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_insert),
        cmocka_unit_test(test_multi_row),
        cmocka_unit_test(test_relation_change),
        cmocka_unit_test(test_binary_values),
        cmocka_unit_test(test_skipped_messages),
        cmocka_unit_test(test_every_prefix),
        cmocka_unit_test(test_every_byte_mutated),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_insert_value_kinds),
        cmocka_unit_test(test_bad_lengths_and_counts),
        cmocka_unit_test(test_unknown_relation_and_type),
        cmocka_unit_test(test_begin_commit),
        cmocka_unit_test(test_relation_replaced_and_kept_on_error),
        cmocka_unit_test(test_lsn),
        cmocka_unit_test(test_time_and_names),
    };
    return cmocka_run_group_tests_name("pgoutput", tests, NULL, NULL);
}
