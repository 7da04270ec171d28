/* Unit tests of the registry with an injected clock: the read side
 * (snapshots, catalog from another thread), versions that never repeat,
 * restore grace, self-preservation, service slots and retention, durable
 * acknowledgements, heartbeats, case-insensitive names.
 *
 * The loop exists (the registry arms timers on it) but never runs: the test
 * moves the fake clock and calls registry_tick. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <grpc/grpc.h>

#include "pbio.h"
#include "registry.h"

static int64_t g_mono = 1000000, g_wall = 1800000000000;
static int64_t fake_mono(void) { return g_mono; }
static int64_t fake_wall(void) { return g_wall; }
static void advance(int64_t ms)
{
    g_mono += ms;
    g_wall += ms;
}

typedef struct fixture {
    char dir[64], db[96];
    loop *l;
    storage *st;
    registry *r;
    registry_config cfg;
} fixture;

typedef struct owner {
    reg_owner o;
    reg_backend *b;
    int dropped, durable;
} owner;

static void own_dropped(reg_owner *o, lookaside_status code, const char *why)
{
    (void)code;
    (void)why;
    owner *w = (owner *)o;
    w->dropped++;
    w->b = NULL;
}

static void own_durable(reg_owner *o) { ((owner *)o)->durable++; }

static void reg_open(fixture *f)
{
    assert_int_equal(storage_open(f->db, &f->st), LOOKASIDE_OK);
    assert_int_equal(registry_create(f->l, f->st, &f->cfg, &f->r), LOOKASIDE_OK);
}

static void reg_close(fixture *f)
{
    registry_begin_shutdown(f->r);
    registry_destroy(f->r);
    storage_close(f->st);
    f->r = NULL;
    f->st = NULL;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/la-reg-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof f->db, "%s/db", f->dir);
    assert_int_equal(loop_create(&f->l), LOOKASIDE_OK);
    registry_config_default(&f->cfg);
    f->cfg.mono_ms = fake_mono;
    f->cfg.wall_ms = fake_wall;
    reg_open(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f->r)
        reg_close(f);
    loop_destroy(f->l);
    unlink(f->db);
    char p[128];
    snprintf(p, sizeof p, "%s-wal", f->db);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", f->db);
    unlink(p);
    rmdir(f->dir);
    free(f);
    return 0;
}

static owner *attach(fixture *f, const char *svc, const char *addr)
{
    owner *w = calloc(1, sizeof *w);
    w->o.dropped = own_dropped;
    w->o.durable = own_durable;
    char msg[200];
    assert_int_equal(registry_attach(f->r, svc, addr, "z", &w->o, &w->b, msg, sizeof msg),
                     LOOKASIDE_OK);
    return w;
}

static const snap_service *snap(fixture *f, const char *svc)
{
    registry_publish_dirty(f->r);
    return registry_snapshot(f->r, svc);
}

static size_t count_state(const snap_service *s, int state)
{
    size_t n = 0;
    for (size_t i = 0; s && i < s->n; i++)
        n += s->b[i].state == state;
    return n;
}

#define SERVING LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_SERVING
#define RESTORED LOOKASIDE__V1__BACKEND_STATE__BACKEND_STATE_RESTORED

/* ------------------------------------------------------------------ tests */

static void test_snapshot_is_immutable(void **state)
{
    fixture *f = *state;
    owner *a = attach(f, "web", "127.0.0.2:80");
    const snap_service *s1 = snap(f, "web");
    assert_non_null(s1);
    snap_service *held = snap_service_ref((snap_service *)s1);
    uint64_t v1 = held->version;
    assert_int_equal(held->n, 1);
    assert_int_equal(held->b[0].last_load_mono_ms, -1);   /* no Load yet */
    storage_load l = {.cpu = 0.5, .rps = 100};
    snap_util u[2] = {{"gpu", 0.25}, {"disk", 0.75}};
    registry_report(f->r, a->b, &l, u, 2);
    owner *b = attach(f, "web", "127.0.0.3:80");
    const snap_service *s2 = snap(f, "web");
    assert_true(s2->version > v1);
    assert_int_equal(s2->n, 2);
    /* The old snapshot did not change under its holder. */
    assert_int_equal(held->n, 1);
    assert_int_equal(held->version, v1);
    snap_service_unref(held);
    const snap_backend *sb = snap_find_backend(s2, "127.0.0.2:80");
    assert_non_null(sb);
    assert_true(sb->has_load);
    assert_int_equal(sb->n_util, 2);
    assert_string_equal(sb->util[1].key, "disk");
    assert_true(sb->last_load_mono_ms >= 0);
    registry_detach(f->r, a->b, true);
    registry_detach(f->r, b->b, true);
    free(a);
    free(b);
}

static void test_names_case_insensitive(void **state)
{
    fixture *f = *state;
    owner *a = attach(f, "Web.Prod", "127.0.0.2:80");
    assert_non_null(registry_find(f->r, "web.prod"));
    assert_non_null(registry_find(f->r, "WEB.PROD"));
    const snap_service *s = snap(f, "wEb.pRoD");
    assert_non_null(s);
    assert_string_equal(s->name, "web.prod");
    registry_detach(f->r, a->b, true);
    free(a);
}

static void test_versions_never_repeat(void **state)
{
    fixture *f = *state;
    f->cfg.service_retention_ms = 1000;
    reg_close(f);
    reg_open(f);
    uint64_t seen[8];
    size_t n = 0;
    owner *a = attach(f, "v", "127.0.0.2:80");
    seen[n++] = snap(f, "v")->version;
    registry_detach(f->r, a->b, true);
    free(a);
    seen[n++] = snap(f, "v")->version;
    assert_true(snap(f, "v")->known);   /* empty but kept */
    /* Forgotten after the retention; the clock does NOT move meanwhile
     * beyond the retention itself. */
    advance(1001);
    registry_tick(f->r);
    assert_null(registry_find(f->r, "v"));
    g_wall -= 5000;   /* even a wall clock stepped back */
    a = attach(f, "v", "127.0.0.2:80");
    seen[n++] = snap(f, "v")->version;
    /* A restart: versions continue above the stored one. */
    reg_close(f);
    reg_open(f);
    seen[n++] = snap(f, "v")->version;
    for (size_t i = 1; i < n; i++)
        assert_true(seen[i] > seen[i - 1]);
    free(a);
}

static void test_restore_grace(void **state)
{
    fixture *f = *state;
    owner *a = attach(f, "rg", "127.0.0.2:80");
    owner *b = attach(f, "rg", "127.0.0.3:80");
    registry_tick(f->r);
    reg_close(f);   /* shutdown keeps the rows of live backends */
    free(a);
    free(b);
    reg_open(f);
    const snap_service *s = snap(f, "rg");
    assert_int_equal(s->n, 2);
    assert_int_equal(count_state(s, RESTORED), 2);
    assert_int_equal(s->list_state, LOOKASIDE__V1__LIST_STATE__LIST_STATE_RESTORED);
    a = attach(f, "rg", "127.0.0.2:80");   /* its reporter came back */
    advance(f->cfg.restore_grace_ms - 100);
    registry_touch(f->r, a->b);
    registry_tick(f->r);
    s = snap(f, "rg");
    assert_int_equal(s->n, 2);   /* still within the grace */
    assert_int_equal(count_state(s, SERVING), 1);
    advance(200);
    registry_touch(f->r, a->b);
    registry_tick(f->r);
    s = snap(f, "rg");
    assert_int_equal(s->n, 1);
    assert_string_equal(s->b[0].address, "127.0.0.2:80");
    assert_int_equal(s->list_state, LOOKASIDE__V1__LIST_STATE__LIST_STATE_LIVE);
    registry_detach(f->r, a->b, true);
    free(a);
}

static void test_self_preservation(void **state)
{
    fixture *f = *state;
    owner *w[6];
    char addr[32];
    for (int i = 0; i < 6; i++) {
        snprintf(addr, sizeof addr, "127.0.0.%d:80", i + 2);
        w[i] = attach(f, "sp", addr);
    }
    registry_tick(f->r);
    /* All six streams lost at once (a partition): half go, half stay. */
    for (int i = 0; i < 6; i++)
        registry_detach(f->r, w[i]->b, false);
    const snap_service *s = snap(f, "sp");
    assert_int_equal(s->n, 3);
    assert_int_equal(count_state(s, RESTORED), 3);
    /* They are released under the same budget, window by window. */
    advance(f->cfg.preserve_window_ms + f->cfg.restore_grace_ms);
    registry_tick(f->r);
    assert_int_equal(snap(f, "sp")->n, 1);   /* ceil(3/2) = 2 went */
    advance(f->cfg.preserve_window_ms);
    registry_tick(f->r);
    assert_int_equal(snap(f, "sp")->n, 0);
    for (int i = 0; i < 6; i++)
        free(w[i]);
}

static void test_clean_exits_not_held(void **state)
{
    fixture *f = *state;
    owner *w[4];
    char addr[32];
    for (int i = 0; i < 4; i++) {
        snprintf(addr, sizeof addr, "127.0.0.%d:80", i + 2);
        w[i] = attach(f, "ce", addr);
    }
    for (int i = 0; i < 4; i++)
        registry_detach(f->r, w[i]->b, true);
    assert_int_equal(snap(f, "ce")->n, 0);
    /* A single lost backend (a SIGKILL) goes at once too. */
    owner *x = attach(f, "ce", "127.0.0.9:80");
    owner *y = attach(f, "ce", "127.0.0.10:80");
    registry_tick(f->r);
    advance(f->cfg.preserve_window_ms);
    registry_detach(f->r, x->b, false);
    assert_int_equal(snap(f, "ce")->n, 1);
    registry_detach(f->r, y->b, true);
    for (int i = 0; i < 4; i++)
        free(w[i]);
    free(x);
    free(y);
}

static void on_pub(reg_sub *sub, const snap_service *s)
{
    (void)sub;
    (void)s;
}

static int g_heartbeats;
static void on_hb(reg_sub *sub, const snap_service *s, grpc_byte_buffer *hb)
{
    (void)sub;
    ProtobufCMessage *m = NULL;
    assert_int_equal(pbio_unpack(&lookaside__v1__server_list__descriptor, hb, 1 << 20, &m),
                     LOOKASIDE_OK);
    const Lookaside__V1__ServerList *l = (const Lookaside__V1__ServerList *)m;
    assert_true(l->heartbeat);
    assert_int_equal(l->n_backends, 0);
    assert_int_equal(l->version, s->version);
    protobuf_c_message_free_unpacked(m, NULL);
    g_heartbeats++;
}

static void test_slots_phantoms_retention(void **state)
{
    fixture *f = *state;
    f->cfg.max_services = 2;
    reg_close(f);
    reg_open(f);
    /* Watching made-up names takes no service slot. */
    reg_sub subs[2];
    memset(subs, 0, sizeof subs);
    for (int i = 0; i < 2; i++) {
        subs[i].on_publish = on_pub;
        char name[16];
        snprintf(name, sizeof name, "junk%d", i);
        assert_int_equal(registry_subscribe(f->r, name, &subs[i]), LOOKASIDE_OK);
        assert_false(registry_sub_snapshot(f->r, &subs[i])->known);
        assert_int_equal(registry_sub_snapshot(f->r, &subs[i])->version, 1);
    }
    reg_sub extra = {.on_publish = on_pub};
    assert_int_equal(registry_subscribe(f->r, "junk9", &extra), LOOKASIDE_ELIMIT);
    owner *a = attach(f, "a", "127.0.0.2:80");
    owner *b = attach(f, "b", "127.0.0.2:80");
    /* Both slots hold services with backends: a third is refused. */
    owner c = {.o = {.dropped = own_dropped}};
    char msg[200];
    assert_int_equal(registry_attach(f->r, "c", "127.0.0.2:80", "", &c.o, &c.b, msg, sizeof msg),
                     LOOKASIDE_ELIMIT);
    /* A service that emptied gives its slot to a new one at once. */
    registry_detach(f->r, b->b, true);
    assert_int_equal(registry_attach(f->r, "c", "127.0.0.2:80", "", &c.o, &c.b, msg, sizeof msg),
                     LOOKASIDE_OK);
    assert_null(registry_find(f->r, "b"));
    for (int i = 0; i < 2; i++)
        registry_unsubscribe(f->r, &subs[i]);
    assert_null(registry_find(f->r, "junk0"));   /* phantoms go with their watchers */
    registry_detach(f->r, a->b, true);
    registry_detach(f->r, c.b, true);
    free(a);
    free(b);
}

static void test_heartbeats(void **state)
{
    fixture *f = *state;
    f->cfg.wcfg.slow_start_ms = 0;   /* a ramp would publish (not quiet) */
    reg_close(f);
    reg_open(f);
    owner *a = attach(f, "hb", "127.0.0.2:80");
    reg_sub sub = {.on_publish = on_pub, .on_heartbeat = on_hb};
    assert_int_equal(registry_subscribe(f->r, "hb", &sub), LOOKASIDE_OK);
    registry_tick(f->r);
    g_heartbeats = 0;
    int64_t period = f->cfg.valid_for_ms / 3;
    advance(period - 10);
    registry_touch(f->r, a->b);
    registry_tick(f->r);
    assert_int_equal(g_heartbeats, 0);   /* not quiet long enough */
    advance(20);
    registry_touch(f->r, a->b);
    registry_tick(f->r);
    assert_int_equal(g_heartbeats, 1);
    registry_tick(f->r);
    assert_int_equal(g_heartbeats, 1);   /* one per quiet period */
    registry_unsubscribe(f->r, &sub);
    registry_detach(f->r, a->b, true);
    free(a);
}

static void test_durable_ack(void **state)
{
    fixture *f = *state;
    owner *a = attach(f, "d", "127.0.0.2:80");
    registry_await_durable(f->r, &a->o);
    assert_int_equal(a->durable, 0);   /* not before the commit */
    registry_tick(f->r);
    assert_int_equal(a->durable, 1);
    /* A detached owner is never called. */
    owner *b = attach(f, "d", "127.0.0.3:80");
    registry_await_durable(f->r, &b->o);
    registry_detach(f->r, b->b, true);
    registry_tick(f->r);
    assert_int_equal(b->durable, 0);
    registry_detach(f->r, a->b, true);
    free(a);
    free(b);
}

typedef struct mirror_log {
    int puts, deletes;
    uint32_t last_weight;
    char last_deleted[64];
} mirror_log;

static void m_put(void *arg, const reg_backend *b)
{
    mirror_log *m = arg;
    m->puts++;
    m->last_weight = b->published_weight;
}

static void m_delete(void *arg, const char *service, const char *address)
{
    (void)service;
    mirror_log *m = arg;
    m->deletes++;
    snprintf(m->last_deleted, sizeof m->last_deleted, "%s", address);
}

/* etcd mode's hooks: local backends go out through the mirror; remote
 * ones come in with the owner's weight, raise the version floor, and leave
 * under the self-preservation budget. */
static void test_replica_hooks(void **state)
{
    fixture *f = *state;
    static const reg_mirror_ops ops = {.backend_put = m_put, .backend_delete = m_delete};
    mirror_log m = {0};
    registry_set_mirror(f->r, &ops, &m);
    owner *a = attach(f, "rp", "127.0.0.2:80");
    assert_true(m.puts >= 1);
    int puts = m.puts;
    registry_set_draining(f->r, a->b, true);
    assert_true(m.puts > puts);
    char addr[32];
    for (int i = 0; i < 4; i++) {
        snprintf(addr, sizeof addr, "127.0.1.%d:80", i + 1);
        reg_remote rb = {.service = "RP", .address = addr, .zone = "z2", .weight = 500 + i,
                         .revision = 1000 + (uint64_t)i};
        assert_int_equal(registry_remote_put(f->r, &rb), LOOKASIDE_OK);
    }
    reg_remote bad = {.service = "rp", .address = "nope", .zone = ""};
    assert_int_equal(registry_remote_put(f->r, &bad), LOOKASIDE_EINVAL);
    const snap_service *s = snap(f, "rp");
    assert_int_equal(s->n, 5);
    const snap_backend *rb0 = snap_find_backend(s, "127.0.1.1:80");
    assert_non_null(rb0);
    assert_int_equal(rb0->weight, 500);
    assert_int_equal(rb0->state, SERVING);
    uint64_t v = s->version;
    registry_version_floor(f->r, "rp", v + 1000000);
    registry_set_override(f->r, a->b, 7);
    assert_true(snap(f, "rp")->version >= v + 1000000);
    registry_tick(f->r);
    advance(f->cfg.preserve_window_ms);
    for (int i = 0; i < 4; i++) {
        snprintf(addr, sizeof addr, "127.0.1.%d:80", i + 1);
        registry_remote_delete(f->r, "rp", addr, 2000);
    }
    s = snap(f, "rp");
    assert_int_equal(count_state(s, RESTORED), 1);   /* budget ceil(5/2) = 3 of 4 */
    assert_int_equal(m.deletes, 0);                  /* remote leaves are not mirrored */
    registry_detach(f->r, a->b, true);
    assert_int_equal(m.deletes, 1);
    assert_string_equal(m.last_deleted, "127.0.0.2:80");
    registry_set_mirror(f->r, NULL, NULL);
    free(a);
}

typedef struct reader {
    registry *r;
    volatile int stop;
    long catalogs, services;
} reader;

static void *read_catalogs(void *arg)
{
    reader *rd = arg;
    for (long i = 0; i < 2000000 && !rd->stop; i++) {
        snap_catalog *c = registry_catalog_acquire(rd->r);
        if (c == NULL)
            continue;
        for (size_t k = 0; k < c->n; k++) {
            const snap_service *s = c->s[k];
            for (size_t j = 0; j < s->n; j++)
                rd->services += s->b[j].weight > 0;
        }
        rd->catalogs++;
        snap_catalog_release(c);
    }
    return NULL;
}

static void test_catalog_other_thread(void **state)
{
    fixture *f = *state;
    reader rd = {.r = f->r};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, read_catalogs, &rd), 0);
    owner *w[50];
    char addr[32], svc[16];
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 50; i++) {
            snprintf(addr, sizeof addr, "127.0.%d.%d:80", round % 4, i + 1);
            snprintf(svc, sizeof svc, "s%d", i % 5);
            w[i] = attach(f, svc, addr);
        }
        registry_tick(f->r);
        for (int i = 0; i < 50; i++) {
            registry_detach(f->r, w[i]->b, true);
            free(w[i]);
        }
        registry_tick(f->r);
    }
    rd.stop = 1;
    pthread_join(t, NULL);
    assert_true(rd.catalogs > 0);
    snap_catalog *c = registry_catalog_acquire(f->r);
    assert_non_null(c);
    for (size_t k = 0; k < c->n; k++)
        assert_int_equal(c->s[k]->n, 0);
    snap_catalog_release(c);
}

int main(void)
{
    grpc_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_snapshot_is_immutable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names_case_insensitive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_versions_never_repeat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_grace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_self_preservation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clean_exits_not_held, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slots_phantoms_retention, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heartbeats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_durable_ack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog_other_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replica_hooks, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    grpc_shutdown();
    return rc;
}
