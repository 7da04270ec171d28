/* registry_snap.h - internal to the registry: packing lists and building
 * snapshots from a reg_service. Loop thread; no state of its own.
 * Every function returns NULL on allocation failure. */
#ifndef LA_REGISTRY_SNAP_H
#define LA_REGISTRY_SNAP_H

#include "registry.h"

/* The lookaside.v1.ServerList of s as published now (caller owns it). */
grpc_byte_buffer *regsnap_pack_list(const reg_service *s, const registry_config *cfg,
                                    int64_t wall_ms);
/* A hash of what watchers see in s's list (backends as listed, list state);
 * not of the version, time or flags. Store mode compares it between
 * publishes. */
uint64_t regsnap_content_hash(const reg_service *s);
/* A heartbeat: ServerList{heartbeat=true} of s->version, no backends. */
grpc_byte_buffer *regsnap_pack_heartbeat(const reg_service *s, const registry_config *cfg,
                                         int64_t wall_ms);
/* A snapshot of s with one reference; takes packed (even on failure). */
snap_service *regsnap_build(const reg_service *s, const registry_config *cfg,
                            grpc_byte_buffer *packed, uint64_t seq, int64_t mono_ms);

#endif
