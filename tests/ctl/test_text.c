/* Unit tests for lookasidectl's output helpers: the JSON string escaper and
 * writer (hostile strings must always give valid JSON), terminal-safe text
 * and table alignment. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_json.h"
#include "ctl_text.h"
#include "json_check.h"

/* Runs fn(f, arg) into a memory stream and returns the text (malloc'd). */
static char *capture(void (*fn)(FILE *, const void *), const void *arg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    fn(f, arg);
    fclose(f);
    return buf;
}

static void put_json_string(FILE *f, const void *arg) { json_write_string(f, arg); }

static char *esc(const char *s) { return capture(put_json_string, s); }

static void expect_esc(const char *in, const char *want)
{
    char *got = esc(in);
    assert_string_equal(got, want);
    assert_true(json_check(got));
    free(got);
}

static void test_escape_basic(void **state)
{
    (void)state;
    expect_esc("web", "\"web\"");
    expect_esc("", "\"\"");
    expect_esc("a\"b", "\"a\\\"b\"");
    expect_esc("a\\b", "\"a\\\\b\"");
    expect_esc("/", "\"/\"");
    expect_esc("\b\f\n\r\t", "\"\\b\\f\\n\\r\\t\"");
    expect_esc("\x01\x1f\x7f", "\"\\u0001\\u001f\\u007f\"");
    expect_esc("\x1b[2J", "\"\\u001b[2J\"");
    char *n = esc(NULL);
    assert_string_equal(n, "null");
    free(n);
}

static void test_escape_utf8(void **state)
{
    (void)state;
    /* Valid multibyte text passes through. */
    expect_esc("z\xc3\xbcrich \xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\x98\x80",
               "\"z\xc3\xbcrich \xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\x98\x80\"");
    /* JavaScript line separators are escaped. */
    expect_esc("a\xe2\x80\xa8" "b\xe2\x80\xa9", "\"a\\u2028b\\u2029\"");
    /* Invalid UTF-8 becomes U+FFFD, one per bad byte. */
    expect_esc("\xff", "\"\\ufffd\"");
    expect_esc("a\x80z", "\"a\\ufffdz\"");                 /* stray continuation */
    expect_esc("\xc3", "\"\\ufffd\"");                     /* truncated at the end */
    expect_esc("\xc3(", "\"\\ufffd(\"");                   /* bad continuation */
    expect_esc("\xc0\xaf", "\"\\ufffd\\ufffd\"");          /* overlong '/' */
    expect_esc("\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\""); /* overlong, 3 bytes */
    expect_esc("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""); /* surrogate U+D800 */
    expect_esc("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* > U+10FFFF */
}

/* Every byte string of length 1..2 (and random longer ones) escapes to
 * valid JSON. */
static void test_escape_exhaustive(void **state)
{
    (void)state;
    char s[3] = {0};
    for (int a = 1; a < 256; a++) {
        s[0] = (char)a;
        for (int b = 0; b < 256; b++) {
            s[1] = (char)b;
            char *out = esc(s);
            assert_true(json_check(out));
            free(out);
        }
    }
    unsigned seed = 12345;
    char buf[33];
    for (int i = 0; i < 20000; i++) {
        size_t n = 1 + (seed % 32);
        for (size_t k = 0; k < n; k++) {
            seed = seed * 1103515245u + 12345u;
            buf[k] = (char)(1 + (seed >> 16) % 255);
        }
        buf[n] = '\0';
        char *out = esc(buf);
        assert_true(json_check(out));
        free(out);
    }
}

static void write_doc(FILE *f, const void *arg)
{
    (void)arg;
    json_writer w;
    json_init(&w, f);
    json_obj_begin(&w, NULL);
    json_str(&w, "name", "w\"e\nb");
    json_u64(&w, "version", UINT64_MAX);
    json_i64(&w, "age", -1);
    json_num(&w, "x", 0.5);
    json_num(&w, "nan", NAN);
    json_num(&w, "inf", -INFINITY);
    json_bool(&w, "t", true);
    json_null(&w, "n");
    json_arr_begin(&w, "list");
    json_obj_begin(&w, NULL);
    json_str(&w, "k\x01", "v");
    json_obj_end(&w);
    json_obj_begin(&w, NULL);
    json_obj_end(&w);
    json_arr_end(&w);
    json_arr_begin(&w, "empty");
    json_arr_end(&w);
    json_obj_end(&w);
    json_end_line(&w);
    json_obj_begin(&w, NULL);
    json_obj_end(&w);
    json_end_line(&w);
}

static void test_writer(void **state)
{
    (void)state;
    char *out = capture(write_doc, NULL);
    assert_string_equal(out, "{\"name\":\"w\\\"e\\nb\",\"version\":18446744073709551615,"
                             "\"age\":-1,\"x\":0.5,\"nan\":null,\"inf\":null,\"t\":true,"
                             "\"n\":null,\"list\":[{\"k\\u0001\":\"v\"},{}],\"empty\":[]}\n{}\n");
    int lines = 0;
    assert_true(json_check_lines(out, &lines));
    assert_int_equal(lines, 2);
    free(out);
}

static void test_checker_rejects(void **state)
{
    (void)state;
    assert_false(json_check("{\"a\":1,}"));
    assert_false(json_check("{\"a\":\"x\ny\"}"));
    assert_false(json_check("\"\\x\""));
    assert_false(json_check("{} {}"));
    assert_false(json_check("[1,2"));
    assert_false(json_check("\"\xff\""));
    assert_false(json_check("01"));
    assert_true(json_check(" [1, -2.5e3, \"\\u00e9\", true, null, {}] \n"));
}

static void test_text_safe(void **state)
{
    (void)state;
    char *s = text_safe("web\x1b[31m\n\x7f\xff\xc2\x9b ok \xc3\xbc");
    assert_string_equal(s, "web\\x1b[31m\\x0a\\x7f\\xff\\xc2\\x9b ok \xc3\xbc");
    free(s);
    s = text_safe(NULL);
    assert_string_equal(s, "");
    free(s);
}

static void print_table(FILE *f, const void *arg)
{
    (void)arg;
    static const char *const hdr[] = {"NAME", "N", "LAST"};
    text_table *t = table_new(3, hdr);
    assert_non_null(t);
    assert_int_equal(table_cell(t, "a"), 0);
    assert_int_equal(table_cellf(t, "%d", 12345), 0);
    assert_int_equal(table_cell(t, "x"), 0);
    assert_int_equal(table_cell(t, "b\tc"), 0);          /* escaped: 6 columns */
    assert_int_equal(table_cell(t, "\xc3\xbc"), 0);      /* one column, two bytes */
    assert_int_equal(table_cell(t, "y"), 0);
    table_print(t, f, 2);
    table_free(t);
}

static void test_table(void **state)
{
    (void)state;
    char *out = capture(print_table, NULL);
    assert_string_equal(out, "  NAME    N      LAST\n"
                             "  a       12345  x\n"
                             "  b\\x09c  \xc3\xbc      y\n");
    free(out);
    table_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_basic),     cmocka_unit_test(test_escape_utf8),
        cmocka_unit_test(test_escape_exhaustive), cmocka_unit_test(test_writer),
        cmocka_unit_test(test_checker_rejects),  cmocka_unit_test(test_text_safe),
        cmocka_unit_test(test_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
