/* regbackend_local.c - the local registry backend (see regbackend.h): model/registry.c in
 * this process. Every operation completes before it returns; queries and events need no
 * operation (the registry is the cache, its channel the events). */
#include "sys/regbackend.h"

#include <stdio.h>
#include <stdlib.h>

#include "rt/timer.h"

typedef struct local_backend {
    regbackend b;
    registry *reg;
    size_t max_entries, max_per_subject; /* the registry's limits, to say them */
    char message[384];                   /* a refusal's words, valid during done */
} local_backend;

static registry *reg_of(regbackend *b) { return ((local_backend *)b)->reg; }

static rb_call *local_put(regbackend *b, reg_kind kind, const reg_fields *f, double ttl, int refresh,
                          rb_done_fn done, void *ud)
{
    rb_result res = {.status = RB_OK, .registered = -1};
    const reg_entry *e;
    if (refresh) {
        reg_refresh_result rr = registry_refresh(reg_of(b), kind, f, ttl, rt_now(b->rt), &e);
        if (rr == REG_REFRESH_NOT_OWNER) {
            res.status = RB_NOT_OWNER;
            res.holder = e->registrant;
            res.holder_endpoint = e->endpoint;
            done(ud, &res);
            return NULL;
        }
        if (rr == REG_REFRESH_FAILED)
            e = NULL;
        res.registered = rr == REG_REFRESH_REGISTERED;
    } else {
        e = registry_put(reg_of(b), kind, f, ttl, rt_now(b->rt));
    }
    local_backend *lb = (local_backend *)b;
    reg_refusal why = registry_refusal(lb->reg);
    if (!e && (why == REG_REFUSED_FULL || why == REG_REFUSED_SUBJECT)) {
        res.status = RB_LIMIT;
        if (why == REG_REFUSED_FULL)
            snprintf(lb->message, sizeof lb->message, "the registry holds %zu entries, as many as it takes "
                     "(--registry-max-entries); nothing was registered", lb->max_entries);
        else
            snprintf(lb->message, sizeof lb->message, "subject '%.256s' holds %zu entries, as many as one "
                     "subject may (--registry-max-per-subject); nothing was registered", f->subject, lb->max_per_subject);
        res.message = lb->message;
    } else if (!e) { /* the callers check the fields first: what is left is memory */
        res.status = RB_FAILED;
        res.message = "out of memory";
    } else {
        res.entry = e;
        res.expires_at = e->expires_at;
    }
    done(ud, &res);
    return NULL;
}

static rb_call *local_remove(regbackend *b, reg_kind kind, const char *id, const char *registrant,
                             rb_done_fn done, void *ud)
{
    double now = rt_now(b->rt);
    int removed = registry_remove(reg_of(b), kind, id, registrant, now);
    rb_result res = {.status = removed == 1 ? RB_OK : removed == 0 ? RB_NOT_FOUND : RB_NOT_OWNER};
    if (removed < 0) {
        const reg_entry *e = registry_get(reg_of(b), kind, id, now);
        res.holder = e ? e->registrant : NULL;
        res.holder_endpoint = e ? e->endpoint : NULL;
    }
    done(ud, &res);
    return NULL;
}

static size_t local_maintain(regbackend *b) { return registry_maintain(reg_of(b), rt_now(b->rt)); }

static void local_watch(regbackend *b, const char *prefix)
{
    (void)b; /* every event reaches the listener anyway (local_cache_event) */
    (void)prefix;
}

static void local_cancel(regbackend *b, rb_call *call)
{
    (void)b; /* nothing is ever pending */
    (void)call;
}

static void local_free(regbackend *b) { free(b); }

/* Every event of the registry reaches the listener. */
static void local_cache_event(regbackend *b, reg_event ev, const reg_entry *e, const reg_entry *prev)
{
    if (!b->on_event)
        return;
    rb_event x = {.ev = ev, .kind = e->kind, .id = e->id, .registrant = e->registrant, .endpoint = e->endpoint,
                  .previous_registrant = prev ? prev->registrant : NULL};
    b->on_event(b->on_event_ud, &x);
}

void regbackend_local_limits(regbackend *b, size_t max_entries, size_t max_per_subject)
{
    local_backend *lb = (local_backend *)b;
    lb->max_entries = max_entries;
    lb->max_per_subject = max_per_subject;
    registry_set_limits(lb->reg, max_entries, max_per_subject);
}

static const regbackend_ops local_ops = {
    .put = local_put,
    .remove = local_remove,
    .maintain = local_maintain,
    .watch = local_watch,
    .cancel = local_cancel,
    .free = local_free,
    .cache_event = local_cache_event,
};

regbackend *regbackend_local_new(rt *r, registry *reg, channel *events)
{
    local_backend *lb = calloc(1, sizeof *lb);
    if (!lb)
        return NULL;
    lb->b = (regbackend){.ops = &local_ops, .name = "local", .immediate = 1, .cache = reg, .events = events, .rt = r};
    lb->reg = reg;
    return &lb->b;
}

