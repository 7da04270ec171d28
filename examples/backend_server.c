#include "backend_server.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "backend_slots.h"
#include "demo_echo.h"
#include "log.h"
#include "util.h"

#define REQUESTS_POSTED 16  /* echo calls requested ahead of arrival */
#define MAX_THREADS 16

typedef enum { BC_REQUESTED, BC_REPLYING } bcall_state;

/* One call, from the request slot posted before it arrives to the end of
 * its reply batch. The completion-queue tag is the bcall itself: each call
 * has at most one batch in flight, so its state says what completed. */
typedef struct bcall {
    slots_entry se;            /* first: slots hands it back */
    struct bsrv *srv;
    bcall_state state;
    bool generic;              /* requested through grpc_server_request_call */
    grpc_call *call;
    gpr_timespec deadline;
    grpc_call_details details; /* generic only */
    grpc_metadata_array req_md;
    grpc_byte_buffer *req_bb;
    grpc_byte_buffer *resp_bb;
    char *message;
    grpc_status_code status;
    grpc_slice status_details;
    int cancelled;
    int64_t arrive_us;
} bcall;

struct bsrv {
    char *listen;
    char address[LA_ADDR_STRLEN + 64];
    char *name;
    uint32_t nslots;
    int64_t service_us;
    uint32_t nthreads;

    grpc_server *server;
    grpc_completion_queue *cq;
    void *echo_method;
    lookaside_reporter *reporter;
    slots *slots;
    slots_meter meter;

    pthread_t threads[MAX_THREADS];
    uint32_t started_threads;
    atomic_bool shutting_down;
    atomic_bool first_call_seen;
    int64_t started_us;        /* bsrv_start */
    atomic_long live_calls;    /* accepted and not yet freed */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool shutdown_done;
    int shutdown_tag;          /* its address is the notify tag */
};

static void bcall_free(bcall *c)
{
    if (c->call)
        grpc_call_unref(c->call);
    if (c->generic)
        grpc_call_details_destroy(&c->details);
    grpc_metadata_array_destroy(&c->req_md);
    if (c->req_bb)
        grpc_byte_buffer_destroy(c->req_bb);
    if (c->resp_bb)
        grpc_byte_buffer_destroy(c->resp_bb);
    free(c->message);
    free(c);
}

static void request_one(bsrv *s, bool generic)
{
    bcall *c = calloc(1, sizeof *c);
    if (c == NULL) {
        log_error("backend", "out of memory requesting a call");
        return;
    }
    c->srv = s;
    c->generic = generic;
    c->state = BC_REQUESTED;
    grpc_metadata_array_init(&c->req_md);
    grpc_call_error err;
    if (generic) {
        grpc_call_details_init(&c->details);
        err = grpc_server_request_call(s->server, &c->call, &c->details, &c->req_md, s->cq, s->cq,
                                       c);
    } else {
        err = grpc_server_request_registered_call(s->server, s->echo_method, &c->call,
                                                  &c->deadline, &c->req_md, &c->req_bb, s->cq,
                                                  s->cq, c);
    }
    if (err != GRPC_CALL_OK) {
        if (!atomic_load(&s->shutting_down))
            log_error("backend", "request_call failed: %d", (int)err);
        bcall_free(c);
    }
}

/* The call is over (its reply batch completed or could not start). */
static void finish(bsrv *s, bcall *c, grpc_status_code status)
{
    if (s->reporter)
        lookaside_reporter_call_finished(s->reporter, status, clock_mono_us() - c->arrive_us);
    bcall_free(c);
    atomic_fetch_sub(&s->live_calls, 1);
}

/* Sends the whole answer in one batch: initial metadata, the reply (when
 * OK), the status, and RECV_CLOSE_ON_SERVER so the completion also tells
 * whether the client was still there. */
static void reply(bsrv *s, bcall *c, grpc_status_code status, const char *details,
                  int64_t queued_us)
{
    grpc_op ops[4];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    c->state = BC_REPLYING;
    if (status == GRPC_STATUS_OK) {
        c->resp_bb = demo_echo_pack_reply(c->message, s->name, queued_us);
        if (c->resp_bb == NULL) {
            status = GRPC_STATUS_RESOURCE_EXHAUSTED;
            details = "out of memory";
        }
    }
    c->status = status;
    c->status_details = grpc_slice_from_static_string(details ? details : "");
    ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[n++].data.send_initial_metadata.count = 0;
    if (c->resp_bb) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = c->resp_bb;
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.trailing_metadata_count = 0;
    ops[n].data.send_status_from_server.status = status;
    ops[n++].data.send_status_from_server.status_details = details ? &c->status_details : NULL;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
    grpc_call_error err = grpc_call_start_batch(c->call, ops, n, c, NULL);
    if (err != GRPC_CALL_OK) {
        /* No completion will come: end the call here. */
        log_warn("backend", "reply batch failed: %d", (int)err);
        finish(s, c, GRPC_STATUS_INTERNAL);
    }
}

static void slot_done(void *arg, slots_entry *e, int64_t queued_us)
{
    reply(arg, (bcall *)e, GRPC_STATUS_OK, NULL, queued_us);
}

static void on_requested(bsrv *s, bcall *c, bool ok)
{
    if (!ok) {
        /* Only at shutdown: the server fails the calls it still holds. */
        bcall_free(c);
        return;
    }
    atomic_fetch_add(&s->live_calls, 1);
    if (!atomic_load(&s->shutting_down))
        request_one(s, c->generic);
    c->arrive_us = clock_mono_us();
    /* For scale-up measurements: how soon a new backend got traffic. */
    if (!atomic_exchange(&s->first_call_seen, true))
        log_info("backend", "first call %.1f ms after listening",
                 (double)(c->arrive_us - s->started_us) / 1000.0);
    if (s->reporter)
        lookaside_reporter_call_started(s->reporter);
    if (c->generic) {
        reply(s, c, GRPC_STATUS_UNIMPLEMENTED, "the demo backend serves " DEMO_ECHO_METHOD " only",
              0);
        return;
    }
    if (c->req_bb == NULL || demo_echo_read_request(c->req_bb, &c->message) != LOOKASIDE_OK) {
        reply(s, c, GRPC_STATUS_INVALID_ARGUMENT, "not an EchoRequest", 0);
        return;
    }
    if (s->slots)
        slots_submit(s->slots, &c->se);
    else
        reply(s, c, GRPC_STATUS_OK, NULL, 0);
}

static void *cq_main(void *arg)
{
    bsrv *s = arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        if (ev.tag == &s->shutdown_tag) {
            pthread_mutex_lock(&s->mu);
            s->shutdown_done = true;
            pthread_cond_broadcast(&s->cv);
            pthread_mutex_unlock(&s->mu);
            continue;
        }
        bcall *c = ev.tag;
        if (c->state == BC_REQUESTED) {
            on_requested(s, c, ev.success != 0);
        } else {
            grpc_status_code st = c->status;
            if (!ev.success || c->cancelled)
                st = GRPC_STATUS_CANCELLED; /* the client left; not the server's error */
            finish(s, c, st);
        }
    }
    return NULL;
}

lookaside_status bsrv_create(const bsrv_config *cfg, bsrv **out)
{
    if (cfg == NULL || cfg->listen == NULL || out == NULL || cfg->threads == 0 ||
        cfg->threads > MAX_THREADS || (cfg->service_us > 0 && cfg->slots == 0))
        return LOOKASIDE_EINVAL;
    const char *colon = strrchr(cfg->listen, ':');
    if (colon == NULL || colon == cfg->listen || strlen(cfg->listen) > LA_ADDR_STRLEN + 32)
        return LOOKASIDE_EINVAL;
    bsrv *s = calloc(1, sizeof *s);
    if (s == NULL)
        return LOOKASIDE_ENOMEM;
    pthread_condattr_t cattr;
    pthread_condattr_init(&cattr);
    pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, &cattr);
    pthread_condattr_destroy(&cattr);
    s->nslots = cfg->slots;
    s->service_us = cfg->service_us;
    s->nthreads = cfg->threads;
    s->listen = strdup(cfg->listen);
    if (s->listen == NULL) {
        bsrv_destroy(s);
        return LOOKASIDE_ENOMEM;
    }

    grpc_arg args[2];
    size_t nargs = 0;
    memset(args, 0, sizeof args);
    /* gRPC enables SO_REUSEPORT by default: two backends given the same
     * fixed port would silently share it. Fail the bind instead. */
    args[nargs].type = GRPC_ARG_INTEGER;
    args[nargs].key = (char *)GRPC_ARG_ALLOW_REUSEPORT;
    args[nargs++].value.integer = 0;
    if (cfg->max_connection_age_ms > 0) {
        args[nargs].type = GRPC_ARG_INTEGER;
        args[nargs].key = (char *)GRPC_ARG_MAX_CONNECTION_AGE_MS;
        args[nargs++].value.integer =
            cfg->max_connection_age_ms > INT32_MAX ? INT32_MAX : (int)cfg->max_connection_age_ms;
    }
    grpc_channel_args ca = {.num_args = nargs, .args = args};
    s->server = grpc_server_create(&ca, NULL);
    s->cq = grpc_completion_queue_create_for_next(NULL);
    if (s->server == NULL || s->cq == NULL) {
        bsrv_destroy(s);
        return LOOKASIDE_EINTERNAL;
    }
    grpc_server_register_completion_queue(s->server, s->cq, NULL);
    s->echo_method = grpc_server_register_method(s->server, DEMO_ECHO_METHOD, NULL,
                                                 GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    grpc_server_credentials *creds =
        cfg->creds ? cfg->creds : grpc_insecure_server_credentials_create();
    int port = grpc_server_add_http2_port(s->server, cfg->listen, creds);
    if (cfg->creds == NULL)
        grpc_server_credentials_release(creds);
    if (port <= 0 || s->echo_method == NULL) {
        lookaside_status st = s->echo_method == NULL ? LOOKASIDE_EINTERNAL : LOOKASIDE_EIO;
        bsrv_destroy(s);
        return st;
    }
    snprintf(s->address, sizeof s->address, "%.*s:%d", (int)(colon - cfg->listen), cfg->listen,
             port);
    s->name = strdup(cfg->name && cfg->name[0] ? cfg->name : s->address);
    if (s->name == NULL) {
        bsrv_destroy(s);
        return LOOKASIDE_ENOMEM;
    }
    *out = s;
    return LOOKASIDE_OK;
}

const char *bsrv_address(const bsrv *s) { return s->address; }
const char *bsrv_name(const bsrv *s) { return s->name; }

void bsrv_set_reporter(bsrv *s, lookaside_reporter *r) { s->reporter = r; }

lookaside_status bsrv_start(bsrv *s)
{
    if (s->service_us > 0) {
        lookaside_status st = slots_create(s->nslots, s->service_us, slot_done, s, &s->slots);
        if (st != LOOKASIDE_OK)
            return st;
        slots_meter_init(s->slots, &s->meter);
    }
    s->started_us = clock_mono_us();
    grpc_server_start(s->server);
    for (int i = 0; i < REQUESTS_POSTED; i++)
        request_one(s, false);
    request_one(s, true);
    request_one(s, true);
    for (uint32_t i = 0; i < s->nthreads; i++) {
        if (pthread_create(&s->threads[i], NULL, cq_main, s) != 0) {
            log_error("backend", "cannot start a completion-queue thread");
            return i > 0 ? LOOKASIDE_OK : LOOKASIDE_EINTERNAL;
        }
        s->started_threads++;
    }
    return LOOKASIDE_OK;
}

bool bsrv_measure(bsrv *s, double *busy_fraction, double *queue_mean)
{
    if (s->slots == NULL)
        return false;
    slots_sample smp;
    slots_measure(s->slots, &s->meter, &smp);
    *busy_fraction = smp.busy_fraction;
    *queue_mean = smp.queue_mean;
    return true;
}

void bsrv_set_service_us(bsrv *s, int64_t service_us)
{
    if (s->slots != NULL)
        slots_set_service_us(s->slots, service_us);
}

/* Waits for the shutdown notification until deadline_ms (monotonic; <0 =
 * forever). True when it came. */
static bool wait_shutdown(bsrv *s, int64_t deadline_ms)
{
    struct timespec ts = {.tv_sec = deadline_ms / 1000, .tv_nsec = (deadline_ms % 1000) * 1000000L};
    pthread_mutex_lock(&s->mu);
    while (!s->shutdown_done) {
        if (deadline_ms < 0)
            pthread_cond_wait(&s->cv, &s->mu);
        else if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) != 0 && !s->shutdown_done &&
                 clock_mono_ms() >= deadline_ms)
            break;
    }
    bool done = s->shutdown_done;
    pthread_mutex_unlock(&s->mu);
    return done;
}

int bsrv_shutdown(bsrv *s, int64_t grace_ms)
{
    int cancelled = 0;
    if (s->server == NULL)
        return 0;
    atomic_store(&s->shutting_down, true);
    grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);
    if (s->started_threads == 0) {
        /* Nothing consumes the queue: drain it here. */
        grpc_server_cancel_all_calls(s->server);
        for (;;) {
            grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC),
                                                       NULL);
            if (ev.type != GRPC_OP_COMPLETE || ev.tag == &s->shutdown_tag)
                break;
            bcall_free(ev.tag); /* a request slot failed by the shutdown */
        }
    } else if (!wait_shutdown(s, clock_mono_ms() + grace_ms)) {
        cancelled = (int)atomic_load(&s->live_calls);
        grpc_server_cancel_all_calls(s->server);
        /* Queued calls hold their channels open: finish them now (their
         * replies fail fast, the calls being cancelled). */
        if (s->slots)
            slots_flush(s->slots);
        wait_shutdown(s, -1);
    }
    /* Stop the slot thread while the queue threads still run: a queued call
     * it flushes starts its (failing) reply batch on this queue, which must
     * not be shut down yet (gRPC asserts in grpc_cq_begin_op otherwise). */
    slots_destroy(s->slots);
    s->slots = NULL;
    grpc_server_destroy(s->server);
    s->server = NULL;
    grpc_completion_queue_shutdown(s->cq);
    for (uint32_t i = 0; i < s->started_threads; i++)
        pthread_join(s->threads[i], NULL);
    s->started_threads = 0;
    return cancelled;
}

void bsrv_destroy(bsrv *s)
{
    if (s == NULL)
        return;
    if (s->server) {
        /* Never started, or shutdown was skipped. */
        bsrv_shutdown(s, 0);
    }
    if (s->cq) {
        grpc_completion_queue_shutdown(s->cq);
        while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
               GRPC_QUEUE_SHUTDOWN) {
        }
        grpc_completion_queue_destroy(s->cq);
    }
    slots_destroy(s->slots);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s->listen);
    free(s->name);
    free(s);
}
