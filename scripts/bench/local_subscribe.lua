-- The in-process benchmark of subscribe_channel for `make bench`: 10 systems subscribed to one
-- broadcast channel, a writer writing rounds of 100 messages; each round is delivered through
-- the loop (testing.run_pending) to every subscriber's function. Deliveries per second over
-- the whole path: write, the watcher, the deferred delivery, the envelope, the callback's task.
-- Run by `sssn-host run scripts/bench/local_subscribe.lua` (scripts/bench/run.sh).
local sssn = require "sssn"
local testing = require "sssn.testing"
local bench = dofile((arg[0]:match("^(.*/)") or "./") .. "common.lua")

local subscribers, per_round = 10, 100
local w = testing.system("bench-sub-writer")
w:add_channel(sssn.broadcast { id = "bench-sub", capacity = 100000 })
local got = 0
local subs = {}
for i = 1, subscribers do
  subs[i] = testing.system("bench-sub" .. i)
  subs[i]:connect("bench-sub")
  subs[i]:subscribe_channel("bench-sub", function() got = got + 1 end)
end
testing.run_pending()
local payload = { celsius = 22.4 }
local written = 0
local v = bench.rate(2, per_round, function(n)
  for _ = 1, n do w:write_channel("bench-sub", payload) end
  written = written + n
  local want = written * subscribers
  for _ = 1, 100000 do
    if got >= want then break end
    testing.run_pending()
  end
  assert(got == want, ("subscribers fell behind: %d of %d"):format(got, want))
end) * subscribers
bench.result("subscribe_channel, 10 subscribers", math.floor(v), "deliveries/s",
  { key = "subscribe10", note = "rounds of 100 writes, each message delivered to 10 subscribed functions" })
for i = 1, subscribers do subs[i]:stop() end
w:stop()
