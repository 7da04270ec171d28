/* call.h - the thin call layer: the only code in liblookaside that starts
 * gRPC batches (grpc_call_start_batch); channels are created in channel.c.
 *
 * A la_call is one streaming RPC driven from a bgloop thread. The layer keeps
 * one tag per op kind (send, receive, status), so there is never more than
 * one batch of a kind in flight, keeps buffers and metadata alive until their
 * batch completes, converts messages with pbio, and re-arms the receive after
 * each message. The owner sees three callbacks; after la_call_release it sees
 * none and the call frees itself once its last batch completes.
 *
 * All functions run on the loop thread that owns the call's queue. */
#ifndef LA_CALL_H
#define LA_CALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>

#include "bgloop.h"
#include "lookaside_status.h"

typedef struct la_call la_call;

typedef struct la_call_handler {
    /* A message arrived (borrowed; valid during the callback). NULL: the
     * peer closed its side or the stream failed; on_status follows. */
    void (*on_recv)(void *owner, la_call *c, grpc_byte_buffer *msg);
    /* The last la_call_send (or the first message) was written, or not
     * (ok false: the stream is failing; on_status follows). */
    void (*on_sent)(void *owner, la_call *c, bool ok);
    /* The RPC ended. details is NUL-terminated, valid during the callback.
     * The owner normally calls la_call_release here. */
    void (*on_status)(void *owner, la_call *c, grpc_status_code code, const char *details);
} la_call_handler;

/* Starts a call of method ("/pkg.Service/Method", a static string) on ch,
 * its completions on loop's queue, with no deadline. first (may be NULL) is
 * sent with the initial metadata; half_close closes the sending side right
 * after it (server streaming). *live is incremented now and decremented when the call
 * is freed, so the owner knows when its queue is quiet. LOOKASIDE_ENOMEM or
 * LOOKASIDE_EIO (gRPC refused the batch). */
lookaside_status la_call_start(grpc_channel *ch, bgloop *loop, const char *method,
                               const ProtobufCMessage *first, bool half_close,
                               const la_call_handler *h, void *owner, int *live, la_call **out);

/* Sends msg. LOOKASIDE_ELIMIT while the previous send is in flight (wait for
 * on_sent), LOOKASIDE_ESHUTDOWN after half-close or status, LOOKASIDE_EIO. */
lookaside_status la_call_send(la_call *c, const ProtobufCMessage *msg);

/* True while a send is in flight. */
bool la_call_sending(const la_call *c);

/* Half-closes (after any send in flight). Idempotent. */
void la_call_half_close(la_call *c);

/* The owner lets go: cancels the RPC unless it already ended; no callback
 * runs after this. NULL: no-op. */
void la_call_release(la_call *c);

#endif
