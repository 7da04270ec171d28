/* lbconn.h - the connection to the balancer, shared by the client's Watch
 * streams and the reporter's Report stream: the list of balancer targets,
 * one lazily created channel per target (with the application's balancer
 * credentials and args), and the retry rule for a stream.
 *
 * Retry rule. A stream that could not start or ended before the balancer
 * said anything moves to the next target at once; once every target has
 * failed in a row, the next try waits for the backoff (backoff.h: initial
 * doubling to max, by default 100 ms to a 1 s cap, jittered). A stream that
 * was answered and then ended retries the same target after the backoff,
 * which the answer had reset. The cap is short on purpose: a restarted
 * balancer keeps restored backends only for a grace window, so reporters
 * (and watchers) must be back within about a second.
 *
 * One la_lbconn per client or reporter (its channels); one la_lbretry per
 * stream (the client has one per watched service). Loop thread only, except
 * lbconn_init/lbconn_free. */
#ifndef LA_LBCONN_H
#define LA_LBCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/grpc.h>

#include "backoff.h"
#include "bgloop.h"
#include "call.h"
#include "channel.h"
#include "lookaside_status.h"

typedef struct la_lbconn {
    char **targets;
    size_t n;
    grpc_channel **ch; /* created on first use */
    la_chan_cfg cfg;
    uint32_t backoff_initial_ms;
    uint32_t backoff_max_ms;
    const char *who; /* "client" or "reporter", for logs */
} la_lbconn;

typedef struct la_lbretry {
    size_t index;       /* target in use */
    size_t round_fails; /* targets failed in a row */
    la_backoff backoff;
    int64_t retry_at_ms; /* 0: no retry pending */
    bool answered;       /* the current stream received a message */
} la_lbretry;

/* Splits "a,b, c" (gRPC targets) into trimmed, non-empty strings (caller
 * frees each and the array). LOOKASIDE_EINVAL for NULL or an empty entry. */
lookaside_status la_targets_split(const char *s, char ***out, size_t *n);

/* targets as in lookaside_client_options.lb_target; creds/args as in the
 * options (copied or pinned, channel.h). Zero backoff values take the
 * defaults (100, 1000). grpc_init must be in effect. LOOKASIDE_EINVAL,
 * LOOKASIDE_ENOMEM; on failure *l is empty (lbconn_free is still fine). */
lookaside_status lbconn_init(la_lbconn *l, const char *who, const char *targets,
                             grpc_channel_credentials *creds, const grpc_channel_args *args,
                             uint32_t backoff_initial_ms, uint32_t backoff_max_ms);
/* Destroys the channels (streams on them end with CANCELLED). */
void lbconn_close_channels(la_lbconn *l);
/* Everything; the channels must be closed or never opened. Idempotent. */
void lbconn_free(la_lbconn *l);

/* A retry state whose first try is due at now. */
void lbretry_init(la_lbretry *r, const la_lbconn *l, uint64_t seed, int64_t now);

/* Starts a stream of method on the current target (la_call_start's
 * arguments). Clears retry_at_ms and answered. On failure schedules the
 * retry itself and returns the error. */
lookaside_status lbconn_start(la_lbconn *l, la_lbretry *r, bgloop *loop, const char *method,
                              const ProtobufCMessage *first, bool half_close,
                              const la_call_handler *h, void *owner, int *live, la_call **out);

/* The stream received its first message: the balancer is back. */
void lbretry_answered(la_lbretry *r);

/* The stream ended (name: the service, for logs). Schedules the retry by the
 * rule above and logs: a stream that had been answered, or a refusal (any
 * code but UNAVAILABLE) at WARN; a balancer that is not there at DEBUG. */
void lbretry_ended(la_lbconn *l, la_lbretry *r, const char *name, grpc_status_code code,
                   const char *details, int64_t now);

/* The target of the current (or last) stream. */
const char *lbconn_target(const la_lbconn *l, const la_lbretry *r);

#endif
