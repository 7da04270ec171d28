/* backend_slots.h - the demo backend's simulated capacity: `slots` requests
 * are served at once, each occupying its slot for service_us; requests
 * beyond that wait in FIFO order. An overloaded backend therefore shows what
 * a real one shows: throughput capped at slots / service time and latency
 * growing with the queue.
 *
 * Because every request takes the same service time, requests finish in the
 * order they started: the slots are one FIFO of finish times, served by one
 * timer thread (no heap, no thread per slot).
 *
 * Utilisation is measured, not configured: the module integrates the number
 * of busy slots and of waiting requests over time, and a slots_meter reads
 * the averages over any window.
 *
 * Thread-safety: slots_submit, slots_measure and slots_flush from any thread;
 * the done callback runs on the slots thread, one request at a time, with no
 * lock held (it may call slots_submit). */
#ifndef BACKEND_SLOTS_H
#define BACKEND_SLOTS_H

#include <stdint.h>

#include "lookaside_status.h"

/* Embedded in the caller's request record; the module links it into its
 * queues. Fields are the module's until the done callback. */
typedef struct slots_entry {
    struct slots_entry *next;
    int64_t arrive_us;   /* when slots_submit took it (CLOCK_MONOTONIC) */
    int64_t start_us;    /* when it got a slot */
    int64_t finish_us;   /* when its service time ends */
} slots_entry;

/* Called once per submitted entry when its service time is over (or at once
 * after slots_flush). queued_us is the time it waited for a slot. */
typedef void (*slots_done_fn)(void *arg, slots_entry *e, int64_t queued_us);

typedef struct slots slots;

/* Creates the slots and starts their thread. n >= 1, service_us >= 1.
 * LOOKASIDE_EINVAL, LOOKASIDE_ENOMEM, LOOKASIDE_EINTERNAL (no thread). */
lookaside_status slots_create(uint32_t n, int64_t service_us, slots_done_fn done, void *arg,
                              slots **out);

/* Queues e (owned by the caller, untouched until its done callback). */
void slots_submit(slots *s, slots_entry *e);

/* Requests that get a slot from now on hold it for service_us (>= 1);
 * those in service keep their finish time. Requests still finish in start
 * order: after a decrease, a new one finishes no earlier than the one
 * before it. Any thread. */
void slots_set_service_us(slots *s, int64_t service_us);

/* From now on nothing waits: every queued and in-service entry is finished
 * at once, and so is every later submission (shutdown after the grace
 * period). */
void slots_flush(slots *s);

/* A measurement window. */
typedef struct slots_meter {
    int64_t t_us;
    double busy_slot_us;   /* integral of busy slots over time at t_us */
    double queued_us;      /* integral of waiting requests over time at t_us */
} slots_meter;

typedef struct slots_sample {
    double busy_fraction;  /* mean busy slots / n over the window, 0..1 */
    double queue_mean;     /* mean number of waiting requests over the window */
    uint32_t busy_now, queued_now;
    int64_t window_us;
} slots_sample;

/* Starts a window at now. */
void slots_meter_init(slots *s, slots_meter *m);
/* Averages since m's start (or its previous measure) into *out and starts
 * the next window. A window shorter than 1 ms reports the current state. */
void slots_measure(slots *s, slots_meter *m, slots_sample *out);

/* Finishes whatever is left (as slots_flush), stops the thread and frees s.
 * destroy(NULL) is a no-op. */
void slots_destroy(slots *s);

#endif
