/* routes: what one remote receives, resolved from the configuration (pure, no I/O). */
#ifndef DXSYNC_ROUTES_H
#define DXSYNC_ROUTES_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>

struct routes_sub {
    char topic[256];                      /* <prefix>.<source>.<collection> */
    const struct config_route *route;     /* points into the config */
    const struct config_collection *coll; /* points into the config, or to own */
    /* The remote's own topic of a collection it receives (its instance publishes it too): its
     * events are the remote's local edits, read to know when they were made (lww.h), never
     * applied except as a repair. route is a route from the remote; coll is own, every field
     * some route into the remote carries for the collection. */
    bool local;
    struct config_collection own; /* own.fields is malloc'd; its strings are the config's */
};

/* Every topic the consumer of `remote` reads, one per (route into remote, collection), in
 * configuration order. *subs is malloc'd (free()); it points into cfg, which must outlive it.
 * Returns 0 (possibly with *n == 0), or -1 with err set. */
int routes_into(const struct config *cfg, const char *remote, struct routes_sub **subs, size_t *n,
                char *err, size_t errlen);

/* Appends to *subs (n of them, from routes_into) the remote's own topics: one per collection
 * the remote receives and also publishes (a route from it carries the collection). Free the
 * whole array with routes_free. Returns 0, or -1 with err set (*subs unchanged). */
int routes_add_own(const struct config *cfg, const char *remote, struct routes_sub **subs,
                   size_t *n, char *err, size_t errlen);
void routes_free(struct routes_sub *subs, size_t n);

/* The subscription of topic, or NULL. */
const struct routes_sub *routes_find(const struct routes_sub *subs, size_t n, const char *topic);
/* The subscription of source's topic of collection (the remote's own when source is the
 * remote), or NULL. */
const struct routes_sub *routes_of(const struct routes_sub *subs, size_t n, const char *source,
                                   const char *collection);
/* Whether remote reads other topics under next than subs (n of them) (true also when next
 * cannot be resolved). */
bool routes_differ(const struct config *next, const char *remote, const struct routes_sub *subs,
                   size_t n);

#endif
