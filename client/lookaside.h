/* lookaside.h - liblookaside: per-RPC weighted picks from a look-aside
 * balancer (the client), and the backend side that reports load to it (the
 * reporter).
 *
 * CLIENT. A lookaside_client watches one or more services on the balancer
 * (lookaside.v1.Balancer/Watch) from its own background thread, keeps exactly
 * one gRPC channel per backend in each service's current list (connected at
 * once, closed after its in-flight calls when the backend leaves the list),
 * and answers lookaside_pick() per RPC with a channel connected DIRECTLY to
 * the chosen backend. The application makes its call on that channel and
 * then reports how the call ended with lookaside_pick_done().
 *
 *     lookaside_client_options o;
 *     lookaside_client_options_init(&o);
 *     o.lb_target = "10.0.0.5:7000";
 *     lookaside_client *c;
 *     if (lookaside_client_create(&o, &c) != LOOKASIDE_OK) ...
 *     lookaside_client_watch(c, "web", "dns:///web.prod.svc:5000");
 *     struct lookaside_pick p;
 *     if (lookaside_pick(c, "web", &p) == LOOKASIDE_OK) {
 *         ... grpc_channel_create_call(p.channel, ...) ... run the call ...
 *         lookaside_pick_done(c, &p, status, latency_us);
 *     }
 *     lookaside_client_destroy(c);
 *
 * How picks are made: each service has an immutable snapshot (the pickable
 * backends and a smooth-weighted-round-robin table over their weights) that
 * the background thread replaces atomically whenever anything changes. A
 * pick takes no lock: it reads the snapshot, takes the next entry of the
 * table from a per-thread position and a second, random entry (both drawn
 * by weight: weighted power of two choices), keeps the second only when it
 * costs less relative to its weight - cost: its calls in flight times their
 * mean latency (the wait a new call can expect), or the calls in flight
 * alone until both have a latency (so with nothing in flight shares are
 * exactly the weights, and a backend whose calls pile up or slow down -
 * slow, or over its capacity before the balancer's weights say so, as at a
 * cold start when every weight is still equal - gets less at once), and
 * counts the call as in flight on the chosen backend. The latency is the
 * one passed to lookaside_pick_done (calls without a fault; a mean weighted
 * 1/8 per call). In-flight counts and latencies are kept per group of
 * threads (the calling thread's stripe): exact when one thread makes the
 * calls, a per-thread sample otherwise.
 *
 * Which backends are pickable (in this order of preference):
 *  - never: backends not in the current list, DRAINING backends, weight 0;
 *  - healthy: not ejected (see below), whose channel is not in
 *    TRANSIENT_FAILURE or SHUTDOWN, and whose connection has not broken: a
 *    channel that leaves READY (the backend died or closed its connection),
 *    or a call ending UNAVAILABLE while the channel is not READY, takes the
 *    backend out of the picks at once (picks skip it even before the next
 *    snapshot) until its channel is READY again. A backend that has not
 *    connected yet is picked (its calls wait for the connection). When no
 *    backend is healthy the library
 *    picks among the non-ejected ones, then among all of them, rather than
 *    failing (a pick that will fail fast is more useful than no pick);
 *  - zone preference: when the client has a zone and zone_affinity is on,
 *    picks go only to healthy backends of the client's zone while that zone
 *    (a) still has at least zone_min_healthy_percent of its listed weight
 *    healthy and (b) holds at least zone_min_healthy_percent of an even
 *    per-zone share of all healthy weight (healthy weight / number of zones
 *    with healthy backends). (a) stops preferring a zone that lost much of its
 *    capacity; (b) stops a small zone from being flooded by its own clients.
 *    Otherwise picks spread over all healthy backends of every zone.
 *
 * Outlier ejection counts the statuses that say a backend is broken:
 * UNAVAILABLE, UNIMPLEMENTED, INTERNAL, UNKNOWN and DATA_LOSS given to
 * lookaside_pick_done (not the caller's own errors such as CANCELLED,
 * DEADLINE_EXCEEDED or INVALID_ARGUMENT), and the channel falling into
 * TRANSIENT_FAILURE. A backend is ejected after eject_consecutive_failures
 * of them in a row, or (failure percentage, after gRFC A50) when at least
 * 85 % of at least 20 calls it ended in the last 1 s window failed. It is
 * ejected for eject_base_ms x (times ejected), at most eject_max_ms; at most
 * eject_max_percent of a service's backends (at least one) are ejected at
 * once. Ejected backends return automatically.
 *
 * Fail static: when the balancer's stream breaks, the last list stays in use
 * and the library reconnects with exponential backoff and jitter (backoff_
 * initial_ms doubling to backoff_max_ms, by default 100 ms to a cap of 1 s;
 * each wait is randomised to 60..100 % of its base, so it never exceeds the
 * cap), trying the balancer targets in turn. The short cap is deliberate: a
 * balancer that comes back is watched again (and reported to) within about
 * a second, inside the window in which a restarted balancer keeps the
 * backends it restored. The balancer channels' own reconnect backoff is
 * capped at half of backoff_max_ms, so that they are connected by the
 * library's next try.
 *
 * Staleness: a list is stale when nothing (list or heartbeat) has arrived on
 * the Watch stream for valid_for_ms. The client asks for heartbeats
 * (WatchRequest.accepts_heartbeat): a ServerList with heartbeat set and the
 * current version confirms the list in use without touching its backends; a
 * heartbeat for another version is ignored.
 *
 * Self-preservation (after Eureka's, and the balancer's own rule): a new
 * list may remove at most half (rounded up, so a lone backend may leave) of
 * the currently listed serving backends whose channels are not failing. When a list would remove more at once without their
 * being drained first (a partition between balancer and backends, an
 * expired lease, a balancer that lost its state), the client keeps the
 * excess, preferring connected ones; kept backends are still picked, and
 * leave when their connection fails or, by the same rule, with later lists.
 * Backends the list marked DRAINING, and backends whose connection has
 * failed, leave at once and do not count. When no non-empty list arrives within
 * connect_timeout_ms of lookaside_client_watch() and the service has a
 * fallback target, picks hand out one plain gRPC channel on that target with
 * the round_robin policy until the balancer answers (the fallback channel is
 * re-created every fallback_refresh_ms so that DNS changes are seen). An
 * empty list the balancer marks as "unknown service" never replaces a
 * non-empty list the client already has (a balancer restarted without its
 * database must not empty the client).
 *
 * REPORTER. A lookaside_reporter registers one backend with the balancer on a
 * lookaside.v1.LoadReporter/Report stream from its own thread, then sends load
 * at the interval the balancer asks for. It measures requests per second,
 * errors per second and in-flight calls from the call_started/call_finished
 * hooks, and process CPU utilisation from getrusage() over the interval
 * divided by the cores the process may run on; the application can add or
 * override figures with lookaside_reporter_set_load() or a callback.
 *
 * Errors: every fallible function returns a lookaside_status (see
 * lookaside_status.h; lookaside_status_str() names it). Out-pointers are only
 * written on LOOKASIDE_OK unless stated otherwise.
 *
 * gRPC: the library calls grpc_init() in each create function and
 * grpc_shutdown() in the matching destroy, so it can be used with or without
 * the application's own grpc_init(). It needs gRPC C core 1.51 or later.
 *
 * Threads: the client and the reporter each run one background thread that
 * never waits inside gRPC, so the application's calls are polled and
 * completed on the application's own threads, as on a plain channel. gRPC
 * makes I/O progress only while some thread polls: while the application
 * makes no calls, the background thread polls briefly itself, every 2 ms
 * after activity backing off to every 25 ms, so a list pushed to an idle
 * client is applied up to 25 ms later than to a busy one.
 *
 * Credentials and channel args: by default every channel the library opens
 * is insecure. The options take, for the balancer channel and (client only)
 * for backend channels, a grpc_channel_credentials pointer (NULL:
 * insecure) and a grpc_channel_args pointer (NULL: none). The credentials
 * are borrowed by the options and referenced by the library until the
 * client or reporter is destroyed, so the application may release its own
 * reference once the create function has returned. The args are copied
 * (strings duplicated, pointer args copied through their vtable); they are
 * applied to every channel of that kind, and where they set the same key as
 * the library (reconnect backoff, the fallback channel's round_robin
 * policy) the application's value wins. For TLS with a name that differs
 * from the dialled address, put GRPC_SSL_TARGET_NAME_OVERRIDE_ARG in the
 * args. lookaside_tls_credentials_create() builds TLS credentials from PEM
 * files.
 *
 * Logging: records of level INFO and above go to stderr as one-line records
 * by default; lookaside_log_set() changes the level and/or hands records to
 * the application instead.
 *
 * ABI RULE. The shared library's ABI changes only by addition: public
 * structs only ever gain members at their end, functions are only added,
 * and nothing is removed or changes meaning. Structs the application
 * allocates are passed together with their size: the names
 * lookaside_client_options_init, lookaside_client_create,
 * lookaside_reporter_options_init, lookaside_reporter_create,
 * lookaside_client_service_info, lookaside_client_backends and
 * lookaside_reporter_info_get are macros that pass sizeof to the *_sized
 * functions. The library reads and writes only the first size bytes, and
 * members the application's struct lacks take their defaults. So a program
 * built against an older lookaside.h keeps working with a newer .so (the
 * 0.1.0 names without a size are still exported and mean the 0.1.0 sizes),
 * and the SOVERSION changes only if this rule is ever broken. Handles
 * (lookaside_client, lookaside_reporter, lookaside_service) are opaque;
 * struct lookaside_pick is fixed. LOOKASIDE_VERSION_* say which header a
 * program was built with, lookaside_version() which library it runs on. */
#ifndef LOOKASIDE_H
#define LOOKASIDE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/grpc.h>
#include <grpc/status.h>

#include "lookaside_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header; the library's is lookaside_version(). */
#define LOOKASIDE_VERSION_MAJOR 0
#define LOOKASIDE_VERSION_MINOR 1
#define LOOKASIDE_VERSION_PATCH 0
#define LOOKASIDE_VERSION_STR "0.1.0"
/* e.g. #if LOOKASIDE_VERSION_NUMBER >= 0x000100 */
#define LOOKASIDE_VERSION_NUMBER                                                  \
    ((LOOKASIDE_VERSION_MAJOR << 16) | (LOOKASIDE_VERSION_MINOR << 8) |           \
     LOOKASIDE_VERSION_PATCH)

/* Version of the library, e.g. "0.1.0". Static string. Thread-safe. */
const char *lookaside_version(void);

typedef enum lookaside_log_level {
    LOOKASIDE_LOG_DEBUG = 0,
    LOOKASIDE_LOG_INFO = 1,
    LOOKASIDE_LOG_WARN = 2,
    LOOKASIDE_LOG_ERROR = 3,
    LOOKASIDE_LOG_OFF = 4
} lookaside_log_level;

/* Receives one log record: its level, the library's module ("client",
 * "reporter", ...) and the message (one line, NUL-terminated, valid during
 * the call; repeated records of one kind are rate-limited and summarised).
 * Records arrive one at a time, from any of the library's or the
 * application's threads; fn must not call liblookaside. */
typedef void (*lookaside_log_fn)(void *arg, lookaside_log_level level, const char *module,
                                 const char *message);

/* Sets the lowest level the library logs (default LOOKASIDE_LOG_INFO;
 * records below it are not even formatted) and where records go: fn (with
 * arg), or stderr when fn is NULL. Process-wide (the library has one
 * logger); best called before creating clients or reporters. Any thread. */
void lookaside_log_set(lookaside_log_level level, lookaside_log_fn fn, void *arg);

/* ====================================================================== client */

typedef struct lookaside_client lookaside_client;

typedef struct lookaside_client_options {
    /* Required. The balancer: a comma-separated list of gRPC channel targets
     * tried in turn, e.g. "127.0.0.1:7000", "10.0.0.5:7000,10.0.0.6:7000" or
     * "dns:///lb.prod.svc:7000" (one target can itself resolve to several
     * balancers). A target that fails is left for the next one at once;
     * backoff applies once every target has failed. Copied. */
    const char *lb_target;
    /* The client's failure domain ("us-east1-b"); NULL or "" for none. Sent to
     * the balancer and used for zone preference. Copied. */
    const char *zone;
    /* Identifies this process in the balancer's logs; NULL for
     * "lookaside-client/<pid>". At most 128 bytes. Copied. */
    const char *client_id;
    /* Fallback target for services watched without their own (NULL: none),
     * e.g. "dns:///web.prod.svc:5000". Copied. */
    const char *fallback_target;
    /* How long lookaside_client_watch() waits for a first non-empty list
     * before using the fallback target. Default 3000. */
    uint32_t connect_timeout_ms;
    /* Reconnect backoff towards the balancer. Defaults 100 and 1000. */
    uint32_t backoff_initial_ms;
    uint32_t backoff_max_ms;
    /* Outlier ejection. Defaults: 5 failures, 30000 ms base, 300000 ms max,
     * 10 % of a service's backends (at least one) ejected at once. */
    uint32_t eject_consecutive_failures;
    uint32_t eject_base_ms;
    uint32_t eject_max_ms;
    uint32_t eject_max_percent;
    /* Zone preference (see the top of this file). Default on when zone is
     * set; set zone_affinity_off to disable. zone_min_healthy_percent
     * default 50. */
    bool zone_affinity_off;
    uint32_t zone_min_healthy_percent;
    /* How often the fallback channel is re-created to re-resolve its name.
     * Default 30000. */
    uint32_t fallback_refresh_ms;
    /* At most this many services per client. Default 64. */
    uint32_t max_services;
    /* Channel settings (see "Credentials and channel args" above). For the
     * balancer channel: */
    grpc_channel_credentials *balancer_creds;
    const grpc_channel_args *balancer_args;
    /* ... and for every backend channel (and the fallback channel): */
    grpc_channel_credentials *backend_creds;
    const grpc_channel_args *backend_args;
} lookaside_client_options;

/* Fills *opt with zeros and the defaults above (lb_target stays NULL).
 * Zero fields passed to lookaside_client_create also mean "default".
 * (A macro: see the ABI rule at the top.) */
#define lookaside_client_options_init(opt) \
    lookaside_client_options_init_sized((opt), sizeof *(opt))
void lookaside_client_options_init_sized(lookaside_client_options *opt, size_t size);

/* Creates a client and starts its background thread. It does not contact the
 * balancer until a service is watched. All strings in *opt are copied.
 * Returns LOOKASIDE_EINVAL (no lb_target, an invalid zone or an empty
 * target in the list), LOOKASIDE_ENOMEM, or LOOKASIDE_EINTERNAL (the thread
 * could not start). *out is owned by the caller: lookaside_client_destroy.
 * Any thread. (A macro: see the ABI rule; a size below the 0.1.0 struct is
 * LOOKASIDE_EINVAL.) */
#define lookaside_client_create(opt, out) \
    lookaside_client_create_sized((opt), sizeof *(opt), (out))
lookaside_status lookaside_client_create_sized(const lookaside_client_options *opt, size_t size,
                                               lookaside_client **out);

/* Starts watching service (DNS-name syntax, 1..253 bytes) on the balancer.
 * fallback_target (a gRPC target such as "dns:///web:5000", copied) is used
 * when the balancer does not answer in time; NULL uses the client's
 * fallback_target option. Returns at once; picks return LOOKASIDE_EUNAVAIL
 * until a list arrives (see lookaside_client_wait_ready). Watching a service
 * twice is LOOKASIDE_OK and changes nothing. LOOKASIDE_EINVAL for a bad name,
 * LOOKASIDE_ELIMIT past max_services, LOOKASIDE_ESHUTDOWN during destroy.
 * Any thread. */
lookaside_status lookaside_client_watch(lookaside_client *c, const char *service,
                                        const char *fallback_target);

/* A watched service, for picks without a lookup by name. Owned by the
 * client: valid until lookaside_client_destroy. */
typedef struct lookaside_service lookaside_service;

/* lookaside_client_watch, also returning the service's handle in *out
 * (also when the service was already watched). */
lookaside_status lookaside_client_watch_service(lookaside_client *c, const char *service,
                                                const char *fallback_target,
                                                lookaside_service **out);

/* Blocks until service has something to pick (a list from the balancer or
 * the fallback channel) or timeout_ms passes. LOOKASIDE_OK,
 * LOOKASIDE_ETIMEOUT, LOOKASIDE_ENOTFOUND (not watched). Any thread except
 * the library's own. */
lookaside_status lookaside_client_wait_ready(lookaside_client *c, const char *service,
                                             uint32_t timeout_ms);

/* The result of a pick. Everything in it is owned by the library and valid
 * until lookaside_pick_done() is called on it. */
struct lookaside_pick {
    /* A channel connected directly to the chosen backend (or, in fallback,
     * the round_robin channel). Borrowed: do not destroy it; create calls on
     * it as usual. It may also be used for calls started before pick_done. */
    grpc_channel *channel;
    /* "ip:port" of the backend, or the fallback target. Borrowed. */
    const char *address;
    /* The library's handle; do not touch. */
    void *internal_;
};

/* Chooses a backend for one RPC of service and fills *out. Lock-free: takes
 * no mutex, allocates nothing, makes no system call; a few tens of ns on
 * a 10-backend service (bench_pick). Every successful
 * pick must be ended with exactly one lookaside_pick_done() (it counts as in
 * flight until then, which keeps the backend's channel open).
 * Returns LOOKASIDE_OK; LOOKASIDE_ENOTFOUND when the service is not watched;
 * LOOKASIDE_EUNAVAIL when it has no pickable backend yet (or its list is
 * empty); LOOKASIDE_EINVAL for NULL arguments. Any thread, concurrently. */
lookaside_status lookaside_pick(lookaside_client *c, const char *service,
                                struct lookaside_pick *out);

/* lookaside_pick on a handle from lookaside_client_watch_service: the same
 * without finding the service by name (a little cheaper with many
 * services). End it with lookaside_pick_done as usual. */
lookaside_status lookaside_pick_service(lookaside_service *s, struct lookaside_pick *out);

/* Ends a pick: status is how the call ended (UNAVAILABLE, UNIMPLEMENTED,
 * INTERNAL, UNKNOWN and DATA_LOSS count towards outlier ejection, any other
 * status resets the consecutive count), latency_us its
 * duration (recorded in the backend's statistics and, for a call without a
 * fault, folded into the latency that later picks weigh; pass 0 if
 * unknown). After
 * this, *pick's fields must no longer be used and the handle is cleared.
 * Calling it twice on the same pick is detected and ignored. Any thread,
 * concurrently; it must be called before lookaside_client_destroy(). */
void lookaside_pick_done(lookaside_client *c, struct lookaside_pick *pick,
                         grpc_status_code status, int64_t latency_us);

typedef enum lookaside_list_source {
    LOOKASIDE_SOURCE_NONE = 0,         /* nothing yet */
    LOOKASIDE_SOURCE_LB = 1,           /* a live list from the balancer */
    LOOKASIDE_SOURCE_FALLBACK_DNS = 2, /* the fallback round_robin channel */
    LOOKASIDE_SOURCE_RESTORED = 3      /* a list the balancer restored from its
                                          database after a restart */
} lookaside_list_source;

/* "none", "lb", "fallback-dns", "restored". Static string. */
const char *lookaside_list_source_str(lookaside_list_source s);

typedef struct lookaside_service_info {
    lookaside_list_source source;
    uint64_t version;         /* ServerList.version; 0 without a list */
    int64_t age_ms;           /* since the last list or heartbeat arrived; -1
                                 without a list */
    uint32_t valid_for_ms;    /* from the balancer */
    bool stale;               /* age_ms > valid_for_ms (still used: fail static) */
    bool lb_connected;        /* the Watch stream is up right now */
    uint32_t backends;        /* backends in the list (all states) */
    uint32_t pickable;        /* backends picks go to right now */
    uint32_t ejected;         /* backends ejected as outliers */
    bool zone_local;          /* picks are restricted to the client's zone */
    uint64_t lists_received;  /* ServerList messages received (not heartbeats) */
    uint64_t reconnects;      /* Watch streams started after the first */
    /* Added after 0.1.0's first release (see the ABI rule): */
    uint64_t heartbeats;      /* heartbeats that confirmed the list in use */
    uint32_t held;            /* backends kept by self-preservation */
} lookaside_service_info;

/* Describes service's current list. LOOKASIDE_OK, LOOKASIDE_ENOTFOUND (not
 * watched), LOOKASIDE_EINVAL. Takes the client's mutex briefly. Any thread.
 * (A macro: see the ABI rule.) */
#define lookaside_client_service_info(c, service, out) \
    lookaside_client_service_info_sized((c), (service), (out), sizeof *(out))
lookaside_status lookaside_client_service_info_sized(lookaside_client *c, const char *service,
                                                     lookaside_service_info *out, size_t size);

typedef struct lookaside_backend_info {
    char address[56];
    char zone[64];
    char token[64];
    uint32_t weight;
    bool draining;              /* DRAINING in the list */
    bool ejected;
    bool pickable;              /* in the current pick snapshot */
    grpc_connectivity_state connectivity;
    int64_t in_flight;          /* picks not yet done */
    uint64_t calls;             /* picks done */
    uint64_t failures;          /* of which ended with a fault status (see
                                   outlier ejection) */
    uint64_t latency_us_total;  /* sum of the latencies given to pick_done */
    /* Added after 0.1.0's first release (see the ABI rule): */
    bool held;                  /* kept by self-preservation */
    bool down;                  /* its connection broke; not picked until back */
} lookaside_backend_info;

/* Copies up to cap backends of service's current list into out and sets *n
 * to the number of backends in the list (which may exceed cap). The fallback
 * channel is not a listed backend (see lookaside_service_info.source).
 * Takes the client's mutex briefly. Any thread.
 * LOOKASIDE_OK, LOOKASIDE_ENOTFOUND, LOOKASIDE_EINVAL. (A macro: see the ABI
 * rule; the array's stride is sizeof *out.) */
#define lookaside_client_backends(c, service, out, cap, n) \
    lookaside_client_backends_sized((c), (service), (out), (cap), (n), sizeof *(out))
lookaside_status lookaside_client_backends_sized(lookaside_client *c, const char *service,
                                                 lookaside_backend_info *out, size_t cap,
                                                 size_t *n, size_t size);

/* Stops the background thread, closes every channel and frees the client.
 * Every pick must have been ended with lookaside_pick_done() and no other
 * call on c may run concurrently or follow. destroy(NULL) is a no-op. */
void lookaside_client_destroy(lookaside_client *c);

/* Creates TLS channel credentials from PEM files: ca_file, the roots that
 * verify the server (NULL: gRPC's default roots); cert_file and key_file,
 * this side's certificate chain and private key for mutual TLS (both NULL
 * for none; one without the other is LOOKASIDE_EINVAL). Files are read now
 * (at most 1 MiB each). Returns LOOKASIDE_OK, LOOKASIDE_EINVAL (not PEM),
 * LOOKASIDE_ENOTFOUND (no such file), LOOKASIDE_EIO, LOOKASIDE_ETOOBIG,
 * LOOKASIDE_ENOMEM. *out is the caller's: grpc_channel_credentials_release()
 * (after passing it to a create function, if it likes). Any thread. */
lookaside_status lookaside_tls_credentials_create(const char *ca_file, const char *cert_file,
                                                  const char *key_file,
                                                  grpc_channel_credentials **out);

/* ==================================================================== reporter */

typedef struct lookaside_reporter lookaside_reporter;

/* A load sample. A field left at 0 (or a negative value) means "not given":
 * for rps, eps, in_flight and cpu_utilization the library then sends its own
 * measurement; the other fields are sent as given. Values must be finite. */
typedef struct lookaside_load {
    double cpu_utilization;         /* 0..1 of the cores the process may use */
    double mem_utilization;         /* 0..1 of the memory limit */
    double application_utilization; /* when > 0 the balancer uses it instead of CPU */
    double rps;                     /* requests per second */
    double eps;                     /* errors per second */
    int64_t in_flight;              /* requests in flight */
} lookaside_load;

/* Called on the reporter's thread before each load report with *load filled
 * with what the library measured and what lookaside_reporter_set_load()
 * gave; it may change any field. It must not block and must not call
 * lookaside_reporter_stop/destroy. */
typedef void (*lookaside_load_fn)(void *arg, lookaside_load *load);

typedef struct lookaside_reporter_options {
    /* Required. The balancer, as in lookaside_client_options.lb_target. */
    const char *lb_target;
    /* Required. The service this backend serves (DNS-name syntax). */
    const char *service;
    /* Required. "ip:port" or "[ipv6]:port" clients should dial. */
    const char *address;
    /* Failure domain; NULL or "" for none. */
    const char *zone;
    /* Per-service credential the balancer may require; NULL for none. Never
     * logged. */
    const char *credential;
    /* Optional callback, see lookaside_load_fn. */
    lookaside_load_fn load_cb;
    void *load_cb_arg;
    /* Reconnect backoff (as in lookaside_client_options). Defaults 100 and
     * 1000. */
    uint32_t backoff_initial_ms;
    uint32_t backoff_max_ms;
    /* Cores for CPU utilisation; 0 counts the CPUs this process may run on
     * (sched_getaffinity). */
    uint32_t cpu_cores;
    /* The balancer channel's settings, as in lookaside_client_options. */
    grpc_channel_credentials *balancer_creds;
    const grpc_channel_args *balancer_args;
} lookaside_reporter_options;

/* Fills *opt with zeros and the defaults above. (A macro: see the ABI
 * rule.) */
#define lookaside_reporter_options_init(opt) \
    lookaside_reporter_options_init_sized((opt), sizeof *(opt))
void lookaside_reporter_options_init_sized(lookaside_reporter_options *opt, size_t size);

/* Creates a reporter and starts its thread, which connects to the balancer,
 * registers (service, address, zone, credential) and then sends load at the
 * interval each ReportAck asks for (clamped to 100 ms .. 60 s), reconnecting
 * with backoff and jitter whenever the stream ends. Strings are copied.
 * LOOKASIDE_EINVAL (missing or malformed service, address, zone, or a
 * credential over 256 bytes), LOOKASIDE_ENOMEM, LOOKASIDE_EINTERNAL.
 * *out is owned by the caller: lookaside_reporter_destroy. Any thread.
 * (A macro: see the ABI rule.) */
#define lookaside_reporter_create(opt, out) \
    lookaside_reporter_create_sized((opt), sizeof *(opt), (out))
lookaside_status lookaside_reporter_create_sized(const lookaside_reporter_options *opt,
                                                 size_t size, lookaside_reporter **out);

/* Sets figures the application measures itself (copied; see lookaside_load
 * for what zero means). They are sent with every later report until changed.
 * Any thread. */
void lookaside_reporter_set_load(lookaside_reporter *r, const lookaside_load *load);

/* Hooks around each served call, from which the library measures rps, eps
 * and in_flight: call_started when a call arrives, call_finished when it
 * ends. Errors are statuses that point at the server (UNKNOWN, DEADLINE_
 * EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, INTERNAL, UNAVAILABLE, DATA_LOSS).
 * latency_us is kept for statistics. Lock-free; any thread. */
void lookaside_reporter_call_started(lookaside_reporter *r);
void lookaside_reporter_call_finished(lookaside_reporter *r, grpc_status_code status,
                                      int64_t latency_us);

/* Asks the balancer to stop (draining = true) or resume (false) sending new
 * traffic to this backend, without ending the stream. Sent at once when
 * connected, otherwise right after the next registration. Any thread. */
void lookaside_reporter_set_draining(lookaside_reporter *r, bool draining);

typedef struct lookaside_reporter_info {
    bool registered;          /* the stream is up and the balancer acked */
    char token[64];           /* from the last ack; "" before */
    uint32_t interval_ms;     /* report interval in use */
    uint64_t accepted;        /* ReportAck.accepted on the current stream */
    uint64_t loads_sent;      /* Load messages sent, all streams */
    uint64_t streams;         /* Report streams started */
    bool draining;            /* the balancer acknowledged a drain */
} lookaside_reporter_info;

/* Snapshot of the reporter's state. Any thread. (A macro: see the ABI
 * rule.) */
#define lookaside_reporter_info_get(r, out) \
    lookaside_reporter_info_get_sized((r), (out), sizeof *(out))
void lookaside_reporter_info_get_sized(lookaside_reporter *r, lookaside_reporter_info *out,
                                       size_t size);

/* Graceful exit: sends Drain{draining=true}, waits until the balancer's ack
 * counts it (ReportAck.accepted), then half-closes the stream; the reporter
 * does not reconnect afterwards. Waits at most timeout_ms. LOOKASIDE_OK when
 * the drain was acknowledged, LOOKASIDE_ETIMEOUT otherwise (the stream is
 * closed anyway), LOOKASIDE_ESHUTDOWN when already stopped. Any thread
 * except the reporter's own (not from the load callback). */
lookaside_status lookaside_reporter_stop(lookaside_reporter *r, uint32_t timeout_ms);

/* Stops the thread (cancelling the stream if it is still open: the balancer
 * then removes the backend at once) and frees r. No other call on r may run
 * concurrently or follow. destroy(NULL) is a no-op. */
void lookaside_reporter_destroy(lookaside_reporter *r);

#ifdef __cplusplus
}
#endif
#endif
