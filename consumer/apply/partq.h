/* partq: one assigned partition's events, from the poll that took them until their offset may
 * be stored, and the rule the at-least-once promise rests on: an offset is stored only past the
 * settled prefix (every event before it applied, skipped, or acknowledged in the DLQ). Pure:
 * no I/O, no clock; the caller stores the offset partq_advance returns. */
#ifndef DXSYNC_PARTQ_H
#define DXSYNC_PARTQ_H

#include "event.h"

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum partq_state {
    PARTQ_WAITING = 0, /* to be applied */
    PARTQ_IN_BATCH,    /* in the partition's batch */
    PARTQ_DEAD,        /* sent to the DLQ: settled once Kafka acknowledged the dead letter */
    PARTQ_DONE         /* settled: applied, skipped, or dead letter acknowledged */
};

struct dlq_letter;

/* One message of the partition. */
struct partq_ev {
    rd_kafka_message_t *msg; /* owned (destroyed with the event); NULL in tests */
    int64_t offset;
    struct event ev; /* owned when decoded */
    bool decoded;
    bool fields_check; /* waits for the remote's field list before it may be planned */
    /* written, but the stored item lacked this routed field (apply.h): settled once the field
     * list read again says whether the remote lost it (FIELD_NOT_ON_REMOTE) */
    const char *dropped;
    enum partq_state state;
    int64_t arrived_ms;
    struct dlq_letter *letter; /* PARTQ_DEAD: its dead letter (dlq.h), cancelled on free */
    /* Waiting for the item it points at (dispatch.h): set by partq_park, cleared when it
     * settles. The times are the caller's monotonic clock. */
    bool parked;
    /* a file's bytes reached the remote in an earlier try (fileop.h): a retry of its routed
     * fields does not move them again */
    bool file_sent;
    /* an update whose item was missing on the remote: its data got the newest writes of its
     * other fields (dispatch.c, refill) */
    bool refilled;
    int refill_tries; /* tries that could not read every write (dispatch.c, REFILL_TRIES) */
    /* older than its partition's floor (lww.h, LWW_HISTORY): waits, holding its key, until the
     * partition's history is read */
    bool history;
    int parent_tries;     /* refusals for a missing referenced item so far */
    int64_t parked_since; /* the first refusal */
    int64_t parked_until; /* not planned before this (the backoff) */
    int64_t parked_nudge; /* ... except from this on, once something was applied since */
    uint64_t parked_gen;  /* the applied-generation counter at the last refusal */
};

/* Called for every event partq frees (settled prefix, partq_free), before the event's memory
 * goes: the DLQ uses it to forget an event that is gone (dlq_cancel). */
typedef void (*partq_release_fn)(struct partq_ev *e, void *opaque);

struct partq {
    struct partq_ev **q; /* q[head..tail) in offset order */
    size_t head, tail, cap;
    size_t waiting;      /* events in PARTQ_WAITING */
    size_t unsettled;    /* events not PARTQ_DONE */
    size_t held;         /* events with fields_check set: no batch is planned while any is */
    size_t parked;       /* events waiting for a referenced item (parked) */
    int64_t last_offset; /* highest offset taken, -1 */
    int64_t next_offset; /* offset after the settled prefix already handed out, -1 */
    partq_release_fn release;
    void *release_opaque;
};

void partq_init(struct partq *q, partq_release_fn release, void *opaque);
/* Frees every event still queued (calling release for each). */
void partq_free(struct partq *q);

/* Queues a new event for msg (taken over on success) at offset, in PARTQ_WAITING. Returns the
 * event, or NULL when offset is not past every offset already taken (msg is then not taken:
 * a redelivery of something queued) or when out of memory (*oom set; msg not taken). */
struct partq_ev *partq_push(struct partq *q, rd_kafka_message_t *msg, int64_t offset,
                            int64_t now_ms, bool *oom);

size_t partq_len(const struct partq *q);
/* The i-th queued event (0 = oldest). */
struct partq_ev *partq_at(const struct partq *q, size_t i);

/* Moves e to state, keeping the counts. PARTQ_DONE settles it. */
void partq_set(struct partq *q, struct partq_ev *e, enum partq_state state);

/* Marks e as waiting for the item it points at (back to PARTQ_WAITING), keeping q->parked. The
 * mark goes when e settles (PARTQ_DONE or PARTQ_DEAD). */
void partq_park(struct partq *q, struct partq_ev *e);

/* Sets or clears e's fields_check, keeping q->held. */
void partq_hold(struct partq *q, struct partq_ev *e, bool hold);

/* Frees the settled prefix. Returns the offset to store (the one after the last event freed),
 * or -1 when the prefix did not move. */
int64_t partq_advance(struct partq *q);

/* The offset the group would resume at: the oldest unsettled event's, else the one after the
 * last taken; -1 when nothing was taken yet. */
int64_t partq_resume_offset(const struct partq *q);

#endif
