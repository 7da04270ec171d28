/* The whole client without a balancer: lists are injected as if they came
 * on the Watch stream (client_inject_list), backends are gRPC core servers
 * in this process. Checks one channel per listed backend connected before
 * any pick, removed backends never picked but kept open while a pick on
 * them is in flight, draining/zero-weight never picked, outlier ejection
 * with its cap, a backend whose server went away leaving the picks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "client_internal.h"
#include "lookaside.h"
#include "util.h"

#define SVC "chan.test"
#define NB 4

typedef struct srv {
    grpc_server *s;
    grpc_completion_queue *cq;
    char addr[32];
} srv;

static srv servers[NB];

static void srv_start(srv *v)
{
    v->s = grpc_server_create(NULL, NULL);
    v->cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_server_register_completion_queue(v->s, v->cq, NULL);
    grpc_server_credentials *cr = grpc_insecure_server_credentials_create();
    int port = grpc_server_add_http2_port(v->s, "127.0.0.1:0", cr);
    grpc_server_credentials_release(cr);
    assert_true(port > 0);
    grpc_server_start(v->s);
    snprintf(v->addr, sizeof v->addr, "127.0.0.1:%d", port);
}

static void srv_stop(srv *v)
{
    if (v->s == NULL)
        return;
    static int tag;
    grpc_server_shutdown_and_notify(v->s, v->cq, &tag);
    grpc_server_cancel_all_calls(v->s);
    grpc_completion_queue_pluck(v->cq, &tag, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    grpc_server_destroy(v->s);
    grpc_completion_queue_shutdown(v->cq);
    while (grpc_completion_queue_pluck(v->cq, NULL, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL)
               .type != GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(v->cq);
    v->s = NULL;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static bool wait_applied(lookaside_client *c, uint64_t n)
{
    for (int i = 0; i < 500; i++) {
        if (client_lists_applied(c, SVC) >= n)
            return true;
        sleep_ms(10);
    }
    return false;
}

static bool wait_channels(lookaside_client *c, int n)
{
    for (int i = 0; i < 500; i++) {
        if (client_open_channels(c) == n)
            return true;
        sleep_ms(10);
    }
    return false;
}

/* Counts picks by address over k picks (each done with status). */
static void picks(lookaside_client *c, int k, grpc_status_code status, int *count)
{
    memset(count, 0, NB * sizeof *count);
    for (int i = 0; i < k; i++) {
        struct lookaside_pick p;
        assert_int_equal(lookaside_pick(c, SVC, &p), LOOKASIDE_OK);
        for (int j = 0; j < NB; j++)
            if (strcmp(p.address, servers[j].addr) == 0)
                count[j]++;
        lookaside_pick_done(c, &p, status, 10);
    }
}

/* Ends picks of addr with UNAVAILABLE until it has failed k times in a row
 * (other picks succeed). */
static void fail_backend(lookaside_client *c, const char *addr, int k)
{
    int failed = 0;
    for (int i = 0; i < 1000 && failed < k; i++) {
        struct lookaside_pick p;
        assert_int_equal(lookaside_pick(c, SVC, &p), LOOKASIDE_OK);
        bool hit = strcmp(p.address, addr) == 0;
        failed += hit;
        lookaside_pick_done(c, &p, hit ? GRPC_STATUS_UNAVAILABLE : GRPC_STATUS_OK, 0);
    }
    assert_int_equal(failed, k);
}

static void test_channels(void **st)
{
    (void)st;
    grpc_init();
    for (int i = 0; i < NB; i++)
        srv_start(&servers[i]);
    lookaside_client_options o;
    lookaside_client_options_init(&o);
    o.lb_target = "127.0.0.1:1"; /* nobody: lists come by injection */
    lookaside_client *c;
    assert_int_equal(lookaside_client_create(&o, &c), LOOKASIDE_OK);
    assert_int_equal(lookaside_client_watch(c, SVC, NULL), LOOKASIDE_OK);
    struct lookaside_pick p;
    assert_int_equal(lookaside_pick(c, SVC, &p), LOOKASIDE_EUNAVAIL);
    assert_int_equal(lookaside_pick(c, "other", &p), LOOKASIDE_ENOTFOUND);

    /* A, B, C: three channels, all connected without any pick. */
    client_test_backend l1[] = {{servers[0].addr, 100, NULL, false},
                                {servers[1].addr, 100, NULL, false},
                                {servers[2].addr, 100, NULL, false}};
    assert_int_equal(client_inject_list(c, SVC, l1, 3, 1), LOOKASIDE_OK);
    assert_true(wait_applied(c, 1));
    assert_int_equal(lookaside_client_wait_ready(c, SVC, 2000), LOOKASIDE_OK);
    assert_int_equal(client_open_channels(c), 3);
    lookaside_backend_info bi[NB];
    size_t n = 0;
    int ready = 0;
    for (int t = 0; t < 300 && ready < 3; t++) {
        assert_int_equal(lookaside_client_backends(c, SVC, bi, NB, &n), LOOKASIDE_OK);
        ready = 0;
        for (size_t i = 0; i < n; i++)
            ready += bi[i].connectivity == GRPC_CHANNEL_READY;
        sleep_ms(10);
    }
    assert_int_equal(ready, 3);
    /* The same list again changes nothing. */
    assert_int_equal(client_inject_list(c, SVC, l1, 3, 2), LOOKASIDE_OK);
    assert_true(wait_applied(c, 2));
    assert_int_equal(client_open_channels(c), 3);
    int cnt[NB];
    picks(c, 3000, GRPC_STATUS_OK, cnt);
    assert_int_equal(cnt[0], 1000);
    assert_int_equal(cnt[1], 1000);
    assert_int_equal(cnt[2], 1000);

    /* Hold a pick on B, then remove B: never picked again, but its channel
     * stays open until the pick is done. */
    struct lookaside_pick held = {0};
    for (int i = 0; i < 10 && held.internal_ == NULL; i++) {
        assert_int_equal(lookaside_pick(c, SVC, &p), LOOKASIDE_OK);
        if (strcmp(p.address, servers[1].addr) == 0)
            held = p;
        else
            lookaside_pick_done(c, &p, GRPC_STATUS_OK, 0);
    }
    assert_non_null(held.internal_);
    client_test_backend l2[] = {{servers[0].addr, 100, NULL, false},
                                {servers[2].addr, 300, NULL, false}};
    assert_int_equal(client_inject_list(c, SVC, l2, 2, 3), LOOKASIDE_OK);
    assert_true(wait_applied(c, 3));
    picks(c, 4000, GRPC_STATUS_OK, cnt);
    assert_int_equal(cnt[1], 0);
    assert_int_equal(cnt[0], 1000);
    assert_int_equal(cnt[2], 3000);
    sleep_ms(200);
    assert_int_equal(client_open_channels(c), 3);
    assert_int_equal(grpc_channel_check_connectivity_state(held.channel, 0), GRPC_CHANNEL_READY);
    lookaside_pick_done(c, &held, GRPC_STATUS_OK, 0);
    assert_null(held.internal_);
    lookaside_pick_done(c, &held, GRPC_STATUS_OK, 0); /* twice: ignored */
    assert_true(wait_channels(c, 2));

    /* B back with weight 0, D draining: neither is picked. */
    client_test_backend l3[] = {{servers[0].addr, 100, NULL, false},
                                {servers[1].addr, 0, NULL, false},
                                {servers[2].addr, 100, NULL, false},
                                {servers[3].addr, 100, NULL, true}};
    assert_int_equal(client_inject_list(c, SVC, l3, 4, 4), LOOKASIDE_OK);
    assert_true(wait_applied(c, 4));
    assert_int_equal(client_open_channels(c), 4);
    picks(c, 2000, GRPC_STATUS_OK, cnt);
    assert_int_equal(cnt[1] + cnt[3], 0);
    assert_int_equal(cnt[0], 1000);
    assert_int_equal(cnt[2], 1000);

    /* All four serving; A fails 5 times in a row: ejected (the cap for 4
     * backends is 1), so C's failures do not eject C. */
    client_test_backend l4[] = {{servers[0].addr, 100, NULL, false},
                                {servers[1].addr, 100, NULL, false},
                                {servers[2].addr, 100, NULL, false},
                                {servers[3].addr, 100, NULL, false}};
    assert_int_equal(client_inject_list(c, SVC, l4, 4, 5), LOOKASIDE_OK);
    assert_true(wait_applied(c, 5));
    sleep_ms(100);
    fail_backend(c, servers[0].addr, 5);
    lookaside_service_info info;
    for (int t = 0; t < 200; t++) {
        lookaside_client_service_info(c, SVC, &info);
        if (info.ejected == 1 && info.pickable == 3)
            break;
        sleep_ms(10);
    }
    assert_int_equal(info.ejected, 1);
    assert_int_equal(info.pickable, 3);
    fail_backend(c, servers[2].addr, 5);
    sleep_ms(100);
    lookaside_client_service_info(c, SVC, &info);
    assert_int_equal(info.ejected, 1);
    assert_int_equal(info.pickable, 3);
    picks(c, 3000, GRPC_STATUS_OK, cnt);
    assert_int_equal(cnt[0], 0);
    assert_true(cnt[2] > 0);

    /* C's server goes away: its channel fails and C leaves the picks. */
    srv_stop(&servers[2]);
    for (int t = 0; t < 300; t++) {
        lookaside_client_service_info(c, SVC, &info);
        if (info.pickable == 2)
            break;
        sleep_ms(10);
    }
    assert_int_equal(info.pickable, 2);
    picks(c, 2000, GRPC_STATUS_OK, cnt);
    assert_int_equal(cnt[0] + cnt[2], 0);
    assert_int_equal(cnt[1], 1000);
    assert_int_equal(cnt[3], 1000);

    lookaside_client_destroy(c);
    for (int i = 0; i < NB; i++)
        srv_stop(&servers[i]);
    grpc_shutdown();
}

static void test_create_errors(void **st)
{
    (void)st;
    lookaside_client_options o;
    lookaside_client_options_init(&o);
    lookaside_client *c = (lookaside_client *)1;
    assert_int_equal(lookaside_client_create(&o, &c), LOOKASIDE_EINVAL);
    assert_null(c);
    o.lb_target = "127.0.0.1:1,,127.0.0.1:2";
    assert_int_equal(lookaside_client_create(&o, &c), LOOKASIDE_EINVAL);
    o.lb_target = "127.0.0.1:1";
    o.zone = "bad zone!";
    assert_int_equal(lookaside_client_create(&o, &c), LOOKASIDE_EINVAL);
    o.zone = "z1";
    assert_int_equal(lookaside_client_create(&o, &c), LOOKASIDE_OK);
    assert_int_equal(lookaside_client_watch(c, "bad name!", NULL), LOOKASIDE_EINVAL);
    assert_int_equal(lookaside_client_watch(c, "ok", NULL), LOOKASIDE_OK);
    assert_int_equal(lookaside_client_watch(c, "ok", NULL), LOOKASIDE_OK);
    assert_int_equal(lookaside_client_wait_ready(c, "ok", 50), LOOKASIDE_ETIMEOUT);
    lookaside_service_info info;
    assert_int_equal(lookaside_client_service_info(c, "ok", &info), LOOKASIDE_OK);
    assert_int_equal(info.source, LOOKASIDE_SOURCE_NONE);
    assert_int_equal(info.age_ms, -1);
    lookaside_client_destroy(c);
    lookaside_client_destroy(NULL);

    lookaside_reporter_options ro;
    lookaside_reporter_options_init(&ro);
    lookaside_reporter *r = (lookaside_reporter *)1;
    ro.lb_target = "127.0.0.1:1";
    ro.service = "svc";
    ro.address = "not-an-address";
    assert_int_equal(lookaside_reporter_create(&ro, &r), LOOKASIDE_EINVAL);
    assert_null(r);
    ro.address = "127.0.0.1:5000";
    assert_int_equal(lookaside_reporter_create(&ro, &r), LOOKASIDE_OK);
    lookaside_reporter_call_started(r);
    lookaside_reporter_call_finished(r, GRPC_STATUS_OK, 100);
    /* No balancer: the drain cannot be acknowledged. */
    assert_int_equal(lookaside_reporter_stop(r, 100), LOOKASIDE_ETIMEOUT);
    assert_int_equal(lookaside_reporter_stop(r, 100), LOOKASIDE_ESHUTDOWN);
    lookaside_reporter_destroy(r);
    lookaside_reporter_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_channels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
