-- Busted output handler for `sssn-host test`: busted's usual terminal output, then one
-- closing line "N passed, N failed" counting every test that ran (errors count as failed).
return function(options)
  local busted = require "busted"
  local inner = require("busted.outputHandlers." .. (options.defaultOutput or "plainTerminal"))(options)
  local counter = require("busted.outputHandlers.base")()
  counter:subscribe(options)
  busted.subscribe({ "suite", "end" }, function()
    io.stdout:write(("%d passed, %d failed\n"):format(counter.successesCount,
      counter.failuresCount + counter.errorsCount))
    io.stdout:flush()
    return nil, true
  end)
  return inner
end
