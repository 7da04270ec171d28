/* services.h - the RPC handlers lookaside-server serves on one port.
 *
 * Each *_methods() function appends its rpc_method entries to a table the
 * caller owns (which must outlive the rpc_server) and returns how many it
 * added. All handlers run on the loop thread and share one server_ctx. */
#ifndef LA_SERVICES_H
#define LA_SERVICES_H

#include <stddef.h>

#include "auth.h"
#include "registry.h"
#include "rpc.h"

typedef struct server_ctx {
    registry *reg;
    auth *auth;                  /* NULL: no authorization (unit tests) */
    size_t max_report_bytes;     /* cap of one LoadReport message */
    size_t max_request_bytes;    /* cap of other requests */
    uint32_t grpclb_stats_ms;    /* client stats interval asked of grpclb clients */
    size_t grpclb_max_entries;   /* grpclb server list length cap */
    uint32_t ack_gap_ms;         /* least time between two acks on one Report
                                    stream (the last always sent, by a loop
                                    timer); 0: every ack at once (fuzz) */
    bool shutting_down;
} server_ctx;

size_t balancer_methods(server_ctx *ctx, rpc_method *out);
size_t report_methods(server_ctx *ctx, rpc_method *out);
size_t health_methods(server_ctx *ctx, rpc_method *out);
size_t admin_methods(server_ctx *ctx, rpc_method *out);
/* grpc.lb.v1.LoadBalancer/BalanceLoad (grpclb for stock gRPC clients). */
size_t grpclb_methods(server_ctx *ctx, rpc_method *out);

#endif
