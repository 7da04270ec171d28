/* it.discovery.dnsmasq - discovery against a real dnsmasq started by the
 * test on 127.0.0.1 (ephemeral port; only 127.0.0.0/8 and ::1 records):
 * the A+AAAA set, TTL-driven refresh, a change through a rewritten hosts
 * file + SIGHUP (an address removed, one added, then all removed),
 * NXDOMAIN -> empty set, REFUSED -> failure, and a dead DNS server.
 * dnsmasq is killed by its PID. Skipped when dnsmasq is not installed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "disc_test.h"

#define DNSMASQ_DEFAULT "/usr/sbin/dnsmasq"

static struct {
    const char *dnsmasq; /* $LOOKASIDE_TEST_DNSMASQ or DNSMASQ_DEFAULT */
    int have;          /* dnsmasq is installed */
    pid_t pid;
    int port;
    char dir[256];
    char hosts[300];   /* --addn-hosts file, rewritten by the tests */
    char log[300];
} g;

static void write_file(const char *path, const char *text)
{
    char tmp[400];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, path), 0);
}

static void dump_log(void)
{
    FILE *f = fopen(g.log, "r");
    char line[512];
    if (f == NULL)
        return;
    fprintf(stderr, "---- dnsmasq log ----\n");
    while (fgets(line, sizeof line, f) != NULL)
        fputs(line, stderr);
    fclose(f);
}

/* 1 when something is bound to UDP 127.0.0.1:port. */
static int udp_port_taken(int port)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    int taken = bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno == EADDRINUSE;
    close(fd);
    return taken;
}

/* Starts dnsmasq on a fresh port; 0 on success. */
static int start_dnsmasq_once(void)
{
    char port_arg[32], hosts_arg[320];
    g.port = free_udp_port();
    if (g.port <= 0)
        return -1;
    snprintf(port_arg, sizeof port_arg, "--port=%d", g.port);
    snprintf(hosts_arg, sizeof hosts_arg, "--addn-hosts=%s", g.hosts);
    char *const argv[] = {
        (char *)g.dnsmasq, "--no-daemon", port_arg, "--listen-address=127.0.0.1",
        "--bind-interfaces", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
        "--log-facility=-", "--pid-file=", "--local=/test/",
        "--host-record=web.test,127.0.0.3", "--host-record=web.test,127.0.0.2,::1",
        "--local-ttl=1", hosts_arg, NULL,
    };
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(g.log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        int null = open("/dev/null", O_RDONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (null >= 0)
            dup2(null, 0);
        execv(g.dnsmasq, argv);
        _exit(127);
    }
    /* Ready when its port is taken while it still runs. */
    for (int i = 0; i < 100; i++) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid)
            return -1; /* exited: port lost to someone else, or a bad option */
        if (udp_port_taken(g.port)) {
            poll(NULL, 0, 50);
            if (waitpid(pid, &status, WNOHANG) == pid)
                return -1;
            g.pid = pid;
            return 0;
        }
        poll(NULL, 0, 50);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static int group_setup(void **state)
{
    (void)state;
    memset(&g, 0, sizeof g);
    g.dnsmasq = getenv("LOOKASIDE_TEST_DNSMASQ");
    if (g.dnsmasq == NULL || g.dnsmasq[0] == '\0')
        g.dnsmasq = DNSMASQ_DEFAULT;
    if (access(g.dnsmasq, X_OK) != 0)
        return 0; /* each test skips */
    g.have = 1;
    const char *tmp = getenv("TMPDIR");
    snprintf(g.dir, sizeof g.dir, "%s/la-disc-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(g.dir) == NULL) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return -1;
    }
    snprintf(g.hosts, sizeof g.hosts, "%s/hosts", g.dir);
    snprintf(g.log, sizeof g.log, "%s/dnsmasq.log", g.dir);
    write_file(g.hosts, "127.0.0.2 dyn.test\n127.0.0.3 dyn.test\n");
    for (int attempt = 0; attempt < 5; attempt++)
        if (start_dnsmasq_once() == 0)
            return 0;
    fprintf(stderr, "could not start %s\n", g.dnsmasq);
    dump_log();
    return -1;
}

static int group_teardown(void **state)
{
    (void)state;
    if (g.pid > 0) {
        kill(g.pid, SIGTERM);
        int status;
        for (int i = 0; i < 100 && waitpid(g.pid, &status, WNOHANG) == 0; i++)
            poll(NULL, 0, 20);
        if (kill(g.pid, 0) == 0) {
            kill(g.pid, SIGKILL);
            waitpid(g.pid, &status, 0);
        }
        g.pid = 0;
    }
    if (g.dir[0]) {
        unlink(g.hosts);
        unlink(g.log);
        rmdir(g.dir);
    }
    return 0;
}

#define NEED_DNSMASQ()                                                                   \
    do {                                                                                 \
        if (!g.have) {                                                                   \
            fprintf(stderr, "SKIP: %s not installed (Debian package dnsmasq-base; "      \
                            "scripts/deps.sh installs it)\n", g.dnsmasq);               \
            skip();                                                                      \
        }                                                                                \
    } while (0)

static void add(discovery *d, const char *svc, const char *name, int64_t refresh, struct rec *r)
{
    char target[128], err[256];
    snprintf(target, sizeof target, "dns://127.0.0.1:%d/%s:5000", g.port, name);
    if (discovery_add(d, svc, target, refresh, rec_cb, r, err, sizeof err) != LOOKASIDE_OK)
        fail_msg("discovery_add %s: %s", target, err);
}

static void test_set_and_ttl(void **state)
{
    (void)state;
    NEED_DNSMASQ();
    discovery *d;
    struct rec r = {0};
    assert_int_equal(discovery_create(&d), LOOKASIDE_OK);
    add(d, "web", "web.test", 60000, &r);
    if (!drive_until(d, pred_calls1, &r, 5000, NULL, NULL))
        dump_log();
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.st, LOOKASIDE_OK);
    assert_string_equal(r.set, "127.0.0.2:5000 127.0.0.3:5000 [::1]:5000");
    /* --local-ttl=1: refreshed after ~1 s although refresh_ms is 60 s. */
    assert_true(drive_until(d, pred_ok3, &r, 5000, NULL, NULL));
    int64_t g1 = r.ok_ms[1] - r.ok_ms[0], g2 = r.ok_ms[2] - r.ok_ms[1];
    if (g1 < 950 || g1 > 2000 || g2 < 950 || g2 > 2000)
        fail_msg("TTL-driven refresh gaps %lld and %lld ms, expected ~1000", (long long)g1,
                 (long long)g2);
    assert_string_equal(r.set, "127.0.0.2:5000 127.0.0.3:5000 [::1]:5000");
    discovery_destroy(d);
}

struct want {
    struct rec *r;
    const char *set;
};

static int pred_set(void *arg)
{
    struct want *w = arg;
    return w->r->ok_calls > 0 && w->r->st == LOOKASIDE_OK && strcmp(w->r->set, w->set) == 0;
}

static void test_change(void **state)
{
    (void)state;
    NEED_DNSMASQ();
    discovery *d;
    struct rec r = {0};
    struct want w = {&r, "127.0.0.2:5000 127.0.0.3:5000"};
    assert_int_equal(discovery_create(&d), LOOKASIDE_OK);
    add(d, "dyn", "dyn.test", 200, &r);
    assert_true(drive_until(d, pred_calls1, &r, 5000, NULL, NULL));
    assert_int_equal(r.st, LOOKASIDE_OK);
    assert_string_equal(r.set, w.set); /* AAAA is NODATA: A only */

    /* 127.0.0.2 removed, 127.0.0.4 added. */
    write_file(g.hosts, "127.0.0.3 dyn.test\n127.0.0.4 dyn.test\n");
    assert_int_equal(kill(g.pid, SIGHUP), 0);
    w.set = "127.0.0.3:5000 127.0.0.4:5000";
    if (!drive_until(d, pred_set, &w, 5000, NULL, NULL))
        fail_msg("set still \"%s\" (status %d)", r.set, (int)r.st);

    /* Every address removed: the name is gone (NXDOMAIN) -> empty set. */
    write_file(g.hosts, "\n");
    assert_int_equal(kill(g.pid, SIGHUP), 0);
    w.set = "";
    if (!drive_until(d, pred_set, &w, 5000, NULL, NULL))
        fail_msg("set still \"%s\" (status %d)", r.set, (int)r.st);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.fail_calls, 0);

    /* And back. */
    write_file(g.hosts, "127.0.0.5 dyn.test\n");
    assert_int_equal(kill(g.pid, SIGHUP), 0);
    w.set = "127.0.0.5:5000";
    if (!drive_until(d, pred_set, &w, 5000, NULL, NULL))
        fail_msg("set still \"%s\" (status %d)", r.set, (int)r.st);
    discovery_destroy(d);
}

static void test_nxdomain(void **state)
{
    (void)state;
    NEED_DNSMASQ();
    discovery *d;
    struct rec r = {0};
    assert_int_equal(discovery_create(&d), LOOKASIDE_OK);
    add(d, "nope", "nope.test", 60000, &r);
    assert_true(drive_until(d, pred_calls1, &r, 5000, NULL, NULL));
    assert_int_equal(r.st, LOOKASIDE_OK);
    assert_int_equal(r.n, 0);
    discovery_destroy(d);
}

static void test_refused(void **state)
{
    (void)state;
    NEED_DNSMASQ();
    discovery *d;
    struct rec r = {0};
    /* Outside --local=/test/ with no upstream servers: dnsmasq refuses. */
    assert_int_equal(discovery_create(&d), LOOKASIDE_OK);
    add(d, "ext", "web.example", 60000, &r);
    assert_true(drive_until(d, pred_calls1, &r, 5000, NULL, NULL));
    assert_int_equal(r.st, LOOKASIDE_EUNAVAIL);
    assert_int_equal(r.ok_calls, 0);
    discovery_destroy(d);
}

/* Needs no dnsmasq: a port where nothing listens. */
static void test_dead_server(void **state)
{
    (void)state;
    discovery *d;
    struct rec r = {0};
    char target[128], err[256];
    int port = free_udp_port();
    assert_true(port > 0);
    snprintf(target, sizeof target, "dns://127.0.0.1:%d/web.test:5000", port);
    assert_int_equal(discovery_create(&d), LOOKASIDE_OK);
    int64_t t0 = clock_mono_ms();
    assert_int_equal(discovery_add(d, "web", target, 60000, rec_cb, &r, err, sizeof err),
                     LOOKASIDE_OK);
    assert_true(drive_until(d, pred_calls1, &r, 5000, NULL, NULL));
    assert_true(r.st != LOOKASIDE_OK);
    if (r.first_ms - t0 > 3200)
        fail_msg("dead server reported after %lld ms", (long long)(r.first_ms - t0));
    discovery_destroy(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_and_ttl), cmocka_unit_test(test_change),
        cmocka_unit_test(test_nxdomain),    cmocka_unit_test(test_refused),
        cmocka_unit_test(test_dead_server),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests_name("it.discovery.dnsmasq", tests, group_setup,
                                       group_teardown);
}
