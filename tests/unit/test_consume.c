/* consume: the consumer asks Kafka for a max.poll.interval.ms longer than the longest its loop
 * can go without polling (a rebalance waiting for requests in flight, the DLQ and a commit). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "consume.h"

#include <string.h>

static void poll_interval_covers_the_longest_block(void **state)
{
    (void)state;
    struct config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.consumer.request_timeout_ms = 30000; /* the default */
    assert_int_equal(consume_longest_block_ms(&cfg), 97000);
    assert_int_equal(consume_poll_interval_ms(&cfg), 300000); /* Kafka's default is enough */
    cfg.consumer.request_timeout_ms = 600000;                 /* the largest allowed */
    assert_int_equal(consume_longest_block_ms(&cfg), 667000);
    assert_int_equal(consume_poll_interval_ms(&cfg), 727000);
    assert_true(consume_poll_interval_ms(&cfg) > consume_longest_block_ms(&cfg));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(poll_interval_covers_the_longest_block),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
