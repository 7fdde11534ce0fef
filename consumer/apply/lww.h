/* lww: the convergence rule of one consumer (DESIGN.md, "Concurrent edits converge"), as the
 * newest write it knows per collection, key and field, and per key the newest delete.
 *
 * A write's stamp is (commit time, source name, commit LSN, activity id): the commit time of
 * the source transaction (the event's commit_us; 0 when absent, so an event of an older
 * producer or a snapshot is older than any that has one), the source instance's name as the
 * tie-break between instances, then the LSN and the activity id, which order one source's
 * writes. Every event the consumer takes, from every source it receives and from its own
 * instance's topics, is observed first (lww_observe): the clocks then hold the newest write
 * in the log as far as it was read. When an event's batch is planned, lww_decide keeps only
 * the fields it is still the newest write of:
 *   - a field is written only by the newest write of that field (so an older write, a resend
 *     or a replay never moves it back, and concurrent writes of different fields merge);
 *   - an item lives while some write of it is newer than its newest delete: a delete is
 *     applied only when it is newer than every write of the key, and while it is, every write
 *     is dropped (an older write never brings the item back); a newer write does (the apply
 *     path's upsert creates the item from the event's full row, whose other fields are first
 *     set to their newest writes, lww_refill_data).
 * Events of the remote's own instance are never applied (the remote already has them) except
 * as a repair: the consumer may have written an older value just after a local edit committed
 * (it decided before the edit, Directus stored after it). When a local event is still the
 * newest write of a field and this consumer wrote the key around or after that commit
 * (wrote_ms >= commit - LWW_REPAIR_MARGIN_MS), or wrote it before a restart whose writes are
 * unknown, the local value is written back (as the sync user, so it is not echoed).
 *
 * Memory and the store: the clocks are a cache of the consumer's store (clockdb.h) when one is
 * attached: a key not in memory is read from it, changed keys are dirty until a checkpoint
 * writes them (lww_checkpoint_write, then lww_checkpoint_done once the store committed), and
 * lww_trim evicts the least recently used clean keys beyond the bound. Without a store every
 * key stays in memory (the operator commands' use).
 *
 * The horizon: a partition read back only from some time on (a member without local state,
 * state.h) has a floor, the commit time before which its clocks may lack writes. An event
 * whose commit time is not later than floor + margin (the clock skew allowed between the
 * hosts) may be older than a write the clocks do not hold: lww_decide answers LWW_HISTORY
 * instead of writing it, and the caller reads the partition's history (lww_set_floor then
 * makes it complete). Pure: no I/O but the store's, no clock (the caller passes times). */
#ifndef DXSYNC_LWW_H
#define DXSYNC_LWW_H

#include "event.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How far around a local commit a write of this consumer counts as possibly after it: the
 * skew between this host's clock and the remote database's, plus the time a write takes to
 * reach Directus's database. */
#define LWW_REPAIR_MARGIN_MS 10000

struct lww_stamp {
    int64_t us;   /* commit time, µs since the Unix epoch; 0 when unknown */
    uint64_t lsn; /* commit LSN; 0 when unknown */
    int64_t aid;  /* activity id; 0 when none (snapshot) */
    uint32_t src; /* rank of the source's name among the configured instances */
};

/* <0, 0, >0 as a is older than, the same write as, or newer than b. */
int lww_stamp_cmp(const struct lww_stamp *a, const struct lww_stamp *b);

struct lww;
struct clockdb;

/* names: every instance name of the configuration (their sorted order ranks the sources).
 * Returns NULL when out of memory. */
struct lww *lww_new(const char *const *names, size_t n);
void lww_free(struct lww *w);

/* Backs w with db (which must outlive it), holding about cache_bytes in memory. */
void lww_attach(struct lww *w, struct clockdb *db, size_t cache_bytes);
/* The clock skew allowed between a source's database and the hosts that publish its events:
 * how much later than a partition's floor an event must have committed to be decided without
 * the partition's history. */
void lww_set_margin(struct lww *w, int64_t margin_us);

/* The floor of partition (see the top): LWW_COMPLETE when its clocks hold every write. */
#define LWW_COMPLETE INT64_MIN
void lww_set_floor(struct lww *w, int32_t partition, int64_t floor_us);
int64_t lww_floor(const struct lww *w, int32_t partition);

/* The stamp of ev (its source ranked among the names given to lww_new; an unknown name ranks
 * after all of them). */
void lww_stamp_of(const struct lww *w, const struct event *ev, struct lww_stamp *out);

/* Where an event was read (its topic is its source's, of its collection). */
struct lww_where {
    int32_t partition;
    int64_t offset; /* its offset there */
    bool foreign;   /* from another instance (applied here), not the remote's own */
};

/* Records ev (already pruned to the routed fields) as seen at *at: its delta members (update)
 * or data members (create, snapshot) are written at its stamp, or the key deleted. Returns 0,
 * or -1 when out of memory (the event then counts as the newest: it is applied). */
int lww_observe(struct lww *w, const struct event *ev, const struct lww_where *at);

/* Reads the event at offset of source's topic of the caller's collection, in the caller's
 * partition. Returns 0 with *out owned by the caller, or -1. */
typedef int (*lww_fetch_fn)(void *opaque, const char *source, int64_t offset, struct event *out);

/* For an update of an item missing on the remote (the apply path creates it from data:
 * apply_batch_recreates): data holds the item's other fields as the event's source saw them,
 * which need not be their newest writes (the source may not have had them yet, or the remote's
 * own edit was newer). Each member of data whose newest write is another event gets that
 * write's value, read with fetch. The item may have gone at any moment (a delete on the remote
 * the consumer has not read yet), so this is asked when the remote says it is missing, not when
 * a delete was seen. Returns the members replaced; *unread counts the writes fetch could not
 * read (their members keep data's value). */
size_t lww_refill_data(struct lww *w, struct event *ev, lww_fetch_fn fetch, void *opaque,
                       size_t *unread);

enum lww_verdict {
    LWW_APPLY = 0,
    LWW_SKIP,
    LWW_HISTORY /* older than its partition's floor: decide again once the history is read */
};

/* What of ev is still to be written (see the top of this file). Prunes ev: the update's delta
 * members, or the create's or snapshot's data members, that a newer write owns are removed.
 * local: ev is from the remote's own instance; pending: it was already in the log when the
 * partition was assigned, or committed before (a write of this consumer, or of the partition's
 * member before it, may have followed it unknown). A local event older than the floor whose
 * key's foreign writes may be unknown answers LWW_HISTORY too.
 * LWW_SKIP when nothing is left to write; LWW_HISTORY when something is, but a write older than
 * the partition's floor may own it (ev keeps what is left: deciding it again is right). */
enum lww_verdict lww_decide(struct lww *w, struct event *ev, bool local, bool pending);

/* Serialises a key across the partitions of different sources: the owner (a batch) holds
 * the key from planning until its answer. Returns false when another owner holds it. */
bool lww_claim(struct lww *w, const struct event *ev, const void *owner);
/* Whether owner could claim the key now (nobody else holds it). */
bool lww_may_claim(struct lww *w, const struct event *ev, const void *owner);
/* Releases the key; when written, records now_ms as the last time this consumer wrote it. */
void lww_release(struct lww *w, const struct event *ev, const void *owner, bool written,
                 int64_t now_ms);

/* Forgets every key of partition (revoked), dirty ones too: a checkpoint that did not write them
 * did not move the partition's stored offsets past them either. */
void lww_drop_partition(struct lww *w, int32_t partition);

/* A checkpoint: writes every dirty key into the store's open transaction (clockdb_begin), 0 or
 * -1 with err set (the transaction is then gone); once the store committed it, done marks them
 * clean. */
int lww_checkpoint_write(struct lww *w, char *err, size_t errlen);
void lww_checkpoint_done(struct lww *w);
/* Evicts the least recently used clean keys that no batch holds while memory is over the
 * bound. */
void lww_trim(struct lww *w);

/* Keys in memory, the bytes they take (as malloc counts them), about how many of those bytes
 * are dirty, and the keys the store could not give back (read errors, undecodable values:
 * each is then known only from what is read again). */
size_t lww_keys(const struct lww *w);
size_t lww_bytes(const struct lww *w);
size_t lww_dirty_bytes(const struct lww *w);
uint64_t lww_store_errors(const struct lww *w);

#endif
