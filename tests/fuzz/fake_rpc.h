/* fake_rpc.h - the fuzz call layer's call object (see fake_rpc.c). */
#ifndef LA_FUZZ_FAKE_RPC_H
#define LA_FUZZ_FAKE_RPC_H

#include <stdbool.h>
#include <stdint.h>

#include "auth.h"
#include "rpc.h"

struct rpc_call {
    const rpc_method *m;
    void *user;
    bool closed;               /* on_close delivered */
    bool freed;                /* on_close returned: handlers must not touch it */
    bool sending, half_closed;
    bool finish_requested, status_posted;
    grpc_status_code fin_code;
    grpc_byte_buffer *send_bb;
    unsigned n_sent;
    char peer[48];
    char peer_host[24];
    /* Authorization as rpc.c does it (NULL: no authorizer). */
    auth *au;
    auth_peer who;
    char identity[AUTH_ID_MAX + 16];
    /* Oracle state, set by fuzz_server.c. */
    const ProtobufCMessageDescriptor *resp_desc;   /* NULL: not checked */
    void (*check_sent)(rpc_call *c, const ProtobufCMessage *m);
    char watched[256];         /* service named by the request */
    uint64_t last_version;
    uint64_t last_count;
};

#endif
