/* notify: composing the notification of a group of error events (see notify.h). */
#include "notify.h"

#include "kafka.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ELLIPSIS "\xe2\x80\xa6" /* U+2026, one character, three bytes */

/* Longest rendering of one value in a message (an error message can be a stack of text). */
#define VALUE_MAX    1000
#define KEY_MAX      1100 /* every key an event can carry (1,023 bytes) */
#define KEY_LIST_MAX 100  /* a key in a digest's list */

static bool is_cont(unsigned char c)
{
    return (c & 0xC0) == 0x80;
}

size_t notify_text_chars(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++)
        n += !is_cont(*p);
    return n;
}

/* Byte offset where character number `chars` starts (or the end of s). */
static size_t char_offset(const char *s, size_t chars)
{
    size_t i = 0, n = 0;
    while (s[i]) {
        if (!is_cont((unsigned char)s[i])) {
            if (n == chars)
                return i;
            n++;
        }
        i++;
    }
    return i;
}

bool notify_text_shorten(char *s, size_t max)
{
    if (!s || notify_text_chars(s) <= max)
        return false;
    size_t len = strlen(s);
    if (max < 2) {
        s[char_offset(s, max)] = '\0';
        return true;
    }
    /* Keep max-1 characters and add the ellipsis; more than max characters means at least two
     * go, and if they are two single bytes there is no room for three: keep one less. */
    size_t cut = char_offset(s, max - 1);
    if (len - cut < sizeof(ELLIPSIS) - 1)
        cut = char_offset(s, max - 2);
    memcpy(s + cut, ELLIPSIS, sizeof(ELLIPSIS));
    return true;
}

void notify_md_escape(struct util_buf *b, const char *s, size_t max)
{
    static const char special[] = "\\`*_[]<>|~&#!";
    if (!s)
        return;
    /* Secrets never reach a notification, whatever an error event carried. */
    char *copy = strdup(s);
    if (!copy) {
        b->failed = true;
        return;
    }
    log_redact(copy, strlen(copy) + 1);
    size_t chars = 0;
    for (const unsigned char *p = (const unsigned char *)copy; *p; p++) {
        if (!is_cont(*p)) {
            if (chars == max) {
                util_buf_puts(b, ELLIPSIS);
                break;
            }
            chars++;
        }
        if (*p < 0x20 || *p == 0x7f) {
            util_buf_puts(b, " ");
            continue;
        }
        if (*p < 0x80 && strchr(special, *p))
            util_buf_puts(b, "\\");
        util_buf_append(b, p, 1);
    }
    free(copy);
}

/* Plain text for the subject: control characters become spaces. */
static void plain(struct util_buf *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++)
        util_buf_append(b, *p < 0x20 || *p == 0x7f ? (const unsigned char *)" " : p, 1);
}

/* What failed, in a few words: the Directus code, else the status, else "no answer". */
static void what_failed(struct util_buf *b, const struct error_event *ev)
{
    if (ev->code && ev->code[0])
        plain(b, ev->code);
    else if (ev->status > 0)
        util_buf_printf(b, "HTTP %d", ev->status);
    else
        util_buf_puts(b, "no answer");
}

static void status_text(struct util_buf *b, int status)
{
    if (status > 0)
        util_buf_printf(b, "%d", status);
    else
        util_buf_puts(b, "none (no answer)");
}

/* Only a name Kafka would accept goes into a shell command line. */
static bool topic_safe(const char *t)
{
    if (!t || !*t || strlen(t) > 249)
        return false;
    for (const char *p = t; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return false;
    return true;
}

static void item_line_or(struct util_buf *b, const char *label, const char *value, size_t max,
                         const char *absent)
{
    util_buf_printf(b, "- **%s:** ", label);
    if (value && *value)
        notify_md_escape(b, value, max);
    else
        util_buf_puts(b, absent);
    util_buf_puts(b, "\n");
}

static void item_line(struct util_buf *b, const char *label, const char *value, size_t max)
{
    item_line_or(b, label, value, max, "unknown");
}

static void location(struct util_buf *b, const struct error_event *ev)
{
    if (!ev->has_location) {
        util_buf_puts(b, "unknown");
        return;
    }
    util_buf_puts(b, "topic ");
    notify_md_escape(b, ev->topic, 300);
    util_buf_printf(b, ", partition %d, offset %lld", (int)ev->partition, (long long)ev->offset);
}

static void compose_single(struct util_buf *s, struct util_buf *m, const struct notify_group *g,
                           const char *errors_topic, const char *dlq_topic)
{
    const struct error_event *ev = &g->first[0];
    util_buf_puts(s, "Sync to ");
    plain(s, g->remote);
    util_buf_puts(s, " failed: ");
    what_failed(s, ev);
    util_buf_puts(s, " on ");
    if (ev->action) {
        plain(s, ev->action);
        util_buf_puts(s, " of ");
    }
    plain(s, ev->collection);
    if (ev->key) {
        util_buf_puts(s, " ");
        plain(s, ev->key);
    }

    util_buf_puts(m, "dxsync could not apply a change from **");
    notify_md_escape(m, g->source, 100);
    util_buf_puts(m, "** to **");
    notify_md_escape(m, g->remote, 100);
    util_buf_printf(m, "**%s.\n\n", ev->attempts > 1 ? " and gave up retrying" : "");
    item_line(m, "Collection", ev->collection, VALUE_MAX);
    item_line(m, "Key", ev->key, KEY_MAX);
    item_line(m, "Action", ev->action, 100);
    util_buf_puts(m, "- **Status:** ");
    status_text(m, ev->status);
    util_buf_puts(m, "\n");
    item_line_or(m, "Error code", ev->code, 200, "none");
    item_line(m, "Error message", ev->message, VALUE_MAX);
    util_buf_printf(m, "- **Attempts:** %d\n", ev->attempts);
    item_line(m, "Event", ev->event_id, 300);
    item_line(m, "Failed at", ev->timestamp, 100);
    util_buf_puts(m, "- **Original event:** ");
    location(m, ev);
    util_buf_puts(m, "\n\n");
    if (ev->has_location && topic_safe(ev->topic))
        util_buf_printf(m, "Show the event with `kcat -C -t %s -p %d -o %lld -c 1`. ", ev->topic,
                        (int)ev->partition, (long long)ev->offset);
    util_buf_puts(m, "A copy of it with the error is in the dead-letter topic ");
    notify_md_escape(m, dlq_topic, 300);
    util_buf_puts(m, "; this error event is in ");
    notify_md_escape(m, errors_topic, 300);
    util_buf_printf(m, ", partition %d, offset %lld.\n", (int)g->pos[0].partition,
                    (long long)g->pos[0].offset);
}

static int pos_cmp(const void *a, const void *b)
{
    const struct notify_pos *x = a, *y = b;
    if (x->partition != y->partition)
        return x->partition < y->partition ? -1 : 1;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* "partition 0, offsets 10 to 509 (500); partition 3, offset 7 (1)" */
static void ranges(struct util_buf *b, const struct notify_group *g)
{
    struct notify_pos *p = malloc(g->npos * sizeof(*p));
    if (!p) {
        b->failed = true;
        return;
    }
    memcpy(p, g->pos, g->npos * sizeof(*p));
    qsort(p, g->npos, sizeof(*p), pos_cmp);
    size_t shown = 0;
    for (size_t i = 0; i < g->npos;) {
        size_t j = i;
        while (j + 1 < g->npos && p[j + 1].partition == p[i].partition)
            j++;
        if (shown == 16) {
            util_buf_puts(b, "; and more partitions");
            break;
        }
        util_buf_printf(b, "%spartition %d, ", shown ? "; " : "", (int)p[i].partition);
        if (i == j)
            util_buf_printf(b, "offset %lld", (long long)p[i].offset);
        else
            util_buf_printf(b, "offsets %lld to %lld (%zu events)", (long long)p[i].offset,
                            (long long)p[j].offset, j - i + 1);
        shown++;
        i = j + 1;
    }
    free(p);
}

static void compose_digest(struct util_buf *s, struct util_buf *m, const struct notify_group *g,
                           const char *errors_topic, const char *dlq_topic)
{
    const struct error_event *ev = &g->first[0];
    util_buf_puts(s, "Sync to ");
    plain(s, g->remote);
    util_buf_printf(s, " failed: %zu changes", g->count);
    if (g->one_collection) {
        util_buf_puts(s, " in ");
        plain(s, ev->collection);
    }
    util_buf_puts(s, " (");
    what_failed(s, ev);
    util_buf_puts(s, ")");

    util_buf_printf(m, "dxsync could not apply **%zu** changes from **", g->count);
    notify_md_escape(m, g->source, 100);
    util_buf_puts(m, "** to **");
    notify_md_escape(m, g->remote, 100);
    util_buf_puts(m, "**");
    if (g->code[0]) {
        util_buf_puts(m, " with error code **");
        notify_md_escape(m, g->code, 200);
        util_buf_puts(m, "**");
    }
    util_buf_printf(m, ". They came within %lld s and are counted in this one notification.\n\n",
                    (long long)((g->due_ms - g->opened_ms + 999) / 1000));
    util_buf_puts(m, "- **Collections:** ");
    for (size_t i = 0; i < g->ncollections; i++) {
        util_buf_puts(m, i ? ", " : "");
        notify_md_escape(m, g->collections[i].name, 100);
        util_buf_printf(m, " (%zu)", g->collections[i].count);
    }
    if (g->other_collections)
        util_buf_printf(m, ", other collections (%zu)", g->other_collections);
    util_buf_puts(m, "\n- **Status:** ");
    status_text(m, ev->status);
    util_buf_puts(m, g->one_status ? "\n" : " for the first; the others vary\n");
    item_line(m, "Error message of the first", ev->message, VALUE_MAX);
    item_line(m, "First failed at", ev->timestamp, 100);
    item_line(m, "Last failed at", g->last_timestamp, 100);
    util_buf_printf(m, "\nThe first %zu failed changes:\n\n", g->nfirst);
    for (size_t i = 0; i < g->nfirst; i++) {
        const struct error_event *e = &g->first[i];
        util_buf_printf(m, "%zu. ", i + 1);
        notify_md_escape(m, e->collection ? e->collection : "?", 100);
        util_buf_puts(m, " ");
        notify_md_escape(m, e->key ? e->key : "(no key)", KEY_LIST_MAX);
        util_buf_puts(m, ": ");
        notify_md_escape(m, e->action ? e->action : "unknown action", 50);
        util_buf_puts(m, ", status ");
        status_text(m, e->status);
        util_buf_printf(m, ", %d attempt%s; ", e->attempts, e->attempts == 1 ? "" : "s");
        location(m, e);
        util_buf_puts(m, "\n");
    }
    if (g->count > g->nfirst)
        util_buf_printf(m, "\nand %zu more.\n", g->count - g->nfirst);
    util_buf_printf(m, "\nAll %zu error events are in ", g->count);
    notify_md_escape(m, errors_topic, 300);
    util_buf_puts(m, ": ");
    ranges(m, g);
    util_buf_puts(m, ". Copies of the failed events with their errors are in the dead-letter "
                     "topic ");
    notify_md_escape(m, dlq_topic, 300);
    util_buf_puts(m, ".\n");
}

static void compose_remote(struct util_buf *s, struct util_buf *m, const struct notify_group *g,
                           const char *errors_topic)
{
    const struct error_event *ev = &g->first[0];
    util_buf_puts(s, "Sync to ");
    plain(s, g->remote);
    if (g->kind == ERROR_REMOTE_RECOVERED) {
        util_buf_puts(s, " recovered");
        util_buf_puts(m, "**");
        notify_md_escape(m, g->remote, 100);
        util_buf_puts(m, "** answers again: dxsync is applying the changes from **");
        notify_md_escape(m, g->source, 100);
        util_buf_puts(m, "** that waited in Kafka, in order.\n\n");
        item_line(m, "Recovered at", ev->timestamp, 100);
    } else {
        util_buf_puts(s, " is stalled: ");
        plain(s, g->remote);
        util_buf_puts(s, " is unavailable (");
        what_failed(s, ev);
        util_buf_puts(s, ")");
        util_buf_puts(m, "dxsync cannot write into **");
        notify_md_escape(m, g->remote, 100);
        util_buf_puts(m, "**. Changes from **");
        notify_md_escape(m, g->source, 100);
        util_buf_puts(m, "** wait in Kafka and are applied, in order, once it answers again; "
                         "nothing is lost. Another notification follows when it recovers.\n\n");
        util_buf_puts(m, "- **Status:** ");
        status_text(m, ev->status);
        util_buf_puts(m, "\n");
        item_line_or(m, "Error code", ev->code, 200, "none");
        item_line(m, "Error message", ev->message, VALUE_MAX);
        util_buf_printf(m, "- **Attempts so far:** %d\n", ev->attempts);
        item_line(m, "Reported at", ev->timestamp, 100);
    }
    util_buf_puts(m, "- **Error event:** ");
    notify_md_escape(m, errors_topic, 300);
    util_buf_printf(m, ", partition %d, offset %lld\n", (int)g->pos[0].partition,
                    (long long)g->pos[0].offset);
}

/* A copy of s shortened to max characters, or NULL (also when s is NULL or empty). */
static char *shortened(const char *s, size_t max, bool *oom)
{
    if (!s || !*s)
        return NULL;
    char *c = strdup(s);
    if (!c) {
        *oom = true;
        return NULL;
    }
    notify_text_shorten(c, max);
    return c;
}

int notify_compose(const struct notify_group *g, const struct config *cfg, struct notify_msg *out)
{
    struct util_buf s = {0}, m = {0};
    char errors_topic[256] = "", dlq_topic[256] = "";
    bool oom = false;
    memset(out, 0, sizeof(*out));
    if (g->nfirst == 0 || g->npos == 0)
        return -1;
    kafka_topic_errors(cfg, errors_topic, sizeof(errors_topic));
    kafka_topic_dlq(cfg, g->remote, dlq_topic, sizeof(dlq_topic));
    const struct error_event *ev = &g->first[0];
    if (g->kind != ERROR_APPLY_FAILED) {
        compose_remote(&s, &m, g, errors_topic);
    } else if (g->count == 1) {
        compose_single(&s, &m, g, errors_topic, dlq_topic);
        if (ev->collection && notify_text_chars(ev->collection) <= NOTIFY_COLLECTION_MAX)
            out->collection = shortened(ev->collection, NOTIFY_COLLECTION_MAX, &oom);
        out->item = shortened(ev->key, NOTIFY_ITEM_MAX, &oom);
    } else {
        compose_digest(&s, &m, g, errors_topic, dlq_topic);
        if (g->one_collection && ev->collection &&
            notify_text_chars(ev->collection) <= NOTIFY_COLLECTION_MAX)
            out->collection = shortened(ev->collection, NOTIFY_COLLECTION_MAX, &oom);
        if (g->one_key)
            out->item = shortened(ev->key, NOTIFY_ITEM_MAX, &oom);
    }
    if (s.failed || m.failed || oom || !s.data || !m.data)
        goto fail;
    out->subject = util_buf_steal(&s);
    out->message = util_buf_steal(&m);
    if (!out->subject || !out->message)
        goto fail;
    /* masked like a log line: an error's message may quote a secret */
    char *subject = log_redact_dup(out->subject), *message = log_redact_dup(out->message);
    if (!subject || !message) {
        free(subject);
        free(message);
        goto fail;
    }
    free(out->subject);
    free(out->message);
    out->subject = subject;
    out->message = message;
    notify_text_shorten(out->subject, NOTIFY_SUBJECT_MAX);
    return 0;
fail:
    util_buf_free(&s);
    util_buf_free(&m);
    notify_msg_free(out);
    return -1;
}

int notify_msg_shrunk(const struct notify_msg *m, struct notify_msg *out)
{
    memset(out, 0, sizeof(*out));
    out->subject = strdup(m->subject ? m->subject : "dxsync");
    out->message = strdup(m->message ? m->message : "");
    if (!out->subject || !out->message) {
        notify_msg_free(out);
        return -1;
    }
    notify_text_shorten(out->subject, 120);
    notify_text_shorten(out->message, 8000);
    return 0;
}

char *notify_msg_json(const struct notify_msg *m, const char *recipient)
{
    cJSON *o = cJSON_CreateObject();
    char *out = NULL;
    if (!o)
        return NULL;
    if (!cJSON_AddStringToObject(o, "recipient", recipient) ||
        !cJSON_AddStringToObject(o, "subject", m->subject ? m->subject : "") ||
        !cJSON_AddStringToObject(o, "message", m->message ? m->message : ""))
        goto out;
    if (m->collection ? !cJSON_AddStringToObject(o, "collection", m->collection)
                      : !cJSON_AddNullToObject(o, "collection"))
        goto out;
    if (m->item ? !cJSON_AddStringToObject(o, "item", m->item) : !cJSON_AddNullToObject(o, "item"))
        goto out;
    out = cJSON_PrintUnformatted(o);
out:
    cJSON_Delete(o);
    return out;
}

void notify_msg_free(struct notify_msg *m)
{
    free(m->subject);
    free(m->message);
    free(m->collection);
    free(m->item);
    memset(m, 0, sizeof(*m));
}
