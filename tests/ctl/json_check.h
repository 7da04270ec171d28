/* json_check.h - a strict JSON syntax checker for the tests of
 * lookasidectl's --json output (RFC 8259: one value, UTF-8, no trailing
 * commas, no raw control characters in strings). Test code only. */
#ifndef CTL_JSON_CHECK_H
#define CTL_JSON_CHECK_H

#include <stdbool.h>

/* True when s is exactly one JSON value, optionally surrounded by
 * whitespace (a trailing newline included). */
bool json_check(const char *s);

/* True when every non-empty line of s is one JSON value; *lines gets the
 * number of such lines. */
bool json_check_lines(const char *s, int *lines);

#endif
