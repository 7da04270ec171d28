/* channel.h - the one place liblookaside creates gRPC channels, and the
 * application's channel settings (credentials and channel args) it applies
 * to them.
 *
 * A la_chan_cfg is what the application asked for one kind of channel (the
 * balancer's, or the backends'): credentials (NULL: insecure) and channel
 * args (copied). It is filled once at create time and read-only afterwards,
 * so any thread may open channels with it.
 *
 * Credentials lifetime. The options only borrow the application's
 * grpc_channel_credentials, and gRPC 1.51's C API offers no function that
 * takes a reference on them. A channel does hold one (its arguments keep the
 * credentials object), so la_chan_cfg_init creates one lazy "keeper" channel
 * with them that never connects: it pins the credentials until
 * la_chan_cfg_free, and the application may release its own reference as
 * soon as the create function returns. */
#ifndef LA_CHANNEL_H
#define LA_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/grpc.h>

#include "lookaside_status.h"

typedef struct la_chan_cfg {
    grpc_channel_credentials *creds; /* NULL: insecure; pinned by keeper */
    grpc_channel *keeper;            /* holds a reference on creds */
    grpc_channel_args args;          /* deep copy of the application's args */
} la_chan_cfg;

/* Copies args (NULL: none; strings and pointer values are duplicated) and
 * pins creds (NULL: insecure). grpc_init must have been called.
 * LOOKASIDE_ENOMEM, or LOOKASIDE_EINVAL for an arg without a key or a
 * pointer arg without a vtable. On failure *cfg is left empty. */
lookaside_status la_chan_cfg_init(la_chan_cfg *cfg, grpc_channel_credentials *creds,
                                  const grpc_channel_args *args);

/* Drops the copies and the pin. Idempotent; a zeroed cfg is fine. */
void la_chan_cfg_free(la_chan_cfg *cfg);

/* What a channel is for: the library's own args differ. */
typedef enum la_chan_kind {
    LA_CHAN_BACKEND,  /* one backend ("ipv4:ip:port"): pick_first */
    LA_CHAN_FALLBACK, /* the DNS fallback target: round_robin and a service
                       * config selecting it */
    LA_CHAN_BALANCER, /* Watch/Report streams to the balancer: a fixed HTTP/2
                       * receive window (see LA_BALANCER_WINDOW) */
} la_chan_kind;

/* The balancer channel's HTTP/2 stream receive window, bytes. gRPC's BDP
 * probing would grow a channel's window (to megabytes) while lists stream
 * in fast; a Watch stream wants the opposite: when the client falls behind,
 * the balancer should be held back by flow control so that what the client
 * reads next is close to the latest list (the server coalesces to the
 * latest version while a send is blocked). BDP probing is turned off and
 * the window fixed at this size (a few typical lists; a bigger list still
 * goes through, the window only limits how much is unread at once). */
#define LA_BALANCER_WINDOW (64 * 1024)

/* Fills v (room for at least cfg's args + LA_CHAN_OWN_ARGS) with the args
 * a channel of this kind is opened with: the application's args first and
 * unchanged, then the library's own, each only when the application did not
 * set the same key (so the application can override any of them):
 * reconnect backoff between backoff_initial and backoff_max ms, each
 * connection attempt given max(backoff_max, 2 s); for LA_CHAN_FALLBACK
 * round_robin; for LA_CHAN_BALANCER GRPC_ARG_HTTP2_BDP_PROBE = 0 and
 * GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES = LA_BALANCER_WINDOW. The entries
 * point into cfg and static strings: valid while cfg is. cfg NULL: no
 * application args. Returns the number of entries. */
#define LA_CHAN_OWN_ARGS 5
size_t la_channel_args(const la_chan_cfg *cfg, la_chan_kind kind, uint32_t backoff_initial,
                       uint32_t backoff_max, grpc_arg *v);

/* Opens a channel on target with cfg's credentials and la_channel_args.
 * cfg NULL: insecure, no application args. NULL on failure. */
grpc_channel *la_channel_open(const la_chan_cfg *cfg, const char *target, la_chan_kind kind,
                              uint32_t backoff_initial, uint32_t backoff_max);

#endif
