/* api.c - the HTTP API: each request goes through one pipeline - parsed (net/http_server),
 * authenticated (an auth stage, svc/auth.h), routed (the hot read-only lookups in C, the
 * rest as a task in the API's Lua state running sssn.api.handle(method, path, query, who,
 * body), which returns status, content type and body), and answered. Long-polls
 * yield inside that task; the loop never waits. */
#include "svc/api.h"

#include <lauxlib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "svc/auth.h"
#include "svc/webui.h"
#include "sys/host.h"
#include "sys/regbackend.h"
#include "sys/store_sqlite.h"
#include "net/http_server.h"
#include "net/tls.h"
#include "core/json.h"
#include "bind/api_channel.h"
#include "core/log.h"
#include "sys/system.h"

/* A request body may hold a message of --max-message-size and, with direct=true, its envelope. */
#define MAX_BODY(h) ((h)->cfg.max_message_size + (64u << 10))
#define DEFAULT_REQUEST_TIMEOUT 10.0
#define DEFAULT_MAX_CONNECTIONS 1024
#define DEFAULT_MAX_PER_ADDRESS 128

typedef struct api {
    host *h;
    auth_stage *auth;  /* the pipeline's authentication stage */
    api_options opt;   /* its strings live in opt_strings */
    char *opt_strings;
    vm *vm;
    int handler_ref;
    http_server *srv;
    strbuf out;        /* the fast routes' response bodies */
    strbuf text;       /* a fast PUT's body, checked and compacted */
    struct held_answer *held; /* fast PUTs to durable channels waiting for their commit */
    int draining;      /* the host stops cleanly: writes are refused, long-polls answer at once */
    webui *web;        /* the dashboard's files, or NULL */
} api;

/* r->data of a long-poll whose task the drain ended, to route it again (drain_long_polls) */
static char route_again;

static void request_done(task *t, int ok)
{
    http_request *r = t->data;
    lua_State *co = t->co;
    if (r->data == &route_again)
        return; /* the drain answers it */
    if (ok && lua_gettop(co) >= 3 && lua_isinteger(co, -3) && lua_isstring(co, -1)) {
        size_t len;
        const char *body = lua_tolstring(co, -1, &len);
        http_respond(r, (int)lua_tointeger(co, -3), lua_tostring(co, -2), body, len);
        return;
    }
    static const char err[] = "{\"detail\":\"internal error (see the host's log)\","
                              "\"error\":{\"type\":\"internal\",\"message\":\"internal error (see the host's log)\"}}";
    http_respond(r, 500, "application/json", err, sizeof err - 1);
}

/* A request with the principal its stage found, on its way to the router. */
typedef struct routed {
    http_request *r;
    const principal *who;
} routed;

static int push_request_protected(lua_State *L)
{
    routed *q = lua_touserdata(L, 1);
    http_request *r = q->r;
    lua_pushstring(L, r->method);
    lua_pushstring(L, r->path);
    lua_pushstring(L, r->query);
    const principal *who = q->who;
    lua_createtable(L, 0, 4);
    lua_pushstring(L, who->subject);
    lua_setfield(L, -2, "subject");
    lua_pushinteger(L, who->role);
    lua_setfield(L, -2, "role");
    lua_pushboolean(L, who->enforced);
    lua_setfield(L, -2, "enforced");
    if (who->channels) {
        lua_createtable(L, 0, (int)who->nchannels);
        for (size_t i = 0; i < who->nchannels; i++) {
            lua_pushboolean(L, 1);
            lua_setfield(L, -2, who->channels[i]);
        }
        lua_setfield(L, -2, "scope");
    }
    lua_pushlstring(L, r->body.data ? r->body.data : "", r->body.len);
    return 5;
}

/* An error answer in the shape every route uses: {"detail", "error": {"type", "message"}}. */
static void respond_error(api *a, http_request *r, int status, const char *type, const char *detail)
{
    strbuf *b = &a->out;
    strbuf_reset(b);
    strbuf_puts(b, "{\"detail\":");
    json_write_string(b, detail, strlen(detail));
    strbuf_printf(b, ",\"error\":{\"type\":\"%s\",\"message\":", type);
    json_write_string(b, detail, strlen(detail));
    strbuf_puts(b, "}}");
    if (strbuf_failed(b) || !b->data) {
        static const char oom[] = "{\"detail\":\"out of memory\",\"error\":{\"type\":\"internal\",\"message\":\"out of memory\"}}";
        http_respond(r, 500, "application/json", oom, sizeof oom - 1);
        return;
    }
    http_respond(r, status, "application/json", b->data, b->len);
}

static int hex_digit(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Percent-decodes one path segment into out (NUL-terminated) as the router does (%XX with two
 * hex digits); -1 when it is one the fast routes leave to the router: a malformed escape, %00,
 * a byte past ASCII (the router checks UTF-8), or too long. */
static int decode_segment(const char *s, size_t n, char *out, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int hi = i + 2 < n ? hex_digit((unsigned char)s[i + 1]) : -1;
            int lo = hi >= 0 ? hex_digit((unsigned char)s[i + 2]) : -1;
            if (lo < 0)
                return -1;
            c = hi * 16 + lo;
            i += 2;
        }
        if (c == 0 || c >= 0x80 || o + 1 >= size)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

/* Whether `who` may do `need` on channel id as the router's check_channel decides it, without
 * asking: the open stage; a role that suffices within the token's scope, on a public channel
 * other than the registry's event channel; an admin within its scope. Anything else (a
 * private channel, a refusal) is the router's to answer. */
static int plain_access(const principal *who, const channel *ch, const char *id, auth_role need)
{
    if (!who->enforced)
        return 1;
    if (who->role < need || !principal_scope_allows(who, id))
        return 0;
    return who->role >= ROLE_ADMIN || (ch->is_public && strcmp(id, "registry") != 0);
}

/* A decimal of plain digits (what Lua's tonumber reads as an integer) no larger than max into
 * *v; 0 when it is something else (the router reads those). */
static int plain_decimal(const char *s, size_t n, uint64_t max, uint64_t *v)
{
    uint64_t x = 0;
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9 || x > (max - d) / 10)
            return 0;
        x = x * 10 + d;
    }
    *v = x;
    return 1;
}

/* The query of a read the fast path takes: only limit and after (the last of each counts, an
 * empty one is left out), as plain decimals in their ranges. Anything else - reader, wait,
 * exclusive, an escape, a message id as after, a bad limit - is the router's. */
static int fast_read_query(const char *q, size_t *limit, int *has_after, uint64_t *after)
{
    *limit = 100;
    *has_after = 0;
    while (*q) {
        const char *amp = strchr(q, '&'), *end = amp ? amp : q + strlen(q);
        const char *eq = memchr(q, '=', (size_t)(end - q));
        const char *v = eq ? eq + 1 : end;
        size_t kn = (size_t)((eq ? eq : end) - q), vn = (size_t)(end - v);
        uint64_t x;
        if (kn == 5 && memcmp(q, "limit", 5) == 0) {
            if (vn == 0)
                *limit = 100;
            else if (plain_decimal(v, vn, 10000, &x) && x >= 1)
                *limit = (size_t)x;
            else
                return 0;
        } else if (kn == 5 && memcmp(q, "after", 5) == 0) {
            if (vn == 0)
                *has_after = 0;
            else if (plain_decimal(v, vn, (uint64_t)INT64_MAX, &x))
                *has_after = 1, *after = x;
            else
                return 0;
        } else if (end != q) {
            return 0;
        }
        q = amp ? amp + 1 : end;
    }
    return 1;
}

static void respond_failure(api *a, http_request *r, const api_failure *f)
{
    respond_error(a, r, f->status, f->type, f->message);
}

/* A fast PUT to a durable channel is answered once its write is committed: the answer, built,
 * waits here for the store's commit (sys/store_sqlite.h), one loop turn or a few. */
typedef struct held_answer {
    store_waiter w;
    api *a;
    http_request *r;
    store *st;
    struct held_answer *prev, *next;
    size_t len;
    char body[];
} held_answer;

static void unhold(held_answer *ha)
{
    if (ha->prev)
        ha->prev->next = ha->next;
    else
        ha->a->held = ha->next;
    if (ha->next)
        ha->next->prev = ha->prev;
}

static void on_committed(store_waiter *w, int err)
{
    held_answer *ha = w->data;
    unhold(ha);
    if (err == STORE_OK)
        http_respond(ha->r, 200, "application/json", ha->body, ha->len);
    else
        respond_error(ha->a, ha->r, 500, "internal",
                      "the channel's durable store failed: the write was not committed (see the host's log)");
    free(ha);
}

/* Answers r with body once ch's changes so far are committed (at once for a channel in memory). */
static void respond_when_committed(api *a, http_request *r, channel *ch, const char *body, size_t len)
{
    if (!store_is_sqlite(ch->store)) {
        http_respond(r, 200, "application/json", body, len);
        return;
    }
    held_answer *ha = malloc(sizeof *ha + len);
    if (!ha) {
        respond_error(a, r, 500, "internal", "out of memory: the write may not be committed");
        return;
    }
    *ha = (held_answer){.w = {.done = on_committed}, .a = a, .r = r, .st = ch->store, .len = len};
    ha->w.data = ha;
    memcpy(ha->body, body, len);
    int queued = store_wait(ch->store, &ha->w);
    if (queued <= 0) {
        if (queued == 0)
            http_respond(r, 200, "application/json", body, len);
        else
            respond_error(a, r, 500, "internal", "the channel's durable store failed (see the host's log)");
        free(ha);
        return;
    }
    ha->next = a->held;
    if (a->held)
        a->held->prev = ha;
    a->held = ha;
}

/* The answers still waiting when the API stops go nowhere (their connections are closed). */
static void drop_held(api *a)
{
    while (a->held) {
        held_answer *ha = a->held;
        store_cancel(ha->st, &ha->w);
        unhold(ha);
        http_respond(ha->r, 503, "application/json", "", 0);
        free(ha);
    }
}

/* GET /channels/{id}?limit=&after= and PUT /channels/{id} with the data itself, answered here
 * exactly as the router would (same checks, same bindings' semantics through bind/api_channel.h,
 * same errors) when the principal's access is plain. Returns 0 to leave the request to the
 * router; what it leaves has changed nothing. */
static int answer_channel(api *a, http_request *r, const principal *who, const char *id)
{
    int get = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;
    int put = !get && (strcmp(r->method, "PUT") == 0 || strcmp(r->method, "POST") == 0);
    size_t limit = 0;
    int has_after = 0;
    uint64_t after = 0;
    if (get ? !fast_read_query(r->query, &limit, &has_after, &after) : !put || r->query[0] || !r->body.len)
        return 0;
    channel *ch = host_channel(a->h, id);
    if (!ch || !plain_access(who, ch, id, get ? ROLE_READ : ROLE_WRITE))
        return 0;
    if (get && ch->kind == CHANNEL_WORK_QUEUE)
        return 0; /* a shared read of it is refused: the router words that */
    api_failure f;
    strbuf *b = &a->out;
    strbuf_reset(b);
    if (get) {
        size_t count;
        if (api_read_json(a->h, ch, who->subject, limit, has_after, after, 0, b, &count, &f) < 0) {
            respond_failure(a, r, &f);
            return 1;
        }
    } else {
        const message *m;
        if (api_write_json_text(a->h, ch, who->subject, r->body.data, r->body.len, &a->text, &m, &f) < 0) {
            respond_failure(a, r, &f);
            return 1;
        }
        strbuf_append(b, "{\"status\":\"accepted\",\"item_id\":", 31);
        json_write_string(b, m->id, strlen(m->id));
        strbuf_putc(b, '}');
    }
    if (strbuf_failed(b) || !b->data) {
        respond_error(a, r, 500, "internal", "out of memory");
        return 1;
    }
    if (get)
        http_respond(r, 200, "application/json", b->data, b->len);
    else
        respond_when_committed(a, r, ch, b->data, b->len);
    return 1;
}

/* The requests that carry most traffic are answered here in C, without a task: the read-only
 * lookups (channel info, registry entries) and a channel's plain read and write. A miss
 * (unknown id) goes to the router like any other request, so its errors are the same, and so
 * does anything whose access is not plain (a private channel or entry, a channel out of the
 * token's scope, the registry's event channel): the router decides those. */
static int answer_fast(api *a, http_request *r, const principal *who)
{
    const char *p = r->path, *id;
    size_t n;
    int kind; /* 0: channel info, 1: registered channel, 2: registered system, 3: the channel */
    if (strncmp(p, "/channels/", 10) == 0) {
        id = p + 10;
        const char *slash = strchr(id, '/');
        if (!slash) {
            n = strlen(id);
            kind = 3;
        } else if (strcmp(slash, "/info") == 0) {
            n = (size_t)(slash - id);
            kind = 0;
        } else {
            return 0;
        }
    } else if (strncmp(p, "/registry/channels/", 19) == 0) {
        id = p + 19;
        n = strlen(id);
        kind = 1;
    } else if (strncmp(p, "/registry/systems/", 18) == 0) {
        id = p + 18;
        n = strlen(id);
        kind = 2;
    } else {
        return 0;
    }
    char buf[512];
    if (n == 0 || memchr(id, '/', n) || decode_segment(id, n, buf, sizeof buf) < 0)
        return 0;
    if (kind == 3)
        return answer_channel(a, r, who, buf);
    if ((strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0) || r->query[0])
        return 0;
    strbuf *b = &a->out;
    strbuf_reset(b);
    if (kind == 0) {
        channel *ch = host_channel(a->h, buf);
        if (!ch || !plain_access(who, ch, buf, ROLE_READ))
            return 0;
        api_channel_info_json(b, a->h, ch);
    } else {
        if (regbackend_stale(a->h->backend))
            return 0; /* the router says so in the answer */
        int checked = who->enforced && who->role < ROLE_ADMIN;
        const reg_entry *e = registry_get(a->h->reg, kind == 1 ? REG_CHANNEL : REG_SYSTEM, buf, host_now(a->h));
        if (!e || (checked && (who->role < ROLE_READ || !e->is_public)))
            return 0;
        host_entry_json(b, e);
    }
    if (!b->data || strbuf_failed(b))
        return 0;
    http_respond(r, 200, "application/json", b->data, b->len);
    return 1;
}

/* Routing: the Lua router, in a task of the API's state. */
static void route(api *a, http_request *r, const principal *who)
{
    lua_State *L = a->vm->L;
    if (!lua_checkstack(L, 8)) {
        request_done(&(task){.data = r, .co = L}, 0);
        return;
    }
    routed q = {r, who};
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->handler_ref);
    lua_pushcfunction(L, push_request_protected);
    lua_pushlightuserdata(L, &q);
    if (lua_pcall(L, 1, 5, 0) != LUA_OK) {
        host_log(a->h, LOG_ERROR, NULL, "HTTP: %s", lua_tostring(L, -1));
        lua_pop(L, 2);
        respond_error(a, r, 500, "internal", "out of memory");
        return;
    }
    if (task_spawn(a->vm, NULL, NULL, TASK_REQUEST, 5, request_done, r) < 0)
        respond_error(a, r, 500, "internal", "cannot start the request");
}

static int drained_request(http_request *r);

/* The pipeline: parsed by the server, authenticated, routed, answered. */
static void on_request(void *ud, http_request *r)
{
    api *a = ud;
    if (webui_answer(a->web, r)) /* the dashboard's files: public, the page asks for a token */
        return;
    principal who = {0};
    int status = 0;
    char detail[256];
    /* a load balancer's health check needs no credential: it is told only that the host is up */
    int health_check = !r->authorization && strcmp(r->path, "/health") == 0 &&
                       (strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0);
    if (health_check) {
        snprintf(who.subject, sizeof who.subject, "anonymous");
        who.anonymous = 1;
        who.enforced = strcmp(a->auth->name, "open") != 0;
        who.role = who.enforced ? 0 : ROLE_ADMIN;
    } else if (a->auth->authenticate(a->auth, r, &who, &status, detail, sizeof detail) < 0) {
        respond_error(a, r, status, status == 401 ? "unauthorized" : status == 403 ? "forbidden" : "bad_request",
                      detail);
        return;
    }
    if (a->draining && drained_request(r)) {
        principal_clear(&who);
        return;
    }
    if (!answer_fast(a, r, &who))
        route(a, r, &who);
    principal_clear(&who);
}

/* ---- draining: the host stops cleanly (app.c) ----
 * Writes (anything but GET and HEAD: channel writes, acks, registrations) are refused with
 * 503 shutting_down and Retry-After; reads are answered as ever, a long-poll at once with what
 * there is (its wait is cut to 0); every answer closes its connection. The host waits for the
 * requests in flight (api_busy), for a bounded time, before it stops the systems. */

#define RETRY_AFTER "5"

/* Answers r when draining changes what it gets: 1 when answered (a write, refused; /health,
 * 503 shutting_down); 0 to go
 * on, with a long-poll's wait cut to 0 (appended: the router takes a parameter's last value). */
static int drained_request(http_request *r)
{
    if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0) {
        static const char body[] =
            "{\"detail\":\"the host is shutting down: it takes no writes now (retry after it restarts, or at another host)\","
            "\"error\":{\"type\":\"shutting_down\",\"message\":\"the host is shutting down: it takes no writes now "
            "(retry after it restarts, or at another host)\"}}";
        http_respond_with(r, 503, "application/json", "Retry-After: " RETRY_AFTER "\r\n", body, sizeof body - 1);
        return 1;
    }
    if (strcmp(r->path, "/health") == 0) { /* a load balancer sends no more traffic here */
        static const char body[] = "{\"status\":\"shutting_down\"}";
        http_respond_with(r, 503, "application/json", "Retry-After: " RETRY_AFTER "\r\n", body, sizeof body - 1);
        return 1;
    }
    /* the query may hold a wait (spelled plainly, or percent-encoded): cut it; a plain read's
     * query is left alone, for the fast path */
    if (!strstr(r->query, "wait") && !strchr(r->query, '%'))
        return 0;
    size_t n = strlen(r->query);
    char *q = realloc(r->query, n + sizeof "&wait=0");
    if (q) {
        memcpy(q + n, n ? "&wait=0" : "wait=0", n ? sizeof "&wait=0" : sizeof "wait=0");
        r->query = q;
    }
    return 0; /* out of memory: it waits as it asked, within the drain's bound */
}

/* Long-polls waiting when the drain starts: a long-poll waits only after its read found
 * nothing (so nothing was read or claimed), in the router's core.wait until its deadline;
 * its task is ended where it waits and the request goes through the pipeline again, now
 * with wait=0, so it is answered at once with what is there. Other requests in flight
 * finish as they would. */
static void drain_long_polls(api *a)
{
    size_t n = 0, cap = 0;
    uint64_t *ids = NULL;
    for (task *t = a->vm->tasks; t; t = t->next) {
        http_request *r = t->data;
        if (t->kind != TASK_REQUEST || !t->wait || t->running || !r ||
            (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0) ||
            (!strstr(r->query, "wait") && !strchr(r->query, '%')))
            continue;
        if (n == cap) {
            size_t c = cap ? cap * 2 : 16;
            uint64_t *p = realloc(ids, c * sizeof *p);
            if (!p)
                break; /* the rest wait as they asked, within the drain's bound */
            ids = p;
            cap = c;
        }
        ids[n++] = t->id;
    }
    /* by id: answering one may start or end other tasks */
    for (size_t i = 0; i < n; i++) {
        task *t = task_find(a->vm, ids[i]);
        if (!t || !t->wait || t->running)
            continue;
        http_request *r = t->data;
        r->data = &route_again;
        task_cancel(t); /* request_done leaves r to us */
        r->data = NULL;
        on_request(a, r);
    }
    free(ids);
}

static void api_drain(service *svc)
{
    api *a = svc->impl;
    if (!a->srv || a->draining)
        return;
    a->draining = 1;
    http_server_drain(a->srv);
    drain_long_polls(a);
}

static size_t api_busy(const service *svc)
{
    const api *a = svc->impl;
    return a->srv ? http_server_busy(a->srv) : 0;
}

/* http(s)://ADDR:PORT, with an IPv6 ADDR in brackets. */
static void format_url(char *buf, size_t size, const char *scheme, const char *addr, int port)
{
    int v6 = strchr(addr, ':') != NULL;
    snprintf(buf, size, "%s://%s%s%s:%d", scheme, v6 ? "[" : "", addr, v6 ? "]" : "", port);
}

/* Binds, loads the router, and tells the host where others reach it (its endpoint). */
static int api_start(service *svc, char *err, size_t errlen)
{
    api *a = svc->impl;
    host *h = a->h;
    a->vm = host_vm_new(h, 0);
    if (!a->vm) {
        snprintf(err, errlen, "cannot create the API's Lua state");
        return -1;
    }
    a->vm->watchdog_limit = 5; /* a route never computes for long: it waits by yielding */
    if (!a->auth && !(a->auth = auth_open_new())) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    lua_State *L = a->vm->L;
    lua_getglobal(L, "require");
    lua_pushstring(L, "sssn.api");
    if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_istable(L, -1)) {
        snprintf(err, errlen, "cannot load the API router: %s", lua_tostring(L, -1));
        return -1;
    }
    lua_getfield(L, -1, "handle");
    a->handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);
    char why[512];
    if (a->opt.web_dir && !(a->web = webui_load(a->opt.web_dir, why, sizeof why)))
        host_log(h, LOG_WARN, NULL, "no dashboard at /: %s", why);
    tls_server *tls = NULL;
    if (a->opt.tls_cert && !(tls = tls_server_new(a->opt.tls_cert, a->opt.tls_key, err, errlen)))
        return -1;
    http_limits lim = {.max_body = MAX_BODY(h), .idle_timeout = 120,
                       .request_timeout = a->opt.request_timeout > 0 ? a->opt.request_timeout : DEFAULT_REQUEST_TIMEOUT,
                       .max_connections = a->opt.max_connections ? a->opt.max_connections : DEFAULT_MAX_CONNECTIONS,
                       .max_per_address = a->opt.max_per_address ? a->opt.max_per_address : DEFAULT_MAX_PER_ADDRESS};
    a->srv = http_server_start(h->rt, a->opt.numeric, a->opt.port, &lim, on_request, a, err, errlen);
    if (!a->srv) {
        tls_server_free(tls);
        return -1;
    }
    if (tls)
        http_server_set_tls(a->srv, tls);
    const char *scheme = tls ? "https" : "http";
    h->http_stats = http_server_stats(a->srv);
    int port = http_server_port(a->srv);
    char url[320], name[64] = "", guess[160];
    format_url(url, sizeof url, scheme, a->opt.addr, port);
    const char *advertise = a->opt.advertise;
    if (!advertise && a->opt.any && gethostname(name, sizeof name - 1) == 0 && *name) {
        /* 0.0.0.0 and :: are no address to give others: offer the host name, say how to change it */
        format_url(guess, sizeof guess, scheme, name, port);
        advertise = guess;
        host_log(h, LOG_INFO, NULL, "advertising %s; set --advertise URL if other hosts reach this one "
                                    "under another name", guess);
    }
    free(h->endpoint);
    h->endpoint = strdup(advertise ? advertise : url);
    host_log(h, LOG_INFO, NULL, "HTTP API on %s%s%s", url, advertise ? ", advertised as " : "",
             advertise ? advertise : "");
    if (!a->opt.loopback && !a->opt.auth)
        host_log(h, LOG_WARN, NULL, "the HTTP API on %s is open (--insecure): anyone who can reach this "
                                    "address can read, write and register", url);
    return 0;
}

/* Closes the listener and every connection; requests still in tasks are answered nowhere. */
static void api_stop(service *svc)
{
    api *a = svc->impl;
    if (a->srv)
        http_server_stop(a->srv);
    a->srv = NULL;
    drop_held(a);
    a->h->http_stats = NULL;
}

static void api_free(service *svc)
{
    api *a = svc->impl;
    api_stop(svc);
    vm_free(a->vm); /* ends the tasks of requests still waiting */
    if (a->auth)
        a->auth->free(a->auth);
    strbuf_free(&a->out);
    strbuf_free(&a->text);
    webui_free(a->web);
    free(a->opt_strings);
    free(a);
    free(svc);
}

static int api_keeps_running(const service *svc) { return ((const api *)svc->impl)->srv != NULL; }

service *api_service_new(host *h, const api_options *opt)
{
    service *svc = calloc(1, sizeof *svc);
    api *a = calloc(1, sizeof *a);
    size_t n1 = strlen(opt->addr) + 1, n2 = strlen(opt->numeric) + 1, n3 = opt->advertise ? strlen(opt->advertise) + 1 : 0;
    size_t n4 = opt->tls_cert ? strlen(opt->tls_cert) + 1 : 0, n5 = opt->tls_key ? strlen(opt->tls_key) + 1 : 0;
    size_t n6 = opt->web_dir ? strlen(opt->web_dir) + 1 : 0;
    char *strings = malloc(n1 + n2 + n3 + n4 + n5 + n6);
    if (!svc || !a || !strings) {
        if (opt->auth)
            opt->auth->free(opt->auth);
        free(svc);
        free(a);
        free(strings);
        return NULL;
    }
    a->h = h;
    a->opt = *opt;
    a->opt_strings = strings;
    a->opt.addr = memcpy(strings, opt->addr, n1);
    a->opt.numeric = memcpy(strings + n1, opt->numeric, n2);
    a->opt.advertise = opt->advertise ? memcpy(strings + n1 + n2, opt->advertise, n3) : NULL;
    a->opt.tls_cert = opt->tls_cert ? memcpy(strings + n1 + n2 + n3, opt->tls_cert, n4) : NULL;
    a->opt.tls_key = opt->tls_key ? memcpy(strings + n1 + n2 + n3 + n4, opt->tls_key, n5) : NULL;
    a->opt.web_dir = opt->web_dir ? memcpy(strings + n1 + n2 + n3 + n4 + n5, opt->web_dir, n6) : NULL;
    a->auth = opt->auth;
    *svc = (service){.name = "HTTP API", .start = api_start, .drain = api_drain, .busy = api_busy,
                     .stop = api_stop, .free = api_free, .keeps_running = api_keeps_running, .impl = a};
    return svc;
}
