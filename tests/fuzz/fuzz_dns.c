/* fuzz_dns.c - the DNS answer merge: discovery_parse_answer on raw A and
 * AAAA answers (the bytes a DNS server sends), then registry_dns_update on a
 * real registry that also has reported backends, as lookaside-server does
 * for --discover.
 *
 * Script steps (first byte modulo 5):
 *   0 DNS round: u8 service, u16 port, blob A answer, blob AAAA answer
 *   1 attach:    u8 service, blob address text (a backend's Report stream)
 *   2 detach:    u8 reporter, u8 clean (its stream ends or is lost)
 *   3 tick:      u16 ms: advance the fake clock, registry_tick
 *   4 admin:     u8 reporter, u8 drain, u16 weight override
 *
 * Oracles: a successful parse yields addresses with the target's port and
 * the right family, never 0.0.0.0 or ::, and a TTL when it yields any; after
 * each DNS update the service lists exactly the DNS set plus its live
 * reported backends (unless the service is at its backend cap); published
 * lists decode and list no address twice. */
#include <ares.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "discovery.h"
#include "fuzz_util.h"
#include "registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NREP 8
#define MAX_BACKENDS 32
static const char *const SERVICES[] = {"web", "api.internal"};

typedef struct rep {
    reg_owner owner;   /* first: the registry hands this pointer back */
    reg_backend *b;
} rep;

static void on_dropped(reg_owner *o, lookaside_status code, const char *why)
{
    (void)code;
    (void)why;
    ((rep *)o)->b = NULL;
}

static const uint8_t zero16[16];

static int parse(int family, const uint8_t *p, size_t n, uint16_t port, la_addr **addrs,
                 size_t *na, size_t *cap)
{
    int64_t ttl = -1;
    size_t before = *na;
    int rc = discovery_parse_answer(family, p, (int)n, port, addrs, na, cap, &ttl);
    if (rc != ARES_SUCCESS)
        return rc;
    for (size_t i = before; i < *na; i++) {
        const la_addr *a = &(*addrs)[i];
        if (a->family != family || a->port != port ||
            memcmp(a->ip, zero16, family == AF_INET ? 4 : 16) == 0)
            fz_fail("parse: bad address (family %d, port %u)", a->family, a->port);
    }
    if (*na > before && ttl < 0)
        fz_fail("parse: %zu addresses without a TTL", *na - before);
    return rc;
}

static bool in_set(const la_addr *set, size_t n, const char *address)
{
    char buf[LA_ADDR_STRLEN];
    for (size_t i = 0; i < n; i++) {
        addr_format(&set[i], buf, sizeof buf);
        if (strcmp(buf, address) == 0)
            return true;
    }
    return false;
}

static bool reported_live(const rep *reps, const reg_backend *b)
{
    for (int i = 0; i < NREP; i++)
        if (reps[i].b == b)
            return true;
    return false;
}

static void check_merge(registry *r, const char *svc, const la_addr *set, size_t n,
                        const rep *reps)
{
    reg_service *s = registry_find(r, svc);
    if (s == NULL) {
        if (n > 0)
            fz_fail("dns: %zu addresses for %s but no service", n, svc);
        return;
    }
    /* A backend whose stream was lost may be held as RESTORED
     * (self-preservation); anything else must be in DNS or reported. */
    for (size_t i = 0; i < s->n; i++)
        if (!in_set(set, n, s->b[i]->address) && !reported_live(reps, s->b[i]) &&
            registry_backend_state(s->b[i]) != LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_RESTORED)
            fz_fail("dns: %s %s listed though neither in DNS nor reported", svc,
                    s->b[i]->address);
    if (s->n >= MAX_BACKENDS)
        return;
    char buf[LA_ADDR_STRLEN];
    for (size_t i = 0; i < n; i++) {
        addr_format(&set[i], buf, sizeof buf);
        if (registry_find_backend(s, buf) == NULL)
            fz_fail("dns: %s %s in DNS but not listed", svc, buf);
    }
}

static void dns_round(registry *r, fz_in *in, const rep *reps)
{
    const char *svc = SERVICES[fz_u8(in) % 2];
    uint16_t port = fz_u16(in);
    if (port == 0)
        port = 1;
    const uint8_t *pa, *p6;
    size_t na = fz_blob(in, &pa), n6 = fz_blob(in, &p6);
    la_addr *addrs = NULL;
    size_t n = 0, cap = 0;
    int rc4 = parse(AF_INET, pa, na, port, &addrs, &n, &cap);
    int rc6 = parse(AF_INET6, p6, n6, port, &addrs, &n, &cap);
    /* discovery.c: a round fails as a whole unless both answers are usable
     * (NODATA and NXDOMAIN mean "no addresses of this type"). */
    bool ok4 = rc4 == ARES_SUCCESS || rc4 == ARES_ENODATA || rc4 == ARES_ENOTFOUND;
    bool ok6 = rc6 == ARES_SUCCESS || rc6 == ARES_ENODATA || rc6 == ARES_ENOTFOUND;
    if (ok4 && ok6) {
        n = discovery_addrs_normalize(addrs, n);
        registry_dns_update(r, svc, addrs, n);
        check_merge(r, svc, addrs, n, reps);
    }
    free(addrs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_setup();
    char path[200];
    fz_db_path(path, sizeof path);
    storage *st = NULL;
    loop *l = NULL;
    registry *r = NULL;
    if (storage_open(path, &st) != LOOKASIDE_OK || loop_create(&l) != LOOKASIDE_OK)
        fz_fail("cannot set up: %s", storage_open_error());
    registry_config rc;
    registry_config_default(&rc);
    rc.max_backends = MAX_BACKENDS;
    rc.max_services = 4;
    rc.mono_ms = fz_clock_mono;
    rc.wall_ms = fz_clock_wall;
    fz_clock_reset();
    if (registry_create(l, st, &rc, &r) != LOOKASIDE_OK)
        fz_fail("registry_create on an empty database failed");

    rep reps[NREP];
    memset(reps, 0, sizeof reps);
    for (int i = 0; i < NREP; i++)
        reps[i].owner.dropped = on_dropped;
    fz_in in = {data, size};
    for (int step = 0; step < 200 && !fz_done(&in); step++) {
        switch (fz_u8(&in) % 5) {
        case 0:
            dns_round(r, &in, reps);
            break;
        case 1: {
            const char *svc = SERVICES[fz_u8(&in) % 2];
            char addr[80], msg[200];
            fz_blob_str(&in, addr, sizeof addr);
            int k;
            for (k = 0; k < NREP && reps[k].b; k++)
                ;
            if (k < NREP)
                (void)registry_attach(r, svc, addr, "", &reps[k].owner, &reps[k].b, msg,
                                      sizeof msg);
            break;
        }
        case 2: {
            rep *p = &reps[fz_u8(&in) % NREP];
            bool clean = fz_u8(&in) & 1;
            if (p->b) {
                reg_backend *b = p->b;
                p->b = NULL;
                registry_detach(r, b, clean);
            }
            break;
        }
        case 3:
            fz_clock_advance(fz_u16(&in));
            registry_tick(r);
            fz_check_published(r);
            break;
        case 4: {
            rep *p = &reps[fz_u8(&in) % NREP];
            bool drain = fz_u8(&in) & 1;
            uint16_t w = fz_u16(&in);
            if (p->b) {
                registry_set_draining(r, p->b, drain);
                registry_set_override(r, p->b, w % (WEIGHTS_MAX + 1));
            }
            break;
        }
        }
    }
    registry_publish_dirty(r);
    fz_check_published(r);
    registry_begin_shutdown(r);
    registry_destroy(r);
    loop_destroy(l);
    storage_close(st);
    fz_unlink_db(path);
    return 0;
}
