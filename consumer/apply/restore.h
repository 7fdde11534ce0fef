/* restore: reads partitions back over a range of offsets with a client of its own, feeding
 * every message to a callback: the consumer's state (state.h) reads newly assigned partitions
 * from their checkpoint to their end before anything of them is applied, and a partition's
 * history when an event older than its horizon must be decided.
 *
 * It runs in slices (restore_step) between turns of the consumer's loop, so a long read never
 * keeps the group consumer from polling (max.poll.interval.ms) nor a signal from being seen. */
#ifndef DXSYNC_RESTORE_H
#define DXSYNC_RESTORE_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

struct restore_target {
    const char *topic;
    int32_t partition;
    int64_t start; /* the first offset to read */
    int64_t end;   /* read up to (not including) this offset */
};

/* Called for every message read, with the index of its target. */
typedef void (*restore_fn)(void *opaque, size_t target, const rd_kafka_message_t *msg);

/* The read-back client's librdkafka settings (kafka.properties may override them). Read as
 * fast as the broker sends: a full queue makes librdkafka pause the partition's fetches for a
 * while. Measured on 200,000 events of 740 bytes in 3 partitions: an 8 MB queue restores
 * 16,600 events/s, 32 MB 62,000/s (peak RSS 97 MB, the clocks 17 MB of it), 64 MB 130,000/s
 * (131 MB). The buffers are only full while a long history is read (restore_release). */
#define RESTORE_KAFKA_DEFAULTS                                                                     \
    "fetch.max.bytes", "8388608", "max.partition.fetch.bytes", "2097152",                          \
        "queued.max.messages.kbytes", "32768", "queued.min.messages", "1000000",                   \
        "fetch.wait.max.ms", "10"

struct restore;

/* A restore of targets[0..n) (copied; topic strings must outlive it) with rk, a consumer that is
 * assigned by hand, never subscribed, never committing. Gives up after idle_ms without
 * progress (an offset below the log start is skipped to it). NULL when out of memory. */
struct restore *restore_new(rd_kafka_t *rk, const struct restore_target *targets, size_t n,
                            int idle_ms);
/* Reads for about budget_ms, feeding fn. Returns 1 when every target is read to its end, 0
 * when there is more, -1 when it gave up (restore_error says why). */
int restore_step(struct restore *r, restore_fn fn, void *opaque, int budget_ms);
const char *restore_error(const struct restore *r);
/* The targets and the messages read so far. */
const struct restore_target *restore_targets(const struct restore *r, size_t *n);
int64_t restore_count(const struct restore *r);
/* Unassigns rk, drops what it fetched beyond what was read (restore_release) and frees r
 * (finished or not). */
void restore_free(struct restore *r);

/* Drops the messages rk fetched but nobody read, in its queue and in the queues of the n
 * partitions of t. Each holds its fetch buffer (up to max.partition.fetch.bytes)
 * until it is popped: after an unassign, what was fetched stays in the client's queue, and a
 * fetch in flight at the unassign lands in the partition's own queue a moment later. A restore
 * that stopped at its ends while librdkafka had fetched beyond them kept 3.8 MB in use in the
 * soak until the next assignment. Only for partitions not assigned on rk. */
void restore_release(rd_kafka_t *rk, const struct restore_target *t, size_t n);

/* Reads the one message at offset of topic/partition with rk (not while a restore runs on it).
 * Returns it (the caller destroys it), or NULL with err set after timeout_ms. */
rd_kafka_message_t *restore_fetch(rd_kafka_t *rk, const char *topic, int32_t partition,
                                  int64_t offset, int timeout_ms, char *err, size_t errlen);

#endif
