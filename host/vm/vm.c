/* vm.c - Lua states with their own allocator, the sssn module searcher, the guard on the
 * host's coroutines, and tracebacks (see vm.h). */
#include "vm/vm.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/strbuf.h"
#include "vm/task.h"

static int vm_panic(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    log_write(LOG_ERROR, LOG_ERROR, NULL, "unprotected Lua error: %s", msg ? msg : "?");
    abort();
}

/* The sssn module's own Lua files are compiled once per env (host) and kept as bytecode without
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
    hashmap *cache = v->env->bytecode;
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
                      fn, task_kind_name(t->kind), t->who ? " of system '" : "", t->who ? t->who : "",
                      t->who ? "'" : "");
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
    if (v->env->open_core) {
        luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
        lua_pushcfunction(L, v->env->open_core);
        lua_setfield(L, -2, "sssn.core");
        lua_pop(L, 1);
    }
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;", v->env->lua_dir, v->env->lua_dir);
    lua_getfield(L, -2, "path");
    lua_concat(L, 2);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
    return 0;
}

vm *vm_new(vm_env *env, size_t limit)
{
    vm *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->env = env;
    v->heap.limit = limit;
    v->heap.refusals = &env->memory_refusals;
    v->heap.pool = env->pool;
    v->watchdog_limit = env->watchdog_limit;
    v->L = lua_newstate(vm_alloc, &v->heap);
    if (!v->L) {
        free(v);
        return NULL;
    }
    lua_atpanic(v->L, vm_panic);
    *(task **)lua_getextraspace(v->L) = NULL; /* threads copy this: "not a task" */
    lua_pushcfunction(v->L, vm_init_protected);
    lua_pushlightuserdata(v->L, v);
    if (lua_pcall(v->L, 1, 0, 0) != LUA_OK) {
        rt_log(env->rt, LOG_ERROR, NULL, "cannot set up a Lua state: %s", lua_tostring(v->L, -1));
        lua_close(v->L);
        free(v);
        return NULL;
    }
    return v;
}

vm *vm_of(lua_State *L)
{
    void *ud;
    lua_getallocf(L, &ud); /* the allocator's ud is the vm's heap */
    return (vm *)((char *)ud - offsetof(vm, heap));
}

void vm_free(vm *v)
{
    if (!v)
        return;
    while (v->tasks)
        task_drop(v->tasks);
    task_free_idle(v);
    lua_close(v->L);
    free(v);
}

void vm_bytecode_free(hashmap *cache)
{
    if (!cache)
        return;
    hashmap_iter it;
    void *bc;
    hashmap_iter_init(cache, &it);
    while (hashmap_iter_next(cache, &it, NULL, &bc))
        free(bc);
    hashmap_free(cache);
}

