#include "lbconn.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

/* Splits "a,b, c" into trimmed, non-empty targets. */
lookaside_status la_targets_split(const char *s, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (s == NULL)
        return LOOKASIDE_EINVAL;
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    char **v = calloc(cap, sizeof *v);
    if (v == NULL)
        return LOOKASIDE_ENOMEM;
    size_t k = 0;
    const char *p = s;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len == 0 || (v[k] = strndup(p, len)) == NULL) {
            lookaside_status st = len == 0 ? LOOKASIDE_EINVAL : LOOKASIDE_ENOMEM;
            for (size_t i = 0; i < k; i++)
                free(v[i]);
            free(v);
            return st;
        }
        k++;
        if (end == NULL)
            break;
        p = end + 1;
    }
    *out = v;
    *n = k;
    return LOOKASIDE_OK;
}

lookaside_status lbconn_init(la_lbconn *l, const char *who, const char *targets,
                             grpc_channel_credentials *creds, const grpc_channel_args *args,
                             uint32_t backoff_initial_ms, uint32_t backoff_max_ms)
{
    memset(l, 0, sizeof *l);
    l->who = who;
    l->backoff_initial_ms = backoff_initial_ms ? backoff_initial_ms : 100;
    l->backoff_max_ms = backoff_max_ms ? backoff_max_ms : 1000;
    lookaside_status st = la_targets_split(targets, &l->targets, &l->n);
    if (st != LOOKASIDE_OK)
        return st;
    l->ch = calloc(l->n, sizeof *l->ch);
    if (l->ch == NULL) {
        lbconn_free(l);
        return LOOKASIDE_ENOMEM;
    }
    st = la_chan_cfg_init(&l->cfg, creds, args);
    if (st != LOOKASIDE_OK)
        lbconn_free(l);
    return st;
}

void lbconn_close_channels(la_lbconn *l)
{
    for (size_t i = 0; l->ch != NULL && i < l->n; i++) {
        if (l->ch[i])
            grpc_channel_destroy(l->ch[i]);
        l->ch[i] = NULL;
    }
}

void lbconn_free(la_lbconn *l)
{
    lbconn_close_channels(l);
    for (size_t i = 0; i < l->n; i++)
        free(l->targets[i]);
    free(l->targets);
    free(l->ch);
    la_chan_cfg_free(&l->cfg);
    memset(l, 0, sizeof *l);
}

void lbretry_init(la_lbretry *r, const la_lbconn *l, uint64_t seed, int64_t now)
{
    memset(r, 0, sizeof *r);
    backoff_init(&r->backoff, l->backoff_initial_ms, l->backoff_max_ms, seed);
    r->retry_at_ms = now;
}

const char *lbconn_target(const la_lbconn *l, const la_lbretry *r)
{
    return l->targets[r->index];
}

static void next_try(la_lbconn *l, la_lbretry *r, int64_t now)
{
    r->index = (r->index + 1) % l->n;
    if (++r->round_fails < l->n) {
        r->retry_at_ms = now; /* the next balancer at once */
    } else {
        r->round_fails = 0;
        r->retry_at_ms = now + backoff_next(&r->backoff);
    }
}

lookaside_status lbconn_start(la_lbconn *l, la_lbretry *r, bgloop *loop, const char *method,
                              const ProtobufCMessage *first, bool half_close,
                              const la_call_handler *h, void *owner, int *live, la_call **out)
{
    r->retry_at_ms = 0;
    r->answered = false;
    size_t i = r->index;
    /* A call on a channel that is waiting to reconnect fails at once, so
     * the channel's own reconnect backoff (gRPC adds +-20 % jitter) is kept
     * at half of ours: when the balancer is back, the channel is connected
     * by our next try. */
    if (l->ch[i] == NULL)
        l->ch[i] = la_channel_open(&l->cfg, l->targets[i], LA_CHAN_BALANCER,
                                   l->backoff_initial_ms,
                                   l->backoff_max_ms / 2 > l->backoff_initial_ms
                                       ? l->backoff_max_ms / 2
                                       : l->backoff_initial_ms);
    lookaside_status st = LOOKASIDE_ENOMEM;
    if (l->ch[i] != NULL)
        st = la_call_start(l->ch[i], loop, method, first, half_close, h, owner, live, out);
    if (st != LOOKASIDE_OK) {
        *out = NULL;
        log_warn(l->who, "cannot start a stream to %s: %s", l->targets[i],
                 lookaside_status_str(st));
        next_try(l, r, clock_mono_ms());
    }
    return st;
}

void lbretry_answered(la_lbretry *r)
{
    if (r->answered)
        return;
    r->answered = true;
    backoff_reset(&r->backoff);
    r->round_fails = 0;
}

void lbretry_ended(la_lbconn *l, la_lbretry *r, const char *name, grpc_status_code code,
                   const char *details, int64_t now)
{
    const char *target = l->targets[r->index];
    if (r->answered) {
        log_warn(l->who, "%s: stream to %s ended (%d: %s); reconnecting", name, target,
                 (int)code, details);
        r->retry_at_ms = now + backoff_next(&r->backoff);
        return;
    }
    /* UNAVAILABLE: nobody there (yet), retried quietly; anything else is
     * the balancer refusing us (credential, name), worth a warning. */
    if (code == GRPC_STATUS_UNAVAILABLE)
        log_debug(l->who, "%s: stream to %s failed (%d: %s)", name, target, (int)code, details);
    else
        log_warn(l->who, "%s: balancer %s refused the stream (%d: %s)", name, target, (int)code,
                 details);
    next_try(l, r, now);
}
