#include "restore.h"

#include "util.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct restore {
    rd_kafka_t *rk;
    struct restore_target *t;
    int64_t *next; /* next offset to read per target */
    size_t n;
    size_t left; /* targets not read to their end */
    bool assigned;
    int idle_ms;
    int64_t idle_since;
    int64_t count;
    char err[512];
};

struct restore *restore_new(rd_kafka_t *rk, const struct restore_target *targets, size_t n,
                            int idle_ms)
{
    struct restore *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->t = calloc(n ? n : 1, sizeof(*r->t));
    r->next = calloc(n ? n : 1, sizeof(*r->next));
    if (!r->t || !r->next) {
        restore_free(r);
        return NULL;
    }
    memcpy(r->t, targets, n * sizeof(*r->t));
    for (size_t i = 0; i < n; i++) {
        r->next[i] = r->t[i].start;
        if (r->next[i] < r->t[i].end)
            r->left++;
    }
    r->rk = rk;
    r->n = n;
    r->idle_ms = idle_ms;
    r->idle_since = util_mono_ms();
    return r;
}

static int assign(struct restore *r)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)r->n + 1);
    for (size_t i = 0; i < r->n; i++)
        if (r->next[i] < r->t[i].end)
            rd_kafka_topic_partition_list_add(l, r->t[i].topic, r->t[i].partition)->offset =
                r->next[i];
    rd_kafka_resp_err_t e = rd_kafka_assign(r->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        snprintf(r->err, sizeof(r->err), "assign: %s", rd_kafka_err2str(e));
        return -1;
    }
    r->assigned = true;
    return 0;
}

int restore_step(struct restore *r, restore_fn fn, void *opaque, int budget_ms)
{
    int64_t until = util_mono_ms() + budget_ms;
    if (r->left == 0)
        return 1;
    if (!r->assigned && assign(r))
        return -1;
    while (r->left > 0 && util_mono_ms() < until) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(r->rk, 50);
        if (!m) {
            if (util_mono_ms() - r->idle_since > r->idle_ms) {
                snprintf(r->err, sizeof(r->err), "no progress for %d ms with %zu partitions unread",
                         r->idle_ms, r->left);
                return -1;
            }
            continue;
        }
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        const char *topic = rd_kafka_topic_name(m->rkt);
        for (size_t i = 0; i < r->n; i++) {
            if (r->t[i].partition != m->partition || strcmp(r->t[i].topic, topic) != 0)
                continue;
            if (r->next[i] < r->t[i].end && m->offset >= r->next[i]) {
                r->idle_since = util_mono_ms();
                if (m->offset < r->t[i].end) {
                    fn(opaque, i, m);
                    r->count++;
                }
                r->next[i] = m->offset + 1;
                if (r->next[i] >= r->t[i].end)
                    r->left--;
            }
            break;
        }
        rd_kafka_message_destroy(m);
    }
    return r->left == 0 ? 1 : 0;
}

const char *restore_error(const struct restore *r)
{
    return r->err[0] ? r->err : "gave up";
}

const struct restore_target *restore_targets(const struct restore *r, size_t *n)
{
    *n = r->n;
    return r->t;
}

int64_t restore_count(const struct restore *r)
{
    return r->count;
}

void restore_release(rd_kafka_t *rk, const struct restore_target *t, size_t n)
{
    /* a pop drops the outdated ops (of unassigned partitions) and returns what is left:
     * bounded, in case something is still assigned and keeps delivering */
    rd_kafka_message_t *m;
    for (int i = 0; i < 100000 && (m = rd_kafka_consumer_poll(rk, 0)); i++)
        rd_kafka_message_destroy(m);
    for (size_t k = 0; k < n; k++) {
        rd_kafka_queue_t *q = rd_kafka_queue_get_partition(rk, t[k].topic, t[k].partition);
        for (int i = 0; q && i < 100000 && (m = rd_kafka_consume_queue(q, 0)); i++)
            rd_kafka_message_destroy(m);
        if (q)
            rd_kafka_queue_destroy(q);
    }
}

void restore_free(struct restore *r)
{
    if (!r)
        return;
    if (r->assigned) {
        rd_kafka_assign(r->rk, NULL);
        restore_release(r->rk, r->t, r->n);
    }
    free(r->t);
    free(r->next);
    free(r);
}

rd_kafka_message_t *restore_fetch(rd_kafka_t *rk, const char *topic, int32_t partition,
                                  int64_t offset, int timeout_ms, char *err, size_t errlen)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        snprintf(err, errlen, "assign: %s", rd_kafka_err2str(e));
        return NULL;
    }
    rd_kafka_message_t *found = NULL;
    int64_t until = util_mono_ms() + timeout_ms;
    while (!found && util_mono_ms() < until) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        if (!m->err && m->partition == partition && m->offset == offset &&
            strcmp(rd_kafka_topic_name(m->rkt), topic) == 0)
            found = m;
        else
            rd_kafka_message_destroy(m);
    }
    rd_kafka_assign(rk, NULL);
    restore_release(rk, &(struct restore_target){.topic = topic, .partition = partition}, 1);
    if (!found)
        snprintf(err, errlen, "%s [%d] offset %lld: not read within %d ms", topic, (int)partition,
                 (long long)offset, timeout_ms);
    return found;
}
