/* traceback.c - error messages with the frames a user can act on (see traceback.h). */
#include "vm/traceback.h"

#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

/* Pushes msg and a traceback of co from `level`, leaving out frames that say nothing to a
 * user: the sssn module's own (its bytecode has no debug information: "?") and C functions
 * (error, pcall...). With no frame left (an error raised by the host's own checks, such as a bad
 * configuration) only msg is pushed. */
#define TRACEBACK_FRAMES 20

void vm_push_traceback(lua_State *L, lua_State *co, const char *msg, int level)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, msg);
    int shown = 0;
    lua_Debug ar;
    for (int lv = level; lua_getstack(co, lv, &ar); lv++) {
        if (!lua_getinfo(co, "Sln", &ar))
            continue;
        if (strcmp(ar.source, "=?") == 0 || *ar.what == 'C')
            continue;
        if (shown == TRACEBACK_FRAMES) {
            luaL_addstring(&b, "\n\t...");
            break;
        }
        char frame[LUA_IDSIZE + 128];
        int n = snprintf(frame, sizeof frame, "%s\t%s:", shown ? "\n" : "\nstack traceback:\n", ar.short_src);
        if (ar.currentline > 0)
            n += snprintf(frame + n, sizeof frame - (size_t)n, "%d:", ar.currentline);
        if (*ar.what == 'm')
            snprintf(frame + n, sizeof frame - (size_t)n, " in main chunk");
        else if (ar.name && *ar.namewhat)
            snprintf(frame + n, sizeof frame - (size_t)n, " in %s '%.60s'", ar.namewhat, ar.name);
        else
            snprintf(frame + n, sizeof frame - (size_t)n, " in function <%s:%d>", ar.short_src, ar.linedefined);
        luaL_addstring(&b, frame);
        shown++;
    }
    luaL_pushresult(&b);
}

/* The message handler of calls the host makes into a state that must not yield (loading a
 * chunk): the error with a traceback. */
int vm_traceback_handler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    vm_push_traceback(L, L, msg, 1);
    return 1;
}

