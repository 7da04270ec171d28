#include "bgloop.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/support/time.h>

#include "log.h"
#include "util.h"

struct bgloop {
    pthread_t thread;
    grpc_completion_queue *cq;
    grpc_channel *wake_ch; /* lame: its connectivity watch is a timer */
    bgloop_event wake_ev;
    _Atomic bool wake_pending;
    bgloop_tick_fn tick;
    void *arg;
    char name[16];
};

static void wake_done(bgloop_event *ev, bool ok)
{
    (void)ok;
    bgloop *l = (bgloop *)((char *)ev - offsetof(bgloop, wake_ev));
    /* Cleared before the next tick runs, so a wake issued after this point
     * posts again and one issued before is served by that tick. */
    atomic_store(&l->wake_pending, false);
}

static void *bgloop_main(void *arg)
{
    bgloop *l = arg;
    pthread_setname_np(pthread_self(), l->name);
    for (;;) {
        int64_t now = clock_mono_ms();
        int64_t next = l->tick(l->arg, now);
        if (next < 0) {
            if (!atomic_load(&l->wake_pending))
                break;
            next = now + 10; /* let the last wake complete */
        }
        int64_t wait = next - now;
        if (wait < 0)
            wait = 0;
        if (wait > 1000)
            wait = 1000;
        gpr_timespec deadline =
            gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(wait, GPR_TIMESPAN));
        grpc_event ev = grpc_completion_queue_next(l->cq, deadline, NULL);
        if (ev.type == GRPC_OP_COMPLETE) {
            bgloop_event *e = ev.tag;
            e->fn(e, ev.success != 0);
        }
    }
    return NULL;
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
    l->wake_ev.fn = wake_done;
    l->cq = grpc_completion_queue_create_for_next(NULL);
    l->wake_ch = grpc_lame_client_channel_create(NULL, GRPC_STATUS_UNAVAILABLE, "bgloop wake");
    if (l->cq == NULL || l->wake_ch == NULL) {
        if (l->wake_ch)
            grpc_channel_destroy(l->wake_ch);
        if (l->cq)
            grpc_completion_queue_destroy(l->cq);
        free(l);
        return LOOKASIDE_ENOMEM;
    }
    /* Before the thread starts: its first tick may already use the owner's
     * pointer to the loop (pthread_create orders this store before it). */
    *out = l;
    if (pthread_create(&l->thread, NULL, bgloop_main, l) != 0) {
        *out = NULL;
        grpc_channel_destroy(l->wake_ch);
        grpc_completion_queue_shutdown(l->cq);
        while (grpc_completion_queue_next(l->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
               GRPC_QUEUE_SHUTDOWN) {
        }
        grpc_completion_queue_destroy(l->cq);
        free(l);
        return LOOKASIDE_EINTERNAL;
    }
    return LOOKASIDE_OK;
}

grpc_completion_queue *bgloop_cq(bgloop *l)
{
    return l->cq;
}

void bgloop_wake(bgloop *l)
{
    if (atomic_exchange(&l->wake_pending, true))
        return;
    /* A lame channel's watch completes at its deadline: now. */
    grpc_channel_watch_connectivity_state(l->wake_ch, GRPC_CHANNEL_IDLE,
                                          gpr_now(GPR_CLOCK_MONOTONIC), l->cq, &l->wake_ev);
}

void bgloop_join(bgloop *l)
{
    if (l == NULL)
        return;
    pthread_join(l->thread, NULL);
    grpc_channel_destroy(l->wake_ch);
    grpc_completion_queue_shutdown(l->cq);
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(l->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type == GRPC_OP_COMPLETE)
            log_warn("bgloop", "%s: completion after the owner finished", l->name);
    }
    grpc_completion_queue_destroy(l->cq);
    free(l);
}
