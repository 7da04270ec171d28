/* The client's side of the Watch protocol against in-process fake servers
 * (fake_srv.c): heartbeats refresh a list's freshness without touching it,
 * self-preservation keeps backends a list drops all at once, and the
 * client and the reporter come back quickly to a balancer that was away. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <grpc/grpc.h>

#include "client_internal.h"
#include "echo_call.h"
#include "fake_srv.h"
#include "lookaside.h"
#include "util.h"

#define SVC "watch.test"
#define NB 4

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static lookaside_service_info info_of(lookaside_client *c)
{
    lookaside_service_info info;
    assert_int_equal(lookaside_client_service_info(c, SVC, &info), LOOKASIDE_OK);
    return info;
}

/* Waits (10 s at most) until service_info's stale flag equals want. */
static bool wait_stale(lookaside_client *c, bool want)
{
    for (int i = 0; i < 1000; i++) {
        if (info_of(c).stale == want)
            return true;
        sleep_ms(10);
    }
    return false;
}

static lookaside_client *client_on(const char *lb)
{
    lookaside_client_options o;
    lookaside_client_options_init(&o);
    o.lb_target = lb;
    lookaside_client *c;
    assert_int_equal(lookaside_client_create(&o, &c), LOOKASIDE_OK);
    assert_int_equal(lookaside_client_watch(c, SVC, NULL), LOOKASIDE_OK);
    return c;
}

static void test_heartbeat(void **st)
{
    (void)st;
    grpc_init();
    fake_srv *f = fake_start(NULL, 0);
    assert_non_null(f);
    fake_backend one[] = {{fake_addr(f), 100, false}};
    fake_set_list(f, one, 1, 5, 1000);
    lookaside_client *c = client_on(fake_addr(f));
    assert_int_equal(lookaside_client_wait_ready(c, SVC, 10000), LOOKASIDE_OK);
    fake_counts fc;
    fake_counts_get(f, &fc);
    assert_int_equal(fc.heartbeat_ok, 1); /* the client asked for heartbeats */

    /* Quiet: the list goes stale (and stays in use). */
    assert_true(wait_stale(c, true));
    /* A heartbeat for the version in use: fresh again, same list. */
    fake_heartbeat(f, 5, 1000);
    assert_true(wait_stale(c, false));
    lookaside_service_info info = info_of(c);
    assert_int_equal(info.version, 5);
    assert_int_equal(info.backends, 1);
    assert_int_equal(info.pickable, 1);
    assert_int_equal(info.lists_received, 1);
    struct lookaside_pick p;
    assert_int_equal(lookaside_pick(c, SVC, &p), LOOKASIDE_OK);
    assert_string_equal(p.address, fake_addr(f));
    lookaside_pick_done(c, &p, GRPC_STATUS_OK, 0);

    /* Stale again; a heartbeat for another version confirms nothing. Then a
     * real list (version 6) is applied and makes it fresh. */
    assert_true(wait_stale(c, true));
    fake_heartbeat(f, 9, 1000);
    sleep_ms(300);
    info = info_of(c);
    assert_true(info.stale);
    assert_int_equal(info.backends, 1);
    fake_set_list(f, one, 1, 6, 1000);
    assert_true(wait_stale(c, false));
    assert_int_equal(info_of(c).version, 6);

    lookaside_client_destroy(c);
    fake_stop(f);
    grpc_shutdown();
}

static fake_srv *srv[NB];

static bool wait_backends(lookaside_client *c, size_t want, int ready_want)
{
    lookaside_backend_info bi[NB];
    for (int t = 0; t < 1000; t++) {
        size_t n = 0;
        assert_int_equal(lookaside_client_backends(c, SVC, bi, NB, &n), LOOKASIDE_OK);
        int ready = 0;
        for (size_t i = 0; i < n && i < NB; i++)
            ready += bi[i].connectivity == GRPC_CHANNEL_READY;
        if (n == want && (ready_want < 0 || ready == ready_want))
            return true;
        sleep_ms(10);
    }
    return false;
}

static bool wait_applied(lookaside_client *c, uint64_t n)
{
    for (int i = 0; i < 1000; i++) {
        if (client_lists_applied(c, SVC) >= n)
            return true;
        sleep_ms(10);
    }
    return false;
}

static void inject(lookaside_client *c, const bool *in, const bool *draining, uint64_t version)
{
    client_test_backend l[NB];
    size_t n = 0;
    for (int i = 0; i < NB; i++)
        if (in[i])
            l[n++] = (client_test_backend){fake_addr(srv[i]), 100, NULL, draining && draining[i]};
    assert_int_equal(client_inject_list(c, SVC, l, n, version), LOOKASIDE_OK);
    assert_true(wait_applied(c, version));
}

static void test_self_preservation(void **st)
{
    (void)st;
    grpc_init();
    for (int i = 0; i < NB; i++)
        assert_non_null(srv[i] = fake_start(NULL, 0));
    lookaside_client *c = client_on("127.0.0.1:1"); /* lists come by injection */
    const bool all[NB] = {true, true, true, true}, none[NB] = {0};
    const bool only0[NB] = {true, false, false, false};
    const bool drain23[NB] = {false, false, true, true};
    inject(c, all, NULL, 1);
    assert_true(wait_backends(c, 4, 4));

    /* Drained first, then dropped: they leave at once and do not count.
     * Of the two serving ones, one may go (half). */
    inject(c, all, drain23, 2);
    inject(c, only0, NULL, 3);
    assert_true(wait_backends(c, 1, -1));

    /* All four serving and connected, then empty lists: half leave each
     * time (2, then 1); the kept ones are still picked. */
    inject(c, all, NULL, 4);
    assert_true(wait_backends(c, 4, 4));
    inject(c, none, NULL, 5);
    assert_true(wait_backends(c, 2, 2));
    lookaside_service_info info = info_of(c);
    assert_int_equal(info.pickable, 2);
    assert_int_equal(info.held, 2);
    inject(c, none, NULL, 6);
    assert_true(wait_backends(c, 1, 1));
    lookaside_backend_info bi;
    size_t n = 0;
    assert_int_equal(lookaside_client_backends(c, SVC, &bi, 1, &n), LOOKASIDE_OK);
    assert_int_equal(n, 1);
    struct lookaside_pick p;
    assert_int_equal(lookaside_pick(c, SVC, &p), LOOKASIDE_OK);
    assert_string_equal(p.address, bi.address);
    lookaside_pick_done(c, &p, GRPC_STATUS_OK, 0);

    /* Its server goes away: the kept backend leaves with its connection. */
    for (int i = 0; i < NB; i++)
        if (strcmp(fake_addr(srv[i]), bi.address) == 0) {
            fake_stop(srv[i]);
            srv[i] = NULL;
        }
    assert_true(wait_backends(c, 0, -1));
    assert_int_equal(lookaside_pick(c, SVC, &p), LOOKASIDE_EUNAVAIL);

    /* Half rounded up: a lone connected backend may leave in one list. */
    fake_stop(srv[0]);
    assert_non_null(srv[0] = fake_start(NULL, 0));
    inject(c, only0, NULL, 7);
    assert_true(wait_backends(c, 1, 1));
    inject(c, none, NULL, 8);
    assert_true(wait_backends(c, 0, -1));

    lookaside_client_destroy(c);
    for (int i = 0; i < NB; i++) {
        fake_stop(srv[i]);
        srv[i] = NULL;
    }
    grpc_shutdown();
}

/* A backend's server goes away: as soon as its connection breaks the
 * backend leaves the picks (and the snapshot), while its channel is still
 * trying to reconnect (not yet failed). */
static void test_dead_backend(void **st)
{
    (void)st;
    grpc_init();
    for (int i = 0; i < 3; i++)
        assert_non_null(srv[i] = fake_start(NULL, 0));
    lookaside_client *c = client_on("127.0.0.1:1");
    const bool three[NB] = {true, true, true, false};
    inject(c, three, NULL, 1);
    assert_true(wait_backends(c, 3, 3));
    char dead[32];
    snprintf(dead, sizeof dead, "%s", fake_addr(srv[1]));
    int dead_port = fake_port(srv[1]);
    fake_stop(srv[1]);
    srv[1] = NULL;
    lookaside_service_info info = {0};
    for (int t = 0; t < 1000; t++) {
        info = info_of(c);
        if (info.pickable == 2)
            break;
        sleep_ms(5);
    }
    assert_int_equal(info.pickable, 2);
    assert_int_equal(info.backends, 3); /* still listed: only the balancer removes it */
    for (int k = 0; k < 1000; k++) {
        struct lookaside_pick p;
        assert_int_equal(lookaside_pick(c, SVC, &p), LOOKASIDE_OK);
        assert_string_not_equal(p.address, dead);
        lookaside_pick_done(c, &p, GRPC_STATUS_OK, 0);
    }
    /* It comes back on the same port: picked again once READY. */
    assert_non_null(srv[1] = fake_start(NULL, dead_port));
    for (int t = 0; t < 2000; t++) {
        info = info_of(c);
        if (info.pickable == 3)
            break;
        sleep_ms(5);
    }
    assert_int_equal(info.pickable, 3);
    lookaside_client_destroy(c);
    for (int i = 0; i < NB; i++) {
        fake_stop(srv[i]);
        srv[i] = NULL;
    }
    grpc_shutdown();
}

/* k calls through the client: pick, call, pick_done with the call's status.
 * Returns how many failed. */
static int run_calls(lookaside_client *c, int k)
{
    int failed = 0;
    for (int i = 0; i < k; i++) {
        struct lookaside_pick p;
        assert_int_equal(lookaside_pick(c, SVC, &p), LOOKASIDE_OK);
        grpc_status_code st = it_echo(p.channel, 5000, NULL, 0);
        failed += st != GRPC_STATUS_OK;
        lookaside_pick_done(c, &p, st, 100);
    }
    return failed;
}

/* A registered backend that answers every call with UNIMPLEMENTED (a
 * foreign or misconfigured server) is ejected; then no call fails. */
static void test_unimplemented_ejected(void **st)
{
    (void)st;
    grpc_init();
    for (int i = 0; i < 3; i++)
        assert_non_null(srv[i] = fake_start(NULL, 0));
    fake_set_status(srv[2], GRPC_STATUS_UNIMPLEMENTED);
    lookaside_client *c = client_on("127.0.0.1:1");
    const bool three[NB] = {true, true, true, false};
    inject(c, three, NULL, 1);
    assert_true(wait_backends(c, 3, 3));
    int failed = run_calls(c, 60);
    assert_true(failed >= 5);
    lookaside_service_info info = {0};
    for (int t = 0; t < 1000; t++) {
        info = info_of(c);
        if (info.ejected == 1)
            break;
        sleep_ms(5);
    }
    assert_int_equal(info.ejected, 1);
    assert_int_equal(info.pickable, 2);
    assert_int_equal(run_calls(c, 300), 0);
    fake_counts fc;
    fake_counts_get(srv[2], &fc);
    printf("UNIMPLEMENTED backend answered %d calls before its ejection\n", fc.calls);
    it_echo_thread_done();
    lookaside_client_destroy(c);
    for (int i = 0; i < NB; i++) {
        fake_stop(srv[i]);
        srv[i] = NULL;
    }
    grpc_shutdown();
}

/* The balancer goes away for a while (long enough for the backoff to reach
 * its cap) and comes back on the same port: the reporter registers and the
 * client watches again. The delay is printed, not asserted (bench/ has the
 * figure). */
static void test_balancer_return(void **st)
{
    (void)st;
    grpc_init();
    fake_srv *f = fake_start(NULL, 0);
    assert_non_null(f);
    int port = fake_port(f);
    char lb[32];
    snprintf(lb, sizeof lb, "%s", fake_addr(f));
    fake_backend one[] = {{lb, 100, false}};
    fake_set_list(f, one, 1, 1, 0);
    lookaside_client *c = client_on(lb);
    lookaside_reporter_options ro;
    lookaside_reporter_options_init(&ro);
    ro.lb_target = lb;
    ro.service = SVC;
    ro.address = "127.0.0.1:5000";
    lookaside_reporter *r;
    assert_int_equal(lookaside_reporter_create(&ro, &r), LOOKASIDE_OK);
    assert_int_equal(lookaside_client_wait_ready(c, SVC, 10000), LOOKASIDE_OK);

    fake_stop(f);
    sleep_ms(2500);
    lookaside_service_info info = info_of(c);
    assert_false(info.lb_connected);
    assert_int_equal(info.backends, 1); /* fail static */
    uint64_t reconnects = info.reconnects;

    int64_t t0 = clock_mono_ms();
    f = fake_start(NULL, port);
    assert_non_null(f);
    fake_set_list(f, one, 1, 2, 0);
    fake_counts fc = {0};
    int64_t reg_ms = -1, watch_ms = -1;
    for (int i = 0; i < 1000 && (reg_ms < 0 || watch_ms < 0); i++) {
        fake_counts_get(f, &fc);
        if (reg_ms < 0 && fc.registrations > 0)
            reg_ms = clock_mono_ms() - t0;
        if (watch_ms < 0 && info_of(c).version == 2)
            watch_ms = clock_mono_ms() - t0;
        sleep_ms(10);
    }
    assert_true(reg_ms >= 0);
    assert_true(watch_ms >= 0);
    info = info_of(c);
    assert_true(info.lb_connected);
    assert_true(info.reconnects > reconnects);
    printf("balancer back after 2.5 s away: reporter registered in %lld ms, "
           "client list in %lld ms\n",
           (long long)reg_ms, (long long)watch_ms);

    lookaside_reporter_destroy(r);
    lookaside_client_destroy(c);
    fake_stop(f);
    grpc_shutdown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heartbeat),
        cmocka_unit_test(test_self_preservation),
        cmocka_unit_test(test_dead_backend),
        cmocka_unit_test(test_unimplemented_ejected),
        cmocka_unit_test(test_balancer_return),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
