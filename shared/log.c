/* log: level filter, secret masking, logfmt value escaping (log_q) and the line writer. */
#include "log.h"

#include "util.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Process-wide logger settings, written at start-up before any other thread runs. */
static enum log_level g_level = LOG_LEVEL_INFO;
/* As many as are registered (no fixed limit). A reload registers more while librdkafka's threads
 * log: the lock keeps the arrays from moving under a reader. */
static pthread_rwlock_t g_secrets_lock = PTHREAD_RWLOCK_INITIALIZER;
static char **g_secrets;
static size_t *g_secret_len;
static size_t g_nsecrets, g_cap;
static log_sink_fn g_sink;
static void *g_sink_opaque;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int log_level_parse(const char *s, enum log_level *out)
{
    for (size_t i = 0; i < DX_ARRAY_LEN(level_names); i++) {
        if (s && strcmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

const char *log_level_name(enum log_level level)
{
    return (size_t)level < DX_ARRAY_LEN(level_names) ? level_names[level] : "?";
}

void log_set_level(enum log_level level)
{
    g_level = level;
}

bool log_enabled(enum log_level level)
{
    return level <= g_level;
}

static void add_secret_locked(const char *secret);

void log_add_secret(const char *secret)
{
    if (!secret || strlen(secret) < 4)
        return;
    pthread_rwlock_wrlock(&g_secrets_lock);
    add_secret_locked(secret);
    pthread_rwlock_unlock(&g_secrets_lock);
}

static void add_secret_locked(const char *secret)
{
    for (size_t i = 0; i < g_nsecrets; i++)
        if (strcmp(g_secrets[i], secret) == 0)
            return;
    if (g_nsecrets == g_cap) {
        size_t cap = g_cap ? 2 * g_cap : 32;
        char **s = realloc(g_secrets, cap * sizeof(*s));
        if (s)
            g_secrets = s;
        size_t *l = s ? realloc(g_secret_len, cap * sizeof(*l)) : NULL;
        if (l)
            g_secret_len = l;
        if (!s || !l) {
            /* out of memory at start-up: nothing may be logged unmasked; stop */
            fputs("dxsync: out of memory registering a secret\n", stderr);
            exit(1);
        }
        g_cap = cap;
    }
    char *copy = strdup(secret);
    if (!copy) {
        fputs("dxsync: out of memory registering a secret\n", stderr);
        exit(1);
    }
    g_secret_len[g_nsecrets] = strlen(copy);
    g_secrets[g_nsecrets++] = copy;
}

void log_clear_secrets(void)
{
    pthread_rwlock_wrlock(&g_secrets_lock);
    for (size_t i = 0; i < g_nsecrets; i++)
        util_free_secret(g_secrets[i]);
    free(g_secrets);
    free(g_secret_len);
    g_secrets = NULL;
    g_secret_len = NULL;
    g_nsecrets = g_cap = 0;
    pthread_rwlock_unlock(&g_secrets_lock);
}

/* Length of the registered secret that starts at p (the longest), or 0. cut_end, when not
 * NULL, is the end of a text that was cut: a start of a secret running to it counts too
 * (the rest of the secret was cut off). */
static size_t secret_at(const char *p, const char *cut_end)
{
    size_t best = 0;
    for (size_t i = 0; i < g_nsecrets; i++) {
        size_t slen = g_secret_len[i];
        if (slen > best && *p == g_secrets[i][0] && strncmp(p, g_secrets[i], slen) == 0)
            best = slen;
    }
    if (!best && cut_end) {
        size_t rest = (size_t)(cut_end - p);
        for (size_t i = 0; i < g_nsecrets; i++)
            if (rest && rest < g_secret_len[i] && memcmp(p, g_secrets[i], rest) == 0)
                return rest;
    }
    return best;
}

static const char redact_mask[] = "[redacted]";

void log_redact(char *buf, size_t size)
{
    const size_t mlen = sizeof(redact_mask) - 1;
    pthread_rwlock_rdlock(&g_secrets_lock);
    for (size_t i = 0; i < g_nsecrets; i++) {
        size_t slen = strlen(g_secrets[i]);
        char *from = buf;
        char *hit;
        while ((hit = strstr(from, g_secrets[i])) != NULL) {
            size_t tail = strlen(hit + slen);
            if ((size_t)(hit - buf) + mlen + tail + 1 <= size) {
                memmove(hit + mlen, hit + slen, tail + 1);
                memcpy(hit, redact_mask, mlen);
                from = hit + mlen;
            } else { /* no room to grow: overwrite in place */
                memset(hit, '*', slen);
                from = hit + slen;
            }
        }
    }
    pthread_rwlock_unlock(&g_secrets_lock);
}

char *log_redact_dup(const char *s)
{
    s = s ? s : "";
    size_t n = strlen(s), size = 3 * n + 16; /* room for "[redacted]" over a shorter secret */
    char *out = malloc(size);
    if (!out)
        return NULL;
    memcpy(out, s, n + 1);
    log_redact(out, size);
    return out;
}

void log_stderr(const char *fmt, ...)
{
    char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    log_redact(buf, sizeof(buf));
    fputs(buf, stderr);
}

/* Decodes one UTF-8 sequence of 2 to 4 bytes at p (no overlongs, surrogates or values above
 * U+10FFFF); returns its length and sets *cp, or 0 when p does not start one. */
static size_t utf8_seq(const unsigned char *p, uint32_t *cp)
{
    size_t n;
    uint32_t c, min;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        n = 2, c = p[0] & 0x1fu, min = 0x80;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        n = 3, c = p[0] & 0x0fu, min = 0x800;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        n = 4, c = p[0] & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) /* also stops at the terminating NUL */
            return 0;
        c = (c << 6) | (p[i] & 0x3fu);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return n;
}

static bool plain_byte(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '"' && c != '=' && c != '\\';
}

const char *log_q(char *buf, size_t len, const char *s)
{
    static const char ellipsis[] = "...";
    if (!buf || len < 16)
        return "\"\"";
    if (!s) {
        util_strlcpy(buf, "-", len);
        return buf;
    }
    bool quote = !*s;
    for (const char *p = s; *p && !quote; p++)
        quote = !plain_byte((unsigned char)*p);
    size_t o = 0;
    if (quote)
        buf[o++] = '"';
    /* room kept for "...", the closing quote and the NUL */
    const size_t limit = len - (sizeof(ellipsis) - 1) - (quote ? 1 : 0) - 1;
    const unsigned char *p = (const unsigned char *)s;
    pthread_rwlock_rdlock(&g_secrets_lock);
    while (*p) {
        char piece[sizeof(redact_mask)];
        size_t plen, used;
        uint32_t cp = 0;
        size_t k = secret_at((const char *)p, NULL);
        size_t u = k ? 0 : utf8_seq(p, &cp);
        if (k) {
            plen = sizeof(redact_mask) - 1, used = k;
            memcpy(piece, redact_mask, plen);
        } else if (u && ((cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029)) {
            plen = (size_t)snprintf(piece, sizeof(piece), "\\u%04x", (unsigned)cp), used = u;
        } else if (u) {
            plen = u, used = u;
            memcpy(piece, p, u);
        } else if (*p == '"' || *p == '\\') {
            plen = 2, used = 1;
            piece[0] = '\\', piece[1] = (char)*p;
        } else if (*p == '\n' || *p == '\r' || *p == '\t') {
            plen = 2, used = 1;
            piece[0] = '\\', piece[1] = *p == '\n' ? 'n' : *p == '\r' ? 'r' : 't';
        } else if (*p < 0x20 || *p >= 0x7f) {
            plen = (size_t)snprintf(piece, sizeof(piece), "\\x%02x", (unsigned)*p), used = 1;
        } else {
            plen = 1, used = 1;
            piece[0] = (char)*p;
        }
        if (o + plen > limit) {
            memcpy(buf + o, ellipsis, sizeof(ellipsis) - 1);
            o += sizeof(ellipsis) - 1;
            break;
        }
        memcpy(buf + o, piece, plen);
        o += plen;
        p += used;
    }
    pthread_rwlock_unlock(&g_secrets_lock);
    if (quote)
        buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

void log_set_sink(log_sink_fn fn, void *opaque)
{
    g_sink = fn;
    g_sink_opaque = opaque;
}

void log_write(enum log_level level, const char *component, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    /* The whole message first (on the heap when it is long), masked, and only then cut:
     * a secret across the cut would otherwise leave its first part in the line. */
    char text[LOG_LINE_MAX + 1];
    char *big = NULL;
    const char *msg = text;
    bool cut = false;
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n >= sizeof(text)) {
        big = malloc((size_t)n + 1);
        if (big && vsnprintf(big, (size_t)n + 1, fmt, ap2) == n)
            msg = big;
        else
            cut = true; /* text holds the start of the message */
    }
    va_end(ap2);
    if (n < 0) {
        free(big);
        return;
    }

    char line[LOG_LINE_MAX + 1];
    char ts[32];
    util_iso8601_ms(util_wall_ms(), ts, sizeof(ts));
    int h = snprintf(line, sizeof(line), "%s %s %s ", ts, log_level_name(level), component);
    size_t o = h < 0 ? 0 : (size_t)h < sizeof(line) ? (size_t)h : sizeof(line) - 1;
    const size_t mlen = sizeof(redact_mask) - 1;
    const char *cut_end = cut ? text + strlen(text) : NULL;
    pthread_rwlock_rdlock(&g_secrets_lock);
    for (const char *p = msg; *p && o < LOG_LINE_MAX;) {
        size_t k = secret_at(p, cut_end);
        if (k) {
            size_t room = LOG_LINE_MAX - o;
            memcpy(line + o, redact_mask, mlen < room ? mlen : room);
            o += mlen < room ? mlen : room;
            p += k;
            continue;
        }
        /* One line per event: fold any newline a message carried. */
        line[o++] = *p == '\n' || *p == '\r' ? ' ' : *p;
        p++;
    }
    pthread_rwlock_unlock(&g_secrets_lock);
    line[o] = '\0';
    free(big);
    if (g_sink) {
        g_sink(line, g_sink_opaque);
        return;
    }
    fprintf(stderr, "%s\n", line);
}
