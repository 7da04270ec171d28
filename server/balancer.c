/* lookaside.v1.Balancer: Watch (pushed lists) and GetServerList. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "services.h"

typedef struct watcher {
    reg_sub sub;
    rpc_call *call;
    uint64_t sent_version;
} watcher;

static void watcher_push(watcher *w)
{
    reg_service *s = w->sub.svc;
    if (s == NULL || s->published == NULL || w->sent_version >= s->version)
        return;
    /* At most one send in flight: when one is, the send completion pushes
     * whatever is latest then. A slow watcher skips versions, never queues. */
    if (rpc_send_in_flight(w->call))
        return;
    if (rpc_send_buffer(w->call, s->published))
        w->sent_version = s->version;
}

static void watch_on_publish(reg_sub *sub, reg_service *s)
{
    (void)s;
    watcher_push((watcher *)sub);
}

static void watch_start(rpc_call *c, const ProtobufCMessage *m)
{
    server_ctx *ctx = rpc_method_ctx(c);
    const Lookaside__V1__WatchRequest *req = (const Lookaside__V1__WatchRequest *)m;
    if (!name_valid(req->service)) {
        rpc_finish(c, GRPC_STATUS_INVALID_ARGUMENT,
                   "service: not a valid service name (1-253 bytes of letters, digits, '-', "
                   "'_', '.')");
        return;
    }
    if (strlen(req->client_id) > 128 || !zone_valid(req->client_zone)) {
        rpc_finish(c, GRPC_STATUS_INVALID_ARGUMENT,
                   "client_id over 128 bytes or client_zone not a valid zone");
        return;
    }
    watcher *w = calloc(1, sizeof *w);
    if (w == NULL) {
        rpc_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    w->call = c;
    w->sub.on_publish = watch_on_publish;
    lookaside_status st = registry_subscribe(ctx->reg, req->service, &w->sub);
    if (st != LOOKASIDE_OK) {
        free(w);
        rpc_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "too many services");
        return;
    }
    w->sub.svc->n_watchers++;
    rpc_set_user(c, w);
    log_debug("balancer", "watch %s from %s (%s)", req->service, rpc_peer(c), req->client_id);
    watcher_push(w);
}

static void watch_send_done(rpc_call *c, bool ok)
{
    watcher *w = rpc_user(c);
    if (ok && w)
        watcher_push(w);
}

static void watch_close(rpc_call *c, bool cancelled)
{
    (void)cancelled;
    server_ctx *ctx = rpc_method_ctx(c);
    watcher *w = rpc_user(c);
    if (w == NULL)
        return;
    if (w->sub.svc) {
        w->sub.svc->n_watchers--;
        registry_unsubscribe(ctx->reg, &w->sub);
    }
    free(w);
}

static void get_start(rpc_call *c, const ProtobufCMessage *m)
{
    server_ctx *ctx = rpc_method_ctx(c);
    const Lookaside__V1__WatchRequest *req = (const Lookaside__V1__WatchRequest *)m;
    if (!name_valid(req->service)) {
        rpc_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "service: not a valid service name");
        return;
    }
    reg_service *s = registry_find(ctx->reg, req->service);
    if (s != NULL && s->published != NULL) {
        rpc_reply_buffer(c, s->published);
        return;
    }
    Lookaside__V1__ServerList sl = LOOKASIDE__V1__SERVER_LIST__INIT;
    sl.service = req->service;
    sl.state = LOOKASIDE__V1__LIST_STATE__LIST_STATE_UNKNOWN_SERVICE;
    sl.generated_at_unix_ms = clock_wall_ms();
    sl.valid_for_ms = registry_cfg(ctx->reg)->valid_for_ms;
    rpc_reply(c, &sl.base);
}

size_t balancer_methods(server_ctx *ctx, rpc_method *out)
{
    out[0] = (rpc_method){
        .path = "/lookaside.v1.Balancer/Watch",
        .kind = RPC_SERVER_STREAM,
        .req_desc = &lookaside__v1__watch_request__descriptor,
        .max_req_bytes = ctx->max_request_bytes,
        .ctx = ctx,
        .on_start = watch_start,
        .on_send_done = watch_send_done,
        .on_close = watch_close,
    };
    out[1] = (rpc_method){
        .path = "/lookaside.v1.Balancer/GetServerList",
        .kind = RPC_UNARY,
        .req_desc = &lookaside__v1__watch_request__descriptor,
        .max_req_bytes = ctx->max_request_bytes,
        .ctx = ctx,
        .on_start = get_start,
    };
    return 2;
}
