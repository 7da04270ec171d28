/* registry.h - services and backends in memory: the authoritative LB state.
 *
 * The registry owns every service and backend, turns load into weights
 * (through a weights policy), publishes a new version of a service's list
 * when membership, state or a weight changes meaningfully, and writes
 * everything behind to storage (the only copy that survives a restart).
 *
 * Publishing: changes mark a service dirty; a timer publishes dirty services
 * after push_delay_ms (coalescing bursts). Publishing builds the
 * lookaside.v1.ServerList once, packs it once, bumps the version and calls
 * every subscriber's on_publish. Subscribers (Watch streams, grpclb streams,
 * health watchers) read the published state and never mutate it.
 *
 * Threads: loop thread only. Ownership: the registry owns services and
 * backends; pointers to them stay valid until the subscriber unsubscribes
 * (services) or the owner is told through reg_owner (backends). */
#ifndef LA_REGISTRY_H
#define LA_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

#include <grpc/byte_buffer.h>

#include "loop.h"
#include "lookaside/v1/lookaside.pb-c.h"
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
    void (*dropped)(struct reg_owner *o, grpc_status_code code, const char *why);
} reg_owner;

/* Something that wants to hear about a service's published lists. */
typedef struct reg_sub {
    void (*on_publish)(struct reg_sub *sub, reg_service *svc);
    struct reg_sub *prev, *next;
    reg_service *svc;
} reg_sub;

typedef struct grpclb_totals {
    int64_t started, finished, failed_to_send, known_received, dropped;
} grpclb_totals;

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
    bool dns_mark;              /* scratch for registry_dns_update */
    reg_owner *owner;
    int64_t first_seen_wall_ms;
    int64_t since_mono_ms;      /* added (or restored) at */
    int64_t last_report_mono_ms;
    int64_t last_report_wall_ms;
    bool has_load;
    storage_load load;
    double in_flight;
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
    grpc_byte_buffer *published;   /* packed lookaside.v1.ServerList */
    int list_state;             /* LOOKASIDE__V1__LIST_STATE__* */
    int64_t published_mono_ms;
    int64_t last_compute_ms;
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
 * another stream is taken over (the old owner is told). Errors:
 * EINVAL (bad name/address/zone, msg names the field), ELIMIT. */
lookaside_status registry_attach(registry *r, const char *service, const char *address,
                                 const char *zone, reg_owner *owner, reg_backend **out,
                                 char *msg, size_t msglen);
/* The owner's stream ended: the backend leaves the lists at once (unless DNS
 * still lists it). b is invalid afterwards. */
void registry_detach(registry *r, reg_backend *b);
/* A validated load report. */
void registry_report(registry *r, reg_backend *b, const storage_load *load);
/* Counts as a report for eviction purposes without load data. */
void registry_touch(registry *r, reg_backend *b);
void registry_set_draining(registry *r, reg_backend *b, bool draining);
void registry_set_override(registry *r, reg_backend *b, uint32_t weight);

/* ---- DNS discovery ---- */
/* The complete current address set of service from DNS. */
void registry_dns_update(registry *r, const char *service, const la_addr *addrs, size_t n);

/* ---- lookups and subscriptions ---- */
reg_service *registry_find(registry *r, const char *name);
reg_backend *registry_find_backend(reg_service *s, const char *address);
reg_service *registry_first(registry *r);
reg_service *registry_next(reg_service *s);
/* Subscribes sub to name (the service is created empty if unknown, so the
 * subscriber sees it appear). ELIMIT when too many services. */
lookaside_status registry_subscribe(registry *r, const char *name, reg_sub *sub);
void registry_unsubscribe(registry *r, reg_sub *sub);
/* Publishes every dirty service now (tests, shutdown). */
void registry_publish_dirty(registry *r);
/* The backend's state and source as published (LOOKASIDE__V1__BACKEND_STATE__*,
 * LOOKASIDE__V1__BACKEND_SOURCE__*). */
int registry_backend_state(const reg_backend *b);
int registry_backend_source(const reg_backend *b);
/* Count of serving (weight > 0) backends in the published list. */
size_t registry_serving(const reg_service *s);

/* ---- grpclb stats ---- */
void registry_add_grpclb_stats(reg_service *s, const char *token, const grpclb_totals *d);

#endif
