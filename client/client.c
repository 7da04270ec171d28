/* client.c - lookaside_client: the public API and the loop's tick. See
 * client_priv.h for how the client's files divide the work.
 *
 * Threads. Application threads run lookaside_pick/pick_done (lock-free),
 * and watch/info/wait (short critical sections on c->mu). The background
 * thread (bgloop) owns everything else: it runs one Watch stream per
 * service, opens and closes backend channels, follows their connectivity,
 * decides ejections and builds and publishes pick snapshots. Fields the
 * info functions read are written by the background thread with c->mu held.
 * The background thread never waits inside gRPC (it would end up doing the
 * application's calls' I/O, see bgloop.h); each tick tells the loop whether
 * the application is making calls (service_active), i.e. whether its own
 * threads are polling.
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

#include "abi_compat.h"
#include "client_priv.h"
#include "ebr.h"
#include "log.h"
#include "util.h"

static _Atomic uint32_t next_pos_slot;

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

void lookaside_client_options_init_sized(lookaside_client_options *opt, size_t size)
{
    if (opt == NULL)
        return;
    lookaside_client_options o;
    memset(&o, 0, sizeof o);
    o.connect_timeout_ms = 3000;
    o.backoff_initial_ms = 100;
    o.backoff_max_ms = 1000;
    o.eject_consecutive_failures = 5;
    o.eject_base_ms = 30000;
    o.eject_max_ms = 300000;
    o.eject_max_percent = 10;
    o.zone_min_healthy_percent = 50;
    o.fallback_refresh_ms = 30000;
    o.max_services = 64;
    la_abi_out(opt, size, &o, sizeof o);
}

void(lookaside_client_options_init)(lookaside_client_options *opt)
{
    lookaside_client_options_init_sized(opt, LA_CLIENT_OPTIONS_V0);
}

/* ------------------------------------------------------------ loop */

static void service_tick(la_service *svc, int64_t now, int64_t *next)
{
    lookaside_client *c = svc->c;
    if (!svc->started) {
        svc->started = true;
        svc->watch_since_ms = now;
        lbretry_init(&svc->retry, &c->lb, svc->pos_slot, now);
    }
    pthread_mutex_lock(&c->mu);
    grpc_byte_buffer *inj = svc->injected;
    svc->injected = NULL;
    pthread_mutex_unlock(&c->mu);
    if (inj != NULL) {
        client_apply_list(svc, inj);
        grpc_byte_buffer_destroy(inj);
    }
    int64_t retry = svc->retry.retry_at_ms;
    if (svc->watch == NULL && retry != 0 && now >= retry)
        client_watch_start(svc);
    retry = svc->retry.retry_at_ms;
    if (svc->watch == NULL && retry != 0 && retry < *next)
        *next = retry;
    client_fallback_tick(svc, now, next);
    client_down_check(svc);
    bool window = false;
    if (c->ep.fp_threshold != 0 && now >= svc->fp_window_end_ms) {
        window = svc->fp_window_end_ms != 0;
        svc->fp_window_end_ms = now + c->ep.fp_interval_ms;
    }
    if (c->ep.fp_threshold != 0 && svc->fp_window_end_ms < *next)
        *next = svc->fp_window_end_ms;
    if (window || atomic_exchange(&svc->eject_check, false) ||
        (svc->eject_next_ms != 0 && now >= svc->eject_next_ms)) {
        int64_t en = INT64_MAX;
        pthread_mutex_lock(&c->mu);
        if (window)
            eject_window(svc->list, svc->n, &c->ep);
        bool changed = eject_update(svc->list, svc->n, &c->ep, now, &en);
        pthread_mutex_unlock(&c->mu);
        svc->eject_next_ms = en == INT64_MAX ? 0 : en;
        if (changed)
            svc->dirty = true;
    }
    if (svc->eject_next_ms != 0 && svc->eject_next_ms < *next)
        *next = svc->eject_next_ms;
    if (svc->dirty)
        client_publish(svc);
    if (svc->dirty && now + 100 < *next) /* publish failed: retry */
        *next = now + 100;
}

/* Whether the application is making calls through svc: picks in flight now
 * or picks done since the last look (bgloop.h: then its threads poll, and
 * the loop must not). Reads the counters pick/pick_done write, nothing more. */
static bool service_active(la_service *svc)
{
    uint64_t calls = 0;
    int64_t in_flight = 0;
    la_backend *extra[2] = {svc->fallback, svc->fallback_next};
    for (size_t i = 0; i < svc->n + 2; i++) {
        la_backend *b = i < svc->n ? svc->list[i] : extra[i - svc->n];
        if (b == NULL)
            continue;
        for (int k = 0; k < LA_STRIPES; k++) {
            calls += atomic_load_explicit(&b->stripes[k].calls, memory_order_relaxed);
            in_flight += atomic_load_explicit(&b->stripes[k].in_flight, memory_order_relaxed);
        }
    }
    bool active = in_flight != 0 || calls != svc->calls_seen;
    svc->calls_seen = calls;
    return active;
}

static int64_t teardown_tick(lookaside_client *c, int64_t now, bgloop_io *io)
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
                client_backend_unlink(svc, svc->list[j]);
            svc->n = 0;
            pthread_mutex_unlock(&c->mu);
            if (svc->fallback)
                client_backend_unlink(svc, svc->fallback);
            if (svc->fallback_next)
                client_backend_unlink(svc, svc->fallback_next);
            svc->fallback = svc->fallback_next = NULL;
            pick_snap *old = atomic_exchange(&svc->snap, NULL);
            retired_add(&c->retired, old, svc->unlinked, ebr_retire_tag());
            svc->unlinked = NULL;
        }
        lbconn_close_channels(&c->lb);
    }
    bool pending = retired_reclaim(&c->retired, true, client_backend_close);
    if (!pending && c->live_calls == 0 && c->live_watches == 0)
        return -1;
    /* Cancelled streams and closed channels still complete on the queue;
     * nobody else may be polling by now. */
    *io = BGLOOP_IO_IDLE;
    return now + 20;
}

static int64_t client_tick(void *arg, int64_t now, bgloop_io *io)
{
    lookaside_client *c = arg;
    if (atomic_load(&c->stopping))
        return teardown_tick(c, now, io);
    int64_t next = now + 1000;
    size_t n = atomic_load_explicit(&c->n_services, memory_order_acquire);
    bool active = false;
    for (size_t i = 0; i < n; i++) {
        service_tick(c->services[i], now, &next);
        active |= service_active(c->services[i]);
    }
    if (c->live_calls > 0 || c->live_watches > 0)
        *io = active ? BGLOOP_IO_BUSY : BGLOOP_IO_IDLE;
    if (retired_reclaim(&c->retired, false, client_backend_close) && now + RECLAIM_POLL_MS < next)
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
    lbconn_free(&c->lb);
    free(c->zone);
    free(c->client_id);
    free(c->fallback_target);
    la_chan_cfg_free(&c->backend_cfg);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->mu);
    free(c);
}


#define OR_DEFAULT(v, d) ((v) ? (v) : (d))

lookaside_status(lookaside_client_create)(const lookaside_client_options *opt,
                                          lookaside_client **out)
{
    return lookaside_client_create_sized(opt, LA_CLIENT_OPTIONS_V0, out);
}

lookaside_status lookaside_client_create_sized(const lookaside_client_options *opt_in,
                                               size_t size, lookaside_client **out)
{
    if (out == NULL)
        return LOOKASIDE_EINVAL;
    *out = NULL;
    if (opt_in == NULL || size < LA_CLIENT_OPTIONS_V0)
        return LOOKASIDE_EINVAL;
    lookaside_client_options full;
    la_abi_in(&full, sizeof full, opt_in, size);
    const lookaside_client_options *opt = &full;
    if (opt->lb_target == NULL || (opt->zone && !zone_valid(opt->zone)) ||
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
    c->connect_timeout_ms = OR_DEFAULT(opt->connect_timeout_ms, 3000);
    c->fallback_refresh_ms = OR_DEFAULT(opt->fallback_refresh_ms, 30000);
    c->max_services = OR_DEFAULT(opt->max_services, 64);
    c->ep.consecutive = OR_DEFAULT(opt->eject_consecutive_failures, 5);
    c->ep.base_ms = OR_DEFAULT(opt->eject_base_ms, 30000);
    c->ep.max_ms = OR_DEFAULT(opt->eject_max_ms, 300000);
    c->ep.max_percent = OR_DEFAULT(opt->eject_max_percent, 10);
    c->ep.fp_threshold = EJECT_FP_THRESHOLD;
    c->ep.fp_min_volume = EJECT_FP_MIN_VOLUME;
    c->ep.fp_interval_ms = EJECT_FP_INTERVAL_MS;
    c->zone = dup_or_null(opt->zone);
    c->fallback_target = dup_or_null(opt->fallback_target);
    char idbuf[64];
    snprintf(idbuf, sizeof idbuf, "lookaside-client/%ld", (long)getpid());
    c->client_id = strdup(opt->client_id && opt->client_id[0] ? opt->client_id : idbuf);
    c->pp.zone = c->zone;
    c->pp.zone_affinity = !opt->zone_affinity_off;
    c->pp.zone_min_healthy_percent = OR_DEFAULT(opt->zone_min_healthy_percent, 50);
    c->services = calloc(c->max_services, sizeof *c->services);
    if (c->client_id == NULL || c->services == NULL ||
        (opt->zone && opt->zone[0] && c->zone == NULL) ||
        (opt->fallback_target && opt->fallback_target[0] && c->fallback_target == NULL)) {
        client_free(c);
        return LOOKASIDE_ENOMEM;
    }
    grpc_init();
    lookaside_status st = lbconn_init(&c->lb, "client", opt->lb_target, opt->balancer_creds,
                                      opt->balancer_args, opt->backoff_initial_ms,
                                      opt->backoff_max_ms);
    if (st == LOOKASIDE_OK)
        st = la_chan_cfg_init(&c->backend_cfg, opt->backend_creds, opt->backend_args);
    if (st == LOOKASIDE_OK)
        st = bgloop_start("lookaside-cli", client_tick, c, &c->loop);
    if (st != LOOKASIDE_OK) {
        client_free(c);
        grpc_shutdown();
        return st;
    }
    *out = c;
    return LOOKASIDE_OK;
}

la_service *client_find_service(lookaside_client *c, const char *name)
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
    lookaside_service *h;
    return lookaside_client_watch_service(c, service, fallback_target, &h);
}

lookaside_status lookaside_client_watch_service(lookaside_client *c, const char *service,
                                                const char *fallback_target,
                                                lookaside_service **out)
{
    if (c == NULL || !name_valid(service) || out == NULL)
        return LOOKASIDE_EINVAL;
    if (atomic_load(&c->stopping))
        return LOOKASIDE_ESHUTDOWN;
    pthread_mutex_lock(&c->mu);
    size_t n = atomic_load(&c->n_services);
    la_service *known = client_find_service(c, service);
    if (known != NULL) {
        pthread_mutex_unlock(&c->mu);
        *out = (lookaside_service *)known;
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
    *out = (lookaside_service *)svc;
    return LOOKASIDE_OK;
}

lookaside_status lookaside_client_wait_ready(lookaside_client *c, const char *service,
                                             uint32_t timeout_ms)
{
    if (c == NULL || service == NULL)
        return LOOKASIDE_EINVAL;
    la_service *svc = client_find_service(c, service);
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

/* The pick itself, shared by both entry points (inlined into each: this
 * is the hot path). */
static inline lookaside_status pick_in(la_service *svc, struct lookaside_pick *out)
{
    struct ebr_rec *r = ebr_enter();
    pick_snap *s = atomic_load_explicit(&svc->snap, memory_order_seq_cst);
    if (s == NULL) {
        ebr_exit(r);
        return LOOKASIDE_EUNAVAIL;
    }
    if (__builtin_expect(r->rng == 0, 0))
        r->rng = 0x9e3779b97f4a7c15ULL * (r->index + 1) | 1;
    unsigned k = pick_stripe(r);
    la_backend *b = pick_next(s, &r->pos[svc->pos_slot], &r->rng, k);
    pick_count(b, k);
    ebr_exit(r);
    /* b stays alive past the section: it is counted in flight. Backends
     * are LA_HOT_ALIGN-aligned, so the stripe fits in the handle's low
     * bits (pick_done ends the call where it was counted). */
    out->channel = b->channel;
    out->address = b->is_fallback ? svc->fallback_target : b->addr;
    out->internal_ = (void *)((uintptr_t)b | k);
    return LOOKASIDE_OK;
}

lookaside_status lookaside_pick(lookaside_client *c, const char *service,
                                struct lookaside_pick *out)
{
    if (c == NULL || service == NULL || out == NULL)
        return LOOKASIDE_EINVAL;
    la_service *svc = client_find_service(c, service);
    if (svc == NULL)
        return LOOKASIDE_ENOTFOUND;
    return pick_in(svc, out);
}

lookaside_status lookaside_pick_service(lookaside_service *handle, struct lookaside_pick *out)
{
    if (handle == NULL || out == NULL)
        return LOOKASIDE_EINVAL;
    return pick_in((la_service *)handle, out);
}

/* Folds a call's latency into the mean of the stripe it was picked on (the
 * one the picking thread's next picks read). Load + store like the
 * statistics: threads sharing a stripe may lose an update, never corrupt
 * the mean. Never 0 once set (0 means "no latency yet"). */
static inline void lat_ewma_add(struct la_stripe *s, int64_t latency_us)
{
    int64_t l = latency_us < (1 << 24) ? latency_us : (1 << 24);
    int64_t m = atomic_load_explicit(&s->lat_ewma_us, memory_order_relaxed);
    m = m == 0 ? l : m + (l - m) / 8;
    atomic_store_explicit(&s->lat_ewma_us, (uint32_t)(m > 0 ? m : 1), memory_order_relaxed);
}

void lookaside_pick_done(lookaside_client *c, struct lookaside_pick *pick,
                         grpc_status_code status, int64_t latency_us)
{
    if (c == NULL || pick == NULL || pick->internal_ == NULL)
        return;
    uintptr_t h = (uintptr_t)pick->internal_;
    la_backend *b = (la_backend *)(h & ~(uintptr_t)(LA_HOT_ALIGN - 1));
    unsigned k = (unsigned)(h & (LA_HOT_ALIGN - 1));
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
    if (status_is_fault(status)) {
        atomic_fetch_add_explicit(&st->failures, 1, memory_order_relaxed);
        /* A transport-level failure: the channel is no longer READY. Stop
         * picking the backend now rather than when the background thread
         * hears of the state change. */
        if (status == GRPC_STATUS_UNAVAILABLE && !b->is_fallback &&
            !atomic_load_explicit(&b->down, memory_order_relaxed) &&
            grpc_channel_check_connectivity_state(b->channel, 0) != GRPC_CHANNEL_READY) {
            atomic_store(&b->down, true);
            atomic_store(&b->svc->down_check, true);
            wake = true;
        }
        if (!b->is_fallback &&
            atomic_fetch_add_explicit(&b->consec_fail, 1, memory_order_relaxed) + 1 ==
                c->ep.consecutive) {
            atomic_store(&b->svc->eject_check, true);
            wake = true;
        }
    } else {
        if (atomic_load_explicit(&b->consec_fail, memory_order_relaxed) != 0)
            atomic_store_explicit(&b->consec_fail, 0, memory_order_relaxed);
        if (latency_us > 0)
            lat_ewma_add(&b->stripes[k], latency_us);
    }
    /* The last touch of b: after this the background thread may free it. */
    atomic_fetch_sub_explicit(&b->stripes[k].in_flight, 1, memory_order_release);
    if (wake)
        bgloop_wake(c->loop);
}

lookaside_status(lookaside_client_service_info)(lookaside_client *c, const char *service,
                                                lookaside_service_info *out)
{
    return lookaside_client_service_info_sized(c, service, out, LA_SERVICE_INFO_V0);
}

lookaside_status lookaside_client_service_info_sized(lookaside_client *c, const char *service,
                                                     lookaside_service_info *user, size_t size)
{
    if (c == NULL || service == NULL || user == NULL || size < LA_SERVICE_INFO_V0)
        return LOOKASIDE_EINVAL;
    la_service *svc = client_find_service(c, service);
    if (svc == NULL)
        return LOOKASIDE_ENOTFOUND;
    lookaside_service_info full, *out = &full;
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
    for (size_t i = 0; i < svc->n; i++) {
        out->ejected += svc->list[i]->ejected;
        out->held += svc->list[i]->held;
    }
    out->zone_local = svc->zone_local;
    out->lists_received = svc->lists;
    out->reconnects = svc->reconnects;
    out->heartbeats = svc->heartbeats;
    pthread_mutex_unlock(&c->mu);
    memcpy(user, out, la_abi_min(size, sizeof *out));
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
    o->held = b->held;
    o->down = atomic_load_explicit(&b->down, memory_order_relaxed);
}

lookaside_status(lookaside_client_backends)(lookaside_client *c, const char *service,
                                            lookaside_backend_info *out, size_t cap, size_t *n)
{
    return lookaside_client_backends_sized(c, service, out, cap, n, LA_BACKEND_INFO_V0);
}

lookaside_status lookaside_client_backends_sized(lookaside_client *c, const char *service,
                                                 lookaside_backend_info *out, size_t cap,
                                                 size_t *n, size_t size)
{
    if (c == NULL || service == NULL || n == NULL || (cap > 0 && out == NULL) ||
        size < LA_BACKEND_INFO_V0)
        return LOOKASIDE_EINVAL;
    la_service *svc = client_find_service(c, service);
    if (svc == NULL)
        return LOOKASIDE_ENOTFOUND;
    pthread_mutex_lock(&c->mu);
    size_t k = 0;
    for (size_t i = 0; i < svc->n; i++, k++) {
        if (k >= cap)
            continue;
        /* The caller's array has elements of its own size. */
        lookaside_backend_info full;
        fill_backend_info(svc->list[i], &full);
        memcpy((char *)out + k * size, &full, la_abi_min(size, sizeof full));
    }
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

