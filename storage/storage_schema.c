/* storage_schema.c - the schema: forward migrations and the SQL of every
 * prepared statement. Changing the schema means appending a migration step
 * and bumping STORAGE_SCHEMA_VERSION; never edit a step that has shipped. */
#include <stdio.h>
#include <string.h>

#include "storage_internal.h"

/* Step `version` takes a database from user_version version-1 to version. */
static const struct storage_migration {
    int version;
    const char *sql;
} storage_migrations[] = {
    {1,
     /* WITHOUT ROWID: one B-tree per table keyed by the natural key, so an
      * upsert or a load update touches one tree. The latest load report
      * lives in the backend row (NULL load_at_ms = no report): a report is
      * then one UPDATE, and deleting a backend drops its load with it. */
     "CREATE TABLE service ("
     "  name    TEXT    NOT NULL PRIMARY KEY,"
     "  version INTEGER NOT NULL"
     ") WITHOUT ROWID;"
     "CREATE TABLE backend ("
     "  service         TEXT    NOT NULL,"
     "  address         TEXT    NOT NULL,"
     "  zone            TEXT    NOT NULL,"
     "  state           INTEGER NOT NULL,"
     "  source          INTEGER NOT NULL,"
     "  first_seen_ms   INTEGER NOT NULL,"
     "  last_report_ms  INTEGER NOT NULL,"
     "  cred_hash       TEXT    NOT NULL,"
     "  weight_override INTEGER NOT NULL,"
     "  policy_weight   REAL    NOT NULL,"
     "  ramp_start_ms   INTEGER NOT NULL,"
     "  load_cpu        REAL,"
     "  load_mem        REAL,"
     "  load_app        REAL,"
     "  load_rps        REAL,"
     "  load_eps        REAL,"
     "  load_in_flight  INTEGER,"
     "  load_at_ms      INTEGER,"
     "  PRIMARY KEY (service, address)"
     ") WITHOUT ROWID;"},
};

#define STORAGE_MIGRATION_COUNT (sizeof storage_migrations / sizeof storage_migrations[0])

_Static_assert(STORAGE_MIGRATION_COUNT == STORAGE_SCHEMA_VERSION,
               "one migration step per schema version");

static const char *const storage_sql[STMT_COUNT] = {
    [STMT_BEGIN] = "BEGIN IMMEDIATE",
    [STMT_COMMIT] = "COMMIT",
    [STMT_ROLLBACK] = "ROLLBACK",
    [STMT_PUT_SERVICE] =
        "INSERT INTO service (name, version) VALUES (?1, ?2)"
        " ON CONFLICT (name) DO UPDATE SET version = excluded.version",
    [STMT_ENSURE_SERVICE] =
        "INSERT INTO service (name, version) VALUES (?1, 0) ON CONFLICT (name) DO NOTHING",
    [STMT_PUT_BACKEND] =
        "INSERT INTO backend (service, address, zone, state, source, first_seen_ms,"
        "  last_report_ms, cred_hash, weight_override, policy_weight, ramp_start_ms)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        " ON CONFLICT (service, address) DO UPDATE SET"
        "  zone = excluded.zone, state = excluded.state, source = excluded.source,"
        "  first_seen_ms = excluded.first_seen_ms, last_report_ms = excluded.last_report_ms,"
        "  cred_hash = excluded.cred_hash, weight_override = excluded.weight_override,"
        "  policy_weight = excluded.policy_weight, ramp_start_ms = excluded.ramp_start_ms",
    [STMT_PUT_LOAD] =
        "UPDATE backend SET load_cpu = ?3, load_mem = ?4, load_app = ?5, load_rps = ?6,"
        "  load_eps = ?7, load_in_flight = ?8, load_at_ms = ?9"
        " WHERE service = ?1 AND address = ?2",
    [STMT_DELETE_BACKEND] = "DELETE FROM backend WHERE service = ?1 AND address = ?2",
    [STMT_DELETE_SERVICE_BACKENDS] = "DELETE FROM backend WHERE service = ?1",
    [STMT_DELETE_SERVICE] = "DELETE FROM service WHERE name = ?1",
    [STMT_LOAD_SERVICES] = "SELECT name, version FROM service ORDER BY name",
    [STMT_LOAD_BACKENDS] =
        "SELECT service, address, zone, state, source, first_seen_ms, last_report_ms,"
        "  cred_hash, weight_override, policy_weight, ramp_start_ms, load_cpu, load_mem,"
        "  load_app, load_rps, load_eps, load_in_flight, load_at_ms"
        " FROM backend ORDER BY service, address",
    [STMT_INTEGRITY_CHECK] = "PRAGMA integrity_check(20)",
};

const char *storage_stmt_sql(enum storage_stmt i)
{
    return storage_sql[i];
}

/* Runs a one-row integer query such as "PRAGMA user_version". */
static int storage_query_int(sqlite3 *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_ERROR; /* a one-row query returned nothing */
    }
    sqlite3_finalize(st);
    return rc;
}

/* Reads the database's identity: application_id, user_version and how many
 * schema objects it holds. */
static int storage_identity(sqlite3 *db, int64_t *app, int64_t *ver, int64_t *objects)
{
    int rc = storage_query_int(db, "PRAGMA application_id", app);
    if (rc == SQLITE_OK)
        rc = storage_query_int(db, "PRAGMA user_version", ver);
    if (rc == SQLITE_OK && objects != NULL)
        rc = storage_query_int(db, "SELECT count(*) FROM sqlite_master", objects);
    return rc;
}

static lookaside_status storage_db_msg(sqlite3 *db, int rc, const char *what, char *msg,
                                       size_t msglen)
{
    snprintf(msg, msglen, "%s: %s (%s)", what, sqlite3_errmsg(db), sqlite3_errstr(rc));
    return storage_status_from_rc(rc);
}

/* Refuses files that are not ours or are newer than this build. */
static lookaside_status storage_check_identity(int64_t app, int64_t ver, int64_t objects,
                                               char *msg, size_t msglen)
{
    if (app != 0 && app != STORAGE_APPLICATION_ID) {
        snprintf(msg, msglen,
                 "not a lookaside database: an SQLite database of another program "
                 "(application_id 0x%08llx)",
                 (unsigned long long)(uint32_t)app);
        return LOOKASIDE_ECORRUPT;
    }
    if (ver > STORAGE_SCHEMA_VERSION) {
        snprintf(msg, msglen,
                 "schema version %lld is newer than version %d known to this build of "
                 "lookaside; run a newer lookaside or move the file aside",
                 (long long)ver, STORAGE_SCHEMA_VERSION);
        return LOOKASIDE_ETOONEW;
    }
    if (ver < 0 || (app == 0 && (ver != 0 || objects > 0))) {
        snprintf(msg, msglen,
                 "not a lookaside database: an SQLite database with %lld schema objects, "
                 "user_version %lld and no lookaside application_id",
                 (long long)objects, (long long)ver);
        return LOOKASIDE_ECORRUPT;
    }
    return LOOKASIDE_OK;
}

lookaside_status storage_migrate(storage *s, char *msg, size_t msglen)
{
    int64_t app = 0, ver = 0, objects = 0;
    int rc = storage_identity(s->db, &app, &ver, NULL);
    if (rc != SQLITE_OK)
        return storage_db_msg(s->db, rc, "reading the schema version", msg, msglen);
    if (app == STORAGE_APPLICATION_ID && ver == STORAGE_SCHEMA_VERSION)
        return LOOKASIDE_OK; /* the common case takes no write lock */
    if (ver > STORAGE_SCHEMA_VERSION || (app != 0 && app != STORAGE_APPLICATION_ID))
        return storage_check_identity(app, ver, 0, msg, msglen);

    /* Migrate under the write lock, re-reading the identity: another process
     * may have migrated the file since we looked. */
    rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return storage_db_msg(s->db, rc, "locking the database to migrate it", msg, msglen);
    lookaside_status st = LOOKASIDE_OK;
    rc = storage_identity(s->db, &app, &ver, &objects);
    if (rc != SQLITE_OK) {
        st = storage_db_msg(s->db, rc, "reading the schema version", msg, msglen);
        goto rollback;
    }
    /* A lookaside file always has its application_id set in the same
     * transaction as its first step, so objects without it are foreign. */
    st = storage_check_identity(app, ver, objects, msg, msglen);
    if (st != LOOKASIDE_OK)
        goto rollback;
    for (size_t i = 0; i < STORAGE_MIGRATION_COUNT; i++) {
        const struct storage_migration *m = &storage_migrations[i];
        if (m->version <= ver)
            continue;
        rc = sqlite3_exec(s->db, m->sql, NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            char what[64];
            snprintf(what, sizeof what, "migrating to schema version %d", m->version);
            st = storage_db_msg(s->db, rc, what, msg, msglen);
            goto rollback;
        }
    }
    char sql[96];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d; PRAGMA application_id = %d",
             STORAGE_SCHEMA_VERSION, STORAGE_APPLICATION_ID);
    rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        st = storage_db_msg(s->db, rc, "recording the schema version", msg, msglen);
        goto rollback;
    }
    return LOOKASIDE_OK;

rollback:
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return st;
}
