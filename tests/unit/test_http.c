/* HTTP: classification of every status and Directus error code DESIGN.md lists, error-body
 * parsing, Retry-After, escaping, and a real request against a tiny loopback server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "testutil.h"

#include "http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void classifies_statuses(void **state)
{
    (void)state;
    struct {
        CURLcode curl;
        long status;
        const char *code;
        enum http_class want;
    } cases[] = {
        {CURLE_OK, 200, NULL, HTTP_OK},
        {CURLE_OK, 204, NULL, HTTP_OK}, /* admin: missing item, nothing done */
        {CURLE_COULDNT_CONNECT, 0, NULL, HTTP_TRANSIENT},
        {CURLE_OPERATION_TIMEDOUT, 0, NULL, HTTP_TRANSIENT},
        {CURLE_RECV_ERROR, 0, NULL, HTTP_TRANSIENT},
        {CURLE_OK, 408, NULL, HTTP_TRANSIENT},
        {CURLE_OK, 429, "REQUESTS_EXCEEDED", HTTP_TRANSIENT},
        {CURLE_OK, 502, NULL, HTTP_TRANSIENT},
        {CURLE_OK, 503, "SERVICE_UNAVAILABLE", HTTP_TRANSIENT},
        {CURLE_OK, 504, NULL, HTTP_TRANSIENT},
        {CURLE_OK, 401, "INVALID_CREDENTIALS", HTTP_TRANSIENT}, /* fix the token, lose nothing */
        {CURLE_OK, 401, "TOKEN_EXPIRED", HTTP_TRANSIENT},
        {CURLE_OK, 500, "INTERNAL_SERVER_ERROR", HTTP_SERVER_ERROR},
        {CURLE_OK, 501, NULL, HTTP_SERVER_ERROR},
        {CURLE_OK, 403, "FORBIDDEN", HTTP_FORBIDDEN},
        {CURLE_OK, 400, "RECORD_NOT_UNIQUE", HTTP_DUPLICATE},
        {CURLE_OK, 400, "INVALID_PAYLOAD", HTTP_PERMANENT},
        {CURLE_OK, 400, "VALUE_TOO_LONG", HTTP_PERMANENT},
        {CURLE_OK, 400, "VALUE_OUT_OF_RANGE", HTTP_PERMANENT},
        {CURLE_OK, 400, "FAILED_VALIDATION", HTTP_PERMANENT},
        {CURLE_OK, 400, "CONTAINS_NULL_VALUES", HTTP_PERMANENT},
        {CURLE_OK, 400, "INVALID_FOREIGN_KEY", HTTP_PERMANENT},
        {CURLE_OK, 404, "ROUTE_NOT_FOUND", HTTP_PERMANENT},
        {CURLE_OK, 413, NULL, HTTP_PERMANENT},
        {CURLE_OK, 400, NULL, HTTP_PERMANENT},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum http_class got = http_classify(cases[i].curl, cases[i].status, cases[i].code);
        if (got != cases[i].want)
            fail_msg("case %zu (status %ld, %s): got %s, want %s", i, cases[i].status,
                     cases[i].code ? cases[i].code : "-", http_class_name(got),
                     http_class_name(cases[i].want));
    }
}

static void parses_directus_errors(void **state)
{
    (void)state;
    char code[64], msg[256];
    const char *body = "{\"errors\":[{\"message\":\"Value for field \\\"title\\\" is too long.\","
                       "\"extensions\":{\"code\":\"VALUE_TOO_LONG\",\"field\":\"title\"}}]}";
    assert_int_equal(http_parse_error(body, strlen(body), code, sizeof(code), msg, sizeof(msg)), 0);
    assert_string_equal(code, "VALUE_TOO_LONG");
    assert_string_equal(msg, "Value for field \"title\" is too long.");
    /* not JSON, truncated, wrong shape: no code, no crash */
    const char *bad[] = {"<html>502 Bad Gateway</html>",
                         "{\"errors\":[{\"message\":\"x",
                         "{}",
                         "{\"errors\":{}}",
                         "[]",
                         ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(
            http_parse_error(bad[i], strlen(bad[i]), code, sizeof(code), msg, sizeof(msg)), -1);
        assert_string_equal(code, "");
    }
    assert_int_equal(http_parse_error(NULL, 0, code, sizeof(code), msg, sizeof(msg)), -1);
}

static void reads_retry_after(void **state)
{
    (void)state;
    assert_int_equal(http_retry_after_s("120", 0), 120);
    assert_int_equal(http_retry_after_s(" 5\r\n", 0), 5);
    assert_int_equal(http_retry_after_s("soon", 0), -1);
    assert_int_equal(http_retry_after_s("-3", 0), -1);
    /* HTTP date 30 s after "now" */
    assert_int_equal(http_retry_after_s("Wed, 25 Nov 2026 22:00:30 GMT", 1795644000L), 30);
    assert_int_equal(http_retry_after_s(NULL, 0), -1);
}

static void escapes_path_segments(void **state)
{
    (void)state;
    char buf[64];
    assert_int_equal(http_escape("a b/c?d", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "a%20b%2Fc%3Fd");
    assert_int_equal(http_escape("355d2d13-7d08", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "355d2d13-7d08");
    assert_int_equal(http_escape("\xc3\xa9", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "%C3%A9");
    assert_int_equal(http_escape("////", buf, 8), -1);
}

/* A one-shot loopback server: answers the first request with a canned reply, records it. */
struct server {
    int fd;
    int port;
    const char *reply;
    char request[4096];
};

static void *serve_once(void *arg)
{
    struct server *s = arg;
    int c = accept(s->fd, NULL, NULL);
    if (c < 0)
        return NULL;
    size_t n = 0;
    ssize_t r;
    while (n < sizeof(s->request) - 1 &&
           (r = read(c, s->request + n, sizeof(s->request) - 1 - n)) > 0) {
        n += (size_t)r;
        s->request[n] = '\0';
        char *hdr_end = strstr(s->request, "\r\n\r\n");
        if (hdr_end) {
            const char *cl = strstr(s->request, "Content-Length: ");
            size_t body = cl ? (size_t)atoi(cl + 16) : 0;
            if (n >= (size_t)(hdr_end + 4 - s->request) + body)
                break;
        }
    }
    ssize_t w = write(c, s->reply, strlen(s->reply));
    (void)w;
    close(c);
    return NULL;
}

static void start_server(struct server *s, const char *reply, pthread_t *t)
{
    s->reply = reply;
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->fd, 1), 0);
    socklen_t l = sizeof(a);
    getsockname(s->fd, (struct sockaddr *)&a, &l);
    s->port = ntohs(a.sin_port);
    pthread_create(t, NULL, serve_once, s);
}

static void real_request_with_token_and_error(void **state)
{
    (void)state;
    struct server s = {0};
    pthread_t t;
    start_server(
        &s,
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
        "Retry-After: 7\r\nContent-Length: 72\r\nConnection: close\r\n\r\n"
        "{\"errors\":[{\"message\":\"dup\",\"extensions\":{\"code\":\"RECORD_NOT_UNIQUE\"}}]}",
        &t);
    char url[64], err[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", s.port);
    struct http_client *c = http_client_new(url, "s3cret-token", 5000, err, sizeof(err));
    assert_non_null(c);
    struct http_response r;
    assert_int_equal(http_request(c, "POST", "/items/articles", "[{\"id\":1}]", &r), 0);
    pthread_join(t, NULL);
    close(s.fd);
    assert_int_equal(r.status, 400);
    assert_int_equal(r.klass, HTTP_DUPLICATE);
    assert_string_equal(r.code, "RECORD_NOT_UNIQUE");
    assert_string_equal(r.message, "dup");
    assert_int_equal(r.retry_after_s, 7);
    assert_non_null(strstr(s.request, "POST /items/articles HTTP/1.1"));
    assert_non_null(strstr(s.request, "Authorization: Bearer s3cret-token"));
    assert_non_null(strstr(s.request, "Content-Type: application/json"));
    assert_non_null(strstr(s.request, "[{\"id\":1}]"));
    http_response_free(&r);
    http_client_free(c);
}

static void truncated_answer_is_transient(void **state)
{
    (void)state;
    struct server s = {0};
    pthread_t t;
    /* promises 100 bytes, sends 10, closes */
    start_server(&s, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"data\":[", &t);
    char url[64], err[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", s.port);
    struct http_client *c = http_client_new(url, NULL, 5000, err, sizeof(err));
    struct http_response r;
    http_request(c, "GET", "/server/ping", NULL, &r);
    pthread_join(t, NULL);
    close(s.fd);
    assert_int_not_equal(r.curl, CURLE_OK);
    assert_int_equal(r.klass, HTTP_TRANSIENT);
    assert_true(r.message[0] != '\0');
    http_response_free(&r);
    http_client_free(c);
}

/* The zero value of a response is "no answer", never a success; http_prepare resets a
 * response to it before anything else. */
static void zero_value_is_no_answer(void **state)
{
    (void)state;
    struct http_response r;
    memset(&r, 0, sizeof(r));
    assert_int_equal(r.klass, HTTP_NONE);
    assert_int_not_equal(HTTP_OK, 0);
    assert_string_equal(http_class_name(HTTP_NONE), "none");
    assert_string_equal(http_class_name(HTTP_OK), "ok");
    assert_string_equal(http_class_name(HTTP_PERMANENT), "permanent");

    char err[128];
    struct http_client *c = http_client_new("http://127.0.0.1:9", NULL, 1000, err, sizeof(err));
    CURL *easy = curl_easy_init();
    r.klass = HTTP_OK;
    r.status = 200;
    r.retry_after_s = 5;
    assert_int_equal(http_prepare(c, easy, "GET", "/server/ping", NULL, &r), 0);
    assert_int_equal(r.klass, HTTP_NONE);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.retry_after_s, -1);
    assert_null(r.body);
    curl_easy_cleanup(easy);
    http_client_free(c);
}

static void refused_connection_is_transient(void **state)
{
    (void)state;
    /* a port nothing listens on */
    char url[64], err[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", testutil_free_port());
    struct http_client *c = http_client_new(url, "t", 2000, err, sizeof(err));
    struct http_response r;
    http_request(c, "GET", "/server/ping", NULL, &r);
    assert_int_equal(r.curl, CURLE_COULDNT_CONNECT);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.klass, HTTP_TRANSIENT);
    http_response_free(&r);
    http_client_free(c);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(classifies_statuses),
        cmocka_unit_test(parses_directus_errors),
        cmocka_unit_test(reads_retry_after),
        cmocka_unit_test(escapes_path_segments),
        cmocka_unit_test(real_request_with_token_and_error),
        cmocka_unit_test(truncated_answer_is_transient),
        cmocka_unit_test(refused_connection_is_transient),
        cmocka_unit_test(zero_value_is_no_answer),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
