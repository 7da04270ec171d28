/* backoff.h - exponential reconnect backoff with jitter.
 *
 * Waits start at initial_ms and double up to max_ms; each wait is randomised
 * to 60..100 % of that base so that many clients cut off by the same
 * balancer restart do not come back in lockstep, and no wait exceeds max_ms.
 * Not thread-safe: one owner (a background thread). */
#ifndef LA_BACKOFF_H
#define LA_BACKOFF_H

#include <stdint.h>

typedef struct la_backoff {
    int64_t initial_ms;
    int64_t max_ms;
    int64_t cur_ms;   /* the next wait before jitter */
    uint64_t rng;     /* xorshift64 state, never 0 */
} la_backoff;

/* seed: any value; mixed with the clock and the object's address. */
void backoff_init(la_backoff *b, int64_t initial_ms, int64_t max_ms, uint64_t seed);
/* The next wait in milliseconds (>= 1), then doubles the base. */
int64_t backoff_next(la_backoff *b);
/* Back to initial_ms (after a success). */
void backoff_reset(la_backoff *b);
/* A uniform double in [0, 1) from the same generator. */
double backoff_rand(la_backoff *b);

#endif
