/* pgoutput: a pure decoder of the pgoutput logical replication protocol, version 1.
 *
 * Input is one message as it arrives in the payload of an XLogData ('w') message of
 * START_REPLICATION, or in the data column of pg_logical_slot_get_binary_changes(): the
 * type byte first. No I/O, no libpq: bytes in, structs out.
 *
 * Decoded: Begin 'B', Commit 'C', Relation 'R', Insert 'I', Update 'U' (its new row).
 * Checked and skipped (PGOUTPUT_SKIPPED): Delete 'D', Truncate 'T', Type 'Y',
 * Origin 'O', Message 'M'.
 * Refused with an error: any other type byte (including the streaming and two-phase
 * messages of protocol versions 2 and 3), a message cut short, a length or count that
 * runs past the end or is negative, bytes left over after the message, an Insert or Update
 * for a relation whose Relation message was never seen, a tuple whose column count differs
 * from its relation's. The error text names the message, the field and its byte offset.
 * The decoder never reads outside [buf, buf + len) and never crashes on any input.
 *
 * The steady state of an Insert costs no allocation: values point into the caller's buffer
 * and the value array is reused from one call to the next. */
#ifndef DXSYNC_PGOUTPUT_H
#define DXSYNC_PGOUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Microseconds between the Unix epoch and the PostgreSQL epoch (2000-01-01 00:00:00 UTC). */
#define PGOUTPUT_EPOCH_OFFSET_US INT64_C(946684800000000)

/* Room for the longest text form of an LSN, "FFFFFFFF/FFFFFFFF", and its terminator. */
#define PGOUTPUT_LSN_BUFLEN 18

/* Replica identity of a relation, as sent in its Relation message. */
#define PGOUTPUT_REPLIDENT_DEFAULT 'd'
#define PGOUTPUT_REPLIDENT_NOTHING 'n'
#define PGOUTPUT_REPLIDENT_FULL    'f'
#define PGOUTPUT_REPLIDENT_INDEX   'i'

struct pgoutput_column {
    char *name;
    uint32_t type_oid;
    int32_t typmod; /* -1 when the type has none */
    bool key;       /* part of the replica identity */
};

/* A relation as described by its last Relation message. Owned by the decoder. */
struct pgoutput_relation {
    uint32_t oid;
    char *nspname; /* "pg_catalog" when the message sent an empty namespace */
    char *relname;
    char replident; /* PGOUTPUT_REPLIDENT_* */
    int ncols;      /* live columns (dropped and generated ones are not sent) */
    struct pgoutput_column *cols;
};

/* Kinds of one column value in a tuple. */
#define PGOUTPUT_VALUE_NULL      'n'
#define PGOUTPUT_VALUE_UNCHANGED 'u' /* unchanged TOASTed value: not sent */
#define PGOUTPUT_VALUE_TEXT      't'
#define PGOUTPUT_VALUE_BINARY    'b'

struct pgoutput_value {
    char kind;        /* PGOUTPUT_VALUE_* */
    const char *data; /* 't', 'b': points into the decoded buffer, NOT terminated; else NULL */
    uint32_t len;     /* 't', 'b': bytes at data; else 0 */
};

/* One row. vals[i] is the value of column i of the relation; ncols == rel->ncols. */
struct pgoutput_tuple {
    int ncols;
    const struct pgoutput_value *vals;
};

enum pgoutput_kind {
    PGOUTPUT_BEGIN = 1,
    PGOUTPUT_COMMIT,
    PGOUTPUT_RELATION,
    PGOUTPUT_INSERT,
    PGOUTPUT_SKIPPED,
    PGOUTPUT_UPDATE,
};

/* One decoded message. Everything it points to lives until the next pgoutput_decode() or
 * pgoutput_decoder_free() on the same decoder, and value data only as long as the caller's
 * input buffer: copy what must outlive either. */
struct pgoutput_msg {
    enum pgoutput_kind kind;
    union {
        struct {
            uint64_t final_lsn;     /* LSN of the commit record */
            int64_t commit_time_us; /* microseconds since 2000-01-01 UTC */
            uint32_t xid;
        } begin;
        struct {
            uint8_t flags;       /* always 0 in protocol version 1 */
            uint64_t commit_lsn; /* LSN of the commit record (== begin.final_lsn) */
            uint64_t end_lsn;    /* end of the transaction: the LSN to confirm once done */
            int64_t commit_time_us;
        } commit;
        struct {
            const struct pgoutput_relation *rel; /* the cached relation, now current */
        } relation;
        struct {
            const struct pgoutput_relation *rel;
            struct pgoutput_tuple tuple; /* the new row */
        } insert;
        struct {
            const struct pgoutput_relation *rel;
            struct pgoutput_tuple tuple; /* the new row ('u' for unchanged TOASTed values) */
        } update;
        struct {
            char type;      /* 'D', 'T', 'Y', 'O' or 'M' */
            uint32_t relid; /* 'D': the relation changed; 'T': the first one; else 0 */
        } skipped;
    };
};

struct pgoutput_decoder;

/* Returns a new decoder with an empty relation cache, or NULL when out of memory.
 * The caller owns it and frees it with pgoutput_decoder_free(). */
struct pgoutput_decoder *pgoutput_decoder_new(void);

/* Frees the decoder, its cached relations and its value array. NULL is a no-op. */
void pgoutput_decoder_free(struct pgoutput_decoder *d);

/* Decodes the message in buf[0..len). Returns 0 and fills *out, or -1 with *out zeroed and
 * err filled (when errlen > 0) with what is wrong and at which byte offset. A Relation
 * message replaces the cached relation of the same OID; a failed decode leaves the cache as
 * it was. buf need not be aligned or terminated, and must outlive the use of out's values. */
int pgoutput_decode(struct pgoutput_decoder *d, const uint8_t *buf, size_t len,
                    struct pgoutput_msg *out, char *err, size_t errlen);

/* The cached relation with this OID, or NULL. Owned by the decoder; valid until a Relation
 * message for the same OID is decoded or the decoder is freed. Keep OIDs, not these
 * pointers, across messages, and look column indexes up again after each Relation message
 * of that OID. */
const struct pgoutput_relation *pgoutput_decoder_relation(const struct pgoutput_decoder *d,
                                                          uint32_t oid);

/* Index of the column with exactly this name, or -1. */
int pgoutput_relation_column(const struct pgoutput_relation *rel, const char *name);

/* True when v is a text or binary value whose bytes are exactly the string s. */
bool pgoutput_value_equals(const struct pgoutput_value *v, const char *s);

/* Returns a malloc'd, terminated copy of a text or binary value (the caller frees it), or
 * NULL for a null or unchanged value, or when out of memory. */
char *pgoutput_value_strdup(const struct pgoutput_value *v);

/* Writes lsn as PostgreSQL does ("0/16B3748": upper and lower 32 bits in upper-case hex).
 * Returns 0, or -1 when len < the length needed (PGOUTPUT_LSN_BUFLEN always suffices). */
int pgoutput_lsn_format(uint64_t lsn, char *buf, size_t len);

/* Parses "X/X" with 1 to 8 hex digits on each side and nothing else. Returns 0, or -1. */
int pgoutput_lsn_parse(const char *s, uint64_t *out);

/* Converts a PostgreSQL timestamp (microseconds since 2000-01-01 UTC) to milliseconds since
 * the Unix epoch, rounding towards minus infinity. */
int64_t pgoutput_time_to_unix_ms(int64_t pg_us);
/* The same in microseconds since the Unix epoch (INT64_MAX for a time past what that holds). */
int64_t pgoutput_time_to_unix_us(int64_t pg_us);

/* "begin", "commit", "relation", "insert", "update", "skipped", or "unknown". */
const char *pgoutput_kind_name(enum pgoutput_kind kind);

#endif
