#include "client_load.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "demo_echo.h"
#include "log.h"
#include "util.h"

#define MAX_WORKERS 64
#define ERRORS_LOGGED 5      /* the first few failures are logged with details */

typedef struct ccall {
    grpc_call *call;
    int64_t t0_us;
    bool picked;
    struct lookaside_pick pick;
    char addr[128];          /* the pick's address, copied: pick_done clears it */
    grpc_byte_buffer *send_bb;
    grpc_byte_buffer *recv_bb;
    grpc_metadata_array init_md, trail_md;
    grpc_status_code status;
    grpc_slice details;
} ccall;

typedef struct worker {
    struct load *l;
    pthread_t thread;
    bool started;
    grpc_completion_queue *cq;
    uint32_t in_flight, max_in_flight;
    double phase_us, period_us;
} worker;

struct load {
    load_config cfg;
    grpc_byte_buffer *request;   /* the template every call copies */
    worker w[MAX_WORKERS];
    uint32_t nw;
    atomic_bool stop;
    atomic_int errors_logged;
};

/* gRPC deadlines are relative to gpr's own monotonic clock. */
static gpr_timespec deadline_at(int64_t at_us)
{
    int64_t left = at_us - clock_mono_us();
    if (left < 0)
        left = 0;
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_micros(left, GPR_TIMESPAN));
}

static void ccall_free(ccall *cc)
{
    if (cc->call)
        grpc_call_unref(cc->call);
    if (cc->send_bb)
        grpc_byte_buffer_destroy(cc->send_bb);
    if (cc->recv_bb)
        grpc_byte_buffer_destroy(cc->recv_bb);
    grpc_metadata_array_destroy(&cc->init_md);
    grpc_metadata_array_destroy(&cc->trail_md);
    grpc_slice_unref(cc->details);
    free(cc);
}

static void log_failure(load *l, const char *addr, grpc_status_code st, grpc_slice details)
{
    if (atomic_fetch_add(&l->errors_logged, 1) >= ERRORS_LOGGED)
        return;
    char *d = grpc_slice_to_c_string(details);
    log_warn("client", "call to %s failed: status %d (%s)%s", addr[0] ? addr : "(no backend)",
             (int)st, d ? d : "", atomic_load(&l->errors_logged) == ERRORS_LOGGED
                                      ? "; further failures only counted"
                                      : "");
    gpr_free(d);
}

/* Ends a call: the library learns how it went, the statistics count it. */
static void call_ended(worker *w, ccall *cc, bool batch_ok)
{
    load *l = w->l;
    int64_t lat = clock_mono_us() - cc->t0_us;
    char name[128] = "";
    grpc_status_code st = batch_ok ? cc->status : GRPC_STATUS_UNKNOWN;
    if (st == GRPC_STATUS_OK &&
        (cc->recv_bb == NULL ||
         demo_echo_read_reply(cc->recv_bb, name, sizeof name) != LOOKASIDE_OK)) {
        st = GRPC_STATUS_INTERNAL; /* OK without a readable reply is still a failure */
        name[0] = '\0';
    }
    if (!cc->picked) {
        /* The baseline: where the call went is the peer of the call. */
        char *peer = grpc_call_get_peer(cc->call);
        if (peer) {
            const char *p = peer;
            if (strncmp(p, "ipv4:", 5) == 0 || strncmp(p, "ipv6:", 5) == 0)
                p += 5;
            snprintf(cc->addr, sizeof cc->addr, "%s", p);
            gpr_free(peer);
        }
    } else {
        lookaside_pick_done(l->cfg.client, &cc->pick, st, lat);
    }
    if (st != GRPC_STATUS_OK)
        log_failure(l, cc->addr, st, cc->details);
    cstats_record(l->cfg.stats, st == GRPC_STATUS_OK ? name : NULL, cc->addr, st, lat);
    ccall_free(cc);
    w->in_flight--;
}

static void start_call(worker *w)
{
    load *l = w->l;
    ccall *cc = calloc(1, sizeof *cc);
    if (cc == NULL) {
        cstats_record(l->cfg.stats, NULL, NULL, GRPC_STATUS_RESOURCE_EXHAUSTED, 0);
        return;
    }
    grpc_metadata_array_init(&cc->init_md);
    grpc_metadata_array_init(&cc->trail_md);
    cc->details = grpc_empty_slice();
    cc->t0_us = clock_mono_us();
    grpc_channel *ch = l->cfg.channel;
    if (l->cfg.client) {
        lookaside_status ps = lookaside_pick(l->cfg.client, l->cfg.service, &cc->pick);
        if (ps != LOOKASIDE_OK) {
            /* Nothing to pick counts as a failed call, like an unreachable backend. */
            grpc_status_code st = GRPC_STATUS_UNAVAILABLE;
            log_failure(l, "", st, grpc_empty_slice());
            cstats_record(l->cfg.stats, NULL, "(no pick)", st, 0);
            ccall_free(cc);
            return;
        }
        cc->picked = true;
        snprintf(cc->addr, sizeof cc->addr, "%s", cc->pick.address ? cc->pick.address : "");
        ch = cc->pick.channel;
    }
    cc->call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, w->cq,
                                        grpc_slice_from_static_string(DEMO_ECHO_METHOD), NULL,
                                        deadline_at(cc->t0_us + l->cfg.timeout_ms * 1000), NULL);
    cc->send_bb = grpc_byte_buffer_copy(l->request);
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = cc->send_bb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &cc->init_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &cc->recv_bb;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &cc->trail_md;
    ops[5].data.recv_status_on_client.status = &cc->status;
    ops[5].data.recv_status_on_client.status_details = &cc->details;
    w->in_flight++;
    grpc_call_error err = cc->call && cc->send_bb
                              ? grpc_call_start_batch(cc->call, ops, 6, cc, NULL)
                              : GRPC_CALL_ERROR;
    if (err != GRPC_CALL_OK) {
        /* No completion will come. */
        cc->status = GRPC_STATUS_INTERNAL;
        call_ended(w, cc, true);
    }
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    load *l = w->l;
    uint64_t k = 0;
    int64_t next = l->cfg.start_us + (int64_t)w->phase_us;
    for (;;) {
        int64_t now = clock_mono_us();
        if (atomic_load(&l->stop) || now >= l->cfg.end_us)
            break;
        while (next <= now) {
            if (w->in_flight < w->max_in_flight)
                start_call(w);
            else
                cstats_skipped(l->cfg.stats);
            k++;
            next = l->cfg.start_us + (int64_t)(w->phase_us + (double)k * w->period_us);
        }
        int64_t until = next < l->cfg.end_us ? next : l->cfg.end_us;
        grpc_event ev = grpc_completion_queue_next(w->cq, deadline_at(until), NULL);
        if (ev.type == GRPC_OP_COMPLETE)
            call_ended(w, ev.tag, ev.success != 0);
    }
    /* Drain: every call has a deadline, so this ends. */
    while (w->in_flight > 0) {
        grpc_event ev =
            grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type == GRPC_OP_COMPLETE)
            call_ended(w, ev.tag, ev.success != 0);
    }
    return NULL;
}

lookaside_status load_start(const load_config *cfg, load **out)
{
    if (cfg == NULL || out == NULL || cfg->stats == NULL || !(cfg->rate > 0) ||
        cfg->concurrency == 0 || cfg->threads == 0 || cfg->threads > MAX_WORKERS ||
        (cfg->client == NULL && cfg->channel == NULL) || (cfg->client && cfg->service == NULL))
        return LOOKASIDE_EINVAL;
    load *l = calloc(1, sizeof *l);
    if (l == NULL)
        return LOOKASIDE_ENOMEM;
    l->cfg = *cfg;
    l->request = demo_echo_pack_request(cfg->message ? cfg->message : "hello");
    if (l->request == NULL) {
        free(l);
        return LOOKASIDE_ENOMEM;
    }
    l->nw = cfg->threads;
    double gap_us = 1e6 / cfg->rate;
    for (uint32_t i = 0; i < l->nw; i++) {
        worker *w = &l->w[i];
        w->l = l;
        w->cq = grpc_completion_queue_create_for_next(NULL);
        w->phase_us = gap_us * i;
        w->period_us = gap_us * l->nw;
        /* Split the in-flight cap; the first workers take the remainder. */
        w->max_in_flight = cfg->concurrency / l->nw + (i < cfg->concurrency % l->nw ? 1 : 0);
        if (w->max_in_flight == 0)
            w->max_in_flight = 1;
    }
    for (uint32_t i = 0; i < l->nw; i++) {
        if (pthread_create(&l->w[i].thread, NULL, worker_main, &l->w[i]) != 0) {
            load_stop(l);
            load_join(l);
            load_destroy(l);
            return LOOKASIDE_EINTERNAL;
        }
        l->w[i].started = true;
    }
    *out = l;
    return LOOKASIDE_OK;
}

void load_stop(load *l) { atomic_store(&l->stop, true); }

void load_join(load *l)
{
    for (uint32_t i = 0; i < l->nw; i++) {
        if (l->w[i].started) {
            pthread_join(l->w[i].thread, NULL);
            l->w[i].started = false;
        }
    }
}

void load_destroy(load *l)
{
    if (l == NULL)
        return;
    for (uint32_t i = 0; i < l->nw; i++) {
        worker *w = &l->w[i];
        if (w->cq) {
            grpc_completion_queue_shutdown(w->cq);
            while (grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL)
                       .type != GRPC_QUEUE_SHUTDOWN) {
            }
            grpc_completion_queue_destroy(w->cq);
        }
    }
    grpc_byte_buffer_destroy(l->request);
    free(l);
}
