#include "routes.h"

#include "kafka.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int routes_into(const struct config *cfg, const char *remote, struct routes_sub **subs, size_t *n,
                char *err, size_t errlen)
{
    size_t total = 0;
    for (size_t i = 0; i < cfg->nroutes; i++)
        if (strcmp(cfg->routes[i].to, remote) == 0)
            total += cfg->routes[i].ncollections;
    *subs = NULL;
    *n = 0;
    if (total == 0)
        return 0;
    struct routes_sub *s = calloc(total, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct config_route *r = &cfg->routes[i];
        if (strcmp(r->to, remote) != 0)
            continue;
        for (size_t j = 0; j < r->ncollections; j++, k++) {
            s[k].route = r;
            s[k].coll = &r->collections[j];
            if (kafka_topic_sync(cfg, r->from, r->collections[j].collection, s[k].topic,
                                 sizeof(s[k].topic))) {
                snprintf(err, errlen, "topic name for %s.%s is too long", r->from,
                         r->collections[j].collection);
                free(s);
                return -1;
            }
        }
    }
    *subs = s;
    *n = total;
    return 0;
}

const struct routes_sub *routes_find(const struct routes_sub *subs, size_t n, const char *topic)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(subs[i].topic, topic) == 0)
            return &subs[i];
    return NULL;
}

/* The route from remote that carries collection, or NULL. */
static const struct config_route *route_from(const struct config *cfg, const char *remote,
                                             const char *collection)
{
    for (size_t i = 0; i < cfg->nroutes; i++)
        if (strcmp(cfg->routes[i].from, remote) == 0 &&
            config_route_collection(&cfg->routes[i], collection))
            return &cfg->routes[i];
    return NULL;
}

/* Adds every field routes into remote carry for own->collection to own (no duplicates). */
static int merge_fields(const struct config *cfg, const char *remote, struct config_collection *own)
{
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct config_route *r = &cfg->routes[i];
        const struct config_collection *c =
            strcmp(r->to, remote) == 0 ? config_route_collection(r, own->collection) : NULL;
        for (size_t j = 0; c && j < c->nfields; j++) {
            bool have = false;
            for (size_t k = 0; k < own->nfields && !have; k++)
                have = strcmp(own->fields[k], c->fields[j]) == 0;
            if (have)
                continue;
            char **f = realloc(own->fields, (own->nfields + 1) * sizeof(*f));
            if (!f)
                return -1;
            own->fields = f;
            own->fields[own->nfields++] = c->fields[j];
        }
    }
    return 0;
}

int routes_add_own(const struct config *cfg, const char *remote, struct routes_sub **subs,
                   size_t *n, char *err, size_t errlen)
{
    size_t k = *n;
    struct routes_sub *s = *subs;
    for (size_t i = 0; i < *n; i++) {
        const char *coll = s[i].coll->collection; /* s, not *subs: s moves as it grows */
        const struct config_route *from = route_from(cfg, remote, coll);
        bool seen = false;
        for (size_t j = *n; j < k && !seen; j++)
            seen = strcmp(s[j].own.collection, coll) == 0;
        if (!from || seen)
            continue;
        struct routes_sub *ns = realloc(s, (k + 1) * sizeof(*ns));
        if (!ns)
            goto oom;
        s = ns;
        struct routes_sub *o = &s[k];
        memset(o, 0, sizeof(*o));
        o->route = from;
        o->local = true;
        o->own.collection = (char *)coll;
        k++;
        if (merge_fields(cfg, remote, &o->own))
            goto oom;
        if (kafka_topic_sync(cfg, remote, coll, o->topic, sizeof(o->topic))) {
            snprintf(err, errlen, "topic name for %s.%s is too long", remote, coll);
            routes_free(s, k);
            *subs = NULL;
            *n = 0;
            return -1;
        }
    }
    for (size_t i = *n; i < k; i++)
        s[i].coll = &s[i].own; /* only now: the array moved while it grew */
    *subs = s;
    *n = k;
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    routes_free(s, k);
    *subs = NULL;
    *n = 0;
    return -1;
}

void routes_free(struct routes_sub *subs, size_t n)
{
    for (size_t i = 0; subs && i < n; i++)
        free(subs[i].own.fields);
    free(subs);
}

const struct routes_sub *routes_of(const struct routes_sub *subs, size_t n, const char *source,
                                   const char *collection)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(subs[i].route->from, source) == 0 &&
            strcmp(subs[i].coll->collection, collection) == 0)
            return &subs[i];
    return NULL;
}

bool routes_differ(const struct config *next, const char *remote, const struct routes_sub *subs,
                   size_t n)
{
    struct routes_sub *ns = NULL;
    size_t nn = 0;
    char err[256];
    if (routes_into(next, remote, &ns, &nn, err, sizeof(err)))
        return true;
    size_t nin = nn;
    if (nin && routes_add_own(next, remote, &ns, &nn, err, sizeof(err))) {
        routes_free(ns, nin);
        return true;
    }
    bool differ = nn != n;
    for (size_t i = 0; !differ && i < nn; i++)
        differ = !routes_find(subs, n, ns[i].topic);
    routes_free(ns, nn);
    return differ;
}
