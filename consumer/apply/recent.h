/* recent: the newest activity_id seen per key for the last few thousand keys of one partition
 * (pure, no I/O). A producer that restarts resends from its last confirmed LSN, so events the
 * consumer already has come again; one older than what is known for its key is skipped instead
 * of moving the item back for a while. Two generations keep memory bounded: when the current
 * one is full it becomes the old one and the previous old one is dropped. A generation's table
 * grows with the keys it holds (an idle partition's takes 512 bytes). */
#ifndef DXSYNC_RECENT_H
#define DXSYNC_RECENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct recent_gen {
    char **keys; /* owned copies; NULL slots are free */
    int64_t *ids;
    size_t cap; /* power of two */
    size_t len;
};

struct recent {
    struct recent_gen gen[2];
    size_t cur;     /* index of the current generation */
    size_t per_gen; /* keys per generation before it rotates */
    size_t max_cap; /* the largest table a generation grows to (a power of two >= 2 * per_gen) */
};

/* Remembers up to 2 * per_gen keys. Returns 0, or -1 when out of memory. */
int recent_init(struct recent *r, size_t per_gen);
void recent_free(struct recent *r);

/* True when key was already seen with an activity id >= id: the event is stale. Otherwise
 * records id for key and returns false (also when out of memory: nothing is skipped then). */
bool recent_stale(struct recent *r, const char *key, int64_t id);

#endif
