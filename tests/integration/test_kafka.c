/* Integration: shared/kafka.c against the real Kafka broker of the harness. Topics are created
 * with the configured partitions (idempotently), and a message with key and headers produced
 * with the dxsync producer settings is consumed back intact. The consumer's read-back client
 * (restore.c) hands back what it fetched beyond what it read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "config.h"
#include "kafka.h"
#include "restore.h"
#include "testutil.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct config cfg;
static char topic[128];

static int setup(void **state)
{
    (void)state;
    const char *brokers = getenv("DXSYNC_KAFKA_BROKERS");
    if (!brokers) {
        fprintf(stderr, "DXSYNC_KAFKA_BROKERS is not set: run through tests/run.sh\n");
        return -1;
    }
    char json[512], err[256];
    snprintf(
        json, sizeof(json),
        "{\"kafka\": {\"brokers\": \"%s\", \"topic_prefix\": \"itest\", \"partitions\": 3},"
        " \"instances\": [{\"name\": \"a\", \"url\": \"http://127.0.0.1:1\", \"token\": \"t\"}],"
        " \"routes\": []}",
        brokers);
    if (config_load_buffer(json, strlen(json), &cfg, err, sizeof(err))) {
        fprintf(stderr, "config: %s\n", err);
        return -1;
    }
    char coll[64];
    snprintf(coll, sizeof(coll), "roundtrip_%lld", (long long)util_wall_ms());
    return kafka_topic_sync(&cfg, "a", coll, topic, sizeof(topic));
}

static int teardown(void **state)
{
    (void)state;
    config_free(&cfg);
    return 0;
}

static void creates_topics_idempotently(void **state)
{
    (void)state;
    struct kafka_state st = {.component = "itest"};
    char err[512];
    rd_kafka_conf_t *conf = kafka_conf_new(&cfg, &st, NULL, NULL, err, sizeof(err));
    assert_non_null(conf);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    assert_non_null(rk);
    const char *topics[] = {topic};
    assert_int_equal(kafka_ensure_topics(rk, &cfg, topics, 1, 10000, err, sizeof(err)), 0);
    /* again: already exists is fine */
    assert_int_equal(kafka_ensure_topics(rk, &cfg, topics, 1, 10000, err, sizeof(err)), 0);
    const struct rd_kafka_metadata *md;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    assert_int_equal(rd_kafka_metadata(rk, 0, rkt, &md, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(md->topic_cnt, 1);
    assert_int_equal(md->topics[0].partition_cnt, 3);
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    assert_false(st.fatal);
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    int *delivered = m->_private;
    *delivered = m->err ? -1 : 1;
}

static void produces_and_consumes_back(void **state)
{
    (void)state;
    struct kafka_state st = {.component = "itest"};
    char err[512];
    static const char *const forced[] = {"enable.idempotence", "true", "acks", "all", NULL};
    rd_kafka_conf_t *conf = kafka_conf_new(&cfg, &st, NULL, forced, err, sizeof(err));
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    assert_non_null(p);
    const char *topics[] = {topic};
    assert_int_equal(kafka_ensure_topics(p, &cfg, topics, 1, 10000, err, sizeof(err)), 0);
    const char *value = "{\"version\":1,\"title\":\"Gr\xc3\xbc\xc3\x9f"
                        "e\"}";
    int delivered = 0;
    rd_kafka_resp_err_t e = rd_kafka_producev(
        p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY("key-1", 5),
        RD_KAFKA_V_VALUE((void *)value, strlen(value)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADER("dxsync-event-id", "a:1", 3), RD_KAFKA_V_OPAQUE(&delivered),
        RD_KAFKA_V_END);
    assert_int_equal(e, RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(rd_kafka_flush(p, 15000), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(delivered, 1);
    rd_kafka_destroy(p);

    char group[160];
    snprintf(group, sizeof(group), "%s.group", topic);
    static const char *const cforced[] = {"auto.offset.reset", "earliest", NULL};
    conf = kafka_conf_new(&cfg, &st, NULL, cforced, err, sizeof(err));
    assert_int_equal(rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err)),
                     RD_KAFKA_CONF_OK);
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    assert_non_null(c);
    rd_kafka_poll_set_consumer(c);
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
    assert_int_equal(rd_kafka_subscribe(c, sub), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(sub);
    bool got = false;
    int64_t deadline = util_mono_ms() + 30000;
    while (!got && util_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 500);
        if (!m)
            continue;
        if (!m->err) {
            assert_int_equal(m->key_len, 5);
            assert_memory_equal(m->key, "key-1", 5);
            assert_int_equal(m->len, strlen(value));
            assert_memory_equal(m->payload, value, m->len);
            char hdr[64];
            kafka_header_get(m, "dxsync-event-id", hdr, sizeof(hdr));
            assert_string_equal(hdr, "a:1");
            kafka_header_get(m, "absent", hdr, sizeof(hdr));
            assert_string_equal(hdr, "");
            got = true;
        }
        rd_kafka_message_destroy(m);
    }
    assert_true(got);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    assert_false(st.fatal);
}

/* restore_fetch reads one message with a client that prefetches up to 8 MB (the consumer's
 * restore settings). What it fetched beyond that message stays in the client's queue, and a
 * fetch in flight at the unassign lands in the partition's queue, both holding their fetch
 * buffers until popped: restore_release pops both, and the heap comes back. */
static void read_back_hands_back_the_prefetch(void **state)
{
    (void)state;
    struct kafka_state st = {.component = "itest"};
    char err[512];
    static const char *const pforced[] = {"linger.ms", "20", NULL};
    rd_kafka_conf_t *conf = kafka_conf_new(&cfg, &st, NULL, pforced, err, sizeof(err));
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    assert_non_null(p);
    static char value[4096];
    memset(value, 'x', sizeof(value));
    for (int i = 0; i < 3000; i++) {
        rd_kafka_resp_err_t e;
        while ((e = rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(1),
                                      RD_KAFKA_V_VALUE(value, sizeof(value)),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
               RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(p, 10);
        assert_int_equal(e, RD_KAFKA_RESP_ERR_NO_ERROR);
    }
    assert_int_equal(rd_kafka_flush(p, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(p);

    static const char *const defaults[] = {RESTORE_KAFKA_DEFAULTS, NULL};
    char group[160];
    snprintf(group, sizeof(group), "%s.restore", topic);
    const char *const forced[] = {
        "group.id", group, "enable.auto.commit", "false", "auto.offset.reset", "earliest", NULL};
    conf = kafka_conf_new(&cfg, &st, defaults, forced, err, sizeof(err));
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    assert_non_null(c);
    struct util_memory before, read, after;
    util_memory_now(&before);
    rd_kafka_message_t *m = restore_fetch(c, topic, 1, 5, 15000, err, sizeof(err));
    assert_non_null(m);
    assert_int_equal(m->offset, 5);
    assert_int_equal(m->len, sizeof(value));
    rd_kafka_message_destroy(m);
    util_sleep_ms(1000, NULL); /* fetches in flight at the unassign land */
    util_memory_now(&read);
    restore_release(c, &(struct restore_target){.topic = topic, .partition = 1}, 1);
    util_memory_now(&after);
    print_message("  heap in use: %.1f MB before, %.1f MB a second after the read, %.1f MB after "
                  "the release\n",
                  (double)before.heap_used / 1e6, (double)read.heap_used / 1e6,
                  (double)after.heap_used / 1e6);
    if (!SANITIZED) /* under ASan the heap is ASan's own and mallinfo2 does not see it */
        assert_true(after.heap_used < before.heap_used + 1000000);
    rd_kafka_destroy(c);
    assert_false(st.fatal);
}

static void bad_property_names_the_key(void **state)
{
    (void)state;
    char json[512], err[512];
    struct config bad;
    snprintf(json, sizeof(json),
             "{\"kafka\": {\"brokers\": \"x:1\", \"properties\": {\"no.such.property\": \"1\"}},"
             " \"instances\": [{\"name\": \"a\", \"url\": \"http://h\", \"token\": \"t\"}],"
             " \"routes\": []}");
    assert_int_equal(config_load_buffer(json, strlen(json), &bad, err, sizeof(err)), 0);
    struct kafka_state st = {0};
    assert_null(kafka_conf_new(&bad, &st, NULL, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "kafka.properties.no.such.property"));
    config_free(&bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(creates_topics_idempotently),
        cmocka_unit_test(produces_and_consumes_back),
        cmocka_unit_test(read_back_hands_back_the_prefetch),
        cmocka_unit_test(bad_property_names_the_key),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
