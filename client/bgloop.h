/* bgloop.h - a background thread with its own completion queue, shared by
 * the client and the reporter.
 *
 * Every tag posted on the queue is a bgloop_event; the thread calls its fn
 * with the completion's success flag. Between events the thread calls the
 * owner's tick function, which does the owner's housekeeping and returns when
 * it next wants to run (so there is no separate timer heap: each owner has a
 * handful of deadlines and recomputes their minimum).
 *
 * Other threads make the loop run its tick soon with bgloop_wake(): it posts
 * a completion through a lame channel's connectivity watch with a deadline
 * of "now", the only public way in gRPC core 1.51 to put an event on a queue
 * from outside. Wakes are coalesced (at most one in flight).
 *
 * Shutdown: the owner makes tick return a negative value once it has nothing
 * outstanding on the queue; the thread then exits and bgloop_join shuts the
 * queue down, drains it and frees the loop. */
#ifndef LA_BGLOOP_H
#define LA_BGLOOP_H

#include <stdbool.h>
#include <stdint.h>

#include <grpc/grpc.h>

#include "lookaside_status.h"

typedef struct bgloop_event bgloop_event;
struct bgloop_event {
    void (*fn)(bgloop_event *ev, bool ok);
};

typedef struct bgloop bgloop;

/* Runs on the loop thread. Returns the monotonic time (clock_mono_ms) at
 * which it wants to run again (it may run earlier), or -1 when the owner is
 * finished and the thread may exit. */
typedef int64_t (*bgloop_tick_fn)(void *arg, int64_t now_ms);

/* Creates the queue and starts the thread (named name, at most 15 chars).
 * *out is set before the thread starts, so tick may read the owner's copy
 * of it. LOOKASIDE_ENOMEM or LOOKASIDE_EINTERNAL on failure (*out NULL).
 * grpc_init must have been called. */
lookaside_status bgloop_start(const char *name, bgloop_tick_fn tick, void *arg, bgloop **out);

/* The loop's completion queue, for posting bgloop_event tags. */
grpc_completion_queue *bgloop_cq(bgloop *l);

/* Makes the loop call tick soon. Any thread; lock-free. Must not be called
 * once tick may have returned -1. */
void bgloop_wake(bgloop *l);

/* Waits for the thread to exit (tick returned -1), then shuts down and
 * drains the queue and frees l. Not from the loop thread. NULL: no-op. */
void bgloop_join(bgloop *l);

#endif
