-- A client that discovers the temperature feed at run time: no hard-coded channel, it asks
-- the registry for public channels whose name contains "temperature" and connects to them.
local sssn = require "sssn"

local consumer = sssn.system { id = "consumer", name = "Data Consumer", tick_rate = 2 }

function consumer:discover_and_connect()
  local found = {}
  for _, info in ipairs(sssn.registry:find_channels { visibility = "public" }) do
    if info.name:lower():find("temperature", 1, true) then found[#found + 1] = info end
  end
  if #found == 0 then
    print("[Consumer] no temperature channels found yet, retrying...")
    return
  end
  for _, info in ipairs(found) do
    self:connect(info)
    print(("[Consumer] connected to '%s' (%s)"):format(info.name, info.id))
    self.feed_id = info.id
  end
end

function consumer:step(dt)
  if not self.feed_id then
    self:discover_and_connect()
    if not self.feed_id then return end
  end
  for _, msg in ipairs(self:read_channel(self.feed_id, { limit = 20 })) do
    print(("[Consumer] temp=%s°C"):format(msg.content.data.celsius))
  end
end

return consumer
