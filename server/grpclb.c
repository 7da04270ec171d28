/* grpc.lb.v1.LoadBalancer/BalanceLoad: the grpclb protocol, so stock gRPC
 * clients (whose grpclb policy finds us through the _grpclb._tcp SRV record)
 * balance from the same registry and weights as liblookaside.
 *
 * A stream: the client sends initial_request{name}; we answer
 * initial_response{client_stats_report_interval}, then a server_list at once
 * and after every change, then the client sends ClientStats deltas.
 *
 * grpclb clients round-robin over the list in order, so a weight becomes a
 * number of entries, interleaved (wrr_sequence) so that every stretch of the
 * list carries about the right shares. The list is never empty: a known
 * service with nothing to serve gets one drop entry, which makes clients fail
 * calls at once instead of queueing them. A service nobody has registered yet
 * gets nothing; the stream stays open and the list follows when it appears.
 *
 * Fan-out: streams naming the same service share one lb_group, which holds
 * the only registry subscription for them and builds and packs the list once
 * per change; each stream sends the packed buffer (reference counted) with at
 * most one send in flight, taking the latest on completion (as Watch does).
 * A publish that leaves the grpclb list unchanged (a zone, a state the list
 * does not show, a weight change that rounds to the same sequence) sends
 * nothing.
 *
 * ClientStats carry service-wide call counts and drops per drop token, never
 * per-backend calls, so only the service totals (and drops) can be shown.
 *
 * Threads: loop thread only, like every handler. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "grpc/lb/v1/load_balancer.pb-c.h"
#include "log.h"
#include "metrics.h"
#include "pbio.h"
#include "services.h"
#include "wrr.h"

#define LB_TOKEN_MAX 49                     /* tokens must be under 50 bytes */
#define LB_MAX_DROP_TOKENS 1000             /* per ClientStats message */
#define LB_COUNT_MAX ((int64_t)1 << 40)     /* per-message count: ~1e12 calls */
#define LB_DEFAULT_MAX_ENTRIES 1000
#define LB_DROP_TOKEN "lookaside-no-backend"
#define LB_GROUP_BUCKETS 256

typedef struct lb_stream lb_stream;

/* The grpclb view of one service, shared by its streams. It exists only
 * while it has streams, and its subscription keeps the reg_service alive
 * (the registry frees a service only when its last subscriber leaves), so
 * the pointer key cannot be reused by another service while it is here. */
typedef struct lb_group {
    reg_sub sub;
    server_ctx *ctx;
    const reg_service *key;       /* == sub.svc, kept for removal */
    uint64_t version;             /* bumped when the list's content changes */
    grpc_byte_buffer *packed;     /* LoadBalanceResponse{server_list}; NULL: nothing to send */
    uint8_t *bytes;               /* the same bytes, to notice unchanged lists */
    size_t nbytes;
    lb_stream *streams;
    size_t n_streams;
    struct lb_group *hnext;
} lb_group;

struct lb_stream {
    rpc_call *call;
    lb_group *g;                  /* NULL until the initial_request */
    uint64_t sent_version;
    bool initialized;
    lb_stream *prev, *next;
};

/* Groups by service pointer. Module state, loop thread only; a group is
 * keyed by a live service, so several registries in one process (tests)
 * never collide. */
static lb_group *g_groups[LB_GROUP_BUCKETS];

static size_t group_bucket(const reg_service *s)
{
    uintptr_t p = (uintptr_t)s;
    return (size_t)((p >> 4) ^ (p >> 12)) % LB_GROUP_BUCKETS;
}

static lb_group *group_find(const reg_service *s)
{
    for (lb_group *g = g_groups[group_bucket(s)]; g; g = g->hnext)
        if (g->key == s)
            return g;
    return NULL;
}

/* ------------------------------------------------------------ list building */

/* Packs resp and installs it as the group's list unless the bytes are the
 * ones already installed. */
static void group_install(lb_group *g, const Grpc__Lb__V1__LoadBalanceResponse *resp)
{
    size_t n = protobuf_c_message_get_packed_size(&resp->base);
    uint8_t *bytes = malloc(n ? n : 1);
    if (bytes == NULL) {
        log_error("grpclb", "%s: out of memory packing the server list", g->sub.svc->name);
        return;
    }
    protobuf_c_message_pack(&resp->base, bytes);
    if (g->bytes && g->nbytes == n && memcmp(g->bytes, bytes, n) == 0) {
        free(bytes);
        return;
    }
    grpc_byte_buffer *bb = pbio_pack(&resp->base);
    if (bb == NULL) {
        free(bytes);
        log_error("grpclb", "%s: out of memory packing the server list", g->sub.svc->name);
        return;
    }
    if (g->packed)
        grpc_byte_buffer_destroy(g->packed);
    free(g->bytes);
    g->packed = bb;
    g->bytes = bytes;
    g->nbytes = n;
    g->version++;
}

static void install_drop_list(lb_group *g)
{
    Grpc__Lb__V1__Server drop = GRPC__LB__V1__SERVER__INIT;
    drop.drop = true;
    drop.load_balance_token = LB_DROP_TOKEN;
    Grpc__Lb__V1__Server *ptrs[1] = {&drop};
    Grpc__Lb__V1__ServerList sl = GRPC__LB__V1__SERVER_LIST__INIT;
    sl.n_servers = 1;
    sl.servers = ptrs;
    Grpc__Lb__V1__LoadBalanceResponse resp = GRPC__LB__V1__LOAD_BALANCE_RESPONSE__INIT;
    resp.load_balance_response_type_case =
        GRPC__LB__V1__LOAD_BALANCE_RESPONSE__LOAD_BALANCE_RESPONSE_TYPE_SERVER_LIST;
    resp.server_list = &sl;
    group_install(g, &resp);
}

/* Rebuilds the group's list from the service's snapshot. */
static void group_rebuild(lb_group *g, const snap_service *s)
{
    if (s == NULL || !s->known)
        return;   /* never seen: send nothing, the stream waits */
    size_t serving = s->serving;
    if (serving == 0) {
        install_drop_list(g);
        return;
    }
    uint32_t *weights = malloc(serving * sizeof *weights);
    Grpc__Lb__V1__Server *srv = calloc(serving, sizeof *srv);
    uint32_t *seq = NULL;
    size_t len = 0;
    Grpc__Lb__V1__Server **ptrs = NULL;
    if (weights == NULL || srv == NULL)
        goto oom;
    size_t k = 0;
    for (size_t i = 0; i < s->n && k < serving; i++) {
        const snap_backend *b = &s->b[i];
        if (b->weight == 0)
            continue;
        weights[k] = b->weight;
        Grpc__Lb__V1__Server *e = &srv[k];
        grpc__lb__v1__server__init(e);
        e->ip_address.len = b->addr.family == AF_INET6 ? 16 : 4;
        e->ip_address.data = (uint8_t *)b->addr.ip;
        e->port = b->addr.port;
        e->load_balance_token = (char *)b->token;
        k++;
    }
    /* Every serving backend needs at least one entry: past the cap the list
     * grows to one entry each (equal shares) rather than dropping some. */
    size_t max_len = g->ctx->grpclb_max_entries ? g->ctx->grpclb_max_entries
                                                : LB_DEFAULT_MAX_ENTRIES;
    if (max_len < k)
        max_len = k;
    lookaside_status st = wrr_sequence(weights, k, max_len, &seq, &len);
    if (st != LOOKASIDE_OK || len == 0) {
        if (st == LOOKASIDE_ENOMEM)
            goto oom;
        log_error("grpclb", "%s: cannot build the server list (%s)", s->name,
                  lookaside_status_str(st));
        goto out;
    }
    ptrs = malloc(len * sizeof *ptrs);
    if (ptrs == NULL)
        goto oom;
    for (size_t i = 0; i < len; i++)
        ptrs[i] = &srv[seq[i]];
    Grpc__Lb__V1__ServerList sl = GRPC__LB__V1__SERVER_LIST__INIT;
    sl.n_servers = len;
    sl.servers = ptrs;
    Grpc__Lb__V1__LoadBalanceResponse resp = GRPC__LB__V1__LOAD_BALANCE_RESPONSE__INIT;
    resp.load_balance_response_type_case =
        GRPC__LB__V1__LOAD_BALANCE_RESPONSE__LOAD_BALANCE_RESPONSE_TYPE_SERVER_LIST;
    resp.server_list = &sl;
    uint64_t before = g->version;
    group_install(g, &resp);
    if (g->version != before && log_get_level() <= LA_LOG_DEBUG)
        log_debug("grpclb", "%s: list %llu: %zu entries over %zu backends (share error %.2f%%)",
                  s->name, (unsigned long long)g->version, len, k,
                  100.0 * wrr_share_error(weights, k, seq, len));
    goto out;
oom:
    log_error("grpclb", "%s: out of memory building the server list", s->name);
out:
    free(ptrs);
    free(seq);
    free(srv);
    free(weights);
}

/* ------------------------------------------------------------------ pushing */

static void stream_push(lb_stream *st)
{
    lb_group *g = st->g;
    if (g == NULL || g->packed == NULL || st->sent_version >= g->version)
        return;
    /* At most one send in flight: its completion pushes whatever is latest
     * then, so a slow client skips versions instead of queueing them. */
    if (rpc_send_in_flight(st->call))
        return;
    if (rpc_send_buffer(st->call, g->packed)) {
        st->sent_version = g->version;
        METRIC_INC(grpclb_lists);
    }
}

static void group_on_publish(reg_sub *sub, const snap_service *s)
{
    lb_group *g = (lb_group *)sub;
    group_rebuild(g, s);
    /* Sends never end a call synchronously, so the list stays intact. */
    for (lb_stream *st = g->streams; st; st = st->next)
        stream_push(st);
}

/* Joins st to name's group, creating (and subscribing) it if needed. */
static lookaside_status group_join(server_ctx *ctx, const char *name, lb_stream *st)
{
    reg_service *s = registry_find(ctx->reg, name);
    lb_group *g = s ? group_find(s) : NULL;
    if (g == NULL) {
        g = calloc(1, sizeof *g);
        if (g == NULL)
            return LOOKASIDE_ENOMEM;
        g->ctx = ctx;
        g->sub.on_publish = group_on_publish;
        lookaside_status rs = registry_subscribe(ctx->reg, name, &g->sub);
        if (rs != LOOKASIDE_OK) {
            free(g);
            return rs;
        }
        g->key = g->sub.svc;
        size_t h = group_bucket(g->key);
        g->hnext = g_groups[h];
        g_groups[h] = g;
        group_rebuild(g, registry_sub_snapshot(ctx->reg, &g->sub));
    }
    st->g = g;
    st->prev = NULL;
    st->next = g->streams;
    if (g->streams)
        g->streams->prev = st;
    g->streams = st;
    g->n_streams++;
    return LOOKASIDE_OK;
}

static void group_leave(server_ctx *ctx, lb_stream *st)
{
    lb_group *g = st->g;
    if (g == NULL)
        return;
    if (st->prev)
        st->prev->next = st->next;
    else
        g->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    st->g = NULL;
    if (--g->n_streams > 0)
        return;
    lb_group **pp = &g_groups[group_bucket(g->key)];
    while (*pp && *pp != g)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = g->hnext;
    registry_unsubscribe(ctx->reg, &g->sub);
    if (g->packed)
        grpc_byte_buffer_destroy(g->packed);
    free(g->bytes);
    free(g);
}

/* ----------------------------------------------------------------- requests */

/* The service an initial_request names: the name itself when it is a valid
 * service name, else the host of "host:port". False when neither is. */
static bool service_of(const char *name, char *out, size_t len)
{
    if (name_valid(name)) {
        snprintf(out, len, "%s", name);
        return true;
    }
    const char *colon = strrchr(name, ':');
    if (colon == NULL || colon == name)
        return false;
    const char *p = colon + 1;
    size_t digits = strspn(p, "0123456789");
    if (digits == 0 || digits > 5 || p[digits] != '\0' || atoi(p) < 1 || atoi(p) > 65535)
        return false;
    size_t hl = (size_t)(colon - name);
    if (hl >= len)
        return false;
    memcpy(out, name, hl);
    out[hl] = '\0';
    return name_valid(out);
}

static void on_initial_request(rpc_call *c, lb_stream *st,
                               const Grpc__Lb__V1__InitialLoadBalanceRequest *req)
{
    server_ctx *ctx = rpc_method_ctx(c);
    char name[256];
    if (req == NULL || !service_of(req->name, name, sizeof name)) {
        rpc_fail(c, LOOKASIDE_EINVAL,
                   "initial_request.name: want a service name, optionally with \":port\" "
                   "(1-253 bytes of letters, digits, '-', '_', '.')");
        return;
    }
    if (!rpc_authorize(c, AUTH_PERM_WATCH, name))   /* server/auth.h: watch:SERVICE */
        return;
    st->initialized = true;
    Google__Protobuf__Duration interval = GOOGLE__PROTOBUF__DURATION__INIT;
    interval.seconds = ctx->grpclb_stats_ms / 1000;
    interval.nanos = (int32_t)(ctx->grpclb_stats_ms % 1000) * 1000000;
    Grpc__Lb__V1__InitialLoadBalanceResponse init =
        GRPC__LB__V1__INITIAL_LOAD_BALANCE_RESPONSE__INIT;
    init.client_stats_report_interval = ctx->grpclb_stats_ms ? &interval : NULL;
    Grpc__Lb__V1__LoadBalanceResponse resp = GRPC__LB__V1__LOAD_BALANCE_RESPONSE__INIT;
    resp.load_balance_response_type_case =
        GRPC__LB__V1__LOAD_BALANCE_RESPONSE__LOAD_BALANCE_RESPONSE_TYPE_INITIAL_RESPONSE;
    resp.initial_response = &init;
    if (!rpc_send(c, &resp.base))
        return;   /* the call is over; on_close cleans up */
    lookaside_status js = group_join(ctx, name, st);
    if (js != LOOKASIDE_OK) {
        rpc_fail(c, js, "%s", js == LOOKASIDE_ELIMIT ? "too many services" : "out of memory");
        return;
    }
    log_debug("grpclb", "%s from %s: serving %s", req->name, rpc_peer(c), name);
    /* The initial response is in flight: its completion sends the list. */
    stream_push(st);
}

static bool count_ok(int64_t v) { return v >= 0 && v <= LB_COUNT_MAX; }

/* Names the first bad field of a ClientStats, NULL when it is fine. */
static const char *stats_invalid(const Grpc__Lb__V1__ClientStats *cs)
{
    if (!count_ok(cs->num_calls_started))
        return "client_stats.num_calls_started";
    if (!count_ok(cs->num_calls_finished))
        return "client_stats.num_calls_finished";
    if (!count_ok(cs->num_calls_finished_with_client_failed_to_send))
        return "client_stats.num_calls_finished_with_client_failed_to_send";
    if (!count_ok(cs->num_calls_finished_known_received))
        return "client_stats.num_calls_finished_known_received";
    if (cs->n_calls_finished_with_drop > LB_MAX_DROP_TOKENS)
        return "client_stats.calls_finished_with_drop (more than 1000 entries)";
    for (size_t i = 0; i < cs->n_calls_finished_with_drop; i++) {
        const Grpc__Lb__V1__ClientStatsPerToken *t = cs->calls_finished_with_drop[i];
        if (t->load_balance_token == NULL || strlen(t->load_balance_token) > LB_TOKEN_MAX)
            return "client_stats.calls_finished_with_drop.load_balance_token (50 bytes or more)";
        if (!count_ok(t->num_calls))
            return "client_stats.calls_finished_with_drop.num_calls";
    }
    return NULL;
}

static void on_client_stats(rpc_call *c, lb_stream *st, const Grpc__Lb__V1__ClientStats *cs)
{
    const char *bad = cs ? stats_invalid(cs) : "client_stats";
    if (bad) {
        rpc_fail(c, LOOKASIDE_EINVAL,
                   "%s: counts must be 0..2^40, tokens under 50 bytes", bad);
        return;
    }
    reg_service *s = st->g ? st->g->sub.svc : NULL;
    if (s == NULL)
        return;
    grpclb_totals d = {
        .started = cs->num_calls_started,
        .finished = cs->num_calls_finished,
        .failed_to_send = cs->num_calls_finished_with_client_failed_to_send,
        .known_received = cs->num_calls_finished_known_received,
    };
    /* Drops are reported per drop-entry token. Ours never name a backend,
     * so they are summed into the service total without a per-backend token
     * lookup (which would cost tokens x backends per message). Each count is
     * at most 2^40 and there are at most 1000: no overflow. */
    for (size_t i = 0; i < cs->n_calls_finished_with_drop; i++)
        d.dropped += cs->calls_finished_with_drop[i]->num_calls;
    server_ctx *ctx = rpc_method_ctx(c);
    registry_add_grpclb_stats(ctx->reg, s, NULL, &d);
}

/* ------------------------------------------------------------------- method */

static void lb_start(rpc_call *c, const ProtobufCMessage *m)
{
    (void)m;
    lb_stream *st = calloc(1, sizeof *st);
    if (st == NULL) {
        rpc_fail(c, LOOKASIDE_ENOMEM, "out of memory");
        return;
    }
    st->call = c;
    rpc_set_user(c, st);
    METRIC_GAUGE(grpclb_streams, 1);
}

static void lb_message(rpc_call *c, const ProtobufCMessage *m)
{
    lb_stream *st = rpc_user(c);
    if (st == NULL)
        return;
    if (m == NULL) {
        /* Half-close: the client sends nothing more but may keep listening
         * (a tool that writes one request, then reads the stream). */
        if (!st->initialized)
            rpc_fail(c, LOOKASIDE_EINVAL,
                       "stream closed before an initial_request");
        return;
    }
    const Grpc__Lb__V1__LoadBalanceRequest *r = (const Grpc__Lb__V1__LoadBalanceRequest *)m;
    switch (r->load_balance_request_type_case) {
    case GRPC__LB__V1__LOAD_BALANCE_REQUEST__LOAD_BALANCE_REQUEST_TYPE_INITIAL_REQUEST:
        if (st->initialized) {
            rpc_fail(c, LOOKASIDE_EINVAL, "initial_request sent twice");
            return;
        }
        on_initial_request(c, st, r->initial_request);
        return;
    case GRPC__LB__V1__LOAD_BALANCE_REQUEST__LOAD_BALANCE_REQUEST_TYPE_CLIENT_STATS:
        if (!st->initialized) {
            rpc_fail(c, LOOKASIDE_EINVAL,
                       "the first message must be an initial_request, got client_stats");
            return;
        }
        on_client_stats(c, st, r->client_stats);
        return;
    default:
        if (!st->initialized) {
            rpc_fail(c, LOOKASIDE_EINVAL,
                       "the first message must be an initial_request");
            return;
        }
        /* A later message of a kind we do not know: newer clients may send
         * one; ignoring it keeps them working. */
        return;
    }
}

static void lb_send_done(rpc_call *c, bool ok)
{
    lb_stream *st = rpc_user(c);
    if (ok && st)
        stream_push(st);
}

static void lb_close(rpc_call *c, bool cancelled)
{
    (void)cancelled;
    lb_stream *st = rpc_user(c);
    if (st == NULL)
        return;
    group_leave(rpc_method_ctx(c), st);
    rpc_set_user(c, NULL);
    free(st);
    METRIC_GAUGE(grpclb_streams, -1);
}

size_t grpclb_methods(server_ctx *ctx, rpc_method *out)
{
    out[0] = (rpc_method){
        .path = "/grpc.lb.v1.LoadBalancer/BalanceLoad",
        .kind = RPC_BIDI,
        .req_desc = &grpc__lb__v1__load_balance_request__descriptor,
        .max_req_bytes = ctx->max_request_bytes,
        .ctx = ctx,
        .on_start = lb_start,
        .on_message = lb_message,
        .on_send_done = lb_send_done,
        .on_close = lb_close,
    };
    return 1;
}
