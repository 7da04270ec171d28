/* pbio.h - the only code that converts between gRPC byte buffers and
 * protobuf-c messages (server and client both use it).
 *
 * Thread-safe (no shared state). */
#ifndef LA_PBIO_H
#define LA_PBIO_H

#include <stddef.h>

#include <grpc/byte_buffer.h>
#include <protobuf-c/protobuf-c.h>

#include "lookaside_status.h"

/* Packs msg into a new byte buffer (one slice). Returns NULL on allocation
 * failure. The caller owns the buffer (grpc_byte_buffer_destroy). */
grpc_byte_buffer *pbio_pack(const ProtobufCMessage *msg);

/* Unpacks bb as a message of type desc. Refuses buffers over max_bytes with
 * LOOKASIDE_ETOOBIG, undecodable bytes with LOOKASIDE_EINVAL. On success
 * *out is owned by the caller: free with protobuf_c_message_free_unpacked.
 * bb stays owned by the caller. */
lookaside_status pbio_unpack(const ProtobufCMessageDescriptor *desc, grpc_byte_buffer *bb,
                             size_t max_bytes, ProtobufCMessage **out);

#endif
