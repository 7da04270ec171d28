#include "channel.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc_security.h>

#include "log.h"
#include "lookaside.h"

/* Never resolved or connected: the keeper channel stays IDLE because nobody
 * starts a call on it or asks it to connect. */
#define KEEPER_TARGET "passthrough:///keeper.lookaside.invalid:1"

static void arg_free(grpc_arg *a)
{
    free(a->key);
    if (a->type == GRPC_ARG_STRING)
        free(a->value.string);
    else if (a->type == GRPC_ARG_POINTER && a->value.pointer.p != NULL)
        a->value.pointer.vtable->destroy(a->value.pointer.p);
}

static lookaside_status arg_copy(grpc_arg *dst, const grpc_arg *src)
{
    memset(dst, 0, sizeof *dst);
    if (src->key == NULL || (src->type == GRPC_ARG_POINTER && src->value.pointer.vtable == NULL))
        return LOOKASIDE_EINVAL;
    dst->type = src->type;
    if ((dst->key = strdup(src->key)) == NULL)
        return LOOKASIDE_ENOMEM;
    switch (src->type) {
    case GRPC_ARG_STRING:
        if ((dst->value.string = strdup(src->value.string ? src->value.string : "")) == NULL) {
            free(dst->key);
            return LOOKASIDE_ENOMEM;
        }
        break;
    case GRPC_ARG_INTEGER:
        dst->value.integer = src->value.integer;
        break;
    case GRPC_ARG_POINTER:
        dst->value.pointer.vtable = src->value.pointer.vtable;
        dst->value.pointer.p = src->value.pointer.p != NULL
                                   ? src->value.pointer.vtable->copy(src->value.pointer.p)
                                   : NULL;
        break;
    }
    return LOOKASIDE_OK;
}

lookaside_status la_chan_cfg_init(la_chan_cfg *cfg, grpc_channel_credentials *creds,
                                  const grpc_channel_args *args)
{
    memset(cfg, 0, sizeof *cfg);
    if (args != NULL && args->num_args > 0) {
        if (args->args == NULL)
            return LOOKASIDE_EINVAL;
        cfg->args.args = calloc(args->num_args, sizeof *cfg->args.args);
        if (cfg->args.args == NULL)
            return LOOKASIDE_ENOMEM;
        for (size_t i = 0; i < args->num_args; i++) {
            lookaside_status st = arg_copy(&cfg->args.args[i], &args->args[i]);
            if (st != LOOKASIDE_OK) {
                la_chan_cfg_free(cfg);
                return st;
            }
            cfg->args.num_args++;
        }
    }
    if (creds != NULL) {
        cfg->keeper = grpc_channel_create(KEEPER_TARGET, creds, NULL);
        if (cfg->keeper == NULL) {
            la_chan_cfg_free(cfg);
            return LOOKASIDE_ENOMEM;
        }
        cfg->creds = creds;
    }
    return LOOKASIDE_OK;
}

void la_chan_cfg_free(la_chan_cfg *cfg)
{
    for (size_t i = 0; i < cfg->args.num_args; i++)
        arg_free(&cfg->args.args[i]);
    free(cfg->args.args);
    if (cfg->keeper != NULL)
        grpc_channel_destroy(cfg->keeper);
    memset(cfg, 0, sizeof *cfg);
}

static bool has_key(const grpc_channel_args *a, const char *key)
{
    for (size_t i = 0; i < a->num_args; i++)
        if (strcmp(a->args[i].key, key) == 0)
            return true;
    return false;
}

static void add_int(grpc_arg *v, size_t *n, const grpc_channel_args *app, const char *key,
                    int value)
{
    if (has_key(app, key))
        return;
    v[*n].type = GRPC_ARG_INTEGER;
    v[*n].key = (char *)key;
    v[*n].value.integer = value;
    (*n)++;
}

static void add_str(grpc_arg *v, size_t *n, const grpc_channel_args *app, const char *key,
                    const char *value)
{
    if (has_key(app, key))
        return;
    v[*n].type = GRPC_ARG_STRING;
    v[*n].key = (char *)key;
    v[*n].value.string = (char *)value;
    (*n)++;
}

size_t la_channel_args(const la_chan_cfg *cfg, la_chan_kind kind, uint32_t backoff_initial,
                       uint32_t backoff_max, grpc_arg *v)
{
    static const grpc_channel_args none = {0, NULL};
    const grpc_channel_args *app = cfg != NULL ? &cfg->args : &none;
    if (app->num_args > 0)
        memcpy(v, app->args, app->num_args * sizeof *v);
    size_t n = app->num_args;
    add_int(v, &n, app, GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, (int)backoff_initial);
    add_int(v, &n, app, GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, (int)backoff_max);
    /* gRPC gives each connection attempt at least this long (default 20 s):
     * towards a host that drops packets, a retry would wait that long. */
    add_int(v, &n, app, GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
            backoff_max > 2000 ? (int)backoff_max : 2000);
    if (kind == LA_CHAN_FALLBACK) {
        add_str(v, &n, app, GRPC_ARG_LB_POLICY_NAME, "round_robin");
        add_str(v, &n, app, GRPC_ARG_SERVICE_CONFIG,
                "{\"loadBalancingConfig\":[{\"round_robin\":{}}]}");
    } else if (kind == LA_CHAN_BALANCER) {
        add_int(v, &n, app, GRPC_ARG_HTTP2_BDP_PROBE, 0);
        add_int(v, &n, app, GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, LA_BALANCER_WINDOW);
    }
    return n;
}

grpc_channel *la_channel_open(const la_chan_cfg *cfg, const char *target, la_chan_kind kind,
                              uint32_t backoff_initial, uint32_t backoff_max)
{
    size_t napp = cfg != NULL ? cfg->args.num_args : 0;
    grpc_arg *v = malloc((napp + LA_CHAN_OWN_ARGS) * sizeof *v);
    if (v == NULL)
        return NULL;
    grpc_channel_args ca = {la_channel_args(cfg, kind, backoff_initial, backoff_max, v), v};
    grpc_channel *ch;
    if (cfg != NULL && cfg->creds != NULL) {
        ch = grpc_channel_create(target, cfg->creds, &ca);
    } else {
        grpc_channel_credentials *creds = grpc_insecure_credentials_create();
        ch = grpc_channel_create(target, creds, &ca);
        grpc_channel_credentials_release(creds);
    }
    free(v);
    if (ch == NULL)
        log_warn("client", "cannot create a channel to %s", target);
    return ch;
}

/* ------------------------------------------------------------ TLS */

#define PEM_MAX_BYTES (1u << 20)

/* Reads a PEM file into a NUL-terminated string (caller frees). */
static lookaside_status read_pem(const char *path, char **out)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return errno == ENOENT ? LOOKASIDE_ENOTFOUND : LOOKASIDE_EIO;
    char *buf = malloc(PEM_MAX_BYTES + 1);
    if (buf == NULL) {
        fclose(f);
        return LOOKASIDE_ENOMEM;
    }
    size_t n = fread(buf, 1, PEM_MAX_BYTES + 1, f);
    bool err = ferror(f) != 0;
    fclose(f);
    lookaside_status st = LOOKASIDE_OK;
    if (err)
        st = LOOKASIDE_EIO;
    else if (n > PEM_MAX_BYTES)
        st = LOOKASIDE_ETOOBIG;
    else if (memchr(buf, '\0', n) != NULL) /* a NUL would silently cut the PEM */
        st = LOOKASIDE_EINVAL;
    if (st == LOOKASIDE_OK) {
        buf[n] = '\0';
        if (strstr(buf, "-----BEGIN ") == NULL)
            st = LOOKASIDE_EINVAL;
    }
    if (st != LOOKASIDE_OK) {
        free(buf);
        return st;
    }
    *out = buf;
    return LOOKASIDE_OK;
}

static void free_secret(char *s)
{
    if (s != NULL) {
        memset(s, 0, strlen(s));
        free(s);
    }
}

lookaside_status lookaside_tls_credentials_create(const char *ca_file, const char *cert_file,
                                                  const char *key_file,
                                                  grpc_channel_credentials **out)
{
    if (out == NULL)
        return LOOKASIDE_EINVAL;
    *out = NULL;
    if ((cert_file == NULL) != (key_file == NULL))
        return LOOKASIDE_EINVAL;
    char *ca = NULL, *cert = NULL, *key = NULL;
    lookaside_status st = LOOKASIDE_OK;
    if (ca_file != NULL)
        st = read_pem(ca_file, &ca);
    if (st == LOOKASIDE_OK && cert_file != NULL)
        st = read_pem(cert_file, &cert);
    if (st == LOOKASIDE_OK && key_file != NULL)
        st = read_pem(key_file, &key);
    if (st == LOOKASIDE_OK) {
        grpc_ssl_pem_key_cert_pair pair = {key, cert};
        /* The pair is copied by gRPC. A NULL ca uses gRPC's default roots
         * (GRPC_DEFAULT_SSL_ROOTS_FILE_PATH or the bundled ones). */
        grpc_init();
        *out = grpc_ssl_credentials_create(ca, cert != NULL ? &pair : NULL, NULL, NULL);
        grpc_shutdown();
        if (*out == NULL)
            st = LOOKASIDE_EINVAL;
    }
    if (st != LOOKASIDE_OK)
        log_warn("client", "TLS credentials: %s: %s",
                 ca_file ? ca_file : "(default roots)", lookaside_status_str(st));
    free(ca);
    free(cert);
    free_secret(key);
    return st;
}
