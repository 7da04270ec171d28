/* abi_compat.h - the 0.1.0 entry points that took no struct size, kept
 * exported for programs built against that header (lookaside.h's ABI rule),
 * and the struct sizes they imply. Not installed.
 *
 * In lookaside.h these names are macros that pass sizeof to the *_sized
 * functions; here they are declared (and in the .c files defined) with the
 * name in parentheses, which the preprocessor does not expand. */
#ifndef LA_ABI_COMPAT_H
#define LA_ABI_COMPAT_H

#include <stddef.h>
#include <string.h>

#include "lookaside.h"

/* Sizes of the 0.1.0 structs: everything before the first later member. */
#define LA_CLIENT_OPTIONS_V0 offsetof(lookaside_client_options, balancer_creds)
#define LA_REPORTER_OPTIONS_V0 offsetof(lookaside_reporter_options, balancer_creds)
#define LA_SERVICE_INFO_V0 offsetof(lookaside_service_info, heartbeats)
#define LA_BACKEND_INFO_V0 offsetof(lookaside_backend_info, held)
#define LA_REPORTER_INFO_V0 sizeof(lookaside_reporter_info)

void(lookaside_client_options_init)(lookaside_client_options *opt);
lookaside_status(lookaside_client_create)(const lookaside_client_options *opt,
                                          lookaside_client **out);
lookaside_status(lookaside_client_service_info)(lookaside_client *c, const char *service,
                                                lookaside_service_info *out);
lookaside_status(lookaside_client_backends)(lookaside_client *c, const char *service,
                                            lookaside_backend_info *out, size_t cap, size_t *n);
void(lookaside_reporter_options_init)(lookaside_reporter_options *opt);
lookaside_status(lookaside_reporter_create)(const lookaside_reporter_options *opt,
                                            lookaside_reporter **out);
void(lookaside_reporter_info_get)(lookaside_reporter *r, lookaside_reporter_info *out);

/* The smaller of two sizes: how much of a full struct the caller's holds. */
static inline size_t la_abi_min(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* The library's full struct (full_size) out to the caller's (size):
 * what both have is copied, the caller's extra bytes (a newer header's
 * members) are zeroed. */
static inline void la_abi_out(void *user, size_t size, const void *full, size_t full_size)
{
    memset(user, 0, size);
    memcpy(user, full, la_abi_min(size, full_size));
}

/* The caller's struct (size) in to the library's full one: members the
 * caller's older struct lacks are zero, i.e. their defaults. */
static inline void la_abi_in(void *full, size_t full_size, const void *user, size_t size)
{
    memset(full, 0, full_size);
    memcpy(full, user, la_abi_min(size, full_size));
}

#endif
