#include "pbio.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>

grpc_byte_buffer *pbio_pack(const ProtobufCMessage *msg)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    grpc_slice s = grpc_slice_malloc(n);
    protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

/* ----------------------------------------------------------- string check */

/* Deeper than any message we define; bounds the recursion on hostile
 * input (each level costs a few bytes of wire, so 100 KiB could otherwise
 * nest thousands deep). */
#define WALK_MAX_DEPTH 64

enum { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_LEN = 2, WIRE_FIXED32 = 5 };

typedef struct walk {
    const char *names[WALK_MAX_DEPTH + 1];   /* field names from the root */
    int depth;
    bool nul;                                 /* stopped at a NUL, not bad wire */
} walk;

static bool read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t r = 0;
    for (int i = 0; i < 10 && *p < end; i++) {
        uint8_t b = *(*p)++;
        r |= (uint64_t)(b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0) {
            *v = r;
            return true;
        }
    }
    return false;
}

static void walk_path(const walk *w, const char *last, char *out, size_t len)
{
    if (out == NULL || len == 0)
        return;
    size_t n = 0;
    out[0] = '\0';
    for (int i = 0; i <= w->depth; i++) {
        const char *name = i < w->depth ? w->names[i] : last;
        int k = snprintf(out + n, len - n, "%s%s", n ? "." : "", name);
        if (k < 0 || (size_t)k >= len - n)
            return;   /* truncated path: still names the outer fields */
        n += (size_t)k;
    }
}

static lookaside_status walk_message(walk *w, const ProtobufCMessageDescriptor *desc,
                                     const uint8_t *p, const uint8_t *end, char *field,
                                     size_t field_len)
{
    while (p < end) {
        uint64_t tag, len;
        if (!read_varint(&p, end, &tag) || (tag >> 3) == 0 || (tag >> 3) > UINT32_MAX)
            goto malformed;
        switch (tag & 7) {
        case WIRE_VARINT:
            if (!read_varint(&p, end, &len))
                goto malformed;
            continue;
        case WIRE_FIXED64:
            if (end - p < 8)
                goto malformed;
            p += 8;
            continue;
        case WIRE_FIXED32:
            if (end - p < 4)
                goto malformed;
            p += 4;
            continue;
        case WIRE_LEN:
            break;
        default:   /* groups and reserved types: protobuf-c refuses them too */
            goto malformed;
        }
        if (!read_varint(&p, end, &len) || len > (uint64_t)(end - p))
            goto malformed;
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field(desc, (unsigned)(tag >> 3));
        if (f != NULL && f->type == PROTOBUF_C_TYPE_STRING && memchr(p, 0, (size_t)len)) {
            walk_path(w, f->name, field, field_len);
            w->nul = true;
            return LOOKASIDE_EINVAL;
        }
        if (f != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE) {
            if (w->depth >= WALK_MAX_DEPTH) {
                walk_path(w, "(nested too deeply)", field, field_len);
                return LOOKASIDE_EINVAL;
            }
            w->names[w->depth++] = f->name;
            lookaside_status st =
                walk_message(w, f->descriptor, p, p + len, field, field_len);
            w->depth--;
            if (st != LOOKASIDE_OK)
                return st;
        }
        p += len;
    }
    return LOOKASIDE_OK;
malformed:
    walk_path(w, "(malformed wire data)", field, field_len);
    return LOOKASIDE_EINVAL;
}

static lookaside_status check_strings(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                                      size_t len, char *field, size_t field_len, bool *nul)
{
    walk w;
    w.depth = 0;
    w.nul = false;
    if (field && field_len)
        field[0] = '\0';
    lookaside_status st = walk_message(&w, desc, data, data + len, field, field_len);
    *nul = w.nul;
    return st;
}

lookaside_status pbio_check_strings(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                                    size_t len, char *field, size_t field_len)
{
    bool nul;
    return check_strings(desc, data, len, field, field_len, &nul);
}

/* ------------------------------------------------------------------ unpack */

lookaside_status pbio_unpack_why(const ProtobufCMessageDescriptor *desc, grpc_byte_buffer *bb,
                                 size_t max_bytes, ProtobufCMessage **out, char *why,
                                 size_t why_len)
{
    *out = NULL;
    if (why && why_len)
        why[0] = '\0';
    if (bb == NULL) {
        if (why)
            snprintf(why, why_len, "missing %s message", desc->name);
        return LOOKASIDE_EINVAL;
    }
    if (grpc_byte_buffer_length(bb) > max_bytes)
        return LOOKASIDE_ETOOBIG;
    grpc_byte_buffer_reader r;
    if (!grpc_byte_buffer_reader_init(&r, bb)) {
        if (why)
            snprintf(why, why_len, "unreadable %s message (compressed?)", desc->name);
        return LOOKASIDE_EINVAL;
    }
    grpc_slice s = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    const uint8_t *data = GRPC_SLICE_START_PTR(s);
    size_t len = GRPC_SLICE_LENGTH(s);
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, len, data);
    if (m == NULL) {
        grpc_slice_unref(s);
        if (why)
            snprintf(why, why_len, "undecodable %s message", desc->name);
        return LOOKASIDE_EINVAL;
    }
    /* After a successful decode the bytes are well-formed, so the walk can
     * only object to a NUL (or to absurd nesting). */
    char field[128];
    bool nul;
    lookaside_status st = check_strings(desc, data, len, field, sizeof field, &nul);
    grpc_slice_unref(s);
    if (st != LOOKASIDE_OK) {
        protobuf_c_message_free_unpacked(m, NULL);
        if (why && nul)
            snprintf(why, why_len, "%s: a string must not contain a NUL byte", field);
        else if (why)
            snprintf(why, why_len, "%s message refused at %s", desc->name, field);
        return st;
    }
    *out = m;
    return LOOKASIDE_OK;
}

lookaside_status pbio_unpack(const ProtobufCMessageDescriptor *desc, grpc_byte_buffer *bb,
                             size_t max_bytes, ProtobufCMessage **out)
{
    return pbio_unpack_why(desc, bb, max_bytes, out, NULL, 0);
}
