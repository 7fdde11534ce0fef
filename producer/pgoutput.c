#include "pgoutput.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Relations are few (dxsync publishes two tables): a linear scan of a small array beats a
 * hash table, and the last hit is tried first. */
struct pgoutput_decoder {
    struct pgoutput_relation **rels;
    size_t nrels;
    size_t caprels;
    size_t last;                 /* index of the last relation found */
    struct pgoutput_value *vals; /* reused by every tuple */
    size_t capvals;
};

/* A cursor over one message. Every read checks the bytes left first. */
struct reader {
    const uint8_t *buf;
    size_t len;
    size_t pos;
    uint8_t type;
    char *err;
    size_t errlen;
};

static const char *type_name(uint8_t type)
{
    switch (type) {
    case 'B':
        return "Begin";
    case 'C':
        return "Commit";
    case 'R':
        return "Relation";
    case 'I':
        return "Insert";
    case 'U':
        return "Update";
    case 'D':
        return "Delete";
    case 'T':
        return "Truncate";
    case 'Y':
        return "Type";
    case 'O':
        return "Origin";
    case 'M':
        return "Message";
    default:
        return NULL;
    }
}

static void fail(struct reader *r, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Fills err with "pgoutput <Type> message: <what> at byte <at> of <len>". */
static void fail(struct reader *r, size_t at, const char *fmt, ...)
{
    if (!r->err || r->errlen == 0)
        return;
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    const char *name = type_name(r->type);
    snprintf(r->err, r->errlen, "pgoutput %s message: %s at byte %zu of %zu",
             name ? name : "unknown", what, at, r->len);
}

static size_t left(const struct reader *r)
{
    return r->len - r->pos;
}

static bool need(struct reader *r, size_t n, const char *what)
{
    if (left(r) >= n)
        return true;
    fail(r, r->pos, "%s needs %zu bytes, %zu left", what, n, left(r));
    return false;
}

static bool rd_u8(struct reader *r, const char *what, uint8_t *v)
{
    if (!need(r, 1, what))
        return false;
    *v = r->buf[r->pos++];
    return true;
}

static bool rd_u16(struct reader *r, const char *what, uint16_t *v)
{
    if (!need(r, 2, what))
        return false;
    const uint8_t *p = r->buf + r->pos;
    *v = (uint16_t)((unsigned)p[0] << 8 | (unsigned)p[1]);
    r->pos += 2;
    return true;
}

static bool rd_u32(struct reader *r, const char *what, uint32_t *v)
{
    if (!need(r, 4, what))
        return false;
    const uint8_t *p = r->buf + r->pos;
    *v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
    r->pos += 4;
    return true;
}

static bool rd_u64(struct reader *r, const char *what, uint64_t *v)
{
    if (!need(r, 8, what))
        return false;
    const uint8_t *p = r->buf + r->pos;
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x = x << 8 | p[i];
    *v = x;
    r->pos += 8;
    return true;
}

/* Two's complement without implementation-defined conversions. */
static int64_t to_i64(uint64_t u)
{
    if (u <= (uint64_t)INT64_MAX)
        return (int64_t)u;
    return -(int64_t)(~u) - 1;
}

static bool rd_i64(struct reader *r, const char *what, int64_t *v)
{
    uint64_t u;
    if (!rd_u64(r, what, &u))
        return false;
    *v = to_i64(u);
    return true;
}

/* A signed 32-bit length or count that must not be negative. */
static bool rd_len32(struct reader *r, const char *what, uint32_t *v)
{
    size_t at = r->pos;
    uint32_t u;
    if (!rd_u32(r, what, &u))
        return false;
    if (u > (uint32_t)INT32_MAX) {
        fail(r, at, "%s is negative (%" PRId64 ")", what, (int64_t)u - INT64_C(4294967296));
        return false;
    }
    *v = u;
    return true;
}

/* A signed 16-bit count that must not be negative. */
static bool rd_count16(struct reader *r, const char *what, int *v)
{
    size_t at = r->pos;
    uint16_t u;
    if (!rd_u16(r, what, &u))
        return false;
    if (u > 0x7fffu) {
        fail(r, at, "%s is negative (%d)", what, (int)u - 65536);
        return false;
    }
    *v = (int)u;
    return true;
}

/* A NUL-terminated string; *s points into the buffer, *slen excludes the NUL. */
static bool rd_cstring(struct reader *r, const char *what, const char **s, size_t *slen)
{
    const uint8_t *p = r->buf + r->pos;
    const uint8_t *nul = left(r) ? memchr(p, '\0', left(r)) : NULL;
    if (!nul) {
        fail(r, r->pos, "%s has no terminating NUL before the end", what);
        return false;
    }
    *s = (const char *)p;
    *slen = (size_t)(nul - p);
    r->pos += *slen + 1;
    return true;
}

static bool at_end(struct reader *r)
{
    if (r->pos == r->len)
        return true;
    fail(r, r->pos, "%zu unexpected bytes after the message", left(r));
    return false;
}

static bool grow_vals(struct pgoutput_decoder *d, size_t n)
{
    if (n <= d->capvals)
        return true;
    size_t cap = d->capvals ? d->capvals : 16;
    while (cap < n)
        cap *= 2;
    struct pgoutput_value *v = realloc(d->vals, cap * sizeof *v);
    if (!v)
        return false;
    d->vals = v;
    d->capvals = cap;
    return true;
}

/* Names column i in error texts; only called on the error path. */
static void column_what(char *buf, size_t n, const struct pgoutput_relation *rel, int i)
{
    if (rel)
        snprintf(buf, n, "column %d (\"%s\")", i, rel->cols[i].name);
    else
        snprintf(buf, n, "column %d", i);
}

/* TupleData. With rel, the column count must be rel's and errors name the column. This is
 * the hot path of the producer: no allocation once the value array is big enough, and no
 * formatting unless something is wrong. */
static bool read_tuple(struct pgoutput_decoder *d, struct reader *r,
                       const struct pgoutput_relation *rel, struct pgoutput_tuple *t)
{
    size_t at = r->pos;
    int ncols;
    if (!rd_count16(r, "tuple column count", &ncols))
        return false;
    if (rel && ncols != rel->ncols) {
        fail(r, at, "tuple has %d columns, relation %s.%s (OID %" PRIu32 ") has %d", ncols,
             rel->nspname, rel->relname, rel->oid, rel->ncols);
        return false;
    }
    if ((size_t)ncols > left(r)) {
        fail(r, at, "tuple column count %d exceeds the %zu bytes left", ncols, left(r));
        return false;
    }
    if (!grow_vals(d, (size_t)ncols)) {
        fail(r, at, "out of memory for %d column values", ncols);
        return false;
    }
    char what[96];
    for (int i = 0; i < ncols; i++) {
        struct pgoutput_value *v = &d->vals[i];
        if (left(r) < 1) {
            column_what(what, sizeof what, rel, i);
            fail(r, r->pos, "%s kind needs 1 byte, 0 left", what);
            return false;
        }
        uint8_t kind = r->buf[r->pos];
        switch (kind) {
        case PGOUTPUT_VALUE_NULL:
        case PGOUTPUT_VALUE_UNCHANGED:
            v->kind = (char)kind;
            v->data = NULL;
            v->len = 0;
            r->pos++;
            break;
        case PGOUTPUT_VALUE_TEXT:
        case PGOUTPUT_VALUE_BINARY: {
            size_t lat = r->pos + 1;
            if (r->len - lat < 4) {
                column_what(what, sizeof what, rel, i);
                fail(r, lat, "%s length needs 4 bytes, %zu left", what, r->len - lat);
                return false;
            }
            const uint8_t *p = r->buf + lat;
            uint32_t len =
                (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
            size_t rest = r->len - lat - 4;
            if (len > (uint32_t)INT32_MAX) {
                column_what(what, sizeof what, rel, i);
                fail(r, lat, "%s length is negative (%" PRId64 ")", what,
                     (int64_t)len - INT64_C(4294967296));
                return false;
            }
            if (len > rest) {
                column_what(what, sizeof what, rel, i);
                fail(r, lat, "%s length %" PRIu32 " runs past the end (%zu bytes left)", what, len,
                     rest);
                return false;
            }
            v->kind = (char)kind;
            v->data = (const char *)(p + 4);
            v->len = len;
            r->pos = lat + 4 + len;
            break;
        }
        default:
            column_what(what, sizeof what, rel, i);
            fail(r, r->pos, "%s has unknown kind 0x%02x", what, (unsigned)kind);
            return false;
        }
    }
    t->ncols = ncols;
    t->vals = d->vals;
    return true;
}

static struct pgoutput_relation **find_slot(struct pgoutput_decoder *d, uint32_t oid)
{
    if (d->last < d->nrels && d->rels[d->last]->oid == oid)
        return &d->rels[d->last];
    for (size_t i = 0; i < d->nrels; i++) {
        if (d->rels[i]->oid == oid) {
            d->last = i;
            return &d->rels[i];
        }
    }
    return NULL;
}

static int decode_begin(struct reader *r, struct pgoutput_msg *out)
{
    size_t at = r->pos;
    if (!rd_u64(r, "final LSN", &out->begin.final_lsn) ||
        !rd_i64(r, "commit timestamp", &out->begin.commit_time_us) ||
        !rd_u32(r, "xid", &out->begin.xid) || !at_end(r))
        return -1;
    if (out->begin.final_lsn == 0) {
        fail(r, at, "final LSN is not set");
        return -1;
    }
    out->kind = PGOUTPUT_BEGIN;
    return 0;
}

static int decode_commit(struct reader *r, struct pgoutput_msg *out)
{
    size_t at = r->pos;
    if (!rd_u8(r, "flags", &out->commit.flags))
        return -1;
    if (out->commit.flags != 0) {
        fail(r, at, "unknown flags 0x%02x", (unsigned)out->commit.flags);
        return -1;
    }
    at = r->pos;
    if (!rd_u64(r, "commit LSN", &out->commit.commit_lsn) ||
        !rd_u64(r, "end LSN", &out->commit.end_lsn) ||
        !rd_i64(r, "commit timestamp", &out->commit.commit_time_us) || !at_end(r))
        return -1;
    if (out->commit.end_lsn < out->commit.commit_lsn) {
        char end[PGOUTPUT_LSN_BUFLEN], commit[PGOUTPUT_LSN_BUFLEN];
        pgoutput_lsn_format(out->commit.end_lsn, end, sizeof end);
        pgoutput_lsn_format(out->commit.commit_lsn, commit, sizeof commit);
        fail(r, at, "end LSN %s is before commit LSN %s", end, commit);
        return -1;
    }
    out->kind = PGOUTPUT_COMMIT;
    return 0;
}

/* Parses the whole Relation message first, then builds the relation in one allocation and
 * only then replaces the cached one: a bad message leaves the cache untouched. */
static int decode_relation(struct pgoutput_decoder *d, struct reader *r, struct pgoutput_msg *out)
{
    size_t at = r->pos;
    uint32_t oid;
    if (!rd_u32(r, "relation OID", &oid))
        return -1;
    if (oid == 0) {
        fail(r, at, "relation OID is 0");
        return -1;
    }
    const char *nsp, *relname;
    size_t nsplen, rellen;
    if (!rd_cstring(r, "namespace", &nsp, &nsplen))
        return -1;
    at = r->pos;
    if (!rd_cstring(r, "relation name", &relname, &rellen))
        return -1;
    if (rellen == 0) {
        fail(r, at, "relation name is empty");
        return -1;
    }
    at = r->pos;
    uint8_t replident;
    if (!rd_u8(r, "replica identity", &replident))
        return -1;
    if (!memchr("dnfi", replident, 4)) {
        fail(r, at, "unknown replica identity 0x%02x", (unsigned)replident);
        return -1;
    }
    at = r->pos;
    int ncols;
    if (!rd_count16(r, "column count", &ncols))
        return -1;
    /* each column takes at least flags, an empty name, type OID and typmod: 10 bytes */
    if ((size_t)ncols > left(r) / 10) {
        fail(r, at, "column count %d does not fit in the %zu bytes left", ncols, left(r));
        return -1;
    }

    /* First pass: validate the columns and size the strings. */
    const char *nspname = nsplen ? nsp : "pg_catalog";
    if (!nsplen)
        nsplen = strlen(nspname);
    size_t strbytes = nsplen + 1 + rellen + 1;
    size_t cols_at = r->pos;
    for (int i = 0; i < ncols; i++) {
        char what[64];
        uint8_t flags;
        const char *name;
        size_t namelen;
        uint32_t u32;
        snprintf(what, sizeof what, "column %d flags", i);
        if (!rd_u8(r, what, &flags))
            return -1;
        snprintf(what, sizeof what, "column %d name", i);
        if (!rd_cstring(r, what, &name, &namelen))
            return -1;
        snprintf(what, sizeof what, "column %d type OID", i);
        if (!rd_u32(r, what, &u32))
            return -1;
        snprintf(what, sizeof what, "column %d typmod", i);
        if (!rd_u32(r, what, &u32))
            return -1;
        strbytes += namelen + 1;
    }
    if (!at_end(r))
        return -1;

    /* Second pass: copy into one block, relation, then columns, then strings. */
    _Static_assert(_Alignof(struct pgoutput_column) <= _Alignof(struct pgoutput_relation),
                   "columns follow the relation in one block");
    size_t colbytes = (size_t)ncols * sizeof(struct pgoutput_column);
    struct pgoutput_relation *rel = malloc(sizeof *rel + colbytes + strbytes);
    if (!rel) {
        fail(r, 0, "out of memory for relation %.*s", (int)(rellen > 64 ? 64 : rellen), relname);
        return -1;
    }
    char *s = (char *)(rel + 1) + colbytes;
    rel->oid = oid;
    rel->replident = (char)replident;
    rel->ncols = ncols;
    rel->cols = ncols ? (struct pgoutput_column *)(rel + 1) : NULL;
    rel->nspname = s;
    memcpy(s, nspname, nsplen);
    s[nsplen] = '\0';
    s += nsplen + 1;
    rel->relname = s;
    memcpy(s, relname, rellen);
    s[rellen] = '\0';
    s += rellen + 1;
    r->pos = cols_at;
    for (int i = 0; i < ncols; i++) {
        struct pgoutput_column *c = &rel->cols[i];
        uint8_t flags = 0;
        const char *name = "";
        size_t namelen = 0;
        uint32_t typmod = 0;
        /* validated above: these cannot fail */
        (void)(rd_u8(r, "", &flags) && rd_cstring(r, "", &name, &namelen) &&
               rd_u32(r, "", &c->type_oid) && rd_u32(r, "", &typmod));
        c->key = (flags & 1u) != 0;
        c->typmod = typmod > (uint32_t)INT32_MAX ? (int32_t)((int64_t)typmod - INT64_C(4294967296))
                                                 : (int32_t)typmod;
        c->name = s;
        memcpy(s, name, namelen);
        s[namelen] = '\0';
        s += namelen + 1;
    }

    struct pgoutput_relation **slot = find_slot(d, oid);
    if (slot) {
        free(*slot);
        *slot = rel;
    } else {
        if (d->nrels == d->caprels) {
            size_t cap = d->caprels ? d->caprels * 2 : 4;
            struct pgoutput_relation **rels = realloc(d->rels, cap * sizeof *rels);
            if (!rels) {
                free(rel);
                fail(r, 0, "out of memory for the relation cache");
                return -1;
            }
            d->rels = rels;
            d->caprels = cap;
        }
        d->last = d->nrels;
        d->rels[d->nrels++] = rel;
    }
    out->kind = PGOUTPUT_RELATION;
    out->relation.rel = rel;
    return 0;
}

static int decode_insert(struct pgoutput_decoder *d, struct reader *r, struct pgoutput_msg *out)
{
    size_t at = r->pos;
    uint32_t oid;
    if (!rd_u32(r, "relation OID", &oid))
        return -1;
    struct pgoutput_relation **slot = find_slot(d, oid);
    if (!slot) {
        fail(r, at, "relation OID %" PRIu32 " was never described by a Relation message", oid);
        return -1;
    }
    at = r->pos;
    uint8_t tag;
    if (!rd_u8(r, "new tuple tag", &tag))
        return -1;
    if (tag != 'N') {
        fail(r, at, "expected new tuple tag 'N', got 0x%02x", (unsigned)tag);
        return -1;
    }
    if (!read_tuple(d, r, *slot, &out->insert.tuple) || !at_end(r))
        return -1;
    out->kind = PGOUTPUT_INSERT;
    out->insert.rel = *slot;
    return 0;
}

/* Update: the new row (an old key or row before it is checked and passed over). */
static int decode_update(struct pgoutput_decoder *d, struct reader *r, struct pgoutput_msg *out)
{
    size_t at = r->pos;
    uint32_t oid;
    if (!rd_u32(r, "relation OID", &oid))
        return -1;
    struct pgoutput_relation **slot = find_slot(d, oid);
    if (!slot) {
        fail(r, at, "relation OID %" PRIu32 " was never described by a Relation message", oid);
        return -1;
    }
    at = r->pos;
    uint8_t tag;
    if (!rd_u8(r, "tuple tag", &tag))
        return -1;
    if (tag == 'K' || tag == 'O') {
        struct pgoutput_tuple old;
        if (!read_tuple(d, r, NULL, &old))
            return -1;
        at = r->pos;
        if (!rd_u8(r, "new tuple tag", &tag))
            return -1;
    }
    if (tag != 'N') {
        fail(r, at, "expected tuple tag 'K', 'O' or 'N', got 0x%02x", (unsigned)tag);
        return -1;
    }
    if (!read_tuple(d, r, *slot, &out->update.tuple) || !at_end(r))
        return -1;
    out->kind = PGOUTPUT_UPDATE;
    out->update.rel = *slot;
    return 0;
}

/* Delete: checked for shape, not decoded. */
static int skip_change(struct pgoutput_decoder *d, struct reader *r, struct pgoutput_msg *out)
{
    struct pgoutput_tuple t;
    uint32_t oid;
    if (!rd_u32(r, "relation OID", &oid))
        return -1;
    size_t at = r->pos;
    uint8_t tag;
    if (!rd_u8(r, "tuple tag", &tag))
        return -1;
    if (tag != 'K' && tag != 'O') {
        fail(r, at, "expected tuple tag 'K' or 'O', got 0x%02x", (unsigned)tag);
        return -1;
    }
    if (!read_tuple(d, r, NULL, &t) || !at_end(r))
        return -1;
    out->skipped.relid = oid;
    return 0;
}

static int skip_truncate(struct reader *r, struct pgoutput_msg *out)
{
    size_t at = r->pos;
    uint32_t n;
    uint8_t flags;
    if (!rd_len32(r, "relation count", &n) || !rd_u8(r, "flags", &flags))
        return -1;
    if (n > left(r) / 4) {
        fail(r, at, "relation count %" PRIu32 " does not fit in the %zu bytes left", n, left(r));
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t oid = 0;
        (void)rd_u32(r, "relation OID", &oid);
        if (i == 0)
            out->skipped.relid = oid;
    }
    return at_end(r) ? 0 : -1;
}

static int skip_type(struct reader *r)
{
    uint32_t oid;
    const char *s;
    size_t n;
    if (!rd_u32(r, "type OID", &oid) || !rd_cstring(r, "namespace", &s, &n) ||
        !rd_cstring(r, "type name", &s, &n))
        return -1;
    return at_end(r) ? 0 : -1;
}

static int skip_origin(struct reader *r)
{
    uint64_t lsn;
    const char *s;
    size_t n;
    if (!rd_u64(r, "origin LSN", &lsn) || !rd_cstring(r, "origin name", &s, &n))
        return -1;
    return at_end(r) ? 0 : -1;
}

static int skip_message(struct reader *r)
{
    uint8_t flags;
    uint64_t lsn;
    const char *s;
    size_t n;
    uint32_t sz;
    if (!rd_u8(r, "flags", &flags) || !rd_u64(r, "LSN", &lsn) || !rd_cstring(r, "prefix", &s, &n))
        return -1;
    size_t at = r->pos;
    if (!rd_len32(r, "content length", &sz))
        return -1;
    if (sz > left(r)) {
        fail(r, at, "content length %" PRIu32 " runs past the end (%zu bytes left)", sz, left(r));
        return -1;
    }
    r->pos += sz;
    return at_end(r) ? 0 : -1;
}

int pgoutput_decode(struct pgoutput_decoder *d, const uint8_t *buf, size_t len,
                    struct pgoutput_msg *out, char *err, size_t errlen)
{
    struct reader r = {.buf = buf, .len = len, .err = err, .errlen = errlen};
    memset(out, 0, sizeof *out);
    if (err && errlen)
        err[0] = '\0';
    if (!buf || len == 0) {
        fail(&r, 0, "empty message");
        return -1;
    }
    r.type = buf[0];
    r.pos = 1;
    int rc;
    switch (r.type) {
    case 'B':
        rc = decode_begin(&r, out);
        break;
    case 'C':
        rc = decode_commit(&r, out);
        break;
    case 'R':
        rc = decode_relation(d, &r, out);
        break;
    case 'I':
        rc = decode_insert(d, &r, out);
        break;
    case 'U':
        rc = decode_update(d, &r, out);
        break;
    case 'D':
        rc = skip_change(d, &r, out);
        break;
    case 'T':
        rc = skip_truncate(&r, out);
        break;
    case 'Y':
        rc = skip_type(&r);
        break;
    case 'O':
        rc = skip_origin(&r);
        break;
    case 'M':
        rc = skip_message(&r);
        break;
    default:
        if (err && errlen) {
            if (r.type >= 0x20 && r.type < 0x7f)
                snprintf(err, errlen,
                         "pgoutput: unknown message type '%c' (0x%02x) at byte 0 of %zu", r.type,
                         (unsigned)r.type, len);
            else
                snprintf(err, errlen, "pgoutput: unknown message type 0x%02x at byte 0 of %zu",
                         (unsigned)r.type, len);
        }
        return -1;
    }
    if (rc != 0) {
        memset(out, 0, sizeof *out);
        return -1;
    }
    if (out->kind == 0) {
        out->kind = PGOUTPUT_SKIPPED;
        out->skipped.type = (char)r.type;
    }
    return 0;
}

struct pgoutput_decoder *pgoutput_decoder_new(void)
{
    return calloc(1, sizeof(struct pgoutput_decoder));
}

void pgoutput_decoder_free(struct pgoutput_decoder *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->nrels; i++)
        free(d->rels[i]);
    free(d->rels);
    free(d->vals);
    free(d);
}

const struct pgoutput_relation *pgoutput_decoder_relation(const struct pgoutput_decoder *d,
                                                          uint32_t oid)
{
    for (size_t i = 0; i < d->nrels; i++)
        if (d->rels[i]->oid == oid)
            return d->rels[i];
    return NULL;
}

int pgoutput_relation_column(const struct pgoutput_relation *rel, const char *name)
{
    for (int i = 0; i < rel->ncols; i++)
        if (strcmp(rel->cols[i].name, name) == 0)
            return i;
    return -1;
}

bool pgoutput_value_equals(const struct pgoutput_value *v, const char *s)
{
    if (v->kind != PGOUTPUT_VALUE_TEXT && v->kind != PGOUTPUT_VALUE_BINARY)
        return false;
    size_t n = strlen(s);
    return n == v->len && (n == 0 || memcmp(v->data, s, n) == 0);
}

char *pgoutput_value_strdup(const struct pgoutput_value *v)
{
    if (v->kind != PGOUTPUT_VALUE_TEXT && v->kind != PGOUTPUT_VALUE_BINARY)
        return NULL;
    char *s = malloc((size_t)v->len + 1);
    if (!s)
        return NULL;
    if (v->len)
        memcpy(s, v->data, v->len);
    s[v->len] = '\0';
    return s;
}

int pgoutput_lsn_format(uint64_t lsn, char *buf, size_t len)
{
    char tmp[PGOUTPUT_LSN_BUFLEN];
    int n = snprintf(tmp, sizeof tmp, "%" PRIX32 "/%" PRIX32, (uint32_t)(lsn >> 32),
                     (uint32_t)(lsn & 0xffffffffu));
    if (n < 0 || (size_t)n >= len)
        return -1;
    memcpy(buf, tmp, (size_t)n + 1);
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* 1 to 8 hex digits; advances *s past them. */
static int parse_hex32(const char **s, uint32_t *out)
{
    uint32_t v = 0;
    int n = 0, h;
    while ((h = hexval(**s)) >= 0) {
        if (++n > 8)
            return -1;
        v = v << 4 | (uint32_t)h;
        (*s)++;
    }
    if (n == 0)
        return -1;
    *out = v;
    return 0;
}

int pgoutput_lsn_parse(const char *s, uint64_t *out)
{
    uint32_t hi, lo;
    if (!s || parse_hex32(&s, &hi) != 0 || *s++ != '/' || parse_hex32(&s, &lo) != 0 || *s)
        return -1;
    *out = (uint64_t)hi << 32 | lo;
    return 0;
}

int64_t pgoutput_time_to_unix_us(int64_t pg_us)
{
    /* a timestamp off the wire may be anything (PostgreSQL's +infinity is INT64_MAX): saturate
     * rather than overflow */
    if (pg_us > INT64_MAX - PGOUTPUT_EPOCH_OFFSET_US)
        return INT64_MAX;
    return pg_us + PGOUTPUT_EPOCH_OFFSET_US;
}

int64_t pgoutput_time_to_unix_ms(int64_t pg_us)
{
    /* floor division: a timestamp just before a millisecond belongs to the one before */
    int64_t ms = pg_us / 1000;
    if (pg_us % 1000 < 0)
        ms--;
    return ms + PGOUTPUT_EPOCH_OFFSET_US / 1000;
}

const char *pgoutput_kind_name(enum pgoutput_kind kind)
{
    switch (kind) {
    case PGOUTPUT_BEGIN:
        return "begin";
    case PGOUTPUT_COMMIT:
        return "commit";
    case PGOUTPUT_RELATION:
        return "relation";
    case PGOUTPUT_INSERT:
        return "insert";
    case PGOUTPUT_UPDATE:
        return "update";
    case PGOUTPUT_SKIPPED:
        return "skipped";
    }
    return "unknown";
}
