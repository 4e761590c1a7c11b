-- Finds systems by capability (exact service name) and prints what they offer.
--   sssn-host --duration 2 examples/capabilities/*.lua
local sssn = require "sssn"

local finder = sssn.system { id = "finder", name = "Capability Finder", tick_rate = 1 }

function finder:step()
  if self.done then return end
  sssn.sleep(0.5) -- let the workers register first
  for _, capability in ipairs { "process_image", "ocr", "translate" } do
    local systems = sssn.registry:find_systems { capability = capability }
    print(("capability %q: %d system(s)"):format(capability, #systems))
    for _, sys_info in ipairs(systems) do
      local names = {}
      for _, s in ipairs(sys_info.services) do names[#names + 1] = s.name end
      print(("  Found: %s (%s)"):format(sys_info.system_name, sys_info.system_id))
      print(("    services: {%s}"):format(table.concat(names, ", ")))
    end
  end
  self.done = true
end

return finder
