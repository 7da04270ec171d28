/* fuzz_server.c - the event side of the fuzz call layer and the server
 * under test (see fuzz_server.h). */
#include "fuzz_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "fake_rpc.h"
#include "fuzz_util.h"
#include "grpc/health/v1/health.pb-c.h"
#include "grpc/lb/v1/load_balancer.pb-c.h"
#include "pbio.h"
#include "services.h"

#define FZ_MAX_METHODS 32
#define FZ_MAX_TOTAL_CALLS 256   /* calls per input, kept until its end */
#define FZ_MAX_STEPS 400
#define FZ_MAX_RESTARTS 3

typedef struct fz_server {
    char db[200];
    storage *st;
    loop *l;
    registry *reg;
    server_ctx ctx;
    rpc_method methods[FZ_MAX_METHODS];
    size_t n_methods;
    const rpc_method *allowed[FZ_MAX_METHODS];
    size_t n_allowed;
    rpc_call *slot[FZ_MAX_CALLS];     /* live calls the script can name */
    rpc_call *all[FZ_MAX_TOTAL_CALLS];
    size_t n_all;
    unsigned restarts;
    auth *au;                         /* FZ_AUTH: the authorizer */
} fz_server;

/* FZ_AUTH: the tokens a call may present (index 0: none; the last one is
 * unknown to the policy) and the policy granting them. */
static const char *const TOKENS[] = {NULL, "t-backend", "t-client", "t-admin", "t-agent",
                                     "t-unknown"};
#define N_TOKENS (sizeof TOKENS / sizeof TOKENS[0])

static auth *policy_auth(void)
{
    static auth *a;
    if (a != NULL)
        return a;
    static const char *const lines[][2] = {
        {"t-backend", "report:web"},  {"t-client", "watch:web watch:api"},
        {"t-admin", "admin"},         {"t-agent", "report:* register-any"}};
    char path[256];
    snprintf(path, sizeof path, "%s/policy", fz_setup());
    FILE *f = fopen(path, "w");
    if (f == NULL)
        abort();
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        char hex[65];
        auth_token_hash_hex(lines[i][0], hex);
        fprintf(f, "token %s sha256:%s %s\n", lines[i][0] + 2, hex, lines[i][1]);
    }
    fprintf(f, "anonymous watch:public\n");
    fclose(f);
    char err[300];
    if (auth_create(AUTH_MODE_INSECURE, path, NULL, &a, err, sizeof err) != LOOKASIDE_OK)
        fz_fail("auth_create: %s", err);
    unlink(path);
    return a;
}

/* What the call presents, as rpc.c fills it from the transport. */
static void set_peer(fz_server *s, rpc_call *c, uint8_t token)
{
    c->au = s->au;
    if (s->au == NULL)
        return;
    c->who.loopback = true;
    snprintf(c->who.host, sizeof c->who.host, "%s", c->peer_host);
    if (TOKENS[token % N_TOKENS])
        auth_peer_add_token(&c->who, TOKENS[token % N_TOKENS]);
    auth_identity(s->au, &c->who, c->identity, sizeof c->identity);
}

/* ----------------------------------------------------------------- oracles */

/* Versions per service name across restarts (fuzz_server_run resets it):
 * a list served after a restart must be newer than every list of that name
 * served before it ("versions never repeat for a name"), except the
 * UNKNOWN_SERVICE answer (version 1 for a name the server does not know). */
typedef struct seen_version {
    char name[254];
    uint64_t now, before;   /* max in this incarnation, max in earlier ones */
} seen_version;
#define MAX_SEEN 32
static seen_version g_seen[MAX_SEEN];
static size_t g_nseen;

static void note_version(const Lookaside__V1__ServerList *sl)
{
    if (sl->state == LOOKASIDE__V1__LIST_STATE__LIST_STATE_UNKNOWN_SERVICE)
        return;
    seen_version *e = NULL;
    for (size_t i = 0; i < g_nseen && e == NULL; i++)
        if (strcasecmp(g_seen[i].name, sl->service) == 0)
            e = &g_seen[i];
    if (e == NULL) {
        if (g_nseen == MAX_SEEN)
            return;
        e = &g_seen[g_nseen++];
        snprintf(e->name, sizeof e->name, "%s", sl->service);
        e->now = e->before = 0;
    }
    if (e->before > 0 && sl->version <= e->before)
        fz_fail("%s: version %llu after a restart; %llu was served before it", sl->service,
                (unsigned long long)sl->version, (unsigned long long)e->before);
    if (sl->version > e->now)
        e->now = sl->version;
}

static void versions_restart(void)
{
    for (size_t i = 0; i < g_nseen; i++)
        if (g_seen[i].now > g_seen[i].before)
            g_seen[i].before = g_seen[i].now;
}

static void check_server_list(rpc_call *c, const ProtobufCMessage *m)
{
    const Lookaside__V1__ServerList *sl = (const Lookaside__V1__ServerList *)m;
    if (strcasecmp(sl->service, c->watched) != 0)
        fz_fail("%s: list for \"%s\" on a call for \"%s\"", c->m->path, sl->service, c->watched);
    /* A Watch never repeats or goes back; a list at the same version with no
     * backends is a heartbeat ("still current"). */
    if (c->m->kind == RPC_SERVER_STREAM && c->n_sent > 0 &&
        !(sl->version > c->last_version || (sl->version == c->last_version && sl->n_backends == 0)))
        fz_fail("%s: version %llu after %llu", c->m->path, (unsigned long long)sl->version,
                (unsigned long long)c->last_version);
    c->last_version = sl->version;
    note_version(sl);
    for (size_t i = 0; i < sl->n_backends; i++) {
        la_addr a;
        if (addr_parse(sl->backends[i]->address, &a) != LOOKASIDE_OK)
            fz_fail("%s: published address \"%s\" does not parse", c->m->path,
                    sl->backends[i]->address);
        if (i > 0 && strcmp(sl->backends[i - 1]->address, sl->backends[i]->address) == 0)
            fz_fail("%s: %s listed twice", c->m->path, sl->backends[i]->address);
    }
}

static void check_ack(rpc_call *c, const ProtobufCMessage *m)
{
    const Lookaside__V1__ReportAck *a = (const Lookaside__V1__ReportAck *)m;
    if (a->accepted < c->last_count || a->accepted == 0)
        fz_fail("Report: ack counts %llu after %llu", (unsigned long long)a->accepted,
                (unsigned long long)c->last_count);
    c->last_count = a->accepted;
}

static void check_grpclb(rpc_call *c, const ProtobufCMessage *m)
{
    const Grpc__Lb__V1__LoadBalanceResponse *r = (const Grpc__Lb__V1__LoadBalanceResponse *)m;
    bool initial = r->load_balance_response_type_case ==
                   GRPC__LB__V1__LOAD_BALANCE_RESPONSE__LOAD_BALANCE_RESPONSE_TYPE_INITIAL_RESPONSE;
    if (initial != (c->n_sent == 0))
        fz_fail("BalanceLoad: initial_response is not exactly the first message");
    if (initial)
        return;
    if (r->load_balance_response_type_case !=
        GRPC__LB__V1__LOAD_BALANCE_RESPONSE__LOAD_BALANCE_RESPONSE_TYPE_SERVER_LIST)
        fz_fail("BalanceLoad: a message that is neither initial_response nor server_list");
    const Grpc__Lb__V1__ServerList *sl = r->server_list;
    if (sl == NULL || sl->n_servers == 0)
        fz_fail("BalanceLoad: empty server list (must be a drop entry instead)");
    for (size_t i = 0; i < sl->n_servers; i++) {
        const Grpc__Lb__V1__Server *s = sl->servers[i];
        if (strlen(s->load_balance_token) >= 50)
            fz_fail("BalanceLoad: token of %zu bytes", strlen(s->load_balance_token));
        if (!s->drop && ((s->ip_address.len != 4 && s->ip_address.len != 16) || s->port < 1 ||
                         s->port > 65535))
            fz_fail("BalanceLoad: server entry with a %zu-byte address, port %d",
                    s->ip_address.len, s->port);
    }
}

static void check_health(rpc_call *c, const ProtobufCMessage *m)
{
    (void)c;
    const Grpc__Health__V1__HealthCheckResponse *r = (const Grpc__Health__V1__HealthCheckResponse *)m;
    if ((int)r->status < 1 || (int)r->status > 3)
        fz_fail("Health: status %d", (int)r->status);
}

typedef struct fz_resp {
    const char *path;
    const ProtobufCMessageDescriptor *desc;
    void (*check)(rpc_call *c, const ProtobufCMessage *m);
} fz_resp;

static const fz_resp RESPONSES[] = {
    {"/lookaside.v1.Balancer/Watch", &lookaside__v1__server_list__descriptor, check_server_list},
    {"/lookaside.v1.Balancer/GetServerList", &lookaside__v1__server_list__descriptor,
     check_server_list},
    {"/lookaside.v1.LoadReporter/Report", &lookaside__v1__report_ack__descriptor, check_ack},
    {"/lookaside.v1.Admin/ListServices", &lookaside__v1__list_services_response__descriptor, NULL},
    {"/lookaside.v1.Admin/DescribeService", &lookaside__v1__describe_service_response__descriptor,
     NULL},
    {"/lookaside.v1.Admin/SetDrain", &lookaside__v1__set_drain_response__descriptor, NULL},
    {"/lookaside.v1.Admin/SetWeightOverride",
     &lookaside__v1__set_weight_override_response__descriptor, NULL},
    {"/grpc.lb.v1.LoadBalancer/BalanceLoad", &grpc__lb__v1__load_balance_response__descriptor,
     check_grpclb},
    {"/grpc.health.v1.Health/Check", &grpc__health__v1__health_check_response__descriptor,
     check_health},
    {"/grpc.health.v1.Health/Watch", &grpc__health__v1__health_check_response__descriptor,
     check_health},
};

static const fz_resp *resp_for(const char *path)
{
    for (size_t i = 0; i < sizeof RESPONSES / sizeof RESPONSES[0]; i++)
        if (strcmp(RESPONSES[i].path, path) == 0)
            return &RESPONSES[i];
    return NULL;
}

/* The service a request names, for the list oracle. */
static void note_watched(rpc_call *c, const ProtobufCMessage *req)
{
    if (req == NULL)
        return;
    if (req->descriptor == &lookaside__v1__watch_request__descriptor)
        snprintf(c->watched, sizeof c->watched, "%s",
                 ((const Lookaside__V1__WatchRequest *)req)->service);
}

/* ------------------------------------------------------------------ events */

static void call_close(fz_server *s, rpc_call *c, bool cancelled)
{
    if (c->closed)
        return;
    c->closed = true;
    if (c->m->on_close)
        c->m->on_close(c, cancelled);
    c->freed = true;
    for (size_t i = 0; i < FZ_MAX_CALLS; i++)
        if (s->slot[i] == c)
            s->slot[i] = NULL;
}

/* The real layer: a finished call's status goes out once no send is in
 * flight, and its close completes after that. */
static void deliver_closes(fz_server *s)
{
    for (size_t i = 0; i < FZ_MAX_CALLS; i++) {
        rpc_call *c = s->slot[i];
        if (c && c->finish_requested && c->status_posted && !c->sending)
            call_close(s, c, false);
    }
}

static void send_done(fz_server *s, rpc_call *c, bool ok)
{
    if (!c->sending)
        return;
    c->sending = false;
    grpc_byte_buffer_destroy(c->send_bb);
    c->send_bb = NULL;
    if (c->finish_requested && !c->status_posted && !c->closed)
        c->status_posted = true;
    else if (!c->closed && !c->finish_requested && c->m->on_send_done)
        c->m->on_send_done(c, ok);
    if (!ok)
        call_close(s, c, true);   /* a failed send means the call is breaking */
}

static grpc_byte_buffer *bytes_to_bb(const uint8_t *p, size_t n)
{
    grpc_slice sl = grpc_slice_from_copied_buffer((const char *)p, n);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
    grpc_slice_unref(sl);
    return bb;
}

/* Decodes like rpc.c does; NULL after finishing the call on failure. */
static ProtobufCMessage *decode(rpc_call *c, const uint8_t *p, size_t n)
{
    grpc_byte_buffer *bb = bytes_to_bb(p, n);
    ProtobufCMessage *msg = NULL;
    lookaside_status st = pbio_unpack(c->m->req_desc, bb, c->m->max_req_bytes, &msg);
    grpc_byte_buffer_destroy(bb);
    if (st == LOOKASIDE_ETOOBIG)
        rpc_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "message over the cap");
    else if (st != LOOKASIDE_OK)
        rpc_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "undecodable %s", c->m->req_desc->name);
    return st == LOOKASIDE_OK ? msg : NULL;
}

static void op_open(fz_server *s, fz_in *in)
{
    size_t k = fz_u8(in) % FZ_MAX_CALLS;
    const rpc_method *m = s->allowed[fz_u8(in) % s->n_allowed];
    uint8_t token = s->au ? fz_u8(in) : 0;
    const uint8_t *p;
    size_t n = fz_blob(in, &p);
    if (s->slot[k] || s->n_all == FZ_MAX_TOTAL_CALLS)
        return;
    rpc_call *c = calloc(1, sizeof *c);
    if (c == NULL)
        abort();
    c->m = m;
    snprintf(c->peer_host, sizeof c->peer_host, "127.0.0.%zu", k + 1);
    snprintf(c->peer, sizeof c->peer, "ipv4:%s:%zu", c->peer_host, 40000 + s->n_all);
    const fz_resp *r = resp_for(m->path);
    c->resp_desc = r ? r->desc : NULL;
    c->check_sent = r ? r->check : NULL;
    s->slot[k] = c;
    s->all[s->n_all++] = c;
    set_peer(s, c, token);
    /* rpc.c's order: admission, the permission for some service (not
     * bidi), decoding, the permission for the request's service. */
    if (s->au && !auth_peer_admitted(s->au, &c->who)) {
        rpc_fail(c, LOOKASIDE_EUNAUTH, "not admitted");
        return;
    }
    if (m->kind == RPC_BIDI) {
        if (m->on_start)
            m->on_start(c, NULL);
        return;
    }
    if (!rpc_authorize(c, m->perm, NULL))
        return;
    ProtobufCMessage *req = decode(c, p, n);
    if (req == NULL)
        return;
    note_watched(c, req);
    const char *svc = auth_request_service(req);
    if (rpc_authorize(c, m->perm, svc ? svc : "*"))
        m->on_start(c, req);
    protobuf_c_message_free_unpacked(req, NULL);
}

static void op_msg(fz_server *s, rpc_call *c, fz_in *in)
{
    const uint8_t *p;
    size_t n = fz_blob(in, &p);
    if (c == NULL || c->m->kind != RPC_BIDI || c->closed || c->finish_requested || c->half_closed)
        return;
    (void)s;
    ProtobufCMessage *msg = decode(c, p, n);
    if (msg == NULL)
        return;
    c->m->on_message(c, msg);
    protobuf_c_message_free_unpacked(msg, NULL);
}

static void op_halfclose(rpc_call *c)
{
    if (c == NULL || c->m->kind != RPC_BIDI || c->closed || c->finish_requested || c->half_closed)
        return;
    c->half_closed = true;
    c->m->on_message(c, NULL);
}

/* Time passes: the registry's periodic jobs (publish, evictions, grace,
 * weights, heartbeats, the flush that releases durable acks) run at the new
 * time. The loop's own timers run on the real clock and are not used. */
static void tick(fz_server *s, int64_t advance_ms)
{
    fz_clock_advance(advance_ms);
    registry_tick(s->reg);
    deliver_closes(s);
}

/* ---------------------------------------------------------------- lifecycle */

static bool server_open(fz_server *s)
{
    if (storage_open(s->db, &s->st) != LOOKASIDE_OK)
        fz_fail("storage_open(%s): %s", s->db, storage_open_error());
    registry_config rc;
    registry_config_default(&rc);
    /* Small limits so inputs reach them. */
    rc.max_backends = 24;
    rc.max_services = 12;
    rc.mono_ms = fz_clock_mono;
    rc.wall_ms = fz_clock_wall;
    if (registry_create(s->l, s->st, &rc, &s->reg) != LOOKASIDE_OK)
        fz_fail("registry_create failed on a database the server wrote itself");
    s->ctx.reg = s->reg;
    return true;
}

/* Every (service, address) the registry lists, as "service|address" lines. */
static char *backend_set(registry *r)
{
    size_t cap = 256, len = 0;
    char *out = malloc(cap);
    if (out == NULL)
        abort();
    out[0] = '\0';
    for (reg_service *sv = registry_first(r); sv; sv = registry_next(sv)) {
        for (size_t i = 0; i < sv->n; i++) {
            size_t need = strlen(sv->name) + strlen(sv->b[i]->address) + 3;
            if (len + need >= cap) {
                cap = (cap + need) * 2;
                out = realloc(out, cap);
                if (out == NULL)
                    abort();
            }
            len += (size_t)snprintf(out + len, cap - len, "%s|%s\n", sv->name, sv->b[i]->address);
        }
    }
    return out;
}

static bool backend_listed(registry *r, const char *line)
{
    char svc[256];
    const char *bar = strchr(line, '|');
    snprintf(svc, sizeof svc, "%.*s", (int)(bar - line), line);
    reg_service *sv = registry_find(r, svc);
    return sv && registry_find_backend(sv, bar + 1) != NULL;
}

/* Like main.c's SIGTERM path: end every call with UNAVAILABLE, let the
 * closes run, destroy the registry, flush and close storage. */
static void server_close(fz_server *s)
{
    registry_begin_shutdown(s->reg);
    for (size_t i = 0; i < FZ_MAX_CALLS; i++) {
        rpc_call *c = s->slot[i];
        if (c == NULL)
            continue;
        if (!c->closed && !c->finish_requested)
            rpc_finish(c, GRPC_STATUS_UNAVAILABLE, "server shutting down");
        if (c->sending)
            send_done(s, c, true);
        call_close(s, c, false);
    }
    registry_destroy(s->reg);
    s->reg = NULL;
    s->ctx.reg = NULL;
    storage_close(s->st);
    s->st = NULL;
}

static void restart(fz_server *s)
{
    registry_tick(s->reg);
    char *before = backend_set(s->reg);
    server_close(s);
    versions_restart();
    server_open(s);
    /* Acknowledged registrations survive a clean restart. */
    for (char *line = before, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        *nl = '\0';
        if (!backend_listed(s->reg, line))
            fz_fail("restart lost backend %s", line);
    }
    free(before);
}

static void setup_methods(fz_server *s, const char *const *paths, size_t npaths)
{
    s->ctx.max_report_bytes = 4096;
    s->ctx.max_request_bytes = 65536;
    s->ctx.grpclb_stats_ms = 1000;
    s->ctx.grpclb_max_entries = 64;
    size_t n = 0;
    n += balancer_methods(&s->ctx, s->methods + n);
    n += report_methods(&s->ctx, s->methods + n);
    n += health_methods(&s->ctx, s->methods + n);
    n += admin_methods(&s->ctx, s->methods + n);
    n += grpclb_methods(&s->ctx, s->methods + n);
    if (n > FZ_MAX_METHODS)
        abort();
    s->n_methods = n;
    for (size_t i = 0; i < n; i++)   /* as main.c */
        s->methods[i].perm = auth_method_perm(s->methods[i].path);
    for (size_t i = 0; i < npaths; i++) {
        size_t j;
        for (j = 0; j < n && strcmp(s->methods[j].path, paths[i]) != 0; j++)
            ;
        if (j == n)
            fz_fail("no method %s in the server's tables", paths[i]);
        s->allowed[s->n_allowed++] = &s->methods[j];
    }
}

int fz_server_run(const char *const *paths, size_t npaths, unsigned flags, const uint8_t *data,
                  size_t size)
{
    fz_setup();
    fz_server *s = calloc(1, sizeof *s);
    if (s == NULL)
        abort();
    s->au = (flags & FZ_AUTH) ? policy_auth() : NULL;
    s->ctx.auth = s->au;   /* main.c hands handlers and rpc.c the same authorizer */
    setup_methods(s, paths, npaths);
    fz_db_path(s->db, sizeof s->db);
    fz_clock_reset();
    g_nseen = 0;
    if (loop_create(&s->l) != LOOKASIDE_OK)
        abort();
    server_open(s);

    fz_in in = {data, size};
    for (int step = 0; step < FZ_MAX_STEPS && !fz_done(&in); step++) {
        uint8_t op = fz_u8(&in) % FZ_OP_COUNT;
        switch (op) {
        case FZ_OP_OPEN:
            op_open(s, &in);
            break;
        case FZ_OP_MSG:
            op_msg(s, s->slot[fz_u8(&in) % FZ_MAX_CALLS], &in);
            break;
        case FZ_OP_HALFCLOSE:
            op_halfclose(s->slot[fz_u8(&in) % FZ_MAX_CALLS]);
            break;
        case FZ_OP_SEND_DONE: {
            rpc_call *c = s->slot[fz_u8(&in) % FZ_MAX_CALLS];
            bool ok = (fz_u8(&in) & 1) == 0;
            if (c)
                send_done(s, c, ok);
            break;
        }
        case FZ_OP_CANCEL: {
            rpc_call *c = s->slot[fz_u8(&in) % FZ_MAX_CALLS];
            if (c)
                call_close(s, c, true);
            break;
        }
        case FZ_OP_TICK:
            tick(s, fz_u16(&in));
            break;
        case FZ_OP_RESTART:
            if (s->restarts++ < FZ_MAX_RESTARTS)
                restart(s);
            break;
        }
    }
    tick(s, 0);
    server_close(s);
    loop_destroy(s->l);
    fz_unlink_db(s->db);
    for (size_t i = 0; i < s->n_all; i++) {
        if (s->all[i]->send_bb)
            grpc_byte_buffer_destroy(s->all[i]->send_bb);
        free(s->all[i]);
    }
    free(s);
    return 0;
}
