/* apply: one batch of one partition → the Directus requests that make the remote hold it, as a
 * state machine fed with the answers (pure: the caller sends each request, keeps the clock and
 * waits the delays it is told).
 *
 * The common case is one request per batch: POST the creates (and snapshots), PATCH the
 * updates, DELETE the deletes, each as one array. A POST asks for the stored items back
 * (fields=*): a routed field written with a value that an answered item lacks is named in the
 * item's `dropped` (the remote's collection may have lost the field since its list was read). When
 * Directus answers 403 (a missing item, for a non-admin), 400 RECORD_NOT_UNIQUE (an existing item)
 * or a batch PATCH lists fewer items than it was sent (an admin), the batch asks which keys exist
 * (SEARCH with an _in filter) and re-plans: missing → POST with every routed field, existing →
 * PATCH, deletes only of existing keys. A group that still fails is split in halves until the
 * failing item is isolated; the rest is applied.
 *
 * Answers are read by directus.h: an outage (directus_is_outage) retries the same request
 * forever with backoff; a 5xx is an outage when GET /server/ping fails too, else the item's
 * fault (directus_fault_after_5xx: an isolated item is tried item_attempts times, then fails);
 * any other 4xx, and 403/RECORD_NOT_UNIQUE after the fallback, fail the isolated item for
 * good. A 400 INVALID_FOREIGN_KEY names the field and the key it points at: the items of the
 * group holding that value fail at once (no halving), the rest is sent again; the caller
 * decides what such an item's failure means (its parent may still come: dispatch.h). A 2xx that is
 * not Directus's JSON is an outage, except to a write, whose keys are then asked for. */
#ifndef DXSYNC_APPLY_H
#define DXSYNC_APPLY_H

#include "backoff.h"
#include "config.h"
#include "event.h"
#include "http.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct apply_params {
    const char *collection;               /* the remote collection */
    const struct config_collection *coll; /* routed fields */
    const char *pk;                       /* primary key field, or NULL to learn it first */
    int item_attempts;                    /* attempts of an isolated item failing with a 5xx */
    uint64_t seed;                        /* backoff jitter */
};

enum apply_item_state { APPLY_PENDING = 0, APPLY_APPLIED, APPLY_FAILED };

struct apply_item {
    const struct event *ev; /* not owned */
    enum apply_item_state state;
    int attempts;      /* write requests that carried it */
    int item_failures; /* 5xx answers it got alone while the remote was up */
    /* APPLY_FAILED: why */
    long status; /* HTTP status, 0 when there was no usable answer */
    char code[64];
    char message[512];
    char field[64];  /* the field the refusal names (INVALID_FOREIGN_KEY), or "" */
    char value[128]; /* and the key it points at, or "" */
    /* APPLY_APPLIED by a POST: a routed field it wrote with a value (not null) that the answer
     * does not hold (a name of the config's field list), or NULL. Directus stores an item without
     * a field its collection lacks, without a word: the caller asks the field list again. */
    const char *dropped;
};

enum apply_step {
    APPLY_STEP_FIELDS = 0, /* GET /fields/<c>: learn the primary key */
    APPLY_STEP_POST,
    APPLY_STEP_PATCH,
    APPLY_STEP_DELETE,
    APPLY_STEP_RESOLVE, /* SEARCH /items/<c>: which keys exist */
    APPLY_STEP_PING     /* GET /server/ping: outage or the item's fault? */
};

const char *apply_step_name(enum apply_step step);

struct apply_request {
    enum apply_step step;
    const char *method;
    const char *path; /* owned by the batch, valid until the next apply_batch_* call */
    const char *body; /* idem; NULL when none */
    size_t nitems;    /* events the request carries */
};

/* Retry schedule of a batch while the remote is down: 200 ms doubling to 10 s, with jitter
 * (backoff.h). */
#define APPLY_BACKOFF_BASE_MS 200
#define APPLY_BACKOFF_MAX_MS  10000
/* Retry schedule of one item that got a 5xx while the remote answers its ping: 1 s doubling, so
 * the default 5 attempts span 7.5 to 15 s. A remote whose database just restarted answers 500
 * on its stale pooled connections for a moment; that must not send changes to the DLQ. */
#define APPLY_ITEM_BACKOFF_BASE_MS 1000

/* How often a batch asks which keys exist while the answers keep contradicting it: a create
 * meets a duplicate key, or an update of a key the remote just listed is refused (a person on
 * the remote created or deleted it in between). */
#define APPLY_DUPLICATE_RESOLVES 3

enum apply_verdict {
    APPLY_NEXT,         /* send the next request (apply_batch_next) now */
    APPLY_RETRY_OUTAGE, /* the remote is unavailable: wait *delay_ms, then the next request */
    APPLY_RETRY_ITEM,   /* an item failed on a remote that is up: wait *delay_ms, then retry */
    APPLY_DONE          /* every item has its outcome */
};

struct apply_group {
    enum apply_step step; /* POST, PATCH, DELETE or RESOLVE */
    size_t *idx;          /* indices into items */
    size_t n;
    int resolved; /* times existence was asked: a 403 or a duplicate fails for good after
                   * APPLY_DUPLICATE_RESOLVES */
};

struct apply_batch {
    struct apply_params p;
    char pk[128];
    bool pk_learnt;  /* pk came from GET /fields: the caller may keep it */
    bool pk_guessed; /* GET /fields did not say: "id" is assumed */
    struct apply_item *items;
    size_t nitems;
    struct apply_group *groups; /* groups[0] is the next one */
    size_t ngroups;
    size_t capgroups;
    bool need_fields;
    bool need_ping;
    int fields_failures; /* 5xx answers to GET /fields */
    enum apply_step sent;
    struct backoff backoff;
    struct backoff item_backoff; /* schedule of an item's 5xx retries (backoff_at its count) */
    /* the last failing answer of groups[0], kept while pinging */
    long last_status;
    char last_code[64];
    char last_message[512];
    char *path;
    char *body;
};

/* Takes n >= 1 events (all of one collection, distinct keys; not owned, they must outlive the
 * batch). Returns 0, or -1 when out of memory. Free with apply_batch_free. */
int apply_batch_init(struct apply_batch *b, const struct apply_params *p,
                     const struct event *const *evs, size_t n);
void apply_batch_free(struct apply_batch *b);

/* The next request. Returns 1 with *req filled, 0 when every item has its outcome, -1 when
 * out of memory (try again later). */
int apply_batch_next(struct apply_batch *b, struct apply_request *req);

/* The items the next request POSTs although their event is an update: the item is missing on
 * the remote, so it is created from the event's data, which holds the other fields as the
 * event's source had them (the caller first puts their newest writes in, lww_refill_data).
 * Writes up to max indexes into b->items and returns how many. */
size_t apply_batch_recreates(const struct apply_batch *b, size_t *idx, size_t max);

/* Feeds the answer to the request apply_batch_next gave last. *delay_ms is set for the retry
 * verdicts. */
enum apply_verdict apply_batch_answer(struct apply_batch *b, const struct http_response *r,
                                      int64_t *delay_ms);

/* Whether every item has its outcome. */
bool apply_batch_done(const struct apply_batch *b);

#endif
