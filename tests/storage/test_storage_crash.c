/* Crash safety: a child process writes batches of load reports in a storm
 * and reports each batch number on a pipe once storage_flush returned OK.
 * The parent SIGKILLs it mid-storm, then checks that the file passes
 * PRAGMA integrity_check, holds every reported batch, and holds whole
 * batches only (all backends carry the same batch number). Three rounds on
 * the same file, each resuming where the last one died. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "storage.h"
#include "storage_test_util.h"

#define BACKENDS 500
#define ROUNDS 3
#define KILL_AFTER_MS 300
#define MAX_WAIT_MS 20000       /* for the first flushed batch, under sanitizers */
#define CHILD_LIFETIME_MS 60000 /* the child stops by itself only if never killed */
#define MAX_BATCHES 10000000

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void backend_address(int i, char *buf, size_t len)
{
    snprintf(buf, len, "10.1.%d.%d:9000", i / 200, i % 200);
}

/* Highest batch number stored (0 when none), or -1 when batches are torn. */
static int64_t stored_batch(storage *s, size_t *count)
{
    storage_backend *bs = NULL;
    size_t n = 0;
    if (storage_load_backends(s, &bs, &n) != LOOKASIDE_OK)
        return -2;
    int64_t batch = n > 0 && bs[0].has_load ? bs[0].load.at_ms : 0;
    for (size_t i = 0; i < n; i++) {
        int64_t b = bs[i].has_load ? bs[i].load.at_ms : 0;
        if (b != batch || (bs[i].has_load && bs[i].load.rps != (double)b))
            batch = -1;
    }
    free(bs);
    *count = n;
    return batch;
}

/* The child: never returns, never touches cmocka. */
static void storm(const char *path, int fd)
{
    storage *s = NULL;
    size_t n = 0;
    if (storage_open(path, &s) != LOOKASIDE_OK)
        _exit(2);
    int64_t first = stored_batch(s, &n) + 1;
    if (first < 1 || n != BACKENDS)
        _exit(3);
    /* Only explicit flushes commit, so a batch is exactly one loop. */
    storage_set_batch_max(s, BACKENDS * 4);
    int64_t end = now_ms() + CHILD_LIFETIME_MS;
    for (int64_t b = first; b < first + MAX_BATCHES && now_ms() < end; b++) {
        for (int i = 0; i < BACKENDS; i++) {
            char addr[32];
            backend_address(i, addr, sizeof addr);
            storage_load l = {.cpu = 0.5, .mem = 0.25, .app = 0.125, .rps = (double)b,
                              .eps = 1, .in_flight = (uint32_t)i, .at_ms = b};
            if (storage_put_load(s, "storm", addr, &l) != LOOKASIDE_OK)
                _exit(4);
        }
        if (storage_put_service(s, "storm", (uint64_t)b) != LOOKASIDE_OK)
            _exit(5);
        if (storage_flush(s) != LOOKASIDE_OK)
            _exit(6);
        if (write(fd, &b, sizeof b) != (ssize_t)sizeof b)
            _exit(7);
    }
    storage_close(s);
    _exit(0);
}

/* Reads whole batch numbers from fd into *last; returns 0 at EOF, 1 when
 * more may come, -1 on error. */
static int read_reports(int fd, int64_t *last, unsigned char *carry, size_t *carried)
{
    unsigned char buf[512];
    ssize_t r = read(fd, buf, sizeof buf);
    if (r == 0)
        return 0;
    if (r < 0)
        return errno == EINTR || errno == EAGAIN ? 1 : -1;
    for (ssize_t i = 0; i < r; i++) {
        carry[(*carried)++] = buf[i];
        if (*carried == sizeof(int64_t)) {
            int64_t b;
            memcpy(&b, carry, sizeof b);
            if (b > *last)
                *last = b;
            *carried = 0;
        }
    }
    return 1;
}

static void one_round(const char *path, int round)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        storm(path, p[1]);
    }
    close(p[1]);

    int64_t last = 0, start = now_ms();
    unsigned char carry[8];
    size_t carried = 0;
    int open_pipe = 1;
    while (open_pipe && now_ms() - start < MAX_WAIT_MS &&
           (now_ms() - start < KILL_AFTER_MS || last == 0)) {
        struct pollfd pfd = {.fd = p[0], .events = POLLIN};
        if (poll(&pfd, 1, 20) > 0) {
            open_pipe = read_reports(p[0], &last, carry, &carried);
            assert_true(open_pipe >= 0);
        }
    }
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        fail_msg("round %d: child was not killed: status 0x%x (exit %d)", round, status,
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    /* Reports written before the kill count too; the pipe ends at EOF. */
    for (int i = 0; i < 100000 && open_pipe > 0; i++)
        open_pipe = read_reports(p[0], &last, carry, &carried);
    close(p[0]);
    assert_true(last > 0);

    storage *s = NULL;
    if (storage_open(path, &s) != LOOKASIDE_OK)
        fail_msg("round %d: reopen failed: %s", round, storage_open_error());
    if (storage_integrity_check(s) != LOOKASIDE_OK)
        fail_msg("round %d: %s", round, storage_errmsg(s));
    size_t n = 0;
    int64_t got = stored_batch(s, &n);
    assert_int_equal(n, BACKENDS);
    if (got < 0)
        fail_msg("round %d: a torn batch (backends disagree)", round);
    /* Every reported batch is there; at most one more (committed, killed
     * before it was reported). */
    if (got < last || got > last + 1)
        fail_msg("round %d: stored batch %lld, last reported %lld", round, (long long)got,
                 (long long)last);
    storage_service *sv = NULL;
    size_t ns = 0;
    assert_int_equal(storage_load_services(s, &sv, &ns), LOOKASIDE_OK);
    assert_int_equal(ns, 1);
    assert_true(sv[0].version == (uint64_t)got);
    free(sv);
    storage_close(s);
    print_message("round %d: %lld batches reported, batch %lld stored\n", round,
                  (long long)last, (long long)got);
}

static void test_sigkill_mid_storm(void **state)
{
    (void)state;
    st_tmp t;
    st_tmp_make(&t);
    storage *s = NULL;
    assert_int_equal(storage_open(t.db, &s), LOOKASIDE_OK);
    assert_int_equal(storage_put_service(s, "storm", 0), LOOKASIDE_OK);
    for (int i = 0; i < BACKENDS; i++) {
        char addr[32];
        backend_address(i, addr, sizeof addr);
        storage_backend b = st_backend("storm", addr, i);
        assert_int_equal(storage_put_backend(s, &b), LOOKASIDE_OK);
    }
    storage_close(s);
    for (int round = 1; round <= ROUNDS; round++)
        one_round(t.db, round);
    st_tmp_remove(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigkill_mid_storm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
