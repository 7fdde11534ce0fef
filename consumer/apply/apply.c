#include "apply.h"

#include "directus.h"
#include "plan.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const step_names[] = {"fields", "post", "patch", "delete", "resolve", "ping"};

const char *apply_step_name(enum apply_step step)
{
    return (size_t)step < DX_ARRAY_LEN(step_names) ? step_names[step] : "?";
}

/* ---- groups ---- */

/* A group to put in place of another (its indices are copied). */
struct regroup {
    enum apply_step step;
    const size_t *idx;
    size_t n;
    int resolved;
};

static int groups_reserve(struct apply_batch *b, size_t n)
{
    if (n <= b->capgroups)
        return 0;
    size_t cap = b->capgroups ? b->capgroups : 4;
    while (cap < n)
        cap *= 2;
    struct apply_group *g = realloc(b->groups, cap * sizeof(*g));
    if (!g)
        return -1;
    b->groups = g;
    b->capgroups = cap;
    return 0;
}

/* Puts the non-empty groups of rg, in that order, in front of groups[drop..]: drop is 1 to
 * replace groups[0], 0 to insert. On failure (out of memory) nothing changes. */
static int groups_put(struct apply_batch *b, size_t drop, const struct regroup *rg, size_t nrg)
{
    size_t *copies[4] = {0};
    size_t add = 0;
    if (nrg > DX_ARRAY_LEN(copies))
        return -1;
    for (size_t i = 0; i < nrg; i++) {
        if (!rg[i].n)
            continue;
        if (!(copies[i] = malloc(rg[i].n * sizeof(size_t))))
            goto oom;
        memcpy(copies[i], rg[i].idx, rg[i].n * sizeof(size_t));
        add++;
    }
    if (groups_reserve(b, b->ngroups - drop + add))
        goto oom;
    if (drop)
        free(b->groups[0].idx);
    memmove(&b->groups[add], &b->groups[drop], (b->ngroups - drop) * sizeof(*b->groups));
    b->ngroups = b->ngroups - drop + add;
    for (size_t i = 0, k = 0; i < nrg; i++)
        if (rg[i].n)
            b->groups[k++] = (struct apply_group){
                .step = rg[i].step, .idx = copies[i], .n = rg[i].n, .resolved = rg[i].resolved};
    return 0;
oom:
    for (size_t i = 0; i < nrg; i++)
        free(copies[i]);
    return -1;
}

static int group_replace(struct apply_batch *b, const struct regroup *rg, size_t nrg)
{
    return groups_put(b, 1, rg, nrg);
}

static void group_pop(struct apply_batch *b)
{
    if (!b->ngroups)
        return;
    free(b->groups[0].idx);
    memmove(&b->groups[0], &b->groups[1], (b->ngroups - 1) * sizeof(*b->groups));
    b->ngroups--;
}

/* ---- lifecycle ---- */

int apply_batch_init(struct apply_batch *b, const struct apply_params *p,
                     const struct event *const *evs, size_t n)
{
    memset(b, 0, sizeof(*b));
    b->p = *p;
    backoff_init(&b->backoff, APPLY_BACKOFF_BASE_MS, APPLY_BACKOFF_MAX_MS, p->seed);
    backoff_init(&b->item_backoff, APPLY_ITEM_BACKOFF_BASE_MS, APPLY_BACKOFF_MAX_MS, p->seed + 1);
    if (p->pk)
        util_strlcpy(b->pk, p->pk, sizeof(b->pk));
    else
        b->need_fields = true;
    b->items = calloc(n, sizeof(*b->items));
    size_t *post = malloc(n * sizeof(size_t)), *patch = malloc(n * sizeof(size_t)),
           *del = malloc(n * sizeof(size_t));
    size_t npost = 0, npatch = 0, ndel = 0;
    int rc = -1;
    if (!b->items || !post || !patch || !del)
        goto out;
    b->nitems = n;
    for (size_t i = 0; i < n; i++) {
        b->items[i].ev = evs[i];
        switch (evs[i]->action) {
        case EVENT_CREATE:
        case EVENT_SNAPSHOT:
            post[npost++] = i;
            break;
        case EVENT_UPDATE:
            patch[npatch++] = i;
            break;
        case EVENT_DELETE:
            del[ndel++] = i;
            break;
        }
    }
    struct regroup rg[3] = {
        {APPLY_STEP_POST, post, npost, false},
        {APPLY_STEP_PATCH, patch, npatch, false},
        {APPLY_STEP_DELETE, del, ndel, false},
    };
    if (groups_put(b, 0, rg, 3))
        goto out;
    rc = 0;
out:
    free(post);
    free(patch);
    free(del);
    if (rc)
        apply_batch_free(b);
    return rc;
}

void apply_batch_free(struct apply_batch *b)
{
    while (b->ngroups)
        group_pop(b);
    free(b->groups);
    free(b->items);
    free(b->path);
    free(b->body);
    memset(b, 0, sizeof(*b));
}

bool apply_batch_done(const struct apply_batch *b)
{
    return b->ngroups == 0;
}

/* ---- requests ---- */

/* The collection's items endpoint (directus_items_path); with_fields: "?fields=<pk>", the key
 * only; all_fields: "?fields=*", the stored items. */
static int set_path(struct apply_batch *b, bool with_fields, bool all_fields)
{
    char base[600], pk[384];
    if (directus_items_path(b->p.collection, base, sizeof(base)) ||
        http_escape(b->pk, pk, sizeof(pk)))
        return -1;
    struct util_buf u = {0};
    util_buf_puts(&u, base);
    if (all_fields)
        util_buf_puts(&u, "?fields=*");
    else if (with_fields)
        util_buf_printf(&u, "?fields=%s", pk);
    if (u.failed) {
        util_buf_free(&u);
        return -1;
    }
    free(b->path);
    b->path = util_buf_steal(&u);
    return b->path ? 0 : -1;
}

static int set_body(struct apply_batch *b, cJSON *root)
{
    free(b->body);
    b->body = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return b->body ? 0 : -1;
}

static cJSON *keys_array(const struct apply_batch *b, const struct apply_group *g)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < g->n; i++) {
        cJSON *k = cJSON_Duplicate(b->items[g->idx[i]].ev->key, true);
        if (!k || !cJSON_AddItemToArray(arr, k)) {
            cJSON_Delete(k);
            cJSON_Delete(arr);
            return NULL;
        }
    }
    return arr;
}

static cJSON *bodies_array(const struct apply_batch *b, const struct apply_group *g)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < g->n; i++) {
        const struct event *ev = b->items[g->idx[i]].ev;
        /* POST writes every routed field; PATCH of an update only what its delta names. */
        enum plan_body mode = g->step == APPLY_STEP_PATCH && ev->action == EVENT_UPDATE
                                  ? PLAN_BODY_DELTA
                                  : PLAN_BODY_FULL;
        cJSON *o = plan_body(ev, b->p.coll, b->pk, mode);
        if (!o || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            cJSON_Delete(arr);
            return NULL;
        }
    }
    return arr;
}

static cJSON *resolve_query(const struct apply_batch *b, const struct apply_group *g)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *query = cJSON_AddObjectToObject(root, "query");
    cJSON *filter = cJSON_AddObjectToObject(query, "filter");
    cJSON *cond = cJSON_AddObjectToObject(filter, b->pk);
    cJSON *keys = keys_array(b, g);
    cJSON *fields = cJSON_AddArrayToObject(query, "fields");
    cJSON *pk = cJSON_CreateString(b->pk);
    if (!keys || !cond || !fields || !pk || !cJSON_AddItemToArray(fields, pk)) {
        cJSON_Delete(keys);
        cJSON_Delete(pk);
        cJSON_Delete(root);
        return NULL;
    }
    cJSON_AddItemToObject(cond, "_in", keys);
    if (!cJSON_AddNumberToObject(query, "limit", -1)) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

size_t apply_batch_recreates(const struct apply_batch *b, size_t *idx, size_t max)
{
    if (b->need_fields || b->need_ping || !b->ngroups || b->groups[0].step != APPLY_STEP_POST)
        return 0;
    const struct apply_group *g = &b->groups[0];
    size_t n = 0;
    for (size_t i = 0; i < g->n && n < max; i++)
        if (b->items[g->idx[i]].ev->action == EVENT_UPDATE)
            idx[n++] = g->idx[i];
    return n;
}

int apply_batch_next(struct apply_batch *b, struct apply_request *req)
{
    memset(req, 0, sizeof(*req));
    if (b->need_fields) {
        char path[600];
        if (directus_fields_path(b->p.collection, path, sizeof(path)))
            return -1;
        free(b->path);
        if (!(b->path = strdup(path)))
            return -1;
        req->step = b->sent = APPLY_STEP_FIELDS;
        req->method = "GET";
        req->path = b->path;
        return 1;
    }
    if (b->need_ping) {
        free(b->path);
        if (!(b->path = strdup(DIRECTUS_PING_PATH)))
            return -1;
        req->step = b->sent = APPLY_STEP_PING;
        req->method = "GET";
        req->path = b->path;
        return 1;
    }
    if (!b->ngroups)
        return 0;
    const struct apply_group *g = &b->groups[0];
    switch (g->step) {
    case APPLY_STEP_POST:
        if (set_path(b, true, true) || set_body(b, bodies_array(b, g)))
            return -1;
        req->method = "POST";
        break;
    case APPLY_STEP_PATCH:
        if (set_path(b, true, false) || set_body(b, bodies_array(b, g)))
            return -1;
        req->method = "PATCH";
        break;
    case APPLY_STEP_DELETE:
        if (set_path(b, false, false) || set_body(b, keys_array(b, g)))
            return -1;
        req->method = "DELETE";
        break;
    case APPLY_STEP_RESOLVE:
        if (set_path(b, false, false) || set_body(b, resolve_query(b, g)))
            return -1;
        req->method = "SEARCH";
        break;
    default:
        return -1;
    }
    if (g->step != APPLY_STEP_RESOLVE)
        for (size_t i = 0; i < g->n; i++)
            b->items[g->idx[i]].attempts++;
    req->step = b->sent = g->step;
    req->path = b->path;
    req->body = b->body;
    req->nitems = g->n;
    return 1;
}

/* ---- answers ---- */

/* The primary key named by a GET /fields/<c> answer, or "" when it does not say. */
static void pk_from_fields(const struct http_response *r, char *pk, size_t len)
{
    struct directus_fields f;
    pk[0] = '\0';
    if (directus_fields_parse(r, &f, NULL, 0))
        return;
    if (f.pk && strlen(f.pk) < len)
        util_strlcpy(pk, f.pk, len);
    directus_fields_free(&f);
}

/* Marks in found[i] which items of g an answer {"data": [{pk: key}, ...]} lists.
 * Returns -1 when the answer is not of that shape. */
static int listed_keys(const struct apply_batch *b, const struct apply_group *g,
                       const struct http_response *r, bool *found)
{
    int rc = -1;
    struct plan_keyset set = {0};
    cJSON *root = r->body ? cJSON_ParseWithLength(r->body, r->len) : NULL;
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
    if (!cJSON_IsArray(data) || plan_keyset_init(&set, g->n))
        goto out;
    for (size_t i = 0; i < g->n; i++) {
        found[i] = false;
        plan_keyset_add(&set, b->items[g->idx[i]].ev->key_text, i);
    }
    const cJSON *row;
    cJSON_ArrayForEach(row, data)
    {
        char key[1024];
        size_t at;
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(row, b->pk);
        if (!k || event_key_text(k, key, sizeof(key)))
            goto out; /* a row without its key: not an answer we understand */
        if (plan_keyset_find(&set, key, &at))
            found[at] = true;
    }
    rc = 0;
out:
    plan_keyset_free(&set);
    cJSON_Delete(root);
    return rc;
}

/* The items a POST stored, as its answer lists them (fields=*): a routed field an item wrote
 * with a value but its stored item lacks goes to the item's `dropped`. An answer that lists
 * nothing readable (204, another shape) tells nothing. */
static void find_dropped(struct apply_batch *b, const struct apply_group *g,
                         const struct http_response *r)
{
    cJSON *root = r->body ? cJSON_ParseWithLength(r->body, r->len) : NULL;
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data"), *obj;
    if (!cJSON_IsArray(data))
        data = NULL;
    cJSON_ArrayForEach(obj, data)
    {
        char key[256];
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(obj, b->pk);
        if (!cJSON_IsObject(obj) || !k || event_key_text(k, key, sizeof(key)))
            continue;
        for (size_t i = 0; i < g->n; i++) {
            struct apply_item *it = &b->items[g->idx[i]];
            char mine[256];
            if (event_key_text(it->ev->key, mine, sizeof(mine)) || strcmp(mine, key) != 0)
                continue;
            for (size_t f = 0; f < b->p.coll->nfields && !it->dropped; f++) {
                const char *name = b->p.coll->fields[f];
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(it->ev->data, name);
                if (v && !cJSON_IsNull(v) && strcmp(name, b->pk) != 0 &&
                    !cJSON_GetObjectItemCaseSensitive(obj, name))
                    it->dropped = name;
            }
            break;
        }
    }
    cJSON_Delete(root);
}

static void remember_failure(struct apply_batch *b, const struct http_response *r)
{
    b->last_status = r->status;
    util_strlcpy(b->last_code, r->code, sizeof(b->last_code));
    util_strlcpy(b->last_message, r->message, sizeof(b->last_message));
}

static void item_fail(struct apply_item *it, long status, const char *code, const char *msg)
{
    it->state = APPLY_FAILED;
    it->status = status;
    util_strlcpy(it->code, code ? code : "", sizeof(it->code));
    util_strlcpy(it->message, msg ? msg : "", sizeof(it->message));
}

static void group_settle(struct apply_batch *b, enum apply_item_state state)
{
    const struct apply_group *g = &b->groups[0];
    for (size_t i = 0; i < g->n; i++)
        b->items[g->idx[i]].state = state;
    group_pop(b);
}

static enum apply_verdict progress(const struct apply_batch *b)
{
    return b->ngroups || b->need_fields || b->need_ping ? APPLY_NEXT : APPLY_DONE;
}

static enum apply_verdict out_of_memory(struct apply_batch *b, int64_t *delay_ms)
{
    (void)b;
    *delay_ms = 1000;
    return APPLY_RETRY_ITEM;
}

/* Splits groups[0] in halves. */
static int split_front(struct apply_batch *b)
{
    struct apply_group *g = &b->groups[0];
    size_t h = plan_split(g->n);
    struct regroup rg[2] = {
        {g->step, g->idx, h, g->resolved},
        {g->step, g->idx + h, g->n - h, g->resolved},
    };
    return group_replace(b, rg, 2);
}

/* Whether the item writes value (as text) into field. */
static bool item_writes(const struct apply_item *it, const char *field, const char *value)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(it->ev->data, field);
    char text[128];
    return v && !cJSON_IsNull(v) && event_key_text(v, text, sizeof(text)) == 0 &&
           strcmp(text, value) == 0;
}

static void item_fail_with(struct apply_item *it, const struct http_response *r)
{
    item_fail(it, r->status, r->code, r->message);
    util_strlcpy(it->field, r->field, sizeof(it->field));
    util_strlcpy(it->value, r->value, sizeof(it->value));
}

/* A refused foreign key names its field and value: the items of groups[0] writing that value
 * fail with the answer, the others form the group again. Returns 1 when it picked some, 0 when
 * none matches (split as for any refusal), -1 when out of memory. */
static int fail_referencing(struct apply_batch *b, const struct http_response *r)
{
    struct apply_group *g = &b->groups[0];
    if (strcmp(r->code, "INVALID_FOREIGN_KEY") != 0 || !r->field[0] || !r->value[0])
        return 0;
    size_t n = g->n, *rest = malloc(n * sizeof(size_t)), *hit = malloc(n * sizeof(size_t));
    size_t nrest = 0, nhit = 0;
    if (!rest || !hit) {
        free(rest);
        free(hit);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (item_writes(&b->items[g->idx[i]], r->field, r->value))
            hit[nhit++] = g->idx[i];
        else
            rest[nrest++] = g->idx[i];
    }
    int rc = 0;
    if (nhit) {
        struct regroup rg = {g->step, rest, nrest, g->resolved};
        if (nrest ? group_replace(b, &rg, 1) : (group_pop(b), 0)) {
            rc = -1;
        } else {
            for (size_t k = 0; k < nhit; k++)
                item_fail_with(&b->items[hit[k]], r);
            rc = 1;
        }
    }
    free(rest);
    free(hit);
    return rc;
}

/* groups[0] was refused for good with r: pick out what a refused foreign key names, or split
 * it, or fail its one item. */
static enum apply_verdict fail_front(struct apply_batch *b, const struct http_response *r,
                                     int64_t *delay_ms)
{
    struct apply_group *g = &b->groups[0];
    if (g->n > 1) {
        int picked = fail_referencing(b, r);
        if (picked < 0 || (picked == 0 && split_front(b)))
            return out_of_memory(b, delay_ms);
        return picked ? progress(b) : APPLY_NEXT;
    }
    item_fail_with(&b->items[g->idx[0]], r);
    group_pop(b);
    return progress(b);
}

/* The remote is up but groups[0] got a 5xx: split it, or retry its one item a few times. */
static enum apply_verdict item_fault(struct apply_batch *b, int64_t *delay_ms)
{
    struct apply_group *g = &b->groups[0];
    if (g->n > 1) {
        if (split_front(b))
            return out_of_memory(b, delay_ms);
        return APPLY_NEXT;
    }
    struct apply_item *it = &b->items[g->idx[0]];
    if (directus_item_give_up(&it->item_failures, b->p.item_attempts)) {
        item_fail(it, b->last_status, b->last_code, b->last_message);
        group_pop(b);
        return progress(b);
    }
    /* by this item's own count: the ping that told us the remote is up reset b->backoff */
    *delay_ms = backoff_at(&b->item_backoff, it->item_failures - 1);
    return APPLY_RETRY_ITEM;
}

/* groups[0] (upserts or deletes) → ask which of its keys exist. */
static enum apply_verdict to_resolve(struct apply_batch *b, int64_t *delay_ms)
{
    struct apply_group *g = &b->groups[0];
    struct regroup rg = {APPLY_STEP_RESOLVE, g->idx, g->n, g->resolved + 1};
    if (group_replace(b, &rg, 1))
        return out_of_memory(b, delay_ms);
    return APPLY_NEXT;
}

/* A RESOLVE answer: found[i] says whether item idx[i] exists. */
static enum apply_verdict replan(struct apply_batch *b, const bool *found, int64_t *delay_ms)
{
    struct apply_group *g = &b->groups[0];
    size_t *post = malloc(g->n * sizeof(size_t)), *patch = malloc(g->n * sizeof(size_t)),
           *del = malloc(g->n * sizeof(size_t));
    size_t npost = 0, npatch = 0, ndel = 0;
    enum apply_verdict v;
    if (!post || !patch || !del) {
        v = out_of_memory(b, delay_ms);
        goto out;
    }
    for (size_t i = 0; i < g->n; i++) {
        size_t k = g->idx[i];
        if (b->items[k].ev->action == EVENT_DELETE) {
            if (found[i])
                del[ndel++] = k;
            else
                b->items[k].state = APPLY_APPLIED; /* already gone: done */
        } else if (found[i]) {
            patch[npatch++] = k;
        } else {
            post[npost++] = k;
        }
    }
    struct regroup rg[3] = {
        {APPLY_STEP_POST, post, npost, g->resolved},
        {APPLY_STEP_PATCH, patch, npatch, g->resolved},
        {APPLY_STEP_DELETE, del, ndel, g->resolved},
    };
    if (group_replace(b, rg, 3)) {
        for (size_t i = 0; i < g->n; i++)
            b->items[g->idx[i]].state = APPLY_PENDING;
        v = out_of_memory(b, delay_ms);
        goto out;
    }
    v = progress(b);
out:
    free(post);
    free(patch);
    free(del);
    return v;
}

/* A 2xx to a batch PATCH: an admin's answer omits the keys it did not find. */
static enum apply_verdict patched(struct apply_batch *b, const struct http_response *r,
                                  int64_t *delay_ms)
{
    struct apply_group *g = &b->groups[0];
    if (r->status == 204) { /* nothing to read back (no read permission): a non-admin got no 403 */
        group_settle(b, APPLY_APPLIED);
        return progress(b);
    }
    bool *found = calloc(g->n, sizeof(bool));
    size_t *missing = malloc(g->n * sizeof(size_t));
    size_t nmissing = 0;
    enum apply_verdict v;
    if (!found || !missing) {
        v = out_of_memory(b, delay_ms);
        goto out;
    }
    if (listed_keys(b, g, r, found)) {
        v = to_resolve(b, delay_ms); /* cannot tell what was found: ask */
        goto out;
    }
    for (size_t i = 0; i < g->n; i++) {
        if (found[i])
            b->items[g->idx[i]].state = APPLY_APPLIED;
        else
            missing[nmissing++] = g->idx[i];
    }
    struct regroup rg = {APPLY_STEP_POST, missing, nmissing, true};
    if (group_replace(b, &rg, 1)) {
        v = out_of_memory(b, delay_ms);
        goto out;
    }
    v = progress(b);
out:
    free(found);
    free(missing);
    return v;
}

static enum apply_verdict outage(struct apply_batch *b, const struct http_response *r,
                                 int64_t *delay_ms)
{
    *delay_ms = backoff_next_after(&b->backoff, r->retry_after_s);
    return APPLY_RETRY_OUTAGE;
}

enum apply_verdict apply_batch_answer(struct apply_batch *b, const struct http_response *r,
                                      int64_t *delay_ms)
{
    enum directus_answer a = directus_classify(r, b->sent != APPLY_STEP_PING);
    *delay_ms = 0;
    if (b->sent == APPLY_STEP_PING ? directus_ping_ok(r) : a == DIRECTUS_OK)
        backoff_reset(&b->backoff); /* Directus answers: the next outage starts afresh */
    switch (b->sent) {
    case APPLY_STEP_FIELDS:
        if (directus_is_outage(a))
            return outage(b, r, delay_ms); /* no answer, or not Directus's: never guess then */
        if (a == DIRECTUS_SERVER_ERROR &&
            !directus_item_give_up(&b->fields_failures, b->p.item_attempts)) {
            *delay_ms = backoff_next(&b->backoff); /* a hiccup: ask again before guessing */
            return APPLY_RETRY_ITEM;
        }
        b->need_fields = false;
        if (a == DIRECTUS_OK)
            pk_from_fields(r, b->pk, sizeof(b->pk));
        if (b->pk[0]) {
            b->pk_learnt = true;
        } else {
            util_strlcpy(b->pk, "id", sizeof(b->pk));
            b->pk_guessed = true;
        }
        return progress(b);
    case APPLY_STEP_PING:
        b->need_ping = false;
        if (directus_fault_after_5xx(r) == DIRECTUS_FAULT_OUTAGE)
            return outage(b, r, delay_ms);
        return item_fault(b, delay_ms);
    default:
        break;
    }
    if (!b->ngroups || b->groups[0].step != b->sent)
        return progress(b); /* an answer nobody asked for */
    struct apply_group *g = &b->groups[0];
    bool senseless = false; /* Directus's JSON, but not the answer asked for */
    if (a == DIRECTUS_OK && b->sent == APPLY_STEP_RESOLVE) {
        bool *found = calloc(g->n, sizeof(bool));
        if (!found)
            return out_of_memory(b, delay_ms);
        enum apply_verdict v;
        if (listed_keys(b, g, r, found) == 0) {
            v = replan(b, found, delay_ms);
            free(found);
            return v;
        }
        free(found);
        a = DIRECTUS_SERVER_ERROR; /* a 2xx that makes no sense: as a 5xx */
        senseless = true;
    }
    switch (a) {
    case DIRECTUS_OK:
        if (b->sent == APPLY_STEP_PATCH)
            return patched(b, r, delay_ms);
        if (b->sent == APPLY_STEP_POST)
            find_dropped(b, g, r);
        group_settle(b, APPLY_APPLIED);
        return progress(b);
    case DIRECTUS_NOT_DIRECTUS:
        if (b->sent == APPLY_STEP_RESOLVE)
            return outage(b, r, delay_ms); /* not Directus answering: wait for it */
        return to_resolve(b, delay_ms);    /* a write done or not? ask which keys exist */
    case DIRECTUS_NONE:
    case DIRECTUS_OUTAGE:
    case DIRECTUS_AUTH:
        return outage(b, r, delay_ms);
    case DIRECTUS_SERVER_ERROR:
        remember_failure(b, r);
        if (senseless) {
            util_strlcpy(b->last_code, "BAD_RESPONSE", sizeof(b->last_code));
            util_strlcpy(b->last_message, "the answer is not the JSON Directus sends",
                         sizeof(b->last_message));
        }
        b->need_ping = true;
        return APPLY_NEXT;
    case DIRECTUS_FORBIDDEN:
        /* a missing item (for a non-admin), perhaps deleted since the keys were asked; a
         * refusal that stays after that is the sync user's permissions */
        if (b->sent != APPLY_STEP_RESOLVE && g->resolved < APPLY_DUPLICATE_RESOLVES)
            return to_resolve(b, delay_ms);
        return fail_front(b, r, delay_ms);
    case DIRECTUS_DUPLICATE:
        /* created since the keys were asked (a person on the remote, at the same moment): ask
         * again, a few times */
        if (b->sent != APPLY_STEP_RESOLVE && g->resolved < APPLY_DUPLICATE_RESOLVES)
            return to_resolve(b, delay_ms);
        return fail_front(b, r, delay_ms);
    case DIRECTUS_REFUSED:
        break;
    }
    return fail_front(b, r, delay_ms);
}
