#include "ctl_json.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>

#include "ctl_text.h"

void json_write_string(FILE *f, const char *str)
{
    if (str == NULL) {
        fputs("null", f);
        return;
    }
    const char *s = str;
    fputc('"', f);
    while (*s) {
        uint32_t cp = 0;
        int n = text_utf8_seq(s, &cp);
        if (n == 0) {
            fputs("\\ufffd", f);
            s++;
            continue;
        }
        switch (cp) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\b': fputs("\\b", f); break;
        case '\f': fputs("\\f", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            /* DEL and the JavaScript line separators are valid JSON raw, but
             * escaping them keeps the output safe to paste and to eval. */
            if (cp < 0x20 || cp == 0x7f || cp == 0x2028 || cp == 0x2029)
                fprintf(f, "\\u%04" PRIx32, cp);
            else
                fwrite(s, 1, (size_t)n, f);
        }
        s += n;
    }
    fputc('"', f);
}

void json_init(json_writer *w, FILE *f)
{
    w->f = f;
    w->depth = 0;
    w->first[0] = true;
}

/* Separator and key before a value at the current depth. */
static void prefix(json_writer *w, const char *key)
{
    if (!w->first[w->depth])
        fputc(',', w->f);
    w->first[w->depth] = false;
    if (key) {
        json_write_string(w->f, key);
        fputc(':', w->f);
    }
}

static void begin(json_writer *w, const char *key, char c)
{
    prefix(w, key);
    fputc(c, w->f);
    if (w->depth + 1 >= JSON_MAX_DEPTH)
        abort();
    w->first[++w->depth] = true;
}

static void end(json_writer *w, char c)
{
    if (w->depth == 0)
        abort();
    w->depth--;
    fputc(c, w->f);
}

void json_obj_begin(json_writer *w, const char *key) { begin(w, key, '{'); }
void json_obj_end(json_writer *w) { end(w, '}'); }
void json_arr_begin(json_writer *w, const char *key) { begin(w, key, '['); }
void json_arr_end(json_writer *w) { end(w, ']'); }

void json_str(json_writer *w, const char *key, const char *v)
{
    prefix(w, key);
    json_write_string(w->f, v);
}

void json_u64(json_writer *w, const char *key, uint64_t v)
{
    prefix(w, key);
    fprintf(w->f, "%" PRIu64, v);
}

void json_i64(json_writer *w, const char *key, int64_t v)
{
    prefix(w, key);
    fprintf(w->f, "%" PRId64, v);
}

void json_num(json_writer *w, const char *key, double v)
{
    prefix(w, key);
    if (isfinite(v))
        fprintf(w->f, "%.15g", v);   /* %g never prints a bare "." or "inf" here */
    else
        fputs("null", w->f);
}

void json_bool(json_writer *w, const char *key, bool v)
{
    prefix(w, key);
    fputs(v ? "true" : "false", w->f);
}

void json_null(json_writer *w, const char *key)
{
    prefix(w, key);
    fputs("null", w->f);
}

void json_end_line(json_writer *w)
{
    fputc('\n', w->f);
    w->depth = 0;
    w->first[0] = true;
}
