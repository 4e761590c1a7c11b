/* keepalive.c - what a system registered in the local registry: refreshed before it expires
 * while the system runs (unless registered with keepalive = false), registered again if it
 * lapsed anyway (a loop held up past the TTL), deregistered when the system stops. Manual
 * re-registration (heartbeats) works alongside: it simply replaces. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "system.h"

struct registration {
    sssn_system *s;
    reg_kind kind;
    char *id, *name, *json;
    size_t json_len;
    int is_public;
    char **caps;
    size_t ncaps;
    double ttl;
    int keepalive;
    host_timer timer;
    registration *next;
};

/* Refresh when two thirds of the TTL have passed, so one late loop turn cannot let it lapse. */
static double refresh_at(const host *h, double ttl) { return host_now(h) + ttl * 2.0 / 3.0; }

static void free_fields(registration *r)
{
    free(r->name);
    free(r->json);
    for (size_t i = 0; i < r->ncaps; i++)
        free(r->caps[i]);
    free(r->caps);
    r->name = r->json = NULL;
    r->caps = NULL;
    r->ncaps = 0;
}

static void drop(sssn_system *s, registration *r)
{
    for (registration **p = &s->regs; *p; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            break;
        }
    timer_stop(s->h, &r->timer);
    free_fields(r);
    free(r->id);
    free(r);
}

static int copy_fields(registration *r, const reg_fields *f)
{
    free_fields(r);
    r->name = strdup(f->name ? f->name : "");
    r->json = malloc(f->json_len + 1);
    r->caps = calloc(f->ncaps + 1, sizeof *r->caps);
    if (!r->name || !r->json || !r->caps)
        return -1;
    memcpy(r->json, f->json, f->json_len);
    r->json[f->json_len] = '\0';
    r->json_len = f->json_len;
    r->is_public = f->is_public;
    for (size_t i = 0; i < f->ncaps; i++) {
        if (!(r->caps[i] = strdup(f->caps[i])))
            return -1;
        r->ncaps++;
    }
    return 0;
}

static void on_refresh(host *h, host_timer *t)
{
    registration *r = t->data;
    double now = host_now(h);
    reg_fields f = {.id = r->id, .name = r->name, .is_public = r->is_public,
                    .caps = (const char *const *)r->caps, .ncaps = r->ncaps,
                    .json = r->json, .json_len = r->json_len, .registrant = r->s->id};
    switch (registry_refresh(h->reg, r->kind, &f, r->ttl, now, NULL)) {
    case REG_REFRESH_NOT_OWNER:
        drop(r->s, r); /* replaced by someone else: theirs to keep now */
        return;
    case REG_REFRESH_REGISTERED:
        host_log(h, LOG_WARN, r->s->id, "%s '%s' lapsed before its refresh (was the loop held up?): "
                 "registered it again", reg_kind_name(r->kind), r->id);
        break;
    default:
        break;
    }
    timer_start(h, &r->timer, refresh_at(h, r->ttl));
}

void system_track_registration(sssn_system *s, reg_kind kind, const reg_fields *f, double ttl, int keepalive)
{
    registration *r = s->regs;
    while (r && !(r->kind == kind && strcmp(r->id, f->id) == 0))
        r = r->next;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r || !(r->id = strdup(f->id))) {
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
    if (copy_fields(r, f) < 0)
        r->keepalive = keepalive = 0; /* cannot re-register without the fields: plain refreshes only */
    if (keepalive)
        timer_start(s->h, &r->timer, refresh_at(s->h, ttl));
    else
        timer_stop(s->h, &r->timer);
}

/* A deregistration by the system itself ends the keeping. */
void system_untrack_registration(sssn_system *s, reg_kind kind, const char *id)
{
    for (registration *r = s->regs; r; r = r->next)
        if (r->kind == kind && strcmp(r->id, id) == 0) {
            drop(s, r);
            return;
        }
}

void system_drop_registrations(sssn_system *s)
{
    host *h = s->h;
    while (s->regs) {
        registration *r = s->regs;
        if (registry_remove(h->reg, r->kind, r->id, s->id, host_now(h)) == 1)
            host_log(h, LOG_DEBUG, s->id, "deregistered %s '%s'", reg_kind_name(r->kind), r->id);
        drop(s, r);
    }
}
