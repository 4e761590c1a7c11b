/* traceback.h - tracebacks that show the user's frames only: the sssn module's own (stripped
 * bytecode: "?") and C functions are left out, and with no frame left only the message. */
#ifndef SSSN_TRACEBACK_H
#define SSSN_TRACEBACK_H

#include <lua.h>

/* Pushes msg and a traceback of co from `level`, leaving out the sssn module's own frames
 * and C functions; with no frame left only msg. May raise (memory). */
void vm_push_traceback(lua_State *L, lua_State *co, const char *msg, int level);
/* A message handler for lua_pcall: the error with vm_push_traceback's traceback. */
int vm_traceback_handler(lua_State *L);

#endif
