#include "json_check.h"

#include <stdlib.h>
#include <string.h>

typedef struct jp {
    const unsigned char *p;
    int depth;
} jp;

static bool value(jp *j);

static void ws(jp *j)
{
    while (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')
        j->p++;
}

static bool lit(jp *j, const char *word)
{
    size_t n = strlen(word);
    if (strncmp((const char *)j->p, word, n) != 0)
        return false;
    j->p += n;
    return true;
}

static bool hex4(jp *j)
{
    for (int i = 0; i < 4; i++) {
        unsigned char c = *j->p++;
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

/* One UTF-8 sequence (validity: lead/continuation shape, no overlongs or
 * surrogates). */
static bool utf8(jp *j)
{
    unsigned char c = *j->p;
    int n;
    unsigned v, min;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, v = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, v = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, v = c & 0x07, min = 0x10000;
    else
        return false;
    for (int i = 1; i < n; i++) {
        if ((j->p[i] & 0xc0) != 0x80)
            return false;
        v = (v << 6) | (j->p[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return false;
    j->p += n;
    return true;
}

static bool string(jp *j)
{
    if (*j->p++ != '"')
        return false;
    for (;;) {
        unsigned char c = *j->p;
        if (c == '"') {
            j->p++;
            return true;
        }
        if (c < 0x20)   /* raw control characters and the end of input */
            return false;
        if (c == '\\') {
            j->p++;
            c = *j->p++;
            if (c == 'u') {
                if (!hex4(j))
                    return false;
            } else if (!strchr("\"\\/bfnrt", c) || c == '\0') {
                return false;
            }
        } else if (c >= 0x80) {
            if (!utf8(j))
                return false;
        } else {
            j->p++;
        }
    }
}

static bool digits(jp *j)
{
    if (*j->p < '0' || *j->p > '9')
        return false;
    while (*j->p >= '0' && *j->p <= '9')
        j->p++;
    return true;
}

static bool number(jp *j)
{
    if (*j->p == '-')
        j->p++;
    if (*j->p == '0')
        j->p++;
    else if (!digits(j))
        return false;
    if (*j->p == '.') {
        j->p++;
        if (!digits(j))
            return false;
    }
    if (*j->p == 'e' || *j->p == 'E') {
        j->p++;
        if (*j->p == '+' || *j->p == '-')
            j->p++;
        if (!digits(j))
            return false;
    }
    return true;
}

static bool container(jp *j, char close, bool keys)
{
    j->p++;
    if (++j->depth > 64)
        return false;
    ws(j);
    if (*j->p == (unsigned char)close) {
        j->p++;
        j->depth--;
        return true;
    }
    for (;;) {
        ws(j);
        if (keys) {
            if (!string(j))
                return false;
            ws(j);
            if (*j->p++ != ':')
                return false;
        }
        if (!value(j))
            return false;
        ws(j);
        if (*j->p == ',') {
            j->p++;
            continue;
        }
        if (*j->p++ != (unsigned char)close)
            return false;
        j->depth--;
        return true;
    }
}

static bool value(jp *j)
{
    ws(j);
    switch (*j->p) {
    case '{': return container(j, '}', true);
    case '[': return container(j, ']', false);
    case '"': return string(j);
    case 't': return lit(j, "true");
    case 'f': return lit(j, "false");
    case 'n': return lit(j, "null");
    default: return number(j);
    }
}

bool json_check(const char *s)
{
    jp j = {(const unsigned char *)s, 0};
    if (!value(&j))
        return false;
    ws(&j);
    return *j.p == '\0';
}

bool json_check_lines(const char *s, int *lines)
{
    *lines = 0;
    while (*s) {
        const char *nl = strchr(s, '\n');
        size_t n = nl ? (size_t)(nl - s) : strlen(s);
        if (n > 0) {
            char *line = malloc(n + 1);
            memcpy(line, s, n);
            line[n] = '\0';
            bool ok = json_check(line);
            free(line);
            if (!ok)
                return false;
            (*lines)++;
        }
        s += n + (nl ? 1 : 0);
    }
    return true;
}
