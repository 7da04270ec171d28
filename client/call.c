#include "call.h"

#include <stdlib.h>
#include <string.h>

#include <grpc/support/time.h>

#include "bgloop.h"
#include "log.h"
#include "pbio.h"

enum { OP_SEND, OP_RECV, OP_STATUS, OP_KINDS };

struct call_op {
    bgloop_event ev; /* first: the tag */
    la_call *call;
    int kind;
};

struct la_call {
    grpc_call *call;
    struct call_op ops[OP_KINDS];
    bool busy[OP_KINDS];
    const la_call_handler *h;
    void *owner;
    int *live;
    bool released;
    bool in_dispatch;
    bool status_done;
    bool recv_done;
    bool close_pending;
    bool closed;
    grpc_byte_buffer *send_bb;
    grpc_byte_buffer *recv_bb;
    grpc_metadata_array initial_md;
    grpc_metadata_array trailing_md;
    grpc_status_code status;
    grpc_slice details;
};

static void call_event(bgloop_event *ev, bool ok);

static bool call_batch(la_call *c, int kind, const grpc_op *ops, size_t n)
{
    grpc_call_error err = grpc_call_start_batch(c->call, ops, n, &c->ops[kind], NULL);
    if (err != GRPC_CALL_OK) {
        log_warn("call", "grpc_call_start_batch (kind %d): error %d", kind, (int)err);
        return false;
    }
    c->busy[kind] = true;
    return true;
}

static bool start_recv(la_call *c, bool with_initial_md)
{
    grpc_op ops[2];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    if (with_initial_md) {
        ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[n].data.recv_initial_metadata.recv_initial_metadata = &c->initial_md;
        n++;
    }
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n].data.recv_message.recv_message = &c->recv_bb;
    n++;
    return call_batch(c, OP_RECV, ops, n);
}

static bool start_close(la_call *c)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    c->closed = true;
    c->close_pending = false;
    return call_batch(c, OP_SEND, &op, 1);
}

static void call_free(la_call *c)
{
    if (c->call)
        grpc_call_unref(c->call);
    if (c->send_bb)
        grpc_byte_buffer_destroy(c->send_bb);
    if (c->recv_bb)
        grpc_byte_buffer_destroy(c->recv_bb);
    grpc_metadata_array_destroy(&c->initial_md);
    grpc_metadata_array_destroy(&c->trailing_md);
    grpc_slice_unref(c->details);
    (*c->live)--;
    free(c);
}

static void maybe_free(la_call *c)
{
    if (!c->released || c->in_dispatch)
        return;
    for (int k = 0; k < OP_KINDS; k++)
        if (c->busy[k])
            return;
    call_free(c);
}

lookaside_status la_call_start(grpc_channel *ch, bgloop *loop, const char *method,
                               const ProtobufCMessage *first, bool half_close,
                               const la_call_handler *h, void *owner, int *live, la_call **out)
{
    *out = NULL;
    la_call *c = calloc(1, sizeof *c);
    if (c == NULL)
        return LOOKASIDE_ENOMEM;
    c->h = h;
    c->owner = owner;
    c->live = live;
    (*live)++;
    c->details = grpc_empty_slice();
    grpc_metadata_array_init(&c->initial_md);
    grpc_metadata_array_init(&c->trailing_md);
    for (int k = 0; k < OP_KINDS; k++) {
        bgloop_event_init(loop, &c->ops[k].ev, call_event);
        c->ops[k].call = c;
        c->ops[k].kind = k;
    }
    c->call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, bgloop_cq(loop),
                                       grpc_slice_from_static_string(method), NULL,
                                       gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (c->call == NULL) {
        c->released = true;
        call_free(c);
        return LOOKASIDE_ENOMEM;
    }
    grpc_op ops[3];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (first != NULL) {
        c->send_bb = pbio_pack(first);
        if (c->send_bb == NULL) {
            c->released = true;
            call_free(c);
            return LOOKASIDE_ENOMEM;
        }
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = c->send_bb;
        n++;
    }
    if (half_close) {
        ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
        c->closed = true;
    }
    grpc_op st;
    memset(&st, 0, sizeof st);
    st.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    st.data.recv_status_on_client.trailing_metadata = &c->trailing_md;
    st.data.recv_status_on_client.status = &c->status;
    st.data.recv_status_on_client.status_details = &c->details;
    bool ok = call_batch(c, OP_SEND, ops, n) && call_batch(c, OP_STATUS, &st, 1) &&
              start_recv(c, true);
    if (!ok) {
        /* Batches that did start complete after the cancel; the rest never
         * will. */
        c->released = true;
        grpc_call_cancel(c->call, NULL);
        maybe_free(c);
        return LOOKASIDE_EIO;
    }
    *out = c;
    return LOOKASIDE_OK;
}

lookaside_status la_call_send(la_call *c, const ProtobufCMessage *msg)
{
    if (c->closed || c->close_pending || c->status_done)
        return LOOKASIDE_ESHUTDOWN;
    if (c->busy[OP_SEND])
        return LOOKASIDE_ELIMIT;
    c->send_bb = pbio_pack(msg);
    if (c->send_bb == NULL)
        return LOOKASIDE_ENOMEM;
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = c->send_bb;
    if (!call_batch(c, OP_SEND, &op, 1)) {
        grpc_byte_buffer_destroy(c->send_bb);
        c->send_bb = NULL;
        return LOOKASIDE_EIO;
    }
    return LOOKASIDE_OK;
}

bool la_call_sending(const la_call *c)
{
    return c->busy[OP_SEND];
}

void la_call_half_close(la_call *c)
{
    if (c->closed || c->status_done)
        return;
    if (c->busy[OP_SEND]) {
        c->close_pending = true;
        return;
    }
    start_close(c);
}

void la_call_release(la_call *c)
{
    if (c == NULL || c->released)
        return;
    c->released = true;
    if (!c->status_done)
        grpc_call_cancel(c->call, NULL);
    maybe_free(c);
}

static void call_event(bgloop_event *ev, bool ok)
{
    struct call_op *op = (struct call_op *)ev;
    la_call *c = op->call;
    c->busy[op->kind] = false;
    c->in_dispatch = true;
    switch (op->kind) {
    case OP_SEND:
        if (c->send_bb) {
            grpc_byte_buffer_destroy(c->send_bb);
            c->send_bb = NULL;
        }
        if (!c->released && c->h->on_sent)
            c->h->on_sent(c->owner, c, ok);
        if (!c->released && ok && c->close_pending && !c->status_done)
            start_close(c);
        break;
    case OP_RECV: {
        grpc_byte_buffer *bb = c->recv_bb;
        c->recv_bb = NULL;
        if (!ok || bb == NULL)
            c->recv_done = true;
        if (!c->released && c->h->on_recv)
            c->h->on_recv(c->owner, c, c->recv_done ? NULL : bb);
        if (bb)
            grpc_byte_buffer_destroy(bb);
        if (!c->released && !c->recv_done && !start_recv(c, false))
            grpc_call_cancel(c->call, NULL);
        break;
    }
    case OP_STATUS: {
        c->status_done = true;
        if (!c->released && c->h->on_status) {
            char details[256];
            size_t n = GRPC_SLICE_LENGTH(c->details);
            if (n >= sizeof details)
                n = sizeof details - 1;
            memcpy(details, GRPC_SLICE_START_PTR(c->details), n);
            details[n] = '\0';
            c->h->on_status(c->owner, c, c->status, details);
        }
        break;
    }
    }
    c->in_dispatch = false;
    maybe_free(c);
}
