/* subscription.c - push delivery of a channel's messages to a system's function, through
 * the loop, in order: one task per subscription drains a batch read from the system's
 * cursor, calling the function once per message (see system.h). */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "sys/system.h"
#include "vm/envelope.h"
#include "vm/task.h"

/* Messages one delivery task takes from the cursor at most. */
#define SUB_BATCH 64

/* A subscription or periodic source can be dropped (unsubscribe, stop) from inside its own
 * callback: `refs` counts the holders (the system's list, a delivery in progress, the task)
 * and the memory goes with the last one. */
struct subscription {
    sssn_system *s;
    channel *ch;
    int fn_ref;
    channel_watcher watcher;
    deferred delivery;
    task *active;       /* the draining task while it runs, else NULL */
    int refs;
    int closed;         /* out of the system's list, watcher removed */
    /* The batch being delivered: a list of envelopes in the registry, the next to call the
     * function with (a callback that failed is not called again; the next task goes on from
     * the one after it), their seqs, and where the read left the cursor, so that what was
     * not delivered goes back to the cursor on unsubscribe. */
    int batch_ref;      /* LUA_NOREF when there is none */
    int batch_n, batch_at;
    uint64_t batch_seq[SUB_BATCH];
    uint64_t batch_cursor;
    subscription *next;
};

static void drop_batch(subscription *sub)
{
    if (sub->batch_ref != LUA_NOREF)
        luaL_unref(sub->s->vm->L, LUA_REGISTRYINDEX, sub->batch_ref);
    sub->batch_ref = LUA_NOREF;
    sub->batch_n = sub->batch_at = 0;
}

static void sub_release(subscription *sub)
{
    if (--sub->refs > 0)
        return;
    drop_batch(sub);
    luaL_unref(sub->s->vm->L, LUA_REGISTRYINDEX, sub->fn_ref);
    free(sub);
}

static void close_subscription(sssn_system *s, subscription *sub)
{
    sub->closed = 1;
    if (sub->batch_at < sub->batch_n) /* undelivered: back to the cursor, if nothing read since */
        channel_rewind(sub->ch, s->id, sub->batch_cursor, sub->batch_seq[sub->batch_at]);
    sub->batch_at = sub->batch_n; /* a draining task stops before the next message */
    channel_remove_watcher(sub->ch, &sub->watcher);
    defer_cancel(s->h->rt, &sub->delivery);
    sub_release(sub); /* the list's reference */
}

void system_close_subscriptions(sssn_system *s)
{
    while (s->subs) {
        subscription *sub = s->subs;
        s->subs = sub->next;
        close_subscription(s, sub);
    }
}

/* ---- delivery: through the loop, a batch per task, in order ---- */

static void deliver(rt *r, deferred *d);

static void on_subscribed_write(channel_watcher *w, const message *m)
{
    (void)m;
    subscription *sub = w->data;
    if (!sub->active)
        defer(sub->s->h->rt, &sub->delivery);
}

static void delivery_done(task *t, int ok)
{
    (void)ok;
    subscription *sub = t->data;
    sub->active = NULL;
    if (sub->batch_at >= sub->batch_n)
        drop_batch(sub);
    if (!sub->closed)
        defer(sub->s->h->rt, &sub->delivery); /* the rest of the batch, or what came meanwhile */
    sub_release(sub); /* the task's reference */
}

/* The task's function: drain(sub, fn, batch) calls fn with each envelope from batch_at on.
 * A callback may wait (the continuation goes on after it) or fail (the task ends there). */
static int drain_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    (void)ctx;
    subscription *sub = lua_touserdata(L, 1);
    while (sub->batch_at < sub->batch_n) {
        int i = ++sub->batch_at; /* moved first: a callback that fails is not called again */
        task_watchdog_restart(L);
        lua_pushvalue(L, 2);
        lua_rawgeti(L, 3, i);
        lua_callk(L, 1, 0, 0, drain_k);
    }
    return 0;
}

static int drain(lua_State *L)
{
    return drain_k(L, LUA_OK, 0);
}

static int push_batch_protected(lua_State *L)
{
    vm_push_batch_then_free(L, lua_touserdata(L, 1));
    return 1;
}

/* Reads the next batch from the cursor into the registry: 1 when there is one, else 0. */
static int read_batch(subscription *sub)
{
    sssn_system *s = sub->s;
    host *h = s->h;
    channel_batch b;
    if (channel_read(sub->ch, s->id, SUB_BATCH, 0, 0, host_now(h), &b) != CHANNEL_OK)
        return 0;
    if (b.missed)
        host_log(h, LOG_WARN, s->id, "subscriber of '%s' missed %llu message(s) dropped by capacity",
                 sub->ch->id, (unsigned long long)b.missed);
    if (b.count == 0) {
        channel_batch_free(&b);
        return 0;
    }
    int n = (int)b.count;
    for (int i = 0; i < n; i++)
        sub->batch_seq[i] = b.items[i]->seq;
    sub->batch_cursor = channel_cursor(sub->ch, s->id);
    lua_State *L = s->vm->L;
    lua_pushcfunction(L, push_batch_protected);
    lua_pushlightuserdata(L, &b);
    int st = lua_pcall(L, 1, 1, 0);
    channel_batch_free(&b); /* freed already unless the call failed before it ran */
    if (st != LUA_OK) {
        host_log(h, LOG_ERROR, s->id, "cannot deliver messages from '%s': %s", sub->ch->id,
                 lua_isstring(L, -1) ? lua_tostring(L, -1) : "not enough memory");
        lua_pop(L, 1);
        s->errors++;
        channel_rewind(sub->ch, s->id, sub->batch_cursor, sub->batch_seq[0]);
        return 0;
    }
    sub->batch_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (sub->batch_ref == LUA_REFNIL || sub->batch_ref == LUA_NOREF) {
        sub->batch_ref = LUA_NOREF;
        channel_rewind(sub->ch, s->id, sub->batch_cursor, sub->batch_seq[0]);
        return 0;
    }
    sub->batch_n = n;
    sub->batch_at = 0;
    return 1;
}

static void deliver(rt *r, deferred *d)
{
    (void)r;
    subscription *sub = d->data;
    sssn_system *s = sub->s;
    if (sub->active || sub->closed || s->state == SYS_STOPPED)
        return;
    if (sub->batch_ref == LUA_NOREF && !read_batch(sub))
        return;
    lua_State *L = s->vm->L;
    if (!lua_checkstack(L, 4))
        return;
    lua_pushcfunction(L, drain);
    lua_pushlightuserdata(L, sub);
    lua_rawgeti(L, LUA_REGISTRYINDEX, sub->fn_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, sub->batch_ref);
    task *t = task_new(s->vm, s, s->id, TASK_SUBSCRIBER, 3, delivery_done, sub);
    if (!t)
        return;
    sub->refs += 2; /* this call's, and the task's (released by delivery_done) */
    sub->active = t;   /* delivery_done clears it, inside task_start or later */
    task_start(t);
    sub_release(sub);
}

int system_subscribe(sssn_system *s, channel *ch, lua_State *L)
{
    system_unsubscribe(s, ch->id);
    subscription *sub = calloc(1, sizeof *sub);
    if (!sub) {
        lua_pop(L, 1);
        return -1;
    }
    sub->s = s;
    sub->ch = ch;
    sub->refs = 1;
    sub->batch_ref = LUA_NOREF;
    sub->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (sub->fn_ref == LUA_REFNIL || sub->fn_ref == LUA_NOREF) {
        free(sub);
        return -1;
    }
    sub->watcher.on_write = on_subscribed_write;
    sub->watcher.data = sub;
    defer_init(&sub->delivery, deliver, sub);
    channel_add_watcher(ch, &sub->watcher);
    sub->next = s->subs;
    s->subs = sub;
    defer(s->h->rt, &sub->delivery); /* deliver what is already there */
    return 0;
}

void system_unsubscribe(sssn_system *s, const char *channel_id)
{
    for (subscription **p = &s->subs; *p; p = &(*p)->next) {
        subscription *sub = *p;
        if (strcmp(sub->ch->id, channel_id) == 0) {
            *p = sub->next;
            close_subscription(s, sub);
            return;
        }
    }
}

