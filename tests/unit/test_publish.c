/* publish against librdkafka's mock cluster: while the broker is down and the queue is full,
 * publish_txn waits calling the wait callback (the producer keeps its replication connection
 * alive there, issue 14), and every event is acknowledged once the broker is back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "publish.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NEVENTS 40

struct waiter {
    rd_kafka_mock_cluster_t *mc;
    int calls;
    int up_after; /* the broker comes back at this call */
};

static void on_wait(void *opaque)
{
    struct waiter *w = opaque;
    if (++w->calls == w->up_after)
        rd_kafka_mock_broker_set_up(w->mc, 1);
}

static void waits_with_callback_while_broker_down(void **state)
{
    (void)state;
    char err[512];
    rd_kafka_conf_t *hconf = rd_kafka_conf_new();
    rd_kafka_conf_set(hconf, "log_level", "0", err, sizeof(err));
    rd_kafka_t *holder = rd_kafka_new(RD_KAFKA_PRODUCER, hconf, err, sizeof(err));
    assert_non_null(holder);
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(holder, 1);
    assert_non_null(mc);
    rd_kafka_mock_topic_create(mc, "dxsync.a.articles", 1, 1);
    char json[1024];
    snprintf(json, sizeof(json),
             "{\"kafka\":{\"brokers\":\"%s\",\"properties\":{\"queue.buffering.max.messages\":"
             "\"5\",\"log_level\":\"0\"}},"
             "\"instances\":[{\"name\":\"a\",\"url\":\"http://127.0.0.1:1\",\"token\":\"t\","
             "\"database\":\"postgresql://u@127.0.0.1:1/a\"},"
             "{\"name\":\"b\",\"url\":\"http://127.0.0.1:2\",\"token\":\"t\"}],"
             "\"routes\":[{\"from\":\"a\",\"to\":\"b\",\"collections\":"
             "[{\"collection\":\"articles\",\"fields\":[\"title\"]}]}]}",
             rd_kafka_mock_cluster_bootstraps(mc));
    struct config cfg;
    if (config_load_buffer(json, strlen(json), &cfg, err, sizeof(err)))
        fail_msg("config: %s", err);
    struct metrics *m = metrics_new();
    struct publish *p = publish_new(&cfg, "a", m, err, sizeof(err));
    assert_non_null(p);

    struct capture_event evs[NEVENTS];
    memset(evs, 0, sizeof(evs));
    for (int i = 0; i < NEVENTS; i++) {
        struct event *ev = &evs[i].ev;
        char id[32];
        snprintf(id, sizeof(id), "a:%d", i + 1);
        ev->event_id = strdup(id);
        ev->source = strdup("a");
        ev->collection = strdup("articles");
        ev->action = EVENT_CREATE;
        ev->key = cJSON_CreateNumber(i + 1);
        ev->key_text = strdup(id + 2);
        ev->data = cJSON_CreateObject();
        ev->timestamp = strdup("2026-12-01T00:00:00.000Z");
    }
    struct capture_txn txn = {
        .commit_lsn = 100, .end_lsn = 200, .commit_time_ms = 1, .events = evs, .nevents = NEVENTS};

    rd_kafka_mock_broker_set_down(mc, 1);
    struct waiter w = {.mc = mc, .up_after = 30}; /* about 3 s down */
    publish_set_wait_cb(p, on_wait, &w);
    volatile sig_atomic_t stop = 0;
    assert_int_equal(publish_txn(p, &txn, &stop, err, sizeof(err)), 0);
    assert_true(w.calls >= 30); /* it waited, calling back all along */
    assert_int_equal(publish_drain(p, 30000, NULL), 0);
    int64_t t;
    assert_int_equal(publish_confirmed(p, &t), 200);
    char why[256];
    assert_false(publish_failed(p, why, sizeof(why)));

    for (int i = 0; i < NEVENTS; i++)
        event_free(&evs[i].ev);
    publish_free(p, 5000);
    metrics_free(m);
    config_free(&cfg);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(holder);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(waits_with_callback_while_broker_down),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
