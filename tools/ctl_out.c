/* Output helpers shared by lookasidectl's commands: errors and exit codes,
 * enum names, times, and the server list printer of get and watch. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <grpc/status.h>

#include "ctl.h"
#include "ctl_json.h"
#include "ctl_text.h"
#include "lookaside/v1/lookaside.pb-c.h"

int ctl_usage_error(const ctl_ctx *ctx, const char *fmt, ...)
{
    /* The message quotes the command line, which may hold anything. */
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fputs("lookasidectl: ", stderr);
    text_put(stderr, msg);
    if (ctx && ctx->cmd)
        fprintf(stderr, "\ntry 'lookasidectl %s --help'\n", ctx->cmd);
    else
        fputs("\ntry 'lookasidectl --help'\n", stderr);
    return CTL_EXIT_USAGE;
}

static int exit_code(const ctl_status *st)
{
    if (st->bad_file)
        return CTL_EXIT_USAGE;
    if (st->unreachable || st->code == GRPC_STATUS_UNAVAILABLE)
        return CTL_EXIT_UNREACHABLE;
    if (st->code == GRPC_STATUS_NOT_FOUND)
        return CTL_EXIT_NOT_FOUND;
    if (st->code == GRPC_STATUS_UNAUTHENTICATED)
        return CTL_EXIT_UNAUTHENTICATED;
    if (st->code == GRPC_STATUS_PERMISSION_DENIED)
        return CTL_EXIT_DENIED;
    return CTL_EXIT_RPC;
}

int ctl_fail(const ctl_ctx *ctx, const ctl_status *st, const char *service)
{
    fputs("lookasidectl: ", stderr);
    if (st->unreachable) {
        fputs("cannot reach the LB at ", stderr);
        text_put(stderr, ctx->lb);
        if (st->code == GRPC_STATUS_DEADLINE_EXCEEDED)
            fprintf(stderr, ": %s (--timeout-ms %d)\n", st->message, ctx->timeout_ms);
        else
            fprintf(stderr, ": %s\n", st->message);
    } else {
        fprintf(stderr, "%s: ", ctl_status_name(st->code));
        text_put(stderr, st->message);
        fputc('\n', stderr);
    }
    if (ctx->json) {
        json_writer w;
        json_init(&w, stdout);
        json_obj_begin(&w, NULL);
        json_obj_begin(&w, "error");
        json_str(&w, "status", ctl_status_name(st->code));
        json_i64(&w, "code", st->code);
        json_str(&w, "message", st->message);
        json_bool(&w, "unreachable", st->unreachable);
        json_obj_end(&w);
        json_str(&w, "lb", ctx->lb);
        if (service)
            json_str(&w, "service", service);
        json_obj_end(&w);
        json_end_line(&w);
        fflush(stdout);
    }
    return exit_code(st);
}

int ctl_open(const ctl_ctx *ctx, ctl_conn **out)
{
    ctl_status st;
    memset(&st, 0, sizeof st);
    if (ctl_connect(ctx->lb, &ctx->sec, ctx->deadline_ms, out, &st) == 0)
        return CTL_EXIT_OK;
    return ctl_fail(ctx, &st, NULL);
}

const char *ctl_enum_name(const ProtobufCEnumDescriptor *d, int value, const char *prefix)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(d, value);
    if (v == NULL)
        return "UNKNOWN";
    size_t n = strlen(prefix);
    return strncmp(v->name, prefix, n) == 0 ? v->name + n : v->name;
}

const char *ctl_backend_state(int v)
{
    return ctl_enum_name(&lookaside__v1__backend_state__descriptor, v, "BACKEND_STATE_");
}

const char *ctl_backend_source(int v)
{
    return ctl_enum_name(&lookaside__v1__backend_source__descriptor, v, "BACKEND_SOURCE_");
}

const char *ctl_list_state(int v)
{
    return ctl_enum_name(&lookaside__v1__list_state__descriptor, v, "LIST_STATE_");
}

void ctl_fmt_age(int64_t ms, char *buf, size_t len)
{
    if (ms < 0)
        snprintf(buf, len, "-");
    else if (ms < 1000)
        snprintf(buf, len, "%" PRId64 "ms", ms);
    else if (ms < 60000)
        snprintf(buf, len, "%.1fs", (double)ms / 1000.0);
    else if (ms < 3600000)
        snprintf(buf, len, "%" PRId64 "m%02" PRId64 "s", ms / 60000, ms / 1000 % 60);
    else
        snprintf(buf, len, "%" PRId64 "h%02" PRId64 "m", ms / 3600000, ms / 60000 % 60);
}

void ctl_fmt_time(int64_t unix_ms, char *buf, size_t len)
{
    struct tm tm;
    time_t secs = (time_t)(unix_ms / 1000);
    if (unix_ms <= 0 || gmtime_r(&secs, &tm) == NULL) {
        snprintf(buf, len, "-");
        return;
    }
    char day[32];
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%03dZ", day, (int)(unix_ms % 1000));
}

static void list_json(const Lookaside__V1__ServerList *l)
{
    json_writer w;
    json_init(&w, stdout);
    json_obj_begin(&w, NULL);
    json_str(&w, "service", l->service);
    json_u64(&w, "version", l->version);
    json_str(&w, "state", ctl_list_state(l->state));
    json_i64(&w, "generated_at_unix_ms", l->generated_at_unix_ms);
    json_u64(&w, "valid_for_ms", l->valid_for_ms);
    if (l->unconfirmed)   /* replicas: etcd cannot confirm the list */
        json_bool(&w, "unconfirmed", true);
    json_arr_begin(&w, "backends");
    for (size_t i = 0; i < l->n_backends; i++) {
        const Lookaside__V1__Backend *b = l->backends[i];
        json_obj_begin(&w, NULL);
        json_str(&w, "address", b->address);
        json_u64(&w, "weight", b->weight);
        json_str(&w, "state", ctl_backend_state(b->state));
        json_str(&w, "zone", b->zone);
        json_str(&w, "source", ctl_backend_source(b->source));
        json_str(&w, "token", b->token);
        json_obj_end(&w);
    }
    json_arr_end(&w);
    json_obj_end(&w);
    json_end_line(&w);
}

static void list_text(const Lookaside__V1__ServerList *l)
{
    char when[40];
    ctl_fmt_time(l->generated_at_unix_ms, when, sizeof when);
    text_put(stdout, l->service);
    printf("  version %" PRIu64 "  %s  %zu backend%s  generated %s  valid for %" PRIu32 " ms\n",
           l->version, ctl_list_state(l->state), l->n_backends, l->n_backends == 1 ? "" : "s",
           when, l->valid_for_ms);
    if (l->unconfirmed)
        printf("  unconfirmed: this replica cannot confirm the list with etcd (fail static)\n");
    if (l->n_backends == 0)
        return;
    static const char *const hdr[] = {"ADDRESS", "WEIGHT", "STATE", "ZONE", "SOURCE", "TOKEN"};
    text_table *t = table_new(6, hdr);
    if (t == NULL)
        return;
    for (size_t i = 0; i < l->n_backends; i++) {
        const Lookaside__V1__Backend *b = l->backends[i];
        table_cell(t, b->address);
        table_cellf(t, "%" PRIu32, b->weight);
        table_cell(t, ctl_backend_state(b->state));
        table_cell(t, b->zone[0] ? b->zone : "-");
        table_cell(t, ctl_backend_source(b->source));
        table_cell(t, b->token[0] ? b->token : "-");
    }
    table_print(t, stdout, 2);
    table_free(t);
}

void ctl_print_server_list(const ctl_ctx *ctx, const Lookaside__V1__ServerList *l)
{
    if (ctx->json)
        list_json(l);
    else
        list_text(l);
    fflush(stdout);
}
