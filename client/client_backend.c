/* client_backend.c - backend channels, their connectivity, and publishing
 * pick snapshots. Loop thread only, except where noted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/support/time.h>

#include "client_priv.h"
#include "ebr.h"
#include "log.h"
#include "util.h"

static gpr_timespec deadline_in(int64_t ms)
{
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

/* ------------------------------------------------------------ channels */

static void conn_event(bgloop_event *ev, bool ok);

static void conn_watch(lookaside_client *c, la_backend *b)
{
    b->watch_pending = true;
    c->live_watches++;
    grpc_channel_watch_connectivity_state(b->channel, b->conn, deadline_in(CONN_WATCH_MS),
                                          bgloop_cq(c->loop), &b->conn_ev);
}

la_backend *client_backend_open(lookaside_client *c, la_service *svc, const char *addr,
                                bool fallback)
{
    la_backend *b = backend_new(addr);
    if (b == NULL)
        return NULL;
    b->svc = svc;
    b->is_fallback = fallback;
    bgloop_event_init(c->loop, &b->conn_ev, conn_event);
    char target[LA_ADDR_STRLEN + 8];
    const char *t = addr;
    if (!fallback) {
        snprintf(target, sizeof target, "%s:%s", addr[0] == '[' ? "ipv6" : "ipv4", addr);
        t = target;
    }
    b->channel = la_channel_open(&c->backend_cfg, t,
                                 fallback ? LA_CHAN_FALLBACK : LA_CHAN_BACKEND, 1000, 10000);
    if (b->channel == NULL) {
        backend_free(b);
        return NULL;
    }
    atomic_fetch_add(&c->open_channels, 1);
    b->conn = grpc_channel_check_connectivity_state(b->channel, 1);
    conn_watch(c, b);
    return b;
}

void client_backend_unlink(la_service *svc, la_backend *b)
{
    b->retired = true;
    b->next_retired = svc->unlinked;
    svc->unlinked = b;
}

/* Marks b down when its connection broke (left READY), up when it is READY
 * again; either change republishes the snapshot. */
static void backend_set_down(la_service *svc, la_backend *b, bool broke, bool ready)
{
    bool down = atomic_load(&b->down);
    if (broke && !down) {
        log_debug("client", "%s: connection lost; not picked until it is back", b->addr);
        atomic_store(&b->down, true);
        svc->dirty = true;
    } else if (ready && down) {
        atomic_store(&b->down, false);
        svc->dirty = true;
    }
}

void client_down_check(la_service *svc)
{
    if (!atomic_exchange(&svc->down_check, false))
        return;
    /* pick_done marked backends down from what their channels said then; a
     * channel that is READY again by now (its event may already have come)
     * comes back here. */
    for (size_t i = 0; i < svc->n; i++) {
        la_backend *b = svc->list[i];
        if (atomic_load(&b->down) && b->channel != NULL &&
            grpc_channel_check_connectivity_state(b->channel, 0) == GRPC_CHANNEL_READY)
            atomic_store(&b->down, false);
    }
    svc->dirty = true;
}

static void conn_event(bgloop_event *ev, bool ok)
{
    (void)ok;
    la_backend *b = (la_backend *)((char *)ev - offsetof(la_backend, conn_ev));
    la_service *svc = b->svc;
    lookaside_client *c = svc->c;
    b->watch_pending = false;
    c->live_watches--;
    if (b->retired || b->channel == NULL || c->tearing_down)
        return;
    grpc_connectivity_state s = grpc_channel_check_connectivity_state(b->channel, 0);
    if (s == GRPC_CHANNEL_IDLE) /* keep the connection warm: picks go direct */
        grpc_channel_check_connectivity_state(b->channel, 1);
    if (s != b->conn) {
        bool was_failed = conn_failed(b->conn), failed = conn_failed(s);
        log_debug("client", "%s: connectivity %d -> %d", b->addr, (int)b->conn, (int)s);
        grpc_connectivity_state was = b->conn;
        pthread_mutex_lock(&c->mu);
        b->conn = s;
        pthread_mutex_unlock(&c->mu);
        if (!b->is_fallback)
            backend_set_down(svc, b, was == GRPC_CHANNEL_READY && s != GRPC_CHANNEL_READY,
                             s == GRPC_CHANNEL_READY);
        if (failed && b->held) {
            client_drop_held(svc, b);
        } else if (!b->is_fallback) {
            if (failed && !was_failed &&
                atomic_fetch_add(&b->consec_fail, 1) + 1 >= c->ep.consecutive)
                atomic_store(&svc->eject_check, true);
            if (failed != was_failed)
                svc->dirty = true;
        }
    }
    conn_watch(c, b);
}

/* ------------------------------------------------------------ publishing */

static void update_info_locked(la_service *svc, const pick_snap *s)
{
    svc->pickable = s ? s->n : 0;
    svc->zone_local = s ? s->zone_local : false;
    svc->lists_published = svc->lists;
    if (s != NULL && !svc->ready) {
        svc->ready = true;
        pthread_cond_broadcast(&svc->c->cond);
    }
}

/* Builds and publishes the service's snapshot; retires the old one and the
 * backends unlinked since the last publish. */
void client_publish(la_service *svc)
{
    lookaside_client *c = svc->c;
    pick_snap *s = NULL;
    lookaside_status st;
    pthread_mutex_lock(&c->mu); /* pick_snap_build writes pickable flags */
    if (!svc->have_lb_list && svc->fallback != NULL)
        st = pick_snap_single(svc->fallback, &s);
    else
        st = pick_snap_build(svc->list, svc->n, &c->pp, &s);
    pthread_mutex_unlock(&c->mu);
    if (st != LOOKASIDE_OK) {
        log_warn("client", "%s: cannot build a pick table: %s (keeping the old one)", svc->name,
                 lookaside_status_str(st));
        return; /* still dirty: the next tick retries */
    }
    if (s == NULL && svc->n > 0)
        log_warn("client", "%s: nothing pickable among %zu backends", svc->name, svc->n);
    pick_snap *old = atomic_exchange_explicit(&svc->snap, s, memory_order_seq_cst);
    retired_add(&c->retired, old, svc->unlinked, ebr_retire_tag());
    svc->unlinked = NULL;
    svc->dirty = false;
    /* Only now: whoever wait_ready() wakes must find the snapshot. */
    pthread_mutex_lock(&c->mu);
    update_info_locked(svc, s);
    pthread_mutex_unlock(&c->mu);
}

/* Unreachable and idle: the channel goes (completing its connectivity
 * watch with SHUTDOWN). */
void client_backend_close(la_backend *b)
{
    grpc_channel_destroy(b->channel);
    b->channel = NULL;
    atomic_fetch_sub(&b->svc->c->open_channels, 1);
}
