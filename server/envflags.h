/* envflags.h - every long option can also come from the environment.
 *
 * For each long option NAME of a getopt_long table, a variable
 * PREFIX + NAME in upper case with '-' as '_' (--dns-refresh-ms =>
 * LOOKASIDE_DNS_REFRESH_MS) supplies it when the command line does not:
 * flags win, so a wrapper can override one setting of a pod or unit without
 * repeating the rest. Options without an argument are set by any value but
 * "", "0", "false", "no" and "off"; an empty value for an option with an
 * argument counts as unset. Options with an optional argument are not read
 * (getopt takes those only as --NAME=VALUE). Options named in `repeatable` (a NULL-
 * terminated list) take several values from one variable, separated by
 * whitespace. --help and --version are never read from the environment.
 *
 * Mechanism: the environment's options are prepended to argv as
 * "--NAME" "VALUE" pairs, so the caller parses one argv as before and a
 * variable's bad value gets the flag's own error message.
 *
 * Threads: call from main before any thread starts (getenv). */
#ifndef LA_ENVFLAGS_H
#define LA_ENVFLAGS_H

#include <getopt.h>
#include <stddef.h>

/* Builds the merged argument vector: argv[0], the options from the
 * environment, then argv[1..]. *out_argv is owned by this module and stays
 * valid until envflags_free(), which also runs at exit (values point
 * into the environment, which must not change meanwhile). Returns the new argc, or -1 on ENOMEM (then
 * *out_argv is argv). */
int envflags_merge(const struct option *opts, const char *prefix, const char *const *repeatable,
                   int argc, char **argv, char ***out_argv);
/* Frees what the last envflags_merge allocated. No-op when nothing was. */
void envflags_free(void);

/* The variable name for a long option (buffer of n bytes). Returns buf. */
char *envflags_name(const char *prefix, const char *opt, char *buf, size_t n);

#endif
