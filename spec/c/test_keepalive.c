/* test_keepalive.c - unit tests for the keep-alive and ownership policy (host/sys/keepalive.c)
 * over a fake registry backend: the backend records every call and answers as the test says,
 * at once (as the local one) or later (as the http one), so what the policy sends, when, and
 * in what order is checked without a registry or a network. Time is the runtime's manual
 * clock; log lines are captured. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/log.h"
#include "rt/rt.h"
#include "rt/timer.h"
#include "sys/keepalive.h"

#define CALLS_MAX 64

typedef enum { F_PUT, F_REFRESH, F_REMOVE } fake_op;

typedef struct fake_call {
    fake_op op;
    reg_kind kind;
    char id[32], registrant[64];
    double at;
    rb_done_fn done; /* set while it waits for fake_answer */
    void *ud;
    int cancelled;
} fake_call;

typedef struct fake {
    regbackend b;
    int later;             /* answer later (fake_answer), not at once */
    rb_status answer;      /* what an answer at once says */
    const char *holder, *holder_endpoint;
    int registered;        /* a refresh answered RB_OK: registered anew (1) or renewed (0) */
    fake_call calls[CALLS_MAX];
    size_t ncalls;
    char watching[64];     /* the prefix watched, "" for none */
    int watch_changes;
} fake;

struct rb_call {
    int unused;
};

static void answer_with(fake *f, fake_call *c, rb_status status)
{
    rb_result res = {.status = status, .registered = f->registered, .expires_at = c->at + 30};
    if (status == RB_NOT_OWNER) {
        res.holder = f->holder;
        res.holder_endpoint = f->holder_endpoint;
    } else if (status != RB_OK && status != RB_NOT_FOUND) {
        res.message = "the fake says no";
    }
    rb_done_fn done = c->done;
    c->done = NULL;
    done(c->ud, &res);
}

static rb_call *record(fake *f, fake_op op, reg_kind kind, const char *id, const char *registrant, rb_done_fn done,
                       void *ud)
{
    fake_call *c = &f->calls[f->ncalls < CALLS_MAX ? f->ncalls++ : CALLS_MAX - 1];
    *c = (fake_call){.op = op, .kind = kind, .at = rt_now(f->b.rt), .done = done, .ud = ud};
    snprintf(c->id, sizeof c->id, "%s", id);
    snprintf(c->registrant, sizeof c->registrant, "%s", registrant ? registrant : "");
    if (f->later)
        return (rb_call *)c;
    answer_with(f, c, f->answer);
    return NULL;
}

static rb_call *fake_put(regbackend *b, reg_kind kind, const reg_fields *fl, double ttl, int refresh,
                         rb_done_fn done, void *ud)
{
    (void)ttl;
    return record((fake *)b, refresh ? F_REFRESH : F_PUT, kind, fl->id, fl->registrant, done, ud);
}

static rb_call *fake_remove(regbackend *b, reg_kind kind, const char *id, const char *registrant,
                            rb_done_fn done, void *ud)
{
    return record((fake *)b, F_REMOVE, kind, id, registrant, done, ud);
}

static size_t fake_maintain(regbackend *b)
{
    (void)b;
    return 0;
}

static void fake_watch(regbackend *b, const char *prefix)
{
    fake *f = (fake *)b;
    snprintf(f->watching, sizeof f->watching, "%s", prefix ? prefix : "");
    f->watch_changes++;
}

static void fake_cancel(regbackend *b, rb_call *call)
{
    (void)b;
    fake_call *c = (fake_call *)call;
    c->done = NULL;
    c->cancelled = 1;
}

static void fake_free(regbackend *b) { (void)b; }

static const regbackend_ops fake_ops = {
    .put = fake_put,
    .remove = fake_remove,
    .maintain = fake_maintain,
    .watch = fake_watch,
    .cancel = fake_cancel,
    .free = fake_free,
};

/* Answers the oldest call still waiting. */
static int fake_answer(fake *f, rb_status status)
{
    for (size_t i = 0; i < f->ncalls; i++)
        if (f->calls[i].done) {
            answer_with(f, &f->calls[i], status);
            return 1;
        }
    return 0;
}

static size_t count_ops(const fake *f, fake_op op)
{
    size_t n = 0;
    for (size_t i = 0; i < f->ncalls; i++)
        n += f->calls[i].op == op;
    return n;
}

/* The world of one test: a runtime on the test clock, the fake, a keepalive, one system. */
typedef struct world {
    rt *r;
    fake f;
    keepalive *ka;
    unsigned unfinished;
    keepalive_set set;
} world;

static void world_init(world *w)
{
    memset(w, 0, sizeof *w);
    w->r = rt_new(LOG_DEBUG, 1);
    timer_clock_set(w->r, 1000);
    w->f.b = (regbackend){.ops = &fake_ops, .name = "fake", .where = "fake://r", .rt = w->r};
    w->f.answer = RB_OK;
    w->f.registered = 0;
    w->ka = keepalive_new(w->r, "inst", &w->unfinished);
    keepalive_use(w->ka, &w->f.b);
    keepalive_init(&w->set, w->ka, "sys");
}

static void world_free(world *w)
{
    keepalive_drop_all(&w->set);
    keepalive_free(w->ka);
    rt_free(w->r);
}

static const char *logged(const world *w) { return w->r->log_capture->data ? w->r->log_capture->data : ""; }

static size_t count_in(const char *s, const char *what)
{
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, what)); p += strlen(what))
        n++;
    return n;
}

/* What a caller's done saw. */
typedef struct seen {
    int calls;
    rb_status status;
} seen;

static void on_done(void *ud, const rb_result *res)
{
    seen *s = ud;
    s->calls++;
    s->status = res->status;
}

static ka_op *reg(world *w, const char *id, double ttl, int keep, seen *s)
{
    reg_fields f = {.id = id, .name = id, .json = "{}", .json_len = 2, .registrant = "inst/sys"};
    return keepalive_register(&w->set, REG_CHANNEL, &f, ttl, keep, on_done, s);
}

static void replaced_by(world *w, const char *id, const char *holder)
{
    rb_event ev = {.ev = REG_REPLACED, .kind = REG_CHANNEL, .id = id, .registrant = holder,
                   .endpoint = "http://green:2", .previous_registrant = "inst/sys"};
    w->f.b.on_event(w->f.b.on_event_ud, &ev);
}

/* ---- tests ---- */

static void test_refreshes_at_two_thirds_of_the_ttl(void)
{
    world w;
    world_init(&w);
    seen s = {0};
    CHECK(reg(&w, "feed", 3, 1, &s) == NULL); /* answered at once */
    CHECK(s.calls == 1 && s.status == RB_OK);
    CHECK(w.f.ncalls == 1 && w.f.calls[0].op == F_PUT && strcmp(w.f.calls[0].registrant, "inst/sys") == 0);
    timer_clock_advance(w.r, 1.9);
    CHECK(w.f.ncalls == 1);
    timer_clock_advance(w.r, 0.2);
    CHECK(w.f.ncalls == 2 && w.f.calls[1].op == F_REFRESH);
    CHECK(w.f.calls[1].at == 1002);
    timer_clock_advance(w.r, 10);
    CHECK(count_ops(&w.f, F_REFRESH) == 6); /* every 2 s */
    CHECK(s.calls == 1);
    world_free(&w);
}

static void test_keeps_nothing_alive_with_keepalive_off(void)
{
    world w;
    world_init(&w);
    seen s = {0};
    reg(&w, "once", 3, 0, &s);
    timer_clock_advance(w.r, 30);
    CHECK(w.f.ncalls == 1);
    CHECK(strcmp(w.f.watching, "") == 0);
    keepalive_drop_all(&w.set); /* still removed when the system stops */
    CHECK(w.f.ncalls == 2 && w.f.calls[1].op == F_REMOVE);
    world_free(&w);
}

static void test_watches_while_it_keeps_something_alive(void)
{
    world w;
    world_init(&w);
    seen s = {0};
    reg(&w, "a", 30, 1, &s);
    CHECK(strcmp(w.f.watching, "inst/") == 0);
    reg(&w, "b", 30, 1, &s);
    CHECK(w.f.watch_changes == 1);
    keepalive_drop_all(&w.set);
    CHECK(strcmp(w.f.watching, "") == 0 && w.f.watch_changes == 2);
    world_free(&w);
}

static void test_does_not_keep_what_failed_to_register(void)
{
    world w;
    world_init(&w);
    seen s = {0};
    w.f.answer = RB_UNREACHABLE;
    reg(&w, "lost", 3, 1, &s);
    CHECK(s.calls == 1 && s.status == RB_UNREACHABLE);
    timer_clock_advance(w.r, 30);
    CHECK(w.f.ncalls == 1);
    keepalive_drop_all(&w.set);
    CHECK(w.f.ncalls == 1); /* nothing to remove */
    CHECK(w.unfinished == 0);
    world_free(&w);
}

static void test_a_refused_refresh_displaces_then_takes_back(void)
{
    world w;
    world_init(&w);
    seen s = {0};
    reg(&w, "shared", 3, 1, &s);
    w.f.answer = RB_NOT_OWNER;
    w.f.holder = "other/sys";
    w.f.holder_endpoint = "http://green:2";
    timer_clock_advance(w.r, 2); /* the refresh: 409 */
    CHECK(count_ops(&w.f, F_REFRESH) == 1);
    CHECK(count_in(logged(&w), "[sys] channel 'shared' at fake://r was taken over by registrant 'other/sys' at "
                               "http://green:2: taking it back once it is free") == 1);
    timer_clock_advance(w.r, 5); /* one retry a second, one log line */
    CHECK(count_ops(&w.f, F_REFRESH) == 6);
    CHECK(count_in(logged(&w), "was taken over") == 1);
    w.f.answer = RB_OK;
    w.f.registered = 1;
    timer_clock_advance(w.r, 1);
    CHECK(count_in(logged(&w), "[sys] took channel 'shared' back at fake://r: the entry that replaced it is gone") == 1);
    CHECK(count_in(logged(&w), "lapsed") == 0);
    size_t before = count_ops(&w.f, F_REFRESH);
    timer_clock_advance(w.r, 1.9); /* back on the normal schedule */
    CHECK(count_ops(&w.f, F_REFRESH) == before);
    timer_clock_advance(w.r, 0.2);
    CHECK(count_ops(&w.f, F_REFRESH) == before + 1);
    world_free(&w);
}

static void test_a_takeover_event_displaces_at_once(void)
{
    world w;
    world_init(&w);
    seen s = {0};
    reg(&w, "shared", 300, 1, &s);
    replaced_by(&w, "shared", "green/sys");
    CHECK(count_in(logged(&w), "was taken over by registrant 'green/sys' at http://green:2") == 1);
    CHECK(w.f.ncalls == 1); /* the listener only schedules */
    w.f.answer = RB_NOT_OWNER;
    timer_clock_advance(w.r, 1);
    CHECK(count_ops(&w.f, F_REFRESH) == 1); /* the retry a second later, not 200 s later */
    /* another registrant's takeover, or another id, is none of its business */
    rb_event other = {.ev = REG_REPLACED, .kind = REG_CHANNEL, .id = "shared", .registrant = "x",
                      .previous_registrant = "someone/else"};
    w.f.b.on_event(w.f.b.on_event_ud, &other);
    CHECK(count_in(logged(&w), "was taken over") == 1);
    world_free(&w);
}

static void test_backs_off_while_the_backend_does_not_answer(void)
{
    world w;
    world_init(&w);
    seen s = {0};
    reg(&w, "feed", 300, 1, &s);
    w.f.answer = RB_UNREACHABLE;
    timer_clock_advance(w.r, 200); /* the first refresh fails */
    CHECK(count_ops(&w.f, F_REFRESH) == 1);
    double at[6];
    for (int i = 0; i < 5; i++) {
        size_t n = w.f.ncalls;
        while (w.f.ncalls == n)
            timer_clock_advance(w.r, 0.5);
        at[i] = w.f.calls[w.f.ncalls - 1].at - w.f.calls[w.f.ncalls - 2].at;
    }
    CHECK(at[0] == 1 && at[1] == 2 && at[2] == 4 && at[3] == 5 && at[4] == 5);
    w.f.answer = RB_OK;
    timer_clock_advance(w.r, 5);
    size_t n = w.f.ncalls;
    timer_clock_advance(w.r, 100); /* answered again: back to every 200 s */
    CHECK(w.f.ncalls == n);
    CHECK(count_in(logged(&w), "cannot refresh") == 0); /* unreachable is the backend's to log, once */
    world_free(&w);
}

static void test_removes_on_stop_after_the_put_in_flight(void)
{
    world w;
    world_init(&w);
    w.f.later = 1;
    seen s = {0};
    ka_op *op = reg(&w, "slow", 30, 1, &s);
    CHECK(op != NULL && s.calls == 0);
    keepalive_forget(op); /* its task ended */
    keepalive_drop_all(&w.set);
    CHECK(w.f.ncalls == 1); /* no DELETE before the PUT is answered */
    CHECK(w.unfinished == 1);
    CHECK(fake_answer(&w.f, RB_OK));
    CHECK(s.calls == 0);
    CHECK(w.f.ncalls == 2 && w.f.calls[1].op == F_REMOVE && strcmp(w.f.calls[1].registrant, "inst/sys") == 0);
    CHECK(w.unfinished == 1);
    CHECK(fake_answer(&w.f, RB_OK));
    CHECK(w.unfinished == 0);
    world_free(&w);
}

static void test_deregisters_after_the_refresh_in_flight(void)
{
    world w;
    world_init(&w);
    seen s = {0}, d = {0};
    reg(&w, "feed", 3, 1, &s);
    w.f.later = 1;
    timer_clock_advance(w.r, 2); /* a refresh, unanswered */
    CHECK(w.f.ncalls == 2);
    ka_op *op = keepalive_deregister(&w.set, REG_CHANNEL, "feed", "inst/sys", on_done, &d);
    CHECK(op != NULL && w.f.ncalls == 2);
    CHECK(fake_answer(&w.f, RB_OK)); /* the refresh */
    CHECK(w.f.ncalls == 3 && w.f.calls[2].op == F_REMOVE);
    CHECK(d.calls == 0);
    CHECK(fake_answer(&w.f, RB_NOT_OWNER));
    CHECK(d.calls == 1 && d.status == RB_NOT_OWNER);
    timer_clock_advance(w.r, 30); /* no longer kept */
    CHECK(w.f.ncalls == 3);
    keepalive_drop_all(&w.set);
    CHECK(w.f.ncalls == 3 && w.unfinished == 0);
    world_free(&w);
}

static void test_deregisters_an_id_it_does_not_hold(void)
{
    world w;
    world_init(&w);
    seen d = {0};
    w.f.answer = RB_NOT_FOUND;
    CHECK(keepalive_deregister(&w.set, REG_SYSTEM, "never", "inst/sys", on_done, &d) == NULL);
    CHECK(d.calls == 1 && d.status == RB_NOT_FOUND);
    CHECK(w.f.ncalls == 1 && w.f.calls[0].op == F_REMOVE && w.f.calls[0].kind == REG_SYSTEM);
    world_free(&w);
}

static void test_cancels_what_is_under_way_when_freed(void)
{
    world w;
    world_init(&w);
    w.f.later = 1;
    seen s = {0};
    reg(&w, "a", 30, 1, &s);
    keepalive_drop_all(&w.set);
    keepalive_free(w.ka);
    CHECK(w.f.calls[0].cancelled);
    CHECK(s.calls == 0);
    rt_free(w.r);
}

static void test_a_second_register_renews_fields_and_schedule(void)
{
    world w;
    world_init(&w);
    seen s = {0};
    reg(&w, "feed", 3, 1, &s);
    timer_clock_advance(w.r, 1.5);
    reg(&w, "feed", 30, 1, &s); /* a heartbeat with a longer TTL: the next refresh at 20 s */
    CHECK(s.calls == 2);
    timer_clock_advance(w.r, 19);
    CHECK(count_ops(&w.f, F_REFRESH) == 0);
    timer_clock_advance(w.r, 1.1);
    CHECK(count_ops(&w.f, F_REFRESH) == 1);
    world_free(&w);
}

int main(void)
{
    RUN(test_refreshes_at_two_thirds_of_the_ttl);
    RUN(test_keeps_nothing_alive_with_keepalive_off);
    RUN(test_watches_while_it_keeps_something_alive);
    RUN(test_does_not_keep_what_failed_to_register);
    RUN(test_a_refused_refresh_displaces_then_takes_back);
    RUN(test_a_takeover_event_displaces_at_once);
    RUN(test_backs_off_while_the_backend_does_not_answer);
    RUN(test_removes_on_stop_after_the_put_in_flight);
    RUN(test_deregisters_after_the_refresh_in_flight);
    RUN(test_deregisters_an_id_it_does_not_hold);
    RUN(test_cancels_what_is_under_way_when_freed);
    RUN(test_a_second_register_renews_fields_and_schedule);
    return check_report();
}
