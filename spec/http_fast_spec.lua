-- End to end: the HTTP API's C fast path (svc/api.c) answers a channel's plain read
-- (?limit=&after=) and PUT of the data itself exactly as the Lua router does. A path with a
-- trailing slash (/channels/feed/) is the same route to the router but never taken by the fast
-- path, so each case asks both ways and compares the decoded answers, the errors, the
-- authorisation refusals and the counters in /metrics.
local sssn = require "sssn"
local testing = require "sssn.testing"

local decode = sssn.json.decode

local FIXTURE = [[
local sssn = require "sssn"
local s = sssn.system { id = "fixture", name = "Fixture" }
function s:setup()
  self:add_channel(sssn.broadcast { id = "feed", visibility = "public" })
  self:add_channel(sssn.broadcast { id = "other", visibility = "public" })
  self:add_channel(sssn.broadcast { id = "secret", visibility = "private" })
  self:add_channel(sssn.work_queue { id = "jobs", visibility = "public", capacity = 2 })
  for i = 1, 6 do self:write_channel("feed", { n = i }) end
  print("fixture ready")
end
function s:step() end
return s
]]

local function sha256(s)
  local out = testing.run({ "sh", "-c", "printf %s \"$1\" | sha256sum | cut -d' ' -f1", "sh", s })
  return (out:gsub("%s+$", ""))
end

local TOKENS = { reader = "tok-reader", writer = "tok-writer", scoped = "tok-scoped", admin = "tok-admin",
  admin_scoped = "tok-admin-scoped" }

local function start(auth)
  local dir = testing.tmpdir()
  testing.write_file(dir .. "/fixture.lua", FIXTURE)
  local argv = { "--listen", "127.0.0.1:0", "--max-message-size", "100" }
  if auth then
    testing.write_file(dir .. "/auth.txt", table.concat({
      "sha256:" .. sha256(TOKENS.reader) .. " rita read",
      "sha256:" .. sha256(TOKENS.writer) .. " walt write",
      "sha256:" .. sha256(TOKENS.scoped) .. " sam write other",
      "sha256:" .. sha256(TOKENS.admin) .. " ada admin",
      "sha256:" .. sha256(TOKENS.admin_scoped) .. " abe admin other",
    }, "\n") .. "\n")
    argv[#argv + 1] = "--auth-file"
    argv[#argv + 1] = dir .. "/auth.txt"
  end
  argv[#argv + 1] = dir .. "/fixture.lua"
  local p = testing.start_host(argv, { dir = dir })
  local ok, err = pcall(p.ready, p, "/health", 5)
  if not ok then p:stop(); error(err, 0) end
  return { proc = p, dir = dir }
end

local function stop(s) s.proc:stop(); testing.rmtree(s.dir) end

local function request(s, method, path, body, token)
  local status, raw = testing.http(method, s.proc.base .. path, { body = body, token = token, timeout = 10 })
  local ok, v = pcall(decode, raw)
  return status, ok and v or raw, raw
end

-- The route asked through the fast path and through the router: the same status and answer.
local function both(s, method, path, query, body, token)
  local q = query and ("?" .. query) or ""
  local s1, v1, raw1 = request(s, method, path .. q, body, token)
  local s2, v2, raw2 = request(s, method, path .. "/" .. q, body, token)
  assert.are.equal(s2, s1, raw1 .. " | " .. raw2)
  return s1, v1, v2, raw1
end

local function metric(s, name)
  local _, _, raw = request(s, "GET", "/metrics", nil, TOKENS.admin)
  local v = raw:match("\n" .. name:gsub("[%[%]%(%)%.%-%+%*%?%^%$%%]", "%%%0") .. " (%d+)")
  return tonumber(v)
end

describe("HTTP fast path on an open host", function()
  local s
  lazy_setup(function() s = start(false) end)
  lazy_teardown(function() if s then stop(s) end end)

  it("reads ?limit=&after= exactly as the router does", function()
    for _, q in ipairs { "limit=1&after=2", "limit=3&after=0", "after=4", "limit=&after=3",
                         "limit=10000&after=9223372036854775807", "after=0003&limit=0002" } do
      local status, fast, routed = both(s, "GET", "/channels/feed", q, nil, "fixed-" .. q)
      assert.are.equal(200, status)
      assert.are.same(routed, fast, q)
    end
  end)

  it("moves a reader's cursor as the router does (each path its own reader)", function()
    local _, a1 = request(s, "GET", "/channels/feed?limit=4", nil, "cursor-fast")
    local _, b1 = request(s, "GET", "/channels/feed/?limit=4", nil, "cursor-routed")
    local _, a2 = request(s, "GET", "/channels/feed?limit=4", nil, "cursor-fast")
    local _, b2 = request(s, "GET", "/channels/feed/?limit=4", nil, "cursor-routed")
    assert.are.same(b1, a1)
    assert.are.same(b2, a2)
    assert.are.equal(2, #a2.messages)
  end)

  it("gives the router's errors for bad limits, unknown channels and a work queue read shared", function()
    for _, case in ipairs { { "/channels/feed", "limit=0" }, { "/channels/feed", "limit=10001" },
                            { "/channels/feed", "limit=1.5" }, { "/channels/nope", "limit=1" },
                            { "/channels/jobs", "limit=1" }, { "/channels/feed", "after=no-such-id" } } do
      local status, fast, routed = both(s, "GET", case[1], case[2])
      assert.is_true(status >= 400, case[1] .. "?" .. case[2])
      assert.are.same(routed, fast)
    end
  end)

  it("writes the data itself and answers {status, item_id} as the router does", function()
    local s1, v1 = request(s, "PUT", "/channels/other", '{"celsius": 22.4}')
    local s2, v2 = request(s, "PUT", "/channels/other/", '{"celsius": 22.4}')
    local s3, v3 = request(s, "POST", "/channels/other", '[1, 2]')
    assert.are.same({ 200, 200, 200 }, { s1, s2, s3 })
    for _, v in ipairs { v1, v2, v3 } do
      assert.are.equal("accepted", v.status)
      assert.is_string(v.item_id)
    end
    local _, read = request(s, "GET", "/channels/other?limit=3&after=0")
    assert.are.same({ { celsius = 22.4 }, { celsius = 22.4 }, { 1, 2 } },
      { read.messages[1].content.data, read.messages[2].content.data, read.messages[3].content.data })
    assert.are.equal(v1.item_id, read.messages[1].id)
    assert.are.equal("anonymous", read.messages[1].sender_id)
  end)

  it("refuses malformed bodies, read-only channels, 413 and 429 with the router's words", function()
    for _, case in ipairs { { "/channels/feed", '{"a": 1' }, { "/channels/feed", "" },
                            { "/channels/registry", "{}" }, { "/channels/nope", "{}" },
                            { "/channels/feed", '"' .. ("x"):rep(200) .. '"' } } do
      local status, fast, routed = both(s, "PUT", case[1], nil, case[2])
      assert.is_true(status >= 400, case[1])
      assert.are.same(routed, fast)
    end
    local large = metric(s, 'sssn_messages_refused_total{reason="too_large"}')
    local status, fast = request(s, "PUT", "/channels/feed", '"' .. ("y"):rep(200) .. '"')
    assert.are.equal(413, status)
    assert.are.equal("payload_too_large", fast.error.type)
    assert.are.equal(large + 1, metric(s, 'sssn_messages_refused_total{reason="too_large"}'))
    assert.are.equal(200, (request(s, "PUT", "/channels/jobs", "1")))
    assert.are.equal(200, (request(s, "PUT", "/channels/jobs", "2")))
    local busy = metric(s, 'sssn_messages_refused_total{reason="busy"}')
    local s429, full, routed = both(s, "PUT", "/channels/jobs", nil, "3")
    assert.are.equal(429, s429)
    assert.are.same(routed, full)
    assert.are.equal(busy + 2, metric(s, 'sssn_messages_refused_total{reason="busy"}'))
  end)
end)

describe("HTTP fast path with authentication", function()
  local s
  lazy_setup(function() s = start(true) end)
  lazy_teardown(function() if s then stop(s) end end)

  it("refuses, hides and lets through exactly as the router does", function()
    local cases = {
      { "PUT", "/channels/feed", "reader", 403 }, { "PUT", "/channels/feed", "writer", 200 },
      { "PUT", "/channels/feed", "scoped", 403 }, { "PUT", "/channels/other", "scoped", 200 },
      { "PUT", "/channels/secret", "writer", 404 }, { "PUT", "/channels/secret", "admin", 200 },
      { "PUT", "/channels/feed", "admin_scoped", 403 }, { "PUT", "/channels/registry", "writer", 403 },
      { "GET", "/channels/feed", "reader", 200 }, { "GET", "/channels/secret", "reader", 404 },
      { "GET", "/channels/feed", "scoped", 403 }, { "GET", "/channels/feed", "admin_scoped", 403 },
      { "GET", "/channels/secret", "admin", 200 }, { "GET", "/channels/registry", "writer", 403 },
      { "GET", "/channels/feed/info", "admin_scoped", 403 },
    }
    for _, c in ipairs(cases) do
      local method, path, who, want = c[1], c[2], c[3], c[4]
      local q = method == "GET" and "limit=1&after=1" or nil
      local body = method == "PUT" and '{"v": 1}' or nil
      local status, fast, routed
      if path:find("/info$") then
        status, fast = request(s, method, path, nil, TOKENS[who])
        local s2; s2, routed = request(s, method, "/channels//feed/info", nil, TOKENS[who])
        assert.are.equal(s2, status)
      else
        status, fast, routed = both(s, method, path, q, body, TOKENS[who])
      end
      assert.are.equal(want, status, method .. " " .. path .. " as " .. who)
      if want ~= 200 then assert.are.same(routed, fast) end
    end
    assert.are.equal(401, (both(s, "PUT", "/channels/feed", nil, "{}")))
  end)
end)
