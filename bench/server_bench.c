/* server_bench - lookaside-server figures through the real binary:
 *   1. push fan-out: one list change to N concurrent watchers, time until
 *      the last watcher has it, and server RSS per watcher;
 *   2. sustained load reports per second through LoadReporter.Report;
 *   3. restart with S stored backends: time from exec until a
 *      GetServerList answer holds them all;
 *   --http-compare: 1 and 2 (plus server CPU per report) with the HTTP
 *      endpoint off and on (scraped every second), alternating in one run;
 *   --tls-compare CERTDIR: 1 and 2 over plaintext and over mTLS (server
 *      certificate, client CA and policy; every channel presents the admin
 *      certificate), alternating in one run. CERTDIR is made by
 *      tests/security/gen_certs.sh. With --tls-only plaintext|mtls: only
 *      the reports phase, in one mode, for --seconds N, printing the server
 *      and bench PIDs (to attach perf/strace to one mode at a time).
 * Prints figures and appends them to the results file. Never asserts on
 * time. 127.0.0.1 only; the server is stopped by PID. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>

#include "bench_util.h"
#include "lookaside/v1/lookaside.pb-c.h"
#include "storage.h"
#include "util.h"

#ifndef LOOKASIDE_BENCH_RESULTS
#define LOOKASIDE_BENCH_RESULTS "bench/results.txt"
#endif

static const char *g_server_bin = LOOKASIDE_SERVER_BIN;
static const char *g_out = LOOKASIDE_BENCH_RESULTS;
/* --http-compare: servers get --http-listen and a child scraping /metrics
 * every second; g_tag is appended to result names. */
static bool g_http;
/* --tls-compare: when set, servers get the mTLS flags and every channel
 * uses g_tls_creds (admin certificate, server verified as "localhost"). */
static const char *g_tls_dir;
static char g_policy[600];   /* written by tls_creds_load into the bench's temp dir */
static grpc_channel_credentials *g_tls_creds;
static const char *g_tag = "";
#define MAX_KEPT 64
static struct { char name[128]; double value; } g_kept[MAX_KEPT];
static int g_nkept;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static gpr_timespec in_ms(int ms)
{
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

static void result(const char *name, double value, const char *unit, const char *goal,
                   const char *notes)
{
    char full[128];
    snprintf(full, sizeof full, "%s%s", name, g_tag);
    if (g_nkept < MAX_KEPT) {
        snprintf(g_kept[g_nkept].name, sizeof g_kept[g_nkept].name, "%s", full);
        g_kept[g_nkept++].value = value;
    }
    printf("%-40s %12.1f %-10s (goal %s) %s\n", full, value, unit, goal, notes);
    bench_append_result(g_out, full, value, 1, unit, goal, notes);
}

/* ------------------------------------------------------------ server proc */

typedef struct srv {
    pid_t pid;
    pid_t scraper;      /* --http-compare: the /metrics scraper child */
    int port;
    char addr[64];
    char log[128];
} srv;

static int srv_port_from_log(const char *log)
{
    FILE *f = fopen(log, "r");
    if (!f)
        return 0;
    char line[2048];
    int port = 0;
    while (fgets(line, sizeof line, f)) {
        char *p = strstr(line, "listening on 127.0.0.1:");
        if (p && strstr(line, "http listening") == NULL)   /* not --http-listen's line */
            port = atoi(p + 23);
    }
    fclose(f);
    return port;
}

/* A child that GETs /metrics every second, as Prometheus would (plain
 * sockets only: no gRPC after fork). Stopped by PID in srv_stop. */
static pid_t scraper_start(const char *log)
{
    int hport = 0;
    for (int i = 0; i < 2000 && hport == 0; i++) {
        FILE *f = fopen(log, "r");
        char line[2048];
        while (f && fgets(line, sizeof line, f)) {
            char *p = strstr(line, "http listening on 127.0.0.1:");
            if (p)
                hport = atoi(p + strlen("http listening on 127.0.0.1:"));
        }
        if (f)
            fclose(f);
        if (hport == 0)
            usleep(1000);
    }
    if (hport == 0) {
        fprintf(stderr, "no HTTP port in %s\n", log);
        return 0;
    }
    pid_t pid = fork();
    if (pid != 0)
        return pid > 0 ? pid : 0;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)hport)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
            static const char req[] = "GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n";
            if (write(fd, req, sizeof req - 1) == (ssize_t)(sizeof req - 1)) {
                char buf[65536];
                while (read(fd, buf, sizeof buf) > 0) {
                }
            }
        }
        if (fd >= 0)
            close(fd);
        sleep(1);
    }
}

static int srv_start(srv *s, const char *db, double *t_exec)
{
    static int seq;
    snprintf(s->log, sizeof s->log, "/tmp/lookaside-bench-%d-%d.log", (int)getpid(), ++seq);
    unlink(s->log);
    *t_exec = now_ms();
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        dup2(fd, 1);
        char crt[600], key[600], ca[600];
        char *av[24] = {(char *)g_server_bin, "--listen", "127.0.0.1:0", "--db", (char *)db,
                        "--max-streams-per-peer", "100000", "--evict-intervals", "1000"};
        int n = 9;
        if (g_http) {
            av[n++] = "--http-listen";
            av[n++] = "127.0.0.1:0";
        }
        if (g_tls_dir) {
            snprintf(crt, sizeof crt, "%s/server.crt", g_tls_dir);
            snprintf(key, sizeof key, "%s/server.key", g_tls_dir);
            snprintf(ca, sizeof ca, "%s/ca.crt", g_tls_dir);
            char *tls[] = {"--tls-cert", crt, "--tls-key", key, "--tls-client-ca", ca,
                           "--policy-file", g_policy};
            for (size_t i = 0; i < sizeof tls / sizeof tls[0]; i++)
                av[n++] = tls[i];
        }
        av[n] = NULL;
        execv(g_server_bin, av);
        _exit(127);
    }
    s->pid = pid;
    s->scraper = 0;
    for (int i = 0; i < 10000; i++) {
        s->port = srv_port_from_log(s->log);
        if (s->port > 0)
            break;
        usleep(500);
    }
    snprintf(s->addr, sizeof s->addr, "127.0.0.1:%d", s->port);
    if (g_http && s->port > 0)
        s->scraper = scraper_start(s->log);
    return s->port > 0 ? 0 : -1;
}

static void srv_stop(srv *s)
{
    if (s->scraper > 0) {
        kill(s->scraper, SIGKILL);
        waitpid(s->scraper, NULL, 0);
        s->scraper = 0;
    }
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGTERM);
    for (int i = 0; i < 1000; i++) {
        int st;
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->pid = 0;
            if (!getenv("BENCH_DEBUG"))
                unlink(s->log);
            return;
        }
        usleep(10000);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}



/* ------------------------------------------------------------ raw calls */

static grpc_channel *chan(const char *addr, int id)
{
    grpc_arg a = {.type = GRPC_ARG_INTEGER, .key = "lookaside.bench.channel_id", .value.integer = id};
    grpc_arg both[2] = {a, {.type = GRPC_ARG_STRING, .key = GRPC_SSL_TARGET_NAME_OVERRIDE_ARG,
                            .value.string = "localhost"}};
    grpc_channel_args args = {g_tls_dir ? 2 : 1, both};
    if (g_tls_dir)
        return grpc_channel_create(addr, g_tls_creds, &args);
    grpc_channel_credentials *cr = grpc_insecure_credentials_create();
    grpc_channel *ch = grpc_channel_create(addr, cr, &args);
    grpc_channel_credentials_release(cr);
    return ch;
}

static grpc_byte_buffer *pack(const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    grpc_slice s = grpc_slice_malloc(n);
    protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(s));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

static ProtobufCMessage *unpack(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb)
{
    grpc_byte_buffer_reader r;
    grpc_byte_buffer_reader_init(&r, bb);
    grpc_slice s = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
    grpc_slice_unref(s);
    return m;
}

/* A streaming call on a shared cq; tags are &ops[k]. */
typedef struct stream {
    grpc_call *call;
    grpc_byte_buffer *rbb;
    grpc_byte_buffer *sbb;
    grpc_metadata_array md, trail;
    grpc_status_code code;
    grpc_slice details;
    int idx;
    char tags[4];      /* 0 start, 1 recv, 2 send, 3 status */
    uint64_t version;  /* watch: last version seen */
    double got_at;
    uint64_t accepted;
    uint64_t nsent;
    bool sending;
} stream;

static void stream_open(stream *s, grpc_channel *ch, grpc_completion_queue *cq, const char *method,
                        const ProtobufCMessage *first)
{
    memset(s, 0, sizeof *s);
    grpc_metadata_array_init(&s->md);
    grpc_metadata_array_init(&s->trail);
    s->details = grpc_empty_slice();
    s->call = grpc_channel_create_call(ch, NULL, 0, cq, grpc_slice_from_static_string(method),
                                       NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    grpc_op ops[4];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[0].data.recv_status_on_client.trailing_metadata = &s->trail;
    ops[0].data.recv_status_on_client.status = &s->code;
    ops[0].data.recv_status_on_client.status_details = &s->details;
    grpc_call_start_batch(s->call, ops, 1, &s->tags[3], NULL);
    memset(ops, 0, sizeof ops);
    size_t n = 0;
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (first) {
        s->sbb = pack(first);
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = s->sbb;
        ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    }
    ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[n++].data.recv_initial_metadata.recv_initial_metadata = &s->md;
    grpc_call_start_batch(s->call, ops, n, &s->tags[0], NULL);
}

static void stream_recv(stream *s)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &s->rbb;
    grpc_call_start_batch(s->call, &op, 1, &s->tags[1], NULL);
}

static void stream_send(stream *s, const ProtobufCMessage *m)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    s->sbb = pack(m);
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = s->sbb;
    s->sending = true;
    grpc_call_start_batch(s->call, &op, 1, &s->tags[2], NULL);
}

/* Decodes a tag into (stream index, op kind) given the array base. */
static stream *tag_stream(stream *arr, size_t n, void *tag, int *kind)
{
    char *t = tag;
    char *base = (char *)arr;
    size_t i = (size_t)(t - base) / sizeof(stream);
    if (i >= n)
        return NULL;
    *kind = (int)(t - arr[i].tags);
    return &arr[i];
}

static void streams_close(stream *arr, size_t n, grpc_completion_queue *cq)
{
    for (size_t i = 0; i < n; i++)
        grpc_call_cancel(arr[i].call, NULL);
    grpc_completion_queue_shutdown(cq);
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        int kind;
        stream *s = tag_stream(arr, n, ev.tag, &kind);
        if (s && kind == 1 && s->rbb) {
            grpc_byte_buffer_destroy(s->rbb);
            s->rbb = NULL;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (arr[i].rbb)
            grpc_byte_buffer_destroy(arr[i].rbb);
        if (arr[i].sbb)
            grpc_byte_buffer_destroy(arr[i].sbb);
        grpc_metadata_array_destroy(&arr[i].md);
        grpc_metadata_array_destroy(&arr[i].trail);
        grpc_slice_unref(arr[i].details);
        grpc_call_unref(arr[i].call);
    }
}

/* ------------------------------------------------------------ fan-out */

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* A Report stream used to make list changes. */
typedef struct changer {
    grpc_channel *ch;
    grpc_completion_queue *cq;
    stream s;
} changer;

static void reg_msg(Lookaside__V1__LoadReport *m, Lookaside__V1__Register *r, const char *svc,
                    const char *addr)
{
    lookaside__v1__load_report__init(m);
    lookaside__v1__register__init(r);
    r->service = (char *)svc;
    r->address = (char *)addr;
    m->kind_case = LOOKASIDE__V1__LOAD_REPORT__KIND_REGISTER;
    m->register_ = r;
}

/* The list a watcher just received (NULL when undecodable; the caller frees
 * it): notes its version and starts the next receive. */
static Lookaside__V1__ServerList *take_list(stream *s)
{
    Lookaside__V1__ServerList *l = (Lookaside__V1__ServerList *)unpack(
        &lookaside__v1__server_list__descriptor, s->rbb);
    grpc_byte_buffer_destroy(s->rbb);
    s->rbb = NULL;
    if (l)
        s->version = l->version;
    stream_recv(s);
    return l;
}

static void fanout(const char *addr, size_t nwatch, pid_t pid, int rounds)
{
    size_t nch = nwatch / 100 + 1;
    grpc_channel **chs = calloc(nch, sizeof *chs);
    for (size_t i = 0; i < nch; i++)
        chs[i] = chan(addr, (int)i + 1000);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    stream *ws = calloc(nwatch, sizeof *ws);
    long rss0 = bench_rss_kb(pid);
    Lookaside__V1__WatchRequest req = LOOKASIDE__V1__WATCH_REQUEST__INIT;
    req.service = "fan";
    for (size_t i = 0; i < nwatch; i++) {
        stream_open(&ws[i], chs[i % nch], cq, "/lookaside.v1.Balancer/Watch", &req.base);
        ws[i].idx = (int)i;
    }
    /* Wait for every watcher's first list. */
    size_t have = 0;
    double until = now_ms() + 60000;
    for (size_t i = 0; i < nwatch; i++)
        stream_recv(&ws[i]);
    uint64_t target = 0;
    double *lat = calloc(nwatch, sizeof *lat);
    double *round_last = calloc((size_t)rounds, sizeof *round_last);
    double *round_p99 = calloc((size_t)rounds, sizeof *round_p99);
    double *round_cpu = calloc((size_t)rounds, sizeof *round_cpu);
    while (have < nwatch && now_ms() < until) {
        grpc_event ev = grpc_completion_queue_next(cq, in_ms(1000), NULL);
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        int kind;
        stream *s = tag_stream(ws, nwatch, ev.tag, &kind);
        if (s == NULL)
            continue;
        if (kind == 0 && s->sbb) {
            grpc_byte_buffer_destroy(s->sbb);
            s->sbb = NULL;
        }
        if (kind == 1 && s->rbb) {
            Lookaside__V1__ServerList *l = take_list(s);
            if (l)
                protobuf_c_message_free_unpacked(&l->base, NULL);
            have++;
        }
    }
    if (have < nwatch) {
        fprintf(stderr, "fanout: only %zu of %zu watchers connected\n", have, nwatch);
    }
    long rss1 = bench_rss_kb(pid);
    changer c;
    c.ch = chan(addr, 7);
    c.cq = grpc_completion_queue_create_for_next(NULL);
    for (int r = 0; r < rounds; r++) {
        char a[64];
        snprintf(a, sizeof a, "127.0.0.%d:%d", 2 + r % 200, 1000 + r);
        Lookaside__V1__LoadReport m;
        Lookaside__V1__Register rg;
        reg_msg(&m, &rg, "fan", a);
        for (size_t i = 0; i < nwatch; i++)
            ws[i].got_at = 0;
        target = 0;
        for (size_t i = 0; i < nwatch; i++)
            if (ws[i].version > target)
                target = ws[i].version;
        double t0 = now_ms();
        double cpu0 = bench_cpu_ms(pid);
        stream_open(&c.s, c.ch, c.cq, "/lookaside.v1.LoadReporter/Report", NULL);
        stream_send(&c.s, &m.base);
        size_t got = 0;
        double end = now_ms() + 30000;
        while (got < have && now_ms() < end) {
            grpc_event ev = grpc_completion_queue_next(cq, in_ms(500), NULL);
            if (ev.type != GRPC_OP_COMPLETE)
                continue;
            int kind;
            stream *s = tag_stream(ws, nwatch, ev.tag, &kind);
            if (s == NULL || kind != 1 || s->rbb == NULL)
                continue;
            Lookaside__V1__ServerList *l = take_list(s);
            if (l) {
                if (l->version > target && s->got_at == 0) {
                    s->got_at = now_ms();
                    lat[got++] = s->got_at - t0;
                }
                protobuf_c_message_free_unpacked(&l->base, NULL);
            }
        }
        round_cpu[r] = bench_cpu_ms(pid) - cpu0;
        qsort(lat, got, sizeof *lat, cmp_d);
        round_last[r] = got ? lat[got - 1] : -1;
        round_p99[r] = got ? lat[(size_t)(0.99 * (double)(got - 1))] : -1;
        /* Close the changer: the backend leaves (another change, not timed). */
        streams_close(&c.s, 1, c.cq);
        c.cq = grpc_completion_queue_create_for_next(NULL);
        /* Drain the removal pushes. */
        double quiet = now_ms() + 300;
        while (now_ms() < quiet) {
            grpc_event ev = grpc_completion_queue_next(cq, in_ms(50), NULL);
            if (ev.type != GRPC_OP_COMPLETE)
                continue;
            int kind;
            stream *s = tag_stream(ws, nwatch, ev.tag, &kind);
            if (s == NULL || kind != 1 || s->rbb == NULL)
                continue;
            Lookaside__V1__ServerList *l = take_list(s);
            if (l)
                protobuf_c_message_free_unpacked(&l->base, NULL);
        }
    }
    qsort(round_last, (size_t)rounds, sizeof *round_last, cmp_d);
    qsort(round_p99, (size_t)rounds, sizeof *round_p99, cmp_d);
    qsort(round_cpu, (size_t)rounds, sizeof *round_cpu, cmp_d);
    char name[96], notes[160];
    snprintf(notes, sizeof notes, "median of %d rounds, min %.1f max %.1f; report->push incl. "
             "registration RPC", rounds, round_last[0], round_last[rounds - 1]);
    snprintf(name, sizeof name, "server.push_last_watcher_ms.watchers=%zu", nwatch);
    result(name, round_last[rounds / 2], "ms", "p99 < 100", notes);
    snprintf(name, sizeof name, "server.push_p99_ms.watchers=%zu", nwatch);
    result(name, round_p99[rounds / 2], "ms", "< 100", "median over rounds of per-round p99");
    snprintf(name, sizeof name, "server.push_cpu_ms.watchers=%zu", nwatch);
    result(name, round_cpu[rounds / 2], "ms", "-",
           "server CPU (user+sys, 10 ms ticks) per push round: the server's share of the time above");
    snprintf(name, sizeof name, "server.rss_per_watcher_kb.watchers=%zu", nwatch);
    snprintf(notes, sizeof notes, "server RSS %ld -> %ld kB", rss0, rss1);
    result(name, (double)(rss1 - rss0) / (double)nwatch, "kB", "-", notes);
    streams_close(ws, nwatch, cq);
    grpc_completion_queue_destroy(cq);
    grpc_completion_queue_shutdown(c.cq);
    while (grpc_completion_queue_next(c.cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(c.cq);
    grpc_channel_destroy(c.ch);
    for (size_t i = 0; i < nch; i++)
        grpc_channel_destroy(chs[i]);
    free(chs);
    free(ws);
    free(lat);
    free(round_last);
    free(round_p99);
    free(round_cpu);
}

/* ------------------------------------------------------------ reports/s */

static void reports(const char *addr, pid_t pid, size_t nstreams, int seconds)
{
    double cpu0 = 0;
    grpc_channel **chs = calloc(nstreams, sizeof *chs);
    size_t nch = nstreams < 8 ? nstreams : 8;
    for (size_t i = 0; i < nch; i++)
        chs[i] = chan(addr, (int)i + 2000);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    stream *rs = calloc(nstreams, sizeof *rs);
    Lookaside__V1__Load load = LOOKASIDE__V1__LOAD__INIT;
    load.cpu_utilization = 0.5;
    load.rps_fractional = 100;
    Lookaside__V1__LoadReport lm = LOOKASIDE__V1__LOAD_REPORT__INIT;
    lm.kind_case = LOOKASIDE__V1__LOAD_REPORT__KIND_LOAD;
    lm.load = &load;
    for (size_t i = 0; i < nstreams; i++) {
        char a[64];
        snprintf(a, sizeof a, "127.0.%zu.%zu:9000", 1 + i / 250, 1 + i % 250);
        Lookaside__V1__LoadReport m;
        Lookaside__V1__Register rg;
        reg_msg(&m, &rg, "rps", a);
        stream_open(&rs[i], chs[i % nch], cq, "/lookaside.v1.LoadReporter/Report", NULL);
        stream_send(&rs[i], &m.base);
        stream_recv(&rs[i]);
    }
    uint64_t sent = 0;
    double t0 = now_ms(), end = t0 + seconds * 1000.0;
    double start_count_at = t0 + 500;   /* warm-up */
    uint64_t acc_at_start = 0;
    bool counting = false;
    while (now_ms() < end) {
        grpc_event ev = grpc_completion_queue_next(cq, in_ms(100), NULL);
        if (!counting && now_ms() >= start_count_at) {
            counting = true;
            for (size_t i = 0; i < nstreams; i++)
                acc_at_start += rs[i].accepted;
            t0 = now_ms();
            cpu0 = bench_cpu_ms(pid);
        }
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        int kind;
        stream *s = tag_stream(rs, nstreams, ev.tag, &kind);
        if (s == NULL)
            continue;
        if (kind == 2) {
            grpc_byte_buffer_destroy(s->sbb);
            s->sbb = NULL;
            s->sending = false;
            s->nsent++;
            /* A window of unacknowledged reports per stream, like a real
             * pipelining reporter; sending without one starves the
             * client's own polling. */
            if (ev.success && s->nsent - s->accepted < 64) {
                stream_send(s, &lm.base);
                sent++;
            }
        } else if (kind == 3) {
            char *d = grpc_slice_to_c_string(s->details);
            fprintf(stderr, "report stream %d ended: %d %s\n", s->idx, s->code, d);
            gpr_free(d);
        } else if (kind == 1 && s->rbb) {
            Lookaside__V1__ReportAck *ack = (Lookaside__V1__ReportAck *)unpack(&lookaside__v1__report_ack__descriptor, s->rbb);
            grpc_byte_buffer_destroy(s->rbb);
            s->rbb = NULL;
            if (ack) {
                s->accepted = ack->accepted;
                protobuf_c_message_free_unpacked(&ack->base, NULL);
            }
            stream_recv(s);
            if (!s->sending && s->nsent - s->accepted < 64) {
                stream_send(s, &lm.base);
                sent++;
            }
        } else if (kind == 0 && s->sbb && !s->sending) {
            grpc_byte_buffer_destroy(s->sbb);
            s->sbb = NULL;
        }
    }
    double el = now_ms() - t0;
    double cpu = bench_cpu_ms(pid) - cpu0;
    uint64_t acc = 0;
    for (size_t i = 0; i < nstreams; i++)
        acc += rs[i].accepted;
    char notes[160];
    snprintf(notes, sizeof notes, "%zu streams, %d s, acked %llu (sent %llu); client and server share 2 cores",
             nstreams, seconds, (unsigned long long)(acc - acc_at_start), (unsigned long long)sent);
    result("server.reports_per_sec", (double)(acc - acc_at_start) / (el / 1000.0), "reports/s",
           ">= 50000", notes);
    if (acc > acc_at_start)
        result("server.cpu_us_per_report", cpu * 1000.0 / (double)(acc - acc_at_start), "us",
               "-", "server user+sys CPU over the counted window / reports acked");
    streams_close(rs, nstreams, cq);
    grpc_completion_queue_destroy(cq);
    for (size_t i = 0; i < nch; i++)
        grpc_channel_destroy(chs[i]);
    free(chs);
    free(rs);
}

/* ------------------------------------------------------------ restart */

static void restart(const char *dir, size_t nbackends)
{
    char db[512];
    snprintf(db, sizeof db, "%s/restart.db", dir);
    unlink(db);
    storage *st = NULL;
    if (storage_open(db, &st) != LOOKASIDE_OK) {
        fprintf(stderr, "restart: %s\n", storage_open_error());
        return;
    }
    storage_put_service(st, "big", 1);
    for (size_t i = 0; i < nbackends; i++) {
        storage_backend b;
        memset(&b, 0, sizeof b);
        snprintf(b.service, sizeof b.service, "big");
        snprintf(b.address, sizeof b.address, "127.%zu.%zu.%zu:%zu", (i >> 16) & 255, (i >> 8) & 255,
                 i & 255, 1000 + i % 50000);
        b.state = LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_SERVING;
        b.source = LOOKASIDE__V1__BACKEND_SOURCE__BACKEND_SOURCE_REPORTED;
        b.first_seen_ms = 1;
        storage_put_backend(st, &b);
        storage_load l = {.cpu = 0.5, .rps = 100, .at_ms = 1};
        storage_put_load(st, "big", b.address, &l);
    }
    storage_flush(st);
    storage_close(st);
    double times[5];
    int runs = 5;
    for (int r = 0; r < runs; r++) {
        srv s;
        double t0;
        if (srv_start(&s, db, &t0) != 0) {
            fprintf(stderr, "restart: server did not start\n");
            return;
        }
        grpc_channel *ch = chan(s.addr, 9);
        grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
        double served = -1;
        for (int tries = 0; tries < 1000 && served < 0; tries++) {
            Lookaside__V1__WatchRequest req = LOOKASIDE__V1__WATCH_REQUEST__INIT;
            req.service = "big";
            grpc_byte_buffer *bb = pack(&req.base), *rbb = NULL;
            grpc_call *call = grpc_channel_create_call(ch, NULL, 0, cq,
                grpc_slice_from_static_string("/lookaside.v1.Balancer/GetServerList"), NULL, in_ms(5000), NULL);
            grpc_metadata_array md, tr;
            grpc_metadata_array_init(&md);
            grpc_metadata_array_init(&tr);
            grpc_status_code code;
            grpc_slice det;
            grpc_op ops[6];
            memset(ops, 0, sizeof ops);
            ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
            ops[1].op = GRPC_OP_SEND_MESSAGE;
            ops[1].data.send_message.send_message = bb;
            ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
            ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
            ops[3].data.recv_initial_metadata.recv_initial_metadata = &md;
            ops[4].op = GRPC_OP_RECV_MESSAGE;
            ops[4].data.recv_message.recv_message = &rbb;
            ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
            ops[5].data.recv_status_on_client.trailing_metadata = &tr;
            ops[5].data.recv_status_on_client.status = &code;
            ops[5].data.recv_status_on_client.status_details = &det;
            grpc_call_start_batch(call, ops, 6, (void *)1, NULL);
            grpc_completion_queue_pluck(cq, (void *)1, in_ms(10000), NULL);
            if (code == GRPC_STATUS_OK && rbb) {
                Lookaside__V1__ServerList *l = (Lookaside__V1__ServerList *)unpack(&lookaside__v1__server_list__descriptor, rbb);
                if (l && l->n_backends == nbackends)
                    served = now_ms() - t0;
                if (l)
                    protobuf_c_message_free_unpacked(&l->base, NULL);
            }
            if (rbb)
                grpc_byte_buffer_destroy(rbb);
            grpc_byte_buffer_destroy(bb);
            grpc_slice_unref(det);
            grpc_metadata_array_destroy(&md);
            grpc_metadata_array_destroy(&tr);
            grpc_call_unref(call);
            if (served < 0)
                usleep(2000);
        }
        times[r] = served;
        grpc_completion_queue_shutdown(cq);
        while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN) {
        }
        grpc_completion_queue_destroy(cq);
        grpc_channel_destroy(ch);
        srv_stop(&s);
        /* The server keeps restored rows; reset them so every run restores
         * the same set (drop nothing: restored backends only go after the
         * eviction window, far longer than a run). */
    }
    qsort(times, (size_t)runs, sizeof *times, cmp_d);
    char notes[160];
    snprintf(notes, sizeof notes, "%zu stored backends, exec -> full GetServerList, median of %d (min %.0f max %.0f)",
             nbackends, runs, times[0], times[runs - 1]);
    result("server.restart_to_serving_ms", times[runs / 2], "ms", "< 1000", notes);
    unlink(db);
}

static double kept(const char *name)
{
    for (int i = g_nkept - 1; i >= 0; i--)
        if (strcmp(g_kept[i].name, name) == 0)
            return g_kept[i].value;
    return -1;
}

/* The push fan-out (1,000 watchers) and reports/s with the HTTP endpoint
 * off and on (a scrape of /metrics every second), alternating off/on and
 * on/off so drift on the shared machine and the order hit both; then on/off
 * ratios of the means. */
static void http_compare(const char *dir, int reps, int rounds, size_t nstreams, int seconds)
{
    double p99[2] = {0, 0}, cpu[2] = {0, 0};
    for (int r = 0; r < reps; r++) {
        for (int k = 0; k < 2; k++) {
            int on = (r % 2) ? 1 - k : k;
            g_http = on;
            g_tag = on ? ".http=on" : ".http=off";
            char db[512], n[128];
            srv s;
            double t0;
            snprintf(db, sizeof db, "%s/cmp%d%d.db", dir, r, on);
            if (srv_start(&s, db, &t0) != 0) {
                fprintf(stderr, "server did not start (%s)\n", g_server_bin);
                srv_stop(&s);
                return;
            }
            fanout(s.addr, 1000, s.pid, rounds);
            reports(s.addr, s.pid, nstreams, seconds);
            srv_stop(&s);
            unlink(db);
            snprintf(n, sizeof n, "server.push_p99_ms.watchers=1000%s", g_tag);
            p99[on] += kept(n) / reps;
            snprintf(n, sizeof n, "server.cpu_us_per_report%s", g_tag);
            cpu[on] += kept(n) / reps;
        }
    }
    g_http = false;
    g_tag = "";
    char notes[200];
    snprintf(notes, sizeof notes, "on/off x100; push p99 %.2f vs %.2f ms, mean of %d alternations",
             p99[1], p99[0], reps);
    result("server.http_scraped_1s.push_p99_ratio", 100.0 * p99[1] / p99[0], "%", "<= 105",
           notes);
    snprintf(notes, sizeof notes, "on/off x100; CPU %.2f vs %.2f us per report, mean of %d "
             "alternations", cpu[1], cpu[0], reps);
    result("server.http_scraped_1s.cpu_per_report_ratio", 100.0 * cpu[1] / cpu[0], "%", "<= 105",
           notes);
}

/* Credentials for every channel in mTLS rounds: trust ca.crt, present the
 * admin certificate (the policy grants it everything the benchmark does). */
static bool tls_creds_load(const char *dir, const char *tmp)
{
    char path[600], *pem[3];
    const char *names[3] = {"ca.crt", "admin.crt", "admin.key"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        pem[i] = util_read_file(path, 1 << 20, NULL);
    }
    if (pem[0] && pem[1] && pem[2]) {
        grpc_ssl_pem_key_cert_pair pair = {pem[2], pem[1]};
        g_tls_creds = grpc_ssl_credentials_create(pem[0], &pair, NULL, NULL);
    }
    for (int i = 0; i < 3; i++)
        free(pem[i]);
    if (g_tls_creds == NULL)
        return false;
    /* The policy goes to the bench's own temp dir: CERTDIR is only read. */
    snprintf(g_policy, sizeof g_policy, "%s/policy", tmp);
    FILE *f = fopen(g_policy, "w");
    if (f == NULL)
        return false;
    fputs("id spiffe://test/admin admin\n", f);
    return fclose(f) == 0;
}

/* Plaintext vs mTLS: the same fan-out and report runs against a server on
 * each, alternating so drift on the shared machine hits both; the ratios of
 * the means are the figures (goals: reports >= 0.8x, push p99 <= 1.5x). */
static void tls_compare(const char *dir, const char *certs, int reps, int rounds,
                        size_t nstreams, int seconds, int only)
{
    double sum[2][2] = {{0, 0}, {0, 0}};   /* [tls][0 = push p99, 1 = reports/s] */
    for (int r = 0; r < reps; r++)
        for (int tls = 0; tls < 2; tls++) {
            if (only >= 0 && tls != only)
                continue;
            g_tls_dir = tls ? certs : NULL;
            g_tag = tls ? ".mtls" : ".plaintext";
            char db[512], name[128];
            snprintf(db, sizeof db, "%s/tls%d%d.db", dir, r, tls);
            srv s;
            double t_exec;
            bool up = srv_start(&s, db, &t_exec) == 0;
            if (up && only >= 0)
                fprintf(stderr, "%s server pid %d, bench pid %d\n", g_tag, (int)s.pid,
                        (int)getpid());
            if (up && only < 0)
                fanout(s.addr, 1000, s.pid, rounds);
            if (up)
                reports(s.addr, s.pid, nstreams, seconds);
            srv_stop(&s);
            unlink(db);
            if (!up) {
                fprintf(stderr, "server did not start (%s)\n", g_server_bin);
                g_tls_dir = NULL;
                g_tag = "";
                return;
            }
            snprintf(name, sizeof name, "server.push_p99_ms.watchers=1000%s", g_tag);
            sum[tls][0] += kept(name) / reps;
            snprintf(name, sizeof name, "server.reports_per_sec%s", g_tag);
            sum[tls][1] += kept(name) / reps;
        }
    g_tls_dir = NULL;
    g_tag = "";
    if (only >= 0)
        return;
    char notes[200];
    snprintf(notes, sizeof notes, "mTLS/plaintext x100; %.0f vs %.0f reports/s, mean of %d "
             "alternations", sum[1][1], sum[0][1], reps);
    result("server.mtls.reports_per_sec_ratio", 100.0 * sum[1][1] / sum[0][1], "%", ">= 80",
           notes);
    snprintf(notes, sizeof notes, "mTLS/plaintext x100; push p99 %.2f vs %.2f ms (1000 "
             "watchers), mean of %d alternations", sum[1][0], sum[0][0], reps);
    result("server.mtls.push_p99_ratio", 100.0 * sum[1][0] / sum[0][0], "%", "<= 150", notes);
}

int main(int argc, char **argv)
{
    size_t watchers[4] = {1000, 10000, 0, 0};
    int rounds = 9, seconds = 5;
    size_t nstreams = 64, stored = 10000;
    bool quick = false, only_fanout = false, compare = false, out_given = false;
    bool seconds_given = false;
    const char *tls_certs = NULL;
    int tls_only = -1;   /* --tls-only: 0 plaintext, 1 mTLS (profiling: reports phase only) */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
            g_out = argv[++i];
            out_given = true;
        }
        else if (strcmp(argv[i], "--server") == 0 && i + 1 < argc)
            g_server_bin = argv[++i];
        else if (strcmp(argv[i], "--quick") == 0)
            quick = true;
        else if (strcmp(argv[i], "--http-compare") == 0)
            compare = true;
        else if (strcmp(argv[i], "--tls-compare") == 0 && i + 1 < argc)
            tls_certs = argv[++i];
        else if (strcmp(argv[i], "--tls-only") == 0 && i + 1 < argc) {
            i++;
            tls_only = strcmp(argv[i], "mtls") == 0 ? 1 : strcmp(argv[i], "plaintext") == 0 ? 0 : -2;
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = atoi(argv[++i]);
            seconds_given = true;
        }
        else if (strcmp(argv[i], "--watchers") == 0 && i + 1 < argc) {
            watchers[0] = (size_t)atol(argv[++i]);
            watchers[1] = 0;
            only_fanout = true;
        }
        else {
            fprintf(stderr, "usage: bench_server [--out FILE] [--server PATH] [--quick] "
                            "[--watchers N] [--http-compare] [--tls-compare CERTDIR\n"
                            "        [--tls-only plaintext|mtls] [--seconds N]]\n");
            return 2;
        }
    }
    if (tls_only == -2 || seconds < 1 || (tls_only >= 0 && tls_certs == NULL)) {
        fprintf(stderr, "--tls-only takes plaintext or mtls and needs --tls-compare; "
                        "--seconds at least 1\n");
        return 2;
    }
    if (quick) {
        watchers[1] = 0;
        rounds = 3;
        if (!seconds_given)
            seconds = 2;
        stored = 2000;
    }
    /* A profiling run (--tls-only) prints its figures; they go to a results
     * file only when one is named (perf distorts them). */
    if (tls_only >= 0 && !out_given)
        g_out = "/dev/null";
    signal(SIGPIPE, SIG_IGN);
    grpc_init();
    char dir[] = "/tmp/lookaside-bench-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char db[512];
    if (compare) {
        http_compare(dir, quick ? 2 : 4, rounds, nstreams, seconds);
        watchers[0] = 0;
        only_fanout = true;
    }
    if (tls_certs) {
        if (!tls_creds_load(tls_certs, dir)) {
            fprintf(stderr, "--tls-compare %s: no ca.crt/admin.crt/admin.key there "
                            "(make them with tests/security/gen_certs.sh)\n", tls_certs);
            return 2;
        }
        tls_compare(dir, tls_certs, quick || tls_only >= 0 ? 1 : 3, rounds, nstreams, seconds,
                    tls_only);
        grpc_channel_credentials_release(g_tls_creds);
        watchers[0] = 0;
        only_fanout = true;
    }
    for (int k = 0; k < 2 && watchers[k]; k++) {
        snprintf(db, sizeof db, "%s/fan%d.db", dir, k);
        srv s;
        double t0;
        if (srv_start(&s, db, &t0) != 0) {
            fprintf(stderr, "server did not start (%s)\n", g_server_bin);
            return 1;
        }
        fanout(s.addr, watchers[k], s.pid, rounds);
        srv_stop(&s);
        unlink(db);
    }
    snprintf(db, sizeof db, "%s/rps.db", dir);
    if (!only_fanout) {
        srv s;
        double t0;
        if (srv_start(&s, db, &t0) == 0) {
            reports(s.addr, s.pid, nstreams, seconds);
            srv_stop(&s);
        }
        unlink(db);
    }
    if (!only_fanout)
        restart(dir, stored);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", dir);
    grpc_shutdown();
    return 0;
}
