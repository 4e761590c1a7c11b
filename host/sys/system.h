/* system.h - systems: one Lua state each (a "vm" with its own allocator and memory cap),
 * host-managed coroutines ("tasks") for setup, step, subscribers and periodic pulls, and
 * the tick schedule. Every entry into Lua goes through a task, so any call may yield. */
#ifndef SSSN_SYSTEM_H
#define SSSN_SYSTEM_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

#include "model/channel.h"
#include "core/hashmap.h"
#include "sys/host.h"
#include "rt/timer.h"

typedef struct sssn_system sssn_system;
typedef struct task task;

/* A Lua state with its own allocator. One per system; the test runner's state is one too. */
typedef struct vm {
    lua_State *L;
    host *h;
    size_t bytes;      /* Lua heap in use */
    size_t peak;
    size_t limit;      /* 0 = unlimited; growth past it is refused ("not enough memory") */
    sssn_system *default_system; /* the system calls outside a task act for, or NULL */
    task *tasks;       /* live tasks in this state */
    double watchdog_start;  /* real time the running task was resumed */
    double watchdog_limit;  /* seconds, 0 = off */
    int interruptible;      /* Ctrl-C interrupts code running in this state (the REPL's) */
    uint64_t task_ids;      /* last task id handed out */
} vm;

enum task_kind { TASK_SETUP, TASK_STEP, TASK_SUBSCRIBER, TASK_PERIODIC, TASK_CALL, TASK_REQUEST };

struct task {
    uint64_t id;                /* unique in its vm, for Lua code that may cancel it */
    vm *vm;
    sssn_system *sys;           /* whose work this is (errors are counted there); may be NULL */
    enum task_kind kind;
    lua_State *co;
    int co_ref;                 /* keeps the thread alive in vm->L's registry */
    int nargs;                  /* arguments of the first resume */
    rt_timer sleep_timer;     /* sssn.sleep */
    void (*on_done)(task *t, int ok);
    void *data;
    int running;                /* inside lua_resume right now */
    int cancelled;              /* its system stopped: end it instead of resuming */
    int failed;                 /* ended with an error (already reported) */
    int waiting;                /* a binding arranged a wake-up other than the sleep timer */
    void (*cancel_wait)(task *t); /* undoes that arrangement when the task is dropped */
    void *wait;                 /* what cancel_wait undoes */
    task *prev, *next;          /* vm->tasks */
};

typedef struct subscription subscription;
typedef struct registration registration;
typedef struct periodic_source periodic_source;

enum system_state { SYS_SETUP, SYS_RUNNING, SYS_STOPPED };
enum error_policy { ON_ERROR_CONTINUE, ON_ERROR_STOP };

struct sssn_system {
    host *h;
    vm *vm;
    int owns_vm;               /* 0 for the test runner's pseudo-systems */
    char *id;
    char *name;
    int self_ref;              /* the system table, in vm->L's registry; LUA_NOREF if none */
    enum system_state state;
    int stop_requested;

    double tick_rate, period;
    rt_timer tick_timer;
    int ticking;               /* 0 for pseudo-systems: never stepped by the host */
    double t0;                 /* time of the first tick slot; slots are t0 + k * period */
    uint64_t tick_index;       /* k of the current / last step's slot */
    double last_step_start;    /* real start of the last step, 0 before the first */
    task *step_task;           /* the step in progress, or NULL */

    enum error_policy on_error;
    unsigned max_errors;       /* consecutive errors before ON_ERROR_STOP stops the system */
    unsigned consecutive_errors;

    hashmap *channels;         /* id -> channel*: owned and connected */
    subscription *subs;
    registration *regs;        /* what it registered (kept alive, dropped on stop) */
    periodic_source *periodics;

    uint64_t steps, errors, overruns;
    sssn_system *next;         /* host->systems */
};

/* Loading. Both report failures (file and line) through the host log and return NULL. */
sssn_system *system_load_file(host *h, const char *path);
/* ran_plain (may be NULL): allow a chunk that is no system; it runs once and *ran_plain is
 * set (the result is then NULL without an error). */
sssn_system *system_load_string(host *h, const char *source, size_t len, const char *chunkname,
                                const char *default_id, size_t memory_limit, int *ran_plain);
/* Starts a loaded system: runs setup in a task, then ticks. */
void system_start(sssn_system *s);
/* A system bound to an existing vm that the host never ticks (the test runner's readers). */
sssn_system *system_attach(vm *v, const char *id, const char *name);
/* Ends the system: deregisters its registrations, retires its channels, drops subscriptions.
 * When called from its own running step, the stop completes when the step returns. */
void system_stop(sssn_system *s, const char *why);
void system_free(sssn_system *s);

/* Vm. */
vm *vm_new(host *h, size_t limit);
void vm_free(vm *v);
vm *vm_of(lua_State *L);   /* the vm a state belongs to */

/* Tasks: the function and its nargs arguments are on top of v->L's stack (popped).
 * task_new makes the task without running it (NULL, logged, when it cannot be made: then
 * on_done never runs), so the caller can record it first; task_start runs it until it first
 * waits or ends. on_done (may be NULL) runs when it returns or fails, and the task is freed
 * right after: once task_start (or any resume) returns, the caller must not touch the
 * pointer again unless on_done has not run (its own bookkeeping tells). task_spawn is
 * new + start for callers that keep no pointer: 0 started, -1 not made. */
task *task_new(vm *v, sssn_system *sys, enum task_kind kind, int nargs,
               void (*on_done)(task *t, int ok), void *data);
void task_start(task *t);
int task_spawn(vm *v, sssn_system *sys, enum task_kind kind, int nargs,
               void (*on_done)(task *t, int ok), void *data);
task *task_current(lua_State *L);   /* the task running in coroutine L, or NULL */
/* Ends a task where it waits (its on_done sees t->cancelled); a task inside lua_resume right
 * now ends when it next yields or returns. */
void task_cancel(task *t);
task *task_find(vm *v, uint64_t id); /* a live task by id, or NULL */
void task_resume(task *t, int nargs); /* nargs values pushed on t->co */
/* Yield helpers for bindings: suspend the current task; the binding must `return lua_yield(L, 0)`. */
int task_sleep(lua_State *L, double seconds);
void task_sleep_resume_soon(task *t); /* resume on the next turn of the loop */
/* Suspends the current task until a message with seq > after is written to ch or `timeout`
 * seconds pass; the task then resumes with true (a message came) or false. Returns 1 when
 * the binding must `return lua_yield(L, 0)`, 0 when a message is already there (no wait). */
int task_wait_channel(lua_State *L, channel *ch, uint64_t after, double timeout);

/* Finds the system a binding acts for: the running task's, else the vm's default. */
sssn_system *system_current(lua_State *L);
sssn_system *system_find(host *h, const char *id);
channel *system_channel(sssn_system *s, const char *id); /* owned or connected, or NULL */

/* Registrations made by a system (local registry): kept alive, removed on stop. */
/* f's strings are copied: a registration that lapsed (a late loop) is registered again. */
void system_track_registration(sssn_system *s, reg_kind kind, const reg_fields *f, double ttl, int keepalive);
void system_untrack_registration(sssn_system *s, reg_kind kind, const char *id);
void system_drop_registrations(sssn_system *s);

/* Subscriptions and periodic sources. The function is on top of L's stack (popped); L is the
 * calling thread of s's state. */
int system_subscribe(sssn_system *s, channel *ch, lua_State *L);
void system_unsubscribe(sssn_system *s, const char *channel_id);
int system_add_periodic(sssn_system *s, channel *ch, lua_State *L);

/* Called when the test clock switches: schedules kept as absolute times move by delta. */
void systems_shift_clock(host *h, double delta);

#endif
