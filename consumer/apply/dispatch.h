/* dispatch: the batches of the assigned partitions onto libcurl's multi interface. Each
 * partition has a lane: its next batch is planned (plan) from its queue (partq), driven
 * request by request (apply, or fileop for a file's create or update) on a free slot, and
 * settled: applied events are done, failed ones dead-lettered (dlq). At most max_in_flight
 * requests are out, one per lane (per-key order holds); a file's transfer counts as one
 * (its download from the source runs beside it, xfer.h). The remote's field list requests
 * (remote) take a slot too, so no blocking request ever runs inside the loop. Answers tell the
 * remote's availability (remote). */
#ifndef DXSYNC_DISPATCH_H
#define DXSYNC_DISPATCH_H

#include "apply.h"
#include "config.h"
#include "dlq.h"
#include "fileop.h"
#include "http.h"
#include "lww.h"
#include "metrics.h"
#include "partq.h"
#include "remote.h"
#include "routes.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum dispatch_lane_state {
    LANE_IDLE = 0,  /* no batch */
    LANE_READY,     /* the batch has a request to send */
    LANE_IN_FLIGHT, /* its request is out */
    LANE_WAITING    /* the batch waits (backoff) until wake_ms */
};

struct dispatch_slot;

/* One partition's lane. The owner sets sub, partition, q and leaving (dispatch_lane_init);
 * the rest is dispatch's. */
struct dispatch_lane {
    const struct routes_sub *sub;
    int32_t partition;
    struct partq *q;
    bool leaving; /* revoked or stopping: no new request */
    /* The owner's, for convergence (lww.h): while restoring, the partition is being read back
     * into the clocks and nothing is planned; offsets below restore_end were in the log then,
     * and assigned_ms is when this member got the partition (wall clock): writes made to its keys
     * before are not all known to it. */
    bool restoring;
    int64_t restore_end;
    int64_t assigned_ms;
    enum dispatch_lane_state st;
    int64_t wake_ms;
    bool outage_wait; /* waiting because the remote is down: woken when it answers again */
    bool has_batch;
    struct apply_batch batch;
    struct partq_ev **bev; /* the event of each batch item */
    struct dispatch_slot *slot;
    struct http_response resp;
    int64_t sent_ms;
    enum apply_step sent_step;
    /* A batch of DIRECTUS_FILES holding one create or update is a file operation (fileop.h):
     * its requests go to the source and the remote, and its bytes through xfer while the
     * transfer runs. */
    struct fileop *fop;
    enum fileop_step fop_step;
    struct xfer *xfer;
};

struct dispatch;

/* A dispatcher writing into inst as its sync user, with cfg's consumer settings. remote, dlq,
 * subs and m must outlive it. Returns NULL with err set. */
struct dispatch *dispatch_new(const struct config *cfg, const struct config_instance *inst,
                              struct remote *remote, struct dlq *dlq, struct lww *lww,
                              const struct routes_sub *subs, size_t nsubs, struct metrics *m,
                              char *err, size_t errlen);
void dispatch_free(struct dispatch *d);

/* Reads the event at offset in partition of source's topic of collection, for the values an
 * update that recreates an item missing on the remote needs (lww_refill_data). Returns 0 with
 * *out owned by the caller, or -1. */
typedef int (*dispatch_fetch_fn)(void *opaque, const char *source, const char *collection,
                                 int32_t partition, int64_t offset, struct event *out);
/* Asks for partition's history: an event of it is older than its floor (LWW_HISTORY). */
typedef void (*dispatch_history_fn)(void *opaque, int32_t partition);
void dispatch_set_state(struct dispatch *d, dispatch_fetch_fn fetch, dispatch_history_fn history,
                        void *opaque);

void dispatch_lane_init(struct dispatch_lane *l, const struct routes_sub *sub, int32_t partition,
                        struct partq *q);
/* Stops l's request if one is out and frees its batch (its events stay in the queue, which the
 * caller frees). */
void dispatch_lane_drop(struct dispatch *d, struct dispatch_lane *l);

/* A batch is planned from the events that are still the newest writes of something (lww_decide:
 * what a newer write owns is dropped, an event with nothing left is settled as superseded) and
 * holds its keys (lww_claim) until its answer: a key another partition's batch holds stops the
 * lane there until that batch is answered, so writes of one key from different sources never
 * cross in flight. An event older than its partition's floor (LWW_HISTORY) waits, holding its
 * key, until the partition's history is read (dispatch_set_state's history). */
/* Starts requests, lanes in turn (and field list requests), while slots are free. drained:
 * Kafka has nothing more waiting (a batch need not wait to fill up). Returns the next time
 * something is due (a backoff, a linger), or INT64_MAX. */
int64_t dispatch_schedule(struct dispatch *d, struct dispatch_lane *const *lanes, size_t n,
                          bool drained);
/* Moves the transfers along and feeds every finished one to its batch or field list. */
void dispatch_transfers(struct dispatch *d);
/* Waits until a transfer has news, wake_fd is readable, or timeout_ms passed. */
void dispatch_wait(struct dispatch *d, int wake_fd, int timeout_ms);
/* Lets the requests of the leaving lanes finish (bounded by the request timeout) and settles
 * what they applied; the rest of their batches goes back to waiting. */
void dispatch_finish_leaving(struct dispatch *d, struct dispatch_lane *const *lanes, size_t n);

size_t dispatch_in_flight(const struct dispatch *d);
/* Whether l could send now (a request is ready and a slot is free). */
bool dispatch_lane_can_send(const struct dispatch *d, const struct dispatch_lane *l);

#endif
