-- Two systems declare services; they register their descriptors at start-up.
local sssn = require "sssn"

local resizer = sssn.system {
  id = "resizer-1", name = "Image Resizer",
  services = {
    { name = "process_image", description = "resize and crop", parameters = { max_width = "int" } },
    { name = "thumbnail", description = "128x128 thumbnails" },
  },
}
function resizer:setup() sssn.registry:register_system(self:descriptor()) end
return resizer
