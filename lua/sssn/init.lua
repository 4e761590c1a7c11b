-- sssn: the module every system script gets with `require "sssn"`.
-- The user-facing API (systems, channels, the registry handle, the clock) built on the
-- C bindings in sssn.core; no globals are set.
local core = require "sssn.core"

local sssn = {
  version = core.version,
  null = core.null,       -- JSON null (a NULL lightuserdata)
  json = { encode = core.json_encode, decode = core.json_decode },
}

local function check_table(value, what, fn)
  if type(value) ~= "table" then
    error(("sssn: %s must be a table (got %s) (%s)"):format(what, type(value), fn), 3)
  end
end

-- A set of field names, and the sorted list of them for error messages.
local function fields(...)
  local set, list = {}, { ... }
  for _, k in ipairs(list) do set[k] = true end
  table.sort(list)
  set[0] = table.concat(list, ", ")
  return set
end

-- Refuses a key of t that is not in `known` (a typo would otherwise be ignored silently).
local function check_fields(t, known, fn, what)
  for k in pairs(t) do
    if not known[k] or k == 0 then
      error(("sssn: unknown %s '%s' (%s; known: %s)"):format(what, tostring(k), fn, known[0]), 3)
    end
  end
end

--- Marks a table as a JSON array, so an empty one is written as [] rather than {}.
function sssn.array(t) return core.array(t) end

function sssn.now() return core.now() end

--- Waits `seconds` without blocking the host: the calling step/setup/subscriber yields.
function sssn.sleep(seconds) return core.sleep(seconds) end

--- sssn.log("info", "format %s", x): a log line tagged with the calling system's id.
function sssn.log(level, fmt, ...)
  core.log(level, select("#", ...) > 0 and fmt:format(...) or tostring(fmt))
end

-- Channels ---------------------------------------------------------------------------

local function channel_of_kind(kind)
  return function(cfg)
    check_table(cfg, "the channel config", "sssn." .. kind)
    return core.channel_new(kind, cfg)
  end
end

sssn.broadcast = channel_of_kind("broadcast")
sssn.work_queue = channel_of_kind("work_queue")
sssn.mailbox = channel_of_kind("mailbox")
sssn.periodic = channel_of_kind("periodic")
sssn.passthrough = channel_of_kind("passthrough")

--- Statistics of any channel of this host by id: writes, reads, dropped, held, pending...
function sssn.channel_stats(id) return core.channel_stats(id) end

-- Systems ----------------------------------------------------------------------------

local System = {}
System.__index = System
sssn.System = System

-- Options left out: one shared empty table rather than a new one per call (hot paths).
local NO_OPTS = setmetatable({}, { __newindex = function() error("sssn: options are read-only", 2) end })
local ROUTING_FIELDS = { "correlation_id", "reply_to", "recipient_id" }
local WRITE_OPTS = fields("metadata", "correlation_id", "reply_to", "recipient_id")
local READ_OPTS = fields("limit", "after", "exclusive", "wait")
local CLAIM_OPTS = fields("limit", "exclusive")
local REQUEST_OPTS = fields("reply_to", "timeout", "metadata", "recipient_id")

local function sys(self, fn)
  local handle = rawget(self, "_sys")
  if not handle then
    error(("sssn: system '%s' is not running yet (%s is available from setup on)"):format(
      tostring(rawget(self, "id")), fn), 3)
  end
  return handle
end

--- sssn.system{id=, name=, description=, tick_rate=, services={{name=, description=, parameters=}},
--- on_error="continue"|"stop", max_errors=} -> a system object; define setup/step on it.
local SYSTEM_FIELDS = fields("id", "name", "description", "tick_rate", "services", "on_error", "max_errors",
  "setup", "step")

function sssn.system(cfg)
  check_table(cfg, "the system config", "sssn.system")
  check_fields(cfg, SYSTEM_FIELDS, "sssn.system", "field")
  if type(cfg.id) ~= "string" or cfg.id == "" then
    error("sssn: a system needs an id (a non-empty string) (sssn.system)", 2)
  end
  local self = {}
  for k, v in pairs(cfg) do self[k] = v end
  self.name = self.name or self.id
  self.services = self.services or {}
  return setmetatable(self, System)
end

--- The system made for a script that defines global setup/step instead of returning one.
function sssn.system_from_globals(id)
  local g = _G
  local s = sssn.system { id = id, name = rawget(g, "name"), tick_rate = rawget(g, "tick_rate"),
    services = rawget(g, "services"), description = rawget(g, "description") }
  function s:setup() local f = rawget(g, "setup"); if f then return f(self) end end
  function s:step(dt) local f = rawget(g, "step"); if f then return f(self, dt) end end
  return s
end

function System:add_channel(ch)
  core.add_channel(sys(self, "add_channel"), ch)
  return ch
end

local function channel_id(id_or_info, fn)
  if type(id_or_info) == "table" then id_or_info = id_or_info.id end
  if type(id_or_info) ~= "string" then
    error(("sssn: expected a channel id or ChannelInfo (got %s) (%s)"):format(type(id_or_info), fn), 3)
  end
  return id_or_info
end

-- The remote channel `id` is connected as, or nil when it is local / not connected.
local function remote_of(self, id)
  local r = rawget(self, "_remote")
  return r and r[id]
end

--- Connects to a channel by id or ChannelInfo and returns its ChannelInfo. A channel of this
--- host is used directly; one served by another host (its ChannelInfo has an endpoint, from
--- the registry) is used over HTTP, with the same methods.
function System:connect(info_or_id)
  local handle = sys(self, "connect")
  local id = channel_id(info_or_id, "connect")
  if core.channel_exists(id) then return core.connect(handle, id) end
  local info = type(info_or_id) == "table" and info_or_id or sssn.registry:get_channel(id)
  if not info then error(("sssn: channel '%s' not found (connect)"):format(id), 2) end
  if type(info.endpoint) ~= "string" or info.endpoint == core.endpoint() then
    error(("sssn: channel '%s' not found in this host, and its ChannelInfo has no endpoint to reach it at (connect)")
      :format(id), 2)
  end
  local r = rawget(self, "_remote") or {}
  rawset(self, "_remote", r)
  r[id] = require("sssn.remote").RemoteChannel.new(info, self.id) -- loaded when first needed
  return info
end

local core_write = core.write

--- Writes data; opts: metadata, correlation_id, reply_to, recipient_id. Returns message id, seq.
function System:write_channel(id, data, opts)
  -- the common call, a local channel by id and no options, straight to the binding (which
  -- checks the rest); anything else takes the checks below
  if opts == nil and type(id) == "string" and rawget(self, "_remote") == nil then
    local handle = rawget(self, "_sys")
    if handle then return core_write(handle, id, data) end
  end
  if opts == nil then
    opts = NO_OPTS
  else
    check_table(opts, "the options", "write_channel")
    check_fields(opts, WRITE_OPTS, "write_channel", "option")
    if opts.metadata ~= nil and type(opts.metadata) ~= "table" then
      error(("sssn: opts.metadata must be a table (got %s) (write_channel)"):format(type(opts.metadata)), 2)
    end
    for _, k in ipairs(ROUTING_FIELDS) do
      if opts[k] ~= nil and type(opts[k]) ~= "string" then
        error(("sssn: opts.%s must be a string (got %s) (write_channel)"):format(k, type(opts[k])), 2)
      end
    end
  end
  local rc = remote_of(self, id)
  if rc then return rc:write(data, opts) end
  return core.write(sys(self, "write_channel"), channel_id(id, "write_channel"), data, opts.metadata,
    opts.correlation_id, opts.reply_to, opts.recipient_id)
end

--- Reads from this system's cursor; opts: limit (100), after (a seq), exclusive.
--- Returns the messages and how many this reader missed to capacity since its last read.
function System:read_channel(id, opts)
  if opts == nil then
    opts = NO_OPTS
  else
    check_table(opts, "the options", "read_channel")
    check_fields(opts, READ_OPTS, "read_channel", "option")
  end
  if opts.exclusive then return self:claim_channel(id, { limit = opts.limit }), 0 end
  local rc = remote_of(self, id)
  if rc then return rc:read(opts) end
  return core.read(sys(self, "read_channel"), channel_id(id, "read_channel"), opts.limit, opts.after)
end

function System:claim_channel(id, opts)
  if opts == nil then
    opts = NO_OPTS
  else
    check_table(opts, "the options", "claim_channel")
    check_fields(opts, CLAIM_OPTS, "claim_channel", "option")
  end
  local rc = remote_of(self, id)
  if rc then return rc:claim(opts) end
  return core.claim(sys(self, "claim_channel"), channel_id(id, "claim_channel"), opts.limit)
end

local function message_ids(ids)
  local out = {}
  for i, v in ipairs(ids) do out[i] = type(v) == "table" and v.id or v end
  return out
end

function System:acknowledge_channel(id, ids)
  check_table(ids, "the message ids", "acknowledge_channel")
  local rc = remote_of(self, id)
  if rc then return rc:ack(message_ids(ids)) end
  -- the binding takes the claimed messages themselves, or their ids
  return core.ack(sys(self, "acknowledge_channel"), channel_id(id, "acknowledge_channel"), ids)
end

function System:nack_channel(id, ids)
  check_table(ids, "the message ids", "nack_channel")
  local rc = remote_of(self, id)
  if rc then return rc:ack(message_ids(ids), true) end
  return core.nack(sys(self, "nack_channel"), channel_id(id, "nack_channel"), ids)
end

--- Calls fn(message) for every new message, in order, through the loop.
function System:subscribe_channel(id, fn)
  local rc = remote_of(self, id)
  if rc then
    if type(fn) ~= "function" then error("sssn: subscribe_channel needs a function", 2) end
    rc:unsubscribe()
    rc:subscribe(fn)
    return
  end
  return core.subscribe(sys(self, "subscribe_channel"), channel_id(id, "subscribe_channel"), fn)
end

function System:unsubscribe_channel(id)
  local rc = remote_of(self, id)
  if rc then return rc:unsubscribe() end
  return core.unsubscribe(sys(self, "unsubscribe_channel"), channel_id(id, "unsubscribe_channel"))
end

function System:stop() return core.sys_stop(sys(self, "stop")) end

--- Calls fn(self) when the system stops (after its channels and local registrations are gone);
--- fn may wait (e.g. deregister from a remote registry); the host gives such work 3 s at exit.
function System:on_stop(fn)
  local hooks = rawget(self, "_stop_hooks") or {}
  rawset(self, "_stop_hooks", hooks)
  hooks[#hooks + 1] = fn
end

function System:_on_stopped()
  for _, rc in pairs(rawget(self, "_remote") or {}) do rc:unsubscribe() end
  for _, fn in ipairs(rawget(self, "_stop_hooks") or {}) do
    local ok, err = pcall(fn, self)
    if not ok then core.log("error", "stop hook failed: " .. tostring(err)) end
  end
end
function System:stats() return core.sys_stats(sys(self, "stats")) end

function System:log(fmt, ...) return sssn.log("info", fmt, ...) end

-- The methods few systems call (request, descriptor) load on first use, as the registry's
-- rarer calls do: every system's state holds this module, so what it does not load it does
-- not pay for.
System._helpers = { check_table = check_table, check_fields = check_fields, REQUEST_OPTS = REQUEST_OPTS,
  remote_of = remote_of, sys = sys }
setmetatable(System, { __index = function(t, k)
  if k ~= "request" and k ~= "descriptor" then return nil end
  setmetatable(t, nil)
  require("sssn.system_more")(t, sssn)
  return rawget(t, k)
end })

-- Registry and clock -----------------------------------------------------------------

--- Runs fn(...) as a background coroutine of the calling system (it may wait; it ends when
--- the system stops). Returns an id for sssn.cancel(id), which ends it where it waits.
function sssn.spawn(fn, ...) return core.spawn(fn, ...) end
function sssn.cancel(id) return core.cancel(id) end

-- sssn.registry: this host's registry, or with --registry another host's. Its module loads on
-- first use: most systems never touch it, and it is a fifth of an idle system's heap.
setmetatable(sssn, { __index = function(t, k)
  if k ~= "registry" then return nil end
  local r = require("sssn.registry").new()
  rawset(t, "registry", r)
  return r
end })

local function test_only(name)
  return function()
    error(("sssn.clock.%s is only available in specs run by `sssn-host test`"):format(name), 2)
  end
end

local testing = core.testing
sssn.clock = {
  now = core.now,
  set = testing and testing.clock_set or test_only("set"),
  advance = testing and testing.clock_advance or test_only("advance"),
  real = testing and testing.clock_real or test_only("real"),
}

return sssn
