-- The in-process benchmarks of `make bench`: many systems ticking on the real loop: steps,
-- lateness, CPU, memory. Run by `sssn-host run scripts/bench/local_ticks.lua [N] [SECONDS]`
-- (scripts/bench/run.sh); N systems (10,000) at 10 Hz for SECONDS (5) after 1 s to settle.
-- Spawning 10,000 states takes ~10 s here, so the whole group stays under half a minute.
local testing = require "sssn.testing"
local core = require "sssn.core"
local bench = dofile((arg[0]:match("^(.*/)") or "./") .. "common.lua")
local now, result = bench.now, bench.result

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

local n = tonumber(arg[1]) or 10000
local seconds = tonumber(arg[2]) or 5
local rss0 = rss_kib()
local handles = {}
for i = 1, n do
  local id = ("tick%05d"):format(i)
  handles[i] = testing.spawn { id = id, source = ([[
    local sssn = require "sssn"
    local s = sssn.system { id = %q, tick_rate = 10 }
    function s:step(dt) end
    return s
  ]]):format(id) }
end
local rss1 = rss_kib()
local heap = 0
for i = 1, n do heap = heap + handles[i]:stats().memory end
testing.run_for(1) -- settle: the first steps of systems spawned long ago are merged overruns
testing.lateness_reset()
local st0 = core.host_stats()
local cpu0, t0 = cpu_seconds(), now()
testing.run_for(seconds)
local wall = now() - t0
local cpu = cpu_seconds() - cpu0
local st = core.host_stats()
local steps = st.steps - st0.steps
local label = ("%d systems at 10 Hz"):format(n)
result(label .. ": steps", steps / wall, "steps/s",
  { key = "tick10k_steps", target = n * 10, overruns = st.overruns - st0.overruns })
result(label .. ": tick lateness p99", st.tick_lateness_p99_us, "us",
  { key = "tick10k_p99", p50_us = st.tick_lateness_p50_us, note = ("%d steps sampled"):format(st.tick_samples) })
result(label .. ": host CPU per trivial step", cpu / steps * 1e6, "us",
  { key = "tick_cpu_us", note = ("%.1f %% of one core"):format(cpu / wall * 100) })
result("memory per idle system (RSS)", (rss1 - rss0) / n, "KiB")
result("Lua heap per idle system", heap / n / 1024, "KiB", { key = "heap_idle" })
for i = 1, n do handles[i]:stop() end
