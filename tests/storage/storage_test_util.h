/* storage_test_util.h - helpers shared by the storage tests: temporary
 * directories, raw file edits, sample records. */
#ifndef STORAGE_TEST_UTIL_H
#define STORAGE_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "storage.h"

/* A private directory under /tmp and a database path inside it. */
typedef struct st_tmp {
    char dir[64];
    char db[128];
} st_tmp;

/* mkdtemp under /tmp; fails the test on error. */
void st_tmp_make(st_tmp *t);
/* Removes every file in the directory, then the directory. */
void st_tmp_remove(st_tmp *t);

/* Writes len bytes at offset of an existing file (no truncation). */
void st_file_patch(const char *path, long offset, const void *data, size_t len);
/* Creates or truncates path with exactly len bytes of data. */
void st_file_write(const char *path, const void *data, size_t len);
/* Reads a big-endian 32-bit integer at offset (SQLite header fields). */
uint32_t st_file_be32(const char *path, long offset);

/* A backend with every field set from seed, so rows differ field by field. */
storage_backend st_backend(const char *service, const char *address, int seed);
/* A load report with every field set from seed. */
storage_load st_load(int seed);
/* Fails the test unless a and b hold the same persisted fields (and, when
 * with_load, the same load). */
void st_assert_backend_equal(const storage_backend *a, const storage_backend *b, int with_load);

#endif
