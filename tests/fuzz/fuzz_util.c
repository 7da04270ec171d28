#include "fuzz_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <grpc/grpc.h>

#include "log.h"
#include "pbio.h"
#include "registry.h"

uint8_t fz_u8(fz_in *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

uint16_t fz_u16(fz_in *in)
{
    uint16_t lo = fz_u8(in);
    return (uint16_t)(lo | (uint16_t)fz_u8(in) << 8);
}

size_t fz_blob(fz_in *in, const uint8_t **out)
{
    size_t len = fz_u16(in);
    if (len > in->n)
        len = in->n;
    *out = in->p;
    in->p += len;
    in->n -= len;
    return len;
}

bool fz_done(const fz_in *in) { return in->n == 0; }

void fz_blob_str(fz_in *in, char *out, size_t cap)
{
    const uint8_t *p;
    size_t n = fz_blob(in, &p);
    size_t k = 0;
    while (k < n && k + 1 < cap && p[k] != 0) {
        out[k] = (char)p[k];
        k++;
    }
    out[k] = '\0';
}

void fz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FUZZ INVARIANT BROKEN: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

static int64_t g_mono, g_wall;

void fz_clock_reset(void)
{
    g_mono = 1000000;              /* a monotonic clock well past zero */
    g_wall = 1790000000000;        /* 2026-09 in unix ms */
}

void fz_clock_advance(int64_t ms)
{
    g_mono += ms;
    g_wall += ms;
}

int64_t fz_clock_mono(void) { return g_mono; }
int64_t fz_clock_wall(void) { return g_wall; }

static char g_dir[64];
static unsigned long g_seq;

static void remove_dir(void) { rmdir(g_dir); }

const char *fz_setup(void)
{
    if (g_dir[0])
        return g_dir;
    grpc_init();   /* never shut down: gRPC's singletons are suppressed in lsan.supp */
    log_set_level(getenv("LOOKASIDE_FUZZ_LOG") ? LA_LOG_DEBUG : LA_LOG_OFF);
    /* tmpfs when there is one: every input writes a database. */
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(g_dir, sizeof g_dir, "%s/lookaside-fuzz-XXXXXX", base);
    if (mkdtemp(g_dir) == NULL) {
        perror("mkdtemp");
        abort();
    }
    atexit(remove_dir);
    return g_dir;
}

void fz_db_path(char *out, size_t cap)
{
    snprintf(out, cap, "%s/db-%ld-%lu", fz_setup(), (long)getpid(), ++g_seq);
}

void fz_unlink_db(const char *path)
{
    char p[200];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-journal", path);
    unlink(p);
}

void fz_check_published(registry *r)
{
    for (reg_service *s = registry_first(r); s; s = registry_next(s)) {
        const snap_service *sn = registry_snapshot(r, s->name);
        if (sn == NULL || sn->packed == NULL)
            continue;
        ProtobufCMessage *m = NULL;
        if (pbio_unpack(&lookaside__v1__server_list__descriptor, sn->packed, (size_t)64 << 20,
                        &m) != LOOKASIDE_OK)
            fz_fail("published list of %s does not decode", s->name);
        const Lookaside__V1__ServerList *sl = (const Lookaside__V1__ServerList *)m;
        if (sl->version != sn->version || strcmp(sl->service, sn->name) != 0)
            fz_fail("snapshot of %s v%llu holds a list of %s v%llu", sn->name,
                    (unsigned long long)sn->version, sl->service,
                    (unsigned long long)sl->version);
        for (size_t i = 0; i < sl->n_backends; i++) {
            la_addr a;
            char canon[LA_ADDR_STRLEN];
            if (addr_parse(sl->backends[i]->address, &a) != LOOKASIDE_OK)
                fz_fail("%s: published address \"%s\" does not parse", s->name,
                        sl->backends[i]->address);
            addr_format(&a, canon, sizeof canon);
            if (strcmp(canon, sl->backends[i]->address) != 0)
                fz_fail("%s: published address %s is not canonical (%s)", s->name,
                        sl->backends[i]->address, canon);
            for (size_t j = 0; j < i; j++)
                if (strcmp(sl->backends[i]->address, sl->backends[j]->address) == 0)
                    fz_fail("%s: %s published twice", s->name, sl->backends[i]->address);
        }
        protobuf_c_message_free_unpacked(m, NULL);
    }
}
