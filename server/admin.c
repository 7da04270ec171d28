/* lookaside.v1.Admin: list services, explain weights, drain, override.
 * Reads come from snapshots (after publishing anything pending, so an
 * operator sees the effect of the change just made); writes go through the
 * registry and are published at once. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "services.h"

static void list_start(rpc_call *c, const ProtobufCMessage *m)
{
    (void)m;
    server_ctx *ctx = rpc_method_ctx(c);
    /* Anything changed but unpublished shows after this. */
    registry_publish_dirty(ctx->reg);
    snap_catalog *cat = registry_catalog_acquire(ctx->reg);
    size_t n = cat ? cat->n : 0;
    Lookaside__V1__ServiceSummary *items = calloc(n + 1, sizeof *items);
    Lookaside__V1__ServiceSummary **ptrs = calloc(n + 1, sizeof *ptrs);
    if (items == NULL || ptrs == NULL) {
        free(items);
        free(ptrs);
        snap_catalog_release(cat);
        rpc_fail(c, LOOKASIDE_ENOMEM, "out of memory");
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const snap_service *s = cat->s[i];
        if (!s->known)
            continue;   /* only watched: not a service (yet) */
        lookaside__v1__service_summary__init(&items[k]);
        items[k].name = (char *)s->name;
        items[k].version = s->version;
        items[k].backends = (uint32_t)s->n;
        items[k].serving = (uint32_t)s->serving;
        items[k].watchers = s->watchers;
        items[k].state = (Lookaside__V1__ListState)s->list_state;
        ptrs[k] = &items[k];
        k++;
    }
    Lookaside__V1__ListServicesResponse resp = LOOKASIDE__V1__LIST_SERVICES_RESPONSE__INIT;
    resp.n_services = k;
    resp.services = ptrs;
    rpc_reply(c, &resp.base);
    free(items);
    free(ptrs);
    snap_catalog_release(cat);
}

typedef struct binfo {
    Lookaside__V1__BackendInfo info;
    Lookaside__V1__Backend be;
    Lookaside__V1__WeightExplanation why;
    Lookaside__V1__Load load;
    Lookaside__V1__Load__UtilizationEntry *ue;
    Lookaside__V1__Load__UtilizationEntry **uep;
} binfo;

static void binfo_free(binfo *bi, size_t n)
{
    for (size_t i = 0; bi && i < n; i++) {
        free(bi[i].ue);
        free(bi[i].uep);
    }
    free(bi);
}

/* Fills x from one snapshot backend; false on allocation failure. */
static bool fill_backend(binfo *x, const snap_backend *b, int64_t now)
{
    lookaside__v1__backend_info__init(&x->info);
    lookaside__v1__backend__init(&x->be);
    lookaside__v1__weight_explanation__init(&x->why);
    lookaside__v1__load__init(&x->load);
    x->be.address = (char *)b->address;
    x->be.weight = b->weight;
    x->be.zone = (char *)b->zone;
    x->be.token = (char *)b->token;
    x->be.state = (Lookaside__V1__BackendState)b->state;
    x->be.source = (Lookaside__V1__BackendSource)b->source;
    x->why.utilization = b->why.util;
    x->why.rps = b->why.rps;
    x->why.eps = b->why.eps;
    x->why.raw_weight = b->why.raw;
    x->why.clamped_weight = b->why.clamped;
    x->why.smoothed_weight = b->why.smoothed;
    x->why.slow_start_factor = b->why.slow_start;
    x->why.text = (char *)b->why.text;
    x->load.cpu_utilization = b->load.cpu;
    x->load.mem_utilization = b->load.mem;
    x->load.application_utilization = b->load.app;
    x->load.rps_fractional = b->load.rps;
    x->load.eps = b->load.eps;
    x->load.in_flight = b->load.in_flight;
    if (b->n_util > 0) {
        x->ue = calloc(b->n_util, sizeof *x->ue);
        x->uep = calloc(b->n_util, sizeof *x->uep);
        if (x->ue == NULL || x->uep == NULL)
            return false;
        for (size_t k = 0; k < b->n_util; k++) {
            lookaside__v1__load__utilization_entry__init(&x->ue[k]);
            x->ue[k].key = b->util[k].key;
            x->ue[k].value = b->util[k].value;
            x->uep[k] = &x->ue[k];
        }
        x->load.n_utilization = b->n_util;
        x->load.utilization = x->uep;
    }
    x->info.backend = &x->be;
    x->info.explanation = &x->why;
    x->info.last_load = b->has_load ? &x->load : NULL;
    /* -1 until the first Load (registration alone is not a load report). */
    x->info.last_report_age_ms = b->last_load_mono_ms >= 0 ? now - b->last_load_mono_ms : -1;
    x->info.weight_override = b->weight_override;
    x->info.first_seen_unix_ms = b->first_seen_unix_ms;
    return true;
}

static void describe_start(rpc_call *c, const ProtobufCMessage *m)
{
    server_ctx *ctx = rpc_method_ctx(c);
    const Lookaside__V1__DescribeServiceRequest *req =
        (const Lookaside__V1__DescribeServiceRequest *)m;
    registry_publish_dirty(ctx->reg);
    const snap_service *s =
        name_valid(req->service) ? registry_snapshot(ctx->reg, req->service) : NULL;
    if (s == NULL || !s->known) {
        rpc_fail(c, LOOKASIDE_ENOTFOUND, "unknown service");
        return;
    }
    binfo *bi = calloc(s->n + 1, sizeof *bi);
    Lookaside__V1__BackendInfo **ptrs = calloc(s->n + 1, sizeof *ptrs);
    int64_t now = clock_mono_ms();
    bool ok = bi != NULL && ptrs != NULL;
    for (size_t i = 0; ok && i < s->n; i++) {
        ok = fill_backend(&bi[i], &s->b[i], now);
        ptrs[i] = &bi[i].info;
    }
    if (!ok) {
        binfo_free(bi, s->n);
        free(ptrs);
        rpc_fail(c, LOOKASIDE_ENOMEM, "out of memory");
        return;
    }
    Lookaside__V1__GrpclbStats lb = LOOKASIDE__V1__GRPCLB_STATS__INIT;
    lb.calls_started = s->lb.started;
    lb.calls_finished = s->lb.finished;
    lb.calls_failed_to_send = s->lb.failed_to_send;
    lb.calls_known_received = s->lb.known_received;
    lb.calls_dropped = s->lb.dropped;
    Lookaside__V1__DescribeServiceResponse resp = LOOKASIDE__V1__DESCRIBE_SERVICE_RESPONSE__INIT;
    resp.service = (char *)s->name;
    resp.version = s->version;
    resp.state = (Lookaside__V1__ListState)s->list_state;
    resp.n_backends = s->n;
    resp.backends = ptrs;
    resp.watchers = s->watchers;
    resp.grpclb = &lb;
    resp.policy = (char *)s->policy;
    rpc_reply(c, &resp.base);
    binfo_free(bi, s->n);
    free(ptrs);
}

static reg_backend *find_target(rpc_call *c, server_ctx *ctx, const char *service,
                                const char *address)
{
    la_addr a;
    char canon[LA_ADDR_STRLEN];
    reg_service *s = registry_find(ctx->reg, service);
    if (s == NULL || !s->known) {
        rpc_fail(c, LOOKASIDE_ENOTFOUND, "unknown service");
        return NULL;
    }
    if (addr_parse(address, &a) != LOOKASIDE_OK) {
        rpc_fail(c, LOOKASIDE_EINVAL, "address: want ip:port or [ipv6]:port");
        return NULL;
    }
    addr_format(&a, canon, sizeof canon);
    reg_backend *b = registry_find_backend(s, canon);
    if (b == NULL)
        rpc_fail(c, LOOKASIDE_ENOTFOUND, "no backend %s in %s", canon, service);
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
    METRIC_ADD(drains, req->draining ? 1 : 0);
    registry_publish_dirty(ctx->reg);   /* an operator's change goes out at once */
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
        rpc_fail(c, LOOKASIDE_EINVAL, "weight: 0 (clear) or 1..%u", WEIGHTS_MAX);
        return;
    }
    reg_backend *b = find_target(c, ctx, req->service, req->address);
    if (b == NULL)
        return;
    log_info("admin", "%s %s: weight override %u by %s", req->service, b->address, req->weight,
             rpc_peer(c));
    registry_set_override(ctx->reg, b, req->weight);
    registry_publish_dirty(ctx->reg);
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
