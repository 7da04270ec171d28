#include "ctl_rpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>

#include "pbio.h"
#include "util.h"

/* Replies bigger than gRPC's 4 MiB default are legitimate (a service with
 * many backends, each explained). */
#define CTL_MAX_REPLY_BYTES (64u << 20)

struct ctl_conn {
    grpc_channel *ch;
    grpc_completion_queue *cq;
    grpc_metadata md;        /* authorization, when a token was given */
    size_t n_md;
};

/* One tag per operation kind, so each completion is attributed. */
enum { TAG_CONNECT = 1, TAG_START, TAG_RECV, TAG_STATUS, TAG_UNARY };

static const char *const status_names[] = {
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED"};

const char *ctl_status_name(int code)
{
    if (code < 0 || (size_t)code >= sizeof status_names / sizeof status_names[0])
        return "UNKNOWN_CODE";
    return status_names[code];
}

void ctl_rpc_init(void) { grpc_init(); }
void ctl_rpc_shutdown(void) { grpc_shutdown(); }

static gpr_timespec mono_deadline(int64_t deadline_ms)
{
    int64_t left = deadline_ms - clock_mono_ms();
    if (left < 0)
        left = 0;
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(left, GPR_TIMESPAN));
}

static void set_status(ctl_status *st, int code, bool unreachable, const char *msg)
{
    st->code = code;
    st->unreachable = unreachable;
    snprintf(st->message, sizeof st->message, "%s", msg);
}

static void set_status_slice(ctl_status *st, grpc_status_code code, grpc_slice details)
{
    size_t n = GRPC_SLICE_LENGTH(details);
    if (n >= sizeof st->message)
        n = sizeof st->message - 1;
    st->code = code;
    st->unreachable = false;
    memcpy(st->message, GRPC_SLICE_START_PTR(details), n);
    st->message[n] = '\0';
}

/* Waits for a completion on the connection's queue. */
static grpc_event next_event(ctl_conn *c, gpr_timespec deadline)
{
    return grpc_completion_queue_next(c->cq, deadline, NULL);
}

/* TLS channel credentials from sec's files; NULL (and st set) when one
 * cannot be read. */
static grpc_channel_credentials *tls_creds(const ctl_security *sec, ctl_status *st)
{
    char *ca = util_read_file(sec->ca, 1u << 20, NULL);
    char *cert = sec->cert ? util_read_file(sec->cert, 1u << 20, NULL) : NULL;
    char *key = sec->key ? util_read_file(sec->key, 1u << 20, NULL) : NULL;
    const char *bad = ca == NULL ? sec->ca : sec->cert && !cert ? sec->cert
                                          : sec->key && !key    ? sec->key : NULL;
    grpc_channel_credentials *creds = NULL;
    if (bad) {
        snprintf(st->message, sizeof st->message, "cannot read %s", bad);
        st->code = GRPC_STATUS_INVALID_ARGUMENT;
        st->unreachable = false;
        st->bad_file = true;
    } else {
        grpc_ssl_pem_key_cert_pair pair = {key, cert};
        creds = grpc_ssl_credentials_create(ca, cert ? &pair : NULL, NULL, NULL);
    }
    free(ca);
    free(cert);
    if (key) {
        memset(key, 0, strlen(key));   /* do not leave the key in freed memory */
        free(key);
    }
    return creds;
}

int ctl_connect(const char *target, const ctl_security *sec, int64_t deadline_ms, ctl_conn **out,
                ctl_status *st)
{
    *out = NULL;
    ctl_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        set_status(st, GRPC_STATUS_RESOURCE_EXHAUSTED, false, "out of memory");
        return -1;
    }
    grpc_arg arg[2] = {{.type = GRPC_ARG_INTEGER,
                        .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
                        .value.integer = (int)CTL_MAX_REPLY_BYTES}};
    grpc_channel_args args = {.num_args = 1, .args = arg};
    grpc_channel_credentials *creds = NULL;
    if (sec && sec->ca) {
        if ((creds = tls_creds(sec, st)) == NULL) {
            free(c);
            return -1;
        }
        if (sec->server_name) {
            arg[1].type = GRPC_ARG_STRING;
            arg[1].key = GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
            arg[1].value.string = (char *)sec->server_name;
            args.num_args = 2;
        }
    } else {
        creds = grpc_insecure_credentials_create();
    }
    if (sec && sec->token) {
        /* Metadata rather than call credentials: gRPC sends those over TLS
         * only, and a loopback balancer may want a token in plaintext. */
        char *v = malloc(strlen(sec->token) + 8);
        if (v == NULL) {
            grpc_channel_credentials_release(creds);
            free(c);
            set_status(st, GRPC_STATUS_RESOURCE_EXHAUSTED, false, "out of memory");
            return -1;
        }
        snprintf(v, strlen(sec->token) + 8, "Bearer %s", sec->token);
        c->md.key = grpc_slice_from_static_string("authorization");
        c->md.value = grpc_slice_from_copied_string(v);
        memset(v, 0, strlen(v));
        free(v);
        c->n_md = 1;
    }
    c->ch = grpc_channel_create(target, creds, &args);
    grpc_channel_credentials_release(creds);
    c->cq = grpc_completion_queue_create_for_next(NULL);

    /* Connect first, separately from any call: "cannot reach the balancer"
     * (exit 3) is then told apart from errors the balancer returns. */
    grpc_connectivity_state s = grpc_channel_check_connectivity_state(c->ch, 1);
    while (s != GRPC_CHANNEL_READY) {
        if (s == GRPC_CHANNEL_TRANSIENT_FAILURE || s == GRPC_CHANNEL_SHUTDOWN) {
            set_status(st, GRPC_STATUS_UNAVAILABLE, true,
                       sec && sec->ca ? "connection or TLS handshake failed" : "connection failed");
            ctl_close(c);
            return -1;
        }
        if (clock_mono_ms() >= deadline_ms) {
            set_status(st, GRPC_STATUS_DEADLINE_EXCEEDED, true, "timed out connecting");
            ctl_close(c);
            return -1;
        }
        /* Completes on a state change or at the deadline; either way the
         * loop re-reads the state. */
        grpc_channel_watch_connectivity_state(c->ch, s, mono_deadline(deadline_ms), c->cq,
                                              (void *)TAG_CONNECT);
        next_event(c, gpr_inf_future(GPR_CLOCK_MONOTONIC));
        s = grpc_channel_check_connectivity_state(c->ch, 0);
    }
    *out = c;
    return 0;
}

void ctl_close(ctl_conn *c)
{
    if (c == NULL)
        return;
    grpc_channel_destroy(c->ch);
    if (c->n_md)
        grpc_slice_unref(c->md.value);
    grpc_completion_queue_shutdown(c->cq);
    while (next_event(c, gpr_inf_future(GPR_CLOCK_MONOTONIC)).type != GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(c->cq);
    free(c);
}

static grpc_call *new_call(ctl_conn *c, const char *method, gpr_timespec deadline)
{
    grpc_slice m = grpc_slice_from_static_string(method);
    return grpc_channel_create_call(c->ch, NULL, GRPC_PROPAGATE_DEFAULTS, c->cq, m, NULL, deadline,
                                    NULL);
}

/* Waits for tag; other completions (none expected) are ignored. */
static void wait_tag(ctl_conn *c, intptr_t tag)
{
    for (;;) {
        grpc_event ev = next_event(c, gpr_inf_future(GPR_CLOCK_MONOTONIC));
        if (ev.type == GRPC_OP_COMPLETE && (intptr_t)ev.tag == tag)
            return;
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            return;
    }
}

/* Unpacks a received message into *out, or fills st. */
static int unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *d, ProtobufCMessage **out,
                  ctl_status *st)
{
    if (pbio_unpack(d, bb, CTL_MAX_REPLY_BYTES, out) == LOOKASIDE_OK)
        return 0;
    set_status(st, GRPC_STATUS_INTERNAL, false, "the reply could not be decoded");
    return -1;
}

int ctl_unary(ctl_conn *c, const char *method, const ProtobufCMessage *req,
              const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
              int64_t deadline_ms, ctl_status *st)
{
    *resp = NULL;
    grpc_byte_buffer *sbb = pbio_pack(req);
    if (sbb == NULL) {
        set_status(st, GRPC_STATUS_RESOURCE_EXHAUSTED, false, "out of memory");
        return -1;
    }
    /* The call carries the deadline, so the batch always completes (at
     * worst with DEADLINE_EXCEEDED): waiting without a limit is safe. */
    grpc_call *call = new_call(c, method, mono_deadline(deadline_ms));
    grpc_metadata_array md_init, md_trail;
    grpc_metadata_array_init(&md_init);
    grpc_metadata_array_init(&md_trail);
    grpc_byte_buffer *rbb = NULL;
    grpc_status_code code = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = c->n_md;
    ops[0].data.send_initial_metadata.metadata = c->n_md ? &c->md : NULL;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = sbb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &md_init;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &rbb;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &md_trail;
    ops[5].data.recv_status_on_client.status = &code;
    ops[5].data.recv_status_on_client.status_details = &details;
    int rc = -1;
    grpc_call_error e = grpc_call_start_batch(call, ops, 6, (void *)TAG_UNARY, NULL);
    if (e != GRPC_CALL_OK) {
        /* A refused batch posts no completion. */
        set_status(st, GRPC_STATUS_INTERNAL, false, grpc_call_error_to_string(e));
    } else {
        wait_tag(c, TAG_UNARY);
        if (code != GRPC_STATUS_OK)
            set_status_slice(st, code, details);
        else if (rbb == NULL)
            set_status(st, GRPC_STATUS_INTERNAL, false, "the server sent no reply message");
        else
            rc = unpack(rbb, resp_desc, resp, st);
    }
    if (rbb)
        grpc_byte_buffer_destroy(rbb);
    grpc_byte_buffer_destroy(sbb);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&md_init);
    grpc_metadata_array_destroy(&md_trail);
    grpc_call_unref(call);
    return rc;
}

/* State of one server-streaming call. */
typedef struct stream {
    grpc_call *call;
    grpc_metadata_array md_init, md_trail;
    grpc_byte_buffer *sbb, *rbb;
    grpc_status_code code;
    grpc_slice details;
    bool start_pending, recv_pending, status_pending;
} stream;

static void stream_on(stream *s, intptr_t tag)
{
    if (tag == TAG_START)
        s->start_pending = false;
    else if (tag == TAG_RECV)
        s->recv_pending = false;
    else if (tag == TAG_STATUS)
        s->status_pending = false;
}

static bool post_recv(stream *s)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &s->rbb;
    if (grpc_call_start_batch(s->call, &op, 1, (void *)TAG_RECV, NULL) != GRPC_CALL_OK)
        return false;
    s->recv_pending = true;
    return true;
}

int ctl_stream(ctl_conn *c, const char *method, const ProtobufCMessage *req,
               const ProtobufCMessageDescriptor *msg_desc, ctl_msg_fn on_msg, ctl_stop_fn stop,
               void *arg, ctl_status *st)
{
    stream s;
    memset(&s, 0, sizeof s);
    s.sbb = pbio_pack(req);
    if (s.sbb == NULL) {
        set_status(st, GRPC_STATUS_RESOURCE_EXHAUSTED, false, "out of memory");
        return -1;
    }
    s.call = new_call(c, method, gpr_inf_future(GPR_CLOCK_MONOTONIC));
    grpc_metadata_array_init(&s.md_init);
    grpc_metadata_array_init(&s.md_trail);
    s.code = GRPC_STATUS_UNKNOWN;
    s.details = grpc_empty_slice();

    grpc_op ops[4];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[0].data.recv_status_on_client.trailing_metadata = &s.md_trail;
    ops[0].data.recv_status_on_client.status = &s.code;
    ops[0].data.recv_status_on_client.status_details = &s.details;
    bool ok = grpc_call_start_batch(s.call, ops, 1, (void *)TAG_STATUS, NULL) == GRPC_CALL_OK;
    s.status_pending = ok;
    if (ok) {
        memset(ops, 0, sizeof ops);
        ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[0].data.send_initial_metadata.count = c->n_md;
        ops[0].data.send_initial_metadata.metadata = c->n_md ? &c->md : NULL;
        ops[1].op = GRPC_OP_SEND_MESSAGE;
        ops[1].data.send_message.send_message = s.sbb;
        ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
        ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[3].data.recv_initial_metadata.recv_initial_metadata = &s.md_init;
        ok = grpc_call_start_batch(s.call, ops, 4, (void *)TAG_START, NULL) == GRPC_CALL_OK;
        s.start_pending = ok;
    }
    ok = ok && post_recv(&s);

    enum { RUNNING, STOPPED, ENDED, FAILED } out = RUNNING;
    if (!ok) {
        set_status(st, GRPC_STATUS_INTERNAL, false, "could not start the call");
        out = FAILED;
    }
    while (out == RUNNING) {
        if (stop(arg)) {
            out = STOPPED;
            break;
        }
        grpc_event ev = next_event(
            c, gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(50, GPR_TIMESPAN)));
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        stream_on(&s, (intptr_t)ev.tag);
        if ((intptr_t)ev.tag != TAG_RECV)
            continue;
        if (s.rbb == NULL) {
            out = ENDED;   /* the status follows */
            break;
        }
        ProtobufCMessage *m = NULL;
        int urc = unpack(s.rbb, msg_desc, &m, st);
        grpc_byte_buffer_destroy(s.rbb);
        s.rbb = NULL;
        if (urc != 0) {
            out = FAILED;
            break;
        }
        bool more = on_msg(arg, m);
        protobuf_c_message_free_unpacked(m, NULL);
        if (!more) {
            out = STOPPED;
        } else if (!post_recv(&s)) {
            set_status(st, GRPC_STATUS_INTERNAL, false, "could not read from the call");
            out = FAILED;
        }
    }
    if (out != ENDED)
        grpc_call_cancel(s.call, NULL);
    /* Every posted batch completes (a cancelled call finishes them all)
     * before the memory they write into goes away. */
    while (s.start_pending || s.recv_pending || s.status_pending) {
        grpc_event ev = next_event(c, gpr_inf_future(GPR_CLOCK_MONOTONIC));
        if (ev.type != GRPC_OP_COMPLETE)
            break;
        stream_on(&s, (intptr_t)ev.tag);
    }
    if (out == ENDED)
        set_status_slice(st, s.code, s.details);
    if (s.rbb)
        grpc_byte_buffer_destroy(s.rbb);
    grpc_byte_buffer_destroy(s.sbb);
    grpc_slice_unref(s.details);
    grpc_metadata_array_destroy(&s.md_init);
    grpc_metadata_array_destroy(&s.md_trail);
    grpc_call_unref(s.call);
    return out == STOPPED ? 0 : -1;
}
