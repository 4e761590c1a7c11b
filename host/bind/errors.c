/* errors.c - raising binding errors with their kind (see errors.h). */
#include "bind/errors.h"

#include <lauxlib.h>
#include <stdarg.h>

#include "vm/vm.h"

int bind_vraise(lua_State *L, int positioned, int status, const char *type, const char *fmt, va_list ap)
{
    vm *v = vm_of(L);
    v->error_status = status;
    v->error_type = type;
    if (positioned)
        luaL_where(L, 2);
    else
        lua_pushliteral(L, "");
    lua_pushvfstring(L, fmt, ap);
    lua_concat(L, 2);
    return lua_error(L);
}

int bind_raise(lua_State *L, int status, const char *type, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bind_vraise(L, 1, status, type, fmt, ap);
    va_end(ap);
    return 0;
}

int bind_raise_plain(lua_State *L, int status, const char *type, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bind_vraise(L, 0, status, type, fmt, ap);
    va_end(ap);
    return 0;
}

int bind_l_error_kind(lua_State *L)
{
    vm *v = vm_of(L);
    lua_pushinteger(L, v->error_type ? v->error_status : 500);
    lua_pushstring(L, v->error_type ? v->error_type : "internal");
    v->error_type = NULL;
    return 2;
}
