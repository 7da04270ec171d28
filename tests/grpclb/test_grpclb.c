/* grpc.lb.v1.LoadBalancer/BalanceLoad against the real lookaside-server:
 * the protocol as a stock grpclb client sees it, the server lists it builds
 * from the registry (shares, tokens, drops, pushes), and every kind of bad
 * input (which must end only the offending stream, with INVALID_ARGUMENT). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "grpc/lb/v1/load_balancer.pb-c.h"
#include "harness.h"
#include "lookaside/v1/lookaside.pb-c.h"

typedef Grpc__Lb__V1__LoadBalanceResponse LbResp;

#define BALANCE "/grpc.lb.v1.LoadBalancer/BalanceLoad"

static char g_dir[256];
static char g_db[300];
static proc g_srv;
static tclient *g_c;

static int setup(void **state)
{
    (void)state;
    /* Reports are registered once and never repeated: a long interval keeps
     * the backends from being evicted. "equal" + overrides gives exact
     * weights (no slow start, no smoothing). */
    static const char *const extra[] = {"--report-interval-ms", "60000", "--policy", "equal",
                                        "--grpclb-stats-ms", "1500", "--grpclb-max-entries",
                                        "100", NULL};
    h_tmpdir(g_dir);
    snprintf(g_db, sizeof g_db, "%s/lb.db", g_dir);
    memset(&g_srv, 0, sizeof g_srv);
    if (h_server_start(&g_srv, g_db, extra) != 0)
        return -1;
    g_c = tc_connect(g_srv.addr);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tc_close(g_c);
    g_c = NULL;
    return h_server_teardown(&g_srv, g_dir);
}

/* ---- helpers ---- */

static tstream *reg_open(const char *svc, const char *addr, char *token_out)
{
    tstream *s = h_report_registered(g_c, svc, addr, NULL, token_out);
    assert_non_null(s);
    return s;
}

static void admin_call(const char *method, const ProtobufCMessage *req)
{
    char *det = NULL;
    grpc_status_code code = tc_unary(g_c, method, req, NULL, NULL, &det, 5000);
    if (code != GRPC_STATUS_OK)
        fprintf(stderr, "%s: %d %s\n", method, (int)code, det ? det : "");
    free(det);
    assert_int_equal(code, GRPC_STATUS_OK);
}

static void set_weight(const char *svc, const char *addr, uint32_t w)
{
    Lookaside__V1__SetWeightOverrideRequest r = LOOKASIDE__V1__SET_WEIGHT_OVERRIDE_REQUEST__INIT;
    r.service = (char *)svc;
    r.address = (char *)addr;
    r.weight = w;
    admin_call("/lookaside.v1.Admin/SetWeightOverride", &r.base);
}

static void set_drain(const char *svc, const char *addr, bool draining)
{
    Lookaside__V1__SetDrainRequest r = LOOKASIDE__V1__SET_DRAIN_REQUEST__INIT;
    r.service = (char *)svc;
    r.address = (char *)addr;
    r.draining = draining;
    admin_call("/lookaside.v1.Admin/SetDrain", &r.base);
}

static tstream *lb_open(void) { return ts_open(g_c, BALANCE, NULL); }

static void send_initial(tstream *s, const char *name)
{
    Grpc__Lb__V1__InitialLoadBalanceRequest ir = GRPC__LB__V1__INITIAL_LOAD_BALANCE_REQUEST__INIT;
    ir.name = (char *)name;
    Grpc__Lb__V1__LoadBalanceRequest m = GRPC__LB__V1__LOAD_BALANCE_REQUEST__INIT;
    m.load_balance_request_type_case =
        GRPC__LB__V1__LOAD_BALANCE_REQUEST__LOAD_BALANCE_REQUEST_TYPE_INITIAL_REQUEST;
    m.initial_request = &ir;
    assert_int_equal(ts_send(s, &m.base), 0);
}

static int send_stats(tstream *s, const Grpc__Lb__V1__ClientStats *cs)
{
    Grpc__Lb__V1__LoadBalanceRequest m = GRPC__LB__V1__LOAD_BALANCE_REQUEST__INIT;
    m.load_balance_request_type_case =
        GRPC__LB__V1__LOAD_BALANCE_REQUEST__LOAD_BALANCE_REQUEST_TYPE_CLIENT_STATS;
    m.client_stats = (Grpc__Lb__V1__ClientStats *)cs;
    return ts_send(s, &m.base);
}

static LbResp *resp_recv(tstream *s, int timeout_ms)
{
    ProtobufCMessage *m = NULL;
    if (ts_recv(s, &grpc__lb__v1__load_balance_response__descriptor, &m, timeout_ms) != 1)
        return NULL;
    return (LbResp *)m;
}

static void resp_free(LbResp *r)
{
    if (r)
        protobuf_c_message_free_unpacked(&r->base, NULL);
}

/* Opens a stream for name and checks the initial_response. */
static tstream *lb_start(const char *name)
{
    tstream *s = lb_open();
    send_initial(s, name);
    LbResp *r = resp_recv(s, 5000);
    assert_non_null(r);
    assert_int_equal(
        r->load_balance_response_type_case,
        GRPC__LB__V1__LOAD_BALANCE_RESPONSE__LOAD_BALANCE_RESPONSE_TYPE_INITIAL_RESPONSE);
    assert_non_null(r->initial_response->client_stats_report_interval);
    assert_int_equal(r->initial_response->client_stats_report_interval->seconds, 1);
    assert_int_equal(r->initial_response->client_stats_report_interval->nanos, 500000000);
    resp_free(r);
    return s;
}

static Grpc__Lb__V1__ServerList *list_of(LbResp *r)
{
    assert_non_null(r);
    assert_int_equal(r->load_balance_response_type_case,
                     GRPC__LB__V1__LOAD_BALANCE_RESPONSE__LOAD_BALANCE_RESPONSE_TYPE_SERVER_LIST);
    assert_true(r->server_list->n_servers > 0);   /* never empty */
    return r->server_list;
}

/* Entries naming ip:port (IPv4 text). */
static size_t count_entries(const Grpc__Lb__V1__ServerList *l, const char *ip, int port)
{
    uint8_t want[4];
    assert_int_equal(inet_pton(AF_INET, ip, want), 1);
    size_t n = 0;
    for (size_t i = 0; i < l->n_servers; i++) {
        const Grpc__Lb__V1__Server *e = l->servers[i];
        if (!e->drop && e->ip_address.len == 4 && memcmp(e->ip_address.data, want, 4) == 0 &&
            e->port == port)
            n++;
    }
    return n;
}

static bool is_drop_only(const Grpc__Lb__V1__ServerList *l)
{
    for (size_t i = 0; i < l->n_servers; i++)
        if (!l->servers[i]->drop)
            return false;
    return true;
}

/* Reads lists until pred holds or timeout_ms passes; returns it or NULL. */
static LbResp *list_until(tstream *s, bool (*pred)(const Grpc__Lb__V1__ServerList *),
                          int timeout_ms)
{
    long long until = h_now_ms() + timeout_ms;
    while (h_now_ms() < until) {
        LbResp *r = resp_recv(s, (int)(until - h_now_ms()) + 1);
        if (r == NULL)
            return NULL;
        if (pred(list_of(r)))
            return r;
        resp_free(r);
    }
    return NULL;
}

static grpc_status_code final_status(tstream *s, char **det)
{
    grpc_status_code code = GRPC_STATUS_UNKNOWN;
    assert_int_equal(ts_status(s, 5000, &code, det), 0);
    return code;
}

static void expect_invalid(tstream *s, const char *detail_has)
{
    char *det = NULL;
    assert_int_equal(final_status(s, &det), GRPC_STATUS_INVALID_ARGUMENT);
    if (detail_has) {
        if (det == NULL || strstr(det, detail_has) == NULL)
            fprintf(stderr, "details: %s (want %s)\n", det ? det : "(none)", detail_has);
        assert_non_null(det);
        assert_non_null(strstr(det, detail_has));
    }
    free(det);
    ts_destroy(s);
}

static void describe(const char *svc, Lookaside__V1__DescribeServiceResponse **out)
{
    Lookaside__V1__DescribeServiceRequest r = LOOKASIDE__V1__DESCRIBE_SERVICE_REQUEST__INIT;
    r.service = (char *)svc;
    ProtobufCMessage *m = NULL;
    assert_int_equal(tc_unary(g_c, "/lookaside.v1.Admin/DescribeService", &r.base,
                              &lookaside__v1__describe_service_response__descriptor, &m, NULL,
                              5000),
                     GRPC_STATUS_OK);
    *out = (Lookaside__V1__DescribeServiceResponse *)m;
}

static bool server_healthy(void)
{
    /* Any unary call that succeeds shows the server survived. */
    Lookaside__V1__ListServicesRequest r = LOOKASIDE__V1__LIST_SERVICES_REQUEST__INIT;
    return tc_unary(g_c, "/lookaside.v1.Admin/ListServices", &r.base, NULL, NULL, NULL, 5000) ==
           GRPC_STATUS_OK;
}

/* ---- tests: the list ---- */

static void test_weighted_list_tokens_and_port_name(void **state)
{
    (void)state;
    char t1[50], t2[50], t3[50];
    tstream *r1 = reg_open("web", "127.0.0.2:7001", t1);
    tstream *r2 = reg_open("web", "127.0.0.3:7002", t2);
    tstream *r3 = reg_open("web", "127.0.0.4:7003", t3);
    set_weight("web", "127.0.0.2:7001", 1000);
    set_weight("web", "127.0.0.3:7002", 2000);
    set_weight("web", "127.0.0.4:7003", 3000);
    h_sleep_ms(100);

    /* The name carries the port, as stock clients send it. */
    tstream *s = lb_start("web:443");
    LbResp *r = resp_recv(s, 5000);
    Grpc__Lb__V1__ServerList *l = list_of(r);
    /* 1000:2000:3000 reduces to 1:2:3: six entries. */
    assert_int_equal(l->n_servers, 6);
    assert_int_equal(count_entries(l, "127.0.0.2", 7001), 1);
    assert_int_equal(count_entries(l, "127.0.0.3", 7002), 2);
    assert_int_equal(count_entries(l, "127.0.0.4", 7003), 3);
    for (size_t i = 0; i < l->n_servers; i++) {
        const Grpc__Lb__V1__Server *e = l->servers[i];
        const char *want = e->port == 7001 ? t1 : e->port == 7002 ? t2 : t3;
        assert_false(e->drop);
        assert_string_equal(e->load_balance_token, want);
        assert_true(strlen(e->load_balance_token) < 50);
        for (const char *p = e->load_balance_token; *p; p++)
            assert_true(*p > 0x20 && *p < 0x7f);
    }
    /* Interleaved: the heaviest backend never takes three slots in a row. */
    for (size_t i = 0; i + 2 < l->n_servers; i++)
        assert_false(l->servers[i]->port == 7003 && l->servers[i + 1]->port == 7003 &&
                     l->servers[i + 2]->port == 7003);
    resp_free(r);

    /* Weights that do not reduce: apportioned over at most 100 entries
     * (--grpclb-max-entries 100), shares within a few per cent. */
    set_weight("web", "127.0.0.2:7001", 1009);
    set_weight("web", "127.0.0.3:7002", 2003);
    set_weight("web", "127.0.0.4:7003", 2999);
    long long until = h_now_ms() + 3000;
    bool seen = false;
    while (!seen && h_now_ms() < until) {
        r = resp_recv(s, 3000);
        l = list_of(r);
        size_t a = count_entries(l, "127.0.0.2", 7001), b = count_entries(l, "127.0.0.3", 7002),
               c = count_entries(l, "127.0.0.4", 7003);
        if (l->n_servers > 6) {
            seen = true;
            assert_true(l->n_servers <= 100);
            assert_int_equal(a + b + c, l->n_servers);
            double tot = 1009 + 2003 + 2999, n = (double)l->n_servers;
            assert_true(fabs(a / n - 1009 / tot) / (1009 / tot) < 0.05);
            assert_true(fabs(b / n - 2003 / tot) / (2003 / tot) < 0.05);
            assert_true(fabs(c / n - 2999 / tot) / (2999 / tot) < 0.05);
        }
        resp_free(r);
    }
    assert_true(seen);
    ts_destroy(s);
    ts_destroy(r1);
    ts_destroy(r2);
    ts_destroy(r3);
}

static bool lacks_7001(const Grpc__Lb__V1__ServerList *l)
{
    return !is_drop_only(l) && count_entries(l, "127.0.0.2", 7001) == 0;
}
static bool has_7001(const Grpc__Lb__V1__ServerList *l)
{
    return count_entries(l, "127.0.0.2", 7001) > 0;
}
static bool drop_only(const Grpc__Lb__V1__ServerList *l) { return is_drop_only(l); }

static void test_pushes_drain_and_drop(void **state)
{
    (void)state;
    tstream *r1 = reg_open("api", "127.0.0.2:7001", NULL);
    tstream *r2 = reg_open("api", "127.0.0.3:7002", NULL);
    h_sleep_ms(50);
    tstream *s = lb_start("api");
    tstream *s2 = lb_start("api:8080");   /* a second client shares the list */
    LbResp *r = list_until(s, has_7001, 3000);
    assert_non_null(r);
    assert_int_equal(list_of(r)->n_servers, 2);
    resp_free(r);
    resp_free(list_until(s2, has_7001, 3000));

    long long t0 = h_now_ms();
    set_drain("api", "127.0.0.2:7001", true);
    r = list_until(s, lacks_7001, 3000);
    assert_non_null(r);
    long long dt = h_now_ms() - t0;
    /* The bounded wait above is the check; the time is a figure (7-30 ms
     * measured), never a timed assertion that a loaded CI box could trip. */
    fprintf(stderr, "grpclb: drain reached the stream in %lld ms\n", dt);
    assert_int_equal(count_entries(list_of(r), "127.0.0.3", 7002), list_of(r)->n_servers);
    resp_free(r);
    r = list_until(s2, lacks_7001, 3000);
    assert_non_null(r);
    resp_free(r);

    /* Nothing can serve: one drop entry, never an empty list. */
    set_drain("api", "127.0.0.3:7002", true);
    r = list_until(s, drop_only, 3000);
    assert_non_null(r);
    Grpc__Lb__V1__ServerList *l = list_of(r);
    assert_int_equal(l->n_servers, 1);
    assert_true(l->servers[0]->drop);
    assert_true(strlen(l->servers[0]->load_balance_token) > 0 &&
                strlen(l->servers[0]->load_balance_token) < 50);
    resp_free(r);

    /* One client leaving does not disturb the other. */
    ts_destroy(s2);
    set_drain("api", "127.0.0.2:7001", false);
    r = list_until(s, has_7001, 3000);
    assert_non_null(r);
    resp_free(r);

    /* The last backend going away leaves a drop entry too. */
    set_drain("api", "127.0.0.3:7002", false);
    ts_destroy(r1);
    ts_destroy(r2);
    r = list_until(s, drop_only, 3000);
    assert_non_null(r);
    resp_free(r);
    ts_destroy(s);
}

static uint64_t svc_version(const char *svc)
{
    Lookaside__V1__DescribeServiceResponse *d = NULL;
    describe(svc, &d);
    uint64_t v = d->version;
    protobuf_c_message_free_unpacked(&d->base, NULL);
    return v;
}

static bool only_7002(const Grpc__Lb__V1__ServerList *l)
{
    return count_entries(l, "127.0.0.3", 7002) == l->n_servers;
}

static void test_unchanged_list_not_resent(void **state)
{
    (void)state;
    tstream *r1 = reg_open("quiet", "127.0.0.2:7001", NULL);
    tstream *r2 = reg_open("quiet", "127.0.0.3:7002", NULL);
    h_sleep_ms(50);
    tstream *s = lb_start("quiet");
    LbResp *r = resp_recv(s, 3000);
    assert_int_equal(list_of(r)->n_servers, 2);
    resp_free(r);
    set_drain("quiet", "127.0.0.2:7001", true);
    r = list_until(s, only_7002, 3000);
    assert_non_null(r);
    resp_free(r);
    /* The draining backend leaves: a new registry version, but the grpclb
     * list (which already left it out) is the same, so nothing is sent. */
    uint64_t v0 = svc_version("quiet");
    ts_destroy(r1);
    long long until = h_now_ms() + 3000;
    while (svc_version("quiet") == v0 && h_now_ms() < until)
        h_sleep_ms(20);
    assert_true(svc_version("quiet") > v0);
    r = resp_recv(s, 700);
    if (r)
        fprintf(stderr, "unexpected list of %zu entries\n", list_of(r)->n_servers);
    assert_null(r);
    ts_destroy(s);
    ts_destroy(r2);
}

static bool has_any(const Grpc__Lb__V1__ServerList *l) { return !is_drop_only(l); }

static void test_unknown_service_waits_then_ipv6(void **state)
{
    (void)state;
    tstream *s = lb_start("later.example");
    /* Unknown: the stream stays open and sends nothing. */
    assert_null(resp_recv(s, 500));
    tstream *r1 = reg_open("later.example", "[::1]:7005", NULL);
    LbResp *r = list_until(s, has_any, 3000);
    assert_non_null(r);
    Grpc__Lb__V1__ServerList *l = list_of(r);
    assert_int_equal(l->n_servers, 1);
    assert_int_equal(l->servers[0]->ip_address.len, 16);
    uint8_t v6[16];
    assert_int_equal(inet_pton(AF_INET6, "::1", v6), 1);
    assert_memory_equal(l->servers[0]->ip_address.data, v6, 16);
    assert_int_equal(l->servers[0]->port, 7005);
    resp_free(r);
    ts_destroy(s);
    ts_destroy(r1);

    /* A name only ever asked for through grpclb leaves no service behind. */
    tstream *s2 = lb_start("ghost.example");
    ts_destroy(s2);
    h_sleep_ms(200);
    Lookaside__V1__DescribeServiceRequest dr = LOOKASIDE__V1__DESCRIBE_SERVICE_REQUEST__INIT;
    dr.service = "ghost.example";
    assert_int_equal(tc_unary(g_c, "/lookaside.v1.Admin/DescribeService", &dr.base, NULL, NULL,
                              NULL, 5000),
                     GRPC_STATUS_NOT_FOUND);
}

/* ---- tests: client stats ---- */

static void test_client_stats_recorded(void **state)
{
    (void)state;
    tstream *r1 = reg_open("stats", "127.0.0.2:7001", NULL);
    tstream *s = lb_start("stats:80");
    resp_free(resp_recv(s, 3000));
    Grpc__Lb__V1__ClientStatsPerToken d1 = GRPC__LB__V1__CLIENT_STATS_PER_TOKEN__INIT;
    d1.load_balance_token = "lookaside-no-backend";
    d1.num_calls = 3;
    Grpc__Lb__V1__ClientStatsPerToken *drops[1] = {&d1};
    Grpc__Lb__V1__ClientStats cs = GRPC__LB__V1__CLIENT_STATS__INIT;
    cs.num_calls_started = 10;
    cs.num_calls_finished = 9;
    cs.num_calls_finished_with_client_failed_to_send = 1;
    cs.num_calls_finished_known_received = 5;
    cs.n_calls_finished_with_drop = 1;
    cs.calls_finished_with_drop = drops;
    assert_int_equal(send_stats(s, &cs), 0);
    assert_int_equal(send_stats(s, &cs), 0);
    /* Counts at the cap are accepted (and saturate rather than wrap). */
    Grpc__Lb__V1__ClientStats big = GRPC__LB__V1__CLIENT_STATS__INIT;
    big.num_calls_started = (int64_t)1 << 40;
    assert_int_equal(send_stats(s, &big), 0);

    Lookaside__V1__DescribeServiceResponse *d = NULL;
    long long until = h_now_ms() + 10000;
    for (;;) {
        describe("stats", &d);
        /* Wait for all three messages: the third (big) may still be in
         * flight when the first two are counted. */
        if (d->grpclb && d->grpclb->calls_dropped == 6 &&
            d->grpclb->calls_started == 20 + ((int64_t)1 << 40))
            break;
        protobuf_c_message_free_unpacked(&d->base, NULL);
        d = NULL;
        assert_true(h_now_ms() < until);
        h_sleep_ms(50);
    }
    assert_int_equal(d->grpclb->calls_started, 20 + ((int64_t)1 << 40));
    assert_int_equal(d->grpclb->calls_finished, 18);
    assert_int_equal(d->grpclb->calls_failed_to_send, 2);
    assert_int_equal(d->grpclb->calls_known_received, 10);
    protobuf_c_message_free_unpacked(&d->base, NULL);
    /* The stream is still alive: it gets the next list. */
    set_drain("stats", "127.0.0.2:7001", true);
    LbResp *r = list_until(s, drop_only, 3000);
    assert_non_null(r);
    resp_free(r);
    ts_destroy(s);
    ts_destroy(r1);
}

/* ---- tests: bad input ---- */

static void test_garbage(void **state)
{
    (void)state;
    tstream *s = lb_open();
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x80};
    assert_int_equal(ts_send_raw(s, junk, sizeof junk), 0);
    expect_invalid(s, "undecodable");

    /* Garbage after a good start ends that stream only. */
    s = lb_start("web");
    assert_int_equal(ts_send_raw(s, junk, sizeof junk), 0);
    expect_invalid(s, "undecodable");
    assert_true(server_healthy());
}

static void test_stats_before_initial(void **state)
{
    (void)state;
    tstream *s = lb_open();
    Grpc__Lb__V1__ClientStats cs = GRPC__LB__V1__CLIENT_STATS__INIT;
    cs.num_calls_started = 1;
    assert_int_equal(send_stats(s, &cs), 0);
    expect_invalid(s, "initial_request");

    /* An empty request (no oneof set) is not an initial_request either. */
    s = lb_open();
    Grpc__Lb__V1__LoadBalanceRequest empty = GRPC__LB__V1__LOAD_BALANCE_REQUEST__INIT;
    assert_int_equal(ts_send(s, &empty.base), 0);
    expect_invalid(s, "initial_request");

    /* Half-close before saying anything. */
    s = lb_open();
    assert_int_equal(ts_close_send(s), 0);
    expect_invalid(s, "initial_request");

    /* A second initial_request. */
    s = lb_start("web");
    send_initial(s, "web");
    expect_invalid(s, "twice");
}

static void test_bad_names(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "bad name",
        "-leading-dash",
        "web:",
        "web:0",
        "web:99999",
        "web:12ab",
        ":443",
        "web:443:443",
        "[::1]:443",
        "a..b",
        "web/../etc",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.example",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tstream *s = lb_open();
        send_initial(s, bad[i]);
        char *det = NULL;
        grpc_status_code code = final_status(s, &det);
        if (code != GRPC_STATUS_INVALID_ARGUMENT)
            fprintf(stderr, "name \"%s\": status %d (%s)\n", bad[i], (int)code, det ? det : "");
        assert_int_equal(code, GRPC_STATUS_INVALID_ARGUMENT);
        assert_non_null(det);
        assert_non_null(strstr(det, "initial_request.name"));
        free(det);
        ts_destroy(s);
    }
    /* A 300-byte name. */
    char longname[301];
    memset(longname, 'a', 300);
    longname[300] = '\0';
    tstream *s = lb_open();
    send_initial(s, longname);
    expect_invalid(s, "initial_request.name");
    assert_true(server_healthy());
}

static void test_bad_stats(void **state)
{
    (void)state;
    tstream *rb = reg_open("web", "127.0.0.2:7001", NULL);
    Grpc__Lb__V1__ClientStatsPerToken tok = GRPC__LB__V1__CLIENT_STATS_PER_TOKEN__INIT;
    Grpc__Lb__V1__ClientStatsPerToken *toks[1] = {&tok};

    for (int field = 0; field < 4; field++) {
        tstream *s = lb_start("web");
        Grpc__Lb__V1__ClientStats cs = GRPC__LB__V1__CLIENT_STATS__INIT;
        int64_t *f[] = {&cs.num_calls_started, &cs.num_calls_finished,
                        &cs.num_calls_finished_with_client_failed_to_send,
                        &cs.num_calls_finished_known_received};
        *f[field] = field % 2 ? INT64_MIN : -1;
        assert_int_equal(send_stats(s, &cs), 0);
        expect_invalid(s, "client_stats.num_calls");
    }
    /* Over the per-message cap (2^40). */
    tstream *s = lb_start("web");
    Grpc__Lb__V1__ClientStats cs = GRPC__LB__V1__CLIENT_STATS__INIT;
    cs.num_calls_finished = INT64_MAX;
    assert_int_equal(send_stats(s, &cs), 0);
    expect_invalid(s, "client_stats.num_calls_finished");

    /* Negative drop count. */
    s = lb_start("web");
    Grpc__Lb__V1__ClientStats c2 = GRPC__LB__V1__CLIENT_STATS__INIT;
    tok.load_balance_token = "lookaside-no-backend";
    tok.num_calls = -5;
    c2.n_calls_finished_with_drop = 1;
    c2.calls_finished_with_drop = toks;
    assert_int_equal(send_stats(s, &c2), 0);
    expect_invalid(s, "calls_finished_with_drop.num_calls");

    /* A 50-byte token. */
    char fifty[51];
    memset(fifty, 't', 50);
    fifty[50] = '\0';
    s = lb_start("web");
    tok.load_balance_token = fifty;
    tok.num_calls = 1;
    assert_int_equal(send_stats(s, &c2), 0);
    expect_invalid(s, "load_balance_token");

    /* Too many per-token entries. */
    s = lb_start("web");
    size_t n = 1001;
    Grpc__Lb__V1__ClientStatsPerToken **many = calloc(n, sizeof *many);
    tok.load_balance_token = "t";
    for (size_t i = 0; i < n; i++)
        many[i] = &tok;
    Grpc__Lb__V1__ClientStats c3 = GRPC__LB__V1__CLIENT_STATS__INIT;
    c3.n_calls_finished_with_drop = n;
    c3.calls_finished_with_drop = many;
    assert_int_equal(send_stats(s, &c3), 0);
    expect_invalid(s, "more than 1000");
    free(many);

    /* Nothing bad was counted. */
    Lookaside__V1__DescribeServiceResponse *d = NULL;
    describe("web", &d);
    assert_non_null(d->grpclb);
    assert_int_equal(d->grpclb->calls_started, 0);
    assert_int_equal(d->grpclb->calls_finished, 0);
    assert_int_equal(d->grpclb->calls_dropped, 0);
    protobuf_c_message_free_unpacked(&d->base, NULL);
    assert_true(server_healthy());
    ts_destroy(rb);
}

static void test_many_streams_then_shutdown(void **state)
{
    (void)state;
    tstream *r1 = reg_open("fan", "127.0.0.2:7001", NULL);
    enum { N = 40 };
    tstream *s[N];
    for (int i = 0; i < N; i++)
        s[i] = lb_start(i % 2 ? "fan" : "fan:1");
    for (int i = 0; i < N; i++) {
        LbResp *r = resp_recv(s[i], 3000);
        assert_int_equal(count_entries(list_of(r), "127.0.0.2", 7001), 1);
        resp_free(r);
    }
    set_drain("fan", "127.0.0.2:7001", true);
    for (int i = 0; i < N; i++) {
        LbResp *r = list_until(s[i], drop_only, 3000);
        assert_non_null(r);
        resp_free(r);
    }
    /* Half the clients go away, the server stops with the rest still open:
     * teardown checks a clean exit (and ASan/LSan in the server). */
    for (int i = 0; i < N; i += 2)
        ts_destroy(s[i]);
    assert_true(server_healthy());
    assert_int_equal(h_stop(&g_srv), 0);
    for (int i = 1; i < N; i += 2)
        ts_destroy(s[i]);
    ts_destroy(r1);
    /* Teardown stops it again: start a fresh one so that works. */
    tc_close(g_c);
    static const char *const extra[] = {NULL};
    assert_int_equal(h_server_start(&g_srv, g_db, extra), 0);
    g_c = tc_connect(g_srv.addr);
}

int main(void)
{
    grpc_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_weighted_list_tokens_and_port_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pushes_drain_and_drop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unchanged_list_not_resent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_service_waits_then_ipv6, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_stats_recorded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_before_initial, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_streams_then_shutdown, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    grpc_shutdown();
    return rc;
}
