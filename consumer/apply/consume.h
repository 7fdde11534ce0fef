/* consume: the run loop of dxsync-consumer. Joins group <prefix>.apply.<remote>, queues each
 * assigned partition's events, plans batches (plan), drives their requests (apply) with
 * libcurl's multi interface across partitions, dead-letters what cannot be applied
 * (deadletter) and stores an offset only once every event before it is applied, skipped or
 * acknowledged in the DLQ. */
#ifndef DXSYNC_CONSUME_H
#define DXSYNC_CONSUME_H

#include "config.h"
#include "metrics.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Runs until signals_stop or a fatal Kafka error; cfg and m must outlive the call. member names
 * this consumer in its group (group.instance.id) and its clock store (state.h). Returns the exit
 * code: 0 after a clean stop, 1 on a runtime failure, 2 when nothing is routed into remote. */
int consume_run(const struct config *cfg, const char *remote, const char *member,
                struct metrics *m);

/* The longest the loop can go without polling the group: a rebalance lets the requests in
 * flight finish (request_timeout_ms + 2 s), waits for the DLQ's acknowledgements (5 s) and
 * commits (up to 60 s). librdkafka drops a member that does not poll for
 * max.poll.interval.ms. */
int64_t consume_longest_block_ms(const struct config *cfg);

/* The max.poll.interval.ms the consumer asks for unless kafka.properties sets one: Kafka's
 * default (300 s), or the longest block plus a minute when that is longer. */
int64_t consume_poll_interval_ms(const struct config *cfg);

#endif
