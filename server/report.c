/* lookaside.v1.LoadReporter/Report: backends register, report load, drain. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "services.h"

typedef struct reporter {
    reg_owner owner;
    rpc_call *call;
    server_ctx *ctx;
    reg_backend *b;
    uint64_t accepted;
    bool ack_pending;
} reporter;

static void send_ack(reporter *rp)
{
    if (rp->b == NULL)
        return;
    if (rpc_send_in_flight(rp->call)) {
        rp->ack_pending = true;   /* coalesced: the next ack carries the latest count */
        return;
    }
    rp->ack_pending = false;
    Lookaside__V1__ReportAck ack = LOOKASIDE__V1__REPORT_ACK__INIT;
    ack.report_interval_ms = registry_cfg(rp->ctx->reg)->report_interval_ms;
    ack.token = rp->b->token;
    ack.accepted = rp->accepted;
    ack.state = rp->b->draining ? LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_DRAINING
                                : LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_SERVING;
    rpc_send(rp->call, &ack.base);
}

static void on_dropped(reg_owner *o, grpc_status_code code, const char *why)
{
    reporter *rp = (reporter *)o;
    rp->b = NULL;
    if (code != GRPC_STATUS_OK)
        rpc_finish(rp->call, code, "%s", why ? why : "dropped");
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
    if (rp->ctx->auth) {
        lookaside_status a = auth_check(rp->ctx->auth, reg->service, reg->credential);
        if (a != LOOKASIDE_OK) {
            log_warn("report", "registration of %s for %s from %s refused: %s",
                     reg->address, reg->service, rpc_peer(rp->call), lookaside_status_str(a));
            rpc_finish(rp->call,
                       a == LOOKASIDE_EUNAUTH ? GRPC_STATUS_UNAUTHENTICATED
                                              : GRPC_STATUS_PERMISSION_DENIED,
                       a == LOOKASIDE_EUNAUTH ? "register.credential: required for this service"
                                              : "register.credential: not valid for this service");
            return;
        }
    }
    reg_backend *b = NULL;
    lookaside_status st =
        registry_attach(rp->ctx->reg, reg->service, reg->address, reg->zone, &rp->owner, &b,
                        msg, sizeof msg);
    if (st != LOOKASIDE_OK) {
        rpc_finish(rp->call,
                   st == LOOKASIDE_EINVAL ? GRPC_STATUS_INVALID_ARGUMENT
                                          : GRPC_STATUS_RESOURCE_EXHAUSTED,
                   "%s", msg);
        return;
    }
    rp->b = b;
    rp->accepted++;
    log_info("report", "%s %s registered (zone %s) from %s", b->svc->name, b->address,
             b->zone[0] ? b->zone : "-", rpc_peer(rp->call));
    send_ack(rp);
}

static void report_message(rpc_call *c, const ProtobufCMessage *m)
{
    reporter *rp = rpc_user(c);
    if (m == NULL) {
        /* Half-close: the backend is done. */
        if (rp->b) {
            log_info("report", "%s %s: stream closed by backend", rp->b->svc->name,
                     rp->b->address);
            registry_detach(rp->ctx->reg, rp->b);
            rp->b = NULL;
        }
        rpc_finish(c, GRPC_STATUS_OK, "bye");
        return;
    }
    const Lookaside__V1__LoadReport *r = (const Lookaside__V1__LoadReport *)m;
    switch (r->kind_case) {
    case LOOKASIDE__V1__LOAD_REPORT__KIND_REGISTER:
        if (rp->b != NULL) {
            rpc_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "register: sent twice on one stream");
            return;
        }
        do_register(rp, r->register_);
        return;
    case LOOKASIDE__V1__LOAD_REPORT__KIND_LOAD: {
        if (rp->b == NULL) {
            rpc_finish(c, GRPC_STATUS_FAILED_PRECONDITION,
                       "the first message on a Report stream must be register");
            return;
        }
        const char *bad = load_invalid(r->load);
        if (bad) {
            rpc_finish(c, GRPC_STATUS_INVALID_ARGUMENT,
                       "%s: must be a finite number between 0 and 1e12", bad);
            return;
        }
        storage_load l = {
            .cpu = r->load->cpu_utilization,
            .mem = r->load->mem_utilization,
            .app = r->load->application_utilization,
            .rps = r->load->rps_fractional,
            .eps = r->load->eps,
            .in_flight = r->load->in_flight,
        };
        registry_report(rp->ctx->reg, rp->b, &l);
        rp->accepted++;
        send_ack(rp);
        return;
    }
    case LOOKASIDE__V1__LOAD_REPORT__KIND_DRAIN:
        if (rp->b == NULL) {
            rpc_finish(c, GRPC_STATUS_FAILED_PRECONDITION,
                       "the first message on a Report stream must be register");
            return;
        }
        registry_touch(rp->ctx->reg, rp->b);
        registry_set_draining(rp->ctx->reg, rp->b, r->drain->draining);
        rp->accepted++;
        send_ack(rp);
        return;
    default:
        rpc_finish(c, GRPC_STATUS_INVALID_ARGUMENT,
                   "LoadReport: none of register, load, drain is set");
        return;
    }
}

static void report_start(rpc_call *c, const ProtobufCMessage *m)
{
    (void)m;
    reporter *rp = calloc(1, sizeof *rp);
    if (rp == NULL) {
        rpc_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    rp->owner.dropped = on_dropped;
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
    if (rp->b) {
        log_info("report", "%s %s: stream %s; removed", rp->b->svc->name, rp->b->address,
                 cancelled ? "lost" : "ended");
        registry_detach(rp->ctx->reg, rp->b);
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

/* ------------------------------------------------------------------ auth */

typedef struct auth_entry {
    char service[254];
    char cred[257];
    struct auth_entry *next;
} auth_entry;

struct auth {
    auth_entry *head;
};

lookaside_status auth_load(const char *path, auth **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open report token file", path);
        return LOOKASIDE_EIO;
    }
    auth *a = calloc(1, sizeof *a);
    if (a == NULL) {
        fclose(f);
        return LOOKASIDE_ENOMEM;
    }
    char line[1024];
    int lineno = 0;
    while (fgets(line, sizeof line, f) != NULL && lineno < 100000) {
        lineno++;
        char svc[300], cred[300];
        if (line[0] == '#' || line[0] == '\n')
            continue;
        if (sscanf(line, "%299s %299s", svc, cred) != 2 ||
            (strcmp(svc, "*") != 0 && !name_valid(svc)) || strlen(cred) > 256) {
            snprintf(err, errlen, "%s:%d: want \"SERVICE CREDENTIAL\"", path, lineno);
            fclose(f);
            auth_destroy(a);
            return LOOKASIDE_EINVAL;
        }
        auth_entry *e = calloc(1, sizeof *e);
        if (e == NULL) {
            fclose(f);
            auth_destroy(a);
            return LOOKASIDE_ENOMEM;
        }
        snprintf(e->service, sizeof e->service, "%.253s", svc);
        snprintf(e->cred, sizeof e->cred, "%.256s", cred);
        e->next = a->head;
        a->head = e;
    }
    fclose(f);
    *out = a;
    return LOOKASIDE_OK;
}

/* Constant-time comparison: the time taken must not reveal a prefix. */
static bool cred_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = (unsigned char)(la != lb);
    for (size_t i = 0; i < lb; i++)
        diff |= (unsigned char)(b[i] ^ (i < la ? a[i] : 0));
    return diff == 0;
}

lookaside_status auth_check(const auth *a, const char *service, const char *credential)
{
    const auth_entry *match = NULL;
    for (const auth_entry *e = a->head; e; e = e->next) {
        if (strcmp(e->service, service) == 0) {
            match = e;
            break;
        }
        if (strcmp(e->service, "*") == 0)
            match = e;
    }
    if (credential == NULL || credential[0] == '\0')
        return LOOKASIDE_EUNAUTH;
    if (match == NULL || !cred_equal(credential, match->cred))
        return LOOKASIDE_EPERM;
    return LOOKASIDE_OK;
}

void auth_destroy(auth *a)
{
    if (a == NULL)
        return;
    for (auth_entry *e = a->head, *next; e; e = next) {
        next = e->next;
        free(e);
    }
    free(a);
}
