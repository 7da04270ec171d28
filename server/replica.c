/* replica.c - etcd mode glue between the registry and etcd (see replica.h). */
#include "replica.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <grpc/support/time.h>

#include "etcd.h"
#include "log.h"
#include "lookaside/v1/replica.pb-c.h"
#include "pbio.h"
#include "util.h"

#define NBUCKETS 4096
#define KEY_MAX 512
#define VALUE_MAX 1024
#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 2000

/* A key this replica owns (or owned and still has to delete). */
typedef struct owned {
    char key[KEY_MAX];
    uint8_t val[VALUE_MAX];
    size_t vlen;
    bool present;               /* wanted in etcd (else: delete it) */
    bool leased;                /* a registration (else an admin request) */
    bool dirty;                 /* etcd does not have the wanted state yet */
    bool weight_only;           /* the pending change is only a weight */
    bool in_flight;
    bool sent_weight_only;      /* what is in flight is only a weight */
    int64_t touch_rev;          /* a service marker: put only if older than this */
    bool forget;                /* drop the entry once its write completes */
    replica *r;
    struct owned *hnext;
} owned;

/* Registrations of one service written in one transaction. Owned by the
 * replica's list until the write completes (etcd_destroy drops pending
 * completions, so replica_destroy frees what is left). */
typedef struct batch {
    struct replica *r;
    struct batch *prev, *next;
    size_t n;
    owned *o[];
} batch;

/* A key another replica owns, as last applied to the registry; also an
 * operator's request waiting for the backend's owner (admin). */
typedef struct remote {
    char key[KEY_MAX];
    bool mark;                  /* scratch for a fresh listing */
    bool draining;              /* admin requests */
    uint32_t weight_override;
    char service[254], address[LA_ADDR_STRLEN];
    struct remote *hnext;
} remote;

struct replica {
    loop *l;
    registry *reg;
    etcd *etcd;
    char id[128];
    char prefix[KEY_MAX];
    size_t prefix_len;
    int64_t weight_min_ms;
    size_t max_inflight, inflight;
    owned *own[NBUCKETS];
    remote *rem[NBUCKETS];
    remote *adm[NBUCKETS];       /* admin requests seen in etcd */
    uint64_t admin_timer;
    batch *batches;             /* writes in flight */
    uint64_t flush_timer;
    int64_t flush_at;
    int64_t retry_ms;            /* after a failed write; doubles while etcd fails */
    int64_t weight_due;          /* next round of weight-only writes */
    bool linked;                 /* the watch follows etcd */
    bool following;              /* registry_set_store: lists confirmed */
    int64_t written_rev;         /* revision of our latest acknowledged write */
};

static uint32_t key_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h % NBUCKETS;
}

/* ------------------------------------------------------------ keys */

/* Key kinds under the prefix: a backend's registration (leased, written by
 * its owner) and an operator's drain/override request (plain, written by
 * the replica that took the Admin call, applied by the owner). */
enum { K_BACKEND, K_ADMIN, K_KINDS };
static const char *const kind_dir[K_KINDS] = {"backends/", "admin/"};

static bool make_key(const replica *r, int kind, const char *service, const char *address,
                     char out[KEY_MAX])
{
    int n = snprintf(out, KEY_MAX, "%s%s%s/%s", r->prefix, kind_dir[kind], service, address);
    return n > 0 && n < KEY_MAX;
}

/* <prefix>services/<service>: a marker put after each delete of one of the
 * service's backend keys (touch_schedule), so that a fresh listing, which
 * cannot show deletes, still sees the revision of the service's latest
 * change. Parses the service out of such a key. */
#define MARKER_DIR "services/"

static bool parse_marker(const replica *r, const uint8_t *k, size_t n, char service[254])
{
    size_t p = r->prefix_len + strlen(MARKER_DIR);
    if (n >= KEY_MAX || n <= p || n - p >= 254 || memcmp(k, r->prefix, r->prefix_len) != 0 ||
        memcmp(k + r->prefix_len, MARKER_DIR, strlen(MARKER_DIR)) != 0)
        return false;
    for (size_t i = p; i < n; i++)
        if (k[i] < 0x21 || k[i] > 0x7e || k[i] == '/')
            return false;
    memcpy(service, k + p, n - p);
    service[n - p] = '\0';
    return true;
}

/* Splits an etcd key into its kind, service and address (NUL-terminated
 * copies); false for anything that is not <prefix><kind>/<service>/<address>
 * made of printable ASCII. */
static bool parse_key(const replica *r, const uint8_t *k, size_t n, int *kind,
                      char key[KEY_MAX], char service[254], char address[LA_ADDR_STRLEN])
{
    if (n >= KEY_MAX || n <= r->prefix_len || memcmp(k, r->prefix, r->prefix_len) != 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (k[i] < 0x21 || k[i] > 0x7e)
            return false;
    memcpy(key, k, n);
    key[n] = '\0';
    const char *p = key + r->prefix_len;
    *kind = -1;
    for (int i = 0; i < K_KINDS; i++)
        if (strncmp(p, kind_dir[i], strlen(kind_dir[i])) == 0)
            *kind = i;
    if (*kind < 0)
        return false;
    p += strlen(kind_dir[*kind]);
    const char *slash = strchr(p, '/');
    if (slash == NULL || slash == p || (size_t)(slash - p) >= 254 ||
        strlen(slash + 1) == 0 || strlen(slash + 1) >= LA_ADDR_STRLEN)
        return false;
    memcpy(service, p, (size_t)(slash - p));
    service[slash - p] = '\0';
    strcpy(address, slash + 1);
    return true;
}

/* ------------------------------------------------------------ tables */

static owned *own_find(replica *r, const char *key)
{
    for (owned *o = r->own[key_hash(key)]; o; o = o->hnext)
        if (strcmp(o->key, key) == 0)
            return o;
    return NULL;
}

static owned *own_obtain(replica *r, const char *key)
{
    owned *o = own_find(r, key);
    if (o)
        return o;
    o = calloc(1, sizeof *o);
    if (o == NULL)
        return NULL;
    snprintf(o->key, sizeof o->key, "%s", key);
    o->r = r;
    uint32_t h = key_hash(key);
    o->hnext = r->own[h];
    r->own[h] = o;
    return o;
}

static void own_remove(replica *r, owned *o)
{
    owned **pp = &r->own[key_hash(o->key)];
    while (*pp && *pp != o)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = o->hnext;
    free(o);
}

static remote *rem_find(remote **tab, const char *key)
{
    for (remote *m = tab[key_hash(key)]; m; m = m->hnext)
        if (strcmp(m->key, key) == 0)
            return m;
    return NULL;
}

static remote *rem_add(remote **tab, const char *key)
{
    remote *m = rem_find(tab, key);
    if (m) {
        m->mark = false;
        return m;
    }
    m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;   /* the registry has it; only a later listing's cleanup misses it */
    snprintf(m->key, sizeof m->key, "%s", key);
    uint32_t h = key_hash(key);
    m->hnext = tab[h];
    tab[h] = m;
    return m;
}

static void rem_remove(remote **tab, const char *key)
{
    remote **pp = &tab[key_hash(key)];
    while (*pp && strcmp((*pp)->key, key) != 0)
        pp = &(*pp)->hnext;
    if (*pp) {
        remote *m = *pp;
        *pp = m->hnext;
        free(m);
    }
}

/* ------------------------------------------------------------ writes */

static void flush(replica *r);

static void on_flush(loop *l, void *arg)
{
    (void)l;
    replica *r = arg;
    r->flush_timer = 0;
    flush(r);
}

static void schedule_flush(replica *r, int64_t at)
{
    if (r->flush_timer != 0 && r->flush_at <= at)
        return;
    if (r->flush_timer != 0)
        loop_timer_cancel(r->l, r->flush_timer);
    r->flush_at = at;
    r->flush_timer = loop_timer_add(r->l, at, on_flush, r);
}

/* A write of o completed; false when it must be retried. */
static void entry_done(replica *r, owned *o, bool ok)
{
    o->in_flight = false;
    if (!ok) {
        o->dirty = true;
        return;
    }
    if (o->forget && !o->dirty)
        own_remove(r, o);
}

/* Lists are confirmed (registry_set_store) while the watch follows etcd and
 * every registration held here has been written since it (re)linked: then
 * what this replica lists is what etcd has, at etcd's revisions. Weights
 * waiting for their round do not count (they are paced, and what is listed
 * meanwhile is the weight etcd has). */
static void try_follow(replica *r)
{
    if (r->following || !r->linked || etcd_lease(r->etcd) == 0 ||
        etcd_revision(r->etcd) < r->written_rev)
        return;   /* ...and the watch has brought our writes back */
    for (size_t i = 0; i < NBUCKETS; i++)
        for (owned *o = r->own[i]; o; o = o->hnext)
            if (o->present && o->leased &&
                ((o->dirty && !o->weight_only) || (o->in_flight && !o->sent_weight_only)))
                return;
    r->following = true;
    registry_set_store(r->reg, true);
}

static void stop_following(replica *r)
{
    if (!r->following)
        return;
    r->following = false;
    registry_set_store(r->reg, false);
}

/* After a write call: retry failures with backoff, go on with what changed
 * while it was in flight. */
static void call_done(replica *r, bool ok)
{
    r->inflight--;
    if (!ok)
        stop_following(r);   /* we hold something etcd does not have */
    try_follow(r);
    if (!ok) {
        schedule_flush(r, clock_mono_ms() + r->retry_ms);
        r->retry_ms = r->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : r->retry_ms * 2;
        return;
    }
    r->retry_ms = RETRY_MIN_MS;
    schedule_flush(r, clock_mono_ms());
}

static void write_done(void *arg, bool ok, int64_t revision)
{
    owned *o = arg;
    replica *r = o->r;
    /* A put's revision comes back through the watch; a delete that found
     * nothing (or another lease) has the store's revision, which may never
     * be an event under our prefix. */
    if (ok && o->present && o->touch_rev == 0 && revision > r->written_rev)
        r->written_rev = revision;
    entry_done(r, o, ok);
    call_done(r, ok);
}

static void batch_unlink(batch *b)
{
    if (b->prev)
        b->prev->next = b->next;
    else
        b->r->batches = b->next;
    if (b->next)
        b->next->prev = b->prev;
}

static void batch_done(void *arg, bool ok, int64_t revision)
{
    batch *b = arg;
    replica *r = b->r;
    if (ok && revision > r->written_rev)
        r->written_rev = revision;
    for (size_t i = 0; i < b->n; i++)
        entry_done(r, b->o[i], ok);
    batch_unlink(b);
    free(b);
    call_done(r, ok);
}

static void mark_sent(owned *o)
{
    o->sent_weight_only = o->weight_only;
    o->dirty = false;
    o->weight_only = false;
    o->in_flight = true;
}

static int key_cmp(const void *a, const void *b)
{
    return strcmp((*(owned *const *)a)->key, (*(owned *const *)b)->key);
}

/* Same service: keys equal up to their last '/' (addresses have none). */
static bool same_service(const owned *a, const owned *b)
{
    size_t la = (size_t)(strrchr(a->key, '/') - a->key);
    size_t lb = (size_t)(strrchr(b->key, '/') - b->key);
    return la == lb && memcmp(a->key, b->key, la) == 0;
}

/* Sends puts[0..n) (sorted by key) as one transaction per service of at
 * most ETCD_MAX_TXN_OPS keys. Returns the time to try again (INT64_MAX:
 * nothing left). */
static int64_t send_batches(replica *r, owned **puts, size_t n, int64_t now)
{
    size_t i = 0;
    while (i < n) {
        if (r->inflight >= r->max_inflight)
            return now + 10;
        size_t j = i + 1;
        while (j < n && j - i < ETCD_MAX_TXN_OPS && same_service(puts[i], puts[j]))
            j++;
        batch *b = malloc(sizeof *b + (j - i) * sizeof b->o[0]);
        etcd_put_op ops[ETCD_MAX_TXN_OPS];
        if (b == NULL)
            return now + r->retry_ms;
        b->r = r;
        b->n = j - i;
        b->prev = NULL;
        b->next = r->batches;
        for (size_t k = i; k < j; k++) {
            b->o[k - i] = puts[k];
            ops[k - i] = (etcd_put_op){puts[k]->key, puts[k]->val, puts[k]->vlen};
        }
        if (etcd_put_many(r->etcd, ops, b->n, true, batch_done, b) != LOOKASIDE_OK) {
            free(b);
            return now + r->retry_ms;
        }
        if (r->batches)
            r->batches->prev = b;
        r->batches = b;
        for (size_t k = i; k < j; k++)
            mark_sent(puts[k]);
        r->inflight++;
        i = j;
    }
    return INT64_MAX;
}

/* Writes every dirty key that may be written now (membership at once,
 * weights in rounds): registrations batched per service,
 * deletes and operator requests one by one; at most max_inflight calls. */
static void flush(replica *r)
{
    int64_t now = clock_mono_ms();
    int64_t next = INT64_MAX;
    owned **puts = NULL;
    size_t np = 0, cap = 0;
    /* Weight-only changes go out in rounds, every weight_min_ms at most,
     * all together: one transaction per service per round. The registry
     * publishes a service's weights together, once per weight period, so a
     * round usually follows its publish at once: other replicas lag by one
     * etcd round trip, not by the cap. */
    bool weight_round = now >= r->weight_due;
    if (weight_round)
        r->weight_due = now + r->weight_min_ms;
    for (size_t i = 0; i < NBUCKETS; i++) {
        for (owned *o = r->own[i], *nx; o; o = nx) {
            nx = o->hnext;
            if (!o->dirty || o->in_flight)
                continue;
            if (o->present && o->weight_only && !weight_round) {
                next = r->weight_due < next ? r->weight_due : next;
                continue;
            }
            if (o->present && o->leased) {
                if (etcd_lease(r->etcd) == 0)
                    continue;   /* on_lease flushes */
                if (np == cap) {
                    size_t nc = cap ? cap * 2 : 64;
                    owned **g = realloc(puts, nc * sizeof *g);
                    if (g == NULL) {
                        next = now + r->retry_ms < next ? now + r->retry_ms : next;
                        continue;
                    }
                    puts = g;
                    cap = nc;
                }
                puts[np++] = o;
                continue;
            }
            if (r->inflight >= r->max_inflight) {
                next = now + 10 < next ? now + 10 : next;
                continue;
            }
            lookaside_status st =
                !o->present    ? etcd_delete_owned(r->etcd, o->key, write_done, o)
                : o->touch_rev ? etcd_put_if_older(r->etcd, o->key, o->val, o->vlen, o->touch_rev,
                                                   write_done, o)
                               : etcd_put(r->etcd, o->key, o->val, o->vlen, false, write_done, o);
            if (st != LOOKASIDE_OK) {
                next = now + r->retry_ms < next ? now + r->retry_ms : next;
                continue;
            }
            mark_sent(o);
            r->inflight++;
        }
    }
    log_debug("replica", "flush: %zu registrations to put, %zu calls in flight, lease %llx",
              np, r->inflight, (unsigned long long)etcd_lease(r->etcd));
    if (np > 0) {
        qsort(puts, np, sizeof *puts, key_cmp);
        int64_t again = send_batches(r, puts, np, now);
        next = again < next ? again : next;
    }
    free(puts);
    if (next != INT64_MAX)
        schedule_flush(r, next);
}

/* ------------------------------------------------------------ mirror (out) */

static bool encode(const replica *r, const reg_backend *b, uint8_t *out, size_t *len)
{
    Lookaside__V1__ReplicaBackend v = LOOKASIDE__V1__REPLICA_BACKEND__INIT;
    v.zone = (char *)b->zone;
    v.weight = b->published_weight;
    v.draining = b->draining;
    v.weight_override = b->weight_override;
    v.owner = (char *)r->id;
    size_t n = lookaside__v1__replica_backend__get_packed_size(&v);
    if (n > VALUE_MAX)
        return false;
    *len = lookaside__v1__replica_backend__pack(&v, out);
    return true;
}

static void admin_schedule(replica *r);

/* A backend key of service was deleted at rev (a leave, or a lease that
 * expired): every replica asks etcd to put the service's marker if it is
 * older than rev; the first to get there writes it, and every replica --
 * a fresh one listing later too -- sees the service change at the marker's
 * revision. */
static void touch_schedule(replica *r, const char *service, int64_t rev)
{
    char key[KEY_MAX];
    int n = snprintf(key, sizeof key, "%s%s%s", r->prefix, MARKER_DIR, service);
    owned *o = n > 0 && n < KEY_MAX && rev > 0 ? own_obtain(r, key) : NULL;
    if (o == NULL)
        return;
    if (rev > o->touch_rev)
        o->touch_rev = rev;
    o->vlen = 0;
    o->present = true;
    o->leased = false;
    o->forget = true;
    o->weight_only = false;
    o->dirty = true;
    schedule_flush(r, clock_mono_ms());
}

static void mirror_put(void *arg, const reg_backend *b)
{
    replica *r = arg;
    char key[KEY_MAX];
    uint8_t val[VALUE_MAX];
    size_t vlen;
    if (!make_key(r, K_BACKEND, b->svc->name, b->address, key) || !encode(r, b, val, &vlen))
        return;
    /* A registration here may have an operator's request waiting. */
    char akey[KEY_MAX];
    if (make_key(r, K_ADMIN, b->svc->name, b->address, akey) && rem_find(r->adm, akey))
        admin_schedule(r);
    owned *o = own_obtain(r, key);
    if (o == NULL) {
        log_warn("replica", "%s: out of memory; not mirrored", key);
        return;
    }
    if (o->present && o->vlen == vlen && memcmp(o->val, val, vlen) == 0)
        return;
    /* A weight-only change keeps the previous write's pacing; anything else
     * (new key, zone, drain, override) goes out at once. */
    bool weight_only = false;
    if (o->present) {
        Lookaside__V1__ReplicaBackend *old =
            lookaside__v1__replica_backend__unpack(NULL, o->vlen, o->val);
        weight_only = old && old->draining == b->draining &&
                      old->weight_override == b->weight_override && strcmp(old->zone, b->zone) == 0;
        if (old)
            lookaside__v1__replica_backend__free_unpacked(old, NULL);
    }
    memcpy(o->val, val, vlen);
    o->vlen = vlen;
    o->present = true;
    o->leased = true;
    o->forget = false;
    o->weight_only = (o->dirty ? o->weight_only : true) && weight_only;
    o->dirty = true;
    int64_t now = clock_mono_ms();
    schedule_flush(r, o->weight_only && r->weight_due > now ? r->weight_due : now);
}

static void mirror_delete(void *arg, const char *service, const char *address)
{
    replica *r = arg;
    char key[KEY_MAX];
    if (!make_key(r, K_BACKEND, service, address, key))
        return;
    owned *o = own_find(r, key);
    if (o == NULL)
        return;
    o->present = false;
    o->forget = true;
    o->weight_only = false;
    o->dirty = true;
    schedule_flush(r, clock_mono_ms());
}

/* An operator's drain/override of a backend another replica owns: a plain
 * key the owner applies (and then deletes), written until etcd has it. */
static void mirror_remote_admin(void *arg, const reg_backend *b)
{
    replica *r = arg;
    char key[KEY_MAX];
    uint8_t val[VALUE_MAX];
    size_t vlen;
    if (!make_key(r, K_ADMIN, b->svc->name, b->address, key) || !encode(r, b, val, &vlen))
        return;
    owned *o = own_obtain(r, key);
    if (o == NULL) {
        log_warn("replica", "%s: out of memory; operator change not sent", key);
        return;
    }
    memcpy(o->val, val, vlen);
    o->vlen = vlen;
    o->present = true;
    o->leased = false;
    o->forget = true;   /* once etcd has it, the owner takes over */
    o->weight_only = false;
    o->dirty = true;
    schedule_flush(r, clock_mono_ms());
}

static const reg_mirror_ops mirror_ops = {.backend_put = mirror_put,
                                          .backend_delete = mirror_delete,
                                          .remote_admin = mirror_remote_admin};

/* ------------------------------------------------------------ etcd (in) */

/* Is the backend still held by a live Report stream here? */
static bool reported_here(replica *r, const char *service, const char *address)
{
    reg_service *s = registry_find(r->reg, service);
    reg_backend *b = s ? registry_find_backend(s, address) : NULL;
    return b && b->local && b->reported;
}

/* Applies the operator's requests waiting for backends that report here,
 * then deletes them from etcd (the backend's own key now carries them). */
static void admin_apply(loop *l, void *arg)
{
    (void)l;
    replica *r = arg;
    r->admin_timer = 0;
    bool any = false;
    for (size_t i = 0; i < NBUCKETS; i++) {
        for (remote *m = r->adm[i], *nx; m; m = nx) {
            nx = m->hnext;
            reg_service *s = registry_find(r->reg, m->service);
            reg_backend *b = s ? registry_find_backend(s, m->address) : NULL;
            if (b == NULL || !b->local || !b->reported)
                continue;
            log_info("replica", "%s %s: operator request from another replica: %s, override %u",
                     m->service, m->address, m->draining ? "drain" : "serve",
                     m->weight_override);
            registry_set_draining(r->reg, b, m->draining);
            if (b->weight_override != m->weight_override)
                registry_set_override(r->reg, b, m->weight_override);
            any = true;
            if (etcd_delete(r->etcd, m->key, NULL, NULL) != LOOKASIDE_OK)
                continue;   /* applied again next time: idempotent */
            rem_remove(r->adm, m->key);
        }
    }
    if (any)
        registry_publish_dirty(r->reg);
}

static void admin_schedule(replica *r)
{
    if (r->admin_timer == 0)
        r->admin_timer = loop_timer_add(r->l, clock_mono_ms(), admin_apply, r);
}

/* Decodes a value; NULL (logged) when it is junk. */
static Lookaside__V1__ReplicaBackend *decode(const char *key, const etcd_kv *kv)
{
    /* A NUL inside a string would make two different values compare
     * equal once protobuf-c hands them out as C strings. */
    char field[64];
    Lookaside__V1__ReplicaBackend *v =
        kv->value_len <= VALUE_MAX &&
                pbio_check_strings(&lookaside__v1__replica_backend__descriptor, kv->value,
                                   kv->value_len, field, sizeof field) == LOOKASIDE_OK
            ? lookaside__v1__replica_backend__unpack(NULL, kv->value_len, kv->value)
            : NULL;
    if (v == NULL)
        log_warn("replica", "%s: undecodable value skipped (%zu bytes)", key, kv->value_len);
    else if (v->weight_override > WEIGHTS_MAX) {
        log_warn("replica", "%s: weight_override %u out of range; skipped", key,
                 v->weight_override);
        lookaside__v1__replica_backend__free_unpacked(v, NULL);
        v = NULL;
    }
    return v;
}

static void apply_admin_put(replica *r, const char *key, const char *service,
                            const char *address, const etcd_kv *kv)
{
    Lookaside__V1__ReplicaBackend *v = decode(key, kv);
    if (v == NULL)
        return;
    remote *m = rem_add(r->adm, key);
    if (m) {
        m->draining = v->draining;
        m->weight_override = v->weight_override;
        snprintf(m->service, sizeof m->service, "%s", service);
        snprintf(m->address, sizeof m->address, "%s", address);
        admin_schedule(r);
    }
    lookaside__v1__replica_backend__free_unpacked(v, NULL);
}

static void apply_put(replica *r, const etcd_kv *kv)
{
    char key[KEY_MAX], service[254], address[LA_ADDR_STRLEN];
    int kind;
    if (parse_marker(r, kv->key, kv->key_len, service)) {
        registry_version_floor(r->reg, service,
                               kv->mod_revision > 0 ? (uint64_t)kv->mod_revision : 0);
        return;
    }
    if (!parse_key(r, kv->key, kv->key_len, &kind, key, service, address)) {
        log_warn("replica", "etcd key skipped: not %s{backends,admin}/SERVICE/ADDRESS "
                            "(%zu bytes)", r->prefix, kv->key_len);
        return;
    }
    if (kind == K_ADMIN) {
        apply_admin_put(r, key, service, address, kv);
        return;
    }
    Lookaside__V1__ReplicaBackend *v = decode(key, kv);
    if (v == NULL)
        return;
    reg_remote rb = {.service = service, .address = address, .zone = v->zone,
                     .weight = v->weight, .draining = v->draining,
                     .weight_override = v->weight_override,
                     .revision = kv->mod_revision > 0 ? (uint64_t)kv->mod_revision : 0};
    if (strcmp(v->owner, r->id) == 0) {
        /* Our own write coming back: what every replica now lists for it
         * (registry_set_store), at this revision. */
        if (reported_here(r, service, address))
            registry_remote_put(r->reg, &rb);
        lookaside__v1__replica_backend__free_unpacked(v, NULL);
        return;
    }
    owned *o = own_find(r, key);
    if (o && !reported_here(r, service, address)) {
        /* The backend re-registered at another replica: stop claiming it
         * (a later lease change here must not put it back). */
        o->present = false;
        o->dirty = false;
        if (!o->in_flight)
            own_remove(r, o);
        else
            o->forget = true;
    }
    lookaside_status st = registry_remote_put(r->reg, &rb);
    if (st != LOOKASIDE_OK)
        log_warn("replica", "%s: not applied: %s", key, lookaside_status_str(st));
    else
        rem_add(r->rem, key);
    lookaside__v1__replica_backend__free_unpacked(v, NULL);
}

static void apply_delete(replica *r, const etcd_kv *kv)
{
    char key[KEY_MAX], service[254], address[LA_ADDR_STRLEN];
    int kind;
    if (!parse_key(r, kv->key, kv->key_len, &kind, key, service, address))
        return;   /* markers included: nobody deletes them */
    if (kind == K_ADMIN) {
        rem_remove(r->adm, key);
        return;
    }
    uint64_t rev = kv->mod_revision > 0 ? (uint64_t)kv->mod_revision : 0;
    touch_schedule(r, service, (int64_t)rev);
    owned *o = own_find(r, key);
    if (o && o->present && o->leased) {
        if (reported_here(r, service, address)) {
            registry_remote_delete(r->reg, service, address, rev);   /* store view only */
            /* Ours, deleted behind our back (lease expired during an
             * outage): put it again. */
            log_warn("replica", "%s: deleted in etcd while its backend reports here; putting "
                                "it again", key);
            o->dirty = true;
            o->weight_only = false;
            schedule_flush(r, clock_mono_ms());
        }
        return;
    }
    if (rem_find(r->rem, key)) {
        rem_remove(r->rem, key);
        registry_remote_delete(r->reg, service, address, rev);
    }
}

static void on_event(void *arg, bool put, const etcd_kv *kv)
{
    replica *r = arg;
    if (put)
        apply_put(r, kv);
    else
        apply_delete(r, kv);
    try_follow(r);
}

static void on_snapshot(void *arg, const etcd_kv *kvs, size_t n, int64_t revision)
{
    replica *r = arg;
    for (size_t i = 0; i < NBUCKETS; i++) {
        for (remote *m = r->rem[i]; m; m = m->hnext)
            m->mark = true;
        for (remote *m = r->adm[i]; m; m = m->hnext)
            m->mark = true;
    }
    for (size_t i = 0; i < n; i++)
        apply_put(r, &kvs[i]);
    /* Remote keys missing from the listing went away while we could not
     * see it (compaction skipped their delete events). */
    for (size_t i = 0; i < NBUCKETS; i++) {
        for (remote *m = r->rem[i], *nx; m; m = nx) {
            nx = m->hnext;
            if (!m->mark)
                continue;
            etcd_kv kv = {.key = (const uint8_t *)m->key, .key_len = strlen(m->key),
                          .mod_revision = revision};
            apply_delete(r, &kv);
        }
        for (remote *m = r->adm[i], *nx; m; m = nx) {
            nx = m->hnext;
            if (m->mark)
                rem_remove(r->adm, m->key);
        }
    }
    /* Keys of ours missing from the listing are put again. */
    for (size_t i = 0; i < NBUCKETS; i++)
        for (owned *o = r->own[i]; o; o = o->hnext)
            if (o->present && o->leased && !o->in_flight)
                o->dirty = true;
    schedule_flush(r, clock_mono_ms());
}

static void on_link(void *arg, bool up)
{
    replica *r = arg;
    r->linked = up;
    if (up)
        try_follow(r);
    else
        stop_following(r);
}

static void on_lease(void *arg, int64_t lease)
{
    replica *r = arg;
    /* Keys of the old lease are gone or going: lists are unconfirmed until
     * everything is put again. */
    stop_following(r);
    log_info("replica", "%s: lease %llx; putting every backend registered here", r->id,
             (unsigned long long)lease);
    for (size_t i = 0; i < NBUCKETS; i++)
        for (owned *o = r->own[i]; o; o = o->hnext)
            if (o->present && o->leased) {
                o->dirty = true;
                o->weight_only = false;
            }
    schedule_flush(r, clock_mono_ms());
}

static const etcd_handler etcd_ops = {.on_snapshot = on_snapshot, .on_event = on_event,
                                      .on_lease = on_lease, .on_link = on_link};

/* ------------------------------------------------------------ lifecycle */

void replica_config_default(replica_config *c)
{
    memset(c, 0, sizeof *c);
    c->prefix = "/lookaside/";
    c->lease_ttl_s = 10;
    /* Half the registry's default weight period: each period's publish
     * goes out at once, and no service is written more than twice a
     * second for weights. */
    c->weight_min_interval_ms = 500;
    c->max_inflight = 256;
}

lookaside_status replica_create(loop *l, registry *reg, const replica_config *cfg,
                                replica **out, char *err, size_t errlen)
{
    *out = NULL;
    if (cfg->prefix == NULL || strlen(cfg->prefix) == 0 || strlen(cfg->prefix) > 200) {
        snprintf(err, errlen, "--etcd-prefix: 1-200 bytes");
        return LOOKASIDE_EINVAL;
    }
    for (const char *p = cfg->prefix; *p; p++)
        if (*p < 0x21 || *p > 0x7e) {
            snprintf(err, errlen, "--etcd-prefix: printable ASCII without spaces");
            return LOOKASIDE_EINVAL;
        }
    replica *r = calloc(1, sizeof *r);
    if (r == NULL)
        return LOOKASIDE_ENOMEM;
    r->l = l;
    r->reg = reg;
    r->prefix_len = strlen(cfg->prefix);
    memcpy(r->prefix, cfg->prefix, r->prefix_len + 1);
    r->weight_min_ms = cfg->weight_min_interval_ms;
    r->retry_ms = RETRY_MIN_MS;
    r->max_inflight = cfg->max_inflight ? cfg->max_inflight : 1;
    char host[64] = "?";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    /* Unique per process run: a restarted replica never mistakes its
     * predecessor's keys for its own. */
    gpr_timespec t = gpr_now(GPR_CLOCK_REALTIME);
    snprintf(r->id, sizeof r->id, "%s/%ld/%llx", host, (long)getpid(),
             (unsigned long long)((uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec));
    etcd_config ec;
    etcd_config_default(&ec);
    ec.endpoints = cfg->endpoints;
    ec.prefix = cfg->prefix;
    ec.lease_ttl_s = cfg->lease_ttl_s;
    ec.ca_file = cfg->ca_file;
    ec.cert_file = cfg->cert_file;
    ec.key_file = cfg->key_file;
    lookaside_status st = etcd_create(l, &ec, &etcd_ops, r, &r->etcd, err, errlen);
    if (st != LOOKASIDE_OK) {
        free(r);
        return st;
    }
    registry_set_mirror(reg, &mirror_ops, r);
    registry_set_store(reg, false);   /* unconfirmed until etcd is followed */
    log_info("replica", "etcd mode: replica %s, endpoints %s, prefix %s, lease TTL %lld s", r->id,
             cfg->endpoints, cfg->prefix, (long long)cfg->lease_ttl_s);
    *out = r;
    return LOOKASIDE_OK;
}

void replica_destroy(replica *r)
{
    if (r == NULL)
        return;
    registry_set_mirror(r->reg, NULL, NULL);
    loop_timer_cancel(r->l, r->flush_timer);
    loop_timer_cancel(r->l, r->admin_timer);
    etcd_destroy(r->etcd);
    while (r->batches) {
        batch *b = r->batches;
        batch_unlink(b);
        free(b);
    }
    for (size_t i = 0; i < NBUCKETS; i++) {
        for (owned *o = r->own[i], *nx; o; o = nx) {
            nx = o->hnext;
            free(o);
        }
        for (remote **tab = r->rem; tab; tab = tab == r->rem ? r->adm : NULL)
            for (remote *m = tab[i], *nx; m; m = nx) {
                nx = m->hnext;
                free(m);
            }
    }
    free(r);
}

const char *replica_id(const replica *r) { return r->id; }
