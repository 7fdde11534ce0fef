/* log: one line per event to stderr, "<time> <level> <component> key=value ...".
 * Registered secrets are replaced by "[redacted]" in every line, whatever the caller wrote,
 * before the line is cut to LOG_LINE_MAX bytes. Values from outside go through LOG_Q. */
#ifndef DXSYNC_LOG_H
#define DXSYNC_LOG_H

#include <stdbool.h>
#include <stddef.h>

/* The longest line written, its newline not counted; longer lines are cut. */
#define LOG_LINE_MAX 4095

enum log_level { LOG_LEVEL_ERROR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* "error", "warn", "info" or "debug"; returns -1 for anything else. */
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level level);
void log_set_level(enum log_level level);
bool log_enabled(enum log_level level);

/* Registers a secret (copied) to be masked in every later line. Call at start-up, before
 * other threads log. Secrets shorter than 4 bytes are ignored (they would mask too much). */
void log_add_secret(const char *secret);
void log_clear_secrets(void);

/* Masks every registered secret inside buf (in place, may shorten the text). */
void log_redact(char *buf, size_t size);
/* A masked copy of s ("" for NULL), or NULL when out of memory: for what leaves the process
 * other than by a log line (a dead letter's headers, an error event, a notification,
 * /status.json). */
char *log_redact_dup(const char *s);
/* A message for the user on stderr (a usage or configuration error, a command's failure), masked
 * like a log line: an error may quote a secret. */
void log_stderr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Writes s as one logfmt value into buf and returns buf: as it is when it is a plain token
 * (printable ASCII other than space, " = and \), otherwise between double quotes with the
 * escapes \" \\ \n \r \t, \xNN for other control bytes and invalid UTF-8, and \uNNNN for
 * U+0080..U+009F, U+2028 and U+2029, so nothing inside can end the line or start another key.
 * Registered secrets are masked first. NULL is written as -, "" as "". A value longer than
 * buf is cut at a character (never inside an escape) and ends with "...". len >= 16. */
const char *log_q(char *buf, size_t len, const char *s);

/* Every string that came from outside (Directus answers, event fields, item keys, Kafka and
 * PostgreSQL errors, and err buffers that may hold them) is logged as key=%s with
 * LOG_Q(value), never between quotes of the format (they would be doubled). The buffer is a
 * compound literal that lives until the end of the enclosing block. */
#define LOG_Q_SIZE 512
#define LOG_Q(s)   log_q((char[LOG_Q_SIZE]){0}, LOG_Q_SIZE, (s))

/* Redirects output for tests: lines go to fn instead of stderr (NULL restores stderr). */
typedef void (*log_sink_fn)(const char *line, void *opaque);
void log_set_sink(log_sink_fn fn, void *opaque);

void log_write(enum log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(comp, ...) log_write(LOG_LEVEL_ERROR, comp, __VA_ARGS__)
#define log_warn(comp, ...)  log_write(LOG_LEVEL_WARN, comp, __VA_ARGS__)
#define log_info(comp, ...)  log_write(LOG_LEVEL_INFO, comp, __VA_ARGS__)
#define log_debug(comp, ...)                                                                       \
    do {                                                                                           \
        if (log_enabled(LOG_LEVEL_DEBUG))                                                          \
            log_write(LOG_LEVEL_DEBUG, comp, __VA_ARGS__);                                         \
    } while (0)

#endif
