/* unit.discovery.parse - target and spec parsing, address-set
 * normalisation, argument checks of discovery_add. No network. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "discovery.h"

static void parse_ok(const char *target, const char *name, unsigned port, const char *server)
{
    discovery_target t;
    char err[256] = "";
    lookaside_status st = discovery_parse_target(target, &t, err, sizeof err);
    if (st != LOOKASIDE_OK)
        fail_msg("\"%s\" rejected: %s", target, err);
    assert_string_equal(t.name, name);
    assert_int_equal(t.port, port);
    if (server == NULL) {
        assert_false(t.has_server);
    } else {
        char buf[LA_ADDR_STRLEN];
        assert_true(t.has_server);
        addr_format(&t.server, buf, sizeof buf);
        assert_string_equal(buf, server);
    }
}

static void parse_bad(const char *target, const char *msg_part)
{
    discovery_target t;
    char err[256] = "";
    memset(&t, 0x5a, sizeof t);
    lookaside_status st = discovery_parse_target(target, &t, err, sizeof err);
    if (st != LOOKASIDE_EINVAL)
        fail_msg("\"%.60s\" accepted (status %d)", target ? target : "(null)", (int)st);
    assert_true(strlen(err) > 0);
    if (msg_part != NULL && strstr(err, msg_part) == NULL)
        fail_msg("\"%.60s\": message \"%s\" lacks \"%s\"", target ? target : "(null)", err,
                 msg_part);
    /* Also without an error buffer. */
    assert_int_equal(discovery_parse_target(target, &t, NULL, 0), LOOKASIDE_EINVAL);
}

static void test_target_good(void **state)
{
    (void)state;
    parse_ok("dns:///web.prod.svc.cluster.local:5000", "web.prod.svc.cluster.local", 5000, NULL);
    parse_ok("dns://127.0.0.1:1053/web.test:5000", "web.test", 5000, "127.0.0.1:1053");
    parse_ok("dns://127.0.0.1/web.test:80", "web.test", 80, "127.0.0.1:53");
    parse_ok("dns://[::1]:5353/web.test:1", "web.test", 1, "[::1]:5353");
    parse_ok("dns://[::1]/a:65535", "a", 65535, "[::1]:53");
    parse_ok("dns:web.test:5000", "web.test", 5000, NULL);
    parse_ok("DNS:///Web.Test:5000", "Web.Test", 5000, NULL);
    parse_ok("dns:///web.test.:5000", "web.test.", 5000, NULL);
    parse_ok("dns:///_grpc-lb._tcp.x-1.test:443", "_grpc-lb._tcp.x-1.test", 443, NULL);
    parse_ok("dns:///0web.test:05000", "0web.test", 5000, NULL);
    parse_ok("dns:///localhost:1", "localhost", 1, NULL);

    /* Longest name: 253 bytes in labels of 63. */
    char name[254], target[400];
    memset(name, 'a', 253);
    name[253] = '\0';
    name[63] = name[127] = name[191] = '.';
    snprintf(target, sizeof target, "dns:///%s:9", name);
    parse_ok(target, name, 9, NULL);
}

static void test_target_bad(void **state)
{
    (void)state;
    parse_bad(NULL, "empty");
    parse_bad("", "empty");
    /* Port. */
    parse_bad("dns:///web.test", "missing port");
    parse_bad("dns:///web.test:", "1..65535");
    parse_bad("dns:///web.test:0", "1..65535");
    parse_bad("dns:///web.test:99999", "1..65535");
    parse_bad("dns:///web.test:65536", "1..65535");
    parse_bad("dns:///web.test:-1", "1..65535");
    parse_bad("dns:///web.test:5x", "1..65535");
    parse_bad("dns:///web.test:123456", "1..65535");
    parse_bad("dns:///web.test:+80", "1..65535");
    parse_bad("dns:///web.test: 80", "1..65535");
    /* Name. */
    parse_bad("dns:///:5000", "empty name");
    parse_bad("dns:///-bad.test:5000", "'-'");
    parse_bad("dns:///bad-.test:5000", "'-'");
    parse_bad("dns:///bad..name:5000", "empty label");
    parse_bad("dns:///.bad:5000", "empty label");
    parse_bad("dns:///.:5000", "empty name");
    parse_bad("dns:///bad!name:5000", "invalid character");
    parse_bad("dns:///bad name:5000", "invalid character");
    parse_bad("dns:///web.test/x:5000", "invalid character");
    parse_bad("dns:///web.test?x=1:5000", "invalid character");
    parse_bad("dns:///1.2.3.4:5000", "not an IP address");
    parse_bad("dns:///[::1]:5000", "not an IP address");
    parse_bad("dns:///web.123:5000", "all digits");
    parse_bad("dns:///w\xc3\xa9.test:5000", "invalid character");
    /* Authority. */
    parse_bad("dns://localhost/web.test:5000", "must be an IP address");
    parse_bad("dns://127.0.0.1:0/web.test:5000", "1..65535");
    parse_bad("dns://127.0.0.1:70000/web.test:5000", "1..65535");
    parse_bad("dns://127.0.0.1:/web.test:5000", "1..65535");
    parse_bad("dns://1.2.3/web.test:5000", "must be an IP address");
    parse_bad("dns://256.1.1.1/web.test:5000", "must be an IP address");
    parse_bad("dns://[::1/web.test:5000", "']'");
    parse_bad("dns://[zz]:53/web.test:5000", "not an IPv6 address");
    parse_bad("dns://[::1]x/web.test:5000", "':PORT'");
    parse_bad("dns://::1/web.test:5000", "brackets");
    parse_bad("dns://user@127.0.0.1/web.test:5000", "must be an IP address");
    parse_bad("dns://127.0.0.1:53", "missing '/'");
    parse_bad("dns://127.0.0.1:53/", "missing NAME:PORT");
    parse_bad("dns:///", "missing NAME:PORT");
    parse_bad("dns:", "missing NAME:PORT");
    parse_bad("dns:/web.test:5000", "expected dns:///");
    /* Scheme. */
    parse_bad("http://127.0.0.1/web.test:5000", "unsupported scheme \"http\"");
    parse_bad("xds:///web.test:5000", "unsupported scheme \"xds\"");
    parse_bad("ipv4:127.0.0.1:5000", "must start with dns:");
    parse_bad("web.test:5000", "must start with dns:");
    parse_bad("dnsx:///web.test:5000", "unsupported scheme \"dnsx\"");

    /* Too long: a 254-byte name, a 64-byte label, a huge target. */
    char name[300], target[12000];
    memset(name, 'a', 254);
    name[254] = '\0';
    name[63] = name[127] = name[191] = '.';
    snprintf(target, sizeof target, "dns:///%s:9", name);
    parse_bad(target, "longer than 253");
    memset(name, 'b', 64);
    strcpy(name + 64, ".test");
    snprintf(target, sizeof target, "dns:///%s:9", name);
    parse_bad(target, "longer than 63");
    memset(target, 'c', sizeof target - 1);
    memcpy(target, "dns:///", 7);
    strcpy(target + sizeof target - 8, ".t:5000");
    parse_bad(target, "longer than");
}

static void test_spec(void **state)
{
    (void)state;
    char svc[254], tgt[DISCOVERY_TARGET_MAX + 1], err[256];
    assert_int_equal(discovery_parse_spec("web=dns:///web.prod.svc.cluster.local:5000", svc,
                                          sizeof svc, tgt, sizeof tgt, err, sizeof err),
                     LOOKASIDE_OK);
    assert_string_equal(svc, "web");
    assert_string_equal(tgt, "dns:///web.prod.svc.cluster.local:5000");
    assert_int_equal(discovery_parse_spec("api.v2=dns://127.0.0.1:1053/api.test:80", svc,
                                          sizeof svc, tgt, sizeof tgt, err, sizeof err),
                     LOOKASIDE_OK);
    assert_string_equal(svc, "api.v2");
    assert_string_equal(tgt, "dns://127.0.0.1:1053/api.test:80");

    static const char *bad[] = {
        "",
        "web",
        "=dns:///web.test:5000",
        "web=",
        "web=dns:///web.test",
        "web=http://x/web.test:5000",
        "bad service=dns:///web.test:5000",
        "-web=dns:///web.test:5000",
        "web=dns:///web.test:0",
        "web==dns:///web.test:5000",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (discovery_parse_spec(bad[i], svc, sizeof svc, tgt, sizeof tgt, err, sizeof err) !=
            LOOKASIDE_EINVAL)
            fail_msg("spec \"%s\" accepted", bad[i]);
        assert_true(strlen(err) > 0);
    }
    assert_int_equal(discovery_parse_spec(NULL, svc, sizeof svc, tgt, sizeof tgt, NULL, 0),
                     LOOKASIDE_EINVAL);

    /* Service name too long. */
    char spec[600];
    memset(spec, 's', 254);
    strcpy(spec + 254, "=dns:///web.test:5000");
    assert_int_equal(discovery_parse_spec(spec, svc, sizeof svc, tgt, sizeof tgt, err, sizeof err),
                     LOOKASIDE_EINVAL);
    /* Output buffers too small. */
    assert_int_equal(discovery_parse_spec("web=dns:///web.test:5000", svc, 3, tgt, sizeof tgt, err,
                                          sizeof err),
                     LOOKASIDE_EINVAL);
    assert_non_null(strstr(err, "too small"));
    assert_int_equal(discovery_parse_spec("web=dns:///web.test:5000", svc, sizeof svc, tgt, 10,
                                          err, sizeof err),
                     LOOKASIDE_EINVAL);
    /* A tiny error buffer is truncated, never overrun. */
    char tiny[4];
    assert_int_equal(discovery_parse_spec("web", svc, sizeof svc, tgt, sizeof tgt, tiny,
                                          sizeof tiny),
                     LOOKASIDE_EINVAL);
    assert_int_equal(strlen(tiny), 3);
}

static la_addr mk(const char *s)
{
    la_addr a;
    assert_int_equal(addr_parse(s, &a), LOOKASIDE_OK);
    return a;
}

static void test_normalize(void **state)
{
    (void)state;
    la_addr a[8];
    a[0] = mk("[::1]:80");
    a[1] = mk("127.0.0.3:80");
    a[2] = mk("127.0.0.2:80");
    a[3] = mk("127.0.0.3:80");
    a[4] = mk("[::1]:80");
    a[5] = mk("127.0.0.10:80");
    a[6] = mk("[::]:80");
    a[7] = mk("127.0.0.2:79");
    size_t n = discovery_addrs_normalize(a, 8);
    static const char *want[] = {"127.0.0.2:79", "127.0.0.2:80", "127.0.0.3:80",
                                 "127.0.0.10:80", "[::]:80",     "[::1]:80"};
    assert_int_equal(n, 6);
    for (size_t i = 0; i < n; i++) {
        char buf[LA_ADDR_STRLEN];
        addr_format(&a[i], buf, sizeof buf);
        assert_string_equal(buf, want[i]);
    }
    assert_int_equal(discovery_addrs_normalize(a, 1), 1);
    assert_int_equal(discovery_addrs_normalize(a, 0), 0);
    assert_int_equal(discovery_addrs_normalize(NULL, 3), 0);
}

static void never_cb(void *arg, const char *service, lookaside_status st, const la_addr *addrs,
                     size_t n)
{
    (void)arg;
    (void)service;
    (void)st;
    (void)addrs;
    (void)n;
    fail_msg("unexpected callback");
}

static void test_add_checks(void **state)
{
    (void)state;
    discovery *d = NULL;
    char err[256];
    assert_int_equal(discovery_create(&d), LOOKASIDE_OK);
    assert_int_equal(discovery_next_deadline_ms(d, 1000), INT64_MAX);
    discovery_process(d, 1000); /* nothing to do */

    assert_int_equal(discovery_add(d, "web", "dns:///web.test", 1000, never_cb, NULL, err,
                                   sizeof err),
                     LOOKASIDE_EINVAL);
    assert_non_null(strstr(err, "missing port"));
    assert_int_equal(discovery_add(d, "bad svc", "dns:///web.test:1", 1000, never_cb, NULL, err,
                                   sizeof err),
                     LOOKASIDE_EINVAL);
    assert_int_equal(discovery_add(d, NULL, "dns:///web.test:1", 1000, never_cb, NULL, err,
                                   sizeof err),
                     LOOKASIDE_EINVAL);
    assert_int_equal(discovery_add(d, "web", "dns:///web.test:1", 1000, NULL, NULL, err,
                                   sizeof err),
                     LOOKASIDE_EINVAL);
    assert_int_equal(discovery_add(d, "web", "dns:///web.test:1", 0, never_cb, NULL, err,
                                   sizeof err),
                     LOOKASIDE_EINVAL);
    assert_non_null(strstr(err, "refresh"));
    assert_int_equal(discovery_add(d, "web", "dns:///web.test:1", DISCOVERY_REFRESH_MAX_MS + 1LL,
                                   never_cb, NULL, err, sizeof err),
                     LOOKASIDE_EINVAL);
    assert_int_equal(discovery_add(NULL, "web", "dns:///web.test:1", 1000, never_cb, NULL, err,
                                   sizeof err),
                     LOOKASIDE_EINVAL);
    assert_int_equal(discovery_next_deadline_ms(d, 1000), INT64_MAX);

    /* A good one (never driven: no query is sent) and a duplicate. */
    assert_int_equal(discovery_add(d, "web", "dns://127.0.0.1:9/web.test:1", 1000, never_cb, NULL,
                                   err, sizeof err),
                     LOOKASIDE_OK);
    assert_int_equal(discovery_add(d, "web", "dns://127.0.0.1:9/other.test:1", 1000, never_cb,
                                   NULL, err, sizeof err),
                     LOOKASIDE_EEXIST);
    assert_non_null(strstr(err, "already"));
    /* Due at once. */
    assert_int_equal(discovery_next_deadline_ms(d, 5000), 5000);
    discovery_destroy(d);
    discovery_destroy(NULL);
    assert_int_equal(discovery_next_deadline_ms(NULL, 1), INT64_MAX);
    discovery_process(NULL, 1);
    assert_int_equal(discovery_create(NULL), LOOKASIDE_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_target_good), cmocka_unit_test(test_target_bad),
        cmocka_unit_test(test_spec),        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_add_checks),
    };
    return cmocka_run_group_tests_name("unit.discovery.parse", tests, NULL, NULL);
}
