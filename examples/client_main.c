/* lookaside-demo-client: sends echo calls at a fixed rate for a while and
 * prints, every second, each backend's share of the calls that ended in that
 * second, latency percentiles and errors.
 *
 * Two modes over the same backends, so that they can be compared:
 *  - lookaside (default): per call, lookaside_pick through liblookaside, the
 *    call on the picked backend's own channel, lookaside_pick_done;
 *  - roundrobin: no liblookaside; one plain gRPC core channel on --target
 *    (e.g. dns://127.0.0.1:5353/echo.test:50051) with the round_robin policy,
 *    i.e. the DNS + round_robin setup lookaside replaces.
 * The reply names the backend that served it, so shares count the same way
 * in both modes.
 *
 * Exit status: 0; 1 on a setup failure (no backend within --wait-ready-ms);
 * 2 on bad usage; 3 when more than --max-fail-fraction of the calls failed. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "client_load.h"
#include "client_stats.h"
#include "demo_tls.h"
#include "log.h"
#include "lookaside.h"
#include "util.h"

#define RR_SERVICE_CONFIG "{\"loadBalancingConfig\":[{\"round_robin\":{}}]}"

typedef struct flags {
    const char *lb, *service, *target, *zone, *csv, *trace, *message;
    bool roundrobin, quiet, per_backend;
    double rate, duration_s, max_fail;
    long long concurrency, threads, timeout_ms, wait_ms;
    demo_tls tls;
} flags;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: lookaside-demo-client --lb HOST:PORT --service NAME [options]\n"
            "       lookaside-demo-client --mode roundrobin --target TARGET [options]\n"
            "Sends lookaside.demo.v1.Echo/Echo calls at a fixed rate (open loop) and prints,\n"
            "every second, each backend's share of the calls, p50/p99 latency and errors.\n"
            "\n"
            "  --lb TARGET                 the lookaside balancer (lookaside mode)\n"
            "  --service NAME              the service to watch and call (lookaside mode)\n"
            "  --mode MODE                 lookaside (default) or roundrobin: a plain gRPC\n"
            "                              channel on --target with the round_robin policy\n"
            "  --target TARGET             roundrobin: the channel target, e.g.\n"
            "                              dns://127.0.0.1:5353/echo.test:50051; lookaside:\n"
            "                              the fallback target when the balancer is silent\n"
            "  --rate RPS                  calls per second (default 100)\n"
            "  --duration-s S              how long to send (default 10; fractions allowed)\n"
            "  --concurrency N             calls in flight at most; a call due beyond that is\n"
            "                              skipped and counted (default 256)\n"
            "  --threads N                 sending threads (default 1)\n"
            "  --timeout-ms MS             per-call deadline (default 2000)\n"
            "  --zone ZONE                 the client's zone (lookaside mode)\n"
            "  --csv FILE                  per-second rows: t,backend,calls,p50_ms,p99_ms,errors\n"
            "                              (backend \"all\" is the whole second; latencies of\n"
            "                              successful calls, empty when there were none)\n"
            "  --trace FILE                one line per call: start_us,backend,address,status,\n"
            "                              latency_us (start on the realtime clock; benchmarks)\n"
            "  --max-fail-fraction F       exit 3 when more than F of the calls failed\n"
            "                              (default 0.01)\n"
            "  --wait-ready-ms MS          wait this long for something to call (default 10000)\n"
            "  --message TEXT              the echoed message (default \"hello\")\n"
            "  --per-backend               print one more line per backend each second\n"
            "  --quiet                     no per-second lines (summary only)\n"
            "  --log-level LEVEL           debug, info, warn, error (default info)\n"
            DEMO_TLS_USAGE
            "  --help, --version\n");
}

static bool parse_real(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *s == '\0' || *end != '\0' || !isfinite(v) || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static int parse_flags(int argc, char **argv, flags *f)
{
    enum { F_LB = 1, F_SERVICE, F_MODE, F_TARGET, F_RATE, F_DURATION, F_CONC, F_THREADS,
           F_TIMEOUT, F_ZONE, F_CSV, F_MAXFAIL, F_WAIT, F_MESSAGE, F_PERB, F_QUIET, F_LOG,
           F_HELP, F_VERSION, F_TRACE, F_TLS0, F_TLS_LAST = F_TLS0 + 4 };
    static const struct option opts[] = {
        {"lb", required_argument, 0, F_LB},
        {"service", required_argument, 0, F_SERVICE},
        {"mode", required_argument, 0, F_MODE},
        {"target", required_argument, 0, F_TARGET},
        {"rate", required_argument, 0, F_RATE},
        {"duration-s", required_argument, 0, F_DURATION},
        {"concurrency", required_argument, 0, F_CONC},
        {"threads", required_argument, 0, F_THREADS},
        {"timeout-ms", required_argument, 0, F_TIMEOUT},
        {"zone", required_argument, 0, F_ZONE},
        {"csv", required_argument, 0, F_CSV},
        {"max-fail-fraction", required_argument, 0, F_MAXFAIL},
        {"wait-ready-ms", required_argument, 0, F_WAIT},
        {"message", required_argument, 0, F_MESSAGE},
        {"per-backend", no_argument, 0, F_PERB},
        {"quiet", no_argument, 0, F_QUIET},
        {"log-level", required_argument, 0, F_LOG},
        {"help", no_argument, 0, F_HELP},
        {"version", no_argument, 0, F_VERSION},
        {"trace", required_argument, 0, F_TRACE},
        DEMO_TLS_OPTIONS(F_TLS0),
        {0, 0, 0, 0}};
    *f = (flags){.rate = 100, .duration_s = 10, .max_fail = 0.01, .concurrency = 256,
                 .threads = 1, .timeout_ms = 2000, .wait_ms = 10000, .message = "hello"};
    int c, lvl;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        bool ok = true;
        switch (c) {
        case F_LB: f->lb = optarg; break;
        case F_SERVICE: f->service = optarg; break;
        case F_MODE:
            if (strcmp(optarg, "roundrobin") == 0 || strcmp(optarg, "round_robin") == 0)
                f->roundrobin = true;
            else if (strcmp(optarg, "lookaside") == 0)
                f->roundrobin = false;
            else
                ok = false;
            break;
        case F_TARGET: f->target = optarg; break;
        case F_RATE: ok = parse_real(optarg, 0.001, 10000000, &f->rate); break;
        case F_DURATION: ok = parse_real(optarg, 0.001, 86400 * 7, &f->duration_s); break;
        case F_CONC: ok = util_parse_ll(optarg, 1, 1000000, &f->concurrency); break;
        case F_THREADS: ok = util_parse_ll(optarg, 1, 64, &f->threads); break;
        case F_TIMEOUT: ok = util_parse_ll(optarg, 1, 3600000, &f->timeout_ms); break;
        case F_ZONE: f->zone = optarg; break;
        case F_CSV: f->csv = optarg; break;
        case F_TRACE: f->trace = optarg; break;
        case F_MAXFAIL: ok = parse_real(optarg, 0, 1, &f->max_fail); break;
        case F_WAIT: ok = util_parse_ll(optarg, 0, 3600000, &f->wait_ms); break;
        case F_MESSAGE: f->message = optarg; ok = strlen(optarg) < 4096; break;
        case F_PERB: f->per_backend = true; break;
        case F_QUIET: f->quiet = true; break;
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
        case F_VERSION: printf("lookaside-demo-client %s\n", LOOKASIDE_VERSION); return 0;
        default: usage(stderr); return 2;
        }
        if (!ok) {
            fprintf(stderr, "lookaside-demo-client: bad value for --%s: %s\n", opts[c - 1].name,
                    optarg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "lookaside-demo-client: unexpected argument: %s\n", argv[optind]);
        return 2;
    }
    if (f->roundrobin && f->target == NULL) {
        fprintf(stderr, "lookaside-demo-client: --mode roundrobin needs --target\n");
        return 2;
    }
    if (!f->roundrobin && (f->lb == NULL || f->service == NULL)) {
        fprintf(stderr, "lookaside-demo-client: --lb and --service are required "
                        "(or --mode roundrobin --target TARGET)\n");
        return 2;
    }
    return -1;
}

/* Waits until ch is READY (connecting it), at most timeout_ms. */
static bool wait_channel_ready(grpc_channel *ch, int64_t timeout_ms)
{
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                         gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
    bool ready = false;
    for (;;) {
        grpc_connectivity_state s = grpc_channel_check_connectivity_state(ch, 1);
        if (s == GRPC_CHANNEL_READY) {
            ready = true;
            break;
        }
        grpc_channel_watch_connectivity_state(ch, s, deadline, cq, NULL);
        grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type != GRPC_OP_COMPLETE || !ev.success)
            break; /* the deadline passed */
    }
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
    return ready;
}

static grpc_channel *roundrobin_channel(const char *target)
{
    grpc_arg args[2];
    memset(args, 0, sizeof args);
    args[0].type = GRPC_ARG_STRING;
    args[0].key = (char *)GRPC_ARG_SERVICE_CONFIG;
    args[0].value.string = (char *)RR_SERVICE_CONFIG;
    /* Use exactly our service config, never one from DNS TXT records. */
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = (char *)GRPC_ARG_SERVICE_CONFIG_DISABLE_RESOLUTION;
    args[1].value.integer = 1;
    grpc_channel_args ca = {.num_args = 2, .args = args};
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    grpc_channel *ch = grpc_channel_create(target, creds, &ca);
    grpc_channel_credentials_release(creds);
    return ch;
}

int main(int argc, char **argv)
{
    flags f;
    int rc = parse_flags(argc, argv, &f);
    if (rc >= 0)
        return rc;

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);

    FILE *csv = NULL;
    if (f.csv) {
        csv = fopen(f.csv, "w");
        if (csv == NULL) {
            fprintf(stderr, "lookaside-demo-client: cannot write %s: %s\n", f.csv,
                    strerror(errno));
            return 1;
        }
    }
    cstats *stats = NULL;
    if (cstats_create(csv, &stats) != LOOKASIDE_OK) {
        if (csv)
            fclose(csv);
        return 1;
    }
    FILE *trace = NULL;
    if (f.trace) {
        trace = fopen(f.trace, "w");
        if (trace == NULL) {
            fprintf(stderr, "lookaside-demo-client: cannot write %s: %s\n", f.trace,
                    strerror(errno));
            cstats_destroy(stats);
            if (csv)
                fclose(csv);
            return 1;
        }
        cstats_set_trace(stats, trace);
    }

    grpc_init();
    if (!demo_tls_build(&f.tls, "lookaside-demo-client")) {
        grpc_shutdown();
        return 2;
    }
    int exit_code = 0;
    lookaside_client *client = NULL;
    grpc_channel *channel = NULL;
    load *ld = NULL;
    if (f.roundrobin) {
        channel = roundrobin_channel(f.target);
        if (!wait_channel_ready(channel, f.wait_ms)) {
            log_error("client", "%s: no backend ready within %lld ms", f.target, f.wait_ms);
            exit_code = 1;
            goto out;
        }
        printf("round_robin channel on %s is ready\n", f.target);
    } else {
        lookaside_client_options o;
        lookaside_client_options_init(&o);
        o.lb_target = f.lb;
        o.zone = f.zone;
        /* NULL (no --tls-ca): plaintext. The client takes its own references. */
        o.balancer_creds = f.tls.balancer_creds;
        o.balancer_args = demo_tls_args(&f.tls);
        o.backend_creds = f.tls.backend_creds;
        o.backend_args = demo_tls_args(&f.tls);
        lookaside_status st = lookaside_client_create(&o, &client);
        demo_tls_release(&f.tls);
        if (st == LOOKASIDE_OK)
            st = lookaside_client_watch(client, f.service, f.target);
        if (st == LOOKASIDE_OK)
            st = lookaside_client_wait_ready(client, f.service, (uint32_t)f.wait_ms);
        if (st != LOOKASIDE_OK) {
            log_error("client", "service %s via %s: %s", f.service, f.lb,
                      lookaside_status_str(st));
            exit_code = 1;
            goto out;
        }
        lookaside_service_info si;
        if (lookaside_client_service_info(client, f.service, &si) == LOOKASIDE_OK)
            printf("lookaside: %s has %u backends (%u pickable), list v%llu from %s\n", f.service,
                   si.backends, si.pickable, (unsigned long long)si.version,
                   lookaside_list_source_str(si.source));
    }
    printf("sending %.0f calls/s for %.1f s (at most %lld in flight) %s %s\n", f.rate,
           f.duration_s, f.concurrency, f.roundrobin ? "over round_robin on" : "through lookaside to",
           f.roundrobin ? f.target : f.service);

    int64_t start = clock_mono_us() + 10000;
    int64_t end = start + (int64_t)(f.duration_s * 1e6);
    load_config lc = {
        .client = client,
        .service = f.service,
        .channel = channel,
        .rate = f.rate,
        .concurrency = (uint32_t)f.concurrency,
        .threads = (uint32_t)f.threads,
        .timeout_ms = f.timeout_ms,
        .start_us = start,
        .end_us = end,
        .message = f.message,
        .stats = stats,
    };
    if (load_start(&lc, &ld) != LOOKASIDE_OK) {
        log_error("client", "cannot start the senders");
        exit_code = 1;
        goto out;
    }
    int t = 0;
    bool interrupted = false;
    while (!interrupted) {
        int64_t tick = start + (int64_t)(t + 1) * 1000000;
        if (tick > end)
            break;
        int64_t left = tick - clock_mono_us();
        if (left > 0) {
            struct timespec ts = {.tv_sec = left / 1000000, .tv_nsec = (left % 1000000) * 1000};
            int sig = sigtimedwait(&sigs, NULL, &ts);
            if (sig == SIGINT || sig == SIGTERM) {
                interrupted = true;
                load_stop(ld);
                break;
            }
            if (clock_mono_us() < tick)
                continue; /* woken early (EINTR): wait again */
        }
        cstats_tick(stats, ++t, f.quiet ? NULL : stdout, f.per_backend);
    }
    load_join(ld);
    /* Whatever ended after the last full second (a partial second, the
     * calls still in flight at the end) gets one more line. */
    if (cstats_pending(stats) > 0)
        cstats_tick(stats, ++t, f.quiet ? NULL : stdout, f.per_backend);
    int64_t stopped = clock_mono_us();
    double secs = (double)((stopped < end ? stopped : end) - start) / 1e6;
    cstats_totals tot;
    cstats_summary(stats, secs, stdout, &tot);
    double frac = tot.calls ? (double)tot.errors / (double)tot.calls : 0;
    if (tot.calls == 0) {
        printf("no call ended: failing\n");
        exit_code = 3;
    } else if (frac > f.max_fail) {
        printf("failed fraction %.4f is over --max-fail-fraction %.4f: failing\n", frac,
               f.max_fail);
        exit_code = 3;
    }
    if (interrupted)
        printf("interrupted\n");

out:
    load_destroy(ld);
    lookaside_client_destroy(client);
    if (channel)
        grpc_channel_destroy(channel);
    demo_tls_release(&f.tls);   /* no-op unless a path above skipped it */
    grpc_shutdown();
    cstats_destroy(stats);
    if (trace && fclose(trace) != 0 && exit_code == 0)
        exit_code = 1;
    if (csv && fclose(csv) != 0 && exit_code == 0)
        exit_code = 1;
    return exit_code;
}
