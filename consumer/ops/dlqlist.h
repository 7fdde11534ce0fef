/* dlqlist: `dxsync-consumer --remote NAME dlq list`: the dead letters of one remote, read from
 * <prefix>.dlq.<remote> (every partition, first offset to the end) with their error headers.
 * Talks to Kafka alone. */
#ifndef DXSYNC_DLQLIST_H
#define DXSYNC_DLQLIST_H

#include "config.h"

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* One dead letter as listed (strings point into buffers of the caller's). */
struct dlq_entry {
    int64_t time_ms; /* when it was dead-lettered (the DLQ message's timestamp) */
    char source[64], collection[128], key[256], action[16], code[64], event_id[128];
    char status[8];
    char message[512];
    char topic[256]; /* where the original sits */
    char partition[16], offset[24];
};

/* Fills e from a DLQ message: its headers, and the original event (its value) for the source,
 * collection, key and action; for a malformed one, source and collection come from the original
 * topic's name (<prefix>.<source>.<collection>). */
void dlq_entry_from(const rd_kafka_message_t *m, const char *prefix, struct dlq_entry *e);

/* One table line, or (json) one JSON object, for e. */
void dlq_entry_print(const struct dlq_entry *e, bool json, FILE *out);

/* Prints the remote's dead letters, oldest first per partition; code and since_ms (-1: all)
 * filter. Returns 0, or 1 with the reason on stderr (Kafka did not answer). */
int dlq_list_run(const struct config *cfg, const char *remote, const char *code, int64_t since_ms,
                 bool json, FILE *out);

#endif
