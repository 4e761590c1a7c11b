-- sssn.registry: the registry handle systems use, whatever the host's registry backend is
-- (host/sys/regbackend.h: this host's own, or with --registry another host's). Arguments are
-- checked and normalized here so every backend stores the same shapes; the calls go to the
-- C bindings (core.reg_*), which use the backend and, for a registry elsewhere, yield the
-- calling coroutine until the answer comes. A backend that failed comes back as nil, type,
-- message and is raised here with the call's name.
local core = require "sssn.core"

-- A backend whose cache fills at start (etcd) is waited for by the first query that can
-- wait (in a task), once: a system that starts with a lookup finds what the registry
-- already holds. Once it was filled, or could not be, queries answer from the cache.
local synced = false
local function await_cache()
  if core.reg_ready() ~= nil then synced = true end
end

local Registry = {}
Registry.__index = Registry

--- kind: "local" (this host's registry) or "remote" (another host's, at url).
function Registry.new()
  local url = core.registry_url()
  return setmetatable({ kind = url and "remote" or "local", url = url }, Registry)
end

local function check_self(self, fn)
  if getmetatable(self) ~= Registry then
    error(("sssn.registry.%s: call it with a colon: sssn.registry:%s(...)"):format(fn, fn), 3)
  end
end

-- The message is only formatted when the check fails: these checks run on every call.
local function check_arg(ok, fn, fmt, ...)
  if not ok then
    local args = table.pack(...)
    for i = 1, args.n do args[i] = tostring(args[i]) end
    error(("sssn.registry:%s: %s"):format(fn, fmt:format(table.unpack(args, 1, args.n))), 3)
  end
end

local function array(t) return core.array(t or {}) end

-- An error the host counts as a step error but does not log again: its message was logged
-- once already, when the registry became unreachable (the host's task error logger skips
-- tables with sssn_reported = true).
local Reported = { __tostring = function(e) return e.message end }
local function reported(message) return setmetatable({ sssn_reported = true, message = message }, Reported) end
Registry.reported = reported

-- Raises what a backend answered instead of a result: nil, type, message.
local function raise(fn, etype, message)
  local text = ("sssn.registry:%s: %s"):format(fn, tostring(message))
  if etype == "unreachable" then error(reported(text)) end
  error(text, 0)
end
Registry.raise = raise

-- Passes results on, raising a failure (v == nil with a type after it).
local function checked(fn, v, etype, ...)
  if v == nil and etype ~= nil then raise(fn, etype, ...) end
  return v, etype, ...
end

--- Longest registry entry id, in bytes.
Registry.ID_MAX = 256

local function check_id(id, fn, what)
  if type(id) == "string" and id ~= "" and #id <= Registry.ID_MAX then return end -- the usual case, checked inline
  check_arg(type(id) == "string" and id ~= "", fn, "%s must be a non-empty string", what)
  check_arg(#id <= Registry.ID_MAX, fn, "%s is %s bytes, longer than the %s a registry id may have",
    what, #id, Registry.ID_MAX)
end

local function copy_strings(list, fn, what)
  local out = array()
  if list == nil then return out end
  check_arg(type(list) == "table", fn, "%s must be a list of strings", what)
  for i, v in ipairs(list) do
    check_arg(type(v) == "string", fn, "%s[%s] must be a string", what, i)
    out[i] = v
  end
  return out
end

--- Normalized ChannelInfo: id, name, description, visibility, period, kind, owner, endpoint.
function Registry.normalize_channel(info, fn)
  fn = fn or "register_channel"
  check_arg(type(info) == "table", fn, "info must be a ChannelInfo table (got %s)", type(info))
  check_id(info.id, fn, "info.id")
  local vis = info.visibility or "public"
  check_arg(vis == "public" or vis == "private", fn,
    "info.visibility must be \"public\" or \"private\" (got %s)", vis)
  check_arg(info.period == nil or type(info.period) == "number", fn, "info.period must be a number")
  return {
    id = info.id,
    name = type(info.name) == "string" and info.name or info.id,
    description = type(info.description) == "string" and info.description or "",
    visibility = vis,
    period = info.period,
    kind = info.kind,
    owner = info.owner,
    endpoint = info.endpoint,
  }
end

--- Normalized descriptor: system_id, system_name, description, services, channels_read/write,
--- visibility ("public" or "private": who the HTTP API lists it to when authentication is on).
function Registry.normalize_system(desc, fn)
  fn = fn or "register_system"
  check_arg(type(desc) == "table", fn, "the descriptor must be a table (got %s)", type(desc))
  check_id(desc.system_id, fn, "descriptor.system_id")
  local services, caps = array(), {}
  local vis = desc.visibility or "public"
  check_arg(vis == "public" or vis == "private", fn,
    "descriptor.visibility must be \"public\" or \"private\" (got %s)", vis)
  check_arg(desc.services == nil or type(desc.services) == "table", fn, "descriptor.services must be a list")
  for i, s in ipairs(desc.services or {}) do
    check_arg(type(s) == "table" and type(s.name) == "string" and s.name ~= "", fn,
      "descriptor.services[%s] must be a table with a name", i)
    services[i] = { name = s.name, description = s.description or "", parameters = s.parameters }
    caps[i] = s.name
  end
  return {
    system_id = desc.system_id,
    system_name = type(desc.system_name) == "string" and desc.system_name or desc.system_id,
    description = type(desc.description) == "string" and desc.description or "",
    services = services,
    channels_read = copy_strings(desc.channels_read, fn, "descriptor.channels_read"),
    channels_write = copy_strings(desc.channels_write, fn, "descriptor.channels_write"),
    endpoint = desc.endpoint,
    visibility = vis,
  }, caps
end

local function check_ttl(ttl, fn)
  if ttl == nil then return end
  check_arg(ttl == nil or (type(ttl) == "number" and ttl > 0 and ttl < 1e9), fn,
    "ttl must be a positive number of seconds (got %s)", ttl)
end

local function keepalive(opts, fn)
  if opts == nil then return true end
  check_arg(type(opts) == "table", fn, "opts must be a table like {keepalive = false}")
  return opts.keepalive ~= false
end

--- Registers (or replaces and refreshes) a channel for ttl seconds (default --ttl).
--- opts.keepalive = false: the host will not refresh it while the registering system runs.
function Registry:register_channel(info, ttl, opts)
  check_self(self, "register_channel")
  local c = Registry.normalize_channel(info)
  check_ttl(ttl, "register_channel")
  local expires_at, etype, message = core.reg_put("channel", c, c.id, c.name, c.visibility == "public",
    nil, ttl, opts == nil or keepalive(opts, "register_channel"))
  if expires_at == nil and etype ~= nil then raise("register_channel", etype, message) end
  c.expires_at = expires_at
  return c
end

function Registry:register_system(descriptor, ttl, opts)
  check_self(self, "register_system")
  local d, caps = Registry.normalize_system(descriptor)
  check_ttl(ttl, "register_system")
  local expires_at, etype, message = core.reg_put("system", d, d.system_id, d.system_name, d.visibility == "public", caps,
    ttl, opts == nil or keepalive(opts, "register_system"))
  if expires_at == nil and etype ~= nil then raise("register_system", etype, message) end
  d.expires_at = expires_at
  return d
end

--- find_channels{visibility = "public"|"private", name = "substring"} -> list of ChannelInfo
function Registry:find_channels(query)
  check_self(self, "find_channels")
  query = query or {}
  check_arg(type(query) == "table", "find_channels", "the query must be a table")
  local vis = query.visibility
  check_arg(vis == nil or vis == "public" or vis == "private", "find_channels",
    "visibility must be \"public\" or \"private\"")
  check_arg(query.name == nil or type(query.name) == "string", "find_channels", "name must be a string")
  if not synced then await_cache() end
  return (checked("find_channels", core.reg_find_channels(vis, query.name)))
end

--- find_systems{capability = "service name"} -> list of descriptors
function Registry:find_systems(query)
  check_self(self, "find_systems")
  if type(query) == "string" then query = { capability = query } end
  query = query or {}
  check_arg(type(query) == "table", "find_systems", "the query must be a table")
  check_arg(query.capability == nil or type(query.capability) == "string", "find_systems",
    "capability must be a string")
  if not synced then await_cache() end
  return (checked("find_systems", core.reg_find_systems(query.capability)))
end

local reg_get_channel, reg_get_system = core.reg_get_channel, core.reg_get_system

-- Point lookups are the hottest calls: the checks are inline and only a failure goes on to
-- the descriptive errors.
function Registry:get_channel(id)
  if getmetatable(self) == Registry and type(id) == "string" then
    if not synced then await_cache() end
    local e, etype, message = reg_get_channel(id)
    if etype then raise("get_channel", etype, message) end
    return e
  end
  check_self(self, "get_channel")
  check_arg(false, "get_channel", "id must be a string")
end

function Registry:get_system(id)
  if getmetatable(self) == Registry and type(id) == "string" then
    if not synced then await_cache() end
    local e, etype, message = reg_get_system(id)
    if etype then raise("get_system", etype, message) end
    return e
  end
  check_self(self, "get_system")
  check_arg(false, "get_system", "id must be a string")
end

-- The calls used less (deregistering, events, counts) load on first use: every system's
-- state holds this module, so what it does not load it does not pay for.
Registry._check_self, Registry._check_arg, Registry._checked = check_self, check_arg, checked
setmetatable(Registry, { __index = function(t, k)
  setmetatable(t, nil)
  require("sssn.registry_more")(t)
  return rawget(t, k)
end })

return Registry
