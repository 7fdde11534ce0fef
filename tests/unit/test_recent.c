/* recent: an event is stale when its key was seen with the same or a newer activity_id; memory
 * is bounded by two generations, and recent keys survive a rotation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "recent.h"

#include <stdio.h>

static void older_and_equal_ids_are_stale(void **state)
{
    (void)state;
    struct recent r;
    assert_int_equal(recent_init(&r, 8), 0);
    assert_false(recent_stale(&r, "k1", 10));
    assert_false(recent_stale(&r, "k1", 12));
    assert_true(recent_stale(&r, "k1", 12));  /* the same event again */
    assert_true(recent_stale(&r, "k1", 11));  /* a resend of an older one */
    assert_false(recent_stale(&r, "k2", 11)); /* another key is independent */
    assert_false(recent_stale(&r, "k1", 13));
    recent_free(&r);
}

static void memory_is_bounded_and_recent_keys_survive(void **state)
{
    (void)state;
    struct recent r;
    char key[32];
    assert_int_equal(recent_init(&r, 4), 0);
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_false(recent_stale(&r, key, 100 + i));
    }
    /* k4..k7 fill a new generation: k0..k3 are still remembered in the old one */
    for (int i = 4; i < 8; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_false(recent_stale(&r, key, 100 + i));
    }
    assert_true(recent_stale(&r, "k0", 100));
    assert_true(recent_stale(&r, "k7", 50));
    /* one more rotation forgets k0..k3 (an old resend then applies again: harmless) */
    assert_false(recent_stale(&r, "k8", 108));
    assert_false(recent_stale(&r, "k0", 100));
    assert_true(recent_stale(&r, "k5", 105));
    assert_true(r.gen[0].len + r.gen[1].len <= 8);
    recent_free(&r);
}

/* The tables grow with the keys: an idle partition's are small, a busy one's reach the bound and
 * no further, and every key of the last two generations is still known after each growth. */
static void tables_grow_with_the_keys_up_to_the_bound(void **state)
{
    (void)state;
    struct recent r;
    char key[32];
    assert_int_equal(recent_init(&r, 4096), 0);
    assert_int_equal(r.gen[0].cap, 16);
    assert_int_equal(r.gen[1].cap, 16);
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        assert_false(recent_stale(&r, key, 1000 + i));
    }
    assert_int_equal(r.gen[r.cur].len, 3000);
    assert_int_equal(r.gen[r.cur].cap, 8192); /* 3,000 keys at most half full */
    assert_int_equal(r.gen[1 - r.cur].cap, 16);
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        assert_true(recent_stale(&r, key, 1000 + i));
    }
    for (int i = 3000; i < 20000; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        assert_false(recent_stale(&r, key, 1000 + i));
    }
    assert_true(r.gen[0].cap <= 8192 && r.gen[1].cap <= 8192);
    assert_true(r.gen[0].len <= 4096 && r.gen[1].len <= 4096);
    for (int i = 20000 - 4096; i < 20000; i++) { /* the last 4,096 at least */
        snprintf(key, sizeof(key), "key-%d", i);
        assert_true(recent_stale(&r, key, 1000 + i));
    }
    recent_free(&r);
}

static void a_newer_id_of_an_old_generation_key_moves_forward(void **state)
{
    (void)state;
    struct recent r;
    assert_int_equal(recent_init(&r, 2), 0);
    assert_false(recent_stale(&r, "a", 1));
    assert_false(recent_stale(&r, "b", 2));
    assert_false(recent_stale(&r, "c", 3)); /* rotates: a, b are old */
    assert_false(recent_stale(&r, "a", 5)); /* newer: recorded in the current generation */
    assert_true(recent_stale(&r, "a", 4));
    assert_true(recent_stale(&r, "a", 5));
    recent_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(older_and_equal_ids_are_stale),
        cmocka_unit_test(memory_is_bounded_and_recent_keys_survive),
        cmocka_unit_test(a_newer_id_of_an_old_generation_key_moves_forward),
        cmocka_unit_test(tables_grow_with_the_keys_up_to_the_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
