/* admin: the operator's commands of dxsync-consumer that read the group's state in Kafka
 * (status; replay and audit come later). */
#ifndef DXSYNC_ADMIN_H
#define DXSYNC_ADMIN_H

#include "config.h"

#include <stdint.h>
#include <stdio.h>

/* One row of the status table. committed is -1 when the group has no offset there. */
struct admin_status_row {
    const char *topic;
    int32_t partition;
    int64_t committed;
    int64_t low;
    int64_t end;
};

/* Lag of a row: end - committed, or end - low when nothing is committed; -1 (unknown) when
 * the end offset is unknown (end < 0). */
int64_t admin_status_lag(const struct admin_status_row *r);

/* Prints the table (header, one line per row, a total line) to out. Pure formatting. A row
 * whose lag is unknown shows "?" as its lag, and then the total is "?" too: an unknown lag is
 * never counted as 0. Returns the number of such rows. */
size_t admin_status_print(FILE *out, const struct admin_status_row *rows, size_t n);

/* status: committed offset of group <prefix>.apply.<remote>, end offset and lag of every
 * partition of every topic routed into remote. Returns the exit code: 0, or 1 when Kafka
 * cannot tell (the table is still printed when only some end offsets are unknown). */
int admin_status(const struct config *cfg, const char *remote, FILE *out);

#endif
