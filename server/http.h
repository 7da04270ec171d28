/* http.h - the operator's HTTP endpoint: /metrics (Prometheus text format),
 * /healthz, /readyz, the live status page (/) and its JSON (/api/status).
 *
 * Threads: libmicrohttpd serves on its own internal thread; a second small
 * thread samples weights once a second for the page's sparklines. Neither
 * touches the registry: per-service data comes from the snapshot catalog
 * (snapshot.h) through the `acquire` callback, counters from metrics.h
 * (atomics). http_server_create/http_set_ready/http_server_destroy are
 * called from the main thread.
 *
 * Access (same rules as the gRPC port, auth.h):
 *   - no TLS and not --insecure ("protected"): connections from peers other
 *     than loopback are closed at accept (counted, logged);
 *   - with TLS configured the endpoint serves HTTPS with the server's
 *     certificate and key, to any peer;
 *   - then every page but /healthz and /readyz needs the watch:* (or admin)
 *     permission: the page and the metrics reveal every backend. A bearer
 *     token ("Authorization: Bearer TOKEN", or from a browser Basic
 *     credential with the token as password) is checked against the policy;
 *     without a policy file outside TLS the anonymous peer has it (the demo).
 *     With a client CA the endpoint asks for a client certificate; one that
 *     verifies gives the peer the same identity as on the gRPC port (URI
 *     SAN, else DNS SAN, else CN). It is asked for, not required, so
 *     /healthz and /readyz stay reachable by probes without one; every
 *     other path still needs the permission. Refusals: 401 (no identity) /
 *     403 (not allowed).
 *
 * Readiness (/readyz): 200 once the gRPC port serves and the restored lists
 * are published (http_set_ready), 503 before and from shutdown on. Lists
 * restored from the database but not yet confirmed by their backends'
 * reports (list state RESTORED) count as ready: serving the last known list
 * beats serving none, and clients already treat it as such. /readyz?confirmed=1
 * is stricter: 503 while any service is still only restored.
 *
 * Cardinality: per-backend series (weight and its inputs, labels service and
 * address) are written for at most max_backend_series backends per scrape
 * (services in creation order, backends by address); the rest are counted in
 * lookaside_metrics_backends_omitted. Per-service series are not capped
 * (--max-services bounds them). */
#ifndef LA_HTTP_H
#define LA_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "lookaside_status.h"
#include "snapshot.h"

typedef struct auth auth;
typedef struct http_server http_server;

/* Hands out the latest catalog with a reference (NULL when none yet). */
typedef snap_catalog *(*http_acquire_fn)(void *arg);

typedef struct http_config {
    const char *listen;           /* "HOST:PORT" (IPv4, [IPv6] or a name); port 0 = any */
    http_acquire_fn acquire;
    void *acquire_arg;
    const auth *auth;             /* NULL: loopback only, everything allowed */
    const char *tls_cert_file;    /* PEM; both or neither: HTTPS */
    const char *tls_key_file;
    const char *tls_client_ca_file; /* PEM; with TLS: ask for client certificates */
    size_t max_backend_series;    /* 0 = default 2000 */
    unsigned history_ms;          /* sparkline sample period; 0 = 1000 */
} http_config;

/* Starts the endpoint. Logs "http listening on HOST:PORT (URL)" (tests read
 * it). Errors: EINVAL (bad listen address, unreadable TLS files; err says
 * why), EIO (cannot bind), ENOMEM. */
lookaside_status http_server_create(const http_config *cfg, http_server **out, char *err,
                                    size_t errlen);
/* The bound port. */
int http_server_port(const http_server *h);
/* Readiness as /readyz reports it. Any thread. */
void http_set_ready(http_server *h, bool ready);
/* Stops both threads (in-flight requests finish) and frees. NULL ok. */
void http_server_destroy(http_server *h);

#endif
