/* check's pure parts: the problem lines read from GET /fields/<c> and GET /permissions/me
 * answers (field-level permissions cannot be set up on a community Directus 12, so they are
 * tested here), and the status table's formatting and lag. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "admin.h"
#include "check.h"
#include "util.h"
#include "verify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *route_fields[] = {"title", "rating", "tags"};
static const struct config_collection coll = {
    .collection = "articles", .fields = route_fields, .nfields = 3};

/* Runs fn's output into a memory buffer. */
struct capture {
    char *buf;
    size_t len;
    FILE *f;
};

static void cap_open(struct capture *c)
{
    c->buf = NULL;
    c->len = 0;
    c->f = open_memstream(&c->buf, &c->len);
    assert_non_null(c->f);
}

static const char *cap_text(struct capture *c)
{
    fflush(c->f);
    return c->buf;
}

static void cap_close(struct capture *c)
{
    fclose(c->f);
    free(c->buf);
}

static const struct config_route route = {.from = "a", .to = "b"};

/* A 200 answer to GET /fields/articles with data, as Directus 12 sends it, parsed. */
static void fields_of(const char *data, struct directus_fields *f)
{
    char body[4096];
    snprintf(body, sizeof(body), "{\"data\":%s}", data);
    struct http_response r = {.curl = CURLE_OK, .status = 200, .body = body, .len = strlen(body)};
    r.klass = http_classify(r.curl, r.status, NULL);
    assert_int_equal(directus_fields_parse(&r, f, NULL, 0), 0);
}

static void fields_missing_and_aliases_are_found(void **state)
{
    (void)state;
    struct directus_fields fields;
    fields_of("[{\"collection\":\"articles\",\"field\":\"id\",\"type\":\"uuid\","
              "\"schema\":{\"name\":\"id\",\"data_type\":\"uuid\",\"is_primary_key\":true},"
              "\"meta\":{\"special\":[\"uuid\"]}},"
              "{\"collection\":\"articles\",\"field\":\"title\",\"type\":\"string\","
              "\"schema\":{\"is_primary_key\":false},\"meta\":{\"special\":null}},"
              "{\"collection\":\"articles\",\"field\":\"tags\",\"type\":\"alias\","
              "\"schema\":null,\"meta\":{\"special\":[\"m2m\"]}}]",
              &fields);
    struct capture c;
    cap_open(&c);
    struct report r = {.out = c.f};
    assert_int_equal(check_fields(&fields, &route, &coll, &r), 2);
    assert_int_equal(r.problems, 2);
    assert_string_equal(cap_text(&c),
                        "problem: route a -> b: field \"articles.rating\" does not exist in b\n"
                        "problem: route a -> b: field \"articles.tags\" is a many-to-many alias, "
                        "not a column: route the junction or child collection instead\n");
    cap_close(&c);
    directus_fields_free(&fields);
}

static void all_fields_present_is_no_finding(void **state)
{
    (void)state;
    struct directus_fields fields;
    fields_of("[{\"field\":\"title\",\"type\":\"string\"},"
              "{\"field\":\"rating\",\"type\":\"integer\"},"
              "{\"field\":\"tags\",\"type\":\"json\",\"meta\":{}}]",
              &fields);
    struct capture c;
    cap_open(&c);
    struct report r = {.out = c.f};
    assert_int_equal(check_fields(&fields, &route, &coll, &r), 0);
    assert_string_equal(cap_text(&c) ? cap_text(&c) : "", "");
    cap_close(&c);
    directus_fields_free(&fields);
}

static void permissions_missing_actions_and_fields_are_found(void **state)
{
    (void)state;
    cJSON *perms = cJSON_Parse(
        "{\"articles\":{"
        "\"create\":{\"access\":\"full\",\"fields\":[\"*\"]},"
        "\"read\":{\"access\":\"partial\",\"fields\":[\"id\",\"title\",\"rating\",\"tags\"]},"
        "\"update\":{\"access\":\"full\",\"fields\":[\"title\"]},"
        "\"delete\":{\"access\":\"none\"},"
        "\"share\":{\"access\":\"none\"}}}");
    struct capture c;
    cap_open(&c);
    struct report r = {.out = c.f};
    assert_int_equal(check_permissions(perms, &route, &coll, &r), 3);
    assert_string_equal(cap_text(&c),
                        "problem: route a -> b: the sync user may not update field "
                        "\"articles.rating\"\n"
                        "problem: route a -> b: the sync user may not update field "
                        "\"articles.tags\"\n"
                        "problem: route a -> b: the sync user has no delete permission on "
                        "\"articles\" (needed to delete items)\n");
    cap_close(&c);
    cJSON_Delete(perms);
}

static void a_collection_absent_from_permissions_lacks_everything(void **state)
{
    (void)state;
    cJSON *perms = cJSON_Parse("{\"counters\":{}}");
    struct capture c;
    cap_open(&c);
    struct report r = {.out = c.f};
    assert_int_equal(check_permissions(perms, &route, &coll, &r), 4);
    assert_int_equal(r.problems, 4);
    cap_close(&c);
    cJSON_Delete(perms);
}

static void status_table_and_lag(void **state)
{
    (void)state;
    struct admin_status_row rows[] = {
        {"dxsync.a.articles", 0, 10, 0, 15},
        {"dxsync.a.articles", 1, -1, 3, 7}, /* nothing committed: lag from the low watermark */
        {"dxsync.a.articles", 2, 5, 0, 5},
    };
    assert_int_equal(admin_status_lag(&rows[0]), 5);
    assert_int_equal(admin_status_lag(&rows[1]), 4);
    assert_int_equal(admin_status_lag(&rows[2]), 0);
    struct capture c;
    cap_open(&c);
    admin_status_print(c.f, rows, 3);
    assert_string_equal(cap_text(&c),
                        "TOPIC             PARTITION    COMMITTED          END        LAG\n"
                        "dxsync.a.articles         0           10           15          5\n"
                        "dxsync.a.articles         1            -            7          4\n"
                        "dxsync.a.articles         2            5            5          0\n"
                        "TOTAL                                                          9\n");
    cap_close(&c);
}

/* Relations as GET /relations/posts answers them (Directus 12.4): each routed many-to-one the
 * same on both sides, with the same on delete; a parent no route carries is a warning. */
static void relations_are_compared(void **state)
{
    (void)state;
    static char *pf[] = {"title", "author", "editor"};
    const struct config_collection posts = {.collection = "posts", .fields = pf, .nfields = 3};
    static char *af[] = {"name"};
    struct config_collection carried_colls[] = {
        posts, {.collection = "authors", .fields = af, .nfields = 1}};
    struct config_route routes[] = {
        {.from = "a", .to = "b", .collections = carried_colls, .ncollections = 2}};
    struct config cfg = {.routes = routes, .nroutes = 1};
    cJSON *src = cJSON_Parse(
        "[{\"collection\":\"posts\",\"field\":\"author\",\"related_collection\":\"authors\","
        "\"schema\":{\"on_delete\":\"SET NULL\"}},"
        "{\"collection\":\"posts\",\"field\":\"editor\",\"related_collection\":\"directus_users\","
        "\"schema\":{\"on_delete\":\"SET NULL\"}}]");
    cJSON *same = cJSON_Parse(
        "[{\"collection\":\"posts\",\"field\":\"author\",\"related_collection\":\"authors\","
        "\"schema\":{\"on_delete\":\"SET NULL\"}},"
        "{\"collection\":\"posts\",\"field\":\"editor\",\"related_collection\":\"directus_users\","
        "\"schema\":{\"on_delete\":\"SET NULL\"}}]");
    cJSON *other = cJSON_Parse(
        "[{\"collection\":\"posts\",\"field\":\"author\",\"related_collection\":\"authors\","
        "\"schema\":{\"on_delete\":\"CASCADE\"}}]");
    struct capture c;
    cap_open(&c);
    struct report r = {.out = c.f};
    assert_int_equal(check_relations(src, same, &cfg, &routes[0], &posts, &r), 0);
    const char *t = cap_text(&c);
    assert_non_null(strstr(t, "ok: \"posts.author\" is a many-to-one to \"authors\" on a and b "
                              "alike (on delete SET NULL)"));
    assert_non_null(strstr(t, "warning: route a -> b: \"posts.editor\" points at "
                              "\"directus_users\", which no route carries"));
    assert_null(strstr(t, "\"posts.author\" points at"));
    cap_close(&c);
    cap_open(&c);
    r = (struct report){.out = c.f};
    assert_int_equal(check_relations(src, other, &cfg, &routes[0], &posts, &r), 2);
    t = cap_text(&c);
    assert_non_null(strstr(t, "problem: route a -> b: \"posts.author\" deletes children's link "
                              "with \"SET NULL\" on a and \"CASCADE\" on b"));
    assert_non_null(strstr(t, "problem: route a -> b: \"posts.editor\" is a many-to-one to "
                              "\"directus_users\" on a but not on b"));
    cap_close(&c);
    cJSON_Delete(src);
    cJSON_Delete(same);
    cJSON_Delete(other);
}

/* verify (and the producer's row images) compare values as Directus gives them: a number and its
 * text are the same value. */
static void verify_compares_values(void **state)
{
    (void)state;
    cJSON *n = cJSON_CreateNumber(12.5), *t = cJSON_CreateString("12.5"),
          *u = cJSON_CreateString("12.50x"), *o1 = cJSON_Parse("{\"a\":[1,2]}"),
          *o2 = cJSON_Parse("{\"a\":[1,2]}"), *nul = cJSON_CreateNull();
    assert_true(util_json_same(n, t));
    assert_true(util_json_same(t, n));
    assert_false(util_json_same(n, u));
    assert_true(util_json_same(o1, o2));
    assert_false(util_json_same(nul, t));
    cJSON *all[] = {n, t, u, o1, o2, nul};
    for (size_t i = 0; i < 6; i++)
        cJSON_Delete(all[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fields_missing_and_aliases_are_found),
        cmocka_unit_test(all_fields_present_is_no_finding),
        cmocka_unit_test(permissions_missing_actions_and_fields_are_found),
        cmocka_unit_test(a_collection_absent_from_permissions_lacks_everything),
        cmocka_unit_test(status_table_and_lag),
        cmocka_unit_test(relations_are_compared),
        cmocka_unit_test(verify_compares_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
