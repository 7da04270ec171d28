#include "rpc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "log.h"
#include "metrics.h"
#include "pbio.h"
#include "status.h"
#include "util.h"

enum { OP_CLOSE, OP_RECV, OP_SEND, OP_STATUS, OP_COUNT };

typedef struct rpc_op {
    loop_tag tag;
    rpc_call *call;
} rpc_op;

struct rpc_call {
    rpc_server *srv;
    const rpc_method *m;
    grpc_call *call;
    rpc_op ops[OP_COUNT];
    int pending;               /* batches in flight */
    int cancelled;             /* out-param of RECV_CLOSE_ON_SERVER */
    bool closed;               /* on_close delivered */
    bool md_sent, sending, receiving, half_closed;
    bool finish_requested, status_posted;
    grpc_status_code fin_code;
    char *fin_msg;
    grpc_byte_buffer *send_bb;
    grpc_byte_buffer *recv_bb;
    char *peer;
    char peer_host[64];
    bool counted;              /* holds per-peer call (and stream) slots */
    bool awaiting_first;       /* no message yet: holds a per-peer pending slot */
    uint64_t first_timer;      /* loop timer bounding the wait for it; 0 none */
    auth_peer who;             /* filled when the server has an authorizer */
    char identity[AUTH_ID_MAX];
    void *user;
    rpc_call *prev, *next;
};

typedef struct rpc_accept {
    loop_tag tag;
    grpc_call_details details;   /* unknown-method acceptor only */
    rpc_server *srv;
    const rpc_method *m;
    void *reg;
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array md;
} rpc_accept;

/* Live calls per peer host, for the per-peer caps: every call, streaming
 * calls, and calls still waiting for their first message. */
typedef struct peer_count {
    char host[64];
    size_t calls, streams, waiting;
    struct peer_count *next;
} peer_count;
#define PEER_BUCKETS 1024

struct rpc_server {
    peer_count *peers[PEER_BUCKETS];
    loop *l;
    grpc_server *server;
    const rpc_method *methods;
    size_t n_methods;
    void **regs;
    rpc_options opt;
    rpc_call *live;
    size_t n_live;
    size_t n_accepts;      /* outstanding accept contexts */
    bool shutting_down;
    bool shutdown_done;
    bool started;
    loop_tag shutdown_tag;
    rpc_method unknown;          /* answers unregistered methods */
};

static void call_maybe_free(rpc_call *c);
static void post_status(rpc_call *c);
static void post_recv(rpc_call *c);
static void first_message_seen(rpc_call *c);

/* ------------------------------------------------------------------ batches */

static bool start_batch(rpc_call *c, int kind, grpc_op *ops, size_t n)
{
    grpc_call_error err = grpc_call_start_batch(c->call, ops, n, &c->ops[kind].tag, NULL);
    if (err != GRPC_CALL_OK) {
        /* No completion will be posted for a failed batch. */
        log_error("rpc", "%s: start_batch(kind %d) failed: %d", c->m->path, kind, (int)err);
        return false;
    }
    c->pending++;
    return true;
}

static void post_status(rpc_call *c)
{
    grpc_op ops[2];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    if (!c->md_sent) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        n++;
        c->md_sent = true;
    }
    grpc_slice details = grpc_slice_from_copied_string(c->fin_msg ? c->fin_msg : "");
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = c->fin_code;
    ops[n].data.send_status_from_server.status_details = c->fin_msg ? &details : NULL;
    n++;
    c->status_posted = true;
    start_batch(c, OP_STATUS, ops, n);
    grpc_slice_unref(details);
}

static bool post_send(rpc_call *c, grpc_byte_buffer *bb, bool with_status)
{
    grpc_op ops[3];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    if (!c->md_sent) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        n++;
    }
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].data.send_message.send_message = bb;
    n++;
    if (with_status) {
        ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[n].data.send_status_from_server.status = GRPC_STATUS_OK;
        n++;
    }
    if (!start_batch(c, OP_SEND, ops, n)) {
        grpc_byte_buffer_destroy(bb);
        return false;
    }
    c->md_sent = true;
    c->sending = true;
    c->send_bb = bb;
    if (with_status) {
        c->finish_requested = true;
        c->status_posted = true;
    }
    return true;
}

static void post_recv(rpc_call *c)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->recv_bb;
    if (start_batch(c, OP_RECV, &op, 1))
        c->receiving = true;
}

/* --------------------------------------------------------------- completions */

static void on_close_done(loop_tag *t, bool ok)
{
    rpc_call *c = ((rpc_op *)t)->call;
    (void)ok;
    c->pending--;
    c->closed = true;
    if (c->m->on_close)
        c->m->on_close(c, c->cancelled != 0);
    call_maybe_free(c);
}

/* True when d is a union and nothing else (every field in one oneof, as
 * LoadReport and LoadBalanceRequest are) and m sets none of its members:
 * such a message means nothing, and random bytes often decode as one made
 * only of unknown fields. Writes the member names into names. */
static bool empty_union(const ProtobufCMessageDescriptor *d, const ProtobufCMessage *m,
                        char *names, size_t len)
{
    if (d->n_fields == 0)
        return false;
    unsigned q = d->fields[0].quantifier_offset;
    for (unsigned i = 0; i < d->n_fields; i++)
        if (!(d->fields[i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF) ||
            d->fields[i].quantifier_offset != q)
            return false;
    uint32_t which;
    memcpy(&which, (const char *)m + q, sizeof which);
    if (which != 0)
        return false;
    size_t n = 0;
    names[0] = '\0';
    for (unsigned i = 0; i < d->n_fields && n < len; i++) {
        int k = snprintf(names + n, len - n, "%s%s", i ? ", " : "", d->fields[i].name);
        n += k > 0 ? (size_t)k : 0;
    }
    return true;
}

/* Decodes one received message; on a refusal finishes the call (naming
 * the field when a string holds a NUL) and returns NULL. */
static ProtobufCMessage *decode(rpc_call *c, grpc_byte_buffer *bb)
{
    ProtobufCMessage *msg = NULL;
    char why[256];
    lookaside_status st =
        pbio_unpack_why(c->m->req_desc, bb, c->m->max_req_bytes, &msg, why, sizeof why);
    if (st == LOOKASIDE_ETOOBIG)
        rpc_fail(c, st, "message of %zu bytes is over the %zu-byte cap",
                 grpc_byte_buffer_length(bb), c->m->max_req_bytes);
    else if (st != LOOKASIDE_OK)
        rpc_fail(c, st, "%s", why);
    else if (empty_union(c->m->req_desc, msg, why, sizeof why)) {
        rpc_fail(c, LOOKASIDE_EINVAL, "%s: none of %s is set", c->m->req_desc->short_name, why);
        protobuf_c_message_free_unpacked(msg, NULL);
        msg = NULL;
    }
    return msg;
}

static void deliver(rpc_call *c, grpc_byte_buffer *bb)
{
    ProtobufCMessage *msg = decode(c, bb);
    if (msg == NULL)
        return;
    c->m->on_message(c, msg);
    protobuf_c_message_free_unpacked(msg, NULL);
}

/* Unary and server-streaming calls: the request arrived (bb NULL: the peer
 * half-closed without one); decode it and start the handler. */
static void start_with_request(rpc_call *c, grpc_byte_buffer *bb)
{
    if (bb == NULL) {
        rpc_fail(c, LOOKASIDE_EINVAL, "missing request message");
        return;
    }
    ProtobufCMessage *req = decode(c, bb);
    if (req != NULL) {
        /* Authorization (server/auth.h) once the service is known; a request
         * without a service field is about every service. */
        const char *svc = auth_request_service(req);
        if (rpc_authorize(c, c->m->perm, svc ? svc : "*"))
            c->m->on_start(c, req);
        protobuf_c_message_free_unpacked(req, NULL);
    }
}

static void on_recv_done(loop_tag *t, bool ok)
{
    rpc_call *c = ((rpc_op *)t)->call;
    grpc_byte_buffer *bb = c->recv_bb;
    c->recv_bb = NULL;
    c->pending--;
    c->receiving = false;
    first_message_seen(c);
    if (!c->closed && !c->finish_requested && c->m->kind != RPC_BIDI) {
        /* A broken call (!ok) ends through the close op; no refusal to log. */
        if (ok)
            start_with_request(c, bb);
    } else if (!c->closed && !c->finish_requested) {
        if (!ok || bb == NULL) {
            c->half_closed = true;
            c->m->on_message(c, NULL);
        } else {
            deliver(c, bb);
            if (!c->closed && !c->finish_requested && !c->half_closed)
                post_recv(c);
        }
    }
    if (bb)
        grpc_byte_buffer_destroy(bb);
    call_maybe_free(c);
}

static void on_send_done(loop_tag *t, bool ok)
{
    rpc_call *c = ((rpc_op *)t)->call;
    c->pending--;
    c->sending = false;
    grpc_byte_buffer_destroy(c->send_bb);
    c->send_bb = NULL;
    if (c->finish_requested && !c->status_posted && !c->closed)
        post_status(c);
    else if (!c->closed && !c->finish_requested && c->m->on_send_done)
        c->m->on_send_done(c, ok);
    call_maybe_free(c);
}

static void on_status_done(loop_tag *t, bool ok)
{
    rpc_call *c = ((rpc_op *)t)->call;
    (void)ok;
    c->pending--;
    call_maybe_free(c);
}

static peer_count **peer_slot(rpc_server *s, const char *host)
{
    uint32_t h = 2166136261u;
    for (const char *p = host; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    peer_count **pp = &s->peers[h % PEER_BUCKETS];
    while (*pp && strcmp((*pp)->host, host) != 0)
        pp = &(*pp)->next;
    return pp;
}

/* Takes c's slots in its peer's counts. When a cap is reached, finishes c
 * with RESOURCE_EXHAUSTED naming the limit and returns false. */
static bool peer_take(rpc_server *s, rpc_call *c)
{
    const rpc_options *o = &s->opt;
    bool stream = c->m->kind != RPC_UNARY;
    peer_count **pp = peer_slot(s, c->peer_host);
    peer_count *pc = *pp;
    if (pc == NULL) {
        pc = calloc(1, sizeof *pc);
        if (pc == NULL) {
            rpc_fail(c, LOOKASIDE_ENOMEM, "out of memory");
            return false;
        }
        snprintf(pc->host, sizeof pc->host, "%s", c->peer_host);
        *pp = pc;
    }
    if (o->max_calls_per_peer && pc->calls >= o->max_calls_per_peer)
        rpc_fail(c, LOOKASIDE_ELIMIT, "too many calls from %s (limit %zu, --max-calls-per-peer)",
                 c->peer_host, o->max_calls_per_peer);
    else if (stream && o->max_streams_per_peer && pc->streams >= o->max_streams_per_peer)
        rpc_fail(c, LOOKASIDE_ELIMIT, "too many streams from %s (limit %zu)", c->peer_host,
                 o->max_streams_per_peer);
    else if (o->max_waiting_per_peer && pc->waiting >= o->max_waiting_per_peer)
        rpc_fail(c, LOOKASIDE_ELIMIT,
                 "too many calls from %s without a first message (limit %zu, "
                 "--max-waiting-per-peer)",
                 c->peer_host, o->max_waiting_per_peer);
    if (c->finish_requested) {
        if (pc->calls == 0) {   /* created above for nothing */
            *pp = pc->next;
            free(pc);
        }
        return false;
    }
    pc->calls++;
    pc->streams += stream;
    pc->waiting++;
    c->counted = true;
    c->awaiting_first = true;
    return true;
}

static void peer_release(rpc_server *s, rpc_call *c)
{
    if (!c->counted)
        return;
    peer_count **pp = peer_slot(s, c->peer_host);
    peer_count *pc = *pp;
    if (pc) {
        pc->streams -= c->m->kind != RPC_UNARY;
        pc->waiting -= c->awaiting_first;
        if (--pc->calls == 0) {
            *pp = pc->next;
            free(pc);
        }
    }
    c->awaiting_first = false;
    c->counted = false;
}

/* The first message arrived (or the peer half-closed, or the call broke):
 * the call no longer counts as waiting and its timer goes. */
static void first_message_seen(rpc_call *c)
{
    if (c->first_timer) {
        loop_timer_cancel(c->srv->l, c->first_timer);
        c->first_timer = 0;
    }
    if (!c->awaiting_first)
        return;
    c->awaiting_first = false;
    peer_count *pc = *peer_slot(c->srv, c->peer_host);
    if (pc)
        pc->waiting--;
}

static void on_first_timeout(loop *l, void *arg)
{
    rpc_call *c = arg;
    (void)l;
    c->first_timer = 0;
    if (c->awaiting_first)
        rpc_fail(c, LOOKASIDE_ETIMEOUT,
                 "no request message within %lld ms of the call (--request-timeout-ms)",
                 (long long)c->srv->opt.request_timeout_ms);
}

static void call_maybe_free(rpc_call *c)
{
    if (c->pending > 0 || !c->closed)
        return;
    rpc_server *s = c->srv;
    first_message_seen(c);
    peer_release(s, c);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->live = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_live--;
    grpc_call_unref(c->call);
    if (c->peer)
        gpr_free(c->peer);
    free(c->fin_msg);
    free(c);
}

/* ------------------------------------------------------------------- accept */

static void accept_arm(rpc_accept *a);

static void peer_host_from(const char *peer, char *out, size_t len)
{
    const char *p = peer;
    if (strncmp(p, "ipv4:", 5) == 0 || strncmp(p, "ipv6:", 5) == 0)
        p += 5;
    const char *colon = strrchr(p, ':');
    size_t n = colon ? (size_t)(colon - p) : strlen(p);
    if (n >= len)
        n = len - 1;
    memcpy(out, p, n);
    out[n] = '\0';
}

static void on_accept(loop_tag *t, bool ok)
{
    rpc_accept *a = (rpc_accept *)t;
    rpc_server *s = a->srv;
    char unknown_path[128] = "";
    if (a->m == &s->unknown) {
        size_t n = GRPC_SLICE_LENGTH(a->details.method);
        if (n >= sizeof unknown_path)
            n = sizeof unknown_path - 1;
        memcpy(unknown_path, GRPC_SLICE_START_PTR(a->details.method), n);
        unknown_path[n] = '\0';
        grpc_call_details_destroy(&a->details);
    }
    if (!ok || s->shutting_down) {
        if (a->call)
            grpc_call_unref(a->call);
        grpc_metadata_array_destroy(&a->md);
        s->n_accepts--;
        free(a);
        return;
    }
    rpc_call *c = calloc(1, sizeof *c);
    if (c == NULL) {
        log_error("rpc", "out of memory accepting %s", a->m->path);
        grpc_call_cancel_with_status(a->call, la_status_to_grpc(LOOKASIDE_ENOMEM), "out of memory",
                                     NULL);
        grpc_call_unref(a->call);
        a->call = NULL;
        accept_arm(a);
        return;
    }
    c->srv = s;
    c->m = a->m;
    c->call = a->call;
    for (int i = 0; i < OP_COUNT; i++)
        c->ops[i].call = c;
    c->ops[OP_CLOSE].tag.fn = on_close_done;
    c->ops[OP_RECV].tag.fn = on_recv_done;
    c->ops[OP_SEND].tag.fn = on_send_done;
    c->ops[OP_STATUS].tag.fn = on_status_done;
    c->peer = grpc_call_get_peer(c->call);
    peer_host_from(c->peer ? c->peer : "", c->peer_host, sizeof c->peer_host);
    if (s->opt.auth) {
        auth_peer_from_call(c->call, &a->md, &c->who);
        auth_identity(s->opt.auth, &c->who, c->identity, sizeof c->identity);
    }
    c->next = s->live;
    if (s->live)
        s->live->prev = c;
    s->live = c;
    s->n_live++;
    a->call = NULL;
    grpc_metadata_array_destroy(&a->md);
    accept_arm(a);

    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->cancelled;
    if (!start_batch(c, OP_CLOSE, &op, 1)) {
        /* Without the close op we would never learn the call ended. */
        grpc_call_cancel(c->call, NULL);
        c->closed = true;
        call_maybe_free(c);
        return;
    }
    if (s->opt.auth && !auth_peer_admitted(s->opt.auth, &c->who)) {
        rpc_fail(c, LOOKASIDE_EUNAUTH,
                 "protected mode: without TLS or --insecure only loopback peers are served");
    } else if (c->m == &s->unknown) {
        for (char *p = unknown_path; *p; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
                *p = '?';
        /* UNIMPLEMENTED is a transport-level answer with no lookaside_status
         * of its own (the public enum stays as released). */
        rpc_finish(c, GRPC_STATUS_UNIMPLEMENTED, "unknown method %s", unknown_path);
    } else if (c->m->kind != RPC_BIDI && !rpc_authorize(c, c->m->perm, NULL)) {
        /* Refused before decoding: no identity, or the permission for no
         * service at all. Bidi handlers check once the first message names
         * the service (and may carry a credential). */
    } else if (peer_take(s, c)) {
        /* Every call, whatever its kind, is accepted before its first
         * message (GRPC_SRM_PAYLOAD_NONE) and waits for it under a timer:
         * a peer that opens calls and never sends holds a bounded number of
         * them for a bounded time, and we can see and count them. */
        if (s->opt.request_timeout_ms > 0)
            c->first_timer = loop_timer_add(s->l, clock_mono_ms() + s->opt.request_timeout_ms,
                                            on_first_timeout, c);
        if (c->m->kind == RPC_BIDI && c->m->on_start)
            c->m->on_start(c, NULL);
        if (!c->finish_requested && !c->closed)
            post_recv(c);
    }
}

static void accept_arm(rpc_accept *a)
{
    rpc_server *s = a->srv;
    grpc_metadata_array_init(&a->md);
    grpc_call_error err;
    if (a->m == &s->unknown) {
        grpc_call_details_init(&a->details);
        err = grpc_server_request_call(s->server, &a->call, &a->details, &a->md, loop_cq(s->l),
                                       loop_cq(s->l), &a->tag);
    } else {
        err = grpc_server_request_registered_call(
            s->server, a->reg, &a->call, &a->deadline, &a->md, NULL, loop_cq(s->l),
            loop_cq(s->l), &a->tag);
    }
    if (err != GRPC_CALL_OK) {
        log_error("rpc", "request_registered_call(%s) failed: %d", a->m->path, (int)err);
        grpc_metadata_array_destroy(&a->md);
        s->n_accepts--;
        free(a);
    }
}

/* ------------------------------------------------------------------- server */

lookaside_status rpc_server_create(loop *l, const rpc_options *opt, const rpc_method *methods,
                                   size_t n, rpc_server **out)
{
    rpc_server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return LOOKASIDE_ENOMEM;
    s->regs = calloc(n, sizeof *s->regs);
    if (s->regs == NULL) {
        free(s);
        return LOOKASIDE_ENOMEM;
    }
    s->l = l;
    s->opt = *opt;
    if (s->opt.accepts_per_method <= 0)
        s->opt.accepts_per_method = 4;
    s->methods = methods;
    s->n_methods = n;
    grpc_arg args[2];
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = (int)opt->max_message_bytes;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = GRPC_ARG_ALLOW_REUSEPORT;
    args[1].value.integer = 0;
    grpc_channel_args cargs = {2, args};
    s->server = grpc_server_create(&cargs, NULL);
    grpc_server_register_completion_queue(s->server, loop_cq(l), NULL);
    for (size_t i = 0; i < n; i++) {
        /* PAYLOAD_NONE for every kind: with READ_INITIAL_BYTE_BUFFER core
         * holds a call until its request arrives, invisible to the caps and
         * timers above (half-open calls piled up in core unbounded). */
        s->regs[i] = grpc_server_register_method(s->server, methods[i].path, NULL,
                                                 GRPC_SRM_PAYLOAD_NONE, 0);
        if (s->regs[i] == NULL) {
            log_error("rpc", "cannot register %s", methods[i].path);
            grpc_server_destroy(s->server);
            free(s->regs);
            free(s);
            return LOOKASIDE_EINTERNAL;
        }
    }
    *out = s;
    return LOOKASIDE_OK;
}

int rpc_server_bind(rpc_server *s, const char *addr)
{
    grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
    int port = rpc_server_bind_creds(s, addr, creds);
    grpc_server_credentials_release(creds);
    return port;
}

int rpc_server_bind_creds(rpc_server *s, const char *addr, grpc_server_credentials *creds)
{
    return grpc_server_add_http2_port(s->server, addr, creds);
}

static void on_shutdown_done(loop_tag *t, bool ok)
{
    (void)ok;
    rpc_server *s = (rpc_server *)((char *)t - offsetof(rpc_server, shutdown_tag));
    s->shutdown_done = true;
}

lookaside_status rpc_server_start(rpc_server *s)
{
    grpc_server_start(s->server);
    s->started = true;
    s->unknown = (rpc_method){.path = "(unknown method)", .kind = RPC_UNARY};
    for (int k = 0; k < 2; k++) {
        rpc_accept *a = calloc(1, sizeof *a);
        if (a == NULL)
            return LOOKASIDE_ENOMEM;
        a->tag.fn = on_accept;
        a->srv = s;
        a->m = &s->unknown;
        s->n_accepts++;
        accept_arm(a);
    }
    for (size_t i = 0; i < s->n_methods; i++) {
        for (int k = 0; k < s->opt.accepts_per_method; k++) {
            rpc_accept *a = calloc(1, sizeof *a);
            if (a == NULL)
                return LOOKASIDE_ENOMEM;
            a->tag.fn = on_accept;
            a->srv = s;
            a->m = &s->methods[i];
            a->reg = s->regs[i];
            s->n_accepts++;
            accept_arm(a);
        }
    }
    return LOOKASIDE_OK;
}

void rpc_server_shutdown(rpc_server *s, int64_t grace_ms)
{
    if (s->shutting_down)
        return;
    s->shutting_down = true;
    for (rpc_call *c = s->live; c; c = c->next)
        if (!c->closed && !c->finish_requested)
            rpc_fail(c, LOOKASIDE_ESHUTDOWN, "server shutting down");
    s->shutdown_tag.fn = on_shutdown_done;
    grpc_server_shutdown_and_notify(s->server, loop_cq(s->l), &s->shutdown_tag);
    /* The grace is for our calls to deliver their UNAVAILABLE. Core's
     * shutdown tag also waits for every connection to close, and a client
     * holding an idle channel may never close it: once no call is live,
     * cancel_all_calls disconnects the rest at once. */
    int64_t until = clock_mono_ms() + grace_ms;
    while (s->n_live > 0 && !s->shutdown_done && clock_mono_ms() < until)
        loop_once(s->l, 20);
    if (s->n_live == 0)
        log_debug("rpc", "shutdown: no live calls; closing the remaining connections");
    grpc_server_cancel_all_calls(s->server);
    until = clock_mono_ms() + 5000;
    while ((s->n_live > 0 || !s->shutdown_done || s->n_accepts > 0) && clock_mono_ms() < until)
        loop_once(s->l, 20);
    if (s->n_live > 0 || !s->shutdown_done)
        log_warn("rpc", "shutdown: %zu calls still live", s->n_live);
}

void rpc_server_destroy(rpc_server *s)
{
    if (s == NULL)
        return;
    if (s->server)
        grpc_server_destroy(s->server);
    for (size_t i = 0; i < PEER_BUCKETS; i++)
        for (peer_count *pc = s->peers[i], *next; pc; pc = next) {
            next = pc->next;
            free(pc);
        }
    free(s->regs);
    free(s);
}

size_t rpc_server_live_calls(const rpc_server *s) { return s->n_live; }

/* --------------------------------------------------------------------- call */

bool rpc_send_buffer(rpc_call *c, grpc_byte_buffer *bb)
{
    if (c->closed || c->finish_requested || c->sending)
        return false;
    return post_send(c, grpc_byte_buffer_copy(bb), false);
}

bool rpc_send(rpc_call *c, const ProtobufCMessage *msg)
{
    if (c->closed || c->finish_requested || c->sending)
        return false;
    grpc_byte_buffer *bb = pbio_pack(msg);
    if (bb == NULL)
        return false;
    return post_send(c, bb, false);
}

bool rpc_send_in_flight(const rpc_call *c) { return c->sending; }

void rpc_reply(rpc_call *c, const ProtobufCMessage *msg)
{
    if (c->closed || c->finish_requested || c->sending)
        return;
    grpc_byte_buffer *bb = pbio_pack(msg);
    if (bb == NULL) {
        rpc_fail(c, LOOKASIDE_ENOMEM, "out of memory");
        return;
    }
    post_send(c, bb, true);
}

void rpc_reply_buffer(rpc_call *c, grpc_byte_buffer *bb)
{
    if (c->closed || c->finish_requested || c->sending)
        return;
    post_send(c, grpc_byte_buffer_copy(bb), true);
}

static void finish_v(rpc_call *c, grpc_status_code code, const char *fmt, va_list ap)
{
    if (c->closed || c->finish_requested)
        return;
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    c->finish_requested = true;
    c->fin_code = code;
    c->fin_msg = strdup(buf);
    /* Keyed by the refusal's own format: each kind of refusal gets its own
     * rate-limit budget, so a flood of one hides no other. */
    if (code != GRPC_STATUS_OK && code != GRPC_STATUS_UNAVAILABLE)
        log_msg_key(fmt, LA_LOG_WARN, "rpc", "%s from %s: status %d: %s", c->m->path,
                    c->peer ? c->peer : "?", (int)code, buf);
    else if (code != GRPC_STATUS_OK)
        log_debug("rpc", "%s from %s: status %d: %s", c->m->path, c->peer ? c->peer : "?",
                  (int)code, buf);
    if (!c->sending)
        post_status(c);
}

void rpc_finish(rpc_call *c, grpc_status_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    finish_v(c, code, fmt, ap);
    va_end(ap);
}

void rpc_fail(rpc_call *c, lookaside_status st, const char *fmt, ...)
{
    va_list ap;
    METRIC_REFUSED(c->m->path, st);
    va_start(ap, fmt);
    finish_v(c, la_status_to_grpc(st), fmt, ap);
    va_end(ap);
}

bool rpc_finished(const rpc_call *c) { return c->closed || c->finish_requested; }
void rpc_set_user(rpc_call *c, void *user) { c->user = user; }
void *rpc_user(const rpc_call *c) { return c->user; }
void *rpc_method_ctx(const rpc_call *c) { return c->m->ctx; }
loop *rpc_loop(const rpc_call *c) { return c->srv->l; }
const char *rpc_method_path(const rpc_call *c) { return c->m->path; }
const char *rpc_peer(const rpc_call *c) { return c->peer ? c->peer : "?"; }
const char *rpc_peer_host(const rpc_call *c) { return c->peer_host; }

const auth_peer *rpc_auth_peer(const rpc_call *c) { return c->srv->opt.auth ? &c->who : NULL; }
const char *rpc_identity(const rpc_call *c) { return c->identity; }

void rpc_auth_add_token(rpc_call *c, const char *token)
{
    if (c->srv->opt.auth == NULL || token == NULL || token[0] == '\0')
        return;
    auth_peer_add_token(&c->who, token);
    auth_identity(c->srv->opt.auth, &c->who, c->identity, sizeof c->identity);
}

bool rpc_authorize(rpc_call *c, auth_perm perm, const char *service)
{
    auth *a = c->srv->opt.auth;
    if (a == NULL)
        return true;
    lookaside_status st = auth_check(a, &c->who, perm, service);
    if (st == LOOKASIDE_OK)
        return true;
    /* Never the token: only the identity it maps to, if any. */
    char need[300];
    if ((perm == AUTH_PERM_WATCH || perm == AUTH_PERM_REPORT) && service)
        snprintf(need, sizeof need, "%s:%.253s", auth_perm_name(perm), service);
    else
        snprintf(need, sizeof need, "%s", auth_perm_name(perm));
    if (st == LOOKASIDE_EUNAUTH)
        rpc_fail(c, st, "no identity for %s (needs %s): present a client certificate or a "
                        "bearer token the policy knows", c->m->path, need);
    else
        rpc_fail(c, st, "identity %s lacks %s for %s", c->identity, need, c->m->path);
    return false;
}
