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
