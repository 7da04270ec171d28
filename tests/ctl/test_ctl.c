/* Integration tests for lookasidectl: the real binary against a real
 * lookaside-server on 127.0.0.1, with backends registered through
 * LoadReporter.Report streams. Every process is started and stopped by PID;
 * every wait is bounded. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "json_check.h"
#include "lookaside/v1/lookaside.pb-c.h"

#ifndef LOOKASIDECTL_BIN
#define LOOKASIDECTL_BIN "lookasidectl"
#endif

/* Generous: the tool runs under ASan and CI machines are slow. */
#define CTL_WAIT_MS 20000

static char g_dir[256];
static proc g_srv;
static tclient *g_c;
static tstream *g_rep[3];

/* ------------------------------------------------------------ running */

typedef struct ctl_proc {
    pid_t pid;
    char out[320], err[320];
} ctl_proc;

typedef struct ctl_res {
    int rc;          /* exit code; 128+signal; -1 when it had to be killed */
    long long ms;    /* how long it ran */
    char *out, *err;
} ctl_res;

static char *slurp(const char *path)
{
    /* Grows a heap buffer; never NULL (an unreadable file reads as ""). */
    size_t cap = 4096, len = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    FILE *f = fopen(path, "rb");
    if (f) {
        size_t n;
        while ((n = fread(out + len, 1, cap - len - 1, f)) > 0) {
            len += n;
            if (cap - len - 1 == 0) {
                cap *= 2;
                out = realloc(out, cap);
                assert_non_null(out);
            }
        }
        fclose(f);
    }
    out[len] = '\0';
    return out;
}

/* Starts lookasidectl with [--lb SERVER] args; stdout and stderr to files. */
static void ctl_start(ctl_proc *p, bool with_lb, const char *const *args)
{
    static int seq;
    seq++;
    snprintf(p->out, sizeof p->out, "%s/ctl-%d.out", g_dir, seq);
    snprintf(p->err, sizeof p->err, "%s/ctl-%d.err", g_dir, seq);
    const char *argv[32];
    int n = 0;
    argv[n++] = LOOKASIDECTL_BIN;
    if (with_lb) {
        argv[n++] = "--lb";
        argv[n++] = g_srv.addr;
    }
    for (int i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int o = open(p->out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(p->err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0)
            _exit(126);
        dup2(o, 1);
        dup2(e, 2);
        close(o);
        close(e);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    p->pid = pid;
}

/* Waits up to ms for the process to exit; kills it after that. */
static int ctl_wait(ctl_proc *p, int ms)
{
    long long until = h_now_ms() + ms;
    int st = 0;
    while (p->pid > 0) {
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid) {
            p->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        if (h_now_ms() >= until) {
            fprintf(stderr, "lookasidectl pid %d did not exit in %d ms; killing it\n", (int)p->pid,
                    ms);
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &st, 0);
            p->pid = 0;
            return -1;
        }
        h_sleep_ms(5);
    }
    return -1;
}

static void ctl_collect(ctl_proc *p, ctl_res *r, int rc)
{
    r->rc = rc;
    r->out = slurp(p->out);
    r->err = slurp(p->err);
    unlink(p->out);
    unlink(p->err);
}

static void ctl_runv(ctl_res *r, bool with_lb, const char *const *args)
{
    ctl_proc p;
    long long t0 = h_now_ms();
    ctl_start(&p, with_lb, args);
    int rc = ctl_wait(&p, CTL_WAIT_MS);
    r->ms = h_now_ms() - t0;
    ctl_collect(&p, r, rc);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
/* Runs lookasidectl --lb SERVER args... */
#define CTL(r, ...) ctl_runv((r), true, ARGS(__VA_ARGS__))
/* Runs lookasidectl args... (no --lb added) */
#define CTL_RAW(r, ...) ctl_runv((r), false, ARGS(__VA_ARGS__))

static void res_free(ctl_res *r)
{
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof *r);
}

static void expect_rc(const ctl_res *r, int want)
{
    if (r->rc != want) {
        fprintf(stderr, "lookasidectl exit %d, want %d\n--- stdout\n%s--- stderr\n%s---\n", r->rc,
                want, r->out, r->err);
        fail();
    }
}

static void expect_has(const char *text, const char *needle)
{
    if (strstr(text, needle) == NULL) {
        fprintf(stderr, "missing \"%s\" in:\n%s\n", needle, text);
        fail();
    }
}

static void expect_json(const char *text)
{
    if (!json_check(text)) {
        fprintf(stderr, "not one JSON value:\n%s\n", text);
        fail();
    }
}

/* The line of text that contains needle (malloc'd), or NULL. */
static char *line_with(const char *text, const char *needle)
{
    const char *p = strstr(text, needle);
    if (p == NULL)
        return NULL;
    const char *b = p;
    while (b > text && b[-1] != '\n')
        b--;
    const char *e = strchr(p, '\n');
    size_t n = e ? (size_t)(e - b) : strlen(b);
    char *line = malloc(n + 1);
    memcpy(line, b, n);
    line[n] = '\0';
    return line;
}

/* True when the JSON object of backend addr (up to the next "address") in a
 * show/get output contains needle. */
static bool backend_json_has(const char *json, const char *addr, const char *needle)
{
    char key[128];
    snprintf(key, sizeof key, "\"address\":\"%s\"", addr);
    const char *b = strstr(json, key);
    if (b == NULL)
        return false;
    const char *e = strstr(b + 1, "\"address\":");
    const char *hit = strstr(b, needle);
    return hit != NULL && (e == NULL || hit < e);
}

/* ------------------------------------------------------------ fixtures */

static tstream *reg_open(const char *svc, const char *addr, const char *zone)
{
    tstream *s = h_report_registered(g_c, svc, addr, zone, NULL);
    assert_non_null(s);
    return s;
}

static void send_load(tstream *s, double cpu, double rps)
{
    Lookaside__V1__Load l = LOOKASIDE__V1__LOAD__INIT;
    l.cpu_utilization = cpu;
    l.rps_fractional = rps;
    l.in_flight = 3;
    Lookaside__V1__LoadReport m = LOOKASIDE__V1__LOAD_REPORT__INIT;
    m.kind_case = LOOKASIDE__V1__LOAD_REPORT__KIND_LOAD;
    m.load = &l;
    assert_int_equal(ts_send(s, &m.base), 0);
}

/* Waits (bounded) until svc's published list has n backends of weight > 0. */
static void wait_serving(const char *svc, size_t n)
{
    long long until = h_now_ms() + 10000;
    while (h_now_ms() < until) {
        Lookaside__V1__WatchRequest w = LOOKASIDE__V1__WATCH_REQUEST__INIT;
        w.service = (char *)svc;
        ProtobufCMessage *m = NULL;
        grpc_status_code code =
            tc_unary(g_c, "/lookaside.v1.Balancer/GetServerList", &w.base,
                     &lookaside__v1__server_list__descriptor, &m, NULL, 5000);
        size_t serving = 0;
        if (code == GRPC_STATUS_OK && m) {
            const Lookaside__V1__ServerList *l = (const Lookaside__V1__ServerList *)m;
            for (size_t i = 0; i < l->n_backends; i++)
                serving += l->backends[i]->weight > 0;
        }
        if (m)
            protobuf_c_message_free_unpacked(m, NULL);
        if (serving == n)
            return;
        h_sleep_ms(50);
    }
    fail_msg("service %s never had %zu serving backends", svc, n);
}

static int setup(void **state)
{
    (void)state;
    static const char *const extra[] = {"--report-interval-ms", "30000", "--weight-period-ms", "200",
                                        NULL};
    char db[320];
    h_tmpdir(g_dir);
    snprintf(db, sizeof db, "%s/lb.db", g_dir);
    memset(&g_srv, 0, sizeof g_srv);
    if (h_server_start(&g_srv, db, extra) != 0)
        return -1;
    g_c = tc_connect(g_srv.addr);
    g_rep[0] = reg_open("web", "127.0.0.1:9001", "zone-a");
    g_rep[1] = reg_open("web", "127.0.0.1:9002", "zone-b");
    g_rep[2] = reg_open("inventory.prod", "127.0.0.1:9101", "zone-a");
    send_load(g_rep[0], 0.5, 100);
    send_load(g_rep[1], 0.25, 100);
    send_load(g_rep[2], 0.5, 10);
    wait_serving("web", 2);
    wait_serving("inventory.prod", 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof g_rep / sizeof g_rep[0]; i++) {
        ts_destroy(g_rep[i]);
        g_rep[i] = NULL;
    }
    tc_close(g_c);
    g_c = NULL;
    return h_server_teardown(&g_srv, g_dir);
}

/* ------------------------------------------------------------ tests */

static void test_services(void **state)
{
    (void)state;
    ctl_res r;
    CTL(&r, "services");
    expect_rc(&r, 0);
    char *hdr = line_with(r.out, "SERVICE");
    char *web = line_with(r.out, "web ");
    char *inv = line_with(r.out, "inventory.prod ");
    assert_non_null(hdr);
    assert_non_null(web);
    assert_non_null(inv);
    expect_has(hdr, "VERSION");
    expect_has(hdr, "BACKENDS");
    expect_has(hdr, "WATCHERS");
    unsigned long long version = 0;
    unsigned backends = 0, serving = 0, watchers = 0;
    char st[32] = "";
    assert_int_equal(sscanf(web, "web %llu %u %u %u %31s", &version, &backends, &serving,
                            &watchers, st),
                     5);
    assert_true(version > 0);
    assert_int_equal(backends, 2);
    assert_int_equal(serving, 2);
    assert_string_equal(st, "LIVE");
    /* Aligned: each column starts at the same offset on every line. */
    assert_int_equal(strstr(hdr, "STATE") - hdr, strstr(web, "LIVE") - web);
    assert_int_equal(strstr(hdr, "STATE") - hdr, strstr(inv, "LIVE") - inv);
    const char *vcol = web + 3;
    while (*vcol == ' ')
        vcol++;
    assert_int_equal(strstr(hdr, "VERSION") - hdr, vcol - web);
    free(hdr);
    free(web);
    free(inv);
    res_free(&r);

    CTL(&r, "--json", "services");
    expect_rc(&r, 0);
    expect_json(r.out);
    expect_has(r.out, "{\"services\":[");
    expect_has(r.out, "\"name\":\"web\"");
    expect_has(r.out, "\"name\":\"inventory.prod\"");
    expect_has(r.out, "\"backends\":2,\"serving\":2,");
    expect_has(r.out, "\"state\":\"LIVE\"");
    res_free(&r);

    /* Global options after the command work too. */
    CTL(&r, "services", "--json");
    expect_rc(&r, 0);
    expect_json(r.out);
    res_free(&r);
}

static void test_show(void **state)
{
    (void)state;
    ctl_res r;
    CTL(&r, "show", "web");
    expect_rc(&r, 0);
    expect_has(r.out, "service   web\n");
    expect_has(r.out, "state     LIVE\n");
    expect_has(r.out, "policy    ");
    expect_has(r.out, "grpclb    calls started 0");
    char *hdr = line_with(r.out, "ADDRESS");
    char *b1 = line_with(r.out, "127.0.0.1:9001 ");
    assert_non_null(hdr);
    assert_non_null(b1);
    for (const char *col = "WEIGHT\0STATE\0ZONE\0SOURCE\0REPORT AGE\0OVERRIDE\0"; *col;
         col += strlen(col) + 1)
        expect_has(hdr, col);
    expect_has(b1, "SERVING");
    expect_has(b1, "zone-a");
    expect_has(b1, "REPORTED");
    assert_int_equal(strstr(hdr, "ZONE") - hdr, strstr(b1, "zone-a") - b1);
    free(hdr);
    free(b1);
    expect_has(r.out, "why these weights:");
    char *why = line_with(strstr(r.out, "why these weights:"), "127.0.0.1:9002");
    assert_non_null(why);
    assert_true(strlen(why) > strlen("  127.0.0.1:9002  -"));   /* the text is there */
    free(why);
    res_free(&r);

    CTL(&r, "--json", "show", "web");
    expect_rc(&r, 0);
    expect_json(r.out);
    expect_has(r.out, "{\"service\":\"web\",\"version\":");
    expect_has(r.out, "\"state\":\"LIVE\"");
    expect_has(r.out, "\"policy\":\"");
    expect_has(r.out, "\"grpclb\":{\"calls_started\":0,");
    assert_true(backend_json_has(r.out, "127.0.0.1:9001", "\"zone\":\"zone-a\""));
    assert_true(backend_json_has(r.out, "127.0.0.1:9001", "\"source\":\"REPORTED\""));
    assert_true(backend_json_has(r.out, "127.0.0.1:9001", "\"state\":\"SERVING\""));
    assert_true(backend_json_has(r.out, "127.0.0.1:9001", "\"weight_override\":0"));
    assert_true(backend_json_has(r.out, "127.0.0.1:9001", "\"explanation\":{\"utilization\":0.5,"));
    assert_true(backend_json_has(r.out, "127.0.0.1:9002", "\"load\":{\"cpu_utilization\":0.25,"));
    assert_true(backend_json_has(r.out, "127.0.0.1:9002", "\"in_flight\":3"));
    assert_true(backend_json_has(r.out, "127.0.0.1:9002", "\"text\":\""));
    assert_false(backend_json_has(r.out, "127.0.0.1:9002", "\"report_age_ms\":null"));
    res_free(&r);

    /* Unknown service: NOT_FOUND, exit 4. */
    CTL(&r, "show", "nosuch");
    expect_rc(&r, 4);
    expect_has(r.err, "NOT_FOUND");
    assert_string_equal(r.out, "");
    res_free(&r);
    CTL(&r, "--json", "show", "nosuch");
    expect_rc(&r, 4);
    expect_json(r.out);
    expect_has(r.out, "{\"error\":{\"status\":\"NOT_FOUND\",\"code\":5,");
    expect_has(r.out, "\"service\":\"nosuch\"");
    res_free(&r);
}

static void test_drain(void **state)
{
    (void)state;
    ctl_res r;
    CTL(&r, "drain", "web", "127.0.0.1:9001");
    expect_rc(&r, 0);
    assert_string_equal(r.out, "web 127.0.0.1:9001: DRAINING\n");
    res_free(&r);

    CTL(&r, "show", "web");
    expect_rc(&r, 0);
    char *b1 = line_with(r.out, "127.0.0.1:9001 ");
    char *b2 = line_with(r.out, "127.0.0.1:9002 ");
    assert_non_null(b1);
    assert_non_null(b2);
    expect_has(b1, " DRAINING ");
    expect_has(b2, " SERVING ");
    free(b1);
    free(b2);
    res_free(&r);
    CTL(&r, "--json", "show", "web");
    expect_rc(&r, 0);
    assert_true(backend_json_has(r.out, "127.0.0.1:9001", "\"state\":\"DRAINING\""));
    res_free(&r);

    CTL(&r, "--json", "undrain", "web", "127.0.0.1:9001");
    expect_rc(&r, 0);
    assert_string_equal(r.out, "{\"service\":\"web\",\"address\":\"127.0.0.1:9001\","
                               "\"state\":\"SERVING\"}\n");
    res_free(&r);
    CTL(&r, "show", "web");
    b1 = line_with(r.out, "127.0.0.1:9001 ");
    assert_non_null(b1);
    expect_has(b1, " SERVING ");
    free(b1);
    res_free(&r);

    /* Unknown backend or service: 4. */
    CTL(&r, "drain", "web", "127.0.0.1:9999");
    expect_rc(&r, 4);
    expect_has(r.err, "NOT_FOUND");
    res_free(&r);
    CTL(&r, "undrain", "nosuch", "127.0.0.1:9001");
    expect_rc(&r, 4);
    res_free(&r);
}

static void test_weight(void **state)
{
    (void)state;
    ctl_res r;
    CTL(&r, "weight", "web", "127.0.0.1:9002", "250");
    expect_rc(&r, 0);
    assert_string_equal(r.out, "web 127.0.0.1:9002: weight override 250\n");
    res_free(&r);

    CTL(&r, "show", "web");
    expect_rc(&r, 0);
    char *b2 = line_with(r.out, "127.0.0.1:9002 ");
    assert_non_null(b2);
    size_t n = strlen(b2);
    assert_true(n > 5 && strcmp(b2 + n - 5, "  250") == 0);   /* OVERRIDE is the last column */
    free(b2);
    res_free(&r);
    CTL(&r, "--json", "show", "web");
    assert_true(backend_json_has(r.out, "127.0.0.1:9002", "\"weight_override\":250"));
    assert_true(backend_json_has(r.out, "127.0.0.1:9001", "\"weight_override\":0"));
    res_free(&r);

    CTL(&r, "--json", "weight", "web", "127.0.0.1:9002", "0");
    expect_rc(&r, 0);
    assert_string_equal(r.out, "{\"service\":\"web\",\"address\":\"127.0.0.1:9002\","
                               "\"weight_override\":0}\n");
    res_free(&r);
    CTL(&r, "--json", "show", "web");
    assert_true(backend_json_has(r.out, "127.0.0.1:9002", "\"weight_override\":0"));
    res_free(&r);
    CTL(&r, "weight", "web", "127.0.0.1:9002", "0");
    expect_rc(&r, 0);
    assert_string_equal(r.out, "web 127.0.0.1:9002: weight override cleared\n");
    res_free(&r);

    /* Out of range or not a number: usage errors, nothing sent. */
    const char *bad[] = {"1000001", "abc", "12x", "-5", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CTL(&r, "weight", "web", "127.0.0.1:9002", bad[i]);
        expect_rc(&r, 2);
        res_free(&r);
    }
    CTL(&r, "weight", "web", "127.0.0.1:9999", "5");
    expect_rc(&r, 4);
    res_free(&r);
}

static void test_get(void **state)
{
    (void)state;
    ctl_res r;
    CTL(&r, "get", "web");
    expect_rc(&r, 0);
    expect_has(r.out, "web  version ");
    expect_has(r.out, "  LIVE  2 backends  generated ");
    char *b1 = line_with(r.out, "127.0.0.1:9001 ");
    assert_non_null(b1);
    expect_has(b1, "SERVING");
    expect_has(b1, "zone-a");
    free(b1);
    res_free(&r);

    CTL(&r, "--json", "get", "web");
    expect_rc(&r, 0);
    expect_json(r.out);
    expect_has(r.out, "{\"service\":\"web\",\"version\":");
    expect_has(r.out, "\"state\":\"LIVE\"");
    assert_true(backend_json_has(r.out, "127.0.0.1:9001", "\"state\":\"SERVING\""));
    assert_true(backend_json_has(r.out, "127.0.0.1:9002", "\"zone\":\"zone-b\""));
    assert_true(backend_json_has(r.out, "127.0.0.1:9002", "\"token\":\""));
    res_free(&r);

    /* The balancer answers an unknown service with an empty list: printed,
     * and exit 4. */
    CTL(&r, "get", "nosuch");
    expect_rc(&r, 4);
    expect_has(r.out, "UNKNOWN_SERVICE  0 backends");
    res_free(&r);
    CTL(&r, "--json", "get", "nosuch");
    expect_rc(&r, 4);
    expect_json(r.out);
    expect_has(r.out, "\"state\":\"UNKNOWN_SERVICE\"");
    expect_has(r.out, "\"backends\":[]");
    res_free(&r);
}

static void test_health(void **state)
{
    (void)state;
    ctl_res r;
    CTL(&r, "health");
    expect_rc(&r, 0);
    assert_string_equal(r.out, "SERVING\n");
    res_free(&r);
    CTL(&r, "health", "web");
    expect_rc(&r, 0);
    assert_string_equal(r.out, "SERVING\n");
    res_free(&r);
    CTL(&r, "--json", "health", "web");
    expect_rc(&r, 0);
    assert_string_equal(r.out, "{\"service\":\"web\",\"status\":\"SERVING\"}\n");
    res_free(&r);
    CTL(&r, "health", "nosuch");
    expect_rc(&r, 4);
    res_free(&r);

    /* A service whose only backend drains has no weight left: NOT_SERVING,
     * exit 5. */
    CTL(&r, "drain", "inventory.prod", "127.0.0.1:9101");
    expect_rc(&r, 0);
    res_free(&r);
    wait_serving("inventory.prod", 0);
    CTL(&r, "health", "inventory.prod");
    expect_rc(&r, 5);
    assert_string_equal(r.out, "NOT_SERVING\n");
    res_free(&r);
}

/* Waits (bounded) until the file has at least n newlines. */
static void wait_lines(const char *path, int n)
{
    long long until = h_now_ms() + CTL_WAIT_MS;
    while (h_now_ms() < until) {
        char *s = slurp(path);
        int lines = 0;
        for (const char *p = s; *p; p++)
            lines += *p == '\n';
        free(s);
        if (lines >= n)
            return;
        h_sleep_ms(20);
    }
    fail_msg("%s never had %d lines", path, n);
}

static unsigned long long json_version(const char *line)
{
    const char *v = strstr(line, "\"version\":");
    assert_non_null(v);
    return strtoull(v + strlen("\"version\":"), NULL, 10);
}

static void test_watch(void **state)
{
    (void)state;
    ctl_res r;
    CTL(&r, "watch", "web", "--count", "1");
    expect_rc(&r, 0);
    expect_has(r.out, "web  version ");
    expect_has(r.out, "127.0.0.1:9001");
    expect_has(r.out, "127.0.0.1:9002");
    assert_null(strstr(strstr(r.out, "version") + 1, "version"));   /* one list */
    res_free(&r);

    CTL(&r, "--json", "watch", "web", "--count=1");
    expect_rc(&r, 0);
    int lines = 0;
    assert_true(json_check_lines(r.out, &lines));
    assert_int_equal(lines, 1);
    res_free(&r);

    /* Follows changes: the drain shows up in a later list (weights still
     * ramping up may push lists in between), versions only grow, and
     * SIGINT ends it with exit 0. */
    ctl_proc w;
    ctl_start(&w, true, ARGS("--json", "watch", "web"));
    wait_lines(w.out, 1);
    CTL(&r, "drain", "web", "127.0.0.1:9001");
    expect_rc(&r, 0);
    res_free(&r);
    long long until = h_now_ms() + CTL_WAIT_MS;
    bool seen = false;
    while (!seen && h_now_ms() < until) {
        char *out = slurp(w.out);
        const char *last = strrchr(out, '\n');
        /* only complete lines count */
        for (const char *line = out; last && line <= last;) {
            if (backend_json_has(line, "127.0.0.1:9001", "\"state\":\"DRAINING\""))
                seen = true;
            line = strchr(line, '\n') + 1;
        }
        free(out);
        if (!seen)
            h_sleep_ms(20);
    }
    assert_int_equal(kill(w.pid, SIGINT), 0);
    int rc = ctl_wait(&w, CTL_WAIT_MS);
    ctl_collect(&w, &r, rc);
    expect_rc(&r, 0);
    assert_true(seen);
    assert_true(json_check_lines(r.out, &lines));
    assert_true(lines >= 2);
    assert_true(backend_json_has(r.out, "127.0.0.1:9001", "\"state\":\"SERVING\""));
    unsigned long long prev = 0;
    for (const char *line = r.out; *line; line = strchr(line, '\n') + 1) {
        unsigned long long v = json_version(line);
        assert_true(v > prev);
        prev = v;
    }
    res_free(&r);

    /* --duration-ms ends a quiet watch. */
    CTL(&r, "watch", "web", "--duration-ms", "300");
    expect_rc(&r, 0);
    assert_true(r.ms >= 300);
    assert_true(r.ms < CTL_WAIT_MS);
    expect_has(r.out, "web  version ");
    res_free(&r);

    /* An unknown service is not an error for watch: an empty list. */
    CTL(&r, "--json", "watch", "nosuch", "--count", "1");
    expect_rc(&r, 0);
    expect_json(r.out);
    expect_has(r.out, "\"state\":\"UNKNOWN_SERVICE\"");
    res_free(&r);
}

static void test_watch_signals(void **state)
{
    (void)state;
    const int sigs[] = {SIGINT, SIGTERM};
    for (size_t i = 0; i < 2; i++) {
        ctl_proc w;
        ctl_res r;
        ctl_start(&w, true, ARGS("watch", "web"));
        wait_lines(w.out, 3);
        assert_int_equal(kill(w.pid, sigs[i]), 0);
        long long t0 = h_now_ms();
        int rc = ctl_wait(&w, CTL_WAIT_MS);
        long long took = h_now_ms() - t0;
        ctl_collect(&w, &r, rc);
        expect_rc(&r, 0);
        assert_true(took < 5000);
        expect_has(r.out, "127.0.0.1:9001");
        res_free(&r);
    }
}

static void test_usage(void **state)
{
    (void)state;
    ctl_res r;
    const char *const *bad[] = {
        ARGS("--lb", "127.0.0.1:1"),                        /* no command */
        ARGS("--lb", "127.0.0.1:1", "frobnicate"),          /* unknown command */
        ARGS("--lb", "127.0.0.1:1", "show"),                /* missing SERVICE */
        ARGS("--lb", "127.0.0.1:1", "show", "a", "b"),      /* extra argument */
        ARGS("--lb", "127.0.0.1:1", "drain", "web"),
        ARGS("--lb", "127.0.0.1:1", "drain", "web", "1.2.3"),    /* bad address */
        ARGS("--lb", "127.0.0.1:1", "drain", "web", "host:80"),  /* not numeric */
        ARGS("--lb", "127.0.0.1:1", "weight", "web", "1.2.3.4:5", "many"),
        ARGS("--lb", "127.0.0.1:1", "show", "web", "--count", "1"),   /* watch only */
        ARGS("--lb", "127.0.0.1:1", "watch", "web", "--count", "0"),
        ARGS("--lb", "127.0.0.1:1", "watch", "web", "--duration-ms"),
        ARGS("--lb", "127.0.0.1:1", "--timeout-ms", "0", "services"),
        ARGS("--lb", "127.0.0.1:1", "--bogus", "services"),
        ARGS("--lb"),
        ARGS("services"),                                   /* no --lb, no LOOKASIDE_LB */
        ARGS("--lb", "127.0.0.1:1", "show", ""),
        ARGS("help", "frobnicate"),
    };
    unsetenv("LOOKASIDE_LB");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ctl_runv(&r, false, bad[i]);
        if (r.rc != 2)
            fprintf(stderr, "case %zu\n", i);
        expect_rc(&r, 2);
        expect_has(r.err, "lookasidectl: ");
        expect_has(r.err, "--help");
        assert_string_equal(r.out, "");
        res_free(&r);
    }

    CTL_RAW(&r, "--help");
    expect_rc(&r, 0);
    expect_has(r.out, "usage: lookasidectl --lb HOST:PORT");
    expect_has(r.out, "exit codes:");
    expect_has(r.out, "  3  cannot reach the balancer");
    for (const char *c = "services\0show SERVICE\0get SERVICE\0watch SERVICE\0drain SERVICE "
                         "ADDRESS\0undrain SERVICE ADDRESS\0weight SERVICE ADDRESS N\0health "
                         "[SERVICE]\0";
         *c; c += strlen(c) + 1)
        expect_has(r.out, c);
    res_free(&r);

    CTL_RAW(&r, "drain", "--help");
    expect_rc(&r, 0);
    expect_has(r.out, "drain SERVICE ADDRESS\n");
    expect_has(r.out, "exit codes:");
    res_free(&r);
    CTL_RAW(&r, "help", "watch");
    expect_rc(&r, 0);
    expect_has(r.out, "--duration-ms N");
    res_free(&r);
    CTL_RAW(&r, "--version");
    expect_rc(&r, 0);
    expect_has(r.out, "lookasidectl ");
    res_free(&r);
}

/* A port on 127.0.0.1 nobody listens on (bound, then closed). */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void test_unreachable(void **state)
{
    (void)state;
    char lb[64];
    snprintf(lb, sizeof lb, "127.0.0.1:%d", closed_port());
    ctl_res r;
    const char *const *cmds[] = {
        ARGS("--lb", lb, "--timeout-ms", "1000", "services"),
        ARGS("--lb", lb, "--timeout-ms", "1000", "show", "web"),
        ARGS("--lb", lb, "--timeout-ms", "1000", "drain", "web", "127.0.0.1:9001"),
        ARGS("--lb", lb, "--timeout-ms", "1000", "watch", "web"),
        ARGS("--lb", lb, "--timeout-ms", "1000", "health"),
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        ctl_runv(&r, false, cmds[i]);
        expect_rc(&r, 3);
        expect_has(r.err, "cannot reach the LB at 127.0.0.1:");
        assert_true(r.ms < 10000);
        res_free(&r);
    }
    CTL_RAW(&r, "--json", "--lb", lb, "--timeout-ms", "1000", "get", "web");
    expect_rc(&r, 3);
    expect_json(r.out);
    expect_has(r.out, "\"unreachable\":true");
    res_free(&r);

    /* Something listens but never speaks HTTP/2: the connect times out. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 8), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    snprintf(lb, sizeof lb, "127.0.0.1:%d", ntohs(a.sin_port));
    CTL_RAW(&r, "--lb", lb, "--timeout-ms", "500", "services");
    close(fd);
    expect_rc(&r, 3);
    expect_has(r.err, "timed out");
    assert_true(r.ms >= 500);
    res_free(&r);
}

/* Hostile text from the command line or the balancer never breaks --json
 * output or reaches the terminal raw. */
static void test_hostile_input(void **state)
{
    (void)state;
    ctl_res r;
    const char *evil = "we\"b\\\n\x01\x1b[2J\xff";
    CTL(&r, "--json", "get", evil);
    expect_rc(&r, 1);   /* INVALID_ARGUMENT from the balancer */
    expect_json(r.out);
    expect_has(r.out, "\"status\":\"INVALID_ARGUMENT\"");
    expect_has(r.out, "\"service\":\"we\\\"b\\\\\\n\\u0001\\u001b[2J\\ufffd\"");
    expect_has(r.err, "INVALID_ARGUMENT");
    res_free(&r);

    CTL(&r, "--json", "show", evil);
    expect_json(r.out);
    assert_true(r.rc == 1 || r.rc == 4);
    res_free(&r);

    /* An address the server cannot parse is caught before sending. */
    CTL(&r, "drain", "web", "\x1b[2J:80");
    expect_rc(&r, 2);
    assert_null(strchr(r.err, '\x1b'));
    expect_has(r.err, "\\x1b[2J:80");
    res_free(&r);
}

int main(int argc, char **argv)
{
    grpc_init();
    signal(SIGPIPE, SIG_IGN);
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_services, setup, teardown),
        cmocka_unit_test_setup_teardown(test_show, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_weight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_signals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreachable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_input, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    grpc_shutdown();
    return rc;
}
