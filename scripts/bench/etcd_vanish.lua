-- Host A of scripts/bench/etcd.sh's vanish measurement, run as a system on an etcd-backed host:
--   BENCH_ID=ID BENCH_TTL=S sssn-host --registry etcd://... --listen 127.0.0.1:P etcd_vanish.lua
-- registers channel ID with TTL S (kept alive by the host) and idles until it is killed (-9).
local sssn = require "sssn"
local s = sssn.system { id = "bench-vanish", tick_rate = 1 }
function s:setup()
  sssn.registry:register_channel({ id = assert(os.getenv("BENCH_ID")), name = "Vanish",
    visibility = "public" }, assert(tonumber(os.getenv("BENCH_TTL"))))
  io.stdout:write("REGISTERED\n")
  io.stdout:flush()
end
function s:step() end
return s
