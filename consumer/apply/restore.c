#include "restore.h"

#include "util.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t restore_read(rd_kafka_t *rk, struct restore_target *targets, size_t n, restore_fn fn,
                     void *opaque, int timeout_ms, volatile sig_atomic_t *stop, char *err,
                     size_t errlen)
{
    int64_t *next = calloc(n ? n : 1, sizeof(*next));
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)(n ? n : 1));
    int64_t read = 0;
    size_t left = 0;
    if (!next || !l) {
        snprintf(err, errlen, "out of memory");
        read = -1;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        int64_t lo, hi;
        rd_kafka_resp_err_t e;
        /* a topic just created has no leader for a moment: ask again until timeout_ms */
        int64_t until = util_mono_ms() + timeout_ms;
        while ((e = rd_kafka_query_watermark_offsets(rk, targets[i].topic, targets[i].partition,
                                                     &lo, &hi, timeout_ms)) &&
               e != RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION &&
               e != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART && util_mono_ms() < until &&
               !(stop && *stop))
            util_sleep_ms(200, stop);
        if (e == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION || e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
            targets[i].end = 0; /* nothing published yet */
            next[i] = 0;
            continue;
        }
        if (e) {
            snprintf(err, errlen, "%s [%d]: watermarks: %s", targets[i].topic,
                     (int)targets[i].partition, rd_kafka_err2str(e));
            read = -1;
            goto out;
        }
        targets[i].end = hi;
        next[i] = lo;
        if (lo < hi) {
            rd_kafka_topic_partition_list_add(l, targets[i].topic, targets[i].partition)->offset =
                lo;
            left++;
        }
    }
    if (left == 0)
        goto out;
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, l);
    if (e) {
        snprintf(err, errlen, "assign: %s", rd_kafka_err2str(e));
        read = -1;
        goto out;
    }
    int64_t idle_since = util_mono_ms();
    while (left > 0) {
        if (stop && *stop) {
            snprintf(err, errlen, "stopped");
            read = -1;
            break;
        }
        if (util_mono_ms() - idle_since > timeout_ms) {
            snprintf(err, errlen, "no progress for %d ms with %zu partitions unread", timeout_ms,
                     left);
            read = -1;
            break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        const char *topic = rd_kafka_topic_name(m->rkt);
        for (size_t i = 0; i < n; i++) {
            if (targets[i].partition != m->partition || strcmp(targets[i].topic, topic) != 0)
                continue;
            if (next[i] < targets[i].end && m->offset >= next[i]) {
                idle_since = util_mono_ms();
                if (m->offset < targets[i].end) {
                    fn(opaque, i, m);
                    read++;
                }
                next[i] = m->offset + 1;
                if (next[i] >= targets[i].end)
                    left--;
            }
            break;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_assign(rk, NULL);
out:
    if (l)
        rd_kafka_topic_partition_list_destroy(l);
    free(next);
    return read;
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
    if (!found)
        snprintf(err, errlen, "%s [%d] offset %lld: not read within %d ms", topic, (int)partition,
                 (long long)offset, timeout_ms);
    return found;
}
