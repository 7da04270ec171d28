/* tls.c - server TLS credentials with reload (see tls.h). */
#include "tls.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "util.h"

#define MAX_PEM_BYTES (1 << 20)

struct tls_server {
    char *cert_file, *key_file, *ca_file;
    pthread_mutex_t mu;
    /* The configuration gRPC has not picked up yet (NULL: nothing new). */
    grpc_ssl_server_certificate_config *pending;
    grpc_server_credentials *creds;
};

/* Whole file, NUL-terminated, at most MAX_PEM_BYTES; err says why not. */
static char *slurp(const char *path, size_t *len, char *err, size_t errlen)
{
    char *buf = util_read_file(path, MAX_PEM_BYTES, len);
    if (buf == NULL)
        snprintf(err, errlen, "%s: cannot read (missing, empty or over %d bytes)", path,
                 MAX_PEM_BYTES);
    return buf;
}

static void free_secret(char *s, size_t n)
{
    if (s) {
        OPENSSL_cleanse(s, n);
        free(s);
    }
}

/* Checks with OpenSSL what gRPC would only report as a failed handshake
 * later: the certificate parses, the key matches it, the CA parses. */
static bool pem_check(const char *cert, size_t cert_len, const char *key, size_t key_len,
                      const char *ca, size_t ca_len, char *err, size_t errlen)
{
    bool ok = false;
    BIO *cb = BIO_new_mem_buf(cert, (int)cert_len), *kb = BIO_new_mem_buf(key, (int)key_len);
    X509 *x = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
    EVP_PKEY *k = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
    if (x == NULL)
        snprintf(err, errlen, "certificate: not a PEM X.509 certificate");
    else if (k == NULL)
        snprintf(err, errlen, "key: not a PEM private key (encrypted keys are not supported)");
    else if (X509_check_private_key(x, k) != 1)
        snprintf(err, errlen, "key: does not match the certificate");
    else
        ok = true;
    X509_free(x);
    EVP_PKEY_free(k);
    BIO_free(cb);
    BIO_free(kb);
    if (ok && ca) {
        BIO *ab = BIO_new_mem_buf(ca, (int)ca_len);
        X509 *cx = ab ? PEM_read_bio_X509(ab, NULL, NULL, NULL) : NULL;
        if (cx == NULL) {
            snprintf(err, errlen, "client CA: not a PEM X.509 certificate");
            ok = false;
        }
        X509_free(cx);
        BIO_free(ab);
    }
    ERR_clear_error();
    return ok;
}

static lookaside_status load_config(const tls_server *t, grpc_ssl_server_certificate_config **out,
                                    char *err, size_t errlen)
{
    size_t cl = 0, kl = 0, al = 0;
    char *cert = slurp(t->cert_file, &cl, err, errlen);
    char *key = cert ? slurp(t->key_file, &kl, err, errlen) : NULL;
    char *ca = key && t->ca_file ? slurp(t->ca_file, &al, err, errlen) : NULL;
    lookaside_status st = LOOKASIDE_EIO;
    if (cert && key && (ca || !t->ca_file)) {
        st = LOOKASIDE_EINVAL;
        if (pem_check(cert, cl, key, kl, ca, al, err, errlen)) {
            grpc_ssl_pem_key_cert_pair pair = {key, cert};
            /* gRPC copies the strings. Its fetcher path asserts on NULL
             * roots even when no client certificate is asked for; those
             * roots are then never used, so the server's own chain does. */
            *out = grpc_ssl_server_certificate_config_create(ca ? ca : cert, &pair, 1);
            st = *out ? LOOKASIDE_OK : LOOKASIDE_ENOMEM;
        }
    }
    free(cert);
    free_secret(key, kl);
    free(ca);
    return st;
}

/* gRPC core, at each new handshake (its threads): hand over a configuration
 * read since the last call, if any. */
static grpc_ssl_certificate_config_reload_status fetch_config(
    void *user, grpc_ssl_server_certificate_config **config)
{
    tls_server *t = user;
    pthread_mutex_lock(&t->mu);
    grpc_ssl_server_certificate_config *c = t->pending;
    t->pending = NULL;
    pthread_mutex_unlock(&t->mu);
    if (c == NULL)
        return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
    *config = c;   /* gRPC owns it now */
    return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
}

lookaside_status tls_server_create(const char *cert_file, const char *key_file,
                                   const char *client_ca_file, tls_server **out, char *err,
                                   size_t errlen)
{
    tls_server *t = calloc(1, sizeof *t);
    if (t == NULL)
        return LOOKASIDE_ENOMEM;
    pthread_mutex_init(&t->mu, NULL);
    t->cert_file = strdup(cert_file);
    t->key_file = strdup(key_file);
    t->ca_file = client_ca_file ? strdup(client_ca_file) : NULL;
    if (!t->cert_file || !t->key_file || (client_ca_file && !t->ca_file)) {
        tls_server_destroy(t);
        return LOOKASIDE_ENOMEM;
    }
    lookaside_status st = load_config(t, &t->pending, err, errlen);
    if (st != LOOKASIDE_OK) {
        tls_server_destroy(t);
        return st;
    }
    grpc_ssl_server_credentials_options *o =
        grpc_ssl_server_credentials_create_options_using_config_fetcher(
            client_ca_file ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                           : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
            fetch_config, t);
    t->creds = o ? grpc_ssl_server_credentials_create_with_options(o) : NULL;
    if (t->creds == NULL) {
        snprintf(err, errlen, "gRPC refused the TLS configuration");
        tls_server_destroy(t);
        return LOOKASIDE_EINVAL;
    }
    *out = t;
    return LOOKASIDE_OK;
}

grpc_server_credentials *tls_server_credentials(tls_server *t)
{
    /* Borrowed: the port's security connector takes its own reference. */
    return t->creds;
}

lookaside_status tls_server_reload(tls_server *t, char *err, size_t errlen)
{
    grpc_ssl_server_certificate_config *c = NULL;
    lookaside_status st = load_config(t, &c, err, errlen);
    if (st != LOOKASIDE_OK)
        return st;
    pthread_mutex_lock(&t->mu);
    grpc_ssl_server_certificate_config *old = t->pending;
    t->pending = c;
    pthread_mutex_unlock(&t->mu);
    if (old)
        grpc_ssl_server_certificate_config_destroy(old);
    return LOOKASIDE_OK;
}

void tls_server_destroy(tls_server *t)
{
    if (t == NULL)
        return;
    if (t->creds)
        grpc_server_credentials_release(t->creds);
    if (t->pending)
        grpc_ssl_server_certificate_config_destroy(t->pending);
    pthread_mutex_destroy(&t->mu);
    free(t->cert_file);
    free(t->key_file);
    free(t->ca_file);
    free(t);
}
