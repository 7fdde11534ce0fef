/* replication: the streaming replication connection (replication=database): START_REPLICATION
 * of the pgoutput slot, reading XLogData and keepalives, and standby status updates. */
#ifndef DXSYNC_REPLICATION_H
#define DXSYNC_REPLICATION_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct replication {
    PGconn *conn;
    uint64_t received_lsn; /* end of the WAL the server said it sent (XLogData/keepalive) */
    uint64_t flushed_lsn;  /* the last flush position we reported */
    int64_t last_status_ms;
    bool reply_requested;
    char *copybuf; /* the last message, freed on the next read */
};

/* Connects with replication=database and starts streaming slot from its confirmed position;
 * wal_sender_timeout_ms > 0 sets the server's wal_sender_timeout for this connection (how long
 * it keeps the slot for a client that stopped answering). 0; 1 when another process streams
 * from the slot (SQLSTATE 55006: another producer of the instance is active), with err; or -1
 * with err (the connection closed either way). */
int replication_start(struct replication *r, const char *database, const char *slot,
                      const char *publication, int wal_sender_timeout_ms, char *err, size_t errlen);

enum replication_read { REPL_NONE = 0, REPL_DATA, REPL_KEEPALIVE, REPL_CLOSED };

/* Reads one message without blocking longer than timeout_ms. REPL_DATA: *data and *len hold
 * the pgoutput payload (valid until the next read). REPL_CLOSED: the stream ended or failed
 * (err says why); call replication_stop and reconnect. */
enum replication_read replication_read(struct replication *r, int timeout_ms, const uint8_t **data,
                                       size_t *len, char *err, size_t errlen);

/* Sends a standby status update: written = received, flushed = applied = flush_lsn.
 * 0, or -1 with err. */
int replication_status(struct replication *r, uint64_t flush_lsn, bool reply, char *err,
                       size_t errlen);

/* Ends the copy (best effort) and closes the connection. */
void replication_stop(struct replication *r);

#endif
