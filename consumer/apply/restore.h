/* restore: reads newly assigned partitions back from their first offset to their end, before
 * anything of them is applied, so that the convergence clocks (lww.h) know every write the log
 * holds: the clocks are rebuilt from the topics themselves on every assignment (restart,
 * rebalance, scale-out), and need no store of their own. */
#ifndef DXSYNC_RESTORE_H
#define DXSYNC_RESTORE_H

#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

struct restore_target {
    const char *topic;
    int32_t partition;
    int64_t end; /* out: the high watermark read up to (offsets below it were read) */
};

/* Called for every message read, with the index of its target. */
typedef void (*restore_fn)(void *opaque, size_t target, const rd_kafka_message_t *msg);

/* Reads targets[0..n) with rk (a consumer that is assigned, never subscribed, never commits)
 * from their low to their high watermark. Gives up after timeout_ms without progress or when
 * *stop is set. Returns the messages read, or -1 with err set (what was read was still fed). */
int64_t restore_read(rd_kafka_t *rk, struct restore_target *targets, size_t n, restore_fn fn,
                     void *opaque, int timeout_ms, volatile sig_atomic_t *stop, char *err,
                     size_t errlen);

/* Reads the one message at offset of topic/partition with rk (as restore_read). Returns it (the
 * caller destroys it), or NULL with err set after timeout_ms. */
rd_kafka_message_t *restore_fetch(rd_kafka_t *rk, const char *topic, int32_t partition,
                                  int64_t offset, int timeout_ms, char *err, size_t errlen);

#endif
