/* deadletter: what the consumer publishes about an event it cannot apply (the DLQ copy with
 * its error headers, the apply_failed error event) and about the remote itself
 * (remote_unavailable, remote_recovered). Builds messages; the caller produces them. */
#ifndef DXSYNC_DEADLETTER_H
#define DXSYNC_DEADLETTER_H

#include "event.h"

#include <librdkafka/rdkafka.h>
#include <stdint.h>

/* Why one event went to the DLQ. Strings are borrowed. */
struct deadletter_failure {
    const char *source;
    const char *remote;
    const char *collection;
    const char *key;      /* text form; NULL when unknown */
    const char *action;   /* NULL when unknown */
    const char *event_id; /* NULL when unknown (a malformed message) */
    long status;          /* HTTP status, 0 when there was no answer */
    const char *code;     /* Directus error code, or ours (MALFORMED_EVENT) */
    const char *message;
    int attempts;
    const char *topic; /* where the original sits */
    int32_t partition;
    int64_t offset;
};

#define DEADLETTER_MALFORMED "MALFORMED_EVENT"

/* The headers of the DLQ copy: the original message's headers, then dxsync-error-status,
 * dxsync-error-code, dxsync-error-message, dxsync-original-topic, dxsync-original-partition,
 * dxsync-original-offset. The caller owns the result (rd_kafka_headers_destroy, or hand it to
 * rd_kafka_producev which takes it on success). NULL when out of memory. */
rd_kafka_headers_t *deadletter_headers(const rd_kafka_message_t *orig,
                                       const struct deadletter_failure *f);
/* The same over a copy of src (NULL: none), whose own error and original-place headers (a dead
 * letter's, dead-lettered anew by a redrive) are replaced. */
rd_kafka_headers_t *deadletter_headers_over(const rd_kafka_headers_t *src,
                                            const struct deadletter_failure *f);

/* The apply_failed error event (JSON, malloc'd; free()). NULL when out of memory. */
char *deadletter_error_event(const struct deadletter_failure *f, int64_t now_ms);

/* A remote_unavailable or remote_recovered event about remote, for the routes from source.
 * status/code/message describe the last failure (0/""/"" for recovered). malloc'd JSON. */
char *deadletter_remote_event(enum error_kind kind, const char *source, const char *remote,
                              long status, const char *code, const char *message, int attempts,
                              int64_t now_ms);

/* The text form of a Kafka message key when it is printable UTF-8 of at most 1023 bytes, else
 * NULL; written into buf. */
const char *deadletter_key_text(const rd_kafka_message_t *msg, char *buf, size_t len);

#endif
