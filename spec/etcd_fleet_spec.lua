-- End to end: a fleet of hosts on one real etcd cluster (issue 12). Each host is a real
-- `sssn-host --registry etcd://... --listen 127.0.0.1:0 SCRIPT` started as a child of the
-- runner; etcd is real too (sssn.testing_etcd: loopback, free ports, a temporary directory).
-- The specs act through what users have: the hosts' HTTP API (PUT/GET /registry/...), their
-- systems' printed lines, and etcd's own keys (<prefix>/channels/<id>, <prefix>/systems/<id>)
-- read through the gateway. Failures are real: kill -9 of a host, of etcd's leader, etcd
-- stopped and started again, a compaction under a watch. Every wait has a deadline, and every
-- host and etcd member is stopped after each test even when it fails.
local sssn = require "sssn"
local testing = require "sssn.testing"
local etcd = require "sssn.testing_etcd"

local decode, encode = sssn.json.decode, sssn.json.encode
local now = testing.walltime

-- Helpers -------------------------------------------------------------------------------

local function try_decode(s)
  local ok, v = pcall(decode, s or "")
  if ok then return v end
  return nil
end

-- http(method, url, {body=, timeout=}) -> status, decoded json (or nil), raw body (the error
-- when no answer came: status nil)
local function http(method, url, opts)
  opts = opts or {}
  local status, body = testing.http(method, url, { body = opts.body, timeout = opts.timeout or 5 })
  return status, status and try_decode(body), body
end

local function fill(src, vars)
  return (src:gsub("@(%u+)@", function(k) return tostring(vars[k]) end))
end

-- Hosts started in one directory (NAME.out, NAME.err), stopped together: SIGTERM, then SIGKILL.
local hosts
local function group()
  local g = { procs = {}, dir = testing.tmpdir() }
  function g.script(name, src, vars)
    local path = ("%s/%s.lua"):format(g.dir, name)
    testing.write_file(path, vars and fill(src, vars) or src)
    return path
  end
  -- a host on the cluster at url, serving the API on a free port, running the scripts given
  function g.host(name, url, scripts, extra)
    local args = { "--registry", url, "--listen", "127.0.0.1:0" }
    for _, a in ipairs(extra or {}) do args[#args + 1] = a end
    for _, s in ipairs(scripts) do args[#args + 1] = s end
    local p = testing.start_host(args, { dir = g.dir, name = name })
    g.procs[#g.procs + 1] = p
    p:ready(nil, 10)
    return p
  end
  function g.stop_all()
    for i = #g.procs, 1, -1 do pcall(g.procs[i].stop, g.procs[i]) end
    testing.rmtree(g.dir)
  end
  hosts = g
  return g
end

-- hosts first (they deregister and revoke their leases while etcd still answers), then etcd
after_each(function()
  if hosts then hosts.stop_all() hosts = nil end
  etcd.stop_all()
end)

local function channel_body(id) return encode { id = id, name = "Fleet " .. id, visibility = "public" } end

-- PUT a channel entry on host h (an operator's registration over HTTP): the status.
local function put_channel(h, id, ttl, timeout)
  return (http("PUT", ("%s/registry/channels/%s?ttl=%d"):format(h.base, id, ttl or 120),
    { body = channel_body(id), timeout = timeout }))
end

local function get_status(h, kind, id)
  return (http("GET", ("%s/registry/%s/%s"):format(h.base, kind, id)))
end

-- The entry etcd holds for kind/id (decoded), and its key record (lease, mod_revision).
local function in_etcd(c, kind, id)
  local v, kv = c:get(("/sssn/%s/%s"):format(kind, id))
  return v and decode(v), kv
end

-- Both hosts' logs, for failure messages.
local function logs(...)
  local parts = {}
  for _, p in ipairs { ... } do
    parts[#parts + 1] = ("--- %s stderr:\n%s\n--- %s stdout:\n%s"):format(p.name, p:err(), p.name, p:out())
  end
  return table.concat(parts, "\n")
end

-- Fixtures ------------------------------------------------------------------------------

local IDLE = "function step(self) end\n"

-- On host A: a service that registers its feed and itself (ttl TTL), then writes {n, from}.
local SERVICE = [[
local sssn = require "sssn"
local s = sssn.system { id = "fleet-svc", name = "Fleet Service", tick_rate = 5,
  services = { { name = "fleet-cap", description = "numbers from host A" } } }
function s:setup()
  self.n = 0
  local feed = self:add_channel(sssn.broadcast { id = "fleet-feed", name = "Fleet Feed", visibility = "public" })
  sssn.registry:register_channel(feed.info, @TTL@)
  sssn.registry:register_system(self:descriptor(), @TTL@)
  print("service registered")
end
function s:step()
  self.n = self.n + 1
  self:write_channel("fleet-feed", { n = self.n, from = "A" })
end
return s
]]

-- On host B: finds the service by capability, connects to the channel it writes, reads it.
local CONSUMER = [[
local sssn = require "sssn"
local s = sssn.system { id = "fleet-consumer", tick_rate = 5 }
function s:step()
  if not self.feed then
    local found = sssn.registry:find_systems { capability = "fleet-cap" }
    if #found == 0 then return end
    local d = found[1]
    print(("consumer found %s writing %s"):format(d.system_id, tostring(d.channels_write[1])))
    local info = sssn.registry:get_channel(d.channels_write[1])
    if not info then return end
    self:connect(info)
    self.feed = info.id
    print(("consumer connected %s at %s"):format(info.id, tostring(info.endpoint)))
  end
  local ok, msgs = pcall(self.read_channel, self, self.feed, { limit = 20 })
  if not ok then return print("consumer read failed") end
  for _, m in ipairs(msgs) do
    print(("consumer read n=%d from=%s"):format(m.content.data.n, m.content.data.from))
  end
end
return s
]]

-- On host A: registers a system through Lua with ttl TTL, kept alive by the host.
local KEPT = [[
local sssn = require "sssn"
local s = sssn.system { id = "kept-svc", name = "Kept Service", services = { { name = "kept-cap" } } }
function s:setup()
  sssn.registry:register_system(self:descriptor(), @TTL@)
  print("kept registered")
end
function s:step() end
return s
]]

-- On hosts Blue and Green (the same script on both, as in a blue/green deploy).
local BLUEGREEN = [[
local sssn = require "sssn"
local s = sssn.system { id = "bg-svc", name = "Blue Green Service", services = { { name = "bg-cap" } } }
function s:setup()
  local feed = self:add_channel(sssn.broadcast { id = "bg-feed", name = "BG Feed", visibility = "public" })
  sssn.registry:register_channel(feed.info)
  sssn.registry:register_system(self:descriptor())
  print("bg registered")
end
function s:step() end
return s
]]

-- Specs ---------------------------------------------------------------------------------

describe("two hosts on one etcd", function()
  local TTL = 3 -- etcd's shortest lease is about 2 s

  local function start_two()
    local c = etcd.start { members = 1 }
    local g = group()
    local a = g.host("A", c.url, { g.script("service", SERVICE, { TTL = TTL }) })
    a:wait_output("service registered", 10)
    local b = g.host("B", c.url, { g.script("consumer", CONSUMER) })
    return c, a, b
  end

  it("find a system of host A from host B and read its channel", function()
    local c, a, b = start_two()

    -- B's system found A's through the registry, connected to A's channel and read it
    b:wait_output("consumer read n=", 10)
    local out = b:out()
    assert.truthy(out:find("consumer found fleet-svc writing fleet-feed\n", 1, true), out)
    assert.truthy(out:find(("consumer connected fleet-feed at %s\n"):format(a.base), 1, true), out)
    assert.truthy(out:find("consumer read n=%d+ from=A\n"), out)

    -- B's HTTP API answers with A's entries, as A's does
    for _, h in ipairs { a, b } do
      local s, sys, raw = http("GET", h.base .. "/registry/systems/fleet-svc")
      assert.are.equal(200, s, raw)
      assert.are.equal("Fleet Service", sys.system_name)
      assert.are.equal("fleet-cap", sys.services[1].name)
      local s2, ch, raw2 = http("GET", h.base .. "/registry/channels/fleet-feed")
      assert.are.equal(200, s2, raw2)
      assert.are.equal(a.base, ch.endpoint)
      local s3, list, raw3 = http("GET", h.base .. "/registry/systems?capability=fleet-cap")
      assert.are.equal(200, s3, raw3)
      assert.are.equal(1, #list, raw3)
    end

    -- etcd holds them as JSON under the prefix, on a lease, with their registrant and TTL
    for _, e in ipairs { { "systems", "fleet-svc" }, { "channels", "fleet-feed" } } do
      local v, kv = in_etcd(c, e[1], e[2])
      assert.truthy(v, ("no /sssn/%s/%s in etcd"):format(e[1], e[2]))
      assert.is_true(kv.lease ~= 0, "the key has no lease")
      assert.matches("/fleet%-svc$", v.registrant)
      assert.is_true(v.expires_at > now() and v.expires_at <= now() + TTL + 1, tostring(v.expires_at))
    end
    assert.is_true(a:alive() and b:alive(), logs(a, b))
  end)

  it("say at start-up where their registry is", function()
    local c = etcd.start { members = 1 }
    local g = group()
    local a = g.host("A", c.url, { g.script("idle", IDLE) })
    local b = g.host("B", c.url, { g.script("idle", IDLE) }, { "--etcd-prefix", "/other" })
    a:wait_err(("registry: etcd at %s (prefix /sssn)"):format(c.endpoints), 5)
    b:wait_err(("registry: etcd at %s (prefix /other)"):format(c.endpoints), 5)
  end)

  it("keep each entry in etcd as its info (what GET answers), owner and expiry", function()
    local c, a = start_two()
    for _, e in ipairs { { "systems", "fleet-svc", "system_id" }, { "channels", "fleet-feed", "id" } } do
      local s, entry, raw = http("GET", ("%s/registry/%s/%s"):format(a.base, e[1], e[2]))
      assert.are.equal(200, s, raw)
      local v = in_etcd(c, e[1], e[2])
      local where = ("/sssn/%s/%s: %s"):format(e[1], e[2], encode(v))
      assert.are.equal(e[2], v.info[e[3]], where)
      for k, want in pairs(entry) do
        if k ~= "expires_at" then assert.are.same(want, v.info[k], k .. " in " .. where) end
      end
      -- the same expiry as the GET (unless a refresh came in between), the TTL asked for
      assert.is_true(math.abs(entry.expires_at - v.expires_at) < 0.01 or v.expires_at > entry.expires_at, where)
      assert.are.equal(TTL, v.ttl, where)
      assert.matches("^%x+/fleet%-svc$", v.registrant, where)
      assert.are.equal(e[1] == "channels" and a.base or sssn.null, v.endpoint, where)
    end
  end)

  it("lose host A's entries at once when A stops cleanly", function()
    local c = etcd.start { members = 1 }
    local g = group()
    -- a long TTL: what goes, goes because A deregistered it
    local a = g.host("A", c.url, { g.script("service", SERVICE, { TTL = 60 }) })
    a:wait_output("service registered", 10)
    local b = g.host("B", c.url, { g.script("idle", IDLE) })
    assert.is_true(testing.eventually(10, function() return get_status(b, "systems", "fleet-svc") == 200 end))
    a:signal("TERM")
    assert.are.equal(0, a:wait_exit(10), logs(a))
    local gone = testing.eventually(5, function()
      return get_status(b, "systems", "fleet-svc") == 404 and get_status(b, "channels", "fleet-feed") == 404
        and not in_etcd(c, "systems", "fleet-svc") and not in_etcd(c, "channels", "fleet-feed")
    end, 0.05)
    assert.is_true(gone, "A's entries outlived its clean stop\n" .. logs(a, b))
  end)

  it("lose host A's entries after their TTL when A is killed with kill -9, not before", function()
    local c, a, b = start_two()
    testing.eventually(10, function() return get_status(b, "systems", "fleet-svc") == 200 end)
    a:signal("KILL")
    assert.is_truthy(a:wait_exit(5))
    -- when each entry's TTL ends, as B sees it right after the kill (A refreshed it last)
    local expires = {}
    for _, e in ipairs { { "systems", "fleet-svc" }, { "channels", "fleet-feed" } } do
      local s, entry, raw = http("GET", ("%s/registry/%s/%s"):format(b.base, e[1], e[2]))
      assert.are.equal(200, s, raw)
      expires[e[2]] = { kind = e[1], at = entry.expires_at }
      assert.is_true(entry.expires_at > now(), "already expired at the kill: " .. raw)
    end
    -- B lists each entry until its expires_at (a quarter second allowed for the polls), then no more
    local gone_at = {}
    local last = math.max(expires["fleet-svc"].at, expires["fleet-feed"].at)
    testing.eventually(last - now() + TTL + 2, function()
      for id, e in pairs(expires) do
        if not gone_at[id] and get_status(b, e.kind, id) == 404 then gone_at[id] = now() end
      end
      return gone_at["fleet-svc"] and gone_at["fleet-feed"]
    end, 0.05)
    for id, e in pairs(expires) do
      assert.truthy(gone_at[id], ("%s still listed on B %d s after its expires_at\n%s"):format(id, TTL + 2, logs(a, b)))
      assert.is_true(gone_at[id] >= e.at - 0.25,
        ("%s went from B %.2f s before its TTL ended\n%s"):format(id, e.at - gone_at[id], logs(a, b)))
    end
    -- and etcd deletes the keys when A's lease lapses (TTL after A's last keep-alive)
    local gone = testing.eventually(TTL + 5, function()
      return not in_etcd(c, "systems", "fleet-svc") and not in_etcd(c, "channels", "fleet-feed")
    end, 0.1)
    assert.is_true(gone, "A's keys are still in etcd")
    local s, list = http("GET", b.base .. "/registry/systems?capability=fleet-cap")
    assert.are.equal(200, s)
    assert.are.same({}, list)
    assert.is_true(b:alive(), logs(b))
  end)
end)

describe("a three-member etcd cluster", function()
  it("loses its leader to kill -9 while two hosts register and query: every acknowledged registration stays", function()
    local c = etcd.start { members = 3 }
    local g = group()
    -- the hosts try the leader first, so its loss is theirs too
    local url = c:url_from(c:leader())
    local a = g.host("A", url, { g.script("idle", IDLE) })
    local b = g.host("B", url, { g.script("idle", IDLE) })
    local pair = { { a, b }, { b, a } }

    -- a round every 50 ms, each not waiting for the last: each host registers one channel and
    -- lists the others; the leader dies just after a round's requests went out, and the rounds
    -- go on through the election (their requests wait while there is no leader)
    local ROUNDS, KILL_AT, EVERY = 40, 6, 0.05
    local acked, refused, queries_failed = {}, {}, {}
    local victim, slowest = nil, 0
    local calls = {}
    for r = 1, ROUNDS do
      if r == KILL_AT then victim = c:leader() end
      for _, hb in ipairs(pair) do
        local h, other = hb[1], hb[2]
        local id = ("ha-%s-%d"):format(h.name, r)
        calls[#calls + 1] = { id = id, round = r, h = h, other = other, call = testing.http_start("PUT",
          ("%s/registry/channels/%s?ttl=120"):format(h.base, id), { body = channel_body(id), timeout = 30 }) }
        calls[#calls + 1] = { query = true, round = r, h = h, call = testing.http_start("GET",
          h.base .. "/registry/channels?name=fleet%20ha-", { timeout = 30 }) }
      end
      if r == KILL_AT then c:kill(victim) end -- those requests are in flight
      testing.run_for(EVERY)
    end
    for _, k in ipairs(calls) do
      local status, body, secs = k.call:wait()
      if k.query then
        if status ~= 200 then queries_failed[#queries_failed + 1] = ("%s round %d: %s %s"):format(k.h.name, k.round,
          tostring(status), tostring(body)) end
      else
        if k.round > KILL_AT then slowest = math.max(slowest, secs or 30) end
        if status == 200 then
          acked[k.id] = k.other
        else
          refused[#refused + 1] = { id = k.id, round = k.round, status = status, body = body }
        end
      end
    end
    assert.is_true(a:alive() and b:alive(), logs(a, b))
    assert.are_not.equal(victim, c:leader())

    -- queries were answered throughout (from each host's cache)
    assert.are.same({}, queries_failed)
    -- every registration made after the leader died was acknowledged, on both hosts: they
    -- waited out the election (about a second here; a host retries for longer)
    for _, f in ipairs(refused) do
      assert.is_true(f.round <= KILL_AT, ("%s (round %d, after the kill; slowest %.2f s) got %s %s\n%s"):format(
        f.id, f.round, slowest, tostring(f.status), tostring(f.body), logs(a, b)))
    end
    local after = 0
    for id in pairs(acked) do
      if tonumber(id:match("%d+$")) > KILL_AT then after = after + 1 end
    end
    assert.are.equal(2 * (ROUNDS - KILL_AT), after)

    -- every acknowledged registration is visible from the other host, and is in etcd
    local missing
    local all = testing.eventually(10, function()
      missing = {}
      for id, other in pairs(acked) do
        if get_status(other, "channels", id) ~= 200 then missing[#missing + 1] = other.name .. ":" .. id end
      end
      return #missing == 0
    end, 0.1)
    assert.is_true(all, "acknowledged but not visible: " .. table.concat(missing, " ") .. "\n" .. logs(a, b))
    for id in pairs(acked) do
      assert.truthy(in_etcd(c, "channels", id), id .. " acknowledged but not in etcd")
    end
    -- both still serve, and register
    for _, h in ipairs { a, b } do
      assert.are.equal(200, (http("GET", h.base .. "/health")))
      assert.are.equal(200, put_channel(h, "ha-final-" .. h.name))
    end
  end)
end)

describe("blue/green on etcd: entries belong to the host instance that made them", function()
  -- W watches (an idle host on the same etcd); Blue starts, then Green takes its entries over
  local function deploy()
    local c = etcd.start { members = 1 }
    local g = group()
    local w = g.host("W", c.url, { g.script("idle", IDLE) })
    local script = g.script("bluegreen", BLUEGREEN)
    local blue = g.host("blue", c.url, { script })
    blue:wait_output("bg registered", 10)
    local green = g.host("green", c.url, { script })
    green:wait_output("bg registered", 10)
    return c, w, blue, green
  end

  -- the endpoint W lists for both entries, when they agree
  local function listed(w)
    local s, ch = http("GET", w.base .. "/registry/channels/bg-feed")
    local ss, sys = http("GET", w.base .. "/registry/systems/bg-svc")
    return s == 200 and ss == 200 and sys and ch.endpoint or nil
  end

  it("keep the new instance listed throughout while the old one stops", function()
    local c, w, blue, green = deploy()
    assert.are.equal(green.base, testing.eventually(5, function() return listed(w) == green.base and green.base end)
      or listed(w), logs(blue, green))
    -- blue hears of the takeover (from its watch) and does not fight it
    assert.truthy(testing.eventually(5, function() return blue:err():find("taken over", 1, true) end), logs(blue))
    -- blue stops: green's entries never leave, not even for a moment (sampled every ~20 ms
    -- until 2 s after blue exited; 15 s at most)
    blue:signal("TERM")
    local gaps, deadline, limit = {}, nil, now() + 15
    while true do
      local at = listed(w)
      if at ~= green.base then gaps[#gaps + 1] = tostring(at) end
      if not deadline and not blue:alive() then deadline = now() + 2 end
      if (deadline and now() > deadline) or now() > limit then break end
      testing.run_for(0.02)
    end
    assert.are.equal(0, blue:status(), logs(blue))
    assert.are.same({}, gaps)
    local ch = in_etcd(c, "channels", "bg-feed")
    assert.truthy(ch, "bg-feed is gone from etcd")
    assert.are.equal(green.base, ch.endpoint)
  end)

  it("list the old instance again when the new one stops first", function()
    local _, w, blue, green = deploy()
    assert.truthy(testing.eventually(5, function() return listed(w) == green.base end), logs(blue, green))
    assert.truthy(testing.eventually(5, function() return blue:err():find("taken over", 1, true) end), logs(blue))
    green:signal("TERM")
    assert.are.equal(0, green:wait_exit(10), logs(green))
    local back = testing.eventually(5, function() return listed(w) == blue.base end, 0.02)
    assert.truthy(back, "blue is not listed again\n" .. logs(blue, w))
    -- and it stays: blue keeps it from now on (for 1.5 s, the loop running)
    testing.run_for(1.5)
    assert.are.equal(blue.base, listed(w))
  end)
end)

describe("compaction under a watch", function()
  it("host B still sees new registrations after the store was compacted", function()
    local c = etcd.start { members = 1 }
    local g = group()
    local a = g.host("A", c.url, { g.script("idle", IDLE) })
    local b = g.host("B", c.url, { g.script("idle", IDLE) })
    for i = 1, 5 do assert.are.equal(200, put_channel(a, "cw-" .. i)) end
    assert.is_true(testing.eventually(10, function() return get_status(b, "channels", "cw-5") == 200 end))
    -- revisions past B's, some under the prefix (a refresh of one entry), then compacted away
    for _ = 1, 20 do assert.are.equal(200, put_channel(a, "cw-1")) end
    c:compact()
    for i = 6, 10 do assert.are.equal(200, put_channel(a, "cw-" .. i)) end
    assert.are.equal(200, (http("DELETE", a.base .. "/registry/channels/cw-2")))
    local ok = testing.eventually(10, function()
      return get_status(b, "channels", "cw-10") == 200 and get_status(b, "channels", "cw-2") == 404
    end, 0.05)
    assert.is_true(ok, logs(a, b))
    local s, list, raw = http("GET", b.base .. "/registry/channels?name=fleet%20cw-")
    assert.are.equal(200, s, raw)
    assert.are.equal(9, #list, raw)
  end)

  it("host B resumes a watch whose revision was compacted, by reading everything again", function()
    local c = etcd.start { members = 1 }
    local g = group()
    local a = g.host("A", c.url, { g.script("idle", IDLE) })
    local b = g.host("B", c.url, { g.script("idle", IDLE) })
    for i = 1, 3 do assert.are.equal(200, put_channel(a, "cz-" .. i)) end
    assert.is_true(testing.eventually(10, function() return get_status(b, "channels", "cz-3") == 200 end))
    -- B frozen; its watch connection broken by a restart of etcd; changes it cannot see
    -- happen and are compacted away; then B runs again and resumes from its old revision
    b:signal("STOP")
    finally(function() b:signal("CONT") end)
    c:kill(1)
    c:restart(1)
    assert.are.equal(200, put_channel(a, "cz-4", 120, 20))
    assert.are.equal(200, (http("DELETE", a.base .. "/registry/channels/cz-1", { timeout = 20 })))
    for _ = 1, 10 do assert.are.equal(200, put_channel(a, "cz-2")) end
    c:compact()
    b:signal("CONT")
    local ok = testing.eventually(15, function()
      return get_status(b, "channels", "cz-4") == 200 and get_status(b, "channels", "cz-1") == 404
    end, 0.05)
    assert.is_true(ok, "B missed what happened while its revision was compacted\n" .. logs(a, b))
    -- (B did resume from a compacted revision: it says so)
    assert.truthy(b:err():find("compacted", 1, true), logs(b))
    assert.are.equal(200, get_status(b, "channels", "cz-3"))
    -- and it keeps following: a registration after the re-read arrives too
    assert.are.equal(200, put_channel(a, "cz-5"))
    assert.is_true(testing.eventually(10, function() return get_status(b, "channels", "cz-5") == 200 end),
      logs(a, b))
  end)
end)

describe("etcd stopped and started again under running hosts", function()
  local TTL = 3

  it("the hosts keep answering from their caches and recover by themselves", function()
    local c = etcd.start { members = 1 }
    local g = group()
    local a = g.host("A", c.url, { g.script("kept", KEPT, { TTL = TTL }) })
    local b = g.host("B", c.url, { g.script("idle", IDLE) })
    a:wait_output("kept registered", 10)
    assert.are.equal(200, put_channel(a, "rs-before"))
    assert.is_true(testing.eventually(10, function() return get_status(b, "channels", "rs-before") == 200 end))

    c:kill(1, "TERM")
    -- queries are answered from the cache while etcd is away
    assert.are.equal(200, get_status(a, "channels", "rs-before"))
    assert.are.equal(200, get_status(b, "channels", "rs-before"))
    -- a registration cannot be committed, so it is not acknowledged
    local s = put_channel(a, "rs-down", 120, 3)
    assert.are_not.equal(200, s)
    assert.is_true(a:alive() and b:alive(), logs(a, b))

    c:restart(1)
    -- registrations made after the restart go through (A retries by itself) and B sees them
    local acked = testing.eventually(20, function() return put_channel(a, "rs-after", 120, 5) == 200 end, 0.2)
    assert.is_true(acked, "A does not register again after etcd came back\n" .. logs(a, b))
    assert.is_true(testing.eventually(10, function() return get_status(b, "channels", "rs-after") == 200 end),
      "B does not see what A registered after etcd came back\n" .. logs(a, b))
    assert.truthy(in_etcd(c, "channels", "rs-after"))
    assert.are.equal(200, get_status(b, "channels", "rs-before"))
    -- A's own system's registration (ttl 3) is back, kept alive again: still there two TTLs later
    assert.is_true(testing.eventually(10, function() return get_status(b, "systems", "kept-svc") == 200 end),
      "kept-svc is not registered again after etcd came back\n" .. logs(a, b))
    testing.run_for(2 * TTL)
    assert.are.equal(200, get_status(b, "systems", "kept-svc"), logs(a, b))
    assert.truthy(in_etcd(c, "systems", "kept-svc"))
  end)

  -- waits until h's /health says etcd is `want`; returns what it says last
  local function health_becomes(h, want, seconds)
    local function says()
      local _, body = http("GET", h.base .. "/health")
      return body and body.etcd
    end
    return testing.eventually(seconds, function() return says() == want and want end, 0.2) or says()
  end

  it("say in /health whether etcd answers, from the start", function()
    local c = etcd.start { members = 1 }
    local g = group()
    local a = g.host("A", c.url, { g.script("idle", IDLE) }) -- that has not used its registry yet
    assert.are.equal("ok", health_becomes(a, "ok", 5))
    c:kill(1)
    assert.are.equal("unreachable", health_becomes(a, "unreachable", 15), logs(a))
    c:restart(1)
    assert.are.equal("ok", health_becomes(a, "ok", 15), logs(a))
  end)

  it("mark their answers stale while etcd is away", function()
    local c = etcd.start { members = 1 }
    local g = group()
    local a = g.host("A", c.url, { g.script("idle", IDLE) })
    assert.are.equal(200, put_channel(a, "st-1"))
    local _, before, raw0 = http("GET", a.base .. "/registry/channels/st-1")
    assert.is_nil(before.stale, raw0)
    c:kill(1)
    assert.are.equal("unreachable", health_becomes(a, "unreachable", 15), logs(a))
    local s, entry, raw = http("GET", a.base .. "/registry/channels/st-1")
    assert.are.equal(200, s, raw)
    assert.is_true(entry.stale, raw)
    -- lists stay plain arrays (for the clients that read them), still answered from the cache
    local s2, list, raw2 = http("GET", a.base .. "/registry/channels?name=st-")
    assert.are.equal(200, s2, raw2)
    assert.are.equal(1, #list, raw2)
    assert.are.equal("st-1", list[1].id)
    c:restart(1)
    assert.is_true(testing.eventually(15, function()
      local _, e = http("GET", a.base .. "/registry/channels/st-1")
      return e and e.stale == nil
    end, 0.2), logs(a))
  end)
end)
