-- sssn.repl: what the interactive prompt does with a line (host/svc/repl.c only moves text).
-- Like the reference `lua` REPL: an expression prints its values, statements run, an
-- incomplete chunk continues on the next line, `=expr` works, errors print and the prompt
-- returns. Chunks run as coroutines of the host, so registry and channel calls may wait.
local sssn = require "sssn"
local core = require "sssn.core"
local pretty = require "sssn.pretty"

local M = {}

local env        -- the prompt's globals
local me         -- the REPL's own system object (its reads use the id "repl")
local buffer     -- lines of an unfinished chunk
local json_mode = false
local ids = { channels = {}, systems = {} } -- known to the registry, for completion

local function out(s)
  io.stdout:write(s, "\n")
  io.stdout:flush()
end

-- s with each byte that is not part of valid UTF-8 replaced by U+FFFD (JSON must be UTF-8).
local function valid_utf8(s)
  local parts, i = {}, 1
  while i <= #s do
    local ok, bad = utf8.len(s, i)
    if ok then
      parts[#parts + 1] = s:sub(i)
      break
    end
    parts[#parts + 1] = s:sub(i, bad - 1) .. "\u{FFFD}"
    i = bad + 1
  end
  return table.concat(parts)
end

local function show(...)
  local n = select("#", ...)
  for i = 1, n do
    local v = select(i, ...)
    if json_mode then
      local ok, text = pcall(core.json_encode, v)
      out(ok and text or core.json_encode(valid_utf8(tostring(v))))
    else
      out(pretty.format(v))
    end
  end
end

local function refresh_ids()
  local ok, chans = pcall(sssn.registry.find_channels, sssn.registry, {})
  if ok then
    ids.channels = {}
    for _, c in ipairs(chans) do ids.channels[#ids.channels + 1] = c.id end
  end
  local ok2, syss = pcall(sssn.registry.find_systems, sssn.registry, {})
  if ok2 then
    ids.systems = {}
    for _, s in ipairs(syss) do ids.systems[#ids.systems + 1] = s.system_id end
  end
end

-- Helpers ---------------------------------------------------------------------------------

local helpers = {}

local help_text = [[
sssn REPL: type Lua; an expression prints its value ("=expr" too).
  registry              the live registry (%s)
  channels{visibility=, name=}   registered channels      systems{capability=}  registered systems
  channel(id)           one ChannelInfo (nil if absent)    system(id)            one descriptor
  read(id, n)           the last n messages of a channel (default 10)
  write(id, data)       write data to a channel; returns the message id
  watch()               print registry events as they happen, until Ctrl-C
  sssn                  the module (sssn.now(), sssn.sleep(s), ...)
Ctrl-C interrupts a running chunk, Ctrl-D leaves. Tab completes names, fields and ids.]]

function helpers.help()
  out(help_text:format(sssn.registry.url or "in this host"))
end

function helpers.channels(q)
  if type(q) == "string" then q = { name = q } end
  return sssn.registry:find_channels(q or {})
end

function helpers.systems(q)
  if type(q) == "string" then q = { capability = q } end
  return sssn.registry:find_systems(q or {})
end

function helpers.channel(id) return sssn.registry:get_channel(id) end
function helpers.system(id) return sssn.registry:get_system(id) end

local function connected(id)
  me._connected = me._connected or {}
  if not me._connected[id] then
    me:connect(id)
    me._connected[id] = true
  end
end

function helpers.read(id, n)
  n = n or 10
  assert(type(id) == "string", "read(id, n): id must be a channel id")
  assert(math.type(n) == "integer" and n > 0, "read(id, n): n must be a positive integer")
  connected(id)
  if core.channel_exists(id) then
    local last = core.channel_stats(id).last_seq
    return (me:read_channel(id, { after = math.max(0, last - n), limit = n }))
  end
  local all = me:read_channel(id, { after = 0, limit = 10000 })
  local first = math.max(1, #all - n + 1)
  return table.move(all, first, #all, 1, {})
end

function helpers.write(id, data)
  assert(type(id) == "string", "write(id, data): id must be a channel id")
  connected(id)
  return (me:write_channel(id, data))
end

function helpers.watch()
  out("watching registry events (Ctrl-C to stop)")
  local _, index = sssn.registry:events(math.maxinteger, 0)
  while true do
    local events
    events, index = sssn.registry:events(index, 30)
    for _, ev in ipairs(events) do out(pretty.registry_event(ev)) end
  end
end

-- The prompt ------------------------------------------------------------------------------

function M.init(json, tty)
  json_mode = json and true or false
  me = setmetatable({ id = "repl", name = "REPL", services = {}, _sys = core.system_handle() }, sssn.System)
  env = setmetatable({ sssn = sssn, registry = sssn.registry, me = me }, { __index = _G })
  for k, f in pairs(helpers) do env[k] = f end
  -- keep the ids for completion fresh, in the background
  if tty then
    sssn.spawn(function()
      while true do
        refresh_ids()
        sssn.sleep(5)
      end
    end)
  end
end

function M.reset() buffer = nil end

--- A line typed: returns "more" (unfinished chunk), a function to run, false when it did not
--- compile (the error is printed), or nil for nothing to do.
function M.line(line)
  if not buffer then
    if line:match("^%s*$") then return nil end
    if line:sub(1, 1) == "=" then line = "return " .. line:sub(2) end
    local fn = load("return " .. line, "=stdin", "t", env)
    if fn then return fn end
    buffer = line
  else
    buffer = buffer .. "\n" .. line
  end
  local fn, err = load(buffer, "=stdin", "t", env)
  if fn then
    buffer = nil
    return fn
  end
  if err:match("<eof>$") then return "more" end
  buffer = nil
  io.stderr:write(err, "\n")
  io.stderr:flush()
  return false
end

local function handler(e)
  if type(e) ~= "string" then
    local mt = getmetatable(e)
    e = mt and mt.__tostring and tostring(e) or ("(error object is a %s value)"):format(type(e))
  end
  return debug.traceback(e, 2)
end

--- Runs a chunk (as a coroutine of the host), prints its results or its error.
function M.exec(fn)
  local res = table.pack(xpcall(fn, handler))
  if res[1] then
    if res.n > 1 then show(table.unpack(res, 2, res.n)) end
    return true
  end
  local msg = tostring(res[2]):gsub("\nstack traceback:.*", "")
  io.stderr:write(msg, "\n")
  io.stderr:flush()
  return false
end

-- Completion ------------------------------------------------------------------------------

local lua_keywords = { "and", "break", "do", "else", "elseif", "end", "false", "for", "function",
  "goto", "if", "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while" }

local function keys_of(t, seen, outlist)
  local guard = 0
  while type(t) == "table" and not seen[t] and guard < 8 do
    seen[t] = true
    for k in pairs(t) do
      if type(k) == "string" then outlist[k] = true end
    end
    local mt = getmetatable(t)
    local idx = type(mt) == "table" and rawget(mt, "__index")
    t = idx
    guard = guard + 1
  end
end

--- Candidates for the word `text`; `before` is the line up to it.
function M.complete(text, before)
  local found = {}
  if before:match("[%(,]%s*[\"']$") or before:match("%[%s*[\"']$") then
    -- an id inside a string argument: channel and system ids from the registry
    for _, id in ipairs(ids.channels) do found[id] = true end
    for _, id in ipairs(ids.systems) do found[id] = true end
  else
    local base, sep, prefix = text:match("^(.-)([%.:])([%w_]*)$")
    if base and base ~= "" then
      local ok, obj = pcall(function()
        local v = env
        for part in base:gmatch("[^%.:]+") do v = v[part] end
        return v
      end)
      local names = {}
      if ok then keys_of(obj, {}, names) end
      for k in pairs(names) do
        if k:sub(1, #prefix) == prefix and k:match("^[%a_][%w_]*$") and k:sub(1, 1) ~= "_" then
          if sep == "." or type(obj[k]) == "function" then found[base .. sep .. k] = true end
        end
      end
    else
      local names = {}
      keys_of(env, {}, names)
      for _, kw in ipairs(lua_keywords) do names[kw] = true end
      for k in pairs(names) do
        if k:sub(1, #text) == text then found[k] = true end
      end
    end
  end
  local list = {}
  for k in pairs(found) do
    if k:sub(1, #text) == text then list[#list + 1] = k end
  end
  table.sort(list)
  return list
end

return M
