/* vm.h - Lua states for the layers above: each with its own allocator and memory cap (so a
 * system's memory is known and bounded, as skynet's services are), the sssn module found by
 * `require` (its Lua files compiled once and kept as stripped bytecode, shared by every
 * state of an env), coroutine.resume/close refused on the host's own coroutines, and
 * tracebacks that show the user's frames only. Tasks (task.h) run code in a state. */
#ifndef SSSN_VM_H
#define SSSN_VM_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

#include "core/hashmap.h"
#include "rt/rt.h"
#include "vm/alloc.h"

typedef struct task task;
typedef struct vm vm;

/* What the states of one host share. The layers above fill it in: open_core is the C half
 * of the module (the bindings sit above this layer), ud what the bindings act on (the host). */
typedef struct vm_env {
    rt *rt;
    const char *lua_dir;        /* holds sssn/init.lua */
    hashmap *bytecode;          /* module name -> its stripped bytecode; NULL: no cache */
    pool *pool;                 /* small blocks of every state (vm/alloc.h); NULL: malloc's */
    lua_CFunction open_core;    /* preloaded as "sssn.core"; may be NULL */
    double watchdog_limit;      /* default seconds a task may run without yielding (0 = off) */
    /* an error ended a task (already logged, unless the error said it was reported): the
     * layer above counts it for the task's owner. May be NULL. */
    void (*on_task_error)(task *t);
    void *ud;
    uint64_t memory_refusals;   /* allocations a state's cap (limit) refused, in every state */
} vm_env;

struct vm {
    lua_State *L;
    vm_env *env;
    vm_heap heap;           /* what the state's allocator counts: bytes, peak, limit */
    void *default_owner;    /* whom calls outside a task act for (a system), or NULL */
    task *tasks;            /* live tasks in this state */
    task *idle;             /* ended tasks whose threads the next tasks reuse (task.c) */
    unsigned nidle;
    double watchdog_start;  /* real time the running task was resumed */
    double watchdog_limit;  /* seconds, 0 = off */
    int interruptible;      /* Ctrl-C interrupts code running in this state (the REPL's) */
    uint64_t task_ids;      /* last task id handed out */
    int error_status;       /* the kind of the last binding error (bind/errors.h) */
    const char *error_type; /* a string literal, or NULL */
};

/* A state with the standard libraries and the module searcher; NULL (logged) on failure. */
vm *vm_new(vm_env *env, size_t limit);
/* Ends its tasks (their on_done sees them cancelled), then closes the state. */
void vm_free(vm *v);
vm *vm_of(lua_State *L); /* the vm a state (or any of its threads) belongs to */

/* Frees a bytecode cache made for vm_env.bytecode. */
void vm_bytecode_free(hashmap *cache);

#endif
