/* replica.h - etcd mode: several lookaside-servers sharing their backends
 * through etcd v3 (README "Replicas").
 *
 * Out: backends registered at this replica (a live Report stream here) are
 * mirrored to <prefix>backends/<service>/<address> = lookaside.v1.
 * ReplicaBackend{zone, weight, draining, weight_override, owner}, put with
 * this replica's lease, so they leave etcd when this replica dies unless
 * their reporters re-register elsewhere first (which re-puts the key with
 * the new replica's lease). Membership, zone, drain and override changes are
 * written at once; a change of the published weight alone is written at
 * most once per weight_min_interval_ms per backend (never per load report).
 * Deletes are conditional on the key still carrying this replica's lease.
 *
 * In: every key under the prefix is listed and watched (etcd.h); backends
 * owned by other replicas go into the registry as remote backends
 * (registry_remote_put/registry_remote_delete, with the etcd revision as the
 * version floor). Junk keys or values are logged and skipped.
 *
 * Reconcile: when etcd says our lease is gone (e.g. after an outage longer
 * than its TTL) a new lease is granted and everything this replica owns is
 * put again; a key of ours deleted behind our back (expired) is put again
 * while its backend still reports here. While etcd is unreachable the
 * registry keeps serving what it has (fail static) and writes wait.
 *
 * Threads: loop thread only. */
#ifndef LA_REPLICA_H
#define LA_REPLICA_H

#include <stddef.h>
#include <stdint.h>

#include "loop.h"
#include "lookaside_status.h"
#include "registry.h"

typedef struct replica replica;

typedef struct replica_config {
    const char *endpoints;              /* --etcd HOST:PORT[,...] */
    const char *prefix;                 /* --etcd-prefix (default "/lookaside/") */
    const char *ca_file, *cert_file, *key_file;   /* TLS to etcd (optional) */
    int64_t lease_ttl_s;                /* default 10 */
    int64_t weight_min_interval_ms;     /* per backend; default 1000 */
    size_t max_inflight;                /* concurrent writes; default 256 */
} replica_config;

void replica_config_default(replica_config *c);

/* Connects reg to etcd: installs the registry mirror and starts the etcd
 * client. reg must outlive the replica. Errors: EINVAL (err says why),
 * ENOMEM. */
lookaside_status replica_create(loop *l, registry *reg, const replica_config *cfg,
                                replica **out, char *err, size_t errlen);
/* Removes the mirror and stops the etcd client (keys stay until the lease
 * expires: reporters re-home meanwhile). Call before registry_destroy. NULL
 * ok. */
void replica_destroy(replica *r);
/* This replica's id as written in values ("host/pid/random"). */
const char *replica_id(const replica *r);

#endif
