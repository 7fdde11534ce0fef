/* source: the producer's ordinary connection to the instance's PostgreSQL: publication and
 * slot set-up, what it knows of each synced collection (primary key, column types), and
 * reading an item's current row when Directus wrote no revision. */
#ifndef DXSYNC_SOURCE_H
#define DXSYNC_SOURCE_H

#include "capture.h"
#include "config.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

struct source;

/* Prepares (does not connect) the source of instance `instance`, syncing the collections
 * of every route from it (fields: the union of the routes' lists). NULL when out of memory. */
struct source *source_new(const struct config *cfg, const struct config_instance *instance);
void source_free(struct source *s);

/* Connects (or reconnects) the ordinary connection. 0, or -1 with err. */
int source_connect(struct source *s, char *err, size_t errlen);
PGconn *source_conn(struct source *s);

/* The id of the active Directus user whose static token is token, read from directus_users
 * (Directus keeps static tokens there as they are and compares them the same way): the
 * producer then needs no request to Directus to know its sync user. The token is compared here,
 * never sent to the server (whose log may print a statement's parameters). 1 found, 0 no such
 * user, -1 with err: the database cannot be reached or the table cannot be read. */
int source_token_user(struct source *s, const char *token, char *id, size_t idlen, char *err,
                      size_t errlen);

/* fn(opaque) is called about every second while a query of the source waits for the server
 * (the producer keeps its replication connection alive there). NULL: none. */
void source_set_wait_cb(struct source *s, void (*fn)(void *opaque), void *opaque);

/* Slot and publication name: dxsync_<instance>. */
const char *source_slot(const struct source *s);

/* Creates the publication (inserts of directus_activity and directus_revisions, inserts and
 * updates of the routed collections' tables, whose rows give the events their data) and the
 * pgoutput slot when missing; adds what an existing publication lacks. A routed table that
 * cannot be added is logged, not fatal (its events fall back on the revision rows). 0, or -1
 * with err. */
int source_ensure_slot(struct source *s, char *err, size_t errlen);

/* The synced collection names (for topic creation). */
size_t source_collections(const struct source *s, const char *const **names);

/* capture_lookup_fn: metadata of a synced collection, read once from the catalog.
 * CAPTURE_NOT_SYNCED when no route syncs it from this instance; CAPTURE_UNKNOWN while it is
 * routed but its metadata cannot be read (table missing, no primary key, database unreachable:
 * the catalog is asked again at most every 5 s, reconnecting when needed). */
enum capture_lookup source_lookup(void *source, const char *collection,
                                  const struct capture_collection **coll);

/* Fills every needs_row event of txn with the item's current row. An item already gone is
 * left without data and dropped from the transaction (a delete event follows it). */
int source_fill_rows(struct source *s, struct capture_txn *txn, char *err, size_t errlen);

/* The session settings of every connection to the source (libpq's options): UTC, ISO dates,
 * full float precision. */
#define SOURCE_SESSION_OPTIONS "-c TimeZone=UTC -c DateStyle=ISO -c extra_float_digits=3"

/* Connection parameters for libpq: the instance's database plus extra pairs (NULL-terminated
 * keywords/values arrays, a later keyword replacing an earlier one), e.g. replication=database.
 * Uses expand_dbname. */
PGconn *source_connect_params(const char *database, const char *const *keys,
                              const char *const *vals);

#endif
