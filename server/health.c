/* grpc.health.v1.Health: Check and Watch, overall ("") and per service.
 * A service is SERVING when its published list has a backend with weight >
 * 0, NOT_SERVING when it is known but has none (also while empty within its
 * retention), unknown otherwise (Check: NOT_FOUND). The server as a whole
 * is SERVING until shutdown begins. Reads snapshots only. */
#include <stdlib.h>

#include "grpc/health/v1/health.pb-c.h"
#include "services.h"

typedef Grpc__Health__V1__HealthCheckResponse__ServingStatus hstatus;

/* overall: the server itself; else snap is the service (NULL: unknown). */
static hstatus service_status(server_ctx *ctx, bool overall, const snap_service *snap)
{
    if (ctx->shutting_down)
        return GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
    if (overall)
        return GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    if (snap == NULL || !snap->known)
        return GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
    return snap->serving > 0 ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                             : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
}

static void check_start(rpc_call *c, const ProtobufCMessage *m)
{
    server_ctx *ctx = rpc_method_ctx(c);
    const Grpc__Health__V1__HealthCheckRequest *req = (const Grpc__Health__V1__HealthCheckRequest *)m;
    Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    if (req->service[0] == '\0') {
        resp.status = service_status(ctx, true, NULL);
    } else {
        const snap_service *snap =
            name_valid(req->service) ? registry_snapshot(ctx->reg, req->service) : NULL;
        if (snap == NULL || !snap->known) {
            rpc_fail(c, LOOKASIDE_ENOTFOUND, "unknown service");
            return;
        }
        resp.status = service_status(ctx, false, snap);
    }
    rpc_reply(c, &resp.base);
}

typedef struct hwatch {
    reg_sub sub;
    rpc_call *call;
    int sent;        /* last status sent, -1 none */
    bool overall;
} hwatch;

static void hwatch_push(hwatch *h)
{
    server_ctx *ctx = rpc_method_ctx(h->call);
    hstatus st = service_status(ctx, h->overall, registry_sub_snapshot(ctx->reg, &h->sub));
    if ((int)st == h->sent || rpc_send_in_flight(h->call))
        return;
    Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    resp.status = st;
    if (rpc_send(h->call, &resp.base))
        h->sent = (int)st;
}

static void hwatch_on_publish(reg_sub *sub, const snap_service *s)
{
    (void)s;
    hwatch_push((hwatch *)sub);
}

static void watch_start(rpc_call *c, const ProtobufCMessage *m)
{
    server_ctx *ctx = rpc_method_ctx(c);
    const Grpc__Health__V1__HealthCheckRequest *req = (const Grpc__Health__V1__HealthCheckRequest *)m;
    if (req->service[0] != '\0' && !name_valid(req->service)) {
        rpc_fail(c, LOOKASIDE_EINVAL, "service: not a valid service name");
        return;
    }
    hwatch *h = calloc(1, sizeof *h);
    if (h == NULL) {
        rpc_fail(c, LOOKASIDE_ENOMEM, "out of memory");
        return;
    }
    h->call = c;
    h->sent = -1;
    h->overall = req->service[0] == '\0';
    h->sub.on_publish = hwatch_on_publish;
    lookaside_status st =
        h->overall ? LOOKASIDE_OK : registry_subscribe(ctx->reg, req->service, &h->sub);
    if (st != LOOKASIDE_OK) {
        free(h);
        rpc_fail(c, st, "too many services being watched");
        return;
    }
    rpc_set_user(c, h);
    hwatch_push(h);
}

static void watch_send_done(rpc_call *c, bool ok)
{
    hwatch *h = rpc_user(c);
    if (ok && h)
        hwatch_push(h);
}

static void watch_close(rpc_call *c, bool cancelled)
{
    (void)cancelled;
    server_ctx *ctx = rpc_method_ctx(c);
    hwatch *h = rpc_user(c);
    if (h == NULL)
        return;
    if (h->sub.svc)
        registry_unsubscribe(ctx->reg, &h->sub);
    free(h);
}

size_t health_methods(server_ctx *ctx, rpc_method *out)
{
    out[0] = (rpc_method){
        .path = "/grpc.health.v1.Health/Check",
        .kind = RPC_UNARY,
        .req_desc = &grpc__health__v1__health_check_request__descriptor,
        .max_req_bytes = ctx->max_request_bytes,
        .ctx = ctx,
        .on_start = check_start,
    };
    out[1] = (rpc_method){
        .path = "/grpc.health.v1.Health/Watch",
        .kind = RPC_SERVER_STREAM,
        .req_desc = &grpc__health__v1__health_check_request__descriptor,
        .max_req_bytes = ctx->max_request_bytes,
        .ctx = ctx,
        .on_start = watch_start,
        .on_send_done = watch_send_done,
        .on_close = watch_close,
    };
    return 2;
}
