/* rpc.h - the server's gRPC call layer: the only server code that calls
 * grpc_call_start_batch or touches byte buffers (through common/pbio).
 *
 * A method table (rpc_method) maps a full method path to handlers. The layer
 * accepts calls, decodes requests (refusing oversize ones with
 * RESOURCE_EXHAUSTED, and undecodable ones or ones with a NUL inside a
 * string field with INVALID_ARGUMENT naming the field, logged), bounds the
 * calls of each peer host and how long a call may wait for its first
 * message (rpc_options), keeps at most one send and one receive in flight
 * per call, and tells the handler once, through on_close, that the call is
 * over. Every call is accepted before its first message arrives, so no call
 * sits in gRPC core where these bounds cannot see it.
 *
 * Threads: everything runs on the loop thread.
 * Ownership: the layer owns rpc_call; a handler may keep a pointer to it
 * until its on_close returns, never after. Received messages passed to
 * handlers are owned by the layer and freed when the handler returns. */
#ifndef LA_RPC_H
#define LA_RPC_H

#include <stdbool.h>
#include <stddef.h>

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>

#include "lookaside_status.h"
#include "auth.h"
#include "loop.h"

typedef struct rpc_server rpc_server;
typedef struct rpc_call rpc_call;

typedef enum rpc_kind {
    RPC_UNARY,          /* request -> response */
    RPC_SERVER_STREAM,  /* request -> stream of responses */
    RPC_BIDI            /* stream <-> stream */
} rpc_kind;

typedef struct rpc_method {
    const char *path;  /* "/package.Service/Method" */
    rpc_kind kind;
    const ProtobufCMessageDescriptor *req_desc;
    size_t max_req_bytes;
    void *ctx;         /* handler context, rpc_method_ctx() */
    /* Unary and server-streaming: the decoded request. Bidi: req is NULL;
     * messages arrive through on_message. */
    void (*on_start)(rpc_call *c, const ProtobufCMessage *req);
    /* Bidi only: one decoded message; msg NULL means the peer half-closed.
     * The next receive is posted after this returns unless the call has
     * been finished. */
    void (*on_message)(rpc_call *c, const ProtobufCMessage *msg);
    /* A send finished (ok false: the call is breaking). */
    void (*on_send_done)(rpc_call *c, bool ok);
    /* The call is over (peer gone, cancelled, or finished by us). */
    void (*on_close)(rpc_call *c, bool cancelled);
    /* Checked before on_start when the server has an authorizer. Scoped
     * permissions (watch, report) use the request's "service" field. Bidi
     * methods are not checked here: their handler calls rpc_authorize once
     * the first message names the service. UNSET means admin. */
    auth_perm perm;
} rpc_method;

typedef struct rpc_options {
    size_t max_message_bytes;    /* transport-wide receive cap */
    int accepts_per_method;      /* outstanding accepts per method */
    size_t max_streams_per_peer; /* live streaming calls per peer host; 0 = no cap */
    /* Live calls of every kind per peer host; 0 = no cap. */
    size_t max_calls_per_peer;
    /* Calls per peer host that have not yet delivered their first message
     * (the request, or a stream's first message); 0 = no cap. These are the
     * cheap ones to open by the thousand and never use. */
    size_t max_waiting_per_peer;
    /* A call whose first message has not arrived this long after it was
     * accepted ends with DEADLINE_EXCEEDED ("no request message within");
     * 0 = no limit. Later silence on a stream is the handler's business. */
    int64_t request_timeout_ms;
    auth *auth;                  /* borrowed; NULL: no admission or permission checks */
} rpc_options;

/* Creates a server (not started) with methods[0..n) registered. The method
 * table must outlive the server. */
lookaside_status rpc_server_create(loop *l, const rpc_options *opt, const rpc_method *methods,
                                   size_t n, rpc_server **out);
/* Binds HOST:PORT (port 0: ephemeral). Returns the bound port, 0 on error. */
int rpc_server_bind(rpc_server *s, const char *addr);
/* Same with the given credentials (borrowed; e.g. TLS from server/tls.h). */
int rpc_server_bind_creds(rpc_server *s, const char *addr, grpc_server_credentials *creds);
lookaside_status rpc_server_start(rpc_server *s);
/* Finishes every live call with UNAVAILABLE, stops accepting, waits (by
 * running the loop, bounded by grace_ms) for calls to end, then cancels the
 * rest and closes every connection (idle ones included, so an idle client
 * does not hold shutdown for the whole grace). Idempotent. */
void rpc_server_shutdown(rpc_server *s, int64_t grace_ms);
/* Frees everything; call after rpc_server_shutdown. NULL: no-op. */
void rpc_server_destroy(rpc_server *s);
size_t rpc_server_live_calls(const rpc_server *s);

/* Sends one message (with initial metadata if not sent yet). Returns false
 * when a send is already in flight or the call is over. */
bool rpc_send(rpc_call *c, const ProtobufCMessage *msg);
/* Same, with an already packed buffer (the call takes a copy; the buffer's
 * slices are reference counted so this is cheap for fan-out). */
bool rpc_send_buffer(rpc_call *c, grpc_byte_buffer *bb);
bool rpc_send_in_flight(const rpc_call *c);
/* Unary convenience: message + OK status in one batch. */
void rpc_reply(rpc_call *c, const ProtobufCMessage *msg);
/* Unary convenience with a packed buffer (copied, cheap). */
void rpc_reply_buffer(rpc_call *c, grpc_byte_buffer *bb);
/* Ends the call with status and message (logged when not OK). If a send is
 * in flight the status follows it. Further sends fail. Idempotent. */
void rpc_finish(rpc_call *c, grpc_status_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same for a refusal expressed as a lookaside_status: the gRPC code
 * comes from the one mapping (la_status_to_grpc in common/status.c), so
 * every handler answers the same condition with the same code. The message
 * is logged (WARN) and sent as the status details; name the offending field
 * in it. st must not be LOOKASIDE_OK. */
void rpc_fail(rpc_call *c, lookaside_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool rpc_finished(const rpc_call *c);

void rpc_set_user(rpc_call *c, void *user);
void *rpc_user(const rpc_call *c);
void *rpc_method_ctx(const rpc_call *c);
/* The loop the call's server runs on (for handler timers). */
loop *rpc_loop(const rpc_call *c);
const char *rpc_method_path(const rpc_call *c);
/* "ipv4:127.0.0.1:45678" etc.; valid until on_close returns. */
const char *rpc_peer(const rpc_call *c);
/* The peer's host part (no port), for per-peer limits. */
const char *rpc_peer_host(const rpc_call *c);

/* Authorization (server/auth.h). rpc_authorize: true when the call's peer
 * holds perm (for service; NULL = for some service, "*" = for every
 * service) or the server has no
 * authorizer; otherwise finishes the call with UNAUTHENTICATED or
 * PERMISSION_DENIED, logged with identity and method, and returns false. */
bool rpc_authorize(rpc_call *c, auth_perm perm, const char *service);
/* What the peer presented; NULL when the server has no authorizer. */
const auth_peer *rpc_auth_peer(const rpc_call *c);
/* The peer's identity for logs and ownership ("" = anonymous). */
const char *rpc_identity(const rpc_call *c);
/* A token presented inside a message (Register.credential) replaces the
 * metadata one for this call's later checks. */
void rpc_auth_add_token(rpc_call *c, const char *token);

#endif
