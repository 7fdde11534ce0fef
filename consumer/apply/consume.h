/* consume: the run loop of dxsync-consumer. Joins group <prefix>.apply.<remote>, queues each
 * assigned partition's events, plans batches (plan), drives their requests (apply) with
 * libcurl's multi interface across partitions, dead-letters what cannot be applied
 * (deadletter) and stores an offset only once every event before it is applied, skipped or
 * acknowledged in the DLQ. */
#ifndef DXSYNC_CONSUME_H
#define DXSYNC_CONSUME_H

#include "config.h"
#include "metrics.h"

/* Runs until signals_stop or a fatal Kafka error; cfg and m must outlive the call. Returns the
 * exit code: 0 after a clean stop, 1 on a runtime failure, 2 when nothing is routed into
 * remote. */
int consume_run(const struct config *cfg, const char *remote, struct metrics *m);

#endif
