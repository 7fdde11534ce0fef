/* acl: the Kafka ACLs a dxsync process needs, printed as kafka-acls.sh commands for an admin to
 * run (`dxsync-producer acls`, `dxsync-consumer acls`, `dxsync-notifier acls`). One principal per
 * program and instance; only the operations that program performs. */
#ifndef DXSYNC_ACL_H
#define DXSYNC_ACL_H

#include "config.h"
#include "report.h"

#include <stdio.h>

enum acl_op {
    ACL_READ = 1,
    ACL_WRITE = 2,
    ACL_DESCRIBE = 4,
};

enum acl_kind { ACL_TOPIC, ACL_GROUP };

struct acl_entry {
    enum acl_kind kind;
    char *name;
    unsigned ops;
    bool created; /* a topic the program creates when it is missing (Create, or made beforehand) */
};

struct acl_set {
    struct acl_entry *e;
    size_t n;
    bool oom;
};

/* Adds ops on a resource (merged with what it already has); created: the program creates the
 * topic when it does not exist. */
void acl_add(struct acl_set *s, enum acl_kind kind, const char *name, unsigned ops, bool created);
void acl_free(struct acl_set *s);

/* The principal to print: --principal, else kafka.properties' sasl.username, else fallback
 * ("dxsync-consumer-b"). Without "User:" it is added. */
const char *acl_principal(const struct config *cfg, const char *given, const char *fallback,
                          char *buf, size_t len);

/* Prints, for principal, a kafka-acls.sh line per resource and the topics to create beforehand
 * (kafka-topics.sh) or to grant Create on. what: "dxsync-consumer --remote b". Returns 0, or -1
 * when out of memory (nothing trustworthy was printed). */
int acl_print(FILE *out, const struct config *cfg, const struct acl_set *s, const char *principal,
              const char *what);

/* acl_print for the principal acl_principal picks (given, else sasl.username, else fallback),
 * then acl_free(s): the exit status of an `acls` subcommand (0, or 1 when out of memory). */
int acl_command(const struct config *cfg, struct acl_set *s, const char *given,
                const char *fallback, const char *what);

/* The producer of instance's: Write and Describe on <prefix>.<instance>.<collection> of every
 * collection a route from it carries (it creates them). */
void acl_producer(const struct config *cfg, const char *instance, struct acl_set *s);
/* The notifier's: Read and Describe on <prefix>.errors (it creates it), Read on group
 * <prefix>.notify. */
void acl_notifier(const struct config *cfg, struct acl_set *s);

/* The Kafka part of a check command: tries s against the cluster as the configured principal
 * without writing anything (connects; describes each topic, and for a missing one that the
 * program creates asks Kafka whether it may, validate_only; reads each group's committed
 * offsets) and reports each finding on r. Blocks up to about 10 s per unanswered request. */
void acl_check(struct report *r, const struct config *cfg, const struct acl_set *s);

#endif
