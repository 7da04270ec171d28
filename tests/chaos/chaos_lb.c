/* chaos.lb_restart_* and chaos.backend_kill: the real binaries under load.
 *
 *   chaos_lb lb_restart SECONDS
 *     Three lookaside-demo-backends, lookaside-demo-client at 200 calls/s.
 *     The balancer is SIGKILLed and restarted SECONDS later on the same port
 *     and database. Checks: the client fails no call (it exits 0 with
 *     --max-fail-fraction 0), and every list the balancer answers with (a
 *     poller calls GetServerList every ~20 ms, reconnecting within 100 ms)
 *     lists all three live backends. Prints how long after the restart all
 *     three were SERVING again (a figure, not a check).
 *
 *   chaos_lb backend_kill
 *     Three backends, the client at 300 calls/s with a per-call trace; one
 *     backend is SIGKILLed mid-run. Checks: every failed call was on the
 *     killed backend and was in flight on it: started before the kill, or
 *     within 20 ms after it -- the window in which the client cannot know
 *     yet (the kernel's RST has to reach its transport), which also covers
 *     the trace's start times being derived when a call is recorded.
 *     Measured: one failed call per run, started 3-8 ms after the kill. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chaos_util.h"

static long long realtime_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void start_backends(proc *b, size_t n, const char *lb)
{
    for (size_t i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "b%zu", i + 1);
        chaos_backend_start(&b[i], lb, name);
    }
    chaos_wait_serving(lb, n);
}

static int lb_restart(int outage_s)
{
    char dir[256], db[300], summary[512];
    h_tmpdir(dir);
    snprintf(db, sizeof db, "%s/lb.db", dir);
    proc lb, b[3], cl;
    chaos_server_start(&lb, db, 0, NULL);
    int port = lb.port;
    start_backends(b, 3, lb.addr);

    proc *bp[3] = {&b[0], &b[1], &b[2]};
    chaos_poller poll;
    chaos_poller_start(&poll, lb.addr, bp, 3);
    /* 3 s before the kill, the outage, 8 s after the restart. */
    double secs = 3 + outage_s + 8;
    chaos_client_start(&cl, lb.addr, 200, secs, NULL);
    h_sleep_ms(3000);

    h_kill(&lb);
    long long killed = h_now_ms();
    fprintf(stderr, "balancer SIGKILLed; restarting in %d s\n", outage_s);
    h_sleep_ms(outage_s * 1000);
    chaos_server_start(&lb, db, port, NULL);
    chaos_poller_mark(&poll);
    fprintf(stderr, "balancer back on port %d after %lld ms\n", port, h_now_ms() - killed);

    int rc = chaos_client_wait(&cl, secs, summary, sizeof summary);
    chaos_poller_stop(&poll);
    fprintf(stderr, "client: exit %d, %s\n", rc, summary);
    fprintf(stderr, "lists: %ld answered, %ld unanswered (balancer away), %ld incomplete%s%s\n",
            poll.answered, poll.unanswered, poll.incomplete, poll.incomplete ? ": first " : "",
            poll.first_missing);
    fprintf(stderr, "all 3 backends SERVING again %lld ms after the restart%s\n",
            poll.all_serving_after_ms,
            poll.all_serving_after_ms < 0 ? " (never, within the run)" : "");
    if (rc != 0)
        chaos_fail("the client failed calls across a %d s balancer outage: %s", outage_s,
                   summary);
    if (poll.incomplete > 0)
        chaos_fail("%ld answered lists lacked a live backend: %s", poll.incomplete,
                   poll.first_missing);
    CHAOS_CHECK(poll.answered > 0);
    for (int i = 0; i < 3; i++)
        h_stop(&b[i]);
    if (h_server_teardown(&lb, dir) != 0)
        chaos_fail("the restarted balancer did not shut down cleanly");
    chaos_cleanup();
    return 0;
}

static int backend_kill(void)
{
    char dir[256], db[300], trace[300], summary[512];
    h_tmpdir(dir);
    snprintf(db, sizeof db, "%s/lb.db", dir);
    snprintf(trace, sizeof trace, "%s/trace.csv", dir);
    proc lb, b[3], cl;
    chaos_server_start(&lb, db, 0, NULL);
    start_backends(b, 3, lb.addr);
    double secs = 6;
    chaos_client_start(&cl, lb.addr, 300, secs, trace);
    h_sleep_ms(3000);
    char victim[64];
    snprintf(victim, sizeof victim, "%s", b[1].addr);
    long long kill_us = realtime_us();
    h_kill(&b[1]);
    int rc = chaos_client_wait(&cl, secs, summary, sizeof summary);
    fprintf(stderr, "client: exit %d, %s\n", rc, summary);

    FILE *f = fopen(trace, "r");
    if (f == NULL)
        chaos_fail("no trace from the client");
    char line[512];
    long calls = 0, failed = 0, in_flight = 0, on_victim = 0, bad = 0;
    char first_bad[512] = "";
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        long long start, lat;
        char backend[64], addr[64];
        int status;
        if (sscanf(line, "%lld,%63[^,],%63[^,],%d,%lld", &start, backend, addr, &status, &lat) !=
                5 &&
            sscanf(line, "%lld,,%63[^,],%d,%lld", &start, addr, &status, &lat) != 4)
            continue;   /* the header */
        calls++;
        bool victim_call = strcmp(addr, victim) == 0;
        on_victim += victim_call;
        if (victim_call && start <= kill_us && start + lat >= kill_us)
            in_flight++;
        if (status == 0)
            continue;
        failed++;
        fprintf(stderr, "failed call: %s started %+.1f ms from the kill, %.1f ms long, status %d\n",
                addr, (double)(start - kill_us) / 1000.0, (double)lat / 1000.0, status);
        /* Not in flight: another backend, or sent long after the client
         * could have known (see the header comment). */
        if (!victim_call || start > kill_us + 20000) {
            if (bad++ == 0)
                snprintf(first_bad, sizeof first_bad, "%.300s (kill at %lld)", line, kill_us);
        }
    }
    fclose(f);
    fprintf(stderr,
            "%ld calls, %ld on the killed backend %s, %ld in flight on it at the kill, %ld "
            "failed, %ld of them not in flight on it\n",
            calls, on_victim, victim, in_flight, failed, bad);
    CHAOS_CHECK(calls > 0 && on_victim > 0);
    if (bad > 0)
        chaos_fail("%ld failed calls were not in flight on the killed backend; first: %s", bad,
                   first_bad);
    h_stop(&b[0]);
    h_stop(&b[2]);
    if (h_server_teardown(&lb, dir) != 0)
        chaos_fail("the balancer did not shut down cleanly");
    chaos_cleanup();
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    grpc_init();
    int rc = 2;
    if (argc == 3 && strcmp(argv[1], "lb_restart") == 0)
        rc = lb_restart(atoi(argv[2]));
    else if (argc == 2 && strcmp(argv[1], "backend_kill") == 0)
        rc = backend_kill();
    else
        fprintf(stderr, "usage: chaos_lb lb_restart SECONDS | backend_kill\n");
    grpc_shutdown();
    return rc;
}
