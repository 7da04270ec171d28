/* chaos_util.h - fixtures of the chaos suite: the demo backends and the demo
 * client as child processes, a poller that checks every list the balancer
 * serves, and the database check after a kill. Built on the integration
 * harness (tests/integration/harness.h: processes by PID, 127.0.0.1,
 * ephemeral ports, bounded waits).
 *
 * Failures print a message, stop every child this process started (by PID)
 * and exit 1. */
#ifndef LA_CHAOS_UTIL_H
#define LA_CHAOS_UTIL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "harness.h"

#define CHAOS_SERVICE "chaos"
#define CHAOS_MAX_BACKENDS 8

void chaos_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
#define CHAOS_CHECK(cond)                                                              \
    do {                                                                               \
        if (!(cond))                                                                   \
            chaos_fail("%s:%d: check failed: %s", __FILE__, __LINE__, #cond);          \
    } while (0)

/* Children started through these are stopped by chaos_fail and
 * chaos_cleanup. */
void chaos_track(proc *p);
void chaos_cleanup(void);

/* Starts lookaside-server on db; port 0 = ephemeral, else that port (a
 * restart on the same address). Extra flags as h_server_start. */
void chaos_server_start(proc *p, const char *db, int port, const char *const *extra);

/* A lookaside-demo-backend reporting to lb for CHAOS_SERVICE. Its address
 * ("127.0.0.1:PORT") is in p->addr once it listens. */
void chaos_backend_start(proc *p, const char *lb, const char *name);

/* lookaside-demo-client against lb at rate calls/s for secs seconds, one
 * line per call in trace (when not NULL). Does not wait. */
void chaos_client_start(proc *p, const char *lb, double rate, double secs, const char *trace);
/* Waits (bounded by secs + 30 s) for the client to exit; returns its exit
 * status and copies its "summary:" line into summary. */
int chaos_client_wait(proc *p, double secs, char *summary, size_t n);

/* Waits (10 s) until a GetServerList of CHAOS_SERVICE lists n backends whose
 * state is SERVING. */
void chaos_wait_serving(const char *lb, size_t n);

/* Polls GetServerList on lb every ~20 ms in a thread, reconnecting quickly
 * while the balancer is away, and records every answered list that lacks one
 * of the expected addresses. */
typedef struct chaos_poller {
    pthread_t th;
    char lb[64];
    char expect[CHAOS_MAX_BACKENDS][64];
    size_t n_expect;
    atomic_bool stop;
    /* results (read after chaos_poller_stop) */
    long answered, unanswered, incomplete;
    char first_missing[160];
    long long all_serving_after_ms;  /* since chaos_poller_mark; -1 never */
    _Atomic long long mark_ms;
} chaos_poller;

void chaos_poller_start(chaos_poller *p, const char *lb, proc *const *backends, size_t n);
/* Notes now as the moment the balancer came back, for the figure of how
 * long until every expected backend was SERVING (not RESTORED) again. */
void chaos_poller_mark(chaos_poller *p);
void chaos_poller_stop(chaos_poller *p);

#endif
