/* remote: what the consumer knows of its remote Directus: per collection the primary key and
 * the field list (to tell a routed field the remote lacks), and whether the remote answers.
 * No I/O of its own: a field list is refreshed by a request the dispatcher sends when
 * remote_refresh_due names a collection, and whose answer it hands to remote_fields_answer. */
#ifndef DXSYNC_REMOTE_H
#define DXSYNC_REMOTE_H

#include "directus.h"
#include "event.h"
#include "http.h"
#include "metrics.h"
#include "routes.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Retry schedule of a field list request that got no usable answer (an outage). */
#define REMOTE_FIELDS_RETRY_MIN_MS 500
#define REMOTE_FIELDS_RETRY_MAX_MS 10000

enum remote_fields_state {
    REMOTE_FIELDS_UNKNOWN = 0, /* not read yet: events wait for it */
    REMOTE_FIELDS_KNOWN,       /* read at fields_at_ms */
    REMOTE_FIELDS_UNAVAILABLE  /* the remote refused to list them: events are not checked */
};

struct remote_coll {
    const char *collection;        /* borrowed from the config */
    char pk[128];                  /* "" while unknown */
    struct directus_fields fields; /* owned; empty while not KNOWN */
    enum remote_fields_state state;
    int64_t fields_at_ms; /* when the list was read */
    bool want;            /* a refresh is wanted */
    bool asking;          /* its request is out */
    int64_t ask_after_ms; /* no request before this (retry backoff) */
    int64_t retry_ms;     /* the next retry delay */
};

struct remote {
    const char *name;
    struct remote_coll *colls;
    size_t ncolls;
    int retry_notify_after_s;
    /* availability */
    int64_t down_since_ms; /* 0: up */
    bool down_notified;    /* remote_unavailable was published */
    long down_status;
    char down_code[64];
    char down_message[512];
    int down_retries;
    struct metric *m_up;
};

/* One entry per distinct collection of subs, each wanting its field list. name and subs must
 * outlive r. Returns 0, or -1 when out of memory. */
int remote_init(struct remote *r, const char *name, const struct routes_sub *subs, size_t nsubs,
                int retry_notify_after_s, struct metrics *m);
void remote_free(struct remote *r);

/* The entry of collection, or NULL. */
struct remote_coll *remote_coll(struct remote *r, const char *collection);
/* The primary key field of collection, or NULL while unknown. */
const char *remote_pk(const struct remote *r, const char *collection);
/* A batch learnt the primary key itself (its own GET /fields step). */
void remote_set_pk(struct remote *r, const char *collection, const char *pk);

enum remote_check {
    REMOTE_CHECK_OK = 0, /* nothing the event writes is missing on the remote (as far as known) */
    REMOTE_CHECK_WAIT,   /* the field list is being read: hold the event, ask again later */
    REMOTE_CHECK_MISSING /* *field names a routed field with a non-null value the remote lacks */
};

/* Whether ev (routed fields only, pruned) writes a non-null value into a field the remote's
 * collection does not have; pk is not checked. seen_ms: when the event arrived (the caller's
 * clock, as remote_fields_answer's now_ms): a list read before then is read again first (WAIT),
 * so a field added on the remote since is seen. An update counts only the fields its delta
 * names. */
enum remote_check remote_check_event(struct remote *r, const struct event *ev, int64_t seen_ms,
                                     const char **field);

/* After a write whose stored item lacks `field` (written with a value): asks the collection's
 * field list again. WAIT until it is read, then MISSING when the remote lacks the field (its
 * value was dropped), OK when it has it (the sync user just may not read it back). A remote whose
 * list cannot be read answers OK. */
enum remote_check remote_check_dropped(struct remote *r, const char *collection, const char *field,
                                       bool first);

/* The collection whose field list should be requested now (marked as asked), or NULL. Sets
 * *next_ms to the earliest time a deferred request becomes due (unchanged when none). */
const char *remote_refresh_due(struct remote *r, int64_t now_ms, int64_t *next_ms);
/* The answer to GET /fields/<collection> (r_ans NULL when the request could not be sent). */
void remote_fields_answer(struct remote *r, const char *collection,
                          const struct http_response *r_ans, int64_t now_ms);

/* Availability. remote_answered: any usable answer; returns true when the remote was down
 * (logged; *was_notified tells whether remote_unavailable had been published, so that
 * remote_recovered must follow). remote_failed: an answer that says the remote is down. */
bool remote_answered(struct remote *r, int64_t now_ms, bool *was_notified);
void remote_failed(struct remote *r, const struct http_response *ans, int64_t now_ms);
/* True once per outage, when the remote has been down for retry_notify_after_s: the caller
 * publishes remote_unavailable. *due_ms is lowered to when that will be (while down). */
bool remote_notify_due(struct remote *r, int64_t now_ms, int64_t *due_ms);

#endif
