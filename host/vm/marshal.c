/* marshal.c - what the model holds, as Lua values (see marshal.h). */
#include "vm/marshal.h"

#include <lauxlib.h>
#include <string.h>

#include "core/json.h"

void vm_set_string_field(lua_State *L, const char *key, const char *value)
{
    if (value) {
        lua_pushstring(L, value);
        lua_setfield(L, -2, key);
    }
}

/* Decoded entries are cached per state, per kind: cache[id] -> table (weak values) and
 * versions[table] -> entry version (weak keys). A lookup of an unchanged entry returns the
 * same table without decoding; registry results are therefore shared, read-only snapshots. */
static const char entry_cache_key[2] = {'c', 's'};

/* Pushes the caches table {ids, versions} of a kind, creating it on first use. */
void vm_push_entry_caches(lua_State *L, reg_kind kind)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &entry_cache_key[kind]) == LUA_TTABLE)
        return;
    lua_pop(L, 1);
    lua_createtable(L, 2, 0);
    for (int i = 1; i <= 2; i++) {
        lua_newtable(L);
        lua_createtable(L, 0, 1);
        lua_pushstring(L, i == 1 ? "v" : "k");
        lua_setfield(L, -2, "__mode");
        lua_setmetatable(L, -2);
        lua_rawseti(L, -2, i);
    }
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &entry_cache_key[kind]);
}

/* With the caches' ids table at `ids` and versions table at `vers` (absolute indexes). */
void vm_push_entry_at(lua_State *L, const reg_entry *e, int ids, int vers)
{
    luaL_checkstack(L, 4, "registry entry");
    lua_pushstring(L, e->id);
    if (lua_rawget(L, ids) == LUA_TTABLE) {
        lua_pushvalue(L, -1);
        if (lua_rawget(L, vers) == LUA_TNUMBER && (uint64_t)lua_tointeger(L, -1) == e->version) {
            lua_pop(L, 1);
            return;
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    json_decode(L, e->json, e->json_len);
    lua_pushnumber(L, e->expires_at);
    lua_setfield(L, -2, "expires_at");
    lua_pushstring(L, e->id);
    lua_pushvalue(L, -2);
    lua_rawset(L, ids);
    lua_pushvalue(L, -1);
    lua_pushinteger(L, (lua_Integer)e->version);
    lua_rawset(L, vers);
}

void vm_push_entry(lua_State *L, const reg_entry *e)
{
    luaL_checkstack(L, 8, "registry entry");
    vm_push_entry_caches(L, e->kind);
    int caches = lua_gettop(L);
    lua_rawgeti(L, caches, 1);
    lua_rawgeti(L, caches, 2);
    vm_push_entry_at(L, e, caches + 1, caches + 2);
    lua_replace(L, caches);
    lua_settop(L, caches);
}

static int push_strbuf_protected(lua_State *L)
{
    strbuf *b = lua_touserdata(L, 1);
    lua_pushlstring(L, b->data, b->len);
    return 1;
}

void vm_push_strbuf(lua_State *L, strbuf *b)
{
    if (!b->data || strbuf_failed(b)) { /* a text cut short by a failed append is never used */
        strbuf_free(b);
        luaL_error(L, "sssn: out of memory");
    }
    lua_pushcfunction(L, push_strbuf_protected);
    lua_pushlightuserdata(L, b);
    int st = lua_pcall(L, 1, 1, 0);
    strbuf_free(b);
    if (st != LUA_OK)
        lua_error(L);
}

