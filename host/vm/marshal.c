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

/* The envelope around content.data, which is on top of the stack (popped). */
static void push_envelope(lua_State *L, const message *m)
{
    luaL_checkstack(L, 6, "pushing a message");
    lua_createtable(L, 0, 9);
    lua_insert(L, -2);
    lua_createtable(L, 0, 1);
    lua_insert(L, -2);
    lua_setfield(L, -2, "data");
    lua_setfield(L, -2, "content");
    lua_pushstring(L, m->id);
    lua_setfield(L, -2, "id");
    lua_pushinteger(L, (lua_Integer)m->seq);
    lua_setfield(L, -2, "seq");
    lua_pushnumber(L, m->timestamp);
    lua_setfield(L, -2, "timestamp");
    vm_set_string_field(L, "sender_id", m->sender_id);
    if (m->metadata_json[0] == '{' && m->metadata_json[1] == '}' && !m->metadata_json[2])
        lua_newtable(L); /* the usual case: no decoder call */
    else
        json_decode(L, m->metadata_json, strlen(m->metadata_json));
    lua_setfield(L, -2, "metadata");
    vm_set_string_field(L, "correlation_id", m->correlation_id);
    vm_set_string_field(L, "reply_to", m->reply_to);
    vm_set_string_field(L, "recipient_id", m->recipient_id);
}

void vm_push_message(lua_State *L, const message *m)
{
    json_decode(L, m->data_json, m->data_len);
    push_envelope(L, m);
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

/* A list of envelopes. The contents are decoded in one call, as one JSON array: a decoder
 * call per message costs more than the decoding itself. */
static void push_batch(lua_State *L, const channel_batch *b)
{
    luaL_checkstack(L, 4, "pushing messages");
    lua_createtable(L, (int)b->count, 0);
    if (b->count == 0)
        return;
    luaL_Buffer buf;
    luaL_buffinit(L, &buf);
    luaL_addchar(&buf, '[');
    for (size_t i = 0; i < b->count; i++) {
        if (i)
            luaL_addchar(&buf, ',');
        luaL_addlstring(&buf, b->items[i]->data_json, b->items[i]->data_len);
    }
    luaL_addchar(&buf, ']');
    luaL_pushresult(&buf);
    size_t len;
    const char *text = lua_tolstring(L, -1, &len);
    json_decode(L, text, len);
    lua_remove(L, -2); /* the text */
    for (size_t i = 0; i < b->count; i++) {
        lua_rawgeti(L, -1, (lua_Integer)i + 1);
        push_envelope(L, b->items[i]);
        lua_rawseti(L, -3, (lua_Integer)i + 1);
    }
    lua_pop(L, 1); /* the decoded array */
}

static int push_batch_protected(lua_State *L)
{
    push_batch(L, lua_touserdata(L, 1));
    return 1;
}

/* Builds the list under lua_pcall so that a memory error frees the batch before it goes on. */
void vm_push_batch_then_free(lua_State *L, channel_batch *b)
{
    lua_pushcfunction(L, push_batch_protected);
    lua_pushlightuserdata(L, b);
    int st = lua_pcall(L, 1, 1, 0);
    channel_batch_free(b);
    if (st != LUA_OK)
        lua_error(L);
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

