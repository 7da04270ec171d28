/* log.h - one-line log records on stderr.
 *
 * Format: "2026-11-27T06:45:43.123Z INFO  module: message". Each record is
 * written with a single write(2) so lines from different threads never
 * interleave. Thread-safe. Level is process-wide (log_set_level). */
#ifndef LA_LOG_H
#define LA_LOG_H

enum log_level { LA_LOG_DEBUG = 0, LA_LOG_INFO = 1, LA_LOG_WARN = 2, LA_LOG_ERROR = 3, LA_LOG_OFF = 4 };

void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* Parses "debug", "info", "warn", "error", "off"; returns -1 when unknown. */
int log_level_parse(const char *s);

void log_msg(enum log_level lvl, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(mod, ...) \
    do { if (log_get_level() <= LA_LOG_DEBUG) log_msg(LA_LOG_DEBUG, mod, __VA_ARGS__); } while (0)
#define log_info(mod, ...) log_msg(LA_LOG_INFO, mod, __VA_ARGS__)
#define log_warn(mod, ...) log_msg(LA_LOG_WARN, mod, __VA_ARGS__)
#define log_error(mod, ...) log_msg(LA_LOG_ERROR, mod, __VA_ARGS__)

#endif
