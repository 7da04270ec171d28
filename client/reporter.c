/* reporter.c - lookaside_reporter: one backend's Report stream.
 *
 * The reporter thread (bgloop) owns the stream: Register as the first
 * message, then a Load right after the first ack and every
 * ReportAck.report_interval_ms after that, a Drain whenever the wanted
 * draining state differs from what this stream last said. One message is in
 * flight at a time; ReportAck.accepted tells which ones the balancer took.
 * Application threads only bump atomic counters (call hooks) or change
 * wishes under r->mu (set_load, set_draining, stop) and wake the thread. */
#include "lookaside.h"

#include "abi_compat.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/support/time.h>

#include "bgloop.h"
#include "call.h"
#include "lbconn.h"
#include "log.h"
#include "lookaside/v1/lookaside.pb-c.h"
#include "pbio.h"
#include "procload.h"
#include "util.h"

#define REPORT_METHOD "/lookaside.v1.LoadReporter/Report"
#define MAX_ACK_BYTES 4096
#define INTERVAL_MIN_MS 100
#define INTERVAL_MAX_MS 60000
#define INTERVAL_DEFAULT_MS 1000

struct lookaside_reporter {
    la_lbconn lb;
    char *service;
    char *address;
    char *zone;
    char *credential;
    lookaside_load_fn cb;
    void *cb_arg;
    bgloop *loop;
    _Atomic bool destroying;

    /* Call hooks, any thread. */
    _Atomic uint64_t started;
    _Atomic uint64_t finished;
    _Atomic uint64_t errors;
    _Atomic uint64_t latency_us;

    /* Reporter thread. */
    la_call *call;
    uint64_t sent;          /* messages started on this stream */
    bool stream_draining;   /* what this stream last said */
    uint64_t drain_ordinal; /* ordinal of the last Drain sent, 0 none */
    bool half_closed;
    int64_t next_load_ms;
    la_lbretry retry;       /* .answered: this stream was acked */
    uint64_t base_finished;
    uint64_t base_errors;
    int64_t base_ns;
    procload pl;
    int live_calls;
    bool tearing_down;
    uint64_t started_seen;  /* call hooks' count at the last tick */

    /* Under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    lookaside_load app;
    bool want_draining;
    bool stop_requested;  /* stop(): drain, no more loads */
    bool stopped;         /* stop() gave up waiting or finished: close, never reconnect */
    bool drain_acked;     /* the balancer counted a Drain{true} */
    bool close_issued;
    lookaside_reporter_info info;
};

void lookaside_reporter_options_init_sized(lookaside_reporter_options *opt, size_t size)
{
    if (opt == NULL)
        return;
    lookaside_reporter_options o;
    memset(&o, 0, sizeof o);
    o.backoff_initial_ms = 100;
    o.backoff_max_ms = 1000;
    la_abi_out(opt, size, &o, sizeof o);
}

void(lookaside_reporter_options_init)(lookaside_reporter_options *opt)
{
    lookaside_reporter_options_init_sized(opt, LA_REPORTER_OPTIONS_V0);
}

static void abs_deadline(uint32_t timeout_ms, struct timespec *ts)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += timeout_ms / 1000;
    ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* ------------------------------------------------------------ messages */

static double clean(double v)
{
    return isfinite(v) && v > 0 ? v : 0;
}

/* Statuses that say the server failed, not the caller. */
static bool server_error(grpc_status_code s)
{
    switch (s) {
    case GRPC_STATUS_UNKNOWN:
    case GRPC_STATUS_DEADLINE_EXCEEDED:
    case GRPC_STATUS_RESOURCE_EXHAUSTED:
    case GRPC_STATUS_ABORTED:
    case GRPC_STATUS_INTERNAL:
    case GRPC_STATUS_UNAVAILABLE:
    case GRPC_STATUS_DATA_LOSS:
        return true;
    default:
        return false;
    }
}

static void measure(lookaside_reporter *r, lookaside_load *l)
{
    int64_t now = clock_mono_ns();
    uint64_t fin = atomic_load(&r->finished), err = atomic_load(&r->errors);
    uint64_t started = atomic_load(&r->started);
    double dt = (double)(now - r->base_ns) / 1e9;
    memset(l, 0, sizeof *l);
    if (dt > 0) {
        l->rps = (double)(fin - r->base_finished) / dt;
        l->eps = (double)(err - r->base_errors) / dt;
    }
    l->in_flight = started > fin ? (int64_t)(started - fin) : 0;
    l->cpu_utilization = procload_cpu(&r->pl);
    l->mem_utilization = procload_mem();
    r->base_ns = now;
    r->base_finished = fin;
    r->base_errors = err;

    pthread_mutex_lock(&r->mu);
    lookaside_load app = r->app;
    pthread_mutex_unlock(&r->mu);
    if (app.cpu_utilization > 0)
        l->cpu_utilization = app.cpu_utilization;
    if (app.mem_utilization > 0)
        l->mem_utilization = app.mem_utilization;
    if (app.application_utilization > 0)
        l->application_utilization = app.application_utilization;
    if (app.rps > 0)
        l->rps = app.rps;
    if (app.eps > 0)
        l->eps = app.eps;
    if (app.in_flight > 0)
        l->in_flight = app.in_flight;
    if (r->cb)
        r->cb(r->cb_arg, l);
}

static lookaside_status send_load(lookaside_reporter *r)
{
    lookaside_load l;
    measure(r, &l);
    Lookaside__V1__Load load = LOOKASIDE__V1__LOAD__INIT;
    load.cpu_utilization = clean(l.cpu_utilization);
    load.mem_utilization = clean(l.mem_utilization);
    load.application_utilization = clean(l.application_utilization);
    load.rps_fractional = clean(l.rps);
    load.eps = clean(l.eps);
    load.in_flight = l.in_flight > 0 ? (l.in_flight > UINT32_MAX ? UINT32_MAX : (uint32_t)l.in_flight)
                                     : 0;
    Lookaside__V1__LoadReport m = LOOKASIDE__V1__LOAD_REPORT__INIT;
    m.kind_case = LOOKASIDE__V1__LOAD_REPORT__KIND_LOAD;
    m.load = &load;
    lookaside_status st = la_call_send(r->call, &m.base);
    if (st == LOOKASIDE_OK) {
        r->sent++;
        pthread_mutex_lock(&r->mu);
        r->info.loads_sent++;
        pthread_mutex_unlock(&r->mu);
    }
    return st;
}

static lookaside_status send_drain(lookaside_reporter *r, bool draining)
{
    Lookaside__V1__Drain d = LOOKASIDE__V1__DRAIN__INIT;
    d.draining = draining;
    Lookaside__V1__LoadReport m = LOOKASIDE__V1__LOAD_REPORT__INIT;
    m.kind_case = LOOKASIDE__V1__LOAD_REPORT__KIND_DRAIN;
    m.drain = &d;
    lookaside_status st = la_call_send(r->call, &m.base);
    if (st == LOOKASIDE_OK) {
        r->sent++;
        r->stream_draining = draining;
        r->drain_ordinal = r->sent;
        log_info("reporter", "%s %s: sent drain=%d", r->service, r->address, (int)draining);
    }
    return st;
}

/* ------------------------------------------------------------ stream */

static void rep_on_recv(void *owner, la_call *call, grpc_byte_buffer *bb)
{
    (void)call;
    lookaside_reporter *r = owner;
    if (bb == NULL)
        return;
    ProtobufCMessage *msg = NULL;
    if (pbio_unpack(&lookaside__v1__report_ack__descriptor, bb, MAX_ACK_BYTES, &msg) !=
        LOOKASIDE_OK) {
        log_warn("reporter", "bad ReportAck ignored");
        return;
    }
    const Lookaside__V1__ReportAck *ack = (const Lookaside__V1__ReportAck *)msg;
    uint32_t iv = ack->report_interval_ms ? ack->report_interval_ms : INTERVAL_DEFAULT_MS;
    if (iv < INTERVAL_MIN_MS)
        iv = INTERVAL_MIN_MS;
    if (iv > INTERVAL_MAX_MS)
        iv = INTERVAL_MAX_MS;
    int64_t now = clock_mono_ms();
    if (!r->retry.answered) {
        lbretry_answered(&r->retry);
        r->next_load_ms = now; /* the first load right away */
        log_info("reporter", "%s %s: registered (token %s, interval %u ms)", r->service,
                 r->address, ack->token ? ack->token : "", iv);
    } else if (r->next_load_ms > now + iv) {
        r->next_load_ms = now + iv; /* the balancer asked for a shorter interval */
    }
    pthread_mutex_lock(&r->mu);
    r->info.registered = true;
    r->info.interval_ms = iv;
    r->info.accepted = ack->accepted;
    snprintf(r->info.token, sizeof r->info.token, "%s", ack->token ? ack->token : "");
    if (r->stream_draining && r->drain_ordinal != 0 && ack->accepted >= r->drain_ordinal &&
        !r->drain_acked) {
        r->drain_acked = true;
        r->info.draining = true;
        pthread_cond_broadcast(&r->cond);
    }
    if (!r->stream_draining && r->drain_ordinal != 0 && ack->accepted >= r->drain_ordinal)
        r->info.draining = false;
    pthread_mutex_unlock(&r->mu);
    protobuf_c_message_free_unpacked(msg, NULL);
}

static void rep_on_sent(void *owner, la_call *call, bool ok)
{
    (void)owner;
    (void)call;
    (void)ok; /* the tick sends the next message; on_status reports failure */
}

static void rep_on_status(void *owner, la_call *call, grpc_status_code code, const char *details)
{
    lookaside_reporter *r = owner;
    la_call_release(call);
    r->call = NULL;
    pthread_mutex_lock(&r->mu);
    r->info.registered = false;
    r->info.accepted = 0;
    bool stopped = r->stopped;
    pthread_mutex_unlock(&r->mu);
    if (r->tearing_down || stopped)
        return;
    lbretry_ended(&r->lb, &r->retry, r->address, code, details, clock_mono_ms());
}

static const la_call_handler rep_handler = {
    .on_recv = rep_on_recv,
    .on_sent = rep_on_sent,
    .on_status = rep_on_status,
};

static void stream_start(lookaside_reporter *r)
{
    Lookaside__V1__Register reg = LOOKASIDE__V1__REGISTER__INIT;
    reg.service = r->service;
    reg.address = r->address;
    reg.zone = r->zone ? r->zone : "";
    reg.credential = r->credential ? r->credential : "";
    Lookaside__V1__LoadReport m = LOOKASIDE__V1__LOAD_REPORT__INIT;
    m.kind_case = LOOKASIDE__V1__LOAD_REPORT__KIND_REGISTER;
    m.register_ = &reg;
    if (lbconn_start(&r->lb, &r->retry, r->loop, REPORT_METHOD, &m.base, false, &rep_handler, r,
                     &r->live_calls, &r->call) != LOOKASIDE_OK)
        return;
    r->sent = 1;
    r->stream_draining = false;
    r->drain_ordinal = 0;
    r->half_closed = false;
    pthread_mutex_lock(&r->mu);
    r->info.streams++;
    pthread_mutex_unlock(&r->mu);
}

static int64_t rep_tick_inner(lookaside_reporter *r, int64_t now)
{
    if (atomic_load(&r->destroying)) {
        if (!r->tearing_down) {
            r->tearing_down = true;
            la_call_release(r->call);
            r->call = NULL;
            lbconn_close_channels(&r->lb);
        }
        return r->live_calls == 0 ? -1 : now + 20;
    }
    pthread_mutex_lock(&r->mu);
    bool want = r->want_draining, stop = r->stop_requested, stopped = r->stopped;
    pthread_mutex_unlock(&r->mu);
    int64_t next = now + 1000;
    if (r->call == NULL) {
        if (stopped)
            return next;
        if (r->retry.retry_at_ms != 0 && now >= r->retry.retry_at_ms)
            stream_start(r);
        int64_t retry = r->retry.retry_at_ms;
        if (r->call == NULL)
            return retry != 0 && retry < next ? retry : next;
    }
    if (!r->retry.answered || la_call_sending(r->call) || r->half_closed)
        return next;
    if (stopped) {
        la_call_half_close(r->call);
        r->half_closed = true;
        pthread_mutex_lock(&r->mu);
        r->close_issued = true;
        pthread_cond_broadcast(&r->cond);
        pthread_mutex_unlock(&r->mu);
        return next;
    }
    if (want != r->stream_draining) {
        send_drain(r, want);
        return next;
    }
    if (!stop && now >= r->next_load_ms) {
        if (send_load(r) == LOOKASIDE_OK) {
            pthread_mutex_lock(&r->mu);
            uint32_t iv = r->info.interval_ms ? r->info.interval_ms : INTERVAL_DEFAULT_MS;
            pthread_mutex_unlock(&r->mu);
            r->next_load_ms = now + iv;
        }
    }
    return r->next_load_ms < next ? r->next_load_ms : next;
}

static int64_t rep_tick(void *arg, int64_t now, bgloop_io *io)
{
    lookaside_reporter *r = arg;
    int64_t next = rep_tick_inner(r, now);
    if (r->live_calls > 0) {
        /* Serving calls (the hooks count them): the server's threads poll. */
        uint64_t started = atomic_load_explicit(&r->started, memory_order_relaxed);
        uint64_t fin = atomic_load_explicit(&r->finished, memory_order_relaxed);
        bool active = !r->tearing_down && (started != r->started_seen || started != fin);
        r->started_seen = started;
        *io = active ? BGLOOP_IO_BUSY : BGLOOP_IO_IDLE;
    }
    return next;
}

/* ------------------------------------------------------------ public API */

static void reporter_free(lookaside_reporter *r)
{
    lbconn_free(&r->lb);
    free(r->service);
    free(r->address);
    free(r->zone);
    if (r->credential) {
        memset(r->credential, 0, strlen(r->credential));
        free(r->credential);
    }
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->mu);
    free(r);
}


lookaside_status(lookaside_reporter_create)(const lookaside_reporter_options *opt,
                                            lookaside_reporter **out)
{
    return lookaside_reporter_create_sized(opt, LA_REPORTER_OPTIONS_V0, out);
}

lookaside_status lookaside_reporter_create_sized(const lookaside_reporter_options *opt_in,
                                                 size_t size, lookaside_reporter **out)
{
    if (out == NULL)
        return LOOKASIDE_EINVAL;
    *out = NULL;
    if (opt_in == NULL || size < LA_REPORTER_OPTIONS_V0)
        return LOOKASIDE_EINVAL;
    lookaside_reporter_options full;
    la_abi_in(&full, sizeof full, opt_in, size);
    const lookaside_reporter_options *opt = &full;
    la_addr a;
    if (opt->lb_target == NULL || !name_valid(opt->service) ||
        addr_parse(opt->address, &a) != LOOKASIDE_OK || (opt->zone && !zone_valid(opt->zone)) ||
        (opt->credential && strlen(opt->credential) > 256))
        return LOOKASIDE_EINVAL;
    lookaside_reporter *r = calloc(1, sizeof *r);
    if (r == NULL)
        return LOOKASIDE_ENOMEM;
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cond, &ca);
    pthread_condattr_destroy(&ca);
    char canon[LA_ADDR_STRLEN];
    addr_format(&a, canon, sizeof canon);
    r->service = strdup(opt->service);
    r->address = strdup(canon);
    r->zone = opt->zone && opt->zone[0] ? strdup(opt->zone) : NULL;
    r->credential = opt->credential && opt->credential[0] ? strdup(opt->credential) : NULL;
    if (r->service == NULL || r->address == NULL ||
        (opt->zone && opt->zone[0] && r->zone == NULL) ||
        (opt->credential && opt->credential[0] && r->credential == NULL)) {
        reporter_free(r);
        return LOOKASIDE_ENOMEM;
    }
    r->cb = opt->load_cb;
    r->cb_arg = opt->load_cb_arg;
    procload_init(&r->pl, opt->cpu_cores);
    r->base_ns = clock_mono_ns();
    r->info.interval_ms = INTERVAL_DEFAULT_MS;
    grpc_init();
    lookaside_status st = lbconn_init(&r->lb, "reporter", opt->lb_target, opt->balancer_creds,
                                      opt->balancer_args, opt->backoff_initial_ms,
                                      opt->backoff_max_ms);
    lbretry_init(&r->retry, &r->lb, a.port, clock_mono_ms());
    if (st == LOOKASIDE_OK)
        st = bgloop_start("lookaside-rep", rep_tick, r, &r->loop);
    if (st != LOOKASIDE_OK) {
        reporter_free(r);
        grpc_shutdown();
        return st;
    }
    *out = r;
    return LOOKASIDE_OK;
}

void lookaside_reporter_set_load(lookaside_reporter *r, const lookaside_load *load)
{
    if (r == NULL || load == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    r->app = *load;
    pthread_mutex_unlock(&r->mu);
}

void lookaside_reporter_call_started(lookaside_reporter *r)
{
    if (r)
        atomic_fetch_add_explicit(&r->started, 1, memory_order_relaxed);
}

void lookaside_reporter_call_finished(lookaside_reporter *r, grpc_status_code status,
                                      int64_t latency_us)
{
    if (r == NULL)
        return;
    if (server_error(status))
        atomic_fetch_add_explicit(&r->errors, 1, memory_order_relaxed);
    if (latency_us > 0)
        atomic_fetch_add_explicit(&r->latency_us, (uint64_t)latency_us, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->finished, 1, memory_order_relaxed);
}

void lookaside_reporter_set_draining(lookaside_reporter *r, bool draining)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    bool change = r->want_draining != draining && !r->stop_requested;
    if (change) {
        r->want_draining = draining;
        r->drain_acked = false;
    }
    pthread_mutex_unlock(&r->mu);
    if (change)
        bgloop_wake(r->loop);
}

void(lookaside_reporter_info_get)(lookaside_reporter *r, lookaside_reporter_info *out)
{
    lookaside_reporter_info_get_sized(r, out, LA_REPORTER_INFO_V0);
}

void lookaside_reporter_info_get_sized(lookaside_reporter *r, lookaside_reporter_info *out,
                                       size_t size)
{
    if (r == NULL || out == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    lookaside_reporter_info info = r->info;
    pthread_mutex_unlock(&r->mu);
    memcpy(out, &info, la_abi_min(size, sizeof info));
}

lookaside_status lookaside_reporter_stop(lookaside_reporter *r, uint32_t timeout_ms)
{
    if (r == NULL)
        return LOOKASIDE_EINVAL;
    struct timespec ts;
    abs_deadline(timeout_ms, &ts);
    pthread_mutex_lock(&r->mu);
    if (r->stop_requested) {
        pthread_mutex_unlock(&r->mu);
        return LOOKASIDE_ESHUTDOWN;
    }
    r->stop_requested = true;
    if (!r->want_draining) {
        r->want_draining = true;
        r->drain_acked = false;
    }
    pthread_mutex_unlock(&r->mu);
    bgloop_wake(r->loop);

    pthread_mutex_lock(&r->mu);
    while (!r->drain_acked)
        if (pthread_cond_timedwait(&r->cond, &r->mu, &ts) != 0)
            break;
    lookaside_status st = r->drain_acked ? LOOKASIDE_OK : LOOKASIDE_ETIMEOUT;
    r->stopped = true;
    pthread_mutex_unlock(&r->mu);
    bgloop_wake(r->loop);
    /* Let the half-close go out before returning (bounded by the same
     * deadline), so that an immediate destroy does not turn it into a
     * cancellation. */
    pthread_mutex_lock(&r->mu);
    while (st == LOOKASIDE_OK && !r->close_issued && r->info.registered)
        if (pthread_cond_timedwait(&r->cond, &r->mu, &ts) != 0)
            break;
    pthread_mutex_unlock(&r->mu);
    if (st != LOOKASIDE_OK)
        log_warn("reporter", "%s %s: drain not acknowledged within %u ms", r->service, r->address,
                 timeout_ms);
    return st;
}

void lookaside_reporter_destroy(lookaside_reporter *r)
{
    if (r == NULL)
        return;
    atomic_store(&r->destroying, true);
    bgloop_wake(r->loop);
    bgloop_join(r->loop);
    reporter_free(r);
    grpc_shutdown();
}
