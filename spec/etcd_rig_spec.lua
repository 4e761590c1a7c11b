-- The etcd test rig itself (lua/sssn/testing_etcd.lua): real etcd members on loopback, started,
-- killed, restarted and compacted through its v3 JSON gateway. The fleet specs
-- (etcd_fleet_spec.lua) trust it, so what they rely on is checked here against etcd itself:
-- the endpoints it reports answer, a put is read back from every member, a killed leader is
-- replaced, a compacted revision is gone, and stop leaves no process and no directory.
local sssn = require "sssn"
local testing = require "sssn.testing"
local etcd = require "sssn.testing_etcd"

-- every cluster a test started is stopped, even when the test fails
after_each(etcd.stop_all)

local function dir_exists(dir) return os.rename(dir, dir) ~= nil end

-- The gateway's own answer for a key, asked without the rig (so the rig's base64 and JSON are
-- checked against etcd, not against themselves).
local function raw_range(endpoint, key_b64)
  local status, body = testing.http("POST", "http://" .. endpoint .. "/v3/kv/range",
    { body = ('{"key":"%s"}'):format(key_b64), timeout = 5 })
  assert.are.equal(200, status, body)
  return sssn.json.decode(body)
end

describe("sssn.testing_etcd", function()
  it("encodes base64 as the gateway does", function()
    for s, b in pairs { [""] = "", f = "Zg==", fo = "Zm8=", foo = "Zm9v", foob = "Zm9vYg==",
      ["/sssn/channels/x"] = "L3Nzc24vY2hhbm5lbHMveA==", ["\0\255\128"] = "AP+A" } do
      assert.are.equal(b, etcd.b64encode(s))
      assert.are.equal(s, etcd.b64decode(b))
    end
  end)

  it("starts one member on loopback that answers, with a leader, and reads back what it is given", function()
    local c = etcd.start { members = 1 }
    assert.matches("^127%.0%.0%.1:%d+$", c.endpoints)
    assert.are.equal("etcd://" .. c.endpoints, c.url)
    assert.are.equal(1, c:leader())
    assert.are.equal(1, #c:pids())
    assert.is_true(etcd.pid_exists(c:pids()[1]))

    local value = '{"id":"x","name":"caf\u{e9}","bytes":"\0\1\255"}'
    local rev = c:put("/sssn/channels/x", value)
    assert.is_true(math.type(rev) == "integer" and rev > 1, tostring(rev))
    local got, kv = c:get("/sssn/channels/x")
    assert.are.equal(value, got)
    assert.are.equal(rev, kv.mod_revision)
    assert.are.equal(1, kv.version)
    assert.is_nil((c:get("/sssn/channels/absent")))
    -- what etcd itself holds, asked without the rig's codec
    local raw = raw_range(c.endpoints, "L3Nzc24vY2hhbm5lbHMveA==")
    assert.are.equal("1", raw.count)
    assert.are.equal(etcd.b64encode(value), raw.kvs[1].value)

    c:put("/sssn/systems/a", "A")
    c:put("/sssn/systems/b", "B")
    c:put("/sssn/systemz", "not under the prefix")
    local all, n = c:range("/sssn/systems/")
    assert.are.same({ ["/sssn/systems/a"] = "A", ["/sssn/systems/b"] = "B" }, all)
    assert.are.equal(2, n)
    assert.are.equal(2, c:delete("/sssn/systems/", { prefix = true }))
    assert.are.same({}, (c:range("/sssn/systems/")))
  end)

  it("keeps etcd's output in its directory, not on the test's output", function()
    local c = etcd.start { members = 1 }
    assert.matches("^" .. c.dir:gsub("%p", "%%%0") .. "/m1%.log$", c.members[1].log)
    assert.truthy(dir_exists(c.dir .. "/m1.data"), c.dir)
    -- etcd logs at warn level in JSON lines there (the auth warning comes at every start)
    assert.truthy(c:log(1):find('"level":"warn"', 1, true), c:log(1))
  end)

  it("starts three members that agree on a leader and replicate to every member", function()
    local c = etcd.start { members = 3 }
    local eps = {}
    for ep in c.endpoints:gmatch("[^,]+") do eps[#eps + 1] = ep end
    assert.are.equal(3, #eps)
    local l = c:leader()
    assert.is_true(l >= 1 and l <= 3)
    -- the leader names itself; the others name it too
    local leader_id = c:status(l).header.member_id
    for i = 1, 3 do assert.are.equal(leader_id, c:status(i).leader) end
    c:put("/k", "v1", { member = l % 3 + 1 }) -- through a follower
    for i = 1, 3 do
      -- each member's own copy (serializable: no round trip to the leader)
      local v = testing.eventually(5, function() return (c:get("/k", { member = i, serializable = true })) end)
      assert.are.equal("v1", v, "member " .. i)
    end
  end)

  it("kills the leader with SIGKILL; the others elect another, and the killed one catches up on restart", function()
    local c = etcd.start { members = 3 }
    local old = c:leader()
    local old_pid = c.members[old].pid
    c:kill(old)
    assert.is_false(c:alive(old))
    assert.is_false(etcd.pid_exists(old_pid))
    assert.are.equal(137, (c.members[old].proc:status())) -- 128 + SIGKILL: no clean exit
    local new = c:leader()
    assert.are_not.equal(old, new)
    assert.are.equal(2, #c:pids())
    -- the two left are a majority: writes go on
    c:put("/during", "written while member " .. old .. " was down")

    c:restart(old)
    assert.is_true(c:alive(old))
    assert.are.equal(3, #c:pids())
    assert.is_true(c:leader() >= 1)
    local v = testing.eventually(5, function() return (c:get("/during", { member = old, serializable = true })) end)
    assert.are.equal("written while member " .. old .. " was down", v)
    assert.truthy(dir_exists(c.dir .. "/m" .. old .. "-2.log"))
  end)

  it("stops a member cleanly with TERM, and gives URLs that start at any member", function()
    local c = etcd.start { members = 3 }
    local eps = {}
    for ep in c.endpoints:gmatch("[^,]+") do eps[#eps + 1] = ep end
    assert.are.equal(c.url, c:url_from(1))
    assert.are.equal(("etcd://%s,%s,%s"):format(eps[3], eps[1], eps[2]), c:url_from(3))
    c:kill(2, "TERM")
    assert.is_false(c:alive(2))
    assert.are_not.equal(137, (c.members[2].proc:status())) -- not SIGKILLed: it exited by itself
    c:restart(2)
    assert.are.equal(3, #c:pids())
  end)

  it("loses quorum with two of three killed, and gets it back when one returns", function()
    local c = etcd.start { members = 3 }
    c:put("/q", "before")
    local l = c:leader()
    local other = l % 3 + 1
    c:kill(l)
    c:kill(other)
    -- one member alone cannot commit: the put is refused or times out
    local ok, err = pcall(c.put, c, "/q", "alone", { timeout = 1.5, request_timeout = 1 })
    assert.is_false(ok)
    assert.matches("sssn.testing_etcd: /v3/kv/put", tostring(err))
    c:restart(other)
    c:put("/q", "after")
    assert.are.equal("after", (c:get("/q")))
  end)

  it("compacts to the current revision: older revisions can no longer be read", function()
    local c = etcd.start { members = 1 }
    local r1 = c:put("/c", "one")
    local r2 = c:put("/c", "two")
    assert.are.equal("one", (c:get("/c", { revision = r1 })))
    local at = c:compact()
    assert.are.equal(r2, at)
    assert.are.equal(r2, c:revision())
    local ok, err = pcall(c.get, c, "/c", { revision = r1 })
    assert.is_false(ok)
    assert.are.equal(11, err.code) -- OutOfRange
    assert.matches("compacted", tostring(err))
    assert.are.equal("two", (c:get("/c")))
    assert.are.equal(r2, c:compact()) -- again, nothing new: left as it is
  end)

  it("stops every member, reaps it and removes its directory; stop twice is safe", function()
    local c = etcd.start { members = 3 }
    local pids, dir = c:pids(), c.dir
    assert.are.equal(3, #pids)
    for _, pid in ipairs(pids) do assert.is_true(etcd.pid_exists(pid)) end
    c:stop()
    for _, pid in ipairs(pids) do assert.is_false(etcd.pid_exists(pid), "pid " .. pid) end
    assert.is_false(dir_exists(dir))
    assert.are.same({}, c:pids())
    c:stop()
    local s = testing.http("POST", "http://" .. c.endpoints:match("^[^,]+") .. "/v3/maintenance/status",
      { body = "{}", timeout = 1 })
    assert.is_nil(s)
  end)

  it("stops, with stop_all, a cluster a failing test left running", function()
    local c
    local ok = pcall(function()
      c = etcd.start { members = 1 }
      error("the test failed here")
    end)
    assert.is_false(ok)
    local pid, dir = c:pids()[1], c.dir
    assert.is_true(etcd.pid_exists(pid))
    assert.are.equal(1, etcd.stop_all())
    assert.is_false(etcd.pid_exists(pid))
    assert.is_false(dir_exists(dir))
    assert.are.equal(0, etcd.stop_all())
  end)

  it("raises with etcd's log when a member cannot start, leaving nothing behind", function()
    local before = etcd.stop_all()
    assert.are.equal(0, before)
    local msg = testing.error_of(etcd.start, { members = 1, args = { "--no-such-flag" } })
    testing.assert_mentions(msg, "sssn.testing_etcd", "lost a member while starting", "no-such-flag")
    assert.are.equal(0, etcd.stop_all()) -- start stopped it itself
  end)
end)
