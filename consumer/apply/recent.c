#include "recent.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash_key(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a, then a final mix */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

#define GEN_MIN_CAP 16

/* A generation's table starts at GEN_MIN_CAP slots and doubles while it is more than half full,
 * up to the first power of two above 2 * per_gen: an idle partition's keeps 512 bytes, a busy
 * one's grows to what it holds (with 4,096 keys per generation, 128 KiB and the keys). */
static int gen_init(struct recent_gen *g, size_t cap)
{
    g->keys = calloc(cap, sizeof(*g->keys));
    g->ids = calloc(cap, sizeof(*g->ids));
    g->cap = cap;
    g->len = 0;
    if (!g->keys || !g->ids) {
        free(g->keys);
        free(g->ids);
        memset(g, 0, sizeof(*g));
        return -1;
    }
    return 0;
}

static void gen_free(struct recent_gen *g)
{
    for (size_t i = 0; g->keys && i < g->cap; i++)
        free(g->keys[i]);
    free(g->keys);
    free(g->ids);
    memset(g, 0, sizeof(*g));
}

/* The slot of key, or of the free slot where it would go. */
static size_t gen_slot(const struct recent_gen *g, const char *key)
{
    size_t i = (size_t)(hash_key(key) & (g->cap - 1));
    while (g->keys[i] && strcmp(g->keys[i], key) != 0)
        i = (i + 1) & (g->cap - 1);
    return i;
}

/* Doubles g's table (rehashing its keys); false when out of memory (g unchanged). */
static bool gen_grow(struct recent_gen *g)
{
    struct recent_gen n;
    if (gen_init(&n, g->cap * 2))
        return false;
    for (size_t i = 0; i < g->cap; i++)
        if (g->keys[i]) {
            size_t j = gen_slot(&n, g->keys[i]);
            n.keys[j] = g->keys[i];
            n.ids[j] = g->ids[i];
        }
    n.len = g->len;
    free(g->keys);
    free(g->ids);
    *g = n;
    return true;
}

int recent_init(struct recent *r, size_t per_gen)
{
    memset(r, 0, sizeof(*r));
    r->per_gen = per_gen ? per_gen : 1;
    r->max_cap = GEN_MIN_CAP;
    while (r->max_cap < r->per_gen * 2)
        r->max_cap *= 2;
    if (gen_init(&r->gen[0], GEN_MIN_CAP) || gen_init(&r->gen[1], GEN_MIN_CAP)) {
        recent_free(r);
        return -1;
    }
    return 0;
}

void recent_free(struct recent *r)
{
    gen_free(&r->gen[0]);
    gen_free(&r->gen[1]);
}

bool recent_stale(struct recent *r, const char *key, int64_t id)
{
    struct recent_gen *cur = &r->gen[r->cur], *old = &r->gen[1 - r->cur];
    if (!cur->keys)
        return false;
    size_t i = gen_slot(cur, key);
    if (cur->keys[i]) {
        if (id <= cur->ids[i])
            return true;
        cur->ids[i] = id;
        return false;
    }
    if (old->keys) {
        size_t j = gen_slot(old, key);
        if (old->keys[j] && id <= old->ids[j])
            return true;
    }
    if (cur->len >= r->per_gen) {
        /* rotate: the old generation is forgotten (its table back to the smallest), the current
         * one becomes old */
        struct recent_gen fresh;
        if (gen_init(&fresh, GEN_MIN_CAP))
            return false;
        gen_free(old);
        *old = fresh;
        r->cur = 1 - r->cur;
        cur = &r->gen[r->cur];
        i = gen_slot(cur, key);
    } else if ((cur->len + 1) * 2 > cur->cap && cur->cap < r->max_cap && gen_grow(cur)) {
        i = gen_slot(cur, key);
    }
    if (cur->len + 1 >= cur->cap)
        return false; /* it could not grow: one slot stays free, so lookups end */
    char *copy = strdup(key);
    if (!copy)
        return false;
    cur->keys[i] = copy;
    cur->ids[i] = id;
    cur->len++;
    return false;
}
