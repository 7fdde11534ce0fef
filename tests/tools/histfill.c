/* histfill: fills a source's topic with a history of events in the event format, as a producer
 * would have published them over a period, for tests/bench/history.sh and the e2e tests of the
 * consumer's state.
 *
 *   histfill CONFIG SOURCE COLLECTION EVENTS KEYS FROM_MS TO_MS [GROUP]
 *
 * EVENTS events over KEYS keys (uuids numbered 0..KEYS-1; each key's first event is a create,
 * the others update its title), their commit times and Kafka timestamps spread evenly from
 * FROM_MS to TO_MS (ms since the epoch), keyed and partitioned like the producer's (murmur2).
 * With GROUP, that consumer group's offsets are then committed at the topic's end (the history
 * counts as applied). EVENTS 1 with KEYS 0 publishes one create of a new key at TO_MS and prints
 * the key. Prints "events=N seconds=S" on stderr. */
#include "config.h"
#include "kafka.h"

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void iso(int64_t ms, char *buf, size_t len)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03dZ", (int)(ms % 1000));
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int commit_end(const struct config *cfg, const char *topic, const char *group)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", cfg->kafka.brokers, err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err))) {
        fprintf(stderr, "histfill: %s\n", err);
        return -1;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "histfill: %s\n", err);
        return -1;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(cfg->kafka.partitions);
    for (int p = 0; p < cfg->kafka.partitions; p++) {
        int64_t lo, hi;
        rd_kafka_resp_err_t we;
        for (int tries = 0;
             (we = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000)) && tries < 100;
             tries++)
            nanosleep(&(struct timespec){0, 100000000}, NULL); /* a new topic's leader */
        if (we) {
            fprintf(stderr, "histfill: watermarks of %s [%d]: %s\n", topic, p,
                    rd_kafka_err2str(we));
            return -1;
        }
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = hi;
    }
    rd_kafka_resp_err_t e = rd_kafka_commit(rk, l, 0);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    if (e) {
        fprintf(stderr, "histfill: commit: %s\n", rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 8) {
        fprintf(stderr, "usage: histfill CONFIG SOURCE COLLECTION EVENTS KEYS FROM_MS TO_MS "
                        "[GROUP]\n");
        return 2;
    }
    struct config cfg;
    char err[1024];
    if (config_load_file(argv[1], &cfg, err, sizeof(err))) {
        fprintf(stderr, "histfill: %s\n", err);
        return 2;
    }
    const char *source = argv[2], *coll = argv[3];
    int64_t events = strtoll(argv[4], NULL, 10), keys = strtoll(argv[5], NULL, 10);
    int64_t from = strtoll(argv[6], NULL, 10), to = strtoll(argv[7], NULL, 10);
    bool one = events == 1 && keys == 0;
    char topic[256];
    kafka_topic_sync(&cfg, source, coll, topic, sizeof(topic));
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", cfg.kafka.brokers, err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "partitioner", "murmur2_random", err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "linger.ms", "20", err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "compression.type", "lz4", err, sizeof(err))) {
        fprintf(stderr, "histfill: %s\n", err);
        return 2;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "histfill: %s\n", err);
        return 1;
    }
    const char *const topics[] = {topic};
    if (kafka_ensure_topics(rk, &cfg, topics, 1, 15000, err, sizeof(err))) {
        fprintf(stderr, "histfill: %s\n", err);
        return 1;
    }
    int64_t t0 = now_ms();
    char key[64], json[1024], ts[40];
    int64_t newkey = t0 % 100000000;
    for (int64_t i = 0; i < events; i++) {
        int64_t k = one ? 0 : i % keys;
        int64_t at = events > 1 ? from + (to - from) * i / (events - 1) : to;
        if (one)
            snprintf(key, sizeof(key), "00000000-0000-4000-9000-%012" PRId64, newkey);
        else
            snprintf(key, sizeof(key), "00000000-0000-4000-8000-%012" PRId64, k);
        iso(at, ts, sizeof(ts));
        int64_t aid = one ? at : i + 1;
        bool create = one || i < keys;
        int n = snprintf(json, sizeof(json),
                         "{\"version\":1,\"event_id\":\"%s:%" PRId64 "\",\"source\":\"%s\","
                         "\"collection\":\"%s\",\"action\":\"%s\",\"key\":\"%s\","
                         "\"data\":{\"id\":\"%s\",\"title\":\"title %" PRId64 "\",\"body\":\"the "
                         "body of key %" PRId64 ", written at %s\"},"
                         "\"delta\":{\"title\":\"title %" PRId64 "\"%s},"
                         "\"user\":\"6f1c9d2a-0000-4000-8000-000000000001\",\"timestamp\":\"%s\","
                         "\"activity_id\":%" PRId64 ",\"revision_id\":%" PRId64 ","
                         "\"lsn\":\"0/%" PRIX64 "\",\"commit_us\":%" PRId64 "}",
                         source, aid, source, coll, create ? "create" : "update", key, key, i, k,
                         ts, i, create ? ",\"body\":\"b\"" : "", ts, aid, aid, aid * 64, at * 1000);
        for (;;) {
            rd_kafka_resp_err_t e = rd_kafka_producev(
                rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                RD_KAFKA_V_VALUE(json, (size_t)n), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_TIMESTAMP(at), RD_KAFKA_V_END);
            if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                rd_kafka_poll(rk, 10);
                continue;
            }
            if (e) {
                fprintf(stderr, "histfill: produce: %s\n", rd_kafka_err2str(e));
                return 1;
            }
            break;
        }
        rd_kafka_poll(rk, 0);
    }
    if (rd_kafka_flush(rk, 120000)) {
        fprintf(stderr, "histfill: flush timed out\n");
        return 1;
    }
    rd_kafka_destroy(rk);
    if (argc > 8 && commit_end(&cfg, topic, argv[8]))
        return 1;
    if (one)
        printf("%s\n", key);
    fprintf(stderr, "events=%" PRId64 " seconds=%.1f\n", events, (double)(now_ms() - t0) / 1000.0);
    config_free(&cfg);
    return 0;
}
