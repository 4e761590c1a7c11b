/* task.h - host-managed coroutines: every entry into a Lua state (a setup, a step, a
 * subscriber, a periodic pull, an HTTP request, a prompt chunk) runs as a task, so any call
 * may wait. A task waits for one thing at a time - a time, a channel write, an HTTP answer -
 * through one wait with one cancel path, and every resume comes from the loop (a timer or a
 * deferred call), never from inside the code that made the event. A binding that waits for
 * something else (a registry backend's answer) uses the completion wait. A watchdog interrupts a
 * task that runs too long without yielding, or when SIGINT/SIGTERM arrives. */
#ifndef SSSN_TASK_H
#define SSSN_TASK_H

#include <lua.h>
#include <stdint.h>

#include "model/channel.h"
#include "net/http_client.h"
#include "rt/rt.h"
#include "vm/vm.h"

enum task_kind { TASK_SETUP, TASK_STEP, TASK_SUBSCRIBER, TASK_PERIODIC, TASK_CALL, TASK_REQUEST };
const char *task_kind_name(enum task_kind k); /* "setup", "step", ... */

typedef struct task_wait task_wait;

struct task {
    uint64_t id;                /* unique in its vm, for Lua code that may cancel it */
    vm *vm;
    void *owner;                /* whose work this is (a system: its errors are counted); may be NULL */
    const char *who;            /* named in log lines (the owner's id), or NULL */
    enum task_kind kind;
    lua_State *co;
    int co_ref;                 /* keeps the thread alive in vm->L's registry */
    int nargs;                  /* arguments of the first resume */
    void (*on_done)(task *t, int ok);
    void *data;
    int running;                /* inside lua_resume right now */
    int cancelled;              /* ended by its owner: dropped where it waits */
    int failed;                 /* ended with an error (already reported) */
    task_wait *wait;            /* what it waits for, or NULL */
    task *prev, *next;          /* vm->tasks */
};

/* The function and its nargs arguments are on top of v->L's stack (popped). task_new makes
 * the task without running it (NULL, logged, when it cannot be made: on_done never runs), so
 * the caller can record it first; task_start runs it until it first waits or ends. on_done
 * (may be NULL) runs when it returns or fails, and the task is freed right after: once
 * task_start (or any resume) returns, the caller must not touch the pointer again unless its
 * own bookkeeping says on_done has not run. task_spawn is new + start for callers that keep
 * no pointer: 0 started, -1 not made. */
task *task_new(vm *v, void *owner, const char *who, enum task_kind kind, int nargs,
               void (*on_done)(task *t, int ok), void *data);
void task_start(task *t);
int task_spawn(vm *v, void *owner, const char *who, enum task_kind kind, int nargs,
               void (*on_done)(task *t, int ok), void *data);

task *task_current(lua_State *L);    /* the task running in coroutine L, or NULL */
task *task_find(vm *v, uint64_t id); /* a live task by id, or NULL */
/* Starts the running task's watchdog period again: a task that runs a list of callbacks
 * (a subscription's batch) gives each one the whole limit. */
void task_watchdog_restart(lua_State *L);
/* Ends a task where it waits (its on_done sees t->cancelled); a task inside lua_resume right
 * now ends when it next yields or returns. */
void task_cancel(task *t);
/* Ends a task at once without running it again (vm_free, as its state closes). */
void task_drop(task *t);
/* Frees the ended tasks kept for their threads (vm_free, before the state closes). */
void task_free_idle(vm *v);

/* Waits, for bindings: each suspends the current task (raising a clear error outside one)
 * and returns what the binding must return: lua_yield's result, or the results at once when
 * there is nothing to wait for. */
/* Resumes after `seconds` (0: on the next turn of the loop) with no results. */
int task_wait_sleep(lua_State *L, double seconds);
/* Resumes with true once a message with seq > after is written to ch, or false when
 * `timeout` seconds pass; true at once when such a message is there already. */
int task_wait_channel(lua_State *L, channel *ch, uint64_t after, double timeout);
/* Sends the request and resumes with the status and the body, or nil and what went wrong. */
int task_wait_http(lua_State *L, http_client *c, const http_client_req *req);

/* A wait for a completion the binding arranges itself. ops->push builds the results when the
 * task resumes: it runs under lua_pcall in the state's main thread (it may raise for memory:
 * the task then gets nil, "not enough memory for the answer") and returns how many it
 * pushed. ops->end(ud, completed) runs exactly once when the wait is over: completed = 1
 * after push, 0 when the task ended first (stop what would have completed it); it frees ud. */
typedef struct task_completion {
    int (*push)(lua_State *L, void *ud);
    void (*end)(void *ud, int completed);
} task_completion;

/* Makes the current task wait; the binding then returns lua_yield(L, 0). NULL (nothing
 * changed, ops->end not called) when L is not a task that may wait, or out of memory. */
task_wait *task_wait_completion(lua_State *L, const task_completion *ops, void *ud);
/* What the task waits for came: it resumes from the loop with ops->push's results. Once, and
 * never after ops->end ran. */
void task_complete(task_wait *w);

#endif
