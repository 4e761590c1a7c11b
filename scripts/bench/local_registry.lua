-- The in-process benchmarks of `make bench`: the registry from Lua: upsert, lookups, finds,
-- purge. Run by `sssn-host run scripts/bench/local_registry.lua` (scripts/bench/run.sh). Every
-- figure carries the key report.lua puts peers side by side by (see issue 11's contract).
local sssn = require "sssn"
local core = require "sssn.core"
local testing = require "sssn.testing"
local bench = dofile((arg[0]:match("^(.*/)") or "./") .. "common.lua")
local now, result, rate, percentile = bench.now, bench.result, bench.rate, bench.percentile

-- This run holds more than the registry's default million entries (1M systems, 100k
-- channels to find among, 100k to purge): no bound (`run` takes no host options).
core.reg_test_limits(0, 0)

local reg = sssn.registry

-- Register and lookups ---------------------------------------------------------------------

local info = { id = "bench-ch", name = "Bench Channel", description = "d", visibility = "public" }
local v = rate(2, 1000, function(n)
  for _ = 1, n do reg:register_channel(info, 300) end
end)
result("registry register (upsert, TTL)", math.floor(v), "op/s",
  { key = "reg_upsert", note = "same id: replace + refresh" })

local v2 = rate(2, 1000, function(n)
  for _ = 1, n do assert(reg:get_channel("bench-ch")) end
end)
result("registry get_channel (one id)", math.floor(v2), "op/s", { key = "get1" })

local ids = {}
for i = 1, 1000 do
  ids[i] = "get-" .. i
  reg:register_channel({ id = ids[i], name = "Get " .. i, description = "one of 1,000", visibility = "private" }, 3600)
end
local v3 = rate(2, 1000, function(n)
  for i = 1, n do assert(reg:get_channel(ids[i])) end
end)
result("registry get_channel over 1,000 ids", math.floor(v3), "op/s", { key = "get1000" })

-- find_channels by visibility: 10 public channels among 100,000 private ones
for i = 1, 100000 do reg:register_channel({ id = "vis-" .. i, visibility = "private" }, 3600) end
for i = 1, 10 do reg:register_channel({ id = "vis-public-" .. i, visibility = "public" }, 3600) end
do
  local samples = {}
  local public = 0
  for i = 1, 2000 do
    local t0 = now()
    local found = reg:find_channels { visibility = "public" }
    samples[i] = (now() - t0) * 1e6
    public = #found
  end
  -- 11 public: the ten and bench-ch
  result("find_channels{visibility} p99", percentile(samples, 99), "us",
    { key = "find_vis", p50_us = percentile(samples, 50),
      note = ("%d public among %d channels"):format(public, 100000 + 10 + 1000 + 1) })
  assert(public == 11, public)
end

-- find_systems by a capability held by 10 systems, among N live systems
local registered = 0
local function fill(n)
  local t0 = now()
  for i = registered + 1, n do
    reg:register_system({ system_id = "s" .. i, system_name = "S" .. i,
      services = { { name = "cap" .. i } } }, 3600)
  end
  registered = n
  return now() - t0
end
for i = 1, 10 do
  reg:register_system({ system_id = "rare" .. i, services = { { name = "rare" } } }, 3600)
end
for _, n in ipairs { 10000, 100000, 1000000 } do
  fill(n)
  local samples = {}
  for i = 1, 2000 do
    local t0 = now()
    local found = reg:find_systems { capability = "rare" }
    samples[i] = (now() - t0) * 1e6
    assert(#found == 10)
  end
  local label = n >= 1000000 and "1M" or (n // 1000) .. "k"
  result(("find_systems p99 @%s"):format(label), percentile(samples, 99), "us",
    { key = "find_sys_" .. label, p50_us = percentile(samples, 50),
      note = ("capability held by 10 of %d systems"):format(n + 10) })
end

-- purge: 100k entries expiring at once, on the test clock (only they expire)
local t = sssn.now()
testing.freeze(t)
for i = 1, 100000 do
  reg:register_channel({ id = "exp" .. i }, 1)
end
local _, index = reg:events(math.maxinteger)
testing.freeze(t + 1.5) -- past their expiry; the maintenance timer does not fire on a switch
local t0 = now()
local purged = reg:maintain()
local ms = (now() - t0) * 1000
assert(purged == 100000, "purged " .. purged)
result("purge 100k expired", ms, "ms",
  { key = "purge100k", note = "heap pops and index removals; the 'expired' events are written when read" })
-- what the purge left for the first reader: every event written (the channel keeps its last
-- 10,000), then those read
t0 = now()
local n = 0
repeat
  local events
  events, index = reg:events(index)
  n = n + #events
until #events == 0
result("purge 100k: first read of the events", (now() - t0) * 1000, "ms",
  { key = "purge100k_read", note = ("100,000 events written, the %d the registry channel holds read"):format(n) })
testing.real()
