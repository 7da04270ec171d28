/* pbio.h - the only code that converts between gRPC byte buffers and
 * protobuf-c messages (server and client both use it).
 *
 * Thread-safe (no shared state). */
#ifndef LA_PBIO_H
#define LA_PBIO_H

#include <stddef.h>
#include <stdint.h>

#include <grpc/byte_buffer.h>
#include <protobuf-c/protobuf-c.h>

#include "lookaside_status.h"

/* Packs msg into a new byte buffer (one slice). Returns NULL on allocation
 * failure. The caller owns the buffer (grpc_byte_buffer_destroy). */
grpc_byte_buffer *pbio_pack(const ProtobufCMessage *msg);

/* Unpacks bb as a message of type desc. Refuses buffers over max_bytes with
 * LOOKASIDE_ETOOBIG, undecodable bytes with LOOKASIDE_EINVAL, and a string
 * field (at any depth) holding a NUL byte with LOOKASIDE_EINVAL: protobuf-c
 * hands strings out NUL-terminated, so "hostile\0evil" would silently become
 * "hostile" and two different names would compare equal. On success *out
 * is owned by the caller: free with protobuf_c_message_free_unpacked. bb
 * stays owned by the caller. */
lookaside_status pbio_unpack(const ProtobufCMessageDescriptor *desc, grpc_byte_buffer *bb,
                             size_t max_bytes, ProtobufCMessage **out);

/* The same, and on LOOKASIDE_EINVAL writes why into why[0..why_len) (a
 * NUL-terminated sentence naming the field, e.g. "register.service: a
 * string must not contain a NUL byte", or "undecodable lookaside.v1.LoadReport
 * message"). why may be NULL. */
lookaside_status pbio_unpack_why(const ProtobufCMessageDescriptor *desc, grpc_byte_buffer *bb,
                                 size_t max_bytes, ProtobufCMessage **out, char *why,
                                 size_t why_len);

/* Walks the wire bytes data[0..len) of a message of type desc without
 * decoding it and checks every length-delimited field the descriptor types
 * as a string (recursing into sub-messages and map entries; unknown fields
 * and bytes fields are skipped). Returns LOOKASIDE_OK when no string holds
 * a NUL byte; LOOKASIDE_EINVAL for the first one that does, with its dotted
 * path ("register.service", "utilization.key") written to field[0..len),
 * or when the bytes are not well-formed wire format or nest deeper than 64
 * levels (field then says so). field may be NULL. */
lookaside_status pbio_check_strings(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                                    size_t len, char *field, size_t field_len);

#endif
