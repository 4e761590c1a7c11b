/* system.c - systems: each script in its own Lua state with a capped allocator; every entry
 * into Lua runs as a host-managed coroutine (task) so calls can yield; setup once, then step
 * on a fixed tick schedule; subscriptions and periodic pulls delivered through the loop. */
#include "sys/system.h"

#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/log.h"


static void systems_shift_clock(host *h, double delta);

/* ---- systems ---- */

sssn_system *system_current(lua_State *L)
{
    task *t = task_current(L);
    if (t && t->owner)
        return t->owner;
    return vm_of(L)->default_owner;
}

sssn_system *system_find(host *h, const char *id)
{
    for (sssn_system *s = h->systems; s; s = s->next)
        if (s->state != SYS_STOPPED && strcmp(s->id, id) == 0)
            return s;
    return NULL;
}

channel *system_channel(sssn_system *s, const char *id) { return hashmap_get(s->channels, id); }

static sssn_system *system_alloc(host *h, vm *v, int owns_vm)
{
    sssn_system *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->channels = hashmap_new();
    if (!s->channels) {
        free(s);
        return NULL;
    }
    s->h = h;
    s->vm = v;
    s->owns_vm = owns_vm;
    s->self_ref = LUA_NOREF;
    s->tick_rate = 1;
    s->period = 1;
    s->on_error = ON_ERROR_CONTINUE;
    s->state = SYS_SETUP;
    return s;
}

static void system_link(sssn_system *s)
{
    s->next = s->h->systems;
    s->h->systems = s;
}

static char *xstrdup_or_raise(lua_State *L, const char *str)
{
    char *p = strdup(str);
    if (!p)
        luaL_error(L, "not enough memory");
    return p;
}

/* Runs the loaded chunk (arg 2) and turns its result into the system: either the table it
 * returned (made by sssn.system{...}) or one built around global setup/step functions.
 * Arg 1: the sssn_system to fill; arg 3: default id. Leaves the system table on the stack. */
static int load_protected(lua_State *L)
{
    sssn_system *s = lua_touserdata(L, 1);
    const char *default_id = lua_tostring(L, 3);
    if (lua_toboolean(L, 4)) {
        /* an inline chunk (-e) sees the module as `sssn`, as the REPL does: one-liners */
        lua_getglobal(L, "require");
        lua_pushstring(L, "sssn");
        lua_call(L, 1, 1);
        lua_setglobal(L, "sssn");
    }
    lua_pushvalue(L, 2);
    lua_call(L, 0, 1);
    if (lua_type(L, -1) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_getglobal(L, "setup");
        lua_getglobal(L, "step");
        int has_globals = lua_isfunction(L, -1) || lua_isfunction(L, -2);
        lua_pop(L, 2);
        if (!has_globals) {
            if (lua_toboolean(L, 4)) {
                lua_pushboolean(L, 0); /* plain code (-e): it ran, there is no system */
                return 1;
            }
            return luaL_error(L, "the script neither returns a system (sssn.system{...}) nor defines "
                                 "global setup/step functions");
        }
        lua_getglobal(L, "require");
        lua_pushstring(L, "sssn");
        lua_call(L, 1, 1);
        lua_getfield(L, -1, "system_from_globals");
        lua_pushstring(L, default_id);
        lua_call(L, 1, 1);
        lua_remove(L, -2);
    }
    int t = lua_gettop(L);
    if (lua_getfield(L, t, "id") != LUA_TSTRING || lua_rawlen(L, -1) == 0)
        return luaL_error(L, "the system has no id (sssn.system{id = \"...\"})");
    const char *why = sssn_id_problem(lua_tostring(L, -1), lua_rawlen(L, -1));
    if (why)
        return luaL_error(L, "the system id %s", why);
    s->id = xstrdup_or_raise(L, lua_tostring(L, -1));
    keepalive_init(&s->kept, s->h->keepalive, s->id);
    if (strcmp(s->id, HOST_OWNER) == 0)
        return luaL_error(L, "the system id '%s' is reserved for the host", s->id);
    if (system_find(s->h, s->id))
        return luaL_error(L, "a system with id '%s' is already running", s->id);
    lua_getfield(L, t, "name");
    s->name = xstrdup_or_raise(L, lua_isstring(L, -1) ? lua_tostring(L, -1) : s->id);
    lua_getfield(L, t, "tick_rate");
    if (!lua_isnil(L, -1)) {
        double r = lua_tonumber(L, -1);
        if (!lua_isnumber(L, -1) || !(r > 0) || r > 1e6)
            return luaL_error(L, "tick_rate of system '%s' must be a positive number of ticks per second", s->id);
        s->tick_rate = r;
        s->period = 1.0 / r;
    }
    lua_getfield(L, t, "on_error");
    if (!lua_isnil(L, -1)) {
        const char *p = lua_tostring(L, -1);
        if (p && strcmp(p, "continue") == 0)
            s->on_error = ON_ERROR_CONTINUE;
        else if (p && strcmp(p, "stop") == 0)
            s->on_error = ON_ERROR_STOP;
        else
            return luaL_error(L, "on_error of system '%s' must be \"continue\" or \"stop\"", s->id);
    }
    lua_getfield(L, t, "max_errors");
    if (!lua_isnil(L, -1) && !(lua_isinteger(L, -1) && lua_tointeger(L, -1) > 0 && lua_tointeger(L, -1) <= 1000000))
        return luaL_error(L, "max_errors of system '%s' must be an integer between 1 and 1000000", s->id);
    s->max_errors = lua_isnil(L, -1) ? 1 : (unsigned)lua_tointeger(L, -1);
    lua_settop(L, t);
    system_push_handle(L, s);
    lua_setfield(L, t, "_sys");
    lua_pushvalue(L, t);
    s->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushboolean(L, 1);
    return 1;
}

static sssn_system *system_load(host *h, int is_file, const char *src, size_t len, const char *name,
                                const char *default_id, size_t memory_limit, int *ran_plain)
{
    vm *v = host_vm_new(h, memory_limit);
    if (!v)
        return NULL;
    sssn_system *s = system_alloc(h, v, 1);
    if (!s) {
        vm_free(v);
        return NULL;
    }
    lua_State *L = v->L;
    int st = is_file ? luaL_loadfilex(L, src, "t") : luaL_loadbufferx(L, src, len, name, "t");
    /* what users see of a chunk name: "=(command line)" reads "(command line)" */
    const char *shown = name[0] == '=' || name[0] == '@' ? name + 1 : name;
    if (st == LUA_ERRFILE) {
        host_log(h, LOG_ERROR, NULL, "%s", lua_tostring(L, -1)); /* "cannot open/read FILE: why" */
        goto fail;
    }
    if (st != LUA_OK) {
        host_log(h, LOG_ERROR, NULL, "cannot load %s", lua_tostring(L, -1)); /* "FILE:LINE: why" */
        goto fail;
    }
    lua_pushcfunction(L, vm_traceback_handler);
    lua_pushcfunction(L, load_protected);
    lua_pushlightuserdata(L, s);
    lua_pushvalue(L, -4);
    lua_pushstring(L, default_id);
    lua_pushboolean(L, ran_plain != NULL);
    if (lua_pcall(L, 4, 1, -6) != LUA_OK) {
        host_log(h, LOG_ERROR, s->id, "cannot start %s: %s", shown, lua_tostring(L, -1));
        goto fail;
    }
    if (!lua_toboolean(L, -1)) {
        *ran_plain = 1;
        goto fail; /* nothing failed: there is just no system to keep */
    }
    lua_settop(L, 0);
    v->default_owner = s; /* from now on, calls outside a task act for this system */
    system_link(s);
    return s;
fail:
    free(s->id);
    free(s->name);
    s->id = s->name = NULL;
    hashmap_free(s->channels);
    free(s);
    vm_free(v);
    return NULL;
}

static char *base_name(const char *path)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    char *id = strdup(b);
    if (id) {
        char *dot = strrchr(id, '.');
        if (dot && dot != id)
            *dot = '\0';
    }
    return id;
}

sssn_system *system_load_file(host *h, const char *path)
{
    char *id = base_name(path);
    if (!id)
        return NULL;
    sssn_system *s = system_load(h, 1, path, 0, path, id, h->cfg.memory_limit, NULL);
    free(id);
    return s;
}

sssn_system *system_load_string(host *h, const char *source, size_t len, const char *chunkname,
                                const char *default_id, size_t memory_limit, int *ran_plain)
{
    return system_load(h, 0, source, len, chunkname, default_id, memory_limit, ran_plain);
}

sssn_system *system_attach(vm *v, const char *id, const char *name)
{
    host *h = v->env->ud;
    sssn_system *s = system_alloc(h, v, 0);
    if (!s)
        return NULL;
    s->id = strdup(id);
    s->name = strdup(name ? name : id);
    if (!s->id || !s->name) {
        free(s->id);
        free(s->name);
        hashmap_free(s->channels);
        free(s);
        return NULL;
    }
    keepalive_init(&s->kept, h->keepalive, s->id);
    s->state = SYS_RUNNING;
    h->nrunning++;
    system_link(s);
    return s;
}

/* Pushes self[method] and self; returns 0 when the method is not a function (nothing pushed). */
static int push_method(sssn_system *s, const char *method)
{
    lua_State *L = s->vm->L;
    if (s->self_ref == LUA_NOREF || !lua_checkstack(L, 3))
        return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->self_ref);
    lua_getfield(L, -1, method); /* plain table lookups of the system table; methods come from its class */
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 2);
        return 0;
    }
    lua_insert(L, -2);
    return 1;
}

static void finalize_stop(sssn_system *s);
static void start_step(sssn_system *s);

static void on_tick(rt *h, rt_timer *t)
{
    (void)h;
    sssn_system *s = t->data;
    if (s->stop_after_step && s->state != SYS_STOPPED && !s->step_task)
        system_stop(s, s->stop_after_step);
    else if (s->state == SYS_RUNNING && !s->step_task)
        start_step(s);
}

void system_stop_after_step(sssn_system *s, const char *why) { s->stop_after_step = why; }

/* Fixed schedule: slots at T0 + k * period. Slots that passed while the step ran are merged
 * into one step that starts on the next loop turn, and counted as overruns. */
static void schedule_next(sssn_system *s)
{
    double now = host_now(s->h);
    double next = s->t0 + (double)(s->tick_index + 1) * s->period;
    if (next > now) {
        s->tick_index++;
    } else {
        /* the latest slot that has passed; the epsilon absorbs rounding at exact boundaries */
        uint64_t latest = (uint64_t)floor((now - s->t0) / s->period + 1e-9);
        uint64_t missed = latest > s->tick_index ? latest - s->tick_index : 0;
        s->overruns += missed;
        s->h->overruns += missed;
        s->tick_index = latest;
        next = now;
    }
    timer_start(s->h->rt, &s->tick_timer, next);
}

static void step_done(task *t, int ok)
{
    sssn_system *s = t->owner;
    s->step_task = NULL;
    if (ok) {
        s->consecutive_errors = 0;
    } else if (!t->cancelled) {
        s->consecutive_errors++;
        if (s->on_error == ON_ERROR_STOP && s->consecutive_errors >= s->max_errors) {
            host_log(s->h, LOG_WARN, s->id, "stopping after %u consecutive error%s (on_error = \"stop\")",
                     s->consecutive_errors, s->consecutive_errors == 1 ? "" : "s");
            finalize_stop(s);
        }
    }
    if (s->state == SYS_RUNNING)
        schedule_next(s);
}

static void start_step(sssn_system *s)
{
    if (!push_method(s, "step"))
        return; /* no step: the system lives on its subscriptions and pulls */
    double now = host_now(s->h);
    double dt = s->last_step_start > 0 ? now - s->last_step_start : 0;
    s->last_step_start = now;
    host_record_lateness(s->h, now - (s->t0 + (double)s->tick_index * s->period));
    s->steps++;
    s->h->steps++;
    lua_pushnumber(s->vm->L, dt);
    task *t = task_new(s->vm, s, s->id, TASK_STEP, 2, step_done, NULL);
    if (!t) {
        if (s->state == SYS_RUNNING)
            schedule_next(s);
        return;
    }
    /* recorded before it runs, so a stop from inside the step waits for it; step_done
     * clears it when the step ends, inside task_start or later */
    s->step_task = t;
    task_start(t);
}

static void setup_done(task *t, int ok)
{
    sssn_system *s = t->owner;
    s->step_task = NULL;
    if (s->state == SYS_STOPPED)
        return;
    if (!ok && !t->cancelled && s->on_error == ON_ERROR_STOP && ++s->consecutive_errors >= s->max_errors) {
        host_log(s->h, LOG_WARN, s->id, "stopping: setup failed (on_error = \"stop\")");
        finalize_stop(s);
        return;
    }
    s->state = SYS_RUNNING;
    host_log(s->h, LOG_INFO, s->id, "running (%g tick%s per second)", s->tick_rate, s->tick_rate == 1 ? "" : "s");
    s->t0 = host_now(s->h);
    s->tick_index = 0;
    timer_start(s->h->rt, &s->tick_timer, s->t0);
}

void system_start(sssn_system *s)
{
    s->h->nrunning++;
    s->ticking = 1;
    timer_init(&s->tick_timer, on_tick, s);
    if (!push_method(s, "setup")) {
        task fake = {.owner = s};
        setup_done(&fake, 1);
        return;
    }
    task *t = task_new(s->vm, s, s->id, TASK_SETUP, 1, setup_done, NULL);
    if (!t) {
        task fake = {.owner = s, .cancelled = 0};
        setup_done(&fake, 0);
        return;
    }
    s->step_task = t; /* setup_done clears it: inside task_start (a setup that never waits) or later */
    task_start(t);
}

static void cancel_tasks(sssn_system *s)
{
    task *t = s->vm->tasks;
    while (t) {
        task *next = t->next;
        if (t->owner == s && !t->running)
            task_cancel(t);
        else if (t->owner == s)
            t->cancelled = 1;
        t = next;
    }
}

static void detached_done(task *t, int ok)
{
    (void)ok;
    host *h = t->data;
    if (h->detached > 0)
        h->detached--;
}

/* The system's Lua-side clean-up (self:_on_stopped(): stop hooks such as deregistering from
 * a remote registry) runs as a task of no system, so it is not cancelled with the system's
 * own; the host waits a bounded time for such tasks before it exits. */
static void run_stop_hooks(sssn_system *s)
{
    if (!push_method(s, "_on_stopped"))
        return;
    s->h->detached++;
    if (task_spawn(s->vm, NULL, s->id, TASK_CALL, 1, detached_done, s->h) < 0)
        s->h->detached--;
}

static const char *plural(uint64_t n) { return n == 1 ? "" : "s"; }

static void finalize_stop(sssn_system *s)
{
    if (s->state == SYS_STOPPED)
        return;
    s->state = SYS_STOPPED;
    timer_stop(s->h->rt, &s->tick_timer);
    cancel_tasks(s);
    run_stop_hooks(s);
    system_close_subscriptions(s);
    system_close_periodics(s);
    keepalive_drop_all(&s->kept);
    hashmap_iter it;
    void *v;
    hashmap_iter_init(s->channels, &it);
    while (hashmap_iter_next(s->channels, &it, NULL, &v)) {
        channel *ch = v;
        if (ch->owner && strcmp(ch->owner, s->id) == 0)
            host_retire_channel(s->h, ch);
    }
    if (s->h->nrunning > 0)
        s->h->nrunning--;
    host_log(s->h, LOG_INFO, s->id, "stopped (%llu step%s, %llu error%s, %llu overrun%s)",
             (unsigned long long)s->steps, plural(s->steps), (unsigned long long)s->errors, plural(s->errors),
             (unsigned long long)s->overruns, plural(s->overruns));
}

/* Stops at once. A step or subscriber that asked for the stop carries on only until it
 * returns or next waits; what it then does to the system fails ("system is stopped"). */
void system_stop(sssn_system *s, const char *why)
{
    if (s->state == SYS_STOPPED)
        return;
    if (why)
        host_log(s->h, LOG_DEBUG, s->id, "stop requested: %s", why);
    s->stop_requested = 1;
    finalize_stop(s);
}

void system_free(sssn_system *s)
{
    finalize_stop(s);
    if (s->self_ref != LUA_NOREF && s->vm)
        luaL_unref(s->vm->L, LUA_REGISTRYINDEX, s->self_ref);
    if (s->owns_vm)
        vm_free(s->vm); /* before the channel map: __gc code may still use the system */
    hashmap_free(s->channels);
    free(s->id);
    free(s->name);
    free(s);
}

/* The test clock moved by delta under every timer: move the schedules that are kept as
 * absolute times along with them. */
static void systems_shift_clock(host *h, double delta)
{
    for (sssn_system *s = h->systems; s; s = s->next) {
        s->t0 += delta;
        if (s->last_step_start > 0)
            s->last_step_start += delta;
        system_shift_periodics(s, delta);
    }
}

/* ---- the systems of a host ---- */

vm *host_vm_new(host *h, size_t limit) { return vm_new(&h->vmenv, limit); }

static int handle_tostring(lua_State *L)
{
    system_handle *hd = luaL_checkudata(L, 1, SYSTEM_HANDLE_MT);
    lua_pushfstring(L, "system<%s>", hd->s->id);
    return 1;
}

void system_push_handle(lua_State *L, sssn_system *s)
{
    system_handle *hd = lua_newuserdatauv(L, sizeof *hd, 0);
    hd->s = s;
    if (luaL_newmetatable(L, SYSTEM_HANDLE_MT)) {
        lua_pushcfunction(L, handle_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_setmetatable(L, -2);
}

/* An error ended a task of a system: it counts there, and in the host's total. */
static void count_task_error(task *t)
{
    sssn_system *s = t->owner;
    if (!s)
        return;
    s->errors++;
    s->h->step_errors++;
}

static void on_clock_shift(clock_listener *l, double delta) { systems_shift_clock(l->data, delta); }

void systems_init(host *h)
{
    h->vmenv.on_task_error = count_task_error;
    h->clock_shift = (clock_listener){.on_shift = on_clock_shift, .data = h};
    rt_add_clock_listener(h->rt, &h->clock_shift);
}

void systems_stop_all(host *h, const char *why)
{
    if (h->stopping)
        return;
    h->stopping = 1;
    host_log(h, LOG_INFO, NULL, "stopping: %s", why);
    for (sssn_system *s = h->systems; s; s = s->next)
        system_stop(s, why);
    ev_break(h->rt->loop, EVBREAK_ALL);
}

void systems_free_all(host *h)
{
    h->stopping = 1;
    for (sssn_system *s = h->systems; s; s = s->next)
        system_stop(s, "host shutting down");
    while (h->systems) {
        sssn_system *s = h->systems;
        h->systems = s->next;
        system_free(s);
    }
    rt_remove_clock_listener(h->rt, &h->clock_shift);
}
