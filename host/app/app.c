/* app.c - the composition root (see app.h): runtime, host, services; the run loop, signals,
 * --duration and the shutdown order. */
#include "app/app.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "bind/lua_sssn.h"
#include "core/log.h"
#include "sys/system.h"

app *app_new(const host_config *cfg)
{
    app *a = calloc(1, sizeof *a);
    if (!a || !(a->rt = rt_new(cfg->log_level, cfg->capture_log)) || !(a->h = host_new(cfg, a->rt))) {
        fprintf(stderr, "sssn-host: out of memory starting the host\n");
        if (a)
            rt_free(a->rt);
        free(a);
        return NULL;
    }
    a->h->vmenv.open_core = luaopen_sssn_core; /* the bindings, for every state of the host */
    systems_init(a->h);
    return a;
}

int app_add(app *a, service *s)
{
    if (!s) {
        host_log(a->h, LOG_ERROR, NULL, "out of memory starting a service");
        return -1;
    }
    char err[256] = "";
    if (s->start && s->start(s, err, sizeof err) < 0) {
        host_log(a->h, LOG_ERROR, NULL, "cannot start the %s: %s", s->name, err);
        if (s->stop)
            s->stop(s);
        s->free(s);
        return -1;
    }
    service **p = &a->services;
    while (*p)
        p = &(*p)->next;
    s->next = NULL;
    *p = s;
    return 0;
}

static void on_drain_over(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    app *a = w->data;
    a->drain_over = 1;
}

#define DRAIN_STOP_WHY "the host is stopping: its step has ended"

/* A system's tick while the host drains: instead of a step, the stop, once the step in
 * progress (if any) has ended; the step's end schedules the next tick, so it comes here. */
static void on_drain_tick(rt *r, rt_timer *t)
{
    (void)r;
    sssn_system *s = t->data;
    if (s->state != SYS_STOPPED && !s->step_task)
        system_stop(s, DRAIN_STOP_WHY);
}

/* The first stopping signal: the services stop taking writes and answer what waits; each
 * system stops at its next tick, so a step in progress ends first (its tick timer calls
 * on_drain_tick from now on: a step only starts from there, and one that overran would
 * start the next at once); at most APP_DRAIN_SECONDS, after which code still running is
 * interrupted (rt_interrupt_from) and app_run stops what is left. */
static void begin_drain(app *a, const char *why)
{
    host *h = a->h;
    if (a->draining || h->stopping)
        return;
    a->draining = 1;
    a->drain_why = why;
    host_log(h, LOG_INFO, NULL, "stopping: %s: draining (writes are refused; requests in flight and steps "
                                "in progress get up to %g s)", why, APP_DRAIN_SECONDS);
    ev_timer_init(&a->drain_timer, on_drain_over, APP_DRAIN_SECONDS, 0);
    a->drain_timer.data = a;
    ev_timer_start(a->rt->loop, &a->drain_timer);
    rt_interrupt_from(APP_DRAIN_SECONDS);
    for (sssn_system *s = h->systems; s; s = s->next)
        if (s->ticking)
            s->tick_timer.cb = on_drain_tick;
    for (service *s = a->services; s; s = s->next)
        if (s->drain)
            s->drain(s);
}

static size_t services_busy(const app *a)
{
    size_t n = 0;
    for (const service *s = a->services; s; s = s->next)
        if (s->busy)
            n += s->busy(s);
    return n;
}

static size_t steps_in_progress(const host *h)
{
    size_t n = 0;
    for (const sssn_system *s = h->systems; s; s = s->next)
        n += s->state != SYS_STOPPED && s->step_task;
    return n;
}

/* Between loop turns while draining: stops each system that has no step (or setup) in
 * progress (one without a step, that lives on its subscriptions, stops at once); whether the
 * drain is over: nothing left in flight, or its time passed. */
static int drained(app *a)
{
    host *h = a->h;
    for (sssn_system *s = h->systems; s; s = s->next)
        if (s->state != SYS_STOPPED && !s->step_task)
            system_stop(s, DRAIN_STOP_WHY);
    if (!a->drain_over && (h->nrunning > 0 || services_busy(a) > 0))
        return 0;
    if (a->drain_over)
        host_log(h, LOG_WARN, NULL, "%g s passed: cutting short %zu request(s) and %zu step(s) still in progress",
                 APP_DRAIN_SECONDS, services_busy(a), steps_in_progress(h));
    return 1;
}

static void on_signal(void *ud, int signum)
{
    app *a = ud;
    for (service *s = a->services; s; s = s->next)
        if (s->on_signal && s->on_signal(s, signum))
            return;
    begin_drain(a, signum == SIGINT ? "interrupted (SIGINT)" : "terminated (SIGTERM)");
}

void app_catch_signals(app *a)
{
    int prompt = 0;
    for (service *s = a->services; s; s = s->next)
        prompt |= s->takes_sigint;
    rt_catch_signals(a->rt, on_signal, a, prompt);
}

static void on_duration(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    app *a = w->data;
    systems_stop_all(a->h, "--duration reached");
}

static int services_keep_running(const app *a)
{
    for (const service *s = a->services; s; s = s->next)
        if (s->keeps_running && s->keeps_running(s))
            return 1;
    return 0;
}

static void on_grace_over(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    *(int *)w->data = 1;
}

void app_run(app *a)
{
    host *h = a->h;
    struct ev_loop *loop = a->rt->loop;
    app_catch_signals(a);
    if (h->cfg.duration > 0) {
        ev_timer_init(&a->duration, on_duration, h->cfg.duration, 0);
        a->duration.data = a;
        ev_timer_start(loop, &a->duration);
    }
    for (;;) {
        if (a->draining && drained(a))
            break;
        if (h->stopping || (h->nrunning == 0 && !services_keep_running(a)))
            break;
        ev_run(loop, EVRUN_ONCE);
    }
    ev_timer_stop(loop, &a->duration);
    ev_timer_stop(loop, &a->drain_timer);
    rt_interrupt_from(-1); /* the deregistrations below run to their own bound */
    systems_stop_all(h, !a->draining ? "done" : a->drain_over ? "the drain's time is up" : "drained");
    /* an etcd registry's leases go too (what is left on them with them) */
    regbackend_shutdown(h->backend, &h->detached);
    /* let stopped systems finish deregistering from a remote registry, for a bounded time */
    if (h->detached > 0) {
        int expired = 0;
        ev_timer t;
        ev_timer_init(&t, on_grace_over, 3.0, 0);
        t.data = &expired;
        ev_timer_start(loop, &t);
        while (h->detached > 0 && !expired)
            ev_run(loop, EVRUN_ONCE);
        ev_timer_stop(loop, &t);
        if (h->detached > 0)
            host_log(h, LOG_WARN, NULL, "exiting with %u deregistration(s) unfinished", h->detached);
    }
    rt_release_signals(a->rt);
}

int app_exit_status(const app *a)
{
    int status = 0;
    for (const service *s = a->services; s; s = s->next) {
        int st = s->exit_status ? s->exit_status(s) : 0;
        if (st == 1 || (st && !status))
            status = st; /* a failure (1) wins over a closed output (3) */
    }
    return status;
}

void app_free(app *a)
{
    if (!a)
        return;
    for (service *s = a->services; s; s = s->next)
        if (s->stop)
            s->stop(s);
    /* the prompt first, then the API: newest first, as they were added */
    service *rev = NULL;
    while (a->services) {
        service *s = a->services;
        a->services = s->next;
        s->next = rev;
        rev = s;
    }
    while (rev) {
        service *s = rev;
        rev = s->next;
        s->free(s);
    }
    systems_free_all(a->h);
    host_free(a->h);
    rt_free(a->rt);
    free(a);
}
