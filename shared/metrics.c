#include "metrics.h"

#include "util.h"

#include <arpa/inet.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

enum metric_type { TYPE_COUNTER, TYPE_GAUGE, TYPE_HISTOGRAM };

static const double default_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                         0.25,  0.5,    1,     2.5,  5,     10,   30};

struct metric {
    struct metrics *reg;
    struct family *fam;
    char *labels;
    double value;     /* counter, gauge */
    uint64_t *counts; /* histogram: per bucket (not cumulative) + the +Inf bucket */
    double sum;
    uint64_t count;
    struct metric *next;
};

struct family {
    char *name;
    char *help;
    enum metric_type type;
    double *buckets;
    size_t nbuckets;
    struct metric *series;
    struct metric **tail;
    struct family *next;
};

struct metrics {
    pthread_mutex_t lock;
    struct family *families;
    struct family **tail;
    struct MHD_Daemon *daemon;
    bool healthy;
    char reason[256];
    int64_t heartbeat_ms;
    int64_t stall_ms;
};

struct metrics *metrics_new(void)
{
    struct metrics *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    pthread_mutex_init(&m->lock, NULL);
    m->tail = &m->families;
    m->healthy = true;
    m->heartbeat_ms = util_mono_ms();
    return m;
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    if (m->daemon)
        MHD_stop_daemon(m->daemon);
    struct family *f = m->families;
    while (f) {
        struct family *fn = f->next;
        struct metric *s = f->series;
        while (s) {
            struct metric *sn = s->next;
            free(s->labels);
            free(s->counts);
            free(s);
            s = sn;
        }
        free(f->name);
        free(f->help);
        free(f->buckets);
        free(f);
        f = fn;
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static struct metric *get_series(struct metrics *m, const char *name, const char *help,
                                 const char *labels, enum metric_type type, const double *buckets,
                                 size_t nbuckets)
{
    struct metric *out = NULL;
    pthread_mutex_lock(&m->lock);
    struct family *f;
    for (f = m->families; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            break;
    if (f && f->type != type)
        goto out;
    if (!f) {
        f = calloc(1, sizeof(*f));
        if (!f)
            goto out;
        f->name = strdup(name);
        f->help = strdup(help ? help : name);
        f->type = type;
        f->tail = &f->series;
        if (type == TYPE_HISTOGRAM) {
            if (!buckets) {
                buckets = default_buckets;
                nbuckets = DX_ARRAY_LEN(default_buckets);
            }
            f->buckets = malloc(nbuckets * sizeof(double));
            if (f->buckets)
                memcpy(f->buckets, buckets, nbuckets * sizeof(double));
            f->nbuckets = nbuckets;
        }
        if (!f->name || !f->help || (type == TYPE_HISTOGRAM && !f->buckets)) {
            free(f->name);
            free(f->help);
            free(f->buckets);
            free(f);
            goto out;
        }
        *m->tail = f;
        m->tail = &f->next;
    }
    const char *lab = labels ? labels : "";
    struct metric *s;
    for (s = f->series; s; s = s->next)
        if (strcmp(s->labels, lab) == 0) {
            out = s;
            goto out;
        }
    s = calloc(1, sizeof(*s));
    if (!s)
        goto out;
    s->reg = m;
    s->fam = f;
    s->labels = strdup(lab);
    if (type == TYPE_HISTOGRAM)
        s->counts = calloc(f->nbuckets + 1, sizeof(uint64_t));
    if (!s->labels || (type == TYPE_HISTOGRAM && !s->counts)) {
        free(s->labels);
        free(s->counts);
        free(s);
        goto out;
    }
    *f->tail = s;
    f->tail = &s->next;
    out = s;
out:
    pthread_mutex_unlock(&m->lock);
    return out;
}

struct metric *metrics_counter(struct metrics *m, const char *name, const char *help,
                               const char *labels)
{
    return m ? get_series(m, name, help, labels, TYPE_COUNTER, NULL, 0) : NULL;
}

struct metric *metrics_gauge(struct metrics *m, const char *name, const char *help,
                             const char *labels)
{
    return m ? get_series(m, name, help, labels, TYPE_GAUGE, NULL, 0) : NULL;
}

struct metric *metrics_histogram(struct metrics *m, const char *name, const char *help,
                                 const char *labels, const double *buckets, size_t nbuckets)
{
    return m ? get_series(m, name, help, labels, TYPE_HISTOGRAM, buckets, nbuckets) : NULL;
}

void metrics_add(struct metric *s, double v)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->reg->lock);
    s->value += v;
    pthread_mutex_unlock(&s->reg->lock);
}

void metrics_set(struct metric *s, double v)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->reg->lock);
    s->value = v;
    pthread_mutex_unlock(&s->reg->lock);
}

void metrics_observe(struct metric *s, double v)
{
    if (!s || !s->counts)
        return;
    pthread_mutex_lock(&s->reg->lock);
    size_t i = 0;
    while (i < s->fam->nbuckets && v > s->fam->buckets[i])
        i++;
    s->counts[i]++;
    s->sum += v;
    s->count++;
    pthread_mutex_unlock(&s->reg->lock);
}

double metrics_value(struct metric *s)
{
    if (!s)
        return 0;
    pthread_mutex_lock(&s->reg->lock);
    double v = s->counts ? (double)s->count : s->value;
    pthread_mutex_unlock(&s->reg->lock);
    return v;
}

static void put_number(struct util_buf *b, double v)
{
    if (isinf(v))
        util_buf_puts(b, v > 0 ? "+Inf" : "-Inf");
    else if (isnan(v))
        util_buf_puts(b, "NaN");
    else if (v == floor(v) && fabs(v) < 1e15)
        util_buf_printf(b, "%.0f", v);
    else
        util_buf_printf(b, "%.17g", v);
}

static void put_help(struct util_buf *b, const char *help)
{
    for (const char *c = help; *c; c++) {
        if (*c == '\\')
            util_buf_puts(b, "\\\\");
        else if (*c == '\n')
            util_buf_puts(b, "\\n");
        else
            util_buf_append(b, c, 1);
    }
}

static void put_labels(struct util_buf *b, const char *labels, const char *extra)
{
    bool l = labels && *labels, e = extra && *extra;
    if (!l && !e)
        return;
    util_buf_printf(b, "{%s%s%s}", l ? labels : "", l && e ? "," : "", e ? extra : "");
}

char *metrics_render(struct metrics *m)
{
    struct util_buf b = {0};
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    pthread_mutex_lock(&m->lock);
    for (struct family *f = m->families; f; f = f->next) {
        util_buf_printf(&b, "# HELP %s ", f->name);
        put_help(&b, f->help);
        util_buf_printf(&b, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
        for (struct metric *s = f->series; s; s = s->next) {
            if (f->type != TYPE_HISTOGRAM) {
                util_buf_puts(&b, f->name);
                put_labels(&b, s->labels, NULL);
                util_buf_puts(&b, " ");
                put_number(&b, s->value);
                util_buf_puts(&b, "\n");
                continue;
            }
            uint64_t cum = 0;
            for (size_t i = 0; i <= f->nbuckets; i++) {
                char le[64];
                cum += s->counts[i];
                if (i < f->nbuckets)
                    snprintf(le, sizeof(le), "le=\"%g\"", f->buckets[i]);
                else
                    snprintf(le, sizeof(le), "le=\"+Inf\"");
                util_buf_printf(&b, "%s_bucket", f->name);
                put_labels(&b, s->labels, le);
                util_buf_printf(&b, " %llu\n", (unsigned long long)cum);
            }
            util_buf_printf(&b, "%s_sum", f->name);
            put_labels(&b, s->labels, NULL);
            util_buf_puts(&b, " ");
            put_number(&b, s->sum);
            util_buf_printf(&b, "\n%s_count", f->name);
            put_labels(&b, s->labels, NULL);
            util_buf_printf(&b, " %llu\n", (unsigned long long)s->count);
        }
    }
    pthread_mutex_unlock(&m->lock);
    return util_buf_steal(&b);
}

void metrics_set_health(struct metrics *m, bool ok, const char *reason)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    m->healthy = ok;
    util_strlcpy(m->reason, reason ? reason : "", sizeof(m->reason));
    pthread_mutex_unlock(&m->lock);
}

void metrics_heartbeat(struct metrics *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    m->heartbeat_ms = util_mono_ms();
    pthread_mutex_unlock(&m->lock);
}

void metrics_set_stall_ms(struct metrics *m, int64_t stall_ms)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    m->stall_ms = stall_ms;
    pthread_mutex_unlock(&m->lock);
}

int metrics_health(struct metrics *m, char *body, size_t len)
{
    int status = 200;
    pthread_mutex_lock(&m->lock);
    int64_t age = util_mono_ms() - m->heartbeat_ms;
    if (!m->healthy) {
        status = 503;
        snprintf(body, len, "unhealthy: %s\n", m->reason);
    } else if (m->stall_ms > 0 && age > m->stall_ms) {
        status = 503;
        snprintf(body, len, "unhealthy: main loop stalled for %lld ms\n", (long long)age);
    } else {
        snprintf(body, len, "ok\n");
    }
    pthread_mutex_unlock(&m->lock);
    return status;
}

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned int status, char *text,
                               const char *ctype)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **ptr)
{
    struct metrics *m = cls;
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)ptr;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return respond(conn, 405, strdup("method not allowed\n"), "text/plain");
    if (strcmp(url, "/metrics") == 0) {
        char *text = metrics_render(m);
        if (!text)
            return MHD_NO;
        return respond(conn, 200, text, "text/plain; version=0.0.4; charset=utf-8");
    }
    if (strcmp(url, "/healthz") == 0) {
        char body[320];
        int status = metrics_health(m, body, sizeof(body));
        return respond(conn, (unsigned)status, strdup(body), "text/plain");
    }
    return respond(conn, 404, strdup("not found: try /metrics or /healthz\n"), "text/plain");
}

int metrics_parse_addr(const char *addr, char *host, size_t hostlen, int *port)
{
    const char *p = addr;
    const char *portstr;
    if (!addr || !*addr)
        return -1;
    if (*p == '[') {
        const char *close = strchr(p, ']');
        if (!close || close[1] != ':')
            return -1;
        size_t n = (size_t)(close - p - 1);
        if (n == 0 || n >= hostlen)
            return -1;
        memcpy(host, p + 1, n);
        host[n] = '\0';
        portstr = close + 2;
    } else {
        const char *colon = strrchr(p, ':');
        if (colon) {
            size_t n = (size_t)(colon - p);
            if (n == 0 || n >= hostlen)
                return -1;
            memcpy(host, p, n);
            host[n] = '\0';
            portstr = colon + 1;
        } else {
            util_strlcpy(host, "127.0.0.1", hostlen);
            portstr = p;
        }
    }
    int64_t v;
    if (!util_parse_i64(portstr, 1, 65535, &v))
        return -1;
    *port = (int)v;
    return 0;
}

int metrics_serve(struct metrics *m, const char *host, int port, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD;
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        flags |= MHD_USE_IPv6;
    } else {
        snprintf(err, errlen, "--metrics-addr: \"%s\" is not an IP address", host);
        return -1;
    }
    m->daemon = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, m,
                                 MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                                 MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    if (!m->daemon) {
        snprintf(err, errlen, "--metrics-addr: cannot listen on %s:%d (in use?)", host, port);
        return -1;
    }
    return 0;
}
