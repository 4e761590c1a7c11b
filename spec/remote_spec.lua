-- End to end: hosts talking to each other over HTTP. Host A runs with `--listen` and owns the
-- registry and channels; host B runs with `--registry http://A` and uses them remotely
-- (the http registry backend, host/sys/regbackend_http.c, and RemoteChannel). Every process is a real `sssn-host` started as a child of
-- the runner (bounded by sssn.testing's limit), with `--listen 127.0.0.1:0` and the port it
-- reports read back, and stopped in teardown even when an assertion fails. Fixture systems
-- print distinctive lines; the specs read each process's stdout/stderr files and query A's API
-- with the runner's own HTTP client. Waits run the loop until the event, with a deadline.
local sssn = require "sssn"
local testing = require "sssn.testing"

local decode = sssn.json.decode

-- Helpers -------------------------------------------------------------------------------

local tmpdir = testing.tmpdir

local write = testing.write_file

local escape = require("sssn.remote").escape

local now = testing.walltime

-- Tries fn() every ~20 ms, the loop running, until it returns a truthy value or `seconds`
-- pass; returns that value.
local function wait_until(seconds, fn) return testing.eventually(seconds, fn, 0.02) end

local function try_decode(s)
  local ok, v = pcall(decode, s)
  if ok then return v end
  return nil
end

-- Fills @NAME@ placeholders in a fixture's source.
local function fill(src, vars)
  return (src:gsub("@(%u+)@", function(k) return tostring(vars[k]) end))
end

local function count(s, pattern)
  local n = 0
  for _ in s:gmatch(pattern) do n = n + 1 end
  return n
end

-- The numbers printed as "<prefix><n>" lines, in order.
local function numbers(s, prefix)
  local out = {}
  for n in s:gmatch(prefix .. "(%d+)") do out[#out + 1] = tonumber(n) end
  return out
end

-- http(method, url, {body=, token=}) -> status, decoded json (or nil), raw body (the error
-- when no answer came: status nil)
local function http(method, url, opts)
  opts = opts or {}
  local status, body = testing.http(method, url, { body = opts.body, token = opts.token, timeout = 5 })
  return status, status and try_decode(body), body
end

-- A value of a host's /metrics ("name" or 'name{label="x"}'), or nil.
local function metric(base, name)
  local _, _, text = http("GET", base .. "/metrics")
  return tonumber((text or ""):match("\n" .. name:gsub("%p", "%%%0") .. " (%d+)\n"))
end

-- A set of sssn-host processes (testing.start_host: p:out(), p:err(), p:status(), p:alive(),
-- p:signal(), p:wait_exit(), p:wait_output(), p:ready() -> p.port, p.base), stopped together.
local function group()
  local g = { procs = {}, dir = tmpdir() }
  function g.start(name, args)
    local p = testing.start_host(args, { dir = g.dir, name = name })
    g.procs[#g.procs + 1] = p
    return p
  end
  function g.script(name, src, vars)
    local path = ("%s/%s.lua"):format(g.dir, name)
    write(path, vars and fill(src, vars) or src)
    return path
  end
  function g.stop_all()
    for i = #g.procs, 1, -1 do pcall(g.procs[i].stop, g.procs[i]) end
    testing.rmtree(g.dir)
  end
  return g
end

-- Fixtures ------------------------------------------------------------------------------

local IDLE = [[
function step(self) end
]]

-- Scenarios 2-4, on host B: registers a channel and itself through A, then queries A.
local REGISTRANT = [[
local sssn = require "sssn"
local s = sssn.system { id = "reg-b", name = "Remote Registrant", description = "registers through A",
  services = { { name = "remote-cap-xyz", description = "registered from host B" } } }

local function try(label, fn)
  local ok, e = pcall(fn)
  if not ok then print(label .. ": ERROR " .. tostring(e)) end
end

function s:setup()
  print("registry kind=" .. tostring(sssn.registry.kind))
  local ch = self:add_channel(sssn.broadcast { id = "b-feed", name = "Bee Side Feed",
    description = "a channel of host B", visibility = "public" })
  try("register_channel", function() sssn.registry:register_channel(ch.info) end)
  try("register_system", function() sssn.registry:register_system(self:descriptor()) end)
  print("registered")
  try("find_systems", function()
    local found = sssn.registry:find_systems { capability = "remote-cap-xyz" }
    local ids = {}
    for i, d in ipairs(found) do ids[i] = d.system_id .. "/" .. d.system_name end
    print("find_systems: " .. #found .. " " .. table.concat(ids, ","))
    print("find_systems none: " .. #sssn.registry:find_systems { capability = "nobody-has-this" })
  end)
  try("find_channels", function()
    local found = sssn.registry:find_channels { visibility = "public", name = "bee side" }
    local ids = {}
    for i, c in ipairs(found) do ids[i] = c.id end
    print("find_channels: " .. #found .. " " .. table.concat(ids, ","))
  end)
  try("get_channel", function()
    local c = sssn.registry:get_channel("b-feed")
    print(("get_channel: id=%s name=%s kind=%s visibility=%s owner=%s"):format(c.id, c.name, c.kind,
      c.visibility, tostring(c.owner)))
  end)
  try("get_system", function()
    local d = sssn.registry:get_system("reg-b")
    print(("get_system: id=%s name=%s service=%s writes=%s"):format(d.system_id, d.system_name,
      d.services[1].name, tostring(d.channels_write[1])))
  end)
  try("get_channel unknown", function()
    print("get_channel unknown: " .. tostring(sssn.registry:get_channel("no-such-channel-id")))
  end)
  try("get_system unknown", function()
    print("get_system unknown: " .. tostring(sssn.registry:get_system("no-such-system-id")))
  end)
  print("registrant done")
end
function s:step() end
return s
]]

-- Scenario 3, on host B: one registration kept alive (ttl 2), one not (ttl 1).
local KEEPALIVE = [[
local sssn = require "sssn"
local s = sssn.system { id = "ka-b" }
function s:setup()
  sssn.registry:register_system({ system_id = "ka-sys", system_name = "Kept Alive",
    services = { { name = "kept" } } }, 2)
  sssn.registry:register_system({ system_id = "nk-sys", system_name = "Not Kept",
    services = { { name = "not-kept" } } }, 1, { keepalive = false })
  print("keepalive registered")
end
function s:step() end
return s
]]

-- Scenarios 5-6, on host A: owns the channels B uses remotely.
local OWNER = [[
local sssn = require "sssn"
local s = sssn.system { id = "owner", name = "Channel Owner" }
function s:setup()
  local feed = self:add_channel(sssn.broadcast { id = "r-feed", name = "Remote Feed", visibility = "public" })
  local jobs = self:add_channel(sssn.work_queue { id = "r-jobs", name = "Remote Jobs", claim_timeout = 30 })
  local sub = self:add_channel(sssn.broadcast { id = "r-sub", name = "Remote Sub" })
  local full = self:add_channel(sssn.work_queue { id = "r-full", name = "Full Queue", capacity = 1 })
  for i = 1, 5 do self:write_channel("r-feed", { n = i }) end
  for i = 1, 3 do self:write_channel("r-jobs", { job = i }) end
  self:write_channel("r-full", { job = "only" })
  for _, ch in ipairs { feed, jobs, sub, full } do sssn.registry:register_channel(ch.info) end
  print("owner ready")
end
function s:step() end
return s
]]

-- Scenarios 5-6, on host B: every remote channel operation, then the error cases.
local CLIENT = [[
local sssn = require "sssn"
local c = sssn.system { id = "client", name = "Remote Client" }

local function list(msgs, field)
  local t = {}
  for i, m in ipairs(msgs) do t[i] = tostring(m.content.data[field]) end
  return table.concat(t, ",")
end

local function try(label, fn)
  local ok, e = pcall(fn)
  if not ok then print(label .. ": ERROR " .. tostring(e)) end
end

-- prints "label: <the error>" for an operation that must fail
local function expect_error(label, fn)
  local ok, e = pcall(fn)
  if ok then print(label .. ": NO ERROR") else print(label .. ": " .. tostring(e)) end
end

function c:setup()
  try("feed", function()
    local info = sssn.registry:get_channel("r-feed")
    print("feed endpoint=" .. tostring(info.endpoint))
    self:connect(info)
    local m1 = self:read_channel("r-feed", { limit = 2 })
    print("read1 n=" .. list(m1, "n"))
    local m2 = self:read_channel("r-feed", { limit = 2 })
    print("read2 n=" .. list(m2, "n"))
    local m3 = self:read_channel("r-feed", { limit = 3, after = m1[1].seq })
    print("read-after n=" .. list(m3, "n"))
    local id = self:write_channel("r-feed", { n = 99, token = "written-by-B" })
    print("wrote id=" .. tostring(id))
  end)
  try("jobs", function()
    local jobs
    for _, i in ipairs(sssn.registry:find_channels { name = "remote jobs" }) do jobs = i end
    self:connect(jobs)
    local c1 = self:claim_channel("r-jobs", { limit = 1 })
    print("claim1 job=" .. list(c1, "job"))
    print("ack1=" .. tostring(self:acknowledge_channel("r-jobs", c1)))
    local c2 = self:claim_channel("r-jobs", { limit = 1 })
    print("claim2 job=" .. list(c2, "job"))
    print("nack2=" .. tostring(self:nack_channel("r-jobs", c2)))
    local c3 = self:claim_channel("r-jobs", { limit = 10 })
    print("claim3 job=" .. list(c3, "job"))
    print("ack3=" .. tostring(self:acknowledge_channel("r-jobs", c3)))
    print("claim4 count=" .. #self:claim_channel("r-jobs", { limit = 10 }))
  end)
  expect_error("err-notfound", function()
    self:connect { id = "no-such-channel", name = "Bogus", kind = "broadcast", endpoint = "@A@" }
    self:read_channel("no-such-channel")
  end)
  expect_error("err-busy", function()
    self:connect(sssn.registry:get_channel("r-full"))
    self:write_channel("r-full", { job = "one too many" })
  end)
  expect_error("err-unreachable", function()
    self:connect { id = "dead-ch", name = "Dead", kind = "broadcast", endpoint = "http://127.0.0.1:@DEAD@" }
    self:read_channel("dead-ch")
  end)
  try("sub", function()
    self:connect(sssn.registry:get_channel("r-sub"))
    self:subscribe_channel("r-sub", function(m) print("sub n=" .. tostring(m.content.data.n)) end)
  end)
  print("client ready")
end
function c:step() end
return c
]]

-- Scenario 7, on host A: writes {n = 1, 2, 3, ...} to "ticks", 10 a second.
local TICKER = [[
local sssn = require "sssn"
local s = sssn.system { id = "ticker", tick_rate = 10 }
function s:setup()
  self.n = 0
  local ch = self:add_channel(sssn.broadcast { id = "ticks", name = "Ticks", visibility = "public" })
  sssn.registry:register_channel(ch.info)
  print("ticker ready")
end
function s:step()
  self.n = self.n + 1
  self:write_channel("ticks", { n = self.n })
end
return s
]]

-- Scenario 7, on host B: finds "ticks" through A's registry and subscribes.
local SUBSCRIBER = [[
local sssn = require "sssn"
local s = sssn.system { id = "tick-sub" }
function s:setup()
  local info
  for _ = 1, 50 do
    info = sssn.registry:get_channel("ticks")
    if info then break end
    sssn.sleep(0.1)
  end
  self:connect(info)
  self:subscribe_channel("ticks", function(m)
    local d = m.content.data
    print(d.filler and ("tick filler=" .. d.filler) or ("tick n=" .. tostring(d.n)))
  end)
  print("subscriber ready")
end
function s:step() end
return s
]]

-- Scenario 8, on host B: a local system that ticks and asks the remote registry each step.
local LOCAL = [[
local sssn = require "sssn"
local s = sssn.system { id = "local-ticker", tick_rate = 5 }
function s:setup() self.k = 0 end
function s:step()
  self.k = self.k + 1
  print("local tick " .. self.k)
  local ok, res = pcall(sssn.registry.find_channels, sssn.registry, { name = "ticks" })
  if ok then print("registry ok " .. #res) else print("registry error: " .. tostring(res)) end
end
return s
]]

-- Ownership scenarios, on hosts Blue and Green (the same script on both, as in a blue/green
-- deploy): registers its channel (endpoint: its own --listen URL) and itself through R.
local BLUEGREEN = [[
local sssn = require "sssn"
local s = sssn.system { id = "bg-svc", name = "Blue Green Service", services = { { name = "bg-cap" } } }
function s:setup()
  local feed = self:add_channel(sssn.broadcast { id = "bg-feed", name = "BG Feed", visibility = "public" })
  local c = sssn.registry:register_channel(feed.info)
  print(("bg registered %.3f"):format(c.expires_at - sssn.now()))
  sssn.registry:register_system(self:descriptor())
end
function s:step() end
return s
]]

-- On host B: registers "probe-ch"; once someone else has taken it over (endpoint TAKER), tries
-- to deregister it and prints what deregister_channel returned; then deregisters its own.
local PROBE = [[
local sssn = require "sssn"
local s = sssn.system { id = "probe" }
function s:setup()
  sssn.registry:register_channel({ id = "probe-ch", name = "Probe" })
  sssn.registry:register_channel({ id = "probe-own", name = "Probe Own" })
  print("probe registered")
  sssn.spawn(function()
    for _ = 1, 100 do
      local c = sssn.registry:get_channel("probe-ch")
      if c and c.endpoint == "@TAKER@" then break end
      sssn.sleep(0.1)
    end
    local ok, why = sssn.registry:deregister_channel("probe-ch")
    print(("probe taken: %s %s"):format(tostring(ok), tostring(why)))
    ok, why = sssn.registry:deregister_channel("probe-own")
    print(("probe own: %s %s"):format(tostring(ok), tostring(why)))
    ok, why = sssn.registry:deregister_channel("probe-own")
    print(("probe again: %s %s"):format(tostring(ok), tostring(why)))
  end)
end
function s:step() end
return s
]]

-- On host B: asks the remote registry in every step, without pcall.
local STEPPER = [[
local sssn = require "sssn"
local s = sssn.system { id = "stepper", tick_rate = 5 }
function s:step()
  local found = sssn.registry:find_channels { name = "nothing-like-this" }
  print("stepper ok " .. #found)
end
return s
]]

-- On host B: reads A's registry events through sssn.registry:events, waiting for the next.
local EVENTS = [[
local sssn = require "sssn"
local s = sssn.system { id = "ev-b" }
function s:setup()
  local _, index = sssn.registry:events(math.maxinteger)
  print("events from " .. index)
  local events, next_index = sssn.registry:events(index, 10)
  print(("events got %d %s %s %s"):format(#events, events[1].event, events[1].id, tostring(next_index > index)))
end
function s:step() end
return s
]]

-- Specs ---------------------------------------------------------------------------------

describe("two hosts", function()
  it("run the discovery example: B finds A's temperature feed through A's registry", function()
    local g = group()
    finally(g.stop_all)
    local a = g.start("A", "--listen 127.0.0.1:0 examples/discovery/temperature_service.lua")
    a:ready()
    local b = g.start("B", ("--registry %s examples/discovery/data_consumer.lua"):format(a.base))
    b:wait_output("[Consumer] temp=22.4°C", 6)
    local out = b:out()
    local retry = out:find("[Consumer] no temperature channels found yet, retrying...", 1, true)
    local connected = out:find("[Consumer] connected to 'Temperature Feed' (temperature-feed)", 1, true)
    local reading = out:find("[Consumer] temp=22.4°C", 1, true)
    assert.truthy(retry and connected and reading, out)
    assert.is_true(retry < connected and connected < reading, out)
    assert.truthy(a:out():find("[temp-svc] registered with discovery", 1, true), a:out())
    assert.is_true(b:alive() and a:alive())
  end)
end)

describe("a remote registry (host B with --registry)", function()
  local g, pa, base, a, b, t_registered
  lazy_setup(function()
    g = group()
    a = g.start("A", ("--listen 127.0.0.1:0 --maintenance 0.5 %s"):format(g.script("idle", IDLE)))
    a:ready()
    pa, base = a.port, a.base
    b = g.start("B", ("--registry %s %s %s"):format(base, g.script("registrant", REGISTRANT),
      g.script("keepalive", KEEPALIVE)))
    b:wait_output("keepalive registered", 5)
    t_registered = now()
    b:wait_output("registrant done", 5)
  end)
  lazy_teardown(function() if g then g.stop_all() end end)

  it("takes B's registrations: A lists them and B's queries go through A", function()
    local out = b:out()
    assert.is_nil(out:find("ERROR", 1, true), out .. b:err())
    assert.truthy(out:find("registry kind=remote", 1, true), out)

    -- A holds them
    local s, list, raw = http("GET", base .. "/registry/systems?capability=remote-cap-xyz")
    assert.are.equal(200, s, raw)
    assert.are.equal(1, #list, raw)
    assert.are.equal("reg-b", list[1].system_id)
    assert.are.equal("Remote Registrant", list[1].system_name)
    assert.are.equal("remote-cap-xyz", list[1].services[1].name)
    assert.are.same({ "b-feed" }, list[1].channels_write)
    local s2, ch, raw2 = http("GET", base .. "/registry/channels/b-feed")
    assert.are.equal(200, s2, raw2)
    assert.are.equal("b-feed", ch.id)
    assert.are.equal("Bee Side Feed", ch.name)
    assert.are.equal("public", ch.visibility)
    assert.are.equal("broadcast", ch.kind)
    local s3, sys = http("GET", base .. "/registry/systems/reg-b")
    assert.are.equal(200, s3)
    assert.are.equal("registers through A", sys.description)

    -- B's systems see them through A
    assert.truthy(out:find("find_systems: 1 reg-b/Remote Registrant\n", 1, true), out)
    assert.truthy(out:find("find_systems none: 0\n", 1, true), out)
    assert.truthy(out:find("find_channels: 1 b-feed\n", 1, true), out)
    assert.truthy(out:find("get_channel: id=b-feed name=Bee Side Feed kind=broadcast visibility=public owner=reg-b\n",
      1, true), out)
    assert.truthy(out:find("get_system: id=reg-b name=Remote Registrant service=remote-cap-xyz writes=b-feed\n",
      1, true), out)
    assert.truthy(out:find("get_channel unknown: nil\n", 1, true), out)
    assert.truthy(out:find("get_system unknown: nil\n", 1, true), out)
  end)

  it("keeps B's registrations alive on A, and lets a keepalive=false one expire", function()
    -- ttl 1 without keep-alive: gone from A after ~2 s
    local gone = wait_until(math.max(0.1, t_registered + 2.2 - now()), function()
      return http("GET", base .. "/registry/systems/nk-sys") == 404
    end)
    assert.is_true(gone, "nk-sys (ttl 1, keepalive=false) still on A after 2 s")
    assert.is_true(now() - t_registered > 0.8, "nk-sys went away before its ttl of 1 s")
    -- ttl 2 with keep-alive: still there after 5 s (the loop runs until then)
    testing.run_for(math.max(0, t_registered + 5 - now()))
    local s, entry, raw = http("GET", base .. "/registry/systems/ka-sys")
    assert.are.equal(200, s, raw)
    assert.are.equal("Kept Alive", entry.system_name)
    local _, ev = http("GET", base .. "/registry/events?index=0")
    local refreshed, expired = 0, {}
    for _, e in ipairs(ev.events) do
      if e.event == "refreshed" and e.id == "ka-sys" then refreshed = refreshed + 1 end
      if e.event == "expired" then expired[e.id] = true end
    end
    assert.is_true(refreshed >= 2, ("ka-sys refreshed %d times in 5 s (ttl 2)"):format(refreshed))
    assert.is_nil(expired["ka-sys"], "ka-sys expired although kept alive")
    assert.is_true(expired["nk-sys"], "no 'expired' event for nk-sys")
    assert.is_true(b:alive(), b:err())
  end)

  it("removes B's registrations from A when B stops cleanly (SIGTERM)", function()
    assert.are.equal(200, (http("GET", base .. "/registry/systems/reg-b")))
    b:signal("TERM")
    local rc = b:wait_exit(5)
    assert.are.equal(0, rc, b:err())
    -- right after: within ~1 s of B's exit
    local gone = wait_until(1, function()
      return http("GET", base .. "/registry/systems/reg-b") == 404
        and http("GET", base .. "/registry/systems/ka-sys") == 404
        and http("GET", base .. "/registry/channels/b-feed") == 404
    end)
    assert.is_true(gone, "B's registrations are still on A after it stopped: " .. b:err())
    local _, ev = http("GET", base .. "/registry/events?index=0")
    local dereg = {}
    for _, e in ipairs(ev.events) do
      if e.event == "deregistered" then dereg[e.kind .. "/" .. e.id] = true end
    end
    assert.is_true(dereg["system/reg-b"], "no 'deregistered' event for reg-b")
    assert.is_true(dereg["system/ka-sys"], "no 'deregistered' event for ka-sys")
    assert.is_true(dereg["channel/b-feed"], "no 'deregistered' event for b-feed")
  end)
end)

describe("a host with --registry", function()
  local g
  before_each(function() g = group() end)
  after_each(function() g.stop_all() end)

  it("answers its own registry routes from the registry it uses", function()
    local a = g.start("A", ("--listen 127.0.0.1:0 %s"):format(g.script("idle", IDLE)))
    a:ready()
    local b = g.start("B", ("--listen 127.0.0.1:0 --registry %s %s"):format(a.base, g.script("idle", IDLE)))
    b:ready()
    -- a PUT on B lands on A, and B lists and deletes what A holds
    local s, put, raw = http("PUT", b.base .. "/registry/channels/via-b?ttl=30&registrant=r%2F1",
      { body = '{"id": "via-b", "name": "Via B"}' })
    assert.are.equal(200, s, raw)
    assert.are.equal("Via B", put.name)
    local s2, on_a = http("GET", a.base .. "/registry/channels/via-b")
    assert.are.equal(200, s2)
    assert.are.equal(put.expires_at, on_a.expires_at)
    local _, list = http("GET", b.base .. "/registry/channels?name=via")
    assert.are.equal(1, #list)
    assert.are.equal("via-b", list[1].id)
    local sd, jd = http("DELETE", b.base .. "/registry/channels/via-b?registrant=r%2F2")
    assert.are.equal(409, sd)
    assert.are.equal("r/1", jd.error.registrant)
    assert.are.equal(200, (http("DELETE", b.base .. "/registry/channels/via-b?registrant=r%2F1")))
    assert.are.equal(404, (http("GET", b.base .. "/registry/channels/via-b")))
    assert.are.equal(404, (http("GET", a.base .. "/registry/channels/via-b")))
    -- A's events, through B
    local _, ev = http("GET", b.base .. "/registry/events?index=0&registrant=r%2F1")
    local seen = {}
    for i, e in ipairs(ev.events) do seen[i] = e.event end
    assert.are.same({ "registered", "deregistered" }, seen)
    -- and says so when A is gone
    a:stop()
    local sg, jg, rg = http("GET", b.base .. "/registry/channels/via-b")
    assert.are.equal(502, sg, rg)
    assert.are.equal("unreachable", jg.error.type)
    assert.truthy(jg.detail:find(a.base, 1, true), rg)
  end)

  it("reads the other host's registry events, waiting for the next one", function()
    local a = g.start("A", ("--listen 127.0.0.1:0 %s"):format(g.script("idle", IDLE)))
    a:ready()
    local b = g.start("B", ("--registry %s %s"):format(a.base, g.script("events", EVENTS)))
    b:wait_output("events from ", 5)
    assert.are.equal(200, (http("PUT", a.base .. "/registry/systems/late?ttl=30", { body = '{"system_id": "late"}' })))
    b:wait_output("events got ", 5)
    assert.truthy(b:out():find("events got 1 registered late true\n", 1, true), b:out() .. b:err())
  end)

  it("refuses a registry call made outside any coroutine of the host, saying why", function()
    local a = g.start("A", ("--listen 127.0.0.1:0 %s"):format(g.script("idle", IDLE)))
    a:ready()
    local out = testing.run { testing.exe, "--registry", a.base, "--duration", "0.2",
      "-e", "print(pcall(sssn.registry.find_channels, sssn.registry))" }
    assert.truthy(out:find("false\tsssn.registry:find_channels: the registry is another host's (" .. a.base ..
      "): the call waits for its answer", 1, true), out)
  end)
end)

describe("registrations across hosts belong to the instance that made them", function()
  local g
  before_each(function() g = group() end)
  after_each(function() g.stop_all() end)

  -- R (the registry) and, when asked, Blue then Green running BLUEGREEN with --registry R.
  local function deploy(opts)
    opts = opts or {}
    local w = {}
    w.r = g.start("R", ("--listen 127.0.0.1:0 %s"):format(g.script("idle", IDLE)))
    w.r:ready()
    w.pr, w.base = w.r.port, w.r.base
    local script = g.script("bluegreen", BLUEGREEN)
    for _, name in ipairs(opts.hosts or { "blue", "green" }) do
      local p = g.start(name, ("--listen 127.0.0.1:0 --registry %s %s %s"):format(w.base,
        opts[name .. "_args"] or "", script))
      p.url = ("http://127.0.0.1:%d"):format(p:listening())
      p:wait_output("bg registered", 5)
      w[name] = p
    end
    return w
  end

  local function listed(w)
    local s, c = http("GET", w.base .. "/registry/channels/bg-feed")
    local ss = http("GET", w.base .. "/registry/systems/bg-svc")
    return s == 200 and ss == 200 and c.endpoint or nil
  end

  local function events_of(w, id, from)
    local _, ev = http("GET", ("%s/registry/events?index=%d"):format(w.base, from or 0))
    local out = {}
    for _, e in ipairs(ev.events) do
      if e.id == id then out[#out + 1] = e end
    end
    return out
  end

  it("keeps the new instance listed throughout while the old one stops (blue/green)", function()
    local w = deploy()
    assert.are.equal(w.green.url, listed(w))
    -- blue hears of the takeover at once (not at its next refresh, 200 s away)
    assert.truthy(wait_until(3, function() return count(w.blue:err(), "was taken over by") >= 2 end), w.blue:err())
    assert.truthy(w.blue:err():find("channel 'bg-feed' at " .. w.base .. " was taken over by registrant '", 1, true),
      w.blue:err())
    assert.truthy(w.blue:err():find("at " .. w.green.url .. ": taking it back once it is free", 1, true), w.blue:err())
    local ev = events_of(w, "bg-feed")
    assert.are.equal("replaced", ev[#ev].event)
    assert.are.equal(w.blue.url, ev[#ev].previous.endpoint)
    assert.are.equal(w.green.url, ev[#ev].entry.endpoint)
    assert.are_not.equal(ev[#ev].registrant, ev[#ev].previous_registrant)
    local _, idx = http("GET", w.base .. "/registry/events?limit=1&index=" .. math.maxinteger)
    -- blue stops: green's entries never leave, not even for a moment (sampled every ~20 ms
    -- until 2 s after blue exited; 10 s at most)
    w.blue:signal("TERM")
    local gaps, deadline, limit = {}, nil, now() + 10
    while true do
      local at = listed(w)
      if at ~= w.green.url then gaps[#gaps + 1] = tostring(at) end
      if not deadline and not w.blue:alive() then deadline = now() + 2 end
      if (deadline and now() > deadline) or now() > limit then break end
      testing.run_for(0.02)
    end
    assert.are.equal(0, w.blue:status(), w.blue:err())
    assert.are.same({}, gaps)
    for _, id in ipairs { "bg-feed", "bg-svc" } do
      for _, e in ipairs(events_of(w, id, idx.index)) do
        assert.are_not.equal("deregistered", e.event, id .. " was deregistered when blue stopped")
      end
    end
  end)

  it("lists the older instance again within 2 s when the newer one stops first", function()
    local w = deploy()
    assert.are.equal(w.green.url, listed(w))
    assert.truthy(wait_until(3, function() return count(w.blue:err(), "was taken over by") >= 2 end), w.blue:err())
    w.green:signal("TERM")
    local t0 = now()
    local back = wait_until(3, function() return listed(w) == w.blue.url end)
    local took = now() - t0
    assert.truthy(back, "blue is not listed again: " .. w.blue:err())
    assert.is_true(took < 2, ("blue listed again only after %.2f s"):format(took))
    assert.truthy(wait_until(1, function()
      return w.blue:err():find("took channel 'bg-feed' back at " .. w.base, 1, true)
        and w.blue:err():find("took system 'bg-svc' back", 1, true)
    end), w.blue:err())
    -- and it stays: blue keeps it alive from now on (for 1.5 s, the loop running)
    testing.run_for(1.5)
    assert.are.equal(w.blue.url, listed(w))
  end)

  it("sends the host's --ttl with the first registration", function()
    local w = deploy { hosts = { "blue" }, blue_args = "--ttl 7" }
    local left = tonumber(w.blue:out():match("bg registered ([%d.]+)"))
    assert.truthy(left, w.blue:out())
    assert.is_true(left > 6 and left <= 7, ("expires %.3f s ahead"):format(left))
    local _, c = http("GET", w.base .. "/registry/channels/bg-feed")
    local ahead = c.expires_at - now()
    assert.is_true(ahead > 5.5 and ahead <= 7.5, ("expires_at %.3f s ahead on R"):format(ahead))
  end)

  it("refreshes a taken-over entry not at all: the keep-alive gets 409 and retries until it is free", function()
    local w = deploy { hosts = { "blue" }, blue_args = "--ttl 3" } -- refreshes every 2 s
    local _, idx = http("GET", w.base .. "/registry/events?limit=1&index=" .. math.maxinteger)
    local s, taken, raw = http("PUT", w.base .. "/registry/channels/bg-feed?ttl=60&registrant=" .. escape("elsewhere/bg-svc"),
      { body = '{"id": "bg-feed", "name": "Taken", "endpoint": "http://elsewhere:1"}' })
    assert.are.equal(200, s, raw)
    -- two refresh periods of blue (bg-svc refreshed twice) and four retries (R answered 409
    -- four more times): the loop runs until both happened, 8 s at most
    local refusals = metric(w.base, 'sssn_http_requests_total{status="4xx"}')
    wait_until(8, function()
      local n = 0
      for _, e in ipairs(events_of(w, "bg-svc", idx.index)) do
        if e.event == "refreshed" then n = n + 1 end
      end
      return n >= 2 and metric(w.base, 'sssn_http_requests_total{status="4xx"}') >= refusals + 4
    end)
    local _, c = http("GET", w.base .. "/registry/channels/bg-feed")
    assert.are.equal("http://elsewhere:1", c.endpoint)
    assert.are.equal(taken.expires_at, c.expires_at)
    local seen = {}
    for _, e in ipairs(events_of(w, "bg-feed", idx.index)) do seen[#seen + 1] = e.event end
    assert.are.same({ "replaced" }, seen)
    -- blue's other registration is kept alive as usual
    local refreshed = 0
    for _, e in ipairs(events_of(w, "bg-svc", idx.index)) do
      if e.event == "refreshed" then refreshed = refreshed + 1 end
    end
    assert.is_true(refreshed >= 2, "bg-svc refreshed " .. refreshed .. " times")
    assert.are.equal(1, count(w.blue:err(), "channel 'bg%-feed' at [^\n]* was taken over by registrant 'elsewhere/bg%-svc' at http://elsewhere:1"),
      w.blue:err())
    -- the old holder's DELETE is refused; the holder's frees it, and blue takes it back within 2 s
    local sd, jd, rd = http("DELETE", w.base .. "/registry/channels/bg-feed?registrant=" .. escape("someone/else"))
    assert.are.equal(409, sd, rd)
    assert.are.equal("not_owner", jd.error.type)
    assert.are.equal("elsewhere/bg-svc", jd.error.registrant)
    assert.are.equal(200, (http("DELETE", w.base .. "/registry/channels/bg-feed?registrant=" .. escape("elsewhere/bg-svc"))))
    local t0 = now()
    assert.truthy(wait_until(3, function() return listed(w) == w.blue.url end), w.blue:err())
    assert.is_true(now() - t0 < 2)
  end)

  it("lets a system of the registry's own host take back what another host took over, and logs both", function()
    local r = g.start("R", ("--listen 127.0.0.1:0 %s"):format(g.script("bluegreen", BLUEGREEN)))
    r:ready()
    local base = r.base
    r:wait_output("bg registered", 5)
    local s, _, raw = http("PUT", base .. "/registry/channels/bg-feed?ttl=1&registrant=" .. escape("zz/other"),
      { body = '{"id": "bg-feed", "endpoint": "http://other:1"}' })
    assert.are.equal(200, s, raw)
    assert.truthy(wait_until(1, function()
      return r:err():find("[bg-svc] channel 'bg-feed' was taken over by registrant 'zz/other' at http://other:1: " ..
        "taking it back once it is free", 1, true)
    end), r:err())
    -- the other host's entry expires after 1 s: the local system registers it again within 2 s
    local t0 = now()
    assert.truthy(wait_until(3, function()
      local _, c = http("GET", base .. "/registry/channels/bg-feed")
      return c and c.endpoint == base
    end), r:err())
    assert.is_true(now() - t0 < 2.5)
    assert.truthy(r:err():find("[bg-svc] took channel 'bg-feed' back", 1, true), r:err())
    assert.are.equal(1, count(r:err(), "was taken over by"))
  end)

  it("answers a system's deregistration of an entry another instance took over with false and why", function()
    local r = g.start("R", ("--listen 127.0.0.1:0 %s"):format(g.script("idle", IDLE)))
    r:ready()
    local base = r.base
    local b = g.start("B", ("--registry %s %s"):format(base, g.script("probe", PROBE, { TAKER = "http://taker:9" })))
    b:wait_output("probe registered", 5)
    assert.are.equal(200, (http("PUT", base .. "/registry/channels/probe-ch?registrant=taker/x",
      { body = '{"id": "probe-ch", "endpoint": "http://taker:9"}' })))
    b:wait_output("probe again:", 5)
    local out = b:out()
    assert.truthy(out:find("probe taken: false channel 'probe-ch' is registered by another registrant: " ..
      "registrant 'taker/x' at http://taker:9\n", 1, true), out)
    assert.truthy(out:find("probe own: true nil\n", 1, true), out)
    assert.truthy(out:find("probe again: false channel 'probe-own' is not registered\n", 1, true), out)
    local _, c = http("GET", base .. "/registry/channels/probe-ch")
    assert.are.equal("http://taker:9", c.endpoint)
    assert.are.equal(404, (http("GET", base .. "/registry/channels/probe-own")))
  end)
end)

describe("a registry that goes away (host B's steps call it)", function()
  local g
  before_each(function() g = group() end)
  after_each(function() g.stop_all() end)

  -- The "not logged again" half depends on the host's task error logger honouring
  -- sssn_reported (host/sys/system.c).
  it("logs one line when it becomes unreachable and one when it is back, not a traceback per step", function()
    local script = g.script("idle", IDLE)
    local a = g.start("A", ("--listen 127.0.0.1:0 %s"):format(script))
    a:ready()
    local pa, base = a.port, a.base
    local b = g.start("B", ("--listen 127.0.0.1:0 --registry %s %s"):format(base, g.script("stepper", STEPPER)))
    b:ready()
    b:wait_output("stepper ok 0", 5)
    a:signal("TERM")
    a:wait_exit(5)
    local from = #b:err() + 1
    local _, _, m0 = http("GET", b.base .. "/metrics")
    -- ten steps (5 a second) fail while A is away: the loop runs until B has counted them
    local e0 = tonumber(m0:match("\nsssn_step_errors_total (%d+)"))
    wait_until(4, function() return metric(b.base, "sssn_step_errors_total") >= e0 + 10 end)
    local _, _, m1 = http("GET", b.base .. "/metrics")
    local err = b:err():sub(from)
    local all = b:err()
    assert.are.equal(1, count(all, "the registry at [^\n]* is unreachable %("), all)
    -- needs the host side: the task error logger skips errors marked sssn_reported (host/sys/system.c)
    assert.is_true(count(err, "stack traceback") <= 1, "a traceback each step (is sssn_reported honoured?):\n"
      .. err:sub(1, 600))
    local e1 = tonumber(m1:match("\nsssn_step_errors_total (%d+)"))
    assert.is_true(e1 - e0 >= 5, ("step errors counted: %s -> %s"):format(e0, e1))
    assert.is_true(b:alive())
    -- the registry comes back: one line, and the steps work again
    local a2 = g.start("A2", ("--listen 127.0.0.1:%d %s"):format(pa, script)) -- A's port again
    a2:ready()
    local mark = #b:out() + 1
    b:wait_output("stepper ok 0", 5, mark)
    assert.truthy(wait_until(1, function() return b:err():find("is reachable again", 1, true) end), b:err())
    assert.are.equal(1, count(b:err(), "is reachable again"))
    assert.are.equal(1, count(b:err(), "the registry at [^\n]* is unreachable %("))
  end)
end)

describe("remote channels (B uses channels owned by a system on A)", function()
  local g, pa, base, a, b
  lazy_setup(function()
    g = group()
    a = g.start("A", ("--listen 127.0.0.1:0 %s"):format(g.script("owner", OWNER)))
    a:ready()
    pa, base = a.port, a.base
    a:wait_output("owner ready", 5)
    local dead = testing.free_port() -- nothing listens there
    b = g.start("B", ("--registry %s %s"):format(base, g.script("client", CLIENT, { A = base, DEAD = dead })))
    b:wait_output("client ready", 10)
  end)
  lazy_teardown(function() if g then g.stop_all() end end)

  it("reads with limit and after, and writes to A's channel", function()
    local out = b:out()
    assert.is_nil(out:find("ERROR", 1, true), out .. b:err())
    assert.truthy(out:find("feed endpoint=" .. base .. "\n", 1, true), out)
    assert.truthy(out:find("read1 n=1,2\n", 1, true), out)
    assert.truthy(out:find("read2 n=3,4\n", 1, true), out)
    assert.truthy(out:find("read-after n=2,3,4\n", 1, true), out)
    local item = out:match("wrote id=(%S+)")
    assert.truthy(item, out)
    -- A's channel holds B's message
    local s, body, raw = http("GET", base .. "/channels/r-feed", { token = "checker" })
    assert.are.equal(200, s, raw)
    local last = body.messages[#body.messages]
    assert.are.equal(6, #body.messages, raw)
    assert.are.same({ n = 99, token = "written-by-B" }, last.content.data)
    assert.are.equal(item, last.id)
    assert.are.equal("client", last.sender_id)
  end)

  it("claims, acknowledges and nacks on A's work queue", function()
    local out = b:out()
    assert.truthy(out:find("claim1 job=1\n", 1, true), out)
    assert.truthy(out:find("ack1=1\n", 1, true), out)
    assert.truthy(out:find("claim2 job=2\n", 1, true), out)
    assert.truthy(out:find("nack2=1\n", 1, true), out)
    assert.truthy(out:find("claim3 job=2,3\n", 1, true), out) -- the nacked job is claimable again
    assert.truthy(out:find("ack3=2\n", 1, true), out)
    assert.truthy(out:find("claim4 count=0\n", 1, true), out)
    assert.is_true(a:alive())
  end)

  it("subscribes: messages written on A arrive at B in order", function()
    local from = #b:out() + 1
    for i = 1, 5 do
      local s, _, raw = http("PUT", base .. "/channels/r-sub", { body = ('{"n": %d}'):format(i) })
      assert.are.equal(200, s, raw)
    end
    b:wait_output("sub n=5\n", 5, from)
    assert.are.same({ 1, 2, 3, 4, 5 }, numbers(b:out(), "sub n="))
  end)

  it("maps HTTP failures to clear Lua errors: not found, busy, unreachable", function()
    local out = b:out()
    local notfound = out:match("err%-notfound: ([^\n]*)")
    local busy = out:match("err%-busy: ([^\n]*)")
    local unreachable = out:match("err%-unreachable: ([^\n]*)")
    assert.truthy(notfound and notfound:find("not found", 1, true), out)
    assert.truthy(notfound:find("no-such-channel", 1, true), notfound)
    assert.truthy(busy and busy:find("busy", 1, true), out)
    assert.truthy(busy:find("r-full", 1, true), busy)
    assert.truthy(unreachable and unreachable:find("unreachable", 1, true), out)
    assert.truthy(unreachable:find("dead-ch", 1, true), unreachable)
    assert.is_true(b:alive(), b:err())
  end)
end)

describe("a remote subscriber and a serving host that restarts", function()
  local g, pa, base, b
  local marks = {}
  lazy_setup(function()
    g = group()
    g.script("ticker", TICKER)
    local a1 = g.start("A1", ("--listen 127.0.0.1:0 %s/ticker.lua"):format(g.dir))
    a1:ready()
    pa, base = a1.port, a1.base
    b = g.start("B", ("--registry %s %s %s"):format(base, g.script("subscriber", SUBSCRIBER),
      g.script("local", LOCAL)))
    b:wait_output("tick n=8\n", 6)
    -- 60 more messages on A's "ticks" (written through its API): B's cursor on A's channel is now
    -- far ahead of what the restarted A will have written in its first seconds
    for i = 1, 60 do http("PUT", base .. "/channels/ticks", { body = ('{"filler": %d}'):format(i) }) end
    b:wait_output("tick filler=60\n", 5)
    -- A goes down
    a1:signal("TERM")
    marks.a1_rc = a1:wait_exit(5)
    marks.down = #b:out() + 1
    -- while A is down: B retries its subscription and its local system keeps ticking
    marks.retry = wait_until(8, function() -- generous: a loaded CI machine
      local rest = b:out():sub(marks.down)
      return b:err():find("retrying", 1, true) and rest:find("registry error", 1, true)
        and count(rest, "local tick %d+") >= 3
    end)
    marks.down_out = b:out():sub(marks.down)
    marks.alive_while_down = b:alive()
    -- A comes back on the same port
    marks.up = #b:out() + 1
    local a2 = g.start("A2", ("--listen 127.0.0.1:%d %s/ticker.lua"):format(pa, g.dir)) -- A1's port again
    a2:ready()
    marks.t_up = now()
  end)
  lazy_teardown(function() if g then g.stop_all() end end)

  it("keeps B running while A is down: local systems tick, registry calls fail with 'unreachable'", function()
    assert.are.equal(0, marks.a1_rc)
    assert.truthy(marks.retry, "B did not retry / its local system did not tick while A was down:\n"
      .. marks.down_out .. "\n--- stderr:\n" .. b:err())
    assert.is_true(marks.alive_while_down, b:err())
    local err_line = marks.down_out:match("registry error: ([^\n]*)")
    assert.truthy(err_line, marks.down_out)
    assert.truthy(err_line:find("unreachable", 1, true), err_line)
    assert.truthy(err_line:find(base, 1, true), err_line)
    assert.truthy(b:err():find("channel 'ticks' at " .. base .. " is unreachable", 1, true), b:err())
  end)

  it("resumes promptly after A restarts (within 3 s), though its cursor was ahead of the new channel", function()
    local resumed = wait_until(math.max(0.1, marks.t_up + 3 - now()), function()
      return b:out():find("tick n=1\n", marks.up, true)
    end)
    assert.truthy(resumed, ("B printed nothing from the restarted A within 3 s:\n%s\n--- stderr:\n%s")
      :format(b:out():sub(marks.up), b:err()))
  end)

  it("resumes after A restarts and skips nothing the restarted channel holds", function()
    b:wait_output("tick n=6\n", 10, marks.up)
    local before = numbers(b:out():sub(1, marks.down - 1), "tick n=")
    local after = numbers(b:out():sub(marks.up), "tick n=")
    for i = 1, #before do assert.are.equal(i, before[i], "before the restart: " .. table.concat(before, ",")) end
    assert.is_true(#after >= 6)
    for i = 1, #after do assert.are.equal(i, after[i], "after the restart: " .. table.concat(after, ",")) end
    -- and B's registry calls work again
    assert.truthy(wait_until(2, function() return b:out():find("registry ok", marks.up, true) end), b:out())
    assert.is_true(b:alive(), b:err())
  end)
end)

describe("--listen", function()
  local g
  before_each(function() g = group() end)
  after_each(function() g.stop_all() end)

  it("on 0.0.0.0 with --insecure warns that the API is open", function()
    local p = g.start("any", ("--listen 0.0.0.0:0 --insecure %s"):format(g.script("idle", IDLE)))
    p:ready()
    assert.truthy(wait_until(2, function() return p:err():find("is open (--insecure)", 1, true) end), p:err())
  end)

  it("with a port alone binds 127.0.0.1, without the warning", function()
    local p = g.start("local", ("--listen 0 %s"):format(g.script("idle", IDLE)))
    local port = p:ready()
    local s, body = http("GET", ("http://127.0.0.1:%d/health"):format(port))
    assert.are.equal(200, s)
    assert.are.equal("ok", body.status)
    assert.truthy(p:err():find("http://127.0.0.1:" .. port, 1, true), p:err())
    assert.is_nil(p:err():find("is open", 1, true), p:err())
    local listening = testing.run { "ss", "-ltnH" } -- "" without ss
    if listening ~= "" then
      assert.truthy(listening:find("127.0.0.1:" .. port .. " ", 1, true), listening)
      assert.is_nil(listening:find("0.0.0.0:" .. port .. " ", 1, true), listening)
    end
  end)
end)
