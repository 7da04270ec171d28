#include "chaos_util.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <grpc/grpc_security.h>

#include "lookaside/v1/lookaside.pb-c.h"

#ifndef CHAOS_BACKEND_BIN
#define CHAOS_BACKEND_BIN "lookaside-demo-backend"
#endif
#ifndef CHAOS_CLIENT_BIN
#define CHAOS_CLIENT_BIN "lookaside-demo-client"
#endif

#define MAX_TRACKED 32
static proc *g_tracked[MAX_TRACKED];
static size_t g_ntracked;

void chaos_track(proc *p)
{
    for (size_t i = 0; i < g_ntracked; i++)
        if (g_tracked[i] == p)
            return;
    if (g_ntracked < MAX_TRACKED)
        g_tracked[g_ntracked++] = p;
}

void chaos_cleanup(void)
{
    for (size_t i = 0; i < g_ntracked; i++) {
        if (g_tracked[i]->pid > 0)
            h_kill(g_tracked[i]);
        if (g_tracked[i]->log[0])
            unlink(g_tracked[i]->log);
    }
    g_ntracked = 0;
}

void chaos_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "CHAOS FAILED: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    for (size_t i = 0; i < g_ntracked; i++)
        if (g_tracked[i]->pid > 0) {
            fprintf(stderr, "---- last lines of %s (pid %d)\n", g_tracked[i]->log,
                    (int)g_tracked[i]->pid);
            char cmd[400];
            snprintf(cmd, sizeof cmd, "tail -15 %s >&2", g_tracked[i]->log);
            if (system(cmd) != 0)
                fprintf(stderr, "(no log)\n");
        }
    chaos_cleanup();
    exit(1);
}

void chaos_server_start(proc *p, const char *db, int port, const char *const *extra)
{
    const char *args[24];
    char listen[64];
    size_t n = 0;
    if (port > 0) {
        snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
        args[n++] = "--listen";   /* the later --listen wins over the harness's :0 */
        args[n++] = listen;
    }
    for (size_t i = 0; extra && extra[i] && n < 22; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    memset(p, 0, sizeof *p);
    if (h_server_start(p, db, args) != 0)
        chaos_fail("lookaside-server did not start on %s", port > 0 ? listen : "port 0");
    if (port > 0 && p->port != port)
        chaos_fail("lookaside-server listens on %d, not %d", p->port, port);
    chaos_track(p);
}

/* The HOST:PORT a demo program logged as "listening on HOST:PORT". */
static bool logged_addr(const proc *p, char *out, size_t n)
{
    FILE *f = fopen(p->log, "r");
    if (f == NULL)
        return false;
    char line[1024];
    bool found = false;
    while (!found && fgets(line, sizeof line, f) != NULL) {
        char *s = strstr(line, "listening on ");
        if (s) {
            s += strlen("listening on ");
            s[strcspn(s, " \r\n")] = '\0';
            snprintf(out, n, "%s", s);
            found = true;
        }
    }
    fclose(f);
    return found;
}

void chaos_backend_start(proc *p, const char *lb, const char *name)
{
    const char *argv[] = {CHAOS_BACKEND_BIN, "--listen", "127.0.0.1:0", "--lb", lb, "--service",
                          CHAOS_SERVICE, "--name", name, "--slots", "32", "--service-ms", "1",
                          NULL};
    memset(p, 0, sizeof *p);
    if (h_spawn(p, argv, "listening on") != 0)
        chaos_fail("backend %s did not start", name);
    chaos_track(p);
    if (!logged_addr(p, p->addr, sizeof p->addr))
        chaos_fail("backend %s: no address in its log", name);
}

void chaos_client_start(proc *p, const char *lb, double rate, double secs, const char *trace)
{
    char r[32], d[32];
    snprintf(r, sizeof r, "%.0f", rate);
    snprintf(d, sizeof d, "%.1f", secs);
    const char *argv[24] = {CHAOS_CLIENT_BIN, "--lb", lb, "--service", CHAOS_SERVICE, "--rate", r,
                            "--duration-s", d, "--max-fail-fraction", "0", "--quiet",
                            "--timeout-ms", "3000", "--wait-ready-ms", "10000"};
    size_t n = 16;
    if (trace) {
        argv[n++] = "--trace";
        argv[n++] = trace;
    }
    argv[n] = NULL;
    memset(p, 0, sizeof *p);
    if (h_spawn(p, argv, NULL) != 0)
        chaos_fail("demo client did not start");
    chaos_track(p);
}

int chaos_client_wait(proc *p, double secs, char *summary, size_t n)
{
    long long until = h_now_ms() + (long long)(secs * 1000) + 30000;
    int st = 0, rc = -1;
    while (h_now_ms() < until) {
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
            p->pid = 0;
            rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            break;
        }
        h_sleep_ms(50);
    }
    if (rc < 0)
        chaos_fail("demo client still running %.0f s after its end", secs + 30);
    summary[0] = '\0';
    FILE *f = fopen(p->log, "r");
    char line[1024];
    while (f && fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "summary:", 8) == 0) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(summary, n, "%s", line);
        }
    if (f)
        fclose(f);
    return rc;
}

/* ------------------------------------------------------------------ lists */

static tclient *fast_reconnect_client(const char *lb)
{
    /* Reconnect within ~100 ms while the balancer is away (gRPC's default
     * backoff would leave the first seconds after a restart unobserved);
     * a private subchannel so no other channel's backoff applies. */
    grpc_arg a[4];
    a[0].type = GRPC_ARG_INTEGER;
    a[0].key = GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS;
    a[0].value.integer = 50;
    a[1].type = GRPC_ARG_INTEGER;
    a[1].key = GRPC_ARG_MAX_RECONNECT_BACKOFF_MS;
    a[1].value.integer = 100;
    a[2].type = GRPC_ARG_INTEGER;
    a[2].key = GRPC_ARG_MIN_RECONNECT_BACKOFF_MS;
    a[2].value.integer = 50;
    a[3].type = GRPC_ARG_INTEGER;
    a[3].key = GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL;
    a[3].value.integer = 1;
    grpc_channel_args args = {4, a};
    grpc_channel_credentials *cr = grpc_insecure_credentials_create();
    tclient *c = tc_connect_creds(lb, cr, &args);
    grpc_channel_credentials_release(cr);
    return c;
}

/* One GetServerList: 1 and the list, 0 when not answered. */
static int get_list(tclient *c, Lookaside__V1__ServerList **out)
{
    Lookaside__V1__WatchRequest req = LOOKASIDE__V1__WATCH_REQUEST__INIT;
    req.service = CHAOS_SERVICE;
    ProtobufCMessage *resp = NULL;
    grpc_status_code code = tc_unary(c, "/lookaside.v1.Balancer/GetServerList", &req.base,
                                     &lookaside__v1__server_list__descriptor, &resp, NULL, 300);
    if (code != GRPC_STATUS_OK || resp == NULL) {
        if (resp)
            protobuf_c_message_free_unpacked(resp, NULL);
        return 0;
    }
    *out = (Lookaside__V1__ServerList *)resp;
    return 1;
}

static const Lookaside__V1__Backend *listed(const Lookaside__V1__ServerList *sl, const char *addr)
{
    for (size_t i = 0; i < sl->n_backends; i++)
        if (strcmp(sl->backends[i]->address, addr) == 0)
            return sl->backends[i];
    return NULL;
}

void chaos_wait_serving(const char *lb, size_t n)
{
    tclient *c = fast_reconnect_client(lb);
    long long until = h_now_ms() + 10000;
    size_t serving = 0;
    while (h_now_ms() < until) {
        Lookaside__V1__ServerList *sl = NULL;
        serving = 0;
        if (get_list(c, &sl)) {
            for (size_t i = 0; i < sl->n_backends; i++)
                if (sl->backends[i]->state == LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_SERVING)
                    serving++;
            protobuf_c_message_free_unpacked(&sl->base, NULL);
        }
        if (serving >= n)
            break;
        h_sleep_ms(50);
    }
    tc_close(c);
    if (serving < n)
        chaos_fail("%zu of %zu backends serving after 10 s", serving, n);
}

static void *poll_main(void *arg)
{
    chaos_poller *p = arg;
    tclient *c = fast_reconnect_client(p->lb);
    while (!p->stop) {
        Lookaside__V1__ServerList *sl = NULL;
        if (!get_list(c, &sl)) {
            p->unanswered++;
            h_sleep_ms(20);
            continue;
        }
        p->answered++;
        size_t serving = 0;
        for (size_t i = 0; i < p->n_expect; i++) {
            const Lookaside__V1__Backend *b = listed(sl, p->expect[i]);
            if (b == NULL) {
                if (p->incomplete++ == 0)
                    snprintf(p->first_missing, sizeof p->first_missing,
                             "%s missing from list v%llu (%zu backends)", p->expect[i],
                             (unsigned long long)sl->version, sl->n_backends);
            } else if (b->state == LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_SERVING) {
                serving++;
            }
        }
        if (p->mark_ms > 0 && p->all_serving_after_ms < 0 && serving == p->n_expect)
            p->all_serving_after_ms = h_now_ms() - p->mark_ms;
        protobuf_c_message_free_unpacked(&sl->base, NULL);
        h_sleep_ms(20);
    }
    tc_close(c);
    return NULL;
}

void chaos_poller_start(chaos_poller *p, const char *lb, proc *const *backends, size_t n)
{
    memset(p, 0, sizeof *p);
    snprintf(p->lb, sizeof p->lb, "%s", lb);
    for (size_t i = 0; i < n && i < CHAOS_MAX_BACKENDS; i++)
        snprintf(p->expect[i], sizeof p->expect[i], "%s", backends[i]->addr);
    p->n_expect = n;
    p->all_serving_after_ms = -1;
    if (pthread_create(&p->th, NULL, poll_main, p) != 0)
        chaos_fail("cannot start the poller thread");
}

void chaos_poller_mark(chaos_poller *p)
{
    p->all_serving_after_ms = -1;
    p->mark_ms = h_now_ms();
}

void chaos_poller_stop(chaos_poller *p)
{
    p->stop = true;
    pthread_join(p->th, NULL);
}
