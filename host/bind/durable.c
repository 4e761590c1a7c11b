/* durable.c - see durable.h. The results stay on the binding's own stack while the task waits
 * (lua_yieldk keeps it), so any binding can wait without copying what it returns. */
#include "bind/durable.h"

#include <stdlib.h>

#include "bind/errors.h"
#include "sys/store_sqlite.h"
#include "vm/task.h"

typedef struct commit_wait {
    store_waiter w;
    store *st;
    task_wait *tw;
    int err, answered;
} commit_wait;

static void on_commit(store_waiter *w, int err)
{
    commit_wait *cw = w->data;
    cw->err = err;
    cw->answered = 1;
    task_complete(cw->tw);
}

static int push_outcome(lua_State *L, void *ud)
{
    lua_pushboolean(L, ((commit_wait *)ud)->err == STORE_OK);
    return 1;
}

static void end_wait(void *ud, int completed)
{
    commit_wait *cw = ud;
    if (!completed && !cw->answered)
        store_cancel(cw->st, &cw->w);
    free(cw);
}

static const task_completion commit_completion = {.push = push_outcome, .end = end_wait};

static int failed(lua_State *L, const char *op)
{
    return bind_raise_plain(L, 500, "internal", "sssn: the channel's durable store failed and keeps no more "
                                                "changes: see the host's log (%s)", op);
}

/* Resumed: the outcome is on top, the results under it. */
static int resume(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    int ok = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (!ok)
        return failed(L, "its commit");
    return (int)ctx;
}

int bind_durable_return(lua_State *L, channel *ch, int nres, const char *op)
{
    if (!store_is_sqlite(ch->store))
        return nres;
    commit_wait *cw = calloc(1, sizeof *cw);
    if (!cw)
        return bind_raise_plain(L, 500, "internal", "sssn: out of memory (%s)", op);
    cw->st = ch->store;
    cw->w.done = on_commit;
    cw->w.data = cw;
    int queued = store_wait(ch->store, &cw->w);
    if (queued <= 0) {
        free(cw);
        return queued < 0 ? failed(L, op) : nres;
    }
    if (!(cw->tw = task_wait_completion(L, &commit_completion, cw))) {
        store_cancel(ch->store, &cw->w); /* not a task that may wait: answered as it is */
        free(cw);
        return nres;
    }
    return lua_yieldk(L, 0, (lua_KContext)nres, resume);
}
