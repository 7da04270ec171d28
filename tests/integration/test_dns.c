/* DNS discovery through the real binary: dnsmasq on 127.0.0.1 serves a
 * headless-service name; lookaside-server --discover merges it with
 * reported backends. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "lookaside/v1/lookaside.pb-c.h"

#define DNSMASQ "/usr/sbin/dnsmasq"

static char g_dir[256], g_hosts[300];
static proc g_dns, g_srv;
static int g_dns_port;

static int free_udp_port(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static void write_hosts(const char *text)
{
    char tmp[320];
    snprintf(tmp, sizeof tmp, "%s.tmp", g_hosts);
    FILE *f = fopen(tmp, "w");
    fputs(text, f);
    fclose(f);
    rename(tmp, g_hosts);
}

static int start_dnsmasq(void)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        g_dns_port = free_udp_port();
        char port_arg[32], hosts_arg[340];
        snprintf(port_arg, sizeof port_arg, "--port=%d", g_dns_port);
        snprintf(hosts_arg, sizeof hosts_arg, "--addn-hosts=%s", g_hosts);
        const char *argv[] = {DNSMASQ, "--no-daemon", port_arg, "--listen-address=127.0.0.1",
                              "--bind-interfaces", "--no-resolv", "--no-hosts",
                              "--conf-file=/dev/null", "--log-facility=-", "--pid-file=",
                              "--local=/test/", "--local-ttl=1", hosts_arg, NULL};
        memset(&g_dns, 0, sizeof g_dns);
        if (h_spawn(&g_dns, argv, "started") == 0)
            return 0;
    }
    return -1;
}

static int setup(void **state)
{
    (void)state;
    if (access(DNSMASQ, X_OK) != 0)
        return 0;
    h_tmpdir(g_dir);
    snprintf(g_hosts, sizeof g_hosts, "%s/hosts", g_dir);
    write_hosts("127.0.0.2 web.test\n127.0.0.3 web.test\n");
    if (start_dnsmasq() != 0)
        return -1;
    char db[300], disc[200];
    snprintf(db, sizeof db, "%s/lb.db", g_dir);
    snprintf(disc, sizeof disc, "web=dns://127.0.0.1:%d/web.test:5000", g_dns_port);
    const char *extra[] = {"--discover", disc, "--dns-refresh-ms", "300", NULL};
    memset(&g_srv, 0, sizeof g_srv);
    return h_server_start(&g_srv, db, extra);
}

static int teardown(void **state)
{
    (void)state;
    if (access(DNSMASQ, X_OK) != 0)
        return 0;
    int rc = h_stop(&g_srv);
    if (rc != 0)
        h_log_dump(&g_srv);
    h_stop(&g_dns);
    unlink(g_srv.log);
    unlink(g_dns.log);
    h_rmdir(g_dir);
    return rc == 0 ? 0 : -1;
}

typedef struct want {
    const char *addr[4];
    int source[4];
    size_t n;
} want;

static bool list_is(const Lookaside__V1__ServerList *l, const want *w)
{
    if (l->n_backends != w->n)
        return false;
    for (size_t i = 0; i < w->n; i++) {
        bool found = false;
        for (size_t k = 0; k < l->n_backends; k++)
            if (strcmp(l->backends[k]->address, w->addr[i]) == 0 &&
                (int)l->backends[k]->source == w->source[i] && l->backends[k]->weight > 0)
                found = true;
        if (!found)
            return false;
    }
    return true;
}

/* Reads pushed lists until one matches (bounded); returns ms taken or -1. */
static long long await_list(tstream *w, const want *want_, int timeout_ms)
{
    long long t0 = h_now_ms(), until = t0 + timeout_ms;
    while (h_now_ms() < until) {
        ProtobufCMessage *m = NULL;
        if (ts_recv(w, &lookaside__v1__server_list__descriptor, &m, (int)(until - h_now_ms()) + 1) != 1)
            return -1;
        bool ok = list_is((Lookaside__V1__ServerList *)m, want_);
        protobuf_c_message_free_unpacked(m, NULL);
        if (ok)
            return h_now_ms() - t0;
    }
    return -1;
}

static void test_dns_discovery(void **state)
{
    (void)state;
    if (access(DNSMASQ, X_OK) != 0)
        skip();
    enum { DNS = LOOKASIDE__V1__BACKEND_SOURCE__BACKEND_SOURCE_DNS,
           BOTH = LOOKASIDE__V1__BACKEND_SOURCE__BACKEND_SOURCE_BOTH,
           REP = LOOKASIDE__V1__BACKEND_SOURCE__BACKEND_SOURCE_REPORTED };
    tclient *c = tc_connect(g_srv.addr);
    Lookaside__V1__WatchRequest req = LOOKASIDE__V1__WATCH_REQUEST__INIT;
    req.service = "web";
    tstream *w = ts_open(c, "/lookaside.v1.Balancer/Watch", &req.base);

    want w1 = {{"127.0.0.2:5000", "127.0.0.3:5000"}, {DNS, DNS}, 2};
    assert_true(await_list(w, &w1, 5000) >= 0);

    /* A reporter at a DNS address is the same backend: source BOTH. */
    tstream *r = ts_open(c, "/lookaside.v1.LoadReporter/Report", NULL);
    Lookaside__V1__Register rg = LOOKASIDE__V1__REGISTER__INIT;
    rg.service = "web";
    rg.address = "127.0.0.2:5000";
    Lookaside__V1__LoadReport m = LOOKASIDE__V1__LOAD_REPORT__INIT;
    m.kind_case = LOOKASIDE__V1__LOAD_REPORT__KIND_REGISTER;
    m.register_ = &rg;
    assert_int_equal(ts_send(r, &m.base), 0);
    want w2 = {{"127.0.0.2:5000", "127.0.0.3:5000"}, {BOTH, DNS}, 2};
    assert_true(await_list(w, &w2, 5000) >= 0);

    /* A pod leaves DNS and another arrives. */
    write_hosts("127.0.0.2 web.test\n127.0.0.4 web.test\n");
    kill(g_dns.pid, SIGHUP);
    want w3 = {{"127.0.0.2:5000", "127.0.0.4:5000"}, {BOTH, DNS}, 2};
    long long ms = await_list(w, &w3, 5000);
    fprintf(stderr, "DNS change reached the watcher in %lld ms (refresh 300 ms, TTL 1 s)\n", ms);
    assert_true(ms >= 0);

    /* DNS dies: the last known set stays. */
    h_kill(&g_dns);
    ProtobufCMessage *x = NULL;
    int rc = ts_recv(w, &lookaside__v1__server_list__descriptor, &x, 4000);
    if (rc == 1) {
        assert_true(list_is((Lookaside__V1__ServerList *)x, &w3));
        protobuf_c_message_free_unpacked(x, NULL);
    }
    assert_true(h_log_has(&g_srv, "keeping the last known set"));

    /* The reporter leaves: 127.0.0.2 is no longer in DNS? It is: source DNS. */
    ts_destroy(r);
    want w4 = {{"127.0.0.2:5000", "127.0.0.4:5000"}, {DNS, DNS}, 2};
    assert_true(await_list(w, &w4, 5000) >= 0);
    (void)REP;
    ts_destroy(w);
    tc_close(c);
}

int main(void)
{
    grpc_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dns_discovery, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    grpc_shutdown();
    return rc;
}
