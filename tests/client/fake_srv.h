/* fake_srv.h - an in-process gRPC server for liblookaside's tests: a fake
 * balancer (lookaside.v1.Balancer/Watch sends the list the test sets, and
 * every later one; LoadReporter/Report acks each registration) and a fake
 * backend (any other method answers with the status the test sets, OK by
 * default) on one port of 127.0.0.1, with or without TLS.
 *
 * One thread per server drives its completion queue; the test thread only
 * sets what to answer and reads counters (all under the server's mutex).
 * grpc_init must be in effect from fake_start to fake_stop. */
#ifndef FAKE_SRV_H
#define FAKE_SRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/status.h>

typedef struct fake_srv fake_srv;

typedef struct fake_backend {
    const char *address;
    uint32_t weight;
    bool draining;
} fake_backend;

/* Starts a server on 127.0.0.1:port (0: ephemeral) with creds (NULL:
 * insecure; not released here). NULL when it cannot bind. */
fake_srv *fake_start(grpc_server_credentials *creds, int port);
/* "127.0.0.1:PORT" */
const char *fake_addr(const fake_srv *f);
int fake_port(const fake_srv *f);

/* The list every open and future Watch stream gets (sent at once to open
 * ones). valid_for_ms 0: 60000. */
void fake_set_list(fake_srv *f, const fake_backend *b, size_t n, uint64_t version,
                   uint32_t valid_for_ms);
/* Sends a heartbeat (version as given, no backends) on every open Watch
 * stream. */
void fake_heartbeat(fake_srv *f, uint64_t version, uint32_t valid_for_ms);
/* The status every other method answers with. */
void fake_set_status(fake_srv *f, grpc_status_code st);

typedef struct fake_counts {
    int watches;         /* Watch streams accepted */
    int watches_open;
    int heartbeat_ok;    /* Watch requests that set accepts_heartbeat */
    int registrations;   /* Register messages acked */
    int calls;           /* other calls answered */
} fake_counts;
void fake_counts_get(fake_srv *f, fake_counts *out);

/* Stops and frees (cancelling every open call). NULL: no-op. */
void fake_stop(fake_srv *f);

#endif
