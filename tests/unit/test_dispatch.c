/* dispatch against a stub Directus (httpstub) and librdkafka's mock cluster (for its dlq): the
 * field list is a request of the loop and the held events wait for it; each lane sends one
 * batch request at a time, at most max_in_flight in all; an outage (503) marks the remote down,
 * the lanes wait and resume, and every event ends applied. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "dispatch.h"
#include "httpstub.h"
#include "log.h"
#include "util.h"

#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NLANES   3
#define PER_LANE 7

static const char fields_body[] =
    "{\"data\":[{\"collection\":\"articles\",\"field\":\"id\",\"type\":\"integer\","
    "\"schema\":{\"is_primary_key\":true}},"
    "{\"collection\":\"articles\",\"field\":\"title\",\"type\":\"string\",\"schema\":{}}]}";

struct stub_state {
    pthread_mutex_t lock;
    int fail_posts; /* answer this many POSTs with 503 */
    int fields_requests;
    int posts;
    int posts_before_fields; /* must stay 0 */
    char log[64][64];
    int nlog;
};

static void answer(const struct httpstub_request *req, int *status, char **body, void *opaque)
{
    struct stub_state *st = opaque;
    pthread_mutex_lock(&st->lock);
    if (st->nlog < 64)
        snprintf(st->log[st->nlog++], sizeof(st->log[0]), "%.15s %.40s", req->method, req->path);
    if (strcmp(req->method, "GET") == 0 && strcmp(req->path, "/fields/articles") == 0) {
        st->fields_requests++;
        *body = strdup(fields_body);
    } else if (strcmp(req->method, "GET") == 0 && strcmp(req->path, "/server/ping") == 0) {
        *body = strdup("pong");
    } else if (strcmp(req->method, "POST") == 0) {
        st->posts++;
        if (!st->fields_requests)
            st->posts_before_fields++;
        if (st->fail_posts > 0) {
            st->fail_posts--;
            *status = 503;
            *body = strdup("{\"errors\":[{\"message\":\"Service Unavailable\","
                           "\"extensions\":{\"code\":\"SERVICE_UNAVAILABLE\"}}]}");
        } else {
            size_t n = req->len + 16;
            *body = malloc(n);
            snprintf(*body, n, "{\"data\":%s}", req->body);
        }
    } else {
        *status = 404;
        *body = strdup("{\"errors\":[{\"message\":\"not here\",\"extensions\":{\"code\":"
                       "\"ROUTE_NOT_FOUND\"}}]}");
    }
    pthread_mutex_unlock(&st->lock);
}

struct fixture {
    struct stub_state st;
    struct httpstub *stub;
    rd_kafka_t *holder;
    rd_kafka_mock_cluster_t *mc;
    struct config cfg;
    struct routes_sub *subs;
    struct lww *lww;
    size_t nsubs;
    struct remote remote;
    struct dlq *dlq;
    struct dispatch *d;
    struct partq q[NLANES];
    struct dispatch_lane lanes[NLANES];
    struct dispatch_lane *lp[NLANES];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    pthread_mutex_init(&f->st.lock, NULL);
    int port;
    f->stub = httpstub_start(answer, &f->st, &port);
    assert_non_null(f->stub);
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err)); /* no bootstrap.servers: fine */
    f->holder = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    f->mc = rd_kafka_mock_cluster_new(f->holder, 1);
    char json[1024];
    snprintf(json, sizeof(json),
             "{\"kafka\":{\"brokers\":\"%s\"},"
             "\"instances\":[{\"name\":\"a\",\"url\":\"http://127.0.0.1:1\",\"token\":\"tok-a\","
             "\"database\":\"postgresql://u@127.0.0.1:1/a\"},"
             "{\"name\":\"b\",\"url\":\"http://127.0.0.1:%d\",\"token\":\"tok-b\"}],"
             "\"routes\":[{\"from\":\"a\",\"to\":\"b\",\"collections\":"
             "[{\"collection\":\"articles\",\"fields\":[\"title\"]}]}],"
             "\"consumer\":{\"batch_max\":5,\"max_in_flight\":2,\"request_timeout_ms\":5000}}",
             rd_kafka_mock_cluster_bootstraps(f->mc), port);
    if (config_load_buffer(json, strlen(json), &f->cfg, err, sizeof(err)))
        fail_msg("config: %s", err);
    assert_int_equal(routes_into(&f->cfg, "b", &f->subs, &f->nsubs, err, sizeof(err)), 0);
    assert_int_equal(f->nsubs, 1);
    assert_int_equal(remote_init(&f->remote, "b", f->subs, f->nsubs, 60, NULL), 0);
    f->dlq = dlq_new(&f->cfg, "b", NULL, err, sizeof(err));
    assert_non_null(f->dlq);
    const char *names[] = {"a", "b"};
    f->lww = lww_new(names, 2);
    assert_non_null(f->lww);
    f->d = dispatch_new(&f->cfg, config_instance_find(&f->cfg, "b"), &f->remote, f->dlq, f->lww,
                        f->subs, f->nsubs, NULL, err, sizeof(err));
    assert_non_null(f->d);
    for (int i = 0; i < NLANES; i++) {
        partq_init(&f->q[i], NULL, NULL);
        dispatch_lane_init(&f->lanes[i], &f->subs[0], i, &f->q[i]);
        f->lp[i] = &f->lanes[i];
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < NLANES; i++) {
        dispatch_lane_drop(f->d, &f->lanes[i]);
        partq_free(&f->q[i]);
    }
    dispatch_free(f->d);
    lww_free(f->lww);
    dlq_free(f->dlq, 1000);
    remote_free(&f->remote);
    free(f->subs);
    config_free(&f->cfg);
    rd_kafka_mock_cluster_destroy(f->mc);
    rd_kafka_destroy(f->holder);
    httpstub_stop(f->stub);
    pthread_mutex_destroy(&f->st.lock);
    free(f);
    return 0;
}

/* PER_LANE creates per lane, each held for the field list as intake does. */
static void fill(struct fixture *f)
{
    int id = 1;
    for (int l = 0; l < NLANES; l++)
        for (int i = 0; i < PER_LANE; i++, id++) {
            char json[512], err[256];
            snprintf(json, sizeof(json),
                     "{\"version\":1,\"event_id\":\"a:%d\",\"source\":\"a\",\"collection\":"
                     "\"articles\",\"action\":\"create\",\"key\":%d,\"data\":{\"id\":%d,"
                     "\"title\":\"t%d\"},\"delta\":{\"title\":\"t%d\"},\"user\":null,"
                     "\"timestamp\":\"2026-11-25T22:30:39.839Z\",\"activity_id\":%d}",
                     id, id, id, id, id, id);
            bool oom;
            struct partq_ev *e = partq_push(&f->q[l], NULL, i, 0, &oom);
            assert_non_null(e);
            if (event_decode(json, strlen(json), &e->ev, err, sizeof(err)))
                fail_msg("%s", err);
            e->decoded = true;
            const char *field;
            enum remote_check rc = remote_check_event(&f->remote, &e->ev, e->arrived_ms, &field);
            assert_int_equal(rc, REMOTE_CHECK_WAIT); /* no field list yet */
            partq_hold(&f->q[l], e, true);
        }
}

/* Turns the loop until every event is settled (or the deadline). */
static bool run_until_applied(struct fixture *f, int ms, size_t *max_in_flight)
{
    int64_t deadline = util_mono_ms() + ms;
    while (util_mono_ms() < deadline) {
        dispatch_transfers(f->d);
        size_t unsettled = 0;
        for (int l = 0; l < NLANES; l++) {
            for (size_t i = 0; f->q[l].held && i < partq_len(&f->q[l]); i++) {
                struct partq_ev *e = partq_at(&f->q[l], i);
                const char *field;
                if (e->fields_check && remote_check_event(&f->remote, &e->ev, e->arrived_ms,
                                                          &field) == REMOTE_CHECK_OK)
                    partq_hold(&f->q[l], e, false);
            }
            unsettled += f->q[l].unsettled;
        }
        if (!unsettled)
            return true;
        dispatch_schedule(f->d, f->lp, NLANES, true);
        if (dispatch_in_flight(f->d) > *max_in_flight)
            *max_in_flight = dispatch_in_flight(f->d);
        dispatch_wait(f->d, -1, 20);
        dlq_poll(f->dlq);
    }
    return false;
}

static void field_list_first_then_batches(void **state)
{
    struct fixture *f = *state;
    fill(f);
    size_t max_in_flight = 0;
    assert_true(run_until_applied(f, 15000, &max_in_flight));
    assert_int_equal(f->st.posts_before_fields, 0);
    assert_int_equal(f->st.fields_requests, 1);
    assert_string_equal(f->st.log[0], "GET /fields/articles");
    /* 7 events per lane in batches of at most 5: two POSTs per lane */
    assert_int_equal(f->st.posts, NLANES * 2);
    assert_true(max_in_flight <= 2);
    assert_string_equal(remote_pk(&f->remote, "articles"), "id");
    for (int l = 0; l < NLANES; l++)
        assert_int_equal(partq_advance(&f->q[l]), PER_LANE);
}

static void an_outage_waits_and_resumes(void **state)
{
    struct fixture *f = *state;
    f->st.fail_posts = 4;
    fill(f);
    size_t max_in_flight = 0;
    assert_true(run_until_applied(f, 30000, &max_in_flight));
    assert_int_equal(f->st.posts, NLANES * 2 + 4); /* the refused ones were sent again */
    assert_int_equal(f->remote.down_since_ms, 0);  /* up again */
    for (int l = 0; l < NLANES; l++) {
        assert_int_equal(partq_advance(&f->q[l]), PER_LANE);
        assert_int_equal(f->lanes[l].st, LANE_IDLE);
    }
}

int main(void)
{
    log_set_level(LOG_LEVEL_ERROR);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(field_list_first_then_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(an_outage_waits_and_resumes, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
