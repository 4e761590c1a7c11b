/* timer.h - the host clock, timers and deferred calls of the runtime (rt.h).
 * The clock is wall time (Unix seconds, microseconds kept), or a manual test clock that only
 * moves when told to. Every timer lives in one heap keyed by clock time; with the real clock
 * one libev timer is armed for the earliest, with the manual clock timer_clock_advance fires
 * them in order. Deferred calls run from the loop (an ev_idle watcher), never inside the code
 * that queued them. */
#ifndef SSSN_TIMER_H
#define SSSN_TIMER_H

#include "rt/rt.h"

void timer_init(rt_timer *t, void (*cb)(rt *, rt_timer *), void *data);
void timer_start(rt *r, rt_timer *t, double at); /* (re)schedules at clock time `at` */
void timer_stop(rt *r, rt_timer *t);
static inline int timer_active(const rt_timer *t) { return heap_contains(&t->node); }

double rt_now(const rt *r);  /* the host clock, to the microsecond */
double rt_monotonic(void);   /* seconds on CLOCK_MONOTONIC (durations, the watchdog) */

/* Test clock. Switches to the manual clock at `now`; pending timers keep their time-to-go,
 * and clock listeners are told the shift. */
void timer_clock_set(rt *r, double now);
void timer_clock_advance(rt *r, double dt); /* fire due timers in order, run deferred calls */
void timer_clock_real(rt *r);               /* back to wall time (timers keep time-to-go) */
void rt_add_clock_listener(rt *r, clock_listener *l);
void rt_remove_clock_listener(rt *r, clock_listener *l);

void defer_init(deferred *d, void (*cb)(rt *, deferred *), void *data);
void defer(rt *r, deferred *d); /* no-op when already queued */
void defer_cancel(rt *r, deferred *d);
/* Runs queued calls (including ones they queue) until none are left or `limit` ran;
 * returns how many ran. */
unsigned defer_run(rt *r, unsigned limit);

void timer_rt_init(rt *r); /* sets up the watchers of r->loop (rt_new calls it) */
void timer_rt_free(rt *r);

#endif
