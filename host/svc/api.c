/* api.c - the HTTP API: each request becomes a task in the host's API Lua state running
 * sssn.api.handle(method, path, query, authorization, body), which returns status,
 * content type and body. Long-polls yield inside that task; the loop never waits. */
#include "svc/api.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "sys/host.h"
#include "net/http_server.h"
#include "core/json.h"
#include "bind/lua_api.h"
#include "core/log.h"
#include "sys/system.h"

#define MAX_BODY (1u << 20)

struct api {
    host *h;
    vm *vm;
    int handler_ref;
    http_server *srv;
    strbuf out; /* the fast routes' response bodies */
};

static void request_done(task *t, int ok)
{
    http_request *r = t->data;
    lua_State *co = t->co;
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

static int push_request_protected(lua_State *L)
{
    http_request *r = lua_touserdata(L, 1);
    lua_pushstring(L, r->method);
    lua_pushstring(L, r->path);
    lua_pushstring(L, r->query);
    if (r->authorization)
        lua_pushstring(L, r->authorization);
    else
        lua_pushnil(L);
    lua_pushlstring(L, r->body.data ? r->body.data : "", r->body.len);
    return 5;
}

/* Percent-decodes one path segment into out (NUL-terminated); -1 when malformed or long. */
static int decode_segment(const char *s, size_t n, char *out, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            char hex[3] = {s[i + 1], s[i + 2], 0};
            char *end;
            long v = strtol(hex, &end, 16);
            if (*end || v <= 0) /* %00 would cut the id short: refuse it */
                return -1;
            c = (int)v;
            i += 2;
        }
        if (o + 1 >= size)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

/* The read-only lookups that carry most traffic are answered here in C, without a task; a
 * miss (unknown id) goes to the router like any other request, so its errors are the same. */
static int answer_fast(api *a, http_request *r)
{
    if ((strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0) || r->query[0])
        return 0;
    const char *p = r->path, *id;
    size_t n;
    int kind; /* 0: channel info, 1: registered channel, 2: registered system */
    if (strncmp(p, "/channels/", 10) == 0) {
        id = p + 10;
        const char *slash = strchr(id, '/');
        if (!slash || strcmp(slash, "/info") != 0)
            return 0;
        n = (size_t)(slash - id);
        kind = 0;
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
    strbuf *b = &a->out;
    strbuf_reset(b);
    if (kind == 0) {
        channel *ch = host_channel(a->h, buf);
        if (!ch)
            return 0;
        api_channel_info_json(b, a->h, ch);
    } else {
        const reg_entry *e = registry_get(a->h->reg, kind == 1 ? REG_CHANNEL : REG_SYSTEM, buf, host_now(a->h));
        if (!e)
            return 0;
        host_entry_json(b, e);
    }
    if (!b->data || strbuf_failed(b))
        return 0;
    http_respond(r, 200, "application/json", b->data, b->len);
    return 1;
}

static void on_request(void *ud, http_request *r)
{
    api *a = ud;
    if (answer_fast(a, r))
        return;
    lua_State *L = a->vm->L;
    if (!lua_checkstack(L, 8)) {
        request_done(&(task){.data = r, .co = L}, 0);
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->handler_ref);
    lua_pushcfunction(L, push_request_protected);
    lua_pushlightuserdata(L, r);
    if (lua_pcall(L, 1, 5, 0) != LUA_OK) {
        host_log(a->h, LOG_ERROR, NULL, "HTTP: %s", lua_tostring(L, -1));
        lua_pop(L, 2);
        static const char err[] = "{\"detail\":\"out of memory\",\"error\":{\"type\":\"internal\",\"message\":\"out of memory\"}}";
        http_respond(r, 500, "application/json", err, sizeof err - 1);
        return;
    }
    if (task_spawn(a->vm, NULL, TASK_REQUEST, 5, request_done, r) < 0) {
        static const char err[] = "{\"detail\":\"cannot start the request\",\"error\":{\"type\":\"internal\",\"message\":\"cannot start the request\"}}";
        http_respond(r, 500, "application/json", err, sizeof err - 1);
    }
}

api *api_start(host *h, const char *addr, int port, char *err, size_t errlen)
{
    api *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->h = h;
    a->vm = vm_new(h, 0);
    if (!a->vm) {
        free(a);
        snprintf(err, errlen, "cannot create the API's Lua state");
        return NULL;
    }
    a->vm->watchdog_limit = 5; /* a route never computes for long: it waits by yielding */
    lua_State *L = a->vm->L;
    lua_getglobal(L, "require");
    lua_pushstring(L, "sssn.api");
    if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_istable(L, -1)) {
        snprintf(err, errlen, "cannot load the API router: %s", lua_tostring(L, -1));
        vm_free(a->vm);
        free(a);
        return NULL;
    }
    lua_getfield(L, -1, "handle");
    a->handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);
    http_limits lim = {.max_body = MAX_BODY, .idle_timeout = 120};
    a->srv = http_server_start(h, addr, port, &lim, on_request, a, err, errlen);
    if (!a->srv) {
        vm_free(a->vm);
        free(a);
        return NULL;
    }
    return a;
}

int api_port(const api *a) { return http_server_port(a->srv); }

void api_stop(api *a)
{
    if (!a)
        return;
    http_server_stop(a->srv); /* detaches requests still in tasks */
    vm_free(a->vm);           /* ends those tasks; their answers go nowhere */
    strbuf_free(&a->out);
    free(a);
}

void api_metrics_text(strbuf *b, const host *h)
{
    unsigned long long writes = 0, reads = 0, dropped = 0;
    hashmap_iter it;
    void *v;
    hashmap_iter_init(h->channels, &it);
    while (hashmap_iter_next(h->channels, &it, NULL, &v)) {
        const channel *ch = v;
        writes += ch->writes;
        reads += ch->reads;
        dropped += ch->dropped;
    }
    strbuf_printf(b,
                  "# HELP sssn_systems Systems running in this host.\n# TYPE sssn_systems gauge\nsssn_systems %zu\n"
                  "# HELP sssn_steps_total Steps run.\n# TYPE sssn_steps_total counter\nsssn_steps_total %llu\n"
                  "# HELP sssn_step_errors_total Errors in setup or step.\n# TYPE sssn_step_errors_total counter\n"
                  "sssn_step_errors_total %llu\n"
                  "# HELP sssn_overruns_total Ticks merged because a step ran long.\n# TYPE sssn_overruns_total counter\n"
                  "sssn_overruns_total %llu\n"
                  "# HELP sssn_channels Channels in this host.\n# TYPE sssn_channels gauge\nsssn_channels %zu\n"
                  "# HELP sssn_channel_writes_total Messages written to live channels.\n"
                  "# TYPE sssn_channel_writes_total counter\nsssn_channel_writes_total %llu\n"
                  "# HELP sssn_channel_reads_total Messages read from live channels.\n"
                  "# TYPE sssn_channel_reads_total counter\nsssn_channel_reads_total %llu\n"
                  "# HELP sssn_channel_dropped_total Messages dropped by capacity or retention.\n"
                  "# TYPE sssn_channel_dropped_total counter\nsssn_channel_dropped_total %llu\n"
                  "# HELP sssn_registry_entries Registry entries held.\n# TYPE sssn_registry_entries gauge\n"
                  "sssn_registry_entries{kind=\"channel\"} %zu\nsssn_registry_entries{kind=\"system\"} %zu\n"
                  "# HELP sssn_registry_expired_total Registry entries purged by expiry.\n"
                  "# TYPE sssn_registry_expired_total counter\nsssn_registry_expired_total %zu\n",
                  h->nrunning, (unsigned long long)h->steps, (unsigned long long)h->step_errors,
                  (unsigned long long)h->overruns, hashmap_count(h->channels), writes, reads, dropped,
                  registry_count(h->reg, REG_CHANNEL), registry_count(h->reg, REG_SYSTEM),
                  registry_expired_total(h->reg));
    if (h->api) {
        const http_stats *st = http_server_stats(h->api->srv);
        strbuf_printf(b, "# HELP sssn_http_requests_total HTTP requests answered, by status class.\n"
                         "# TYPE sssn_http_requests_total counter\n");
        for (int c = 2; c <= 5; c++)
            strbuf_printf(b, "sssn_http_requests_total{status=\"%dxx\"} %llu\n", c, st->by_class[c]);
        strbuf_printf(b, "# HELP sssn_http_connections Open HTTP connections.\n# TYPE sssn_http_connections gauge\n"
                         "sssn_http_connections %llu\n", st->open_connections);
    }
}
