/* etcd.c - the etcd v3 client of etcd mode (see etcd.h). Every gRPC batch on
 * an etcd call starts in ecall_batch below. */
#include "etcd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "etcd/etcdserverpb/rpc.pb-c.h"
#include "log.h"
#include "pbio.h"
#include "util.h"

#define ETCD_MAX_ENDPOINTS 16
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 1000

enum { EC_SEND, EC_RECV, EC_STATUS, EC_KINDS };

typedef struct ecall ecall;

/* What the owner of a call hears. Unary calls hear on_reply once (msg NULL
 * when the call failed); streams hear on_msg per message and on_end once. */
typedef struct ecall_ops {
    void (*on_reply)(etcd *e, ecall *c, ProtobufCMessage *msg, grpc_status_code code,
                     const char *details);
    void (*on_msg)(etcd *e, ecall *c, ProtobufCMessage *msg);
    void (*on_end)(etcd *e, ecall *c, grpc_status_code code, const char *details);
} ecall_ops;

typedef struct ec_tag {
    loop_tag t;                 /* first: what the loop calls */
    ecall *c;
    int kind;
} ec_tag;

struct ecall {
    etcd *e;
    grpc_call *call;
    ec_tag tags[EC_KINDS];
    bool busy[EC_KINDS];
    bool unary;
    bool released;              /* no callbacks any more */
    bool ended;
    bool in_dispatch;           /* inside ecall_event: not freed yet */
    size_t ep;                  /* endpoint index it was started on */
    const ecall_ops *ops;
    const ProtobufCMessageDescriptor *resp_desc;
    grpc_byte_buffer *send_bb, *recv_bb;
    grpc_metadata_array imd, tmd;
    grpc_metadata md;           /* "hasleader: true" on streams */
    grpc_status_code status;
    grpc_slice details;
    etcd_done_fn done;          /* writes */
    void *done_arg;
    bool is_txn;
    ecall *prev, *next;         /* etcd's live calls */
};

struct etcd {
    loop *l;
    const etcd_handler *h;
    void *arg;
    char *endpoints[ETCD_MAX_ENDPOINTS];
    grpc_channel *ch[ETCD_MAX_ENDPOINTS];
    size_t n_ep, cur;
    grpc_channel_credentials *creds;   /* NULL: plaintext */
    char *prefix;
    uint8_t *range_end;
    size_t prefix_len;
    int64_t ttl_s;
    size_t max_recv;
    int64_t timeout_ms;
    int64_t lease;              /* current, 0 = none */
    int64_t last_lease;         /* for conditional deletes after a loss */
    bool granting;
    ecall *ka;
    uint64_t ka_timer;
    ecall *watch;
    bool listing;
    bool need_list;             /* no revision to resume from (start, compaction) */
    int64_t last_rev;
    bool linked;
    uint64_t retry_timer;
    int64_t backoff_ms;
    ecall *live;
    size_t n_live;
    bool closing;
};

static void kick(etcd *e);

/* ------------------------------------------------------------ calls */

static void ecall_event(loop_tag *t, bool ok);

static void ecall_free(ecall *c)
{
    etcd *e = c->e;
    if (c->prev)
        c->prev->next = c->next;
    else
        e->live = c->next;
    if (c->next)
        c->next->prev = c->prev;
    e->n_live--;
    if (c->call)
        grpc_call_unref(c->call);
    if (c->send_bb)
        grpc_byte_buffer_destroy(c->send_bb);
    if (c->recv_bb)
        grpc_byte_buffer_destroy(c->recv_bb);
    grpc_metadata_array_destroy(&c->imd);
    grpc_metadata_array_destroy(&c->tmd);
    grpc_slice_unref(c->details);
    free(c);
}

static void ecall_maybe_free(ecall *c)
{
    if (!c->released || c->in_dispatch)
        return;
    for (int k = 0; k < EC_KINDS; k++)
        if (c->busy[k])
            return;
    ecall_free(c);
}

static bool ecall_batch(ecall *c, int kind, const grpc_op *ops, size_t n)
{
    grpc_call_error err = grpc_call_start_batch(c->call, ops, n, &c->tags[kind], NULL);
    if (err != GRPC_CALL_OK) {
        log_warn("etcd", "grpc_call_start_batch: error %d", (int)err);
        return false;
    }
    c->busy[kind] = true;
    return true;
}

/* The owner lets go: cancel unless over; freed once its batches complete. */
static void ecall_release(ecall *c)
{
    if (c == NULL || c->released)
        return;
    c->released = true;
    if (!c->ended)
        grpc_call_cancel(c->call, NULL);
    ecall_maybe_free(c);
}

static grpc_channel *channel(etcd *e)
{
    size_t i = e->cur;
    if (e->ch[i] == NULL) {
        grpc_arg args[4];
        args[0] = (grpc_arg){.type = GRPC_ARG_INTEGER,
                             .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
                             .value.integer = (int)e->max_recv};
        /* etcd coming back is noticed within a second, not after gRPC's
         * default backoff of up to two minutes. */
        args[1] = (grpc_arg){.type = GRPC_ARG_INTEGER,
                             .key = GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
                             .value.integer = BACKOFF_MIN_MS};
        args[2] = (grpc_arg){.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
                             .value.integer = BACKOFF_MIN_MS};
        args[3] = (grpc_arg){.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
                             .value.integer = 1000};
        grpc_channel_args ca = {.num_args = 4, .args = args};
        grpc_channel_credentials *insecure = NULL;
        grpc_channel_credentials *cr = e->creds;
        if (cr == NULL)
            cr = insecure = grpc_insecure_credentials_create();
        e->ch[i] = grpc_channel_create(e->endpoints[i], cr, &ca);
        if (insecure)
            grpc_channel_credentials_release(insecure);
    }
    return e->ch[i];
}

/* Starts a call of method with msg as its (first) message. Unary: the whole
 * exchange is one batch. Stream: send, receive and status each have their
 * own tag so the receive can be re-armed and later messages sent. */
static ecall *ecall_start(etcd *e, const char *method, const ProtobufCMessage *msg, bool unary,
                          const ProtobufCMessageDescriptor *resp_desc, const ecall_ops *ops)
{
    ecall *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->e = e;
    c->unary = unary;
    c->ops = ops;
    c->resp_desc = resp_desc;
    c->ep = e->cur;
    c->details = grpc_empty_slice();
    grpc_metadata_array_init(&c->imd);
    grpc_metadata_array_init(&c->tmd);
    for (int k = 0; k < EC_KINDS; k++) {
        c->tags[k].t.fn = ecall_event;
        c->tags[k].c = c;
        c->tags[k].kind = k;
    }
    c->next = e->live;
    if (e->live)
        e->live->prev = c;
    e->live = c;
    e->n_live++;
    gpr_timespec deadline =
        unary ? gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                             gpr_time_from_millis(e->timeout_ms, GPR_TIMESPAN))
              : gpr_inf_future(GPR_CLOCK_MONOTONIC);
    c->call = grpc_channel_create_call(channel(e), NULL, GRPC_PROPAGATE_DEFAULTS, loop_cq(e->l),
                                       grpc_slice_from_static_string(method), NULL, deadline,
                                       NULL);
    c->send_bb = pbio_pack(msg);
    if (c->call == NULL || c->send_bb == NULL) {
        c->released = true;
        c->ended = true;
        ecall_free(c);
        return NULL;
    }
    grpc_op ops_[6];
    memset(ops_, 0, sizeof ops_);
    size_t n = 0;
    ops_[n].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (!unary) {
        /* etcd ends a stream whose member has no leader instead of leaving
         * it silent (etcd's MetadataRequireLeaderKey). */
        c->md.key = grpc_slice_from_static_string("hasleader");
        c->md.value = grpc_slice_from_static_string("true");
        ops_[n].data.send_initial_metadata.count = 1;
        ops_[n].data.send_initial_metadata.metadata = &c->md;
    }
    n++;
    ops_[n].op = GRPC_OP_SEND_MESSAGE;
    ops_[n].data.send_message.send_message = c->send_bb;
    n++;
    grpc_op st;
    memset(&st, 0, sizeof st);
    st.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    st.data.recv_status_on_client.trailing_metadata = &c->tmd;
    st.data.recv_status_on_client.status = &c->status;
    st.data.recv_status_on_client.status_details = &c->details;
    grpc_op rv[2];
    memset(rv, 0, sizeof rv);
    rv[0].op = GRPC_OP_RECV_INITIAL_METADATA;
    rv[0].data.recv_initial_metadata.recv_initial_metadata = &c->imd;
    rv[1].op = GRPC_OP_RECV_MESSAGE;
    rv[1].data.recv_message.recv_message = &c->recv_bb;
    bool ok;
    if (unary) {
        ops_[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
        ops_[n++] = rv[0];
        ops_[n++] = rv[1];
        ops_[n++] = st;
        ok = ecall_batch(c, EC_STATUS, ops_, n);
    } else {
        ok = ecall_batch(c, EC_SEND, ops_, n) && ecall_batch(c, EC_STATUS, &st, 1) &&
             ecall_batch(c, EC_RECV, rv, 2);
    }
    if (!ok) {
        /* Batches that started complete after the cancel. */
        c->released = true;
        grpc_call_cancel(c->call, NULL);
        ecall_maybe_free(c);
        return NULL;
    }
    return c;
}

/* Sends one more message on a stream; false when one is still in flight or
 * the stream is over (the next period tries again). */
static bool ecall_send(ecall *c, const ProtobufCMessage *msg)
{
    if (c->ended || c->busy[EC_SEND])
        return false;
    c->send_bb = pbio_pack(msg);
    if (c->send_bb == NULL)
        return false;
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = c->send_bb;
    if (!ecall_batch(c, EC_SEND, &op, 1)) {
        grpc_byte_buffer_destroy(c->send_bb);
        c->send_bb = NULL;
        return false;
    }
    return true;
}

/* Decodes the received buffer (NULL when absent or undecodable: logged). */
static ProtobufCMessage *ecall_take_msg(ecall *c)
{
    grpc_byte_buffer *bb = c->recv_bb;
    c->recv_bb = NULL;
    if (bb == NULL)
        return NULL;
    ProtobufCMessage *m = NULL;
    char why[160];
    lookaside_status st =
        pbio_unpack_why(c->resp_desc, bb, c->e->max_recv, &m, why, sizeof why);
    grpc_byte_buffer_destroy(bb);
    if (st != LOOKASIDE_OK) {
        log_warn("etcd", "%s from etcd refused: %s", c->resp_desc->name,
                 st == LOOKASIDE_EINVAL ? why : lookaside_status_str(st));
        return NULL;
    }
    return m;
}

static void details_str(const ecall *c, char *buf, size_t len)
{
    size_t n = GRPC_SLICE_LENGTH(c->details);
    if (n >= len)
        n = len - 1;
    memcpy(buf, GRPC_SLICE_START_PTR(c->details), n);
    buf[n] = '\0';
}

static void ecall_event(loop_tag *t, bool ok)
{
    ec_tag *tag = (ec_tag *)t;
    ecall *c = tag->c;
    etcd *e = c->e;
    c->busy[tag->kind] = false;
    c->in_dispatch = true;
    switch (tag->kind) {
    case EC_SEND:
        if (c->send_bb) {
            grpc_byte_buffer_destroy(c->send_bb);
            c->send_bb = NULL;
        }
        break;
    case EC_RECV: {
        bool got = ok && c->recv_bb != NULL;
        ProtobufCMessage *m = got ? ecall_take_msg(c) : NULL;
        if (m == NULL) {
            /* Stream over; or junk from etcd: end it, the owner restarts. */
            if (got && !c->ended)
                grpc_call_cancel(c->call, NULL);
            break;
        }
        if (!c->released && !c->ended)
            c->ops->on_msg(e, c, m);
        protobuf_c_message_free_unpacked(m, NULL);
        if (!c->released && !c->ended) {
            grpc_op op;
            memset(&op, 0, sizeof op);
            op.op = GRPC_OP_RECV_MESSAGE;
            op.data.recv_message.recv_message = &c->recv_bb;
            if (!ecall_batch(c, EC_RECV, &op, 1))
                grpc_call_cancel(c->call, NULL);
        }
        break;
    }
    case EC_STATUS: {
        c->ended = true;
        char details[256];
        details_str(c, details, sizeof details);
        if (c->unary) {
            ProtobufCMessage *m =
                ok && c->status == GRPC_STATUS_OK ? ecall_take_msg(c) : NULL;
            if (!c->released)
                c->ops->on_reply(e, c, m, c->status, details);
            if (m)
                protobuf_c_message_free_unpacked(m, NULL);
            c->released = true;
        } else if (!c->released) {
            c->ops->on_end(e, c, c->status, details);
        }
        break;
    }
    }
    c->in_dispatch = false;
    ecall_maybe_free(c);
}

/* ------------------------------------------------------- retry policy */

static void on_retry(loop *l, void *arg)
{
    (void)l;
    etcd *e = arg;
    e->retry_timer = 0;
    kick(e);
}

/* Something failed: try the next endpoint after a backoff (one pending
 * retry at a time; it restarts whatever is missing). */
static void failed(etcd *e, size_t ep, const char *what, grpc_status_code code,
                   const char *details)
{
    if (e->closing)
        return;
    log_warn("etcd", "%s failed on %s: %d %s; retrying in %lld ms", what, e->endpoints[ep],
             (int)code, details, (long long)e->backoff_ms);
    /* Several calls fail together when a member goes: move on once. */
    if (ep == e->cur &&
        (code == GRPC_STATUS_UNAVAILABLE || code == GRPC_STATUS_DEADLINE_EXCEEDED))
        e->cur = (e->cur + 1) % e->n_ep;
    if (e->retry_timer == 0) {
        e->retry_timer = loop_timer_add(e->l, clock_mono_ms() + e->backoff_ms, on_retry, e);
        e->backoff_ms = e->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : e->backoff_ms * 2;
    }
}

static void set_linked(etcd *e, bool up)
{
    if (e->linked == up)
        return;
    e->linked = up;
    log_info("etcd", "watch %s", up ? "following etcd" : "lost: serving the last known state");
    if (e->h->on_link)
        e->h->on_link(e->arg, up);
}

/* ------------------------------------------------------------- lease */

static void ka_tick(loop *l, void *arg);

static void ka_schedule(etcd *e)
{
    int64_t period = e->ttl_s * 1000 / 3;
    e->ka_timer = loop_timer_add(e->l, clock_mono_ms() + period, ka_tick, e);
}

static void ka_tick(loop *l, void *arg)
{
    (void)l;
    etcd *e = arg;
    e->ka_timer = 0;
    if (e->ka && e->lease) {
        Etcdserverpb__LeaseKeepAliveRequest rq = ETCDSERVERPB__LEASE_KEEP_ALIVE_REQUEST__INIT;
        rq.id = e->lease;
        ecall_send(e->ka, &rq.base);
    }
    if (e->ka)
        ka_schedule(e);
}

static void lease_lost(etcd *e)
{
    log_warn("etcd", "lease %llx expired; granting a new one", (unsigned long long)e->lease);
    e->lease = 0;
    ecall_release(e->ka);
    e->ka = NULL;
    loop_timer_cancel(e->l, e->ka_timer);
    e->ka_timer = 0;
    kick(e);
}

static void ka_msg(etcd *e, ecall *c, ProtobufCMessage *m)
{
    (void)c;
    Etcdserverpb__LeaseKeepAliveResponse *r = (Etcdserverpb__LeaseKeepAliveResponse *)m;
    if (r->id != e->lease)
        return;
    if (r->ttl <= 0)
        lease_lost(e);
}

static void ka_end(etcd *e, ecall *c, grpc_status_code code, const char *details)
{
    if (c != e->ka)
        return;
    ecall_release(c);
    e->ka = NULL;
    loop_timer_cancel(e->l, e->ka_timer);
    e->ka_timer = 0;
    failed(e, c->ep, "LeaseKeepAlive", code, details);
}

static const ecall_ops ka_ops = {.on_msg = ka_msg, .on_end = ka_end};

static void start_keepalive(etcd *e)
{
    Etcdserverpb__LeaseKeepAliveRequest rq = ETCDSERVERPB__LEASE_KEEP_ALIVE_REQUEST__INIT;
    rq.id = e->lease;
    /* The first message refreshes at once: after a break it tells whether
     * the lease survived (TTL > 0) or must be granted again. */
    e->ka = ecall_start(e, "/etcdserverpb.Lease/LeaseKeepAlive", &rq.base, false,
                        &etcdserverpb__lease_keep_alive_response__descriptor, &ka_ops);
    if (e->ka == NULL) {
        failed(e, e->cur, "LeaseKeepAlive", GRPC_STATUS_RESOURCE_EXHAUSTED, "cannot start");
        return;
    }
    ka_schedule(e);
}

static void grant_reply(etcd *e, ecall *c, ProtobufCMessage *m, grpc_status_code code,
                        const char *details)
{
    e->granting = false;
    Etcdserverpb__LeaseGrantResponse *r = (Etcdserverpb__LeaseGrantResponse *)m;
    if (r == NULL || r->id == 0 || (r->error && r->error[0])) {
        failed(e, c->ep, "LeaseGrant", r ? GRPC_STATUS_UNKNOWN : code,
               r && r->error ? r->error : details);
        return;
    }
    e->lease = e->last_lease = r->id;
    log_info("etcd", "lease %llx granted (TTL %lld s)", (unsigned long long)r->id,
             (long long)r->ttl);
    start_keepalive(e);
    e->h->on_lease(e->arg, e->lease);
}

static const ecall_ops grant_ops = {.on_reply = grant_reply};

static void grant(etcd *e)
{
    Etcdserverpb__LeaseGrantRequest rq = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    rq.ttl = e->ttl_s;
    e->granting = ecall_start(e, "/etcdserverpb.Lease/LeaseGrant", &rq.base, true,
                              &etcdserverpb__lease_grant_response__descriptor,
                              &grant_ops) != NULL;
    if (!e->granting)
        failed(e, e->cur, "LeaseGrant", GRPC_STATUS_RESOURCE_EXHAUSTED, "cannot start");
}

/* ------------------------------------------------------------- watch */

static etcd_kv kv_view(const Mvccpb__KeyValue *kv)
{
    etcd_kv v = {.key = kv->key.data, .key_len = kv->key.len, .value = kv->value.data,
                 .value_len = kv->value.len, .mod_revision = kv->mod_revision,
                 .lease = kv->lease};
    return v;
}

static void start_watch(etcd *e);

static void watch_msg(etcd *e, ecall *c, ProtobufCMessage *m)
{
    Etcdserverpb__WatchResponse *r = (Etcdserverpb__WatchResponse *)m;
    if (r->compact_revision > 0) {
        log_warn("etcd", "revision %lld was compacted (oldest now %lld): listing again",
                 (long long)(e->last_rev + 1), (long long)r->compact_revision);
        e->need_list = true;
    }
    if (r->canceled || r->compact_revision > 0) {
        ecall_release(c);
        e->watch = NULL;
        set_linked(e, false);
        failed(e, c->ep, "Watch", GRPC_STATUS_ABORTED,
               r->cancel_reason ? r->cancel_reason : "canceled");
        return;
    }
    if (r->created) {
        e->backoff_ms = BACKOFF_MIN_MS;
        set_linked(e, true);
    }
    for (size_t i = 0; i < r->n_events && e->watch == c; i++) {
        const Mvccpb__Event *ev = r->events[i];
        if (ev->kv == NULL)
            continue;
        etcd_kv v = kv_view(ev->kv);
        /* Events of one transaction share a revision: only an older one is
         * a repeat (never expected after resuming at last_rev + 1). */
        if (v.mod_revision < e->last_rev)
            continue;
        e->last_rev = v.mod_revision;
        e->h->on_event(e->arg, ev->type == MVCCPB__EVENT__EVENT_TYPE__PUT, &v);
    }
}

static void watch_end(etcd *e, ecall *c, grpc_status_code code, const char *details)
{
    if (c != e->watch)
        return;
    ecall_release(c);
    e->watch = NULL;
    set_linked(e, false);
    failed(e, c->ep, "Watch", code, details);
}

static const ecall_ops watch_ops = {.on_msg = watch_msg, .on_end = watch_end};

static void start_watch(etcd *e)
{
    Etcdserverpb__WatchCreateRequest cr = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
    cr.key.data = (uint8_t *)e->prefix;
    cr.key.len = e->prefix_len;
    cr.range_end.data = e->range_end;
    cr.range_end.len = e->prefix_len;
    cr.start_revision = e->last_rev + 1;
    Etcdserverpb__WatchRequest rq = ETCDSERVERPB__WATCH_REQUEST__INIT;
    rq.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
    rq.create_request = &cr;
    e->watch = ecall_start(e, "/etcdserverpb.Watch/Watch", &rq.base, false,
                           &etcdserverpb__watch_response__descriptor, &watch_ops);
    if (e->watch == NULL)
        failed(e, e->cur, "Watch", GRPC_STATUS_RESOURCE_EXHAUSTED, "cannot start");
}

static void list_reply(etcd *e, ecall *c, ProtobufCMessage *m, grpc_status_code code,
                       const char *details)
{
    e->listing = false;
    Etcdserverpb__RangeResponse *r = (Etcdserverpb__RangeResponse *)m;
    if (r == NULL || r->header == NULL || r->more) {
        failed(e, c->ep, "Range", r ? GRPC_STATUS_RESOURCE_EXHAUSTED : code,
               r ? "incomplete listing" : details);
        return;
    }
    etcd_kv *kvs = r->n_kvs ? calloc(r->n_kvs, sizeof *kvs) : NULL;
    if (r->n_kvs && kvs == NULL) {
        failed(e, c->ep, "Range", GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < r->n_kvs; i++)
        if (r->kvs[i])
            kvs[n++] = kv_view(r->kvs[i]);
    e->need_list = false;
    e->last_rev = r->header->revision;
    log_info("etcd", "listed %zu keys under %s at revision %lld", n, e->prefix,
             (long long)e->last_rev);
    e->h->on_snapshot(e->arg, kvs, n, e->last_rev);
    free(kvs);
    start_watch(e);
}

static const ecall_ops list_ops = {.on_reply = list_reply};

static void list(etcd *e)
{
    Etcdserverpb__RangeRequest rq = ETCDSERVERPB__RANGE_REQUEST__INIT;
    rq.key.data = (uint8_t *)e->prefix;
    rq.key.len = e->prefix_len;
    rq.range_end.data = e->range_end;
    rq.range_end.len = e->prefix_len;
    e->listing = ecall_start(e, "/etcdserverpb.KV/Range", &rq.base, true,
                             &etcdserverpb__range_response__descriptor, &list_ops) != NULL;
    if (!e->listing)
        failed(e, e->cur, "Range", GRPC_STATUS_RESOURCE_EXHAUSTED, "cannot start");
}

/* Starts whatever is missing: lease, keep-alive, listing or watch. */
static void kick(etcd *e)
{
    if (e->closing)
        return;
    if (e->lease == 0 && !e->granting)
        grant(e);
    else if (e->lease != 0 && e->ka == NULL)
        start_keepalive(e);
    if (e->watch == NULL && !e->listing) {
        if (e->need_list)
            list(e);
        else
            start_watch(e);
    }
}

/* ------------------------------------------------------------- writes */

static void write_reply(etcd *e, ecall *c, ProtobufCMessage *m, grpc_status_code code,
                        const char *details)
{
    bool ok = m != NULL;
    int64_t rev = 0;
    if (m && c->is_txn) {
        Etcdserverpb__TxnResponse *t = (Etcdserverpb__TxnResponse *)m;
        rev = t->header ? t->header->revision : 0;
    } else if (m) {
        /* Put and DeleteRange responses both start with the header. */
        Etcdserverpb__PutResponse *p = (Etcdserverpb__PutResponse *)m;
        rev = p->header ? p->header->revision : 0;
    }
    if (!ok) {
        log_warn("etcd", "write failed on %s: %d %s", e->endpoints[c->ep], (int)code, details);
        if (code == GRPC_STATUS_UNAVAILABLE && c->ep == e->cur)
            e->cur = (e->cur + 1) % e->n_ep;
        /* Our lease expired without the keep-alive stream saying so (a
         * member that stopped answering): get a new one, the owner puts
         * everything again. */
        if (code == GRPC_STATUS_NOT_FOUND && strstr(details, "lease not found") && e->lease != 0)
            lease_lost(e);
    }
    if (c->done && !e->closing)
        c->done(c->done_arg, ok, rev);
}

static const ecall_ops write_ops = {.on_reply = write_reply};

static lookaside_status start_write(etcd *e, const char *method, const ProtobufCMessage *rq,
                                    const ProtobufCMessageDescriptor *desc, bool txn,
                                    etcd_done_fn done, void *arg)
{
    ecall *c = ecall_start(e, method, rq, true, desc, &write_ops);
    if (c == NULL)
        return LOOKASIDE_EIO;
    c->done = done;
    c->done_arg = arg;
    c->is_txn = txn;
    return LOOKASIDE_OK;
}

lookaside_status etcd_put(etcd *e, const char *key, const uint8_t *value, size_t value_len,
                          bool with_lease, etcd_done_fn done, void *arg)
{
    if (with_lease && e->lease == 0)
        return LOOKASIDE_ESHUTDOWN;
    Etcdserverpb__PutRequest rq = ETCDSERVERPB__PUT_REQUEST__INIT;
    rq.key.data = (uint8_t *)key;
    rq.key.len = strlen(key);
    rq.value.data = (uint8_t *)value;
    rq.value.len = value_len;
    rq.lease = with_lease ? e->lease : 0;
    return start_write(e, "/etcdserverpb.KV/Put", &rq.base,
                       &etcdserverpb__put_response__descriptor, false, done, arg);
}

lookaside_status etcd_put_many(etcd *e, const etcd_put_op *ops, size_t n, bool with_lease,
                               etcd_done_fn done, void *arg)
{
    if (with_lease && e->lease == 0)
        return LOOKASIDE_ESHUTDOWN;
    if (n == 0 || n > ETCD_MAX_TXN_OPS)
        return LOOKASIDE_EINVAL;
    Etcdserverpb__PutRequest puts[ETCD_MAX_TXN_OPS];
    Etcdserverpb__RequestOp req[ETCD_MAX_TXN_OPS];
    Etcdserverpb__RequestOp *reqp[ETCD_MAX_TXN_OPS];
    for (size_t i = 0; i < n; i++) {
        Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
        p.key.data = (uint8_t *)ops[i].key;
        p.key.len = strlen(ops[i].key);
        p.value.data = (uint8_t *)ops[i].value;
        p.value.len = ops[i].value_len;
        p.lease = with_lease ? e->lease : 0;
        puts[i] = p;
        Etcdserverpb__RequestOp op = ETCDSERVERPB__REQUEST_OP__INIT;
        op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
        op.request_put = &puts[i];
        req[i] = op;
        reqp[i] = &req[i];
    }
    Etcdserverpb__TxnRequest rq = ETCDSERVERPB__TXN_REQUEST__INIT;
    rq.n_success = n;
    rq.success = reqp;
    return start_write(e, "/etcdserverpb.KV/Txn", &rq.base,
                       &etcdserverpb__txn_response__descriptor, true, done, arg);
}

/* A transaction: op when cmp holds, nothing otherwise. */
static lookaside_status txn_if(etcd *e, Etcdserverpb__Compare *cmp, Etcdserverpb__RequestOp *op,
                               etcd_done_fn done, void *arg)
{
    Etcdserverpb__Compare *cmps[1] = {cmp};
    Etcdserverpb__RequestOp *ops[1] = {op};
    Etcdserverpb__TxnRequest rq = ETCDSERVERPB__TXN_REQUEST__INIT;
    rq.n_compare = 1;
    rq.compare = cmps;
    rq.n_success = 1;
    rq.success = ops;
    return start_write(e, "/etcdserverpb.KV/Txn", &rq.base,
                       &etcdserverpb__txn_response__descriptor, true, done, arg);
}

lookaside_status etcd_delete_owned(etcd *e, const char *key, etcd_done_fn done, void *arg)
{
    Etcdserverpb__Compare cmp = ETCDSERVERPB__COMPARE__INIT;
    cmp.result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL;
    cmp.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__LEASE;
    cmp.key.data = (uint8_t *)key;
    cmp.key.len = strlen(key);
    cmp.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE;
    cmp.lease = e->lease ? e->lease : e->last_lease;
    Etcdserverpb__DeleteRangeRequest del = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    del.key = cmp.key;
    Etcdserverpb__RequestOp op = ETCDSERVERPB__REQUEST_OP__INIT;
    op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
    op.request_delete_range = &del;
    return txn_if(e, &cmp, &op, done, arg);
}

lookaside_status etcd_put_if_older(etcd *e, const char *key, const uint8_t *value,
                                   size_t value_len, int64_t rev, etcd_done_fn done, void *arg)
{
    Etcdserverpb__Compare cmp = ETCDSERVERPB__COMPARE__INIT;
    cmp.result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__LESS;
    cmp.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD;
    cmp.key.data = (uint8_t *)key;
    cmp.key.len = strlen(key);
    cmp.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
    cmp.mod_revision = rev;
    Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
    put.key = cmp.key;
    put.value.data = (uint8_t *)value;
    put.value.len = value_len;
    Etcdserverpb__RequestOp op = ETCDSERVERPB__REQUEST_OP__INIT;
    op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    op.request_put = &put;
    return txn_if(e, &cmp, &op, done, arg);
}

lookaside_status etcd_delete(etcd *e, const char *key, etcd_done_fn done, void *arg)
{
    Etcdserverpb__DeleteRangeRequest rq = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    rq.key.data = (uint8_t *)key;
    rq.key.len = strlen(key);
    return start_write(e, "/etcdserverpb.KV/DeleteRange", &rq.base,
                       &etcdserverpb__delete_range_response__descriptor, false, done, arg);
}

/* ------------------------------------------------------------ lifecycle */

void etcd_config_default(etcd_config *c)
{
    memset(c, 0, sizeof *c);
    c->prefix = "/lookaside/";
    c->lease_ttl_s = 10;
    c->max_recv_bytes = 64u << 20;
    /* A write to a member without a leader waits for the election (about a
     * second) or for etcd's own 7 s limit: give up sooner and retry (puts
     * are idempotent). */
    c->call_timeout_ms = 2000;
}

static char *read_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    if (buf)
        n = fread(buf, 1, cap, f);
    bool too_big = buf && n == cap && fgetc(f) != EOF;
    fclose(f);
    if (buf == NULL || too_big || n == 0) {
        snprintf(err, errlen, "%s: %s", path, buf == NULL ? "out of memory"
                                              : too_big   ? "larger than 64 KiB"
                                                          : "empty");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static lookaside_status make_creds(etcd *e, const etcd_config *cfg, char *err, size_t errlen)
{
    if (cfg->ca_file == NULL) {
        if (cfg->cert_file || cfg->key_file) {
            snprintf(err, errlen, "a client certificate for etcd needs the etcd CA too");
            return LOOKASIDE_EINVAL;
        }
        return LOOKASIDE_OK;
    }
    if ((cfg->cert_file == NULL) != (cfg->key_file == NULL)) {
        snprintf(err, errlen, "the etcd client certificate and key go together");
        return LOOKASIDE_EINVAL;
    }
    char *ca = read_file(cfg->ca_file, err, errlen);
    char *cert = ca && cfg->cert_file ? read_file(cfg->cert_file, err, errlen) : NULL;
    char *key = cert ? read_file(cfg->key_file, err, errlen) : NULL;
    lookaside_status st = LOOKASIDE_EINVAL;
    if (ca && (cfg->cert_file == NULL || key)) {
        grpc_ssl_pem_key_cert_pair pair = {.private_key = key, .cert_chain = cert};
        e->creds = grpc_ssl_credentials_create(ca, cert ? &pair : NULL, NULL, NULL);
        st = e->creds ? LOOKASIDE_OK : LOOKASIDE_EINVAL;
        if (e->creds == NULL)
            snprintf(err, errlen, "TLS credentials for etcd refused");
    }
    free(ca);
    free(cert);
    if (key) {
        memset(key, 0, strlen(key));
        free(key);
    }
    return st;
}

static lookaside_status parse_endpoints(etcd *e, const char *list, char *err, size_t errlen)
{
    const char *p = list;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 0 || n > 255 || e->n_ep == ETCD_MAX_ENDPOINTS || memchr(p, ':', n) == NULL) {
            snprintf(err, errlen, "--etcd: want HOST:PORT[,HOST:PORT...] (at most %d)",
                     ETCD_MAX_ENDPOINTS);
            return LOOKASIDE_EINVAL;
        }
        char *ep = malloc(n + 1);
        if (ep == NULL)
            return LOOKASIDE_ENOMEM;
        memcpy(ep, p, n);
        ep[n] = '\0';
        e->endpoints[e->n_ep++] = ep;
        p += n;
        if (*p == ',')
            p++;
    }
    if (e->n_ep == 0) {
        snprintf(err, errlen, "--etcd: no endpoint given");
        return LOOKASIDE_EINVAL;
    }
    return LOOKASIDE_OK;
}

lookaside_status etcd_create(loop *l, const etcd_config *cfg, const etcd_handler *h, void *arg,
                             etcd **out, char *err, size_t errlen)
{
    *out = NULL;
    if (cfg->prefix == NULL || cfg->prefix[0] == '\0' || strlen(cfg->prefix) > 512 ||
        cfg->lease_ttl_s < 2 || cfg->lease_ttl_s > 86400) {
        snprintf(err, errlen, "etcd: the prefix must be 1-512 bytes and the TTL 2-86400 s");
        return LOOKASIDE_EINVAL;
    }
    etcd *e = calloc(1, sizeof *e);
    if (e == NULL)
        return LOOKASIDE_ENOMEM;
    e->l = l;
    e->h = h;
    e->arg = arg;
    e->ttl_s = cfg->lease_ttl_s;
    e->max_recv = cfg->max_recv_bytes;
    e->timeout_ms = cfg->call_timeout_ms;
    e->backoff_ms = BACKOFF_MIN_MS;
    e->need_list = true;
    e->prefix_len = strlen(cfg->prefix);
    e->prefix = strdup(cfg->prefix);
    e->range_end = malloc(e->prefix_len);
    lookaside_status st = e->prefix && e->range_end ? parse_endpoints(e, cfg->endpoints, err, errlen)
                                                    : LOOKASIDE_ENOMEM;
    if (st == LOOKASIDE_OK)
        st = make_creds(e, cfg, err, errlen);
    if (st != LOOKASIDE_OK) {
        etcd_destroy(e);
        return st;
    }
    /* The end of a prefix range: the prefix with its last byte + 1 (a
     * trailing 0xff is dropped and the byte before it bumped instead). */
    memcpy(e->range_end, e->prefix, e->prefix_len);
    size_t i = e->prefix_len;
    while (i > 0 && e->range_end[i - 1] == 0xff)
        i--;
    if (i == 0) {
        snprintf(err, errlen, "etcd: a prefix of only 0xff bytes has no range end");
        etcd_destroy(e);
        return LOOKASIDE_EINVAL;
    }
    e->range_end[i - 1]++;
    kick(e);
    *out = e;
    return LOOKASIDE_OK;
}

void etcd_destroy(etcd *e)
{
    if (e == NULL)
        return;
    e->closing = true;
    loop_timer_cancel(e->l, e->retry_timer);
    loop_timer_cancel(e->l, e->ka_timer);
    for (ecall *c = e->live, *next; c; c = next) {
        next = c->next;
        c->done = NULL;
        ecall_release(c);
    }
    int64_t until = clock_mono_ms() + 2000;
    while (e->n_live > 0 && clock_mono_ms() < until)
        if (!loop_once(e->l, 50))
            break;
    if (e->n_live > 0)
        log_warn("etcd", "%zu calls still live at shutdown", e->n_live);
    for (size_t i = 0; i < e->n_ep; i++) {
        if (e->ch[i])
            grpc_channel_destroy(e->ch[i]);
        free(e->endpoints[i]);
    }
    if (e->creds)
        grpc_channel_credentials_release(e->creds);
    free(e->prefix);
    free(e->range_end);
    free(e);
}

int64_t etcd_lease(const etcd *e) { return e->lease; }
bool etcd_linked(const etcd *e) { return e->linked; }
int64_t etcd_revision(const etcd *e) { return e->last_rev; }
