/* discovery.h - DNS discovery of backends (headless-service names) with
 * c-ares, driven non-blocking from the server's loop thread.
 *
 * Each discovered service has one target, "dns://[DNS-SERVER[:PORT]]/NAME:PORT"
 * (the gRPC target syntax). NAME is queried for A and AAAA records; the
 * result is the union of both, deduplicated and sorted (IPv4 before IPv6,
 * then by address bytes), each address carrying PORT from the target.
 *
 * Driving: c-ares 1.18 has no thread of its own and the loop thread cannot
 * wait on file descriptors (it blocks in grpc_completion_queue_next). So the
 * loop caps its wait with discovery_next_deadline_ms() and calls
 * discovery_process() every iteration; discovery_process() polls the c-ares
 * sockets with a zero timeout and never blocks. While queries are in flight
 * the deadline is at most DISCOVERY_POLL_MS away.
 *
 * Refresh rule: a name is re-queried refresh_ms after its last answer, or
 * sooner when the answer's smallest record TTL is shorter, but never sooner
 * than DISCOVERY_MIN_TTL_REFRESH_MS because of a TTL:
 *     next = min(refresh_ms, max(min_ttl_ms, DISCOVERY_MIN_TTL_REFRESH_MS))
 * (so a refresh_ms below the floor is still honoured as configured). An
 * empty answer (NXDOMAIN/NODATA) waits refresh_ms. A failed round retries
 * after min(refresh_ms, 1 s << (consecutive failures - 1), 30 s).
 * Only one query round (A + AAAA) is in flight per name; a round that has
 * not finished after DISCOVERY_ROUND_TIMEOUT_MS is cancelled and reported
 * as LOOKASIDE_ETIMEOUT (c-ares itself uses DISCOVERY_TRY_TIMEOUT_MS per try
 * and 2 tries). A round fails as a whole when either query fails (a partial
 * set is never delivered). With an explicit DNS server, SERVFAIL and REFUSED
 * are final at once (there is no other server to try); with the system
 * resolver c-ares first tries the other configured servers.
 *
 * Logging (module "discovery"): info when a set changes (and for the first
 * answer), warn on the first failure of a streak or when its kind changes,
 * info on recovery; repeated failures only at debug level.
 *
 * c-ares library init: discovery_create() takes a reference with
 * ares_library_init() and discovery_destroy() drops it (reference-counted,
 * gRPC takes its own); in c-ares 1.18 that counter is not thread-safe, so
 * create and destroy on the main thread, not concurrently with grpc_init().
 *
 * NAME is queried as given: resolv.conf search domains and /etc/hosts are
 * not used (a headless-service name is expected to be fully qualified).
 *
 * Threading: everything here is loop-thread only. A callback may call
 * discovery_add() and discovery_next_deadline_ms(), but must not call
 * discovery_process() or discovery_destroy(). */
#ifndef LA_DISCOVERY_H
#define LA_DISCOVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lookaside_status.h"
#include "util.h"

/* Longest accepted target and DNS name (without the NUL). */
#define DISCOVERY_TARGET_MAX 320
#define DISCOVERY_NAME_MAX 253
/* Accepted refresh_ms range for discovery_add(). */
#define DISCOVERY_REFRESH_MIN_MS 100
#define DISCOVERY_REFRESH_MAX_MS (24 * 3600 * 1000)
/* Lower bound of a TTL-driven refresh interval. */
#define DISCOVERY_MIN_TTL_REFRESH_MS 1000
/* Poll interval while queries are in flight. */
#define DISCOVERY_POLL_MS 5
/* c-ares per-try timeout (2 tries) and the hard bound of one query round. */
#define DISCOVERY_TRY_TIMEOUT_MS 800
#define DISCOVERY_ROUND_TIMEOUT_MS 2500

typedef struct discovery discovery;

/* Called on the loop thread (from discovery_process) after every query
 * round of a name. st == LOOKASIDE_OK: addrs[0..n) (port set from the
 * target) is the complete current set; n may be 0 when the name has no
 * records (NXDOMAIN or NODATA means "no addresses"). st != OK
 * (LOOKASIDE_ETIMEOUT: no answer in time; LOOKASIDE_EUNAVAIL: SERVFAIL,
 * refused, unreachable server or bad response; LOOKASIDE_ENOMEM): the caller
 * keeps its last known set; addrs is NULL and n is 0. addrs is only valid
 * during the call. */
typedef void (*discovery_cb)(void *arg, const char *service, lookaside_status st,
                             const la_addr *addrs, size_t n);

/* A parsed target. */
typedef struct discovery_target {
    char name[DISCOVERY_NAME_MAX + 1]; /* DNS name, queried as is */
    uint16_t port;                     /* backend port, 1..65535 */
    bool has_server;                   /* false: system resolver (resolv.conf) */
    la_addr server;                    /* DNS server when has_server; port 53 by default */
} discovery_target;

lookaside_status discovery_create(discovery **out);

/* Parses target "dns://[DNS-SERVER:PORT]/NAME:PORT" (gRPC target syntax:
 * "dns:///web.prod.svc.cluster.local:5000" uses the system resolver;
 * "dns://127.0.0.1:1053/web.test:5000" uses that server). The authority may
 * be an IPv4 address with optional port (default 53) or [v6] with optional
 * port. "dns:NAME:PORT" (no authority) is accepted as the system resolver.
 * The scheme is case-insensitive. NAME must be a valid DNS name (at most 253
 * bytes, labels of 1..63 bytes of [A-Za-z0-9_-] not starting or ending with
 * '-', last label not all digits, optional trailing dot; IP literals are
 * refused), PORT 1..65535. LOOKASIDE_EINVAL with a message in err (may be
 * NULL) on anything else. */
lookaside_status discovery_parse_target(const char *target, discovery_target *out, char *err,
                                        size_t errlen);

/* Pure parser for main.c's flag validation: spec is "SERVICE=dns://...".
 * SERVICE must pass name_valid(); the target is checked with
 * discovery_parse_target(). service/target receive the two parts
 * (EINVAL if they do not fit in slen/tlen). */
lookaside_status discovery_parse_spec(const char *spec, char *service, size_t slen, char *target,
                                      size_t tlen, char *err, size_t errlen);

/* Adds a service to poll; the first query starts at the next
 * discovery_process(). refresh_ms must be in
 * [DISCOVERY_REFRESH_MIN_MS, DISCOVERY_REFRESH_MAX_MS]. Errors (message in
 * err): LOOKASIDE_EINVAL (bad service, target, refresh or NULL cb),
 * LOOKASIDE_EEXIST (service already added), LOOKASIDE_ENOMEM, LOOKASIDE_EIO
 * (c-ares could not create a channel, e.g. unreadable resolv.conf). */
lookaside_status discovery_add(discovery *d, const char *service, const char *target,
                               int64_t refresh_ms, discovery_cb cb, void *arg, char *err,
                               size_t errlen);

/* Monotonic ms when discovery_process must run next: the next refresh, or
 * now_ms + DISCOVERY_POLL_MS while queries are in flight; INT64_MAX when
 * nothing is to do (or d is NULL). */
int64_t discovery_next_deadline_ms(discovery *d, int64_t now_ms);

/* Polls the c-ares sockets with a zero timeout, processes answers and
 * timeouts, delivers finished rounds to the callbacks and starts due
 * queries. Never blocks. */
void discovery_process(discovery *d, int64_t now_ms);

/* Cancels all queries (callbacks are not called after destroy begins) and
 * frees everything. NULL: no-op. */
void discovery_destroy(discovery *d);

/* Parses one DNS answer (abuf, alen bytes, as c-ares hands it to a query
 * callback) for family AF_INET (A records) or AF_INET6 (AAAA records).
 * Each address except 0.0.0.0 and :: is appended, with port, to *addrs
 * (realloc'd; *n_addrs entries of *cap_addrs), and *min_ttl_s is lowered to
 * the smallest TTL among them (negative TTLs count as 0; -1 means none seen
 * yet). Returns the c-ares status: ARES_SUCCESS, ARES_ENODATA (no records of
 * the type), a parse error for a malformed answer, or ARES_ENOMEM (what was
 * appended before stays). Pure and thread-safe: no I/O, no logging. */
int discovery_parse_answer(int family, const unsigned char *abuf, int alen, uint16_t port,
                           la_addr **addrs, size_t *n_addrs, size_t *cap_addrs,
                           int64_t *min_ttl_s);

/* Sorts addrs (IPv4 before IPv6, then address bytes, then port) and removes
 * duplicates in place; returns the new count. */
size_t discovery_addrs_normalize(la_addr *addrs, size_t n);

#endif
