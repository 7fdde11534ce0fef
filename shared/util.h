/* util: small helpers shared by every module (strings, growable buffers, UTF-8, time). */
#ifndef DXSYNC_UTIL_H
#define DXSYNC_UTIL_H

#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DX_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* A growable byte buffer, always NUL-terminated once anything was appended.
 * The owner frees data with free() (or util_buf_free). */
struct util_buf {
    char *data;
    size_t len;
    size_t cap;
    bool failed; /* an allocation failed; contents are incomplete */
};

void util_buf_append(struct util_buf *b, const void *p, size_t n);
void util_buf_puts(struct util_buf *b, const char *s);
void util_buf_printf(struct util_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void util_buf_reset(struct util_buf *b);
void util_buf_free(struct util_buf *b);
/* Hands the data over to the caller (who frees it) and resets the buffer. NULL on failure. */
char *util_buf_steal(struct util_buf *b);

/* Overwrites n bytes at p with zeros that the compiler may not drop (explicit_bzero): for
 * secrets (tokens, passwords, connection strings) about to be freed or left on the stack. */
void util_wipe(void *p, size_t n);

/* Wipes a secret string (all of its strlen bytes) and frees it; NULL is ignored. */
void util_free_secret(char *s);

/* snprintf that says whether the whole text fit: 0 when it did, -1 when it was cut (or on an
 * encoding error). A cut buf is still terminated but must not be used as SQL, a URL, a name
 * or a path: return an error naming what was too long. */
int util_format(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), warn_unused_result));

/* strdup that treats NULL as NULL. */
char *util_strdup(const char *s);

/* Copies at most dstlen-1 bytes and always terminates; returns strlen(src). */
size_t util_strlcpy(char *dst, const char *src, size_t dstlen);

/* Validates UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
 * On failure sets *bad_at to the byte offset of the first invalid sequence. */
bool util_utf8_valid(const char *s, size_t len, size_t *bad_at);

/* Milliseconds on the monotonic clock, and on the wall clock since the epoch. */
int64_t util_mono_ms(void);
int64_t util_wall_ms(void);

/* Hands the heap's free memory back to the system (glibc's malloc_trim over every arena; nothing
 * elsewhere): after a burst whose buffers are gone (a restore read the whole history, a large
 * event), the resident size falls back instead of staying at the burst's peak. */
void util_release_memory(void);

/* Fixes glibc's mmap and trim thresholds (256 KiB, 1 MiB) instead of letting them grow: after
 * librdkafka frees a large fetch buffer, glibc raises both (up to 32 and 64 MiB) and keeps
 * everything freed below them for good, which malloc_trim does not hand back from the arenas of
 * librdkafka's threads. A consumer that read 20,000 events of 5 KB back at assignment kept
 * 30.6 MB of RSS with the moving thresholds, 19.1 MB with these (its clocks 6 MB). */
void util_tune_allocator(void);

/* The process's memory now, in bytes: resident (/proc/self/statm), the heap's bytes in use by
 * allocations and its free bytes kept by the allocator (glibc's mallinfo2 over every arena; 0
 * elsewhere). RSS growing with heap_used is memory something holds; with heap_free, memory freed
 * but not handed back (fragmentation). Fields it cannot read are 0. Under AddressSanitizer the heap
 * figures are glibc's alone (ASan allocates on its own). */
struct util_memory {
    size_t rss, heap_used, heap_free;
};
void util_memory_now(struct util_memory *out);

/* Formats epoch milliseconds as 2026-11-25T22:30:39.839Z into buf (at least 25 bytes). */
void util_iso8601_ms(int64_t epoch_ms, char *buf, size_t len);

/* Parses an ISO 8601 UTC/offset timestamp (2026-11-25T22:30:39Z, with optional fraction and
 * +hh:mm offset, or a date alone) or a duration back from now_ms ("90s", "15m", "2h", "7d").
 * Returns 0 and epoch milliseconds, or -1. */
int util_parse_time(const char *s, int64_t now_ms, int64_t *out_ms);

/* Parses a whole decimal integer; false on junk, overflow or out of [min, max]. */
bool util_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);

/* Parses exactly len bytes as one JSON value (whitespace may follow it, nothing else).
 * Returns the tree (free with cJSON_Delete) or NULL with *err_at set to the failing offset.
 * Declared with a forward struct so util.h does not pull in cJSON. */
struct cJSON;
struct cJSON *util_json_parse(const char *buf, size_t len, size_t *err_at);

/* Sleeps up to ms milliseconds, returning early when *stop becomes non-zero. */
void util_sleep_ms(int64_t ms, const volatile sig_atomic_t *stop);

/* Whether two JSON values hold the same value as Directus gives them: equal JSON, or a number
 * and its decimal text (a bigint or decimal read back as text). */
bool util_json_same(const struct cJSON *a, const struct cJSON *b);

#endif
