#include "registry.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "registry_snap.h"

#define NBUCKETS 4096

struct registry {
    loop *l;
    storage *st;
    registry_config cfg;
    reg_service *buckets[NBUCKETS];
    reg_service *head, *tail;
    size_t n_known;    /* services with a slot (known) */
    size_t n_phantom;  /* only watched */
    uint64_t publish_timer;
    uint64_t sweep_timer, weights_timer, flush_timer, heartbeat_timer, durable_timer;
    weights_backend *scratch;
    size_t scratch_cap;
    reg_owner *waiters;        /* registry_await_durable */
    const reg_mirror_ops *mirror;
    void *mirror_arg;
    pthread_mutex_t catalog_mu;   /* guards catalog (the pointer and its swap) */
    snap_catalog *catalog;
    uint64_t catalog_seq;
    bool catalog_dirty;
    uint64_t max_version;      /* highest version issued by any service */
    bool store_mode;           /* registry_set_store */
    bool following;
    int64_t started_mono_ms;
    bool destroying;
    bool stopping;     /* shutting down: keep stored rows for the restart */
};

static int64_t now_mono(const registry *r) { return r->cfg.mono_ms(); }
static int64_t now_wall(const registry *r) { return r->cfg.wall_ms(); }

void registry_config_default(registry_config *c)
{
    memset(c, 0, sizeof *c);
    c->report_interval_ms = 1000;
    c->evict_intervals = 3;
    c->max_backends = 10000;
    c->max_services = 10000;
    c->push_delay_ms = 5;
    c->weight_period_ms = 1000;
    c->flush_ms = 100;
    c->valid_for_ms = 30000;
    c->heartbeat_ms = 0;
    c->restore_grace_ms = 10000;
    c->service_retention_ms = 24LL * 3600 * 1000;
    c->preserve_window_ms = 10000;
    c->durable_delay_ms = 5;
    c->mono_ms = clock_mono_ms;
    c->wall_ms = clock_wall_ms;
    weights_config_default(&c->wcfg);
    c->policy = &weights_policy_a58;
}

const registry_config *registry_cfg(const registry *r) { return &r->cfg; }

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % NBUCKETS;
}

static void storage_warn(registry *r, const char *what, lookaside_status st)
{
    /* The in-memory state stays authoritative; a failing disk must not take
     * the balancer down. Rate-limit: one line per second at most. */
    static int64_t last;
    int64_t now = now_mono(r);
    if (now - last >= 1000) {
        last = now;
        log_warn("registry", "storage %s failed: %s (%s)", what, lookaside_status_str(st),
                 storage_errmsg(r->st));
    }
}

/* ------------------------------------------------------------ services */

bool registry_canon_name(const char *name, char out[254])
{
    if (name == NULL || !name_valid(name))
        return false;
    size_t i = 0;
    for (; name[i] && i < 253; i++)
        out[i] = (char)tolower((unsigned char)name[i]);
    out[i] = '\0';
    return true;
}

static reg_service *find_canon(registry *r, const char *canon)
{
    for (reg_service *s = r->buckets[name_hash(canon)]; s; s = s->hnext)
        if (strcmp(s->name, canon) == 0)
            return s;
    return NULL;
}

reg_service *registry_find(registry *r, const char *name)
{
    char canon[254];
    return registry_canon_name(name, canon) ? find_canon(r, canon) : NULL;
}

static void svc_free(registry *r, reg_service *s);
static void mark_dirty(registry *r, reg_service *s);

/* The known service that has been empty and unwatched longest, or NULL. */
static reg_service *oldest_idle(registry *r)
{
    reg_service *best = NULL;
    for (reg_service *s = r->head; s; s = s->lnext)
        if (s->known && s->n == 0 && s->n_subs == 0 &&
            (best == NULL || s->empty_since_mono_ms < best->empty_since_mono_ms))
            best = s;
    return best;
}

/* Forgets an empty, unwatched known service: memory and stored row. */
static void svc_forget(registry *r, reg_service *s, const char *why)
{
    log_info("registry", "%s: forgotten (%s)", s->name, why);
    lookaside_status st = storage_delete_service(r->st, s->name);
    if (st != LOOKASIDE_OK)
        storage_warn(r, "delete_service", st);
    svc_free(r, s);
}

/* Gives s a service slot (it becomes known). False when every slot is taken
 * by a service with backends or watchers. */
static bool svc_make_known(registry *r, reg_service *s)
{
    if (s->known)
        return true;
    if (r->n_known >= r->cfg.max_services) {
        reg_service *idle = oldest_idle(r);
        if (idle == NULL || idle == s)
            return false;
        svc_forget(r, idle, "its slot was needed");
    }
    s->known = true;
    r->n_known++;
    r->n_phantom--;
    mark_dirty(r, s);
    return true;
}

/* A new phantom service (canonical name). NULL when out of memory, or when
 * it is for a watcher and phantoms are at their cap (max_services). */
static reg_service *svc_create(registry *r, const char *canon, bool for_watch)
{
    if (for_watch && r->n_phantom >= r->cfg.max_services)
        return NULL;
    reg_service *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    snprintf(s->name, sizeof s->name, "%s", canon);
    s->list_state = LOOKASIDE__V1__LIST_STATE__LIST_STATE_UNKNOWN_SERVICE;
    uint32_t h = name_hash(canon);
    s->hnext = r->buckets[h];
    r->buckets[h] = s;
    s->lprev = r->tail;
    if (r->tail)
        r->tail->lnext = s;
    else
        r->head = s;
    r->tail = s;
    r->n_phantom++;
    return s;
}

/* Finds or creates name's service with a slot; NULL with msg set when the
 * name is invalid or no slot is free. */
static reg_service *svc_obtain_known(registry *r, const char *name, char *msg, size_t msglen)
{
    char canon[254];
    if (!registry_canon_name(name, canon)) {
        snprintf(msg, msglen, "not a valid service name");
        return NULL;
    }
    reg_service *s = find_canon(r, canon);
    if (s == NULL && (s = svc_create(r, canon, false)) == NULL) {
        snprintf(msg, msglen, "out of memory or too many services");
        return NULL;
    }
    if (!svc_make_known(r, s)) {
        if (s->n_subs == 0)
            svc_free(r, s);
        snprintf(msg, msglen, "too many services (limit %u)", r->cfg.max_services);
        return NULL;
    }
    return s;
}

reg_service *registry_first(registry *r) { return r->head; }
reg_service *registry_next(reg_service *s) { return s->lnext; }

static void schedule_publish(registry *r);

static void mark_stale(registry *r, reg_service *s)
{
    s->snap_stale = true;
    (void)r;
}

static void mark_dirty(registry *r, reg_service *s)
{
    s->snap_stale = true;
    if (!s->dirty) {
        s->dirty = true;
        schedule_publish(r);
    }
}

/* ------------------------------------------------------------ backends */

static size_t backend_pos(const reg_service *s, const char *address, bool *found)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(s->b[mid]->address, address);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

reg_backend *registry_find_backend(reg_service *s, const char *address)
{
    bool found;
    size_t i = backend_pos(s, address, &found);
    return found ? s->b[i] : NULL;
}

int registry_backend_source(const reg_backend *b)
{
    if (b->reported && b->in_dns)
        return LOOKASIDE__V1__BACKEND_SOURCE__BACKEND_SOURCE_BOTH;
    if (b->in_dns)
        return LOOKASIDE__V1__BACKEND_SOURCE__BACKEND_SOURCE_DNS;
    return LOOKASIDE__V1__BACKEND_SOURCE__BACKEND_SOURCE_REPORTED;
}

int registry_backend_state(const reg_backend *b)
{
    if (b->draining)
        return LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_DRAINING;
    if (b->restored && !b->reported && !b->in_dns)
        return LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_RESTORED;
    return LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_SERVING;
}

static void persist_service(registry *r, reg_service *s)
{
    lookaside_status st = storage_put_service(r->st, s->name, s->version);
    if (st != LOOKASIDE_OK)
        storage_warn(r, "put_service", st);
    s->persisted = true;
}

static void persist_backend(registry *r, reg_backend *b)
{
    storage_backend sb;
    memset(&sb, 0, sizeof sb);
    snprintf(sb.service, sizeof sb.service, "%s", b->svc->name);
    snprintf(sb.address, sizeof sb.address, "%s", b->address);
    snprintf(sb.zone, sizeof sb.zone, "%s", b->zone);
    sb.state = registry_backend_state(b);
    sb.source = registry_backend_source(b);
    sb.first_seen_ms = b->first_seen_wall_ms;
    sb.last_report_ms = b->last_report_wall_ms;
    snprintf(sb.cred_hash, sizeof sb.cred_hash, "%s", b->cred_hash);
    sb.weight_override = b->weight_override;
    sb.policy_weight = b->w.st.primed && isfinite(b->w.st.smoothed) ? b->w.st.smoothed : 0;
    lookaside_status st = storage_put_backend(r->st, &sb);
    if (st != LOOKASIDE_OK)
        storage_warn(r, "put_backend", st);
    if (!b->svc->persisted)
        persist_service(r, b->svc);
    if (r->mirror && b->local && b->reported)
        r->mirror->backend_put(r->mirror_arg, b);
}

static void util_free(reg_backend *b)
{
    for (size_t k = 0; k < b->n_util; k++)
        free(b->util[k].key);
    free(b->util);
    b->util = NULL;
    b->n_util = 0;
}

/* Adds (or finds) a backend of a known service. */
static reg_backend *backend_add(registry *r, reg_service *s, const la_addr *addr)
{
    char text[LA_ADDR_STRLEN];
    addr_format(addr, text, sizeof text);
    bool found;
    size_t pos = backend_pos(s, text, &found);
    if (found)
        return s->b[pos];
    if (s->n >= r->cfg.max_backends)
        return NULL;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        reg_backend **nb = realloc(s->b, cap * sizeof *nb);
        if (nb == NULL)
            return NULL;
        s->b = nb;
        s->cap = cap;
    }
    reg_backend *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->svc = s;
    b->addr = *addr;
    memcpy(b->address, text, sizeof text);
    char key[300];
    int kn = snprintf(key, sizeof key, "%s|%s", s->name, text);
    char hex[17];
    hash_hex64(key, (size_t)kn, hex);
    snprintf(b->token, sizeof b->token, "b%.15s", hex);   /* stable, printable, 16 bytes */
    b->first_seen_wall_ms = now_wall(r);
    b->since_mono_ms = now_mono(r);
    b->last_load_mono_ms = -1;
    b->w.in.ramp_start_ms = b->since_mono_ms;
    memmove(&s->b[pos + 1], &s->b[pos], (s->n - pos) * sizeof *s->b);
    s->b[pos] = b;
    s->n++;
    s->empty_since_mono_ms = 0;
    mark_dirty(r, s);
    return b;
}

static void backend_remove(registry *r, reg_backend *b, bool forget)
{
    reg_service *s = b->svc;
    bool found;
    size_t pos = backend_pos(s, b->address, &found);
    if (found && s->b[pos] == b) {
        memmove(&s->b[pos], &s->b[pos + 1], (s->n - pos - 1) * sizeof *s->b);
        s->n--;
    }
    if (forget) {
        lookaside_status st = storage_delete_backend(r->st, s->name, b->address);
        if (st != LOOKASIDE_OK)
            storage_warn(r, "delete_backend", st);
        if (r->mirror && b->local)
            r->mirror->backend_delete(r->mirror_arg, s->name, b->address);
    }
    if (s->n == 0)
        s->empty_since_mono_ms = now_mono(r);
    mark_dirty(r, s);
    util_free(b);
    free(b);
}

/* Self-preservation: may one more backend of s go through an unclean loss
 * now? At most half (rounded up, at least one) of the backends listed when
 * the window began, per window. */
static bool loss_allowed(registry *r, reg_service *s, int64_t now)
{
    if (s->loss_window_ms == 0 || now - s->loss_window_ms >= r->cfg.preserve_window_ms) {
        s->loss_window_ms = now;
        s->loss_base = s->n;
        s->losses = 0;
    }
    size_t budget = (s->loss_base + 1) / 2;
    if (budget < 1)
        budget = 1;
    if (s->losses >= budget)
        return false;
    s->losses++;
    return true;
}

static void owner_unwait(registry *r, reg_owner *o)
{
    if (o == NULL || !o->waiting)
        return;
    if (o->wprev)
        o->wprev->wnext = o->wnext;
    else
        r->waiters = o->wnext;
    if (o->wnext)
        o->wnext->wprev = o->wprev;
    o->wprev = o->wnext = NULL;
    o->waiting = false;
}

/* A backend's stream is gone (the owner already knows or was told). clean:
 * it leaves at once; else an unclean loss that self-preservation may hold. */
static void backend_gone(registry *r, reg_backend *b, bool clean)
{
    owner_unwait(r, b->owner);
    b->owner = NULL;
    b->reported = false;
    if (r->destroying || r->stopping) {
        backend_remove(r, b, false);   /* keep the row: a restart restores it */
        return;
    }
    if (b->in_dns) {
        mark_dirty(r, b->svc);
        persist_backend(r, b);
        return;
    }
    int64_t now = now_mono(r);
    if (clean || b->draining || loss_allowed(r, b->svc, now)) {
        backend_remove(r, b, true);
        return;
    }
    log_warn("registry", "%s %s: self-preservation: kept as RESTORED (more than half of the "
             "service's backends lost within %lld ms)", b->svc->name, b->address,
             (long long)r->cfg.preserve_window_ms);
    b->restored = true;
    b->since_mono_ms = now;
    mark_dirty(r, b->svc);
    persist_backend(r, b);
}

/* Drops a backend a stream owns: tells the owner, then treats it as gone. */
static void backend_drop(registry *r, reg_backend *b, lookaside_status code, const char *why,
                         bool clean)
{
    reg_owner *o = b->owner;
    owner_unwait(r, o);
    b->owner = NULL;
    if (o)
        o->dropped(o, code, why);
    backend_gone(r, b, clean);
}

lookaside_status registry_attach(registry *r, const char *service, const char *address,
                                 const char *zone, reg_owner *owner, reg_backend **out,
                                 char *msg, size_t msglen)
{
    la_addr addr;
    char canon[254];
    if (!registry_canon_name(service, canon)) {
        snprintf(msg, msglen, "register.service: not a valid service name (1-253 bytes of "
                              "letters, digits, '-', '_', '.')");
        return LOOKASIDE_EINVAL;
    }
    if (addr_parse(address, &addr) != LOOKASIDE_OK) {
        snprintf(msg, msglen, "register.address: want ip:port or [ipv6]:port with port 1-65535");
        return LOOKASIDE_EINVAL;
    }
    if (!zone_valid(zone)) {
        snprintf(msg, msglen, "register.zone: at most 63 bytes of letters, digits, '-', '_', '.'");
        return LOOKASIDE_EINVAL;
    }
    reg_service *s = svc_obtain_known(r, canon, msg, msglen);
    if (s == NULL)
        return LOOKASIDE_ELIMIT;
    reg_backend *b = backend_add(r, s, &addr);
    if (b == NULL) {
        snprintf(msg, msglen, "service %s has the maximum of %u backends", s->name,
                 r->cfg.max_backends);
        return LOOKASIDE_ELIMIT;
    }
    if (b->owner && b->owner != owner &&
        strcmp(b->owner->identity ? b->owner->identity : "",
               owner->identity ? owner->identity : "") != 0) {
        /* No hijack: the live registration stays as it is. */
        snprintf(msg, msglen, "register.address: %s is held by a live stream of another identity",
                 b->address);
        return LOOKASIDE_EPERM;
    }
    if (b->owner && b->owner != owner) {
        reg_owner *old = b->owner;
        owner_unwait(r, old);
        b->owner = NULL;
        log_info("registry", "%s %s: a new stream replaces the old one", s->name, b->address);
        old->dropped(old, LOOKASIDE_ECONFLICT, "replaced by a newer stream for the same address");
    }
    bool was_serving = b->reported || b->in_dns;
    b->owner = owner;
    b->reported = true;
    b->local = true;
    b->remote = false;
    if (b->restored)
        mark_dirty(r, s);
    b->restored = false;
    if (b->draining || strcmp(b->zone, zone) != 0 || !was_serving)
        mark_dirty(r, s);
    b->draining = false;
    snprintf(b->zone, sizeof b->zone, "%s", zone);
    b->last_report_mono_ms = now_mono(r);
    b->last_report_wall_ms = now_wall(r);
    persist_backend(r, b);
    *out = b;
    return LOOKASIDE_OK;
}

void registry_detach(registry *r, reg_backend *b, bool clean)
{
    if (b == NULL)
        return;
    backend_gone(r, b, clean);
}

static void on_durable_timer(loop *l, void *arg);

void registry_await_durable(registry *r, reg_owner *owner)
{
    if (owner->waiting)
        return;
    owner->waiting = true;
    owner->wprev = NULL;
    owner->wnext = r->waiters;
    if (r->waiters)
        r->waiters->wprev = owner;
    r->waiters = owner;
    if (r->durable_timer == 0)
        r->durable_timer =
            loop_timer_add(r->l, now_mono(r) + r->cfg.durable_delay_ms, on_durable_timer, r);
}

/* Commits pending writes; on success tells every waiting owner. */
static void flush_now(registry *r)
{
    if (storage_pending(r->st) > 0) {
        int64_t t0 = clock_mono_ns();
        lookaside_status st = storage_flush(r->st);
        METRIC_FLUSHED(st, clock_mono_ns() - t0);
        if (st != LOOKASIDE_OK) {
            storage_warn(r, "flush", st);
            return;   /* waiters wait for the next flush that works */
        }
    }
    while (r->waiters) {
        reg_owner *o = r->waiters;
        owner_unwait(r, o);
        if (o->durable)
            o->durable(o);
    }
}

static void on_durable_timer(loop *l, void *arg)
{
    (void)l;
    registry *r = arg;
    r->durable_timer = 0;
    flush_now(r);
}

void registry_touch(registry *r, reg_backend *b)
{
    b->last_report_mono_ms = now_mono(r);
    b->last_report_wall_ms = now_wall(r);
}

void registry_report(registry *r, reg_backend *b, const storage_load *load,
                     const snap_util *util, size_t n_util)
{
    registry_touch(r, b);
    b->load = *load;
    b->load.at_ms = b->last_report_wall_ms;
    b->has_load = true;
    b->last_load_mono_ms = b->last_report_mono_ms;
    util_free(b);
    if (n_util > SNAP_UTIL_MAX)
        n_util = SNAP_UTIL_MAX;
    if (n_util > 0 && (b->util = calloc(n_util, sizeof *b->util)) != NULL) {
        for (size_t k = 0; k < n_util; k++) {
            if ((b->util[k].key = strdup(util[k].key)) == NULL)
                break;
            b->util[k].value = util[k].value;
            b->n_util = k + 1;
        }
    }
    mark_stale(r, b->svc);
    lookaside_status st = storage_put_load(r->st, b->svc->name, b->address, &b->load);
    if (st != LOOKASIDE_OK)
        storage_warn(r, "put_load", st);
}

/* A drain or override of a backend another replica owns goes to that
 * replica (etcd mode); the change made here only lasts until its next put. */
static void remote_admin(registry *r, const reg_backend *b)
{
    if (r->mirror && b->remote && r->mirror->remote_admin)
        r->mirror->remote_admin(r->mirror_arg, b);
}

void registry_set_draining(registry *r, reg_backend *b, bool draining)
{
    if (b->draining == draining)
        return;
    b->draining = draining;
    log_info("registry", "%s %s: %s", b->svc->name, b->address, draining ? "draining" : "serving");
    persist_backend(r, b);
    mark_dirty(r, b->svc);
    remote_admin(r, b);
}

void registry_set_override(registry *r, reg_backend *b, uint32_t weight)
{
    b->weight_override = weight;
    persist_backend(r, b);
    mark_dirty(r, b->svc);
    remote_admin(r, b);
}

/* ------------------------------------------------------------- replicas */

void registry_set_mirror(registry *r, const reg_mirror_ops *ops, void *arg)
{
    r->mirror = ops;
    r->mirror_arg = arg;
}

/* The store changed s at revision rev: its version moves to it (store
 * mode), so it is published again even when its list did not change. */
static void store_revision(registry *r, reg_service *s, uint64_t rev)
{
    if (rev <= s->version_floor)
        return;
    s->version_floor = rev;
    if (r->store_mode)
        mark_dirty(r, s);
}

void registry_version_floor(registry *r, const char *service, uint64_t v)
{
    reg_service *s = registry_find(r, service);
    if (s)
        store_revision(r, s, v);
}

void registry_set_store(registry *r, bool following)
{
    bool first = !r->store_mode;
    r->store_mode = true;
    if (!first && r->following == following)
        return;
    r->following = following;
    log_info("registry", "store mode: %s", following ? "following the store (lists confirmed)"
                                                     : "not following the store (lists unconfirmed)");
    for (reg_service *s = r->head; s; s = s->lnext)
        if (s->known)
            mark_dirty(r, s);
}

lookaside_status registry_remote_put(registry *r, const reg_remote *rb)
{
    la_addr addr;
    char msg[120], canon[254];
    if (!registry_canon_name(rb->service, canon) || addr_parse(rb->address, &addr) != LOOKASIDE_OK ||
        !zone_valid(rb->zone) || rb->weight > WEIGHTS_MAX || rb->weight_override > WEIGHTS_MAX)
        return LOOKASIDE_EINVAL;
    reg_service *s = svc_obtain_known(r, canon, msg, sizeof msg);
    if (s == NULL)
        return LOOKASIDE_ELIMIT;
    store_revision(r, s, rb->revision);
    reg_backend *b = backend_add(r, s, &addr);
    if (b == NULL)
        return LOOKASIDE_ELIMIT;
    b->store_present = true;
    b->store_weight = rb->weight;
    b->store_draining = rb->draining;
    b->store_override = rb->weight_override;
    snprintf(b->store_zone, sizeof b->store_zone, "%s", rb->zone);
    if (b->reported) {
        mark_dirty(r, s);   /* its store view changed */
        return LOOKASIDE_OK;   /* a live stream here owns it */
    }
    b->remote = true;
    b->local = false;
    b->restored = false;
    b->remote_weight = rb->weight;
    b->weight_override = rb->weight_override;
    b->draining = rb->draining;
    b->w.in.ramp_start_ms = 0;   /* the owner already ramps it */
    snprintf(b->zone, sizeof b->zone, "%s", rb->zone);
    mark_dirty(r, s);
    return LOOKASIDE_OK;
}

void registry_remote_delete(registry *r, const char *service, const char *address,
                            uint64_t revision)
{
    reg_service *s = registry_find(r, service);
    if (s == NULL)
        return;
    store_revision(r, s, revision);
    reg_backend *b = registry_find_backend(s, address);
    if (b != NULL && b->store_present) {
        b->store_present = false;
        mark_dirty(r, s);
    }
    if (b == NULL || !b->remote)
        return;
    b->remote = false;
    backend_gone(r, b, false);
}

/* ----------------------------------------------------------------- DNS */

void registry_dns_update(registry *r, const char *service, const la_addr *addrs, size_t n)
{
    char msg[120];
    reg_service *s = svc_obtain_known(r, service, msg, sizeof msg);
    if (s == NULL) {
        log_warn("registry", "dns: ignoring %s: %s", service, msg);
        return;
    }
    /* Mark what the answer holds, then sweep the unmarked: linear in both. */
    for (size_t i = 0; i < s->n; i++)
        s->b[i]->dns_mark = false;
    for (size_t i = 0; i < n; i++) {
        char text[LA_ADDR_STRLEN];
        addr_format(&addrs[i], text, sizeof text);
        reg_backend *b = registry_find_backend(s, text);
        if (b == NULL) {
            b = backend_add(r, s, &addrs[i]);
            if (b == NULL) {
                log_warn("registry", "dns: %s is full, ignoring %s", s->name, text);
                continue;
            }
            log_info("registry", "dns: %s + %s", s->name, text);
        }
        b->dns_mark = true;
        if (!b->in_dns || b->restored) {
            b->in_dns = true;
            b->restored = false;
            mark_dirty(r, s);
            persist_backend(r, b);
        }
    }
    /* Backwards: backend_remove shifts the entries after i. */
    for (size_t i = s->n; i-- > 0;) {
        reg_backend *b = s->b[i];
        if (b->dns_mark || !b->in_dns)
            continue;
        b->in_dns = false;
        log_info("registry", "dns: %s - %s", s->name, b->address);
        if (b->reported) {
            mark_dirty(r, s);
            persist_backend(r, b);
        } else {
            backend_remove(r, b, true);
        }
    }
}

/* -------------------------------------------------------------- weights */

static void compute(registry *r, reg_service *s, int64_t now)
{
    if (s->n == 0)
        return;
    if (r->scratch_cap < s->n) {
        weights_backend *w = realloc(r->scratch, s->n * sizeof *w);
        if (w == NULL)
            return;
        r->scratch = w;
        r->scratch_cap = s->n;
    }
    for (size_t i = 0; i < s->n; i++) {
        reg_backend *b = s->b[i];
        weights_input *in = &b->w.in;
        in->has_report = b->has_load && b->reported;
        in->cpu = b->load.cpu;
        in->app = b->load.app;
        in->rps = b->load.rps;
        in->eps = b->load.eps;
        in->report_ms = b->last_report_mono_ms;
        in->draining = b->draining;
        /* Another replica computed a remote backend's weight from its load. */
        in->override_weight = b->weight_override ? b->weight_override
                              : b->remote        ? (b->remote_weight ? b->remote_weight : 1)
                                                 : 0;
        r->scratch[i] = b->w;
    }
    r->cfg.policy->compute(&r->cfg.wcfg, r->scratch, s->n, now);
    for (size_t i = 0; i < s->n; i++) {
        s->b[i]->w = r->scratch[i];
        /* Slow start ends once the ramp is over; keep the input tidy. */
        if (s->b[i]->w.in.ramp_start_ms != 0 &&
            now - s->b[i]->w.in.ramp_start_ms > r->cfg.wcfg.slow_start_ms)
            s->b[i]->w.in.ramp_start_ms = 0;
    }
    s->last_compute_ms = now;
    s->snap_stale = true;
}

static bool weights_moved(registry *r, reg_service *s)
{
    uint32_t *o = malloc((s->n + 1) * sizeof *o);
    uint32_t *nw = malloc((s->n + 1) * sizeof *nw);
    bool moved = true;   /* when in doubt, publish */
    if (o != NULL && nw != NULL) {
        for (size_t i = 0; i < s->n; i++) {
            o[i] = s->b[i]->published_weight;
            nw[i] = s->b[i]->w.weight;
        }
        moved = weights_significant(&r->cfg.wcfg, o, nw, s->n);
    }
    free(o);
    free(nw);
    return moved;
}

/* ------------------------------------------------------------- snapshots */

/* Replaces s's snapshot by one built now. packed is taken; NULL shares the
 * current snapshot's list (the version did not change). */
static bool snap_swap(registry *r, reg_service *s, grpc_byte_buffer *packed)
{
    if (packed == NULL && s->snap != NULL && s->snap->packed != NULL &&
        (packed = grpc_byte_buffer_copy(s->snap->packed)) == NULL)   /* shares the slices */
        return false;
    snap_service *n = regsnap_build(s, &r->cfg, packed, ++s->snap_seq, now_mono(r));
    if (n == NULL) {
        log_error("registry", "%s: out of memory building a snapshot", s->name);
        return false;
    }
    snap_service_unref(s->snap);
    s->snap = n;
    s->snap_stale = false;
    r->catalog_dirty = true;
    return true;
}

static void publish(registry *r, reg_service *s);

static void refresh_snapshot(registry *r, reg_service *s)
{
    if (s->snap == NULL)
        publish(r, s);
    else if (s->snap_stale)
        snap_swap(r, s, NULL);
}

/* Publishes the catalog if any snapshot changed since the last one. */
static void catalog_refresh(registry *r)
{
    if (!r->catalog_dirty)
        return;
    size_t n = 0;
    for (reg_service *s = r->head; s; s = s->lnext)
        if (s->snap)
            n++;
    snap_service **v = malloc((n ? n : 1) * sizeof *v);
    if (v == NULL)
        return;
    size_t k = 0;
    for (reg_service *s = r->head; s; s = s->lnext)
        if (s->snap)
            v[k++] = s->snap;
    snap_catalog *c = snap_catalog_build(v, k, ++r->catalog_seq);
    free(v);
    if (c == NULL)
        return;
    pthread_mutex_lock(&r->catalog_mu);
    snap_catalog *old = r->catalog;
    r->catalog = c;
    pthread_mutex_unlock(&r->catalog_mu);
    snap_catalog_release(old);
    r->catalog_dirty = false;
}

snap_catalog *registry_catalog_acquire(registry *r)
{
    pthread_mutex_lock(&r->catalog_mu);
    snap_catalog *c = snap_catalog_ref(r->catalog);
    pthread_mutex_unlock(&r->catalog_mu);
    return c;
}

const snap_service *registry_snapshot(registry *r, const char *name)
{
    reg_service *s = registry_find(r, name);
    if (s == NULL)
        return NULL;
    /* A reader on the loop (admin) sees explanations of the latest load,
     * not of the last weight round; published weights do not change. */
    if (s->snap_stale && s->snap != NULL && s->n > 0)
        compute(r, s, now_mono(r));
    if (r->store_mode && s->dirty && s->snap != NULL) {
        publish(r, s);   /* as in registry_subscribe */
        catalog_refresh(r);
    }
    refresh_snapshot(r, s);
    return s->snap;
}

const snap_service *registry_sub_snapshot(registry *r, const reg_sub *sub)
{
    (void)r;
    return sub->svc ? sub->svc->snap : NULL;
}

/* ------------------------------------------------------------- publishing */

/* Never repeats for a name: see registry.h. A new incarnation of a name
 * (version 0 or 1: never published as known in this process) also starts
 * above every version this process issued, in case the clock did not move
 * since an earlier incarnation was forgotten. */
static uint64_t next_version(registry *r, const reg_service *s)
{
    uint64_t v = s->version + 1;
    if (s->version <= 1 && r->max_version + 1 > v)
        v = r->max_version + 1;
    if (s->version_floor > v)
        v = s->version_floor;
    int64_t w = now_wall(r);
    uint64_t clock_v = w > 0 ? (uint64_t)w * 1000u : 0;
    v = clock_v > v ? clock_v : v;
    if (v > r->max_version)
        r->max_version = v;
    return v;
}

/* Store mode (see registry_set_store): sets the view, the flag and the
 * version of the list about to be published; false when the list, its
 * version and its flag are what was last published (nothing to send). */
static bool store_version(registry *r, reg_service *s)
{
    bool was_unconfirmed = s->unconfirmed;
    s->store_view = r->following;
    s->unconfirmed = !r->following;
    uint64_t h = regsnap_content_hash(s);
    bool changed = h != s->content_hash || s->version < 2;
    s->content_hash = h;
    /* Revisions stay far below 2^40 (a trillion writes). */
    uint64_t rev = s->version_floor < (1ull << 40) ? s->version_floor : (1ull << 40) - 1;
    uint64_t v = rev << 24;
    if (v <= s->version)
        v = changed ? s->version + 1 : s->version;
    if (v < 2)
        v = 2;   /* 1 means "unknown service" */
    if (s->snap != NULL && v == s->version && s->unconfirmed == was_unconfirmed)
        return false;
    s->version = v;
    if (v > r->max_version)
        r->max_version = v;
    return true;
}

static void publish(registry *r, reg_service *s)
{
    int64_t now = now_mono(r);
    compute(r, s, now);
    s->dirty = false;
    bool any_restored = false;
    /* Store mode: every store change publishes (its revision is the
     * version); a local weight moves with it only when the weights moved
     * enough, as in a weight round, or every publish would write one more
     * tiny move to the store, whose echo publishes again. */
    bool weights_ok = !r->store_mode || weights_moved(r, s);
    for (size_t i = 0; i < s->n; i++) {
        reg_backend *b = s->b[i];
        int state = registry_backend_state(b);
        if (state == LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_RESTORED)
            any_restored = true;
        uint32_t w = state == LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_DRAINING ? 0 : b->w.weight;
        if (!weights_ok && b->local && b->reported && w != 0 && b->published_weight != 0)
            w = b->published_weight;
        bool moved = w != b->published_weight;
        b->published_weight = w;
        /* Other replicas see a weight only when it is published (it moved
         * enough), never per load report. */
        if (moved && r->mirror && b->local && b->reported)
            r->mirror->backend_put(r->mirror_arg, b);
    }
    if (!s->known) {
        s->list_state = LOOKASIDE__V1__LIST_STATE__LIST_STATE_UNKNOWN_SERVICE;
        s->version = 1;
    } else {
        s->list_state = any_restored ? LOOKASIDE__V1__LIST_STATE__LIST_STATE_RESTORED
                                     : LOOKASIDE__V1__LIST_STATE__LIST_STATE_LIVE;
        if (r->store_mode) {
            if (!store_version(r, s)) {
                /* Nothing a watcher would see changed; readers still get
                 * the latest explanations. */
                if (s->snap_stale)
                    snap_swap(r, s, NULL);
                return;
            }
        } else {
            s->version = next_version(r, s);
        }
    }
    int64_t wall = now_wall(r);
    grpc_byte_buffer *bb = regsnap_pack_list(s, &r->cfg, wall);
    if (bb == NULL || !snap_swap(r, s, bb)) {
        log_error("registry", "out of memory publishing %s", s->name);
        return;
    }
    s->snap->published_unix_ms = wall;
    METRIC_INC(publishes);
    s->published_mono_ms = now;
    s->last_sent_mono_ms = now;
    if (s->known)
        persist_service(r, s);
    log_debug("registry", "%s: published version %llu (%zu backends)", s->name,
              (unsigned long long)s->version, s->n);
    /* A subscriber may unsubscribe itself from its callback. */
    const snap_service *snap = s->snap;
    for (reg_sub *sub = s->subs, *next; sub; sub = next) {
        next = sub->next;
        sub->on_publish(sub, snap);
    }
}

void registry_publish_dirty(registry *r)
{
    for (reg_service *s = r->head; s; s = s->lnext)
        if (s->dirty)
            publish(r, s);
    catalog_refresh(r);
}

static void on_publish_timer(loop *l, void *arg)
{
    (void)l;
    registry *r = arg;
    r->publish_timer = 0;
    registry_publish_dirty(r);
}

static void schedule_publish(registry *r)
{
    if (r->publish_timer == 0 && !r->destroying && !r->stopping)
        r->publish_timer =
            loop_timer_add(r->l, now_mono(r) + r->cfg.push_delay_ms, on_publish_timer, r);
}

static int64_t heartbeat_ms(const registry *r)
{
    return r->cfg.heartbeat_ms > 0 ? r->cfg.heartbeat_ms : r->cfg.valid_for_ms / 3;
}

/* Quiet services with subscribers get one heartbeat, packed once and shared
 * by every subscriber that wants it. */
static void heartbeat_all(registry *r, int64_t now)
{
    int64_t period = heartbeat_ms(r);
    for (reg_service *s = r->head; s; s = s->lnext) {
        if (s->subs == NULL || s->snap == NULL || s->dirty || now - s->last_sent_mono_ms < period)
            continue;
        grpc_byte_buffer *hb = regsnap_pack_heartbeat(s, &r->cfg, now_wall(r));
        if (hb == NULL)
            continue;
        s->last_sent_mono_ms = now;
        for (reg_sub *sub = s->subs, *next; sub; sub = next) {
            next = sub->next;
            if (sub->on_heartbeat)
                sub->on_heartbeat(sub, s->snap, hb);
        }
        grpc_byte_buffer_destroy(hb);
    }
}

static void on_heartbeat(loop *l, void *arg)
{
    registry *r = arg;
    int64_t now = now_mono(r), period = heartbeat_ms(r);
    heartbeat_all(r, now);
    int64_t tick = period / 4 > 10 ? period / 4 : 10;
    r->heartbeat_timer = loop_timer_add(l, now + tick, on_heartbeat, r);
}

/* ------------------------------------------------------------ subscriptions */

lookaside_status registry_subscribe(registry *r, const char *name, reg_sub *sub)
{
    char canon[254];
    if (!registry_canon_name(name, canon))
        return LOOKASIDE_EINVAL;
    reg_service *s = find_canon(r, canon);
    if (s == NULL) {
        s = svc_create(r, canon, true);
        if (s == NULL)
            return LOOKASIDE_ELIMIT;
    }
    /* Store mode: a watcher arriving (e.g. failing over from another
     * replica) gets what the store has brought here, not the list before a
     * change still in its coalescing delay: its version could be lower than
     * the one the other replica already sent. */
    if (r->store_mode && s->dirty && s->snap != NULL) {
        publish(r, s);
        catalog_refresh(r);
    }
    sub->svc = s;
    sub->prev = NULL;
    sub->next = s->subs;
    if (s->subs)
        s->subs->prev = sub;
    s->subs = sub;
    s->n_subs++;
    if (s->snap == NULL) {
        publish(r, s);
        catalog_refresh(r);
    } else {
        mark_stale(r, s);
    }
    return LOOKASIDE_OK;
}

static void svc_free(registry *r, reg_service *s)
{
    reg_service **pp = &r->buckets[name_hash(s->name)];
    while (*pp && *pp != s)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = s->hnext;
    if (s->lprev)
        s->lprev->lnext = s->lnext;
    else
        r->head = s->lnext;
    if (s->lnext)
        s->lnext->lprev = s->lprev;
    else
        r->tail = s->lprev;
    if (s->known)
        r->n_known--;
    else
        r->n_phantom--;
    snap_service_unref(s->snap);
    free(s->b);
    free(s);
    r->catalog_dirty = true;
}

void registry_unsubscribe(registry *r, reg_sub *sub)
{
    reg_service *s = sub->svc;
    if (s == NULL)
        return;
    if (sub->prev)
        sub->prev->next = sub->next;
    else
        s->subs = sub->next;
    if (sub->next)
        sub->next->prev = sub->prev;
    s->n_subs--;
    sub->svc = NULL;
    sub->prev = sub->next = NULL;
    mark_stale(r, s);
    /* A phantom goes with its last watcher, so hostile Watch names cannot
     * pile up. A known empty service starts its retention now. */
    if (s->n_subs == 0 && !s->known) {
        svc_free(r, s);
        catalog_refresh(r);
    } else if (s->n_subs == 0 && s->n == 0) {
        s->empty_since_mono_ms = now_mono(r);
    }
}

void registry_count_watcher(registry *r, reg_service *s, int delta)
{
    if (s == NULL)
        return;
    if (delta < 0 && s->n_watchers > 0)
        s->n_watchers--;
    else if (delta > 0)
        s->n_watchers++;
    mark_stale(r, s);
}

static void totals_add(grpclb_totals *t, const grpclb_totals *d)
{
    int64_t *tv[] = {&t->started, &t->finished, &t->failed_to_send, &t->known_received,
                     &t->dropped};
    const int64_t dv[] = {d->started, d->finished, d->failed_to_send, d->known_received,
                          d->dropped};
    for (size_t i = 0; i < sizeof dv / sizeof dv[0]; i++) {
        int64_t add = dv[i] < 0 ? 0 : dv[i];
        *tv[i] = add > INT64_MAX - *tv[i] ? INT64_MAX : *tv[i] + add;
    }
}

void registry_add_grpclb_stats(registry *r, reg_service *s, const char *token,
                               const grpclb_totals *d)
{
    totals_add(&s->lb, d);
    mark_stale(r, s);
    if (token == NULL)
        return;
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->b[i]->token, token) == 0) {
            totals_add(&s->b[i]->lb, d);
            return;
        }
    }
}

/* ------------------------------------------------------------------ timers */

static void sweep_service(registry *r, reg_service *s, int64_t now)
{
    int64_t window = (int64_t)r->cfg.evict_intervals * r->cfg.report_interval_ms;
    for (size_t i = s->n; i-- > 0;) {
        if (i >= s->n)
            continue;
        reg_backend *b = s->b[i];
        if (b->reported && now - b->last_report_mono_ms > window) {
            char why[96];
            snprintf(why, sizeof why, "no report for %lld ms (limit %lld ms)",
                     (long long)(now - b->last_report_mono_ms), (long long)window);
            log_info("registry", "%s %s: evicted: %s", s->name, b->address, why);
            METRIC_INC(evictions);
            backend_drop(r, b, LOOKASIDE_ETIMEOUT, why, false);
        } else if (b->restored && !b->reported && !b->in_dns &&
                   now - b->since_mono_ms > r->cfg.restore_grace_ms && loss_allowed(r, s, now)) {
            log_info("registry", "%s %s: restored backend not confirmed within %lld ms; dropped",
                     s->name, b->address, (long long)r->cfg.restore_grace_ms);
            backend_remove(r, b, true);
        }
    }
}

static void sweep_all(registry *r, int64_t now)
{
    for (reg_service *s = r->head, *next; s; s = next) {
        next = s->lnext;
        sweep_service(r, s, now);
        if (s->known && s->n == 0 && s->n_subs == 0 && s->empty_since_mono_ms != 0 &&
            now - s->empty_since_mono_ms > r->cfg.service_retention_ms)
            svc_forget(r, s, "empty and unwatched past the retention");
    }
    catalog_refresh(r);
}

static void on_sweep(loop *l, void *arg)
{
    registry *r = arg;
    int64_t now = now_mono(r);
    sweep_all(r, now);
    int64_t period = r->cfg.report_interval_ms / 4;
    if (period < 20)
        period = 20;
    r->sweep_timer = loop_timer_add(l, now + period, on_sweep, r);
}

static void weights_all(registry *r, int64_t now)
{
    for (reg_service *s = r->head; s; s = s->lnext) {
        if (s->n == 0 || s->dirty) {
            refresh_snapshot(r, s);
            continue;
        }
        compute(r, s, now);
        if (weights_moved(r, s))
            mark_dirty(r, s);
        else
            refresh_snapshot(r, s);
    }
    catalog_refresh(r);
}

static void on_weights(loop *l, void *arg)
{
    registry *r = arg;
    int64_t now = now_mono(r);
    weights_all(r, now);
    r->weights_timer = loop_timer_add(l, now + r->cfg.weight_period_ms, on_weights, r);
}

static void on_flush(loop *l, void *arg)
{
    registry *r = arg;
    flush_now(r);
    r->flush_timer = loop_timer_add(l, now_mono(r) + r->cfg.flush_ms, on_flush, r);
}

/* ------------------------------------------------------------- lifecycle */

static lookaside_status restore(registry *r)
{
    storage_service *svcs = NULL;
    storage_backend *bs = NULL;
    size_t ns = 0, nb = 0;
    lookaside_status st = storage_load_services(r->st, &svcs, &ns);
    if (st != LOOKASIDE_OK)
        return st;
    st = storage_load_backends(r->st, &bs, &nb);
    if (st != LOOKASIDE_OK) {
        free(svcs);
        return st;
    }
    char msg[120];
    int64_t now = now_mono(r);
    for (size_t i = 0; i < ns; i++) {
        reg_service *s = svc_obtain_known(r, svcs[i].name, msg, sizeof msg);
        if (s == NULL) {
            log_warn("registry", "restore: skipping stored service: %s", msg);
            continue;
        }
        if (svcs[i].version > s->version)
            s->version = svcs[i].version;
        s->persisted = true;
        s->empty_since_mono_ms = now;
        mark_dirty(r, s);
    }
    size_t restored = 0;
    for (size_t i = 0; i < nb; i++) {
        storage_backend *sb = &bs[i];
        la_addr addr;
        reg_service *s = svc_obtain_known(r, sb->service, msg, sizeof msg);
        if (s == NULL || addr_parse(sb->address, &addr) != LOOKASIDE_OK) {
            log_warn("registry", "restore: skipping invalid stored backend");
            continue;
        }
        reg_backend *b = backend_add(r, s, &addr);
        if (b == NULL)
            continue;
        b->restored = true;
        b->w.in.ramp_start_ms = 0;   /* it was serving before the restart */
        snprintf(b->zone, sizeof b->zone, "%s", zone_valid(sb->zone) ? sb->zone : "");
        b->draining = sb->state == LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_DRAINING;
        b->first_seen_wall_ms = sb->first_seen_ms;
        b->last_report_wall_ms = sb->last_report_ms;
        b->weight_override = sb->weight_override <= WEIGHTS_MAX ? sb->weight_override : 0;
        snprintf(b->cred_hash, sizeof b->cred_hash, "%.16s", sb->cred_hash);
        if (sb->has_load)
            b->load = sb->load;
        if (sb->policy_weight > 0 && isfinite(sb->policy_weight)) {
            b->w.st.smoothed = sb->policy_weight;
            b->w.st.primed = true;
            b->w.st.last_ms = now;
        }
        restored++;
    }
    free(svcs);
    free(bs);
    if (restored > 0)
        log_info("registry", "restored %zu backends in %zu services (kept %lld ms for their "
                 "reports)", restored, r->n_known, (long long)r->cfg.restore_grace_ms);
    registry_publish_dirty(r);
    return LOOKASIDE_OK;
}

lookaside_status registry_create(loop *l, storage *st, const registry_config *cfg,
                                 registry **out)
{
    registry *r = calloc(1, sizeof *r);
    if (r == NULL)
        return LOOKASIDE_ENOMEM;
    r->l = l;
    r->st = st;
    r->cfg = *cfg;
    if (r->cfg.policy == NULL)
        r->cfg.policy = &weights_policy_a58;
    if (r->cfg.mono_ms == NULL)
        r->cfg.mono_ms = clock_mono_ms;
    if (r->cfg.wall_ms == NULL)
        r->cfg.wall_ms = clock_wall_ms;
    pthread_mutex_init(&r->catalog_mu, NULL);
    r->started_mono_ms = now_mono(r);
    lookaside_status s = restore(r);
    if (s != LOOKASIDE_OK) {
        log_error("registry", "restore failed: %s (%s)", lookaside_status_str(s),
                  storage_errmsg(st));
        registry_destroy(r);
        return s;
    }
    r->catalog_dirty = true;
    catalog_refresh(r);
    int64_t now = now_mono(r);
    r->sweep_timer = loop_timer_add(l, now + 50, on_sweep, r);
    r->weights_timer = loop_timer_add(l, now + r->cfg.weight_period_ms, on_weights, r);
    r->flush_timer = loop_timer_add(l, now + r->cfg.flush_ms, on_flush, r);
    r->heartbeat_timer = loop_timer_add(l, now + heartbeat_ms(r) / 4 + 1, on_heartbeat, r);
    *out = r;
    return LOOKASIDE_OK;
}

void registry_tick(registry *r)
{
    int64_t now = now_mono(r);
    registry_publish_dirty(r);
    sweep_all(r, now);
    weights_all(r, now);
    registry_publish_dirty(r);
    heartbeat_all(r, now);
    flush_now(r);
}

void registry_begin_shutdown(registry *r)
{
    if (r)
        r->stopping = true;
}

void registry_destroy(registry *r)
{
    if (r == NULL)
        return;
    r->destroying = true;
    loop_timer_cancel(r->l, r->sweep_timer);
    loop_timer_cancel(r->l, r->weights_timer);
    loop_timer_cancel(r->l, r->flush_timer);
    loop_timer_cancel(r->l, r->publish_timer);
    loop_timer_cancel(r->l, r->heartbeat_timer);
    loop_timer_cancel(r->l, r->durable_timer);
    for (reg_service *s = r->head, *next; s; s = next) {
        next = s->lnext;
        /* Live backends keep their rows: a restart restores them. */
        while (s->n > 0) {
            reg_backend *b = s->b[s->n - 1];
            if (b->owner) {
                reg_owner *o = b->owner;
                owner_unwait(r, o);
                b->owner = NULL;
                o->dropped(o, LOOKASIDE_ESHUTDOWN, "server shutting down");
            }
            s->n--;
            util_free(b);
            free(b);
        }
        for (reg_sub *sub = s->subs; sub; sub = sub->next)
            sub->svc = NULL;
        snap_service_unref(s->snap);
        free(s->b);
        free(s);
    }
    if (r->st) {
        lookaside_status st = storage_flush(r->st);
        if (st != LOOKASIDE_OK)
            storage_warn(r, "final flush", st);
    }
    snap_catalog_release(r->catalog);
    pthread_mutex_destroy(&r->catalog_mu);
    free(r->scratch);
    free(r);
}
