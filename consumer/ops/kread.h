/* kread: what the operator commands share to read Kafka without joining a group's assignment:
 * a client that never commits on its own, a topic's partition count, and one partition read from
 * an offset to the end as it is now. */
#ifndef DXSYNC_KREAD_H
#define DXSYNC_KREAD_H

#include "config.h"
#include "kafka.h"

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#define KREAD_TIMEOUT_MS 10000

/* Their client: kafka_reader_new (kafka.h). */

/* Partitions of topic: n, 0 when it does not exist, -1 when Kafka did not say. */
int kread_partitions(rd_kafka_t *rk, const char *topic);

/* Reads partition p of topic from `from` (or its first offset, when later) to its end as it is
 * now, calling fn for each message (a non-zero return stops the read: returned). Assigns the
 * partition to rk for the time of the read. 0, or -1 with err (Kafka did not answer). */
int kread_partition(rd_kafka_t *rk, const char *topic, int32_t p, int64_t from,
                    int (*fn)(void *arg, const rd_kafka_message_t *m), void *arg, char *err,
                    size_t errlen);

#endif
