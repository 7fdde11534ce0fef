/* config_reload: what a reloaded configuration may change while a program runs, and what it
 * changed, in words an operator reads in one log line. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static bool same(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

int config_reload_check(const struct config *cur, const struct config *next, const char *instance,
                        char *err, size_t errlen)
{
    static const char fixed[] = "cannot change while running: restart the program to use it";
    if (!same(cur->kafka.brokers, next->kafka.brokers)) {
        snprintf(err, errlen, "kafka.brokers %s", fixed);
        return -1;
    }
    if (!same(cur->kafka.topic_prefix, next->kafka.topic_prefix)) {
        snprintf(err, errlen, "kafka.topic_prefix %s (the topics and groups are named by it)",
                 fixed);
        return -1;
    }
    bool web_same = same(cur->web.cert_file, next->web.cert_file) &&
                    same(cur->web.key_file, next->web.key_file) &&
                    cur->web.nusers == next->web.nusers;
    for (size_t i = 0; web_same && i < cur->web.nusers; i++)
        web_same = same(cur->web.users[i].key, next->web.users[i].key) &&
                   same(cur->web.users[i].value, next->web.users[i].value);
    if (!web_same) {
        snprintf(err, errlen, "web %s (the status server's TLS and users)", fixed);
        return -1;
    }
    if (!same(cur->consumer.state_dir, next->consumer.state_dir)) {
        snprintf(err, errlen, "consumer.state_dir %s (the consumer's store lives there)", fixed);
        return -1;
    }
    if (instance && !config_instance_find(next, instance)) {
        snprintf(err, errlen,
                 "instances: \"%s\", the instance this process serves, is no longer there: stop "
                 "the process instead",
                 instance);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------ the changes */

struct out {
    char *buf;
    size_t len, used;
};

static void say(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct out *o, const char *fmt, ...)
{
    if (o->used + 1 >= o->len)
        return;
    if (o->used) {
        int n = snprintf(o->buf + o->used, o->len - o->used, "; ");
        o->used += (size_t)n < o->len - o->used ? (size_t)n : o->len - o->used - 1;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->used, o->len - o->used, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->used += (size_t)n < o->len - o->used ? (size_t)n : o->len - o->used - 1;
}

static bool list_has(char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

static bool same_list(char *const *a, size_t na, char *const *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (!list_has(b, nb, a[i]))
            return false;
    return true;
}

/* "+x -y" of the fields of one collection. */
static void say_fields(struct out *o, const char *route, const struct config_collection *a,
                       const struct config_collection *b)
{
    char d[512] = "";
    size_t u = 0;
    for (size_t i = 0; i < b->nfields && u < sizeof(d); i++)
        if (!list_has(a->fields, a->nfields, b->fields[i]))
            u += (size_t)snprintf(d + u, sizeof(d) - u, "%s+%s", u ? " " : "", b->fields[i]);
    for (size_t i = 0; i < a->nfields && u < sizeof(d); i++)
        if (!list_has(b->fields, b->nfields, a->fields[i]))
            u += (size_t)snprintf(d + u, sizeof(d) - u, "%s-%s", u ? " " : "", a->fields[i]);
    if (d[0])
        say(o, "route %s %s fields %s", route, a->collection, d);
}

static void say_route(struct out *o, const struct config_route *a, const struct config_route *b)
{
    char name[160];
    snprintf(name, sizeof(name), "%s->%s", b->from, b->to);
    if (a->enabled != b->enabled)
        say(o, "route %s %s", name, b->enabled ? "resumed" : "paused");
    for (size_t i = 0; i < b->ncollections; i++) {
        const struct config_collection *was =
            config_route_collection(a, b->collections[i].collection);
        if (!was)
            say(o, "route %s +%s", name, b->collections[i].collection);
        else
            say_fields(o, name, was, &b->collections[i]);
    }
    for (size_t i = 0; i < a->ncollections; i++)
        if (!config_route_collection(b, a->collections[i].collection))
            say(o, "route %s -%s", name, a->collections[i].collection);
    if (!same_list(a->notify, a->nnotify, b->notify, b->nnotify))
        say(o, "route %s notify (%zu users)", name, b->nnotify);
}

static void say_int(struct out *o, const char *key, int64_t a, int64_t b)
{
    if (a != b)
        say(o, "%s %lld->%lld", key, (long long)a, (long long)b);
}

static bool same_properties(const struct config_kafka *a, const struct config_kafka *b)
{
    if (a->nproperties != b->nproperties)
        return false;
    for (size_t i = 0; i < a->nproperties; i++)
        if (!same(a->properties[i].key, b->properties[i].key) ||
            !same(a->properties[i].value, b->properties[i].value))
            return false;
    return true;
}

void config_reload_changes(const struct config *a, const struct config *b, char *out, size_t len)
{
    struct out o = {out, len, 0};
    if (len)
        out[0] = '\0';
    for (size_t i = 0; i < b->ninstances; i++) {
        const struct config_instance *n = &b->instances[i];
        const struct config_instance *w = config_instance_find(a, n->name);
        if (!w) {
            say(&o, "instance %s added", n->name);
            continue;
        }
        /* the names of what changed, never a value: tokens and URLs of databases are secret */
        if (!same(w->url, n->url))
            say(&o, "instances.%s.url", n->name);
        if (!same(w->token, n->token))
            say(&o, "instances.%s.token", n->name);
        if (!same(w->database, n->database))
            say(&o, "instances.%s.database", n->name);
        if (!same(w->sync_user, n->sync_user))
            say(&o, "instances.%s.sync_user", n->name);
    }
    for (size_t i = 0; i < a->ninstances; i++)
        if (!config_instance_find(b, a->instances[i].name))
            say(&o, "instance %s removed", a->instances[i].name);
    for (size_t i = 0; i < b->nroutes; i++) {
        const struct config_route *w = config_route_find(a, b->routes[i].from, b->routes[i].to);
        if (w)
            say_route(&o, w, &b->routes[i]);
        else
            say(&o, "route %s->%s added%s", b->routes[i].from, b->routes[i].to,
                b->routes[i].enabled ? "" : " (paused)");
    }
    for (size_t i = 0; i < a->nroutes; i++)
        if (!config_route_find(b, a->routes[i].from, a->routes[i].to))
            say(&o, "route %s->%s removed", a->routes[i].from, a->routes[i].to);
    if (!same_properties(&a->kafka, &b->kafka))
        say(&o, "kafka.properties");
    say_int(&o, "kafka.partitions", a->kafka.partitions, b->kafka.partitions);
    say_int(&o, "kafka.replication_factor", a->kafka.replication_factor,
            b->kafka.replication_factor);
    say_int(&o, "kafka.retention_ms", a->kafka.retention_ms, b->kafka.retention_ms);
#define CONSUMER_INT(k) say_int(&o, "consumer." #k, a->consumer.k, b->consumer.k)
    CONSUMER_INT(batch_max);
    CONSUMER_INT(linger_ms);
    CONSUMER_INT(request_timeout_ms);
    CONSUMER_INT(retry_notify_after_s);
    CONSUMER_INT(item_attempts);
    CONSUMER_INT(max_in_flight);
    CONSUMER_INT(parent_wait_s);
    CONSUMER_INT(clock_cache_mb);
    CONSUMER_INT(state_max_mb);
    CONSUMER_INT(horizon_s);
    CONSUMER_INT(max_clock_skew_ms);
    CONSUMER_INT(session_timeout_ms);
#undef CONSUMER_INT
    say_int(&o, "notify.digest_window_s", a->notify.digest_window_s, b->notify.digest_window_s);
    say_int(&o, "producer.standby_retry_ms", a->producer.standby_retry_ms,
            b->producer.standby_retry_ms);
    say_int(&o, "producer.wal_sender_timeout_ms", a->producer.wal_sender_timeout_ms,
            b->producer.wal_sender_timeout_ms);
}
