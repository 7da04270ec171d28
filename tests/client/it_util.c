#include "it_util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "lookaside.h"

extern char **environ;

#define MAX_CHILDREN 32
static pid_t children[MAX_CHILDREN];
static char temp_files[8][256];

int64_t it_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void it_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void track(pid_t pid)
{
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (children[i] == 0) {
            children[i] = pid;
            return;
        }
}

static void untrack(pid_t pid)
{
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (children[i] == pid)
            children[i] = 0;
}

/* waitpid with a bound; SIGKILL after timeout_ms. Returns the exit code,
 * 128 + signal when killed, -1 when unknown. */
static int reap(pid_t pid, int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    int st = 0, code = -1;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            break;
        }
        if (r < 0 && errno == ECHILD)
            break;
        if (it_now_ms() > end) {
            fprintf(stderr, "it: pid %d did not exit in %d ms: SIGKILL\n", (int)pid, timeout_ms);
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            break;
        }
        it_sleep_ms(10);
    }
    untrack(pid);
    return code;
}

void it_cleanup(void)
{
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (children[i] > 0) {
            kill(children[i], SIGKILL);
            waitpid(children[i], NULL, 0);
            children[i] = 0;
        }
    for (int i = 0; i < 8; i++)
        if (temp_files[i][0]) {
            char p[sizeof temp_files[0] + 8];
            unlink(temp_files[i]);
            snprintf(p, sizeof p, "%.255s-wal", temp_files[i]);
            unlink(p);
            snprintf(p, sizeof p, "%.255s-shm", temp_files[i]);
            unlink(p);
            temp_files[i][0] = '\0';
        }
}

static void add_temp(const char *path)
{
    for (int i = 0; i < 8; i++)
        if (temp_files[i][0] == '\0' || strcmp(temp_files[i], path) == 0) {
            snprintf(temp_files[i], sizeof temp_files[i], "%s", path);
            return;
        }
}

/* ------------------------------------------------------------ balancer */

static int find_port_in_log(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    char line[512];
    int port = -1;
    while (fgets(line, sizeof line, f)) {
        char *s = strstr(line, "listening on 127.0.0.1:");
        if (s) {
            port = atoi(s + strlen("listening on 127.0.0.1:"));
            break;
        }
    }
    fclose(f);
    return port;
}

bool it_lb_start(it_lb *lb, int port, const char *db, const char *const *extra)
{
    static int seq;
    if (db == NULL) {
        snprintf(lb->db, sizeof lb->db, "/tmp/la-it-%d-%d.db", (int)getpid(), seq++);
        unlink(lb->db);
    } else if (db != lb->db) {
        snprintf(lb->db, sizeof lb->db, "%s", db);
    }
    add_temp(lb->db);
    snprintf(lb->log, sizeof lb->log, "/tmp/la-it-%d-%d.log", (int)getpid(), seq++);
    add_temp(lb->log);
    char listen[32];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    const char *argv[32];
    int n = 0;
    argv[n++] = LOOKASIDE_SERVER_BIN;
    argv[n++] = "--listen";
    argv[n++] = listen;
    argv[n++] = "--db";
    argv[n++] = lb->db;
    for (int i = 0; extra && extra[i] && n < 30; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, lb->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        fprintf(stderr, "it: cannot spawn %s: %s\n", argv[0], strerror(rc));
        return false;
    }
    track(pid);
    lb->pid = pid;
    int64_t end = it_now_ms() + 10000;
    while (it_now_ms() < end) {
        int p = find_port_in_log(lb->log);
        if (p > 0) {
            lb->port = p;
            return true;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            untrack(pid);
            lb->pid = 0;
            break;
        }
        it_sleep_ms(10);
    }
    fprintf(stderr, "it: lookaside-server did not start; its log:\n");
    FILE *f = fopen(lb->log, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        fputs(line, stderr);
    if (f)
        fclose(f);
    return false;
}

int it_lb_stop(it_lb *lb)
{
    if (lb->pid <= 0)
        return -1;
    kill(lb->pid, SIGTERM);
    int code = reap(lb->pid, 5000);
    lb->pid = 0;
    return code;
}

void it_lb_kill(it_lb *lb)
{
    if (lb->pid <= 0)
        return;
    kill(lb->pid, SIGKILL);
    reap(lb->pid, 5000);
    lb->pid = 0;
}

void it_lb_target(const it_lb *lb, char *buf, size_t n)
{
    snprintf(buf, n, "127.0.0.1:%d", lb->port);
}

/* ------------------------------------------------------------ backends */

/* Reads one line from fd within timeout_ms. */
static bool read_line(int fd, char *buf, size_t n, int timeout_ms)
{
    size_t k = 0;
    int64_t end = it_now_ms() + timeout_ms;
    while (k + 1 < n) {
        int left = (int)(end - it_now_ms());
        if (left <= 0)
            return false;
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        char c;
        ssize_t got = read(fd, &c, 1);
        if (got <= 0)
            return false;
        if (c == '\n')
            break;
        buf[k++] = c;
    }
    buf[k] = '\0';
    return true;
}

bool it_backend_wait_registered(it_backend *b, int timeout_ms)
{
    if (b->registered_ms > 0)
        return true;
    char line[128];
    int64_t end = it_now_ms() + timeout_ms;
    while (it_now_ms() < end) {
        if (!read_line(b->out_fd, line, sizeof line, (int)(end - it_now_ms())))
            return false;
        long long t;
        if (sscanf(line, "registered %lld", &t) == 1) {
            b->registered_ms = t;
            return true;
        }
    }
    return false;
}

bool it_backend_start(it_backend *b, const char *name, const char *lb_target, const char *service,
                      const char *zone, bool wait_registered)
{
    return it_backend_start_util(b, name, lb_target, service, zone, 0, wait_registered);
}

bool it_backend_start_util(it_backend *b, const char *name, const char *lb_target,
                           const char *service, const char *zone, double util,
                           bool wait_registered)
{
    memset(b, 0, sizeof *b);
    snprintf(b->name, sizeof b->name, "%s", name);
    int fds[2];
    if (pipe(fds) != 0)
        return false;
    char exe[512];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0)
        return false;
    exe[len] = '\0';
    const char *argv[16];
    int n = 0;
    argv[n++] = exe;
    argv[n++] = "--backend";
    argv[n++] = name;
    argv[n++] = "--service";
    argv[n++] = service;
    if (lb_target) {
        argv[n++] = "--lb";
        argv[n++] = lb_target;
    }
    if (zone) {
        argv[n++] = "--zone";
        argv[n++] = zone;
    }
    char ubuf[32];
    if (util != 0) {
        snprintf(ubuf, sizeof ubuf, "%g", util);
        argv[n++] = "--util";
        argv[n++] = ubuf;
    }
    argv[n] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    pid_t pid;
    int rc = posix_spawn(&pid, exe, &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        return false;
    }
    track(pid);
    b->pid = pid;
    b->out_fd = fds[0];
    char line[128];
    if (!read_line(b->out_fd, line, sizeof line, 10000) ||
        sscanf(line, "listening %d", &b->port) != 1) {
        fprintf(stderr, "it: backend %s did not start\n", name);
        return false;
    }
    snprintf(b->addr, sizeof b->addr, "127.0.0.1:%d", b->port);
    if (wait_registered && !it_backend_wait_registered(b, 10000)) {
        fprintf(stderr, "it: backend %s did not register\n", name);
        return false;
    }
    return true;
}

bool it_backend_term(it_backend *b, char *buf, size_t n)
{
    if (b->pid <= 0)
        return false;
    kill(b->pid, SIGTERM);
    bool ok = false;
    char line[128];
    int64_t end = it_now_ms() + 10000;
    while (it_now_ms() < end && read_line(b->out_fd, line, sizeof line, (int)(end - it_now_ms()))) {
        if (strncmp(line, "stopped", 7) == 0) {
            snprintf(buf, n, "%s", line);
            ok = true;
            break;
        }
    }
    int code = reap(b->pid, 10000);
    b->pid = 0;
    close(b->out_fd);
    b->out_fd = -1;
    if (code != 0)
        fprintf(stderr, "it: backend %s exited with %d\n", b->name, code);
    return ok && code == 0;
}

void it_backend_kill(it_backend *b)
{
    if (b->pid <= 0)
        return;
    kill(b->pid, SIGKILL);
    reap(b->pid, 5000);
    b->pid = 0;
    close(b->out_fd);
    b->out_fd = -1;
}

/* ------------------------------------------------------------ child */

static volatile sig_atomic_t child_term;

/* lookaside_load_fn: reports the utilization it is given. */
static void util_cb(void *arg, lookaside_load *load)
{
    load->application_utilization = *(const double *)arg;
}

static void on_term(int sig)
{
    (void)sig;
    child_term = 1;
}

enum { TAG_NEW = 1, TAG_RECV = 2, TAG_SEND = 3 };

struct echo_call;
typedef struct echo_tag {
    int kind;
    struct echo_call *c;
} echo_tag;

typedef struct echo_call {
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array md;
    grpc_byte_buffer *req;
    grpc_byte_buffer *resp;
    int cancelled;
    int64_t start_us;
    echo_tag tags[3];
} echo_call;

static echo_call *echo_new(void)
{
    echo_call *c = calloc(1, sizeof *c);
    grpc_call_details_init(&c->details);
    grpc_metadata_array_init(&c->md);
    for (int i = 0; i < 3; i++) {
        c->tags[i].kind = i + 1;
        c->tags[i].c = c;
    }
    return c;
}

static void echo_free(echo_call *c)
{
    if (c->call)
        grpc_call_unref(c->call);
    grpc_call_details_destroy(&c->details);
    grpc_metadata_array_destroy(&c->md);
    if (c->req)
        grpc_byte_buffer_destroy(c->req);
    if (c->resp)
        grpc_byte_buffer_destroy(c->resp);
    free(c);
}

static void serve_event(grpc_server *srv, grpc_completion_queue *cq, const char *name,
                        lookaside_reporter *rep, echo_tag *tag, int success, echo_call **pending)
{
    int kind = tag->kind;
    echo_call *c = tag->c;
    if (kind == TAG_NEW) {
        if (!success) {
            echo_free(c);
            return;
        }
        lookaside_reporter_call_started(rep);
        c->start_us = it_now_ms() * 1000;
        grpc_op op;
        memset(&op, 0, sizeof op);
        op.op = GRPC_OP_RECV_MESSAGE;
        op.data.recv_message.recv_message = &c->req;
        if (grpc_call_start_batch(c->call, &op, 1, &c->tags[TAG_RECV - 1], NULL) != GRPC_CALL_OK)
            echo_free(c);
        *pending = echo_new();
        grpc_server_request_call(srv, &(*pending)->call, &(*pending)->details, &(*pending)->md, cq,
                                 cq, &(*pending)->tags[TAG_NEW - 1]);
    } else if (kind == TAG_RECV) {
        grpc_slice s = grpc_slice_from_copied_string(name);
        c->resp = grpc_raw_byte_buffer_create(&s, 1);
        grpc_slice_unref(s);
        grpc_op ops[4];
        memset(ops, 0, sizeof ops);
        ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[1].op = GRPC_OP_SEND_MESSAGE;
        ops[1].data.send_message.send_message = c->resp;
        ops[2].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[2].data.send_status_from_server.status = GRPC_STATUS_OK;
        ops[3].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
        ops[3].data.recv_close_on_server.cancelled = &c->cancelled;
        if (grpc_call_start_batch(c->call, ops, 4, &c->tags[TAG_SEND - 1], NULL) != GRPC_CALL_OK)
            echo_free(c);
    } else {
        lookaside_reporter_call_finished(rep, GRPC_STATUS_OK, it_now_ms() * 1000 - c->start_us);
        echo_free(c);
    }
}

int it_backend_main(int argc, char **argv)
{
    const char *name = NULL, *lb = NULL, *service = NULL, *zone = NULL;
    double util = 0;
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--backend") == 0)
            name = argv[++i];
        else if (strcmp(argv[i], "--lb") == 0)
            lb = argv[++i];
        else if (strcmp(argv[i], "--service") == 0)
            service = argv[++i];
        else if (strcmp(argv[i], "--zone") == 0)
            zone = argv[++i];
        else if (strcmp(argv[i], "--util") == 0)
            util = atof(argv[++i]);
    }
    if (name == NULL || service == NULL)
        return 2;
    signal(SIGTERM, on_term);
    signal(SIGPIPE, SIG_IGN);
    grpc_init();
    grpc_server *srv = grpc_server_create(NULL, NULL);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(srv, cq, NULL);
    grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
    int port = grpc_server_add_http2_port(srv, "127.0.0.1:0", creds);
    grpc_server_credentials_release(creds);
    if (port <= 0)
        return 3;
    grpc_server_start(srv);
    printf("listening %d\n", port);
    fflush(stdout);

    lookaside_reporter *rep = NULL;
    if (lb) {
        lookaside_reporter_options o;
        lookaside_reporter_options_init(&o);
        char addr[32];
        snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
        o.lb_target = lb;
        o.service = service;
        o.address = addr;
        o.zone = zone;
        o.backoff_initial_ms = 200;
        o.backoff_max_ms = 1000;
        static double cb_util;
        if (util < 0) { /* through the callback */
            cb_util = -util;
            o.load_cb = util_cb;
            o.load_cb_arg = &cb_util;
        }
        if (lookaside_reporter_create(&o, &rep) != LOOKASIDE_OK)
            return 4;
        if (util > 0) { /* through the setter */
            lookaside_load l = {0};
            l.application_utilization = util;
            lookaside_reporter_set_load(rep, &l);
        }
    }

    echo_call *pending = echo_new();
    grpc_server_request_call(srv, &pending->call, &pending->details, &pending->md, cq, cq,
                             &pending->tags[TAG_NEW - 1]);
    bool registered_said = false;
    for (;;) {
        if (child_term)
            break;
        if (rep && !registered_said) {
            lookaside_reporter_info info;
            lookaside_reporter_info_get(rep, &info);
            if (info.registered) {
                printf("registered %lld\n", (long long)it_now_ms());
                fflush(stdout);
                registered_said = true;
            }
        }
        grpc_event ev = grpc_completion_queue_next(
            cq, gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(registered_said ? 100 : 5, GPR_TIMESPAN)),
            NULL);
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        serve_event(srv, cq, name, rep, (echo_tag *)ev.tag, ev.success, &pending);
    }
    /* Graceful: drain first (clients stop picking us), keep serving for a
     * grace period while the balancer's push reaches them, then go. */
    if (rep) {
        lookaside_status st = lookaside_reporter_stop(rep, 3000);
        lookaside_reporter_info info;
        lookaside_reporter_info_get(rep, &info);
        printf("stopped %s loads=%llu streams=%llu\n",
               st == LOOKASIDE_OK ? "ok" : lookaside_status_str(st),
               (unsigned long long)info.loads_sent, (unsigned long long)info.streams);
        fflush(stdout);
        int64_t grace_end = it_now_ms() + 300;
        while (it_now_ms() < grace_end) {
            grpc_event ev = grpc_completion_queue_next(
                cq, gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(20, GPR_TIMESPAN)),
                NULL);
            if (ev.type != GRPC_OP_COMPLETE)
                continue;
            serve_event(srv, cq, name, rep, (echo_tag *)ev.tag, ev.success, &pending);
        }
        lookaside_reporter_destroy(rep);
    } else {
        printf("stopped ok\n");
        fflush(stdout);
    }
    grpc_server_shutdown_and_notify(srv, cq, NULL);
    grpc_server_cancel_all_calls(srv);
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type == GRPC_OP_COMPLETE && ev.tag == NULL)
            break;
        if (ev.type == GRPC_OP_COMPLETE) /* each call has one batch in flight */
            echo_free(((echo_tag *)ev.tag)->c);
    }
    grpc_server_destroy(srv);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
    grpc_shutdown();
    return 0;
}

/* ------------------------------------------------------------ calls */
