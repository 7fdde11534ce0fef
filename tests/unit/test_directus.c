/* directus: every answer class (outage, server error, refusals, a token refused, a 2xx that is
 * not Directus's JSON, no answer at all), the ping and the rule after a 5xx, /users/me,
 * /policies/me/globals and /fields parsed from answers shaped as Directus 12 sends them, and
 * the blocking helpers (and report_directus) against a loopback server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "directus.h"
#include "report.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* An answer as http_finish leaves it: status, Directus error code and message, class. body is
 * not copied (the caller keeps it alive; never freed here). */
static struct http_response answer(CURLcode curl, long status, const char *code, const char *body)
{
    struct http_response r;
    memset(&r, 0, sizeof(r));
    r.curl = curl;
    r.status = curl == CURLE_OK ? status : 0;
    r.retry_after_s = -1;
    r.body = (char *)(uintptr_t)body;
    r.len = body ? strlen(body) : 0;
    snprintf(r.code, sizeof(r.code), "%s", code ? code : "");
    if (curl != CURLE_OK)
        snprintf(r.message, sizeof(r.message), "%s", curl_easy_strerror(curl));
    else if (status >= 300 &&
             http_parse_error(body, r.len, r.code, sizeof(r.code), r.message, sizeof(r.message)))
        snprintf(r.message, sizeof(r.message), "HTTP %ld with a non-Directus body", status);
    r.klass = http_classify(curl, r.status, r.code);
    return r;
}

#define ERR(code, msg)                                                                             \
    "{\"errors\":[{\"message\":\"" msg "\",\"extensions\":{\"code\":\"" code "\"}}]}"

static const char e401[] = ERR("INVALID_CREDENTIALS", "Invalid user credentials.");
static const char e403[] = ERR("FORBIDDEN", "You don't have permission to access this.");
static const char e_dup[] =
    ERR("RECORD_NOT_UNIQUE", "Value \\\"1\\\" for field \\\"id\\\" in collection \\\"articles\\\" "
                             "has to be unique.");
static const char e_payload[] =
    ERR("INVALID_PAYLOAD", "Invalid payload. \\\"title\\\" is required.");
static const char e500[] = ERR("INTERNAL_SERVER_ERROR", "An unexpected error occurred.");
static const char e503[] = ERR("SERVICE_UNAVAILABLE", "Under pressure");
static const char e429[] = ERR("REQUESTS_EXCEEDED", "Too many requests, retry after 1s.");
static const char proxy_page[] = "<html><body><h1>502 Bad Gateway</h1></body></html>";
static const char maintenance[] = "<html><body>Down for maintenance</body></html>";

static void classifies_every_answer(void **state)
{
    (void)state;
    struct {
        CURLcode curl;
        long status;
        const char *code;
        const char *body;
        bool json;
        enum directus_answer want;
    } cases[] = {
        {CURLE_OK, 200, NULL, "{\"data\":[{\"id\":1}]}", true, DIRECTUS_OK},
        {CURLE_OK, 200, NULL, "{\"data\":null}", true, DIRECTUS_OK},
        {CURLE_OK, 204, NULL, NULL, true, DIRECTUS_OK}, /* an admin's DELETE of a missing item */
        {CURLE_OK, 200, NULL, "", true, DIRECTUS_OK},
        {CURLE_OK, 200, NULL, maintenance, true, DIRECTUS_NOT_DIRECTUS},
        {CURLE_OK, 200, NULL, "[1,2]", true, DIRECTUS_NOT_DIRECTUS},
        {CURLE_OK, 200, NULL, "{\"items\":[]}", true, DIRECTUS_NOT_DIRECTUS},
        {CURLE_OK, 200, NULL, "pong", false, DIRECTUS_OK},
        {CURLE_OK, 200, NULL, maintenance, false, DIRECTUS_OK}, /* the ping says the rest */
        {CURLE_COULDNT_CONNECT, 0, NULL, NULL, true, DIRECTUS_OUTAGE},
        {CURLE_OPERATION_TIMEDOUT, 0, NULL, NULL, true, DIRECTUS_OUTAGE},
        {CURLE_RECV_ERROR, 0, NULL, NULL, true, DIRECTUS_OUTAGE},
        {CURLE_OK, 408, NULL, NULL, true, DIRECTUS_OUTAGE},
        {CURLE_OK, 429, "REQUESTS_EXCEEDED", e429, true, DIRECTUS_OUTAGE},
        {CURLE_OK, 400, "REQUESTS_EXCEEDED", e429, true, DIRECTUS_OUTAGE},
        {CURLE_OK, 502, NULL, proxy_page, true, DIRECTUS_OUTAGE},
        {CURLE_OK, 503, "SERVICE_UNAVAILABLE", e503, true, DIRECTUS_OUTAGE},
        {CURLE_OK, 504, NULL, NULL, true, DIRECTUS_OUTAGE},
        {CURLE_OK, 401, "INVALID_CREDENTIALS", e401, true, DIRECTUS_AUTH},
        {CURLE_OK, 401, "TOKEN_EXPIRED", ERR("TOKEN_EXPIRED", "Token expired."), true,
         DIRECTUS_AUTH},
        {CURLE_OK, 500, "INTERNAL_SERVER_ERROR", e500, true, DIRECTUS_SERVER_ERROR},
        {CURLE_OK, 501, NULL, NULL, true, DIRECTUS_SERVER_ERROR},
        {CURLE_OK, 403, "FORBIDDEN", e403, true, DIRECTUS_FORBIDDEN},
        {CURLE_OK, 400, "RECORD_NOT_UNIQUE", e_dup, true, DIRECTUS_DUPLICATE},
        {CURLE_OK, 400, "INVALID_PAYLOAD", e_payload, true, DIRECTUS_REFUSED},
        {CURLE_OK, 400, "VALUE_TOO_LONG", ERR("VALUE_TOO_LONG", "Value is too long."), true,
         DIRECTUS_REFUSED},
        {CURLE_OK, 400, "INVALID_FOREIGN_KEY", ERR("INVALID_FOREIGN_KEY", "Invalid foreign key."),
         true, DIRECTUS_REFUSED},
        {CURLE_OK, 404, "ROUTE_NOT_FOUND", ERR("ROUTE_NOT_FOUND", "Route /x doesn't exist."), true,
         DIRECTUS_REFUSED},
        {CURLE_OK, 413, NULL, NULL, true, DIRECTUS_REFUSED},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct http_response r =
            answer(cases[i].curl, cases[i].status, cases[i].code, cases[i].body);
        enum directus_answer got = directus_classify(&r, cases[i].json);
        if (got != cases[i].want)
            fail_msg("case %zu: curl=%d status=%ld code=%s: got %s, want %s", i, (int)cases[i].curl,
                     cases[i].status, cases[i].code ? cases[i].code : "-",
                     directus_answer_name(got), directus_answer_name(cases[i].want));
    }
}

static void no_answer_is_the_zero_value_and_an_outage(void **state)
{
    (void)state;
    struct http_response r;
    memset(&r, 0, sizeof(r));
    assert_int_equal(r.klass, HTTP_NONE);
    assert_int_equal(directus_classify(&r, true), DIRECTUS_NONE);
    assert_int_equal(directus_classify(&r, false), DIRECTUS_NONE);
    assert_false(directus_ping_ok(&r));
    assert_int_equal(directus_fault_after_5xx(&r), DIRECTUS_FAULT_OUTAGE);
    struct directus_user u;
    assert_int_equal(directus_user_parse(&r, &u), -1);
    assert_int_equal(directus_admin_parse(&r), -1);
    struct directus_fields f;
    assert_int_equal(directus_fields_parse(&r, &f, NULL, 0), -1);
    assert_int_equal(f.n, 0);
    char d[128];
    directus_describe(&r, d, sizeof(d));
    assert_string_equal(d, "no answer");
}

static void outages_are_the_answers_retried_without_limit(void **state)
{
    (void)state;
    assert_true(directus_is_outage(DIRECTUS_NONE));
    assert_true(directus_is_outage(DIRECTUS_OUTAGE));
    assert_true(directus_is_outage(DIRECTUS_NOT_DIRECTUS));
    assert_true(directus_is_outage(DIRECTUS_AUTH)); /* fix the token, lose nothing */
    assert_false(directus_is_outage(DIRECTUS_OK));
    assert_false(directus_is_outage(DIRECTUS_SERVER_ERROR)); /* a ping decides */
    assert_false(directus_is_outage(DIRECTUS_FORBIDDEN));
    assert_false(directus_is_outage(DIRECTUS_DUPLICATE));
    assert_false(directus_is_outage(DIRECTUS_REFUSED));
    assert_string_equal(directus_answer_name(DIRECTUS_NONE), "none");
    assert_string_equal(directus_answer_name(DIRECTUS_NOT_DIRECTUS), "not_directus");
    assert_string_equal(directus_answer_name(DIRECTUS_REFUSED), "refused");
    assert_string_equal(directus_answer_name((enum directus_answer)99), "?");
}

static void describes_answers_in_one_line(void **state)
{
    (void)state;
    char d[256];
    struct http_response r = answer(CURLE_OK, 401, "INVALID_CREDENTIALS", e401);
    directus_describe(&r, d, sizeof(d));
    assert_string_equal(d, "HTTP 401 INVALID_CREDENTIALS: Invalid user credentials.");
    r = answer(CURLE_COULDNT_CONNECT, 0, NULL, NULL);
    directus_describe(&r, d, sizeof(d));
    assert_string_equal(d, "no answer: Couldn't connect to server");
    r = answer(CURLE_OK, 200, NULL, maintenance);
    directus_describe(&r, d, sizeof(d));
    assert_string_equal(d, "HTTP 200 with a body that is not Directus's JSON");
    r = answer(CURLE_OK, 502, NULL, proxy_page);
    directus_describe(&r, d, sizeof(d));
    assert_string_equal(d, "HTTP 502 with a non-Directus body");
    r = answer(CURLE_OK, 500, NULL, "{\"errors\":[{\"message\":\"boom\"}]}");
    directus_describe(&r, d, sizeof(d));
    assert_string_equal(d, "HTTP 500: boom");
    char small[8];
    directus_describe(&r, small, sizeof(small));
    assert_string_equal(small, "HTTP 50");
}

static void ping_is_pong_from_directus(void **state)
{
    (void)state;
    struct http_response r = answer(CURLE_OK, 200, NULL, "pong");
    assert_true(directus_ping_ok(&r));
    assert_int_equal(directus_fault_after_5xx(&r), DIRECTUS_FAULT_ITEM);
    r = answer(CURLE_OK, 200, NULL, maintenance); /* a proxy answering for it */
    assert_false(directus_ping_ok(&r));
    assert_int_equal(directus_fault_after_5xx(&r), DIRECTUS_FAULT_OUTAGE);
    r = answer(CURLE_OK, 200, NULL, NULL);
    assert_false(directus_ping_ok(&r));
    r = answer(CURLE_OK, 503, "SERVICE_UNAVAILABLE", e503);
    assert_false(directus_ping_ok(&r));
    assert_int_equal(directus_fault_after_5xx(&r), DIRECTUS_FAULT_OUTAGE);
    r = answer(CURLE_OK, 500, "INTERNAL_SERVER_ERROR", e500);
    assert_int_equal(directus_fault_after_5xx(&r), DIRECTUS_FAULT_OUTAGE);
    r = answer(CURLE_OPERATION_TIMEDOUT, 0, NULL, NULL);
    assert_int_equal(directus_fault_after_5xx(&r), DIRECTUS_FAULT_OUTAGE);
    assert_string_equal(DIRECTUS_PING_PATH, "/server/ping");
}

static void an_item_is_given_up_after_its_attempts(void **state)
{
    (void)state;
    int failures = 0;
    assert_false(directus_item_give_up(&failures, 3));
    assert_false(directus_item_give_up(&failures, 3));
    assert_true(directus_item_give_up(&failures, 3));
    assert_int_equal(failures, 3);
    failures = 0;
    assert_true(directus_item_give_up(&failures, 1)); /* item_attempts 1: no retry */
}

static void users_me_gives_the_id(void **state)
{
    (void)state;
    struct directus_user u;
    struct http_response r =
        answer(CURLE_OK, 200, NULL, "{\"data\":{\"id\":\"1d0f6c1e-3a8b-4d2e-9f55-2b7c1a9e0d42\"}}");
    assert_int_equal(directus_user_parse(&r, &u), 0);
    assert_string_equal(u.id, "1d0f6c1e-3a8b-4d2e-9f55-2b7c1a9e0d42");
    r = answer(CURLE_OK, 200, NULL, "{\"data\":{}}");
    assert_int_equal(directus_user_parse(&r, &u), -1);
    assert_string_equal(u.id, "");
    r = answer(CURLE_OK, 200, NULL, "{\"data\":{\"id\":42}}");
    assert_int_equal(directus_user_parse(&r, &u), -1);
    r = answer(CURLE_OK, 200, NULL, "{\"data\":{\"id\":\"\"}}");
    assert_int_equal(directus_user_parse(&r, &u), -1);
    char longid[200] = "{\"data\":{\"id\":\"";
    memset(longid + strlen(longid), 'a', 100);
    strcat(longid, "\"}}");
    r = answer(CURLE_OK, 200, NULL, longid);
    assert_int_equal(directus_user_parse(&r, &u), -1);
    r = answer(CURLE_OK, 200, NULL, maintenance);
    assert_int_equal(directus_user_parse(&r, &u), -1);
    r = answer(CURLE_OK, 401, "INVALID_CREDENTIALS", e401);
    assert_int_equal(directus_user_parse(&r, &u), -1);
    assert_string_equal(DIRECTUS_USERS_ME_PATH, "/users/me?fields=id");
}

static void policies_me_says_admin_or_not(void **state)
{
    (void)state;
    struct http_response r =
        answer(CURLE_OK, 200, NULL,
               "{\"data\":{\"app_access\":true,\"admin_access\":true,\"enforce_tfa\":false}}");
    assert_int_equal(directus_admin_parse(&r), 1);
    r = answer(CURLE_OK, 200, NULL,
               "{\"data\":{\"app_access\":false,\"admin_access\":false,\"enforce_tfa\":false}}");
    assert_int_equal(directus_admin_parse(&r), 0);
    r = answer(CURLE_OK, 200, NULL, "{\"data\":{\"app_access\":false}}");
    assert_int_equal(directus_admin_parse(&r), -1);
    r = answer(CURLE_OK, 403, "FORBIDDEN", e403);
    assert_int_equal(directus_admin_parse(&r), -1);
    r = answer(CURLE_OK, 200, NULL, maintenance);
    assert_int_equal(directus_admin_parse(&r), -1);
}

/* GET /server/info: the version of Directus 11 and 12 (as their sync users see it), and answers
 * without one; what check makes of each. */
static void server_info_version(void **state)
{
    (void)state;
    char v[64];
    struct http_response r =
        answer(CURLE_OK, 200, NULL,
               "{\"data\":{\"project\":{\"project_name\":\"D\"},\"version\":\"12.4.1\"}}");
    assert_int_equal(directus_version_parse(&r, v, sizeof(v)), 12);
    assert_string_equal(v, "12.4.1");
    r = answer(CURLE_OK, 200, NULL, "{\"data\":{\"version\":\"11.17.4\"}}");
    assert_int_equal(directus_version_parse(&r, v, sizeof(v)), 11);
    r = answer(CURLE_OK, 200, NULL, "{\"data\":{\"project\":{}}}");
    assert_int_equal(directus_version_parse(&r, v, sizeof(v)), -1);
    assert_string_equal(v, "");
    r = answer(CURLE_OK, 200, NULL, "{\"data\":{\"version\":\"next\"}}");
    assert_int_equal(directus_version_parse(&r, v, sizeof(v)), -1);
    r = answer(CURLE_OK, 403, "FORBIDDEN", e403);
    assert_int_equal(directus_version_parse(&r, v, sizeof(v)), -1);

    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    struct report rep = {.out = f};
    report_directus_version(&rep, "http://d10", 10, "10.13.1");
    report_directus_version(&rep, "http://d11", 11, "11.17.4");
    report_directus_version(&rep, "http://d13", 13, "13.0.0");
    report_directus_version(&rep, "http://d", -1, "");
    fclose(f);
    assert_int_equal(rep.problems, 1);
    assert_non_null(strstr(out,
                           "problem: directus http://d10 is version 10.13.1, which dxsync does "
                           "not support: it runs on Directus 11 and 12"));
    assert_non_null(
        strstr(out, "ok: directus http://d11 is version 11.17.4 (supported: 11 and 12)"));
    assert_non_null(strstr(out, "warning: directus http://d13 is version 13.0.0, newer than"));
    assert_non_null(strstr(out, "warning: directus http://d does not say its version"));
    free(out);
}

/* GET /fields/articles on Directus 12, trimmed of nothing that matters: a uuid primary key, plain
 * columns, a many-to-one key, every kind of alias, a column Directus holds no meta for, and an
 * entry without a field name. */
static const char fields_answer[] =
    "{\"data\":["
    "{\"collection\":\"articles\",\"field\":\"id\",\"type\":\"uuid\",\"schema\":{\"name\":\"id\","
    "\"table\":\"articles\",\"schema\":\"public\",\"data_type\":\"uuid\",\"is_nullable\":false,"
    "\"generation_expression\":null,\"default_value\":null,\"is_generated\":false,\"max_length\":"
    "null,\"comment\":null,\"numeric_precision\":null,\"numeric_scale\":null,\"is_unique\":true,"
    "\"is_indexed\":false,\"is_primary_key\":true,\"has_auto_increment\":false,"
    "\"foreign_key_schema\":null,\"foreign_key_table\":null,\"foreign_key_column\":null},"
    "\"meta\":{\"id\":1,\"collection\":\"articles\",\"field\":\"id\",\"special\":[\"uuid\"],"
    "\"interface\":\"input\",\"options\":null,\"display\":null,\"display_options\":null,"
    "\"readonly\":true,\"hidden\":true,\"sort\":1,\"width\":\"full\",\"translations\":null,"
    "\"note\":null,\"conditions\":null,\"required\":false,\"group\":null,\"validation\":null,"
    "\"validation_message\":null,\"searchable\":true}},"
    "{\"collection\":\"articles\",\"field\":\"title\",\"type\":\"string\",\"schema\":{\"name\":"
    "\"title\",\"data_type\":\"character varying\",\"max_length\":255,\"is_primary_key\":false},"
    "\"meta\":{\"id\":2,\"field\":\"title\",\"special\":null,\"interface\":\"input\"}},"
    "{\"collection\":\"articles\",\"field\":\"rating\",\"type\":\"integer\",\"schema\":{\"name\":"
    "\"rating\",\"data_type\":\"integer\",\"is_primary_key\":false},\"meta\":{\"id\":3,"
    "\"special\":null}},"
    "{\"collection\":\"articles\",\"field\":\"author\",\"type\":\"uuid\",\"schema\":{\"name\":"
    "\"author\",\"data_type\":\"uuid\",\"is_primary_key\":false,\"foreign_key_table\":"
    "\"directus_users\",\"foreign_key_column\":\"id\"},\"meta\":{\"special\":[\"m2o\"],"
    "\"interface\":\"select-dropdown-m2o\"}},"
    "{\"collection\":\"articles\",\"field\":\"comments\",\"type\":\"alias\",\"schema\":null,"
    "\"meta\":{\"special\":[\"o2m\"],\"interface\":\"list-o2m\"}},"
    "{\"collection\":\"articles\",\"field\":\"tags\",\"type\":\"alias\",\"schema\":null,"
    "\"meta\":{\"special\":[\"m2m\"],\"interface\":\"list-m2m\"}},"
    "{\"collection\":\"articles\",\"field\":\"blocks\",\"type\":\"alias\",\"schema\":null,"
    "\"meta\":{\"special\":[\"m2a\"],\"interface\":\"list-m2a\"}},"
    "{\"collection\":\"articles\",\"field\":\"translations\",\"type\":\"alias\",\"schema\":null,"
    "\"meta\":{\"special\":[\"translations\"],\"interface\":\"translations\"}},"
    "{\"collection\":\"articles\",\"field\":\"divider\",\"type\":\"alias\",\"schema\":null,"
    "\"meta\":{\"special\":[\"alias\",\"no-data\"],\"interface\":\"presentation-divider\"}},"
    "{\"collection\":\"articles\",\"field\":\"legacy\",\"type\":\"text\",\"schema\":{\"name\":"
    "\"legacy\",\"data_type\":\"text\",\"is_primary_key\":false},\"meta\":null},"
    "{\"collection\":\"articles\",\"type\":\"string\"}"
    "]}";

static void fields_give_names_kinds_and_the_primary_key(void **state)
{
    (void)state;
    struct http_response r = answer(CURLE_OK, 200, NULL, fields_answer);
    struct directus_fields f;
    assert_int_equal(directus_fields_parse(&r, &f, NULL, 0), 0);
    assert_int_equal(f.n, 10);
    assert_non_null(f.pk);
    assert_string_equal(f.pk, "id");
    static const struct {
        const char *name, *type;
        enum directus_field_kind kind;
    } want[] = {
        {"id", "uuid", DIRECTUS_FIELD_COLUMN},
        {"title", "string", DIRECTUS_FIELD_COLUMN},
        {"rating", "integer", DIRECTUS_FIELD_COLUMN},
        {"author", "uuid", DIRECTUS_FIELD_COLUMN}, /* a many-to-one key is a column */
        {"comments", "alias", DIRECTUS_FIELD_O2M},
        {"tags", "alias", DIRECTUS_FIELD_M2M},
        {"blocks", "alias", DIRECTUS_FIELD_M2A},
        {"translations", "alias", DIRECTUS_FIELD_TRANSLATIONS},
        {"divider", "alias", DIRECTUS_FIELD_ALIAS},
        {"legacy", "text", DIRECTUS_FIELD_COLUMN},
    };
    for (size_t i = 0; i < f.n; i++) {
        assert_string_equal(f.v[i].name, want[i].name);
        assert_string_equal(f.v[i].type, want[i].type);
        assert_int_equal(f.v[i].kind, want[i].kind);
        assert_int_equal(f.v[i].primary_key, i == 0);
    }
    assert_ptr_equal(directus_fields_find(&f, "tags"), &f.v[5]);
    assert_null(directus_fields_find(&f, "subtitle"));
    assert_string_equal(directus_field_kind_name(f.v[4].kind), "a one-to-many alias");
    assert_string_equal(directus_field_kind_name(f.v[5].kind), "a many-to-many alias");
    assert_string_equal(directus_field_kind_name(f.v[8].kind), "an alias");
    assert_string_equal(directus_field_kind_name(DIRECTUS_FIELD_COLUMN), "a column");
    directus_fields_free(&f);
    assert_int_equal(f.n, 0);
    assert_null(f.pk);
    directus_fields_free(&f); /* twice is harmless */
}

static void fields_without_a_primary_key_or_any_field(void **state)
{
    (void)state;
    struct directus_fields f;
    struct http_response r =
        answer(CURLE_OK, 200, NULL,
               "{\"data\":[{\"collection\":\"counters\",\"field\":\"name\",\"type\":\"string\","
               "\"schema\":{\"is_primary_key\":false},\"meta\":null}]}");
    assert_int_equal(directus_fields_parse(&r, &f, NULL, 0), 0);
    assert_int_equal(f.n, 1);
    assert_null(f.pk);
    directus_fields_free(&f);
    r = answer(CURLE_OK, 200, NULL, "{\"data\":[]}");
    assert_int_equal(directus_fields_parse(&r, &f, NULL, 0), 0);
    assert_int_equal(f.n, 0);
    assert_null(f.pk);
    directus_fields_free(&f);
}

static void fields_refuse_what_is_not_a_field_list(void **state)
{
    (void)state;
    struct directus_fields f;
    char err[128];
    struct http_response r = answer(CURLE_OK, 403, "FORBIDDEN", e403);
    assert_int_equal(directus_fields_parse(&r, &f, err, sizeof(err)), -1);
    assert_string_equal(err, "not a field list (HTTP 403)");
    assert_int_equal(f.n, 0);
    r = answer(CURLE_OK, 200, NULL, "{\"data\":null}");
    assert_int_equal(directus_fields_parse(&r, &f, err, sizeof(err)), -1);
    r = answer(CURLE_OK, 200, NULL, "{\"data\":{\"field\":\"id\"}}");
    assert_int_equal(directus_fields_parse(&r, &f, err, sizeof(err)), -1);
    r = answer(CURLE_OK, 200, NULL, maintenance);
    assert_int_equal(directus_fields_parse(&r, &f, err, sizeof(err)), -1);
    r = answer(CURLE_OK, 200, NULL, "{\"data\":[{\"field\":\"id\"");
    assert_int_equal(directus_fields_parse(&r, &f, err, sizeof(err)), -1);
    r = answer(CURLE_OK, 500, "INTERNAL_SERVER_ERROR", e500);
    assert_int_equal(directus_fields_parse(&r, &f, err, sizeof(err)), -1);
    assert_int_equal(f.n, 0);
    assert_null(f.v);
}

static void fields_path_escapes_and_checks_its_room(void **state)
{
    (void)state;
    char p[32];
    assert_int_equal(directus_fields_path("articles", p, sizeof(p)), 0);
    assert_string_equal(p, "/fields/articles");
    assert_int_equal(directus_fields_path("my things/x", p, sizeof(p)), 0);
    assert_string_equal(p, "/fields/my%20things%2Fx");
    assert_int_equal(directus_fields_path("directus_files", p, sizeof(p)), 0);
    assert_string_equal(p, "/fields/directus_files");
    assert_int_equal(directus_fields_path("abcdefghijklmnopqrstuvwxyz", p, sizeof(p)), -1);
    assert_int_equal(directus_fields_path("a", p, 8), -1);
    assert_int_equal(directus_fields_path("a", p, 10), 0);
    assert_string_equal(p, "/fields/a");
    assert_int_equal(directus_fields_path("a", p, 9), -1);
}

/* ---- the blocking helpers, against a loopback server ---- */

#define MAX_REPLIES 4

/* Answers one connection per reply, in order ("Connection: close"), and records the requests. */
struct server {
    int fd;
    int port;
    const char *replies[MAX_REPLIES];
    size_t nreplies;
    char requests[MAX_REPLIES][1024];
    pthread_t t;
};

static void *serve(void *arg)
{
    struct server *s = arg;
    for (size_t i = 0; i < s->nreplies; i++) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        size_t n = 0;
        ssize_t got;
        char *req = s->requests[i];
        while (n < sizeof(s->requests[i]) - 1 &&
               (got = read(c, req + n, sizeof(s->requests[i]) - 1 - n)) > 0) {
            n += (size_t)got;
            req[n] = '\0';
            if (strstr(req, "\r\n\r\n"))
                break; /* GET only: no body */
        }
        ssize_t w = write(c, s->replies[i], strlen(s->replies[i]));
        (void)w;
        close(c);
    }
    return NULL;
}

static struct http_client *serve_replies(struct server *s, const char *const *replies, size_t n)
{
    memset(s, 0, sizeof(*s));
    assert_true(n <= MAX_REPLIES);
    for (size_t i = 0; i < n; i++)
        s->replies[i] = replies[i];
    s->nreplies = n;
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->fd, 4), 0);
    socklen_t l = sizeof(a);
    getsockname(s->fd, (struct sockaddr *)&a, &l);
    s->port = ntohs(a.sin_port);
    pthread_create(&s->t, NULL, serve, s);
    char url[64], err[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", s->port);
    struct http_client *c = http_client_new(url, "s3cret-token", 5000, err, sizeof(err));
    assert_non_null(c);
    return c;
}

static void server_done(struct server *s, struct http_client *c)
{
    pthread_join(s->t, NULL);
    close(s->fd);
    http_client_free(c);
}

/* An HTTP/1.1 reply with a JSON (or text) body. */
#define REPLY(status, type, body)                                                                  \
    "HTTP/1.1 " status "\r\nContent-Type: " type "\r\nConnection: close\r\n\r\n" body
#define JSON(status, body) REPLY(status, "application/json; charset=utf-8", body)
#define PONG               REPLY("200 OK", "text/html; charset=utf-8", "pong")

static void blocking_ping(void **state)
{
    (void)state;
    struct server s;
    char err[256];
    const char *r1[] = {PONG};
    struct http_client *c = serve_replies(&s, r1, 1);
    assert_int_equal(directus_ping(c, err, sizeof(err)), 0);
    server_done(&s, c);
    assert_non_null(strstr(s.requests[0], "GET /server/ping HTTP/1.1"));

    const char *r2[] = {REPLY("200 OK", "text/html", "<html>maintenance</html>")};
    c = serve_replies(&s, r2, 1);
    assert_int_equal(directus_ping(c, err, sizeof(err)), -1);
    assert_string_equal(err, "HTTP 200 to /server/ping without \"pong\": not Directus");
    server_done(&s, c);

    const char *r3[] = {JSON("503 Service Unavailable",
                             "{\"errors\":[{\"message\":\"Under pressure\",\"extensions\":{"
                             "\"code\":\"SERVICE_UNAVAILABLE\"}}]}")};
    c = serve_replies(&s, r3, 1);
    assert_int_equal(directus_ping(c, err, sizeof(err)), -1);
    assert_string_equal(err, "HTTP 503 SERVICE_UNAVAILABLE: Under pressure");
    server_done(&s, c);
}

static void blocking_user_and_admin(void **state)
{
    (void)state;
    struct server s;
    struct directus_user u;
    char err[256];
    const char *r1[] = {JSON("200 OK", "{\"data\":{\"id\":\"5b3c-uuid\"}}"),
                        JSON("200 OK", "{\"data\":{\"app_access\":false,\"admin_access\":false,"
                                       "\"enforce_tfa\":false}}")};
    struct http_client *c = serve_replies(&s, r1, 2);
    assert_int_equal(directus_user_fetch(c, &u, err, sizeof(err)), DIRECTUS_OK);
    assert_string_equal(u.id, "5b3c-uuid");
    assert_int_equal(directus_admin_fetch(c), 0);
    server_done(&s, c);
    assert_non_null(strstr(s.requests[0], "GET /users/me?fields=id HTTP/1.1"));
    assert_non_null(strstr(s.requests[0], "Authorization: Bearer s3cret-token"));
    assert_non_null(strstr(s.requests[1], "GET /policies/me/globals HTTP/1.1"));

    const char *r2[] = {
        JSON("401 Unauthorized", "{\"errors\":[{\"message\":\"Invalid user credentials.\","
                                 "\"extensions\":{\"code\":\"INVALID_CREDENTIALS\"}}]}"),
        JSON("403 Forbidden", "{\"errors\":[{\"message\":\"You don't have permission to access "
                              "this.\",\"extensions\":{\"code\":\"FORBIDDEN\"}}]}"),
        JSON("200 OK", "{\"data\":{}}"), REPLY("200 OK", "text/html", "<html>hello</html>")};
    c = serve_replies(&s, r2, 4);
    assert_int_equal(directus_user_fetch(c, &u, err, sizeof(err)), DIRECTUS_AUTH);
    assert_string_equal(err, "GET /users/me: HTTP 401 INVALID_CREDENTIALS: Invalid user "
                             "credentials.");
    assert_int_equal(directus_user_fetch(c, &u, err, sizeof(err)), DIRECTUS_AUTH);
    assert_int_equal(directus_user_fetch(c, &u, err, sizeof(err)), DIRECTUS_REFUSED);
    assert_string_equal(err, "GET /users/me answered HTTP 200 without a user id");
    assert_int_equal(directus_user_fetch(c, &u, err, sizeof(err)), DIRECTUS_NOT_DIRECTUS);
    assert_string_equal(u.id, "");
    server_done(&s, c);
}

static void blocking_fields(void **state)
{
    (void)state;
    struct server s;
    struct directus_fields f;
    char err[256];
    const char *r[] = {
        JSON("200 OK", "{\"data\":[{\"collection\":\"my things\",\"field\":\"uid\",\"type\":"
                       "\"integer\",\"schema\":{\"is_primary_key\":true,\"has_auto_increment\":"
                       "true},\"meta\":null}]}"),
        JSON("403 Forbidden", "{\"errors\":[{\"message\":\"You don't have permission to access "
                              "this.\",\"extensions\":{\"code\":\"FORBIDDEN\"}}]}"),
        JSON("200 OK", "{\"data\":null}")};
    struct http_client *c = serve_replies(&s, r, 3);
    assert_int_equal(directus_fields_fetch(c, "my things", &f, err, sizeof(err)), DIRECTUS_OK);
    assert_string_equal(f.pk, "uid");
    directus_fields_free(&f);
    assert_int_equal(directus_fields_fetch(c, "nosuch", &f, err, sizeof(err)), DIRECTUS_FORBIDDEN);
    assert_int_equal(f.n, 0);
    assert_int_equal(directus_fields_fetch(c, "x", &f, err, sizeof(err)), DIRECTUS_NOT_DIRECTUS);
    assert_string_equal(err, "GET /fields/x: not a field list (HTTP 200)");
    server_done(&s, c);
    assert_non_null(strstr(s.requests[0], "GET /fields/my%20things HTTP/1.1"));
}

/* report_directus: the Directus lines both check commands print. */
static void report_of_a_directus(void **state)
{
    (void)state;
    struct server s;
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    struct report rep = {.out = out};
    const char *r[] = {PONG, JSON("200 OK", "{\"data\":{\"id\":\"5b3c-uuid\"}}"),
                       JSON("200 OK", "{\"data\":{\"version\":\"11.17.4\"}}"),
                       JSON("200 OK", "{\"data\":{\"app_access\":true,\"admin_access\":true,"
                                      "\"enforce_tfa\":false}}")};
    struct http_client *c = serve_replies(&s, r, 4);
    assert_true(report_directus(&rep, c, "b", "http://b"));
    server_done(&s, c);
    fflush(out);
    assert_string_equal(buf, "ok: directus http://b answers\n"
                             "ok: the token of b is valid (user 5b3c-uuid)\n"
                             "ok: directus http://b is version 11.17.4 (supported: 11 and 12)\n"
                             "problem: the token of b belongs to an admin: give dxsync a user of "
                             "its own with a non-admin policy (least privilege; an admin also "
                             "gets unknown fields silently dropped)\n");
    assert_int_equal(rep.problems, 1);
    fclose(out);
    free(buf);

    buf = NULL;
    out = open_memstream(&buf, &len);
    rep = (struct report){.out = out};

    const char *r2[] = {PONG, JSON("401 Unauthorized",
                                   "{\"errors\":[{\"message\":\"Invalid user credentials.\","
                                   "\"extensions\":{\"code\":\"INVALID_CREDENTIALS\"}}]}")};
    c = serve_replies(&s, r2, 2);
    assert_false(report_directus(&rep, c, "b", "http://b"));
    server_done(&s, c);
    fflush(out);
    assert_string_equal(buf, "ok: directus http://b answers\n"
                             "problem: instances[b].token is not valid on http://b (GET /users/me: "
                             "HTTP 401 INVALID_CREDENTIALS: Invalid user credentials.)\n");
    assert_int_equal(rep.problems, 1);
    fclose(out);
    free(buf);

    buf = NULL;
    out = open_memstream(&buf, &len);
    report_summary(out, 0);
    report_summary(out, 1);
    report_summary(out, 2);
    fclose(out);
    assert_string_equal(buf, "0 problems found\n1 problem found\n2 problems found\n");
    free(buf);
}

/* Which URLs are loopback: plain http to anything else gets a warning (issue 28). */
static void loopback_urls(void **state)
{
    (void)state;
    assert_true(directus_url_loopback("http://127.0.0.1:8055"));
    assert_true(directus_url_loopback("http://localhost/"));
    assert_true(directus_url_loopback("http://127.10.0.3"));
    assert_true(directus_url_loopback("http://[::1]:8055"));
    assert_true(directus_url_loopback("http://user:pw@localhost:1"));
    assert_false(directus_url_loopback("http://localhost.example.com"));
    assert_false(directus_url_loopback("http://127.0.0.1.nip.io"));
    assert_false(directus_url_loopback("http://10.0.0.5:8055"));
    assert_false(directus_url_loopback("http://directus-b:8055"));
    assert_false(directus_url_loopback("http://[::2]"));
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(loopback_urls),
        cmocka_unit_test(classifies_every_answer),
        cmocka_unit_test(no_answer_is_the_zero_value_and_an_outage),
        cmocka_unit_test(outages_are_the_answers_retried_without_limit),
        cmocka_unit_test(describes_answers_in_one_line),
        cmocka_unit_test(ping_is_pong_from_directus),
        cmocka_unit_test(an_item_is_given_up_after_its_attempts),
        cmocka_unit_test(users_me_gives_the_id),
        cmocka_unit_test(policies_me_says_admin_or_not),
        cmocka_unit_test(fields_give_names_kinds_and_the_primary_key),
        cmocka_unit_test(fields_without_a_primary_key_or_any_field),
        cmocka_unit_test(fields_refuse_what_is_not_a_field_list),
        cmocka_unit_test(fields_path_escapes_and_checks_its_room),
        cmocka_unit_test(blocking_ping),
        cmocka_unit_test(blocking_user_and_admin),
        cmocka_unit_test(blocking_fields),
        cmocka_unit_test(report_of_a_directus),
        cmocka_unit_test(server_info_version),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
