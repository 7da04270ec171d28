/* lookasidectl health: grpc.health.v1.Health/Check of the balancer ("") or
 * of one service. */
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "ctl_json.h"
#include "grpc/health/v1/health.pb-c.h"

int cmd_health(ctl_ctx *ctx)
{
    const char *service = ctx->nargs > 0 ? ctx->args[0] : "";
    ctl_conn *c = NULL;
    int rc = ctl_open(ctx, &c);
    if (rc != CTL_EXIT_OK)
        return rc;
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    req.service = (char *)service;
    ProtobufCMessage *m = NULL;
    ctl_status st;
    memset(&st, 0, sizeof st);
    if (ctl_unary(c, "/grpc.health.v1.Health/Check", &req.base,
                  &grpc__health__v1__health_check_response__descriptor, &m, ctx->deadline_ms,
                  &st) != 0) {
        rc = ctl_fail(ctx, &st, service);
    } else {
        const Grpc__Health__V1__HealthCheckResponse *r =
            (const Grpc__Health__V1__HealthCheckResponse *)m;
        const char *name = ctl_enum_name(
            &grpc__health__v1__health_check_response__serving_status__descriptor, r->status, "");
        if (ctx->json) {
            json_writer w;
            json_init(&w, stdout);
            json_obj_begin(&w, NULL);
            json_str(&w, "service", service);
            json_str(&w, "status", name);
            json_obj_end(&w);
            json_end_line(&w);
        } else {
            puts(name);
        }
        if (r->status != GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING)
            rc = CTL_EXIT_NOT_SERVING;
        protobuf_c_message_free_unpacked(m, NULL);
    }
    ctl_close(c);
    return rc;
}
