/* timer.h - the host clock, host timers and deferred calls.
 * The clock is wall time (Unix seconds, microseconds kept), or a manual test clock that only
 * moves when told to. Every timer in the host lives in one heap keyed by clock time; with the
 * real clock one libev timer is armed for the earliest, with the manual clock
 * timer_clock_advance fires them in order. Deferred calls run from the loop (an ev_idle
 * watcher), never inside the code that queued them. */
#ifndef SSSN_TIMER_H
#define SSSN_TIMER_H

#include "core/heap.h"

struct host;

typedef struct host_timer {
    heap_node node;
    void (*cb)(struct host *h, struct host_timer *t);
    void *data;
} host_timer;

typedef struct deferred {
    void (*cb)(struct host *h, struct deferred *d);
    void *data;
    struct deferred *next;
    int queued;
} deferred;

void timer_init(host_timer *t, void (*cb)(struct host *, host_timer *), void *data);
void timer_start(struct host *h, host_timer *t, double at); /* (re)schedules at clock time `at` */
void timer_stop(struct host *h, host_timer *t);
static inline int timer_active(const host_timer *t) { return heap_contains(&t->node); }

double host_now(const struct host *h);
double host_monotonic(void); /* seconds on CLOCK_MONOTONIC (durations, the watchdog) */

/* Test clock. */
/* Switches to the manual clock at `now`; pending timers keep their time-to-go. */
void timer_clock_set(struct host *h, double now);
void timer_clock_advance(struct host *h, double dt);  /* fire due timers in order, run deferred */
void timer_clock_real(struct host *h);                /* back to wall time (timers keep time-to-go) */

void defer_init(deferred *d, void (*cb)(struct host *, deferred *), void *data);
void defer(struct host *h, deferred *d);          /* no-op when already queued */
void defer_cancel(struct host *h, deferred *d);
/* Runs queued calls (including ones they queue) until none are left or `limit` ran;
 * returns how many ran. */
unsigned defer_run(struct host *h, unsigned limit);

void timer_host_init(struct host *h);  /* sets up the watchers of h->loop */
void timer_host_free(struct host *h);

#endif
