#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <grpc/support/log.h>

#define REC_MAX 2048        /* one record, newline included */
#define SITE_SLOTS 512      /* rate-limit table: bounded whatever the input */
#define SAMPLE_MAX 200      /* how much of a suppressed record a summary quotes */

static _Atomic int g_level = LA_LOG_INFO;
static _Atomic int g_format = LA_LOG_TEXT;
static _Atomic unsigned g_rate = LOG_RATE_DEFAULT;
static _Atomic int g_fd = STDERR_FILENO;

/* One call site's budget in the current one-second window. */
typedef struct site {
    const void *key;        /* NULL: free slot */
    const char *module;
    enum log_level lvl;
    int64_t window;         /* monotonic second the counts belong to */
    unsigned written;
    unsigned long long suppressed;
    char sample[SAMPLE_MAX + 1];   /* the first suppressed record's message */
} site;

/* Guards the table, the clock hook and the sweep mark. Records are written
 * under it too, which keeps a summary ahead of the record that follows it. */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static site g_sites[SITE_SLOTS];
static int64_t g_swept = -1;
static int64_t (*g_clock)(void);
static log_sink_fn g_sink; /* under g_mu */
static void *g_sink_arg;

void log_set_sink(log_sink_fn fn, void *arg)
{
    pthread_mutex_lock(&g_mu);
    g_sink = fn;
    g_sink_arg = arg;
    pthread_mutex_unlock(&g_mu);
}

void log_set_level(enum log_level lvl) { atomic_store(&g_level, (int)lvl); }
enum log_level log_get_level(void) { return (enum log_level)atomic_load(&g_level); }
void log_set_format(enum log_format f) { atomic_store(&g_format, (int)f); }
void log_set_rate_limit(unsigned per_second) { atomic_store(&g_rate, per_second); }
void log_set_fd(int fd) { atomic_store(&g_fd, fd); }

void log_set_clock(int64_t (*now_ms)(void))
{
    pthread_mutex_lock(&g_mu);
    g_clock = now_ms;
    /* A new clock starts a new time line: forget the old windows. */
    memset(g_sites, 0, sizeof g_sites);
    g_swept = -1;
    pthread_mutex_unlock(&g_mu);
}

static int parse_name(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

static const char *const LEVEL_NAMES[] = {"debug", "info", "warn", "error", "off"};

int log_level_parse(const char *s) { return parse_name(s, LEVEL_NAMES, 5); }

int log_format_parse(const char *s)
{
    static const char *const names[] = {"text", "json"};
    return parse_name(s, names, 2);
}

/* ------------------------------------------------------------- formatting */

typedef struct rec {
    char b[REC_MAX];
    size_t n;
} rec;

static void put(rec *r, const char *s, size_t len)
{
    if (len > REC_MAX - 1 - r->n)
        len = REC_MAX - 1 - r->n;   /* one byte stays free for the newline */
    memcpy(r->b + r->n, s, len);
    r->n += len;
}

static void puts_(rec *r, const char *s) { put(r, s, strlen(s)); }

/* Length of the well-formed UTF-8 sequence at s[0..len), 0 if there is none
 * (overlong forms, surrogates and values past U+10FFFF included). */
static size_t utf8_len(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0;
        if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90;
        if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if (len < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

/* Appends s as the inside of a JSON string, stopping (never mid-escape)
 * once fewer than reserve bytes would be left. */
static void put_json_str(rec *r, const char *s, size_t reserve)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s);
    for (size_t i = 0; i < len;) {
        char esc[8];
        const char *out = esc;
        size_t k = 1, w;
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            w = 2;
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            w = 6;
        } else if (c < 0x80) {
            out = (const char *)p + i;
            w = 1;
        } else if ((k = utf8_len(p + i, len - i)) > 0) {
            out = (const char *)p + i;
            w = k;
        } else {
            out = "\\ufffd";
            w = 6;
            k = 1;
        }
        if (r->n + w + reserve > REC_MAX)
            return;
        put(r, out, w);
        i += k;
    }
}

static void put_timestamp(rec *r)
{
    struct timespec ts;
    struct tm tm;
    char b[40];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int k = snprintf(b, sizeof b, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000);
    put(r, b, k > 0 ? (size_t)k : 0);
}

/* Writes one record. sample and suppressed are set for a rate-limit
 * summary only. */
static void emit(enum log_level lvl, const char *module, const char *msg, const char *sample,
                 unsigned long long suppressed)
{
    static const char *const tags[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
    if (g_sink != NULL) { /* an embedding application takes the record */
        g_sink(g_sink_arg, lvl, module, msg);
        return;
    }
    rec r;
    r.n = 0;
    if (atomic_load(&g_format) == LA_LOG_JSON) {
        char num[32];
        puts_(&r, "{\"ts\":\"");
        put_timestamp(&r);
        puts_(&r, "\",\"level\":\"");
        puts_(&r, LEVEL_NAMES[lvl]);
        puts_(&r, "\",\"module\":\"");
        put_json_str(&r, module, 64);
        puts_(&r, "\",\"msg\":\"");
        /* Keep room for the summary's fields and the closing "}. */
        put_json_str(&r, msg, sample ? 64 + 6 * SAMPLE_MAX : 4);
        if (sample) {
            snprintf(num, sizeof num, "%llu", suppressed);
            puts_(&r, "\",\"suppressed\":");
            puts_(&r, num);
            puts_(&r, ",\"sample\":\"");
            put_json_str(&r, sample, 4);
        }
        puts_(&r, "\"}");
    } else {
        put_timestamp(&r);
        puts_(&r, " ");
        puts_(&r, tags[lvl]);
        puts_(&r, " ");
        puts_(&r, module);
        puts_(&r, ": ");
        size_t from = r.n;
        puts_(&r, msg);
        /* Hostile strings may carry control bytes; never let them break a line. */
        for (size_t i = from; i < r.n; i++)
            if ((unsigned char)r.b[i] < 0x20 || r.b[i] == 0x7f)
                r.b[i] = '?';
    }
    r.b[r.n++] = '\n';
    ssize_t w = write(atomic_load(&g_fd), r.b, r.n);
    (void)w;
}

/* ------------------------------------------------------------- rate limit */

static int64_t now_ms(void)
{
    if (g_clock)
        return g_clock();
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void emit_summary(site *s)
{
    char msg[REC_MAX];
    if (atomic_load(&g_format) == LA_LOG_JSON)
        snprintf(msg, sizeof msg, "suppressed %llu records (limit %u/s per call site)",
                 s->suppressed, atomic_load(&g_rate));
    else
        snprintf(msg, sizeof msg,
                 "suppressed %llu records (limit %u/s per call site), the first: %s",
                 s->suppressed, atomic_load(&g_rate), s->sample);
    emit(s->lvl, s->module, msg, s->sample, s->suppressed);
    s->suppressed = 0;
}

/* Once per second: summarize and free every slot of an older window, so a
 * flood that stopped still gets its count written. Caller holds g_mu. */
static void sweep(int64_t window)
{
    if (window == g_swept)
        return;
    g_swept = window;
    for (size_t i = 0; i < SITE_SLOTS; i++) {
        site *s = &g_sites[i];
        if (s->key == NULL || s->window == window)
            continue;
        if (s->suppressed)
            emit_summary(s);
        s->key = NULL;
    }
}

/* Caller holds g_mu. Returns NULL when the record may be written, else
 * the site that counted it. */
static site *admit(const void *key, enum log_level lvl, const char *module, unsigned rate)
{
    int64_t window = now_ms() / 1000;
    sweep(window);
    uintptr_t h = (uintptr_t)key;
    h ^= h >> 17;
    h *= 0x9e3779b1u;
    site *s = &g_sites[(h ^ (h >> 15)) % SITE_SLOTS];
    if (s->key == NULL) {
        s->key = key;
        s->module = module;
        s->lvl = lvl;
        s->window = window;
        s->written = 0;
        s->suppressed = 0;
    }
    if (s->written < rate) {
        s->written++;
        return NULL;
    }
    s->suppressed++;
    return s;
}

void log_flush_suppressed(void)
{
    pthread_mutex_lock(&g_mu);
    for (size_t i = 0; i < SITE_SLOTS; i++)
        if (g_sites[i].key && g_sites[i].suppressed)
            emit_summary(&g_sites[i]);
    pthread_mutex_unlock(&g_mu);
}

static void log_v(const void *key, enum log_level lvl, const char *module, const char *fmt,
                  va_list ap)
{
    if ((int)lvl < atomic_load(&g_level) || lvl >= LA_LOG_OFF || (int)lvl < 0)
        return;
    unsigned rate = atomic_load(&g_rate);
    pthread_mutex_lock(&g_mu);
    site *s = rate ? admit(key, lvl, module, rate) : NULL;
    if (s == NULL) {
        char msg[REC_MAX];
        vsnprintf(msg, sizeof msg, fmt, ap);
        emit(lvl, module, msg, NULL, 0);
    } else if (s->suppressed == 1) {
        vsnprintf(s->sample, sizeof s->sample, fmt, ap);
    }
    pthread_mutex_unlock(&g_mu);
}

static void from_grpc(gpr_log_func_args *a)
{
    enum log_level lvl = a->severity == GPR_LOG_SEVERITY_ERROR  ? LA_LOG_ERROR
                         : a->severity == GPR_LOG_SEVERITY_INFO ? LA_LOG_INFO
                                                                : LA_LOG_DEBUG;
    const char *base = a->file ? strrchr(a->file, '/') : NULL;
    log_msg_key(a->file, lvl, "grpc", "%s:%d: %s", base ? base + 1 : a->file ? a->file : "?",
                a->line, a->message ? a->message : "");
}

void log_capture_grpc(void) { gpr_set_log_function(from_grpc); }

void log_msg(enum log_level lvl, const char *module, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_v(fmt, lvl, module, fmt, ap);
    va_end(ap);
}

void log_msg_key(const void *key, enum log_level lvl, const char *module, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_v(key, lvl, module, fmt, ap);
    va_end(ap);
}
