/* bench_soak - lookaside-server under steady churn for a long time: does its
 * memory or its file-descriptor count grow?
 *
 *   bench_soak [--duration-s S] [--backends N] [--watchers N] [--procs P]
 *              [--services N] [--churn-per-s N] [--warmup-s S] [--results FILE]
 *
 * Starts lookaside-server (127.0.0.1, ephemeral port, temporary database)
 * and P worker processes. Together they keep N backends registered as Report
 * streams (two load reports per backend per second) and N Watch streams spread
 * over the services, all on one channel per worker, driven asynchronously
 * from one completion queue. Every second the workers replace churn-per-s
 * backends (half leave cleanly, half are cancelled; each comes back at a new
 * address) and as many watchers. The parent samples the server's RSS and
 * open descriptors every second; after the warm-up it takes the baseline,
 * and at the end prints RSS growth (%) and descriptor growth, and appends
 * them to bench/results.txt. Goals (issue 13): RSS growth < 5 %, no fd
 * growth. Never asserts: a benchmark prints figures. Everything it starts is
 * stopped by PID. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>

#include "bench_util.h"
#include "lookaside/v1/lookaside.pb-c.h"

#ifndef LOOKASIDE_BENCH_RESULTS
#define LOOKASIDE_BENCH_RESULTS "bench/results.txt"
#endif

typedef struct opts {
    double duration_s, warmup_s;
    long backends, watchers, procs, services, churn;
} opts;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

static gpr_timespec in_ms(long ms)
{
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

/* ------------------------------------------------------------------ worker */

enum { K_START, K_RECV, K_SEND, K_STATUS, K_COUNT };

typedef struct stream {
    grpc_call *call;
    bool reporter;
    bool live;                 /* a call exists (ops may be pending) */
    int pending;               /* ops in flight */
    bool sending;
    bool leaving;              /* being replaced: do not restart on status */
    int svc;
    unsigned gen;              /* address generation */
    grpc_byte_buffer *recv, *send;
    grpc_metadata_array md, trail;
    grpc_status_code code;
    grpc_slice details;
    char tags[K_COUNT];        /* &tags[k] is the completion tag of op kind k */
} stream;

typedef struct worker {
    int id;
    const opts *o;
    grpc_channel *ch;
    grpc_completion_queue *cq;
    stream *s;
    long n_rep, n_watch;
    unsigned rnd;
    /* counters sent to the parent */
    long long acks, lists, restarts, unexpected_ends;
    char first_end[160];       /* status of the first stream the server ended */
} worker;

static grpc_byte_buffer *pack(const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    grpc_slice sl = grpc_slice_malloc(n);
    protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(sl));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
    grpc_slice_unref(sl);
    return bb;
}

static void start_batch(stream *st, grpc_op *ops, size_t n, int kind)
{
    grpc_call_error e = grpc_call_start_batch(st->call, ops, n, &st->tags[kind], NULL);
    if (e == GRPC_CALL_OK)
        st->pending++;
    else
        fprintf(stderr, "bench_soak: start_batch(kind %d): error %d\n", kind, (int)e);
}

static void post_recv(stream *st)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &st->recv;
    start_batch(st, &op, 1, K_RECV);
}

/* Backend address: worker, slot and generation make it unique. */
static void backend_addr(const worker *w, size_t i, unsigned gen, char *out, size_t n)
{
    snprintf(out, n, "127.%d.%u.%zu:%zu", 100 + w->id, gen % 200, i % 250 + 1, 1000 + i);
}

static void stream_open(worker *w, size_t i)
{
    stream *st = &w->s[i];
    const char *method = st->reporter ? "/lookaside.v1.LoadReporter/Report"
                                      : "/lookaside.v1.Balancer/Watch";
    grpc_slice m = grpc_slice_from_static_string(method);
    st->call = grpc_channel_create_call(w->ch, NULL, GRPC_PROPAGATE_DEFAULTS, w->cq, m, NULL,
                                        gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    st->live = true;
    st->leaving = false;
    st->sending = false;
    grpc_metadata_array_init(&st->md);
    grpc_metadata_array_init(&st->trail);
    st->details = grpc_empty_slice();
    char svc[32];
    snprintf(svc, sizeof svc, "soak-%d", st->svc);

    grpc_op ops[4];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[0].data.recv_status_on_client.trailing_metadata = &st->trail;
    ops[0].data.recv_status_on_client.status = &st->code;
    ops[0].data.recv_status_on_client.status_details = &st->details;
    start_batch(st, ops, 1, K_STATUS);

    memset(ops, 0, sizeof ops);
    size_t n = 0;
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (st->reporter) {
        char addr[64];
        backend_addr(w, i, st->gen, addr, sizeof addr);
        Lookaside__V1__Register reg = LOOKASIDE__V1__REGISTER__INIT;
        reg.service = svc;
        reg.address = addr;
        Lookaside__V1__LoadReport r = LOOKASIDE__V1__LOAD_REPORT__INIT;
        r.kind_case = LOOKASIDE__V1__LOAD_REPORT__KIND_REGISTER;
        r.register_ = &reg;
        st->send = pack(&r.base);
    } else {
        Lookaside__V1__WatchRequest req = LOOKASIDE__V1__WATCH_REQUEST__INIT;
        req.service = svc;
        req.client_id = "soak";
        st->send = pack(&req.base);
    }
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = st->send;
    if (!st->reporter)
        ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[n++].data.recv_initial_metadata.recv_initial_metadata = &st->md;
    st->sending = true;
    start_batch(st, ops, n, K_START);
    post_recv(st);
}

static void send_load(worker *w, stream *st)
{
    if (!st->live || st->leaving || st->sending)
        return;
    Lookaside__V1__Load load = LOOKASIDE__V1__LOAD__INIT;
    load.cpu_utilization = (double)(rand_r(&w->rnd) % 90 + 5) / 100.0;
    load.rps_fractional = (double)(rand_r(&w->rnd) % 500 + 10);
    load.in_flight = (uint32_t)(rand_r(&w->rnd) % 16);
    Lookaside__V1__LoadReport r = LOOKASIDE__V1__LOAD_REPORT__INIT;
    r.kind_case = LOOKASIDE__V1__LOAD_REPORT__KIND_LOAD;
    r.load = &load;
    st->send = pack(&r.base);
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = st->send;
    st->sending = true;
    start_batch(st, &op, 1, K_SEND);
}

/* Replaces stream i: a reporter half-closes (clean leave) or is cancelled
 * (lost), a watcher is cancelled; it comes back when its status arrives. */
static void churn_one(worker *w, size_t i)
{
    stream *st = &w->s[i];
    if (!st->live || st->leaving)
        return;
    st->leaving = true;
    if (st->reporter && (rand_r(&w->rnd) & 1) && !st->sending) {
        grpc_op op;
        memset(&op, 0, sizeof op);
        op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
        start_batch(st, &op, 1, K_SEND);
        st->sending = true;
    } else {
        grpc_call_cancel(st->call, NULL);
    }
}

static void stream_done(worker *w, size_t i)
{
    stream *st = &w->s[i];
    grpc_call_unref(st->call);
    st->call = NULL;
    st->live = false;
    grpc_metadata_array_destroy(&st->md);
    grpc_metadata_array_destroy(&st->trail);
    if (st->recv)
        grpc_byte_buffer_destroy(st->recv);
    st->recv = NULL;
    if (!st->leaving && w->unexpected_ends++ == 0) {
        char *d = grpc_slice_to_c_string(st->details);
        snprintf(w->first_end, sizeof w->first_end, "%s: %d %s",
                 st->reporter ? "Report" : "Watch", (int)st->code, d);
        gpr_free(d);
    }
    grpc_slice_unref(st->details);
    /* Back at once: a replaced backend at a new address, a watcher on
     * another service. */
    st->gen++;
    st->svc = (int)(rand_r(&w->rnd) % (unsigned)w->o->services);
}

static void on_event(worker *w, grpc_event ev, bool stopping)
{
    char *tag = ev.tag;
    size_t i = (size_t)(tag - w->s[0].tags) / sizeof(stream);
    stream *st = &w->s[i];
    int kind = (int)(tag - st->tags);
    st->pending--;
    switch (kind) {
    case K_START:
    case K_SEND:
        st->sending = false;
        if (st->send)
            grpc_byte_buffer_destroy(st->send);
        st->send = NULL;
        break;
    case K_RECV:
        if (st->recv) {
            if (st->reporter)
                w->acks++;
            else
                w->lists++;
            grpc_byte_buffer_destroy(st->recv);
            st->recv = NULL;
            if (ev.success)
                post_recv(st);
        }
        break;
    case K_STATUS:
        break;
    }
    if (st->live && st->pending == 0) {
        stream_done(w, i);
        if (!stopping) {
            w->restarts++;
            stream_open(w, i);
        }
    }
}

static int worker_main(int id, const opts *o, const char *target, int out_fd)
{
    /* SIGTERM (the parent's "stop") is taken with sigtimedwait; blocked
     * before grpc_init so gRPC's threads inherit the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    grpc_init();
    worker w;
    memset(&w, 0, sizeof w);
    w.id = id;
    w.o = o;
    w.rnd = 7u + (unsigned)id;
    w.n_rep = o->backends / o->procs + (id < o->backends % o->procs);
    w.n_watch = o->watchers / o->procs + (id < o->watchers % o->procs);
    size_t n = (size_t)(w.n_rep + w.n_watch);
    w.s = calloc(n ? n : 1, sizeof *w.s);
    grpc_channel_credentials *cr = grpc_insecure_credentials_create();
    w.ch = grpc_channel_create(target, cr, NULL);
    grpc_channel_credentials_release(cr);
    w.cq = grpc_completion_queue_create_for_next(NULL);
    for (size_t i = 0; i < n; i++) {
        w.s[i].reporter = (long)i < w.n_rep;
        w.s[i].svc = (int)(i % (size_t)o->services);
        stream_open(&w, i);
    }
    long long t0 = now_ms(), next_tick = t0 + 1000, loads = 0;
    size_t load_cursor = 0;
    double churn_acc = 0;
    for (;;) {
        struct timespec zero = {0, 0};
        if (sigtimedwait(&set, NULL, &zero) == SIGTERM)
            break;
        grpc_event ev = grpc_completion_queue_next(w.cq, in_ms(20), NULL);
        if (ev.type == GRPC_OP_COMPLETE)
            on_event(&w, ev, false);
        long long now = now_ms();
        /* Two loads per reporter per second (the balancer asks for one per
         * 1000 ms and evicts after 3 missed), spread evenly: a worker that
         * falls behind under CPU contention, or a reporter still sending and
         * skipping a turn, does not get its backends evicted. */
        for (long long due = (now - t0) * w.n_rep / 500; loads < due; loads++, load_cursor++)
            send_load(&w, &w.s[load_cursor % (size_t)w.n_rep]);
        if (now >= next_tick) {
            next_tick += 1000;
            churn_acc += (double)o->churn / (double)o->procs;
            for (; churn_acc >= 1; churn_acc -= 1) {
                if (w.n_rep > 0)
                    churn_one(&w, (size_t)rand_r(&w.rnd) % (size_t)w.n_rep);
                if (w.n_watch > 0)
                    churn_one(&w, (size_t)(w.n_rep + rand_r(&w.rnd) % w.n_watch));
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        w.s[i].leaving = true;
        if (w.s[i].live)
            grpc_call_cancel(w.s[i].call, NULL);
    }
    long long until = now_ms() + 5000;
    for (bool any = true; any && now_ms() < until;) {
        grpc_event ev = grpc_completion_queue_next(w.cq, in_ms(50), NULL);
        if (ev.type == GRPC_OP_COMPLETE)
            on_event(&w, ev, true);
        any = false;
        for (size_t i = 0; i < n && !any; i++)
            any = w.s[i].live;
    }
    char line[300];
    for (char *p = w.first_end; *p; p++)
        if (*p == '\n' || *p == '|')
            *p = ' ';
    int len = snprintf(line, sizeof line, "%lld %lld %lld %lld |%s\n", w.acks, w.lists,
                       w.restarts, w.unexpected_ends, w.first_end);
    if (write(out_fd, line, (size_t)len) != len)
        return 1;
    grpc_channel_destroy(w.ch);
    grpc_completion_queue_shutdown(w.cq);
    while (grpc_completion_queue_next(w.cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(w.cq);
    free(w.s);
    grpc_shutdown();
    return 0;
}

/* ------------------------------------------------------------------ parent */


static long fd_count(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Starts lookaside-server and reads its port from its "listening on" line
 * (10 s at most). */
static pid_t start_server(const char *db, const char *log, int *port)
{
    const char *bin = getenv("LOOKASIDE_SERVER");
    if (bin == NULL)
        bin = LOOKASIDE_SERVER_BIN;
    pid_t pid = fork();
    if (pid == 0) {
        if (freopen(log, "w", stderr) == NULL)
            _exit(126);
        execl(bin, bin, "--listen", "127.0.0.1:0", "--db", db, "--max-streams-per-peer",
              "100000", "--max-calls-per-peer", "100000", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500 && *port == 0; i++) {
        sleep_ms(20);
        FILE *f = fopen(log, "r");
        char line[512];
        while (f && fgets(line, sizeof line, f)) {
            char *c = strstr(line, "listening on 127.0.0.1:");
            if (c)
                *port = atoi(c + strlen("listening on 127.0.0.1:"));
        }
        if (f)
            fclose(f);
    }
    return pid;
}

static const char *g_results = LOOKASIDE_BENCH_RESULTS;

static void result(const char *name, double value, const char *unit, const char *goal,
                   const char *notes)
{
    printf("%-28s %10.1f %-6s (goal %s) %s\n", name, value, unit, goal, notes);
    bench_append_result(g_results, name, value, 1, unit, goal, notes);
}

static int parse(int argc, char **argv, opts *o)
{
    *o = (opts){.duration_s = 120, .warmup_s = -1, .backends = 1000, .watchers = 1000,
                .procs = 4, .services = 50, .churn = 20};
    static const struct option lo[] = {
        {"duration-s", 1, 0, 'd'}, {"warmup-s", 1, 0, 'u'}, {"backends", 1, 0, 'b'},
        {"watchers", 1, 0, 'w'},   {"procs", 1, 0, 'p'},    {"services", 1, 0, 's'},
        {"churn-per-s", 1, 0, 'c'}, {"results", 1, 0, 'r'}, {"help", 0, 0, 'h'},
        {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'd': o->duration_s = atof(optarg); break;
        case 'u': o->warmup_s = atof(optarg); break;
        case 'b': o->backends = atol(optarg); break;
        case 'w': o->watchers = atol(optarg); break;
        case 'p': o->procs = atol(optarg); break;
        case 's': o->services = atol(optarg); break;
        case 'c': o->churn = atol(optarg); break;
        case 'r': g_results = optarg; break;
        default:
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: bench_soak [--duration-s S (120)] [--warmup-s S (duration/6, at "
                    "least 10)]\n  [--backends N (1000)] [--watchers N (1000)] [--procs P (4)] "
                    "[--services N (50)] [--churn-per-s N (20)]\n  [--results FILE (bench/results.txt)]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (o->duration_s < 10 || o->procs < 1 || o->procs > 64 || o->services < 1 ||
        o->backends < 0 || o->watchers < 0 || o->churn < 0) {
        fprintf(stderr, "bench_soak: bad arguments\n");
        return 2;
    }
    if (o->warmup_s < 0)
        o->warmup_s = o->duration_s / 6 > 10 ? o->duration_s / 6 : 10;
    return -1;
}

int main(int argc, char **argv)
{
    opts o;
    int rc = parse(argc, argv, &o);
    if (rc >= 0)
        return rc;
    signal(SIGPIPE, SIG_IGN);
    char dir[] = "/tmp/lookaside-soak-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    char db[128], log[128], target[64];
    snprintf(db, sizeof db, "%s/soak.db", dir);
    snprintf(log, sizeof log, "%s/server.log", dir);
    int port = 0;
    pid_t srv = start_server(db, log, &port);
    if (port == 0) {
        fprintf(stderr, "bench_soak: the server did not start (log %s)\n", log);
        kill(srv, SIGKILL);
        waitpid(srv, NULL, 0);
        return 1;
    }
    snprintf(target, sizeof target, "127.0.0.1:%d", port);
    int pfd[2];
    if (pipe(pfd) != 0)
        return 1;
    pid_t kids[64];
    for (long k = 0; k < o.procs; k++) {
        kids[k] = fork();
        if (kids[k] == 0) {
            close(pfd[0]);
            _exit(worker_main((int)k, &o, target, pfd[1]));
        }
    }
    close(pfd[1]);
    printf("soak: server pid %d on %s; %ld backends, %ld watchers over %ld services from %ld "
           "processes, %ld backends and %ld watchers replaced per s, %.0f s (warm-up %.0f s)\n",
           (int)srv, target, o.backends, o.watchers, o.services, o.procs, o.churn, o.churn,
           o.duration_s, o.warmup_s);
    long long start = now_ms();
    long base_rss = -1, base_fd = -1, max_rss = 0, max_fd = 0, rss = 0, fds = 0;
    for (int sec = 1; now_ms() - start < (long long)(o.duration_s * 1000); sec++) {
        sleep_ms(1000);
        rss = bench_rss_kb(srv);
        fds = fd_count(srv);
        if (rss < 0)
            break;   /* the server died */
        if (base_rss < 0 && now_ms() - start >= (long long)(o.warmup_s * 1000)) {
            base_rss = rss;
            base_fd = fds;
        }
        if (base_rss >= 0) {
            max_rss = rss > max_rss ? rss : max_rss;
            max_fd = fds > max_fd ? fds : max_fd;
        }
        if (sec % 10 == 0)
            printf("t=%4ds rss %ld kB, %ld fds\n", sec, rss, fds);
        fflush(stdout);
    }
    bool alive = bench_rss_kb(srv) >= 0;
    for (long k = 0; k < o.procs; k++)
        kill(kids[k], SIGTERM);
    long long acks = 0, lists = 0, restarts = 0, unexpected = 0;
    FILE *in = fdopen(pfd[0], "r");
    long long a, l, r, u;
    char first_end[200] = "", fe[200];
    while (in && fscanf(in, "%lld %lld %lld %lld |%199[^\n]", &a, &l, &r, &u, fe) >= 4) {
        acks += a;
        lists += l;
        restarts += r;
        unexpected += u;
        if (first_end[0] == '\0' && u > 0)
            snprintf(first_end, sizeof first_end, "%s", fe);
        fe[0] = '\0';
    }
    if (in)
        fclose(in);
    for (long k = 0; k < o.procs; k++)
        waitpid(kids[k], NULL, 0);
    kill(srv, SIGTERM);
    int st = 0;
    waitpid(srv, &st, 0);
    if (!alive || base_rss <= 0) {
        fprintf(stderr, "bench_soak: the server %s (log %s)\n",
                alive ? "was not sampled after the warm-up" : "died", log);
        return 1;
    }
    char notes[800];
    snprintf(notes, sizeof notes,
             "%.0f s (baseline after %.0f s warm-up), %ld backends + %ld watchers from %ld "
             "processes, %ld backends and %ld watchers replaced per s; RSS %ld -> %ld kB (max "
             "%ld); fds %ld -> %ld (max "
             "%ld); %lld acks, %lld lists, %lld streams replaced, %lld ended by the server%s%s%s; "
             "server exit %d",
             o.duration_s, o.warmup_s, o.backends, o.watchers, o.procs, o.churn, o.churn,
             base_rss, rss,
             max_rss, base_fd, fds, max_fd, acks, lists, restarts, unexpected,
             unexpected ? " (first: " : "", unexpected ? first_end : "", unexpected ? ")" : "",
             WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    result("soak.rss_growth_pct", 100.0 * (double)(rss - base_rss) / (double)base_rss, "%",
           "< 5", notes);
    result("soak.fd_growth", (double)(fds - base_fd), "fds", "0", "same run");
    unlink(db);
    char p[160];
    snprintf(p, sizeof p, "%s-wal", db);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", db);
    unlink(p);
    unlink(log);
    rmdir(dir);
    return 0;
}
