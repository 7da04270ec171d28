/* log.h - one-line log records on stderr.
 *
 * Formats (log_set_format):
 *   text: "2026-11-27T06:45:43.123Z INFO  module: message"
 *   json: {"ts":"2026-11-27T06:45:43.123Z","level":"info","module":"rpc","msg":"..."}
 *         one object per line; these four keys are always present, in this
 *         order; a rate-limit summary adds "suppressed" (a number) and
 *         "sample" (the first suppressed message). Strings are escaped per RFC 8259;
 *         bytes that are not UTF-8 become U+FFFD.
 * Each record is written with a single write(2) so lines from different
 * threads never interleave; records are capped at 2 KiB (longer messages
 * are cut, never split across lines). Text records replace control bytes
 * in the message with '?' so a hostile string cannot forge a line.
 *
 * Rate limit: a hostile peer can make the server log on every refusal, so
 * each call site (its format string, or the key given to log_msg_key) may
 * write at most log_set_rate_limit() records per second (default
 * LOG_RATE_DEFAULT); the rest are counted, and once the second is over one
 * record per site says how many were suppressed (written before that
 * site's next record, or by the next record of any site, or by
 * log_flush_suppressed()). Sites hash into a fixed table, so memory is
 * bounded; two sites that collide in the same second share one budget.
 *
 * Thread-safe. Level, format and limit are process-wide; set them before
 * starting threads (later changes are safe but racy in effect). */
#ifndef LA_LOG_H
#define LA_LOG_H

#include <stdint.h>

enum log_level { LA_LOG_DEBUG = 0, LA_LOG_INFO = 1, LA_LOG_WARN = 2, LA_LOG_ERROR = 3, LA_LOG_OFF = 4 };
enum log_format { LA_LOG_TEXT = 0, LA_LOG_JSON = 1 };

#define LOG_RATE_DEFAULT 20u

void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* Parses "debug", "info", "warn", "error", "off"; returns -1 when unknown. */
int log_level_parse(const char *s);

void log_set_format(enum log_format f);
/* Parses "text", "json"; returns -1 when unknown. */
int log_format_parse(const char *s);

/* Records per call site per second; 0 turns rate limiting off. */
void log_set_rate_limit(unsigned per_second);
/* Writes the pending "suppressed" summaries now (e.g. before exit). */
void log_flush_suppressed(void);

void log_msg(enum log_level lvl, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same with an explicit rate-limit key (any stable pointer, e.g. the
 * format a caller passed on), for helpers that log on behalf of many call
 * sites through one format. */
void log_msg_key(const void *key, enum log_level lvl, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Hands every record (after the level check and the rate limit) to fn
 * instead of writing it: level, module and the formatted message (a
 * rate-limit summary arrives as its text). fn runs under the logger's
 * mutex, so records arrive one at a time and in order; it must not log.
 * NULL restores writing to the descriptor. For liblookaside's log
 * callback. */
typedef void (*log_sink_fn)(void *arg, enum log_level lvl, const char *module, const char *msg);
void log_set_sink(log_sink_fn fn, void *arg);

/* Routes gRPC core's own log lines (gpr_log) through this logger as module
 * "grpc" (rate limit per source file), so that `--log-format json` output
 * stays one object per line. Process-wide: for programs (call before
 * grpc_init), never from a library. */
void log_capture_grpc(void);

/* Test hooks: the descriptor records go to (default 2) and the monotonic
 * millisecond clock the rate limit uses (NULL restores the real one). */
void log_set_fd(int fd);
void log_set_clock(int64_t (*now_ms)(void));

#define log_debug(mod, ...) \
    do { if (log_get_level() <= LA_LOG_DEBUG) log_msg(LA_LOG_DEBUG, mod, __VA_ARGS__); } while (0)
#define log_info(mod, ...) log_msg(LA_LOG_INFO, mod, __VA_ARGS__)
#define log_warn(mod, ...) log_msg(LA_LOG_WARN, mod, __VA_ARGS__)
#define log_error(mod, ...) log_msg(LA_LOG_ERROR, mod, __VA_ARGS__)

#endif
