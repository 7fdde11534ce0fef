/* notify_ledger: which offsets of <prefix>.errors may be stored (see notify.h). */
#include "notify.h"

#include <stdlib.h>
#include <string.h>

struct entry {
    int64_t offset;
    bool done;
};

struct part {
    int32_t partition;
    struct entry *e; /* read and not yet passed by the storable offset, in offset order */
    size_t head;     /* e[head..n) are live */
    size_t n;
    size_t cap;
    int64_t next;     /* one past the last offset read */
    int64_t reported; /* storable offset at the last notify_ledger_advanced */
};

struct notify_ledger {
    struct part *p;
    size_t n;
    size_t cap;
    size_t pending;
};

struct notify_ledger *notify_ledger_new(void)
{
    return calloc(1, sizeof(struct notify_ledger));
}

void notify_ledger_clear(struct notify_ledger *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->p[i].e);
    free(l->p);
    l->p = NULL;
    l->n = l->cap = 0;
    l->pending = 0;
}

void notify_ledger_free(struct notify_ledger *l)
{
    if (!l)
        return;
    notify_ledger_clear(l);
    free(l);
}

static struct part *find(const struct notify_ledger *l, int32_t partition)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->p[i].partition == partition)
            return &l->p[i];
    return NULL;
}

/* Drops the handled entries at the head: they are behind the storable offset. */
static void advance(struct part *p)
{
    while (p->head < p->n && p->e[p->head].done)
        p->head++;
    if (p->head == p->n) {
        p->head = p->n = 0;
    } else if (p->head > 64 && p->head * 2 > p->n) {
        memmove(p->e, p->e + p->head, (p->n - p->head) * sizeof(*p->e));
        p->n -= p->head;
        p->head = 0;
    }
}

int notify_ledger_read(struct notify_ledger *l, struct notify_pos pos)
{
    struct part *p = find(l, pos.partition);
    if (!p) {
        if (l->n == l->cap) {
            size_t cap = l->cap ? l->cap * 2 : 8;
            struct part *np = realloc(l->p, cap * sizeof(*np));
            if (!np)
                return -1;
            l->p = np;
            l->cap = cap;
        }
        p = &l->p[l->n++];
        memset(p, 0, sizeof(*p));
        p->partition = pos.partition;
        p->reported = pos.offset; /* where reading started: storing it again says nothing */
    }
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        struct entry *ne = realloc(p->e, cap * sizeof(*ne));
        if (!ne)
            return -1;
        p->e = ne;
        p->cap = cap;
    }
    p->e[p->n].offset = pos.offset;
    p->e[p->n].done = false;
    p->n++;
    l->pending++;
    if (pos.offset + 1 > p->next)
        p->next = pos.offset + 1;
    return 0;
}

void notify_ledger_done(struct notify_ledger *l, struct notify_pos pos)
{
    struct part *p = find(l, pos.partition);
    if (!p)
        return;
    size_t lo = p->head, hi = p->n;
    while (lo < hi) { /* offsets are increasing: binary search */
        size_t mid = lo + (hi - lo) / 2;
        if (p->e[mid].offset < pos.offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < p->n && p->e[lo].offset == pos.offset && !p->e[lo].done) {
        p->e[lo].done = true;
        l->pending--;
        advance(p);
    }
}

static int64_t storable(const struct part *p)
{
    return p->head < p->n ? p->e[p->head].offset : p->next;
}

int64_t notify_ledger_storable(const struct notify_ledger *l, int32_t partition)
{
    const struct part *p = find(l, partition);
    return p ? storable(p) : -1;
}

size_t notify_ledger_advanced(struct notify_ledger *l, struct notify_pos *out, size_t max)
{
    size_t k = 0;
    for (size_t i = 0; i < l->n && k < max; i++) {
        struct part *p = &l->p[i];
        int64_t s = storable(p);
        if (s > p->reported) {
            out[k].partition = p->partition;
            out[k].offset = s;
            k++;
            p->reported = s;
        }
    }
    return k;
}

size_t notify_ledger_pending(const struct notify_ledger *l)
{
    return l->pending;
}
