/* disc_test.h - helpers shared by the discovery tests: a callback recorder
 * and a bounded driver loop that plays the server's loop thread. */
#ifndef DISC_TEST_H
#define DISC_TEST_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "discovery.h"

#define REC_MAX 64

/* What the callbacks of one service delivered. */
struct rec {
    int calls, ok_calls, fail_calls;
    lookaside_status st;          /* of the last call */
    la_addr addrs[REC_MAX];       /* last OK set */
    size_t n;
    char set[REC_MAX * LA_ADDR_STRLEN]; /* last OK set as text, space separated */
    int64_t first_ms, last_ms;    /* times of the first and last call */
    int64_t ok_ms[16];            /* times of the first 16 OK calls */
    char service[256];
};

/* IPv4 before IPv6, then bytes, then port (the documented order). */
static inline int rec_addr_cmp(const la_addr *a, const la_addr *b)
{
    if (a->family != b->family)
        return a->family == AF_INET ? -1 : 1;
    int c = memcmp(a->ip, b->ip, a->family == AF_INET ? 4 : 16);
    return c != 0 ? c : (int)a->port - (int)b->port;
}

static inline void rec_cb(void *arg, const char *service, lookaside_status st,
                          const la_addr *addrs, size_t n)
{
    struct rec *r = arg;
    int64_t now = clock_mono_ms();
    if (r->calls == 0)
        r->first_ms = now;
    r->last_ms = now;
    r->calls++;
    r->st = st;
    snprintf(r->service, sizeof r->service, "%s", service);
    if (st != LOOKASIDE_OK) {
        r->fail_calls++;
        if (addrs != NULL || n != 0)
            fail_msg("failure callback with addresses");
        return;
    }
    if (r->ok_calls < 16)
        r->ok_ms[r->ok_calls] = now;
    r->ok_calls++;
    if (n > REC_MAX)
        fail_msg("too many addresses: %zu", n);
    if (n > 0 && addrs == NULL)
        fail_msg("NULL addresses with n=%zu", n);
    r->n = n;
    r->set[0] = '\0';
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        r->addrs[i] = addrs[i];
        /* The set arrives sorted and without duplicates. */
        if (i > 0 && rec_addr_cmp(&addrs[i - 1], &addrs[i]) >= 0)
            fail_msg("set not sorted/unique at %zu", i);
        char s[LA_ADDR_STRLEN];
        addr_format(&addrs[i], s, sizeof s);
        off += (size_t)snprintf(r->set + off, sizeof r->set - off, "%s%s", i ? " " : "", s);
    }
}

/* Runs one "loop iteration" hook while driving (e.g. a fake DNS server). */
typedef void (*drive_hook)(void *arg);
typedef int (*drive_pred)(void *arg);

/* Plays the server loop: wait until discovery_next_deadline_ms (at most
 * 20 ms so pred and hook run often), then discovery_process. Stops when
 * pred(arg) is true, after max_ms, or after a bounded number of iterations.
 * Returns 1 when pred became true. Also checks the deadline contract. */
static inline int drive_until(discovery *d, drive_pred pred, void *parg, int64_t max_ms,
                              drive_hook hook, void *harg)
{
    int64_t start = clock_mono_ms();
    for (long iter = 0; iter < 200000; iter++) {
        if (pred != NULL && pred(parg))
            return 1;
        int64_t now = clock_mono_ms();
        if (now - start >= max_ms)
            break;
        int64_t dl = discovery_next_deadline_ms(d, now);
        if (dl < now)
            fail_msg("deadline %lld in the past (now %lld)", (long long)dl, (long long)now);
        int64_t wait = dl - now;
        if (wait > 20)
            wait = 20;
        if (hook != NULL && wait > 2)
            wait = 2;
        if (wait > 0)
            poll(NULL, 0, (int)wait);
        if (hook != NULL)
            hook(harg);
        discovery_process(d, clock_mono_ms());
    }
    return pred != NULL && pred(parg);
}

static inline int pred_calls1(void *arg) { return ((struct rec *)arg)->calls >= 1; }
static inline int pred_calls2(void *arg) { return ((struct rec *)arg)->calls >= 2; }
static inline int pred_ok2(void *arg) { return ((struct rec *)arg)->ok_calls >= 2; }
static inline int pred_ok3(void *arg) { return ((struct rec *)arg)->ok_calls >= 3; }

/* A UDP port on 127.0.0.1 that was free a moment ago (bind to 0, close). */
static inline int free_udp_port(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

#endif
