/* replica.h - etcd mode: several lookaside-servers sharing their backends
 * through etcd v3 (README "Replicas").
 *
 * Out: backends registered at this replica (a live Report stream here) are
 * mirrored to <prefix>backends/<service>/<address> = lookaside.v1.
 * ReplicaBackend{zone, weight, draining, weight_override, owner}, put with
 * this replica's lease, so they leave etcd when this replica dies unless
 * their reporters re-register elsewhere first (which re-puts the key with
 * the new replica's lease). Membership, zone, drain and override changes are
 * written at once; changes of the published weight alone (never per load
 * report: only when the registry publishes a moved weight) wait for the next
 * round, at most one per weight_min_interval_ms. Puts of one service go out
 * as one transaction (up to ETCD_MAX_TXN_OPS keys, one revision). Deletes
 * are conditional on the key still carrying this replica's lease.
 *
 * Operators: a drain or override through this replica's Admin of a backend
 * another replica owns is written as a plain key <prefix>admin/<service>/
 * <address>; the owner applies it (so it reaches its own key and every
 * replica) and deletes it. A request waiting for an owner is applied when
 * the backend registers at a replica.
 *
 * Versions (registry_set_store): every replica lists what etcd has, so a
 * service's version is the revision of its latest change in etcd. A listing
 * cannot show deletes: after each delete of a backend key every replica
 * asks etcd to put <prefix>services/<service> if older than that delete
 * (one of them writes it), so a replica listing afresh sees the revision
 * too. Lists are unconfirmed (ServerList.unconfirmed) while the watch is
 * down, the lease is being replaced, or a write of ours is not back yet
 * after a (re)link or a failed write.
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
    int64_t weight_min_interval_ms;     /* weight-only write rounds; default 500 */
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
