/* Integration tests for liblookaside against the real lookaside-server and
 * echo backends in child processes. One scenario per process:
 *   test_client_it new_backend | killed_backend | lb_restart | fallback | drain |
 *                  load_shares
 * (and, as a child, test_client_it --backend NAME ...). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "it_util.h"
#include "lookaside.h"

/* Per process, so that tests running side by side never share a service
 * even if one of them reaches another's balancer. */
static char SVC[64];
#define MAXB 8

/* ------------------------------------------------------------ load */

typedef struct load {
    lookaside_client *c;
    pthread_t th;
    _Atomic bool stop;
    _Atomic uint64_t ok;
    _Atomic uint64_t failed_calls;
    _Atomic uint64_t failed_picks;
    pthread_mutex_t mu;
    int n;
    char name[MAXB][128];      /* reply names seen */
    uint64_t count[MAXB];
    int64_t first_ms[MAXB];
    char addr[MAXB][128];      /* pick addresses seen */
    int64_t last_pick_ms[MAXB];
    uint64_t picks[MAXB];
    int n_addr;
} load;

static int slot(char (*names)[128], int *n, const char *s)
{
    for (int i = 0; i < *n; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    if (*n == MAXB)
        return -1;
    snprintf(names[*n], 128, "%s", s);
    return (*n)++;
}

static void *load_main(void *arg)
{
    load *l = arg;
    while (!atomic_load(&l->stop)) {
        struct lookaside_pick p;
        lookaside_status st = lookaside_pick(l->c, SVC, &p);
        if (st != LOOKASIDE_OK) {
            atomic_fetch_add(&l->failed_picks, 1);
            fprintf(stderr, "load: pick failed: %s\n", lookaside_status_str(st));
            it_sleep_ms(5);
            continue;
        }
        int64_t t0 = it_now_ms();
        pthread_mutex_lock(&l->mu);
        int a = slot(l->addr, &l->n_addr, p.address);
        if (a >= 0) {
            l->last_pick_ms[a] = t0;
            l->picks[a]++;
        }
        pthread_mutex_unlock(&l->mu);
        char reply[32];
        grpc_status_code code = it_echo(p.channel, 2000, reply, sizeof reply);
        int64_t t1 = it_now_ms();
        lookaside_pick_done(l->c, &p, code, (t1 - t0) * 1000);
        if (code != GRPC_STATUS_OK) {
            atomic_fetch_add(&l->failed_calls, 1);
            fprintf(stderr, "load: call failed with %d\n", (int)code);
            continue;
        }
        atomic_fetch_add(&l->ok, 1);
        pthread_mutex_lock(&l->mu);
        int i = slot(l->name, &l->n, reply);
        if (i >= 0) {
            if (l->count[i]++ == 0)
                l->first_ms[i] = t1;
        }
        pthread_mutex_unlock(&l->mu);
        it_sleep_ms(1);
    }
    it_echo_thread_done();
    return NULL;
}

static void load_start(load *l, lookaside_client *c)
{
    memset(l, 0, sizeof *l);
    l->c = c;
    pthread_mutex_init(&l->mu, NULL);
    CHECK(pthread_create(&l->th, NULL, load_main, l) == 0, "thread");
}

static void load_stop(load *l)
{
    atomic_store(&l->stop, true);
    pthread_join(l->th, NULL);
    pthread_mutex_destroy(&l->mu);
}

static uint64_t load_count(load *l, const char *name, int64_t *first_ms)
{
    pthread_mutex_lock(&l->mu);
    uint64_t n = 0;
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->name[i], name) == 0) {
            n = l->count[i];
            if (first_ms)
                *first_ms = l->first_ms[i];
        }
    pthread_mutex_unlock(&l->mu);
    return n;
}

static int64_t load_last_pick(load *l, const char *addr)
{
    pthread_mutex_lock(&l->mu);
    int64_t t = 0;
    for (int i = 0; i < l->n_addr; i++)
        if (strcmp(l->addr[i], addr) == 0)
            t = l->last_pick_ms[i];
    pthread_mutex_unlock(&l->mu);
    return t;
}

/* Waits until every name has answered at least once. */
static bool load_wait_all(load *l, const char *const *names, int n, int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    while (it_now_ms() < end) {
        int seen = 0;
        for (int i = 0; i < n; i++)
            seen += load_count(l, names[i], NULL) > 0;
        if (seen == n)
            return true;
        it_sleep_ms(10);
    }
    return false;
}

static void load_print(load *l)
{
    pthread_mutex_lock(&l->mu);
    fprintf(stderr, "load: ok %llu, failed calls %llu, failed picks %llu;",
            (unsigned long long)l->ok, (unsigned long long)l->failed_calls,
            (unsigned long long)l->failed_picks);
    for (int i = 0; i < l->n; i++)
        fprintf(stderr, " %s=%llu", l->name[i], (unsigned long long)l->count[i]);
    fprintf(stderr, "; picks:");
    int64_t now = it_now_ms();
    for (int i = 0; i < l->n_addr; i++)
        fprintf(stderr, " %s=%llu (last %lld ms ago)", l->addr[i], (unsigned long long)l->picks[i],
                (long long)(now - l->last_pick_ms[i]));
    fprintf(stderr, "\n");
    pthread_mutex_unlock(&l->mu);
}

/* ------------------------------------------------------------ setup */

static lookaside_client *client_new(const char *lb_target, uint32_t connect_timeout_ms)
{
    lookaside_client_options o;
    lookaside_client_options_init(&o);
    o.lb_target = lb_target;
    o.client_id = "it.client";
    if (connect_timeout_ms)
        o.connect_timeout_ms = connect_timeout_ms;
    lookaside_client *c = NULL;
    CHECK(lookaside_client_create(&o, &c) == LOOKASIDE_OK, "client create");
    return c;
}

static void backends_term(it_backend *b, int n)
{
    for (int i = 0; i < n; i++) {
        char buf[64];
        if (b[i].pid > 0)
            CHECK(it_backend_term(&b[i], buf, sizeof buf), "backend %s clean exit", b[i].name);
    }
}

/* ------------------------------------------------------------ scenarios */

static int free_port(void);

/* A new backend gets picks within 1 s of its first report. The balancer
 * list given to the client and the reporters starts with a dead address:
 * both move on to the next target at once. */
static int t_new_backend(void)
{
    it_lb lb;
    CHECK(it_lb_start(&lb, 0, NULL, NULL), "lb start");
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d,127.0.0.1:%d", free_port(), lb.port);
    it_backend b[3];
    CHECK(it_backend_start(&b[0], "A", target, SVC, NULL, true), "A");
    lookaside_client *c = client_new(target, 0);
    CHECK(lookaside_client_watch(c, SVC, NULL) == LOOKASIDE_OK, "watch");
    CHECK(lookaside_client_wait_ready(c, SVC, 5000) == LOOKASIDE_OK, "ready");
    lookaside_service_info info;
    CHECK(lookaside_client_service_info(c, SVC, &info) == LOOKASIDE_OK, "info");
    CHECK(info.source == LOOKASIDE_SOURCE_LB && info.lb_connected && info.version > 0 &&
              info.backends == 1,
          "info: source %d connected %d version %llu backends %u", (int)info.source,
          (int)info.lb_connected, (unsigned long long)info.version, info.backends);
    load l;
    load_start(&l, c);
    const char *a[] = {"A"};
    CHECK(load_wait_all(&l, a, 1, 5000), "A answers");

    int64_t worst = 0;
    const char *names[] = {"B", "C"};
    for (int k = 0; k < 2; k++) {
        CHECK(it_backend_start(&b[k + 1], names[k], target, SVC, NULL, false), "%s", names[k]);
        CHECK(it_backend_wait_registered(&b[k + 1], 10000), "%s registered", names[k]);
        int64_t first = 0;
        int64_t end = it_now_ms() + 5000;
        while (it_now_ms() < end && load_count(&l, names[k], &first) == 0)
            it_sleep_ms(5);
        CHECK(first > 0, "%s never picked", names[k]);
        int64_t delay = first - b[k + 1].registered_ms;
        fprintf(stderr, "new backend %s: first answer %lld ms after registration\n", names[k],
                (long long)delay);
        if (delay > worst)
            worst = delay;
    }
    CHECK(worst <= 1000, "a new backend waited %lld ms for its first pick", (long long)worst);
    size_t n = 0;
    lookaside_backend_info bi[4];
    CHECK(lookaside_client_backends(c, SVC, bi, 4, &n) == LOOKASIDE_OK && n == 3, "3 backends");
    for (size_t i = 0; i < n; i++)
        CHECK(bi[i].pickable && bi[i].weight > 0, "%s pickable", bi[i].address);
    load_stop(&l);
    load_print(&l);
    CHECK(atomic_load(&l.failed_calls) == 0 && atomic_load(&l.failed_picks) == 0, "no failures");
    lookaside_client_destroy(c);
    backends_term(b, 3);
    it_lb_stop(&lb);
    return 0;
}

/* A SIGKILLed backend stops being picked; only calls caught in the act
 * fail. */
static int t_killed_backend(void)
{
    it_lb lb;
    CHECK(it_lb_start(&lb, 0, NULL, NULL), "lb start");
    char target[32];
    it_lb_target(&lb, target, sizeof target);
    it_backend b[3];
    const char *names[] = {"A", "B", "C"};
    for (int i = 0; i < 3; i++)
        CHECK(it_backend_start(&b[i], names[i], target, SVC, NULL, true), "%s", names[i]);
    lookaside_client *c = client_new(target, 0);
    CHECK(lookaside_client_watch(c, SVC, NULL) == LOOKASIDE_OK, "watch");
    CHECK(lookaside_client_wait_ready(c, SVC, 5000) == LOOKASIDE_OK, "ready");
    load l;
    load_start(&l, c);
    CHECK(load_wait_all(&l, names, 3, 5000), "all answer");
    char killed[32];
    snprintf(killed, sizeof killed, "%s", b[1].addr);
    int64_t t_kill = it_now_ms();
    it_backend_kill(&b[1]);
    /* Gone from picks: no pick of it for 500 ms, within 3 s of the kill. */
    int64_t end = t_kill + 3000, gone_at = 0;
    while (it_now_ms() < end) {
        int64_t last = load_last_pick(&l, killed);
        if (it_now_ms() - last >= 500) {
            gone_at = last;
            break;
        }
        it_sleep_ms(10);
    }
    CHECK(gone_at > 0, "killed backend still picked");
    fprintf(stderr, "killed backend: last pick %lld ms after the kill\n",
            (long long)(gone_at - t_kill));
    uint64_t before = load_count(&l, "A", NULL) + load_count(&l, "C", NULL);
    it_sleep_ms(300);
    CHECK(load_count(&l, "A", NULL) + load_count(&l, "C", NULL) > before, "others still answer");
    load_stop(&l);
    load_print(&l);
    /* One load thread: at most the call in flight plus the few made before
     * the channel noticed. */
    CHECK(atomic_load(&l.failed_calls) <= 5, "%llu failed calls",
          (unsigned long long)atomic_load(&l.failed_calls));
    CHECK(atomic_load(&l.failed_picks) == 0, "failed picks");
    lookaside_service_info info;
    lookaside_client_service_info(c, SVC, &info);
    CHECK(info.backends == 2, "list has %u backends", info.backends);
    lookaside_client_destroy(c);
    backends_term(b, 3);
    it_lb_stop(&lb);
    return 0;
}

/* The balancer killed and restarted under load: no failed pick or call
 * (fail static), and the client reconnects. */
static int t_lb_restart(void)
{
    it_lb lb;
    CHECK(it_lb_start(&lb, 0, NULL, NULL), "lb start");
    char target[32];
    it_lb_target(&lb, target, sizeof target);
    int port = lb.port;
    it_backend b[2];
    const char *names[] = {"A", "B"};
    for (int i = 0; i < 2; i++)
        CHECK(it_backend_start(&b[i], names[i], target, SVC, NULL, true), "%s", names[i]);
    lookaside_client *c = client_new(target, 0);
    CHECK(lookaside_client_watch(c, SVC, NULL) == LOOKASIDE_OK, "watch");
    CHECK(lookaside_client_wait_ready(c, SVC, 5000) == LOOKASIDE_OK, "ready");
    load l;
    load_start(&l, c);
    CHECK(load_wait_all(&l, names, 2, 5000), "all answer");
    it_sleep_ms(300);

    it_lb_kill(&lb);
    it_sleep_ms(1500);
    lookaside_service_info info;
    lookaside_client_service_info(c, SVC, &info);
    CHECK(!info.lb_connected && info.source == LOOKASIDE_SOURCE_LB && info.backends == 2 &&
              info.pickable == 2,
          "during the outage: connected %d source %d backends %u pickable %u",
          (int)info.lb_connected, (int)info.source, info.backends, info.pickable);
    uint64_t ok_mid = atomic_load(&l.ok);

    bool up = false;
    for (int tries = 0; tries < 20 && !up; tries++) {
        up = it_lb_start(&lb, port, lb.db, NULL);
        if (!up)
            it_sleep_ms(250);
    }
    CHECK(up, "lb restart on port %d", port);
    int64_t end = it_now_ms() + 15000;
    while (it_now_ms() < end) {
        lookaside_client_service_info(c, SVC, &info);
        if (info.lb_connected && info.reconnects >= 1)
            break;
        it_sleep_ms(20);
    }
    CHECK(info.lb_connected, "client did not reconnect");
    it_sleep_ms(1000);
    CHECK(atomic_load(&l.ok) > ok_mid, "calls continued");
    load_stop(&l);
    load_print(&l);
    lookaside_client_service_info(c, SVC, &info);
    fprintf(stderr, "after restart: source %s, version %llu, backends %u, reconnects %llu\n",
            lookaside_list_source_str(info.source), (unsigned long long)info.version,
            info.backends, (unsigned long long)info.reconnects);
    CHECK(atomic_load(&l.failed_calls) == 0, "%llu failed calls",
          (unsigned long long)atomic_load(&l.failed_calls));
    CHECK(atomic_load(&l.failed_picks) == 0, "%llu failed picks",
          (unsigned long long)atomic_load(&l.failed_picks));
    lookaside_client_destroy(c);
    backends_term(b, 2);
    it_lb_stop(&lb);
    return 0;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* No balancer at start: after the connect timeout picks use the fallback
 * round_robin channel; when the balancer comes, the client switches to its
 * list without failing a call. */
static int t_fallback(void)
{
    int port = free_port();
    CHECK(port > 0, "free port");
    char target[32];
    snprintf(target, sizeof target, "127.0.0.1:%d", port);
    it_backend b[2];
    const char *names[] = {"A", "B"};
    for (int i = 0; i < 2; i++)
        CHECK(it_backend_start(&b[i], names[i], target, SVC, NULL, false), "%s", names[i]);
    char fallback[96];
    snprintf(fallback, sizeof fallback, "ipv4:%s,%s", b[0].addr, b[1].addr);
    lookaside_client *c = client_new(target, 500);
    int64_t t0 = it_now_ms();
    CHECK(lookaside_client_watch(c, SVC, fallback) == LOOKASIDE_OK, "watch");
    struct lookaside_pick p;
    CHECK(lookaside_pick(c, SVC, &p) == LOOKASIDE_EUNAVAIL, "nothing before the timeout");
    CHECK(lookaside_client_wait_ready(c, SVC, 5000) == LOOKASIDE_OK, "ready");
    int64_t waited = it_now_ms() - t0;
    fprintf(stderr, "fallback after %lld ms\n", (long long)waited);
    CHECK(waited >= 400, "fallback too early (%lld ms)", (long long)waited);
    lookaside_service_info info;
    lookaside_client_service_info(c, SVC, &info);
    CHECK(info.source == LOOKASIDE_SOURCE_FALLBACK_DNS, "source %d", (int)info.source);
    load l;
    load_start(&l, c);
    CHECK(load_wait_all(&l, names, 2, 5000), "round robin reaches both");

    it_lb lb;
    CHECK(it_lb_start(&lb, port, NULL, NULL), "lb start on %d", port);
    int64_t end = it_now_ms() + 15000;
    while (it_now_ms() < end) {
        lookaside_client_service_info(c, SVC, &info);
        if (info.source == LOOKASIDE_SOURCE_LB && info.backends == 2)
            break;
        it_sleep_ms(20);
    }
    CHECK(info.source == LOOKASIDE_SOURCE_LB && info.backends == 2,
          "left fallback: source %d backends %u", (int)info.source, info.backends);
    it_sleep_ms(500);
    int64_t t_lb = it_now_ms();
    it_sleep_ms(500);
    load_print(&l);
    CHECK(load_last_pick(&l, b[0].addr) > t_lb || load_last_pick(&l, b[1].addr) > t_lb,
          "picks go to backends directly");
    CHECK(load_last_pick(&l, fallback) < t_lb, "fallback channel still picked");
    load_stop(&l);
    load_print(&l);
    CHECK(atomic_load(&l.failed_calls) == 0 && atomic_load(&l.failed_picks) == 0, "no failures");
    lookaside_client_destroy(c);
    backends_term(b, 2);
    it_lb_stop(&lb);
    return 0;
}

/* Traffic follows reported load: two backends report application
 * utilization 0.8 (set_load) and 0.2 (load callback) at the 250 ms interval
 * the balancer asks for; the lighter one ends up with most of the picks. */
static int t_load_shares(void)
{
    it_lb lb;
    const char *extra[] = {"--report-interval-ms", "250", NULL};
    CHECK(it_lb_start(&lb, 0, NULL, extra), "lb start");
    char target[32];
    it_lb_target(&lb, target, sizeof target);
    it_backend b[2];
    CHECK(it_backend_start_util(&b[0], "heavy", target, SVC, NULL, 0.8, true), "heavy");
    CHECK(it_backend_start_util(&b[1], "light", target, SVC, NULL, -0.2, true), "light");
    int64_t t0 = it_now_ms();
    lookaside_client *c = client_new(target, 0);
    CHECK(lookaside_client_watch(c, SVC, NULL) == LOOKASIDE_OK, "watch");
    CHECK(lookaside_client_wait_ready(c, SVC, 5000) == LOOKASIDE_OK, "ready");
    load l;
    load_start(&l, c);
    /* Shares over successive 1 s windows until light has 70 %+ (20 s max). */
    double light_share = 0;
    uint64_t h0 = 0, l0 = 0;
    for (int64_t end = it_now_ms() + 20000; it_now_ms() < end;) {
        it_sleep_ms(1000);
        uint64_t h = load_count(&l, "heavy", NULL), li = load_count(&l, "light", NULL);
        uint64_t dh = h - h0, dl = li - l0;
        h0 = h;
        l0 = li;
        light_share = dh + dl ? (double)dl / (double)(dh + dl) : 0;
        fprintf(stderr, "t=%5lld ms light share %.2f\n", (long long)(it_now_ms() - t0),
                light_share);
        if (light_share >= 0.7)
            break;
    }
    load_stop(&l);
    load_print(&l);
    CHECK(light_share >= 0.7, "light backend share %.2f", light_share);
    CHECK(atomic_load(&l.failed_calls) == 0, "no failures");
    lookaside_client_destroy(c);
    int64_t lived = it_now_ms() - t0;
    for (int i = 0; i < 2; i++) {
        char buf[96];
        unsigned long long loads = 0, streams = 0;
        CHECK(it_backend_term(&b[i], buf, sizeof buf), "%s stops", b[i].name);
        CHECK(sscanf(buf, "stopped ok loads=%llu streams=%llu", &loads, &streams) == 2, "%s", buf);
        /* about one load per 250 ms */
        CHECK(loads >= (unsigned long long)(lived / 250 / 2) && streams == 1,
              "%s sent %llu loads on %llu streams in %lld ms", b[i].name, loads, streams,
              (long long)lived);
    }
    it_lb_stop(&lb);
    return 0;
}

/* A backend stopping gracefully (reporter stop: drain, wait for the ack)
 * leaves the picks with no failed call. */
static int t_drain(void)
{
    it_lb lb;
    CHECK(it_lb_start(&lb, 0, NULL, NULL), "lb start");
    char target[32];
    it_lb_target(&lb, target, sizeof target);
    it_backend b[2];
    const char *names[] = {"A", "B"};
    for (int i = 0; i < 2; i++)
        CHECK(it_backend_start(&b[i], names[i], target, SVC, NULL, true), "%s", names[i]);
    lookaside_client *c = client_new(target, 0);
    CHECK(lookaside_client_watch(c, SVC, NULL) == LOOKASIDE_OK, "watch");
    CHECK(lookaside_client_wait_ready(c, SVC, 5000) == LOOKASIDE_OK, "ready");
    load l;
    load_start(&l, c);
    CHECK(load_wait_all(&l, names, 2, 5000), "all answer");
    char addr[32], buf[64];
    snprintf(addr, sizeof addr, "%s", b[0].addr);
    CHECK(it_backend_term(&b[0], buf, sizeof buf), "A stops");
    CHECK(strncmp(buf, "stopped ok", 10) == 0, "reporter stop: %s", buf);
    int64_t t_gone = it_now_ms();
    it_sleep_ms(500);
    CHECK(load_last_pick(&l, addr) < t_gone, "drained backend picked after it left");
    load_stop(&l);
    load_print(&l);
    CHECK(atomic_load(&l.failed_calls) == 0 && atomic_load(&l.failed_picks) == 0, "no failures");
    lookaside_client_destroy(c);
    backends_term(b, 2);
    it_lb_stop(&lb);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--backend") == 0)
        return it_backend_main(argc, argv);
    if (argc < 2) {
        fprintf(stderr, "usage: %s new_backend|killed_backend|lb_restart|fallback|drain|load_shares\n",
                argv[0]);
        return 2;
    }
    snprintf(SVC, sizeof SVC, "echo-%d.test", (int)getpid());
    int rc = 2;
    if (strcmp(argv[1], "new_backend") == 0)
        rc = t_new_backend();
    else if (strcmp(argv[1], "killed_backend") == 0)
        rc = t_killed_backend();
    else if (strcmp(argv[1], "lb_restart") == 0)
        rc = t_lb_restart();
    else if (strcmp(argv[1], "fallback") == 0)
        rc = t_fallback();
    else if (strcmp(argv[1], "drain") == 0)
        rc = t_drain();
    else if (strcmp(argv[1], "load_shares") == 0)
        rc = t_load_shares();
    it_cleanup();
    if (rc == 0)
        fprintf(stderr, "%s: passed\n", argv[1]);
    return rc;
}
