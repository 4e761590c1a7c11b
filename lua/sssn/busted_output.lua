-- Busted output handler for `sssn-host test`: busted's usual terminal output, then one
-- closing line "N passed, N failed" counting every test that ran (errors count as failed).
-- The host's log is captured (sssn.testing.log): each test starts with an empty one, and a
-- test that fails shows what the host logged during it, so a passing run stays quiet.
return function(options)
  local busted = require "busted"
  local core = require "sssn.core"
  local inner = require("busted.outputHandlers." .. (options.defaultOutput or "plainTerminal"))(options)
  local counter = require("busted.outputHandlers.base")()
  counter:subscribe(options)
  local function take_log() return core.testing and core.testing.log(true) or "" end
  busted.subscribe({ "test", "start" }, function()
    take_log()
    return nil, true
  end)
  local function show_log(element)
    local log = take_log()
    if log ~= "" then
      io.stderr:write(("\n-- the host's log during %s:\n%s"):format(
        element and element.name or "the failed test", log))
    end
    return nil, true
  end
  busted.subscribe({ "test", "end" }, function(element, _, status)
    if status == "failure" or status == "error" then show_log(element) end
    return nil, true
  end)
  busted.subscribe({ "error" }, show_log)
  busted.subscribe({ "suite", "end" }, function()
    io.stdout:write(("%d passed, %d failed\n"):format(counter.successesCount,
      counter.failuresCount + counter.errorsCount))
    io.stdout:flush()
    return nil, true
  end)
  return inner
end
