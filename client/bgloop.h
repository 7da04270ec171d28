/* bgloop.h - a background thread with its own completion queue, shared by
 * the client and the reporter.
 *
 * Every tag posted on the queue is a bgloop_event (bgloop_event_init); the
 * thread calls its fn with the completion's success flag. Between events
 * the thread calls the owner's tick function, which does the owner's
 * housekeeping and returns when it next wants to run (so there is no
 * separate timer heap: each owner has a handful of deadlines and recomputes
 * their minimum).
 *
 * Polling. gRPC core 1.51's epoll1 poller has one epoll set for the whole
 * process, and any thread blocked in grpc_completion_queue_next on ANY
 * polling queue may be the one that reads ANY channel's socket, runs that
 * transport's work (often a while: it keeps the transport's combiner) and
 * then wakes the thread the completion belongs to. A background thread
 * parked in completion_queue_next therefore does a share of the
 * application's data path, with a context switch per hand-over (it cost the
 * client 14 % of a plain channel's calls/s and 24 % on the median latency).
 * So the loop never waits inside gRPC:
 *  - the queue is a callback queue: a completion runs a trivial functor, on
 *    whichever thread produced it, that queues the event for the loop and
 *    wakes it through an eventfd. Events arrive as soon as anyone polls;
 *  - the thread sleeps on that eventfd (poll(2)), not in gRPC;
 *  - gRPC only makes I/O progress while some thread polls. While the
 *    application makes calls its own threads poll (and read the balancer's
 *    socket too); while it is idle nobody may. So, while the owner has
 *    anything outstanding, the loop makes zero-timeout polling passes of
 *    its own (on a private, empty polling queue; gRPC lets such a pass poll
 *    only when no other thread is polling): when the application is idle
 *    every BGLOOP_IDLE_POLL_MS after something happened, doubling up to
 *    BGLOOP_IDLE_POLL_MAX_MS while nothing does; when it is busy every
 *    BGLOOP_BUSY_POLL_MS only (a safety net). The owner's tick says which
 *    case holds (bgloop_io).
 * The price: while the application is idle (no calls), a message from the
 * balancer (a list push) waits up to BGLOOP_IDLE_POLL_MAX_MS for the next
 * pass, and the loop wakes that often while a stream is open.
 *
 * Other threads make the loop run its tick soon with bgloop_wake() (an
 * eventfd write; coalesced: at most one pending).
 *
 * Shutdown: the owner makes tick return a negative value once it has nothing
 * outstanding on the queue; the thread then exits and bgloop_join shuts the
 * queue down and frees the loop. */
#ifndef LA_BGLOOP_H
#define LA_BGLOOP_H

#include <stdbool.h>
#include <stdint.h>

#include <grpc/grpc.h>

#include "lookaside_status.h"

#define BGLOOP_IDLE_POLL_MS 2      /* own polling passes while the application is idle, */
#define BGLOOP_IDLE_POLL_MAX_MS 25 /* doubling up to this while nothing happens */
#define BGLOOP_BUSY_POLL_MS 50     /* ... and while it is busy (its threads poll) */

typedef struct bgloop bgloop;
typedef struct bgloop_event bgloop_event;
struct bgloop_event {
    grpc_completion_queue_functor functor; /* first: the tag given to gRPC */
    void (*fn)(bgloop_event *ev, bool ok);
    bgloop *loop;
    bool ok;
    bgloop_event *next_done; /* the loop's queue of completed events */
};

/* What the owner has outstanding on the queue, as its tick sees it. */
typedef enum bgloop_io {
    BGLOOP_IO_NONE = 0, /* nothing: the loop does not poll */
    BGLOOP_IO_BUSY = 1, /* something, and the application is making calls */
    BGLOOP_IO_IDLE = 2  /* something, and the application seems idle */
} bgloop_io;

/* Runs on the loop thread. Returns the monotonic time (clock_mono_ms) at
 * which it wants to run again (it may run earlier), or -1 when the owner is
 * finished and the thread may exit; sets *io (it starts as BGLOOP_IO_NONE
 * on each call). */
typedef int64_t (*bgloop_tick_fn)(void *arg, int64_t now_ms, bgloop_io *io);

/* Creates the queue and starts the thread (named name, at most 15 chars).
 * *out is set before the thread starts, so tick may read the owner's copy
 * of it. LOOKASIDE_ENOMEM or LOOKASIDE_EINTERNAL on failure (*out NULL).
 * grpc_init must have been called. */
lookaside_status bgloop_start(const char *name, bgloop_tick_fn tick, void *arg, bgloop **out);

/* The loop's completion queue, for posting bgloop_event tags. */
grpc_completion_queue *bgloop_cq(bgloop *l);

/* Prepares ev to be posted on l's queue (any number of times, one
 * completion outstanding at a time); fn runs on the loop thread. */
void bgloop_event_init(bgloop *l, bgloop_event *ev, void (*fn)(bgloop_event *ev, bool ok));

/* Makes the loop call tick soon. Any thread; lock-free. Must not be called
 * once tick may have returned -1. */
void bgloop_wake(bgloop *l);

/* Waits for the thread to exit (tick returned -1), then shuts down the
 * queue and frees l. Not from the loop thread. NULL: no-op. */
void bgloop_join(bgloop *l);

#endif
