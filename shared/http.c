#include "http.h"

#include "util.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct http_client {
    char *base_url;
    struct curl_slist *headers;
    struct curl_slist *stream_headers; /* the same without the JSON content type (files) */
    long timeout_ms;
    CURL *easy; /* kept for keep-alive across blocking requests */
    /* HTTPS: a CA bundle instead of the system's, a client certificate and key (NULL: none) */
    char *ca_file, *cert_file, *key_file;
};

static const char *const class_names[] = {"none",      "ok",        "transient", "server_error",
                                          "forbidden", "duplicate", "permanent"};

const char *http_class_name(enum http_class c)
{
    return (size_t)c < DX_ARRAY_LEN(class_names) ? class_names[c] : "?";
}

enum http_class http_classify(CURLcode curl, long status, const char *code)
{
    if (curl != CURLE_OK || status == 0)
        return HTTP_TRANSIENT;
    if (status >= 200 && status < 300)
        return HTTP_OK;
    if (status == 401 || status == 408 || status == 429 || status == 502 || status == 503 ||
        status == 504)
        return HTTP_TRANSIENT;
    if (status >= 500)
        return HTTP_SERVER_ERROR;
    if (status == 403)
        return HTTP_FORBIDDEN;
    if (status == 400 && code && strcmp(code, "RECORD_NOT_UNIQUE") == 0)
        return HTTP_DUPLICATE;
    /* Directus says so when it is overloaded or rate-limits behind a 4xx. */
    if (code &&
        (strcmp(code, "REQUESTS_EXCEEDED") == 0 || strcmp(code, "SERVICE_UNAVAILABLE") == 0))
        return HTTP_TRANSIENT;
    return HTTP_PERMANENT;
}

int http_parse_error(const char *body, size_t len, char *code, size_t codelen, char *msg,
                     size_t msglen)
{
    if (codelen)
        code[0] = '\0';
    if (msglen)
        msg[0] = '\0';
    if (!body || !len)
        return -1;
    cJSON *root = cJSON_ParseWithLength(body, len);
    int rc = -1;
    const cJSON *errors = cJSON_GetObjectItemCaseSensitive(root, "errors");
    const cJSON *first = cJSON_IsArray(errors) ? errors->child : NULL;
    if (cJSON_IsObject(first)) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(first, "message");
        const cJSON *ext = cJSON_GetObjectItemCaseSensitive(first, "extensions");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(ext, "code");
        if (cJSON_IsString(m))
            util_strlcpy(msg, m->valuestring, msglen);
        if (cJSON_IsString(c))
            util_strlcpy(code, c->valuestring, codelen);
        rc = 0;
    }
    cJSON_Delete(root);
    return rc;
}

int http_parse_error_field(const char *body, size_t len, char *field, size_t fieldlen, char *value,
                           size_t valuelen)
{
    if (fieldlen)
        field[0] = '\0';
    if (valuelen)
        value[0] = '\0';
    if (!body || !len)
        return -1;
    cJSON *root = cJSON_ParseWithLength(body, len);
    const cJSON *errors = cJSON_GetObjectItemCaseSensitive(root, "errors");
    const cJSON *first = cJSON_IsArray(errors) ? errors->child : NULL;
    const cJSON *ext = cJSON_GetObjectItemCaseSensitive(first, "extensions");
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(ext, "field");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(ext, "value");
    int rc = -1;
    if (cJSON_IsString(f)) {
        util_strlcpy(field, f->valuestring, fieldlen);
        if (cJSON_IsString(v)) {
            util_strlcpy(value, v->valuestring, valuelen);
        } else if (v) {
            char *t = cJSON_PrintUnformatted(v);
            if (t)
                util_strlcpy(value, t, valuelen);
            free(t);
        }
        rc = 0;
    }
    cJSON_Delete(root);
    return rc;
}

long http_retry_after_s(const char *value, long now_epoch_s)
{
    if (!value)
        return -1;
    while (*value == ' ')
        value++;
    if (isdigit((unsigned char)*value)) {
        char *end;
        long v = strtol(value, &end, 10);
        while (*end == ' ' || *end == '\r' || *end == '\n')
            end++;
        return *end || v < 0 ? -1 : v;
    }
    time_t t = curl_getdate(value, NULL);
    if (t < 0)
        return -1;
    long d = (long)t - now_epoch_s;
    return d < 0 ? 0 : d;
}

void http_response_free(struct http_response *r)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
}

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static bool global_done;
/* libcurl's own CA bundle: what a handle used for a client with a ca_file is set back to */
static char *default_cainfo;

static void global_init(void)
{
    global_done = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
    CURL *e = global_done ? curl_easy_init() : NULL;
    char *ca = NULL;
    if (e && curl_easy_getinfo(e, CURLINFO_CAINFO, &ca) == CURLE_OK && ca)
        default_cainfo = strdup(ca);
    if (e)
        curl_easy_cleanup(e);
}

void http_global_init(void)
{
    pthread_once(&global_once, global_init);
}

void http_global_cleanup(void)
{
    if (global_done)
        curl_global_cleanup();
    global_done = false;
    free(default_cainfo);
    default_cainfo = NULL;
}

struct http_client *http_client_new(const char *base_url, const char *token, long timeout_ms,
                                    char *err, size_t errlen)
{
    http_global_init();
    struct http_client *c = calloc(1, sizeof(*c));
    if (!c)
        goto oom;
    c->timeout_ms = timeout_ms;
    if (!(c->base_url = strdup(base_url)))
        goto oom;
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (h)
        h = curl_slist_append(h, "Accept: application/json");
    if (h && token) {
        size_t n = strlen(token) + 32;
        char *auth = malloc(n);
        if (!auth) {
            curl_slist_free_all(h);
            goto oom;
        }
        snprintf(auth, n, "Authorization: Bearer %s", token);
        struct curl_slist *h2 = curl_slist_append(h, auth);
        util_wipe(auth, n);
        free(auth);
        h = h2;
    }
    if (!h)
        goto oom;
    c->headers = h;
    /* A file's transfer: libcurl sets the multipart content type; no 100-continue round trip. */
    struct curl_slist *sh = curl_slist_append(NULL, "Expect:");
    for (struct curl_slist *it = h->next; sh && it; it = it->next) {
        struct curl_slist *sh2 = curl_slist_append(sh, it->data);
        if (!sh2) {
            for (struct curl_slist *w = sh; w; w = w->next)
                util_wipe(w->data, strlen(w->data));
            curl_slist_free_all(sh);
        }
        sh = sh2;
    }
    if (!sh)
        goto oom;
    c->stream_headers = sh;
    return c;
oom:
    snprintf(err, errlen, "out of memory");
    http_client_free(c);
    return NULL;
}

void http_client_free(struct http_client *c)
{
    if (!c)
        return;
    if (c->easy)
        curl_easy_cleanup(c->easy);
    for (struct curl_slist *h = c->headers; h; h = h->next)
        util_wipe(h->data, strlen(h->data)); /* the Authorization header holds the token */
    for (struct curl_slist *h = c->stream_headers; h; h = h->next)
        util_wipe(h->data, strlen(h->data));
    curl_slist_free_all(c->headers);
    curl_slist_free_all(c->stream_headers);
    free(c->base_url);
    free(c->ca_file);
    free(c->cert_file);
    free(c->key_file);
    free(c);
}

int http_client_tls(struct http_client *c, const char *ca_file, const char *cert_file,
                    const char *key_file)
{
    free(c->ca_file);
    free(c->cert_file);
    free(c->key_file);
    c->ca_file = ca_file ? strdup(ca_file) : NULL;
    c->cert_file = cert_file ? strdup(cert_file) : NULL;
    c->key_file = key_file ? strdup(key_file) : NULL;
    return (ca_file && !c->ca_file) || (cert_file && !c->cert_file) || (key_file && !c->key_file)
               ? -1
               : 0;
}

const char *http_client_base_url(const struct http_client *c)
{
    return c->base_url;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct http_response *r = userdata;
    size_t n = size * nmemb;
    /* Directus answers are small; refuse anything absurd instead of growing without bound. */
    if (r->len + n > 64u * 1024u * 1024u)
        return 0;
    char *p = realloc(r->body, r->len + n + 1);
    if (!p)
        return 0;
    memcpy(p + r->len, ptr, n);
    r->body = p;
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *userdata)
{
    struct http_response *r = userdata;
    size_t n = size * nitems;
    static const char name[] = "retry-after:";
    if (n > sizeof(name) && strncasecmp(buf, name, sizeof(name) - 1) == 0) {
        char v[128];
        size_t vl = n - (sizeof(name) - 1);
        if (vl >= sizeof(v))
            vl = sizeof(v) - 1;
        memcpy(v, buf + sizeof(name) - 1, vl);
        v[vl] = '\0';
        r->retry_after_s = http_retry_after_s(v, (long)time(NULL));
    }
    return n;
}

/* *resp as "no answer": nothing sent, nothing received (klass HTTP_NONE). */
static void response_none(struct http_response *resp, CURLcode why)
{
    memset(resp, 0, sizeof(*resp));
    resp->retry_after_s = -1;
    resp->curl = why;
    if (why != CURLE_OK)
        util_strlcpy(resp->message, curl_easy_strerror(why), sizeof(resp->message));
}

static void reset_stream(CURL *easy);

int http_prepare(struct http_client *c, CURL *easy, const char *method, const char *path,
                 const char *body, struct http_response *resp)
{
    response_none(resp, CURLE_OK);
    size_t ulen = strlen(c->base_url) + strlen(path) + 1;
    char *url = malloc(ulen);
    if (!url) {
        response_none(resp, CURLE_OUT_OF_MEMORY);
        return -1;
    }
    snprintf(url, ulen, "%s%s", c->base_url, path);
    curl_easy_setopt(easy, CURLOPT_URL, url);
    free(url); /* libcurl copies the URL */
    reset_stream(easy);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(easy, CURLOPT_NOBODY, strcmp(method, "HEAD") == 0 ? 1L : 0L);
    if (body) {
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    } else if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, NULL);
    } else {
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, NULL);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
    }
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, resp);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                     c->timeout_ms < 10000 ? c->timeout_ms : 10000L);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(easy, CURLOPT_CAINFO, c->ca_file ? c->ca_file : default_cainfo);
    curl_easy_setopt(easy, CURLOPT_SSLCERT, c->cert_file);
    curl_easy_setopt(easy, CURLOPT_SSLKEY, c->key_file);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    /* the detail ("SSL certificate problem: unable to get local issuer certificate"), not only
     * the class of the error */
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, resp->errbuf);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, resp);
    return 0;
}

static size_t on_sink(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct http_sink *k = userdata;
    long status = 0;
    curl_easy_getinfo(k->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300)
        return k->write(ptr, size * nmemb, k->arg);
    return on_body(ptr, size, nmemb, k->resp); /* an error answer: read as any other */
}

/* The common part of a file's transfer: http_prepare without a JSON body, the client's headers
 * without the JSON content type, and timeout_ms (0: none) instead of the client's, since a
 * file's transfer time grows with its size; a transfer that moves less than
 * HTTP_STREAM_LOW_SPEED bytes/s for the client's timeout is stalled and ends. */
static int prepare_stream(struct http_client *c, CURL *easy, const char *method, const char *path,
                          long timeout_ms, struct http_response *resp)
{
    if (http_prepare(c, easy, method, path, NULL, resp))
        return -1;
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, c->stream_headers);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, (long)HTTP_STREAM_LOW_SPEED);
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME,
                     c->timeout_ms / 1000 > 0 ? c->timeout_ms / 1000 : 1);
    return 0;
}

int http_prepare_download(struct http_client *c, CURL *easy, const char *path, long timeout_ms,
                          struct http_sink *sink)
{
    if (prepare_stream(c, easy, "GET", path, timeout_ms, sink->resp))
        return -1;
    sink->easy = easy;
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_sink);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, sink);
    curl_easy_setopt(easy, CURLOPT_BUFFERSIZE, (long)HTTP_STREAM_BUFFER);
    return 0;
}

int http_prepare_upload(struct http_client *c, CURL *easy, const char *method, const char *path,
                        curl_mime *mime, long timeout_ms, struct http_response *resp)
{
    if (prepare_stream(c, easy, method, path, timeout_ms, resp))
        return -1;
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, NULL);
    curl_easy_setopt(easy, CURLOPT_MIMEPOST, mime);
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(easy, CURLOPT_UPLOAD_BUFFERSIZE, (long)HTTP_STREAM_BUFFER);
    return 0;
}

/* What a file's transfer set that an ordinary request of the same handle must not keep. */
static void reset_stream(CURL *easy)
{
    curl_easy_setopt(easy, CURLOPT_MIMEPOST, NULL);
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 0L);
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, 0L);
}

void http_finish(CURL *easy, CURLcode result, struct http_response *resp)
{
    resp->curl = result;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &resp->status);
    curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME, &resp->seconds);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, NULL); /* resp may go before the next use */
    if (result != CURLE_OK) {
        resp->status = 0;
        util_strlcpy(resp->message, resp->errbuf[0] ? resp->errbuf : curl_easy_strerror(result),
                     sizeof(resp->message));
    } else if (resp->status >= 300) {
        if (http_parse_error(resp->body, resp->len, resp->code, sizeof(resp->code), resp->message,
                             sizeof(resp->message))) {
            snprintf(resp->message, sizeof(resp->message), "HTTP %ld with %s body", resp->status,
                     resp->len ? "a non-Directus" : "an empty");
        } else {
            http_parse_error_field(resp->body, resp->len, resp->field, sizeof(resp->field),
                                   resp->value, sizeof(resp->value));
        }
    }
    resp->klass = http_classify(result, resp->status, resp->code);
}

int http_request(struct http_client *c, const char *method, const char *path, const char *body,
                 struct http_response *resp)
{
    if (!c->easy && !(c->easy = curl_easy_init())) {
        response_none(resp, CURLE_OUT_OF_MEMORY);
        return -1;
    }
    if (http_prepare(c, c->easy, method, path, body, resp))
        return -1;
    CURLcode rc = curl_easy_perform(c->easy);
    http_finish(c->easy, rc, resp);
    return 0;
}

int http_escape(const char *s, char *buf, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        bool plain = isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~';
        size_t need = plain ? 1 : 3;
        if (o + need >= len)
            return -1;
        if (plain) {
            buf[o++] = (char)*p;
        } else {
            buf[o++] = '%';
            buf[o++] = hex[*p >> 4];
            buf[o++] = hex[*p & 15];
        }
    }
    if (o >= len)
        return -1;
    buf[o] = '\0';
    return 0;
}
