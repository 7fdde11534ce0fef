/* notify_digest: folding error events of one route and code within a window (see notify.h). */
#include "notify.h"

#include <stdlib.h>
#include <string.h>

struct notify_digest {
    int64_t window_ms;
    struct notify_group *head, *tail; /* open groups, in the order they were opened */
    size_t ngroups;
    size_t nevents;
};

static bool same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

void notify_group_free(struct notify_group *g)
{
    if (!g)
        return;
    free(g->source);
    free(g->remote);
    free(g->code);
    for (size_t i = 0; i < g->nfirst; i++)
        error_event_free(&g->first[i]);
    free(g->last_timestamp);
    for (size_t i = 0; i < g->ncollections; i++)
        free(g->collections[i].name);
    free(g->pos);
    free(g);
}

struct notify_digest *notify_digest_new(int64_t window_ms)
{
    struct notify_digest *d = calloc(1, sizeof(*d));
    if (d)
        d->window_ms = window_ms > 0 ? window_ms : 0;
    return d;
}

void notify_digest_clear(struct notify_digest *d)
{
    struct notify_group *g = d->head;
    while (g) {
        struct notify_group *next = g->next;
        notify_group_free(g);
        g = next;
    }
    d->head = d->tail = NULL;
    d->ngroups = 0;
    d->nevents = 0;
}

void notify_digest_free(struct notify_digest *d)
{
    if (!d)
        return;
    notify_digest_clear(d);
    free(d);
}

static struct notify_group *find_open(struct notify_digest *d, const struct error_event *ev,
                                      int64_t now_ms)
{
    if (ev->kind != ERROR_APPLY_FAILED || d->window_ms == 0)
        return NULL;
    const char *code = ev->code ? ev->code : "";
    for (struct notify_group *g = d->head; g; g = g->next)
        if (g->kind == ERROR_APPLY_FAILED && now_ms < g->due_ms &&
            strcmp(g->source, ev->source) == 0 && strcmp(g->remote, ev->remote) == 0 &&
            strcmp(g->code, code) == 0)
            return g;
    return NULL;
}

static struct notify_group *open_group(struct notify_digest *d, const struct error_event *ev,
                                       int64_t now_ms)
{
    struct notify_group *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->kind = ev->kind;
    g->source = strdup(ev->source);
    g->remote = strdup(ev->remote);
    g->code = strdup(ev->code ? ev->code : "");
    if (!g->source || !g->remote || !g->code) {
        notify_group_free(g);
        return NULL;
    }
    g->opened_ms = now_ms;
    g->due_ms = ev->kind == ERROR_APPLY_FAILED ? now_ms + d->window_ms : now_ms;
    g->one_collection = g->one_key = g->one_status = true;
    if (d->tail)
        d->tail->next = g;
    else
        d->head = g;
    d->tail = g;
    d->ngroups++;
    return g;
}

static int tally(struct notify_group *g, const char *collection)
{
    if (!collection)
        return 0;
    for (size_t i = 0; i < g->ncollections; i++) {
        if (strcmp(g->collections[i].name, collection) == 0) {
            g->collections[i].count++;
            return 0;
        }
    }
    if (g->ncollections == NOTIFY_DIGEST_COLLECTIONS) {
        g->other_collections++;
        return 0;
    }
    char *name = strdup(collection);
    if (!name)
        return -1;
    g->collections[g->ncollections].name = name;
    g->collections[g->ncollections].count = 1;
    g->ncollections++;
    return 0;
}

static int fold(struct notify_group *g, struct error_event *ev, struct notify_pos pos)
{
    if (g->npos == g->cappos) {
        size_t cap = g->cappos ? g->cappos * 2 : 4;
        struct notify_pos *p = realloc(g->pos, cap * sizeof(*p));
        if (!p)
            return -1;
        g->pos = p;
        g->cappos = cap;
    }
    char *ts = ev->timestamp ? strdup(ev->timestamp) : NULL;
    if ((ev->timestamp && !ts) || tally(g, ev->collection)) {
        free(ts);
        return -1;
    }
    g->pos[g->npos++] = pos;
    free(g->last_timestamp);
    g->last_timestamp = ts;
    if (g->count > 0) {
        const struct error_event *f = &g->first[0];
        g->one_collection = g->one_collection && same(f->collection, ev->collection);
        g->one_key = g->one_key && g->one_collection && same(f->key, ev->key);
        g->one_status = g->one_status && f->status == ev->status;
    }
    g->count++;
    if (g->nfirst < NOTIFY_DIGEST_LIST) {
        g->first[g->nfirst++] = *ev;
        memset(ev, 0, sizeof(*ev));
    }
    return 0;
}

long notify_digest_add(struct notify_digest *d, struct error_event *ev, struct notify_pos pos,
                       int64_t now_ms)
{
    long rc = -1;
    struct notify_group *g = find_open(d, ev, now_ms);
    if (!g)
        g = open_group(d, ev, now_ms);
    if (g && fold(g, ev, pos) == 0) {
        d->nevents++;
        rc = (long)g->count;
    }
    error_event_free(ev);
    return rc;
}

int64_t notify_digest_next_due(const struct notify_digest *d)
{
    int64_t due = INT64_MAX;
    for (const struct notify_group *g = d->head; g; g = g->next)
        if (g->due_ms < due)
            due = g->due_ms;
    return due;
}

struct notify_group *notify_digest_take(struct notify_digest *d, int64_t now_ms)
{
    struct notify_group *best = NULL, *best_prev = NULL, *prev = NULL;
    for (struct notify_group *g = d->head; g; prev = g, g = g->next) {
        if (g->due_ms <= now_ms && (!best || g->due_ms < best->due_ms)) {
            best = g;
            best_prev = prev;
        }
    }
    if (!best)
        return NULL;
    if (best_prev)
        best_prev->next = best->next;
    else
        d->head = best->next;
    if (d->tail == best)
        d->tail = best_prev;
    best->next = NULL;
    d->ngroups--;
    d->nevents -= best->npos;
    return best;
}

size_t notify_digest_groups(const struct notify_digest *d)
{
    return d->ngroups;
}

size_t notify_digest_events(const struct notify_digest *d)
{
    return d->nevents;
}
