/* abi_v0.c LB_TARGET: a program written and compiled against the released
 * header (lookaside_v0.h, SOVERSION 0) and run against the liblookaside.so
 * of this tree. A backend (a bare gRPC server on 127.0.0.1) registers
 * through the reporter, a client watches the service and picks it, then the
 * reporter drains and leaves. Every struct the v0 header defines crosses the
 * library boundary: the options (filled by the library's _init), the pick,
 * the service and backend infos, the reporter info. Under AddressSanitizer
 * a library that writes past a v0-sized struct fails here. Exit 0 = the v0
 * program works. */
#include "lookaside_v0.h"

#include <grpc/grpc_security.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define SERVICE "abi-v0"

static int failures;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "abi_v0: %s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                      \
            failures++;                                                          \
        }                                                                        \
    } while (0)

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A backend clients can connect to: HTTP/2 on 127.0.0.1, no methods. */
static grpc_server *backend_start(grpc_completion_queue *cq, char *addr, size_t len)
{
    grpc_server *s = grpc_server_create(NULL, NULL);
    grpc_server_register_completion_queue(s, cq, NULL);
    grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
    int port = grpc_server_add_http2_port(s, "127.0.0.1:0", creds);
    grpc_server_credentials_release(creds);
    grpc_server_start(s);
    snprintf(addr, len, "127.0.0.1:%d", port);
    return port > 0 ? s : NULL;
}

static void backend_stop(grpc_server *s, grpc_completion_queue *cq)
{
    grpc_server_shutdown_and_notify(s, cq, NULL);
    grpc_server_cancel_all_calls(s);
    grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    grpc_server_destroy(s);
    grpc_completion_queue_shutdown(cq);
    grpc_completion_queue_destroy(cq);
}

static lookaside_reporter *report(const char *lb, const char *addr)
{
    lookaside_reporter_options ro;
    lookaside_reporter_options_init(&ro);
    CHECK(ro.lb_target == NULL && ro.service == NULL && ro.address == NULL);
    ro.lb_target = lb;
    ro.service = SERVICE;
    ro.address = addr;
    ro.zone = "abi-zone";
    lookaside_reporter *r = NULL;
    CHECK(lookaside_reporter_create(&ro, &r) == LOOKASIDE_OK);
    if (r == NULL)
        return NULL;
    lookaside_reporter_info ri;
    memset(&ri, 0, sizeof ri);
    for (int i = 0; i < 200 && !ri.registered; i++) { /* at most ~10 s */
        lookaside_reporter_info_get(r, &ri);
        if (!ri.registered)
            sleep_ms(50);
    }
    CHECK(ri.registered);
    CHECK(ri.token[0] != '\0' && memchr(ri.token, '\0', sizeof ri.token) != NULL);
    CHECK(ri.interval_ms > 0);
    return r;
}

static void pick_it(const char *lb, const char *addr)
{
    lookaside_client_options co;
    lookaside_client_options_init(&co);
    CHECK(co.lb_target == NULL && co.connect_timeout_ms > 0 && co.max_services > 0);
    co.lb_target = lb;
    co.client_id = "abi-v0-test";
    lookaside_client *c = NULL;
    CHECK(lookaside_client_create(&co, &c) == LOOKASIDE_OK);
    if (c == NULL)
        return;
    CHECK(lookaside_client_watch(c, SERVICE, NULL) == LOOKASIDE_OK);
    CHECK(lookaside_client_wait_ready(c, SERVICE, 10000) == LOOKASIDE_OK);

    struct lookaside_pick p;
    lookaside_status st = LOOKASIDE_EUNAVAIL;
    for (int i = 0; i < 200; i++) { /* at most ~10 s for the channel to be READY */
        memset(&p, 0, sizeof p);
        st = lookaside_pick(c, SERVICE, &p);
        if (st == LOOKASIDE_OK)
            break;
        sleep_ms(50);
    }
    CHECK(st == LOOKASIDE_OK);
    if (st == LOOKASIDE_OK) {
        CHECK(p.channel != NULL);
        CHECK(p.address != NULL && strcmp(p.address, addr) == 0);
        lookaside_pick_done(c, &p, GRPC_STATUS_OK, 250);
    }

    lookaside_service_info si;
    memset(&si, 0xA5, sizeof si);
    CHECK(lookaside_client_service_info(c, SERVICE, &si) == LOOKASIDE_OK);
    CHECK(si.source == LOOKASIDE_SOURCE_LB);
    CHECK(si.version > 0 && si.backends == 1 && si.pickable == 1 && si.ejected == 0);
    CHECK(si.lists_received >= 1);
    CHECK(strcmp(lookaside_list_source_str(si.source), "lb") == 0);

    lookaside_backend_info bi[4];
    size_t n = 0;
    memset(bi, 0, sizeof bi);
    CHECK(lookaside_client_backends(c, SERVICE, bi, 4, &n) == LOOKASIDE_OK);
    CHECK(n == 1);
    if (n == 1) {
        CHECK(strcmp(bi[0].address, addr) == 0);
        CHECK(strcmp(bi[0].zone, "abi-zone") == 0);
        CHECK(bi[0].weight > 0 && !bi[0].ejected && bi[0].pickable);
        CHECK(bi[0].calls == 1 && bi[0].failures == 0 && bi[0].latency_us_total == 250);
    }
    lookaside_client_destroy(c);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: abi_v0 LB_HOST:PORT\n");
        return 2;
    }
    grpc_init();
    printf("abi_v0: built against the v0 header, running liblookaside %s\n",
           lookaside_version());
    CHECK(strcmp(lookaside_status_str(LOOKASIDE_OK), "ok") == 0);

    char addr[64];
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_server *backend = backend_start(cq, addr, sizeof addr);
    CHECK(backend != NULL);
    lookaside_reporter *r = backend ? report(argv[1], addr) : NULL;
    if (r != NULL) {
        pick_it(argv[1], addr);
        lookaside_reporter_call_started(r);
        lookaside_reporter_call_finished(r, GRPC_STATUS_OK, 100);
        CHECK(lookaside_reporter_stop(r, 5000) == LOOKASIDE_OK); /* drain acked */
        lookaside_reporter_info ri;
        lookaside_reporter_info_get(r, &ri);
        CHECK(ri.draining);
        lookaside_reporter_destroy(r);
    }
    if (backend)
        backend_stop(backend, cq);
    grpc_shutdown();
    printf("abi_v0: %s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
