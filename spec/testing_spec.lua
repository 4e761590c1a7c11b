-- sssn.testing's helpers for end-to-end specs: the in-process HTTP client, child processes,
-- raw TCP and waits. The other end-to-end specs trust these, so they are checked here
-- against one real host.
local testing = require "sssn.testing"

describe("sssn.testing for end-to-end specs", function()
  local host, dir
  lazy_setup(function()
    dir = testing.tmpdir()
    testing.write_file(dir .. "/idle.lua", "function step(self) end\n")
    host = testing.start_host({ "--listen", "127.0.0.1:0", dir .. "/idle.lua" }, { dir = dir })
    host:ready()
  end)
  lazy_teardown(function()
    if host then host:stop() end
    testing.rmtree(dir)
  end)

  it("reads back the port a host started with --listen 127.0.0.1:0 reports", function()
    assert.is_true(host.port > 0)
    assert.are.equal(("http://127.0.0.1:%d"):format(host.port), host.base)
    assert.truthy(host:err():find("HTTP API on " .. host.base, 1, true), host:err())
  end)

  it("answers an HTTP request with status, body, time, content type and connections made", function()
    local status, body, secs, ctype, connects = testing.http("GET", host.base .. "/health", { fresh = true })
    assert.are.equal(200, status)
    assert.matches('"status":"ok"', body)
    assert.is_true(secs >= 0 and secs < 1, tostring(secs))
    assert.matches("^application/json", ctype)
    assert.are.equal(1, connects)
    status, body = testing.http("PUT", host.base .. "/channels/nope", { body = "{}", token = "t" })
    assert.are.equal(404, status)
    assert.matches("nope", body)
    -- nobody listening: nil and curl's reason
    local s, err = testing.http("GET", "http://127.0.0.1:" .. testing.free_port() .. "/", { timeout = 2 })
    assert.is_nil(s)
    assert.is_string(err)
  end)

  it("keeps two requests in flight: a long-poll is answered after a request started later", function()
    local poll = testing.http_start("GET", host.base .. "/channels/registry?wait=0.5") -- nothing registered
    local quick = testing.http_start("GET", host.base .. "/health")
    assert.is_false(poll:done())
    assert.are.equal(200, (quick:wait()))
    assert.is_false(poll:done())
    local status, _, secs = poll:wait()
    assert.are.equal(200, status)
    assert.is_true(secs >= 0.4, tostring(secs))
    local gone = testing.http_start("GET", host.base .. "/channels/registry?wait=5")
    gone:cancel()
    local s, err = gone:wait()
    assert.is_nil(s)
    assert.are.equal("cancelled", err)
  end)

  it("speaks raw TCP: sends bytes, receives until a text or until the host closes", function()
    local c = assert(testing.tcp(host.port))
    finally(function() c:close() end)
    assert(c:send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"))
    local head, why = c:receive(5, "\r\n\r\n")
    assert.are.equal("matched", why)
    assert.matches("^HTTP/1.1 200", head)
    assert(c:send("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    local rest, why2 = c:receive(5)
    assert.are.equal("closed", why2)
    assert.matches("HTTP/1.1 200", rest)
    local idle = assert(testing.tcp(host.port))
    local nothing, why3 = idle:receive(0.05)
    idle:close()
    assert.are.same({ "", "timeout" }, { nothing, why3 })
  end)

  it("runs a program to its end with its output and exit code, without a shell", function()
    local out, err, code = testing.run({ "sh", "-c", "read x; echo \"got $x\"; echo oops >&2; exit 3" },
      { input = "it\n" })
    assert.are.same({ "got it\n", "oops\n", 3 }, { out, err, code })
    local _, err2, code2 = testing.run { "/no/such/program" }
    assert.are.equal(127, code2)
    assert.matches("cannot execute", err2)
  end)

  it("stops a child with SIGTERM, then SIGKILL when it ignores that; ends it at its limit", function()
    local p = testing.start({ "sh", "-c", "trap '' TERM; echo up; while :; do :; done" }, { stdout = dir .. "/loop.out" })
    finally(function() p:stop(0) end)
    p:wait_output("up", 5)
    assert.is_true(p:alive())
    assert.are.same({ 137, 9 }, { p:stop(0.2) })
    assert.is_false(p:alive())
    assert.is_false(p:signal("TERM")) -- an ended child is never signalled again
    local t0 = testing.walltime()
    local limited = testing.start({ "sleep", "5" }, { limit = 1 })
    finally(function() limited:stop() end)
    local code, sig = limited:wait_exit(4)
    assert.are.same({ 142, 14 }, { code, sig }) -- SIGALRM, like `timeout`
    assert.is_true(testing.walltime() - t0 < 2)
  end)

  it("waits with eventually until fn holds, or gives its last value at the deadline", function()
    local t0, n = testing.walltime(), 0
    assert.are.equal("yes", testing.eventually(2, function()
      n = n + 1
      return testing.walltime() - t0 > 0.05 and "yes"
    end))
    assert.is_true(n >= 2)
    t0 = testing.walltime()
    assert.is_false(testing.eventually(0.1, function() return false end))
    local took = testing.walltime() - t0
    assert.is_true(took >= 0.1 and took < 0.5, tostring(took))
  end)
end)

describe("sssn.testing.start_host without a directory", function()
  it("removes the files it made when the host stops, keeping the output", function()
    local p = testing.start_host("--listen 127.0.0.1:0")
    finally(function() p:stop() end)
    p:ready()
    local dir = p.dir
    assert.are.equal(0, (p:stop()))
    assert.is_nil(io.open(dir .. "/host.err"))
    assert.truthy(p:err():find("HTTP API on " .. p.base, 1, true), p:err())
  end)
end)
