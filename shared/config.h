/* config: the JSON configuration file of DESIGN.md, with ${ENV} expansion and validation that
 * names the key path and the reason of every bad input. */
#ifndef DXSYNC_CONFIG_H
#define DXSYNC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config_property {
    char *key;
    char *value;
};

struct config_instance {
    char *name;
    char *url;       /* without a trailing slash */
    char *token;     /* secret: the sync user's static token */
    char *database;  /* secret-bearing libpq URL or conninfo; NULL when not given */
    char *sync_user; /* uuid or NULL (then learnt with GET /users/me) */
    /* HTTPS to this Directus: the CA bundle to trust instead of the system's (a private CA),
     * and a client certificate and its key (PEM files); NULL when not given */
    char *ca_file, *client_cert, *client_key;
    /* "instances[0].token: environment variable X is not set", or NULL: the token (then "") or
     * the database (then NULL, database_unset) names an unset variable */
    char *token_unset, *database_why;
    bool database_unset;
};

struct config_collection {
    char *collection;
    char **fields;
    size_t nfields;
};

struct config_route {
    char *from;
    char *to;
    struct config_collection *collections;
    size_t ncollections;
    char **notify; /* user ids in the source instance */
    size_t nnotify;
    bool enabled; /* false: paused; the consumer of `to` holds its partitions and offsets */
};

struct config_kafka {
    char *brokers;
    char *topic_prefix;
    int partitions;
    int replication_factor; /* -1: the broker's default */
    int64_t retention_ms;   /* -1: forever */
    struct config_property *properties;
    size_t nproperties;
};

struct config_consumer {
    int batch_max;
    int linger_ms;
    int request_timeout_ms;
    int retry_notify_after_s;
    int item_attempts;
    int max_in_flight;
    int parent_wait_s; /* how long a write refused for a missing referenced item waits for it */
    /* The consumer's state (state.h): where its store lives (NULL: the default), the memory
     * its clocks may take, the store's size limit, how far back a member without local state
     * reads (0: all of it), the clock skew allowed between hosts, and the group session. */
    char *state_dir;
    int clock_cache_mb;
    int state_max_mb;
    int horizon_s;
    int max_clock_skew_ms;
    int session_timeout_ms;
};

struct config_notify {
    int digest_window_s;
};

struct config_producer {
    int standby_retry_ms;      /* how often a standby producer asks for the slot */
    int wal_sender_timeout_ms; /* the server's wal_sender_timeout for its connection; 0: the
                                  server's own */
};

/* The status server (--metrics-addr), as the Prometheus exporters' web.config: TLS with a
 * certificate and key (PEM files), and HTTP basic auth against bcrypt hashes (/healthz stays
 * open for probes). Everything NULL/0: plain HTTP, no auth. */
struct config_web {
    char *cert_file, *key_file;
    struct config_property *users; /* name -> bcrypt hash */
    size_t nusers;
};

struct config {
    struct config_kafka kafka;
    struct config_web web;
    struct config_instance *instances;
    size_t ninstances;
    struct config_route *routes;
    size_t nroutes;
    struct config_consumer consumer;
    struct config_notify notify;
    struct config_producer producer;
};

/* Loads and validates. On failure returns -1 with "<key path>: <reason>" in err and leaves
 * *cfg empty; on success the caller owns *cfg and releases it with config_free. */
int config_load_file(const char *path, struct config *cfg, char *err, size_t errlen);
/* An instance's token and database may name environment variables that are not set: loading
 * succeeds, and commands that talk to Kafka alone (status, replay, audit, dlq list) run. Every
 * other command calls this first: -1 with the first such error (naming the key path). */
int config_require(const struct config *cfg, char *err, size_t errlen);
/* What a process needs of one instance (config_require_instance): a process needs only its own
 * secrets, and the variables of the rest may be unset. */
enum { CONFIG_NEED_TOKEN = 1, CONFIG_NEED_DATABASE = 2 };
/* -1 with the error (naming the key path and the variable) when instance `name` lacks a secret
 * of `need`: a token or database naming an unset variable, or a database not given. */
int config_require_instance(const struct config *cfg, const char *name, int need, char *err,
                            size_t errlen);
/* config_require_instance for a route's source, with why it is needed after the error
 * (" (route a -> b <why>)"). */
int config_require_source(const struct config *cfg, const struct config_route *r, const char *why,
                          char *err, size_t errlen);
int config_load_buffer(const char *buf, size_t len, struct config *cfg, char *err, size_t errlen);
void config_free(struct config *cfg);

const struct config_instance *config_instance_find(const struct config *cfg, const char *name);
const struct config_route *config_route_find(const struct config *cfg, const char *from,
                                             const char *to);
const struct config_collection *config_route_collection(const struct config_route *route,
                                                        const char *collection);

/* Registers with the logger the secrets of a libpq connection string (password, sslpassword;
 * an unparsable one whole), and a librdkafka property's value when its key holds a secret. */
void config_register_database(const char *database);
/* PQconninfoFree with the values (a password among them) wiped first. */
struct _PQconninfoOption;
void config_conninfo_free(struct _PQconninfoOption *opts);
void config_register_property(const char *key, const char *value);
/* Registers every secret of cfg (tokens, database passwords) with the logger. */
void config_register_secrets(const struct config *cfg);

/* Writes a libpq connection string with the password removed, for log lines (a cut one ends
 * with "..."). */
void config_database_display(const char *database, char *buf, size_t len);

/* Whether a route from `from` to `to` carries collection coll. */
bool config_route_carries(const struct config *cfg, const char *from, const char *to,
                          const char *coll);
/* Whether instance publishes coll (some route from it carries it). */
bool config_publishes(const struct config *cfg, const char *instance, const char *coll);

/* A configuration re-read while a program runs (SIGHUP): 0 when next may replace cur, or -1
 * with err naming the first setting that cannot change while running (kafka.brokers,
 * kafka.topic_prefix, consumer.state_dir) or instance, the one the process serves (NULL:
 * none), missing from next. */
int config_reload_check(const struct config *cur, const struct config *next, const char *instance,
                        char *err, size_t errlen);
/* What next changes of a, "; "-separated ("route a->b paused; consumer.batch_max 100->250"),
 * "" when nothing: names of secret-bearing settings, never their values. */
void config_reload_changes(const struct config *a, const struct config *next, char *out,
                           size_t len);

#endif
