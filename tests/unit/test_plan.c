/* Planner: batches keep per-key order, stop at action boundaries and repeated keys, respect
 * batch_max; bodies carry the key and only routed fields; updates that touch no routed field are
 * skipped; splitting halves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXEV 64

static struct event evs[MAXEV];
static const struct event *ptrs[MAXEV];
static size_t nev;

static char *route_fields[] = {"title", "rating"};
static const struct config_collection coll = {
    .collection = "articles", .fields = route_fields, .nfields = 2};

/* Adds an event: action, key (JSON: "\"k1\"" or "42"), data and delta as JSON (or "null"). */
static const struct event *add(const char *action, const char *key, const char *data,
                               const char *delta)
{
    char json[2048], err[256];
    snprintf(json, sizeof(json),
             "{\"version\":1,\"event_id\":\"a:%zu\",\"source\":\"a\",\"collection\":\"articles\","
             "\"action\":\"%s\",\"key\":%s,\"data\":%s,\"delta\":%s,\"user\":null,"
             "\"timestamp\":\"2026-01-01T00:00:00Z\",\"activity_id\":%zu}",
             nev + 1, action, key, data, delta, nev + 1);
    assert_true(nev < MAXEV);
    int rc = event_decode(json, strlen(json), &evs[nev], err, sizeof(err));
    if (rc)
        fail_msg("decode: %s: %s", err, json);
    ptrs[nev] = &evs[nev];
    return ptrs[nev++];
}

static int reset(void **state)
{
    (void)state;
    for (size_t i = 0; i < nev; i++)
        event_free(&evs[i]);
    nev = 0;
    return 0;
}

static void upd(const char *key)
{
    add("update", key, "{\"title\":\"t\"}", "{\"title\":\"t\"}");
}

static void crt(const char *key)
{
    add("create", key, "{\"title\":\"t\"}", "null");
}

static void del(const char *key)
{
    add("delete", key, "null", "null");
}

static void empty_queue_plans_nothing(void **state)
{
    (void)state;
    size_t idx[8];
    assert_int_equal(plan_next(ptrs, 0, 8, idx), 0);
    crt("\"k1\"");
    const struct event *none[3] = {NULL, NULL, NULL};
    assert_int_equal(plan_next(none, 3, 8, idx), 0);
}

static void consecutive_upserts_share_a_batch(void **state)
{
    (void)state;
    crt("\"k1\"");
    upd("\"k2\"");
    add("snapshot", "\"k3\"", "{\"title\":\"s\"}", "null");
    crt("\"k4\"");
    size_t idx[8];
    assert_int_equal(plan_next(ptrs, nev, 8, idx), 4);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(idx[i], i);
}

static void deletes_are_a_batch_of_their_own(void **state)
{
    (void)state;
    crt("\"k1\"");
    crt("\"k2\"");
    del("\"k3\"");
    del("\"k4\"");
    crt("\"k5\"");
    size_t idx[8];
    assert_int_equal(plan_next(ptrs, nev, 8, idx), 2);
    assert_int_equal(idx[1], 1);
    assert_int_equal(plan_next(ptrs + 2, nev - 2, 8, idx), 2);
    assert_int_equal(plan_next(ptrs + 4, nev - 4, 8, idx), 1);
}

static void a_repeated_key_cuts_the_batch(void **state)
{
    (void)state;
    crt("\"k1\"");
    crt("\"k2\"");
    upd("\"k1\""); /* must not go out with (or before) the create of k1 */
    crt("\"k3\"");
    size_t idx[8];
    assert_int_equal(plan_next(ptrs, nev, 8, idx), 2);
    assert_int_equal(idx[0], 0);
    assert_int_equal(idx[1], 1);
    /* once those are settled, the update of k1 leads the next batch, then k3 */
    const struct event *rest[4] = {NULL, NULL, ptrs[2], ptrs[3]};
    assert_int_equal(plan_next(rest, 4, 8, idx), 2);
    assert_int_equal(idx[0], 2);
    assert_int_equal(idx[1], 3);
}

static void integer_and_string_keys_of_the_same_text_repeat(void **state)
{
    (void)state;
    upd("42");
    upd("\"42\"");
    size_t idx[8];
    assert_int_equal(plan_next(ptrs, nev, 8, idx), 1);
}

static void batch_max_caps_the_batch(void **state)
{
    (void)state;
    char key[32];
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "%d", i + 1);
        crt(key);
    }
    size_t idx[10];
    assert_int_equal(plan_next(ptrs, nev, 4, idx), 4);
    assert_int_equal(plan_next(ptrs + 8, 2, 4, idx), 2);
    assert_int_equal(plan_next(ptrs, nev, 1, idx), 1);
}

static void settled_events_are_stepped_over(void **state)
{
    (void)state;
    crt("\"k1\"");
    crt("\"k2\"");
    crt("\"k3\"");
    const struct event *q[5] = {NULL, ptrs[0], NULL, ptrs[1], ptrs[2]};
    size_t idx[8];
    assert_int_equal(plan_next(q, 5, 8, idx), 3);
    assert_int_equal(idx[0], 1);
    assert_int_equal(idx[1], 3);
    assert_int_equal(idx[2], 4);
}

static void order_per_key_holds_over_many_batches(void **state)
{
    (void)state;
    /* k1..k4 each: create, update, update, delete, interleaved; replaying batch after batch must
     * hand out each key's events in offset order and never two of a key at once. */
    const char *keys[] = {"\"k1\"", "\"k2\"", "\"k3\"", "\"k4\""};
    for (int round = 0; round < 4; round++)
        for (int k = 0; k < 4; k++) {
            if (round == 0)
                crt(keys[k]);
            else if (round < 3)
                upd(keys[k]);
            else
                del(keys[k]);
        }
    const struct event *q[MAXEV];
    memcpy(q, ptrs, nev * sizeof(*q));
    size_t last_seen[4] = {0, 0, 0, 0};
    bool seen_any[4] = {false};
    size_t idx[MAXEV], total = 0, batches = 0;
    size_t n;
    while ((n = plan_next(q, nev, 3, idx)) > 0) {
        batches++;
        for (size_t i = 0; i < n; i++) {
            int k = evs[idx[i]].key_text[1] - '1';
            if (seen_any[k])
                assert_true(idx[i] > last_seen[k]);
            /* every earlier event of this key is already settled */
            for (size_t j = 0; j < idx[i]; j++)
                if (q[j] && strcmp(q[j]->key_text, evs[idx[i]].key_text) == 0)
                    fail_msg("event %zu planned before event %zu of the same key", idx[i], j);
            seen_any[k] = true;
            last_seen[k] = idx[i];
        }
        for (size_t i = 0; i < n; i++)
            q[idx[i]] = NULL;
        total += n;
    }
    assert_int_equal(total, 16);
    assert_true(batches >= 6);
}

static void bodies_carry_only_routed_fields(void **state)
{
    (void)state;
    const struct event *ev =
        add("create", "\"k1\"", "{\"id\":\"k1\",\"title\":\"T\",\"body\":\"B\",\"rating\":3}",
            "{\"title\":\"T\",\"body\":\"B\",\"rating\":3}");
    cJSON *o = plan_body(ev, &coll, "id", PLAN_BODY_FULL);
    char *s = cJSON_PrintUnformatted(o);
    assert_string_equal(s, "{\"id\":\"k1\",\"title\":\"T\",\"rating\":3}");
    free(s);
    cJSON_Delete(o);
}

static void the_key_field_comes_from_the_event_key(void **state)
{
    (void)state;
    /* a pk named otherwise, and data lacking it (a create's revision may lack a generated key) */
    const struct event *ev = add("create", "42", "{\"title\":\"T\"}", "null");
    cJSON *o = plan_body(ev, &coll, "uid", PLAN_BODY_FULL);
    char *s = cJSON_PrintUnformatted(o);
    assert_string_equal(s, "{\"uid\":42,\"title\":\"T\"}");
    free(s);
    cJSON_Delete(o);
    /* a route that lists the pk itself does not write it twice */
    char *f[] = {"uid", "title"};
    struct config_collection c2 = {.collection = "articles", .fields = f, .nfields = 2};
    o = plan_body(ev, &c2, "uid", PLAN_BODY_FULL);
    s = cJSON_PrintUnformatted(o);
    assert_string_equal(s, "{\"uid\":42,\"title\":\"T\"}");
    free(s);
    cJSON_Delete(o);
}

static void updates_write_routed_delta_fields_with_data_values(void **state)
{
    (void)state;
    const struct event *ev =
        add("update", "\"k1\"", "{\"id\":\"k1\",\"title\":\"new\",\"body\":\"B\",\"rating\":3}",
            "{\"title\":\"stale\",\"body\":\"B\"}");
    cJSON *o = plan_body(ev, &coll, "id", PLAN_BODY_DELTA);
    char *s = cJSON_PrintUnformatted(o);
    assert_string_equal(s, "{\"id\":\"k1\",\"title\":\"new\"}");
    free(s);
    cJSON_Delete(o);
    /* the same update, when the item has to be created, writes every routed field */
    o = plan_body(ev, &coll, "id", PLAN_BODY_FULL);
    s = cJSON_PrintUnformatted(o);
    assert_string_equal(s, "{\"id\":\"k1\",\"title\":\"new\",\"rating\":3}");
    free(s);
    cJSON_Delete(o);
}

static void nulls_and_nested_values_travel(void **state)
{
    (void)state;
    const struct event *ev = add("update", "\"k1\"", "{\"title\":null,\"rating\":{\"a\":[1,2]}}",
                                 "{\"title\":null,\"rating\":{\"a\":[1,2]}}");
    cJSON *o = plan_body(ev, &coll, "id", PLAN_BODY_DELTA);
    char *s = cJSON_PrintUnformatted(o);
    assert_string_equal(s, "{\"id\":\"k1\",\"title\":null,\"rating\":{\"a\":[1,2]}}");
    free(s);
    cJSON_Delete(o);
}

static void updates_touching_no_routed_field_are_skipped(void **state)
{
    (void)state;
    const struct event *u1 =
        add("update", "\"k1\"", "{\"title\":\"T\",\"body\":\"B2\"}", "{\"body\":\"B2\"}");
    const struct event *u2 = add("update", "\"k1\"", "{\"title\":\"T\"}", "{}");
    const struct event *u3 = add("update", "\"k1\"", "{\"rating\":1}", "{\"rating\":1}");
    const struct event *c = add("create", "\"k1\"", "{\"body\":\"only\"}", "null");
    const struct event *d = add("delete", "\"k1\"", "null", "null");
    assert_false(plan_touches(u1, &coll));
    assert_false(plan_touches(u2, &coll));
    assert_true(plan_touches(u3, &coll));
    assert_true(plan_touches(c, &coll)); /* a create always writes (at least the key) */
    assert_true(plan_touches(d, &coll));
}

static void pruning_keeps_what_is_written(void **state)
{
    (void)state;
    struct event *ev = (struct event *)add(
        "update", "\"k1\"", "{\"id\":\"k1\",\"title\":\"T\",\"body\":\"long\",\"rating\":3}",
        "{\"title\":\"T\",\"body\":\"long\"}");
    cJSON *before_full = plan_body(ev, &coll, "id", PLAN_BODY_FULL);
    cJSON *before_delta = plan_body(ev, &coll, "id", PLAN_BODY_DELTA);
    plan_prune(ev, &coll);
    char *d = cJSON_PrintUnformatted(ev->data), *t = cJSON_PrintUnformatted(ev->delta);
    assert_string_equal(d, "{\"title\":\"T\",\"rating\":3}");
    assert_string_equal(t, "{\"title\":\"T\"}");
    free(d);
    free(t);
    cJSON *after_full = plan_body(ev, &coll, "id", PLAN_BODY_FULL);
    cJSON *after_delta = plan_body(ev, &coll, "id", PLAN_BODY_DELTA);
    assert_true(cJSON_Compare(before_full, after_full, true));
    assert_true(cJSON_Compare(before_delta, after_delta, true));
    assert_true(plan_touches(ev, &coll));
    cJSON_Delete(before_full);
    cJSON_Delete(before_delta);
    cJSON_Delete(after_full);
    cJSON_Delete(after_delta);
}

static void splitting_halves(void **state)
{
    (void)state;
    assert_int_equal(plan_split(2), 1);
    assert_int_equal(plan_split(3), 1);
    assert_int_equal(plan_split(100), 50);
    /* repeated halving isolates one item of 100 in 7 steps */
    size_t n = 100, steps = 0;
    while (n > 1) {
        n = n - plan_split(n); /* follow the larger half */
        steps++;
    }
    assert_int_equal(steps, 7);
}

static void keyset_finds_and_refuses_duplicates(void **state)
{
    (void)state;
    struct plan_keyset s;
    assert_int_equal(plan_keyset_init(&s, 3), 0);
    assert_true(plan_keyset_add(&s, "a", 1));
    assert_true(plan_keyset_add(&s, "b", 2));
    assert_false(plan_keyset_add(&s, "a", 3));
    size_t v = 0;
    assert_true(plan_keyset_find(&s, "b", &v));
    assert_int_equal(v, 2);
    assert_false(plan_keyset_find(&s, "c", &v));
    plan_keyset_clear(&s);
    assert_false(plan_keyset_find(&s, "a", &v));
    plan_keyset_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(empty_queue_plans_nothing, reset),
        cmocka_unit_test_teardown(consecutive_upserts_share_a_batch, reset),
        cmocka_unit_test_teardown(deletes_are_a_batch_of_their_own, reset),
        cmocka_unit_test_teardown(a_repeated_key_cuts_the_batch, reset),
        cmocka_unit_test_teardown(integer_and_string_keys_of_the_same_text_repeat, reset),
        cmocka_unit_test_teardown(batch_max_caps_the_batch, reset),
        cmocka_unit_test_teardown(settled_events_are_stepped_over, reset),
        cmocka_unit_test_teardown(order_per_key_holds_over_many_batches, reset),
        cmocka_unit_test_teardown(bodies_carry_only_routed_fields, reset),
        cmocka_unit_test_teardown(the_key_field_comes_from_the_event_key, reset),
        cmocka_unit_test_teardown(updates_write_routed_delta_fields_with_data_values, reset),
        cmocka_unit_test_teardown(nulls_and_nested_values_travel, reset),
        cmocka_unit_test_teardown(updates_touching_no_routed_field_are_skipped, reset),
        cmocka_unit_test_teardown(pruning_keeps_what_is_written, reset),
        cmocka_unit_test_teardown(splitting_halves, reset),
        cmocka_unit_test_teardown(keyset_finds_and_refuses_duplicates, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
