-- The in-process benchmarks of `make bench`: channels from Lua through the real bindings, as
-- users write code (one write_channel call per message, reads in batches): broadcast 1 -> 1
-- with reads of 20 and of 1,000, reads alone, fan-out to 10 readers, and a work queue.
-- Run by `sssn-host run scripts/bench/local_channels.lua` (scripts/bench/run.sh). Each RESULT
-- carries the key the Python sssn's figure for the same workload has (report.lua pairs them).
local sssn = require "sssn"
local testing = require "sssn.testing"
local bench = dofile((arg[0]:match("^(.*/)") or "./") .. "common.lua")
local now, result, rate = bench.now, bench.result, bench.rate

local payload = { celsius = 22.4 }
local w = testing.system("bench-writer")

-- broadcast 1 writer -> 1 reader: n writes, then reads of `limit` until the reader caught up
for _, limit in ipairs { 20, 1000 } do
  local id = "bench-b" .. limit
  w:add_channel(sssn.broadcast { id = id, capacity = 100000 })
  local r = testing.system("bench-reader" .. limit)
  r:connect(id)
  local v = rate(2, 1000, function(n)
    for _ = 1, n do w:write_channel(id, payload) end
    local left = n
    while left > 0 do
      local got = r:read_channel(id, { limit = limit })
      assert(#got > 0, "reader fell behind")
      left = left - #got
    end
  end)
  result(("broadcast 1 writer -> 1 reader, reads of %d"):format(limit), math.floor(v), "msg/s",
    { key = "bcast_l" .. limit, note = "one write_channel per message + reads in batches, small payload" })
  r:stop()
end

-- reads alone: 100,000 messages written first, read by fresh readers in batches of 1,000
do
  local id = "bench-reads"
  w:add_channel(sssn.broadcast { id = id, capacity = 100000 })
  for _ = 1, 100000 do w:write_channel(id, payload) end
  local done, t0, k = 0, now(), 0
  repeat
    k = k + 1
    local r = testing.system("bench-rd" .. k)
    r:connect(id)
    for _ = 1, 100 do done = done + #r:read_channel(id, { limit = 1000 }) end
    r:stop()
  until now() - t0 >= 2
  result("broadcast reads alone, batches of 1000", math.floor(done / (now() - t0)), "msg/s",
    { key = "bcast_reads", note = "decode into the reader's tables; messages written before" })
end

-- fan-out: every one of 10 readers reads every message
do
  local readers, id = 10, "bench-fan10"
  w:add_channel(sssn.broadcast { id = id, capacity = 100000 })
  local rs = {}
  for i = 1, readers do
    rs[i] = testing.system("bench-fan10-r" .. i)
    rs[i]:connect(id)
  end
  local deliveries = rate(2, 1000, function(n)
    for _ = 1, n do w:write_channel(id, payload) end
    for i = 1, readers do
      local got = rs[i]:read_channel(id, { limit = n })
      assert(#got == n)
    end
  end) * readers
  result("fan-out 10 readers", math.floor(deliveries), "deliveries/s", { key = "fanout10" })
  for i = 1, readers do rs[i]:stop() end
end

-- the floor under every delivery: a reader gets a fresh envelope table (with content, data
-- and metadata tables) for each message; this is what building one costs in plain Lua
do
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
end

-- work queue: write, claim, acknowledge (the claimed messages themselves)
do
  w:add_channel(sssn.work_queue { id = "bench-q", capacity = 100000 })
  local worker = testing.system("bench-worker")
  worker:connect("bench-q")
  local v = rate(2, 500, function(n)
    for _ = 1, n do w:write_channel("bench-q", payload) end
    local got = worker:claim_channel("bench-q", { limit = n })
    assert(#got == n)
    assert(worker:acknowledge_channel("bench-q", got) == n)
  end)
  result("work queue write + claim + ack", math.floor(v), "msg/s",
    { key = "wq", note = "write + claim + acknowledge per message" })
  worker:stop()
end
w:stop()
