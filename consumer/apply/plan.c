#include "plan.h"

#include "directus.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum plan_kind plan_kind_of(enum event_action action)
{
    return action == EVENT_DELETE ? PLAN_DELETE : PLAN_UPSERT;
}

/* ---- key set ---- */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

int plan_keyset_init(struct plan_keyset *s, size_t n)
{
    size_t cap = 16;
    while (cap < n * 2 + 1)
        cap *= 2;
    memset(s, 0, sizeof(*s));
    s->slots = calloc(cap, sizeof(*s->slots));
    s->values = calloc(cap, sizeof(*s->values));
    if (!s->slots || !s->values) {
        plan_keyset_free(s);
        return -1;
    }
    s->cap = cap;
    return 0;
}

void plan_keyset_free(struct plan_keyset *s)
{
    free((void *)s->slots);
    free(s->values);
    memset(s, 0, sizeof(*s));
}

void plan_keyset_clear(struct plan_keyset *s)
{
    if (s->slots)
        memset((void *)s->slots, 0, s->cap * sizeof(*s->slots));
    s->len = 0;
}

static size_t slot_of(const struct plan_keyset *s, const char *key)
{
    size_t i = (size_t)(hash_str(key) & (s->cap - 1));
    while (s->slots[i] && strcmp(s->slots[i], key) != 0)
        i = (i + 1) & (s->cap - 1);
    return i;
}

bool plan_keyset_add(struct plan_keyset *s, const char *key, size_t value)
{
    if (!s->cap || s->len + 1 >= s->cap)
        return false;
    size_t i = slot_of(s, key);
    if (s->slots[i])
        return false;
    s->slots[i] = key;
    s->values[i] = value;
    s->len++;
    return true;
}

bool plan_keyset_find(const struct plan_keyset *s, const char *key, size_t *value)
{
    if (!s->cap)
        return false;
    size_t i = slot_of(s, key);
    if (!s->slots[i])
        return false;
    if (value)
        *value = s->values[i];
    return true;
}

/* ---- batches ---- */

size_t plan_next(const struct event *const *evs, size_t n, size_t batch_max, size_t *out_idx)
{
    size_t i = 0, count = 0;
    while (i < n && !evs[i])
        i++;
    if (i == n || batch_max == 0)
        return 0;
    struct plan_keyset seen;
    if (plan_keyset_init(&seen, batch_max)) {
        out_idx[0] = i; /* out of memory: one event is always a valid batch */
        return 1;
    }
    enum plan_kind kind = plan_kind_of(evs[i]->action);
    for (; i < n && count < batch_max; i++) {
        const struct event *ev = evs[i];
        if (!ev)
            continue;
        if (plan_kind_of(ev->action) != kind)
            break;
        if (!plan_keyset_add(&seen, ev->key_text, i))
            break; /* the key repeats: its later event waits for the next batch */
        out_idx[count++] = i;
    }
    plan_keyset_free(&seen);
    return count;
}

size_t plan_split(size_t n)
{
    return n / 2;
}

/* ---- bodies ---- */

static bool routed(const struct config_collection *coll, const char *field)
{
    for (size_t i = 0; i < coll->nfields; i++)
        if (strcmp(coll->fields[i], field) == 0)
            return true;
    return false;
}

static bool file_content_field(const struct config_collection *coll, const char *field)
{
    if (strcmp(coll->collection, DIRECTUS_FILES) != 0)
        return false;
    for (size_t i = 0; i < DIRECTUS_FILE_CONTENT_FIELDS; i++)
        if (strcmp(directus_file_content_fields[i], field) == 0)
            return true;
    return false;
}

bool plan_file_content(const struct event *ev, const struct config_collection *coll)
{
    if (strcmp(coll->collection, DIRECTUS_FILES) != 0 || ev->action == EVENT_DELETE)
        return false;
    if (ev->action != EVENT_UPDATE)
        return true;
    for (const cJSON *f = ev->delta ? ev->delta->child : NULL; f; f = f->next)
        if (f->string && file_content_field(coll, f->string))
            return true;
    return false;
}

bool plan_touches(const struct event *ev, const struct config_collection *coll)
{
    if (ev->action != EVENT_UPDATE)
        return true;
    if (!ev->delta)
        return false;
    for (const cJSON *f = ev->delta->child; f; f = f->next)
        if (f->string && (routed(coll, f->string) || file_content_field(coll, f->string)))
            return true;
    return false;
}

static void prune_object(cJSON *o, const struct config_collection *coll)
{
    cJSON *f = o ? o->child : NULL;
    while (f) {
        cJSON *next = f->next;
        if (!f->string || !(routed(coll, f->string) || file_content_field(coll, f->string)))
            cJSON_Delete(cJSON_DetachItemViaPointer(o, f));
        f = next;
    }
}

void plan_prune(struct event *ev, const struct config_collection *coll)
{
    prune_object(ev->data, coll);
    prune_object(ev->delta, coll);
}

static bool add_copy(cJSON *obj, const char *name, const cJSON *v)
{
    cJSON *dup = cJSON_Duplicate(v, true);
    if (!dup)
        return false;
    if (!cJSON_AddItemToObject(obj, name, dup)) {
        cJSON_Delete(dup);
        return false;
    }
    return true;
}

cJSON *plan_body(const struct event *ev, const struct config_collection *coll, const char *pk,
                 enum plan_body mode)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || !add_copy(o, pk, ev->key))
        goto oom;
    for (size_t i = 0; i < coll->nfields; i++) {
        const char *f = coll->fields[i];
        if (strcmp(f, pk) == 0)
            continue; /* the key travels once, from ev->key */
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(ev->data, f);
        if (mode == PLAN_BODY_DELTA) {
            const cJSON *d = cJSON_GetObjectItemCaseSensitive(ev->delta, f);
            if (!d)
                continue;
            if (!v)
                v = d; /* data lacks the field: the delta still says what it became */
        }
        if (v && !add_copy(o, f, v))
            goto oom;
    }
    return o;
oom:
    cJSON_Delete(o);
    return NULL;
}
