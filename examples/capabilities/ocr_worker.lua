-- Global-style system: defines setup (and no step); its id is the file's base name.
local sssn = require "sssn"

services = { { name = "process_image", description = "optical character recognition" },
             { name = "ocr", description = "text from scanned pages" } }
name = "OCR Worker"

function setup(self)
  sssn.registry:register_system(self:descriptor())
end
