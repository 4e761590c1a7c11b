/* system.h - systems: a script each, in its own Lua state (vm/vm.h) with a memory cap; setup
 * once, then step on a fixed tick schedule, each as a task (vm/task.h), so any call may wait;
 * subscriptions (subscription.c) and periodic pulls (periodic.c) delivered through the loop;
 * registrations kept alive (keepalive.c). */
#ifndef SSSN_SYSTEM_H
#define SSSN_SYSTEM_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

#include "core/hashmap.h"
#include "model/channel.h"
#include "rt/timer.h"
#include "sys/host.h"
#include "sys/keepalive.h"
#include "vm/traceback.h"
#include "vm/task.h"
#include "vm/vm.h"

typedef struct sssn_system sssn_system;

typedef struct subscription subscription;
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
    const char *stop_after_step; /* system_stop_after_step's reason, or NULL */

    enum error_policy on_error;
    unsigned max_errors;       /* consecutive errors before ON_ERROR_STOP stops the system */
    unsigned consecutive_errors;

    hashmap *channels;         /* id -> channel*: owned and connected */
    subscription *subs;
    keepalive_set kept;        /* what it registered (kept alive, dropped on stop) */
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
/* Starts no further step: the system stops (with `why`, a static text) at its next tick, once
 * the step in progress, if any, has ended (the clean stop's drain). */
void system_stop_after_step(sssn_system *s, const char *why);
void system_free(sssn_system *s);

/* A state for h (what its bindings act on), with the host's module cache and watchdog. */
vm *host_vm_new(host *h, size_t limit);

/* What a system is in Lua: a full userdata of this metatable holding the pointer (the
 * bindings take it as their first argument). */
#define SYSTEM_HANDLE_MT "sssn.system_handle"
typedef struct system_handle {
    sssn_system *s;
} system_handle;
void system_push_handle(lua_State *L, sssn_system *s); /* may raise (memory) */

/* Finds the system a binding acts for: the running task's, else the vm's default. */
sssn_system *system_current(lua_State *L);
sssn_system *system_find(host *h, const char *id);
channel *system_channel(sssn_system *s, const char *id); /* owned or connected, or NULL */

/* Registrations made by a system: kept alive, removed on stop (keepalive.h, over the host's
 * registry backend: keepalive_register(&s->kept, ...), keepalive_deregister, drop_all). */

/* Subscriptions and periodic sources. The function is on top of L's stack (popped); L is the
 * calling thread of s's state. */
int system_subscribe(sssn_system *s, channel *ch, lua_State *L);
void system_unsubscribe(sssn_system *s, const char *channel_id);
void system_close_subscriptions(sssn_system *s);
int system_add_periodic(sssn_system *s, channel *ch, lua_State *L);
void system_close_periodics(sssn_system *s);
void system_shift_periodics(sssn_system *s, double delta); /* the test clock switched */

/* The systems of a host as a whole. systems_init hooks them into the host (errors of their
 * tasks counted, schedules moved with the test clock). */
void systems_init(host *h);
/* Stops every system (each deregisters what it registered) and ends the loop's run. */
void systems_stop_all(host *h, const char *why);
/* Stops and frees every system (before host_free). */
void systems_free_all(host *h);

#endif
