#include "echo_call.h"

#include <string.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/support/time.h>

static _Thread_local grpc_completion_queue *call_cq;

grpc_status_code it_echo(grpc_channel *ch, int timeout_ms, char *reply, size_t n)
{
    if (call_cq == NULL)
        call_cq = grpc_completion_queue_create_for_pluck(NULL);
    gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                         gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
    grpc_call *call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, call_cq,
                                               grpc_slice_from_static_string("/test.Echo/Echo"),
                                               NULL, deadline, NULL);
    grpc_slice req = grpc_slice_from_static_string("ping");
    grpc_byte_buffer *req_bb = grpc_raw_byte_buffer_create(&req, 1);
    grpc_byte_buffer *resp_bb = NULL;
    grpc_metadata_array init_md, trail_md;
    grpc_metadata_array_init(&init_md);
    grpc_metadata_array_init(&trail_md);
    grpc_status_code status = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = req_bb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &init_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &resp_bb;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trail_md;
    ops[5].data.recv_status_on_client.status = &status;
    ops[5].data.recv_status_on_client.status_details = &details;
    static int tag;
    if (grpc_call_start_batch(call, ops, 6, &tag, NULL) == GRPC_CALL_OK)
        grpc_completion_queue_pluck(call_cq, &tag, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    if (reply && n) {
        reply[0] = '\0';
        if (resp_bb) {
            grpc_byte_buffer_reader r;
            grpc_byte_buffer_reader_init(&r, resp_bb);
            grpc_slice s = grpc_byte_buffer_reader_readall(&r);
            size_t k = GRPC_SLICE_LENGTH(s) < n - 1 ? GRPC_SLICE_LENGTH(s) : n - 1;
            memcpy(reply, GRPC_SLICE_START_PTR(s), k);
            reply[k] = '\0';
            grpc_slice_unref(s);
            grpc_byte_buffer_reader_destroy(&r);
        }
    }
    if (resp_bb)
        grpc_byte_buffer_destroy(resp_bb);
    grpc_byte_buffer_destroy(req_bb);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&init_md);
    grpc_metadata_array_destroy(&trail_md);
    grpc_call_unref(call);
    return status;
}

void it_echo_thread_done(void)
{
    if (call_cq == NULL)
        return;
    grpc_completion_queue_shutdown(call_cq);
    while (grpc_completion_queue_pluck(call_cq, NULL, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL)
               .type != GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(call_cq);
    call_cq = NULL;
}
