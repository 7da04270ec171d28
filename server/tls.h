/* tls.h - the server's TLS credentials, re-readable at run time.
 *
 * Built on gRPC core's certificate-config fetcher: gRPC asks for the current
 * configuration when it starts a handshake, so a reload changes what new
 * connections see while established connections (and their streams) keep
 * the session they negotiated.
 *
 * Files are PEM. With a client CA, clients must present a certificate that
 * chains to it (mTLS); without one, no client certificate is asked for.
 *
 * Threads: create, reload and destroy on one thread (the loop thread); gRPC
 * calls the fetcher on its own threads, which is why the pending
 * configuration sits behind a mutex. Ownership: tls_server_credentials
 * returns credentials owned by t (do not release); the tls_server must outlive
 * every server the credentials were given to (destroy it after
 * grpc_shutdown). */
#ifndef LA_TLS_H
#define LA_TLS_H

#include <stddef.h>

#include <grpc/grpc_security.h>

#include "lookaside_status.h"

typedef struct tls_server tls_server;

/* Reads and checks (certificate parses, key matches it, CA parses) the
 * files. Errors: EIO (unreadable), EINVAL (bad PEM, key mismatch), with a
 * one-line reason in err. client_ca may be NULL. */
lookaside_status tls_server_create(const char *cert_file, const char *key_file,
                                   const char *client_ca_file, tls_server **out, char *err,
                                   size_t errlen);
grpc_server_credentials *tls_server_credentials(tls_server *t);
/* Re-reads the same paths. On success the next handshake uses them; on
 * failure the previous ones stay in use and err says why. */
lookaside_status tls_server_reload(tls_server *t, char *err, size_t errlen);
/* NULL: no-op. */
void tls_server_destroy(tls_server *t);

#endif
