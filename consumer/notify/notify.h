/* notify: the pure half of dxsync-notifier. Error events of one route and code within the
 * digest window are folded into a group (notify_digest_*); a group becomes the subject and
 * markdown message of one Directus notification (notify_compose); the ledger says which
 * offsets of <prefix>.errors may be stored once the notifications covering them exist
 * (notify_ledger_*). No I/O here: notify_run.c reads Kafka and talks to Directus. */
#ifndef DXSYNC_NOTIFY_H
#define DXSYNC_NOTIFY_H

#include "config.h"
#include "event.h"
#include "util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Column limits of directus_notifications, in characters (PostgreSQL counts code points). */
#define NOTIFY_SUBJECT_MAX    255
#define NOTIFY_ITEM_MAX       255
#define NOTIFY_COLLECTION_MAX 64
/* Failed events a digest lists with their details; the rest are counted. */
#define NOTIFY_DIGEST_LIST 10
/* Distinct collections a digest counts separately; the rest are "other collections". */
#define NOTIFY_DIGEST_COLLECTIONS 8

/* ---- text ---- */

/* Characters (code points) of the UTF-8 text s. */
size_t notify_text_chars(const char *s);
/* Shortens s in place to at most max characters, cutting only between characters; a shortened
 * text ends with "…" (inside the limit) so the reader sees the cut. Returns true when it cut. */
bool notify_text_shorten(char *s, size_t max);
/* Appends s escaped as markdown inline text: the ASCII punctuation that markdown or HTML give
 * meaning to gets a backslash, line breaks, tabs and other control characters become spaces.
 * At most max characters of s are kept (then "…"). NULL appends nothing. */
void notify_md_escape(struct util_buf *b, const char *s, size_t max);

/* ---- digest ---- */

/* Where an error event sits in <prefix>.errors. */
struct notify_pos {
    int32_t partition;
    int64_t offset;
};

struct notify_tally {
    char *name;
    size_t count;
};

/* The error events one notification speaks for: a single event, or the digest of a route
 * (source → remote) and error code. Every string is owned by the group. */
struct notify_group {
    enum error_kind kind;
    char *source;
    char *remote;
    char *code; /* "" when the events carry none */
    int64_t opened_ms;
    int64_t due_ms; /* when the window closes and the notification goes out */
    size_t count;   /* error events folded in */
    struct error_event first[NOTIFY_DIGEST_LIST]; /* the first events, in reading order */
    size_t nfirst;
    char *last_timestamp; /* timestamp of the last event folded in */
    bool one_collection;  /* every event has first[0]'s collection */
    bool one_key;         /* ... and key */
    bool one_status;      /* ... and status */
    struct notify_tally collections[NOTIFY_DIGEST_COLLECTIONS];
    size_t ncollections;
    size_t other_collections; /* events of collections beyond the tally */
    struct notify_pos *pos;   /* every event's position, in reading order */
    size_t npos;
    size_t cappos;
    struct notify_group *next; /* the digest's list; not for callers */
};

void notify_group_free(struct notify_group *g);

struct notify_digest;

/* window_ms 0 gives every event a notification of its own. NULL when out of memory. */
struct notify_digest *notify_digest_new(int64_t window_ms);
/* Frees the digest and every group still open in it. */
void notify_digest_free(struct notify_digest *d);

/* Folds *ev into the open group of its route and code whose window has not closed by now_ms, or
 * opens one due at now_ms + window. remote_unavailable and remote_recovered always get a group
 * of their own, due at once. Takes *ev (left empty) whatever the result. Returns the group's
 * event count after the fold (1 for a new group), or -1 when out of memory. */
long notify_digest_add(struct notify_digest *d, struct error_event *ev, struct notify_pos pos,
                       int64_t now_ms);
/* The earliest due time of an open group, INT64_MAX when there is none. */
int64_t notify_digest_next_due(const struct notify_digest *d);
/* Removes and returns the open group that is due first when it is due by now_ms (INT64_MAX
 * takes every group: a flush), else NULL. The caller owns it (notify_group_free). */
struct notify_group *notify_digest_take(struct notify_digest *d, int64_t now_ms);
/* Open groups and the events in them. */
size_t notify_digest_groups(const struct notify_digest *d);
size_t notify_digest_events(const struct notify_digest *d);
/* Frees every open group (a rebalance hands their events to whoever reads them next). */
void notify_digest_clear(struct notify_digest *d);

/* ---- composition ---- */

/* One notification as Directus stores it. Every member is owned (notify_msg_free). */
struct notify_msg {
    char *subject;    /* at most NOTIFY_SUBJECT_MAX characters */
    char *message;    /* markdown */
    char *collection; /* NULL: the notification points at no collection */
    char *item;       /* NULL: at no single item; at most NOTIFY_ITEM_MAX characters */
};

/* Composes the notification of g. cfg gives the topic names (<prefix>.errors and the remote's
 * dead-letter topic). Returns 0, or -1 when out of memory (*out empty). */
int notify_compose(const struct notify_group *g, const struct config *cfg, struct notify_msg *out);
/* The fallback after Directus refused m: a copy with a subject of at most 120 characters, no
 * collection or item, and the message cut to 8,000 characters. 0 or -1 (out of memory). */
int notify_msg_shrunk(const struct notify_msg *m, struct notify_msg *out);
/* The body of POST /notifications for one recipient (malloc'd JSON; free()). NULL when out of
 * memory. */
char *notify_msg_json(const struct notify_msg *m, const char *recipient);
void notify_msg_free(struct notify_msg *m);

/* ---- ledger ---- */

/* The offsets of <prefix>.errors read and not yet handled, per partition. Offsets of one
 * partition are read in increasing order; they are handled in any order. The offset to store
 * for a partition is the first one not handled yet, or one past the last read when all are. */
struct notify_ledger;

struct notify_ledger *notify_ledger_new(void);
void notify_ledger_free(struct notify_ledger *l);
/* Records that the message at pos was read. 0, or -1 when out of memory. */
int notify_ledger_read(struct notify_ledger *l, struct notify_pos pos);
/* Marks the message at pos handled: notified, refused for good, or skipped. Unknown positions
 * are ignored. */
void notify_ledger_done(struct notify_ledger *l, struct notify_pos pos);
/* The offset to store for partition, or -1 when nothing of it was read. */
int64_t notify_ledger_storable(const struct notify_ledger *l, int32_t partition);
/* Fills out (up to max) with the partitions whose storable offset moved since the last call,
 * each with that offset, and remembers them as reported. Returns how many it filled. */
size_t notify_ledger_advanced(struct notify_ledger *l, struct notify_pos *out, size_t max);
/* Messages read and not handled yet, over every partition. */
size_t notify_ledger_pending(const struct notify_ledger *l);
/* Forgets every partition (after a rebalance). */
void notify_ledger_clear(struct notify_ledger *l);

#endif
