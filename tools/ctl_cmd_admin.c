/* lookasidectl commands on lookaside.v1.Admin: services, show, drain,
 * undrain, weight. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "ctl_json.h"
#include "ctl_text.h"
#include "lookaside/v1/lookaside.pb-c.h"
#include "util.h"

/* Connects and makes one unary call; on failure reports it and returns the
 * exit code with *resp NULL. */
static int call(const ctl_ctx *ctx, const char *method, const ProtobufCMessage *req,
                const ProtobufCMessageDescriptor *rd, ProtobufCMessage **resp, const char *service)
{
    *resp = NULL;
    ctl_conn *c = NULL;
    int rc = ctl_open(ctx, &c);
    if (rc != CTL_EXIT_OK)
        return rc;
    ctl_status st;
    memset(&st, 0, sizeof st);
    if (ctl_unary(c, method, req, rd, resp, ctx->deadline_ms, &st) != 0)
        rc = ctl_fail(ctx, &st, service);
    ctl_close(c);
    return rc;
}

/* ------------------------------------------------------------ services */

static void services_json(const Lookaside__V1__ListServicesResponse *r)
{
    json_writer w;
    json_init(&w, stdout);
    json_obj_begin(&w, NULL);
    json_arr_begin(&w, "services");
    for (size_t i = 0; i < r->n_services; i++) {
        const Lookaside__V1__ServiceSummary *s = r->services[i];
        json_obj_begin(&w, NULL);
        json_str(&w, "name", s->name);
        json_u64(&w, "version", s->version);
        json_u64(&w, "backends", s->backends);
        json_u64(&w, "serving", s->serving);
        json_u64(&w, "watchers", s->watchers);
        json_str(&w, "state", ctl_list_state(s->state));
        json_obj_end(&w);
    }
    json_arr_end(&w);
    json_obj_end(&w);
    json_end_line(&w);
}

static void services_text(const Lookaside__V1__ListServicesResponse *r)
{
    if (r->n_services == 0) {
        puts("no services");
        return;
    }
    static const char *const hdr[] = {"SERVICE", "VERSION", "BACKENDS", "SERVING", "WATCHERS",
                                      "STATE"};
    text_table *t = table_new(6, hdr);
    if (t == NULL)
        return;
    for (size_t i = 0; i < r->n_services; i++) {
        const Lookaside__V1__ServiceSummary *s = r->services[i];
        table_cell(t, s->name);
        table_cellf(t, "%" PRIu64, s->version);
        table_cellf(t, "%" PRIu32, s->backends);
        table_cellf(t, "%" PRIu32, s->serving);
        table_cellf(t, "%" PRIu32, s->watchers);
        table_cell(t, ctl_list_state(s->state));
    }
    table_print(t, stdout, 0);
    table_free(t);
}

int cmd_services(ctl_ctx *ctx)
{
    Lookaside__V1__ListServicesRequest req = LOOKASIDE__V1__LIST_SERVICES_REQUEST__INIT;
    ProtobufCMessage *m = NULL;
    int rc = call(ctx, "/lookaside.v1.Admin/ListServices", &req.base,
                  &lookaside__v1__list_services_response__descriptor, &m, NULL);
    if (rc != CTL_EXIT_OK)
        return rc;
    const Lookaside__V1__ListServicesResponse *r = (const Lookaside__V1__ListServicesResponse *)m;
    if (ctx->json)
        services_json(r);
    else
        services_text(r);
    protobuf_c_message_free_unpacked(m, NULL);
    return CTL_EXIT_OK;
}

/* ---------------------------------------------------------------- show */

static void show_backend_json(json_writer *w, const Lookaside__V1__BackendInfo *bi)
{
    static const Lookaside__V1__Backend no_backend = LOOKASIDE__V1__BACKEND__INIT;
    const Lookaside__V1__Backend *b = bi->backend ? bi->backend : &no_backend;
    json_obj_begin(w, NULL);
    json_str(w, "address", b->address);
    json_u64(w, "weight", b->weight);
    json_str(w, "state", ctl_backend_state(b->state));
    json_str(w, "zone", b->zone);
    json_str(w, "source", ctl_backend_source(b->source));
    json_str(w, "token", b->token);
    if (bi->last_report_age_ms < 0)
        json_null(w, "report_age_ms");
    else
        json_i64(w, "report_age_ms", bi->last_report_age_ms);
    json_u64(w, "weight_override", bi->weight_override);
    json_i64(w, "first_seen_unix_ms", bi->first_seen_unix_ms);
    const Lookaside__V1__WeightExplanation *e = bi->explanation;
    if (e) {
        json_obj_begin(w, "explanation");
        json_num(w, "utilization", e->utilization);
        json_num(w, "rps", e->rps);
        json_num(w, "eps", e->eps);
        json_num(w, "raw_weight", e->raw_weight);
        json_num(w, "clamped_weight", e->clamped_weight);
        json_num(w, "smoothed_weight", e->smoothed_weight);
        json_num(w, "slow_start_factor", e->slow_start_factor);
        json_str(w, "text", e->text);
        json_obj_end(w);
    } else {
        json_null(w, "explanation");
    }
    const Lookaside__V1__Load *l = bi->last_load;
    if (l) {
        json_obj_begin(w, "load");
        json_num(w, "cpu_utilization", l->cpu_utilization);
        json_num(w, "mem_utilization", l->mem_utilization);
        json_num(w, "application_utilization", l->application_utilization);
        json_num(w, "rps_fractional", l->rps_fractional);
        json_num(w, "eps", l->eps);
        json_u64(w, "in_flight", l->in_flight);
        json_obj_begin(w, "utilization");
        for (size_t i = 0; i < l->n_utilization; i++)
            json_num(w, l->utilization[i]->key, l->utilization[i]->value);
        json_obj_end(w);
        json_obj_end(w);
    } else {
        json_null(w, "load");
    }
    json_obj_end(w);
}

static void show_json(const Lookaside__V1__DescribeServiceResponse *r)
{
    json_writer w;
    json_init(&w, stdout);
    json_obj_begin(&w, NULL);
    json_str(&w, "service", r->service);
    json_u64(&w, "version", r->version);
    json_str(&w, "state", ctl_list_state(r->state));
    json_str(&w, "policy", r->policy);
    json_u64(&w, "watchers", r->watchers);
    if (r->grpclb) {
        json_obj_begin(&w, "grpclb");
        json_i64(&w, "calls_started", r->grpclb->calls_started);
        json_i64(&w, "calls_finished", r->grpclb->calls_finished);
        json_i64(&w, "calls_failed_to_send", r->grpclb->calls_failed_to_send);
        json_i64(&w, "calls_known_received", r->grpclb->calls_known_received);
        json_i64(&w, "calls_dropped", r->grpclb->calls_dropped);
        json_obj_end(&w);
    } else {
        json_null(&w, "grpclb");
    }
    json_arr_begin(&w, "backends");
    for (size_t i = 0; i < r->n_backends; i++)
        show_backend_json(&w, r->backends[i]);
    json_arr_end(&w);
    json_obj_end(&w);
    json_end_line(&w);
}

static void show_text(const Lookaside__V1__DescribeServiceResponse *r)
{
    fputs("service   ", stdout);
    text_put(stdout, r->service);
    printf("\nversion   %" PRIu64 "\nstate     %s\npolicy    ", r->version,
           ctl_list_state(r->state));
    text_put(stdout, r->policy[0] ? r->policy : "-");
    printf("\nwatchers  %" PRIu32 "\n", r->watchers);
    if (r->grpclb)
        printf("grpclb    calls started %" PRId64 ", finished %" PRId64 ", failed to send %" PRId64
               ", known received %" PRId64 ", dropped %" PRId64 "\n",
               r->grpclb->calls_started, r->grpclb->calls_finished,
               r->grpclb->calls_failed_to_send, r->grpclb->calls_known_received,
               r->grpclb->calls_dropped);
    if (r->n_backends == 0) {
        puts("\nno backends");
        return;
    }
    static const char *const hdr[] = {"ADDRESS", "WEIGHT", "STATE",      "ZONE",    "SOURCE",
                                      "RPS",     "UTIL",   "REPORT AGE", "OVERRIDE"};
    text_table *t = table_new(9, hdr);
    if (t == NULL)
        return;
    for (size_t i = 0; i < r->n_backends; i++) {
        const Lookaside__V1__BackendInfo *bi = r->backends[i];
        const Lookaside__V1__Backend *b = bi->backend;
        char age[32];
        ctl_fmt_age(bi->last_report_age_ms, age, sizeof age);
        table_cell(t, b ? b->address : "?");
        table_cellf(t, "%" PRIu32, b ? b->weight : 0);
        table_cell(t, b ? ctl_backend_state(b->state) : "?");
        table_cell(t, b && b->zone[0] ? b->zone : "-");
        table_cell(t, b ? ctl_backend_source(b->source) : "?");
        if (bi->last_load) {
            /* What the backend last reported; the explanation holds what
             * the weight used (nothing, for a drained backend). */
            const Lookaside__V1__Load *l = bi->last_load;
            table_cellf(t, "%.4g", l->rps_fractional);
            table_cellf(t, "%.3g", l->application_utilization > 0 ? l->application_utilization
                                                                  : l->cpu_utilization);
        } else {
            table_cell(t, "-");
            table_cell(t, "-");
        }
        table_cell(t, age);
        if (bi->weight_override)
            table_cellf(t, "%" PRIu32, bi->weight_override);
        else
            table_cell(t, "-");
    }
    putchar('\n');
    table_print(t, stdout, 0);
    table_free(t);

    puts("\nwhy these weights:");
    static const char *const why_hdr[] = {"ADDRESS", "EXPLANATION"};
    text_table *why = table_new(2, why_hdr);
    if (why == NULL)
        return;
    for (size_t i = 0; i < r->n_backends; i++) {
        const Lookaside__V1__BackendInfo *bi = r->backends[i];
        table_cell(why, bi->backend ? bi->backend->address : "?");
        table_cell(why, bi->explanation && bi->explanation->text[0] ? bi->explanation->text : "-");
    }
    table_print(why, stdout, 2);
    table_free(why);
}

int cmd_show(ctl_ctx *ctx)
{
    const char *service = ctx->args[0];
    Lookaside__V1__DescribeServiceRequest req = LOOKASIDE__V1__DESCRIBE_SERVICE_REQUEST__INIT;
    req.service = (char *)service;
    ProtobufCMessage *m = NULL;
    int rc = call(ctx, "/lookaside.v1.Admin/DescribeService", &req.base,
                  &lookaside__v1__describe_service_response__descriptor, &m, service);
    if (rc != CTL_EXIT_OK)
        return rc;
    const Lookaside__V1__DescribeServiceResponse *r =
        (const Lookaside__V1__DescribeServiceResponse *)m;
    if (ctx->json)
        show_json(r);
    else
        show_text(r);
    protobuf_c_message_free_unpacked(m, NULL);
    return CTL_EXIT_OK;
}

/* ------------------------------------------------------ drain, weight */

static void backend_result(const ctl_ctx *ctx, const char *service, const char *address,
                           const char *key, const char *state, long weight)
{
    if (ctx->json) {
        json_writer w;
        json_init(&w, stdout);
        json_obj_begin(&w, NULL);
        json_str(&w, "service", service);
        json_str(&w, "address", address);
        if (state)
            json_str(&w, key, state);
        else
            json_i64(&w, key, weight);
        json_obj_end(&w);
        json_end_line(&w);
        return;
    }
    text_put(stdout, service);
    putchar(' ');
    text_put(stdout, address);
    if (state)
        printf(": %s\n", state);
    else if (weight == 0)
        puts(": weight override cleared");
    else
        printf(": weight override %ld\n", weight);
}

/* Catches a mistyped address before anything goes over the network. */
static bool address_ok(const ctl_ctx *ctx, const char *address)
{
    la_addr a;
    if (addr_parse(address, &a) == LOOKASIDE_OK)
        return true;
    ctl_usage_error(ctx, "ADDRESS: want ip:port or [ipv6]:port, got '%s'", address);
    return false;
}

static int set_drain(ctl_ctx *ctx, bool draining)
{
    if (!address_ok(ctx, ctx->args[1]))
        return CTL_EXIT_USAGE;
    Lookaside__V1__SetDrainRequest req = LOOKASIDE__V1__SET_DRAIN_REQUEST__INIT;
    req.service = (char *)ctx->args[0];
    req.address = (char *)ctx->args[1];
    req.draining = draining;
    ProtobufCMessage *m = NULL;
    int rc = call(ctx, "/lookaside.v1.Admin/SetDrain", &req.base,
                  &lookaside__v1__set_drain_response__descriptor, &m, req.service);
    if (rc != CTL_EXIT_OK)
        return rc;
    const Lookaside__V1__SetDrainResponse *r = (const Lookaside__V1__SetDrainResponse *)m;
    backend_result(ctx, req.service, req.address, "state", ctl_backend_state(r->state), 0);
    protobuf_c_message_free_unpacked(m, NULL);
    return CTL_EXIT_OK;
}

int cmd_drain(ctl_ctx *ctx) { return set_drain(ctx, true); }
int cmd_undrain(ctl_ctx *ctx) { return set_drain(ctx, false); }

int cmd_weight(ctl_ctx *ctx)
{
    char *end = NULL;
    const char *arg = ctx->args[2];
    long weight = strtol(arg, &end, 10);
    /* The proto's range: 0 clears, otherwise 1..1000000. */
    if (arg[0] < '0' || arg[0] > '9' || *end != '\0' || weight < 0 || weight > 1000000)
        return ctl_usage_error(ctx, "weight: want 0 (clear) or 1..1000000, got '%s'", arg);
    if (!address_ok(ctx, ctx->args[1]))
        return CTL_EXIT_USAGE;
    Lookaside__V1__SetWeightOverrideRequest req = LOOKASIDE__V1__SET_WEIGHT_OVERRIDE_REQUEST__INIT;
    req.service = (char *)ctx->args[0];
    req.address = (char *)ctx->args[1];
    req.weight = (uint32_t)weight;
    ProtobufCMessage *m = NULL;
    int rc = call(ctx, "/lookaside.v1.Admin/SetWeightOverride", &req.base,
                  &lookaside__v1__set_weight_override_response__descriptor, &m, req.service);
    if (rc != CTL_EXIT_OK)
        return rc;
    backend_result(ctx, req.service, req.address, "weight_override", NULL, weight);
    protobuf_c_message_free_unpacked(m, NULL);
    return CTL_EXIT_OK;
}
