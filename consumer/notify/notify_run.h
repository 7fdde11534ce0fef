/* notify_run: dxsync-notifier's loop. Reads <prefix>.errors in group <prefix>.notify, folds
 * the error events into digests (notify.h), creates the notifications in each route's source
 * instance with its sync user's token, retrying with backoff while Directus is away, and
 * stores an offset only once the notifications covering it exist (at-least-once). */
#ifndef DXSYNC_NOTIFY_RUN_H
#define DXSYNC_NOTIFY_RUN_H

#include "config.h"
#include "metrics.h"

/* Longest a clean stop waits for Directus to take the pending notifications; what is still
 * unsent then stays uncommitted and goes out after the next start. */
#define NOTIFY_STOP_FLUSH_MS 30000
/* Error events read and not yet notified above which reading pauses (memory bound). */
#define NOTIFY_MAX_PENDING 200000

/* Runs until signals_stop. Returns the exit code: 0 after a clean stop, 1 on a fatal error. */
int notify_run(const struct config *cfg, struct metrics *m);

#endif
