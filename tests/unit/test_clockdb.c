/* clockdb: the consumer's clock store. A checkpoint is stored whole or not at all: a process
 * killed in the middle of one (between the clocks it wrote and its commit) leaves the store as
 * the last commit left it, with no recovery step; a full store fails its commit with the setting
 * to raise and keeps the last checkpoint; a store written for another partition count is
 * emptied. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "clockdb.h"
#include "testutil.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct fixture {
    char dir[256];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(testutil_tmpdir(f->dir, sizeof(f->dir)), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    testutil_rmdir(f->dir);
    free(f);
    return 0;
}

static struct clockdb *open_db(const char *dir, size_t max_bytes, int partitions)
{
    struct clockdb *db;
    char err[512];
    int rc = clockdb_open(&db, dir, max_bytes, partitions, err, sizeof(err));
    if (rc < 0)
        print_message("open: %s\n", err);
    assert_true(rc >= 0);
    return db;
}

/* The value stored under key, as a string ("" when absent). */
static const char *value_of(struct clockdb *db, const char *key)
{
    static char out[256];
    const void *v;
    size_t len;
    int rc = clockdb_get(db, key, strlen(key), &v, &len);
    assert_true(rc >= 0);
    if (rc == 0)
        return "";
    snprintf(out, sizeof(out), "%.*s", (int)len, (const char *)v);
    return out;
}

/* One checkpoint: key=value pairs and the offset of topic t [0]. */
static void checkpoint(struct clockdb *db, const char *const *kv, size_t n, int64_t offset)
{
    char err[512];
    assert_int_equal(clockdb_begin(db, err, sizeof(err)), 0);
    for (size_t i = 0; i + 1 < n; i += 2)
        assert_int_equal(
            clockdb_put(db, kv[i], strlen(kv[i]), kv[i + 1], strlen(kv[i + 1]), err, sizeof(err)),
            0);
    assert_int_equal(clockdb_set_target(db, "t", 0, offset, err, sizeof(err)), 0);
    assert_int_equal(clockdb_set_floor(db, 0, offset * 1000, err, sizeof(err)), 0);
    assert_int_equal(clockdb_commit(db, err, sizeof(err)), 0);
}

static void a_commit_is_there_after_reopening(void **state)
{
    struct fixture *f = *state;
    struct clockdb *db = open_db(f->dir, 1 << 24, 6);
    assert_int_equal(clockdb_target(db, "t", 0), -1); /* nothing yet */
    int64_t floor;
    assert_int_equal(clockdb_floor(db, 0, &floor), 0);
    const char *kv[] = {"articles\x1f"
                        "1",
                        "one",
                        "articles\x1f"
                        "2",
                        "two"};
    checkpoint(db, kv, 4, 41);
    clockdb_close(db);

    db = open_db(f->dir, 1 << 24, 6);
    assert_string_equal(value_of(db, "articles\x1f"
                                     "1"),
                        "one");
    assert_string_equal(value_of(db, "articles\x1f"
                                     "2"),
                        "two");
    assert_int_equal(clockdb_target(db, "t", 0), 41);
    assert_int_equal(clockdb_target(db, "t", 1), -1);
    assert_int_equal(clockdb_floor(db, 0, &floor), 1);
    assert_int_equal(floor, 41000);
    struct clockdb_stats st;
    clockdb_stats(db, &st);
    assert_int_equal(st.keys, 2);
    assert_true(st.file_bytes > 0);
    clockdb_close(db);
}

static void an_aborted_checkpoint_leaves_nothing(void **state)
{
    struct fixture *f = *state;
    struct clockdb *db = open_db(f->dir, 1 << 24, 6);
    const char *kv[] = {"k", "v1"};
    checkpoint(db, kv, 2, 10);
    char err[256];
    assert_int_equal(clockdb_begin(db, err, sizeof(err)), 0);
    assert_int_equal(clockdb_put(db, "k", 1, "v2", 2, err, sizeof(err)), 0);
    assert_string_equal(value_of(db, "k"), "v2"); /* the checkpoint sees its own writes */
    assert_int_equal(clockdb_set_target(db, "t", 0, 20, err, sizeof(err)), 0);
    clockdb_abort(db);
    assert_string_equal(value_of(db, "k"), "v1");
    assert_int_equal(clockdb_target(db, "t", 0), 10);
    clockdb_close(db);
}

/* A process killed -9 in the middle of a checkpoint (its clocks written, not committed), and one
 * killed right after a commit: the store reopens as the last commit left it. A checkpoint of
 * more clocks than one transaction holds may leave some clocks stored ahead of its offsets,
 * never its offsets ahead of its clocks. */
static void a_kill_in_the_middle_of_a_checkpoint_keeps_the_last_one(void **state)
{
    struct fixture *f = *state;
    struct clockdb *db = open_db(f->dir, 1 << 24, 6);
    const char *kv[] = {"a", "1", "b", "1"};
    checkpoint(db, kv, 4, 100);
    clockdb_close(db);

    for (int committed = 0; committed <= 1; committed++) {
        int pipefd[2];
        assert_int_equal(pipe(pipefd), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            struct clockdb *c;
            char err[256];
            if (clockdb_open(&c, f->dir, 1 << 24, 6, err, sizeof(err)) < 0)
                _exit(3);
            clockdb_begin(c, err, sizeof(err));
            for (int i = 0; i < 5000; i++) { /* more than one transaction's share */
                char k[32], v[64];
                snprintf(k, sizeof(k), "key-%d", i);
                snprintf(v, sizeof(v), "value %d of the second checkpoint", i);
                clockdb_put(c, k, strlen(k), v, strlen(v), err, sizeof(err));
            }
            clockdb_put(c, "a", 1, "2", 1, err, sizeof(err));
            clockdb_set_target(c, "t", 0, 200, err, sizeof(err));
            if (committed)
                clockdb_commit(c, err, sizeof(err));
            if (write(pipefd[1], "x", 1) != 1)
                _exit(4);
            pause(); /* killed here */
            _exit(0);
        }
        close(pipefd[1]);
        char x;
        assert_int_equal(read(pipefd[0], &x, 1), 1);
        close(pipefd[0]);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        assert_true(WIFSIGNALED(status));

        db = open_db(f->dir, 1 << 24, 6);
        if (committed) {
            assert_string_equal(value_of(db, "a"), "2");
            assert_string_equal(value_of(db, "key-4999"), "value 4999 of the second checkpoint");
            assert_int_equal(clockdb_target(db, "t", 0), 200);
        } else {
            assert_string_equal(value_of(db, "a"), "1"); /* written last: not committed */
            assert_string_equal(value_of(db, "key-4999"), "");
            assert_int_equal(clockdb_target(db, "t", 0), 100);
            int64_t floor;
            assert_int_equal(clockdb_floor(db, 0, &floor), 1);
            assert_int_equal(floor, 100000);
        }
        assert_string_equal(value_of(db, "b"), "1");
        clockdb_close(db);
    }
}

/* The map size is a hard cap: the commit that does not fit fails naming the setting, and the
 * store keeps the last checkpoint and takes the next one that fits. */
static void a_full_store_fails_its_commit_and_keeps_the_last_checkpoint(void **state)
{
    struct fixture *f = *state;
    struct clockdb *db = open_db(f->dir, 1 << 20, 6);
    const char *kv[] = {"small", "one"};
    checkpoint(db, kv, 2, 5);
    char err[512] = "";
    char big[2000];
    memset(big, 'x', sizeof(big));
    int rc = clockdb_begin(db, err, sizeof(err));
    for (int i = 0; rc == 0 && i < 2000; i++) {
        char k[32];
        snprintf(k, sizeof(k), "big-%d", i);
        rc = clockdb_put(db, k, strlen(k), big, sizeof(big), err, sizeof(err));
    }
    if (rc == 0)
        rc = clockdb_commit(db, err, sizeof(err));
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, "consumer.state_max_mb"));
    assert_string_equal(value_of(db, "small"), "one");
    assert_string_equal(value_of(db, "big-0"), "");
    assert_int_equal(clockdb_target(db, "t", 0), 5);
    const char *kv2[] = {"small", "two"};
    checkpoint(db, kv2, 2, 6);
    assert_string_equal(value_of(db, "small"), "two");
    clockdb_close(db);
}

static void another_partition_count_empties_the_store(void **state)
{
    struct fixture *f = *state;
    struct clockdb *db = open_db(f->dir, 1 << 24, 6);
    const char *kv[] = {"k", "v"};
    checkpoint(db, kv, 2, 7);
    clockdb_close(db);
    char err[512];
    assert_int_equal(clockdb_open(&db, f->dir, 1 << 24, 6, err, sizeof(err)), 0);
    clockdb_close(db);
    assert_int_equal(clockdb_open(&db, f->dir, 1 << 24, 12, err, sizeof(err)), 1);
    assert_non_null(strstr(err, "from 6 to 12"));
    assert_string_equal(value_of(db, "k"), "");
    assert_int_equal(clockdb_target(db, "t", 0), -1);
    clockdb_close(db);
}

static void an_unwritable_folder_is_named(void **state)
{
    (void)state;
    struct clockdb *db;
    char err[512];
    assert_int_equal(clockdb_open(&db, "/proc/dxsync-no/such", 1 << 24, 6, err, sizeof(err)), -1);
    assert_null(db);
    assert_non_null(strstr(err, "/proc/dxsync-no"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_commit_is_there_after_reopening, setup, teardown),
        cmocka_unit_test_setup_teardown(an_aborted_checkpoint_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(a_kill_in_the_middle_of_a_checkpoint_keeps_the_last_one,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_full_store_fails_its_commit_and_keeps_the_last_checkpoint,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(another_partition_count_empties_the_store, setup, teardown),
        cmocka_unit_test(an_unwritable_folder_is_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
