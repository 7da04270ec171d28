#include "harness.h"

#include <ftw.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>

#include "lookaside/v1/lookaside.pb-c.h"

#ifndef LOOKASIDE_SERVER_BIN
#define LOOKASIDE_SERVER_BIN "lookaside-server"
#endif

long long h_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void h_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

void h_tmpdir(char *dir)
{
    snprintf(dir, 256, "/tmp/lookaside-test-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        abort();
    }
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)f;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

void h_rmdir(const char *dir)
{
    /* Depth first, without following symlinks: nested data dirs (etcd's
     * member/snap, member/wal) go too. */
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

bool h_log_has(const proc *p, const char *text)
{
    FILE *f = fopen(p->log, "r");
    if (f == NULL)
        return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof line, f) != NULL)
        found = strstr(line, text) != NULL;
    fclose(f);
    return found;
}

void h_log_dump(const proc *p)
{
    FILE *f = fopen(p->log, "r");
    if (f == NULL)
        return;
    char line[4096];
    fprintf(stderr, "---- %s ----\n", p->log);
    while (fgets(line, sizeof line, f) != NULL)
        fputs(line, stderr);
    fclose(f);
}

int h_spawn(proc *p, const char *const *argv, const char *wait_for)
{
    static int seq;
    if (p->log[0] == '\0')
        snprintf(p->log, sizeof p->log, "/tmp/lookaside-test-%d-%d.log", (int)getpid(), ++seq);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    p->pid = pid;
    if (wait_for == NULL)
        return 0;
    long long until = h_now_ms() + 10000;
    while (h_now_ms() < until) {
        if (h_log_has(p, wait_for))
            return 0;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            p->pid = 0;
            h_log_dump(p);
            return -1;
        }
        h_sleep_ms(20);
    }
    h_log_dump(p);
    h_kill(p);
    return -1;
}

static int find_port(const proc *p)
{
    FILE *f = fopen(p->log, "r");
    if (f == NULL)
        return 0;
    char line[4096];
    int port = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        char *s = strstr(line, "listening on 127.0.0.1:");
        if (s)
            port = atoi(s + strlen("listening on 127.0.0.1:"));
    }
    fclose(f);
    return port;
}

int h_server_start(proc *p, const char *db, const char *const *extra)
{
    const char *bin = getenv("LOOKASIDE_SERVER");
    if (bin == NULL)
        bin = LOOKASIDE_SERVER_BIN;
    const char *argv[64];
    int n = 0;
    argv[n++] = bin;
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--db";
    argv[n++] = db;
    for (int i = 0; extra && extra[i] && n < 62; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    /* A fresh log per start so the port we read is this run's. */
    p->log[0] = '\0';
    if (h_spawn(p, argv, "listening on") != 0)
        return -1;
    p->port = find_port(p);
    snprintf(p->addr, sizeof p->addr, "127.0.0.1:%d", p->port);
    return p->port > 0 ? 0 : -1;
}

int h_stop(proc *p)
{
    if (p->pid <= 0)
        return -1;
    kill(p->pid, SIGTERM);
    long long until = h_now_ms() + 10000;
    int st = 0;
    while (h_now_ms() < until) {
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid) {
            p->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        h_sleep_ms(10);
    }
    fprintf(stderr, "process %d did not stop on SIGTERM; killing\n", (int)p->pid);
    h_kill(p);
    return -1;
}

void h_kill(proc *p)
{
    if (p->pid <= 0)
        return;
    kill(p->pid, SIGKILL);
    int st;
    waitpid(p->pid, &st, 0);
    p->pid = 0;
}

/* ------------------------------------------------------------------ client */

struct tclient {
    grpc_channel *ch;
};

tclient *tc_connect(const char *addr)
{
    grpc_channel_credentials *cr = grpc_insecure_credentials_create();
    tclient *c = tc_connect_creds(addr, cr, NULL);
    grpc_channel_credentials_release(cr);
    return c;
}

tclient *tc_connect_creds(const char *addr, grpc_channel_credentials *creds,
                          const grpc_channel_args *args)
{
    tclient *c = calloc(1, sizeof *c);
    c->ch = grpc_channel_create(addr, creds, args);
    return c;
}

tclient *tc_connect_slow_reader(const char *addr)
{
    tclient *c = calloc(1, sizeof *c);
    grpc_arg args[3];
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = GRPC_ARG_HTTP2_BDP_PROBE;
    args[0].value.integer = 0;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES;
    args[1].value.integer = 16384;
    args[2].type = GRPC_ARG_INTEGER;
    args[2].key = "lookaside.test.slow_reader";   /* never share a subchannel */
    args[2].value.integer = 1;
    grpc_channel_args ca = {3, args};
    grpc_channel_credentials *cr = grpc_insecure_credentials_create();
    c->ch = grpc_channel_create(addr, cr, &ca);
    grpc_channel_credentials_release(cr);
    return c;
}

tclient *tc_connect_from(const char *addr, const char *source_ip)
{
    const char *colon = strrchr(addr, ':');
    char host[64];
    if (colon == NULL || (size_t)(colon - addr) >= sizeof host)
        return NULL;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    struct sockaddr_in src = {.sin_family = AF_INET}, dst = {.sin_family = AF_INET};
    dst.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, source_ip, &src.sin_addr) != 1 ||
        inet_pton(AF_INET, host, &dst.sin_addr) != 1)
        return NULL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    /* Loopback connects complete at once; gRPC wants the fd non-blocking. */
    if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0 ||
        connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0 ||
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
        close(fd);
        return NULL;
    }
    tclient *c = calloc(1, sizeof *c);
    grpc_channel_credentials *cr = grpc_insecure_credentials_create();
    c->ch = grpc_channel_create_from_fd(addr, fd, cr, NULL);
    grpc_channel_credentials_release(cr);
    return c;
}

void tc_close(tclient *c)
{
    if (c == NULL)
        return;
    grpc_channel_destroy(c->ch);
    free(c);
}

static gpr_timespec deadline_in(int ms)
{
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

static grpc_byte_buffer *bb_from(const void *bytes, size_t len)
{
    grpc_slice s = grpc_slice_from_copied_buffer(bytes, len);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

static grpc_byte_buffer *bb_pack(const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    unsigned char *buf = malloc(n + 1);
    protobuf_c_message_pack(m, buf);
    grpc_byte_buffer *bb = bb_from(buf, n);
    free(buf);
    return bb;
}

static ProtobufCMessage *bb_unpack(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb)
{
    grpc_byte_buffer_reader r;
    grpc_byte_buffer_reader_init(&r, bb);
    grpc_slice s = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    ProtobufCMessage *m =
        protobuf_c_message_unpack(d, NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
    grpc_slice_unref(s);
    return m;
}

static char *slice_str(grpc_slice s)
{
    size_t n = GRPC_SLICE_LENGTH(s);
    char *out = malloc(n + 1);
    memcpy(out, GRPC_SLICE_START_PTR(s), n);
    out[n] = '\0';
    return out;
}

static grpc_status_code unary_bb(tclient *c, const char *method, grpc_byte_buffer *req,
                                 const ProtobufCMessageDescriptor *resp_desc,
                                 ProtobufCMessage **resp, char **details, int timeout_ms)
{
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_slice m = grpc_slice_from_static_string(method);
    grpc_call *call = grpc_channel_create_call(c->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, m, NULL,
                                               deadline_in(timeout_ms), NULL);
    grpc_metadata_array md_init, md_trail;
    grpc_metadata_array_init(&md_init);
    grpc_metadata_array_init(&md_trail);
    grpc_byte_buffer *rbb = NULL;
    grpc_status_code code = GRPC_STATUS_UNKNOWN;
    grpc_slice det = grpc_empty_slice();
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = req;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &md_init;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &rbb;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &md_trail;
    ops[5].data.recv_status_on_client.status = &code;
    ops[5].data.recv_status_on_client.status_details = &det;
    grpc_call_error e = grpc_call_start_batch(call, ops, 6, (void *)1, NULL);
    if (e == GRPC_CALL_OK)
        grpc_completion_queue_pluck(cq, (void *)1, deadline_in(timeout_ms + 5000), NULL);
    if (resp) {
        *resp = NULL;
        if (rbb && resp_desc)
            *resp = bb_unpack(resp_desc, rbb);
    }
    if (details)
        *details = slice_str(det);
    grpc_slice_unref(det);
    if (rbb)
        grpc_byte_buffer_destroy(rbb);
    grpc_byte_buffer_destroy(req);
    grpc_metadata_array_destroy(&md_init);
    grpc_metadata_array_destroy(&md_trail);
    grpc_call_unref(call);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
    return code;
}

grpc_status_code tc_unary(tclient *c, const char *method, const ProtobufCMessage *req,
                          const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                          char **details, int timeout_ms)
{
    return unary_bb(c, method, bb_pack(req), resp_desc, resp, details, timeout_ms);
}

grpc_status_code tc_unary_raw(tclient *c, const char *method, const void *bytes, size_t len,
                              char **details, int timeout_ms)
{
    return unary_bb(c, method, bb_from(bytes, len), NULL, NULL, details, timeout_ms);
}

/* ------------------------------------------------------------------ streams */

enum { T_START = 1, T_SEND, T_RECV, T_STATUS, T_CLOSE };

struct tstream {
    grpc_call *call;
    grpc_completion_queue *cq;
    grpc_metadata_array md_init, md_trail;
    grpc_status_code code;
    grpc_slice details;
    bool status_done;
    bool recv_pending, recv_done;
    bool ended;
    grpc_byte_buffer *rbb;
    bool got_md;
};

/* Waits for tag; records status completions on the way. */
static bool ts_wait(tstream *s, intptr_t tag, int timeout_ms)
{
    gpr_timespec dl = deadline_in(timeout_ms);
    for (int i = 0; i < 1000; i++) {
        grpc_event ev = grpc_completion_queue_next(s->cq, dl, NULL);
        if (ev.type != GRPC_OP_COMPLETE)
            return false;
        intptr_t t = (intptr_t)ev.tag;
        if (t == T_STATUS)
            s->status_done = true;
        if (t == T_RECV) {
            s->recv_pending = false;
            s->recv_done = true;
        }
        if (t == tag || tag == 0)
            return true;
    }
    return false;
}

tstream *ts_open(tclient *c, const char *method, const ProtobufCMessage *first)
{
    tstream *s = calloc(1, sizeof *s);
    s->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_slice m = grpc_slice_from_static_string(method);
    s->call = grpc_channel_create_call(c->ch, NULL, GRPC_PROPAGATE_DEFAULTS, s->cq, m, NULL,
                                       gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    grpc_metadata_array_init(&s->md_init);
    grpc_metadata_array_init(&s->md_trail);
    s->details = grpc_empty_slice();
    grpc_op ops[3];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[0].data.recv_status_on_client.trailing_metadata = &s->md_trail;
    ops[0].data.recv_status_on_client.status = &s->code;
    ops[0].data.recv_status_on_client.status_details = &s->details;
    grpc_call_start_batch(s->call, ops, 1, (void *)T_STATUS, NULL);
    memset(ops, 0, sizeof ops);
    size_t n = 0;
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    grpc_byte_buffer *bb = NULL;
    if (first) {
        bb = bb_pack(first);
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = bb;
        ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    }
    grpc_call_start_batch(s->call, ops, n, (void *)T_START, NULL);
    ts_wait(s, T_START, 5000);
    if (bb)
        grpc_byte_buffer_destroy(bb);
    return s;
}

static int send_bb(tstream *s, grpc_byte_buffer *bb)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = bb;
    int rc = -1;
    if (grpc_call_start_batch(s->call, &op, 1, (void *)T_SEND, NULL) == GRPC_CALL_OK &&
        ts_wait(s, T_SEND, 5000))
        rc = 0;
    grpc_byte_buffer_destroy(bb);
    return rc;
}

int ts_send(tstream *s, const ProtobufCMessage *m) { return send_bb(s, bb_pack(m)); }
int ts_send_raw(tstream *s, const void *bytes, size_t len) { return send_bb(s, bb_from(bytes, len)); }

int ts_close_send(tstream *s)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    if (grpc_call_start_batch(s->call, &op, 1, (void *)T_CLOSE, NULL) != GRPC_CALL_OK)
        return -1;
    return ts_wait(s, T_CLOSE, 5000) ? 0 : -1;
}

int ts_recv(tstream *s, const ProtobufCMessageDescriptor *d, ProtobufCMessage **out, int timeout_ms)
{
    *out = NULL;
    if (s->ended)
        return 0;
    if (!s->recv_pending && !s->recv_done) {
        grpc_op ops[2];
        memset(ops, 0, sizeof ops);
        size_t n = 0;
        if (!s->got_md) {
            ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
            ops[n++].data.recv_initial_metadata.recv_initial_metadata = &s->md_init;
            s->got_md = true;
        }
        ops[n].op = GRPC_OP_RECV_MESSAGE;
        ops[n++].data.recv_message.recv_message = &s->rbb;
        if (grpc_call_start_batch(s->call, ops, n, (void *)T_RECV, NULL) != GRPC_CALL_OK)
            return 0;
        s->recv_pending = true;
    }
    if (!s->recv_done && !ts_wait(s, T_RECV, timeout_ms))
        return -1;
    s->recv_done = false;
    if (s->rbb == NULL) {
        s->ended = true;
        return 0;
    }
    *out = d ? bb_unpack(d, s->rbb) : NULL;
    grpc_byte_buffer_destroy(s->rbb);
    s->rbb = NULL;
    return (*out || d == NULL) ? 1 : 0;
}

int ts_status(tstream *s, int timeout_ms, grpc_status_code *code, char **details)
{
    /* The status only completes once every incoming message has been read:
     * read and discard until it does. */
    long long until = h_now_ms() + timeout_ms;
    while (!s->status_done && h_now_ms() < until) {
        if (!s->recv_pending && !s->ended) {
            ProtobufCMessage *m = NULL;
            int rc = ts_recv(s, NULL, &m, 1);
            (void)rc;
            continue;
        }
        ts_wait(s, 0, (int)(until - h_now_ms()) + 1);
    }
    if (!s->status_done)
        return -1;
    if (code)
        *code = s->code;
    if (details)
        *details = slice_str(s->details);
    return 0;
}

void ts_cancel(tstream *s) { grpc_call_cancel(s->call, NULL); }

void ts_destroy(tstream *s)
{
    if (s == NULL)
        return;
    grpc_call_cancel(s->call, NULL);
    /* Shutdown completes only after every pending op has: then nothing can
     * write into memory we free. */
    grpc_completion_queue_shutdown(s->cq);
    while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    if (s->rbb)
        grpc_byte_buffer_destroy(s->rbb);
    grpc_call_unref(s->call);
    grpc_completion_queue_destroy(s->cq);
    grpc_metadata_array_destroy(&s->md_init);
    grpc_metadata_array_destroy(&s->md_trail);
    grpc_slice_unref(s->details);
    free(s);
}

/* ------------------------------------------------------------------ fixtures */

tstream *h_report_open(tclient *c, const char *service, const char *address, const char *zone,
                       const char *credential)
{
    tstream *s = ts_open(c, "/lookaside.v1.LoadReporter/Report", NULL);
    Lookaside__V1__Register r = LOOKASIDE__V1__REGISTER__INIT;
    r.service = (char *)service;
    r.address = (char *)address;
    if (zone)
        r.zone = (char *)zone;
    if (credential)
        r.credential = (char *)credential;
    Lookaside__V1__LoadReport m = LOOKASIDE__V1__LOAD_REPORT__INIT;
    m.kind_case = LOOKASIDE__V1__LOAD_REPORT__KIND_REGISTER;
    m.register_ = &r;
    if (ts_send(s, &m.base) != 0) {
        ts_destroy(s);
        return NULL;
    }
    return s;
}

tstream *h_report_registered(tclient *c, const char *service, const char *address,
                             const char *zone, char *token_out)
{
    tstream *s = h_report_open(c, service, address, zone, NULL);
    if (s == NULL)
        return NULL;
    ProtobufCMessage *a = NULL;
    if (ts_recv(s, &lookaside__v1__report_ack__descriptor, &a, 5000) != 1) {
        ts_destroy(s);
        return NULL;
    }
    if (token_out)
        snprintf(token_out, 50, "%s", ((Lookaside__V1__ReportAck *)a)->token);
    protobuf_c_message_free_unpacked(a, NULL);
    return s;
}

int h_server_teardown(proc *p, const char *dir)
{
    int rc = h_stop(p);
    if (rc != 0) {
        h_log_dump(p);
        fprintf(stderr, "server exit status %d\n", rc);
    }
    unlink(p->log);
    if (dir)
        h_rmdir(dir);
    return rc == 0 ? 0 : -1;
}
