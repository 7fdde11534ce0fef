/* Configuration: the valid example of DESIGN.md, defaults, ${ENV}, and every bad input named
 * by the key path and the reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "config.h"
#include "util.h"
#include "log.h"
#include "routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UUID1 "e1e260ff-05b0-4648-aef0-a8adaf64428d"

static const char *const valid =
    "{\"kafka\": {\"brokers\": \"127.0.0.1:9092\", \"topic_prefix\": \"dxsync\","
    " \"partitions\": 6, \"replication_factor\": -1, \"retention_ms\": -1,"
    " \"properties\": {\"security.protocol\": \"plaintext\", \"linger.ms\": 5,"
    " \"enable.ssl.certificate.verification\": true}},"
    " \"instances\": ["
    "  {\"name\": \"a\", \"url\": \"http://127.0.0.1:8055/\", \"token\": \"${DXT_TOKEN_A}\","
    "   \"database\": \"postgresql://postgres:pw-secret@127.0.0.1:5432/directus_a\"},"
    "  {\"name\": \"b\", \"url\": \"https://b.example.com\", \"token\": \"tok-b-1234\","
    "   \"database\": \"host=127.0.0.1 dbname=directus_b\", \"sync_user\": \"" UUID1 "\"}],"
    " \"routes\": ["
    "  {\"from\": \"a\", \"to\": \"b\", \"collections\": ["
    "    {\"collection\": \"articles\", \"fields\": [\"title\", \"body\"]},"
    "    {\"collection\": \"counters\", \"fields\": [\"value\"]}],"
    "   \"notify\": [\"" UUID1 "\"]},"
    "  {\"from\": \"b\", \"to\": \"a\", \"enabled\": false, \"collections\": ["
    "    {\"collection\": \"articles\", \"fields\": [\"title\"]}]}],"
    " \"consumer\": {\"batch_max\": 50, \"linger_ms\": 0, \"request_timeout_ms\": 30000,"
    "   \"retry_notify_after_s\": 60, \"item_attempts\": 5, \"max_in_flight\": 4,"
    "   \"parent_wait_s\": 600},"
    " \"notify\": {\"digest_window_s\": 30}}";

static int setup(void **state)
{
    (void)state;
    setenv("DXT_TOKEN_A", "tok-a-from-env", 1);
    unsetenv("DXT_UNSET");
    return 0;
}

static void loads_the_design_example(void **state)
{
    (void)state;
    struct config cfg;
    char err[512] = "";
    assert_int_equal(config_load_buffer(valid, strlen(valid), &cfg, err, sizeof(err)), 0);
    assert_string_equal(cfg.kafka.brokers, "127.0.0.1:9092");
    assert_int_equal(cfg.kafka.nproperties, 3);
    assert_string_equal(cfg.kafka.properties[1].key, "linger.ms");
    assert_string_equal(cfg.kafka.properties[1].value, "5");
    assert_string_equal(cfg.kafka.properties[2].value, "true");
    assert_int_equal(cfg.ninstances, 2);
    assert_string_equal(cfg.instances[0].token, "tok-a-from-env");
    assert_string_equal(cfg.instances[0].url, "http://127.0.0.1:8055"); /* slash trimmed */
    assert_null(cfg.instances[0].sync_user);
    assert_string_equal(cfg.instances[1].sync_user, UUID1);
    assert_int_equal(cfg.nroutes, 2);
    assert_int_equal(cfg.routes[0].ncollections, 2);
    assert_string_equal(cfg.routes[0].collections[1].fields[0], "value");
    assert_int_equal(cfg.routes[0].nnotify, 1);
    assert_int_equal(cfg.routes[1].nnotify, 0);
    assert_true(cfg.routes[0].enabled); /* the default */
    assert_false(cfg.routes[1].enabled);
    assert_int_equal(cfg.consumer.batch_max, 50);
    assert_int_equal(cfg.consumer.max_in_flight, 4);
    assert_int_equal(cfg.notify.digest_window_s, 30);
    assert_non_null(config_route_find(&cfg, "a", "b"));
    assert_null(config_route_find(&cfg, "a", "a"));
    assert_non_null(config_route_collection(config_route_find(&cfg, "a", "b"), "counters"));

    struct routes_sub *subs;
    size_t n;
    assert_int_equal(routes_into(&cfg, "b", &subs, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 2);
    assert_string_equal(subs[0].topic, "dxsync.a.articles");
    assert_string_equal(subs[1].topic, "dxsync.a.counters");
    assert_ptr_equal(routes_find(subs, n, "dxsync.a.counters"), &subs[1]);
    assert_null(routes_find(subs, n, "dxsync.b.articles"));
    free(subs);
    config_free(&cfg);
}

static void applies_defaults(void **state)
{
    (void)state;
    const char *min = "{\"kafka\": {\"brokers\": \"k:9092\"}, \"instances\": [{\"name\": \"a\","
                      " \"url\": \"http://x\", \"token\": \"t\"}], \"routes\": []}";
    struct config cfg;
    char err[512] = "";
    assert_int_equal(config_load_buffer(min, strlen(min), &cfg, err, sizeof(err)), 0);
    assert_string_equal(cfg.kafka.topic_prefix, "dxsync");
    assert_int_equal(cfg.kafka.partitions, 6);
    assert_int_equal(cfg.kafka.replication_factor, -1);
    assert_int_equal(cfg.kafka.retention_ms, -1);
    assert_int_equal(cfg.consumer.batch_max, 100);
    assert_int_equal(cfg.consumer.linger_ms, 0);
    assert_int_equal(cfg.consumer.request_timeout_ms, 30000);
    assert_int_equal(cfg.consumer.retry_notify_after_s, 60);
    assert_int_equal(cfg.consumer.item_attempts, 5);
    assert_int_equal(cfg.consumer.max_in_flight, 4);
    assert_int_equal(cfg.consumer.parent_wait_s, 600);
    assert_int_equal(cfg.notify.digest_window_s, 60);
    config_free(&cfg);
}

/* Replaces the first occurrence of from in the valid config by to. */
static char *mutate(const char *from, const char *to)
{
    const char *at = strstr(valid, from);
    if (!at)
        fail_msg("test bug: \"%s\" not in the valid config", from);
    size_t n = strlen(valid) - strlen(from) + strlen(to) + 1;
    char *out = malloc(n);
    snprintf(out, n, "%.*s%s%s", (int)(at - valid), valid, to, at + strlen(from));
    return out;
}

struct bad_case {
    const char *from;
    const char *to;
    const char *expect; /* the error must contain this: key path and reason */
};

static const struct bad_case bad_cases[] = {
    /* the status server's TLS and users (web, as web.config) */
    {"\"digest_window_s\": 30}",
     "\"digest_window_s\": 30}, \"web\": {\"basic_auth_users\": {\"prom\": \"hunter2\"}}",
     "web.basic_auth_users.prom: expected a bcrypt hash"},
    {"\"digest_window_s\": 30}",
     "\"digest_window_s\": 30}, \"web\": {\"tls_server_config\": {\"cert_file\": "
     "\"/nonexistent.pem\", \"key_file\": \"/etc/hostname\"}}",
     "web.tls_server_config.cert_file: cannot read \"/nonexistent.pem\""},
    {"\"digest_window_s\": 30}", "\"digest_window_s\": 30}, \"web\": {\"tls\": {}}",
     "web.tls: unknown key"},
    /* HTTPS settings of a Directus (issue 28) */
    {"\"sync_user\": \"" UUID1 "\"}",
     "\"sync_user\": \"" UUID1 "\", \"ca_file\": \"/nonexistent/ca.pem\"}",
     "instances[1].ca_file: cannot read \"/nonexistent/ca.pem\": No such file or directory"},
    {"\"token\": \"${DXT_TOKEN_A}\",",
     "\"token\": \"${DXT_TOKEN_A}\", \"ca_file\": \"/etc/hostname\",",
     "instances[0].ca_file: is for an https URL"},
    {"\"sync_user\": \"" UUID1 "\"}",
     "\"sync_user\": \"" UUID1 "\", \"client_cert\": \"/etc/hostname\"}",
     "instances[1].client_key: client_cert and client_key go together"},
    /* unknown keys */
    {"\"notify\": {\"digest", "\"notfiy\": {}, \"notify\": {\"digest", "notfiy: unknown key"},
    {"\"partitions\": 6", "\"partitions\": 6, \"partition\": 1", "kafka.partition: unknown key"},
    {"\"sync_user\"", "\"syncuser\"", "instances[1].syncuser: unknown key"},
    {"{\"collection\": \"counters\"", "{\"collection\": \"counters\", \"field\": []",
     "routes[0].collections[1].field: unknown key"},
    {"\"batch_max\": 50", "\"batch_max\": 50, \"batch_size\": 1",
     "consumer.batch_size: unknown key"},
    /* wrong types */
    {"\"partitions\": 6", "\"partitions\": \"6\"",
     "kafka.partitions: expected an integer, got a string"},
    {"\"partitions\": 6", "\"partitions\": 6.5", "kafka.partitions: expected an integer"},
    {"\"brokers\": \"127.0.0.1:9092\"", "\"brokers\": [\"x\"]",
     "kafka.brokers: expected a string, got an array"},
    {"\"instances\": [", "\"instances\": {\"x\": 1}, \"i\": [", "unknown key"},
    {"\"fields\": [\"title\", \"body\"]", "\"fields\": \"title\"",
     "routes[0].collections[0].fields: expected an array of strings, got a string"},
    {"\"fields\": [\"title\", \"body\"]", "\"fields\": [\"title\", 3]",
     "routes[0].collections[0].fields[1]: expected a string, got a number"},
    {"\"properties\": {", "\"properties\": {\"x\": null, ",
     "kafka.properties.x: expected a string, number or boolean, got null"},
    {"\"notify\": {\"digest_window_s\": 30}", "\"notify\": []",
     "notify: expected an object, got an array"},
    /* missing required keys */
    {"\"brokers\": \"127.0.0.1:9092\", ", "", "kafka.brokers: required key is missing"},
    {"\"token\": \"tok-b-1234\", ", "", "instances[1].token: required key is missing"},
    {"\"url\": \"http://127.0.0.1:8055/\", ", "", "instances[0].url: required key is missing"},
    {"{\"from\": \"a\", ", "{", "routes[0].from: required key is missing"},
    {"\"enabled\": false, \"collections\": [", "\"enabled\": false, \"c\": [",
     "routes[1].c: unknown key"},
    /* unset variable */
    {"\"url\": \"http://127.0.0.1:8055/\"", "\"url\": \"${DXT_UNSET}\"",
     "instances[0].url: environment variable DXT_UNSET is not set"},
    {"${DXT_TOKEN_A}", "${DXT_TOKEN_A", "instances[0].token: unterminated ${"},
    /* routes to unknown instances or to itself */
    {"{\"from\": \"a\", \"to\": \"b\"", "{\"from\": \"a\", \"to\": \"c\"",
     "routes[0].to: unknown instance \"c\""},
    {"{\"from\": \"a\", \"to\": \"b\"", "{\"from\": \"x\", \"to\": \"b\"",
     "routes[0].from: unknown instance \"x\""},
    {"{\"from\": \"a\", \"to\": \"b\"", "{\"from\": \"a\", \"to\": \"a\"",
     "routes[0].to: a route from \"a\" to itself"},
    {"{\"from\": \"b\", \"to\": \"a\"", "{\"from\": \"a\", \"to\": \"b\"",
     "routes[1]: duplicate route a -> b"},
    /* duplicate names */
    {"{\"name\": \"b\"", "{\"name\": \"a\"", "instances[1].name: duplicate instance name \"a\""},
    {"{\"collection\": \"counters\"", "{\"collection\": \"articles\"",
     "routes[0].collections[1].collection: collection \"articles\" is listed twice"},
    {"[\"title\", \"body\"]", "[\"title\", \"title\"]",
     "routes[0].collections[0].fields[1]: \"title\" is listed twice"},
    /* empty fields */
    {"[\"title\", \"body\"]", "[]", "routes[0].collections[0].fields: must not be empty"},
    {"[\"title\", \"body\"]", "[\"\"]", "routes[0].collections[0].fields[0]: must not be empty"},
    {"\"token\": \"tok-b-1234\"", "\"token\": \"\"", "instances[1].token: must not be empty"},
    {"\"collections\": [\n", "", ""}, /* placeholder skipped below */
    {"\"collections\": [    {\"collection\": \"articles\", \"fields\": [\"title\"]}]",
     "\"collections\": []", "routes[1].collections: must not be empty"},
    {"\"instances\": [", "\"instances\": [], \"x\": [", "unknown key"},
    /* bad URLs and names */
    {"http://127.0.0.1:8055/", "127.0.0.1:8055",
     "instances[0].url: bad URL \"127.0.0.1:8055\": must start with http:// or https://"},
    {"http://127.0.0.1:8055/", "http://", "instances[0].url: bad URL \"http://\": has no host"},
    {"http://127.0.0.1:8055/", "http://h:99999",
     "instances[0].url: bad URL \"http://h:99999\": has a bad port"},
    {"http://127.0.0.1:8055/", "http://u:p@h", "must not carry credentials"},
    {"http://127.0.0.1:8055/", "http://h/x?y=1", "must not have a query"},
    {"{\"name\": \"b\"", "{\"name\": \"B-1\"",
     "instances[1].name: \"B-1\" is not a valid instance name"},
    {"\"sync_user\": \"" UUID1 "\"", "\"sync_user\": \"admin\"",
     "instances[1].sync_user: \"admin\" is not a uuid"},
    {"\"notify\": [\"" UUID1 "\"]", "\"notify\": [\"bob\"]",
     "routes[0].notify[0]: \"bob\" is not a user id"},
    {"\"notify\": [\"" UUID1 "\"]", "\"enabled\": \"no\"",
     "routes[0].enabled: expected true or false, got a string"},
    {"\"collection\": \"counters\"", "\"collection\": \"directus_users\"",
     "is a Directus system collection"},
    {"\"collection\": \"counters\"", "\"collection\": \"a.b\"", "cannot be a topic name"},
    {"{\"collection\": \"counters\", \"fields\": [\"value\"]}",
     "{\"collection\": \"directus_files\", \"fields\": [\"title\", \"filesize\"]}",
     "routes[0].collections[1].fields[1]: \"filesize\" is set by Directus from the file's bytes"},
    {"\"topic_prefix\": \"dxsync\"", "\"topic_prefix\": \"dx sync\"",
     "kafka.topic_prefix: \"dx sync\" is not a valid topic prefix"},
    {"\"database\": \"host=127.0.0.1 dbname=directus_b\"", "\"database\": \"host=127.0.0.1 nope\"",
     "instances[1].database: not a PostgreSQL connection string"},
    {"\"database\": \"postgresql://postgres:pw-secret@127.0.0.1:5432/directus_a\"",
     "\"sync_user\": \"" UUID1 "\"",
     "routes[0].from: instance \"a\" is a route source but has no \"database\""},
    /* out of range */
    {"\"partitions\": 6", "\"partitions\": 0", "kafka.partitions: 0 is out of range"},
    {"\"replication_factor\": -1", "\"replication_factor\": 0",
     "kafka.replication_factor: must be -1"},
    {"\"max_in_flight\": 4", "\"max_in_flight\": 0", "consumer.max_in_flight: 0 is out of range"},
    {"\"item_attempts\": 5", "\"item_attempts\": -1", "consumer.item_attempts: -1 is out of range"},
    {"\"parent_wait_s\": 600", "\"parent_wait_s\": -5",
     "consumer.parent_wait_s: -5 is out of range"},
    {"\"parent_wait_s\": 600", "\"parent_wait_s\": \"10m\"",
     "consumer.parent_wait_s: expected an integer"},
    /* the consumer's state */
    {"\"parent_wait_s\": 600", "\"parent_wait_s\": 600, \"clock_cache_mb\": 0",
     "consumer.clock_cache_mb: 0 is out of range"},
    {"\"parent_wait_s\": 600", "\"parent_wait_s\": 600, \"session_timeout_ms\": 1000",
     "consumer.session_timeout_ms: 1000 is out of range [6000, 1800000]"},
    {"\"parent_wait_s\": 600", "\"parent_wait_s\": 600, \"state_dir\": \"\"",
     "consumer.state_dir: must not be empty"},
    {"\"parent_wait_s\": 600", "\"parent_wait_s\": 600, \"horizon_s\": -1",
     "consumer.horizon_s: -1 is out of range"},
    /* standby producers */
    {"\"notify\": {\"digest_window_s\": 30}}",
     "\"notify\": {\"digest_window_s\": 30}, \"producer\": {\"standby_retry_ms\": 5}}",
     "producer.standby_retry_ms: 5 is out of range [100, 60000]"},
    {"\"notify\": {\"digest_window_s\": 30}}",
     "\"notify\": {\"digest_window_s\": 30}, \"producer\": {\"standby\": 1}}",
     "producer.standby: unknown key"},
    {"\"properties\": {", "\"properties\": {\"bootstrap.servers\": \"x\", ",
     "kafka.properties.bootstrap.servers: set kafka.brokers instead"},
    /* numbers beyond int64_t (fuzz_config found the undefined conversion) */
    {"\"retention_ms\": -1", "\"retention_ms\": -1e119",
     "kafka.retention_ms: expected an integer, got -1e+119"},
    {"\"partitions\": 6", "\"partitions\": 1e400", "kafka.partitions: expected an integer"},
    /* duplicates inside one object */
    {"\"partitions\": 6", "\"partitions\": 6, \"partitions\": 7",
     "kafka.partitions: key given twice"},
};

static void refuses_every_bad_input(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *c = &bad_cases[i];
        if (!*c->expect)
            continue;
        char *text = mutate(c->from, c->to);
        struct config cfg;
        char err[512] = "";
        int rc = config_load_buffer(text, strlen(text), &cfg, err, sizeof(err));
        if (rc != -1 || !strstr(err, c->expect))
            fail_msg("case %zu: expected error containing \"%s\", got rc=%d \"%s\"", i, c->expect,
                     rc, err);
        /* a failed load leaves nothing to free */
        assert_null(cfg.instances);
        free(text);
    }
}

/* A token or database naming an unset variable loads (commands reading Kafka alone need
 * neither); config_require then names the key, as loading did before. */
static void files_and_folders_can_be_routed(void **state)
{
    (void)state;
    char buf[4096];
    const char *from = "{\"collection\": \"counters\", \"fields\": [\"value\"]}";
    const char *to = "{\"collection\": \"directus_files\", \"fields\": [\"title\", \"folder\"]},"
                     " {\"collection\": \"directus_folders\", \"fields\": [\"name\", \"parent\"]}";
    const char *at = strstr(valid, from);
    assert_non_null(at);
    snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(at - valid), valid, to, at + strlen(from));
    struct config cfg;
    char err[512] = "";
    assert_int_equal(config_load_buffer(buf, strlen(buf), &cfg, err, sizeof(err)), 0);
    const struct config_route *r = config_route_find(&cfg, "a", "b");
    assert_non_null(config_route_collection(r, "directus_files"));
    assert_non_null(config_route_collection(r, "directus_folders"));
    config_free(&cfg);
}

/* A configuration of 10,000 routes loads; a field list longer than a table can be is refused
 * at once, naming the key (issue 14: bounded start-up, clear errors). */
static void large_configs_load_or_fail_clearly(void **state)
{
    (void)state;
    struct util_buf b = {0};
    util_buf_puts(&b, "{\"kafka\": {\"brokers\": \"127.0.0.1:9092\"}, \"instances\": [");
    for (int i = 0; i < 101; i++)
        util_buf_printf(&b,
                        "%s{\"name\": \"i%d\", \"url\": \"http://127.0.0.1:%d\", "
                        "\"token\": \"t\", \"database\": \"host=x dbname=y\"}",
                        i ? ", " : "", i, 8000 + i);
    util_buf_puts(&b, "], \"routes\": [");
    int n = 0;
    for (int f = 0; f < 101 && n < 10000; f++)
        for (int t = 0; t < 101 && n < 10000; t++)
            if (f != t)
                util_buf_printf(&b,
                                "%s{\"from\": \"i%d\", \"to\": \"i%d\", \"collections\": "
                                "[{\"collection\": \"articles\", \"fields\": [\"title\"]}]}",
                                n++ ? ", " : "", f, t);
    util_buf_puts(&b, "]}");
    assert_false(b.failed);
    struct config cfg;
    char err[512] = "";
    assert_int_equal(config_load_buffer(b.data, b.len, &cfg, err, sizeof(err)), 0);
    assert_int_equal(cfg.nroutes, 10000);
    config_free(&cfg);
    util_buf_free(&b);

    util_buf_puts(&b, "{\"kafka\": {\"brokers\": \"k:9092\"}, \"instances\": ["
                      "{\"name\": \"a\", \"url\": \"http://a\", \"token\": \"t\", "
                      "\"database\": \"host=x\"}, {\"name\": \"b\", \"url\": \"http://b\", "
                      "\"token\": \"t\"}], \"routes\": [{\"from\": \"a\", \"to\": \"b\", "
                      "\"collections\": [{\"collection\": \"c\", \"fields\": [");
    for (int i = 0; i < 200000; i++)
        util_buf_printf(&b, "%s\"f%d\"", i ? "," : "", i);
    util_buf_puts(&b, "]}]}]}");
    assert_false(b.failed);
    assert_int_equal(config_load_buffer(b.data, b.len, &cfg, err, sizeof(err)), -1);
    assert_non_null(
        strstr(err, "routes[0].collections[0].fields: lists 200000 entries; at most 1600"));
    util_buf_free(&b);
}

static void unset_secrets_wait_for_a_command_that_needs_them(void **state)
{
    (void)state;
    char *text =
        mutate("postgresql://postgres:pw-secret@127.0.0.1:5432/directus_a", "${DXT_UNSET_DB}");
    const char *at = strstr(text, "${DXT_TOKEN_A}");
    assert_non_null(at);
    size_t n = strlen(text) + 8;
    char *t2 = malloc(n);
    snprintf(t2, n, "%.*s${DXT_UNSET}%s", (int)(at - text), text, at + strlen("${DXT_TOKEN_A}"));
    struct config cfg;
    char err[512] = "";
    assert_int_equal(config_load_buffer(t2, strlen(t2), &cfg, err, sizeof(err)), 0);
    assert_string_equal(cfg.instances[0].token, "");
    assert_null(cfg.instances[0].database);
    assert_true(cfg.instances[0].database_unset);
    assert_string_equal(cfg.instances[0].token_unset,
                        "instances[0].token: environment variable DXT_UNSET is not set");
    assert_string_equal(cfg.instances[0].database_why,
                        "instances[0].database: environment variable DXT_UNSET_DB is not set");
    assert_null(cfg.instances[1].token_unset);
    assert_null(cfg.instances[1].database_why);
    assert_int_equal(config_require(&cfg, err, sizeof(err)), -1); /* the first one is named */
    assert_string_equal(err, "instances[0].token: environment variable DXT_UNSET is not set");
    /* a process needs only its own secrets: b's are all set */
    assert_int_equal(config_require_instance(&cfg, "b", CONFIG_NEED_TOKEN | CONFIG_NEED_DATABASE,
                                             err, sizeof(err)),
                     0);
    assert_int_equal(config_require_instance(&cfg, "a", CONFIG_NEED_DATABASE, err, sizeof(err)),
                     -1);
    assert_string_equal(err, "instances[0].database: environment variable DXT_UNSET_DB is not set");
    assert_int_equal(config_require_instance(&cfg, "a", CONFIG_NEED_TOKEN, err, sizeof(err)), -1);
    assert_string_equal(err, "instances[0].token: environment variable DXT_UNSET is not set");
    assert_int_equal(config_require_instance(&cfg, "zz", CONFIG_NEED_TOKEN, err, sizeof(err)), -1);
    assert_string_equal(err, "instances: no instance named \"zz\"");
    config_free(&cfg);
    assert_int_equal(config_load_buffer(valid, strlen(valid), &cfg, err, sizeof(err)), 0);
    assert_int_equal(config_require(&cfg, err, sizeof(err)), 0);
    config_free(&cfg);
    free(text);
    free(t2);
}

/* The secrets of a file are registered as they are read: an error later in the same file, or
 * one quoting them, is printed masked (issue 28). Every secret-bearing key: tokens, libpq's
 * password and sslpassword, librdkafka's passwords, secrets and inline private key. */
static void secrets_are_masked_before_any_error(void **state)
{
    (void)state;
    const char *t =
        "{\"kafka\": {\"brokers\": \"k:9092\", \"properties\": {"
        "\"sasl.password\": \"scram-pw-0001\", \"ssl.key.pem\": \"-----BEGIN KEY-----xyz\", "
        "\"ssl.key.password\": \"key-pw-0002\", \"sasl.oauthbearer.client.secret\": "
        "\"oauth-0003\"}},"
        "\"instances\": [{\"name\": \"a\", \"url\": \"http://a:8055\", \"token\": \"tok-a-0004\", "
        "\"database\": \"postgresql://u:db-pw-0005@h/d?sslpassword=ssl-pw-0006\"},"
        "{\"name\": \"b\", \"url\": \"nope\", \"token\": \"tok-b-0007\"}],"
        "\"routes\": []}";
    struct config cfg;
    char err[512];
    log_clear_secrets();
    assert_int_equal(config_load_buffer(t, strlen(t), &cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "instances[1].url"));
    char line[2048];
    snprintf(line, sizeof(line),
             "scram-pw-0001 -----BEGIN KEY-----xyz key-pw-0002 oauth-0003 tok-a-0004 db-pw-0005 "
             "ssl-pw-0006 tok-b-0007");
    log_redact(line, sizeof(line));
    assert_string_equal(line, "[redacted] [redacted] [redacted] [redacted] [redacted] [redacted] "
                              "[redacted] [redacted]");
    log_clear_secrets();
}

static void refuses_bad_json_with_position(void **state)
{
    (void)state;
    struct config cfg;
    char err[512];
    const char *t = "{\n  \"kafka\": {,}\n}";
    assert_int_equal(config_load_buffer(t, strlen(t), &cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "line 2 column"));
    assert_non_null(strstr(err, "not valid JSON"));
    assert_int_equal(config_load_buffer("[]", 2, &cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "expected a JSON object, got an array"));
    assert_int_equal(config_load_buffer("", 0, &cfg, err, sizeof(err)), -1);
    const char latin1[] = "{\"kafka\": \"\xe9\"}";
    assert_int_equal(config_load_buffer(latin1, strlen(latin1), &cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not valid UTF-8"));
    assert_int_equal(config_load_buffer("{}", 2, &cfg, err, sizeof(err)), -1);
    assert_string_equal(err, "kafka: required key is missing");
}

static void names_the_file(void **state)
{
    (void)state;
    struct config cfg;
    char err[512];
    assert_int_equal(config_load_file("/nonexistent/dxsync.json", &cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/nonexistent/dxsync.json: cannot open"));
}

static char captured[8192];
static void capture(const char *line, void *opaque)
{
    (void)opaque;
    strncat(captured, line, sizeof(captured) - strlen(captured) - 2);
    strcat(captured, "\n");
}

static void secrets_are_redacted(void **state)
{
    (void)state;
    struct config cfg;
    char err[512];
    assert_int_equal(config_load_buffer(valid, strlen(valid), &cfg, err, sizeof(err)), 0);
    config_register_secrets(&cfg);
    log_set_sink(capture, NULL);
    captured[0] = '\0';
    log_info("test", "token=%s other=%s db=%s", cfg.instances[0].token, cfg.instances[1].token,
             cfg.instances[0].database);
    log_set_sink(NULL, NULL);
    assert_null(strstr(captured, "tok-a-from-env"));
    assert_null(strstr(captured, "tok-b-1234"));
    assert_null(strstr(captured, "pw-secret"));
    assert_non_null(strstr(captured, "token=[redacted] other=[redacted]"));
    char disp[256];
    config_database_display(cfg.instances[0].database, disp, sizeof(disp));
    assert_null(strstr(disp, "pw-secret"));
    assert_non_null(strstr(disp, "dbname=directus_a"));
    log_clear_secrets();
    config_free(&cfg);
}

/* A reload: what may change while running, and the one line that says what changed. */
static void a_reload_names_what_changed_and_what_may_not(void **state)
{
    (void)state;
    struct config cur, next;
    char err[512] = "", changes[2048];
    assert_int_equal(config_load_buffer(valid, strlen(valid), &cur, err, sizeof(err)), 0);

    /* nothing changed */
    assert_int_equal(config_load_buffer(valid, strlen(valid), &next, err, sizeof(err)), 0);
    assert_int_equal(config_reload_check(&cur, &next, "b", err, sizeof(err)), 0);
    config_reload_changes(&cur, &next, changes, sizeof(changes));
    assert_string_equal(changes, "");
    config_free(&next);

    static const struct {
        const char *from, *to, *changes;
    } ok[] = {
        {"\"batch_max\": 50", "\"batch_max\": 250", "consumer.batch_max 50->250"},
        {"\"enabled\": false, ", "", "route b->a resumed"},
        {"{\"from\": \"a\", \"to\": \"b\", ",
         "{\"from\": \"a\", \"to\": \"b\", \"enabled\": false, ", "route a->b paused"},
        {"[\"title\", \"body\"]", "[\"title\", \"summary\"]",
         "route a->b articles fields +summary -body"},
        {"{\"collection\": \"counters\", \"fields\": [\"value\"]}",
         "{\"collection\": \"notes\", \"fields\": [\"text\"]}",
         "route a->b +notes; route a->b -counters"},
        {"\"token\": \"tok-b-1234\"", "\"token\": \"tok-b-5678\"", "instances.b.token"},
        {"\"notify\": [\"" UUID1 "\"]", "\"notify\": []", "route a->b notify (0 users)"},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char *text = mutate(ok[i].from, ok[i].to);
        assert_int_equal(config_load_buffer(text, strlen(text), &next, err, sizeof(err)), 0);
        assert_int_equal(config_reload_check(&cur, &next, "b", err, sizeof(err)), 0);
        config_reload_changes(&cur, &next, changes, sizeof(changes));
        assert_string_equal(changes, ok[i].changes);
        assert_null(strstr(changes, "5678")); /* a secret's name, never its value */
        config_free(&next);
        free(text);
    }

    static const struct {
        const char *from, *to, *serves, *err;
    } refused[] = {
        {"127.0.0.1:9092", "10.0.0.1:9092", "b", "kafka.brokers cannot change while running"},
        {"\"topic_prefix\": \"dxsync\"", "\"topic_prefix\": \"other\"", "b",
         "kafka.topic_prefix cannot change while running"},
        {"\"parent_wait_s\": 600", "\"parent_wait_s\": 600, \"state_dir\": \"/var/x\"", NULL,
         "consumer.state_dir cannot change while running"},
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        char *text = mutate(refused[i].from, refused[i].to);
        assert_int_equal(config_load_buffer(text, strlen(text), &next, err, sizeof(err)), 0);
        assert_int_equal(config_reload_check(&cur, &next, refused[i].serves, err, sizeof(err)), -1);
        if (!strstr(err, refused[i].err))
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, refused[i].err);
        config_free(&next);
        free(text);
    }
    /* the instance this process serves must stay */
    assert_int_equal(config_load_buffer(valid, strlen(valid), &next, err, sizeof(err)), 0);
    assert_int_equal(config_reload_check(&cur, &next, "c", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "\"c\", the instance this process serves, is no longer there"));
    config_free(&next);
    config_free(&cur);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(loads_the_design_example, setup),
        cmocka_unit_test_setup(files_and_folders_can_be_routed, setup),
        cmocka_unit_test_setup(large_configs_load_or_fail_clearly, setup),
        cmocka_unit_test_setup(applies_defaults, setup),
        cmocka_unit_test_setup(refuses_every_bad_input, setup),
        cmocka_unit_test_setup(refuses_bad_json_with_position, setup),
        cmocka_unit_test_setup(unset_secrets_wait_for_a_command_that_needs_them, setup),
        cmocka_unit_test(names_the_file),
        cmocka_unit_test_setup(secrets_are_redacted, setup),
        cmocka_unit_test(secrets_are_masked_before_any_error),
        cmocka_unit_test_setup(a_reload_names_what_changed_and_what_may_not, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
