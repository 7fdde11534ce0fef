/* clockdb.c: LMDB used the way its own documentation and Knot DNS's journal use it: one
 * environment, named databases opened once, one write transaction per checkpoint, and a single
 * read transaction that is reset between reads so that it never pins old pages. */
#define _DEFAULT_SOURCE /* madvise */
#include "clockdb.h"

#include <errno.h>
#include <limits.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define FORMAT 1
/* Clocks a transaction holds before the checkpoint goes on in the next one: LMDB keeps a write
 * transaction's pages in memory until its commit (up to 4 KiB a clock written at random), so a
 * checkpoint of a long read-back in one transaction would take hundreds of MB. */
#define CHUNK 2048

struct clockdb {
    MDB_env *env;
    MDB_dbi clocks, targets, floors, meta;
    MDB_txn *rtxn; /* reset when idle; renewed for a read */
    bool reading;  /* rtxn is active (its pointers are valid) */
    MDB_txn *wtxn; /* the open checkpoint, or NULL */
    size_t puts;   /* clocks written in wtxn */
    void *map;     /* where the data file is mapped (from /proc/self/maps), or NULL */
    size_t maplen;
    char dir[1024];
};

static int fail(char *err, size_t errlen, const struct clockdb *db, const char *what, int rc)
{
    snprintf(err, errlen, "clock store %s: %s: %s%s", db ? db->dir : "", what, mdb_strerror(rc),
             rc == MDB_MAP_FULL ? " (raise consumer.state_max_mb)" : "");
    return -1;
}

/* mkdir -p */
static int make_dir(const char *dir, char *err, size_t errlen)
{
    char path[1024];
    if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path)) {
        snprintf(err, errlen, "clock store directory name too long");
        return -1;
    }
    for (char *s = path + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char was = *s;
        *s = '\0';
        if (mkdir(path, 0700) && errno != EEXIST) {
            snprintf(err, errlen, "cannot create the clock store directory %s: %s", path,
                     strerror(errno));
            return -1;
        }
        *s = was;
        if (!was)
            return 0;
    }
}

static void be32(unsigned char *out, int32_t v)
{
    uint32_t u = (uint32_t)v;
    out[0] = (unsigned char)(u >> 24);
    out[1] = (unsigned char)(u >> 16);
    out[2] = (unsigned char)(u >> 8);
    out[3] = (unsigned char)u;
}

static int get_i64(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, int64_t *out)
{
    MDB_val v;
    if (mdb_get(txn, dbi, k, &v) || v.mv_size != sizeof(*out))
        return 0;
    memcpy(out, v.mv_data, sizeof(*out));
    return 1;
}

static int put_i64(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, int64_t value)
{
    MDB_val v = {sizeof(value), &value};
    return mdb_put(txn, dbi, k, &v, 0);
}

/* Opens the tables and checks the format and partition count; empties the store when the
 * count changed. 1 when emptied (err says why), 0, or -1. */
static int open_tables(struct clockdb *db, int partitions, char *err, size_t errlen)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(db->env, NULL, 0, &txn);
    if (rc)
        return fail(err, errlen, db, "begin", rc);
    if ((rc = mdb_dbi_open(txn, "clocks", MDB_CREATE, &db->clocks)) ||
        (rc = mdb_dbi_open(txn, "targets", MDB_CREATE, &db->targets)) ||
        (rc = mdb_dbi_open(txn, "floors", MDB_CREATE, &db->floors)) ||
        (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &db->meta))) {
        mdb_txn_abort(txn);
        return fail(err, errlen, db, "open tables", rc);
    }
    MDB_val kf = {6, "format"}, kp = {10, "partitions"};
    int64_t format = 0, parts = 0;
    bool known = get_i64(txn, db->meta, &kf, &format);
    get_i64(txn, db->meta, &kp, &parts);
    int emptied = 0;
    if (known && format != FORMAT) {
        mdb_txn_abort(txn);
        snprintf(err, errlen,
                 "clock store %s has format %lld, this program reads %d: move it away or delete "
                 "it (the consumer then starts without local state)",
                 db->dir, (long long)format, FORMAT);
        return -1;
    }
    if (known && parts != partitions) {
        if ((rc = mdb_drop(txn, db->clocks, 0)) || (rc = mdb_drop(txn, db->targets, 0)) ||
            (rc = mdb_drop(txn, db->floors, 0))) {
            mdb_txn_abort(txn);
            return fail(err, errlen, db, "empty", rc);
        }
        snprintf(err, errlen,
                 "kafka.partitions changed from %lld to %d: a key's partition may have moved, so "
                 "the stored clocks were dropped",
                 (long long)parts, partitions);
        emptied = 1;
    }
    if ((rc = put_i64(txn, db->meta, &kf, FORMAT)) ||
        (rc = put_i64(txn, db->meta, &kp, partitions)) || (rc = mdb_txn_commit(txn)))
        return fail(err, errlen, db, "write meta", rc);
    return emptied;
}

/* LMDB tells the map's address only when it is fixed: the data file's line in /proc/self/maps
 * tells it always. */
static void find_map(struct clockdb *db)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return;
    char line[PATH_MAX + 200], want[PATH_MAX + 16], real[PATH_MAX];
    snprintf(want, sizeof(want), "%s/data.mdb", realpath(db->dir, real) ? real : db->dir);
    while (fgets(line, sizeof(line), f)) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        size_t ll = strlen(line), wl = strlen(want);
        unsigned long lo, hi;
        if (ll < wl || strcmp(line + ll - wl, want) != 0 || sscanf(line, "%lx-%lx", &lo, &hi) != 2)
            continue;
        db->map = (void *)(uintptr_t)lo;
        db->maplen = hi - lo;
        break;
    }
    fclose(f);
}

int clockdb_open(struct clockdb **out, const char *dir, size_t max_bytes, int partitions, char *err,
                 size_t errlen)
{
    *out = NULL;
    struct clockdb *db = calloc(1, sizeof(*db));
    if (!db) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(db->dir, sizeof(db->dir), "%s", dir);
    if (make_dir(dir, err, errlen))
        goto fail;
    int rc = mdb_env_create(&db->env);
    if (rc) {
        fail(err, errlen, db, "create", rc);
        goto fail;
    }
    mdb_env_set_maxdbs(db->env, 4);
    if ((rc = mdb_env_set_mapsize(db->env, max_bytes))) {
        fail(err, errlen, db, "map size", rc);
        goto fail;
    }
    /* NOTLS: the read transaction is not tied to a thread's slot; NORDAHEAD: clocks are read
     * at random, so read-ahead only costs resident memory */
    rc = mdb_env_open(db->env, dir, MDB_NOTLS | MDB_NORDAHEAD | MDB_NOMETASYNC, 0600);
    if (rc) {
        fail(err, errlen, db, rc == EACCES ? "open (permission denied)" : "open", rc);
        goto fail;
    }
    int dead = 0;
    mdb_reader_check(db->env, &dead); /* reader slots of a process killed while reading */
    int opened = open_tables(db, partitions, err, errlen);
    if (opened < 0)
        goto fail;
    if ((rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &db->rtxn))) {
        fail(err, errlen, db, "begin read", rc);
        goto fail;
    }
    mdb_txn_reset(db->rtxn);
    find_map(db);
    *out = db;
    return opened;
fail:
    clockdb_close(db);
    return -1;
}

void clockdb_close(struct clockdb *db)
{
    if (!db)
        return;
    if (db->wtxn)
        mdb_txn_abort(db->wtxn);
    if (db->rtxn)
        mdb_txn_abort(db->rtxn);
    if (db->env)
        mdb_env_close(db->env);
    free(db);
}

const char *clockdb_dir(const struct clockdb *db)
{
    return db->dir;
}

size_t clockdb_max_key(const struct clockdb *db)
{
    return (size_t)mdb_env_get_maxkeysize(db->env);
}

/* The transaction reads go through: the open checkpoint (it sees its own writes), else the
 * read transaction, renewed. NULL on error. */
static MDB_txn *reader(struct clockdb *db)
{
    if (db->wtxn)
        return db->wtxn;
    if (db->reading)
        mdb_txn_reset(db->rtxn);
    db->reading = false;
    if (mdb_txn_renew(db->rtxn))
        return NULL;
    db->reading = true;
    return db->rtxn;
}

int clockdb_get(struct clockdb *db, const void *key, size_t klen, const void **val, size_t *len)
{
    MDB_txn *txn = reader(db);
    if (!txn)
        return -1;
    MDB_val k = {klen, (void *)key}, v;
    int rc = mdb_get(txn, db->clocks, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return -1;
    *val = v.mv_data;
    *len = v.mv_size;
    return 1;
}

static size_t target_key(unsigned char *buf, size_t cap, const char *topic, int32_t partition)
{
    size_t tl = strlen(topic);
    if (tl + 5 > cap)
        tl = cap - 5;
    memcpy(buf, topic, tl);
    buf[tl] = '\0';
    be32(buf + tl + 1, partition);
    return tl + 5;
}

int64_t clockdb_target(struct clockdb *db, const char *topic, int32_t partition)
{
    unsigned char kb[300];
    MDB_val k = {target_key(kb, sizeof(kb), topic, partition), kb};
    int64_t off;
    MDB_txn *txn = reader(db);
    return txn && get_i64(txn, db->targets, &k, &off) ? off : -1;
}

int clockdb_floor(struct clockdb *db, int32_t partition, int64_t *floor_us)
{
    unsigned char kb[4];
    be32(kb, partition);
    MDB_val k = {4, kb};
    MDB_txn *txn = reader(db);
    return txn ? get_i64(txn, db->floors, &k, floor_us) : 0;
}

int clockdb_begin(struct clockdb *db, char *err, size_t errlen)
{
    if (db->reading)
        mdb_txn_reset(db->rtxn); /* a reader pins the pages a writer could reuse */
    db->reading = false;
    if (db->wtxn)
        return 0;
    db->puts = 0;
    int rc = mdb_txn_begin(db->env, NULL, 0, &db->wtxn);
    if (rc) {
        db->wtxn = NULL;
        return fail(err, errlen, db, "begin", rc);
    }
    return 0;
}

/* A failed write: the transaction is unusable, so it goes. */
static int write_failed(struct clockdb *db, const char *what, int rc, char *err, size_t errlen)
{
    clockdb_abort(db);
    return fail(err, errlen, db, what, rc);
}

int clockdb_put(struct clockdb *db, const void *key, size_t klen, const void *val, size_t len,
                char *err, size_t errlen)
{
    if (!db->wtxn) {
        snprintf(err, errlen, "clock store: write outside a checkpoint");
        return -1;
    }
    MDB_val k = {klen, (void *)key}, v = {len, (void *)val};
    int rc = mdb_put(db->wtxn, db->clocks, &k, &v, 0);
    if (rc)
        return write_failed(db, "write", rc, err, errlen);
    if (++db->puts < CHUNK)
        return 0;
    /* clocks ahead of the stored offsets are harmless (a restart reads them again): commit this
     * part, go on in a new transaction */
    db->puts = 0;
    rc = mdb_txn_commit(db->wtxn);
    db->wtxn = NULL;
    if (!rc) {
        clockdb_release_pages(db); /* the pages this part went through */
        rc = mdb_txn_begin(db->env, NULL, 0, &db->wtxn);
    }
    if (rc) {
        db->wtxn = NULL;
        return fail(err, errlen, db, "commit", rc);
    }
    return 0;
}

int clockdb_set_target(struct clockdb *db, const char *topic, int32_t partition, int64_t offset,
                       char *err, size_t errlen)
{
    unsigned char kb[300];
    MDB_val k = {target_key(kb, sizeof(kb), topic, partition), kb};
    int rc = db->wtxn ? put_i64(db->wtxn, db->targets, &k, offset) : EINVAL;
    return rc ? write_failed(db, "write checkpoint", rc, err, errlen) : 0;
}

int clockdb_set_floor(struct clockdb *db, int32_t partition, int64_t floor_us, char *err,
                      size_t errlen)
{
    unsigned char kb[4];
    be32(kb, partition);
    MDB_val k = {4, kb};
    int rc = db->wtxn ? put_i64(db->wtxn, db->floors, &k, floor_us) : EINVAL;
    return rc ? write_failed(db, "write floor", rc, err, errlen) : 0;
}

int clockdb_commit(struct clockdb *db, char *err, size_t errlen)
{
    if (!db->wtxn)
        return 0;
    int rc = mdb_txn_commit(db->wtxn);
    db->wtxn = NULL;
    return rc ? fail(err, errlen, db, "commit", rc) : 0;
}

void clockdb_abort(struct clockdb *db)
{
    if (db->wtxn)
        mdb_txn_abort(db->wtxn);
    db->wtxn = NULL;
}

void clockdb_stats(struct clockdb *db, struct clockdb_stats *out)
{
    memset(out, 0, sizeof(*out));
    MDB_txn *txn = reader(db);
    MDB_stat st;
    if (txn && mdb_stat(txn, db->clocks, &st) == 0)
        out->keys = st.ms_entries;
    MDB_envinfo info;
    if (mdb_env_stat(db->env, &st) == 0 && mdb_env_info(db->env, &info) == 0)
        out->used_bytes = (info.me_last_pgno + 1) * st.ms_psize;
    char path[1100];
    struct stat fs;
    snprintf(path, sizeof(path), "%s/data.mdb", db->dir);
    if (stat(path, &fs) == 0)
        out->file_bytes = (size_t)fs.st_blocks * 512;
}

void clockdb_release_pages(struct clockdb *db)
{
    MDB_envinfo info;
    MDB_stat st;
    if (!db->map || db->wtxn || mdb_env_info(db->env, &info) || mdb_env_stat(db->env, &st))
        return;
    if (db->reading)
        mdb_txn_reset(db->rtxn);
    db->reading = false;
    size_t used = (info.me_last_pgno + 1) * st.ms_psize;
    madvise(db->map, used < db->maplen ? used : db->maplen, MADV_DONTNEED);
}
