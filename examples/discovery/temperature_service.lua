-- A service that publishes itself to the registry: a public broadcast feed of temperature
-- readings, registered with its channel and its capability. Run with the consumer:
--   sssn-host --duration 5 examples/discovery/*.lua
local sssn = require "sssn"

local svc = sssn.system {
  id = "temp-svc",
  name = "Temperature Service",
  tick_rate = 2,
  services = { { name = "temperature", description = "live temperature readings" } },
}

function svc:setup()
  self.feed = self:add_channel(sssn.broadcast {
    id = "temperature-feed",
    name = "Temperature Feed",
    description = "Live temperature readings from all sensors",
    visibility = "public",
  })
  sssn.sleep(1) -- warming up the sensors: the consumer starts looking before we announce
  self:announce()
end

function svc:announce()
  sssn.registry:register_channel(self.feed.info)
  sssn.registry:register_system(self:descriptor())
  print(("[%s] registered with discovery"):format(self.id))
end

function svc:step(dt)
  self:write_channel("temperature-feed", { celsius = 22.4, ts = sssn.now() })
end

return svc
