/* Credentials and channel args hooks: a TLS server (mutual TLS required)
 * in this process acts as balancer and backend at once; certificates come
 * from the openssl command line in a temporary directory. The server's
 * certificate names only "lookaside.test", so a channel to 127.0.0.1 gets
 * through the handshake only with the application's
 * GRPC_SSL_TARGET_NAME_OVERRIDE_ARG: success proves that both the supplied
 * credentials and the supplied args are the ones the library used, for the
 * balancer channel of the client and of the reporter and for the backend
 * channels. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "echo_call.h"
#include "fake_srv.h"
#include "lookaside.h"

#define SVC "tls.test"

static char dir[64];

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void path(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", dir, name);
}

static int run(const char *cmd)
{
    char full[1024];
    snprintf(full, sizeof full, "cd %s && %s >/dev/null 2>&1", dir, cmd);
    return system(full);
}

static char *slurp(const char *name)
{
    char p[128];
    path(p, sizeof p, name);
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    static char buf[16384];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strdup(buf);
}

/* A CA, a server certificate for DNS:lookaside.test and a client one. */
static int make_certs(void **st)
{
    (void)st;
    snprintf(dir, sizeof dir, "/tmp/la-tls-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 %s -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca", ec);
    if (run(cmd) != 0)
        return -1;
    const char *names[] = {"server", "client"};
    const char *san[] = {"DNS:lookaside.test", "DNS:client.test"};
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd,
                 "printf 'subjectAltName=%s\\n' > %s.ext && "
                 "openssl req %s -keyout %s.key -out %s.csr -subj /CN=%s && "
                 "openssl x509 -req -in %s.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
                 "-out %s.pem -days 2 -extfile %s.ext",
                 san[i], names[i], ec, names[i], names[i], names[i], names[i], names[i],
                 names[i]);
        if (run(cmd) != 0)
            return -1;
    }
    snprintf(cmd, sizeof cmd, "printf 'not a certificate\\n' > junk.pem");
    return run(cmd) == 0 ? 0 : -1;
}

static int remove_certs(void **st)
{
    (void)st;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static grpc_server_credentials *server_creds(void)
{
    char *ca = slurp("ca.pem"), *cert = slurp("server.pem"), *key = slurp("server.key");
    grpc_ssl_pem_key_cert_pair pair = {key, cert};
    grpc_server_credentials *c = grpc_ssl_server_credentials_create_ex(
        ca, &pair, 1, GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY, NULL);
    free(ca);
    free(cert);
    free(key);
    assert_non_null(c);
    return c;
}

static grpc_channel_credentials *client_creds(void)
{
    char ca[128], cert[128], key[128];
    path(ca, sizeof ca, "ca.pem");
    path(cert, sizeof cert, "client.pem");
    path(key, sizeof key, "client.key");
    grpc_channel_credentials *c = NULL;
    assert_int_equal(lookaside_tls_credentials_create(ca, cert, key, &c), LOOKASIDE_OK);
    assert_non_null(c);
    return c;
}

/* The TLS fake server listing itself, client credentials and args with the
 * name override. */
typedef struct tls_env {
    fake_srv *f;
    grpc_arg arg;
    grpc_channel_args args;
    grpc_channel_credentials *creds;
} tls_env;

static void env_start(tls_env *e)
{
    grpc_init();
    grpc_server_credentials *sc = server_creds();
    e->f = fake_start(sc, 0);
    grpc_server_credentials_release(sc);
    assert_non_null(e->f);
    fake_backend list[] = {{fake_addr(e->f), 100, false}};
    fake_set_list(e->f, list, 1, 7, 0);
    e->arg.type = GRPC_ARG_STRING;
    e->arg.key = GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
    e->arg.value.string = "lookaside.test";
    e->args.num_args = 1;
    e->args.args = &e->arg;
    e->creds = client_creds();
}

/* Creates a client watching SVC through e's server; the caller's reference
 * on the credentials is dropped right after (the library keeps its own). */
static lookaside_client *env_client(tls_env *e, lookaside_client_options *o)
{
    o->lb_target = fake_addr(e->f);
    o->balancer_creds = e->creds;
    o->balancer_args = &e->args;
    o->backend_creds = e->creds;
    lookaside_client *c;
    assert_int_equal(lookaside_client_create(o, &c), LOOKASIDE_OK);
    assert_int_equal(lookaside_client_watch(c, SVC, NULL), LOOKASIDE_OK);
    return c;
}

static void env_stop(tls_env *e, lookaside_client *c)
{
    lookaside_client_destroy(c);
    fake_stop(e->f);
    grpc_shutdown();
}

static void test_tls_end_to_end(void **st)
{
    (void)st;
    tls_env e;
    env_start(&e);
    lookaside_client_options o;
    lookaside_client_options_init(&o);
    o.backend_args = &e.args;
    lookaside_client *c = env_client(&e, &o);

    lookaside_reporter_options ro;
    lookaside_reporter_options_init(&ro);
    ro.lb_target = fake_addr(e.f);
    ro.service = SVC;
    ro.address = "127.0.0.1:5000";
    ro.balancer_creds = e.creds;
    ro.balancer_args = &e.args;
    lookaside_reporter *r;
    assert_int_equal(lookaside_reporter_create(&ro, &r), LOOKASIDE_OK);

    /* The library holds its own references: ours can go now, and the
     * caller's args may change after create. */
    grpc_channel_credentials_release(e.creds);
    e.arg.value.string = "changed.invalid";

    assert_int_equal(lookaside_client_wait_ready(c, SVC, 10000), LOOKASIDE_OK);
    struct lookaside_pick p;
    assert_int_equal(lookaside_pick(c, SVC, &p), LOOKASIDE_OK);
    assert_string_equal(p.address, fake_addr(e.f));
    assert_int_equal(it_echo(p.channel, 5000, NULL, 0), GRPC_STATUS_OK);
    lookaside_pick_done(c, &p, GRPC_STATUS_OK, 0);

    lookaside_reporter_info ri = {0};
    for (int i = 0; i < 500 && !ri.registered; i++) {
        lookaside_reporter_info_get(r, &ri);
        sleep_ms(10);
    }
    assert_true(ri.registered);
    assert_string_equal(ri.token, "tok");
    assert_int_equal(lookaside_reporter_stop(r, 5000), LOOKASIDE_OK);
    lookaside_reporter_destroy(r);

    fake_counts fc;
    fake_counts_get(e.f, &fc);
    assert_int_equal(fc.calls, 1);
    assert_true(fc.registrations >= 1);
    it_echo_thread_done();
    env_stop(&e, c);
}

/* The same server, backend channels without the name override: the
 * balancer's list arrives (its channel has the args) but the backend
 * channel fails its handshake, so the call fails; the server answered no
 * call. */
static void test_tls_backend_args_used(void **st)
{
    (void)st;
    tls_env e;
    env_start(&e);
    lookaside_client_options o;
    lookaside_client_options_init(&o);
    lookaside_client *c = env_client(&e, &o);
    grpc_channel_credentials_release(e.creds);
    assert_int_equal(lookaside_client_wait_ready(c, SVC, 10000), LOOKASIDE_OK);
    struct lookaside_pick p;
    assert_int_equal(lookaside_pick(c, SVC, &p), LOOKASIDE_OK);
    assert_int_equal(it_echo(p.channel, 5000, NULL, 0), GRPC_STATUS_UNAVAILABLE);
    lookaside_pick_done(c, &p, GRPC_STATUS_UNAVAILABLE, 0);
    fake_counts fc;
    fake_counts_get(e.f, &fc);
    assert_int_equal(fc.calls, 0);
    assert_true(fc.watches >= 1);
    it_echo_thread_done();
    env_stop(&e, c);
}

static void test_tls_credentials_errors(void **st)
{
    (void)st;
    char ca[128], cert[128], key[128], junk[128], missing[128];
    path(ca, sizeof ca, "ca.pem");
    path(cert, sizeof cert, "client.pem");
    path(key, sizeof key, "client.key");
    path(junk, sizeof junk, "junk.pem");
    path(missing, sizeof missing, "missing.pem");
    grpc_channel_credentials *c = (grpc_channel_credentials *)1;
    assert_int_equal(lookaside_tls_credentials_create(ca, NULL, NULL, NULL), LOOKASIDE_EINVAL);
    assert_int_equal(lookaside_tls_credentials_create(ca, cert, NULL, &c), LOOKASIDE_EINVAL);
    assert_null(c);
    assert_int_equal(lookaside_tls_credentials_create(ca, NULL, key, &c), LOOKASIDE_EINVAL);
    assert_int_equal(lookaside_tls_credentials_create(missing, NULL, NULL, &c),
                     LOOKASIDE_ENOTFOUND);
    assert_int_equal(lookaside_tls_credentials_create(junk, NULL, NULL, &c), LOOKASIDE_EINVAL);
    assert_int_equal(lookaside_tls_credentials_create(ca, junk, key, &c), LOOKASIDE_EINVAL);
    assert_null(c);
    assert_int_equal(lookaside_tls_credentials_create(ca, NULL, NULL, &c), LOOKASIDE_OK);
    assert_non_null(c);
    grpc_channel_credentials_release(c);

    /* Bad args are refused at create. */
    grpc_arg bad = {GRPC_ARG_STRING, NULL, {.string = "x"}};
    grpc_channel_args args = {1, &bad};
    lookaside_client_options o;
    lookaside_client_options_init(&o);
    o.lb_target = "127.0.0.1:1";
    o.backend_args = &args;
    lookaside_client *cl = (lookaside_client *)1;
    assert_int_equal(lookaside_client_create(&o, &cl), LOOKASIDE_EINVAL);
    assert_null(cl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_credentials_errors),
        cmocka_unit_test(test_tls_end_to_end),
        cmocka_unit_test(test_tls_backend_args_used),
    };
    return cmocka_run_group_tests(tests, make_certs, remove_certs);
}
