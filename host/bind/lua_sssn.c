/* lua_sssn.c - "sssn.core", the C half of the `sssn` Lua module. Bindings only: each checks
 * its arguments, calls the host (channels, registry, systems, clock) and translates the result
 * back to Lua. The user-facing API is built on these in lua/sssn/init.lua. */
#include "bind/lua_sssn.h"

#include <lauxlib.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "sys/host.h"
#include "sys/regbackend.h"
#include "core/json.h"
#include "bind/durable.h"
#include "bind/errors.h"
#include "bind/lua_api.h"
#include "bind/lua_registry.h"
#include "vm/envelope.h"
#include "vm/marshal.h"
#include "sys/system.h"
#include "bind/test_support.h"

#define CHANNEL_MT "sssn.channel"
#define SYSTEM_MT SYSTEM_HANDLE_MT

typedef struct channel_handle {
    channel *ch;
} channel_handle;


static host *host_of(lua_State *L) { return vm_of(L)->env->ud; }

/* A bad call from a system (bind/errors.h): positioned at the user's line (users reach these
 * bindings through the wrappers in lua/sssn/, so level 2 is the line in the user's script). */
static int sssn_error(lua_State *L, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bind_vraise(L, 1, 400, "bad_request", fmt, ap);
    va_end(ap);
    return 0;
}

/* ---- messages and entries: C -> Lua ---- */

static void push_channel_info(lua_State *L, const channel *ch)
{
    lua_createtable(L, 0, 8);
    vm_set_string_field(L, "id", ch->id);
    vm_set_string_field(L, "name", ch->name);
    vm_set_string_field(L, "description", ch->description);
    vm_set_string_field(L, "visibility", ch->is_public ? "public" : "private");
    vm_set_string_field(L, "kind", channel_kind_name(ch->kind));
    if (ch->period > 0) {
        lua_pushnumber(L, ch->period);
        lua_setfield(L, -2, "period");
    }
    vm_set_string_field(L, "owner", ch->owner);
    vm_set_string_field(L, "endpoint", host_of(L)->endpoint);
    lua_pushboolean(L, channel_epoch(ch) != NULL);
    lua_setfield(L, -2, "durable");
}

/* ---- handles ---- */

static sssn_system *check_system(lua_State *L, int arg)
{
    system_handle *hd = luaL_checkudata(L, arg, SYSTEM_MT);
    if (hd->s->vm != vm_of(L))
        luaL_argerror(L, arg, "system handle belongs to another Lua state");
    return hd->s;
}

/* A system that must be running to act (read, write, register...). */
static sssn_system *check_live_system(lua_State *L, int arg, const char *op)
{
    sssn_system *s = check_system(L, arg);
    if (s->state == SYS_STOPPED)
        sssn_error(L, "sssn: system '%s' is stopped (%s)", s->id, op);
    return s;
}

static channel *check_channel_handle(lua_State *L, int arg)
{
    return ((channel_handle *)luaL_checkudata(L, arg, CHANNEL_MT))->ch;
}

/* The channel `id` as seen by system s: one it owns or connected to. */
static channel *system_channel_or_error(lua_State *L, sssn_system *s, const char *id, const char *op)
{
    channel *ch = system_channel(s, id);
    if (!ch) {
        if (host_channel(host_of(L), id))
            sssn_error(L, "sssn: channel '%s' is not connected to system '%s' (%s): call self:connect first",
                       id, s->id, op);
        sssn_error(L, "sssn: channel '%s' not found (%s)", id, op);
    }
    return ch;
}

static int channel_error(lua_State *L, int rc, const channel *ch, const char *op)
{
    if (rc == CHANNEL_EKIND) {
        const char *kind = channel_kind_name(ch->kind);
        if (ch->kind == CHANNEL_WORK_QUEUE)
            return sssn_error(L, "sssn: channel '%s' is a work_queue: shared reads are not allowed, "
                                 "use claim_channel (%s)", ch->id, op);
        return sssn_error(L, "sssn: channel '%s' is a %s channel: %s is not allowed on it", ch->id, kind, op);
    }
    return sssn_error(L, "sssn: channel '%s': %s (%s)", ch->id, channel_strerror(rc), op);
}

/* ---- sssn.core functions ---- */

static int l_now(lua_State *L)
{
    lua_pushnumber(L, host_now(host_of(L)));
    return 1;
}

static int l_sleep(lua_State *L)
{
    double s = lua_tonumber(L, 1);
    if (lua_type(L, 1) != LUA_TNUMBER || !(s >= 0 && s <= 1e9))
        return sssn_error(L, "sssn.sleep: seconds must be a number between 0 and 1e9 (got %s)",
                          lua_type(L, 1) == LUA_TNUMBER ? lua_tostring(L, 1) : luaL_typename(L, 1));
    return task_wait_sleep(L, s);
}

static int l_log(lua_State *L)
{
    static const char *const levels[] = {"error", "warn", "info", "debug", NULL};
    const char *name = lua_tostring(L, 1);
    int level = 0;
    while (name && levels[level] && strcmp(levels[level], name) != 0)
        level++;
    if (!name || !levels[level])
        return sssn_error(L, "sssn.log: the level must be \"error\", \"warn\", \"info\" or \"debug\" (got %s)",
                          name ? name : luaL_typename(L, 1));
    const char *msg = luaL_tolstring(L, 2, NULL);
    sssn_system *s = system_current(L);
    host_log(host_of(L), level, s ? s->id : NULL, "%s", msg);
    return 0;
}

static int l_json_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    const char *root = luaL_optstring(L, 2, "value");
    strbuf b = STRBUF_INIT;
    char err[256];
    if (json_encode(L, 1, root, &b, err, sizeof err) < 0) {
        strbuf_free(&b);
        return luaL_error(L, "sssn.json.encode: %s", err);
    }
    vm_push_strbuf(L, &b);
    return 1;
}

static int l_json_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    json_decode(L, s, len);
    return 1;
}

/* ---- checked fields of configuration tables ---- */

/* Refuses any key of the table at t that is not in `known`, naming it and the constructor. */
static void check_known_fields(lua_State *L, int t, const char *ctor, const char *const *known)
{
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            sssn_error(L, "%s: the config has a %s key; fields are named by strings", ctor, luaL_typename(L, -1));
        const char *key = lua_tostring(L, -1);
        size_t i = 0;
        while (known[i] && strcmp(known[i], key) != 0)
            i++;
        if (!known[i]) {
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (size_t k = 0; known[k]; k++) {
                luaL_addstring(&b, k ? ", " : "");
                luaL_addstring(&b, known[k]);
            }
            luaL_pushresult(&b);
            sssn_error(L, "%s: unknown field '%s' (known: %s)", ctor, key, lua_tostring(L, -1));
        }
    }
}

/* t.key as a string, or NULL when absent; anything else is refused, naming the field. */
static const char *opt_string_field(lua_State *L, int t, const char *key, const char *ctor)
{
    int type = lua_getfield(L, t, key);
    if (type == LUA_TNIL)
        return NULL;
    if (type != LUA_TSTRING)
        sssn_error(L, "%s: %s must be a string (got %s)", ctor, key, luaL_typename(L, -1));
    return lua_tostring(L, -1); /* stays on the stack, so it stays alive */
}

/* t.key as a number in [min, max], or def when absent. */
static double opt_number_field(lua_State *L, int t, const char *key, const char *ctor, double def, double min,
                               double max, const char *unit)
{
    int type = lua_getfield(L, t, key);
    double v = lua_tonumber(L, -1);
    if (type == LUA_TNIL) {
        lua_pop(L, 1);
        return def;
    }
    if (type != LUA_TNUMBER || !(v >= min && v <= max)) {
        char range[64];
        snprintf(range, sizeof range, "between %g and %g", min, max);
        sssn_error(L, "%s: %s must be a number of %s %s (got %s)", ctor, key, unit, range,
                   type == LUA_TNUMBER ? lua_tostring(L, -1) : lua_typename(L, type));
    }
    lua_pop(L, 1);
    return v;
}

/* t.id: a string of 1 to SSSN_ID_MAX bytes without control characters. */
static const char *check_id_field(lua_State *L, int t, const char *key, const char *ctor)
{
    const char *id = opt_string_field(L, t, key, ctor);
    if (!id)
        sssn_error(L, "%s: %s is required (a non-empty string)", ctor, key);
    const char *why = sssn_id_problem(id, lua_rawlen(L, -1));
    if (why)
        sssn_error(L, "%s: %s %s", ctor, key, why);
    return id;
}

/* core.channel_new(kind, cfg) -> channel handle. The channel joins the host's table when a
 * system adds it (add_channel); until then its handle owns it, and frees it if collected. */
static int l_channel_new(lua_State *L)
{
    static const char *const fields[] = {"id", "name", "description", "visibility", "capacity", "retention",
                                         "claim_timeout", "max_bytes", "durable", NULL};
    static const char *const periodic_fields[] = {"id", "name", "description", "visibility", "capacity",
                                                  "retention", "claim_timeout", "max_bytes", "durable", "period",
                                                  "pull", NULL};
    host *h = host_of(L);
    channel_config c = {0};
    const char *kind = luaL_checkstring(L, 1);
    if (channel_kind_parse(kind, &c.kind) < 0)
        return sssn_error(L, "sssn: unknown channel kind '%s'", kind);
    char ctor[32];
    snprintf(ctor, sizeof ctor, "sssn.%s", kind);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    check_known_fields(L, 2, ctor, c.kind == CHANNEL_PERIODIC ? periodic_fields : fields);
    c.id = check_id_field(L, 2, "id", ctor);
    c.name = opt_string_field(L, 2, "name", ctor);
    c.description = opt_string_field(L, 2, "description", ctor);
    const char *vis = opt_string_field(L, 2, "visibility", ctor);
    if (vis && strcmp(vis, "public") != 0 && strcmp(vis, "private") != 0)
        return sssn_error(L, "%s: visibility must be \"public\" or \"private\" (got \"%s\")", ctor, vis);
    c.is_public = !vis || strcmp(vis, "public") == 0;
    int type = lua_getfield(L, 2, "capacity");
    if (type != LUA_TNIL) {
        lua_Integer cap = lua_tointeger(L, -1);
        if (!lua_isinteger(L, -1) || cap < 1 || cap > CHANNEL_MAX_CAPACITY)
            return sssn_error(L, "%s: capacity must be an integer between 1 and %d (got %s)", ctor,
                              CHANNEL_MAX_CAPACITY, type == LUA_TNUMBER ? lua_tostring(L, -1) : lua_typename(L, type));
        c.capacity = (size_t)cap;
    }
    lua_pop(L, 1);
    /* a lower byte budget than the host's --channel-bytes; a higher one is capped at it */
    c.max_bytes = (size_t)opt_number_field(L, 2, "max_bytes", ctor, 0, 1, 1e15, "bytes");
    c.retention = opt_number_field(L, 2, "retention", ctor, 0, 0.001, 1e9, "seconds");
    c.claim_timeout = opt_number_field(L, 2, "claim_timeout", ctor, 0, 0.001, 1e9, "seconds");
    type = lua_getfield(L, 2, "durable");
    if (type != LUA_TNIL && type != LUA_TBOOLEAN)
        return sssn_error(L, "%s: durable must be a boolean (got %s)", ctor, lua_typename(L, type));
    int durable = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (c.kind == CHANNEL_PERIODIC) {
        c.period = opt_number_field(L, 2, "period", ctor, 0, 0.001, 1e9, "seconds");
        if (!(c.period > 0))
            return sssn_error(L, "%s: period is required (seconds between pulls, at least 0.001)", ctor);
        if (lua_getfield(L, 2, "pull") != LUA_TFUNCTION)
            return sssn_error(L, "%s: pull must be a function returning the data to write (got %s)", ctor,
                              luaL_typename(L, -1));
    } else {
        lua_pushnil(L);
    }
    if (host_channel(h, c.id)) {
        channel *old = host_channel(h, c.id);
        return sssn_error(L, "sssn: channel '%s' already exists (owned by '%s')", c.id, old->owner ? old->owner : "nobody");
    }
    channel_handle *hd = lua_newuserdatauv(L, sizeof *hd, 1);
    hd->ch = NULL;
    luaL_setmetatable(L, CHANNEL_MT);
    lua_insert(L, -2);
    lua_setiuservalue(L, -2, 1); /* the pull function (or nil) */
    if (durable) {
        char err[1024];
        if (!(hd->ch = host_new_durable_channel(h, &c, err, sizeof err)))
            return sssn_error(L, "%s: durable channel '%s': %s", ctor, c.id, err);
    } else {
        hd->ch = channel_new(&c);
    }
    if (!hd->ch)
        return sssn_error(L, "sssn: out of memory creating channel '%s'", c.id);
    return 1;
}

/* A channel no system added is its handle's to free. */
static int l_channel_gc(lua_State *L)
{
    channel_handle *hd = luaL_checkudata(L, 1, CHANNEL_MT);
    if (hd->ch && !hd->ch->owner)
        channel_free(hd->ch);
    hd->ch = NULL;
    return 0;
}

static int l_channel_index(lua_State *L)
{
    channel *ch = check_channel_handle(L, 1);
    const char *key = luaL_checkstring(L, 2);
    if (strcmp(key, "id") == 0)
        lua_pushstring(L, ch->id);
    else if (strcmp(key, "info") == 0)
        push_channel_info(L, ch);
    else if (strcmp(key, "kind") == 0)
        lua_pushstring(L, channel_kind_name(ch->kind));
    else if (strcmp(key, "name") == 0)
        lua_pushstring(L, ch->name);
    else if (strcmp(key, "stopped") == 0)
        lua_pushboolean(L, ch->stopped);
    else
        lua_pushnil(L);
    return 1;
}

static int l_channel_tostring(lua_State *L)
{
    channel *ch = check_channel_handle(L, 1);
    lua_pushfstring(L, "channel<%s '%s'>", channel_kind_name(ch->kind), ch->id);
    return 1;
}

static void push_channel_stats(lua_State *L, const channel *ch)
{
    lua_createtable(L, 0, 8);
    lua_pushinteger(L, (lua_Integer)ch->writes);
    lua_setfield(L, -2, "writes");
    lua_pushinteger(L, (lua_Integer)ch->reads);
    lua_setfield(L, -2, "reads");
    lua_pushinteger(L, (lua_Integer)ch->dropped);
    lua_setfield(L, -2, "dropped");
    lua_pushinteger(L, (lua_Integer)ch->count);
    lua_setfield(L, -2, "held");
    lua_pushinteger(L, (lua_Integer)channel_pending(ch));
    lua_setfield(L, -2, "pending");
    lua_pushinteger(L, (lua_Integer)channel_last_seq(ch));
    lua_setfield(L, -2, "last_seq");
    lua_pushinteger(L, (lua_Integer)ch->acked);
    lua_setfield(L, -2, "acked");
    lua_pushboolean(L, ch->stopped);
    lua_setfield(L, -2, "stopped");
}

static int l_channel_stats(lua_State *L)
{
    host *h = host_of(L);
    const char *id = luaL_checkstring(L, 1);
    channel *ch = host_channel(h, id);
    if (!ch)
        return sssn_error(L, "sssn: channel '%s' not found (channel_stats)", id);
    channel_sync(ch); /* what a writer deferred (the registry's expired events) is counted */
    push_channel_stats(L, ch);
    return 1;
}

static int l_channel_exists(lua_State *L)
{
    lua_pushboolean(L, host_channel(host_of(L), luaL_checkstring(L, 1)) != NULL);
    return 1;
}

/* core.add_channel(sys, ch) */
static int l_add_channel(lua_State *L)
{
    sssn_system *s = check_live_system(L, 1, "add_channel");
    channel_handle *hd = luaL_checkudata(L, 2, CHANNEL_MT);
    channel *ch = hd->ch;
    if (ch->owner && strcmp(ch->owner, s->id) != 0)
        return sssn_error(L, "sssn: channel '%s' is already owned by '%s' (add_channel)", ch->id, ch->owner);
    if (ch->stopped)
        return sssn_error(L, "sssn: channel '%s' is stopped (add_channel)", ch->id);
    if (ch->owner)
        return 0; /* already ours */
    host *h = host_of(L);
    channel *taken = host_channel(h, ch->id);
    if (taken)
        return sssn_error(L, "sssn: channel '%s' already exists (owned by '%s') (add_channel)", ch->id,
                          taken->owner ? taken->owner : "nobody");
    char *owner = strdup(s->id);
    if (!owner || host_add_channel(h, ch) < 0) {
        free(owner);
        return sssn_error(L, "sssn: out of memory (add_channel)");
    }
    if (hashmap_put(s->channels, ch->id, ch) < 0) {
        hashmap_remove(h->channels, ch->id);
        free(owner);
        return sssn_error(L, "sssn: out of memory (add_channel)");
    }
    ch->owner = owner; /* from now on the host owns the channel, not the handle */
    channel_set_account(ch, &s->vm->heap.bytes, &s->vm->heap.limit); /* its log counts against s's limit */
    if (ch->kind == CHANNEL_PERIODIC) {
        lua_getiuservalue(L, 2, 1);
        if (system_add_periodic(s, ch, L) < 0)
            return sssn_error(L, "sssn: cannot start the pull of channel '%s'", ch->id);
    }
    return 0;
}

/* core.connect(sys, id) -> info */
static int l_connect(lua_State *L)
{
    sssn_system *s = check_live_system(L, 1, "connect");
    const char *id = luaL_checkstring(L, 2);
    channel *ch = host_channel(host_of(L), id);
    if (!ch)
        return sssn_error(L, "sssn: channel '%s' not found (connect)", id);
    if (hashmap_put(s->channels, ch->id, ch) < 0)
        return sssn_error(L, "sssn: out of memory (connect)");
    push_channel_info(L, ch);
    return 1;
}

/* core.write(sys, id, data, metadata, correlation_id, reply_to, recipient_id) -> id, seq
 * Every argument is checked before anything is allocated: nothing here may raise while it
 * holds C memory. */
static int l_write(lua_State *L)
{
    sssn_system *s = check_live_system(L, 1, "write_channel");
    const char *id = luaL_checkstring(L, 2);
    host *h = host_of(L);
    channel *ch = system_channel_or_error(L, s, id, "write_channel");
    if (ch->owner && strcmp(ch->owner, HOST_OWNER) == 0)
        return sssn_error(L, "sssn: channel '%s' is read-only (write_channel)", id);
    if (!lua_isnoneornil(L, 4) && lua_type(L, 4) != LUA_TTABLE)
        return sssn_error(L, "sssn: opts.metadata must be a table (got %s) (write_channel)", luaL_typename(L, 4));
    static const char *const routing[] = {"correlation_id", "reply_to", "recipient_id"};
    const char *route[3];
    for (int i = 0; i < 3; i++) {
        int arg = 5 + i;
        if (!lua_isnoneornil(L, arg) && lua_type(L, arg) != LUA_TSTRING)
            return sssn_error(L, "sssn: opts.%s must be a string (got %s) (write_channel)", routing[i],
                              luaL_typename(L, arg));
        route[i] = lua_tostring(L, arg);
    }
    char err[256];
    strbuf meta = STRBUF_INIT;
    if (!lua_isnoneornil(L, 4) && json_encode(L, 4, "metadata", &meta, err, sizeof err) < 0) {
        strbuf_free(&meta);
        return sssn_error(L, "sssn: %s (write_channel '%s')", err, id);
    }
    strbuf *b = &h->scratch;
    strbuf_reset(b);
    if (json_encode(L, 3, "data", b, err, sizeof err) < 0 || !b->data) {
        strbuf_free(&meta);
        return sssn_error(L, "sssn: %s (write_channel '%s')", b->data ? err : "out of memory", id);
    }
    message_in in = {
        .sender_id = s->id,
        .data_json = b->data,
        .data_len = b->len,
        .metadata_json = meta.data,
        .correlation_id = route[0],
        .reply_to = route[1],
        .recipient_id = route[2],
    };
    const message *m;
    int rc = channel_write(ch, &in, host_now(h), &m);
    size_t size = message_in_size(&in), limit = 0;
    int big = rc == CHANNEL_ETOOBIG && channel_size_problem(ch, &in, &size, &limit);
    strbuf_free(&meta);
    if (b->cap > h->cfg.max_message_size + 65536)
        strbuf_free(b); /* a huge encoding is not kept for the next write */
    if (big)
        return sssn_error(L, "sssn: the message is %I bytes, more than the %I a message of channel '%s' may "
                             "have (write_channel)", (LUAI_UACINT)size, (LUAI_UACINT)limit, id);
    if (rc == CHANNEL_EFULL && ch->kind != CHANNEL_WORK_QUEUE)
        return sssn_error(L, "sssn: channel '%s' is full: its owner '%s' has no room left for %I bytes under "
                             "its memory limit (write_channel)", id, ch->owner ? ch->owner : "?", (LUAI_UACINT)size);
    if (rc != CHANNEL_OK)
        return channel_error(L, rc, ch, "write_channel");
    lua_pushstring(L, m->id);
    lua_pushinteger(L, (lua_Integer)m->seq);
    return bind_durable_return(L, ch, 2, "write_channel"); /* a durable write returns once committed */
}

/* An optional integer option in [min, max]; the error names it and the operation. */
static lua_Integer opt_integer(lua_State *L, int arg, const char *name, const char *op, lua_Integer def,
                               lua_Integer min, lua_Integer max)
{
    if (lua_isnoneornil(L, arg))
        return def;
    int isint;
    lua_Integer n = lua_tointegerx(L, arg, &isint);
    if (!isint || n < min || n > max)
        sssn_error(L, "sssn: opts.%s must be an integer between %I and %I (got %s) (%s)", name, (LUAI_UACINT)min,
                   (LUAI_UACINT)max, lua_type(L, arg) == LUA_TNUMBER ? lua_tostring(L, arg) : luaL_typename(L, arg), op);
    return n;
}

static size_t check_limit(lua_State *L, int arg, const char *op)
{
    return (size_t)opt_integer(L, arg, "limit", op, 100, 1, 100000);
}

/* core.read(sys, id, limit, after) -> messages, missed */
static int l_read(lua_State *L)
{
    sssn_system *s = check_live_system(L, 1, "read_channel");
    const char *id = luaL_checkstring(L, 2);
    channel *ch = system_channel_or_error(L, s, id, "read_channel");
    size_t limit = check_limit(L, 3, "read_channel");
    int has_after = !lua_isnoneornil(L, 4);
    lua_Integer after = opt_integer(L, 4, "after", "read_channel", 0, 0, LUA_MAXINTEGER);
    channel_batch b;
    int rc = channel_read(ch, s->id, limit, has_after, (uint64_t)after, host_now(host_of(L)), &b);
    if (rc != CHANNEL_OK)
        return channel_error(L, rc, ch, "read_channel");
    uint64_t missed = b.missed;
    vm_push_batch_then_free(L, &b);
    lua_pushinteger(L, (lua_Integer)missed);
    return 2;
}

/* core.claim(sys, id, limit) -> messages */
static int l_claim(lua_State *L)
{
    sssn_system *s = check_live_system(L, 1, "claim_channel");
    const char *id = luaL_checkstring(L, 2);
    channel *ch = system_channel_or_error(L, s, id, "claim_channel");
    size_t limit = check_limit(L, 3, "claim_channel");
    channel_batch b;
    int rc = channel_claim(ch, s->id, limit, host_now(host_of(L)), &b);
    if (rc != CHANNEL_OK)
        return channel_error(L, rc, ch, "claim_channel (an exclusive read)");
    vm_push_batch_then_free(L, &b);
    return bind_durable_return(L, ch, 1, "claim_channel");
}

static int ack_or_nack(lua_State *L, int nack)
{
    const char *op = nack ? "nack_channel" : "acknowledge_channel";
    sssn_system *s = check_live_system(L, 1, op);
    const char *id = luaL_checkstring(L, 2);
    channel *ch = system_channel_or_error(L, s, id, op);
    if (lua_type(L, 3) != LUA_TTABLE)
        return sssn_error(L, "sssn: the message ids must be a list (got %s) (%s)", luaL_typename(L, 3), op);
    size_t n = lua_rawlen(L, 3);
    if (n > 100000)
        return sssn_error(L, "sssn: at most 100000 message ids at once (got %d) (%s)", (int)n, op);
    const char **ids = lua_newuserdatauv(L, (n ? n : 1) * sizeof *ids, 0); /* freed by the GC */
    for (size_t i = 0; i < n; i++) {
        /* an id, or a message as claim_channel returned it (its id is taken) */
        if (lua_rawgeti(L, 3, (lua_Integer)i + 1) == LUA_TTABLE) {
            lua_pushliteral(L, "id");
            lua_rawget(L, -2);
            lua_remove(L, -2);
        }
        if (lua_type(L, -1) != LUA_TSTRING)
            return sssn_error(L, "sssn: message ids must be strings or messages (%s, item %d)", op, (int)i + 1);
        ids[i] = lua_tostring(L, -1);
        lua_pop(L, 1); /* the string stays alive in the table at arg 3, or in the message there */
    }
    double now = host_now(host_of(L));
    int rc = nack ? channel_nack(ch, s->id, ids, n, now) : channel_ack(ch, s->id, ids, n, now);
    if (rc < 0)
        return channel_error(L, rc, ch, op);
    lua_pushinteger(L, rc);
    return nack ? 1 : bind_durable_return(L, ch, 1, op); /* acknowledged work must not come back */
}

static int l_ack(lua_State *L) { return ack_or_nack(L, 0); }
static int l_nack(lua_State *L) { return ack_or_nack(L, 1); }

/* core.subscribe(sys, id, fn) */
static int l_subscribe(lua_State *L)
{
    sssn_system *s = check_live_system(L, 1, "subscribe_channel");
    const char *id = luaL_checkstring(L, 2);
    if (lua_type(L, 3) != LUA_TFUNCTION)
        return sssn_error(L, "sssn: subscribe_channel needs a function to call with each message (got %s)",
                          luaL_typename(L, 3));
    channel *ch = system_channel_or_error(L, s, id, "subscribe_channel");
    if (ch->kind == CHANNEL_WORK_QUEUE)
        return sssn_error(L, "sssn: channel '%s' is a work_queue: subscribe is a shared read, use claim_channel", id);
    lua_settop(L, 3);
    if (system_subscribe(s, ch, L) < 0)
        return sssn_error(L, "sssn: out of memory (subscribe_channel)");
    return 0;
}

static int l_unsubscribe(lua_State *L)
{
    sssn_system *s = check_system(L, 1);
    system_unsubscribe(s, luaL_checkstring(L, 2));
    return 0;
}

/* core.sys_channels(sys) -> owned ids, connected ids (both sorted) */
static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static int l_sys_channels(lua_State *L)
{
    sssn_system *s = check_system(L, 1);
    size_t n = hashmap_count(s->channels), no = 0, nc = 0;
    const char **owned = lua_newuserdatauv(L, (n + 1) * sizeof *owned, 0);
    const char **conn = lua_newuserdatauv(L, (n + 1) * sizeof *conn, 0);
    hashmap_iter it;
    const char *key;
    void *v;
    hashmap_iter_init(s->channels, &it);
    while (hashmap_iter_next(s->channels, &it, &key, &v)) {
        channel *ch = v;
        if (ch->owner && strcmp(ch->owner, s->id) == 0)
            owned[no++] = key;
        else
            conn[nc++] = key;
    }
    qsort(owned, no, sizeof *owned, cmp_str);
    qsort(conn, nc, sizeof *conn, cmp_str);
    lua_createtable(L, (int)no, 0);
    for (size_t i = 0; i < no; i++) {
        lua_pushstring(L, owned[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_createtable(L, (int)nc, 0);
    for (size_t i = 0; i < nc; i++) {
        lua_pushstring(L, conn[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 2;
}

static void set_int_field(lua_State *L, const char *key, uint64_t v)
{
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, key);
}

static int l_sys_stats(lua_State *L)
{
    system_handle *hd = luaL_checkudata(L, 1, SYSTEM_MT);
    sssn_system *s = hd->s;
    static const char *const states[] = {"setup", "running", "stopped"};
    lua_createtable(L, 0, 10);
    vm_set_string_field(L, "id", s->id);
    vm_set_string_field(L, "state", states[s->state]);
    set_int_field(L, "steps", s->steps);
    set_int_field(L, "errors", s->errors);
    set_int_field(L, "overruns", s->overruns);
    set_int_field(L, "tasks", s->vm->task_ids);
    set_int_field(L, "memory", s->vm->heap.bytes);
    set_int_field(L, "memory_peak", s->vm->heap.peak);
    set_int_field(L, "memory_limit", s->vm->heap.limit);
    lua_pushnumber(L, s->tick_rate);
    lua_setfield(L, -2, "tick_rate");
    return 1;
}

static int l_sys_stop(lua_State *L)
{
    system_handle *hd = luaL_checkudata(L, 1, SYSTEM_MT);
    system_stop(hd->s, "stopped by request");
    return 0;
}

static int l_host_stats(lua_State *L)
{
    host *h = host_of(L);
    lua_createtable(L, 0, 8);
    set_int_field(L, "systems", h->nrunning);
    set_int_field(L, "steps", h->steps);
    set_int_field(L, "step_errors", h->step_errors);
    set_int_field(L, "overruns", h->overruns);
    set_int_field(L, "channels", hashmap_count(h->channels));
    set_int_field(L, "registry_channels", registry_count(h->reg, REG_CHANNEL));
    set_int_field(L, "registry_systems", registry_count(h->reg, REG_SYSTEM));
    set_int_field(L, "registry_expired", registry_expired_total(h->reg));
    regbackend_etcd_counts etcd;
    regbackend_etcd_stats(h->backend, &etcd);
    if (etcd.is_etcd) { /* "ok", or "unreachable": queries are answered from the cache (stale) */
        lua_pushstring(L, etcd.reachable && etcd.synced ? "ok" : "unreachable");
        lua_setfield(L, -2, "etcd");
    }
    lua_pushnumber(L, h->cfg.ttl);
    lua_setfield(L, -2, "ttl");
    lua_pushnumber(L, h->cfg.started_at);
    lua_setfield(L, -2, "started_at");
    lua_pushnumber(L, host_lateness_percentile(h, 50) * 1e6);
    lua_setfield(L, -2, "tick_lateness_p50_us");
    lua_pushnumber(L, host_lateness_percentile(h, 99) * 1e6);
    lua_setfield(L, -2, "tick_lateness_p99_us");
    set_int_field(L, "tick_samples", h->lateness_count);
    return 1;
}

static int l_lateness_reset(lua_State *L)
{
    host_lateness_reset(host_of(L));
    return 0;
}

/* Real time, whatever the test clock says (for measuring). */
static int l_walltime(lua_State *L)
{
    lua_pushnumber(L, ev_time());
    return 1;
}

/* ---- test-only: the clock and systems under test (`sssn-host test`) ---- */

static int l_clock_set(lua_State *L)
{
    timer_clock_set(host_of(L)->rt, luaL_checknumber(L, 1));
    return 0;
}

static int l_clock_advance(lua_State *L)
{
    double dt = luaL_checknumber(L, 1);
    luaL_argcheck(L, dt >= 0, 1, "the clock only moves forward");
    if (task_current(L))
        return luaL_error(L, "sssn.clock.advance cannot be called from inside a system task");
    timer_clock_advance(host_of(L)->rt, dt);
    return 0;
}

static int l_clock_real(lua_State *L)
{
    timer_clock_real(host_of(L)->rt);
    return 0;
}

static int l_run_pending(lua_State *L)
{
    lua_pushinteger(L, defer_run(host_of(L)->rt, 1000000));
    return 1;
}

static void on_run_for_done(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    *(int *)w->data = 1;
    ev_break(loop, EVBREAK_ONE);
}

/* Runs the real loop for `seconds` (specs that need real time, e.g. for processes). */
static int l_run_for(lua_State *L)
{
    host *h = host_of(L);
    double secs = luaL_checknumber(L, 1);
    if (task_current(L))
        return luaL_error(L, "sssn.testing.run_for cannot be called from inside a system task");
    int done = 0;
    ev_timer t;
    ev_timer_init(&t, on_run_for_done, secs > 0 ? secs : 0, 0);
    t.data = &done;
    ev_now_update(h->rt->loop);
    ev_timer_start(h->rt->loop, &t);
    while (!done)
        ev_run(h->rt->loop, EVRUN_ONCE);
    ev_timer_stop(h->rt->loop, &t);
    return 0;
}

/* core.spawn{source=, file=, id=, memory_limit=, step_timeout=} -> system handle (setup already run) */
static int l_spawn(lua_State *L)
{
    host *h = host_of(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "source");
    lua_getfield(L, 1, "file");
    lua_getfield(L, 1, "id");
    lua_getfield(L, 1, "memory_limit");
    lua_getfield(L, 1, "step_timeout");
    size_t len;
    const char *source = lua_tolstring(L, 2, &len);
    const char *file = lua_tostring(L, 3);
    const char *id = luaL_optstring(L, 4, "spawned");
    lua_Integer limit = luaL_optinteger(L, 5, (lua_Integer)h->cfg.memory_limit);
    if (!source && !file)
        return luaL_error(L, "sssn.testing.spawn needs source or file");
    sssn_system *s = source ? system_load_string(h, source, len, id, id, (size_t)limit, NULL)
                            : system_load_file(h, file);
    if (!s)
        return luaL_error(L, "sssn.testing.spawn: the system did not load (see the log above)");
    if (!lua_isnil(L, 6))
        s->vm->watchdog_limit = luaL_checknumber(L, 6);
    system_start(s);
    system_push_handle(L, s);
    return 1;
}

/* core.attach(id, name) -> system handle bound to this state, never ticked */
static int l_attach(lua_State *L)
{
    size_t len;
    const char *id = luaL_checklstring(L, 1, &len);
    const char *why = sssn_id_problem(id, len);
    if (why)
        return sssn_error(L, "sssn.testing.system: the id %s", why);
    if (system_find(host_of(L), id))
        return sssn_error(L, "sssn: a system with id '%s' is already running", id);
    sssn_system *s = system_attach(vm_of(L), id, luaL_optstring(L, 2, id));
    if (!s)
        return sssn_error(L, "sssn: out of memory (attach)");
    system_push_handle(L, s);
    return 1;
}

/* A TCP port on 127.0.0.1 that was free a moment ago (for specs that start hosts). */
static int l_free_port(lua_State *L)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
        if (fd >= 0)
            close(fd);
        return luaL_error(L, "sssn.testing.free_port: no port available");
    }
    close(fd);
    lua_pushinteger(L, ntohs(sa.sin_port));
    return 1;
}

/* core.current_system() -> the table of the system the caller acts for, or nil */
static int l_current_system(lua_State *L)
{
    sssn_system *s = system_current(L);
    if (!s || s->self_ref == LUA_NOREF)
        lua_pushnil(L);
    else
        lua_rawgeti(L, LUA_REGISTRYINDEX, s->self_ref);
    return 1;
}

/* core.system_handle() -> the handle of the system the caller acts for, or nil */
static int l_system_handle(lua_State *L)
{
    sssn_system *s = system_current(L);
    if (!s)
        lua_pushnil(L);
    else
        system_push_handle(L, s);
    return 1;
}

/* core.spawn(fn, ...) -> runs fn as a background coroutine of the calling system: it may wait,
 * and ends when the system stops. */
static int l_spawn_task(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    sssn_system *s = system_current(L);
    if (!s)
        return sssn_error(L, "sssn: spawn needs a system to run for");
    if (s->state == SYS_STOPPED)
        return sssn_error(L, "sssn: system '%s' is stopped (spawn)", s->id);
    vm *v = vm_of(L);
    int n = lua_gettop(L);
    lua_xmove(L, v->L, n); /* tasks start from the state's main thread */
    task *t = task_new(v, s, s->id, TASK_CALL, n - 1, NULL, NULL);
    if (!t)
        return sssn_error(L, "sssn: cannot start a coroutine (spawn)");
    uint64_t id = t->id;
    task_start(t); /* it may end here: t is not touched again */
    lua_pushinteger(L, (lua_Integer)id);
    return 1;
}

/* core.cancel(id): ends a coroutine started by spawn where it waits; false if it is over. */
static int l_cancel_task(lua_State *L)
{
    vm *v = vm_of(L);
    task *t = task_find(v, (uint64_t)luaL_checkinteger(L, 1));
    if (!t || t == task_current(L)) {
        lua_pushboolean(L, 0);
        return 1;
    }
    task_cancel(t);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_array(lua_State *L)
{
    if (lua_isnoneornil(L, 1))
        lua_newtable(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_setmetatable(L, JSON_ARRAY_MT);
    return 1;
}

static const luaL_Reg core_funcs[] = {
    {"now", l_now},
    {"sleep", l_sleep},
    {"log", l_log},
    {"json_encode", l_json_encode},
    {"json_decode", l_json_decode},
    {"array", l_array},
    {"channel_new", l_channel_new},
    {"channel_stats", l_channel_stats},
    {"channel_exists", l_channel_exists},
    {"add_channel", l_add_channel},
    {"connect", l_connect},
    {"write", l_write},
    {"read", l_read},
    {"claim", l_claim},
    {"ack", l_ack},
    {"nack", l_nack},
    {"subscribe", l_subscribe},
    {"unsubscribe", l_unsubscribe},
    {"sys_channels", l_sys_channels},
    {"sys_stats", l_sys_stats},
    {"sys_stop", l_sys_stop},
    {"host_stats", l_host_stats},
    {"current_system", l_current_system},
    {"spawn", l_spawn_task},
    {"cancel", l_cancel_task},
    {"system_handle", l_system_handle},
    {NULL, NULL},
};

/* core.testing.log(clear) -> the log lines captured since the last clear ("" without capture) */
static int l_captured_log(lua_State *L)
{
    strbuf *b = host_of(L)->rt->log_capture;
    lua_pushlstring(L, b && b->data ? b->data : "", b ? b->len : 0);
    if (b && lua_toboolean(L, 1))
        strbuf_reset(b);
    return 1;
}

static const luaL_Reg testing_funcs[] = {
    {"log", l_captured_log},
    {"clock_set", l_clock_set},
    {"clock_advance", l_clock_advance},
    {"clock_real", l_clock_real},
    {"run_pending", l_run_pending},
    {"run_for", l_run_for},
    {"spawn", l_spawn},
    {"attach", l_attach},
    {"free_port", l_free_port},
    {"lateness_reset", l_lateness_reset},
    {"walltime", l_walltime},
    {NULL, NULL},
};

int luaopen_sssn_core(lua_State *L)
{
    luaL_newmetatable(L, CHANNEL_MT);
    lua_pushcfunction(L, l_channel_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_channel_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, l_channel_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    luaL_newmetatable(L, JSON_ARRAY_MT);
    lua_pushstring(L, "array");
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);

    luaL_newlib(L, core_funcs);
    lua_api_register(L);
    lua_registry_register(L);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    luaL_getmetatable(L, JSON_ARRAY_MT);
    lua_setfield(L, -2, "array_mt");
    lua_pushstring(L, SSSN_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushstring(L, HOST_OWNER);
    lua_setfield(L, -2, "host_owner");
    if (host_of(L)->cfg.test_mode) {
        luaL_newlib(L, testing_funcs);
        test_support_register(L);
        char exe[4096];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        lua_pushlstring(L, exe, n > 0 ? (size_t)n : 0);
        lua_setfield(L, -2, "exe");
        lua_setfield(L, -2, "testing");
    }
    return 1;
}
