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

static int gen_init(struct recent_gen *g, size_t per_gen)
{
    size_t cap = 16;
    while (cap < per_gen * 2)
        cap *= 2;
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

static void gen_clear(struct recent_gen *g)
{
    for (size_t i = 0; i < g->cap; i++) {
        free(g->keys[i]);
        g->keys[i] = NULL;
    }
    g->len = 0;
}

static void gen_free(struct recent_gen *g)
{
    if (g->keys)
        gen_clear(g);
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

int recent_init(struct recent *r, size_t per_gen)
{
    memset(r, 0, sizeof(*r));
    r->per_gen = per_gen ? per_gen : 1;
    if (gen_init(&r->gen[0], r->per_gen) || gen_init(&r->gen[1], r->per_gen)) {
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
        /* rotate: the old generation is forgotten, the current one becomes old */
        gen_clear(old);
        r->cur = 1 - r->cur;
        cur = &r->gen[r->cur];
        i = gen_slot(cur, key);
    }
    char *copy = strdup(key);
    if (!copy)
        return false;
    cur->keys[i] = copy;
    cur->ids[i] = id;
    cur->len++;
    return false;
}
