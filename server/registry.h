/* registry.h - services and backends in memory: the authoritative LB state.
 *
 * The registry owns every service and backend, turns load into weights
 * (through a weights policy), publishes a new version of a service's list
 * when membership, state or a weight changes meaningfully, and writes
 * everything behind to storage (the only copy that survives a restart).
 *
 * Write side (this header): the loop thread changes state through
 * registry_attach/report/detach/set_* and registry_dns_update.
 * Read side (snapshot.h): after every change the registry builds an
 * immutable snapshot of the service; every reader -- subscribers on the loop
 * thread, registry_catalog_acquire from any thread -- sees only snapshots.
 *
 * Publishing: changes mark a service dirty; a timer publishes dirty services
 * after push_delay_ms (coalescing bursts). Publishing builds and packs the
 * lookaside.v1.ServerList once, gives it a new version and a new snapshot,
 * and calls every subscriber's on_publish with that snapshot.
 *
 * Versions never repeat for a name: version = max(previous + 1, wall clock in
 * microseconds), so a restart (whose last publishes may not have reached the
 * database) or a service forgotten and registered again later still moves
 * forward. A service the registry does not know publishes version 1. In
 * store mode (etcd) versions follow the store instead: registry_set_store.
 *
 * Liveness and self-preservation: a backend whose stream ends cleanly
 * (half-close, or while draining) leaves at once. One whose stream is lost
 * or that stops reporting is an *unclean* loss: within any preserve_window_ms
 * a service loses at most half of the backends it had when the window began
 * (at least one) this way; the others stay listed as RESTORED (unconfirmed)
 * and are dropped later under the same budget unless they come back.
 * Restored backends (from the database, or held as above) are kept for
 * restore_grace_ms before they count as lost.
 *
 * Services: a name only ever watched is a "phantom" -- it takes no service
 * slot and is freed with its last watcher. A service that has had backends
 * is known: it keeps its version and answers as known while empty, and is
 * forgotten once empty and unwatched for service_retention_ms, or sooner
 * when a new service needs its slot. Names are DNS names: matched and stored
 * in lower case.
 *
 * Threads: loop thread only, except registry_catalog_acquire (any thread).
 * Ownership: the registry owns services and backends; pointers to them stay
 * valid until the subscriber unsubscribes (services) or the owner is told
 * through reg_owner (backends). */
#ifndef LA_REGISTRY_H
#define LA_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

#include <grpc/byte_buffer.h>

#include "loop.h"
#include "lookaside/v1/lookaside.pb-c.h"
#include "snapshot.h"
#include "storage.h"
#include "util.h"
#include "weights.h"

typedef struct registry registry;
typedef struct reg_service reg_service;
typedef struct reg_backend reg_backend;

/* The live stream that registered a backend. */
typedef struct reg_owner {
    /* The registry dropped the backend (eviction, replaced by a newer
     * stream for the same address, shutdown). The owner must end its
     * stream; the backend pointer is invalid once this returns. */
    void (*dropped)(struct reg_owner *o, lookaside_status why_code, const char *why);
    /* Who registered (server/auth.h identity, "" or NULL = anonymous), owned
     * by the owner: only the same identity may replace a live stream. */
    const char *identity;
    /* Optional: everything written for this owner up to
     * registry_await_durable is committed to storage. */
    void (*durable)(struct reg_owner *o);
    struct reg_owner *wprev, *wnext;   /* registry's durable wait list */
    bool waiting;
} reg_owner;

/* Something that wants to hear about a service's published lists. */
typedef struct reg_sub {
    /* A new version was published; snap is borrowed for the call. */
    void (*on_publish)(struct reg_sub *sub, const snap_service *snap);
    /* Optional: the service has been quiet for heartbeat_ms; hb is a packed
     * ServerList{heartbeat=true} of snap->version (borrowed; send copies). */
    void (*on_heartbeat)(struct reg_sub *sub, const snap_service *snap, grpc_byte_buffer *hb);
    struct reg_sub *prev, *next;
    reg_service *svc;           /* opaque handle: read through registry_sub_snapshot */
} reg_sub;

typedef snap_totals grpclb_totals;

struct reg_backend {
    reg_service *svc;
    char address[LA_ADDR_STRLEN];
    la_addr addr;
    char zone[64];
    char token[24];
    int state;                  /* LOOKASIDE__V1__BACKEND_STATE__* */
    bool draining;
    bool reported;              /* a live Report stream owns it */
    bool in_dns;
    bool restored;              /* from the database, not re-reported yet */
    bool local;                 /* registered through this server (mirrored out) */
    bool remote;                /* owned by another replica (registry_remote_put) */
    uint32_t remote_weight;     /* the owning replica's published weight */
    /* Store mode (registry_set_store): the backend's key as the store last
     * returned it, whoever owns it. While the replica follows the store,
     * lists show a backend that reports here as this, not as its live
     * state, so every replica lists the same thing at the same revision. */
    bool store_present, store_draining;
    uint32_t store_weight, store_override;
    char store_zone[64];
    bool dns_mark;              /* scratch for registry_dns_update */
    reg_owner *owner;
    int64_t first_seen_wall_ms;
    int64_t since_mono_ms;      /* added (or restored) at */
    int64_t last_report_mono_ms;
    int64_t last_report_wall_ms;
    bool has_load;
    storage_load load;
    snap_util *util;            /* named utilizations of the latest load */
    size_t n_util;
    int64_t last_load_mono_ms;  /* -1: no Load since registration/restore */
    weights_backend w;
    uint32_t published_weight;
    uint32_t weight_override;
    char cred_hash[17];
    grpclb_totals lb;
};

struct reg_service {
    char name[254];
    uint64_t version;
    reg_backend **b;            /* sorted by address */
    size_t n, cap;
    reg_sub *subs;
    size_t n_subs;
    size_t n_watchers;          /* Balancer.Watch streams (for admin) */
    bool dirty;
    bool known;                 /* has had backends (vs. only watched) */
    bool persisted;
    snap_service *snap;         /* current snapshot (one reference) */
    bool snap_stale;            /* state changed since snap was built */
    uint64_t snap_seq;
    int list_state;             /* LOOKASIDE__V1__LIST_STATE__* */
    int64_t published_mono_ms;
    int64_t last_sent_mono_ms;  /* last publish or heartbeat */
    int64_t last_compute_ms;
    int64_t empty_since_mono_ms;   /* known with no backends since (0: not empty) */
    uint64_t version_floor;     /* registry_version_floor */
    /* Store mode: lists built from the store's view (following) or the
     * live state (not following: the list is marked unconfirmed). */
    bool store_view, unconfirmed;
    uint64_t content_hash;      /* of the last published list (store mode) */
    int64_t loss_window_ms;     /* self-preservation window start */
    size_t loss_base, losses;
    grpclb_totals lb;           /* totals across removed backends too */
    reg_service *hnext;
    reg_service *lnext, *lprev; /* all services, in creation order */
};

typedef struct registry_config {
    uint32_t report_interval_ms;   /* asked of reporters in acks */
    uint32_t evict_intervals;      /* missed intervals before eviction */
    uint32_t max_backends;         /* per service */
    uint32_t max_services;
    int64_t push_delay_ms;         /* coalescing window for publishes */
    int64_t weight_period_ms;      /* how often weights are recomputed */
    int64_t flush_ms;              /* storage write-behind period */
    uint32_t valid_for_ms;         /* ServerList.valid_for_ms */
    int64_t heartbeat_ms;          /* quiet time before a heartbeat (0: valid_for/3) */
    int64_t restore_grace_ms;      /* how long RESTORED backends wait for a report */
    int64_t service_retention_ms;  /* empty, unwatched known services kept this long */
    int64_t preserve_window_ms;    /* self-preservation window */
    int64_t durable_delay_ms;      /* flush this soon when an ack waits for it */
    /* Clock (tests inject a fake one); NULL: the real clocks. */
    int64_t (*mono_ms)(void);
    int64_t (*wall_ms)(void);
    weights_config wcfg;
    const struct weights_policy_ops *policy;
} registry_config;

void registry_config_default(registry_config *c);

/* Creates the registry and restores services and backends from st (which it
 * borrows; st must outlive it). Restored lists are published at once. */
lookaside_status registry_create(loop *l, storage *st, const registry_config *cfg,
                                 registry **out);
/* From now on, streams that end leave their backends' stored rows alone
 * (a restart restores them) and nothing is published. */
void registry_begin_shutdown(registry *r);
/* Drops every backend (telling owners), flushes storage, frees. NULL ok. */
void registry_destroy(registry *r);
const registry_config *registry_cfg(const registry *r);

/* ---- reporting (LoadReporter.Report) ---- */
/* Registers address for service under owner. A backend already owned by
 * another stream of the same owner identity is taken over (the old owner
 * is told). Errors: EINVAL (bad name/address/zone, msg names the field),
 * ELIMIT, EPERM (held by a live stream of another identity; untouched). */
lookaside_status registry_attach(registry *r, const char *service, const char *address,
                                 const char *zone, reg_owner *owner, reg_backend **out,
                                 char *msg, size_t msglen);
/* The owner's stream ended. clean (half-close by the backend, or it was
 * draining): the backend leaves the lists at once (unless DNS still lists
 * it). Not clean (stream lost): an unclean loss under self-preservation.
 * b is invalid afterwards either way. */
void registry_detach(registry *r, reg_backend *b, bool clean);
/* Calls owner->durable once everything written so far is committed (soon:
 * within durable_delay_ms unless storage fails; then retried every flush).
 * The owner must be attached; detaching cancels the wait. */
void registry_await_durable(registry *r, reg_owner *owner);
/* A validated load report; util[0..n_util) are its named utilizations
 * (copied; at most SNAP_UTIL_MAX kept). */
void registry_report(registry *r, reg_backend *b, const storage_load *load,
                     const snap_util *util, size_t n_util);
/* Counts as a report for eviction purposes without load data. */
void registry_touch(registry *r, reg_backend *b);
void registry_set_draining(registry *r, reg_backend *b, bool draining);
void registry_set_override(registry *r, reg_backend *b, uint32_t weight);

/* ---- replicas ---- */
/* Where locally owned backends are mirrored to (etcd mode). Calls are made
 * on the loop thread, synchronously, from inside registry calls: they must
 * not call back into the registry. */
typedef struct reg_mirror_ops {
    /* A backend registered here was added or changed in a way other
     * replicas must see: zone, drain, override, published weight. */
    void (*backend_put)(void *arg, const reg_backend *b);
    /* A backend registered here left the lists. */
    void (*backend_delete)(void *arg, const char *service, const char *address);
    /* Optional: an operator changed the drain or override of a backend
     * another replica owns (b->remote); that replica must apply it. */
    void (*remote_admin)(void *arg, const reg_backend *b);
} reg_mirror_ops;
/* ops NULL: no mirror (the default). */
void registry_set_mirror(registry *r, const reg_mirror_ops *ops, void *arg);

/* Store mode (etcd mode). Versions: ServerList.version = (revision of the
 * service's latest change in the store) << 24, so replicas that have seen
 * the same store publish the same version for it; a list change that is
 * local to this replica (DNS discovery, self-preservation timers, changes
 * taken while not following) adds 1; a list that changes only its
 * unconfirmed flag keeps its version. following: the replica follows the
 * store and has written everything it owns -- lists then show this
 * replica's own backends as the store has them (see reg_backend.store_*);
 * otherwise they show the live state and are marked unconfirmed. The first
 * call turns store mode on (for good); a change of `following` republishes
 * every known service. */
void registry_set_store(registry *r, bool following);

/* A backend owned by another replica, as that replica published it. */
typedef struct reg_remote {
    const char *service, *address, *zone;
    uint32_t weight;            /* published by the owner; used as is */
    bool draining;
    uint32_t weight_override;   /* 0 = none */
    uint64_t revision;          /* the store's revision of this change */
} reg_remote;
/* Adds or updates a remote backend (when a live stream here owns the
 * address only the store view is recorded: the local registration is
 * fresher). Also called for this replica's own writes coming back (store
 * view only). The service's next version is at least rb->revision (store
 * mode: rb->revision << 24). EINVAL (bad name/address/zone), ELIMIT. */
lookaside_status registry_remote_put(registry *r, const reg_remote *rb);
/* A backend's key left the store. A remote backend goes through the
 * self-preservation budget like an unclean local loss (a lost lease or
 * partition must not empty a list in one step); one reporting here only
 * loses its store view. Unknown names are ignored. */
void registry_remote_delete(registry *r, const char *service, const char *address,
                            uint64_t revision);
/* The service's next published version is at least v (an external revision
 * that every replica sees; store mode: v << 24, published again at once).
 * Unknown services are ignored. */
void registry_version_floor(registry *r, const char *service, uint64_t v);

/* ---- DNS discovery ---- */
/* The complete current address set of service from DNS. */
void registry_dns_update(registry *r, const char *service, const la_addr *addrs, size_t n);

/* ---- read side ---- */
/* The latest catalog of every service's snapshot, with a reference
 * (release with snap_catalog_release). Any thread. NULL only before the
 * first catalog exists or on allocation failure. */
snap_catalog *registry_catalog_acquire(registry *r);
/* The current snapshot of a service (refreshed first if stale), borrowed
 * until the caller returns to the loop; NULL when the name is unknown and
 * unwatched. Loop thread. */
const snap_service *registry_snapshot(registry *r, const char *name);
/* The subscription's service's current snapshot (NULL once unsubscribed). */
const snap_service *registry_sub_snapshot(registry *r, const reg_sub *sub);

/* ---- lookups (write side) and subscriptions ---- */
/* Lower-cases name into out (254 bytes); false if it is not a valid name. */
bool registry_canon_name(const char *name, char out[254]);
reg_service *registry_find(registry *r, const char *name);
reg_backend *registry_find_backend(reg_service *s, const char *address);
reg_service *registry_first(registry *r);
reg_service *registry_next(reg_service *s);
/* Subscribes sub to name (the service is created empty if unknown, so the
 * subscriber sees it appear). ELIMIT when too many services. */
lookaside_status registry_subscribe(registry *r, const char *name, reg_sub *sub);
void registry_unsubscribe(registry *r, reg_sub *sub);
/* Runs every periodic job now, as of the registry's clock: publish dirty
 * services, sweep (eviction, restore grace, retention), recompute weights,
 * heartbeats, flush. The timers keep running too; tests with an injected
 * clock call this after moving the clock. */
void registry_tick(registry *r);
/* Publishes every dirty service now (tests, shutdown). */
void registry_publish_dirty(registry *r);
/* The backend's state and source as published (LOOKASIDE__V1__BACKEND_STATE__*,
 * LOOKASIDE__V1__BACKEND_SOURCE__*). */
int registry_backend_state(const reg_backend *b);
int registry_backend_source(const reg_backend *b);

/* Watchers of a service changed by delta (+1/-1), for snapshots. */
void registry_count_watcher(registry *r, reg_service *s, int delta);

/* ---- grpclb stats ---- */
/* Adds d to the service totals (and the backend's with that token),
 * saturating at INT64_MAX. */
void registry_add_grpclb_stats(registry *r, reg_service *s, const char *token,
                               const grpclb_totals *d);

#endif
