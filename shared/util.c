/* util: small helpers shared by every module (strings, growable buffers, UTF-8, time). */
#define _DEFAULT_SOURCE /* explicit_bzero */
#include "util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static bool buf_reserve(struct util_buf *b, size_t extra)
{
    if (b->failed)
        return false;
    if (b->len + extra + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) {
        if (cap > SIZE_MAX / 2) {
            b->failed = true;
            return false;
        }
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p) {
        b->failed = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

void util_buf_append(struct util_buf *b, const void *p, size_t n)
{
    if (!buf_reserve(b, n))
        return;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void util_buf_puts(struct util_buf *b, const char *s)
{
    util_buf_append(b, s, strlen(s));
}

void util_buf_printf(struct util_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !buf_reserve(b, (size_t)n)) {
        va_end(ap2);
        return;
    }
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    b->len += (size_t)n;
}

void util_buf_reset(struct util_buf *b)
{
    b->len = 0;
    b->failed = false;
    if (b->data)
        b->data[0] = '\0';
}

void util_buf_free(struct util_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

char *util_buf_steal(struct util_buf *b)
{
    char *p = NULL;
    if (!b->failed) {
        if (!b->data)
            util_buf_append(b, "", 0);
        p = b->data;
        b->data = NULL;
    }
    util_buf_free(b);
    return p;
}

int util_format(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    if (n < 0 && len)
        buf[0] = '\0';
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

void util_wipe(void *p, size_t n)
{
    if (p && n)
        explicit_bzero(p, n);
}

void util_free_secret(char *s)
{
    if (s)
        util_wipe(s, strlen(s));
    free(s);
}

char *util_strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

size_t util_strlcpy(char *dst, const char *src, size_t dstlen)
{
    size_t n = strlen(src);
    if (dstlen) {
        size_t c = n < dstlen - 1 ? n : dstlen - 1;
        memcpy(dst, src, c);
        dst[c] = '\0';
    }
    return n;
}

bool util_utf8_valid(const char *str, size_t len, size_t *bad_at)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1;
            cp = c & 0x1Fu;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2;
            cp = c & 0x0Fu;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3;
            cp = c & 0x07u;
        } else {
            goto bad;
        }
        for (size_t k = 1; k <= n; k++) {
            if (i + k >= len || (s[i + k] & 0xC0) != 0x80)
                goto bad;
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            goto bad;
        i += n + 1;
    }
    return true;
bad:
    if (bad_at)
        *bad_at = i;
    return false;
}

int64_t util_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t util_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void util_iso8601_ms(int64_t epoch_ms, char *buf, size_t len)
{
    time_t secs = (time_t)(epoch_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char base[32];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%03dZ", base, (int)(epoch_ms % 1000));
}

bool util_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int parse_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if ((*p)[i] < '0' || (*p)[i] > '9')
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

int util_parse_time(const char *s, int64_t now_ms, int64_t *out_ms)
{
    if (!s || !*s)
        return -1;
    /* Duration back from now: digits followed by one unit. */
    const char *p = s;
    while (*p >= '0' && *p <= '9')
        p++;
    if (p != s && p[0] && !p[1] && strchr("smhdw", p[0])) {
        int64_t n;
        char num[24];
        size_t l = (size_t)(p - s);
        if (l >= sizeof(num))
            return -1;
        memcpy(num, s, l);
        num[l] = '\0';
        if (!util_parse_i64(num, 0, INT64_MAX / 1000 / 604800, &n))
            return -1;
        int64_t unit = p[0] == 's'   ? 1
                       : p[0] == 'm' ? 60
                       : p[0] == 'h' ? 3600
                       : p[0] == 'd' ? 86400
                                     : 604800;
        *out_ms = now_ms - n * unit * 1000;
        return 0;
    }
    int Y, M, D, h = 0, mi = 0, se = 0, ms = 0;
    p = s;
    if (parse_digits(&p, 4, &Y) || *p++ != '-' || parse_digits(&p, 2, &M) || *p++ != '-' ||
        parse_digits(&p, 2, &D))
        return -1;
    if (M < 1 || M > 12 || D < 1 || D > 31)
        return -1;
    int64_t offset_s = 0;
    if (*p == 'T' || *p == ' ') {
        p++;
        if (parse_digits(&p, 2, &h) || *p++ != ':' || parse_digits(&p, 2, &mi))
            return -1;
        if (*p == ':') {
            p++;
            if (parse_digits(&p, 2, &se))
                return -1;
            if (*p == '.') {
                p++;
                int digits = 0;
                while (*p >= '0' && *p <= '9') {
                    if (digits < 3)
                        ms = ms * 10 + (*p - '0');
                    digits++;
                    p++;
                }
                if (!digits)
                    return -1;
                for (; digits < 3; digits++)
                    ms *= 10;
            }
        }
        if (h > 23 || mi > 59 || se > 60)
            return -1;
        if (*p == 'Z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p == '-' ? -1 : 1, oh, om;
            p++;
            if (parse_digits(&p, 2, &oh))
                return -1;
            if (*p == ':')
                p++;
            if (parse_digits(&p, 2, &om))
                return -1;
            offset_s = sign * (oh * 3600 + om * 60);
        }
    }
    if (*p)
        return -1;
    int64_t days = days_from_civil(Y, M, D);
    *out_ms = ((days * 86400 + h * 3600 + mi * 60 + se) - offset_s) * 1000 + ms;
    return 0;
}

void util_sleep_ms(int64_t ms, const volatile sig_atomic_t *stop)
{
    int64_t end = util_mono_ms() + ms;
    while (!(stop && *stop)) {
        int64_t left = end - util_mono_ms();
        if (left <= 0)
            break;
        if (left > 100)
            left = 100;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)left * 1000000L};
        nanosleep(&ts, NULL);
    }
}

struct cJSON *util_json_parse(const char *buf, size_t len, size_t *err_at)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, false);
    if (!root) {
        *err_at = end && end >= buf && end <= buf + len ? (size_t)(end - buf) : 0;
        return NULL;
    }
    size_t off = (size_t)(end - buf);
    while (off < len &&
           (buf[off] == ' ' || buf[off] == '\t' || buf[off] == '\n' || buf[off] == '\r'))
        off++;
    if (off != len) {
        cJSON_Delete(root);
        *err_at = off;
        return NULL;
    }
    return root;
}

bool util_json_same(const cJSON *a, const cJSON *b)
{
    if (cJSON_Compare(a, b, true))
        return true;
    const cJSON *n = cJSON_IsNumber(a) ? a : cJSON_IsNumber(b) ? b : NULL;
    const cJSON *t = cJSON_IsString(a) ? a : cJSON_IsString(b) ? b : NULL;
    if (!n || !t || !*t->valuestring)
        return false;
    char *end;
    errno = 0;
    double d = strtod(t->valuestring, &end);
    return !*end && !errno && d == n->valuedouble;
}

void util_memory_now(struct util_memory *out)
{
    memset(out, 0, sizeof(*out));
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        unsigned long size, resident;
        if (fscanf(f, "%lu %lu", &size, &resident) == 2) {
            long page = sysconf(_SC_PAGESIZE);
            out->rss = (size_t)resident * (size_t)(page > 0 ? page : 4096);
        }
        fclose(f);
    }
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    struct mallinfo2 mi = mallinfo2();
    out->heap_used = mi.uordblks + mi.hblkhd;
    out->heap_free = mi.fordblks;
#endif
}

void util_tune_allocator(void)
{
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
#endif
}

void util_release_memory(void)
{
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}
