/* lua_sssn.h - the `sssn` module's C half ("sssn.core"): bindings that translate between
 * Lua and the host (channels, registry, systems, clock), with the API router's bindings
 * (lua_api.h) and the specs' (test_support.h) in the same table. The app sets luaopen_sssn_core
 * as the host's vm_env.open_core, so every state finds it. */
#ifndef SSSN_LUA_SSSN_H
#define SSSN_LUA_SSSN_H

#include <lua.h>

int luaopen_sssn_core(lua_State *L);

#endif
