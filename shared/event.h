/* event: the change event and the error event of DESIGN.md, encoded and decoded with cJSON.
 * Decoding is strict: anything malformed or of another version is refused with a reason. */
#ifndef DXSYNC_EVENT_H
#define DXSYNC_EVENT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct util_buf;

#define EVENT_VERSION 1
/* Largest value the decoders accept; a Kafka message above it is malformed for dxsync. The
 * same as the largest event dxsync produces (KAFKA_MESSAGE_MAX_BYTES, test_event checks). */
#define EVENT_MAX_BYTES (64u * 1024u * 1024u)

enum event_action { EVENT_CREATE = 0, EVENT_UPDATE, EVENT_DELETE, EVENT_SNAPSHOT };

struct event {
    char *event_id;
    char *source;
    char *collection;
    enum event_action action;
    cJSON *key;     /* a string or an integral number, as in the item */
    char *key_text; /* the key as text: the Kafka message key */
    cJSON *data;    /* object, or NULL (delete) */
    cJSON *delta;   /* object, or NULL */
    char *user;     /* NULL when unknown */
    char *timestamp;
    bool has_activity_id;
    int64_t activity_id;
    bool has_revision_id;
    int64_t revision_id;
    char *lsn; /* commit LSN of the source transaction; NULL when unknown */
    /* Commit time of the source transaction in microseconds since the Unix epoch (pgoutput's
     * Begin message, never earlier than the source's previous transaction). Absent in events
     * of older producers and in snapshots: such an event is older than any that has it. */
    bool has_commit_us;
    int64_t commit_us;
};

const char *event_action_name(enum event_action action);
int event_action_parse(const char *s, enum event_action *out);

/* Returns a malloc'd JSON text (caller frees with free()), or NULL when out of memory. */
char *event_encode(const struct event *ev);

/* Writes ev's JSON text into b from its start (b's memory is reused from event to event: the
 * producer's loop). Returns 0, or -1 when out of memory. */
int event_encode_into(const struct event *ev, struct util_buf *b);

/* Decodes buf. On success the caller owns *ev (event_free). On failure returns -1, *ev is
 * empty and err holds the reason. Never reads beyond len; buf need not be terminated. */
int event_decode(const void *buf, size_t len, struct event *ev, char *err, size_t errlen);
void event_free(struct event *ev);

/* Writes the text form of a key (string as is, integral number in decimal). -1 if neither. */
int event_key_text(const cJSON *key, char *buf, size_t len);

enum error_kind { ERROR_APPLY_FAILED = 0, ERROR_REMOTE_UNAVAILABLE, ERROR_REMOTE_RECOVERED };

struct error_event {
    enum error_kind kind;
    char *source;
    char *remote;
    char *collection; /* NULL for remote_* */
    char *key;        /* text form, NULL when unknown */
    char *action;     /* NULL when unknown */
    char *event_id;   /* NULL when unknown (a malformed message) */
    int status;       /* HTTP status, 0 when no answer */
    char *code;       /* Directus error code or "" */
    char *message;
    int attempts;
    char *timestamp;
    char *topic; /* where the original event sits; NULL for remote_* */
    bool has_location;
    int32_t partition;
    int64_t offset;
};

const char *error_kind_name(enum error_kind kind);
char *error_event_encode(const struct error_event *ev);
int error_event_decode(const void *buf, size_t len, struct error_event *ev, char *err,
                       size_t errlen);
void error_event_free(struct error_event *ev);

#endif
