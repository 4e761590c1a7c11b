/* lua_sssn.h - the `sssn` module's C half ("sssn.core"): bindings that translate between
 * Lua and the host. Also the translations the host itself needs when it calls into a state. */
#ifndef SSSN_LUA_SSSN_H
#define SSSN_LUA_SSSN_H

#include <lua.h>

#include "model/channel.h"
#include "core/strbuf.h"

struct sssn_system;

int luaopen_sssn_core(lua_State *L);

/* What is wrong with an id of len bytes (empty, longer than SSSN_ID_MAX, control characters),
 * or NULL when it is fine. */
const char *sssn_id_problem(const char *id, size_t len);

/* Pushes b's text as a Lua string and frees b, also when pushing fails (it then raises). */
void sssn_push_strbuf(lua_State *L, strbuf *b);

/* Pushes a message envelope table {id, seq, timestamp, sender_id, content = {data = ...},
 * metadata, correlation_id, reply_to, recipient_id}. May raise (memory). */
void sssn_push_message(lua_State *L, const message *m);

/* Pushes a new system handle (full userdata) for s. May raise (memory). */
void sssn_push_system(lua_State *L, struct sssn_system *s);

#endif
