/* fuzz_util.h - shared pieces of the libFuzzer targets in tests/fuzz.
 *
 * fz_in reads a fuzz input as a small script: bytes, little-endian
 * integers and length-prefixed blobs. Reading past the end yields zeros and
 * empty blobs, so every input is a valid (possibly short) script and
 * mutations never make a script unreadable.
 *
 * fz_fail() reports a broken invariant and aborts, which libFuzzer records
 * as a crash with the input that caused it. */
#ifndef LA_FUZZ_UTIL_H
#define LA_FUZZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fz_in {
    const uint8_t *p;
    size_t n;
} fz_in;

uint8_t fz_u8(fz_in *in);
uint16_t fz_u16(fz_in *in);
/* A blob: u16 length, then that many bytes (fewer when the input ends).
 * *out points into the input. Returns the length. */
size_t fz_blob(fz_in *in, const uint8_t **out);
bool fz_done(const fz_in *in);

/* Copies a blob as a C string of at most cap-1 bytes (stops at a NUL). */
void fz_blob_str(fz_in *in, char *out, size_t cap);

void fz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Process-wide set-up every target needs, done on the first call (later
 * calls only return the directory): grpc_init, logging off unless
 * LOOKASIDE_FUZZ_LOG is set (the code under test logs every refusal), and a
 * private directory for database files. Returns that directory. */
const char *fz_setup(void);
/* A fresh database path in fz_setup's directory (unique per call), removed
 * with its -wal/-shm files by fz_unlink_db. */
void fz_db_path(char *out, size_t cap);
void fz_unlink_db(const char *path);

/* A fake clock for the registry (registry_config.mono_ms/wall_ms), so an
 * input decides how much time passes between its steps (evictions, restore
 * grace, self-preservation windows, heartbeats, retention) and replays the
 * same way. fz_clock_reset starts it at a fixed point; advance moves both. */
void fz_clock_reset(void);
void fz_clock_advance(int64_t ms);
int64_t fz_clock_mono(void);
int64_t fz_clock_wall(void);

/* Checks every service's current snapshot: its packed ServerList decodes,
 * carries the snapshot's version and name, and lists each address once and
 * in canonical form. */
struct registry;
void fz_check_published(struct registry *r);

#endif
