/* Unit tests for the small pieces of liblookaside: reconnect backoff,
 * process CPU measurement, balancer target lists, the args channels are
 * opened with. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <grpc/grpc.h>

#include "backoff.h"
#include "channel.h"
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

static const grpc_arg *find_arg(const grpc_arg *v, size_t n, const char *key)
{
    const grpc_arg *found = NULL;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i].key, key) == 0) {
            assert_null(found); /* every key once */
            found = &v[i];
        }
    }
    return found;
}

/* The balancer channel gets a fixed HTTP/2 window (no BDP probing), backend
 * and fallback channels do not, and the application's own value for any of
 * the library's keys wins. */
static void test_channel_args(void **st)
{
    (void)st;
    grpc_arg v[16];
    size_t n = la_channel_args(NULL, LA_CHAN_BALANCER, 100, 500, v);
    const grpc_arg *a = find_arg(v, n, GRPC_ARG_HTTP2_BDP_PROBE);
    assert_non_null(a);
    assert_int_equal(a->type, GRPC_ARG_INTEGER);
    assert_int_equal(a->value.integer, 0);
    a = find_arg(v, n, GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES);
    assert_non_null(a);
    assert_int_equal(a->value.integer, LA_BALANCER_WINDOW);
    assert_null(find_arg(v, n, GRPC_ARG_LB_POLICY_NAME));
    a = find_arg(v, n, GRPC_ARG_MIN_RECONNECT_BACKOFF_MS);
    assert_non_null(a);
    assert_int_equal(a->value.integer, 2000);

    for (int kind = LA_CHAN_BACKEND; kind <= LA_CHAN_FALLBACK; kind++) {
        n = la_channel_args(NULL, (la_chan_kind)kind, 1000, 10000, v);
        assert_null(find_arg(v, n, GRPC_ARG_HTTP2_BDP_PROBE));
        assert_null(find_arg(v, n, GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES));
        assert_int_equal(find_arg(v, n, GRPC_ARG_MAX_RECONNECT_BACKOFF_MS)->value.integer,
                         10000);
        assert_true((find_arg(v, n, GRPC_ARG_LB_POLICY_NAME) != NULL) ==
                    (kind == LA_CHAN_FALLBACK));
    }

    /* The application asks for BDP probing and its own window. */
    grpc_arg app[2] = {
        {.type = GRPC_ARG_INTEGER, .key = (char *)GRPC_ARG_HTTP2_BDP_PROBE, .value.integer = 1},
        {.type = GRPC_ARG_INTEGER,
         .key = (char *)GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES,
         .value.integer = 1 << 20},
    };
    grpc_channel_args aa = {2, app};
    grpc_init();
    la_chan_cfg cfg;
    assert_int_equal(la_chan_cfg_init(&cfg, NULL, &aa), LOOKASIDE_OK);
    n = la_channel_args(&cfg, LA_CHAN_BALANCER, 100, 500, v);
    assert_int_equal(find_arg(v, n, GRPC_ARG_HTTP2_BDP_PROBE)->value.integer, 1);
    assert_int_equal(find_arg(v, n, GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES)->value.integer,
                     1 << 20);
    assert_non_null(find_arg(v, n, GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS));
    /* And a channel opens with them. */
    grpc_channel *ch = la_channel_open(&cfg, "127.0.0.1:1", LA_CHAN_BALANCER, 100, 500);
    assert_non_null(ch);
    grpc_channel_destroy(ch);
    la_chan_cfg_free(&cfg);
    grpc_shutdown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_procload),
        cmocka_unit_test(test_targets),
        cmocka_unit_test(test_channel_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
