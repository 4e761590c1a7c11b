-- Fixed registry work for instruction counts (callgrind) and wall clock, one workload per run:
--   sssn-host run scripts/bench/registry_work.lua MODE [N]
-- MODE: get1000 (N lookups cycling over 1,000 channel ids), upsert (N register_channel of one
-- entry), findvis (N find_channels{visibility="public"} with 10 public among 100,000),
-- purge (N entries expiring at once, then maintain), purgeread (purge, then read every event).
-- Prints the wall time of the timed part; under callgrind use --toggle-collect on the C entry
-- points (README of issue 11's report) or compare totals.
local sssn = require "sssn"
local testing = require "sssn.testing"
local mode, n = ...
n = tonumber(n)
local reg = sssn.registry
local wall = testing.walltime
local t0, t1

if mode == "get1000" then
  n = n or 300000
  for i = 1, 1000 do reg:register_channel({ id = "c" .. i, name = "C" .. i, description = "d" }, 3600) end
  local ids = {}
  for i = 1, 1000 do ids[i] = "c" .. i end
  t0 = wall()
  local j = 0
  for _ = 1, n do
    j = j % 1000 + 1
    reg:get_channel(ids[j])
  end
  t1 = wall()
elseif mode == "upsert" then
  n = n or 200000
  local info = { id = "bench-ch", name = "Bench Channel", description = "d", visibility = "public" }
  t0 = wall()
  for _ = 1, n do reg:register_channel(info, 300) end
  t1 = wall()
elseif mode == "findvis" then
  n = n or 2000
  for i = 1, 100000 do
    reg:register_channel({ id = "p" .. i, visibility = i % 10000 == 0 and "public" or "private" }, 3600)
  end
  t0 = wall()
  for _ = 1, n do assert(#reg:find_channels { visibility = "public" } == 10) end
  t1 = wall()
elseif mode == "purge" or mode == "purgeread" then
  n = n or 100000
  local t = sssn.now()
  testing.freeze(t)
  for i = 1, n do reg:register_channel({ id = "exp" .. i }, 1) end
  testing.freeze(t + 1.5)
  t0 = wall()
  assert(reg:maintain() == n)
  t1 = wall()
  if mode == "purgeread" then
    -- then a reader takes every event of the purge, in order, as a system would
    local r = testing.system("purge-reader")
    r:connect("registry")
    local tr, seen, last = wall(), 0, 0
    repeat
      local batch = r:read_channel("registry", { limit = 1000 })
      for _, m in ipairs(batch) do
        local ev = m.content.data
        if ev.event == "expired" then
          seen = seen + 1
          local k = tonumber(ev.id:sub(4))
          assert(k > last, "out of order")
          last = k
        end
      end
    until #batch == 0
    print(("read after purge: %d expired events held, %.1f ms"):format(seen, (wall() - tr) * 1000))
  end
  testing.real()
else
  error("mode: get1000 | upsert | findvis | purge | purgeread")
end
print(("%s n=%d: %.1f ms, %.0f op/s"):format(mode, n, (t1 - t0) * 1000, n / (t1 - t0)))
