/* kafka: librdkafka configuration from the dxsync config, topic names, topic creation and
 * fatal error handling shared by the three programs. */
#ifndef DXSYNC_KAFKA_H
#define DXSYNC_KAFKA_H

#include "config.h"

#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

/* The rd_kafka_t opaque of every dxsync client. error_cb fills it; the owner polls it. */
struct kafka_state {
    const char *component; /* log component, e.g. "producer" */
    volatile bool fatal;   /* a fatal error happened: stop without confirming more */
    char fatal_reason[512];
    bool brokers_down;    /* last error said all brokers are down */
    char last_error[512]; /* the reason of the last error librdkafka reported (masked) */
    void *user;           /* the program's own context */
};

/* A configuration with bootstrap.servers, the user's kafka.properties, error and log
 * callbacks routed to our logger, and state as opaque. Extra settings (pairs of key, value,
 * ending with NULL) are applied before kafka.properties so the user can override tuning but
 * not the properties a program must have (those go in `forced`, applied last).
 * Returns NULL with err set on a bad property. */
rd_kafka_conf_t *kafka_conf_new(const struct config *cfg, struct kafka_state *state,
                                const char *const *defaults, const char *const *forced, char *err,
                                size_t errlen);

/* The configuration of a group consumer (kafka_conf_new with defaults), with what the
 * at-least-once rule needs forced: group.id, offsets stored by the program only
 * (enable.auto.offset.store=false) and committed automatically, a new group starting at the
 * earliest offset, no partition EOF events, and the eager range assignor (a rebalance revokes
 * every partition; the same partition number of every topic goes to one member).
 * Returns NULL with err set on a bad property. */
rd_kafka_conf_t *kafka_group_conf_new(const struct config *cfg, struct kafka_state *state,
                                      const char *group, const char *const *defaults, char *err,
                                      size_t errlen);

/* rd_kafka_new that owns conf either way: on failure conf is destroyed and err says
 * "<what>: <reason>". Returns the client or NULL. */
rd_kafka_t *kafka_client_new(rd_kafka_type_t type, rd_kafka_conf_t *conf, const char *what,
                             char *err, size_t errlen);

/* <prefix>.<source>.<collection>, <prefix>.errors, <prefix>.dlq.<remote>,
 * <prefix>.apply.<remote>, <prefix>.notify. Return -1 when buf is too small. */
int kafka_topic_sync(const struct config *cfg, const char *source, const char *collection,
                     char *buf, size_t len);
int kafka_topic_errors(const struct config *cfg, char *buf, size_t len);
int kafka_topic_dlq(const struct config *cfg, const char *remote, char *buf, size_t len);
int kafka_group_apply(const struct config *cfg, const char *remote, char *buf, size_t len);
int kafka_group_notify(const struct config *cfg, char *buf, size_t len);

/* The largest event dxsync produces by default: librdkafka's message.max.bytes of every dxsync
 * producer (events, dead letters, repairs, redrives) and max.message.bytes of the topics it
 * creates (Kafka's own default is 1 MB). An event holds the item twice (data and delta), and a
 * Directus whose MAX_PAYLOAD_SIZE is raised stores items of tens of MB: 64 MiB lets an item of
 * about 30 MB through, to be applied or dead-lettered by the remote's own limit. */
#define KAFKA_MESSAGE_MAX_BYTES "67108864"
/* queue.buffering.max.kbytes: room for one event of the largest size. The producers keep their
 * queue far smaller by themselves (KAFKA_QUEUE_SOFT_BYTES). */
#define KAFKA_QUEUE_MAX_KBYTES "66560"
/* The bytes a producer lets wait in librdkafka's queue before it waits for acknowledgements
 * (one larger event still goes alone): the memory bound under backpressure. */
#define KAFKA_QUEUE_SOFT_BYTES (8u << 20)
/* The defaults every dxsync producer starts from (before kafka.properties). */
#define KAFKA_PRODUCER_SIZE_DEFAULTS                                                               \
    "message.max.bytes", KAFKA_MESSAGE_MAX_BYTES, "queue.buffering.max.kbytes",                    \
        KAFKA_QUEUE_MAX_KBYTES

/* A consumer with group.id group that never commits or stores offsets on its own: for reading
 * a group's committed offsets and the commits its caller makes itself (the operator commands,
 * check). NULL with err set. */
rd_kafka_t *kafka_reader_new(const struct config *cfg, struct kafka_state *st, const char *group,
                             char *err, size_t errlen);

/* CreateTopics for the topics not seen (seen[i]; NULL: all), with the configuration's partitions,
 * replication, retention and message size; validate_only: Kafka only says whether it would
 * (check). A topic that exists already is fine. Returns 0, or -1 with err set; a refusal names
 * the topic, the principal and what to do ("... may not create it ...: create it beforehand
 * (...) or grant CREATE on it"). */
int kafka_create_topics(rd_kafka_t *rk, const struct config *cfg, const char *const *topics,
                        size_t ntopics, const bool *seen, bool validate_only, int timeout_ms,
                        char *err, size_t errlen);

/* Creates the topics that do not exist yet with the configured partitions, replication factor,
 * retention and max.message.bytes (KAFKA_MESSAGE_MAX_BYTES); existing topics are left as they
 * are. It reads the metadata first and creates only what is missing, so topics created
 * beforehand need no Create permission; a refused creation names the topic, the principal
 * (sasl.username) and the permission. Returns 0, or -1 with err set. */
int kafka_ensure_topics(rd_kafka_t *rk, const struct config *cfg, const char *const *topics,
                        size_t ntopics, int timeout_ms, char *err, size_t errlen);

/* kafka_ensure_topics until it succeeds: while Kafka cannot be reached it logs
 * event=ensure_topics_failed and retries with backoff (500 ms doubling to 30 s). Returns 0, or -1
 * when *stop was set or the client hit a fatal error meanwhile. */
int kafka_ensure_topics_wait(rd_kafka_t *rk, const struct config *cfg, const char *const *topics,
                             size_t ntopics, const struct kafka_state *state,
                             volatile sig_atomic_t *stop);

struct kafka_header {
    const char *name;
    const void *value;
    size_t len;
};

/* Produces one message with rd_kafka_produceva (no GNU extensions). partition may be
 * RD_KAFKA_PARTITION_UA; msgflags as rd_kafka_produce (RD_KAFKA_MSG_F_FREE hands value over on
 * success). Returns RD_KAFKA_RESP_ERR_NO_ERROR or the error (e.g. __QUEUE_FULL). */
rd_kafka_resp_err_t kafka_produce(rd_kafka_t *rk, const char *topic, int32_t partition,
                                  const void *key, size_t keylen, void *value, size_t len,
                                  int msgflags, const struct kafka_header *hdrs, size_t nhdrs,
                                  void *opaque);

/* Copies the value of a message header into buf ("" when absent). */
void kafka_header_get(const rd_kafka_message_t *msg, const char *name, char *buf, size_t len);
/* Leaves the group of rk, a consumer about to be closed, even as a static member (which
 * closing alone does not do): unsubscribes and serves the revoke (the rebalance callback) for up
 * to 5 s. For a reload that changes the topics: rejoining under the same group.instance.id with
 * other topics would get the old assignment back without a rebalance. */
void kafka_leave_group(rd_kafka_t *rk, const char *component);

#endif
