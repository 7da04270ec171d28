/* fake_rpc.c - rpc.h for the fuzz targets: the call layer's contract
 * (see server/rpc.h and server/rpc.c) with events taken from the fuzz
 * script instead of a gRPC completion queue. The event side (opening calls,
 * delivering messages, completing sends, closing) is in fuzz_server.c; this
 * file is what handlers call, plus the checks that they keep the contract. */
#include "fake_rpc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "log.h"
#include "pbio.h"
#include "status.h"

/* Unpacks a packed buffer with desc, or fails: a handler sent bytes that its
 * own protocol cannot read. */
static ProtobufCMessage *decode_sent(rpc_call *c, grpc_byte_buffer *bb)
{
    ProtobufCMessage *m = NULL;
    lookaside_status st = pbio_unpack(c->resp_desc, bb, (size_t)64 << 20, &m);
    if (st != LOOKASIDE_OK)
        fz_fail("%s: sent a message that does not decode as %s (%s)", c->m->path,
                c->resp_desc->name, lookaside_status_str(st));
    return m;
}

static bool post_send(rpc_call *c, grpc_byte_buffer *bb, bool with_status)
{
    if (c->resp_desc != NULL) {
        ProtobufCMessage *m = decode_sent(c, bb);
        if (c->check_sent)
            c->check_sent(c, m);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    c->n_sent++;
    if (c->m->kind == RPC_UNARY && (c->n_sent > 1 || !with_status))
        fz_fail("%s: unary call sent a message without its status, or twice", c->m->path);
    c->sending = true;
    c->send_bb = bb;
    if (with_status) {
        c->finish_requested = true;
        c->status_posted = true;
        c->fin_code = GRPC_STATUS_OK;
    }
    return true;
}

static void check_usable(const rpc_call *c, const char *what)
{
    if (c->freed)
        fz_fail("%s on a call after on_close returned", what);
}

bool rpc_send_buffer(rpc_call *c, grpc_byte_buffer *bb)
{
    check_usable(c, "rpc_send_buffer");
    if (c->closed || c->finish_requested || c->sending)
        return false;
    return post_send(c, grpc_byte_buffer_copy(bb), false);
}

bool rpc_send(rpc_call *c, const ProtobufCMessage *msg)
{
    check_usable(c, "rpc_send");
    if (c->closed || c->finish_requested || c->sending)
        return false;
    grpc_byte_buffer *bb = pbio_pack(msg);
    if (bb == NULL)
        return false;
    return post_send(c, bb, false);
}

/* The fuzz server runs handlers without their loop (its ctx.ack_gap_ms is
 * 0, so no handler needs a timer): asking for it is a broken contract. */
loop *rpc_loop(const rpc_call *c)
{
    fz_fail("%s: rpc_loop called with no loop timers in the fuzz server", c->m->path);
    return NULL;
}

bool rpc_send_in_flight(const rpc_call *c)
{
    check_usable(c, "rpc_send_in_flight");
    return c->sending;
}

void rpc_reply(rpc_call *c, const ProtobufCMessage *msg)
{
    check_usable(c, "rpc_reply");
    if (c->closed || c->finish_requested || c->sending)
        return;
    grpc_byte_buffer *bb = pbio_pack(msg);
    if (bb == NULL) {
        rpc_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    post_send(c, bb, true);
}

void rpc_reply_buffer(rpc_call *c, grpc_byte_buffer *bb)
{
    check_usable(c, "rpc_reply_buffer");
    if (c->closed || c->finish_requested || c->sending)
        return;
    post_send(c, grpc_byte_buffer_copy(bb), true);
}

static void finish(rpc_call *c, grpc_status_code code, const char *fmt, va_list ap)
{
    if (c->closed || c->finish_requested)
        return;
    if ((int)code < 0 || (int)code > 16)
        fz_fail("%s: finished with status %d, not a gRPC code", c->m->path, (int)code);
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    if (code != GRPC_STATUS_OK && buf[0] == '\0')
        fz_fail("%s: status %d without a message", c->m->path, (int)code);
    if (code != GRPC_STATUS_OK)
        log_debug("fuzz", "%s from %s: status %d: %s", c->m->path, c->peer, (int)code, buf);
    c->finish_requested = true;
    c->fin_code = code;
    if (!c->sending)
        c->status_posted = true;
}

void rpc_finish(rpc_call *c, grpc_status_code code, const char *fmt, ...)
{
    check_usable(c, "rpc_finish");
    va_list ap;
    va_start(ap, fmt);
    finish(c, code, fmt, ap);
    va_end(ap);
}

void rpc_fail(rpc_call *c, lookaside_status st, const char *fmt, ...)
{
    check_usable(c, "rpc_fail");
    if (st == LOOKASIDE_OK)
        fz_fail("%s: rpc_fail with LOOKASIDE_OK", c->m->path);
    va_list ap;
    va_start(ap, fmt);
    finish(c, la_status_to_grpc(st), fmt, ap);
    va_end(ap);
}

bool rpc_finished(const rpc_call *c)
{
    check_usable(c, "rpc_finished");
    return c->closed || c->finish_requested;
}

void rpc_set_user(rpc_call *c, void *user)
{
    check_usable(c, "rpc_set_user");
    c->user = user;
}

void *rpc_user(const rpc_call *c)
{
    check_usable(c, "rpc_user");
    return c->user;
}

void *rpc_method_ctx(const rpc_call *c) { return c->m->ctx; }
const char *rpc_method_path(const rpc_call *c) { return c->m->path; }
const char *rpc_peer(const rpc_call *c) { return c->peer; }
const char *rpc_peer_host(const rpc_call *c) { return c->peer_host; }

/* As rpc.c: with no authorizer every peer may do everything and is
 * anonymous; with one, auth_check decides and a refusal finishes the call
 * with UNAUTHENTICATED or PERMISSION_DENIED. */
bool rpc_authorize(rpc_call *c, auth_perm perm, const char *service)
{
    check_usable(c, "rpc_authorize");
    if (c->au == NULL)
        return true;
    lookaside_status st = auth_check(c->au, &c->who, perm, service);
    if (st == LOOKASIDE_OK)
        return true;
    if (st != LOOKASIDE_EUNAUTH && st != LOOKASIDE_EPERM)
        fz_fail("auth_check answered %s", lookaside_status_str(st));
    rpc_fail(c, st, "%s lacks %s for %s", c->identity[0] ? c->identity : "anonymous",
             auth_perm_name(perm), c->m->path);
    return false;
}

const auth_peer *rpc_auth_peer(const rpc_call *c)
{
    check_usable(c, "rpc_auth_peer");
    return c->au ? &c->who : NULL;
}

const char *rpc_identity(const rpc_call *c)
{
    check_usable(c, "rpc_identity");
    return c->identity;
}

void rpc_auth_add_token(rpc_call *c, const char *token)
{
    check_usable(c, "rpc_auth_add_token");
    if (c->au == NULL || token == NULL || token[0] == '\0')
        return;
    auth_peer_add_token(&c->who, token);
    auth_identity(c->au, &c->who, c->identity, sizeof c->identity);
}
