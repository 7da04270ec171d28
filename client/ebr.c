#include "ebr.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Starts at 1: active == 0 means "not in a section". */
_Atomic uint64_t ebr_epoch = 1;
_Thread_local struct ebr_rec *ebr_self __attribute__((tls_model("initial-exec")));

static struct ebr_rec *_Atomic ebr_head;
static _Atomic uint32_t ebr_count;
static pthread_key_t ebr_key;
static pthread_once_t ebr_once = PTHREAD_ONCE_INIT;

/* Thread exit: the record goes back to the pool for the next new thread. */
static void ebr_release(void *p)
{
    struct ebr_rec *r = p;
    atomic_store_explicit(&r->active, 0, memory_order_release);
    atomic_store_explicit(&r->in_use, 0, memory_order_release);
}

static void ebr_key_init(void)
{
    if (pthread_key_create(&ebr_key, ebr_release) != 0)
        abort();
}

struct ebr_rec *ebr_register(void)
{
    pthread_once(&ebr_once, ebr_key_init);
    struct ebr_rec *r;
    for (r = atomic_load_explicit(&ebr_head, memory_order_acquire); r != NULL; r = r->next) {
        int expect = 0;
        if (atomic_load_explicit(&r->in_use, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_strong(&r->in_use, &expect, 1))
            break;
    }
    if (r == NULL) {
        r = aligned_alloc(128, sizeof *r);
        if (r == NULL) {
            fputs("lookaside: out of memory registering a thread\n", stderr);
            abort();
        }
        memset(r, 0, sizeof *r);
        atomic_init(&r->in_use, 1);
        r->index = atomic_fetch_add(&ebr_count, 1);
        /* Spread threads over the pick tables so they do not walk them in
         * lockstep; each thread's own walk still follows the weights. */
        for (uint32_t i = 0; i < EBR_POS_SLOTS; i++)
            r->pos[i] = r->index * 2654435761u + i * 40503u;
        struct ebr_rec *head = atomic_load(&ebr_head);
        do
            r->next = head;
        while (!atomic_compare_exchange_weak(&ebr_head, &head, r));
    }
    pthread_setspecific(ebr_key, r);
    ebr_self = r;
    return r;
}

uint64_t ebr_retire_tag(void)
{
    return atomic_fetch_add_explicit(&ebr_epoch, 1, memory_order_seq_cst);
}

uint64_t ebr_min_active(void)
{
    uint64_t min = UINT64_MAX;
    for (struct ebr_rec *r = atomic_load_explicit(&ebr_head, memory_order_acquire); r != NULL;
         r = r->next) {
        uint64_t a = atomic_load_explicit(&r->active, memory_order_seq_cst);
        if (a != 0 && a < min)
            min = a;
    }
    return min;
}
