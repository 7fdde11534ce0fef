/* metrics.c: one mutex guards the registry, the samples and the recent events; the HTTP thread
 * renders /metrics and /status.json from them under it, so both always tell the same state. */
#include "metrics.h"

#include "config.h"
#include "log.h"

#include "util.h"

#include <arpa/inet.h>
#include <crypt.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

enum metric_type { TYPE_COUNTER, TYPE_GAUGE, TYPE_HISTOGRAM };

/* Counter samples: at most one a second, NSAMPLES kept, rates over RATE_WINDOW_MS. */
#define NSAMPLES       64
#define SAMPLE_GAP_MS  1000
#define RATE_WINDOW_MS 60000
#define TEXT_MAX       1024

/* The page in shared/status.html, embedded by CMake (embed.cmake). */
extern const unsigned char metrics_status_html[];

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
    double *samples; /* counter: its value at each registry sample (ring like sample_ms) */
    struct metric *next;
};

struct recent_letter {
    int64_t time_ms;
    char *topic, *collection, *key, *code, *message;
    int32_t partition;
    int64_t offset;
    long status;
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
    /* basic auth (web.basic_auth_users): name and bcrypt hash pairs, NULL when open */
    char **auth;
    size_t nauth;
    char *tls_cert, *tls_key; /* PEM contents, kept while the daemon runs */
    bool healthy;
    char reason[256];
    int64_t heartbeat_ms;
    int64_t stall_ms;
    struct metric *m_healthy; /* set while serving */
    /* util_memory_now, read again by a render a second after the last read at the earliest:
     * mallinfo2 walks every arena under its lock, and a scraper polling every 10 ms (the
     * benchmarks) made it cost the producer a fifth of its CPU per event */
    struct metric *m_rss, *m_heap_used, *m_heap_free;
    int64_t mem_ms;
    char *program;
    /* counter samples: sample_ms[i] (monotonic) for slot i, nsamples filled, next slot head */
    int64_t sample_ms[NSAMPLES];
    size_t nsamples, head;
    /* recent dead letters, a ring: letters[(nletters_total - 1) % METRICS_RECENT] newest */
    struct recent_letter letters[METRICS_RECENT];
    uint64_t nletters_total;
    char *last_error;
    int64_t last_error_ms;
};

static void letter_clear(struct recent_letter *l)
{
    free(l->topic);
    free(l->collection);
    free(l->key);
    free(l->code);
    free(l->message);
    memset(l, 0, sizeof(*l));
}

static void series_free(struct metric *s)
{
    free(s->labels);
    free(s->counts);
    free(s->samples);
    free(s);
}

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
    for (size_t i = 0; i < 2 * m->nauth; i++)
        free(m->auth[i]);
    free(m->auth);
    free(m->tls_cert);
    if (m->tls_key) {
        util_wipe(m->tls_key, strlen(m->tls_key));
        free(m->tls_key);
    }
    struct family *f = m->families;
    while (f) {
        struct family *fn = f->next;
        struct metric *s = f->series;
        while (s) {
            struct metric *sn = s->next;
            series_free(s);
            s = sn;
        }
        free(f->name);
        free(f->help);
        free(f->buckets);
        free(f);
        f = fn;
    }
    for (size_t i = 0; i < METRICS_RECENT; i++)
        letter_clear(&m->letters[i]);
    free(m->program);
    free(m->last_error);
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
    if (type == TYPE_COUNTER)
        s->samples = calloc(NSAMPLES, sizeof(double)); /* it was 0 at every earlier sample */
    if (!s->labels || (type == TYPE_HISTOGRAM && !s->counts) ||
        (type == TYPE_COUNTER && !s->samples)) {
        series_free(s);
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

static int health_locked(struct metrics *m, char *body, size_t len);

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

/* The gauges computed when they are read (health, memory): current for /metrics and for
 * /status.json alike, whichever is asked first. */
static void refresh_locked(struct metrics *m)
{
    if (m->m_healthy) {
        char body[320];
        m->m_healthy->value = health_locked(m, body, sizeof(body)) == 200 ? 1 : 0;
    }
    int64_t now = util_mono_ms();
    if (m->m_rss && (m->mem_ms == 0 || now - m->mem_ms >= 1000)) {
        m->mem_ms = now;
        struct util_memory mem;
        util_memory_now(&mem);
        m->m_rss->value = (double)mem.rss;
        m->m_heap_used->value = (double)mem.heap_used;
        m->m_heap_free->value = (double)mem.heap_free;
    }
}

char *metrics_render(struct metrics *m)
{
    struct util_buf b = {0};
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    pthread_mutex_lock(&m->lock);
    refresh_locked(m);
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

/* A copy for /status.json: masked like a log line (a health text, an error or a dead letter's
 * message may quote a secret), then cut to TEXT_MAX. */
static char *dup_cut(const char *s)
{
    char *out = log_redact_dup(s);
    if (out && strlen(out) > TEXT_MAX)
        out[TEXT_MAX] = '\0';
    return out;
}

/* Under the lock. */
static void note_error_locked(struct metrics *m, const char *text)
{
    if (m->last_error && strcmp(m->last_error, text) == 0)
        return;
    char *t = dup_cut(text);
    if (!t)
        return;
    free(m->last_error);
    m->last_error = t;
    m->last_error_ms = util_wall_ms();
}

void metrics_note_error(struct metrics *m, const char *text)
{
    if (!m || !text || !*text)
        return;
    pthread_mutex_lock(&m->lock);
    note_error_locked(m, text);
    pthread_mutex_unlock(&m->lock);
}

void metrics_set_health(struct metrics *m, bool ok, const char *reason)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    m->healthy = ok;
    char *masked = dup_cut(reason); /* masked before it is cut */
    util_strlcpy(m->reason, masked ? masked : "", sizeof(m->reason));
    free(masked);
    if (!ok && reason && *reason)
        note_error_locked(m, reason);
    pthread_mutex_unlock(&m->lock);
}

/* Under the lock. */
static void sample_locked(struct metrics *m, int64_t now)
{
    if (m->nsamples) {
        size_t last = (m->head + NSAMPLES - 1) % NSAMPLES;
        if (now - m->sample_ms[last] < SAMPLE_GAP_MS)
            return;
    }
    for (struct family *f = m->families; f; f = f->next)
        for (struct metric *s = f->series; s; s = s->next)
            if (s->samples)
                s->samples[m->head] = s->value;
    m->sample_ms[m->head] = now;
    m->head = (m->head + 1) % NSAMPLES;
    if (m->nsamples < NSAMPLES)
        m->nsamples++;
}

void metrics_sample(struct metrics *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    sample_locked(m, util_mono_ms());
    pthread_mutex_unlock(&m->lock);
}

void metrics_heartbeat(struct metrics *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    m->heartbeat_ms = util_mono_ms();
    sample_locked(m, m->heartbeat_ms);
    pthread_mutex_unlock(&m->lock);
}

void metrics_set_program(struct metrics *m, const char *program)
{
    if (!m)
        return;
    char *p = dup_cut(program);
    pthread_mutex_lock(&m->lock);
    free(m->program);
    m->program = p;
    pthread_mutex_unlock(&m->lock);
}

void metrics_note_dead_letter(struct metrics *m, const struct metrics_dead_letter *d)
{
    if (!m || !d)
        return;
    struct recent_letter l = {.time_ms = d->time_ms,
                              .topic = dup_cut(d->topic),
                              .collection = dup_cut(d->collection),
                              .key = dup_cut(d->key),
                              .code = dup_cut(d->code),
                              .message = dup_cut(d->message),
                              .partition = d->partition,
                              .offset = d->offset,
                              .status = d->status};
    if (!l.topic || !l.collection || !l.key || !l.code || !l.message) {
        letter_clear(&l);
        return;
    }
    pthread_mutex_lock(&m->lock);
    struct recent_letter *slot = &m->letters[m->nletters_total % METRICS_RECENT];
    letter_clear(slot);
    *slot = l;
    m->nletters_total++;
    pthread_mutex_unlock(&m->lock);
}

char *metrics_label_escape(char *out, size_t outlen, const char *value)
{
    size_t n = 0;
    if (!outlen)
        return out;
    for (const char *c = value ? value : ""; *c; c++) {
        const char *rep = *c == '\\' ? "\\\\" : *c == '"' ? "\\\"" : *c == '\n' ? "\\n" : NULL;
        size_t k = rep ? 2 : 1;
        if (n + k >= outlen)
            break;
        if (rep)
            memcpy(out + n, rep, 2);
        else
            out[n] = *c;
        n += k;
    }
    out[n] = '\0';
    return out;
}

void metrics_remove(struct metrics *m, const char *name, const char *labels)
{
    if (!m)
        return;
    const char *lab = labels ? labels : "";
    pthread_mutex_lock(&m->lock);
    for (struct family *f = m->families; f; f = f->next) {
        if (strcmp(f->name, name) != 0)
            continue;
        for (struct metric **pp = &f->series; *pp; pp = &(*pp)->next) {
            struct metric *s = *pp;
            if (strcmp(s->labels, lab) != 0)
                continue;
            *pp = s->next;
            if (f->tail == &s->next)
                f->tail = pp;
            series_free(s);
            break;
        }
        break;
    }
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

/* Under the lock. */
static int health_locked(struct metrics *m, char *body, size_t len)
{
    int status = 200;
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
    return status;
}

int metrics_health(struct metrics *m, char *body, size_t len)
{
    pthread_mutex_lock(&m->lock);
    int status = health_locked(m, body, len);
    pthread_mutex_unlock(&m->lock);
    return status;
}

/* labels text (k="v",...) as a JSON object. */
static cJSON *labels_json(const char *labels)
{
    cJSON *o = cJSON_CreateObject();
    const char *p = labels;
    char key[128], val[TEXT_MAX];
    while (o && *p) {
        size_t k = 0, v = 0;
        while (*p && *p != '=' && k + 1 < sizeof(key))
            key[k++] = *p++;
        key[k] = '\0';
        if (*p++ != '=' || *p++ != '"')
            break;
        while (*p && *p != '"') {
            char c = *p++;
            if (c == '\\' && *p) {
                c = *p++;
                if (c == 'n')
                    c = '\n';
            }
            if (v + 1 < sizeof(val))
                val[v++] = c;
        }
        val[v] = '\0';
        if (*p == '"')
            p++;
        cJSON_AddStringToObject(o, key, val);
        if (*p == ',')
            p++;
    }
    return o;
}

/* Under the lock: the counter's rate over the last RATE_WINDOW_MS, or -1 when there is no
 * sample old enough (at least a second) to tell. */
static double rate_locked(const struct metrics *m, const struct metric *s, int64_t now)
{
    for (size_t i = 0; i < m->nsamples; i++) {
        size_t slot = (m->head + NSAMPLES - m->nsamples + i) % NSAMPLES;
        int64_t dt = now - m->sample_ms[slot];
        if (dt > RATE_WINDOW_MS)
            continue;
        if (dt < SAMPLE_GAP_MS)
            return -1;
        double d = s->value - s->samples[slot];
        return d > 0 ? d * 1000.0 / (double)dt : 0;
    }
    return -1;
}

static void add_text(cJSON *o, const char *name, const char *v)
{
    cJSON_AddStringToObject(o, name, v ? v : "");
}

char *metrics_status_json(struct metrics *m)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return NULL;
    pthread_mutex_lock(&m->lock);
    refresh_locked(m);
    int64_t now = util_mono_ms();
    sample_locked(m, now);
    char body[320];
    int status = health_locked(m, body, sizeof(body));
    body[strcspn(body, "\n")] = '\0';
    add_text(root, "program", m->program ? m->program : "dxsync");
    cJSON_AddNumberToObject(root, "time_ms", (double)util_wall_ms());
    cJSON *health = cJSON_AddObjectToObject(root, "health");
    cJSON_AddBoolToObject(health, "ok", status == 200);
    add_text(health, "text", body);
    cJSON *series = cJSON_AddArrayToObject(root, "metrics");
    for (struct family *f = m->families; f && series; f = f->next)
        for (struct metric *s = f->series; s; s = s->next) {
            cJSON *o = cJSON_CreateObject();
            if (!o)
                break;
            cJSON_AddItemToArray(series, o);
            add_text(o, "name", f->name);
            add_text(o, "type", type_names[f->type]);
            cJSON_AddItemToObject(o, "labels", labels_json(s->labels));
            if (f->type == TYPE_HISTOGRAM) {
                cJSON_AddNumberToObject(o, "count", (double)s->count);
                cJSON_AddNumberToObject(o, "sum", s->sum);
                continue;
            }
            cJSON_AddNumberToObject(o, "value", s->value);
            if (f->type == TYPE_COUNTER) {
                double r = rate_locked(m, s, now);
                if (r < 0)
                    cJSON_AddNullToObject(o, "rate_per_s");
                else
                    cJSON_AddNumberToObject(o, "rate_per_s", r);
            }
        }
    cJSON *letters = cJSON_AddArrayToObject(root, "dead_letters");
    uint64_t have = m->nletters_total < METRICS_RECENT ? m->nletters_total : METRICS_RECENT;
    for (uint64_t i = 0; i < have && letters; i++) {
        const struct recent_letter *l = &m->letters[(m->nletters_total - 1 - i) % METRICS_RECENT];
        cJSON *o = cJSON_CreateObject();
        if (!o)
            break;
        cJSON_AddItemToArray(letters, o);
        cJSON_AddNumberToObject(o, "time_ms", (double)l->time_ms);
        add_text(o, "topic", l->topic);
        cJSON_AddNumberToObject(o, "partition", l->partition);
        cJSON_AddNumberToObject(o, "offset", (double)l->offset);
        add_text(o, "collection", l->collection);
        add_text(o, "key", l->key);
        cJSON_AddNumberToObject(o, "status", (double)l->status);
        add_text(o, "code", l->code);
        add_text(o, "message", l->message);
    }
    cJSON_AddNumberToObject(root, "dead_letters_seen", (double)m->nletters_total);
    if (m->last_error) {
        cJSON *e = cJSON_AddObjectToObject(root, "last_error");
        cJSON_AddNumberToObject(e, "time_ms", (double)m->last_error_ms);
        add_text(e, "text", m->last_error);
    } else {
        cJSON_AddNullToObject(root, "last_error");
    }
    pthread_mutex_unlock(&m->lock);
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

/* The page runs its own inline script and style, asks only its own server, loads nothing. */
#define PAGE_CSP                                                                                   \
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "                  \
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'"

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned int status, char *text,
                               const char *ctype)
{
    if (!text)
        return MHD_NO;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (strncmp(ctype, "text/html", 9) == 0)
        MHD_add_response_header(r, "Content-Security-Policy", PAGE_CSP);
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

/* Basic auth against the bcrypt hashes of web.basic_auth_users; a wrong user costs as much as
 * a wrong password. */
static bool authorized(struct metrics *m, struct MHD_Connection *conn)
{
    char *pass = NULL;
    char *user = MHD_basic_auth_get_username_password(conn, &pass);
    bool ok = false;
    const char *hash = m->auth[1]; /* an unknown user is checked against some hash all the same */
    for (size_t i = 0; user && i < m->nauth; i++)
        if (strcmp(m->auth[2 * i], user) == 0)
            hash = m->auth[2 * i + 1], ok = true;
    struct crypt_data *cd = calloc(1, sizeof(*cd));
    const char *got = cd && pass ? crypt_r(pass, hash, cd) : NULL;
    size_t n = strlen(hash);
    unsigned diff = !got || strlen(got) != n;
    for (size_t i = 0; !diff && i < n; i++)
        diff |= (unsigned)(got[i] ^ hash[i]);
    ok = ok && !diff;
    free(cd);
    if (pass) {
        util_wipe(pass, strlen(pass));
        MHD_free(pass);
    }
    if (user)
        MHD_free(user);
    return ok;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct util_buf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        util_buf_append(&b, chunk, n);
    fclose(f);
    if (b.failed) {
        util_buf_free(&b);
        return NULL;
    }
    util_buf_append(&b, "", 1);
    return util_buf_steal(&b);
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
    if (m->nauth && strcmp(url, "/healthz") != 0 && !authorized(m, conn)) {
        struct MHD_Response *r = MHD_create_response_from_buffer(
            strlen("unauthorized\n"), (void *)"unauthorized\n", MHD_RESPMEM_PERSISTENT);
        if (!r)
            return MHD_NO;
        enum MHD_Result rc = MHD_queue_basic_auth_fail_response(conn, "dxsync", r);
        MHD_destroy_response(r);
        return rc;
    }
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
    if (strcmp(url, "/status.json") == 0) {
        char *text = metrics_status_json(m);
        if (!text)
            return MHD_NO;
        return respond(conn, 200, text, "application/json");
    }
    if (strcmp(url, "/") == 0)
        return respond(conn, 200, strdup((const char *)metrics_status_html),
                       "text/html; charset=utf-8");
    return respond(conn, 404, strdup("not found: try /, /status.json, /metrics or /healthz\n"),
                   "text/plain");
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

int metrics_serve(struct metrics *m, const char *host, int port, const struct config_web *web,
                  char *err, size_t errlen)
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
    m->m_healthy = metrics_gauge(m, "dxsync_healthy", "1 while /healthz answers 200", NULL);
    m->m_rss = metrics_gauge(m, "process_resident_memory_bytes", "Resident memory size", NULL);
    m->m_heap_used = metrics_gauge(m, "dxsync_heap_in_use_bytes",
                                   "Heap bytes held by allocations (glibc mallinfo2)", NULL);
    m->m_heap_free = metrics_gauge(
        m, "dxsync_heap_free_bytes",
        "Heap bytes freed but kept by the allocator, not handed back (glibc mallinfo2)", NULL);
    if (web && web->nusers) {
        m->auth = calloc(2 * web->nusers, sizeof(char *));
        if (!m->auth) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        m->nauth = web->nusers;
        for (size_t i = 0; i < web->nusers; i++) {
            m->auth[2 * i] = strdup(web->users[i].key);
            m->auth[2 * i + 1] = strdup(web->users[i].value);
            if (!m->auth[2 * i] || !m->auth[2 * i + 1]) {
                snprintf(err, errlen, "out of memory");
                return -1;
            }
        }
    }
    if (web && web->cert_file) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            snprintf(err, errlen, "web.tls_server_config: this libmicrohttpd has no TLS");
            return -1;
        }
        m->tls_cert = read_file(web->cert_file);
        m->tls_key = read_file(web->key_file);
        if (!m->tls_cert || !m->tls_key) {
            snprintf(err, errlen, "web.tls_server_config: cannot read %s",
                     m->tls_cert ? web->key_file : web->cert_file);
            return -1;
        }
        flags |= MHD_USE_TLS;
    }
    m->daemon = m->tls_cert ? MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, m,
                                               MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                                               MHD_OPTION_CONNECTION_TIMEOUT, 10u,
                                               MHD_OPTION_HTTPS_MEM_CERT, m->tls_cert,
                                               MHD_OPTION_HTTPS_MEM_KEY, m->tls_key, MHD_OPTION_END)
                            : MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, m,
                                               MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                                               MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    if (!m->daemon) {
        snprintf(err, errlen, "--metrics-addr: cannot listen on %s:%d (in use?)", host, port);
        return -1;
    }
    return 0;
}
