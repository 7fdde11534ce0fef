/* config_use.c: what the programs use of a loaded configuration: lookups, the secrets a command
 * needs (config_require*), and the secrets registered with the logger for masking. config.c
 * reads and checks the file. */
#include "config.h"

#include "log.h"
#include "util.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* PQconninfoFree, the values (a password among them) wiped first. */
void config_conninfo_free(PQconninfoOption *opts)
{
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (o->val)
            util_wipe(o->val, strlen(o->val));
    PQconninfoFree(opts);
}

/* The secrets of a libpq connection string: its password and sslpassword (the client key's). An
 * unparsable one is registered whole: its error message may quote it. */
void config_register_database(const char *database)
{
    if (!database || !database[0])
        return;
    PQconninfoOption *opts = PQconninfoParse(database, NULL);
    if (!opts) {
        log_add_secret(database);
        return;
    }
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if ((strcmp(o->keyword, "password") == 0 || strcmp(o->keyword, "sslpassword") == 0) &&
            o->val)
            log_add_secret(o->val);
    config_conninfo_free(opts);
}

/* The secret-bearing librdkafka properties: passwords (sasl.password, ssl.key.password,
 * ssl.keystore.password), client secrets, the OAUTHBEARER config, and a private key given
 * inline (ssl.key.pem). */
void config_register_property(const char *key, const char *value)
{
    if (strstr(key, "password") || strstr(key, "secret") ||
        strstr(key, "sasl.oauthbearer.config") || strcmp(key, "ssl.key.pem") == 0 ||
        strcmp(key, "ssl_key") == 0)
        log_add_secret(value);
}

const struct config_instance *config_instance_find(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->ninstances; i++)
        if (cfg->instances[i].name && strcmp(cfg->instances[i].name, name) == 0)
            return &cfg->instances[i];
    return NULL;
}

const struct config_route *config_route_find(const struct config *cfg, const char *from,
                                             const char *to)
{
    for (size_t i = 0; i < cfg->nroutes; i++)
        if (strcmp(cfg->routes[i].from, from) == 0 && strcmp(cfg->routes[i].to, to) == 0)
            return &cfg->routes[i];
    return NULL;
}

const struct config_collection *config_route_collection(const struct config_route *route,
                                                        const char *collection)
{
    for (size_t i = 0; i < route->ncollections; i++)
        if (strcmp(route->collections[i].collection, collection) == 0)
            return &route->collections[i];
    return NULL;
}

int config_require(const struct config *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; i < cfg->ninstances; i++)
        if (cfg->instances[i].token_unset || cfg->instances[i].database_unset) {
            const struct config_instance *in = &cfg->instances[i];
            snprintf(err, errlen, "%s", in->token_unset ? in->token_unset : in->database_why);
            return -1;
        }
    return 0;
}

int config_require_source(const struct config *cfg, const struct config_route *r, const char *why,
                          char *err, size_t errlen)
{
    char e[512];
    if (config_require_instance(cfg, r->from, CONFIG_NEED_TOKEN, e, sizeof(e)) == 0)
        return 0;
    snprintf(err, errlen, "%s (route %s -> %s %s)", e, r->from, r->to, why);
    return -1;
}

int config_require_instance(const struct config *cfg, const char *name, int need, char *err,
                            size_t errlen)
{
    const struct config_instance *in = config_instance_find(cfg, name);
    if (!in) {
        snprintf(err, errlen, "instances: no instance named \"%s\"", name);
        return -1;
    }
    if ((need & CONFIG_NEED_TOKEN) && in->token_unset) {
        snprintf(err, errlen, "%s", in->token_unset);
        return -1;
    }
    if ((need & CONFIG_NEED_DATABASE) && in->database_unset) {
        snprintf(err, errlen, "%s", in->database_why);
        return -1;
    }
    if ((need & CONFIG_NEED_DATABASE) && !in->database) {
        size_t i = (size_t)(in - cfg->instances);
        snprintf(err, errlen, "instances[%zu].database: instance \"%s\" has no database", i,
                 in->name);
        return -1;
    }
    return 0;
}

void config_register_secrets(const struct config *cfg)
{
    for (size_t i = 0; i < cfg->ninstances; i++) {
        const struct config_instance *in = &cfg->instances[i];
        if (in->token && in->token[0])
            log_add_secret(in->token);
        config_register_database(in->database);
    }
    for (size_t i = 0; i < cfg->kafka.nproperties; i++)
        config_register_property(cfg->kafka.properties[i].key, cfg->kafka.properties[i].value);
}

void config_database_display(const char *database, char *buf, size_t len)
{
    PQconninfoOption *opts = database ? PQconninfoParse(database, NULL) : NULL;
    if (!opts) {
        snprintf(buf, len, "(unparsable)");
        return;
    }
    const char *host = NULL, *port = NULL, *db = NULL, *user = NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val)
            continue;
        if (strcmp(o->keyword, "host") == 0)
            host = o->val;
        else if (strcmp(o->keyword, "port") == 0)
            port = o->val;
        else if (strcmp(o->keyword, "dbname") == 0)
            db = o->val;
        else if (strcmp(o->keyword, "user") == 0)
            user = o->val;
    }
    if (util_format(buf, len, "host=%s port=%s dbname=%s user=%s", host ? host : "(default)",
                    port ? port : "(default)", db ? db : "(default)", user ? user : "(default)") &&
        len >= 4)
        memcpy(buf + len - 4, "...", 4); /* cut: a display only, never connected to */
    config_conninfo_free(opts);
}

bool config_route_carries(const struct config *cfg, const char *from, const char *to,
                          const char *coll)
{
    for (size_t i = 0; cfg && i < cfg->nroutes; i++) {
        const struct config_route *rt = &cfg->routes[i];
        if (strcmp(rt->from, from) != 0 || (to && strcmp(rt->to, to) != 0))
            continue;
        for (size_t j = 0; j < rt->ncollections; j++)
            if (strcmp(rt->collections[j].collection, coll) == 0)
                return true;
    }
    return false;
}

bool config_publishes(const struct config *cfg, const char *instance, const char *coll)
{
    return config_route_carries(cfg, instance, NULL, coll);
}
