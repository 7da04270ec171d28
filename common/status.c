#include "status.h"

const char *lookaside_status_str(lookaside_status st)
{
    switch (st) {
    case LOOKASIDE_OK: return "ok";
    case LOOKASIDE_EINVAL: return "invalid argument";
    case LOOKASIDE_ENOMEM: return "out of memory";
    case LOOKASIDE_ENOTFOUND: return "not found";
    case LOOKASIDE_EEXIST: return "already exists";
    case LOOKASIDE_EIO: return "i/o error";
    case LOOKASIDE_ECORRUPT: return "corrupt or foreign file";
    case LOOKASIDE_ETOONEW: return "written by a newer version";
    case LOOKASIDE_ELIMIT: return "limit reached";
    case LOOKASIDE_ETOOBIG: return "too big";
    case LOOKASIDE_EUNAUTH: return "unauthenticated";
    case LOOKASIDE_EPERM: return "permission denied";
    case LOOKASIDE_EUNAVAIL: return "unavailable";
    case LOOKASIDE_ESHUTDOWN: return "shutting down";
    case LOOKASIDE_ETIMEOUT: return "timed out";
    case LOOKASIDE_EINTERNAL: return "internal error";
    case LOOKASIDE_ESTATE: return "not valid in this state";
    case LOOKASIDE_ECONFLICT: return "superseded";
    }
    return "unknown status";
}

grpc_status_code la_status_to_grpc(lookaside_status st)
{
    switch (st) {
    case LOOKASIDE_OK: return GRPC_STATUS_OK;
    case LOOKASIDE_EINVAL: return GRPC_STATUS_INVALID_ARGUMENT;
    case LOOKASIDE_ENOMEM: return GRPC_STATUS_RESOURCE_EXHAUSTED;
    case LOOKASIDE_ENOTFOUND: return GRPC_STATUS_NOT_FOUND;
    case LOOKASIDE_EEXIST: return GRPC_STATUS_ALREADY_EXISTS;
    case LOOKASIDE_EIO: return GRPC_STATUS_INTERNAL;
    case LOOKASIDE_ECORRUPT: return GRPC_STATUS_DATA_LOSS;
    case LOOKASIDE_ETOONEW: return GRPC_STATUS_FAILED_PRECONDITION;
    case LOOKASIDE_ELIMIT: return GRPC_STATUS_RESOURCE_EXHAUSTED;
    case LOOKASIDE_ETOOBIG: return GRPC_STATUS_RESOURCE_EXHAUSTED;
    case LOOKASIDE_EUNAUTH: return GRPC_STATUS_UNAUTHENTICATED;
    case LOOKASIDE_EPERM: return GRPC_STATUS_PERMISSION_DENIED;
    case LOOKASIDE_EUNAVAIL: return GRPC_STATUS_UNAVAILABLE;
    case LOOKASIDE_ESHUTDOWN: return GRPC_STATUS_UNAVAILABLE;
    case LOOKASIDE_ETIMEOUT: return GRPC_STATUS_DEADLINE_EXCEEDED;
    case LOOKASIDE_EINTERNAL: return GRPC_STATUS_INTERNAL;
    case LOOKASIDE_ESTATE: return GRPC_STATUS_FAILED_PRECONDITION;
    case LOOKASIDE_ECONFLICT: return GRPC_STATUS_ABORTED;
    }
    return GRPC_STATUS_UNKNOWN;
}
