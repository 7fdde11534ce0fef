/* remote: an event that writes a field the remote lacks is caught, but only against a field list
 * that is fresh; a list that is unknown or stale makes the event wait for a refresh, which is a
 * request the loop sends (remote_refresh_due), never a call of remote's own. The outage record
 * publishes remote_unavailable once, after retry_notify_after_s. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "remote.h"

#include <stdlib.h>
#include <string.h>

static const char fields_body[] =
    "{\"data\":[{\"collection\":\"articles\",\"field\":\"id\",\"type\":\"integer\","
    "\"schema\":{\"is_primary_key\":true}},"
    "{\"collection\":\"articles\",\"field\":\"title\",\"type\":\"string\",\"schema\":{}},"
    "{\"collection\":\"articles\",\"field\":\"tags\",\"type\":\"alias\",\"schema\":null}]}";

static struct http_response answer(long status, enum http_class klass, const char *body)
{
    struct http_response r;
    memset(&r, 0, sizeof(r));
    r.status = status;
    r.klass = klass;
    r.body = (char *)body;
    r.len = body ? strlen(body) : 0;
    return r;
}

struct fixture {
    struct config_collection coll;
    struct config_route route;
    struct routes_sub sub;
    struct remote r;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    static char *fields[] = {"title", "rating"};
    f->coll.collection = "articles";
    f->coll.fields = fields;
    f->coll.nfields = 2;
    f->route.from = "a";
    f->route.to = "b";
    f->sub.route = &f->route;
    f->sub.coll = &f->coll;
    strcpy(f->sub.topic, "dxsync.a.articles");
    assert_int_equal(remote_init(&f->r, "b", &f->sub, 1, 60, NULL), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    remote_free(&f->r);
    free(f);
    return 0;
}

static void decode(struct event *ev, const char *json)
{
    char err[256];
    int rc = event_decode(json, strlen(json), ev, err, sizeof(err));
    if (rc)
        fail_msg("%s", err);
}

#define CREATE_WITH_RATING                                                                         \
    "{\"version\":1,\"event_id\":\"a:1\",\"source\":\"a\",\"collection\":\"articles\","            \
    "\"action\":\"create\",\"key\":1,\"data\":{\"id\":1,\"title\":\"t\",\"rating\":5},"            \
    "\"delta\":{\"title\":\"t\",\"rating\":5},\"user\":null,"                                      \
    "\"timestamp\":\"2026-11-25T22:30:39.839Z\",\"activity_id\":1}"
#define UPDATE_TITLE                                                                               \
    "{\"version\":1,\"event_id\":\"a:2\",\"source\":\"a\",\"collection\":\"articles\","            \
    "\"action\":\"update\",\"key\":1,\"data\":{\"id\":1,\"title\":\"u\",\"rating\":5},"            \
    "\"delta\":{\"title\":\"u\"},\"user\":null,\"timestamp\":\"2026-11-25T22:30:39.839Z\","        \
    "\"activity_id\":2}"

static void events_wait_for_the_first_field_list(void **state)
{
    struct fixture *f = *state;
    struct event ev;
    decode(&ev, UPDATE_TITLE);
    const char *field;
    assert_int_equal(remote_check_event(&f->r, &ev, 1000, &field), REMOTE_CHECK_WAIT);
    int64_t next = INT64_MAX;
    assert_string_equal(remote_refresh_due(&f->r, 1000, &next), "articles");
    assert_null(remote_refresh_due(&f->r, 1000, &next)); /* asked once */
    struct http_response r = answer(200, HTTP_OK, fields_body);
    remote_fields_answer(&f->r, "articles", &r, 1100);
    assert_string_equal(remote_pk(&f->r, "articles"), "id");
    assert_int_equal(remote_check_event(&f->r, &ev, 1200, &field), REMOTE_CHECK_OK);
    event_free(&ev);
}

static void a_missing_field_is_named_once_the_list_is_fresh(void **state)
{
    struct fixture *f = *state;
    struct event create, update;
    decode(&create, CREATE_WITH_RATING);
    decode(&update, UPDATE_TITLE);
    int64_t next = INT64_MAX;
    assert_non_null(remote_refresh_due(&f->r, 0, &next));
    struct http_response r = answer(200, HTTP_OK, fields_body);
    remote_fields_answer(&f->r, "articles", &r, 0);
    const char *field;
    /* a list read when (or after) the event arrived, without rating: its rating would be lost */
    assert_int_equal(remote_check_event(&f->r, &create, 0, &field), REMOTE_CHECK_MISSING);
    assert_string_equal(field, "rating");
    /* an update that does not set rating applies */
    assert_int_equal(remote_check_event(&f->r, &update, 10, &field), REMOTE_CHECK_OK);
    /* an event that arrived after the list was read: it is read again before the field is
     * called missing (rating may have been added since) */
    int64_t later = 10;
    assert_int_equal(remote_check_event(&f->r, &create, later, &field), REMOTE_CHECK_WAIT);
    assert_string_equal(remote_refresh_due(&f->r, later, &next), "articles");
    static const char with_rating[] =
        "{\"data\":[{\"field\":\"id\",\"schema\":{\"is_primary_key\":true}},"
        "{\"field\":\"title\"},{\"field\":\"rating\"}]}";
    r = answer(200, HTTP_OK, with_rating);
    remote_fields_answer(&f->r, "articles", &r, later);
    assert_int_equal(remote_check_event(&f->r, &create, later, &field), REMOTE_CHECK_OK);
    event_free(&create);
    event_free(&update);
}

static void an_outage_retries_the_list_with_backoff(void **state)
{
    struct fixture *f = *state;
    int64_t next = INT64_MAX;
    assert_non_null(remote_refresh_due(&f->r, 0, &next));
    struct http_response down = answer(0, HTTP_TRANSIENT, NULL);
    remote_fields_answer(&f->r, "articles", &down, 0);
    assert_null(remote_refresh_due(&f->r, 100, &next)); /* not before the backoff */
    assert_int_equal(next, REMOTE_FIELDS_RETRY_MIN_MS);
    assert_non_null(remote_refresh_due(&f->r, REMOTE_FIELDS_RETRY_MIN_MS, &next));
    /* a 200 that is not Directus's JSON (a maintenance page) is no field list either */
    struct http_response page = answer(200, HTTP_OK, "<html>maintenance</html>");
    remote_fields_answer(&f->r, "articles", &page, 1000);
    next = INT64_MAX;
    assert_null(remote_refresh_due(&f->r, 1000, &next));
    assert_int_equal(next, 1000 + 2 * REMOTE_FIELDS_RETRY_MIN_MS);
    assert_null(remote_pk(&f->r, "articles"));
}

static void a_refused_list_stops_the_check_instead_of_holding_events(void **state)
{
    struct fixture *f = *state;
    struct event create;
    decode(&create, CREATE_WITH_RATING);
    int64_t next = INT64_MAX;
    assert_non_null(remote_refresh_due(&f->r, 0, &next));
    struct http_response forbidden = answer(403, HTTP_FORBIDDEN, "{\"errors\":[]}");
    remote_fields_answer(&f->r, "articles", &forbidden, 0);
    const char *field;
    assert_int_equal(remote_check_event(&f->r, &create, 10, &field), REMOTE_CHECK_OK);
    assert_null(remote_refresh_due(&f->r, 10, &next));
    event_free(&create);
}

static void unavailable_is_published_once_after_the_delay(void **state)
{
    struct fixture *f = *state;
    struct http_response r = answer(503, HTTP_TRANSIENT, NULL);
    strcpy(r.message, "Service Unavailable");
    int64_t due = INT64_MAX;
    bool notified;
    assert_false(remote_answered(&f->r, 0, &notified)); /* up: nothing to recover from */
    remote_failed(&f->r, &r, 5000);
    remote_failed(&f->r, &r, 6000);
    assert_int_equal(f->r.down_retries, 2);
    assert_int_equal(f->r.down_since_ms, 5000);
    assert_false(remote_notify_due(&f->r, 64000, &due));
    assert_int_equal(due, 65000);
    assert_true(remote_notify_due(&f->r, 65000, &due));
    assert_false(remote_notify_due(&f->r, 90000, &due)); /* once per outage */
    assert_true(remote_answered(&f->r, 91000, &notified));
    assert_true(notified); /* remote_recovered must follow */
    assert_int_equal(f->r.down_since_ms, 0);
    /* a short outage: recovered without having been announced */
    remote_failed(&f->r, &r, 100000);
    assert_true(remote_answered(&f->r, 101000, &notified));
    assert_false(notified);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(events_wait_for_the_first_field_list, setup, teardown),
        cmocka_unit_test_setup_teardown(a_missing_field_is_named_once_the_list_is_fresh, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(an_outage_retries_the_list_with_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(a_refused_list_stops_the_check_instead_of_holding_events,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(unavailable_is_published_once_after_the_delay, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
