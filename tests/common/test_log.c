/* log: the per-site rate limit (with its "suppressed" summaries), the JSON
 * format's escaping and stable keys, and line safety of the text format.
 * Time comes from a fake clock, so nothing here depends on timing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static int64_t g_now;
static int64_t fake_now(void) { return g_now; }

static FILE *g_file;

static int setup(void **state)
{
    (void)state;
    g_file = tmpfile();
    assert_non_null(g_file);
    g_now = 1000000;
    log_set_clock(fake_now);
    log_set_fd(fileno(g_file));
    log_set_level(LA_LOG_INFO);
    log_set_format(LA_LOG_TEXT);
    log_set_rate_limit(5);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    log_set_fd(2);
    log_set_clock(NULL);
    log_set_rate_limit(LOG_RATE_DEFAULT);
    log_set_format(LA_LOG_TEXT);
    fclose(g_file);
    return 0;
}

/* Everything written so far (caller frees). */
static char *slurp(void)
{
    long n = lseek(fileno(g_file), 0, SEEK_END);
    assert_true(n >= 0);
    char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(pread(fileno(g_file), b, (size_t)n, 0), n);
    b[n] = '\0';
    return b;
}

static size_t count(const char *hay, const char *needle)
{
    size_t k = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        k++;
    return k;
}

/* One call site for the flood tests: the same format every time. */
static void refuse(int i) { log_warn("rpc", "refused call %d from a hostile peer", i); }
static void other(int i) { log_warn("rpc", "another site %d", i); }

static void test_flood_is_bounded_and_counted(void **state)
{
    (void)state;
    for (int i = 0; i < 10000; i++)
        refuse(i);
    char *out = slurp();
    assert_int_equal(count(out, "\n"), 5);
    assert_int_equal(count(out, "refused call"), 5);
    free(out);
    /* Next second: the summary comes first, then the new record. */
    g_now += 1000;
    refuse(10000);
    out = slurp();
    assert_int_equal(count(out, "\n"), 7);
    char *sum = strstr(out, "suppressed 9995 records (limit 5/s per call site), the first: "
                            "refused call 5 from a hostile peer\n");
    assert_non_null(sum);
    assert_non_null(strstr(sum, "refused call 10000"));
    free(out);
}

static void test_sites_have_their_own_budget(void **state)
{
    (void)state;
    for (int i = 0; i < 100; i++)
        refuse(i);
    for (int i = 0; i < 3; i++)
        other(i);
    char *out = slurp();
    assert_int_equal(count(out, "refused call"), 5);
    assert_int_equal(count(out, "another site"), 3);
    free(out);
}

static void test_stopped_flood_still_reported(void **state)
{
    (void)state;
    for (int i = 0; i < 50; i++)
        refuse(i);
    /* The flood stops; any later record, from another site, in a later
     * second writes the pending count. */
    g_now += 2500;
    other(0);
    char *out = slurp();
    assert_int_equal(count(out, "suppressed 45 records"), 1);
    assert_true(strstr(out, "suppressed 45") < strstr(out, "another site 0"));
    free(out);
    /* log_flush_suppressed writes what is pending without waiting. */
    for (int i = 0; i < 8; i++)
        other(i);
    log_flush_suppressed();
    log_flush_suppressed();   /* nothing pending: writes nothing */
    out = slurp();
    assert_int_equal(count(out, "suppressed 4 records"), 1);
    free(out);
}

static void test_rate_limit_off(void **state)
{
    (void)state;
    log_set_rate_limit(0);
    for (int i = 0; i < 200; i++)
        refuse(i);
    char *out = slurp();
    assert_int_equal(count(out, "\n"), 200);
    free(out);
}

static void test_explicit_key(void **state)
{
    (void)state;
    /* One helper format, two keys: each key gets its own budget. */
    static const char k1[] = "k1", k2[] = "k2";
    for (int i = 0; i < 20; i++) {
        log_msg_key(k1, LA_LOG_WARN, "rpc", "%s: %d", "a", i);
        log_msg_key(k2, LA_LOG_WARN, "rpc", "%s: %d", "b", i);
    }
    char *out = slurp();
    assert_int_equal(count(out, "rpc: a: "), 5);
    assert_int_equal(count(out, "rpc: b: "), 5);
    free(out);
}

static void test_json_escaping_and_keys(void **state)
{
    (void)state;
    log_set_format(LA_LOG_JSON);
    log_warn("rpc", "q\" b\\ nl\n tab\t ctl\x01 bad\xff utf8 \xc3\xa9 del\x7f end");
    char *out = slurp();
    assert_int_equal(count(out, "\n"), 1);
    assert_memory_equal(out, "{\"ts\":\"", 7);
    /* ts is an RFC 3339 UTC time with milliseconds. */
    assert_int_equal(out[7 + 4], '-');
    assert_int_equal(out[7 + 10], 'T');
    assert_memory_equal(out + 7 + 23, "Z\",", 3);
    assert_non_null(strstr(out, "\",\"level\":\"warn\",\"module\":\"rpc\",\"msg\":\"q\\\" b\\\\ nl\\u000a "
                                "tab\\u0009 ctl\\u0001 bad\\ufffd utf8 \xc3\xa9 del\\u007f end\"}\n"));
    free(out);
}

static void test_json_summary_fields(void **state)
{
    (void)state;
    log_set_format(LA_LOG_JSON);
    for (int i = 0; i < 7; i++)
        refuse(i);
    log_flush_suppressed();
    char *out = slurp();
    assert_int_equal(count(out, "\n"), 6);
    assert_non_null(strstr(out, "\"msg\":\"suppressed 2 records (limit 5/s per call site)\","
                                "\"suppressed\":2,\"sample\":\"refused call 5 from a hostile "
                                "peer\"}\n"));
    free(out);
}

static void test_long_records_stay_one_valid_line(void **state)
{
    (void)state;
    char big[5000];
    memset(big, '"', sizeof big - 1);   /* every byte needs escaping in JSON */
    big[sizeof big - 1] = '\0';
    log_set_format(LA_LOG_JSON);
    log_warn("rpc", "%s", big);
    log_set_format(LA_LOG_TEXT);
    log_warn("rpc", "x%s", big);
    char *out = slurp();
    assert_int_equal(count(out, "\n"), 2);
    char *nl = strchr(out, '\n');
    assert_true(nl - out <= 2048);
    assert_memory_equal(nl - 4, "\\\"\"}", 4);   /* cut between escapes, then closed */
    assert_true(strlen(nl + 1) <= 2048);
    free(out);
}

static void test_text_control_bytes_and_levels(void **state)
{
    (void)state;
    log_warn("rpc", "line1\nFAKE ERROR line2\r\x1b[31m");
    log_debug("rpc", "hidden %d", 1);
    log_set_level(LA_LOG_ERROR);
    log_warn("rpc", "hidden too");
    log_set_level(LA_LOG_INFO);
    char *out = slurp();
    assert_int_equal(count(out, "\n"), 1);
    assert_non_null(strstr(out, " WARN  rpc: line1?FAKE ERROR line2??[31m\n"));
    free(out);
    assert_int_equal(log_level_parse("warn"), LA_LOG_WARN);
    assert_int_equal(log_level_parse("loud"), -1);
    assert_int_equal(log_format_parse("json"), LA_LOG_JSON);
    assert_int_equal(log_format_parse("text"), LA_LOG_TEXT);
    assert_int_equal(log_format_parse("xml"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_flood_is_bounded_and_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sites_have_their_own_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stopped_flood_still_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_explicit_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_escaping_and_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_summary_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_records_stay_one_valid_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_control_bytes_and_levels, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
