/* consumer.c: what an application outside this tree compiles against an
 * installed liblookaside (tests/package/install_test.sh builds it with
 * pkg-config and with find_package). It prints the path of the object that
 * holds lookaside_version, so the test can tell which library it ran with
 * (the staged .so, or the executable itself when linked statically), and
 * checks that the library's and the header's versions are the one the build
 * system reported (EXPECTED_VERSION, from pkg-config --modversion or
 * lookaside_VERSION). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include <lookaside.h>

int main(void)
{
    Dl_info info;
    if (dladdr((void *)lookaside_version, &info) == 0 || info.dli_fname == NULL) {
        fprintf(stderr, "consumer: dladdr failed\n");
        return 1;
    }
    printf("lookaside_version from %s\n", info.dli_fname);
    printf("version %s\n", lookaside_version());
    if (strcmp(lookaside_version(), EXPECTED_VERSION) != 0 ||
        strcmp(LOOKASIDE_VERSION_STR, EXPECTED_VERSION) != 0) {
        fprintf(stderr, "consumer: library %s, header %s, package %s\n", lookaside_version(),
                LOOKASIDE_VERSION_STR, EXPECTED_VERSION);
        return 1;
    }
    if (strcmp(lookaside_status_str(LOOKASIDE_EINVAL), "ok") == 0) {
        fprintf(stderr, "consumer: lookaside_status_str is wrong\n");
        return 1;
    }
    lookaside_client_options opt;
    lookaside_client_options_init(&opt); /* no lb_target: refused */
    lookaside_client *c = NULL;
    lookaside_status st = lookaside_client_create(&opt, &c);
    if (st != LOOKASIDE_EINVAL || c != NULL) {
        fprintf(stderr, "consumer: create without lb_target gave %s\n", lookaside_status_str(st));
        return 1;
    }
    puts("consumer: ok");
    return 0;
}
