-- End to end: the sssn-host command as a user runs it. Each spec starts real processes as
-- children of the runner, never through a shell (testing.start_host: bounded by a limit,
-- stopped after each spec even when an assertion fails), and checks their output and exit
-- status. Independent runs inside one spec start together and are waited for together;
-- every wait runs the loop until the event (a line of output, the process's exit) with a
-- deadline, and nothing sleeps.
local testing = require "sssn.testing"

local write = testing.write_file

-- What the current spec started and made, stopped and removed after it.
local live, dirs = {}, {}
after_each(function()
  for i = #live, 1, -1 do live[i]:stop() end
  for _, d in ipairs(dirs) do testing.rmtree(d) end
  live, dirs = {}, {}
end)

-- A fresh directory for the current spec's files.
local function scratch()
  local d = testing.tmpdir()
  dirs[#dirs + 1] = d
  return d
end

-- Starts `sssn-host ARGS` (a list) with its output in a directory of its own: a process
-- (p:out(), p:err(), p:wait_output(), p:wait_err(), p:signal(), p:wait_exit(), p:stop()),
-- which gets SIGALRM after `limit` seconds (20), as `timeout` did.
local function start(args, limit)
  local p = testing.start_host(args, { limit = limit or 20 })
  live[#live + 1] = p
  return p
end

-- Waits, the loop running, until p ends by itself (its limit bounds that); then its
-- stdout, stderr and exit code.
local function finish(p)
  p:wait_exit(30)
  local code = p:stop()
  return p:out(), p:err(), code
end

-- Runs `sssn-host ARGS` to its end: stdout, stderr, exit code.
local function host(args, limit) return finish(start(args, limit)) end

-- Runs each of a list of argument lists as `sssn-host ARGS`, all at once, to their ends:
-- a list of { stdout, stderr, exit code }, in the same order.
local function hosts(list, limit)
  local ps, results = {}, {}
  for i, args in ipairs(list) do ps[i] = start(args, limit) end
  for i, p in ipairs(ps) do results[i] = { finish(p) } end
  return results
end

describe("sssn-host", function()
  it("prints help that lists its options, and its version", function()
    local r = hosts { { "--help" }, { "--version" } }
    local out, _, code = table.unpack(r[1])
    assert.are.equal(0, code)
    for _, opt in ipairs { "--listen", "--advertise", "--registry", "-e CHUNK", "-i ", "--json", "--duration",
      "--ttl", "--maintenance", "--memory-limit", "--step-timeout", "--log-level", "--version", "--help",
      "repl [URL]", "test [busted", "run FILE [ARG...]", "(default 300)", "(default 30)", "(default 10, 0 = off)",
      "\n  3  " } do
      assert.truthy(out:find(opt, 1, true), opt)
    end
    out, _, code = table.unpack(r[2])
    assert.are.equal(0, code)
    assert.matches("^sssn%-host %d+%.%d+%.%d+", out)
  end)

  it("rejects unknown options and bad values with status 2", function()
    local r = hosts { { "--bogus", "x.lua" }, { "--duration", "soon", "x.lua" }, {} }
    local _, err, code = table.unpack(r[1])
    assert.are.equal(2, code)
    assert.matches("unknown option '%-%-bogus'", err)
    _, err, code = table.unpack(r[2])
    assert.are.equal(2, code)
    assert.matches("%-%-duration wants a number of seconds between 0%.001 and 1e9 %(0%.001 <= S < 1e9%), not 'soon'", err)
    _, err, code = table.unpack(r[3])
    assert.are.equal(2, code)
    assert.matches("no SCRIPT given", err)
  end)

  it("refuses every out-of-range option value at start-up with status 2, naming the option", function()
    local seconds = "wants a number of seconds between 0.001 and 1e9 (0.001 <= S < 1e9), not '%s'"
    local cases = {
      { { "--ttl", "1e9" }, "--ttl " .. seconds:format("1e9") },
      { { "--ttl", "0" }, "--ttl " .. seconds:format("0") },
      { { "--ttl", "nan" }, "--ttl " .. seconds:format("nan") },
      { { "--ttl=-5" }, "--ttl " .. seconds:format("-5") },
      { { "--duration", "inf" }, "--duration " .. seconds:format("inf") },
      { { "--maintenance", "1e-300" }, "--maintenance " .. seconds:format("1e-300") },
      { { "--step-timeout", "-1" }, "--step-timeout wants 0 (off) or a number of seconds between 0.001 and 1e9" },
      { { "--memory-limit", " 8M" }, "--memory-limit wants a byte count like 65536, 512K or 8M, not ' 8M'" },
      { { "--memory-limit", "8X" }, "--memory-limit wants a byte count like 65536, 512K or 8M, not '8X'" },
      { { "--log-level", "loud" }, "--log-level wants error, warn, info or debug, not 'loud'" },
      { { "--registry", "http://" }, "--registry wants an http:// or https:// URL like http://127.0.0.1:7400, or etcd://HOST:PORT[,HOST:PORT...], not 'http://'" },
      { { "--registry", "etcd://127.0.0.1" }, "--registry: etcd member '127.0.0.1' in 'etcd://127.0.0.1' is not HOST:PORT" },
      { { "--registry", "etcd://a:1,,b:2" }, "--registry: etcd member '' in 'etcd://a:1,,b:2' is not HOST:PORT" },
      { { "--etcd-prefix", "sssn" }, "--etcd-prefix wants a key prefix like /sssn" },
      { { "--advertise", "http://a b" }, "--advertise wants an http:// or https:// URL like http://myhost:7400, not 'http://a b'" },
      { { "--listen", "70000" }, "--listen wants [ADDR:]PORT" },
      { { "--listen", "127.0.0.1:" }, "--listen wants [ADDR:]PORT" },
      { { "--json" }, "--json goes with -i or repl" },
      { { "-i", "--json=yes" }, "option '--json' takes no value" },
      { { "--ttl" }, "option '--ttl' needs a value" },
    }
    local runs = {}
    for i, c in ipairs(cases) do runs[i] = { "x.lua", table.unpack(c[1]) } end
    for i, r in ipairs(hosts(runs, 5)) do
      local out, err, code = table.unpack(r)
      local what = table.concat(cases[i][1], " ")
      assert.are.equal(2, code, what .. ": " .. err)
      assert.truthy(err:find("sssn-host: " .. cases[i][2], 1, true), what .. ": " .. err)
      assert.are.equal("", out)
    end
  end)

  it("refuses a --memory-limit below what an idle system needs, saying what that is", function()
    local _, err, code = host({ "x.lua", "--memory-limit", "16K" }, 5)
    assert.are.equal(2, code, err)
    local floor = tonumber(err:match("%-%-memory%-limit wants at least (%d+)K, what a system with nothing in it " ..
      "needs %(measured at start%-up%), not '16K'"))
    assert.truthy(floor, err)
    -- the number is the real floor: an idle system runs there, and a KiB less is refused
    local r = hosts {
      { "--memory-limit", floor .. "K", "--duration", "0.3", "-e", 'function step() print("ok") end' },
      { "--memory-limit", (floor - 1) .. "K", "-e", "function step() end" },
    }
    local out
    out, err, code = table.unpack(r[1])
    assert.are.equal(0, code, err)
    assert.matches("^ok\n", out)
    _, err, code = table.unpack(r[2])
    assert.are.equal(2, code, err)
  end)

  it("takes a --ttl just below the API's bound: registrations work", function()
    local out, err, code = host { "--ttl", "999999999", "--duration", "0.2", "-e", [[
      local sssn = require "sssn"
      function setup(self) print(sssn.registry:register_system(self:descriptor()) ~= nil) end]] }
    assert.are.equal(0, code, err)
    assert.are.equal("true\n", out)
  end)

  it("warns once at start-up that --registry without --listen leaves channels unreachable", function()
    local idle = { "-e", "function step() end", "--duration", "0.3", "--registry", "http://127.0.0.1:9" }
    local listening = { table.unpack(idle) }
    listening[#listening + 1], listening[#listening + 2] = "--listen", "0"
    local r = hosts { idle, listening }
    local _, err, code = table.unpack(r[1])
    assert.are.equal(0, code, err)
    local warning = "warn: --registry without --listen: other hosts will find the channels this host registers " ..
      "but cannot reach them (they have no endpoint); add --listen [ADDR:]PORT"
    local first = err:find(warning, 1, true)
    assert.truthy(first, err)
    assert.is_nil(err:find(warning, first + 1, true))
    _, err, code = table.unpack(r[2])
    assert.are.equal(0, code, err)
    assert.is_nil(err:find("without --listen", 1, true))
  end)

  it("listens on IPv6 ([::1]:PORT), advertises it in brackets, and is reached across hosts", function()
    local a = start({ "--listen", "[::1]:0", "examples/discovery/temperature_service.lua" }, 10)
    a:wait_err("HTTP API on", 5)
    local url = a:err():match("http://%[::1%]:%d+")
    assert.matches("^http://%[::1%]:%d+$", url or a:err())
    local b = start({ "--registry", url, "--listen", "0", "examples/discovery/data_consumer.lua" }, 10)
    b:wait_output("[Consumer] temp=22.4°C", 8)
    b:stop()
    a:stop()
    local out = b:out() .. b:err() .. a:err()
    assert.matches("%[Consumer%] connected to 'Temperature Feed'", out)
    assert.matches("%[Consumer%] temp=22%.4°C", out)
    assert.is_nil(out:find("no authentication", 1, true)) -- ::1 and a bare port are loopback
  end)

  it("refuses an open API on an address other than loopback, by the address bound, not by how it is spelt", function()
    local quiet = { "localhost:0", "127.0.0.2:0", "0x7f000001:0", "[::1]:0" } -- 0x7f000001: 127.0.0.1 spelt another way
    local loud = { "0.0.0.0:0", "[::]:0" }
    local runs = {}
    for _, listen in ipairs(quiet) do runs[#runs + 1] = { "--listen", listen, "--duration", "0.1" } end
    for _, listen in ipairs(loud) do runs[#runs + 1] = { "--listen", listen, "--duration", "0.1" } end
    for _, listen in ipairs(loud) do runs[#runs + 1] = { "--listen", listen, "--insecure", "--duration", "0.1" } end
    runs[#runs + 1] = { "--listen", "::1:7400", "x.lua" }
    runs[#runs + 1] = { "--listen", "no-such-host.invalid:7400", "x.lua" }
    local r = hosts(runs, 5)
    for i = 1, #quiet do
      local _, err, code = table.unpack(r[i])
      assert.are.equal(0, code, runs[i][2] .. ": " .. err)
      assert.is_nil(err:find("open", 1, true), err)
    end
    for i = #quiet + 1, #quiet + #loud do
      local _, err, code = table.unpack(r[i])
      assert.are.equal(2, code, runs[i][2] .. ": " .. err)
      assert.matches("is reachable from other machines and no authentication is configured", err)
      assert.matches("%-%-insecure", err)
    end
    for i = #quiet + #loud + 1, #quiet + 2 * #loud do
      local _, err, code = table.unpack(r[i])
      assert.are.equal(0, code, runs[i][2] .. ": " .. err)
      assert.matches("is open %(%-%-insecure%): anyone who can reach", err)
    end
    local _, err, code = table.unpack(r[#runs - 1])
    assert.are.equal(2, code)
    assert.matches("IPv6 addresses go in brackets: %[::1%]:7400", err)
    _, err, code = table.unpack(r[#runs])
    assert.are.equal(2, code)
    assert.matches("%-%-listen cannot resolve 'no%-such%-host%.invalid'", err)
  end)

  it("runs -e chunks: plain code once, or an inline system", function()
    local r = hosts {
      { "-e", 'print("hello " .. require("sssn").version)' },
      { "--duration", "0.3", "-e", 'function step(self) print("tick " .. self.id) end' },
      { "-e", 'error("nope")' },
    }
    local out, _, code = table.unpack(r[1])
    assert.are.equal(0, code)
    assert.matches("^hello %d+%.%d+%.%d+\n$", out)
    out, _, code = table.unpack(r[2])
    assert.are.equal(0, code)
    assert.matches("tick e1", out)
    local err
    _, err, code = table.unpack(r[3])
    assert.are.equal(1, code)
    assert.matches("%(command line%):1: nope", err)
  end)

  it("gives -e chunks the module as the global sssn", function()
    local out, _, code = host { "-e", "print(sssn.version, type(sssn.registry))" }
    assert.are.equal(0, code)
    assert.matches("^%d+%.%d+%.%d+\ttable\n$", out)
  end)

  it("words errors plainly: no host or module frames, no doubled verbs, counts in the singular", function()
    local r = hosts {
      { "-e", 'return require("sssn").system { id = "bad", tick_rate = -1 }' },
      { "/nonexistent/missing.lua" },
      { "--duration", "0.5", "-e", [[local function f() error("deep") end
      function step(self) if self.n then return end self.n = 1 f() end]] },
      { "--duration", "0.5", "-e", [[tick_rate = 20
      function step(self)
        error(setmetatable({ sssn_reported = true }, { __tostring = function() return "reported" end }))
      end]] },
    }
    local _, err = table.unpack(r[1])
    assert.matches("tick_rate of system 'bad' must be a positive number", err)
    assert.is_nil(err:find("stack traceback", 1, true), err)
    _, err = table.unpack(r[2])
    assert.matches("cannot open /nonexistent/missing.lua", err)
    assert.is_nil(err:find("cannot load cannot", 1, true), err)
    assert.is_nil(err:find("=(command line)", 1, true), err)
    local out
    out, err = table.unpack(r[3])
    assert.matches("%(command line%):1: deep\nstack traceback:\n\t%(command line%):1: in upvalue 'f'", err)
    assert.is_nil(err:find("\t?:", 1, true), err)     -- the module's own stripped frames
    assert.is_nil(err:find("[C]:", 1, true), err)
    assert.matches("stopped %(1 step, 1 error, 0 overruns%)", err)
    -- an error a remote registry already reported is counted, not logged again at each step
    out, err = table.unpack(r[4])
    assert.is_nil(err:find("reported", 1, true), err)
    assert.matches("stopped %(%d+ steps, %d+ errors", err)
    assert.are.equal("", out)
  end)

  it("reports a script that fails to load with file and line, and exits 1 when nothing starts", function()
    local dir = scratch()
    write(dir .. "/broken.lua", "local sssn = require 'sssn'\n\nlocal x = = 1\n")
    local r = hosts { { dir .. "/broken.lua" }, { dir .. "/missing.lua" } }
    local _, err, code = table.unpack(r[1])
    assert.are.equal(1, code)
    assert.truthy(err:find(dir .. "/broken.lua:3:", 1, true))
    assert.matches("no system could start", err)
    _, err, code = table.unpack(r[2])
    assert.are.equal(1, code)
    assert.matches("cannot open", err)
  end)

  it("runs the systems that load when another fails, stops after --duration, and exits 1", function()
    local dir = scratch()
    write(dir .. "/broken.lua", "error('nope')\n")
    write(dir .. "/ok.lua", "function step(self) print('tick ' .. self.id) end\n")
    local out, err, code = host { "--duration", "0.3", dir .. "/broken.lua", dir .. "/ok.lua" }
    assert.are.equal(1, code)
    assert.matches("tick ok", out)
    assert.matches("broken.lua:1: nope", err)
    assert.matches("1 script failed to load: running the others; the exit status will be 1", err)
  end)

  it("takes options after the SCRIPTs, as --name=value too, and treats what follows -- as SCRIPTs", function()
    local dir = scratch()
    write(dir .. "/ok.lua", "function step(self) print('tick ' .. self.id) end\n")
    local r = hosts({
      { dir .. "/ok.lua", "--duration", "0.3", "--log-level=warn" },
      { "--duration", "0.3", dir .. "/ok.lua", "--", "--log-level" },
    }, 5)
    local out, err, code = table.unpack(r[1])
    assert.are.equal(0, code, err)
    assert.matches("tick ok", out)
    assert.are.equal("", err)
    out, err, code = table.unpack(r[2])
    assert.are.equal(1, code)
    assert.matches("tick ok", out)
    assert.matches("cannot open %-%-log%-level", err)
  end)

  it("passes `run FILE ARG...` arguments to the script as ... and arg, as lua does", function()
    local dir = scratch()
    write(dir .. "/driver.lua", "print(select('#', ...), ...) print(arg[0]:match('driver%.lua$'), arg[1], arg[2], #arg)\n")
    local out, err, code = host { "run", dir .. "/driver.lua", "one", "--two" }
    assert.are.equal(0, code, err)
    assert.are.equal("2\tone\t--two\ndriver.lua\tone\t--two\t2\n", out)
  end)

  it("stops cleanly on SIGTERM and SIGINT: deregisters what systems registered, exits 0", function()
    local dir = scratch()
    write(dir .. "/svc.lua", [[
      local sssn = require "sssn"
      local s = sssn.system { id = "svc", services = { { name = "x" } } }
      function s:setup()
        local ch = self:add_channel(sssn.broadcast { id = "svc-feed" })
        sssn.registry:register_channel(ch.info)
        sssn.registry:register_system(self:descriptor())
        print("ready")
      end
      return s
    ]])
    for _, sig in ipairs { "TERM", "INT" } do
      local p = start { "--log-level", "debug", dir .. "/svc.lua" }
      p:wait_output("ready", 5)
      assert.is_true(p:signal(sig))
      local code = p:wait_exit(5)
      local err = p:err()
      assert.are.equal(0, code, sig .. ": " .. err)
      assert.matches("deregistered channel 'svc%-feed'", err)
      assert.matches("deregistered system 'svc'", err)
      assert.matches("%[svc%] stopped", err)
    end
  end)

  it("stops cleanly on a signal that arrives while the systems are still starting", function()
    local dir = scratch()
    -- setup says it is ready, then keeps the host in start-up for a while
    write(dir .. "/slow.lua", [[
      function setup() print("ready"); io.stdout:flush(); local t = os.clock(); while os.clock() - t < 0.5 do end end
      function step() end
    ]])
    for _, sig in ipairs { "TERM", "INT" } do
      local p = start({ "--step-timeout", "0", dir .. "/slow.lua" }, 10)
      p:wait_output("ready", 5)
      p:signal(sig)
      local code = p:wait_exit(5)
      assert.are.equal(0, code, sig .. ": " .. p:err())
      assert.matches("%[slow%] stopped", p:err(), nil, sig)
    end
  end)

  it("stops cleanly when its standard output is closed (| head), exiting 3", function()
    local t0 = testing.walltime()
    -- stdout is a pipe the spec reads three lines from and then closes, as `| head -3` does
    local p = testing.start({ testing.exe, "--log-level", "debug", "--duration", "30", "-e", [[
          tick_rate = 20
          function setup(self) require("sssn").registry:register_system(self:descriptor()) end
          function step(self) print("line " .. self:stats().steps) end]] },
      { pipe = true, stderr = scratch() .. "/err", limit = 10 })
    live[#live + 1] = p
    local got = p.pipe:receive(5, "line 3\n")
    p.pipe:close()
    local out = got:match("^[^\n]*\n[^\n]*\n[^\n]*\n") or got -- head's three lines
    local code = p:wait_exit(5)
    local err = p:err()
    assert.is_true(testing.walltime() - t0 < 5, "took too long: " .. err)
    assert.are.equal("line 1\nline 2\nline 3\n", out)
    assert.are.equal(3, code, err)
    assert.matches("info: stopping: standard output was closed %(nobody reads it any more%)", err)
    assert.matches("deregistered system 'e1'", err)
    assert.matches("%[e1%] stopped", err)
  end)

  it("interrupts a step that never yields when SIGINT arrives, and exits 0", function()
    local dir = scratch()
    write(dir .. "/spin.lua", "function step() print('spinning'); io.stdout:flush(); while true do end end\n")
    local p = start { "--step-timeout", "0", dir .. "/spin.lua" }
    p:wait_output("spinning", 5)
    p:signal("INT")
    local code = p:wait_exit(5)
    local err = p:err()
    assert.are.equal(0, code, err)
    assert.matches("interrupted by a signal", err)
    assert.matches("%[spin%] stopped", err)
  end)

  -- The examples run until they have shown what they are for (then SIGTERM stops them
  -- cleanly, exit status 0), not for a fixed time.

  it("runs the discovery example: the consumer retries, then connects and prints readings", function()
    local p = start { "examples/discovery/temperature_service.lua", "examples/discovery/data_consumer.lua" }
    p:wait_output("[Consumer] temp=22.4°C", 10)
    local code = p:stop()
    local out = p:out()
    assert.are.equal(0, code)
    local retry = out:find("[Consumer] no temperature channels found yet, retrying...", 1, true)
    local registered = out:find("[temp-svc] registered with discovery", 1, true)
    local connected = out:find("[Consumer] connected to 'Temperature Feed' (temperature-feed)", 1, true)
    local reading = out:find("[Consumer] temp=22.4°C", 1, true)
    assert.truthy(retry and registered and connected and reading, out)
    assert.is_true(retry < registered and registered < connected and connected < reading)
  end)

  it("runs the capability example: finds systems by exact service name", function()
    local p = start { "examples/capabilities/finder.lua", "examples/capabilities/image_workers.lua",
      "examples/capabilities/ocr_worker.lua" }
    p:wait_output('capability "translate": 0 system(s)', 10) -- the finder's last line
    local code = p:stop()
    local out = p:out()
    assert.are.equal(0, code)
    assert.matches('capability "process_image": 2 system%(s%)', out)
    assert.matches("Found: Image Resizer %(resizer%-1%)", out)
    assert.matches("Found: OCR Worker %(ocr_worker%)", out)
    assert.matches('capability "translate": 0 system%(s%)', out)
  end)

  it("runs the TTL example: the heartbeat keeps one service while the other expires", function()
    local p = start { "examples/ttl/flaky.lua", "examples/ttl/services.lua", "examples/ttl/watcher.lua",
      "--maintenance", "1" }
    -- flaky's 3 s TTL lapses while steady refreshes its own every 2 s; the watcher's step that
    -- reports the expiry has just listed who is live
    p:wait_output("event: expired flaky", 10)
    local code = p:stop()
    local out = p:out()
    assert.are.equal(0, code)
    assert.matches("event: expired flaky", out)
    assert.matches("event: refreshed steady", out)
    assert.is_nil(out:find("expired steady", 1, true))
    local last = out:match(".*%[watcher%] live: ([^\n]*)")
    assert.are.equal("steady", last:match("^(%S+)"))
  end)

  it("runs the point lookup example", function()
    local p = start { "examples/lookups/point_lookups.lua" }
    p:wait_output("Unknown channel:", 5) -- the last line its setup prints
    local code = p:stop()
    local out = p:out()
    assert.are.equal(0, code)
    assert.matches("Channel: Pulse, period=0.5s, visibility=private", out)
    assert.matches("System: Lookup Demo", out)
    assert.matches("Unknown channel: nil", out)
  end)
end)

describe("make install", function()
  it("installs a binary that finds its Lua files without environment variables", function()
    local dir = scratch()
    local _, err, code = testing.run({ "make", "-s", "install", "PREFIX=/opt/sssn", "DESTDIR=" .. dir }, { limit = 120 })
    assert.are.equal(0, code, err)
    local out
    out, err, code = testing.run { "env", "-C", "/", "-u", "LUA_PATH", "-u", "LUA_INIT", dir .. "/opt/sssn/bin/sssn-host",
      "--duration", "0.3", os.getenv("PWD") .. "/examples/lookups/point_lookups.lua" }
    assert.are.equal(0, code, err)
    assert.matches("System: Lookup Demo", out)
  end)
end)
