/* lua_sssn.h - the `sssn` module's C half ("sssn.core"): bindings that translate between
 * Lua and the host. Also the translations the host itself needs when it calls into a state. */
#ifndef SSSN_LUA_SSSN_H
#define SSSN_LUA_SSSN_H

#include <lua.h>

#include "channel.h"

struct sssn_system;

int luaopen_sssn_core(lua_State *L);

/* Pushes a message envelope table {id, seq, timestamp, sender_id, content = {data = ...},
 * metadata, correlation_id, reply_to, recipient_id}. May raise (memory). */
void sssn_push_message(lua_State *L, const message *m);

/* Pushes a new system handle (full userdata) for s. May raise (memory). */
void sssn_push_system(lua_State *L, struct sssn_system *s);

#endif
