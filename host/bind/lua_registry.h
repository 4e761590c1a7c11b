/* lua_registry.h - the registry bindings of sssn.core (core.reg_*, core.api_reg_*), over the
 * host's registry backend; for systems and the API router alike. */
#ifndef SSSN_LUA_REGISTRY_H
#define SSSN_LUA_REGISTRY_H

#include <lua.h>

void lua_registry_register(lua_State *L); /* adds the functions to the table on top of the stack */

#endif
