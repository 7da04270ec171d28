/* demo_tls.c - see demo_tls.h. */
#include "demo_tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lookaside.h"
#include "util.h"

void demo_tls_set(demo_tls *t, int i, const char *v)
{
    const char **slots[] = {&t->ca, &t->cert, &t->key, &t->server_name, &t->token};
    if (i >= 0 && i < 5)
        *slots[i] = v;
}

bool demo_tls_build(demo_tls *t, const char *prog)
{
    if (t->token == NULL && getenv("LOOKASIDE_TOKEN") && getenv("LOOKASIDE_TOKEN")[0])
        t->token = getenv("LOOKASIDE_TOKEN");
    if ((t->cert != NULL) != (t->key != NULL)) {
        fprintf(stderr, "%s: --tls-cert and --tls-key go together\n", prog);
        return false;
    }
    if (t->ca == NULL) {
        if (t->token || t->server_name) {
            fprintf(stderr, "%s: --token and --tls-server-name need --tls-ca\n", prog);
            return false;
        }
        return true;
    }
    lookaside_status st = lookaside_tls_credentials_create(t->ca, t->cert, t->key,
                                                           &t->backend_creds);
    if (st != LOOKASIDE_OK) {
        fprintf(stderr, "%s: TLS files (--tls-ca/--tls-cert/--tls-key): %s\n", prog,
                lookaside_status_str(st));
        return false;
    }
    if (t->token) {
        /* The token goes to the balancer only, never to backends. */
        grpc_channel_credentials *base = NULL;
        st = lookaside_tls_credentials_create(t->ca, t->cert, t->key, &base);
        if (st != LOOKASIDE_OK) {
            demo_tls_release(t);
            return false;
        }
        grpc_call_credentials *tok = grpc_access_token_credentials_create(t->token, NULL);
        t->balancer_creds = grpc_composite_channel_credentials_create(base, tok, NULL);
        grpc_call_credentials_release(tok);
        grpc_channel_credentials_release(base);
    } else {
        st = lookaside_tls_credentials_create(t->ca, t->cert, t->key, &t->balancer_creds);
        if (st != LOOKASIDE_OK) {
            demo_tls_release(t);
            return false;
        }
    }
    if (t->server_name) {
        t->arg.type = GRPC_ARG_STRING;
        t->arg.key = (char *)GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
        t->arg.value.string = (char *)t->server_name;
        t->args.num_args = 1;
        t->args.args = &t->arg;
    }
    return true;
}

const grpc_channel_args *demo_tls_args(const demo_tls *t)
{
    return t->args.num_args ? &t->args : NULL;
}

grpc_server_credentials *demo_tls_server_credentials(const demo_tls *t, const char *prog)
{
    if (t->cert == NULL)
        return NULL;
    char *cert = util_read_file(t->cert, 1u << 20, NULL);
    char *key = util_read_file(t->key, 1u << 20, NULL);
    grpc_server_credentials *creds = NULL;
    if (cert == NULL || key == NULL) {
        fprintf(stderr, "%s: cannot read %s\n", prog, cert == NULL ? t->cert : t->key);
    } else {
        grpc_ssl_pem_key_cert_pair pair = {key, cert};
        creds = grpc_ssl_server_credentials_create_ex(
            NULL, &pair, 1, GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE, NULL);
    }
    free(cert);
    if (key) {
        memset(key, 0, strlen(key));
        free(key);
    }
    return creds;
}

void demo_tls_release(demo_tls *t)
{
    if (t->balancer_creds)
        grpc_channel_credentials_release(t->balancer_creds);
    if (t->backend_creds)
        grpc_channel_credentials_release(t->backend_creds);
    t->balancer_creds = t->backend_creds = NULL;
}
