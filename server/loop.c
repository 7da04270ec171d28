#include "loop.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

typedef struct timer {
    int64_t at_ms;
    uint64_t id;
    loop_timer_fn fn;
    void *arg;
} timer;

struct loop {
    grpc_completion_queue *cq;
    timer *heap;
    size_t n, cap;
    uint64_t next_id;
    bool stopping;
    bool shut;
    loop_poll_fn poll_fn;
    void *poll_arg;
};

static volatile sig_atomic_t g_stop_requested;

void loop_stop_async(void) { g_stop_requested = 1; }
bool loop_stop_requested(void) { return g_stop_requested != 0; }

lookaside_status loop_create(loop **out)
{
    loop *l = calloc(1, sizeof *l);
    if (l == NULL)
        return LOOKASIDE_ENOMEM;
    l->cq = grpc_completion_queue_create_for_next(NULL);
    l->next_id = 1;
    *out = l;
    return LOOKASIDE_OK;
}

void loop_destroy(loop *l)
{
    if (l == NULL)
        return;
    if (!l->shut) {
        grpc_completion_queue_shutdown(l->cq);
        for (int i = 0; i < 100000; i++) {
            grpc_event ev = grpc_completion_queue_next(
                l->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
            if (ev.type == GRPC_QUEUE_SHUTDOWN)
                break;
            if (ev.type == GRPC_OP_COMPLETE && ev.tag != NULL) {
                loop_tag *t = ev.tag;
                t->fn(t, false);
            }
        }
    }
    grpc_completion_queue_destroy(l->cq);
    free(l->heap);
    free(l);
}

grpc_completion_queue *loop_cq(loop *l) { return l->cq; }

static bool earlier(const timer *a, const timer *b)
{
    return a->at_ms < b->at_ms || (a->at_ms == b->at_ms && a->id < b->id);
}

static void sift_up(loop *l, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!earlier(&l->heap[i], &l->heap[p]))
            break;
        timer t = l->heap[i];
        l->heap[i] = l->heap[p];
        l->heap[p] = t;
        i = p;
    }
}

static void sift_down(loop *l, size_t i)
{
    for (;;) {
        size_t a = 2 * i + 1, b = a + 1, m = i;
        if (a < l->n && earlier(&l->heap[a], &l->heap[m]))
            m = a;
        if (b < l->n && earlier(&l->heap[b], &l->heap[m]))
            m = b;
        if (m == i)
            break;
        timer t = l->heap[i];
        l->heap[i] = l->heap[m];
        l->heap[m] = t;
        i = m;
    }
}

uint64_t loop_timer_add(loop *l, int64_t at_ms, loop_timer_fn fn, void *arg)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        timer *h = realloc(l->heap, cap * sizeof *h);
        if (h == NULL)
            return 0;
        l->heap = h;
        l->cap = cap;
    }
    uint64_t id = l->next_id++;
    l->heap[l->n] = (timer){at_ms, id, fn, arg};
    sift_up(l, l->n++);
    return id;
}

void loop_timer_cancel(loop *l, uint64_t id)
{
    /* Cancels are rare (streams ending); a linear scan keeps the heap simple. */
    for (size_t i = 0; i < l->n; i++) {
        if (l->heap[i].id == id) {
            l->heap[i] = l->heap[--l->n];
            if (i < l->n) {
                sift_up(l, i);
                sift_down(l, i);
            }
            return;
        }
    }
}

void loop_set_poll(loop *l, loop_poll_fn fn, void *arg)
{
    l->poll_fn = fn;
    l->poll_arg = arg;
}

static void run_timers(loop *l, int64_t now)
{
    /* Bounded: timers added while running fire on a later pass. */
    size_t budget = l->n;
    while (l->n > 0 && l->heap[0].at_ms <= now && budget-- > 0) {
        timer t = l->heap[0];
        l->heap[0] = l->heap[--l->n];
        if (l->n > 0)
            sift_down(l, 0);
        t.fn(l, t.arg);
    }
}

bool loop_once(loop *l, int64_t max_wait_ms)
{
    int64_t now = clock_mono_ms();
    run_timers(l, now);
    int64_t deadline = now + max_wait_ms;
    if (l->poll_fn != NULL) {
        int64_t p = l->poll_fn(l, l->poll_arg, now);
        if (p < deadline)
            deadline = p;
    }
    if (l->n > 0 && l->heap[0].at_ms < deadline)
        deadline = l->heap[0].at_ms;
    int64_t wait = deadline - now;
    if (wait < 0)
        wait = 0;
    gpr_timespec dl = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                   gpr_time_from_millis(wait, GPR_TIMESPAN));
    /* Drain whatever is ready before looking at timers again, but bounded so
     * timers are never starved by a flood of completions. */
    for (int i = 0; i < 256; i++) {
        grpc_event ev = grpc_completion_queue_next(l->cq, dl, NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) {
            l->shut = true;
            return false;
        }
        if (ev.type == GRPC_QUEUE_TIMEOUT)
            break;
        loop_tag *t = ev.tag;
        if (t != NULL)
            t->fn(t, ev.success != 0);
        dl = gpr_inf_past(GPR_CLOCK_MONOTONIC);
    }
    return true;
}

void loop_run(loop *l)
{
    while (!l->stopping) {
        if (g_stop_requested) {
            log_info("loop", "stop requested by signal");
            l->stopping = true;
            break;
        }
        if (!loop_once(l, LOOP_MAX_WAIT_MS))
            break;
    }
}

void loop_stop(loop *l) { l->stopping = true; }
bool loop_stopping(loop *l) { return l->stopping; }
