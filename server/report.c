/* lookaside.v1.LoadReporter/Report: backends register, report load, drain. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "services.h"
#include "util.h"

typedef struct reporter {
    reg_owner owner;
    rpc_call *call;
    server_ctx *ctx;
    reg_backend *b;
    uint64_t accepted;
    bool ack_pending;
    bool durable;       /* the registration is committed: acks may flow */
    int64_t last_ack_ms;   /* monotonic; when the last ack was sent */
    uint64_t ack_timer;    /* loop timer for a held-back ack; 0 none */
} reporter;

static void ack_due(loop *l, void *arg);

/* An ack promises that the registration is committed to the database: the
 * first one waits for registry_await_durable. Acks are coalesced: while one
 * cannot go (not durable yet, a send in flight, ctx->ack_gap_ms not over) the
 * next one carries the latest count. A reporter sends about one Load a
 * second, so it gets each ack at once; a backlog (a reporter catching up, a
 * pipelining client) shares one ack instead of one write (and one TLS
 * record) per message. The last ack is always sent, at most ack_gap_ms
 * late (ack_due). */
static void send_ack(reporter *rp)
{
    if (rp->b == NULL)
        return;
    rp->ack_pending = true;
    if (!rp->durable || rpc_send_in_flight(rp->call) || rp->ack_timer != 0)
        return;   /* on_durable, report_send_done or ack_due sends it */
    int64_t now = clock_mono_ms();
    int64_t gap = rp->ctx->ack_gap_ms;
    if (now - rp->last_ack_ms < gap) {
        rp->ack_timer =
            loop_timer_add(rpc_loop(rp->call), rp->last_ack_ms + gap, ack_due, rp);
        if (rp->ack_timer != 0)
            return;
    }
    rp->ack_pending = false;
    rp->last_ack_ms = now;
    Lookaside__V1__ReportAck ack = LOOKASIDE__V1__REPORT_ACK__INIT;
    ack.report_interval_ms = registry_cfg(rp->ctx->reg)->report_interval_ms;
    ack.token = rp->b->token;
    ack.accepted = rp->accepted;
    ack.state = rp->b->draining ? LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_DRAINING
                                : LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_SERVING;
    rpc_send(rp->call, &ack.base);
}

static void ack_due(loop *l, void *arg)
{
    (void)l;
    reporter *rp = arg;
    rp->ack_timer = 0;
    if (rp->ack_pending)
        send_ack(rp);
}

static void on_durable(reg_owner *o)
{
    reporter *rp = (reporter *)o;
    rp->durable = true;
    send_ack(rp);
}

static void on_dropped(reg_owner *o, lookaside_status code, const char *why)
{
    reporter *rp = (reporter *)o;
    rp->b = NULL;
    if (code != LOOKASIDE_OK)
        rpc_fail(rp->call, code, "%s", why ? why : "dropped");
}

/* Checks one load number: finite, >= 0, not absurd. */
static bool num_ok(double v) { return isfinite(v) && v >= 0 && v <= 1e12; }

static const char *load_invalid(const Lookaside__V1__Load *l)
{
    if (!num_ok(l->cpu_utilization))
        return "load.cpu_utilization";
    if (!num_ok(l->mem_utilization))
        return "load.mem_utilization";
    if (!num_ok(l->application_utilization))
        return "load.application_utilization";
    if (!num_ok(l->rps_fractional))
        return "load.rps_fractional";
    if (!num_ok(l->eps))
        return "load.eps";
    if (l->n_utilization > 64)
        return "load.utilization (more than 64 entries)";
    for (size_t i = 0; i < l->n_utilization; i++) {
        if (l->utilization[i]->key == NULL || strlen(l->utilization[i]->key) > 64)
            return "load.utilization key";
        if (!num_ok(l->utilization[i]->value))
            return "load.utilization value";
    }
    return NULL;
}

static void do_register(reporter *rp, const Lookaside__V1__Register *reg)
{
    char msg[200];
    /* Authorization (server/auth.h): report:SERVICE for this identity (a
     * Register.credential counts as a bearer token), and register-any unless
     * the address is one of the peer's own. */
    rpc_auth_add_token(rp->call, reg->credential);
    if (!rpc_authorize(rp->call, AUTH_PERM_REPORT, reg->service))
        return;
    const auth_peer *who = rpc_auth_peer(rp->call);
    if (who && !auth_address_is_peer(who, reg->address)) {
        lookaside_status a = auth_check(rp->ctx->auth, who, AUTH_PERM_REGISTER_ANY, NULL);
        if (a != LOOKASIDE_OK) {
            rpc_fail(rp->call, a,
                     "register.address: not an address of this peer (%s), and identity '%s' "
                     "lacks register-any", rpc_peer_host(rp->call), rpc_identity(rp->call));
            return;
        }
    }
    rp->owner.identity = rpc_identity(rp->call);
    reg_backend *b = NULL;
    lookaside_status st =
        registry_attach(rp->ctx->reg, reg->service, reg->address, reg->zone, &rp->owner, &b,
                        msg, sizeof msg);
    if (st != LOOKASIDE_OK) {
        rpc_fail(rp->call, st, "%s", msg);   /* EINVAL, ELIMIT, EPERM (held by another) */
        return;
    }
    rp->b = b;
    rp->accepted++;
    METRIC_INC(registrations);
    log_info("report", "%s %s registered (zone %s) from %s", b->svc->name, b->address,
             b->zone[0] ? b->zone : "-", rpc_peer(rp->call));
    registry_await_durable(rp->ctx->reg, &rp->owner);
}

static void report_message(rpc_call *c, const ProtobufCMessage *m)
{
    reporter *rp = rpc_user(c);
    if (m == NULL) {
        /* Half-close: the backend is done. */
        if (rp->b) {
            log_info("report", "%s %s: stream closed by backend", rp->b->svc->name,
                     rp->b->address);
            registry_detach(rp->ctx->reg, rp->b, true);
            rp->b = NULL;
        }
        rpc_finish(c, GRPC_STATUS_OK, "bye");
        return;
    }
    const Lookaside__V1__LoadReport *r = (const Lookaside__V1__LoadReport *)m;
    switch (r->kind_case) {
    case LOOKASIDE__V1__LOAD_REPORT__KIND_REGISTER:
        if (rp->b != NULL) {
            rpc_fail(c, LOOKASIDE_EINVAL, "register: sent twice on one stream");
            return;
        }
        do_register(rp, r->register_);
        return;
    case LOOKASIDE__V1__LOAD_REPORT__KIND_LOAD: {
        if (rp->b == NULL) {
            rpc_fail(c, LOOKASIDE_ESTATE,
                     "the first message on a Report stream must be register");
            return;
        }
        const char *bad = load_invalid(r->load);
        if (bad) {
            rpc_fail(c, LOOKASIDE_EINVAL, "%s: must be a finite number between 0 and 1e12", bad);
            return;
        }
        snap_util util[SNAP_UTIL_MAX];
        size_t n_util = r->load->n_utilization;   /* <= 64 = SNAP_UTIL_MAX, checked above */
        for (size_t i = 0; i < n_util; i++)
            util[i] = (snap_util){r->load->utilization[i]->key, r->load->utilization[i]->value};
        storage_load l = {
            .cpu = r->load->cpu_utilization,
            .mem = r->load->mem_utilization,
            .app = r->load->application_utilization,
            .rps = r->load->rps_fractional,
            .eps = r->load->eps,
            .in_flight = r->load->in_flight,
        };
        registry_report(rp->ctx->reg, rp->b, &l, util, n_util);
        METRIC_INC(reports_received);
        rp->accepted++;
        send_ack(rp);
        return;
    }
    case LOOKASIDE__V1__LOAD_REPORT__KIND_DRAIN:
        if (rp->b == NULL) {
            rpc_fail(c, LOOKASIDE_ESTATE,
                     "the first message on a Report stream must be register");
            return;
        }
        registry_touch(rp->ctx->reg, rp->b);
        registry_set_draining(rp->ctx->reg, rp->b, r->drain->draining);
        METRIC_ADD(drains, r->drain->draining ? 1 : 0);
        rp->accepted++;
        send_ack(rp);
        return;
    default:
        rpc_fail(c, LOOKASIDE_EINVAL, "LoadReport: none of register, load, drain is set");
        return;
    }
}

static void report_start(rpc_call *c, const ProtobufCMessage *m)
{
    (void)m;
    reporter *rp = calloc(1, sizeof *rp);
    if (rp == NULL) {
        rpc_fail(c, LOOKASIDE_ENOMEM, "out of memory");
        return;
    }
    rp->owner.dropped = on_dropped;
    rp->owner.durable = on_durable;
    rp->call = c;
    rp->ctx = rpc_method_ctx(c);
    rpc_set_user(c, rp);
}

static void report_send_done(rpc_call *c, bool ok)
{
    reporter *rp = rpc_user(c);
    if (ok && rp && rp->ack_pending)
        send_ack(rp);
}

static void report_close(rpc_call *c, bool cancelled)
{
    reporter *rp = rpc_user(c);
    if (rp == NULL)
        return;
    if (rp->ack_timer != 0)
        loop_timer_cancel(rpc_loop(c), rp->ack_timer);
    if (rp->b) {
        log_info("report", "%s %s: stream %s", rp->b->svc->name, rp->b->address,
                 cancelled ? "lost" : "ended");
        /* Lost (cancelled, transport gone) is an unclean loss that
         * self-preservation may hold; anything else is the backend's doing. */
        registry_detach(rp->ctx->reg, rp->b, !cancelled);
        rp->b = NULL;
    }
    free(rp);
}

size_t report_methods(server_ctx *ctx, rpc_method *out)
{
    out[0] = (rpc_method){
        .path = "/lookaside.v1.LoadReporter/Report",
        .kind = RPC_BIDI,
        .req_desc = &lookaside__v1__load_report__descriptor,
        .max_req_bytes = ctx->max_report_bytes,
        .ctx = ctx,
        .on_start = report_start,
        .on_message = report_message,
        .on_send_done = report_send_done,
        .on_close = report_close,
    };
    return 1;
}
