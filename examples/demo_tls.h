/* demo_tls.h - the demo programs' TLS and token flags, turned into gRPC
 * credentials for liblookaside's balancer and backend channels and for the
 * demo backend's own port.
 *
 * Flags (both programs): --tls-ca FILE (verify the balancer, and in the
 * client the backends, against this CA), --tls-cert FILE --tls-key FILE
 * (the program's certificate: the client certificate towards the balancer
 * and, in the backend, also the certificate it serves with),
 * --tls-server-name NAME (the name to verify instead of the dialled host),
 * --token TOKEN (a bearer token for the balancer; default $LOOKASIDE_TOKEN;
 * needs --tls-ca because gRPC sends call credentials over TLS only).
 *
 * Single-threaded setup code; the structure owns what it builds until
 * demo_tls_release. */
#ifndef DEMO_TLS_H
#define DEMO_TLS_H

#include <getopt.h>
#include <stdbool.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>

#include "lookaside_status.h"

typedef struct demo_tls {
    const char *ca, *cert, *key, *server_name, *token;
    /* built by demo_tls_build */
    grpc_channel_credentials *balancer_creds;   /* with the token, if any */
    grpc_channel_credentials *backend_creds;    /* without it */
    grpc_arg arg;
    grpc_channel_args args;                     /* the server-name override */
} demo_tls;

/* getopt_long entries for the five flags, with val = first_val + 0..4. */
#define DEMO_TLS_OPTIONS(first_val)                                                            \
    {"tls-ca", required_argument, 0, (first_val)},                                             \
        {"tls-cert", required_argument, 0, (first_val) + 1},                                   \
        {"tls-key", required_argument, 0, (first_val) + 2},                                    \
        {"tls-server-name", required_argument, 0, (first_val) + 3},                            \
        {"token", required_argument, 0, (first_val) + 4}

#define DEMO_TLS_USAGE                                                                         \
    "  --tls-ca FILE               TLS to the balancer (and, client, to backends):\n"         \
    "                              verify against this CA (PEM)\n"                            \
    "  --tls-cert FILE --tls-key FILE\n"                                                      \
    "                              this program's certificate (client certificate for\n"     \
    "                              mTLS; the demo backend also serves TLS with it)\n"         \
    "  --tls-server-name NAME      name to verify instead of the dialled host\n"              \
    "  --token TOKEN               bearer token for the balancer (needs --tls-ca;\n"          \
    "                              default $LOOKASIDE_TOKEN)\n"

/* Stores flag value v for option index i (0..4). */
void demo_tls_set(demo_tls *t, int i, const char *v);
/* Checks the combination and builds the credentials (none when --tls-ca is
 * absent). Prints why and returns false on a bad combination or file. */
bool demo_tls_build(demo_tls *t, const char *prog);
/* NULL when --tls-ca was not given (plaintext). */
const grpc_channel_args *demo_tls_args(const demo_tls *t);
/* Server credentials for --tls-cert/--tls-key (NULL: serve plaintext).
 * The caller releases them. */
grpc_server_credentials *demo_tls_server_credentials(const demo_tls *t, const char *prog);
void demo_tls_release(demo_tls *t);

#endif
