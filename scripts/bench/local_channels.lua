-- The in-process benchmarks of `make bench`: channels from Lua through the real bindings: broadcast, fan-out, work queue.
-- Run by `sssn-host run scripts/bench/local_channels.lua` (scripts/bench/run.sh).
local sssn = require "sssn"
local testing = require "sssn.testing"
local bench = dofile((arg[0]:match("^(.*/)") or "./") .. "common.lua")
local now, result, rate, percentile = bench.now, bench.result, bench.rate, bench.percentile

-- Channels ------------------------------------------------------------------------------

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
