-- sssn.pretty: readable text for Lua values, for the REPL. Keys sorted (integers first, then
-- strings), nested tables indented, cycles marked, long arrays cut with a count, and an
-- entry's expires_at followed by the seconds it has left; registry events as one line.
local core = require "sssn.core"

local M = { max_items = 20, max_depth = 6, width = 72 }

local keywords = {}
for w in ("and break do else elseif end false for function goto if in local nil not or repeat return then true until while")
    :gmatch("%a+") do keywords[w] = true end

local function quote(s) return (("%q"):format(s):gsub("\\\n", "\\n")) end

local function scalar(v)
  local t = type(v)
  if t == "string" then return quote(v) end
  if t == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    return ("%.14g"):format(v):find("[%.eEn]") and ("%.14g"):format(v) or ("%.14g"):format(v) .. ".0"
  end
  if v == core.null then return "null" end
  return tostring(v)
end

local function key_text(k)
  if type(k) == "string" and k:match("^[%a_][%w_]*$") and not keywords[k] then return k end
  return "[" .. scalar(k) .. "]"
end

local function sorted_keys(t)
  local n = #t
  local keys = {}
  for k in pairs(t) do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  table.sort(keys, function(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then return ta < tb end
    if ta == "number" or ta == "string" then return a < b end
    return tostring(a) < tostring(b)
  end)
  return n, keys
end

local function ttl_note(t)
  local e = rawget(t, "expires_at")
  if type(e) ~= "number" then return nil end
  local left = e - core.now()
  if left <= 0 then return "expired" end
  return ("%.1f s left"):format(left)
end

local format

local function inline(t, n, keys)
  -- a small table of scalars fits on one line
  if n + #keys > 8 then return nil end
  local parts = {}
  for i = 1, n do
    if type(t[i]) == "table" then return nil end
    parts[#parts + 1] = scalar(t[i])
  end
  for _, k in ipairs(keys) do
    if type(t[k]) == "table" or k == "expires_at" then return nil end
    parts[#parts + 1] = key_text(k) .. " = " .. scalar(t[k])
  end
  if #parts == 0 then return "{}" end
  local s = "{ " .. table.concat(parts, ", ") .. " }"
  return #s <= M.width and s or nil
end

format = function(v, indent, path)
  if type(v) ~= "table" then return scalar(v) end
  if path[v] then return "<cycle: " .. tostring(v) .. ">" end
  if path.depth >= M.max_depth then return "{...}" end
  local n, keys = sorted_keys(v)
  local one = inline(v, n, keys)
  if one then return one end
  path[v] = true
  path.depth = path.depth + 1
  local pad = indent .. "  "
  local lines = { "{" }
  local shown = math.min(n, M.max_items)
  for i = 1, shown do
    lines[#lines + 1] = pad .. format(v[i], pad, path) .. ","
  end
  if n > shown then
    lines[#lines + 1] = ("%s-- ... %d more item%s (%d in all)"):format(pad, n - shown, n - shown == 1 and "" or "s", n)
  end
  for _, k in ipairs(keys) do
    local line = pad .. key_text(k) .. " = " .. format(v[k], pad, path) .. ","
    if k == "expires_at" then
      local note = ttl_note(v)
      if note then line = line .. "  -- " .. note end
    end
    lines[#lines + 1] = line
  end
  lines[#lines + 1] = indent .. "}"
  path[v] = nil
  path.depth = path.depth - 1
  return table.concat(lines, "\n")
end

-- Events about a live entry: the only ones whose entry has time left.
local live_events = { registered = true, refreshed = true, replaced = true }

local function text_or_nil(v) if type(v) == "string" then return v end end

-- Where an entry is served: its endpoint, else who registered it.
local function where(entry, registrant)
  return type(entry) == "table" and text_or_nil(entry.endpoint) or text_or_nil(registrant) or "an operator"
end

--- One line for a registry event (as watch() prints them): "refreshed system weather (287 s left)",
--- "replaced channel feed: http://old:7400 -> http://new:7400 (300 s left)", "expired channel feed".
function M.registry_event(ev)
  local line = ("%s %s %s"):format(tostring(ev.event), tostring(ev.kind), tostring(ev.id))
  if ev.event == "replaced" then
    line = ("%s: %s -> %s"):format(line, where(ev.previous, ev.previous_registrant), where(ev.entry, ev.registrant))
  end
  local e = ev.entry
  if live_events[ev.event] and type(e) == "table" and type(e.expires_at) == "number" then
    line = line .. (" (%.0f s left)"):format(e.expires_at - core.now())
  end
  return line
end

--- The text of v; top-level strings as they are (like print), everything else as Lua-ish.
function M.format(v)
  if type(v) == "string" then return v end
  return format(v, "", { depth = 0 })
end

return M
