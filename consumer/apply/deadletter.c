#include "deadletter.h"

#include "log.h"
#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

rd_kafka_headers_t *deadletter_headers_over(const rd_kafka_headers_t *src,
                                            const struct deadletter_failure *f)
{
    rd_kafka_headers_t *h = src ? rd_kafka_headers_copy(src) : rd_kafka_headers_new(8);
    if (!h)
        return NULL;
    char status[16], partition[16], offset[32];
    snprintf(status, sizeof(status), "%ld", f->status);
    snprintf(partition, sizeof(partition), "%" PRId32, f->partition);
    snprintf(offset, sizeof(offset), "%" PRId64, f->offset);
    /* what the remote answered may quote a secret: masked like a log line */
    char *code = log_redact_dup(f->code), *message = log_redact_dup(f->message);
    if (!code || !message) {
        free(code);
        free(message);
        rd_kafka_headers_destroy(h);
        return NULL;
    }
    const char *pairs[][2] = {
        {"dxsync-error-status", status},
        {"dxsync-error-code", code},
        {"dxsync-error-message", message},
        {"dxsync-original-topic", f->topic ? f->topic : ""},
        {"dxsync-original-partition", partition},
        {"dxsync-original-offset", offset},
    };
    for (size_t i = 0; i < DX_ARRAY_LEN(pairs); i++)
        rd_kafka_header_remove(h, pairs[i][0]); /* a dead letter's own, when src is one */
    for (size_t i = 0; i < DX_ARRAY_LEN(pairs); i++)
        if (rd_kafka_header_add(h, pairs[i][0], -1, pairs[i][1], -1)) {
            rd_kafka_headers_destroy(h);
            h = NULL;
            break;
        }
    free(code);
    free(message);
    return h;
}

rd_kafka_headers_t *deadletter_headers(const rd_kafka_message_t *orig,
                                       const struct deadletter_failure *f)
{
    rd_kafka_headers_t *src = NULL;
    if (!orig || rd_kafka_message_headers(orig, &src) != RD_KAFKA_RESP_ERR_NO_ERROR)
        src = NULL;
    return deadletter_headers_over(src, f);
}

char *deadletter_error_event(const struct deadletter_failure *f, int64_t now_ms)
{
    char ts[32];
    util_iso8601_ms(now_ms, ts, sizeof(ts));
    char *code = log_redact_dup(f->code), *message = log_redact_dup(f->message);
    char *json = NULL;
    if (!code || !message)
        goto out;
    /* error_event_encode reads only; the casts drop const for its struct of owned strings */
    struct error_event ev = {
        .kind = ERROR_APPLY_FAILED,
        .source = (char *)f->source,
        .remote = (char *)f->remote,
        .collection = (char *)f->collection,
        .key = (char *)f->key,
        .action = (char *)f->action,
        .event_id = (char *)f->event_id,
        .status = (int)f->status,
        .code = code,
        .message = message,
        .attempts = f->attempts,
        .timestamp = ts,
        .topic = (char *)f->topic,
        .has_location = f->topic != NULL,
        .partition = f->partition,
        .offset = f->offset,
    };
    json = error_event_encode(&ev);
out:
    free(code);
    free(message);
    return json;
}

char *deadletter_remote_event(enum error_kind kind, const char *source, const char *remote,
                              long status, const char *code, const char *message, int attempts,
                              int64_t now_ms)
{
    char ts[32];
    util_iso8601_ms(now_ms, ts, sizeof(ts));
    char *c = log_redact_dup(code), *msg = log_redact_dup(message);
    char *json = NULL;
    if (!c || !msg)
        goto out;
    struct error_event ev = {
        .kind = kind,
        .source = (char *)source,
        .remote = (char *)remote,
        .status = (int)status,
        .code = c,
        .message = msg,
        .attempts = attempts,
        .timestamp = ts,
    };
    json = error_event_encode(&ev);
out:
    free(c);
    free(msg);
    return json;
}

const char *deadletter_key_text(const rd_kafka_message_t *msg, char *buf, size_t len)
{
    if (!msg->key || msg->key_len == 0 || msg->key_len >= len || msg->key_len > 1023)
        return NULL;
    const char *k = msg->key;
    size_t bad;
    if (!util_utf8_valid(k, msg->key_len, &bad) || memchr(k, '\0', msg->key_len))
        return NULL;
    memcpy(buf, k, msg->key_len);
    buf[msg->key_len] = '\0';
    return buf;
}
