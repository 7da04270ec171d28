/* storage_write.c - puts and deletes: validate, bind, step in the batch. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "storage_internal.h"

/* Room for 48 source bytes as \xHH plus "...". */
#define STORAGE_QUOTE_MAX (48 * 4 + 4)

const char *storage_quote(const char *v, char *buf, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0, i = 0;
    if (len == 0)
        return buf;
    for (; v[i] != '\0' && i < 48; i++) {
        unsigned char c = (unsigned char)v[i];
        if (o + 5 >= len)
            break;
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            buf[o++] = (char)c;
        } else {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[c >> 4];
            buf[o++] = hex[c & 15];
        }
    }
    if (v[i] != '\0' && o + 4 <= len) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

/* A string argument: not NULL, 1..max bytes (0..max when may_be_empty). */
static lookaside_status storage_check_arg(storage *s, const char *what, const char *v, size_t max,
                                          bool may_be_empty, size_t *len)
{
    if (v == NULL)
        return storage_fail(s, LOOKASIDE_EINVAL, "%s is NULL", what);
    size_t n = strnlen(v, max + 1);
    if (n > max)
        return storage_fail(s, LOOKASIDE_EINVAL, "%s is longer than %zu bytes", what, max);
    if (n == 0 && !may_be_empty)
        return storage_fail(s, LOOKASIDE_EINVAL, "%s is empty", what);
    *len = n;
    return LOOKASIDE_OK;
}

/* A fixed-size string field of a struct: NUL-terminated inside the array. */
static lookaside_status storage_check_field(storage *s, const char *what, const char *v,
                                            size_t size, bool may_be_empty, size_t *len)
{
    size_t n = strnlen(v, size);
    if (n == size)
        return storage_fail(s, LOOKASIDE_EINVAL, "%s is not NUL-terminated within its %zu bytes",
                            what, size);
    if (n == 0 && !may_be_empty)
        return storage_fail(s, LOOKASIDE_EINVAL, "%s is empty", what);
    *len = n;
    return LOOKASIDE_OK;
}

static lookaside_status storage_check_number(storage *s, const char *what, double v)
{
    if (!isfinite(v) || v < 0)
        return storage_fail(s, LOOKASIDE_EINVAL, "%s is %g; it must be finite and >= 0", what, v);
    return LOOKASIDE_OK;
}

static lookaside_status storage_check_time(storage *s, const char *what, int64_t v)
{
    if (v < 0)
        return storage_fail(s, LOOKASIDE_EINVAL, "%s is %lld; it must be >= 0", what,
                            (long long)v);
    return LOOKASIDE_OK;
}

static lookaside_status storage_check_load(storage *s, const storage_load *l)
{
    if (l == NULL)
        return storage_fail(s, LOOKASIDE_EINVAL, "load is NULL");
    lookaside_status st;
    if ((st = storage_check_number(s, "load cpu", l->cpu)) != LOOKASIDE_OK ||
        (st = storage_check_number(s, "load mem", l->mem)) != LOOKASIDE_OK ||
        (st = storage_check_number(s, "load app", l->app)) != LOOKASIDE_OK ||
        (st = storage_check_number(s, "load rps", l->rps)) != LOOKASIDE_OK ||
        (st = storage_check_number(s, "load eps", l->eps)) != LOOKASIDE_OK ||
        (st = storage_check_time(s, "load at_ms", l->at_ms)) != LOOKASIDE_OK)
        return st;
    return LOOKASIDE_OK;
}

static lookaside_status storage_check_backend(storage *s, const storage_backend *b, size_t *slen,
                                              size_t *alen, size_t *zlen, size_t *hlen)
{
    if (b == NULL)
        return storage_fail(s, LOOKASIDE_EINVAL, "backend is NULL");
    lookaside_status st;
    if ((st = storage_check_field(s, "service name", b->service, sizeof b->service, false,
                                  slen)) != LOOKASIDE_OK ||
        (st = storage_check_field(s, "backend address", b->address, sizeof b->address, false,
                                  alen)) != LOOKASIDE_OK ||
        (st = storage_check_field(s, "zone", b->zone, sizeof b->zone, true, zlen)) !=
            LOOKASIDE_OK ||
        (st = storage_check_field(s, "cred_hash", b->cred_hash, sizeof b->cred_hash, true,
                                  hlen)) != LOOKASIDE_OK)
        return st;
    for (size_t i = 0; i < *hlen; i++) {
        char c = b->cred_hash[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return storage_fail(s, LOOKASIDE_EINVAL, "cred_hash has a non-hex byte at %zu", i);
    }
    if ((st = storage_check_time(s, "first_seen_ms", b->first_seen_ms)) != LOOKASIDE_OK ||
        (st = storage_check_time(s, "last_report_ms", b->last_report_ms)) != LOOKASIDE_OK ||
        (st = storage_check_time(s, "ramp_start_ms", b->ramp_start_ms)) != LOOKASIDE_OK ||
        (st = storage_check_number(s, "policy_weight", b->policy_weight)) != LOOKASIDE_OK)
        return st;
    return LOOKASIDE_OK;
}

/* Binding text by length with SQLITE_STATIC: the caller's buffer outlives
 * the step, which finishes (and is reset) before we return. */
static int storage_bind_text(sqlite3_stmt *st, int i, const char *v, size_t len)
{
    return sqlite3_bind_text(st, i, v, (int)len, SQLITE_STATIC);
}

/* Steps a bound write statement and resets it; returns SQLite's code. */
static int storage_step_write(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc;
}

lookaside_status storage_put_service(storage *s, const char *name, uint64_t version)
{
    STORAGE_CHECK_HANDLE(s);
    size_t nlen = 0;
    lookaside_status st = storage_check_arg(s, "service name", name, STORAGE_SERVICE_MAX, false,
                                            &nlen);
    if (st != LOOKASIDE_OK || (st = storage_begin(s)) != LOOKASIDE_OK)
        return st;
    sqlite3_stmt *q = s->stmt[STMT_PUT_SERVICE];
    /* uint64_t -> int64 and back is exact (two's complement both ways). */
    int rc = storage_bind_text(q, 1, name, nlen);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(q, 2, (sqlite3_int64)version);
    if (rc == SQLITE_OK)
        rc = storage_step_write(q);
    if (rc != SQLITE_DONE)
        return storage_write_failed(s, rc, "put_service");
    return storage_wrote(s);
}

lookaside_status storage_put_backend(storage *s, const storage_backend *b)
{
    STORAGE_CHECK_HANDLE(s);
    size_t slen = 0, alen = 0, zlen = 0, hlen = 0;
    lookaside_status st = storage_check_backend(s, b, &slen, &alen, &zlen, &hlen);
    if (st != LOOKASIDE_OK || (st = storage_begin(s)) != LOOKASIDE_OK)
        return st;
    sqlite3_stmt *q = s->stmt[STMT_ENSURE_SERVICE];
    int rc = storage_bind_text(q, 1, b->service, slen);
    if (rc == SQLITE_OK)
        rc = storage_step_write(q);
    if (rc != SQLITE_DONE)
        return storage_write_failed(s, rc, "put_backend (service row)");

    q = s->stmt[STMT_PUT_BACKEND];
    rc = storage_bind_text(q, 1, b->service, slen);
    if (rc == SQLITE_OK)
        rc = storage_bind_text(q, 2, b->address, alen);
    if (rc == SQLITE_OK)
        rc = storage_bind_text(q, 3, b->zone, zlen);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(q, 4, b->state);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(q, 5, b->source);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(q, 6, b->first_seen_ms);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(q, 7, b->last_report_ms);
    if (rc == SQLITE_OK)
        rc = storage_bind_text(q, 8, b->cred_hash, hlen);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(q, 9, b->weight_override);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_double(q, 10, b->policy_weight);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(q, 11, b->ramp_start_ms);
    if (rc == SQLITE_OK)
        rc = storage_step_write(q);
    if (rc != SQLITE_DONE)
        return storage_write_failed(s, rc, "put_backend");
    return storage_wrote(s);
}

lookaside_status storage_put_load(storage *s, const char *service, const char *address,
                                  const storage_load *l)
{
    STORAGE_CHECK_HANDLE(s);
    size_t slen = 0, alen = 0;
    lookaside_status st;
    if ((st = storage_check_arg(s, "service name", service, STORAGE_SERVICE_MAX, false, &slen)) !=
            LOOKASIDE_OK ||
        (st = storage_check_arg(s, "backend address", address, STORAGE_ADDRESS_MAX, false,
                                &alen)) != LOOKASIDE_OK ||
        (st = storage_check_load(s, l)) != LOOKASIDE_OK || (st = storage_begin(s)) != LOOKASIDE_OK)
        return st;
    sqlite3_stmt *q = s->stmt[STMT_PUT_LOAD];
    int rc = storage_bind_text(q, 1, service, slen);
    if (rc == SQLITE_OK)
        rc = storage_bind_text(q, 2, address, alen);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_double(q, 3, l->cpu);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_double(q, 4, l->mem);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_double(q, 5, l->app);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_double(q, 6, l->rps);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_double(q, 7, l->eps);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(q, 8, l->in_flight);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(q, 9, l->at_ms);
    if (rc == SQLITE_OK)
        rc = storage_step_write(q);
    if (rc != SQLITE_DONE)
        return storage_write_failed(s, rc, "put_load");
    if (sqlite3_changes(s->db) == 0) {
        char qs[STORAGE_QUOTE_MAX], qa[STORAGE_QUOTE_MAX];
        return storage_fail(s, LOOKASIDE_ENOTFOUND, "put_load: no backend \"%s\" \"%s\"",
                            storage_quote(service, qs, sizeof qs),
                            storage_quote(address, qa, sizeof qa));
    }
    return storage_wrote(s);
}

lookaside_status storage_delete_backend(storage *s, const char *service, const char *address)
{
    STORAGE_CHECK_HANDLE(s);
    size_t slen = 0, alen = 0;
    lookaside_status st;
    if ((st = storage_check_arg(s, "service name", service, STORAGE_SERVICE_MAX, false, &slen)) !=
            LOOKASIDE_OK ||
        (st = storage_check_arg(s, "backend address", address, STORAGE_ADDRESS_MAX, false,
                                &alen)) != LOOKASIDE_OK ||
        (st = storage_begin(s)) != LOOKASIDE_OK)
        return st;
    sqlite3_stmt *q = s->stmt[STMT_DELETE_BACKEND];
    int rc = storage_bind_text(q, 1, service, slen);
    if (rc == SQLITE_OK)
        rc = storage_bind_text(q, 2, address, alen);
    if (rc == SQLITE_OK)
        rc = storage_step_write(q);
    if (rc != SQLITE_DONE)
        return storage_write_failed(s, rc, "delete_backend");
    if (sqlite3_changes(s->db) == 0) {
        char qs[STORAGE_QUOTE_MAX], qa[STORAGE_QUOTE_MAX];
        return storage_fail(s, LOOKASIDE_ENOTFOUND, "delete_backend: no backend \"%s\" \"%s\"",
                            storage_quote(service, qs, sizeof qs),
                            storage_quote(address, qa, sizeof qa));
    }
    return storage_wrote(s);
}

lookaside_status storage_delete_service(storage *s, const char *name)
{
    STORAGE_CHECK_HANDLE(s);
    size_t nlen = 0;
    lookaside_status st;
    if ((st = storage_check_arg(s, "service name", name, STORAGE_SERVICE_MAX, false, &nlen)) !=
            LOOKASIDE_OK ||
        (st = storage_begin(s)) != LOOKASIDE_OK)
        return st;
    sqlite3_stmt *q = s->stmt[STMT_DELETE_SERVICE_BACKENDS];
    int rc = storage_bind_text(q, 1, name, nlen);
    if (rc == SQLITE_OK)
        rc = storage_step_write(q);
    if (rc != SQLITE_DONE)
        return storage_write_failed(s, rc, "delete_service (backends)");
    int removed = sqlite3_changes(s->db);
    q = s->stmt[STMT_DELETE_SERVICE];
    rc = storage_bind_text(q, 1, name, nlen);
    if (rc == SQLITE_OK)
        rc = storage_step_write(q);
    if (rc != SQLITE_DONE)
        return storage_write_failed(s, rc, "delete_service");
    removed += sqlite3_changes(s->db);
    if (removed == 0) {
        char qn[STORAGE_QUOTE_MAX];
        return storage_fail(s, LOOKASIDE_ENOTFOUND, "delete_service: no service \"%s\"",
                            storage_quote(name, qn, sizeof qn));
    }
    return storage_wrote(s);
}
