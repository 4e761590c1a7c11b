-- Prints the live systems offering "heartbeat-demo" every second, with their remaining TTL,
-- and the registry's own events (registered / refreshed / expired) as they happen.
local sssn = require "sssn"

local watcher = sssn.system { id = "ttl-watcher", tick_rate = 1 }

function watcher:setup()
  self:connect("registry")
end

function watcher:step()
  local now = sssn.now()
  local live = {}
  for _, d in ipairs(sssn.registry:find_systems { capability = "heartbeat-demo" }) do
    live[#live + 1] = ("%s (%.1fs left)"):format(d.system_id, d.expires_at - now)
  end
  print(("[watcher] live: %s"):format(#live > 0 and table.concat(live, ", ") or "none"))
  for _, msg in ipairs(self:read_channel("registry")) do
    local ev = msg.content.data
    if ev.kind == "system" and ev.id ~= self.id then
      print(("[watcher] event: %s %s"):format(ev.event, ev.id))
    end
  end
end

return watcher
