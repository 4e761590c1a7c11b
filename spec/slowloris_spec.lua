-- End to end: slow clients against the request deadline (--request-timeout). Hundreds of
-- connections each send a request a byte every 0.2 s, never idle long enough for the idle
-- timeout; after the deadline each gets 408 and is closed, while GET /health is answered
-- throughout. The host listens on a port it picks and is stopped in teardown.
local testing = require "sssn.testing"

local CLIENTS = 300

describe("slow clients", function()
  local host, conns = nil, {}
  after_each(function()
    for _, c in ipairs(conns) do pcall(c.close, c) end
    conns = {}
    if host then host:stop() end
    host = nil
  end)

  it("are all answered 408 and closed after the request deadline while /health keeps answering", function()
    host = testing.start_host { "--listen", "127.0.0.1:0", "--request-timeout", "1",
      "--max-connections-per-address", tostring(CLIENTS + 50) }
    host:ready()
    for i = 1, CLIENTS do
      conns[i] = assert(testing.tcp(host.port))
    end
    local request = "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " .. ("a"):rep(40) .. "\r\n\r\n"
    local closed, health = {}, 0
    -- 2.4 s of trickling: a byte every 0.2 s on each connection, a /health check each round
    for round = 1, 12 do
      for i, c in ipairs(conns) do
        if not closed[i] and not c:send(request:sub(round, round), 1) then closed[i] = true end
      end
      local status = testing.http("GET", host.base .. "/health", { timeout = 5, fresh = true })
      assert.are.equal(200, status)
      health = health + 1
      testing.run_for(0.2)
    end
    assert.are.equal(12, health)
    for i, c in ipairs(conns) do
      local got, why = c:receive(5)
      assert.truthy(got:find("^HTTP/1.1 408 Request Timeout\r\n"), ("client %d got %q"):format(i, got))
      assert.truthy(got:find('"type":"request_timeout"', 1, true), got)
      assert.are.equal("closed", why)
    end
    local _, metrics = testing.http("GET", host.base .. "/metrics", { timeout = 5 })
    local timeouts = tonumber(metrics:match("\nsssn_http_request_timeouts_total (%d+)\n"))
    assert.truthy(timeouts and timeouts >= CLIENTS, metrics)
    assert.are.equal(200, (testing.http("GET", host.base .. "/health", { timeout = 5 })))
  end)

  it("over the per-address limit are closed at once, and counted", function()
    host = testing.start_host { "--listen", "127.0.0.1:0", "--max-connections-per-address", "5" }
    host:ready()
    for i = 1, 5 do conns[i] = assert(testing.tcp(host.port)) end
    for i = 1, 5 do assert.truthy(conns[i]:send("G")) end
    testing.run_for(0.2)
    local over = assert(testing.tcp(host.port))
    conns[#conns + 1] = over
    over:send("GET /health HTTP/1.1\r\n\r\n")
    local got, why = over:receive(5)
    assert.are.equal("", got) -- no answer: closed at once (a reset, as its request was unread)
    assert.truthy(why == "closed" or why:find("reset", 1, true), why)
    for i = 1, 5 do conns[i]:close() end
    local rejected = testing.eventually(5, function()
      local _, m = testing.http("GET", host.base .. "/metrics", { timeout = 5, fresh = true })
      local n = tonumber((m or ""):match('sssn_http_connections_rejected_total{limit="per_address"} (%d+)'))
      return n and n >= 1 and n
    end)
    assert.truthy(rejected and rejected >= 1)
  end)
end)
