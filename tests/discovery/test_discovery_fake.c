/* it.discovery.fakedns - discovery against tiny DNS servers living in the
 * test process on 127.0.0.1 (served from the driver loop's hook): SERVFAIL,
 * REFUSED, silence (timeouts), a closed port, answers with chosen TTLs and
 * many records, the refresh/TTL rule, one round in flight, destroy with
 * queries in flight, a callback that adds a service. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>

#include "disc_test.h"

enum fake_mode { FAKE_ANSWER, FAKE_SERVFAIL, FAKE_REFUSED, FAKE_NXDOMAIN, FAKE_SILENT };

struct fake {
    int fd;
    uint16_t port;
    enum fake_mode mode;
    uint32_t ttl;
    uint8_t v4[64][4]; /* A answers */
    int nv4;
    int aaaa_loopback; /* answer AAAA with ::1 (else NODATA) */
    int queries, queries_a, queries_aaaa;
};

static void fake_open(struct fake *f)
{
    memset(f, 0, sizeof *f);
    f->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    assert_true(f->fd >= 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    assert_int_equal(bind(f->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(f->fd, (struct sockaddr *)&sa, &sl), 0);
    f->port = ntohs(sa.sin_port);
    f->ttl = 300;
}

static void fake_close(struct fake *f) { close(f->fd); }

static void fake_set_v4(struct fake *f, const char *const *ips, int n)
{
    f->nv4 = n;
    for (int i = 0; i < n; i++)
        assert_int_equal(inet_pton(AF_INET, ips[i], f->v4[i]), 1);
}

static void put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Answers every pending query according to f->mode. */
static void fake_serve(void *arg)
{
    struct fake *f = arg;
    for (;;) {
        uint8_t q[512], r[2048];
        struct sockaddr_storage from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(f->fd, q, sizeof q, 0, (struct sockaddr *)&from, &fl);
        if (n < 0) {
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
            return;
        }
        if (n < 12)
            continue;
        /* End of the question: name labels, then type and class. */
        size_t off = 12;
        while (off < (size_t)n && q[off] != 0)
            off += (size_t)q[off] + 1;
        off += 5;
        if (off > (size_t)n)
            continue;
        unsigned qtype = (unsigned)(q[off - 4] << 8 | q[off - 3]);
        f->queries++;
        if (qtype == 1)
            f->queries_a++;
        if (qtype == 28)
            f->queries_aaaa++;
        if (f->mode == FAKE_SILENT)
            continue;
        memcpy(r, q, off);
        unsigned rcode = f->mode == FAKE_SERVFAIL ? 2 : f->mode == FAKE_REFUSED ? 5
                       : f->mode == FAKE_NXDOMAIN ? 3 : 0;
        r[2] = (uint8_t)(0x80 | (q[2] & 0x79)); /* QR, opcode, RD */
        r[3] = (uint8_t)(0x80 | rcode);         /* RA, rcode */
        put16(r + 4, 1);
        put16(r + 6, 0);
        put16(r + 8, 0);
        put16(r + 10, 0);
        unsigned an = 0;
        if (f->mode == FAKE_ANSWER && qtype == 1) {
            for (int i = 0; i < f->nv4; i++, an++) {
                uint8_t *rr = r + off;
                put16(rr, 0xc00c); /* the question's name */
                put16(rr + 2, 1);
                put16(rr + 4, 1);
                put32(rr + 6, f->ttl);
                put16(rr + 10, 4);
                memcpy(rr + 12, f->v4[i], 4);
                off += 16;
            }
        } else if (f->mode == FAKE_ANSWER && qtype == 28 && f->aaaa_loopback) {
            uint8_t *rr = r + off;
            put16(rr, 0xc00c);
            put16(rr + 2, 28);
            put16(rr + 4, 1);
            put32(rr + 6, f->ttl);
            put16(rr + 10, 16);
            memset(rr + 12, 0, 16);
            rr[27] = 1;
            off += 28;
            an++;
        }
        put16(r + 6, an);
        sendto(f->fd, r, off, 0, (struct sockaddr *)&from, fl);
    }
}

static void add(discovery *d, const char *svc, uint16_t dns_port, const char *name,
                int64_t refresh, struct rec *r)
{
    char target[128], err[256];
    snprintf(target, sizeof target, "dns://127.0.0.1:%u/%s:5000", (unsigned)dns_port, name);
    if (discovery_add(d, svc, target, refresh, rec_cb, r, err, sizeof err) != LOOKASIDE_OK)
        fail_msg("discovery_add %s: %s", target, err);
}

static void test_answer_many_and_dedupe(void **state)
{
    (void)state;
    struct fake f;
    struct rec r = {0};
    discovery *d;
    fake_open(&f);
    /* 30 records, some duplicated and out of order, plus AAAA ::1. */
    static const char *const ips[] = {
        "127.0.1.30", "127.0.1.29", "127.0.1.28", "127.0.1.27", "127.0.1.26", "127.0.1.25",
        "127.0.1.24", "127.0.1.23", "127.0.1.22", "127.0.1.21", "127.0.1.20", "127.0.1.19",
        "127.0.1.18", "127.0.1.17", "127.0.1.16", "127.0.1.15", "127.0.1.14", "127.0.1.13",
        "127.0.1.12", "127.0.1.11", "127.0.1.10", "127.0.1.9",  "127.0.1.8",  "127.0.1.7",
        "127.0.1.6",  "127.0.1.5",  "127.0.1.4",  "127.0.1.3",  "127.0.1.30", "127.0.1.29",
    };
    fake_set_v4(&f, ips, 30);
    f.aaaa_loopback = 1;
    assert_int_equal(discovery_create(&d), LOOKASIDE_OK);
    add(d, "many", f.port, "many.test", 60000, &r);
    assert_true(drive_until(d, pred_calls1, &r, 3000, fake_serve, &f));
    assert_int_equal(r.st, LOOKASIDE_OK);
    assert_string_equal(r.service, "many");
    assert_int_equal(r.n, 29); /* 28 distinct IPv4 + ::1 */
    char buf[LA_ADDR_STRLEN];
    addr_format(&r.addrs[0], buf, sizeof buf);
    assert_string_equal(buf, "127.0.1.3:5000");
    addr_format(&r.addrs[27], buf, sizeof buf);
    assert_string_equal(buf, "127.0.1.30:5000");
    addr_format(&r.addrs[28], buf, sizeof buf);
    assert_string_equal(buf, "[::1]:5000");
    assert_int_equal(f.queries_a, 1);
    assert_int_equal(f.queries_aaaa, 1);
    /* Idle now: the next refresh is refresh_ms (TTL 300 s is longer) away. */
    int64_t now = clock_mono_ms();
    int64_t dl = discovery_next_deadline_ms(d, now);
    assert_true(dl > now + 55000 && dl <= now + 60000);
    discovery_destroy(d);
    fake_close(&f);
}

static void expect_failure(enum fake_mode mode, lookaside_status want, int64_t min_ms,
                           int64_t max_ms)
{
    struct fake f;
    struct rec r = {0};
    discovery *d;
    fake_open(&f);
    f.mode = mode;
    assert_int_equal(discovery_create(&d), LOOKASIDE_OK);
    int64_t t0 = clock_mono_ms();
    add(d, "web", f.port, "web.test", 60000, &r);
    assert_true(drive_until(d, pred_calls1, &r, 6000, fake_serve, &f));
    int64_t took = r.first_ms - t0;
    assert_int_equal(r.st, want);
    assert_int_equal(r.ok_calls, 0);
    if (took < min_ms || took > max_ms)
        fail_msg("failure reported after %lld ms, expected %lld..%lld", (long long)took,
                 (long long)min_ms, (long long)max_ms);
    /* One round: at most 2 tries of A and AAAA. */
    assert_true(f.queries_a >= 1 && f.queries_a <= 2);
    assert_true(f.queries_aaaa >= 1 && f.queries_aaaa <= 2);
    /* A failed round is retried after min(refresh, 1 s). */
    int64_t now = clock_mono_ms();
    int64_t dl = discovery_next_deadline_ms(d, now);
    assert_true(dl >= now + 900 && dl <= now + 1000);
    discovery_destroy(d);
    fake_close(&f);
}

static void test_servfail(void **state)
{
    (void)state;
    expect_failure(FAKE_SERVFAIL, LOOKASIDE_EUNAVAIL, 0, 1000);
}

static void test_refused(void **state)
{
    (void)state;
    expect_failure(FAKE_REFUSED, LOOKASIDE_EUNAVAIL, 0, 1000);
}

static void test_silent_server_times_out(void **state)
{
    (void)state;
    /* 2 tries of 800 ms + 1600 ms, cut at the 2.5 s round deadline. */
    expect_failure(FAKE_SILENT, LOOKASIDE_ETIMEOUT, 2000, 3500);
}

static void test_nxdomain_is_empty(void **state)
{
    (void)state;
    struct fake f;
    struct rec r = {0};
    discovery *d;
    fake_open(&f);
    f.mode = FAKE_NXDOMAIN;
    assert_int_equal(discovery_create(&d), LOOKASIDE_OK);
    add(d, "gone", f.port, "gone.test", 60000, &r);
    assert_true(drive_until(d, pred_calls1, &r, 3000, fake_serve, &f));
    assert_int_equal(r.st, LOOKASIDE_OK);
    assert_int_equal(r.n, 0);
    discovery_destroy(d);
    fake_close(&f);
}

static void test_closed_port(void **state)
{
    (void)state;
    struct rec r = {0};
    discovery *d;
    int port = free_udp_port();
    assert_true(port > 0);
    assert_int_equal(discovery_create(&d), LOOKASIDE_OK);
    int64_t t0 = clock_mono_ms();
    add(d, "web", (uint16_t)port, "web.test", 60000, &r);
    assert_true(drive_until(d, pred_calls1, &r, 5000, NULL, NULL));
    assert_true(r.st != LOOKASIDE_OK);
    assert_true(r.first_ms - t0 <= 3200);
    discovery_destroy(d);
}

/* A failure between two answers: callback with non-OK, then the set again. */
static void test_failure_then_recovery(void **state)
{
    (void)state;
    struct fake f;
    struct rec r = {0};
    discovery *d;
    static const char *const ips[] = {"127.0.0.2"};
    fake_open(&f);
    fake_set_v4(&f, ips, 1);
    assert_int_equal(discovery_create(&d), LOOKASIDE_OK);
    add(d, "web", f.port, "web.test", 200, &r);
    assert_true(drive_until(d, pred_calls1, &r, 3000, fake_serve, &f));
    assert_int_equal(r.st, LOOKASIDE_OK);
    assert_string_equal(r.set, "127.0.0.2:5000");
    f.mode = FAKE_SERVFAIL;
    assert_true(drive_until(d, pred_calls2, &r, 3000, fake_serve, &f));
    assert_int_equal(r.st, LOOKASIDE_EUNAVAIL);
    assert_string_equal(r.set, "127.0.0.2:5000"); /* untouched by the failure */
    f.mode = FAKE_ANSWER;
    assert_true(drive_until(d, pred_ok2, &r, 3000, fake_serve, &f));
    assert_int_equal(r.st, LOOKASIDE_OK);
    assert_string_equal(r.set, "127.0.0.2:5000");
    discovery_destroy(d);
    fake_close(&f);
}

/* Interval between the first two OK callbacks for a given TTL/refresh. */
static int64_t ok_gap(uint32_t ttl, int64_t refresh)
{
    struct fake f;
    struct rec r = {0};
    discovery *d;
    static const char *const ips[] = {"127.0.0.2"};
    fake_open(&f);
    fake_set_v4(&f, ips, 1);
    f.ttl = ttl;
    assert_int_equal(discovery_create(&d), LOOKASIDE_OK);
    add(d, "web", f.port, "web.test", refresh, &r);
    assert_true(drive_until(d, pred_ok2, &r, 5000, fake_serve, &f));
    discovery_destroy(d);
    fake_close(&f);
    return r.ok_ms[1] - r.ok_ms[0];
}

static void test_ttl_rule(void **state)
{
    (void)state;
    int64_t g;
    /* TTL 2 s < refresh 60 s: refresh after the TTL. */
    g = ok_gap(2, 60000);
    if (g < 1900 || g > 2800)
        fail_msg("TTL 2: gap %lld ms", (long long)g);
    /* TTL 0: never more often than 1 s. */
    g = ok_gap(0, 60000);
    if (g < 950 || g > 1800)
        fail_msg("TTL 0: gap %lld ms", (long long)g);
    /* refresh 300 ms < TTL: refresh wins (also below the 1 s TTL floor). */
    g = ok_gap(1, 300);
    if (g < 280 || g > 900)
        fail_msg("refresh 300: gap %lld ms", (long long)g);
}

/* With a silent server and a short refresh, rounds never overlap, and the
 * deadline is at most DISCOVERY_POLL_MS away while a round is in flight. */
static void test_one_round_in_flight(void **state)
{
    (void)state;
    struct fake f;
    struct rec r = {0};
    discovery *d;
    fake_open(&f);
    f.mode = FAKE_SILENT;
    assert_int_equal(discovery_create(&d), LOOKASIDE_OK);
    add(d, "web", f.port, "web.test", 100, &r);
    int64_t t0 = clock_mono_ms();
    discovery_process(d, t0); /* starts the round */
    int64_t dl = discovery_next_deadline_ms(d, t0);
    assert_true(dl >= t0 && dl <= t0 + 10);
    assert_true(drive_until(d, pred_calls1, &r, 4000, fake_serve, &f));
    assert_true(f.queries_a <= 2 && f.queries_aaaa <= 2);
    discovery_destroy(d);
    fake_close(&f);
}

static void never_cb(void *arg, const char *service, lookaside_status st, const la_addr *addrs,
                     size_t n)
{
    (void)arg;
    (void)st;
    (void)addrs;
    (void)n;
    fail_msg("callback for %s after destroy", service);
}

static void test_destroy_in_flight(void **state)
{
    (void)state;
    struct fake f;
    discovery *d;
    char err[256], target[128];
    fake_open(&f);
    f.mode = FAKE_SILENT;
    assert_int_equal(discovery_create(&d), LOOKASIDE_OK);
    snprintf(target, sizeof target, "dns://127.0.0.1:%u/web.test:5000", (unsigned)f.port);
    assert_int_equal(discovery_add(d, "web", target, 1000, never_cb, NULL, err, sizeof err),
                     LOOKASIDE_OK);
    int port = free_udp_port();
    snprintf(target, sizeof target, "dns://127.0.0.1:%d/web.test:5000", port);
    assert_int_equal(discovery_add(d, "web2", target, 1000, never_cb, NULL, err, sizeof err),
                     LOOKASIDE_OK);
    discovery_process(d, clock_mono_ms());
    poll(NULL, 0, 50); /* the closed port's error is pending now */
    fake_serve(&f);
    assert_true(f.queries >= 2);
    discovery_destroy(d);
    fake_close(&f);
}

struct adder {
    discovery *d;
    uint16_t port;
    struct rec first, second;
    int added;
};

static void adding_cb(void *arg, const char *service, lookaside_status st, const la_addr *addrs,
                      size_t n)
{
    struct adder *a = arg;
    rec_cb(&a->first, service, st, addrs, n);
    if (!a->added) {
        char target[128], err[256];
        a->added = 1;
        snprintf(target, sizeof target, "dns://127.0.0.1:%u/two.test:6000", (unsigned)a->port);
        assert_int_equal(discovery_add(a->d, "two", target, 60000, rec_cb, &a->second, err,
                                       sizeof err),
                         LOOKASIDE_OK);
        assert_true(discovery_next_deadline_ms(a->d, clock_mono_ms()) <= clock_mono_ms());
    }
}

static int pred_second(void *arg) { return ((struct adder *)arg)->second.calls >= 1; }

static void test_add_from_callback(void **state)
{
    (void)state;
    struct fake f;
    struct adder a;
    char err[256], target[128];
    static const char *const ips[] = {"127.0.0.2"};
    memset(&a, 0, sizeof a);
    fake_open(&f);
    fake_set_v4(&f, ips, 1);
    assert_int_equal(discovery_create(&a.d), LOOKASIDE_OK);
    a.port = f.port;
    snprintf(target, sizeof target, "dns://127.0.0.1:%u/one.test:5000", (unsigned)f.port);
    /* Several entries so the array grows inside the callback. */
    for (int i = 0; i < 3; i++) {
        char svc[16];
        snprintf(svc, sizeof svc, "one%d", i);
        assert_int_equal(discovery_add(a.d, svc, target, 60000, adding_cb, &a, err, sizeof err),
                         LOOKASIDE_OK);
    }
    assert_true(drive_until(a.d, pred_second, &a, 3000, fake_serve, &f));
    assert_string_equal(a.second.service, "two");
    assert_string_equal(a.second.set, "127.0.0.2:6000");
    discovery_destroy(a.d);
    fake_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answer_many_and_dedupe),
        cmocka_unit_test(test_servfail),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_silent_server_times_out),
        cmocka_unit_test(test_nxdomain_is_empty),
        cmocka_unit_test(test_closed_port),
        cmocka_unit_test(test_failure_then_recovery),
        cmocka_unit_test(test_ttl_rule),
        cmocka_unit_test(test_one_round_in_flight),
        cmocka_unit_test(test_destroy_in_flight),
        cmocka_unit_test(test_add_from_callback),
    };
    return cmocka_run_group_tests_name("it.discovery.fakedns", tests, NULL, NULL);
}
