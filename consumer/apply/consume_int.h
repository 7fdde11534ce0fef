/* consume_int.h: what consume.c (the loop and group membership) and consume_parts.c (the
 * assigned partitions, their pause and the statistics) share. Internal to dxsync-consumer run. */
#ifndef DXSYNC_CONSUME_INT_H
#define DXSYNC_CONSUME_INT_H

#include "config.h"
#include "dispatch.h"
#include "dlq.h"
#include "intake.h"
#include "kafka.h"
#include "lww.h"
#include "metrics.h"
#include "partq.h"
#include "recent.h"
#include "remote.h"
#include "routes.h"
#include "state.h"

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COMP "consumer"

/* One assigned partition. */
struct part {
    struct state_part sp;        /* its topic and number, and what the clocks hold of it */
    const rd_kafka_topic_t *rkt; /* learnt from the first message, to find the part fast */
    struct partq q;
    struct dispatch_lane lane;
    rd_kafka_queue_t *rkq; /* the partition's own queue (not forwarded), or NULL */
    bool full;             /* held queue_max events at the last drain: its queue may hold more */
    bool has_recent;
    struct recent recent; /* newest activity_id per recent key: resends are skipped */
};

struct consume {
    const struct config *cfg;
    const char *remote_name;
    const struct config_instance *inst;
    struct metrics *m;
    struct routes_sub *subs; /* the routes into the remote, then its own topics (local) */
    size_t nsubs;
    size_t nin;         /* subs[0..nin) are the routes into the remote */
    const char *member; /* this consumer's name in the group (group.instance.id) */
    struct lww *lww;
    struct state *state;  /* the clocks' store and read-backs */
    bool was_restoring;   /* at the last turn */
    int64_t trim_ms;      /* when to hand freed memory back (after a restore), 0 none */
    int64_t next_trim_ms; /* and the next time anyway (TRIM_EVERY_MS) */
    char group[256];
    struct kafka_state cst;
    rd_kafka_t *rk;
    rd_kafka_queue_t *queue;
    int wake[2];
    struct part **parts;
    struct dispatch_lane **lanes; /* lanes[i] is &parts[i]->lane */
    struct state_part **sps;      /* sps[i] is &parts[i]->sp */
    size_t nparts, capparts;
    struct remote remote;
    struct dlq *dlq;
    struct dispatch *dispatch;
    size_t queue_max;     /* events held per partition before we stop taking its messages */
    struct intake intake; /* message -> event */
    struct metric *m_lag;
    struct metric *m_pending;
    struct metric *m_paused;
    int64_t next_stats_ms;
};

/* Whether p belongs to a paused route ("enabled": false): assigned, never fetched. */
static inline bool part_paused(const struct part *p)
{
    return !p->sp.sub->local && !p->sp.sub->route->enabled;
}

struct part *part_find(struct consume *c, const char *topic, int32_t partition);
/* The part of msg (learning its topic handle), or NULL when it is not ours (any more). */
struct part *part_of_message(struct consume *c, const rd_kafka_message_t *msg);
struct part *part_add(struct consume *c, const struct routes_sub *sub, int32_t partition);
void part_remove(struct consume *c, struct part *p);
void part_advance(struct consume *c, struct part *p);
/* Pauses the parts of l (just assigned) whose route is paused. */
void parts_pause_disabled(struct consume *c, const rd_kafka_topic_partition_list_t *l);
/* Lag, pending and paused gauges, once a STATS_EVERY_MS. */
void parts_stats(struct consume *c, int64_t now);
void parts_register_metrics(struct consume *c);

#endif
