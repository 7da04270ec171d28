/* status.h - internal status helpers: the mapping to gRPC status codes. */
#ifndef LA_STATUS_H
#define LA_STATUS_H

#include <grpc/status.h>

#include "lookaside_status.h"

/* The one mapping from lookaside_status to grpc_status_code. */
grpc_status_code la_status_to_grpc(lookaside_status st);

#endif
