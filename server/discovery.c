/* discovery.c - DNS discovery with c-ares 1.18, driven from the loop thread.
 *
 * One c-ares channel per discovered service (each target may name its own
 * DNS server). The socket-state callback keeps the list of sockets c-ares
 * wants watched; discovery_process() polls them with a zero timeout and
 * hands ready ones to ares_process_fd(). Answers are only collected inside
 * the c-ares callbacks; user callbacks run afterwards, outside c-ares. */
#include "discovery.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ares.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "log.h"

#define MOD "discovery"
#define DISCOVERY_TRIES 2
#define DISCOVERY_RETRY_MAX_MS 30000
/* Addresses listed in a change log line before "...". */
#define LOG_ADDRS_MAX 8

struct sock {
    ares_socket_t fd;
    bool r, w;
};

struct entry {
    discovery *d;
    char service[DISCOVERY_NAME_MAX + 1];
    char target[DISCOVERY_TARGET_MAX + 1];
    discovery_target t;
    int64_t refresh_ms;
    discovery_cb cb;
    void *arg;

    ares_channel ch;
    struct sock *socks; /* sockets c-ares wants watched */
    size_t nsocks, capsocks;

    /* The current query round (A + AAAA). */
    bool inflight;
    int pending;               /* queries not answered yet */
    int64_t round_deadline;    /* cancel the round after this */
    bool deadline_hit;         /* we cancelled the round */
    lookaside_status rst;      /* first failure of the round, or OK */
    int rst_ares;              /* its c-ares status */
    const char *rst_type;      /* "A" or "AAAA" */
    la_addr *res;
    size_t nres, capres;
    int64_t min_ttl_s;         /* -1: no record seen */
    int64_t next_due;

    /* Last delivered state. */
    la_addr *last;
    size_t nlast, caplast;
    bool have_last;
    unsigned fails;            /* consecutive failed rounds */
    lookaside_status last_fail;
};

struct discovery {
    struct entry **e;
    size_t n, cap;
    struct pollfd *pfds; /* scratch for discovery_process */
    size_t cappfds;
    bool destroying;
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- parsing ---------------------------------------------------------- */

static bool parse_port(const char *p, size_t n, uint16_t *out)
{
    if (n == 0 || n > 5)
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    if (v == 0 || v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

static bool label_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* NULL when s[0..n) is an acceptable DNS name, else why not. */
static const char *dns_name_problem(const char *s, size_t n)
{
    if (n == 0)
        return "empty name";
    if (n > DISCOVERY_NAME_MAX)
        return "name longer than 253 bytes";
    if (s[n - 1] == '.')
        n--; /* absolute name */
    if (n == 0)
        return "empty name";
    size_t start = 0;
    bool all_digits = true;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.') {
            if (!label_char(s[i]))
                return "invalid character (allowed: A-Z a-z 0-9 - _ .)";
            if (s[i] < '0' || s[i] > '9')
                all_digits = false;
            continue;
        }
        size_t len = i - start;
        if (len == 0)
            return "empty label";
        if (len > 63)
            return "label longer than 63 bytes";
        if (s[start] == '-' || s[i - 1] == '-')
            return "label starts or ends with '-'";
        if (i == n && all_digits)
            return "last label is all digits";
        start = i + 1;
        all_digits = true;
    }
    return NULL;
}

static lookaside_status parse_authority(const char *a, size_t n, la_addr *out, char *err,
                                        size_t errlen)
{
    char buf[64];
    const char *host, *port = NULL;
    size_t portlen = 0;
    if (n >= sizeof buf) {
        seterr(err, errlen, "DNS server \"%.*s...\" is too long", 20, a);
        return LOOKASIDE_EINVAL;
    }
    memcpy(buf, a, n);
    buf[n] = '\0';
    memset(out, 0, sizeof *out);
    if (buf[0] == '[') {
        char *close = strchr(buf, ']');
        if (close == NULL) {
            seterr(err, errlen, "DNS server \"%s\": missing ']'", buf);
            return LOOKASIDE_EINVAL;
        }
        *close = '\0';
        host = buf + 1;
        if (close[1] == ':') {
            port = close + 2;
            portlen = strlen(port);
        } else if (close[1] != '\0') {
            seterr(err, errlen, "DNS server \"%.*s\": expected ':PORT' after ']'", (int)n, a);
            return LOOKASIDE_EINVAL;
        }
        if (inet_pton(AF_INET6, host, out->ip) != 1) {
            seterr(err, errlen, "DNS server \"%.*s\": \"%s\" is not an IPv6 address", (int)n, a,
                   host);
            return LOOKASIDE_EINVAL;
        }
        out->family = AF_INET6;
    } else {
        char *colon = strchr(buf, ':');
        if (colon != NULL && strchr(colon + 1, ':') != NULL) {
            seterr(err, errlen,
                   "DNS server \"%s\": an IPv6 address must be in brackets ([v6]:port)", buf);
            return LOOKASIDE_EINVAL;
        }
        if (colon != NULL) {
            *colon = '\0';
            port = colon + 1;
            portlen = strlen(port);
        }
        host = buf;
        if (inet_pton(AF_INET, host, out->ip) != 1) {
            seterr(err, errlen,
                   "DNS server \"%.*s\" must be an IP address (a.b.c.d[:port] or [v6][:port])",
                   (int)n, a);
            return LOOKASIDE_EINVAL;
        }
        out->family = AF_INET;
    }
    if (port == NULL) {
        out->port = 53;
    } else if (!parse_port(port, portlen, &out->port)) {
        seterr(err, errlen, "DNS server \"%.*s\": port must be 1..65535", (int)n, a);
        return LOOKASIDE_EINVAL;
    }
    return LOOKASIDE_OK;
}

lookaside_status discovery_parse_target(const char *target, discovery_target *out, char *err,
                                        size_t errlen)
{
    discovery_target t;
    memset(&t, 0, sizeof t);
    if (out == NULL) {
        seterr(err, errlen, "no output");
        return LOOKASIDE_EINVAL;
    }
    if (target == NULL || target[0] == '\0') {
        seterr(err, errlen, "empty target (expected dns://[SERVER[:PORT]]/NAME:PORT)");
        return LOOKASIDE_EINVAL;
    }
    size_t len = strnlen(target, DISCOVERY_TARGET_MAX + 1);
    if (len > DISCOVERY_TARGET_MAX) {
        seterr(err, errlen, "target longer than %d bytes", DISCOVERY_TARGET_MAX);
        return LOOKASIDE_EINVAL;
    }
    if (strncasecmp(target, "dns:", 4) != 0) {
        const char *sep = strstr(target, "://");
        if (sep != NULL && sep != target && (size_t)(sep - target) <= 16)
            seterr(err, errlen, "unsupported scheme \"%.*s\" (only dns: is supported)",
                   (int)(sep - target), target);
        else
            seterr(err, errlen,
                   "target \"%s\" must start with dns: (dns://[SERVER[:PORT]]/NAME:PORT)", target);
        return LOOKASIDE_EINVAL;
    }
    const char *p = target + 4;
    const char *hostport;
    if (p[0] == '/' && p[1] == '/') {
        const char *auth = p + 2;
        const char *slash = strchr(auth, '/');
        if (slash == NULL) {
            seterr(err, errlen, "target \"%s\": missing '/' after the DNS server "
                   "(dns://[SERVER[:PORT]]/NAME:PORT)", target);
            return LOOKASIDE_EINVAL;
        }
        if (slash > auth) {
            if (parse_authority(auth, (size_t)(slash - auth), &t.server, err, errlen) !=
                LOOKASIDE_OK)
                return LOOKASIDE_EINVAL;
            t.has_server = true;
        }
        hostport = slash + 1;
    } else if (p[0] == '/') {
        seterr(err, errlen, "target \"%s\": expected dns:///NAME:PORT or dns://SERVER/NAME:PORT",
               target);
        return LOOKASIDE_EINVAL;
    } else {
        hostport = p;
    }
    if (hostport[0] == '\0') {
        seterr(err, errlen, "target \"%s\": missing NAME:PORT", target);
        return LOOKASIDE_EINVAL;
    }
    if (hostport[0] == '[') {
        seterr(err, errlen, "target \"%s\": NAME must be a DNS name, not an IP address", target);
        return LOOKASIDE_EINVAL;
    }
    const char *colon = strrchr(hostport, ':');
    if (colon == NULL) {
        seterr(err, errlen, "target \"%s\": missing port (NAME:PORT)", target);
        return LOOKASIDE_EINVAL;
    }
    size_t namelen = (size_t)(colon - hostport);
    if (namelen > DISCOVERY_NAME_MAX) {
        seterr(err, errlen, "target \"%.40s...\": name longer than %d bytes", target,
               DISCOVERY_NAME_MAX);
        return LOOKASIDE_EINVAL;
    }
    memcpy(t.name, hostport, namelen);
    t.name[namelen] = '\0';
    {
        uint8_t tmp[16];
        if (inet_pton(AF_INET, t.name, tmp) == 1) {
            seterr(err, errlen, "target \"%s\": NAME must be a DNS name, not an IP address",
                   target);
            return LOOKASIDE_EINVAL;
        }
    }
    const char *why = dns_name_problem(t.name, namelen);
    if (why != NULL) {
        seterr(err, errlen, "target \"%s\": invalid DNS name \"%s\": %s", target, t.name, why);
        return LOOKASIDE_EINVAL;
    }
    if (!parse_port(colon + 1, strlen(colon + 1), &t.port)) {
        seterr(err, errlen, "target \"%s\": port \"%s\" must be 1..65535", target, colon + 1);
        return LOOKASIDE_EINVAL;
    }
    *out = t;
    return LOOKASIDE_OK;
}

lookaside_status discovery_parse_spec(const char *spec, char *service, size_t slen, char *target,
                                      size_t tlen, char *err, size_t errlen)
{
    if (spec == NULL || spec[0] == '\0') {
        seterr(err, errlen,
               "empty discovery spec (expected SERVICE=dns://[SERVER[:PORT]]/NAME:PORT)");
        return LOOKASIDE_EINVAL;
    }
    const char *eq = strchr(spec, '=');
    if (eq == NULL) {
        seterr(err, errlen,
               "discovery spec \"%.80s\": expected SERVICE=dns://[SERVER[:PORT]]/NAME:PORT", spec);
        return LOOKASIDE_EINVAL;
    }
    size_t sl = (size_t)(eq - spec);
    char svc[DISCOVERY_NAME_MAX + 1];
    if (sl == 0) {
        seterr(err, errlen, "discovery spec \"%.80s\": empty service name", spec);
        return LOOKASIDE_EINVAL;
    }
    if (sl > DISCOVERY_NAME_MAX) {
        seterr(err, errlen, "discovery spec: service name longer than %d bytes",
               DISCOVERY_NAME_MAX);
        return LOOKASIDE_EINVAL;
    }
    memcpy(svc, spec, sl);
    svc[sl] = '\0';
    if (!name_valid(svc)) {
        seterr(err, errlen, "discovery spec: invalid service name \"%s\" (1..253 bytes of "
               "[A-Za-z0-9._-], starting with a letter or digit)", svc);
        return LOOKASIDE_EINVAL;
    }
    discovery_target t;
    if (discovery_parse_target(eq + 1, &t, err, errlen) != LOOKASIDE_OK)
        return LOOKASIDE_EINVAL;
    size_t tl = strlen(eq + 1);
    if (service == NULL || slen <= sl || target == NULL || tlen <= tl) {
        seterr(err, errlen, "discovery spec: output buffer too small");
        return LOOKASIDE_EINVAL;
    }
    memcpy(service, svc, sl + 1);
    memcpy(target, eq + 1, tl + 1);
    return LOOKASIDE_OK;
}

/* ---- address sets ----------------------------------------------------- */

static int addr_cmp(const la_addr *a, const la_addr *b)
{
    int ra = a->family == AF_INET ? 0 : 1, rb = b->family == AF_INET ? 0 : 1;
    if (ra != rb)
        return ra - rb;
    int c = memcmp(a->ip, b->ip, a->family == AF_INET ? 4 : 16);
    if (c != 0)
        return c;
    return (int)a->port - (int)b->port;
}

static int addr_cmp_q(const void *a, const void *b) { return addr_cmp(a, b); }

size_t discovery_addrs_normalize(la_addr *addrs, size_t n)
{
    if (addrs == NULL || n < 2)
        return addrs == NULL ? 0 : n;
    qsort(addrs, n, sizeof *addrs, addr_cmp_q);
    size_t w = 1;
    for (size_t i = 1; i < n; i++)
        if (addr_cmp(&addrs[w - 1], &addrs[i]) != 0)
            addrs[w++] = addrs[i];
    return w;
}

/* Counts members of b not in a (added) and of a not in b (removed); both
 * sorted and deduplicated. */
static void set_diff(const la_addr *a, size_t na, const la_addr *b, size_t nb, size_t *added,
                     size_t *removed)
{
    size_t i = 0, j = 0;
    *added = *removed = 0;
    while (i < na || j < nb) {
        if (i == na) {
            (*added)++;
            j++;
        } else if (j == nb) {
            (*removed)++;
            i++;
        } else {
            int c = addr_cmp(&a[i], &b[j]);
            if (c == 0) {
                i++;
                j++;
            } else if (c < 0) {
                (*removed)++;
                i++;
            } else {
                (*added)++;
                j++;
            }
        }
    }
}

static void format_set(const la_addr *a, size_t n, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && i < LOG_ADDRS_MAX; i++) {
        char s[LA_ADDR_STRLEN];
        addr_format(&a[i], s, sizeof s);
        int w = snprintf(buf + off, len - off, "%s%s", i ? " " : "", s);
        if (w < 0 || (size_t)w >= len - off)
            return;
        off += (size_t)w;
    }
    if (n > LOG_ADDRS_MAX)
        snprintf(buf + off, len - off, " ...");
}

/* ---- c-ares glue ------------------------------------------------------ */

static void sock_cb(void *data, ares_socket_t fd, int readable, int writable)
{
    struct entry *e = data;
    size_t i;
    for (i = 0; i < e->nsocks; i++)
        if (e->socks[i].fd == fd)
            break;
    if (!readable && !writable) {
        if (i < e->nsocks)
            e->socks[i] = e->socks[--e->nsocks];
        return;
    }
    if (i == e->nsocks) {
        if (e->nsocks == e->capsocks) {
            size_t cap = e->capsocks ? e->capsocks * 2 : 4;
            struct sock *s = realloc(e->socks, cap * sizeof *s);
            if (s == NULL) {
                /* The round will hit its deadline and report a timeout. */
                log_error(MOD, "service %s: out of memory tracking a DNS socket", e->service);
                return;
            }
            e->socks = s;
            e->capsocks = cap;
        }
        e->socks[e->nsocks++].fd = fd;
    }
    e->socks[i].r = readable != 0;
    e->socks[i].w = writable != 0;
}

/* A growable address array (the result of one round). */
typedef struct addr_vec {
    la_addr **a;
    size_t *n, *cap;
} addr_vec;

static bool res_push(addr_vec v, int family, const void *ip, uint16_t port)
{
    if (*v.n == *v.cap) {
        size_t cap = *v.cap ? *v.cap * 2 : 8;
        la_addr *r = realloc(*v.a, cap * sizeof *r);
        if (r == NULL)
            return false;
        *v.a = r;
        *v.cap = cap;
    }
    la_addr *a = &(*v.a)[(*v.n)++];
    memset(a, 0, sizeof *a);
    a->family = family;
    memcpy(a->ip, ip, family == AF_INET ? 4 : 16);
    a->port = port;
    return true;
}

static void note_ttl(int64_t *min_ttl_s, int ttl)
{
    int64_t t = ttl < 0 ? 0 : ttl;
    if (*min_ttl_s < 0 || t < *min_ttl_s)
        *min_ttl_s = t;
}

static const uint8_t zero16[16];

int discovery_parse_answer(int family, const unsigned char *abuf, int alen, uint16_t port,
                           la_addr **addrs, size_t *n_addrs, size_t *cap_addrs,
                           int64_t *min_ttl_s)
{
    addr_vec v = {addrs, n_addrs, cap_addrs};
    /* Every address record takes at least 11 bytes of header plus its
     * address, so this bounds the number of records in abuf. */
    int cap = alen / 15 + 1;
    int n = cap;
    int rc;
    if (family == AF_INET) {
        struct ares_addrttl *tt = calloc((size_t)cap, sizeof *tt);
        if (tt == NULL)
            return ARES_ENOMEM;
        rc = ares_parse_a_reply(abuf, alen, NULL, tt, &n);
        for (int i = 0; rc == ARES_SUCCESS && i < n; i++) {
            if (memcmp(&tt[i].ipaddr, zero16, 4) == 0)
                continue; /* 0.0.0.0 is no backend */
            if (!res_push(v, AF_INET, &tt[i].ipaddr, port))
                rc = ARES_ENOMEM;
            note_ttl(min_ttl_s, tt[i].ttl);
        }
        free(tt);
    } else {
        struct ares_addr6ttl *tt = calloc((size_t)cap, sizeof *tt);
        if (tt == NULL)
            return ARES_ENOMEM;
        rc = ares_parse_aaaa_reply(abuf, alen, NULL, tt, &n);
        for (int i = 0; rc == ARES_SUCCESS && i < n; i++) {
            if (memcmp(&tt[i].ip6addr, zero16, 16) == 0)
                continue; /* :: is no backend */
            if (!res_push(v, AF_INET6, &tt[i].ip6addr, port))
                rc = ARES_ENOMEM;
            note_ttl(min_ttl_s, tt[i].ttl);
        }
        free(tt);
    }
    return rc;
}

static void on_answer(struct entry *e, int family, int status, unsigned char *abuf, int alen)
{
    if (e->d->destroying || status == ARES_EDESTRUCTION)
        return;
    e->pending--;
    if (status == ARES_SUCCESS)
        status = discovery_parse_answer(family, abuf, alen, e->t.port, &e->res, &e->nres,
                                        &e->capres, &e->min_ttl_s);
    lookaside_status st;
    switch (status) {
    case ARES_SUCCESS:
    case ARES_ENODATA:   /* NODATA, or an answer without records of this type */
    case ARES_ENOTFOUND: /* NXDOMAIN */
        st = LOOKASIDE_OK;
        break;
    case ARES_ETIMEOUT:
    case ARES_ECANCELLED: /* only discovery cancels, at the round deadline */
        st = LOOKASIDE_ETIMEOUT;
        break;
    case ARES_ENOMEM:
        st = LOOKASIDE_ENOMEM;
        break;
    default: /* SERVFAIL, REFUSED, NOTIMP, FORMERR, ECONNREFUSED, bad response... */
        st = LOOKASIDE_EUNAVAIL;
        break;
    }
    if (st != LOOKASIDE_OK && e->rst == LOOKASIDE_OK) {
        e->rst = st;
        e->rst_ares = status;
        e->rst_type = family == AF_INET ? "A" : "AAAA";
    }
}

static void on_a(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    (void)timeouts;
    on_answer(arg, AF_INET, status, abuf, alen);
}

static void on_aaaa(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    (void)timeouts;
    on_answer(arg, AF_INET6, status, abuf, alen);
}

/* ---- rounds ----------------------------------------------------------- */

static void start_round(struct entry *e, int64_t now)
{
    e->inflight = true;
    e->pending = 2;
    e->deadline_hit = false;
    e->rst = LOOKASIDE_OK;
    e->rst_ares = ARES_SUCCESS;
    e->rst_type = "";
    e->nres = 0;
    e->min_ttl_s = -1;
    e->round_deadline = now + DISCOVERY_ROUND_TIMEOUT_MS;
    /* Either may complete (fail) synchronously. */
    ares_query(e->ch, e->t.name, ns_c_in, ns_t_a, on_a, e);
    ares_query(e->ch, e->t.name, ns_c_in, ns_t_aaaa, on_aaaa, e);
}

static void drive(discovery *d, struct entry *e, int64_t now)
{
    size_t n = e->nsocks;
    if (n > d->cappfds) {
        struct pollfd *p = realloc(d->pfds, n * sizeof *p);
        if (p == NULL) {
            n = d->cappfds; /* poll what fits; the rest waits for the next call */
        } else {
            d->pfds = p;
            d->cappfds = n;
        }
    }
    /* Copy: c-ares may change e->socks while processing. */
    for (size_t i = 0; i < n; i++) {
        d->pfds[i].fd = e->socks[i].fd;
        d->pfds[i].events = (short)((e->socks[i].r ? POLLIN : 0) | (e->socks[i].w ? POLLOUT : 0));
        d->pfds[i].revents = 0;
    }
    int rc = n ? poll(d->pfds, (nfds_t)n, 0) : 0;
    if (rc > 0) {
        for (size_t i = 0; i < n; i++) {
            short re = d->pfds[i].revents;
            if (re == 0 || (re & POLLNVAL))
                continue;
            ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;
            if ((d->pfds[i].events & POLLIN) && (re & (POLLIN | POLLERR | POLLHUP)))
                rfd = d->pfds[i].fd;
            if ((d->pfds[i].events & POLLOUT) && (re & (POLLOUT | POLLERR | POLLHUP)))
                wfd = d->pfds[i].fd;
            if (rfd != ARES_SOCKET_BAD || wfd != ARES_SOCKET_BAD)
                ares_process_fd(e->ch, rfd, wfd);
        }
    }
    /* c-ares' own per-try timeouts and retries. */
    ares_process_fd(e->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    if (e->pending > 0 && now >= e->round_deadline) {
        e->deadline_hit = true;
        ares_cancel(e->ch); /* answers the pending queries with ARES_ECANCELLED */
    }
}

static int64_t retry_delay(const struct entry *e)
{
    int64_t delay = DISCOVERY_MIN_TTL_REFRESH_MS;
    for (unsigned i = 1; i < e->fails && delay < DISCOVERY_RETRY_MAX_MS; i++)
        delay *= 2;
    if (delay > DISCOVERY_RETRY_MAX_MS)
        delay = DISCOVERY_RETRY_MAX_MS;
    return delay < e->refresh_ms ? delay : e->refresh_ms;
}

static void finish_round(struct entry *e, int64_t now)
{
    e->inflight = false;
    if (e->rst != LOOKASIDE_OK) {
        e->fails++;
        e->next_due = now + retry_delay(e);
        const char *why = e->deadline_hit ? "no answer within the round deadline"
                                          : ares_strerror(e->rst_ares);
        if (e->fails == 1 || e->rst != e->last_fail) {
            char kept[64];
            if (e->have_last)
                snprintf(kept, sizeof kept, "keeping the last known set (%zu address%s)",
                         e->nlast, e->nlast == 1 ? "" : "es");
            else
                snprintf(kept, sizeof kept, "no set known yet");
            log_warn(MOD, "service %s: %s query for %s failed (%s): %s; %s, retrying in %lld ms",
                     e->service, e->rst_type, e->target, lookaside_status_str(e->rst), why, kept,
                     (long long)(e->next_due - now));
        } else {
            log_debug(MOD, "service %s: %s query failed again (%u times): %s", e->service,
                      e->rst_type, e->fails, why);
        }
        e->last_fail = e->rst;
        e->cb(e->arg, e->service, e->rst, NULL, 0);
        return;
    }

    size_t n = discovery_addrs_normalize(e->res, e->nres);
    int64_t interval = e->refresh_ms;
    if (n > 0 && e->min_ttl_s >= 0) {
        int64_t ttl_ms = e->min_ttl_s * 1000;
        int64_t by_ttl =
            ttl_ms > DISCOVERY_MIN_TTL_REFRESH_MS ? ttl_ms : DISCOVERY_MIN_TTL_REFRESH_MS;
        if (by_ttl < interval)
            interval = by_ttl;
    }
    e->next_due = now + interval;

    size_t added, removed;
    set_diff(e->last, e->have_last ? e->nlast : 0, e->res, n, &added, &removed);
    if (!e->have_last || added || removed || e->fails) {
        char list[LOG_ADDRS_MAX * LA_ADDR_STRLEN + 8];
        format_set(e->res, n, list, sizeof list);
        log_info(MOD, "service %s: %s -> %zu address%s (+%zu -%zu)%s%s%s", e->service, e->target,
                 n, n == 1 ? "" : "es", added, removed, n ? ": " : "", list,
                 e->fails ? " (DNS recovered)" : "");
    }
    e->fails = 0;
    e->last_fail = LOOKASIDE_OK;

    /* The fresh set becomes the last one; the old buffer is reused. */
    la_addr *buf = e->last;
    size_t cap = e->caplast;
    e->last = e->res;
    e->caplast = e->capres;
    e->nlast = n;
    e->have_last = true;
    e->res = buf;
    e->capres = cap;
    e->nres = 0;
    e->cb(e->arg, e->service, LOOKASIDE_OK, e->last, e->nlast);
}

/* ---- public ----------------------------------------------------------- */

lookaside_status discovery_create(discovery **out)
{
    if (out == NULL)
        return LOOKASIDE_EINVAL;
    *out = NULL;
    discovery *d = calloc(1, sizeof *d);
    if (d == NULL)
        return LOOKASIDE_ENOMEM;
    /* Reference-counted in c-ares; gRPC holds its own reference. */
    int rc = ares_library_init(ARES_LIB_INIT_ALL);
    if (rc != ARES_SUCCESS) {
        log_error(MOD, "ares_library_init: %s", ares_strerror(rc));
        free(d);
        return rc == ARES_ENOMEM ? LOOKASIDE_ENOMEM : LOOKASIDE_EIO;
    }
    *out = d;
    return LOOKASIDE_OK;
}

static void entry_free(struct entry *e)
{
    if (e == NULL)
        return;
    if (e->ch != NULL)
        ares_destroy(e->ch); /* pending queries end with ARES_EDESTRUCTION, ignored */
    free(e->socks);
    free(e->res);
    free(e->last);
    free(e);
}

lookaside_status discovery_add(discovery *d, const char *service, const char *target,
                               int64_t refresh_ms, discovery_cb cb, void *arg, char *err,
                               size_t errlen)
{
    if (d == NULL || d->destroying) {
        seterr(err, errlen, "no discovery");
        return LOOKASIDE_EINVAL;
    }
    if (service == NULL || !name_valid(service)) {
        seterr(err, errlen, "invalid service name \"%.80s\"", service ? service : "(null)");
        return LOOKASIDE_EINVAL;
    }
    if (cb == NULL) {
        seterr(err, errlen, "service %s: no callback", service);
        return LOOKASIDE_EINVAL;
    }
    if (refresh_ms < DISCOVERY_REFRESH_MIN_MS || refresh_ms > DISCOVERY_REFRESH_MAX_MS) {
        seterr(err, errlen, "service %s: refresh interval %lld ms out of range %d..%d", service,
               (long long)refresh_ms, DISCOVERY_REFRESH_MIN_MS, DISCOVERY_REFRESH_MAX_MS);
        return LOOKASIDE_EINVAL;
    }
    discovery_target t;
    if (discovery_parse_target(target, &t, err, errlen) != LOOKASIDE_OK)
        return LOOKASIDE_EINVAL;
    for (size_t i = 0; i < d->n; i++) {
        if (strcmp(d->e[i]->service, service) == 0) {
            seterr(err, errlen, "service %s: already discovered from %s", service,
                   d->e[i]->target);
            return LOOKASIDE_EEXIST;
        }
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        struct entry **ne = realloc(d->e, cap * sizeof *ne);
        if (ne == NULL) {
            seterr(err, errlen, "out of memory");
            return LOOKASIDE_ENOMEM;
        }
        d->e = ne;
        d->cap = cap;
    }
    struct entry *e = calloc(1, sizeof *e);
    if (e == NULL) {
        seterr(err, errlen, "out of memory");
        return LOOKASIDE_ENOMEM;
    }
    e->d = d;
    snprintf(e->service, sizeof e->service, "%s", service);
    snprintf(e->target, sizeof e->target, "%s", target);
    e->t = t;
    e->refresh_ms = refresh_ms;
    e->cb = cb;
    e->arg = arg;
    e->next_due = 0; /* at the first discovery_process() */
    e->min_ttl_s = -1;

    struct ares_options o;
    memset(&o, 0, sizeof o);
    o.sock_state_cb = sock_cb;
    o.sock_state_cb_data = e;
    o.timeout = DISCOVERY_TRY_TIMEOUT_MS;
    o.tries = DISCOVERY_TRIES;
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
    if (t.has_server) {
        /* One server, so nothing to fail over to: report SERVFAIL/REFUSED
         * as such at once (by default c-ares retries them and then reports
         * "could not contact DNS servers"). With the system resolver the
         * default stays, so another configured server gets a chance. */
        o.flags = ARES_FLAG_NOCHECKRESP;
        mask |= ARES_OPT_FLAGS;
    }
    int rc = ares_init_options(&e->ch, &o, mask);
    if (rc != ARES_SUCCESS) {
        e->ch = NULL;
        seterr(err, errlen, "service %s: c-ares init failed: %s", service, ares_strerror(rc));
        entry_free(e);
        return rc == ARES_ENOMEM ? LOOKASIDE_ENOMEM : LOOKASIDE_EIO;
    }
    if (t.has_server) {
        struct ares_addr_port_node srv;
        memset(&srv, 0, sizeof srv);
        srv.family = t.server.family;
        if (t.server.family == AF_INET)
            memcpy(&srv.addr.addr4, t.server.ip, 4);
        else
            memcpy(&srv.addr.addr6, t.server.ip, 16);
        srv.udp_port = t.server.port;
        srv.tcp_port = t.server.port;
        rc = ares_set_servers_ports(e->ch, &srv);
        if (rc != ARES_SUCCESS) {
            seterr(err, errlen, "service %s: c-ares set server failed: %s", service,
                   ares_strerror(rc));
            entry_free(e);
            return rc == ARES_ENOMEM ? LOOKASIDE_ENOMEM : LOOKASIDE_EIO;
        }
    }
    d->e[d->n++] = e;
    log_info(MOD, "service %s: discovering %s every %lld ms", service, target,
             (long long)refresh_ms);
    return LOOKASIDE_OK;
}

int64_t discovery_next_deadline_ms(discovery *d, int64_t now_ms)
{
    if (d == NULL || d->destroying)
        return INT64_MAX;
    int64_t best = INT64_MAX;
    for (size_t i = 0; i < d->n; i++) {
        const struct entry *e = d->e[i];
        int64_t at;
        if (e->inflight)
            at = e->pending == 0 ? now_ms : now_ms + DISCOVERY_POLL_MS;
        else
            at = e->next_due < now_ms ? now_ms : e->next_due;
        if (at < best)
            best = at;
    }
    return best;
}

void discovery_process(discovery *d, int64_t now_ms)
{
    if (d == NULL || d->destroying)
        return;
    /* Index loop: a callback may add entries (d->e may move; entries don't). */
    for (size_t i = 0; i < d->n; i++) {
        struct entry *e = d->e[i];
        if (e->inflight && e->pending > 0)
            drive(d, e, now_ms);
        if (!e->inflight && now_ms >= e->next_due)
            start_round(e, now_ms);
        if (e->inflight && e->pending == 0)
            finish_round(e, now_ms);
    }
}

void discovery_destroy(discovery *d)
{
    if (d == NULL)
        return;
    d->destroying = true;
    for (size_t i = 0; i < d->n; i++)
        entry_free(d->e[i]);
    free(d->e);
    free(d->pfds);
    free(d);
    ares_library_cleanup();
}
