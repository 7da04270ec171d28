/* api.c - process-wide parts of the public API: the version and logging. */
#include "lookaside.h"

#include "log.h"

const char *lookaside_version(void)
{
    return LOOKASIDE_VERSION;
}

/* The library's logger hands records to the application's callback. The
 * level enums have the same values (checked below), so no mapping table. */
_Static_assert((int)LOOKASIDE_LOG_DEBUG == (int)LA_LOG_DEBUG &&
                   (int)LOOKASIDE_LOG_INFO == (int)LA_LOG_INFO &&
                   (int)LOOKASIDE_LOG_WARN == (int)LA_LOG_WARN &&
                   (int)LOOKASIDE_LOG_ERROR == (int)LA_LOG_ERROR &&
                   (int)LOOKASIDE_LOG_OFF == (int)LA_LOG_OFF,
               "log levels differ");

static lookaside_log_fn app_fn;

static void sink(void *arg, enum log_level lvl, const char *module, const char *msg)
{
    app_fn(arg, (lookaside_log_level)lvl, module, msg);
}

void lookaside_log_set(lookaside_log_level level, lookaside_log_fn fn, void *arg)
{
    if ((int)level < (int)LOOKASIDE_LOG_DEBUG || (int)level > (int)LOOKASIDE_LOG_OFF)
        level = LOOKASIDE_LOG_INFO;
    log_set_level((enum log_level)level);
    /* Cleared first: the sink never sees a half-updated pair. */
    log_set_sink(NULL, NULL);
    app_fn = fn;
    if (fn != NULL)
        log_set_sink(sink, arg);
}
