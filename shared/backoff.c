#include "backoff.h"

void backoff_init(struct backoff *b, int64_t base_ms, int64_t max_ms, uint64_t seed)
{
    b->base_ms = base_ms > 0 ? base_ms : 1;
    b->max_ms = max_ms >= b->base_ms ? max_ms : b->base_ms;
    b->attempt = 0;
    b->rng = seed ? seed : 0x9E3779B97F4A7C15ull;
}

int64_t backoff_ceiling(const struct backoff *b, int attempt)
{
    int64_t d = b->base_ms;
    for (int i = 0; i < attempt && d < b->max_ms; i++)
        d *= 2;
    return d < b->max_ms ? d : b->max_ms;
}

static uint64_t next_rand(struct backoff *b)
{
    uint64_t x = b->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b->rng = x;
    return x;
}

int64_t backoff_at(struct backoff *b, int attempt)
{
    int64_t ceil = backoff_ceiling(b, attempt);
    int64_t half = ceil / 2;
    return half + (int64_t)(next_rand(b) % (uint64_t)(ceil - half + 1));
}

int64_t backoff_next(struct backoff *b)
{
    int64_t d = backoff_at(b, b->attempt);
    if (b->attempt < 62)
        b->attempt++;
    return d;
}

int64_t backoff_next_after(struct backoff *b, long retry_after_s)
{
    int64_t d = backoff_next(b);
    if (retry_after_s > 0) {
        int64_t ra = (int64_t)retry_after_s * 1000;
        if (ra > d)
            d = ra < 3600000 ? ra : 3600000; /* never trust a server for more than an hour */
    }
    return d;
}

void backoff_reset(struct backoff *b)
{
    b->attempt = 0;
}
