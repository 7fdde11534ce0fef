/* routes: what a remote's consumer reads. Its own topics (the collections it receives and
 * publishes too) come after the routes into it, each with every field those routes carry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "routes.h"

#include <string.h>

static const char CFG[] =
    "{\"kafka\":{\"brokers\":\"127.0.0.1:1\",\"topic_prefix\":\"p\"},"
    "\"instances\":[{\"name\":\"a\",\"url\":\"http://127.0.0.1:1\",\"token\":\"t\","
    "\"database\":\"postgresql://u@127.0.0.1:1/a\"},"
    "{\"name\":\"b\",\"url\":\"http://127.0.0.1:2\",\"token\":\"t\","
    "\"database\":\"postgresql://u@127.0.0.1:1/b\"},"
    "{\"name\":\"c\",\"url\":\"http://127.0.0.1:3\",\"token\":\"t\",\"database\":\"postgresql://"
    "u@127.0.0.1:1/c\"}],"
    "\"routes\":["
    "{\"from\":\"a\",\"to\":\"b\",\"collections\":[{\"collection\":\"articles\",\"fields\":["
    "\"title\"]},"
    "{\"collection\":\"counters\",\"fields\":[\"value\"]},{\"collection\":\"tags\",\"fields\":["
    "\"n\"]}]},"
    "{\"from\":\"c\",\"to\":\"b\",\"collections\":[{\"collection\":\"articles\",\"fields\":["
    "\"body\",\"title\"]}]},"
    "{\"from\":\"b\",\"to\":\"a\",\"collections\":[{\"collection\":\"articles\",\"fields\":["
    "\"title\"]},"
    "{\"collection\":\"counters\",\"fields\":[\"value\"]}]}]}";

static void own_topics_follow_the_routes_into_the_remote(void **state)
{
    (void)state;
    struct config cfg;
    char err[256];
    if (config_load_buffer(CFG, strlen(CFG), &cfg, err, sizeof(err)))
        fail_msg("config: %s", err);
    struct routes_sub *subs;
    size_t n;
    assert_int_equal(routes_into(&cfg, "b", &subs, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 4);
    assert_int_equal(routes_add_own(&cfg, "b", &subs, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 6); /* tags is not published by b: no own topic */
    assert_false(subs[3].local);
    assert_true(subs[4].local);
    assert_string_equal(subs[4].topic, "p.b.articles");
    assert_string_equal(subs[4].route->from, "b");
    /* the array grew twice: each own sub's fields are still its own */
    assert_ptr_equal(subs[4].coll, &subs[4].own);
    assert_ptr_equal(subs[5].coll, &subs[5].own);
    assert_int_equal(subs[4].coll->nfields, 2); /* title (a, c) and body (c) */
    assert_string_equal(subs[4].coll->fields[0], "title");
    assert_string_equal(subs[4].coll->fields[1], "body");
    assert_string_equal(subs[5].topic, "p.b.counters");
    assert_ptr_equal(routes_find(subs, n, "p.b.counters"), &subs[5]);
    routes_free(subs, n);
    config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(own_topics_follow_the_routes_into_the_remote),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
