/* harness.h - integration-test helpers: start/stop real lookaside binaries
 * (by PID, 127.0.0.1, ephemeral ports) and a small blocking gRPC client on
 * gRPC core for driving them. Test code only.
 *
 * Every wait is bounded by a timeout; every process is stopped by PID. */
#ifndef LA_HARNESS_H
#define LA_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>

typedef struct proc {
    pid_t pid;
    int port;
    char addr[64];      /* "127.0.0.1:PORT" */
    char log[256];      /* stderr of the process */
} proc;

/* A fresh temporary directory (mkdtemp under /tmp); path into dir (256). */
void h_tmpdir(char *dir);
/* Recursively removes a temporary directory made by h_tmpdir. */
void h_rmdir(const char *dir);

/* Starts lookaside-server (path from env LOOKASIDE_SERVER or the build) with
 * --listen 127.0.0.1:0 --db db plus extra args (NULL-terminated). Waits up to
 * 10 s for "listening on". Returns 0 or -1. */
int h_server_start(proc *p, const char *db, const char *const *extra);
/* Starts any program with args (NULL-terminated argv, argv[0] = path);
 * stderr+stdout to p->log. If wait_for is non-NULL waits up to 10 s for that
 * text in the log. */
int h_spawn(proc *p, const char *const *argv, const char *wait_for);
/* SIGTERM, wait up to 10 s, then SIGKILL. Returns the exit status (or 128+sig). */
int h_stop(proc *p);
/* SIGKILL and reap. */
void h_kill(proc *p);
/* True if text occurs in the process log. */
bool h_log_has(const proc *p, const char *text);
/* Prints the log to stderr (on failures). */
void h_log_dump(const proc *p);

/* ---- client ---- */
typedef struct tclient tclient;
tclient *tc_connect(const char *addr);
/* With the given credentials (borrowed) and channel args (may be NULL):
 * TLS tests. */
tclient *tc_connect_creds(const char *addr, grpc_channel_credentials *creds,
                          const grpc_channel_args *args);
/* A client whose HTTP/2 receive window stays small (no BDP probing, 16 KiB
 * lookahead), so a server writing faster than it reads is held back: for
 * tests of slow consumers. */
tclient *tc_connect_slow_reader(const char *addr);
/* A client whose TCP connection comes from source_ip (e.g. "127.0.0.2";
 * any 127/8 address works on Linux loopback) to addr "127.0.0.1:PORT":
 * another peer host for the server's per-peer limits. NULL on failure. */
tclient *tc_connect_from(const char *addr, const char *source_ip);
void tc_close(tclient *c);

/* Unary call. resp may be NULL (only the status). details: malloc'd or NULL. */
grpc_status_code tc_unary(tclient *c, const char *method, const ProtobufCMessage *req,
                          const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                          char **details, int timeout_ms);
/* Unary call with raw request bytes. */
grpc_status_code tc_unary_raw(tclient *c, const char *method, const void *bytes, size_t len,
                              char **details, int timeout_ms);

typedef struct tstream tstream;
/* Opens a streaming call; for server streaming pass the request in first
 * (sent and half-closed at once); for bidi pass NULL. */
tstream *ts_open(tclient *c, const char *method, const ProtobufCMessage *first);
int ts_send(tstream *s, const ProtobufCMessage *m);          /* 0 ok, -1 failed */
int ts_send_raw(tstream *s, const void *bytes, size_t len);
int ts_close_send(tstream *s);
/* 1: got a message (*out, free with protobuf_c_message_free_unpacked),
 * 0: stream ended, -1: timeout. */
int ts_recv(tstream *s, const ProtobufCMessageDescriptor *d, ProtobufCMessage **out,
            int timeout_ms);
/* Waits for the final status (up to timeout_ms; -1 when none came). */
int ts_status(tstream *s, int timeout_ms, grpc_status_code *code, char **details);
void ts_cancel(tstream *s);
void ts_destroy(tstream *s);

/* ---- fixtures shared by the integration tests ---- */
/* Opens a LoadReporter.Report stream on c and sends the Register message
 * (zone and credential may be NULL). Does not wait for the ack. NULL if the
 * send failed. */
tstream *h_report_open(tclient *c, const char *service, const char *address, const char *zone,
                       const char *credential);
/* Like h_report_open, then waits (5 s) for the first ack; copies its token
 * into token_out (50 bytes) when non-NULL. NULL when no ack came. */
tstream *h_report_registered(tclient *c, const char *service, const char *address,
                             const char *zone, char *token_out);
/* Stops a server started by a fixture, dumps its log when it did not exit
 * 0, removes its log and the fixture's temporary directory. Returns 0 when
 * the server exited 0. */
int h_server_teardown(proc *p, const char *dir);

/* Milliseconds since an arbitrary epoch (monotonic). */
long long h_now_ms(void);
void h_sleep_ms(int ms);

#endif
