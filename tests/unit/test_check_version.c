/* The producer's check of the server's version (issue 29): PostgreSQL 12 and older are refused
 * by name, 13 to 18 pass, a newer one passes with a warning. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* check_server_version's line and its problem count */
static int line_of(int num, const char *text, char *buf, size_t len)
{
    char *out = NULL;
    size_t outlen = 0;
    FILE *f = open_memstream(&out, &outlen);
    assert_non_null(f);
    struct report r = {.out = f};
    check_server_version(&r, num, text);
    fclose(f);
    snprintf(buf, len, "%s", out);
    free(out);
    return r.problems;
}

static void versions(void **state)
{
    (void)state;
    char l[1024];
    assert_int_equal(line_of(120022, "12.22", l, sizeof(l)), 1);
    assert_non_null(strstr(
        l, "problem: PostgreSQL 12.22 is not supported: dxsync runs on PostgreSQL 13 to 18"));
    assert_int_equal(line_of(90624, "9.6.24", l, sizeof(l)), 1);
    assert_non_null(strstr(l, "PostgreSQL 9.6.24 is not supported"));
    assert_int_equal(line_of(130023, "13.23", l, sizeof(l)), 0);
    assert_string_equal(l, "ok: PostgreSQL 13.23 (supported: 13 to 18)\n");
    assert_int_equal(line_of(180004, "18.4", l, sizeof(l)), 0);
    assert_non_null(strstr(l, "ok: PostgreSQL 18.4"));
    assert_int_equal(line_of(190000, "19devel", l, sizeof(l)), 0);
    assert_non_null(
        strstr(l, "warning: PostgreSQL 19devel is newer than the majors dxsync is tested on"));
    assert_int_equal(line_of(0, NULL, l, sizeof(l)), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(versions)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
