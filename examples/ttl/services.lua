-- TTL expiry: two services register with a 3 s TTL and opt out of the host's automatic
-- keep-alive. "steady" re-announces every 2 s (a heartbeat, as in upstream sssn); "flaky"
-- announces once. A watcher prints what the registry holds each second: flaky disappears
-- after its TTL while steady stays.
--   sssn-host --duration 7 --maintenance 1 examples/ttl/*.lua
local sssn = require "sssn"

local steady = sssn.system { id = "steady", tick_rate = 0.5,
  services = { { name = "heartbeat-demo" } } }

function steady:step()
  sssn.registry:register_system(self:descriptor(), 3, { keepalive = false })
end

return steady
