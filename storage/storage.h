/* storage.h - lookaside's persistent state in one SQLite file.
 *
 * The only module that talks to SQLite. It keeps services, backends and each
 * backend's latest load report, so a restarted server starts from the last
 * known picture instead of an empty one. The registry in memory stays
 * authoritative; this is its write-behind copy.
 *
 * Threads: a storage handle is used by one thread at a time (the server's
 * loop thread). Different handles may be used from different threads.
 * Strings are C strings: they end at the first NUL byte, so a NUL byte
 * cannot be stored. Any other byte (quotes, 0x01..0xff, invalid UTF-8) is
 * stored and returned exactly, because every value is a bound parameter.
 *
 * WHAT IS DURABLE WHEN A CALL RETURNS
 *  - A put or delete that returns LOOKASIDE_OK is applied to an open
 *    transaction (the batch): storage_load_* on the same handle see it at
 *    once, other handles and processes do not, and it is lost if the process
 *    dies before the batch commits. It is not durable.
 *  - The batch commits (one COMMIT) when storage_flush returns LOOKASIDE_OK,
 *    when a put/delete makes storage_pending reach the batch maximum and that
 *    call returns LOOKASIDE_OK, and in storage_close. A committed batch is
 *    atomic (all of it or none of it survives) and survives the process being
 *    killed at any point, SIGKILL included: the WAL frames are in the kernel
 *    before COMMIT returns.
 *  - A committed batch is NOT guaranteed to survive an OS crash or power loss
 *    (journal_mode=WAL, synchronous=NORMAL: the WAL is fsynced only at
 *    checkpoints). After such a crash the database is still consistent; it
 *    holds a prefix of the committed batches, possibly missing the most
 *    recent ones.
 *  - storage_close on the last handle to a file checkpoints the WAL into the
 *    database file and fsyncs it: after a clean close everything committed
 *    is on stable storage.
 *  - ":memory:" databases are never durable; they vanish at storage_close.
 *
 * Time-based flushing is the caller's job (the server flushes on a timer and
 * at shutdown); storage itself only commits on flush, batch size and close.
 *
 * Writes (every put and delete): a successful one counts in storage_pending.
 * The one that fills the batch also commits it and returns the commit's
 * status; a failed commit's errmsg says whether the batch is still pending
 * (flush again) or was rolled back. While a batch is open the handle holds
 * the file's write lock: other handles and processes still read (committed
 * data only), but their writes wait up to a 2 s busy timeout and then fail
 * with EIO. Rejected calls (EINVAL, ENOTFOUND) write nothing.
 */
#ifndef LOOKASIDE_STORAGE_H
#define LOOKASIDE_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lookaside_status.h"

typedef struct storage storage;

/* Maximum string lengths in bytes, excluding the terminating NUL. */
#define STORAGE_SERVICE_MAX 253
#define STORAGE_ADDRESS_MAX 63
#define STORAGE_ZONE_MAX 63
#define STORAGE_HASH_MAX 64
#define STORAGE_PATH_MAX 4095

/* File identity: PRAGMA user_version is the schema version (this build
 * writes and reads up to STORAGE_SCHEMA_VERSION, migrating older files
 * forward), PRAGMA application_id is "LKSD". */
#define STORAGE_SCHEMA_VERSION 1
#define STORAGE_APPLICATION_ID 0x4C4B5344

/* Default for storage_set_batch_max. */
#define STORAGE_BATCH_DEFAULT 4096

/* A backend's latest load report. */
typedef struct storage_load {
    double cpu, mem, app, rps, eps;   /* finite, >= 0 (reject otherwise with EINVAL) */
    uint32_t in_flight;
    int64_t at_ms;                    /* unix ms of the report, >= 0 */
} storage_load;

typedef struct storage_backend {
    char service[STORAGE_SERVICE_MAX + 1];  /* 1..253 bytes */
    char address[STORAGE_ADDRESS_MAX + 1];  /* 1..63 bytes */
    char zone[STORAGE_ZONE_MAX + 1];        /* 0..63 bytes */
    int state;                /* lookaside.v1.BackendState number, opaque to storage */
    int source;               /* lookaside.v1.BackendSource number, opaque */
    int64_t first_seen_ms;    /* unix ms, >= 0 */
    int64_t last_report_ms;   /* unix ms, 0 = never, >= 0 */
    char cred_hash[STORAGE_HASH_MAX + 1];  /* hex digits, "" = none */
    uint32_t weight_override; /* 0 = none */
    double policy_weight;     /* weight policy state to survive restarts; finite, >= 0 */
    int64_t ramp_start_ms;    /* unix ms slow start began, 0 = none, >= 0 */
    bool has_load;            /* set by storage_load_backends; ignored by put */
    storage_load load;        /* valid when has_load; ignored by put */
} storage_backend;

typedef struct storage_service {
    char name[STORAGE_SERVICE_MAX + 1];
    uint64_t version;
} storage_service;

/* Opens (creating if missing) the database at path, or a private in-memory
 * database when path is ":memory:". Enables WAL and synchronous=NORMAL, sets
 * a busy timeout, checks the file (PRAGMA quick_check), brings the schema up
 * to date with forward migrations, and prepares every statement.
 * Returns LOOKASIDE_OK and a new handle in *out (owned by the caller, free
 * with storage_close), or an error with *out = NULL and the reason in
 * storage_open_error():
 *   EINVAL   path or out NULL, path empty or longer than STORAGE_PATH_MAX;
 *   EIO      the file cannot be opened or created (missing directory,
 *            permissions, read-only file, WAL not available), or is locked;
 *   ECORRUPT not an SQLite file, a damaged one, or another program's
 *            SQLite database;
 *   ETOONEW  written by a newer lookaside schema than this build knows;
 *   ENOMEM   out of memory.
 * Error messages name the file. Thread-safe (different paths or not). */
lookaside_status storage_open(const char *path, storage **out);

/* Text of the calling thread's most recent storage_open failure, "" when it
 * succeeded. Never NULL; valid until that thread's next storage_open. */
const char *storage_open_error(void);

/* Commits the pending batch, closes the database and frees the handle.
 * If the commit fails the batch is lost and the error is logged. NULL is a
 * no-op. After it returns, s is invalid. */
void storage_close(storage *s);

/* Upserts service name (1..STORAGE_SERVICE_MAX bytes) with its version.
 * Any uint64_t round-trips exactly. Pending write; see the header comment.
 * Returns OK, EINVAL (bad argument), or EIO/ECORRUPT/ENOMEM from the
 * database (errmsg names the file). */
lookaside_status storage_put_service(storage *s, const char *name, uint64_t version);

/* Upserts the backend (b->service, b->address): every field except has_load
 * and load is written, replacing the stored values; a stored load report is
 * kept. When b->service has no service row yet, one is created with version
 * 0 (an existing row is left as is), so every backend's service is listed by
 * storage_load_services. b is only read. Pending write.
 * Returns OK, EINVAL (empty or over-long or unterminated strings, non-hex
 * cred_hash, negative times, NaN/inf/negative policy_weight), or a database
 * error. */
lookaside_status storage_put_backend(storage *s, const storage_backend *b);

/* Replaces the latest load report of backend (service, address). The backend
 * must exist, either committed or put earlier in the pending batch; it does
 * not change the backend's other fields (last_report_ms included). Pending
 * write.
 * Returns OK, ENOTFOUND (no such backend; nothing is written), EINVAL (bad
 * strings, any double NaN/inf/negative, at_ms < 0), or a database error. */
lookaside_status storage_put_load(storage *s, const char *service, const char *address,
                                  const storage_load *l);

/* Deletes backend (service, address) with its load report. Pending write.
 * Returns OK, ENOTFOUND (no such backend), EINVAL, or a database error. */
lookaside_status storage_delete_backend(storage *s, const char *service, const char *address);

/* Deletes service name, all its backends and their load reports. Pending
 * write. Returns OK, ENOTFOUND (neither the service nor any backend of it
 * existed), EINVAL, or a database error. */
lookaside_status storage_delete_service(storage *s, const char *name);

/* Commits all pending writes in one transaction; a no-op when none are
 * pending. Returns OK (the batch is committed: see the header comment), or
 * EIO/ECORRUPT/ENOMEM. On failure errmsg says whether the batch is still
 * pending (storage_pending() > 0: call again) or was rolled back and lost
 * (storage_pending() == 0). */
lookaside_status storage_flush(storage *s);

/* Number of successful puts/deletes not yet committed. NULL gives 0. */
size_t storage_pending(const storage *s);

/* Sets how many pending writes make a put/delete commit the batch itself
 * (default STORAGE_BATCH_DEFAULT). 0 is taken as 1: every write commits at
 * once. A value at or below the current pending count takes effect at the
 * next write. */
void storage_set_batch_max(storage *s, size_t n);

/* Reads every service, ordered by name (byte order), including pending
 * writes of this handle. On OK, *out is a malloc'd array of *n entries that
 * the caller frees with free() (NULL when *n == 0). On error *out = NULL,
 * *n = 0. Returns OK, EINVAL, ENOMEM, ECORRUPT (a damaged file or a stored
 * value that does not fit), or EIO. */
lookaside_status storage_load_services(storage *s, storage_service **out, size_t *n);

/* Reads every backend ordered by service then address (byte order),
 * including pending writes of this handle, with has_load/load set from the
 * latest load report. Ownership and errors as storage_load_services. */
lookaside_status storage_load_backends(storage *s, storage_backend **out, size_t *n);

/* Runs PRAGMA integrity_check over the whole file (slow on big files: for
 * tests, tools and after a crash). Returns OK, ECORRUPT with the first
 * problems in errmsg, or another error if the check could not run. */
lookaside_status storage_integrity_check(storage *s);

/* Text of the last failed call on this handle ("" if none failed yet; not
 * cleared by successful calls). Never NULL, also for s == NULL. Valid until
 * the next call on s. */
const char *storage_errmsg(const storage *s);

/* Version string of the SQLite library in use, for logs and bench notes. */
const char *storage_sqlite_version(void);

#endif
