/* http: the transport to Directus's REST API over libcurl (keep-alive, timeouts, bearer token),
 * with the status-level class of each answer. What an answer means to dxsync (its body
 * included: ping, /users/me, /fields, outage or the item's fault) is directus.h's. */
#ifndef DXSYNC_HTTP_H
#define DXSYNC_HTTP_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

/* What an answer's status means for the request that got it; decided here, where the answer is
 * read. The zero value is "no answer": a response that was never sent or never finished (out
 * of memory before the transfer) reads as a transient failure, never as a success. */
enum http_class {
    HTTP_NONE = 0,     /* no answer at all: as HTTP_TRANSIENT */
    HTTP_OK,           /* 2xx */
    HTTP_TRANSIENT,    /* no answer, timeout, 401, 408, 429, 502, 503, 504: retry, keep order */
    HTTP_SERVER_ERROR, /* any other 5xx: an outage if /server/ping fails too, else the item */
    HTTP_FORBIDDEN,    /* 403: a missing item for a non-admin, or a missing permission */
    HTTP_DUPLICATE,    /* 400 RECORD_NOT_UNIQUE */
    HTTP_PERMANENT     /* any other 4xx (and answers that make no sense): never succeeds */
};

const char *http_class_name(enum http_class c);

/* Classifies a finished transfer. code is the Directus error code (may be "" or NULL). Never
 * returns HTTP_NONE. */
enum http_class http_classify(CURLcode curl, long status, const char *code);

/* Extracts errors[0].message and errors[0].extensions.code from a Directus error body.
 * Returns 0 when found, -1 otherwise (outputs set to ""). */
int http_parse_error(const char *body, size_t len, char *code, size_t codelen, char *msg,
                     size_t msglen);

/* Extracts errors[0].extensions.field and .value (what a refused foreign key names: the field
 * and the key it points at; a string value as is, any other as JSON text). Returns 0 when the
 * field is there, -1 otherwise (outputs set to ""). */
int http_parse_error_field(const char *body, size_t len, char *field, size_t fieldlen, char *value,
                           size_t valuelen);

/* Seconds from a Retry-After header value (delta-seconds or an HTTP date), -1 if unusable. */
long http_retry_after_s(const char *value, long now_epoch_s);

struct http_response {
    CURLcode curl;
    long status;
    char *body; /* NUL-terminated; owned, freed by http_response_free */
    size_t len;
    long retry_after_s;    /* -1 when absent */
    char code[64];         /* Directus error code of an error answer, or "" */
    char message[512];     /* its message, or curl's error text when there was no answer */
    char errbuf[256];      /* libcurl's detail of a failed transfer (CURLOPT_ERRORBUFFER) */
    char field[64];        /* the field the error names (extensions.field), or "" */
    char value[128];       /* and the value it names (extensions.value), or "" */
    double seconds;        /* total time of the transfer */
    enum http_class klass; /* HTTP_NONE until http_finish classifies the transfer */
};

void http_response_free(struct http_response *r);

/* libcurl's global set-up, once per process (thread-safe; later calls do nothing); every HTTP
 * client calls it, a program that makes easy or multi handles of its own calls it first.
 * http_global_cleanup undoes it at exit when it was done. */
void http_global_init(void);
void http_global_cleanup(void);

struct http_client;

/* base_url like http://host:port (no trailing slash); token may be NULL. The client keeps
 * copies. Returns NULL on allocation failure (err set). Free with http_client_free. */
struct http_client *http_client_new(const char *base_url, const char *token, long timeout_ms,
                                    char *err, size_t errlen);
void http_client_free(struct http_client *c);
/* HTTPS settings: ca_file, a PEM bundle trusted instead of the system's; cert_file and
 * key_file, a client certificate and its key (PEM). NULL leaves a setting at libcurl's default.
 * Returns -1 when out of memory. */
int http_client_tls(struct http_client *c, const char *ca_file, const char *cert_file,
                    const char *key_file);
const char *http_client_base_url(const struct http_client *c);

/* Prepares easy for METHOD base_url+path with body (JSON or NULL); the answer lands in *resp
 * once the transfer is done and http_finish is called. For use with curl_multi as well.
 * body must outlive the transfer. Always resets *resp first (HTTP_NONE, no body). Returns 0, or
 * -1 when out of memory (resp->curl CURLE_OUT_OF_MEMORY, resp->message says so). */
int http_prepare(struct http_client *c, CURL *easy, const char *method, const char *path,
                 const char *body, struct http_response *resp);
/* ---- a file's bytes (streamed, never buffered whole) ---- */

/* libcurl's receive and send buffer of a file's transfer, and the speed under which a transfer
 * counts as stalled (for the client's timeout). */
#define HTTP_STREAM_BUFFER    (256 * 1024)
#define HTTP_STREAM_LOW_SPEED 1024

/* Where a download's bytes go: write(ptr, n, arg) returns n, or CURL_WRITEFUNC_PAUSE to be
 * called again with the same bytes once the transfer is unpaused, or anything else to stop it.
 * Only a 2xx answer's bytes go there; an error answer's body lands in *resp as usual. easy is
 * set by http_prepare_download. The sink must outlive the transfer. */
struct http_sink {
    size_t (*write)(const char *ptr, size_t n, void *arg);
    void *arg;
    struct http_response *resp;
    CURL *easy;
};

/* Prepares easy for GET base_url+path whose body goes to sink. timeout_ms replaces the
 * client's (0: none), as a file's transfer time grows with its size; a transfer that moves
 * less than HTTP_STREAM_LOW_SPEED bytes/s for the client's timeout ends as stalled. */
int http_prepare_download(struct http_client *c, CURL *easy, const char *path, long timeout_ms,
                          struct http_sink *sink);
/* Prepares easy for METHOD base_url+path sending mime (multipart/form-data, which must outlive
 * the transfer); the answer lands in *resp. Timeouts as http_prepare_download. */
int http_prepare_upload(struct http_client *c, CURL *easy, const char *method, const char *path,
                        curl_mime *mime, long timeout_ms, struct http_response *resp);

/* Completes *resp after the transfer of easy ended with result: status, error fields, class. */
void http_finish(CURL *easy, CURLcode result, struct http_response *resp);

/* Blocking request on the client's own keep-alive handle. Always fills *resp (free it with
 * http_response_free): returns 0 with the classified answer, or -1 when nothing could be sent
 * (out of memory; resp->klass is HTTP_NONE). */
int http_request(struct http_client *c, const char *method, const char *path, const char *body,
                 struct http_response *resp);

/* Percent-encodes s for a URL path segment into buf. Returns -1 when buf is too small. */
int http_escape(const char *s, char *buf, size_t len);

#endif
