#include "demo_echo.h"

#include <stdlib.h>
#include <string.h>

#include "lookaside/demo/v1/echo.pb-c.h"
#include "pbio.h"

grpc_byte_buffer *demo_echo_pack_request(const char *message)
{
    Lookaside__Demo__V1__EchoRequest req = LOOKASIDE__DEMO__V1__ECHO_REQUEST__INIT;
    req.message = (char *)(message ? message : "");
    return pbio_pack(&req.base);
}

lookaside_status demo_echo_read_request(grpc_byte_buffer *bb, char **message)
{
    ProtobufCMessage *m = NULL;
    lookaside_status st =
        pbio_unpack(&lookaside__demo__v1__echo_request__descriptor, bb, DEMO_ECHO_MAX_BYTES, &m);
    if (st != LOOKASIDE_OK)
        return st;
    const Lookaside__Demo__V1__EchoRequest *req = (const Lookaside__Demo__V1__EchoRequest *)m;
    char *copy = strdup(req->message ? req->message : "");
    protobuf_c_message_free_unpacked(m, NULL);
    if (copy == NULL)
        return LOOKASIDE_ENOMEM;
    *message = copy;
    return LOOKASIDE_OK;
}

grpc_byte_buffer *demo_echo_pack_reply(const char *message, const char *backend,
                                       int64_t queued_us)
{
    Lookaside__Demo__V1__EchoReply rep = LOOKASIDE__DEMO__V1__ECHO_REPLY__INIT;
    rep.message = (char *)(message ? message : "");
    rep.backend = (char *)(backend ? backend : "");
    rep.queued_us = queued_us;
    return pbio_pack(&rep.base);
}

lookaside_status demo_echo_read_reply(grpc_byte_buffer *bb, char *buf, size_t n)
{
    ProtobufCMessage *m = NULL;
    if (n == 0)
        return LOOKASIDE_EINVAL;
    lookaside_status st =
        pbio_unpack(&lookaside__demo__v1__echo_reply__descriptor, bb, DEMO_ECHO_MAX_BYTES, &m);
    if (st != LOOKASIDE_OK)
        return st;
    const Lookaside__Demo__V1__EchoReply *rep = (const Lookaside__Demo__V1__EchoReply *)m;
    const char *name = rep->backend ? rep->backend : "";
    size_t len = strlen(name);
    if (len == 0) {
        protobuf_c_message_free_unpacked(m, NULL);
        return LOOKASIDE_EINVAL;
    }
    if (len >= n)
        len = n - 1;
    memcpy(buf, name, len);
    buf[len] = '\0';
    protobuf_c_message_free_unpacked(m, NULL);
    return LOOKASIDE_OK;
}
