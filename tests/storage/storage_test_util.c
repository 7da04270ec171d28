#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage_test_util.h"

void st_tmp_make(st_tmp *t)
{
    snprintf(t->dir, sizeof t->dir, "/tmp/lookaside-storage-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->db, sizeof t->db, "%s/state.db", t->dir);
}

void st_tmp_remove(st_tmp *t)
{
    DIR *d = opendir(t->dir);
    if (d == NULL)
        return;
    struct dirent *e;
    /* Bounded: a test directory holds a handful of files. */
    for (int i = 0; i < 1000 && (e = readdir(d)) != NULL; i++) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", t->dir, e->d_name);
        if (unlink(p) != 0)
            rmdir(p);
    }
    closedir(d);
    rmdir(t->dir);
}

void st_file_patch(const char *path, long offset, const void *data, size_t len)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, offset, SEEK_SET), 0);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

void st_file_write(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

uint32_t st_file_be32(const char *path, long offset)
{
    unsigned char b[4];
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, offset, SEEK_SET), 0);
    assert_int_equal(fread(b, 1, 4, f), 4);
    fclose(f);
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

storage_backend st_backend(const char *service, const char *address, int seed)
{
    storage_backend b;
    memset(&b, 0, sizeof b);
    snprintf(b.service, sizeof b.service, "%s", service);
    snprintf(b.address, sizeof b.address, "%s", address);
    snprintf(b.zone, sizeof b.zone, "zone-%d", seed % 3);
    b.state = seed % 4;
    b.source = 1 + seed % 3;
    b.first_seen_ms = 1700000000000LL + seed;
    b.last_report_ms = seed % 2 ? 0 : 1700000001000LL + seed;
    snprintf(b.cred_hash, sizeof b.cred_hash, "%016x", (unsigned)seed * 2654435761u);
    b.weight_override = (uint32_t)(seed % 5);
    b.policy_weight = 0.25 * seed + 1.0 / 3.0;
    b.ramp_start_ms = seed % 2 ? 1700000002000LL + seed : 0;
    return b;
}

storage_load st_load(int seed)
{
    storage_load l;
    l.cpu = 0.01 * (seed % 100);
    l.mem = 0.5 + 1.0 / (seed + 3);
    l.app = 0.1 * (seed % 7);
    l.rps = 100.0 * seed + 0.125;
    l.eps = 0.5 * (seed % 11);
    l.in_flight = (uint32_t)seed * 7u;
    l.at_ms = 1700000003000LL + seed;
    return l;
}

void st_assert_backend_equal(const storage_backend *a, const storage_backend *b, int with_load)
{
    assert_string_equal(a->service, b->service);
    assert_string_equal(a->address, b->address);
    assert_string_equal(a->zone, b->zone);
    assert_int_equal(a->state, b->state);
    assert_int_equal(a->source, b->source);
    assert_true(a->first_seen_ms == b->first_seen_ms);
    assert_true(a->last_report_ms == b->last_report_ms);
    assert_string_equal(a->cred_hash, b->cred_hash);
    assert_int_equal(a->weight_override, b->weight_override);
    assert_true(a->policy_weight == b->policy_weight);
    assert_true(a->ramp_start_ms == b->ramp_start_ms);
    if (!with_load)
        return;
    assert_int_equal(a->has_load, b->has_load);
    if (!a->has_load)
        return;
    assert_true(a->load.cpu == b->load.cpu);
    assert_true(a->load.mem == b->load.mem);
    assert_true(a->load.app == b->load.app);
    assert_true(a->load.rps == b->load.rps);
    assert_true(a->load.eps == b->load.eps);
    assert_int_equal(a->load.in_flight, b->load.in_flight);
    assert_true(a->load.at_ms == b->load.at_ms);
}
