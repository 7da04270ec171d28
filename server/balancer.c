/* lookaside.v1.Balancer: Watch (pushed lists) and GetServerList. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "services.h"

typedef struct watcher {
    reg_sub sub;
    rpc_call *call;
    server_ctx *ctx;
    uint64_t sent_version;
    bool heartbeats;            /* the client set accepts_heartbeat */
    int64_t push_published_ms;  /* publication time of the list being sent (metrics) */
} watcher;

static void watcher_push(watcher *w, const snap_service *snap)
{
    if (snap == NULL || snap->packed == NULL || w->sent_version >= snap->version)
        return;
    /* At most one send in flight: when one is, the send completion pushes
     * whatever is latest then. A slow watcher skips versions, never queues. */
    if (rpc_send_in_flight(w->call))
        return;
    if (rpc_send_buffer(w->call, snap->packed)) {
        w->sent_version = snap->version;
        w->push_published_ms = snap->published_unix_ms;
    }
}

static void watch_on_publish(reg_sub *sub, const snap_service *snap)
{
    watcher_push((watcher *)sub, snap);
}

/* Only when the watcher is up to date and idle: otherwise a list is on its
 * way, which says as much. */
static void watch_on_heartbeat(reg_sub *sub, const snap_service *snap, grpc_byte_buffer *hb)
{
    watcher *w = (watcher *)sub;
    if (w->heartbeats && w->sent_version == snap->version && !rpc_send_in_flight(w->call))
        rpc_send_buffer(w->call, hb);
}

static void watch_start(rpc_call *c, const ProtobufCMessage *m)
{
    server_ctx *ctx = rpc_method_ctx(c);
    const Lookaside__V1__WatchRequest *req = (const Lookaside__V1__WatchRequest *)m;
    if (!name_valid(req->service)) {
        rpc_fail(c, LOOKASIDE_EINVAL,
                 "service: not a valid service name (1-253 bytes of letters, digits, '-', "
                 "'_', '.')");
        return;
    }
    if (strlen(req->client_id) > 128 || !zone_valid(req->client_zone)) {
        rpc_fail(c, LOOKASIDE_EINVAL, "client_id over 128 bytes or client_zone not a valid zone");
        return;
    }
    watcher *w = calloc(1, sizeof *w);
    if (w == NULL) {
        rpc_fail(c, LOOKASIDE_ENOMEM, "out of memory");
        return;
    }
    w->call = c;
    w->ctx = ctx;
    w->heartbeats = req->accepts_heartbeat;
    w->sub.on_publish = watch_on_publish;
    w->sub.on_heartbeat = watch_on_heartbeat;
    lookaside_status st = registry_subscribe(ctx->reg, req->service, &w->sub);
    if (st != LOOKASIDE_OK) {
        free(w);
        rpc_fail(c, st, "too many services being watched");
        return;
    }
    registry_count_watcher(ctx->reg, w->sub.svc, +1);
    rpc_set_user(c, w);
    log_debug("balancer", "watch %s from %s (%s)", req->service, rpc_peer(c), req->client_id);
    watcher_push(w, registry_sub_snapshot(ctx->reg, &w->sub));
}

static void watch_send_done(rpc_call *c, bool ok)
{
    watcher *w = rpc_user(c);
    if (ok && w)
        metrics_push_done(&w->push_published_ms);
    if (ok && w)
        watcher_push(w, registry_sub_snapshot(w->ctx->reg, &w->sub));
}

static void watch_close(rpc_call *c, bool cancelled)
{
    (void)cancelled;
    server_ctx *ctx = rpc_method_ctx(c);
    watcher *w = rpc_user(c);
    if (w == NULL)
        return;
    if (w->sub.svc) {
        registry_count_watcher(ctx->reg, w->sub.svc, -1);
        registry_unsubscribe(ctx->reg, &w->sub);
    }
    free(w);
}

static void get_start(rpc_call *c, const ProtobufCMessage *m)
{
    server_ctx *ctx = rpc_method_ctx(c);
    const Lookaside__V1__WatchRequest *req = (const Lookaside__V1__WatchRequest *)m;
    char canon[254];
    if (!registry_canon_name(req->service, canon)) {
        rpc_fail(c, LOOKASIDE_EINVAL, "service: not a valid service name");
        return;
    }
    const snap_service *snap = registry_snapshot(ctx->reg, canon);
    if (snap != NULL && snap->packed != NULL) {
        rpc_reply_buffer(c, snap->packed);
        return;
    }
    /* What Watch would send first for a name nobody registered: version 1. */
    Lookaside__V1__ServerList sl = LOOKASIDE__V1__SERVER_LIST__INIT;
    sl.service = canon;
    sl.version = 1;
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
