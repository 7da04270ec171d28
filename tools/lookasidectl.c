/* lookasidectl: inspect and steer a lookaside balancer from the command
 * line. This file parses the command line and dispatches; the commands are
 * in ctl_cmd_*.c, gRPC calls in ctl_rpc.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "util.h"

#ifndef LOOKASIDE_VERSION
#define LOOKASIDE_VERSION "unknown"
#endif

#define DEFAULT_TIMEOUT_MS 5000

typedef struct command {
    const char *name;
    int min_args, max_args;
    bool watch_opts;          /* takes --count and --duration-ms */
    const char *usage;        /* arguments after the name */
    const char *summary;      /* one line for the global help */
    const char *help;         /* the command's own help */
    int (*run)(ctl_ctx *ctx);
} command;

static const command commands[] = {
    {"services", 0, 0, false, "", "list services: version, backends, state",
     "Lists every service the balancer knows: its list version, backends, how many\n"
     "of them serve, how many clients watch it, and the list state (LIVE,\n"
     "RESTORED, UNKNOWN_SERVICE).\n",
     cmd_services},
    {"show", 1, 1, false, "SERVICE", "a service's backends and why each weight",
     "Describes SERVICE: for each backend its published weight, state, zone,\n"
     "source (REPORTED, DNS, BOTH), last report's rps and utilization, report\n"
     "age, operator override, and the balancer's account of the weight\n"
     "(inputs, formula, clamps, smoothing, slow start); then grpclb totals and\n"
     "the weight policy. Exits 4 when the balancer does not know SERVICE.\n",
     cmd_show},
    {"get", 1, 1, false, "SERVICE", "the server list clients get, once",
     "Prints the server list clients of SERVICE receive right now: version,\n"
     "state, and each backend's address, weight, state, zone, source, token.\n"
     "Exits 4 (after printing the empty list) when the balancer does not know\n"
     "SERVICE.\n",
     cmd_get},
    {"watch", 1, 1, true, "SERVICE [--count N] [--duration-ms N]",
     "follow the server list as it changes",
     "Follows SERVICE's server list through Balancer.Watch, printing the first\n"
     "list at once and then each version the balancer pushes (with --json one\n"
     "object per line). Stops on SIGINT or SIGTERM, after N lists (--count N)\n"
     "or after N milliseconds (--duration-ms N), and exits 0. An unknown service\n"
     "is not an error here: the list stays empty until a backend registers.\n"
     "\n"
     "  --count N        stop after N lists (N >= 1)\n"
     "  --duration-ms N  stop after N milliseconds (N >= 1)\n",
     cmd_watch},
    {"drain", 2, 2, false, "SERVICE ADDRESS", "stop new traffic to a backend",
     "Marks the backend ADDRESS (ip:port or [ipv6]:port) of SERVICE as\n"
     "DRAINING: clients stop sending it new calls. Prints the new state.\n"
     "Exits 4 when the service or backend is unknown.\n",
     cmd_drain},
    {"undrain", 2, 2, false, "SERVICE ADDRESS", "let a drained backend serve again",
     "Clears the drain of backend ADDRESS of SERVICE so it takes traffic again.\n"
     "Prints the new state. Exits 4 when the service or backend is unknown.\n",
     cmd_undrain},
    {"weight", 3, 3, false, "SERVICE ADDRESS N", "override a backend's weight (0 clears)",
     "Overrides the weight of backend ADDRESS of SERVICE with N (1..1000000)\n"
     "in place of the computed one; N = 0 removes the override. Exits 4 when\n"
     "the service or backend is unknown.\n",
     cmd_weight},
    {"health", 0, 1, false, "[SERVICE]", "health of the balancer or of a service",
     "Asks grpc.health.v1.Health/Check about the balancer itself or, with\n"
     "SERVICE, about that service (SERVING when its list has a backend with\n"
     "weight > 0). Prints SERVING, NOT_SERVING, SERVICE_UNKNOWN or UNKNOWN.\n"
     "Exits 0 only for SERVING, 5 for another answer, 4 for an unknown service.\n",
     cmd_health},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const char exit_codes_text[] =
    "exit codes:\n"
    "  0  success\n"
    "  1  the balancer answered with an error (its gRPC status name and message\n"
    "     are printed)\n"
    "  2  usage error\n"
    "  3  cannot reach the balancer: connection failed or timed out, or the call\n"
    "     ended UNAVAILABLE\n"
    "  4  not found: unknown service or backend (NOT_FOUND)\n"
    "  5  health: the balancer answered, but not SERVING\n"
    "  6  unauthenticated: no identity the balancer knows (no or unknown client\n"
    "     certificate or token; UNAUTHENTICATED)\n"
    "  7  permission denied: the identity lacks the permission (PERMISSION_DENIED)\n"
    "  A refused TLS handshake (untrusted, expired or missing certificate, wrong\n"
    "  server name) cannot be told apart from a failed connection: exit 3.\n";

static void global_help(void)
{
    printf("usage: lookasidectl --lb HOST:PORT [--json] [--timeout-ms N] COMMAND [ARGS]\n"
           "\n"
           "Inspects and steers a lookaside balancer through its Admin, Balancer and\n"
           "Health APIs.\n"
           "\n"
           "commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++) {
        char head[64];
        snprintf(head, sizeof head, "%s %s", commands[i].name, commands[i].usage);
        if (strlen(head) > 26)
            printf("  %s\n  %-26s  %s\n", head, "", commands[i].summary);
        else
            printf("  %-26s  %s\n", head, commands[i].summary);
    }
    printf("  %-26s  %s\n", "help [COMMAND]", "this text, or a command's");
    printf("\n"
           "options (before or after the command):\n"
           "  --lb HOST:PORT    the balancer (any gRPC target); default $LOOKASIDE_LB\n"
           "  --json            machine-readable output: one JSON object per command,\n"
           "                    one per line for watch; errors as {\"error\":{...}}\n"
           "  --timeout-ms N    deadline for connecting and for each call (default %d)\n"
           "  --tls-ca FILE     TLS: verify the balancer against this CA (PEM)\n"
           "  --tls-cert FILE --tls-key FILE\n"
           "                    client certificate and key (mTLS); need --tls-ca\n"
           "  --tls-server-name NAME  the name to verify instead of the --lb host\n"
           "  --token TOKEN     bearer token; default $LOOKASIDE_TOKEN (an argument is\n"
           "                    visible to other local users in ps: prefer the variable)\n"
           "  --help, -h        this help; after a command, the command's help\n"
           "  --version         print the version\n"
           "\n"
           "%s",
           DEFAULT_TIMEOUT_MS, exit_codes_text);
}

static void command_help(const command *c)
{
    printf("usage: lookasidectl --lb HOST:PORT [--json] [--timeout-ms N] %s %s\n\n%s\n%s",
           c->name, c->usage, c->help, exit_codes_text);
}

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* Parses a decimal in [min, max]; false when it is not one. */
static bool parse_long(const char *s, long min, long max, long *out)
{
    char *end = NULL;
    if (s == NULL || s[0] < '0' || s[0] > '9')
        return false;
    long v = strtol(s, &end, 10);
    if (*end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

typedef struct cmdline {
    bool help, version, json;
    const char *lb;
    ctl_security sec;
    long timeout_ms, count, duration_ms;
    bool have_count, have_duration;
    const char *cmd;
    const char *args[8];
    int nargs;
    bool too_many;
} cmdline;

/* Takes an option's value from "--opt=value" or the next argument. */
static const char *opt_value(int argc, char **argv, int *i, const char *arg, size_t namelen)
{
    if (arg[namelen] == '=')
        return arg + namelen + 1;
    if (*i + 1 < argc)
        return argv[++*i];
    return NULL;
}

static bool is_opt(const char *arg, const char *name, size_t *namelen)
{
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0 || (arg[n] != '\0' && arg[n] != '='))
        return false;
    *namelen = n;
    return true;
}

/* Options may come before or after the command; "--" ends them. Returns 0 or
 * an exit code (usage error, already reported). */
static int parse(int argc, char **argv, cmdline *cl)
{
    bool opts_done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        size_t n = 0;
        const char *v = NULL;
        if (opts_done || a[0] != '-' || a[1] == '\0') {
            if (cl->cmd == NULL)
                cl->cmd = a;
            else if (cl->nargs < (int)(sizeof cl->args / sizeof cl->args[0]))
                cl->args[cl->nargs++] = a;
            else
                cl->too_many = true;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            opts_done = true;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            cl->help = true;
        } else if (strcmp(a, "--version") == 0) {
            cl->version = true;
        } else if (strcmp(a, "--json") == 0) {
            cl->json = true;
        } else if (is_opt(a, "--lb", &n)) {
            if ((v = opt_value(argc, argv, &i, a, n)) == NULL || v[0] == '\0')
                return ctl_usage_error(NULL, "--lb needs HOST:PORT");
            cl->lb = v;
        } else if (is_opt(a, "--tls-ca", &n) || is_opt(a, "--tls-cert", &n) ||
                   is_opt(a, "--tls-key", &n) || is_opt(a, "--tls-server-name", &n) ||
                   is_opt(a, "--token", &n)) {
            const char *name = a;
            if ((v = opt_value(argc, argv, &i, a, n)) == NULL || v[0] == '\0')
                return ctl_usage_error(NULL, "%.*s needs a value", (int)n, name);
            const char **slot = strncmp(name, "--tls-ca", n) == 0     ? &cl->sec.ca
                                : strncmp(name, "--tls-cert", n) == 0 ? &cl->sec.cert
                                : strncmp(name, "--tls-key", n) == 0  ? &cl->sec.key
                                : strncmp(name, "--token", n) == 0    ? &cl->sec.token
                                                                      : &cl->sec.server_name;
            *slot = v;
        } else if (is_opt(a, "--timeout-ms", &n)) {
            v = opt_value(argc, argv, &i, a, n);
            if (!parse_long(v, 1, 3600000, &cl->timeout_ms))
                return ctl_usage_error(NULL, "--timeout-ms needs a number of ms in 1..3600000");
        } else if (is_opt(a, "--count", &n)) {
            v = opt_value(argc, argv, &i, a, n);
            if (!parse_long(v, 1, 1000000000, &cl->count))
                return ctl_usage_error(NULL, "--count needs a number >= 1");
            cl->have_count = true;
        } else if (is_opt(a, "--duration-ms", &n)) {
            v = opt_value(argc, argv, &i, a, n);
            if (!parse_long(v, 1, 1000000000, &cl->duration_ms))
                return ctl_usage_error(NULL, "--duration-ms needs a number of ms >= 1");
            cl->have_duration = true;
        } else {
            return ctl_usage_error(NULL, "unknown option '%s'", a);
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    cmdline cl;
    memset(&cl, 0, sizeof cl);
    cl.timeout_ms = DEFAULT_TIMEOUT_MS;
    int rc = parse(argc, argv, &cl);
    if (rc != 0)
        return rc;
    if (cl.version) {
        printf("lookasidectl %s\n", LOOKASIDE_VERSION);
        return CTL_EXIT_OK;
    }
    const command *c = NULL;
    if (cl.cmd && strcmp(cl.cmd, "help") == 0) {
        if (cl.nargs == 0) {
            global_help();
            return CTL_EXIT_OK;
        }
        if ((c = find_command(cl.args[0])) == NULL)
            return ctl_usage_error(NULL, "unknown command '%s'", cl.args[0]);
        command_help(c);
        return CTL_EXIT_OK;
    }
    if (cl.cmd == NULL) {
        if (cl.help) {
            global_help();
            return CTL_EXIT_OK;
        }
        return ctl_usage_error(NULL, "no command given");
    }
    if ((c = find_command(cl.cmd)) == NULL)
        return ctl_usage_error(NULL, "unknown command '%s'", cl.cmd);
    if (cl.help) {
        command_help(c);
        return CTL_EXIT_OK;
    }

    ctl_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.cmd = c->name;
    if (cl.too_many || cl.nargs < c->min_args || cl.nargs > c->max_args)
        return ctl_usage_error(&ctx, "usage: lookasidectl %s %s", c->name, c->usage);
    if ((cl.have_count || cl.have_duration) && !c->watch_opts)
        return ctl_usage_error(&ctx, "--count and --duration-ms apply to watch only");
    for (int i = 0; i < cl.nargs; i++)
        if (cl.args[i][0] == '\0')
            return ctl_usage_error(&ctx, "empty argument");
    ctx.lb = cl.lb ? cl.lb : getenv("LOOKASIDE_LB");
    if (ctx.lb == NULL || ctx.lb[0] == '\0')
        return ctl_usage_error(&ctx, "no balancer: give --lb HOST:PORT (or set LOOKASIDE_LB)");
    ctx.sec = cl.sec;
    if (ctx.sec.token == NULL && getenv("LOOKASIDE_TOKEN") && getenv("LOOKASIDE_TOKEN")[0])
        ctx.sec.token = getenv("LOOKASIDE_TOKEN");
    if ((ctx.sec.cert != NULL) != (ctx.sec.key != NULL))
        return ctl_usage_error(&ctx, "--tls-cert and --tls-key go together");
    if ((ctx.sec.cert || ctx.sec.server_name) && ctx.sec.ca == NULL)
        return ctl_usage_error(&ctx, "--tls-cert, --tls-key and --tls-server-name need --tls-ca");
    ctx.json = cl.json;
    ctx.timeout_ms = (int)cl.timeout_ms;
    ctx.args = cl.args;
    ctx.nargs = cl.nargs;
    ctx.count = cl.count;
    ctx.duration_ms = cl.duration_ms;

    ctl_rpc_init();
    ctx.deadline_ms = clock_mono_ms() + ctx.timeout_ms;
    rc = c->run(&ctx);
    ctl_rpc_shutdown();
    if (fflush(stdout) != 0 || ferror(stdout)) {
        perror("lookasidectl: writing output");
        if (rc == CTL_EXIT_OK)
            rc = CTL_EXIT_RPC;
    }
    return rc;
}
