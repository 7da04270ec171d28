/* tests/etcd: lookaside-server replicas sharing state through a real etcd
 * (Debian's etcd-server) on 127.0.0.1, ephemeral ports, a temporary data
 * dir; every process stopped by its PID.
 *
 * Figures (propagation time, gaps) are printed, never asserted. */
#define _XOPEN_SOURCE 700   /* nftw */
#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#ifdef LOOKASIDE_ETCD_LOAD
#include "chaos_util.h"
#endif
#include "lookaside.h"
#include "lookaside/v1/lookaside.pb-c.h"

#define ETCD_BIN "/usr/bin/etcd"
#define SVC_A "web"
#define SVC_B "api"
#define SVC_C "outage"
#define LEASE_TTL "3"

typedef struct fx {
    char dir[256];
    char data[300];
    proc etcd;
    int cport, pport;
    char curl[64], purl[64], ep[64];
    proc a, b;
} fx;

static fx F;

/* Processes a test starts itself: stopped by the group teardown when an
 * assertion ends the test early (cmocka leaves the test function). */
#define MAX_EXTRA 8
static proc *g_extra[MAX_EXTRA];

static void track(proc *p)
{
    for (int i = 0; i < MAX_EXTRA; i++)
        if (g_extra[i] == NULL || g_extra[i] == p) {
            g_extra[i] = p;
            return;
        }
}

static void stop_tracked(void)
{
    for (int i = 0; i < MAX_EXTRA; i++) {
        if (g_extra[i] && g_extra[i]->pid > 0) {
            h_stop(g_extra[i]);
            unlink(g_extra[i]->log);
        }
        g_extra[i] = NULL;
    }
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* etcd's data dirs nest (member/snap, member/wal): h_rmdir removes one
 * level only. */
static void rm_tree(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    int port = -1;
    if (s >= 0 && bind(s, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(s, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (s >= 0)
        close(s);
    return port;
}

/* Starts (or restarts, same ports and data) the one etcd member, with a
 * fresh log so the readiness line is this run's. */
static int etcd_start(void)
{
    if (F.etcd.log[0]) {
        unlink(F.etcd.log);
        F.etcd.log[0] = '\0';
    }
    char cluster[128];
    snprintf(cluster, sizeof cluster, "default=%s", F.purl);
    const char *argv[] = {ETCD_BIN, "--name", "default", "--data-dir", F.data,
                          "--listen-client-urls", F.curl, "--advertise-client-urls", F.curl,
                          "--listen-peer-urls", F.purl, "--initial-advertise-peer-urls",
                          F.purl, "--initial-cluster", cluster, NULL};
    return h_spawn(&F.etcd, argv, "ready to serve client requests");
}

static int replica_start(proc *p)
{
    const char *extra[] = {"--etcd", F.ep, "--etcd-lease-ttl", LEASE_TTL, NULL};
    return h_server_start(p, "/nonexistent/unused.db", extra);
}

static int group_setup(void **state)
{
    (void)state;
    if (access(ETCD_BIN, X_OK) != 0)
        return 0;   /* each test skips with the reason */
    grpc_init();
    h_tmpdir(F.dir);
    snprintf(F.data, sizeof F.data, "%s/etcd", F.dir);
    F.cport = free_port();
    F.pport = free_port();
    snprintf(F.curl, sizeof F.curl, "http://127.0.0.1:%d", F.cport);
    snprintf(F.purl, sizeof F.purl, "http://127.0.0.1:%d", F.pport);
    snprintf(F.ep, sizeof F.ep, "127.0.0.1:%d", F.cport);
    if (etcd_start() != 0 || replica_start(&F.a) != 0 || replica_start(&F.b) != 0) {
        h_log_dump(&F.etcd);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (access(ETCD_BIN, X_OK) != 0)
        return 0;
    int rc = 0;
    if (F.a.pid > 0 && h_server_teardown(&F.a, NULL) != 0)
        rc = -1;
    if (F.b.pid > 0 && h_server_teardown(&F.b, NULL) != 0)
        rc = -1;
    if (F.etcd.pid > 0)
        h_stop(&F.etcd);
    unlink(F.etcd.log);
    stop_tracked();
    rm_tree(F.dir);
    grpc_shutdown();
    return rc;
}

#define NEED_ETCD()                                                                          \
    do {                                                                                     \
        if (access(ETCD_BIN, X_OK) != 0) {                                                   \
            fprintf(stderr, "SKIP: %s not installed (scripts/deps.sh installs etcd-server)\n", \
                    ETCD_BIN);                                                               \
            skip();                                                                          \
        }                                                                                    \
    } while (0)

/* ---- helpers ---- */

static tstream *watch_open(tclient *c, const char *service)
{
    Lookaside__V1__WatchRequest rq = LOOKASIDE__V1__WATCH_REQUEST__INIT;
    rq.service = (char *)service;
    return ts_open(c, "/lookaside.v1.Balancer/Watch", &rq.base);
}

/* The backend with this address in l, or NULL. */
static const Lookaside__V1__Backend *find_backend(const Lookaside__V1__ServerList *l,
                                                  const char *address)
{
    for (size_t i = 0; i < l->n_backends; i++)
        if (strcmp(l->backends[i]->address, address) == 0)
            return l->backends[i];
    return NULL;
}

/* Reads lists from w until one satisfies want(address, state) or timeout_ms
 * passes. Returns 1 when seen. Counts the lists read into *lists. */
typedef bool (*list_pred)(const Lookaside__V1__ServerList *l, const char *address);

static int watch_until(tstream *w, list_pred want, const char *address, int timeout_ms,
                       uint64_t *version)
{
    long long until = h_now_ms() + timeout_ms;
    while (h_now_ms() < until) {
        ProtobufCMessage *m = NULL;
        int r = ts_recv(w, &lookaside__v1__server_list__descriptor, &m,
                        (int)(until - h_now_ms()) + 1);
        if (r != 1)
            return 0;
        Lookaside__V1__ServerList *l = (Lookaside__V1__ServerList *)m;
        bool ok = !l->heartbeat && want(l, address);
        if (ok && version)
            *version = l->version;
        protobuf_c_message_free_unpacked(m, NULL);
        if (ok)
            return 1;
    }
    return 0;
}

static bool has(const Lookaside__V1__ServerList *l, const char *address)
{
    return find_backend(l, address) != NULL;
}

static bool lacks(const Lookaside__V1__ServerList *l, const char *address)
{
    return find_backend(l, address) == NULL;
}

static bool draining(const Lookaside__V1__ServerList *l, const char *address)
{
    const Lookaside__V1__Backend *b = find_backend(l, address);
    return b && b->state == LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_DRAINING;
}

static bool serving(const Lookaside__V1__ServerList *l, const char *address)
{
    const Lookaside__V1__Backend *b = find_backend(l, address);
    return b && b->state == LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_SERVING && b->weight > 0;
}

/* The weight a backend must show for weighs(): an operator's override
 * replaces the computed weight of a serving backend. */
static uint32_t g_want_weight;

static bool weighs(const Lookaside__V1__ServerList *l, const char *address)
{
    const Lookaside__V1__Backend *b = find_backend(l, address);
    return b && b->state == LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_SERVING &&
           b->weight == g_want_weight;
}

static bool not_weighs(const Lookaside__V1__ServerList *l, const char *address)
{
    return serving(l, address) && !weighs(l, address);
}

/* test_kill_etcd_leader: what was taken while etcd was down is all in the
 * list (address unused). */
static bool outage_applied(const Lookaside__V1__ServerList *l, const char *address)
{
    (void)address;
    return has(l, "127.0.0.1:9303") && draining(l, "127.0.0.1:9301") &&
           weighs(l, "127.0.0.1:9302");
}

/* GetServerList on c (NULL when the call failed; free the list). */
static Lookaside__V1__ServerList *list_at(tclient *c, const char *service)
{
    Lookaside__V1__WatchRequest rq = LOOKASIDE__V1__WATCH_REQUEST__INIT;
    rq.service = (char *)service;
    ProtobufCMessage *m = NULL;
    if (tc_unary(c, "/lookaside.v1.Balancer/GetServerList", &rq.base,
                 &lookaside__v1__server_list__descriptor, &m, NULL, 5000) != GRPC_STATUS_OK) {
        if (m)
            protobuf_c_message_free_unpacked(m, NULL);
        return NULL;
    }
    return (Lookaside__V1__ServerList *)m;
}

/* GetServerList at addr: is address listed? */
static bool listed_at(const char *addr, const char *service, const char *address)
{
    tclient *c = tc_connect(addr);
    Lookaside__V1__ServerList *l = list_at(c, service);
    bool found = l && has(l, address);
    if (l)
        protobuf_c_message_free_unpacked(&l->base, NULL);
    tc_close(c);
    return found;
}

static bool wait_listed(const char *addr, const char *service, const char *address,
                        bool want, int timeout_ms)
{
    long long until = h_now_ms() + timeout_ms;
    do {
        if (listed_at(addr, service, address) == want)
            return true;
        h_sleep_ms(50);
    } while (h_now_ms() < until);
    return false;
}

/* A liblookaside reporter registered at target (waits up to 10 s). */
static lookaside_reporter *reporter_at(const char *target, const char *service,
                                       const char *address)
{
    lookaside_reporter_options ro;
    lookaside_reporter_options_init(&ro);
    ro.lb_target = target;
    ro.service = service;
    ro.address = address;
    lookaside_reporter *rep = NULL;
    assert_int_equal(lookaside_reporter_create(&ro, &rep), LOOKASIDE_OK);
    lookaside_reporter_info ri = {0};
    for (int i = 0; i < 200 && !ri.registered; i++) {
        h_sleep_ms(50);
        lookaside_reporter_info_get(rep, &ri);
    }
    assert_true(ri.registered);
    return rep;
}

/* ---- tests ---- */

/* An Admin call on c that must succeed. */
static void admin_ok(tclient *c, const char *method, const ProtobufCMessage *rq,
                     const ProtobufCMessageDescriptor *resp)
{
    assert_int_equal(tc_unary(c, method, rq, resp, NULL, NULL, 5000), GRPC_STATUS_OK);
}

static void set_drain(tclient *c, const char *service, const char *address, bool on)
{
    Lookaside__V1__SetDrainRequest dr = LOOKASIDE__V1__SET_DRAIN_REQUEST__INIT;
    dr.service = (char *)service;
    dr.address = (char *)address;
    dr.draining = on;
    admin_ok(c, "/lookaside.v1.Admin/SetDrain", &dr.base,
             &lookaside__v1__set_drain_response__descriptor);
}

static void set_override(tclient *c, const char *service, const char *address, uint32_t w)
{
    Lookaside__V1__SetWeightOverrideRequest ov = LOOKASIDE__V1__SET_WEIGHT_OVERRIDE_REQUEST__INIT;
    ov.service = (char *)service;
    ov.address = (char *)address;
    ov.weight = w;
    admin_ok(c, "/lookaside.v1.Admin/SetWeightOverride", &ov.base,
             &lookaside__v1__set_weight_override_response__descriptor);
}

/* A backend reporting to replica A reaches a watcher of replica B; drains
 * through either replica's Admin reach the watchers of both (through B's
 * Admin the request goes to A, which owns the backend); the backend's clean
 * leave at A removes it at B. */
static void test_register_and_drain_across_replicas(void **state)
{
    (void)state;
    NEED_ETCD();
    tclient *ca = tc_connect(F.a.addr);
    tclient *cb = tc_connect(F.b.addr);
    tstream *wa = watch_open(ca, SVC_A);
    tstream *wb = watch_open(cb, SVC_A);
    assert_non_null(wa);
    assert_non_null(wb);
    uint64_t v0 = 0, v1 = 0, v2 = 0, v3 = 0;
    /* A reporter (not a bare stream) so the backend keeps reporting however
     * slow a loaded machine makes the steps below. The time it takes is in
     * test_propagation_figures. */
    lookaside_reporter *rep = reporter_at(F.a.addr, SVC_A, "127.0.0.1:9001");
    assert_int_equal(watch_until(wb, has, "127.0.0.1:9001", 10000, &v0), 1);
    assert_true(v0 > 1);
    assert_int_equal(watch_until(wa, has, "127.0.0.1:9001", 10000, NULL), 1);

    /* Drain through A's Admin (A owns it): B's watcher sees DRAINING. */
    set_drain(ca, SVC_A, "127.0.0.1:9001", true);
    assert_int_equal(watch_until(wb, draining, "127.0.0.1:9001", 10000, &v1), 1);
    assert_true(v1 > v0);
    assert_int_equal(watch_until(wa, draining, "127.0.0.1:9001", 10000, NULL), 1);
    /* Undrain through B's Admin: A, the owner, applies it; A's watcher sees
     * it serve again (B's local view alone would not reach A). */
    set_drain(cb, SVC_A, "127.0.0.1:9001", false);
    assert_int_equal(watch_until(wa, serving, "127.0.0.1:9001", 10000, NULL), 1);
    assert_int_equal(watch_until(wb, serving, "127.0.0.1:9001", 10000, &v2), 1);
    assert_true(v2 > v1);
    /* A weight override through B (A owns the backend) reaches both
     * replicas' watchers; cleared through A, both go back to the computed
     * weight. */
    g_want_weight = 777;
    set_override(cb, SVC_A, "127.0.0.1:9001", 777);
    assert_int_equal(watch_until(wa, weighs, "127.0.0.1:9001", 10000, NULL), 1);
    assert_int_equal(watch_until(wb, weighs, "127.0.0.1:9001", 10000, NULL), 1);
    set_override(ca, SVC_A, "127.0.0.1:9001", 0);
    assert_int_equal(watch_until(wb, not_weighs, "127.0.0.1:9001", 10000, &v2), 1);
    assert_int_equal(watch_until(wa, not_weighs, "127.0.0.1:9001", 10000, NULL), 1);
    /* And a drain through B reaches A's watchers too. */
    set_drain(cb, SVC_A, "127.0.0.1:9001", true);
    assert_int_equal(watch_until(wa, draining, "127.0.0.1:9001", 10000, NULL), 1);

    /* The reporter leaves cleanly at A: B drops it. */
    assert_int_equal(lookaside_reporter_stop(rep, 3000), LOOKASIDE_OK);
    assert_int_equal(watch_until(wb, lacks, "127.0.0.1:9001", 10000, &v3), 1);
    assert_true(v3 > v2);
    lookaside_reporter_destroy(rep);
    ts_cancel(wa);
    ts_destroy(wa);
    ts_cancel(wb);
    ts_destroy(wb);
    tc_close(ca);
    tc_close(cb);
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

#define N_PROP 50

/* Registration at A -> list at a watcher of B, N_PROP times (a figure,
 * printed; every registration must arrive). */
static void test_propagation_figures(void **state)
{
    (void)state;
    NEED_ETCD();
    tclient *ca = tc_connect(F.a.addr);
    tclient *cb = tc_connect(F.b.addr);
    tstream *wb = watch_open(cb, "prop");
    assert_non_null(wb);
    tstream *rep[N_PROP];
    long long ms[N_PROP];
    for (int i = 0; i < N_PROP; i++) {
        char addr[32];
        snprintf(addr, sizeof addr, "127.0.0.1:%d", 9700 + i);
        long long t0 = h_now_ms();
        rep[i] = h_report_open(ca, "prop", addr, NULL, NULL);
        assert_non_null(rep[i]);
        assert_int_equal(watch_until(wb, has, addr, 10000, NULL), 1);
        ms[i] = h_now_ms() - t0;
    }
    for (int i = 0; i < N_PROP; i++) {
        ts_close_send(rep[i]);
        ts_destroy(rep[i]);
    }
    qsort(ms, N_PROP, sizeof ms[0], cmp_ll);
    printf("FIGURE registration at A -> list at a watcher of B, %d registrations: p50 %lld ms, "
           "p90 %lld ms, max %lld ms\n",
           N_PROP, ms[N_PROP / 2], ms[N_PROP * 9 / 10], ms[N_PROP - 1]);
    ts_cancel(wb);
    ts_destroy(wb);
    tc_close(ca);
    tc_close(cb);
}

/* SIGKILL replica A: its reporter re-registers through B before A's lease
 * expires, so B's watchers never lose the backend; a liblookaside client
 * watching A moves to B, keeps its list, and never sees its version go
 * back. */
static void test_kill_replica(void **state)
{
    (void)state;
    NEED_ETCD();
    char targets[160];
    snprintf(targets, sizeof targets, "%s,%s", F.a.addr, F.b.addr);

    lookaside_reporter *rep = reporter_at(targets, SVC_B, "127.0.0.1:9101");

    lookaside_client_options co;
    lookaside_client_options_init(&co);
    co.lb_target = targets;
    lookaside_client *cl = NULL;
    assert_int_equal(lookaside_client_create(&co, &cl), LOOKASIDE_OK);
    assert_int_equal(lookaside_client_watch(cl, SVC_B, NULL), LOOKASIDE_OK);

    /* Both replicas list it (A directly, B through etcd). */
    assert_true(wait_listed(F.a.addr, SVC_B, "127.0.0.1:9101", true, 10000));
    assert_true(wait_listed(F.b.addr, SVC_B, "127.0.0.1:9101", true, 10000));
    assert_int_equal(lookaside_client_wait_ready(cl, SVC_B, 10000), LOOKASIDE_OK);
    lookaside_reporter_info ri;
    lookaside_reporter_info_get(rep, &ri);
    uint64_t streams_before = ri.streams;

    tclient *cb = tc_connect(F.b.addr);
    tstream *w = watch_open(cb, SVC_B);
    uint64_t b_version = 0;
    assert_int_equal(watch_until(w, has, "127.0.0.1:9101", 5000, &b_version), 1);

    /* Kill A once B has published what the client last got from A (a quiet
     * start; kills racing A's own changes are test_versions_failover_race). */
    long long sync_until = h_now_ms() + 10000;
    for (;;) {
        lookaside_service_info si0;
        assert_int_equal(lookaside_client_service_info(cl, SVC_B, &si0), LOOKASIDE_OK);
        if (b_version >= si0.version || h_now_ms() > sync_until)
            break;
        ProtobufCMessage *m = NULL;
        if (ts_recv(w, &lookaside__v1__server_list__descriptor, &m, 50) == 1) {
            Lookaside__V1__ServerList *l = (Lookaside__V1__ServerList *)m;
            if (!l->heartbeat && l->version > b_version)
                b_version = l->version;
            protobuf_c_message_free_unpacked(m, NULL);
        }
    }
    h_kill(&F.a);
    long long t_kill = h_now_ms();
    /* Watch B and the client for twice the lease TTL plus margin: the
     * backend must stay listed at B, and the client's versions must never
     * decrease. */
    uint64_t last_v = 0, decreases = 0, samples = 0, empty = 0;
    int gaps = 0, lists = 0;
    long long until = t_kill + 2 * 3000 + 3000;
    while (h_now_ms() < until) {
        lookaside_service_info si;
        if (lookaside_client_service_info(cl, SVC_B, &si) == LOOKASIDE_OK) {
            samples++;
            if (si.version < last_v)
                decreases++;
            if (si.version > last_v)
                last_v = si.version;
            if (si.backends == 0)
                empty++;
        }
        ProtobufCMessage *m = NULL;
        if (ts_recv(w, &lookaside__v1__server_list__descriptor, &m, 20) == 1) {
            Lookaside__V1__ServerList *l = (Lookaside__V1__ServerList *)m;
            if (!l->heartbeat) {
                lists++;
                if (!has(l, "127.0.0.1:9101"))
                    gaps++;
            }
            protobuf_c_message_free_unpacked(m, NULL);
        }
    }
    lookaside_reporter_info_get(rep, &ri);
    lookaside_service_info si;
    assert_int_equal(lookaside_client_service_info(cl, SVC_B, &si), LOOKASIDE_OK);
    printf("FIGURE SIGKILL of replica A: B pushed %d lists, %d without the backend; client: %llu "
           "samples, %llu version decreases, %llu with an empty list, reconnects %llu, "
           "reporter streams %llu -> %llu, registered %d\n",
           lists, gaps, (unsigned long long)samples, (unsigned long long)decreases,
           (unsigned long long)empty, (unsigned long long)si.reconnects,
           (unsigned long long)streams_before, (unsigned long long)ri.streams, ri.registered);
    assert_int_equal(gaps, 0);
    assert_int_equal(decreases, 0);
    assert_int_equal(empty, 0);
    assert_true(ri.registered);
    assert_true(ri.streams > streams_before);
    assert_true(si.lb_connected);
    assert_true(si.backends >= 1);
    /* A's lease has expired by now: only the re-registration keeps it. */
    assert_true(listed_at(F.b.addr, SVC_B, "127.0.0.1:9101"));

    ts_cancel(w);
    ts_destroy(w);
    tc_close(cb);
    lookaside_client_destroy(cl);
    lookaside_reporter_destroy(rep);
    /* A comes back for the next test (a fresh replica on a new port). */
    unlink(F.a.log);
    assert_int_equal(replica_start(&F.a), 0);
}

/* The first list of a new Watch on c (NULL when none came in 5 s). */
static Lookaside__V1__ServerList *first_list(tclient *c, const char *service)
{
    tstream *w = watch_open(c, service);
    ProtobufCMessage *m = NULL;
    if (w && ts_recv(w, &lookaside__v1__server_list__descriptor, &m, 5000) != 1)
        m = NULL;
    if (w) {
        ts_cancel(w);
        ts_destroy(w);
    }
    return (Lookaside__V1__ServerList *)m;
}

/* Same backends, weights, zones and states (lists are sorted by address). */
static bool same_lists(const Lookaside__V1__ServerList *x, const Lookaside__V1__ServerList *y)
{
    if (x->n_backends != y->n_backends || x->state != y->state)
        return false;
    for (size_t i = 0; i < x->n_backends; i++) {
        const Lookaside__V1__Backend *p = x->backends[i], *q = y->backends[i];
        if (strcmp(p->address, q->address) != 0 || p->weight != q->weight ||
            strcmp(p->zone, q->zone) != 0 || p->state != q->state)
            return false;
    }
    return true;
}

/* Waits (10 s) until x and y publish the same version and list of
 * service; their last versions into *vx, *vy. */
static bool settle(tclient *x, tclient *y, const char *service, uint64_t *vx, uint64_t *vy)
{
    bool same = false;
    for (long long until = h_now_ms() + 10000; !same && h_now_ms() < until; h_sleep_ms(50)) {
        Lookaside__V1__ServerList *lx = list_at(x, service), *ly = list_at(y, service);
        if (lx && ly) {
            *vx = lx->version;
            *vy = ly->version;
            same = lx->version == ly->version && same_lists(lx, ly);
        }
        if (lx)
            protobuf_c_message_free_unpacked(&lx->base, NULL);
        if (ly)
            protobuf_c_message_free_unpacked(&ly->base, NULL);
    }
    return same;
}

#define N_SWITCH 40
#define N_KILL 4

/* Versions are etcd revisions (README "Replicas"). Part 1, N_SWITCH
 * changes made at A (registrations, drains, undrains of backends A owns):
 * right after each list A pushes, B is asked for its list, as a watcher
 * failing over from A to B would: B's version is never lower, and equal
 * versions carry equal lists; once settled A and B publish the same version
 * and list. Part 2, N_KILL real failovers racing A's own changes: A is
 * SIGKILLed right after a drain it took (at once, or as soon as the client
 * has A's list with it); a liblookaside client watching "A,B" never sees its
 * version go back. */
static void test_versions_failover_race(void **state)
{
    (void)state;
    NEED_ETCD();
    tclient *ca = tc_connect(F.a.addr);
    tclient *cb = tc_connect(F.b.addr);
    tstream *wa = watch_open(ca, "vrace");
    assert_non_null(wa);
    lookaside_reporter *rep[4] = {0};
    char addr[4][32];
    uint64_t last_a = 0;
    int lower = 0, equal_differs = 0, switches = 0, equal = 0;
    for (int i = 0; i < N_SWITCH; i++) {
        int k = i % 4;
        if (i < 4) {
            snprintf(addr[k], sizeof addr[k], "127.0.0.1:%d", 9600 + k);
            rep[k] = reporter_at(F.a.addr, "vrace", addr[k]);
        } else {
            set_drain(ca, "vrace", addr[k], (i / 4) % 2 == 1);
        }
        /* A's next list, then B at once. */
        long long until = h_now_ms() + 5000;
        Lookaside__V1__ServerList *la = NULL;
        while (la == NULL && h_now_ms() < until) {
            ProtobufCMessage *m = NULL;
            if (ts_recv(wa, &lookaside__v1__server_list__descriptor, &m, 100) != 1)
                continue;
            Lookaside__V1__ServerList *l = (Lookaside__V1__ServerList *)m;
            if (!l->heartbeat && l->version > last_a)
                la = l;
            else
                protobuf_c_message_free_unpacked(m, NULL);
        }
        if (la == NULL)
            continue;   /* e.g. a drain already in effect: nothing new */
        last_a = la->version;
        /* As GetServerList, or as the first list of a new Watch. */
        Lookaside__V1__ServerList *lb = i % 2 ? list_at(cb, "vrace") : first_list(cb, "vrace");
        assert_non_null(lb);
        switches++;
        if (lb->version < la->version) {
            lower++;
            fprintf(stderr, "switch %d: A pushed %llu, B answered %llu\n", i,
                    (unsigned long long)la->version, (unsigned long long)lb->version);
        } else if (lb->version == la->version) {
            equal++;
            if (!same_lists(la, lb)) {
                equal_differs++;
                for (size_t j = 0; j < la->n_backends && j < lb->n_backends; j++)
                    fprintf(stderr, "version %llu: A %s w%u s%d, B %s w%u s%d\n",
                            (unsigned long long)la->version, la->backends[j]->address,
                            la->backends[j]->weight, (int)la->backends[j]->state,
                            lb->backends[j]->address, lb->backends[j]->weight,
                            (int)lb->backends[j]->state);
            }
        }
        protobuf_c_message_free_unpacked(&la->base, NULL);
        protobuf_c_message_free_unpacked(&lb->base, NULL);
    }
    /* Settled: the same version and list at both. */
    uint64_t va = 0, vb = 0;
    bool settled = settle(ca, cb, "vrace", &va, &vb);
    printf("FIGURE versions, switching from A to B right after each of A's lists: %d switches, "
           "%d with B lower, %d with B equal (%d of those with a different list); settled: A "
           "%llu, B %llu (revision %llu)\n",
           switches, lower, equal, equal_differs, (unsigned long long)va,
           (unsigned long long)vb, (unsigned long long)(va >> 24));
    assert_true(switches >= N_SWITCH / 2);
    assert_int_equal(lower, 0);
    assert_int_equal(equal_differs, 0);
    assert_true(settled);

    /* A replica that lists etcd afresh after a backend left (its listing
     * cannot show the delete) publishes the same version as B, which saw
     * the delete: the service's marker key carries its revision. */
    assert_int_equal(lookaside_reporter_stop(rep[3], 3000), LOOKASIDE_OK);
    lookaside_reporter_destroy(rep[3]);
    rep[3] = NULL;
    assert_true(wait_listed(F.b.addr, "vrace", addr[3], false, 10000));
    static proc fresh;
    assert_int_equal(replica_start(&fresh), 0);
    track(&fresh);
    assert_true(wait_listed(fresh.addr, "vrace", addr[2], true, 10000));
    tclient *cc = tc_connect(fresh.addr);
    uint64_t vc = 0, vb2 = 0;
    bool same = settle(cb, cc, "vrace", &vb2, &vc);
    printf("FIGURE a replica started after a backend left: version %llu, the replica that saw "
           "the delete: %llu\n", (unsigned long long)vc, (unsigned long long)vb2);
    tc_close(cc);
    assert_true(h_stop(&fresh) >= 0);
    unlink(fresh.log);
    assert_true(same);
    for (int k = 0; k < 4; k++)
        if (rep[k]) {
            assert_int_equal(lookaside_reporter_stop(rep[k], 3000), LOOKASIDE_OK);
            lookaside_reporter_destroy(rep[k]);
        }
    ts_cancel(wa);
    ts_destroy(wa);
    tc_close(ca);
    tc_close(cb);

    /* Part 2: real failovers. */
    uint64_t decreases = 0, samples = 0;
    for (int k = 0; k < N_KILL; k++) {
        char targets[160], ad[32];
        snprintf(targets, sizeof targets, "%s,%s", F.a.addr, F.b.addr);
        snprintf(ad, sizeof ad, "127.0.0.1:%d", 9610 + k);
        lookaside_reporter *r1 = reporter_at(targets, "vkill", ad);
        lookaside_client_options co;
        lookaside_client_options_init(&co);
        co.lb_target = targets;
        lookaside_client *cl = NULL;
        assert_int_equal(lookaside_client_create(&co, &cl), LOOKASIDE_OK);
        assert_int_equal(lookaside_client_watch(cl, "vkill", NULL), LOOKASIDE_OK);
        assert_true(wait_listed(F.b.addr, "vkill", ad, true, 10000));
        assert_int_equal(lookaside_client_wait_ready(cl, "vkill", 10000), LOOKASIDE_OK);
        lookaside_service_info si;
        assert_int_equal(lookaside_client_service_info(cl, "vkill", &si), LOOKASIDE_OK);
        uint64_t max_v = si.version;
        tclient *c = tc_connect(F.a.addr);
        set_drain(c, "vkill", ad, true);
        if (k % 2 == 1) {
            /* Until the client has A's list with the drain (bounded). */
            for (int j = 0; j < 1000; j++) {
                if (lookaside_client_service_info(cl, "vkill", &si) == LOOKASIDE_OK &&
                    si.version > max_v)
                    break;
                h_sleep_ms(2);
            }
        }
        h_kill(&F.a);
        for (long long until = h_now_ms() + 2500; h_now_ms() < until; h_sleep_ms(5)) {
            if (lookaside_client_service_info(cl, "vkill", &si) != LOOKASIDE_OK)
                continue;
            samples++;
            if (si.version < max_v) {
                decreases++;
                fprintf(stderr, "failover %d: version %llu after %llu\n", k,
                        (unsigned long long)si.version, (unsigned long long)max_v);
            }
            if (si.version > max_v)
                max_v = si.version;
        }
        tc_close(c);
        lookaside_client_destroy(cl);
        assert_int_equal(lookaside_reporter_stop(r1, 3000), LOOKASIDE_OK);
        lookaside_reporter_destroy(r1);
        unlink(F.a.log);
        assert_int_equal(replica_start(&F.a), 0);
    }
    printf("FIGURE %d SIGKILLs of replica A right after a drain it took: %llu client samples, "
           "%llu version decreases\n",
           N_KILL, (unsigned long long)samples, (unsigned long long)decreases);
    assert_int_equal(decreases, 0);
}

/* Self-preservation across replicas: replica A dies and its four backends'
 * reporters cannot re-register elsewhere (bare streams to A). When A's lease
 * expires, B sees four deletes at once; it drops at most half of the
 * service within the 10 s window and keeps the rest listed as RESTORED
 * (README "How it behaves"), instead of emptying the list. */
static void test_lease_expiry_self_preservation(void **state)
{
    (void)state;
    NEED_ETCD();
    tclient *ca = tc_connect(F.a.addr);
    tstream *st[4];
    char addr[4][32];
    for (int i = 0; i < 4; i++) {
        snprintf(addr[i], sizeof addr[i], "127.0.0.1:%d", 9901 + i);
        st[i] = h_report_registered(ca, "preserve", addr[i], NULL, NULL);
        assert_non_null(st[i]);
    }
    for (int i = 0; i < 4; i++)
        assert_true(wait_listed(F.b.addr, "preserve", addr[i], true, 10000));
    h_kill(&F.a);
    long long t_kill = h_now_ms();
    tclient *cb = tc_connect(F.b.addr);
    size_t min_listed = 4;
    bool restored = false;
    /* Past the lease TTL (3 s) and etcd's expiry check, within the window. */
    while (h_now_ms() - t_kill < 7000) {
        Lookaside__V1__WatchRequest rq = LOOKASIDE__V1__WATCH_REQUEST__INIT;
        rq.service = "preserve";
        ProtobufCMessage *m = NULL;
        if (tc_unary(cb, "/lookaside.v1.Balancer/GetServerList", &rq.base,
                     &lookaside__v1__server_list__descriptor, &m, NULL, 2000) == GRPC_STATUS_OK &&
            m) {
            Lookaside__V1__ServerList *l = (Lookaside__V1__ServerList *)m;
            if (l->n_backends < min_listed)
                min_listed = l->n_backends;
            for (size_t i = 0; i < l->n_backends; i++)
                if (l->backends[i]->state == LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_RESTORED)
                    restored = true;
        }
        if (m)
            protobuf_c_message_free_unpacked(m, NULL);
        h_sleep_ms(100);
    }
    printf("FIGURE replica A SIGKILLed with 4 backends that cannot re-register: B listed at "
           "least %zu of them in the 7 s after (lease TTL 3 s), RESTORED seen: %d\n",
           min_listed, restored);
    for (int i = 0; i < 4; i++)
        ts_destroy(st[i]);
    tc_close(ca);
    tc_close(cb);
    unlink(F.a.log);
    assert_int_equal(replica_start(&F.a), 0);
    assert_true(min_listed >= 2);
    assert_true(restored);
}

#ifdef LOOKASIDE_ETCD_LOAD
/* Client load across replicas a and b: two demo backends reporting to
 * both (as targets), the demo client through liblookaside at 200 calls/s for
 * secs seconds, failing on any failed call. */
static void load_start(const char *a, const char *b, proc *be, proc *cl, double secs)
{
    char targets[160];
    snprintf(targets, sizeof targets, "%s,%s", a, b);
    chaos_backend_start(&be[0], targets, "b0");
    chaos_backend_start(&be[1], targets, "b1");
    chaos_wait_serving(a, 2);
    chaos_wait_serving(b, 2);
    chaos_client_start(cl, targets, 200, secs, NULL);
}

/* Waits for the client, prints its summary after what, checks that both
 * backends are listed at the replicas named (b may be NULL), stops the
 * backends; the client's exit status (0: no call failed). */
static int load_end(proc *be, proc *cl, double secs, const char *what, const char *a,
                    const char *b)
{
    char summary[512];
    int rc = chaos_client_wait(cl, secs, summary, sizeof summary);
    printf("FIGURE %s under 200 calls/s through liblookaside: client exit %d, %s\n", what, rc,
           summary);
    chaos_wait_serving(a, 2);
    if (b)
        chaos_wait_serving(b, 2);
    for (int i = 0; i < 2; i++) {
        h_stop(&be[i]);
        unlink(be[i].log);
    }
    unlink(cl->log);
    return rc;
}

/* SIGKILL replica A under client load: two demo backends registered at A
 * (targets "A,B"), the demo client watching A and calling them at 200/s
 * with --max-fail-fraction 0 (it exits non-zero on any failed call). The
 * balancer is not on the data path; this checks that nothing the replicas
 * do on a kill (list changes, re-registration, the client's move to B)
 * costs a call. */
static void test_kill_replica_under_load(void **state)
{
    (void)state;
    NEED_ETCD();
    static proc be[2], cl;   /* chaos_track keeps pointers to them */
    load_start(F.a.addr, F.b.addr, be, &cl, 8);
    h_sleep_ms(3000);
    h_kill(&F.a);
    unlink(F.a.log);
    /* Both backends are still listed at B (re-registered there). */
    int rc = load_end(be, &cl, 8, "SIGKILL of replica A", F.b.addr, NULL);
    assert_int_equal(rc, 0);
    assert_int_equal(replica_start(&F.a), 0);
}
#endif

static bool unconfirmed(const Lookaside__V1__ServerList *l, const char *address)
{
    return l->unconfirmed && has(l, address);
}

static bool confirmed(const Lookaside__V1__ServerList *l, const char *address)
{
    return !l->unconfirmed && has(l, address);
}

/* 1: the list at c is confirmed, 0: unconfirmed, -1: no answer. */
static int confirmed_at(tclient *c, const char *service)
{
    Lookaside__V1__ServerList *l = list_at(c, service);
    int r = l ? !l->unconfirmed : -1;
    if (l)
        protobuf_c_message_free_unpacked(&l->base, NULL);
    return r;
}

static bool wait_confirmed(tclient *c, const char *service, int want, int timeout_ms)
{
    for (long long until = h_now_ms() + timeout_ms; h_now_ms() < until; h_sleep_ms(50))
        if (confirmed_at(c, service) == want)
            return true;
    return false;
}

/* etcd stopped for a few seconds: both replicas keep serving their lists
 * (fail static) and keep accepting registrations; when etcd returns they
 * converge. */
static void test_etcd_outage(void **state)
{
    (void)state;
    NEED_ETCD();
    lookaside_reporter *x = reporter_at(F.a.addr, SVC_C, "127.0.0.1:9201");
    assert_true(wait_listed(F.b.addr, SVC_C, "127.0.0.1:9201", true, 10000));
    tclient *ca = tc_connect(F.a.addr), *cb = tc_connect(F.b.addr);
    tstream *wa = watch_open(ca, SVC_C);
    assert_non_null(wa);
    /* Confirmed while etcd is there. */
    assert_int_equal(confirmed_at(ca, SVC_C), 1);
    assert_int_equal(confirmed_at(cb, SVC_C), 1);
    assert_int_equal(watch_until(wa, has, "127.0.0.1:9201", 5000, NULL), 1);

    /* etcd ends on SIGTERM by the signal (status 128+15): either is fine. */
    assert_true(h_stop(&F.etcd) >= 0);
    long long t_stop = h_now_ms();
    /* Both replicas mark their lists unconfirmed; A's watcher gets it pushed
     * (same list otherwise). */
    assert_int_equal(watch_until(wa, unconfirmed, "127.0.0.1:9201", 5000, NULL), 1);
    long long t_flag = h_now_ms();
    assert_true(wait_confirmed(cb, SVC_C, 0, 5000));
    /* A registration while etcd is down is still taken (and acknowledged)
     * by the replica it reaches. */
    lookaside_reporter *y = reporter_at(F.b.addr, SVC_C, "127.0.0.1:9202");
    assert_true(wait_listed(F.b.addr, SVC_C, "127.0.0.1:9202", true, 10000));
    /* Two waiting registrations of one service go out in one transaction
     * (one revision, two events) when etcd returns. */
    lookaside_reporter *y2 = reporter_at(F.b.addr, SVC_C, "127.0.0.1:9203");
    /* Longer than the lease TTL (3 s) and the eviction window (3 report
     * intervals): nothing is dropped while etcd is away. */
    int checks = 0;
    while (h_now_ms() - t_stop < 5000) {
        assert_true(listed_at(F.a.addr, SVC_C, "127.0.0.1:9201"));
        assert_true(listed_at(F.b.addr, SVC_C, "127.0.0.1:9201"));
        assert_true(listed_at(F.b.addr, SVC_C, "127.0.0.1:9202"));
        checks++;
        h_sleep_ms(200);
    }
    assert_true(checks > 0);
    long long t_back = h_now_ms();
    assert_int_equal(etcd_start(), 0);
    /* Converged: A learns the registrations B took during the outage. */
    assert_true(wait_listed(F.a.addr, SVC_C, "127.0.0.1:9202", true, 15000));
    assert_true(wait_listed(F.a.addr, SVC_C, "127.0.0.1:9203", true, 15000));
    long long t_conv = h_now_ms();
    /* Reconciled: the flag clears at both, and A's watcher gets it pushed. */
    assert_true(wait_confirmed(ca, SVC_C, 1, 15000));
    assert_true(wait_confirmed(cb, SVC_C, 1, 15000));
    assert_int_equal(watch_until(wa, confirmed, "127.0.0.1:9203", 5000, NULL), 1);
    printf("FIGURE etcd down %lld ms; lists marked unconfirmed %lld ms after the stop; the "
           "registration taken during the outage reached the other replica %lld ms after etcd "
           "came back, both lists confirmed again %lld ms after it came back\n",
           t_back - t_stop, t_flag - t_stop, t_conv - t_back, h_now_ms() - t_back);
    assert_true(listed_at(F.b.addr, SVC_C, "127.0.0.1:9201"));
    ts_cancel(wa);
    ts_destroy(wa);
    tc_close(ca);
    tc_close(cb);

    /* Graceful leaves after the outage reach the other replica. */
    assert_int_equal(lookaside_reporter_stop(x, 3000), LOOKASIDE_OK);
    assert_int_equal(lookaside_reporter_stop(y, 3000), LOOKASIDE_OK);
    assert_int_equal(lookaside_reporter_stop(y2, 3000), LOOKASIDE_OK);
    assert_true(wait_listed(F.b.addr, SVC_C, "127.0.0.1:9201", false, 10000));
    assert_true(wait_listed(F.a.addr, SVC_C, "127.0.0.1:9202", false, 10000));
    lookaside_reporter_destroy(x);
    lookaside_reporter_destroy(y);
    lookaside_reporter_destroy(y2);
}

/* ---- a three-member etcd cluster ---- */

typedef struct cluster {
    char dir[256];
    proc m[3];
    char data[3][300], curl[3][64], purl[3][64];
    char eps[200];              /* "127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3" */
    char initial[400];
    proc r1, r2;
} cluster;

static cluster C;

/* Starts (or restarts, same ports and data) the members that are not
 * running and waits until each is ready. Members only become ready
 * together (quorum): start all, then wait. */
static int cluster_start(void)
{
    for (int i = 0; i < 3; i++) {
        if (C.m[i].pid > 0)
            continue;
        if (C.m[i].log[0]) {
            unlink(C.m[i].log);
            C.m[i].log[0] = '\0';
        }
        char name[8];
        snprintf(name, sizeof name, "m%d", i);
        const char *argv[] = {ETCD_BIN, "--name", name, "--data-dir", C.data[i],
                              "--listen-client-urls", C.curl[i], "--advertise-client-urls",
                              C.curl[i], "--listen-peer-urls", C.purl[i],
                              "--initial-advertise-peer-urls", C.purl[i], "--initial-cluster",
                              C.initial, "--initial-cluster-state", "new", NULL};
        if (h_spawn(&C.m[i], argv, NULL) != 0)
            return -1;
    }
    long long until = h_now_ms() + 20000;
    for (int i = 0; i < 3; i++)
        while (!h_log_has(&C.m[i], "ready to serve client requests")) {
            if (h_now_ms() > until) {
                h_log_dump(&C.m[i]);
                return -1;
            }
            h_sleep_ms(50);
        }
    return 0;
}

static int cluster_setup(void **state)
{
    (void)state;
    if (access(ETCD_BIN, X_OK) != 0)
        return 0;
    h_tmpdir(C.dir);
    size_t off = 0, ioff = 0;
    for (int i = 0; i < 3; i++) {
        int cp = free_port(), pp = free_port();
        snprintf(C.data[i], sizeof C.data[i], "%s/m%d", C.dir, i);
        snprintf(C.curl[i], sizeof C.curl[i], "http://127.0.0.1:%d", cp);
        snprintf(C.purl[i], sizeof C.purl[i], "http://127.0.0.1:%d", pp);
        off += (size_t)snprintf(C.eps + off, sizeof C.eps - off, "%s127.0.0.1:%d",
                                i ? "," : "", cp);
        ioff += (size_t)snprintf(C.initial + ioff, sizeof C.initial - ioff, "%sm%d=%s",
                                 i ? "," : "", i, C.purl[i]);
    }
    if (cluster_start() != 0)
        return -1;
    const char *extra[] = {"--etcd", C.eps, "--etcd-lease-ttl", LEASE_TTL, "--log-level", "debug", NULL};
    if (h_server_start(&C.r1, "/nonexistent/unused.db", extra) != 0 ||
        h_server_start(&C.r2, "/nonexistent/unused.db", extra) != 0)
        return -1;
    return 0;
}

static int cluster_teardown(void **state)
{
    (void)state;
    if (access(ETCD_BIN, X_OK) != 0)
        return 0;
    int rc = 0;
    if (C.r1.pid > 0 && h_server_teardown(&C.r1, NULL) != 0)
        rc = -1;
    if (C.r2.pid > 0 && h_server_teardown(&C.r2, NULL) != 0)
        rc = -1;
    for (int i = 0; i < 3; i++) {
        if (C.m[i].pid > 0)
            h_stop(&C.m[i]);
        unlink(C.m[i].log);
    }
    rm_tree(C.dir);
    return rc;
}

/* The index of the member etcdctl reports as leader, -1 if none. */
static int cluster_leader(void)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd,
             "ETCDCTL_API=3 etcdctl --endpoints %s --command-timeout=2s endpoint status "
             "2>/dev/null",
             C.eps);
    FILE *f = popen(cmd, "r");
    if (f == NULL)
        return -1;
    int leader = -1;
    char line[512];
    /* "127.0.0.1:P, ID, VERSION, DB SIZE, IS LEADER, ..." */
    while (fgets(line, sizeof line, f)) {
        char ep[64];
        const char *c1 = strchr(line, ',');
        if (c1 == NULL || (size_t)(c1 - line) >= sizeof ep)
            continue;
        memcpy(ep, line, (size_t)(c1 - line));
        ep[c1 - line] = '\0';
        const char *p = c1;
        for (int k = 0; k < 3 && p; k++)
            p = strchr(p + 1, ',');
        if (p == NULL || strncmp(p, ", true,", 7) != 0)
            continue;
        for (int i = 0; i < 3; i++)
            if (strcmp(C.curl[i] + strlen("http://"), ep) == 0)
                leader = i;
    }
    pclose(f);
    return leader;
}

/* SIGKILL the etcd leader: the replicas move to the surviving members (or
 * stay on a follower), keep what they list, and a registration after the
 * election still reaches the other replica. */
static void test_kill_etcd_leader(void **state)
{
    (void)state;
    NEED_ETCD();
    lookaside_reporter *x = reporter_at(C.r1.addr, SVC_A, "127.0.0.1:9301");
    assert_true(wait_listed(C.r2.addr, SVC_A, "127.0.0.1:9301", true, 10000));
    int leader = cluster_leader();
    assert_true(leader >= 0);
    h_kill(&C.m[leader]);
    long long t_kill = h_now_ms();
    lookaside_reporter *y = reporter_at(C.r2.addr, SVC_A, "127.0.0.1:9302");
    /* Bounded: an election takes about a second; writes are retried. */
    long long until = t_kill + 20000;
    bool seen = false;
    int checks = 0;
    while (!seen && h_now_ms() < until) {
        assert_true(listed_at(C.r1.addr, SVC_A, "127.0.0.1:9301"));
        assert_true(listed_at(C.r2.addr, SVC_A, "127.0.0.1:9301"));
        seen = listed_at(C.r1.addr, SVC_A, "127.0.0.1:9302");
        checks++;
        if (!seen)
            h_sleep_ms(50);
    }
    printf("FIGURE etcd leader (member %d) SIGKILLed: a registration at replica 2 reached "
           "replica 1 %lld ms after the kill (%d checks, both replicas listed the older "
           "backend at every check)\n",
           leader, h_now_ms() - t_kill, checks);
    assert_true(seen);
    /* Past the lease TTL: the leases survived the election (kept alive
     * through the new leader), nothing left the lists. */
    h_sleep_ms(4000);
    assert_true(listed_at(C.r1.addr, SVC_A, "127.0.0.1:9302"));
    assert_true(listed_at(C.r2.addr, SVC_A, "127.0.0.1:9301"));

    /* Then all of etcd stops for 10 s. Meanwhile a backend registers at
     * replica 1, replica 2's Admin drains a backend replica 1 owns and
     * replica 1's Admin overrides the weight of one replica 2 owns: all
     * acknowledged locally, none lost when etcd returns. */
    for (int i = 0; i < 3; i++)
        if (C.m[i].pid > 0)
            h_stop(&C.m[i]);
    long long t_stop = h_now_ms();
    lookaside_reporter *z = reporter_at(C.r1.addr, SVC_A, "127.0.0.1:9303");
    tclient *c2 = tc_connect(C.r2.addr);
    set_drain(c2, SVC_A, "127.0.0.1:9301", true);
    /* ... and replica 1's Admin overrides the weight of replica 2's backend. */
    tclient *c1o = tc_connect(C.r1.addr);
    g_want_weight = 4242;
    set_override(c1o, SVC_A, "127.0.0.1:9302", 4242);
    tc_close(c1o);
    checks = 0;
    while (h_now_ms() - t_stop < 10000) {
        assert_true(listed_at(C.r1.addr, SVC_A, "127.0.0.1:9301"));
        assert_true(listed_at(C.r1.addr, SVC_A, "127.0.0.1:9302"));
        assert_true(listed_at(C.r2.addr, SVC_A, "127.0.0.1:9301"));
        assert_true(listed_at(C.r2.addr, SVC_A, "127.0.0.1:9302"));
        checks++;
        h_sleep_ms(250);
    }
    long long t_back = h_now_ms();
    assert_int_equal(cluster_start(), 0);
    tclient *c1 = tc_connect(C.r1.addr);
    tstream *w1 = watch_open(c1, SVC_A);
    tstream *w2 = watch_open(c2, SVC_A);
    /* One list with everything taken during the outage, at each replica:
     * the registration, the drain (applied by its owner, replica 1) and the
     * override (applied by its owner, replica 2). */
    int got1 = watch_until(w1, outage_applied, NULL, 20000, NULL);
    int got2 = watch_until(w2, outage_applied, NULL, 20000, NULL);
    if (!got1 || !got2 || getenv("LOOKASIDE_TEST_DUMP")) {
        h_log_dump(&C.r1);
        h_log_dump(&C.r2);
    }
    assert_int_equal(got1, 1);
    assert_int_equal(got2, 1);
    printf("FIGURE all etcd members stopped %lld ms (%d checks: both replicas listed every "
           "backend); after etcd returned, the registration, the drain and the override taken "
           "during the outage were everywhere %lld ms later (etcd start-up included)\n",
           t_back - t_stop, checks, h_now_ms() - t_back);
    assert_true(listed_at(C.r1.addr, SVC_A, "127.0.0.1:9302"));
    assert_true(listed_at(C.r2.addr, SVC_A, "127.0.0.1:9301"));
    ts_cancel(w1);
    ts_destroy(w1);
    ts_cancel(w2);
    ts_destroy(w2);
    tc_close(c1);
    tc_close(c2);
    lookaside_reporter_destroy(z);
    assert_int_equal(lookaside_reporter_stop(x, 3000), LOOKASIDE_OK);
    assert_true(wait_listed(C.r2.addr, SVC_A, "127.0.0.1:9301", false, 10000));
    lookaside_reporter_destroy(x);
    lookaside_reporter_destroy(y);
}

/* The same failures under client load: two demo backends reporting to the
 * replicas, the demo client through liblookaside at 200 calls/s watching
 * both replicas while the etcd leader is SIGKILLed and then all of etcd is
 * stopped for 10 s and started again. No call may fail (the client exits
 * non-zero on any failed call), and both backends are listed at both
 * replicas afterwards. */
#ifdef LOOKASIDE_ETCD_LOAD
static void test_etcd_failures_under_load(void **state)
{
    (void)state;
    NEED_ETCD();
    static proc be[2], cl;   /* chaos_track keeps pointers to them */
    load_start(C.r1.addr, C.r2.addr, be, &cl, 20);
    h_sleep_ms(2000);
    int leader = cluster_leader();
    assert_true(leader >= 0);
    h_kill(&C.m[leader]);
    h_sleep_ms(3000);
    for (int i = 0; i < 3; i++)
        if (C.m[i].pid > 0)
            h_stop(&C.m[i]);
    h_sleep_ms(10000);
    assert_int_equal(cluster_start(), 0);
    int rc = load_end(be, &cl, 20, "etcd leader SIGKILLed, then all members stopped 10 s",
                      C.r1.addr, C.r2.addr);
    assert_int_equal(rc, 0);
}
#endif

/* etcd's current revision (every write adds one), -1 on failure. */
static long long etcd_revision(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd,
             "ETCDCTL_API=3 etcdctl --endpoints %s --command-timeout=2s get "
             "/lookaside/no-such-key -w json 2>/dev/null",
             F.ep);
    FILE *f = popen(cmd, "r");
    if (f == NULL)
        return -1;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    pclose(f);
    buf[n] = '\0';
    const char *p = strstr(buf, "\"revision\":");
    return p ? atoll(p + strlen("\"revision\":")) : -1;
}

/* Writes key = value[0..len) with etcdctl (value on stdin, so any byte
 * goes); 0 on success. key must not contain a single quote. */
static int etcdctl_put(const char *key, const void *value, size_t len)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd,
             "ETCDCTL_API=3 etcdctl --endpoints %s --command-timeout=2s put '%s' >/dev/null",
             F.ep, key);
    FILE *f = popen(cmd, "w");
    if (f == NULL)
        return -1;
    size_t n = fwrite(value, 1, len, f);
    int rc = pclose(f);
    return n == len && rc == 0 ? 0 : -1;
}

static int etcdctl_del(const char *key)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd,
             "ETCDCTL_API=3 etcdctl --endpoints %s --command-timeout=2s del '%s' >/dev/null",
             F.ep, key);
    return system(cmd) == 0 ? 0 : -1;
}

/* What etcd hands the replicas is hostile input too: junk keys and values
 * written by hand are logged and skipped, both replicas keep serving, and a
 * well-formed value written by another program (wire compatibility of
 * proto/lookaside/v1/replica.proto) is listed by both. */
static void test_hostile_etcd_content(void **state)
{
    (void)state;
    NEED_ETCD();
    /* ReplicaBackend{zone "z1", weight 500, owner "hand"} */
    static const uint8_t good[] = {0x0a, 2, 'z', '1', 0x10, 0xf4, 0x03, 0x2a, 4, 'h', 'a', 'n',
                                   'd'};
    static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0x07};
    /* zone "a\0b": a NUL inside a string */
    static const uint8_t nul_zone[] = {0x0a, 3, 'a', 0, 'b', 0x2a, 1, 'x'};
    /* weight_override 2,000,000 (over the cap) */
    static const uint8_t big_override[] = {0x20, 0x80, 0x89, 0x7a, 0x2a, 1, 'x'};
    /* zone of 100 letters (over 63) */
    uint8_t long_zone[2 + 100];
    long_zone[0] = 0x0a;
    long_zone[1] = 100;
    memset(long_zone + 2, 'z', 100);
    struct {
        const char *key;
        const void *v;
        size_t n;
    } junk[] = {
        {"/lookaside/backends/noaddress", good, sizeof good},
        {"/lookaside/backends/bad!name/127.0.0.1:9501", good, sizeof good},
        {"/lookaside/backends/hand/not-an-address", good, sizeof good},
        {"/lookaside/backends/hand/127.0.0.1:9502", garbage, sizeof garbage},
        {"/lookaside/backends/hand/127.0.0.1:9503", nul_zone, sizeof nul_zone},
        {"/lookaside/backends/hand/127.0.0.1:9504", big_override, sizeof big_override},
        {"/lookaside/backends/hand/127.0.0.1:9505", long_zone, sizeof long_zone},
        {"/lookaside/admin/hand/127.0.0.1:9506", garbage, sizeof garbage},
        {"/lookaside/somethingelse/x", good, sizeof good},
    };
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        assert_int_equal(etcdctl_put(junk[i].key, junk[i].v, junk[i].n), 0);
    assert_int_equal(etcdctl_put("/lookaside/backends/hand/127.0.0.1:9501", good, sizeof good),
                     0);
    assert_true(wait_listed(F.a.addr, "hand", "127.0.0.1:9501", true, 10000));
    assert_true(wait_listed(F.b.addr, "hand", "127.0.0.1:9501", true, 10000));
    for (int port = 9502; port <= 9505; port++) {
        char addr[32];
        snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
        assert_false(listed_at(F.a.addr, "hand", addr));
        assert_false(listed_at(F.b.addr, "hand", addr));
    }
    /* A delete by hand is a leave. */
    assert_int_equal(etcdctl_del("/lookaside/backends/hand/127.0.0.1:9501"), 0);
    assert_true(wait_listed(F.a.addr, "hand", "127.0.0.1:9501", false, 10000));
    assert_true(wait_listed(F.b.addr, "hand", "127.0.0.1:9501", false, 10000));
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        assert_int_equal(etcdctl_del(junk[i].key), 0);
}

/* TLS to etcd: an etcd that requires client certificates; replicas with
 * --etcd-ca/--etcd-cert/--etcd-key share a registration through it; one
 * without a client certificate is refused by etcd (and says so). */
static void test_tls_to_etcd(void **state)
{
    (void)state;
    NEED_ETCD();
    char certs[300], cmd[700];
    snprintf(certs, sizeof certs, "%s/certs", F.dir);
    snprintf(cmd, sizeof cmd, "sh %s/tests/security/gen_certs.sh %s", LOOKASIDE_SOURCE_DIR,
             certs);
    assert_int_equal(system(cmd), 0);
    char ca[350], crt[350], key[350], ccrt[350], ckey[350], data[350];
    snprintf(ca, sizeof ca, "%s/ca.crt", certs);
    snprintf(crt, sizeof crt, "%s/server.crt", certs);
    snprintf(key, sizeof key, "%s/server.key", certs);
    snprintf(ccrt, sizeof ccrt, "%s/client.crt", certs);
    snprintf(ckey, sizeof ckey, "%s/client.key", certs);
    snprintf(data, sizeof data, "%s/etcd-tls", F.dir);
    int cp = free_port(), pp = free_port();
    char curl[64], purl[64], initial[100], ep[64];
    snprintf(curl, sizeof curl, "https://127.0.0.1:%d", cp);
    snprintf(purl, sizeof purl, "http://127.0.0.1:%d", pp);
    snprintf(initial, sizeof initial, "default=%s", purl);
    snprintf(ep, sizeof ep, "127.0.0.1:%d", cp);
    const char *argv[] = {ETCD_BIN, "--name", "default", "--data-dir", data,
                          "--listen-client-urls", curl, "--advertise-client-urls", curl,
                          "--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
                          "--initial-cluster", initial, "--cert-file", crt, "--key-file", key,
                          "--trusted-ca-file", ca, "--client-cert-auth", NULL};
    static proc et;
    memset(&et, 0, sizeof et);
    track(&et);
    assert_int_equal(h_spawn(&et, argv, "ready to serve client requests"), 0);
    const char *tls[] = {"--etcd", ep, "--etcd-ca", ca, "--etcd-cert", ccrt, "--etcd-key", ckey,
                         NULL};
    const char *nocert[] = {"--etcd", ep, "--etcd-ca", ca, NULL};
    static proc t1, t2, t3;
    memset(&t1, 0, sizeof t1);
    memset(&t2, 0, sizeof t2);
    memset(&t3, 0, sizeof t3);
    track(&t1);
    track(&t2);
    track(&t3);
    assert_int_equal(h_server_start(&t1, "/nonexistent/unused.db", tls), 0);
    assert_int_equal(h_server_start(&t2, "/nonexistent/unused.db", tls), 0);
    assert_int_equal(h_server_start(&t3, "/nonexistent/unused.db", nocert), 0);
    lookaside_reporter *x = reporter_at(t1.addr, "tls", "127.0.0.1:9601");
    bool seen = wait_listed(t2.addr, "tls", "127.0.0.1:9601", true, 10000);
    bool refused = false;
    for (int i = 0; i < 100 && !refused; i++) {
        refused = h_log_has(&t3, "LeaseGrant failed");
        h_sleep_ms(50);
    }
    bool t3_lists = listed_at(t3.addr, "tls", "127.0.0.1:9601");
    lookaside_reporter_destroy(x);
    assert_int_equal(h_server_teardown(&t1, NULL), 0);
    assert_int_equal(h_server_teardown(&t2, NULL), 0);
    assert_int_equal(h_server_teardown(&t3, NULL), 0);
    h_stop(&et);
    unlink(et.log);
    assert_true(seen);
    assert_true(refused);
    assert_false(t3_lists);
}

/* ---- a TCP proxy between one replica and etcd, which the test can cut ---- */

#define PROXY_MAX 32

typedef struct tproxy {
    int lfd, port, target_port;
    int a[PROXY_MAX], b[PROXY_MAX];   /* client side, etcd side; -1 free */
    pthread_t th;
    atomic_bool stop, blocked;
} tproxy;

static void proxy_close_pair(tproxy *p, int i)
{
    close(p->a[i]);
    close(p->b[i]);
    p->a[i] = p->b[i] = -1;
}

static int connect_port(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
        return fd;
    if (fd >= 0)
        close(fd);
    return -1;
}

/* Forwards bytes both ways; while blocked, drops every connection and
 * refuses new ones (the replica sees etcd go away). Bounded: 50 ms polls
 * until stop. */
static void *proxy_run(void *arg)
{
    tproxy *p = arg;
    char buf[16384];
    while (!atomic_load(&p->stop)) {
        if (atomic_load(&p->blocked))
            for (int i = 0; i < PROXY_MAX; i++)
                if (p->a[i] >= 0)
                    proxy_close_pair(p, i);
        struct pollfd pf[1 + 2 * PROXY_MAX];
        int idx[1 + 2 * PROXY_MAX];
        int n = 0;
        pf[n] = (struct pollfd){.fd = p->lfd, .events = POLLIN};
        idx[n++] = -1;
        for (int i = 0; i < PROXY_MAX; i++)
            if (p->a[i] >= 0) {
                pf[n] = (struct pollfd){.fd = p->a[i], .events = POLLIN};
                idx[n++] = i;
                pf[n] = (struct pollfd){.fd = p->b[i], .events = POLLIN};
                idx[n++] = i;
            }
        if (poll(pf, (nfds_t)n, 50) <= 0)
            continue;
        if (pf[0].revents & POLLIN) {
            int c = accept(p->lfd, NULL, NULL);
            int slot = -1;
            for (int i = 0; i < PROXY_MAX && slot < 0; i++)
                if (p->a[i] < 0)
                    slot = i;
            int t = c >= 0 && slot >= 0 && !atomic_load(&p->blocked) ? connect_port(p->target_port)
                                                                     : -1;
            if (t < 0) {
                if (c >= 0)
                    close(c);
            } else {
                p->a[slot] = c;
                p->b[slot] = t;
            }
        }
        for (int k = 1; k < n; k++) {
            int i = idx[k];
            if (p->a[i] < 0 || !(pf[k].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            int from = pf[k].fd, to = from == p->a[i] ? p->b[i] : p->a[i];
            ssize_t r = read(from, buf, sizeof buf);
            if (r <= 0 || write(to, buf, (size_t)r) != r)
                proxy_close_pair(p, i);
        }
    }
    for (int i = 0; i < PROXY_MAX; i++)
        if (p->a[i] >= 0)
            proxy_close_pair(p, i);
    return NULL;
}

static int proxy_start(tproxy *p, int target_port)
{
    memset(p, 0, sizeof *p);
    for (int i = 0; i < PROXY_MAX; i++)
        p->a[i] = p->b[i] = -1;
    p->target_port = target_port;
    p->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if (p->lfd < 0 || bind(p->lfd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(p->lfd, 16) != 0 || getsockname(p->lfd, (struct sockaddr *)&sa, &len) != 0)
        return -1;
    p->port = ntohs(sa.sin_port);
    return pthread_create(&p->th, NULL, proxy_run, p) == 0 ? 0 : -1;
}

static void proxy_stop(tproxy *p)
{
    atomic_store(&p->stop, true);
    pthread_join(p->th, NULL);
    close(p->lfd);
}

/* A replica cut off from etcd while backends come and go and etcd compacts
 * its history: it serves its last state meanwhile; when it can reach etcd
 * again its watch cannot resume (the revision was compacted), so it lists
 * the prefix again and converges: the backend that left is dropped, the
 * new one is listed. */
static void test_watch_resume_after_compaction(void **state)
{
    (void)state;
    NEED_ETCD();
    tproxy px;
    assert_int_equal(proxy_start(&px, F.cport), 0);
    char ep[64];
    snprintf(ep, sizeof ep, "127.0.0.1:%d", px.port);
    const char *extra[] = {"--etcd", ep, "--etcd-lease-ttl", LEASE_TTL, NULL};
    static proc c;
    memset(&c, 0, sizeof c);
    track(&c);
    assert_int_equal(h_server_start(&c, "/nonexistent/unused.db", extra), 0);
    lookaside_reporter *p1 = reporter_at(F.a.addr, "compact", "127.0.0.1:9801");
    lookaside_reporter *p2 = reporter_at(F.a.addr, "compact", "127.0.0.1:9802");
    assert_true(wait_listed(c.addr, "compact", "127.0.0.1:9801", true, 10000));
    assert_true(wait_listed(c.addr, "compact", "127.0.0.1:9802", true, 10000));

    atomic_store(&px.blocked, true);
    assert_int_equal(lookaside_reporter_stop(p1, 3000), LOOKASIDE_OK);
    assert_true(wait_listed(F.b.addr, "compact", "127.0.0.1:9801", false, 10000));
    lookaside_reporter *p3 = reporter_at(F.a.addr, "compact", "127.0.0.1:9803");
    assert_true(wait_listed(F.b.addr, "compact", "127.0.0.1:9803", true, 10000));
    char cmd[200];
    snprintf(cmd, sizeof cmd,
             "ETCDCTL_API=3 etcdctl --endpoints %s --command-timeout=2s compact %lld "
             ">/dev/null",
             F.ep, etcd_revision());
    assert_int_equal(system(cmd), 0);
    /* Fail static while cut off: the departed backend is still listed. */
    assert_true(listed_at(c.addr, "compact", "127.0.0.1:9801"));
    assert_false(listed_at(c.addr, "compact", "127.0.0.1:9803"));

    atomic_store(&px.blocked, false);
    assert_true(wait_listed(c.addr, "compact", "127.0.0.1:9803", true, 15000));
    assert_true(wait_listed(c.addr, "compact", "127.0.0.1:9801", false, 15000));
    bool relisted = h_log_has(&c, "was compacted");
    assert_true(listed_at(c.addr, "compact", "127.0.0.1:9802"));
    assert_int_equal(h_server_teardown(&c, NULL), 0);
    proxy_stop(&px);
    assert_true(relisted);
    lookaside_reporter_destroy(p1);
    assert_int_equal(lookaside_reporter_stop(p2, 3000), LOOKASIDE_OK);
    assert_int_equal(lookaside_reporter_stop(p3, 3000), LOOKASIDE_OK);
    lookaside_reporter_destroy(p2);
    lookaside_reporter_destroy(p3);
}

/* The last lease replica p logged ("lease HEX granted"), 0 if none. */
static unsigned long long logged_lease(const proc *p)
{
    FILE *f = fopen(p->log, "r");
    unsigned long long id = 0;
    char line[1024];
    while (f && fgets(line, sizeof line, f)) {
        const char *s = strstr(line, "etcd: lease ");
        unsigned long long v;
        if (s && strstr(s, " granted") && sscanf(s, "etcd: lease %llx", &v) == 1)
            id = v;
    }
    if (f)
        fclose(f);
    return id;
}

/* Reconcile: someone revokes replica A's lease (etcd deletes every key of
 * A's). A notices, takes a new lease and puts what it holds again; B lists
 * A's backend again. */
static void test_lease_revoked_reconcile(void **state)
{
    (void)state;
    NEED_ETCD();
    lookaside_reporter *x = reporter_at(F.a.addr, "revoke", "127.0.0.1:9951");
    assert_true(wait_listed(F.b.addr, "revoke", "127.0.0.1:9951", true, 10000));
    unsigned long long lease = logged_lease(&F.a);
    assert_true(lease != 0);
    char cmd[200];
    snprintf(cmd, sizeof cmd,
             "ETCDCTL_API=3 etcdctl --endpoints %s --command-timeout=2s lease revoke %llx "
             ">/dev/null",
             F.ep, lease);
    long long t0 = h_now_ms();
    assert_int_equal(system(cmd), 0);
    /* B may drop it for a moment (one backend: the budget allows it);
     * then it is back, under a new lease of A's. */
    long long until = t0 + 15000;
    bool back = false;
    while (!back && h_now_ms() < until) {
        back = logged_lease(&F.a) != lease && listed_at(F.b.addr, "revoke", "127.0.0.1:9951");
        if (!back)
            h_sleep_ms(100);
    }
    printf("FIGURE replica A's lease revoked by hand: A took a new lease and B listed its "
           "backend again %lld ms later\n",
           h_now_ms() - t0);
    assert_true(back);
    assert_true(h_log_has(&F.a, "granting a new one"));
    assert_int_equal(lookaside_reporter_stop(x, 3000), LOOKASIDE_OK);
    lookaside_reporter_destroy(x);
    assert_true(wait_listed(F.b.addr, "revoke", "127.0.0.1:9951", false, 10000));
}

#define N_LOAD 20

/* Load reports are not etcd writes: 20 backends reporting every second at
 * A, with different steady loads, through slow start and after it. etcd
 * sees a backend's weight only when its published weight moves, at most
 * once per second per backend. */
static void test_weight_writes(void **state)
{
    (void)state;
    NEED_ETCD();
    lookaside_reporter *rep[N_LOAD];
    for (int i = 0; i < N_LOAD; i++) {
        char addr[32];
        snprintf(addr, sizeof addr, "127.0.0.1:%d", 9400 + i);
        rep[i] = reporter_at(F.a.addr, "load", addr);
        lookaside_load ld = {.cpu_utilization = 0.2 + 0.03 * i, .rps = 100 + 10 * i};
        lookaside_reporter_set_load(rep[i], &ld);
    }
    assert_true(wait_listed(F.b.addr, "load", "127.0.0.1:9419", true, 10000));
    uint64_t sent0 = 0, sent1 = 0, sent2 = 0;
    lookaside_reporter_info ri;
    long long r0 = etcd_revision();
    for (int i = 0; i < N_LOAD; i++) {
        lookaside_reporter_info_get(rep[i], &ri);
        sent0 += ri.loads_sent;
    }
    h_sleep_ms(12000);   /* slow start (10 s) and smoothing */
    long long r1 = etcd_revision();
    for (int i = 0; i < N_LOAD; i++) {
        lookaside_reporter_info_get(rep[i], &ri);
        sent1 += ri.loads_sent;
    }
    h_sleep_ms(5000);    /* steady */
    long long r2 = etcd_revision();
    for (int i = 0; i < N_LOAD; i++) {
        lookaside_reporter_info_get(rep[i], &ri);
        sent2 += ri.loads_sent;
    }
    assert_true(r0 > 0 && r1 >= r0 && r2 >= r1);
    printf("FIGURE %d backends reporting every second at A: during slow start %lld etcd writes "
           "for %llu load reports (%.1f %%); steady %lld writes for %llu reports (%.1f %%)\n",
           N_LOAD, r1 - r0, (unsigned long long)(sent1 - sent0),
           100.0 * (double)(r1 - r0) / (double)(sent1 - sent0 + !(sent1 - sent0)), r2 - r1,
           (unsigned long long)(sent2 - sent1),
           100.0 * (double)(r2 - r1) / (double)(sent2 - sent1 + !(sent2 - sent1)));
    /* The cap: at most one weight write per backend per second, whatever
     * the report rate; the window is 17 s. */
    assert_true(sent2 - sent0 > 0);
    assert_true(r2 - r0 <= (long long)N_LOAD * (17 + 1));
    for (int i = 0; i < N_LOAD; i++) {
        assert_int_equal(lookaside_reporter_stop(rep[i], 3000), LOOKASIDE_OK);
        lookaside_reporter_destroy(rep[i]);
    }
    assert_true(wait_listed(F.b.addr, "load", "127.0.0.1:9419", false, 10000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_and_drain_across_replicas),
        cmocka_unit_test(test_propagation_figures),
        cmocka_unit_test(test_kill_replica),
        cmocka_unit_test(test_versions_failover_race),
        cmocka_unit_test(test_lease_expiry_self_preservation),
#ifdef LOOKASIDE_ETCD_LOAD
        cmocka_unit_test(test_kill_replica_under_load),
#endif
        cmocka_unit_test(test_etcd_outage),
        cmocka_unit_test(test_weight_writes),
        cmocka_unit_test(test_hostile_etcd_content),
        cmocka_unit_test(test_watch_resume_after_compaction),
        cmocka_unit_test(test_lease_revoked_reconcile),
        cmocka_unit_test(test_tls_to_etcd),
    };
    const struct CMUnitTest cluster_tests[] = {
        cmocka_unit_test(test_kill_etcd_leader),
#ifdef LOOKASIDE_ETCD_LOAD
        cmocka_unit_test(test_etcd_failures_under_load),
#endif
    };
    /* LOOKASIDE_TEST_FILTER=test_kill_etcd_leader runs one test (debugging). */
    if (getenv("LOOKASIDE_TEST_FILTER"))
        cmocka_set_test_filter(getenv("LOOKASIDE_TEST_FILTER"));
    int failed = cmocka_run_group_tests_name("one etcd member", tests, group_setup,
                                             group_teardown);
    grpc_init();
    failed += cmocka_run_group_tests_name("three etcd members", cluster_tests, cluster_setup,
                                          cluster_teardown);
    grpc_shutdown();
    return failed;
}
