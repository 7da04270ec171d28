/* it_util.h - helpers for liblookaside's integration tests: the real
 * lookaside-server as a child process, echo backends as child processes
 * (this same test binary re-executed with --backend), and unary echo calls.
 *
 * Everything listens on 127.0.0.1 with ephemeral ports; every wait is
 * bounded; children are tracked by pid and stopped with SIGTERM (or
 * SIGKILL) + waitpid. */
#ifndef IT_UTIL_H
#define IT_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <grpc/grpc.h>

#include "echo_call.h"

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "CHECK FAILED %s:%d: %s: ", __FILE__, __LINE__, #cond);        \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fprintf(stderr, "\n");                                                         \
            it_cleanup();                                                                  \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

/* Stops every child still running (SIGKILL) and removes temp files. Called
 * by CHECK on failure and at the end of each test. */
void it_cleanup(void);

int64_t it_now_ms(void);
void it_sleep_ms(int ms);

/* ---- the balancer ---- */
typedef struct it_lb {
    pid_t pid;
    int port;
    char db[256];
    char log[256];
} it_lb;

/* Starts lookaside-server --listen 127.0.0.1:port (0: ephemeral) --db db
 * (a fresh temp file when db is NULL) and waits (10 s max) for its
 * "listening on" line. extra: more flags, NULL-terminated, may be NULL. */
bool it_lb_start(it_lb *lb, int port, const char *db, const char *const *extra);
/* SIGTERM + waitpid (5 s, then SIGKILL); returns the exit code. */
int it_lb_stop(it_lb *lb);
/* SIGKILL + waitpid. */
void it_lb_kill(it_lb *lb);
/* "127.0.0.1:PORT" */
void it_lb_target(const it_lb *lb, char *buf, size_t n);

/* ---- echo backends (child processes) ---- */
typedef struct it_backend {
    pid_t pid;
    int port;
    int out_fd;            /* the child's stdout */
    char name[32];
    char addr[32];         /* "127.0.0.1:PORT" */
    int64_t registered_ms; /* when its reporter was first acked (CLOCK_MONOTONIC) */
} it_backend;

/* Starts a backend named name serving /test.Echo/Echo on 127.0.0.1:0 and
 * reporting to lb_target for service (zone may be NULL; lb_target NULL: no
 * reporter). Waits (10 s) until it listens; with wait_registered also until
 * its reporter is registered. */
bool it_backend_start(it_backend *b, const char *name, const char *lb_target, const char *service,
                      const char *zone, bool wait_registered);
/* The same, reporting application_utilization |util| in every load: set
 * with lookaside_reporter_set_load when util > 0, from the load callback
 * when util < 0. */
bool it_backend_start_util(it_backend *b, const char *name, const char *lb_target,
                           const char *service, const char *zone, double util,
                           bool wait_registered);
/* Waits (timeout) for the "registered" line if not seen yet. */
bool it_backend_wait_registered(it_backend *b, int timeout_ms);
/* SIGTERM: the backend drains through its reporter (stop), then exits.
 * Puts the reporter's stop line ("stopped ok loads=N streams=M" or
 * "stopped timed out ...")
 * in buf and waits for the exit (bounded). True when the line came and the
 * child exited with 0 (sanitizer reports make it non-zero). */
bool it_backend_term(it_backend *b, char *buf, size_t n);
/* SIGKILL + waitpid. */
void it_backend_kill(it_backend *b);

/* Child side: runs a backend from argv (--backend NAME --lb T --service S
 * [--zone Z]); returns the exit code. */
int it_backend_main(int argc, char **argv);

#endif
