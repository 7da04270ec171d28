/* Integration tests: the real lookaside-server binary on 127.0.0.1, driven
 * through gRPC core. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "grpc/health/v1/health.pb-c.h"
#include "harness.h"
#include "lookaside/v1/lookaside.pb-c.h"

typedef Lookaside__V1__ServerList ServerList;

static char g_dir[256];
static char g_db[300];
static proc g_srv;
static tclient *g_c;

static int setup_server(void **state, const char *const *extra)
{
    (void)state;
    h_tmpdir(g_dir);
    snprintf(g_db, sizeof g_db, "%s/lb.db", g_dir);
    memset(&g_srv, 0, sizeof g_srv);
    if (h_server_start(&g_srv, g_db, extra) != 0)
        return -1;
    g_c = tc_connect(g_srv.addr);
    return 0;
}

static int setup(void **state)
{
    static const char *const extra[] = {"--report-interval-ms", "200", "--weight-period-ms", "200",
                                        NULL};
    return setup_server(state, extra);
}

static int setup_long_interval(void **state)
{
    static const char *const extra[] = {"--report-interval-ms", "30000", NULL};
    return setup_server(state, extra);
}

/* A second server a test starts (test_auth); teardown stops it by PID when
 * an assertion ended the test before the test's own h_stop. */
static proc g_srv2;

static int teardown(void **state)
{
    (void)state;
    tc_close(g_c);
    g_c = NULL;
    if (g_srv2.pid > 0)
        h_kill(&g_srv2);
    return h_server_teardown(&g_srv, g_dir);
}

/* ---- helpers ---- */

static tstream *reg_open(const char *svc, const char *addr, const char *zone)
{
    tstream *s = h_report_open(g_c, svc, addr, zone, NULL);
    assert_non_null(s);
    return s;
}

static Lookaside__V1__ReportAck *ack_recv(tstream *s)
{
    ProtobufCMessage *m = NULL;
    int rc = ts_recv(s, &lookaside__v1__report_ack__descriptor, &m, 5000);
    if (rc != 1)
        return NULL;
    return (Lookaside__V1__ReportAck *)m;
}

static int send_load(tstream *s, double cpu, double rps, double eps)
{
    Lookaside__V1__Load l = LOOKASIDE__V1__LOAD__INIT;
    l.cpu_utilization = cpu;
    l.rps_fractional = rps;
    l.eps = eps;
    Lookaside__V1__LoadReport m = LOOKASIDE__V1__LOAD_REPORT__INIT;
    m.kind_case = LOOKASIDE__V1__LOAD_REPORT__KIND_LOAD;
    m.load = &l;
    return ts_send(s, &m.base);
}

static int send_drain(tstream *s, bool draining)
{
    Lookaside__V1__Drain d = LOOKASIDE__V1__DRAIN__INIT;
    d.draining = draining;
    Lookaside__V1__LoadReport m = LOOKASIDE__V1__LOAD_REPORT__INIT;
    m.kind_case = LOOKASIDE__V1__LOAD_REPORT__KIND_DRAIN;
    m.drain = &d;
    return ts_send(s, &m.base);
}

static tstream *watch_open(const char *svc)
{
    Lookaside__V1__WatchRequest w = LOOKASIDE__V1__WATCH_REQUEST__INIT;
    w.service = (char *)svc;
    w.client_id = "test";
    return ts_open(g_c, "/lookaside.v1.Balancer/Watch", &w.base);
}

static ServerList *list_recv(tstream *s, int timeout_ms)
{
    ProtobufCMessage *m = NULL;
    if (ts_recv(s, &lookaside__v1__server_list__descriptor, &m, timeout_ms) != 1)
        return NULL;
    return (ServerList *)m;
}

/* Reads lists until pred holds (bounded by time); returns the list. */
static ServerList *list_until(tstream *s, bool (*pred)(const ServerList *, const void *),
                              const void *arg, int timeout_ms)
{
    long long until = h_now_ms() + timeout_ms;
    uint64_t last = 0;
    while (h_now_ms() < until) {
        ServerList *l = list_recv(s, (int)(until - h_now_ms()) + 1);
        if (l == NULL)
            return NULL;
        assert_true(l->version > last);   /* strictly increasing */
        last = l->version;
        if (pred(l, arg))
            return l;
        protobuf_c_message_free_unpacked(&l->base, NULL);
    }
    return NULL;
}

static const Lookaside__V1__Backend *find_be(const ServerList *l, const char *addr)
{
    for (size_t i = 0; i < l->n_backends; i++)
        if (strcmp(l->backends[i]->address, addr) == 0)
            return l->backends[i];
    return NULL;
}

static bool has_n(const ServerList *l, const void *arg) { return l->n_backends == *(const size_t *)arg; }

static bool be_draining(const ServerList *l, const void *arg)
{
    const Lookaside__V1__Backend *b = find_be(l, arg);
    return b && b->state == LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_DRAINING;
}

static bool be_serving(const ServerList *l, const void *arg)
{
    const Lookaside__V1__Backend *b = find_be(l, arg);
    return b && b->state == LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_SERVING && b->weight > 0;
}

static void free_list(ServerList *l)
{
    if (l)
        protobuf_c_message_free_unpacked(&l->base, NULL);
}

static grpc_status_code stream_status(tstream *s, char **det)
{
    grpc_status_code code = GRPC_STATUS_UNKNOWN;
    assert_int_equal(ts_status(s, 5000, &code, det), 0);
    return code;
}

static bool server_alive(void)
{
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    grpc_status_code code = tc_unary(g_c, "/grpc.health.v1.Health/Check", &req.base,
                                     &grpc__health__v1__health_check_response__descriptor, &resp,
                                     NULL, 5000);
    bool ok = code == GRPC_STATUS_OK && resp &&
              ((Grpc__Health__V1__HealthCheckResponse *)resp)->status ==
                  GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    return ok;
}

/* ---- tests ---- */

static void test_register_watch_drain_disconnect(void **state)
{
    (void)state;
    tstream *w = watch_open("web");
    ServerList *l = list_recv(w, 5000);
    assert_non_null(l);
    assert_int_equal(l->n_backends, 0);
    assert_int_equal(l->state, LOOKASIDE__V1__LIST_STATE__LIST_STATE_UNKNOWN_SERVICE);
    free_list(l);

    tstream *r1 = reg_open("web", "127.0.0.2:5000", "z1");
    Lookaside__V1__ReportAck *ack = ack_recv(r1);
    assert_non_null(ack);
    assert_int_equal(ack->report_interval_ms, 200);
    assert_int_equal(ack->accepted, 1);
    assert_true(strlen(ack->token) > 0 && strlen(ack->token) < 50);
    protobuf_c_message_free_unpacked(&ack->base, NULL);

    size_t one = 1, two = 2, zero = 0;
    l = list_until(w, has_n, &one, 3000);
    assert_non_null(l);
    assert_string_equal(l->backends[0]->address, "127.0.0.2:5000");
    assert_string_equal(l->backends[0]->zone, "z1");
    assert_int_equal(l->backends[0]->state, LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_SERVING);
    assert_int_equal(l->state, LOOKASIDE__V1__LIST_STATE__LIST_STATE_LIVE);
    assert_true(l->backends[0]->weight > 0);
    free_list(l);

    tstream *r2 = reg_open("web", "[::1]:5001", "z2");
    ack = ack_recv(r2);
    assert_non_null(ack);
    protobuf_c_message_free_unpacked(&ack->base, NULL);
    l = list_until(w, has_n, &two, 3000);
    assert_non_null(l);
    assert_non_null(find_be(l, "[::1]:5001"));
    free_list(l);

    /* Drain: the backend stays listed with weight 0. */
    assert_int_equal(send_drain(r1, true), 0);
    l = list_until(w, be_draining, "127.0.0.2:5000", 3000);
    assert_non_null(l);
    assert_int_equal(find_be(l, "127.0.0.2:5000")->weight, 0);
    free_list(l);
    /* Undrain. */
    assert_int_equal(send_drain(r1, false), 0);
    l = list_until(w, be_serving, "127.0.0.2:5000", 3000);
    assert_non_null(l);
    free_list(l);

    /* Disconnect (cancel) removes at once; half-close removes too. */
    ts_destroy(r2);
    l = list_until(w, has_n, &one, 3000);
    assert_non_null(l);
    assert_null(find_be(l, "[::1]:5001"));
    free_list(l);
    assert_int_equal(ts_close_send(r1), 0);
    l = list_until(w, has_n, &zero, 3000);
    assert_non_null(l);
    free_list(l);
    assert_int_equal(stream_status(r1, NULL), GRPC_STATUS_OK);
    ts_destroy(r1);
    ts_destroy(w);
}

static void test_eviction(void **state)
{
    (void)state;
    tstream *w = watch_open("evict");
    free_list(list_recv(w, 5000));
    tstream *r = reg_open("evict", "127.0.0.3:80", "");
    Lookaside__V1__ReportAck *ack = ack_recv(r);
    assert_non_null(ack);
    protobuf_c_message_free_unpacked(&ack->base, NULL);
    size_t one = 1, zero = 0;
    ServerList *l = list_until(w, has_n, &one, 3000);
    assert_non_null(l);
    free_list(l);
    long long t0 = h_now_ms();
    /* Report interval 200 ms, 3 intervals: evicted after ~600 ms of silence. */
    l = list_until(w, has_n, &zero, 5000);
    assert_non_null(l);
    free_list(l);
    assert_true(h_now_ms() - t0 >= 400);
    char *det = NULL;
    assert_int_equal(stream_status(r, &det), GRPC_STATUS_DEADLINE_EXCEEDED);
    assert_non_null(strstr(det, "no report"));
    free(det);
    ts_destroy(r);
    ts_destroy(w);
}

static void test_reports_keep_alive_and_weights(void **state)
{
    (void)state;
    tstream *w = watch_open("wt");
    free_list(list_recv(w, 5000));
    tstream *a = reg_open("wt", "127.0.0.2:1", "");
    tstream *b = reg_open("wt", "127.0.0.3:1", "");
    Lookaside__V1__ReportAck *ack = ack_recv(a);
    protobuf_c_message_free_unpacked(&ack->base, NULL);
    ack = ack_recv(b);
    protobuf_c_message_free_unpacked(&ack->base, NULL);
    /* a: 100 rps at 25 % CPU, b: 100 rps at 100 % CPU -> a should get ~4x b
     * (within the clamp band) once slow start and smoothing settle. Report
     * for 3 s (beyond the 600 ms eviction window). */
    ServerList *last = NULL;
    for (int i = 0; i < 60; i++) {
        assert_int_equal(send_load(a, 0.25, 100, 0), 0);
        assert_int_equal(send_load(b, 1.0, 100, 0), 0);
        Lookaside__V1__ReportAck *x = ack_recv(a);
        assert_non_null(x);
        protobuf_c_message_free_unpacked(&x->base, NULL);
        x = ack_recv(b);
        assert_non_null(x);
        protobuf_c_message_free_unpacked(&x->base, NULL);
        ServerList *l;
        while ((l = list_recv(w, 1)) != NULL) {
            free_list(last);
            last = l;
        }
        h_sleep_ms(50);
    }
    assert_non_null(last);
    assert_int_equal(last->n_backends, 2);
    const Lookaside__V1__Backend *ba = find_be(last, "127.0.0.2:1");
    const Lookaside__V1__Backend *bb = find_be(last, "127.0.0.3:1");
    assert_non_null(ba);
    assert_non_null(bb);
    double ratio = (double)ba->weight / (double)bb->weight;
    fprintf(stderr, "weights a=%u b=%u ratio %.2f\n", ba->weight, bb->weight, ratio);
    assert_true(ratio > 2.0 && ratio < 6.0);
    free_list(last);
    ts_destroy(a);
    ts_destroy(b);
    ts_destroy(w);
}

static void test_same_address_reconnect(void **state)
{
    (void)state;
    tstream *w = watch_open("re");
    free_list(list_recv(w, 5000));
    tstream *r1 = reg_open("re", "127.0.0.2:9", "");
    Lookaside__V1__ReportAck *ack = ack_recv(r1);
    assert_non_null(ack);
    char token[64];
    snprintf(token, sizeof token, "%s", ack->token);
    protobuf_c_message_free_unpacked(&ack->base, NULL);
    tstream *r2 = reg_open("re", "127.0.0.2:9", "");
    ack = ack_recv(r2);
    assert_non_null(ack);
    assert_string_equal(ack->token, token);   /* the same backend */
    protobuf_c_message_free_unpacked(&ack->base, NULL);
    assert_int_equal(stream_status(r1, NULL), GRPC_STATUS_ABORTED);
    ts_destroy(r1);
    /* The old stream ending must not remove the backend. */
    h_sleep_ms(100);
    Lookaside__V1__WatchRequest req = LOOKASIDE__V1__WATCH_REQUEST__INIT;
    req.service = "re";
    ProtobufCMessage *resp = NULL;
    assert_int_equal(tc_unary(g_c, "/lookaside.v1.Balancer/GetServerList", &req.base,
                              &lookaside__v1__server_list__descriptor, &resp, NULL, 5000),
                     GRPC_STATUS_OK);
    assert_int_equal(((ServerList *)resp)->n_backends, 1);
    protobuf_c_message_free_unpacked(resp, NULL);
    ts_destroy(r2);
    ts_destroy(w);
}

static void expect_register_refused(const char *svc, const char *addr, const char *zone,
                                    grpc_status_code want, const char *field)
{
    tstream *r = reg_open(svc, addr, zone);
    char *det = NULL;
    grpc_status_code code = stream_status(r, &det);
    if (code != want || (field && strstr(det, field) == NULL))
        fprintf(stderr, "register(%s, %s, %s): got %d '%s'\n", svc, addr, zone, code, det);
    assert_int_equal(code, want);
    if (field)
        assert_non_null(strstr(det, field));
    free(det);
    ts_destroy(r);
}

static void test_bad_registrations(void **state)
{
    (void)state;
    char big[400];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    expect_register_refused("", "127.0.0.2:1", "", GRPC_STATUS_INVALID_ARGUMENT, "service");
    expect_register_refused(big, "127.0.0.2:1", "", GRPC_STATUS_INVALID_ARGUMENT, "service");
    expect_register_refused("we b", "127.0.0.2:1", "", GRPC_STATUS_INVALID_ARGUMENT, "service");
    expect_register_refused("x'; DROP TABLE backends;--", "127.0.0.2:1", "",
                            GRPC_STATUS_INVALID_ARGUMENT, "service");
    expect_register_refused("web", "127.0.0.2:0", "", GRPC_STATUS_INVALID_ARGUMENT, "address");
    expect_register_refused("web", "127.0.0.2:65536", "", GRPC_STATUS_INVALID_ARGUMENT, "address");
    expect_register_refused("web", "localhost:80", "", GRPC_STATUS_INVALID_ARGUMENT, "address");
    expect_register_refused("web", "127.0.0.2", "", GRPC_STATUS_INVALID_ARGUMENT, "address");
    expect_register_refused("web", "127.0.0.2:1", "bad zone", GRPC_STATUS_INVALID_ARGUMENT, "zone");

    /* Load before register; NaN, negative and infinite numbers. */
    tstream *r = ts_open(g_c, "/lookaside.v1.LoadReporter/Report", NULL);
    assert_int_equal(send_load(r, 0.5, 10, 0), 0);
    assert_int_equal(stream_status(r, NULL), GRPC_STATUS_FAILED_PRECONDITION);
    ts_destroy(r);
    double bad[][3] = {{NAN, 1, 0}, {0.5, -1, 0}, {0.5, 1, INFINITY}, {1e300, 1, 0}};
    for (size_t i = 0; i < 4; i++) {
        r = reg_open("web", "127.0.0.2:1", "");
        Lookaside__V1__ReportAck *ack = ack_recv(r);
        assert_non_null(ack);
        protobuf_c_message_free_unpacked(&ack->base, NULL);
        assert_int_equal(send_load(r, bad[i][0], bad[i][1], bad[i][2]), 0);
        char *det = NULL;
        assert_int_equal(stream_status(r, &det), GRPC_STATUS_INVALID_ARGUMENT);
        assert_non_null(strstr(det, "load."));
        free(det);
        ts_destroy(r);
    }
    /* Empty LoadReport, and register twice. */
    r = ts_open(g_c, "/lookaside.v1.LoadReporter/Report", NULL);
    Lookaside__V1__LoadReport empty = LOOKASIDE__V1__LOAD_REPORT__INIT;
    assert_int_equal(ts_send(r, &empty.base), 0);
    assert_int_equal(stream_status(r, NULL), GRPC_STATUS_INVALID_ARGUMENT);
    ts_destroy(r);
    assert_true(server_alive());
}

static void test_garbage_and_oversize(void **state)
{
    (void)state;
    static const char *methods[] = {
        "/lookaside.v1.Balancer/GetServerList", "/lookaside.v1.Admin/ListServices",
        "/lookaside.v1.Admin/DescribeService", "/lookaside.v1.Admin/SetDrain",
        "/lookaside.v1.Admin/SetWeightOverride", "/grpc.health.v1.Health/Check"};
    const unsigned char garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x99, 0x01};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        char *det = NULL;
        grpc_status_code code = tc_unary_raw(g_c, methods[i], garbage, sizeof garbage, &det, 5000);
        if (code != GRPC_STATUS_INVALID_ARGUMENT)
            fprintf(stderr, "%s: %d %s\n", methods[i], code, det);
        assert_int_equal(code, GRPC_STATUS_INVALID_ARGUMENT);
        free(det);
    }
    /* Garbage on the streams. */
    tstream *r = ts_open(g_c, "/lookaside.v1.LoadReporter/Report", NULL);
    assert_int_equal(ts_send_raw(r, garbage, sizeof garbage), 0);
    assert_int_equal(stream_status(r, NULL), GRPC_STATUS_INVALID_ARGUMENT);
    ts_destroy(r);
    /* An oversize report: over the 4 KiB cap. */
    r = reg_open("web", "127.0.0.2:1", "");
    Lookaside__V1__ReportAck *ack = ack_recv(r);
    assert_non_null(ack);
    protobuf_c_message_free_unpacked(&ack->base, NULL);
    char *blob = malloc(8000);
    memset(blob, 'x', 7999);
    blob[7999] = '\0';
    Lookaside__V1__Register reg = LOOKASIDE__V1__REGISTER__INIT;
    reg.service = blob;
    Lookaside__V1__LoadReport m = LOOKASIDE__V1__LOAD_REPORT__INIT;
    m.kind_case = LOOKASIDE__V1__LOAD_REPORT__KIND_REGISTER;
    m.register_ = &reg;
    assert_int_equal(ts_send(r, &m.base), 0);
    char *d2 = NULL;
    grpc_status_code c2 = stream_status(r, &d2);
    if (c2 != GRPC_STATUS_RESOURCE_EXHAUSTED)
        fprintf(stderr, "oversize report: %d %s\n", c2, d2);
    free(d2);
    assert_int_equal(c2, GRPC_STATUS_RESOURCE_EXHAUSTED);
    ts_destroy(r);
    /* A 1 MiB request is over the transport cap. */
    char *huge = malloc(1 << 20);
    memset(huge, 0x0a, 1 << 20);
    char *det = NULL;
    grpc_status_code code =
        tc_unary_raw(g_c, "/lookaside.v1.Balancer/GetServerList", huge, 1 << 20, &det, 5000);
    assert_int_equal(code, GRPC_STATUS_RESOURCE_EXHAUSTED);
    free(det);
    free(huge);
    free(blob);
    /* Unknown method. */
    code = tc_unary_raw(g_c, "/lookaside.v1.Nope/Nope", garbage, 1, NULL, 5000);
    assert_int_equal(code, GRPC_STATUS_UNIMPLEMENTED);
    assert_true(server_alive());
}

static void test_unknown_service_appears(void **state)
{
    (void)state;
    tstream *w = watch_open("later");
    ServerList *l = list_recv(w, 5000);
    assert_non_null(l);
    assert_int_equal(l->state, LOOKASIDE__V1__LIST_STATE__LIST_STATE_UNKNOWN_SERVICE);
    free_list(l);
    /* Nothing more while nothing changes (no periodic resend). */
    assert_null(list_recv(w, 300));
    tstream *r = reg_open("later", "127.0.0.4:7", "");
    size_t one = 1;
    l = list_until(w, has_n, &one, 3000);
    assert_non_null(l);
    assert_int_equal(l->state, LOOKASIDE__V1__LIST_STATE__LIST_STATE_LIVE);
    free_list(l);
    ts_destroy(r);
    ts_destroy(w);
    /* Bad watch names are refused. */
    w = watch_open("no spaces");
    assert_int_equal(stream_status(w, NULL), GRPC_STATUS_INVALID_ARGUMENT);
    ts_destroy(w);
}

static int setup_heartbeat(void **state)
{
    static const char *const extra[] = {"--heartbeat-ms", "300", NULL};
    return setup_server(state, extra);
}

/* A quiet service: a watcher that accepts heartbeats hears one every
 * heartbeat period (same version, no backends); one that does not hears
 * nothing. GetServerList and Watch agree on an unknown name (version 1),
 * whatever its case. */
static void test_heartbeat(void **state)
{
    (void)state;
    Lookaside__V1__WatchRequest wr = LOOKASIDE__V1__WATCH_REQUEST__INIT;
    wr.service = "Quiet.Svc";
    wr.accepts_heartbeat = true;
    tstream *hb = ts_open(g_c, "/lookaside.v1.Balancer/Watch", &wr.base);
    tstream *old = watch_open("quiet.svc");
    ServerList *first = list_recv(hb, 5000);
    assert_non_null(first);
    assert_false(first->heartbeat);
    assert_string_equal(first->service, "quiet.svc");
    assert_int_equal(first->version, 1);
    free_list(list_recv(old, 5000));
    ProtobufCMessage *m = NULL;
    assert_int_equal(tc_unary(g_c, "/lookaside.v1.Balancer/GetServerList", &wr.base,
                              &lookaside__v1__server_list__descriptor, &m, NULL, 5000),
                     GRPC_STATUS_OK);
    assert_int_equal(((ServerList *)m)->version, 1);
    protobuf_c_message_free_unpacked(m, NULL);
    int beats = 0;
    long long until = h_now_ms() + 5000;
    while (beats < 3 && h_now_ms() < until) {
        ServerList *l = list_recv(hb, 1000);
        if (l == NULL)
            continue;
        assert_true(l->heartbeat);
        assert_int_equal(l->version, 1);
        assert_int_equal(l->n_backends, 0);
        assert_int_equal(l->valid_for_ms, first->valid_for_ms);
        beats++;
        free_list(l);
    }
    assert_int_equal(beats, 3);
    assert_null(list_recv(old, 300));   /* never to a watcher that did not ask */
    free_list(first);
    ts_destroy(hb);
    ts_destroy(old);
}

static int setup_few_services(void **state)
{
    static const char *const extra[] = {"--max-services", "4", NULL};
    return setup_server(state, extra);
}

/* Junk cannot lock new services out: names only watched take no slot, and
 * services registered then emptied give their slots up when needed -- also
 * after a restart, where the junk is stored. */
static void test_junk_services_do_not_lock_out(void **state)
{
    (void)state;
    tstream *watchers[4];
    char name[32];
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "made-up-%d", i);
        watchers[i] = watch_open(name);
        free_list(list_recv(watchers[i], 5000));
    }
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 12; i++) {
            snprintf(name, sizeof name, "junk-%d-%d", round, i);
            tstream *r = reg_open(name, "127.0.0.2:9", "");
            Lookaside__V1__ReportAck *ack = ack_recv(r);
            assert_non_null(ack);   /* accepted: an emptied service gave its slot */
            protobuf_c_message_free_unpacked(&ack->base, NULL);
            ts_destroy(r);   /* the stream ends: the service is empty again */
        }
        if (round == 0) {   /* the junk is stored: restart and go again */
            tc_close(g_c);
            assert_int_equal(h_stop(&g_srv), 0);
            static const char *const extra[] = {"--max-services", "4", NULL};
            assert_int_equal(h_server_start(&g_srv, g_db, extra), 0);
            g_c = tc_connect(g_srv.addr);
            for (int i = 0; i < 4; i++)
                ts_destroy(watchers[i]);
            for (int i = 0; i < 4; i++) {
                snprintf(name, sizeof name, "made-up-%d", i);
                watchers[i] = watch_open(name);
                free_list(list_recv(watchers[i], 5000));
            }
        }
    }
    tstream *real = reg_open("real", "127.0.0.3:9", "");
    Lookaside__V1__ReportAck *ack = ack_recv(real);
    assert_non_null(ack);
    protobuf_c_message_free_unpacked(&ack->base, NULL);
    ts_destroy(real);
    for (int i = 0; i < 4; i++)
        ts_destroy(watchers[i]);
}

static void test_health_and_admin(void **state)
{
    (void)state;
    assert_true(server_alive());
    Grpc__Health__V1__HealthCheckRequest hreq = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    hreq.service = "adm";
    assert_int_equal(tc_unary(g_c, "/grpc.health.v1.Health/Check", &hreq.base, NULL, NULL, NULL,
                              5000),
                     GRPC_STATUS_NOT_FOUND);
    tstream *hw = ts_open(g_c, "/grpc.health.v1.Health/Watch", &hreq.base);
    ProtobufCMessage *m = NULL;
    assert_int_equal(ts_recv(hw, &grpc__health__v1__health_check_response__descriptor, &m, 5000), 1);
    assert_int_equal(((Grpc__Health__V1__HealthCheckResponse *)m)->status,
                     GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN);
    protobuf_c_message_free_unpacked(m, NULL);

    tstream *r = reg_open("adm", "127.0.0.2:8080", "zz");
    Lookaside__V1__ReportAck *ack = ack_recv(r);
    assert_non_null(ack);
    protobuf_c_message_free_unpacked(&ack->base, NULL);
    assert_int_equal(ts_recv(hw, &grpc__health__v1__health_check_response__descriptor, &m, 5000), 1);
    assert_int_equal(((Grpc__Health__V1__HealthCheckResponse *)m)->status,
                     GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
    protobuf_c_message_free_unpacked(m, NULL);

    Lookaside__V1__ListServicesRequest lreq = LOOKASIDE__V1__LIST_SERVICES_REQUEST__INIT;
    assert_int_equal(tc_unary(g_c, "/lookaside.v1.Admin/ListServices", &lreq.base,
                              &lookaside__v1__list_services_response__descriptor, &m, NULL, 5000),
                     GRPC_STATUS_OK);
    Lookaside__V1__ListServicesResponse *ls = (Lookaside__V1__ListServicesResponse *)m;
    bool found = false;
    for (size_t i = 0; i < ls->n_services; i++)
        if (strcmp(ls->services[i]->name, "adm") == 0) {
            found = true;
            assert_int_equal(ls->services[i]->backends, 1);
        }
    assert_true(found);
    protobuf_c_message_free_unpacked(m, NULL);

    /* Drain through admin: health turns NOT_SERVING (no backend with weight). */
    Lookaside__V1__SetDrainRequest dreq = LOOKASIDE__V1__SET_DRAIN_REQUEST__INIT;
    dreq.service = "adm";
    dreq.address = "127.0.0.2:8080";
    dreq.draining = true;
    assert_int_equal(tc_unary(g_c, "/lookaside.v1.Admin/SetDrain", &dreq.base,
                              &lookaside__v1__set_drain_response__descriptor, &m, NULL, 5000),
                     GRPC_STATUS_OK);
    assert_int_equal(((Lookaside__V1__SetDrainResponse *)m)->state,
                     LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_DRAINING);
    protobuf_c_message_free_unpacked(m, NULL);
    assert_int_equal(ts_recv(hw, &grpc__health__v1__health_check_response__descriptor, &m, 5000), 1);
    assert_int_equal(((Grpc__Health__V1__HealthCheckResponse *)m)->status,
                     GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING);
    protobuf_c_message_free_unpacked(m, NULL);

    Lookaside__V1__DescribeServiceRequest dsr = LOOKASIDE__V1__DESCRIBE_SERVICE_REQUEST__INIT;
    dsr.service = "adm";
    assert_int_equal(tc_unary(g_c, "/lookaside.v1.Admin/DescribeService", &dsr.base,
                              &lookaside__v1__describe_service_response__descriptor, &m, NULL,
                              5000),
                     GRPC_STATUS_OK);
    Lookaside__V1__DescribeServiceResponse *ds = (Lookaside__V1__DescribeServiceResponse *)m;
    assert_int_equal(ds->n_backends, 1);
    assert_string_equal(ds->backends[0]->backend->zone, "zz");
    assert_int_equal(ds->backends[0]->backend->state,
                     LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_DRAINING);
    /* Registered, no Load yet: no report age and no load (proto). */
    assert_int_equal(ds->backends[0]->last_report_age_ms, -1);
    assert_null(ds->backends[0]->last_load);
    assert_non_null(ds->backends[0]->explanation);
    assert_true(strlen(ds->backends[0]->explanation->text) > 0);
    assert_string_equal(ds->policy, "a58");
    protobuf_c_message_free_unpacked(m, NULL);

    /* Admin errors. */
    dreq.address = "127.0.0.9:1";
    assert_int_equal(tc_unary(g_c, "/lookaside.v1.Admin/SetDrain", &dreq.base, NULL, NULL, NULL, 5000),
                     GRPC_STATUS_NOT_FOUND);
    dreq.address = "nonsense";
    assert_int_equal(tc_unary(g_c, "/lookaside.v1.Admin/SetDrain", &dreq.base, NULL, NULL, NULL, 5000),
                     GRPC_STATUS_INVALID_ARGUMENT);
    dsr.service = "nope";
    assert_int_equal(tc_unary(g_c, "/lookaside.v1.Admin/DescribeService", &dsr.base, NULL, NULL,
                              NULL, 5000),
                     GRPC_STATUS_NOT_FOUND);
    Lookaside__V1__SetWeightOverrideRequest ow = LOOKASIDE__V1__SET_WEIGHT_OVERRIDE_REQUEST__INIT;
    ow.service = "adm";
    ow.address = "127.0.0.2:8080";
    ow.weight = 2000000;
    assert_int_equal(tc_unary(g_c, "/lookaside.v1.Admin/SetWeightOverride", &ow.base, NULL, NULL,
                              NULL, 5000),
                     GRPC_STATUS_INVALID_ARGUMENT);
    ow.weight = 5000;
    assert_int_equal(tc_unary(g_c, "/lookaside.v1.Admin/SetWeightOverride", &ow.base, NULL, NULL,
                              NULL, 5000),
                     GRPC_STATUS_OK);
    ts_destroy(r);
    ts_destroy(hw);
}

static void test_restart_restores(void **state)
{
    (void)state;
    tstream *a = reg_open("rs", "127.0.0.2:10", "z");
    tstream *b = reg_open("rs", "127.0.0.3:10", "z");
    Lookaside__V1__ReportAck *ack = ack_recv(a);
    protobuf_c_message_free_unpacked(&ack->base, NULL);
    ack = ack_recv(b);
    protobuf_c_message_free_unpacked(&ack->base, NULL);
    tstream *w = watch_open("rs");
    size_t two = 2;
    ServerList *l = list_until(w, has_n, &two, 3000);
    assert_non_null(l);
    uint64_t v_before = l->version;
    free_list(l);
    ts_destroy(w);
    /* Stop the server while both streams are live. */
    tc_close(g_c);
    assert_int_equal(h_stop(&g_srv), 0);
    ts_destroy(a);
    ts_destroy(b);
    static const char *const extra[] = {"--report-interval-ms", "300", "--restore-grace-ms",
                                        "1000", NULL};
    assert_int_equal(h_server_start(&g_srv, g_db, extra), 0);
    g_c = tc_connect(g_srv.addr);
    long long t0 = h_now_ms();
    w = watch_open("rs");
    l = list_recv(w, 5000);
    assert_non_null(l);
    fprintf(stderr, "restored list served %lld ms after start\n", h_now_ms() - t0);
    assert_int_equal(l->n_backends, 2);
    if (l->state != LOOKASIDE__V1__LIST_STATE__LIST_STATE_RESTORED)
        fprintf(stderr, "restored: list state %d backend state %d\n", l->state, l->backends[0]->state);
    assert_int_equal(l->state, LOOKASIDE__V1__LIST_STATE__LIST_STATE_RESTORED);
    assert_int_equal(l->backends[0]->state, LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_RESTORED);
    assert_true(l->version > v_before);
    free_list(l);
    /* One re-registers; the other is dropped after the restore grace. */
    a = reg_open("rs", "127.0.0.2:10", "z");
    ack = ack_recv(a);
    protobuf_c_message_free_unpacked(&ack->base, NULL);
    size_t one = 1;
    long long until = h_now_ms() + 5000;
    ServerList *fin = NULL;
    while (h_now_ms() < until) {
        assert_int_equal(send_load(a, 0.5, 10, 0), 0);
        ack = ack_recv(a);
        assert_non_null(ack);
        protobuf_c_message_free_unpacked(&ack->base, NULL);
        while ((l = list_recv(w, 50)) != NULL) {
            free_list(fin);
            fin = l;
        }
        if (fin && has_n(fin, &one))
            break;
    }
    assert_non_null(fin);
    assert_int_equal(fin->n_backends, 1);
    assert_string_equal(fin->backends[0]->address, "127.0.0.2:10");
    assert_int_equal(fin->backends[0]->state, LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_SERVING);
    assert_int_equal(fin->state, LOOKASIDE__V1__LIST_STATE__LIST_STATE_LIVE);
    free_list(fin);
    ts_destroy(a);
    ts_destroy(w);
}

static void test_shutdown_ends_streams(void **state)
{
    (void)state;
    tstream *w = watch_open("sd");
    free_list(list_recv(w, 5000));
    tstream *r = reg_open("sd", "127.0.0.2:1", "");
    Lookaside__V1__ReportAck *ack = ack_recv(r);
    protobuf_c_message_free_unpacked(&ack->base, NULL);
    tc_close(g_c);
    g_c = NULL;
    assert_int_equal(h_stop(&g_srv), 0);
    assert_int_equal(stream_status(w, NULL), GRPC_STATUS_UNAVAILABLE);
    assert_int_equal(stream_status(r, NULL), GRPC_STATUS_UNAVAILABLE);
    ts_destroy(w);
    ts_destroy(r);
    /* teardown stops it again: start a fresh one to keep teardown uniform. */
    static const char *const extra[] = {NULL};
    assert_int_equal(h_server_start(&g_srv, g_db, extra), 0);
    g_c = tc_connect(g_srv.addr);
}

static void test_auth(void **state)
{
    (void)state;
    /* A server with a token file of its own. */
    char path[300];
    snprintf(path, sizeof path, "%s/tokens", g_dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "# service credential\nsecure s3cret\nother 0th3r\n");
    fclose(f);
    proc *p2 = &g_srv2;
    memset(p2, 0, sizeof *p2);
    char db2[300];
    snprintf(db2, sizeof db2, "%s/auth.db", g_dir);
    const char *extra[] = {"--report-token-file", path, NULL};
    assert_int_equal(h_server_start(p2, db2, extra), 0);
    tclient *c = tc_connect(p2->addr);
    /* Missing or unknown credential: no identity (UNAUTHENTICATED); one that
     * is valid for another service: PERMISSION_DENIED (README "Security"). */
    const char *creds[] = {"", "wrong", "0th3r", "s3cret"};
    grpc_status_code want[] = {GRPC_STATUS_UNAUTHENTICATED, GRPC_STATUS_UNAUTHENTICATED,
                               GRPC_STATUS_PERMISSION_DENIED, GRPC_STATUS_OK};
    for (int i = 0; i < 4; i++) {
        tstream *s = h_report_open(c, "secure", "127.0.0.2:1", NULL, creds[i]);
        assert_non_null(s);
        if (want[i] == GRPC_STATUS_OK) {
            Lookaside__V1__ReportAck *ack = ack_recv(s);
            assert_non_null(ack);
            protobuf_c_message_free_unpacked(&ack->base, NULL);
        } else {
            assert_int_equal(stream_status(s, NULL), want[i]);
        }
        ts_destroy(s);
    }
    tc_close(c);
    assert_int_equal(h_stop(p2), 0);
    assert_true(h_log_has(p2, "no identity"));
    assert_true(h_log_has(p2, "identity token:report-credential:other lacks report:secure"));
    assert_false(h_log_has(p2, "0th3r"));
    unlink(p2->log);
}


/* A watcher that does not read while the list changes many times gets the
 * latest list when it does read, not a backlog: at most one send is in
 * flight per watcher and each send carries the newest version. */
static void test_slow_watcher_coalesced(void **state)
{
    (void)state;
    enum { NB = 200, FLIPS = 60 };
    tstream *reps[NB];
    char addr[NB][32];
    for (int i = 0; i < NB; i++) {
        snprintf(addr[i], sizeof addr[i], "127.0.%d.%d:%d", 1 + i / 200, 1 + i % 200, 20000 + i);
        /* Long zone strings make each list ~20 KB so the HTTP/2 window fills. */
        reps[i] = reg_open("co", addr[i], "zone-with-a-long-name-to-make-lists-bigger-0123456789");
        Lookaside__V1__ReportAck *ack = ack_recv(reps[i]);
        assert_non_null(ack);
        protobuf_c_message_free_unpacked(&ack->base, NULL);
    }
    tclient *slow = tc_connect_slow_reader(g_srv.addr);
    Lookaside__V1__WatchRequest wr = LOOKASIDE__V1__WATCH_REQUEST__INIT;
    wr.service = "co";
    tstream *w = ts_open(slow, "/lookaside.v1.Balancer/Watch", &wr.base);
    /* Let the first list arrive, then stop reading. */
    ServerList *l = list_recv(w, 5000);
    assert_non_null(l);
    free_list(l);
    for (int k = 0; k < FLIPS; k++) {
        Lookaside__V1__SetDrainRequest d = LOOKASIDE__V1__SET_DRAIN_REQUEST__INIT;
        d.service = "co";
        d.address = addr[k % NB];
        d.draining = true;
        assert_int_equal(tc_unary(g_c, "/lookaside.v1.Admin/SetDrain", &d.base, NULL, NULL, NULL,
                                  5000),
                         GRPC_STATUS_OK);
        h_sleep_ms(10);   /* past the 5 ms coalescing window: every drain publishes */
    }
    Lookaside__V1__WatchRequest req = LOOKASIDE__V1__WATCH_REQUEST__INIT;
    req.service = "co";
    ProtobufCMessage *cur = NULL;
    assert_int_equal(tc_unary(g_c, "/lookaside.v1.Balancer/GetServerList", &req.base,
                              &lookaside__v1__server_list__descriptor, &cur, NULL, 5000),
                     GRPC_STATUS_OK);
    uint64_t latest = ((ServerList *)cur)->version;
    protobuf_c_message_free_unpacked(cur, NULL);
    /* Now read everything that is queued. */
    int msgs = 0;
    uint64_t last = 0;
    while ((l = list_recv(w, 500)) != NULL && msgs < 1000) {
        assert_true(l->version > last);
        last = l->version;
        msgs++;
        free_list(l);
    }
    fprintf(stderr, "slow watcher: %d lists for %d changes; last version %llu, latest %llu\n",
            msgs, FLIPS, (unsigned long long)last, (unsigned long long)latest);
    /* It ends with the latest (a weight round may have published after the
     * GetServerList), never a backlog of every change. */
    assert_true(last >= latest);
    assert_true(msgs < FLIPS);
    ts_destroy(w);
    tc_close(slow);
    for (int i = 0; i < NB; i++)
        ts_destroy(reps[i]);
}

int main(void)
{
    grpc_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_register_watch_drain_disconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eviction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reports_keep_alive_and_weights, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_address_reconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_registrations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_and_oversize, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_service_appears, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health_and_admin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat, setup_heartbeat, teardown),
        cmocka_unit_test_setup_teardown(test_junk_services_do_not_lock_out, setup_few_services,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_restart_restores, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_ends_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_watcher_coalesced, setup_long_interval, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    grpc_shutdown();
    return rc;
}
