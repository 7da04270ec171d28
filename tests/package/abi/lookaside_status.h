/* lookaside_status.h - the one status enum used across lookaside.
 *
 * Every fallible function in lookaside returns a lookaside_status. Zero is
 * success. The server maps a status to a gRPC status code in exactly one
 * place (la_status_to_grpc in common/status.c). Installed with lookaside.h.
 * Thread-safe: lookaside_status_str returns static strings. */
#ifndef LOOKASIDE_STATUS_H
#define LOOKASIDE_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lookaside_status {
    LOOKASIDE_OK = 0,
    LOOKASIDE_EINVAL,      /* a malformed or out-of-range argument or message */
    LOOKASIDE_ENOMEM,      /* allocation failed */
    LOOKASIDE_ENOTFOUND,   /* no such service, backend or file */
    LOOKASIDE_EEXIST,      /* already exists */
    LOOKASIDE_EIO,         /* an I/O or database error */
    LOOKASIDE_ECORRUPT,    /* a file is not a lookaside database or is damaged */
    LOOKASIDE_ETOONEW,     /* a database written by a newer schema */
    LOOKASIDE_ELIMIT,      /* a configured limit was reached */
    LOOKASIDE_ETOOBIG,     /* a message or string is over its size cap */
    LOOKASIDE_EUNAUTH,     /* a credential is missing */
    LOOKASIDE_EPERM,       /* a credential is wrong */
    LOOKASIDE_EUNAVAIL,    /* no backend or balancer available right now */
    LOOKASIDE_ESHUTDOWN,   /* the object is shutting down */
    LOOKASIDE_ETIMEOUT,    /* a deadline passed */
    LOOKASIDE_EINTERNAL    /* a bug: an invariant did not hold */
} lookaside_status;

/* Short lower-case name of a status ("ok", "invalid argument", ...). Never
 * NULL; unknown values give "unknown status". */
const char *lookaside_status_str(lookaside_status st);

#ifdef __cplusplus
}
#endif
#endif
