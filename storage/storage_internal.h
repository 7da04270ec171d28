/* storage_internal.h - what the storage_*.c files share: the handle, the
 * prepared statement table and error helpers. Not for use outside storage/. */
#ifndef LOOKASIDE_STORAGE_INTERNAL_H
#define LOOKASIDE_STORAGE_INTERNAL_H

#include <sqlite3.h>

#include "storage.h"

/* Every statement the handle runs after open, prepared once in
 * storage_prepare_all. Keep in the order of storage_stmt_sql. */
enum storage_stmt {
    STMT_BEGIN,
    STMT_COMMIT,
    STMT_ROLLBACK,
    STMT_PUT_SERVICE,
    STMT_ENSURE_SERVICE,
    STMT_PUT_BACKEND,
    STMT_PUT_LOAD,
    STMT_DELETE_BACKEND,
    STMT_DELETE_SERVICE_BACKENDS,
    STMT_DELETE_SERVICE,
    STMT_LOAD_SERVICES,
    STMT_LOAD_BACKENDS,
    STMT_INTEGRITY_CHECK,
    STMT_COUNT
};

/* Big enough for a message that quotes a STORAGE_PATH_MAX path. */
#define STORAGE_ERRMSG_MAX (STORAGE_PATH_MAX + 512)

struct storage {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *stmt[STMT_COUNT];
    bool in_txn;          /* BEGIN has run and COMMIT/ROLLBACK has not */
    size_t pending;       /* successful writes inside the open transaction */
    size_t batch_max;
    char errmsg[STORAGE_ERRMSG_MAX];
};

/* storage_schema.c */
/* SQL text of statement i. */
const char *storage_stmt_sql(enum storage_stmt i);
/* Brings the schema of the freshly opened s->db up to date. On error
 * returns the status and fills msg (without the file name prefix). */
lookaside_status storage_migrate(storage *s, char *msg, size_t msglen);

/* storage.c */
/* Maps an SQLite result code to a lookaside status. */
lookaside_status storage_status_from_rc(int rc);
/* Records "storage <path>: <fmt...>" as errmsg and returns st. */
lookaside_status storage_fail(storage *s, lookaside_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Records a failure of SQLite call `what` with result rc and returns the
 * mapped status. */
lookaside_status storage_fail_rc(storage *s, int rc, const char *what);

/* Steps q, a PRAGMA quick_check/integrity_check, to the end and resets
 * it. Returns the number of problem rows, joined on one line into msg;
 * *rc is the final step's code (SQLITE_DONE when the check ran). */
size_t storage_check_rows(sqlite3_stmt *q, char *msg, size_t len, int *rc);
/* Opens the batch transaction if none is open. */
lookaside_status storage_begin(storage *s);
/* Counts one successful write in the batch; commits when the batch is full
 * and returns the commit's status. */
lookaside_status storage_wrote(storage *s);
/* Records a failed write statement (rc), noting when SQLite rolled the
 * whole batch back, and returns the mapped status. */
lookaside_status storage_write_failed(storage *s, int rc, const char *what);
/* Writes v into buf as printable text for error messages: at most 48 bytes
 * of it, other bytes as \xHH, and "..." when cut. */
const char *storage_quote(const char *v, char *buf, size_t len);

/* Checks that s is not NULL; on NULL returns EINVAL (no handle to record
 * the message in). */
#define STORAGE_CHECK_HANDLE(s) \
    do { if ((s) == NULL) return LOOKASIDE_EINVAL; } while (0)

#endif
