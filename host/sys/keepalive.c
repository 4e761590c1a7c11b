/* keepalive.c - the keep-alive and ownership policy over a registry backend (see
 * keepalive.h). A registration is its fields (copied) and a timer: the refresh, the retry of
 * a displaced one, or the retry after no answer. Every backend operation for it is an op on
 * its list; it is never freed while one is under way, and what comes after (the removal when
 * the system stops or deregisters it) waits until none is, so a DELETE never overtakes the
 * PUT before it. A registration of a stopped system, or one its system deregistered, is
 * detached: off its set, on the keepalive's list, until its removal is over. */
#include "sys/keepalive.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "rt/timer.h"

enum op_kind {
    OP_REGISTER, /* the system's own put */
    OP_REFRESH,  /* the keep-alive's refresh put (or a displaced one's retry) */
    OP_REMOVE,   /* the system's deregistration, or the removal when it stopped */
};

enum removal { NO_REMOVAL, REMOVE_FOR_CALLER, REMOVE_ON_STOP };

struct ka_op {
    keepalive *ka;
    registration *r;     /* whose op it is, or NULL (a deregistration of an id not held) */
    enum op_kind kind;
    rb_call *call;       /* the backend's, while pending */
    int starting;        /* inside the backend's starting call */
    int completed;       /* done ran */
    rb_done_fn done;     /* the caller waiting, or NULL */
    void *ud;
    ka_op *next;         /* r->ops, or ka->loose */
};

struct registration {
    keepalive *ka;
    keepalive_set *set;  /* NULL once detached */
    char *who;           /* the system's id, for log lines */
    reg_kind kind;
    char *id, *registrant;
    char *name, *json, *endpoint;
    size_t json_len;
    int is_public;
    char **caps;
    size_t ncaps;
    double ttl;
    int keepalive;
    int committed;       /* a put of it succeeded (and no takeover since, as far as we know) */
    int displaced;       /* another registrant holds the entry: retrying every KEEPALIVE_RETRY s */
    double backoff;      /* the next wait after a refresh that got no answer */
    int dead;            /* its first put failed: forgotten once its ops are over */
    enum removal removal;/* detached: what to do once its ops are over */
    ka_op *waiter;       /* REMOVE_FOR_CALLER: the caller's op, started then */
    ka_op *ops;          /* under way */
    rt_timer timer;
    registration *next;  /* set->regs, or ka->detached */
};

struct keepalive {
    rt *rt;
    regbackend *be;
    char prefix[64];         /* "<instance>/": this host's registrants */
    unsigned *unfinished;
    keepalive_set *sets;
    registration *detached;
    ka_op *loose;            /* deregistrations of ids no registration held */
    size_t kept;             /* registrations on sets with keepalive on: the watch runs while > 0 */
    int watching;
};

static const char *where_sep(const keepalive *ka) { return ka->be && ka->be->where ? " at " : ""; }
static const char *where(const keepalive *ka) { return ka->be && ka->be->where ? ka->be->where : ""; }

/* Refresh when two thirds of the TTL have passed, so one late loop turn cannot let it lapse. */
static double refresh_wait(const registration *r) { return r->ttl * 2.0 / 3.0; }

static void schedule(registration *r, double wait)
{
    timer_start(r->ka->rt, &r->timer, rt_now(r->ka->rt) + wait);
}

static void update_watch(keepalive *ka)
{
    int want = ka->kept > 0;
    if (!ka->be || want == ka->watching)
        return;
    ka->watching = want;
    ka->be->ops->watch(ka->be, want ? ka->prefix : NULL);
}

/* ---- fields ---- */

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

/* Copies f into r, or (out of memory) leaves r's fields as they were: -1. */
static int copy_fields(registration *r, const reg_fields *f)
{
    registration n = {0};
    size_t len = f->json_len ? f->json_len : strlen(f->json);
    n.name = strdup(f->name ? f->name : "");
    n.json = malloc(len + 1);
    n.caps = calloc(f->ncaps + 1, sizeof *n.caps);
    int bad = !n.name || !n.json || !n.caps || (f->endpoint && !(n.endpoint = strdup(f->endpoint)));
    for (size_t i = 0; !bad && i < f->ncaps; i++) {
        if (!(n.caps[i] = strdup(f->caps[i])))
            bad = 1;
        else
            n.ncaps++;
    }
    if (bad) {
        free_fields(&n);
        return -1;
    }
    memcpy(n.json, f->json, len);
    n.json[len] = '\0';
    free_fields(r);
    r->name = n.name;
    r->json = n.json;
    r->json_len = len;
    r->endpoint = n.endpoint;
    r->caps = n.caps;
    r->ncaps = n.ncaps;
    r->is_public = f->is_public;
    return 0;
}

static reg_fields fields_of(const registration *r)
{
    reg_fields f = {.id = r->id, .name = r->name, .is_public = r->is_public,
                    .caps = (const char *const *)r->caps, .ncaps = r->ncaps, .json = r->json,
                    .json_len = r->json_len, .registrant = r->registrant, .endpoint = r->endpoint};
    return f;
}

/* ---- registrations ---- */

static void on_timer(rt *rtm, rt_timer *t);

static registration *find_in(registration *list, reg_kind kind, const char *id)
{
    for (registration *r = list; r; r = r->next)
        if (r->kind == kind && strcmp(r->id, id) == 0)
            return r;
    return NULL;
}

static void unlink_from(registration **list, registration *r)
{
    for (registration **p = list; *p; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            r->next = NULL;
            return;
        }
}

static void unlink_set(keepalive_set *k)
{
    for (keepalive_set **p = &k->ka->sets; *p; p = &(*p)->next)
        if (*p == k) {
            *p = k->next;
            break;
        }
    k->next = NULL;
    k->linked = 0;
}

static void free_registration(registration *r)
{
    timer_stop(r->ka->rt, &r->timer);
    free_fields(r);
    free(r->id);
    free(r->registrant);
    free(r->who);
    free(r);
}

static registration *new_registration(keepalive_set *k, reg_kind kind, const char *id, const char *registrant)
{
    registration *r = calloc(1, sizeof *r);
    if (!r || !(r->id = strdup(id)) || !(r->registrant = strdup(registrant)) || !(r->who = strdup(k->who))) {
        if (r) {
            free(r->id);
            free(r->registrant);
        }
        free(r);
        return NULL;
    }
    r->ka = k->ka;
    r->set = k;
    r->kind = kind;
    r->backoff = KEEPALIVE_RETRY;
    timer_init(&r->timer, on_timer, r);
    r->next = k->regs;
    k->regs = r;
    if (!k->linked) {
        k->next = k->ka->sets;
        k->ka->sets = k;
        k->linked = 1;
    }
    return r;
}

static void set_keepalive(registration *r, int on)
{
    on = on != 0;
    if (r->set && r->keepalive != on) {
        if (on)
            r->ka->kept++;
        else
            r->ka->kept--;
    }
    r->keepalive = on;
}

static void after_ops(registration *r);

/* Takes r off its set: it is no longer kept alive; `removal` says what comes once its ops
 * are over. The unfinished count holds while it is detached. */
static void detach(registration *r, enum removal removal)
{
    keepalive *ka = r->ka;
    keepalive_set *k = r->set;
    if (!k)
        return;
    set_keepalive(r, 0);
    unlink_from(&k->regs, r);
    if (!k->regs && k->linked)
        unlink_set(k);
    r->set = NULL;
    r->removal = removal;
    timer_stop(ka->rt, &r->timer);
    r->next = ka->detached;
    ka->detached = r;
    (*ka->unfinished)++;
    update_watch(ka);
    if (!r->ops)
        after_ops(r);
}

/* ---- operations ---- */

static void op_done(void *ud, const rb_result *res);

static ka_op *new_op(keepalive *ka, registration *r, enum op_kind kind, rb_done_fn done, void *ud)
{
    ka_op *op = calloc(1, sizeof *op);
    if (!op)
        return NULL;
    *op = (ka_op){.ka = ka, .r = r, .kind = kind, .done = done, .ud = ud};
    ka_op **list = r ? &r->ops : &ka->loose;
    op->next = *list;
    *list = op;
    return op;
}

static void unlink_op(ka_op *op)
{
    ka_op **list = op->r ? &op->r->ops : &op->ka->loose;
    for (ka_op **p = list; *p; p = &(*p)->next)
        if (*p == op) {
            *p = op->next;
            return;
        }
}

/* The op is over: off its list and freed; a detached registration with nothing left under
 * way goes on to what comes next. */
static void finish(ka_op *op)
{
    registration *r = op->r;
    unlink_op(op);
    free(op);
    if (r && !r->ops && (!r->set || r->dead))
        after_ops(r);
}

/* Runs the backend's starting call for op; returns op while it is pending, else NULL (done
 * ran and op is gone). */
static ka_op *start(ka_op *op)
{
    keepalive *ka = op->ka;
    registration *r = op->r;
    op->starting = 1;
    rb_call *call;
    if (op->kind == OP_REMOVE) {
        call = rb_remove(ka->be, r->kind, r->id, r->registrant, op_done, op);
    } else {
        reg_fields f = fields_of(r);
        call = rb_put(ka->be, r->kind, &f, r->ttl, op->kind == OP_REFRESH, op_done, op);
    }
    op->starting = 0;
    if (op->completed) {
        finish(op);
        return NULL;
    }
    op->call = call;
    return op;
}

/* A failure message for the log: "<message>", or the status. */
static const char *why(const rb_result *res) { return res->message ? res->message : rb_status_name(res->status); }

static void displace(registration *r, const char *holder, const char *endpoint)
{
    r->committed = 0;
    if (!r->displaced)
        rt_log(r->ka->rt, LOG_INFO, r->who, "%s '%s'%s%s was taken over by %s%s%s%s%s: taking it back once it is free",
               reg_kind_name(r->kind), r->id, where_sep(r->ka), where(r->ka),
               holder ? "registrant '" : "an operator (no registrant)", holder ? holder : "", holder ? "'" : "",
               endpoint ? " at " : "", endpoint ? endpoint : "");
    r->displaced = 1;
}

/* The next attempt after a refresh the backend did not answer: sooner than the usual wait,
 * later each time. */
static void retry_after_failure(registration *r)
{
    double wait = r->displaced ? KEEPALIVE_RETRY : refresh_wait(r);
    schedule(r, wait < r->backoff ? wait : r->backoff);
    r->backoff = r->backoff * 2 > KEEPALIVE_RETRY_MAX ? KEEPALIVE_RETRY_MAX : r->backoff * 2;
}

static void refreshed(registration *r, const rb_result *res)
{
    keepalive *ka = r->ka;
    switch (res->status) {
    case RB_OK:
        if (r->displaced)
            rt_log(ka->rt, LOG_INFO, r->who, "took %s '%s' back%s%s: the entry that replaced it is gone",
                   reg_kind_name(r->kind), r->id, where_sep(ka), where(ka));
        else if (res->registered == 1)
            rt_log(ka->rt, LOG_WARN, r->who, "%s '%s' lapsed before its refresh (was the loop held up?): "
                   "registered it again", reg_kind_name(r->kind), r->id);
        r->displaced = 0;
        r->committed = 1;
        r->backoff = KEEPALIVE_RETRY;
        if (r->set && r->keepalive)
            schedule(r, refresh_wait(r));
        return;
    case RB_NOT_OWNER:
        displace(r, res->holder, res->holder_endpoint);
        r->backoff = KEEPALIVE_RETRY;
        if (r->set && r->keepalive)
            schedule(r, KEEPALIVE_RETRY);
        return;
    case RB_UNREACHABLE: /* the backend logs the state change once */
        break;
    default:
        rt_log(ka->rt, LOG_WARN, r->who, "cannot refresh %s '%s'%s%s: %s", reg_kind_name(r->kind), r->id,
               where_sep(ka), where(ka), why(res));
        break;
    }
    if (r->set && r->keepalive)
        retry_after_failure(r);
}

/* Whether op is the only one under way for r. */
static int only_op(const registration *r, const ka_op *op) { return r->ops == op && !op->next; }

static void registered(registration *r, const ka_op *op, const rb_result *res)
{
    if (res->status == RB_OK) {
        r->committed = 1;
        r->displaced = 0;
        r->dead = 0;
        r->backoff = KEEPALIVE_RETRY;
        if (r->set && r->keepalive)
            schedule(r, refresh_wait(r));
        else
            timer_stop(r->ka->rt, &r->timer);
        return;
    }
    if (!r->committed) { /* it never took: not kept alive (unless another put of it is under way) */
        if (r->set && only_op(r, op)) {
            set_keepalive(r, 0);
            r->dead = 1;
            update_watch(r->ka);
        }
        return;
    }
    if (r->set && r->keepalive) /* an earlier one holds: it carries on with the new fields */
        retry_after_failure(r);
}

static void removed_on_stop(registration *r, const rb_result *res)
{
    keepalive *ka = r->ka;
    if (res->status == RB_OK)
        rt_log(ka->rt, LOG_DEBUG, r->who, "deregistered %s '%s'%s%s", reg_kind_name(r->kind), r->id,
               where_sep(ka), where(ka));
    else if (res->status == RB_NOT_OWNER)
        rt_log(ka->rt, LOG_DEBUG, r->who, "left %s '%s' registered: it belongs to another registrant now",
               reg_kind_name(r->kind), r->id);
    else if (res->status != RB_NOT_FOUND)
        rt_log(ka->rt, LOG_DEBUG, r->who, "could not deregister %s '%s': %s", reg_kind_name(r->kind), r->id,
               why(res));
}

static void op_done(void *ud, const rb_result *res)
{
    ka_op *op = ud;
    registration *r = op->r;
    op->call = NULL;
    op->completed = 1;
    if (r && op->kind == OP_REGISTER)
        registered(r, op, res);
    else if (r && op->kind == OP_REFRESH)
        refreshed(r, res);
    else if (r && op->kind == OP_REMOVE && r->removal == REMOVE_ON_STOP)
        removed_on_stop(r, res);
    if (op->done)
        op->done(op->ud, res);
    if (r && op->kind == OP_REMOVE)
        r->removal = NO_REMOVAL;
    if (!op->starting)
        finish(op);
}

/* A detached (or dead) registration with nothing under way: its removal, else the end. */
static void after_ops(registration *r)
{
    keepalive *ka = r->ka;
    if (r->set) { /* dead while still on its set */
        keepalive_set *k = r->set;
        unlink_from(&k->regs, r);
        if (!k->regs && k->linked)
            unlink_set(k);
        free_registration(r);
        return;
    }
    if (r->removal == REMOVE_FOR_CALLER && r->waiter) {
        ka_op *op = r->waiter;
        r->waiter = NULL;
        op->next = r->ops;
        r->ops = op;
        start(op); /* finish() comes back here once it is over */
        return;
    }
    if (r->removal == REMOVE_ON_STOP && !r->dead) {
        ka_op *op = new_op(ka, r, OP_REMOVE, NULL, NULL);
        if (op) {
            start(op);
            return;
        }
    }
    unlink_from(&ka->detached, r);
    if (*ka->unfinished > 0)
        (*ka->unfinished)--;
    free_registration(r);
}

/* The refresh timer: a refresh, a displaced one's retry, or a retry after no answer. */
static void on_timer(rt *rtm, rt_timer *t)
{
    (void)rtm;
    registration *r = t->data;
    if (!r->set || !r->keepalive || r->ops)
        return; /* an operation under way reschedules when it is over */
    ka_op *op = new_op(r->ka, r, OP_REFRESH, NULL, NULL);
    if (!op) {
        schedule(r, KEEPALIVE_RETRY);
        return;
    }
    start(op);
}

/* ---- the listener ---- */

static void on_event(void *ud, const rb_event *ev)
{
    keepalive *ka = ud;
    if (ev->ev != REG_REPLACED || !ev->previous_registrant)
        return;
    for (keepalive_set *k = ka->sets; k; k = k->next) {
        registration *r = find_in(k->regs, ev->kind, ev->id);
        if (!r || strcmp(r->registrant, ev->previous_registrant) != 0)
            continue;
        if (r->keepalive && !r->dead) {
            displace(r, ev->registrant, ev->endpoint);
            if (!r->ops) /* from inside the registry's change: only schedule */
                schedule(r, KEEPALIVE_RETRY);
        }
        return;
    }
}

/* ---- the interface ---- */

keepalive *keepalive_new(rt *r, const char *instance_id, unsigned *unfinished)
{
    keepalive *ka = calloc(1, sizeof *ka);
    if (!ka)
        return NULL;
    ka->rt = r;
    ka->unfinished = unfinished;
    snprintf(ka->prefix, sizeof ka->prefix, "%s/", instance_id);
    return ka;
}

void keepalive_use(keepalive *ka, regbackend *b)
{
    ka->be = b;
    regbackend_listen(b, on_event, ka);
}

static void free_ops(keepalive *ka, ka_op *op)
{
    while (op) {
        ka_op *next = op->next;
        if (ka->be)
            rb_cancel(ka->be, op->call);
        free(op);
        op = next;
    }
}

static void free_list(keepalive *ka, registration *r)
{
    while (r) {
        registration *next = r->next;
        free_ops(ka, r->ops);
        if (r->waiter)
            free(r->waiter);
        free_registration(r);
        r = next;
    }
}

void keepalive_free(keepalive *ka)
{
    if (!ka)
        return;
    for (keepalive_set *k = ka->sets; k; k = k->next) {
        free_list(ka, k->regs);
        k->regs = NULL;
        k->linked = 0;
    }
    free_list(ka, ka->detached);
    free_ops(ka, ka->loose);
    if (ka->be && ka->watching)
        ka->be->ops->watch(ka->be, NULL);
    free(ka);
}

void keepalive_init(keepalive_set *k, keepalive *ka, const char *who)
{
    *k = (keepalive_set){.ka = ka, .who = who};
}

static void fail_now(rb_done_fn done, void *ud, const char *text)
{
    rb_result res = {.status = RB_FAILED, .registered = -1, .message = text};
    done(ud, &res);
}

ka_op *keepalive_register(keepalive_set *k, reg_kind kind, const reg_fields *f, double ttl, int keep,
                          rb_done_fn done, void *ud)
{
    keepalive *ka = k->ka;
    registration *r = find_in(k->regs, kind, f->id);
    if (!r && !(r = new_registration(k, kind, f->id, f->registrant))) {
        fail_now(done, ud, "out of memory");
        return NULL;
    }
    if (copy_fields(r, f) < 0) {
        if (!r->json && !r->ops) { /* a new one: forgotten */
            r->dead = 1;
            after_ops(r);
        }
        fail_now(done, ud, "out of memory");
        return NULL;
    }
    r->ttl = ttl;
    r->dead = 0;
    set_keepalive(r, keep);
    timer_stop(ka->rt, &r->timer); /* the put's answer schedules what comes next */
    update_watch(ka);
    ka_op *op = new_op(ka, r, OP_REGISTER, done, ud);
    if (!op) {
        if (r->committed && r->keepalive)
            schedule(r, KEEPALIVE_RETRY);
        fail_now(done, ud, "out of memory");
        return NULL;
    }
    return start(op);
}

ka_op *keepalive_deregister(keepalive_set *k, reg_kind kind, const char *id, const char *registrant,
                            rb_done_fn done, void *ud)
{
    keepalive *ka = k->ka;
    registration *r = find_in(k->regs, kind, id);
    if (!r) { /* not held: the backend still removes it if it is the registrant's */
        ka_op *op = new_op(ka, NULL, OP_REMOVE, done, ud);
        if (!op) {
            fail_now(done, ud, "out of memory");
            return NULL;
        }
        op->starting = 1;
        rb_call *call = rb_remove(ka->be, kind, id, registrant, op_done, op);
        op->starting = 0;
        if (op->completed) {
            finish(op);
            return NULL;
        }
        op->call = call;
        return op;
    }
    /* the op is made first, so that nothing can fail once r is detached */
    ka_op *op = calloc(1, sizeof *op);
    if (!op) {
        fail_now(done, ud, "out of memory");
        return NULL;
    }
    *op = (ka_op){.ka = ka, .r = r, .kind = OP_REMOVE, .done = done, .ud = ud};
    if (r->ops) { /* after what is under way: after_ops starts it */
        r->waiter = op;
        detach(r, REMOVE_FOR_CALLER);
        return op;
    }
    op->next = r->ops; /* on r's list first, so detaching does not go on without it */
    r->ops = op;
    detach(r, REMOVE_FOR_CALLER);
    return start(op);
}

void keepalive_forget(ka_op *op)
{
    if (op)
        op->done = NULL;
}

void keepalive_drop_all(keepalive_set *k)
{
    while (k->regs)
        detach(k->regs, REMOVE_ON_STOP);
    if (k->linked)
        unlink_set(k);
}
