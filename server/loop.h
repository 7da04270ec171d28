/* loop.h - the server's single event loop: one completion queue and a
 * min-heap of timers (Redis "ae" style).
 *
 * Every completion-queue tag handed to gRPC by the server is a loop_tag; the
 * loop calls tag->fn(tag, ok) on the loop thread. Timers run on the loop
 * thread too. Everything here is loop-thread only, except loop_stop_async(),
 * which is async-signal-safe.
 *
 * The loop waits in grpc_completion_queue_next with the nearest timer (or an
 * external deadline from loop_set_poll, used to drive c-ares) as deadline,
 * and wakes at least every LOOP_MAX_WAIT_MS to notice loop_stop_async(). */
#ifndef LA_LOOP_H
#define LA_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include <grpc/grpc.h>

#include "lookaside_status.h"

#define LOOP_MAX_WAIT_MS 100

typedef struct loop loop;

typedef struct loop_tag {
    void (*fn)(struct loop_tag *tag, bool ok);
} loop_tag;

typedef void (*loop_timer_fn)(loop *l, void *arg);
/* Called every iteration: returns the monotonic ms when it must run next
 * (INT64_MAX: no need) and does its non-blocking work. */
typedef int64_t (*loop_poll_fn)(loop *l, void *arg, int64_t now_ms);

lookaside_status loop_create(loop **out);
/* Destroys the queue (after shutting it down and draining it). NULL: no-op. */
void loop_destroy(loop *l);
grpc_completion_queue *loop_cq(loop *l);

/* Runs until loop_stop() (or loop_stop_async()) is called, then returns. */
void loop_run(loop *l);
/* Runs one iteration waiting at most max_wait_ms. Returns false once the
 * queue has shut down. */
bool loop_once(loop *l, int64_t max_wait_ms);
void loop_stop(loop *l);
bool loop_stopping(loop *l);
/* Async-signal-safe: makes loop_run return within LOOP_MAX_WAIT_MS. */
void loop_stop_async(void);
bool loop_stop_requested(void);

/* One-shot timer at monotonic time at_ms. Returns an id > 0 (0 on ENOMEM). */
uint64_t loop_timer_add(loop *l, int64_t at_ms, loop_timer_fn fn, void *arg);
/* Cancels a pending timer; unknown or fired ids are ignored. */
void loop_timer_cancel(loop *l, uint64_t id);

/* Installs the per-iteration poll hook (at most one). */
void loop_set_poll(loop *l, loop_poll_fn fn, void *arg);

#endif
