/* lookaside.v1.Admin: list services, explain weights, drain, override. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "services.h"

static void list_start(rpc_call *c, const ProtobufCMessage *m)
{
    (void)m;
    server_ctx *ctx = rpc_method_ctx(c);
    size_t n = 0;
    for (reg_service *s = registry_first(ctx->reg); s; s = registry_next(s))
        n++;
    Lookaside__V1__ServiceSummary *items = calloc(n + 1, sizeof *items);
    Lookaside__V1__ServiceSummary **ptrs = calloc(n + 1, sizeof *ptrs);
    if (items == NULL || ptrs == NULL) {
        free(items);
        free(ptrs);
        rpc_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    size_t i = 0;
    for (reg_service *s = registry_first(ctx->reg); s; s = registry_next(s), i++) {
        lookaside__v1__service_summary__init(&items[i]);
        items[i].name = s->name;
        items[i].version = s->version;
        items[i].backends = (uint32_t)s->n;
        items[i].serving = (uint32_t)registry_serving(s);
        items[i].watchers = (uint32_t)s->n_watchers;
        items[i].state = (Lookaside__V1__ListState)s->list_state;
        ptrs[i] = &items[i];
    }
    Lookaside__V1__ListServicesResponse resp = LOOKASIDE__V1__LIST_SERVICES_RESPONSE__INIT;
    resp.n_services = n;
    resp.services = ptrs;
    rpc_reply(c, &resp.base);
    free(items);
    free(ptrs);
}

typedef struct binfo {
    Lookaside__V1__BackendInfo info;
    Lookaside__V1__Backend be;
    Lookaside__V1__WeightExplanation why;
    Lookaside__V1__Load load;
} binfo;

static void describe_start(rpc_call *c, const ProtobufCMessage *m)
{
    server_ctx *ctx = rpc_method_ctx(c);
    const Lookaside__V1__DescribeServiceRequest *req =
        (const Lookaside__V1__DescribeServiceRequest *)m;
    reg_service *s = name_valid(req->service) ? registry_find(ctx->reg, req->service) : NULL;
    if (s == NULL) {
        rpc_finish(c, GRPC_STATUS_NOT_FOUND, "unknown service");
        return;
    }
    binfo *bi = calloc(s->n + 1, sizeof *bi);
    Lookaside__V1__BackendInfo **ptrs = calloc(s->n + 1, sizeof *ptrs);
    if (bi == NULL || ptrs == NULL) {
        free(bi);
        free(ptrs);
        rpc_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    int64_t now = clock_mono_ms();
    for (size_t i = 0; i < s->n; i++) {
        reg_backend *b = s->b[i];
        binfo *x = &bi[i];
        lookaside__v1__backend_info__init(&x->info);
        lookaside__v1__backend__init(&x->be);
        lookaside__v1__weight_explanation__init(&x->why);
        lookaside__v1__load__init(&x->load);
        x->be.address = b->address;
        x->be.weight = b->published_weight;
        x->be.zone = b->zone;
        x->be.token = b->token;
        x->be.state = (Lookaside__V1__BackendState)registry_backend_state(b);
        x->be.source = (Lookaside__V1__BackendSource)registry_backend_source(b);
        x->why.utilization = b->w.why.util;
        x->why.rps = b->w.why.rps;
        x->why.eps = b->w.why.eps;
        x->why.raw_weight = b->w.why.raw;
        x->why.clamped_weight = b->w.why.clamped;
        x->why.smoothed_weight = b->w.why.smoothed;
        x->why.slow_start_factor = b->w.why.slow_start;
        x->why.text = b->w.why.text;
        x->load.cpu_utilization = b->load.cpu;
        x->load.mem_utilization = b->load.mem;
        x->load.application_utilization = b->load.app;
        x->load.rps_fractional = b->load.rps;
        x->load.eps = b->load.eps;
        x->load.in_flight = b->load.in_flight;
        x->info.backend = &x->be;
        x->info.explanation = &x->why;
        x->info.last_load = b->has_load ? &x->load : NULL;
        x->info.last_report_age_ms =
            b->reported ? now - b->last_report_mono_ms : -1;
        x->info.weight_override = b->weight_override;
        x->info.first_seen_unix_ms = b->first_seen_wall_ms;
        ptrs[i] = &x->info;
    }
    Lookaside__V1__GrpclbStats lb = LOOKASIDE__V1__GRPCLB_STATS__INIT;
    lb.calls_started = s->lb.started;
    lb.calls_finished = s->lb.finished;
    lb.calls_failed_to_send = s->lb.failed_to_send;
    lb.calls_known_received = s->lb.known_received;
    lb.calls_dropped = s->lb.dropped;
    Lookaside__V1__DescribeServiceResponse resp = LOOKASIDE__V1__DESCRIBE_SERVICE_RESPONSE__INIT;
    resp.service = s->name;
    resp.version = s->version;
    resp.state = (Lookaside__V1__ListState)s->list_state;
    resp.n_backends = s->n;
    resp.backends = ptrs;
    resp.watchers = (uint32_t)s->n_watchers;
    resp.grpclb = &lb;
    resp.policy = (char *)registry_cfg(ctx->reg)->policy->name;
    rpc_reply(c, &resp.base);
    free(bi);
    free(ptrs);
}

static reg_backend *find_target(rpc_call *c, server_ctx *ctx, const char *service,
                                const char *address)
{
    la_addr a;
    char canon[LA_ADDR_STRLEN];
    reg_service *s = name_valid(service) ? registry_find(ctx->reg, service) : NULL;
    if (s == NULL) {
        rpc_finish(c, GRPC_STATUS_NOT_FOUND, "unknown service");
        return NULL;
    }
    if (addr_parse(address, &a) != LOOKASIDE_OK) {
        rpc_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "address: want ip:port or [ipv6]:port");
        return NULL;
    }
    addr_format(&a, canon, sizeof canon);
    reg_backend *b = registry_find_backend(s, canon);
    if (b == NULL)
        rpc_finish(c, GRPC_STATUS_NOT_FOUND, "no backend %s in %s", canon, service);
    return b;
}

static void drain_start(rpc_call *c, const ProtobufCMessage *m)
{
    server_ctx *ctx = rpc_method_ctx(c);
    const Lookaside__V1__SetDrainRequest *req = (const Lookaside__V1__SetDrainRequest *)m;
    reg_backend *b = find_target(c, ctx, req->service, req->address);
    if (b == NULL)
        return;
    log_info("admin", "%s %s: %s by admin from %s", req->service, b->address,
             req->draining ? "drain" : "undrain", rpc_peer(c));
    registry_set_draining(ctx->reg, b, req->draining);
    Lookaside__V1__SetDrainResponse resp = LOOKASIDE__V1__SET_DRAIN_RESPONSE__INIT;
    resp.state = b->draining ? LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_DRAINING
                             : LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_SERVING;
    rpc_reply(c, &resp.base);
}

static void override_start(rpc_call *c, const ProtobufCMessage *m)
{
    server_ctx *ctx = rpc_method_ctx(c);
    const Lookaside__V1__SetWeightOverrideRequest *req =
        (const Lookaside__V1__SetWeightOverrideRequest *)m;
    if (req->weight > WEIGHTS_MAX) {
        rpc_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "weight: 0 (clear) or 1..%u", WEIGHTS_MAX);
        return;
    }
    reg_backend *b = find_target(c, ctx, req->service, req->address);
    if (b == NULL)
        return;
    log_info("admin", "%s %s: weight override %u by %s", req->service, b->address, req->weight,
             rpc_peer(c));
    registry_set_override(ctx->reg, b, req->weight);
    Lookaside__V1__SetWeightOverrideResponse resp = LOOKASIDE__V1__SET_WEIGHT_OVERRIDE_RESPONSE__INIT;
    rpc_reply(c, &resp.base);
}

size_t admin_methods(server_ctx *ctx, rpc_method *out)
{
    out[0] = (rpc_method){.path = "/lookaside.v1.Admin/ListServices", .kind = RPC_UNARY,
                          .req_desc = &lookaside__v1__list_services_request__descriptor,
                          .max_req_bytes = ctx->max_request_bytes, .ctx = ctx,
                          .on_start = list_start};
    out[1] = (rpc_method){.path = "/lookaside.v1.Admin/DescribeService", .kind = RPC_UNARY,
                          .req_desc = &lookaside__v1__describe_service_request__descriptor,
                          .max_req_bytes = ctx->max_request_bytes, .ctx = ctx,
                          .on_start = describe_start};
    out[2] = (rpc_method){.path = "/lookaside.v1.Admin/SetDrain", .kind = RPC_UNARY,
                          .req_desc = &lookaside__v1__set_drain_request__descriptor,
                          .max_req_bytes = ctx->max_request_bytes, .ctx = ctx,
                          .on_start = drain_start};
    out[3] = (rpc_method){.path = "/lookaside.v1.Admin/SetWeightOverride", .kind = RPC_UNARY,
                          .req_desc = &lookaside__v1__set_weight_override_request__descriptor,
                          .max_req_bytes = ctx->max_request_bytes, .ctx = ctx,
                          .on_start = override_start};
    return 4;
}
