/* lww.c: the rule and the table of clocks; lww_store.c keeps them in the store. */
#include "lww_int.h"

#include <stdlib.h>
#include <string.h>

int lww_stamp_cmp(const struct lww_stamp *a, const struct lww_stamp *b)
{
    if (a->us != b->us)
        return a->us < b->us ? -1 : 1;
    if (a->src != b->src)
        return a->src < b->src ? -1 : 1;
    if (a->lsn != b->lsn)
        return a->lsn < b->lsn ? -1 : 1;
    if (a->aid != b->aid)
        return a->aid < b->aid ? -1 : 1;
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

struct lww *lww_new(const char *const *names, size_t n)
{
    struct lww *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->names = calloc(n ? n : 1, sizeof(*w->names));
    w->nbuckets = 1024;
    w->buckets = calloc(w->nbuckets, sizeof(*w->buckets));
    w->margin_us = 5000000;
    if (!w->names || !w->buckets)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        if (!(w->names[i] = strdup(names[i])))
            goto oom;
        w->nnames++;
    }
    qsort(w->names, w->nnames, sizeof(*w->names), cmp_names);
    return w;
oom:
    lww_free(w);
    return NULL;
}

static size_t entry_bytes(const struct entry *e)
{
    return lww_held(e) + lww_held(e->stamps) + lww_held(e->locs) + lww_held(e->fields);
}

static void lru_unlink(struct lww *w, struct entry *e)
{
    if (e->older)
        e->older->newer = e->newer;
    else
        w->oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        w->newest = e->older;
    e->older = e->newer = NULL;
}

static void lru_push(struct lww *w, struct entry *e)
{
    e->older = w->newest;
    e->newer = NULL;
    if (w->newest)
        w->newest->newer = e;
    else
        w->oldest = e;
    w->newest = e;
}

/* Frees e (already out of its bucket and of the dirty list). */
static void entry_free(struct lww *w, struct entry *e)
{
    lru_unlink(w, e);
    w->bytes -= entry_bytes(e);
    free(e->stamps);
    free(e->locs);
    free(e->fields);
    free(e);
    w->nentries--;
}

void lww_free(struct lww *w)
{
    if (!w)
        return;
    for (size_t i = 0; w->buckets && i < w->nbuckets; i++) {
        struct entry *e = w->buckets[i];
        while (e) {
            struct entry *next = e->next;
            entry_free(w, e);
            e = next;
        }
    }
    for (size_t i = 0; i < w->nnames; i++)
        free(w->names[i]);
    for (size_t i = 0; i < w->nfieldnames; i++)
        free(w->fields[i]);
    free(w->names);
    free(w->fields);
    free(w->buckets);
    free(w->dirty);
    free(w->floors);
    util_buf_free(&w->enc);
    free(w);
}

void lww_attach(struct lww *w, struct clockdb *db, size_t cache_bytes)
{
    w->db = db;
    w->cache_bytes = cache_bytes;
}

void lww_set_margin(struct lww *w, int64_t margin_us)
{
    w->margin_us = margin_us;
}

void lww_set_floor(struct lww *w, int32_t partition, int64_t floor_us)
{
    if (partition < 0)
        return;
    size_t p = (size_t)partition;
    if (p >= w->nfloors) {
        if (floor_us == LWW_COMPLETE)
            return;
        int64_t *f = realloc(w->floors, (p + 1) * sizeof(*f));
        if (!f)
            return; /* out of memory: the partition counts as complete, as before floors */
        for (size_t i = w->nfloors; i <= p; i++)
            f[i] = LWW_COMPLETE;
        w->floors = f;
        w->nfloors = p + 1;
    }
    w->floors[p] = floor_us;
}

int64_t lww_floor(const struct lww *w, int32_t partition)
{
    return partition >= 0 && (size_t)partition < w->nfloors ? w->floors[partition] : LWW_COMPLETE;
}

/* ---- stamps ---- */

/* "X/X" in hex; 0 when absent or not an LSN. */
static uint64_t parse_lsn(const char *s)
{
    if (!s)
        return 0;
    char *end;
    unsigned long long hi = strtoull(s, &end, 16);
    if (end == s || *end != '/')
        return 0;
    const char *lo_s = end + 1;
    unsigned long long lo = strtoull(lo_s, &end, 16);
    if (end == lo_s || *end || hi > 0xffffffffull || lo > 0xffffffffull)
        return 0;
    return (uint64_t)hi << 32 | (uint64_t)lo;
}

void lww_stamp_of(const struct lww *w, const struct event *ev, struct lww_stamp *out)
{
    out->us = ev->has_commit_us ? ev->commit_us : 0;
    out->lsn = parse_lsn(ev->lsn);
    out->aid = ev->has_activity_id ? ev->activity_id : 0;
    out->src = (uint32_t)w->nnames;
    size_t lo = 0, hi = w->nnames;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(w->names[mid], ev->source ? ev->source : "");
        if (c == 0) {
            out->src = (uint32_t)mid;
            break;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
}

/* ---- the table ---- */

static uint64_t hash_key(const char *collection, const char *key)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a over collection, 0x1f, key */
    for (const char *s = collection; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    h = (h ^ 0x1f) * 1099511628211ull;
    for (const char *s = key; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static bool entry_is(const struct entry *e, uint64_t h, const char *collection, const char *key)
{
    if (e->hash != h)
        return false;
    size_t cl = strlen(collection);
    return strncmp(e->key, collection, cl) == 0 && e->key[cl] == 0x1f &&
           strcmp(e->key + cl + 1, key) == 0;
}

/* ev's key in memory, read from the store when it is not (NULL when neither has it). A key
 * found is the newest in the LRU list. */
static struct entry *find(struct lww *w, const struct event *ev)
{
    if (!ev->collection || !ev->key_text)
        return NULL;
    uint64_t h = hash_key(ev->collection, ev->key_text);
    for (struct entry *e = w->buckets[h & (w->nbuckets - 1)]; e; e = e->next)
        if (entry_is(e, h, ev->collection, ev->key_text)) {
            if (w->newest != e) {
                lru_unlink(w, e);
                lru_push(w, e);
            }
            return e;
        }
    return w->db ? lww_entry_load(w, ev->collection, ev->key_text, h) : NULL;
}

static void grow_table(struct lww *w)
{
    size_t n = w->nbuckets * 2;
    struct entry **b = calloc(n, sizeof(*b));
    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < w->nbuckets; i++) {
        struct entry *e = w->buckets[i];
        while (e) {
            struct entry *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(w->buckets);
    w->buckets = b;
    w->nbuckets = n;
}

/* A new entry for collection/key (no clocks yet), in the table and the LRU list; NULL when out
 * of memory. */
struct entry *lww_entry_insert(struct lww *w, const char *collection, const char *key, uint64_t h,
                               int32_t partition)
{
    size_t cl = strlen(collection), kl = strlen(key);
    struct entry *e = calloc(1, sizeof(*e) + cl + 1 + kl + 1);
    if (!e)
        return NULL;
    memcpy(e->key, collection, cl);
    e->key[cl] = 0x1f;
    memcpy(e->key + cl + 1, key, kl + 1);
    e->hash = h;
    e->partition = partition;
    e->del = NO_STAMP;
    size_t b = e->hash & (w->nbuckets - 1);
    e->next = w->buckets[b];
    w->buckets[b] = e;
    lru_push(w, e);
    w->nentries++;
    w->bytes += lww_held(e);
    if (w->nentries > w->nbuckets)
        grow_table(w);
    return e;
}

static struct entry *find_or_add(struct lww *w, const struct event *ev, int32_t partition)
{
    struct entry *e = find(w, ev);
    if (e || !ev->collection || !ev->key_text)
        return e;
    return lww_entry_insert(w, ev->collection, ev->key_text, hash_key(ev->collection, ev->key_text),
                            partition);
}

/* e changed: the next checkpoint writes it. -1 when out of memory (it stays in memory, clean:
 * the store keeps what it had). */
static int mark_dirty(struct lww *w, struct entry *e)
{
    if (e->dirty || !w->db)
        return 0;
    if (w->ndirty == w->capdirty) {
        size_t cap = w->capdirty ? w->capdirty * 2 : 256;
        struct entry **d = realloc(w->dirty, cap * sizeof(*d));
        if (!d)
            return -1;
        w->dirty = d;
        w->capdirty = cap;
    }
    w->dirty[w->ndirty++] = e;
    e->dirty = true;
    return 0;
}

/* The interned index of name, added when new; -1 when out of memory or too many names. */
int lww_intern(struct lww *w, const char *name)
{
    for (size_t i = 0; i < w->nfieldnames; i++)
        if (strcmp(w->fields[i], name) == 0)
            return (int)i;
    if (w->nfieldnames >= 0xffff)
        return -1;
    if (w->nfieldnames == w->capfieldnames) {
        size_t cap = w->capfieldnames ? w->capfieldnames * 2 : 16;
        char **f = realloc(w->fields, cap * sizeof(*f));
        if (!f)
            return -1;
        w->fields = f;
        w->capfieldnames = cap;
    }
    if (!(w->fields[w->nfieldnames] = strdup(name)))
        return -1;
    return (int)w->nfieldnames++;
}

static int lookup_name(const struct lww *w, const char *name)
{
    for (size_t i = 0; i < w->nfieldnames; i++)
        if (strcmp(w->fields[i], name) == 0)
            return (int)i;
    return -1;
}

static struct field *field_of(struct entry *e, int name)
{
    for (size_t i = 0; i < e->nfields; i++)
        if (e->fields[i].name == name)
            return &e->fields[i];
    return NULL;
}

/* Drops the stamps no field and no delete points at any more. */
static void compact_stamps(struct entry *e)
{
    uint8_t map[256];
    memset(map, NO_STAMP, sizeof(map));
    uint8_t n = 0;
    for (size_t i = 0; i < e->nstamps; i++) {
        bool used = e->del == i;
        for (size_t j = 0; !used && j < e->nfields; j++)
            used = e->fields[j].stamp == i;
        if (used) {
            e->stamps[n] = e->stamps[i];
            e->locs[n] = e->locs[i];
            map[i] = n++;
        }
    }
    for (size_t j = 0; j < e->nfields; j++)
        e->fields[j].stamp = map[e->fields[j].stamp];
    if (e->del != NO_STAMP)
        e->del = map[e->del];
    e->nstamps = n;
}

/* The index of s in e's stamps, added (read at *at) when new; NO_STAMP when out of memory. */
static uint8_t stamp_index(struct lww *w, struct entry *e, const struct lww_stamp *s,
                           const struct lww_where *at)
{
    for (uint8_t i = 0; i < e->nstamps; i++)
        if (lww_stamp_cmp(&e->stamps[i], s) == 0)
            return i;
    if (e->nstamps >= 2)
        compact_stamps(e);
    if (e->nstamps >= MAX_STAMPS)
        return NO_STAMP;
    if (e->nstamps == e->capstamps) {
        /* one at a time up to 4 (most keys have one to three), then doubling */
        int want = e->capstamps < 4 ? e->capstamps + 1 : e->capstamps * 2;
        uint8_t cap = (uint8_t)(want > MAX_STAMPS ? MAX_STAMPS : want);
        size_t was = lww_held(e->stamps) + lww_held(e->locs);
        struct lww_stamp *st = realloc(e->stamps, cap * sizeof(*st));
        if (st)
            e->stamps = st;
        int64_t *lc = st ? realloc(e->locs, cap * sizeof(*lc)) : NULL;
        if (lc)
            e->locs = lc;
        w->bytes += lww_held(e->stamps) + lww_held(e->locs) - was;
        if (!lc)
            return NO_STAMP;
        e->capstamps = cap;
    }
    e->stamps[e->nstamps] = *s;
    e->locs[e->nstamps] = at->offset;
    return e->nstamps++;
}

/* Records the write at s of field name: 1 when it is the newest now, 0 when a write as new was
 * known, -1 when out of memory. */
static int set_field(struct lww *w, struct entry *e, const char *name, const struct lww_stamp *s,
                     const struct lww_where *at)
{
    int n = lww_intern(w, name);
    if (n < 0)
        return -1;
    struct field *f = field_of(e, n);
    if (f && f->stamp != NO_STAMP && lww_stamp_cmp(&e->stamps[f->stamp], s) >= 0)
        return 0; /* it knows a write as new */
    uint8_t si = stamp_index(w, e, s, at);
    if (si == NO_STAMP)
        return -1;
    if (!f) {
        if (e->nfields == e->capfields) {
            /* six fit the smallest block malloc gives */
            uint16_t cap = e->capfields ? (uint16_t)(e->capfields * 2) : 6;
            size_t was = lww_held(e->fields);
            struct field *fs = realloc(e->fields, cap * sizeof(*fs));
            if (!fs)
                return -1;
            w->bytes += lww_held(fs) - was;
            e->fields = fs;
            e->capfields = cap;
        }
        f = &e->fields[e->nfields++];
        f->name = (uint16_t)n;
    }
    f->stamp = si;
    return 1;
}

int lww_observe(struct lww *w, const struct event *ev, const struct lww_where *at)
{
    struct entry *e = find_or_add(w, ev, at->partition);
    if (!e)
        return -1;
    bool changed = at->foreign && !e->foreign;
    if (at->foreign)
        e->foreign = true;
    struct lww_stamp s;
    lww_stamp_of(w, ev, &s);
    int rc = 0;
    if (ev->action == EVENT_DELETE) {
        if (e->del == NO_STAMP || lww_stamp_cmp(&e->stamps[e->del], &s) < 0) {
            uint8_t si = stamp_index(w, e, &s, at);
            if (si == NO_STAMP)
                rc = -1;
            else
                e->del = si;
            changed = true;
        }
    } else {
        const cJSON *members = ev->action == EVENT_UPDATE ? ev->delta : ev->data;
        for (const cJSON *f = members ? members->child : NULL; f; f = f->next) {
            int set = f->string ? set_field(w, e, f->string, &s, at) : 0;
            if (set < 0)
                rc = -1;
            changed |= set != 0;
        }
    }
    if (changed && mark_dirty(w, e))
        rc = -1;
    return rc;
}

/* ---- decisions ---- */

/* Whether s is the newest write e knows of the field name (or e knows none). */
static bool newest_of_field(const struct lww *w, struct entry *e, const char *name,
                            const struct lww_stamp *s)
{
    int n = lookup_name(w, name);
    struct field *f = n < 0 ? NULL : field_of(e, n);
    return !f || f->stamp == NO_STAMP || lww_stamp_cmp(&e->stamps[f->stamp], s) <= 0;
}

/* Whether the item lives: no delete, or a write newer than the newest delete. */
static bool alive(const struct entry *e)
{
    if (e->del == NO_STAMP)
        return true;
    for (size_t i = 0; i < e->nfields; i++) {
        const struct field *f = &e->fields[i];
        if (f->stamp != NO_STAMP && lww_stamp_cmp(&e->stamps[f->stamp], &e->stamps[e->del]) > 0)
            return true;
    }
    return false;
}

/* Whether the delete at s is newer than every write of e and the newest delete. */
static bool delete_wins(const struct entry *e, const struct lww_stamp *s)
{
    if (e->del != NO_STAMP && lww_stamp_cmp(&e->stamps[e->del], s) > 0)
        return false;
    for (size_t i = 0; i < e->nfields; i++) {
        const struct field *f = &e->fields[i];
        if (f->stamp != NO_STAMP && lww_stamp_cmp(&e->stamps[f->stamp], s) >= 0)
            return false;
    }
    return true;
}

enum lww_verdict lww_decide(struct lww *w, struct event *ev, bool local, bool pending)
{
    struct entry *e = find(w, ev);
    if (!e)
        return local ? LWW_SKIP : LWW_APPLY; /* never observed (out of memory): apply as before */
    struct lww_stamp s;
    lww_stamp_of(w, ev, &s);
    /* what is left to write may belong to a write older than the floor, which the clocks lack */
    int64_t floor = lww_floor(w, e->partition);
    bool old = floor != LWW_COMPLETE && s.us <= floor + w->margin_us;
    enum lww_verdict apply = old ? LWW_HISTORY : LWW_APPLY;
    if (local) {
        /* the remote holds its own writes; write one back only when this consumer may have
         * written over it (see the top of lww.h). Whether another instance wrote the key at all
         * is known only once the history older than the floor is. */
        int64_t commit_ms = s.us / 1000;
        bool maybe_over = (e->wrote_ms && e->wrote_ms >= commit_ms - LWW_REPAIR_MARGIN_MS) ||
                          (pending && e->foreign);
        if (!maybe_over && !(pending && old))
            return LWW_SKIP;
    }
    if (ev->action == EVENT_DELETE)
        return delete_wins(e, &s) ? apply : LWW_SKIP;
    if (!alive(e))
        return LWW_SKIP; /* the newest delete is newer than every write: the item is gone */
    cJSON *members = ev->action == EVENT_UPDATE ? ev->delta : ev->data;
    cJSON *f = members ? members->child : NULL;
    size_t kept = 0;
    while (f) {
        cJSON *next = f->next;
        if (f->string && newest_of_field(w, e, f->string, &s))
            kept++;
        else
            cJSON_Delete(cJSON_DetachItemViaPointer(members, f));
        f = next;
    }
    return kept ? apply : LWW_SKIP;
}

/* A member of ev's data whose newest write is another event, and where that was read. */
struct ref {
    const char *field;
    const char *source;
    int64_t offset;
};

#define REFILL_MAX 64

size_t lww_refill_data(struct lww *w, struct event *ev, lww_fetch_fn fetch, void *opaque,
                       size_t *unread)
{
    *unread = 0;
    struct entry *e = ev->action == EVENT_UPDATE ? find(w, ev) : NULL;
    if (!e || !ev->data)
        return 0;
    struct lww_stamp s;
    lww_stamp_of(w, ev, &s);
    struct ref refs[REFILL_MAX];
    size_t n = 0;
    for (const cJSON *m = ev->data->child; m && n < REFILL_MAX; m = m->next) {
        int name = m->string ? lookup_name(w, m->string) : -1;
        struct field *f = name < 0 ? NULL : field_of(e, name);
        if (!f || f->stamp == NO_STAMP || lww_stamp_cmp(&e->stamps[f->stamp], &s) == 0)
            continue; /* no write known, or this event's own */
        uint32_t src = e->stamps[f->stamp].src;
        refs[n++] = (struct ref){w->fields[name], src < w->nnames ? w->names[src] : NULL,
                                 e->locs[f->stamp]};
    }
    size_t replaced = 0;
    for (size_t i = 0; i < n; i++) {
        if (!refs[i].field)
            continue; /* taken with an earlier read of the same event */
        struct event src;
        if (!refs[i].source || fetch(opaque, refs[i].source, refs[i].offset, &src)) {
            (*unread)++;
            continue;
        }
        for (size_t j = i; j < n; j++) {
            if (!refs[j].field || refs[j].source != refs[i].source ||
                refs[j].offset != refs[i].offset)
                continue;
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(src.delta, refs[j].field);
            if (!v)
                v = cJSON_GetObjectItemCaseSensitive(src.data, refs[j].field);
            cJSON *dup = v ? cJSON_Duplicate(v, true) : NULL;
            /* the name is the table's (interned), not the member's being replaced */
            if (dup && cJSON_ReplaceItemInObjectCaseSensitive(ev->data, refs[j].field, dup))
                replaced++;
            else
                cJSON_Delete(dup);
            refs[j].field = NULL;
        }
        event_free(&src);
    }
    return replaced;
}

bool lww_claim(struct lww *w, const struct event *ev, const void *owner)
{
    struct entry *e = find(w, ev);
    if (!e)
        return true;
    if (e->owner && e->owner != owner)
        return false;
    e->owner = owner;
    return true;
}

bool lww_may_claim(struct lww *w, const struct event *ev, const void *owner)
{
    const struct entry *e = find(w, ev);
    return !e || !e->owner || e->owner == owner;
}

void lww_release(struct lww *w, const struct event *ev, const void *owner, bool written,
                 int64_t now_ms)
{
    struct entry *e = find(w, ev);
    if (!e)
        return;
    if (e->owner == owner)
        e->owner = NULL;
    if (written) {
        e->wrote_ms = now_ms > 0 ? now_ms : 1;
        mark_dirty(w, e); /* out of memory: the store keeps the older time */
    }
}

/* Takes e out of its bucket and frees it (it must not be in the dirty list any more). */
void lww_entry_evict(struct lww *w, struct entry *e)
{
    struct entry **pp = &w->buckets[e->hash & (w->nbuckets - 1)];
    while (*pp && *pp != e)
        pp = &(*pp)->next;
    if (*pp)
        *pp = e->next;
    entry_free(w, e);
}

void lww_drop_partition(struct lww *w, int32_t partition)
{
    size_t kept = 0;
    for (size_t i = 0; i < w->ndirty; i++)
        if (w->dirty[i]->partition != partition)
            w->dirty[kept++] = w->dirty[i];
    w->ndirty = kept;
    for (size_t i = 0; i < w->nbuckets; i++) {
        struct entry **pp = &w->buckets[i];
        while (*pp) {
            struct entry *e = *pp;
            if (e->partition == partition) {
                *pp = e->next;
                entry_free(w, e);
            } else {
                pp = &e->next;
            }
        }
    }
}

size_t lww_keys(const struct lww *w)
{
    return w->nentries;
}

size_t lww_bytes(const struct lww *w)
{
    return w->bytes + lww_held(w->buckets) + lww_held(w->dirty) + lww_held(w->floors);
}

size_t lww_dirty_bytes(const struct lww *w)
{
    return w->nentries ? w->ndirty * (w->bytes / w->nentries) : 0;
}

uint64_t lww_store_errors(const struct lww *w)
{
    return w->store_errors;
}
