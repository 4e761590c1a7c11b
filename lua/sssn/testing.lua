-- sssn.testing: helpers for specs run inside the host by `sssn-host test`.
-- Spawn real systems from source, act as a reader/writer system from the spec itself,
-- and drive the test clock so TTL and tick behaviour is deterministic.
local core = require "sssn.core"
local sssn = require "sssn"

local testing = {}
local t = core.testing
if not t then
  error("sssn.testing is only available in specs run by `sssn-host test`", 2)
end

local Handle = {}
Handle.__index = Handle
function Handle:stats() return core.sys_stats(self._sys) end
function Handle:stop() return core.sys_stop(self._sys) end
function Handle:running() return core.sys_stats(self._sys).state ~= "stopped" end

--- Loads and starts a system (setup runs at once): spawn{source = "...", id = "x"} or
--- spawn{file = "path.lua"}; optional memory_limit (bytes).
function testing.spawn(opts)
  local h = t.spawn(opts)
  return setmetatable({ _sys = h, id = core.sys_stats(h).id }, Handle)
end

--- A system object bound to the spec's own state (never ticked), to read and write as `id`.
function testing.system(id, cfg)
  local self = sssn.system(cfg or { id = id })
  self.id = id
  self._sys = t.attach(id, self.name)
  return self
end

--- Switches to the manual clock at `now` (default: a fixed, round time).
function testing.freeze(now) t.clock_set(now or 1700000000) end
function testing.advance(dt) t.clock_advance(dt) end
function testing.real() t.clock_real() end
--- Runs queued loop work (subscriber deliveries) without moving the clock.
function testing.run_pending() return t.run_pending() end
--- Runs the real event loop for `seconds` (for specs that need real time).
function testing.run_for(seconds) return t.run_for(seconds) end

--- The host's log lines since the current test began (`sssn-host test` keeps them from
--- stderr: a passing run stays quiet, a failing test shows them). take = true also clears.
function testing.log(take) return t.log(take) end

--- Fails the spec unless the log since the test began has a line containing every one of
--- the given plain substrings; returns that line.
function testing.assert_logged(...)
  local needles = { ... }
  for line in t.log():gmatch("[^\n]+") do
    local all = true
    for _, n in ipairs(needles) do
      if not line:find(n, 1, true) then all = false break end
    end
    if all then return line end
  end
  error(("expected a log line mentioning %s; the log:\n%s"):format(
    table.concat(needles, " and "), t.log()), 2)
end

--- Path of the sssn-host binary running the specs (for end-to-end specs that start processes).
testing.exe = t.exe

--- A TCP port on 127.0.0.1 that was free a moment ago.
function testing.free_port() return t.free_port() end

--- Real time in seconds, whatever the test clock says (for measurements).
function testing.walltime() return t.walltime() end
--- Forgets the tick lateness samples (host_stats().tick_lateness_p50_us / _p99_us).
function testing.lateness_reset() return t.lateness_reset() end

--- Files for end-to-end specs: a fresh temporary directory, a whole file read ("" when it
--- does not exist), a whole file written.
function testing.tmpdir()
  local p = io.popen("mktemp -d")
  local d = p:read("l")
  p:close()
  return d
end

function testing.read_file(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

function testing.write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

--- The error message fn(...) raises; raises itself (failing the spec) when fn raises nothing.
function testing.error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  if ok then error("expected an error, but the call succeeded", 2) end
  return tostring(err)
end

--- Fails the spec unless msg contains every one of the given plain substrings.
function testing.assert_mentions(msg, ...)
  for _, needle in ipairs({ ... }) do
    if not msg:find(needle, 1, true) then
      error(("expected the error to mention %q, got: %s"):format(needle, msg), 2)
    end
  end
end

local counter = 0
--- A fresh id for a spec: prefix-N, unique within the run.
function testing.uid(prefix)
  counter = counter + 1
  return ("%s-%d"):format(prefix or "id", counter)
end

return testing
