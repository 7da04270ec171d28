/* echo_call.h - one unary call of /test.Echo/Echo, for liblookaside's
 * tests (the echo backends of it_util and fake_srv answer it). */
#ifndef ECHO_CALL_H
#define ECHO_CALL_H

#include <stddef.h>

#include <grpc/grpc.h>
#include <grpc/status.h>

/* One unary echo call on ch with a deadline of timeout_ms; reply (may be
 * NULL) gets the response's bytes. Uses a queue per calling thread. */
grpc_status_code it_echo(grpc_channel *ch, int timeout_ms, char *reply, size_t n);
/* Frees the calling thread's call queue; call before the thread ends. */
void it_echo_thread_done(void);

#endif
