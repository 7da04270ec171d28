#include "snapshot.h"

#include <stdlib.h>
#include <string.h>

snap_service *snap_service_ref(snap_service *s)
{
    if (s)
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void snap_service_unref(snap_service *s)
{
    if (s == NULL || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < s->n; i++) {
        for (size_t k = 0; k < s->b[i].n_util; k++)
            free(s->b[i].util[k].key);
        free(s->b[i].util);
    }
    free(s->b);
    if (s->packed)
        grpc_byte_buffer_destroy(s->packed);
    free(s);
}

const snap_backend *snap_find_backend(const snap_service *s, const char *address)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(s->b[mid].address, address);
        if (c == 0)
            return &s->b[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

snap_catalog *snap_catalog_build(snap_service *const *s, size_t n, uint64_t seq)
{
    snap_catalog *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->s = calloc(n ? n : 1, sizeof *c->s);
    if (c->s == NULL) {
        free(c);
        return NULL;
    }
    atomic_init(&c->refs, 1);
    c->seq = seq;
    c->built_mono_ms = clock_mono_ms();
    for (size_t i = 0; i < n; i++)
        c->s[i] = snap_service_ref(s[i]);
    c->n = n;
    return c;
}

snap_catalog *snap_catalog_ref(snap_catalog *c)
{
    if (c)
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void snap_catalog_release(snap_catalog *c)
{
    if (c == NULL || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < c->n; i++)
        snap_service_unref(c->s[i]);
    free(c->s);
    free(c);
}

const snap_service *snap_catalog_find(const snap_catalog *c, const char *name)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->s[i]->name, name) == 0)
            return c->s[i];
    return NULL;
}
