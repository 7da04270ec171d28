/* etcd.h - a small etcd v3 client on the server's event loop (etcd mode,
 * README "Replicas"): one lease kept alive, writes, and one watch over a key
 * prefix. The only server code that starts gRPC batches on etcd calls.
 *
 * Lease: granted at start (TTL from the config), kept alive on a
 * LeaseKeepAlive stream every TTL/3. When etcd says the lease is gone (TTL
 * <= 0, or LeaseGrant needed after a break longer than the TTL) a new one is
 * granted and on_lease reports it: the keys put with the old lease are gone
 * (or going) and the owner must put what it owns again.
 *
 * Watch: the prefix is listed once (Range), handed over whole through
 * on_snapshot, then watched from the listing's revision + 1. A broken
 * stream resumes from the last seen revision + 1, so no event is missed or
 * repeated; when etcd has compacted that revision away the prefix is listed
 * again (on_snapshot again: the receiver replaces its view). Watch and
 * keep-alive streams carry "hasleader: true" so a member cut off from its
 * cluster ends them instead of going quiet.
 *
 * Endpoints: a comma-separated list of HOST:PORT; the client uses one at a
 * time and moves to the next when a call or stream fails, retrying with
 * backoff (100 ms doubling to 1 s). TLS when a CA file is given (client
 * certificate and key optional, together).
 *
 * Hostile input: keys and values from etcd are handed to the owner as bytes
 * (it validates them); a listing larger than max_recv_bytes fails and is
 * retried.
 *
 * Threads: loop thread only. Ownership: the client owns its calls; kvs
 * passed to callbacks are borrowed for the call. */
#ifndef LA_ETCD_H
#define LA_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"
#include "lookaside_status.h"

typedef struct etcd etcd;

/* A key/value as etcd sent it (borrowed; not NUL-terminated). */
typedef struct etcd_kv {
    const uint8_t *key;
    size_t key_len;
    const uint8_t *value;       /* NULL/0 for a DELETE event */
    size_t value_len;
    int64_t mod_revision;       /* of this change (of the deletion for DELETE) */
    int64_t lease;
} etcd_kv;

typedef struct etcd_handler {
    /* Every key under the prefix at `revision` (a fresh listing: at start
     * and after a compaction). The receiver replaces its view with it. */
    void (*on_snapshot)(void *arg, const etcd_kv *kvs, size_t n, int64_t revision);
    /* One change after the listing, in revision order. */
    void (*on_event)(void *arg, bool put, const etcd_kv *kv);
    /* A new lease (id != 0) is in use: keys of the previous one must be put
     * again. Called once at start too. */
    void (*on_lease)(void *arg, int64_t lease_id);
    /* The watch is (up) or is not (down) following etcd. Optional. */
    void (*on_link)(void *arg, bool up);
} etcd_handler;

typedef struct etcd_config {
    const char *endpoints;      /* "host:port[,host:port...]" */
    const char *prefix;         /* watched key prefix (non-empty) */
    int64_t lease_ttl_s;        /* >= 2 */
    const char *ca_file;        /* TLS when set */
    const char *cert_file, *key_file;   /* client certificate (optional, together) */
    size_t max_recv_bytes;      /* largest message accepted from etcd */
    int64_t call_timeout_ms;    /* unary calls (Range, Put, Txn, Lease*) */
} etcd_config;

void etcd_config_default(etcd_config *c);

/* Starts the client: lease grant, listing and watch begin at once, on the
 * loop's queue. Errors: EINVAL (bad endpoints/prefix/TTL, or unreadable TLS
 * files: err says which), ENOMEM. The handler and arg must outlive it. */
lookaside_status etcd_create(loop *l, const etcd_config *cfg, const etcd_handler *h, void *arg,
                             etcd **out, char *err, size_t errlen);
/* Cancels every call and waits (running the loop, at most ~2 s) until they
 * have completed, then frees. Pending writes' done callbacks are not called:
 * the owner frees what it gave them as arg. Does not revoke the lease: keys stay until it
 * expires, so backends can re-register at another replica meanwhile. NULL
 * ok. */
void etcd_destroy(etcd *e);

/* The lease in use, 0 while none is granted. */
int64_t etcd_lease(const etcd *e);
/* True while the watch follows etcd. */
bool etcd_linked(const etcd *e);
/* The latest revision the listing or the watch has delivered (0 before the
 * first listing). */
int64_t etcd_revision(const etcd *e);

/* Completion of a write: ok false when it was not applied (etcd
 * unreachable, refused, or -- for etcd_delete_owned -- the key belongs to
 * another lease now); revision is the store's revision after it. */
typedef void (*etcd_done_fn)(void *arg, bool ok, int64_t revision);

/* Puts key = value, attached to the current lease when with_lease (fails
 * with ESHUTDOWN when there is none yet). done (may be NULL) is called
 * exactly once unless this returns an error. */
lookaside_status etcd_put(etcd *e, const char *key, const uint8_t *value, size_t value_len,
                          bool with_lease, etcd_done_fn done, void *arg);
/* One put of etcd_put_many (borrowed for the call). */
typedef struct etcd_put_op {
    const char *key;
    const uint8_t *value;
    size_t value_len;
} etcd_put_op;

/* etcd's default --max-txn-ops is 128; stay well under it. */
#define ETCD_MAX_TXN_OPS 64

/* Puts ops[0..n) (1 <= n <= ETCD_MAX_TXN_OPS) in one transaction: one
 * revision, all or nothing. Otherwise as etcd_put. */
lookaside_status etcd_put_many(etcd *e, const etcd_put_op *ops, size_t n, bool with_lease,
                               etcd_done_fn done, void *arg);
/* Deletes key only while it is attached to our current lease (a Txn
 * comparing the lease), so a key another replica has taken over is left
 * alone. done as for etcd_put (ok true when nothing was ours to delete). */
lookaside_status etcd_delete_owned(etcd *e, const char *key, etcd_done_fn done, void *arg);
/* Puts key = value (no lease) only while the key's last change is older
 * than revision rev (a missing key counts as older): the first of several
 * replicas asking for the same rev writes, the others find it done. done
 * as for etcd_put (ok true in both cases). */
lookaside_status etcd_put_if_older(etcd *e, const char *key, const uint8_t *value,
                                   size_t value_len, int64_t rev, etcd_done_fn done, void *arg);
/* Deletes key whatever holds it. */
lookaside_status etcd_delete(etcd *e, const char *key, etcd_done_fn done, void *arg);

#endif
