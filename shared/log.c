#include "log.h"

#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Process-wide logger settings, written at start-up before any other thread runs. */
static enum log_level g_level = LOG_LEVEL_INFO;
static char *g_secrets[32];
static size_t g_nsecrets;
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

void log_add_secret(const char *secret)
{
    if (!secret || strlen(secret) < 4 || g_nsecrets == DX_ARRAY_LEN(g_secrets))
        return;
    for (size_t i = 0; i < g_nsecrets; i++)
        if (strcmp(g_secrets[i], secret) == 0)
            return;
    char *copy = strdup(secret);
    if (copy)
        g_secrets[g_nsecrets++] = copy;
}

void log_clear_secrets(void)
{
    for (size_t i = 0; i < g_nsecrets; i++)
        free(g_secrets[i]);
    g_nsecrets = 0;
}

void log_redact(char *buf, size_t size)
{
    static const char mask[] = "[redacted]";
    const size_t mlen = sizeof(mask) - 1;
    for (size_t i = 0; i < g_nsecrets; i++) {
        size_t slen = strlen(g_secrets[i]);
        char *from = buf;
        char *hit;
        while ((hit = strstr(from, g_secrets[i])) != NULL) {
            size_t tail = strlen(hit + slen);
            if ((size_t)(hit - buf) + mlen + tail + 1 <= size) {
                memmove(hit + mlen, hit + slen, tail + 1);
                memcpy(hit, mask, mlen);
                from = hit + mlen;
            } else { /* no room to grow: overwrite in place */
                memset(hit, '*', slen);
                from = hit + slen;
            }
        }
    }
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
    char line[4096];
    char ts[32];
    util_iso8601_ms(util_wall_ms(), ts, sizeof(ts));
    int n = snprintf(line, sizeof(line), "%s %s %s ", ts, log_level_name(level), component);
    if (n < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    if ((size_t)n < sizeof(line))
        vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    /* One line per event: fold any newline a message carried. */
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    log_redact(line, sizeof(line));
    if (g_sink) {
        g_sink(line, g_sink_opaque);
        return;
    }
    fprintf(stderr, "%s\n", line);
}
