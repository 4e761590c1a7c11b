-- sssn.remote: other hosts over HTTP. RemoteRegistry offers sssn.registry's methods against a
-- host started with --listen (used when this host runs with --registry URL); RemoteChannel
-- is what self:connect returns for a channel served by another host. Every call yields the
-- calling coroutine while the request is in flight (core.http), so nothing blocks the host.
local core = require "sssn.core"
local Registry = require "sssn.registry"

local M = {}

local function escape(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end
M.escape = escape

local function detail_of(body)
  local ok, v = pcall(core.json_decode, body)
  if ok and type(v) == "table" and type(v.detail) == "string" then return v.detail end
  return (body or ""):sub(1, 200)
end

local status_words = {
  [400] = "bad request", [401] = "unauthorised", [403] = "forbidden", [404] = "not found",
  [405] = "not allowed", [413] = "too large", [429] = "busy", [500] = "server error",
}

-- JSON null in a decoded envelope becomes nil, as for local reads.
local envelope_fields = { "sender_id", "correlation_id", "reply_to", "recipient_id" }
local function clean_message(m)
  for _, k in ipairs(envelope_fields) do
    if m[k] == core.null then m[k] = nil end
  end
  if m.metadata == core.null or m.metadata == nil then m.metadata = {} end
  if type(m.content) ~= "table" then m.content = { data = nil } end
  if m.content.data == core.null then m.content.data = nil end
  return m
end

-- Registry -----------------------------------------------------------------------------

local RemoteRegistry = {}
RemoteRegistry.__index = RemoteRegistry
M.RemoteRegistry = RemoteRegistry

-- Seconds between attempts of a registration another instance took over (and of a refresh
-- the registry did not answer, doubling up to RETRY_MAX).
local RETRY, RETRY_MAX = 1, 5
-- Seconds a watch for takeovers holds its long-poll.
local WATCH_WAIT = 30

function RemoteRegistry.new(url)
  return setmetatable({ kind = "remote", url = (url:gsub("/+$", "")) }, RemoteRegistry)
end

local function check_self(self, fn)
  if getmetatable(self) ~= RemoteRegistry then
    error(("sssn.registry.%s: call it with a colon: sssn.registry:%s(...)"):format(fn, fn), 3)
  end
end

-- An error the host counts as a step error but does not log again: its message has been
-- logged once already, when the registry became unreachable (the host's task error logger
-- skips tables with sssn_reported = true).
local Reported = { __tostring = function(e) return e.message end }
local function reported(message) return setmetatable({ sssn_reported = true, message = message }, Reported) end
M.reported = reported

-- One line when the registry's state changes (unreachable / reachable again), not one per call.
function RemoteRegistry:_reachable(ok, why)
  if ok then
    if self.reachable == false then core.log("info", ("the registry at %s is reachable again"):format(self.url)) end
    self.reachable = true
  else
    if self.reachable ~= false then
      core.log("warn", ("the registry at %s is unreachable (%s): registry calls fail until it is back")
        :format(self.url, tostring(why)))
    end
    self.reachable = false
  end
end

-- One HTTP request to the registry: status and body, or nil and the transport error.
function RemoteRegistry:_request(method, path, body, timeout)
  local status, resp = core.http(method, self.url .. path, body and core.json_encode(body) or nil, nil, timeout or 10)
  self:_reachable(status ~= nil, resp)
  return status, resp
end

local function raise_http(fn, url, status, resp)
  error(("sssn.registry:%s: %s: %s (HTTP %d from %s)"):format(fn, status_words[status] or "error",
    detail_of(resp), status, url), 0)
end

-- Returns the decoded body of a 200, nil for a 404 when allowed, or raises a clear error.
function RemoteRegistry:_call(fn, method, path, body, allow_404)
  local status, resp = self:_request(method, path, body)
  if not status then
    error(reported(("sssn.registry:%s: the registry at %s is unreachable: %s"):format(fn, self.url, resp)))
  end
  if status == 200 then return core.json_decode(resp) end
  if status == 404 and allow_404 then return nil end
  raise_http(fn, self.url, status, resp)
end

local function check_ttl(ttl, fn)
  if not (ttl == nil or (type(ttl) == "number" and ttl > 0 and ttl < 1e9)) then
    error(("sssn.registry:%s: ttl must be a positive number of seconds (got %s)"):format(fn, tostring(ttl)), 3)
  end
end

local function nonnull(v) if v ~= core.null then return v end end

-- Who registrations of the calling system are made as: "<host instance>/<system id>"; nil
-- outside any system (the REPL's prompt): an operator.
local function registrant_of(sys) return sys and (core.instance_id() .. "/" .. sys.id) or nil end

local function with_registrant(path, registrant, sep)
  return registrant and ("%s%sregistrant=%s"):format(path, sep or "?", escape(registrant)) or path
end

-- What a system registered here, kept on the system: refreshed before expiry while it runs
-- (unless keepalive = false) and deleted when it stops, if it still owns it. A registration
-- another instance took over is displaced: it retries every RETRY s until the entry is free.
local function tracking(self, sys)
  local t = rawget(sys, "_remote_registrations")
  if t then return t end
  t = { regs = {}, registrant = registrant_of(sys) }
  rawset(sys, "_remote_registrations", t)
  sys:on_stop(function()
    for _, r in pairs(t.regs) do
      pcall(core.http, "DELETE", self.url .. with_registrant(r.path, t.registrant), nil, nil, 2)
    end
  end)
  return t
end

function RemoteRegistry:_displaced(reg, holder, endpoint)
  if reg.displaced then return end
  reg.displaced = true
  core.log("info", ("%s '%s' at %s was taken over by %s: taking it back once it is free"):format(reg.kind,
    reg.id, self.url, Registry.holder_text(holder, endpoint)))
end

-- One keep-alive attempt: renews the entry if it is still this instance's, registers it again
-- if it is gone, changes nothing (409) if another instance holds it.
function RemoteRegistry:_refresh(t, reg)
  local status, resp = self:_request("PUT", with_registrant(("%s?ttl=%s&refresh=true"):format(reg.path, reg.ttl),
    t.registrant, "&"), reg.body)
  reg.failing = not status
  if status == 200 then
    if reg.displaced then
      core.log("info", ("took %s '%s' back at %s: the entry that replaced it is gone"):format(reg.kind, reg.id, self.url))
    end
    reg.displaced = false
  elseif status == 409 then
    local ok, body = pcall(core.json_decode, resp)
    local e = ok and type(body) == "table" and type(body.error) == "table" and body.error or {}
    self:_displaced(reg, nonnull(e.registrant), nonnull(e.endpoint))
  elseif status then
    core.log("warn", ("cannot refresh %s '%s' at %s: %s (HTTP %d)"):format(reg.kind, reg.id, self.url,
      detail_of(resp), status))
  end -- unreachable: _request logged the state change
end

function RemoteRegistry:_keep(t, key, reg)
  reg.task = core.spawn(function()
    local backoff = RETRY
    while t.regs[key] == reg do
      local wait = reg.ttl * 2 / 3
      if reg.displaced then wait = RETRY end
      if reg.failing then
        wait, backoff = math.min(wait, backoff), math.min(backoff * 2, RETRY_MAX)
      else
        backoff = RETRY
      end
      core.sleep(wait)
      if t.regs[key] ~= reg then return end
      self:_refresh(t, reg)
    end
  end)
end

-- Watches the registry for takeovers of this system's entries (events filtered by its
-- registrant), so a displaced registration starts retrying at once, not at its next
-- refresh. From index 0: a takeover right after the first registration is not missed.
function RemoteRegistry:_watch(t)
  if t.watcher then return end
  t.watcher = core.spawn(function()
    local index, backoff = 0, RETRY
    while next(t.regs) do
      local status, resp = self:_request("GET", with_registrant(
        ("/registry/events?index=%d&wait=%d"):format(index, WATCH_WAIT), t.registrant, "&"), nil, WATCH_WAIT + 10)
      local ok, res = status == 200, nil
      if ok then ok, res = pcall(core.json_decode, resp) end
      if ok and type(res) == "table" and type(res.events) == "table" then
        backoff = RETRY
        index = math.tointeger(res.index) or index
        -- the last event about each entry says whose it is now
        local last = {}
        for _, ev in ipairs(res.events) do last[ev.kind .. "/" .. ev.id] = ev end
        for key, ev in pairs(last) do
          local reg = t.regs[key]
          if reg and reg.keepalive and ev.event == "replaced" and ev.previous_registrant == t.registrant then
            self:_displaced(reg, nonnull(ev.registrant), type(ev.entry) == "table" and nonnull(ev.entry.endpoint) or nil)
            if reg.task then core.cancel(reg.task) end
            self:_keep(t, key, reg)
          end
        end
      else
        core.sleep(backoff) -- unreachable (logged once) or an unexpected answer
        backoff = math.min(backoff * 2, RETRY_MAX)
      end
    end
    t.watcher = nil
  end)
end

function RemoteRegistry:_track(kind, id, path, body, ttl, keepalive)
  local sys = core.current_system()
  if not sys then return end
  local t = tracking(self, sys)
  local key = kind .. "/" .. id
  local old = t.regs[key]
  if old and old.task then core.cancel(old.task) end
  local reg = { kind = kind, id = id, path = path, body = body, ttl = ttl, keepalive = keepalive }
  t.regs[key] = reg
  if not keepalive then return end
  self:_keep(t, key, reg)
  self:_watch(t)
end

function RemoteRegistry:_untrack(kind, id)
  local sys = core.current_system()
  local t = sys and rawget(sys, "_remote_registrations")
  local reg = t and t.regs[kind .. "/" .. id]
  if not reg then return end
  t.regs[kind .. "/" .. id] = nil
  if reg.task then core.cancel(reg.task) end
end

-- PUTs a normalized entry as the calling system's (taking it over from any other instance),
-- for ttl or this host's --ttl, then keeps it alive for that system (unless told not to).
function RemoteRegistry:_register(fn, kind, plural, id, body, ttl, opts)
  local path = ("/registry/%s/%s"):format(plural, escape(id))
  ttl = ttl or core.host_stats().ttl
  local registrant = registrant_of(core.current_system())
  local entry = self:_call(fn, "PUT", with_registrant(("%s?ttl=%s"):format(path, ttl), registrant, "&"), body)
  self:_track(kind, id, path, body, ttl, not (opts and opts.keepalive == false))
  return entry
end

function RemoteRegistry:register_channel(info, ttl, opts)
  check_self(self, "register_channel")
  local c = Registry.normalize_channel(info)
  check_ttl(ttl, "register_channel")
  return self:_register("register_channel", "channel", "channels", c.id, c, ttl, opts)
end

function RemoteRegistry:register_system(descriptor, ttl, opts)
  check_self(self, "register_system")
  local d = Registry.normalize_system(descriptor)
  check_ttl(ttl, "register_system")
  return self:_register("register_system", "system", "systems", d.system_id, d, ttl, opts)
end

-- true when removed; false and why otherwise (not registered, or another instance's entry:
-- a system removes only its own; outside any system, an operator, whatever is there).
function RemoteRegistry:_deregister(kind, plural, id)
  local fn = "deregister_" .. kind
  if type(id) ~= "string" then error(("sssn.registry:%s: id must be a string"):format(fn), 3) end
  self:_untrack(kind, id)
  local path = with_registrant(("/registry/%s/%s"):format(plural, escape(id)), registrant_of(core.current_system()))
  local status, resp = self:_request("DELETE", path)
  if not status then
    error(reported(("sssn.registry:%s: the registry at %s is unreachable: %s"):format(fn, self.url, resp)))
  end
  if status == 200 then return true end
  if status == 404 then return false, Registry.not_removed(kind, id, "absent") end
  if status == 409 then
    local ok, body = pcall(core.json_decode, resp)
    local e = ok and type(body) == "table" and type(body.error) == "table" and body.error or {}
    return false, Registry.not_removed(kind, id, "not_owner", nonnull(e.registrant), nonnull(e.endpoint))
  end
  raise_http(fn, self.url, status, resp)
end

function RemoteRegistry:deregister_channel(id)
  check_self(self, "deregister_channel")
  return self:_deregister("channel", "channels", id)
end

function RemoteRegistry:deregister_system(id)
  check_self(self, "deregister_system")
  return self:_deregister("system", "systems", id)
end

local function query(params)
  local parts = {}
  for _, kv in ipairs(params) do
    if kv[2] ~= nil then parts[#parts + 1] = kv[1] .. "=" .. escape(kv[2]) end
  end
  return #parts > 0 and "?" .. table.concat(parts, "&") or ""
end

function RemoteRegistry:find_channels(q)
  check_self(self, "find_channels")
  q = q or {}
  return self:_call("find_channels", "GET", "/registry/channels" ..
    query { { "visibility", q.visibility }, { "name", q.name } })
end

function RemoteRegistry:find_systems(q)
  check_self(self, "find_systems")
  if type(q) == "string" then q = { capability = q } end
  q = q or {}
  return self:_call("find_systems", "GET", "/registry/systems" .. query { { "capability", q.capability } })
end

function RemoteRegistry:get_channel(id)
  check_self(self, "get_channel")
  return self:_call("get_channel", "GET", "/registry/channels/" .. escape(id), nil, true)
end

function RemoteRegistry:get_system(id)
  check_self(self, "get_system")
  return self:_call("get_system", "GET", "/registry/systems/" .. escape(id), nil, true)
end

function RemoteRegistry:events(index, wait)
  check_self(self, "events")
  index = index or 0
  if index == math.maxinteger then -- "from now on": ask for the current index
    index = self:_call("events", "GET", "/registry/events?limit=1&index=" .. math.maxinteger).index
  end
  local res = self:_call("events", "GET", ("/registry/events?index=%d%s"):format(index,
    wait and wait > 0 and ("&wait=%s"):format(wait) or ""))
  return res.events, res.index
end

function RemoteRegistry:maintain()
  check_self(self, "maintain")
  return 0 -- the registry's own host purges on its maintenance timer
end

function RemoteRegistry:counts()
  check_self(self, "counts")
  local h = self:_call("counts", "GET", "/health")
  return h.registry.channels, h.registry.systems, 0
end

-- Channels -----------------------------------------------------------------------------

local RemoteChannel = {}
RemoteChannel.__index = RemoteChannel
M.RemoteChannel = RemoteChannel

--- info: a ChannelInfo with an endpoint; reader: the id this side reads as (its Bearer token).
function RemoteChannel.new(info, reader)
  return setmetatable({ id = info.id, info = info, endpoint = (info.endpoint:gsub("/+$", "")),
    reader = reader, subscriptions = {} }, RemoteChannel)
end

function RemoteChannel:_call(fn, method, suffix, body, timeout)
  local url = ("%s/channels/%s%s"):format(self.endpoint, escape(self.id), suffix)
  local status, resp = core.http(method, url, body and core.json_encode(body) or nil, self.reader, timeout or 30)
  if not status then
    error(("sssn: channel '%s' at %s is unreachable: %s (%s)"):format(self.id, self.endpoint, resp, fn), 0)
  end
  if status == 200 then return core.json_decode(resp) end
  error(("sssn: channel '%s' at %s: %s: %s (%s)"):format(self.id, self.endpoint,
    status_words[status] or ("HTTP " .. status), detail_of(resp), fn), 0)
end

local function messages_of(res)
  local list = res.messages or {}
  for _, m in ipairs(list) do clean_message(m) end
  return list
end

function RemoteChannel:read(opts)
  opts = opts or {}
  local res = self:_call("read_channel", "GET", query { { "limit", opts.limit }, { "after", opts.after },
    { "exclusive", opts.exclusive and "true" or nil }, { "wait", opts.wait } }, nil, (opts.wait or 0) + 30)
  return messages_of(res), res.missed or 0
end

function RemoteChannel:claim(opts)
  opts = opts or {}
  return (self:read { limit = opts.limit, exclusive = true })
end

function RemoteChannel:write(data, opts)
  opts = opts or {}
  local env = { content = { data = data }, metadata = opts.metadata or {}, sender_id = self.reader,
    correlation_id = opts.correlation_id, reply_to = opts.reply_to, recipient_id = opts.recipient_id }
  local res = self:_call("write_channel", "PUT", "?direct=true", env)
  return res.item_id
end

function RemoteChannel:ack(ids, nack)
  local res = self:_call(nack and "nack_channel" or "acknowledge_channel", "POST",
    nack and "/nack" or "/acknowledge", { message_ids = core.array(ids) })
  return nack and res.nacked or res.acknowledged
end

--- Delivers each new message to fn from a background coroutine of the calling system, over
--- long-polls. On failure it retries with backoff and resumes after the last message it
--- delivered; if the serving host restarted (a new epoch), it starts from the oldest held.
function RemoteChannel:subscribe(fn, system_id)
  local sub = { active = true }
  self.subscriptions[#self.subscriptions + 1] = sub
  sub.task = core.spawn(function()
    local after, epoch, backoff, failing = nil, nil, 0.1, false
    while sub.active do
      -- right after a failure, ask without waiting: the host may have restarted (new epoch)
      local ok, res = pcall(self._call, self, "subscribe_channel", "GET",
        query { { "limit", 100 }, { "wait", failing and 0 or 20 }, { "after", after } }, nil, 30)
      if not sub.active then return end
      if not ok then
        if not failing then core.log("warn", ("%s; retrying"):format(res)) end
        failing = true
        core.sleep(backoff)
        backoff = math.min(backoff * 2, 5)
      else
        if failing then core.log("info", ("channel '%s' at %s is back"):format(self.id, self.endpoint)) end
        failing, backoff = false, 0.1
        if epoch and res.epoch ~= epoch then
          after, epoch = 0, res.epoch -- the serving host restarted: take what its channel holds
        else
          epoch = res.epoch
          for _, m in ipairs(messages_of(res)) do
            if not sub.active then return end
            local fok, ferr = pcall(fn, m)
            if not fok then core.log("error", ("subscriber of '%s' failed: %s"):format(self.id, tostring(ferr))) end
            after = m.seq
          end
        end
      end
    end
  end)
  return sub
end

--- Ends the subscriptions at once: a poll in flight is aborted, so it cannot move this
--- reader's cursor past messages nobody will deliver.
function RemoteChannel:unsubscribe()
  for _, sub in ipairs(self.subscriptions) do
    sub.active = false
    if sub.task then core.cancel(sub.task) end
  end
  self.subscriptions = {}
end

return M
