/* envelope.c - messages as Lua envelopes (see envelope.h). */
#include "vm/envelope.h"

#include <lauxlib.h>
#include <string.h>

#include "core/json.h"
#include "vm/marshal.h"

/* The envelope around content.data, which is on top of the stack (popped). */
static void push_envelope(lua_State *L, const message *m)
{
    luaL_checkstack(L, 6, "pushing a message");
    /* sized for the fields it gets: unset ones are left out, and 6 fields fit 8 slots where
     * all 9 would take 16 */
    int fields = 5 + !!m->sender_id + !!m->correlation_id + !!m->reply_to + !!m->recipient_id;
    lua_createtable(L, 0, fields);
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
