/* storage.c - opening and closing a database, batches, errors. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "storage_internal.h"

/* Long enough that a checkpoint by another connection does not fail a
 * write, short enough that a stuck lock holder shows up as an error rather
 * than a hung loop thread. */
#define STORAGE_BUSY_TIMEOUT_MS 2000

static _Thread_local char storage_open_err[STORAGE_ERRMSG_MAX];

const char *storage_open_error(void)
{
    return storage_open_err;
}

const char *storage_sqlite_version(void)
{
    return sqlite3_libversion();
}

lookaside_status storage_status_from_rc(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return LOOKASIDE_OK;
    case SQLITE_NOMEM:
        return LOOKASIDE_ENOMEM;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_FORMAT:
        return LOOKASIDE_ECORRUPT;
    case SQLITE_TOOBIG:
        return LOOKASIDE_ETOOBIG;
    case SQLITE_MISUSE:
    case SQLITE_RANGE:
        return LOOKASIDE_EINTERNAL;
    default:
        /* IOERR, FULL, CANTOPEN, READONLY, PERM, BUSY, LOCKED, and ERROR
         * (a schema that someone altered behind our back). */
        return LOOKASIDE_EIO;
    }
}

lookaside_status storage_fail(storage *s, lookaside_status st, const char *fmt, ...)
{
    int n = snprintf(s->errmsg, sizeof s->errmsg, "storage %s: ", s->path);
    if (n < 0 || (size_t)n >= sizeof s->errmsg)
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errmsg + n, sizeof s->errmsg - (size_t)n, fmt, ap);
    va_end(ap);
    return st;
}

/* Appends to errmsg, cutting what does not fit. */
__attribute__((format(printf, 2, 3))) static void storage_append(storage *s, const char *fmt,
                                                                 ...)
{
    size_t len = strlen(s->errmsg);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errmsg + len, sizeof s->errmsg - len, fmt, ap);
    va_end(ap);
}

/* The OS error behind an I/O failure, which says more than SQLite's text
 * ("unable to open database file") about a missing directory. */
static const char *storage_sys_error(sqlite3 *db, int rc)
{
    int e = sqlite3_system_errno(db);
    int prim = rc & 0xff;
    if (e == 0 || (prim != SQLITE_IOERR && prim != SQLITE_CANTOPEN && prim != SQLITE_FULL &&
                   prim != SQLITE_READONLY && prim != SQLITE_PERM))
        return "";
    return strerror(e);
}

lookaside_status storage_fail_rc(storage *s, int rc, const char *what)
{
    lookaside_status st = storage_status_from_rc(rc);
    const char *sys = storage_sys_error(s->db, rc);
    const char *msg = sqlite3_errmsg(s->db);
    const char *str = sqlite3_errstr(rc);
    bool same = strcmp(msg, str) == 0;
    storage_fail(s, st, "%s: %s%s%s%s%s%s", what, msg, same ? "" : " (", same ? "" : str,
                 same ? "" : ")", *sys ? ": " : "", sys);
    if (st == LOOKASIDE_ECORRUPT)
        storage_append(s, "; the file is damaged: move it aside to start with an empty state");
    return st;
}

size_t storage_check_rows(sqlite3_stmt *q, char *msg, size_t len, int *rc)
{
    size_t bad = 0, used = 0;
    msg[0] = '\0';
    while ((*rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *row = (const char *)sqlite3_column_text(q, 0);
        if (row != NULL && strcmp(row, "ok") == 0)
            continue;
        bad++;
        if (used + 1 < len) {
            int n = snprintf(msg + used, len - used, "%s%s", bad > 1 ? "; " : "",
                             row ? row : "?");
            if (n > 0)
                used += (size_t)n < len - used ? (size_t)n : len - used - 1;
        }
    }
    sqlite3_reset(q);
    /* SQLite reports one problem per line; keep the message on one. */
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return bad;
}

/* Moves the handle's message to the thread's open error and frees it. */
static lookaside_status storage_open_failed(storage *s, lookaside_status st)
{
    snprintf(storage_open_err, sizeof storage_open_err, "%s", s->errmsg);
    storage_close(s);
    return st;
}

/* Fails an open when the file is another program's or is damaged; run
 * before anything writes to the file. */
static lookaside_status storage_open_checks(storage *s, bool memory)
{
    char msg[512];
    int rc;
    if (!memory && sqlite3_db_readonly(s->db, "main") == 1)
        return storage_fail(s, LOOKASIDE_EIO,
                            "the database file is read-only (check its permissions)");

    /* Every page, so a damaged file fails here with a clear message instead
     * of at some later write. The state is small (thousands of rows). */
    sqlite3_stmt *st = NULL;
    /* A non-SQLite file fails at prepare: the header is read on first use. */
    rc = sqlite3_prepare_v2(s->db, "PRAGMA quick_check(5)", -1, &st, NULL);
    size_t bad = 0;
    if (rc == SQLITE_OK)
        bad = storage_check_rows(st, msg, sizeof msg, &rc);
    if (rc != SQLITE_OK && rc != SQLITE_DONE) {
        lookaside_status e = storage_fail_rc(s, rc, "reading the database");
        if (e == LOOKASIDE_ECORRUPT)
            storage_fail(s, e,
                         "not a lookaside database, or a damaged one: %s; if it is ours, move "
                         "it aside to start with an empty state",
                         sqlite3_errmsg(s->db));
        sqlite3_finalize(st);
        return e;
    }
    sqlite3_finalize(st);
    if (bad > 0)
        return storage_fail(s, LOOKASIDE_ECORRUPT,
                            "the database is damaged (quick_check: %s); move it aside to start "
                            "with an empty state",
                            msg);
    return LOOKASIDE_OK;
}

/* journal_mode=WAL: readers never block the writer, and a commit is an
 * append to the WAL. synchronous=NORMAL: no fsync per commit (see the
 * durability note in storage.h). */
static lookaside_status storage_set_modes(storage *s, bool memory)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        return storage_fail_rc(s, rc, "enabling WAL");
    }
    const char *mode = (const char *)sqlite3_column_text(st, 0);
    bool ok = mode != NULL && (strcmp(mode, "wal") == 0 || (memory && strcmp(mode, "memory") == 0));
    char got[16];
    snprintf(got, sizeof got, "%s", mode ? mode : "?");
    sqlite3_finalize(st);
    if (!ok)
        return storage_fail(s, LOOKASIDE_EIO,
                            "cannot enable WAL (journal mode stays \"%s\"); the file system "
                            "may not support shared memory",
                            got);
    rc = sqlite3_exec(s->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return storage_fail_rc(s, rc, "setting synchronous=NORMAL");
    return LOOKASIDE_OK;
}

static lookaside_status storage_prepare_all(storage *s)
{
    for (int i = 0; i < STMT_COUNT; i++) {
        int rc = sqlite3_prepare_v3(s->db, storage_stmt_sql((enum storage_stmt)i), -1,
                                    SQLITE_PREPARE_PERSISTENT, &s->stmt[i], NULL);
        if (rc != SQLITE_OK)
            return storage_fail_rc(s, rc, "preparing statements");
    }
    return LOOKASIDE_OK;
}

lookaside_status storage_open(const char *path, storage **out)
{
    storage_open_err[0] = '\0';
    if (out == NULL) {
        snprintf(storage_open_err, sizeof storage_open_err, "storage: out is NULL");
        return LOOKASIDE_EINVAL;
    }
    *out = NULL;
    if (path == NULL || path[0] == '\0') {
        snprintf(storage_open_err, sizeof storage_open_err,
                 "storage: database path is %s", path ? "empty" : "NULL");
        return LOOKASIDE_EINVAL;
    }
    size_t plen = strnlen(path, STORAGE_PATH_MAX + 1);
    if (plen > STORAGE_PATH_MAX) {
        snprintf(storage_open_err, sizeof storage_open_err,
                 "storage: database path is longer than %d bytes", STORAGE_PATH_MAX);
        return LOOKASIDE_EINVAL;
    }
    storage *s = calloc(1, sizeof *s);
    char *p = malloc(plen + 1);
    if (s == NULL || p == NULL) {
        free(s);
        free(p);
        snprintf(storage_open_err, sizeof storage_open_err, "storage %s: out of memory", path);
        return LOOKASIDE_ENOMEM;
    }
    memcpy(p, path, plen + 1);
    s->path = p;
    s->batch_max = STORAGE_BATCH_DEFAULT;
    bool memory = strcmp(path, ":memory:") == 0;

    /* NOMUTEX: one thread at a time uses a handle, so SQLite's per-connection
     * mutex is pure cost. No URI parsing: a path is a path. */
    int rc = sqlite3_open_v2(path, &s->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        if (s->db == NULL)
            return storage_open_failed(s, storage_fail(s, LOOKASIDE_ENOMEM, "out of memory"));
        lookaside_status st = storage_fail_rc(s, rc, "cannot open or create the database file");
        return storage_open_failed(s, st);
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, STORAGE_BUSY_TIMEOUT_MS);

    lookaside_status st = storage_open_checks(s, memory);
    if (st == LOOKASIDE_OK)
        st = storage_set_modes(s, memory);
    if (st == LOOKASIDE_OK) {
        char msg[512];
        st = storage_migrate(s, msg, sizeof msg);
        if (st != LOOKASIDE_OK)
            storage_fail(s, st, "%s", msg);
    }
    if (st == LOOKASIDE_OK)
        st = storage_prepare_all(s);
    if (st != LOOKASIDE_OK)
        return storage_open_failed(s, st);
    s->errmsg[0] = '\0';
    *out = s;
    return LOOKASIDE_OK;
}

void storage_close(storage *s)
{
    if (s == NULL)
        return;
    if (s->db != NULL && s->in_txn) {
        size_t lost = s->pending;
        if (storage_flush(s) != LOOKASIDE_OK) {
            log_error("storage", "%s (closing: %zu pending writes lost)", s->errmsg, lost);
            if (!sqlite3_get_autocommit(s->db))
                sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        }
    }
    for (int i = 0; i < STMT_COUNT; i++)
        sqlite3_finalize(s->stmt[i]);
    if (s->db != NULL) {
        int rc = sqlite3_close(s->db);
        if (rc != SQLITE_OK)
            log_error("storage", "storage %s: close: %s", s->path, sqlite3_errstr(rc));
    }
    free(s->path);
    free(s);
}

/* Records that the open transaction is gone (COMMIT or ROLLBACK done, or
 * SQLite rolled it back after an I/O error). */
static void storage_txn_ended(storage *s)
{
    s->in_txn = false;
    s->pending = 0;
}

lookaside_status storage_begin(storage *s)
{
    if (s->in_txn)
        return LOOKASIDE_OK;
    /* IMMEDIATE takes the write lock now, so a busy database fails here,
     * before any write of the batch, rather than at COMMIT. */
    sqlite3_stmt *st = s->stmt[STMT_BEGIN];
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return storage_fail_rc(s, rc, "beginning a batch");
    s->in_txn = true;
    return LOOKASIDE_OK;
}

lookaside_status storage_wrote(storage *s)
{
    s->pending++;
    if (s->pending >= s->batch_max)
        return storage_flush(s);
    return LOOKASIDE_OK;
}

lookaside_status storage_write_failed(storage *s, int rc, const char *what)
{
    size_t n = s->pending;
    lookaside_status e = storage_fail_rc(s, rc, what);
    /* Some errors (I/O, disk full) make SQLite roll the whole transaction
     * back, not just the failed statement. */
    if (s->in_txn && sqlite3_get_autocommit(s->db)) {
        storage_txn_ended(s);
        storage_append(s, "; the pending batch of %zu writes was rolled back", n);
    }
    return e;
}

lookaside_status storage_flush(storage *s)
{
    STORAGE_CHECK_HANDLE(s);
    if (!s->in_txn)
        return LOOKASIDE_OK;
    sqlite3_stmt *st = s->stmt[STMT_COMMIT];
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE) {
        storage_txn_ended(s);
        return LOOKASIDE_OK;
    }
    size_t n = s->pending;
    lookaside_status e = storage_fail_rc(s, rc, "commit");
    if (sqlite3_get_autocommit(s->db)) {
        storage_txn_ended(s);
        storage_append(s, "; the batch of %zu writes was rolled back", n);
    } else {
        storage_append(s, "; the batch of %zu writes is still pending, flush again", n);
    }
    return e;
}

size_t storage_pending(const storage *s)
{
    return s == NULL ? 0 : s->pending;
}

void storage_set_batch_max(storage *s, size_t n)
{
    if (s != NULL)
        s->batch_max = n == 0 ? 1 : n;
}

const char *storage_errmsg(const storage *s)
{
    return s == NULL ? "storage: no handle (NULL)" : s->errmsg;
}
