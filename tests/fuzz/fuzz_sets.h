/* fuzz_sets.h - the methods each handler fuzz target drives, in the order
 * the script's method byte indexes them (fuzz_handlers.c and the corpus
 * generator share it). Report is in every set: registered backends are
 * what the other handlers read. */
#ifndef LA_FUZZ_SETS_H
#define LA_FUZZ_SETS_H

#include <stddef.h>

#define FZ_REPORT "/lookaside.v1.LoadReporter/Report"
#define FZ_WATCH "/lookaside.v1.Balancer/Watch"
#define FZ_GET "/lookaside.v1.Balancer/GetServerList"
#define FZ_LIST "/lookaside.v1.Admin/ListServices"
#define FZ_DESCRIBE "/lookaside.v1.Admin/DescribeService"
#define FZ_DRAIN "/lookaside.v1.Admin/SetDrain"
#define FZ_OVERRIDE "/lookaside.v1.Admin/SetWeightOverride"
#define FZ_GRPCLB "/grpc.lb.v1.LoadBalancer/BalanceLoad"
#define FZ_HCHECK "/grpc.health.v1.Health/Check"
#define FZ_HWATCH "/grpc.health.v1.Health/Watch"

typedef struct fz_set {
    const char *target;          /* fuzz target name */
    const char *paths[6];
    size_t n;
    unsigned flags;              /* fz_server_run flags (FZ_AUTH) */
} fz_set;

static const fz_set FZ_SETS[] = {
    {"fuzz_report", {FZ_REPORT, FZ_WATCH}, 2, 0},
    {"fuzz_balancer", {FZ_WATCH, FZ_GET, FZ_REPORT}, 3, 0},
    {"fuzz_admin", {FZ_LIST, FZ_DESCRIBE, FZ_DRAIN, FZ_OVERRIDE, FZ_REPORT}, 5, 0},
    {"fuzz_grpclb", {FZ_GRPCLB, FZ_REPORT}, 2, 0},
    {"fuzz_health", {FZ_HCHECK, FZ_HWATCH, FZ_REPORT}, 3, 0},
    /* Authorization and the no-hijack registration rules under a policy. */
    {"fuzz_auth", {FZ_REPORT, FZ_WATCH, FZ_GET, FZ_DRAIN, FZ_LIST, FZ_HCHECK}, 6, 1u},
};

#endif
