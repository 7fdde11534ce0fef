/* xfer: one file's bytes from the source Directus into the remote, as two libcurl transfers of
 * one multi handle feeding each other: GET <source>/assets/<id> writes into a ring buffer of
 * XFER_RING bytes, the remote's multipart upload reads from it. Whichever side is ahead
 * pauses until the other catches up, so memory stays at the ring whatever the file's size.
 *
 * The upload announces the file's size (from the source's record) and takes exactly that
 * many bytes: a download that fails, or brings another size (the file was replaced on the
 * source meanwhile), aborts the upload, so the remote never keeps a cut file from it. A
 * failed transfer starts again from the beginning (fileop.h decides).
 *
 * The callbacks never call into libcurl: they note which side wants to go on, and the owner
 * calls xfer_kick after each curl_multi_perform. */
#ifndef DXSYNC_XFER_H
#define DXSYNC_XFER_H

#include "http.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>

#define XFER_RING (1024 * 1024)

struct xfer;

/* What the download did, once the transfer ended (xfer_end). */
struct xfer_result {
    struct http_response dl; /* the download's answer (its body only when it was an error) */
    int64_t expected;        /* the size the source's record gave */
    int64_t received;        /* bytes the download brought */
    bool complete;           /* the download brought exactly `expected` bytes and no error */
    bool dl_ended;           /* the download reported its end (else it was cut off by xfer_end) */
};

/* What to send: the file's id (a form field when create is true: POST /files keeps the id it is
 * given), its name and type for the multipart part, and its size. */
struct xfer_spec {
    const char *id;
    bool create;
    const char *filename;
    const char *type;
    int64_t size;
};

/* Starts the transfer: the download (GET src_path on src, on the xfer's own handle) and the
 * upload (method dst_path on dst, on the caller's handle up, whose answer lands in *up_resp),
 * both added to multi. timeout_ms bounds each (0: none). Returns the transfer, or NULL with
 * nothing added (out of memory, or libcurl refused a handle). */
struct xfer *xfer_start(CURLM *multi, struct http_client *src, const char *src_path,
                        struct http_client *dst, const char *method, const char *dst_path, CURL *up,
                        struct http_response *up_resp, const struct xfer_spec *spec,
                        long timeout_ms);

/* Whether easy is the transfer's download handle. */
bool xfer_owns(const struct xfer *x, const CURL *easy);

/* The download handle ended with result (curl_multi_info_read): it is removed from the multi
 * and its answer completed. */
void xfer_download_done(struct xfer *x, CURLcode result);

/* Resumes whichever side a callback left waiting for the other. Returns true when it resumed
 * one (the caller performs again). */
bool xfer_kick(struct xfer *x);

/* Ends the transfer after its upload ended (the caller removed the upload handle): stops the
 * download if it still runs, fills *out (the caller frees out->dl with http_response_free) and
 * frees the transfer. */
void xfer_end(struct xfer *x, struct xfer_result *out);

/* Stops both sides (a revoked partition, shutdown) and frees the transfer; the upload handle is
 * removed from the multi too. */
void xfer_abort(struct xfer *x);

/* The whole transfer, blocking, on a multi handle of its own (for the operator commands):
 * *up_resp gets the upload's answer and *out the download's (free both with
 * http_response_free). Returns 0, or -1 when it could not start (out of memory). */
int xfer_run(struct http_client *src, const char *src_path, struct http_client *dst,
             const char *method, const char *dst_path, const struct xfer_spec *spec,
             long timeout_ms, struct http_response *up_resp, struct xfer_result *out);

/* Bytes moved so far from the source to the remote. */
int64_t xfer_sent(const struct xfer *x);

#endif
