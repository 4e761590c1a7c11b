-- Runs busted inside the host: `sssn-host test [busted args]`. Specs get the real bindings,
-- the real loop and the test clock. Returns the exit status for the host to report.
return function(args)
  local has_output = false
  for _, a in ipairs(args) do
    if a == "-o" or a:match("^%-%-output") then has_output = true end
  end
  local argv = {}
  if not has_output then argv[#argv + 1] = "--output=sssn.busted_output" end
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  if #args == 0 or args[#args]:sub(1, 1) == "-" then argv[#argv + 1] = "spec" end
  _G.arg = argv
  argv[0] = "sssn-host test"

  -- busted ends with os.exit on failure; keep the host in charge of exiting
  local exit_code = 0
  local real_exit = os.exit
  os.exit = function(code)
    if code == true or code == nil then code = 0 elseif code == false then code = 1 end
    error({ sssn_exit = code }, 0)
  end
  local ok, err = pcall(function() require("busted.runner")({ standalone = false }) end)
  os.exit = real_exit
  if not ok then
    if type(err) == "table" and err.sssn_exit then
      exit_code = err.sssn_exit
    else
      io.stderr:write("sssn-host test: ", tostring(err), "\n")
      exit_code = 1
    end
  end
  return exit_code
end
