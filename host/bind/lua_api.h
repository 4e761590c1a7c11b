/* lua_api.h - bindings for the HTTP API router, added to sssn.core; and the JSON text of the
 * channel infos the API serves (messages: bind/api_channel.c). */
#ifndef SSSN_LUA_API_H
#define SSSN_LUA_API_H

#include <lua.h>

#include "model/channel.h"
#include "core/strbuf.h"

struct host;

void lua_api_register(lua_State *L); /* adds the functions to the table on top of the stack */
void api_channel_info_json(strbuf *b, const struct host *h, const channel *ch);

#endif
