/* Every public storage function, each test run twice: on ":memory:" and on
 * a file in a fresh temporary directory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage.h"
#include "storage_test_util.h"

typedef struct fixture {
    int file;
    st_tmp tmp;
    storage *s;
} fixture;

static int mode_memory = 0;
static int mode_file = 1;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->file = *(int *)*state;
    const char *path = ":memory:";
    if (f->file) {
        st_tmp_make(&f->tmp);
        path = f->tmp.db;
    }
    assert_int_equal(storage_open(path, &f->s), LOOKASIDE_OK);
    assert_non_null(f->s);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    storage_close(f->s);
    if (f->file)
        st_tmp_remove(&f->tmp);
    free(f);
    return 0;
}

/* Closes and reopens a file fixture (a no-op for memory), so assertions
 * that follow read what reached the file. */
static void reopen(fixture *f)
{
    if (!f->file)
        return;
    storage_close(f->s);
    f->s = NULL;
    assert_int_equal(storage_open(f->tmp.db, &f->s), LOOKASIDE_OK);
}

static void test_open_close(void **state)
{
    fixture *f = *state;
    storage *s = NULL;
    assert_string_equal(storage_open_error(), "");
    assert_string_equal(storage_errmsg(f->s), "");
    assert_int_equal(storage_pending(f->s), 0);
    assert_int_equal(storage_flush(f->s), LOOKASIDE_OK);
    assert_int_equal(storage_integrity_check(f->s), LOOKASIDE_OK);
    assert_true(strlen(storage_sqlite_version()) > 0);
    storage_close(NULL);

    assert_int_equal(storage_open(NULL, &s), LOOKASIDE_EINVAL);
    assert_null(s);
    assert_true(strlen(storage_open_error()) > 0);
    assert_int_equal(storage_open(":memory:", NULL), LOOKASIDE_EINVAL);
    assert_int_equal(storage_open("", &s), LOOKASIDE_EINVAL);
    assert_null(s);
    assert_non_null(strstr(storage_open_error(), "empty"));
    char *longpath = malloc(STORAGE_PATH_MAX + 2);
    assert_non_null(longpath);
    memset(longpath, 'p', STORAGE_PATH_MAX + 1);
    longpath[STORAGE_PATH_MAX + 1] = '\0';
    assert_int_equal(storage_open(longpath, &s), LOOKASIDE_EINVAL);
    assert_null(s);
    free(longpath);

    /* Calls on a NULL handle fail cleanly. */
    storage_service *sv = NULL;
    size_t n = 9;
    storage_backend b = st_backend("web", "10.0.0.1:80", 1);
    storage_load l = st_load(1);
    assert_int_equal(storage_put_service(NULL, "web", 1), LOOKASIDE_EINVAL);
    assert_int_equal(storage_put_backend(NULL, &b), LOOKASIDE_EINVAL);
    assert_int_equal(storage_put_load(NULL, "web", "10.0.0.1:80", &l), LOOKASIDE_EINVAL);
    assert_int_equal(storage_delete_backend(NULL, "web", "10.0.0.1:80"), LOOKASIDE_EINVAL);
    assert_int_equal(storage_delete_service(NULL, "web"), LOOKASIDE_EINVAL);
    assert_int_equal(storage_flush(NULL), LOOKASIDE_EINVAL);
    assert_int_equal(storage_load_services(NULL, &sv, &n), LOOKASIDE_EINVAL);
    assert_int_equal(storage_integrity_check(NULL), LOOKASIDE_EINVAL);
    assert_int_equal(storage_pending(NULL), 0);
    storage_set_batch_max(NULL, 3);
    assert_non_null(storage_errmsg(NULL));
    assert_int_equal(storage_load_services(f->s, NULL, &n), LOOKASIDE_EINVAL);
    assert_int_equal(storage_load_backends(f->s, NULL, &n), LOOKASIDE_EINVAL);
    assert_int_equal(storage_load_backends(f->s, (storage_backend **)&sv, NULL), LOOKASIDE_EINVAL);

    /* An empty database loads as empty arrays. */
    storage_backend *bs = (storage_backend *)&b;
    assert_int_equal(storage_load_services(f->s, &sv, &n), LOOKASIDE_OK);
    assert_null(sv);
    assert_int_equal(n, 0);
    assert_int_equal(storage_load_backends(f->s, &bs, &n), LOOKASIDE_OK);
    assert_null(bs);
    assert_int_equal(n, 0);
}

static void check_services(storage *s, const char *const *names, const uint64_t *versions,
                           size_t want)
{
    storage_service *sv = NULL;
    size_t n = 0;
    assert_int_equal(storage_load_services(s, &sv, &n), LOOKASIDE_OK);
    assert_int_equal(n, want);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(sv[i].name, names[i]);
        assert_true(sv[i].version == versions[i]);
    }
    free(sv);
}

static void test_services(void **state)
{
    fixture *f = *state;
    assert_int_equal(storage_put_service(f->s, "web", 3), LOOKASIDE_OK);
    assert_int_equal(storage_put_service(f->s, "api", 1), LOOKASIDE_OK);
    assert_int_equal(storage_put_service(f->s, "db", 2), LOOKASIDE_OK);
    assert_int_equal(storage_pending(f->s), 3);
    {
        const char *names[] = {"api", "db", "web"};
        const uint64_t versions[] = {1, 2, 3};
        check_services(f->s, names, versions, 3);
    }
    assert_int_equal(storage_put_service(f->s, "db", UINT64_MAX), LOOKASIDE_OK);
    assert_int_equal(storage_put_service(f->s, "web", (uint64_t)INT64_MAX + 1), LOOKASIDE_OK);
    assert_int_equal(storage_put_service(f->s, "zz", 0), LOOKASIDE_OK);
    assert_int_equal(storage_delete_service(f->s, "api"), LOOKASIDE_OK);
    assert_int_equal(storage_delete_service(f->s, "api"), LOOKASIDE_ENOTFOUND);
    assert_non_null(strstr(storage_errmsg(f->s), "no service"));
    assert_int_equal(storage_flush(f->s), LOOKASIDE_OK);
    assert_int_equal(storage_pending(f->s), 0);
    reopen(f);
    {
        const char *names[] = {"db", "web", "zz"};
        const uint64_t versions[] = {UINT64_MAX, (uint64_t)INT64_MAX + 1, 0};
        check_services(f->s, names, versions, 3);
    }
}

static void test_backends(void **state)
{
    fixture *f = *state;
    storage_backend in[3] = {
        st_backend("api", "10.0.0.9:80", 1),
        st_backend("web", "10.0.0.1:80", 2),
        st_backend("web", "10.0.0.2:80", 3),
    };
    assert_int_equal(storage_put_service(f->s, "web", 7), LOOKASIDE_OK);
    /* Put out of order: the load is ordered by service, then address. */
    assert_int_equal(storage_put_backend(f->s, &in[2]), LOOKASIDE_OK);
    assert_int_equal(storage_put_backend(f->s, &in[0]), LOOKASIDE_OK);
    assert_int_equal(storage_put_backend(f->s, &in[1]), LOOKASIDE_OK);
    assert_int_equal(storage_pending(f->s), 4);

    storage_backend *out = NULL;
    size_t n = 0;
    assert_int_equal(storage_load_backends(f->s, &out, &n), LOOKASIDE_OK);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_false(out[i].has_load);
        st_assert_backend_equal(&out[i], &in[i], 1);
    }
    free(out);
    /* put_backend created "api" with version 0 and left "web" at 7. */
    {
        const char *names[] = {"api", "web"};
        const uint64_t versions[] = {0, 7};
        check_services(f->s, names, versions, 2);
    }

    /* Upsert replaces every field. */
    storage_backend changed = st_backend("web", "10.0.0.1:80", 10);
    changed.zone[0] = '\0';
    changed.cred_hash[0] = '\0';
    changed.state = -5;
    assert_int_equal(storage_put_backend(f->s, &changed), LOOKASIDE_OK);
    assert_int_equal(storage_flush(f->s), LOOKASIDE_OK);
    reopen(f);
    assert_int_equal(storage_load_backends(f->s, &out, &n), LOOKASIDE_OK);
    assert_int_equal(n, 3);
    st_assert_backend_equal(&out[1], &changed, 1);
    st_assert_backend_equal(&out[2], &in[2], 1);
    free(out);

    assert_int_equal(storage_delete_backend(f->s, "web", "10.0.0.2:80"), LOOKASIDE_OK);
    assert_int_equal(storage_delete_backend(f->s, "web", "10.0.0.2:80"), LOOKASIDE_ENOTFOUND);
    assert_non_null(strstr(storage_errmsg(f->s), "no backend"));
    assert_int_equal(storage_delete_backend(f->s, "nope", "10.0.0.2:80"), LOOKASIDE_ENOTFOUND);
    assert_int_equal(storage_delete_service(f->s, "web"), LOOKASIDE_OK);
    assert_int_equal(storage_delete_service(f->s, "web"), LOOKASIDE_ENOTFOUND);
    reopen(f);
    assert_int_equal(storage_load_backends(f->s, &out, &n), LOOKASIDE_OK);
    assert_int_equal(n, 1);
    st_assert_backend_equal(&out[0], &in[0], 1);
    free(out);
    {
        const char *names[] = {"api"};
        const uint64_t versions[] = {0};
        check_services(f->s, names, versions, 1);
    }
}

static void test_loads(void **state)
{
    fixture *f = *state;
    storage_backend b1 = st_backend("web", "10.0.0.1:80", 1);
    storage_backend b2 = st_backend("web", "10.0.0.2:80", 2);
    storage_load l1 = st_load(11), l2 = st_load(12), zero;
    memset(&zero, 0, sizeof zero);

    /* put_load works on a backend put earlier in the same batch. */
    assert_int_equal(storage_put_backend(f->s, &b1), LOOKASIDE_OK);
    assert_int_equal(storage_put_backend(f->s, &b2), LOOKASIDE_OK);
    assert_int_equal(storage_put_load(f->s, "web", "10.0.0.1:80", &l1), LOOKASIDE_OK);
    assert_int_equal(storage_pending(f->s), 3);
    /* An unknown backend is ENOTFOUND and writes nothing. */
    assert_int_equal(storage_put_load(f->s, "web", "10.0.0.3:80", &l1), LOOKASIDE_ENOTFOUND);
    assert_non_null(strstr(storage_errmsg(f->s), "10.0.0.3:80"));
    assert_int_equal(storage_put_load(f->s, "api", "10.0.0.1:80", &l1), LOOKASIDE_ENOTFOUND);
    assert_int_equal(storage_pending(f->s), 3);

    storage_backend *out = NULL;
    size_t n = 0;
    assert_int_equal(storage_load_backends(f->s, &out, &n), LOOKASIDE_OK);
    assert_int_equal(n, 2);
    assert_true(out[0].has_load);
    b1.has_load = true;
    b1.load = l1;
    st_assert_backend_equal(&out[0], &b1, 1);
    assert_false(out[1].has_load);
    free(out);

    /* A later report replaces the earlier one; put_backend keeps the load;
     * an all-zero report is a report. */
    assert_int_equal(storage_put_load(f->s, "web", "10.0.0.1:80", &l2), LOOKASIDE_OK);
    storage_backend b1b = st_backend("web", "10.0.0.1:80", 5);
    assert_int_equal(storage_put_backend(f->s, &b1b), LOOKASIDE_OK);
    assert_int_equal(storage_put_load(f->s, "web", "10.0.0.2:80", &zero), LOOKASIDE_OK);
    assert_int_equal(storage_flush(f->s), LOOKASIDE_OK);
    reopen(f);
    assert_int_equal(storage_load_backends(f->s, &out, &n), LOOKASIDE_OK);
    assert_int_equal(n, 2);
    b1b.has_load = true;
    b1b.load = l2;
    st_assert_backend_equal(&out[0], &b1b, 1);
    b2.has_load = true;
    b2.load = zero;
    st_assert_backend_equal(&out[1], &b2, 1);
    free(out);

    /* Deleting a backend drops its load: put again, it has none. */
    assert_int_equal(storage_delete_backend(f->s, "web", "10.0.0.1:80"), LOOKASIDE_OK);
    assert_int_equal(storage_put_backend(f->s, &b1), LOOKASIDE_OK);
    assert_int_equal(storage_load_backends(f->s, &out, &n), LOOKASIDE_OK);
    assert_int_equal(n, 2);
    assert_false(out[0].has_load);
    free(out);
}

static void test_batch(void **state)
{
    fixture *f = *state;
    storage_backend b = st_backend("web", "10.0.0.1:80", 1);
    storage_load l = st_load(1);
    assert_int_equal(storage_put_backend(f->s, &b), LOOKASIDE_OK);
    assert_int_equal(storage_flush(f->s), LOOKASIDE_OK);
    assert_int_equal(storage_flush(f->s), LOOKASIDE_OK); /* nothing pending */

    storage_set_batch_max(f->s, 5);
    for (int i = 1; i <= 4; i++) {
        l.at_ms = i;
        assert_int_equal(storage_put_load(f->s, "web", "10.0.0.1:80", &l), LOOKASIDE_OK);
        assert_int_equal(storage_pending(f->s), (size_t)i);
    }
    /* Failures do not count. */
    assert_int_equal(storage_put_load(f->s, "web", "nope", &l), LOOKASIDE_ENOTFOUND);
    assert_int_equal(storage_put_service(f->s, "", 1), LOOKASIDE_EINVAL);
    assert_int_equal(storage_pending(f->s), 4);
    /* The fifth write commits the batch itself. */
    assert_int_equal(storage_put_load(f->s, "web", "10.0.0.1:80", &l), LOOKASIDE_OK);
    assert_int_equal(storage_pending(f->s), 0);

    /* 0 means every write commits; lowering below pending commits on the
     * next write. */
    storage_set_batch_max(f->s, 0);
    assert_int_equal(storage_put_service(f->s, "a", 1), LOOKASIDE_OK);
    assert_int_equal(storage_pending(f->s), 0);
    storage_set_batch_max(f->s, 100);
    for (int i = 0; i < 10; i++)
        assert_int_equal(storage_put_service(f->s, "a", (uint64_t)i), LOOKASIDE_OK);
    assert_int_equal(storage_pending(f->s), 10);
    storage_set_batch_max(f->s, 3);
    assert_int_equal(storage_pending(f->s), 10);
    assert_int_equal(storage_put_service(f->s, "a", 99), LOOKASIDE_OK);
    assert_int_equal(storage_pending(f->s), 0);

    /* The default batch is STORAGE_BATCH_DEFAULT writes. */
    storage_set_batch_max(f->s, STORAGE_BATCH_DEFAULT);
    for (int i = 0; i < STORAGE_BATCH_DEFAULT - 1; i++) {
        l.at_ms = i;
        assert_int_equal(storage_put_load(f->s, "web", "10.0.0.1:80", &l), LOOKASIDE_OK);
    }
    assert_int_equal(storage_pending(f->s), STORAGE_BATCH_DEFAULT - 1);
    assert_int_equal(storage_put_load(f->s, "web", "10.0.0.1:80", &l), LOOKASIDE_OK);
    assert_int_equal(storage_pending(f->s), 0);
    reopen(f);
    storage_backend *out = NULL;
    size_t n = 0;
    assert_int_equal(storage_load_backends(f->s, &out, &n), LOOKASIDE_OK);
    assert_int_equal(n, 1);
    assert_true(out[0].has_load);
    assert_true(out[0].load.at_ms == STORAGE_BATCH_DEFAULT - 2);
    free(out);
}

/* Every rejected call leaves errmsg set and nothing written. */
static void expect_einval(fixture *f, lookaside_status st, const char *needle)
{
    assert_int_equal(st, LOOKASIDE_EINVAL);
    const char *m = storage_errmsg(f->s);
    if (strstr(m, needle) == NULL)
        fail_msg("errmsg \"%s\" lacks \"%s\"", m, needle);
}

static void test_invalid(void **state)
{
    fixture *f = *state;
    storage *s = f->s;
    storage_backend ok = st_backend("web", "10.0.0.1:80", 1);
    storage_load l = st_load(1);
    assert_int_equal(storage_put_backend(s, &ok), LOOKASIDE_OK);
    assert_int_equal(storage_flush(s), LOOKASIDE_OK);

    /* A 1 MiB name. */
    size_t big = (size_t)1 << 20;
    char *huge = malloc(big + 1);
    assert_non_null(huge);
    memset(huge, 'n', big);
    huge[big] = '\0';
    expect_einval(f, storage_put_service(s, huge, 1), "longer than 253");
    expect_einval(f, storage_put_load(s, huge, "10.0.0.1:80", &l), "service name");
    expect_einval(f, storage_put_load(s, "web", huge, &l), "longer than 63");
    expect_einval(f, storage_delete_service(s, huge), "longer than");
    expect_einval(f, storage_delete_backend(s, "web", huge), "longer than");
    free(huge);

    /* Exact maxima are fine; one more byte is not. */
    char name[STORAGE_SERVICE_MAX + 2];
    memset(name, 's', sizeof name);
    name[STORAGE_SERVICE_MAX] = '\0';
    assert_int_equal(storage_put_service(s, name, 1), LOOKASIDE_OK);
    name[STORAGE_SERVICE_MAX] = 's';
    name[STORAGE_SERVICE_MAX + 1] = '\0';
    expect_einval(f, storage_put_service(s, name, 1), "longer than");
    storage_backend b = ok;
    memset(b.address, 'a', STORAGE_ADDRESS_MAX);
    memset(b.zone, 'z', STORAGE_ZONE_MAX);
    memset(b.cred_hash, 'F', STORAGE_HASH_MAX);
    assert_int_equal(storage_put_backend(s, &b), LOOKASIDE_OK);

    /* Empty and NULL. */
    expect_einval(f, storage_put_service(s, "", 1), "empty");
    expect_einval(f, storage_put_service(s, NULL, 1), "NULL");
    expect_einval(f, storage_put_load(s, "", "10.0.0.1:80", &l), "empty");
    expect_einval(f, storage_put_load(s, "web", "", &l), "empty");
    expect_einval(f, storage_put_load(s, "web", "10.0.0.1:80", NULL), "NULL");
    expect_einval(f, storage_delete_backend(s, "", "10.0.0.1:80"), "empty");
    expect_einval(f, storage_delete_backend(s, "web", NULL), "NULL");
    expect_einval(f, storage_delete_service(s, ""), "empty");
    expect_einval(f, storage_put_backend(s, NULL), "NULL");
    b = ok;
    b.service[0] = '\0';
    expect_einval(f, storage_put_backend(s, &b), "empty");
    b = ok;
    b.address[0] = '\0';
    expect_einval(f, storage_put_backend(s, &b), "empty");

    /* Arrays without their NUL. */
    b = ok;
    memset(b.service, 'x', sizeof b.service);
    expect_einval(f, storage_put_backend(s, &b), "NUL-terminated");
    b = ok;
    memset(b.address, 'x', sizeof b.address);
    expect_einval(f, storage_put_backend(s, &b), "NUL-terminated");
    b = ok;
    memset(b.zone, 'x', sizeof b.zone);
    expect_einval(f, storage_put_backend(s, &b), "NUL-terminated");
    b = ok;
    memset(b.cred_hash, 'a', sizeof b.cred_hash);
    expect_einval(f, storage_put_backend(s, &b), "NUL-terminated");
    b = ok;
    snprintf(b.cred_hash, sizeof b.cred_hash, "abc'; --");
    expect_einval(f, storage_put_backend(s, &b), "non-hex");

    /* Bad numbers in the backend. */
    const double bad[] = {NAN, -NAN, INFINITY, -INFINITY, -1.0, -DBL_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        b = ok;
        b.policy_weight = bad[i];
        expect_einval(f, storage_put_backend(s, &b), "policy_weight");
    }
    b = ok;
    b.first_seen_ms = -1;
    expect_einval(f, storage_put_backend(s, &b), "first_seen_ms");
    b = ok;
    b.last_report_ms = INT64_MIN;
    expect_einval(f, storage_put_backend(s, &b), "last_report_ms");
    b = ok;
    b.ramp_start_ms = -5;
    expect_einval(f, storage_put_backend(s, &b), "ramp_start_ms");

    /* Bad numbers in a load report, field by field. */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        for (int field = 0; field < 5; field++) {
            storage_load x = l;
            double *p[] = {&x.cpu, &x.mem, &x.app, &x.rps, &x.eps};
            const char *names[] = {"cpu", "mem", "app", "rps", "eps"};
            *p[field] = bad[i];
            expect_einval(f, storage_put_load(s, "web", "10.0.0.1:80", &x), names[field]);
        }
    }
    storage_load x = l;
    x.at_ms = -1;
    expect_einval(f, storage_put_load(s, "web", "10.0.0.1:80", &x), "at_ms");
    /* Huge but finite values are fine. */
    x = l;
    x.rps = DBL_MAX;
    x.in_flight = UINT32_MAX;
    x.at_ms = INT64_MAX;
    assert_int_equal(storage_put_load(s, "web", "10.0.0.1:80", &x), LOOKASIDE_OK);

    /* Rejections wrote nothing: 3 good writes are pending. */
    assert_int_equal(storage_pending(s), 3);
    reopen(f);
    storage_backend *out = NULL;
    size_t n = 0;
    assert_int_equal(storage_load_backends(s = f->s, &out, &n), LOOKASIDE_OK);
    assert_int_equal(n, 2);
    /* "10.0.0.1:80" sorts before "aaa...": byte order. */
    assert_string_equal(out[0].address, "10.0.0.1:80");
    assert_true(out[0].has_load);
    assert_true(out[0].load.rps == DBL_MAX);
    assert_int_equal(out[0].load.in_flight, UINT32_MAX);
    assert_true(out[0].load.at_ms == INT64_MAX);
    assert_false(out[1].has_load);
    free(out);
}

static void assert_printable(const char *m)
{
    for (const unsigned char *p = (const unsigned char *)m; *p; p++)
        if (*p < 0x20 || *p > 0x7e)
            fail_msg("errmsg has byte 0x%02x: %s", *p, m);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void test_hostile_strings(void **state)
{
    fixture *f = *state;
    char low[128], high[129], zone[STORAGE_ZONE_MAX + 1];
    for (int i = 1; i < 128; i++)
        low[i - 1] = (char)i;
    low[127] = '\0';
    for (int i = 128; i < 256; i++)
        high[i - 128] = (char)i;
    high[128] = '\0';
    for (int i = 0; i < STORAGE_ZONE_MAX; i++)
        zone[i] = (char)(1 + i);
    zone[STORAGE_ZONE_MAX] = '\0';
    const char *names[] = {
        "it's",          "say \"hi\"",  "'; DROP TABLE backend; --",
        "Robert'); DROP TABLE service;--", "%s%n%x%p", "\\x00\\'", "a\nb\tc\r",
        low,             high,          "\xc3\x28 invalid utf-8 \xff\xfe",
    };
    const size_t count = sizeof names / sizeof names[0];
    const char *address = "'\"; DELETE FROM backend; --";

    for (size_t i = 0; i < count; i++) {
        assert_int_equal(storage_put_service(f->s, names[i], i), LOOKASIDE_OK);
        storage_backend b = st_backend(names[i], address, (int)i);
        memcpy(b.zone, zone, sizeof zone);
        assert_int_equal(storage_put_backend(f->s, &b), LOOKASIDE_OK);
        storage_load l = st_load((int)i);
        assert_int_equal(storage_put_load(f->s, names[i], address, &l), LOOKASIDE_OK);
    }
    /* Messages quoting hostile names stay printable. */
    assert_int_equal(storage_put_load(f->s, high, "nope", &(storage_load){0}),
                     LOOKASIDE_ENOTFOUND);
    assert_printable(storage_errmsg(f->s));
    assert_int_equal(storage_delete_service(f->s, low + 1), LOOKASIDE_ENOTFOUND);
    assert_printable(storage_errmsg(f->s));
    assert_int_equal(storage_flush(f->s), LOOKASIDE_OK);
    reopen(f);
    assert_int_equal(storage_integrity_check(f->s), LOOKASIDE_OK);

    /* Everything back byte for byte, in byte order (strcmp order). */
    const char *sorted[sizeof names / sizeof names[0]];
    memcpy(sorted, names, sizeof names);
    qsort(sorted, count, sizeof sorted[0], cmp_str);
    storage_service *sv = NULL;
    storage_backend *bs = NULL;
    size_t n = 0, nb = 0;
    assert_int_equal(storage_load_services(f->s, &sv, &n), LOOKASIDE_OK);
    assert_int_equal(storage_load_backends(f->s, &bs, &nb), LOOKASIDE_OK);
    assert_int_equal(n, count);
    assert_int_equal(nb, count);
    for (size_t i = 0; i < count; i++) {
        size_t orig = 0;
        while (orig < count && names[orig] != sorted[i])
            orig++;
        assert_true(orig < count);
        assert_string_equal(sv[i].name, sorted[i]);
        assert_true(sv[i].version == orig);
        storage_backend want = st_backend(sorted[i], address, (int)orig);
        memcpy(want.zone, zone, sizeof zone);
        want.has_load = true;
        want.load = st_load((int)orig);
        st_assert_backend_equal(&bs[i], &want, 1);
    }
    free(sv);
    free(bs);
    for (size_t i = 0; i < count; i++)
        assert_int_equal(storage_delete_service(f->s, names[i]), LOOKASIDE_OK);
    assert_int_equal(storage_load_services(f->s, &sv, &n), LOOKASIDE_OK);
    assert_int_equal(n, 0);
}

#define BOTH(fn)                                                                       \
    cmocka_unit_test_prestate_setup_teardown(fn, setup, teardown, &mode_memory),       \
        cmocka_unit_test_prestate_setup_teardown(fn, setup, teardown, &mode_file)

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_open_close), BOTH(test_services), BOTH(test_backends),
        BOTH(test_loads),      BOTH(test_batch),    BOTH(test_invalid),
        BOTH(test_hostile_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
