/* util.h - small pure helpers shared by server, client and tools: clocks,
 * address parsing and name validation. No allocation; thread-safe. */
#ifndef LA_UTIL_H
#define LA_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lookaside_status.h"

int64_t clock_mono_ms(void);
int64_t clock_mono_us(void);
int64_t clock_mono_ns(void);
int64_t clock_wall_ms(void);

/* A parsed backend address. */
typedef struct la_addr {
    int family;          /* AF_INET or AF_INET6 */
    uint8_t ip[16];      /* network order; first 4 bytes for IPv4 */
    uint16_t port;       /* host order, 1..65535 */
} la_addr;

/* Longest canonical address text, "[v6]:65535" and the NUL. */
#define LA_ADDR_STRLEN 56

/* Parses "a.b.c.d:port" or "[v6]:port" (port 1..65535, numeric hosts only).
 * Returns LOOKASIDE_OK or LOOKASIDE_EINVAL. */
lookaside_status addr_parse(const char *s, la_addr *out);
/* Canonical text ("1.2.3.4:80", "[::1]:80") into buf (LA_ADDR_STRLEN). */
void addr_format(const la_addr *a, char *buf, size_t len);

/* Service names: 1..253 bytes of [A-Za-z0-9._-], starting with a letter or
 * digit, labels of at most 63 bytes. Zones: same alphabet, 0..63 bytes. */
bool name_valid(const char *s);
bool zone_valid(const char *s);

/* Parses a whole base-10 integer in [lo, hi] (command-line flags). False on
 * an empty string, trailing bytes, overflow or out of range. */
bool util_parse_ll(const char *s, long long lo, long long hi, long long *out);

/* Reads a whole small file (certificates, keys): a malloc'd NUL-terminated
 * copy (caller frees; wipe it first when it holds a key) with its length in
 * *len (may be NULL), or NULL when it cannot be opened, is empty or is
 * larger than max bytes. */
char *util_read_file(const char *path, size_t max, size_t *len);

/* Hex-encoded FNV-1a 64 of the bytes, for stable printable tokens. */
void hash_hex64(const void *data, size_t len, char out[17]);

#endif
