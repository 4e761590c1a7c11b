-- Announces itself once with a 3 s TTL and never again (see services.lua).
local sssn = require "sssn"

local flaky = sssn.system { id = "flaky", services = { { name = "heartbeat-demo" } } }

function flaky:setup()
  sssn.registry:register_system(self:descriptor(), 3, { keepalive = false })
end

return flaky
