/* lua_api.h - bindings for the HTTP API router, added to sssn.core (the JSON texts the API
 * serves are made in bind/api_channel.c). */
#ifndef SSSN_LUA_API_H
#define SSSN_LUA_API_H

#include <lua.h>

void lua_api_register(lua_State *L); /* adds the functions to the table on top of the stack */

#endif
