/* capture: assembles one transaction's directus_activity and directus_revisions inserts (as
 * decoded by pgoutput) into change events. The routed tables are in the publication too: the
 * row an Insert or Update of one leaves is the item's image, and an event's data is that image
 * over the revision's data (the revision can lack a many-to-one key of a nested write; a hook
 * may have changed the payload). No I/O: what it needs to know about a collection comes from
 * the caller's lookup callback, and rows with neither revision nor image are handed back
 * marked needs_row for the caller to read. An update with neither, of a published table, did
 * not change the row (only an alias, such as a many-to-many's junction rows): no event. */
#ifndef DXSYNC_CAPTURE_H
#define DXSYNC_CAPTURE_H

#include "event.h"
#include "pgoutput.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum capture_type { CAPTURE_TEXT = 0, CAPTURE_INTEGER, CAPTURE_NUMBER, CAPTURE_BOOLEAN };

struct capture_column {
    char *name;
    enum capture_type type;
};

/* What the producer knows of one synced collection (owned by the caller). */
struct capture_collection {
    char *name;
    char *pk; /* primary key column */
    enum capture_type pk_type;
    char **fields; /* the union of the routes' fields (the pk travels anyway) */
    size_t nfields;
    struct capture_column *columns; /* the table's columns, for typing values */
    size_t ncolumns;
    bool published; /* the table is in the publication: its changed rows come with the events */
};

/* What a lookup can say of a collection. "Not synced" and "cannot tell now" differ: the
 * changes of the first are dropped, a transaction with changes of the second waits. */
enum capture_lookup {
    CAPTURE_NOT_SYNCED = 0, /* no route syncs it from this source */
    CAPTURE_SYNCED,         /* synced: *coll is set */
    CAPTURE_UNKNOWN,        /* synced, but what it is cannot be known now (its table does not
                               exist yet, the database is unreachable): ask again later */
};

/* Tells whether the collection is synced from this source, setting *coll when it is. May do
 * I/O (it is the caller's). */
typedef enum capture_lookup (*capture_lookup_fn)(void *opaque, const char *collection,
                                                 const struct capture_collection **coll);

struct capture_config {
    const char *source;    /* instance name: event ids are <source>:<activity id> */
    const char *sync_user; /* uuid whose changes are ignored, or NULL */
    capture_lookup_fn lookup;
    void *opaque;
};

struct capture_event {
    struct event ev;
    const struct capture_collection *coll;
    bool needs_row; /* no revision: ev.data must be read from the table (then capture_finish) */
};

struct capture_txn {
    uint64_t commit_lsn;
    uint64_t end_lsn; /* confirm this once every event of the transaction is in Kafka */
    int64_t commit_time_ms;
    struct capture_event *events;
    size_t nevents;
};

struct capture;

/* Copies nothing from cfg but the pointers: cfg's strings must outlive the capture. */
struct capture *capture_new(const struct capture_config *cfg);
void capture_free(struct capture *c);

/* Feeds one decoded message. After a COMMIT, *done is set to the finished transaction (owned
 * by the capture, valid until the next capture_feed), else NULL. Returns 0, or -1 with err
 * (a protocol violation such as an insert outside a transaction). A COMMIT whose changes touch
 * a collection the lookup answers CAPTURE_UNKNOWN for leaves *done NULL and the transaction
 * waiting (capture_waiting): call capture_resume until it finishes; capture_feed refuses more
 * messages meanwhile. */
int capture_feed(struct capture *c, const struct pgoutput_msg *msg, struct capture_txn **done,
                 char *err, size_t errlen);

/* True when a committed transaction waits for a collection the lookup could not tell about;
 * *collection (when not NULL) names it (valid until the next call into the capture). */
bool capture_waiting(const struct capture *c, const char **collection);

/* Asks the lookup again for the waiting transaction. 0 with *done set when it finished (as
 * capture_feed would have), 0 with *done NULL while it still waits; -1 with err on an error. */
int capture_resume(struct capture *c, struct capture_txn **done, char *err, size_t errlen);

/* True between a Begin and its Commit, and while a committed transaction waits: its LSN must
 * not be confirmed. */
bool capture_in_txn(const struct capture *c);

/* Forgets any open or waiting transaction (after a reconnect). */
void capture_reset(struct capture *c);

/* Sets ev->data (taking ownership of row) for a needs_row event: filters it to the routed
 * fields, types values, completes the key; delta becomes the same fields. */
void capture_set_row(struct capture_event *e, cJSON *row);

/* Filters an item to the collection's routed fields plus the primary key, typing numbers and
 * booleans by column type and setting the key. Takes and returns ownership. */
cJSON *capture_shape(const struct capture_collection *coll, cJSON *item, const cJSON *key);

/* Converts PostgreSQL timestamptz text ("2026-11-25 22:30:39.839+00") to ISO 8601 UTC with
 * milliseconds. Returns 0 or -1. */
int capture_timestamp(const char *pg, char *buf, size_t len);

#endif
