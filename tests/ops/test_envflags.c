/* server/envflags.c: LOOKASIDE_* variables become flags, flags win,
 * repeatable flags split, booleans, --help/--version never from the
 * environment, getopt_long prefixes count as given. */
#include <getopt.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "envflags.h"

static const struct option opts[] = {
    {"listen", required_argument, 0, 1},
    {"db", required_argument, 0, 2},
    {"discover", required_argument, 0, 3},
    {"dns-refresh-ms", required_argument, 0, 4},
    {"insecure", no_argument, 0, 5},
    {"log", optional_argument, 0, 6},
    {"help", no_argument, 0, 7},
    {"version", no_argument, 0, 8},
    {0, 0, 0, 0}};
static const char *const rep[] = {"discover", NULL};

static const char *const vars[] = {"T_LISTEN", "T_DB", "T_DISCOVER", "T_DNS_REFRESH_MS",
                                   "T_INSECURE", "T_LOG", "T_HELP", "T_VERSION"};

static int clear(void **st)
{
    (void)st;
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
    return 0;
}

/* Parses argv with getopt_long as main.c does and records what it saw. */
typedef struct seen {
    const char *listen, *db, *refresh;
    const char *discover[8];
    int n_discover, insecure, help, version;
} seen;

static int parse(int argc, char **argv, seen *s)
{
    memset(s, 0, sizeof *s);
    char **av;
    int ac = envflags_merge(opts, "T_", rep, argc, argv, &av);
    assert_true(ac >= argc);
    optind = 0;     /* glibc: full reinitialisation */
    int c;
    while ((c = getopt_long(ac, av, "", opts, NULL)) != -1) {
        switch (c) {
        case 1: s->listen = optarg; break;
        case 2: s->db = optarg; break;
        case 3: s->discover[s->n_discover++] = optarg; break;
        case 4: s->refresh = optarg; break;
        case 5: s->insecure++; break;
        case 7: s->help++; break;
        case 8: s->version++; break;
        default: return -1;
        }
    }
    return ac - optind;
}

static void test_env_supplies(void **st)
{
    (void)st;
    setenv("T_LISTEN", "0.0.0.0:7411", 1);
    setenv("T_DNS_REFRESH_MS", "2500", 1);
    setenv("T_INSECURE", "yes", 1);
    char *argv[] = {"prog", "--db", "/x.db", NULL};
    seen s;
    assert_int_equal(parse(3, argv, &s), 0);
    assert_string_equal(s.listen, "0.0.0.0:7411");
    assert_string_equal(s.refresh, "2500");
    assert_string_equal(s.db, "/x.db");
    assert_int_equal(s.insecure, 1);
    envflags_free();
}

static void test_flags_win(void **st)
{
    (void)st;
    setenv("T_LISTEN", "0.0.0.0:1", 1);
    setenv("T_DB", "/env.db", 1);
    setenv("T_DNS_REFRESH_MS", "9", 1);
    /* --listen=..., "--db" separate, and the unambiguous prefix --dns-r. */
    char *argv[] = {"prog", "--listen=127.0.0.1:0", "--db", "/flag.db", "--dns-r", "700", NULL};
    seen s;
    assert_int_equal(parse(6, argv, &s), 0);
    assert_string_equal(s.listen, "127.0.0.1:0");
    assert_string_equal(s.db, "/flag.db");
    assert_string_equal(s.refresh, "700");
    envflags_free();
}

static void test_repeatable(void **st)
{
    (void)st;
    setenv("T_DISCOVER", "  a=dns:///a:1\tb=dns://127.0.0.1:53/b:2\n c=dns:///c:3 ", 1);
    char *argv[] = {"prog", NULL};
    seen s;
    assert_int_equal(parse(1, argv, &s), 0);
    assert_int_equal(s.n_discover, 3);
    assert_string_equal(s.discover[0], "a=dns:///a:1");
    assert_string_equal(s.discover[1], "b=dns://127.0.0.1:53/b:2");
    assert_string_equal(s.discover[2], "c=dns:///c:3");
    envflags_free();
    /* One --discover on the command line replaces the whole variable. */
    char *argv2[] = {"prog", "--discover", "z=dns:///z:9", NULL};
    assert_int_equal(parse(3, argv2, &s), 0);
    assert_int_equal(s.n_discover, 1);
    assert_string_equal(s.discover[0], "z=dns:///z:9");
    envflags_free();
}

static void test_booleans_and_skips(void **st)
{
    (void)st;
    const char *falsy[] = {"", "0", "false", "No", "OFF"};
    char *argv[] = {"prog", NULL};
    seen s;
    for (size_t i = 0; i < 5; i++) {
        setenv("T_INSECURE", falsy[i], 1);
        assert_int_equal(parse(1, argv, &s), 0);
        assert_int_equal(s.insecure, 0);
        envflags_free();
    }
    /* Never from the environment: help, version, optional arguments;
     * an empty value is unset. */
    setenv("T_HELP", "1", 1);
    setenv("T_VERSION", "1", 1);
    setenv("T_LOG", "debug", 1);
    setenv("T_LISTEN", "", 1);
    assert_int_equal(parse(1, argv, &s), 0);
    assert_int_equal(s.help + s.version, 0);
    assert_null(s.listen);
    char **av;
    assert_int_equal(envflags_merge(opts, "T_", rep, 1, argv, &av), 1);
    assert_ptr_equal(av, argv);
    envflags_free();
}

static void test_positional_kept(void **st)
{
    (void)st;
    /* Arguments after "--" are not options: an env value still applies,
     * and the positional argument reaches the caller. */
    setenv("T_DB", "/env.db", 1);
    char *argv[] = {"prog", "--", "--db", NULL};
    seen s;
    assert_int_equal(parse(3, argv, &s), 1);
    assert_string_equal(s.db, "/env.db");
    envflags_free();
}

static void test_name(void **st)
{
    (void)st;
    char buf[64];
    assert_string_equal(envflags_name("LOOKASIDE_", "max-streams-per-peer", buf, sizeof buf),
                        "LOOKASIDE_MAX_STREAMS_PER_PEER");
    assert_string_equal(envflags_name("LOOKASIDE_", "db", buf, 8), "LOOKASI");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_env_supplies, clear, clear),
        cmocka_unit_test_setup_teardown(test_flags_win, clear, clear),
        cmocka_unit_test_setup_teardown(test_repeatable, clear, clear),
        cmocka_unit_test_setup_teardown(test_booleans_and_skips, clear, clear),
        cmocka_unit_test_setup_teardown(test_positional_kept, clear, clear),
        cmocka_unit_test_setup_teardown(test_name, clear, clear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
