/* Event and error-event envelopes: every vector of tests/vectors decodes or is refused with
 * a reason; round trips keep every member; malformed input never crashes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "event.h"
#include "kafka.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *vectors(void)
{
    return testutil_dir("DXSYNC_VECTORS", DXSYNC_SOURCE_DIR "/tests/vectors");
}

static void check_valid_event(const char *path, const char *name, void *opaque)
{
    int *count = opaque;
    size_t len;
    char *buf = testutil_read_file(path, &len);
    assert_non_null(buf);
    struct event ev;
    char err[256] = "";
    if (event_decode(buf, len, &ev, err, sizeof(err)) != 0)
        fail_msg("%s: valid vector refused: %s", name, err);
    assert_non_null(ev.event_id);
    assert_non_null(ev.key_text);
    /* Round trip: encode, decode again, compare the members that matter. */
    char *enc = event_encode(&ev);
    assert_non_null(enc);
    struct event ev2;
    if (event_decode(enc, strlen(enc), &ev2, err, sizeof(err)) != 0)
        fail_msg("%s: re-encoded event refused: %s", name, err);
    assert_string_equal(ev.event_id, ev2.event_id);
    assert_string_equal(ev.key_text, ev2.key_text);
    assert_int_equal(ev.action, ev2.action);
    assert_int_equal(ev.has_activity_id, ev2.has_activity_id);
    assert_int_equal(ev.activity_id, ev2.activity_id);
    assert_int_equal(ev.has_commit_us, ev2.has_commit_us);
    assert_true(ev.commit_us == ev2.commit_us);
    assert_true(cJSON_Compare(ev.data, ev2.data, true) || (!ev.data && !ev2.data));
    assert_true(cJSON_Compare(ev.delta, ev2.delta, true) || (!ev.delta && !ev2.delta));
    assert_true(cJSON_Compare(ev.key, ev2.key, true));
    free(enc);
    event_free(&ev2);
    event_free(&ev);
    free(buf);
    (*count)++;
}

static void check_invalid_event(const char *path, const char *name, void *opaque)
{
    int *count = opaque;
    size_t len;
    char *buf = testutil_read_file(path, &len);
    assert_non_null(buf);
    struct event ev;
    char err[256] = "";
    if (event_decode(buf, len, &ev, err, sizeof(err)) != -1)
        fail_msg("%s: invalid vector accepted", name);
    if (!err[0])
        fail_msg("%s: refused without a reason", name);
    assert_null(ev.event_id); /* nothing left to free */
    print_message("  %-28s %s\n", name, err);
    free(buf);
    (*count)++;
}

static void event_vectors(void **state)
{
    (void)state;
    char dir[4096];
    int n = 0;
    snprintf(dir, sizeof(dir), "%s/events/valid", vectors());
    assert_int_equal(testutil_each_file(dir, check_valid_event, &n), 9);
    assert_int_equal(n, 9);
    n = 0;
    snprintf(dir, sizeof(dir), "%s/events/invalid", vectors());
    assert_int_equal(testutil_each_file(dir, check_invalid_event, &n), 17);
}

static void specific_reasons(void **state)
{
    (void)state;
    struct {
        const char *file;
        const char *reason;
    } cases[] = {
        {"wrong-version.json", "unsupported version 2"},
        {"version-as-string.json", "version: expected an integer"},
        {"missing-key.json", "key: missing"},
        {"key-is-object.json", "key: expected"},
        {"unknown-action.json", "action: unknown action \"upsert\""},
        {"missing-action.json", "action: missing"},
        {"invalid-utf8.json", "not valid UTF-8"},
        {"data-is-array.json", "data: expected an object"},
        {"update-without-data.json", "data: missing"},
        {"top-level-array.json", "not a JSON object"},
        {"empty.json", "empty message"},
        {"deep-nesting.json", "nested deeper"},
        {"truncated.json", "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/events/invalid/%s", vectors(), cases[i].file);
        size_t len;
        char *buf = testutil_read_file(path, &len);
        assert_non_null(buf);
        struct event ev;
        char err[256] = "";
        assert_int_equal(event_decode(buf, len, &ev, err, sizeof(err)), -1);
        if (!strstr(err, cases[i].reason))
            fail_msg("%s: expected \"%s\", got \"%s\"", cases[i].file, cases[i].reason, err);
        free(buf);
    }
}

static void decoded_values(void **state)
{
    (void)state;
    char path[4096];
    size_t len;
    struct event ev;
    char err[256];

    snprintf(path, sizeof(path), "%s/events/valid/update-integer-key.json", vectors());
    char *buf = testutil_read_file(path, &len);
    assert_int_equal(event_decode(buf, len, &ev, err, sizeof(err)), 0);
    assert_int_equal(ev.action, EVENT_UPDATE);
    assert_string_equal(ev.key_text, "42");
    assert_true(cJSON_IsNumber(ev.key));
    assert_string_equal(ev.collection, "counters");
    assert_int_equal(ev.activity_id, 1300);
    assert_int_equal(ev.revision_id, 1290);
    assert_int_equal(cJSON_GetObjectItem(ev.delta, "value")->valueint, 7);
    assert_false(ev.has_commit_us); /* an older producer's event: no commit time */
    event_free(&ev);
    free(buf);

    snprintf(path, sizeof(path), "%s/events/valid/update-with-commit-time.json", vectors());
    buf = testutil_read_file(path, &len);
    assert_int_equal(event_decode(buf, len, &ev, err, sizeof(err)), 0);
    assert_true(ev.has_commit_us);
    assert_true(ev.commit_us == 1764109839841207LL);
    event_free(&ev);
    free(buf);

    snprintf(path, sizeof(path), "%s/events/valid/unicode-and-escapes.json", vectors());
    buf = testutil_read_file(path, &len);
    assert_int_equal(event_decode(buf, len, &ev, err, sizeof(err)), 0);
    const char *title = cJSON_GetObjectItem(ev.data, "title")->valuestring;
    assert_string_equal(title, "Gr\xc3\xbc\xc3\x9f"
                               "e \xf0\x9f\x8c\x8d \xe6\x9d\xb1\xe4\xba\xac \"quoted\" \\ back");
    /* U+2028 survives byte for byte through encode */
    const char *body = cJSON_GetObjectItem(ev.data, "body")->valuestring;
    assert_non_null(strstr(body, "\xe2\x80\xa8"));
    char *enc = event_encode(&ev);
    assert_non_null(strstr(enc, "\xe2\x80\xa8"));
    free(enc);
    event_free(&ev);
    free(buf);

    snprintf(path, sizeof(path), "%s/events/valid/delete.json", vectors());
    buf = testutil_read_file(path, &len);
    assert_int_equal(event_decode(buf, len, &ev, err, sizeof(err)), 0);
    assert_int_equal(ev.action, EVENT_DELETE);
    assert_null(ev.data);
    assert_false(ev.has_revision_id);
    event_free(&ev);
    free(buf);

    snprintf(path, sizeof(path), "%s/events/valid/snapshot.json", vectors());
    buf = testutil_read_file(path, &len);
    assert_int_equal(event_decode(buf, len, &ev, err, sizeof(err)), 0);
    assert_int_equal(ev.action, EVENT_SNAPSHOT);
    assert_false(ev.has_activity_id);
    assert_null(ev.user);
    event_free(&ev);
    free(buf);
}

static void every_prefix_of_a_valid_event(void **state)
{
    (void)state;
    char path[4096];
    size_t len;
    snprintf(path, sizeof(path), "%s/events/valid/json-field-and-nulls.json", vectors());
    char *buf = testutil_read_file(path, &len);
    assert_non_null(buf);
    for (size_t n = 0; n < len; n++) {
        char *copy = malloc(n ? n : 1); /* exact size: ASan catches any read past n */
        memcpy(copy, buf, n);
        struct event ev;
        char err[256];
        int rc = event_decode(copy, n, &ev, err, sizeof(err));
        /* every proper prefix of the vector (which ends in '}') is refused, with a reason */
        if (rc != -1)
            fail_msg("prefix of %zu bytes accepted", n);
        assert_true(err[0] != '\0');
        free(copy);
    }
    free(buf);
}

static void check_valid_error(const char *path, const char *name, void *opaque)
{
    (void)opaque;
    size_t len;
    char *buf = testutil_read_file(path, &len);
    struct error_event ev;
    char err[256] = "";
    if (error_event_decode(buf, len, &ev, err, sizeof(err)) != 0)
        fail_msg("%s: valid error vector refused: %s", name, err);
    char *enc = error_event_encode(&ev);
    struct error_event ev2;
    assert_int_equal(error_event_decode(enc, strlen(enc), &ev2, err, sizeof(err)), 0);
    assert_int_equal(ev.kind, ev2.kind);
    assert_string_equal(ev.remote, ev2.remote);
    assert_int_equal(ev.status, ev2.status);
    assert_int_equal(ev.has_location, ev2.has_location);
    assert_int_equal(ev.offset, ev2.offset);
    free(enc);
    error_event_free(&ev2);
    error_event_free(&ev);
    free(buf);
}

static void check_invalid_error(const char *path, const char *name, void *opaque)
{
    (void)opaque;
    size_t len;
    char *buf = testutil_read_file(path, &len);
    struct error_event ev;
    char err[256] = "";
    if (error_event_decode(buf, len, &ev, err, sizeof(err)) != -1 || !err[0])
        fail_msg("%s: invalid error vector accepted (or no reason)", name);
    print_message("  %-28s %s\n", name, err);
    free(buf);
}

static void error_vectors(void **state)
{
    (void)state;
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/errors/valid", vectors());
    assert_int_equal(testutil_each_file(dir, check_valid_error, NULL), 4);
    snprintf(dir, sizeof(dir), "%s/errors/invalid", vectors());
    assert_int_equal(testutil_each_file(dir, check_invalid_error, NULL), 4);

    char path[4096];
    size_t len;
    snprintf(path, sizeof(path), "%s/errors/valid/apply-failed.json", vectors());
    char *buf = testutil_read_file(path, &len);
    struct error_event ev;
    char err[256];
    assert_int_equal(error_event_decode(buf, len, &ev, err, sizeof(err)), 0);
    assert_int_equal(ev.kind, ERROR_APPLY_FAILED);
    assert_string_equal(ev.code, "VALUE_TOO_LONG");
    assert_string_equal(ev.topic, "dxsync.a.articles");
    assert_int_equal(ev.partition, 2);
    assert_int_equal(ev.offset, 41);
    assert_true(ev.has_location);
    error_event_free(&ev);
    free(buf);
    snprintf(path, sizeof(path), "%s/errors/valid/remote-unavailable.json", vectors());
    buf = testutil_read_file(path, &len);
    assert_int_equal(error_event_decode(buf, len, &ev, err, sizeof(err)), 0);
    assert_int_equal(ev.kind, ERROR_REMOTE_UNAVAILABLE);
    assert_null(ev.collection);
    assert_false(ev.has_location);
    assert_int_equal(ev.attempts, 37);
    error_event_free(&ev);
    free(buf);
}

/* The decoders refuse only what no dxsync producer sends: their limit is the producers'. */
static void decoders_take_what_producers_may_send(void **state)
{
    (void)state;
    assert_int_equal(strtoul(KAFKA_MESSAGE_MAX_BYTES, NULL, 10), EVENT_MAX_BYTES);
}

static void encodes_the_design_shape(void **state)
{
    (void)state;
    struct event ev = {0};
    ev.event_id = "a:1234";
    ev.source = "a";
    ev.collection = "articles";
    ev.action = EVENT_CREATE;
    ev.key = cJSON_CreateString("k1");
    ev.data = cJSON_Parse("{\"id\":\"k1\",\"n\":3}");
    ev.timestamp = "2026-11-25T22:30:39.839Z";
    ev.has_activity_id = true;
    ev.activity_id = 1234;
    char *enc = event_encode(&ev);
    assert_string_equal(enc, "{\"version\":1,\"event_id\":\"a:1234\",\"source\":\"a\","
                             "\"collection\":\"articles\",\"action\":\"create\",\"key\":\"k1\","
                             "\"data\":{\"id\":\"k1\",\"n\":3},\"delta\":null,\"user\":null,"
                             "\"timestamp\":\"2026-11-25T22:30:39.839Z\",\"activity_id\":1234,"
                             "\"revision_id\":null,\"lsn\":null}");
    free(enc);
    cJSON_Delete(ev.key);
    cJSON_Delete(ev.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(event_vectors),
        cmocka_unit_test(specific_reasons),
        cmocka_unit_test(decoded_values),
        cmocka_unit_test(every_prefix_of_a_valid_event),
        cmocka_unit_test(error_vectors),
        cmocka_unit_test(encodes_the_design_shape),
        cmocka_unit_test(decoders_take_what_producers_may_send),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
