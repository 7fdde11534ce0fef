/* backoff: exponential backoff with jitter (e.g. 200 ms doubling to 30 s). Pure: the caller
 * sleeps. */
#ifndef DXSYNC_BACKOFF_H
#define DXSYNC_BACKOFF_H

#include <stdint.h>

struct backoff {
    int64_t base_ms;
    int64_t max_ms;
    int attempt;  /* delays handed out since the last reset */
    uint64_t rng; /* xorshift state */
};

void backoff_init(struct backoff *b, int64_t base_ms, int64_t max_ms, uint64_t seed);
/* The ceiling of the delay after `attempt` failures: min(max, base * 2^attempt). */
int64_t backoff_ceiling(const struct backoff *b, int attempt);
/* A delay after `attempt` failures: a uniform value in [ceiling/2, ceiling] ("equal jitter"),
 * so that many clients spread out but none retries much sooner than the schedule. For a caller
 * that keeps its own count; the attempt count is left alone. */
int64_t backoff_at(struct backoff *b, int attempt);
/* backoff_at the attempt count, which it then advances. */
int64_t backoff_next(struct backoff *b);
/* A Retry-After answer (seconds) overrides the schedule when it asks for longer. */
int64_t backoff_next_after(struct backoff *b, long retry_after_s);
void backoff_reset(struct backoff *b);

#endif
