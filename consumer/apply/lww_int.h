/* lww_int.h: what lww.c (the rule, the table) and lww_store.c (the clocks' encoding in the
 * store, the cache's bound) share; no other module includes it. */
#ifndef DXSYNC_LWW_INT_H
#define DXSYNC_LWW_INT_H

#include "lww.h"
#include "util.h"

/* A field's clock: the name (interned) and which of the entry's stamps is its newest write. */
struct field {
    uint16_t name;
    uint8_t stamp;
};

#define NO_STAMP   0xff
#define MAX_STAMPS 250 /* distinct stamps an entry keeps before unused ones are dropped */

struct entry {
    struct entry *next;          /* in its bucket */
    struct entry *older, *newer; /* in the LRU list */
    uint64_t hash;
    const void *owner;
    int64_t wrote_ms; /* wall clock of this consumer's last write of the key; 0 none */
    int32_t partition;
    bool foreign; /* a write from another instance is known */
    bool dirty;   /* changed since the store last had it */
    uint8_t del;  /* index of the newest delete's stamp, or NO_STAMP */
    uint8_t nstamps, capstamps;
    uint16_t nfields, capfields;
    struct lww_stamp *stamps;
    int64_t *locs; /* locs[i]: the offset stamps[i]'s event was read at */
    struct field *fields;
    char key[]; /* "<collection>\x1f<key>" */
};

struct lww {
    char **names; /* instance names, sorted: a source's rank is its index */
    size_t nnames;
    struct entry **buckets;
    size_t nbuckets; /* power of two */
    size_t nentries;
    size_t bytes;
    char **fields; /* interned field names */
    size_t nfieldnames, capfieldnames;
    struct entry *newest, *oldest; /* the LRU list */
    struct entry **dirty;          /* the dirty entries */
    size_t ndirty, capdirty;
    struct clockdb *db; /* or NULL: every key stays in memory */
    size_t cache_bytes;
    int64_t margin_us;
    int64_t *floors; /* per partition number; LWW_COMPLETE beyond nfloors */
    size_t nfloors;
    uint64_t store_errors;
    struct util_buf enc; /* an entry's encoding, reused */
};

/* What an allocation takes from the heap: what malloc gave plus its chunk header. */
size_t lww_held(const void *p);
/* A new entry for collection/key (no clocks yet), in the table and the LRU list (hash h); NULL
 * when out of memory. */
struct entry *lww_entry_insert(struct lww *w, const char *collection, const char *key, uint64_t h,
                               int32_t partition);
/* Takes e out of its bucket and frees it (it must not be in the dirty list any more). */
void lww_entry_evict(struct lww *w, struct entry *e);
/* The interned index of name, added when new; -1 when out of memory or too many names. */
int lww_intern(struct lww *w, const char *name);
/* collection/key read from the store into the table (lww_store.c), or NULL when the store does
 * not have it (or cannot give it back: counted in store_errors). */
struct entry *lww_entry_load(struct lww *w, const char *collection, const char *key, uint64_t h);

#endif
