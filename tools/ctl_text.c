#include "ctl_text.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

int text_utf8_seq(const char *str, uint32_t *cp)
{
    const unsigned char *s = (const unsigned char *)str;
    unsigned char c = s[0];
    int n;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2, v = c & 0x1fu, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3, v = c & 0x0fu, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4, v = c & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)   /* also stops at the terminating NUL */
            return 0;
        v = (v << 6) | (s[i] & 0x3fu);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return n;
}

/* Walks s, writing the safe form into out (when non-NULL); returns its
 * length in bytes and, in *cols, its width in code points. */
static size_t safe_walk(const char *s, char *out, size_t *cols)
{
    size_t len = 0, w = 0;
    while (*s) {
        uint32_t cp = 0;
        int n = text_utf8_seq(s, &cp);
        /* C1 controls (U+0080..U+009F) act as escape codes on some terminals. */
        if (n == 0 || cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0)) {
            int raw = n == 0 ? 1 : n;
            for (int i = 0; i < raw; i++) {
                if (out)
                    snprintf(out + len, 5, "\\x%02x", (unsigned char)s[i]);
                len += 4;
                w += 4;
            }
            s += raw;
            continue;
        }
        if (out)
            memcpy(out + len, s, (size_t)n);
        len += (size_t)n;
        w++;
        s += n;
    }
    if (cols)
        *cols = w;
    return len;
}

char *text_safe(const char *s)
{
    if (s == NULL)
        s = "";
    size_t n = safe_walk(s, NULL, NULL);
    char *out = malloc(n + 1);
    if (out == NULL)
        return NULL;
    safe_walk(s, out, NULL);
    out[n] = '\0';
    return out;
}

void text_put(FILE *f, const char *s)
{
    char *safe = text_safe(s);
    fputs(safe ? safe : "?", f);
    free(safe);
}

struct text_table {
    size_t ncols;
    const char *const *headers;
    char **cells;      /* row-major, n_cells used */
    size_t n_cells, cap;
};

text_table *table_new(size_t ncols, const char *const *headers)
{
    text_table *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->ncols = ncols;
    t->headers = headers;
    return t;
}

int table_cell(text_table *t, const char *text)
{
    if (t->n_cells == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 32;
        char **c = realloc(t->cells, cap * sizeof *c);
        if (c == NULL)
            return -1;
        t->cells = c;
        t->cap = cap;
    }
    char *safe = text_safe(text);
    if (safe == NULL)
        return -1;
    t->cells[t->n_cells++] = safe;
    return 0;
}

int table_cellf(text_table *t, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return table_cell(t, buf);
}

/* Display width of an already safe cell: code points. */
static size_t width(const char *s)
{
    size_t cols = 0;
    safe_walk(s, NULL, &cols);
    return cols;
}

static void print_row(const text_table *t, FILE *f, int indent, const char *const *row,
                      const size_t *w)
{
    fprintf(f, "%*s", indent, "");
    for (size_t c = 0; c < t->ncols; c++) {
        const char *s = row[c] ? row[c] : "";
        fputs(s, f);
        if (c + 1 < t->ncols)   /* no trailing blanks after the last column */
            fprintf(f, "%*s", (int)(w[c] - width(s) + 2), "");
    }
    fputc('\n', f);
}

void table_print(const text_table *t, FILE *f, int indent)
{
    size_t *w = calloc(t->ncols, sizeof *w);
    const char **row = calloc(t->ncols, sizeof *row);
    if (w == NULL || row == NULL) {
        free(w);
        free(row);
        return;
    }
    for (size_t c = 0; c < t->ncols; c++)
        w[c] = width(t->headers[c]);
    for (size_t i = 0; i < t->n_cells; i++) {
        size_t cw = width(t->cells[i]);
        if (cw > w[i % t->ncols])
            w[i % t->ncols] = cw;
    }
    print_row(t, f, indent, t->headers, w);
    for (size_t i = 0; i < t->n_cells; i += t->ncols) {
        for (size_t c = 0; c < t->ncols; c++)
            row[c] = i + c < t->n_cells ? t->cells[i + c] : "";
        print_row(t, f, indent, row, w);
    }
    free(w);
    free(row);
}

void table_free(text_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n_cells; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}
