/* test_support.h - bindings only `sssn-host test` (and `run`) states get, in sssn.core.testing:
 * HTTP requests on the host's client, child processes, raw TCP connections and temporary
 * directories, each waited for by running the host's loop (never by blocking it or sleeping).
 * lua/sssn/testing.lua wraps them for specs. */
#ifndef SSSN_TEST_SUPPORT_H
#define SSSN_TEST_SUPPORT_H

#include <lua.h>

/* Adds the bindings to the table on top of the stack (core.testing). */
void test_support_register(lua_State *L);

#endif
