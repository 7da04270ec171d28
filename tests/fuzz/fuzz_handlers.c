/* fuzz_handlers.c - one libFuzzer target per handler group (fuzz_sets.h),
 * chosen at compile time with -DFUZZ_SET=<index>. Each drives the real
 * handlers of its group through fuzz_server.c. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_server.h"
#include "fuzz_sets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const fz_set *set = &FZ_SETS[FUZZ_SET];
    return fz_server_run(set->paths, set->n, set->flags, data, size);
}
