/* dlq against librdkafka's mock cluster: a dead-lettered event is settled only once Kafka
 * acknowledged both its DLQ copy (original key, value and headers, plus the error headers) and
 * its apply_failed error event; a message Kafka refused is produced again; an event freed before
 * its acknowledgements (a revoked partition) is forgotten without a dangling reference. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "dlq.h"
#include "log.h"
#include "util.h"

#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SOURCE_TOPIC "dxsync.a.articles"
#define DLQ_TOPIC    "dxsync.dlq.b"
#define ERRORS_TOPIC "dxsync.errors"

struct fixture {
    rd_kafka_t *holder; /* owns the mock cluster */
    rd_kafka_mock_cluster_t *mc;
    rd_kafka_t *source; /* the consumer whose messages the tests hold: destroyed after them */
    struct config cfg;
    struct config_collection coll;
    struct config_route route;
    struct routes_sub sub;
};

static rd_kafka_t *client(rd_kafka_type_t type, const char *bootstraps, const char *group)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (bootstraps)
        assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, err, sizeof(err)),
                         RD_KAFKA_CONF_OK);
    if (group) {
        rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err));
        rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof(err));
    }
    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof(err));
    if (!rk)
        fail_msg("rd_kafka_new: %s", err);
    return rk;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->holder = client(RD_KAFKA_PRODUCER, NULL, NULL);
    f->mc = rd_kafka_mock_cluster_new(f->holder, 1);
    assert_non_null(f->mc);
    const char *boot = rd_kafka_mock_cluster_bootstraps(f->mc);
    rd_kafka_mock_topic_create(f->mc, SOURCE_TOPIC, 1, 1);
    rd_kafka_mock_topic_create(f->mc, DLQ_TOPIC, 1, 1);
    rd_kafka_mock_topic_create(f->mc, ERRORS_TOPIC, 1, 1);
    char json[1024], err[256];
    snprintf(json, sizeof(json),
             "{\"kafka\":{\"brokers\":\"%s\"},"
             "\"instances\":[{\"name\":\"a\",\"url\":\"http://"
             "127.0.0.1:1\",\"token\":\"tok-a\",\"database\":\"postgresql://u@127.0.0.1:1/a\"},"
             "{\"name\":\"b\",\"url\":\"http://127.0.0.1:2\",\"token\":\"tok-b\"}],"
             "\"routes\":[{\"from\":\"a\",\"to\":\"b\",\"collections\":"
             "[{\"collection\":\"articles\",\"fields\":[\"title\"]}]}]}",
             boot);
    if (config_load_buffer(json, strlen(json), &f->cfg, err, sizeof(err)))
        fail_msg("config: %s", err);
    f->coll.collection = "articles";
    f->route.from = "a";
    f->route.to = "b";
    f->sub.route = &f->route;
    f->sub.coll = &f->coll;
    strcpy(f->sub.topic, SOURCE_TOPIC);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    config_free(&f->cfg);
    if (f->source) {
        rd_kafka_consumer_close(f->source);
        rd_kafka_destroy(f->source);
    }
    rd_kafka_mock_cluster_destroy(f->mc);
    rd_kafka_destroy(f->holder);
    free(f);
    return 0;
}

/* Produces n messages to the source topic and reads them back: real messages, as the consumer
 * holds them (they are not events: the DLQ copies any message). */
static void source_messages(struct fixture *f, rd_kafka_message_t **out, int n)
{
    const char *boot = rd_kafka_mock_cluster_bootstraps(f->mc);
    rd_kafka_t *p = client(RD_KAFKA_PRODUCER, boot, NULL);
    for (int i = 0; i < n; i++) {
        char key[16], value[128];
        snprintf(key, sizeof(key), "%d", i + 1);
        snprintf(value, sizeof(value), "{\"not\":\"an event %d\"}", i + 1);
        assert_int_equal(
            rd_kafka_producev(p, RD_KAFKA_V_TOPIC(SOURCE_TOPIC), RD_KAFKA_V_KEY(key, strlen(key)),
                              RD_KAFKA_V_VALUE(value, strlen(value)),
                              RD_KAFKA_V_HEADER("dxsync-action", "create", -1),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
            RD_KAFKA_RESP_ERR_NO_ERROR);
    }
    assert_int_equal(rd_kafka_flush(p, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(p);
    rd_kafka_t *c = client(RD_KAFKA_CONSUMER, boot, "test-source");
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, SOURCE_TOPIC, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(c, l);
    rd_kafka_topic_partition_list_destroy(l);
    int got = 0;
    int64_t deadline = util_mono_ms() + 15000;
    while (got < n && util_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
        if (m && m->err)
            rd_kafka_message_destroy(m);
        else if (m)
            out[got++] = m;
    }
    assert_int_equal(got, n);
    f->source = c; /* rd_kafka_destroy would wait for the messages the test holds */
}

/* How many messages topic (partition 0) holds, from its watermarks (exact: a duplicate counts);
 * the first one's header named hdr is copied into hval. */
static int read_topic(struct fixture *f, const char *topic, const char *hdr, char *hval,
                      size_t hlen)
{
    /* a consumer (of a group: librdkafka's consumer API needs one) only to read a header */
    rd_kafka_t *c =
        hval ? client(RD_KAFKA_CONSUMER, rd_kafka_mock_cluster_bootstraps(f->mc), "reader")
             : client(RD_KAFKA_PRODUCER, rd_kafka_mock_cluster_bootstraps(f->mc), NULL);
    int64_t lo = 0, hi = 0;
    assert_int_equal(rd_kafka_query_watermark_offsets(c, topic, 0, &lo, &hi, 10000),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    if (hval) {
        hval[0] = '\0';
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, topic, 0)->offset = lo;
        rd_kafka_assign(c, l);
        rd_kafka_topic_partition_list_destroy(l);
        /* a new client connects, reads metadata and fetches: allow a loaded machine 15 s */
        int64_t deadline = util_mono_ms() + 15000;
        while (hi > lo && !hval[0] && util_mono_ms() < deadline) {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
            if (m && !m->err)
                kafka_header_get(m, hdr, hval, hlen);
            if (m)
                rd_kafka_message_destroy(m);
        }
    }
    if (hval)
        rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    return (int)(hi - lo);
}

static void release(struct partq_ev *e, void *opaque)
{
    (void)opaque;
    dlq_cancel(e->letter);
}

static bool settle_within(struct dlq *d, struct partq_ev *e, int ms)
{
    int64_t deadline = util_mono_ms() + ms;
    while (e->state != PARTQ_DONE && util_mono_ms() < deadline) {
        dlq_poll(d);
        util_sleep_ms(10, NULL);
    }
    return e->state == PARTQ_DONE;
}

static void settled_only_after_both_acknowledgements(void **state)
{
    struct fixture *f = *state;
    rd_kafka_message_t *msg;
    source_messages(f, &msg, 1);
    char err[512];
    struct dlq *d = dlq_new(&f->cfg, "b", NULL, err, sizeof(err));
    assert_non_null(d);
    assert_string_equal(dlq_topic(d), DLQ_TOPIC);
    struct partq q;
    partq_init(&q, release, NULL);
    bool oom;
    struct partq_ev *e = partq_push(&q, msg, msg->offset, 0, &oom);
    assert_non_null(e);
    struct dlq_why why = {400, "VALUE_TOO_LONG", "Value too long for \"title\"", 1};
    assert_int_equal(dlq_send(d, &q, e, &f->sub, 0, &why), 0);
    assert_int_equal(e->state, PARTQ_DEAD);
    assert_int_equal(dlq_unsettled(d), 1);
    assert_int_equal(partq_advance(&q), -1); /* not before Kafka acknowledged */
    assert_true(settle_within(d, e, 10000));
    assert_null(e->letter);
    assert_int_equal(dlq_unsettled(d), 0);
    assert_int_equal(partq_advance(&q), 1);
    char code[64], action[32];
    assert_int_equal(read_topic(f, DLQ_TOPIC, "dxsync-error-code", code, sizeof(code)), 1);
    assert_string_equal(code, "VALUE_TOO_LONG");
    assert_int_equal(read_topic(f, DLQ_TOPIC, "dxsync-action", action, sizeof(action)), 1);
    assert_string_equal(action, "create"); /* the original's headers travel too */
    assert_int_equal(read_topic(f, ERRORS_TOPIC, NULL, NULL, 0), 1);
    partq_free(&q);
    dlq_free(d, 5000);
}

static void refused_messages_are_produced_again(void **state)
{
    struct fixture *f = *state;
    rd_kafka_message_t *msg;
    source_messages(f, &msg, 1);
    char err[512];
    struct dlq *d = dlq_new(&f->cfg, "b", NULL, err, sizeof(err));
    assert_non_null(d);
    /* the broker refuses the next produce requests for good (not retried by librdkafka) */
    rd_kafka_mock_push_request_errors(f->mc, 0 /* ApiKey Produce */, 2,
                                      RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
                                      RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
    struct partq q;
    partq_init(&q, release, NULL);
    bool oom;
    struct partq_ev *e = partq_push(&q, msg, msg->offset, 0, &oom);
    struct dlq_why why = {500, "INTERNAL_SERVER_ERROR", "boom", 5};
    assert_int_equal(dlq_send(d, &q, e, &f->sub, 0, &why), 0);
    assert_true(settle_within(d, e, 20000));
    assert_int_equal(partq_advance(&q), 1);
    assert_int_equal(read_topic(f, DLQ_TOPIC, NULL, NULL, 0), 1);
    assert_int_equal(read_topic(f, ERRORS_TOPIC, NULL, NULL, 0), 1);
    partq_free(&q);
    dlq_free(d, 5000);
}

static void an_event_freed_first_is_forgotten(void **state)
{
    struct fixture *f = *state;
    rd_kafka_message_t *msgs[3];
    source_messages(f, msgs, 3);
    char err[512];
    struct dlq *d = dlq_new(&f->cfg, "b", NULL, err, sizeof(err));
    assert_non_null(d);
    struct partq q;
    partq_init(&q, release, NULL);
    bool oom;
    for (int i = 0; i < 3; i++) {
        struct partq_ev *e = partq_push(&q, msgs[i], msgs[i]->offset, 0, &oom);
        struct dlq_why why = {400, "INVALID_PAYLOAD", "bad", 1};
        assert_int_equal(dlq_send(d, &q, e, &f->sub, 0, &why), 0);
    }
    assert_int_equal(dlq_unsettled(d), 3);
    partq_free(&q); /* revoked before any acknowledgement: the letters forget their events */
    assert_int_equal(dlq_unsettled(d), 0);
    dlq_flush(d, 10000); /* the delivery reports find letters without events (ASan: no UAF) */
    assert_int_equal(read_topic(f, DLQ_TOPIC, NULL, NULL, 0), 3);
    dlq_free(d, 5000);
}

int main(void)
{
    log_set_level(LOG_LEVEL_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(settled_only_after_both_acknowledgements, setup, teardown),
        cmocka_unit_test_setup_teardown(refused_messages_are_produced_again, setup, teardown),
        cmocka_unit_test_setup_teardown(an_event_freed_first_is_forgotten, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
