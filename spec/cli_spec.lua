-- End to end: the sssn-host command as a user runs it. Each spec starts a real process
-- (bounded by `timeout`) and checks its output and exit status.
local testing = require "sssn.testing"

local exe = testing.exe

local tmpdir = testing.tmpdir

local slurp = testing.read_file

local write = testing.write_file

-- Runs a shell command line; returns stdout, stderr, exit status.
local function sh(cmdline)
  local dir = tmpdir()
  local ok, _, code = os.execute(("( %s ) > %s/out 2> %s/err"):format(cmdline, dir, dir))
  local out, err = slurp(dir .. "/out"), slurp(dir .. "/err")
  os.execute("rm -rf " .. dir)
  return out, err, ok and 0 or code
end

local function host(args, seconds) return sh(("timeout -k 5 %d %s %s"):format(seconds or 20, exe, args)) end

describe("sssn-host", function()
  it("prints help that lists its options, and its version", function()
    local out, _, code = host("--help")
    assert.are.equal(0, code)
    for _, opt in ipairs { "--listen", "--advertise", "--registry", "-e CHUNK", "-i ", "--json", "--duration",
      "--ttl", "--maintenance", "--memory-limit", "--step-timeout", "--log-level", "--version", "--help",
      "repl [URL]", "test [busted", "run FILE [ARG...]", "(default 300)", "(default 30)", "(default 10, 0 = off)",
      "\n  3  " } do
      assert.truthy(out:find(opt, 1, true), opt)
    end
    out, _, code = host("--version")
    assert.are.equal(0, code)
    assert.matches("^sssn%-host %d+%.%d+%.%d+", out)
  end)

  it("rejects unknown options and bad values with status 2", function()
    local _, err, code = host("--bogus x.lua")
    assert.are.equal(2, code)
    assert.matches("unknown option '%-%-bogus'", err)
    _, err, code = host("--duration soon x.lua")
    assert.are.equal(2, code)
    assert.matches("%-%-duration wants a number of seconds between 0%.001 and 1e9 %(0%.001 <= S < 1e9%), not 'soon'", err)
    _, err, code = host("")
    assert.are.equal(2, code)
    assert.matches("no SCRIPT given", err)
  end)

  it("refuses every out-of-range option value at start-up with status 2, naming the option", function()
    local seconds = "wants a number of seconds between 0.001 and 1e9 (0.001 <= S < 1e9), not '%s'"
    local cases = {
      { "--ttl 1e9", "--ttl " .. seconds:format("1e9") },
      { "--ttl 0", "--ttl " .. seconds:format("0") },
      { "--ttl nan", "--ttl " .. seconds:format("nan") },
      { "--ttl=-5", "--ttl " .. seconds:format("-5") },
      { "--duration inf", "--duration " .. seconds:format("inf") },
      { "--maintenance 1e-300", "--maintenance " .. seconds:format("1e-300") },
      { "--step-timeout -1", "--step-timeout wants 0 (off) or a number of seconds between 0.001 and 1e9" },
      { "--memory-limit ' 8M'", "--memory-limit wants a byte count like 65536, 512K or 8M, not ' 8M'" },
      { "--memory-limit 8X", "--memory-limit wants a byte count like 65536, 512K or 8M, not '8X'" },
      { "--log-level loud", "--log-level wants error, warn, info or debug, not 'loud'" },
      { "--registry http://", "--registry wants an http:// URL like http://127.0.0.1:7400, not 'http://'" },
      { "--advertise 'http://a b'", "--advertise wants an http:// URL like http://myhost:7400, not 'http://a b'" },
      { "--listen 70000", "--listen wants [ADDR:]PORT" },
      { "--listen 127.0.0.1:", "--listen wants [ADDR:]PORT" },
      { "--json", "--json goes with -i or repl" },
      { "-i --json=yes", "option '--json' takes no value" },
      { "--ttl", "option '--ttl' needs a value" },
    }
    for _, c in ipairs(cases) do
      local out, err, code = host("x.lua " .. c[1], 5)
      assert.are.equal(2, code, c[1] .. ": " .. err)
      assert.truthy(err:find("sssn-host: " .. c[2], 1, true), c[1] .. ": " .. err)
      assert.are.equal("", out)
    end
  end)

  it("refuses a --memory-limit below what an idle system needs, saying what that is", function()
    local _, err, code = host("x.lua --memory-limit 16K", 5)
    assert.are.equal(2, code, err)
    local floor = tonumber(err:match("%-%-memory%-limit wants at least (%d+)K, what a system with nothing in it " ..
      "needs %(measured at start%-up%), not '16K'"))
    assert.truthy(floor, err)
    -- the number is the real floor: an idle system runs there, and a KiB less is refused
    local out
    out, err, code = host(("--memory-limit %dK --duration 0.3 -e 'function step() print(\"ok\") end'"):format(floor))
    assert.are.equal(0, code, err)
    assert.matches("^ok\n", out)
    _, err, code = host(("--memory-limit %dK -e 'function step() end'"):format(floor - 1))
    assert.are.equal(2, code, err)
  end)

  it("takes a --ttl just below the API's bound: registrations work", function()
    local out, err, code = host([[--ttl 999999999 --duration 0.2 -e '
      local sssn = require "sssn"
      function setup(self) print(sssn.registry:register_system(self:descriptor()) ~= nil) end']])
    assert.are.equal(0, code, err)
    assert.are.equal("true\n", out)
  end)

  it("warns once at start-up that --registry without --listen leaves channels unreachable", function()
    local idle = "-e 'function step() end' --duration 0.3 --registry http://127.0.0.1:9"
    local _, err, code = host(idle)
    assert.are.equal(0, code, err)
    local warning = "warn: --registry without --listen: other hosts will find the channels this host registers " ..
      "but cannot reach them (they have no endpoint); add --listen [ADDR:]PORT"
    local first = err:find(warning, 1, true)
    assert.truthy(first, err)
    assert.is_nil(err:find(warning, first + 1, true))
    _, err, code = host(idle .. " --listen 0")
    assert.are.equal(0, code, err)
    assert.is_nil(err:find("without --listen", 1, true))
  end)

  it("listens on IPv6 ([::1]:PORT), advertises it in brackets, and is reached across hosts", function()
    local dir = tmpdir()
    local out = sh(([[
      timeout -k 5 10 %s --listen '[::1]:0' examples/discovery/temperature_service.lua > %s/a.out 2> %s/a.err & pid=$!
      for i in $(seq 100); do grep -q 'HTTP API on' %s/a.err && break; sleep 0.05; done
      url=$(grep -o 'http://\[::1\]:[0-9]*' %s/a.err | head -1); echo "url=$url"
      timeout -k 5 10 %s --registry "$url" --listen 0 --duration 2.5 examples/discovery/data_consumer.lua 2>&1
      kill $pid; wait $pid; cat %s/a.err
    ]]):format(exe, dir, dir, dir, dir, exe, dir))
    assert.matches("url=http://%[::1%]:%d+\n", out)
    assert.matches("%[Consumer%] connected to 'Temperature Feed'", out)
    assert.matches("%[Consumer%] temp=22%.4°C", out)
    assert.is_nil(out:find("no authentication", 1, true)) -- ::1 and a bare port are loopback
    os.execute("rm -rf " .. dir)
  end)

  it("decides the no-authentication warning by the address bound, not by how it is spelt", function()
    local function warns(listen)
      local _, err, code = host(("--listen '%s' --duration 0.1"):format(listen), 5)
      assert.are.equal(0, code, listen .. ": " .. err)
      return err:find("has no authentication yet", 1, true) ~= nil
    end
    assert.is_false(warns("localhost:0"))
    assert.is_false(warns("127.0.0.2:0"))
    assert.is_false(warns("0x7f000001:0")) -- 127.0.0.1 spelt another way
    assert.is_false(warns("[::1]:0"))
    assert.is_true(warns("0.0.0.0:0"))
    assert.is_true(warns("[::]:0"))
    local _, err, code = host("--listen ::1:7400 x.lua", 5)
    assert.are.equal(2, code)
    assert.matches("IPv6 addresses go in brackets: %[::1%]:7400", err)
    _, err, code = host("--listen no-such-host.invalid:7400 x.lua", 5)
    assert.are.equal(2, code)
    assert.matches("%-%-listen cannot resolve 'no%-such%-host%.invalid'", err)
  end)

  it("runs -e chunks: plain code once, or an inline system", function()
    local out, _, code = host([[-e 'print("hello " .. require("sssn").version)']])
    assert.are.equal(0, code)
    assert.matches("^hello %d+%.%d+%.%d+\n$", out)
    out, _, code = host([[--duration 0.3 -e 'function step(self) print("tick " .. self.id) end']])
    assert.are.equal(0, code)
    assert.matches("tick e1", out)
    local err
    _, err, code = host([[-e 'error("nope")']])
    assert.are.equal(1, code)
    assert.matches("%(command line%):1: nope", err)
  end)

  it("gives -e chunks the module as the global sssn", function()
    local out, _, code = host([[-e 'print(sssn.version, type(sssn.registry))']])
    assert.are.equal(0, code)
    assert.matches("^%d+%.%d+%.%d+\ttable\n$", out)
  end)

  it("words errors plainly: no host or module frames, no doubled verbs, counts in the singular", function()
    local _, err = host([[-e 'return require("sssn").system { id = "bad", tick_rate = -1 }']])
    assert.matches("tick_rate of system 'bad' must be a positive number", err)
    assert.is_nil(err:find("stack traceback", 1, true), err)
    _, err = host("/nonexistent/missing.lua")
    assert.matches("cannot open /nonexistent/missing.lua", err)
    assert.is_nil(err:find("cannot load cannot", 1, true), err)
    assert.is_nil(err:find("=(command line)", 1, true), err)
    local out
    out, err = host([[--duration 0.5 -e 'local function f() error("deep") end
      function step(self) if self.n then return end self.n = 1 f() end']])
    assert.matches("%(command line%):1: deep\nstack traceback:\n\t%(command line%):1: in upvalue 'f'", err)
    assert.is_nil(err:find("\t?:", 1, true), err)     -- the module's own stripped frames
    assert.is_nil(err:find("[C]:", 1, true), err)
    assert.matches("stopped %(1 step, 1 error, 0 overruns%)", err)
    -- an error a remote registry already reported is counted, not logged again at each step
    out, err = host([[--duration 0.5 -e 'tick_rate = 20
      function step(self)
        error(setmetatable({ sssn_reported = true }, { __tostring = function() return "reported" end }))
      end']])
    assert.is_nil(err:find("reported", 1, true), err)
    assert.matches("stopped %(%d+ steps, %d+ errors", err)
    assert.are.equal("", out)
  end)

  it("reports a script that fails to load with file and line, and exits 1 when nothing starts", function()
    local dir = tmpdir()
    write(dir .. "/broken.lua", "local sssn = require 'sssn'\n\nlocal x = = 1\n")
    local _, err, code = host(dir .. "/broken.lua")
    assert.are.equal(1, code)
    assert.truthy(err:find(dir .. "/broken.lua:3:", 1, true))
    assert.matches("no system could start", err)
    _, err, code = host(dir .. "/missing.lua")
    assert.are.equal(1, code)
    assert.matches("cannot open", err)
    os.execute("rm -rf " .. dir)
  end)

  it("runs the systems that load when another fails, stops after --duration, and exits 1", function()
    local dir = tmpdir()
    write(dir .. "/broken.lua", "error('nope')\n")
    write(dir .. "/ok.lua", "function step(self) print('tick ' .. self.id) end\n")
    local out, err, code = host(("--duration 0.3 %s/broken.lua %s/ok.lua"):format(dir, dir))
    assert.are.equal(1, code)
    assert.matches("tick ok", out)
    assert.matches("broken.lua:1: nope", err)
    assert.matches("1 script failed to load: running the others; the exit status will be 1", err)
    os.execute("rm -rf " .. dir)
  end)

  it("takes options after the SCRIPTs, as --name=value too, and treats what follows -- as SCRIPTs", function()
    local dir = tmpdir()
    write(dir .. "/ok.lua", "function step(self) print('tick ' .. self.id) end\n")
    local out, err, code = host(("%s/ok.lua --duration 0.3 --log-level=warn"):format(dir), 5)
    assert.are.equal(0, code, err)
    assert.matches("tick ok", out)
    assert.are.equal("", err)
    out, err, code = host(("--duration 0.3 %s/ok.lua -- --log-level"):format(dir), 5)
    assert.are.equal(1, code)
    assert.matches("tick ok", out)
    assert.matches("cannot open %-%-log%-level", err)
    os.execute("rm -rf " .. dir)
  end)

  it("passes `run FILE ARG...` arguments to the script as ... and arg, as lua does", function()
    local dir = tmpdir()
    write(dir .. "/driver.lua", "print(select('#', ...), ...) print(arg[0]:match('driver%.lua$'), arg[1], arg[2], #arg)\n")
    local out, err, code = host(("run %s/driver.lua one --two"):format(dir))
    assert.are.equal(0, code, err)
    assert.are.equal("2\tone\t--two\ndriver.lua\tone\t--two\t2\n", out)
    os.execute("rm -rf " .. dir)
  end)

  it("stops cleanly on SIGTERM and SIGINT: deregisters what systems registered, exits 0", function()
    local dir = tmpdir()
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
      local out, err, code = sh(([[
        %s --log-level debug %s/svc.lua > %s/out.txt 2> %s/err.txt & pid=$!
        for i in $(seq 100); do grep -q ready %s/out.txt && break; sleep 0.05; done
        kill -%s $pid; wait $pid; echo "status=$?"; cat %s/err.txt
      ]]):format(exe, dir, dir, dir, dir, sig, dir))
      assert.are.equal(0, code)
      assert.matches("status=0", out, nil, sig)
      assert.matches("deregistered channel 'svc%-feed'", out)
      assert.matches("deregistered system 'svc'", out)
      assert.matches("%[svc%] stopped", out)
    end
    os.execute("rm -rf " .. dir)
  end)

  it("stops cleanly on a signal that arrives while the systems are still starting", function()
    local dir = tmpdir()
    -- setup says it is ready, then keeps the host in start-up for a while
    write(dir .. "/slow.lua", [[
      function setup() print("ready"); io.stdout:flush(); local t = os.clock(); while os.clock() - t < 0.5 do end end
      function step() end
    ]])
    for _, sig in ipairs { "TERM", "INT" } do
      local out = sh(([[
        timeout -k 5 10 %s --step-timeout 0 %s/slow.lua > %s/out.txt 2> %s/err.txt & pid=$!
        for i in $(seq 100); do grep -q ready %s/out.txt && break; sleep 0.01; done
        kill -%s $pid; wait $pid; echo "status=$?"; cat %s/err.txt
      ]]):format(exe, dir, dir, dir, dir, sig, dir))
      assert.matches("status=0", out, nil, sig)
      assert.matches("%[slow%] stopped", out, nil, sig)
    end
    os.execute("rm -rf " .. dir)
  end)

  it("stops cleanly when its standard output is closed (| head), exiting 3", function()
    local t0 = testing.walltime()
    local out, err = sh(([[
      ( timeout -k 5 10 %s --log-level debug --duration 30 -e '
          tick_rate = 20
          function setup(self) require("sssn").registry:register_system(self:descriptor()) end
          function step(self) print("line " .. self:stats().steps) end'
        echo "status=$?" >&2 ) | head -3
    ]]):format(exe))
    assert.is_true(testing.walltime() - t0 < 5, "took too long: " .. err)
    assert.are.equal("line 1\nline 2\nline 3\n", out)
    assert.matches("status=3", err)
    assert.matches("info: stopping: standard output was closed %(nobody reads it any more%)", err)
    assert.matches("deregistered system 'e1'", err)
    assert.matches("%[e1%] stopped", err)
  end)

  it("interrupts a step that never yields when SIGINT arrives, and exits 0", function()
    local dir = tmpdir()
    write(dir .. "/spin.lua", "function step() print('spinning'); io.stdout:flush(); while true do end end\n")
    local out = sh(([[
      %s --step-timeout 0 %s/spin.lua > %s/out.txt 2> %s/err.txt & pid=$!
      for i in $(seq 100); do grep -q spinning %s/out.txt && break; sleep 0.05; done
      kill -INT $pid; wait $pid; echo "status=$?"; cat %s/err.txt
    ]]):format(exe, dir, dir, dir, dir, dir))
    assert.matches("status=0", out)
    assert.matches("interrupted by a signal", out)
    assert.matches("%[spin%] stopped", out)
    os.execute("rm -rf " .. dir)
  end)

  it("runs the discovery example: the consumer retries, then connects and prints readings", function()
    local out, _, code = host("--duration 3 examples/discovery/temperature_service.lua examples/discovery/data_consumer.lua")
    assert.are.equal(0, code)
    local retry = out:find("[Consumer] no temperature channels found yet, retrying...", 1, true)
    local registered = out:find("[temp-svc] registered with discovery", 1, true)
    local connected = out:find("[Consumer] connected to 'Temperature Feed' (temperature-feed)", 1, true)
    local reading = out:find("[Consumer] temp=22.4°C", 1, true)
    assert.truthy(retry and registered and connected and reading, out)
    assert.is_true(retry < registered and registered < connected and connected < reading)
  end)

  it("runs the capability example: finds systems by exact service name", function()
    local out, _, code = host("--duration 1.5 examples/capabilities/*.lua")
    assert.are.equal(0, code)
    assert.matches('capability "process_image": 2 system%(s%)', out)
    assert.matches("Found: Image Resizer %(resizer%-1%)", out)
    assert.matches("Found: OCR Worker %(ocr_worker%)", out)
    assert.matches('capability "translate": 0 system%(s%)', out)
  end)

  it("runs the TTL example: the heartbeat keeps one service while the other expires", function()
    local out, _, code = host("--duration 5.5 examples/ttl/*.lua --maintenance 1")
    assert.are.equal(0, code)
    assert.matches("event: expired flaky", out)
    assert.matches("event: refreshed steady", out)
    assert.is_nil(out:find("expired steady", 1, true))
    local last = out:match(".*%[watcher%] live: ([^\n]*)")
    assert.are.equal("steady", last:match("^(%S+)"))
  end)

  it("runs the point lookup example", function()
    local out, _, code = host("--duration 0.5 examples/lookups/point_lookups.lua")
    assert.are.equal(0, code)
    assert.matches("Channel: Pulse, period=0.5s, visibility=private", out)
    assert.matches("System: Lookup Demo", out)
    assert.matches("Unknown channel: nil", out)
  end)
end)

describe("make install", function()
  it("installs a binary that finds its Lua files without environment variables", function()
    local dir = tmpdir()
    local _, err, code = sh(("make -s install PREFIX=/opt/sssn DESTDIR=%s"):format(dir))
    assert.are.equal(0, code, err)
    local out
    out, err, code = sh(("cd / && env -u LUA_PATH -u LUA_INIT %s/opt/sssn/bin/sssn-host --duration 0.3 %s/examples/lookups/point_lookups.lua")
      :format(dir, os.getenv("PWD")))
    assert.are.equal(0, code, err)
    assert.matches("System: Lookup Demo", out)
    os.execute("rm -rf " .. dir)
  end)
end)
