/* fuzz_server.h - runs the server's real handlers and registry on fuzz
 * input, without gRPC's transport.
 *
 * The handlers (balancer.c, report.c, admin.c, grpclb.c, health.c) only see
 * the call layer through rpc.h. fake_rpc.c implements rpc.h with the same
 * contract as server/rpc.c (decode with the method's descriptor and size
 * cap, one send in flight, finish after the send, on_close exactly once,
 * the call freed after on_close), but the events come from the fuzz input
 * instead of a completion queue: open a call with request bytes, deliver a
 * message, half-close, complete a send, cancel, run timers, restart the
 * server on the same database.
 *
 * Under the handlers everything is real: the registry on a real loop, with
 * storage on a temporary SQLite file, restored from it on a restart.
 *
 * Oracles (fz_fail on violation): every message a handler sends decodes with
 * the method's response type and obeys the protocol (lists of one Watch have
 * increasing versions and name the watched service; grpclb sends
 * initial_response first and never an empty server list; health statuses are
 * in range; Report acks count up), a status is a valid gRPC code with a
 * message when not OK, nothing is sent or finished after on_close, and every
 * backend registered before a clean restart is listed after it. Leaks and
 * memory errors are ASan's and LeakSanitizer's. */
#ifndef LA_FUZZ_SERVER_H
#define LA_FUZZ_SERVER_H

#include <stddef.h>
#include <stdint.h>

/* Runs one input against the methods whose paths are listed (a Report
 * method is always useful to populate the registry; list it explicitly).
 * flags FZ_AUTH: a policy-file authorizer (insecure mode, tokens for a
 * backend, a client, an admin and a register-any agent; see fuzz_server.c)
 * and FZ_OP_OPEN takes one more byte, the token the call presents. */
#define FZ_AUTH 1u
int fz_server_run(const char *const *paths, size_t npaths, unsigned flags, const uint8_t *data,
                  size_t size);

/* Opcodes of the script (first byte of each step, modulo FZ_OP_COUNT). The
 * corpus generator writes the same script. */
enum {
    FZ_OP_OPEN = 0,      /* u8 slot (ignored if busy), u8 method, [FZ_AUTH: u8 token],
                            blob request (ignored for bidi); the call comes from
                            127.0.0.(slot+1) */
    FZ_OP_MSG = 1,       /* u8 call, blob message (bidi) */
    FZ_OP_HALFCLOSE = 2, /* u8 call */
    FZ_OP_SEND_DONE = 3, /* u8 call, u8 ok (bit 0) */
    FZ_OP_CANCEL = 4,    /* u8 call */
    FZ_OP_TICK = 5,      /* u16 ms: advance the fake clock, registry_tick, deliver closes */
    FZ_OP_RESTART = 6,   /* clean shutdown, then a new registry on the same file */
    FZ_OP_COUNT
};
#define FZ_MAX_CALLS 16

#endif
