/* demo_echo.h - the demo's echo method (lookaside.demo.v1.Echo/Echo), shared
 * by lookaside-demo-backend and lookaside-demo-client: its name and the
 * conversions between its messages and gRPC byte buffers.
 *
 * Thread-safe (no shared state). */
#ifndef DEMO_ECHO_H
#define DEMO_ECHO_H

#include <stddef.h>
#include <stdint.h>

#include <grpc/byte_buffer.h>

#include "lookaside_status.h"

#define DEMO_ECHO_METHOD "/lookaside.demo.v1.Echo/Echo"

/* Longest request or reply the demo accepts. */
#define DEMO_ECHO_MAX_BYTES 65536

/* Packs EchoRequest{message}. NULL on allocation failure; the caller owns
 * the buffer (grpc_byte_buffer_destroy). */
grpc_byte_buffer *demo_echo_pack_request(const char *message);

/* Reads EchoRequest.message from bb (owned by the caller) into a new string
 * the caller frees with free(). LOOKASIDE_EINVAL for undecodable bytes,
 * LOOKASIDE_ETOOBIG, LOOKASIDE_ENOMEM. */
lookaside_status demo_echo_read_request(grpc_byte_buffer *bb, char **message);

/* Packs EchoReply{message, backend, queued_us}. NULL on allocation failure. */
grpc_byte_buffer *demo_echo_pack_reply(const char *message, const char *backend,
                                       int64_t queued_us);

/* Reads EchoReply.backend from bb into buf (truncated to n - 1 bytes).
 * LOOKASIDE_EINVAL for undecodable bytes or an empty backend name. */
lookaside_status demo_echo_read_reply(grpc_byte_buffer *bb, char *buf, size_t n);

#endif
