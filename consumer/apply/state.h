/* state: what the consumer of one remote knows of the writes it applies (its convergence clocks,
 * lww.h), kept across restarts, rebalances and scale-out at a cost that depends on what changed
 * since the last checkpoint, not on the history, in memory bounded by consumer.clock_cache_mb.
 *
 *   - The store: the clocks live in a store of this member's own (clockdb.h, LMDB, in
 *     consumer.state_dir). A checkpoint writes the clocks that changed together with, per
 *     assigned partition, the offset up to which they hold its events, in one transaction:
 *     every few seconds, when the dirty clocks reach half the cache, at a revoke and at a stop.
 *   - An assignment reads each new partition back from its checkpoint to its end before
 *     anything of it is applied (restore.h); a crash between a batch and the checkpoint only
 *     means reading back, and applying again (idempotent), what came after it.
 *   - A partition without a usable checkpoint (a new member, a lost store, a checkpoint out of
 *     retention) whose group has committed offsets is read back only from the horizon,
 *     now - consumer.horizon_s (rd_kafka_offsets_for_times), or from the group's committed
 *     offset when that is further back (it is applied next): its floor becomes that time. The
 *     safety condition: every write published since the floor is in the clocks, and a write is
 *     published no earlier than its commit time minus the skew allowed between the hosts'
 *     clocks (consumer.max_clock_skew_ms); so an event that committed later than floor + skew
 *     is decided exactly. An older one (a producer that was stopped for longer than the
 *     horizon, a snapshot) is not written on a guess: lww_decide answers LWW_HISTORY, its key
 *     waits, and the partition's whole history is read (state_want_history, with a client of
 *     its own), after which the partition is complete. A partition whose group has no committed
 *     offset (a new remote, a new route) is applied from its start anyway: it is read whole.
 *   - Every event taken is checked for clock skew: a commit time further in the future than
 *     max_clock_skew_ms is warned about, per source (log and metric).
 *
 * Ownership: the state owns its store and its clients; the caller owns the parts, which must
 * stay valid until they are revoked (state_revoke). */
#ifndef DXSYNC_STATE_H
#define DXSYNC_STATE_H

#include "config.h"
#include "dispatch.h"
#include "event.h"
#include "lww.h"
#include "metrics.h"
#include "partq.h"
#include "routes.h"

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One assigned partition as the consumer holds it (consume.c embeds it in its own). */
struct state_part {
    const struct routes_sub *sub;
    int32_t partition;
    struct dispatch_lane *lane; /* its restoring and restore_end are the state's to set */
    const struct partq *q;      /* what was taken of it (partq.last_offset) */
    bool read;                  /* read back: the clocks hold its events up to covered */
    int64_t covered;            /* the offset up to which the clocks hold its events */
};

struct state;

/* The state of the consumer of remote (member: its name in the group), reading subs (the
 * consumer's topics), keeping lww's clocks in the store of state_dir. Returns NULL with err set
 * (a store that cannot be opened names its directory and the setting). */
struct state *state_new(const struct config *cfg, const char *remote, const char *member,
                        const struct routes_sub *subs, size_t nsubs, struct lww *lww,
                        struct metrics *m, char *err, size_t errlen);
void state_free(struct state *s);

/* The folder the store of member of remote lives in, by consumer.state_dir or its default
 * ($STATE_DIRECTORY of systemd, else $XDG_STATE_HOME/dxsync, else ~/.local/state/dxsync).
 * -1 with err set when none can be named. */
int state_dir(const struct config *cfg, const char *remote, const char *member, char *out,
              size_t len, char *err, size_t errlen);

/* parts were just assigned (group: the group consumer, asked for its committed offsets): they
 * are read back (state_turn) before their lanes plan anything. */
void state_assign(struct state *s, rd_kafka_t *group, struct state_part *const *parts, size_t n);
/* leaving are revoked (their requests settled): a checkpoint of every part of all, then the
 * clocks of partition numbers no part of all but the leaving ones has leave memory. */
void state_revoke(struct state *s, struct state_part *const *leaving, size_t nleaving,
                  struct state_part *const *all, size_t nall);
/* One turn: a slice of the read-back and of a history read, a checkpoint when due, the cache
 * trimmed to its bound. Returns true while the assignment's read-back runs. */
bool state_turn(struct state *s, struct state_part *const *all, size_t n);
/* The last checkpoint, at a clean stop. */
void state_stop(struct state *s, struct state_part *const *all, size_t n);

/* An event taken from p at offset (already pruned to the routed fields): into the clocks. */
void state_observe(struct state *s, const struct state_part *p, const struct event *ev,
                   int64_t offset);
/* An event of partition was answered LWW_HISTORY: read that partition's history. */
void state_want_history(struct state *s, int32_t partition);

/* dispatch's fetch (dispatch_set_fetch): the event at offset of source's topic of collection.
 * -1 while the read-back client is busy or on error. */
int state_fetch(void *state, const char *source, const char *collection, int32_t partition,
                int64_t offset, struct event *out);

/* The clocks' gauges (keys and bytes in memory and on disk). */
void state_stats(struct state *s);

/* The read-back client's settings that the consumer's memory depends on (restore.h). */
void state_release_read_back(struct state *s, struct state_part *const *all, size_t n);

#endif
