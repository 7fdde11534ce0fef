/* consume.c: the loop of dxsync-consumer run. It owns group membership (rebalances), intake
 * (messages -> decoded events in their partition's queue) and the turn of the loop; each
 * partition's queue and offsets are partq's, its batches dispatch's, what is known of the
 * remote remote's, dead letters dlq's, the convergence clocks lww's; the assigned partitions
 * themselves are consume_parts.c's.
 *
 * Convergence (lww.h): besides the routes into the remote it subscribes to the remote's own
 * topics (its local edits), every event taken is observed by the clocks before it may be
 * planned, and at every assignment the assigned partitions are first read back from their
 * checkpoint to their end (state.h), so the clocks hold every write in the log before
 * anything is applied. The group uses static membership (group.instance.id, the member's
 * name): a restart within consumer.session_timeout_ms is no rebalance at all. */
#include "consume.h"

#include "cli.h"
#include "consume_int.h"
#include "dispatch.h"
#include "dlq.h"
#include "intake.h"
#include "kafka.h"
#include "log.h"
#include "lww.h"
#include "partq.h"
#include "recent.h"
#include "remote.h"
#include "routes.h"
#include "signals.h"
#include "state.h"
#include "util.h"

#include <fcntl.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Messages taken from Kafka per turn of the loop before requests get their turn. */
#define DRAIN_BUDGET 2000
/* Longest sleep of the loop: signals are looked at this often. */
#define MAX_WAIT_MS 100
/* Freed memory is handed back this often as well as after a restore: a backlog drained after a
 * remote's outage, librdkafka's buffers after Kafka's, leave memory glibc keeps otherwise (in
 * the soak, one malloc_trim between restores gave back 1.75 of a consumer's 20 MB). */
#define TRIM_EVERY_MS 60000

/* ---------------------------------------------------------------------------- messages in */

static void on_message(struct consume *c, rd_kafka_message_t *msg)
{
    if (msg->err == RD_KAFKA_RESP_ERR__FATAL) { /* delivered here, not to error_cb */
        rd_kafka_message_destroy(msg);
        rd_kafka_resp_err_t orig =
            rd_kafka_fatal_error(c->rk, c->cst.fatal_reason, sizeof(c->cst.fatal_reason));
        log_error(COMP, "event=kafka_fatal error=%s reason=%s%s", rd_kafka_err2name(orig),
                  LOG_Q(c->cst.fatal_reason),
                  orig == RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID
                      ? " hint=\"another consumer of this remote runs with the same --member "
                        "(group.instance.id): give each its own\""
                      : "");
        c->cst.fatal = true;
        return;
    }
    if (msg->err) {
        if (msg->err == RD_KAFKA_RESP_ERR__MAX_POLL_EXCEEDED)
            log_error(COMP,
                      "event=max_poll_exceeded error=%s "
                      "hint=\"the loop did not poll the group in time: the group rebalanced "
                      "without this consumer, which rejoins; nothing is lost (offsets are "
                      "stored only for settled events), events may be applied twice\"",
                      LOG_Q(rd_kafka_message_errstr(msg)));
        else if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            log_warn(COMP, "event=consume_error topic=%s partition=%" PRId32 " error=%s msg=%s",
                     msg->rkt ? rd_kafka_topic_name(msg->rkt) : "-", msg->partition,
                     rd_kafka_err2name(msg->err), LOG_Q(rd_kafka_message_errstr(msg)));
        rd_kafka_message_destroy(msg);
        return;
    }
    struct part *p = part_of_message(c, msg);
    bool oom = false;
    int64_t now = util_mono_ms();
    struct partq_ev *e =
        p && !p->lane.leaving ? partq_push(&p->q, msg, msg->offset, now, &oom) : NULL;
    if (!e && oom) {
        /* cannot keep it: ask Kafka for it again later */
        log_error(COMP, "event=out_of_memory topic=%s partition=%" PRId32, p->sp.sub->topic,
                  p->sp.partition);
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, p->sp.sub->topic, p->sp.partition)->offset =
            msg->offset;
        rd_kafka_error_t *se = rd_kafka_seek_partitions(c->rk, l, 1000);
        if (se) {
            log_error(COMP, "event=seek_failed topic=%s partition=%" PRId32 " error=%s",
                      p->sp.sub->topic, p->sp.partition, LOG_Q(rd_kafka_error_string(se)));
            rd_kafka_error_destroy(se);
        }
        rd_kafka_topic_partition_list_destroy(l);
    }
    if (!e) {
        rd_kafka_message_destroy(msg); /* not ours (any more), seen already, or no room */
        return;
    }
    intake_event(&c->intake,
                 &(struct intake_part){&p->sp, &p->q, p->has_recent ? &p->recent : NULL}, e);
}

/* Takes what Kafka has for us: rebalances, errors and any forwarded message from the consumer
 * queue first, then each partition's own queue while that partition holds fewer than
 * queue_max events (backpressure: librdkafka stops fetching a partition whose queue is full).
 * Returns true when nothing more is waiting for a partition that has room. */
static bool drain(struct consume *c)
{
    int budget = DRAIN_BUDGET;
    rd_kafka_message_t *msg;
    while (budget > 0 && (msg = rd_kafka_consumer_poll(c->rk, 0))) {
        on_message(c, msg);
        budget--;
    }
    if (budget == 0)
        return false;
    for (size_t i = 0; i < c->nparts; i++) {
        struct part *p = c->parts[i];
        while (p->rkq && !p->lane.leaving && !p->lane.restoring &&
               partq_len(&p->q) < c->queue_max) {
            if (budget-- <= 0)
                return false;
            if (!(msg = rd_kafka_consume_queue(p->rkq, 0)))
                break;
            on_message(c, msg);
        }
        p->full = partq_len(&p->q) >= c->queue_max;
    }
    return true;
}

/* ----------------------------------------------------------------------------- rebalances */

/* Lets the requests of the leaving partitions finish, settles what they applied, waits for the
 * DLQ acknowledgements of what failed and stores those offsets. */
static void finish_leaving(struct consume *c)
{
    dispatch_finish_leaving(c->dispatch, c->lanes, c->nparts);
    dlq_flush(c->dlq, 5000);
    for (size_t i = 0; i < c->nparts; i++)
        if (c->parts[i]->lane.leaving)
            part_advance(c, c->parts[i]);
}

static void commit_sync(struct consume *c)
{
    rd_kafka_resp_err_t err = rd_kafka_commit(c->rk, NULL, 0);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        log_warn(COMP, "event=commit_failed error=%s", rd_kafka_err2name(err));
}

static void on_revoke(struct consume *c, const rd_kafka_topic_partition_list_t *l)
{
    struct state_part **leaving = calloc((size_t)l->cnt + 1, sizeof(*leaving));
    size_t nleaving = 0;
    for (int i = 0; i < l->cnt; i++) {
        struct part *p = part_find(c, l->elems[i].topic, l->elems[i].partition);
        if (p) {
            p->lane.leaving = true;
            if (leaving)
                leaving[nleaving++] = &p->sp;
        }
    }
    finish_leaving(c);
    commit_sync(c);
    /* the clocks and the offsets they cover are stored; those of a partition number none of
     * our topics has any more leave memory */
    state_revoke(c->state, leaving, nleaving, c->sps, c->nparts);
    free(leaving);
    for (int i = 0; i < l->cnt; i++) {
        struct part *p = part_find(c, l->elems[i].topic, l->elems[i].partition);
        if (p) {
            log_info(COMP, "event=partition_revoked topic=%s partition=%" PRId32 " dropped=%zu",
                     p->sp.sub->topic, p->sp.partition, partq_len(&p->q));
            part_remove(c, p);
        }
    }
}

static void on_assign(struct consume *c, const rd_kafka_topic_partition_list_t *l)
{
    struct state_part **added = calloc((size_t)l->cnt + 1, sizeof(*added));
    size_t nadded = 0;
    for (int i = 0; i < l->cnt; i++) {
        const struct routes_sub *sub = routes_find(c->subs, c->nsubs, l->elems[i].topic);
        if (!sub || part_find(c, l->elems[i].topic, l->elems[i].partition))
            continue;
        struct part *p = part_add(c, sub, l->elems[i].partition);
        if (!p) {
            log_error(COMP, "event=out_of_memory what=partition");
            continue;
        }
        if (added)
            added[nadded++] = &p->sp;
        log_info(COMP, "event=partition_assigned topic=%s partition=%" PRId32 "%s", sub->topic,
                 l->elems[i].partition, sub->local ? " local=true" : "");
    }
    state_assign(c->state, c->rk, added, nadded); /* read back before anything is planned */
    free(added);
}

/* Each assigned partition gets its own queue, no longer forwarded to the consumer queue, so
 * that a partition with enough events waiting is simply not read (no pause, no refetch). */
static void take_queues(struct consume *c, const rd_kafka_topic_partition_list_t *l)
{
    for (int i = 0; i < l->cnt; i++) {
        struct part *p = part_find(c, l->elems[i].topic, l->elems[i].partition);
        if (!p || p->rkq)
            continue;
        p->rkq = rd_kafka_queue_get_partition(c->rk, l->elems[i].topic, l->elems[i].partition);
        if (!p->rkq) {
            log_warn(COMP, "event=partition_queue_missing topic=%s partition=%" PRId32,
                     p->sp.sub->topic, p->sp.partition);
            continue;
        }
        rd_kafka_queue_forward(p->rkq, NULL);
        if (c->wake[1] >= 0)
            rd_kafka_queue_io_event_enable(p->rkq, c->wake[1], "1", 1);
    }
    parts_pause_disabled(c, l);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *l, void *opaque)
{
    struct kafka_state *st = opaque;
    struct consume *c = st->user;
    bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    rd_kafka_error_t *e = NULL;
    rd_kafka_resp_err_t ae = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        on_assign(c, l);
        if (coop)
            e = rd_kafka_incremental_assign(rk, l);
        else
            ae = rd_kafka_assign(rk, l);
        take_queues(c, l);
    } else {
        on_revoke(c, l);
        if (coop)
            e = rd_kafka_incremental_unassign(rk, l);
        else
            ae = rd_kafka_assign(rk, NULL);
    }
    if (e) {
        log_error(COMP, "event=assign_failed error=%s", LOG_Q(rd_kafka_error_string(e)));
        rd_kafka_error_destroy(e);
    } else if (ae) {
        log_error(COMP, "event=assign_failed error=%s", rd_kafka_err2name(ae));
    }
}

int64_t consume_longest_block_ms(const struct config *cfg)
{
    return (int64_t)cfg->consumer.request_timeout_ms + 2000 + 5000 + 60000;
}

int64_t consume_poll_interval_ms(const struct config *cfg)
{
    int64_t need = consume_longest_block_ms(cfg) + 60000;
    return need > 300000 ? need : 300000;
}

static int make_consumer(struct consume *c, char *err, size_t errlen)
{
    /* Prefetch little: events wait in our own queues, and held messages pin librdkafka's
     * fetch buffers, so small fetches keep the RSS small. */
    char min_msgs[16];
    snprintf(min_msgs, sizeof(min_msgs), "%zu", c->queue_max);
    char poll_ms[24], session_ms[24];
    snprintf(poll_ms, sizeof(poll_ms), "%" PRId64, consume_poll_interval_ms(c->cfg));
    snprintf(session_ms, sizeof(session_ms), "%d", c->cfg->consumer.session_timeout_ms);
    /* one setting a line */
    /* clang-format off */
    const char *const defaults[] = {
        "queued.min.messages", min_msgs,
        "queued.max.messages.kbytes", "2048",
        "fetch.max.bytes", "1048576",
        "max.partition.fetch.bytes", "262144",
        "fetch.wait.max.ms", "100",
        "auto.commit.interval.ms", "1000",
        "session.timeout.ms", session_ms,
        "max.poll.interval.ms", poll_ms,
        NULL};
    /* clang-format on */
    c->cst.component = COMP;
    c->cst.user = c;
    rd_kafka_conf_t *conf = kafka_group_conf_new(c->cfg, &c->cst, c->group, defaults, err, errlen);
    if (!conf)
        return -1;
    /* static membership: this member's name, so that a restart within the session timeout
     * gets its partitions back without a rebalance (the other members go on) */
    if (rd_kafka_conf_set(conf, "group.instance.id", c->member, err, errlen) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    char set[24] = "";
    size_t setlen = sizeof(set);
    if (rd_kafka_conf_get(conf, "max.poll.interval.ms", set, &setlen) == RD_KAFKA_CONF_OK &&
        strtoll(set, NULL, 10) < consume_longest_block_ms(c->cfg))
        log_warn(COMP,
                 "event=max_poll_interval_short max_poll_interval_ms=%s longest_block_ms=%" PRId64
                 " hint=\"a rebalance during requests of request_timeout_ms may take longer "
                 "than max.poll.interval.ms (kafka.properties): the group would drop this "
                 "consumer; raise it or lower consumer.request_timeout_ms\"",
                 set, consume_longest_block_ms(c->cfg));
    if (!(c->rk = kafka_client_new(RD_KAFKA_CONSUMER, conf, "kafka consumer", err, errlen)))
        return -1;
    rd_kafka_poll_set_consumer(c->rk);
    c->queue = rd_kafka_queue_get_consumer(c->rk);
    if (pipe(c->wake) == 0) {
        fcntl(c->wake[0], F_SETFL, O_NONBLOCK);
        fcntl(c->wake[1], F_SETFL, O_NONBLOCK);
        rd_kafka_queue_io_event_enable(c->queue, c->wake[1], "1", 1);
    } else {
        c->wake[0] = c->wake[1] = -1;
    }
    return 0;
}

/* Every topic we read or write exists before we subscribe (the start order never matters).
 * Kafka may not be up yet: retry until it is, or until asked to stop. */
static int ensure_topics(struct consume *c)
{
    const char **topics = calloc(c->nsubs + 2, sizeof(*topics));
    if (!topics)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < c->nsubs; i++)
        topics[n++] = c->subs[i].topic;
    topics[n++] = dlq_errors_topic(c->dlq);
    topics[n++] = dlq_topic(c->dlq);
    int rc =
        kafka_ensure_topics_wait(dlq_producer(c->dlq), c->cfg, topics, n, &c->cst, &signals_stop);
    free(topics);
    return rc;
}

static int subscribe(struct consume *c)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)c->nsubs);
    for (size_t i = 0; i < c->nsubs; i++)
        rd_kafka_topic_partition_list_add(l, c->subs[i].topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(c->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err) {
        log_error(COMP, "event=subscribe_failed error=%s", rd_kafka_err2name(err));
        return -1;
    }
    return 0;
}

/* dispatch's history: an event older than its partition's floor waits for its history. */
static void want_history(void *state, int32_t partition)
{
    state_want_history(state, partition);
}

static int setup(struct consume *c, char *err, size_t errlen)
{
    if (kafka_group_apply(c->cfg, c->remote_name, c->group, sizeof(c->group))) {
        snprintf(err, errlen, "consumer group name too long (kafka.topic_prefix, remote %s)",
                 c->remote_name);
        return -1;
    }
    size_t bmax = (size_t)c->cfg->consumer.batch_max;
    c->queue_max = bmax * 2 < 200 ? 200 : bmax * 2;
    if (remote_init(&c->remote, c->remote_name, c->subs, c->nin,
                    c->cfg->consumer.retry_notify_after_s, c->m)) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (!(c->dlq = dlq_new(c->cfg, c->remote_name, c->m, err, errlen)))
        return -1;
    const char **names = calloc(c->cfg->ninstances + 1, sizeof(*names));
    for (size_t i = 0; names && i < c->cfg->ninstances; i++)
        names[i] = c->cfg->instances[i].name;
    c->lww = names ? lww_new(names, c->cfg->ninstances) : NULL;
    free(names);
    if (!c->lww) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (!(c->state = state_new(c->cfg, c->remote_name, c->member, c->subs, c->nsubs, c->lww, c->m,
                               err, errlen)))
        return -1;
    if (!(c->dispatch = dispatch_new(c->cfg, c->inst, &c->remote, c->dlq, c->lww, c->subs, c->nin,
                                     c->m, err, errlen)))
        return -1;
    parts_register_metrics(c);
    intake_init(&c->intake, c->remote_name, &c->remote, c->dlq, c->state, c->m);
    dispatch_set_state(c->dispatch, state_fetch, want_history, c->state);
    return make_consumer(c, err, errlen);
}

static void teardown(struct consume *c)
{
    while (c->nparts)
        part_remove(c, c->parts[c->nparts - 1]);
    free(c->parts);
    free(c->lanes);
    free(c->sps);
    if (c->queue)
        rd_kafka_queue_destroy(c->queue);
    if (c->rk)
        rd_kafka_destroy(c->rk);
    dlq_free(c->dlq, 10000);
    dispatch_free(c->dispatch);
    state_free(c->state);
    lww_free(c->lww);
    remote_free(&c->remote);
    if (c->wake[0] >= 0) {
        close(c->wake[0]);
        close(c->wake[1]);
    }
    routes_free(c->subs, c->nsubs);
}

/* ------------------------------------------------------------------------------- the loop */

static void wait_for_work(struct consume *c, int64_t wake)
{
    int64_t now = util_mono_ms();
    int64_t t = wake == INT64_MAX ? MAX_WAIT_MS : wake - now;
    if (t < 0)
        t = 0;
    if (t > MAX_WAIT_MS)
        t = MAX_WAIT_MS;
    dispatch_wait(c->dispatch, c->wake[0], (int)t);
    char buf[64];
    while (c->wake[0] >= 0 && read(c->wake[0], buf, sizeof(buf)) > 0)
        ;
}

/* One turn: take from Kafka, serve DLQ reports, move requests, store offsets, publish what is
 * due. Returns when the loop should look again. */
static int64_t turn(struct consume *c)
{
    bool restoring = state_turn(c->state, c->sps, c->nparts);
    if (c->was_restoring && !restoring) /* the read-back's fetch buffers are freed in a moment */
        c->trim_ms = util_mono_ms() + 2000;
    c->was_restoring = restoring;
    bool drained = drain(c) && !restoring;
    dlq_poll(c->dlq);
    dispatch_transfers(c->dispatch);
    int64_t now = util_mono_ms();
    if ((c->trim_ms && now >= c->trim_ms) || now >= c->next_trim_ms) {
        c->trim_ms = 0;
        c->next_trim_ms = now + TRIM_EVERY_MS;
        state_release_read_back(c->state, c->sps, c->nparts);
        util_release_memory();
    }
    for (size_t i = 0; i < c->nparts; i++)
        if (c->parts[i]->q.held)
            intake_recheck(&c->intake,
                           &(struct intake_part){&c->parts[i]->sp, &c->parts[i]->q, NULL});
    int64_t wake = dispatch_schedule(c->dispatch, c->lanes, c->nparts, drained);
    dispatch_transfers(c->dispatch);
    for (size_t i = 0; i < c->nparts; i++)
        part_advance(c, c->parts[i]);
    now = util_mono_ms();
    struct remote *r = &c->remote;
    if (remote_notify_due(r, now, &wake))
        dlq_remote_event(c->dlq, ERROR_REMOTE_UNAVAILABLE, c->subs, c->nin, r->down_status,
                         r->down_code, r->down_message, r->down_retries);
    parts_stats(c, now);
    if (!drained)
        wake = now; /* Kafka has more for us */
    for (size_t i = 0; i < c->nparts; i++) {
        const struct part *p = c->parts[i];
        if (dispatch_lane_can_send(c->dispatch, &p->lane) ||
            (p->full && partq_len(&p->q) < c->queue_max))
            wake = now; /* a request to send, or room for what Kafka holds for p */
    }
    return wake;
}

/* The clean stop: let the requests in flight finish, settle what they did, wait for the DLQ
 * acknowledgements, store and commit. A static member does not leave the group when it closes
 * (a restart within the session timeout is no rebalance), and rejoining with other topics does
 * not make the coordinator assign them either: at a reload that changes the topics, it leaves. */
static void stop(struct consume *c)
{
    size_t pending = 0;
    for (size_t i = 0; i < c->nparts; i++) {
        c->parts[i]->lane.leaving = true;
        pending += partq_len(&c->parts[i]->q);
    }
    log_info(COMP, "event=stopping in_flight=%zu pending=%zu", dispatch_in_flight(c->dispatch),
             pending);
    finish_leaving(c);
    commit_sync(c);
    state_stop(c->state, c->sps, c->nparts);
    const struct config *next = app_reload_next();
    if (next && routes_differ(next, c->remote_name, c->subs, c->nsubs)) {
        log_info(COMP, "event=leaving_group reason=topics_change group=%s", c->group);
        kafka_leave_group(c->rk, COMP);
    }
    rd_kafka_resp_err_t err = rd_kafka_consumer_close(c->rk);
    if (err)
        log_warn(COMP, "event=close_failed error=%s", rd_kafka_err2name(err));
}

int consume_run(const struct config *cfg, const char *remote, const char *member, struct metrics *m)
{
    util_tune_allocator();
    struct consume c;
    memset(&c, 0, sizeof(c));
    c.cfg = cfg;
    c.remote_name = remote;
    c.member = member;
    c.m = m;
    c.wake[0] = c.wake[1] = -1;
    c.inst = config_instance_find(cfg, remote);
    char err[1024];
    int rc = 1;
    if (!c.inst) {
        log_error(COMP, "event=unknown_remote remote=%s", remote);
        return 2;
    }
    if (routes_into(cfg, remote, &c.subs, &c.nsubs, err, sizeof(err))) {
        log_error(COMP, "event=setup_failed error=%s", LOG_Q(err));
        return 1;
    }
    c.nin = c.nsubs;
    if (c.nsubs && routes_add_own(cfg, remote, &c.subs, &c.nsubs, err, sizeof(err))) {
        log_error(COMP, "event=setup_failed error=%s", LOG_Q(err));
        return 1;
    }
    if (c.nsubs == 0) {
        log_error(COMP,
                  "event=nothing_routed remote=%s reason=no_route_to_remote "
                  "hint=\"add a route whose \\\"to\\\" is this remote\"",
                  remote);
        routes_free(c.subs, c.nsubs);
        return 2;
    }
    if (setup(&c, err, sizeof(err))) {
        log_error(COMP, "event=setup_failed error=%s", LOG_Q(err));
        goto out;
    }
    metrics_set_stall_ms(m, (int64_t)cfg->consumer.request_timeout_ms * 2 + 60000);
    if (ensure_topics(&c)) {
        rc = signals_stop ? 0 : 1;
        goto out;
    }
    if (subscribe(&c))
        goto out;
    log_info(COMP,
             "event=started remote=%s url=%s group=%s member=%s topics=%zu batch_max=%d "
             "max_in_flight=%d linger_ms=%d",
             remote, LOG_Q(c.inst->url), c.group, member, c.nsubs, cfg->consumer.batch_max,
             cfg->consumer.max_in_flight, cfg->consumer.linger_ms);
    const struct kafka_state *pst = dlq_kafka_state(c.dlq);
    while (!signals_stop && !c.cst.fatal && !pst->fatal && !app_reload_wanted())
        wait_for_work(&c, turn(&c));
    if (c.cst.fatal || pst->fatal) {
        log_error(COMP, "event=kafka_fatal reason=%s",
                  LOG_Q(c.cst.fatal ? c.cst.fatal_reason : pst->fatal_reason));
        metrics_set_health(m, false, "kafka fatal error");
        rc = 1;
    } else {
        rc = 0;
    }
    stop(&c);
    log_info(COMP, "event=stopped remote=%s", remote);
out:
    teardown(&c);
    return rc;
}
