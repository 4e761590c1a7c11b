/* subscription.c - push delivery of a channel's messages to a system's function, through
 * the loop, one message at a time, in order, each in a task of its own (see system.h). */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "sys/system.h"
#include "vm/envelope.h"
#include "vm/marshal.h"

/* A subscription or periodic source can be dropped (unsubscribe, stop) from inside its own
 * callback: `refs` counts the holders (the system's list, a delivery in progress, the task)
 * and the memory goes with the last one. */
struct subscription {
    sssn_system *s;
    channel *ch;
    int fn_ref;
    channel_watcher watcher;
    deferred delivery;
    task *active;       /* the callback's task while it runs, else NULL */
    int refs;
    int closed;         /* out of the system's list, watcher removed */
    subscription *next;
};

static void sub_release(subscription *sub)
{
    if (--sub->refs > 0)
        return;
    luaL_unref(sub->s->vm->L, LUA_REGISTRYINDEX, sub->fn_ref);
    free(sub);
}

static void close_subscription(sssn_system *s, subscription *sub)
{
    sub->closed = 1;
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

/* ---- subscriptions: push delivery through the loop, one message at a time, in order ---- */

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
    if (!sub->closed)
        defer(sub->s->h->rt, &sub->delivery); /* more may have arrived meanwhile */
    sub_release(sub); /* the task's reference */
}

static int push_message_protected(lua_State *L)
{
    vm_push_message(L, lua_touserdata(L, 1));
    return 1;
}

static void deliver(rt *r, deferred *d)
{
    (void)r;
    subscription *sub = d->data;
    sssn_system *s = sub->s;
    host *h = s->h;
    if (sub->active || sub->closed || s->state == SYS_STOPPED)
        return;
    channel_batch b;
    if (channel_read(sub->ch, s->id, 1, 0, 0, host_now(h), &b) != CHANNEL_OK)
        return;
    if (b.missed)
        host_log(h, LOG_WARN, s->id, "subscriber of '%s' missed %llu message(s) dropped by capacity",
                 sub->ch->id, (unsigned long long)b.missed);
    if (b.count == 0) {
        channel_batch_free(&b);
        return;
    }
    lua_State *L = s->vm->L;
    if (!lua_checkstack(L, 4)) {
        channel_batch_free(&b);
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, sub->fn_ref);
    lua_pushcfunction(L, push_message_protected);
    lua_pushlightuserdata(L, (void *)b.items[0]);
    int st = lua_pcall(L, 1, 1, 0);
    channel_batch_free(&b);
    if (st != LUA_OK) {
        host_log(h, LOG_ERROR, s->id, "cannot deliver a message from '%s': %s", sub->ch->id,
                 lua_isstring(L, -1) ? lua_tostring(L, -1) : "not enough memory");
        lua_pop(L, 2);
        s->errors++;
        defer(h->rt, &sub->delivery);
        return;
    }
    task *t = task_new(s->vm, s, s->id, TASK_SUBSCRIBER, 1, delivery_done, sub);
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

