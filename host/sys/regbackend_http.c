/* regbackend_http.c - the http registry backend (see regbackend.h): another host's registry
 * API (`--registry URL`) through net/http_client on the loop. Each operation is one request
 * whose answer completes it; answers are read in C (core/jsonread.h), or handed on as JSON
 * text. The watch is one long-poll of /registry/events?registrant_prefix= at a time, resumed
 * after a failure with backoff. Whether the other host answers at all is tracked here, so
 * that going away and coming back are logged once each, not at every call. Every request
 * carries the host's credential (--token-file) as its Bearer, when it has one. */
#include "sys/regbackend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonread.h"
#include "core/log.h"
#include "core/strbuf.h"
#include "net/http_client.h"
#include "rt/timer.h"

enum http_op { OP_PUT, OP_REMOVE, OP_GET, OP_FIND, OP_COUNTS, OP_EVENTS };

typedef struct http_backend {
    regbackend b;
    http_client *c;
    char *url;                      /* without a trailing slash */
    char *bearer;                   /* the host's credential (--token-file), or NULL */
    int reachable;                  /* 1: answered last time, -1: did not, 0: not asked yet */
    rb_call *calls;                 /* pending operations */
    /* the watch */
    char *prefix;                   /* watching takeovers from registrants starting with it, or NULL */
    http_call *watch_call;          /* the long-poll in flight, or NULL */
    rt_timer watch_timer;           /* the next long-poll after a failure */
    double watch_backoff;
    unsigned long long watch_index; /* events seen up to here (kept across stop and start) */
} http_backend;

struct rb_call {
    http_backend *hb;
    http_call *call;
    enum http_op op;
    reg_kind kind;
    rb_done_fn done;
    void *ud;
    rb_call *prev, *next;
};

static const char *plural(reg_kind k) { return k == REG_CHANNEL ? "channels" : "systems"; }

/* Percent-encodes s for a path segment or a query value (all but A-Z a-z 0-9 - . _ ~). */
static void put_escaped(strbuf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
            c == '_' || c == '~') {
            strbuf_putc(b, (char)c);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            strbuf_append(b, e, 3);
        }
    }
}

/* Adds "<sep>name=<value escaped>" when value is not NULL; returns the next separator. */
static char put_param(strbuf *b, char sep, const char *name, const char *value)
{
    if (!value)
        return sep;
    strbuf_putc(b, sep);
    strbuf_puts(b, name);
    strbuf_putc(b, '=');
    put_escaped(b, value);
    return '&';
}

static void note_reachable(http_backend *hb, int ok, const char *why)
{
    if (ok) {
        if (hb->reachable < 0)
            rt_log(hb->b.rt, LOG_INFO, NULL, "the registry at %s is reachable again", hb->url);
        hb->reachable = 1;
    } else {
        if (hb->reachable >= 0)
            rt_log(hb->b.rt, LOG_WARN, NULL, "the registry at %s is unreachable (%s): registry calls fail until it is back",
                   hb->url, why ? why : "no answer");
        hb->reachable = -1;
    }
}

/* The answer's "detail" when it is an API error, else its first 200 bytes. */
static void put_detail(strbuf *out, const char *body, size_t len)
{
    json_span v, d;
    if (json_read_value(body, len, &v) == 0 && json_read_member(v, "detail", &d) == 1 && json_read_string(d, out) == 0)
        return;
    strbuf_append(out, body, len > 200 ? 200 : len);
}

static const char *status_word(long status)
{
    switch (status) {
    case 400:
        return "bad request";
    case 401:
        return "unauthorised";
    case 403:
        return "forbidden";
    case 404:
        return "not found";
    case 405:
        return "not allowed";
    case 413:
        return "too large";
    case 429:
        return "busy";
    case 500:
        return "server error";
    }
    return "error";
}

/* Reads error.registrant and error.endpoint of a 409 into the two buffers; sets the result's
 * holder fields (NULL where the answer has null or nothing). */
static void read_holder(rb_result *res, const char *body, size_t len, strbuf *reg, strbuf *ep)
{
    json_span v, e, x;
    res->holder = res->holder_endpoint = NULL;
    if (json_read_value(body, len, &v) < 0 || json_read_member(v, "error", &e) != 1)
        return;
    if (json_read_member(e, "registrant", &x) == 1 && json_read_string(x, reg) == 0 && !strbuf_failed(reg))
        res->holder = reg->data ? reg->data : "";
    if (json_read_member(e, "endpoint", &x) == 1 && json_read_string(x, ep) == 0 && !strbuf_failed(ep))
        res->holder_endpoint = ep->data ? ep->data : "";
}

static void unlink_call(rb_call *c)
{
    http_backend *hb = c->hb;
    if (c->prev)
        c->prev->next = c->next;
    else
        hb->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
}

/* Completes an operation from its answer. */
static void on_answer(void *ud, long status, const char *body, size_t len, const char *error)
{
    rb_call *c = ud;
    http_backend *hb = c->hb;
    c->call = NULL; /* the client frees it after this callback */
    unlink_call(c);
    note_reachable(hb, status != 0, error);
    rb_result res = {.status = RB_OK, .registered = -1};
    strbuf msg = STRBUF_INIT, reg = STRBUF_INIT, ep = STRBUF_INIT;
    json_span v, x;
    int parsed = status == 200 && json_read_value(body, len, &v) == 0;
    if (status == 0) {
        res.status = RB_UNREACHABLE;
        strbuf_printf(&msg, "the registry at %s is unreachable: %s", hb->url, error ? error : "no answer");
    } else if (status == 200 && !parsed) {
        res.status = RB_FAILED;
        strbuf_printf(&msg, "the registry at %s answered with no JSON (HTTP 200)", hb->url);
    } else if (status == 200) {
        res.json = body;
        res.len = len;
        if (c->op == OP_PUT) {
            if (json_read_member(v, "expires_at", &x) != 1 || json_read_number(x, &res.expires_at) < 0) {
                res.status = RB_FAILED;
                strbuf_printf(&msg, "the registry at %s answered a registration without expires_at", hb->url);
            }
        } else if (c->op == OP_COUNTS) {
            json_span r, n;
            double ch = 0, sy = 0;
            if (json_read_member(v, "registry", &r) == 1) {
                if (json_read_member(r, "channels", &n) == 1)
                    json_read_number(n, &ch);
                if (json_read_member(r, "systems", &n) == 1)
                    json_read_number(n, &sy);
            }
            res.channels = ch > 0 ? (size_t)ch : 0;
            res.systems = sy > 0 ? (size_t)sy : 0;
        }
    } else if (status == 404 && (c->op == OP_GET || c->op == OP_REMOVE)) {
        res.status = RB_NOT_FOUND;
    } else if (status == 409 && (c->op == OP_PUT || c->op == OP_REMOVE)) {
        res.status = RB_NOT_OWNER;
        read_holder(&res, body, len, &reg, &ep);
    } else {
        res.status = status == 400   ? RB_BAD_REQUEST
                     : status == 429 ? RB_LIMIT
                     : status == 401 || status == 403 ? RB_FORBIDDEN
                                                      : RB_FAILED;
        strbuf_printf(&msg, "%s: ", status_word(status));
        put_detail(&msg, body ? body : "", body ? len : 0);
        strbuf_printf(&msg, " (HTTP %ld from %s)", status, hb->url);
    }
    if (res.status != RB_OK && res.status != RB_NOT_FOUND && res.status != RB_NOT_OWNER)
        res.message = msg.data && !strbuf_failed(&msg) ? msg.data : "out of memory";
    c->done(c->ud, &res);
    strbuf_free(&msg);
    strbuf_free(&reg);
    strbuf_free(&ep);
    free(c);
}

/* Sends one request for an operation; a request that cannot start completes it at once. */
static rb_call *start_request(http_backend *hb, enum http_op op, reg_kind kind, const char *method, strbuf *url,
                     const char *body, size_t len, double timeout, rb_done_fn done, void *ud)
{
    rb_call *c = calloc(1, sizeof *c);
    if (c && !strbuf_failed(url) && url->data)
        c->call = http_client_request(hb->c, method, url->data, hb->bearer, body, len, timeout, on_answer, c);
    strbuf_free(url);
    if (!c || !c->call) {
        free(c);
        char m[300];
        snprintf(m, sizeof m, "cannot send a request to the registry at %s (out of memory?)", hb->url);
        rb_result res = {.status = RB_FAILED, .registered = -1, .message = m};
        done(ud, &res);
        return NULL;
    }
    c->hb = hb;
    c->op = op;
    c->kind = kind;
    c->done = done;
    c->ud = ud;
    c->next = hb->calls; /* the answer comes from the loop, never inside http_client_request */
    if (hb->calls)
        hb->calls->prev = c;
    hb->calls = c;
    return c;
}

/* url + "/registry/<plural>/<id>" */
static void entry_url(strbuf *b, const http_backend *hb, reg_kind kind, const char *id)
{
    strbuf_printf(b, "%s/registry/%s/", hb->url, plural(kind));
    put_escaped(b, id);
}

static rb_call *http_put(regbackend *b, reg_kind kind, const reg_fields *f, double ttl, int refresh,
                         rb_done_fn done, void *ud)
{
    http_backend *hb = (http_backend *)b;
    strbuf u = STRBUF_INIT;
    entry_url(&u, hb, kind, f->id);
    strbuf_printf(&u, "?ttl=%.17g", ttl);
    put_param(&u, '&', "registrant", f->registrant);
    if (refresh)
        strbuf_puts(&u, "&refresh=true");
    size_t len = f->json_len ? f->json_len : strlen(f->json);
    return start_request(hb, OP_PUT, kind, "PUT", &u, f->json, len, RB_HTTP_TIMEOUT, done, ud);
}

static rb_call *http_remove(regbackend *b, reg_kind kind, const char *id, const char *registrant,
                            rb_done_fn done, void *ud)
{
    http_backend *hb = (http_backend *)b;
    strbuf u = STRBUF_INIT;
    entry_url(&u, hb, kind, id);
    put_param(&u, '?', "registrant", registrant);
    return start_request(hb, OP_REMOVE, kind, "DELETE", &u, NULL, 0, RB_HTTP_TIMEOUT, done, ud);
}

static rb_call *http_get(regbackend *b, reg_kind kind, const char *id, rb_done_fn done, void *ud)
{
    http_backend *hb = (http_backend *)b;
    strbuf u = STRBUF_INIT;
    entry_url(&u, hb, kind, id);
    return start_request(hb, OP_GET, kind, "GET", &u, NULL, 0, RB_HTTP_TIMEOUT, done, ud);
}

static rb_call *http_find(regbackend *b, const rb_query *q, rb_done_fn done, void *ud)
{
    http_backend *hb = (http_backend *)b;
    strbuf u = STRBUF_INIT;
    strbuf_printf(&u, "%s/registry/%s", hb->url, plural(q->kind));
    char sep = '?';
    if (q->kind == REG_CHANNEL) {
        sep = put_param(&u, sep, "visibility", q->visibility < 0 ? NULL : q->visibility ? "public" : "private");
        sep = put_param(&u, sep, "name", q->name);
    } else {
        sep = put_param(&u, sep, "capability", q->capability);
    }
    /* the caller's page, or the largest the API gives: a find that matches more sees the first
     * 10,000 ids */
    sep = put_param(&u, sep, "after", q->after);
    char limit[32];
    snprintf(limit, sizeof limit, "%zu", q->limit && q->limit < 10000 ? q->limit : 10000);
    put_param(&u, sep, "limit", limit);
    return start_request(hb, OP_FIND, q->kind, "GET", &u, NULL, 0, RB_HTTP_TIMEOUT, done, ud);
}

static rb_call *http_counts(regbackend *b, rb_done_fn done, void *ud)
{
    http_backend *hb = (http_backend *)b;
    strbuf u = STRBUF_INIT;
    strbuf_printf(&u, "%s/health", hb->url);
    return start_request(hb, OP_COUNTS, REG_CHANNEL, "GET", &u, NULL, 0, RB_HTTP_TIMEOUT, done, ud);
}

static void events_url(strbuf *u, const http_backend *hb, const rb_events_query *q)
{
    strbuf_printf(u, "%s/registry/events?index=%llu", hb->url, q->index);
    if (q->limit)
        strbuf_printf(u, "&limit=%u", q->limit);
    if (q->wait > 0)
        strbuf_printf(u, "&wait=%.17g", q->wait);
    put_param(u, '&', "registrant", q->registrant);
    put_param(u, '&', "registrant_prefix", q->registrant_prefix);
}

static rb_call *http_events(regbackend *b, const rb_events_query *q, rb_done_fn done, void *ud)
{
    http_backend *hb = (http_backend *)b;
    strbuf u = STRBUF_INIT;
    events_url(&u, hb, q);
    return start_request(hb, OP_EVENTS, REG_CHANNEL, "GET", &u, NULL, 0, (q->wait > 0 ? q->wait : 0) + RB_HTTP_TIMEOUT,
                done, ud);
}

static size_t http_maintain(regbackend *b)
{
    (void)b; /* the registry's own host purges on its maintenance timer */
    return 0;
}

static void http_cancel(regbackend *b, rb_call *c)
{
    (void)b;
    unlink_call(c);
    http_client_cancel(c->call);
    free(c);
}

/* ---- the watch ---- */

static void watch_send(http_backend *hb);

static int event_of(json_span name, reg_event *out)
{
    static const reg_event all[] = {REG_REGISTERED, REG_REFRESHED, REG_REPLACED, REG_EXPIRED, REG_DEREGISTERED};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (json_read_string_is(name, reg_event_name(all[i]))) {
            *out = all[i];
            return 0;
        }
    return -1;
}

static int same_span(json_span a, json_span b) { return a.len == b.len && memcmp(a.p, b.p, a.len) == 0; }

/* A string member into buf, NULL for null or none. */
static const char *string_member(json_span obj, const char *key, strbuf *buf)
{
    json_span x;
    strbuf_reset(buf);
    if (json_read_member(obj, key, &x) != 1 || json_read_is_null(x) || json_read_string(x, buf) < 0 ||
        strbuf_failed(buf))
        return NULL;
    return buf->data ? buf->data : "";
}

/* Tells the listener of the events of one answer, the last about each entry only. */
static void deliver(http_backend *hb, json_span events)
{
    size_t n = 0, pos = 0;
    json_span ev;
    while (json_read_next(events, &pos, NULL, &ev) == 1)
        n++;
    if (!n || !hb->b.on_event)
        return;
    json_span *ids = calloc(n, 2 * sizeof *ids);
    if (!ids)
        return; /* out of memory: the next refresh finds out */
    size_t i = 0;
    for (pos = 0; i < n && json_read_next(events, &pos, NULL, &ev) == 1; i++) {
        json_span empty = {"", 0};
        ids[2 * i] = ids[2 * i + 1] = empty;
        json_read_member(ev, "kind", &ids[2 * i]);
        json_read_member(ev, "id", &ids[2 * i + 1]);
    }
    strbuf id = STRBUF_INIT, reg = STRBUF_INIT, prev = STRBUF_INIT, ep = STRBUF_INIT;
    i = 0;
    for (pos = 0; i < n && json_read_next(events, &pos, NULL, &ev) == 1; i++) {
        int later = 0;
        for (size_t j = i + 1; j < n && !later; j++)
            later = same_span(ids[2 * i], ids[2 * j]) && same_span(ids[2 * i + 1], ids[2 * j + 1]);
        json_span name, entry;
        rb_event x = {0};
        if (later || json_read_member(ev, "event", &name) != 1 || event_of(name, &x.ev) < 0)
            continue;
        x.kind = json_read_string_is(ids[2 * i], "system") ? REG_SYSTEM : REG_CHANNEL;
        if (!(x.id = string_member(ev, "id", &id)))
            continue;
        x.registrant = string_member(ev, "registrant", &reg);
        x.previous_registrant = string_member(ev, "previous_registrant", &prev);
        x.endpoint = json_read_member(ev, "entry", &entry) == 1 ? string_member(entry, "endpoint", &ep) : NULL;
        hb->b.on_event(hb->b.on_event_ud, &x);
        if (!hb->b.on_event)
            break;
    }
    strbuf_free(&id);
    strbuf_free(&reg);
    strbuf_free(&prev);
    strbuf_free(&ep);
    free(ids);
}

static void watch_retry_later(http_backend *hb)
{
    timer_start(hb->b.rt, &hb->watch_timer, rt_now(hb->b.rt) + hb->watch_backoff);
    hb->watch_backoff = hb->watch_backoff * 2 > 5.0 ? 5.0 : hb->watch_backoff * 2;
}

static void on_watch_answer(void *ud, long status, const char *body, size_t len, const char *error)
{
    http_backend *hb = ud;
    hb->watch_call = NULL;
    note_reachable(hb, status != 0, error);
    json_span v, idx, events;
    double index;
    if (status != 200 || json_read_value(body, len, &v) < 0 || json_read_member(v, "index", &idx) != 1 ||
        json_read_number(idx, &index) < 0 || index < 0 || json_read_member(v, "events", &events) != 1) {
        watch_retry_later(hb); /* unreachable (logged once) or an answer that makes no sense */
        return;
    }
    hb->watch_backoff = 1.0;
    hb->watch_index = (unsigned long long)index;
    deliver(hb, events);
    watch_send(hb);
}

static void watch_send(http_backend *hb)
{
    if (!hb->prefix || hb->watch_call || timer_active(&hb->watch_timer))
        return;
    rb_events_query q = {.index = hb->watch_index, .wait = RB_HTTP_WATCH_WAIT, .registrant_prefix = hb->prefix};
    strbuf u = STRBUF_INIT;
    events_url(&u, hb, &q);
    if (!strbuf_failed(&u) && u.data)
        hb->watch_call = http_client_request(hb->c, "GET", u.data, hb->bearer, NULL, 0,
                                             RB_HTTP_WATCH_WAIT + RB_HTTP_TIMEOUT, on_watch_answer, hb);
    strbuf_free(&u);
    if (!hb->watch_call)
        watch_retry_later(hb);
}

static void on_watch_timer(rt *r, rt_timer *t)
{
    (void)r;
    watch_send(t->data);
}

static void http_watch(regbackend *b, const char *prefix)
{
    http_backend *hb = (http_backend *)b;
    if (prefix && hb->prefix && strcmp(prefix, hb->prefix) == 0)
        return;
    free(hb->prefix);
    hb->prefix = NULL;
    timer_stop(b->rt, &hb->watch_timer);
    if (hb->watch_call) {
        http_client_cancel(hb->watch_call);
        hb->watch_call = NULL;
    }
    if (prefix && !(hb->prefix = strdup(prefix)))
        return; /* out of memory: takeovers are noticed at the next refresh instead */
    hb->watch_backoff = 1.0;
    watch_send(hb);
}

static void http_free(regbackend *b)
{
    http_backend *hb = (http_backend *)b;
    http_watch(b, NULL);
    while (hb->calls)
        http_cancel(b, hb->calls);
    free(hb->url);
    if (hb->bearer) {
        explicit_bzero(hb->bearer, strlen(hb->bearer));
        free(hb->bearer);
    }
    free(hb);
}

static const regbackend_ops http_ops = {
    .put = http_put,
    .remove = http_remove,
    .get = http_get,
    .find = http_find,
    .counts = http_counts,
    .events = http_events,
    .maintain = http_maintain,
    .watch = http_watch,
    .cancel = http_cancel,
    .free = http_free,
};

regbackend *regbackend_http_new(rt *r, http_client *c, const char *url, const char *bearer)
{
    http_backend *hb = calloc(1, sizeof *hb);
    if (!hb || !(hb->url = strdup(url)) || (bearer && !(hb->bearer = strdup(bearer)))) {
        if (hb)
            free(hb->url);
        free(hb);
        return NULL;
    }
    size_t n = strlen(hb->url);
    while (n > 0 && hb->url[n - 1] == '/')
        hb->url[--n] = '\0';
    hb->b = (regbackend){.ops = &http_ops, .name = "http", .where = hb->url, .rt = r};
    hb->c = c;
    hb->watch_backoff = 1.0;
    timer_init(&hb->watch_timer, on_watch_timer, hb);
    return &hb->b;
}
