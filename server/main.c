/* lookaside-server: flags, signals, wiring. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc.h>
#include <systemd/sd-daemon.h>

#include "auth.h"
#include "discovery.h"
#include "envflags.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "util.h"
#include "registry.h"
#include "replica.h"
#include "rpc.h"
#include "services.h"
#include "storage.h"
#include "tls.h"

#define MAX_DISCOVER 64
#define MAX_METHODS 16

typedef struct flags {
    const char *listen;
    const char *db;
    const char *discover[MAX_DISCOVER];
    int n_discover;
    int64_t dns_refresh_ms;
    const char *token_file;
    const char *http_listen;      /* NULL: no HTTP endpoint */
    size_t http_max_backends;
    const char *policy_file, *tls_cert, *tls_key, *tls_ca;
    bool insecure;
    const char *policy;
    size_t max_streams_per_peer;
    size_t max_calls_per_peer, max_waiting_per_peer;
    int64_t request_timeout_ms;
    size_t max_message_bytes;
    size_t max_report_bytes;
    uint32_t grpclb_stats_ms;
    size_t grpclb_max_entries;
    registry_config rc;
    replica_config etcd;          /* etcd mode when etcd.endpoints is set */
} flags;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: lookaside-server [options]\n"
            "  --listen HOST:PORT          address to serve on (default 127.0.0.1:7411; port 0 = any)\n"
            "  --db PATH                   sqlite database (default ./lookaside.db)\n"
            "  --discover SVC=dns://[DNS-SERVER:PORT]/NAME:PORT\n"
            "                              also find SVC's backends in DNS (repeatable)\n"
            "  --dns-refresh-ms N          DNS poll period (default 5000)\n"
            "  --report-interval-ms N      report interval asked of backends (default 1000)\n"
            "  --evict-intervals N         missed intervals before eviction (default 3)\n"
            "  --restore-grace-ms N        how long restored backends wait for a report\n"
            "                              after a restart (default 10000)\n"
            "  --heartbeat-ms N            quiet time before a Watch heartbeat (default\n"
            "                              valid_for/3 = 10000)\n"
            "  --service-retention-ms N    empty, unwatched services are forgotten after\n"
            "                              this (default 86400000; sooner when a slot is needed)\n"
            "  --push-delay-ms N           coalescing window before a push (default 5)\n"
            "  --weight-period-ms N        weight recompute period (default 1000)\n"
            "  --policy NAME               weight policy: a58 (default) or equal\n"
            "  --max-backends N            backends per service (default 10000)\n"
            "  --max-services N            services (default 10000)\n"
            "  --max-streams-per-peer N    live streams per client host (default 20000)\n"
            "  --max-calls-per-peer N      live calls of every kind per client host\n"
            "                              (default 25000)\n"
            "  --max-waiting-per-peer N    calls per client host still waiting for their\n"
            "                              first message (default 1000)\n"
            "  --request-timeout-ms N      a call's first message must arrive within this\n"
            "                              (default 10000; 0 = no limit)\n"
            "  --max-message-bytes N       largest request accepted (default 65536)\n"
            "  --max-report-bytes N        largest LoadReport accepted (default 4096)\n"
            "  --grpclb-stats-ms N         grpclb client stats interval (default 1000)\n"
            "  --grpclb-max-entries N      grpclb server list length cap (default 1000)\n"
            "  --report-token-file PATH    per-service report credentials (SERVICE CRED lines)\n"
            "  --tls-cert PATH --tls-key PATH\n"
            "                              serve TLS with this PEM certificate chain and key\n"
            "  --tls-client-ca PATH        require client certificates signed by this CA (mTLS)\n"
            "  --policy-file PATH          who may watch, report, admin (README \"Security\");\n"
            "                              required with TLS; re-read with the certificates on SIGHUP\n"
            "  --insecure                  plaintext to any peer (default without TLS: loopback only)\n"
            "  --log-level LEVEL           debug, info, warn, error (default info)\n"
            "  --log-format FORMAT         text (default) or json (one object per line)\n"
            "  --log-rate N                log records per call site per second; the rest\n"
            "                              are counted in one summary (default 20; 0 = all)\n"
            "  --http-listen HOST:PORT     metrics, health and the status page (off unless\n"
            "                              given; loopback peers only without TLS)\n"
            "  --http-max-backends N       per-backend metric series cap (default 2000)\n"
            "  --etcd HOST:PORT[,...]      etcd mode: share backends with other replicas\n"
            "                              through etcd v3 (--db is not used)\n"
            "  --etcd-prefix PREFIX        key prefix in etcd (default /lookaside/)\n"
            "  --etcd-lease-ttl S          lease TTL of this replica's keys (default 10)\n"
            "  --etcd-ca PATH              TLS to etcd with this CA\n"
            "  --etcd-cert PATH --etcd-key PATH\n"
            "                              client certificate for etcd (with --etcd-ca)\n"
            "  --help, --version\n"
            "Every flag can also be set as LOOKASIDE_<FLAG> (--dns-refresh-ms =>\n"
            "LOOKASIDE_DNS_REFRESH_MS; repeated --discover: values separated by spaces);\n"
            "a flag on the command line wins over its variable.\n");
}

static int parse_flags(int argc, char **argv, flags *f)
{
    enum { F_LISTEN = 1, F_DB, F_DISCOVER, F_DNS_REFRESH, F_REPORT_INTERVAL, F_EVICT, F_PUSH,
           F_WEIGHT, F_POLICY, F_MAXB, F_MAXS, F_MAXPEER, F_MAXMSG, F_MAXREP, F_LBSTATS, F_LBMAX,
           F_TOKENS, F_LOG, F_HELP, F_VERSION, F_TLS_CERT, F_TLS_KEY, F_TLS_CA, F_POLICY_FILE,
           F_INSECURE, F_RESTORE_GRACE, F_HEARTBEAT, F_RETENTION,
           F_MAXCALLS, F_MAXWAIT, F_REQTIMEOUT, F_LOGFMT, F_LOGRATE, F_HTTP, F_HTTP_MAX,
           F_ETCD, F_ETCD_PREFIX, F_ETCD_TTL, F_ETCD_CA, F_ETCD_CERT, F_ETCD_KEY };
    static const struct option opts[] = {
        {"listen", required_argument, 0, F_LISTEN},
        {"db", required_argument, 0, F_DB},
        {"discover", required_argument, 0, F_DISCOVER},
        {"dns-refresh-ms", required_argument, 0, F_DNS_REFRESH},
        {"report-interval-ms", required_argument, 0, F_REPORT_INTERVAL},
        {"evict-intervals", required_argument, 0, F_EVICT},
        {"push-delay-ms", required_argument, 0, F_PUSH},
        {"weight-period-ms", required_argument, 0, F_WEIGHT},
        {"policy", required_argument, 0, F_POLICY},
        {"max-backends", required_argument, 0, F_MAXB},
        {"max-services", required_argument, 0, F_MAXS},
        {"max-streams-per-peer", required_argument, 0, F_MAXPEER},
        {"max-message-bytes", required_argument, 0, F_MAXMSG},
        {"max-report-bytes", required_argument, 0, F_MAXREP},
        {"grpclb-stats-ms", required_argument, 0, F_LBSTATS},
        {"grpclb-max-entries", required_argument, 0, F_LBMAX},
        {"report-token-file", required_argument, 0, F_TOKENS},
        {"log-level", required_argument, 0, F_LOG},
        {"help", no_argument, 0, F_HELP},
        {"version", no_argument, 0, F_VERSION},
        {"tls-cert", required_argument, 0, F_TLS_CERT},
        {"tls-key", required_argument, 0, F_TLS_KEY},
        {"tls-client-ca", required_argument, 0, F_TLS_CA},
        {"policy-file", required_argument, 0, F_POLICY_FILE},
        {"insecure", no_argument, 0, F_INSECURE},
        {"restore-grace-ms", required_argument, 0, F_RESTORE_GRACE},
        {"heartbeat-ms", required_argument, 0, F_HEARTBEAT},
        {"service-retention-ms", required_argument, 0, F_RETENTION},
        {"max-calls-per-peer", required_argument, 0, F_MAXCALLS},
        {"max-waiting-per-peer", required_argument, 0, F_MAXWAIT},
        {"request-timeout-ms", required_argument, 0, F_REQTIMEOUT},
        {"log-format", required_argument, 0, F_LOGFMT},
        {"log-rate", required_argument, 0, F_LOGRATE},
        {"http-listen", required_argument, 0, F_HTTP},
        {"http-max-backends", required_argument, 0, F_HTTP_MAX},
        {"etcd", required_argument, 0, F_ETCD},
        {"etcd-prefix", required_argument, 0, F_ETCD_PREFIX},
        {"etcd-lease-ttl", required_argument, 0, F_ETCD_TTL},
        {"etcd-ca", required_argument, 0, F_ETCD_CA},
        {"etcd-cert", required_argument, 0, F_ETCD_CERT},
        {"etcd-key", required_argument, 0, F_ETCD_KEY},
        {0, 0, 0, 0}};
    /* LOOKASIDE_<FLAG> variables supply flags the command line lacks. */
    static const char *const repeatable[] = {"discover", NULL};
    argc = envflags_merge(opts, "LOOKASIDE_", repeatable, argc, argv, &argv);
    if (argc < 0)
        return 1;
    int c;
    long long v;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        bool ok = true;
        switch (c) {
        case F_LISTEN: f->listen = optarg; break;
        case F_DB: f->db = optarg; break;
        case F_DISCOVER:
            if (f->n_discover == MAX_DISCOVER) {
                fprintf(stderr, "lookaside-server: at most %d --discover flags\n", MAX_DISCOVER);
                return 2;
            }
            f->discover[f->n_discover++] = optarg;
            break;
        case F_DNS_REFRESH:
            ok = util_parse_ll(optarg, 100, 86400000, &v);
            f->dns_refresh_ms = v;
            break;
        case F_REPORT_INTERVAL:
            ok = util_parse_ll(optarg, 50, 600000, &v);
            f->rc.report_interval_ms = (uint32_t)v;
            break;
        case F_EVICT:
            ok = util_parse_ll(optarg, 1, 1000, &v);
            f->rc.evict_intervals = (uint32_t)v;
            break;
        case F_PUSH:
            ok = util_parse_ll(optarg, 0, 10000, &v);
            f->rc.push_delay_ms = v;
            break;
        case F_WEIGHT:
            ok = util_parse_ll(optarg, 10, 600000, &v);
            f->rc.weight_period_ms = v;
            break;
        case F_POLICY: f->policy = optarg; break;
        case F_MAXB:
            ok = util_parse_ll(optarg, 1, 1000000, &v);
            f->rc.max_backends = (uint32_t)v;
            break;
        case F_MAXS:
            ok = util_parse_ll(optarg, 1, 1000000, &v);
            f->rc.max_services = (uint32_t)v;
            break;
        case F_MAXPEER:
            ok = util_parse_ll(optarg, 1, 10000000, &v);
            f->max_streams_per_peer = (size_t)v;
            break;
        case F_MAXMSG:
            ok = util_parse_ll(optarg, 1024, 64 << 20, &v);
            f->max_message_bytes = (size_t)v;
            break;
        case F_MAXREP:
            ok = util_parse_ll(optarg, 64, 1 << 20, &v);
            f->max_report_bytes = (size_t)v;
            break;
        case F_LBSTATS:
            ok = util_parse_ll(optarg, 1000, 3600000, &v);
            f->grpclb_stats_ms = (uint32_t)v;
            break;
        case F_LBMAX:
            /* 10000 entries keep a list (IPv6, 16-byte tokens) far under
             * the 4 MB clients accept by default. */
            ok = util_parse_ll(optarg, 1, 10000, &v);
            f->grpclb_max_entries = (size_t)v;
            break;
        case F_TOKENS: f->token_file = optarg; break;
        case F_TLS_CERT: f->tls_cert = optarg; break;
        case F_TLS_KEY: f->tls_key = optarg; break;
        case F_TLS_CA: f->tls_ca = optarg; break;
        case F_POLICY_FILE: f->policy_file = optarg; break;
        case F_INSECURE: f->insecure = true; break;
        case F_RESTORE_GRACE:
            ok = util_parse_ll(optarg, 0, 86400000, &v);
            f->rc.restore_grace_ms = v;
            break;
        case F_HEARTBEAT:
            ok = util_parse_ll(optarg, 100, 3600000, &v);
            f->rc.heartbeat_ms = v;
            break;
        case F_RETENTION:
            ok = util_parse_ll(optarg, 0, 365LL * 86400000, &v);
            f->rc.service_retention_ms = v;
            break;
        case F_LOG: {
            int lvl = log_level_parse(optarg);
            if (lvl < 0)
                ok = false;
            else
                log_set_level((enum log_level)lvl);
            break;
        }
        case F_MAXCALLS:
            ok = util_parse_ll(optarg, 1, 10000000, &v);
            f->max_calls_per_peer = (size_t)v;
            break;
        case F_MAXWAIT:
            ok = util_parse_ll(optarg, 1, 10000000, &v);
            f->max_waiting_per_peer = (size_t)v;
            break;
        case F_REQTIMEOUT:
            ok = util_parse_ll(optarg, 0, 3600000, &v);
            f->request_timeout_ms = v;
            break;
        case F_LOGFMT: {
            int fmt = log_format_parse(optarg);
            if (fmt < 0)
                ok = false;
            else
                log_set_format((enum log_format)fmt);
            break;
        }
        case F_LOGRATE:
            ok = util_parse_ll(optarg, 0, 1000000, &v);
            log_set_rate_limit((unsigned)v);
            break;
        case F_HTTP: f->http_listen = optarg; break;
        case F_HTTP_MAX:
            ok = util_parse_ll(optarg, 0, 1000000, &v);
            f->http_max_backends = (size_t)v;
            break;
        case F_ETCD: f->etcd.endpoints = optarg; break;
        case F_ETCD_PREFIX: f->etcd.prefix = optarg; break;
        case F_ETCD_TTL:
            ok = util_parse_ll(optarg, 2, 3600, &v);
            f->etcd.lease_ttl_s = v;
            break;
        case F_ETCD_CA: f->etcd.ca_file = optarg; break;
        case F_ETCD_CERT: f->etcd.cert_file = optarg; break;
        case F_ETCD_KEY: f->etcd.key_file = optarg; break;
        case F_HELP: usage(stdout); return 0;
        case F_VERSION: printf("lookaside-server %s\n", LOOKASIDE_VERSION); return 0;
        default: usage(stderr); return 2;
        }
        if (!ok) {
            fprintf(stderr, "lookaside-server: bad value for --%s: %s\n", opts[c - 1].name, optarg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "lookaside-server: unexpected argument: %s\n", argv[optind]);
        return 2;
    }
    return -1;
}

static void on_signal(int sig)
{
    (void)sig;
    loop_stop_async();
}

static volatile sig_atomic_t g_hup;
static void on_hup(int sig)
{
    (void)sig;
    g_hup = 1;
}

typedef struct security {
    tls_server *tls;
    auth *au;
} security;

/* SIGHUP, noticed on the loop thread: re-read certificates and the policy.
 * A failed read keeps what was in use (logged). */
static void hup_poll(loop *l, void *arg)
{
    security *sec = arg;
    if (g_hup) {
        g_hup = 0;
        char err[300];
        if (sec->tls && tls_server_reload(sec->tls, err, sizeof err) != LOOKASIDE_OK)
            log_error("main", "SIGHUP: certificates not reloaded (%s); keeping the old ones", err);
        else if (sec->tls)
            log_info("main", "SIGHUP: certificates reloaded; new connections use them");
        if (auth_reload(sec->au, err, sizeof err) != LOOKASIDE_OK)
            log_error("main", "SIGHUP: policy not reloaded (%s); keeping the old one", err);
        else
            log_info("main", "SIGHUP: policy reloaded");
    }
    loop_timer_add(l, clock_mono_ms() + 200, hup_poll, arg);
}

/* TLS credentials and the authorizer from the security flags. Returns 0,
 * or 2 (usage) after printing why. */
static int security_setup(const flags *f, security *sec)
{
    char err[300] = "";
    if ((f->tls_cert != NULL) != (f->tls_key != NULL) || (f->tls_ca && !f->tls_cert)) {
        fprintf(stderr, "lookaside-server: --tls-cert and --tls-key go together; "
                        "--tls-client-ca needs both\n");
        return 2;
    }
    if (f->insecure && f->tls_cert) {
        fprintf(stderr, "lookaside-server: --insecure and --tls-cert exclude each other\n");
        return 2;
    }
    if (f->tls_cert &&
        tls_server_create(f->tls_cert, f->tls_key, f->tls_ca, &sec->tls, err, sizeof err) !=
            LOOKASIDE_OK) {
        fprintf(stderr, "lookaside-server: TLS: %s\n", err);
        return 2;
    }
    auth_mode mode = f->tls_cert ? AUTH_MODE_TLS
                                 : f->insecure ? AUTH_MODE_INSECURE : AUTH_MODE_PROTECTED;
    if (auth_create(mode, f->policy_file, f->token_file, &sec->au, err, sizeof err) !=
        LOOKASIDE_OK) {
        fprintf(stderr, "lookaside-server: %s\n", err);
        tls_server_destroy(sec->tls);
        sec->tls = NULL;
        return 2;
    }
    return 0;
}

static const char *security_name(const flags *f)
{
    if (f->tls_ca)
        return "mtls";
    return f->tls_cert ? "tls" : f->insecure ? "insecure" : "protected (loopback peers only)";
}

typedef struct dns_glue {
    registry *reg;
} dns_glue;

static void on_dns(void *arg, const char *service, lookaside_status st, const la_addr *addrs,
                   size_t n)
{
    dns_glue *g = arg;
    if (st != LOOKASIDE_OK) {
        METRIC_INC(dns_failures);
        log_warn("discovery", "%s: lookup failed (%s); keeping the last known set", service,
                 lookaside_status_str(st));
        return;
    }
    METRIC_INC(dns_refreshes);
    registry_dns_update(g->reg, service, addrs, n);
}

/* The HTTP thread's view of the registry: its snapshot catalog. */
static snap_catalog *http_catalog(void *arg) { return registry_catalog_acquire(arg); }

static int64_t dns_poll(loop *l, void *arg, int64_t now)
{
    (void)l;
    discovery *d = arg;
    discovery_process(d, now);
    return discovery_next_deadline_ms(d, clock_mono_ms());
}

int main(int argc, char **argv)
{
    flags f;
    memset(&f, 0, sizeof f);
    f.listen = "127.0.0.1:7411";
    f.db = "./lookaside.db";
    f.dns_refresh_ms = 5000;
    f.max_streams_per_peer = 20000;
    f.max_calls_per_peer = 25000;
    f.max_waiting_per_peer = 1000;
    f.request_timeout_ms = 10000;
    f.max_message_bytes = 65536;
    f.max_report_bytes = 4096;
    f.grpclb_stats_ms = 1000;
    f.grpclb_max_entries = 1000;
    registry_config_default(&f.rc);
    replica_config_default(&f.etcd);
    int rc = parse_flags(argc, argv, &f);
    if (rc >= 0)
        return rc;
    if (f.policy) {
        f.rc.policy = weights_policy_find(f.policy);
        if (f.rc.policy == NULL) {
            fprintf(stderr, "lookaside-server: unknown --policy %s\n", f.policy);
            return 2;
        }
    }
    /* Validate every --discover before touching anything. */
    char dsvc[MAX_DISCOVER][256], dtgt[MAX_DISCOVER][512];
    for (int i = 0; i < f.n_discover; i++) {
        char err[256];
        if (discovery_parse_spec(f.discover[i], dsvc[i], sizeof dsvc[i], dtgt[i], sizeof dtgt[i],
                                 err, sizeof err) != LOOKASIDE_OK) {
            fprintf(stderr, "lookaside-server: --discover %s: %s\n", f.discover[i], err);
            return 2;
        }
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int exit_code = 1;
    storage *st = NULL;
    loop *l = NULL;
    registry *reg = NULL;
    replica *rep = NULL;
    rpc_server *srv = NULL;
    http_server *http = NULL;
    discovery *disc = NULL;
    security sec;
    memset(&sec, 0, sizeof sec);
    server_ctx ctx;
    rpc_method methods[MAX_METHODS];
    dns_glue glue;
    memset(&ctx, 0, sizeof ctx);

    rc = security_setup(&f, &sec);
    if (rc != 0)
        return rc;
    /* etcd mode: etcd is the shared state; the registry's write-behind
     * goes to a private in-memory database nobody restores from. */
    if (f.etcd.endpoints)
        f.db = ":memory:";
    lookaside_status s = storage_open(f.db, &st);
    if (s != LOOKASIDE_OK) {
        log_error("main", "cannot open database: %s", storage_open_error());
        auth_destroy(sec.au);
        tls_server_destroy(sec.tls);
        return 1;
    }
    log_capture_grpc();   /* gRPC's own lines in our format (json stays json) */
    grpc_init();
    if (loop_create(&l) != LOOKASIDE_OK)
        goto out;
    if (registry_create(l, st, &f.rc, &reg) != LOOKASIDE_OK)
        goto out;
    if (f.etcd.endpoints) {
        char err[300];
        if (replica_create(l, reg, &f.etcd, &rep, err, sizeof err) != LOOKASIDE_OK) {
            log_error("main", "etcd mode: %s", err);
            goto out;
        }
    }
    ctx.reg = reg;
    ctx.auth = sec.au;
    ctx.max_report_bytes = f.max_report_bytes;
    ctx.max_request_bytes = f.max_message_bytes;
    ctx.grpclb_stats_ms = f.grpclb_stats_ms;
    ctx.ack_gap_ms = 5;   /* a backlog of loads shares one ack (one write, one TLS record) */
    ctx.grpclb_max_entries = f.grpclb_max_entries;
    size_t nm = 0;
    nm += balancer_methods(&ctx, methods + nm);
    nm += report_methods(&ctx, methods + nm);
    nm += health_methods(&ctx, methods + nm);
    nm += admin_methods(&ctx, methods + nm);
    nm += grpclb_methods(&ctx, methods + nm);
    for (size_t i = 0; i < nm; i++)
        methods[i].perm = auth_method_perm(methods[i].path);
    rpc_options ro = {.max_message_bytes = f.max_message_bytes,
                      .accepts_per_method = 8,
                      .max_streams_per_peer = f.max_streams_per_peer,
                      .max_calls_per_peer = f.max_calls_per_peer,
                      .max_waiting_per_peer = f.max_waiting_per_peer,
                      .request_timeout_ms = f.request_timeout_ms,
                      .auth = sec.au};
    if (rpc_server_create(l, &ro, methods, nm, &srv) != LOOKASIDE_OK)
        goto out;
    int port = sec.tls ? rpc_server_bind_creds(srv, f.listen, tls_server_credentials(sec.tls))
                       : rpc_server_bind(srv, f.listen);
    if (port <= 0) {
        log_error("main", "cannot listen on %s", f.listen);
        goto out;
    }
    if (f.n_discover > 0) {
        if (discovery_create(&disc) != LOOKASIDE_OK)
            goto out;
        glue.reg = reg;
        for (int i = 0; i < f.n_discover; i++) {
            char err[256];
            if (discovery_add(disc, dsvc[i], dtgt[i], f.dns_refresh_ms, on_dns, &glue, err,
                              sizeof err) != LOOKASIDE_OK) {
                log_error("main", "--discover %s: %s", f.discover[i], err);
                goto out;
            }
        }
        loop_set_poll(l, dns_poll, disc);
    }
    if (rpc_server_start(srv) != LOOKASIDE_OK)
        goto out;
    {
        /* Tests read this exact line to find the port. */
        char host[256];
        const char *colon = strrchr(f.listen, ':');
        size_t hl = colon ? (size_t)(colon - f.listen) : strlen(f.listen);
        if (hl >= sizeof host)
            hl = sizeof host - 1;
        memcpy(host, f.listen, hl);
        host[hl] = '\0';
        log_info("main", "listening on %s:%d (db %s, sqlite %s, policy %s, security %s)", host,
                 port, f.db, storage_sqlite_version(), f.rc.policy->name, security_name(&f));
        if (!sec.tls && !f.insecure && strcmp(host, "127.0.0.1") != 0 &&
            strcmp(host, "[::1]") != 0 && strcmp(host, "localhost") != 0)
            log_warn("main", "protected mode: peers other than loopback are refused until "
                             "--tls-cert/--tls-key (or --insecure) is given");
    }
    hup_poll(l, &sec);
    /* Type=notify units: clients can connect from now on. No-op outside
     * systemd (NOTIFY_SOCKET unset). */
    if (f.http_listen) {
        char herr[300];
        http_config hc = {.listen = f.http_listen, .acquire = http_catalog, .acquire_arg = reg,
                          .auth = sec.au, .tls_cert_file = f.tls_cert, .tls_key_file = f.tls_key,
                          .tls_client_ca_file = f.tls_ca,
                          .max_backend_series = f.http_max_backends};
        if (http_server_create(&hc, &http, herr, sizeof herr) != LOOKASIDE_OK) {
            log_error("main", "HTTP endpoint: %s", herr);
            goto out;
        }
        http_set_ready(http, true);
    }
    sd_notify(0, "READY=1");
    loop_run(l);
    sd_notify(0, "STOPPING=1");
    http_set_ready(http, false);
    log_info("main", "shutting down");
    ctx.shutting_down = true;
    exit_code = 0;
out:
    if (disc) {
        loop_set_poll(l, NULL, NULL);
        discovery_destroy(disc);
    }
    registry_begin_shutdown(reg);
    if (srv) {
        rpc_server_shutdown(srv, 2000);
        rpc_server_destroy(srv);
    }
    replica_destroy(rep);
    /* Before the registry: the HTTP threads read its catalog. */
    http_server_destroy(http);
    registry_destroy(reg);
    loop_destroy(l);
    s = storage_flush(st);
    if (s != LOOKASIDE_OK) {
        log_error("main", "final flush failed: %s", storage_errmsg(st));
        exit_code = 1;
    }
    storage_close(st);
    grpc_shutdown();
    /* After grpc_shutdown: no handshake can ask the fetcher any more. */
    tls_server_destroy(sec.tls);
    auth_destroy(sec.au);
    log_info("main", "stopped");
    log_flush_suppressed();
    return exit_code;
}
