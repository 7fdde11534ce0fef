/* plan: turns one partition's pending events into batches and the bodies Directus is sent
 * (pure: no I/O, no clock). Events of one partition all belong to one topic, hence to one
 * source and one collection. */
#ifndef DXSYNC_PLAN_H
#define DXSYNC_PLAN_H

#include "config.h"
#include "event.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

/* Upserts (create, snapshot, update) can share a batch; deletes go in batches of their own. */
enum plan_kind { PLAN_UPSERT = 0, PLAN_DELETE };

enum plan_kind plan_kind_of(enum event_action action);

/* Picks the next batch from evs[0..n), which are in offset order. NULL entries are events that
 * need no request (already settled, malformed, skipped) and are stepped over. The batch starts
 * at the first non-NULL entry and takes the following ones while they are of the same kind,
 * their key is not already in the batch (never two events of one key in one request, never a
 * key reordered) and the batch holds fewer than batch_max. Writes the chosen indices into
 * out_idx (room for batch_max) and returns how many; 0 when evs holds nothing to plan. */
size_t plan_next(const struct event *const *evs, size_t n, size_t batch_max, size_t *out_idx);

/* Whether the event writes anything on the remote: an update that names no routed field (nor a
 * file's content field) in delta does not (it is skipped); every other action does. */
bool plan_touches(const struct event *ev, const struct config_collection *coll);

/* Whether ev brings a file's bytes (directus.h): a create or snapshot of DIRECTUS_FILES, or an
 * update whose delta names a content field (an upload replaced the file). Such an event is
 * applied by a transfer (fileop.h), not by an item request. */
bool plan_file_content(const struct event *ev, const struct config_collection *coll);

/* Drops from ev->data and ev->delta every member that is not a routed field (a file's content
 * fields stay: the consumer reads them), once plan_touches
 * has been asked: nothing later reads them, and a queued event then holds only what it writes. */
void plan_prune(struct event *ev, const struct config_collection *coll);

enum plan_body {
    PLAN_BODY_FULL, /* pk + every routed field present in data (create, snapshot, upsert) */
    PLAN_BODY_DELTA /* pk + the routed fields named in delta, with their values from data */
};

/* The object written for ev: the primary key under `pk` (from ev->key) and the routed fields.
 * The caller owns the result (cJSON_Delete). NULL when out of memory. */
cJSON *plan_body(const struct event *ev, const struct config_collection *coll, const char *pk,
                 enum plan_body mode);

/* Size of the first half when a failed group of n items (n >= 2) is split. */
size_t plan_split(size_t n);

/* A set of key texts (open addressing), to find repeated keys and match answers to items.
 * The strings are not copied: they must outlive the set. */
struct plan_keyset {
    const char **slots;
    size_t *values;
    size_t cap;
    size_t len;
};

/* Room for at least n keys. Returns 0 or -1 (out of memory). Free with plan_keyset_free. */
int plan_keyset_init(struct plan_keyset *s, size_t n);
void plan_keyset_free(struct plan_keyset *s);
void plan_keyset_clear(struct plan_keyset *s);
/* Adds key with a value; returns false (and changes nothing) when the key is already there or
 * the set is full. */
bool plan_keyset_add(struct plan_keyset *s, const char *key, size_t value);
/* Finds key; stores its value in *value when found. */
bool plan_keyset_find(const struct plan_keyset *s, const char *key, size_t *value);

#endif
