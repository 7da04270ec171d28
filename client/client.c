/* client.c - lookaside_client: Watch streams, backend channels, snapshots.
 *
 * Threads. Application threads run lookaside_pick/pick_done (lock-free),
 * and watch/info/wait (short critical sections on c->mu). The background
 * thread (bgloop) owns everything else: it runs one Watch stream per
 * service, opens and closes backend channels, follows their connectivity,
 * decides ejections and builds and publishes pick snapshots. Fields the
 * info functions read are written by the background thread with c->mu held.
 *
 * Lifetimes. A backend leaves a service's list -> it is unlinked at once
 * (never picked again: the next snapshot lacks it), tagged with an ebr epoch
 * when that snapshot is published, and freed by retired_reclaim() (pick.c) once no pick can
 * still be reading an older snapshot (ebr) and its in-flight count is zero;
 * its channel is destroyed at that point, and the struct freed after its
 * connectivity watch has come back. */
#include "lookaside.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "backoff.h"
#include "bgloop.h"
#include "call.h"
#include "client_internal.h"
#include "ebr.h"
#include "log.h"
#include "lookaside/v1/lookaside.pb-c.h"
#include "pbio.h"
#include "pick.h"
#include "util.h"

#define WATCH_METHOD "/lookaside.v1.Balancer/Watch"
#define MAX_LIST_BYTES (16u << 20)
#define MAX_WEIGHT 1000000u
#define CONN_WATCH_MS 30000
#define FALLBACK_WARMUP_MS 5000
#define RECLAIM_POLL_MS 50

typedef struct la_service {
    /* Set before the service is published; read by pick. */
    char name[254];
    uint32_t pos_slot;
    lookaside_client *c;
    char *fallback_target;
    _Atomic(pick_snap *) snap;
    _Atomic bool eject_check; /* a backend reached the failure threshold */

    /* Background thread. */
    bool started;
    la_backend **list; /* current backends, sorted by addr [written under mu] */
    size_t n;
    la_backend *unlinked; /* left the list, not yet tagged (next publish) */
    la_call *watch;
    bool watch_got_msg;
    size_t lb_index;
    size_t round_fails;
    la_backoff backoff;
    int64_t retry_at_ms; /* 0: no retry pending */
    int64_t watch_since_ms;
    uint64_t streams;
    bool have_lb_list; /* a non-empty list came from the balancer */
    la_backend *fallback;
    la_backend *fallback_next; /* re-resolving replacement, warming up */
    int64_t fallback_refresh_ms;
    int64_t fallback_next_deadline_ms;
    int64_t eject_next_ms;
    bool dirty;
    bool unknown_logged;

    /* Under c->mu. */
    grpc_byte_buffer *injected; /* client_inject_list, not yet applied */
    lookaside_list_source source;
    uint64_t version;
    int64_t list_ms;
    uint32_t valid_for_ms;
    bool lb_connected;
    uint32_t pickable;
    bool zone_local;
    uint64_t lists;
    uint64_t reconnects;
    bool ready;
} la_service;

struct lookaside_client {
    char **lb_targets;
    size_t n_lb;
    grpc_channel **lb_ch; /* background thread, created lazily */
    char *zone;
    char *client_id;
    char *fallback_target;
    uint32_t connect_timeout_ms;
    uint32_t backoff_initial_ms;
    uint32_t backoff_max_ms;
    uint32_t fallback_refresh_ms;
    uint32_t max_services;
    pick_params pp;
    eject_params ep;

    la_service **services; /* append-only, max_services slots */
    _Atomic size_t n_services;

    pthread_mutex_t mu;
    pthread_cond_t cond;
    bgloop *loop;
    _Atomic bool stopping;

    _Atomic int open_channels;

    /* Background thread. */
    bool tearing_down;
    int live_calls;
    int live_watches;
    pick_retired retired;
};

static _Atomic uint32_t next_pos_slot;

const char *lookaside_version(void)
{
    return LOOKASIDE_VERSION;
}

const char *lookaside_list_source_str(lookaside_list_source s)
{
    switch (s) {
    case LOOKASIDE_SOURCE_NONE: return "none";
    case LOOKASIDE_SOURCE_LB: return "lb";
    case LOOKASIDE_SOURCE_FALLBACK_DNS: return "fallback-dns";
    case LOOKASIDE_SOURCE_RESTORED: return "restored";
    }
    return "unknown";
}

void lookaside_client_options_init(lookaside_client_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->connect_timeout_ms = 3000;
    opt->backoff_initial_ms = 1000;
    opt->backoff_max_ms = 30000;
    opt->eject_consecutive_failures = 5;
    opt->eject_base_ms = 30000;
    opt->eject_max_ms = 300000;
    opt->eject_max_percent = 10;
    opt->zone_min_healthy_percent = 50;
    opt->fallback_refresh_ms = 30000;
    opt->max_services = 64;
}

static gpr_timespec deadline_in(int64_t ms)
{
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

/* ------------------------------------------------------------ channels */

static grpc_channel *channel_open(const char *target, bool round_robin, uint32_t backoff_initial,
                                  uint32_t backoff_max)
{
    grpc_arg args[4];
    size_t n = 0;
    args[n].type = GRPC_ARG_INTEGER;
    args[n].key = GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS;
    args[n++].value.integer = (int)backoff_initial;
    args[n].type = GRPC_ARG_INTEGER;
    args[n].key = GRPC_ARG_MAX_RECONNECT_BACKOFF_MS;
    args[n++].value.integer = (int)backoff_max;
    if (round_robin) {
        args[n].type = GRPC_ARG_STRING;
        args[n].key = GRPC_ARG_LB_POLICY_NAME;
        args[n++].value.string = "round_robin";
        args[n].type = GRPC_ARG_STRING;
        args[n].key = GRPC_ARG_SERVICE_CONFIG;
        args[n++].value.string = "{\"loadBalancingConfig\":[{\"round_robin\":{}}]}";
    }
    grpc_channel_args ca = {n, args};
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    grpc_channel *ch = grpc_channel_create(target, creds, &ca);
    grpc_channel_credentials_release(creds);
    return ch;
}

static grpc_channel *lb_channel(lookaside_client *c, size_t i)
{
    if (c->lb_ch[i] == NULL)
        c->lb_ch[i] = channel_open(c->lb_targets[i], false, 1000, c->backoff_max_ms);
    return c->lb_ch[i];
}

static void conn_event(bgloop_event *ev, bool ok);

static void conn_watch(lookaside_client *c, la_backend *b)
{
    b->watch_pending = true;
    c->live_watches++;
    grpc_channel_watch_connectivity_state(b->channel, b->conn, deadline_in(CONN_WATCH_MS),
                                          bgloop_cq(c->loop), &b->conn_ev);
}

/* A backend with a channel told to connect at once. fallback: target is a
 * gRPC target for round_robin; else addr is a canonical "ip:port". */
static la_backend *backend_open(lookaside_client *c, la_service *svc, const char *addr,
                                bool fallback)
{
    la_backend *b = backend_new(addr);
    if (b == NULL)
        return NULL;
    b->svc = svc;
    b->is_fallback = fallback;
    b->conn_ev.fn = conn_event;
    char target[LA_ADDR_STRLEN + 8];
    const char *t = addr;
    if (!fallback) {
        snprintf(target, sizeof target, "%s:%s", addr[0] == '[' ? "ipv6" : "ipv4", addr);
        t = target;
    }
    b->channel = channel_open(t, fallback, 1000, 10000);
    if (b->channel == NULL) {
        backend_free(b);
        return NULL;
    }
    atomic_fetch_add(&c->open_channels, 1);
    b->conn = grpc_channel_check_connectivity_state(b->channel, 1);
    conn_watch(c, b);
    return b;
}

static void unlink_backend(la_service *svc, la_backend *b)
{
    b->retired = true;
    b->next_retired = svc->unlinked;
    svc->unlinked = b;
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
        pthread_mutex_lock(&c->mu);
        b->conn = s;
        pthread_mutex_unlock(&c->mu);
        if (!b->is_fallback) {
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
    if (s != NULL && !svc->ready) {
        svc->ready = true;
        pthread_cond_broadcast(&svc->c->cond);
    }
}

/* Builds and publishes the service's snapshot; retires the old one and the
 * backends unlinked since the last publish. */
static void publish(la_service *svc)
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
static void close_backend(la_backend *b)
{
    grpc_channel_destroy(b->channel);
    b->channel = NULL;
    atomic_fetch_sub(&b->svc->c->open_channels, 1);
}

/* ------------------------------------------------------------ lists */

struct entry {
    char addr[LA_ADDR_STRLEN];
    const Lookaside__V1__Backend *m;
};

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const struct entry *)a)->addr, ((const struct entry *)b)->addr);
}

static enum la_bstate map_state(Lookaside__V1__BackendState s)
{
    switch (s) {
    case LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_DRAINING: return LA_DRAINING;
    case LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_RESTORED: return LA_RESTORED;
    default: return LA_SERVING;
    }
}

static void set_fields(la_backend *b, const Lookaside__V1__Backend *m)
{
    b->weight = m->weight > MAX_WEIGHT ? MAX_WEIGHT : m->weight;
    b->state = map_state(m->state);
    snprintf(b->zone, sizeof b->zone, "%s", m->zone ? m->zone : "");
    snprintf(b->token, sizeof b->token, "%s", m->token ? m->token : "");
}

static void fallback_leave(la_service *svc)
{
    if (svc->fallback) {
        log_info("client", "%s: the balancer answered; leaving fallback", svc->name);
        unlink_backend(svc, svc->fallback);
        svc->fallback = NULL;
    }
    if (svc->fallback_next) {
        unlink_backend(svc, svc->fallback_next);
        svc->fallback_next = NULL;
    }
}

static void on_list(la_service *svc, const Lookaside__V1__ServerList *m, int64_t now)
{
    lookaside_client *c = svc->c;
    if (m->state == LOOKASIDE__V1__LIST_STATE__LIST_STATE_UNKNOWN_SERVICE && m->n_backends == 0 &&
        svc->n > 0) {
        if (!svc->unknown_logged)
            log_warn("client", "%s: balancer does not know the service; keeping the last list",
                     svc->name);
        svc->unknown_logged = true;
        return;
    }
    svc->unknown_logged = false;
    struct entry *e = calloc(m->n_backends ? m->n_backends : 1, sizeof *e);
    la_backend **list = calloc(m->n_backends ? m->n_backends : 1, sizeof *list);
    if (e == NULL || list == NULL) {
        free(e);
        free(list);
        log_error("client", "%s: out of memory for a list of %zu", svc->name, m->n_backends);
        return;
    }
    size_t ne = 0;
    for (size_t i = 0; i < m->n_backends; i++) {
        la_addr a;
        if (m->backends[i] == NULL || addr_parse(m->backends[i]->address, &a) != LOOKASIDE_OK) {
            log_warn("client", "%s: skipping backend with bad address", svc->name);
            continue;
        }
        addr_format(&a, e[ne].addr, sizeof e[ne].addr);
        e[ne++].m = m->backends[i];
    }
    qsort(e, ne, sizeof *e, cmp_entry);
    /* Merge the sorted entries with the sorted current list. */
    size_t nl = 0, j = 0;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < ne; i++) {
        if (nl > 0 && strcmp(list[nl - 1]->addr, e[i].addr) == 0)
            continue; /* duplicate address: first wins */
        while (j < svc->n && strcmp(svc->list[j]->addr, e[i].addr) < 0)
            unlink_backend(svc, svc->list[j++]);
        la_backend *b = NULL;
        if (j < svc->n && strcmp(svc->list[j]->addr, e[i].addr) == 0) {
            b = svc->list[j++];
        } else {
            b = backend_open(c, svc, e[i].addr, false);
            if (b == NULL) {
                log_error("client", "%s: cannot open a channel to %s", svc->name, e[i].addr);
                continue;
            }
            log_info("client", "%s: backend %s added", svc->name, e[i].addr);
        }
        set_fields(b, e[i].m);
        list[nl++] = b;
    }
    while (j < svc->n) {
        log_info("client", "%s: backend %s removed", svc->name, svc->list[j]->addr);
        unlink_backend(svc, svc->list[j++]);
    }
    free(svc->list);
    svc->list = list;
    svc->n = nl;
    svc->source = m->state == LOOKASIDE__V1__LIST_STATE__LIST_STATE_RESTORED
                      ? LOOKASIDE_SOURCE_RESTORED
                      : LOOKASIDE_SOURCE_LB;
    svc->version = m->version;
    svc->list_ms = now;
    svc->valid_for_ms = m->valid_for_ms;
    svc->lists++;
    pthread_mutex_unlock(&c->mu);
    free(e);
    if (nl > 0) {
        svc->have_lb_list = true;
        fallback_leave(svc);
    }
    svc->dirty = true;
}

/* ------------------------------------------------------------ watch */

static void apply_list(la_service *svc, grpc_byte_buffer *bb)
{
    ProtobufCMessage *msg = NULL;
    lookaside_status st =
        pbio_unpack(&lookaside__v1__server_list__descriptor, bb, MAX_LIST_BYTES, &msg);
    if (st != LOOKASIDE_OK) {
        log_warn("client", "%s: bad ServerList: %s", svc->name, lookaside_status_str(st));
        return;
    }
    on_list(svc, (const Lookaside__V1__ServerList *)msg, clock_mono_ms());
    protobuf_c_message_free_unpacked(msg, NULL);
}

static void watch_on_recv(void *owner, la_call *call, grpc_byte_buffer *bb)
{
    (void)call;
    la_service *svc = owner;
    if (bb == NULL)
        return; /* on_status follows */
    if (!svc->watch_got_msg) {
        svc->watch_got_msg = true;
        backoff_reset(&svc->backoff);
        svc->round_fails = 0;
        pthread_mutex_lock(&svc->c->mu);
        svc->lb_connected = true;
        pthread_mutex_unlock(&svc->c->mu);
    }
    apply_list(svc, bb);
}

static void watch_failed(la_service *svc, int64_t now)
{
    lookaside_client *c = svc->c;
    svc->lb_index = (svc->lb_index + 1) % c->n_lb;
    if (++svc->round_fails < c->n_lb) {
        svc->retry_at_ms = now; /* try the next balancer at once */
    } else {
        svc->round_fails = 0;
        svc->retry_at_ms = now + backoff_next(&svc->backoff);
    }
}

static void watch_on_status(void *owner, la_call *call, grpc_status_code code, const char *details)
{
    la_service *svc = owner;
    lookaside_client *c = svc->c;
    la_call_release(call);
    svc->watch = NULL;
    pthread_mutex_lock(&c->mu);
    svc->lb_connected = false;
    pthread_mutex_unlock(&c->mu);
    if (c->tearing_down)
        return;
    int64_t now = clock_mono_ms();
    if (svc->watch_got_msg) {
        log_warn("client", "%s: watch stream to %s ended (%d: %s); keeping the last list",
                 svc->name, c->lb_targets[svc->lb_index], (int)code, details);
        svc->retry_at_ms = now + backoff_next(&svc->backoff);
    } else {
        log_debug("client", "%s: watch on %s failed (%d: %s)", svc->name,
                  c->lb_targets[svc->lb_index], (int)code, details);
        watch_failed(svc, now);
    }
}

static const la_call_handler watch_handler = {
    .on_recv = watch_on_recv,
    .on_sent = NULL,
    .on_status = watch_on_status,
};

static void watch_start(la_service *svc, int64_t now)
{
    lookaside_client *c = svc->c;
    svc->retry_at_ms = 0;
    Lookaside__V1__WatchRequest req = LOOKASIDE__V1__WATCH_REQUEST__INIT;
    req.service = svc->name;
    req.client_zone = c->zone ? c->zone : "";
    req.client_id = c->client_id;
    grpc_channel *ch = lb_channel(c, svc->lb_index);
    lookaside_status st = LOOKASIDE_ENOMEM;
    if (ch != NULL)
        st = la_call_start(ch, bgloop_cq(c->loop), WATCH_METHOD, &req.base, true, &watch_handler,
                           svc, &c->live_calls, &svc->watch);
    if (st != LOOKASIDE_OK) {
        svc->watch = NULL;
        log_warn("client", "%s: cannot start a watch: %s", svc->name, lookaside_status_str(st));
        watch_failed(svc, now);
        return;
    }
    svc->watch_got_msg = false;
    if (svc->streams++ > 0) {
        pthread_mutex_lock(&c->mu);
        svc->reconnects++;
        pthread_mutex_unlock(&c->mu);
    }
}

/* ------------------------------------------------------------ fallback */

static void fallback_tick(la_service *svc, int64_t now, int64_t *next)
{
    lookaside_client *c = svc->c;
    if (svc->have_lb_list || svc->fallback_target == NULL)
        return;
    if (svc->fallback == NULL) {
        int64_t at = svc->watch_since_ms + c->connect_timeout_ms;
        if (now < at) {
            if (at < *next)
                *next = at;
            return;
        }
        svc->fallback = backend_open(c, svc, svc->fallback_target, true);
        if (svc->fallback == NULL) {
            log_error("client", "%s: cannot open the fallback channel to %s", svc->name,
                      svc->fallback_target);
            if (now + 1000 < *next)
                *next = now + 1000;
            return;
        }
        log_warn("client", "%s: no list from the balancer within %u ms; falling back to %s",
                 svc->name, c->connect_timeout_ms, svc->fallback_target);
        svc->fallback_refresh_ms = now + c->fallback_refresh_ms;
        pthread_mutex_lock(&c->mu);
        svc->source = LOOKASIDE_SOURCE_FALLBACK_DNS;
        svc->version = 0;
        svc->list_ms = now;
        svc->valid_for_ms = 0;
        pthread_mutex_unlock(&c->mu);
        svc->dirty = true;
        return;
    }
    /* Re-create the channel now and then: gRPC's DNS resolver would only
     * re-resolve on connection failures. The new one takes over once ready. */
    if (svc->fallback_next == NULL && now >= svc->fallback_refresh_ms) {
        svc->fallback_next = backend_open(c, svc, svc->fallback_target, true);
        svc->fallback_next_deadline_ms = now + FALLBACK_WARMUP_MS;
        if (svc->fallback_next == NULL)
            svc->fallback_refresh_ms = now + c->fallback_refresh_ms;
    }
    if (svc->fallback_next != NULL) {
        if (svc->fallback_next->conn == GRPC_CHANNEL_READY ||
            now >= svc->fallback_next_deadline_ms) {
            unlink_backend(svc, svc->fallback);
            svc->fallback = svc->fallback_next;
            svc->fallback_next = NULL;
            svc->fallback_refresh_ms = now + c->fallback_refresh_ms;
            pthread_mutex_lock(&c->mu);
            svc->list_ms = now;
            pthread_mutex_unlock(&c->mu);
            svc->dirty = true;
        } else if (svc->fallback_next_deadline_ms < *next) {
            *next = svc->fallback_next_deadline_ms;
        }
    }
    if (svc->fallback_next == NULL && svc->fallback_refresh_ms < *next)
        *next = svc->fallback_refresh_ms;
}

/* ------------------------------------------------------------ loop */

static void service_tick(la_service *svc, int64_t now, int64_t *next)
{
    lookaside_client *c = svc->c;
    if (!svc->started) {
        svc->started = true;
        svc->watch_since_ms = now;
        svc->retry_at_ms = now;
        backoff_init(&svc->backoff, c->backoff_initial_ms, c->backoff_max_ms, svc->pos_slot);
    }
    pthread_mutex_lock(&c->mu);
    grpc_byte_buffer *inj = svc->injected;
    svc->injected = NULL;
    pthread_mutex_unlock(&c->mu);
    if (inj != NULL) {
        apply_list(svc, inj);
        grpc_byte_buffer_destroy(inj);
    }
    if (svc->watch == NULL && svc->retry_at_ms != 0 && now >= svc->retry_at_ms)
        watch_start(svc, now);
    if (svc->watch == NULL && svc->retry_at_ms != 0 && svc->retry_at_ms < *next)
        *next = svc->retry_at_ms;
    fallback_tick(svc, now, next);
    if (atomic_exchange(&svc->eject_check, false) ||
        (svc->eject_next_ms != 0 && now >= svc->eject_next_ms)) {
        int64_t en = INT64_MAX;
        pthread_mutex_lock(&c->mu);
        bool changed = eject_update(svc->list, svc->n, &c->ep, now, &en);
        pthread_mutex_unlock(&c->mu);
        svc->eject_next_ms = en == INT64_MAX ? 0 : en;
        if (changed)
            svc->dirty = true;
    }
    if (svc->eject_next_ms != 0 && svc->eject_next_ms < *next)
        *next = svc->eject_next_ms;
    if (svc->dirty)
        publish(svc);
    if (svc->dirty && now + 100 < *next) /* publish failed: retry */
        *next = now + 100;
}

static int64_t teardown_tick(lookaside_client *c, int64_t now)
{
    size_t n = atomic_load(&c->n_services);
    if (!c->tearing_down) {
        c->tearing_down = true;
        for (size_t i = 0; i < n; i++) {
            la_service *svc = c->services[i];
            la_call_release(svc->watch);
            svc->watch = NULL;
            pthread_mutex_lock(&c->mu);
            for (size_t j = 0; j < svc->n; j++)
                unlink_backend(svc, svc->list[j]);
            svc->n = 0;
            pthread_mutex_unlock(&c->mu);
            if (svc->fallback)
                unlink_backend(svc, svc->fallback);
            if (svc->fallback_next)
                unlink_backend(svc, svc->fallback_next);
            svc->fallback = svc->fallback_next = NULL;
            pick_snap *old = atomic_exchange(&svc->snap, NULL);
            retired_add(&c->retired, old, svc->unlinked, ebr_retire_tag());
            svc->unlinked = NULL;
        }
        for (size_t i = 0; i < c->n_lb; i++) {
            if (c->lb_ch[i])
                grpc_channel_destroy(c->lb_ch[i]);
            c->lb_ch[i] = NULL;
        }
    }
    bool pending = retired_reclaim(&c->retired, true, close_backend);
    if (!pending && c->live_calls == 0 && c->live_watches == 0)
        return -1;
    return now + 20;
}

static int64_t client_tick(void *arg, int64_t now)
{
    lookaside_client *c = arg;
    if (atomic_load(&c->stopping))
        return teardown_tick(c, now);
    int64_t next = now + 1000;
    size_t n = atomic_load_explicit(&c->n_services, memory_order_acquire);
    for (size_t i = 0; i < n; i++)
        service_tick(c->services[i], now, &next);
    if (retired_reclaim(&c->retired, false, close_backend) && now + RECLAIM_POLL_MS < next)
        next = now + RECLAIM_POLL_MS;
    return next;
}

/* ------------------------------------------------------------ public API */

static char *dup_or_null(const char *s)
{
    return s && s[0] ? strdup(s) : NULL;
}

static void client_free(lookaside_client *c)
{
    size_t n = atomic_load(&c->n_services);
    for (size_t i = 0; i < n; i++) {
        la_service *svc = c->services[i];
        if (svc->injected)
            grpc_byte_buffer_destroy(svc->injected);
        free(svc->list);
        free(svc->fallback_target);
        free(svc);
    }
    free(c->services);
    for (size_t i = 0; i < c->n_lb; i++)
        free(c->lb_targets[i]);
    free(c->lb_targets);
    free(c->lb_ch);
    free(c->zone);
    free(c->client_id);
    free(c->fallback_target);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Splits "a,b, c" into trimmed, non-empty targets. */
static lookaside_status split_targets(const char *s, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (s == NULL)
        return LOOKASIDE_EINVAL;
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    char **v = calloc(cap, sizeof *v);
    if (v == NULL)
        return LOOKASIDE_ENOMEM;
    size_t k = 0;
    const char *p = s;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len == 0 || (v[k] = strndup(p, len)) == NULL) {
            lookaside_status st = len == 0 ? LOOKASIDE_EINVAL : LOOKASIDE_ENOMEM;
            for (size_t i = 0; i < k; i++)
                free(v[i]);
            free(v);
            return st;
        }
        k++;
        if (end == NULL)
            break;
        p = end + 1;
    }
    *out = v;
    *n = k;
    return LOOKASIDE_OK;
}

#define OR_DEFAULT(v, d) ((v) ? (v) : (d))

lookaside_status lookaside_client_create(const lookaside_client_options *opt,
                                         lookaside_client **out)
{
    if (out == NULL)
        return LOOKASIDE_EINVAL;
    *out = NULL;
    if (opt == NULL || opt->lb_target == NULL || (opt->zone && !zone_valid(opt->zone)) ||
        (opt->client_id && strlen(opt->client_id) > 128))
        return LOOKASIDE_EINVAL;
    lookaside_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return LOOKASIDE_ENOMEM;
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cond, &ca);
    pthread_condattr_destroy(&ca);
    lookaside_status st = split_targets(opt->lb_target, &c->lb_targets, &c->n_lb);
    if (st != LOOKASIDE_OK) {
        client_free(c);
        return st;
    }
    c->connect_timeout_ms = OR_DEFAULT(opt->connect_timeout_ms, 3000);
    c->backoff_initial_ms = OR_DEFAULT(opt->backoff_initial_ms, 1000);
    c->backoff_max_ms = OR_DEFAULT(opt->backoff_max_ms, 30000);
    c->fallback_refresh_ms = OR_DEFAULT(opt->fallback_refresh_ms, 30000);
    c->max_services = OR_DEFAULT(opt->max_services, 64);
    c->ep.consecutive = OR_DEFAULT(opt->eject_consecutive_failures, 5);
    c->ep.base_ms = OR_DEFAULT(opt->eject_base_ms, 30000);
    c->ep.max_ms = OR_DEFAULT(opt->eject_max_ms, 300000);
    c->ep.max_percent = OR_DEFAULT(opt->eject_max_percent, 10);
    c->zone = dup_or_null(opt->zone);
    c->fallback_target = dup_or_null(opt->fallback_target);
    char idbuf[64];
    snprintf(idbuf, sizeof idbuf, "lookaside-client/%ld", (long)getpid());
    c->client_id = strdup(opt->client_id && opt->client_id[0] ? opt->client_id : idbuf);
    c->pp.zone = c->zone;
    c->pp.zone_affinity = !opt->zone_affinity_off;
    c->pp.zone_min_healthy_percent = OR_DEFAULT(opt->zone_min_healthy_percent, 50);
    c->lb_ch = calloc(c->n_lb, sizeof *c->lb_ch);
    c->services = calloc(c->max_services, sizeof *c->services);
    if (c->client_id == NULL || c->lb_ch == NULL || c->services == NULL ||
        (opt->zone && opt->zone[0] && c->zone == NULL) ||
        (opt->fallback_target && opt->fallback_target[0] && c->fallback_target == NULL)) {
        client_free(c);
        return LOOKASIDE_ENOMEM;
    }
    grpc_init();
    st = bgloop_start("lookaside-cli", client_tick, c, &c->loop);
    if (st != LOOKASIDE_OK) {
        client_free(c);
        grpc_shutdown();
        return st;
    }
    *out = c;
    return LOOKASIDE_OK;
}

static la_service *find_service(lookaside_client *c, const char *name)
{
    size_t n = atomic_load_explicit(&c->n_services, memory_order_acquire);
    for (size_t i = 0; i < n; i++)
        if (strcmp(c->services[i]->name, name) == 0)
            return c->services[i];
    return NULL;
}

lookaside_status lookaside_client_watch(lookaside_client *c, const char *service,
                                        const char *fallback_target)
{
    if (c == NULL || !name_valid(service))
        return LOOKASIDE_EINVAL;
    if (atomic_load(&c->stopping))
        return LOOKASIDE_ESHUTDOWN;
    pthread_mutex_lock(&c->mu);
    size_t n = atomic_load(&c->n_services);
    if (find_service(c, service) != NULL) {
        pthread_mutex_unlock(&c->mu);
        return LOOKASIDE_OK;
    }
    if (n >= c->max_services) {
        pthread_mutex_unlock(&c->mu);
        return LOOKASIDE_ELIMIT;
    }
    la_service *svc = calloc(1, sizeof *svc);
    const char *fb = fallback_target && fallback_target[0] ? fallback_target : c->fallback_target;
    if (svc == NULL || (fb && (svc->fallback_target = strdup(fb)) == NULL)) {
        pthread_mutex_unlock(&c->mu);
        free(svc);
        return LOOKASIDE_ENOMEM;
    }
    snprintf(svc->name, sizeof svc->name, "%s", service);
    svc->c = c;
    svc->pos_slot = atomic_fetch_add(&next_pos_slot, 1) % EBR_POS_SLOTS;
    atomic_init(&svc->snap, NULL);
    c->services[n] = svc;
    atomic_store_explicit(&c->n_services, n + 1, memory_order_release);
    pthread_mutex_unlock(&c->mu);
    bgloop_wake(c->loop);
    return LOOKASIDE_OK;
}

lookaside_status lookaside_client_wait_ready(lookaside_client *c, const char *service,
                                             uint32_t timeout_ms)
{
    if (c == NULL || service == NULL)
        return LOOKASIDE_EINVAL;
    la_service *svc = find_service(c, service);
    if (svc == NULL)
        return LOOKASIDE_ENOTFOUND;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    lookaside_status st = LOOKASIDE_OK;
    pthread_mutex_lock(&c->mu);
    while (!svc->ready) {
        if (pthread_cond_timedwait(&c->cond, &c->mu, &ts) != 0 && !svc->ready) {
            st = LOOKASIDE_ETIMEOUT;
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return st;
}

lookaside_status lookaside_pick(lookaside_client *c, const char *service,
                                struct lookaside_pick *out)
{
    if (c == NULL || service == NULL || out == NULL)
        return LOOKASIDE_EINVAL;
    la_service *svc = find_service(c, service);
    if (svc == NULL)
        return LOOKASIDE_ENOTFOUND;
    struct ebr_rec *r = ebr_enter();
    pick_snap *s = atomic_load_explicit(&svc->snap, memory_order_seq_cst);
    if (s == NULL) {
        ebr_exit(r);
        return LOOKASIDE_EUNAVAIL;
    }
    la_backend *b = pick_next(s, &r->pos[svc->pos_slot]);
    pick_count(b, r);
    ebr_exit(r);
    /* b stays alive past the section: it is counted in flight. */
    out->channel = b->channel;
    out->address = b->is_fallback ? svc->fallback_target : b->addr;
    out->internal_ = b;
    return LOOKASIDE_OK;
}

void lookaside_pick_done(lookaside_client *c, struct lookaside_pick *pick,
                         grpc_status_code status, int64_t latency_us)
{
    if (c == NULL || pick == NULL || pick->internal_ == NULL)
        return;
    la_backend *b = pick->internal_;
    pick->internal_ = NULL;
    pick->channel = NULL;
    pick->address = NULL;
    struct la_stripe *st = &b->stripes[ebr_thread()->index % LA_STRIPES];
    bool wake = false;
    /* Statistics: load + store, not a locked add. A stripe is shared only by
     * threads with the same index modulo LA_STRIPES, where a rare lost
     * increment is an acceptable price for half the cost of pick_done. */
    atomic_store_explicit(&st->calls, atomic_load_explicit(&st->calls, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    if (latency_us > 0)
        atomic_store_explicit(
            &st->latency_us,
            atomic_load_explicit(&st->latency_us, memory_order_relaxed) + (uint64_t)latency_us,
            memory_order_relaxed);
    if (status == GRPC_STATUS_UNAVAILABLE) {
        atomic_fetch_add_explicit(&st->failures, 1, memory_order_relaxed);
        if (!b->is_fallback &&
            atomic_fetch_add_explicit(&b->consec_fail, 1, memory_order_relaxed) + 1 ==
                c->ep.consecutive) {
            atomic_store(&b->svc->eject_check, true);
            wake = true;
        }
    } else if (atomic_load_explicit(&b->consec_fail, memory_order_relaxed) != 0) {
        atomic_store_explicit(&b->consec_fail, 0, memory_order_relaxed);
    }
    /* The last touch of b: after this the background thread may free it. */
    atomic_fetch_sub_explicit(&st->in_flight, 1, memory_order_release);
    if (wake)
        bgloop_wake(c->loop);
}

lookaside_status lookaside_client_service_info(lookaside_client *c, const char *service,
                                               lookaside_service_info *out)
{
    if (c == NULL || service == NULL || out == NULL)
        return LOOKASIDE_EINVAL;
    la_service *svc = find_service(c, service);
    if (svc == NULL)
        return LOOKASIDE_ENOTFOUND;
    memset(out, 0, sizeof *out);
    int64_t now = clock_mono_ms();
    pthread_mutex_lock(&c->mu);
    out->source = svc->source;
    out->version = svc->version;
    out->age_ms = svc->source == LOOKASIDE_SOURCE_NONE ? -1 : now - svc->list_ms;
    out->valid_for_ms = svc->valid_for_ms;
    out->stale = svc->valid_for_ms > 0 && out->age_ms > (int64_t)svc->valid_for_ms;
    out->lb_connected = svc->lb_connected;
    out->backends = (uint32_t)svc->n;
    out->pickable = svc->pickable;
    for (size_t i = 0; i < svc->n; i++)
        out->ejected += svc->list[i]->ejected;
    out->zone_local = svc->zone_local;
    out->lists_received = svc->lists;
    out->reconnects = svc->reconnects;
    pthread_mutex_unlock(&c->mu);
    return LOOKASIDE_OK;
}

static void fill_backend_info(la_backend *b, lookaside_backend_info *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->address, sizeof o->address, "%s", b->addr);
    snprintf(o->zone, sizeof o->zone, "%s", b->zone);
    snprintf(o->token, sizeof o->token, "%s", b->token);
    o->weight = b->weight;
    o->draining = b->state == LA_DRAINING;
    o->ejected = b->ejected;
    o->pickable = b->pickable;
    o->connectivity = b->conn;
    o->in_flight = backend_in_flight(b);
    backend_totals(b, &o->calls, &o->failures, &o->latency_us_total);
}

lookaside_status lookaside_client_backends(lookaside_client *c, const char *service,
                                           lookaside_backend_info *out, size_t cap, size_t *n)
{
    if (c == NULL || service == NULL || n == NULL || (cap > 0 && out == NULL))
        return LOOKASIDE_EINVAL;
    la_service *svc = find_service(c, service);
    if (svc == NULL)
        return LOOKASIDE_ENOTFOUND;
    pthread_mutex_lock(&c->mu);
    size_t k = 0;
    for (size_t i = 0; i < svc->n; i++, k++)
        if (k < cap)
            fill_backend_info(svc->list[i], &out[k]);
    /* The fallback channel is read by the loop thread only while it may be
     * swapped; report it through the service source instead. */
    *n = k;
    pthread_mutex_unlock(&c->mu);
    return LOOKASIDE_OK;
}

void lookaside_client_destroy(lookaside_client *c)
{
    if (c == NULL)
        return;
    atomic_store(&c->stopping, true);
    bgloop_wake(c->loop);
    bgloop_join(c->loop);
    client_free(c);
    grpc_shutdown();
}

/* ------------------------------------------------------------ internal */

lookaside_status client_inject_list(lookaside_client *c, const char *service,
                                    const client_test_backend *b, size_t n, uint64_t version)
{
    la_service *svc = find_service(c, service);
    if (svc == NULL)
        return LOOKASIDE_ENOTFOUND;
    Lookaside__V1__Backend *mb = calloc(n ? n : 1, sizeof *mb);
    Lookaside__V1__Backend **mp = calloc(n ? n : 1, sizeof *mp);
    if (mb == NULL || mp == NULL) {
        free(mb);
        free(mp);
        return LOOKASIDE_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        lookaside__v1__backend__init(&mb[i]);
        mb[i].address = (char *)b[i].address;
        mb[i].weight = b[i].weight;
        mb[i].zone = (char *)(b[i].zone ? b[i].zone : "");
        mb[i].state = b[i].draining ? LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_DRAINING
                                    : LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_SERVING;
        mp[i] = &mb[i];
    }
    Lookaside__V1__ServerList m = LOOKASIDE__V1__SERVER_LIST__INIT;
    m.service = svc->name;
    m.version = version;
    m.n_backends = n;
    m.backends = mp;
    m.state = LOOKASIDE__V1__LIST_STATE__LIST_STATE_LIVE;
    m.valid_for_ms = 60000;
    grpc_byte_buffer *bb = pbio_pack(&m.base);
    free(mb);
    free(mp);
    if (bb == NULL)
        return LOOKASIDE_ENOMEM;
    pthread_mutex_lock(&c->mu);
    if (svc->injected)
        grpc_byte_buffer_destroy(svc->injected);
    svc->injected = bb;
    pthread_mutex_unlock(&c->mu);
    bgloop_wake(c->loop);
    return LOOKASIDE_OK;
}

int client_open_channels(lookaside_client *c)
{
    return atomic_load(&c->open_channels);
}

uint64_t client_lists_applied(lookaside_client *c, const char *service)
{
    la_service *svc = find_service(c, service);
    if (svc == NULL)
        return 0;
    pthread_mutex_lock(&c->mu);
    uint64_t n = svc->lists;
    pthread_mutex_unlock(&c->mu);
    return n;
}
