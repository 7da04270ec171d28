/* The public API's compatibility and hooks: version macros, the ABI rule
 * (0.1.0's size-less entry points work on 0.1.0-sized structs, which are
 * allocated at exactly that size so that AddressSanitizer catches any
 * access past them; larger future structs are accepted), the log callback,
 * and service handles. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "abi_compat.h"
#include "client_internal.h"
#include "lookaside.h"

#define SVC "api.test"

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_version(void **st)
{
    (void)st;
    assert_string_equal(lookaside_version(), LOOKASIDE_VERSION_STR);
    char buf[32];
    snprintf(buf, sizeof buf, "%d.%d.%d", LOOKASIDE_VERSION_MAJOR, LOOKASIDE_VERSION_MINOR,
             LOOKASIDE_VERSION_PATCH);
    assert_string_equal(buf, LOOKASIDE_VERSION_STR);
    assert_int_equal(LOOKASIDE_VERSION_NUMBER, (LOOKASIDE_VERSION_MAJOR << 16) |
                                                   (LOOKASIDE_VERSION_MINOR << 8) |
                                                   LOOKASIDE_VERSION_PATCH);
}

/* A program built against 0.1.0 calls the size-less symbols with structs
 * of 0.1.0's size. Reading fields of the old prefix through today's type is
 * the point, so GCC -O2's -Warray-bounds (the allocation is smaller than
 * today's struct) is expected here and only here. */
#pragma GCC diagnostic ignored "-Warray-bounds"
static void test_abi_v0(void **st)
{
    (void)st;
    lookaside_client_options *o = malloc(LA_CLIENT_OPTIONS_V0);
    assert_non_null(o);
    (lookaside_client_options_init)(o);
    assert_int_equal(o->connect_timeout_ms, 3000);
    assert_int_equal(o->max_services, 64);
    o->lb_target = "127.0.0.1:1";
    lookaside_client *c = NULL;
    assert_int_equal((lookaside_client_create)(o, &c), LOOKASIDE_OK);
    free(o);
    assert_int_equal(lookaside_client_watch(c, SVC, NULL), LOOKASIDE_OK);
    client_test_backend l[] = {{"127.0.0.1:9", 100, NULL, false},
                               {"127.0.0.1:10", 100, NULL, false}};
    assert_int_equal(client_inject_list(c, SVC, l, 2, 1), LOOKASIDE_OK);
    assert_int_equal(lookaside_client_wait_ready(c, SVC, 10000), LOOKASIDE_OK);

    lookaside_service_info *si = malloc(LA_SERVICE_INFO_V0);
    assert_int_equal((lookaside_client_service_info)(c, SVC, si), LOOKASIDE_OK);
    assert_int_equal(si->backends, 2);
    assert_int_equal(si->version, 1);
    free(si);
    /* An array of two 0.1.0-sized elements: the stride is the old size. */
    char *arr = malloc(2 * LA_BACKEND_INFO_V0);
    size_t n = 0;
    assert_int_equal((lookaside_client_backends)(c, SVC, (lookaside_backend_info *)arr, 2, &n),
                     LOOKASIDE_OK);
    assert_int_equal(n, 2);
    assert_string_equal(((lookaside_backend_info *)arr)->address, "127.0.0.1:10");
    assert_string_equal(((lookaside_backend_info *)(arr + LA_BACKEND_INFO_V0))->address,
                        "127.0.0.1:9");
    free(arr);
    /* Too small to be any release's struct. */
    lookaside_service_info full;
    assert_int_equal(lookaside_client_service_info_sized(c, SVC, &full, 8), LOOKASIDE_EINVAL);
    lookaside_client_destroy(c);

    lookaside_reporter_options *ro = malloc(LA_REPORTER_OPTIONS_V0);
    (lookaside_reporter_options_init)(ro);
    assert_int_equal(ro->backoff_max_ms, 1000);
    ro->lb_target = "127.0.0.1:1";
    ro->service = SVC;
    ro->address = "127.0.0.1:5000";
    lookaside_reporter *r = NULL;
    assert_int_equal((lookaside_reporter_create)(ro, &r), LOOKASIDE_OK);
    free(ro);
    lookaside_reporter_info *ri = malloc(LA_REPORTER_INFO_V0);
    (lookaside_reporter_info_get)(r, ri);
    assert_false(ri->registered);
    free(ri);
    lookaside_reporter_destroy(r);
}

/* A program built against a later header passes bigger structs: the
 * library uses what it knows and leaves the rest alone. */
static void test_abi_future(void **st)
{
    (void)st;
    struct {
        lookaside_client_options o;
        char later[64];
    } big;
    memset(&big, 0x5a, sizeof big);
    lookaside_client_options_init_sized(&big.o, sizeof big);
    for (size_t i = 0; i < sizeof big.later; i++)
        assert_int_equal(big.later[i], 0); /* zeroed: "default" */
    big.o.lb_target = "127.0.0.1:1";
    lookaside_client *c = NULL;
    assert_int_equal(lookaside_client_create_sized(&big.o, sizeof big, &c), LOOKASIDE_OK);
    lookaside_client_destroy(c);
    assert_int_equal(lookaside_client_create_sized(&big.o, 16, &c), LOOKASIDE_EINVAL);
}

typedef struct seen {
    int records;
    int warnings;
    char last[256];
} seen;

static void on_log(void *arg, lookaside_log_level level, const char *module, const char *msg)
{
    seen *s = arg;
    s->records++;
    s->warnings += level == LOOKASIDE_LOG_WARN;
    snprintf(s->last, sizeof s->last, "%s: %s", module, msg);
}

static void test_log_callback(void **st)
{
    (void)st;
    seen s = {0};
    lookaside_log_set(LOOKASIDE_LOG_WARN, on_log, &s);
    grpc_channel_credentials *cr = NULL;
    assert_int_equal(lookaside_tls_credentials_create("/nonexistent/ca.pem", NULL, NULL, &cr),
                     LOOKASIDE_ENOTFOUND);
    assert_int_equal(s.records, 1);
    assert_int_equal(s.warnings, 1);
    assert_non_null(strstr(s.last, "/nonexistent/ca.pem"));
    /* Below the level: not delivered. */
    lookaside_log_set(LOOKASIDE_LOG_ERROR, on_log, &s);
    assert_int_equal(lookaside_tls_credentials_create("/nonexistent/ca.pem", NULL, NULL, &cr),
                     LOOKASIDE_ENOTFOUND);
    assert_int_equal(s.records, 1);
    lookaside_log_set(LOOKASIDE_LOG_INFO, NULL, NULL);
}

static void test_service_handle(void **st)
{
    (void)st;
    lookaside_client_options o;
    lookaside_client_options_init(&o);
    o.lb_target = "127.0.0.1:1";
    lookaside_client *c = NULL;
    assert_int_equal(lookaside_client_create(&o, &c), LOOKASIDE_OK);
    lookaside_service *h = NULL, *h2 = NULL;
    assert_int_equal(lookaside_client_watch_service(c, SVC, NULL, &h), LOOKASIDE_OK);
    assert_non_null(h);
    assert_int_equal(lookaside_client_watch_service(c, SVC, NULL, &h2), LOOKASIDE_OK);
    assert_ptr_equal(h, h2);
    assert_int_equal(lookaside_client_watch_service(c, "bad name!", NULL, &h2),
                     LOOKASIDE_EINVAL);
    struct lookaside_pick p;
    assert_int_equal(lookaside_pick_service(h, &p), LOOKASIDE_EUNAVAIL);
    assert_int_equal(lookaside_pick_service(NULL, &p), LOOKASIDE_EINVAL);
    client_test_backend l[] = {{"127.0.0.1:9", 100, NULL, false}};
    assert_int_equal(client_inject_list(c, SVC, l, 1, 1), LOOKASIDE_OK);
    for (int i = 0; i < 1000 && client_lists_applied(c, SVC) < 1; i++)
        sleep_ms(10);
    assert_int_equal(lookaside_pick_service(h, &p), LOOKASIDE_OK);
    assert_string_equal(p.address, "127.0.0.1:9");
    lookaside_pick_done(c, &p, GRPC_STATUS_OK, 0);
    assert_int_equal(lookaside_pick(c, SVC, &p), LOOKASIDE_OK);
    assert_string_equal(p.address, "127.0.0.1:9");
    lookaside_pick_done(c, &p, GRPC_STATUS_OK, 0);
    lookaside_client_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),       cmocka_unit_test(test_abi_v0),
        cmocka_unit_test(test_abi_future),    cmocka_unit_test(test_log_callback),
        cmocka_unit_test(test_service_handle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
