-- End to end: how `sssn-host` stops on a signal. The first SIGTERM (or SIGINT without a
-- prompt) drains: writes are refused with 503 shutting_down, reads are answered, a waiting
-- long-poll is answered at once, the step in progress ends, then the systems stop and
-- deregister, and the host exits 0, within a bound; a second signal ends it at once. Each
-- spec starts real hosts (testing.start_host, bounded by a limit, stopped after the spec)
-- and talks HTTP to them; every wait runs the loop with a deadline.
local sssn = require "sssn"
local testing = require "sssn.testing"

local decode = sssn.json.decode
local now = testing.walltime

local live, dirs = {}, {}
after_each(function()
  for i = #live, 1, -1 do live[i]:stop() end
  for _, d in ipairs(dirs) do testing.rmtree(d) end
  live, dirs = {}, {}
end)

-- Writes the script into a fresh directory and starts `sssn-host ARGS... SCRIPT` there.
local function start(script, args, name)
  local dir = testing.tmpdir()
  dirs[#dirs + 1] = dir
  local path = dir .. "/" .. (name or "svc") .. ".lua"
  testing.write_file(path, script)
  local argv = {}
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  argv[#argv + 1] = path
  local p = testing.start_host(argv, { limit = 30, name = name })
  live[#live + 1] = p
  return p
end

local function http(method, url, opts)
  local status, body, seconds = testing.http(method, url, opts)
  local ok, value = pcall(decode, body or "")
  return status, ok and value or body, seconds
end

-- A system owning channel "feed" (and work queue "jobs") whose step, at 10 ticks a second,
-- says it began, waits STEP_SECONDS, writes into "feed" and says it ended.
local STEPPING = [[
local sssn = require "sssn"
local s = sssn.system { id = "svc", tick_rate = 10 }
function s:setup()
  local feed = self:add_channel(sssn.broadcast { id = "feed" })
  self:add_channel(sssn.work_queue { id = "jobs" })
  sssn.registry:register_channel(feed.info)
  sssn.registry:register_system(self:descriptor())
end
local n = 0
function s:step()
  n = n + 1
  print("step " .. n .. " began"); io.stdout:flush()
  sssn.sleep(STEP_SECONDS)
  local _, seq = self:write_channel("feed", { step = n })
  print("step " .. n .. " ended, wrote seq " .. seq); io.stdout:flush()
end
return s
]]

local function stepping(seconds) return (STEPPING:gsub("STEP_SECONDS", tostring(seconds))) end

-- A system owning channel "feed" with no step: it stops at once when the host drains.
local IDLE = [[
local sssn = require "sssn"
local s = sssn.system { id = "idle" }
function s:setup() self:add_channel(sssn.broadcast { id = "feed" }) end
return s
]]

describe("sssn-host stopping on a signal", function()
  it("answers a waiting long-poll at once with what there is, on SIGTERM and on SIGINT", function()
    for _, sig in ipairs { "TERM", "INT" } do
      local p = start(IDLE, { "--listen", "127.0.0.1:0" })
      p:ready()
      local _, held = http("GET", p.base .. "/registry/events?index=0")
      local read = testing.http_start("GET", p.base .. "/channels/feed?wait=20", { timeout = 30 })
      local events = testing.http_start("GET", p.base .. "/registry/events?index=" .. held.index .. "&wait=20",
        { timeout = 30 })
      testing.run_for(0.3)
      assert.is_false(read:done(), "the read did not wait")
      assert.is_false(events:done(), "the events long-poll did not wait")
      local t0 = now()
      assert.is_true(p:signal(sig))
      local status, body, seconds = read:wait()
      assert.are.equal(200, status, body)
      assert.are.same({}, decode(body).messages)
      assert.is_true(seconds < 2, ("the read long-poll took %.1f s"):format(seconds))
      status, body = events:wait()
      assert.are.equal(200, status, body)
      assert.are.same({}, decode(body).events)
      assert.are.equal(0, p:wait_exit(5), p:err())
      assert.is_true(now() - t0 < 2, ("%s: exiting took %.1f s: %s"):format(sig, now() - t0, p:err()))
    end
  end)

  it("refuses writes with 503 shutting_down and Retry-After while it drains, and answers reads", function()
    local p = start(stepping(2), { "--listen", "127.0.0.1:0" })
    p:ready()
    p:wait_output("step 1 began", 5)
    assert.is_true(p:signal("TERM"))
    p:wait_err("draining", 2)
    local base = p.base
    for _, w in ipairs {
      { "PUT", "/channels/feed", '{"x": 1}' },
      { "POST", "/channels/feed", '{"x": 1}' },
      { "PUT", "/channels/feed?direct=true", '{"content": {"data": 1}}' },
      { "POST", "/channels/jobs/acknowledge", '{"message_ids": ["m1"]}' },
      { "POST", "/channels/jobs/nack", '{"message_ids": ["m1"]}' },
      { "PUT", "/registry/channels/other?ttl=60", '{"id": "other", "name": "Other"}' },
      { "DELETE", "/registry/systems/svc" },
    } do
      local status, body = http(w[1], base .. w[2], { body = w[3] })
      assert.are.equal(503, status, w[1] .. " " .. w[2])
      assert.are.equal("shutting_down", body.error.type, w[1] .. " " .. w[2])
      assert.matches("shutting down", body.detail)
    end
    -- the raw answer: Retry-After, and the connection closes after it
    local c = assert(testing.tcp(p.port))
    finally(function() c:close() end)
    assert(c:send("PUT /channels/feed HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"))
    local raw, why = c:receive(5)
    assert.are.equal("closed", why, raw)
    assert.matches("^HTTP/1.1 503 Service Unavailable\r\n", raw)
    assert.matches("\r\nRetry%-After: 5\r\n", raw)
    assert.matches("\r\nConnection: close\r\n", raw)
    -- reads go on, and a new long-poll is answered at once
    assert.are.equal(200, (http("GET", base .. "/channels/feed/info")))
    assert.are.equal(200, (http("GET", base .. "/registry/systems/svc")))
    local status, body, seconds = http("GET", base .. "/channels/feed?wait=20", { timeout = 30 })
    assert.are.equal(200, status)
    assert.is_table(body.messages)
    assert.is_true(seconds < 1, ("a long-poll during the drain took %.1f s"):format(seconds))
    assert.are.equal(0, p:wait_exit(5), p:err())
  end)

  it("lets the step in progress finish, then stops and deregisters, and exits 0", function()
    -- host A serves the registry; B's system registers there and is mid-step at SIGTERM
    local a = start("function step() end", { "--listen", "127.0.0.1:0" }, "registry")
    a:ready()
    local b = start(stepping(1), { "--registry", a.base, "--log-level", "debug" }, "b")
    b:wait_output("step 1 began", 5)
    assert.are.equal(200, (http("GET", a.base .. "/registry/channels/feed")))
    local t0 = now()
    assert.is_true(b:signal("TERM"))
    b:wait_err("draining", 2)
    -- while the step runs, B's registrations stay
    assert.are.equal(200, (http("GET", a.base .. "/registry/systems/svc")), b:err())
    assert.are.equal(0, b:wait_exit(5), b:err())
    local out, err = b:out(), b:err()
    assert.matches("step 1 ended, wrote seq 1", out, nil, true)
    assert.is_nil(out:find("step 2 began", 1, true), "a step began after the signal: " .. out)
    assert.matches("deregistered channel 'feed'", err)
    assert.matches("deregistered system 'svc'", err)
    assert.matches("%[svc%] stopped %(1 step, 0 errors", err)
    assert.is_true(now() - t0 < 3, ("stopping took %.1f s: %s"):format(now() - t0, err))
    assert.are.equal(404, (http("GET", a.base .. "/registry/systems/svc")))
    assert.are.equal(404, (http("GET", a.base .. "/registry/channels/feed")))
  end)

  it("lets a step that computes when the signal comes finish (for up to 1 s)", function()
    local p = start([[
      function step()
        print("computing"); io.stdout:flush()
        local t = os.clock(); while os.clock() - t < 0.4 do end
        print("computed"); io.stdout:flush()
      end]], { "--step-timeout", "0" })
    p:wait_output("computing", 5)
    assert.is_true(p:signal("TERM"))
    assert.are.equal(0, p:wait_exit(5), p:err())
    assert.matches("computed", p:out())
    assert.is_nil(p:err():find("interrupted", 1, true), p:err())
  end)

  it("ends at once on a second SIGTERM more than 0.25 s after the first: killed by it (143)", function()
    local p = start(stepping(20), { "--listen", "127.0.0.1:0" })
    p:ready()
    p:wait_output("step 1 began", 5)
    assert.is_true(p:signal("TERM"))
    p:wait_err("draining", 2)
    testing.run_for(0.4)
    assert.is_true(p:alive(), "exited on the first signal: " .. p:err())
    local t0 = now()
    assert.is_true(p:signal("TERM"))
    local code, sig = p:wait_exit(2)
    assert.are.equal(143, code, p:err())
    assert.are.equal(15, sig)
    assert.is_true(now() - t0 < 1, ("the second signal took %.1f s"):format(now() - t0))
    assert.matches("a second signal: exiting at once", p:err())
    assert.is_nil(p:out():find("ended", 1, true), "the step finished: " .. p:out())
  end)

  it("takes a repeat within 0.25 s (as `timeout` sends) as the same signal, and drains", function()
    local p = start(stepping(0.8), { "--listen", "127.0.0.1:0" })
    p:ready()
    p:wait_output("step 1 began", 5)
    assert.is_true(p:signal("TERM"))
    assert.is_true(p:signal("TERM"))
    assert.are.equal(0, p:wait_exit(5), p:err())
    assert.matches("step 1 ended", p:out())
  end)

  it("bounds the drain: a step still waiting after 5 s is cut short, and the host exits 0", function()
    local p = start(stepping(60), { "--listen", "127.0.0.1:0" })
    p:ready()
    p:wait_output("step 1 began", 5)
    local t0 = now()
    assert.is_true(p:signal("TERM"))
    local code = p:wait_exit(9)
    local took = now() - t0
    assert.are.equal(0, code, p:err())
    assert.is_true(took > 4.5 and took < 7, ("the drain took %.1f s"):format(took))
    assert.matches("5 s passed: cutting short 0 request%(s%) and 1 step%(s%)", p:err())
    assert.matches("%[svc%] stopped", p:err())
  end)
end)
