/* backend_server.h - the demo backend's gRPC side: a gRPC core server with
 * one unary method, lookaside.demo.v1.Echo/Echo, served through simulated
 * slots (backend_slots.h), with liblookaside's reporter hooks around every
 * call. Any other method is answered UNIMPLEMENTED.
 *
 * Lifecycle: bsrv_create (binds the port) -> bsrv_start -> bsrv_shutdown ->
 * bsrv_destroy, all from one thread (main). The server runs its own
 * completion-queue threads. */
#ifndef BACKEND_SERVER_H
#define BACKEND_SERVER_H

#include <stdint.h>

#include <grpc/grpc_security.h>

#include "lookaside.h"

typedef struct bsrv_config {
    const char *listen;          /* "HOST:PORT"; port 0 = ephemeral */
    const char *name;            /* reply's backend name; NULL = the bound address */
    uint32_t slots;              /* concurrent requests served */
    int64_t service_us;          /* per request; 0 = reply at once, no slots */
    uint32_t threads;            /* completion-queue threads */
    int64_t max_connection_age_ms;   /* 0 = none (gRPC's GRPC_ARG_MAX_CONNECTION_AGE_MS) */
    grpc_server_credentials *creds;  /* borrowed; NULL = plaintext (demo_tls.h) */
} bsrv_config;

typedef struct bsrv bsrv;

/* Creates the server and binds cfg->listen. LOOKASIDE_EINVAL (bad listen
 * address), LOOKASIDE_EIO (cannot bind), LOOKASIDE_ENOMEM, LOOKASIDE_EINTERNAL.
 * Strings in cfg are copied. */
lookaside_status bsrv_create(const bsrv_config *cfg, bsrv **out);

/* "host:port" actually bound, e.g. "127.0.0.2:41234". Valid until destroy. */
const char *bsrv_address(const bsrv *s);
/* The name replies carry. */
const char *bsrv_name(const bsrv *s);

/* Attaches the reporter whose call_started/call_finished hooks count every
 * call (NULL: none). Before bsrv_start only; the caller keeps ownership and
 * destroys it after bsrv_shutdown. */
void bsrv_set_reporter(bsrv *s, lookaside_reporter *r);

/* Starts serving. LOOKASIDE_EINTERNAL if a thread cannot start. */
lookaside_status bsrv_start(bsrv *s);

/* Reads the busy-slot fraction and mean queue length since the previous
 * call (the first call measures since bsrv_start). Returns false when the
 * backend has no slots (service time 0). Any thread. */
bool bsrv_measure(bsrv *s, double *busy_fraction, double *queue_mean);

/* Changes the service time of requests that get a slot from now on
 * (slots_set_service_us); no-op without slots. Any thread. */
void bsrv_set_service_us(bsrv *s, int64_t service_us);

/* Stops accepting calls and lets the ones in progress (queued included)
 * finish for up to grace_ms; then cancels the rest. Returns the number of
 * calls that were cancelled that way (0 = clean). */
int bsrv_shutdown(bsrv *s, int64_t grace_ms);

/* Frees everything (after bsrv_shutdown, or after a failed start).
 * destroy(NULL) is a no-op. */
void bsrv_destroy(bsrv *s);

#endif
