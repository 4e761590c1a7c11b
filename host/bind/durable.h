/* durable.h - a binding's acknowledgement that waits for the commit: after a binding changed a
 * channel and pushed its results, it returns them only once its changes are durable (the task
 * yields until the store's commit, sys/store_sqlite.h). Channels in memory answer at once. */
#ifndef SSSN_BIND_DURABLE_H
#define SSSN_BIND_DURABLE_H

#include <lua.h>

#include "model/channel.h"

/* `return bind_durable_return(L, ch, nres, op);` in place of `return nres;`: the nres values on
 * top of the stack are returned at once when ch's changes so far are durable (or L cannot
 * wait: a prompt's chunk), else when their commit is in. Raises (500, "internal") naming op
 * when the store failed. */
int bind_durable_return(lua_State *L, channel *ch, int nres, const char *op);

#endif
