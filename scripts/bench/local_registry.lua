-- The in-process benchmarks of `make bench`: the registry from Lua: upsert, lookup, find, purge.
-- Run by `sssn-host run scripts/bench/local_registry.lua` (scripts/bench/run.sh).
local sssn = require "sssn"
local testing = require "sssn.testing"
local bench = dofile((arg[0]:match("^(.*/)") or "./") .. "common.lua")
local now, result, rate, percentile = bench.now, bench.result, bench.rate, bench.percentile

-- Registry ------------------------------------------------------------------------------

local reg = sssn.registry
local info = { id = "bench-ch", name = "Bench Channel", description = "d", visibility = "public" }
local v = rate(2, 1000, function(n)
  for _ = 1, n do reg:register_channel(info, 300) end
end)
result("registry register (upsert, TTL)", math.floor(v), "op/s", { note = "same id: replace + refresh" })

local v2 = rate(2, 1000, function(n)
  for _ = 1, n do assert(reg:get_channel("bench-ch")) end
end)
result("registry get_channel", math.floor(v2), "op/s")

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
    { p50_us = percentile(samples, 50), note = ("capability held by 10 of %d systems"):format(n + 10) })
end

-- purge: 100k entries expiring at once, on the test clock (only they expire)
local t = sssn.now()
testing.freeze(t)
for i = 1, 100000 do
  reg:register_channel({ id = "exp" .. i }, 1)
end
testing.freeze(t + 1.5) -- past their expiry; the maintenance timer does not fire on a switch
local t0 = now()
local purged = reg:maintain()
local ms = (now() - t0) * 1000
assert(purged == 100000, "purged " .. purged)
result("purge 100k expired", ms, "ms", { note = "heap pops, index removals and an 'expired' event each" })
testing.real()
