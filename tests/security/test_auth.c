/* Unit tests of server/auth.c: policy files, permission decisions, protected
 * mode, the peer-address rule and token hashing. No gRPC calls. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "lookaside/v1/lookaside.pb-c.h"

static char g_path[64];

static const char *write_file(const char *text)
{
    snprintf(g_path, sizeof g_path, "/tmp/lookaside-auth-XXXXXX");
    int fd = mkstemp(g_path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return g_path;
}

static auth_peer peer(const char *host, const char *cert_id, const char *token)
{
    auth_peer p;
    memset(&p, 0, sizeof p);
    snprintf(p.host, sizeof p.host, "%s", host);
    p.loopback = strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0;
    snprintf(p.cert_id, sizeof p.cert_id, "%s", cert_id ? cert_id : "");
    auth_peer_add_token(&p, token);
    return p;
}

static auth *make(auth_mode mode, const char *policy_text)
{
    char err[300] = "";
    auth *a = NULL;
    const char *path = policy_text ? write_file(policy_text) : NULL;
    lookaside_status st = auth_create(mode, path, NULL, &a, err, sizeof err);
    if (path)
        unlink(path);
    if (st != LOOKASIDE_OK)
        fprintf(stderr, "auth_create: %s\n", err);
    assert_int_equal(st, LOOKASIDE_OK);
    return a;
}

static void test_open_modes(void **state)
{
    (void)state;
    auth *prot = make(AUTH_MODE_PROTECTED, NULL);
    auth_peer local = peer("127.0.0.1", NULL, NULL), remote = peer("10.0.0.1", NULL, NULL);
    /* Protected mode: loopback anonymous may do everything... */
    assert_true(auth_peer_admitted(prot, &local));
    assert_int_equal(auth_check(prot, &local, AUTH_PERM_ADMIN, NULL), LOOKASIDE_OK);
    assert_int_equal(auth_check(prot, &local, AUTH_PERM_REPORT, "web"), LOOKASIDE_OK);
    assert_int_equal(auth_check(prot, &local, AUTH_PERM_REGISTER_ANY, NULL), LOOKASIDE_OK);
    /* ... and anyone else nothing, not even health. */
    assert_false(auth_peer_admitted(prot, &remote));
    assert_int_equal(auth_check(prot, &remote, AUTH_PERM_PUBLIC, NULL), LOOKASIDE_EUNAUTH);
    assert_int_equal(auth_check(prot, &remote, AUTH_PERM_WATCH, "web"), LOOKASIDE_EUNAUTH);
    auth_peer v6 = peer("::1", NULL, NULL);
    assert_true(auth_peer_admitted(prot, &v6));
    auth_destroy(prot);
    /* --insecure: everyone. */
    auth *ins = make(AUTH_MODE_INSECURE, NULL);
    assert_true(auth_peer_admitted(ins, &remote));
    assert_int_equal(auth_check(ins, &remote, AUTH_PERM_ADMIN, NULL), LOOKASIDE_OK);
    auth_destroy(ins);
}

static void test_tls_needs_policy(void **state)
{
    (void)state;
    char err[300] = "";
    auth *a = NULL;
    assert_int_equal(auth_create(AUTH_MODE_TLS, NULL, NULL, &a, err, sizeof err), LOOKASIDE_EINVAL);
    assert_non_null(strstr(err, "--policy-file"));
    assert_null(a);
}

static void test_policy_decisions(void **state)
{
    (void)state;
    char hex[65], policy[1024];
    auth_token_hash_hex("tok-watch", hex);
    snprintf(policy, sizeof policy,
             "# comment line\n"
             "\n"
             "id spiffe://x/rep report:web register-any\n"
             "id spiffe://x/cli watch:web watch:api   # trailing comment\n"
             "id spiffe://x/adm admin\n"
             "token t1 sha256:%s watch:*\n"
             "anonymous watch:public\n"
             "id spiffe://x/cli watch:third\n",   /* a second line adds */
             hex);
    auth *a = make(AUTH_MODE_TLS, policy);
    auth_peer rep = peer("10.0.0.5", "spiffe://x/rep", NULL);
    auth_peer cli = peer("10.0.0.6", "spiffe://x/cli", NULL);
    auth_peer adm = peer("10.0.0.7", "spiffe://x/adm", NULL);
    auth_peer stranger = peer("10.0.0.8", "spiffe://x/nobody", NULL);
    auth_peer anon = peer("10.0.0.9", NULL, NULL);
    auth_peer tok = peer("10.0.0.10", NULL, "tok-watch");
    auth_peer badtok = peer("10.0.0.11", NULL, "tok-watc");
    assert_true(auth_peer_admitted(a, &anon));   /* TLS: the handshake admits */

    assert_int_equal(auth_check(a, &rep, AUTH_PERM_REPORT, "web"), LOOKASIDE_OK);
    assert_int_equal(auth_check(a, &rep, AUTH_PERM_REPORT, "api"), LOOKASIDE_EPERM);
    assert_int_equal(auth_check(a, &rep, AUTH_PERM_REGISTER_ANY, NULL), LOOKASIDE_OK);
    assert_int_equal(auth_check(a, &rep, AUTH_PERM_WATCH, "web"), LOOKASIDE_EPERM);
    assert_int_equal(auth_check(a, &rep, AUTH_PERM_PUBLIC, NULL), LOOKASIDE_OK);

    assert_int_equal(auth_check(a, &cli, AUTH_PERM_WATCH, "api"), LOOKASIDE_OK);
    assert_int_equal(auth_check(a, &cli, AUTH_PERM_WATCH, "third"), LOOKASIDE_OK);
    assert_int_equal(auth_check(a, &cli, AUTH_PERM_WATCH, NULL), LOOKASIDE_OK);   /* some */
    assert_int_equal(auth_check(a, &cli, AUTH_PERM_WATCH, "*"), LOOKASIDE_EPERM); /* all */
    assert_int_equal(auth_check(a, &cli, AUTH_PERM_ADMIN, NULL), LOOKASIDE_EPERM);
    assert_int_equal(auth_check(a, &cli, AUTH_PERM_UNSET, NULL), LOOKASIDE_EPERM);
    assert_int_equal(auth_check(a, &cli, AUTH_PERM_REGISTER_ANY, NULL), LOOKASIDE_EPERM);

    assert_int_equal(auth_check(a, &adm, AUTH_PERM_ADMIN, NULL), LOOKASIDE_OK);
    assert_int_equal(auth_check(a, &adm, AUTH_PERM_WATCH, "*"), LOOKASIDE_OK);
    assert_int_equal(auth_check(a, &adm, AUTH_PERM_REPORT, "web"), LOOKASIDE_OK);

    /* A certificate the policy does not name is an identity without rights. */
    assert_int_equal(auth_check(a, &stranger, AUTH_PERM_WATCH, "web"), LOOKASIDE_EPERM);
    /* The anonymous grant applies to everyone; beyond it, no identity. */
    assert_int_equal(auth_check(a, &anon, AUTH_PERM_WATCH, "public"), LOOKASIDE_OK);
    assert_int_equal(auth_check(a, &stranger, AUTH_PERM_WATCH, "public"), LOOKASIDE_OK);
    assert_int_equal(auth_check(a, &anon, AUTH_PERM_WATCH, "web"), LOOKASIDE_EUNAUTH);
    assert_int_equal(auth_check(a, &anon, AUTH_PERM_ADMIN, NULL), LOOKASIDE_EUNAUTH);

    assert_int_equal(auth_check(a, &tok, AUTH_PERM_WATCH, "anything"), LOOKASIDE_OK);
    assert_int_equal(auth_check(a, &tok, AUTH_PERM_WATCH, "*"), LOOKASIDE_OK);
    assert_int_equal(auth_check(a, &tok, AUTH_PERM_ADMIN, NULL), LOOKASIDE_EPERM);
    assert_int_equal(auth_check(a, &badtok, AUTH_PERM_WATCH, "web"), LOOKASIDE_EUNAUTH);

    char id[AUTH_ID_MAX];
    auth_identity(a, &tok, id, sizeof id);
    assert_string_equal(id, "token:t1");
    auth_identity(a, &rep, id, sizeof id);
    assert_string_equal(id, "spiffe://x/rep");
    auth_identity(a, &badtok, id, sizeof id);
    assert_string_equal(id, "");
    auth_destroy(a);
}

static void test_bad_policies(void **state)
{
    (void)state;
    const char *bad[] = {
        "id spiffe://x/a\n",                       /* no permission */
        "id spiffe://x/a fly\n",                   /* unknown permission */
        "id spiffe://x/a watch:bad/name\n",        /* bad service */
        "token t 1234 watch:*\n",                  /* not a SHA-256 */
        "token t sha256:0000000000000000000000000000000000000000000000000000000000000000 admin\n",
        "user x admin\n",                          /* unknown principal */
        "anonymous\n",
        "id x watch:a watch:a watch:a watch:a watch:a watch:a watch:a watch:a watch:a watch:a "
        "watch:a watch:a watch:a watch:a watch:a watch:a watch:a watch:a watch:a watch:a watch:a "
        "watch:a watch:a watch:a watch:a watch:a watch:a watch:a watch:a watch:a watch:a watch:a "
        "watch:a watch:a watch:a watch:a watch:a watch:a watch:a watch:a watch:a watch:a watch:a "
        "watch:a watch:a watch:a watch:a watch:a watch:a watch:a watch:a watch:a watch:a watch:a "
        "watch:a watch:a watch:a watch:a watch:a watch:a watch:a watch:a watch:a watch:a\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[300] = "";
        auth *a = NULL;
        const char *path = write_file(bad[i]);
        assert_int_equal(auth_create(AUTH_MODE_TLS, path, NULL, &a, err, sizeof err),
                         LOOKASIDE_EINVAL);
        unlink(path);
        assert_non_null(strstr(err, ":1:"));   /* names the line */
        assert_null(a);
    }
    char err[300] = "";
    auth *a = NULL;
    assert_int_equal(auth_create(AUTH_MODE_TLS, "/nonexistent/policy", NULL, &a, err, sizeof err),
                     LOOKASIDE_EIO);
}

/* The older --report-token-file: report credentials per service, hashed. */
static void test_report_token_file(void **state)
{
    (void)state;
    char err[300] = "";
    auth *a = NULL;
    const char *path = write_file("# svc cred\nweb s3cret\n* any-service\napi with#hash\n");
    assert_int_equal(auth_create(AUTH_MODE_PROTECTED, NULL, path, &a, err, sizeof err),
                     LOOKASIDE_OK);
    unlink(path);
    auth_peer none = peer("127.0.0.1", NULL, NULL);
    auth_peer good = peer("127.0.0.1", NULL, "s3cret");
    auth_peer all = peer("127.0.0.1", NULL, "any-service");
    auth_peer longer = peer("127.0.0.1", NULL, "s3cret-and-more");
    /* Reports now need a credential; everything else stays open on loopback. */
    assert_int_equal(auth_check(a, &none, AUTH_PERM_REPORT, "web"), LOOKASIDE_EUNAUTH);
    assert_int_equal(auth_check(a, &none, AUTH_PERM_ADMIN, NULL), LOOKASIDE_OK);
    assert_int_equal(auth_check(a, &good, AUTH_PERM_REPORT, "web"), LOOKASIDE_OK);
    assert_int_equal(auth_check(a, &good, AUTH_PERM_REPORT, "api"), LOOKASIDE_EPERM);
    assert_int_equal(auth_check(a, &all, AUTH_PERM_REPORT, "api"), LOOKASIDE_OK);
    assert_int_equal(auth_check(a, &longer, AUTH_PERM_REPORT, "web"), LOOKASIDE_EUNAUTH);
    auth_peer hashed = peer("127.0.0.1", NULL, "with#hash");   /* '#' inside a credential */
    assert_int_equal(auth_check(a, &hashed, AUTH_PERM_REPORT, "api"), LOOKASIDE_OK);
    auth_destroy(a);
}

/* Reload swaps the policy; a broken file keeps the old one. */
static void test_reload(void **state)
{
    (void)state;
    char path[] = "/tmp/lookaside-auth-reload-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    FILE *f = fopen(path, "w");
    fputs("id a watch:web\n", f);
    fclose(f);
    char err[300] = "";
    auth *a = NULL;
    assert_int_equal(auth_create(AUTH_MODE_TLS, path, NULL, &a, err, sizeof err), LOOKASIDE_OK);
    auth_peer p = peer("10.0.0.1", "a", NULL);
    assert_int_equal(auth_check(a, &p, AUTH_PERM_ADMIN, NULL), LOOKASIDE_EPERM);
    f = fopen(path, "w");
    fputs("id a admin\n", f);
    fclose(f);
    assert_int_equal(auth_reload(a, err, sizeof err), LOOKASIDE_OK);
    assert_int_equal(auth_check(a, &p, AUTH_PERM_ADMIN, NULL), LOOKASIDE_OK);
    f = fopen(path, "w");
    fputs("id a wat\n", f);
    fclose(f);
    assert_int_equal(auth_reload(a, err, sizeof err), LOOKASIDE_EINVAL);
    assert_int_equal(auth_check(a, &p, AUTH_PERM_ADMIN, NULL), LOOKASIDE_OK);
    unlink(path);
    auth_destroy(a);
}

static void test_address_rule(void **state)
{
    (void)state;
    auth_peer v4 = peer("10.1.2.3", NULL, NULL), v6 = peer("fd00::5", NULL, NULL);
    assert_true(auth_address_is_peer(&v4, "10.1.2.3:5000"));
    assert_false(auth_address_is_peer(&v4, "10.1.2.4:5000"));
    assert_false(auth_address_is_peer(&v4, "garbage"));
    assert_true(auth_address_is_peer(&v6, "[fd00::5]:80"));
    assert_false(auth_address_is_peer(&v6, "[fd00::6]:80"));
    /* An IPv4 client seen as v4-mapped IPv6 still matches its IPv4 address. */
    auth_peer mapped = peer("::ffff:10.1.2.3", NULL, NULL);
    assert_true(auth_address_is_peer(&mapped, "10.1.2.3:5000"));
}

static void test_methods_and_hash(void **state)
{
    (void)state;
    assert_int_equal(auth_method_perm("/lookaside.v1.Admin/SetDrain"), AUTH_PERM_ADMIN);
    assert_int_equal(auth_method_perm("/lookaside.v1.Balancer/Watch"), AUTH_PERM_WATCH);
    assert_int_equal(auth_method_perm("/grpc.health.v1.Health/Check"), AUTH_PERM_PUBLIC);
    assert_int_equal(auth_method_perm("/lookaside.v1.Admin/SomethingNew"), AUTH_PERM_ADMIN);
    Lookaside__V1__WatchRequest w = LOOKASIDE__V1__WATCH_REQUEST__INIT;
    w.service = "web";
    assert_string_equal(auth_request_service(&w), "web");
    Lookaside__V1__ListServicesRequest l = LOOKASIDE__V1__LIST_SERVICES_REQUEST__INIT;
    assert_null(auth_request_service(&l));
    char hex[65];
    auth_token_hash_hex("abc", hex);   /* FIPS 180-2 test vector */
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_modes),
        cmocka_unit_test(test_tls_needs_policy),
        cmocka_unit_test(test_policy_decisions),
        cmocka_unit_test(test_bad_policies),
        cmocka_unit_test(test_report_token_file),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_address_rule),
        cmocka_unit_test(test_methods_and_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
