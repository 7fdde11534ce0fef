/* Metrics: Prometheus text rendering, health, address parsing, and the real HTTP endpoint. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "testutil.h"

#include "http.h"
#include "config.h"
#include "metrics.h"

#include <crypt.h>
#include "util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void renders_prometheus_text(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    struct metric *created = metrics_counter(m, "dxsync_events_applied_total",
                                             "Events applied to the remote", "action=\"create\"");
    struct metric *deleted = metrics_counter(m, "dxsync_events_applied_total",
                                             "Events applied to the remote", "action=\"delete\"");
    struct metric *lag = metrics_gauge(m, "dxsync_lag_messages", "Messages behind", NULL);
    double b[] = {0.01, 0.1, 1};
    struct metric *lat =
        metrics_histogram(m, "dxsync_request_seconds", "Request latency", "method=\"POST\"", b, 3);
    assert_non_null(created);
    assert_ptr_equal(created,
                     metrics_counter(m, "dxsync_events_applied_total", "x", "action=\"create\""));
    assert_null(metrics_gauge(m, "dxsync_events_applied_total", "x", NULL)); /* type clash */
    metrics_add(created, 3);
    metrics_add(created, 2);
    metrics_add(deleted, 1);
    metrics_set(lag, 12.5);
    metrics_observe(lat, 0.005);
    metrics_observe(lat, 0.05);
    metrics_observe(lat, 0.05);
    metrics_observe(lat, 5);
    metrics_add(NULL, 1); /* a metric that failed to register is a no-op */
    char *text = metrics_render(m);
    const char *want = "# HELP dxsync_events_applied_total Events applied to the remote\n"
                       "# TYPE dxsync_events_applied_total counter\n"
                       "dxsync_events_applied_total{action=\"create\"} 5\n"
                       "dxsync_events_applied_total{action=\"delete\"} 1\n"
                       "# HELP dxsync_lag_messages Messages behind\n"
                       "# TYPE dxsync_lag_messages gauge\n"
                       "dxsync_lag_messages 12.5\n"
                       "# HELP dxsync_request_seconds Request latency\n"
                       "# TYPE dxsync_request_seconds histogram\n"
                       "dxsync_request_seconds_bucket{method=\"POST\",le=\"0.01\"} 1\n"
                       "dxsync_request_seconds_bucket{method=\"POST\",le=\"0.1\"} 3\n"
                       "dxsync_request_seconds_bucket{method=\"POST\",le=\"1\"} 3\n"
                       "dxsync_request_seconds_bucket{method=\"POST\",le=\"+Inf\"} 4\n"
                       "dxsync_request_seconds_sum{method=\"POST\"} 5.1050000000000004\n"
                       "dxsync_request_seconds_count{method=\"POST\"} 4\n";
    assert_string_equal(text, want);
    assert_true(metrics_value(created) == 5.0);
    assert_true(metrics_value(lat) == 4.0);
    free(text);
    metrics_free(m);
}

static void health_and_stall(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    char body[256];
    assert_int_equal(metrics_health(m, body, sizeof(body)), 200);
    assert_string_equal(body, "ok\n");
    metrics_set_health(m, false, "kafka fatal error");
    assert_int_equal(metrics_health(m, body, sizeof(body)), 503);
    assert_string_equal(body, "unhealthy: kafka fatal error\n");
    metrics_set_health(m, true, NULL);
    metrics_set_stall_ms(m, 1);
    util_sleep_ms(20, NULL);
    assert_int_equal(metrics_health(m, body, sizeof(body)), 503);
    assert_non_null(strstr(body, "stalled"));
    metrics_heartbeat(m);
    metrics_set_stall_ms(m, 60000);
    assert_int_equal(metrics_health(m, body, sizeof(body)), 200);
    metrics_free(m);
}

static void parses_addresses(void **state)
{
    (void)state;
    char host[64];
    int port;
    assert_int_equal(metrics_parse_addr("9464", host, sizeof(host), &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 9464);
    assert_int_equal(metrics_parse_addr("0.0.0.0:80", host, sizeof(host), &port), 0);
    assert_string_equal(host, "0.0.0.0");
    assert_int_equal(port, 80);
    assert_int_equal(metrics_parse_addr("[::1]:9000", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(metrics_parse_addr("host:", host, sizeof(host), &port), -1);
    assert_int_equal(metrics_parse_addr("70000", host, sizeof(host), &port), -1);
    assert_int_equal(metrics_parse_addr(":80", host, sizeof(host), &port), -1);
    assert_int_equal(metrics_parse_addr("", host, sizeof(host), &port), -1);
    assert_int_equal(metrics_parse_addr("x", host, sizeof(host), &port), -1);
}

static void serves_metrics_and_healthz(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    metrics_add(metrics_counter(m, "dxsync_test_total", "A test counter", NULL), 42);
    int port = testutil_free_port();
    char err[256], url[64];
    assert_int_equal(metrics_serve(m, "127.0.0.1", port, NULL, err, sizeof(err)), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    struct http_client *c = http_client_new(url, NULL, 5000, err, sizeof(err));
    struct http_response r;
    http_request(c, "GET", "/metrics", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "dxsync_test_total 42\n"));
    http_response_free(&r);
    http_request(c, "GET", "/healthz", NULL, &r);
    assert_int_equal(r.status, 200);
    http_response_free(&r);
    metrics_set_health(m, false, "replication connection lost");
    http_request(c, "GET", "/healthz", NULL, &r);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "replication connection lost"));
    http_response_free(&r);
    http_request(c, "GET", "/nope", NULL, &r);
    assert_int_equal(r.status, 404);
    http_response_free(&r);
    http_client_free(c);
    /* a second server on the same port is refused with a clear error */
    struct metrics *m2 = metrics_new();
    assert_int_equal(metrics_serve(m2, "127.0.0.1", port, NULL, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot listen"));
    metrics_free(m2);
    assert_int_equal(metrics_serve(m2 = metrics_new(), "not-an-ip", port, NULL, err, sizeof(err)),
                     -1);
    metrics_free(m2);
    metrics_free(m);
}

/* web.basic_auth_users (issue 28): every page but /healthz asks for a user of the list and its
 * password (bcrypt), as the Prometheus exporters' web.config does. */
static void basic_auth_guards_all_but_healthz(void **state)
{
    (void)state;
    char salt[64], hash[128];
    struct crypt_data cd;
    memset(&cd, 0, sizeof(cd));
    assert_non_null(crypt_gensalt_rn("$2b$", 4, NULL, 0, salt, sizeof(salt)));
    const char *h = crypt_r("scrape-pw", salt, &cd);
    assert_non_null(h);
    snprintf(hash, sizeof(hash), "%s", h);
    struct config_property users[] = {{.key = "prom", .value = hash}};
    struct config_web web = {.users = users, .nusers = 1};
    struct metrics *m = metrics_new();
    int port = testutil_free_port();
    char err[256], url[96];
    assert_int_equal(metrics_serve(m, "127.0.0.1", port, &web, err, sizeof(err)), 0);
    const char *creds[] = {"", "prom:wrong@", "nobody:scrape-pw@", "prom:scrape-pw@"};
    const long want[] = {401, 401, 401, 200};
    for (size_t i = 0; i < 4; i++) {
        snprintf(url, sizeof(url), "http://%s127.0.0.1:%d", creds[i], port);
        struct http_client *c = http_client_new(url, NULL, 5000, err, sizeof(err));
        struct http_response r;
        const char *pages[] = {"/metrics", "/status.json", "/"};
        for (size_t k = 0; k < 3; k++) {
            http_request(c, "GET", pages[k], NULL, &r);
            if (r.status != want[i])
                fail_msg("%s%s: %ld, want %ld", creds[i], pages[k], r.status, want[i]);
            http_response_free(&r);
        }
        http_request(c, "GET", "/healthz", NULL, &r); /* probes need no password */
        assert_int_equal(r.status, 200);
        http_response_free(&r);
        http_client_free(c);
    }
    metrics_free(m);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(renders_prometheus_text),
        cmocka_unit_test(health_and_stall),
        cmocka_unit_test(parses_addresses),
        cmocka_unit_test(serves_metrics_and_healthz),
        cmocka_unit_test(basic_auth_guards_all_but_healthz),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
