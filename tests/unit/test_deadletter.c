/* deadletter: the DLQ copy's headers (originals kept, error and location added), the
 * apply_failed and remote_* error events in DESIGN.md's format (decoded back with the strict
 * decoder), and the key text of odd Kafka keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "deadletter.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct deadletter_failure failure = {
    .source = "a",
    .remote = "b",
    .collection = "counters",
    .key = "42",
    .action = "create",
    .event_id = "a:1234",
    .status = 500,
    .code = "INTERNAL_SERVER_ERROR",
    .message = "An unexpected error occurred.",
    .attempts = 5,
    .topic = "dxsync.a.counters",
    .partition = 2,
    .offset = 41,
};

static const char *header(rd_kafka_headers_t *h, const char *name, char *buf, size_t len)
{
    const void *v;
    size_t sz;
    if (rd_kafka_header_get_last(h, name, &v, &sz))
        return NULL;
    snprintf(buf, len, "%.*s", (int)sz, (const char *)v);
    return buf;
}

static void headers_without_original_headers(void **state)
{
    (void)state;
    rd_kafka_headers_t *h = deadletter_headers(NULL, &failure);
    assert_non_null(h);
    char buf[256];
    assert_string_equal(header(h, "dxsync-error-status", buf, sizeof(buf)), "500");
    assert_string_equal(header(h, "dxsync-error-code", buf, sizeof(buf)), "INTERNAL_SERVER_ERROR");
    assert_string_equal(header(h, "dxsync-error-message", buf, sizeof(buf)),
                        "An unexpected error occurred.");
    assert_string_equal(header(h, "dxsync-original-topic", buf, sizeof(buf)), "dxsync.a.counters");
    assert_string_equal(header(h, "dxsync-original-partition", buf, sizeof(buf)), "2");
    assert_string_equal(header(h, "dxsync-original-offset", buf, sizeof(buf)), "41");
    assert_int_equal(rd_kafka_header_cnt(h), 6);
    rd_kafka_headers_destroy(h);
}

static void apply_failed_event_round_trips(void **state)
{
    (void)state;
    char *json = deadletter_error_event(&failure, 1795650000000);
    assert_non_null(json);
    struct error_event ev;
    char err[256];
    assert_int_equal(error_event_decode(json, strlen(json), &ev, err, sizeof(err)), 0);
    assert_int_equal(ev.kind, ERROR_APPLY_FAILED);
    assert_string_equal(ev.source, "a");
    assert_string_equal(ev.remote, "b");
    assert_string_equal(ev.collection, "counters");
    assert_string_equal(ev.key, "42");
    assert_string_equal(ev.action, "create");
    assert_string_equal(ev.event_id, "a:1234");
    assert_int_equal(ev.status, 500);
    assert_string_equal(ev.code, "INTERNAL_SERVER_ERROR");
    assert_int_equal(ev.attempts, 5);
    assert_true(ev.has_location);
    assert_string_equal(ev.topic, "dxsync.a.counters");
    assert_int_equal(ev.partition, 2);
    assert_int_equal(ev.offset, 41);
    assert_non_null(strstr(json, "\"timestamp\":\"2026-"));
    error_event_free(&ev);
    free(json);
}

static void a_malformed_message_has_no_event_id(void **state)
{
    (void)state;
    struct deadletter_failure f = failure;
    f.key = NULL;
    f.action = NULL;
    f.event_id = NULL;
    f.status = 0;
    f.code = DEADLETTER_MALFORMED;
    f.message = "not valid JSON near byte 3";
    f.attempts = 0;
    char *json = deadletter_error_event(&f, 1795650000000);
    struct error_event ev;
    char err[256];
    assert_int_equal(error_event_decode(json, strlen(json), &ev, err, sizeof(err)), 0);
    assert_null(ev.event_id);
    assert_null(ev.key);
    assert_int_equal(ev.status, 0);
    assert_string_equal(ev.code, "MALFORMED_EVENT");
    error_event_free(&ev);
    free(json);
}

static void remote_events_round_trip(void **state)
{
    (void)state;
    char *json = deadletter_remote_event(ERROR_REMOTE_UNAVAILABLE, "a", "b", 0, "",
                                         "Couldn't connect to server", 12, 1795650000000);
    struct error_event ev;
    char err[256];
    assert_int_equal(error_event_decode(json, strlen(json), &ev, err, sizeof(err)), 0);
    assert_int_equal(ev.kind, ERROR_REMOTE_UNAVAILABLE);
    assert_string_equal(ev.message, "Couldn't connect to server");
    assert_int_equal(ev.attempts, 12);
    assert_false(ev.has_location);
    error_event_free(&ev);
    free(json);
    json = deadletter_remote_event(ERROR_REMOTE_RECOVERED, "a", "b", 0, "", "", 0, 0);
    assert_int_equal(error_event_decode(json, strlen(json), &ev, err, sizeof(err)), 0);
    assert_int_equal(ev.kind, ERROR_REMOTE_RECOVERED);
    error_event_free(&ev);
    free(json);
}

/* What the remote answered may quote a secret: the DLQ headers and the error events carry it
 * masked, as a log line would (issue 28). */
static void secrets_are_masked_in_headers_and_events(void **state)
{
    (void)state;
    log_add_secret("tok-dlq-secret");
    struct deadletter_failure f = failure;
    f.code = "BAD tok-dlq-secret";
    f.message = "token tok-dlq-secret is not valid";
    rd_kafka_headers_t *h = deadletter_headers(NULL, &f);
    assert_non_null(h);
    char buf[256];
    assert_string_equal(header(h, "dxsync-error-message", buf, sizeof(buf)),
                        "token [redacted] is not valid");
    assert_string_equal(header(h, "dxsync-error-code", buf, sizeof(buf)), "BAD [redacted]");
    rd_kafka_headers_destroy(h);
    char *json = deadletter_error_event(&f, 1000);
    assert_non_null(json);
    assert_null(strstr(json, "tok-dlq"));
    assert_non_null(strstr(json, "token [redacted] is not valid"));
    free(json);
    json = deadletter_remote_event(ERROR_REMOTE_UNAVAILABLE, "a", "b", 401, "INVALID_CREDENTIALS",
                                   "Bearer tok-dlq-secret", 3, 1000);
    assert_non_null(json);
    assert_null(strstr(json, "tok-dlq"));
    free(json);
    log_clear_secrets();
}

static void key_text_of_odd_keys(void **state)
{
    (void)state;
    rd_kafka_message_t m;
    memset(&m, 0, sizeof(m));
    char buf[1024];
    assert_null(deadletter_key_text(&m, buf, sizeof(buf))); /* no key */
    m.key = "abc";
    m.key_len = 3;
    assert_string_equal(deadletter_key_text(&m, buf, sizeof(buf)), "abc");
    m.key = "a\0c";
    assert_null(deadletter_key_text(&m, buf, sizeof(buf))); /* NUL inside */
    m.key = "\xff\xfe";
    m.key_len = 2;
    assert_null(deadletter_key_text(&m, buf, sizeof(buf))); /* not UTF-8 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(headers_without_original_headers),
        cmocka_unit_test(apply_failed_event_round_trips),
        cmocka_unit_test(a_malformed_message_has_no_event_id),
        cmocka_unit_test(remote_events_round_trip),
        cmocka_unit_test(secrets_are_masked_in_headers_and_events),
        cmocka_unit_test(key_text_of_odd_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
