/* dlq: the consumer's own Kafka producer and what it publishes: dead letters (the original
 * message copied to <prefix>.dlq.<remote> with error headers, plus an apply_failed error event
 * on <prefix>.errors) and the remote_unavailable / remote_recovered events. A dead-lettered
 * event is settled (partq) only once Kafka acknowledged both of its messages; a message Kafka
 * refused is produced again on a later dlq_poll. */
#ifndef DXSYNC_DLQ_H
#define DXSYNC_DLQ_H

#include "config.h"
#include "event.h"
#include "kafka.h"
#include "metrics.h"
#include "partq.h"
#include "routes.h"

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdint.h>

struct dlq;

/* Why an event could not be applied. Strings are borrowed for the call. */
struct dlq_why {
    long status; /* HTTP status, 0 when there was no answer */
    const char *code;
    const char *message;
    int attempts;
};

/* Creates the producer (idempotent, acks=all, no message timeout) for remote's dead letters and
 * error events. cfg and m must outlive the dlq. Returns NULL with err set. Free with dlq_free. */
struct dlq *dlq_new(const struct config *cfg, const char *remote, struct metrics *m, char *err,
                    size_t errlen);
/* Waits up to flush_ms for what is still unacknowledged, then drops the rest and frees. */
void dlq_free(struct dlq *d, int flush_ms);

/* The producer (for topic creation) and its fatal-error state. */
rd_kafka_t *dlq_producer(struct dlq *d);
const struct kafka_state *dlq_kafka_state(const struct dlq *d);
const char *dlq_topic(const struct dlq *d);
const char *dlq_errors_topic(const struct dlq *d);

/* Dead-letters e (an event of q, of sub's topic and partition): e goes to PARTQ_DEAD and becomes
 * PARTQ_DONE once Kafka acknowledged its DLQ copy and its error event. Logs the failure. Returns
 * 0, or -1 when out of memory: e is then PARTQ_DEAD with nothing sent and never settles, so its
 * offset is never stored (the event comes again after a restart; nothing is skipped). */
int dlq_send(struct dlq *d, struct partq *q, struct partq_ev *e, const struct routes_sub *sub,
             int32_t partition, const struct dlq_why *why);

/* e is being freed (its partition was revoked or the consumer stops): its dead letter forgets
 * it; delivery reports still to come find nothing. NULL is ignored. */
void dlq_cancel(struct dlq_letter *l);

/* Serves delivery reports and produces again what Kafka refused. */
void dlq_poll(struct dlq *d);
/* Waits up to timeout_ms until every produced message is acknowledged. */
void dlq_flush(struct dlq *d, int timeout_ms);
/* Dead letters not yet acknowledged (for the caller's wake-up decisions and tests). */
size_t dlq_unsettled(const struct dlq *d);

/* Publishes one remote_unavailable or remote_recovered event per source routed into the
 * remote (subs), describing the last failure (status 0, "" for recovered). */
void dlq_remote_event(struct dlq *d, enum error_kind kind, const struct routes_sub *subs,
                      size_t nsubs, long status, const char *code, const char *message,
                      int retries);

#endif
