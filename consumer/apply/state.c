/* state.c: an assignment's read-back goes through two phases: PLAN asks Kafka where each part's
 * log starts and ends, where the group committed and where the horizon falls, and the store
 * where its checkpoint is, to choose the range to read; READ reads it in slices. A history read
 * is a READ of a whole partition with a client of its own, one at a time. */
#include "state.h"

#include "clockdb.h"
#include "kafka.h"
#include "log.h"
#include "plan.h"
#include "restore.h"
#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COMP "consumer"
/* A read-back that makes no progress for this long gives up (Kafka unreachable). */
#define RESTORE_IDLE_MS 30000
/* Time a turn of the loop gives a read-back before it polls the group again. */
#define RESTORE_SLICE_MS 50
/* Checkpoints at least this often while something changed. */
#define CHECKPOINT_MS 5000
/* A failed history read is tried again after this long. */
#define HISTORY_RETRY_MS 5000
/* Kafka requests of the plan (watermarks, committed offsets, offsets for times). */
#define PLAN_TIMEOUT_MS 5000
/* A source whose clock runs ahead is warned about at most this often. */
#define SKEW_WARN_EVERY_MS 60000

enum phase { PHASE_NONE = 0, PHASE_PLAN, PHASE_READ };

/* One read: of an assignment (the group's client) or of a partition's history. */
struct job {
    enum phase phase;
    struct state_part **parts; /* its parts (targets[i] is parts[i]'s) */
    size_t n;
    struct restore_target *t;
    struct restore *r;
    int64_t t0;
    int64_t plan_since;
    int32_t history; /* the partition whose history is read, or -1 */
};

struct skew {
    char *source;
    int64_t warned_ms;
    int64_t ahead_ms; /* the most since the last warning */
    struct metric *m;
};

struct state {
    const struct config *cfg;
    const char *remote;
    const struct routes_sub *subs;
    size_t nsubs;
    struct lww *lww;
    struct clockdb *db;
    struct metrics *m;
    rd_kafka_t *rk;    /* reads back assignments, and single events (state_fetch) */
    rd_kafka_t *hrk;   /* reads a partition's history, while one is read */
    rd_kafka_t *group; /* the group consumer, for its committed offsets */
    struct kafka_state rst, hst;
    char group_name[300];
    struct job assign;  /* the assignment's read-back */
    struct job history; /* the history read */
    int32_t *wanted;    /* partitions whose history is wanted */
    size_t nwanted, capwanted;
    int64_t history_retry_ms;
    bool dirty_since; /* something changed since the last checkpoint */
    int64_t next_checkpoint_ms;
    int64_t failing_since_ms; /* checkpoints fail since, 0 when the last one succeeded */
    bool unhealthy;           /* the state made the process unhealthy (failing too long) */
    struct skew *skews;
    size_t nskews;
    struct metric *m_restore_s, *m_keys, *m_bytes, *m_stored, *m_disk, *m_history_reads,
        *m_checkpoint_age, *m_restored;
    int64_t last_checkpoint_ms;
};

/* ------------------------------------------------------------------------------- set-up */

int state_dir(const struct config *cfg, const char *remote, const char *member, char *out,
              size_t len, char *err, size_t errlen)
{
    char base[1024] = "";
    const char *v;
    if (cfg->consumer.state_dir && cfg->consumer.state_dir[0]) {
        snprintf(base, sizeof(base), "%s", cfg->consumer.state_dir);
    } else if ((v = getenv("STATE_DIRECTORY")) && *v) {
        snprintf(base, sizeof(base), "%.*s", (int)strcspn(v, ":"), v); /* systemd: the first */
    } else if ((v = getenv("XDG_STATE_HOME")) && *v) {
        snprintf(base, sizeof(base), "%s/dxsync", v);
    } else if ((v = getenv("HOME")) && *v && strcmp(v, "/") != 0) {
        snprintf(base, sizeof(base), "%s/.local/state/dxsync", v);
    } else {
        snprintf(err, errlen,
                 "no folder for the clock store: set consumer.state_dir (or STATE_DIRECTORY, "
                 "XDG_STATE_HOME or HOME)");
        return -1;
    }
    if (util_format(out, len, "%s/%s.apply.%s.%s", base, cfg->kafka.topic_prefix, remote, member)) {
        snprintf(err, errlen, "consumer.state_dir is too long");
        return -1;
    }
    return 0;
}

static void register_metrics(struct state *s)
{
    char l[160];
    snprintf(l, sizeof(l), "remote=\"%s\"", s->remote);
    s->m_keys = metrics_gauge(s->m, "dxsync_consumer_clock_keys",
                              "Keys whose clocks are in memory (convergence)", l);
    s->m_bytes = metrics_gauge(s->m, "dxsync_consumer_clock_bytes",
                               "Heap the clocks in memory take (as malloc counts it)", l);
    s->m_stored = metrics_gauge(s->m, "dxsync_consumer_clock_keys_stored",
                                "Keys whose clocks are in the consumer's store on disk", l);
    s->m_disk = metrics_gauge(s->m, "dxsync_consumer_clock_store_bytes",
                              "Disk the consumer's clock store takes", l);
    s->m_restore_s = metrics_gauge(
        s->m, "dxsync_consumer_restore_seconds",
        "Time the last assignment took to read its partitions back into the clocks", l);
    s->m_restored = metrics_gauge(s->m, "dxsync_consumer_restore_events",
                                  "Events the last assignment read back into the clocks", l);
    s->m_history_reads =
        metrics_counter(s->m, "dxsync_consumer_history_reads_total",
                        "Partitions read whole for an event older than their horizon", l);
    s->m_checkpoint_age =
        metrics_gauge(s->m, "dxsync_consumer_checkpoint_age_seconds",
                      "Time since the clocks and their offsets were last stored", l);
}

/* A client that reads by hand: assigned, never subscribed, never committing (its group id only
 * names it). The group settings of kafka.properties, meant for the apply group, must not make
 * it invalid. */
static rd_kafka_t *reader_new(struct state *s, struct kafka_state *st, const char *what, char *err,
                              size_t errlen)
{
    char group[300];
    if (util_format(group, sizeof(group), "%s.restore.%s", s->cfg->kafka.topic_prefix, s->remote)) {
        snprintf(err, errlen, "restore group name too long");
        return NULL;
    }
    st->component = COMP;
    const char *const defaults[] = {RESTORE_KAFKA_DEFAULTS, NULL};
    /* one setting a line */
    /* clang-format off */
    const char *const forced[] = {
        "group.id", group,
        "enable.auto.commit", "false",
        "enable.partition.eof", "false",
        "auto.offset.reset", "earliest",
        "session.timeout.ms", "45000",
        "max.poll.interval.ms", "300000",
        NULL};
    /* clang-format on */
    rd_kafka_conf_t *conf = kafka_conf_new(s->cfg, st, defaults, forced, err, errlen);
    return conf ? kafka_client_new(RD_KAFKA_CONSUMER, conf, what, err, errlen) : NULL;
}

static struct skew *skew_of(struct state *s, const char *source);

struct state *state_new(const struct config *cfg, const char *remote, const char *member,
                        const struct routes_sub *subs, size_t nsubs, struct lww *lww,
                        struct metrics *m, char *err, size_t errlen)
{
    struct state *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->cfg = cfg;
    s->remote = remote;
    s->subs = subs;
    s->nsubs = nsubs;
    s->lww = lww;
    s->m = m;
    s->assign.history = s->history.history = -1;
    kafka_group_apply(cfg, remote, s->group_name, sizeof(s->group_name));
    register_metrics(s);
    for (size_t i = 0; i < nsubs; i++)
        skew_of(s, subs[i].route->from); /* every source's counter, at 0 */
    char dir[1200], note[512] = "";
    if (state_dir(cfg, remote, member, dir, sizeof(dir), err, errlen))
        goto fail;
    int opened = clockdb_open(&s->db, dir, (size_t)cfg->consumer.state_max_mb << 20,
                              cfg->kafka.partitions, note, sizeof(note));
    if (opened < 0) {
        snprintf(err, errlen, "%s (consumer.state_dir)", note);
        goto fail;
    }
    if (opened > 0)
        log_warn(COMP, "event=state_emptied dir=%s reason=%s", LOG_Q(dir), LOG_Q(note));
    lww_attach(lww, s->db, (size_t)cfg->consumer.clock_cache_mb << 20);
    lww_set_margin(lww, (int64_t)cfg->consumer.max_clock_skew_ms * 1000);
    struct clockdb_stats st;
    clockdb_stats(s->db, &st);
    log_info(COMP,
             "event=state_opened dir=%s keys=%zu bytes=%zu cache_mb=%d horizon_s=%d "
             "max_clock_skew_ms=%d",
             LOG_Q(dir), st.keys, st.file_bytes, cfg->consumer.clock_cache_mb,
             cfg->consumer.horizon_s, cfg->consumer.max_clock_skew_ms);
    if (!(s->rk = reader_new(s, &s->rst, "kafka restore consumer", err, errlen)))
        goto fail;
    s->last_checkpoint_ms = util_mono_ms();
    s->next_checkpoint_ms = s->last_checkpoint_ms + CHECKPOINT_MS;
    return s;
fail:
    state_free(s);
    return NULL;
}

static void job_end(struct state *s, struct job *j);

void state_free(struct state *s)
{
    if (!s)
        return;
    job_end(s, &s->assign);
    job_end(s, &s->history);
    if (s->rk)
        rd_kafka_destroy(s->rk);
    if (s->hrk)
        rd_kafka_destroy(s->hrk);
    clockdb_close(s->db);
    for (size_t i = 0; i < s->nskews; i++)
        free(s->skews[i].source);
    free(s->skews);
    free(s->wanted);
    free(s);
}

/* -------------------------------------------------------------------------------- jobs */

static void job_end(struct state *s, struct job *j)
{
    (void)s;
    restore_free(j->r);
    free(j->t);
    free(j->parts);
    *j = (struct job){.history = -1};
}

/* Starts a job over parts (copied): the plan first. */
static int job_start(struct job *j, struct state_part *const *parts, size_t n, int32_t history)
{
    j->parts = calloc(n ? n : 1, sizeof(*j->parts));
    j->t = calloc(n ? n : 1, sizeof(*j->t));
    if (!j->parts || !j->t) {
        free(j->parts);
        free(j->t);
        *j = (struct job){.history = -1};
        return -1;
    }
    memcpy(j->parts, parts, n * sizeof(*parts));
    j->n = n;
    for (size_t i = 0; i < n; i++) {
        j->t[i].topic = parts[i]->sub->topic;
        j->t[i].partition = parts[i]->partition;
    }
    j->phase = PHASE_PLAN;
    j->t0 = j->plan_since = util_mono_ms();
    j->history = history;
    return 0;
}

/* The watermarks of every target: 1 when known, 0 to ask again (a topic just created has no
 * leader for a moment), with why in err. */
static int job_watermarks(rd_kafka_t *rk, struct job *j, int64_t *lo, char *err, size_t errlen)
{
    for (size_t i = 0; i < j->n; i++) {
        int64_t hi;
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
            rk, j->t[i].topic, j->t[i].partition, &lo[i], &hi, PLAN_TIMEOUT_MS);
        if (e == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
            e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
            lo[i] = hi = 0; /* nothing published yet */
        } else if (e) {
            snprintf(err, errlen, "%s [%d]: watermarks: %s", j->t[i].topic, (int)j->t[i].partition,
                     rd_kafka_err2str(e));
            return 0;
        }
        j->t[i].end = hi;
    }
    return 1;
}

/* The group's committed offset of each target into committed (-1 when it has none). 0 with
 * err set when Kafka did not answer. */
static int job_committed(struct state *s, struct job *j, int64_t *committed, char *err,
                         size_t errlen)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)j->n);
    for (size_t i = 0; i < j->n; i++)
        rd_kafka_topic_partition_list_add(l, j->t[i].topic, j->t[i].partition);
    rd_kafka_resp_err_t e = rd_kafka_committed(s->group, l, PLAN_TIMEOUT_MS);
    for (size_t i = 0; !e && i < j->n; i++) {
        rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_find(l, j->t[i].topic, j->t[i].partition);
        committed[i] = tp && !tp->err && tp->offset >= 0 ? tp->offset : -1;
    }
    rd_kafka_topic_partition_list_destroy(l);
    if (e)
        snprintf(err, errlen, "committed offsets of %s: %s", s->group_name, rd_kafka_err2str(e));
    return e ? 0 : 1;
}

/* The first offset at or after time ms (µs epoch / 1000) of each target marked in want, into
 * start. 0 with err set when Kafka did not answer. */
static int job_horizon(struct state *s, struct job *j, const bool *want, int64_t ms, int64_t *start,
                       char *err, size_t errlen)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)j->n);
    for (size_t i = 0; i < j->n; i++)
        if (want[i])
            rd_kafka_topic_partition_list_add(l, j->t[i].topic, j->t[i].partition)->offset = ms;
    rd_kafka_resp_err_t e =
        l->cnt ? rd_kafka_offsets_for_times(s->rk, l, PLAN_TIMEOUT_MS) : RD_KAFKA_RESP_ERR_NO_ERROR;
    for (size_t i = 0; !e && i < j->n; i++) {
        if (!want[i])
            continue;
        rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_find(l, j->t[i].topic, j->t[i].partition);
        if (!tp || tp->err) {
            e = tp ? tp->err : RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION;
            break;
        }
        start[i] = tp->offset >= 0 ? tp->offset : j->t[i].end; /* none that late: the end */
    }
    rd_kafka_topic_partition_list_destroy(l);
    if (e)
        snprintf(err, errlen, "offsets for times: %s", rd_kafka_err2str(e));
    return e ? 0 : 1;
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* Chooses where each part of the assignment is read from (see state.h) and sets the partitions'
 * floors. 1 when the read can start, 0 to ask Kafka again, with why in err. */
static int plan_assignment(struct state *s, struct job *j, char *err, size_t errlen)
{
    size_t n = j->n;
    int64_t *lo = calloc(n + 1, sizeof(*lo)), *committed = calloc(n + 1, sizeof(*committed)),
            *hstart = calloc(n + 1, sizeof(*hstart));
    bool *want = calloc(n + 1, sizeof(*want));
    int rc = 0;
    if (!lo || !committed || !hstart || !want) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (!job_watermarks(s->rk, j, lo, err, errlen) || !job_committed(s, j, committed, err, errlen))
        goto out;
    int64_t horizon_ms = util_wall_ms() - (int64_t)s->cfg->consumer.horizon_s * 1000;
    bool any = false;
    size_t from_checkpoint = 0, from_horizon = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t x = clockdb_target(s->db, j->t[i].topic, j->t[i].partition);
        if (x >= lo[i] && x <= j->t[i].end) {
            j->t[i].start = x; /* its checkpoint */
            from_checkpoint++;
        } else if (committed[i] < 0 || s->cfg->consumer.horizon_s == 0) {
            j->t[i].start = lo[i]; /* applied from its start anyway, or no horizon: all of it */
        } else {
            want[i] = any = true; /* no local state: from the horizon */
        }
    }
    if (any && !job_horizon(s, j, want, horizon_ms, hstart, err, errlen))
        goto out;
    /* a partition number's floor: its stored one, raised to the horizon when a part of it is
     * read from there */
    for (size_t i = 0; i < n; i++) {
        int32_t p = j->t[i].partition;
        int64_t floor = LWW_COMPLETE;
        bool first = true;
        for (size_t k = 0; k < i && first; k++)
            first = j->t[k].partition != p;
        if (!first)
            continue;
        if (!clockdb_floor(s->db, p, &floor))
            floor = LWW_COMPLETE;
        for (size_t k = i; k < n; k++)
            if (j->t[k].partition == p && want[k])
                floor = max64(floor, horizon_ms * 1000);
        lww_set_floor(s->lww, p, floor);
    }
    int64_t events = 0;
    for (size_t i = 0; i < n; i++) {
        if (want[i]) {
            /* from the horizon, or from where the group stands when it is further back: what
             * is applied next is in the clocks before anything is decided */
            int64_t from = committed[i] < hstart[i] ? committed[i] : hstart[i];
            j->t[i].start = max64(from, lo[i]);
            from_horizon++;
        }
        events += max64(j->t[i].end - j->t[i].start, 0);
    }
    log_info(COMP,
             "event=restore_plan partitions=%zu from_checkpoint=%zu from_horizon=%zu "
             "whole=%zu events=%" PRId64,
             n, from_checkpoint, from_horizon, n - from_checkpoint - from_horizon, events);
    rc = 1;
out:
    free(lo);
    free(committed);
    free(hstart);
    free(want);
    return rc;
}

struct reading {
    struct state *s;
    struct job *j;
};

/* Feeds one message read back to the clocks. */
static void read_message(void *opaque, size_t target, const rd_kafka_message_t *msg)
{
    struct reading *rd = opaque;
    const struct state_part *p = rd->j->parts[target];
    struct event ev;
    char err[256];
    if (event_decode(msg->payload, msg->len, &ev, err, sizeof(err)))
        return; /* malformed: it will be dead-lettered when it is taken */
    if (strcmp(ev.source, p->sub->route->from) == 0 &&
        strcmp(ev.collection, p->sub->coll->collection) == 0 && plan_touches(&ev, p->sub->coll)) {
        plan_prune(&ev, p->sub->coll);
        struct lww_where at = {p->partition, msg->offset, !p->sub->local};
        if (lww_observe(rd->s->lww, &ev, &at))
            log_error(COMP, "event=out_of_memory what=clock key=%s", LOG_Q(ev.key_text));
        rd->s->dirty_since = true;
    }
    event_free(&ev);
}

/* Starts j's read with rk once its plan is done, then reads a slice: 0 while it runs, 1 when it
 * is done, -1 when it failed (j->r NULL: out of memory). */
static int job_read(struct state *s, struct job *j, rd_kafka_t *rk)
{
    if (j->phase == PHASE_PLAN) {
        if (!(j->r = restore_new(rk, j->t, j->n, RESTORE_IDLE_MS)))
            return -1;
        j->phase = PHASE_READ;
    }
    struct reading rd = {s, j};
    return restore_step(j->r, read_message, &rd, RESTORE_SLICE_MS);
}

/* The assignment's read-back ended: its parts may be planned. done: every part was read to its
 * end; otherwise (Kafka gave no answer for RESTORE_IDLE_MS) its partitions' floors move to now,
 * so that nothing of them is written on a guess before their history is read. */
static void assign_finish(struct state *s, bool done)
{
    struct job *j = &s->assign;
    for (size_t i = 0; i < j->n; i++) {
        struct state_part *p = j->parts[i];
        p->lane->restoring = false;
        p->lane->restore_end = j->t[i].end;
        p->read = done;
        p->covered = done ? j->t[i].end : -1;
        if (!done) {
            lww_set_floor(s->lww, p->partition, util_wall_ms() * 1000);
            state_want_history(s, p->partition);
        }
    }
    job_end(s, j);
}

/* A history read ended: when done, its partition's clocks hold every write. */
static void history_finish(struct state *s, bool done)
{
    struct job *j = &s->history;
    if (done) {
        lww_set_floor(s->lww, j->history, LWW_COMPLETE);
        for (size_t i = 0; i < j->n; i++) {
            struct state_part *p = j->parts[i];
            if (!p->read) {
                p->read = true; /* a part whose read-back gave up: it is whole now */
                p->covered = j->t[i].end;
            }
        }
        s->dirty_since = true;
    } else {
        s->history_retry_ms = util_mono_ms() + HISTORY_RETRY_MS;
        state_want_history(s, j->history);
    }
    job_end(s, j);
    if (s->hrk) {
        rd_kafka_destroy(s->hrk); /* a history read is rare: its client and buffers go */
        s->hrk = NULL;
    }
}

void state_assign(struct state *s, rd_kafka_t *group, struct state_part *const *parts, size_t n)
{
    s->group = group;
    if (s->assign.phase != PHASE_NONE) {
        /* a new assignment before the last one was read back (cooperative): read both */
        struct job *j = &s->assign;
        size_t total = j->n + n;
        struct state_part **all = calloc(total ? total : 1, sizeof(*all));
        if (all) {
            memcpy(all, j->parts, j->n * sizeof(*all));
            memcpy(all + j->n, parts, n * sizeof(*all));
        }
        job_end(s, j);
        if (all)
            state_assign(s, group, all, total);
        free(all);
        return;
    }
    int64_t now = util_wall_ms();
    for (size_t i = 0; i < n; i++) {
        parts[i]->lane->restoring = true;
        parts[i]->lane->assigned_ms = now;
        parts[i]->read = false;
        parts[i]->covered = -1;
    }
    if (n && job_start(&s->assign, parts, n, -1)) {
        log_error(COMP, "event=out_of_memory what=restore");
        for (size_t i = 0; i < n; i++)
            parts[i]->lane->restoring = false;
    }
}

/* One slice of the assignment's read-back. */
static void assign_turn(struct state *s)
{
    struct job *j = &s->assign;
    char err[512] = "";
    if (j->phase == PHASE_PLAN) {
        if (!plan_assignment(s, j, err, sizeof(err))) {
            if (util_mono_ms() - j->plan_since < RESTORE_IDLE_MS) {
                util_sleep_ms(RESTORE_SLICE_MS, NULL); /* ask again a slice later */
                return;
            }
            log_error(COMP,
                      "event=restore_incomplete partitions=%zu error=%s hint=\"the partitions "
                      "wait for their history to be read before anything older than now is "
                      "applied\"",
                      j->n, LOG_Q(err));
            assign_finish(s, false);
            return;
        }
    }
    int rc = job_read(s, j, s->rk);
    if (rc == 0)
        return;
    double secs = (double)(util_mono_ms() - j->t0) / 1000.0;
    int64_t count = j->r ? restore_count(j->r) : 0;
    metrics_set(s->m_restore_s, secs);
    metrics_set(s->m_restored, (double)count);
    if (rc < 0)
        log_error(COMP,
                  "event=restore_incomplete partitions=%zu events=%" PRId64 " seconds=%.1f "
                  "error=%s hint=\"the partitions wait for their history to be read before "
                  "anything older than now is applied\"",
                  j->n, count, secs, LOG_Q(j->r ? restore_error(j->r) : "out of memory"));
    else
        log_info(COMP,
                 "event=clocks_restored partitions=%zu events=%" PRId64 " keys=%zu seconds=%.2f",
                 j->n, count, lww_keys(s->lww), secs);
    assign_finish(s, rc > 0);
}

void state_want_history(struct state *s, int32_t partition)
{
    if (s->history.phase != PHASE_NONE && s->history.history == partition)
        return;
    for (size_t i = 0; i < s->nwanted; i++)
        if (s->wanted[i] == partition)
            return;
    if (s->nwanted == s->capwanted) {
        size_t cap = s->capwanted ? s->capwanted * 2 : 8;
        int32_t *w = realloc(s->wanted, cap * sizeof(*w));
        if (!w)
            return; /* asked again by the next event that needs it */
        s->wanted = w;
        s->capwanted = cap;
    }
    s->wanted[s->nwanted++] = partition;
}

/* Starts the history read of the first wanted partition that is still assigned. */
static void history_start(struct state *s, struct state_part *const *all, size_t nall)
{
    while (s->nwanted && s->history.phase == PHASE_NONE) {
        int32_t p = s->wanted[0];
        memmove(s->wanted, s->wanted + 1, --s->nwanted * sizeof(*s->wanted));
        if (lww_floor(s->lww, p) == LWW_COMPLETE)
            continue;
        struct state_part **parts = calloc(nall ? nall : 1, sizeof(*parts));
        size_t n = 0;
        for (size_t i = 0; parts && i < nall; i++)
            if (all[i]->partition == p)
                parts[n++] = all[i];
        if (n == 0 || !parts) {
            free(parts);
            continue; /* not ours any more */
        }
        char err[512];
        if (!s->hrk &&
            !(s->hrk = reader_new(s, &s->hst, "kafka history consumer", err, sizeof(err)))) {
            log_error(COMP, "event=history_failed partition=%" PRId32 " error=%s", p, LOG_Q(err));
            state_want_history(s, p);
            s->history_retry_ms = util_mono_ms() + HISTORY_RETRY_MS;
            free(parts);
            return;
        }
        if (job_start(&s->history, parts, n, p) == 0)
            log_info(COMP,
                     "event=history_read partition=%" PRId32 " topics=%zu reason=\"an event older "
                     "than the partition's horizon\"",
                     p, n);
        free(parts);
    }
}

/* One slice of the history read. */
static void history_turn(struct state *s)
{
    struct job *j = &s->history;
    char err[512] = "";
    if (j->phase == PHASE_PLAN) {
        int64_t *lo = calloc(j->n + 1, sizeof(*lo));
        int w = lo ? job_watermarks(s->hrk, j, lo, err, sizeof(err)) : 0;
        for (size_t i = 0; w && i < j->n; i++)
            j->t[i].start = lo[i];
        free(lo);
        if (!w) {
            if (util_mono_ms() - j->plan_since > RESTORE_IDLE_MS) {
                log_warn(COMP, "event=history_failed partition=%" PRId32 " error=%s", j->history,
                         LOG_Q(err));
                history_finish(s, false);
            }
            return;
        }
    }
    int rc = job_read(s, j, s->hrk);
    if (rc == 0)
        return;
    double secs = (double)(util_mono_ms() - j->t0) / 1000.0;
    if (rc > 0) {
        metrics_add(s->m_history_reads, 1);
        log_info(COMP,
                 "event=history_read_done partition=%" PRId32 " events=%" PRId64 " seconds=%.2f",
                 j->history, restore_count(j->r), secs);
    } else {
        log_warn(COMP, "event=history_failed partition=%" PRId32 " error=%s retry_ms=%d",
                 j->history, LOG_Q(j->r ? restore_error(j->r) : "out of memory"), HISTORY_RETRY_MS);
    }
    history_finish(s, rc > 0);
}

/* --------------------------------------------------------------------------- checkpoints */

/* Stores the dirty clocks with the offsets and floors of every read part of all. */
static int checkpoint(struct state *s, struct state_part *const *all, size_t n)
{
    char err[600];
    int64_t now = util_mono_ms();
    if (clockdb_begin(s->db, err, sizeof(err)) || lww_checkpoint_write(s->lww, err, sizeof(err)))
        goto fail;
    for (size_t i = 0; i < n; i++) {
        struct state_part *p = all[i];
        if (!p->read)
            continue;
        if (p->q->last_offset + 1 > p->covered)
            p->covered = p->q->last_offset + 1;
        if (clockdb_set_target(s->db, p->sub->topic, p->partition, p->covered, err, sizeof(err)))
            goto fail;
        bool first = true;
        for (size_t k = 0; k < i && first; k++)
            first = !all[k]->read || all[k]->partition != p->partition;
        if (first && clockdb_set_floor(s->db, p->partition, lww_floor(s->lww, p->partition), err,
                                       sizeof(err)))
            goto fail;
    }
    if (clockdb_commit(s->db, err, sizeof(err)))
        goto fail;
    lww_checkpoint_done(s->lww);
    s->dirty_since = false;
    s->last_checkpoint_ms = now;
    if (s->failing_since_ms)
        log_info(COMP, "event=checkpoint_recovered");
    if (s->unhealthy)
        metrics_set_health(s->m, true, NULL);
    s->unhealthy = false;
    s->failing_since_ms = 0;
    lww_trim(s->lww);
    clockdb_release_pages(s->db);
    return 0;
fail:
    clockdb_abort(s->db);
    if (!s->failing_since_ms) {
        s->failing_since_ms = now;
        log_error(COMP,
                  "event=checkpoint_failed error=%s hint=\"the clocks stay in memory; a restart "
                  "reads back from the last checkpoint\"",
                  LOG_Q(err));
    }
    metrics_note_error(s->m, err);
    if (now - s->failing_since_ms > 60000 && !s->unhealthy) {
        metrics_set_health(s->m, false, "the clock store fails (see the log)");
        s->unhealthy = true;
    }
    return -1;
}

bool state_turn(struct state *s, struct state_part *const *all, size_t n)
{
    if (s->assign.phase != PHASE_NONE)
        assign_turn(s);
    else if (s->history.phase == PHASE_NONE && s->nwanted && util_mono_ms() >= s->history_retry_ms)
        history_start(s, all, n);
    if (s->history.phase != PHASE_NONE)
        history_turn(s);
    int64_t now = util_mono_ms();
    if (s->assign.phase == PHASE_READ || s->history.phase == PHASE_READ)
        clockdb_release_pages(s->db); /* a long read goes through the whole store */
    size_t cache = (size_t)s->cfg->consumer.clock_cache_mb << 20;
    bool changed = s->dirty_since || lww_dirty_bytes(s->lww) > 0;
    bool due = now >= s->next_checkpoint_ms;
    /* the dirty clocks cannot leave memory before they are stored: half the cache is the most
     * they take (while the store fails, they wait for the next due time) */
    bool full = !s->failing_since_ms && lww_dirty_bytes(s->lww) > cache / 2;
    if ((changed && due) || full)
        checkpoint(s, all, n);
    else if (lww_bytes(s->lww) > cache)
        lww_trim(s->lww);
    if (due)
        s->next_checkpoint_ms = now + CHECKPOINT_MS;
    return s->assign.phase != PHASE_NONE;
}

/* Ends the jobs that read a part of leaving. */
static void abort_jobs(struct state *s, struct state_part *const *leaving, size_t n)
{
    struct job *jobs[] = {&s->assign, &s->history};
    for (size_t k = 0; k < 2; k++) {
        struct job *j = jobs[k];
        bool hit = false;
        for (size_t i = 0; i < j->n && !hit; i++)
            for (size_t m = 0; m < n && !hit; m++)
                hit = j->parts[i] == leaving[m];
        if (!hit)
            continue;
        log_info(COMP, "event=restore_abandoned events=%" PRId64 "%s",
                 j->r ? restore_count(j->r) : 0, j->history >= 0 ? " history=true" : "");
        for (size_t i = 0; i < j->n; i++)
            if (j->history < 0)
                j->parts[i]->lane->restoring = false;
        if (j->history >= 0)
            state_want_history(s, j->history);
        job_end(s, j);
    }
}

void state_revoke(struct state *s, struct state_part *const *leaving, size_t nleaving,
                  struct state_part *const *all, size_t nall)
{
    abort_jobs(s, leaving, nleaving);
    checkpoint(s, all, nall);
    for (size_t i = 0; i < nleaving; i++) {
        int32_t p = leaving[i]->partition;
        bool kept = false;
        for (size_t k = 0; k < nall && !kept; k++) {
            bool goes = false;
            for (size_t m = 0; m < nleaving && !goes; m++)
                goes = all[k] == leaving[m];
            kept = !goes && all[k]->partition == p;
        }
        if (!kept) {
            lww_drop_partition(s->lww, p);
            lww_set_floor(s->lww, p, LWW_COMPLETE);
        }
    }
}

void state_stop(struct state *s, struct state_part *const *all, size_t n)
{
    abort_jobs(s, all, n);
    checkpoint(s, all, n);
}

/* ------------------------------------------------------------------------------ events */

/* source's clock skew record, added (its counter registered at 0) when new; NULL when out of
 * memory. */
static struct skew *skew_of(struct state *s, const char *source)
{
    for (size_t i = 0; i < s->nskews; i++)
        if (strcmp(s->skews[i].source, source) == 0)
            return &s->skews[i];
    struct skew *ns = realloc(s->skews, (s->nskews + 1) * sizeof(*ns));
    if (!ns)
        return NULL;
    s->skews = ns;
    struct skew *k = &s->skews[s->nskews];
    *k = (struct skew){util_strdup(source), 0, 0, NULL};
    if (!k->source)
        return NULL;
    s->nskews++;
    char l[200];
    snprintf(l, sizeof(l), "remote=\"%s\",source=\"%s\"", s->remote, source);
    k->m = metrics_counter(s->m, "dxsync_consumer_clock_skew_events_total",
                           "Events whose commit time was further in the future than "
                           "consumer.max_clock_skew_ms",
                           l);
    return k;
}

void state_observe(struct state *s, const struct state_part *p, const struct event *ev,
                   int64_t offset)
{
    struct lww_where at = {p->partition, offset, !p->sub->local};
    if (lww_observe(s->lww, ev, &at))
        log_error(COMP, "event=out_of_memory what=clock key=%s", LOG_Q(ev->key_text));
    s->dirty_since = true;
    if (!ev->has_commit_us || !ev->source)
        return;
    int64_t now = util_wall_ms();
    int64_t ahead_ms = ev->commit_us / 1000 - now;
    if (ahead_ms <= s->cfg->consumer.max_clock_skew_ms)
        return;
    struct skew *k = skew_of(s, ev->source);
    if (!k)
        return;
    metrics_add(k->m, 1);
    if (ahead_ms > k->ahead_ms)
        k->ahead_ms = ahead_ms;
    if (now - k->warned_ms >= SKEW_WARN_EVERY_MS) {
        log_warn(COMP,
                 "event=clock_skew source=%s ahead_ms=%" PRId64 " max_clock_skew_ms=%d "
                 "hint=\"the database of %s commits in this host's future: keep both on NTP; "
                 "its writes win concurrent edits they should lose\"",
                 ev->source, k->ahead_ms, s->cfg->consumer.max_clock_skew_ms, ev->source);
        k->warned_ms = now;
        k->ahead_ms = 0;
    }
}

int state_fetch(void *state, const char *source, const char *collection, int32_t partition,
                int64_t offset, struct event *out)
{
    struct state *s = state;
    char err[512];
    if (s->assign.phase != PHASE_NONE)
        return -1; /* the read-back client is busy */
    const struct routes_sub *sub = routes_of(s->subs, s->nsubs, source, collection);
    if (!sub)
        return -1;
    rd_kafka_message_t *m =
        restore_fetch(s->rk, sub->topic, partition, offset, 10000, err, sizeof(err));
    if (!m) {
        log_warn(COMP, "event=fetch_failed error=%s", LOG_Q(err));
        return -1;
    }
    int rc = event_decode(m->payload, m->len, out, err, sizeof(err));
    rd_kafka_message_destroy(m);
    return rc;
}

void state_stats(struct state *s)
{
    struct clockdb_stats st;
    clockdb_stats(s->db, &st);
    metrics_set(s->m_keys, (double)lww_keys(s->lww));
    metrics_set(s->m_bytes, (double)lww_bytes(s->lww));
    metrics_set(s->m_stored, (double)st.keys);
    metrics_set(s->m_disk, (double)st.file_bytes);
    metrics_set(s->m_checkpoint_age, (double)(util_mono_ms() - s->last_checkpoint_ms) / 1000.0);
}

void state_release_read_back(struct state *s, struct state_part *const *all, size_t n)
{
    if (s->assign.phase != PHASE_NONE)
        return;
    struct restore_target *t = n ? calloc(n, sizeof(*t)) : NULL;
    for (size_t i = 0; t && i < n; i++) {
        t[i].topic = all[i]->sub->topic;
        t[i].partition = all[i]->partition;
    }
    restore_release(s->rk, t, t ? n : 0); /* its own queue at least */
    free(t);
}
