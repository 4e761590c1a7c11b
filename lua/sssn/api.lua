-- sssn.api: the HTTP API router. The host runs handle() as a coroutine per request in its own
-- API state; long-polls wait with core.wait, which yields. Channel routes follow the Python
-- sssn ChannelServer so its ChannelClient works unchanged; registry routes, /health and
-- /metrics are this host's own. Every error is JSON {"detail", "error": {"type", "message"}}.
local core = require "sssn.core"
local Registry = require "sssn.registry"

local M = {}

local MAX_WAIT = 300

local function json(status, value)
  return status, "application/json", type(value) == "string" and value or core.json_encode(value)
end

local function err(status, etype, message)
  return json(status, { detail = message, error = { type = etype, message = message } })
end

-- Percent-decoding; a query also reads "+" as a space, a path does not.
local function percent_decode(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function unescape(s) return percent_decode((s:gsub("+", " "))) end

local function parse_query(q)
  local t = {}
  for pair in q:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    t[unescape(k)] = unescape(v)
  end
  return t
end

local function boolean(q, name)
  local v = q[name]
  if v == nil or v == "" then return false end
  v = v:lower()
  if v == "true" or v == "1" or v == "yes" then return true end
  if v == "false" or v == "0" or v == "no" then return false end
  return nil, ("%s must be true or false, not '%s'"):format(name, q[name])
end

local function number(q, name, min, max)
  local v = q[name]
  if v == nil or v == "" then return nil end
  local n = tonumber(v)
  if not n or n ~= n or n < min or n > max then
    return nil, ("%s must be a number between %s and %s, not '%s'"):format(name, min, max, v)
  end
  return n
end

local function integer(q, name, min, max)
  local n, e = number(q, name, min, max)
  if e then return nil, e end
  if n and math.type(n) ~= "integer" then
    if n ~= math.floor(n) then return nil, ("%s must be an integer, not '%s'"):format(name, q[name]) end
    n = math.tointeger(n)
  end
  return n
end

-- Calls a binding. Bindings raise (bind/errors.h); here that becomes nil, status, type and
-- the message, which the routes answer with.
local function call(fn, ...)
  local r = table.pack(pcall(fn, ...))
  if r[1] then return table.unpack(r, 2, r.n) end
  local status, etype = core.error_kind()
  return nil, status, etype, tostring(r[2])
end

local function decode_body(body)
  if body == "" then return nil, "the request body is empty: send JSON" end
  local ok, value = pcall(core.json_decode, body)
  if not ok then return nil, ("malformed JSON body: %s"):format(tostring(value):gsub("^.-invalid JSON: ", "")) end
  return value
end

-- Who acts ----------------------------------------------------------------------------
-- `who` is the principal the pipeline's authentication stage found (svc/auth.h): subject,
-- role (1 read, 2 write, 3 admin), enforced (false for the open stage: everything allowed, as
-- before authentication existed) and scope (a set of channel ids, or nil for every channel).

local READ, WRITE, ADMIN = 1, 2, 3
local OPERATION = { [READ] = "read", [WRITE] = "write", [ADMIN] = "admin" }
local ID_MAX = 256

local function permits(who, need, channel_id)
  if not who.enforced then return true end
  if who.role < need then return false end
  return channel_id == nil or who.scope == nil or who.scope[channel_id] == true
end

-- 403 in the Python ChannelServer's words.
local function forbidden(need, channel_id)
  local message = channel_id and ("Token does not permit '%s' on channel '%s'."):format(OPERATION[need], channel_id)
    or ("Token does not permit '%s'."):format(OPERATION[need])
  return err(403, "forbidden", message)
end

-- A private channel or entry is served only to an admin, to a token whose scope names it, and
-- (registry entries) to the subject that registered it; everyone else is told it does not exist.
local function may_see_private(who, id, owner)
  return not who.enforced or who.role >= ADMIN or (who.scope ~= nil and who.scope[id] == true)
    or (owner ~= nil and owner == who.subject)
end

-- The id a request reads, claims, acknowledges and writes as: the caller's subject, or with
-- ?reader=NAME one of the caller's own systems (a host reading for several): NAME when it is the
-- subject or starts with "<subject>/", else "<subject>/NAME".
local function identity_of(q, who)
  local r = q.reader
  if r == nil or r == "" then return who.subject end
  local s = who.subject
  if r ~= s and r:sub(1, #s + 1) ~= s .. "/" then r = s .. "/" .. r end
  if #r > ID_MAX then
    return nil, ("the reader '%s' is %d bytes, longer than %d"):format(r, #r, ID_MAX)
  end
  return r
end

-- Channels ----------------------------------------------------------------------------

local function read_channel(id, q, reader)
  local limit, e1 = integer(q, "limit", 1, 10000)
  local wait, e2 = number(q, "wait", 0, MAX_WAIT)
  local exclusive, e3 = boolean(q, "exclusive")
  local e = e1 or e2 or e3
  if e then return err(400, "bad_request", e) end
  local after_seq, after_id
  if q.after and q.after ~= "" then
    after_seq = math.tointeger(tonumber(q.after))
    if not after_seq or after_seq < 0 then after_id = q.after end
  end
  local deadline = wait and core.now() + wait
  while true do
    local body, count, last, msg = call(core.api_read, id, reader, limit or 100, after_seq, after_id, exclusive)
    if not body then return err(count, last, msg) end
    -- a reader ahead of the channel (it knew an earlier run of this host) is answered at
    -- once, so it sees the new epoch instead of waiting
    if count > 0 or not deadline or (after_seq and after_seq > last) then return json(200, body) end
    local left = deadline - core.now()
    if left <= 0 then return json(200, body) end
    -- a claim that lapses is work on offer again without any write: exclusive waits look again
    -- every second
    core.wait(id, last, exclusive and math.min(left, 1) or left)
  end
end

local function write_channel(id, q, writer, body, who)
  local direct, e = boolean(q, "direct")
  if e then return err(400, "bad_request", e) end
  local item, status, etype, msg
  if not direct then
    -- the data itself: checked and stored as JSON text in C, never decoded here
    if body == "" then return err(400, "bad_request", "the request body is empty: send JSON") end
    item, status, etype, msg = call(core.api_write_text, id, writer, body)
    if not item then return err(status, etype, msg) end
    return json(200, { status = "accepted", item_id = item })
  end
  local value, derr = decode_body(body)
  if derr then return err(400, "bad_request", derr) end
  do
    if type(value) ~= "table" or type(value.content) ~= "table" then
      return err(400, "bad_request", "direct=true needs a whole message envelope with content.data")
    end
    for _, k in ipairs { "id", "sender_id", "correlation_id", "reply_to", "recipient_id" } do
      if value[k] ~= nil and value[k] ~= core.null and type(value[k]) ~= "string" then
        return err(400, "bad_request", ("envelope field %s must be a string"):format(k))
      end
      if value[k] == core.null then value[k] = nil end
    end
    -- a sender other than the caller is a forgery unless an admin writes it; the raw ?reader=
    -- name stands for the identity it resolves to
    local sender = value.sender_id
    if sender == nil or sender == q.reader then
      sender = writer
    elseif who.enforced and who.role < ADMIN and sender ~= who.subject
        and sender:sub(1, #who.subject + 1) ~= who.subject .. "/" then
      return err(403, "forbidden", ("only an admin may write as another sender: '%s' is not '%s'"):format(
        sender, who.subject))
    end
    value.sender_id = sender
    local meta = value.metadata
    if meta == core.null then meta = nil end
    if meta ~= nil and type(meta) ~= "table" then return err(400, "bad_request", "metadata must be an object") end
    item, status, etype, msg = call(core.api_write, id, value.sender_id, value.content.data, meta,
      value.correlation_id, value.reply_to, value.recipient_id, value.id)
  end
  if not item then return err(status, etype, msg) end
  return json(200, { status = "accepted", item_id = item })
end

local function ack(id, reader, body, nack)
  local value, derr = decode_body(body)
  if derr then return err(400, "bad_request", derr) end
  if type(value) ~= "table" or type(value.message_ids) ~= "table" then
    return err(400, "bad_request", 'the body must be {"message_ids": [...]}')
  end
  local fn = nack and core.api_nack or core.api_ack
  local n, status, etype, msg = call(fn, id, reader, value.message_ids)
  if not n then return err(status, etype, msg) end
  return json(200, nack and { status = "ok", nacked = n } or { status = "ok", acknowledged = n })
end

-- Registry ----------------------------------------------------------------------------
-- The same bindings as sssn.registry, so these routes answer from the host's registry
-- backend: its own registry, or with --registry another host's (the request waits for it).

-- The status of a backend failure (nil, type, message from a binding).
local FAILURE_STATUS = { bad_request = 400, forbidden = 403, not_found = 404, limit = 429, unreachable = 502 }
local function failure(etype, message)
  return err(FAILURE_STATUS[etype] or (core.registry_url() and 502 or 500), etype, message)
end

-- What a caller may see of the registry: nil for everything (admins, the open stage), else
-- the viewer the bindings filter private entries with.
local function viewer_of(who)
  if not who.enforced or who.role >= ADMIN then return nil end
  return { subject = who.subject, scope = who.scope }
end

local PAGE_DEFAULT, PAGE_MAX = 1000, 10000

-- One page: at most ?limit= entries (default 1000) with ids after ?after=, in id order; a full
-- page means there may be more (ask again with after= the last id).
local function registry_list(kind, q, who)
  local limit, e = integer(q, "limit", 1, PAGE_MAX)
  if e then return err(400, "bad_request", e) end
  local body, etype, msg = core.api_reg_list(kind, q.visibility ~= "" and q.visibility or nil,
    q.name ~= "" and q.name or nil, q.capability ~= "" and q.capability or nil,
    q.after ~= "" and q.after or nil, limit or PAGE_DEFAULT, viewer_of(who))
  if not body then return failure(etype, msg) end
  return json(200, body)
end

local function registry_get(kind, id, who)
  local entry, etype, msg = core.api_reg_get(kind, id, viewer_of(who))
  if entry then return json(200, entry) end
  if etype then return failure(etype, msg) end
  return err(404, "not_found", ("%s '%s' is not registered"):format(kind, id))
end

local REGISTRANT_MAX = 512

-- The registrant a registry request acts for (?registrant=R): nil for none (an operator), or
-- nil and an error for an empty or too long one. `name` is the parameter (registrant_prefix
-- is checked the same way).
local function registrant_of(q, name)
  name = name or "registrant"
  local r = q[name]
  if r == nil then return nil end
  if r == "" then return nil, ("%s must not be empty (leave it out to act as an operator)"):format(name) end
  if #r > REGISTRANT_MAX then
    return nil, ("%s is %d bytes, longer than %d"):format(name, #r, REGISTRANT_MAX)
  end
  return r
end

local function check_entry_id(id)
  if #id > Registry.ID_MAX then
    return ("the id is %d bytes, longer than the %d a registry id may have"):format(#id, Registry.ID_MAX)
  end
end

-- 409: another registrant holds the live entry; the error names it and its endpoint.
local function not_owner(kind, id, what, holder, endpoint)
  local message = ("%s; %s changed nothing"):format(
    Registry.not_removed(kind, id, "not_owner", holder, endpoint), what)
  return json(409, { detail = message, error = { type = "not_owner", message = message,
    registrant = holder or core.null, endpoint = endpoint or core.null } })
end

-- Whether the caller must own what it changes (ownership is checked in the bindings).
local function owner_checked(who) return who.enforced and who.role < ADMIN end

local function registry_put(kind, id, q, body, who)
  local ttl, e = number(q, "ttl", 0.001, 1e9)
  local refresh, e2 = boolean(q, "refresh")
  local registrant, e3 = registrant_of(q)
  e = e or e2 or e3 or check_entry_id(id)
  if e then return err(400, "bad_request", e) end
  local value, derr = decode_body(body)
  if derr then return err(400, "bad_request", derr) end
  if type(value) ~= "table" or getmetatable(value) == core.array_mt or value[1] ~= nil then
    return err(400, "bad_request", "the body must be a JSON object")
  end
  if value.ttl ~= nil and ttl == nil then ttl = tonumber(value.ttl) end
  local max_ttl = core.registry_max_ttl()
  if ttl and ttl > max_ttl then
    return err(400, "bad_request", ("ttl %s is longer than the %s s this registry takes (--registry-max-ttl)"):format(
      ttl, max_ttl))
  end
  value.ttl, value.expires_at = nil, nil
  if kind == "channel" then value.id = value.id or id else value.system_id = value.system_id or id end
  if (value.id or value.system_id) ~= id then
    return err(400, "bad_request", ("the id in the body (%s) differs from the URL (%s)"):format(
      tostring(value.id or value.system_id), id))
  end
  -- expires_at and the entry's JSON; false, holder, endpoint; or nil, type, message
  local ok, done, a, b = pcall(function()
    if kind == "channel" then
      local c = Registry.normalize_channel(value, "register_channel")
      return core.reg_put("channel", c, c.id, c.name, c.visibility == "public", nil, ttl, false, registrant,
        refresh, true, who.subject, owner_checked(who))
    end
    local d, caps = Registry.normalize_system(value, "register_system")
    return core.reg_put("system", d, d.system_id, d.system_name, d.visibility == "public", caps, ttl, false,
      registrant, refresh, true, who.subject, owner_checked(who))
  end)
  if not ok then return err(400, "bad_request", (tostring(done):gsub("^[^:]*:%d+: ", ""))) end
  if done == false then return not_owner(kind, id, "the refresh", a, b) end
  if done == nil then return failure(a, b) end
  return json(200, a)
end

local function registry_delete(kind, id, q, who)
  local registrant, e = registrant_of(q)
  e = e or check_entry_id(id)
  if e then return err(400, "bad_request", e) end
  -- a private entry the caller may not see does not exist for it
  if owner_checked(who) and core.api_reg_get(kind, id) and not core.api_reg_get(kind, id, viewer_of(who)) then
    return err(404, "not_found", ("%s '%s' is not registered"):format(kind, id))
  end
  local ok, why, holder, endpoint = core.reg_remove(kind, id, registrant, who.subject, owner_checked(who))
  if ok then return json(200, { status = "ok", deregistered = id }) end
  if ok == nil then return failure(why, holder) end
  if why == "not_owner" then return not_owner(kind, id, "the deregistration", holder, endpoint) end
  return err(404, "not_found", ("%s '%s' is not registered"):format(kind, id))
end

-- Events after ?index=N, held up to ?wait=S when there are none; with ?registrant=R only
-- those about R's entries or taking one over from R, with ?registrant_prefix=P those of
-- every registrant starting with P (a host watches its own, "<instance>/"); the index moves
-- past the others.
local function registry_events(q, who)
  local index, e1 = integer(q, "index", 0, math.maxinteger)
  local wait, e2 = number(q, "wait", 0, MAX_WAIT)
  local limit, e3 = integer(q, "limit", 1, 10000)
  local registrant, e4 = registrant_of(q)
  local prefix, e5 = registrant_of(q, "registrant_prefix")
  local e = e1 or e2 or e3 or e4 or e5
  if e then return err(400, "bad_request", e) end
  local body, etype, msg = Registry.events_json(index or 0, limit or 1000, wait, registrant, prefix, viewer_of(who))
  if not body then return failure(etype, msg) end
  return json(200, body)
end

-- Routing -----------------------------------------------------------------------------

local function allow(method, allowed)
  for _, m in ipairs(allowed) do if m == method then return true end end
  return false
end

-- HEAD goes wherever GET does (the server leaves the body out), so it is listed with it.
local function not_allowed(method, path, allowed)
  local list = {}
  for _, m in ipairs(allowed) do
    list[#list + 1] = m
    if m == "GET" then list[#list + 1] = "HEAD" end
  end
  return err(405, "method_not_allowed", ("%s is not allowed on %s (allowed: %s)"):format(
    method, path, table.concat(list, ", ")))
end

-- A channel route for `who`: nil when it may go on, else the answer's status (and the rest) (404 for a private channel
-- it may not see, as for one that does not exist; 403 for a role or scope that falls short).
local function check_channel(who, need, id)
  if not who.enforced then return nil end -- callers test the status, then return all three values
  if id == "registry" and who.role < ADMIN then
    -- the registry's own event channel carries every entry, private ones too: admins read it,
    -- others watch /registry/events, which shows them only what they may see
    return forbidden(ADMIN, id)
  end
  if core.api_channel_visibility(id) == "private" and not may_see_private(who, id) then
    return err(404, "not_found", ("channel '%s' not found"):format(id))
  end
  if not permits(who, need, id) then return forbidden(need, id) end
end

--- One request, past the pipeline's authentication stage (svc/auth.h): who = {subject, role
--- (1 read, 2 write, 3 admin), enforced, scope (set of channel ids or nil)}; the subject is the
--- reader, claimer and sender unless ?reader= names one of its systems.
function M.handle(method, path, query, who, body)
  if method == "HEAD" then method = "GET" end -- the server leaves the body out
  local q = parse_query(query)
  local segs = {}
  for s in path:gmatch("[^/]+") do
    local seg = percent_decode(s)
    if seg:find("\0", 1, true) then return err(400, "bad_request", "a NUL byte (%00) in the path") end
    if not utf8.len(seg) then return err(400, "bad_request", "the path is not valid UTF-8 once decoded") end
    segs[#segs + 1] = seg
  end
  for k, v in pairs(q) do
    if not (utf8.len(k) and utf8.len(v)) then
      return err(400, "bad_request", "the query string is not valid UTF-8 once decoded")
    end
  end
  local n, s1 = #segs, segs[1]

  if s1 == "channels" and n == 1 then
    -- this host's channels the caller may read, with their counts (the dashboard's rates)
    if method ~= "GET" then return not_allowed(method, path, { "GET" }) end
    local out = {}
    for _, c in ipairs(core.api_channels()) do
      if not check_channel(who, READ, c.id) then out[#out + 1] = c end
    end
    return json(200, { channels = setmetatable(out, core.array_mt) })
  elseif s1 == "channels" and n >= 2 then
    local id = segs[2]
    local caller, e = identity_of(q, who)
    if not caller then return err(400, "bad_request", e) end
    if n == 2 then
      if method == "GET" then
        local st, ct, deny = check_channel(who, READ, id)
        if st then return st, ct, deny end
        return read_channel(id, q, caller)
      end
      if method == "PUT" or method == "POST" then
        local st, ct, deny = check_channel(who, WRITE, id)
        if st then return st, ct, deny end
        return write_channel(id, q, caller, body, who)
      end
      return not_allowed(method, path, { "GET", "PUT" })
    elseif n == 3 and segs[3] == "info" then
      if method ~= "GET" then return not_allowed(method, path, { "GET" }) end
      local st, ct, deny = check_channel(who, READ, id)
      if st then return st, ct, deny end
      local info, status, etype, msg = call(core.api_info, id)
      if not info then return err(status, etype, msg) end
      return json(200, info)
    elseif n == 3 and (segs[3] == "acknowledge" or segs[3] == "nack") then
      if method ~= "POST" then return not_allowed(method, path, { "POST" }) end
      local st, ct, deny = check_channel(who, READ, id)
      if st then return st, ct, deny end
      return ack(id, caller, body, segs[3] == "nack")
    end
  elseif s1 == "registry" and n >= 2 then
    local kinds = { channels = "channel", systems = "system" }
    local kind = kinds[segs[2]]
    local need = (method == "PUT" or method == "DELETE") and WRITE or READ
    if (kind or segs[2] == "events") and not permits(who, need) then return forbidden(need) end
    if n == 2 and segs[2] == "events" then
      if method ~= "GET" then return not_allowed(method, path, { "GET" }) end
      return registry_events(q, who)
    elseif kind and n == 2 then
      if method ~= "GET" then return not_allowed(method, path, { "GET" }) end
      return registry_list(kind, q, who)
    elseif kind and n == 3 then
      local id = segs[3]
      if method == "GET" then
        return registry_get(kind, id, who)
      elseif method == "PUT" then
        return registry_put(kind, id, q, body, who)
      elseif method == "DELETE" then
        return registry_delete(kind, id, q, who)
      end
      return not_allowed(method, path, { "GET", "PUT", "DELETE" })
    end
  elseif s1 == "health" and n == 1 then
    if method ~= "GET" then return not_allowed(method, path, { "GET" }) end
    if who.enforced and who.role < READ then return json(200, { status = "ok" }) end -- no credential
    local stats = core.host_stats()
    return json(200, { status = "ok", version = core.version, systems = stats.systems,
      channels = stats.channels, registry = { channels = stats.registry_channels, systems = stats.registry_systems },
      etcd = stats.etcd })
  elseif s1 == "metrics" and n == 1 then
    if method ~= "GET" then return not_allowed(method, path, { "GET" }) end
    if not permits(who, READ) then return forbidden(READ) end
    return 200, "text/plain; version=0.0.4", core.metrics()
  end
  return err(404, "not_found", ("no route for %s %s"):format(method, path))
end

return M
