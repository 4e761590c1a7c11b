-- Point lookups: get a channel or a system by id (O(1)); nil when absent or expired.
--   sssn-host --duration 1 examples/lookups/point_lookups.lua
local sssn = require "sssn"

local demo = sssn.system { id = "lookup-demo", name = "Lookup Demo",
  services = { { name = "lookups" } } }

function demo:setup()
  local pulse = self:add_channel(sssn.periodic {
    id = "pulse", name = "Pulse", period = 0.5, visibility = "private",
    pull = function() return { beat = true } end,
  })
  sssn.registry:register_channel(pulse.info)
  sssn.registry:register_system(self:descriptor())

  local info = sssn.registry:get_channel("pulse")
  if info then
    print(("Channel: %s, period=%ss, visibility=%s"):format(info.name, info.period, info.visibility))
  end
  local sys_desc = sssn.registry:get_system("lookup-demo")
  if sys_desc then
    print(("System: %s"):format(sys_desc.system_name))
  end
  print(("Unknown channel: %s"):format(tostring(sssn.registry:get_channel("no-such-channel"))))
end

return demo
