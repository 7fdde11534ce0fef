/* dispatch_file.c: a lane whose batch is one file's create or update (fileop.h): its requests
 * go to the source and to the remote, and its bytes through a transfer (xfer.h) that counts as
 * one request in flight. */
#include "directus.h"
#include "dispatch_int.h"

#include "log.h"
#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COMP "consumer"

static void xlane_set(struct dispatch *d, struct dispatch_lane *l, bool on)
{
    for (size_t i = 0; i < d->nslots; i++) {
        if (on && !d->xlanes[i]) {
            d->xlanes[i] = l;
            return;
        }
        if (!on && d->xlanes[i] == l) {
            d->xlanes[i] = NULL;
            return;
        }
    }
}

/* Stops l's transfer, if one runs (its upload slot is ended by the caller). */
void dispatch_xfer_stop(struct dispatch *d, struct dispatch_lane *l)
{
    if (!l->xfer)
        return;
    metrics_add(d->m_file_bytes, (double)xfer_sent(l->xfer));
    xfer_abort(l->xfer);
    l->xfer = NULL;
    xlane_set(d, l, false);
}

/* The source instance's client (its sync token), made on first use; NULL when out of memory. */
static struct http_client *source_http(struct dispatch *d, const char *name)
{
    for (size_t i = 0; i < d->cfg->ninstances; i++) {
        const struct config_instance *in = &d->cfg->instances[i];
        if (strcmp(in->name, name) != 0)
            continue;
        if (!d->src_http[i]) {
            char err[256];
            d->src_http[i] =
                directus_client(in, d->cfg->consumer.request_timeout_ms, err, sizeof(err));
        }
        return d->src_http[i];
    }
    return NULL;
}

static void file_wait(struct dispatch_lane *l, int64_t delay_ms, bool outage)
{
    l->st = LANE_WAITING;
    l->outage_wait = outage;
    l->wake_ms = util_mono_ms() + delay_ms;
}

void dispatch_file_send_next(struct dispatch *d, struct dispatch_lane *l)
{
    struct fileop_request req;
    int rc = fileop_next(l->fop, &req);
    if (rc == 0) {
        dispatch_settle_batch(d, l);
        return;
    }
    struct dispatch_slot *s = rc > 0 ? dispatch_slot_free(d) : NULL;
    struct http_client *src = source_http(d, l->sub->route->from);
    struct http_client *c = req.to_source || req.step == FILEOP_TRANSFER ? src : d->http;
    bool started = false;
    if (s && c) {
        s->lane = l;
        if (req.step == FILEOP_TRANSFER) {
            long timeout =
                (long)fileop_timeout_ms(req.spec.size, d->cfg->consumer.request_timeout_ms);
            l->xfer = xfer_start(d->multi, src, req.src_path, d->http, req.method, req.path,
                                 s->easy, &l->resp, &req.spec, timeout);
            if ((started = l->xfer != NULL)) {
                d->in_flight++;
                metrics_set(d->m_in_flight, (double)d->in_flight);
                xlane_set(d, l, true);
                log_info(COMP,
                         "event=file_transfer topic=%s partition=%" PRId32 " key=%s bytes=%" PRId64
                         " to=%s",
                         l->sub->topic, l->partition, LOG_Q(l->fop->id), req.spec.size,
                         req.spec.create ? "create" : "replace");
            }
        } else {
            started =
                dispatch_slot_start_to(d, c, s, req.method, req.path, req.body, &l->resp) == 0;
        }
        if (!started)
            s->lane = NULL;
    }
    if (!started) {
        if (rc > 0 && s && c)
            log_error(COMP, "event=request_not_started topic=%s partition=%" PRId32, l->sub->topic,
                      l->partition);
        http_response_free(&l->resp);
        file_wait(l, rc > 0 && !s ? 0 : 1000, false);
        if (rc > 0 && !s)
            l->st = LANE_READY; /* a slot frees up soon */
        return;
    }
    dispatch_lane_sent(l, s);
    l->fop_step = req.step;
    log_debug(COMP, "event=request topic=%s partition=%" PRId32 " step=%s method=%s path=%s%s",
              l->sub->topic, l->partition, fileop_step_name(req.step), req.method, LOG_Q(req.path),
              req.to_source ? " to=source" : "");
}

/* A file operation's request (or its transfer) ended. */
void dispatch_file_done(struct dispatch *d, struct dispatch_slot *s)
{
    struct dispatch_lane *l = s->lane;
    dispatch_slot_end(d, s);
    l->slot = NULL;
    struct http_response *r = &l->resp;
    enum fileop_step step = l->fop_step;
    int64_t delay = 0;
    enum fileop_verdict v;
    dispatch_count_request(d, fileop_step_name(step), r);
    if (step == FILEOP_TRANSFER) {
        struct xfer_result xr;
        metrics_add(d->m_file_bytes, (double)xfer_sent(l->xfer));
        xfer_end(l->xfer, &xr);
        l->xfer = NULL;
        xlane_set(d, l, false);
        double secs = (double)(util_mono_ms() - l->sent_ms) / 1000.0;
        v = fileop_transferred(l->fop, r, &xr, &delay);
        if (l->fop->transferred) {
            metrics_observe(d->m_file_seconds, secs);
            log_info(COMP,
                     "event=file_transferred topic=%s partition=%" PRId32 " key=%s bytes=%" PRId64
                     " seconds=%.3f mb_per_s=%.1f",
                     l->sub->topic, l->partition, LOG_Q(l->fop->id), xr.received, secs,
                     secs > 0 ? (double)xr.received / 1048576.0 / secs : 0.0);
        } else {
            char up[600], dl[600];
            directus_describe(r, up, sizeof(up));
            directus_describe(&xr.dl, dl, sizeof(dl));
            log_warn(COMP,
                     "event=file_transfer_failed topic=%s partition=%" PRId32 " key=%s "
                     "received=%" PRId64 " expected=%" PRId64 " upload=%s download=%s "
                     "retry_ms=%" PRId64,
                     l->sub->topic, l->partition, LOG_Q(l->fop->id), xr.received, xr.expected,
                     LOG_Q(up), LOG_Q(dl), delay);
        }
        http_response_free(&xr.dl);
    } else {
        v = fileop_answer(l->fop, r, &delay);
    }
    bool to_source = step == FILEOP_SOURCE || step == FILEOP_PROBE;
    if (v == FILEOP_RETRY_REMOTE) {
        remote_failed(d->remote, r, util_mono_ms());
        metrics_add(d->m_retry_outage, 1);
    } else if (!to_source && r->klass == HTTP_OK) {
        dispatch_remote_ok(d);
    }
    if (v == FILEOP_RETRY_SOURCE)
        log_warn(COMP,
                 "event=source_unavailable topic=%s partition=%" PRId32 " key=%s step=%s "
                 "status=%ld message=%s retry_ms=%" PRId64,
                 l->sub->topic, l->partition, LOG_Q(l->fop->id), fileop_step_name(step), r->status,
                 LOG_Q(r->message), delay);
    http_response_free(r);
    switch (v) {
    case FILEOP_NEXT:
    case FILEOP_DONE:
        l->st = LANE_READY;
        break;
    case FILEOP_RETRY_REMOTE:
        file_wait(l, delay, true);
        break;
    case FILEOP_RETRY_SOURCE:
    case FILEOP_RETRY_ITEM:
        if (v == FILEOP_RETRY_ITEM)
            metrics_add(d->m_retry_item, 1);
        file_wait(l, delay, false);
        break;
    }
}

/* A download of a file's transfer ended (it is none of the slots). */
bool dispatch_download_done(struct dispatch *d, CURL *easy, CURLcode result)
{
    for (size_t i = 0; i < d->nslots; i++) {
        struct dispatch_lane *l = d->xlanes[i];
        if (l && xfer_owns(l->xfer, easy)) {
            xfer_download_done(l->xfer, result);
            return true;
        }
    }
    return false;
}

/* Resumes the transfers whose sides wait for each other; true when one was. */
bool dispatch_kick_transfers(struct dispatch *d)
{
    bool kicked = false;
    for (size_t i = 0; i < d->nslots; i++)
        if (d->xlanes[i] && d->xlanes[i]->xfer && xfer_kick(d->xlanes[i]->xfer))
            kicked = true;
    return kicked;
}
