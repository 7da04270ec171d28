/* auth.h - who a peer is and what it may do (authorization).
 *
 * Modes (chosen at start by server/main.c):
 *   AUTH_MODE_PROTECTED  plaintext, neither TLS nor --insecure: only loopback
 *                        peers are served; every other peer is refused with
 *                        UNAUTHENTICATED before any handler runs.
 *   AUTH_MODE_INSECURE   plaintext, --insecure: any peer.
 *   AUTH_MODE_TLS        TLS (mTLS when a client CA is given): any peer that
 *                        completes the handshake.
 *
 * Identities: the mTLS peer certificate (URI SAN first, e.g. spiffe://...,
 * else the first DNS SAN, else the CN), and/or a bearer token (metadata
 * "authorization: Bearer TOKEN", or Register.credential on Report streams).
 * A token's identity is "token:LABEL" with the label from the policy file;
 * the secret itself is never stored (only its SHA-256) nor logged.
 *
 * Permissions come from the policy file (format in README "Security"):
 *   watch:SERVICE | watch:*     Watch, GetServerList, BalanceLoad, Admin reads
 *   report:SERVICE | report:*   LoadReporter.Report registering for SERVICE
 *   register-any                register an address that is not the peer's
 *   admin                       SetDrain, SetWeightOverride (and everything)
 * With no policy file, outside TLS, the anonymous peer holds every
 * permission (the demo's loopback mode); TLS requires a policy file.
 *
 * Decisions: LOOKASIDE_OK; LOOKASIDE_EUNAUTH when the peer has no identity
 * (-> UNAUTHENTICATED); LOOKASIDE_EPERM when its identity lacks the
 * permission (-> PERMISSION_DENIED).
 *
 * Threads: create, reload and destroy on one thread (the loop thread). The
 * check functions (auth_check, auth_identity, auth_peer_admitted, ...) may
 * be called from any thread, also while auth_reload runs: the policy sits
 * behind a reader-writer lock and a reload swaps it whole. auth_peer values
 * are plain data owned by the caller. */
#ifndef LA_AUTH_H
#define LA_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/grpc.h>

#include "lookaside_status.h"

typedef struct auth auth;

typedef enum auth_mode {
    AUTH_MODE_PROTECTED = 0,
    AUTH_MODE_INSECURE,
    AUTH_MODE_TLS
} auth_mode;

typedef enum auth_perm {
    /* Zero so a method table entry that forgets its permission is treated as
     * admin-only, never as public. */
    AUTH_PERM_UNSET = 0,
    AUTH_PERM_PUBLIC,        /* nothing needed (health checks) */
    AUTH_PERM_WATCH,         /* watch(service) */
    AUTH_PERM_REPORT,        /* report(service) */
    AUTH_PERM_REGISTER_ANY,  /* register an address that is not the peer's */
    AUTH_PERM_ADMIN
} auth_perm;

#define AUTH_ID_MAX 256

/* What one call presented. Filled by auth_peer_from_call. */
typedef struct auth_peer {
    char cert_id[AUTH_ID_MAX];   /* "" when no verified client certificate */
    unsigned char token_sha[32]; /* SHA-256 of the bearer token */
    bool has_token;
    bool loopback;               /* peer address is 127.0.0.0/8, ::1 or unix */
    char host[64];               /* peer IP without port ("" if unknown) */
} auth_peer;

/* Creates the authorizer. policy_file may be NULL (see the header comment;
 * AUTH_MODE_TLS without one is EINVAL). report_token_file (the older
 * "SERVICE CREDENTIAL" format) may be NULL; its lines become token grants of
 * report:SERVICE, and when given the anonymous peer loses report:*. err gets
 * a one-line reason on failure. */
lookaside_status auth_create(auth_mode mode, const char *policy_file,
                             const char *report_token_file, auth **out, char *err, size_t errlen);
/* Re-reads the files given at creation. On failure the old policy stays and
 * err says why. Loop thread. */
lookaside_status auth_reload(auth *a, char *err, size_t errlen);
void auth_destroy(auth *a);
auth_mode auth_get_mode(const auth *a);

/* The permission a server method needs, by its full path. Unknown paths need
 * admin. Service-scoped permissions (watch, report) take the service from
 * the request's "service" string field (auth_request_service). */
auth_perm auth_method_perm(const char *path);
/* The request's "service" field, or NULL when its message has none. */
const char *auth_request_service(const void *protobuf_c_message);

/* Fills p from a server call: peer address, verified certificate identity
 * (grpc_call_auth_context), and the bearer token found in md. */
void auth_peer_from_call(grpc_call *call, const grpc_metadata_array *md, auth_peer *p);
/* Adds a token presented in a message (Register.credential). NULL/"": no-op. */
void auth_peer_add_token(auth_peer *p, const char *token);

/* True when the peer may be served at all (protected mode: loopback only). */
bool auth_peer_admitted(const auth *a, const auth_peer *p);
/* May p use perm for service? service NULL for a scoped permission asks
 * "for at least one service" (a pre-check before the service is known).
 * Returns OK, EUNAUTH or EPERM as described above. */
lookaside_status auth_check(const auth *a, const auth_peer *p, auth_perm perm,
                            const char *service);
/* The peer's identity for logs and address ownership: the certificate
 * identity, else "token:LABEL" (a known token), else "" (anonymous). Never
 * the secret. Writes at most len bytes. */
void auth_identity(const auth *a, const auth_peer *p, char *out, size_t len);
/* Is address (ip:port) an address of the peer? (the no-NAT rule) */
bool auth_address_is_peer(const auth_peer *p, const char *address);

const char *auth_perm_name(auth_perm perm);

/* SHA-256 of a token, hex (65 bytes with the NUL): for writing policy files. */
void auth_token_hash_hex(const char *token, char out[65]);

#endif
