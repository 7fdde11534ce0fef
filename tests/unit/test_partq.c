/* partq: the offset handed out for storing never passes an unsettled event: not a dead letter
 * waiting for Kafka's acknowledgement, not an event acknowledged out of order, not a batch given
 * back by a rebalance. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "partq.h"

#include <stdlib.h>

static int released;

static void count_release(struct partq_ev *e, void *opaque)
{
    (void)e;
    (void)opaque;
    released++;
}

static struct partq_ev *push(struct partq *q, int64_t offset)
{
    bool oom;
    struct partq_ev *e = partq_push(q, NULL, offset, 0, &oom);
    assert_false(oom);
    return e;
}

static void settled_prefix_moves_the_offset(void **state)
{
    (void)state;
    struct partq q;
    released = 0;
    partq_init(&q, count_release, NULL);
    struct partq_ev *e[4];
    for (int i = 0; i < 4; i++)
        e[i] = push(&q, 10 + i);
    assert_int_equal(q.waiting, 4);
    assert_int_equal(partq_advance(&q), -1); /* nothing settled */
    partq_set(&q, e[0], PARTQ_DONE);
    partq_set(&q, e[1], PARTQ_DONE);
    assert_int_equal(partq_advance(&q), 12); /* the offset after the last settled */
    assert_int_equal(released, 2);
    assert_int_equal(partq_len(&q), 2);
    assert_int_equal(partq_resume_offset(&q), 12);
    assert_int_equal(partq_advance(&q), -1); /* did not move again */
    partq_set(&q, e[2], PARTQ_DONE);
    partq_set(&q, e[3], PARTQ_DONE);
    assert_int_equal(partq_advance(&q), 14);
    assert_int_equal(partq_len(&q), 0);
    assert_int_equal(partq_resume_offset(&q), 14);
    partq_free(&q);
    assert_int_equal(released, 4);
}

static void acks_out_of_order_wait_for_the_oldest(void **state)
{
    (void)state;
    struct partq q;
    partq_init(&q, NULL, NULL);
    struct partq_ev *e[3] = {push(&q, 0), push(&q, 1), push(&q, 2)};
    /* the newest two are done first: the offset must not pass the oldest */
    partq_set(&q, e[2], PARTQ_DONE);
    partq_set(&q, e[1], PARTQ_DONE);
    assert_int_equal(partq_advance(&q), -1);
    assert_int_equal(partq_resume_offset(&q), 0);
    partq_set(&q, e[0], PARTQ_DONE);
    assert_int_equal(partq_advance(&q), 3); /* all three at once */
    assert_int_equal(q.unsettled, 0);
    partq_free(&q);
}

static void dead_letters_hold_the_offset_until_acknowledged(void **state)
{
    (void)state;
    struct partq q;
    partq_init(&q, NULL, NULL);
    struct partq_ev *e[3] = {push(&q, 5), push(&q, 6), push(&q, 7)};
    partq_set(&q, e[0], PARTQ_DONE);
    partq_set(&q, e[1], PARTQ_DEAD); /* sent to the DLQ, not acknowledged yet */
    partq_set(&q, e[2], PARTQ_DONE);
    assert_int_equal(partq_advance(&q), 6); /* past the applied one only */
    assert_int_equal(q.waiting, 0);
    assert_int_equal(q.unsettled, 1);
    partq_set(&q, e[1], PARTQ_DONE); /* the acknowledgement */
    assert_int_equal(partq_advance(&q), 8);
    partq_free(&q);
}

static void redeliveries_are_refused(void **state)
{
    (void)state;
    struct partq q;
    partq_init(&q, NULL, NULL);
    push(&q, 3);
    push(&q, 4);
    bool oom;
    assert_null(partq_push(&q, NULL, 4, 0, &oom)); /* seen already */
    assert_false(oom);
    assert_null(partq_push(&q, NULL, 1, 0, &oom));
    assert_non_null(partq_push(&q, NULL, 9, 0, &oom)); /* a gap (compacted topic) is fine */
    assert_int_equal(partq_len(&q), 3);
    partq_free(&q);
}

/* A batch cut short by a revoke gives its events back (WAITING); what was applied before is
 * stored, the rest is for the partition's next owner, which resumes at the stored offset. */
static void redo_after_a_rebalance(void **state)
{
    (void)state;
    struct partq q;
    partq_init(&q, NULL, NULL);
    struct partq_ev *e[4];
    for (int i = 0; i < 4; i++)
        e[i] = push(&q, 20 + i);
    for (int i = 0; i < 4; i++)
        partq_set(&q, e[i], PARTQ_IN_BATCH);
    assert_int_equal(q.waiting, 0);
    partq_set(&q, e[0], PARTQ_DONE);
    partq_set(&q, e[1], PARTQ_WAITING); /* not applied when the revoke came */
    partq_set(&q, e[2], PARTQ_DONE);
    partq_set(&q, e[3], PARTQ_WAITING);
    assert_int_equal(q.waiting, 2);
    int64_t stored = partq_advance(&q);
    assert_int_equal(stored, 21);
    partq_free(&q);
    /* the same partition assigned again: Kafka redelivers from the stored offset */
    partq_init(&q, NULL, NULL);
    for (int64_t off = stored; off < 24; off++)
        assert_non_null(push(&q, off));
    assert_int_equal(partq_resume_offset(&q), 21);
    for (size_t i = 0; i < partq_len(&q); i++)
        partq_set(&q, partq_at(&q, i), PARTQ_DONE);
    assert_int_equal(partq_advance(&q), 24);
    partq_free(&q);
}

static void held_events_are_counted(void **state)
{
    (void)state;
    struct partq q;
    partq_init(&q, NULL, NULL);
    struct partq_ev *a = push(&q, 0), *b = push(&q, 1);
    partq_hold(&q, a, true);
    partq_hold(&q, a, true);
    partq_hold(&q, b, true);
    assert_int_equal(q.held, 2);
    partq_hold(&q, a, false);
    assert_int_equal(q.held, 1);
    assert_false(a->fields_check);
    partq_free(&q);
    assert_int_equal(q.held, 0);
}

static void the_queue_grows_and_compacts(void **state)
{
    (void)state;
    struct partq q;
    partq_init(&q, NULL, NULL);
    int64_t off = 0;
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 37; i++)
            push(&q, off++);
        for (size_t i = 0; i + 5 < partq_len(&q); i++)
            partq_set(&q, partq_at(&q, i), PARTQ_DONE);
        partq_advance(&q);
        for (size_t i = 0; i < partq_len(&q); i++)
            assert_int_equal(partq_at(&q, i)->offset, off - (int64_t)partq_len(&q) + (int64_t)i);
    }
    assert_int_equal(partq_len(&q), 5);
    assert_true(q.cap <= 128);
    partq_free(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(settled_prefix_moves_the_offset),
        cmocka_unit_test(acks_out_of_order_wait_for_the_oldest),
        cmocka_unit_test(dead_letters_hold_the_offset_until_acknowledged),
        cmocka_unit_test(redeliveries_are_refused),
        cmocka_unit_test(redo_after_a_rebalance),
        cmocka_unit_test(held_events_are_counted),
        cmocka_unit_test(the_queue_grows_and_compacts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
