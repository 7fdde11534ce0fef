/* apply: the requests of a batch (paths, methods, bodies), the upsert fallback for every way
 * Directus reports a missing or existing item, splitting to isolate a failing item, outages
 * against item faults (the /server/ping probe), item_attempts and the backoff schedule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "apply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXEV 16

static struct event evs[MAXEV];
static const struct event *ptrs[MAXEV];
static size_t nev;
static struct apply_batch batch;

static char *route_fields[] = {"title", "rating"};
static const struct config_collection coll = {
    .collection = "articles", .fields = route_fields, .nfields = 2};

static void add(const char *action, const char *key, const char *data, const char *delta)
{
    char json[2048], err[256];
    snprintf(json, sizeof(json),
             "{\"version\":1,\"event_id\":\"a:%zu\",\"source\":\"a\",\"collection\":\"articles\","
             "\"action\":\"%s\",\"key\":%s,\"data\":%s,\"delta\":%s,\"user\":null,"
             "\"timestamp\":\"2026-01-01T00:00:00Z\",\"activity_id\":%zu}",
             nev + 1, action, key, data, delta, nev + 1);
    assert_true(nev < MAXEV);
    if (event_decode(json, strlen(json), &evs[nev], err, sizeof(err)))
        fail_msg("decode: %s", err);
    ptrs[nev] = &evs[nev];
    nev++;
}

static void crt(int k)
{
    char key[16], data[128];
    snprintf(key, sizeof(key), "%d", k);
    snprintf(data, sizeof(data), "{\"id\":%d,\"title\":\"t%d\",\"body\":\"b\",\"rating\":%d}", k, k,
             k);
    add("create", key, data, "null");
}

static void upd(int k)
{
    char key[16], data[128];
    snprintf(key, sizeof(key), "%d", k);
    snprintf(data, sizeof(data), "{\"id\":%d,\"title\":\"u%d\",\"body\":\"b\",\"rating\":%d}", k, k,
             k);
    add("update", key, data, "{\"title\":\"x\"}");
}

static void del(int k)
{
    char key[16];
    snprintf(key, sizeof(key), "%d", k);
    add("delete", key, "null", "null");
}

static void start(const char *pk, int item_attempts)
{
    struct apply_params p = {.collection = "articles",
                             .coll = &coll,
                             .pk = pk,
                             .item_attempts = item_attempts,
                             .seed = 42};
    assert_int_equal(apply_batch_init(&batch, &p, ptrs, nev), 0);
}

static int reset(void **state)
{
    (void)state;
    apply_batch_free(&batch);
    for (size_t i = 0; i < nev; i++)
        event_free(&evs[i]);
    nev = 0;
    return 0;
}

/* Expects the next request to be METHOD PATH with BODY (NULL: not checked). */
static void expect(const char *method, const char *path, const char *body)
{
    struct apply_request req;
    assert_int_equal(apply_batch_next(&batch, &req), 1);
    assert_string_equal(req.method, method);
    assert_string_equal(req.path, path);
    if (body)
        assert_string_equal(req.body ? req.body : "(none)", body);
}

static enum apply_verdict answer_curl(CURLcode curl, long status, const char *code,
                                      const char *body, long retry_after, int64_t *delay)
{
    struct http_response r;
    memset(&r, 0, sizeof(r));
    r.curl = curl;
    r.status = status;
    r.retry_after_s = retry_after;
    r.body = body ? strdup(body) : NULL;
    r.len = body ? strlen(body) : 0;
    snprintf(r.code, sizeof(r.code), "%s", code ? code : "");
    snprintf(r.message, sizeof(r.message), "message of %ld", status);
    r.klass = http_classify(curl, status, code);
    int64_t d = -1;
    enum apply_verdict v = apply_batch_answer(&batch, &r, &d);
    if (delay)
        *delay = d;
    http_response_free(&r);
    return v;
}

static enum apply_verdict answer(long status, const char *code, const char *body)
{
    return answer_curl(CURLE_OK, status, code, body, -1, NULL);
}

static void assert_done(void)
{
    struct apply_request req;
    assert_true(apply_batch_done(&batch));
    assert_int_equal(apply_batch_next(&batch, &req), 0);
}

/* A refused foreign key names its field and value: the items writing that value fail at once
 * with them (the caller decides they wait for their parent), the rest is sent again without a
 * split; a group none of whose items matches is split as before. */
static void a_refused_foreign_key_picks_out_its_items(void **state)
{
    (void)state;
    crt(1);
    crt(2);
    crt(3);
    start("id", 5);
    expect("POST", "/items/articles?fields=*", NULL);
    struct http_response r;
    memset(&r, 0, sizeof(r));
    r.status = 400;
    r.retry_after_s = -1;
    snprintf(r.code, sizeof(r.code), "INVALID_FOREIGN_KEY");
    snprintf(r.message, sizeof(r.message), "Invalid foreign key \"2\" for field \"rating\"");
    snprintf(r.field, sizeof(r.field), "rating");
    snprintf(r.value, sizeof(r.value), "2");
    r.klass = http_classify(CURLE_OK, 400, r.code);
    int64_t d;
    assert_int_equal(apply_batch_answer(&batch, &r, &d), APPLY_NEXT);
    assert_int_equal(batch.items[1].state, APPLY_FAILED);
    assert_string_equal(batch.items[1].code, "INVALID_FOREIGN_KEY");
    assert_string_equal(batch.items[1].field, "rating");
    assert_string_equal(batch.items[1].value, "2");
    expect("POST", "/items/articles?fields=*",
           "[{\"id\":1,\"title\":\"t1\",\"rating\":1},{\"id\":3,\"title\":\"t3\",\"rating\":3}]");
    assert_int_equal(answer(200, NULL, "{\"data\":[{\"id\":1},{\"id\":3}]}"), APPLY_DONE);
    assert_int_equal(batch.items[0].state, APPLY_APPLIED);
    assert_int_equal(batch.items[2].state, APPLY_APPLIED);
    assert_done();
    /* a value no item writes: halves, as for any refusal */
    reset(NULL);
    crt(1);
    crt(2);
    start("id", 5);
    expect("POST", "/items/articles?fields=*", NULL);
    snprintf(r.value, sizeof(r.value), "99");
    assert_int_equal(apply_batch_answer(&batch, &r, &d), APPLY_NEXT);
    expect("POST", "/items/articles?fields=*", "[{\"id\":1,\"title\":\"t1\",\"rating\":1}]");
}

/* A POST asks for the stored items back: a routed field written with a value that the stored
 * item lacks (the remote's collection lost it since its list was read) is named in `dropped`. */
static void a_field_the_stored_item_lacks_is_named(void **state)
{
    (void)state;
    crt(1);
    crt(2);
    start("id", 5);
    expect("POST", "/items/articles?fields=*", NULL);
    assert_int_equal(answer(200, NULL,
                            "{\"data\":[{\"id\":1,\"title\":\"t1\",\"body\":null},"
                            "{\"id\":2,\"title\":\"t2\",\"rating\":2}]}"),
                     APPLY_DONE);
    assert_int_equal(batch.items[0].state, APPLY_APPLIED);
    assert_string_equal(batch.items[0].dropped, "rating");
    assert_int_equal(batch.items[1].state, APPLY_APPLIED);
    assert_null(batch.items[1].dropped);
    assert_done();
}

static void creates_go_in_one_post(void **state)
{
    (void)state;
    crt(1);
    crt(2);
    start("id", 5);
    expect("POST", "/items/articles?fields=*",
           "[{\"id\":1,\"title\":\"t1\",\"rating\":1},{\"id\":2,\"title\":\"t2\",\"rating\":2}]");
    assert_int_equal(answer(200, NULL, "{\"data\":[{\"id\":1},{\"id\":2}]}"), APPLY_DONE);
    assert_done();
    assert_int_equal(batch.items[0].state, APPLY_APPLIED);
    assert_int_equal(batch.items[1].state, APPLY_APPLIED);
    assert_int_equal(batch.items[0].attempts, 1);
}

static void updates_go_in_one_patch_with_their_delta(void **state)
{
    (void)state;
    upd(1);
    upd(2);
    start("id", 5);
    expect("PATCH", "/items/articles?fields=id",
           "[{\"id\":1,\"title\":\"u1\"},{\"id\":2,\"title\":\"u2\"}]");
    assert_int_equal(answer(200, NULL, "{\"data\":[{\"id\":2},{\"id\":1}]}"), APPLY_DONE);
    assert_done();
}

static void deletes_go_in_one_delete(void **state)
{
    (void)state;
    add("delete", "\"a-b\"", "null", "null");
    add("delete", "\"c\"", "null", "null");
    start("id", 5);
    expect("DELETE", "/items/articles", "[\"a-b\",\"c\"]");
    assert_int_equal(answer(204, NULL, NULL), APPLY_DONE);
    assert_done();
}

static void mixed_upserts_post_then_patch(void **state)
{
    (void)state;
    upd(1);
    crt(2);
    start("id", 5);
    expect("POST", "/items/articles?fields=*", "[{\"id\":2,\"title\":\"t2\",\"rating\":2}]");
    assert_int_equal(answer(200, NULL, "{\"data\":[{\"id\":2}]}"), APPLY_NEXT);
    expect("PATCH", "/items/articles?fields=id", "[{\"id\":1,\"title\":\"u1\"}]");
    assert_int_equal(answer(200, NULL, "{\"data\":[{\"id\":1}]}"), APPLY_DONE);
    assert_done();
}

static void the_primary_key_is_learnt_first(void **state)
{
    (void)state;
    crt(7);
    start(NULL, 5);
    expect("GET", "/fields/articles", NULL);
    assert_int_equal(
        answer(200, NULL,
               "{\"data\":[{\"field\":\"title\",\"schema\":{\"is_primary_key\":false}},"
               "{\"field\":\"uid\",\"schema\":{\"is_primary_key\":true}}]}"),
        APPLY_NEXT);
    assert_true(batch.pk_learnt);
    assert_string_equal(batch.pk, "uid");
    expect("POST", "/items/articles?fields=*", "[{\"uid\":7,\"title\":\"t7\",\"rating\":7}]");
    assert_int_equal(answer(200, NULL, "{\"data\":[{\"uid\":7}]}"), APPLY_DONE);
}

static void an_unknown_primary_key_is_assumed_id(void **state)
{
    (void)state;
    crt(7);
    start(NULL, 5);
    expect("GET", "/fields/articles", NULL);
    assert_int_equal(answer(403, "FORBIDDEN", "{\"errors\":[]}"), APPLY_NEXT);
    assert_false(batch.pk_learnt);
    assert_true(batch.pk_guessed);
    expect("POST", "/items/articles?fields=*", NULL);
}

static void fields_wait_out_an_outage(void **state)
{
    (void)state;
    crt(7);
    start(NULL, 5);
    expect("GET", "/fields/articles", NULL);
    int64_t delay;
    assert_int_equal(answer_curl(CURLE_COULDNT_CONNECT, 0, NULL, NULL, -1, &delay),
                     APPLY_RETRY_OUTAGE);
    expect("GET", "/fields/articles", NULL);
    /* a 200 that is not Directus's JSON (a maintenance page) is no answer either */
    assert_int_equal(answer_curl(CURLE_OK, 200, NULL, "not json", -1, &delay), APPLY_RETRY_OUTAGE);
    assert_false(batch.pk_guessed);
    expect("GET", "/fields/articles", NULL);
    assert_int_equal(answer(200, NULL, "{\"data\":[]}"), APPLY_NEXT); /* Directus, no key */
    assert_true(batch.pk_guessed);
}

static void fields_ask_again_after_a_server_error(void **state)
{
    (void)state;
    crt(7);
    start(NULL, 3);
    int64_t delay;
    for (int i = 0; i < 2; i++) {
        expect("GET", "/fields/articles", NULL);
        assert_int_equal(answer_curl(CURLE_OK, 500, NULL, NULL, -1, &delay), APPLY_RETRY_ITEM);
    }
    expect("GET", "/fields/articles", NULL);
    assert_int_equal(answer(500, NULL, NULL), APPLY_NEXT); /* item_attempts reached: guess */
    assert_true(batch.pk_guessed);
    expect("POST", "/items/articles?fields=*", NULL);
}

static void update_of_missing_items_creates_them(void **state)
{
    (void)state;
    upd(1);
    upd(2);
    upd(3);
    start("id", 5);
    size_t idx[4];
    assert_int_equal(apply_batch_recreates(&batch, idx, 4), 0); /* a PATCH comes first */
    expect("PATCH", "/items/articles?fields=id", NULL);
    /* non-admin: one missing key fails the whole batch with 403 */
    assert_int_equal(answer(403, "FORBIDDEN", "{\"errors\":[{\"message\":\"no\"}]}"), APPLY_NEXT);
    expect("SEARCH", "/items/articles",
           "{\"query\":{\"filter\":{\"id\":{\"_in\":[1,2,3]}},\"fields\":[\"id\"],\"limit\":-1}}");
    assert_int_equal(answer(200, NULL, "{\"data\":[{\"id\":2}]}"), APPLY_NEXT);
    /* the caller is told which items are about to be created from their data */
    assert_int_equal(apply_batch_recreates(&batch, idx, 4), 2);
    assert_int_equal(idx[0], 0);
    assert_int_equal(idx[1], 2);
    /* missing → POST with every routed field from data; existing → PATCH of the delta */
    expect("POST", "/items/articles?fields=*",
           "[{\"id\":1,\"title\":\"u1\",\"rating\":1},{\"id\":3,\"title\":\"u3\",\"rating\":3}]");
    assert_int_equal(answer(200, NULL, "{\"data\":[{\"id\":1},{\"id\":3}]}"), APPLY_NEXT);
    assert_int_equal(apply_batch_recreates(&batch, idx, 4), 0);
    expect("PATCH", "/items/articles?fields=id", "[{\"id\":2,\"title\":\"u2\"}]");
    assert_int_equal(answer(200, NULL, "{\"data\":[{\"id\":2}]}"), APPLY_DONE);
    assert_done();
    for (int i = 0; i < 3; i++)
        assert_int_equal(batch.items[i].state, APPLY_APPLIED);
}

static void admin_patch_answer_lists_what_it_found(void **state)
{
    (void)state;
    upd(1);
    upd(2);
    start("id", 5);
    expect("PATCH", "/items/articles?fields=id", NULL);
    /* admin: 200 with the missing key simply absent */
    assert_int_equal(answer(200, NULL, "{\"data\":[{\"id\":1}]}"), APPLY_NEXT);
    assert_int_equal(batch.items[0].state, APPLY_APPLIED);
    expect("POST", "/items/articles?fields=*", "[{\"id\":2,\"title\":\"u2\",\"rating\":2}]");
    assert_int_equal(answer(200, NULL, "{\"data\":[{\"id\":2}]}"), APPLY_DONE);
}

static void an_unreadable_patch_answer_asks_what_exists(void **state)
{
    (void)state;
    upd(1);
    start("id", 5);
    expect("PATCH", "/items/articles?fields=id", NULL);
    assert_int_equal(answer(200, NULL, "{\"data\":[{\"id\":1},"), APPLY_NEXT); /* truncated */
    expect("SEARCH", "/items/articles", NULL);
    assert_int_equal(answer(200, NULL, "{\"data\":[{\"id\":1}]}"), APPLY_NEXT);
    expect("PATCH", "/items/articles?fields=id", NULL);
    assert_int_equal(answer(204, NULL, NULL), APPLY_DONE);
}

static void create_of_existing_items_updates_them(void **state)
{
    (void)state;
    crt(1);
    crt(2);
    start("id", 5);
    expect("POST", "/items/articles?fields=*", NULL);
    assert_int_equal(answer(400, "RECORD_NOT_UNIQUE", NULL), APPLY_NEXT);
    expect("SEARCH", "/items/articles", NULL);
    assert_int_equal(answer(200, NULL, "{\"data\":[{\"id\":1},{\"id\":2}]}"), APPLY_NEXT);
    expect("PATCH", "/items/articles?fields=id",
           "[{\"id\":1,\"title\":\"t1\",\"rating\":1},{\"id\":2,\"title\":\"t2\",\"rating\":2}]");
    assert_int_equal(answer(200, NULL, "{\"data\":[{\"id\":1},{\"id\":2}]}"), APPLY_DONE);
}

static void delete_of_missing_items_is_done(void **state)
{
    (void)state;
    del(1);
    del(2);
    start("id", 5);
    expect("DELETE", "/items/articles", "[1,2]");
    assert_int_equal(answer(403, "FORBIDDEN", NULL), APPLY_NEXT);
    expect("SEARCH", "/items/articles", NULL);
    assert_int_equal(answer(200, NULL, "{\"data\":[{\"id\":2}]}"), APPLY_NEXT);
    assert_int_equal(batch.items[0].state, APPLY_APPLIED);
    expect("DELETE", "/items/articles", "[2]");
    assert_int_equal(answer(204, NULL, NULL), APPLY_DONE);
    /* and when none exists, no second DELETE at all */
    apply_batch_free(&batch);
    start("id", 5);
    expect("DELETE", "/items/articles", "[1,2]");
    assert_int_equal(answer(403, "FORBIDDEN", NULL), APPLY_NEXT);
    expect("SEARCH", "/items/articles", NULL);
    assert_int_equal(answer(200, NULL, "{\"data\":[]}"), APPLY_DONE);
    assert_done();
}

static void a_forbidden_item_that_exists_fails_for_good(void **state)
{
    (void)state;
    upd(1);
    upd(2);
    start("id", 5);
    expect("PATCH", "/items/articles?fields=id", NULL);
    assert_int_equal(answer(403, "FORBIDDEN", NULL), APPLY_NEXT);
    /* both exist, and the refusal stays: asked three times (deleted in between?), then it is
     * the sync user's permissions */
    for (int i = 0; i < APPLY_DUPLICATE_RESOLVES; i++) {
        expect("SEARCH", "/items/articles", NULL);
        assert_int_equal(answer(200, NULL, "{\"data\":[{\"id\":1},{\"id\":2}]}"), APPLY_NEXT);
        expect("PATCH", "/items/articles?fields=id", NULL);
        assert_int_equal(answer(403, "FORBIDDEN", NULL), APPLY_NEXT);
    }
    expect("PATCH", "/items/articles?fields=id", "[{\"id\":1,\"title\":\"u1\"}]");
    assert_int_equal(answer(200, NULL, "{\"data\":[{\"id\":1}]}"), APPLY_NEXT);
    expect("PATCH", "/items/articles?fields=id", "[{\"id\":2,\"title\":\"u2\"}]");
    assert_int_equal(answer(403, "FORBIDDEN", NULL), APPLY_DONE);
    assert_int_equal(batch.items[0].state, APPLY_APPLIED);
    assert_int_equal(batch.items[1].state, APPLY_FAILED);
    assert_int_equal(batch.items[1].status, 403);
    assert_string_equal(batch.items[1].code, "FORBIDDEN");
}

/* The soak found it: a person on the remote deleted the item between the SEARCH that listed it
 * and the PATCH. The refusal is asked about again, and the item is created. */
static void an_item_deleted_after_the_search_is_created(void **state)
{
    (void)state;
    upd(1);
    start("id", 5);
    expect("PATCH", "/items/articles?fields=id", NULL);
    assert_int_equal(answer(403, "FORBIDDEN", NULL), APPLY_NEXT);
    expect("SEARCH", "/items/articles", NULL);
    assert_int_equal(answer(200, NULL, "{\"data\":[{\"id\":1}]}"), APPLY_NEXT);
    expect("PATCH", "/items/articles?fields=id", NULL);
    assert_int_equal(answer(403, "FORBIDDEN", NULL), APPLY_NEXT); /* deleted just now */
    expect("SEARCH", "/items/articles", NULL);
    assert_int_equal(answer(200, NULL, "{\"data\":[]}"), APPLY_NEXT);
    size_t idx[1];
    assert_int_equal(apply_batch_recreates(&batch, idx, 1), 1);
    expect("POST", "/items/articles?fields=*", "[{\"id\":1,\"title\":\"u1\",\"rating\":1}]");
    assert_int_equal(answer(200, NULL, "{\"data\":[{\"id\":1}]}"), APPLY_DONE);
    assert_done();
    assert_int_equal(batch.items[0].state, APPLY_APPLIED);
}

static void a_rejected_value_is_isolated_and_the_rest_applied(void **state)
{
    (void)state;
    for (int k = 1; k <= 4; k++)
        crt(k);
    start("id", 5);
    expect("POST", "/items/articles?fields=*", NULL);
    assert_int_equal(answer(400, "VALUE_TOO_LONG", NULL), APPLY_NEXT);
    expect("POST", "/items/articles?fields=*",
           "[{\"id\":1,\"title\":\"t1\",\"rating\":1},"
           "{\"id\":2,\"title\":\"t2\",\"rating\":2}]");
    assert_int_equal(answer(200, NULL, "{\"data\":null}"), APPLY_NEXT);
    expect("POST", "/items/articles?fields=*",
           "[{\"id\":3,\"title\":\"t3\",\"rating\":3},"
           "{\"id\":4,\"title\":\"t4\",\"rating\":4}]");
    assert_int_equal(answer(400, "VALUE_TOO_LONG", NULL), APPLY_NEXT);
    expect("POST", "/items/articles?fields=*", "[{\"id\":3,\"title\":\"t3\",\"rating\":3}]");
    assert_int_equal(answer(400, "VALUE_TOO_LONG", NULL), APPLY_NEXT);
    expect("POST", "/items/articles?fields=*", "[{\"id\":4,\"title\":\"t4\",\"rating\":4}]");
    assert_int_equal(answer(200, NULL, "{\"data\":null}"), APPLY_DONE);
    assert_int_equal(batch.items[0].state, APPLY_APPLIED);
    assert_int_equal(batch.items[1].state, APPLY_APPLIED);
    assert_int_equal(batch.items[2].state, APPLY_FAILED);
    assert_int_equal(batch.items[2].status, 400);
    assert_string_equal(batch.items[2].code, "VALUE_TOO_LONG");
    assert_int_equal(batch.items[2].attempts, 3);
    assert_int_equal(batch.items[3].state, APPLY_APPLIED);
}

static void a_server_error_with_the_remote_up_is_the_items_fault(void **state)
{
    (void)state;
    crt(1);
    crt(2);
    start("id", 3);
    expect("POST", "/items/articles?fields=*", NULL);
    const char *err500 =
        "{\"errors\":[{\"message\":\"An unexpected error occurred.\",\"extensions\":"
        "{\"code\":\"INTERNAL_SERVER_ERROR\"}}]}";
    assert_int_equal(answer(500, "INTERNAL_SERVER_ERROR", err500), APPLY_NEXT);
    expect("GET", "/server/ping", NULL);
    assert_int_equal(answer(200, NULL, "pong"), APPLY_NEXT); /* up: split */
    expect("POST", "/items/articles?fields=*", "[{\"id\":1,\"title\":\"t1\",\"rating\":1}]");
    assert_int_equal(answer(200, NULL, "{\"data\":null}"), APPLY_NEXT);
    int64_t delay;
    for (int attempt = 1; attempt <= 3; attempt++) {
        expect("POST", "/items/articles?fields=*", "[{\"id\":2,\"title\":\"t2\",\"rating\":2}]");
        assert_int_equal(answer(500, "INTERNAL_SERVER_ERROR", err500), APPLY_NEXT);
        expect("GET", "/server/ping", NULL);
        enum apply_verdict v = answer_curl(CURLE_OK, 200, NULL, "pong", -1, &delay);
        if (attempt < 3) {
            /* 1 s doubling per failure of this item, though the ping's 200 reset the outage
             * schedule: a remote's short hiccup must not use up the attempts */
            int64_t ceiling = (int64_t)APPLY_ITEM_BACKOFF_BASE_MS << (attempt - 1);
            assert_int_equal(v, APPLY_RETRY_ITEM);
            assert_true(delay >= ceiling / 2 && delay <= ceiling);
        } else {
            assert_int_equal(v, APPLY_DONE);
        }
    }
    assert_int_equal(batch.items[0].state, APPLY_APPLIED);
    assert_int_equal(batch.items[1].state, APPLY_FAILED);
    assert_int_equal(batch.items[1].status, 500);
    assert_string_equal(batch.items[1].code, "INTERNAL_SERVER_ERROR");
    assert_int_equal(batch.items[1].item_failures, 3);
}

static void a_server_error_with_the_remote_down_is_an_outage(void **state)
{
    (void)state;
    crt(1);
    crt(2);
    start("id", 1);
    for (int round = 0; round < 10; round++) {
        expect("POST", "/items/articles?fields=*", NULL);
        assert_int_equal(answer(500, "INTERNAL_SERVER_ERROR", NULL), APPLY_NEXT);
        expect("GET", "/server/ping", NULL);
        int64_t delay;
        assert_int_equal(answer_curl(CURLE_OK, 503, NULL, NULL, -1, &delay), APPLY_RETRY_OUTAGE);
    }
    /* never split nor failed while the remote is down, however long */
    expect("POST", "/items/articles?fields=*",
           "[{\"id\":1,\"title\":\"t1\",\"rating\":1},"
           "{\"id\":2,\"title\":\"t2\",\"rating\":2}]");
    assert_int_equal(answer(200, NULL, "{\"data\":null}"), APPLY_DONE);
    assert_int_equal(batch.items[0].state, APPLY_APPLIED);
    assert_int_equal(batch.items[1].state, APPLY_APPLIED);
}

static void outages_back_off_exponentially_and_honour_retry_after(void **state)
{
    (void)state;
    crt(1);
    start("id", 5);
    int64_t ceiling = APPLY_BACKOFF_BASE_MS, delay;
    for (int i = 0; i < 12; i++) {
        expect("POST", "/items/articles?fields=*", NULL);
        assert_int_equal(answer_curl(CURLE_COULDNT_CONNECT, 0, NULL, NULL, -1, &delay),
                         APPLY_RETRY_OUTAGE);
        assert_true(delay >= ceiling / 2);
        assert_true(delay <= ceiling);
        ceiling = ceiling * 2 > APPLY_BACKOFF_MAX_MS ? APPLY_BACKOFF_MAX_MS : ceiling * 2;
    }
    expect("POST", "/items/articles?fields=*", NULL);
    assert_int_equal(answer_curl(CURLE_OK, 429, NULL, NULL, 45, &delay), APPLY_RETRY_OUTAGE);
    assert_int_equal(delay, 45000);
    expect("POST", "/items/articles?fields=*", NULL);
    assert_int_equal(answer(200, NULL, "{\"data\":null}"), APPLY_DONE);
    /* a success resets the schedule */
    assert_int_equal(batch.backoff.attempt, 0);
}

static void transient_statuses_are_outages(void **state)
{
    (void)state;
    long statuses[] = {401, 408, 502, 503, 504};
    crt(1);
    start("id", 1);
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        expect("POST", "/items/articles?fields=*", NULL);
        int64_t delay;
        assert_int_equal(answer_curl(CURLE_OK, statuses[i], NULL, NULL, -1, &delay),
                         APPLY_RETRY_OUTAGE);
    }
    expect("POST", "/items/articles?fields=*", NULL);
    assert_int_equal(answer_curl(CURLE_OPERATION_TIMEDOUT, 0, NULL, NULL, -1, NULL),
                     APPLY_RETRY_OUTAGE);
}

/* A request that never got an answer (out of memory before the transfer) leaves the zero value
 * of struct http_response: never a success, whatever the step. */
static void no_answer_at_all_is_an_outage(void **state)
{
    (void)state;
    crt(1);
    start(NULL, 5);
    struct http_response none;
    int64_t delay = -1;
    memset(&none, 0, sizeof(none));
    expect("GET", "/fields/articles", NULL);
    assert_int_equal(apply_batch_answer(&batch, &none, &delay), APPLY_RETRY_OUTAGE);
    assert_true(delay > 0);
    expect("GET", "/fields/articles", NULL);
    assert_int_equal(answer(200, NULL,
                            "{\"data\":[{\"field\":\"id\",\"schema\":"
                            "{\"is_primary_key\":true}}]}"),
                     APPLY_NEXT);
    expect("POST", "/items/articles?fields=*", NULL);
    assert_int_equal(apply_batch_answer(&batch, &none, &delay), APPLY_RETRY_OUTAGE);
    assert_false(apply_batch_done(&batch));
    expect("POST", "/items/articles?fields=*", NULL);
    assert_int_equal(answer(500, "INTERNAL_SERVER_ERROR", NULL), APPLY_NEXT);
    expect("GET", "/server/ping", NULL);
    assert_int_equal(apply_batch_answer(&batch, &none, &delay), APPLY_RETRY_OUTAGE);
    expect("POST", "/items/articles?fields=*", NULL);
    assert_int_equal(answer(200, NULL, "{\"data\":[{\"id\":1}]}"), APPLY_DONE);
    assert_done();
}

static void out_of_range_fails_the_item(void **state)
{
    (void)state;
    crt(1);
    start("id", 5);
    expect("POST", "/items/articles?fields=*", NULL);
    assert_int_equal(answer(400, "VALUE_OUT_OF_RANGE", NULL), APPLY_DONE);
    assert_int_equal(batch.items[0].state, APPLY_FAILED);
    assert_string_equal(batch.items[0].code, "VALUE_OUT_OF_RANGE");
}

static void a_nonsense_resolve_answer_counts_as_a_server_error(void **state)
{
    (void)state;
    upd(1);
    start("id", 1);
    expect("PATCH", "/items/articles?fields=id", NULL);
    assert_int_equal(answer(403, "FORBIDDEN", NULL), APPLY_NEXT);
    expect("SEARCH", "/items/articles", NULL);
    assert_int_equal(answer(200, NULL, "{\"data\":\"rows\"}"), APPLY_NEXT);
    expect("GET", "/server/ping", NULL);
    assert_int_equal(answer(200, NULL, "pong"), APPLY_DONE);
    assert_int_equal(batch.items[0].state, APPLY_FAILED);
    assert_string_equal(batch.items[0].code, "BAD_RESPONSE");
}

/* Something in front of Directus (a maintenance page, a proxy) answers 200 with a body that is
 * not Directus's JSON: whether the write happened is unknown, so ask; and an answer like that
 * to the question itself, or to the ping, means the remote is not there: wait. */
static void a_resolve_answer_that_is_not_json_is_an_outage(void **state)
{
    (void)state;
    upd(1);
    start("id", 1);
    expect("PATCH", "/items/articles?fields=id", NULL);
    assert_int_equal(answer(403, "FORBIDDEN", NULL), APPLY_NEXT);
    int64_t delay;
    for (int i = 0; i < 3; i++) {
        expect("SEARCH", "/items/articles", NULL);
        assert_int_equal(answer_curl(CURLE_OK, 200, NULL, "<html>proxy</html>", -1, &delay),
                         APPLY_RETRY_OUTAGE);
    }
    expect("SEARCH", "/items/articles", NULL);
    assert_int_equal(answer(200, NULL, "{\"data\":[]}"), APPLY_NEXT);
    expect("POST", "/items/articles?fields=*", NULL);
    assert_int_equal(answer(200, NULL, "{\"data\":[{\"id\":1}]}"), APPLY_DONE);
    assert_int_equal(batch.items[0].state, APPLY_APPLIED);
}

static void a_write_answered_with_something_else_asks_what_exists(void **state)
{
    (void)state;
    crt(1);
    crt(2);
    del(3);
    start("id", 1);
    expect("POST", "/items/articles?fields=*", NULL);
    assert_int_equal(answer(200, NULL, "<html>we will be back soon</html>"), APPLY_NEXT);
    expect("SEARCH", "/items/articles", NULL);
    assert_int_equal(answer(200, NULL, "{\"data\":[{\"id\":2}]}"), APPLY_NEXT);
    expect("POST", "/items/articles?fields=*", "[{\"id\":1,\"title\":\"t1\",\"rating\":1}]");
    assert_int_equal(answer(200, NULL, "{\"data\":[{\"id\":1}]}"), APPLY_NEXT);
    expect("PATCH", "/items/articles?fields=id", NULL);
    assert_int_equal(answer(200, NULL, "{\"data\":[{\"id\":2}]}"), APPLY_NEXT);
    expect("DELETE", "/items/articles", NULL);
    assert_int_equal(answer(200, NULL, "{\"partial"), APPLY_NEXT);
    expect("SEARCH", "/items/articles", NULL);
    assert_int_equal(answer(200, NULL, "{\"data\":[{\"id\":3}]}"), APPLY_NEXT);
    expect("DELETE", "/items/articles", NULL);
    assert_int_equal(answer(204, NULL, NULL), APPLY_DONE);
    for (int i = 0; i < 3; i++)
        assert_int_equal(batch.items[i].state, APPLY_APPLIED);
}

static void a_ping_answered_by_something_else_is_an_outage(void **state)
{
    (void)state;
    crt(1);
    start("id", 5);
    expect("POST", "/items/articles?fields=*", NULL);
    assert_int_equal(answer(500, "INTERNAL_SERVER_ERROR", NULL), APPLY_NEXT);
    expect("GET", "/server/ping", NULL);
    int64_t delay;
    assert_int_equal(answer_curl(CURLE_OK, 200, NULL, "<html>maintenance</html>", -1, &delay),
                     APPLY_RETRY_OUTAGE);
    assert_int_equal(batch.items[0].item_failures, 0);
}

static void collection_and_key_names_are_escaped(void **state)
{
    (void)state;
    char *f[] = {"title"};
    struct config_collection c = {.collection = "my coll", .fields = f, .nfields = 1};
    crt(1);
    struct apply_params p = {
        .collection = "my coll", .coll = &c, .pk = "key/id", .item_attempts = 1, .seed = 1};
    assert_int_equal(apply_batch_init(&batch, &p, ptrs, nev), 0);
    expect("POST", "/items/my%20coll?fields=*", NULL);
}

/* Random answers (junk bodies, every class, partial listings) never crash the batch nor leave
 * it stuck: once the remote behaves, every item ends applied or failed. */
static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void random_answers_always_end(void **state)
{
    (void)state;
    for (int round = 0; round < 300; round++) {
        reset(NULL);
        size_t n = 1 + next_rand() % 8;
        for (size_t i = 0; i < n; i++) {
            switch (next_rand() % 4) {
            case 0:
                crt((int)i + 1);
                break;
            case 1:
            case 2:
                upd((int)i + 1);
                break;
            default:
                del((int)i + 1);
            }
        }
        start(next_rand() % 2 ? "id" : NULL, 1 + (int)(next_rand() % 3));
        int steps = 0;
        struct apply_request req;
        int rc;
        while ((rc = apply_batch_next(&batch, &req)) == 1) {
            assert_true(++steps < 2000);
            char listing[512] = "{\"data\":[";
            for (size_t i = 0; i < batch.nitems; i++)
                if (steps > 200 || next_rand() % 2) {
                    size_t l = strlen(listing);
                    snprintf(listing + l, sizeof(listing) - l, "%s{\"id\":%s}",
                             listing[l - 1] == '[' ? "" : ",", batch.items[i].ev->key_text);
                }
            strcat(listing, "]}");
            if (steps > 200) { /* the remote behaves from now on */
                answer(200, NULL, listing);
                continue;
            }
            switch (next_rand() % 10) {
            case 0:
                answer(200, NULL, listing);
                break;
            case 1:
                answer(200, NULL, "{\"data\":[{\"id\":"); /* truncated */
                break;
            case 2:
                answer(204, NULL, NULL);
                break;
            case 3:
                answer(400, "RECORD_NOT_UNIQUE", NULL);
                break;
            case 4:
                answer(403, "FORBIDDEN", "<html>");
                break;
            case 5:
                answer(400, "VALUE_TOO_LONG", NULL);
                break;
            case 6:
                answer(500, "INTERNAL_SERVER_ERROR", NULL);
                break;
            case 7:
                answer(503, NULL, NULL);
                break;
            case 8:
                answer_curl(CURLE_COULDNT_CONNECT, 0, NULL, NULL, -1, NULL);
                break;
            default:
                answer(200, NULL, "{\"data\":{\"id\":1}}"); /* data of the wrong shape */
            }
        }
        assert_int_equal(rc, 0);
        assert_true(apply_batch_done(&batch));
        for (size_t i = 0; i < batch.nitems; i++)
            assert_int_not_equal(batch.items[i].state, APPLY_PENDING);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(creates_go_in_one_post, reset),
        cmocka_unit_test_teardown(updates_go_in_one_patch_with_their_delta, reset),
        cmocka_unit_test_teardown(deletes_go_in_one_delete, reset),
        cmocka_unit_test_teardown(mixed_upserts_post_then_patch, reset),
        cmocka_unit_test_teardown(the_primary_key_is_learnt_first, reset),
        cmocka_unit_test_teardown(an_unknown_primary_key_is_assumed_id, reset),
        cmocka_unit_test_teardown(fields_wait_out_an_outage, reset),
        cmocka_unit_test_teardown(fields_ask_again_after_a_server_error, reset),
        cmocka_unit_test_teardown(update_of_missing_items_creates_them, reset),
        cmocka_unit_test_teardown(admin_patch_answer_lists_what_it_found, reset),
        cmocka_unit_test_teardown(an_unreadable_patch_answer_asks_what_exists, reset),
        cmocka_unit_test_teardown(create_of_existing_items_updates_them, reset),
        cmocka_unit_test_teardown(delete_of_missing_items_is_done, reset),
        cmocka_unit_test_teardown(a_forbidden_item_that_exists_fails_for_good, reset),
        cmocka_unit_test_teardown(an_item_deleted_after_the_search_is_created, reset),
        cmocka_unit_test_teardown(a_rejected_value_is_isolated_and_the_rest_applied, reset),
        cmocka_unit_test_teardown(a_server_error_with_the_remote_up_is_the_items_fault, reset),
        cmocka_unit_test_teardown(a_server_error_with_the_remote_down_is_an_outage, reset),
        cmocka_unit_test_teardown(outages_back_off_exponentially_and_honour_retry_after, reset),
        cmocka_unit_test_teardown(transient_statuses_are_outages, reset),
        cmocka_unit_test_teardown(no_answer_at_all_is_an_outage, reset),
        cmocka_unit_test_teardown(out_of_range_fails_the_item, reset),
        cmocka_unit_test_teardown(a_nonsense_resolve_answer_counts_as_a_server_error, reset),
        cmocka_unit_test_teardown(a_resolve_answer_that_is_not_json_is_an_outage, reset),
        cmocka_unit_test_teardown(a_write_answered_with_something_else_asks_what_exists, reset),
        cmocka_unit_test_teardown(a_ping_answered_by_something_else_is_an_outage, reset),
        cmocka_unit_test_teardown(collection_and_key_names_are_escaped, reset),
        cmocka_unit_test_teardown(random_answers_always_end, reset),
        cmocka_unit_test_teardown(a_refused_foreign_key_picks_out_its_items, reset),
        cmocka_unit_test_teardown(a_field_the_stored_item_lacks_is_named, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
