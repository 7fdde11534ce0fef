/* clockdb: the consumer's durable store of its convergence clocks (lww.h), in LMDB (a
 * copy-on-write B+tree in a memory map: a commit is atomic, and a store reopened after a crash
 * of the process or of the machine holds its last commit whole, with no recovery step). One
 * environment per consumer member, a directory holding four tables:
 *   clocks   "<collection>\x1f<key>" -> the key's clocks (lww's encoding, opaque here)
 *   targets  "<topic>\0<partition>"  -> the offset up to which the stored clocks hold that
 *                                       partition's events (the checkpoint)
 *   floors   "<partition>"           -> the commit time (µs) before which the partition's clocks
 *                                       may lack writes (lww.h, the horizon)
 *   meta     "format", "partitions"
 * A checkpoint (clockdb_begin ... clockdb_commit) stores the clocks that changed, then the
 * offsets and floors they cover: the offsets and floors are committed with the last of the
 * clocks, or not at all. (A long checkpoint's clocks go in several transactions of 2,048: a
 * write transaction keeps its pages in memory until it commits; clocks stored ahead of their
 * offsets are harmless, they are read again after a crash.) Commits flush the
 * data pages but not the meta page (MDB_NOMETASYNC): a machine crash may undo the last commit,
 * never tear it. The map size is a hard cap: a full store fails its commit (the error says
 * which setting to raise) and the previous checkpoint stays. */
#ifndef DXSYNC_CLOCKDB_H
#define DXSYNC_CLOCKDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct clockdb;

/* Opens (creating) the store in dir, mapping at most max_bytes. partitions: the topics'
 * partition count; a store written with another count (a key's partition changed) is emptied.
 * Returns 0, 1 when the store was emptied (err says why: a note, not an error), or -1 with err
 * set (nothing to free). */
int clockdb_open(struct clockdb **out, const char *dir, size_t max_bytes, int partitions, char *err,
                 size_t errlen);
void clockdb_close(struct clockdb *db);
const char *clockdb_dir(const struct clockdb *db);

/* The longest key clockdb_put takes. */
size_t clockdb_max_key(const struct clockdb *db);

/* Reads key's value: 1 with *val and *len pointing into the map (valid until the next clockdb
 * call), 0 when absent, -1 on a store error. */
int clockdb_get(struct clockdb *db, const void *key, size_t klen, const void **val, size_t *len);

/* The offset up to which the stored clocks hold topic/partition, or -1 when none was stored. */
int64_t clockdb_target(struct clockdb *db, const char *topic, int32_t partition);
/* The floor of partition: 1 with *floor_us, or 0 when none was stored. */
int clockdb_floor(struct clockdb *db, int32_t partition, int64_t *floor_us);

/* A checkpoint: begin, any number of puts, commit (or abort). Each returns 0, or -1 with err
 * set; after a failed put or commit the transaction is gone (nothing of it is stored). */
int clockdb_begin(struct clockdb *db, char *err, size_t errlen);
int clockdb_put(struct clockdb *db, const void *key, size_t klen, const void *val, size_t len,
                char *err, size_t errlen);
int clockdb_set_target(struct clockdb *db, const char *topic, int32_t partition, int64_t offset,
                       char *err, size_t errlen);
int clockdb_set_floor(struct clockdb *db, int32_t partition, int64_t floor_us, char *err,
                      size_t errlen);
int clockdb_commit(struct clockdb *db, char *err, size_t errlen);
void clockdb_abort(struct clockdb *db);

struct clockdb_stats {
    size_t keys;       /* keys whose clocks are stored */
    size_t used_bytes; /* pages in use */
    size_t file_bytes; /* the data file's size */
};
void clockdb_stats(struct clockdb *db, struct clockdb_stats *out);

/* Drops the map's pages from this process's resident set (the page cache keeps them; a later
 * read maps them again): what the B+tree's pages read since cost the RSS goes back. */
void clockdb_release_pages(struct clockdb *db);

#endif
