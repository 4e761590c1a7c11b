-- The TTL service registry as systems use it through sssn.registry: registering, finding,
-- expiry, maintenance, keep-alive, drop-on-stop, events and argument errors. Runs inside the
-- host (`sssn-host test`); time moves only through the test clock.
local sssn = require "sssn"
local core = require "sssn.core"
local testing = require "sssn.testing"

local registry = sssn.registry

-- Systems and spawned handles made by a test, stopped after it.
local made = {}

local function system(prefix)
  local s = testing.system(testing.uid(prefix))
  made[#made + 1] = s
  return s
end

local function spawn(opts)
  local h = testing.spawn(opts)
  made[#made + 1] = h
  return h
end

-- Follows the "registry" channel from now on; events(id) returns the events about `id` (or all
-- when id is nil) that arrived and were not returned before, as {event, kind, id, entry} tables.
local function follow_events()
  local r = system("events")
  r:connect("registry")
  r:read_channel("registry", { after = sssn.channel_stats("registry").last_seq })
  local pending = {}
  return function(id)
    repeat
      local batch = r:read_channel("registry", { limit = 1000 })
      for _, m in ipairs(batch) do pending[#pending + 1] = m.content.data end
    until #batch == 0
    local out, rest = {}, {}
    for _, ev in ipairs(pending) do
      if id == nil or ev.id == id then out[#out + 1] = ev else rest[#rest + 1] = ev end
    end
    pending = rest
    return out
  end
end

local function names(events)
  local out = {}
  for i, ev in ipairs(events) do out[i] = ev.event end
  return out
end

-- The set of ids in a list of ChannelInfos (field "id") or descriptors ("system_id").
local function id_set(list)
  local set = {}
  for _, e in ipairs(list) do set[e.id or e.system_id] = true end
  return set
end

local function count_of(list, id)
  local n = 0
  for _, e in ipairs(list) do
    if (e.id or e.system_id) == id then n = n + 1 end
  end
  return n
end

local error_of = testing.error_of

local assert_mentions = testing.assert_mentions

-- Source of a system that registers itself and two channels in setup.
local function registering_source(sys_id, service, kept_ch, unkept_ch, ttl)
  return ([[
local sssn = require "sssn"
local s = sssn.system { id = %q, name = "Registering System", services = { { name = %q, description = "test" } } }
function s:setup()
  self:add_channel(sssn.broadcast { id = %q, name = "Kept Feed" })
  sssn.registry:register_channel(self:connect(%q), %s)
  sssn.registry:register_channel({ id = %q, name = "Unkept" }, %s, { keepalive = false })
  sssn.registry:register_system(self:descriptor(), %s)
end
return s
]]):format(sys_id, service, kept_ch, kept_ch, ttl, unkept_ch, ttl, ttl)
end

-- Source of a system that registers channel `ch` (info with `endpoint`) in setup, and after
-- `later` seconds (if given) deregisters it, publishing what deregister_channel returned on
-- its channel `<sys_id>-out` as {ok, why}.
local function claimant_source(sys_id, ch, endpoint, ttl, opts)
  opts = opts or {}
  return ([[
local sssn = require "sssn"
local s = sssn.system { id = %q }
function s:setup()
  self:add_channel(sssn.broadcast { id = %q })
  sssn.registry:register_channel({ id = %q, name = "Shared", endpoint = %q }, %s, { keepalive = %s })
  local later = %s
  if later then
    sssn.spawn(function()
      sssn.sleep(later)
      local ok, why = sssn.registry:deregister_channel(%q)
      self:write_channel(%q, { ok = ok, why = why or "" })
    end)
  end
end
return s
]]):format(sys_id, sys_id .. "-out", ch, endpoint, ttl, tostring(opts.keepalive ~= false),
    tostring(opts.deregister_after), ch, sys_id .. "-out")
end

local function registrant_of(sys_id) return core.instance_id() .. "/" .. sys_id end

describe("the registry", function()
  before_each(function()
    testing.freeze()
  end)

  after_each(function()
    for i = #made, 1, -1 do pcall(made[i].stop, made[i]) end
    made = {}
    testing.real()
  end)

  describe("registering", function()
    it("returns a channel from get_channel with expires_at = now + ttl", function()
      local owner = system("owner")
      local ch = owner:add_channel(sssn.broadcast { id = testing.uid("feed"), name = "Temperature Feed",
        description = "live readings", visibility = "private" })
      local now = sssn.now()
      local put = registry:register_channel(ch.info, 42)
      assert.are.equal(now + 42, put.expires_at)
      local got = registry:get_channel(ch.id)
      assert.is_table(got)
      assert.are.equal(ch.id, got.id)
      assert.are.equal("Temperature Feed", got.name)
      assert.are.equal("live readings", got.description)
      assert.are.equal("private", got.visibility)
      assert.are.equal("broadcast", got.kind)
      assert.are.equal(owner.id, got.owner)
      assert.are.equal(now + 42, got.expires_at)
    end)

    it("returns a system from get_system with expires_at = now + ttl", function()
      local id = testing.uid("svc")
      local now = sssn.now()
      registry:register_system({ system_id = id, system_name = "Service",
        services = { { name = "temperature", description = "readings" } } }, 7)
      local got = registry:get_system(id)
      assert.is_table(got)
      assert.are.equal(id, got.system_id)
      assert.are.equal("Service", got.system_name)
      assert.are.equal("temperature", got.services[1].name)
      assert.are.equal("readings", got.services[1].description)
      assert.are.equal(now + 7, got.expires_at)
    end)

    it("returns nothing for ids never registered", function()
      assert.is_nil(registry:get_channel(testing.uid("nothing")))
      assert.is_nil(registry:get_system(testing.uid("nobody")))
    end)

    it("replaces an entry registered again and refreshes its expiry, with no duplicate", function()
      local id = testing.uid("feed")
      registry:register_channel({ id = id, name = "First Name" }, 10)
      testing.advance(6)
      registry:register_channel({ id = id, name = "Second Name" }, 10)
      local got = registry:get_channel(id)
      assert.are.equal("Second Name", got.name)
      assert.are.equal(sssn.now() + 10, got.expires_at)
      assert.are.equal(1, count_of(registry:find_channels(), id))
      assert.are.equal(1, count_of(registry:find_channels { name = "name" }, id))
      -- alive past the first registration's expiry
      testing.advance(6)
      assert.is_table(registry:get_channel(id))
    end)

    it("keeps one system entry when a system registers again", function()
      local id = testing.uid("svc")
      registry:register_system({ system_id = id, services = { { name = "dup-cap" } } }, 10)
      registry:register_system({ system_id = id, services = { { name = "dup-cap" } } }, 10)
      assert.are.equal(1, count_of(registry:find_systems(), id))
      assert.are.equal(1, count_of(registry:find_systems { capability = "dup-cap" }, id))
    end)

    it("accepts the descriptor of a running system", function()
      local sys_id, feed = testing.uid("described"), testing.uid("described-feed")
      local h = spawn { id = sys_id, source = ([[
local sssn = require "sssn"
local s = sssn.system { id = %q, name = "Described", description = "has a descriptor",
  services = { { name = "describing", description = "it describes", parameters = { unit = "C" } } } }
function s:setup()
  self:add_channel(sssn.broadcast { id = %q })
  self:connect("registry")
  sssn.registry:register_system(self:descriptor(), 30)
end
return s
]]):format(sys_id, feed) }
      assert.are.equal(0, h:stats().errors)
      local d = registry:get_system(sys_id)
      assert.is_table(d)
      assert.are.equal(sys_id, d.system_id)
      assert.are.equal("Described", d.system_name)
      assert.are.equal("has a descriptor", d.description)
      assert.are.same({ { name = "describing", description = "it describes", parameters = { unit = "C" } } },
        d.services)
      assert.are.same({ feed }, d.channels_write)
      assert.are.same({ "registry" }, d.channels_read)
    end)

    it("accepts a plain descriptor table of the same shape", function()
      local id = testing.uid("plain")
      registry:register_system({ system_id = id, services = { { name = "plain-cap" } },
        channels_read = { "a" }, channels_write = {} }, 30)
      local d = registry:get_system(id)
      assert.are.equal(id, d.system_id)
      assert.are.equal(id, d.system_name)
      assert.are.equal("", d.description)
      assert.are.equal("plain-cap", d.services[1].name)
      assert.are.same({ "a" }, d.channels_read)
      assert.are.same({}, d.channels_write)
      assert.is_true(id_set(registry:find_systems { capability = "plain-cap" })[id])
    end)

    it("accepts the descriptor of a spec's own system object", function()
      local s = system("self-described")
      registry:register_system(s:descriptor(), 30)
      assert.are.equal(s.id, registry:get_system(s.id).system_id)
    end)
  end)

  describe("expiry", function()
    it("hides an entry once its TTL has passed, before maintenance purges it", function()
      local events = follow_events()
      local id = testing.uid("short")
      registry:register_channel({ id = id }, 5)
      testing.advance(4.5)
      assert.is_table(registry:get_channel(id))
      assert.is_true(id_set(registry:find_channels())[id])
      testing.advance(0.5) -- now == expires_at: no longer live
      assert.is_nil(registry:get_channel(id))
      assert.is_nil(id_set(registry:find_channels())[id])
      -- still held (no "expired" event yet) but never returned
      assert.are.same({ "registered" }, names(events(id)))
      assert.is_true(registry:maintain() >= 1)
      assert.are.same({ "expired" }, names(events(id)))
    end)

    it("hides an expired system from get_system and from capability searches", function()
      local id, cap = testing.uid("svc"), testing.uid("cap")
      registry:register_system({ system_id = id, services = { { name = cap } } }, 3)
      assert.are.equal(1, #registry:find_systems { capability = cap })
      testing.advance(3)
      assert.is_nil(registry:get_system(id))
      assert.are.same({}, registry:find_systems { capability = cap })
      assert.is_nil(id_set(registry:find_systems())[id])
    end)

    it("purges expired entries by itself every --maintenance seconds", function()
      local events = follow_events()
      local id = testing.uid("purged")
      registry:register_channel({ id = id }, 5)
      local held = registry:counts()
      -- past the TTL and then a whole default maintenance interval (30 s): wherever the
      -- maintenance timer's phase is, a run after the expiry falls in this span
      testing.advance(5 + 31)
      local after, _, expired_total = registry:counts()
      assert.is_true(after < held, ("channels held: %d before, %d after"):format(held, after))
      assert.is_true(expired_total >= 1)
      assert.are.same({ "registered", "expired" }, names(events(id)))
    end)

    it("registers anew an entry whose TTL passed, reporting the old one as expired", function()
      local events = follow_events()
      local id = testing.uid("again")
      registry:register_channel({ id = id }, 2)
      testing.advance(3)
      registry:register_channel({ id = id }, 2)
      assert.is_table(registry:get_channel(id))
      assert.are.same({ "registered", "expired", "registered" }, names(events(id)))
    end)

    it("stays alive while it is re-registered as a heartbeat", function()
      local id = testing.uid("heartbeat")
      registry:register_channel({ id = id }, 3, { keepalive = false })
      for _ = 1, 5 do
        testing.advance(2)
        assert.is_table(registry:get_channel(id))
        registry:register_channel({ id = id }, 3, { keepalive = false })
      end
      testing.advance(2.9)
      assert.is_table(registry:get_channel(id))
      testing.advance(0.1)
      assert.is_nil(registry:get_channel(id))
    end)

    it("does not keep alive what the spec registers outside any system", function()
      local id = testing.uid("unowned")
      registry:register_channel({ id = id }, 3)
      testing.advance(3)
      assert.is_nil(registry:get_channel(id))
    end)
  end)

  describe("finding", function()
    it("matches capabilities exactly on service names", function()
      local id = testing.uid("thermo")
      local cap = testing.uid("temperature")
      registry:register_system({ system_id = id, services = { { name = cap }, { name = "humidity-x" } } }, 30)
      assert.is_true(id_set(registry:find_systems { capability = cap })[id])
      assert.is_true(id_set(registry:find_systems { capability = "humidity-x" })[id])
      assert.is_nil(id_set(registry:find_systems { capability = "temp" })[id])
      assert.is_nil(id_set(registry:find_systems { capability = "temperature" })[id])
      assert.is_nil(id_set(registry:find_systems { capability = cap:upper() })[id])
      assert.is_nil(id_set(registry:find_systems { capability = cap .. "s" })[id])
      assert.is_true(id_set(registry:find_systems())[id])
    end)

    it("stops finding a system by a capability it no longer offers", function()
      local id = testing.uid("changing")
      local old_cap, new_cap = testing.uid("ocr"), testing.uid("resize")
      registry:register_system({ system_id = id, services = { { name = old_cap } } }, 30)
      assert.is_true(id_set(registry:find_systems { capability = old_cap })[id])
      registry:register_system({ system_id = id, services = { { name = new_cap } } }, 30)
      assert.are.same({}, registry:find_systems { capability = old_cap })
      assert.is_true(id_set(registry:find_systems { capability = new_cap })[id])
    end)

    it("keeps other systems under a capability when one of them changes", function()
      local cap = testing.uid("shared-cap")
      local a, b, c = testing.uid("a"), testing.uid("b"), testing.uid("c")
      for _, id in ipairs { a, b, c } do
        registry:register_system({ system_id = id, services = { { name = cap } } }, 30)
      end
      registry:register_system({ system_id = a, services = { { name = "something-else" } } }, 30)
      registry:deregister_system(b)
      local found = registry:find_systems { capability = cap }
      assert.are.equal(1, #found)
      assert.are.equal(c, found[1].system_id)
    end)

    it("filters channels by visibility", function()
      local pub, priv = testing.uid("pub"), testing.uid("priv")
      registry:register_channel({ id = pub, visibility = "public" }, 30)
      registry:register_channel({ id = priv, visibility = "private" }, 30)
      local public = id_set(registry:find_channels { visibility = "public" })
      local private = id_set(registry:find_channels { visibility = "private" })
      local all = id_set(registry:find_channels())
      assert.is_true(public[pub])
      assert.is_nil(public[priv])
      assert.is_true(private[priv])
      assert.is_nil(private[pub])
      assert.is_true(all[pub] and all[priv])
      assert.are.equal("public", registry:get_channel(pub).visibility)
    end)

    it("treats channels as public unless told otherwise", function()
      local id = testing.uid("default-vis")
      registry:register_channel({ id = id }, 30)
      assert.are.equal("public", registry:get_channel(id).visibility)
      assert.is_true(id_set(registry:find_channels { visibility = "public" })[id])
    end)

    it("finds channels by a case-insensitive substring of their name", function()
      local tag = testing.uid("Qx")
      local id = testing.uid("feed")
      registry:register_channel({ id = id, name = "Temperature Feed " .. tag }, 30)
      assert.is_true(id_set(registry:find_channels { name = "temperature feed " .. tag:lower() })[id])
      assert.is_true(id_set(registry:find_channels { name = ("FEED " .. tag):upper() })[id])
      assert.is_true(id_set(registry:find_channels { name = "ature fe" })[id])
      assert.is_nil(id_set(registry:find_channels { name = "pressure " .. tag })[id])
      assert.is_true(id_set(registry:find_channels { name = tag, visibility = "public" })[id])
      assert.is_nil(id_set(registry:find_channels { name = tag, visibility = "private" })[id])
    end)

    it("lists channels sorted by id", function()
      local tag = testing.uid("sorted")
      for _, suffix in ipairs { "c", "a", "b" } do
        registry:register_channel({ id = tag .. "-" .. suffix, name = tag }, 30)
      end
      local found = registry:find_channels { name = tag }
      assert.are.same({ tag .. "-a", tag .. "-b", tag .. "-c" },
        { found[1].id, found[2].id, found[3].id })
    end)
  end)

  describe("deregistering", function()
    it("removes an entry at once", function()
      local ch, sys = testing.uid("gone"), testing.uid("gone-sys")
      registry:register_channel({ id = ch }, 30)
      registry:register_system({ system_id = sys, services = { { name = "gone-cap" } } }, 30)
      assert.is_true(registry:deregister_channel(ch))
      assert.is_true(registry:deregister_system(sys))
      assert.is_nil(registry:get_channel(ch))
      assert.is_nil(registry:get_system(sys))
      assert.is_nil(id_set(registry:find_systems { capability = "gone-cap" })[sys])
      assert.is_false(registry:deregister_channel(ch))
    end)
  end)

  describe("with running systems", function()
    it("keeps a running system's registrations alive past their TTL", function()
      local sys_id, kept, unkept = testing.uid("kept"), testing.uid("kept-feed"), testing.uid("unkept")
      local h = spawn { id = sys_id, source = registering_source(sys_id, "keepalive-demo", kept, unkept, 3) }
      assert.are.equal(0, h:stats().errors)
      assert.is_table(registry:get_system(sys_id))
      assert.is_table(registry:get_channel(kept))
      for _ = 1, 20 do
        testing.advance(0.5)
        assert.is_table(registry:get_system(sys_id), ("system gone at +%g s"):format(sssn.now() - 1700000000))
        assert.is_table(registry:get_channel(kept))
      end
      assert.are.equal(sys_id, registry:get_channel(kept).owner)
      assert.is_true(registry:get_system(sys_id).expires_at > sssn.now())
    end)

    it("lets a registration made with keepalive = false expire", function()
      local sys_id, kept, unkept = testing.uid("kept"), testing.uid("kept-feed"), testing.uid("unkept")
      spawn { id = sys_id, source = registering_source(sys_id, "keepalive-demo", kept, unkept, 3) }
      assert.is_table(registry:get_channel(unkept))
      testing.advance(2.5)
      assert.is_table(registry:get_channel(unkept))
      testing.advance(0.5)
      assert.is_nil(registry:get_channel(unkept))
      assert.is_table(registry:get_channel(kept))
    end)

    it("reports keep-alive refreshes as events", function()
      local events = follow_events()
      local sys_id, kept, unkept = testing.uid("kept"), testing.uid("kept-feed"), testing.uid("unkept")
      spawn { id = sys_id, source = registering_source(sys_id, "keepalive-demo", kept, unkept, 3) }
      testing.advance(5)
      local seen = names(events(sys_id))
      assert.are.equal("registered", seen[1])
      assert.are.equal("refreshed", seen[2])
      assert.is_nil(table.concat(seen, ","):find("expired"))
    end)

    it("deregisters what a system registered when it stops", function()
      local events = follow_events()
      local sys_id, kept, unkept = testing.uid("stopping"), testing.uid("stopping-feed"), testing.uid("unkept")
      local h = spawn { id = sys_id, source = registering_source(sys_id, "stop-demo", kept, unkept, 30) }
      assert.is_table(registry:get_system(sys_id))
      h:stop()
      assert.is_nil(registry:get_system(sys_id))
      assert.is_nil(registry:get_channel(kept))
      assert.is_nil(registry:get_channel(unkept))
      assert.is_nil(id_set(registry:find_systems { capability = "stop-demo" })[sys_id])
      assert.are.same({ "registered", "deregistered" }, names(events(sys_id)))
      assert.are.same({ "registered", "deregistered" }, names(events(kept)))
      assert.are.same({ "registered", "deregistered" }, names(events(unkept)))
    end)

    it("does not deregister on stop what another system registered since", function()
      local sys_id, kept, unkept = testing.uid("first"), testing.uid("taken-feed"), testing.uid("unkept")
      local h = spawn { id = sys_id, source = registering_source(sys_id, "takeover-demo", kept, unkept, 30) }
      -- someone else registers the same system id (a replacement instance, from outside)
      registry:register_system({ system_id = sys_id, services = { { name = "takeover-demo" } } }, 30)
      h:stop()
      assert.is_table(registry:get_system(sys_id))
    end)
  end)

  describe("ownership: a registration belongs to the instance that made it", function()
    -- blue registers `ch`, then green takes it over; returns the handles and the channel id
    local function blue_green(opts)
      opts = opts or {}
      local ch = testing.uid("shared")
      local blue_id, green_id = testing.uid("blue"), testing.uid("green")
      local blue = spawn { id = blue_id, source = claimant_source(blue_id, ch, "http://blue:1", 30, opts.blue) }
      testing.advance(opts.gap or 1)
      local green = spawn { id = green_id, source = claimant_source(green_id, ch, "http://green:2",
        opts.green_ttl or 30, opts.green) }
      return blue, green, ch
    end

    it("reports a takeover by another instance as replaced, with the old and the new entry", function()
      local events = follow_events()
      local blue, green, ch = blue_green()
      local seen = events(ch)
      assert.are.same({ "registered", "replaced" }, names(seen))
      local ev = seen[2]
      assert.are.equal("channel", ev.kind)
      assert.are.equal(registrant_of(green.id), ev.registrant)
      assert.are.equal(registrant_of(blue.id), ev.previous_registrant)
      assert.are.equal("http://green:2", ev.entry.endpoint)
      assert.are.equal("http://blue:1", ev.previous.endpoint)
      assert.are.equal(sssn.now() + 30, ev.entry.expires_at)
      assert.are.equal(registrant_of(blue.id), seen[1].registrant)
      assert.are.equal("http://green:2", registry:get_channel(ch).endpoint)
    end)

    it("keeps the new instance listed while the old one stops (blue/green deploy)", function()
      local events = follow_events()
      local blue, _, ch = blue_green()
      testing.advance(1)
      blue:stop()
      assert.are.equal("http://green:2", registry:get_channel(ch).endpoint)
      for _ = 1, 5 do
        testing.advance(1)
        assert.are.equal("http://green:2", registry:get_channel(ch).endpoint)
      end
      assert.are.same({ "registered", "replaced" }, names(events(ch)))
    end)

    it("lists the older instance again within 2 s when the newer one stops first", function()
      local events = follow_events()
      local blue, green, ch = blue_green()
      testing.advance(3)
      green:stop()
      assert.is_nil(registry:get_channel(ch))
      testing.advance(1)
      local got = registry:get_channel(ch)
      assert.is_table(got, "blue did not take its entry back within 1 s")
      assert.are.equal("http://blue:1", got.endpoint)
      local seen = events(ch)
      assert.are.same({ "registered", "replaced", "deregistered", "registered" }, names(seen))
      assert.are.equal(registrant_of(blue.id), seen[4].registrant)
      -- and it is kept alive again on its normal schedule, past its TTL
      testing.advance(40)
      assert.are.equal("http://blue:1", registry:get_channel(ch).endpoint)
    end)

    it("takes an entry back once the one that replaced it expires, before maintenance purges it", function()
      local _, _, ch = blue_green { green_ttl = 3, green = { keepalive = false } }
      testing.advance(2.5)
      assert.are.equal("http://green:2", registry:get_channel(ch).endpoint)
      testing.advance(0.5) -- green's entry expired; maintenance (every 30 s) has not run
      testing.advance(1)
      local got = registry:get_channel(ch)
      assert.is_table(got, "blue did not take its entry back after green's expired")
      assert.are.equal("http://blue:1", got.endpoint)
    end)

    it("changes nothing while the displaced instance retries", function()
      local events = follow_events()
      local _, green, ch = blue_green()
      local expires = registry:get_channel(ch).expires_at
      events(ch)
      for _ = 1, 10 do testing.advance(1) end -- ten retries of blue
      assert.are.same({}, events(ch))
      local got = registry:get_channel(ch)
      assert.are.equal("http://green:2", got.endpoint)
      assert.are.equal(expires, got.expires_at)
      -- green's own keep-alive refreshes it as usual
      testing.advance(15)
      local seen = events(ch)
      assert.are.same({ "refreshed" }, names(seen))
      assert.are.equal(registrant_of(green.id), seen[1].registrant)
    end)

    it("takes an entry over from a system when the spec (an operator) registers it", function()
      local events = follow_events()
      local sys_id, ch = testing.uid("owned"), testing.uid("taken")
      spawn { id = sys_id, source = claimant_source(sys_id, ch, "http://sys:3", 30) }
      registry:register_channel({ id = ch, endpoint = "http://operator:4" }, 10)
      local seen = events(ch)
      assert.are.same({ "registered", "replaced" }, names(seen))
      assert.are.equal(sssn.null, seen[2].registrant)
      assert.are.equal(registrant_of(sys_id), seen[2].previous_registrant)
      -- the operator's entry expires: the system takes it back
      testing.advance(10)
      testing.advance(1)
      assert.are.equal("http://sys:3", registry:get_channel(ch).endpoint)
    end)

    it("refuses a system's deregistration of an entry another instance owns, and says who", function()
      local sys_id, ch = testing.uid("leaver"), testing.uid("kept")
      local reader = system("reader")
      spawn { id = sys_id, source = claimant_source(sys_id, ch, "http://old:5", 30, { deregister_after = 5 }) }
      reader:connect(sys_id .. "-out")
      registry:register_channel({ id = ch, endpoint = "http://new:6" }, 30)
      testing.advance(5)
      local out = reader:read_channel(sys_id .. "-out")
      assert.are.equal(1, #out)
      assert.is_false(out[1].content.data.ok)
      assert_mentions(out[1].content.data.why, ch, "another registrant", "operator")
      assert.are.equal("http://new:6", registry:get_channel(ch).endpoint)
      -- it no longer tries to take it back either
      registry:deregister_channel(ch)
      testing.advance(3)
      assert.is_nil(registry:get_channel(ch))
    end)

    it("lets a system deregister its own entry", function()
      local sys_id, ch = testing.uid("own"), testing.uid("own-ch")
      local reader = system("reader")
      spawn { id = sys_id, source = claimant_source(sys_id, ch, "http://own:7", 30, { deregister_after = 1 }) }
      reader:connect(sys_id .. "-out")
      testing.advance(1)
      local out = reader:read_channel(sys_id .. "-out")
      assert.is_true(out[1].content.data.ok)
      assert.is_nil(registry:get_channel(ch))
      testing.advance(25)
      assert.is_nil(registry:get_channel(ch))
    end)

    it("tells why nothing was deregistered", function()
      local ok, why = registry:deregister_channel(testing.uid("never"))
      assert.is_false(ok)
      assert_mentions(why, "is not registered")
      local sys_ok, sys_why = registry:deregister_system(testing.uid("never-sys"))
      assert.is_false(sys_ok)
      assert_mentions(sys_why, "system", "is not registered")
    end)
  end)

  describe("events", function()
    it("reports registered, refreshed and deregistered in order on the registry channel", function()
      local events = follow_events()
      local id = testing.uid("evented")
      local now = sssn.now()
      registry:register_channel({ id = id, name = "Evented" }, 10)
      testing.advance(1)
      registry:register_channel({ id = id, name = "Evented" }, 10)
      registry:deregister_channel(id)
      local seen = events(id)
      assert.are.same({ "registered", "refreshed", "deregistered" }, names(seen))
      for _, ev in ipairs(seen) do
        assert.are.equal("channel", ev.kind)
        assert.are.equal(id, ev.id)
        assert.are.equal("Evented", ev.entry.name)
      end
      assert.are.equal(now + 10, seen[1].entry.expires_at)
      assert.are.equal(now + 11, seen[2].entry.expires_at)
    end)

    it("answers events(math.maxinteger) at once with the current index, and events(index) with what came since", function()
      local _, index = registry:events(math.maxinteger, 5)
      assert.are.equal(sssn.channel_stats("registry").last_seq, index)
      local id = testing.uid("since")
      registry:register_channel({ id = id }, 10)
      local events, next_index = registry:events(index)
      assert.are.equal(1, #events)
      assert.are.equal(id, events[1].id)
      assert.are.equal("registered", events[1].event)
      assert.are.equal(next_index, events[1].index)
      assert.are.same({}, (registry:events(next_index)))
    end)

    it("waits in events(index, wait), yielding the calling coroutine, until an event comes", function()
      local sys_id, id = testing.uid("waiter"), testing.uid("awaited")
      local reader = system("reader")
      local _, index = registry:events(math.maxinteger)
      spawn { id = sys_id, source = ([[
local sssn = require "sssn"
local s = sssn.system { id = %q }
function s:setup()
  self:add_channel(sssn.broadcast { id = %q })
  sssn.spawn(function()
    local events = sssn.registry:events(%d, 30)
    self:write_channel(%q, { n = #events, id = events[1] and events[1].id or "" })
  end)
end
return s
]]):format(sys_id, sys_id .. "-out", index, sys_id .. "-out") }
      reader:connect(sys_id .. "-out")
      testing.advance(5)
      assert.are.same({}, reader:read_channel(sys_id .. "-out"))
      registry:register_channel({ id = id }, 10)
      testing.advance(0)
      local out = reader:read_channel(sys_id .. "-out")
      assert.are.equal(1, #out)
      assert.are.same({ n = 1, id = id }, out[1].content.data)
    end)

    it("filters events by registrant prefix, as a host's watch asks, moving the index past the others", function()
      local Registry = require "sssn.registry"
      local _, index = registry:events(math.maxinteger)
      local mine, other = testing.uid("prefixed"), testing.uid("unprefixed")
      local h = spawn { id = mine, source = claimant_source(mine, mine .. "-ch", "http://me:1", 30) }
      registry:register_channel({ id = other }, 30)
      local body, count = Registry.events_json(index, 1000, 0, nil, core.instance_id() .. "/")
      local res = sssn.json.decode(body)
      assert.are.equal(1, count)
      assert.are.equal(mine .. "-ch", res.events[1].id)
      assert.are.equal(sssn.channel_stats("registry").last_seq, res.index)
      -- a takeover from one of them is theirs too
      registry:register_channel({ id = mine .. "-ch" }, 30)
      body = Registry.events_json(res.index, 1000, 0, nil, core.instance_id() .. "/")
      res = sssn.json.decode(body)
      assert.are.equal(1, #res.events)
      assert.are.equal("replaced", res.events[1].event)
      assert.are.equal(registrant_of(mine), res.events[1].previous_registrant)
      h:stop()
    end)

    it("reports system events with kind = system", function()
      local events = follow_events()
      local id = testing.uid("evented-sys")
      registry:register_system({ system_id = id }, 10)
      registry:deregister_system(id)
      local seen = events(id)
      assert.are.same({ "registered", "deregistered" }, names(seen))
      assert.are.equal("system", seen[1].kind)
      assert.are.equal(id, seen[1].entry.system_id)
    end)
  end)

  describe("as the REPL's watch() shows events", function()
    local pretty = require "sssn.pretty"

    it("gives time left only for live events, and old -> new for a takeover", function()
      local events = follow_events()
      local blue_id, ch_id = testing.uid("shown"), testing.uid("shown-ch")
      local lines = {}
      local function shown() -- as watch() prints them: when they happen
        for _, ev in ipairs(events(ch_id)) do lines[#lines + 1] = pretty.registry_event(ev) end
      end
      local blue = spawn { id = blue_id, source = claimant_source(blue_id, ch_id, "http://old:7400", 30) }
      shown()
      registry:register_channel({ id = ch_id, endpoint = "http://new:7400" }, 20)
      shown()
      testing.advance(5)
      registry:deregister_channel(ch_id)
      shown()
      testing.advance(1) -- blue takes it back
      shown()
      registry:register_system({ system_id = ch_id }, 3)
      shown()
      testing.advance(3)
      registry:maintain()
      shown()
      blue:stop()
      shown()
      local ch = ch_id
      assert.are.same({
        "registered channel " .. ch .. " (30 s left)",
        "replaced channel " .. ch .. ": http://old:7400 -> http://new:7400 (20 s left)",
        "deregistered channel " .. ch,
        "registered channel " .. ch .. " (30 s left)",
        "registered system " .. ch .. " (3 s left)",
        "expired system " .. ch,
        "deregistered channel " .. ch,
      }, lines)
    end)

    it("names the registrants when the entries have no endpoint", function()
      local line = pretty.registry_event { event = "replaced", kind = "system", id = "svc",
        registrant = "green/svc", previous_registrant = sssn.null,
        entry = { system_id = "svc", expires_at = sssn.now() + 300 }, previous = { system_id = "svc" } }
      assert.are.equal("replaced system svc: an operator -> green/svc (300 s left)", line)
    end)
  end)

  describe("bad arguments", function()
    it("refuses a channel without an id", function()
      assert_mentions(error_of(registry.register_channel, registry, { name = "no id" }),
        "register_channel", "id")
      assert_mentions(error_of(registry.register_channel, registry, { id = "" }), "register_channel", "id")
      assert_mentions(error_of(registry.register_channel, registry, nil), "register_channel", "ChannelInfo")
    end)

    it("refuses a descriptor without a system_id", function()
      assert_mentions(error_of(registry.register_system, registry, { services = {} }),
        "register_system", "system_id")
      assert_mentions(error_of(registry.register_system, registry,
        { system_id = testing.uid("s"), services = { { description = "no name" } } }),
        "register_system", "services[1]")
    end)

    it("refuses an unknown visibility", function()
      assert_mentions(error_of(registry.register_channel, registry, { id = testing.uid("v"), visibility = "secret" }),
        "register_channel", "visibility", "secret")
      assert_mentions(error_of(registry.find_channels, registry, { visibility = "secret" }),
        "find_channels", "visibility")
    end)

    it("tells you to use a colon when called with a dot", function()
      assert_mentions(error_of(registry.register_channel, { id = testing.uid("dot") }), "colon",
        "sssn.registry:register_channel")
      assert_mentions(error_of(registry.find_systems, { capability = "x" }), "colon", "find_systems")
      assert_mentions(error_of(registry.get_channel, "x"), "colon", "get_channel")
    end)

    it("refuses a negative or zero ttl, naming the ttl and the call", function()
      local id = testing.uid("ttl")
      local msg = error_of(registry.register_channel, registry, { id = id }, -1)
      assert_mentions(msg, "ttl", "positive")
      assert_mentions(error_of(registry.register_system, registry, { system_id = id }, 0), "ttl", "positive")
      assert.is_nil(registry:get_channel(id))
      assert.is_nil(registry:get_system(id))
      -- the error names the user's call, not an internal binding
      assert_mentions(msg, "register_channel")
      assert.is_nil(msg:find("reg_put", 1, true), msg)
    end)

    it("refuses ids longer than 256 bytes, naming the limit", function()
      local long = ("x"):rep(257)
      assert_mentions(error_of(registry.register_channel, registry, { id = long }), "register_channel",
        "info.id", "256")
      assert_mentions(error_of(registry.register_system, registry, { system_id = long }), "register_system",
        "descriptor.system_id", "256")
      local longest = ("y"):rep(256)
      registry:register_channel({ id = longest }, 10)
      assert.is_table(registry:get_channel(longest))
      assert.is_true(registry:deregister_channel(longest))
    end)

    it("refuses non-string ids in lookups", function()
      assert_mentions(error_of(registry.get_channel, registry, 42), "get_channel", "id")
      assert_mentions(error_of(registry.deregister_system, registry, nil), "deregister_system", "id")
      assert_mentions(error_of(registry.find_systems, registry, { capability = 1 }), "capability")
    end)
  end)
end)
