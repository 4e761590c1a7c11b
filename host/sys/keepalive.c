/* keepalive.c - what a system registered in the local registry: refreshed before it expires
 * while the system runs (unless registered with keepalive = false), registered again if it
 * lapsed anyway (a loop held up past the TTL), deregistered when the system stops. A
 * registration belongs to its registrant, "<host instance>/<system id>": when someone else
 * takes the entry over, the registration is displaced (kept, not dropped) and retries every
 * KEEPALIVE_RETRY seconds, taking the entry back once it is deregistered or expires; on stop
 * the system removes only what it still owns. Manual re-registration (heartbeats) works
 * alongside: it simply renews, or takes the entry back at once. */
#include "sys/keepalive.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"

struct registration {
    keepalive_set *k;
    reg_kind kind;
    char *id, *name, *json, *endpoint;
    char *registrant;    /* "<host instance>/<system id>", as registered */
    size_t json_len;
    int is_public;
    char **caps;
    size_t ncaps;
    double ttl;
    int keepalive;
    int displaced;       /* another registrant holds the entry: retry every KEEPALIVE_RETRY s */
    rt_timer timer;
    registration *next;
};

/* Refresh when two thirds of the TTL have passed, so one late loop turn cannot let it lapse. */
static double refresh_at(const host *h, double ttl) { return host_now(h) + ttl * 2.0 / 3.0; }

static void free_fields(registration *r)
{
    free(r->name);
    free(r->json);
    free(r->endpoint);
    for (size_t i = 0; i < r->ncaps; i++)
        free(r->caps[i]);
    free(r->caps);
    r->name = r->json = r->endpoint = NULL;
    r->caps = NULL;
    r->ncaps = 0;
}

static void drop(keepalive_set *s, registration *r)
{
    for (registration **p = &s->regs; *p; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            break;
        }
    timer_stop(s->h->rt, &r->timer);
    free_fields(r);
    free(r->id);
    free(r->registrant);
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
    if (f->endpoint && !(r->endpoint = strdup(f->endpoint)))
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

static reg_fields fields_of(const registration *r)
{
    reg_fields f = {.id = r->id, .name = r->name, .is_public = r->is_public,
                    .caps = (const char *const *)r->caps, .ncaps = r->ncaps, .json = r->json,
                    .json_len = r->json_len, .registrant = r->registrant, .endpoint = r->endpoint};
    return f;
}

/* One info line when a registration becomes displaced: who holds the entry now, and where. */
static void report_displaced(const registration *r, const reg_entry *holder)
{
    const char *who = holder ? holder->registrant : NULL, *where = holder ? holder->endpoint : NULL;
    host_log(r->k->h, LOG_INFO, r->k->who, "%s '%s' was taken over by %s%s%s%s%s: taking it back once it is free",
             reg_kind_name(r->kind), r->id, who ? "registrant '" : "an operator (no registrant)", who ? who : "",
             who ? "'" : "", where ? " at " : "", where ? where : "");
}

static void displace(registration *r, const reg_entry *holder)
{
    if (!r->displaced)
        report_displaced(r, holder);
    r->displaced = 1;
    timer_start(r->k->h->rt, &r->timer, host_now(r->k->h) + KEEPALIVE_RETRY);
}

/* The heartbeat path: registry_refresh of the same fields allocates nothing. */
static void on_refresh(rt *rtm, rt_timer *t)
{
    (void)rtm;
    registration *r = t->data;
    host *h = r->k->h;
    reg_fields f = fields_of(r);
    const reg_entry *e;
    switch (registry_refresh(h->reg, r->kind, &f, r->ttl, host_now(h), &e)) {
    case REG_REFRESH_NOT_OWNER:
        displace(r, e);
        return;
    case REG_REFRESH_FAILED: /* out of memory: try again soon */
        timer_start(h->rt, &r->timer, host_now(h) + KEEPALIVE_RETRY);
        return;
    case REG_REFRESH_REGISTERED:
        if (r->displaced)
            host_log(h, LOG_INFO, r->k->who, "took %s '%s' back: the entry that replaced it is gone",
                     reg_kind_name(r->kind), r->id);
        else
            host_log(h, LOG_WARN, r->k->who, "%s '%s' lapsed before its refresh (was the loop held up?): "
                     "registered it again", reg_kind_name(r->kind), r->id);
        break;
    case REG_REFRESH_RENEWED:
        break;
    }
    r->displaced = 0;
    timer_start(h->rt, &r->timer, refresh_at(h, r->ttl));
}

void keepalive_track(keepalive_set *s, reg_kind kind, const reg_fields *f, double ttl, int keepalive)
{
    if (!f->registrant)
        return; /* an operator's entry: nobody's to keep */
    registration *r = s->regs;
    while (r && !(r->kind == kind && strcmp(r->id, f->id) == 0))
        r = r->next;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r || !(r->id = strdup(f->id)) || !(r->registrant = strdup(f->registrant))) {
            if (r)
                free(r->id);
            free(r);
            return; /* out of memory: the entry simply is not kept alive */
        }
        r->k = s;
        r->kind = kind;
        timer_init(&r->timer, on_refresh, r);
        r->next = s->regs;
        s->regs = r;
        if (!s->linked) {
            s->next = s->h->keepalive_sets;
            s->h->keepalive_sets = s;
            s->linked = 1;
        }
    }
    r->ttl = ttl;
    r->keepalive = keepalive;
    r->displaced = 0; /* it has just registered: the entry is its own */
    if (copy_fields(r, f) < 0)
        r->keepalive = keepalive = 0; /* cannot re-register without the fields: not kept alive */
    if (keepalive)
        timer_start(s->h->rt, &r->timer, refresh_at(s->h, ttl));
    else
        timer_stop(s->h->rt, &r->timer);
}

/* A deregistration by the system itself ends the keeping (and any attempt to take it back). */
void keepalive_untrack(keepalive_set *s, reg_kind kind, const char *id)
{
    for (registration *r = s->regs; r; r = r->next)
        if (r->kind == kind && strcmp(r->id, id) == 0) {
            drop(s, r);
            return;
        }
}

void keepalive_on_replaced(host *h, const reg_entry *e, const reg_entry *prev)
{
    const char *reg = prev ? prev->registrant : NULL;
    if (!reg)
        return;
    for (keepalive_set *k = h->keepalive_sets; k; k = k->next)
        for (registration *r = k->regs; r; r = r->next)
            if (r->kind == prev->kind && strcmp(r->id, prev->id) == 0 && r->registrant &&
                strcmp(r->registrant, reg) == 0) {
                if (r->keepalive)
                    displace(r, e);
                return;
            }
}

void keepalive_init(keepalive_set *k, host *h, const char *who)
{
    *k = (keepalive_set){.h = h, .who = who};
}

static void unlink_set(keepalive_set *k)
{
    for (keepalive_set **p = &k->h->keepalive_sets; *p; p = &(*p)->next)
        if (*p == k) {
            *p = k->next;
            break;
        }
    k->next = NULL;
    k->linked = 0;
}

void keepalive_drop_all(keepalive_set *s)
{
    host *h = s->h;
    while (s->regs) {
        registration *r = s->regs;
        int removed = registry_remove(h->reg, r->kind, r->id, r->registrant, host_now(h));
        if (removed == 1)
            host_log(h, LOG_DEBUG, s->who, "deregistered %s '%s'", reg_kind_name(r->kind), r->id);
        else if (removed < 0)
            host_log(h, LOG_DEBUG, s->who, "left %s '%s' registered: it belongs to another registrant now",
                     reg_kind_name(r->kind), r->id);
        drop(s, r);
    }
    if (s->linked)
        unlink_set(s);
}

void keepalive_attach(host *h) { h->on_registry_event = keepalive_on_registry_event; }

void keepalive_on_registry_event(host *h, reg_event ev, const reg_entry *e, const reg_entry *prev)
{
    if (ev == REG_REPLACED && prev)
        keepalive_on_replaced(h, e, prev);
}
