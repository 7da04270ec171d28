#include "envflags.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* One allocation holds the new argv and the "--NAME" strings; another the
 * copies of repeatable values (split in place). */
static char **merged;
static char *split_copy;

char *envflags_name(const char *prefix, const char *opt, char *buf, size_t n)
{
    size_t i = 0;
    for (const char *p = prefix; *p && i + 1 < n; p++)
        buf[i++] = *p;
    for (const char *p = opt; *p && i + 1 < n; p++)
        buf[i++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    buf[i] = '\0';
    return buf;
}

/* True when argv already has --name, --name=... (or an unambiguous
 * getopt_long prefix of it, which getopt would accept as the option). */
static bool on_command_line(const struct option *opts, const struct option *o, int argc,
                            char **argv)
{
    size_t nl = strlen(o->name);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0)
            break;
        if (a[0] != '-' || a[1] != '-')
            continue;
        a += 2;
        size_t al = strcspn(a, "=");
        if (al == 0 || al > nl || strncmp(a, o->name, al) != 0)
            continue;
        if (al == nl)
            return true;
        /* A prefix: it means o only if no other option shares it. */
        int matches = 0;
        for (const struct option *x = opts; x->name; x++)
            if (strncmp(x->name, a, al) == 0)
                matches++;
        if (matches == 1)
            return true;
    }
    return false;
}

static bool truthy(const char *v)
{
    return !(v[0] == '\0' || strcmp(v, "0") == 0 || strcasecmp(v, "false") == 0 ||
             strcasecmp(v, "no") == 0 || strcasecmp(v, "off") == 0);
}

static bool is_repeatable(const char *const *rep, const char *name)
{
    for (; rep && *rep; rep++)
        if (strcmp(*rep, name) == 0)
            return true;
    return false;
}

static size_t count_words(const char *v)
{
    size_t n = 0;
    bool in = false;
    for (; *v; v++) {
        bool sp = isspace((unsigned char)*v) != 0;
        if (!sp && !in)
            n++;
        in = !sp;
    }
    return n;
}

/* Never from the environment: --help/--version (a stray variable must not
 * turn every start into a usage print), and optional arguments (getopt
 * only takes those as --NAME=VALUE; no server flag has one). */
static bool skipped(const struct option *o)
{
    return strcmp(o->name, "help") == 0 || strcmp(o->name, "version") == 0 ||
           o->has_arg == optional_argument;
}

/* The variable's value when it supplies option o (set, not overridden by
 * the command line, not empty/false), with how many values it holds; NULL
 * otherwise. */
static const char *env_value(const struct option *opts, const struct option *o,
                             const char *prefix, const char *const *repeatable, int argc,
                             char **argv, size_t *n_values)
{
    char var[128];
    if (skipped(o))
        return NULL;
    const char *v = getenv(envflags_name(prefix, o->name, var, sizeof var));
    if (v == NULL || on_command_line(opts, o, argc, argv))
        return NULL;
    *n_values = o->has_arg == no_argument ? (truthy(v) ? 1 : 0)
                : is_repeatable(repeatable, o->name) ? count_words(v) : (v[0] ? 1 : 0);
    return *n_values ? v : NULL;
}

void envflags_free(void)
{
    free(merged);
    free(split_copy);
    merged = NULL;
    split_copy = NULL;
}

int envflags_merge(const struct option *opts, const char *prefix, const char *const *repeatable,
                   int argc, char **argv, char ***out_argv)
{
    static bool registered;
    if (!registered)
        registered = atexit(envflags_free) == 0;
    envflags_free();
    *out_argv = argv;
    /* Pass 1: how many argv slots, bytes of names and of split copies. */
    size_t slots = 0, name_bytes = 0, copy_bytes = 0, n;
    for (const struct option *o = opts; o->name; o++) {
        const char *v = env_value(opts, o, prefix, repeatable, argc, argv, &n);
        if (v == NULL)
            continue;
        slots += o->has_arg == no_argument ? 1 : 2 * n;
        name_bytes += strlen(o->name) + 3;
        if (o->has_arg != no_argument && is_repeatable(repeatable, o->name))
            copy_bytes += strlen(v) + 1;
    }
    if (slots == 0)
        return argc;
    size_t total = (size_t)argc + slots + 1;
    merged = malloc(total * sizeof *merged + name_bytes);
    split_copy = copy_bytes ? malloc(copy_bytes) : NULL;
    if (merged == NULL || (copy_bytes && split_copy == NULL)) {
        envflags_free();
        return -1;
    }
    char *names = (char *)(merged + total), *copies = split_copy;
    int k = 0;
    merged[k++] = argv[0];
    for (const struct option *o = opts; o->name; o++) {
        const char *v = env_value(opts, o, prefix, repeatable, argc, argv, &n);
        if (v == NULL)
            continue;
        char *flag = names;
        names += strlen(o->name) + 3;
        strcpy(flag, "--");
        strcat(flag, o->name);
        if (o->has_arg == no_argument) {
            merged[k++] = flag;
        } else if (!is_repeatable(repeatable, o->name)) {
            merged[k++] = flag;
            merged[k++] = (char *)v;
        } else {
            size_t len = strlen(v) + 1;
            memcpy(copies, v, len);
            for (char *save = NULL, *w = strtok_r(copies, " \t\r\n", &save); w;
                 w = strtok_r(NULL, " \t\r\n", &save)) {
                merged[k++] = flag;
                merged[k++] = w;
            }
            copies += len;
        }
    }
    for (int i = 1; i < argc; i++)
        merged[k++] = argv[i];
    merged[k] = NULL;
    *out_argv = merged;
    return k;
}
