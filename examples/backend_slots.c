#include "backend_slots.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "util.h"

struct slots {
    pthread_mutex_t mu;
    pthread_cond_t cv;        /* CLOCK_MONOTONIC: the head's finish time moved, or stop */
    pthread_t thread;
    uint32_t n;
    int64_t service_us;
    slots_done_fn done;
    void *arg;

    /* In service, in finish order (equal service times keep start order). */
    slots_entry *svc_head, *svc_tail;
    uint32_t busy;
    /* Waiting for a slot. */
    slots_entry *wait_head, *wait_tail;
    uint32_t queued;

    /* Time integrals for the meters. */
    int64_t last_us;
    double busy_int, queue_int;

    bool flush, stop;
};

static void push(slots_entry **head, slots_entry **tail, slots_entry *e)
{
    e->next = NULL;
    if (*tail)
        (*tail)->next = e;
    else
        *head = e;
    *tail = e;
}

static slots_entry *pop(slots_entry **head, slots_entry **tail)
{
    slots_entry *e = *head;
    if (e) {
        *head = e->next;
        if (*head == NULL)
            *tail = NULL;
        e->next = NULL;
    }
    return e;
}

/* Advances the integrals to now. Under mu. */
static void account(slots *s, int64_t now)
{
    if (now > s->last_us) {
        double dt = (double)(now - s->last_us);
        s->busy_int += (double)s->busy * dt;
        s->queue_int += (double)s->queued * dt;
        s->last_us = now;
    }
}

/* Gives e a slot at now. Under mu; the caller has accounted. */
static void start(slots *s, slots_entry *e, int64_t now)
{
    e->start_us = now;
    e->finish_us = s->flush ? now : now + s->service_us;
    if (s->svc_tail && e->finish_us < s->svc_tail->finish_us)
        e->finish_us = s->svc_tail->finish_us; /* the service time was lowered */
    push(&s->svc_head, &s->svc_tail, e);
    s->busy++;
}

void slots_submit(slots *s, slots_entry *e)
{
    pthread_mutex_lock(&s->mu);
    int64_t now = clock_mono_us();
    account(s, now);
    e->arrive_us = now;
    if (s->busy < s->n) {
        bool was_empty = s->svc_head == NULL;
        start(s, e, now);
        if (was_empty || s->flush)
            pthread_cond_signal(&s->cv);
    } else {
        push(&s->wait_head, &s->wait_tail, e);
        s->queued++;
    }
    pthread_mutex_unlock(&s->mu);
}

void slots_set_service_us(slots *s, int64_t service_us)
{
    if (service_us < 1)
        service_us = 1;
    pthread_mutex_lock(&s->mu);
    s->service_us = service_us;
    pthread_mutex_unlock(&s->mu);
}

void slots_flush(slots *s)
{
    pthread_mutex_lock(&s->mu);
    s->flush = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void *slots_main(void *arg)
{
    slots *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        int64_t now = clock_mono_us();
        slots_entry *done_head = NULL, *done_tail = NULL;
        while (s->svc_head && (s->flush || s->svc_head->finish_us <= now)) {
            account(s, now);
            push(&done_head, &done_tail, pop(&s->svc_head, &s->svc_tail));
            s->busy--;
            /* The freed slot goes to the oldest waiter at once. */
            if (s->wait_head) {
                slots_entry *w = pop(&s->wait_head, &s->wait_tail);
                s->queued--;
                start(s, w, now);
            }
        }
        if (done_head) {
            /* Reply without the lock: the callback starts gRPC batches. */
            pthread_mutex_unlock(&s->mu);
            while (done_head) {
                slots_entry *e = pop(&done_head, &done_tail);
                s->done(s->arg, e, e->start_us - e->arrive_us);
            }
            pthread_mutex_lock(&s->mu);
            continue;
        }
        if (s->stop && s->svc_head == NULL)
            break;
        if (s->svc_head == NULL) {
            pthread_cond_wait(&s->cv, &s->mu);
        } else {
            int64_t at = s->svc_head->finish_us;
            struct timespec ts = {.tv_sec = at / 1000000, .tv_nsec = (at % 1000000) * 1000};
            int rc = pthread_cond_timedwait(&s->cv, &s->mu, &ts);
            (void)rc; /* ETIMEDOUT or a signal: the loop re-reads the clock either way */
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

lookaside_status slots_create(uint32_t n, int64_t service_us, slots_done_fn done, void *arg,
                              slots **out)
{
    if (n == 0 || service_us <= 0 || done == NULL || out == NULL)
        return LOOKASIDE_EINVAL;
    slots *s = calloc(1, sizeof *s);
    if (s == NULL)
        return LOOKASIDE_ENOMEM;
    s->n = n;
    s->service_us = service_us;
    s->done = done;
    s->arg = arg;
    s->last_us = clock_mono_us();
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&s->thread, NULL, slots_main, s) != 0) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return LOOKASIDE_EINTERNAL;
    }
    *out = s;
    return LOOKASIDE_OK;
}

void slots_meter_init(slots *s, slots_meter *m)
{
    pthread_mutex_lock(&s->mu);
    int64_t now = clock_mono_us();
    account(s, now);
    m->t_us = now;
    m->busy_slot_us = s->busy_int;
    m->queued_us = s->queue_int;
    pthread_mutex_unlock(&s->mu);
}

void slots_measure(slots *s, slots_meter *m, slots_sample *out)
{
    pthread_mutex_lock(&s->mu);
    int64_t now = clock_mono_us();
    account(s, now);
    int64_t dt = now - m->t_us;
    out->window_us = dt;
    out->busy_now = s->busy;
    out->queued_now = s->queued;
    if (dt >= 1000) {
        out->busy_fraction = (s->busy_int - m->busy_slot_us) / ((double)s->n * (double)dt);
        out->queue_mean = (s->queue_int - m->queued_us) / (double)dt;
        m->t_us = now;
        m->busy_slot_us = s->busy_int;
        m->queued_us = s->queue_int;
    } else {
        out->busy_fraction = (double)s->busy / (double)s->n;
        out->queue_mean = (double)s->queued;
    }
    pthread_mutex_unlock(&s->mu);
}

void slots_destroy(slots *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->flush = true;
    s->stop = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
