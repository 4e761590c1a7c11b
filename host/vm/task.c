/* task.c - host-managed coroutines and their waits (see task.h). */
#include "vm/task.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "rt/timer.h"
#include "vm/traceback.h"

static const char *const kind_names[] = {"setup", "step", "subscriber", "periodic pull", "call", "HTTP request"};

const char *task_kind_name(enum task_kind k)
{
    return (size_t)k < sizeof kind_names / sizeof kind_names[0] ? kind_names[k] : "task";
}

static void task_finish(task *t, int ok);
static void task_resume(task *t, int nargs);
void task_drop(task *t);
static void wait_end(task_wait *w);

task *task_current(lua_State *L) { return *(task **)lua_getextraspace(L); }

void task_watchdog_restart(lua_State *L)
{
    task *t = task_current(L);
    if (t)
        t->vm->watchdog_start = rt_monotonic();
}

/* Watchdog: a task that runs too long without yielding is interrupted with an error, and so
 * is one running when SIGINT/SIGTERM arrives (the loop only sees the signal once it yields). */
static void watchdog_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    vm *v = task_current(L)->vm; /* the hook is set on task threads only */
    if (rt_signal_arrived(v->interruptible)) {
        if (v->interruptible) {
            v->env->rt->sigint_consumed = 1; /* the loop's SIGINT callback has nothing left to do */
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

/* A task that ended normally leaves its thread clean (no frames, no open upvalues, no
 * pending to-be-closed variables), so the next task of the state runs in it: making a thread
 * (and collecting it) is most of what a trivial step costs. Threads that ended any other way
 * (an error, a cancel while waiting) are dropped: a hook that raised leaves the thread with
 * hooks off, and reusing it would blind the watchdog. */
#define TASK_IDLE_MAX 4

static task *take_idle(vm *v, int nargs)
{
    task *t = v->idle;
    if (!t || !lua_checkstack(t->co, nargs + 1))
        return NULL;
    v->idle = t->next;
    v->nidle--;
    lua_xmove(v->L, t->co, nargs + 1);
    int co_ref = t->co_ref;
    lua_State *co = t->co;
    *t = (task){.co = co, .co_ref = co_ref};
    return t;
}

/* Keeps t (its thread and struct) for the next task; 0 when it cannot be kept. */
static int keep_idle(task *t)
{
    vm *v = t->vm;
    if (v->nidle >= TASK_IDLE_MAX || t->failed || t->cancelled || lua_status(t->co) != LUA_OK)
        return 0;
    lua_settop(t->co, 0); /* the results of its function */
    t->next = v->idle;
    v->idle = t;
    v->nidle++;
    return 1;
}

void task_free_idle(vm *v)
{
    while (v->idle) {
        task *t = v->idle;
        v->idle = t->next;
        free(t); /* the threads go with the state */
    }
    v->nidle = 0;
}

task *task_new(vm *v, void *owner, const char *who, enum task_kind kind, int nargs,
               void (*on_done)(task *t, int ok), void *data)
{
    lua_State *L = v->L;
    task *t = take_idle(v, nargs);
    if (t)
        goto made;
    t = calloc(1, sizeof *t);
    if (!t || !lua_checkstack(L, 2)) {
        free(t);
        lua_pop(L, nargs + 1);
        rt_log(v->env->rt, LOG_ERROR, who, "out of memory starting a %s", task_kind_name(kind));
        return NULL;
    }
    lua_pushcfunction(L, make_thread_protected);
    lua_insert(L, -(nargs + 2));
    if (lua_pcall(L, nargs + 1, 1, 0) != LUA_OK) {
        rt_log(v->env->rt, LOG_ERROR, who, "cannot start a %s: %s", task_kind_name(kind),
               lua_isstring(L, -1) ? lua_tostring(L, -1) : "not enough memory");
        lua_pop(L, 1);
        free(t);
        t = calloc(1, sizeof *t); /* only to tell the owner: a task that never ran failed */
        if (t && v->env->on_task_error) {
            *t = (task){.vm = v, .owner = owner, .who = who, .kind = kind, .failed = 1};
            v->env->on_task_error(t);
        }
        free(t);
        return NULL;
    }
    t->co_ref = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->co_ref);
    t->co = lua_tothread(L, -1);
    lua_pop(L, 1);
made:
    *(task **)lua_getextraspace(t->co) = t;
    t->id = ++v->task_ids;
    t->vm = v;
    t->owner = owner;
    t->who = who;
    t->kind = kind;
    t->nargs = nargs;
    t->on_done = on_done;
    t->data = data;
    t->next = v->tasks;
    if (v->tasks)
        v->tasks->prev = t;
    v->tasks = t;
    return t;
}

void task_start(task *t) { task_resume(t, t->nargs); }

int task_spawn(vm *v, void *owner, const char *who, enum task_kind kind, int nargs,
               void (*on_done)(task *t, int ok), void *data)
{
    task *t = task_new(v, owner, who, kind, nargs, on_done, data);
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
    vm_push_traceback(L, co, msg, 0);
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
    size_t limit = v->heap.limit;
    v->heap.limit = 0; /* room to describe the error, even for a state at its cap */
    if (lua_checkstack(L, 4)) {
        lua_pushcfunction(L, format_error_protected);
        lua_pushlightuserdata(L, co);
        lua_pushvalue(co, -1);
        lua_xmove(co, L, 1);
        int ok = lua_pcall(L, 2, 1, 0) == LUA_OK;
        const char *text = ok ? lua_tostring(L, -1) : NULL;
        rt_log(v->env->rt, LOG_ERROR, t->who, "error in %s: %s", task_kind_name(t->kind), text ? text : fallback);
        lua_pop(L, 1);
    } else {
        rt_log(v->env->rt, LOG_ERROR, t->who, "error in %s: %s", task_kind_name(t->kind), fallback);
    }
    v->heap.limit = limit;
}

static void task_resume(task *t, int nargs)
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
        else if (!t->wait && task_wait_sleep(t->co, 0) < 0) /* a bare coroutine.yield(): next loop turn */
            task_finish(t, 0);
        return;
    }
    if (status != LUA_OK) {
        t->failed = 1;
        if (!t->cancelled) {
            log_task_error(t, t->co, status);
            if (v->env->on_task_error)
                v->env->on_task_error(t);
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
    if (t->wait)
        wait_end(t->wait);
    if (t->on_done)
        t->on_done(t, ok);
    /* an idle thread is no task: coroutine.resume on it says it is dead, as before */
    *(task **)lua_getextraspace(t->co) = NULL;
    if (keep_idle(t))
        return;
    /* pending to-be-closed variables run now, as code of no task: they cannot wait; for a
     * thread that died of an error, lua_resetthread reports that error again */
    if (lua_resetthread(t->co) != LUA_OK && !t->failed)
        rt_log(v->env->rt, LOG_ERROR, t->who, "error closing a %s: %s", task_kind_name(t->kind),
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

/* vm_free: every task ends at once, without running again. */
void task_drop(task *t)
{
    t->cancelled = 1;
    t->running = 0;
    task_finish(t, 0);
}

task *task_find(vm *v, uint64_t id)
{
    for (task *t = v->tasks; t; t = t->next)
        if (t->id == id)
            return t;
    return NULL;
}

/* ---- waits: one at a time per task, one way to end it, resumed from the loop ---- */

typedef enum { WAIT_SLEEP, WAIT_CHANNEL, WAIT_HTTP, WAIT_COMPLETION } wait_kind;

struct task_wait {
    task *t;
    wait_kind kind;
    rt_timer timer;          /* the sleep, or the time-out of a channel wait */
    deferred wake;           /* a channel write or an HTTP answer resumes through here */
    /* WAIT_CHANNEL */
    channel *ch;
    channel_watcher watcher;
    int came;                /* a message came (true) or the time ran out (false) */
    /* WAIT_HTTP */
    http_call *call;         /* in flight, or NULL once answered */
    long status;
    char *body;              /* the answer's body (malloc'd), or NULL */
    size_t len;
    char error[256];         /* what went wrong when no answer came */
    /* WAIT_COMPLETION */
    const task_completion *ops;
    void *ud;
    int pushed;              /* ops->push ran: the wait ends completed */
};

/* Undoes whatever w arranged and frees it; the task then waits for nothing. */
static void wait_end(task_wait *w)
{
    rt *r = w->t->vm->env->rt;
    timer_stop(r, &w->timer);
    defer_cancel(r, &w->wake);
    if (w->kind == WAIT_CHANNEL)
        channel_remove_watcher(w->ch, &w->watcher);
    if (w->call)
        http_client_cancel(w->call);
    if (w->kind == WAIT_COMPLETION)
        w->ops->end(w->ud, w->pushed);
    w->t->wait = NULL;
    free(w->body);
    free(w);
}

/* The HTTP results, built in the state's main thread under lua_pcall: pushing a large body
 * may fail for memory, and that must not raise through the loop. */
static int push_http_results(lua_State *L)
{
    task_wait *w = lua_touserdata(L, 1);
    if (w->status) {
        lua_pushinteger(L, w->status);
        lua_pushlstring(L, w->body ? w->body : "", w->len);
    } else {
        lua_pushnil(L);
        lua_pushstring(L, w->error);
    }
    return 2;
}

static int push_completion_results(lua_State *L)
{
    task_wait *w = lua_touserdata(L, 1);
    lua_settop(L, 0);
    return w->ops->push(L, w->ud);
}

/* Ends the wait and resumes the task with what it waited for. */
static void wait_finish(task_wait *w)
{
    task *t = w->t;
    lua_State *L = t->vm->L;
    int nres = 0;
    if (w->kind == WAIT_CHANNEL) {
        lua_pushboolean(t->co, w->came);
        nres = 1;
    } else if (w->kind == WAIT_HTTP) {
        lua_pushcfunction(L, push_http_results);
        lua_pushlightuserdata(L, w);
        if (lua_pcall(L, 1, 2, 0) != LUA_OK) {
            lua_pop(L, 1);
            lua_pushnil(L);
            lua_pushliteral(L, "not enough memory for the answer");
        }
        lua_xmove(L, t->co, 2);
        nres = 2;
    } else if (w->kind == WAIT_COMPLETION) {
        int base = lua_gettop(L);
        lua_pushcfunction(L, push_completion_results);
        lua_pushlightuserdata(L, w);
        w->pushed = 1;
        if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK) {
            lua_settop(L, base);
            lua_pushnil(L);
            lua_pushliteral(L, "not enough memory for the answer");
        }
        nres = lua_gettop(L) - base;
        if (!lua_checkstack(t->co, nres + 1)) {
            lua_settop(L, base);
            nres = 0;
        }
        lua_xmove(L, t->co, nres);
    }
    wait_end(w);
    task_resume(t, nres);
}

static void on_wait_timer(rt *r, rt_timer *timer)
{
    (void)r;
    wait_finish(timer->data);
}

static void on_wait_wake(rt *r, deferred *d)
{
    (void)r;
    wait_finish(d->data);
}

/* The current task's new wait; outside a task (or out of memory) it raises a clear error. */
static task_wait *wait_begin(lua_State *L, wait_kind kind, const char *what)
{
    task *t = task_current(L);
    if (!t)
        luaL_error(L, "%s: not inside a system's setup, step, subscriber or pull, or inside a coroutine of "
                      "your own (waiting calls must run in the host's coroutines)", what);
    task_wait *w = calloc(1, sizeof *w);
    if (!w) {
        if (t->running)
            luaL_error(L, "%s: out of memory", what);
        return NULL; /* task_resume's bare yield: it ends the task instead */
    }
    w->t = t;
    w->kind = kind;
    timer_init(&w->timer, on_wait_timer, w);
    defer_init(&w->wake, on_wait_wake, w);
    t->wait = w;
    return w;
}

int task_wait_sleep(lua_State *L, double seconds)
{
    task *t = task_current(L);
    if (t && t->wait)
        return -1; /* only for task_resume's bare yield: something else already wakes it */
    task_wait *w = wait_begin(L, WAIT_SLEEP, "sssn.sleep");
    if (!w)
        return -1;
    rt *r = t->vm->env->rt;
    timer_start(r, &w->timer, rt_now(r) + (seconds > 0 ? seconds : 0));
    if (!timer_active(&w->timer)) {
        wait_end(w);
        if (t->running)
            return luaL_error(L, "sssn.sleep: out of memory");
        return -1;
    }
    return t->running ? lua_yield(L, 0) : 0;
}

static void on_wait_write(channel_watcher *cw, const message *m)
{
    (void)m;
    task_wait *w = cw->data;
    w->came = 1;
    defer(w->t->vm->env->rt, &w->wake); /* tasks never run inside channel_write */
}

int task_wait_channel(lua_State *L, channel *ch, uint64_t after, double timeout)
{
    if (!task_current(L))
        return luaL_error(L, "sssn: waiting for a channel needs a system's setup, step, subscriber "
                             "or an HTTP request coroutine");
    channel_sync(ch); /* what a writer deferred (a purge's events) counts as written */
    if (channel_last_seq(ch) > after) {
        lua_pushboolean(L, 1);
        return 1;
    }
    task_wait *w = wait_begin(L, WAIT_CHANNEL, "sssn: waiting for a channel");
    rt *r = w->t->vm->env->rt;
    w->ch = ch;
    w->watcher.on_write = on_wait_write;
    w->watcher.data = w;
    channel_add_watcher(ch, &w->watcher);
    timer_start(r, &w->timer, rt_now(r) + (timeout > 0 ? timeout : 0));
    return lua_yield(L, 0);
}

static void on_http_done(void *ud, long status, const char *body, size_t len, const char *error)
{
    task_wait *w = ud;
    w->call = NULL; /* the client frees it after this callback */
    w->status = error ? 0 : status;
    if (!error && body && !(w->body = malloc(len + 1))) {
        w->status = 0;
        error = "not enough memory for the answer";
    }
    if (w->body) {
        memcpy(w->body, body, len);
        w->body[len] = '\0';
        w->len = len;
    }
    if (!w->status)
        snprintf(w->error, sizeof w->error, "%s", error ? error : "no answer");
    defer(w->t->vm->env->rt, &w->wake); /* resumed from the loop, not from inside libcurl */
}

task_wait *task_wait_completion(lua_State *L, const task_completion *ops, void *ud)
{
    task *t = task_current(L);
    if (!t || t->wait || !t->running)
        return NULL;
    task_wait *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->t = t;
    w->kind = WAIT_COMPLETION;
    w->ops = ops;
    w->ud = ud;
    timer_init(&w->timer, on_wait_timer, w);
    defer_init(&w->wake, on_wait_wake, w);
    t->wait = w;
    return w;
}

void task_complete(task_wait *w) { defer(w->t->vm->env->rt, &w->wake); }

int task_wait_http(lua_State *L, http_client *c, const http_client_req *req)
{
    task_wait *w = wait_begin(L, WAIT_HTTP, "sssn: an HTTP call");
    w->call = http_client_request(c, req->method, req->url, req->bearer, req->body, req->len, req->timeout,
                                  on_http_done, w);
    if (!w->call) {
        wait_end(w);
        lua_pushnil(L);
        lua_pushstring(L, "cannot start the request");
        return 2;
    }
    return lua_yield(L, 0);
}
