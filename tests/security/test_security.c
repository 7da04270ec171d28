/* Security integration tests: the real lookaside-server with TLS, mTLS, a
 * policy file and bearer tokens, against certificates made at test time by
 * gen_certs.sh (openssl CLI). Every refusal is checked for its documented
 * status, and after each one the server still serves a good client. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <grpc/grpc_security.h>
#include <openssl/evp.h>

#include "grpc/health/v1/health.pb-c.h"
#include "grpc/lb/v1/load_balancer.pb-c.h"
#include "harness.h"
#include "lookaside/v1/lookaside.pb-c.h"

static char g_dir[256];
static proc g_mtls;   /* mTLS server, certificates rotated by the last test */
static proc g_tls;    /* server-only TLS: bearer tokens and anonymous peers */

#define OPS_TOKEN "ops-secret-3f9a"
#define ADM_TOKEN "adm-secret-77c1"

/* ------------------------------------------------------------------ files */

static char *slurp(const char *name)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = calloc(1, 1 << 16);
    assert_non_null(buf);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    fclose(f);
    assert_true(n > 0);
    return buf;
}

static void copy_file(const char *from, const char *to)
{
    char *data = slurp(from);
    char path[400], tmp[420];
    snprintf(path, sizeof path, "%s/%s", g_dir, to);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    assert_non_null(f);
    fputs(data, f);
    fclose(f);
    /* rename: the server never reads a half-written file */
    assert_int_equal(rename(tmp, path), 0);
    free(data);
}

static void token_hash(const char *token, char out[65])
{
    unsigned char h[32];
    unsigned int n = 32;
    assert_int_equal(EVP_Digest(token, strlen(token), h, &n, EVP_sha256(), NULL), 1);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

static void write_policy(const char *extra_line)
{
    char ops[65], adm[65], path[400];
    token_hash(OPS_TOKEN, ops);
    token_hash(ADM_TOKEN, adm);
    snprintf(path, sizeof path, "%s/policy.tmp", g_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "# test policy\n"
            "id spiffe://test/reporter-web   report:web\n"
            "id spiffe://test/reporter-other report:web\n"
            "id spiffe://test/client-web     watch:web\n"
            "id spiffe://test/admin          admin\n"
            "id dns-client.test              watch:*\n"
            "token ops sha256:%s watch:*\n"
            "token adm %s admin   # the sha256: prefix is optional\n"
            "%s\n",
            ops, adm, extra_line ? extra_line : "");
    fclose(f);
    char final[400];
    snprintf(final, sizeof final, "%s/policy", g_dir);
    assert_int_equal(rename(path, final), 0);
}

/* ---------------------------------------------------------------- clients */

/* A TLS client: trusts ca (file name in g_dir), presents cert/key when
 * given, optional bearer token, verifies the server as target_name. */
static tclient *tls_client(const proc *p, const char *ca, const char *cert, const char *token,
                           const char *target_name)
{
    char *roots = slurp(ca), *crt = NULL, *key = NULL;
    grpc_ssl_pem_key_cert_pair pair;
    if (cert) {
        char kname[64];
        snprintf(kname, sizeof kname, "%.*s.key", (int)(strlen(cert) - 4), cert);
        crt = slurp(cert);
        key = slurp(kname);
        pair.cert_chain = crt;
        pair.private_key = key;
    }
    grpc_channel_credentials *creds =
        grpc_ssl_credentials_create(roots, cert ? &pair : NULL, NULL, NULL);
    if (token) {
        char hdr[128];
        snprintf(hdr, sizeof hdr, "%s", token);
        grpc_call_credentials *cc = grpc_access_token_credentials_create(hdr, NULL);
        grpc_channel_credentials *comp = grpc_composite_channel_credentials_create(creds, cc, NULL);
        grpc_call_credentials_release(cc);
        grpc_channel_credentials_release(creds);
        creds = comp;
    }
    static int uniq;
    grpc_arg args[2];
    args[0].type = GRPC_ARG_STRING;
    args[0].key = GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
    args[0].value.string = (char *)(target_name ? target_name : "localhost");
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = "lookaside.test.uniq";   /* a connection of its own */
    args[1].value.integer = ++uniq;
    grpc_channel_args ca_args = {2, args};
    tclient *c = tc_connect_creds(p->addr, creds, &ca_args);
    grpc_channel_credentials_release(creds);
    free(roots);
    free(crt);
    free(key);
    return c;
}

static grpc_status_code health(tclient *c)
{
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    return tc_unary(c, "/grpc.health.v1.Health/Check", &req.base, NULL, NULL, NULL, 5000);
}

/* GetServerList; the list goes to *out when out is not NULL. */
static grpc_status_code get_list(tclient *c, const char *service, Lookaside__V1__ServerList **out)
{
    Lookaside__V1__WatchRequest req = LOOKASIDE__V1__WATCH_REQUEST__INIT;
    req.service = (char *)service;
    ProtobufCMessage *m = NULL;
    grpc_status_code code = tc_unary(c, "/lookaside.v1.Balancer/GetServerList", &req.base,
                                     &lookaside__v1__server_list__descriptor, &m, NULL, 5000);
    if (out)
        *out = (Lookaside__V1__ServerList *)m;
    else if (m)
        protobuf_c_message_free_unpacked(m, NULL);
    return code;
}

static grpc_status_code set_drain(tclient *c, const char *service, const char *address)
{
    Lookaside__V1__SetDrainRequest req = LOOKASIDE__V1__SET_DRAIN_REQUEST__INIT;
    req.service = (char *)service;
    req.address = (char *)address;
    req.draining = false;
    return tc_unary(c, "/lookaside.v1.Admin/SetDrain", &req.base, NULL, NULL, NULL, 5000);
}

static grpc_status_code override_weight(tclient *c)
{
    Lookaside__V1__SetWeightOverrideRequest req =
        LOOKASIDE__V1__SET_WEIGHT_OVERRIDE_REQUEST__INIT;
    req.service = "web";
    req.address = "127.0.0.1:7001";
    req.weight = 1000000;
    return tc_unary(c, "/lookaside.v1.Admin/SetWeightOverride", &req.base, NULL, NULL, NULL,
                    5000);
}

static grpc_status_code list_services(tclient *c)
{
    Lookaside__V1__ListServicesRequest req = LOOKASIDE__V1__LIST_SERVICES_REQUEST__INIT;
    return tc_unary(c, "/lookaside.v1.Admin/ListServices", &req.base, NULL, NULL, NULL, 5000);
}

static grpc_status_code stream_status(tstream *s)
{
    grpc_status_code code = GRPC_STATUS_UNKNOWN;
    assert_int_equal(ts_status(s, 5000, &code, NULL), 0);
    return code;
}

/* Opens a Report stream and returns its final status (the refusal). */
static grpc_status_code register_refused(tclient *c, const char *service, const char *address)
{
    tstream *s = h_report_open(c, service, address, NULL, NULL);
    assert_non_null(s);
    grpc_status_code code = stream_status(s);
    ts_destroy(s);
    return code;
}

static Lookaside__V1__ReportAck *ack_recv(tstream *s)
{
    ProtobufCMessage *m = NULL;
    if (ts_recv(s, &lookaside__v1__report_ack__descriptor, &m, 5000) != 1)
        return NULL;
    return (Lookaside__V1__ReportAck *)m;
}

/* Registers service/address on c and waits for the first ack. */
static tstream *registered(tclient *c, const char *service, const char *address)
{
    tstream *s = h_report_open(c, service, address, NULL, NULL);
    assert_non_null(s);
    Lookaside__V1__ReportAck *ack = ack_recv(s);
    assert_non_null(ack);
    protobuf_c_message_free_unpacked(&ack->base, NULL);
    return s;
}

/* Sends one load report (50 % CPU, 10 rps). */
static int send_load(tstream *s)
{
    Lookaside__V1__Load load = LOOKASIDE__V1__LOAD__INIT;
    load.cpu_utilization = 0.5;
    load.rps_fractional = 10;
    Lookaside__V1__LoadReport m = LOOKASIDE__V1__LOAD_REPORT__INIT;
    m.kind_case = LOOKASIDE__V1__LOAD_REPORT__KIND_LOAD;
    m.load = &load;
    return ts_send(s, &m.base);
}

/* Sends one load report and waits for its ack: the stream is alive. */
static bool report_acked(tstream *s)
{
    if (send_load(s) != 0)
        return false;
    Lookaside__V1__ReportAck *ack = ack_recv(s);
    if (ack == NULL)
        return false;
    protobuf_c_message_free_unpacked(&ack->base, NULL);
    return true;
}

/* The good client still gets served: after every refusal. */
static void good_client_served(void)
{
    tclient *c = tls_client(&g_mtls, "ca.crt", "client.crt", NULL, NULL);
    assert_int_equal(get_list(c, "web", NULL), GRPC_STATUS_OK);
    tc_close(c);
    c = tls_client(&g_tls, "ca.crt", NULL, OPS_TOKEN, NULL);
    assert_int_equal(get_list(c, "web", NULL), GRPC_STATUS_OK);
    tc_close(c);
}

/* ------------------------------------------------------------ setup/teardown */

static int group_setup(void **state)
{
    (void)state;
    h_tmpdir(g_dir);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "sh %s %s", GEN_CERTS, g_dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "gen_certs.sh failed (is the openssl CLI installed? scripts/deps.sh)\n");
        return -1;
    }
    copy_file("server.crt", "live.crt");
    copy_file("server.key", "live.key");
    write_policy(NULL);
    char crt[300], key[300], ca[300], pol[300], db1[300], db2[300];
    snprintf(crt, sizeof crt, "%s/live.crt", g_dir);
    snprintf(key, sizeof key, "%s/live.key", g_dir);
    snprintf(ca, sizeof ca, "%s/ca.crt", g_dir);
    snprintf(pol, sizeof pol, "%s/policy", g_dir);
    snprintf(db1, sizeof db1, "%s/mtls.db", g_dir);
    snprintf(db2, sizeof db2, "%s/tls.db", g_dir);
    const char *mtls[] = {"--tls-cert", crt, "--tls-key", key, "--tls-client-ca", ca,
                          "--policy-file", pol, "--report-interval-ms", "30000", NULL};
    const char *tls[] = {"--tls-cert", crt, "--tls-key", key, "--policy-file", pol, NULL};
    if (h_server_start(&g_mtls, db1, mtls) != 0 || h_server_start(&g_tls, db2, tls) != 0)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    /* No secret ever reaches a log. */
    bool leaked = h_log_has(&g_tls, OPS_TOKEN) || h_log_has(&g_tls, ADM_TOKEN) ||
                  h_log_has(&g_mtls, OPS_TOKEN) || h_log_has(&g_mtls, ADM_TOKEN);
    int rc = 0;
    if (h_stop(&g_tls) != 0 || h_stop(&g_mtls) != 0 || leaked) {
        h_log_dump(&g_mtls);
        h_log_dump(&g_tls);
        rc = -1;
    }
    unlink(g_mtls.log);
    unlink(g_tls.log);
    h_rmdir(g_dir);
    return rc;
}

/* ------------------------------------------------------------------- tests */

/* Handshake refusals end the call with UNAVAILABLE at once (no hang, no
 * crash), and the server keeps serving. */
static void test_handshake_refusals(void **state)
{
    (void)state;
    struct {
        const char *what, *ca, *cert, *target;
        const proc *srv;
    } cases[] = {
        {"plaintext client", NULL, NULL, NULL, &g_mtls},
        {"plaintext client, TLS-only server", NULL, NULL, NULL, &g_tls},
        {"no client certificate", "ca.crt", NULL, NULL, &g_mtls},
        {"client certificate from another CA", "ca.crt", "otherca.crt", NULL, &g_mtls},
        {"expired client certificate", "ca.crt", "expired.crt", NULL, &g_mtls},
        {"client does not trust the server's CA", "ca2.crt", "client.crt", NULL, &g_mtls},
        {"server name not in the server certificate", "ca.crt", "client.crt", "wrong.example",
         &g_mtls},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tclient *c = cases[i].ca ? tls_client(cases[i].srv, cases[i].ca, cases[i].cert, NULL,
                                              cases[i].target)
                                 : tc_connect(cases[i].srv->addr);
        grpc_status_code code = health(c);
        if (code != GRPC_STATUS_UNAVAILABLE)
            fprintf(stderr, "case '%s': status %d\n", cases[i].what, (int)code);
        assert_int_equal(code, GRPC_STATUS_UNAVAILABLE);
        tc_close(c);
        good_client_served();
    }
}

/* mTLS identities against the policy. */
static void test_permissions(void **state)
{
    (void)state;
    tclient *client = tls_client(&g_mtls, "ca.crt", "client.crt", NULL, NULL);
    tclient *unknown = tls_client(&g_mtls, "ca.crt", "wrongsan.crt", NULL, NULL);
    tclient *dns = tls_client(&g_mtls, "ca.crt", "dnsonly.crt", NULL, NULL);
    tclient *admin = tls_client(&g_mtls, "ca.crt", "admin.crt", NULL, NULL);
    tclient *rep = tls_client(&g_mtls, "ca.crt", "reporter.crt", NULL, NULL);

    /* Health needs nothing beyond the handshake. */
    assert_int_equal(health(unknown), GRPC_STATUS_OK);
    /* watch:web */
    assert_int_equal(get_list(client, "web", NULL), GRPC_STATUS_OK);
    assert_int_equal(get_list(client, "other", NULL), GRPC_STATUS_PERMISSION_DENIED);
    Lookaside__V1__WatchRequest wr = LOOKASIDE__V1__WATCH_REQUEST__INIT;
    wr.service = "other";
    tstream *w = ts_open(client, "/lookaside.v1.Balancer/Watch", &wr.base);
    assert_int_equal(stream_status(w), GRPC_STATUS_PERMISSION_DENIED);
    ts_destroy(w);
    assert_int_equal(list_services(client), GRPC_STATUS_PERMISSION_DENIED);
    assert_int_equal(set_drain(client, "web", "127.0.0.1:7001"), GRPC_STATUS_PERMISSION_DENIED);
    assert_int_equal(override_weight(client), GRPC_STATUS_PERMISSION_DENIED);
    assert_int_equal(register_refused(client, "web", "127.0.0.1:7009"),
                     GRPC_STATUS_PERMISSION_DENIED);
    /* grpclb: watch for the named service */
    Grpc__Lb__V1__InitialLoadBalanceRequest init = GRPC__LB__V1__INITIAL_LOAD_BALANCE_REQUEST__INIT;
    init.name = "other:443";
    Grpc__Lb__V1__LoadBalanceRequest lr = GRPC__LB__V1__LOAD_BALANCE_REQUEST__INIT;
    lr.load_balance_request_type_case =
        GRPC__LB__V1__LOAD_BALANCE_REQUEST__LOAD_BALANCE_REQUEST_TYPE_INITIAL_REQUEST;
    lr.initial_request = &init;
    tstream *lb = ts_open(client, "/grpc.lb.v1.LoadBalancer/BalanceLoad", NULL);
    assert_int_equal(ts_send(lb, &lr.base), 0);
    assert_int_equal(stream_status(lb), GRPC_STATUS_PERMISSION_DENIED);
    ts_destroy(lb);
    /* A valid certificate the policy does not name: identified, no rights. */
    assert_int_equal(get_list(unknown, "web", NULL), GRPC_STATUS_PERMISSION_DENIED);
    /* A certificate naming itself like a token identity is no identity. */
    tclient *fake = tls_client(&g_mtls, "ca.crt", "tokenuri.crt", NULL, NULL);
    assert_int_equal(set_drain(fake, "web", "127.0.0.1:7001"), GRPC_STATUS_UNAUTHENTICATED);
    tc_close(fake);
    /* Identity from the DNS SAN when there is no URI SAN: watch:*. */
    assert_int_equal(get_list(dns, "anything", NULL), GRPC_STATUS_OK);
    assert_int_equal(list_services(dns), GRPC_STATUS_OK);
    assert_int_equal(set_drain(dns, "web", "127.0.0.1:7001"), GRPC_STATUS_PERMISSION_DENIED);
    /* report:web */
    assert_int_equal(register_refused(rep, "other", "127.0.0.1:7002"),
                     GRPC_STATUS_PERMISSION_DENIED);
    assert_int_equal(register_refused(rep, "web", "10.9.8.7:80"), GRPC_STATUS_PERMISSION_DENIED);
    assert_int_equal(get_list(rep, "web", NULL), GRPC_STATUS_PERMISSION_DENIED);
    tstream *s = registered(rep, "web", "127.0.0.1:7001");
    /* admin: everything */
    assert_int_equal(set_drain(admin, "web", "127.0.0.1:7001"), GRPC_STATUS_OK);
    assert_int_equal(list_services(admin), GRPC_STATUS_OK);
    assert_int_equal(set_drain(admin, "web", "127.0.0.1:7999"), GRPC_STATUS_NOT_FOUND);
    assert_int_equal(ts_close_send(s), 0);
    ts_destroy(s);

    assert_true(h_log_has(&g_mtls, "identity spiffe://test/client-web lacks admin for "
                                   "/lookaside.v1.Admin/SetDrain"));
    assert_true(h_log_has(&g_mtls, "identity spiffe://test/client-web lacks watch:other"));
    assert_true(h_log_has(&g_mtls, "lacks register-any"));
    tc_close(client);
    tc_close(unknown);
    tc_close(dns);
    tc_close(admin);
    tc_close(rep);
    good_client_served();
}

/* Bearer tokens on a server-only TLS server: no identity is
 * UNAUTHENTICATED, a known token without the permission PERMISSION_DENIED. */
static void test_tokens(void **state)
{
    (void)state;
    tclient *anon = tls_client(&g_tls, "ca.crt", NULL, NULL, NULL);
    tclient *wrong = tls_client(&g_tls, "ca.crt", NULL, "not-a-known-token", NULL);
    tclient *prefix = tls_client(&g_tls, "ca.crt", NULL, "ops-secret", NULL);
    tclient *ops = tls_client(&g_tls, "ca.crt", NULL, OPS_TOKEN, NULL);
    tclient *adm = tls_client(&g_tls, "ca.crt", NULL, ADM_TOKEN, NULL);
    assert_int_equal(health(anon), GRPC_STATUS_OK);
    assert_int_equal(get_list(anon, "web", NULL), GRPC_STATUS_UNAUTHENTICATED);
    assert_int_equal(set_drain(anon, "web", "127.0.0.1:1"), GRPC_STATUS_UNAUTHENTICATED);
    assert_int_equal(register_refused(anon, "web", "127.0.0.1:7003"),
                     GRPC_STATUS_UNAUTHENTICATED);
    assert_int_equal(get_list(wrong, "web", NULL), GRPC_STATUS_UNAUTHENTICATED);
    assert_int_equal(get_list(prefix, "web", NULL), GRPC_STATUS_UNAUTHENTICATED);
    assert_int_equal(get_list(ops, "web", NULL), GRPC_STATUS_OK);
    assert_int_equal(set_drain(ops, "web", "127.0.0.1:1"), GRPC_STATUS_PERMISSION_DENIED);
    assert_int_equal(set_drain(adm, "web", "127.0.0.1:1"), GRPC_STATUS_NOT_FOUND);
    assert_true(h_log_has(&g_tls, "identity token:ops lacks admin"));
    assert_true(h_log_has(&g_tls, "no identity for /lookaside.v1.Balancer/GetServerList"));
    tc_close(anon);
    tc_close(wrong);
    tc_close(prefix);
    tc_close(ops);
    tc_close(adm);
    good_client_served();
}

/* A second identity cannot take over a live registration; the victim's
 * stream and its place in the list stay as they were. The same identity
 * may replace its own stream (a restarted backend). */
static void test_no_hijack(void **state)
{
    (void)state;
    tclient *victim = tls_client(&g_mtls, "ca.crt", "reporter.crt", NULL, NULL);
    tclient *thief = tls_client(&g_mtls, "ca.crt", "reporter2.crt", NULL, NULL);
    tclient *watcher = tls_client(&g_mtls, "ca.crt", "dnsonly.crt", NULL, NULL);
    tstream *v = registered(victim, "web", "127.0.0.1:7100");
    assert_int_equal(register_refused(thief, "web", "127.0.0.1:7100"),
                     GRPC_STATUS_PERMISSION_DENIED);
    assert_true(h_log_has(&g_mtls, "127.0.0.1:7100 is held by a live stream of another identity"));
    /* The victim is untouched: its stream still acks, its backend serves. */
    assert_true(report_acked(v));
    Lookaside__V1__ServerList *l = NULL;
    assert_int_equal(get_list(watcher, "web", &l), GRPC_STATUS_OK);
    bool found = false;
    for (size_t i = 0; i < l->n_backends; i++)
        if (strcmp(l->backends[i]->address, "127.0.0.1:7100") == 0)
            found = l->backends[i]->state == LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_SERVING;
    protobuf_c_message_free_unpacked(&l->base, NULL);
    assert_true(found);
    /* Same identity, new stream: replaces the old one. */
    tclient *again = tls_client(&g_mtls, "ca.crt", "reporter.crt", NULL, NULL);
    tstream *v2 = registered(again, "web", "127.0.0.1:7100");
    assert_int_equal(stream_status(v), GRPC_STATUS_ABORTED);
    assert_true(report_acked(v2));
    ts_destroy(v);
    assert_int_equal(ts_close_send(v2), 0);
    ts_destroy(v2);
    tc_close(victim);
    tc_close(thief);
    tc_close(watcher);
    tc_close(again);
    good_client_served();
}

/* Runs argv (NULL-terminated, stdout and stderr to /dev/null); its exit
 * code (-1 when it did not exit within 20 s: killed). */
static int run_argv(const char *const *argv)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (freopen("/dev/null", "w", stdout) == NULL || freopen("/dev/null", "w", stderr) == NULL)
            _exit(127);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    for (int i = 0; i < 400; i++) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        h_sleep_ms(50);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

/* Runs lookasidectl with --lb p and args (NULL-terminated); its exit code. */
static int ctl(const proc *p, ...)
{
    const char *argv[32];
    int n = 0;
    argv[n++] = LOOKASIDECTL;
    argv[n++] = "--lb";
    argv[n++] = p->addr;
    argv[n++] = "--timeout-ms";
    argv[n++] = "5000";
    va_list ap;
    va_start(ap, p);
    for (const char *a; n < 31 && (a = va_arg(ap, const char *)) != NULL;)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    return run_argv(argv);
}

static const char *file(const char *name)
{
    static char paths[16][400];   /* a ring: up to 16 live at once */
    static int next;
    char *out = paths[next++ % 16];
    snprintf(out, 400, "%s/%s", g_dir, name);
    return out;
}

/* lookasidectl's documented exit codes for security failures. */
/* A burst of loads over mTLS (a reporter catching up): acks may be shared
 * (server/report.c sends at most one per stream per few ms), but every load
 * is counted, counts never go back, and the last ack -- here a drain sent
 * right after the burst, inside the hold-back window -- always comes. */
static void test_report_burst_acks(void **state)
{
    (void)state;
    enum { BURST = 200 };
    tclient *c = tls_client(&g_mtls, "ca.crt", "reporter.crt", NULL, NULL);
    tstream *s = registered(c, "web", "127.0.0.1:7200");
    for (int i = 0; i < BURST; i++)
        assert_int_equal(send_load(s), 0);
    Lookaside__V1__Drain drain = LOOKASIDE__V1__DRAIN__INIT;
    drain.draining = true;
    Lookaside__V1__LoadReport d = LOOKASIDE__V1__LOAD_REPORT__INIT;
    d.kind_case = LOOKASIDE__V1__LOAD_REPORT__KIND_DRAIN;
    d.drain = &drain;
    assert_int_equal(ts_send(s, &d.base), 0);
    uint64_t last = 1;   /* the registration */
    int acks = 0;
    bool draining = false;
    while (last < BURST + 2 && acks <= BURST + 1) {
        Lookaside__V1__ReportAck *ack = ack_recv(s);
        assert_non_null(ack);
        assert_true(ack->accepted >= last);
        last = ack->accepted;
        draining = ack->state == LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_DRAINING;
        acks++;
        protobuf_c_message_free_unpacked(&ack->base, NULL);
    }
    assert_int_equal(last, BURST + 2);   /* register + loads + drain */
    assert_true(draining);
    print_message("%d loads and a drain: %d acks\n", BURST, acks);
    assert_int_equal(ts_close_send(s), 0);
    ts_destroy(s);
    tc_close(c);
}

static void test_ctl_exit_codes(void **state)
{
    (void)state;
    const char *ca = file("ca.crt");
    /* plaintext against TLS, or an untrusted/missing client certificate: the
     * handshake fails like a connection does -> 3 */
    assert_int_equal(ctl(&g_mtls, "services", NULL), 3);
    assert_int_equal(ctl(&g_mtls, "--tls-ca", ca, "services", NULL), 3);
    assert_int_equal(ctl(&g_mtls, "--tls-ca", ca, "--tls-cert", file("expired.crt"), "--tls-key",
                         file("expired.key"), "services", NULL), 3);
    /* an identity without the permission -> 7; with it -> 0 */
    assert_int_equal(ctl(&g_mtls, "--tls-ca", ca, "--tls-cert", file("client.crt"), "--tls-key",
                         file("client.key"), "--tls-server-name", "localhost", "services", NULL),
                     7);
    assert_int_equal(ctl(&g_mtls, "--tls-ca", ca, "--tls-cert", file("admin.crt"), "--tls-key",
                         file("admin.key"), "services", NULL), 0);
    /* no identity -> 6; tokens */
    assert_int_equal(ctl(&g_tls, "--tls-ca", ca, "get", "web", NULL), 6);
    assert_int_equal(ctl(&g_tls, "--tls-ca", ca, "--token", "nope", "get", "web", NULL), 6);
    assert_int_equal(ctl(&g_tls, "--tls-ca", ca, "--token", OPS_TOKEN, "services", NULL), 0);
    assert_int_equal(ctl(&g_tls, "--tls-ca", ca, "--token", OPS_TOKEN, "drain", "web",
                         "127.0.0.1:1", NULL), 7);
    assert_int_equal(ctl(&g_tls, "--tls-ca", ca, "--token", ADM_TOKEN, "drain", "web",
                         "127.0.0.1:1", NULL), 4);
    /* unreadable files and half-given flags are usage errors -> 2 */
    assert_int_equal(ctl(&g_tls, "--tls-ca", file("missing.crt"), "get", "web", NULL), 2);
    assert_int_equal(ctl(&g_tls, "--tls-ca", ca, "--tls-cert", file("client.crt"), "get", "web",
                         NULL), 2);
    assert_int_equal(ctl(&g_tls, "--tls-cert", file("client.crt"), "--tls-key",
                         file("client.key"), "get", "web", NULL), 2);
    good_client_served();
}

/* Security flags that do not fit together, or files that are not what
 * they claim, stop the server at start with exit 2 (it never serves with a
 * half-applied configuration). */
static void test_bad_server_flags(void **state)
{
    (void)state;
    char db[400];
    snprintf(db, sizeof db, "%s/bad.db", g_dir);
    const char *crt = file("server.crt"), *key = file("server.key"), *ca = file("ca.crt");
    const char *pol = file("policy"), *wrongkey = file("client.key");
    const char *cases[][12] = {
        {"--tls-cert", crt, NULL},                                   /* no key */
        {"--tls-client-ca", ca, "--policy-file", pol, NULL},         /* CA without cert */
        {"--tls-cert", crt, "--tls-key", key, NULL},                 /* TLS without policy */
        {"--tls-cert", crt, "--tls-key", key, "--insecure", "--policy-file", pol, NULL},
        {"--tls-cert", crt, "--tls-key", wrongkey, "--policy-file", pol, NULL}, /* key mismatch */
        {"--tls-cert", ca, "--tls-key", key, "--policy-file", pol, NULL},      /* ditto */
        {"--tls-cert", key, "--tls-key", key, "--policy-file", pol, NULL},     /* not a cert */
        {"--tls-cert", crt, "--tls-key", key, "--policy-file", file("ca.crt"), NULL},
        {"--policy-file", file("missing"), NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *argv[20] = {LOOKASIDE_SERVER, "--listen", "127.0.0.1:0", "--db", db};
        int n = 5;
        for (int k = 0; cases[i][k]; k++)
            argv[n++] = cases[i][k];
        argv[n] = NULL;
        int rc = run_argv(argv);
        if (rc != 2)
            fprintf(stderr, "case %zu: exit %d\n", i, rc);
        assert_int_equal(rc, 2);
    }
}

/* Bounded wait for text in a server log. */
static bool log_wait(const proc *p, const char *text)
{
    for (int i = 0; i < 100; i++) {
        if (h_log_has(p, text))
            return true;
        h_sleep_ms(50);
    }
    return false;
}

/* SIGHUP: a new certificate (from another CA) and a new policy for new
 * connections; the Watch and Report streams opened before stay open. */
static void test_rotation(void **state)
{
    (void)state;
    tclient *wc = tls_client(&g_mtls, "ca.crt", "client.crt", NULL, NULL);
    tclient *rc = tls_client(&g_mtls, "ca.crt", "reporter.crt", NULL, NULL);
    Lookaside__V1__WatchRequest wr = LOOKASIDE__V1__WATCH_REQUEST__INIT;
    wr.service = "web";
    tstream *w = ts_open(wc, "/lookaside.v1.Balancer/Watch", &wr.base);
    ProtobufCMessage *m = NULL;
    assert_int_equal(ts_recv(w, &lookaside__v1__server_list__descriptor, &m, 5000), 1);
    protobuf_c_message_free_unpacked(m, NULL);
    tstream *r = registered(rc, "web", "127.0.0.1:7200");

    copy_file("server2.crt", "live.crt");
    copy_file("server2.key", "live.key");
    write_policy("id spiffe://test/client-web watch:rotated");
    assert_int_equal(kill(g_mtls.pid, SIGHUP), 0);
    assert_true(log_wait(&g_mtls, "SIGHUP: certificates reloaded"));
    assert_true(log_wait(&g_mtls, "SIGHUP: policy reloaded"));

    /* New connections see the new certificate: only ca2 verifies it now. */
    tclient *old_trust = tls_client(&g_mtls, "ca.crt", "client.crt", NULL, NULL);
    assert_int_equal(health(old_trust), GRPC_STATUS_UNAVAILABLE);
    tclient *new_trust = tls_client(&g_mtls, "ca2.crt", "client.crt", NULL, NULL);
    assert_int_equal(get_list(new_trust, "web", NULL), GRPC_STATUS_OK);
    /* ... and the new policy. */
    assert_int_equal(get_list(new_trust, "rotated", NULL), GRPC_STATUS_OK);

    /* The streams from before are alive: the report is acked and the
     * watcher gets the list change it causes. */
    assert_true(report_acked(r));
    tclient *rc2 = tls_client(&g_mtls, "ca2.crt", "reporter.crt", NULL, NULL);
    tstream *r2 = registered(rc2, "web", "127.0.0.1:7201");
    bool saw = false;
    for (int i = 0; i < 20 && !saw; i++) {
        if (ts_recv(w, &lookaside__v1__server_list__descriptor, &m, 500) != 1)
            continue;
        Lookaside__V1__ServerList *l = (Lookaside__V1__ServerList *)m;
        for (size_t k = 0; k < l->n_backends; k++)
            saw |= strcmp(l->backends[k]->address, "127.0.0.1:7201") == 0;
        protobuf_c_message_free_unpacked(m, NULL);
    }
    assert_true(saw);

    /* A broken file keeps what is in use. */
    char path[400];
    snprintf(path, sizeof path, "%s/live.key", g_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("not a key\n", f);
    fclose(f);
    assert_int_equal(kill(g_mtls.pid, SIGHUP), 0);
    assert_true(log_wait(&g_mtls, "certificates not reloaded"));
    tclient *after = tls_client(&g_mtls, "ca2.crt", "client.crt", NULL, NULL);
    assert_int_equal(get_list(after, "web", NULL), GRPC_STATUS_OK);

    ts_cancel(w);
    ts_destroy(w);
    assert_int_equal(ts_close_send(r), 0);
    assert_int_equal(ts_close_send(r2), 0);
    ts_destroy(r);
    ts_destroy(r2);
    tc_close(wc);
    tc_close(rc);
    tc_close(rc2);
    tc_close(old_trust);
    tc_close(new_trust);
    tc_close(after);
}

int main(void)
{
    grpc_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_refusals),
        cmocka_unit_test(test_permissions),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_no_hijack),
        cmocka_unit_test(test_report_burst_acks),
        cmocka_unit_test(test_ctl_exit_codes),
        cmocka_unit_test(test_bad_server_flags),
        cmocka_unit_test(test_rotation),   /* last: changes the certificate */
    };
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    grpc_shutdown();
    return rc;
}
