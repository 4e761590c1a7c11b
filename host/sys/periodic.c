/* periodic.c - periodic channels: the host calls a system's pull function every period, in
 * a task, and writes what it returns (see system.h). */
#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>

#include "core/json.h"
#include "core/log.h"
#include "sys/system.h"

struct periodic_source {
    sssn_system *s;
    channel *ch;
    int fn_ref;
    rt_timer timer;
    double slot;        /* the deadline the timer is armed for */
    task *active;
    int refs;
    int closed;
    periodic_source *next;
};
static void periodic_release(periodic_source *p)
{
    if (--p->refs > 0)
        return;
    luaL_unref(p->s->vm->L, LUA_REGISTRYINDEX, p->fn_ref);
    free(p);
}

static void close_periodic(sssn_system *s, periodic_source *p)
{
    p->closed = 1;
    timer_stop(s->h->rt, &p->timer);
    periodic_release(p);
}

void system_close_periodics(sssn_system *s)
{
    while (s->periodics) {
        periodic_source *p = s->periodics;
        s->periodics = p->next;
        close_periodic(s, p);
    }
}

/* ---- periodic channels: the host calls pull every period and writes what it returns ---- */

static void pull_done(task *t, int ok)
{
    periodic_source *p = t->data;
    p->active = NULL;
    lua_State *co = t->co;
    if (ok && !p->closed && lua_gettop(co) > 0 && !lua_isnil(co, -1)) {
        host *h = p->s->h;
        strbuf *b = &h->scratch;
        strbuf_reset(b);
        char err[256];
        if (json_encode(co, -1, "data", b, err, sizeof err) < 0) {
            host_log(h, LOG_ERROR, p->s->id, "pull of '%s' returned a value that cannot be written: %s", p->ch->id, err);
            p->s->errors++;
        } else {
            message_in in = {.sender_id = p->s->id, .data_json = b->data, .data_len = b->len};
            int rc = channel_write(p->ch, &in, host_now(h), NULL);
            if (rc != CHANNEL_OK)
                host_log(h, LOG_ERROR, p->s->id, "cannot write the pull result to '%s': %s", p->ch->id,
                         channel_strerror(rc));
        }
    }
    periodic_release(p); /* the task's reference */
}

/* Fixed schedule: slot is always the armed deadline; late firings skip whole periods. */
static void on_pull(rt *r, rt_timer *timer)
{
    (void)r;
    periodic_source *p = timer->data;
    sssn_system *s = p->s;
    host *h = s->h;
    if (p->closed || s->state == SYS_STOPPED)
        return;
    double period = p->ch->period, now = host_now(h);
    p->slot += period;
    if (p->slot <= now)
        p->slot += period * ceil((now - p->slot) / period + 1e-9);
    timer_start(h->rt, &p->timer, p->slot);
    if (p->active)
        return; /* the previous pull still waits: skip this period */
    lua_State *L = s->vm->L;
    if (!lua_checkstack(L, 2))
        return;
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->fn_ref);
    task *t = task_new(s->vm, s, s->id, TASK_PERIODIC, 0, pull_done, p);
    if (!t)
        return;
    p->refs += 2;  /* this call's, and the task's (released by pull_done) */
    p->active = t; /* pull_done clears it, inside task_start or later */
    task_start(t);
    periodic_release(p);
}

int system_add_periodic(sssn_system *s, channel *ch, lua_State *L)
{
    periodic_source *p = calloc(1, sizeof *p);
    if (!p || !(ch->period > 0)) {
        free(p);
        lua_pop(L, 1);
        return -1;
    }
    p->s = s;
    p->ch = ch;
    p->refs = 1;
    p->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    timer_init(&p->timer, on_pull, p);
    p->slot = host_now(s->h) + ch->period;
    timer_start(s->h->rt, &p->timer, p->slot);
    p->next = s->periodics;
    s->periodics = p;
    return 0;
}


void system_shift_periodics(sssn_system *s, double delta)
{
    for (periodic_source *p = s->periodics; p; p = p->next)
        p->slot += delta;
}
