/* stall.c - the loop's turn busy time (see stall.h): an ev_check stamps the turn's start right
 * after the poll, the next ev_prepare closes it and files its length in the maximum, the sum
 * and the slow-turn counters. */
#include "rt/stall.h"

#include <stdlib.h>

#include "rt/timer.h"

const double stall_over_bounds[STALL_NOVER] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.1, 1.0};

static void on_check(struct ev_loop *loop, ev_check *w, int revents)
{
    (void)loop;
    (void)revents;
    loop_stall *s = w->data;
    s->turn_start = rt_monotonic();
}

static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)revents;
    loop_stall *s = w->data;
    if (s->turn_start < 0)
        return; /* the first turn, or a nested ev_run's prepare already closed this one */
    double d = rt_monotonic() - s->turn_start;
    s->turn_start = -1;
    if (d < 0)
        d = 0;
    s->turns++;
    s->busy += d;
    if (d > s->max)
        s->max = d;
    for (int i = 0; i < STALL_NOVER && d > stall_over_bounds[i]; i++)
        s->over[i]++;
}

loop_stall *stall_new(rt *r)
{
    loop_stall *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->rt = r;
    s->turn_start = -1;
    ev_check_init(&s->check, on_check);
    ev_set_priority(&s->check, EV_MAXPRI); /* before any other callback of the turn */
    s->check.data = s;
    ev_prepare_init(&s->prepare, on_prepare);
    ev_set_priority(&s->prepare, EV_MINPRI); /* after the other prepare watchers */
    s->prepare.data = s;
    ev_check_start(r->loop, &s->check);
    ev_unref(r->loop);
    ev_prepare_start(r->loop, &s->prepare);
    ev_unref(r->loop);
    return s;
}

void stall_free(loop_stall *s)
{
    if (!s)
        return;
    ev_ref(s->rt->loop);
    ev_check_stop(s->rt->loop, &s->check);
    ev_ref(s->rt->loop);
    ev_prepare_stop(s->rt->loop, &s->prepare);
    free(s);
}
