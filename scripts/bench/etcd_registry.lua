-- The registry rates of scripts/bench/etcd.sh, run as a system (not by `sssn-host run`, which
-- takes no host options such as --registry):
--   BENCH_BACKEND=etcd   sssn-host --registry etcd://127.0.0.1:P --log-level error etcd_registry.lua
--   BENCH_BACKEND=inproc sssn-host --log-level error etcd_registry.lua
-- Prints one `RESULT {json}` line per figure (group "etcd"; keys <backend>_register,
-- <backend>_register_upsert, <backend>_register_c16, <backend>_get, <backend>_get1000), then stops.
-- Each loop is bounded by wall time (about 2 s) and by a count.
local sssn = require "sssn"
local backend = os.getenv("BENCH_BACKEND") or "inproc"
local SECS = tonumber(os.getenv("BENCH_SECS") or "2")
local now = sssn.now -- the host clock: live, to the microsecond

local function result(key, name, value, unit, extra)
  local r = { group = "etcd", key = backend .. "_" .. key, name = name, value = value, unit = unit,
    backend = backend }
  for k, v in pairs(extra or {}) do r[k] = v end
  io.stdout:write("RESULT ", sssn.json.encode(r), "\n")
  io.stdout:flush()
end
local function pct(s, p)
  table.sort(s)
  return s[math.max(1, math.ceil(#s * p / 100))]
end

local s = sssn.system { id = "bench-etcd-" .. backend, tick_rate = 1 }
function s:setup()
  local reg = sssn.registry
  local tag = ("%d"):format(math.floor(now() * 1000) % 1000000000)

  -- (a) sequential awaited registrations, one new id each (a put committed by etcd)
  local lat, n, t0 = {}, 0, now()
  repeat
    n = n + 1
    local t = now()
    reg:register_channel({ id = ("seq-%s-%d"):format(tag, n), name = "Bench", visibility = "public" }, 60)
    lat[n] = (now() - t) * 1e6
  until now() - t0 >= SECS or n >= 2000000
  local el = now() - t0
  result("register", "register_channel, sequential awaited, new ids", math.floor(n / el), "op/s",
    { p50_us = pct(lat, 50), p99_us = pct(lat, 99), ops = n, note = "one call at a time from a system's setup; TTL 60" })

  -- the same id again and again (replace + refresh)
  lat, n, t0 = {}, 0, now()
  local info = { id = "upsert-" .. tag, name = "Bench", description = "d", visibility = "public" }
  repeat
    n = n + 1
    local t = now()
    reg:register_channel(info, 60)
    lat[n] = (now() - t) * 1e6
  until now() - t0 >= SECS or n >= 2000000
  el = now() - t0
  result("register_upsert", "register_channel, sequential awaited, same id", math.floor(n / el), "op/s",
    { p50_us = pct(lat, 50), p99_us = pct(lat, 99), ops = n })

  -- 16 tasks of one system, each registering new ids one after another
  local N, done, total = 16, 0, 0
  t0 = now()
  for k = 1, N do
    sssn.spawn(function()
      local i = 0
      while now() - t0 < SECS and i < 200000 do
        i = i + 1
        reg:register_channel({ id = ("c16-%s-%d-%d"):format(tag, k, i), visibility = "public" }, 60)
        total = total + 1
      end
      done = done + 1
    end)
  end
  while done < N do sssn.sleep(0.005) end
  el = now() - t0
  result("register_c16", "register_channel, 16 concurrent tasks, new ids", math.floor(total / el), "op/s",
    { ops = total, note = "sssn.spawn x16 in one system, each awaiting its calls" })

  -- (b) lookups: answered from the host's registry (the etcd backend's cache)
  local id = info.id
  n, t0 = 0, now()
  repeat
    for _ = 1, 1000 do assert(reg:get_channel(id)) end
    n = n + 1000
  until now() - t0 >= SECS
  result("get", "get_channel, one id", math.floor(n / (now() - t0)), "op/s")

  local ids = {}
  for i = 1, 1000 do ids[i] = ("get-%s-%d"):format(tag, i) end
  done = 0
  for k = 1, 16 do
    sssn.spawn(function()
      for i = k, 1000, 16 do reg:register_channel({ id = ids[i], visibility = "private" }, 60) end
      done = done + 1
    end)
  end
  while done < 16 do sssn.sleep(0.005) end
  n, t0 = 0, now()
  repeat
    for i = 1, 1000 do assert(reg:get_channel(ids[i])) end
    n = n + 1000
  until now() - t0 >= SECS
  result("get1000", "get_channel cycling over 1,000 ids", math.floor(n / (now() - t0)), "op/s")
  self:stop()
end
function s:step() end
return s
