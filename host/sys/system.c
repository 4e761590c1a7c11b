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
#include "bind/lua_sssn.h"

/* A subscription or periodic source can be dropped (unsubscribe, stop) from inside its own
 * callback: `refs` counts the holders (the system's list, a delivery in progress, the task)
 * and the memory goes with the last one. */
struct subscription {
    sssn_system *s;
    channel *ch;
    int fn_ref;
    channel_watcher watcher;
    deferred delivery;
    task *active;       /* the callback's task while it runs, else NULL */
    int refs;
    int closed;         /* out of the system's list, watcher removed */
    subscription *next;
};

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

static const char *const task_kind_names[] = {"setup", "step", "subscriber", "periodic pull", "call",
                                              "HTTP request"};

/* ---- vm: a Lua state with its own allocator ---- */

static void *vm_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    vm *v = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        v->bytes -= old;
        return NULL;
    }
    /* refuse growth past the cap: Lua raises "not enough memory" in this state only */
    if (v->limit && nsize > old && v->bytes - old + nsize > v->limit)
        return NULL;
    void *p = realloc(ptr, nsize);
    if (!p)
        return NULL;
    v->bytes = v->bytes - old + nsize;
    if (v->bytes > v->peak)
        v->peak = v->bytes;
    return p;
}

static int vm_panic(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    log_write(LOG_ERROR, LOG_ERROR, NULL, "unprotected Lua error: %s", msg ? msg : "?");
    abort();
}

/* The sssn module's own Lua files are compiled once per host and kept as bytecode without
 * debug information: every further state loads them without parsing, and each system's
 * heap is smaller (an idle system is mostly this module). Errors inside the module then
 * show no line numbers; the module raises its errors at the caller's line anyway. */
typedef struct bytecode {
    size_t len;
    char data[];
} bytecode;

static int dump_writer(lua_State *L, const void *p, size_t sz, void *ud)
{
    (void)L;
    return strbuf_append(ud, p, sz);
}

static int sssn_module_searcher(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    if (strcmp(name, "sssn") != 0 && strncmp(name, "sssn.", 5) != 0)
        return 0;
    vm *v = vm_of(L);
    hashmap *cache = v->h->bytecode;
    bytecode *bc = cache ? hashmap_get(cache, name) : NULL;
    if (!bc) {
        lua_getglobal(L, "package");
        lua_getfield(L, -1, "searchpath");
        lua_pushstring(L, name);
        lua_getfield(L, -3, "path");
        lua_call(L, 2, 1);
        if (!lua_isstring(L, -1))
            return 0; /* not ours (sssn.core is preloaded): let the other searchers speak */
        const char *path = lua_tostring(L, -1);
        if (luaL_loadfilex(L, path, "t") != LUA_OK)
            return lua_error(L);
        strbuf b = STRBUF_INIT;
        if (lua_dump(L, dump_writer, &b, 1) != 0 || !b.data || !cache ||
            !(bc = malloc(sizeof *bc + b.len))) {
            strbuf_free(&b);
            lua_pushstring(L, path);
            return 2; /* the function just loaded, with debug information */
        }
        bc->len = b.len;
        memcpy(bc->data, b.data, b.len);
        strbuf_free(&b);
        if (hashmap_put(cache, name, bc) < 0) {
            free(bc);
            lua_pushstring(L, path);
            return 2;
        }
        lua_pop(L, 3);
    }
    if (luaL_loadbufferx(L, bc->data, bc->len, name, "b") != LUA_OK)
        return lua_error(L);
    lua_pushstring(L, name);
    return 2;
}

/* A task's coroutine is reachable from Lua (coroutine.running() inside a step), but only
 * the host may resume or close it: its bookkeeping (running, waiting, the sleep timer)
 * follows the resumes it makes itself. coroutine.resume and coroutine.close refuse a host
 * task and otherwise call the originals, kept as upvalues. */
static int refuse_task_thread(lua_State *L, const char *fn)
{
    lua_State *co = lua_tothread(L, 1);
    task *t = co ? *(task **)lua_getextraspace(co) : NULL;
    if (!t)
        return 0;
    return luaL_error(L, "%s: this coroutine is the host's %s task%s%s%s; only the host resumes or "
                         "closes it (start coroutines of your own with coroutine.create or sssn.spawn)",
                      fn, task_kind_names[t->kind], t->sys ? " of system '" : "", t->sys ? t->sys->id : "",
                      t->sys ? "'" : "");
}

static int call_original(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

static int guarded_resume(lua_State *L)
{
    refuse_task_thread(L, "coroutine.resume");
    return call_original(L);
}

static int guarded_close(lua_State *L)
{
    refuse_task_thread(L, "coroutine.close");
    return call_original(L);
}

static void guard_coroutines(lua_State *L)
{
    static const struct { const char *name; lua_CFunction fn; } guarded[] = {
        {"resume", guarded_resume},
        {"close", guarded_close},
    };
    lua_getglobal(L, "coroutine");
    for (size_t i = 0; i < sizeof guarded / sizeof guarded[0]; i++) {
        lua_getfield(L, -1, guarded[i].name);
        lua_pushcclosure(L, guarded[i].fn, 1);
        lua_setfield(L, -2, guarded[i].name);
    }
    lua_pop(L, 1);
}

/* Opens the libraries and makes `require "sssn"` find the Lua half and the C half. */
static int vm_init_protected(lua_State *L)
{
    vm *v = lua_touserdata(L, 1);
    luaL_openlibs(L);
    guard_coroutines(L);
    /* our searcher goes right after the preload one */
    lua_getglobal(L, "table");
    lua_getfield(L, -1, "insert");
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "searchers");
    lua_remove(L, -2);
    lua_pushinteger(L, 2);
    lua_pushcfunction(L, sssn_module_searcher);
    lua_call(L, 3, 0);
    lua_pop(L, 1);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_sssn_core);
    lua_setfield(L, -2, "sssn.core");
    lua_pop(L, 1);
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;", v->h->cfg.lua_dir, v->h->cfg.lua_dir);
    lua_getfield(L, -2, "path");
    lua_concat(L, 2);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
    return 0;
}

vm *vm_new(host *h, size_t limit)
{
    vm *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->h = h;
    v->limit = limit;
    v->watchdog_limit = h->cfg.step_timeout;
    v->L = lua_newstate(vm_alloc, v);
    if (!v->L) {
        free(v);
        return NULL;
    }
    lua_atpanic(v->L, vm_panic);
    *(task **)lua_getextraspace(v->L) = NULL; /* threads copy this: "not a task" */
    lua_pushcfunction(v->L, vm_init_protected);
    lua_pushlightuserdata(v->L, v);
    if (lua_pcall(v->L, 1, 0, 0) != LUA_OK) {
        host_log(h, LOG_ERROR, NULL, "cannot set up a Lua state: %s",
                  lua_tostring(v->L, -1));
        lua_close(v->L);
        free(v);
        return NULL;
    }
    return v;
}

vm *vm_of(lua_State *L)
{
    void *ud;
    lua_getallocf(L, &ud);
    return ud;
}

/* ---- tasks ---- */

static void task_finish(task *t, int ok);

task *task_current(lua_State *L) { return *(task **)lua_getextraspace(L); }

/* Watchdog: a task that runs too long without yielding is interrupted with an error. */
static void watchdog_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    vm *v = vm_of(L);
    if (rt_signal_arrived(v->interruptible)) {
        if (v->interruptible) {
            v->h->rt->sigint_consumed = 1; /* the loop's SIGINT callback has nothing left to do */
            luaL_error(L, "interrupted");
        }
        luaL_error(L, "interrupted by a signal (the host is stopping)");
    }
    if (v->watchdog_limit > 0 && rt_monotonic() - v->watchdog_start > v->watchdog_limit)
        luaL_error(L, "ran for more than %f s without yielding (interrupted by the watchdog)",
                   v->watchdog_limit);
}

static int make_thread_protected(lua_State *L)
{
    int n = lua_gettop(L); /* function + args */
    lua_State *co = lua_newthread(L);
    lua_insert(L, 1);
    lua_xmove(L, co, n);
    int ref = luaL_ref(L, LUA_REGISTRYINDEX); /* pops the thread */
    lua_pushinteger(L, ref);
    return 1;
}

/* Pushes msg and a traceback of co from `level`, leaving out frames that say nothing to a
 * user: the sssn module's own (its bytecode has no debug information: "?") and C functions
 * (error, pcall...). With no frame left (an error raised by the host's own checks, such as a bad
 * configuration) only msg is pushed. */
#define TRACEBACK_FRAMES 20

static void push_traceback(lua_State *L, lua_State *co, const char *msg, int level)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, msg);
    int shown = 0;
    lua_Debug ar;
    for (int lv = level; lua_getstack(co, lv, &ar); lv++) {
        if (!lua_getinfo(co, "Sln", &ar))
            continue;
        if (strcmp(ar.source, "=?") == 0 || *ar.what == 'C')
            continue;
        if (shown == TRACEBACK_FRAMES) {
            luaL_addstring(&b, "\n\t...");
            break;
        }
        char frame[LUA_IDSIZE + 128];
        int n = snprintf(frame, sizeof frame, "%s\t%s:", shown ? "\n" : "\nstack traceback:\n", ar.short_src);
        if (ar.currentline > 0)
            n += snprintf(frame + n, sizeof frame - (size_t)n, "%d:", ar.currentline);
        if (*ar.what == 'm')
            snprintf(frame + n, sizeof frame - (size_t)n, " in main chunk");
        else if (ar.name && *ar.namewhat)
            snprintf(frame + n, sizeof frame - (size_t)n, " in %s '%.60s'", ar.namewhat, ar.name);
        else
            snprintf(frame + n, sizeof frame - (size_t)n, " in function <%s:%d>", ar.short_src, ar.linedefined);
        luaL_addstring(&b, frame);
        shown++;
    }
    luaL_pushresult(&b);
}

/* The message handler of calls the host makes into a state that must not yield (loading a
 * chunk): the error with a traceback. */
static int traceback_handler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    push_traceback(L, L, msg, 1);
    return 1;
}

task *task_new(vm *v, sssn_system *sys, enum task_kind kind, int nargs,
               void (*on_done)(task *t, int ok), void *data)
{
    lua_State *L = v->L;
    task *t = calloc(1, sizeof *t);
    if (!t || !lua_checkstack(L, 2)) {
        free(t);
        lua_pop(L, nargs + 1);
        host_log(v->h, LOG_ERROR, sys ? sys->id : NULL, "out of memory starting a %s", task_kind_names[kind]);
        return NULL;
    }
    lua_pushcfunction(L, make_thread_protected);
    lua_insert(L, -(nargs + 2));
    if (lua_pcall(L, nargs + 1, 1, 0) != LUA_OK) {
        host_log(v->h, LOG_ERROR, sys ? sys->id : NULL, "cannot start a %s: %s", task_kind_names[kind],
                 lua_isstring(L, -1) ? lua_tostring(L, -1) : "not enough memory");
        lua_pop(L, 1);
        if (sys)
            sys->errors++;
        free(t);
        return NULL;
    }
    t->co_ref = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->co_ref);
    t->co = lua_tothread(L, -1);
    lua_pop(L, 1);
    *(task **)lua_getextraspace(t->co) = t;
    t->id = ++v->task_ids;
    t->vm = v;
    t->sys = sys;
    t->kind = kind;
    t->nargs = nargs;
    t->on_done = on_done;
    t->data = data;
    timer_init(&t->sleep_timer, NULL, t);
    t->next = v->tasks;
    if (v->tasks)
        v->tasks->prev = t;
    v->tasks = t;
    return t;
}

void task_start(task *t) { task_resume(t, t->nargs); }

int task_spawn(vm *v, sssn_system *sys, enum task_kind kind, int nargs,
               void (*on_done)(task *t, int ok), void *data)
{
    task *t = task_new(v, sys, kind, nargs, on_done, data);
    if (!t)
        return -1;
    task_start(t);
    return 0;
}

/* Builds "message\ntraceback" for a failed task in the state's main thread. Runs protected:
 * a __tostring that fails or a state out of memory must not take the host down. */
static int format_error_protected(lua_State *L)
{
    lua_State *co = lua_touserdata(L, 1);
    const char *msg = luaL_tolstring(L, 2, NULL); /* honours __tostring */
    push_traceback(L, co, msg, 0);
    return 1;
}

/* An error object that is a table with sssn_reported = true was logged where it arose (a
 * remote registry that went away says so once, not at every step that fails for it). */
static int already_reported(lua_State *co)
{
    if (lua_type(co, -1) != LUA_TTABLE || !lua_checkstack(co, 2))
        return 0;
    lua_pushliteral(co, "sssn_reported");
    lua_rawget(co, -2);
    int reported = lua_toboolean(co, -1);
    lua_pop(co, 1);
    return reported;
}

static void log_task_error(task *t, lua_State *co, int status)
{
    vm *v = t->vm;
    if (already_reported(co))
        return;
    lua_State *L = v->L;
    const char *fallback = status == LUA_ERRMEM ? "not enough memory" : "(error object could not be printed)";
    size_t limit = v->limit;
    v->limit = 0; /* room to describe the error, even for a state at its cap */
    if (lua_checkstack(L, 4)) {
        lua_pushcfunction(L, format_error_protected);
        lua_pushlightuserdata(L, co);
        lua_pushvalue(co, -1);
        lua_xmove(co, L, 1);
        int ok = lua_pcall(L, 2, 1, 0) == LUA_OK;
        const char *text = ok ? lua_tostring(L, -1) : NULL;
        host_log(v->h, LOG_ERROR, t->sys ? t->sys->id : NULL, "error in %s: %s", task_kind_names[t->kind],
                 text ? text : fallback);
        lua_pop(L, 1);
    } else {
        host_log(v->h, LOG_ERROR, t->sys ? t->sys->id : NULL, "error in %s: %s", task_kind_names[t->kind], fallback);
    }
    v->limit = limit;
}

void task_resume(task *t, int nargs)
{
    vm *v = t->vm;
    int nres = 0;
    v->watchdog_start = rt_monotonic();
    lua_sethook(t->co, watchdog_hook, LUA_MASKCOUNT, 100000);
    t->running = 1;
    int status = lua_resume(t->co, NULL, nargs, &nres);
    t->running = 0;
    lua_sethook(t->co, NULL, 0, 0);
    if (status == LUA_YIELD) {
        lua_pop(t->co, nres);
        if (t->cancelled)
            task_finish(t, 0);
        else if (!timer_active(&t->sleep_timer) && !t->waiting)
            task_sleep_resume_soon(t); /* a bare coroutine.yield(): carry on next loop turn */
        return;
    }
    if (status != LUA_OK) {
        t->failed = 1;
        if (!t->cancelled) {
            log_task_error(t, t->co, status);
            if (t->sys) {
                t->sys->errors++;
                t->sys->h->step_errors++;
            }
        }
        task_finish(t, 0);
        return;
    }
    task_finish(t, !t->cancelled);
}

static void task_unlink(task *t)
{
    vm *v = t->vm;
    if (t->prev)
        t->prev->next = t->next;
    else
        v->tasks = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
}

/* Unlinks first, so nothing its on_done triggers (a stop cancelling the system's tasks)
 * can reach this task again. */
static void task_finish(task *t, int ok)
{
    vm *v = t->vm;
    task_unlink(t);
    timer_stop(v->h->rt, &t->sleep_timer);
    if (t->cancel_wait)
        t->cancel_wait(t);
    if (t->on_done)
        t->on_done(t, ok);
    /* pending to-be-closed variables run now, as code of no task: they cannot wait */
    *(task **)lua_getextraspace(t->co) = NULL;
    /* for a thread that died of an error, lua_resetthread reports that error again */
    if (lua_resetthread(t->co) != LUA_OK && !t->failed)
        host_log(v->h, LOG_ERROR, t->sys ? t->sys->id : NULL, "error closing a %s: %s", task_kind_names[t->kind],
                 lua_isstring(t->co, -1) ? lua_tostring(t->co, -1) : "(not a string)");
    luaL_unref(v->L, LUA_REGISTRYINDEX, t->co_ref);
    free(t);
}

/* Ends a task that is not running: it is dropped where it waits. A running task (the one
 * that asked for the stop) ends when it returns. */
void task_cancel(task *t)
{
    t->cancelled = 1;
    if (!t->running)
        task_finish(t, 0);
}

task *task_find(vm *v, uint64_t id)
{
    for (task *t = v->tasks; t; t = t->next)
        if (t->id == id)
            return t;
    return NULL;
}

static void on_sleep_done(rt *h, rt_timer *timer)
{
    (void)h;
    task_resume(timer->data, 0);
}

int task_sleep(lua_State *L, double seconds)
{
    task *t = task_current(L);
    if (!t)
        return luaL_error(L, "sssn.sleep: not inside a system's setup, step, subscriber or pull, "
                             "or inside a coroutine of your own (waiting calls must run in the "
                             "host's coroutines)");
    if (!(seconds >= 0))
        seconds = 0;
    t->sleep_timer.cb = on_sleep_done;
    timer_start(t->vm->h->rt, &t->sleep_timer, host_now(t->vm->h) + seconds);
    if (!timer_active(&t->sleep_timer))
        return luaL_error(L, "sssn.sleep: out of memory");
    return 0;
}

void task_sleep_resume_soon(task *t)
{
    t->sleep_timer.cb = on_sleep_done;
    timer_start(t->vm->h->rt, &t->sleep_timer, host_now(t->vm->h));
}

/* Waiting for a channel write: a watcher on the channel and the task's sleep timer as the
 * time-out. The write only queues the resume: tasks never run inside channel_write. */
typedef struct channel_wait {
    channel_watcher watcher;
    channel *ch;
    task *t;
    deferred wake;
} channel_wait;

static void end_wait(task *t)
{
    channel_wait *w = t->wait;
    if (!w)
        return;
    channel_remove_watcher(w->ch, &w->watcher);
    defer_cancel(t->vm->h->rt, &w->wake);
    timer_stop(t->vm->h->rt, &t->sleep_timer);
    free(w);
    t->wait = NULL;
    t->waiting = 0;
    t->cancel_wait = NULL;
}

static void resume_with_bool(task *t, int value)
{
    end_wait(t);
    lua_pushboolean(t->co, value);
    task_resume(t, 1);
}

static void on_wait_write(channel_watcher *cw, const message *m)
{
    (void)m;
    channel_wait *w = cw->data;
    defer(w->t->vm->h->rt, &w->wake);
}

static void on_wait_wake(rt *h, deferred *d)
{
    (void)h;
    channel_wait *w = d->data;
    resume_with_bool(w->t, 1);
}

static void on_wait_timeout(rt *h, rt_timer *timer)
{
    (void)h;
    resume_with_bool(timer->data, 0);
}

int task_wait_channel(lua_State *L, channel *ch, uint64_t after, double timeout)
{
    task *t = task_current(L);
    if (!t)
        return luaL_error(L, "sssn: waiting for a channel needs a system's setup, step, subscriber "
                             "or an HTTP request coroutine");
    if (channel_last_seq(ch) > after)
        return 0;
    channel_wait *w = calloc(1, sizeof *w);
    if (!w)
        return luaL_error(L, "sssn: out of memory (wait)");
    w->ch = ch;
    w->t = t;
    w->watcher.on_write = on_wait_write;
    w->watcher.data = w;
    defer_init(&w->wake, on_wait_wake, w);
    channel_add_watcher(ch, &w->watcher);
    t->wait = w;
    t->waiting = 1;
    t->cancel_wait = end_wait;
    t->sleep_timer.cb = on_wait_timeout;
    timer_start(t->vm->h->rt, &t->sleep_timer, host_now(t->vm->h) + (timeout > 0 ? timeout : 0));
    return 1;
}

/* ---- systems ---- */

sssn_system *system_current(lua_State *L)
{
    task *t = task_current(L);
    if (t && t->sys)
        return t->sys;
    return vm_of(L)->default_system;
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
    sssn_push_system(L, s);
    lua_setfield(L, t, "_sys");
    lua_pushvalue(L, t);
    s->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushboolean(L, 1);
    return 1;
}

static sssn_system *system_load(host *h, int is_file, const char *src, size_t len, const char *name,
                                const char *default_id, size_t memory_limit, int *ran_plain)
{
    vm *v = vm_new(h, memory_limit);
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
    lua_pushcfunction(L, traceback_handler);
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
    v->default_system = s; /* from now on, calls outside a task act for this system */
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
    sssn_system *s = system_alloc(v->h, v, 0);
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
    s->state = SYS_RUNNING;
    v->h->nrunning++;
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
    if (s->state == SYS_RUNNING && !s->step_task)
        start_step(s);
}

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
    sssn_system *s = t->sys;
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
    task *t = task_new(s->vm, s, TASK_STEP, 2, step_done, NULL);
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
    sssn_system *s = t->sys;
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
        task fake = {.sys = s};
        setup_done(&fake, 1);
        return;
    }
    task *t = task_new(s->vm, s, TASK_SETUP, 1, setup_done, NULL);
    if (!t) {
        task fake = {.sys = s, .cancelled = 0};
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
        if (t->sys == s && !t->running)
            task_cancel(t);
        else if (t->sys == s)
            t->cancelled = 1;
        t = next;
    }
}

static void sub_release(subscription *sub)
{
    if (--sub->refs > 0)
        return;
    luaL_unref(sub->s->vm->L, LUA_REGISTRYINDEX, sub->fn_ref);
    free(sub);
}

static void close_subscription(sssn_system *s, subscription *sub)
{
    sub->closed = 1;
    channel_remove_watcher(sub->ch, &sub->watcher);
    defer_cancel(s->h->rt, &sub->delivery);
    sub_release(sub); /* the list's reference */
}

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
    if (task_spawn(s->vm, NULL, TASK_CALL, 1, detached_done, s->h) < 0)
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
    while (s->subs) {
        subscription *sub = s->subs;
        s->subs = sub->next;
        close_subscription(s, sub);
    }
    while (s->periodics) {
        periodic_source *p = s->periodics;
        s->periodics = p->next;
        close_periodic(s, p);
    }
    system_drop_registrations(s);
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

void vm_free(vm *v)
{
    if (!v)
        return;
    while (v->tasks) {
        v->tasks->cancelled = 1;
        v->tasks->running = 0;
        task_finish(v->tasks, 0);
    }
    lua_close(v->L);
    free(v);
}

/* ---- subscriptions: push delivery through the loop, one message at a time, in order ---- */

static void deliver(rt *r, deferred *d);

static void on_subscribed_write(channel_watcher *w, const message *m)
{
    (void)m;
    subscription *sub = w->data;
    if (!sub->active)
        defer(sub->s->h->rt, &sub->delivery);
}

static void delivery_done(task *t, int ok)
{
    (void)ok;
    subscription *sub = t->data;
    sub->active = NULL;
    if (!sub->closed)
        defer(sub->s->h->rt, &sub->delivery); /* more may have arrived meanwhile */
    sub_release(sub); /* the task's reference */
}

static int push_message_protected(lua_State *L)
{
    sssn_push_message(L, lua_touserdata(L, 1));
    return 1;
}

static void deliver(rt *r, deferred *d)
{
    (void)r;
    subscription *sub = d->data;
    sssn_system *s = sub->s;
    host *h = s->h;
    if (sub->active || sub->closed || s->state == SYS_STOPPED)
        return;
    channel_batch b;
    if (channel_read(sub->ch, s->id, 1, 0, 0, host_now(h), &b) != CHANNEL_OK)
        return;
    if (b.missed)
        host_log(h, LOG_WARN, s->id, "subscriber of '%s' missed %llu message(s) dropped by capacity",
                 sub->ch->id, (unsigned long long)b.missed);
    if (b.count == 0) {
        channel_batch_free(&b);
        return;
    }
    lua_State *L = s->vm->L;
    if (!lua_checkstack(L, 4)) {
        channel_batch_free(&b);
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, sub->fn_ref);
    lua_pushcfunction(L, push_message_protected);
    lua_pushlightuserdata(L, (void *)b.items[0]);
    int st = lua_pcall(L, 1, 1, 0);
    channel_batch_free(&b);
    if (st != LUA_OK) {
        host_log(h, LOG_ERROR, s->id, "cannot deliver a message from '%s': %s", sub->ch->id,
                 lua_isstring(L, -1) ? lua_tostring(L, -1) : "not enough memory");
        lua_pop(L, 2);
        s->errors++;
        defer(h->rt, &sub->delivery);
        return;
    }
    task *t = task_new(s->vm, s, TASK_SUBSCRIBER, 1, delivery_done, sub);
    if (!t)
        return;
    sub->refs += 2; /* this call's, and the task's (released by delivery_done) */
    sub->active = t;   /* delivery_done clears it, inside task_start or later */
    task_start(t);
    sub_release(sub);
}

int system_subscribe(sssn_system *s, channel *ch, lua_State *L)
{
    system_unsubscribe(s, ch->id);
    subscription *sub = calloc(1, sizeof *sub);
    if (!sub) {
        lua_pop(L, 1);
        return -1;
    }
    sub->s = s;
    sub->ch = ch;
    sub->refs = 1;
    sub->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (sub->fn_ref == LUA_REFNIL || sub->fn_ref == LUA_NOREF) {
        free(sub);
        return -1;
    }
    sub->watcher.on_write = on_subscribed_write;
    sub->watcher.data = sub;
    defer_init(&sub->delivery, deliver, sub);
    channel_add_watcher(ch, &sub->watcher);
    sub->next = s->subs;
    s->subs = sub;
    defer(s->h->rt, &sub->delivery); /* deliver what is already there */
    return 0;
}

void system_unsubscribe(sssn_system *s, const char *channel_id)
{
    for (subscription **p = &s->subs; *p; p = &(*p)->next) {
        subscription *sub = *p;
        if (strcmp(sub->ch->id, channel_id) == 0) {
            *p = sub->next;
            close_subscription(s, sub);
            return;
        }
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
    task *t = task_new(s->vm, s, TASK_PERIODIC, 0, pull_done, p);
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

/* The test clock moved by delta under every timer: move the schedules that are kept as
 * absolute times along with them. */
void systems_shift_clock(host *h, double delta)
{
    for (sssn_system *s = h->systems; s; s = s->next) {
        s->t0 += delta;
        if (s->last_step_start > 0)
            s->last_step_start += delta;
        for (periodic_source *p = s->periodics; p; p = p->next)
            p->slot += delta;
    }
}
