/* notify: composing subject and message (markdown escaping, the 255-character columns cut at
 * UTF-8 boundaries, secrets masked), digest grouping (same route and code within the window →
 * one; another code, route or window → separate), and the offset rule (which offsets may be
 * stored after which notifications were created). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "log.h"
#include "notify.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct config cfg;

static int setup(void **state)
{
    (void)state;
    static const char json[] =
        "{\"kafka\":{\"brokers\":\"127.0.0.1:9092\",\"topic_prefix\":\"dx\"},"
        "\"instances\":[{\"name\":\"a\",\"url\":\"http://127.0.0.1:1\",\"token\":\"tok-a-secret\","
        "\"database\":\"postgresql://u@h/a\"},{\"name\":\"b\",\"url\":\"http://127.0.0.1:2\","
        "\"token\":\"tok-b-secret\",\"database\":\"postgresql://u@h/b\"}],"
        "\"routes\":[{\"from\":\"a\",\"to\":\"b\",\"collections\":[{\"collection\":\"articles\","
        "\"fields\":[\"title\"]}],\"notify\":[\"11111111-1111-4111-8111-111111111111\"]}]}";
    char err[256];
    if (config_load_buffer(json, sizeof(json) - 1, &cfg, err, sizeof(err)))
        fail_msg("config: %s", err);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    config_free(&cfg);
    log_clear_secrets();
    return 0;
}

static bool valid_utf8(const char *s)
{
    size_t bad;
    return util_utf8_valid(s, strlen(s), &bad);
}

static char *repeat(const char *unit, size_t n)
{
    size_t ul = strlen(unit);
    char *s = malloc(ul * n + 1);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * ul, unit, ul);
    s[ul * n] = '\0';
    return s;
}

/* An apply_failed error event decoded from JSON, as the notifier gets it. */
static void apply_failed(struct error_event *ev, const char *source, const char *remote,
                         const char *collection, const char *key, const char *code, int status,
                         const char *message)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "version", 1);
    cJSON_AddStringToObject(o, "kind", "apply_failed");
    cJSON_AddStringToObject(o, "source", source);
    cJSON_AddStringToObject(o, "remote", remote);
    cJSON_AddStringToObject(o, "collection", collection);
    cJSON_AddStringToObject(o, "key", key);
    cJSON_AddStringToObject(o, "action", "update");
    cJSON_AddStringToObject(o, "event_id", "a:1234");
    cJSON_AddNumberToObject(o, "status", status);
    cJSON_AddStringToObject(o, "code", code);
    cJSON_AddStringToObject(o, "message", message);
    cJSON_AddNumberToObject(o, "attempts", 3);
    cJSON_AddStringToObject(o, "timestamp", "2026-11-25T22:31:00.000Z");
    cJSON_AddStringToObject(o, "topic", "dx.a.articles");
    cJSON_AddNumberToObject(o, "partition", 2);
    cJSON_AddNumberToObject(o, "offset", 41);
    char *json = cJSON_PrintUnformatted(o);
    char err[256];
    if (error_event_decode(json, strlen(json), ev, err, sizeof(err)))
        fail_msg("decode: %s", err);
    free(json);
    cJSON_Delete(o);
}

static void remote_event(struct error_event *ev, const char *kind)
{
    char json[512], err[256];
    snprintf(json, sizeof(json),
             "{\"version\":1,\"kind\":\"%s\",\"source\":\"a\",\"remote\":\"b\",\"status\":0,"
             "\"code\":\"\",\"message\":\"connection refused\",\"attempts\":37,"
             "\"timestamp\":\"2026-11-25T22:31:00.000Z\"}",
             kind);
    if (error_event_decode(json, strlen(json), ev, err, sizeof(err)))
        fail_msg("decode: %s", err);
}

/* A group holding one event, composed. */
static void compose_one(struct error_event *ev, struct notify_msg *msg)
{
    struct notify_digest *d = notify_digest_new(60000);
    assert_non_null(d);
    assert_int_equal(notify_digest_add(d, ev, (struct notify_pos){0, 7}, 1000), 1);
    struct notify_group *g = notify_digest_take(d, INT64_MAX);
    assert_non_null(g);
    assert_int_equal(notify_compose(g, &cfg, msg), 0);
    notify_group_free(g);
    notify_digest_free(d);
}

static void test_text_shorten(void **state)
{
    (void)state;
    char ascii[300];
    memset(ascii, 'x', 256);
    ascii[256] = '\0';
    assert_int_equal(notify_text_chars(ascii), 256);
    assert_true(notify_text_shorten(ascii, 255));
    assert_true(notify_text_chars(ascii) <= 255);
    assert_true(notify_text_chars(ascii) >= 250);
    assert_true(valid_utf8(ascii));
    assert_non_null(strstr(ascii, "\xe2\x80\xa6")); /* the cut shows */

    char exact[256];
    memset(exact, 'y', 255);
    exact[255] = '\0';
    assert_false(notify_text_shorten(exact, 255));
    assert_int_equal(strlen(exact), 255);

    /* Two-, three- and four-byte characters: cut between characters, never inside one. */
    const char *units[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "a\xc3\xa9"};
    for (size_t u = 0; u < 4; u++) {
        for (size_t n = 250; n < 262; n++) {
            char *s = repeat(units[u], n);
            size_t before = notify_text_chars(s);
            bool cut = notify_text_shorten(s, 255);
            assert_int_equal(cut, before > 255);
            assert_true(notify_text_chars(s) <= 255);
            assert_true(valid_utf8(s));
            free(s);
        }
    }
    char tiny[] = "abcdef";
    assert_true(notify_text_shorten(tiny, 1));
    assert_string_equal(tiny, "a");
}

static void test_md_escape(void **state)
{
    (void)state;
    struct util_buf b = {0};
    notify_md_escape(&b, "a*b_c[d](e)<img src=x>`x`|y~z&amp;#h!\\ end\nnext\tq\r", 1000);
    assert_non_null(b.data);
    assert_string_equal(b.data, "a\\*b\\_c\\[d\\](e)\\<img src=x\\>\\`x\\`\\|y\\~z\\&amp;\\#h\\!"
                                "\\\\ end next q ");
    util_buf_reset(&b);
    notify_md_escape(&b, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 2);
    assert_string_equal(b.data, "\xc3\xa9\xc3\xa9\xe2\x80\xa6");
    util_buf_reset(&b);
    notify_md_escape(&b, NULL, 10);
    assert_true(b.len == 0);
    util_buf_free(&b);
}

static void test_compose_single(void **state)
{
    (void)state;
    struct error_event ev;
    struct notify_msg msg;
    apply_failed(&ev, "a", "b", "articles", "k*1_[x]", "VALUE_TOO_LONG", 400,
                 "Value for field \"title\" is <b>too</b> long.\nSecond line");
    compose_one(&ev, &msg);
    assert_true(notify_text_chars(msg.subject) <= NOTIFY_SUBJECT_MAX);
    assert_non_null(strstr(msg.subject, "Sync to b failed"));
    assert_non_null(strstr(msg.subject, "VALUE_TOO_LONG"));
    assert_non_null(strstr(msg.subject, "articles k*1_[x]")); /* the subject is plain text */
    const char *want[] = {"**Collection:** articles",
                          "**Key:** k\\*1\\_\\[x\\]",
                          "**Action:** update",
                          "**Status:** 400",
                          "**Error code:** VALUE\\_TOO\\_LONG",
                          "is \\<b\\>too\\</b\\> long. Second line",
                          "**Attempts:** 3",
                          "**Event:** a:1234",
                          "topic dx.a.articles, partition 2, offset 41",
                          "kcat -C -t dx.a.articles -p 2 -o 41 -c 1",
                          "dx.dlq.b",
                          "dx.errors, partition 0, offset 7"};
    for (size_t i = 0; i < DX_ARRAY_LEN(want); i++)
        if (!strstr(msg.message, want[i]))
            fail_msg("message lacks \"%s\":\n%s", want[i], msg.message);
    assert_null(strchr(msg.subject, '\n'));
    assert_string_equal(msg.collection, "articles");
    assert_string_equal(msg.item, "k*1_[x]");

    char *json = notify_msg_json(&msg, "11111111-1111-4111-8111-111111111111");
    cJSON *o = cJSON_Parse(json);
    assert_non_null(o);
    assert_string_equal(cJSON_GetObjectItem(o, "recipient")->valuestring,
                        "11111111-1111-4111-8111-111111111111");
    assert_string_equal(cJSON_GetObjectItem(o, "subject")->valuestring, msg.subject);
    assert_string_equal(cJSON_GetObjectItem(o, "message")->valuestring, msg.message);
    assert_string_equal(cJSON_GetObjectItem(o, "item")->valuestring, "k*1_[x]");
    cJSON_Delete(o);
    free(json);

    struct notify_msg small;
    assert_int_equal(notify_msg_shrunk(&msg, &small), 0);
    assert_null(small.collection);
    assert_null(small.item);
    assert_true(notify_text_chars(small.subject) <= 120);
    json = notify_msg_json(&small, "11111111-1111-4111-8111-111111111111");
    o = cJSON_Parse(json);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "item")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "collection")));
    cJSON_Delete(o);
    free(json);
    notify_msg_free(&small);
    notify_msg_free(&msg);
}

static void test_compose_long(void **state)
{
    (void)state;
    /* A 400-character key of two-byte characters and a long code: the subject and the item
     * fit their columns, cut between characters; the message keeps the whole key. */
    char *key = repeat("\xc3\xa9", 400);
    char *code = repeat("C", 300);
    struct error_event ev;
    struct notify_msg msg;
    apply_failed(&ev, "a", "b", "articles", key, code, 400, "too long");
    compose_one(&ev, &msg);
    assert_true(notify_text_chars(msg.subject) <= NOTIFY_SUBJECT_MAX);
    assert_true(notify_text_chars(msg.subject) >= NOTIFY_SUBJECT_MAX - 2);
    assert_true(valid_utf8(msg.subject));
    assert_true(notify_text_chars(msg.item) <= NOTIFY_ITEM_MAX);
    assert_true(valid_utf8(msg.item));
    assert_non_null(strstr(msg.message, key));
    notify_msg_free(&msg);
    free(key);
    free(code);

    /* A collection name longer than the column cannot be a collection: no pointer to it. */
    char *coll = repeat("c", 70);
    apply_failed(&ev, "a", "b", coll, "1", "X", 400, "m");
    compose_one(&ev, &msg);
    assert_null(msg.collection);
    assert_string_equal(msg.item, "1");
    notify_msg_free(&msg);
    free(coll);
}

static void test_compose_secret_masked(void **state)
{
    (void)state;
    log_add_secret("tok-b-secret");
    struct error_event ev;
    struct notify_msg msg;
    apply_failed(&ev, "a", "b", "articles", "1", "tok-b-secret", 401, "bad token tok-b-secret");
    compose_one(&ev, &msg);
    assert_null(strstr(msg.subject, "tok-b-secret"));
    assert_null(strstr(msg.message, "tok-b-secret"));
    notify_msg_free(&msg);
    log_clear_secrets();
}

static void test_compose_remote(void **state)
{
    (void)state;
    struct error_event ev;
    struct notify_msg msg;
    remote_event(&ev, "remote_unavailable");
    compose_one(&ev, &msg);
    assert_non_null(strstr(msg.subject, "Sync to b is stalled"));
    assert_non_null(strstr(msg.message, "connection refused"));
    assert_non_null(strstr(msg.message, "**Attempts so far:** 37"));
    assert_non_null(strstr(msg.message, "nothing is lost"));
    assert_null(msg.collection);
    assert_null(msg.item);
    notify_msg_free(&msg);

    remote_event(&ev, "remote_recovered");
    compose_one(&ev, &msg);
    assert_string_equal(msg.subject, "Sync to b recovered");
    assert_null(msg.item);
    notify_msg_free(&msg);
}

static void test_compose_vectors(void **state)
{
    (void)state;
    /* Every valid vector composes; none leaks (ASan) or breaks the limits. */
    static const char *names[] = {"apply-failed.json", "apply-failed-item-500.json",
                                  "remote-recovered.json", "remote-unavailable.json"};
    const char *dir = testutil_dir("DXSYNC_VECTORS", DXSYNC_SOURCE_DIR "/tests/vectors");
    for (size_t i = 0; i < DX_ARRAY_LEN(names); i++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/errors/valid/%s", dir, names[i]);
        size_t len;
        char *buf = testutil_read_file(path, &len);
        assert_non_null(buf);
        struct error_event ev;
        char err[256];
        if (error_event_decode(buf, len, &ev, err, sizeof(err)))
            fail_msg("%s: %s", names[i], err);
        struct notify_msg msg;
        compose_one(&ev, &msg);
        assert_true(notify_text_chars(msg.subject) <= NOTIFY_SUBJECT_MAX);
        assert_true(strlen(msg.message) > 0);
        notify_msg_free(&msg);
        free(buf);
    }
}

static void test_digest_one_per_window(void **state)
{
    (void)state;
    struct notify_digest *d = notify_digest_new(60000);
    for (int i = 0; i < 500; i++) {
        struct error_event ev;
        char key[32];
        snprintf(key, sizeof(key), "key-%03d", i);
        apply_failed(&ev, "a", "b", i < 480 ? "articles" : "counters", key, "VALUE_TOO_LONG", 400,
                     "too long");
        /* Spread over 59 s after the first: all inside the window. */
        long n = notify_digest_add(d, &ev, (struct notify_pos){i % 3, i / 3}, 1000 + i * 118);
        assert_int_equal(n, i + 1);
    }
    assert_int_equal(notify_digest_groups(d), 1);
    assert_int_equal(notify_digest_events(d), 500);
    assert_int_equal(notify_digest_next_due(d), 61000);
    assert_null(notify_digest_take(d, 60999)); /* the window has not closed */
    struct notify_group *g = notify_digest_take(d, 61000);
    assert_non_null(g);
    assert_int_equal(g->count, 500);
    assert_int_equal(g->npos, 500);
    assert_int_equal(g->nfirst, NOTIFY_DIGEST_LIST);
    assert_false(g->one_collection);
    assert_false(g->one_key);
    assert_true(g->one_status);
    assert_int_equal(g->ncollections, 2);
    assert_int_equal(notify_digest_groups(d), 0);

    struct notify_msg msg;
    assert_int_equal(notify_compose(g, &cfg, &msg), 0);
    assert_string_equal(msg.subject, "Sync to b failed: 500 changes (VALUE_TOO_LONG)");
    const char *want[] = {"**500** changes from **a** to **b**",
                          "VALUE\\_TOO\\_LONG",
                          "articles (480), counters (20)",
                          "1. articles key-000: update, status 400, 3 attempts",
                          "10. articles key-009",
                          "and 490 more",
                          "partition 0, offsets 0 to 166 (167 events)",
                          "partition 2, offsets 0 to 165 (166 events)",
                          "dx.dlq.b"};
    for (size_t i = 0; i < DX_ARRAY_LEN(want); i++)
        if (!strstr(msg.message, want[i]))
            fail_msg("digest lacks \"%s\":\n%s", want[i], msg.message);
    assert_null(strstr(msg.message, "key-010")); /* only the first few keys */
    assert_null(msg.collection);                 /* two collections */
    assert_null(msg.item);                       /* many items */
    notify_msg_free(&msg);
    notify_group_free(g);
    notify_digest_free(d);
}

static void test_digest_separates(void **state)
{
    (void)state;
    struct notify_digest *d = notify_digest_new(3000);
    struct error_event ev;
    int64_t off = 0;
#define ADD(src, rem, code, now, want)                                                             \
    do {                                                                                           \
        apply_failed(&ev, src, rem, "articles", "k", code, 400, "m");                              \
        assert_int_equal(notify_digest_add(d, &ev, (struct notify_pos){0, off++}, now), want);     \
    } while (0)
    ADD("a", "b", "X", 0, 1);
    ADD("a", "b", "X", 2999, 2); /* inside the window */
    ADD("a", "b", "Y", 100, 1);  /* another code */
    ADD("a", "c", "X", 100, 1);  /* another route */
    ADD("c", "b", "X", 100, 1);  /* another route */
    ADD("a", "b", "", 100, 1);   /* no code is a code of its own */
    ADD("a", "b", "", 200, 2);
    assert_int_equal(notify_digest_groups(d), 5);
    ADD("a", "b", "X", 3000, 1); /* the first window closed at 3000: a new one */
    assert_int_equal(notify_digest_groups(d), 6);
    /* remote events never fold and are due at once */
    remote_event(&ev, "remote_unavailable");
    assert_int_equal(notify_digest_add(d, &ev, (struct notify_pos){0, off++}, 3100), 1);
    remote_event(&ev, "remote_unavailable");
    assert_int_equal(notify_digest_add(d, &ev, (struct notify_pos){0, off++}, 3100), 1);
    assert_int_equal(notify_digest_groups(d), 8);

    /* Due order: the earliest deadline first. */
    struct notify_group *g = notify_digest_take(d, 3100);
    assert_non_null(g);
    assert_int_equal(g->due_ms, 3000);
    assert_int_equal(g->count, 2);
    assert_string_equal(g->code, "X");
    assert_true(g->one_key);
    struct notify_msg msg;
    assert_int_equal(notify_compose(g, &cfg, &msg), 0);
    assert_string_equal(msg.item, "k"); /* one item, twice: point at it */
    assert_string_equal(msg.collection, "articles");
    notify_msg_free(&msg);
    notify_group_free(g);
    size_t taken = 1;
    while ((g = notify_digest_take(d, 3100)) != NULL) {
        assert_true(g->due_ms <= 3100);
        taken++;
        notify_group_free(g);
    }
    assert_int_equal(taken, 7); /* 5 windows opened at 0..200 and the two remote events */
    assert_int_equal(notify_digest_groups(d), 1);
    assert_int_equal(notify_digest_next_due(d), 6000);
    notify_digest_free(d); /* frees the open ones */

    /* A window of 0: every event on its own, due at once. */
    d = notify_digest_new(0);
    ADD("a", "b", "X", 10, 1);
    ADD("a", "b", "X", 10, 1);
    assert_int_equal(notify_digest_groups(d), 2);
    assert_int_equal(notify_digest_next_due(d), 10);
    notify_digest_free(d);
#undef ADD
}

static void test_ledger(void **state)
{
    (void)state;
    struct notify_ledger *l = notify_ledger_new();
    struct notify_pos adv[8];
    assert_int_equal(notify_ledger_storable(l, 0), -1);
    for (int64_t o = 10; o < 15; o++)
        assert_int_equal(notify_ledger_read(l, (struct notify_pos){0, o}), 0);
    assert_int_equal(notify_ledger_read(l, (struct notify_pos){1, 3}), 0);
    assert_int_equal(notify_ledger_pending(l), 6);
    assert_int_equal(notify_ledger_storable(l, 0), 10);
    notify_ledger_done(l, (struct notify_pos){0, 11});
    notify_ledger_done(l, (struct notify_pos){0, 12});
    assert_int_equal(notify_ledger_storable(l, 0), 10); /* 10 is not handled yet */
    notify_ledger_done(l, (struct notify_pos){0, 10});
    assert_int_equal(notify_ledger_storable(l, 0), 13);
    notify_ledger_done(l, (struct notify_pos){0, 99}); /* unknown: ignored */
    notify_ledger_done(l, (struct notify_pos){7, 1});
    assert_int_equal(notify_ledger_pending(l), 3);
    size_t k = notify_ledger_advanced(l, adv, 8);
    assert_int_equal(k, 1); /* partition 1 is where reading started: nothing to say */
    assert_int_equal(adv[0].partition, 0);
    assert_int_equal(adv[0].offset, 13);
    assert_int_equal(notify_ledger_advanced(l, adv, 8), 0); /* nothing moved */
    notify_ledger_done(l, (struct notify_pos){1, 3});
    notify_ledger_done(l, (struct notify_pos){0, 14});
    notify_ledger_done(l, (struct notify_pos){0, 14}); /* twice is once */
    k = notify_ledger_advanced(l, adv, 8);
    assert_int_equal(k, 1); /* partition 1 moved; 0 still waits for 13 */
    assert_int_equal(adv[0].partition, 1);
    assert_int_equal(adv[0].offset, 4);
    notify_ledger_done(l, (struct notify_pos){0, 13});
    assert_int_equal(notify_ledger_storable(l, 0), 15);
    assert_int_equal(notify_ledger_pending(l), 0);
    /* Many entries: the head compaction keeps the answer right. */
    for (int64_t o = 15; o < 5015; o++)
        assert_int_equal(notify_ledger_read(l, (struct notify_pos){0, o}), 0);
    for (int64_t o = 15; o < 5015; o++)
        if (o != 4000)
            notify_ledger_done(l, (struct notify_pos){0, o});
    assert_int_equal(notify_ledger_storable(l, 0), 4000);
    notify_ledger_done(l, (struct notify_pos){0, 4000});
    assert_int_equal(notify_ledger_storable(l, 0), 5015);
    notify_ledger_clear(l);
    assert_int_equal(notify_ledger_storable(l, 0), -1);
    notify_ledger_free(l);
}

/* The rule end to end: errors 0 (code X), 1 (code Y), 2 (code X) on one partition. X's digest
 * goes out first: offset 0 may be stored (1 may not: Y's notification does not exist yet);
 * only after Y's goes out may everything up to 3 be. A skipped (malformed) event counts as
 * handled at once. */
static void test_offset_rule(void **state)
{
    (void)state;
    struct notify_digest *d = notify_digest_new(1000);
    struct notify_ledger *l = notify_ledger_new();
    struct error_event ev;
    const char *codes[] = {"X", "Y", "X"};
    for (int64_t o = 0; o < 3; o++) {
        struct notify_pos p = {0, o};
        assert_int_equal(notify_ledger_read(l, p), 0);
        apply_failed(&ev, "a", "b", "articles", "k", codes[o], 400, "m");
        notify_digest_add(d, &ev, p, o == 1 ? 500 : 0);
    }
    assert_int_equal(notify_ledger_read(l, (struct notify_pos){0, 3}), 0);
    notify_ledger_done(l, (struct notify_pos){0, 3});  /* malformed: skipped */
    assert_int_equal(notify_ledger_storable(l, 0), 0); /* nothing is notified yet */

    struct notify_group *x = notify_digest_take(d, 1000);
    assert_non_null(x);
    assert_string_equal(x->code, "X");
    assert_null(notify_digest_take(d, 1000)); /* Y's window is open until 1500 */
    for (size_t i = 0; i < x->npos; i++)      /* X's notifications were created */
        notify_ledger_done(l, x->pos[i]);
    assert_int_equal(notify_ledger_storable(l, 0), 1);

    struct notify_group *y = notify_digest_take(d, 1500);
    assert_non_null(y);
    for (size_t i = 0; i < y->npos; i++)
        notify_ledger_done(l, y->pos[i]);
    assert_int_equal(notify_ledger_storable(l, 0), 4);
    notify_group_free(x);
    notify_group_free(y);
    notify_digest_free(d);
    notify_ledger_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_shorten),          cmocka_unit_test(test_md_escape),
        cmocka_unit_test(test_compose_single),        cmocka_unit_test(test_compose_long),
        cmocka_unit_test(test_compose_secret_masked), cmocka_unit_test(test_compose_remote),
        cmocka_unit_test(test_compose_vectors),       cmocka_unit_test(test_digest_one_per_window),
        cmocka_unit_test(test_digest_separates),      cmocka_unit_test(test_ledger),
        cmocka_unit_test(test_offset_rule),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
