#include "replication.h"

#include "log.h"
#include "source.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <sys/select.h>

#define PG_EPOCH_OFFSET_MS INT64_C(946684800000)

static uint64_t get_u64(const char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | (uint8_t)p[i];
    return v;
}

static void put_u64(char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (char)(v & 0xff);
        v >>= 8;
    }
}

static void trim(char *s)
{
    size_t l = strlen(s);
    while (l && (s[l - 1] == '\n' || s[l - 1] == ' '))
        s[--l] = '\0';
}

int replication_start(struct replication *r, const char *database, const char *slot,
                      const char *publication, int wal_sender_timeout_ms, char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    char options[160];
    snprintf(options, sizeof(options), "%s -c wal_sender_timeout=%d", SOURCE_SESSION_OPTIONS,
             wal_sender_timeout_ms);
    const char *const keys[] = {"replication", "application_name",
                                wal_sender_timeout_ms > 0 ? "options" : NULL, NULL};
    const char *const vals[] = {"database", "dxsync-producer", options, NULL};
    char sql[512];
    if (util_format(sql, sizeof(sql),
                    "START_REPLICATION SLOT %s LOGICAL 0/0 (proto_version '1', "
                    "publication_names '%s')",
                    slot, publication)) {
        snprintf(err, errlen, "START_REPLICATION: slot or publication name too long");
        return -1;
    }
    r->conn = source_connect_params(database, keys, vals);
    if (PQstatus(r->conn) != CONNECTION_OK) {
        snprintf(err, errlen, "replication connection: %s", PQerrorMessage(r->conn));
        trim(err);
        PQfinish(r->conn);
        r->conn = NULL;
        return -1;
    }
    PGresult *res = PQexec(r->conn, sql);
    if (PQresultStatus(res) != PGRES_COPY_BOTH) {
        snprintf(err, errlen, "START_REPLICATION: %s", PQresultErrorMessage(res));
        trim(err);
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        bool in_use = state && strcmp(state, "55006") == 0; /* object_in_use */
        PQclear(res);
        PQfinish(r->conn);
        r->conn = NULL;
        return in_use ? 1 : -1;
    }
    PQclear(res);
    r->last_status_ms = util_mono_ms();
    return 0;
}

enum replication_read replication_read(struct replication *r, int timeout_ms, const uint8_t **data,
                                       size_t *len, char *err, size_t errlen)
{
    if (r->copybuf) {
        PQfreemem(r->copybuf);
        r->copybuf = NULL;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        char *buf = NULL;
        int n = PQgetCopyData(r->conn, &buf, 1);
        if (n == 0) {
            if (attempt == 1 || timeout_ms <= 0)
                return REPL_NONE;
            int fd = PQsocket(r->conn);
            if (fd < 0) {
                snprintf(err, errlen, "replication connection has no socket");
                return REPL_CLOSED;
            }
            fd_set rfds;
            FD_ZERO(&rfds);
            FD_SET(fd, &rfds);
            struct timeval tv = {.tv_sec = timeout_ms / 1000,
                                 .tv_usec = (timeout_ms % 1000) * 1000};
            int s = select(fd + 1, &rfds, NULL, NULL, &tv);
            if (s < 0 && errno != EINTR) {
                snprintf(err, errlen, "select: %s", strerror(errno));
                return REPL_CLOSED;
            }
            if (s > 0 && !PQconsumeInput(r->conn)) {
                snprintf(err, errlen, "replication connection: %s", PQerrorMessage(r->conn));
                trim(err);
                return REPL_CLOSED;
            }
            continue;
        }
        if (n == -1) {
            PGresult *res = PQgetResult(r->conn);
            snprintf(err, errlen, "replication stream ended: %s",
                     res ? PQresultErrorMessage(res) : PQerrorMessage(r->conn));
            trim(err);
            PQclear(res);
            return REPL_CLOSED;
        }
        if (n < 0) {
            snprintf(err, errlen, "replication connection: %s", PQerrorMessage(r->conn));
            trim(err);
            return REPL_CLOSED;
        }
        r->copybuf = buf;
        if (buf[0] == 'k') {
            if (n < 18) {
                snprintf(err, errlen, "keepalive message of %d bytes", n);
                return REPL_CLOSED;
            }
            uint64_t end = get_u64(buf + 1);
            if (end > r->received_lsn)
                r->received_lsn = end;
            r->reply_requested = buf[17] != 0;
            return REPL_KEEPALIVE;
        }
        if (buf[0] == 'w') {
            if (n < 25) {
                snprintf(err, errlen, "XLogData message of %d bytes", n);
                return REPL_CLOSED;
            }
            uint64_t end = get_u64(buf + 9);
            if (end > r->received_lsn)
                r->received_lsn = end;
            *data = (const uint8_t *)buf + 25;
            *len = (size_t)n - 25;
            return REPL_DATA;
        }
        snprintf(err, errlen, "unknown replication message type 0x%02x", (uint8_t)buf[0]);
        return REPL_CLOSED;
    }
    return REPL_NONE;
}

int replication_status(struct replication *r, uint64_t flush_lsn, bool reply, char *err,
                       size_t errlen)
{
    char msg[34];
    int64_t now_us = (util_wall_ms() - PG_EPOCH_OFFSET_MS) * 1000;
    uint64_t written = r->received_lsn > flush_lsn ? r->received_lsn : flush_lsn;
    msg[0] = 'r';
    put_u64(msg + 1, written);
    put_u64(msg + 9, flush_lsn);
    put_u64(msg + 17, flush_lsn);
    put_u64(msg + 25, (uint64_t)now_us);
    msg[33] = reply ? 1 : 0;
    if (PQputCopyData(r->conn, msg, sizeof(msg)) <= 0 || PQflush(r->conn) != 0) {
        snprintf(err, errlen, "sending status: %s", PQerrorMessage(r->conn));
        trim(err);
        return -1;
    }
    r->flushed_lsn = flush_lsn;
    r->last_status_ms = util_mono_ms();
    r->reply_requested = false;
    return 0;
}

void replication_stop(struct replication *r)
{
    if (r->copybuf) {
        PQfreemem(r->copybuf);
        r->copybuf = NULL;
    }
    if (r->conn) {
        if (PQstatus(r->conn) == CONNECTION_OK) {
            PQputCopyEnd(r->conn, NULL);
            PQflush(r->conn);
        }
        PQfinish(r->conn);
        r->conn = NULL;
    }
}
