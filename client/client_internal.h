/* client_internal.h - hooks into lookaside_client for tests and benchmarks
 * (in liblookaside.a only; not exported from liblookaside.so).
 *
 * client_inject_list hands the background thread a list exactly as if the
 * balancer had sent it on the service's Watch stream, so the whole client
 * (channels, connectivity, snapshots, reclamation) runs without a balancer. */
#ifndef LA_CLIENT_INTERNAL_H
#define LA_CLIENT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "lookaside.h"

typedef struct client_test_backend {
    const char *address; /* "ip:port" */
    uint32_t weight;
    const char *zone;    /* NULL: none */
    bool draining;
} client_test_backend;

/* Queues a ServerList (state LIVE, the given version) for service, which
 * must be watched. Applied by the background thread soon after (a later
 * injection replaces one not yet applied). Any thread. */
lookaside_status client_inject_list(lookaside_client *c, const char *service,
                                    const client_test_backend *b, size_t n, uint64_t version);

/* Backend channels open right now (listed ones plus removed ones still
 * finishing calls), fallback channels included. Any thread. */
int client_open_channels(lookaside_client *c);

/* Lists (injected or received) whose snapshot has been published, 0 when
 * the service is unknown. */
uint64_t client_lists_applied(lookaside_client *c, const char *service);

#endif
