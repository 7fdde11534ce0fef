/* fileop: one event of DIRECTUS_FILES (a create, a snapshot, an update; deletes go the
 * ordinary way, apply.h) → the requests that make the remote hold the file, as a state machine
 * fed with the answers (pure: the caller sends each request, runs the transfer and waits the
 * delays it is told).
 *
 *   source  GET <source>/files/<id>: the file's size, type and name, and whether its upload has
 *           finished there. Directus commits a new file's row before its bytes are stored, and
 *           a replacement's first activity before the new bytes are in place; both are done when
 *           uploaded_on is set and differs from the event's own. Not yet: the event waits
 *           (FILEOP_NOT_READY, parked like a child waiting for its parent). Gone (403 while the
 *           source lists files): nothing to do, its delete follows.
 *   remote  GET <remote>/files/<id>: does the remote have it?
 *   transfer the bytes (xfer.h): POST /files with the id when the remote lacks the file, else
 *           PATCH /files/<id> (Directus keeps the id, and every item pointing at it stays valid).
 *   patch   PATCH /files/<id> with the routed fields (title, folder, ...), when there are any.
 *
 * An update that changes no bytes is remote + patch (+ source + transfer when the remote lacks
 * the file). A source that does not answer is an outage of the route: retried from the start,
 * never dead-lettered. */
#ifndef DXSYNC_FILEOP_H
#define DXSYNC_FILEOP_H

#include "apply.h"
#include "backoff.h"
#include "config.h"
#include "event.h"
#include "http.h"
#include "xfer.h"

#include <stdbool.h>
#include <stdint.h>

/* The code of an event whose file the source has not finished uploading (it waits). */
#define FILEOP_NOT_READY "FILE_NOT_READY"

enum fileop_step {
    FILEOP_SOURCE = 0, /* GET the source's record */
    FILEOP_PROBE,      /* GET the source's file list: is a 403 a missing file or no access? */
    FILEOP_REMOTE,     /* GET the remote's record */
    FILEOP_TRANSFER,   /* the bytes */
    FILEOP_PATCH,      /* the routed fields */
    FILEOP_END
};

const char *fileop_step_name(enum fileop_step s);

struct fileop_request {
    enum fileop_step step;
    bool to_source; /* GETs of the source; every other request goes to the remote */
    const char *method;
    const char *path; /* the transfer's upload path; its download is src_path */
    const char *body; /* PATCH */
    const char *src_path;
    struct xfer_spec spec; /* FILEOP_TRANSFER */
};

enum fileop_verdict {
    FILEOP_NEXT,         /* send the next request now */
    FILEOP_RETRY_REMOTE, /* the remote is unavailable: wait *delay_ms */
    FILEOP_RETRY_SOURCE, /* the source is unavailable, or changed mid-transfer: wait *delay_ms */
    FILEOP_RETRY_ITEM,   /* a 5xx from a remote that answers: wait *delay_ms */
    FILEOP_DONE          /* the item has its outcome */
};

struct fileop {
    const struct event *ev;
    const struct config_collection *coll;
    struct apply_item *it; /* where the outcome goes (state, status, code, message) */
    bool content;          /* bytes to move */
    bool metadata_only;    /* a repair of the remote's own edit: never bytes */
    int item_attempts;
    enum fileop_step next;
    bool source_known, remote_known, remote_has;
    bool transferred; /* the bytes are on the remote */
    bool gone;        /* the source no longer has the file: nothing done */
    int64_t size;
    char type[256];
    char filename[512];
    char uploaded_on[64];
    char id[256];
    struct backoff backoff;
    struct backoff source_backoff;
    int item_failures;
    char *path;     /* /files/<id> */
    char *src_path; /* /assets/<id> */
    char *get_path; /* the GET of a record, with its fields */
    char *body;     /* the PATCH */
};

/* ev (not owned, outlives op): content says whether it brings bytes (plan_file_content, and
 * they were not already moved by an earlier try). Returns 0, -1 when out of memory or when the
 * key cannot be a path. */
int fileop_init(struct fileop *op, const struct event *ev, const struct config_collection *coll,
                struct apply_item *it, bool content, bool metadata_only, int item_attempts,
                uint64_t seed);
void fileop_free(struct fileop *op);

/* The next request: 1 with *req filled, 0 when the item has its outcome, -1 when out of memory. */
int fileop_next(struct fileop *op, struct fileop_request *req);

/* The answer to the request fileop_next gave last (not the transfer's). */
enum fileop_verdict fileop_answer(struct fileop *op, const struct http_response *r,
                                  int64_t *delay_ms);

/* The transfer's end: the upload's answer and what the download did. */
enum fileop_verdict fileop_transferred(struct fileop *op, const struct http_response *up,
                                       const struct xfer_result *dl, int64_t *delay_ms);

/* A transfer's time limit: base_ms (the request timeout) plus the file at FILEOP_MIN_RATE
 * bytes/s; a transfer that stalls ends sooner (http.h, HTTP_STREAM_LOW_SPEED). */
#define FILEOP_MIN_RATE (256 * 1024)
int64_t fileop_timeout_ms(int64_t size, int64_t base_ms);

#endif
