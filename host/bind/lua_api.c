/* lua_api.c - the bindings the HTTP API router (lua/sssn/api.lua) uses: channel operations
 * for a named reader or sender that is not a system, answered as JSON text built in C from
 * the stored JSON (so [] stays [] and numbers keep their digits), plus the long-poll wait and
 * the metrics text (its registry routes use lua_registry.c's). Errors come back as nil,
 * status, type, message. */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "sys/metrics.h"
#include "sys/host.h"
#include "net/http_client.h"
#include "core/json.h"
#include "bind/lua_api.h"

#include "bind/api_channel.h"
#include "bind/durable.h"
#include "bind/errors.h"
#include "vm/marshal.h"
#include "sys/system.h"

static host *host_of(lua_State *L) { return vm_of(L)->env->ud; }


static int push_buf(lua_State *L, strbuf *b)
{
    vm_push_strbuf(L, b);
    return 1;
}

static channel *find_channel(lua_State *L, const char *id)
{
    channel *ch = host_channel(host_of(L), id);
    return ch;
}

/* core.api_channel_visibility(id) -> "public" | "private" | nil (no such channel here) */
static int l_api_channel_visibility(lua_State *L)
{
    channel *ch = find_channel(L, luaL_checkstring(L, 1));
    if (!ch)
        return 0;
    lua_pushstring(L, ch->is_public ? "public" : "private");
    return 1;
}

/* core.registry_max_ttl() -> the longest TTL an HTTP registration may ask for */
static int l_registry_max_ttl(lua_State *L)
{
    lua_pushnumber(L, host_of(L)->cfg.registry_max_ttl);
    return 1;
}

/* core.api_info(id) -> json | nil, status, type, message */
static int l_api_info(lua_State *L)
{
    const char *id = luaL_checkstring(L, 1);
    channel *ch = find_channel(L, id);
    if (!ch)
        return bind_raise_plain(L, 404, "not_found", "channel '%s' not found", id);
    strbuf b = STRBUF_INIT;
    api_channel_info_json(&b, host_of(L), ch);
    return push_buf(L, &b);
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* core.api_channels() -> {{id, name, kind, visibility, owner, endpoint, durable, held, writes,
 * last_seq}, ...}: this host's live channels, by id, for GET /channels (the router keeps
 * those the caller may read). */
static int l_api_channels(lua_State *L)
{
    host *h = host_of(L);
    size_t n = hashmap_count(h->channels), i = 0;
    const char **ids = lua_newuserdatauv(L, (n ? n : 1) * sizeof *ids, 0);
    hashmap_iter it;
    const char *key;
    hashmap_iter_init(h->channels, &it);
    while (i < n && hashmap_iter_next(h->channels, &it, &key, NULL))
        ids[i++] = key;
    qsort(ids, i, sizeof *ids, compare_strings);
    lua_createtable(L, (int)i, 0);
    for (size_t k = 0; k < i; k++) {
        const channel *ch = hashmap_get(h->channels, ids[k]);
        lua_createtable(L, 0, 10);
        vm_set_string_field(L, "id", ch->id);
        vm_set_string_field(L, "name", ch->name);
        vm_set_string_field(L, "kind", channel_kind_name(ch->kind));
        vm_set_string_field(L, "visibility", ch->is_public ? "public" : "private");
        vm_set_string_field(L, "owner", ch->owner);
        vm_set_string_field(L, "endpoint", h->endpoint);
        lua_pushboolean(L, channel_epoch(ch) != NULL);
        lua_setfield(L, -2, "durable");
        lua_pushinteger(L, (lua_Integer)ch->count);
        lua_setfield(L, -2, "held");
        lua_pushinteger(L, (lua_Integer)ch->writes);
        lua_setfield(L, -2, "writes");
        lua_pushinteger(L, (lua_Integer)channel_last_seq(ch));
        lua_setfield(L, -2, "last_seq");
        lua_rawseti(L, -2, (lua_Integer)k + 1);
    }
    return 1;
}

/* core.api_read(id, reader, limit, after_seq|nil, after_id|nil, exclusive)
 *   -> json {"messages": [...], "missed", "epoch", "more"}, count, last_seq | nil, status, type,
 *   message. The answer is at most --max-read-bytes (one message larger than that by itself,
 *   which only escapes in its envelope's strings can make, comes alone): the read stops before
 *   the message that would pass it, with "more": true, and the reader's cursor (or its
 *   claims) cover only what it holds: read again, or pass the last message's seq as after. */
static int l_api_read(lua_State *L)
{
    host *h = host_of(L);
    const char *id = luaL_checkstring(L, 1);
    const char *reader = luaL_checkstring(L, 2);
    lua_Integer limit = luaL_optinteger(L, 3, 100);
    int exclusive = lua_toboolean(L, 6);
    channel *ch = find_channel(L, id);
    if (!ch)
        return bind_raise_plain(L, 404, "not_found", "channel '%s' not found", id);
    if (limit < 1 || limit > 10000)
        return bind_raise_plain(L, 400, "bad_request", "limit must be between 1 and 10000%s", "");
    int has_after = 0;
    uint64_t after = 0;
    if (!lua_isnoneornil(L, 4)) {
        lua_Integer a = luaL_checkinteger(L, 4);
        if (a < 0)
            return bind_raise_plain(L, 400, "bad_request", "after must be a seq >= 0 or a message id%s", "");
        has_after = 1;
        after = (uint64_t)a;
    } else if (!lua_isnoneornil(L, 5)) {
        const char *mid = luaL_checkstring(L, 5);
        const message *m = channel_find(ch, mid);
        if (!m)
            return bind_raise_plain(L, 404, "not_found", "message '%s' is not held by the channel (unknown or dropped)", mid);
        has_after = 1;
        after = m->seq;
    }
    strbuf b = STRBUF_INIT;
    size_t count;
    api_failure f;
    if (api_read_json(h, ch, reader, (size_t)limit, has_after, after, exclusive, &b, &count, &f) < 0) {
        strbuf_free(&b);
        return bind_raise_plain(L, f.status, f.type, "%s", f.message);
    }
    push_buf(L, &b);
    lua_pushinteger(L, (lua_Integer)count);
    lua_pushinteger(L, (lua_Integer)channel_last_seq(ch));
    /* claims are answered once committed: a restart offers them again only after they lapse */
    return exclusive && count > 0 ? bind_durable_return(L, ch, 3, "an exclusive read") : 3;
}

/* A write the channel refused: what the answer says, taken while the message's text is there
 * (the caller frees it before raising). */
typedef struct refusal {
    int rc;
    size_t size, limit;
} refusal;

static refusal refusal_of(const channel *ch, int rc, const message_in *in)
{
    refusal r = {rc, 0, 0};
    if (rc != CHANNEL_ETOOBIG && rc != CHANNEL_EFULL)
        return r;
    r.size = message_in_size(in);
    if (rc == CHANNEL_ETOOBIG)
        channel_size_problem(ch, in, &r.size, &r.limit);
    return r;
}

/* As the API answers it: 413 too large, 429 full (a work queue at its count or byte budget, or
 * an owner without room for it under its memory limit). */
static int write_refused(lua_State *L, const channel *ch, refusal r)
{
    if (r.rc == CHANNEL_ETOOBIG)
        return bind_raise_plain(L, 413, "payload_too_large", "the message is %I bytes, more than the %I a message "
                                "of channel '%s' may have", (LUAI_UACINT)r.size, (LUAI_UACINT)r.limit, ch->id);
    if (ch->kind == CHANNEL_WORK_QUEUE)
        return bind_raise_plain(L, 429, "channel_full", "channel '%s' is full: acknowledge work before writing more",
                                ch->id);
    return bind_raise_plain(L, 429, "channel_full", "channel '%s' is full: its owner '%s' has no room left for "
                            "%I bytes under its memory limit", ch->id, ch->owner ? ch->owner : "?",
                            (LUAI_UACINT)r.size);
}

/* core.api_write(id, sender, data, metadata|nil, correlation_id, reply_to, recipient_id, msg_id)
 *   -> item_id | nil, status, type, message
 * The arguments are all checked before anything is allocated: nothing raises while holding
 * C memory. */
static int l_api_write(lua_State *L)
{
    host *h = host_of(L);
    const char *id = luaL_checkstring(L, 1);
    const char *sender = luaL_optstring(L, 2, NULL);
    const char *route[3];
    for (int i = 0; i < 3; i++)
        route[i] = luaL_optstring(L, 5 + i, NULL);
    const char *mid = luaL_optstring(L, 8, NULL);
    channel *ch = find_channel(L, id);
    if (!ch)
        return bind_raise_plain(L, 404, "not_found", "channel '%s' not found", id);
    if (ch->owner && strcmp(ch->owner, HOST_OWNER) == 0)
        return bind_raise_plain(L, 405, "method_not_allowed", "channel '%s' is read-only", id);
    if (mid) {
        size_t n = strlen(mid);
        int ok = n > 0 && n <= 36;
        for (size_t i = 0; ok && i < n; i++)
            ok = mid[i] > 0x20 && mid[i] < 0x7f && mid[i] != '"' && mid[i] != '\\';
        if (!ok)
            return bind_raise_plain(L, 400, "bad_request", "a message id must be 1 to 36 printable characters "
                                               "without quotes or backslashes%s", "");
        if (channel_find(ch, mid))
            return bind_raise_plain(L, 400, "bad_request", "the channel already holds a message with id '%s'", mid);
    }
    char err[256];
    strbuf data = STRBUF_INIT, meta = STRBUF_INIT;
    if (json_encode(L, 3, "data", &data, err, sizeof err) < 0 ||
        (!lua_isnoneornil(L, 4) && json_encode(L, 4, "metadata", &meta, err, sizeof err) < 0)) {
        strbuf_free(&data);
        strbuf_free(&meta);
        return bind_raise_plain(L, 400, "bad_request", "%s", err);
    }
    message_in in = {
        .sender_id = sender,
        .data_json = data.data,
        .data_len = data.len,
        .metadata_json = meta.data,
        .correlation_id = route[0],
        .reply_to = route[1],
        .recipient_id = route[2],
        .id = mid,
    };
    const message *m;
    int rc = channel_write(ch, &in, host_now(h), &m);
    refusal why = refusal_of(ch, rc, &in);
    strbuf_free(&data);
    strbuf_free(&meta);
    if (rc == CHANNEL_ETOOBIG || rc == CHANNEL_EFULL)
        return write_refused(L, ch, why);
    if (rc != CHANNEL_OK)
        return bind_raise_plain(L, 500, "internal", "%s", channel_strerror(rc));
    lua_pushstring(L, m->id);
    lua_pushinteger(L, (lua_Integer)m->seq);
    return bind_durable_return(L, ch, 2, "a write");
}

/* core.api_write_text(id, sender, body) -> item_id, seq | nil, status, type, message
 * A PUT body that is the data itself: checked and compacted as JSON text (core/json_text.h)
 * and stored as it came, never decoded into Lua and encoded again. */
static int l_api_write_text(lua_State *L)
{
    host *h = host_of(L);
    const char *id = luaL_checkstring(L, 1);
    const char *sender = luaL_optstring(L, 2, NULL);
    size_t len;
    const char *body = luaL_checklstring(L, 3, &len);
    channel *ch = find_channel(L, id);
    if (!ch)
        return bind_raise_plain(L, 404, "not_found", "channel '%s' not found", id);
    if (ch->owner && strcmp(ch->owner, HOST_OWNER) == 0)
        return bind_raise_plain(L, 405, "method_not_allowed", "channel '%s' is read-only", id);
    const message *m;
    api_failure f;
    if (api_write_json_text(h, ch, sender, body, len, &h->scratch, &m, &f) < 0)
        return bind_raise_plain(L, f.status, f.type, "%s", f.message);
    lua_pushstring(L, m->id);
    lua_pushinteger(L, (lua_Integer)m->seq);
    return bind_durable_return(L, ch, 2, "a write");
}

static int ack_or_nack(lua_State *L, int nack)
{
    host *h = host_of(L);
    const char *id = luaL_checkstring(L, 1);
    const char *reader = luaL_checkstring(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    channel *ch = find_channel(L, id);
    if (!ch)
        return bind_raise_plain(L, 404, "not_found", "channel '%s' not found", id);
    size_t n = lua_rawlen(L, 3);
    if (n > 100000)
        return bind_raise_plain(L, 400, "bad_request", "too many message ids%s", "");
    const char **ids = lua_newuserdatauv(L, (n ? n : 1) * sizeof *ids, 0);
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, 3, (lua_Integer)i + 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            return bind_raise_plain(L, 400, "bad_request", "message_ids must be a list of strings%s", "");
        ids[i] = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    int rc = nack ? channel_nack(ch, reader, ids, n, host_now(h)) : channel_ack(ch, reader, ids, n, host_now(h));
    if (rc == CHANNEL_EKIND)
        return bind_raise_plain(L, 400, "bad_request", "channel '%s' does not take acknowledgements (not a work_queue)", id);
    if (rc < 0)
        return bind_raise_plain(L, 500, "internal", "%s", channel_strerror(rc));
    lua_pushinteger(L, rc);
    return nack ? 1 : bind_durable_return(L, ch, 1, "an acknowledgement");
}

static int l_api_ack(lua_State *L) { return ack_or_nack(L, 0); }
static int l_api_nack(lua_State *L) { return ack_or_nack(L, 1); }

/* core.wait(id, after_seq, timeout) -> true when a message came, false on time-out.
 * Yields the calling coroutine. */

static int l_wait(lua_State *L)
{
    const char *id = luaL_checkstring(L, 1);
    lua_Integer after = luaL_checkinteger(L, 2);
    double timeout = luaL_checknumber(L, 3);
    if (!(timeout >= 0)) /* NaN or negative: do not wait */
        timeout = 0;
    if (timeout > 1e9)
        timeout = 1e9;
    channel *ch = host_channel(host_of(L), id);
    if (!ch) {
        sssn_system *s = system_current(L);
        ch = s ? system_channel(s, id) : NULL;
    }
    if (!ch)
        return luaL_error(L, "sssn: channel '%s' not found (wait)", id);
    return task_wait_channel(L, ch, after < 0 ? 0 : (uint64_t)after, timeout);
}

static int l_metrics(lua_State *L)
{
    strbuf b = STRBUF_INIT;
    host_registry_events_sync(host_of(L)); /* a purge's deferred events are counted */
    host_metrics_text(&b, host_of(L));
    return push_buf(L, &b);
}

/* core.http(method, url, body|nil, bearer|nil, timeout) -> status, body | nil, error
 * Yields the calling task while the request is in flight. bearer `true` sends the host's
 * credential (--token-file), refused when it has none. */
static int l_http(lua_State *L)
{
    host *h = host_of(L);
    size_t len = 0;
    http_client_req req = {.method = luaL_checkstring(L, 1), .url = luaL_checkstring(L, 2)};
    req.body = luaL_optlstring(L, 3, NULL, &len);
    req.len = len;
    if (lua_type(L, 4) == LUA_TBOOLEAN && lua_toboolean(L, 4)) {
        /* the host's credential: sent without ever being a Lua value */
        if (!h->credential)
            return luaL_error(L, "sssn: this host has no credential to send (start it with --token-file FILE)");
        req.bearer = h->credential;
    } else {
        req.bearer = luaL_optstring(L, 4, NULL);
    }
    req.timeout = luaL_optnumber(L, 5, 30);
    if (!(req.timeout > 0 && req.timeout <= HTTP_CLIENT_MAX_TIMEOUT))
        return luaL_error(L, "sssn: an HTTP time-out must be a number of seconds between 0 and %f (got %f)",
                          HTTP_CLIENT_MAX_TIMEOUT, req.timeout);
    luaL_argcheck(L, strncmp(req.url, "http://", 7) == 0 || strncmp(req.url, "https://", 8) == 0, 2,
                  "an http:// URL is expected");
    if (!task_current(L))
        return luaL_error(L, "sssn: HTTP calls wait, so they need a system's setup, step or subscriber");
    if (!h->http && !(h->http = http_client_new(h->rt)))
        return luaL_error(L, "sssn: cannot start the HTTP client");
    return task_wait_http(L, h->http, &req);
}

/* core.has_credential() -> whether the host sends a credential (--token-file) of its own */
static int l_has_credential(lua_State *L)
{
    lua_pushboolean(L, host_of(L)->credential != NULL);
    return 1;
}

static int l_instance_id(lua_State *L)
{
    lua_pushstring(L, host_of(L)->instance_id);
    return 1;
}

static int l_registry_url(lua_State *L)
{
    host *h = host_of(L);
    if (h->registry_url)
        lua_pushstring(L, h->registry_url);
    else
        lua_pushnil(L);
    return 1;
}

static int l_endpoint(lua_State *L)
{
    host *h = host_of(L);
    if (h->endpoint)
        lua_pushstring(L, h->endpoint);
    else
        lua_pushnil(L);
    return 1;
}

static const luaL_Reg api_funcs[] = {
    {"error_kind", bind_l_error_kind},
    {"api_info", l_api_info},
    {"api_channels", l_api_channels},
    {"api_channel_visibility", l_api_channel_visibility},
    {"registry_max_ttl", l_registry_max_ttl},
    {"api_read", l_api_read},
    {"api_write", l_api_write},
    {"api_write_text", l_api_write_text},
    {"api_ack", l_api_ack},
    {"api_nack", l_api_nack},
    {"metrics", l_metrics},
    {"wait", l_wait},
    {"endpoint", l_endpoint},
    {"http", l_http},
    {"has_credential", l_has_credential},
    {"instance_id", l_instance_id},
    {"registry_url", l_registry_url},
    {NULL, NULL},
};

void lua_api_register(lua_State *L) { luaL_setfuncs(L, api_funcs, 0); }
