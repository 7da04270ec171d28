/* storage_read.c - reading everything back into caller-owned arrays, and
 * the integrity check. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage_internal.h"

/* Returns arr grown to hold more than n entries of elem bytes (capacity in
 * *cap), or NULL when out of memory (arr is then untouched). */
static void *storage_grow(void *arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return arr;
    size_t ncap = *cap ? *cap * 2 : 64;
    if (ncap < *cap || ncap > SIZE_MAX / elem)
        return NULL;
    void *p = realloc(arr, ncap * elem);
    if (p != NULL)
        *cap = ncap;
    return p;
}

/* Copies text column col into dst (size bytes with the NUL). A value that
 * does not fit was not written by us: the file was altered. */
static lookaside_status storage_col_text(storage *s, sqlite3_stmt *q, int col, char *dst,
                                         size_t size, const char *what)
{
    const unsigned char *v = sqlite3_column_text(q, col);
    size_t n = (size_t)sqlite3_column_bytes(q, col);
    if (v == NULL) {
        if (sqlite3_errcode(s->db) == SQLITE_NOMEM)
            return storage_fail(s, LOOKASIDE_ENOMEM, "out of memory reading %s", what);
        n = 0;
    }
    if (n >= size)
        return storage_fail(s, LOOKASIDE_ECORRUPT,
                            "a stored %s is %zu bytes, more than the %zu allowed; the file was "
                            "altered outside lookaside",
                            what, n, size - 1);
    if (n > 0)
        memcpy(dst, v, n);
    dst[n] = '\0';
    return LOOKASIDE_OK;
}

static lookaside_status storage_check_out(storage *s, void *out, size_t *n)
{
    STORAGE_CHECK_HANDLE(s);
    if (out == NULL || n == NULL)
        return storage_fail(s, LOOKASIDE_EINVAL, "load: out or n is NULL");
    return LOOKASIDE_OK;
}

lookaside_status storage_load_services(storage *s, storage_service **out, size_t *n)
{
    lookaside_status st = storage_check_out(s, out, n);
    if (st != LOOKASIDE_OK)
        return st;
    *out = NULL;
    *n = 0;
    sqlite3_stmt *q = s->stmt[STMT_LOAD_SERVICES];
    storage_service *arr = NULL;
    size_t cnt = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        storage_service *grown = storage_grow(arr, &cap, cnt, sizeof *arr);
        if (grown == NULL) {
            st = storage_fail(s, LOOKASIDE_ENOMEM, "load_services: out of memory at %zu services", cnt);
            goto fail;
        }
        arr = grown;
        storage_service *v = &arr[cnt];
        st = storage_col_text(s, q, 0, v->name, sizeof v->name, "service name");
        if (st != LOOKASIDE_OK)
            goto fail;
        v->version = (uint64_t)sqlite3_column_int64(q, 1);
        cnt++;
    }
    if (rc != SQLITE_DONE) {
        st = storage_fail_rc(s, rc, "load_services");
        goto fail;
    }
    sqlite3_reset(q);
    *out = arr;
    *n = cnt;
    return LOOKASIDE_OK;
fail:
    sqlite3_reset(q);
    free(arr);
    return st;
}

/* Fills b from the current row of STMT_LOAD_BACKENDS. */
static lookaside_status storage_row_backend(storage *s, sqlite3_stmt *q, storage_backend *b)
{
    memset(b, 0, sizeof *b);
    lookaside_status st;
    if ((st = storage_col_text(s, q, 0, b->service, sizeof b->service, "service name")) !=
            LOOKASIDE_OK ||
        (st = storage_col_text(s, q, 1, b->address, sizeof b->address, "backend address")) !=
            LOOKASIDE_OK ||
        (st = storage_col_text(s, q, 2, b->zone, sizeof b->zone, "zone")) != LOOKASIDE_OK ||
        (st = storage_col_text(s, q, 7, b->cred_hash, sizeof b->cred_hash, "cred_hash")) !=
            LOOKASIDE_OK)
        return st;
    b->state = sqlite3_column_int(q, 3);
    b->source = sqlite3_column_int(q, 4);
    b->first_seen_ms = sqlite3_column_int64(q, 5);
    b->last_report_ms = sqlite3_column_int64(q, 6);
    b->weight_override = (uint32_t)sqlite3_column_int64(q, 8);
    b->policy_weight = sqlite3_column_double(q, 9);
    b->ramp_start_ms = sqlite3_column_int64(q, 10);
    b->has_load = sqlite3_column_type(q, 17) != SQLITE_NULL;
    if (b->has_load) {
        b->load.cpu = sqlite3_column_double(q, 11);
        b->load.mem = sqlite3_column_double(q, 12);
        b->load.app = sqlite3_column_double(q, 13);
        b->load.rps = sqlite3_column_double(q, 14);
        b->load.eps = sqlite3_column_double(q, 15);
        b->load.in_flight = (uint32_t)sqlite3_column_int64(q, 16);
        b->load.at_ms = sqlite3_column_int64(q, 17);
    }
    return LOOKASIDE_OK;
}

lookaside_status storage_load_backends(storage *s, storage_backend **out, size_t *n)
{
    lookaside_status st = storage_check_out(s, out, n);
    if (st != LOOKASIDE_OK)
        return st;
    *out = NULL;
    *n = 0;
    sqlite3_stmt *q = s->stmt[STMT_LOAD_BACKENDS];
    storage_backend *arr = NULL;
    size_t cnt = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        storage_backend *grown = storage_grow(arr, &cap, cnt, sizeof *arr);
        if (grown == NULL) {
            st = storage_fail(s, LOOKASIDE_ENOMEM, "load_backends: out of memory at %zu backends", cnt);
            goto fail;
        }
        arr = grown;
        st = storage_row_backend(s, q, &arr[cnt]);
        if (st != LOOKASIDE_OK)
            goto fail;
        cnt++;
    }
    if (rc != SQLITE_DONE) {
        st = storage_fail_rc(s, rc, "load_backends");
        goto fail;
    }
    sqlite3_reset(q);
    *out = arr;
    *n = cnt;
    return LOOKASIDE_OK;
fail:
    sqlite3_reset(q);
    free(arr);
    return st;
}

lookaside_status storage_integrity_check(storage *s)
{
    STORAGE_CHECK_HANDLE(s);
    sqlite3_stmt *q = s->stmt[STMT_INTEGRITY_CHECK];
    char msg[1024];
    int rc;
    size_t bad = storage_check_rows(q, msg, sizeof msg, &rc);
    if (rc != SQLITE_DONE)
        return storage_fail_rc(s, rc, "integrity_check");
    if (bad > 0)
        return storage_fail(s, LOOKASIDE_ECORRUPT, "integrity_check found problems: %s", msg);
    return LOOKASIDE_OK;
}
