/* errors.h - the one error convention of the bindings (sssn.core): a binding that fails
 * raises, through bind_raise, a message that says what was wrong and where (positioned at the
 * caller's line: users reach the bindings through the lua/sssn modules), and records the kind of
 * failure in its state - an HTTP status and a type such as "not_found". Systems see the
 * message; the API router (lua/sssn/api.lua) calls bindings under pcall and answers with the
 * status and type core.error_kind() returns right after. */
#ifndef SSSN_BIND_ERRORS_H
#define SSSN_BIND_ERRORS_H

#include <lua.h>
#include <stdarg.h>

/* Raises; never returns (the int is for `return bind_raise(...)`). type must be a string
 * literal. */
int bind_raise(lua_State *L, int status, const char *type, const char *fmt, ...);
/* The same without a position (messages the router shows as they are). */
int bind_raise_plain(lua_State *L, int status, const char *type, const char *fmt, ...);

int bind_vraise(lua_State *L, int positioned, int status, const char *type, const char *fmt, va_list ap);

/* core.error_kind() -> status, type of the last bind_raise in this state (then forgotten);
 * 500, "internal" when the last error was not raised by a binding. */
int bind_l_error_kind(lua_State *L);

#endif
