#include "backoff.h"

#include <stdint.h>
#include <time.h>

#include "util.h"

void backoff_init(la_backoff *b, int64_t initial_ms, int64_t max_ms, uint64_t seed)
{
    if (initial_ms < 1)
        initial_ms = 1;
    if (max_ms < initial_ms)
        max_ms = initial_ms;
    b->initial_ms = initial_ms;
    b->max_ms = max_ms;
    b->cur_ms = initial_ms;
    uint64_t s = seed ^ (uint64_t)clock_mono_ns() ^ ((uint64_t)(uintptr_t)b << 17);
    /* splitmix64 finaliser so that nearby seeds diverge */
    s += 0x9e3779b97f4a7c15ULL;
    s = (s ^ (s >> 30)) * 0xbf58476d1ce4e5b9ULL;
    s = (s ^ (s >> 27)) * 0x94d049bb133111ebULL;
    s ^= s >> 31;
    b->rng = s != 0 ? s : 0x2545f4914f6cdd1dULL;
}

double backoff_rand(la_backoff *b)
{
    uint64_t x = b->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b->rng = x;
    return (double)(x >> 11) / 9007199254740992.0; /* 2^53 */
}

int64_t backoff_next(la_backoff *b)
{
    /* Jitter only downwards, so that max_ms is a true cap (a balancer that
     * comes back is retried within max_ms by everyone). */
    double jitter = 0.6 + 0.4 * backoff_rand(b);
    int64_t wait = (int64_t)((double)b->cur_ms * jitter);
    if (wait < 1)
        wait = 1;
    b->cur_ms = b->cur_ms * 2 > b->max_ms ? b->max_ms : b->cur_ms * 2;
    return wait;
}

void backoff_reset(la_backoff *b)
{
    b->cur_ms = b->initial_ms;
}
