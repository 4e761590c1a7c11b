-- The interactive prompt: `sssn-host repl [URL]` and `sssn-host -i`, driven through a pipe
-- (no terminal: plain results, exit status 1 when a chunk failed) and through a real terminal
-- in tmux (prompts, completion, Ctrl-C, Ctrl-D, history), against live hosts.
local testing = require "sssn.testing"
local json = require("sssn").json

local exe = testing.exe

local write_file = testing.write_file

-- Runs `sssn-host ARGS` (a list) with `input` on its stdin (no terminal); returns its stdout
-- and stderr together, in order (2>&1), and its exit status.
local function repl(args, input)
  local argv = { exe }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local out, _, status = testing.run(argv, { input = input, merge = true, limit = 20 })
  return out, status
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
    dir = testing.tmpdir()
    write_file(dir .. "/weather.lua", fixture)
  end)
  teardown(function() testing.rmtree(dir) end)

  it("prints expressions, runs statements, continues unfinished chunks, accepts =expr", function()
    local out, status = repl({ "repl" }, table.concat({
      "1 + 1",
      "x = 20",
      "x * 2",
      "=x",
      "(function() return 1, 'two', nil end)()",
      "for i = 1, 2 do",
      "  print('line ' .. i)",
      "end",
      "{ b = 2, a = 1, [1] = 'first' }",
    }, "\n") .. "\n")
    assert.are.equal(0, status)
    assert.are.equal(table.concat({ "2", "40", "20", "1", "two", "nil", "line 1", "line 2",
      '{ "first", a = 1, b = 2 }', "" }, "\n"), out)
  end)

  it("prints an error and carries on, then exits 1", function()
    local out, status = repl({ "repl" }, "error('boom')\nlocal x = = 1\n1 + 2\n")
    assert.are.equal(1, status)
    assert.matches("stdin:1: boom", out)
    assert.matches("stdin:1: unexpected symbol near '='", out)
    assert.matches("\n3\n", "\n" .. out)
  end)

  it("reports input that ends inside an unfinished chunk", function()
    local out, status = repl({ "repl" }, "for i = 1, 3 do\n")
    assert.are.equal(1, status)
    assert.matches("unexpected end of input", out)
  end)

  it("pretty-prints nested tables with sorted keys, cycles marked and long arrays cut", function()
    local out = repl({ "repl" }, table.concat({
      "t = { z = { y = { 1, 2 }, x = true }, a = 'x' }; t.z.back = t; return t",
      "local a = {} for i = 1, 50 do a[i] = i end return a",
    }, "\n") .. "\n")
    assert.matches('a = "x",\n  z = {\n    back = <cycle: table: 0x%x+>,\n    x = true,\n    y = { 1, 2 },\n  },', out)
    assert.matches("%-%- %.%.%. 30 more items %(50 in all%)", out)
  end)

  it("has registry helpers against a remote registry, with TTLs shown", function()
    local host = testing.start_host({ "--listen", "127.0.0.1:0", dir .. "/weather.lua" }, { limit = 30 })
    finally(function() host:stop() end)
    host:ready("/registry/systems/weather")
    local out, status = repl({ "repl", host.base }, table.concat({
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
    }, "\n") .. "\n")
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

    local jout = repl({ "repl", "--json", host.base }, "channel('readings')\n1, 'a'\n")
    local jl = {}
    for l in jout:gmatch("[^\n]+") do jl[#jl + 1] = l end
    assert.are.equal(3, #jl)
    assert.are.equal("readings", json.decode(jl[1]).id)
    assert.are.equal(1, json.decode(jl[2]))
    assert.are.equal("a", json.decode(jl[3]))
  end)

  it("opens a prompt inside a host with -i, next to its running systems", function()
    local out, status = repl({ "-i", dir .. "/weather.lua" }, table.concat({
      "sssn.sleep(0.5)",
      "system('weather').system_id",
      "read('ticks', 1)[1].content.data.n > 3",
    }, "\n") .. "\n")
    assert.are.equal(0, status, out)
    assert.matches("weather\ntrue\n", out)
  end)
end)

-- A real terminal: `sssn-host -i weather.lua` in a tmux server of its own (own socket, own
-- history file, own host), opened afresh for each spec so that none depends on another.
-- term:keys(...) types (tmux key names: "Enter", "Tab", "C-c"), term:wait_for(pattern) polls
-- the screen through the loop until it matches, with a deadline.
local Term = {}
Term.__index = Term

function Term:tmux(...)
  local out, err, code = testing.run({ "tmux", "-S", self.socket, "-f", "/dev/null", ... }, { limit = 5 })
  return out, err, code
end

local function open_term()
  local dir = testing.tmpdir()
  write_file(dir .. "/weather.lua", fixture)
  local term = setmetatable({ dir = dir, socket = dir .. "/tmux", history = dir .. "/history",
    status = dir .. "/status" }, Term)
  -- the host's exit status goes to a file: the pane (and its tmux server) ends with the host;
  -- the shell outlives the Ctrl-Cs typed to the host (a trap, not an ignore: exec resets it)
  local _, err, code = term:tmux("new-session", "-d", "-s", "repl", "-x", "100", "-y", "40",
    "sh", "-c", 'trap : INT; SSSN_HISTORY="$1" "$2" --duration 60 --log-level warn -i "$3"; echo "$?" > "$4"',
    "sh", term.history, exe, dir .. "/weather.lua", term.status)
  assert(code == 0, "tmux did not start: " .. err)
  return term
end

function Term:close()
  self:tmux("kill-server") -- the host in it gets SIGHUP; fails harmlessly when it already ended
  testing.rmtree(self.dir)
end

function Term:keys(...) self:tmux("send-keys", "-t", "repl", ...) end

-- the screen without trailing blank space: a waiting prompt ends it with ">" or ">>"
function Term:screen() return (self:tmux("capture-pane", "-p", "-t", "repl"):gsub("%s+$", "")) end

-- the screen once it matches the pattern (within `seconds`, 5), else nil
function Term:poll(pattern, seconds)
  return testing.eventually(seconds or 5, function()
    local s = self:screen()
    return s:find(pattern) and s
  end, 0.02) or nil
end

function Term:wait_for(pattern, seconds)
  return self:poll(pattern, seconds) or error(("screen never showed %q:\n%s"):format(pattern, self:screen()), 2)
end

-- Waits until the REPL has taken the line typed last: the cursor has left it for the start
-- of the next row, so a chunk on it is running (what Ctrl-C then interrupts). A Ctrl-C sent
-- earlier would reach the prompt, which drops the line unread.
function Term:wait_taken(line)
  local ok = testing.eventually(5, function()
    local row, i = nil, 0
    for l in (self:screen() .. "\n"):gmatch("([^\n]*)\n") do
      if l == "> " .. line then row = i end
      i = i + 1
    end
    local x, y = self:tmux("display-message", "-p", "-t", "repl", "#{cursor_x} #{cursor_y}"):match("(%d+) (%d+)")
    return row and tonumber(x) == 0 and tonumber(y) == row + 1
  end, 0.02)
  if not ok then error(("the REPL never took %q:\n%s"):format(line, self:screen()), 2) end
end

describe("the REPL in a terminal", function()
  local term
  before_each(function()
    term = open_term()
    term:wait_for("\n?>$")
  end)
  after_each(function() term:close() end)

  it("shows a prompt, a continuation prompt, and results", function()
    term:keys("for i = 1, 2 do", "Enter")
    term:wait_for(">>$")
    term:keys("print('hello ' .. i) end", "Enter")
    term:wait_for("hello 2\n>$")
  end)

  it("completes globals, fields and methods with Tab", function()
    term:keys("sssn.sle", "Tab")
    term:wait_for("sssn%.sleep$")
    term:keys("C-u", "registry:get_", "Tab", "Tab")
    local s = term:wait_for("registry:get_system")
    assert.matches("registry:get_channel", s)
    term:keys("C-u")
  end)

  it("completes channel and system ids known to the registry inside a string", function()
    -- the id cache fills in the background (at start, then every 5 s): Tab until it has
    local s = testing.eventually(7, function()
      term:keys("C-u", "channel('rea", "Tab")
      return term:poll("channel%('readings'$", 0.2)
    end)
    assert.truthy(s, term:screen())
    term:keys("C-u")
  end)

  it("redraws the prompt and the line being typed below what a system prints meanwhile", function()
    term:keys("write('say', 'psst')", "Enter")
    term:wait_for("%x+%-%x+%-%x+%-%x+%-%x+\n>$")
    term:keys("local typed = 'so far'")
    local s = term:wait_for("\npsst\nsssn%-host: warn: %[weather%] psst %(logged%)\n> local typed = 'so far'$")
    assert.is_nil(s:find("'so far'psst", 1, true))
    term:keys("C-u")
  end)

  it("watches registry events as they happen until Ctrl-C", function()
    term:keys("watch()", "Enter")
    term:wait_for("refreshed system weather %(%d+ s left%)")
    term:keys("C-c")
    -- the terminal may echo the ^C itself when it arrives as readline hands the tty back
    term:wait_for("interrupted\n[%^C]*>$")
  end)

  it("interrupts a waiting chunk and a busy loop with Ctrl-C, and the host goes on", function()
    term:keys("sssn.sleep(100)", "Enter")
    term:wait_taken("sssn.sleep(100)")
    term:keys("C-c")
    term:wait_for("interrupted\n>$")
    term:keys("while true do end", "Enter")
    term:wait_taken("while true do end")
    term:keys("C-c")
    term:wait_for("while true do end\n%^?C?interrupted\n>$")
    term:keys("system('weather') ~= nil", "Enter")
    term:wait_for("true\n>$")
  end)

  it("keeps the systems ticking at their rate while the prompt waits", function()
    term:keys("n0 = read('ticks', 1)[1].content.data.n", "Enter")
    term:wait_for("n0 = read%('ticks', 1%)%[1%]%.content%.data%.n\n>$")
    testing.run_for(1) -- the prompt waiting a second is what is tested: the loop runs meanwhile
    term:keys("read('ticks', 1)[1].content.data.n - n0 >= 7", "Enter")
    term:wait_for("true\n>$")
  end)

  it("leaves on Ctrl-D with status 0 and keeps the history", function()
    term:keys("for i = 1, 2 do", "Enter")
    term:wait_for(">>$")
    term:keys("print(i) end", "Enter") -- not a bare "end": tmux would send the End key
    term:wait_for("\n2\n>$")
    term:keys("sssn.sleep(100)", "Enter")
    term:wait_taken("sssn.sleep(100)")
    term:keys("C-c")
    term:wait_for("interrupted\n>$")
    term:keys("C-d")
    local status = testing.eventually(5, function() return testing.read_file(term.status):match("^(%d+)\n") end)
    assert.are.equal("0", status, term:screen())
    local hist = testing.read_file(term.history)
    assert.matches("for i = 1, 2 do", hist)
    assert.matches("sssn.sleep%(100%)", hist)
  end)
end)
