/* The status page's state in the metrics registry: /status.json from the same series /metrics
 * renders, counter rates over the last minute, the latest dead letters, the last error, label
 * escaping, removed series, and the page and JSON served over HTTP. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "testutil.h"

#include "log.h"
#include "metrics.h"
#include "util.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static cJSON *status(struct metrics *m)
{
    char *text = metrics_status_json(m);
    assert_non_null(text);
    cJSON *root = cJSON_Parse(text);
    assert_non_null(root);
    free(text);
    return root;
}

/* The series of name whose label k is v (or the first when k is NULL). */
static const cJSON *series(const cJSON *root, const char *name, const char *k, const char *v)
{
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItem(root, "metrics"))
    {
        if (strcmp(cJSON_GetObjectItem(s, "name")->valuestring, name) != 0)
            continue;
        const cJSON *lv = k ? cJSON_GetObjectItem(cJSON_GetObjectItem(s, "labels"), k) : NULL;
        if (!k || (cJSON_IsString(lv) && strcmp(lv->valuestring, v) == 0))
            return s;
    }
    return NULL;
}

static void json_tells_the_registry(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    metrics_set_program(m, "dxsync-consumer");
    metrics_add(metrics_counter(m, "dxsync_x_total", "X", "action=\"create\""), 3);
    metrics_set(metrics_gauge(m, "dxsync_lag", "Lag", "topic=\"a\\\"b\\\\c\",partition=\"2\""), 7);
    metrics_observe(metrics_histogram(m, "dxsync_seconds", "S", NULL, NULL, 0), 0.5);
    cJSON *root = status(m);
    assert_string_equal(cJSON_GetObjectItem(root, "program")->valuestring, "dxsync-consumer");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "health"), "ok")));
    const cJSON *c = series(root, "dxsync_x_total", "action", "create");
    assert_non_null(c);
    assert_string_equal(cJSON_GetObjectItem(c, "type")->valuestring, "counter");
    assert_int_equal(cJSON_GetObjectItem(c, "value")->valuedouble, 3);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(c, "rate_per_s"))); /* too early to tell */
    /* label values come back unescaped */
    const cJSON *g = series(root, "dxsync_lag", "topic", "a\"b\\c");
    assert_non_null(g);
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(g, "labels"), "partition")->valuestring, "2");
    assert_int_equal(cJSON_GetObjectItem(g, "value")->valuedouble, 7);
    const cJSON *h = series(root, "dxsync_seconds", NULL, NULL);
    assert_int_equal(cJSON_GetObjectItem(h, "count")->valuedouble, 1);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(root, "last_error")));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(root, "dead_letters")), 0);
    cJSON_Delete(root);

    metrics_set_health(m, false, "kafka fatal error");
    root = status(m);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "health"), "ok")));
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(root, "last_error"), "text")->valuestring,
        "kafka fatal error");
    cJSON_Delete(root);
    metrics_free(m);
}

/* The gauges computed when read (health, memory) are current in /status.json though nothing
 * scraped /metrics (the status page without Prometheus showed an unhealthy process, RSS 0). */
static void json_is_current_without_a_scrape(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    char err[256];
    assert_int_equal(metrics_serve(m, "127.0.0.1", testutil_free_port(), NULL, err, sizeof(err)),
                     0);
    cJSON *root = status(m);
    const cJSON *healthy = series(root, "dxsync_healthy", NULL, NULL);
    const cJSON *rss = series(root, "process_resident_memory_bytes", NULL, NULL);
    assert_non_null(healthy);
    assert_non_null(rss);
    assert_int_equal(cJSON_GetObjectItem(healthy, "value")->valuedouble, 1);
    assert_true(cJSON_GetObjectItem(rss, "value")->valuedouble > 1e6);
    cJSON_Delete(root);
    metrics_set_health(m, false, "kafka fatal error");
    root = status(m);
    assert_int_equal(
        cJSON_GetObjectItem(series(root, "dxsync_healthy", NULL, NULL), "value")->valuedouble, 0);
    cJSON_Delete(root);
    metrics_free(m);
}

static void counter_rates_over_the_last_minute(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    struct metric *c = metrics_counter(m, "dxsync_applied_total", "A", NULL);
    metrics_sample(m); /* at 0 */
    metrics_add(c, 30);
    util_sleep_ms(1100, NULL);
    cJSON *root = status(m);
    double r = cJSON_GetObjectItem(series(root, "dxsync_applied_total", NULL, NULL), "rate_per_s")
                   ->valuedouble;
    assert_true(r > 20 && r <= 30); /* 30 events in 1.1 s */
    cJSON_Delete(root);
    /* a counter registered later was 0 at the earlier samples */
    metrics_add(metrics_counter(m, "dxsync_late_total", "L", NULL), 5);
    root = status(m);
    assert_true(cJSON_GetObjectItem(series(root, "dxsync_late_total", NULL, NULL), "rate_per_s")
                    ->valuedouble > 0);
    cJSON_Delete(root);
    metrics_free(m);
}

static void keeps_the_latest_dead_letters(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    for (int i = 0; i < METRICS_RECENT + 3; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        struct metrics_dead_letter d = {.time_ms = 1000 + i,
                                        .topic = "dxsync.a.articles",
                                        .partition = 1,
                                        .offset = i,
                                        .collection = "articles",
                                        .key = key,
                                        .status = 400,
                                        .code = "INVALID_PAYLOAD",
                                        .message = "<script>alert(1)</script>"};
        metrics_note_dead_letter(m, &d);
    }
    metrics_note_error(m, "first");
    metrics_note_error(m, "first"); /* the same again keeps the first time */
    cJSON *root = status(m);
    const cJSON *dl = cJSON_GetObjectItem(root, "dead_letters");
    assert_int_equal(cJSON_GetArraySize(dl), METRICS_RECENT);
    const cJSON *newest = cJSON_GetArrayItem(dl, 0);
    char want[16];
    snprintf(want, sizeof(want), "k%d", METRICS_RECENT + 2);
    assert_string_equal(cJSON_GetObjectItem(newest, "key")->valuestring, want);
    assert_string_equal(cJSON_GetObjectItem(newest, "message")->valuestring,
                        "<script>alert(1)</script>");
    assert_int_equal(cJSON_GetObjectItem(root, "dead_letters_seen")->valuedouble,
                     METRICS_RECENT + 3);
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(root, "last_error"), "text")->valuestring, "first");
    cJSON_Delete(root);
    metrics_free(m);
}

/* What /status.json and /healthz tell is masked like a log line (issue 28): a health text, an
 * error and a dead letter's message may quote a token or a password. */
static void secrets_never_reach_the_status(void **state)
{
    (void)state;
    log_add_secret("tok-status-secret");
    struct metrics *m = metrics_new();
    struct metrics_dead_letter d = {.time_ms = 1,
                                    .topic = "dxsync.a.articles",
                                    .collection = "articles",
                                    .key = "k tok-status-secret",
                                    .status = 401,
                                    .code = "INVALID_CREDENTIALS",
                                    .message = "Bearer tok-status-secret refused"};
    metrics_note_dead_letter(m, &d);
    metrics_set_health(m, false, "GET /users/me with tok-status-secret: 401");
    char *text = metrics_status_json(m);
    assert_non_null(text);
    assert_null(strstr(text, "tok-status"));
    assert_non_null(strstr(text, "Bearer [redacted] refused"));
    free(text);
    metrics_note_error(m, "a later error: tok-status-secret");
    text = metrics_status_json(m);
    assert_null(strstr(text, "tok-status"));
    free(text);
    metrics_free(m);
    log_clear_secrets();
}

static void escapes_labels_and_removes_series(void **state)
{
    (void)state;
    char out[64];
    assert_string_equal(metrics_label_escape(out, sizeof(out), "a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    assert_string_equal(metrics_label_escape(out, 4, "abcdef"), "abc");
    assert_string_equal(metrics_label_escape(out, 3, "a\"b"), "a"); /* never half an escape */
    struct metrics *m = metrics_new();
    metrics_set(metrics_gauge(m, "dxsync_p", "P", "partition=\"0\""), 1);
    metrics_set(metrics_gauge(m, "dxsync_p", "P", "partition=\"1\""), 2);
    metrics_remove(m, "dxsync_p", "partition=\"0\"");
    metrics_remove(m, "dxsync_p", "partition=\"9\""); /* unknown: nothing */
    metrics_remove(m, "dxsync_none", NULL);
    char *text = metrics_render(m);
    assert_null(strstr(text, "partition=\"0\""));
    assert_non_null(strstr(text, "dxsync_p{partition=\"1\"} 2\n"));
    free(text);
    /* the tail moved: a series added after a removal is listed */
    metrics_remove(m, "dxsync_p", "partition=\"1\"");
    metrics_set(metrics_gauge(m, "dxsync_p", "P", "partition=\"3\""), 3);
    text = metrics_render(m);
    assert_non_null(strstr(text, "dxsync_p{partition=\"3\"} 3\n"));
    free(text);
    metrics_free(m);
}

static size_t collect(char *p, size_t size, size_t n, void *opaque)
{
    struct util_buf *b = opaque;
    util_buf_append(b, p, size * n);
    return size * n;
}

/* GETs url; returns the body (caller frees) and the status and content type. */
static char *get(const char *url, long *status, char *ctype, size_t ctlen)
{
    struct util_buf b = {0};
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    char *ct = NULL;
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    util_strlcpy(ctype, ct ? ct : "", ctlen);
    curl_easy_cleanup(c);
    util_buf_append(&b, "", 1);
    return util_buf_steal(&b);
}

static void serves_the_page_and_json(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    metrics_set(metrics_gauge(m, "dxsync_consumer_remote_up", "Up", "remote=\"b\""), 1);
    int port = testutil_free_port();
    char err[256], url[96], ct[128];
    long st = 0;
    assert_int_equal(metrics_serve(m, "127.0.0.1", port, NULL, err, sizeof(err)), 0);

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    char *body = get(url, &st, ct, sizeof(ct));
    assert_int_equal(st, 200);
    assert_string_equal(ct, "text/html; charset=utf-8");
    assert_non_null(strstr(body, "status.json"));
    /* self-contained: nothing loaded from elsewhere */
    assert_null(strstr(body, "src="));
    assert_null(strstr(body, "href="));
    assert_null(strstr(body, "http://"));
    assert_null(strstr(body, "https://"));
    assert_null(strstr(body, "innerHTML"));
    free(body);

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/status.json", port);
    body = get(url, &st, ct, sizeof(ct));
    assert_int_equal(st, 200);
    assert_string_equal(ct, "application/json");
    cJSON *root = cJSON_Parse(body);
    assert_non_null(series(root, "dxsync_consumer_remote_up", "remote", "b"));
    assert_non_null(series(root, "dxsync_healthy", NULL, NULL));
    cJSON_Delete(root);
    free(body);

    metrics_set_health(m, false, "connection lost");
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
    body = get(url, &st, ct, sizeof(ct));
    assert_non_null(strstr(body, "\ndxsync_healthy 0\n"));
    /* the process's memory, read at a scrape a second after the last read at the earliest: a
     * resident size of at least 1 MB, a heap in use that grows by what is allocated (10 MB held
     * across two scrapes 1.1 s apart) */
    const char *rss = strstr(body, "\nprocess_resident_memory_bytes ");
    const char *used = strstr(body, "\ndxsync_heap_in_use_bytes ");
    assert_non_null(rss);
    assert_non_null(used);
    assert_non_null(strstr(body, "\ndxsync_heap_free_bytes "));
    assert_true(strtod(rss + strlen("\nprocess_resident_memory_bytes "), NULL) > 1e6);
    double used0 = strtod(used + strlen("\ndxsync_heap_in_use_bytes "), NULL);
    free(body);
    char *hold = malloc(10u << 20);
    assert_non_null(hold);
    memset(hold, 1, 10u << 20);
    util_sleep_ms(1100, NULL);
    body = get(url, &st, ct, sizeof(ct));
    used = strstr(body, "\ndxsync_heap_in_use_bytes ");
    assert_non_null(used);
    if (!SANITIZED) /* ASan's allocator replaces glibc's: mallinfo2 does not see its blocks */
        assert_true(strtod(used + strlen("\ndxsync_heap_in_use_bytes "), NULL) >= used0 + 10e6);
    free(hold);
    free(body);
    metrics_free(m);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(json_tells_the_registry),
        cmocka_unit_test(json_is_current_without_a_scrape),
        cmocka_unit_test(counter_rates_over_the_last_minute),
        cmocka_unit_test(keeps_the_latest_dead_letters),
        cmocka_unit_test(secrets_never_reach_the_status),
        cmocka_unit_test(escapes_labels_and_removes_series),
        cmocka_unit_test(serves_the_page_and_json),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
