/* The HTTP endpoint (see http.h). Layout: access control, writers for
 * /metrics and /api/status (from one catalog per request), the weight
 * history sampler, the embedded status page, the libmicrohttpd glue. */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>

#include "auth.h"
#include "log.h"
#include "lookaside/v1/lookaside.pb-c.h"
#include "metrics.h"

#define HIST_N 60                       /* sparkline points per backend */
#define HIST_KEY (254 + LA_ADDR_STRLEN + 2)
#define JSON_MAX_BACKENDS 1000          /* per service on the page */

typedef struct hist_entry {
    char key[HIST_KEY];                 /* "service\naddress" */
    uint32_t w[HIST_N];                 /* ring of published weights */
    unsigned head, n;
} hist_entry;

struct http_server {
    struct MHD_Daemon *d;
    http_acquire_fn acquire;
    void *acquire_arg;
    const auth *au;
    bool loopback_only;
    int port;
    atomic_bool ready;
    size_t max_series;
    char *cert_pem, *key_pem, *ca_pem;
    /* Weight history: written by the sampler, read by request handlers. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    hist_entry *hist;                   /* sorted by key */
    size_t nhist;
    bool stop, sampler_started;
    pthread_t sampler;
    unsigned history_ms;
};

/* ---------------------------------------------------------------- names */

static const char *backend_state_name(int s)
{
    switch (s) {
    case LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_SERVING: return "SERVING";
    case LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_DRAINING: return "DRAINING";
    case LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_RESTORED: return "RESTORED";
    default: return "UNSPECIFIED";
    }
}

static const char *source_name(int s)
{
    switch (s) {
    case LOOKASIDE__V1__BACKEND_SOURCE__BACKEND_SOURCE_REPORTED: return "REPORTED";
    case LOOKASIDE__V1__BACKEND_SOURCE__BACKEND_SOURCE_DNS: return "DNS";
    case LOOKASIDE__V1__BACKEND_SOURCE__BACKEND_SOURCE_BOTH: return "BOTH";
    default: return "UNSPECIFIED";
    }
}

static const char *list_state_name(int s)
{
    switch (s) {
    case LOOKASIDE__V1__LIST_STATE__LIST_STATE_LIVE: return "LIVE";
    case LOOKASIDE__V1__LIST_STATE__LIST_STATE_UNKNOWN_SERVICE: return "UNKNOWN_SERVICE";
    case LOOKASIDE__V1__LIST_STATE__LIST_STATE_RESTORED: return "RESTORED";
    default: return "UNSPECIFIED";
    }
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Finite or 0: neither format can carry NaN/Inf usefully. */
static double fin(double v) { return isfinite(v) ? v : 0; }

/* ------------------------------------------------------------ /metrics */

/* Label values come from registrations (hostile input, even if validated):
 * escape as the text format says. */
static void label(FILE *f, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            fprintf(f, "\\%c", *v);
        else if (*v == '\n')
            fputs("\\n", f);
        else
            fputc(*v, f);
    }
}

typedef struct svc_family {
    const char *name, *type, *help;
    double (*get)(const snap_service *s);
} svc_family;

static double s_version(const snap_service *s) { return (double)s->version; }
static double s_backends(const snap_service *s) { return (double)s->n; }
static double s_serving(const snap_service *s) { return (double)s->serving; }
static double s_watchers(const snap_service *s) { return s->watchers; }
static double s_subs(const snap_service *s) { return s->subscribers; }
static double s_lb_started(const snap_service *s) { return (double)s->lb.started; }
static double s_lb_finished(const snap_service *s) { return (double)s->lb.finished; }
static double s_lb_fail(const snap_service *s) { return (double)s->lb.failed_to_send; }
static double s_lb_known(const snap_service *s) { return (double)s->lb.known_received; }
static double s_lb_dropped(const snap_service *s) { return (double)s->lb.dropped; }

static const svc_family svc_families[] = {
    {"lookaside_list_version", "gauge", "Version of the service's published server list.",
     s_version},
    {"lookaside_service_backends", "gauge", "Backends in the service's list.", s_backends},
    {"lookaside_service_serving_backends", "gauge", "Backends with a published weight > 0.",
     s_serving},
    {"lookaside_watchers", "gauge", "Balancer.Watch streams on the service.", s_watchers},
    {"lookaside_subscribers", "gauge", "All subscriptions (Watch, grpclb, health watches).",
     s_subs},
    {"lookaside_grpclb_client_calls_started_total", "counter",
     "Calls grpclb clients reported starting.", s_lb_started},
    {"lookaside_grpclb_client_calls_finished_total", "counter",
     "Calls grpclb clients reported finished.", s_lb_finished},
    {"lookaside_grpclb_client_calls_failed_to_send_total", "counter",
     "Calls grpclb clients reported as failed to send.", s_lb_fail},
    {"lookaside_grpclb_client_calls_finished_known_received_total", "counter",
     "Calls grpclb clients reported as received by the backend.", s_lb_known},
    {"lookaside_grpclb_client_calls_dropped_total", "counter",
     "Calls grpclb clients dropped on the balancer's instruction.", s_lb_dropped},
};

typedef struct be_family {
    const char *name, *help;
    bool needs_load;
    double (*get)(const snap_backend *b, int64_t now);
} be_family;

static double b_weight(const snap_backend *b, int64_t now) { (void)now; return b->weight; }
static double b_computed(const snap_backend *b, int64_t now)
{
    (void)now;
    return b->computed_weight;
}
static double b_override(const snap_backend *b, int64_t now)
{
    (void)now;
    return b->weight_override;
}
static double b_cpu(const snap_backend *b, int64_t now) { (void)now; return b->load.cpu; }
static double b_mem(const snap_backend *b, int64_t now) { (void)now; return b->load.mem; }
static double b_app(const snap_backend *b, int64_t now) { (void)now; return b->load.app; }
static double b_rps(const snap_backend *b, int64_t now) { (void)now; return b->load.rps; }
static double b_eps(const snap_backend *b, int64_t now) { (void)now; return b->load.eps; }
static double b_inflight(const snap_backend *b, int64_t now)
{
    (void)now;
    return b->load.in_flight;
}
static double b_raw(const snap_backend *b, int64_t now) { (void)now; return b->why.raw; }
static double b_slow(const snap_backend *b, int64_t now) { (void)now; return b->why.slow_start; }
static double b_usable(const snap_backend *b, int64_t now) { (void)now; return b->why.usable; }
static double b_age(const snap_backend *b, int64_t now)
{
    return (double)(now - b->last_load_mono_ms) / 1000.0;
}

static const be_family be_families[] = {
    {"lookaside_backend_weight", "Published weight (0: no new traffic).", false, b_weight},
    {"lookaside_backend_computed_weight", "The policy's latest weight (may be unpublished).",
     false, b_computed},
    {"lookaside_backend_weight_override", "Operator override (0: none).", false, b_override},
    {"lookaside_backend_weight_raw", "rps / (utilization + eps/rps x penalty) before the band.",
     false, b_raw},
    {"lookaside_backend_slow_start_factor", "Slow-start multiplier applied (1: none).", false,
     b_slow},
    {"lookaside_backend_report_usable", "1 when the latest report fed the formula.", false,
     b_usable},
    {"lookaside_backend_cpu_utilization", "Reported CPU utilization (0..1 of its limit).", true,
     b_cpu},
    {"lookaside_backend_memory_utilization", "Reported memory utilization.", true, b_mem},
    {"lookaside_backend_application_utilization", "Reported application utilization.", true,
     b_app},
    {"lookaside_backend_rps", "Reported requests per second.", true, b_rps},
    {"lookaside_backend_eps", "Reported errors per second.", true, b_eps},
    {"lookaside_backend_in_flight", "Reported requests in flight.", true, b_inflight},
    {"lookaside_backend_report_age_seconds", "Time since the latest load report.", true, b_age},
};

static void write_backend_labels(FILE *f, const snap_service *s, const snap_backend *b)
{
    fputs("{service=\"", f);
    label(f, s->name);
    fputs("\",address=\"", f);
    label(f, b->address);
    fputs("\"}", f);
}

static void write_metrics(http_server *h, FILE *f)
{
    metrics_write_counters(f);
    metrics_write_process(f);
    snap_catalog *c = h->acquire(h->acquire_arg);
    size_t nsvc = c ? c->n : 0;
    fprintf(f, "# HELP lookaside_build_info The server's version.\n"
               "# TYPE lookaside_build_info gauge\nlookaside_build_info{version=\"%s\"} 1\n"
               "# HELP lookaside_up 1 while the server runs.\n"
               "# TYPE lookaside_up gauge\nlookaside_up 1\n"
               "# HELP lookaside_ready 1 when /readyz answers 200.\n"
               "# TYPE lookaside_ready gauge\nlookaside_ready %d\n"
               "# HELP lookaside_services Services known.\n"
               "# TYPE lookaside_services gauge\nlookaside_services %zu\n",
            LOOKASIDE_VERSION, atomic_load(&h->ready) ? 1 : 0, nsvc);
    uint64_t watchers = 0;
    for (size_t i = 0; i < nsvc; i++)
        watchers += c->s[i]->watchers;
    fprintf(f, "# HELP lookaside_watchers_all Balancer.Watch streams, all services.\n"
               "# TYPE lookaside_watchers_all gauge\nlookaside_watchers_all %llu\n",
            (unsigned long long)watchers);
    for (size_t k = 0; k < sizeof svc_families / sizeof svc_families[0]; k++) {
        const svc_family *fam = &svc_families[k];
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", fam->name, fam->help, fam->name, fam->type);
        for (size_t i = 0; i < nsvc; i++) {
            fprintf(f, "%s{service=\"", fam->name);
            label(f, c->s[i]->name);
            fprintf(f, "\"} %.10g\n", fin(fam->get(c->s[i])));
        }
    }
    fputs("# HELP lookaside_list_state 1 for the service's list state.\n"
          "# TYPE lookaside_list_state gauge\n", f);
    for (size_t i = 0; i < nsvc; i++) {
        fputs("lookaside_list_state{service=\"", f);
        label(f, c->s[i]->name);
        fprintf(f, "\",state=\"%s\"} 1\n", list_state_name(c->s[i]->list_state));
    }
    /* Per backend, capped. The cap counts backends, not series. */
    size_t total = 0;
    for (size_t i = 0; i < nsvc; i++)
        total += c->s[i]->n;
    int64_t now = mono_ms();
    for (size_t k = 0; k < sizeof be_families / sizeof be_families[0]; k++) {
        const be_family *fam = &be_families[k];
        fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", fam->name, fam->help, fam->name);
        size_t written = 0;
        for (size_t i = 0; i < nsvc && written < h->max_series; i++) {
            const snap_service *s = c->s[i];
            for (size_t j = 0; j < s->n && written < h->max_series; j++, written++) {
                const snap_backend *b = &s->b[j];
                if (fam->needs_load && (!b->has_load || b->last_load_mono_ms < 0))
                    continue;
                fputs(fam->name, f);
                write_backend_labels(f, s, b);
                fprintf(f, " %.10g\n", fin(fam->get(b, now)));
            }
        }
    }
    fputs("# HELP lookaside_backend_state 1 for the backend's published state and source.\n"
          "# TYPE lookaside_backend_state gauge\n", f);
    size_t written = 0;
    for (size_t i = 0; i < nsvc && written < h->max_series; i++) {
        const snap_service *s = c->s[i];
        for (size_t j = 0; j < s->n && written < h->max_series; j++, written++) {
            fputs("lookaside_backend_state{service=\"", f);
            label(f, s->name);
            fputs("\",address=\"", f);
            label(f, s->b[j].address);
            fprintf(f, "\",state=\"%s\",source=\"%s\"} 1\n", backend_state_name(s->b[j].state),
                    source_name(s->b[j].source));
        }
    }
    fprintf(f, "# HELP lookaside_metrics_backends_omitted Backends without per-backend series "
               "(over the cap).\n# TYPE lookaside_metrics_backends_omitted gauge\n"
               "lookaside_metrics_backends_omitted %zu\n",
            total > h->max_series ? total - h->max_series : 0);
    snap_catalog_release(c);
}

/* ---------------------------------------------------------------- JSON */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\u%04x", *p);
        else if (*p == '<')
            fputs("\\u003c", f);   /* never "</script>" in a page */
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static int hist_cmp(const void *a, const void *b)
{
    return strcmp(((const hist_entry *)a)->key, ((const hist_entry *)b)->key);
}

static void hist_key(char *key, const char *service, const char *address)
{
    snprintf(key, HIST_KEY, "%s\n%s", service, address);
}

/* Caller holds h->mu (or is the sampler, the only writer). */
static const hist_entry *hist_find(const http_server *h, const char *key)
{
    hist_entry probe;
    snprintf(probe.key, sizeof probe.key, "%s", key);
    return h->nhist ? bsearch(&probe, h->hist, h->nhist, sizeof *h->hist, hist_cmp) : NULL;
}

static void write_json_backend(http_server *h, FILE *f, const snap_service *s,
                               const snap_backend *b, int64_t now)
{
    fputs("{\"address\":", f);
    json_str(f, b->address);
    fputs(",\"zone\":", f);
    json_str(f, b->zone);
    fprintf(f, ",\"state\":\"%s\",\"source\":\"%s\",\"weight\":%u,\"computed_weight\":%u,"
               "\"override\":%u,\"draining\":%s,\"reported\":%s,\"in_dns\":%s",
            backend_state_name(b->state), source_name(b->source), b->weight, b->computed_weight,
            b->weight_override, b->draining ? "true" : "false", b->reported ? "true" : "false",
            b->in_dns ? "true" : "false");
    if (b->has_load && b->last_load_mono_ms >= 0)
        fprintf(f, ",\"load\":{\"cpu\":%.4g,\"mem\":%.4g,\"app\":%.4g,\"rps\":%.6g,\"eps\":%.6g,"
                   "\"in_flight\":%u,\"age_ms\":%lld}",
                fin(b->load.cpu), fin(b->load.mem), fin(b->load.app), fin(b->load.rps),
                fin(b->load.eps), b->load.in_flight, (long long)(now - b->last_load_mono_ms));
    fputs(",\"why\":", f);
    json_str(f, b->why.text);
    fputs(",\"history\":[", f);
    char key[HIST_KEY];
    hist_key(key, s->name, b->address);
    pthread_mutex_lock(&h->mu);
    const hist_entry *e = hist_find(h, key);
    for (unsigned i = 0; e && i < e->n; i++)
        fprintf(f, "%s%u", i ? "," : "", e->w[(e->head + HIST_N - e->n + i) % HIST_N]);
    pthread_mutex_unlock(&h->mu);
    fputs("]}", f);
}

static void write_status_json(http_server *h, FILE *f)
{
    snap_catalog *c = h->acquire(h->acquire_arg);
    int64_t now = mono_ms();
    fprintf(f, "{\"server\":\"lookaside-server %s\",\"ready\":%s,\"now_unix_ms\":%lld,"
               "\"catalog_seq\":%llu,\"history_ms\":%u,\"services\":[",
            LOOKASIDE_VERSION, atomic_load(&h->ready) ? "true" : "false",
            (long long)wall_ms(), c ? (unsigned long long)c->seq : 0ULL, h->history_ms);
    for (size_t i = 0; c && i < c->n; i++) {
        const snap_service *s = c->s[i];
        fputs(i ? ",{\"name\":" : "{\"name\":", f);
        json_str(f, s->name);
        fprintf(f, ",\"version\":%llu,\"list_state\":\"%s\",\"policy\":",
                (unsigned long long)s->version, list_state_name(s->list_state));
        json_str(f, s->policy ? s->policy : "");
        size_t shown = s->n < JSON_MAX_BACKENDS ? s->n : JSON_MAX_BACKENDS;
        fprintf(f, ",\"backends_total\":%zu,\"serving\":%zu,\"watchers\":%u,"
                   "\"published_unix_ms\":%lld,\"backends\":[",
                s->n, s->serving, s->watchers, (long long)s->published_unix_ms);
        for (size_t j = 0; j < shown; j++) {
            if (j)
                fputc(',', f);
            write_json_backend(h, f, s, &s->b[j], now);
        }
        fputs("]}", f);
    }
    fputs("]}\n", f);
    snap_catalog_release(c);
}

/* ------------------------------------------------------------- history */

/* Once per history_ms: every backend's published weight appended to its
 * ring. The table is rebuilt from the catalog each time (backends that left
 * drop out; bounded by max_series), then swapped in under the mutex. */
static void sample_once(http_server *h)
{
    snap_catalog *c = h->acquire(h->acquire_arg);
    if (c == NULL)
        return;
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++)
        n += c->s[i]->n;
    if (n > h->max_series)
        n = h->max_series;
    hist_entry *nh = n ? calloc(n, sizeof *nh) : NULL;
    if (n && nh == NULL) {
        snap_catalog_release(c);
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < c->n && k < n; i++) {
        const snap_service *s = c->s[i];
        for (size_t j = 0; j < s->n && k < n; j++, k++) {
            hist_entry *e = &nh[k];
            hist_key(e->key, s->name, s->b[j].address);
            const hist_entry *old = hist_find(h, e->key);
            if (old)
                *e = *old;
            e->w[e->head] = s->b[j].weight;
            e->head = (e->head + 1) % HIST_N;
            if (e->n < HIST_N)
                e->n++;
        }
    }
    snap_catalog_release(c);
    if (k > 1)
        qsort(nh, k, sizeof *nh, hist_cmp);
    pthread_mutex_lock(&h->mu);
    hist_entry *old = h->hist;
    h->hist = nh;
    h->nhist = k;
    pthread_mutex_unlock(&h->mu);
    free(old);
}

static void *sampler_main(void *arg)
{
    http_server *h = arg;
    pthread_mutex_lock(&h->mu);
    while (!h->stop) {
        pthread_mutex_unlock(&h->mu);
        sample_once(h);
        pthread_mutex_lock(&h->mu);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += h->history_ms / 1000;
        ts.tv_nsec += (long)(h->history_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (!h->stop && pthread_cond_timedwait(&h->cv, &h->mu, &ts) != ETIMEDOUT) {
        }
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

/* ---------------------------------------------------------------- page */

#include "http_page.inc"

/* ------------------------------------------------------------- access */

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa == NULL)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return sa->sa_family == AF_UNIX;
}

static void peer_host(const struct sockaddr *sa, char *out, size_t n)
{
    out[0] = '\0';
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)n);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)n);
}

static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    http_server *h = cls;
    (void)addrlen;
    if (!h->loopback_only || is_loopback(addr))
        return MHD_YES;
    char host[64];
    peer_host(addr, host, sizeof host);
    METRIC_INC(http_refused);
    log_warn("http", "refused %s: not loopback and no TLS (protected mode; see --tls-cert or "
                     "--insecure)", host);
    return MHD_NO;
}

/* The verified client certificate's identity, as auth.c names a gRPC
 * peer's: the first URI SAN (e.g. spiffe://...), else the first DNS SAN,
 * else the CN. Leaves id empty when there is no certificate or it does not
 * verify against the client CA. */
static void client_cert_identity(struct MHD_Connection *conn, char *id, size_t n)
{
    id[0] = '\0';
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (ci == NULL || ci->tls_session == NULL)
        return;
    gnutls_session_t tls = (gnutls_session_t)ci->tls_session;
    unsigned status = 0;
    unsigned int ncerts = 0;
    const gnutls_datum_t *certs = gnutls_certificate_get_peers(tls, &ncerts);
    if (certs == NULL || ncerts == 0 ||
        gnutls_certificate_verify_peers2(tls, &status) != GNUTLS_E_SUCCESS || status != 0)
        return;
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) != GNUTLS_E_SUCCESS)
        return;
    if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) == GNUTLS_E_SUCCESS) {
        char dns[AUTH_ID_MAX] = "";
        for (unsigned i = 0; i < 64 && id[0] == '\0'; i++) {
            char buf[AUTH_ID_MAX];
            size_t len = sizeof buf - 1;
            int t = gnutls_x509_crt_get_subject_alt_name(crt, i, buf, &len, NULL);
            if (t == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
                break;
            if (t < 0 || len >= sizeof buf || memchr(buf, '\0', len) != NULL)
                continue;   /* too long, or a NUL inside: not an identity */
            buf[len] = '\0';
            if (t == GNUTLS_SAN_URI)
                snprintf(id, n, "%s", buf);
            else if (t == GNUTLS_SAN_DNSNAME && dns[0] == '\0')
                snprintf(dns, sizeof dns, "%s", buf);
        }
        if (id[0] == '\0' && dns[0] != '\0')
            snprintf(id, n, "%s", dns);
        if (id[0] == '\0') {
            char cn[AUTH_ID_MAX];
            size_t len = sizeof cn;
            if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &len) ==
                    GNUTLS_E_SUCCESS &&
                len < sizeof cn)
                snprintf(id, n, "%s", cn);
        }
    }
    gnutls_x509_crt_deinit(crt);
}

/* LOOKASIDE_OK, EUNAUTH or EPERM for this request. */
static lookaside_status authorize(http_server *h, struct MHD_Connection *conn, bool public_path)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    if (h->au == NULL)
        return is_loopback(sa) ? LOOKASIDE_OK : LOOKASIDE_EUNAUTH;
    auth_peer p;
    memset(&p, 0, sizeof p);
    p.loopback = is_loopback(sa);
    peer_host(sa, p.host, sizeof p.host);
    if (h->ca_pem)
        client_cert_identity(conn, p.cert_id, sizeof p.cert_id);
    const char *az = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (az && strncasecmp(az, "Bearer ", 7) == 0) {
        auth_peer_add_token(&p, az + 7);
    } else if (az && strncasecmp(az, "Basic ", 6) == 0) {
        /* Browsers cannot send a bearer token, but prompt for Basic
         * credentials: the password is the token, the user name is not
         * used (the token's label in the policy says who it is). */
        char *pass = NULL;
        char *user = MHD_basic_auth_get_username_password(conn, &pass);
        if (pass)
            auth_peer_add_token(&p, pass);
        MHD_free(user);
        MHD_free(pass);
    }
    /* watch:* (or admin): the page and the metrics show every service. */
    return auth_check(h->au, &p, public_path ? AUTH_PERM_PUBLIC : AUTH_PERM_WATCH, "*");
}

/* ------------------------------------------------------------ responses */

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *ctype,
                             char *body, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (strncmp(ctype, "text/html", 9) == 0)
        MHD_add_response_header(r, "Content-Security-Policy",
                                "default-src 'none'; style-src 'unsafe-inline'; "
                                "script-src 'unsafe-inline'; connect-src 'self'; "
                                "img-src data:; frame-ancestors 'none'");
    if (status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(r, "WWW-Authenticate",
                                "Bearer realm=\"lookaside\", Basic realm=\"lookaside\"");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, "Allow", "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
    char *b = strdup(text);
    return b ? reply(conn, status, "text/plain; charset=utf-8", b, strlen(b)) : MHD_NO;
}

typedef enum route { R_METRICS, R_HEALTHZ, R_READYZ, R_PAGE, R_STATUS, R_NONE } route;

static route find_route(const char *url)
{
    if (strcmp(url, "/metrics") == 0)
        return R_METRICS;
    if (strcmp(url, "/healthz") == 0)
        return R_HEALTHZ;
    if (strcmp(url, "/readyz") == 0)
        return R_READYZ;
    if (strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0)
        return R_PAGE;
    if (strcmp(url, "/api/status") == 0)
        return R_STATUS;
    return R_NONE;
}

static enum MHD_Result readyz(http_server *h, struct MHD_Connection *conn)
{
    if (!atomic_load(&h->ready))
        return reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready: starting or stopping\n");
    const char *strict = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "confirmed");
    if (strict && strcmp(strict, "0") != 0) {
        snap_catalog *c = h->acquire(h->acquire_arg);
        size_t restored = 0;
        for (size_t i = 0; c && i < c->n; i++)
            restored += c->s[i]->list_state == LOOKASIDE__V1__LIST_STATE__LIST_STATE_RESTORED;
        snap_catalog_release(c);
        if (restored) {
            char msg[128];
            snprintf(msg, sizeof msg,
                     "not ready: %zu service(s) restored, not yet confirmed by reports\n",
                     restored);
            return reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, msg);
        }
    }
    return reply_text(conn, MHD_HTTP_OK, "ready\n");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    http_server *h = cls;
    (void)version;
    (void)upload_data;
    (void)con_cls;
    METRIC_INC(http_requests);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        *upload_data_size = 0;
        log_warn("http", "%.16s %.200s refused: only GET and HEAD", method, url);
        return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    }
    route rt = find_route(url);
    lookaside_status st = authorize(h, conn, rt == R_HEALTHZ || rt == R_READYZ || rt == R_NONE);
    if (st != LOOKASIDE_OK) {
        METRIC_INC(http_refused);
        log_warn("http", "%s %s refused: %s", method, url,
                 st == LOOKASIDE_EUNAUTH ? "no credential (Authorization: Bearer TOKEN)"
                                         : "needs watch:* or admin");
        return reply_text(conn, st == LOOKASIDE_EUNAUTH ? MHD_HTTP_UNAUTHORIZED : MHD_HTTP_FORBIDDEN,
                          st == LOOKASIDE_EUNAUTH ? "unauthenticated\n" : "permission denied\n");
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f;
    switch (rt) {
    case R_HEALTHZ: return reply_text(conn, MHD_HTTP_OK, "ok\n");
    case R_READYZ: return readyz(h, conn);
    case R_PAGE: {
        char *b = strdup(http_status_page);
        return b ? reply(conn, MHD_HTTP_OK, "text/html; charset=utf-8", b, strlen(b)) : MHD_NO;
    }
    case R_METRICS:
    case R_STATUS:
        f = open_memstream(&buf, &len);
        if (f == NULL)
            return MHD_NO;
        if (rt == R_METRICS)
            write_metrics(h, f);
        else
            write_status_json(h, f);
        if (fclose(f) != 0) {
            free(buf);
            return MHD_NO;
        }
        return reply(conn, MHD_HTTP_OK,
                     rt == R_METRICS ? "text/plain; version=0.0.4; charset=utf-8"
                                     : "application/json",
                     buf, len);
    case R_NONE: break;
    }
    log_info("http", "GET %.200s: not found", url);
    return reply_text(conn, MHD_HTTP_NOT_FOUND,
                      "not found (/, /metrics, /healthz, /readyz, /api/status)\n");
}

/* ------------------------------------------------------------ lifecycle */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            if (cap > (1u << 20)) {     /* a PEM file is never this large */
                free(buf);
                fclose(f);
                return NULL;
            }
            char *nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, 4096, f);
        len += n;
        if (n < 4096)
            break;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

/* "HOST:PORT" / "[V6]:PORT" -> sockaddr. */
static bool parse_listen(const char *listen, struct sockaddr_storage *ss, char *host,
                         size_t hostlen, int *port)
{
    const char *colon = strrchr(listen, ':');
    if (colon == NULL || colon == listen || colon[1] == '\0')
        return false;
    const char *hs = listen, *he = colon;
    if (*hs == '[') {
        if (he[-1] != ']')
            return false;
        hs++;
        he--;
    }
    if ((size_t)(he - hs) >= hostlen)
        return false;
    memcpy(host, hs, (size_t)(he - hs));
    host[he - hs] = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end != '\0' || p < 0 || p > 65535)
        return false;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || res == NULL)
        return false;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    *port = (int)p;
    return true;
}

lookaside_status http_server_create(const http_config *cfg, http_server **out, char *err,
                                    size_t errlen)
{
    *out = NULL;
    struct sockaddr_storage ss;
    char host[256];
    int port;
    if (cfg->listen == NULL || cfg->acquire == NULL ||
        !parse_listen(cfg->listen, &ss, host, sizeof host, &port)) {
        snprintf(err, errlen, "--http-listen %s: expected HOST:PORT with a resolvable host",
                 cfg->listen ? cfg->listen : "(null)");
        return LOOKASIDE_EINVAL;
    }
    if ((cfg->tls_cert_file != NULL) != (cfg->tls_key_file != NULL)) {
        snprintf(err, errlen, "HTTP TLS needs both a certificate and a key");
        return LOOKASIDE_EINVAL;
    }
    http_server *h = calloc(1, sizeof *h);
    if (h == NULL)
        return LOOKASIDE_ENOMEM;
    h->acquire = cfg->acquire;
    h->acquire_arg = cfg->acquire_arg;
    h->au = cfg->auth;
    h->max_series = cfg->max_backend_series ? cfg->max_backend_series : 2000;
    h->history_ms = cfg->history_ms ? cfg->history_ms : 1000;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    bool tls = cfg->tls_cert_file != NULL;
    h->loopback_only = !tls && (h->au == NULL || auth_get_mode(h->au) == AUTH_MODE_PROTECTED);
    if (tls) {
        h->cert_pem = slurp(cfg->tls_cert_file);
        h->key_pem = slurp(cfg->tls_key_file);
        if (h->cert_pem == NULL || h->key_pem == NULL) {
            snprintf(err, errlen, "cannot read %s or %s", cfg->tls_cert_file, cfg->tls_key_file);
            http_server_destroy(h);
            return LOOKASIDE_EINVAL;
        }
        if (cfg->tls_client_ca_file && (h->ca_pem = slurp(cfg->tls_client_ca_file)) == NULL) {
            snprintf(err, errlen, "cannot read %s", cfg->tls_client_ca_file);
            http_server_destroy(h);
            return LOOKASIDE_EINVAL;
        }
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            snprintf(err, errlen, "this libmicrohttpd has no TLS support");
            http_server_destroy(h);
            return LOOKASIDE_EINVAL;
        }
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG |
                     (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0) | (tls ? MHD_USE_TLS : 0);
    /* Options: the address; bounded connections (a scrape and a few pages
     * need little; a flood of idle sockets must not exhaust fds); TLS. */
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_SOCK_ADDR, 0, &ss},
        {MHD_OPTION_CONNECTION_LIMIT, 64, NULL},
        {MHD_OPTION_PER_IP_CONNECTION_LIMIT, 16, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, 15, NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, 64 * 1024, NULL},
        {tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, h->cert_pem},
        {tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, h->key_pem},
        {h->ca_pem ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END, 0, h->ca_pem},
        {MHD_OPTION_END, 0, NULL}};
    h->d = MHD_start_daemon(flags, (uint16_t)port, on_accept, h, on_request, h,
                            MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (h->d == NULL) {
        snprintf(err, errlen, "cannot listen on %s", cfg->listen);
        http_server_destroy(h);
        return LOOKASIDE_EIO;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : port;
    if (pthread_create(&h->sampler, NULL, sampler_main, h) != 0) {
        snprintf(err, errlen, "cannot start the history thread");
        http_server_destroy(h);
        return LOOKASIDE_ENOMEM;
    }
    h->sampler_started = true;
    bool v6 = ss.ss_family == AF_INET6;
    log_info("http", "http listening on %s%s%s:%d (%s://%s%s%s:%d/)%s", v6 ? "[" : "", host,
             v6 ? "]" : "", h->port, tls ? "https" : "http", v6 ? "[" : "", host, v6 ? "]" : "",
             h->port, h->loopback_only ? " loopback peers only" : "");
    *out = h;
    return LOOKASIDE_OK;
}

int http_server_port(const http_server *h) { return h->port; }

void http_set_ready(http_server *h, bool ready)
{
    if (h)
        atomic_store(&h->ready, ready);
}

void http_server_destroy(http_server *h)
{
    if (h == NULL)
        return;
    if (h->d)
        MHD_stop_daemon(h->d);
    if (h->sampler_started) {
        pthread_mutex_lock(&h->mu);
        h->stop = true;
        pthread_cond_signal(&h->cv);
        pthread_mutex_unlock(&h->mu);
        pthread_join(h->sampler, NULL);
    }
    free(h->hist);
    free(h->cert_pem);
    free(h->key_pem);
    free(h->ca_pem);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
}
