/* test_timer.c - unit tests for host/rt/timer.c against the contract in rt/timer.h: timers fire in
 * deadline order (equal deadlines in start order), restart and stop, callbacks that change other
 * timers; the test clock (advance fires due timers in order and runs deferred calls between;
 * set and real keep each pending timer's time-to-go and tell the clock listeners); deferred calls
 * (order, cancel at head, middle and tail, re-queueing, the limit of defer_run). Most tests use
 * the manual clock; the real-clock ones run the loop with EVRUN_ONCE until the event, bounded by
 * a deadline and a guard timer, never by sleeping. */
#include <ev.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/log.h"
#include "rt/rt.h"
#include "rt/timer.h"

/* What fired, in order: "name@time " for each timer or deferred call. */
static char trace[1024];

static void note(rt *r, const char *name)
{
    size_t have = strlen(trace);
    snprintf(trace + have, sizeof trace - have, "%s@%g ", name, rt_now(r));
}

static void on_timer(rt *r, rt_timer *t) { note(r, t->data); }
static void on_deferred(rt *r, deferred *d) { note(r, d->data); }

/* A runtime on the manual clock at t = 1000, with the trace cleared. */
static rt *manual_rt(void)
{
    rt *r = rt_new(LOG_WARN, 1);
    if (r)
        timer_clock_set(r, 1000);
    trace[0] = '\0';
    return r;
}

/* ---- order ---- */

static void test_timers_fire_in_deadline_order(void)
{
    rt *r = manual_rt();
    rt_timer a, b, c;
    timer_init(&a, on_timer, "a");
    timer_init(&b, on_timer, "b");
    timer_init(&c, on_timer, "c");
    timer_start(r, &c, 1003);
    timer_start(r, &a, 1001);
    timer_start(r, &b, 1002);
    CHECK(timer_active(&a) && timer_active(&b) && timer_active(&c));
    timer_clock_advance(r, 2.5);
    CHECK(strcmp(trace, "a@1001 b@1002 ") == 0);
    CHECK(rt_now(r) == 1002.5);
    CHECK(!timer_active(&a) && !timer_active(&b) && timer_active(&c));
    timer_clock_advance(r, 10);
    CHECK(strcmp(trace, "a@1001 b@1002 c@1003 ") == 0);
    CHECK(rt_now(r) == 1012.5);
    CHECK(!timer_active(&c));
    rt_free(r);
}

static void test_equal_deadlines_fire_in_start_order(void)
{
    rt *r = manual_rt();
    rt_timer t[4];
    const char *names[4] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++)
        timer_init(&t[i], on_timer, (void *)names[i]);
    timer_start(r, &t[1], 1001);
    timer_start(r, &t[3], 1001);
    timer_start(r, &t[0], 1001);
    timer_start(r, &t[2], 1001);
    timer_clock_advance(r, 1);
    CHECK(strcmp(trace, "b@1001 d@1001 a@1001 c@1001 ") == 0);
    rt_free(r);
}

static void test_timer_restarted_earlier_fires_earlier(void)
{
    rt *r = manual_rt();
    rt_timer a, b;
    timer_init(&a, on_timer, "a");
    timer_init(&b, on_timer, "b");
    timer_start(r, &a, 1005);
    timer_start(r, &b, 1003);
    timer_start(r, &a, 1001);
    CHECK(timer_active(&a) && a.node.key == 1001);
    timer_clock_advance(r, 10);
    CHECK(strcmp(trace, "a@1001 b@1003 ") == 0);
    rt_free(r);
}

static void test_timer_restarted_later_fires_later_and_once(void)
{
    rt *r = manual_rt();
    rt_timer a, b;
    timer_init(&a, on_timer, "a");
    timer_init(&b, on_timer, "b");
    timer_start(r, &a, 1001);
    timer_start(r, &b, 1003);
    timer_start(r, &a, 1004);
    timer_clock_advance(r, 10);
    CHECK(strcmp(trace, "b@1003 a@1004 ") == 0);
    rt_free(r);
}

static void test_restart_at_an_equal_deadline_counts_as_a_new_start(void)
{
    rt *r = manual_rt();
    rt_timer a, b;
    timer_init(&a, on_timer, "a");
    timer_init(&b, on_timer, "b");
    timer_start(r, &a, 1002);
    timer_start(r, &b, 1002);
    timer_start(r, &a, 1002); /* a now goes after b */
    timer_clock_advance(r, 10);
    CHECK(strcmp(trace, "b@1002 a@1002 ") == 0);
    rt_free(r);
}

/* ---- stop ---- */

static void test_stopped_pending_timer_never_fires(void)
{
    rt *r = manual_rt();
    rt_timer a, b, c;
    timer_init(&a, on_timer, "a");
    timer_init(&b, on_timer, "b");
    timer_init(&c, on_timer, "c");
    timer_start(r, &a, 1001); /* the earliest */
    timer_start(r, &b, 1002); /* in the middle */
    timer_start(r, &c, 1003);
    timer_stop(r, &a);
    timer_stop(r, &b);
    CHECK(!timer_active(&a) && !timer_active(&b) && timer_active(&c));
    CHECK(r->timers.count == 1);
    timer_clock_advance(r, 10);
    CHECK(strcmp(trace, "c@1003 ") == 0);
    rt_free(r);
}

static void test_stopping_an_inactive_timer_changes_nothing(void)
{
    rt *r = manual_rt();
    rt_timer never, fired, other;
    timer_init(&never, on_timer, "never");
    timer_init(&fired, on_timer, "fired");
    timer_init(&other, on_timer, "other");
    timer_start(r, &fired, 1001);
    timer_start(r, &other, 1005);
    timer_stop(r, &never); /* never started */
    timer_clock_advance(r, 2);
    timer_stop(r, &fired); /* already fired */
    timer_stop(r, &fired); /* twice */
    CHECK(!timer_active(&never) && !timer_active(&fired) && timer_active(&other));
    CHECK(r->timers.count == 1);
    timer_clock_advance(r, 10);
    CHECK(strcmp(trace, "fired@1001 other@1005 ") == 0);
    rt_free(r);
}

/* ---- callbacks that change timers ---- */

typedef struct juggler {
    rt_timer self, started, stopped, restarted;
    int runs;
} juggler;

/* On its first run: starts `started` inside this advance, stops `stopped` before it is due,
 * moves `restarted` earlier, and restarts itself once. */
static void on_juggle(rt *r, rt_timer *t)
{
    juggler *j = t->data;
    note(r, "self");
    if (j->runs++ == 0) {
        timer_start(r, &j->started, rt_now(r) + 0.5);
        timer_stop(r, &j->stopped);
        timer_start(r, &j->restarted, rt_now(r) + 0.25);
        timer_start(r, &j->self, rt_now(r) + 2);
        CHECK(timer_active(&j->self));
    }
}

static void test_callback_starts_and_stops_other_timers_and_itself(void)
{
    rt *r = manual_rt();
    juggler j = {.runs = 0};
    timer_init(&j.self, on_juggle, &j);
    timer_init(&j.started, on_timer, "started");
    timer_init(&j.stopped, on_timer, "stopped");
    timer_init(&j.restarted, on_timer, "restarted");
    timer_start(r, &j.self, 1001);
    timer_start(r, &j.stopped, 1001.75);
    timer_start(r, &j.restarted, 1008);
    CHECK(!timer_active(&j.started));
    timer_clock_advance(r, 10);
    CHECK(strcmp(trace, "self@1001 restarted@1001.25 started@1001.5 self@1003 ") == 0);
    CHECK(j.runs == 2);
    CHECK(r->timers.count == 0);
    rt_free(r);
}

static void on_restart_then_stop_self(rt *r, rt_timer *t)
{
    note(r, t->data);
    timer_start(r, t, rt_now(r) + 1);
    CHECK(timer_active(t));
    timer_stop(r, t);
    timer_stop(r, t); /* a second stop changes nothing */
}

static void test_callback_that_restarts_then_stops_itself_does_not_fire_again(void)
{
    rt *r = manual_rt();
    rt_timer a, b;
    timer_init(&a, on_restart_then_stop_self, "a");
    timer_init(&b, on_timer, "b");
    timer_start(r, &a, 1001);
    timer_start(r, &b, 1003);
    timer_clock_advance(r, 10);
    CHECK(strcmp(trace, "a@1001 b@1003 ") == 0);
    CHECK(!timer_active(&a) && r->timers.count == 0);
    rt_free(r);
}

static void on_start_in_the_past(rt *r, rt_timer *t)
{
    note(r, "first");
    timer_start(r, t + 1, rt_now(r) - 5); /* already due: fires now, the clock does not go back */
}

static void test_timer_started_in_the_past_fires_at_once_without_moving_the_clock_back(void)
{
    rt *r = manual_rt();
    rt_timer t[2];
    timer_init(&t[0], on_start_in_the_past, NULL);
    timer_init(&t[1], on_timer, "late");
    timer_start(r, &t[0], 1002);
    timer_clock_advance(r, 3);
    CHECK(strcmp(trace, "first@1002 late@1002 ") == 0);
    CHECK(rt_now(r) == 1003);

    trace[0] = '\0';
    timer_start(r, &t[1], 900);
    timer_clock_advance(r, 0);
    CHECK(strcmp(trace, "late@1003 ") == 0);
    CHECK(rt_now(r) == 1003);
    rt_free(r);
}

/* ---- the test clock: advance ---- */

typedef struct defer_from_timer {
    rt_timer t;
    deferred d;
} defer_from_timer;

static void on_timer_defers(rt *r, rt_timer *t)
{
    defer_from_timer *x = t->data;
    note(r, "t");
    defer(r, &x->d);
    CHECK(strstr(trace, "d@") == NULL); /* queued, not run inside the callback */
}

static void test_advance_moves_now_to_each_deadline_and_runs_deferred_calls_between(void)
{
    rt *r = manual_rt();
    defer_from_timer x;
    timer_init(&x.t, on_timer_defers, &x);
    defer_init(&x.d, on_deferred, "d");
    deferred before;
    defer_init(&before, on_deferred, "before");
    rt_timer b, c;
    timer_init(&b, on_timer, "b");
    timer_init(&c, on_timer, "c");
    timer_start(r, &x.t, 1001.5);
    timer_start(r, &b, 1001.5);
    timer_start(r, &c, 1004);
    defer(r, &before);
    CHECK(strcmp(trace, "") == 0); /* defer never runs the call at once */
    timer_clock_advance(r, 5);
    /* the call queued before runs first, at the old time; the one t queues runs before b */
    CHECK(strcmp(trace, "before@1000 t@1001.5 d@1001.5 b@1001.5 c@1004 ") == 0);
    CHECK(rt_now(r) == 1005);
    rt_free(r);
}

static void test_advance_by_zero_or_less_fires_only_what_is_due(void)
{
    rt *r = manual_rt();
    rt_timer due, later;
    timer_init(&due, on_timer, "due");
    timer_init(&later, on_timer, "later");
    timer_start(r, &due, 1000);
    timer_start(r, &later, 1000.001);
    timer_clock_advance(r, 0);
    CHECK(strcmp(trace, "due@1000 ") == 0);
    CHECK(rt_now(r) == 1000);
    timer_clock_advance(r, -3); /* time never runs back */
    CHECK(rt_now(r) == 1000);
    CHECK(timer_active(&later));
    rt_free(r);
}

static void test_advance_from_the_real_clock_switches_to_the_manual_clock(void)
{
    rt *r = rt_new(LOG_WARN, 1);
    trace[0] = '\0';
    CHECK(!r->manual_clock);
    double wall = rt_now(r);
    rt_timer a;
    timer_init(&a, on_timer, "a");
    timer_start(r, &a, wall + 3600); /* an hour away: only the test clock gets there now */
    timer_clock_advance(r, 7200);
    CHECK(r->manual_clock);
    CHECK(strncmp(trace, "a@", 2) == 0);
    CHECK(!timer_active(&a));
    CHECK(fabs(rt_now(r) - (wall + 7200)) < 1);
    rt_free(r);
}

/* ---- the test clock: set and real ---- */

typedef struct shift_seen {
    clock_listener l;
    int calls;
    double delta;
} shift_seen;

static void on_shift(clock_listener *l, double delta)
{
    shift_seen *s = l->data;
    s->calls++;
    s->delta = delta;
}

static void listen_shift(rt *r, shift_seen *s)
{
    s->calls = 0;
    s->delta = 0;
    s->l = (clock_listener){.on_shift = on_shift, .data = s};
    rt_add_clock_listener(r, &s->l);
}

static void test_clock_set_keeps_each_timers_time_to_go(void)
{
    rt *r = manual_rt();
    rt_timer a, b;
    timer_init(&a, on_timer, "a");
    timer_init(&b, on_timer, "b");
    timer_start(r, &a, 1010);
    timer_start(r, &b, 1020.5);
    timer_clock_set(r, 5000);
    CHECK(rt_now(r) == 5000);
    CHECK(a.node.key == 5010 && b.node.key == 5020.5);
    timer_clock_advance(r, 9.5);
    CHECK(strcmp(trace, "") == 0);
    timer_clock_advance(r, 0.5);
    CHECK(strcmp(trace, "a@5010 ") == 0);
    timer_clock_set(r, 100); /* backwards too */
    CHECK(b.node.key == 110.5);
    timer_clock_advance(r, 20);
    CHECK(strcmp(trace, "a@5010 b@110.5 ") == 0);
    rt_free(r);
}

static void test_clock_set_tells_each_listener_the_shift_and_not_a_removed_one(void)
{
    rt *r = manual_rt();
    shift_seen first, middle, last, never_added;
    listen_shift(r, &first);
    listen_shift(r, &middle);
    listen_shift(r, &last);
    never_added.l = (clock_listener){.on_shift = on_shift, .data = &never_added};
    never_added.calls = 0;
    rt_remove_clock_listener(r, &middle.l);
    rt_remove_clock_listener(r, &never_added.l); /* not in the list: nothing happens */
    timer_clock_set(r, 1250);
    CHECK(first.calls == 1 && first.delta == 250);
    CHECK(last.calls == 1 && last.delta == 250);
    CHECK(middle.calls == 0 && never_added.calls == 0);
    rt_remove_clock_listener(r, &first.l);
    timer_clock_set(r, 1000);
    CHECK(first.calls == 1);
    CHECK(last.calls == 2 && last.delta == -250);
    timer_clock_advance(r, 30); /* advancing is not a shift */
    CHECK(last.calls == 2);
    rt_remove_clock_listener(r, &last.l);
    CHECK(r->clock_listeners == NULL);
    rt_free(r);
}

static void test_clock_set_from_the_real_clock_keeps_time_to_go(void)
{
    rt *r = rt_new(LOG_WARN, 1);
    trace[0] = '\0';
    shift_seen s;
    listen_shift(r, &s);
    double wall = rt_now(r);
    rt_timer a;
    timer_init(&a, on_timer, "a");
    timer_start(r, &a, wall + 100);
    timer_clock_set(r, 500);
    CHECK(r->manual_clock && rt_now(r) == 500);
    CHECK(fabs(a.node.key - 600) < 0.05);
    CHECK(s.calls == 1 && fabs(s.delta - (500 - wall)) < 0.05);
    CHECK(fabs(a.node.key - 100 - (wall + s.delta)) < 1e-6); /* moved by exactly the delta told */
    rt_free(r);
}

static void test_clock_real_goes_back_to_wall_time_keeping_time_to_go(void)
{
    rt *r = manual_rt();
    shift_seen s;
    listen_shift(r, &s);
    rt_timer a, b;
    timer_init(&a, on_timer, "a");
    timer_init(&b, on_timer, "b");
    timer_start(r, &a, 1000.05);
    timer_start(r, &b, 1100);
    timer_clock_real(r);
    double wall = rt_now(r);
    CHECK(!r->manual_clock);
    CHECK(fabs(wall - ev_time()) < 1); /* wall time again, not the test clock's 1000 */
    CHECK(s.calls == 1 && fabs(s.delta - (wall - 1000)) < 0.05);
    CHECK(fabs(a.node.key - 1000.05 - s.delta) < 1e-6);
    CHECK(fabs((a.node.key - wall) - 0.05) < 0.05);
    CHECK(fabs((b.node.key - wall) - 100) < 0.05);
    timer_clock_real(r); /* already real: no shift */
    CHECK(s.calls == 1);
    rt_free(r);
}

/* ---- deferred calls ---- */

static void test_deferred_calls_run_in_queue_order_and_only_from_defer_run(void)
{
    rt *r = manual_rt();
    deferred d[3];
    const char *names[3] = {"x", "y", "z"};
    for (int i = 0; i < 3; i++)
        defer_init(&d[i], on_deferred, (void *)names[i]);
    defer(r, &d[2]);
    defer(r, &d[0]);
    defer(r, &d[1]);
    CHECK(d[0].queued && d[1].queued && d[2].queued);
    CHECK(strcmp(trace, "") == 0);
    CHECK(defer_run(r, 100) == 3);
    CHECK(strcmp(trace, "z@1000 x@1000 y@1000 ") == 0);
    CHECK(!d[0].queued && !d[1].queued && !d[2].queued);
    CHECK(defer_run(r, 100) == 0);
    CHECK(r->defer_head == NULL && r->defer_tail == NULL);
    rt_free(r);
}

/* Queues a, b, c, cancels the one at `which`, then queues d: the queue must still be whole. */
static void cancel_one_of_three(int which, const char *want)
{
    rt *r = manual_rt();
    deferred d[4];
    const char *names[4] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++)
        defer_init(&d[i], on_deferred, (void *)names[i]);
    for (int i = 0; i < 3; i++)
        defer(r, &d[i]);
    defer_cancel(r, &d[which]);
    CHECK(!d[which].queued);
    defer(r, &d[3]);
    CHECK(defer_run(r, 100) == 3);
    CHECK(strcmp(trace, want) == 0);
    if (strcmp(trace, want) != 0)
        fprintf(stderr, "  cancelling %s: ran %s\n", names[which], trace);
    CHECK(r->defer_head == NULL && r->defer_tail == NULL);
    rt_free(r);
}

static void test_cancelled_deferred_call_at_the_head_never_runs(void)
{
    cancel_one_of_three(0, "b@1000 c@1000 d@1000 ");
}

static void test_cancelled_deferred_call_in_the_middle_never_runs(void)
{
    cancel_one_of_three(1, "a@1000 c@1000 d@1000 ");
}

static void test_cancelled_deferred_call_at_the_tail_never_runs(void)
{
    cancel_one_of_three(2, "a@1000 b@1000 d@1000 ");
}

static void test_cancelling_the_only_deferred_call_empties_the_queue(void)
{
    rt *r = manual_rt();
    deferred a, idle;
    defer_init(&a, on_deferred, "a");
    defer_init(&idle, on_deferred, "idle");
    defer(r, &a);
    defer_cancel(r, &a);
    defer_cancel(r, &a);    /* twice */
    defer_cancel(r, &idle); /* never queued */
    CHECK(r->defer_head == NULL && r->defer_tail == NULL);
    CHECK(defer_run(r, 100) == 0);
    defer(r, &a); /* and it can be queued again */
    CHECK(defer_run(r, 100) == 1);
    CHECK(strcmp(trace, "a@1000 ") == 0);
    rt_free(r);
}

static void test_cancelled_then_requeued_call_runs_once_at_the_tail(void)
{
    rt *r = manual_rt();
    deferred a, b;
    defer_init(&a, on_deferred, "a");
    defer_init(&b, on_deferred, "b");
    defer(r, &a);
    defer(r, &b);
    defer_cancel(r, &a);
    defer(r, &a);
    CHECK(defer_run(r, 100) == 2);
    CHECK(strcmp(trace, "b@1000 a@1000 ") == 0);
    rt_free(r);
}

static void test_deferring_an_already_queued_call_is_a_no_op(void)
{
    rt *r = manual_rt();
    deferred a, b, c;
    defer_init(&a, on_deferred, "a");
    defer_init(&b, on_deferred, "b");
    defer_init(&c, on_deferred, "c");
    defer(r, &a);
    defer(r, &b);
    defer(r, &c);
    defer(r, &a); /* the head keeps its place */
    CHECK(defer_run(r, 100) == 3);
    CHECK(strcmp(trace, "a@1000 b@1000 c@1000 ") == 0);
    trace[0] = '\0';
    defer(r, &a);
    defer(r, &b);
    defer(r, &c);
    defer(r, &b); /* so does the middle */
    CHECK(defer_run(r, 100) == 3);
    CHECK(strcmp(trace, "a@1000 b@1000 c@1000 ") == 0);
    trace[0] = '\0';
    defer(r, &a);
    defer(r, &b);
    defer(r, &b); /* and the tail */
    CHECK(defer_run(r, 100) == 2);
    CHECK(strcmp(trace, "a@1000 b@1000 ") == 0);
    rt_free(r);
}

typedef struct chain {
    deferred first, second, victim;
} chain;

static void on_first_queues_second(rt *r, deferred *d)
{
    chain *c = d->data;
    note(r, "first");
    defer(r, &c->second);
    defer_cancel(r, &c->victim); /* queued behind us: it must not run */
}

static void on_second(rt *r, deferred *d)
{
    (void)d;
    note(r, "second");
}

static void test_deferred_call_may_queue_another_and_cancel_a_later_one(void)
{
    rt *r = manual_rt();
    chain c;
    defer_init(&c.first, on_first_queues_second, &c);
    defer_init(&c.second, on_second, &c);
    defer_init(&c.victim, on_deferred, "victim");
    defer(r, &c.first);
    defer(r, &c.victim);
    CHECK(defer_run(r, 100) == 2); /* the one queued meanwhile runs in the same defer_run */
    CHECK(strcmp(trace, "first@1000 second@1000 ") == 0);
    CHECK(!c.victim.queued && r->defer_head == NULL);
    rt_free(r);
}

static int requeue_runs;

static void on_requeue_self(rt *r, deferred *d)
{
    if (++requeue_runs < 10) /* bounded, so a defer_run that ignored its limit still ends */
        defer(r, d);
}

static void test_defer_run_stops_at_its_limit(void)
{
    rt *r = manual_rt();
    deferred d[5];
    const char *names[5] = {"1", "2", "3", "4", "5"};
    for (int i = 0; i < 5; i++) {
        defer_init(&d[i], on_deferred, (void *)names[i]);
        defer(r, &d[i]);
    }
    CHECK(defer_run(r, 3) == 3);
    CHECK(strcmp(trace, "1@1000 2@1000 3@1000 ") == 0);
    CHECK(d[3].queued && d[4].queued);
    CHECK(defer_run(r, 0) == 0);
    CHECK(defer_run(r, 3) == 2);
    CHECK(strcmp(trace, "1@1000 2@1000 3@1000 4@1000 5@1000 ") == 0);

    /* a call that queues itself again runs until the limit, and stays queued */
    deferred loop;
    requeue_runs = 0;
    defer_init(&loop, on_requeue_self, NULL);
    defer(r, &loop);
    CHECK(defer_run(r, 4) == 4);
    CHECK(requeue_runs == 4);
    CHECK(loop.queued && r->defer_head == &loop && r->defer_tail == &loop);
    defer_cancel(r, &loop);
    CHECK(defer_run(r, 4) == 0 && requeue_runs == 4);
    rt_free(r);
}

/* ---- the real clock, through the loop ---- */

static void on_guard(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

/* Runs r's loop one iteration at a time until *flag is set or `seconds` have passed. A guard
 * timer wakes the loop every 20 ms, so no iteration blocks past the deadline. Returns *flag. */
static int run_until(rt *r, const int *flag, double seconds)
{
    ev_timer guard;
    ev_timer_init(&guard, on_guard, 0.02, 0.02);
    ev_timer_start(r->loop, &guard);
    double deadline = rt_monotonic() + seconds;
    while (!*flag && rt_monotonic() < deadline)
        ev_run(r->loop, EVRUN_ONCE);
    ev_timer_stop(r->loop, &guard);
    return *flag;
}

typedef struct real_fire {
    rt_timer t;
    int fired;
    double at; /* rt_now() when it fired */
} real_fire;

static void on_real_fire(rt *r, rt_timer *t)
{
    real_fire *f = t->data;
    f->fired++;
    f->at = rt_now(r);
}

static void real_fire_init(real_fire *f)
{
    f->fired = 0;
    f->at = 0;
    timer_init(&f->t, on_real_fire, f);
}

static void test_timer_fires_from_the_loop_with_the_real_clock(void)
{
    rt *r = rt_new(LOG_WARN, 1);
    real_fire f;
    real_fire_init(&f);
    double due = rt_now(r) + 0.03;
    timer_start(r, &f.t, due);
    ev_run(r->loop, EVRUN_NOWAIT);
    CHECK(f.fired == 0); /* not before its time */
    CHECK(run_until(r, &f.fired, 5));
    CHECK(f.fired == 1);
    CHECK(f.at >= due - 1e-3);
    CHECK(!timer_active(&f.t));
    rt_free(r);
}

static void test_restarting_the_armed_timer_earlier_rearms_the_loop(void)
{
    rt *r = rt_new(LOG_WARN, 1);
    real_fire f;
    real_fire_init(&f);
    timer_start(r, &f.t, rt_now(r) + 3600);
    ev_run(r->loop, EVRUN_NOWAIT);
    timer_start(r, &f.t, rt_now(r) + 0.02);
    CHECK(run_until(r, &f.fired, 5));
    rt_free(r);
}

static void test_a_new_earliest_timer_rearms_the_loop(void)
{
    rt *r = rt_new(LOG_WARN, 1);
    real_fire late, soon;
    real_fire_init(&late);
    real_fire_init(&soon);
    timer_start(r, &late.t, rt_now(r) + 3600);
    timer_start(r, &soon.t, rt_now(r) + 0.02);
    CHECK(run_until(r, &soon.fired, 5));
    CHECK(late.fired == 0 && timer_active(&late.t));
    rt_free(r);
}

static void test_stopping_the_armed_timer_arms_the_next(void)
{
    rt *r = rt_new(LOG_WARN, 1);
    real_fire first, next, last;
    real_fire_init(&first);
    real_fire_init(&next);
    real_fire_init(&last);
    timer_start(r, &first.t, rt_now(r) + 0.01);
    timer_start(r, &next.t, rt_now(r) + 0.03);
    timer_start(r, &last.t, rt_now(r) + 3600);
    timer_stop(r, &first.t);
    CHECK(ev_is_active(&r->timer_watcher));
    CHECK(ev_timer_remaining(r->loop, &r->timer_watcher) > 0.015); /* armed for next, not first */
    CHECK(run_until(r, &next.fired, 5));
    CHECK(first.fired == 0 && last.fired == 0);
    timer_stop(r, &last.t); /* the last one: the loop has no timer left to wait for */
    CHECK(!ev_is_active(&r->timer_watcher));
    rt_free(r);
}

static void test_timer_kept_across_the_test_clock_fires_from_the_loop_after_clock_real(void)
{
    rt *r = manual_rt();
    real_fire f;
    real_fire_init(&f);
    timer_start(r, &f.t, 1000.03);
    ev_run(r->loop, EVRUN_NOWAIT); /* the manual clock arms nothing */
    CHECK(f.fired == 0);
    timer_clock_real(r);
    double due = f.t.node.key;
    CHECK(run_until(r, &f.fired, 5));
    CHECK(f.fired == 1 && f.at >= due - 1e-3);
    rt_free(r);
}

typedef struct real_defer {
    deferred d;
    int ran;
} real_defer;

static void on_real_defer(rt *r, deferred *d)
{
    (void)r;
    ((real_defer *)d->data)->ran++;
}

static void test_deferred_call_runs_from_the_loop_with_the_real_clock(void)
{
    rt *r = rt_new(LOG_WARN, 1);
    real_defer x = {.ran = 0}, cancelled = {.ran = 0};
    defer_init(&x.d, on_real_defer, &x);
    defer_init(&cancelled.d, on_real_defer, &cancelled);
    defer(r, &x.d);
    defer(r, &cancelled.d);
    defer_cancel(r, &cancelled.d);
    CHECK(x.ran == 0);
    CHECK(run_until(r, &x.ran, 5));
    CHECK(x.ran == 1 && cancelled.ran == 0);
    CHECK(!ev_is_active(&r->defer_watcher)); /* nothing left: the idle watcher stops */
    rt_free(r);
}

static void test_deferred_call_queued_on_the_test_clock_waits_for_advance_or_clock_real(void)
{
    rt *r = manual_rt();
    real_defer x = {.ran = 0};
    defer_init(&x.d, on_real_defer, &x);
    defer(r, &x.d);
    ev_run(r->loop, EVRUN_NOWAIT);
    CHECK(x.ran == 0); /* the loop does not run it while the test clock holds time */
    timer_clock_real(r);
    CHECK(run_until(r, &x.ran, 5));
    CHECK(x.ran == 1);
    rt_free(r);
}

int main(void)
{
    RUN(test_timers_fire_in_deadline_order);
    RUN(test_equal_deadlines_fire_in_start_order);
    RUN(test_timer_restarted_earlier_fires_earlier);
    RUN(test_timer_restarted_later_fires_later_and_once);
    RUN(test_restart_at_an_equal_deadline_counts_as_a_new_start);
    RUN(test_stopped_pending_timer_never_fires);
    RUN(test_stopping_an_inactive_timer_changes_nothing);
    RUN(test_callback_starts_and_stops_other_timers_and_itself);
    RUN(test_callback_that_restarts_then_stops_itself_does_not_fire_again);
    RUN(test_timer_started_in_the_past_fires_at_once_without_moving_the_clock_back);
    RUN(test_advance_moves_now_to_each_deadline_and_runs_deferred_calls_between);
    RUN(test_advance_by_zero_or_less_fires_only_what_is_due);
    RUN(test_advance_from_the_real_clock_switches_to_the_manual_clock);
    RUN(test_clock_set_keeps_each_timers_time_to_go);
    RUN(test_clock_set_tells_each_listener_the_shift_and_not_a_removed_one);
    RUN(test_clock_set_from_the_real_clock_keeps_time_to_go);
    RUN(test_clock_real_goes_back_to_wall_time_keeping_time_to_go);
    RUN(test_deferred_calls_run_in_queue_order_and_only_from_defer_run);
    RUN(test_cancelled_deferred_call_at_the_head_never_runs);
    RUN(test_cancelled_deferred_call_in_the_middle_never_runs);
    RUN(test_cancelled_deferred_call_at_the_tail_never_runs);
    RUN(test_cancelling_the_only_deferred_call_empties_the_queue);
    RUN(test_cancelled_then_requeued_call_runs_once_at_the_tail);
    RUN(test_deferring_an_already_queued_call_is_a_no_op);
    RUN(test_deferred_call_may_queue_another_and_cancel_a_later_one);
    RUN(test_defer_run_stops_at_its_limit);
    RUN(test_timer_fires_from_the_loop_with_the_real_clock);
    RUN(test_restarting_the_armed_timer_earlier_rearms_the_loop);
    RUN(test_a_new_earliest_timer_rearms_the_loop);
    RUN(test_stopping_the_armed_timer_arms_the_next);
    RUN(test_timer_kept_across_the_test_clock_fires_from_the_loop_after_clock_real);
    RUN(test_deferred_call_runs_from_the_loop_with_the_real_clock);
    RUN(test_deferred_call_queued_on_the_test_clock_waits_for_advance_or_clock_real);
    return check_report();
}
