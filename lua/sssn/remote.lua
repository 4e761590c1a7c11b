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

function RemoteRegistry.new(url)
  return setmetatable({ kind = "remote", url = (url:gsub("/+$", "")) }, RemoteRegistry)
end

local function check_self(self, fn)
  if getmetatable(self) ~= RemoteRegistry then
    error(("sssn.registry.%s: call it with a colon: sssn.registry:%s(...)"):format(fn, fn), 3)
  end
end

-- Returns the decoded body of a 200, nil for a 404 when allowed, or raises a clear error.
function RemoteRegistry:_call(fn, method, path, body, allow_404)
  local status, resp = core.http(method, self.url .. path, body and core.json_encode(body) or nil, nil, 10)
  if not status then
    error(("sssn.registry:%s: the registry at %s is unreachable: %s"):format(fn, self.url, resp), 3)
  end
  if status == 200 then return core.json_decode(resp) end
  if status == 404 and allow_404 then return nil end
  error(("sssn.registry:%s: %s: %s (HTTP %d from %s)"):format(fn, status_words[status] or "error",
    detail_of(resp), status, self.url), 3)
end

local function check_ttl(ttl, fn)
  if not (ttl == nil or (type(ttl) == "number" and ttl > 0 and ttl < 1e9)) then
    error(("sssn.registry:%s: ttl must be a positive number of seconds (got %s)"):format(fn, tostring(ttl)), 3)
  end
end

-- What the calling system registered here: refreshed before expiry while it runs (unless
-- keepalive = false) and deleted when it stops.
function RemoteRegistry:_track(kind, id, path, body, ttl, keepalive)
  local sys = core.current_system()
  if not sys then return end
  local regs = rawget(sys, "_remote_registrations")
  if not regs then
    regs = {}
    rawset(sys, "_remote_registrations", regs)
    sys:on_stop(function()
      for _, r in pairs(regs) do
        pcall(core.http, "DELETE", self.url .. r.path, nil, nil, 2)
      end
    end)
  end
  local key = kind .. "/" .. id
  local gen = (regs[key] and regs[key].gen or 0) + 1
  regs[key] = { path = path, gen = gen }
  if keepalive == false then return end
  ttl = ttl or core.host_stats().ttl
  core.spawn(function()
    while true do
      core.sleep(ttl * 2 / 3)
      if not (regs[key] and regs[key].gen == gen) then return end
      local ok, e = pcall(self._call, self, "keep-alive", "PUT", ("%s?ttl=%s"):format(path, ttl), body)
      if not ok then core.log("warn", ("cannot refresh %s '%s' at %s: %s"):format(kind, id, self.url, e)) end
    end
  end)
end

function RemoteRegistry:_untrack(kind, id)
  local sys = core.current_system()
  local regs = sys and rawget(sys, "_remote_registrations")
  if regs then regs[kind .. "/" .. id] = nil end
end

-- PUTs a normalized entry for ttl or this host's --ttl (not the registry host's default), then
-- keeps it alive for the calling system (unless told not to).
function RemoteRegistry:_register(fn, kind, plural, id, body, ttl, opts)
  local path = ("/registry/%s/%s"):format(plural, escape(id))
  ttl = ttl or core.host_stats().ttl
  local entry = self:_call(fn, "PUT", ("%s?ttl=%s"):format(path, ttl), body)
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

function RemoteRegistry:deregister_channel(id)
  check_self(self, "deregister_channel")
  self:_untrack("channel", id)
  return self:_call("deregister_channel", "DELETE", "/registry/channels/" .. escape(id), nil, true) ~= nil
end

function RemoteRegistry:deregister_system(id)
  check_self(self, "deregister_system")
  self:_untrack("system", id)
  return self:_call("deregister_system", "DELETE", "/registry/systems/" .. escape(id), nil, true) ~= nil
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
