/* routes: what one remote receives, resolved from the configuration (pure, no I/O). */
#ifndef DXSYNC_ROUTES_H
#define DXSYNC_ROUTES_H

#include "config.h"

#include <stddef.h>

struct routes_sub {
    char topic[256];                      /* <prefix>.<source>.<collection> */
    const struct config_route *route;     /* points into the config */
    const struct config_collection *coll; /* points into the config */
};

/* Every topic the consumer of `remote` reads, one per (route into remote, collection), in
 * configuration order. *subs is malloc'd (free()); it points into cfg, which must outlive it.
 * Returns 0 (possibly with *n == 0), or -1 with err set. */
int routes_into(const struct config *cfg, const char *remote, struct routes_sub **subs, size_t *n,
                char *err, size_t errlen);

/* The subscription of topic, or NULL. */
const struct routes_sub *routes_find(const struct routes_sub *subs, size_t n, const char *topic);

#endif
