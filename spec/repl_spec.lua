-- The interactive prompt: `sssn-host repl [URL]` and `sssn-host -i`, driven through a pipe
-- (no terminal: plain results, exit status 1 when a chunk failed) and through a real terminal
-- in tmux (prompts, completion, Ctrl-C, Ctrl-D, history), against live hosts.
local testing = require "sssn.testing"
local json = require("sssn").json

local exe = testing.exe

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"status=$?\"")
  local out = p:read("a")
  p:close()
  local status = tonumber(out:match("status=(%d+)%s*$"))
  return out:gsub("status=%d+%s*$", ""), status
end

local tmpdir = testing.tmpdir

local write_file = testing.write_file

-- Runs the REPL with `input` on its stdin (no terminal); returns stdout+stderr and status.
local function repl(args, input, dir)
  local file = dir .. "/input.lua"
  write_file(file, input)
  return sh(("timeout -k 5 20 %s %s < %s"):format(exe, args, file))
end

local fixture = [[
local sssn = require "sssn"
local s = sssn.system { id = "weather", tick_rate = 10,
  services = { { name = "forecast", description = "tomorrow's weather" } } }
function s:setup()
  local feed = self:add_channel(sssn.broadcast { id = "readings", name = "Weather Readings" })
  self:add_channel(sssn.broadcast { id = "ticks" })
  for n = 1, 3 do self:write_channel("readings", { n = n }) end
  -- what is written to "say" is printed and logged half a second later, from a step
  self:add_channel(sssn.broadcast { id = "say" })
  self:subscribe_channel("say", function(msg) self.say, self.say_at = msg.content.data, sssn.now() + 0.5 end)
  sssn.registry:register_channel(feed.info)
  sssn.registry:register_system(self:descriptor())
end
function s:step()
  local n = self:stats().steps
  self:write_channel("ticks", { n = n, at = sssn.now() })
  if n % 5 == 0 then sssn.registry:register_system(self:descriptor()) end -- a heartbeat
  if self.say_at and sssn.now() >= self.say_at then
    self.say_at = nil
    print(self.say)
    sssn.log("warn", "%s (logged)", self.say)
  end
end
return s
]]

describe("the REPL without a terminal", function()
  local dir
  setup(function()
    dir = tmpdir()
    write_file(dir .. "/weather.lua", fixture)
  end)
  teardown(function() os.execute("rm -rf " .. dir) end)

  it("prints expressions, runs statements, continues unfinished chunks, accepts =expr", function()
    local out, status = repl("repl", table.concat({
      "1 + 1",
      "x = 20",
      "x * 2",
      "=x",
      "(function() return 1, 'two', nil end)()",
      "for i = 1, 2 do",
      "  print('line ' .. i)",
      "end",
      "{ b = 2, a = 1, [1] = 'first' }",
    }, "\n") .. "\n", dir)
    assert.are.equal(0, status)
    assert.are.equal(table.concat({ "2", "40", "20", "1", "two", "nil", "line 1", "line 2",
      '{ "first", a = 1, b = 2 }', "" }, "\n"), out)
  end)

  it("prints an error and carries on, then exits 1", function()
    local out, status = repl("repl", "error('boom')\nlocal x = = 1\n1 + 2\n", dir)
    assert.are.equal(1, status)
    assert.matches("stdin:1: boom", out)
    assert.matches("stdin:1: unexpected symbol near '='", out)
    assert.matches("\n3\n", "\n" .. out)
  end)

  it("reports input that ends inside an unfinished chunk", function()
    local out, status = repl("repl", "for i = 1, 3 do\n", dir)
    assert.are.equal(1, status)
    assert.matches("unexpected end of input", out)
  end)

  it("pretty-prints nested tables with sorted keys, cycles marked and long arrays cut", function()
    local out = repl("repl", table.concat({
      "t = { z = { y = { 1, 2 }, x = true }, a = 'x' }; t.z.back = t; return t",
      "local a = {} for i = 1, 50 do a[i] = i end return a",
    }, "\n") .. "\n", dir)
    assert.matches('a = "x",\n  z = {\n    back = <cycle: table: 0x%x+>,\n    x = true,\n    y = { 1, 2 },\n  },', out)
    assert.matches("%-%- %.%.%. 30 more items %(50 in all%)", out)
  end)

  it("has registry helpers against a remote registry, with TTLs shown", function()
    local port = testing.free_port()
    os.execute(("timeout -k 5 30 %s --listen 127.0.0.1:%d %s/weather.lua > %s/host.log 2>&1 & echo $! > %s/pid")
      :format(exe, port, dir, dir, dir))
    local ok = false
    for _ = 1, 100 do
      if os.execute(("curl -sf http://127.0.0.1:%d/registry/systems/weather > /dev/null"):format(port)) then
        ok = true
        break
      end
      os.execute("sleep 0.05")
    end
    assert.is_true(ok, "the host did not start")
    local finally = function() os.execute("kill $(cat " .. dir .. "/pid) 2>/dev/null") end
    local okr, err = pcall(function()
      local url = ("http://127.0.0.1:%d"):format(port)
      local out, status = repl("repl " .. url, table.concat({
        "#channels()",
        "channels{ name = 'weather' }[1].id",
        "systems('forecast')[1].system_name",
        "#systems('nothing')",
        "channel('readings')",
        "channel('no-such')",
        "#read('readings', 2)",
        "read('readings', 1)[1].content.data.n",
        "write('readings', { n = 99 })",
        "read('readings', 1)[1].content.data.n",
        "help()",
      }, "\n") .. "\n", dir)
      assert.are.equal(0, status, out)
      local lines = {}
      for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
      assert.are.equal("1", lines[1])
      assert.are.equal("readings", lines[2])
      assert.are.equal("weather", lines[3])
      assert.are.equal("0", lines[4])
      assert.matches("expires_at = [%d%.]+,  %-%- [23]%d%d%.%d s left", out)
      assert.matches('name = "Weather Readings"', out)
      assert.matches("\nnil\n", out)
      assert.matches("\n2\n3\n", out)
      assert.matches("\n[0-9a-f%-]+\n99\n", out)
      assert.matches("watch%(%)", out)

      local jout = repl("repl --json " .. url, "channel('readings')\n1, 'a'\n", dir)
      local jl = {}
      for l in jout:gmatch("[^\n]+") do jl[#jl + 1] = l end
      assert.are.equal(3, #jl)
      assert.are.equal("readings", json.decode(jl[1]).id)
      assert.are.equal(1, json.decode(jl[2]))
      assert.are.equal("a", json.decode(jl[3]))
    end)
    finally()
    assert(okr, err)
  end)

  it("opens a prompt inside a host with -i, next to its running systems", function()
    local out, status = repl("-i " .. dir .. "/weather.lua", table.concat({
      "sssn.sleep(0.5)",
      "system('weather').system_id",
      "read('ticks', 1)[1].content.data.n > 3",
    }, "\n") .. "\n", dir)
    assert.are.equal(0, status, out)
    assert.matches("weather\ntrue\n", out)
  end)
end)

describe("the REPL in a terminal", function()
  local dir, session
  local function keys(...)
    local args = {}
    for _, k in ipairs { ... } do args[#args + 1] = ("'%s'"):format(k:gsub("'", "'\\''")) end
    os.execute(("tmux -L sssn-spec send-keys -t %s %s"):format(session, table.concat(args, " ")))
  end
  -- the screen without trailing blank space: a waiting prompt ends it with ">" or ">>"
  local function screen()
    local p = io.popen(("tmux -L sssn-spec capture-pane -p -t %s"):format(session))
    local s = p:read("a")
    p:close()
    return (s:gsub("%s+$", ""))
  end
  -- waits (bounded) until the screen matches a pattern
  local function wait_for(pattern)
    for _ = 1, 100 do
      local s = screen()
      if s:find(pattern) then return s end
      os.execute("sleep 0.05")
    end
    error(("screen never showed %q:\n%s"):format(pattern, screen()))
  end

  setup(function()
    dir = tmpdir()
    write_file(dir .. "/weather.lua", fixture)
    session = "repl" .. testing.free_port()
    os.execute(("tmux -L sssn-spec new-session -d -s %s -x 100 -y 40 'SSSN_HISTORY=%s/history %s --duration 60 --log-level warn -i %s/weather.lua; echo EXITED=$?; sleep 30'")
      :format(session, dir, exe, dir))
    wait_for("\n?>$")
  end)
  teardown(function()
    os.execute(("tmux -L sssn-spec kill-session -t %s 2>/dev/null"):format(session))
    os.execute("rm -rf " .. dir)
  end)

  it("shows a prompt, a continuation prompt, and results", function()
    keys("for i = 1, 2 do", "Enter")
    wait_for(">>$")
    keys("print('hello ' .. i) end", "Enter")
    wait_for("hello 2\n>$")
  end)

  it("completes globals, fields and methods with Tab", function()
    keys("sssn.sle", "Tab")
    wait_for("sssn%.sleep$")
    keys("C-u", "registry:get_", "Tab", "Tab")
    local s = wait_for("registry:get_system")
    assert.matches("registry:get_channel", s)
    keys("C-u")
  end)

  it("completes channel and system ids known to the registry inside a string", function()
    os.execute("sleep 0.3") -- the id cache fills in the background
    keys("channel('rea", "Tab")
    wait_for("channel%('readings'$")
    keys("C-u")
  end)

  it("redraws the prompt and the line being typed below what a system prints meanwhile", function()
    keys("write('say', 'psst')", "Enter")
    wait_for("%x+%-%x+%-%x+%-%x+%-%x+\n>$")
    keys("local typed = 'so far'")
    local s = wait_for("\npsst\nsssn%-host: warn: %[weather%] psst %(logged%)\n> local typed = 'so far'$")
    assert.is_nil(s:find("'so far'psst", 1, true))
    keys("C-u")
  end)

  it("watches registry events as they happen until Ctrl-C", function()
    keys("watch()", "Enter")
    wait_for("refreshed system weather %(%d+ s left%)")
    keys("C-c")
    wait_for("interrupted\n>$")
  end)

  it("interrupts a waiting chunk and a busy loop with Ctrl-C, and the host goes on", function()
    keys("sssn.sleep(100)", "Enter")
    os.execute("sleep 0.3")
    keys("C-c")
    wait_for("interrupted\n>$")
    keys("while true do end", "Enter")
    os.execute("sleep 0.3")
    keys("C-c")
    wait_for("while true do end\n%^?C?interrupted\n>$")
    keys("system('weather') ~= nil", "Enter")
    wait_for("true\n>$")
  end)

  it("keeps the systems ticking at their rate while the prompt waits", function()
    keys("n0 = read('ticks', 1)[1].content.data.n", "Enter")
    os.execute("sleep 1")
    keys("read('ticks', 1)[1].content.data.n - n0 >= 7", "Enter")
    wait_for("true\n>$")
  end)

  it("leaves on Ctrl-D with status 0 and keeps the history", function()
    keys("C-d")
    wait_for("EXITED=0")
    local f = assert(io.open(dir .. "/history"))
    local hist = f:read("a")
    f:close()
    assert.matches("for i = 1, 2 do", hist)
    assert.matches("sssn.sleep%(100%)", hist)
  end)
end)
