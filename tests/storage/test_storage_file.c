/* Storage on real files: reopening, visibility to other handles, schema
 * identity, and files that must be refused (newer, foreign, corrupt,
 * unreachable) with a message that names them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage.h"
#include "storage_test_util.h"

/* SQLite file header offsets (https://sqlite.org/fileformat.html). */
#define HDR_USER_VERSION 60
#define HDR_APPLICATION_ID 68

static int setup(void **state)
{
    st_tmp *t = calloc(1, sizeof *t);
    assert_non_null(t);
    st_tmp_make(t);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    st_tmp_remove(*state);
    free(*state);
    return 0;
}

static void expect_open_fails(const char *path, lookaside_status want, const char *needle)
{
    storage *s = (storage *)1;
    lookaside_status st = storage_open(path, &s);
    const char *m = storage_open_error();
    if (st != want)
        fail_msg("storage_open(%s) = %d, want %d: %s", path, st, want, m);
    assert_null(s);
    print_message("refused as expected: %s\n", m);
    if (strstr(m, path) == NULL)
        fail_msg("open error does not name %s: %s", path, m);
    if (needle != NULL && strstr(m, needle) == NULL)
        fail_msg("open error lacks \"%s\": %s", needle, m);
}

/* A database with n backends with loads in service "web", closed. */
static void make_db(const char *path, int n)
{
    storage *s = NULL;
    assert_int_equal(storage_open(path, &s), LOOKASIDE_OK);
    assert_int_equal(storage_put_service(s, "web", 42), LOOKASIDE_OK);
    for (int i = 0; i < n; i++) {
        char addr[32];
        snprintf(addr, sizeof addr, "10.0.%d.%d:8080", i / 250, i % 250);
        storage_backend b = st_backend("web", addr, i);
        storage_load l = st_load(i);
        assert_int_equal(storage_put_backend(s, &b), LOOKASIDE_OK);
        assert_int_equal(storage_put_load(s, "web", addr, &l), LOOKASIDE_OK);
    }
    storage_close(s);
}

static void test_reopen_keeps_everything(void **state)
{
    st_tmp *t = *state;
    /* Close without flush: close commits the pending batch. */
    make_db(t->db, 300);
    storage *s = NULL;
    assert_int_equal(storage_open(t->db, &s), LOOKASIDE_OK);
    storage_backend *bs = NULL;
    storage_service *sv = NULL;
    size_t n = 0, ns = 0;
    assert_int_equal(storage_load_backends(s, &bs, &n), LOOKASIDE_OK);
    assert_int_equal(storage_load_services(s, &sv, &ns), LOOKASIDE_OK);
    assert_int_equal(ns, 1);
    assert_string_equal(sv[0].name, "web");
    assert_true(sv[0].version == 42);
    assert_int_equal(n, 300);
    for (size_t i = 0; i < n; i++) {
        int seed = -1;
        unsigned a = 0, b = 0;
        assert_int_equal(sscanf(bs[i].address, "10.0.%u.%u:8080", &a, &b), 2);
        seed = (int)(a * 250 + b);
        storage_backend want = st_backend("web", bs[i].address, seed);
        want.has_load = true;
        want.load = st_load(seed);
        st_assert_backend_equal(&bs[i], &want, 1);
        if (i > 0)
            assert_true(strcmp(bs[i - 1].address, bs[i].address) < 0);
    }
    free(bs);
    free(sv);
    assert_int_equal(storage_integrity_check(s), LOOKASIDE_OK);
    storage_close(s);

    /* The header carries our identity and schema version; a clean close
     * leaves no WAL behind. */
    assert_int_equal(st_file_be32(t->db, HDR_USER_VERSION), STORAGE_SCHEMA_VERSION);
    assert_int_equal(st_file_be32(t->db, HDR_APPLICATION_ID), STORAGE_APPLICATION_ID);
    char wal[200];
    snprintf(wal, sizeof wal, "%s-wal", t->db);
    assert_int_not_equal(access(wal, F_OK), 0);
}

static void test_other_handle_sees_commits_only(void **state)
{
    st_tmp *t = *state;
    storage *w = NULL, *r = NULL;
    storage_service *sv = NULL;
    size_t n = 0;
    assert_int_equal(storage_open(t->db, &w), LOOKASIDE_OK);
    assert_int_equal(storage_put_service(w, "web", 1), LOOKASIDE_OK);
    /* A second handle opens while the first holds an open batch (no write
     * lock needed when the schema is current) and sees none of it. */
    assert_int_equal(storage_put_service(w, "api", 1), LOOKASIDE_OK);
    assert_int_equal(storage_flush(w), LOOKASIDE_OK);
    assert_int_equal(storage_put_service(w, "db", 1), LOOKASIDE_OK);
    assert_int_equal(storage_open(t->db, &r), LOOKASIDE_OK);
    assert_int_equal(storage_load_services(r, &sv, &n), LOOKASIDE_OK);
    assert_int_equal(n, 2);
    free(sv);
    /* The reader's write waits for the busy timeout, then fails clearly. */
    assert_int_equal(storage_put_service(r, "x", 1), LOOKASIDE_EIO);
    assert_non_null(strstr(storage_errmsg(r), t->db));
    assert_int_equal(storage_pending(r), 0);
    /* An auto-committed batch is visible. */
    storage_set_batch_max(w, 2);
    assert_int_equal(storage_put_service(w, "ev", 1), LOOKASIDE_OK);
    assert_int_equal(storage_pending(w), 0);
    assert_int_equal(storage_load_services(r, &sv, &n), LOOKASIDE_OK);
    assert_int_equal(n, 4);
    free(sv);
    storage_close(r);
    storage_close(w);
}

static void test_newer_schema_refused(void **state)
{
    st_tmp *t = *state;
    make_db(t->db, 3);
    const unsigned char v999[4] = {0, 0, 0x03, 0xe7};
    st_file_patch(t->db, HDR_USER_VERSION, v999, 4);
    expect_open_fails(t->db, LOOKASIDE_ETOONEW, "999");
    assert_non_null(strstr(storage_open_error(), "newer"));
    /* Refusing did not touch the file. */
    assert_int_equal(st_file_be32(t->db, HDR_USER_VERSION), 999);
}

static void test_foreign_sqlite_refused(void **state)
{
    st_tmp *t = *state;
    make_db(t->db, 3);
    const unsigned char other[4] = {0x12, 0x34, 0x56, 0x78};
    st_file_patch(t->db, HDR_APPLICATION_ID, other, 4);
    expect_open_fails(t->db, LOOKASIDE_ECORRUPT, "not a lookaside database");
    assert_non_null(strstr(storage_open_error(), "0x12345678"));
    /* No application_id but tables: someone else's database. */
    const unsigned char zero[4] = {0, 0, 0, 0};
    st_file_patch(t->db, HDR_APPLICATION_ID, zero, 4);
    st_file_patch(t->db, HDR_USER_VERSION, zero, 4);
    expect_open_fails(t->db, LOOKASIDE_ECORRUPT, "not a lookaside database");
}

static void test_garbage_file_refused(void **state)
{
    st_tmp *t = *state;
    unsigned char junk[8192];
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < sizeof junk; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        junk[i] = (unsigned char)x;
    }
    st_file_write(t->db, junk, sizeof junk);
    expect_open_fails(t->db, LOOKASIDE_ECORRUPT, "not a lookaside database");
    const char text[] = "this is a config file, not a database\n";
    st_file_write(t->db, text, sizeof text - 1);
    expect_open_fails(t->db, LOOKASIDE_ECORRUPT, NULL);
    /* An SQLite header followed by garbage. */
    memcpy(junk, "SQLite format 3", 16);
    st_file_write(t->db, junk, sizeof junk);
    expect_open_fails(t->db, LOOKASIDE_ECORRUPT, NULL);
    /* An empty file is a new database. */
    st_file_write(t->db, "", 0);
    storage *s = NULL;
    assert_int_equal(storage_open(t->db, &s), LOOKASIDE_OK);
    storage_close(s);
}

static void test_damaged_pages_refused(void **state)
{
    st_tmp *t = *state;
    make_db(t->db, 2000);
    struct stat sb;
    assert_int_equal(stat(t->db, &sb), 0);
    assert_true(sb.st_size >= 8 * 4096);
    /* Smash pages in the middle of the backend B-tree. */
    unsigned char smash[4096 * 2];
    memset(smash, 0xa5, sizeof smash);
    st_file_patch(t->db, (long)(sb.st_size / 2 / 4096) * 4096, smash, sizeof smash);
    expect_open_fails(t->db, LOOKASIDE_ECORRUPT, "damaged");
}

static void test_unreachable_paths(void **state)
{
    st_tmp *t = *state;
    char path[256];
    snprintf(path, sizeof path, "%s/no/such/dir/state.db", t->dir);
    expect_open_fails(path, LOOKASIDE_EIO, "No such file or directory");
    /* A directory is not a database file. */
    expect_open_fails(t->dir, LOOKASIDE_EIO, NULL);
    /* A read-only file (root ignores permissions, so only check as a user). */
    if (geteuid() != 0) {
        make_db(t->db, 1);
        assert_int_equal(chmod(t->db, 0444), 0);
        expect_open_fails(t->db, LOOKASIDE_EIO, "read-only");
    }
}

static long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : 0;
}

/* A full disk (simulated with RLIMIT_FSIZE) fails a write or commit with a
 * clear EIO; the handle stays usable, errmsg says what became of the batch,
 * and the file afterwards holds exactly the batches that were committed. */
static void test_disk_full(void **state)
{
    st_tmp *t = *state;
    char wal[200];
    snprintf(wal, sizeof wal, "%s-wal", t->db);
    make_db(t->db, 10);
    storage *s = NULL;
    assert_int_equal(storage_open(t->db, &s), LOOKASIDE_OK);
    assert_int_equal(storage_put_service(s, "full", 1), LOOKASIDE_OK);
    assert_int_equal(storage_flush(s), LOOKASIDE_OK);
    storage_set_batch_max(s, 1000000);

    long biggest = file_size(t->db) > file_size(wal) ? file_size(t->db) : file_size(wal);
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)biggest + 64 * 1024;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);

    lookaside_status st = LOOKASIDE_OK;
    int acked = 0, committed = 0;
    for (int i = 0; i < 50000 && st == LOOKASIDE_OK; i++) {
        char addr[32];
        snprintf(addr, sizeof addr, "10.9.%d.%d:1", i / 250, i % 250);
        storage_backend b = st_backend("full", addr, i);
        st = storage_put_backend(s, &b);
        if (st == LOOKASIDE_OK)
            acked++;
        if (st == LOOKASIDE_OK && acked % 500 == 0) {
            st = storage_flush(s);
            if (st == LOOKASIDE_OK)
                committed = acked;
        }
    }
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, old_handler);

    const char *m = storage_errmsg(s);
    print_message("write failed as expected: %s\n", m);
    assert_int_equal(st, LOOKASIDE_EIO);
    assert_non_null(strstr(m, t->db));
    if (storage_pending(s) > 0) {
        assert_non_null(strstr(m, "still pending"));
        assert_int_equal(storage_flush(s), LOOKASIDE_OK);
        committed = acked;
    } else if (strstr(m, "rolled back") == NULL) {
        /* The failed statement alone was undone; the batch is intact. */
        assert_int_equal(storage_flush(s), LOOKASIDE_OK);
        committed = acked;
    }
    /* The handle still works. */
    assert_int_equal(storage_put_service(s, "after", 1), LOOKASIDE_OK);
    storage_close(s);

    assert_int_equal(storage_open(t->db, &s), LOOKASIDE_OK);
    assert_int_equal(storage_integrity_check(s), LOOKASIDE_OK);
    storage_backend *bs = NULL;
    size_t n = 0;
    assert_int_equal(storage_load_backends(s, &bs, &n), LOOKASIDE_OK);
    int full = 0;
    for (size_t i = 0; i < n; i++)
        full += strcmp(bs[i].service, "full") == 0;
    free(bs);
    print_message("%d writes acknowledged, %d committed, %d stored\n", acked, committed, full);
    assert_int_equal(full, committed);
    storage_service *sv = NULL;
    assert_int_equal(storage_load_services(s, &sv, &n), LOOKASIDE_OK);
    assert_int_equal(n, 3);
    assert_string_equal(sv[0].name, "after");
    free(sv);
    storage_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reopen_keeps_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_handle_sees_commits_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_sqlite_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_file_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_pages_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreachable_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
