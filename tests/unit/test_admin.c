/* status's table when Kafka cannot tell a partition's end offset: its lag is "?", never 0, and
 * so is the total (a lag helper must not read an unknown as "caught up"). The known-offset
 * table is in test_check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "admin.h"
#include "redrive.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void unknown_end_offset_is_unknown_lag(void **state)
{
    (void)state;
    struct admin_status_row rows[] = {
        {"dxsync.a.articles", 0, 10, 0, 10},
        {"dxsync.a.articles", 1, 4, 0, -1}, /* end offset unknown */
        {"dxsync.a.articles", 2, -1, -1, -1},
    };
    assert_int_equal(admin_status_lag(&rows[0]), 0);
    assert_int_equal(admin_status_lag(&rows[1]), -1);
    assert_int_equal(admin_status_lag(&rows[2]), -1);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(admin_status_print(f, rows, 3), 2);
    fclose(f);
    assert_string_equal(buf, "TOPIC             PARTITION    COMMITTED          END        LAG\n"
                             "dxsync.a.articles         0           10           10          0\n"
                             "dxsync.a.articles         1            4            ?          ?\n"
                             "dxsync.a.articles         2            -            ?          ?\n"
                             "TOTAL                                                          ?\n");
    free(buf);
}

static void all_known_counts_no_unknown(void **state)
{
    (void)state;
    struct admin_status_row rows[] = {{"t", 0, 3, 0, 5}};
    FILE *f = fopen("/dev/null", "w");
    assert_non_null(f);
    assert_int_equal(admin_status_print(f, rows, 1), 0);
    fclose(f);
}

/* A redrive remembers the letters it handled beyond its position in the commit's metadata. */
static void redrive_metadata_round_trip(void **state)
{
    (void)state;
    int64_t offs[8] = {45, 41, 60}, got[8];
    char buf[128];
    /* sorted; the ones at or below the position are not kept */
    assert_int_equal(redrive_meta_format(offs, 3, 41, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "redriven:45,60");
    assert_int_equal(redrive_meta_parse(buf, strlen(buf), got, 8), 2);
    assert_true(got[0] == 45 && got[1] == 60);
    assert_int_equal(redrive_meta_format(offs, 3, 60, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "");
    assert_int_equal(redrive_meta_parse("", 0, got, 8), 0);
    assert_int_equal(redrive_meta_parse("something else", 14, got, 8), 0);
    assert_int_equal(redrive_meta_parse("redriven:7,x,3", 14, got, 8), 2);
    assert_true(got[0] == 3 && got[1] == 7);
    assert_int_equal(redrive_meta_format(offs, 3, 0, buf, 8), -1); /* too long for buf */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(unknown_end_offset_is_unknown_lag),
        cmocka_unit_test(all_known_counts_no_unknown),
        cmocka_unit_test(redrive_metadata_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
