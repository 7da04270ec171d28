/* it.hostile: the server under hostile peers, end to end.
 *
 * - a NUL inside any string of any request (Report, Watch, GetServerList,
 *   Admin, health, grpclb) is refused with INVALID_ARGUMENT naming the
 *   field, and nothing named by the truncated string appears;
 * - 5,000 unary calls from one peer that never send their request are
 *   bounded: the peer's waiting calls are capped (the rest are refused with
 *   RESOURCE_EXHAUSTED at once), the held ones end with DEADLINE_EXCEEDED
 *   "no request message", server memory stays bounded, and other peers and
 *   the peer's established streams are served meanwhile;
 * - random bytes on grpc.lb.v1 BalanceLoad end with INVALID_ARGUMENT;
 * - floods of refusals write a bounded number of log lines;
 * - SIGTERM with an idle client connection does not sit out the grace.
 *
 * No assertion depends on timing: waits are bounded, figures are printed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "grpc/health/v1/health.pb-c.h"
#include "grpc/lb/v1/load_balancer.pb-c.h"
#include "harness.h"
#include "lookaside/v1/lookaside.pb-c.h"

#define M_REPORT "/lookaside.v1.LoadReporter/Report"
#define M_WATCH "/lookaside.v1.Balancer/Watch"
#define M_GET "/lookaside.v1.Balancer/GetServerList"
#define M_LIST "/lookaside.v1.Admin/ListServices"
#define M_DESCRIBE "/lookaside.v1.Admin/DescribeService"
#define M_DRAIN "/lookaside.v1.Admin/SetDrain"
#define M_HEALTH "/grpc.health.v1.Health/Check"
#define M_LB "/grpc.lb.v1.LoadBalancer/BalanceLoad"

static const char HOSTILE[] = "hostile\0evil";   /* 12 bytes */

typedef struct fixture {
    char dir[256];
    char db[300];
    proc srv;
} fixture;

static fixture g;

static void server_up(const char *const *extra)
{
    memset(&g, 0, sizeof g);
    h_tmpdir(g.dir);
    snprintf(g.db, sizeof g.db, "%s/la.db", g.dir);
    assert_int_equal(h_server_start(&g.srv, g.db, extra), 0);
}

static int server_down(void **state)
{
    (void)state;
    if (g.srv.pid > 0)
        h_server_teardown(&g.srv, g.dir);
    return 0;
}

/* ------------------------------------------------------------ wire bytes */

typedef struct wire {
    uint8_t b[512];
    size_t n;
} wire;

static void w_len(wire *w, unsigned field, const void *data, size_t len)
{
    assert_true(len < 128 && w->n + len + 2 <= sizeof w->b);
    w->b[w->n++] = (uint8_t)(field << 3 | 2);
    w->b[w->n++] = (uint8_t)len;
    memcpy(w->b + w->n, data, len);
    w->n += len;
}

static void w_str(wire *w, unsigned field, const char *s) { w_len(w, field, s, strlen(s)); }
static void w_sub(wire *w, unsigned field, const wire *sub) { w_len(w, field, sub->b, sub->n); }

/* ------------------------------------------------------------- checks */

static void expect_refusal(grpc_status_code got, char *details, grpc_status_code want,
                           const char *needle)
{
    if (got != want || details == NULL || strstr(details, needle) == NULL) {
        fprintf(stderr, "want status %d mentioning \"%s\", got %d \"%s\"\n", (int)want, needle,
                (int)got, details ? details : "(none)");
        h_log_dump(&g.srv);
    }
    assert_int_equal(got, want);
    assert_non_null(details);
    assert_non_null(strstr(details, needle));
    free(details);
}

/* Sends raw bytes on a streaming method (half-closing when close_send)
 * and expects the call to end with want, details mentioning needle. */
static void stream_refused(tclient *c, const char *method, const wire *w, bool close_send,
                           grpc_status_code want, const char *needle)
{
    tstream *s = ts_open(c, method, NULL);
    assert_int_equal(ts_send_raw(s, w->b, w->n), 0);
    if (close_send)
        ts_close_send(s);
    grpc_status_code code = GRPC_STATUS_OK;
    char *details = NULL;
    assert_int_equal(ts_status(s, 10000, &code, &details), 0);
    expect_refusal(code, details, want, needle);
    ts_destroy(s);
}

static void unary_refused(tclient *c, const char *method, const wire *w, const char *needle)
{
    char *details = NULL;
    grpc_status_code code = tc_unary_raw(c, method, w->b, w->n, &details, 10000);
    expect_refusal(code, details, GRPC_STATUS_INVALID_ARGUMENT, needle);
}

static size_t log_count(const proc *p, const char *needle)
{
    FILE *f = fopen(p->log, "r");
    assert_non_null(f);
    char line[4096];
    size_t n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* True when ListServices names a service called name. */
static bool service_listed(tclient *c, const char *name)
{
    Lookaside__V1__ListServicesRequest req = LOOKASIDE__V1__LIST_SERVICES_REQUEST__INIT;
    ProtobufCMessage *m = NULL;
    assert_int_equal(tc_unary(c, M_LIST, &req.base, &lookaside__v1__list_services_response__descriptor,
                              &m, NULL, 10000),
                     GRPC_STATUS_OK);
    Lookaside__V1__ListServicesResponse *r = (Lookaside__V1__ListServicesResponse *)m;
    bool found = false;
    for (size_t i = 0; i < r->n_services; i++)
        found |= strcmp(r->services[i]->name, name) == 0;
    protobuf_c_message_free_unpacked(m, NULL);
    return found;
}

static grpc_status_code get_list(tclient *c, const char *service)
{
    Lookaside__V1__WatchRequest req = LOOKASIDE__V1__WATCH_REQUEST__INIT;
    req.service = (char *)service;
    ProtobufCMessage *m = NULL;
    grpc_status_code code =
        tc_unary(c, M_GET, &req.base, &lookaside__v1__server_list__descriptor, &m, NULL, 10000);
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
    return code;
}

/* ------------------------------------------------------------ NUL strings */

static void test_nul_strings_refused(void **state)
{
    (void)state;
    static const char *const extra[] = {"--log-rate", "5", NULL};
    server_up(extra);
    tclient *c = tc_connect(g.srv.addr);

    /* Report: the registration's service, then its address. */
    wire reg = {0}, rep = {0};
    w_len(&reg, 1, HOSTILE, sizeof HOSTILE - 1);
    w_str(&reg, 2, "127.0.0.1:5000");
    w_sub(&rep, 1, &reg);
    stream_refused(c, M_REPORT, &rep, false, GRPC_STATUS_INVALID_ARGUMENT, "register.service");
    wire reg2 = {0}, rep2 = {0};
    w_str(&reg2, 1, "hostile");
    w_len(&reg2, 2, "127.0.0.1:5000\0x", 16);
    w_sub(&rep2, 1, &reg2);
    stream_refused(c, M_REPORT, &rep2, false, GRPC_STATUS_INVALID_ARGUMENT, "register.address");

    /* Watch (server streaming) and GetServerList (unary). */
    wire watch = {0};
    w_len(&watch, 1, HOSTILE, sizeof HOSTILE - 1);
    stream_refused(c, M_WATCH, &watch, true, GRPC_STATUS_INVALID_ARGUMENT, "service");
    unary_refused(c, M_GET, &watch, "service: a string must not contain a NUL byte");

    /* Admin. */
    unary_refused(c, M_DESCRIBE, &watch, "service");
    wire drain = {0};
    w_str(&drain, 1, "hostile");
    w_len(&drain, 2, "10.0.0.1:80\0", 12);
    unary_refused(c, M_DRAIN, &drain, "address");

    /* Health and grpclb. */
    unary_refused(c, M_HEALTH, &watch, "service");
    wire init = {0}, lb = {0};
    w_len(&init, 1, HOSTILE, sizeof HOSTILE - 1);
    w_sub(&lb, 1, &init);
    stream_refused(c, M_LB, &lb, false, GRPC_STATUS_INVALID_ARGUMENT, "initial_request.name");

    /* Nothing was registered under the truncated name, and a clean
     * registration still works. */
    assert_false(service_listed(c, "hostile"));
    tstream *ok = h_report_registered(c, "web", "127.0.0.1:5001", NULL, NULL);
    assert_non_null(ok);
    assert_true(service_listed(c, "web"));

    /* A flood of refusals: the log keeps a bounded number of lines (5 per
     * second per call site) and says how many it left out. */
    size_t before = log_count(&g.srv, "NUL byte");
    for (int i = 0; i < 400; i++) {
        char *details = NULL;
        assert_int_equal(tc_unary_raw(c, M_GET, watch.b, watch.n, &details, 10000),
                         GRPC_STATUS_INVALID_ARGUMENT);
        free(details);
    }
    ts_cancel(ok);
    ts_destroy(ok);
    tc_close(c);
    assert_int_equal(h_stop(&g.srv), 0);
    size_t lines = log_count(&g.srv, "NUL byte") - before;
    size_t summaries = log_count(&g.srv, "suppressed");
    printf("it.hostile: 400 refused calls wrote %zu refusal lines and %zu summaries\n", lines,
           summaries);
    /* 400 calls at 5 lines/s would need 80 s to all be written. */
    assert_true(lines < 200);
    assert_true(summaries >= 1);
    g.srv.pid = 0;
    h_rmdir(g.dir);
}

/* ------------------------------------------------------ half-open calls */

#define HALF_OPEN 5000
#define WAIT_CAP 500

typedef struct wave {
    size_t exhausted, timed_out, other;
    long rss_peak;
} wave;

/* While the cap is full of one host's held calls: another peer host is
 * served, and the flooding host's established watch still gets pushes (a
 * registration from the other host reaches it). */
static void check_others_served(tstream *watch)
{
    tclient *other_peer = tc_connect_from(g.srv.addr, "127.0.0.2");
    assert_non_null(other_peer);
    assert_int_equal(get_list(other_peer, "web"), GRPC_STATUS_OK);
    tstream *r2 = h_report_registered(other_peer, "web", "127.0.0.1:6002", NULL, NULL);
    assert_non_null(r2);
    bool seen = false;
    for (int k = 0; k < 50 && !seen; k++) {
        ProtobufCMessage *lm = NULL;
        if (ts_recv(watch, &lookaside__v1__server_list__descriptor, &lm, 200) != 1)
            continue;
        Lookaside__V1__ServerList *sl = (Lookaside__V1__ServerList *)lm;
        for (size_t b = 0; b < sl->n_backends; b++)
            seen |= strcmp(sl->backends[b]->address, "127.0.0.1:6002") == 0;
        protobuf_c_message_free_unpacked(lm, NULL);
    }
    assert_true(seen);
    ts_cancel(r2);
    ts_destroy(r2);
    tc_close(other_peer);
}

/* Opens HALF_OPEN GetServerList calls that send headers and nothing else,
 * and collects how each ended (bounded wait). watch: run
 * check_others_served once the cap is full (NULL: don't). */
static void half_open_wave(tstream *watch, wave *w)
{
    static grpc_call *calls[HALF_OPEN];
    static grpc_status_code codes[HALF_OPEN];
    static grpc_slice details[HALF_OPEN];
    static grpc_metadata_array initial[HALF_OPEN], trailers[HALF_OPEN];
    memset(w, 0, sizeof *w);
    grpc_channel_credentials *cr = grpc_insecure_credentials_create();
    grpc_channel *ch = grpc_channel_create(g.srv.addr, cr, NULL);
    grpc_channel_credentials_release(cr);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    grpc_slice method = grpc_slice_from_static_string(M_GET);
    for (intptr_t i = 0; i < HALF_OPEN; i++) {
        calls[i] = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method, NULL,
                                            gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        grpc_metadata_array_init(&initial[i]);
        grpc_metadata_array_init(&trailers[i]);
        /* Without RECV_INITIAL_METADATA core never completes the status. */
        grpc_op ops[3];
        memset(ops, 0, sizeof ops);
        ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[1].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[1].data.recv_initial_metadata.recv_initial_metadata = &initial[i];
        ops[2].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
        ops[2].data.recv_status_on_client.status = &codes[i];
        ops[2].data.recv_status_on_client.status_details = &details[i];
        ops[2].data.recv_status_on_client.trailing_metadata = &trailers[i];
        assert_int_equal(grpc_call_start_batch(calls[i], ops, 3, (void *)(i + 1), NULL),
                         GRPC_CALL_OK);
    }
    size_t done = 0;
    long long until = h_now_ms() + 120000;
    while (done < HALF_OPEN && h_now_ms() < until) {
        grpc_event ev = grpc_completion_queue_next(
            cq, gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(200, GPR_TIMESPAN)),
            NULL);
        if (ev.type == GRPC_OP_COMPLETE) {
            intptr_t i = (intptr_t)ev.tag - 1;
            char *d = grpc_slice_to_c_string(details[i]);
            if (codes[i] == GRPC_STATUS_RESOURCE_EXHAUSTED && strstr(d, "first message"))
                w->exhausted++;
            else if (codes[i] == GRPC_STATUS_DEADLINE_EXCEEDED && strstr(d, "no request message"))
                w->timed_out++;
            else if (w->other++ < 5)
                fprintf(stderr, "unexpected status %d \"%s\"\n", (int)codes[i], d);
            gpr_free(d);
            done++;
        }
        long r = rss_kib(g.srv.pid);
        if (r > w->rss_peak)
            w->rss_peak = r;
        if (watch && w->exhausted == HALF_OPEN - WAIT_CAP) {
            check_others_served(watch);
            watch = NULL;
        }
    }
    for (int i = 0; i < HALF_OPEN; i++) {
        grpc_slice_unref(details[i]);
        grpc_metadata_array_destroy(&initial[i]);
        grpc_metadata_array_destroy(&trailers[i]);
        grpc_call_unref(calls[i]);
    }
    grpc_channel_destroy(ch);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
    if (w->other || w->exhausted != HALF_OPEN - WAIT_CAP)
        h_log_dump(&g.srv);
    assert_null(watch);   /* the check ran */
}

static void test_half_open_calls_bounded(void **state)
{
    (void)state;
    /* ASan parks freed memory in a quarantine (256 MiB) instead of reusing
     * it, which would make the server's RSS track everything it ever
     * allocated; switch that off in the server so RSS shows what it holds. */
    char asan[1024];
    const char *old = getenv("ASAN_OPTIONS");
    snprintf(asan, sizeof asan, "%s%squarantine_size_mb=0", old ? old : "", old ? ":" : "");
    setenv("ASAN_OPTIONS", asan, 1);
    /* The timeout must outlast the flood (all 5,000 calls must meet a full
     * cap for the counts below to be exact); 20 s leaves a slow, shared CI
     * machine ample room. */
    static const char *const extra[] = {"--max-waiting-per-peer", "500", "--request-timeout-ms",
                                        "20000", "--log-rate", "5", NULL};
    server_up(extra);
    if (old)
        setenv("ASAN_OPTIONS", old, 1);
    else
        unsetenv("ASAN_OPTIONS");
    tclient *good = tc_connect(g.srv.addr);
    /* Established before the flood, from the same host: a watcher and a
     * reporter. */
    Lookaside__V1__WatchRequest wr = LOOKASIDE__V1__WATCH_REQUEST__INIT;
    wr.service = "web";
    tstream *watch = ts_open(good, M_WATCH, &wr.base);
    ProtobufCMessage *m = NULL;
    assert_int_equal(ts_recv(watch, &lookaside__v1__server_list__descriptor, &m, 10000), 1);
    protobuf_c_message_free_unpacked(m, NULL);
    tstream *rep = h_report_registered(good, "web", "127.0.0.1:6001", NULL, NULL);
    assert_non_null(rep);
    long rss0 = rss_kib(g.srv.pid);

    /* Two waves of 5,000: each is capped at 500 held calls (the rest
     * refused at once), the held ones time out, and the second wave reuses
     * the first one's memory instead of adding to it. */
    wave w1, w2;
    half_open_wave(watch, &w1);
    long rss1 = rss_kib(g.srv.pid);
    half_open_wave(NULL, &w2);
    long rss2 = rss_kib(g.srv.pid);
    printf("it.hostile: %d half-open calls per wave: refused %zu/%zu (RESOURCE_EXHAUSTED), timed "
           "out %zu/%zu (DEADLINE_EXCEEDED), other %zu/%zu; server RSS %ld KiB before, %ld KiB "
           "after wave 1 (peak %ld), %ld KiB after wave 2 (peak %ld)\n",
           HALF_OPEN, w1.exhausted, w2.exhausted, w1.timed_out, w2.timed_out, w1.other, w2.other,
           rss0, rss1, w1.rss_peak, rss2, w2.rss_peak);
    for (int k = 0; k < 2; k++) {
        const wave *w = k ? &w2 : &w1;
        assert_int_equal(w->other, 0);
        assert_int_equal(w->exhausted, HALF_OPEN - WAIT_CAP);
        assert_int_equal(w->timed_out, WAIT_CAP);
    }
    /* Unbounded, each wave's 5,000 calls stayed pending (74 MiB without
     * sanitizers); bounded, the second wave costs no more than the first. */
    assert_true(w2.rss_peak - w1.rss_peak < 16 * 1024);

    /* The flooding host is served again once its held calls are gone. */
    assert_int_equal(get_list(good, "web"), GRPC_STATUS_OK);
    ts_cancel(rep);
    ts_destroy(rep);
    ts_cancel(watch);
    ts_destroy(watch);
    tc_close(good);
    assert_int_equal(h_stop(&g.srv), 0);
    /* 9,000 refusals and 1,000 timeouts, logged at 5 lines/s per site. */
    size_t lines = log_count(&g.srv, "first message") + log_count(&g.srv, "no request message");
    printf("it.hostile: %d refusals wrote %zu log lines\n", 2 * HALF_OPEN, lines);
    assert_true(lines < 1000);
    assert_true(log_count(&g.srv, "suppressed") >= 1);
    g.srv.pid = 0;
    h_rmdir(g.dir);
}

/* ------------------------------------------------------- grpclb garbage */

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static uint8_t rnd8(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint8_t)(g_rng >> 32);
}

#define ROUNDS 200

static void test_balanceload_random_bytes(void **state)
{
    (void)state;
    server_up(NULL);
    tclient *c = tc_connect(g.srv.addr);
    int counts[20] = {0};
    for (int round = 0; round < ROUNDS; round++) {
        wire w = {0};
        w.n = 1 + (size_t)(rnd8() % 200);
        for (size_t i = 0; i < w.n; i++)
            w.b[i] = rnd8();
        tstream *s = ts_open(c, M_LB, NULL);
        /* Half of the rounds start properly, then turn to garbage. */
        if (round % 2) {
            wire init = {0}, lb = {0};
            w_str(&init, 1, "web");
            w_sub(&lb, 1, &init);
            assert_int_equal(ts_send_raw(s, lb.b, lb.n), 0);
        }
        ts_send_raw(s, w.b, w.n);
        grpc_status_code code = GRPC_STATUS_OK;
        char *details = NULL;
        if (ts_status(s, 10000, &code, &details) != 0) {
            fprintf(stderr, "round %d (%zu bytes): no status; bytes:", round, w.n);
            for (size_t i = 0; i < w.n; i++)
                fprintf(stderr, " %02x", w.b[i]);
            fprintf(stderr, "\n");
            h_log_dump(&g.srv);
            fail();
        }
        if (code != GRPC_STATUS_INVALID_ARGUMENT) {
            fprintf(stderr, "round %d (%zu bytes): status %d \"%s\"\n", round, w.n, (int)code,
                    details ? details : "");
        }
        counts[code < 20 ? code : 19]++;
        free(details);
        ts_destroy(s);
    }
    printf("it.hostile: %d random BalanceLoad streams: %d INVALID_ARGUMENT\n", ROUNDS,
           counts[GRPC_STATUS_INVALID_ARGUMENT]);
    assert_int_equal(counts[GRPC_STATUS_INVALID_ARGUMENT], ROUNDS);
    tc_close(c);
}

/* --------------------------------------------- streams that never send */

/* A stream's first message is bounded too: a Report (bidi) or Watch
 * (server streaming) that opens and sends nothing ends with
 * DEADLINE_EXCEEDED, and a stream that did send stays up past the bound. */
static void test_silent_streams_time_out(void **state)
{
    (void)state;
    static const char *const extra[] = {"--request-timeout-ms", "1000", NULL};
    server_up(extra);
    tclient *c = tc_connect(g.srv.addr);
    tstream *live = h_report_registered(c, "web", "127.0.0.1:7001", NULL, NULL);
    assert_non_null(live);
    Lookaside__V1__Load load = LOOKASIDE__V1__LOAD__INIT;
    Lookaside__V1__LoadReport lr = LOOKASIDE__V1__LOAD_REPORT__INIT;
    lr.kind_case = LOOKASIDE__V1__LOAD_REPORT__KIND_LOAD;
    lr.load = &load;
    const char *const methods[] = {M_REPORT, M_WATCH, M_LB};
    for (size_t i = 0; i < sizeof methods / sizeof *methods; i++) {
        tstream *s = ts_open(c, methods[i], NULL);
        grpc_status_code code = GRPC_STATUS_OK;
        char *details = NULL;
        assert_int_equal(ts_status(s, 20000, &code, &details), 0);
        expect_refusal(code, details, GRPC_STATUS_DEADLINE_EXCEEDED, "no request message");
        ts_destroy(s);
        /* The registered reporter is not cut off by the bound (its stream
         * delivered a first message long ago): it still gets acks. */
        assert_int_equal(ts_send(live, &lr.base), 0);
        ProtobufCMessage *ack = NULL;
        assert_int_equal(ts_recv(live, &lookaside__v1__report_ack__descriptor, &ack, 10000), 1);
        protobuf_c_message_free_unpacked(ack, NULL);
    }
    ts_cancel(live);
    ts_destroy(live);
    tc_close(c);
}

/* ------------------------------------------------------------ JSON logs */

/* --log-format json: every line the server writes (gRPC core's included)
 * is one object with the stable keys in order and no raw control bytes
 * (escaping itself is unit-tested in tests/common/test_log.c). */
static void test_json_log_lines(void **state)
{
    (void)state;
    static const char *const extra[] = {"--log-format", "json", "--log-level", "debug", NULL};
    server_up(extra);
    tclient *c = tc_connect(g.srv.addr);
    wire watch = {0};
    w_len(&watch, 1, HOSTILE, sizeof HOSTILE - 1);   /* a refusal line */
    char *details = NULL;
    tc_unary_raw(c, M_GET, watch.b, watch.n, &details, 10000);
    free(details);
    assert_int_equal(get_list(c, "web"), GRPC_STATUS_OK);
    tc_close(c);
    assert_int_equal(h_stop(&g.srv), 0);
    FILE *f = fopen(g.srv.log, "r");
    assert_non_null(f);
    char line[4096];
    size_t n = 0;
    while (fgets(line, sizeof line, f)) {
        size_t len = strlen(line);
        bool ok = len > 2 && line[len - 1] == '\n' && strncmp(line, "{\"ts\":\"", 7) == 0 &&
                  strstr(line, "\",\"level\":\"") && strstr(line, "\",\"module\":\"") &&
                  strstr(line, "\",\"msg\":\"") && strcmp(line + len - 3, "\"}\n") == 0;
        for (size_t i = 0; ok && i + 1 < len; i++)
            ok = (unsigned char)line[i] >= 0x20;
        if (!ok) {
            fprintf(stderr, "not a JSON log line: %s", line);
            h_log_dump(&g.srv);
        }
        assert_true(ok);
        n++;
    }
    fclose(f);
    assert_true(n >= 3);   /* listening, the refusal, stopped at least */
    assert_true(h_log_has(&g.srv, "\"level\":\"info\",\"module\":\"main\",\"msg\":\"listening on"));
    assert_true(h_log_has(&g.srv, "\"level\":\"warn\",\"module\":\"rpc\""));
    g.srv.pid = 0;
    h_rmdir(g.dir);
}

/* ------------------------------------------------------------- SIGTERM */

static void test_sigterm_with_idle_client(void **state)
{
    (void)state;
    static const char *const extra[] = {"--log-level", "debug", NULL};
    server_up(extra);
    tclient *c = tc_connect(g.srv.addr);
    assert_int_equal(get_list(c, "web"), GRPC_STATUS_OK);   /* the connection is up, idle */
    long long t0 = h_now_ms();
    assert_int_equal(h_stop(&g.srv), 0);
    long long took = h_now_ms() - t0;
    printf("it.hostile: SIGTERM with an idle client connection: exit after %lld ms\n", took);
    /* The shutdown ended because no call was live, not because the grace
     * ran out. */
    assert_true(h_log_has(&g.srv, "shutdown: no live calls"));
    assert_false(h_log_has(&g.srv, "calls still live"));
    tc_close(c);
    g.srv.pid = 0;
    h_rmdir(g.dir);
}

int main(void)
{
    grpc_init();
    /* HOSTILE_ONLY=test_name runs one test (debugging). */
    if (getenv("HOSTILE_ONLY"))
        cmocka_set_test_filter(getenv("HOSTILE_ONLY"));
    const struct CMUnitTest tests[] = {

        cmocka_unit_test_teardown(test_nul_strings_refused, server_down),
        cmocka_unit_test_teardown(test_balanceload_random_bytes, server_down),
        cmocka_unit_test_teardown(test_sigterm_with_idle_client, server_down),
        cmocka_unit_test_teardown(test_silent_streams_time_out, server_down),
        cmocka_unit_test_teardown(test_json_log_lines, server_down),
        cmocka_unit_test_teardown(test_half_open_calls_bounded, server_down),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    grpc_shutdown();
    return rc;
}
