/* client_watch.c - one Watch stream per service, merging each ServerList
 * into the service's backends, the DNS fallback, and the test hooks of
 * client_internal.h. Loop thread only, except the hooks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/support/time.h>

#include "client_internal.h"
#include "client_priv.h"
#include "log.h"
#include "lookaside/v1/lookaside.pb-c.h"
#include "pbio.h"
#include "util.h"

#define WATCH_METHOD "/lookaside.v1.Balancer/Watch"
#define MAX_LIST_BYTES (16u << 20)
#define MAX_WEIGHT 1000000u

/* ------------------------------------------------------------ lists */

struct entry {
    char addr[LA_ADDR_STRLEN];
    const Lookaside__V1__Backend *m;
};

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const struct entry *)a)->addr, ((const struct entry *)b)->addr);
}

static enum la_bstate map_state(Lookaside__V1__BackendState s)
{
    switch (s) {
    case LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_DRAINING: return LA_DRAINING;
    case LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_RESTORED: return LA_RESTORED;
    default: return LA_SERVING;
    }
}

static void set_fields(la_backend *b, const Lookaside__V1__Backend *m)
{
    b->weight = m->weight > MAX_WEIGHT ? MAX_WEIGHT : m->weight;
    b->state = map_state(m->state);
    snprintf(b->zone, sizeof b->zone, "%s", m->zone ? m->zone : "");
    snprintf(b->token, sizeof b->token, "%s", m->token ? m->token : "");
}

static void fallback_leave(la_service *svc)
{
    if (svc->fallback) {
        log_info("client", "%s: the balancer answered; leaving fallback", svc->name);
        client_backend_unlink(svc, svc->fallback);
        svc->fallback = NULL;
    }
    if (svc->fallback_next) {
        client_backend_unlink(svc, svc->fallback_next);
        svc->fallback_next = NULL;
    }
}

/* Whether b counts for self-preservation: listed as serving and with a
 * connection that is not failing or broken (such a backend may leave at
 * once). */
static bool preservable(const la_backend *b)
{
    return b->state != LA_DRAINING && !conn_failed(b->conn) &&
           !atomic_load_explicit(&b->down, memory_order_relaxed);
}

/* Self-preservation (rule in lookaside.h): marks (b->preserve) which of the
 * current backends that the sorted entries e[0..ne) drop are kept anyway,
 * connected ones first. Returns how many. */
static size_t preserve_plan(la_service *svc, const struct entry *e, size_t ne)
{
    size_t base = 0, gone = 0, i = 0;
    for (size_t j = 0; j < svc->n; j++) {
        la_backend *b = svc->list[j];
        b->preserve = false;
        while (i < ne && strcmp(e[i].addr, b->addr) < 0)
            i++;
        b->dropped = !(i < ne && strcmp(e[i].addr, b->addr) == 0);
        if (!preservable(b))
            continue;
        base++;
        gone += b->dropped;
    }
    size_t allowed = (base + 1) / 2; /* half, rounded up: one of one may go */
    size_t keep = gone > allowed ? gone - allowed : 0, kept = 0;
    for (int pass = 0; pass < 2 && kept < keep; pass++)
        for (size_t j = 0; j < svc->n && kept < keep; j++) {
            la_backend *b = svc->list[j];
            if (b->dropped && !b->preserve && preservable(b) &&
                (pass == 1 || b->conn == GRPC_CHANNEL_READY)) {
                b->preserve = true;
                kept++;
            }
        }
    if (kept > 0)
        log_warn("client",
                 "%s: the list drops %zu of %zu serving backends without a drain; keeping %zu "
                 "(self-preservation: at most half leave per list)",
                 svc->name, gone, base, kept);
    return kept;
}

/* An old backend the new list does not have: kept (self-preservation) into
 * list[*nl], or unlinked. Under c->mu. */
static void drop_or_hold(la_service *svc, la_backend *b, la_backend **list, size_t *nl)
{
    if (b->preserve) {
        b->held = true;
        list[(*nl)++] = b;
        return;
    }
    log_info("client", "%s: backend %s removed", svc->name, b->addr);
    client_backend_unlink(svc, b);
}

/* A heartbeat: the list at m->version is still current. */
static void on_heartbeat(la_service *svc, const Lookaside__V1__ServerList *m, int64_t now)
{
    lookaside_client *c = svc->c;
    pthread_mutex_lock(&c->mu);
    bool match = m->version == svc->version && (svc->source == LOOKASIDE_SOURCE_LB ||
                                                svc->source == LOOKASIDE_SOURCE_RESTORED);
    if (match) {
        svc->list_ms = now;
        svc->valid_for_ms = m->valid_for_ms;
        svc->heartbeats++;
    }
    pthread_mutex_unlock(&c->mu);
    if (!match)
        log_debug("client", "%s: heartbeat for version %llu ignored (have %llu)", svc->name,
                  (unsigned long long)m->version, (unsigned long long)svc->version);
}

static void on_list(la_service *svc, const Lookaside__V1__ServerList *m, int64_t now)
{
    lookaside_client *c = svc->c;
    if (m->heartbeat) {
        on_heartbeat(svc, m, now);
        return;
    }
    if (m->state == LOOKASIDE__V1__LIST_STATE__LIST_STATE_UNKNOWN_SERVICE && m->n_backends == 0 &&
        svc->n > 0) {
        if (!svc->unknown_logged)
            log_warn("client", "%s: balancer does not know the service; keeping the last list",
                     svc->name);
        svc->unknown_logged = true;
        return;
    }
    svc->unknown_logged = false;
    struct entry *e = calloc(m->n_backends ? m->n_backends : 1, sizeof *e);
    la_backend **list = calloc(m->n_backends + svc->n + 1, sizeof *list);
    if (e == NULL || list == NULL) {
        free(e);
        free(list);
        log_error("client", "%s: out of memory for a list of %zu", svc->name, m->n_backends);
        return;
    }
    size_t ne = 0;
    for (size_t i = 0; i < m->n_backends; i++) {
        la_addr a;
        if (m->backends[i] == NULL || addr_parse(m->backends[i]->address, &a) != LOOKASIDE_OK) {
            log_warn("client", "%s: skipping backend with bad address", svc->name);
            continue;
        }
        addr_format(&a, e[ne].addr, sizeof e[ne].addr);
        e[ne++].m = m->backends[i];
    }
    qsort(e, ne, sizeof *e, cmp_entry);
    /* Merge the sorted entries with the sorted current list. */
    size_t nl = 0, j = 0;
    pthread_mutex_lock(&c->mu);
    preserve_plan(svc, e, ne);
    for (size_t i = 0; i < ne; i++) {
        if (nl > 0 && strcmp(list[nl - 1]->addr, e[i].addr) == 0)
            continue; /* duplicate address: first wins */
        while (j < svc->n && strcmp(svc->list[j]->addr, e[i].addr) < 0)
            drop_or_hold(svc, svc->list[j++], list, &nl);
        la_backend *b = NULL;
        if (j < svc->n && strcmp(svc->list[j]->addr, e[i].addr) == 0) {
            b = svc->list[j++];
            b->held = false;
        } else {
            b = client_backend_open(c, svc, e[i].addr, false);
            if (b == NULL) {
                log_error("client", "%s: cannot open a channel to %s", svc->name, e[i].addr);
                continue;
            }
            log_info("client", "%s: backend %s added", svc->name, e[i].addr);
        }
        set_fields(b, e[i].m);
        list[nl++] = b;
    }
    while (j < svc->n)
        drop_or_hold(svc, svc->list[j++], list, &nl);
    free(svc->list);
    svc->list = list;
    svc->n = nl;
    svc->source = m->state == LOOKASIDE__V1__LIST_STATE__LIST_STATE_RESTORED
                      ? LOOKASIDE_SOURCE_RESTORED
                      : LOOKASIDE_SOURCE_LB;
    svc->version = m->version;
    svc->list_ms = now;
    svc->valid_for_ms = m->valid_for_ms;
    svc->lists++;
    pthread_mutex_unlock(&c->mu);
    free(e);
    if (nl > 0) {
        svc->have_lb_list = true;
        fallback_leave(svc);
    }
    svc->dirty = true;
}

void client_drop_held(la_service *svc, la_backend *b)
{
    lookaside_client *c = svc->c;
    pthread_mutex_lock(&c->mu);
    size_t k = 0;
    for (size_t j = 0; j < svc->n; j++)
        if (svc->list[j] != b)
            svc->list[k++] = svc->list[j];
    bool found = k != svc->n;
    svc->n = k;
    pthread_mutex_unlock(&c->mu);
    if (!found)
        return;
    log_info("client", "%s: backend %s (kept by self-preservation) removed: its connection failed",
             svc->name, b->addr);
    client_backend_unlink(svc, b);
    svc->dirty = true;
}

/* ------------------------------------------------------------ watch */

void client_apply_list(la_service *svc, grpc_byte_buffer *bb)
{
    ProtobufCMessage *msg = NULL;
    lookaside_status st =
        pbio_unpack(&lookaside__v1__server_list__descriptor, bb, MAX_LIST_BYTES, &msg);
    if (st != LOOKASIDE_OK) {
        log_warn("client", "%s: bad ServerList: %s", svc->name, lookaside_status_str(st));
        return;
    }
    on_list(svc, (const Lookaside__V1__ServerList *)msg, clock_mono_ms());
    protobuf_c_message_free_unpacked(msg, NULL);
}

static void watch_on_recv(void *owner, la_call *call, grpc_byte_buffer *bb)
{
    (void)call;
    la_service *svc = owner;
    if (bb == NULL)
        return; /* on_status follows */
    if (!svc->retry.answered) {
        lbretry_answered(&svc->retry);
        pthread_mutex_lock(&svc->c->mu);
        svc->lb_connected = true;
        pthread_mutex_unlock(&svc->c->mu);
    }
    client_apply_list(svc, bb);
}

static void watch_on_status(void *owner, la_call *call, grpc_status_code code, const char *details)
{
    la_service *svc = owner;
    lookaside_client *c = svc->c;
    la_call_release(call);
    svc->watch = NULL;
    pthread_mutex_lock(&c->mu);
    svc->lb_connected = false;
    pthread_mutex_unlock(&c->mu);
    if (c->tearing_down)
        return;
    /* The last list stays in use (fail static). */
    lbretry_ended(&c->lb, &svc->retry, svc->name, code, details, clock_mono_ms());
}

static const la_call_handler watch_handler = {
    .on_recv = watch_on_recv,
    .on_sent = NULL,
    .on_status = watch_on_status,
};

void client_watch_start(la_service *svc)
{
    lookaside_client *c = svc->c;
    Lookaside__V1__WatchRequest req = LOOKASIDE__V1__WATCH_REQUEST__INIT;
    req.service = svc->name;
    req.client_zone = c->zone ? c->zone : "";
    req.client_id = c->client_id;
    req.accepts_heartbeat = true;
    if (lbconn_start(&c->lb, &svc->retry, c->loop, WATCH_METHOD, &req.base, true,
                     &watch_handler, svc, &c->live_calls, &svc->watch) != LOOKASIDE_OK)
        return;
    if (svc->streams++ > 0) {
        pthread_mutex_lock(&c->mu);
        svc->reconnects++;
        pthread_mutex_unlock(&c->mu);
    }
}

/* ------------------------------------------------------------ fallback */

void client_fallback_tick(la_service *svc, int64_t now, int64_t *next)
{
    lookaside_client *c = svc->c;
    if (svc->have_lb_list || svc->fallback_target == NULL)
        return;
    if (svc->fallback == NULL) {
        int64_t at = svc->watch_since_ms + c->connect_timeout_ms;
        if (now < at) {
            if (at < *next)
                *next = at;
            return;
        }
        svc->fallback = client_backend_open(c, svc, svc->fallback_target, true);
        if (svc->fallback == NULL) {
            log_error("client", "%s: cannot open the fallback channel to %s", svc->name,
                      svc->fallback_target);
            if (now + 1000 < *next)
                *next = now + 1000;
            return;
        }
        log_warn("client", "%s: no list from the balancer within %u ms; falling back to %s",
                 svc->name, c->connect_timeout_ms, svc->fallback_target);
        svc->fallback_refresh_ms = now + c->fallback_refresh_ms;
        pthread_mutex_lock(&c->mu);
        svc->source = LOOKASIDE_SOURCE_FALLBACK_DNS;
        svc->version = 0;
        svc->list_ms = now;
        svc->valid_for_ms = 0;
        pthread_mutex_unlock(&c->mu);
        svc->dirty = true;
        return;
    }
    /* Re-create the channel now and then: gRPC's DNS resolver would only
     * re-resolve on connection failures. The new one takes over once ready. */
    if (svc->fallback_next == NULL && now >= svc->fallback_refresh_ms) {
        svc->fallback_next = client_backend_open(c, svc, svc->fallback_target, true);
        svc->fallback_next_deadline_ms = now + FALLBACK_WARMUP_MS;
        if (svc->fallback_next == NULL)
            svc->fallback_refresh_ms = now + c->fallback_refresh_ms;
    }
    if (svc->fallback_next != NULL) {
        if (svc->fallback_next->conn == GRPC_CHANNEL_READY ||
            now >= svc->fallback_next_deadline_ms) {
            client_backend_unlink(svc, svc->fallback);
            svc->fallback = svc->fallback_next;
            svc->fallback_next = NULL;
            svc->fallback_refresh_ms = now + c->fallback_refresh_ms;
            pthread_mutex_lock(&c->mu);
            svc->list_ms = now;
            pthread_mutex_unlock(&c->mu);
            svc->dirty = true;
        } else if (svc->fallback_next_deadline_ms < *next) {
            *next = svc->fallback_next_deadline_ms;
        }
    }
    if (svc->fallback_next == NULL && svc->fallback_refresh_ms < *next)
        *next = svc->fallback_refresh_ms;
}

/* ------------------------------------------------------------ internal */

lookaside_status client_inject_list(lookaside_client *c, const char *service,
                                    const client_test_backend *b, size_t n, uint64_t version)
{
    la_service *svc = client_find_service(c, service);
    if (svc == NULL)
        return LOOKASIDE_ENOTFOUND;
    Lookaside__V1__Backend *mb = calloc(n ? n : 1, sizeof *mb);
    Lookaside__V1__Backend **mp = calloc(n ? n : 1, sizeof *mp);
    if (mb == NULL || mp == NULL) {
        free(mb);
        free(mp);
        return LOOKASIDE_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        lookaside__v1__backend__init(&mb[i]);
        mb[i].address = (char *)b[i].address;
        mb[i].weight = b[i].weight;
        mb[i].zone = (char *)(b[i].zone ? b[i].zone : "");
        mb[i].state = b[i].draining ? LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_DRAINING
                                    : LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_SERVING;
        mp[i] = &mb[i];
    }
    Lookaside__V1__ServerList m = LOOKASIDE__V1__SERVER_LIST__INIT;
    m.service = svc->name;
    m.version = version;
    m.n_backends = n;
    m.backends = mp;
    m.state = LOOKASIDE__V1__LIST_STATE__LIST_STATE_LIVE;
    m.valid_for_ms = 60000;
    grpc_byte_buffer *bb = pbio_pack(&m.base);
    free(mb);
    free(mp);
    if (bb == NULL)
        return LOOKASIDE_ENOMEM;
    pthread_mutex_lock(&c->mu);
    if (svc->injected)
        grpc_byte_buffer_destroy(svc->injected);
    svc->injected = bb;
    pthread_mutex_unlock(&c->mu);
    bgloop_wake(c->loop);
    return LOOKASIDE_OK;
}

int client_open_channels(lookaside_client *c)
{
    return atomic_load(&c->open_channels);
}

uint64_t client_lists_applied(lookaside_client *c, const char *service)
{
    la_service *svc = client_find_service(c, service);
    if (svc == NULL)
        return 0;
    pthread_mutex_lock(&c->mu);
    uint64_t n = svc->lists_published;
    pthread_mutex_unlock(&c->mu);
    return n;
}
