#include "registry.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pbio.h"

#define NBUCKETS 4096
/* Versions restart above the stored value by this gap: publishes between
 * the last flush and a crash were never stored, and a client must never see
 * a version go backwards. Flushes happen every flush_ms (~100 ms), so far
 * fewer than this many versions can be lost. */
#define VERSION_GAP 100000

struct registry {
    loop *l;
    storage *st;
    registry_config cfg;
    reg_service *buckets[NBUCKETS];
    reg_service *head, *tail;
    size_t n_services;
    uint64_t publish_timer;
    uint64_t sweep_timer, weights_timer, flush_timer;
    weights_backend *scratch;
    size_t scratch_cap;
    bool destroying;
    bool stopping;     /* shutting down: keep stored rows for the restart */
};

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
    int64_t now = clock_mono_ms();
    if (now - last >= 1000) {
        last = now;
        log_warn("registry", "storage %s failed: %s (%s)", what, lookaside_status_str(st),
                 storage_errmsg(r->st));
    }
}

/* ------------------------------------------------------------ services */

reg_service *registry_find(registry *r, const char *name)
{
    for (reg_service *s = r->buckets[name_hash(name)]; s; s = s->hnext)
        if (strcmp(s->name, name) == 0)
            return s;
    return NULL;
}

static reg_service *svc_create(registry *r, const char *name)
{
    if (r->n_services >= r->cfg.max_services)
        return NULL;
    reg_service *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    snprintf(s->name, sizeof s->name, "%s", name);
    s->list_state = LOOKASIDE__V1__LIST_STATE__LIST_STATE_UNKNOWN_SERVICE;
    uint32_t h = name_hash(name);
    s->hnext = r->buckets[h];
    r->buckets[h] = s;
    s->lprev = r->tail;
    if (r->tail)
        r->tail->lnext = s;
    else
        r->head = s;
    r->tail = s;
    r->n_services++;
    return s;
}

reg_service *registry_first(registry *r) { return r->head; }
reg_service *registry_next(reg_service *s) { return s->lnext; }

static void schedule_publish(registry *r);

static void mark_dirty(registry *r, reg_service *s)
{
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
    if (!b->svc->persisted) {
        b->svc->persisted = true;
        st = storage_put_service(r->st, b->svc->name, b->svc->version);
        if (st != LOOKASIDE_OK)
            storage_warn(r, "put_service", st);
    }
}

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
    b->first_seen_wall_ms = clock_wall_ms();
    b->since_mono_ms = clock_mono_ms();
    b->w.in.ramp_start_ms = b->since_mono_ms;
    memmove(&s->b[pos + 1], &s->b[pos], (s->n - pos) * sizeof *s->b);
    s->b[pos] = b;
    s->n++;
    s->known = true;
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
    }
    mark_dirty(r, s);
    free(b);
}

/* Drops a backend a stream owns: tells the owner, then removes it unless DNS
 * still lists it. */
static void backend_drop(registry *r, reg_backend *b, grpc_status_code code, const char *why)
{
    reg_owner *o = b->owner;
    b->owner = NULL;
    b->reported = false;
    if (o)
        o->dropped(o, code, why);
    if (b->in_dns && !r->destroying && !r->stopping) {
        mark_dirty(r, b->svc);
        persist_backend(r, b);
    } else {
        backend_remove(r, b, !r->destroying && !r->stopping);
    }
}

lookaside_status registry_attach(registry *r, const char *service, const char *address,
                                 const char *zone, reg_owner *owner, reg_backend **out,
                                 char *msg, size_t msglen)
{
    la_addr addr;
    if (!name_valid(service)) {
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
    reg_service *s = registry_find(r, service);
    if (s == NULL && (s = svc_create(r, service)) == NULL) {
        snprintf(msg, msglen, "too many services (limit %u)", r->cfg.max_services);
        return LOOKASIDE_ELIMIT;
    }
    reg_backend *b = backend_add(r, s, &addr);
    if (b == NULL) {
        snprintf(msg, msglen, "service %s has the maximum of %u backends", service,
                 r->cfg.max_backends);
        return LOOKASIDE_ELIMIT;
    }
    if (b->owner && b->owner != owner) {
        reg_owner *old = b->owner;
        b->owner = NULL;
        log_info("registry", "%s %s: a new stream replaces the old one", service, b->address);
        old->dropped(old, GRPC_STATUS_ABORTED, "replaced by a newer stream for the same address");
    }
    bool was_serving = b->reported || b->in_dns;
    b->owner = owner;
    b->reported = true;
    b->restored = false;
    if (b->draining || strcmp(b->zone, zone) != 0 || !was_serving)
        mark_dirty(r, s);
    b->draining = false;
    snprintf(b->zone, sizeof b->zone, "%s", zone);
    b->last_report_mono_ms = clock_mono_ms();
    b->last_report_wall_ms = clock_wall_ms();
    persist_backend(r, b);
    *out = b;
    return LOOKASIDE_OK;
}

void registry_detach(registry *r, reg_backend *b)
{
    if (b == NULL)
        return;
    b->owner = NULL;
    backend_drop(r, b, GRPC_STATUS_OK, NULL);
}

void registry_touch(registry *r, reg_backend *b)
{
    (void)r;
    b->last_report_mono_ms = clock_mono_ms();
    b->last_report_wall_ms = clock_wall_ms();
}

void registry_report(registry *r, reg_backend *b, const storage_load *load)
{
    registry_touch(r, b);
    b->load = *load;
    b->load.at_ms = b->last_report_wall_ms;
    b->has_load = true;
    lookaside_status st = storage_put_load(r->st, b->svc->name, b->address, &b->load);
    if (st != LOOKASIDE_OK)
        storage_warn(r, "put_load", st);
}

void registry_set_draining(registry *r, reg_backend *b, bool draining)
{
    if (b->draining == draining)
        return;
    b->draining = draining;
    log_info("registry", "%s %s: %s", b->svc->name, b->address, draining ? "draining" : "serving");
    persist_backend(r, b);
    mark_dirty(r, b->svc);
}

void registry_set_override(registry *r, reg_backend *b, uint32_t weight)
{
    b->weight_override = weight;
    persist_backend(r, b);
    mark_dirty(r, b->svc);
}

/* ----------------------------------------------------------------- DNS */

void registry_dns_update(registry *r, const char *service, const la_addr *addrs, size_t n)
{
    reg_service *s = registry_find(r, service);
    if (s == NULL && (s = svc_create(r, service)) == NULL) {
        log_warn("registry", "dns: too many services, ignoring %s", service);
        return;
    }
    s->known = true;
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
                log_warn("registry", "dns: %s is full, ignoring %s", service, text);
                continue;
            }
            log_info("registry", "dns: %s + %s", service, text);
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
        log_info("registry", "dns: %s - %s", service, b->address);
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
        in->override_weight = b->weight_override;
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

/* ------------------------------------------------------------- publishing */

static void publish(registry *r, reg_service *s)
{
    int64_t now = clock_mono_ms();
    compute(r, s, now);
    s->dirty = false;
    s->version++;
    bool any_restored = false;
    Lookaside__V1__ServerList sl = LOOKASIDE__V1__SERVER_LIST__INIT;
    Lookaside__V1__Backend *items = calloc(s->n + 1, sizeof *items);
    Lookaside__V1__Backend **ptrs = calloc(s->n + 1, sizeof *ptrs);
    if (items == NULL || ptrs == NULL) {
        free(items);
        free(ptrs);
        log_error("registry", "out of memory publishing %s", s->name);
        return;
    }
    for (size_t i = 0; i < s->n; i++) {
        reg_backend *b = s->b[i];
        Lookaside__V1__Backend *it = &items[i];
        lookaside__v1__backend__init(it);
        it->address = b->address;
        it->weight = b->w.weight;
        it->zone = b->zone;
        it->token = b->token;
        it->state = (Lookaside__V1__BackendState)registry_backend_state(b);
        it->source = (Lookaside__V1__BackendSource)registry_backend_source(b);
        if (it->state == LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_RESTORED)
            any_restored = true;
        if (it->state == LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_DRAINING)
            it->weight = 0;
        b->published_weight = it->weight;
        ptrs[i] = it;
    }
    if (!s->known && s->n == 0)
        s->list_state = LOOKASIDE__V1__LIST_STATE__LIST_STATE_UNKNOWN_SERVICE;
    else if (any_restored)
        s->list_state = LOOKASIDE__V1__LIST_STATE__LIST_STATE_RESTORED;
    else
        s->list_state = LOOKASIDE__V1__LIST_STATE__LIST_STATE_LIVE;
    sl.service = s->name;
    sl.version = s->version;
    sl.n_backends = s->n;
    sl.backends = ptrs;
    sl.generated_at_unix_ms = clock_wall_ms();
    sl.valid_for_ms = r->cfg.valid_for_ms;
    sl.state = (Lookaside__V1__ListState)s->list_state;
    grpc_byte_buffer *bb = pbio_pack(&sl.base);
    free(items);
    free(ptrs);
    if (bb == NULL) {
        log_error("registry", "out of memory packing %s", s->name);
        return;
    }
    if (s->published)
        grpc_byte_buffer_destroy(s->published);
    s->published = bb;
    s->published_mono_ms = now;
    if (s->known) {
        lookaside_status st = storage_put_service(r->st, s->name, s->version);
        if (st != LOOKASIDE_OK)
            storage_warn(r, "put_service", st);
        s->persisted = true;
    }
    log_debug("registry", "%s: published version %llu (%zu backends)", s->name,
              (unsigned long long)s->version, s->n);
    /* A subscriber may unsubscribe itself from its callback. */
    for (reg_sub *sub = s->subs, *next; sub; sub = next) {
        next = sub->next;
        sub->on_publish(sub, s);
    }
}

void registry_publish_dirty(registry *r)
{
    for (reg_service *s = r->head; s; s = s->lnext)
        if (s->dirty)
            publish(r, s);
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
            loop_timer_add(r->l, clock_mono_ms() + r->cfg.push_delay_ms, on_publish_timer, r);
}

size_t registry_serving(const reg_service *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++)
        if (s->b[i]->published_weight > 0)
            n++;
    return n;
}

/* ------------------------------------------------------------ subscriptions */

lookaside_status registry_subscribe(registry *r, const char *name, reg_sub *sub)
{
    reg_service *s = registry_find(r, name);
    if (s == NULL) {
        s = svc_create(r, name);
        if (s == NULL)
            return LOOKASIDE_ELIMIT;
    }
    if (s->published == NULL)
        publish(r, s);
    sub->svc = s;
    sub->prev = NULL;
    sub->next = s->subs;
    if (s->subs)
        s->subs->prev = sub;
    s->subs = sub;
    s->n_subs++;
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
    r->n_services--;
    if (s->published)
        grpc_byte_buffer_destroy(s->published);
    free(s->b);
    free(s);
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
    /* A service only ever watched (never had a backend) goes when its last
     * watcher does, so hostile Watch names cannot pile up. */
    if (s->n_subs == 0 && !s->known && s->n == 0 && !s->persisted)
        svc_free(r, s);
}

void registry_add_grpclb_stats(reg_service *s, const char *token, const grpclb_totals *d)
{
    s->lb.started += d->started;
    s->lb.finished += d->finished;
    s->lb.failed_to_send += d->failed_to_send;
    s->lb.known_received += d->known_received;
    s->lb.dropped += d->dropped;
    if (token == NULL)
        return;
    for (size_t i = 0; i < s->n; i++) {
        reg_backend *b = s->b[i];
        if (strcmp(b->token, token) == 0) {
            b->lb.started += d->started;
            b->lb.finished += d->finished;
            b->lb.failed_to_send += d->failed_to_send;
            b->lb.known_received += d->known_received;
            b->lb.dropped += d->dropped;
            return;
        }
    }
}

/* ------------------------------------------------------------------ timers */

static void on_sweep(loop *l, void *arg)
{
    registry *r = arg;
    int64_t now = clock_mono_ms();
    int64_t window = (int64_t)r->cfg.evict_intervals * r->cfg.report_interval_ms;
    for (reg_service *s = r->head; s; s = s->lnext) {
        for (size_t i = s->n; i-- > 0;) {
            if (i >= s->n)
                continue;
            reg_backend *b = s->b[i];
            if (b->reported && now - b->last_report_mono_ms > window) {
                char why[96];
                snprintf(why, sizeof why, "no report for %lld ms (limit %lld ms)",
                         (long long)(now - b->last_report_mono_ms), (long long)window);
                log_info("registry", "%s %s: evicted: %s", s->name, b->address, why);
                backend_drop(r, b, GRPC_STATUS_DEADLINE_EXCEEDED, why);
            } else if (b->restored && !b->reported && !b->in_dns &&
                       now - b->since_mono_ms > window) {
                log_info("registry", "%s %s: restored backend did not re-report; dropped",
                         s->name, b->address);
                backend_remove(r, b, true);
            }
        }
    }
    int64_t period = r->cfg.report_interval_ms / 4;
    if (period < 20)
        period = 20;
    r->sweep_timer = loop_timer_add(l, now + period, on_sweep, r);
}

static void on_weights(loop *l, void *arg)
{
    registry *r = arg;
    int64_t now = clock_mono_ms();
    for (reg_service *s = r->head; s; s = s->lnext) {
        if (s->n == 0 || s->dirty)
            continue;
        compute(r, s, now);
        if (weights_moved(r, s))
            mark_dirty(r, s);
    }
    r->weights_timer = loop_timer_add(l, now + r->cfg.weight_period_ms, on_weights, r);
}

static void on_flush(loop *l, void *arg)
{
    registry *r = arg;
    if (storage_pending(r->st) > 0) {
        lookaside_status st = storage_flush(r->st);
        if (st != LOOKASIDE_OK)
            storage_warn(r, "flush", st);
    }
    r->flush_timer = loop_timer_add(l, clock_mono_ms() + r->cfg.flush_ms, on_flush, r);
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
    for (size_t i = 0; i < ns; i++) {
        if (!name_valid(svcs[i].name))
            continue;
        reg_service *s = registry_find(r, svcs[i].name);
        if (s == NULL && (s = svc_create(r, svcs[i].name)) == NULL)
            break;
        s->version = svcs[i].version + VERSION_GAP;
        s->persisted = true;
    }
    size_t restored = 0;
    for (size_t i = 0; i < nb; i++) {
        storage_backend *sb = &bs[i];
        la_addr addr;
        if (!name_valid(sb->service) || addr_parse(sb->address, &addr) != LOOKASIDE_OK) {
            log_warn("registry", "restore: skipping invalid stored backend");
            continue;
        }
        reg_service *s = registry_find(r, sb->service);
        if (s == NULL) {
            if ((s = svc_create(r, sb->service)) == NULL)
                break;
            s->version = VERSION_GAP;
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
            b->w.st.last_ms = clock_mono_ms();
        }
        restored++;
    }
    free(svcs);
    free(bs);
    if (restored > 0)
        log_info("registry", "restored %zu backends in %zu services", restored, r->n_services);
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
    lookaside_status s = restore(r);
    if (s != LOOKASIDE_OK) {
        log_error("registry", "restore failed: %s (%s)", lookaside_status_str(s),
                  storage_errmsg(st));
        registry_destroy(r);
        return s;
    }
    int64_t now = clock_mono_ms();
    r->sweep_timer = loop_timer_add(l, now + 50, on_sweep, r);
    r->weights_timer = loop_timer_add(l, now + r->cfg.weight_period_ms, on_weights, r);
    r->flush_timer = loop_timer_add(l, now + r->cfg.flush_ms, on_flush, r);
    *out = r;
    return LOOKASIDE_OK;
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
    for (reg_service *s = r->head, *next; s; s = next) {
        next = s->lnext;
        /* Live backends keep their rows: a restart restores them. */
        while (s->n > 0) {
            reg_backend *b = s->b[s->n - 1];
            if (b->owner) {
                reg_owner *o = b->owner;
                b->owner = NULL;
                o->dropped(o, GRPC_STATUS_UNAVAILABLE, "server shutting down");
            }
            s->n--;
            free(b);
        }
        for (reg_sub *sub = s->subs; sub; sub = sub->next)
            sub->svc = NULL;
        if (s->published)
            grpc_byte_buffer_destroy(s->published);
        free(s->b);
        free(s);
    }
    if (r->st) {
        lookaside_status st = storage_flush(r->st);
        if (st != LOOKASIDE_OK)
            storage_warn(r, "final flush", st);
    }
    free(r->scratch);
    free(r);
}
