/* test_stall.c - unit tests for host/rt/stall.c against rt/stall.h: a turn kept busy for a known
 * time shows as the maximum and in the slow-turn counters; quick turns are counted without
 * raising the maximum; what runs before the loop's first poll is no turn; the two watchers keep
 * no loop alive, before and after stall_free. Real loop, real clock: a busy turn spins on the
 * monotonic clock for a fixed time; every loop run is bounded by a guard timer, and alarm()
 * ends the process should a loop wait with nothing to wake it. */
#include <ev.h>
#include <stdio.h>
#include <unistd.h>

#include "check.h"
#include "core/log.h"
#include "rt/rt.h"
#include "rt/stall.h"
#include "rt/timer.h"

static void spin(double seconds)
{
    double until = rt_monotonic() + seconds;
    while (rt_monotonic() < until)
        ;
}

/* A one-shot timer whose callback spins for `spin` seconds and sets `fired`. */
typedef struct busy_timer {
    ev_timer w;
    double spin;
    int fired;
} busy_timer;

static void on_busy(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    busy_timer *b = w->data;
    spin(b->spin);
    b->fired = 1;
}

static void on_guard(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

/* Runs one turn in which a timer due in 1 ms spins for `seconds`, then lets the next turn's
 * prepare close it (EVRUN_NOWAIT). 0, or -1 when the timer did not fire within 5 s. */
static int busy_turn(rt *r, double seconds)
{
    busy_timer b = {.spin = seconds};
    ev_timer guard;
    ev_timer_init(&b.w, on_busy, 0.001, 0);
    b.w.data = &b;
    ev_timer_init(&guard, on_guard, 5, 0);
    ev_timer_start(r->loop, &b.w);
    ev_timer_start(r->loop, &guard);
    double deadline = rt_monotonic() + 5;
    while (!b.fired && rt_monotonic() < deadline)
        ev_run(r->loop, EVRUN_ONCE);
    ev_timer_stop(r->loop, &b.w);
    ev_timer_stop(r->loop, &guard);
    ev_run(r->loop, EVRUN_NOWAIT);
    return b.fired ? 0 : -1;
}

static int over_index(double bound)
{
    for (int i = 0; i < STALL_NOVER; i++)
        if (stall_over_bounds[i] == bound)
            return i;
    return -1;
}

static void test_a_busy_turn_shows_as_the_maximum_and_in_the_slow_counters(void)
{
    rt *r = rt_new(LOG_WARN, 1);
    loop_stall *s = stall_new(r);
    CHECK(s && s->turns == 0 && s->max == 0);
    CHECK(busy_turn(r, 0.030) == 0);
    CHECK(s->turns >= 1);
    CHECK(s->max >= 0.030);
    CHECK(s->max < 5);
    CHECK(s->busy >= s->max);
    int i1 = over_index(0.001), i5 = over_index(0.005), i20 = over_index(0.02), i1s = over_index(1.0);
    CHECK(i1 >= 0 && i5 >= 0 && i20 >= 0 && i1s >= 0);
    CHECK(s->over[i1] >= 1 && s->over[i5] >= 1 && s->over[i20] >= 1);
    CHECK(s->over[i1s] == 0);
    /* the counters are cumulative from the lowest bound up: no turn is over a bound and not
     * over the ones below it */
    for (int i = 1; i < STALL_NOVER; i++)
        CHECK(s->over[i] <= s->over[i - 1]);
    stall_free(s);
    rt_free(r);
}

static void test_quick_turns_are_counted_without_raising_the_maximum(void)
{
    rt *r = rt_new(LOG_WARN, 1);
    loop_stall *s = stall_new(r);
    CHECK(busy_turn(r, 0.050) == 0);
    double max = s->max;
    uint64_t turns = s->turns, over20 = s->over[over_index(0.02)];
    for (int i = 0; i < 20; i++)
        CHECK(busy_turn(r, 0) == 0);
    CHECK(s->turns >= turns + 20);
    CHECK(s->max == max);
    CHECK(s->over[over_index(0.02)] == over20);
    stall_free(s);
    rt_free(r);
}

static void test_work_before_the_first_poll_is_no_turn(void)
{
    rt *r = rt_new(LOG_WARN, 1);
    loop_stall *s = stall_new(r);
    spin(0.030);                     /* as a host's start-up before its loop runs */
    ev_run(r->loop, EVRUN_NOWAIT);   /* prepare (no turn open), poll, check: a turn starts */
    CHECK(s->turns == 0);
    ev_run(r->loop, EVRUN_NOWAIT);   /* its prepare closes that turn at once */
    CHECK(s->turns == 1);
    CHECK(s->max < 0.030);
    stall_free(s);
    rt_free(r);
}

static void test_the_watchers_keep_no_loop_alive(void)
{
    rt *r = rt_new(LOG_WARN, 1);
    loop_stall *s = stall_new(r);
    alarm(10); /* a loop kept alive by them would wait for ever: the alarm ends the test */
    ev_run(r->loop, 0);
    CHECK(s->turns == 0); /* nothing to wait for: ev_run returned before a turn */
    CHECK(busy_turn(r, 0) == 0);
    stall_free(s);
    ev_run(r->loop, 0);   /* the references given back are even: still nothing alive */
    alarm(0);
    CHECK(ev_pending_count(r->loop) == 0);
    rt_free(r);
}

static void test_free_of_null_is_a_no_op(void) { stall_free(NULL); }

int main(void)
{
    RUN(test_a_busy_turn_shows_as_the_maximum_and_in_the_slow_counters);
    RUN(test_quick_turns_are_counted_without_raising_the_maximum);
    RUN(test_work_before_the_first_poll_is_no_turn);
    RUN(test_the_watchers_keep_no_loop_alive);
    RUN(test_free_of_null_is_a_no_op);
    return check_report();
}
