/* lookasidectl commands on lookaside.v1.Balancer: get (GetServerList) and
 * watch (the Watch stream, followed until a signal, a count or a time). */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "lookaside/v1/lookaside.pb-c.h"
#include "util.h"

static void request_init(Lookaside__V1__WatchRequest *req, const char *service)
{
    lookaside__v1__watch_request__init(req);
    req->service = (char *)service;
    req->client_id = "lookasidectl";
}

int cmd_get(ctl_ctx *ctx)
{
    const char *service = ctx->args[0];
    ctl_conn *c = NULL;
    int rc = ctl_open(ctx, &c);
    if (rc != CTL_EXIT_OK)
        return rc;
    Lookaside__V1__WatchRequest req;
    request_init(&req, service);
    ProtobufCMessage *m = NULL;
    ctl_status st;
    memset(&st, 0, sizeof st);
    if (ctl_unary(c, "/lookaside.v1.Balancer/GetServerList", &req.base,
                  &lookaside__v1__server_list__descriptor, &m, ctx->deadline_ms, &st) != 0) {
        rc = ctl_fail(ctx, &st, service);
    } else {
        const Lookaside__V1__ServerList *l = (const Lookaside__V1__ServerList *)m;
        ctl_print_server_list(ctx, l);
        /* The balancer answers an unknown service with an empty list rather
         * than an error (so watchers can wait for it); scripts still want
         * to tell it apart. */
        if (l->state == LOOKASIDE__V1__LIST_STATE__LIST_STATE_UNKNOWN_SERVICE)
            rc = CTL_EXIT_NOT_FOUND;
        protobuf_c_message_free_unpacked(m, NULL);
    }
    ctl_close(c);
    return rc;
}

/* Set from the signal handler; read by the stream's stop poll. */
static volatile sig_atomic_t g_stop_signal;

static void on_signal(int sig) { g_stop_signal = sig; }

typedef struct watch_state {
    const ctl_ctx *ctx;
    long received;
    int64_t end_ms;      /* 0: no time limit */
} watch_state;

static bool watch_msg(void *arg, const ProtobufCMessage *m)
{
    watch_state *w = arg;
    if (w->received > 0 && !w->ctx->json)
        putchar('\n');
    ctl_print_server_list(w->ctx, (const Lookaside__V1__ServerList *)m);
    w->received++;
    return w->ctx->count == 0 || w->received < w->ctx->count;
}

static bool watch_stop(void *arg)
{
    const watch_state *w = arg;
    return g_stop_signal != 0 || (w->end_ms != 0 && clock_mono_ms() >= w->end_ms);
}

int cmd_watch(ctl_ctx *ctx)
{
    const char *service = ctx->args[0];
    /* No SA_RESTART: nothing here blocks in a system call that should
     * resume; the handler only sets a flag that the stream loop polls. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    ctl_conn *c = NULL;
    int rc = ctl_open(ctx, &c);
    if (rc != CTL_EXIT_OK)
        return rc;
    watch_state w = {.ctx = ctx};
    if (ctx->duration_ms > 0)
        w.end_ms = clock_mono_ms() + ctx->duration_ms;
    Lookaside__V1__WatchRequest req;
    request_init(&req, service);
    ctl_status st;
    memset(&st, 0, sizeof st);
    if (ctl_stream(c, "/lookaside.v1.Balancer/Watch", &req.base,
                   &lookaside__v1__server_list__descriptor, watch_msg, watch_stop, &w, &st) != 0) {
        /* A watch only ends on our side; the server ending it is an error
         * even with status OK. */
        if (st.code == 0)
            snprintf(st.message, sizeof st.message, "the balancer ended the stream");
        rc = ctl_fail(ctx, &st, service);
    }
    ctl_close(c);
    return rc;
}
