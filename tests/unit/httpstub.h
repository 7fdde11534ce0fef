/* httpstub: a small HTTP/1.1 server on 127.0.0.1 for unit tests of modules that talk to
 * Directus through libcurl. One thread serves every connection (keep-alive, several at once);
 * the test's answer function decides each response and sees each request. */
#ifndef DXSYNC_HTTPSTUB_H
#define DXSYNC_HTTPSTUB_H

#include <stddef.h>

struct httpstub_request {
    char method[16];
    char path[1024];
    char *body; /* NUL-terminated, "" when none */
    size_t len;
};

/* Fills *status and body (malloc'd or NULL) for req. Runs on the server thread. */
typedef void (*httpstub_answer_fn)(const struct httpstub_request *req, int *status, char **body,
                                   void *opaque);

struct httpstub;

/* Starts the server; *port is its port. NULL on failure. */
struct httpstub *httpstub_start(httpstub_answer_fn fn, void *opaque, int *port);
void httpstub_stop(struct httpstub *s);
/* Requests answered so far, and the most connections open at once. */
int httpstub_requests(struct httpstub *s);
int httpstub_max_concurrent(struct httpstub *s);

#endif
