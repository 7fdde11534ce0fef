/* dispatch.c: a slot is one curl easy handle, owned either by a lane (its batch's request) or by
 * a field list request; a finished transfer goes back to whoever owns the slot. A lane whose
 * batch is a file operation is driven by dispatch_file.c. */
#include "directus.h"
#include "dispatch_int.h"

#include "log.h"
#include "plan.h"
#include "util.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define COMP "consumer"

/* A parked event (waiting for the item it points at) is tried again on this schedule: 1 s
 * doubling to 30 s, and PARENT_NUDGE_MS after anything else was applied (the parent may have
 * been it). */
#define PARENT_RETRY_BASE_MS 1000
#define PARENT_RETRY_MAX_MS  30000
#define PARENT_NUDGE_MS      200

static bool parked_due(const struct dispatch *d, const struct partq_ev *pe, int64_t now)
{
    return now >= pe->parked_until || (pe->parked_gen != d->applied_gen && now >= pe->parked_nudge);
}

/* When a parked event is due next (for the loop's sleep). */
static int64_t parked_wake(const struct dispatch *d, const struct partq_ev *pe)
{
    return pe->parked_gen != d->applied_gen && pe->parked_nudge < pe->parked_until
               ? pe->parked_nudge
               : pe->parked_until;
}

void dispatch_set_state(struct dispatch *d, dispatch_fetch_fn fetch, dispatch_history_fn history,
                        void *opaque)
{
    d->fetch = fetch;
    d->history = history;
    d->state = opaque;
}

struct refill_at {
    struct dispatch *d;
    const char *collection;
    int32_t partition;
};

static int refill_fetch(void *opaque, const char *source, int64_t offset, struct event *out)
{
    struct refill_at *at = opaque;
    return at->d->fetch(at->d->state, source, at->collection, at->partition, offset, out);
}

/* Tries of a refill whose writes could not all be read (Kafka unreachable, the restore client
 * busy with a new assignment), 500 ms apart, before the item is created with what it has. */
#define REFILL_TRIES 20

/* pe is an update about to create its item, missing on the remote (apply_batch_recreates): the
 * members of its data whose newest write is another event get that write's value
 * (lww_refill_data). Returns false when a write could not be read and it is worth trying again
 * (the caller waits 500 ms); after REFILL_TRIES, a write that cannot be read leaves the value
 * as it is (logged). */
static bool refill(struct dispatch *d, struct dispatch_lane *l, struct partq_ev *pe)
{
    struct refill_at at = {d, l->sub->coll->collection, l->partition};
    size_t unread = 0;
    size_t n = lww_refill_data(d->lww, &pe->ev, refill_fetch, &at, &unread);
    metrics_add(d->m_refills, (double)n);
    if (unread && ++pe->refill_tries < REFILL_TRIES)
        return false;
    if (unread)
        log_warn(COMP,
                 "event=refill_failed topic=%s partition=%" PRId32 " offset=%" PRId64
                 " key=%s unread=%zu (those fields are created with the values the event holds)",
                 l->sub->topic, l->partition, pe->offset, LOG_Q(pe->ev.key_text), unread);
    log_debug(COMP,
              "event=refill topic=%s partition=%" PRId32 " offset=%" PRId64 " key=%s fields=%zu",
              l->sub->topic, l->partition, pe->offset, LOG_Q(pe->ev.key_text), n);
    return true;
}

/* ----------------------------------------------------------------------------------- slots */

struct dispatch_slot *dispatch_slot_free(struct dispatch *d)
{
    for (size_t i = 0; i < d->nslots; i++)
        if (!d->slots[i].lane && !d->slots[i].fields_coll)
            return &d->slots[i];
    return NULL;
}

int dispatch_slot_start_to(struct dispatch *d, struct http_client *c, struct dispatch_slot *s,
                           const char *method, const char *path, const char *body,
                           struct http_response *resp)
{
    if (http_prepare(c, s->easy, method, path, body, resp) ||
        curl_multi_add_handle(d->multi, s->easy) != CURLM_OK)
        return -1;
    d->in_flight++;
    metrics_set(d->m_in_flight, (double)d->in_flight);
    return 0;
}

static int slot_start(struct dispatch *d, struct dispatch_slot *s, const char *method,
                      const char *path, const char *body, struct http_response *resp)
{
    return dispatch_slot_start_to(d, d->http, s, method, path, body, resp);
}

void dispatch_slot_end(struct dispatch *d, struct dispatch_slot *s)
{
    curl_multi_remove_handle(d->multi, s->easy);
    s->lane = NULL;
    s->fields_coll = NULL;
    d->in_flight--;
    metrics_set(d->m_in_flight, (double)d->in_flight);
}

void dispatch_count_request(struct dispatch *d, const char *step, const struct http_response *r)
{
    char labels[160];
    snprintf(labels, sizeof(labels), "remote=\"%s\",step=\"%s\",class=\"%s\"", d->remote_name, step,
             http_class_name(r->klass));
    metrics_add(metrics_counter(d->m, "dxsync_consumer_requests_total",
                                "Requests sent to the remote Directus, by step and outcome",
                                labels),
                1);
    metrics_observe(d->m_latency, r->seconds);
}

/* ---------------------------------------------------------------------- remote availability */

void dispatch_remote_ok(struct dispatch *d)
{
    bool notified;
    if (!remote_answered(d->remote, util_mono_ms(), &notified))
        return;
    if (notified)
        dlq_remote_event(d->dlq, ERROR_REMOTE_RECOVERED, d->subs, d->nsubs, 0, "", "",
                         d->remote->down_retries);
    d->recovered = true; /* the other lanes need not sit out their backoff */
}

/* ------------------------------------------------------------------------------ field lists */

static void fields_send(struct dispatch *d, struct dispatch_slot *s, const char *coll)
{
    char path[1024];
    int64_t now = util_mono_ms();
    if (directus_fields_path(coll, path, sizeof(path))) {
        remote_fields_answer(d->remote, coll, NULL, now);
        return;
    }
    s->fields_coll = coll;
    if (slot_start(d, s, "GET", path, NULL, &s->resp)) {
        s->fields_coll = NULL;
        http_response_free(&s->resp);
        remote_fields_answer(d->remote, coll, NULL, now);
        return;
    }
    log_debug(COMP, "event=request method=GET path=%s", LOG_Q(path));
}

static void fields_done(struct dispatch *d, struct dispatch_slot *s)
{
    const char *coll = s->fields_coll;
    struct http_response *r = &s->resp;
    dispatch_slot_end(d, s);
    dispatch_count_request(d, apply_step_name(APPLY_STEP_FIELDS), r);
    int64_t now = util_mono_ms();
    enum directus_answer a = directus_classify(r, true);
    if (a == DIRECTUS_OK)
        dispatch_remote_ok(d);
    else if (directus_is_outage(a))
        remote_failed(d->remote, r, now);
    remote_fields_answer(d->remote, coll, r, now);
    http_response_free(r);
}

/* ---------------------------------------------------------------------------------- batches */

void dispatch_lane_init(struct dispatch_lane *l, const struct routes_sub *sub, int32_t partition,
                        struct partq *q)
{
    memset(l, 0, sizeof(*l));
    l->sub = sub;
    l->partition = partition;
    l->q = q;
}

/* Plans l's next batch from its waiting events. Returns 0 (possibly with no batch), -1 when
 * out of memory. */
static int plan_batch(struct dispatch *d, struct dispatch_lane *l)
{
    struct partq *q = l->q;
    size_t n = partq_len(q);
    size_t bmax = (size_t)d->cfg->consumer.batch_max;
    if (n > d->scratch_cap) {
        const struct event **e = realloc(d->scratch_evs, n * sizeof(*e));
        if (!e)
            return -1;
        d->scratch_evs = e;
        const char **k = realloc(d->scratch_keys, n * sizeof(*k));
        if (!k)
            return -1;
        d->scratch_keys = k;
        d->scratch_cap = n;
    }
    /* Events waiting for the item they point at: one not due yet holds its key (what follows
     * of that key waits behind it); due ones are tried again in a batch of their own, so that
     * a parent still missing costs the other keys no split requests. */
    int64_t now = util_mono_ms();
    bool retry_parked = false;
    size_t nblocked = 0;
    if (q->parked) {
        for (size_t i = 0; i < n; i++) {
            struct partq_ev *pe = partq_at(q, i);
            if (pe->parked && pe->state == PARTQ_WAITING && parked_due(d, pe, now))
                retry_parked = true;
        }
    }
    /* the candidates, in offset order: up to a key another lane holds */
    size_t cand = 0;
    bool stop = false;
    for (size_t i = 0; i < n; i++) {
        struct partq_ev *pe = partq_at(q, i);
        d->scratch_evs[i] = NULL;
        if (stop || pe->state != PARTQ_WAITING)
            continue;
        bool blocked = false;
        for (size_t k = 0; k < nblocked && !blocked; k++)
            blocked = strcmp(d->scratch_keys[k], pe->ev.key_text) == 0;
        if (blocked)
            continue; /* behind an event of its key that waits for its parent or history */
        if (q->parked) {
            if (pe->parked && !(retry_parked && parked_due(d, pe, now))) {
                d->scratch_keys[nblocked++] = pe->ev.key_text;
                continue;
            }
            if (retry_parked && !pe->parked)
                continue; /* this round tries the parked ones */
        }
        if (pe->history && lww_floor(d->lww, l->partition) != LWW_COMPLETE) {
            d->scratch_keys[nblocked++] = pe->ev.key_text; /* waits for the history */
            continue;
        }
        if (cand >= bmax || !lww_may_claim(d->lww, &pe->ev, l)) {
            stop = true;
            continue;
        }
        /* in the log at the assignment, or committed before it (published late): this member
         * cannot know whether a write of the key was applied after it (lww_decide) */
        bool pending = pe->offset < l->restore_end ||
                       (pe->ev.has_commit_us &&
                        pe->ev.commit_us / 1000 < l->assigned_ms + LWW_REPAIR_MARGIN_MS);
        enum lww_verdict v = lww_decide(d->lww, &pe->ev, l->sub->local, pending);
        if (v == LWW_HISTORY) {
            if (!pe->history) {
                pe->history = true;
                metrics_add(d->m_history, 1);
                log_info(COMP,
                         "event=history_wait topic=%s partition=%" PRId32 " offset=%" PRId64
                         " key=%s commit_us=%" PRId64 " floor_us=%" PRId64,
                         l->sub->topic, l->partition, pe->offset, LOG_Q(pe->ev.key_text),
                         pe->ev.has_commit_us ? pe->ev.commit_us : 0,
                         lww_floor(d->lww, l->partition));
            }
            if (d->history)
                d->history(d->state, l->partition);
            d->scratch_keys[nblocked++] = pe->ev.key_text;
            continue;
        }
        pe->history = false;
        if (v == LWW_SKIP) {
            if (!l->sub->local) {
                metrics_add(d->m_superseded, 1);
                log_debug(COMP,
                          "event=superseded topic=%s partition=%" PRId32 " offset=%" PRId64
                          " key=%s",
                          l->sub->topic, l->partition, pe->offset, LOG_Q(pe->ev.key_text));
            }
            partq_set(q, pe, PARTQ_DONE);
            continue;
        }
        if (l->sub->local) {
            metrics_add(d->m_repairs, 1);
            log_info(COMP,
                     "event=local_repair topic=%s partition=%" PRId32 " offset=%" PRId64
                     " key=%s action=%s",
                     l->sub->topic, l->partition, pe->offset, LOG_Q(pe->ev.key_text),
                     event_action_name(pe->ev.action));
        }
        if (log_enabled(LOG_LEVEL_DEBUG)) {
            cJSON *m = pe->ev.action == EVENT_UPDATE ? pe->ev.delta : pe->ev.data;
            char fields[200] = "", *at = fields;
            for (cJSON *f = m ? m->child : NULL; f && at < fields + sizeof(fields) - 1; f = f->next)
                at += snprintf(at, (size_t)(fields + sizeof(fields) - at), "%s%s",
                               at > fields ? "," : "", f->string ? f->string : "?");
            log_debug(COMP,
                      "event=planned topic=%s partition=%" PRId32 " offset=%" PRId64
                      " key=%s action=%s fields=%s",
                      l->sub->topic, l->partition, pe->offset, LOG_Q(pe->ev.key_text),
                      event_action_name(pe->ev.action), LOG_Q(fields));
        }
        d->scratch_evs[i] = &pe->ev;
        cand++;
    }
    size_t k = plan_next(d->scratch_evs, n, bmax, d->scratch_idx);
    if (k == 0)
        return 0;
    struct partq_ev **bev = realloc(l->bev, k * sizeof(*bev));
    if (!bev)
        return -1;
    l->bev = bev;
    for (size_t i = 0; i < k; i++) {
        bev[i] = partq_at(q, d->scratch_idx[i]);
        d->scratch_evs[i] = &bev[i]->ev;
    }
    struct apply_params params = {
        .collection = l->sub->coll->collection,
        .coll = l->sub->coll,
        .pk = remote_pk(d->remote, l->sub->coll->collection),
        .item_attempts = d->cfg->consumer.item_attempts,
        .seed = d->seed++,
    };
    /* a file's create or update is a file operation of its own (deletes go the usual way) */
    bool file =
        strcmp(l->sub->coll->collection, DIRECTUS_FILES) == 0 && bev[0]->ev.action != EVENT_DELETE;
    if (file)
        k = 1;
    if (apply_batch_init(&l->batch, &params, d->scratch_evs, k))
        return -1;
    if (file) {
        struct fileop *op = malloc(sizeof(*op));
        bool content = plan_file_content(&bev[0]->ev, l->sub->coll) && !bev[0]->file_sent;
        if (!op || fileop_init(op, &bev[0]->ev, l->sub->coll, &l->batch.items[0], content,
                               l->sub->local, d->cfg->consumer.item_attempts, d->seed++)) {
            if (op)
                fileop_free(op);
            free(op);
            apply_batch_free(&l->batch);
            return -1;
        }
        l->fop = op;
    }
    for (size_t i = 0; i < k; i++) {
        partq_set(q, bev[i], PARTQ_IN_BATCH);
        lww_claim(d->lww, &bev[i]->ev, l);
    }
    l->has_batch = true;
    l->st = LANE_READY;
    metrics_observe(d->m_batch, (double)k);
    return 0;
}

/* Whether the remote refused the item because an item it points at is missing there (a parent
 * that may still be on its way from another topic), or the item is a file whose bytes the
 * source is still storing: either waits. */
static bool parent_missing(const struct apply_item *it)
{
    return (it->status == 400 && strcmp(it->code, "INVALID_FOREIGN_KEY") == 0) ||
           strcmp(it->code, FILEOP_NOT_READY) == 0;
}

/* it was refused for a missing parent: it waits (partq_park) and returns true, or, after
 * consumer.parent_wait_s, becomes a PARENT_MISSING failure (false, it->code rewritten). */
static bool park(struct dispatch *d, struct dispatch_lane *l, struct partq_ev *pe,
                 struct apply_item *it)
{
    int64_t now = util_mono_ms(), wait_ms = (int64_t)d->cfg->consumer.parent_wait_s * 1000;
    if (!pe->parked) {
        pe->parked_since = now;
        pe->parent_tries = 0;
        d->parked_total++;
        metrics_set(d->m_parked, (double)d->parked_total);
    }
    pe->parent_tries++;
    bool file = strcmp(it->code, FILEOP_NOT_READY) == 0;
    const char *field = it->field[0] ? it->field : "?", *value = it->value[0] ? it->value : "?";
    if (now - pe->parked_since >= wait_ms) {
        log_warn(COMP,
                 "event=parent_missing topic=%s partition=%" PRId32 " offset=%" PRId64
                 " key=%s field=%s value=%s waited_s=%" PRId64,
                 l->sub->topic, l->partition, pe->offset, LOG_Q(pe->ev.key_text), LOG_Q(field),
                 LOG_Q(value), (now - pe->parked_since) / 1000);
        if (strcmp(it->code, FILEOP_NOT_READY) == 0) {
            char was[sizeof(it->message) - 64];
            util_strlcpy(was, it->message, sizeof(was));
            snprintf(it->message, sizeof(it->message), "after %d s of waiting, %.400s",
                     d->cfg->consumer.parent_wait_s, was);
            util_strlcpy(it->code, "FILE_INCOMPLETE", sizeof(it->code));
        } else {
            snprintf(it->message, sizeof(it->message),
                     "field \"%s\" points at %s, which %s still does not have after %d s of "
                     "waiting (Directus: %s)",
                     field, value, d->remote_name, d->cfg->consumer.parent_wait_s, it->code);
            util_strlcpy(it->code, "PARENT_MISSING", sizeof(it->code));
        }
        if (pe->parked) {
            d->parked_total--;
            metrics_set(d->m_parked, (double)d->parked_total);
        }
        return false;
    }
    int shift = pe->parent_tries - 1 < 5 ? pe->parent_tries - 1 : 5;
    int64_t delay = (int64_t)PARENT_RETRY_BASE_MS << shift;
    if (delay > PARENT_RETRY_MAX_MS)
        delay = PARENT_RETRY_MAX_MS;
    if (now + delay > pe->parked_since + wait_ms)
        delay = pe->parked_since + wait_ms - now; /* the last try at the deadline */
    pe->parked_until = now + delay;
    pe->parked_nudge = now + PARENT_NUDGE_MS;
    pe->parked_gen = d->applied_gen;
    if (pe->parent_tries == 1) {
        metrics_add(d->m_parent_waits, 1);
        if (file)
            log_info(COMP,
                     "event=file_wait topic=%s partition=%" PRId32 " offset=%" PRId64
                     " key=%s why=%s wait_s=%d",
                     l->sub->topic, l->partition, pe->offset, LOG_Q(pe->ev.key_text),
                     LOG_Q(it->message), d->cfg->consumer.parent_wait_s);
        else
            log_info(COMP,
                     "event=parent_wait topic=%s partition=%" PRId32 " offset=%" PRId64
                     " key=%s field=%s value=%s wait_s=%d",
                     l->sub->topic, l->partition, pe->offset, LOG_Q(pe->ev.key_text), LOG_Q(field),
                     LOG_Q(value), d->cfg->consumer.parent_wait_s);
    }
    partq_park(l->q, pe);
    return true;
}

/* Settles the batch: applied items are done, failed ones go to the DLQ (or wait for their
 * parent). A batch cut short (revoke, stop) gives its other items back to the queue. */
void dispatch_settle_batch(struct dispatch *d, struct dispatch_lane *l)
{
    int64_t now = util_wall_ms();
    bool applied = false;
    if (l->fop) {
        struct partq_ev *pe = l->bev[0];
        if (l->fop->transferred) {
            pe->file_sent = true; /* a retry of its fields (a folder still missing) skips them */
            metrics_add(d->m_files, 1);
        }
        if (l->fop->gone)
            log_info(COMP,
                     "event=file_gone topic=%s partition=%" PRId32 " offset=%" PRId64
                     " key=%s (deleted on the source since; its delete follows)",
                     l->sub->topic, l->partition, pe->offset, LOG_Q(pe->ev.key_text));
        fileop_free(l->fop);
        free(l->fop);
        l->fop = NULL;
    }
    for (size_t i = 0; i < l->batch.nitems; i++) {
        struct apply_item *it = &l->batch.items[i];
        struct partq_ev *pe = l->bev[i];
        lww_release(d->lww, &pe->ev, l, it->state == APPLY_APPLIED, now);
        log_debug(COMP,
                  "event=settled topic=%s partition=%" PRId32 " offset=%" PRId64
                  " key=%s applied=%d status=%ld",
                  l->sub->topic, l->partition, pe->offset, LOG_Q(pe->ev.key_text),
                  it->state == APPLY_APPLIED, it->status);
        switch (it->state) {
        case APPLY_APPLIED:
            if (it->dropped && !l->sub->local) {
                /* stored without a field it wrote: settled once the field list is read again
                 * (consume.c: FIELD_NOT_ON_REMOTE when the remote lost the field) */
                log_warn(COMP,
                         "event=field_not_stored topic=%s partition=%" PRId32 " offset=%" PRId64
                         " key=%s field=%s",
                         l->sub->topic, l->partition, pe->offset, LOG_Q(pe->ev.key_text),
                         LOG_Q(it->dropped));
                pe->dropped = it->dropped;
                remote_check_dropped(d->remote, l->sub->coll->collection, it->dropped, true);
                partq_set(l->q, pe, PARTQ_WAITING);
                partq_hold(l->q, pe, true);
                applied = true;
                break;
            }
            if (pe->parked) {
                d->parked_total--;
                metrics_set(d->m_parked, (double)d->parked_total);
                log_info(COMP,
                         "event=parent_arrived topic=%s partition=%" PRId32 " offset=%" PRId64
                         " key=%s tries=%d",
                         l->sub->topic, l->partition, pe->offset, LOG_Q(pe->ev.key_text),
                         pe->parent_tries);
            }
            partq_set(l->q, pe, PARTQ_DONE);
            metrics_add(d->m_applied[pe->ev.action], 1);
            applied = true;
            break;
        case APPLY_FAILED: {
            if (!l->sub->local && parent_missing(it) && park(d, l, pe, it))
                break;
            if (l->sub->local) {
                /* a repair of the remote's own edit: the remote made that edit itself, so
                 * nothing is lost; it is not a change of a route to dead-letter */
                log_warn(COMP,
                         "event=local_repair_failed topic=%s partition=%" PRId32 " offset=%" PRId64
                         " key=%s status=%ld code=%s message=%s",
                         l->sub->topic, l->partition, pe->offset, LOG_Q(pe->ev.key_text),
                         it->status, LOG_Q(it->code[0] ? it->code : "-"), LOG_Q(it->message));
                partq_set(l->q, pe, PARTQ_DONE);
                break;
            }
            struct dlq_why why = {it->status, it->code, it->message, it->attempts};
            dlq_send(d->dlq, l->q, pe, l->sub, l->partition, &why);
            break;
        }
        case APPLY_PENDING:
            partq_set(l->q, pe, PARTQ_WAITING);
            break;
        }
    }
    if (applied)
        d->applied_gen++;
    apply_batch_free(&l->batch);
    l->has_batch = false;
    l->st = LANE_IDLE;
}

/* ------------------------------------------------------------------------------------ files */

/* l's request went out on slot s. */
void dispatch_lane_sent(struct dispatch_lane *l, struct dispatch_slot *s)
{
    l->slot = s;
    l->st = LANE_IN_FLIGHT;
    l->sent_ms = util_mono_ms();
}

void dispatch_lane_drop(struct dispatch *d, struct dispatch_lane *l)
{
    dispatch_xfer_stop(d, l);
    if (l->q && l->q->parked) {
        d->parked_total -= (int64_t)l->q->parked; /* the caller frees the queue */
        metrics_set(d->m_parked, (double)d->parked_total);
    }
    if (l->slot) {
        dispatch_slot_end(d, l->slot);
        l->slot = NULL;
        http_response_free(&l->resp);
    }
    if (l->has_batch) {
        for (size_t i = 0; i < l->batch.nitems; i++)
            lww_release(d->lww, &l->bev[i]->ev, l, true, util_wall_ms());
        apply_batch_free(&l->batch);
    }
    if (l->fop) {
        fileop_free(l->fop);
        free(l->fop);
        l->fop = NULL;
    }
    l->has_batch = false;
    free(l->bev);
    l->bev = NULL;
    l->st = LANE_IDLE;
}

/* Sends the batch's next request, or settles it when it has none left. */
static void send_next(struct dispatch *d, struct dispatch_lane *l)
{
    if (l->fop) {
        dispatch_file_send_next(d, l);
        return;
    }
    /* items the remote lacks are created from their event's data: bring it up to date first */
    size_t *idx = d->fetch ? malloc(l->batch.nitems * sizeof(*idx)) : NULL;
    size_t nre = idx ? apply_batch_recreates(&l->batch, idx, l->batch.nitems) : 0;
    bool unread = false;
    for (size_t i = 0; i < nre; i++) {
        struct partq_ev *pe = l->bev[idx[i]];
        if (!pe->refilled && refill(d, l, pe))
            pe->refilled = true;
        unread |= !pe->refilled;
    }
    bool oom = d->fetch && !idx;
    free(idx);
    if (oom || unread) {
        l->st = LANE_WAITING; /* out of memory, or a write to read again: try again soon */
        l->wake_ms = util_mono_ms() + (oom ? 1000 : 500);
        return;
    }
    struct apply_request req;
    int rc = apply_batch_next(&l->batch, &req);
    if (rc == 0) {
        dispatch_settle_batch(d, l);
        return;
    }
    struct dispatch_slot *s = rc > 0 ? dispatch_slot_free(d) : NULL;
    if (s)
        s->lane = l;
    if (!s || slot_start(d, s, req.method, req.path, req.body, &l->resp)) {
        if (s)
            s->lane = NULL;
        log_error(COMP, "event=request_not_started topic=%s partition=%" PRId32, l->sub->topic,
                  l->partition);
        http_response_free(&l->resp);
        l->st = LANE_WAITING;
        l->wake_ms = util_mono_ms() + 1000;
        return;
    }
    dispatch_lane_sent(l, s);
    l->sent_step = req.step;
    log_debug(COMP, "event=request topic=%s partition=%" PRId32 " method=%s path=%s items=%zu",
              l->sub->topic, l->partition, req.method, LOG_Q(req.path), req.nitems);
}

/* A batch request ended: feed its answer to the batch. */
static void batch_done(struct dispatch *d, struct dispatch_slot *s)
{
    if (s->lane->fop) {
        dispatch_file_done(d, s);
        return;
    }
    struct dispatch_lane *l = s->lane;
    dispatch_slot_end(d, s);
    l->slot = NULL;
    struct http_response *r = &l->resp;
    dispatch_count_request(d, apply_step_name(l->sent_step), r);
    if (r->klass != HTTP_OK)
        log_debug(COMP,
                  "event=answer topic=%s partition=%" PRId32 " step=%s status=%ld class=%s "
                  "code=%s message=%s",
                  l->sub->topic, l->partition, apply_step_name(l->sent_step), r->status,
                  http_class_name(r->klass), LOG_Q(r->code[0] ? r->code : "-"), LOG_Q(r->message));
    if (r->klass == HTTP_OK)
        dispatch_remote_ok(d);
    int64_t delay = 0;
    enum apply_verdict v = apply_batch_answer(&l->batch, r, &delay);
    if (l->sent_step == APPLY_STEP_FIELDS && !l->batch.need_fields) {
        if (l->batch.pk_guessed)
            log_warn(COMP,
                     "event=primary_key_unknown collection=%s assumed=id status=%ld "
                     "message=%s",
                     l->sub->coll->collection, r->status, LOG_Q(r->message));
        else
            remote_set_pk(d->remote, l->sub->coll->collection, l->batch.pk);
    }
    if (v == APPLY_RETRY_OUTAGE) {
        remote_failed(d->remote, r, util_mono_ms());
        metrics_add(d->m_retry_outage, 1);
    } else if (v == APPLY_RETRY_ITEM) {
        metrics_add(d->m_retry_item, 1);
        log_info(COMP,
                 "event=item_retry topic=%s partition=%" PRId32 " status=%ld code=%s "
                 "delay_ms=%" PRId64,
                 l->sub->topic, l->partition, r->status, LOG_Q(r->code[0] ? r->code : "-"), delay);
    }
    http_response_free(r);
    switch (v) {
    case APPLY_DONE:
        dispatch_settle_batch(d, l);
        break;
    case APPLY_NEXT:
        l->st = LANE_READY;
        break;
    case APPLY_RETRY_OUTAGE:
    case APPLY_RETRY_ITEM:
        l->st = LANE_WAITING;
        l->outage_wait = v == APPLY_RETRY_OUTAGE;
        l->wake_ms = util_mono_ms() + delay;
        break;
    }
}

void dispatch_transfers(struct dispatch *d)
{
    int running;
    curl_multi_perform(d->multi, &running);
    for (int round = 0; round < 64 && dispatch_kick_transfers(d); round++)
        curl_multi_perform(d->multi, &running);
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(d->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        if (dispatch_download_done(d, m->easy_handle, m->data.result))
            continue;
        for (size_t i = 0; i < d->nslots; i++) {
            struct dispatch_slot *s = &d->slots[i];
            if (s->easy != m->easy_handle)
                continue;
            CURLcode result = m->data.result;
            if (s->lane) {
                http_finish(s->easy, result, &s->lane->resp);
                batch_done(d, s);
            } else if (s->fields_coll) {
                http_finish(s->easy, result, &s->resp);
                fields_done(d, s);
            } else {
                curl_multi_remove_handle(d->multi, s->easy);
            }
            break;
        }
    }
}

/* Whether l should start a batch now: something waits (and no event waits for the field list),
 * and either linger is off, the batch would be full, or the oldest waiting event has lingered
 * long enough. */
static bool batch_due(const struct dispatch *d, const struct dispatch_lane *l, bool drained,
                      int64_t now, int64_t *wake)
{
    const struct partq *q = l->q;
    if (!q->waiting || q->held)
        return false;
    if (q->parked) {
        /* parked events not due yet do not count; a due one starts a batch at once */
        size_t ready = 0;
        for (size_t i = 0; i < partq_len(q); i++) {
            const struct partq_ev *pe = partq_at(q, i);
            if (pe->state != PARTQ_WAITING)
                continue;
            if (!pe->parked) {
                ready++;
                continue;
            }
            if (parked_due(d, pe, now))
                return true;
            int64_t due = parked_wake(d, pe);
            if (due < *wake)
                *wake = due;
        }
        if (!ready)
            return false;
    }
    size_t bmax = (size_t)d->cfg->consumer.batch_max;
    if (q->waiting >= bmax)
        return true;
    if (!drained)
        return false; /* more is on its way from Kafka: fill the batch first */
    int64_t linger = d->cfg->consumer.linger_ms;
    if (linger <= 0)
        return true;
    for (size_t i = 0; i < partq_len(q); i++) {
        const struct partq_ev *pe = partq_at(q, i);
        if (pe->state != PARTQ_WAITING)
            continue;
        int64_t due = pe->arrived_ms + linger;
        if (due <= now)
            return true;
        if (due < *wake)
            *wake = due;
        return false;
    }
    return false;
}

int64_t dispatch_schedule(struct dispatch *d, struct dispatch_lane *const *lanes, size_t n,
                          bool drained)
{
    int64_t now = util_mono_ms(), wake = INT64_MAX;
    if (d->recovered) {
        d->recovered = false;
        for (size_t i = 0; i < n; i++)
            if (lanes[i]->st == LANE_WAITING && lanes[i]->outage_wait && lanes[i]->wake_ms > now)
                lanes[i]->wake_ms = now;
    }
    /* field lists first: events wait for them */
    struct dispatch_slot *s;
    const char *coll;
    while ((s = dispatch_slot_free(d)) && (coll = remote_refresh_due(d->remote, now, &wake)))
        fields_send(d, s, coll);
    for (size_t k = 0; k < n && d->in_flight < d->nslots; k++) {
        struct dispatch_lane *l = lanes[(d->rr + k) % n];
        if (l->leaving || l->restoring)
            continue;
        if (l->st == LANE_WAITING) {
            if (l->wake_ms > now) {
                if (l->wake_ms < wake)
                    wake = l->wake_ms;
                continue;
            }
            l->st = LANE_READY;
        }
        if (l->st == LANE_IDLE && batch_due(d, l, drained, now, &wake) && plan_batch(d, l)) {
            log_error(COMP, "event=out_of_memory what=batch");
            continue;
        }
        if (l->st == LANE_READY)
            send_next(d, l);
    }
    if (n)
        d->rr = (d->rr + 1) % n;
    /* what could not start for want of a slot is due as soon as one frees up */
    for (size_t k = 0; k < n; k++)
        if (lanes[k]->st == LANE_WAITING && lanes[k]->wake_ms < wake)
            wake = lanes[k]->wake_ms;
    return wake;
}

void dispatch_wait(struct dispatch *d, int wake_fd, int timeout_ms)
{
    /* a transfer side resumed here has bytes to move now: a paused handle's socket is not
     * polled, so waiting would stall it */
    if (dispatch_kick_transfers(d))
        timeout_ms = 0;
    struct curl_waitfd wfd = {.fd = wake_fd, .events = CURL_WAIT_POLLIN};
    curl_multi_poll(d->multi, wake_fd >= 0 ? &wfd : NULL, wake_fd >= 0 ? 1 : 0, timeout_ms, NULL);
}

void dispatch_finish_leaving(struct dispatch *d, struct dispatch_lane *const *lanes, size_t n)
{
    /* a file's transfer may take long: it stops, and starts again where the partition goes */
    for (size_t i = 0; i < n; i++) {
        struct dispatch_lane *l = lanes[i];
        if (l->leaving && l->xfer) {
            dispatch_xfer_stop(d, l);
            dispatch_slot_end(d, l->slot);
            l->slot = NULL;
            http_response_free(&l->resp);
        }
    }
    int64_t deadline = util_mono_ms() + d->cfg->consumer.request_timeout_ms + 2000;
    for (;;) {
        bool busy = false;
        for (size_t i = 0; i < n; i++)
            if (lanes[i]->leaving && lanes[i]->slot)
                busy = true;
        if (!busy || util_mono_ms() > deadline)
            break;
        curl_multi_poll(d->multi, NULL, 0, 50, NULL);
        dispatch_transfers(d);
    }
    for (size_t i = 0; i < n; i++) {
        struct dispatch_lane *l = lanes[i];
        if (l->leaving && l->has_batch && !l->slot)
            dispatch_settle_batch(d, l);
    }
}

size_t dispatch_in_flight(const struct dispatch *d)
{
    return d->in_flight;
}

bool dispatch_lane_can_send(const struct dispatch *d, const struct dispatch_lane *l)
{
    return l->st == LANE_READY && d->in_flight < d->nslots;
}

/* ---------------------------------------------------------------------------------- set-up */

static void register_metrics(struct dispatch *d)
{
    char l[160];
    for (int a = 0; a < 4; a++) {
        snprintf(l, sizeof(l), "remote=\"%s\",action=\"%s\"", d->remote_name,
                 event_action_name((enum event_action)a));
        d->m_applied[a] = metrics_counter(d->m, "dxsync_consumer_events_applied_total",
                                          "Events the remote holds, by action", l);
    }
    snprintf(l, sizeof(l), "remote=\"%s\"", d->remote_name);
    d->m_latency = metrics_histogram(d->m, "dxsync_consumer_request_seconds",
                                     "Latency of requests to the remote", l, NULL, 0);
    static const double sizes[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000};
    d->m_batch = metrics_histogram(d->m, "dxsync_consumer_batch_size", "Events per batch", l, sizes,
                                   DX_ARRAY_LEN(sizes));
    d->m_in_flight = metrics_gauge(d->m, "dxsync_consumer_requests_in_flight",
                                   "Requests to the remote in flight", l);
    d->m_superseded = metrics_counter(
        d->m, "dxsync_consumer_events_superseded_total",
        "Events not written because newer writes own all their fields (convergence)", l);
    d->m_repairs = metrics_counter(d->m, "dxsync_consumer_local_repairs_total",
                                   "The remote's own edits written back over an older value", l);
    d->m_refills = metrics_counter(
        d->m, "dxsync_consumer_refilled_fields_total",
        "Fields of an item brought back after a delete, taken from their newest write", l);
    d->m_parent_waits = metrics_counter(
        d->m, "dxsync_consumer_parent_waits_total",
        "Events refused for a missing referenced item that started waiting for it", l);
    d->m_parked = metrics_gauge(d->m, "dxsync_consumer_events_waiting_for_parent",
                                "Events waiting for the item they point at", l);
    d->m_history = metrics_counter(
        d->m, "dxsync_consumer_history_waits_total",
        "Events older than their partition's horizon that waited for its history to be read", l);
    d->m_file_bytes = metrics_counter(d->m, "dxsync_consumer_file_bytes_total",
                                      "Bytes of files moved from their source into the remote", l);
    d->m_files = metrics_counter(d->m, "dxsync_consumer_files_applied_total",
                                 "Files whose bytes the remote received", l);
    static const double secs[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800};
    d->m_file_seconds =
        metrics_histogram(d->m, "dxsync_consumer_file_transfer_seconds",
                          "Time of a file's transfer from its source", l, secs, DX_ARRAY_LEN(secs));
    snprintf(l, sizeof(l), "remote=\"%s\",reason=\"outage\"", d->remote_name);
    d->m_retry_outage = metrics_counter(d->m, "dxsync_consumer_retries_total",
                                        "Requests retried after a backoff", l);
    snprintf(l, sizeof(l), "remote=\"%s\",reason=\"item\"", d->remote_name);
    d->m_retry_item = metrics_counter(d->m, "dxsync_consumer_retries_total",
                                      "Requests retried after a backoff", l);
}

struct dispatch *dispatch_new(const struct config *cfg, const struct config_instance *inst,
                              struct remote *remote, struct dlq *dlq, struct lww *lww,
                              const struct routes_sub *subs, size_t nsubs, struct metrics *m,
                              char *err, size_t errlen)
{
    struct dispatch *d = calloc(1, sizeof(*d));
    if (!d)
        goto oom;
    d->cfg = cfg;
    d->remote_name = inst->name;
    d->remote = remote;
    d->dlq = dlq;
    d->lww = lww;
    d->subs = subs;
    d->nsubs = nsubs;
    d->m = m;
    d->seed = (uint64_t)util_wall_ms() ^ ((uint64_t)getpid() << 32);
    d->scratch_idx = calloc((size_t)cfg->consumer.batch_max, sizeof(*d->scratch_idx));
    if (!d->scratch_idx)
        goto oom;
    d->http = directus_client(inst, cfg->consumer.request_timeout_ms, err, errlen);
    if (!d->http) {
        dispatch_free(d);
        return NULL;
    }
    d->multi = curl_multi_init();
    d->nslots = (size_t)cfg->consumer.max_in_flight;
    d->slots = calloc(d->nslots, sizeof(*d->slots));
    d->xlanes = calloc(d->nslots, sizeof(*d->xlanes));
    d->src_http = calloc(cfg->ninstances ? cfg->ninstances : 1, sizeof(*d->src_http));
    if (!d->multi || !d->slots || !d->xlanes || !d->src_http)
        goto oom;
    curl_multi_setopt(d->multi, CURLMOPT_MAXCONNECTS, (long)d->nslots + 2);
    for (size_t i = 0; i < d->nslots; i++)
        if (!(d->slots[i].easy = curl_easy_init()))
            goto oom;
    register_metrics(d);
    return d;
oom:
    snprintf(err, errlen, "out of memory");
    dispatch_free(d);
    return NULL;
}

void dispatch_free(struct dispatch *d)
{
    if (!d)
        return;
    for (size_t i = 0; d->slots && i < d->nslots; i++) {
        struct dispatch_slot *s = &d->slots[i];
        if (!s->easy)
            continue;
        curl_multi_remove_handle(d->multi, s->easy);
        if (s->fields_coll)
            http_response_free(&s->resp);
        curl_easy_cleanup(s->easy);
    }
    free(d->xlanes); /* empty: every lane was dropped first (dispatch_lane_drop) */
    for (size_t i = 0; d->src_http && i < d->cfg->ninstances; i++)
        http_client_free(d->src_http[i]);
    free(d->src_http);
    free(d->slots);
    if (d->multi)
        curl_multi_cleanup(d->multi);
    http_client_free(d->http);
    free(d->scratch_evs);
    free(d->scratch_keys);
    free(d->scratch_idx);
    free(d);
}
