/* replica_bench - etcd mode (README "Replicas") figures through real
 * processes: one etcd member (Debian's /usr/bin/etcd) and three
 * lookaside-server replicas A, B, C on 127.0.0.1, plus one single server
 * (SQLite mode) for comparison. Every process is started here and stopped
 * by its PID.
 *   a. registration at replica A -> list at a watcher of replica C: p50,
 *      p99, max over sequential registrations (each a new Report stream);
 *   b. etcd writes per second with BACKENDS backends (spread over A, B, C)
 *      reporting every second at steady load, as a % of the load reports
 *      (writes counted as etcd revisions: one per Put or Txn);
 *   c. push: one change to N watchers on each of the 3 replicas (3N in
 *      all; the change registered at A) against one single server with N
 *      watchers; rounds alternate between the two in one run; p99 and last
 *      watcher per round, medians over rounds.
 * Prints figures and appends "DATE NAME VALUE unit (goal ...) notes" lines
 * to the results file (--out). Never asserts on time.
 *
 * Usage: bench_replica [--quick] [--out FILE] [--watchers N] [--backends N]
 *                      [--registrations N] [--rounds N] */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "bench_util.h"
#include "etcd/etcdserverpb/rpc.pb-c.h"
#include "lookaside/v1/lookaside.pb-c.h"

#ifndef LOOKASIDE_BENCH_RESULTS
#define LOOKASIDE_BENCH_RESULTS "bench/results.txt"
#endif
#define ETCD_BIN "/usr/bin/etcd"

static const char *g_out = LOOKASIDE_BENCH_RESULTS;
static char g_load[64];   /* load average at start, for the notes */

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static gpr_timespec after_ms(double ms)
{
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                        gpr_time_from_micros((int64_t)(ms * 1000), GPR_TIMESPAN));
}

static void emit(const char *name, double value, const char *unit, const char *goal,
                 const char *notes)
{
    printf("%-52s %10.2f %-9s (goal %s) %s\n", name, value, unit, goal, notes);
    char full[400];
    snprintf(full, sizeof full, "%s; load %s", notes, g_load);
    bench_append_result(g_out, name, value, 2, unit, goal, full);
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile of v[0..n) (sorts v). */
static double quantile(double *v, size_t n, double q)
{
    if (n == 0)
        return -1;
    qsort(v, n, sizeof *v, by_value);
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

/* ------------------------------------------------------------ processes */

typedef struct child {
    pid_t pid;
    char log[160];
    char addr[64];      /* servers: 127.0.0.1:PORT */
} child;

static char g_dir[128];

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, len) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* Text after `marker` in the log, or NULL (buf holds the line). */
static const char *log_find(const char *log, const char *marker, char *buf, size_t len)
{
    FILE *f = fopen(log, "r");
    const char *hit = NULL;
    while (f && hit == NULL && fgets(buf, (int)len, f)) {
        char *p = strstr(buf, marker);
        if (p && strstr(buf, "http listening") == NULL)
            hit = p + strlen(marker);
    }
    if (f)
        fclose(f);
    return hit;
}

/* Starts argv with stdout+stderr to a log and waits (20 s) for `ready` in
 * it. 0 or -1. */
static int spawn(child *c, const char *name, char *const argv[], const char *ready)
{
    snprintf(c->log, sizeof c->log, "%s/%s.log", g_dir, name);
    c->pid = fork();
    if (c->pid == 0) {
        /* Stopped with the bench even when it dies before stopping it. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        int fd = open(c->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    if (c->pid < 0)
        return -1;
    char line[1024];
    for (double until = mono_ms() + 20000; mono_ms() < until; usleep(5000))
        if (log_find(c->log, ready, line, sizeof line))
            return 0;
    fprintf(stderr, "%s did not start (see %s)\n", name, c->log);
    return -1;
}

static int server_start(child *c, const char *name, const char *server_bin,
                        const char *etcd_ep)
{
    char db[200];
    snprintf(db, sizeof db, "%s/%s.db", g_dir, name);
    char *av[24] = {(char *)server_bin, "--listen", "127.0.0.1:0", "--db", db,
                    "--max-streams-per-peer", "1000000", "--max-calls-per-peer", "1000000"};
    int n = 9;
    if (etcd_ep) {
        av[n++] = "--etcd";
        av[n++] = (char *)etcd_ep;
    }
    av[n] = NULL;
    if (spawn(c, name, av, "listening on 127.0.0.1:") != 0)
        return -1;
    char line[1024];
    const char *p = log_find(c->log, "listening on 127.0.0.1:", line, sizeof line);
    snprintf(c->addr, sizeof c->addr, "127.0.0.1:%d", p ? atoi(p) : 0);
    return p ? 0 : -1;
}

static void stop(child *c)
{
    if (c->pid <= 0)
        return;
    kill(c->pid, SIGTERM);
    for (int i = 0; i < 500; i++) {
        if (waitpid(c->pid, NULL, WNOHANG) == c->pid) {
            c->pid = 0;
            return;
        }
        usleep(10000);
    }
    kill(c->pid, SIGKILL);
    waitpid(c->pid, NULL, 0);
    c->pid = 0;
}

/* ------------------------------------------------------------ gRPC calls */

static grpc_channel *channel_to(const char *addr, int salt)
{
    /* A distinct arg per channel: gRPC shares subchannels otherwise. */
    grpc_arg a = {.type = GRPC_ARG_INTEGER, .key = "bench.replica.salt", .value.integer = salt};
    grpc_channel_args args = {1, &a};
    grpc_channel_credentials *cr = grpc_insecure_credentials_create();
    grpc_channel *ch = grpc_channel_create(addr, cr, &args);
    grpc_channel_credentials_release(cr);
    return ch;
}

static grpc_byte_buffer *to_buffer(const ProtobufCMessage *m)
{
    grpc_slice s = grpc_slice_malloc(protobuf_c_message_get_packed_size(m));
    protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(s));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

static ProtobufCMessage *from_buffer(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb)
{
    grpc_byte_buffer_reader rd;
    if (!grpc_byte_buffer_reader_init(&rd, bb))
        return NULL;
    grpc_slice s = grpc_byte_buffer_reader_readall(&rd);
    grpc_byte_buffer_reader_destroy(&rd);
    ProtobufCMessage *m =
        protobuf_c_message_unpack(d, NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
    grpc_slice_unref(s);
    return m;
}

enum { OP_START, OP_RECV, OP_SEND, OP_STATUS, OP_KINDS };

typedef struct call call;
typedef struct optag {
    call *c;
    int op;
} optag;

/* One streaming call on a shared completion queue. */
struct call {
    grpc_call *gc;
    optag tag[OP_KINDS];
    grpc_byte_buffer *in, *out;
    grpc_metadata_array imd, tmd;
    grpc_status_code code;
    grpc_slice details;
    int group;          /* which server's watchers (push rounds) */
    bool busy_send;
    bool done;          /* status received */
    double got_ms;      /* watch: when the awaited address arrived */
    int round;          /* watch: the round got_ms belongs to (-1: none) */
};

static void call_start(call *c, grpc_channel *ch, grpc_completion_queue *cq, const char *method,
                       const ProtobufCMessage *first, bool half_close)
{
    memset(c, 0, sizeof *c);
    c->round = -1;
    for (int k = 0; k < OP_KINDS; k++)
        c->tag[k] = (optag){c, k};
    grpc_metadata_array_init(&c->imd);
    grpc_metadata_array_init(&c->tmd);
    c->details = grpc_empty_slice();
    c->gc = grpc_channel_create_call(ch, NULL, 0, cq, grpc_slice_from_static_string(method), NULL,
                                     gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    grpc_op st = {.op = GRPC_OP_RECV_STATUS_ON_CLIENT};
    st.data.recv_status_on_client.trailing_metadata = &c->tmd;
    st.data.recv_status_on_client.status = &c->code;
    st.data.recv_status_on_client.status_details = &c->details;
    grpc_call_start_batch(c->gc, &st, 1, &c->tag[OP_STATUS], NULL);
    grpc_op ops[4];
    memset(ops, 0, sizeof ops);
    size_t n = 0;
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    c->out = to_buffer(first);
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = c->out;
    if (half_close)
        ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    grpc_call_start_batch(c->gc, ops, n, &c->tag[OP_SEND], NULL);
    c->busy_send = true;
    grpc_op rv[2];
    memset(rv, 0, sizeof rv);
    rv[0].op = GRPC_OP_RECV_INITIAL_METADATA;
    rv[0].data.recv_initial_metadata.recv_initial_metadata = &c->imd;
    rv[1].op = GRPC_OP_RECV_MESSAGE;
    rv[1].data.recv_message.recv_message = &c->in;
    grpc_call_start_batch(c->gc, rv, 2, &c->tag[OP_RECV], NULL);
}

static void call_recv_again(call *c)
{
    grpc_op op = {.op = GRPC_OP_RECV_MESSAGE};
    op.data.recv_message.recv_message = &c->in;
    grpc_call_start_batch(c->gc, &op, 1, &c->tag[OP_RECV], NULL);
}

static bool call_send(call *c, const ProtobufCMessage *m)
{
    if (c->busy_send || c->done)
        return false;
    c->out = to_buffer(m);
    grpc_op op = {.op = GRPC_OP_SEND_MESSAGE};
    op.data.send_message.send_message = c->out;
    grpc_call_start_batch(c->gc, &op, 1, &c->tag[OP_SEND], NULL);
    c->busy_send = true;
    return true;
}

/* Bookkeeping of a completed op; returns the call when a message arrived
 * (c->in is set; the caller consumes it and re-arms). */
static call *call_event(grpc_event ev, int *op)
{
    if (ev.type != GRPC_OP_COMPLETE)
        return NULL;
    optag *t = ev.tag;
    call *c = t->c;
    *op = t->op;
    if (t->op == OP_SEND) {
        grpc_byte_buffer_destroy(c->out);
        c->out = NULL;
        c->busy_send = false;
    } else if (t->op == OP_STATUS) {
        c->done = true;
    }
    return c;
}

/* Cancels calls[0..n) and frees them once the queue has drained. */
static void calls_end(call *calls, size_t n, grpc_completion_queue *cq)
{
    for (size_t i = 0; i < n; i++)
        if (calls[i].gc)
            grpc_call_cancel(calls[i].gc, NULL);
    grpc_completion_queue_shutdown(cq);
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        int op;
        call *c = call_event(ev, &op);
        if (c && op == OP_RECV && c->in) {
            grpc_byte_buffer_destroy(c->in);
            c->in = NULL;
        }
    }
    grpc_completion_queue_destroy(cq);
    for (size_t i = 0; i < n; i++) {
        if (calls[i].gc == NULL)
            continue;
        if (calls[i].in)
            grpc_byte_buffer_destroy(calls[i].in);
        if (calls[i].out)
            grpc_byte_buffer_destroy(calls[i].out);
        grpc_metadata_array_destroy(&calls[i].imd);
        grpc_metadata_array_destroy(&calls[i].tmd);
        grpc_slice_unref(calls[i].details);
        grpc_call_unref(calls[i].gc);
    }
}

/* One event of the Report streams on cq within wait_ms: a received message
 * (an ack) is dropped and the next receive started. */
static void reports_poll(grpc_completion_queue *cq, int wait_ms)
{
    int op;
    call *x = call_event(grpc_completion_queue_next(cq, after_ms(wait_ms), NULL), &op);
    if (x && op == OP_RECV && x->in) {
        grpc_byte_buffer_destroy(x->in);
        x->in = NULL;
        call_recv_again(x);
    }
}

/* Half-closes every Report stream (a clean leave, not a lost stream that
 * self-preservation would hold) once its last send is done (up to 1 s),
 * reads what comes back for up to 1 s, then ends the calls. */
static void reports_leave(call *calls, size_t n, grpc_completion_queue *cq)
{
    for (size_t i = 0; i < n; i++) {
        for (double until = mono_ms() + 1000; calls[i].busy_send && mono_ms() < until;)
            reports_poll(cq, 20);
        grpc_op op = {.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT};
        if (!calls[i].busy_send &&
            grpc_call_start_batch(calls[i].gc, &op, 1, &calls[i].tag[OP_SEND], NULL) ==
                GRPC_CALL_OK)
            calls[i].busy_send = true;
    }
    for (double until = mono_ms() + 1000; mono_ms() < until;)
        reports_poll(cq, 20);
    calls_end(calls, n, cq);
}

static void register_msg(Lookaside__V1__LoadReport *m, Lookaside__V1__Register *r,
                         const char *service, const char *address)
{
    lookaside__v1__load_report__init(m);
    lookaside__v1__register__init(r);
    r->service = (char *)service;
    r->address = (char *)address;
    m->kind_case = LOOKASIDE__V1__LOAD_REPORT__KIND_REGISTER;
    m->register_ = r;
}

static void watch_msg(Lookaside__V1__WatchRequest *w, const char *service)
{
    lookaside__v1__watch_request__init(w);
    w->service = (char *)service;
}

/* A received ServerList: does it list address? (consumes c->in) */
static bool list_has(call *c, const char *address, uint64_t *version)
{
    Lookaside__V1__ServerList *l = (Lookaside__V1__ServerList *)from_buffer(
        &lookaside__v1__server_list__descriptor, c->in);
    grpc_byte_buffer_destroy(c->in);
    c->in = NULL;
    bool hit = false;
    if (l) {
        for (size_t i = 0; address && i < l->n_backends && !hit; i++)
            hit = strcmp(l->backends[i]->address, address) == 0;
        if (version)
            *version = l->version;
        protobuf_c_message_free_unpacked(&l->base, NULL);
    }
    return hit;
}

/* etcd's current revision (a count-only Range), -1 on failure. */
static long long etcd_revision(grpc_channel *ch)
{
    Etcdserverpb__RangeRequest rq = ETCDSERVERPB__RANGE_REQUEST__INIT;
    rq.key.data = (uint8_t *)"/";
    rq.key.len = 1;
    rq.count_only = true;
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    call c;
    call_start(&c, ch, cq, "/etcdserverpb.KV/Range", &rq.base, true);
    long long rev = -1;
    for (double until = mono_ms() + 5000; rev < 0 && !c.done && mono_ms() < until;) {
        int op;
        call *x = call_event(grpc_completion_queue_next(cq, after_ms(100), NULL), &op);
        if (x == NULL || op != OP_RECV || x->in == NULL)
            continue;
        Etcdserverpb__RangeResponse *r = (Etcdserverpb__RangeResponse *)from_buffer(
            &etcdserverpb__range_response__descriptor, x->in);
        grpc_byte_buffer_destroy(x->in);
        x->in = NULL;
        if (r && r->header)
            rev = r->header->revision;
        if (r)
            protobuf_c_message_free_unpacked(&r->base, NULL);
    }
    calls_end(&c, 1, cq);
    return rev;
}

/* ------------------------------------------------------------ a. propagation */

static void bench_propagation(const child *a, const child *c, int n)
{
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    grpc_channel *cha = channel_to(a->addr, 1), *chc = channel_to(c->addr, 2);
    call *calls = calloc((size_t)n + 1, sizeof *calls);
    Lookaside__V1__WatchRequest wr;
    watch_msg(&wr, "prop");
    call *w = &calls[n];
    call_start(w, chc, cq, "/lookaside.v1.Balancer/Watch", &wr.base, true);
    double *ms = calloc((size_t)n, sizeof *ms);
    int got = 0;
    for (int i = 0; i < n; i++) {
        char address[32];
        snprintf(address, sizeof address, "127.0.1.%d:%d", 1 + i % 250, 7000 + i);
        Lookaside__V1__LoadReport m;
        Lookaside__V1__Register r;
        register_msg(&m, &r, "prop", address);
        double t0 = mono_ms();
        call_start(&calls[i], cha, cq, "/lookaside.v1.LoadReporter/Report", &m.base, false);
        bool seen = false;
        while (!seen && mono_ms() < t0 + 10000) {
            int op;
            call *x = call_event(grpc_completion_queue_next(cq, after_ms(100), NULL), &op);
            if (x == NULL || op != OP_RECV || x->in == NULL)
                continue;
            if (x == w)
                seen = list_has(x, address, NULL);
            else {
                grpc_byte_buffer_destroy(x->in);   /* an ack */
                x->in = NULL;
            }
            call_recv_again(x);
        }
        if (seen)
            ms[got++] = mono_ms() - t0;
    }
    char notes[200], p50s[16];
    double mx = quantile(ms, (size_t)got, 1.0), p50 = quantile(ms, (size_t)got, 0.5);
    snprintf(p50s, sizeof p50s, "%.1f", p50);
    snprintf(notes, sizeof notes, "%d of %d registrations seen; p50 %s ms, max %.1f ms; new "
             "Report stream at A to list at a Watch of C, 3 replicas, 1 etcd member", got, n,
             p50s, mx);
    emit("replica.reg_to_remote_watcher_p99_ms", quantile(ms, (size_t)got, 0.99), "ms", "< 50",
         notes);
    emit("replica.reg_to_remote_watcher_p50_ms", p50, "ms", "-", "same run");
    grpc_call_cancel(w->gc, NULL);
    reports_leave(calls, (size_t)n + 1, cq);
    grpc_channel_destroy(cha);
    grpc_channel_destroy(chc);
    free(calls);
    free(ms);
}

/* ------------------------------------------------------------ b. etcd writes */

static void bench_writes(child *rep[3], grpc_channel *etcd_ch, int nb, int warm_s, int window_s)
{
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    grpc_channel *ch[3];
    for (int k = 0; k < 3; k++)
        ch[k] = channel_to(rep[k]->addr, 10 + k);
    call *calls = calloc((size_t)nb, sizeof *calls);
    double *next = calloc((size_t)nb, sizeof *next);
    double t0 = mono_ms();
    for (int i = 0; i < nb; i++) {
        char address[32];
        snprintf(address, sizeof address, "127.0.%d.%d:9000", 2 + i / 250, 1 + i % 250);
        Lookaside__V1__LoadReport m;
        Lookaside__V1__Register r;
        register_msg(&m, &r, "steady", address);
        call_start(&calls[i], ch[i % 3], cq, "/lookaside.v1.LoadReporter/Report", &m.base, false);
        next[i] = t0 + 1000.0 * i / nb;   /* reports spread over each second */
    }
    Lookaside__V1__Load load = LOOKASIDE__V1__LOAD__INIT;
    Lookaside__V1__LoadReport lm = LOOKASIDE__V1__LOAD_REPORT__INIT;
    lm.kind_case = LOOKASIDE__V1__LOAD_REPORT__KIND_LOAD;
    lm.load = &load;
    double measure_at = t0 + warm_s * 1000.0, end = measure_at + window_s * 1000.0;
    long long rev0 = -1, rev_start = etcd_revision(etcd_ch);
    unsigned long long reports = 0, reports_window = 0, missed = 0;
    unsigned seed = 12345;
    while (mono_ms() < end) {
        double now = mono_ms();
        if (rev0 < 0 && now >= measure_at) {
            rev0 = etcd_revision(etcd_ch);
            reports_window = reports;
        }
        for (int i = 0; i < nb; i++) {
            if (now < next[i])
                continue;
            /* Steady: the same load, +-2 % noise (a real backend's). */
            double jitter = 1.0 + 0.04 * ((double)rand_r(&seed) / RAND_MAX - 0.5);
            load.cpu_utilization = (0.3 + 0.4 * (i % 10) / 10.0) * jitter;
            load.rps_fractional = (100 + 10 * (i % 7)) * jitter;
            if (call_send(&calls[i], &lm.base))
                reports++;
            else
                missed++;
            next[i] += 1000;
        }
        reports_poll(cq, 2);
    }
    long long rev1 = etcd_revision(etcd_ch);
    reports_window = reports - reports_window;
    double writes = rev0 >= 0 && rev1 >= rev0 ? (double)(rev1 - rev0) : -1;
    char name[96], notes[300];
    snprintf(notes, sizeof notes, "%d backends over 3 replicas, 1 report/s each (+-2%% noise), "
             "%d s after %d s of warm-up (registrations, slow start: %lld revisions): %.0f etcd "
             "revisions for %llu reports (%llu sends skipped: previous still in flight)", nb,
             window_s, warm_s, rev0 - rev_start, writes, reports_window, missed);
    snprintf(name, sizeof name, "replica.etcd_writes_per_sec.backends=%d", nb);
    emit(name, writes / window_s, "writes/s", "-", notes);
    snprintf(name, sizeof name, "replica.etcd_writes_pct_of_reports.backends=%d", nb);
    emit(name, reports_window ? 100.0 * writes / (double)reports_window : -1, "%", "<= 1",
         "same run");
    reports_leave(calls, (size_t)nb, cq);
    for (int k = 0; k < 3; k++)
        grpc_channel_destroy(ch[k]);
    free(calls);
    free(next);
}

/* ------------------------------------------------------------ c. push */

/* Watchers spread over several completion queues, polled in turn by the
 * one bench thread: Debian's libgrpc checks every completion against all
 * tags outstanding on its queue (a debug build), so one queue of 30,000
 * calls would make the client, not the servers, the figure. */
#define PER_QUEUE 2500

typedef struct fleet {
    call *w;
    size_t n;
    int groups;
    grpc_channel **ch;
    size_t nch;
    grpc_completion_queue **q;
    size_t nq, next_q;
    int round;          /* the round being timed: 0 counts first lists, -1 none */
    char address[32];
    double t0;
    double *lat;
    size_t have;
} fleet;

/* Handles what one queue has now (timeout_ms: how long the first wait may
 * take). Returns whether anything came. */
static bool fleet_poll_queue(fleet *f, grpc_completion_queue *cq, double timeout_ms)
{
    bool any = false;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(cq, any ? gpr_inf_past(GPR_CLOCK_MONOTONIC)
                                                           : after_ms(timeout_ms), NULL);
        if (ev.type != GRPC_OP_COMPLETE)
            return any;
        any = true;
        int op;
        call *x = call_event(ev, &op);
        if (x == NULL || op != OP_RECV || x->in == NULL)
            continue;
        bool hit = list_has(x, f->round > 0 ? f->address : NULL, NULL) || f->round == 0;
        if (hit && f->round >= 0 && x->round != f->round) {
            x->round = f->round;
            x->got_ms = mono_ms() - f->t0;
            f->lat[f->have++] = x->got_ms;
        }
        call_recv_again(x);
    }
}

/* Polls every queue without waiting; when none had anything, waits up to
 * 1 ms on one of them (in turn). */
static void fleet_poll(fleet *f)
{
    bool any = false;
    for (size_t k = 0; k < f->nq; k++)
        any |= fleet_poll_queue(f, f->q[k], 0);
    if (!any) {
        f->next_q = (f->next_q + 1) % f->nq;
        fleet_poll_queue(f, f->q[f->next_q], 1);
    }
}

/* Starts timing `round` (0: first lists) for `address`. */
static void fleet_arm(fleet *f, int round, const char *address)
{
    f->round = round;
    snprintf(f->address, sizeof f->address, "%s", address ? address : "");
    f->have = 0;
    f->t0 = mono_ms();
}

/* Polls until every watcher has the round's list or timeout_ms passed;
 * returns how many have it (their latencies in f->lat[0..]). */
static size_t fleet_wait(fleet *f, double timeout_ms)
{
    for (double until = mono_ms() + timeout_ms; f->have < f->n && mono_ms() < until;)
        fleet_poll(f);
    f->round = -1;
    return f->have;
}

/* Opens per_server watchers of "fan" at each of servers[0..ns) (group =
 * server index); waits (120 s) for every first list. Returns how many came. */
static size_t fleet_open(fleet *f, child *const *servers, int ns, size_t per_server)
{
    memset(f, 0, sizeof *f);
    f->groups = ns;
    f->n = per_server * (size_t)ns;
    f->w = calloc(f->n, sizeof *f->w);
    f->lat = calloc(f->n + 1, sizeof *f->lat);
    size_t ch_per = per_server / 100 + 1;   /* ~100 streams per connection */
    f->nch = ch_per * (size_t)ns;
    f->ch = calloc(f->nch, sizeof *f->ch);
    for (size_t k = 0; k < f->nch; k++)
        f->ch[k] = channel_to(servers[k / ch_per]->addr, (int)(1000 + k));
    f->nq = (f->n + PER_QUEUE - 1) / PER_QUEUE;
    f->q = calloc(f->nq, sizeof *f->q);
    for (size_t k = 0; k < f->nq; k++)
        f->q[k] = grpc_completion_queue_create_for_next(NULL);
    fleet_arm(f, 0, NULL);
    Lookaside__V1__WatchRequest wr;
    watch_msg(&wr, "fan");
    for (size_t i = 0; i < f->n; i++) {
        size_t g = i / per_server;
        call *c = &f->w[i];
        call_start(c, f->ch[g * ch_per + i % ch_per], f->q[i / PER_QUEUE],
                   "/lookaside.v1.Balancer/Watch", &wr.base, true);
        c->group = (int)g;   /* call_start cleared it */
    }
    return fleet_wait(f, 120000);
}

/* One round: registers a new address at `at` and times its arrival at
 * every watcher of f. p99 and last into *p99, *last. */
static void push_round(fleet *f, const child *at, int round, double *p99, double *last)
{
    char address[32];
    snprintf(address, sizeof address, "127.0.9.%d:%d", 1 + round % 250, 8000 + round);
    grpc_completion_queue *rcq = grpc_completion_queue_create_for_next(NULL);
    grpc_channel *rch = channel_to(at->addr, 5000 + round);
    call rep;
    Lookaside__V1__LoadReport m;
    Lookaside__V1__Register r;
    register_msg(&m, &r, "fan", address);
    fleet_arm(f, round, address);
    call_start(&rep, rch, rcq, "/lookaside.v1.LoadReporter/Report", &m.base, false);
    size_t have = fleet_wait(f, 30000);
    /* Per server first (the etcd hop shows as B and C after A), then all. */
    double *lat = malloc((f->n + 1) * sizeof *lat);
    for (int g = 0; f->groups > 1 && g < f->groups; g++) {
        size_t k = 0;
        for (size_t i = 0; i < f->n; i++)
            if (f->w[i].group == g && f->w[i].round == round)
                lat[k++] = f->w[i].got_ms;
        printf("  round %d, watchers of replica %c: %zu, p50 %.1f p99 %.1f ms\n", round,
               'A' + g, k, quantile(lat, k, 0.5), quantile(lat, k, 0.99));
    }
    free(lat);
    *p99 = quantile(f->lat, have, 0.99);
    *last = have ? f->lat[have - 1] : -1;
    if (have < f->n)
        fprintf(stderr, "round %d: %zu of %zu watchers got the change\n", round, have, f->n);
    reports_leave(&rep, 1, rcq);   /* the leave is pushed too; not timed */
    grpc_channel_destroy(rch);
    for (double until = mono_ms() + 300; mono_ms() < until;)
        fleet_poll(f);
}

static void fleet_close(fleet *f)
{
    for (size_t i = 0; i < f->n; i++)
        grpc_call_cancel(f->w[i].gc, NULL);
    for (size_t k = 0; k < f->nq; k++) {
        /* Each queue's calls are a contiguous run of f->w. */
        size_t from = k * PER_QUEUE, n = f->n - from < PER_QUEUE ? f->n - from : PER_QUEUE;
        calls_end(f->w + from, n, f->q[k]);
    }
    for (size_t k = 0; k < f->nch; k++)
        grpc_channel_destroy(f->ch[k]);
    free(f->q);
    free(f->ch);
    free(f->w);
    free(f->lat);
}

static void bench_push(child *rep[3], child *single, size_t n, int rounds)
{
    fleet fr, fs;
    size_t okr = fleet_open(&fr, rep, 3, n);
    size_t oks = fleet_open(&fs, &single, 1, n);
    printf("watchers connected: replicas %zu of %zu, single %zu of %zu\n", okr, fr.n, oks, fs.n);
    double *rp = calloc((size_t)rounds, sizeof *rp), *rl = calloc((size_t)rounds, sizeof *rl);
    double *sp = calloc((size_t)rounds, sizeof *sp), *sl = calloc((size_t)rounds, sizeof *sl);
    for (int i = 0; i < rounds; i++) {
        /* Alternate which goes first. */
        /* Rounds count from 1 (0 counted the first lists). */
        if (i % 2 == 0) {
            push_round(&fs, single, 2 * i + 1, &sp[i], &sl[i]);
            push_round(&fr, rep[0], 2 * i + 2, &rp[i], &rl[i]);
        } else {
            push_round(&fr, rep[0], 2 * i + 2, &rp[i], &rl[i]);
            push_round(&fs, single, 2 * i + 1, &sp[i], &sl[i]);
        }
        printf("round %d: replicas p99 %.1f last %.1f ms; single p99 %.1f last %.1f ms\n", i,
               rp[i], rl[i], sp[i], sl[i]);
    }
    double mrp = quantile(rp, (size_t)rounds, 0.5), mrl = quantile(rl, (size_t)rounds, 0.5);
    double msp = quantile(sp, (size_t)rounds, 0.5), msl = quantile(sl, (size_t)rounds, 0.5);
    char name[96], notes[240];
    snprintf(notes, sizeof notes, "median of %d rounds (alternating with the single server); "
             "change registered at replica A, %zu watchers on each of A, B, C (%zu connected); "
             "last watcher %.1f ms", rounds, n, okr, mrl);
    snprintf(name, sizeof name, "replica.push_p99_ms.replicas=3.watchers=%zu", n);
    emit(name, mrp, "ms", "-", notes);
    snprintf(notes, sizeof notes, "median of %d rounds, same run; %zu watchers (%zu connected); "
             "last watcher %.1f ms", rounds, n, oks, msl);
    snprintf(name, sizeof name, "replica.push_p99_ms.single.watchers=%zu", n);
    emit(name, msp, "ms", "-", notes);
    snprintf(name, sizeof name, "replica.push_p99_ratio.watchers=%zu", n);
    emit(name, msp > 0 ? mrp / msp : -1, "x", "-",
         "3 replicas x N watchers (3N) over one server x N: p99 ratio, same run");
    fleet_close(&fr);
    fleet_close(&fs);
    free(rp);
    free(rl);
    free(sp);
    free(sl);
}

/* ------------------------------------------------------------ main */

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    bool quick = false;
    size_t watchers = 0;
    int backends = 1000, registrations = 0, rounds = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = true;
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            g_out = argv[++i];
        else if (strcmp(argv[i], "--watchers") == 0 && i + 1 < argc)
            watchers = (size_t)atol(argv[++i]);
        else if (strcmp(argv[i], "--backends") == 0 && i + 1 < argc)
            backends = atoi(argv[++i]);
        else if (strcmp(argv[i], "--registrations") == 0 && i + 1 < argc)
            registrations = atoi(argv[++i]);
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--quick] [--out FILE] [--watchers N] [--backends N] "
                            "[--registrations N] [--rounds N]\n", argv[0]);
            return 2;
        }
    }
    if (watchers == 0)
        watchers = quick ? 2000 : 10000;
    if (registrations < 50)
        registrations = quick ? 50 : 100;
    if (rounds <= 0)
        rounds = quick ? 3 : 7;
    if (access(ETCD_BIN, X_OK) != 0) {
        fprintf(stderr, "SKIP: %s not installed (scripts/deps.sh installs etcd-server)\n",
                ETCD_BIN);
        return 0;
    }
    /* 4 servers' and ~4N watchers' sockets. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    FILE *la = fopen("/proc/loadavg", "r");
    if (la && fgets(g_load, sizeof g_load, la))
        g_load[strcspn(g_load, " ")] = '\0';
    if (la)
        fclose(la);
    snprintf(g_dir, sizeof g_dir, "/tmp/replica-bench-XXXXXX");
    if (mkdtemp(g_dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    char data[200], curl[64], purl[64], cluster[100], ep[64];
    snprintf(data, sizeof data, "%s/etcd", g_dir);
    int cport = free_port(), pport = free_port();
    snprintf(curl, sizeof curl, "http://127.0.0.1:%d", cport);
    snprintf(purl, sizeof purl, "http://127.0.0.1:%d", pport);
    snprintf(cluster, sizeof cluster, "default=%s", purl);
    snprintf(ep, sizeof ep, "127.0.0.1:%d", cport);
    child etcd = {0}, ra = {0}, rb = {0}, rc = {0}, single = {0};
    char *eav[] = {ETCD_BIN, "--name", "default", "--data-dir", data, "--listen-client-urls",
                   curl, "--advertise-client-urls", curl, "--listen-peer-urls", purl,
                   "--initial-advertise-peer-urls", purl, "--initial-cluster", cluster, NULL};
    int rc_ = 1;
    grpc_init();
    if (spawn(&etcd, "etcd", eav, "ready to serve client requests") != 0 ||
        server_start(&ra, "A", LOOKASIDE_SERVER_BIN, ep) != 0 ||
        server_start(&rb, "B", LOOKASIDE_SERVER_BIN, ep) != 0 ||
        server_start(&rc, "C", LOOKASIDE_SERVER_BIN, ep) != 0 ||
        server_start(&single, "single", LOOKASIDE_SERVER_BIN, NULL) != 0)
        goto out;
    child *rep[3] = {&ra, &rb, &rc};
    grpc_channel *etcd_ch = channel_to(ep, 99);
    printf("replica_bench: etcd %s, replicas %s %s %s, single %s; load %s%s\n", ep, ra.addr,
           rb.addr, rc.addr, single.addr, g_load, quick ? "; --quick" : "");
    usleep(500000);   /* replicas list etcd and start watching */
    bench_propagation(&ra, &rc, registrations);
    bench_writes(rep, etcd_ch, backends, quick ? 12 : 15, quick ? 10 : 30);
    bench_push(rep, &single, watchers, rounds);
    grpc_channel_destroy(etcd_ch);
    rc_ = 0;
out:
    stop(&single);
    stop(&rc);
    stop(&rb);
    stop(&ra);
    stop(&etcd);
    grpc_shutdown();
    if (rc_ == 0 && !getenv("BENCH_KEEP")) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);   /* our own mkdtemp dir */
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", g_dir);
    }
    return rc_;
}
