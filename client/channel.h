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

/* Opens a channel on target with cfg's credentials and args. The library's
 * own args (reconnect backoff between backoff_initial and backoff_max ms,
 * each connection attempt given max(backoff_max, 2 s);
 * with round_robin, that policy and a service config selecting it) are
 * added only where the application's args do not set the same key, so the
 * application can override them. cfg NULL: insecure, no extra args. NULL on
 * failure. */
grpc_channel *la_channel_open(const la_chan_cfg *cfg, const char *target, bool round_robin,
                              uint32_t backoff_initial, uint32_t backoff_max);

#endif
