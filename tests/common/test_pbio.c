/* pbio: requests whose strings embed a NUL byte are refused, naming the
 * field, at any depth; everything else decodes as before. Messages are
 * built as raw wire bytes because protobuf-c cannot pack such a string. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/slice.h>

#include "grpc/lb/v1/load_balancer.pb-c.h"
#include "lookaside/v1/lookaside.pb-c.h"
#include "pbio.h"

static grpc_byte_buffer *raw_bb(const uint8_t *p, size_t n)
{
    grpc_slice s = grpc_slice_from_copied_buffer((const char *)p, n);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

/* Appends a length-delimited field (field number num) to buf at *n. */
static void put_len(uint8_t *buf, size_t *n, unsigned num, const void *data, size_t len)
{
    assert_true(len < 128);
    buf[(*n)++] = (uint8_t)(num << 3 | 2);
    buf[(*n)++] = (uint8_t)len;
    memcpy(buf + *n, data, len);
    *n += len;
}

/* Unpacks raw bytes with pbio_unpack_why; returns the status, frees any
 * message, and leaves the reason in why. */
static lookaside_status unpack_raw(const ProtobufCMessageDescriptor *d, const uint8_t *p,
                                   size_t n, char *why, size_t why_len)
{
    grpc_byte_buffer *bb = raw_bb(p, n);
    ProtobufCMessage *m = NULL;
    lookaside_status st = pbio_unpack_why(d, bb, 4096, &m, why, why_len);
    grpc_byte_buffer_destroy(bb);
    if (st == LOOKASIDE_OK)
        assert_non_null(m);
    else
        assert_null(m);
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
    return st;
}

/* The walk refuses buf naming want as the offending field. */
static void expect_nul_at(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t n,
                          const char *want)
{
    char field[96];
    assert_int_equal(pbio_check_strings(d, buf, n, field, sizeof field), LOOKASIDE_EINVAL);
    assert_string_equal(field, want);
}

static const char HOSTILE[] = "hostile\0evil";   /* 12 bytes with the NUL */

static void test_clean_message_decodes(void **state)
{
    (void)state;
    Lookaside__V1__Register reg = LOOKASIDE__V1__REGISTER__INIT;
    reg.service = "web";
    reg.address = "127.0.0.1:5000";
    Lookaside__V1__LoadReport r = LOOKASIDE__V1__LOAD_REPORT__INIT;
    r.kind_case = LOOKASIDE__V1__LOAD_REPORT__KIND_REGISTER;
    r.register_ = &reg;
    grpc_byte_buffer *bb = pbio_pack(&r.base);
    ProtobufCMessage *m = NULL;
    char why[160];
    assert_int_equal(pbio_unpack_why(&lookaside__v1__load_report__descriptor, bb, 4096, &m, why,
                                     sizeof why),
                     LOOKASIDE_OK);
    Lookaside__V1__LoadReport *got = (Lookaside__V1__LoadReport *)m;
    assert_string_equal(got->register_->service, "web");
    assert_string_equal(got->register_->address, "127.0.0.1:5000");
    protobuf_c_message_free_unpacked(m, NULL);
    grpc_byte_buffer_destroy(bb);
}

static void test_nul_in_top_level_string(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t n = 0;
    put_len(buf, &n, 1, HOSTILE, sizeof HOSTILE - 1);   /* WatchRequest.service */
    char why[160];
    assert_int_equal(unpack_raw(&lookaside__v1__watch_request__descriptor, buf, n, why,
                                sizeof why),
                     LOOKASIDE_EINVAL);
    assert_string_equal(why, "service: a string must not contain a NUL byte");
}

static void test_nul_in_nested_string(void **state)
{
    (void)state;
    uint8_t inner[64], outer[80];
    size_t ni = 0, no = 0;
    put_len(inner, &ni, 1, "web", 3);                        /* service, clean */
    put_len(inner, &ni, 2, "10.0.0.1:80\0x", 13);             /* address, hostile */
    put_len(outer, &no, 1, inner, ni);                       /* LoadReport.register */
    expect_nul_at(&lookaside__v1__load_report__descriptor, outer, no, "register.address");
    char why[160];
    assert_int_equal(unpack_raw(&lookaside__v1__load_report__descriptor, outer, no, why,
                                sizeof why),
                     LOOKASIDE_EINVAL);
    assert_non_null(strstr(why, "register.address"));
}

static void test_nul_in_map_key(void **state)
{
    (void)state;
    /* Load.utilization is map<string,double>: entries are messages whose
     * key (field 1) is a string. */
    uint8_t entry[32], load[48], report[64];
    size_t ne = 0, nl = 0, nr = 0;
    put_len(entry, &ne, 1, "gpu\0x", 5);
    entry[ne++] = (2 << 3) | 1;   /* value: fixed64 double 0.0 */
    memset(entry + ne, 0, 8);
    ne += 8;
    put_len(load, &nl, 7, entry, ne);
    put_len(report, &nr, 2, load, nl);
    expect_nul_at(&lookaside__v1__load_report__descriptor, report, nr, "load.utilization.key");
}

static void test_nul_in_repeated_message(void **state)
{
    (void)state;
    /* ServerList.backends[1].address: the second element is checked too. */
    uint8_t b1[32], b2[32], list[96];
    size_t n1 = 0, n2 = 0, nl = 0;
    put_len(b1, &n1, 1, "10.0.0.1:80", 11);
    put_len(b2, &n2, 1, "10.0.0.2:80\0", 12);
    put_len(list, &nl, 1, "web", 3);
    put_len(list, &nl, 3, b1, n1);
    put_len(list, &nl, 3, b2, n2);
    expect_nul_at(&lookaside__v1__server_list__descriptor, list, nl, "backends.address");
}

static void test_nul_in_grpclb_name_and_token(void **state)
{
    (void)state;
    uint8_t init[32], req[48];
    size_t ni = 0, nr = 0;
    put_len(init, &ni, 1, HOSTILE, sizeof HOSTILE - 1);
    put_len(req, &nr, 1, init, ni);
    expect_nul_at(&grpc__lb__v1__load_balance_request__descriptor, req, nr, "initial_request.name");

    uint8_t tok[32], stats[48], req2[64];
    size_t nt = 0, ns = 0, n2 = 0;
    put_len(tok, &nt, 1, "t\0", 2);
    put_len(stats, &ns, 8, tok, nt);
    put_len(req2, &n2, 2, stats, ns);
    expect_nul_at(&grpc__lb__v1__load_balance_request__descriptor, req2, n2,
                  "client_stats.calls_finished_with_drop.load_balance_token");
}

static void test_nul_allowed_in_bytes_and_unknown_fields(void **state)
{
    (void)state;
    /* grpclb Server.ip_address is bytes: NULs are data there. */
    static const uint8_t ip[4] = {10, 0, 0, 0};
    uint8_t server[32], list[48], resp[64];
    size_t ns = 0, nl = 0, nr = 0;
    put_len(server, &ns, 1, ip, sizeof ip);
    put_len(list, &nl, 1, server, ns);
    put_len(resp, &nr, 2, list, nl);
    char why[160];
    assert_int_equal(unpack_raw(&grpc__lb__v1__load_balance_response__descriptor, resp, nr, why,
                                sizeof why),
                     LOOKASIDE_OK);
    /* An unknown field (number 99) is skipped, NULs and all. */
    uint8_t w[48];
    size_t nw = 0;
    put_len(w, &nw, 1, "web", 3);
    w[nw++] = (uint8_t)(0x80 | ((99 << 3 | 2) & 0x7f));
    w[nw++] = (uint8_t)((99 << 3 | 2) >> 7);
    w[nw++] = 3;
    memcpy(w + nw, "\0\0\0", 3);
    nw += 3;
    assert_int_equal(unpack_raw(&lookaside__v1__watch_request__descriptor, w, nw, why,
                                sizeof why),
                     LOOKASIDE_OK);
}

static void test_malformed_refused(void **state)
{
    (void)state;
    /* A length running past the end, a group, field number 0, a truncated
     * varint: the walk refuses each without reading out of bounds. */
    static const uint8_t overrun[] = {0x0a, 0x10, 'a'};
    static const uint8_t group[] = {0x0b, 0x0c};
    static const uint8_t zero[] = {0x02, 0x00};
    static const uint8_t trunc[] = {0x08, 0xff, 0xff};
    char field[64];
    const ProtobufCMessageDescriptor *d = &lookaside__v1__watch_request__descriptor;
    assert_int_equal(pbio_check_strings(d, overrun, sizeof overrun, field, sizeof field),
                     LOOKASIDE_EINVAL);
    assert_int_equal(pbio_check_strings(d, group, sizeof group, field, sizeof field),
                     LOOKASIDE_EINVAL);
    assert_int_equal(pbio_check_strings(d, zero, sizeof zero, field, sizeof field),
                     LOOKASIDE_EINVAL);
    assert_int_equal(pbio_check_strings(d, trunc, sizeof trunc, field, sizeof field),
                     LOOKASIDE_EINVAL);
    char why[160];
    assert_int_equal(unpack_raw(d, overrun, sizeof overrun, why, sizeof why), LOOKASIDE_EINVAL);
    assert_string_equal(why, "undecodable lookaside.v1.WatchRequest message");
    /* Empty input is an empty message, and NULL field buffers are allowed. */
    assert_int_equal(pbio_check_strings(d, overrun, 0, NULL, 0), LOOKASIDE_OK);
}

static void test_size_cap(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t n = 0;
    put_len(buf, &n, 1, "web", 3);
    grpc_byte_buffer *bb = raw_bb(buf, n);
    ProtobufCMessage *m = NULL;
    assert_int_equal(pbio_unpack(&lookaside__v1__watch_request__descriptor, bb, n - 1, &m),
                     LOOKASIDE_ETOOBIG);
    assert_null(m);
    grpc_byte_buffer_destroy(bb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_message_decodes),
        cmocka_unit_test(test_nul_in_top_level_string),
        cmocka_unit_test(test_nul_in_nested_string),
        cmocka_unit_test(test_nul_in_map_key),
        cmocka_unit_test(test_nul_in_repeated_message),
        cmocka_unit_test(test_nul_in_grpclb_name_and_token),
        cmocka_unit_test(test_nul_allowed_in_bytes_and_unknown_fields),
        cmocka_unit_test(test_malformed_refused),
        cmocka_unit_test(test_size_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
