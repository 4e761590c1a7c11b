-- The in-process benchmarks of `make bench`, run by `sssn-host run scripts/bench/local.lua`:
-- channels and the registry from Lua through the real bindings, and many systems ticking on
-- the real loop. Prints one `RESULT {json}` line per figure (scripts/bench/run.sh collects them).
-- Every loop is bounded by a count and by wall time.
local sssn = require "sssn"
local testing = require "sssn.testing"

local only = arg[1] -- optional: run one group ("channels", "registry", "ticks")
local now = testing.walltime

local function result(name, value, unit, extra)
  local r = { group = "local", name = name, value = value, unit = unit }
  for k, v in pairs(extra or {}) do r[k] = v end
  io.stdout:write("RESULT ", sssn.json.encode(r), "\n")
  io.stdout:flush()
end

-- Runs body(n) in batches until `seconds` of wall time passed; returns operations per second.
local function rate(seconds, batch, body)
  local done, t0 = 0, now()
  repeat
    body(batch)
    done = done + batch
  until now() - t0 >= seconds
  return done / (now() - t0)
end

local function percentile(samples, p)
  table.sort(samples)
  return samples[math.max(1, math.ceil(#samples * p / 100))]
end

local function run(group) return not only or only == group end

-- Channels ------------------------------------------------------------------------------

if run("channels") then
  local payload = { celsius = 22.4 }

  local w = testing.system("bench-writer")
  local r = testing.system("bench-reader")
  w:add_channel(sssn.broadcast { id = "bench-b", capacity = 100000 })
  r:connect("bench-b")
  local missed = 0
  local v = rate(2, 1000, function(n)
    for _ = 1, n do w:write_channel("bench-b", payload) end
    local got, m = r:read_channel("bench-b", { limit = n })
    assert(#got == n, "reader fell behind")
    assert(got[n].content.data.celsius == 22.4)
    missed = missed + m
  end)
  result("broadcast 1 writer -> 1 reader", math.floor(v), "msg/s",
    { note = "write (JSON encode) + read (decode into the reader's table), small payload" })

  for _, readers in ipairs { 10, 100 } do
    local id = "bench-fan" .. readers
    w:add_channel(sssn.broadcast { id = id, capacity = 100000 })
    local rs = {}
    for i = 1, readers do
      rs[i] = testing.system(("bench-fan%d-r%d"):format(readers, i))
      rs[i]:connect(id)
    end
    local per_batch = 100
    local deliveries = rate(2, per_batch, function(n)
      for _ = 1, n do w:write_channel(id, payload) end
      for i = 1, readers do
        local got = rs[i]:read_channel(id, { limit = n })
        assert(#got == n)
      end
    end) * readers
    result(("fan-out %d readers"):format(readers), math.floor(deliveries), "deliveries/s")
    for i = 1, readers do rs[i]:stop() end
  end

  -- the floor under every delivery: a reader gets a fresh envelope table (with content,
  -- data and metadata tables) for each message; this is what building one costs in plain Lua
  local id = ("x"):rep(36)
  local sink
  local bound = rate(1, 1000, function(n)
    for i = 1, n do
      sink = { id = id, seq = i, timestamp = 1764100000.5, sender_id = "bench-writer",
        content = { data = { celsius = 22.4 } }, metadata = {} }
    end
  end)
  result("bound: building one envelope in plain Lua", math.floor(bound), "tables/s",
    { note = "no channel, no JSON: the ceiling for deliveries into Lua tables" })

  w:add_channel(sssn.work_queue { id = "bench-q", capacity = 100000 })
  local worker = testing.system("bench-worker")
  worker:connect("bench-q")
  local v2 = rate(2, 500, function(n)
    for _ = 1, n do w:write_channel("bench-q", payload) end
    local got = worker:claim_channel("bench-q", { limit = n })
    assert(#got == n)
    assert(worker:acknowledge_channel("bench-q", got) == n)
  end)
  result("work queue claim+ack", math.floor(v2), "msg/s", { note = "write + claim + acknowledge per message" })
  w:stop()
  r:stop()
  worker:stop()
end

-- Registry ------------------------------------------------------------------------------

if run("registry") then
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
end

-- Ticks, memory, start-up ----------------------------------------------------------------

if run("ticks") then
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
end
