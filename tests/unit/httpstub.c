#include "httpstub.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONN 16

struct conn {
    int fd;
    char *buf;
    size_t len, cap;
};

struct httpstub {
    int lfd;
    int stop_pipe[2];
    pthread_t thread;
    httpstub_answer_fn fn;
    void *opaque;
    pthread_mutex_t lock;
    int requests;
    int max_concurrent;
    struct conn conns[MAX_CONN];
};

/* Serves every complete request in c's buffer. Returns -1 when the connection should close. */
static int serve(struct httpstub *s, struct conn *c)
{
    for (;;) {
        char *end = c->len ? strstr(c->buf, "\r\n\r\n") : NULL;
        if (!end)
            return 0;
        size_t hlen = (size_t)(end - c->buf) + 4;
        size_t clen = 0;
        for (const char *p = c->buf; (p = strstr(p, "\r\n")) && p < end;) {
            p += 2;
            if (strncasecmp(p, "Content-Length:", 15) == 0)
                clen = (size_t)strtoul(p + 15, NULL, 10);
        }
        if (c->len < hlen + clen)
            return 0;
        struct httpstub_request req;
        memset(&req, 0, sizeof(req));
        sscanf(c->buf, "%15s %1023s", req.method, req.path);
        req.body = malloc(clen + 1);
        memcpy(req.body, c->buf + hlen, clen);
        req.body[clen] = '\0';
        req.len = clen;
        int status = 200;
        char *body = NULL;
        s->fn(&req, &status, &body, s->opaque);
        free(req.body);
        char head[256];
        size_t blen = body ? strlen(body) : 0;
        int n = snprintf(head, sizeof(head),
                         "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\nConnection: keep-alive\r\n\r\n",
                         status, blen);
        int rc = (write(c->fd, head, (size_t)n) == n &&
                  (blen == 0 || write(c->fd, body, blen) == (ssize_t)blen))
                     ? 0
                     : -1;
        free(body);
        pthread_mutex_lock(&s->lock);
        s->requests++;
        pthread_mutex_unlock(&s->lock);
        memmove(c->buf, c->buf + hlen + clen, c->len - hlen - clen);
        c->len -= hlen + clen;
        c->buf[c->len] = '\0';
        if (rc)
            return -1;
    }
}

static void *run(void *arg)
{
    struct httpstub *s = arg;
    for (;;) {
        struct pollfd pfd[MAX_CONN + 2];
        int map[MAX_CONN + 2];
        nfds_t n = 0;
        pfd[n].fd = s->stop_pipe[0];
        pfd[n++].events = POLLIN;
        pfd[n].fd = s->lfd;
        pfd[n++].events = POLLIN;
        for (int i = 0; i < MAX_CONN; i++)
            if (s->conns[i].fd >= 0) {
                map[n] = i;
                pfd[n].fd = s->conns[i].fd;
                pfd[n++].events = POLLIN;
            }
        if (poll(pfd, n, 1000) < 0)
            continue;
        if (pfd[0].revents)
            break;
        if (pfd[1].revents & POLLIN) {
            int fd = accept(s->lfd, NULL, NULL);
            int open = 0;
            for (int i = 0; i < MAX_CONN && fd >= 0; i++)
                if (s->conns[i].fd < 0) {
                    s->conns[i].fd = fd;
                    s->conns[i].len = 0;
                    fd = -1;
                }
            if (fd >= 0)
                close(fd);
            for (int i = 0; i < MAX_CONN; i++)
                open += s->conns[i].fd >= 0;
            pthread_mutex_lock(&s->lock);
            if (open > s->max_concurrent)
                s->max_concurrent = open;
            pthread_mutex_unlock(&s->lock);
        }
        for (nfds_t k = 2; k < n; k++) {
            if (!(pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            struct conn *c = &s->conns[map[k]];
            if (c->cap - c->len < 65537) {
                c->cap = c->cap * 2 + 65537;
                c->buf = realloc(c->buf, c->cap);
            }
            ssize_t r = read(c->fd, c->buf + c->len, c->cap - c->len - 1);
            if (r > 0) {
                c->len += (size_t)r;
                c->buf[c->len] = '\0';
            }
            if (r <= 0 || serve(s, c)) {
                close(c->fd);
                c->fd = -1;
            }
        }
    }
    return NULL;
}

struct httpstub *httpstub_start(httpstub_answer_fn fn, void *opaque, int *port)
{
    struct httpstub *s = calloc(1, sizeof(*s));
    s->fn = fn;
    s->opaque = opaque;
    for (int i = 0; i < MAX_CONN; i++)
        s->conns[i].fd = -1;
    pthread_mutex_init(&s->lock, NULL);
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof(a);
    if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&a, sizeof(a)) || listen(s->lfd, 16) ||
        getsockname(s->lfd, (struct sockaddr *)&a, &al) || pipe(s->stop_pipe)) {
        free(s);
        return NULL;
    }
    *port = ntohs(a.sin_port);
    pthread_create(&s->thread, NULL, run, s);
    return s;
}

void httpstub_stop(struct httpstub *s)
{
    if (write(s->stop_pipe[1], "x", 1) != 1)
        return;
    pthread_join(s->thread, NULL);
    for (int i = 0; i < MAX_CONN; i++) {
        if (s->conns[i].fd >= 0)
            close(s->conns[i].fd);
        free(s->conns[i].buf);
    }
    close(s->lfd);
    close(s->stop_pipe[0]);
    close(s->stop_pipe[1]);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

int httpstub_requests(struct httpstub *s)
{
    pthread_mutex_lock(&s->lock);
    int n = s->requests;
    pthread_mutex_unlock(&s->lock);
    return n;
}

int httpstub_max_concurrent(struct httpstub *s)
{
    pthread_mutex_lock(&s->lock);
    int n = s->max_concurrent;
    pthread_mutex_unlock(&s->lock);
    return n;
}
