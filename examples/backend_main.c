/* lookaside-demo-backend: a gRPC backend with simulated capacity that
 * reports its real, measured load to a lookaside balancer.
 *
 * Capacity is `--slots` requests served at once, each taking
 * `--service-ms`; requests beyond that wait in FIFO order (backend_slots.h).
 * The load it reports (through liblookaside's reporter):
 *  - application_utilization: the measured fraction of slot-time that was
 *    busy over the report interval (0..1). With --util-includes-queue the
 *    mean number of waiting requests per slot is added, so an overloaded
 *    backend reports more than 1. The default leaves it out on purpose: with
 *    the balancer's rps / utilization formula, busy fraction alone makes the
 *    weight an unbiased estimate of capacity (completions per busy slot-second
 *    = slots / service time), whatever the traffic sent to it.
 *  - rps, eps, in_flight: measured by the library from the call hooks.
 *
 * SIGUSR1 / SIGUSR2: the service time becomes --slow-service-ms / goes back
 * to --service-ms for requests that get a slot from then on (a backend that
 * turns slow, for bench/run.sh's cold-start scenario).
 *
 * SIGTERM / SIGINT: the reporter sends a drain and waits (bounded) until the
 * balancer has it, the backend keeps serving for --drain-grace-ms so clients
 * see the new list, then the server stops (in-progress calls get up to
 * --grace-ms) and the process exits 0. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/grpc.h>

#include "backend_server.h"
#include "demo_tls.h"
#include "log.h"
#include "lookaside.h"
#include "util.h"

typedef struct flags {
    const char *listen, *lb, *service, *zone, *name, *credential;
    long long slots, service_ms, slow_service_ms, report_interval_ms, threads, max_age_ms;
    long long stop_timeout_ms, drain_grace_ms, grace_ms;
    bool util_queue;
    demo_tls tls;
} flags;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: lookaside-demo-backend --listen HOST:PORT [--lb HOST:PORT --service NAME]\n"
            "                              [options]\n"
            "A demo gRPC backend (lookaside.demo.v1.Echo/Echo; the reply names the backend)\n"
            "with simulated capacity, reporting its measured load to a lookaside balancer.\n"
            "\n"
            "  --listen HOST:PORT          address to serve on (port 0: ephemeral; the bound\n"
            "                              address is logged as \"listening on HOST:PORT\")\n"
            "  --lb HOST:PORT              the balancer to report to (any gRPC target); without\n"
            "                              it the backend serves but does not report (baselines)\n"
            "  --service NAME              service to register as (required with --lb)\n"
            "  --zone ZONE                 failure domain reported with the registration\n"
            "  --slots N                   requests served concurrently (default 8)\n"
            "  --service-ms MS             time each request holds a slot (default 10; 0 = reply\n"
            "                              at once, no simulated capacity)\n"
            "  --slow-service-ms MS        on SIGUSR1 the service time becomes MS (default 2x\n"
            "                              --service-ms; SIGUSR2: back to --service-ms): a\n"
            "                              backend that turns slow, for benchmarks\n"
            "  --name TEXT                 backend name in replies (default: the bound address)\n"
            "  --report-interval-ms MS     0 (default): measure utilisation over exactly each\n"
            "                              report interval the balancer asks for; > 0: measure\n"
            "                              every MS and hand the figure to the reporter\n"
            "  --util-includes-queue       add mean queued requests per slot to the utilisation\n"
            "  --credential TEXT           per-service credential for the balancer\n"
            "  --threads N                 completion-queue threads (default 2)\n"
            "  --max-connection-age-ms MS  gRPC MaxConnectionAge (0 = none; for DNS baselines)\n"
            "  --stop-timeout-ms MS        on SIGTERM, wait this long for the drain ack (3000)\n"
            "  --drain-grace-ms MS         then keep serving this long (default 300)\n"
            "  --grace-ms MS               then let in-progress calls finish this long (5000)\n"
            "  --log-level LEVEL           debug, info, warn, error (default info)\n"
            DEMO_TLS_USAGE
            "  --help, --version\n");
}

/* Returns -1 to go on, else the exit code. */
static int parse_flags(int argc, char **argv, flags *f)
{
    enum { F_LISTEN = 1, F_LB, F_SERVICE, F_ZONE, F_SLOTS, F_SVC_MS, F_SLOW_MS, F_NAME, F_REPORT,
           F_UQ,
           F_CRED, F_THREADS, F_AGE, F_STOP, F_DRAIN, F_GRACE, F_LOG, F_HELP, F_VERSION,
           F_TLS0, F_TLS_LAST = F_TLS0 + 4 };
    static const struct option opts[] = {
        {"listen", required_argument, 0, F_LISTEN},
        {"lb", required_argument, 0, F_LB},
        {"service", required_argument, 0, F_SERVICE},
        {"zone", required_argument, 0, F_ZONE},
        {"slots", required_argument, 0, F_SLOTS},
        {"service-ms", required_argument, 0, F_SVC_MS},
        {"slow-service-ms", required_argument, 0, F_SLOW_MS},
        {"name", required_argument, 0, F_NAME},
        {"report-interval-ms", required_argument, 0, F_REPORT},
        {"util-includes-queue", no_argument, 0, F_UQ},
        {"credential", required_argument, 0, F_CRED},
        {"threads", required_argument, 0, F_THREADS},
        {"max-connection-age-ms", required_argument, 0, F_AGE},
        {"stop-timeout-ms", required_argument, 0, F_STOP},
        {"drain-grace-ms", required_argument, 0, F_DRAIN},
        {"grace-ms", required_argument, 0, F_GRACE},
        {"log-level", required_argument, 0, F_LOG},
        {"help", no_argument, 0, F_HELP},
        {"version", no_argument, 0, F_VERSION},
        DEMO_TLS_OPTIONS(F_TLS0),
        {0, 0, 0, 0}};
    *f = (flags){.slots = 8, .service_ms = 10, .threads = 2, .stop_timeout_ms = 3000,
                 .drain_grace_ms = 300, .grace_ms = 5000};
    int c, lvl;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        bool ok = true;
        switch (c) {
        case F_LISTEN: f->listen = optarg; break;
        case F_LB: f->lb = optarg; break;
        case F_SERVICE: f->service = optarg; break;
        case F_ZONE: f->zone = optarg; break;
        case F_NAME: f->name = optarg; ok = strlen(optarg) > 0 && strlen(optarg) <= 128; break;
        case F_CRED: f->credential = optarg; break;
        case F_SLOTS: ok = util_parse_ll(optarg, 1, 100000, &f->slots); break;
        case F_SVC_MS: ok = util_parse_ll(optarg, 0, 600000, &f->service_ms); break;
        case F_SLOW_MS: ok = util_parse_ll(optarg, 1, 600000, &f->slow_service_ms); break;
        case F_REPORT: ok = util_parse_ll(optarg, 0, 600000, &f->report_interval_ms); break;
        case F_UQ: f->util_queue = true; break;
        case F_THREADS: ok = util_parse_ll(optarg, 1, 16, &f->threads); break;
        case F_AGE: ok = util_parse_ll(optarg, 0, 86400000LL, &f->max_age_ms); break;
        case F_STOP: ok = util_parse_ll(optarg, 0, 600000, &f->stop_timeout_ms); break;
        case F_DRAIN: ok = util_parse_ll(optarg, 0, 600000, &f->drain_grace_ms); break;
        case F_GRACE: ok = util_parse_ll(optarg, 0, 600000, &f->grace_ms); break;
        case F_LOG:
            lvl = log_level_parse(optarg);
            ok = lvl >= 0;
            if (ok) {
                log_set_level((enum log_level)lvl);
                /* liblookaside.so has its own logger: tell it too. */
                lookaside_log_set((lookaside_log_level)lvl, NULL, NULL);
            }
            break;
        case F_TLS0:
        case F_TLS0 + 1:
        case F_TLS0 + 2:
        case F_TLS0 + 3:
        case F_TLS_LAST: demo_tls_set(&f->tls, c - F_TLS0, optarg); break;
        case F_HELP: usage(stdout); return 0;
        case F_VERSION: printf("lookaside-demo-backend %s\n", LOOKASIDE_VERSION); return 0;
        default: usage(stderr); return 2;
        }
        if (!ok) {
            fprintf(stderr, "lookaside-demo-backend: bad value for --%s: %s\n",
                    opts[c - 1].name, optarg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "lookaside-demo-backend: unexpected argument: %s\n", argv[optind]);
        return 2;
    }
    if (f->listen == NULL) {
        fprintf(stderr, "lookaside-demo-backend: --listen is required\n");
        return 2;
    }
    if (f->lb && (f->service == NULL || !name_valid(f->service))) {
        fprintf(stderr, "lookaside-demo-backend: --lb needs a valid --service NAME\n");
        return 2;
    }
    if (f->zone && !zone_valid(f->zone)) {
        fprintf(stderr, "lookaside-demo-backend: bad --zone: %s\n", f->zone);
        return 2;
    }
    return -1;
}

typedef struct load_ctx {
    bsrv *srv;
    bool util_queue;
    uint32_t slots;
} load_ctx;

/* Measured utilisation since the previous call, or a negative value when
 * there is nothing to measure (no simulated slots). */
static double measure(load_ctx *lc)
{
    double busy, queue;
    if (!bsrv_measure(lc->srv, &busy, &queue))
        return -1;
    return busy + (lc->util_queue ? queue / (double)lc->slots : 0.0);
}

/* The reporter's callback: runs just before each report, so the window is
 * exactly the report interval and matches the rps the library measured. */
static void load_cb(void *arg, lookaside_load *load)
{
    double u = measure(arg);
    if (u > 0)
        load->application_utilization = u;
}

int main(int argc, char **argv)
{
    flags f;
    int rc = parse_flags(argc, argv, &f);
    if (rc >= 0)
        return rc;

    /* Signals are taken synchronously by main; block them before any thread
     * (gRPC's included) exists so that they all inherit the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGUSR1);
    sigaddset(&sigs, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    grpc_init();
    if (!demo_tls_build(&f.tls, "lookaside-demo-backend")) {
        grpc_shutdown();
        return 2;
    }
    grpc_server_credentials *serve_creds = demo_tls_server_credentials(&f.tls,
                                                                       "lookaside-demo-backend");
    if (f.tls.cert && serve_creds == NULL) {
        demo_tls_release(&f.tls);
        grpc_shutdown();
        return 2;
    }
    bsrv_config cfg = {
        .listen = f.listen,
        .creds = serve_creds,
        .name = f.name,
        .slots = (uint32_t)f.slots,
        .service_us = f.service_ms * 1000,
        .threads = (uint32_t)f.threads,
        .max_connection_age_ms = f.max_age_ms,
    };
    bsrv *srv = NULL;
    lookaside_reporter *rep = NULL;
    lookaside_status st = bsrv_create(&cfg, &srv);
    if (serve_creds)
        grpc_server_credentials_release(serve_creds);
    if (st != LOOKASIDE_OK) {
        log_error("backend", "cannot serve on %s: %s", f.listen, lookaside_status_str(st));
        demo_tls_release(&f.tls);
        grpc_shutdown();
        return 1;
    }
    load_ctx lc = {.srv = srv, .util_queue = f.util_queue, .slots = (uint32_t)f.slots};
    if (f.lb) {
        lookaside_reporter_options ro;
        lookaside_reporter_options_init(&ro);
        ro.lb_target = f.lb;
        ro.service = f.service;
        ro.address = bsrv_address(srv);
        ro.zone = f.zone;
        ro.credential = f.credential;
        ro.balancer_creds = f.tls.balancer_creds;      /* NULL: plaintext */
        ro.balancer_args = demo_tls_args(&f.tls);
        if (f.report_interval_ms == 0 && f.service_ms > 0) {
            ro.load_cb = load_cb;
            ro.load_cb_arg = &lc;
        }
        st = lookaside_reporter_create(&ro, &rep);
        demo_tls_release(&f.tls);   /* the reporter holds its own reference */
        if (st != LOOKASIDE_OK) {
            log_error("backend", "cannot create the reporter: %s", lookaside_status_str(st));
            bsrv_destroy(srv);
            grpc_shutdown();
            return 1;
        }
        bsrv_set_reporter(srv, rep);
    }
    demo_tls_release(&f.tls);
    st = bsrv_start(srv);
    if (st != LOOKASIDE_OK) {
        log_error("backend", "cannot start: %s", lookaside_status_str(st));
        lookaside_reporter_destroy(rep);
        bsrv_destroy(srv);
        grpc_shutdown();
        return 1;
    }
    if (f.service_ms > 0)
        log_info("backend", "listening on %s (name %s, %lld slots x %lld ms = %.0f rps capacity%s%s)",
                 bsrv_address(srv), bsrv_name(srv), f.slots, f.service_ms,
                 (double)f.slots * 1000.0 / (double)f.service_ms, f.lb ? ", service " : "",
                 f.lb ? f.service : "");
    else
        log_info("backend", "listening on %s (name %s, no simulated capacity%s%s)",
                 bsrv_address(srv), bsrv_name(srv), f.lb ? ", service " : "",
                 f.lb ? f.service : "");

    bool registered = false;
    int64_t next_sample = clock_mono_ms() + f.report_interval_ms;
    for (;;) {
        int64_t wait_ms = 1000;
        if (rep && !registered)
            wait_ms = 50;
        if (rep && f.report_interval_ms > 0) {
            int64_t left = next_sample - clock_mono_ms();
            if (left < wait_ms)
                wait_ms = left < 0 ? 0 : left;
        }
        struct timespec ts = {.tv_sec = wait_ms / 1000, .tv_nsec = (wait_ms % 1000) * 1000000L};
        int sig = sigtimedwait(&sigs, NULL, &ts);
        if (sig == SIGTERM || sig == SIGINT) {
            log_info("backend", "%s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
            break;
        }
        if ((sig == SIGUSR1 || sig == SIGUSR2) && f.service_ms > 0) {
            long long ms = sig == SIGUSR1
                               ? (f.slow_service_ms ? f.slow_service_ms : 2 * f.service_ms)
                               : f.service_ms;
            bsrv_set_service_us(srv, ms * 1000);
            log_info("backend", "%s: service time now %lld ms",
                     sig == SIGUSR1 ? "SIGUSR1" : "SIGUSR2", ms);
        }
        if (rep && !registered) {
            lookaside_reporter_info info;
            lookaside_reporter_info_get(rep, &info);
            if (info.registered) {
                registered = true;
                log_info("backend", "registered with %s as %s (token %s, report every %u ms)",
                         f.lb, f.service, info.token, info.interval_ms);
            }
        }
        if (rep && f.report_interval_ms > 0 && clock_mono_ms() >= next_sample) {
            next_sample += f.report_interval_ms;
            double u = measure(&lc);
            if (u >= 0) {
                lookaside_load load = {.application_utilization = u};
                lookaside_reporter_set_load(rep, &load);
            }
        }
    }

    if (rep) {
        st = lookaside_reporter_stop(rep, (uint32_t)f.stop_timeout_ms);
        if (st == LOOKASIDE_OK)
            log_info("backend", "drain acknowledged by the balancer");
        else
            log_warn("backend", "drain not acknowledged: %s", lookaside_status_str(st));
        if (f.drain_grace_ms > 0) {
            struct timespec ts = {.tv_sec = f.drain_grace_ms / 1000,
                                  .tv_nsec = (f.drain_grace_ms % 1000) * 1000000L};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
            }
        }
    }
    int cancelled = bsrv_shutdown(srv, f.grace_ms);
    if (cancelled > 0)
        log_warn("backend", "cancelled %d calls still in progress after %lld ms", cancelled,
                 f.grace_ms);
    lookaside_reporter_destroy(rep);
    bsrv_destroy(srv);
    grpc_shutdown();
    log_info("backend", "stopped");
    return 0;
}
