/* metrics: a small registry of counters, gauges and histograms rendered in the Prometheus text
 * format, served with /healthz by libmicrohttpd on its own thread. Updates are thread-safe.
 * The same registry feeds the status page: / (shared/status.html) and /status.json render
 * its series, counter rates over the last minute (from samples the registry keeps), the
 * latest dead letters and the last error. */
#ifndef DXSYNC_METRICS_H
#define DXSYNC_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct metrics;
struct metric; /* one series: a family name plus a label set */

/* Returns NULL when out of memory. */
struct metrics *metrics_new(void);
/* Stops the server (if any) and frees every series. */
void metrics_free(struct metrics *m);

/* Finds or creates a series. labels is the inside of {...} (e.g. "action=\"create\"") or NULL.
 * The registry owns the series; the pointer stays valid until metrics_free. NULL on failure or
 * when name is already registered with another type. */
struct metric *metrics_counter(struct metrics *m, const char *name, const char *help,
                               const char *labels);
struct metric *metrics_gauge(struct metrics *m, const char *name, const char *help,
                             const char *labels);
/* buckets: ascending upper bounds (copied); NULL uses latency buckets from 1 ms to 30 s. */
struct metric *metrics_histogram(struct metrics *m, const char *name, const char *help,
                                 const char *labels, const double *buckets, size_t nbuckets);

/* All accept NULL (a metric that failed to register) and do nothing then. */
void metrics_add(struct metric *s, double v);
void metrics_set(struct metric *s, double v);
void metrics_observe(struct metric *s, double v);
double metrics_value(struct metric *s);

/* Renders every series; the caller frees the text. NULL when out of memory. */
char *metrics_render(struct metrics *m);

/* Health for /healthz: ok with no reason, or 503 with the reason. A heartbeat older than
 * stall_ms (when set above 0) also makes it unhealthy: the main loop is stuck. */
void metrics_set_health(struct metrics *m, bool ok, const char *reason);
void metrics_heartbeat(struct metrics *m);
void metrics_set_stall_ms(struct metrics *m, int64_t stall_ms);
/* Writes the status code and body /healthz would answer. */
int metrics_health(struct metrics *m, char *body, size_t len);

/* Writes value escaped for a label value (backslash, quote, newline) into out, truncated to
 * outlen. Returns out. */
char *metrics_label_escape(char *out, size_t outlen, const char *value);
/* Forgets a series that nobody holds a pointer to (a revoked partition's gauge). */
void metrics_remove(struct metrics *m, const char *name, const char *labels);

/* ------------------------------------------------------------------ the status page's state */

/* The program's name shown by the status page (copied). */
void metrics_set_program(struct metrics *m, const char *program);
/* Keeps a sample of every counter (at most one a second; metrics_heartbeat and /status.json
 * call it) so /status.json can tell each counter's rate over the last minute. */
void metrics_sample(struct metrics *m);

#define METRICS_RECENT 10 /* dead letters kept for the status page */

/* A dead letter as the status page lists it. Strings are copied (and cut at 1 KiB). */
struct metrics_dead_letter {
    int64_t time_ms; /* wall clock */
    const char *topic;
    int32_t partition;
    int64_t offset;
    const char *collection;
    const char *key;
    long status;
    const char *code;
    const char *message;
};
void metrics_note_dead_letter(struct metrics *m, const struct metrics_dead_letter *d);
/* The last error the status page shows (copied); the same text again keeps the first time.
 * metrics_set_health(m, false, reason) notes its reason too. */
void metrics_note_error(struct metrics *m, const char *text);

/* /status.json: program, health, every series (counters with rate_per_s over the last minute,
 * histograms as count and sum), recent dead letters (newest first) and the last error. The
 * caller frees the text. NULL when out of memory. */
char *metrics_status_json(struct metrics *m);

/* Parses [HOST:]PORT (HOST defaults to 127.0.0.1; [v6]:PORT accepted). Returns 0 or -1. */
int metrics_parse_addr(const char *addr, char *host, size_t hostlen, int *port);
/* Serves /metrics, /healthz, / (the status page) and /status.json on host:port until
 * metrics_free; /metrics then also carries dxsync_healthy (1 while /healthz answers 200).
 * 0, or -1 with err set. */
struct config_web;
/* Serves /metrics, /healthz, /status.json and / on host:port; web (NULL: none) adds TLS and
 * basic auth for all but /healthz. */
int metrics_serve(struct metrics *m, const char *host, int port, const struct config_web *web,
                  char *err, size_t errlen);

#endif
