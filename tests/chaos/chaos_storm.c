/* chaos.storm_kill: SIGKILL during a report storm, repeated.
 *
 *   chaos_storm ROUNDS
 *
 * Each round starts lookaside-server on the same database and, until it
 * SIGKILLs the server after a pseudo-random 150-650 ms, keeps opening Report
 * streams (3 per pass, up to 96; one backend each, fresh addresses per
 * round), sends a load report on every open one per pass and now and then
 * closes one cleanly. So registrations are in flight at the kill. After each
 * kill:
 *  - storage_integrity_check on the database is OK (the storage API, as the
 *    restarted server would open it);
 *  - every registration acknowledged before the kill on a stream that was
 *    still open is stored (the ack rule: the server acknowledges a
 *    registration only once it is committed);
 *  - the next round's server, restarted on that database, lists every one
 *    of them at once (RESTORED) in GetServerList.
 * Closed-and-confirmed backends that are still stored are counted and
 * printed (what the README promises about them is the lead's rule). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaos_util.h"
#include "lookaside/v1/lookaside.pb-c.h"
#include "storage.h"

#define STREAMS 96
#define STORM_SERVICE "storm"

typedef struct rstream {
    tstream *s;
    char addr[48];
    bool acked, closed;
} rstream;

static void send_load(rstream *r, unsigned *seed)
{
    Lookaside__V1__Load load = LOOKASIDE__V1__LOAD__INIT;
    load.cpu_utilization = (double)(rand_r(seed) % 100) / 100.0;
    load.rps_fractional = (double)(rand_r(seed) % 1000);
    Lookaside__V1__LoadReport m = LOOKASIDE__V1__LOAD_REPORT__INIT;
    m.kind_case = LOOKASIDE__V1__LOAD_REPORT__KIND_LOAD;
    m.load = &load;
    (void)ts_send(r->s, &m.base);
}

/* Reads the acks already received (wait_ms 0: only what is there). */
static void drain_acks(rstream *r, int wait_ms)
{
    for (int i = 0; i < 1000; i++) {
        ProtobufCMessage *a = NULL;
        if (ts_recv(r->s, &lookaside__v1__report_ack__descriptor, &a, wait_ms) != 1)
            return;
        r->acked = true;
        protobuf_c_message_free_unpacked(a, NULL);
    }
}

static bool stored(const storage_backend *bs, size_t n, const char *addr)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(bs[i].service, STORM_SERVICE) == 0 && strcmp(bs[i].address, addr) == 0)
            return true;
    return false;
}

/* The kill's aftermath, through the storage API. Returns how many acked
 * open registrations are stored and fills missing/closed_kept. */
static void check_db(const char *db, const rstream *rs, size_t *acked, size_t *missing,
                     size_t *closed_kept, char *first_missing, size_t len)
{
    storage *st = NULL;
    if (storage_open(db, &st) != LOOKASIDE_OK)
        chaos_fail("after the kill the database does not open: %s", storage_open_error());
    if (storage_integrity_check(st) != LOOKASIDE_OK)
        chaos_fail("integrity_check after the kill: %s", storage_errmsg(st));
    storage_backend *bs = NULL;
    size_t n = 0;
    if (storage_load_backends(st, &bs, &n) != LOOKASIDE_OK)
        chaos_fail("load_backends after the kill: %s", storage_errmsg(st));
    *acked = *missing = *closed_kept = 0;
    for (size_t i = 0; i < STREAMS; i++) {
        if (rs[i].closed) {
            *closed_kept += stored(bs, n, rs[i].addr);
            continue;
        }
        if (!rs[i].acked)
            continue;
        (*acked)++;
        if (!stored(bs, n, rs[i].addr) && (*missing)++ == 0)
            snprintf(first_missing, len, "%s", rs[i].addr);
    }
    free(bs);
    storage_close(st);
}

/* How many acknowledged open registrations the restarted server does not
 * list. */
static size_t count_unlisted(const char *lb, const rstream *rs)
{
    tclient *c = tc_connect(lb);
    Lookaside__V1__WatchRequest req = LOOKASIDE__V1__WATCH_REQUEST__INIT;
    req.service = STORM_SERVICE;
    ProtobufCMessage *resp = NULL;
    grpc_status_code code = tc_unary(c, "/lookaside.v1.Balancer/GetServerList", &req.base,
                                     &lookaside__v1__server_list__descriptor, &resp, NULL, 5000);
    if (code != GRPC_STATUS_OK || resp == NULL)
        chaos_fail("GetServerList after the restart: status %d", (int)code);
    const Lookaside__V1__ServerList *sl = (const Lookaside__V1__ServerList *)resp;
    size_t unlisted = 0;
    for (size_t i = 0; i < STREAMS; i++) {
        if (!rs[i].acked || rs[i].closed)
            continue;
        bool found = false;
        for (size_t j = 0; j < sl->n_backends && !found; j++)
            found = strcmp(sl->backends[j]->address, rs[i].addr) == 0;
        unlisted += !found;
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    tc_close(c);
    return unlisted;
}

typedef struct totals {
    size_t acked, missing, unlisted, closed, closed_kept;
} totals;

/* Opens up to k more Report streams (registrations) after rs[0..opened);
 * returns the new count. */
static size_t open_more(tclient *c, rstream *rs, size_t opened, int k, int round)
{
    for (; k > 0 && opened < STREAMS; k--, opened++) {
        rstream *r = &rs[opened];
        snprintf(r->addr, sizeof r->addr, "127.0.%d.%zu:7000", 10 + round, opened + 1);
        r->s = h_report_open(c, STORM_SERVICE, r->addr, NULL, NULL);
        if (r->s == NULL)
            chaos_fail("round %d: Report stream %zu did not open", round, opened);
    }
    return opened;
}

/* rs holds the previous round's streams (round > 0), checked against the
 * restarted server before it is reused. */
static void storm_round(const char *db, int round, rstream *rs, totals *t)
{
    proc lb;
    chaos_server_start(&lb, db, 0, NULL);
    if (round > 0)
        t->unlisted += count_unlisted(lb.addr, rs);
    unsigned seed = 12345u + (unsigned)round;
    memset(rs, 0, STREAMS * sizeof *rs);
    tclient *c = tc_connect(lb.addr);
    /* Registrations keep arriving until the kill (a few per pass), so some
     * are in flight when it lands. */
    size_t opened = 0;
    long long kill_at = h_now_ms() + 150 + rand_r(&seed) % 500;
    for (int pass = 0; h_now_ms() < kill_at && pass < 100000; pass++) {
        opened = open_more(c, rs, opened, 3, round);
        for (size_t i = 0; i < opened; i++) {
            if (rs[i].closed)
                continue;
            drain_acks(&rs[i], 0);
            send_load(&rs[i], &seed);
        }
        /* Now and then a backend leaves cleanly: half-close and wait for the
         * server's OK. */
        size_t k = opened ? (size_t)rand_r(&seed) % opened : 0;
        if (pass % 4 == 3 && !rs[k].closed && rs[k].acked) {
            grpc_status_code code = GRPC_STATUS_UNKNOWN;
            if (ts_close_send(rs[k].s) == 0 && ts_status(rs[k].s, 2000, &code, NULL) == 0 &&
                code == GRPC_STATUS_OK)
                rs[k].closed = true;
        }
    }
    /* A last few registrations sent just before the kill: they are in
     * flight when it lands (acknowledged or not, the rule must hold). */
    opened = open_more(c, rs, opened, 4, round);
    h_kill(&lb);
    /* What arrived before the kill is still readable. */
    size_t unacked = 0;
    for (size_t i = 0; i < opened; i++) {
        if (!rs[i].closed)
            drain_acks(&rs[i], 100);
        unacked += !rs[i].acked;
        ts_destroy(rs[i].s);
        rs[i].s = NULL;
    }
    tc_close(c);
    size_t acked, missing, closed_kept;
    char first[64] = "";
    check_db(db, rs, &acked, &missing, &closed_kept, first, sizeof first);
    size_t closed = 0;
    for (size_t i = 0; i < STREAMS; i++)
        closed += rs[i].closed;
    fprintf(stderr,
            "round %d: %zu streams, %zu acked open registrations, %zu of them missing after the "
            "kill%s%s; %zu never acked; %zu closed cleanly, %zu of those still stored\n",
            round, opened, acked, missing, missing ? ", first " : "", first, unacked, closed,
            closed_kept);
    t->acked += acked;
    t->missing += missing;
    t->closed += closed;
    t->closed_kept += closed_kept;
    unlink(lb.log);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    int rounds = argc > 1 ? atoi(argv[1]) : 5;
    if (rounds < 1 || rounds > 100) {
        fprintf(stderr, "usage: chaos_storm [ROUNDS 1..100]\n");
        return 2;
    }
    grpc_init();
    char dir[256], db[300];
    h_tmpdir(dir);
    snprintf(db, sizeof db, "%s/lb.db", dir);
    rstream *rs = calloc(STREAMS, sizeof *rs);
    totals t = {0, 0, 0, 0, 0};
    for (int r = 0; r < rounds; r++)
        storm_round(db, r, rs, &t);
    /* The last round's registrations, listed by one more restart. */
    proc lb;
    chaos_server_start(&lb, db, 0, NULL);
    t.unlisted += count_unlisted(lb.addr, rs);
    h_server_teardown(&lb, dir);
    free(rs);
    fprintf(stderr,
            "%d kills: %zu acknowledged open registrations, %zu not stored, %zu not listed "
            "after the restart; %zu backends closed cleanly, %zu of them still stored\n",
            rounds, t.acked, t.missing, t.unlisted, t.closed, t.closed_kept);
    grpc_shutdown();
    if (t.missing > 0 || t.unlisted > 0)
        chaos_fail("acknowledged registrations lost by a SIGKILL: %zu not stored, %zu not "
                   "listed after the restart",
                   t.missing, t.unlisted);
    CHAOS_CHECK(t.acked > 0);
    return 0;
}
