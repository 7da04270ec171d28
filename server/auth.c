/* auth.c - policy file, peer identities, permission checks (see auth.h). */
#include "auth.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <protobuf-c/protobuf-c.h>

#include "log.h"
#include "util.h"

#define MAX_POLICY_LINES 100000

typedef enum { P_ID, P_TOKEN, P_ANON } principal_kind;

/* One policy line: a principal and what it may do. */
typedef struct grant {
    principal_kind kind;
    char name[AUTH_ID_MAX];      /* identity, or the token's label */
    unsigned char sha[32];       /* token hash */
    bool admin, register_any, watch_all, report_all;
    char **watch, **report;      /* service names */
    size_t n_watch, n_report;
    struct grant *next;
} grant;

typedef struct policy {
    grant *head;
    bool open;                   /* anonymous holds every permission */
    bool open_report;            /* ... including report */
} policy;

struct auth {
    pthread_rwlock_t lock;
    auth_mode mode;
    char *policy_file;
    char *token_file;
    policy *pol;
};

/* ------------------------------------------------------------------ hashing */

static void sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned int n = 32;
    if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1)
        memset(out, 0, 32);   /* matches no grant: parse_hex32 refuses an all-zero hash */
}

void auth_token_hash_hex(const char *token, char out[65])
{
    unsigned char h[32];
    sha256(token, strlen(token), h);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

static bool parse_hex32(const char *s, unsigned char out[32])
{
    if (strncmp(s, "sha256:", 7) == 0)
        s += 7;
    if (strlen(s) != 64)
        return false;
    for (int i = 0; i < 32; i++) {
        unsigned v;
        if (!isxdigit((unsigned char)s[2 * i]) || !isxdigit((unsigned char)s[2 * i + 1]) ||
            sscanf(s + 2 * i, "%2x", &v) != 1)
            return false;
        out[i] = (unsigned char)v;
    }
    static const unsigned char zero[32];
    return memcmp(out, zero, 32) != 0;
}

/* ------------------------------------------------------------------- policy */

static void grant_free(grant *g)
{
    for (size_t i = 0; i < g->n_watch; i++)
        free(g->watch[i]);
    for (size_t i = 0; i < g->n_report; i++)
        free(g->report[i]);
    free(g->watch);
    free(g->report);
    free(g);
}

static void policy_free(policy *p)
{
    if (p == NULL)
        return;
    for (grant *g = p->head, *next; g; g = next) {
        next = g->next;
        grant_free(g);
    }
    free(p);
}

static bool list_add(char ***list, size_t *n, const char *s)
{
    char **nl = realloc(*list, (*n + 1) * sizeof *nl);
    if (nl == NULL)
        return false;
    *list = nl;
    if ((nl[*n] = strdup(s)) == NULL)
        return false;
    (*n)++;
    return true;
}

/* One permission word into g. False: unknown word or bad service name. */
static bool grant_add_perm(grant *g, const char *w)
{
    if (strcmp(w, "admin") == 0)
        return (g->admin = true);
    if (strcmp(w, "register-any") == 0)
        return (g->register_any = true);
    bool watch = strncmp(w, "watch:", 6) == 0, report = strncmp(w, "report:", 7) == 0;
    if (!watch && !report)
        return false;
    const char *svc = w + (watch ? 6 : 7);
    if (strcmp(svc, "*") == 0) {
        if (watch)
            g->watch_all = true;
        else
            g->report_all = true;
        return true;
    }
    if (!name_valid(svc))
        return false;
    return watch ? list_add(&g->watch, &g->n_watch, svc) : list_add(&g->report, &g->n_report, svc);
}

static bool identity_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= AUTH_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

/* Parses one non-comment policy line (already split into words). */
static grant *parse_policy_line(char **w, int nw, const char **why)
{
    grant *g = calloc(1, sizeof *g);
    if (g == NULL) {
        *why = "out of memory";
        return NULL;
    }
    int first_perm;
    if (strcmp(w[0], "id") == 0 && nw >= 3 && identity_valid(w[1])) {
        g->kind = P_ID;
        snprintf(g->name, sizeof g->name, "%s", w[1]);
        first_perm = 2;
    } else if (strcmp(w[0], "token") == 0 && nw >= 4 && identity_valid(w[1])) {
        g->kind = P_TOKEN;
        snprintf(g->name, sizeof g->name, "%s", w[1]);
        if (!parse_hex32(w[2], g->sha)) {
            *why = "token: want the SHA-256 of the token as 64 hex digits (sha256:HEX)";
            grant_free(g);
            return NULL;
        }
        first_perm = 3;
    } else if (strcmp(w[0], "anonymous") == 0 && nw >= 2) {
        g->kind = P_ANON;
        first_perm = 1;
    } else {
        *why = "want \"id IDENTITY PERM...\", \"token LABEL SHA256 PERM...\" or "
               "\"anonymous PERM...\"";
        grant_free(g);
        return NULL;
    }
    for (int i = first_perm; i < nw; i++)
        if (!grant_add_perm(g, w[i])) {
            *why = "unknown permission (admin, register-any, watch:SERVICE|*, report:SERVICE|*)";
            grant_free(g);
            return NULL;
        }
    return g;
}

/* Reads lines of whitespace-separated words; calls fn for each non-empty,
 * non-comment line. '#' starts a comment anywhere when inline_comments, else
 * only at the start of a line (the token file: a credential may hold '#'). */
static lookaside_status read_words(const char *path, policy *p,
                                   grant *(*fn)(char **w, int nw, const char **why),
                                   bool inline_comments, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open", path);
        return LOOKASIDE_EIO;
    }
    char line[4096];
    int lineno = 0;
    lookaside_status st = LOOKASIDE_OK;
    while (fgets(line, sizeof line, f) != NULL) {
        if (++lineno > MAX_POLICY_LINES) {
            snprintf(err, errlen, "%s: more than %d lines", path, MAX_POLICY_LINES);
            st = LOOKASIDE_ELIMIT;
            break;
        }
        if (strchr(line, '\n') == NULL && !feof(f)) {
            snprintf(err, errlen, "%s:%d: line too long", path, lineno);
            st = LOOKASIDE_EINVAL;
            break;
        }
        char *hash = inline_comments ? strchr(line, '#') : line[0] == '#' ? line : NULL;
        if (hash)
            *hash = '\0';
        char *w[64];
        int nw = 0;
        char *save = NULL, *t = strtok_r(line, " \t\r\n", &save);
        for (; t && nw < 64; t = strtok_r(NULL, " \t\r\n", &save))
            w[nw++] = t;
        if (t != NULL) {
            snprintf(err, errlen, "%s:%d: more than 64 words", path, lineno);
            st = LOOKASIDE_EINVAL;
            break;
        }
        if (nw == 0)
            continue;
        const char *why = "bad line";
        grant *g = fn(w, nw, &why);
        if (g == NULL) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
            st = LOOKASIDE_EINVAL;
            break;
        }
        g->next = p->head;
        p->head = g;
    }
    fclose(f);
    return st;
}

/* The older --report-token-file format: "SERVICE CREDENTIAL". */
static grant *parse_token_line(char **w, int nw, const char **why)
{
    if (nw != 2 || (strcmp(w[0], "*") != 0 && !name_valid(w[0])) || strlen(w[1]) > 256) {
        *why = "want \"SERVICE CREDENTIAL\"";
        return NULL;
    }
    grant *g = calloc(1, sizeof *g);
    if (g == NULL) {
        *why = "out of memory";
        return NULL;
    }
    g->kind = P_TOKEN;
    snprintf(g->name, sizeof g->name, "report-credential:%s", w[0]);
    sha256(w[1], strlen(w[1]), g->sha);
    /* Keep the secret out of memory as soon as it is hashed. */
    OPENSSL_cleanse(w[1], strlen(w[1]));
    char perm[300];
    snprintf(perm, sizeof perm, "report:%s", w[0]);
    if (!grant_add_perm(g, perm)) {
        *why = "out of memory";
        grant_free(g);
        return NULL;
    }
    return g;
}

static lookaside_status policy_load(const auth *a, policy **out, char *err, size_t errlen)
{
    policy *p = calloc(1, sizeof *p);
    if (p == NULL)
        return LOOKASIDE_ENOMEM;
    lookaside_status st = LOOKASIDE_OK;
    if (a->policy_file)
        st = read_words(a->policy_file, p, parse_policy_line, true, err, errlen);
    if (st == LOOKASIDE_OK && a->token_file)
        st = read_words(a->token_file, p, parse_token_line, false, err, errlen);
    if (st != LOOKASIDE_OK) {
        policy_free(p);
        return st;
    }
    p->open = a->policy_file == NULL && a->mode != AUTH_MODE_TLS;
    p->open_report = p->open && a->token_file == NULL;
    *out = p;
    return LOOKASIDE_OK;
}

lookaside_status auth_create(auth_mode mode, const char *policy_file,
                             const char *report_token_file, auth **out, char *err, size_t errlen)
{
    if (mode == AUTH_MODE_TLS && policy_file == NULL) {
        snprintf(err, errlen, "with TLS a --policy-file is required (nothing is granted by "
                              "default to peers on the network)");
        return LOOKASIDE_EINVAL;
    }
    auth *a = calloc(1, sizeof *a);
    if (a == NULL)
        return LOOKASIDE_ENOMEM;
    a->mode = mode;
    pthread_rwlock_init(&a->lock, NULL);
    if ((policy_file && (a->policy_file = strdup(policy_file)) == NULL) ||
        (report_token_file && (a->token_file = strdup(report_token_file)) == NULL)) {
        auth_destroy(a);
        return LOOKASIDE_ENOMEM;
    }
    lookaside_status st = policy_load(a, &a->pol, err, errlen);
    if (st != LOOKASIDE_OK) {
        auth_destroy(a);
        return st;
    }
    *out = a;
    return LOOKASIDE_OK;
}

lookaside_status auth_reload(auth *a, char *err, size_t errlen)
{
    policy *p = NULL;
    lookaside_status st = policy_load(a, &p, err, errlen);
    if (st != LOOKASIDE_OK)
        return st;
    pthread_rwlock_wrlock(&a->lock);
    policy *old = a->pol;
    a->pol = p;
    pthread_rwlock_unlock(&a->lock);
    policy_free(old);
    return LOOKASIDE_OK;
}

void auth_destroy(auth *a)
{
    if (a == NULL)
        return;
    policy_free(a->pol);
    free(a->policy_file);
    free(a->token_file);
    pthread_rwlock_destroy(&a->lock);
    free(a);
}

auth_mode auth_get_mode(const auth *a) { return a->mode; }

/* ------------------------------------------------------------------ methods */

auth_perm auth_method_perm(const char *path)
{
    static const struct {
        const char *path;
        auth_perm perm;
    } table[] = {
        {"/lookaside.v1.Balancer/Watch", AUTH_PERM_WATCH},
        {"/lookaside.v1.Balancer/GetServerList", AUTH_PERM_WATCH},
        {"/lookaside.v1.LoadReporter/Report", AUTH_PERM_REPORT},
        /* Reads that reveal every backend: watch for that service (ListServices
         * has no service field, so it needs watch:*). */
        {"/lookaside.v1.Admin/ListServices", AUTH_PERM_WATCH},
        {"/lookaside.v1.Admin/DescribeService", AUTH_PERM_WATCH},
        {"/lookaside.v1.Admin/SetDrain", AUTH_PERM_ADMIN},
        {"/lookaside.v1.Admin/SetWeightOverride", AUTH_PERM_ADMIN},
        {"/grpc.lb.v1.LoadBalancer/BalanceLoad", AUTH_PERM_WATCH},
        {"/grpc.health.v1.Health/Check", AUTH_PERM_PUBLIC},
        {"/grpc.health.v1.Health/Watch", AUTH_PERM_PUBLIC},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i].path, path) == 0)
            return table[i].perm;
    return AUTH_PERM_ADMIN;
}

const char *auth_request_service(const void *msg)
{
    const ProtobufCMessage *m = msg;
    if (m == NULL)
        return NULL;
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, "service");
    if (f == NULL || f->type != PROTOBUF_C_TYPE_STRING || f->label == PROTOBUF_C_LABEL_REPEATED)
        return NULL;
    const char *s = *(const char *const *)((const char *)m + f->offset);
    return s ? s : "";
}

const char *auth_perm_name(auth_perm perm)
{
    switch (perm) {
    case AUTH_PERM_PUBLIC: return "public";
    case AUTH_PERM_WATCH: return "watch";
    case AUTH_PERM_REPORT: return "report";
    case AUTH_PERM_REGISTER_ANY: return "register-any";
    case AUTH_PERM_UNSET:
    case AUTH_PERM_ADMIN: break;
    }
    return "admin";
}

/* ------------------------------------------------------------------- peers */

/* Parses the host of a gRPC peer string into 16 bytes (IPv4 as v4-mapped). */
static bool peer_ip(const char *host, unsigned char ip[16])
{
    struct in_addr v4;
    if (inet_pton(AF_INET, host, &v4) == 1) {
        memset(ip, 0, 10);
        ip[10] = ip[11] = 0xff;
        memcpy(ip + 12, &v4, 4);
        return true;
    }
    return inet_pton(AF_INET6, host, ip) == 1;
}

static bool ip_is_loopback(const unsigned char ip[16])
{
    static const unsigned char v6_loop[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(ip, v6_loop, 16) == 0)
        return true;
    return memcmp(ip, mapped, 12) == 0 && ip[12] == 127;
}

/* "ipv4:1.2.3.4:5", "ipv6:[::1]:5", "unix:/path" -> host and loopback flag. */
static void peer_parse(const char *peer, auth_peer *p)
{
    p->host[0] = '\0';
    p->loopback = false;
    if (peer == NULL)
        return;
    if (strncmp(peer, "unix:", 5) == 0 || strncmp(peer, "unix-abstract:", 14) == 0) {
        p->loopback = true;   /* same machine, guarded by file permissions */
        return;
    }
    const char *h = peer;
    if (strncmp(h, "ipv4:", 5) == 0 || strncmp(h, "ipv6:", 5) == 0)
        h += 5;
    const char *end;
    if (*h == '[') {
        h++;
        end = strchr(h, ']');
    } else {
        end = strrchr(h, ':');
    }
    if (end == NULL || (size_t)(end - h) >= sizeof p->host)
        return;
    memcpy(p->host, h, (size_t)(end - h));
    p->host[end - h] = '\0';
    unsigned char ip[16];
    if (peer_ip(p->host, ip))
        p->loopback = ip_is_loopback(ip);
}

static bool first_property(const grpc_auth_context *ctx, const char *name, char *out, size_t len)
{
    grpc_auth_property_iterator it = grpc_auth_context_find_properties_by_name(ctx, name);
    const grpc_auth_property *prop = grpc_auth_property_iterator_next(&it);
    if (prop == NULL || prop->value_length == 0 || prop->value_length >= len)
        return false;
    memcpy(out, prop->value, prop->value_length);
    out[prop->value_length] = '\0';
    return identity_valid(out);
}

static void cert_identity(grpc_call *call, auth_peer *p)
{
    grpc_auth_context *ctx = grpc_call_auth_context(call);
    if (ctx == NULL)
        return;
    /* Only a certificate the handshake verified names the peer. */
    if (grpc_auth_context_peer_is_authenticated(ctx) &&
        !first_property(ctx, GRPC_PEER_URI_PROPERTY_NAME, p->cert_id, sizeof p->cert_id) &&
        !first_property(ctx, GRPC_PEER_DNS_PROPERTY_NAME, p->cert_id, sizeof p->cert_id) &&
        !first_property(ctx, GRPC_X509_CN_PROPERTY_NAME, p->cert_id, sizeof p->cert_id))
        p->cert_id[0] = '\0';
    /* "token:" names token identities (auth_identity): a certificate must
     * not be able to pass for one and take over what a token registered. */
    if (strncmp(p->cert_id, "token:", 6) == 0)
        p->cert_id[0] = '\0';
    grpc_auth_context_release(ctx);
}

void auth_peer_add_token(auth_peer *p, const char *token)
{
    if (token == NULL || token[0] == '\0')
        return;
    sha256(token, strlen(token), p->token_sha);
    p->has_token = true;
}

static void bearer_token(const grpc_metadata_array *md, auth_peer *p)
{
    if (md == NULL)
        return;
    for (size_t i = 0; i < md->count; i++) {
        const grpc_metadata *m = &md->metadata[i];
        if (grpc_slice_str_cmp(m->key, "authorization") != 0)
            continue;
        size_t n = GRPC_SLICE_LENGTH(m->value);
        const char *v = (const char *)GRPC_SLICE_START_PTR(m->value);
        if (n <= 7 || strncasecmp(v, "Bearer ", 7) != 0 || n > 4096 + 7)
            continue;
        /* Hash the exact bytes: an embedded NUL must not shorten the token
         * (the old "s3cret\0anything" bug). */
        sha256(v + 7, n - 7, p->token_sha);
        p->has_token = true;
        return;
    }
}

void auth_peer_from_call(grpc_call *call, const grpc_metadata_array *md, auth_peer *p)
{
    memset(p, 0, sizeof *p);
    char *peer = grpc_call_get_peer(call);
    peer_parse(peer, p);
    gpr_free(peer);
    cert_identity(call, p);
    bearer_token(md, p);
}

bool auth_address_is_peer(const auth_peer *p, const char *address)
{
    la_addr a;
    unsigned char peer[16], reg[16];
    if (addr_parse(address, &a) != LOOKASIDE_OK || !peer_ip(p->host, peer))
        return false;
    if (a.family == AF_INET) {
        memset(reg, 0, 10);
        reg[10] = reg[11] = 0xff;
        memcpy(reg + 12, a.ip, 4);
    } else {
        memcpy(reg, a.ip, 16);
    }
    return memcmp(peer, reg, 16) == 0;
}

/* ------------------------------------------------------------------ checks */

/* The token grant matching p's token, comparing every grant in constant time
 * (no early exit, so timing does not say which one or how much matched). */
static const grant *token_grant(const policy *pol, const auth_peer *p)
{
    if (!p->has_token)
        return NULL;
    const grant *found = NULL;
    for (const grant *g = pol->head; g; g = g->next)
        if (g->kind == P_TOKEN && CRYPTO_memcmp(g->sha, p->token_sha, 32) == 0)
            found = g;
    return found;
}

static bool in_list(char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

static bool grant_has(const grant *g, auth_perm perm, const char *service)
{
    if (g == NULL)
        return false;
    if (g->admin)
        return true;
    switch (perm) {
    case AUTH_PERM_PUBLIC: return true;
    case AUTH_PERM_REGISTER_ANY: return g->register_any;
    case AUTH_PERM_WATCH:
        return g->watch_all || (service ? in_list(g->watch, g->n_watch, service) : g->n_watch > 0);
    case AUTH_PERM_REPORT:
        return g->report_all ||
               (service ? in_list(g->report, g->n_report, service) : g->n_report > 0);
    case AUTH_PERM_UNSET:
    case AUTH_PERM_ADMIN: break;
    }
    return false;
}

bool auth_peer_admitted(const auth *a, const auth_peer *p)
{
    return a->mode != AUTH_MODE_PROTECTED || p->loopback;
}

lookaside_status auth_check(const auth *a, const auth_peer *p, auth_perm perm,
                            const char *service)
{
    if (!auth_peer_admitted(a, p))
        return LOOKASIDE_EUNAUTH;
    if (perm == AUTH_PERM_PUBLIC)
        return LOOKASIDE_OK;
    pthread_rwlock_rdlock((pthread_rwlock_t *)&a->lock);
    const policy *pol = a->pol;
    /* Every line that applies adds its permissions (an identity may appear
     * on several lines). A certificate the policy does not name is still an
     * identity: the peer proved who it is, it just may not do this. */
    bool ok = false, identified = p->cert_id[0] != '\0';
    for (const grant *g = pol->head; g; g = g->next) {
        bool applies = g->kind == P_ANON;
        if (g->kind == P_ID)
            applies = p->cert_id[0] != '\0' && strcmp(g->name, p->cert_id) == 0;
        else if (g->kind == P_TOKEN && p->has_token)
            /* constant time, and no early exit over the token lines */
            applies = CRYPTO_memcmp(g->sha, p->token_sha, 32) == 0;
        if (g->kind == P_TOKEN && applies)
            identified = true;
        if (applies && grant_has(g, perm, service))
            ok = true;
    }
    if (!ok && pol->open)
        ok = perm != AUTH_PERM_REPORT || pol->open_report;
    pthread_rwlock_unlock((pthread_rwlock_t *)&a->lock);
    if (ok)
        return LOOKASIDE_OK;
    return identified ? LOOKASIDE_EPERM : LOOKASIDE_EUNAUTH;
}

void auth_identity(const auth *a, const auth_peer *p, char *out, size_t len)
{
    if (p->cert_id[0]) {
        snprintf(out, len, "%s", p->cert_id);
        return;
    }
    pthread_rwlock_rdlock((pthread_rwlock_t *)&a->lock);
    const grant *tg = token_grant(a->pol, p);
    if (tg)
        snprintf(out, len, "token:%s", tg->name);
    else if (len > 0)
        out[0] = '\0';
    pthread_rwlock_unlock((pthread_rwlock_t *)&a->lock);
}
