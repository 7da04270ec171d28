#include "bgloop.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <grpc/support/time.h>

#include "log.h"
#include "util.h"

/* Zero-timeout polling calls per pass: each lets gRPC handle one ready
 * socket (epoll1 processes one per call), e.g. the steps of a handshake. */
#define POLL_CALLS 2

struct bgloop {
    pthread_t thread;
    grpc_completion_queue *cq;   /* callback queue: the owner's operations */
    grpc_completion_queue *pcq;  /* empty polling queue: the loop's own polling passes */
    grpc_completion_queue_functor shutdown_fn;
    int efd;
    _Atomic bool wake_pending;
    _Atomic(bgloop_event *) done; /* completed events, newest first */
    _Atomic int in_functor;       /* completion functors still touching the loop */
    _Atomic bool cq_down;
    bgloop_tick_fn tick;
    void *arg;
    char name[16];
};

/* A completion, on whichever gRPC thread produced it: queue the event and
 * wake the loop. Trivial on purpose (gRPC may run it inline). */
static void event_done(grpc_completion_queue_functor *f, int ok)
{
    bgloop_event *ev = (bgloop_event *)f;
    bgloop *l = ev->loop;
    /* The loop cannot finish before it has seen ev, so l is alive here; the
     * count keeps it alive until the wake below is done. */
    atomic_fetch_add(&l->in_functor, 1);
    ev->ok = ok != 0;
    bgloop_event *head = atomic_load_explicit(&l->done, memory_order_relaxed);
    do
        ev->next_done = head;
    while (!atomic_compare_exchange_weak_explicit(&l->done, &head, ev, memory_order_release,
                                                  memory_order_relaxed));
    bgloop_wake(l);
    atomic_fetch_sub_explicit(&l->in_functor, 1, memory_order_release);
}

static void cq_shutdown_done(grpc_completion_queue_functor *f, int ok)
{
    (void)ok;
    bgloop *l = (bgloop *)((char *)f - offsetof(bgloop, shutdown_fn));
    atomic_store_explicit(&l->cq_down, true, memory_order_release); /* last touch */
}

/* Runs the completed events in completion order. Returns how many. */
static int dispatch(bgloop *l)
{
    bgloop_event *e = atomic_exchange_explicit(&l->done, NULL, memory_order_acquire);
    bgloop_event *fifo = NULL;
    while (e != NULL) {
        bgloop_event *next = e->next_done;
        e->next_done = fifo;
        fifo = e;
        e = next;
    }
    int n = 0;
    while (fifo != NULL) {
        e = fifo;
        /* Read before fn: fn may post e again, and it may complete at once. */
        fifo = e->next_done;
        bool ok = e->ok;
        e->fn(e, ok);
        n++;
    }
    return n;
}

/* Lets gRPC make I/O progress on this thread for an instant. It only
 * polls when no other thread is polling at that moment. */
static void poll_pass(bgloop *l)
{
    for (int i = 0; i < POLL_CALLS; i++)
        grpc_completion_queue_next(l->pcq, gpr_inf_past(GPR_CLOCK_MONOTONIC), NULL);
}

static void wait_wake(bgloop *l, int64_t ms)
{
    if (ms > 1000)
        ms = 1000;
    struct pollfd pfd = {.fd = l->efd, .events = POLLIN};
    if (poll(&pfd, 1, (int)ms) > 0) {
        uint64_t v;
        ssize_t r = read(l->efd, &v, sizeof v); /* non-blocking; resets the count */
        (void)r;
    }
}

static void *bgloop_main(void *arg)
{
    bgloop *l = arg;
    pthread_setname_np(pthread_self(), l->name);
    int64_t last_poll = 0;
    int64_t idle_period = BGLOOP_IDLE_POLL_MS;
    for (;;) {
        /* Cleared before looking for work, so a wake issued from here on
         * makes the next wait return at once. */
        atomic_store(&l->wake_pending, false);
        if (dispatch(l) > 0)
            idle_period = BGLOOP_IDLE_POLL_MS; /* things are moving: more may follow */
        int64_t now = clock_mono_ms();
        bgloop_io io = BGLOOP_IO_NONE;
        int64_t next = l->tick(l->arg, now, &io);
        if (next < 0)
            break;
        if (io == BGLOOP_IO_BUSY)
            idle_period = BGLOOP_IDLE_POLL_MS;
        if (io != BGLOOP_IO_NONE) {
            int64_t period = io == BGLOOP_IO_IDLE ? idle_period : BGLOOP_BUSY_POLL_MS;
            if (now - last_poll >= period) {
                poll_pass(l);
                last_poll = now;
                if (io == BGLOOP_IO_IDLE && (idle_period *= 2) > BGLOOP_IDLE_POLL_MAX_MS)
                    idle_period = BGLOOP_IDLE_POLL_MAX_MS;
            }
            if (last_poll + period < next)
                next = last_poll + period;
        }
        if (atomic_load_explicit(&l->done, memory_order_relaxed) != NULL)
            continue;
        int64_t wait = next - clock_mono_ms();
        if (wait > 0)
            wait_wake(l, wait);
    }
    return NULL;
}

static void destroy_pcq(grpc_completion_queue *pcq)
{
    grpc_completion_queue_shutdown(pcq);
    while (grpc_completion_queue_next(pcq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(pcq);
}

static void nap(void)
{
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
}

/* Shuts the callback queue down and waits until gRPC and every functor are
 * done with l. */
static void destroy_cq(bgloop *l)
{
    grpc_completion_queue_shutdown(l->cq);
    while (!atomic_load_explicit(&l->cq_down, memory_order_acquire))
        nap();
    while (atomic_load_explicit(&l->in_functor, memory_order_acquire) != 0)
        nap();
    grpc_completion_queue_destroy(l->cq);
}

lookaside_status bgloop_start(const char *name, bgloop_tick_fn tick, void *arg, bgloop **out)
{
    *out = NULL;
    bgloop *l = calloc(1, sizeof *l);
    if (l == NULL)
        return LOOKASIDE_ENOMEM;
    snprintf(l->name, sizeof l->name, "%s", name);
    l->tick = tick;
    l->arg = arg;
    l->shutdown_fn.functor_run = cq_shutdown_done;
    l->shutdown_fn.inlineable = 1;
    l->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (l->efd < 0) {
        free(l);
        return LOOKASIDE_EINTERNAL;
    }
    l->cq = grpc_completion_queue_create_for_callback(&l->shutdown_fn, NULL);
    l->pcq = grpc_completion_queue_create_for_next(NULL);
    if (l->cq == NULL || l->pcq == NULL) {
        if (l->pcq)
            destroy_pcq(l->pcq);
        if (l->cq)
            destroy_cq(l);
        close(l->efd);
        free(l);
        return LOOKASIDE_ENOMEM;
    }
    /* Before the thread starts: its first tick may already use the owner's
     * pointer to the loop (pthread_create orders this store before it). */
    *out = l;
    if (pthread_create(&l->thread, NULL, bgloop_main, l) != 0) {
        *out = NULL;
        destroy_pcq(l->pcq);
        destroy_cq(l);
        close(l->efd);
        free(l);
        return LOOKASIDE_EINTERNAL;
    }
    return LOOKASIDE_OK;
}

grpc_completion_queue *bgloop_cq(bgloop *l)
{
    return l->cq;
}

void bgloop_event_init(bgloop *l, bgloop_event *ev, void (*fn)(bgloop_event *ev, bool ok))
{
    memset(ev, 0, sizeof *ev);
    ev->functor.functor_run = event_done;
    /* Only queues and writes an eventfd: fine to run inline on gRPC's
     * thread, which saves a hop through gRPC's executor. */
    ev->functor.inlineable = 1;
    ev->fn = fn;
    ev->loop = l;
}

void bgloop_wake(bgloop *l)
{
    if (atomic_exchange(&l->wake_pending, true))
        return;
    uint64_t one = 1;
    ssize_t r = write(l->efd, &one, sizeof one);
    (void)r; /* EAGAIN only when the count is saturated: readable anyway */
}

void bgloop_join(bgloop *l)
{
    if (l == NULL)
        return;
    pthread_join(l->thread, NULL);
    destroy_cq(l);
    if (atomic_load(&l->done) != NULL)
        log_warn("bgloop", "%s: completion after the owner finished", l->name);
    destroy_pcq(l->pcq);
    close(l->efd);
    free(l);
}
