#include "config.h"

#include "directus.h"
#include "log.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <libpq-fe.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PATH_MAX_LEN 256

/* Wipes every string value of a parsed configuration (a literal token among them). */
static void json_wipe(cJSON *node)
{
    for (; node; node = node->next) {
        if (node->valuestring)
            util_wipe(node->valuestring, strlen(node->valuestring));
        json_wipe(node->child);
    }
}

struct parse {
    char *err;
    size_t errlen;
    bool failed;
    /* While set, an unset environment variable is not an error yet: the value is left empty and
     * deferred says why (the first), for config_require to report if a command needs it. */
    bool defer;
    char deferred[512];
};

static int fail(struct parse *p, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct parse *p, const char *path, const char *fmt, ...)
{
    if (p->failed)
        return -1;
    p->failed = true;
    int n = snprintf(p->err, p->errlen, "%s: ", path && *path ? path : "(top level)");
    if (n >= 0 && (size_t)n < p->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static const char *type_name(const cJSON *v)
{
    if (cJSON_IsString(v))
        return "a string";
    if (cJSON_IsNumber(v))
        return "a number";
    if (cJSON_IsBool(v))
        return "a boolean";
    if (cJSON_IsNull(v))
        return "null";
    if (cJSON_IsArray(v))
        return "an array";
    if (cJSON_IsObject(v))
        return "an object";
    return "an invalid value";
}

/* Key paths longer than PATH_MAX_LEN are cut, and end with "..." to say so; they only name
 * things in messages. */
static void mark_cut(char *out, size_t len)
{
    if (out[0])
        memcpy(out + len - 4, "...", 4);
}

static void join(char *out, const char *base, const char *key)
{
    if (base && *base ? util_format(out, PATH_MAX_LEN, "%s.%s", base, key)
                      : util_format(out, PATH_MAX_LEN, "%s", key))
        mark_cut(out, PATH_MAX_LEN);
}

static void join_index(char *out, const char *base, size_t i)
{
    if (util_format(out, PATH_MAX_LEN, "%s[%zu]", base, i))
        mark_cut(out, PATH_MAX_LEN);
}

/* Every member of obj must be in allowed; duplicate members are refused too. */
static int check_keys(struct parse *p, const cJSON *obj, const char *path,
                      const char *const *allowed, size_t nallowed)
{
    for (const cJSON *it = obj->child; it; it = it->next) {
        char sub[PATH_MAX_LEN];
        join(sub, path, it->string);
        bool known = false;
        for (size_t i = 0; i < nallowed; i++)
            if (strcmp(it->string, allowed[i]) == 0)
                known = true;
        if (!known) {
            struct util_buf b = {0};
            for (size_t i = 0; i < nallowed; i++)
                util_buf_printf(&b, "%s%s", i ? ", " : "", allowed[i]);
            fail(p, sub, "unknown key (expected one of: %s)", b.data ? b.data : "");
            util_buf_free(&b);
            return -1;
        }
        for (const cJSON *o = obj->child; o != it; o = o->next)
            if (strcmp(o->string, it->string) == 0)
                return fail(p, sub, "key given twice");
    }
    return 0;
}

/* Expands ${NAME} anywhere in s from the environment. Returns a new string or NULL (error set). */
static char *expand_env(struct parse *p, const char *path, const char *s)
{
    struct util_buf b = {0};
    const char *c = s;
    while (*c) {
        if (c[0] == '$' && c[1] == '{') {
            const char *end = strchr(c + 2, '}');
            if (!end) {
                fail(p, path, "unterminated ${ in \"%s\"", s);
                goto err;
            }
            size_t nlen = (size_t)(end - (c + 2));
            char name[128];
            if (nlen == 0 || nlen >= sizeof(name)) {
                fail(p, path, "bad environment variable reference");
                goto err;
            }
            memcpy(name, c + 2, nlen);
            name[nlen] = '\0';
            for (size_t i = 0; i < nlen; i++) {
                char ch = name[i];
                if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '_' ||
                      (i > 0 && ch >= '0' && ch <= '9'))) {
                    fail(p, path, "bad environment variable name \"%s\"", name);
                    goto err;
                }
            }
            const char *v = getenv(name);
            if (!v && p->defer) {
                if (!p->deferred[0])
                    snprintf(p->deferred, sizeof(p->deferred),
                             "%s: environment variable %s is not set", path, name);
                util_wipe(b.data, b.len);
                util_buf_free(&b);
                char *empty = strdup("");
                if (!empty)
                    fail(p, path, "out of memory");
                return empty;
            }
            if (!v) {
                fail(p, path, "environment variable %s is not set", name);
                goto err;
            }
            util_buf_puts(&b, v);
            c = end + 1;
        } else {
            util_buf_append(&b, c, 1);
            c++;
        }
    }
    char *out = util_buf_steal(&b);
    if (!out)
        fail(p, path, "out of memory");
    return out;
err:
    util_wipe(b.data, b.len);
    util_buf_free(&b);
    return NULL;
}

/* Reads a string member. required: missing is an error; empty strings are always refused. */
static int get_string(struct parse *p, const cJSON *obj, const char *path, const char *key,
                      bool required, char **out)
{
    char sub[PATH_MAX_LEN];
    join(sub, path, key);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) {
        if (required)
            return fail(p, sub, "required key is missing");
        return 0;
    }
    if (!cJSON_IsString(v))
        return fail(p, sub, "expected a string, got %s", type_name(v));
    char *s = expand_env(p, sub, v->valuestring);
    if (!s)
        return -1;
    if (!*s && !(p->defer && p->deferred[0])) {
        free(s);
        return fail(p, sub, "must not be empty");
    }
    *out = s;
    return 0;
}

/* A secret of an instance (token, database): a variable it names that is unset is reported only
 * when a command needs the instance's secrets (config_require), so that commands talking to
 * Kafka alone run without them. */
static int get_secret(struct parse *p, const cJSON *obj, const char *path, const char *key,
                      bool required, char **out, char **why)
{
    p->defer = true;
    p->deferred[0] = '\0';
    int rc = get_string(p, obj, path, key, required, out);
    p->defer = false;
    if (rc || !p->deferred[0])
        return rc;
    if (!*why && !(*why = strdup(p->deferred)))
        return fail(p, path, "out of memory");
    return 0;
}

static int get_int(struct parse *p, const cJSON *obj, const char *path, const char *key,
                   int64_t min, int64_t max, int64_t *out)
{
    char sub[PATH_MAX_LEN];
    join(sub, path, key);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return 0; /* keeps the default */
    if (!cJSON_IsNumber(v))
        return fail(p, sub, "expected an integer, got %s", type_name(v));
    double d = v->valuedouble;
    /* range first: converting a double outside int64_t's range is undefined (found by
     * fuzz_config with -1e119) */
    if (!isfinite(d) || d != floor(d) || d < -9.2e18 || d > 9.2e18)
        return fail(p, sub, "expected an integer, got %g", d);
    if (d < (double)min || d > (double)max)
        return fail(p, sub, "%lld is out of range [%lld, %lld]", (long long)d, (long long)min,
                    (long long)max);
    *out = (int64_t)d;
    return 0;
}

static int get_int32(struct parse *p, const cJSON *obj, const char *path, const char *key, int min,
                     int max, int *out)
{
    int64_t v = *out;
    if (get_int(p, obj, path, key, min, max, &v))
        return -1;
    *out = (int)v;
    return 0;
}

static bool is_name(const char *s, const char *extra)
{
    if (!*s)
        return false;
    for (const char *c = s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_' ||
              strchr(extra, *c)))
            return false;
    return true;
}

static bool is_uuid(const char *s)
{
    if (strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return true;
}

/* http(s)://host[:port][/path], no query, no fragment, no credentials. */
static const char *url_problem(const char *url)
{
    const char *rest;
    if (strncmp(url, "http://", 7) == 0)
        rest = url + 7;
    else if (strncmp(url, "https://", 8) == 0)
        rest = url + 8;
    else
        return "must start with http:// or https://";
    if (!*rest || *rest == '/' || *rest == ':')
        return "has no host";
    for (const char *c = rest; *c; c++) {
        if (*c == ' ' || *c == '\t' || *c == '\n')
            return "contains whitespace";
        if (*c == '?' || *c == '#')
            return "must not have a query or fragment";
        if (*c == '@')
            return "must not carry credentials (use token)";
    }
    const char *colon = strchr(rest, ':');
    const char *slash = strchr(rest, '/');
    if (colon && (!slash || colon < slash)) {
        const char *port = colon + 1;
        size_t n = slash ? (size_t)(slash - port) : strlen(port);
        if (n == 0 || n > 5)
            return "has a bad port";
        long v = 0;
        for (size_t i = 0; i < n; i++) {
            if (port[i] < '0' || port[i] > '9')
                return "has a bad port";
            v = v * 10 + (port[i] - '0');
        }
        if (v < 1 || v > 65535)
            return "has a bad port";
    }
    return NULL;
}

/* The most fields a route may list for one collection: the most columns a PostgreSQL table has.
 * It also bounds the work per event and the duplicate check of a list. */
#define CONFIG_MAX_FIELDS 1600
/* The most users a route notifies. */
#define CONFIG_MAX_NOTIFY 1000

static int string_array(struct parse *p, const cJSON *obj, const char *path, const char *key,
                        bool required, bool nonempty, size_t max, const char *why, char ***out,
                        size_t *nout)
{
    char sub[PATH_MAX_LEN];
    join(sub, path, key);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!arr) {
        if (required)
            return fail(p, sub, "required key is missing");
        return 0;
    }
    if (!cJSON_IsArray(arr))
        return fail(p, sub, "expected an array of strings, got %s", type_name(arr));
    int n = cJSON_GetArraySize(arr);
    if (n == 0 && nonempty)
        return fail(p, sub, "must not be empty");
    if ((size_t)n > max)
        return fail(p, sub, "lists %d entries; at most %zu (%s)", n, max, why);
    char **v = calloc((size_t)n + 1, sizeof(char *));
    if (!v)
        return fail(p, sub, "out of memory");
    *out = v;
    size_t i = 0;
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        char el[PATH_MAX_LEN];
        join_index(el, sub, i);
        if (!cJSON_IsString(it))
            return fail(p, el, "expected a string, got %s", type_name(it));
        char *s = expand_env(p, el, it->valuestring);
        if (!s)
            return -1;
        v[i] = s;
        *nout = i + 1;
        if (!*s)
            return fail(p, el, "must not be empty");
        for (size_t j = 0; j < i; j++)
            if (strcmp(v[j], s) == 0)
                return fail(p, el, "\"%s\" is listed twice", s);
    }
    return 0;
}

static int parse_kafka(struct parse *p, const cJSON *k, struct config_kafka *out)
{
    static const char *const keys[] = {"brokers",      "topic_prefix",
                                       "partitions",   "replication_factor",
                                       "retention_ms", "properties"};
    if (!k)
        return fail(p, "kafka", "required key is missing");
    if (!cJSON_IsObject(k))
        return fail(p, "kafka", "expected an object, got %s", type_name(k));
    if (check_keys(p, k, "kafka", keys, DX_ARRAY_LEN(keys)) ||
        get_string(p, k, "kafka", "brokers", true, &out->brokers) ||
        get_string(p, k, "kafka", "topic_prefix", false, &out->topic_prefix) ||
        get_int32(p, k, "kafka", "partitions", 1, 10000, &out->partitions) ||
        get_int32(p, k, "kafka", "replication_factor", -1, 1000, &out->replication_factor) ||
        get_int(p, k, "kafka", "retention_ms", -1, INT64_MAX / 2, &out->retention_ms))
        return -1;
    if (out->replication_factor == 0)
        return fail(p, "kafka.replication_factor", "must be -1 (broker default) or at least 1");
    if (out->retention_ms == 0)
        return fail(p, "kafka.retention_ms", "must be -1 (forever) or at least 1");
    if (!out->topic_prefix && !(out->topic_prefix = strdup("dxsync")))
        return fail(p, "kafka.topic_prefix", "out of memory");
    if (!is_name(out->topic_prefix, "-.") || strlen(out->topic_prefix) > 100)
        return fail(p, "kafka.topic_prefix",
                    "\"%s\" is not a valid topic prefix (lowercase letters, digits, _ - .)",
                    out->topic_prefix);
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(k, "properties");
    if (props) {
        if (!cJSON_IsObject(props))
            return fail(p, "kafka.properties", "expected an object, got %s", type_name(props));
        int n = cJSON_GetArraySize(props);
        out->properties = calloc((size_t)n + 1, sizeof(*out->properties));
        if (!out->properties)
            return fail(p, "kafka.properties", "out of memory");
        for (const cJSON *it = props->child; it; it = it->next) {
            char sub[PATH_MAX_LEN];
            join(sub, "kafka.properties", it->string);
            char num[64];
            const char *raw;
            if (cJSON_IsString(it)) {
                raw = it->valuestring;
            } else if (cJSON_IsBool(it)) {
                raw = cJSON_IsTrue(it) ? "true" : "false";
            } else if (cJSON_IsNumber(it)) {
                snprintf(num, sizeof(num), "%.17g", it->valuedouble);
                raw = num;
            } else {
                return fail(p, sub, "expected a string, number or boolean, got %s", type_name(it));
            }
            for (size_t j = 0; j < out->nproperties; j++)
                if (strcmp(out->properties[j].key, it->string) == 0)
                    return fail(p, sub, "key given twice");
            if (strcmp(it->string, "bootstrap.servers") == 0 ||
                strcmp(it->string, "metadata.broker.list") == 0)
                return fail(p, sub, "set kafka.brokers instead");
            struct config_property *prop = &out->properties[out->nproperties];
            prop->key = strdup(it->string);
            prop->value = expand_env(p, sub, raw);
            out->nproperties++;
            if (!prop->key || !prop->value)
                return fail(p, sub, "out of memory");
            config_register_property(prop->key, prop->value); /* before any error quotes it */
        }
    }
    return 0;
}

/* A database naming an unset variable is "none" until config_require asks for it. */
static int defer_database(struct config_instance *in)
{
    if (in->database && !in->database[0]) {
        free(in->database);
        in->database = NULL;
        in->database_unset = true;
    }
    return 0;
}

/* ca_file, client_cert and client_key: readable files, for an https URL, the certificate and its
 * key together. */
static int tls_files(struct parse *p, const char *path, const struct config_instance *in)
{
    char sub[PATH_MAX_LEN];
    const struct {
        const char *key, *value;
    } files[] = {
        {"ca_file", in->ca_file}, {"client_cert", in->client_cert}, {"client_key", in->client_key}};
    for (size_t i = 0; i < DX_ARRAY_LEN(files); i++) {
        if (!files[i].value)
            continue;
        join(sub, path, files[i].key);
        if (strncmp(in->url, "https://", 8) != 0)
            return fail(p, sub, "is for an https URL; url is \"%s\"", in->url);
        if (access(files[i].value, R_OK) != 0)
            return fail(p, sub, "cannot read \"%s\": %s", files[i].value, strerror(errno));
    }
    if (!in->client_cert != !in->client_key) {
        join(sub, path, in->client_cert ? "client_key" : "client_cert");
        return fail(p, sub, "client_cert and client_key go together");
    }
    return 0;
}

static int parse_instance(struct parse *p, const cJSON *v, const char *path,
                          struct config_instance *out)
{
    static const char *const keys[] = {"name",      "url",     "token",       "database",
                                       "sync_user", "ca_file", "client_cert", "client_key"};
    if (!cJSON_IsObject(v))
        return fail(p, path, "expected an object, got %s", type_name(v));
    if (check_keys(p, v, path, keys, DX_ARRAY_LEN(keys)) ||
        get_string(p, v, path, "name", true, &out->name) ||
        get_string(p, v, path, "url", true, &out->url) ||
        get_secret(p, v, path, "token", true, &out->token, &out->token_unset) ||
        get_secret(p, v, path, "database", false, &out->database, &out->database_why) ||
        defer_database(out) || get_string(p, v, path, "sync_user", false, &out->sync_user) ||
        get_string(p, v, path, "ca_file", false, &out->ca_file) ||
        get_string(p, v, path, "client_cert", false, &out->client_cert) ||
        get_string(p, v, path, "client_key", false, &out->client_key))
        return -1;
    /* registered as read: a later error (a bad URL quoting it) is printed masked */
    if (out->token && out->token[0])
        log_add_secret(out->token);
    config_register_database(out->database);
    char sub[PATH_MAX_LEN];
    join(sub, path, "name");
    if (!is_name(out->name, "") || strlen(out->name) > 40)
        return fail(p, sub,
                    "\"%s\" is not a valid instance name (1-40 lowercase letters, digits, _; it "
                    "names topics and the replication slot dxsync_<name>)",
                    out->name);
    join(sub, path, "url");
    const char *why = url_problem(out->url);
    if (why)
        return fail(p, sub, "bad URL \"%s\": %s", out->url, why);
    size_t ul = strlen(out->url);
    while (ul > 0 && out->url[ul - 1] == '/')
        out->url[--ul] = '\0';
    if (tls_files(p, path, out))
        return -1;
    if (out->sync_user && !is_uuid(out->sync_user)) {
        join(sub, path, "sync_user");
        return fail(p, sub, "\"%s\" is not a uuid", out->sync_user);
    }
    if (out->database) {
        char *perr = NULL;
        PQconninfoOption *opts = PQconninfoParse(out->database, &perr);
        if (!opts) {
            join(sub, path, "database");
            fail(p, sub, "not a PostgreSQL connection string or URL: %s",
                 perr ? perr : "parse error");
            PQfreemem(perr);
            return -1;
        }
        config_conninfo_free(opts);
    }
    return 0;
}

static int parse_route(struct parse *p, const cJSON *v, const char *path, const struct config *cfg,
                       struct config_route *out)
{
    static const char *const keys[] = {"from", "to", "collections", "notify", "enabled"};
    if (!cJSON_IsObject(v))
        return fail(p, path, "expected an object, got %s", type_name(v));
    out->enabled = true;
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(v, "enabled");
    if (en) {
        char ep[PATH_MAX_LEN];
        join(ep, path, "enabled");
        if (!cJSON_IsBool(en))
            return fail(p, ep, "expected true or false, got %s", type_name(en));
        out->enabled = cJSON_IsTrue(en);
    }
    if (check_keys(p, v, path, keys, DX_ARRAY_LEN(keys)) ||
        get_string(p, v, path, "from", true, &out->from) ||
        get_string(p, v, path, "to", true, &out->to))
        return -1;
    char sub[PATH_MAX_LEN];
    join(sub, path, "from");
    const struct config_instance *from = config_instance_find(cfg, out->from);
    if (!from)
        return fail(p, sub, "unknown instance \"%s\"", out->from);
    join(sub, path, "to");
    if (!config_instance_find(cfg, out->to))
        return fail(p, sub, "unknown instance \"%s\"", out->to);
    if (strcmp(out->from, out->to) == 0)
        return fail(p, sub, "a route from \"%s\" to itself", out->to);
    if (!from->database && !from->database_unset) {
        join(sub, path, "from");
        return fail(p, sub, "instance \"%s\" is a route source but has no \"database\"", out->from);
    }
    join(sub, path, "collections");
    const cJSON *cols = cJSON_GetObjectItemCaseSensitive(v, "collections");
    if (!cols)
        return fail(p, sub, "required key is missing");
    if (!cJSON_IsArray(cols))
        return fail(p, sub, "expected an array, got %s", type_name(cols));
    int n = cJSON_GetArraySize(cols);
    if (n == 0)
        return fail(p, sub, "must not be empty");
    out->collections = calloc((size_t)n, sizeof(*out->collections));
    if (!out->collections)
        return fail(p, sub, "out of memory");
    size_t i = 0;
    for (const cJSON *it = cols->child; it; it = it->next, i++) {
        static const char *const ckeys[] = {"collection", "fields"};
        char el[PATH_MAX_LEN];
        join_index(el, sub, i);
        struct config_collection *c = &out->collections[i];
        out->ncollections = i + 1;
        if (!cJSON_IsObject(it))
            return fail(p, el, "expected an object, got %s", type_name(it));
        if (check_keys(p, it, el, ckeys, DX_ARRAY_LEN(ckeys)) ||
            get_string(p, it, el, "collection", true, &c->collection) ||
            string_array(p, it, el, "fields", true, true, CONFIG_MAX_FIELDS,
                         "the most columns a PostgreSQL table has", &c->fields, &c->nfields))
            return -1;
        char cp[PATH_MAX_LEN];
        join(cp, el, "collection");
        if (!directus_syncable(c->collection))
            return fail(p, cp,
                        "\"%s\" is a Directus system collection and cannot be synced (of those, "
                        "only " DIRECTUS_FILES " and " DIRECTUS_FOLDERS " can)",
                        c->collection);
        for (size_t f = 0; strcmp(c->collection, DIRECTUS_FILES) == 0 && f < c->nfields; f++) {
            if (!directus_file_computed(c->fields[f]))
                continue;
            char fp[PATH_MAX_LEN], el2[PATH_MAX_LEN];
            join(fp, el, "fields");
            join_index(el2, fp, f);
            return fail(p, el2,
                        "\"%s\" is set by Directus from the file's bytes or by itself; the bytes "
                        "travel with the file and the remote sets its own: remove it",
                        c->fields[f]);
        }
        for (const char *ch = c->collection; *ch; ch++)
            if (!((*ch >= 'a' && *ch <= 'z') || (*ch >= 'A' && *ch <= 'Z') ||
                  (*ch >= '0' && *ch <= '9') || *ch == '_' || *ch == '-'))
                return fail(p, cp, "\"%s\" cannot be a topic name (letters, digits, _ and -)",
                            c->collection);
        for (size_t j = 0; j < i; j++)
            if (strcmp(out->collections[j].collection, c->collection) == 0)
                return fail(p, cp, "collection \"%s\" is listed twice in this route",
                            c->collection);
    }
    if (string_array(p, v, path, "notify", false, false, CONFIG_MAX_NOTIFY,
                     "notifications go to people, not to everyone", &out->notify, &out->nnotify))
        return -1;
    for (size_t j = 0; j < out->nnotify; j++) {
        if (!is_uuid(out->notify[j])) {
            char el[PATH_MAX_LEN], np[PATH_MAX_LEN];
            join(np, path, "notify");
            join_index(el, np, j);
            return fail(p, el, "\"%s\" is not a user id (uuid)", out->notify[j]);
        }
    }
    return 0;
}

/* "web": {"tls_server_config": {"cert_file", "key_file"}, "basic_auth_users": {name: hash}},
 * the keys of the Prometheus exporters' web.config. */
static int parse_web(struct parse *p, const cJSON *w, struct config_web *out)
{
    static const char *const keys[] = {"tls_server_config", "basic_auth_users"};
    static const char *const tkeys[] = {"cert_file", "key_file"};
    if (!w)
        return 0;
    if (!cJSON_IsObject(w))
        return fail(p, "web", "expected an object, got %s", type_name(w));
    if (check_keys(p, w, "web", keys, DX_ARRAY_LEN(keys)))
        return -1;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(w, "tls_server_config");
    if (t) {
        const char *tp = "web.tls_server_config";
        if (!cJSON_IsObject(t))
            return fail(p, tp, "expected an object, got %s", type_name(t));
        if (check_keys(p, t, tp, tkeys, DX_ARRAY_LEN(tkeys)) ||
            get_string(p, t, tp, "cert_file", true, &out->cert_file) ||
            get_string(p, t, tp, "key_file", true, &out->key_file))
            return -1;
        const char *files[][2] = {{"web.tls_server_config.cert_file", out->cert_file},
                                  {"web.tls_server_config.key_file", out->key_file}};
        for (size_t i = 0; i < DX_ARRAY_LEN(files); i++)
            if (access(files[i][1], R_OK) != 0)
                return fail(p, files[i][0], "cannot read \"%s\": %s", files[i][1], strerror(errno));
    }
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(w, "basic_auth_users");
    if (u) {
        const char *up = "web.basic_auth_users";
        if (!cJSON_IsObject(u))
            return fail(p, up, "expected an object, got %s", type_name(u));
        int n = cJSON_GetArraySize(u);
        out->users = calloc((size_t)n + 1, sizeof(*out->users));
        if (!out->users)
            return fail(p, up, "out of memory");
        for (const cJSON *it = u->child; it; it = it->next) {
            char sub[PATH_MAX_LEN];
            join(sub, up, it->string);
            const char *h = cJSON_IsString(it) ? it->valuestring : NULL;
            /* bcrypt, as web.config: $2a$, $2b$ or $2y$, a cost, 53 characters of salt+hash */
            if (!h || strlen(h) != 60 || h[0] != '$' || h[1] != '2' || !strchr("aby", h[2]) ||
                h[3] != '$')
                return fail(p, sub,
                            "expected a bcrypt hash ($2y$...; e.g. htpasswd -nbBC 10 \"\" "
                            "PASSWORD | tr -d ':'), not a password");
            struct config_property *pr = &out->users[out->nusers++];
            pr->key = strdup(it->string);
            pr->value = strdup(h);
            if (!pr->key || !pr->value)
                return fail(p, sub, "out of memory");
        }
    }
    return 0;
}

static int parse_root(struct parse *p, const cJSON *root, struct config *cfg)
{
    static const char *const keys[] = {"kafka",  "instances", "routes", "consumer",
                                       "notify", "producer",  "web"};
    if (!cJSON_IsObject(root))
        return fail(p, "", "expected a JSON object, got %s", type_name(root));
    if (check_keys(p, root, "", keys, DX_ARRAY_LEN(keys)) ||
        parse_kafka(p, cJSON_GetObjectItemCaseSensitive(root, "kafka"), &cfg->kafka))
        return -1;

    const cJSON *insts = cJSON_GetObjectItemCaseSensitive(root, "instances");
    if (!insts)
        return fail(p, "instances", "required key is missing");
    if (!cJSON_IsArray(insts))
        return fail(p, "instances", "expected an array, got %s", type_name(insts));
    int n = cJSON_GetArraySize(insts);
    if (n == 0)
        return fail(p, "instances", "must not be empty");
    cfg->instances = calloc((size_t)n, sizeof(*cfg->instances));
    if (!cfg->instances)
        return fail(p, "instances", "out of memory");
    size_t i = 0;
    for (const cJSON *it = insts->child; it; it = it->next, i++) {
        char path[PATH_MAX_LEN];
        join_index(path, "instances", i);
        cfg->ninstances = i + 1;
        if (parse_instance(p, it, path, &cfg->instances[i]))
            return -1;
        for (size_t j = 0; j < i; j++) {
            char np[PATH_MAX_LEN];
            join(np, path, "name");
            if (strcmp(cfg->instances[j].name, cfg->instances[i].name) == 0)
                return fail(p, np, "duplicate instance name \"%s\" (also instances[%zu])",
                            cfg->instances[i].name, j);
        }
    }

    const cJSON *routes = cJSON_GetObjectItemCaseSensitive(root, "routes");
    if (!routes)
        return fail(p, "routes", "required key is missing");
    if (!cJSON_IsArray(routes))
        return fail(p, "routes", "expected an array, got %s", type_name(routes));
    n = cJSON_GetArraySize(routes);
    cfg->routes = calloc((size_t)n + 1, sizeof(*cfg->routes));
    if (!cfg->routes)
        return fail(p, "routes", "out of memory");
    i = 0;
    for (const cJSON *it = routes->child; it; it = it->next, i++) {
        char path[PATH_MAX_LEN];
        join_index(path, "routes", i);
        cfg->nroutes = i + 1;
        if (parse_route(p, it, path, cfg, &cfg->routes[i]))
            return -1;
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg->routes[j].from, cfg->routes[i].from) == 0 &&
                strcmp(cfg->routes[j].to, cfg->routes[i].to) == 0)
                return fail(p, path, "duplicate route %s -> %s (also routes[%zu]); merge them",
                            cfg->routes[i].from, cfg->routes[i].to, j);
    }

    const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "consumer");
    if (c) {
        static const char *const ckeys[] = {
            "batch_max",         "linger_ms",     "request_timeout_ms", "retry_notify_after_s",
            "item_attempts",     "max_in_flight", "parent_wait_s",      "state_dir",
            "clock_cache_mb",    "state_max_mb",  "horizon_s",          "max_clock_skew_ms",
            "session_timeout_ms"};
        if (!cJSON_IsObject(c))
            return fail(p, "consumer", "expected an object, got %s", type_name(c));
        if (check_keys(p, c, "consumer", ckeys, DX_ARRAY_LEN(ckeys)) ||
            get_int32(p, c, "consumer", "batch_max", 1, 10000, &cfg->consumer.batch_max) ||
            get_int32(p, c, "consumer", "linger_ms", 0, 60000, &cfg->consumer.linger_ms) ||
            get_int32(p, c, "consumer", "request_timeout_ms", 100, 600000,
                      &cfg->consumer.request_timeout_ms) ||
            get_int32(p, c, "consumer", "retry_notify_after_s", 0, 86400,
                      &cfg->consumer.retry_notify_after_s) ||
            get_int32(p, c, "consumer", "item_attempts", 1, 1000, &cfg->consumer.item_attempts) ||
            get_int32(p, c, "consumer", "max_in_flight", 1, 256, &cfg->consumer.max_in_flight) ||
            get_int32(p, c, "consumer", "parent_wait_s", 0, 604800, &cfg->consumer.parent_wait_s) ||
            get_string(p, c, "consumer", "state_dir", false, &cfg->consumer.state_dir) ||
            get_int32(p, c, "consumer", "clock_cache_mb", 1, 65536,
                      &cfg->consumer.clock_cache_mb) ||
            get_int32(p, c, "consumer", "state_max_mb", 16, 4194304, &cfg->consumer.state_max_mb) ||
            get_int32(p, c, "consumer", "horizon_s", 0, 315360000, &cfg->consumer.horizon_s) ||
            get_int32(p, c, "consumer", "max_clock_skew_ms", 0, 3600000,
                      &cfg->consumer.max_clock_skew_ms) ||
            get_int32(p, c, "consumer", "session_timeout_ms", 6000, 1800000,
                      &cfg->consumer.session_timeout_ms))
            return -1;
    }
    if (parse_web(p, cJSON_GetObjectItemCaseSensitive(root, "web"), &cfg->web))
        return -1;
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(root, "producer");
    if (pr) {
        static const char *const pkeys[] = {"standby_retry_ms", "wal_sender_timeout_ms"};
        if (!cJSON_IsObject(pr))
            return fail(p, "producer", "expected an object, got %s", type_name(pr));
        if (check_keys(p, pr, "producer", pkeys, DX_ARRAY_LEN(pkeys)) ||
            get_int32(p, pr, "producer", "standby_retry_ms", 100, 60000,
                      &cfg->producer.standby_retry_ms) ||
            get_int32(p, pr, "producer", "wal_sender_timeout_ms", 0, 3600000,
                      &cfg->producer.wal_sender_timeout_ms))
            return -1;
        if (cfg->producer.wal_sender_timeout_ms > 0 && cfg->producer.wal_sender_timeout_ms < 1000)
            return fail(p, "producer.wal_sender_timeout_ms",
                        "%d is too short: 0 (the server's setting) or at least 1000",
                        cfg->producer.wal_sender_timeout_ms);
    }
    const cJSON *nt = cJSON_GetObjectItemCaseSensitive(root, "notify");
    if (nt) {
        static const char *const nkeys[] = {"digest_window_s"};
        if (!cJSON_IsObject(nt))
            return fail(p, "notify", "expected an object, got %s", type_name(nt));
        if (check_keys(p, nt, "notify", nkeys, DX_ARRAY_LEN(nkeys)) ||
            get_int32(p, nt, "notify", "digest_window_s", 0, 86400, &cfg->notify.digest_window_s))
            return -1;
    }
    return 0;
}

static void set_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->kafka.partitions = 6;
    cfg->kafka.replication_factor = -1;
    cfg->kafka.retention_ms = -1;
    cfg->consumer.batch_max = 100;
    cfg->consumer.linger_ms = 0;
    cfg->consumer.request_timeout_ms = 30000;
    cfg->consumer.retry_notify_after_s = 60;
    cfg->consumer.item_attempts = 5;
    cfg->consumer.max_in_flight = 4;
    cfg->consumer.parent_wait_s = 600;
    cfg->consumer.clock_cache_mb = 16;
    cfg->consumer.state_max_mb = 10240;
    cfg->consumer.horizon_s = 21600;
    cfg->consumer.max_clock_skew_ms = 5000;
    cfg->consumer.session_timeout_ms = 15000;
    cfg->notify.digest_window_s = 60;
    cfg->producer.standby_retry_ms = 1000;
}

/* 1-based line and column of byte offset off in buf. */
static void line_col(const char *buf, size_t off, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off; i++) {
        if (buf[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

int config_load_buffer(const char *buf, size_t len, struct config *cfg, char *err, size_t errlen)
{
    struct parse p = {.err = err, .errlen = errlen};
    set_defaults(cfg);
    size_t bad;
    if (!util_utf8_valid(buf, len, &bad)) {
        int line, col;
        line_col(buf, bad, &line, &col);
        snprintf(err, errlen, "line %d column %d: not valid UTF-8", line, col);
        return -1;
    }
    size_t off = 0;
    cJSON *root = util_json_parse(buf, len, &off);
    if (!root) {
        int line, col;
        line_col(buf, off, &line, &col);
        snprintf(err, errlen, "line %d column %d: not valid JSON", line, col);
        return -1;
    }
    int rc = parse_root(&p, root, cfg);
    json_wipe(root);
    cJSON_Delete(root);
    if (rc) {
        config_free(cfg);
        return -1;
    }
    return 0;
}

int config_load_file(const char *path, struct config *cfg, char *err, size_t errlen)
{
    set_defaults(cfg);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct util_buf b = {0};
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        util_buf_append(&b, chunk, n);
        if (b.len > 16 * 1024 * 1024)
            break;
    }
    bool read_err = ferror(f) != 0;
    fclose(f);
    util_wipe(chunk, sizeof(chunk));
    if (read_err || b.failed || b.len > 16 * 1024 * 1024) {
        snprintf(err, errlen, "%s: cannot read (or larger than 16 MiB)", path);
        util_wipe(b.data, b.len);
        util_buf_free(&b);
        return -1;
    }
    char inner[1024];
    int rc = config_load_buffer(b.data ? b.data : "", b.len, cfg, inner, sizeof(inner));
    util_wipe(b.data, b.len);
    util_buf_free(&b);
    if (rc)
        snprintf(err, errlen, "%s: %s", path, inner);
    return rc;
}

static void free_strv(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void config_free(struct config *cfg)
{
    free(cfg->web.cert_file);
    free(cfg->web.key_file);
    for (size_t i = 0; i < cfg->web.nusers; i++) {
        free(cfg->web.users[i].key);
        free(cfg->web.users[i].value);
    }
    free(cfg->web.users);
    free(cfg->kafka.brokers);
    free(cfg->kafka.topic_prefix);
    for (size_t i = 0; i < cfg->kafka.nproperties; i++) {
        free(cfg->kafka.properties[i].key);
        util_free_secret(cfg->kafka.properties[i].value); /* sasl.password, ssl keys, ... */
    }
    free(cfg->kafka.properties);
    for (size_t i = 0; i < cfg->ninstances; i++) {
        struct config_instance *in = &cfg->instances[i];
        free(in->name);
        free(in->url);
        util_free_secret(in->token);
        util_free_secret(in->database);
        free(in->sync_user);
        free(in->ca_file);
        free(in->client_cert);
        free(in->client_key);
        free(in->token_unset);
        free(in->database_why);
    }
    free(cfg->instances);
    for (size_t i = 0; i < cfg->nroutes; i++) {
        struct config_route *r = &cfg->routes[i];
        free(r->from);
        free(r->to);
        for (size_t j = 0; j < r->ncollections; j++) {
            free(r->collections[j].collection);
            free_strv(r->collections[j].fields, r->collections[j].nfields);
        }
        free(r->collections);
        free_strv(r->notify, r->nnotify);
    }
    free(cfg->routes);
    free(cfg->consumer.state_dir);
    memset(cfg, 0, sizeof(*cfg));
}
