/* publish: the idempotent Kafka producer of one source, and the watermark that says which
 * transactions are wholly acknowledged (the LSN the producer may confirm to PostgreSQL). */
#ifndef DXSYNC_PUBLISH_H
#define DXSYNC_PUBLISH_H

#include "capture.h"
#include "config.h"
#include "metrics.h"

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct publish;

/* A producer for source's topics with enable.idempotence, acks=all, no delivery timeout
 * (a message is retried until Kafka has it) and the Java-compatible murmur2 partitioner (so
 * `audit` finds a key's partition). NULL with err set on a bad kafka.properties. */
struct publish *publish_new(const struct config *cfg, const char *source, struct metrics *m,
                            char *err, size_t errlen);
/* Flushes for at most timeout_ms, then destroys. Unacknowledged events are simply not
 * confirmed: PostgreSQL sends them again after a restart. */
void publish_free(struct publish *p, int timeout_ms);

/* Creates the topics of these collections when missing. 0, or -1 with err set. */
int publish_ensure_topics(struct publish *p, const char *const *collections, size_t n, char *err,
                          size_t errlen);

/* Produces every event of txn (all must have data when they need it) and records its end LSN
 * in the watermark; a transaction without events is recorded too, so the LSN moves on.
 * Waits (serving delivery reports) while librdkafka's queue is full, unless *stop is set.
 * Returns 0, or -1 (err set) when stopped or failed before every event was handed over. */
int publish_txn(struct publish *p, const struct capture_txn *txn, const volatile sig_atomic_t *stop,
                char *err, size_t errlen);

/* Serves delivery reports and errors for up to timeout_ms. */
void publish_poll(struct publish *p, int timeout_ms);

/* fn(opaque) is called about every 100 ms while publish_txn or publish_drain waits for Kafka
 * (the producer keeps its replication connection alive there). NULL: none. */
void publish_set_wait_cb(struct publish *p, void (*fn)(void *opaque), void *opaque);

/* End LSN of the newest transaction that, with all before it, Kafka has acknowledged
 * (0 when none yet), and its commit time. */
uint64_t publish_confirmed(const struct publish *p, int64_t *commit_time_ms);
/* True when no transaction is waiting for acknowledgements. */
bool publish_idle(const struct publish *p);
/* Waits until idle, for at most timeout_ms (-1: until *stop). 0 when idle. */
int publish_drain(struct publish *p, int timeout_ms, const volatile sig_atomic_t *stop);
/* True after a fatal Kafka error or a message Kafka refused for good: stop without
 * confirming anything more. */
bool publish_failed(const struct publish *p, char *why, size_t len);

#endif
