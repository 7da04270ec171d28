/* snapshot.h - the registry's read side: immutable, reference-counted views
 * of each service, and a catalog of all of them.
 *
 * The loop thread is the only writer of registry state. Everything that only
 * reads it -- Watch, GetServerList, grpclb, health, admin on the loop thread;
 * the HTTP endpoint on its own thread -- reads snapshots instead of the
 * registry's live structs. A snapshot never changes after it is built; the
 * registry builds a new one when the service changes (a publish, a weight
 * recompute, a load report, a watcher joining) and swaps it in.
 *
 * Versions: `version` is the published ServerList version (what clients
 * see); `seq` increases with every snapshot of the service, also those that
 * only refresh explanations and loads without publishing.
 *
 * Ownership: a snapshot lives while it has references. snap_service_ref /
 * snap_service_unref may be called from any thread (atomic count). The
 * packed ServerList inside is a grpc_byte_buffer whose slices are reference
 * counted by gRPC core; readers may send it (rpc_send_buffer copies the
 * buffer, sharing the slices) but must not modify it.
 *
 * Catalog: registry_catalog_acquire (registry.h) hands any thread the latest
 * catalog -- every service's current snapshot, in creation order -- with a
 * reference; release it with snap_catalog_release. Taking a catalog costs one
 * mutex-protected reference increment; the loop thread rebuilds it at most
 * once per publish round or weight round. */
#ifndef LA_SNAPSHOT_H
#define LA_SNAPSHOT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/byte_buffer.h>

#include "storage.h"
#include "util.h"
#include "weights.h"

#define SNAP_UTIL_MAX 64   /* named utilizations kept per backend (= report cap) */

typedef struct snap_totals {
    int64_t started, finished, failed_to_send, known_received, dropped;
} snap_totals;

typedef struct snap_util {
    char *key;                      /* owned by the snapshot */
    double value;
} snap_util;

typedef struct snap_backend {
    char address[LA_ADDR_STRLEN];   /* canonical "ip:port" / "[ip6]:port" */
    la_addr addr;
    char zone[64];
    char token[24];
    int state;                      /* LOOKASIDE__V1__BACKEND_STATE__* as published */
    int source;                     /* LOOKASIDE__V1__BACKEND_SOURCE__* */
    uint32_t weight;                /* as published (0: no new traffic) */
    uint32_t computed_weight;       /* the policy's latest output (may be unpublished) */
    uint32_t weight_override;       /* 0 = none */
    bool reported;                  /* a live Report stream owns it */
    bool in_dns;
    bool draining;
    bool has_load;                  /* at least one Load since registration/restore */
    storage_load load;              /* latest load (valid when has_load) */
    size_t n_util;
    snap_util *util;                /* named utilizations of the latest load */
    int64_t last_load_mono_ms;      /* monotonic ms of the latest Load, -1 never */
    int64_t first_seen_unix_ms;
    int64_t since_mono_ms;          /* listed (or restored) at */
    weights_explain why;            /* every number behind the weight */
    snap_totals lb;                 /* grpclb client stats attributed to it */
} snap_backend;

typedef struct snap_service {
    atomic_uint refs;
    char name[254];
    uint64_t version;               /* ServerList.version as published */
    uint64_t seq;                   /* snapshot generation of this service */
    int list_state;                 /* LOOKASIDE__V1__LIST_STATE__* */
    bool known;                     /* has had backends (else only watched) */
    size_t n;                       /* backends, sorted by address */
    snap_backend *b;
    size_t serving;                 /* backends with published weight > 0 */
    uint32_t watchers;              /* Balancer.Watch streams at build time */
    uint32_t subscribers;           /* all subscriptions (Watch, grpclb groups, health) */
    snap_totals lb;                 /* grpclb totals across the service */
    grpc_byte_buffer *packed;       /* lookaside.v1.ServerList of `version` */
    int64_t published_unix_ms;      /* when `version` was built */
    int64_t built_mono_ms;          /* when this snapshot was built */
    const char *policy;             /* weight policy name (static string) */
} snap_service;

typedef struct snap_catalog {
    atomic_uint refs;
    uint64_t seq;                   /* increases with every catalog */
    int64_t built_mono_ms;
    size_t n;
    snap_service **s;               /* one reference each */
} snap_catalog;

/* Adds a reference and returns s. Any thread. NULL ok (returns NULL). */
snap_service *snap_service_ref(snap_service *s);
/* Drops a reference; the last one frees the snapshot (and unrefs its packed
 * list). Any thread. NULL ok. */
void snap_service_unref(snap_service *s);
/* The backend with this canonical address, NULL if none. O(log n). */
const snap_backend *snap_find_backend(const snap_service *s, const char *address);

/* Builds a catalog holding a reference to each of s[0..n). Loop thread.
 * NULL on allocation failure. */
snap_catalog *snap_catalog_build(snap_service *const *s, size_t n, uint64_t seq);
snap_catalog *snap_catalog_ref(snap_catalog *c);
/* Drops a reference; the last one unrefs every snapshot. Any thread. NULL ok. */
void snap_catalog_release(snap_catalog *c);
/* The catalog's snapshot of a service, NULL if absent. Linear. */
const snap_service *snap_catalog_find(const snap_catalog *c, const char *name);

#endif
