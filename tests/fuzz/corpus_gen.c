/* corpus_gen.c - writes the seed corpus of every fuzz target:
 *   fuzz_corpus_gen OUTDIR
 * creates OUTDIR/<target>/<name> files (tests/fuzz/make_corpus.sh runs it
 * into tests/fuzz/corpus). Seeds are small scripts of well-formed protocol
 * exchanges (fuzz_server.h's opcodes), database files written through the
 * storage API, and DNS answers in wire format, so the fuzzers start from
 * inputs that reach deep into the code. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_server.h"
#include "fuzz_sets.h"
#include "fuzz_util.h"
#include "grpc/health/v1/health.pb-c.h"
#include "grpc/lb/v1/load_balancer.pb-c.h"
#include "lookaside/v1/lookaside.pb-c.h"
#include "storage.h"

static const char *g_out;

typedef struct buf {
    uint8_t d[8192];
    size_t n;
} buf;

static void put(buf *b, const void *p, size_t n)
{
    if (b->n + n > sizeof b->d) {
        fprintf(stderr, "corpus_gen: seed too large\n");
        exit(1);
    }
    memcpy(b->d + b->n, p, n);
    b->n += n;
}
static void u8(buf *b, unsigned v) { uint8_t x = (uint8_t)v; put(b, &x, 1); }
static void u16(buf *b, unsigned v) { u8(b, v & 0xff); u8(b, (v >> 8) & 0xff); }
static void blob(buf *b, const void *p, size_t n) { u16(b, (unsigned)n); put(b, p, n); }

static void pb_blob(buf *b, const ProtobufCMessage *m)
{
    uint8_t tmp[4096];
    size_t n = protobuf_c_message_get_packed_size(m);
    if (n > sizeof tmp)
        exit(1);
    protobuf_c_message_pack(m, tmp);
    blob(b, tmp, n);
}

static void write_seed(const char *target, const char *name, const void *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", g_out, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/%s/%s", g_out, target, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

/* ------------------------------------------------------- handler scripts */

static const fz_set *g_set;
static unsigned g_token;   /* FZ_AUTH: the token index the next calls present */

static unsigned method(const char *path)
{
    for (size_t i = 0; i < g_set->n; i++)
        if (strcmp(g_set->paths[i], path) == 0)
            return (unsigned)i;
    fprintf(stderr, "corpus_gen: %s not in %s\n", path, g_set->target);
    exit(1);
}

static void open_call(buf *b, unsigned slot, const char *path, const ProtobufCMessage *req)
{
    u8(b, FZ_OP_OPEN);
    u8(b, slot);
    u8(b, method(path));
    if (g_set->flags & FZ_AUTH)
        u8(b, g_token);
    if (req)
        pb_blob(b, req);
    else
        blob(b, "", 0);
}
static void msg(buf *b, unsigned slot, const ProtobufCMessage *m)
{
    u8(b, FZ_OP_MSG);
    u8(b, slot);
    pb_blob(b, m);
}
static void send_done(buf *b, unsigned slot) { u8(b, FZ_OP_SEND_DONE); u8(b, slot); u8(b, 0); }
static void tick_ms(buf *b, unsigned ms) { u8(b, FZ_OP_TICK); u16(b, ms); }
static void tick(buf *b) { tick_ms(b, 10); }

/* A Report stream in slot (it comes from 127.0.0.(slot+1)): register, then
 * one load report. */
static void reporter(buf *b, unsigned slot, const char *svc, const char *addr, const char *zone)
{
    open_call(b, slot, FZ_REPORT, NULL);
    Lookaside__V1__Register reg = LOOKASIDE__V1__REGISTER__INIT;
    reg.service = (char *)svc;
    reg.address = (char *)addr;
    reg.zone = (char *)zone;
    Lookaside__V1__LoadReport r = LOOKASIDE__V1__LOAD_REPORT__INIT;
    r.kind_case = LOOKASIDE__V1__LOAD_REPORT__KIND_REGISTER;
    r.register_ = &reg;
    msg(b, slot, &r.base);
    tick(b);   /* the commit that releases the first ack */
    send_done(b, slot);
    Lookaside__V1__Load load = LOOKASIDE__V1__LOAD__INIT;
    Lookaside__V1__Load__UtilizationEntry ue = LOOKASIDE__V1__LOAD__UTILIZATION_ENTRY__INIT;
    Lookaside__V1__Load__UtilizationEntry *ues[1] = {&ue};
    ue.key = "gpu";
    ue.value = 0.25;
    load.cpu_utilization = 0.5;
    load.mem_utilization = 0.3;
    load.rps_fractional = 120;
    load.eps = 1.5;
    load.in_flight = 4;
    load.n_utilization = 1;
    load.utilization = ues;
    Lookaside__V1__LoadReport lr = LOOKASIDE__V1__LOAD_REPORT__INIT;
    lr.kind_case = LOOKASIDE__V1__LOAD_REPORT__KIND_LOAD;
    lr.load = &load;
    msg(b, slot, &lr.base);
    send_done(b, slot);
}

static void drain_msg(buf *b, unsigned slot, bool draining)
{
    Lookaside__V1__Drain d = LOOKASIDE__V1__DRAIN__INIT;
    d.draining = draining;
    Lookaside__V1__LoadReport r = LOOKASIDE__V1__LOAD_REPORT__INIT;
    r.kind_case = LOOKASIDE__V1__LOAD_REPORT__KIND_DRAIN;
    r.drain = &d;
    msg(b, slot, &r.base);
}

static void watch_req(buf *b, unsigned slot, const char *path, const char *svc)
{
    Lookaside__V1__WatchRequest w = LOOKASIDE__V1__WATCH_REQUEST__INIT;
    w.service = (char *)svc;
    w.client_zone = "zone-a";
    w.client_id = "fuzz";
    open_call(b, slot, path, &w.base);
}

static void gen_report(void)
{
    g_set = &FZ_SETS[0];
    buf b = {.n = 0};
    reporter(&b, 0, "web", "127.0.0.1:5000", "zone-a");
    reporter(&b, 1, "web", "[::1]:5001", "");
    watch_req(&b, 2, FZ_WATCH, "web");
    tick(&b);
    send_done(&b, 2);
    drain_msg(&b, 0, true);
    tick(&b);
    u8(&b, FZ_OP_HALFCLOSE);
    u8(&b, 1);
    tick(&b);
    u8(&b, FZ_OP_RESTART);   /* every call ends */
    reporter(&b, 0, "web", "127.0.0.1:5000", "zone-b");
    tick(&b);
    write_seed(g_set->target, "register_load_drain_restart", b.d, b.n);

    buf c = {.n = 0};
    reporter(&c, 0, "web", "10.0.0.1:80", "");
    reporter(&c, 1, "web", "10.0.0.1:80", "");   /* takes over the first stream */
    u8(&c, FZ_OP_CANCEL);
    u8(&c, 1);
    tick(&c);
    tick_ms(&c, 4000);   /* the remaining stream stops reporting: evicted */
    tick_ms(&c, 12000);
    write_seed(g_set->target, "takeover_cancel", c.d, c.n);
}

static void gen_balancer(void)
{
    g_set = &FZ_SETS[1];
    buf b = {.n = 0};
    watch_req(&b, 0, FZ_WATCH, "web");
    reporter(&b, 1, "web", "127.0.0.2:5000", "zone-a");
    tick(&b);
    send_done(&b, 0);
    watch_req(&b, 2, FZ_GET, "web");
    watch_req(&b, 3, FZ_GET, "nosuch");
    reporter(&b, 4, "web", "127.0.0.5:5000", "zone-b");
    tick(&b);
    send_done(&b, 0);
    u8(&b, FZ_OP_RESTART);
    watch_req(&b, 0, FZ_WATCH, "web");
    tick(&b);
    send_done(&b, 0);
    tick_ms(&b, 11000);   /* past the restore grace and a heartbeat period */
    send_done(&b, 0);
    tick_ms(&b, 11000);
    write_seed(g_set->target, "watch_get_restart", b.d, b.n);
}

static void admin_target(buf *b, unsigned slot, const char *path, const char *svc,
                         const char *addr)
{
    if (strcmp(path, FZ_DRAIN) == 0) {
        Lookaside__V1__SetDrainRequest r = LOOKASIDE__V1__SET_DRAIN_REQUEST__INIT;
        r.service = (char *)svc;
        r.address = (char *)addr;
        r.draining = true;
        open_call(b, slot, path, &r.base);
    } else {
        Lookaside__V1__SetWeightOverrideRequest r =
            LOOKASIDE__V1__SET_WEIGHT_OVERRIDE_REQUEST__INIT;
        r.service = (char *)svc;
        r.address = (char *)addr;
        r.weight = 500;
        open_call(b, slot, path, &r.base);
    }
}

static void gen_admin(void)
{
    g_set = &FZ_SETS[2];
    buf b = {.n = 0};
    reporter(&b, 0, "web", "127.0.0.1:5000", "zone-a");
    reporter(&b, 1, "web", "127.0.0.1:5001", "zone-a");
    tick(&b);
    Lookaside__V1__ListServicesRequest ls = LOOKASIDE__V1__LIST_SERVICES_REQUEST__INIT;
    open_call(&b, 2, FZ_LIST, &ls.base);
    Lookaside__V1__DescribeServiceRequest ds = LOOKASIDE__V1__DESCRIBE_SERVICE_REQUEST__INIT;
    ds.service = "web";
    open_call(&b, 3, FZ_DESCRIBE, &ds.base);
    admin_target(&b, 4, FZ_DRAIN, "web", "127.0.0.1:5000");
    admin_target(&b, 5, FZ_OVERRIDE, "web", "127.0.0.1:5001");
    tick(&b);
    u8(&b, FZ_OP_RESTART);
    open_call(&b, 0, FZ_DESCRIBE, &ds.base);
    admin_target(&b, 1, FZ_DRAIN, "web", "[::1]:1");
    write_seed(g_set->target, "list_describe_drain_override", b.d, b.n);
}

static void gen_grpclb(void)
{
    g_set = &FZ_SETS[3];
    buf b = {.n = 0};
    reporter(&b, 0, "web", "127.0.0.1:5000", "zone-a");
    reporter(&b, 1, "web", "[::1]:5001", "zone-a");
    tick(&b);
    open_call(&b, 2, FZ_GRPCLB, NULL);
    Grpc__Lb__V1__InitialLoadBalanceRequest ir = GRPC__LB__V1__INITIAL_LOAD_BALANCE_REQUEST__INIT;
    ir.name = "web:443";
    Grpc__Lb__V1__LoadBalanceRequest r = GRPC__LB__V1__LOAD_BALANCE_REQUEST__INIT;
    r.load_balance_request_type_case =
        GRPC__LB__V1__LOAD_BALANCE_REQUEST__LOAD_BALANCE_REQUEST_TYPE_INITIAL_REQUEST;
    r.initial_request = &ir;
    msg(&b, 2, &r.base);
    send_done(&b, 2);
    Grpc__Lb__V1__ClientStatsPerToken tok = GRPC__LB__V1__CLIENT_STATS_PER_TOKEN__INIT;
    tok.load_balance_token = "lookaside-no-backend";
    tok.num_calls = 3;
    Grpc__Lb__V1__ClientStatsPerToken *toks[1] = {&tok};
    Grpc__Lb__V1__ClientStats cs = GRPC__LB__V1__CLIENT_STATS__INIT;
    cs.num_calls_started = 10;
    cs.num_calls_finished = 9;
    cs.num_calls_finished_known_received = 8;
    cs.n_calls_finished_with_drop = 1;
    cs.calls_finished_with_drop = toks;
    Grpc__Lb__V1__LoadBalanceRequest r2 = GRPC__LB__V1__LOAD_BALANCE_REQUEST__INIT;
    r2.load_balance_request_type_case =
        GRPC__LB__V1__LOAD_BALANCE_REQUEST__LOAD_BALANCE_REQUEST_TYPE_CLIENT_STATS;
    r2.client_stats = &cs;
    msg(&b, 2, &r2.base);
    drain_msg(&b, 0, true);
    drain_msg(&b, 1, true);
    tick(&b);
    send_done(&b, 2);
    write_seed(g_set->target, "initial_stats_drop", b.d, b.n);
}

static void gen_health(void)
{
    g_set = &FZ_SETS[4];
    buf b = {.n = 0};
    Grpc__Health__V1__HealthCheckRequest all = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    all.service = "";
    Grpc__Health__V1__HealthCheckRequest web = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    web.service = "web";
    open_call(&b, 0, FZ_HCHECK, &all.base);
    open_call(&b, 1, FZ_HWATCH, &web.base);
    reporter(&b, 2, "web", "127.0.0.3:5000", "");
    tick(&b);
    send_done(&b, 1);
    open_call(&b, 3, FZ_HCHECK, &web.base);
    drain_msg(&b, 2, true);
    tick(&b);
    send_done(&b, 1);
    write_seed(g_set->target, "check_watch_drain", b.d, b.n);
}

/* Tokens as in fuzz_server.c: 1 backend (report:web), 2 client (watch:web),
 * 3 admin, 4 agent (report:* register-any), 5 unknown. */
static void gen_auth(void)
{
    g_set = &FZ_SETS[5];
    buf b = {.n = 0};
    g_token = 1;
    reporter(&b, 0, "web", "127.0.0.1:5000", "zone-a");       /* its own address: ok */
    g_token = 2;
    watch_req(&b, 1, FZ_WATCH, "web");
    tick(&b);
    send_done(&b, 1);
    g_token = 4;
    reporter(&b, 2, "web", "127.0.0.1:5000", "");             /* hijack: refused */
    g_token = 4;
    reporter(&b, 3, "api", "10.9.8.7:80", "");                /* register-any: ok */
    g_token = 1;
    reporter(&b, 4, "api", "127.0.0.5:80", "");               /* no report:api */
    g_token = 0;
    watch_req(&b, 5, FZ_GET, "web");                           /* anonymous: refused */
    g_token = 5;
    watch_req(&b, 6, FZ_GET, "public");                        /* unknown token */
    g_token = 3;
    admin_target(&b, 7, FZ_DRAIN, "web", "127.0.0.1:5000");   /* admin: ok */
    Lookaside__V1__ListServicesRequest ls = LOOKASIDE__V1__LIST_SERVICES_REQUEST__INIT;
    g_token = 2;
    open_call(&b, 8, FZ_LIST, &ls.base);                       /* needs watch:*: refused */
    g_token = 0;
    Grpc__Health__V1__HealthCheckRequest hc = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    hc.service = "web";
    open_call(&b, 9, FZ_HCHECK, &hc.base);                     /* public */
    tick(&b);
    u8(&b, FZ_OP_RESTART);
    write_seed(g_set->target, "policy_hijack_admin", b.d, b.n);
}

/* ---------------------------------------------------------- databases */

static storage_backend backend(const char *svc, const char *addr, int state)
{
    storage_backend b;
    memset(&b, 0, sizeof b);
    snprintf(b.service, sizeof b.service, "%s", svc);
    snprintf(b.address, sizeof b.address, "%s", addr);
    snprintf(b.zone, sizeof b.zone, "zone-a");
    b.state = state;
    b.source = 1;
    b.first_seen_ms = 1700000000000;
    b.last_report_ms = 1700000001000;
    snprintf(b.cred_hash, sizeof b.cred_hash, "00ff00ff00ff00ff");
    b.policy_weight = 950.5;
    return b;
}

static void db_seed(const char *name, int variant)
{
    char path[200];
    fz_db_path(path, sizeof path);
    storage *st = NULL;
    if (storage_open(path, &st) != LOOKASIDE_OK) {
        fprintf(stderr, "corpus_gen: %s\n", storage_open_error());
        exit(1);
    }
    if (variant >= 1) {
        storage_put_service(st, "web", 41);
        storage_backend b1 = backend("web", "127.0.0.1:5000", 1);
        storage_backend b2 = backend("web", "[::1]:5001", 2);
        b2.weight_override = 300;
        storage_put_backend(st, &b1);
        storage_put_backend(st, &b2);
        storage_load l = {.cpu = 0.5, .mem = 0.25, .app = 0, .rps = 100, .eps = 1,
                          .in_flight = 3, .at_ms = 1700000001000};
        storage_put_load(st, "web", "127.0.0.1:5000", &l);
    }
    if (variant >= 2) {
        storage_put_service(st, "empty.service", 7);
        storage_backend b3 = backend("api", "10.1.2.3:443", 3);
        storage_put_backend(st, &b3);
    }
    storage_close(st);
    FILE *f = fopen(path, "rb");
    static uint8_t data[1 << 20];
    size_t n = f ? fread(data, 1, sizeof data, f) : 0;
    if (f)
        fclose(f);
    fz_unlink_db(path);
    write_seed("fuzz_storage", name, data, n);
}

/* ----------------------------------------------------------- DNS answers */

/* A DNS response for name with one record per address (type 1 = A,
 * 28 = AAAA), TTL ttl, the name compressed as a pointer to the question. */
static size_t dns_answer(uint8_t *out, const char *name, int type, const char *const *ips,
                         size_t n, uint32_t ttl)
{
    buf b = {.n = 0};
    uint8_t hdr[12] = {0x12, 0x34, 0x81, 0x80, 0, 1, 0, (uint8_t)n, 0, 0, 0, 0};
    put(&b, hdr, sizeof hdr);
    for (const char *p = name; *p;) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        u8(&b, (unsigned)len);
        put(&b, p, len);
        p += len + (dot ? 1 : 0);
    }
    u8(&b, 0);
    uint8_t q[4] = {0, (uint8_t)type, 0, 1};
    put(&b, q, 4);
    for (size_t i = 0; i < n; i++) {
        uint8_t ip[16];
        size_t iplen = type == 1 ? 4 : 16;
        inet_pton(type == 1 ? AF_INET : AF_INET6, ips[i], ip);
        uint8_t rr[12] = {0xc0, 0x0c, 0, (uint8_t)type, 0, 1,
                          (uint8_t)(ttl >> 24), (uint8_t)(ttl >> 16), (uint8_t)(ttl >> 8),
                          (uint8_t)ttl, 0, (uint8_t)iplen};
        put(&b, rr, sizeof rr);
        put(&b, ip, iplen);
    }
    memcpy(out, b.d, b.n);
    return b.n;
}

static void dns_round(buf *b, unsigned svc, unsigned port, const char *const *v4, size_t n4,
                      const char *const *v6, size_t n6)
{
    uint8_t a[1024], aaaa[1024];
    size_t na = dns_answer(a, "web.test", 1, v4, n4, 30);
    size_t n6b = dns_answer(aaaa, "web.test", 28, v6, n6, 5);
    u8(b, 0);
    u8(b, svc);
    u16(b, port);
    blob(b, a, na);
    blob(b, aaaa, n6b);
}

static void gen_dns(void)
{
    static const char *const v4[] = {"10.0.0.1", "10.0.0.2", "0.0.0.0", "10.0.0.1"};
    static const char *const v6[] = {"fd00::1", "::"};
    buf b = {.n = 0};
    /* attach a reporter at an address DNS also lists, then DNS rounds. */
    u8(&b, 1);
    u8(&b, 0);
    blob(&b, "10.0.0.1:5000", 13);
    dns_round(&b, 0, 5000, v4, 4, v6, 2);
    u8(&b, 3);
    u16(&b, 10);
    dns_round(&b, 0, 5000, v4 + 1, 1, NULL, 0);
    u8(&b, 4);   /* drain it and override its weight */
    u8(&b, 0);
    u8(&b, 1);
    u16(&b, 100);
    u8(&b, 2);   /* its stream ends cleanly */
    u8(&b, 0);
    u8(&b, 1);
    dns_round(&b, 1, 443, NULL, 0, v6, 1);
    u8(&b, 3);
    u16(&b, 10);
    write_seed("fuzz_dns", "merge_attach_detach", b.d, b.n);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_corpus_gen OUTDIR\n");
        return 2;
    }
    g_out = argv[1];
    fz_setup();
    if (mkdir(g_out, 0755) != 0 && errno != EEXIST) {
        perror(g_out);
        return 1;
    }
    gen_report();
    gen_balancer();
    gen_admin();
    gen_grpclb();
    gen_health();
    gen_auth();
    db_seed("empty", 0);
    db_seed("one_service", 1);
    db_seed("two_services", 2);
    gen_dns();
    return 0;
}
