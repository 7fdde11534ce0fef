/* dispatch_int.h: what dispatch.c and dispatch_file.c share (not for other modules): the
 * dispatcher's state, its slots, and the steps each file calls in the other. */
#ifndef DXSYNC_DISPATCH_INT_H
#define DXSYNC_DISPATCH_INT_H

#include "dispatch.h"

#include <curl/curl.h>

struct dispatch_slot {
    CURL *easy;
    struct dispatch_lane *lane; /* the lane whose request it carries, or NULL */
    const char *fields_coll;    /* or the collection whose field list it asks for, or NULL */
    struct http_response resp;  /* the answer of a field list request */
};

struct dispatch {
    const struct config *cfg;
    const char *remote_name;
    struct remote *remote;
    struct dlq *dlq;
    struct lww *lww;
    const struct routes_sub *subs;
    size_t nsubs;
    struct http_client *http;
    CURLM *multi;
    struct dispatch_slot *slots;
    size_t nslots;
    size_t in_flight;
    size_t rr;
    bool recovered; /* the remote answered again: wake the lanes waiting out the outage */
    uint64_t seed;
    const struct event **scratch_evs;
    const char **scratch_keys; /* keys held by a parked event, while planning */
    size_t scratch_cap;
    size_t *scratch_idx;
    struct metrics *m;
    struct metric *m_applied[4];
    struct metric *m_latency;
    struct metric *m_batch;
    struct metric *m_retry_outage;
    struct metric *m_retry_item;
    struct metric *m_in_flight;
    struct metric *m_superseded;
    struct metric *m_repairs;
    struct metric *m_refills;
    struct metric *m_parent_waits;
    struct metric *m_parked;
    struct metric *m_history;
    struct metric *m_file_bytes;
    struct metric *m_files;
    struct metric *m_file_seconds;
    struct http_client **src_http; /* per configured instance, made when a file needs it */
    struct dispatch_lane **xlanes; /* the lanes whose file is being transferred (nslots) */
    dispatch_fetch_fn fetch;
    dispatch_history_fn history;
    void *state;          /* their opaque */
    uint64_t applied_gen; /* counts batches that applied something: parked events try again */
    int64_t parked_total; /* parked events in every lane (the gauge) */
};

/* dispatch.c */
struct dispatch_slot *dispatch_slot_free(struct dispatch *d);
int dispatch_slot_start_to(struct dispatch *d, struct http_client *c, struct dispatch_slot *s,
                           const char *method, const char *path, const char *body,
                           struct http_response *resp);
void dispatch_slot_end(struct dispatch *d, struct dispatch_slot *s);
void dispatch_count_request(struct dispatch *d, const char *step, const struct http_response *r);
void dispatch_remote_ok(struct dispatch *d);
void dispatch_settle_batch(struct dispatch *d, struct dispatch_lane *l);
void dispatch_lane_sent(struct dispatch_lane *l, struct dispatch_slot *s);

/* dispatch_file.c: a lane whose batch is a file operation (fileop.h) */
void dispatch_file_send_next(struct dispatch *d, struct dispatch_lane *l);
void dispatch_file_done(struct dispatch *d, struct dispatch_slot *s);
/* Stops l's transfer, if one runs (its upload slot is ended by the caller). */
void dispatch_xfer_stop(struct dispatch *d, struct dispatch_lane *l);
/* A download of a file's transfer ended (it is none of the slots): true when it was one. */
bool dispatch_download_done(struct dispatch *d, CURL *easy, CURLcode result);
/* Resumes the transfers whose sides wait for each other; true when one was. */
bool dispatch_kick_transfers(struct dispatch *d);

#endif
