-- The in-process benchmarks of `make bench`: many systems ticking on the real loop: lateness, CPU, memory.
-- Run by `sssn-host run scripts/bench/local_ticks.lua` (scripts/bench/run.sh).
local sssn = require "sssn"
local testing = require "sssn.testing"
local bench = dofile((arg[0]:match("^(.*/)") or "./") .. "common.lua")
local now, result, rate, percentile = bench.now, bench.result, bench.rate, bench.percentile

-- Ticks, memory, start-up ----------------------------------------------------------------

local function rss_kib()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmRSS:%s+(%d+)")
    if kb then return tonumber(kb) end
  end
end
local function cpu_seconds()
  local f = io.open("/proc/self/stat")
  local stat = f:read("a")
  f:close()
  local fields = {}
  for x in stat:gsub("^.-%) ", ""):gmatch("%S+") do fields[#fields + 1] = x end
  return (tonumber(fields[12]) + tonumber(fields[13])) / 100 -- utime + stime, in ticks of 1/100 s
end

local n = 1000
local rss0 = rss_kib()
local handles = {}
for i = 1, n do
  handles[i] = testing.spawn { id = ("tick%04d"):format(i), source = ([[
    local sssn = require "sssn"
    local s = sssn.system { id = %q, tick_rate = 10 }
    function s:step(dt) end
    return s
  ]]):format(("tick%04d"):format(i)) }
end
local rss1 = rss_kib()
local heap = 0
for i = 1, n do heap = heap + handles[i]:stats().memory end
testing.run_for(1) -- settle
testing.lateness_reset()
local cpu0, t0 = cpu_seconds(), now()
testing.run_for(5)
local cpu = (cpu_seconds() - cpu0) / (now() - t0)
local st = sssn.core_stats and sssn.core_stats() or require("sssn.core").host_stats()
result("1000 systems at 10 Hz: tick lateness p99", st.tick_lateness_p99_us, "us",
  { p50_us = st.tick_lateness_p50_us, note = ("%d steps sampled"):format(st.tick_samples) })
result("1000 systems at 10 Hz: CPU used", cpu * 100, "% of one core")
result("memory per idle system (RSS)", (rss1 - rss0) / n, "KiB")
result("Lua heap per idle system", heap / n / 1024, "KiB")
for i = 1, n do handles[i]:stop() end
