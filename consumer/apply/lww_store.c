/* lww_store.c: the clocks of a key as the store keeps them (a compact encoding, varints), read
 * back when a key is not in memory, written by a checkpoint, and the cache kept to its bound. */
#include "lww_int.h"

#include "clockdb.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Counting requested sizes instead missed about a quarter of a key's memory (four small
 * blocks). */
size_t lww_held(const void *p)
{
    return p ? malloc_usable_size((void *)p) + sizeof(size_t) : 0;
}

/* The encoding of an entry (the store's value), version 1:
 *   u8 version, u8 flags (1: a foreign write is known, 2: the full key follows at the end),
 *   varint partition, zigzag wrote_ms, u8 nstamps,
 *   per stamp: zigzag us, varint lsn, zigzag aid, zigzag offset, varint length + source name,
 *   u8 del (a stamp index or 0xff), varint nfields, per field: varint length + name, u8 stamp,
 *   [varint length + "<collection>\x1f<key>"]. */
#define ENC_VERSION  1
#define ENC_FOREIGN  1
#define ENC_FULL_KEY 2
#define KEY_HASH_SEP 0x1e

static void put_varint(struct util_buf *b, uint64_t v)
{
    unsigned char out[10];
    size_t n = 0;
    do {
        out[n] = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v)
            out[n] |= 0x80;
        n++;
    } while (v);
    util_buf_append(b, out, n);
}

static uint64_t zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static int64_t unzigzag(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

static void put_bytes(struct util_buf *b, const char *s, size_t n)
{
    put_varint(b, n);
    util_buf_append(b, s, n);
}

/* The store's key of collection/key into buf (cap bytes at least max + 1): the key as it is, or,
 * when longer than max, its first bytes, a separator and its hash (the value then holds the full
 * key). Returns its length; *full is set when the value must hold the full key. */
static size_t store_key(char *buf, size_t max, const char *k, size_t kl, uint64_t h, bool *full)
{
    *full = kl > max;
    if (!*full) {
        memcpy(buf, k, kl);
        return kl;
    }
    size_t head = max - 9;
    memcpy(buf, k, head);
    buf[head] = KEY_HASH_SEP;
    memcpy(buf + head + 1, &h, 8);
    return max;
}

static void encode(struct lww *w, const struct entry *e, bool full)
{
    struct util_buf *b = &w->enc;
    util_buf_reset(b);
    unsigned char head[2] = {
        ENC_VERSION, (unsigned char)((e->foreign ? ENC_FOREIGN : 0) | (full ? ENC_FULL_KEY : 0))};
    util_buf_append(b, head, 2);
    put_varint(b, (uint64_t)(uint32_t)e->partition);
    put_varint(b, zigzag(e->wrote_ms));
    util_buf_append(b, &e->nstamps, 1);
    for (size_t i = 0; i < e->nstamps; i++) {
        const struct lww_stamp *st = &e->stamps[i];
        put_varint(b, zigzag(st->us));
        put_varint(b, st->lsn);
        put_varint(b, zigzag(st->aid));
        put_varint(b, zigzag(e->locs[i]));
        const char *src = st->src < w->nnames ? w->names[st->src] : "";
        put_bytes(b, src, strlen(src));
    }
    util_buf_append(b, &e->del, 1);
    put_varint(b, e->nfields);
    for (size_t i = 0; i < e->nfields; i++) {
        const char *name = w->fields[e->fields[i].name];
        put_bytes(b, name, strlen(name));
        util_buf_append(b, &e->fields[i].stamp, 1);
    }
    if (full)
        put_bytes(b, e->key, strlen(e->key));
}

struct reader {
    const unsigned char *p, *end;
    bool bad;
};

static uint64_t get_varint(struct reader *r)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end)
            break;
        unsigned char c = *r->p++;
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80))
            return v;
    }
    r->bad = true;
    return 0;
}

static unsigned char get_u8(struct reader *r)
{
    if (r->p >= r->end) {
        r->bad = true;
        return 0;
    }
    return *r->p++;
}

/* A length-prefixed string: its bytes and length (not terminated), NULL when bad. */
static const char *get_bytes(struct reader *r, size_t *n)
{
    uint64_t len = get_varint(r);
    if (r->bad || len > (uint64_t)(r->end - r->p)) {
        r->bad = true;
        return NULL;
    }
    const char *s = (const char *)r->p;
    r->p += len;
    *n = (size_t)len;
    return s;
}

/* The rank of the source named s (n bytes), nnames when unknown. */
static uint32_t rank_of(const struct lww *w, const char *s, size_t n)
{
    for (size_t i = 0; i < w->nnames; i++)
        if (strlen(w->names[i]) == n && memcmp(w->names[i], s, n) == 0)
            return (uint32_t)i;
    return (uint32_t)w->nnames;
}

/* Fills e (new, no clocks) from a stored value. 0, or -1 when the value is not one (e may hold
 * part of it: the caller frees it). */
static int decode(struct lww *w, struct entry *e, const void *val, size_t len, bool full)
{
    struct reader r = {val, (const unsigned char *)val + len, false};
    if (get_u8(&r) != ENC_VERSION)
        return -1;
    unsigned char flags = get_u8(&r);
    e->foreign = flags & ENC_FOREIGN;
    e->partition = (int32_t)(uint32_t)get_varint(&r);
    e->wrote_ms = unzigzag(get_varint(&r));
    size_t ns = get_u8(&r);
    if (r.bad || ns > MAX_STAMPS)
        return -1;
    if (ns) {
        e->stamps = malloc(ns * sizeof(*e->stamps));
        e->locs = malloc(ns * sizeof(*e->locs));
        if (!e->stamps || !e->locs)
            return -1;
        e->capstamps = (uint8_t)ns;
    }
    for (size_t i = 0; i < ns; i++) {
        struct lww_stamp *st = &e->stamps[i];
        st->us = unzigzag(get_varint(&r));
        st->lsn = get_varint(&r);
        st->aid = unzigzag(get_varint(&r));
        e->locs[i] = unzigzag(get_varint(&r));
        size_t sl = 0;
        const char *src = get_bytes(&r, &sl);
        if (!src)
            return -1;
        st->src = rank_of(w, src, sl);
        e->nstamps++;
    }
    e->del = get_u8(&r);
    uint64_t nf = get_varint(&r);
    if (r.bad || (e->del != NO_STAMP && e->del >= ns) || nf > 0xffff)
        return -1;
    if (nf) {
        e->fields = malloc(nf * sizeof(*e->fields));
        if (!e->fields)
            return -1;
        e->capfields = (uint16_t)nf;
    }
    for (size_t i = 0; i < nf; i++) {
        size_t nl = 0;
        const char *name = get_bytes(&r, &nl);
        unsigned char st = get_u8(&r);
        if (!name || r.bad || nl >= 1024 || (st != NO_STAMP && st >= ns))
            return -1;
        char buf[1024];
        memcpy(buf, name, nl);
        buf[nl] = '\0';
        int n = lww_intern(w, buf);
        if (n < 0)
            return -1;
        e->fields[i] = (struct field){(uint16_t)n, st};
        e->nfields++;
    }
    if (full) {
        size_t kl = 0;
        const char *k = (flags & ENC_FULL_KEY) ? get_bytes(&r, &kl) : NULL;
        if (!k || kl != strlen(e->key) || memcmp(k, e->key, kl) != 0)
            return -1; /* another key with the same hashed store key */
    }
    return 0;
}

struct entry *lww_entry_load(struct lww *w, const char *collection, const char *key, uint64_t h)
{
    size_t cl = strlen(collection), kl = strlen(key);
    size_t max = clockdb_max_key(w->db);
    char *full_key = malloc(cl + 1 + kl + 1), *k = malloc(max + 1);
    struct entry *e = NULL;
    if (!full_key || !k)
        goto out;
    memcpy(full_key, collection, cl);
    full_key[cl] = 0x1f;
    memcpy(full_key + cl + 1, key, kl + 1);
    bool full;
    size_t klen = store_key(k, max, full_key, cl + 1 + kl, h, &full);
    const void *val;
    size_t len;
    int rc = clockdb_get(w->db, k, klen, &val, &len);
    if (rc == 0)
        goto out;
    if (rc < 0) {
        w->store_errors++;
        goto out;
    }
    e = lww_entry_insert(w, collection, key, h, 0);
    if (e) {
        int bad = decode(w, e, val, len, full);
        w->bytes += lww_held(e->stamps) + lww_held(e->locs) + lww_held(e->fields);
        if (bad) {
            w->store_errors++; /* known from here on only from what is read again */
            lww_entry_evict(w, e);
            e = NULL;
        }
    }
out:
    free(full_key);
    free(k);
    return e;
}

int lww_checkpoint_write(struct lww *w, char *err, size_t errlen)
{
    if (!w->db)
        return 0;
    size_t max = clockdb_max_key(w->db);
    char *k = malloc(max + 1);
    if (!k) {
        snprintf(err, errlen, "out of memory");
        clockdb_abort(w->db);
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < w->ndirty && rc == 0; i++) {
        const struct entry *e = w->dirty[i];
        bool full;
        size_t klen = store_key(k, max, e->key, strlen(e->key), e->hash, &full);
        encode(w, e, full);
        if (w->enc.failed) {
            snprintf(err, errlen, "out of memory");
            clockdb_abort(w->db);
            rc = -1;
        } else {
            rc = clockdb_put(w->db, k, klen, w->enc.data, w->enc.len, err, errlen);
        }
    }
    free(k);
    return rc;
}

void lww_checkpoint_done(struct lww *w)
{
    for (size_t i = 0; i < w->ndirty; i++)
        w->dirty[i]->dirty = false;
    w->ndirty = 0;
    if (w->capdirty > 4096) { /* a large restore's list goes back */
        free(w->dirty);
        w->dirty = NULL;
        w->capdirty = 0;
    }
}

void lww_trim(struct lww *w)
{
    if (!w->db || lww_bytes(w) <= w->cache_bytes)
        return;
    size_t target = w->cache_bytes / 8 * 7;
    struct entry *e = w->oldest;
    while (e && lww_bytes(w) > target) {
        struct entry *newer = e->newer;
        if (!e->dirty && !e->owner)
            lww_entry_evict(w, e);
        e = newer;
    }
}
