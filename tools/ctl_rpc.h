/* ctl_rpc.h - lookasidectl's blocking gRPC client. This is the only file of
 * the tool that calls gRPC core (its C API changes between versions).
 *
 * Single-threaded: one connection, one call at a time. Deadlines are
 * absolute times on clock_mono_ms() (common/util.h). */
#ifndef CTL_RPC_H
#define CTL_RPC_H

#include <stdbool.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* Why a call did not succeed. */
typedef struct ctl_status {
    int code;            /* a grpc_status_code */
    bool unreachable;    /* no connection to the balancer could be made */
    bool bad_file;       /* a --tls-* file could not be read (a usage error) */
    char message[512];   /* the server's message or ours; raw, not terminal-safe */
} ctl_status;

typedef struct ctl_conn ctl_conn;

/* Transport security of the connection. All NULL: plaintext. ca set: TLS,
 * verifying the balancer against that CA file (PEM), with cert/key as the
 * client certificate when given (mTLS), and server_name as the name to
 * verify instead of the target's host. token: sent as "authorization:
 * Bearer TOKEN" on every call (also over plaintext, e.g. to a loopback
 * balancer). */
typedef struct ctl_security {
    const char *ca, *cert, *key, *server_name, *token;
} ctl_security;

/* Process-wide gRPC setup and teardown; call once each, from main. */
void ctl_rpc_init(void);
void ctl_rpc_shutdown(void);

/* Opens a channel to target ("host:port" or any gRPC target) secured as sec
 * says (NULL: plaintext) and waits until it is connected, it fails (a
 * refused TLS handshake fails too), or deadline_ms passes. Returns 0 with
 * *out owned by the caller (ctl_close), or -1 with st->unreachable set and
 * st->code UNAVAILABLE (failed) or DEADLINE_EXCEEDED (timed out); an
 * unreadable certificate file is -1 with unreachable false and code
 * INVALID_ARGUMENT. */
int ctl_connect(const char *target, const ctl_security *sec, int64_t deadline_ms, ctl_conn **out,
                ctl_status *st);
/* Closes the connection; NULL is a no-op. */
void ctl_close(ctl_conn *c);

/* A unary call of method ("/pkg.Service/Method") with req. Returns 0 with
 * *resp owned by the caller (protobuf_c_message_free_unpacked), or -1 with
 * st filled (st->unreachable is false: the server or the transport answered
 * with a status). */
int ctl_unary(ctl_conn *c, const char *method, const ProtobufCMessage *req,
              const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
              int64_t deadline_ms, ctl_status *st);

/* Called for each message of a stream (owned by the reader, valid during
 * the call); returns true to keep reading. */
typedef bool (*ctl_msg_fn)(void *arg, const ProtobufCMessage *msg);
/* Polled at least every 50 ms and after each message; true stops the stream. */
typedef bool (*ctl_stop_fn)(void *arg);

/* A server-streaming call: sends req, then hands each message to on_msg
 * until on_msg or stop says to stop (the call is cancelled; returns 0) or
 * the server ends the stream (returns -1 with st filled; st->code may be OK
 * when the server finished it normally). */
int ctl_stream(ctl_conn *c, const char *method, const ProtobufCMessage *req,
               const ProtobufCMessageDescriptor *msg_desc, ctl_msg_fn on_msg, ctl_stop_fn stop,
               void *arg, ctl_status *st);

/* Canonical name of a gRPC status code ("NOT_FOUND"); "UNKNOWN_CODE" when out
 * of range. */
const char *ctl_status_name(int code);

#endif
