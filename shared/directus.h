/* directus: what dxsync knows of Directus's REST API, in one place: what an answer means (ok,
 * outage, a server error that a ping tells apart, an item refused, a token refused), the ping,
 * GET /users/me, GET /policies/me/globals and GET /fields/<collection>.
 *
 * The parsers and rules are pure: they read a finished struct http_response (http_finish), so
 * a curl_multi loop sends the request itself (the paths are below) and hands the answer over.
 * The *_fetch helpers and directus_ping block on http_request: for start-up, the check
 * commands and the notifier, never inside a loop that must not stall. */
#ifndef DXSYNC_DIRECTUS_H
#define DXSYNC_DIRECTUS_H

#include "config.h"
#include "http.h"

#include <stdbool.h>
#include <stddef.h>

/* ---- what an answer means ---- */

enum directus_answer {
    DIRECTUS_NONE = 0,     /* no answer at all (never sent: out of memory): an outage */
    DIRECTUS_OK,           /* 2xx carrying what Directus sends */
    DIRECTUS_OUTAGE,       /* no connection, timeout, 408, 429, 502, 503, 504, or a 4xx saying
                              REQUESTS_EXCEEDED / SERVICE_UNAVAILABLE: retry, keep order */
    DIRECTUS_NOT_DIRECTUS, /* a 2xx whose body is not Directus's JSON where JSON was expected (a
                              proxy's page, a cut answer): an outage; a write it answers for may
                              or may not have happened */
    DIRECTUS_AUTH,         /* 401: the token is refused (expired, rotated). An outage for the
                              writers: fix the token, lose nothing */
    DIRECTUS_SERVER_ERROR, /* any other 5xx: an outage when the ping fails too, else the
                              request's own fault (directus_fault_after_5xx) */
    DIRECTUS_FORBIDDEN,    /* 403: a missing item for a non-admin, or a missing permission */
    DIRECTUS_DUPLICATE,    /* 400 RECORD_NOT_UNIQUE: the item exists */
    DIRECTUS_REFUSED       /* any other 4xx: the request never succeeds as it is */
};

const char *directus_answer_name(enum directus_answer a);

/* What r means. json: the request expects Directus's JSON, i.e. a 2xx is 204, an empty body
 * or an object with "data" (every REST answer but the ping's). Pure; reads r->klass, so a
 * response that http_finish never completed (HTTP_NONE) is DIRECTUS_NONE. */
enum directus_answer directus_classify(const struct http_response *r, bool json);

/* Whether a retries as an outage, without limit and in order: NONE, OUTAGE, NOT_DIRECTUS,
 * AUTH. */
bool directus_is_outage(enum directus_answer a);

/* One line for a log or a check finding: "no answer: Couldn't connect to server",
 * "HTTP 401 INVALID_CREDENTIALS: Invalid user credentials.", "HTTP 200 with a body that is
 * not Directus's JSON". Never holds the token (Directus does not echo it). */
void directus_describe(const struct http_response *r, char *buf, size_t len);

/* ---- ping, and the rule after a 5xx ---- */

#define DIRECTUS_PING_PATH "/server/ping"

/* Whether r, the answer to GET DIRECTUS_PING_PATH, is Directus's: a 2xx saying "pong" (a 200
 * from anything else in front of it is no sign of life). Pure. */
bool directus_ping_ok(const struct http_response *r);

/* Blocking GET DIRECTUS_PING_PATH. Returns 0 when Directus answers, -1 with err otherwise. */
int directus_ping(struct http_client *c, char *err, size_t errlen);

enum directus_fault {
    DIRECTUS_FAULT_OUTAGE = 0, /* the ping fails too: the remote is down, retry without limit */
    DIRECTUS_FAULT_ITEM        /* the ping answers: the request's own fault (its values) */
};

/* The rule after a DIRECTUS_SERVER_ERROR answer: ping is the answer to the GET
 * DIRECTUS_PING_PATH sent right after it. Pure. */
enum directus_fault directus_fault_after_5xx(const struct http_response *ping);

/* Counts one more DIRECTUS_FAULT_ITEM in *failures. True when the request has now failed
 * `attempts` times (consumer.item_attempts) and is given up for good; false: retry it after
 * a backoff. Pure. */
bool directus_item_give_up(int *failures, int attempts);

/* ---- who the token belongs to ---- */

#define DIRECTUS_USERS_ME_PATH    "/users/me?fields=id"
#define DIRECTUS_POLICIES_ME_PATH "/policies/me/globals"

struct directus_user {
    char id[64]; /* the user's uuid */
};

/* From a GET DIRECTUS_USERS_ME_PATH answer {"data":{"id":"..."}}: u->id. Returns 0, or -1 when
 * r is not such an answer (u->id ""). Pure. */
int directus_user_parse(const struct http_response *r, struct directus_user *u);

/* Blocking GET DIRECTUS_USERS_ME_PATH. Returns DIRECTUS_OK with *u filled; DIRECTUS_AUTH when
 * the token is refused (401, or 403: it may not even read itself); DIRECTUS_REFUSED for a 2xx
 * without a user id or another 4xx; else the answer's class (an outage or a server error:
 * worth retrying). err describes every failure. */
enum directus_answer directus_user_fetch(struct http_client *c, struct directus_user *u, char *err,
                                         size_t errlen);

/* From a GET DIRECTUS_POLICIES_ME_PATH answer: 1 when data.admin_access is true, 0 when the
 * answer says otherwise, -1 when r does not say (not a 2xx of that shape). Pure. */
int directus_admin_parse(const struct http_response *r);

/* Blocking GET DIRECTUS_POLICIES_ME_PATH, then directus_admin_parse. */
int directus_admin_fetch(struct http_client *c);

/* From a GET /server/info answer: data.version ("12.4.1") copied into buf, and its major;
 * -1 (buf empty) when the answer does not say. Pure. */
int directus_version_parse(const struct http_response *r, char *buf, size_t len);

/* Blocking GET /server/info, then directus_version_parse. */
int directus_version_fetch(struct http_client *c, char *buf, size_t len);

/* ---- a collection's fields and primary key ---- */

/* What a field is to a writer: a column, or an alias no column holds. */
enum directus_field_kind {
    DIRECTUS_FIELD_COLUMN = 0,
    DIRECTUS_FIELD_O2M,          /* meta.special "o2m" */
    DIRECTUS_FIELD_M2M,          /* "m2m" */
    DIRECTUS_FIELD_M2A,          /* "m2a" */
    DIRECTUS_FIELD_TRANSLATIONS, /* "translations" */
    DIRECTUS_FIELD_ALIAS         /* another alias: type "alias" (groups, presentation) */
};

/* "a column", "a one-to-many alias", ..., "an alias". */
const char *directus_field_kind_name(enum directus_field_kind k);

struct directus_field {
    char *name;
    char *type; /* Directus's type ("string", "integer", "uuid", "alias", ...), "" when absent */
    enum directus_field_kind kind;
    bool primary_key; /* schema.is_primary_key */
};

/* The fields of one collection, in the answer's order. Owns every string; free with
 * directus_fields_free. A zero-initialised struct is an empty list. */
struct directus_fields {
    struct directus_field *v;
    size_t n;
    const char *pk; /* v[i].name of the first primary key, NULL when the answer names none */
};

/* "/fields/<collection percent-encoded>" into buf. Returns 0, or -1 when buf is too small. */
int directus_fields_path(const char *collection, char *buf, size_t len);

/* ---- collections and their endpoints ---- */

/* The system collections a route may carry: files (their bytes travel with them) and folders. */
#define DIRECTUS_FILES   "directus_files"
#define DIRECTUS_FOLDERS "directus_folders"

/* Whether a route may carry collection: any but Directus's system collections (directus_*),
 * except DIRECTUS_FILES and DIRECTUS_FOLDERS. */
bool directus_syncable(const char *collection);

/* The items endpoint of collection into buf: "/files", "/folders", or "/items/<collection
 * percent-encoded>" (Directus refuses /items/ for its system collections). Returns 0, or -1
 * when buf is too small. */
int directus_items_path(const char *collection, char *buf, size_t len);

/* Fields of DIRECTUS_FILES that Directus computes from the file's bytes or sets itself
 * (storage, filename_disk, filesize, width, height, duration, metadata, charset, uploaded_on,
 * uploaded_by, created_on, modified_on, modified_by, tus_id, tus_data): a route never writes
 * them; the remote computes its own when the bytes arrive. */
bool directus_file_computed(const char *field);

/* Fields of DIRECTUS_FILES whose change in an event means new bytes (a create, or an upload
 * replacing the file's content): filename_disk, filesize, uploaded_on. The producer sends them
 * with every file event whatever the route lists; the consumer reads them, never writes them. */
extern const char *const directus_file_content_fields[];
#define DIRECTUS_FILE_CONTENT_FIELDS 3

/* From a GET /fields/<collection> answer (a 2xx {"data":[{"field":...,"type":...,"meta":{...},
 * "schema":{"is_primary_key":...}}, ...]}): *f, which the caller then owns (free it with
 * directus_fields_free). Entries without a "field" string are skipped. Returns 0; -1 when r is
 * not such an answer, -2 when out of memory, both with err and *f empty (nothing to free).
 * err may be NULL when errlen is 0. Pure. */
int directus_fields_parse(const struct http_response *r, struct directus_fields *f, char *err,
                          size_t errlen);

/* The field named name, or NULL. */
const struct directus_field *directus_fields_find(const struct directus_fields *f,
                                                  const char *name);

/* Frees what *f owns and empties it; safe on an empty or already freed list. */
void directus_fields_free(struct directus_fields *f);

/* Blocking GET /fields/<collection>, then directus_fields_parse. Returns DIRECTUS_OK with *f
 * filled (the caller owns it); else the answer's class (DIRECTUS_FORBIDDEN: the collection does
 * not exist, or the token may not read it; DIRECTUS_NOT_DIRECTUS: a 2xx that lists no fields;
 * DIRECTUS_NONE: out of memory) with err set and *f empty. */
enum directus_answer directus_fields_fetch(struct http_client *c, const char *collection,
                                           struct directus_fields *f, char *err, size_t errlen);

/* The HTTP client of an instance: its URL and token, its ca_file and client certificate. The
 * first client of a plain http:// URL to a host other than loopback logs a warning once
 * (event=plain_http: the token crosses the network in clear). NULL with err set on failure. */
struct http_client *directus_client(const struct config_instance *in, long timeout_ms, char *err,
                                    size_t errlen);

/* Whether url (http:// or https://) names a loopback host: localhost, 127.x.x.x or [::1]. */
bool directus_url_loopback(const char *url);

#endif
