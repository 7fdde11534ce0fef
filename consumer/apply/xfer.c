#include "xfer.h"

#include "log.h"

#include <stdlib.h>
#include <string.h>

#define COMP "consumer"

struct xfer {
    CURLM *multi;
    CURL *dl; /* ours */
    CURL *up; /* the caller's */
    bool dl_added, up_added;
    bool dl_ended;
    CURLcode dl_result;
    bool dl_paused, up_paused;
    bool kick_dl, kick_up;
    struct http_sink sink;
    struct http_response dl_resp;
    curl_mime *mime;
    /* the ring: len bytes from head */
    char *ring;
    size_t head, len;
    int64_t expected, received, sent;
    bool size_checked;
};

/* The download's bytes: into the ring, or pause while it is full. */
static size_t on_download(const char *ptr, size_t n, void *arg)
{
    struct xfer *x = arg;
    if (!x->size_checked) {
        x->size_checked = true;
        curl_off_t cl = -1;
        curl_easy_getinfo(x->dl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
        if (cl >= 0 && (int64_t)cl != x->expected)
            return 0; /* another file than the record says: stop before a byte moves */
    }
    if (x->received + (int64_t)n > x->expected)
        return 0;
    if (XFER_RING - x->len < n) {
        x->dl_paused = true;
        return CURL_WRITEFUNC_PAUSE;
    }
    size_t tail = (x->head + x->len) % XFER_RING;
    size_t first = XFER_RING - tail < n ? XFER_RING - tail : n;
    memcpy(x->ring + tail, ptr, first);
    memcpy(x->ring, ptr + first, n - first);
    x->len += n;
    x->received += (int64_t)n;
    if (x->up_paused)
        x->kick_up = true;
    return n;
}

/* The upload's bytes: from the ring, or pause while it is empty; abort when the download
 * ended without bringing them all. */
static size_t on_upload(char *buf, size_t size, size_t nitems, void *arg)
{
    struct xfer *x = arg;
    size_t want = size * nitems;
    if (x->len == 0) {
        if (x->dl_ended)
            return CURL_READFUNC_ABORT;
        x->up_paused = true;
        return CURL_READFUNC_PAUSE;
    }
    size_t n = want < x->len ? want : x->len;
    size_t first = XFER_RING - x->head < n ? XFER_RING - x->head : n;
    memcpy(buf, x->ring + x->head, first);
    memcpy(buf + first, x->ring, n - first);
    x->head = (x->head + n) % XFER_RING;
    x->len -= n;
    x->sent += (int64_t)n;
    if (x->dl_paused)
        x->kick_dl = true;
    return n;
}

static void xfer_free(struct xfer *x)
{
    if (x->dl)
        curl_easy_cleanup(x->dl);
    curl_mime_free(x->mime);
    http_response_free(&x->dl_resp);
    free(x->ring);
    free(x);
}

struct xfer *xfer_start(CURLM *multi, struct http_client *src, const char *src_path,
                        struct http_client *dst, const char *method, const char *dst_path, CURL *up,
                        struct http_response *up_resp, const struct xfer_spec *spec,
                        long timeout_ms)
{
    struct xfer *x = calloc(1, sizeof(*x));
    if (!x)
        return NULL;
    x->multi = multi;
    x->up = up;
    x->expected = spec->size;
    if (!(x->ring = malloc(XFER_RING)) || !(x->dl = curl_easy_init()) ||
        !(x->mime = curl_mime_init(up)))
        goto fail;
    curl_mimepart *part;
    if (spec->create &&
        (!(part = curl_mime_addpart(x->mime)) || curl_mime_name(part, "id") != CURLE_OK ||
         curl_mime_data(part, spec->id, CURL_ZERO_TERMINATED) != CURLE_OK))
        goto fail;
    if (!(part = curl_mime_addpart(x->mime)) || curl_mime_name(part, "file") != CURLE_OK ||
        curl_mime_filename(part, spec->filename) != CURLE_OK ||
        curl_mime_type(part, spec->type) != CURLE_OK ||
        curl_mime_data_cb(part, (curl_off_t)spec->size, on_upload, NULL, NULL, x) != CURLE_OK)
        goto fail;
    x->sink = (struct http_sink){.write = on_download, .arg = x, .resp = &x->dl_resp};
    if (http_prepare_download(src, x->dl, src_path, timeout_ms, &x->sink) ||
        http_prepare_upload(dst, up, method, dst_path, x->mime, timeout_ms, up_resp))
        goto fail;
    if (curl_multi_add_handle(multi, x->dl) != CURLM_OK)
        goto fail;
    x->dl_added = true;
    if (curl_multi_add_handle(multi, up) != CURLM_OK) {
        curl_multi_remove_handle(multi, x->dl);
        goto fail;
    }
    x->up_added = true;
    return x;
fail:
    xfer_free(x);
    return NULL;
}

bool xfer_owns(const struct xfer *x, const CURL *easy)
{
    return x && x->dl == easy;
}

void xfer_download_done(struct xfer *x, CURLcode result)
{
    if (x->dl_added)
        curl_multi_remove_handle(x->multi, x->dl);
    x->dl_added = false;
    x->dl_ended = true;
    x->dl_result = result;
    http_finish(x->dl, result, &x->dl_resp);
    if (x->up_paused)
        x->kick_up = true; /* to take the rest, or to abort */
}

bool xfer_kick(struct xfer *x)
{
    bool kicked = false;
    if (x->kick_up && x->up_added) {
        x->kick_up = false;
        x->up_paused = false;
        curl_easy_pause(x->up, CURLPAUSE_CONT);
        kicked = true;
    }
    if (x->kick_dl && x->dl_added) {
        x->kick_dl = false;
        x->dl_paused = false;
        curl_easy_pause(x->dl, CURLPAUSE_CONT);
        kicked = true;
    }
    return kicked;
}

void xfer_end(struct xfer *x, struct xfer_result *out)
{
    memset(out, 0, sizeof(*out));
    out->dl_ended = x->dl_ended;
    if (!x->dl_ended) {
        /* the upload took every byte it announced, or gave up: the download's end is moot */
        curl_multi_remove_handle(x->multi, x->dl);
        x->dl_added = false;
        x->dl_resp.status = 200;
        x->dl_resp.klass = HTTP_OK;
        if (x->received != x->expected) {
            x->dl_resp.klass = HTTP_NONE;
            snprintf(x->dl_resp.message, sizeof(x->dl_resp.message),
                     "download stopped after %lld of %lld bytes", (long long)x->received,
                     (long long)x->expected);
        }
    } else if (x->dl_result == CURLE_WRITE_ERROR) {
        snprintf(x->dl_resp.message, sizeof(x->dl_resp.message),
                 "the source sent another size than its record's %lld bytes (replaced meanwhile?)",
                 (long long)x->expected);
    }
    out->dl = x->dl_resp;
    memset(&x->dl_resp, 0, sizeof(x->dl_resp));
    out->expected = x->expected;
    out->received = x->received;
    out->complete = x->received == x->expected && out->dl.klass == HTTP_OK;
    x->up_added = false; /* the caller removed it */
    xfer_free(x);
}

void xfer_abort(struct xfer *x)
{
    if (!x)
        return;
    if (x->dl_added)
        curl_multi_remove_handle(x->multi, x->dl);
    if (x->up_added)
        curl_multi_remove_handle(x->multi, x->up);
    log_debug(COMP, "event=file_transfer_stopped sent=%lld", (long long)x->sent);
    xfer_free(x);
}

int64_t xfer_sent(const struct xfer *x)
{
    return x ? x->sent : 0;
}

int xfer_run(struct http_client *src, const char *src_path, struct http_client *dst,
             const char *method, const char *dst_path, const struct xfer_spec *spec,
             long timeout_ms, struct http_response *up_resp, struct xfer_result *out)
{
    CURLM *multi = curl_multi_init();
    CURL *up = curl_easy_init();
    struct xfer *x = multi && up ? xfer_start(multi, src, src_path, dst, method, dst_path, up,
                                              up_resp, spec, timeout_ms)
                                 : NULL;
    if (!x) {
        if (up)
            curl_easy_cleanup(up);
        if (multi)
            curl_multi_cleanup(multi);
        return -1;
    }
    bool up_done = false;
    while (!up_done) {
        int running;
        curl_multi_perform(multi, &running);
        while (xfer_kick(x))
            curl_multi_perform(multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            if (m->easy_handle == up) {
                http_finish(up, m->data.result, up_resp);
                curl_multi_remove_handle(multi, up);
                up_done = true;
            } else if (xfer_owns(x, m->easy_handle)) {
                xfer_download_done(x, m->data.result);
            }
        }
        if (!up_done)
            curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    xfer_end(x, out);
    curl_easy_cleanup(up);
    curl_multi_cleanup(multi);
    return 0;
}
