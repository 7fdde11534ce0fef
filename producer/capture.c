#include "capture.h"

#include "log.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct activity_row {
    int64_t id;
    char action[16];
    char *user;
    char *timestamp;
    char *collection;
    char *item;
    const struct capture_collection *coll; /* the lookup's answer, when the commit came */
};

struct revision_row {
    int64_t id;
    int64_t activity;
    cJSON *data;
    cJSON *delta;
    bool has_version;
};

/* A routed table's row as the transaction left it (pgoutput Insert or Update of the table). */
struct row_image {
    char *collection;
    char *key;   /* the primary key's text */
    cJSON *row;  /* columns of types with an exact JSON form (numbers, booleans, JSON, text...) */
    cJSON *weak; /* other columns as text: used only when the revision lacks them */
    size_t seq;  /* arrival: the last image of a key is the committed one */
    bool update; /* from an Update (else an Insert) */
    bool used;   /* an activity row of the transaction names the item */
};

struct capture {
    struct capture_config cfg;
    bool in_txn;
    bool waiting; /* committed, but a collection's metadata could not be had: rows kept */
    uint64_t wait_commit_lsn, wait_end_lsn;
    char wait_collection[256];
    uint64_t final_lsn;
    int64_t commit_time_us;
    int64_t last_commit_us; /* commit_us of the last transaction: events never go back in time */
    struct activity_row *acts;
    size_t nacts, capacts;
    struct revision_row *revs;
    size_t nrevs, caprevs;
    struct row_image *imgs;
    size_t nimgs, capimgs;
    bool imgs_sorted;
    /* any directus_activity insert of the transaction (synced or not): a Directus request */
    int64_t txn_act_id;
    char *txn_act_user;
    struct capture_txn txn; /* the last finished transaction */
    size_t capevents;
    /* column indexes of the two tables, refreshed on every Relation message */
    uint32_t act_oid, rev_oid;
    int act_col[6]; /* id, action, user, timestamp, collection, item */
    int rev_col[6]; /* id, activity, collection, data, delta, version */
};

static const char *const act_names[] = {"id", "action", "user", "timestamp", "collection", "item"};
static const char *const rev_names[] = {"id", "activity", "collection", "data", "delta", "version"};

struct capture *capture_new(const struct capture_config *cfg)
{
    struct capture *c = calloc(1, sizeof(*c));
    if (c)
        c->cfg = *cfg;
    return c;
}

static void clear_rows(struct capture *c)
{
    for (size_t i = 0; i < c->nacts; i++) {
        free(c->acts[i].user);
        free(c->acts[i].timestamp);
        free(c->acts[i].collection);
        free(c->acts[i].item);
    }
    c->nacts = 0;
    for (size_t i = 0; i < c->nrevs; i++) {
        cJSON_Delete(c->revs[i].data);
        cJSON_Delete(c->revs[i].delta);
    }
    c->nrevs = 0;
    for (size_t i = 0; i < c->nimgs; i++) {
        free(c->imgs[i].collection);
        free(c->imgs[i].key);
        cJSON_Delete(c->imgs[i].row);
        cJSON_Delete(c->imgs[i].weak);
    }
    c->nimgs = 0;
    c->imgs_sorted = false;
    c->txn_act_id = 0;
    free(c->txn_act_user);
    c->txn_act_user = NULL;
}

static void clear_txn(struct capture *c)
{
    for (size_t i = 0; i < c->txn.nevents; i++)
        event_free(&c->txn.events[i].ev);
    c->txn.nevents = 0;
}

bool capture_in_txn(const struct capture *c)
{
    return c->in_txn || c->waiting;
}

bool capture_waiting(const struct capture *c, const char **collection)
{
    if (collection)
        *collection = c->wait_collection;
    return c->waiting;
}

void capture_reset(struct capture *c)
{
    clear_rows(c);
    clear_txn(c);
    c->in_txn = false;
    c->waiting = false;
}

void capture_free(struct capture *c)
{
    if (!c)
        return;
    capture_reset(c);
    free(c->acts);
    free(c->revs);
    free(c->imgs);
    free(c->txn.events);
    free(c);
}

static void map_columns(const struct pgoutput_relation *rel, const char *const *names, int *cols)
{
    for (int i = 0; i < 6; i++)
        cols[i] = pgoutput_relation_column(rel, names[i]);
}

static char *val_dup(const struct pgoutput_tuple *t, int col)
{
    if (col < 0 || col >= t->ncols)
        return NULL;
    return pgoutput_value_strdup(&t->vals[col]);
}

static bool val_i64(const struct pgoutput_tuple *t, int col, int64_t *out)
{
    if (col < 0 || col >= t->ncols || t->vals[col].kind != PGOUTPUT_VALUE_TEXT ||
        t->vals[col].len == 0 || t->vals[col].len > 20)
        return false;
    char buf[24];
    memcpy(buf, t->vals[col].data, t->vals[col].len);
    buf[t->vals[col].len] = '\0';
    return util_parse_i64(buf, INT64_MIN, INT64_MAX, out);
}

static cJSON *val_json(const struct pgoutput_tuple *t, int col)
{
    if (col < 0 || col >= t->ncols || t->vals[col].kind != PGOUTPUT_VALUE_TEXT)
        return NULL;
    size_t off;
    return util_json_parse(t->vals[col].data, t->vals[col].len, &off);
}

static bool val_null(const struct pgoutput_tuple *t, int col)
{
    return col < 0 || col >= t->ncols || t->vals[col].kind == PGOUTPUT_VALUE_NULL;
}

static int grow(void **arr, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, nc * size);
    if (!p)
        return -1;
    *arr = p;
    *cap = nc;
    return 0;
}

/* Whether the collection named in column col of t may be synced from this source: rows of a
 * collection the lookup cannot tell about now are kept (the commit asks again). */
static bool synced(const struct capture *c, const struct pgoutput_tuple *t, int col)
{
    char coll[256];
    if (col < 0 || col >= t->ncols || t->vals[col].kind != PGOUTPUT_VALUE_TEXT ||
        t->vals[col].len >= sizeof(coll))
        return false;
    memcpy(coll, t->vals[col].data, t->vals[col].len);
    coll[t->vals[col].len] = '\0';
    const struct capture_collection *meta = NULL;
    return c->cfg.lookup(c->cfg.opaque, coll, &meta) != CAPTURE_NOT_SYNCED;
}

static int on_activity(struct capture *c, const struct pgoutput_tuple *t, char *err, size_t errlen)
{
    /* The request's newest activity row: its user's, when it is not kept below (the kept
     * rows have theirs) */
    int64_t id = 0;
    bool newest = val_i64(t, c->act_col[0], &id) && id > c->txn_act_id;
    if (newest) {
        c->txn_act_id = id;
        free(c->txn_act_user);
        c->txn_act_user = NULL;
    }
    char action[16] = "";
    int col = c->act_col[1];
    if (col >= 0 && col < t->ncols && t->vals[col].kind == PGOUTPUT_VALUE_TEXT &&
        t->vals[col].len < sizeof(action)) {
        memcpy(action, t->vals[col].data, t->vals[col].len);
        action[t->vals[col].len] = '\0';
    }
    if ((strcmp(action, "create") && strcmp(action, "update") && strcmp(action, "delete")) ||
        !synced(c, t, c->act_col[4])) {
        /* login, comment, version_save, run, ...: not changes of an item; or not synced */
        if (newest)
            c->txn_act_user = val_dup(t, c->act_col[2]);
        return 0;
    }
    if (grow((void **)&c->acts, &c->capacts, c->nacts, sizeof(*c->acts))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    struct activity_row *a = &c->acts[c->nacts];
    memset(a, 0, sizeof(*a));
    if (!val_i64(t, c->act_col[0], &a->id)) {
        snprintf(err, errlen, "directus_activity insert without an integer id");
        return -1;
    }
    memcpy(a->action, action, sizeof(action));
    a->user = val_dup(t, c->act_col[2]);
    a->timestamp = val_dup(t, c->act_col[3]);
    a->collection = val_dup(t, c->act_col[4]);
    a->item = val_dup(t, c->act_col[5]);
    c->nacts++;
    return 0;
}

static int on_revision(struct capture *c, const struct pgoutput_tuple *t, char *err, size_t errlen)
{
    if (!synced(c, t, c->rev_col[2]))
        return 0; /* not synced: do not parse its JSON */
    if (grow((void **)&c->revs, &c->caprevs, c->nrevs, sizeof(*c->revs))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    struct revision_row *r = &c->revs[c->nrevs];
    memset(r, 0, sizeof(*r));
    if (!val_i64(t, c->rev_col[1], &r->activity))
        return 0; /* a revision without activity is not one of ours */
    val_i64(t, c->rev_col[0], &r->id);
    r->data = val_json(t, c->rev_col[3]);
    r->delta = val_json(t, c->rev_col[4]);
    r->has_version = !val_null(t, c->rev_col[5]);
    c->nrevs++;
    return 0;
}

/* PostgreSQL type OIDs whose text has one JSON form, the one Directus reads back. */
#define PG_BOOL        16
#define PG_INT8        20
#define PG_INT2        21
#define PG_INT4        23
#define PG_TEXT        25
#define PG_JSON        114
#define PG_FLOAT4      700
#define PG_FLOAT8      701
#define PG_BPCHAR      1042
#define PG_VARCHAR     1043
#define PG_DATE        1082
#define PG_TIME        1083
#define PG_TIMESTAMP   1114
#define PG_TIMESTAMPTZ 1184
#define PG_NUMERIC     1700
#define PG_UUID        2950
#define PG_JSONB       3802

/* The JSON value of a column's text (s, terminated). NULL when its type has no exact JSON form
 * here (geometry, arrays, user types: the revision's value is better) or out of memory. */
static cJSON *column_json(uint32_t type, char *s)
{
    switch (type) {
    case PG_BOOL:
        return strcmp(s, "t") == 0   ? cJSON_CreateTrue()
               : strcmp(s, "f") == 0 ? cJSON_CreateFalse()
                                     : NULL;
    case PG_INT2:
    case PG_INT4:
    case PG_INT8: {
        int64_t v;
        if (util_parse_i64(s, -9007199254740992LL, 9007199254740992LL, &v))
            return cJSON_CreateNumber((double)v);
        return cJSON_CreateString(s); /* beyond 2^53: exact as text, as Directus gives it */
    }
    case PG_FLOAT4:
    case PG_FLOAT8: {
        char *end;
        errno = 0;
        double d = strtod(s, &end);
        return !*end && !errno && isfinite(d) ? cJSON_CreateNumber(d) : cJSON_CreateString(s);
    }
    case PG_JSON:
    case PG_JSONB: {
        size_t off;
        return util_json_parse(s, strlen(s), &off);
    }
    case PG_TIMESTAMPTZ: {
        char iso[32];
        return cJSON_CreateString(capture_timestamp(s, iso, sizeof(iso)) == 0 ? iso : s);
    }
    case PG_TIMESTAMP: {
        char *sp = strchr(s, ' ');
        if (sp && sp - s == 10)
            *sp = 'T'; /* "2026-11-25 22:30:39" → "2026-11-25T22:30:39", as Directus reads it */
        return cJSON_CreateString(s);
    }
    case PG_NUMERIC: /* decimals travel as text, exactly */
    case PG_TEXT:
    case PG_BPCHAR:
    case PG_VARCHAR:
    case PG_DATE:
    case PG_TIME:
    case PG_UUID:
        return cJSON_CreateString(s);
    }
    return NULL;
}

/* An Insert or Update of a table: when it is a synced collection's, its row is kept as the
 * image of the item for the events of this transaction. */
static int on_row(struct capture *c, const struct pgoutput_relation *rel,
                  const struct pgoutput_tuple *t, bool update, char *err, size_t errlen)
{
    const struct capture_collection *coll = NULL;
    enum capture_lookup l = c->cfg.lookup(c->cfg.opaque, rel->relname, &coll);
    if (l == CAPTURE_NOT_SYNCED)
        return 0;
    int pk = -1;
    if (coll) {
        pk = pgoutput_relation_column(rel, coll->pk);
    } else {
        for (int i = 0; i < rel->ncols; i++)
            if (rel->cols[i].key)
                pk = pk == -1 ? i : -2; /* a key of several columns: not Directus's */
    }
    if (pk < 0 || pk >= t->ncols || t->vals[pk].kind != PGOUTPUT_VALUE_TEXT)
        return 0; /* no usable key: the revision alone tells this item */
    if (grow((void **)&c->imgs, &c->capimgs, c->nimgs, sizeof(*c->imgs))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    struct row_image *img = &c->imgs[c->nimgs];
    memset(img, 0, sizeof(*img));
    img->collection = strdup(rel->relname);
    img->key = pgoutput_value_strdup(&t->vals[pk]);
    img->row = cJSON_CreateObject();
    img->weak = cJSON_CreateObject();
    img->seq = c->nimgs;
    img->update = update;
    c->nimgs++;
    c->imgs_sorted = false;
    if (!img->collection || !img->key || !img->row || !img->weak) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < rel->ncols && i < t->ncols; i++) {
        const struct pgoutput_value *v = &t->vals[i];
        cJSON *j = NULL, *into = img->row;
        if (v->kind == PGOUTPUT_VALUE_UNCHANGED)
            continue; /* an unchanged TOASTed value is not sent: the revision has it */
        if (v->kind == PGOUTPUT_VALUE_NULL) {
            j = cJSON_CreateNull();
        } else {
            char *text = pgoutput_value_strdup(v);
            if (!text) {
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            if (v->kind == PGOUTPUT_VALUE_TEXT)
                j = column_json(rel->cols[i].type_oid, text);
            if (!j) {
                j = cJSON_CreateString(text);
                into = img->weak;
            }
            free(text);
        }
        if (!j || !cJSON_AddItemToObject(into, rel->cols[i].name, j)) {
            cJSON_Delete(j);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    return 0;
}

static int image_cmp(const void *pa, const void *pb)
{
    const struct row_image *a = pa, *b = pb;
    int r = strcmp(a->collection, b->collection);
    if (!r)
        r = strcmp(a->key, b->key);
    if (!r)
        r = a->seq < b->seq ? -1 : a->seq > b->seq;
    return r;
}

/* The last image of collection/key in this transaction, or NULL. */
static struct row_image *find_image(struct capture *c, const char *collection, const char *key)
{
    if (!c->nimgs)
        return NULL;
    if (!c->imgs_sorted) {
        qsort(c->imgs, c->nimgs, sizeof(*c->imgs), image_cmp);
        c->imgs_sorted = true;
    }
    /* the first image after (collection, key, every seq), then one back */
    size_t lo = 0, hi = c->nimgs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = strcmp(c->imgs[mid].collection, collection);
        if (!r)
            r = strcmp(c->imgs[mid].key, key);
        if (r <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    struct row_image *img = &c->imgs[lo - 1];
    return strcmp(img->collection, collection) == 0 && strcmp(img->key, key) == 0 ? img : NULL;
}

static int set_member(cJSON *obj, const char *name, const cJSON *v)
{
    cJSON *dup = cJSON_Duplicate(v, true);
    if (!dup)
        return -1;
    if (cJSON_GetObjectItemCaseSensitive(obj, name))
        return cJSON_ReplaceItemInObjectCaseSensitive(obj, name, dup) ? 0 : (cJSON_Delete(dup), -1);
    return cJSON_AddItemToObject(obj, name, dup) ? 0 : (cJSON_Delete(dup), -1);
}

/* Makes data the row the transaction committed: the image's values replace the revision's
 * where they differ (a many-to-one key a nested write left out, a value a hook changed).
 * Such a value joins delta (the change set it) when the revision held another value, and for
 * a create (which sets every field); a field an update's revision does not mention is not
 * claimed as changed. Text-only values fill what data lacks. */
static int merge_image(const struct row_image *img, cJSON *data, cJSON *delta, bool create)
{
    const cJSON *m;
    cJSON_ArrayForEach(m, img->row)
    {
        const cJSON *cur = cJSON_GetObjectItemCaseSensitive(data, m->string);
        if (cur && util_json_same(cur, m))
            continue;
        bool changed = create || cur;
        if (set_member(data, m->string, m) || (changed && set_member(delta, m->string, m)))
            return -1;
    }
    cJSON_ArrayForEach(m, img->weak)
    {
        if (!cJSON_GetObjectItemCaseSensitive(data, m->string) && set_member(data, m->string, m))
            return -1;
    }
    return 0;
}

/* Directus stores a create's payload as sent: "12" for an integer column. Types v as a column
 * of type t; returns v or its replacement (v is then freed). */
static cJSON *typed(enum capture_type t, cJSON *v)
{
    if (!cJSON_IsString(v) || t == CAPTURE_TEXT)
        return v;
    const char *s = v->valuestring;
    cJSON *nv = NULL;
    if (t == CAPTURE_BOOLEAN) {
        if (strcmp(s, "true") == 0 || strcmp(s, "1") == 0)
            nv = cJSON_CreateTrue();
        else if (strcmp(s, "false") == 0 || strcmp(s, "0") == 0)
            nv = cJSON_CreateFalse();
    } else if (*s) {
        char *end;
        errno = 0;
        double d = strtod(s, &end);
        if (!*end && !errno && isfinite(d) &&
            (t == CAPTURE_NUMBER || (d == floor(d) && fabs(d) < 9007199254740992.0)))
            nv = cJSON_CreateNumber(d);
    }
    if (!nv)
        return v; /* leave what the remote will refuse as it is: it reaches the DLQ there */
    cJSON_Delete(v);
    return nv;
}

static bool routed(const struct capture_collection *coll, const char *name)
{
    for (size_t i = 0; i < coll->nfields; i++)
        if (strcmp(coll->fields[i], name) == 0)
            return true;
    return false;
}

/* Whether name travels: routed, not the key, and a column of the table (an alias field,
 * one-to-many or many-to-many, is not: its junction collection travels). *type is the column's
 * type (CAPTURE_TEXT, untouched, when the columns are unknown). */
static bool travels(const struct capture_collection *coll, const char *name,
                    enum capture_type *type)
{
    *type = CAPTURE_TEXT;
    if (strcmp(name, coll->pk) == 0 || !routed(coll, name))
        return false;
    if (!coll->ncolumns)
        return true;
    for (size_t i = 0; i < coll->ncolumns; i++)
        if (strcmp(coll->columns[i].name, name) == 0) {
            *type = coll->columns[i].type;
            return true;
        }
    return false;
}

/* Keeps the routed members of obj (typed); adds the key when key is given. Members move from
 * obj into the result with their names (no copies). */
static cJSON *filter(const struct capture_collection *coll, cJSON *obj, const cJSON *key)
{
    cJSON *out = cJSON_CreateObject();
    if (!out) {
        cJSON_Delete(obj);
        return NULL;
    }
    if (key)
        cJSON_AddItemToObject(out, coll->pk, cJSON_Duplicate(key, true));
    if (cJSON_IsObject(obj)) {
        cJSON *it = obj->child;
        while (it) {
            cJSON *next = it->next;
            enum capture_type t;
            if (it->string && travels(coll, it->string, &t)) {
                cJSON *v = cJSON_DetachItemViaPointer(obj, it);
                char *name = v->string;
                v->string = NULL; /* kept through typed(), which may replace v */
                v = typed(t, v);
                v->string = name;
                /* appended as it is: the name is v's own, and obj's members are distinct */
                cJSON_AddItemToArray(out, v);
            }
            it = next;
        }
    }
    cJSON_Delete(obj);
    return out;
}

cJSON *capture_shape(const struct capture_collection *coll, cJSON *item, const cJSON *key)
{
    return filter(coll, item, key);
}

void capture_set_row(struct capture_event *e, cJSON *row)
{
    cJSON_Delete(e->ev.data);
    cJSON_Delete(e->ev.delta);
    e->ev.data = filter(e->coll, row, e->ev.key);
    e->ev.delta = e->ev.data ? cJSON_Duplicate(e->ev.data, true) : NULL;
    if (e->ev.delta)
        cJSON_DeleteItemFromObjectCaseSensitive(e->ev.delta, e->coll->pk);
    e->needs_row = false;
}

int capture_timestamp(const char *pg, char *buf, size_t len)
{
    char tmp[64];
    size_t n = strlen(pg);
    if (n + 4 >= sizeof(tmp))
        return -1;
    memcpy(tmp, pg, n + 1);
    /* "+00" → "+00:00": util_parse_time wants minutes */
    if (n >= 3 && (tmp[n - 3] == '+' || tmp[n - 3] == '-') && tmp[n - 2] >= '0' &&
        tmp[n - 2] <= '9' && tmp[n - 1] >= '0' && tmp[n - 1] <= '9')
        memcpy(tmp + n, ":00", 4);
    int64_t ms;
    if (util_parse_time(tmp, 0, &ms))
        return -1;
    util_iso8601_ms(ms, buf, len);
    return 0;
}

/* Revisions usually follow their activity in the same order: search from where the last one
 * was found, so a transaction of n items costs O(n), not O(n^2). */
static struct revision_row *find_revision(struct capture *c, int64_t activity, size_t *hint)
{
    for (size_t k = 0; k < c->nrevs; k++) {
        size_t i = (*hint + k) % c->nrevs;
        if (c->revs[i].activity == activity) {
            *hint = i + 1;
            return &c->revs[i];
        }
    }
    return NULL;
}

static cJSON *make_key(const struct capture_collection *coll, const char *item)
{
    int64_t v;
    if (coll->pk_type == CAPTURE_INTEGER &&
        util_parse_i64(item, -9007199254740992LL, 9007199254740992LL, &v))
        return cJSON_CreateNumber((double)v);
    return cJSON_CreateString(item);
}

/* Whether an activity row can give an event (before the lookup). */
static bool candidate(const struct capture *c, const struct activity_row *a)
{
    if (!a->collection || !a->item || !*a->item)
        return false;
    if (c->cfg.sync_user && a->user && strcmp(a->user, c->cfg.sync_user) == 0)
        return false; /* the sync user's own writes: never sent back */
    return true;
}

/* Asks the lookup about every collection of the transaction before anything is built, so that
 * a transaction that must wait is left untouched. 0, or 1 (and wait_collection set) when some
 * collection cannot be told about now. */
static int resolve(struct capture *c)
{
    for (size_t i = 0; i < c->nacts; i++) {
        struct activity_row *a = &c->acts[i];
        a->coll = NULL;
        if (!candidate(c, a))
            continue;
        const struct capture_collection *coll = NULL;
        enum capture_lookup l = c->cfg.lookup(c->cfg.opaque, a->collection, &coll);
        if (l == CAPTURE_UNKNOWN || (l == CAPTURE_SYNCED && !coll)) {
            util_strlcpy(c->wait_collection, a->collection, sizeof(c->wait_collection));
            return 1;
        }
        a->coll = l == CAPTURE_SYNCED ? coll : NULL;
    }
    for (size_t i = 0; i < c->nimgs && c->txn_act_id; i++) {
        const struct capture_collection *coll = NULL;
        if (c->cfg.lookup(c->cfg.opaque, c->imgs[i].collection, &coll) == CAPTURE_UNKNOWN) {
            util_strlcpy(c->wait_collection, c->imgs[i].collection, sizeof(c->wait_collection));
            return 1;
        }
    }
    return 0;
}

/* The database's own changes in a Directus request: a routed row that an Update changed with no
 * activity row naming it (ON DELETE SET NULL ran when its parent was deleted). Each becomes an
 * update event of the request's user and activity, whose delta is the row's null fields (what
 * SET NULL wrote): a remote where the child was still on its way (waiting for the parent that
 * is now gone) then gets the same row. Other foreign key actions (CASCADE deletes) are the
 * remote's own foreign keys' to do, configured alike (README). */
static int add_effects(struct capture *c, const char *lsn, int64_t commit_us, char *err,
                       size_t errlen)
{
    if (!c->txn_act_id)
        return 0; /* not a Directus request: a change made by SQL is not synced */
    const char *user = c->txn_act_user;
    for (size_t i = 0; i < c->nacts && !user; i++)
        if (c->acts[i].id == c->txn_act_id)
            user = c->acts[i].user;
    if (c->cfg.sync_user && user && strcmp(user, c->cfg.sync_user) == 0)
        return 0; /* the effects of the sync user's writes: never sent back */
    for (size_t i = 0; i < c->nimgs; i++) {
        struct row_image *img = &c->imgs[i];
        bool last = i + 1 == c->nimgs || strcmp(c->imgs[i + 1].collection, img->collection) ||
                    strcmp(c->imgs[i + 1].key, img->key);
        if (!last || img->used || !img->update)
            continue;
        const struct capture_collection *coll = NULL;
        if (c->cfg.lookup(c->cfg.opaque, img->collection, &coll) != CAPTURE_SYNCED || !coll)
            continue;
        cJSON *nulls = cJSON_CreateObject();
        const cJSON *m;
        cJSON_ArrayForEach(m, img->row)
        {
            if (cJSON_IsNull(m) && strcmp(m->string, coll->pk) != 0)
                cJSON_AddItemToObject(nulls, m->string, cJSON_CreateNull());
        }
        cJSON *delta = filter(coll, nulls, NULL);
        if (!delta || !delta->child) {
            cJSON_Delete(delta);
            continue; /* no routed field set to null: nothing this knows how to tell */
        }
        if (grow((void **)&c->txn.events, &c->capevents, c->txn.nevents, sizeof(*c->txn.events))) {
            cJSON_Delete(delta);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        struct capture_event *e = &c->txn.events[c->txn.nevents++];
        memset(e, 0, sizeof(*e));
        struct event *ev = &e->ev;
        e->coll = coll;
        char ts[32];
        util_iso8601_ms(c->txn.commit_time_ms, ts, sizeof(ts));
        size_t idlen = strlen(c->cfg.source) + strlen(img->collection) + strlen(img->key) + 48;
        ev->event_id = malloc(idlen);
        if (ev->event_id)
            snprintf(ev->event_id, idlen, "%s:%lld:%s:%s", c->cfg.source, (long long)c->txn_act_id,
                     img->collection, img->key);
        ev->source = strdup(c->cfg.source);
        ev->collection = strdup(img->collection);
        ev->action = EVENT_UPDATE;
        ev->key = make_key(coll, img->key);
        ev->key_text = strdup(img->key);
        ev->user = util_strdup(user);
        ev->timestamp = strdup(ts);
        ev->has_activity_id = true;
        ev->activity_id = c->txn_act_id;
        ev->lsn = strdup(lsn);
        ev->has_commit_us = true;
        ev->commit_us = commit_us;
        cJSON *row = cJSON_Duplicate(img->row, true);
        ev->data = row ? filter(coll, row, ev->key) : NULL;
        ev->delta = delta;
        if (!ev->event_id || !ev->source || !ev->collection || !ev->key || !ev->key_text ||
            !ev->timestamp || !ev->lsn || !ev->data) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        log_debug("capture", "event=row_effect collection=%s key=%s activity=%lld", img->collection,
                  img->key, (long long)c->txn_act_id);
    }
    return 0;
}

/* Builds the events of the finished transaction. 0, 1 when it must wait (rows kept), or -1. */
static int finish(struct capture *c, uint64_t commit_lsn, uint64_t end_lsn, char *err,
                  size_t errlen)
{
    clear_txn(c);
    if (resolve(c))
        return 1;
    c->txn.commit_lsn = commit_lsn;
    c->txn.end_lsn = end_lsn;
    c->txn.commit_time_ms = pgoutput_time_to_unix_ms(c->commit_time_us);
    /* The convergence clock of the events (DESIGN.md, apply): the commit time in microseconds
     * since the Unix epoch, clamped so a source's clock stepping back (NTP) never makes a later
     * transaction look older than an earlier one; the commit LSN then orders them. */
    int64_t commit_us = pgoutput_time_to_unix_us(c->commit_time_us);
    if (commit_us < c->last_commit_us)
        commit_us = c->last_commit_us;
    c->last_commit_us = commit_us;
    char lsn[PGOUTPUT_LSN_BUFLEN];
    pgoutput_lsn_format(commit_lsn, lsn, sizeof(lsn));
    size_t hint = 0;
    for (size_t i = 0; i < c->nacts; i++) {
        struct activity_row *a = &c->acts[i];
        const struct capture_collection *coll = a->coll;
        if (!candidate(c, a) || !coll)
            continue; /* not synced from here */
        struct revision_row *r = find_revision(c, a->id, &hint);
        if (r && r->has_version)
            continue; /* a content version's revision, not a change of the item */
        enum event_action action = strcmp(a->action, "create") == 0   ? EVENT_CREATE
                                   : strcmp(a->action, "update") == 0 ? EVENT_UPDATE
                                                                      : EVENT_DELETE;
        bool needs_row = false;
        struct row_image *img = find_image(c, a->collection, a->item);
        if (img)
            img->used = true;
        if (action == EVENT_DELETE)
            img = NULL;
        if (action != EVENT_DELETE && r && !r->data && action == EVENT_UPDATE && !img) {
            /* an admin's update of a missing item: Directus records it, nothing changed */
            log_debug("capture", "event=skip reason=update_without_data activity=%lld",
                      (long long)a->id);
            continue;
        }
        if (action == EVENT_UPDATE && !r && !img && coll->published) {
            /* the row did not change: only an alias did (junction rows, their own events) */
            log_debug("capture", "event=skip reason=row_unchanged collection=%s key=%s",
                      a->collection, a->item);
            continue;
        }
        if (action != EVENT_DELETE && !r && !img)
            needs_row = true;
        if (grow((void **)&c->txn.events, &c->capevents, c->txn.nevents, sizeof(*c->txn.events))) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        struct capture_event *e = &c->txn.events[c->txn.nevents];
        memset(e, 0, sizeof(*e));
        struct event *ev = &e->ev;
        e->coll = coll;
        e->needs_row = needs_row;
        char id[64], ts[32];
        if (util_format(id, sizeof(id), "%s:%lld", c->cfg.source, (long long)a->id)) {
            snprintf(err, errlen, "event id %s:%lld too long", c->cfg.source, (long long)a->id);
            return -1;
        }
        ev->event_id = strdup(id);
        ev->source = strdup(c->cfg.source);
        ev->collection = strdup(a->collection);
        ev->action = action;
        ev->key = make_key(coll, a->item);
        ev->key_text = strdup(a->item);
        ev->user = util_strdup(a->user);
        if (!a->timestamp || capture_timestamp(a->timestamp, ts, sizeof(ts)))
            util_iso8601_ms(c->txn.commit_time_ms, ts, sizeof(ts));
        ev->timestamp = strdup(ts);
        ev->has_activity_id = true;
        ev->activity_id = a->id;
        if (r) {
            ev->has_revision_id = r->id != 0;
            ev->revision_id = r->id;
        }
        ev->lsn = strdup(lsn);
        ev->has_commit_us = true;
        ev->commit_us = commit_us;
        c->txn.nevents++;
        if (!ev->event_id || !ev->source || !ev->collection || !ev->key || !ev->key_text ||
            !ev->timestamp || !ev->lsn) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        if (action != EVENT_DELETE && (r || img)) {
            /* each revision belongs to one activity: take its trees instead of copying */
            cJSON *data = r ? r->data : NULL, *delta = r ? r->delta : NULL;
            if (r)
                r->data = r->delta = NULL;
            if (!data)
                data = cJSON_CreateObject();
            if (!delta && data)
                delta = cJSON_Duplicate(data, true);
            if (img && data && delta &&
                merge_image(img, data, delta, action == EVENT_CREATE || !r)) {
                cJSON_Delete(data);
                cJSON_Delete(delta);
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            ev->data = filter(coll, data, ev->key);
            ev->delta = filter(coll, delta, NULL);
            if (action == EVENT_UPDATE && ev->delta && !ev->delta->child) {
                /* nothing routed changed: no event (the consumer would skip it anyway) */
                event_free(ev);
                c->txn.nevents--;
            }
        }
    }
    if (c->nimgs && !c->imgs_sorted) {
        qsort(c->imgs, c->nimgs, sizeof(*c->imgs), image_cmp);
        c->imgs_sorted = true;
    }
    if (add_effects(c, lsn, commit_us, err, errlen))
        return -1;
    clear_rows(c);
    return 0;
}

int capture_feed(struct capture *c, const struct pgoutput_msg *msg, struct capture_txn **done,
                 char *err, size_t errlen)
{
    *done = NULL;
    if (c->waiting) {
        snprintf(err, errlen, "a transaction waits for the metadata of collection %s",
                 c->wait_collection);
        return -1;
    }
    switch (msg->kind) {
    case PGOUTPUT_BEGIN:
        if (c->in_txn)
            clear_rows(c); /* an unfinished transaction was abandoned by the server */
        c->in_txn = true;
        c->final_lsn = msg->begin.final_lsn;
        c->commit_time_us = msg->begin.commit_time_us;
        return 0;
    case PGOUTPUT_RELATION: {
        const struct pgoutput_relation *rel = msg->relation.rel;
        if (strcmp(rel->relname, "directus_activity") == 0) {
            c->act_oid = rel->oid;
            map_columns(rel, act_names, c->act_col);
        } else if (strcmp(rel->relname, "directus_revisions") == 0) {
            c->rev_oid = rel->oid;
            map_columns(rel, rev_names, c->rev_col);
        }
        return 0;
    }
    case PGOUTPUT_INSERT:
        if (!c->in_txn) {
            snprintf(err, errlen, "insert outside a transaction");
            return -1;
        }
        if (msg->insert.rel->oid == c->act_oid && c->act_oid)
            return on_activity(c, &msg->insert.tuple, err, errlen);
        if (msg->insert.rel->oid == c->rev_oid && c->rev_oid)
            return on_revision(c, &msg->insert.tuple, err, errlen);
        return on_row(c, msg->insert.rel, &msg->insert.tuple, false, err, errlen);
    case PGOUTPUT_UPDATE:
        if (!c->in_txn) {
            snprintf(err, errlen, "update outside a transaction");
            return -1;
        }
        if (msg->update.rel->oid == c->act_oid || msg->update.rel->oid == c->rev_oid)
            return 0; /* Directus's own bookkeeping, not a change of an item */
        return on_row(c, msg->update.rel, &msg->update.tuple, true, err, errlen);
    case PGOUTPUT_COMMIT:
        if (!c->in_txn) {
            snprintf(err, errlen, "commit outside a transaction");
            return -1;
        }
        c->in_txn = false;
        int rc = finish(c, msg->commit.commit_lsn, msg->commit.end_lsn, err, errlen);
        if (rc < 0)
            return -1;
        if (rc > 0) {
            c->waiting = true;
            c->wait_commit_lsn = msg->commit.commit_lsn;
            c->wait_end_lsn = msg->commit.end_lsn;
            return 0;
        }
        *done = &c->txn;
        return 0;
    case PGOUTPUT_SKIPPED:
        return 0;
    }
    snprintf(err, errlen, "unexpected message kind %d", (int)msg->kind);
    return -1;
}

int capture_resume(struct capture *c, struct capture_txn **done, char *err, size_t errlen)
{
    *done = NULL;
    if (!c->waiting) {
        snprintf(err, errlen, "no transaction waits");
        return -1;
    }
    int rc = finish(c, c->wait_commit_lsn, c->wait_end_lsn, err, errlen);
    if (rc < 0) {
        c->waiting = false;
        return -1;
    }
    if (rc > 0)
        return 0;
    c->waiting = false;
    *done = &c->txn;
    return 0;
}
