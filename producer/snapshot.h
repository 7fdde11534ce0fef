/* snapshot: publishes every current row of the routed collections as snapshot events, all
 * read in one REPEATABLE READ transaction (one consistent view of the source). */
#ifndef DXSYNC_SNAPSHOT_H
#define DXSYNC_SNAPSHOT_H

#include "config.h"
#include "metrics.h"

#include <stddef.h>

/* only: collection names to limit to (NULL/0: every collection routed from inst). Prints a
 * progress line on stderr when it is a terminal and a summary on stdout. Returns the exit code
 * (0 when every row is acknowledged by Kafka). */
int producer_snapshot(const struct config *cfg, const struct config_instance *inst,
                      const char *const *only, size_t nonly, struct metrics *m);

#endif
