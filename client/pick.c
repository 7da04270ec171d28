#include "pick.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "wrr.h"

la_backend *backend_new(const char *addr)
{
    size_t sz = (sizeof(la_backend) + LA_HOT_ALIGN - 1) & ~(size_t)(LA_HOT_ALIGN - 1);
    la_backend *b = aligned_alloc(LA_HOT_ALIGN, sz);
    if (b == NULL)
        return NULL;
    memset(b, 0, sz);
    snprintf(b->addr, sizeof b->addr, "%s", addr);
    b->conn = GRPC_CHANNEL_IDLE;
    return b;
}

void backend_free(la_backend *b)
{
    free(b);
}

int64_t backend_in_flight(la_backend *b)
{
    int64_t sum = 0;
    for (int i = 0; i < LA_STRIPES; i++)
        sum += atomic_load_explicit(&b->stripes[i].in_flight, memory_order_acquire);
    return sum;
}

void backend_totals(la_backend *b, uint64_t *calls, uint64_t *failures, uint64_t *latency_us)
{
    uint64_t c = 0, f = 0, l = 0;
    for (int i = 0; i < LA_STRIPES; i++) {
        c += atomic_load_explicit(&b->stripes[i].calls, memory_order_relaxed);
        f += atomic_load_explicit(&b->stripes[i].failures, memory_order_relaxed);
        l += atomic_load_explicit(&b->stripes[i].latency_us, memory_order_relaxed);
    }
    *calls = c;
    *failures = f;
    *latency_us = l;
}

size_t pick_table_len(size_t n)
{
    size_t len = 16 * n;
    if (len < 64)
        len = 64;
    if (len > 4096)
        len = 4096;
    return len < n ? n : len;
}

static pick_snap *snap_alloc(uint32_t n, uint32_t len)
{
    size_t sz = sizeof(pick_snap) + len * sizeof(pick_slot) + n * sizeof(la_backend *);
    pick_snap *s = calloc(1, sz);
    if (s == NULL)
        return NULL;
    s->n = n;
    s->len = len;
    s->table = (pick_slot *)(s + 1);
    s->backends = (la_backend **)(s->table + len);
    return s;
}

void pick_snap_free(pick_snap *s)
{
    free(s);
}

lookaside_status pick_snap_single(la_backend *b, pick_snap **out)
{
    pick_snap *s = snap_alloc(1, 1);
    if (s == NULL)
        return LOOKASIDE_ENOMEM;
    s->backends[0] = b;
    s->table[0].b = b;
    s->table[0].w = 1;
    *out = s;
    return LOOKASIDE_OK;
}

#define SKIP_MAX 64

la_backend *pick_skip_down(const pick_snap *s, uint32_t *pos, la_backend *b)
{
    uint32_t tries = s->len < SKIP_MAX ? s->len : SKIP_MAX;
    for (uint32_t i = 0; i < tries; i++) {
        uint32_t p = *pos;
        if (p >= s->len)
            p %= s->len;
        *pos = p + 1;
        la_backend *c = s->table[p].b;
        if (!atomic_load_explicit(&c->down, memory_order_relaxed))
            return c;
    }
    return b;
}

static bool candidate(const la_backend *b)
{
    return !b->retired && !b->is_fallback && b->state != LA_DRAINING && b->weight > 0;
}

static bool healthy(const la_backend *b)
{
    return candidate(b) && !b->ejected && !conn_failed(b->conn) &&
           !atomic_load_explicit(&b->down, memory_order_relaxed);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Zones with at least one healthy backend ("" counts as a zone). */
static size_t healthy_zones(la_backend *const *list, size_t n)
{
    const char **z = malloc((n ? n : 1) * sizeof *z);
    if (z == NULL)
        return 1;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (healthy(list[i]))
            z[m++] = list[i]->zone;
    qsort(z, m, sizeof *z, cmp_str);
    size_t distinct = 0;
    for (size_t i = 0; i < m; i++)
        if (i == 0 || strcmp(z[i], z[i - 1]) != 0)
            distinct++;
    free(z);
    return distinct ? distinct : 1;
}

/* Whether picks should stay in the client's zone (rule in lookaside.h). */
static bool zone_preferred(la_backend *const *list, size_t n, const pick_params *p)
{
    if (!p->zone_affinity || p->zone == NULL || p->zone[0] == '\0')
        return false;
    uint64_t local_healthy = 0, local_listed = 0, all_healthy = 0;
    for (size_t i = 0; i < n; i++) {
        const la_backend *b = list[i];
        if (!candidate(b))
            continue;
        bool local = strcmp(b->zone, p->zone) == 0;
        if (local)
            local_listed += b->weight;
        if (healthy(b)) {
            all_healthy += b->weight;
            if (local)
                local_healthy += b->weight;
        }
    }
    if (local_healthy == 0)
        return false;
    uint64_t pct = p->zone_min_healthy_percent;
    if (local_healthy * 100 < pct * local_listed)
        return false;
    return local_healthy * 100 * healthy_zones(list, n) >= pct * all_healthy;
}

lookaside_status pick_snap_build(la_backend *const *list, size_t n, const pick_params *p,
                                 pick_snap **out)
{
    *out = NULL;
    la_backend **set = malloc((n ? n : 1) * sizeof *set);
    uint32_t *w = malloc((n ? n : 1) * sizeof *w);
    if (set == NULL || w == NULL) {
        free(set);
        free(w);
        return LOOKASIDE_ENOMEM;
    }
    bool local = zone_preferred(list, n, p);
    bool degraded = false;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (healthy(list[i]) && (!local || strcmp(list[i]->zone, p->zone) == 0))
            set[m++] = list[i];
    if (m == 0) {
        degraded = true;
        for (size_t i = 0; i < n; i++)
            if (candidate(list[i]) && !list[i]->ejected)
                set[m++] = list[i];
    }
    if (m == 0)
        for (size_t i = 0; i < n; i++)
            if (candidate(list[i]))
                set[m++] = list[i];
    if (m > UINT16_MAX)
        m = UINT16_MAX;
    for (size_t i = 0; i < n; i++)
        list[i]->pickable = false;
    lookaside_status st = LOOKASIDE_OK;
    if (m > 0) {
        for (size_t i = 0; i < m; i++)
            w[i] = set[i]->weight;
        uint32_t *seq = NULL;
        size_t len = 0;
        st = wrr_sequence(w, m, pick_table_len(m), &seq, &len);
        if (st == LOOKASIDE_OK && len > 0) {
            pick_snap *s = snap_alloc((uint32_t)m, (uint32_t)len);
            if (s == NULL) {
                st = LOOKASIDE_ENOMEM;
            } else {
                for (size_t i = 0; i < m; i++) {
                    s->backends[i] = set[i];
                    set[i]->pickable = true;
                }
                for (size_t i = 0; i < len; i++)
                    s->table[i] = (pick_slot){set[seq[i]], w[seq[i]]};
                s->zone_local = local;
                s->degraded = degraded;
                *out = s;
            }
        }
        free(seq);
    }
    free(set);
    free(w);
    return st;
}

void retired_add(pick_retired *r, pick_snap *old, la_backend *unlinked, uint64_t tag)
{
    if (old != NULL) {
        old->retire_tag = tag;
        old->next_retired = r->snaps;
        r->snaps = old;
    }
    while (unlinked != NULL) {
        la_backend *b = unlinked;
        unlinked = b->next_retired;
        b->retire_tag = tag;
        b->next_retired = r->backends;
        r->backends = b;
    }
}

bool retired_reclaim(pick_retired *r, bool force, void (*close)(la_backend *b))
{
    if (r->snaps == NULL && r->backends == NULL)
        return false;
    uint64_t min = ebr_min_active();
    for (pick_snap **pp = &r->snaps; *pp != NULL;) {
        pick_snap *s = *pp;
        if (s->retire_tag < min) {
            *pp = s->next_retired;
            pick_snap_free(s);
        } else {
            pp = &s->next_retired;
        }
    }
    for (la_backend **pp = &r->backends; *pp != NULL;) {
        la_backend *b = *pp;
        if (b->retire_tag < min && b->channel != NULL) {
            int64_t inflight = backend_in_flight(b);
            if (inflight == 0 || force) {
                if (inflight != 0)
                    log_warn("client", "%s: closing with %lld calls still picked", b->addr,
                             (long long)inflight);
                close(b);
            }
        }
        if (b->channel == NULL && !b->watch_pending) {
            *pp = b->next_retired;
            backend_free(b);
        } else {
            pp = &b->next_retired;
        }
    }
    return r->snaps != NULL || r->backends != NULL;
}

void eject_window(la_backend *const *list, size_t n, const eject_params *p)
{
    for (size_t i = 0; i < n; i++) {
        la_backend *b = list[i];
        uint64_t calls, fails, lat;
        backend_totals(b, &calls, &fails, &lat);
        uint64_t dc = calls - b->win_calls, df = fails - b->win_fails;
        b->win_calls = calls;
        b->win_fails = fails;
        b->fp_fail = false;
        if (p->fp_threshold == 0 || dc < p->fp_min_volume || dc == 0)
            continue;
        b->win_pct = (uint32_t)(df * 100 / dc);
        b->fp_fail = df * 100 >= (uint64_t)p->fp_threshold * dc;
    }
}

size_t eject_cap(size_t n, uint32_t max_percent)
{
    size_t cap = n * max_percent / 100;
    return cap < 1 ? 1 : cap;
}

bool eject_update(la_backend *const *list, size_t n, const eject_params *p, int64_t now_ms,
                  int64_t *next_ms)
{
    bool changed = false;
    size_t ejected = 0;
    for (size_t i = 0; i < n; i++) {
        la_backend *b = list[i];
        if (b->ejected && now_ms >= b->eject_until_ms) {
            b->ejected = false;
            b->eject_end_ms = now_ms;
            atomic_store_explicit(&b->consec_fail, 0, memory_order_relaxed);
            changed = true;
            log_info("client", "%s: ejection ended", b->addr);
        }
        if (b->ejected)
            ejected++;
    }
    size_t cap = eject_cap(n, p->max_percent);
    for (size_t i = 0; i < n && ejected < cap; i++) {
        la_backend *b = list[i];
        uint32_t consec = atomic_load_explicit(&b->consec_fail, memory_order_relaxed);
        if (b->ejected || b->retired || b->is_fallback ||
            (consec < p->consecutive && !b->fp_fail))
            continue;
        /* Forgive earlier ejections after a long healthy stretch. */
        if (b->eject_end_ms != 0 && now_ms - b->eject_end_ms > p->max_ms)
            b->times_ejected = 0;
        b->times_ejected++;
        int64_t dur = p->base_ms * (int64_t)b->times_ejected;
        if (dur > p->max_ms)
            dur = p->max_ms;
        b->ejected = true;
        b->eject_until_ms = now_ms + dur;
        ejected++;
        changed = true;
        if (consec >= p->consecutive)
            log_warn("client", "%s: ejected for %lld ms after %u consecutive failures", b->addr,
                     (long long)dur, (unsigned)consec);
        else
            log_warn("client", "%s: ejected for %lld ms: %u %% of its calls failed", b->addr,
                     (long long)dur, (unsigned)b->win_pct);
    }
    for (size_t i = 0; i < n; i++)
        list[i]->fp_fail = false;
    for (size_t i = 0; i < n; i++)
        if (list[i]->ejected && list[i]->eject_until_ms < *next_ms)
            *next_ms = list[i]->eject_until_ms;
    return changed;
}
