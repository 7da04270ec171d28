/* ctl.h - what lookasidectl's command files share: the parsed command line,
 * exit codes, and output helpers (ctl_out.c). Single-threaded. */
#ifndef CTL_H
#define CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "ctl_rpc.h"

/* Exit codes; part of the tool's interface (documented in --help). */
enum {
    CTL_EXIT_OK = 0,
    CTL_EXIT_RPC = 1,          /* the balancer answered with an error status */
    CTL_EXIT_USAGE = 2,        /* bad command line */
    CTL_EXIT_UNREACHABLE = 3,  /* no connection, or UNAVAILABLE */
    CTL_EXIT_NOT_FOUND = 4,    /* NOT_FOUND (unknown service or backend) */
    CTL_EXIT_NOT_SERVING = 5,  /* health: answered, but not SERVING */
    CTL_EXIT_UNAUTHENTICATED = 6, /* UNAUTHENTICATED: no identity the balancer knows */
    CTL_EXIT_DENIED = 7,       /* PERMISSION_DENIED: the identity lacks the permission */
};

typedef struct ctl_ctx {
    const char *lb;            /* balancer target */
    ctl_security sec;          /* --tls-*, --token */
    bool json;
    int timeout_ms;
    int64_t deadline_ms;       /* connect + unary calls, on clock_mono_ms() */
    const char *cmd;
    const char *const *args;   /* the command's positional arguments */
    int nargs;
    long count;                /* watch: stop after this many lists; 0 = no limit */
    long duration_ms;          /* watch: stop after this long; 0 = no limit */
} ctl_ctx;

/* Commands: each returns an exit code. Arguments were counted by main. */
int cmd_services(ctl_ctx *ctx);
int cmd_show(ctl_ctx *ctx);
int cmd_drain(ctl_ctx *ctx);
int cmd_undrain(ctl_ctx *ctx);
int cmd_weight(ctl_ctx *ctx);
int cmd_get(ctl_ctx *ctx);
int cmd_watch(ctl_ctx *ctx);
int cmd_health(ctl_ctx *ctx);

/* ---- ctl_out.c ---- */

/* Prints "lookasidectl: <message>" and a hint to stderr; returns
 * CTL_EXIT_USAGE. */
int ctl_usage_error(const ctl_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reports a failed connection or call: a line on stderr and, with --json, an
 * {"error":...} object on stdout (with the service when non-NULL). Returns
 * the exit code for st. */
int ctl_fail(const ctl_ctx *ctx, const ctl_status *st, const char *service);

/* Connects to ctx->lb within ctx->deadline_ms; on failure reports it and
 * returns the exit code (non-zero) with *out NULL. */
int ctl_open(const ctl_ctx *ctx, ctl_conn **out);

/* An enum value's proto name without prefix ("SERVING" for
 * BACKEND_STATE_SERVING with prefix "BACKEND_STATE_"); "UNKNOWN" when the
 * value has no name. */
const char *ctl_enum_name(const ProtobufCEnumDescriptor *d, int value, const char *prefix);
const char *ctl_backend_state(int v);
const char *ctl_backend_source(int v);
const char *ctl_list_state(int v);

/* "850ms", "4.2s", "3m07s", "2h05m"; "-" for a negative age. */
void ctl_fmt_age(int64_t ms, char *buf, size_t len);
/* RFC 3339 UTC with milliseconds; "-" for 0. */
void ctl_fmt_time(int64_t unix_ms, char *buf, size_t len);

/* Prints a lookaside.v1.ServerList (get, watch) as text or, with --json, as
 * one JSON object on one line. Flushes stdout. */
struct Lookaside__V1__ServerList;
void ctl_print_server_list(const ctl_ctx *ctx, const struct Lookaside__V1__ServerList *l);

#endif
