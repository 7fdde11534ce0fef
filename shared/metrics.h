/* metrics: a small registry of counters, gauges and histograms rendered in the Prometheus text
 * format, served with /healthz by libmicrohttpd on its own thread. Updates are thread-safe. */
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

/* Parses [HOST:]PORT (HOST defaults to 127.0.0.1; [v6]:PORT accepted). Returns 0 or -1. */
int metrics_parse_addr(const char *addr, char *host, size_t hostlen, int *port);
/* Serves /metrics and /healthz on host:port until metrics_free. 0, or -1 with err set. */
int metrics_serve(struct metrics *m, const char *host, int port, char *err, size_t errlen);

#endif
