#include "fake_srv.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/support/time.h>

#include "lookaside/v1/lookaside.pb-c.h"
#include "pbio.h"

enum { T_NEW, T_RECV, T_SEND, T_CLOSE, T_KINDS };
enum { M_WATCH, M_REPORT, M_OTHER };

struct fcall;
struct ftag {
    struct fcall *fc;
    int kind;
};

struct fcall {
    fake_srv *f;
    grpc_call *call;
    grpc_call_details det;
    grpc_metadata_array md;
    struct ftag tags[T_KINDS];
    int method;
    int pending;
    bool closed;     /* RECV_CLOSE_ON_SERVER completed */
    bool sending;
    bool finished;   /* status sent */
    bool listed;     /* in f->calls */
    int cancelled;
    grpc_byte_buffer *recv;
    grpc_byte_buffer *send;
    uint64_t list_gen, hb_gen; /* what this watcher got */
    uint64_t received;         /* Report messages */
    bool ack_due;
    struct fcall *next;
};

struct fake_srv {
    grpc_server *s;
    grpc_completion_queue *cq;
    pthread_t thread;
    pthread_mutex_t mu;
    char addr[32];
    int port;
    bool stop;
    struct fcall *calls; /* Watch and Report streams, server thread */
    int shutdown_tag;
    /* Under mu. */
    grpc_byte_buffer *list; /* packed ServerList, NULL: none yet */
    uint64_t list_gen;
    grpc_byte_buffer *hb;
    uint64_t hb_gen;
    grpc_status_code status;
    fake_counts counts;
};

static void call_free(struct fcall *fc)
{
    if (fc->call)
        grpc_call_unref(fc->call);
    grpc_call_details_destroy(&fc->det);
    grpc_metadata_array_destroy(&fc->md);
    if (fc->recv)
        grpc_byte_buffer_destroy(fc->recv);
    if (fc->send)
        grpc_byte_buffer_destroy(fc->send);
    free(fc);
}

static bool batch(struct fcall *fc, int kind, grpc_op *ops, size_t n)
{
    if (grpc_call_start_batch(fc->call, ops, n, &fc->tags[kind], NULL) != GRPC_CALL_OK)
        return false;
    fc->pending++;
    return true;
}

static void request_new(fake_srv *f)
{
    struct fcall *fc = calloc(1, sizeof *fc);
    if (fc == NULL)
        abort();
    fc->f = f;
    for (int k = 0; k < T_KINDS; k++) {
        fc->tags[k].fc = fc;
        fc->tags[k].kind = k;
    }
    grpc_call_details_init(&fc->det);
    grpc_metadata_array_init(&fc->md);
    if (grpc_server_request_call(f->s, &fc->call, &fc->det, &fc->md, f->cq, f->cq,
                                 &fc->tags[T_NEW]) != GRPC_CALL_OK)
        call_free(fc);
}

static void arm_recv(struct fcall *fc, bool with_md)
{
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    size_t n = 0;
    if (with_md)
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n++].data.recv_message.recv_message = &fc->recv;
    batch(fc, T_RECV, ops, n);
}

static void send_msg(struct fcall *fc, grpc_byte_buffer *bb, bool with_status,
                     grpc_status_code st)
{
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    size_t n = 0;
    fc->send = bb;
    if (bb != NULL) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = bb;
    }
    if (with_status) {
        ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[n].data.send_status_from_server.status = st;
        ops[n++].data.send_status_from_server.trailing_metadata_count = 0;
        fc->finished = true;
    }
    fc->sending = batch(fc, T_SEND, ops, n);
}

/* Sends a Watch stream what it has not had yet. Server thread. */
static void watch_push(fake_srv *f, struct fcall *fc)
{
    if (fc->method != M_WATCH || fc->sending || fc->finished || fc->closed)
        return;
    grpc_byte_buffer *bb = NULL;
    pthread_mutex_lock(&f->mu);
    if (f->list != NULL && fc->list_gen != f->list_gen) {
        bb = grpc_byte_buffer_copy(f->list);
        fc->list_gen = f->list_gen;
        fc->hb_gen = f->hb_gen;
    } else if (f->hb != NULL && fc->hb_gen != f->hb_gen) {
        bb = grpc_byte_buffer_copy(f->hb);
        fc->hb_gen = f->hb_gen;
    }
    pthread_mutex_unlock(&f->mu);
    if (bb != NULL)
        send_msg(fc, bb, false, GRPC_STATUS_OK);
}

static void report_ack(fake_srv *f, struct fcall *fc)
{
    if (fc->sending || !fc->ack_due || fc->finished)
        return;
    fc->ack_due = false;
    Lookaside__V1__ReportAck ack = LOOKASIDE__V1__REPORT_ACK__INIT;
    ack.report_interval_ms = 100;
    ack.token = "tok";
    ack.accepted = fc->received;
    (void)f;
    send_msg(fc, pbio_pack(&ack.base), false, GRPC_STATUS_OK);
}

static void on_new(fake_srv *f, struct fcall *fc, bool ok)
{
    if (!ok) {
        call_free(fc);
        return;
    }
    request_new(f);
    const char *m = (const char *)GRPC_SLICE_START_PTR(fc->det.method);
    size_t mlen = GRPC_SLICE_LENGTH(fc->det.method);
    static const char watch[] = "/lookaside.v1.Balancer/Watch";
    static const char report[] = "/lookaside.v1.LoadReporter/Report";
    fc->method = M_OTHER;
    if (mlen == sizeof watch - 1 && memcmp(m, watch, mlen) == 0)
        fc->method = M_WATCH;
    else if (mlen == sizeof report - 1 && memcmp(m, report, mlen) == 0)
        fc->method = M_REPORT;
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &fc->cancelled;
    batch(fc, T_CLOSE, &op, 1);
    arm_recv(fc, true);
    if (fc->method != M_OTHER) {
        fc->listed = true;
        fc->next = f->calls;
        f->calls = fc;
    }
    pthread_mutex_lock(&f->mu);
    if (fc->method == M_WATCH) {
        f->counts.watches++;
        f->counts.watches_open++;
    }
    pthread_mutex_unlock(&f->mu);
}

static void on_recv(fake_srv *f, struct fcall *fc, bool ok)
{
    grpc_byte_buffer *bb = fc->recv;
    fc->recv = NULL;
    if (fc->method == M_WATCH) {
        ProtobufCMessage *msg = NULL;
        if (ok && bb != NULL &&
            pbio_unpack(&lookaside__v1__watch_request__descriptor, bb, 4096, &msg) ==
                LOOKASIDE_OK) {
            const Lookaside__V1__WatchRequest *w = (const Lookaside__V1__WatchRequest *)msg;
            pthread_mutex_lock(&f->mu);
            f->counts.heartbeat_ok += w->accepts_heartbeat;
            pthread_mutex_unlock(&f->mu);
            protobuf_c_message_free_unpacked(msg, NULL);
        }
        watch_push(f, fc);
    } else if (fc->method == M_REPORT) {
        if (ok && bb != NULL) {
            if (fc->received++ == 0) {
                pthread_mutex_lock(&f->mu);
                f->counts.registrations++;
                pthread_mutex_unlock(&f->mu);
            }
            fc->ack_due = true;
            report_ack(f, fc);
            arm_recv(fc, false);
        } else if (!fc->sending && !fc->finished) {
            send_msg(fc, NULL, true, GRPC_STATUS_OK);
        }
    } else if (!fc->finished) {
        pthread_mutex_lock(&f->mu);
        grpc_status_code st = f->status;
        f->counts.calls++;
        pthread_mutex_unlock(&f->mu);
        grpc_byte_buffer *reply = NULL;
        if (st == GRPC_STATUS_OK) {
            grpc_slice s = grpc_empty_slice();
            reply = grpc_raw_byte_buffer_create(&s, 1);
        }
        send_msg(fc, reply, true, st);
    }
    if (bb)
        grpc_byte_buffer_destroy(bb);
}

static void unlist(fake_srv *f, struct fcall *fc)
{
    for (struct fcall **pp = &f->calls; *pp; pp = &(*pp)->next)
        if (*pp == fc) {
            *pp = fc->next;
            break;
        }
    fc->listed = false;
}

static void on_event(fake_srv *f, struct ftag *t, bool ok)
{
    struct fcall *fc = t->fc;
    if (t->kind == T_NEW) {
        on_new(f, fc, ok);
        return;
    }
    fc->pending--;
    switch (t->kind) {
    case T_RECV:
        on_recv(f, fc, ok);
        break;
    case T_SEND:
        fc->sending = false;
        if (fc->send) {
            grpc_byte_buffer_destroy(fc->send);
            fc->send = NULL;
        }
        if (ok && fc->method == M_WATCH)
            watch_push(f, fc);
        if (ok && fc->method == M_REPORT)
            report_ack(f, fc);
        break;
    case T_CLOSE:
        fc->closed = true;
        if (fc->method == M_WATCH) {
            pthread_mutex_lock(&f->mu);
            f->counts.watches_open--;
            pthread_mutex_unlock(&f->mu);
        }
        break;
    }
    if (fc->closed && fc->pending == 0) {
        if (fc->listed)
            unlist(f, fc);
        call_free(fc);
    }
}

static void *srv_main(void *arg)
{
    fake_srv *f = arg;
    bool shutting = false, down = false;
    while (!down) {
        gpr_timespec dl = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                       gpr_time_from_millis(5, GPR_TIMESPAN));
        grpc_event ev = grpc_completion_queue_next(f->cq, dl, NULL);
        if (ev.type == GRPC_OP_COMPLETE) {
            if (ev.tag == &f->shutdown_tag)
                down = true;
            else
                on_event(f, ev.tag, ev.success != 0);
        }
        pthread_mutex_lock(&f->mu);
        bool stop = f->stop;
        pthread_mutex_unlock(&f->mu);
        if (stop && !shutting) {
            shutting = true;
            grpc_server_shutdown_and_notify(f->s, f->cq, &f->shutdown_tag);
            grpc_server_cancel_all_calls(f->s);
        }
        if (!shutting)
            for (struct fcall *fc = f->calls; fc; fc = fc->next)
                watch_push(f, fc);
    }
    return NULL;
}

fake_srv *fake_start(grpc_server_credentials *creds, int port)
{
    fake_srv *f = calloc(1, sizeof *f);
    if (f == NULL)
        return NULL;
    pthread_mutex_init(&f->mu, NULL);
    f->s = grpc_server_create(NULL, NULL);
    f->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(f->s, f->cq, NULL);
    char want[32];
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    grpc_server_credentials *ins = NULL;
    if (creds == NULL)
        creds = ins = grpc_insecure_server_credentials_create();
    f->port = grpc_server_add_http2_port(f->s, want, creds);
    if (ins)
        grpc_server_credentials_release(ins);
    if (f->port <= 0) {
        grpc_server_destroy(f->s);
        grpc_completion_queue_shutdown(f->cq);
        while (grpc_completion_queue_next(f->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL)
                   .type != GRPC_QUEUE_SHUTDOWN) {
        }
        grpc_completion_queue_destroy(f->cq);
        pthread_mutex_destroy(&f->mu);
        free(f);
        return NULL;
    }
    snprintf(f->addr, sizeof f->addr, "127.0.0.1:%d", f->port);
    grpc_server_start(f->s);
    for (int i = 0; i < 4; i++)
        request_new(f);
    pthread_create(&f->thread, NULL, srv_main, f);
    return f;
}

const char *fake_addr(const fake_srv *f)
{
    return f->addr;
}

int fake_port(const fake_srv *f)
{
    return f->port;
}

static grpc_byte_buffer *pack_list(const fake_backend *b, size_t n, uint64_t version,
                                   uint32_t valid_for_ms, bool heartbeat)
{
    Lookaside__V1__Backend *mb = calloc(n ? n : 1, sizeof *mb);
    Lookaside__V1__Backend **mp = calloc(n ? n : 1, sizeof *mp);
    if (mb == NULL || mp == NULL)
        abort();
    for (size_t i = 0; i < n; i++) {
        lookaside__v1__backend__init(&mb[i]);
        mb[i].address = (char *)b[i].address;
        mb[i].weight = b[i].weight;
        mb[i].state = b[i].draining ? LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_DRAINING
                                    : LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_SERVING;
        mp[i] = &mb[i];
    }
    Lookaside__V1__ServerList m = LOOKASIDE__V1__SERVER_LIST__INIT;
    m.service = "";
    m.version = version;
    m.n_backends = n;
    m.backends = mp;
    m.state = LOOKASIDE__V1__LIST_STATE__LIST_STATE_LIVE;
    m.valid_for_ms = valid_for_ms ? valid_for_ms : 60000;
    m.heartbeat = heartbeat;
    grpc_byte_buffer *bb = pbio_pack(&m.base);
    free(mb);
    free(mp);
    return bb;
}

void fake_set_list(fake_srv *f, const fake_backend *b, size_t n, uint64_t version,
                   uint32_t valid_for_ms)
{
    grpc_byte_buffer *bb = pack_list(b, n, version, valid_for_ms, false);
    pthread_mutex_lock(&f->mu);
    if (f->list)
        grpc_byte_buffer_destroy(f->list);
    f->list = bb;
    f->list_gen++;
    pthread_mutex_unlock(&f->mu);
}

void fake_heartbeat(fake_srv *f, uint64_t version, uint32_t valid_for_ms)
{
    grpc_byte_buffer *bb = pack_list(NULL, 0, version, valid_for_ms, true);
    pthread_mutex_lock(&f->mu);
    if (f->hb)
        grpc_byte_buffer_destroy(f->hb);
    f->hb = bb;
    f->hb_gen++;
    pthread_mutex_unlock(&f->mu);
}

void fake_set_status(fake_srv *f, grpc_status_code st)
{
    pthread_mutex_lock(&f->mu);
    f->status = st;
    pthread_mutex_unlock(&f->mu);
}

void fake_counts_get(fake_srv *f, fake_counts *out)
{
    pthread_mutex_lock(&f->mu);
    *out = f->counts;
    pthread_mutex_unlock(&f->mu);
}

void fake_stop(fake_srv *f)
{
    if (f == NULL)
        return;
    pthread_mutex_lock(&f->mu);
    f->stop = true;
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->thread, NULL);
    grpc_server_destroy(f->s);
    grpc_completion_queue_shutdown(f->cq);
    for (;;) {
        grpc_event ev =
            grpc_completion_queue_next(f->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type == GRPC_OP_COMPLETE && ev.tag != &f->shutdown_tag)
            on_event(f, ev.tag, false);
    }
    grpc_completion_queue_destroy(f->cq);
    while (f->calls) {
        struct fcall *fc = f->calls;
        f->calls = fc->next;
        call_free(fc);
    }
    if (f->list)
        grpc_byte_buffer_destroy(f->list);
    if (f->hb)
        grpc_byte_buffer_destroy(f->hb);
    pthread_mutex_destroy(&f->mu);
    free(f);
}
