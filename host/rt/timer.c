/* timer.c - the host clock, the runtime's timer heap on one libev timer, and deferred calls
 * run from an ev_idle watcher. With the manual (test) clock nothing fires by itself:
 * timer_clock_advance walks time forward, firing due timers in deadline order. */
#include "rt/timer.h"

#include <math.h>
#include <stddef.h>
#include <time.h>

#include "core/log.h"

#define TIMER_OF(n) ((rt_timer *)((char *)(n) - offsetof(rt_timer, node)))

double rt_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Wall time as it was when the host started, carried forward by the monotonic clock: a step
 * of the system clock (NTP, an operator) then moves no schedule, and time never runs back. */
static double real_now(const rt *h) { return rt_monotonic() + h->clock_offset; }

/* To the microsecond: every timestamp and expiry then has a short exact decimal form, which
 * is what the JSON writers print fastest. */
double rt_now(const rt *h)
{
    if (h->manual_clock)
        return h->manual_now;
    return floor(real_now(h) * 1e6 + 0.5) / 1e6;
}

static void arm(rt *h)
{
    if (h->manual_clock) {
        ev_timer_stop(h->loop, &h->timer_watcher);
        return;
    }
    heap_node *top = heap_peek(&h->timers);
    if (!top) {
        ev_timer_stop(h->loop, &h->timer_watcher);
        return;
    }
    double after = top->key - real_now(h);
    ev_timer_stop(h->loop, &h->timer_watcher);
    ev_now_update(h->loop);
    ev_timer_set(&h->timer_watcher, after > 0 ? after : 0, 0);
    ev_timer_start(h->loop, &h->timer_watcher);
}

/* Fires every timer due at `now`, in order. A callback may start or stop timers. */
static void fire_due(rt *h, double now)
{
    heap_node *top;
    while ((top = heap_peek(&h->timers)) && top->key <= now) {
        heap_pop(&h->timers);
        rt_timer *t = TIMER_OF(top);
        t->cb(h, t);
    }
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    rt *h = w->data;
    /* libev may wake a hair before our wall-clock deadline; treat that as due */
    fire_due(h, real_now(h) + 1e-4);
    arm(h);
}

void timer_init(rt_timer *t, void (*cb)(rt *, rt_timer *), void *data)
{
    t->node = (heap_node)HEAP_NODE_INIT;
    t->cb = cb;
    t->data = data;
}

void timer_start(rt *h, rt_timer *t, double at)
{
    heap_node *old_top = heap_peek(&h->timers);
    if (heap_contains(&t->node))
        heap_update(&h->timers, &t->node, at);
    else if (heap_push(&h->timers, &t->node, at) < 0)
        return; /* out of memory: the timer stays inactive, callers see timer_active() == 0 */
    if (heap_peek(&h->timers) != old_top || old_top == &t->node)
        arm(h);
}

void timer_stop(rt *h, rt_timer *t)
{
    if (!heap_contains(&t->node))
        return;
    int was_top = heap_peek(&h->timers) == &t->node;
    heap_remove(&h->timers, &t->node);
    if (was_top)
        arm(h);
}

/* Moves every pending timer by `delta` so each keeps its time-to-go across a clock switch
 * (a uniform shift keeps the heap ordered). */
static void shift_timers(rt *h, double delta)
{
    for (size_t i = 0; i < h->timers.count; i++)
        h->timers.items[i]->key += delta;
    for (clock_listener *l = h->clock_listeners, *next; l; l = next) {
        next = l->next;
        l->on_shift(l, delta);
    }
}

void rt_add_clock_listener(rt *r, clock_listener *l)
{
    l->next = r->clock_listeners;
    r->clock_listeners = l;
}

void rt_remove_clock_listener(rt *r, clock_listener *l)
{
    for (clock_listener **p = &r->clock_listeners; *p; p = &(*p)->next)
        if (*p == l) {
            *p = l->next;
            l->next = NULL;
            return;
        }
}

void timer_clock_set(rt *h, double now)
{
    shift_timers(h, now - rt_now(h));
    h->manual_clock = 1;
    h->manual_now = now;
    arm(h);
}

void timer_clock_advance(rt *h, double dt)
{
    if (!h->manual_clock)
        timer_clock_set(h, real_now(h));
    double target = h->manual_now + (dt > 0 ? dt : 0);
    defer_run(h, 1000000);
    heap_node *top;
    unsigned long fired = 0;
    while ((top = heap_peek(&h->timers)) && top->key <= target) {
        if (top->key > h->manual_now)
            h->manual_now = top->key;
        heap_pop(&h->timers);
        rt_timer *t = TIMER_OF(top);
        t->cb(h, t);
        defer_run(h, 1000000);
        /* a task that keeps sleeping 0 s would hold test time still forever */
        if (++fired > 10000000UL) {
            rt_log(h, LOG_ERROR, NULL, "test clock: timers keep firing at t=%.6f "
                      "(a loop of sssn.sleep(0)?); advance stopped there", h->manual_now);
            return;
        }
    }
    h->manual_now = target;
    defer_run(h, 1000000);
}

void timer_clock_real(rt *h)
{
    if (h->manual_clock)
        shift_timers(h, real_now(h) - h->manual_now);
    h->manual_clock = 0;
    arm(h);
    if (h->defer_head)
        ev_idle_start(h->loop, &h->defer_watcher);
}

static void on_idle(struct ev_loop *loop, ev_idle *w, int revents)
{
    (void)loop;
    (void)revents;
    rt *h = w->data;
    defer_run(h, 1000); /* bounded so timers and I/O get their turn */
}

void defer_init(deferred *d, void (*cb)(rt *, deferred *), void *data)
{
    d->cb = cb;
    d->data = data;
    d->next = NULL;
    d->queued = 0;
}

void defer(rt *h, deferred *d)
{
    if (d->queued)
        return;
    d->queued = 1;
    d->next = NULL;
    if (h->defer_tail)
        h->defer_tail->next = d;
    else
        h->defer_head = d;
    h->defer_tail = d;
    if (!h->manual_clock)
        ev_idle_start(h->loop, &h->defer_watcher);
}

void defer_cancel(rt *h, deferred *d)
{
    if (!d->queued)
        return;
    deferred **p = &h->defer_head, *prev = NULL;
    while (*p && *p != d) {
        prev = *p;
        p = &(*p)->next;
    }
    if (*p) {
        *p = d->next;
        if (h->defer_tail == d)
            h->defer_tail = prev;
    }
    d->queued = 0;
    d->next = NULL;
}

unsigned defer_run(rt *h, unsigned limit)
{
    unsigned ran = 0;
    while (h->defer_head && ran < limit) {
        deferred *d = h->defer_head;
        h->defer_head = d->next;
        if (!h->defer_head)
            h->defer_tail = NULL;
        d->queued = 0;
        d->next = NULL;
        d->cb(h, d);
        ran++;
    }
    if (!h->defer_head)
        ev_idle_stop(h->loop, &h->defer_watcher);
    return ran;
}

void timer_rt_init(rt *h)
{
    h->clock_offset = ev_time() - rt_monotonic();
    heap_init(&h->timers);
    ev_timer_init(&h->timer_watcher, on_timer, 0, 0);
    h->timer_watcher.data = h;
    ev_idle_init(&h->defer_watcher, on_idle);
    h->defer_watcher.data = h;
    h->defer_head = h->defer_tail = NULL;
}

void timer_rt_free(rt *h)
{
    ev_timer_stop(h->loop, &h->timer_watcher);
    ev_idle_stop(h->loop, &h->defer_watcher);
    heap_free(&h->timers);
}
