/* lua_registry.c - the registry bindings of sssn.core, for systems (lua/sssn/registry.lua)
 * and the API router's registry routes (lua/sssn/api.lua) alike: every call goes to the
 * host's registry backend (sys/regbackend.h), a system's registrations through the keep-alive
 * (sys/keepalive.h). Queries a backend answers in this process (its cache) return at once;
 * the others, and every put and remove of a backend elsewhere, yield the calling task until
 * the answer comes (vm/task.h's completion wait) and raise a clear error outside a task.
 * Failures come back as values, nil, type, message (type: "unreachable", "bad_request",
 * "failed"), for the Lua side to raise or to answer with (the API). */
#include "bind/lua_registry.h"

#include <lauxlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/jsonread.h"
#include "sys/host.h"
#include "sys/keepalive.h"
#include "sys/regbackend.h"
#include "sys/system.h"
#include "vm/marshal.h"
#include "vm/task.h"

static host *host_of(lua_State *L) { return vm_of(L)->env->ud; }

/* Raises an error positioned at the user's call (see lua_sssn.c). */
static int sssn_error(lua_State *L, const char *fmt, ...)
{
    va_list ap;
    luaL_where(L, 2);
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_concat(L, 2);
    return lua_error(L);
}

static regbackend *backend_of(lua_State *L)
{
    regbackend *be = host_backend(host_of(L));
    if (!be)
        luaL_error(L, "sssn: out of memory (the registry backend)");
    return be;
}

static reg_kind check_reg_kind(lua_State *L, int arg)
{
    static const char *const kinds[] = {"channel", "system", NULL};
    return (reg_kind)luaL_checkoption(L, arg, NULL, kinds);
}

/* Who looks at the registry through the API, when authorisation applies: private entries are
 * shown to the subject that registered them and to a token whose scope names them. */
typedef struct viewer {
    const char *subject;
    const char **scope; /* the ids the token names (Lua strings of the viewer table) */
    size_t nscope;
} viewer;

static int viewer_sees(const viewer *v, const char *id, int is_public, const char *subject)
{
    if (!v || is_public || (subject && strcmp(subject, v->subject) == 0))
        return 1;
    for (size_t i = 0; i < v->nscope; i++)
        if (strcmp(v->scope[i], id) == 0)
            return 1;
    return 0;
}

static int entry_seen(const reg_entry *e, void *ud)
{
    return viewer_sees(ud, e->id, e->is_public, e->subject);
}

/* The viewer table at arg ({subject = s, scope = {[id] = true, ...} or nil}) into *v; 0 when
 * it is nil (the caller sees everything). The strings stay anchored by the table. */
static int check_viewer(lua_State *L, int arg, viewer *v)
{
    if (lua_isnoneornil(L, arg))
        return 0;
    luaL_checktype(L, arg, LUA_TTABLE);
    lua_getfield(L, arg, "subject");
    v->subject = luaL_checkstring(L, -1);
    lua_pop(L, 1); /* the table holds it */
    v->scope = NULL;
    v->nscope = 0;
    if (lua_getfield(L, arg, "scope") == LUA_TTABLE) {
        int t = lua_gettop(L);
        size_t n = 0;
        for (lua_pushnil(L); lua_next(L, t); lua_pop(L, 1))
            n++;
        v->scope = lua_newuserdatauv(L, (n + 1) * sizeof *v->scope, 0);
        lua_insert(L, t); /* below the scope table: both stay on the stack */
        for (lua_pushnil(L); lua_next(L, t + 1); lua_pop(L, 1))
            if (lua_type(L, -2) == LUA_TSTRING)
                v->scope[v->nscope++] = lua_tostring(L, -2);
    } else {
        lua_pop(L, 1);
    }
    return 1;
}

/* A call that may wait needs a task to wait in. */
static void check_may_wait(lua_State *L, regbackend *be, const char *fn)
{
    if (!task_current(L))
        sssn_error(L, "sssn.registry:%s: the registry is another host's (%s): the call waits for its answer, so "
                   "it needs a system's setup, step or subscriber, or a coroutine of sssn.spawn", fn,
                   be->where ? be->where : be->name);
}

/* ---- calls to the backend, waited for ---- */

enum reg_op { RC_PUT, RC_REMOVE, RC_GET, RC_FIND, RC_COUNTS, RC_EVENTS, RC_READY };

/* One call in flight: what the backend answered, copied, until the results are pushed. */
typedef struct reg_call {
    enum reg_op op;
    int as_json;          /* results as JSON text (the API's), else as Lua values */
    regbackend *be;
    rb_call *call;        /* pending with the backend, or NULL */
    ka_op *kop;           /* pending with the keep-alive, or NULL */
    task_wait *w;         /* the task waiting, once it yields */
    int done;             /* the answer is in */
    int on_heap;          /* freed with the call (a call that may wait); else on the C stack */
    rb_status status;
    double expires_at;
    strbuf json;          /* the answer (or the entry) as JSON text, when there is one */
    char *holder, *endpoint, *message;
    size_t channels, systems, expired;
} reg_call;

static void call_free(reg_call *c)
{
    strbuf_free(&c->json);
    free(c->holder);
    free(c->endpoint);
    free(c->message);
    if (c->on_heap)
        free(c);
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

/* The backend's done: copies what the results need (the result is valid only now). */
static void on_result(void *ud, const rb_result *res)
{
    reg_call *c = ud;
    c->call = NULL;
    c->kop = NULL;
    c->done = 1;
    c->status = res->status;
    c->expires_at = res->expires_at;
    c->channels = res->channels;
    c->systems = res->systems;
    c->expired = res->expired;
    if (res->json)
        strbuf_append(&c->json, res->json, res->len);
    else if (res->entry && c->as_json)
        host_entry_json(&c->json, res->entry);
    c->holder = dup_or_null(res->holder);
    c->endpoint = dup_or_null(res->holder_endpoint);
    int failed = res->status != RB_OK && res->status != RB_NOT_FOUND && res->status != RB_NOT_OWNER;
    if (failed)
        c->message = strdup(res->message ? res->message : rb_status_name(res->status));
    if ((res->holder && !c->holder) || (res->holder_endpoint && !c->endpoint) || (failed && !c->message) ||
        strbuf_failed(&c->json)) {
        c->status = RB_FAILED; /* not enough memory to hand the answer on */
        free(c->message);
        c->message = NULL;
    }
    if (c->w)
        task_complete(c->w);
}

static void push_or_nil(lua_State *L, const char *s)
{
    if (s)
        lua_pushstring(L, s);
    else
        lua_pushnil(L);
}

/* nil, type, message */
static int push_failure(lua_State *L, const reg_call *c)
{
    lua_pushnil(L);
    lua_pushstring(L, rb_status_name(c->status));
    lua_pushstring(L, c->message ? c->message : "out of memory");
    return 3;
}

/* The JSON answer as a Lua value, or as its text for the API. */
static void push_json(lua_State *L, const reg_call *c)
{
    if (c->as_json)
        lua_pushlstring(L, c->json.data ? c->json.data : "null", c->json.data ? c->json.len : 4);
    else
        json_decode(L, c->json.data ? c->json.data : "null", c->json.data ? c->json.len : 4);
}

/* Counts the events of an events answer and reads its index: json, count, index, false. */
static int push_events_answer(lua_State *L, const reg_call *c)
{
    json_span v, ev, x, idx;
    size_t n = 0, pos = 0;
    double index = 0;
    if (json_read_value(c->json.data ? c->json.data : "", c->json.len, &v) < 0 ||
        json_read_member(v, "events", &ev) != 1 || json_read_member(v, "index", &idx) != 1 ||
        json_read_number(idx, &index) < 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "failed");
        lua_pushliteral(L, "the registry answered registry events that make no sense");
        return 3;
    }
    while (json_read_next(ev, &pos, NULL, &x) == 1)
        n++;
    lua_pushlstring(L, c->json.data, c->json.len);
    lua_pushinteger(L, (lua_Integer)n);
    lua_pushinteger(L, (lua_Integer)index);
    lua_pushboolean(L, 0);
    return 4;
}

/* The results of a finished call, by operation (each binding documents its own). */
static int push_results(lua_State *L, reg_call *c)
{
    switch (c->op) {
    case RC_PUT:
        if (c->status == RB_OK) {
            lua_pushnumber(L, c->expires_at);
            if (!c->as_json)
                return 1;
            lua_pushlstring(L, c->json.data ? c->json.data : "null", c->json.data ? c->json.len : 4);
            return 2;
        }
        if (c->status == RB_NOT_OWNER) {
            lua_pushboolean(L, 0);
            push_or_nil(L, c->holder);
            push_or_nil(L, c->endpoint);
            return 3;
        }
        return push_failure(L, c);
    case RC_REMOVE:
        if (c->status == RB_OK) {
            lua_pushboolean(L, 1);
            return 1;
        }
        if (c->status == RB_NOT_FOUND) {
            lua_pushboolean(L, 0);
            lua_pushliteral(L, "absent");
            return 2;
        }
        if (c->status == RB_NOT_OWNER) {
            lua_pushboolean(L, 0);
            lua_pushliteral(L, "not_owner");
            push_or_nil(L, c->holder);
            push_or_nil(L, c->endpoint);
            return 4;
        }
        return push_failure(L, c);
    case RC_GET:
        if (c->status == RB_NOT_FOUND) {
            lua_pushnil(L);
            return 1;
        }
        /* fall through */
    case RC_FIND:
        if (c->status != RB_OK)
            return push_failure(L, c);
        push_json(L, c);
        return 1;
    case RC_COUNTS:
        if (c->status != RB_OK)
            return push_failure(L, c);
        lua_pushinteger(L, (lua_Integer)c->channels);
        lua_pushinteger(L, (lua_Integer)c->systems);
        lua_pushinteger(L, (lua_Integer)c->expired);
        return 3;
    case RC_EVENTS:
        if (c->status != RB_OK)
            return push_failure(L, c);
        return push_events_answer(L, c);
    case RC_READY:
        lua_pushboolean(L, c->status == RB_OK);
        return 1;
    }
    return 0;
}

static int push_completion(lua_State *L, void *ud) { return push_results(L, ud); }

static void end_completion(void *ud, int completed)
{
    reg_call *c = ud;
    if (!completed) { /* the task ended first: nobody waits for the answer */
        if (c->kop)
            keepalive_forget(c->kop);
        else if (c->call)
            rb_cancel(c->be, c->call);
    }
    call_free(c);
}

static const task_completion reg_completion = {push_completion, end_completion};

static int push_results_protected(lua_State *L)
{
    reg_call *c = lua_touserdata(L, 1);
    lua_remove(L, 1);
    return push_results(L, c);
}

/* After the call was started: its results at once when the answer is in, else the task
 * yields until it is. */
static int results_or_wait(lua_State *L, reg_call *c)
{
    if (c->done && !c->on_heap && !c->json.data && !c->holder && !c->endpoint && !c->message)
        return push_results(L, c); /* it holds no C memory: nothing leaks if pushing raises */
    if (c->done) {
        int base = lua_gettop(L);
        lua_pushcfunction(L, push_results_protected);
        lua_pushlightuserdata(L, c);
        int st = lua_pcall(L, 1, LUA_MULTRET, 0);
        call_free(c);
        if (st != LUA_OK)
            return lua_error(L);
        return lua_gettop(L) - base;
    }
    if (!c->on_heap) /* a backend that said it answers at once did not: nothing can wait for it */
        return luaL_error(L, "sssn.registry: the %s registry backend did not answer at once", c->be->name);
    c->w = task_wait_completion(L, &reg_completion, c);
    if (!c->w) {
        end_completion(c, 0);
        return luaL_error(L, "sssn.registry: out of memory (or not inside a task that may wait)");
    }
    return lua_yield(L, 0);
}

/* A call that may wait, on the heap (the task's wait frees it). */
static reg_call *new_call(lua_State *L, regbackend *be, enum reg_op op, int as_json)
{
    reg_call *c = calloc(1, sizeof *c);
    if (!c)
        luaL_error(L, "sssn: out of memory (registry call)");
    c->op = op;
    c->as_json = as_json;
    c->be = be;
    c->on_heap = 1;
    return c;
}

/* core.reg_ready() -> true once the backend's cache holds the registry (at once for a cache
 * that is always current), false when the backend could not fill it (the cache answers as
 * it is), nil outside a task, which cannot wait. Waits in a task until then. */
static int l_reg_ready(lua_State *L)
{
    regbackend *be = backend_of(L);
    if (!be->ops->ready) {
        lua_pushboolean(L, 1);
        return 1;
    }
    if (!task_current(L)) {
        lua_pushnil(L);
        return 1;
    }
    reg_call *c = new_call(L, be, RC_READY, 0);
    c->call = be->ops->ready(be, on_result, c);
    return results_or_wait(L, c);
}

/* ---- registering ---- */

static double check_ttl(lua_State *L, int arg)
{
    double ttl = luaL_optnumber(L, arg, host_of(L)->cfg.ttl);
    luaL_argcheck(L, ttl > 0 && ttl < 1e9, arg, "ttl must be a positive number of seconds");
    return ttl;
}

/* The system a registration call acts for: the calling system when it runs from a loaded
 * script; NULL for calls from outside any (the REPL's prompt, a spec, the HTTP API), which act
 * as an operator. */
static sssn_system *registering_system(lua_State *L)
{
    sssn_system *s = system_current(L);
    return s && s->self_ref != LUA_NOREF ? s : NULL;
}

/* Pushes and returns the registrant of a registry call: the string at `arg` when given (the
 * HTTP API passes its caller's), else "<host instance>/<system id>" of the registering
 * system, else NULL (an operator; pushes nil). GC-owned, so nothing leaks when a later check
 * raises. */
static const char *push_registrant(lua_State *L, int arg, sssn_system *s, const char *fn)
{
    if (!lua_isnoneornil(L, arg)) {
        size_t len;
        const char *r = luaL_checklstring(L, arg, &len);
        if (len == 0 || len > REG_REGISTRANT_MAX)
            sssn_error(L, "sssn: the registrant must be 1 to %d bytes, not %d (%s)", REG_REGISTRANT_MAX,
                       (int)len, fn);
        lua_pushvalue(L, arg);
        return r;
    }
    if (!s) {
        lua_pushnil(L);
        return NULL;
    }
    const char *r = lua_pushfstring(L, "%s/%s", host_of(L)->instance_id, s->id);
    if (strlen(r) > REG_REGISTRANT_MAX)
        sssn_error(L, "sssn: the system id is too long to register with (%d bytes with the host instance, "
                   "more than %d) (%s)", (int)strlen(r), REG_REGISTRANT_MAX, fn);
    return r;
}

/* core.reg_put(kind, info, id, name, is_public, caps, ttl, keepalive, registrant, refresh, as_json,
 *              subject, check_owner)
 *   -> expires_at (and with as_json the entry's JSON text), or with refresh when another
 *      registrant holds a live entry: false, its registrant (nil: an operator), its endpoint
 *      (or nil); or nil, type, message when the backend failed.
 * `info` is the normalized table (lua/sssn/registry.lua), encoded as the entry's JSON; its
 * endpoint, when a string, is kept with the entry. refresh: only renew the caller's own entry
 * (or register when absent), never take another's over. A system's registration (no explicit
 * registrant) goes through the keep-alive, which keeps it once the backend committed it.
 * subject: the HTTP caller the entry will belong to; check_owner: refuse ("forbidden") when a
 * live entry of another subject (or of this host's own systems) holds the id, checked where
 * the registry is in this process (another host's checks its callers itself).
 * Every check that can raise comes before the JSON is encoded into C memory. */
static int owner_refusal(lua_State *L, const reg_entry *e, const char *subject, const char *what)
{
    if (!e || (e->subject && subject && strcmp(e->subject, subject) == 0))
        return 0;
    lua_pushnil(L);
    lua_pushliteral(L, "forbidden");
    if (e->subject)
        lua_pushfstring(L, "%s '%s' belongs to subject '%s': only it or an admin may %s it", reg_kind_name(e->kind),
                        e->id, e->subject, what);
    else
        lua_pushfstring(L, "%s '%s' belongs to this host's own systems: only an admin may %s it",
                        reg_kind_name(e->kind), e->id, what);
    return 3;
}

static int l_reg_put(lua_State *L)
{
    lua_settop(L, 13); /* what follows pushes above the arguments */
    reg_kind kind = check_reg_kind(L, 1);
    const char *fn = kind == REG_CHANNEL ? "register_channel" : "register_system";
    luaL_checktype(L, 2, LUA_TTABLE);
    size_t id_len;
    const char *id = luaL_checklstring(L, 3, &id_len);
    const char *name = luaL_optstring(L, 4, "");
    int is_public = lua_toboolean(L, 5);
    double ttl = check_ttl(L, 7);
    int keep = lua_isnoneornil(L, 8) ? 1 : lua_toboolean(L, 8);
    int refresh = lua_toboolean(L, 10);
    int as_json = lua_toboolean(L, 11);
    const char *subject = luaL_optstring(L, 12, NULL);
    int check_owner = lua_toboolean(L, 13);
    luaL_argcheck(L, *id, 3, "id must not be empty");
    if (id_len > REG_ID_MAX)
        return sssn_error(L, "sssn: the id is %d bytes, longer than %d (%s)", (int)id_len, REG_ID_MAX, fn);
    size_t ncaps = 0;
    const char **caps = NULL;
    if (!lua_isnoneornil(L, 6)) {
        luaL_checktype(L, 6, LUA_TTABLE);
        ncaps = lua_rawlen(L, 6);
        caps = lua_newuserdatauv(L, (ncaps + 1) * sizeof *caps, 0);
        for (size_t i = 0; i < ncaps; i++) {
            lua_rawgeti(L, 6, (lua_Integer)i + 1);
            if (lua_type(L, -1) != LUA_TSTRING)
                return sssn_error(L, "sssn: service names must be strings (register_system '%s')", id);
            caps[i] = lua_tostring(L, -1);
            lua_pop(L, 1);
        }
    }
    lua_getfield(L, 2, "endpoint");
    const char *endpoint = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    sssn_system *s = registering_system(L);
    if (s && s->state == SYS_STOPPED)
        return sssn_error(L, "sssn: system '%s' is stopped (%s)", s->id, fn);
    int as_system = s && lua_isnoneornil(L, 9);
    const char *registrant = push_registrant(L, 9, s, fn);
    regbackend *be = backend_of(L);
    if (check_owner && be->cache) {
        int n = owner_refusal(L, registry_get(be->cache, kind, id, host_now(host_of(L))), subject, "replace");
        if (n)
            return n;
    }
    if (!be->immediate)
        check_may_wait(L, be, fn);
    /* the host's buffer, reused: no allocation per registration (the backend copies the text;
     * nothing that runs before it is done encodes into this buffer) */
    strbuf *b = &host_of(L)->reg_buf;
    strbuf_reset(b);
    char err[256];
    if (json_encode(L, 2, kind == REG_CHANNEL ? "info" : "descriptor", b, err, sizeof err) < 0 || !b->data ||
        strbuf_failed(b)) {
        int oom = !b->data || strbuf_failed(b);
        strbuf_free(b);
        return sssn_error(L, "sssn: %s (%s '%s')", oom ? "out of memory" : err, fn, id);
    }
    /* a backend that answers at once needs no call that outlives this function */
    reg_call here = {.op = RC_PUT, .as_json = as_json, .be = be}, *c = &here;
    if (!be->immediate && !(c = calloc(1, sizeof *c)))
        return sssn_error(L, "sssn: out of memory (%s '%s')", fn, id);
    if (c != &here)
        *c = (reg_call){.op = RC_PUT, .as_json = as_json, .be = be, .on_heap = 1};
    reg_fields f = {.id = id, .name = name, .is_public = is_public, .caps = caps, .ncaps = ncaps,
                    .json = b->data, .json_len = b->len, .registrant = registrant, .endpoint = endpoint,
                    .subject = subject};
    if (as_system)
        c->kop = keepalive_register(&s->kept, kind, &f, ttl, keep, on_result, c);
    else
        c->call = rb_put(be, kind, &f, ttl, refresh, on_result, c);
    if (b->cap > 65536)
        strbuf_free(b); /* a large registration does not keep its buffer */
    return results_or_wait(L, c);
}

/* core.reg_remove(kind, id, registrant, subject, check_owner) -> true, or false, "absent", or false, "not_owner",
 * the holder's registrant (nil: an operator), its endpoint (or nil); or nil, type, message.
 * A system removes only its own entries (and stops keeping that id alive either way); an
 * operator (no system, no registrant) removes whatever is there. subject and check_owner as
 * for reg_put. */
static int l_reg_remove(lua_State *L)
{
    lua_settop(L, 5);
    reg_kind kind = check_reg_kind(L, 1);
    const char *id = luaL_checkstring(L, 2);
    const char *fn = kind == REG_CHANNEL ? "deregister_channel" : "deregister_system";
    sssn_system *s = registering_system(L);
    int as_system = s && lua_isnoneornil(L, 3);
    const char *registrant = push_registrant(L, 3, s, fn);
    regbackend *be = backend_of(L);
    if (lua_toboolean(L, 5) && be->cache) {
        int n = owner_refusal(L, registry_get(be->cache, kind, id, host_now(host_of(L))), luaL_optstring(L, 4, NULL),
                              "delete");
        if (n)
            return n;
    }
    if (!be->immediate)
        check_may_wait(L, be, fn);
    reg_call here = {.op = RC_REMOVE, .be = be}, *c = be->immediate ? &here : new_call(L, be, RC_REMOVE, 0);
    if (as_system)
        c->kop = keepalive_deregister(&s->kept, kind, id, registrant, on_result, c);
    else
        c->call = rb_remove(be, kind, id, registrant, on_result, c);
    return results_or_wait(L, c);
}

/* ---- queries ---- */

/* A point lookup without a cache: through the backend. */
static int get_remote(lua_State *L, regbackend *be, reg_kind kind, const char *id, int as_json)
{
    check_may_wait(L, be, kind == REG_CHANNEL ? "get_channel" : "get_system");
    reg_call *c = new_call(L, be, RC_GET, as_json);
    c->call = be->ops->get(be, kind, id, on_result, c);
    return results_or_wait(L, c);
}

/* One function per kind for the hot point lookups: no kind argument to parse, and the kind's
 * cache tables are its upvalues (made in lua_registry_register). */
static int reg_get_cached(lua_State *L, reg_kind kind)
{
    host *h = host_of(L);
    const char *id = luaL_checkstring(L, 1);
    regbackend *be = h->backend ? h->backend : backend_of(L);
    if (!be->cache)
        return get_remote(L, be, kind, id, 0);
    const reg_entry *e = registry_get(be->cache, kind, id, host_now(h));
    if (!e) {
        vm_forget_entry(L, 1, lua_upvalueindex(2), lua_upvalueindex(3));
        lua_pushnil(L);
        return 1;
    }
    vm_push_entry_at(L, e, 1, lua_upvalueindex(1), lua_upvalueindex(2), lua_upvalueindex(3));
    return 1;
}

static int l_reg_get_channel(lua_State *L) { return reg_get_cached(L, REG_CHANNEL); }
static int l_reg_get_system(lua_State *L) { return reg_get_cached(L, REG_SYSTEM); }

static int push_list_protected(lua_State *L)
{
    reg_list *l = lua_touserdata(L, 1);
    lua_createtable(L, (int)l->count, 0);
    for (size_t i = 0; i < l->count; i++) {
        vm_push_entry(L, l->items[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

static int push_list_json_protected(lua_State *L)
{
    reg_list *l = lua_touserdata(L, 1);
    strbuf b = STRBUF_INIT;
    strbuf_putc(&b, '[');
    for (size_t i = 0; i < l->count; i++) {
        if (i)
            strbuf_putc(&b, ',');
        host_entry_json(&b, l->items[i]);
    }
    strbuf_putc(&b, ']');
    vm_push_strbuf(L, &b);
    return 1;
}

/* Building the results may raise (memory): it runs protected, so the list is freed either way. */
static int push_list(lua_State *L, reg_list *l, int as_json)
{
    lua_pushcfunction(L, as_json ? push_list_json_protected : push_list_protected);
    lua_pushlightuserdata(L, l);
    int st = lua_pcall(L, 1, 1, 0);
    reg_list_free(l);
    if (st != LUA_OK)
        return lua_error(L);
    return 1;
}

/* page: NULL for every match; it applies where the registry is in this process (another
 * host's answers its own pages). */
static int find(lua_State *L, const rb_query *q, int as_json, const reg_page *page)
{
    host *h = host_of(L);
    regbackend *be = backend_of(L);
    const char *fn = q->kind == REG_CHANNEL ? "find_channels" : "find_systems";
    if (!be->cache) {
        check_may_wait(L, be, fn);
        reg_call *c = new_call(L, be, RC_FIND, as_json);
        rb_query paged = *q;
        if (page) {
            paged.after = page->after;
            paged.limit = page->limit;
        }
        c->call = be->ops->find(be, &paged, on_result, c);
        return results_or_wait(L, c);
    }
    reg_list l;
    int rc = q->kind == REG_CHANNEL
                 ? registry_find_channels_page(be->cache, q->visibility, q->name, host_now(h), page, &l)
                 : registry_find_systems_page(be->cache, q->capability, host_now(h), page, &l);
    if (rc < 0)
        return sssn_error(L, "sssn: out of memory (%s)", fn);
    return push_list(L, &l, as_json);
}

/* core.reg_find_channels(visibility or nil, name or nil) -> list; or nil, type, message */
static int l_reg_find_channels(lua_State *L)
{
    rb_query q = {.kind = REG_CHANNEL, .visibility = -1};
    if (!lua_isnoneornil(L, 1)) {
        static const char *const v[] = {"private", "public", NULL};
        q.visibility = luaL_checkoption(L, 1, NULL, v);
    }
    q.name = luaL_optstring(L, 2, NULL);
    return find(L, &q, 0, NULL);
}

/* core.reg_find_systems(capability or nil) -> list; or nil, type, message */
static int l_reg_find_systems(lua_State *L)
{
    rb_query q = {.kind = REG_SYSTEM, .visibility = -1, .capability = luaL_optstring(L, 1, NULL)};
    return find(L, &q, 0, NULL);
}

/* core.reg_maintain() -> entries purged now (0 where the backend's own host purges) */
static int l_reg_maintain(lua_State *L)
{
    regbackend *be = backend_of(L);
    lua_pushinteger(L, (lua_Integer)be->ops->maintain(be));
    return 1;
}

/* core.reg_counts() -> channel entries, system entries (held, live or not yet purged),
 * entries purged by expiry so far (0 for a backend elsewhere); or nil, type, message */
static int l_reg_counts(lua_State *L)
{
    regbackend *be = backend_of(L);
    if (!be->cache) {
        check_may_wait(L, be, "counts");
        reg_call *c = new_call(L, be, RC_COUNTS, 0);
        c->call = be->ops->counts(be, on_result, c);
        return results_or_wait(L, c);
    }
    lua_pushinteger(L, (lua_Integer)registry_count(be->cache, REG_CHANNEL));
    lua_pushinteger(L, (lua_Integer)registry_count(be->cache, REG_SYSTEM));
    lua_pushinteger(L, (lua_Integer)registry_expired_total(be->cache));
    return 3;
}

/* ---- events ---- */

/* Whether the event message is about registrant's entries (or takes one over from it), or
 * those of registrants starting with prefix; both NULL: every event is. */
/* Whether the viewer (NULL: anyone) may see the event: any event about a public entry, else
 * one about an entry of its subject or named by its scope. */
static int event_seen(const message *m, const viewer *v, strbuf *scratch)
{
    if (!v)
        return 1;
    json_span ev, x;
    if (json_read_value(m->data_json, m->data_len, &ev) < 0)
        return 0;
    if (json_read_member(ev, "private", &x) != 1)
        return 1;
    char id[REG_ID_MAX + 1] = "", subject[SSSN_ID_MAX + 1] = "";
    static const char *const keys[] = {"id", "subject"};
    char *out[] = {id, subject};
    size_t size[] = {sizeof id, sizeof subject};
    for (int i = 0; i < 2; i++) {
        strbuf_reset(scratch);
        if (json_read_member(ev, keys[i], &x) == 1 && json_read_string(x, scratch) == 0 && scratch->data &&
            !strbuf_failed(scratch))
            snprintf(out[i], size[i], "%s", scratch->data);
    }
    return viewer_sees(v, id, 0, subject[0] ? subject : NULL);
}

static int event_matches(const message *m, const char *registrant, const char *prefix, strbuf *scratch)
{
    if (!registrant && !prefix)
        return 1;
    json_span v, x;
    if (json_read_value(m->data_json, m->data_len, &v) < 0)
        return 0;
    static const char *const keys[] = {"registrant", "previous_registrant"};
    for (int i = 0; i < 2; i++) {
        if (json_read_member(v, keys[i], &x) != 1 || json_read_is_null(x))
            continue;
        strbuf_reset(scratch);
        if (json_read_string(x, scratch) < 0 || strbuf_failed(scratch) || !scratch->data)
            continue;
        if (registrant && strcmp(scratch->data, registrant) == 0)
            return 1;
        if (prefix && strncmp(scratch->data, prefix, strlen(prefix)) == 0)
            return 1;
    }
    return 0;
}

/* The events after `after` of the host's event channel, filtered: the JSON text
 * {"index": n, "events": [...]} (each event with its own index and timestamp), its count, the
 * index, and whether waiting for more makes sense (after is not beyond the newest). The index
 * moves past the events the filter leaves out. */
static int events_here(lua_State *L, channel *events, lua_Integer after, lua_Integer limit, const char *registrant,
                       const char *prefix, const viewer *v)
{
    host *h = host_of(L);
    channel_batch batch;
    channel_sync(events); /* the events a purge left to be written, before the index is taken */
    uint64_t last = channel_last_seq(events);
    if (channel_read(events, "\x01registry-watch", (size_t)limit, 1, (uint64_t)after, host_now(h), &batch) !=
        CHANNEL_OK)
        return luaL_error(L, "sssn: out of memory (registry events)");
    uint64_t index = batch.count ? batch.items[batch.count - 1]->seq : last;
    strbuf b = STRBUF_INIT, scratch = STRBUF_INIT;
    size_t count = 0;
    strbuf_printf(&b, "{\"index\":%llu,\"events\":[", (unsigned long long)index);
    for (size_t i = 0; i < batch.count; i++) {
        const message *m = batch.items[i];
        if (!event_matches(m, registrant, prefix, &scratch) || !event_seen(m, v, &scratch))
            continue;
        if (count++)
            strbuf_putc(&b, ',');
        /* each event with its own index, so a watcher can resume from any of them */
        strbuf_printf(&b, "{\"index\":%llu,\"timestamp\":", (unsigned long long)m->seq);
        json_write_double(&b, m->timestamp);
        strbuf_putc(&b, ',');
        strbuf_append(&b, m->data_json + 1, m->data_len - 1); /* the event object without its '{' */
    }
    strbuf_puts(&b, "]}");
    channel_batch_free(&batch);
    strbuf_free(&scratch);
    vm_push_strbuf(L, &b);
    lua_pushinteger(L, (lua_Integer)count);
    lua_pushinteger(L, (lua_Integer)index);
    lua_pushboolean(L, (uint64_t)after <= last);
    return 4;
}

/* core.reg_events(index, limit, wait, registrant, registrant_prefix, viewer|nil)
 *   -> json {"index": n, "events": [...]}, count, index, waitable; or nil, type, message.
 * With the events in this process the answer comes at once and `waitable` says whether to
 * wait for the channel "registry" (core.wait) and ask again; elsewhere (http) the other host
 * waits up to `wait` seconds and waitable is false. */
static int l_reg_events(lua_State *L)
{
    lua_Integer after = luaL_optinteger(L, 1, 0);
    lua_Integer limit = luaL_optinteger(L, 2, 1000);
    double wait = luaL_optnumber(L, 3, 0);
    const char *registrant = luaL_optstring(L, 4, NULL);
    const char *prefix = luaL_optstring(L, 5, NULL);
    lua_settop(L, 6);
    viewer v;
    int has_viewer = check_viewer(L, 6, &v);
    if (after < 0 || limit < 1 || limit > 10000)
        return luaL_error(L, "sssn: registry events: index must be >= 0 and limit between 1 and 10000");
    regbackend *be = backend_of(L);
    if (be->events)
        return events_here(L, be->events, after, limit, registrant, prefix, has_viewer ? &v : NULL);
    check_may_wait(L, be, "events");
    rb_events_query q = {.index = (unsigned long long)after, .limit = (unsigned)limit, .wait = wait > 0 ? wait : 0,
                         .registrant = registrant, .registrant_prefix = prefix};
    reg_call *c = new_call(L, be, RC_EVENTS, 1);
    c->call = be->ops->events(be, &q, on_result, c);
    return results_or_wait(L, c);
}

/* ---- for the API router: answers as JSON text ---- */

/* core.api_reg_list(kind, visibility|nil, name|nil, capability|nil, after|nil, limit, viewer|nil)
 *   -> json array of at most limit entries with ids after `after`, those the viewer may see;
 *      or nil, type, message ("bad_request" for a visibility that is neither public nor private) */
static int l_api_reg_list(lua_State *L)
{
    lua_settop(L, 7);
    viewer who;
    int has_viewer = check_viewer(L, 7, &who);
    reg_page page = {.after = luaL_optstring(L, 5, NULL), .limit = (size_t)luaL_optinteger(L, 6, 0),
                     .keep = has_viewer ? entry_seen : NULL, .keep_ud = &who};
    const char *kind = luaL_checkstring(L, 1);
    rb_query q = {.kind = strcmp(kind, "channel") == 0 ? REG_CHANNEL : REG_SYSTEM, .visibility = -1};
    if (q.kind == REG_CHANNEL) {
        const char *v = luaL_optstring(L, 2, NULL);
        if (v)
            q.visibility = strcmp(v, "public") == 0 ? 1 : strcmp(v, "private") == 0 ? 0 : -2;
        if (q.visibility == -2) {
            lua_pushnil(L);
            lua_pushliteral(L, "bad_request");
            lua_pushfstring(L, "visibility must be public or private, not '%s'", v);
            return 3;
        }
        q.name = luaL_optstring(L, 3, NULL);
    } else {
        q.capability = luaL_optstring(L, 4, NULL);
    }
    return find(L, &q, 1, &page);
}

/* core.api_reg_get(kind, id, viewer|nil) -> json, or nil when there is no live entry (or none
 * the viewer may see); or nil, type, message */
static int l_api_reg_get(lua_State *L)
{
    lua_settop(L, 3);
    viewer v;
    int has_viewer = check_viewer(L, 3, &v);
    host *h = host_of(L);
    const char *kind = luaL_checkstring(L, 1);
    const char *id = luaL_checkstring(L, 2);
    reg_kind k = strcmp(kind, "channel") == 0 ? REG_CHANNEL : REG_SYSTEM;
    regbackend *be = backend_of(L);
    if (!be->cache)
        return get_remote(L, be, k, id, 1);
    const reg_entry *e = registry_get(be->cache, k, id, host_now(h));
    if (!e || (has_viewer && !entry_seen(e, &v))) {
        lua_pushnil(L);
        return 1;
    }
    strbuf b = STRBUF_INIT;
    host_entry_json(&b, e);
    if (regbackend_stale(be) && b.len && b.data[b.len - 1] == '}') { /* answered from a cache that may be behind */
        b.len--;
        strbuf_puts(&b, ",\"stale\":true}");
    }
    vm_push_strbuf(L, &b);
    return 1;
}

/* core.reg_test_limits(max_entries, max_per_subject) -> nothing: the local registry's bounds
 * (0: none), as --registry-max-entries and --registry-max-per-subject set them. For
 * `sssn-host test` and `run` only (benchmarks that hold more than the default million,
 * specs of the limits): `run` takes no host options. */
static int l_reg_test_limits(lua_State *L)
{
    host *h = host_of(L);
    lua_Integer max_entries = luaL_checkinteger(L, 1), per_subject = luaL_checkinteger(L, 2);
    if (!h->cfg.test_mode)
        return sssn_error(L, "sssn: reg_test_limits is for `sssn-host test` and `sssn-host run` only");
    if (max_entries < 0 || per_subject < 0)
        return sssn_error(L, "sssn: reg_test_limits: the limits must be >= 0 (0: no bound)");
    regbackend *be = backend_of(L);
    if (strcmp(be->name, "local") != 0)
        return sssn_error(L, "sssn: reg_test_limits: the registry is another host's");
    h->cfg.registry_max_entries = (size_t)max_entries;
    h->cfg.registry_max_per_subject = (size_t)per_subject;
    regbackend_local_limits(be, h->cfg.registry_max_entries, h->cfg.registry_max_per_subject);
    return 0;
}

static const luaL_Reg registry_funcs[] = {
    {"reg_test_limits", l_reg_test_limits},
    {"reg_put", l_reg_put},
    {"reg_ready", l_reg_ready},
    {"reg_remove", l_reg_remove},
    {"reg_find_channels", l_reg_find_channels},
    {"reg_find_systems", l_reg_find_systems},
    {"reg_maintain", l_reg_maintain},
    {"reg_counts", l_reg_counts},
    {"reg_events", l_reg_events},
    {"api_reg_list", l_api_reg_list},
    {"api_reg_get", l_api_reg_get},
    {NULL, NULL},
};

void lua_registry_register(lua_State *L)
{
    luaL_setfuncs(L, registry_funcs, 0);
    static const struct { const char *name; lua_CFunction fn; reg_kind kind; } cached[] = {
        {"reg_get_channel", l_reg_get_channel, REG_CHANNEL},
        {"reg_get_system", l_reg_get_system, REG_SYSTEM},
    };
    for (int i = 0; i < 2; i++) {
        vm_push_entry_caches(L, cached[i].kind);
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2);
        lua_rotate(L, -3, -1); /* ids, vers, caches */
        lua_pushcclosure(L, cached[i].fn, 3);
        lua_setfield(L, -2, cached[i].name);
    }
}
