/* util, backoff, log and cli: UTF-8, time parsing, the backoff schedule, redaction and
 * escaping in log lines, flags. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "backoff.h"
#include "cli.h"
#include "log.h"
#include "signals.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void utf8(void **state)
{
    (void)state;
    size_t bad = 0;
    assert_true(util_utf8_valid("plain", 5, &bad));
    assert_true(util_utf8_valid("\xc3\xa9\xe2\x80\xa8\xf0\x9f\x8c\x8d", 9, &bad));
    assert_false(util_utf8_valid("ab\xe9z", 4, &bad));
    assert_int_equal(bad, 2);
    assert_false(util_utf8_valid("\xc0\xaf", 2, &bad));         /* overlong */
    assert_false(util_utf8_valid("\xed\xa0\x80", 3, &bad));     /* surrogate */
    assert_false(util_utf8_valid("\xf4\x90\x80\x80", 4, &bad)); /* above U+10FFFF */
    assert_false(util_utf8_valid("\xe2\x80", 2, &bad));         /* truncated */
    assert_int_equal(bad, 0);
    assert_true(util_utf8_valid("a\0b", 3, &bad)); /* NUL is valid UTF-8 */
}

static void wipe(void **state)
{
    (void)state;
    char secret[] = "tok-secret";
    util_wipe(secret, sizeof(secret));
    for (size_t i = 0; i < sizeof(secret); i++)
        assert_int_equal(secret[i], 0);
    util_wipe(NULL, 4);
    util_free_secret(NULL);
    util_free_secret(util_strdup("tok-secret"));
}

static void format(void **state)
{
    (void)state;
    char b[8];
    assert_int_equal(util_format(b, sizeof(b), "a.%s", "dlq.b"), 0);
    assert_string_equal(b, "a.dlq.b");
    assert_int_equal(util_format(b, sizeof(b), "%s.%s", "dxsync", "errors"), -1);
    assert_string_equal(b, "dxsync."); /* cut, terminated, reported */
    assert_int_equal(util_format(b, sizeof(b), "%s", "1234567"), 0);
    assert_int_equal(util_format(b, sizeof(b), "%s", "12345678"), -1);
}

static void times(void **state)
{
    (void)state;
    int64_t ms;
    assert_int_equal(util_parse_time("2026-11-25T22:30:39.839Z", 0, &ms), 0);
    assert_int_equal(ms, 1795645839839LL);
    assert_int_equal(util_parse_time("2026-11-25T23:30:39.839+01:00", 0, &ms), 0);
    assert_int_equal(ms, 1795645839839LL);
    assert_int_equal(util_parse_time("2026-11-25", 0, &ms), 0);
    assert_int_equal(ms, 1795564800000LL);
    assert_int_equal(util_parse_time("2h", 10000000, &ms), 0);
    assert_int_equal(ms, 10000000 - 7200000);
    assert_int_equal(util_parse_time("90s", 100000, &ms), 0);
    assert_int_equal(ms, 10000);
    assert_int_equal(util_parse_time("7d", 0, &ms), 0);
    assert_int_equal(ms, -7LL * 86400000);
    assert_int_equal(util_parse_time("yesterday", 0, &ms), -1);
    assert_int_equal(util_parse_time("2h30m", 0, &ms), -1);
    assert_int_equal(util_parse_time("2026-13-01", 0, &ms), -1);
    assert_int_equal(util_parse_time("2026-11-25T25:00Z", 0, &ms), -1);
    assert_int_equal(util_parse_time("", 0, &ms), -1);
    char buf[32];
    util_iso8601_ms(1795645839839LL, buf, sizeof(buf));
    assert_string_equal(buf, "2026-11-25T22:30:39.839Z");
}

static void backoff_schedule(void **state)
{
    (void)state;
    struct backoff b;
    backoff_init(&b, 200, 30000, 42);
    int64_t want[] = {200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000};
    for (int i = 0; i < 10; i++)
        assert_int_equal(backoff_ceiling(&b, i), want[i]);
    for (int i = 0; i < 12; i++) {
        int64_t ceil = backoff_ceiling(&b, b.attempt);
        int64_t d = backoff_next(&b);
        assert_true(d >= ceil / 2 && d <= ceil);
    }
    /* backoff_at: the delay for a count the caller keeps; the schedule's own count stays */
    int at = b.attempt;
    for (int i = 0; i < 10; i++) {
        int64_t d = backoff_at(&b, i);
        assert_true(d >= want[i] / 2 && d <= want[i]);
    }
    assert_int_equal(b.attempt, at);
    /* jitter: two clients with other seeds do not retry in lockstep */
    struct backoff x, y;
    backoff_init(&x, 200, 30000, 1);
    backoff_init(&y, 200, 30000, 2);
    int same = 0;
    for (int i = 0; i < 10; i++)
        same += backoff_next(&x) == backoff_next(&y);
    assert_true(same < 5);
    backoff_reset(&b);
    assert_true(backoff_next(&b) <= 200);
    /* Retry-After asks for longer: honoured; for shorter: the schedule wins */
    backoff_reset(&b);
    assert_int_equal(backoff_next_after(&b, 10), 10000);
    backoff_reset(&b);
    assert_true(backoff_next_after(&b, 0) <= 200);
}

static char captured[4096];
static void capture(const char *line, void *opaque)
{
    (void)opaque;
    snprintf(captured, sizeof(captured), "%s", line);
}

static void log_lines(void **state)
{
    (void)state;
    log_set_sink(capture, NULL);
    log_set_level(LOG_LEVEL_WARN);
    captured[0] = '\0';
    log_info("test", "event=hidden");
    assert_string_equal(captured, "");
    log_warn("consumer", "event=retry remote=b attempt=%d\nsecond line", 3);
    assert_non_null(strstr(captured, " warn consumer event=retry remote=b attempt=3 second line"));
    log_add_secret("abc"); /* too short to mask safely: ignored */
    log_add_secret("hunter2-long-secret");
    log_error("x", "a=hunter2-long-secret b=hunter2-long-secrethunter2-long-secret abc");
    assert_non_null(strstr(captured, "a=[redacted] b=[redacted][redacted] abc"));
    /* a line at the size limit is still masked, never leaked */
    char big[5000];
    memset(big, 'x', sizeof(big));
    memcpy(big + 4040, "hunter2-long-secret", 19);
    big[sizeof(big) - 1] = '\0';
    log_error("x", "%s", big);
    assert_null(strstr(captured, "hunter2"));
    /* a secret across the cut at LOG_LINE_MAX: masked before the cut, no first part left */
    for (size_t at = 4040; at < 4100; at++) {
        memset(big, 'x', sizeof(big) - 1);
        memcpy(big + at, "hunter2-long-secret", 19);
        log_error("x", "%s", big);
        assert_null(strstr(captured, "hunter"));
        assert_true(strlen(captured) <= LOG_LINE_MAX);
    }
    log_clear_secrets();
    /* no fixed number of secrets: the 200th is masked like the first */
    char name[32];
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof(name), "many-secret-%03d", i);
        log_add_secret(name);
    }
    log_error("x", "first=many-secret-000 last=many-secret-199");
    assert_non_null(strstr(captured, "first=[redacted] last=[redacted]"));
    log_clear_secrets();
    log_set_sink(NULL, NULL);
    log_set_level(LOG_LEVEL_INFO);
    enum log_level l;
    assert_int_equal(log_level_parse("debug", &l), 0);
    assert_int_equal(l, LOG_LEVEL_DEBUG);
    assert_int_equal(log_level_parse("verbose", &l), -1);
}

/* What a value from outside becomes in a line: one key, one line, whatever it holds. */
static void log_values(void **state)
{
    (void)state;
    char b[64];
    assert_string_equal(log_q(b, sizeof(b), "RECORD_NOT_UNIQUE"), "RECORD_NOT_UNIQUE");
    assert_string_equal(log_q(b, sizeof(b), "dxsync.a.articles"), "dxsync.a.articles");
    assert_string_equal(log_q(b, sizeof(b), NULL), "-");
    assert_string_equal(log_q(b, sizeof(b), ""), "\"\"");
    assert_string_equal(log_q(b, sizeof(b), "Connection refused"), "\"Connection refused\"");
    /* a forged key, a forged line, a closing quote, a backslash */
    assert_string_equal(log_q(b, sizeof(b), "x level=error"), "\"x level=error\"");
    assert_string_equal(log_q(b, sizeof(b), "a\nerror fake event=x"), "\"a\\nerror fake event=x\"");
    assert_string_equal(log_q(b, sizeof(b), "a\" b=\"c"), "\"a\\\" b=\\\"c\"");
    assert_string_equal(log_q(b, sizeof(b), "a\\"), "\"a\\\\\"");
    assert_string_equal(log_q(b, sizeof(b), "\r\t\x01\x1b[31m\x7f"),
                        "\"\\r\\t\\x01\\x1b[31m\\x7f\"");
    assert_string_equal(log_q(b, sizeof(b), "k=v"), "\"k=v\"");
    /* UTF-8 stays, except line separators and C1 controls; invalid bytes are escaped */
    assert_string_equal(log_q(b, sizeof(b), "caf\xc3\xa9"), "\"caf\xc3\xa9\"");
    assert_string_equal(log_q(b, sizeof(b),
                              "a\xe2\x80\xa8"
                              "b\xc2\x85"),
                        "\"a\\u2028b\\u0085\"");
    assert_string_equal(log_q(b, sizeof(b), "\xe9t\xc3"), "\"\\xe9t\\xc3\"");
    assert_string_equal(log_q(b, sizeof(b), "\xc0\xaf"), "\"\\xc0\\xaf\"");
    /* too long: cut at a character, never inside an escape, marked */
    char small[16];
    assert_string_equal(log_q(small, sizeof(small), "0123456789abcdefghij"), "0123456789ab...");
    assert_string_equal(log_q(small, sizeof(small), "01234567\"\"\"\""), "\"01234567\\\"...\"");
    assert_string_equal(log_q(small, sizeof(small), "012345\xc3\xa9\xe2\x82\xacxx"),
                        "\"012345\xc3\xa9...\""); /* not half of the euro sign */
    char tiny[8];
    assert_string_equal(log_q(tiny, sizeof(tiny), "abc"), "\"\"");
    /* a secret is masked before escaping, whatever characters it holds */
    log_add_secret("pa\"ss word");
    assert_string_equal(log_q(b, sizeof(b), "url=x:pa\"ss word@h"), "\"url=x:[redacted]@h\"");
    /* in a line: the value is one key, the line is one line */
    log_set_sink(capture, NULL);
    log_warn("c", "event=e error=%s key=%s code=%s", LOG_Q("bad\" key=1\nwarn c event=forged"),
             LOG_Q("42"), LOG_Q("pa\"ss word"));
    assert_non_null(strstr(captured,
                           " warn c event=e error=\"bad\\\" key=1\\nwarn c event=forged\" "
                           "key=42 code=\"[redacted]\""));
    assert_null(strchr(captured, '\n'));
    log_set_sink(NULL, NULL);
    log_clear_secrets();
}

static const char *const subs[] = {"run", "check", "snapshot", NULL};

static int parse(struct cli_spec *spec, struct cli_common *c, char *err, const char *const *argv)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    cli_free(spec);
    return cli_parse(argc, (char **)argv, spec, c, err, 256);
}

static void cli_flags(void **state)
{
    (void)state;
    struct cli_opt opts[] = {
        {.name = "instance", .metavar = "NAME", .help = "x"},
        {.name = "collection", .metavar = "C", .help = "y", .repeat = true},
        {.name = "json", .help = "z"},
    };
    struct cli_spec spec = {.program = "p",
                            .summary = "s",
                            .usage = "u",
                            .subcommands = subs,
                            .opts = opts,
                            .nopts = 3};
    struct cli_common c;
    char err[256];
    unsetenv("DXSYNC_CONFIG");
    const char *a1[] = {"p", "--instance", "a", NULL};
    assert_int_equal(parse(&spec, &c, err, a1), 0);
    assert_string_equal(c.subcommand, "run");
    assert_string_equal(c.config_path, "dxsync.json");
    assert_string_equal(cli_value(&spec, "instance"), "a");
    assert_false(c.metrics);

    setenv("DXSYNC_CONFIG", "/etc/dxsync.json", 1);
    const char *a2[] = {
        "p",           "snapshot", "--collection",   "x",    "--collection=y", "--instance=a",
        "--log-level", "debug",    "--metrics-addr", "9100", "--json",         NULL};
    assert_int_equal(parse(&spec, &c, err, a2), 0);
    assert_string_equal(c.subcommand, "snapshot");
    assert_string_equal(c.config_path, "/etc/dxsync.json");
    assert_int_equal(cli_option(&spec, "collection")->nvalues, 2);
    assert_string_equal(cli_option(&spec, "collection")->values[1], "y");
    assert_true(cli_option(&spec, "json")->given);
    assert_int_equal(c.log_level, LOG_LEVEL_DEBUG);
    assert_true(c.metrics);
    assert_int_equal(c.metrics_port, 9100);
    assert_string_equal(c.metrics_host, "127.0.0.1");
    unsetenv("DXSYNC_CONFIG");

    const char *bad1[] = {"p", "explode", NULL};
    assert_int_equal(parse(&spec, &c, err, bad1), -1);
    assert_non_null(
        strstr(err, "unknown subcommand \"explode\" (expected one of: run, check, snapshot)"));
    const char *bad2[] = {"p", "--instanse", "a", NULL};
    assert_int_equal(parse(&spec, &c, err, bad2), -1);
    assert_non_null(strstr(err, "unknown option \"--instanse\""));
    const char *bad3[] = {"p", "--instance", "a", "--instance", "b", NULL};
    assert_int_equal(parse(&spec, &c, err, bad3), -1);
    assert_non_null(strstr(err, "--instance given twice"));
    const char *bad4[] = {"p", "--log-level", "loud", NULL};
    assert_int_equal(parse(&spec, &c, err, bad4), -1);
    assert_non_null(strstr(err, "--log-level"));
    const char *bad5[] = {"p", "--metrics-addr", "x:y", NULL};
    assert_int_equal(parse(&spec, &c, err, bad5), -1);
    const char *bad6[] = {"p", "run", "check", NULL};
    assert_int_equal(parse(&spec, &c, err, bad6), -1);
    assert_non_null(strstr(err, "unexpected argument \"check\""));
    const char *bad7[] = {"p", "--instance", NULL};
    assert_int_equal(parse(&spec, &c, err, bad7), -1);
    assert_non_null(strstr(err, "needs a value"));
    cli_free(&spec);
}

/* A child that gets SIGTERM (twice when twice), then takes stop_s to stop; its exit status
 * (-1 when it had to be killed after 10 s), what it wrote to stderr, and the seconds it took. */
static int stop_child(unsigned deadline_s, int signals, unsigned stop_s, char *out, size_t outlen,
                      double *secs)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        if (signals_install())
            _exit(9);
        signals_set_stop_deadline(deadline_s);
        for (int i = 0; i < signals; i++)
            raise(SIGTERM);
        if (!signals_stop)
            _exit(8);
        sleep(stop_s); /* the clean stop; SIGALRM ends it early */
        _exit(0);
    }
    close(fds[1]);
    int status = 0;
    const struct timespec tick = {0, 10000000};
    for (int i = 0; i < 1000 && waitpid(pid, &status, WNOHANG) == 0; i++)
        nanosleep(&tick, NULL);
    if (waitpid(pid, &status, WNOHANG) == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        status = -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    *secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    ssize_t n = read(fds[0], out, outlen - 1);
    out[n > 0 ? n : 0] = 0;
    close(fds[0]);
    return status < 0 ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

/* The first signal asks for a clean stop, which may take up to the deadline; a stop that hangs
 * past it, or a second signal, exits at once with status 1. */
static void stop_deadline(void **state)
{
    (void)state;
    char out[512];
    double secs;
    /* a clean stop within the deadline: status 0, nothing said */
    assert_int_equal(stop_child(3, 1, 1, out, sizeof(out), &secs), 0);
    assert_string_equal(out, "");
    /* a stop that hangs: out after the deadline (1 s), not after its 30 s */
    assert_int_equal(stop_child(1, 1, 30, out, sizeof(out), &secs), 1);
    assert_non_null(strstr(out, "event=stop_timeout"));
    assert_true(secs >= 0.9 && secs < 5);
    /* no deadline: the stop takes its time */
    assert_int_equal(stop_child(0, 1, 2, out, sizeof(out), &secs), 0);
    assert_true(secs >= 1.9);
    /* a second signal */
    assert_int_equal(stop_child(30, 2, 30, out, sizeof(out), &secs), 1);
    assert_non_null(strstr(out, "second signal"));
    assert_true(secs < 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(utf8),
        cmocka_unit_test(wipe),
        cmocka_unit_test(format),
        cmocka_unit_test(times),
        cmocka_unit_test(backoff_schedule),
        cmocka_unit_test(log_lines),
        cmocka_unit_test(log_values),
        cmocka_unit_test(cli_flags),
        cmocka_unit_test(stop_deadline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
