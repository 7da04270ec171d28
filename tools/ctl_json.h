/* ctl_json.h - a tiny streaming JSON writer for lookasidectl's --json output.
 *
 * Everything printed comes from the balancer or the command line, so every
 * string is treated as hostile: json_write_string escapes quotes,
 * backslashes, control bytes, DEL, U+2028/U+2029, and replaces bytes that are
 * not valid UTF-8 with U+FFFD, so the output is always valid JSON in UTF-8.
 * Not thread-safe (one writer per thread). */
#ifndef CTL_JSON_H
#define CTL_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Writes s as a quoted JSON string to f; NULL writes null. */
void json_write_string(FILE *f, const char *s);

#define JSON_MAX_DEPTH 16

/* A writer over f. Nesting deeper than JSON_MAX_DEPTH is a programming error
 * (abort). Keys may be NULL inside arrays and at the top level. */
typedef struct json_writer {
    FILE *f;
    int depth;
    bool first[JSON_MAX_DEPTH];
} json_writer;

void json_init(json_writer *w, FILE *f);
void json_obj_begin(json_writer *w, const char *key);
void json_obj_end(json_writer *w);
void json_arr_begin(json_writer *w, const char *key);
void json_arr_end(json_writer *w);
void json_str(json_writer *w, const char *key, const char *v);
void json_u64(json_writer *w, const char *key, uint64_t v);
void json_i64(json_writer *w, const char *key, int64_t v);
/* Non-finite numbers have no JSON form: they are written as null. */
void json_num(json_writer *w, const char *key, double v);
void json_bool(json_writer *w, const char *key, bool v);
void json_null(json_writer *w, const char *key);
/* Ends a top-level value: writes a newline (one object per line). */
void json_end_line(json_writer *w);

#endif
