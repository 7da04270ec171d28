/* fuzz_storage.c - restore from a damaged database file.
 *
 * The input is the image of a database file (the seeds are real databases
 * written through the storage API; libFuzzer damages them). The target does
 * what lookaside-server does at start: storage_open, then registry_create,
 * which loads every service and backend and publishes the restored lists,
 * then a Watch-like read of each list, one weights round, the integrity
 * check and a clean close.
 *
 * Contract checked: storage_open either refuses the file (ECORRUPT, EIO,
 * ETOONEW) with a message or opens it; loads either fail with a status or
 * return values that keep the header's promises (NUL-terminated strings
 * within their limits); the registry restores or refuses without crashing,
 * and whatever it publishes decodes. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <grpc/grpc.h>

#include "fuzz_util.h"
#include "registry.h"
#include "storage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void write_file(const char *path, const uint8_t *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || (size > 0 && write(fd, data, size) != (ssize_t)size))
        fz_fail("cannot write %s", path);
    close(fd);
}

static void check_loads(storage *st)
{
    storage_service *svcs = NULL;
    storage_backend *bs = NULL;
    size_t ns = 0, nb = 0;
    if (storage_load_services(st, &svcs, &ns) == LOOKASIDE_OK) {
        for (size_t i = 0; i < ns; i++)
            if (strnlen(svcs[i].name, sizeof svcs[i].name) > STORAGE_SERVICE_MAX)
                fz_fail("load_services: name not terminated");
    } else if (svcs != NULL || ns != 0 || storage_errmsg(st)[0] == '\0') {
        fz_fail("load_services failed without clearing out or without a message");
    }
    if (storage_load_backends(st, &bs, &nb) == LOOKASIDE_OK) {
        for (size_t i = 0; i < nb; i++)
            if (strnlen(bs[i].service, sizeof bs[i].service) > STORAGE_SERVICE_MAX ||
                strnlen(bs[i].address, sizeof bs[i].address) > STORAGE_ADDRESS_MAX ||
                strnlen(bs[i].zone, sizeof bs[i].zone) > STORAGE_ZONE_MAX ||
                strnlen(bs[i].cred_hash, sizeof bs[i].cred_hash) > STORAGE_HASH_MAX)
                fz_fail("load_backends: a string not terminated within its limit");
    } else if (bs != NULL || nb != 0 || storage_errmsg(st)[0] == '\0') {
        fz_fail("load_backends failed without clearing out or without a message");
    }
    free(svcs);
    free(bs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_setup();
    char path[200];
    fz_db_path(path, sizeof path);
    write_file(path, data, size);

    storage *st = NULL;
    lookaside_status s = storage_open(path, &st);
    if (s != LOOKASIDE_OK) {
        if (st != NULL || storage_open_error()[0] == '\0')
            fz_fail("storage_open refused (%d) without a message or left a handle", (int)s);
        fz_unlink_db(path);
        return 0;
    }
    check_loads(st);

    loop *l = NULL;
    if (loop_create(&l) != LOOKASIDE_OK)
        abort();
    registry_config rc;
    registry_config_default(&rc);
    rc.max_backends = 64;
    rc.max_services = 64;
    registry *reg = NULL;
    if (registry_create(l, st, &rc, &reg) == LOOKASIDE_OK) {
        fz_check_published(reg);
        loop_once(l, 0);
        registry_publish_dirty(reg);
        fz_check_published(reg);
        registry_begin_shutdown(reg);
        registry_destroy(reg);
    }
    loop_destroy(l);
    (void)storage_integrity_check(st);
    storage_close(st);
    fz_unlink_db(path);
    return 0;
}
