/* ctl_text.h - terminal-safe text and aligned tables for lookasidectl's
 * human output.
 *
 * Strings from the balancer are hostile input: before they reach a terminal,
 * control bytes, DEL and invalid UTF-8 are shown as \xNN so a name cannot
 * move the cursor, clear the screen or break a table. Not thread-safe. */
#ifndef CTL_TEXT_H
#define CTL_TEXT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Length (1..4) of the valid UTF-8 sequence at s, or 0 when it is not one
 * (stray continuation, truncated, overlong, surrogate, past U+10FFFF). *cp
 * gets the code point. s must be NUL-terminated. */
int text_utf8_seq(const char *s, uint32_t *cp);

/* A malloc'd terminal-safe copy of s ("" for NULL); NULL only when out of
 * memory. The caller frees it. */
char *text_safe(const char *s);

/* Writes the terminal-safe form of s to f. */
void text_put(FILE *f, const char *s);

/* A table with a header row; columns are left-aligned to the widest cell and
 * separated by two spaces. */
typedef struct text_table text_table;

/* headers: ncols strings (static, trusted). Returns NULL when out of memory. */
text_table *table_new(size_t ncols, const char *const *headers);
/* Appends a cell to the current row (a new row starts after ncols cells).
 * The text is made terminal-safe. Returns 0, or -1 when out of memory. */
int table_cell(text_table *t, const char *text);
int table_cellf(text_table *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints the header and rows, each line prefixed by indent spaces. */
void table_print(const text_table *t, FILE *f, int indent);
void table_free(text_table *t);

#endif
