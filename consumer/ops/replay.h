/* replay and audit: the operator's commands over the topics, the audit log of dxsync. */
#ifndef DXSYNC_REPLAY_H
#define DXSYNC_REPLAY_H

#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* replay: moves group <prefix>.apply.<remote> to the first offset at or after since_ms on every
 * partition of every topic routed into remote (the end when nothing is that new). Refuses while
 * the group has active members. Prints what moved. Returns the exit code (0; 1 on refusal or
 * failure). */
int replay_run(const struct config *cfg, const char *remote, int64_t since_ms, FILE *out);

/* audit: one line per event of one item, oldest first: time, action, user, changed fields; or
 * the raw envelopes with json. Reads only the partition the key maps to (murmur2, as the
 * producer partitions), from since_ms (or the beginning when since_ms < 0) to the end as it is
 * now. Returns the exit code. */
int audit_run(const struct config *cfg, const char *source, const char *collection, const char *key,
              int64_t since_ms, bool json, FILE *out);

/* audit without --source: the item's events from every source that publishes the collection
 * (the key's partition of each topic), merged oldest first by the convergence order (commit
 * time, then source), each with its state on every remote it is routed to: applied (that
 * remote's group committed past it), pending, or dead-lettered (with the code, from the
 * remote's DLQ). json: one {"event": envelope, "topic", "partition", "offset", "remotes": {..}}
 * per line. Kafka alone. Returns 0, or 1 with the reason on stderr. */
int audit_all_run(const struct config *cfg, const char *collection, const char *key,
                  int64_t since_ms, bool json, FILE *out);

#endif
