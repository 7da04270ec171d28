/* client_load.h - the demo client's load generator: echo calls at a fixed
 * rate (open loop: a call is sent when its time comes, whatever the earlier
 * calls are doing), at most `concurrency` in flight (beyond that a due call
 * is skipped and counted), for a fixed time.
 *
 * Each worker thread owns a completion queue and sends rate / threads calls
 * per second, phase-shifted so the workers interleave. Per call it either
 * picks through liblookaside (lookaside_pick -> the call on pick.channel ->
 * lookaside_pick_done with the status and latency) or uses one shared plain
 * channel (the round_robin baseline). Every ended call goes to client_stats.
 *
 * Lifecycle from one thread: load_start -> [load_stop] -> load_join ->
 * load_destroy. */
#ifndef CLIENT_LOAD_H
#define CLIENT_LOAD_H

#include <stdint.h>

#include <grpc/grpc.h>

#include "client_stats.h"
#include "lookaside.h"

typedef struct load_config {
    lookaside_client *client;  /* pick through this ... */
    const char *service;
    grpc_channel *channel;     /* ... or, when client is NULL, call on this */
    double rate;               /* calls per second, > 0 */
    uint32_t concurrency;      /* in flight at most (over all workers), >= 1 */
    uint32_t threads;          /* workers, >= 1 */
    int64_t timeout_ms;        /* per-call deadline */
    int64_t start_us, end_us;  /* CLOCK_MONOTONIC: when to send the first and stop */
    const char *message;       /* EchoRequest.message */
    cstats *stats;
} load_config;

typedef struct load load;

/* Starts the workers. Strings and pointers in cfg must outlive the load.
 * LOOKASIDE_EINVAL, LOOKASIDE_ENOMEM, LOOKASIDE_EINTERNAL. */
lookaside_status load_start(const load_config *cfg, load **out);

/* Stops sending new calls now (before end_us). Any thread; returns at once. */
void load_stop(load *l);

/* Waits until every worker stopped sending and every call in flight ended
 * (each has a deadline, so this is bounded by timeout_ms after end_us). */
void load_join(load *l);

/* destroy(NULL) is a no-op. After load_join. */
void load_destroy(load *l);

#endif
