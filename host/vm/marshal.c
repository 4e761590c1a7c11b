/* marshal.c - what the model holds, as Lua values (see marshal.h). */
#include "vm/marshal.h"

#include <lauxlib.h>
#include <stdint.h>
#include <string.h>

#include "core/json.h"

void vm_set_string_field(lua_State *L, const char *key, const char *value)
{
    if (value) {
        lua_pushstring(L, value);
        lua_setfield(L, -2, key);
    }
}

/* Decoded entries are cached per state, per kind, strongly (a weak cache is emptied by every
 * collection, and lookups cycling over more ids than one cycle holds then decode each time):
 * ids[id] -> table, vers[id] -> entry version. A lookup returns the cached table only when the
 * entry's version is the one it was decoded at (registry versions change with every change of
 * content or expiry and are never reused), so a changed entry is decoded again and a removed
 * one, which the registry no longer returns, is dropped when it is looked up. Registry results
 * are therefore shared, read-only snapshots. The cache is bounded: at most CACHE_MAX_ENTRIES
 * entries and CACHE_MAX_BYTES of their JSON text per kind, the oldest decoded going first (a
 * ring of slots: slots[id] -> slot, ring[slot] -> id, and the bookkeeping in a userdata that
 * grows as the cache fills, so a state that looks up little pays little). */
#define CACHE_MAX_ENTRIES 4096
#define CACHE_MAX_BYTES ((size_t)1 << 20)
#define CACHE_FIRST_SLOTS 64

enum { C_IDS = 1, C_VERS, C_SLOTS, C_RING, C_META };

typedef struct cache_meta {
    uint32_t cap, first, count; /* the ring: `count` slots from `first` (holes included) */
    size_t bytes;               /* charged for the entries held */
    uint32_t size[];            /* per slot: bytes charged, 0 for a hole */
} cache_meta;

static const char entry_cache_key[2] = {'c', 's'};

/* Pushes the caches table {ids, vers, slots, ring} of a kind, creating it on first use. */
void vm_push_entry_caches(lua_State *L, reg_kind kind)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &entry_cache_key[kind]) == LUA_TTABLE)
        return;
    lua_pop(L, 1);
    lua_createtable(L, C_META, 0);
    for (int i = C_IDS; i <= C_RING; i++) {
        lua_newtable(L);
        lua_rawseti(L, -2, i);
    }
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &entry_cache_key[kind]);
}

/* The caches' bookkeeping with room for one more slot (grown, or the oldest slot freed). */
static cache_meta *cache_room(lua_State *L, int caches)
{
    lua_rawgeti(L, caches, C_META);
    cache_meta *m = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (m && m->count < m->cap)
        return m;
    if (!m || m->cap < CACHE_MAX_ENTRIES) {
        uint32_t cap = m ? m->cap * 2 : CACHE_FIRST_SLOTS;
        cache_meta *g = lua_newuserdatauv(L, sizeof *g + cap * sizeof g->size[0], 0);
        *g = (cache_meta){.cap = cap};
        lua_createtable(L, (int)cap, 0);
        int ring = lua_gettop(L);
        lua_rawgeti(L, caches, C_RING);
        /* unroll the old ring into slots 0..count-1 of the new one */
        for (uint32_t i = 0; m && i < m->count; i++) {
            uint32_t from = (m->first + i) % m->cap;
            g->size[i] = m->size[from];
            lua_rawgeti(L, -1, (lua_Integer)from + 1);
            if (lua_type(L, -1) == LUA_TSTRING) {
                lua_pushvalue(L, -1);
                lua_rawseti(L, ring, (lua_Integer)i + 1);
                lua_rawgeti(L, caches, C_SLOTS);
                lua_insert(L, -2);
                lua_pushinteger(L, (lua_Integer)i);
                lua_rawset(L, -3);
                lua_pop(L, 1);
            } else {
                lua_pop(L, 1);
                lua_pushboolean(L, 0);
                lua_rawseti(L, ring, (lua_Integer)i + 1);
            }
        }
        if (m) {
            g->count = m->count;
            g->bytes = m->bytes;
        }
        lua_pop(L, 1);
        lua_rawseti(L, caches, C_RING);
        lua_rawseti(L, caches, C_META);
        return g;
    }
    return m; /* full at its largest: the caller frees the oldest */
}

/* Frees the slot of the entry `id` (at index key) when it has one: the cache forgets it. */
static void cache_forget(lua_State *L, int caches, int key)
{
    lua_rawgeti(L, caches, C_SLOTS);
    lua_pushvalue(L, key);
    if (lua_rawget(L, -2) != LUA_TNUMBER) {
        lua_pop(L, 2);
        return;
    }
    uint32_t slot = (uint32_t)lua_tointeger(L, -1);
    lua_pop(L, 1);
    lua_pushvalue(L, key);
    lua_pushnil(L);
    lua_rawset(L, -3); /* slots[id] = nil */
    lua_pop(L, 1);
    for (int t = C_IDS; t <= C_VERS; t++) {
        lua_rawgeti(L, caches, t);
        lua_pushvalue(L, key);
        lua_pushnil(L);
        lua_rawset(L, -3);
        lua_pop(L, 1);
    }
    lua_rawgeti(L, caches, C_RING);
    lua_pushboolean(L, 0);
    lua_rawseti(L, -2, (lua_Integer)slot + 1);
    lua_pop(L, 1);
    lua_rawgeti(L, caches, C_META);
    cache_meta *m = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (m && slot < m->cap) {
        m->bytes -= m->size[slot];
        m->size[slot] = 0;
    }
}

/* Frees the oldest slot (a hole or an entry). */
static void cache_drop_oldest(lua_State *L, int caches, cache_meta *m)
{
    lua_rawgeti(L, caches, C_RING);
    if (lua_rawgeti(L, -1, (lua_Integer)m->first + 1) == LUA_TSTRING)
        cache_forget(L, caches, lua_gettop(L));
    lua_pop(L, 2);
    m->first = (m->first + 1) % m->cap;
    m->count--;
}

/* Caches the decoded entry on top of the stack under the id at index key. */
static void cache_store(lua_State *L, int caches, int key, const reg_entry *e)
{
    size_t charge = e->json_len + strlen(e->id) + 64;
    cache_forget(L, caches, key); /* a changed entry: its old slot goes */
    if (charge > CACHE_MAX_BYTES)
        return;
    cache_meta *m = cache_room(L, caches);
    while (m->count && (m->count == m->cap || m->bytes + charge > CACHE_MAX_BYTES))
        cache_drop_oldest(L, caches, m);
    uint32_t slot = (m->first + m->count) % m->cap;
    m->count++;
    m->size[slot] = (uint32_t)charge;
    m->bytes += charge;
    lua_rawgeti(L, caches, C_RING);
    lua_pushvalue(L, key);
    lua_rawseti(L, -2, (lua_Integer)slot + 1);
    lua_rawgeti(L, caches, C_SLOTS);
    lua_pushvalue(L, key);
    lua_pushinteger(L, (lua_Integer)slot);
    lua_rawset(L, -3);
    lua_rawgeti(L, caches, C_VERS);
    lua_pushvalue(L, key);
    lua_pushinteger(L, (lua_Integer)e->version);
    lua_rawset(L, -3);
    lua_rawgeti(L, caches, C_IDS);
    lua_pushvalue(L, key);
    lua_pushvalue(L, -6); /* the entry */
    lua_rawset(L, -3);
    lua_pop(L, 4);
}

void vm_push_entry_at(lua_State *L, const reg_entry *e, int key, int ids, int vers, int caches)
{
    luaL_checkstack(L, 10, "registry entry");
    int pushed = !key;
    if (pushed) {
        lua_pushstring(L, e->id);
        key = lua_gettop(L);
    }
    lua_pushvalue(L, key);
    if (lua_rawget(L, vers) == LUA_TNUMBER && (uint64_t)lua_tointeger(L, -1) == e->version) {
        lua_pop(L, 1);
        lua_pushvalue(L, key);
        lua_rawget(L, ids);
        if (pushed)
            lua_remove(L, key);
        return;
    }
    lua_pop(L, 1);
    json_decode(L, e->json, e->json_len);
    lua_pushnumber(L, e->expires_at);
    lua_setfield(L, -2, "expires_at");
    cache_store(L, caches, key, e);
    if (pushed)
        lua_remove(L, key);
}

void vm_forget_entry(lua_State *L, int key, int vers, int caches)
{
    lua_pushvalue(L, key);
    int held = lua_rawget(L, vers) != LUA_TNIL;
    lua_pop(L, 1);
    if (held)
        cache_forget(L, caches, key);
}

void vm_push_entry(lua_State *L, const reg_entry *e)
{
    luaL_checkstack(L, 8, "registry entry");
    vm_push_entry_caches(L, e->kind);
    int caches = lua_gettop(L);
    lua_rawgeti(L, caches, C_IDS);
    lua_rawgeti(L, caches, C_VERS);
    vm_push_entry_at(L, e, 0, caches + 1, caches + 2, caches);
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

