/* Unit tests for the small pieces of liblookaside: reconnect backoff,
 * process CPU measurement, balancer target lists. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "lbconn.h"
#include "procload.h"
#include "util.h"

static void test_backoff(void **st)
{
    (void)st;
    la_backoff b;
    backoff_init(&b, 100, 1000, 42);
    /* The defaults: 100 ms doubling to a cap of 1 s, each wait 60..100 % of
     * its base, so never above the cap. */
    static const int64_t base[] = {100, 200, 400, 800, 1000, 1000, 1000, 1000};
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < sizeof base / sizeof base[0]; i++) {
            int64_t w = backoff_next(&b);
            assert_true(w >= base[i] * 6 / 10 && w <= base[i]);
        }
        backoff_reset(&b);
    }
    /* Jitter spreads: 200 capped waits of differently seeded clients. */
    int64_t lo = INT64_MAX, hi = 0;
    for (int i = 0; i < 200; i++) {
        backoff_init(&b, 1000, 1000, (uint64_t)i);
        int64_t w = backoff_next(&b);
        lo = w < lo ? w : lo;
        hi = w > hi ? w : hi;
    }
    assert_true(lo >= 600 && lo < 700 && hi > 900 && hi <= 1000);
    for (int i = 0; i < 1000; i++) {
        double r = backoff_rand(&b);
        assert_true(r >= 0 && r < 1);
    }
}

static void test_procload(void **st)
{
    (void)st;
    procload p;
    procload_init(&p, 1);
    assert_int_equal(p.cores, 1);
    /* Spin ~200 ms on one core: up to 1.0 of one core (less when the machine
     * is busy and we get preempted, so only a loose lower bound). */
    int64_t end = clock_mono_ms() + 200;
    volatile uint64_t x = 0;
    while (clock_mono_ms() < end)
        x++;
    double cpu = procload_cpu(&p);
    assert_true(cpu > 0.05 && cpu < 1.5);
    assert_true(procload_cores() >= 1);
    double mem = procload_mem();
    assert_true(mem > 0 && mem <= 1);
}

static void test_targets(void **st)
{
    (void)st;
    char **v;
    size_t n;
    assert_int_equal(la_targets_split("a:1, b:2 ,dns:///c:3", &v, &n), LOOKASIDE_OK);
    assert_int_equal(n, 3);
    assert_string_equal(v[0], "a:1");
    assert_string_equal(v[1], "b:2");
    assert_string_equal(v[2], "dns:///c:3");
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
    assert_int_equal(la_targets_split("a:1,", &v, &n), LOOKASIDE_EINVAL);
    assert_int_equal(la_targets_split("", &v, &n), LOOKASIDE_EINVAL);
    assert_int_equal(la_targets_split(NULL, &v, &n), LOOKASIDE_EINVAL);
    assert_null(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_procload),
        cmocka_unit_test(test_targets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
