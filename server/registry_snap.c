/* registry_snap.c - the registry's publishing job: packing a service's
 * ServerList (and heartbeats) and building its immutable snapshot. Pure
 * functions of a reg_service; the registry decides when to call them. */
#include "registry_snap.h"

#include <stdlib.h>
#include <string.h>

#include "pbio.h"

static void fill_list_header(Lookaside__V1__ServerList *sl, const reg_service *s,
                             const registry_config *cfg, int64_t wall_ms)
{
    sl->service = (char *)s->name;
    sl->version = s->version;
    sl->generated_at_unix_ms = wall_ms;
    sl->valid_for_ms = cfg->valid_for_ms;
    sl->state = (Lookaside__V1__ListState)s->list_state;
    sl->unconfirmed = s->unconfirmed;
}

/* A backend as lists show it; false when it is not listed. In store mode,
 * while following the store, a backend reporting here is shown as the store
 * has it (absent until its key comes back), so every replica lists the same
 * thing at the same revision (registry_set_store). */
static bool list_view(const reg_service *s, const reg_backend *b, uint32_t *weight,
                      const char **zone, int *state)
{
    if (s->store_view && b->local && b->reported) {
        if (!b->store_present)
            return false;
        /* As every other replica lists it (registry.c compute() for a
         * remote backend): draining 0, else the override, else the weight
         * its owner published (1 before it published one). */
        *weight = b->store_draining   ? 0
                  : b->store_override ? b->store_override
                  : b->store_weight   ? b->store_weight
                                      : 1;
        *zone = b->store_zone;
        *state = b->store_draining ? LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_DRAINING
                                   : LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_SERVING;
        return true;
    }
    *weight = b->published_weight;
    *zone = b->zone;
    *state = registry_backend_state(b);
    return true;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *c = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ c[i]) * 1099511628211ull;
    return h;
}

uint64_t regsnap_content_hash(const reg_service *s)
{
    uint64_t h = 14695981039346656037ull;
    int32_t ls = s->list_state;
    h = fnv(h, &ls, sizeof ls);
    for (size_t i = 0; i < s->n; i++) {
        const reg_backend *b = s->b[i];
        uint32_t w;
        const char *zone;
        int state;
        if (!list_view(s, b, &w, &zone, &state))
            continue;
        int32_t f[3] = {state, registry_backend_source(b), (int32_t)w};
        h = fnv(h, b->address, strlen(b->address) + 1);
        h = fnv(h, zone, strlen(zone) + 1);
        h = fnv(h, f, sizeof f);
    }
    return h;
}

grpc_byte_buffer *regsnap_pack_list(const reg_service *s, const registry_config *cfg,
                                    int64_t wall_ms)
{
    Lookaside__V1__ServerList sl = LOOKASIDE__V1__SERVER_LIST__INIT;
    Lookaside__V1__Backend *items = calloc(s->n + 1, sizeof *items);
    Lookaside__V1__Backend **ptrs = calloc(s->n + 1, sizeof *ptrs);
    if (items == NULL || ptrs == NULL) {
        free(items);
        free(ptrs);
        return NULL;
    }
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++) {
        const reg_backend *b = s->b[i];
        Lookaside__V1__Backend *it = &items[n];
        uint32_t w;
        const char *zone;
        int state;
        if (!list_view(s, b, &w, &zone, &state))
            continue;
        lookaside__v1__backend__init(it);
        it->address = (char *)b->address;
        it->weight = w;
        it->zone = (char *)zone;
        it->token = (char *)b->token;
        it->state = (Lookaside__V1__BackendState)state;
        it->source = (Lookaside__V1__BackendSource)registry_backend_source(b);
        ptrs[n++] = it;
    }
    fill_list_header(&sl, s, cfg, wall_ms);
    sl.n_backends = n;
    sl.backends = ptrs;
    grpc_byte_buffer *bb = pbio_pack(&sl.base);
    free(items);
    free(ptrs);
    return bb;
}

grpc_byte_buffer *regsnap_pack_heartbeat(const reg_service *s, const registry_config *cfg,
                                         int64_t wall_ms)
{
    Lookaside__V1__ServerList sl = LOOKASIDE__V1__SERVER_LIST__INIT;
    fill_list_header(&sl, s, cfg, wall_ms);
    sl.heartbeat = true;
    return pbio_pack(&sl.base);
}

static bool copy_util(snap_backend *d, const reg_backend *b)
{
    if (b->n_util == 0)
        return true;
    d->util = calloc(b->n_util, sizeof *d->util);
    if (d->util == NULL)
        return false;
    for (size_t k = 0; k < b->n_util; k++) {
        d->util[k].key = strdup(b->util[k].key);
        if (d->util[k].key == NULL)
            return false;
        d->util[k].value = b->util[k].value;
        d->n_util = k + 1;
    }
    return true;
}

snap_service *regsnap_build(const reg_service *s, const registry_config *cfg,
                            grpc_byte_buffer *packed, uint64_t seq, int64_t mono_ms)
{
    snap_service *o = calloc(1, sizeof *o);
    if (o == NULL) {
        if (packed)
            grpc_byte_buffer_destroy(packed);
        return NULL;
    }
    atomic_init(&o->refs, 1);
    o->packed = packed;   /* taken: freed with the snapshot from here on */
    o->b = calloc(s->n + 1, sizeof *o->b);
    if (o->b == NULL) {
        snap_service_unref(o);
        return NULL;
    }
    memcpy(o->name, s->name, sizeof o->name);
    o->version = s->version;
    o->seq = seq;
    o->list_state = s->list_state;
    o->known = s->known;
    o->watchers = (uint32_t)s->n_watchers;
    o->subscribers = (uint32_t)s->n_subs;
    o->lb = s->lb;
    o->built_mono_ms = mono_ms;
    o->published_unix_ms = s->snap ? s->snap->published_unix_ms : 0;
    o->policy = cfg->policy ? cfg->policy->name : "";
    for (size_t i = 0; i < s->n; i++) {
        const reg_backend *b = s->b[i];
        snap_backend *d = &o->b[i];
        o->n = i + 1;
        memcpy(d->address, b->address, sizeof d->address);
        d->addr = b->addr;
        memcpy(d->zone, b->zone, sizeof d->zone);
        memcpy(d->token, b->token, sizeof d->token);
        d->state = registry_backend_state(b);
        d->source = registry_backend_source(b);
        d->weight = b->published_weight;
        d->computed_weight = b->w.weight;
        d->weight_override = b->weight_override;
        d->reported = b->reported;
        d->in_dns = b->in_dns;
        d->draining = b->draining;
        d->has_load = b->has_load;
        d->load = b->load;
        d->last_load_mono_ms = b->last_load_mono_ms;
        d->first_seen_unix_ms = b->first_seen_wall_ms;
        d->since_mono_ms = b->since_mono_ms;
        d->why = b->w.why;
        d->lb = b->lb;
        if (d->weight > 0)
            o->serving++;
        if (!copy_util(d, b)) {
            snap_service_unref(o);
            return NULL;
        }
    }
    return o;
}
