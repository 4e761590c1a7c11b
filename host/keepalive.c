/* keepalive.c - what a system registered in the local registry: refreshed before it expires
 * while the system runs (unless registered with keepalive = false), deregistered when the
 * system stops. Manual re-registration (heartbeats) works alongside: it simply replaces. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "system.h"

struct registration {
    sssn_system *s;
    reg_kind kind;
    char *id;
    double ttl;
    int keepalive;
    host_timer timer;
    registration *next;
};

/* Refresh when two thirds of the TTL have passed, so one late loop turn cannot let it lapse. */
static double refresh_at(const host *h, double ttl) { return host_now(h) + ttl * 2.0 / 3.0; }

static void drop(sssn_system *s, registration *r)
{
    for (registration **p = &s->regs; *p; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            break;
        }
    timer_stop(s->h, &r->timer);
    free(r->id);
    free(r);
}

static void on_refresh(host *h, host_timer *t)
{
    registration *r = t->data;
    const reg_entry *e = registry_get(h->reg, r->kind, r->id, host_now(h));
    /* gone (deregistered, or replaced by another system): stop looking after it */
    if (!e || !e->owner || strcmp(e->owner, r->s->id) != 0) {
        drop(r->s, r);
        return;
    }
    registry_touch(h->reg, r->kind, r->id, host_now(h));
    timer_start(h, &r->timer, refresh_at(h, e->ttl));
}

void system_track_registration(sssn_system *s, reg_kind kind, const char *id, double ttl, int keepalive)
{
    registration *r = s->regs;
    while (r && !(r->kind == kind && strcmp(r->id, id) == 0))
        r = r->next;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r || !(r->id = strdup(id))) {
            free(r);
            return; /* out of memory: the entry simply is not kept alive */
        }
        r->s = s;
        r->kind = kind;
        timer_init(&r->timer, on_refresh, r);
        r->next = s->regs;
        s->regs = r;
    }
    r->ttl = ttl;
    r->keepalive = keepalive;
    if (keepalive)
        timer_start(s->h, &r->timer, refresh_at(s->h, ttl));
    else
        timer_stop(s->h, &r->timer);
}

void system_drop_registrations(sssn_system *s)
{
    host *h = s->h;
    while (s->regs) {
        registration *r = s->regs;
        if (registry_remove(h->reg, r->kind, r->id, s->id, host_now(h)))
            host_log(h, LOG_DEBUG, s->id, "deregistered %s '%s'", reg_kind_name(r->kind), r->id);
        drop(s, r);
    }
}
