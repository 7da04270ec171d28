#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

int64_t clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
int64_t clock_mono_us(void) { return clock_mono_ns() / 1000; }
int64_t clock_mono_ms(void) { return clock_mono_ns() / 1000000; }

int64_t clock_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool parse_port(const char *p, uint16_t *out)
{
    if (*p == '\0' || strlen(p) > 5)
        return false;
    unsigned v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        v = v * 10 + (unsigned)(*p - '0');
    }
    if (v == 0 || v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

lookaside_status addr_parse(const char *s, la_addr *out)
{
    char host[64];
    const char *port;
    if (s == NULL || out == NULL)
        return LOOKASIDE_EINVAL;
    memset(out, 0, sizeof *out);
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (end == NULL || end[1] != ':' || (size_t)(end - s - 1) >= sizeof host)
            return LOOKASIDE_EINVAL;
        memcpy(host, s + 1, (size_t)(end - s - 1));
        host[end - s - 1] = '\0';
        port = end + 2;
        if (inet_pton(AF_INET6, host, out->ip) != 1)
            return LOOKASIDE_EINVAL;
        out->family = AF_INET6;
    } else {
        const char *colon = strrchr(s, ':');
        if (colon == NULL || (size_t)(colon - s) >= sizeof host)
            return LOOKASIDE_EINVAL;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
        port = colon + 1;
        if (inet_pton(AF_INET, host, out->ip) != 1)
            return LOOKASIDE_EINVAL;
        out->family = AF_INET;
    }
    if (!parse_port(port, &out->port))
        return LOOKASIDE_EINVAL;
    return LOOKASIDE_OK;
}

void addr_format(const la_addr *a, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN];
    if (a->family == AF_INET6) {
        inet_ntop(AF_INET6, a->ip, host, sizeof host);
        snprintf(buf, len, "[%s]:%u", host, (unsigned)a->port);
    } else {
        inet_ntop(AF_INET, a->ip, host, sizeof host);
        snprintf(buf, len, "%s:%u", host, (unsigned)a->port);
    }
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_';
}

static bool label_ok(const char *s, size_t n)
{
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        if (!name_char(s[i]))
            return false;
        if (s[i] == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if (++label > 63) {
            return false;
        }
    }
    return true;
}

bool name_valid(const char *s)
{
    if (s == NULL)
        return false;
    size_t n = strnlen(s, 254);
    if (n == 0 || n > 253)
        return false;
    char c = s[0];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
        return false;
    return label_ok(s, n);
}

bool zone_valid(const char *s)
{
    if (s == NULL)
        return false;
    size_t n = strnlen(s, 64);
    if (n > 63)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!name_char(s[i]))
            return false;
    return true;
}

void hash_hex64(const void *data, size_t len, char out[17])
{
    const unsigned char *p = data;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

bool util_parse_ll(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *s == '\0' || *end != '\0' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

char *util_read_file(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = malloc(max + 1);
    /* Reading one byte more than max tells "too big" from "exactly max". */
    size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
    fclose(f);
    if (buf == NULL || n == 0 || n > max) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}
