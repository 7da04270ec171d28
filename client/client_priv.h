/* client_priv.h - what the client's files share: the client and service
 * structs and the functions one file calls in another. Not installed.
 *
 *   client.c          public API, the loop's tick, teardown
 *   client_backend.c  channels, connectivity watches, snapshot publishing
 *   client_watch.c    Watch streams, list merging, DNS fallback, test hooks
 *
 * Threads and locking are described at the top of client.c. */
#ifndef LA_CLIENT_PRIV_H
#define LA_CLIENT_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <grpc/grpc.h>

#include "bgloop.h"
#include "call.h"
#include "channel.h"
#include "lbconn.h"
#include "lookaside.h"
#include "pick.h"

#define CONN_WATCH_MS 30000      /* connectivity watches re-armed at least this often */
#define FALLBACK_WARMUP_MS 5000  /* a re-created fallback channel takes over by then */
#define RECLAIM_POLL_MS 50       /* retry period while something awaits reclamation */
/* Failure-percentage ejection (gRFC A50's defaults but a 1 s window: a
 * client reacts within seconds, not tens of seconds). */
#define EJECT_FP_THRESHOLD 85
#define EJECT_FP_MIN_VOLUME 20
#define EJECT_FP_INTERVAL_MS 1000

typedef struct la_service {
    /* Set before the service is published; read by pick. */
    char name[254];
    uint32_t pos_slot;
    lookaside_client *c;
    char *fallback_target;
    _Atomic(pick_snap *) snap;
    _Atomic bool eject_check; /* a backend reached the failure threshold */
    _Atomic bool down_check;  /* pick_done marked a backend down */

    /* Background thread. */
    bool started;
    la_backend **list; /* current backends, sorted by addr [written under mu] */
    size_t n;
    la_backend *unlinked; /* left the list, not yet tagged (next publish) */
    la_call *watch;
    la_lbretry retry;
    int64_t watch_since_ms;
    uint64_t streams;
    bool have_lb_list; /* a non-empty list came from the balancer */
    la_backend *fallback;
    la_backend *fallback_next; /* re-resolving replacement, warming up */
    int64_t fallback_refresh_ms;
    int64_t fallback_next_deadline_ms;
    int64_t eject_next_ms;
    int64_t fp_window_end_ms; /* 0: no window started */
    bool dirty;
    bool unknown_logged;
    uint64_t calls_seen; /* picks done, at the last activity check */

    /* Under c->mu. */
    grpc_byte_buffer *injected; /* client_inject_list, not yet applied */
    lookaside_list_source source;
    uint64_t version;
    int64_t list_ms;
    uint32_t valid_for_ms;
    bool lb_connected;
    uint32_t pickable;
    bool zone_local;
    uint64_t lists;
    uint64_t heartbeats;
    uint64_t lists_published; /* lists when the last snapshot was published */
    uint64_t reconnects;
    bool ready;
} la_service;

struct lookaside_client {
    la_lbconn lb;            /* balancer targets and channels */
    la_chan_cfg backend_cfg; /* backend and fallback channels' settings */
    char *zone;
    char *client_id;
    char *fallback_target;
    uint32_t connect_timeout_ms;
    uint32_t fallback_refresh_ms;
    uint32_t max_services;
    pick_params pp;
    eject_params ep;

    la_service **services; /* append-only, max_services slots */
    _Atomic size_t n_services;

    pthread_mutex_t mu;
    pthread_cond_t cond;
    bgloop *loop;
    _Atomic bool stopping;

    _Atomic int open_channels;

    /* Background thread. */
    bool tearing_down;
    int live_calls;
    int live_watches;
    pick_retired retired;
};

/* client.c */
la_service *client_find_service(lookaside_client *c, const char *name);

/* client_backend.c (loop thread) */
/* A backend with a channel told to connect at once and a connectivity
 * watch. fallback: addr is a gRPC target for round_robin; else a canonical
 * "ip:port". NULL on failure. */
la_backend *client_backend_open(lookaside_client *c, la_service *svc, const char *addr,
                                bool fallback);
/* Out of the list: queued for retirement at the next publish. */
void client_backend_unlink(la_service *svc, la_backend *b);
/* Rechecks backends pick_done marked down and republishes (when
 * svc->down_check was set). */
void client_down_check(la_service *svc);
/* retired_reclaim's close callback. */
void client_backend_close(la_backend *b);
/* Builds and publishes svc's snapshot; retires the old one and the backends
 * unlinked since the last publish; then updates info and wakes waiters. */
void client_publish(la_service *svc);

/* client_watch.c (loop thread) */
/* Removes b, a backend kept by self-preservation whose channel failed. */
void client_drop_held(la_service *svc, la_backend *b);
void client_watch_start(la_service *svc);
/* Applies a packed ServerList as if it came on svc's Watch stream. */
void client_apply_list(la_service *svc, grpc_byte_buffer *bb);
/* Enters, refreshes or waits for the DNS fallback; lowers *next to when it
 * wants to run again. */
void client_fallback_tick(la_service *svc, int64_t now, int64_t *next);

#endif
