#include "kread.h"

#include "util.h"

#include <inttypes.h>
#include <stdio.h>

int kread_partitions(rd_kafka_t *rk, const char *topic)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, KREAD_TIMEOUT_MS);
    rd_kafka_topic_destroy(rkt);
    if (e)
        return -1;
    int n = md->topic_cnt == 1 && !md->topics[0].err ? md->topics[0].partition_cnt : 0;
    rd_kafka_metadata_destroy(md);
    return n;
}

int kread_partition(rd_kafka_t *rk, const char *topic, int32_t p, int64_t from,
                    int (*fn)(void *arg, const rd_kafka_message_t *m), void *arg, char *err,
                    size_t errlen)
{
    int64_t lo, hi;
    rd_kafka_resp_err_t e =
        rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, KREAD_TIMEOUT_MS);
    if (e) {
        snprintf(err, errlen, "%s [%d]: %s", topic, (int)p, rd_kafka_err2str(e));
        return -1;
    }
    int64_t next = from > lo ? from : lo;
    if (next >= hi)
        return 0;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, p)->offset = next;
    e = rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        snprintf(err, errlen, "assign %s [%d]: %s", topic, (int)p, rd_kafka_err2str(e));
        return -1;
    }
    int64_t idle = util_mono_ms();
    int rc = 0;
    while (!rc && next < hi && util_mono_ms() - idle < KREAD_TIMEOUT_MS) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
        if (!m)
            continue;
        idle = util_mono_ms();
        if (!m->err && m->offset >= next) {
            next = m->offset + 1;
            rc = fn(arg, m);
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_assign(rk, NULL);
    if (rc)
        return rc;
    if (next < hi) {
        snprintf(err, errlen,
                 "%s [%d]: stopped at offset %" PRId64 " of %" PRId64 ": Kafka did not answer",
                 topic, (int)p, next, hi);
        return -1;
    }
    return 0;
}
