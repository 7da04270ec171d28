#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <sys/socket.h>

#include "util.h"
#include "status.h"

static void test_addr_parse_v4(void **st)
{
    (void)st;
    la_addr a;
    char buf[LA_ADDR_STRLEN];
    assert_int_equal(addr_parse("127.0.0.2:5000", &a), LOOKASIDE_OK);
    assert_int_equal(a.family, AF_INET);
    assert_int_equal(a.port, 5000);
    assert_int_equal(a.ip[0], 127);
    assert_int_equal(a.ip[3], 2);
    addr_format(&a, buf, sizeof buf);
    assert_string_equal(buf, "127.0.0.2:5000");
}

static void test_addr_parse_v6(void **st)
{
    (void)st;
    la_addr a;
    char buf[LA_ADDR_STRLEN];
    assert_int_equal(addr_parse("[::1]:65535", &a), LOOKASIDE_OK);
    assert_int_equal(a.family, AF_INET6);
    assert_int_equal(a.ip[15], 1);
    addr_format(&a, buf, sizeof buf);
    assert_string_equal(buf, "[::1]:65535");
    /* Non-canonical input gets the canonical form. */
    assert_int_equal(addr_parse("[0:0::1]:1", &a), LOOKASIDE_OK);
    addr_format(&a, buf, sizeof buf);
    assert_string_equal(buf, "[::1]:1");
}

static void test_addr_parse_bad(void **st)
{
    (void)st;
    static const char *bad[] = {"", ":", "1.2.3.4", "1.2.3.4:", "1.2.3.4:0", "1.2.3.4:65536",
                                "1.2.3.4:99999999999", "1.2.3:80", "host:80", "[::1]80",
                                "[::1", "::1:80", "1.2.3.4:8a", "1.2.3.4:-1", "[zz]:1",
                                "1.2.3.4:+80", " 1.2.3.4:80"};
    la_addr a;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(addr_parse(bad[i], &a), LOOKASIDE_EINVAL);
    assert_int_equal(addr_parse(NULL, &a), LOOKASIDE_EINVAL);
}

static void test_names(void **st)
{
    (void)st;
    char big[300];
    assert_true(name_valid("web"));
    assert_true(name_valid("web.prod.svc.cluster.local"));
    assert_true(name_valid("a_b-c.d9"));
    assert_false(name_valid(""));
    assert_false(name_valid(NULL));
    assert_false(name_valid("-web"));
    assert_false(name_valid("web..prod"));
    assert_false(name_valid("web prod"));
    assert_false(name_valid("web'; DROP TABLE x;--"));
    assert_false(name_valid("web:5000"));
    memset(big, 'a', sizeof big);
    big[64] = '\0';
    assert_false(name_valid(big));           /* one label of 64 bytes */
    for (int i = 0; i < 299; i++)
        big[i] = (i % 10 == 9) ? '.' : 'a';
    big[253] = '\0';
    big[252] = 'a';
    assert_true(name_valid(big));            /* 253 bytes */
    big[253] = 'a';
    big[254] = '\0';
    assert_false(name_valid(big));           /* 254 bytes */
    assert_true(zone_valid(""));
    assert_true(zone_valid("us-east1-b"));
    assert_false(zone_valid("us east"));
}

static void test_status(void **st)
{
    (void)st;
    assert_string_equal(lookaside_status_str(LOOKASIDE_OK), "ok");
    assert_int_equal(la_status_to_grpc(LOOKASIDE_EINVAL), GRPC_STATUS_INVALID_ARGUMENT);
    assert_int_equal(la_status_to_grpc(LOOKASIDE_ETOOBIG), GRPC_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(la_status_to_grpc(LOOKASIDE_EUNAUTH), GRPC_STATUS_UNAUTHENTICATED);
    assert_string_equal(lookaside_status_str((lookaside_status)999), "unknown status");
}

static void test_hash(void **st)
{
    (void)st;
    char a[17], b[17];
    hash_hex64("web|1.2.3.4:80", 14, a);
    hash_hex64("web|1.2.3.4:80", 14, b);
    assert_string_equal(a, b);
    assert_int_equal(strlen(a), 16);
    hash_hex64("web|1.2.3.4:81", 14, b);
    assert_string_not_equal(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_parse_v4), cmocka_unit_test(test_addr_parse_v6),
        cmocka_unit_test(test_addr_parse_bad), cmocka_unit_test(test_names),
        cmocka_unit_test(test_status), cmocka_unit_test(test_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
