-- The registry contract: the cases every registry backend (in-process, http, etcd) must pass,
-- through sssn.registry as systems use it. spec/registry_contract_spec.lua runs them inside a
-- child host started with the backend's --registry (the harness there gives each case a
-- `ctx`, below), on real time, all cases of a backend at once: every case uses ids of its own
-- (ctx.uid) and looks only at them, so none depends on what the others do.
--
-- ctx (made by the harness in the child host):
--   ctx.uid(prefix)            a fresh id, unique in the run
--   ctx.now(), ctx.sleep(s)    sssn.now, sssn.sleep
--   ctx.eventually(s, fn)      calls fn every 0.05 s until it returns a truthy value (returned)
--                              or s seconds pass (then what one last call returns)
--   ctx.harness                the harness system (the registrant of the case's own calls)
--   ctx.registrant             its registrant, "<host instance>/contract-harness"
--   ctx.agent(name)            another system of the child host that makes registry calls on
--                              command: a:register_channel(info, ttl, opts), a:register_system,
--                              a:deregister_channel(id), a:deregister_system(id), a:stop();
--                              a.registrant; names: "contract-a", "contract-b", "contract-stop"
--   ctx.events(id)             the events about id that sssn.registry:events() has given so far
--   ctx.channel_events(id)     the same from the `registry` channel (self:connect("registry"))
--   ctx.expect_log(...)        the child's log must have a line with all these substrings
-- Each case raises (luassert) on a failure.
local assert = require "luassert"

local cases = {}
local function case(name, run) cases[#cases + 1] = { name = name, run = run } end

-- Two processes' clocks (sssn.now carried by each one's monotonic clock) and a round trip:
-- what an expires_at computed by the registry may differ from now + ttl here.
local SKEW = 0.5
-- Expiry and refresh: etcd's leases are at least ~2 s.
local TTL = 2

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

local function names(events)
  local out = {}
  for i, ev in ipairs(events) do out[i] = ev.event end
  return out
end

local function error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  if ok then error("expected an error, but the call succeeded", 2) end
  return tostring(err)
end

local function assert_mentions(msg, ...)
  for _, needle in ipairs({ ... }) do
    if not tostring(msg):find(needle, 1, true) then
      error(("expected %q to be mentioned in: %s"):format(needle, tostring(msg)), 2)
    end
  end
end

local function near(expected, got, what)
  assert(type(got) == "number" and math.abs(got - expected) <= SKEW,
    ("%s: expected about %.3f, got %s"):format(what, expected, tostring(got)))
end

-- Waits until the events about id (from `source`, ctx.events or ctx.channel_events) are at
-- least `n`, then returns them all.
local function wait_events(ctx, source, id, n, seconds)
  ctx.eventually(seconds or 10, function() return #source(id) >= n end)
  return source(id)
end

local sssn = require "sssn"

-- Registering and looking up ----------------------------------------------------------------

case("registers a channel and returns it from get_channel with expires_at = now + ttl", function(ctx)
  local reg = sssn.registry
  local id = ctx.uid("feed")
  local t0 = ctx.now()
  local put = reg:register_channel({ id = id, name = "Temperature Feed", description = "live readings",
    visibility = "private", kind = "broadcast", owner = "sensor", endpoint = "http://sensor.invalid:7400" }, 30)
  near(t0 + 30, put.expires_at, "the expires_at register_channel returned")
  local got = reg:get_channel(id)
  assert.is_table(got)
  assert.are.equal(id, got.id)
  assert.are.equal("Temperature Feed", got.name)
  assert.are.equal("live readings", got.description)
  assert.are.equal("private", got.visibility)
  assert.are.equal("broadcast", got.kind)
  assert.are.equal("sensor", got.owner)
  assert.are.equal("http://sensor.invalid:7400", got.endpoint)
  assert.are.equal(put.expires_at, got.expires_at)
  assert.is_true(reg:deregister_channel(id))
end)

case("registers a system and returns it from get_system with its services", function(ctx)
  local reg = sssn.registry
  local id = ctx.uid("svc")
  local t0 = ctx.now()
  local put = reg:register_system({ system_id = id, system_name = "Service", description = "measures",
    services = { { name = "temperature", description = "readings", parameters = { unit = "C" } } },
    channels_read = { "in-a" }, channels_write = { "out-a", "out-b" } }, 30)
  near(t0 + 30, put.expires_at, "the expires_at register_system returned")
  local got = reg:get_system(id)
  assert.is_table(got)
  assert.are.equal(id, got.system_id)
  assert.are.equal("Service", got.system_name)
  assert.are.equal("measures", got.description)
  assert.are.same({ { name = "temperature", description = "readings", parameters = { unit = "C" } } }, got.services)
  assert.are.same({ "in-a" }, got.channels_read)
  assert.are.same({ "out-a", "out-b" }, got.channels_write)
  assert.are.equal(put.expires_at, got.expires_at)
  -- a plain descriptor gets the defaults
  local plain = ctx.uid("plain")
  reg:register_system({ system_id = plain }, 30)
  local p = reg:get_system(plain)
  assert.are.equal(plain, p.system_name)
  assert.are.equal("", p.description)
  assert.are.same({}, p.services)
  assert.are.same({}, p.channels_read)
  assert.is_true(reg:deregister_system(id))
  assert.is_true(reg:deregister_system(plain))
end)

case("registers the descriptor of a running system and a channel it owns", function(ctx)
  local reg = sssn.registry
  local ch = ctx.harness:add_channel(sssn.broadcast { id = ctx.uid("owned"), name = "Owned Feed" })
  reg:register_channel(ch.info, 30)
  local got = reg:get_channel(ch.id)
  assert.are.equal("broadcast", got.kind)
  assert.are.equal(ctx.harness.id, got.owner)
  assert.are.equal("Owned Feed", got.name)
  local d = ctx.harness:descriptor()
  reg:register_system(d, 30)
  local s = reg:get_system(ctx.harness.id)
  assert.are.equal(ctx.harness.id, s.system_id)
  local writes = {}
  for _, w in ipairs(s.channels_write) do writes[w] = true end
  assert.is_true(writes[ch.id])
  assert.is_true(reg:deregister_system(ctx.harness.id))
  assert.is_true(reg:deregister_channel(ch.id))
end)

case("answers nil for ids never registered", function(ctx)
  local reg = sssn.registry
  assert.is_nil(reg:get_channel(ctx.uid("nothing")))
  assert.is_nil(reg:get_system(ctx.uid("nobody")))
end)

case("replaces an entry registered again, with a new expiry and no duplicate", function(ctx)
  local reg = sssn.registry
  local id = ctx.uid("renamed")
  local tag = ctx.uid("Tag")
  local first = reg:register_channel({ id = id, name = "First " .. tag }, 10, { keepalive = false })
  ctx.sleep(0.2)
  local second = reg:register_channel({ id = id, name = "Second " .. tag }, 20, { keepalive = false })
  assert.is_true(second.expires_at > first.expires_at)
  local got = reg:get_channel(id)
  assert.are.equal("Second " .. tag, got.name)
  assert.are.equal(second.expires_at, got.expires_at)
  assert.are.equal(1, count_of(reg:find_channels(), id))
  assert.are.equal(1, count_of(reg:find_channels { name = tag }, id))
  assert.are.equal(0, count_of(reg:find_channels { name = "First " .. tag }, id))
  local sys = ctx.uid("twice")
  reg:register_system({ system_id = sys, services = { { name = sys .. "-cap" } } }, 10, { keepalive = false })
  reg:register_system({ system_id = sys, services = { { name = sys .. "-cap" } } }, 10, { keepalive = false })
  assert.are.equal(1, count_of(reg:find_systems(), sys))
  assert.are.equal(1, count_of(reg:find_systems { capability = sys .. "-cap" }, sys))
  assert.is_true(reg:deregister_channel(id))
  assert.is_true(reg:deregister_system(sys))
end)

-- Finding ---------------------------------------------------------------------------------

case("finds systems by capability: exactly the service name", function(ctx)
  local reg = sssn.registry
  local id, cap = ctx.uid("thermo"), ctx.uid("temperature")
  reg:register_system({ system_id = id, services = { { name = cap }, { name = cap .. "-humidity" } } }, 30)
  assert.is_true(id_set(reg:find_systems { capability = cap })[id])
  assert.is_true(id_set(reg:find_systems { capability = cap .. "-humidity" })[id])
  assert.is_true(id_set(reg:find_systems(cap))[id])
  assert.is_nil(id_set(reg:find_systems { capability = cap:sub(1, -2) })[id])
  assert.is_nil(id_set(reg:find_systems { capability = cap:upper() })[id])
  assert.is_nil(id_set(reg:find_systems { capability = cap .. "s" })[id])
  assert.are.same({}, reg:find_systems { capability = ctx.uid("nobody-offers") })
  assert.is_true(id_set(reg:find_systems())[id])
  assert.is_true(reg:deregister_system(id))
end)

case("finds a system only by the capabilities it offers now", function(ctx)
  local reg = sssn.registry
  local id, old, new = ctx.uid("changing"), ctx.uid("ocr"), ctx.uid("resize")
  local a, b = ctx.uid("peer-a"), ctx.uid("peer-b")
  reg:register_system({ system_id = id, services = { { name = old } } }, 30)
  reg:register_system({ system_id = a, services = { { name = old } } }, 30)
  reg:register_system({ system_id = b, services = { { name = old } } }, 30)
  assert.are.equal(3, #reg:find_systems { capability = old })
  reg:register_system({ system_id = id, services = { { name = new } } }, 30)
  assert.is_true(reg:deregister_system(b))
  local found = reg:find_systems { capability = old }
  assert.are.equal(1, #found)
  assert.are.equal(a, found[1].system_id)
  assert.are.same({ id }, { reg:find_systems { capability = new }[1].system_id })
  assert.is_true(reg:deregister_system(id))
  assert.is_true(reg:deregister_system(a))
end)

case("filters channels by visibility, public unless told otherwise", function(ctx)
  local reg = sssn.registry
  local pub, priv, dflt = ctx.uid("pub"), ctx.uid("priv"), ctx.uid("default-vis")
  reg:register_channel({ id = pub, visibility = "public" }, 30)
  reg:register_channel({ id = priv, visibility = "private" }, 30)
  reg:register_channel({ id = dflt }, 30)
  local public = id_set(reg:find_channels { visibility = "public" })
  local private = id_set(reg:find_channels { visibility = "private" })
  local all = id_set(reg:find_channels())
  assert.is_true(public[pub])
  assert.is_true(public[dflt])
  assert.is_nil(public[priv])
  assert.is_true(private[priv])
  assert.is_nil(private[pub])
  assert.is_nil(private[dflt])
  assert.is_true(all[pub] and all[priv] and all[dflt])
  assert.are.equal("public", reg:get_channel(dflt).visibility)
  assert.are.equal("private", reg:get_channel(priv).visibility)
  for _, id in ipairs { pub, priv, dflt } do assert.is_true(reg:deregister_channel(id)) end
end)

case("finds channels by a case-insensitive substring of their name, sorted by id", function(ctx)
  local reg = sssn.registry
  local tag = ctx.uid("Qx")
  local id = ctx.uid("feed")
  reg:register_channel({ id = id, name = "Temperature Feed " .. tag }, 30)
  assert.is_true(id_set(reg:find_channels { name = "temperature feed " .. tag:lower() })[id])
  assert.is_true(id_set(reg:find_channels { name = ("FEED " .. tag):upper() })[id])
  assert.is_true(id_set(reg:find_channels { name = "ature fe" })[id])
  assert.is_nil(id_set(reg:find_channels { name = "pressure " .. tag })[id])
  assert.is_true(id_set(reg:find_channels { name = tag, visibility = "public" })[id])
  assert.is_nil(id_set(reg:find_channels { name = tag, visibility = "private" })[id])
  local sorted = ctx.uid("sorted")
  for _, suffix in ipairs { "c", "a", "b" } do
    reg:register_channel({ id = sorted .. "-" .. suffix, name = sorted }, 30)
  end
  local found = reg:find_channels { name = sorted }
  assert.are.same({ sorted .. "-a", sorted .. "-b", sorted .. "-c" }, { found[1].id, found[2].id, found[3].id })
  assert.are.equal(3, #found)
  assert.is_true(reg:deregister_channel(id))
  for _, suffix in ipairs { "a", "b", "c" } do assert.is_true(reg:deregister_channel(sorted .. "-" .. suffix)) end
end)

-- Deregistering -----------------------------------------------------------------------------

case("deregisters at once, and says why when there was nothing to remove", function(ctx)
  local reg = sssn.registry
  local ch, sys = ctx.uid("gone"), ctx.uid("gone-sys")
  local cap = ctx.uid("gone-cap")
  reg:register_channel({ id = ch }, 30)
  reg:register_system({ system_id = sys, services = { { name = cap } } }, 30)
  assert.is_true(reg:deregister_channel(ch))
  assert.is_true(reg:deregister_system(sys))
  assert.is_nil(reg:get_channel(ch))
  assert.is_nil(reg:get_system(sys))
  assert.is_nil(id_set(reg:find_channels())[ch])
  assert.are.same({}, reg:find_systems { capability = cap })
  local ok, why = reg:deregister_channel(ch)
  assert.is_false(ok)
  assert.are.equal(("channel '%s' is not registered"):format(ch), why)
  local sok, swhy = reg:deregister_system(ctx.uid("never-sys"))
  assert.is_false(sok)
  assert_mentions(swhy, "system '", "' is not registered")
end)

-- Expiry and refresh, on real time -----------------------------------------------------------

case("hides a channel once its TTL has passed, not before", function(ctx)
  local reg = sssn.registry
  local id = ctx.uid("short")
  local put = reg:register_channel({ id = id, name = id }, TTL, { keepalive = false })
  assert.is_table(reg:get_channel(id))
  assert.is_true(id_set(reg:find_channels { name = id })[id])
  local gone_at
  ctx.eventually(TTL + 8, function()
    if reg:get_channel(id) == nil then
      gone_at = ctx.now()
      return true
    end
  end)
  assert.truthy(gone_at, ("still listed %.1f s after its expires_at"):format(ctx.now() - put.expires_at))
  assert.is_true(gone_at >= put.expires_at - SKEW,
    ("gone %.3f s before its expires_at"):format(put.expires_at - gone_at))
  assert.is_nil(id_set(reg:find_channels { name = id })[id])
  assert.is_nil(id_set(reg:find_channels())[id])
end)

case("hides a system once its TTL has passed, from get_system and capability searches", function(ctx)
  local reg = sssn.registry
  local id, cap = ctx.uid("svc-short"), ctx.uid("cap-short")
  local put = reg:register_system({ system_id = id, services = { { name = cap } } }, TTL, { keepalive = false })
  assert.are.equal(1, #reg:find_systems { capability = cap })
  local gone = ctx.eventually(TTL + 8, function()
    return reg:get_system(id) == nil and #reg:find_systems { capability = cap } == 0 and ctx.now()
  end)
  assert.truthy(gone, "still listed after its TTL")
  assert.is_true(gone >= put.expires_at - SKEW, ("gone %.3f s before its expires_at"):format(put.expires_at - gone))
  assert.is_nil(id_set(reg:find_systems())[id])
end)

case("keeps a running system's registrations alive past their first TTL (keep-alive refreshes)", function(ctx)
  local reg = sssn.registry
  local ch, sys = ctx.uid("kept"), ctx.uid("kept-sys")
  local c0 = reg:register_channel({ id = ch }, TTL)
  local s0 = reg:register_system({ system_id = sys }, TTL)
  -- past the first expiry by more than half a TTL: it was refreshed (at 2/3 of the TTL) at least once
  local until_t = math.max(c0.expires_at, s0.expires_at) + TTL * 0.75
  while ctx.now() < until_t do
    assert.is_table(reg:get_channel(ch), ("channel gone %.2f s after its first expires_at"):format(ctx.now() - c0.expires_at))
    assert.is_table(reg:get_system(sys), ("system gone %.2f s after its first expires_at"):format(ctx.now() - s0.expires_at))
    ctx.sleep(0.1)
  end
  assert.is_true(reg:get_channel(ch).expires_at > c0.expires_at)
  assert.is_true(reg:get_system(sys).expires_at > s0.expires_at)
  local seen = wait_events(ctx, ctx.events, ch, 2)
  assert.are.equal("registered", seen[1].event)
  assert.are.equal("refreshed", seen[2].event)
  assert.are.equal(ctx.registrant, seen[2].registrant)
  assert.is_nil(table.concat(names(seen), ","):find("expired"))
  assert.is_true(reg:deregister_channel(ch))
  assert.is_true(reg:deregister_system(sys))
end)

case("stays alive while re-registered as a heartbeat, and expires when the beats stop", function(ctx)
  local reg = sssn.registry
  local id = ctx.uid("heartbeat")
  local first = reg:register_channel({ id = id }, TTL, { keepalive = false })
  local last = first
  while ctx.now() < first.expires_at + TTL do
    ctx.sleep(TTL / 4)
    assert.is_table(reg:get_channel(id), ("gone %.2f s after the beat before"):format(ctx.now() - last.expires_at + TTL))
    last = reg:register_channel({ id = id }, TTL, { keepalive = false })
  end
  local gone = ctx.eventually(TTL + 8, function() return reg:get_channel(id) == nil and ctx.now() end)
  assert.truthy(gone, "still listed after the last beat's TTL")
  assert.is_true(gone >= last.expires_at - SKEW, ("gone %.3f s before the last beat's expires_at"):format(last.expires_at - gone))
end)

-- Ownership ---------------------------------------------------------------------------------

case("lets another registrant take an entry over; the first one's keep-alive refreshes nothing and takes it back when it is free", function(ctx)
  local reg = sssn.registry
  local a, b = ctx.agent("contract-a"), ctx.agent("contract-b")
  local ch = ctx.uid("shared")
  local first = a:register_channel({ id = ch, name = "Shared", endpoint = "http://a.invalid:1" }, 3)
  local taken = b:register_channel({ id = ch, name = "Shared", endpoint = "http://b.invalid:2" }, 30)
  local got = reg:get_channel(ch)
  assert.are.equal("http://b.invalid:2", got.endpoint)
  assert.are.equal(taken.expires_at, got.expires_at)
  local seen = wait_events(ctx, ctx.events, ch, 2)
  assert.are.same({ "registered", "replaced" }, names(seen))
  assert.are.equal(a.registrant, seen[1].registrant)
  local ev = seen[2]
  assert.are.equal("channel", ev.kind)
  assert.are.equal(b.registrant, ev.registrant)
  assert.are.equal(a.registrant, ev.previous_registrant)
  assert.are.equal("http://b.invalid:2", ev.entry.endpoint)
  assert.are.equal("http://a.invalid:1", ev.previous.endpoint)
  -- a's keep-alive was due at 2/3 of its TTL: past its expiry it has refreshed nothing
  while ctx.now() < first.expires_at + 1 do ctx.sleep(0.2) end
  got = reg:get_channel(ch)
  assert.are.equal("http://b.invalid:2", got.endpoint)
  assert.are.equal(taken.expires_at, got.expires_at)
  assert.are.same({ "registered", "replaced" }, names(ctx.events(ch)))
  ctx.expect_log("[contract-a] channel '" .. ch .. "'", "was taken over by registrant '" .. b.registrant .. "'",
    "http://b.invalid:2")
  -- b frees it: a's keep-alive, retrying every second, registers it again
  assert.is_true(b:deregister_channel(ch))
  local back = ctx.eventually(8, function()
    local c = reg:get_channel(ch)
    return c and c.endpoint == "http://a.invalid:1" and c
  end)
  assert.truthy(back, "the first registrant did not take its entry back")
  seen = wait_events(ctx, ctx.events, ch, 4)
  assert.are.same({ "registered", "replaced", "deregistered", "registered" }, names(seen))
  assert.are.equal(a.registrant, seen[4].registrant)
  ctx.expect_log("[contract-a] took channel '" .. ch .. "' back")
  assert.is_true(a:deregister_channel(ch))
end)

case("takes an entry back once the one that replaced it expires", function(ctx)
  local reg = sssn.registry
  local a, b = ctx.agent("contract-a"), ctx.agent("contract-b")
  local ch = ctx.uid("lapsed")
  a:register_channel({ id = ch, endpoint = "http://a.invalid:3" }, 30)
  local taken = b:register_channel({ id = ch, endpoint = "http://b.invalid:4" }, TTL, { keepalive = false })
  assert.are.equal("http://b.invalid:4", reg:get_channel(ch).endpoint)
  local back = ctx.eventually(TTL + 10, function()
    local c = reg:get_channel(ch)
    return c and c.endpoint == "http://a.invalid:3" and ctx.now()
  end)
  assert.truthy(back, "the first registrant did not take its entry back after the other one's expired")
  assert.is_true(back >= taken.expires_at - SKEW, "taken back before the other registrant's entry expired")
  assert.is_true(a:deregister_channel(ch))
end)

case("refuses a registrant's deregistration of what another one holds (not_owner), naming the holder", function(ctx)
  local reg = sssn.registry
  local a, b = ctx.agent("contract-a"), ctx.agent("contract-b")
  local ch, sys = ctx.uid("held"), ctx.uid("held-sys")
  a:register_channel({ id = ch, endpoint = "http://a.invalid:5" }, 30)
  a:register_system({ system_id = sys }, 30)
  b:register_channel({ id = ch, endpoint = "http://b.invalid:6" }, 30)
  b:register_system({ system_id = sys }, 30)
  local ok, why = a:deregister_channel(ch)
  assert.is_false(ok)
  assert.are.equal(("channel '%s' is registered by another registrant: registrant '%s' at http://b.invalid:6")
    :format(ch, b.registrant), why)
  local sok, swhy = a:deregister_system(sys)
  assert.is_false(sok)
  assert_mentions(swhy, "system '" .. sys .. "' is registered by another registrant", "registrant '" .. b.registrant .. "'")
  assert.are.equal("http://b.invalid:6", reg:get_channel(ch).endpoint)
  assert.is_table(reg:get_system(sys))
  -- a gave up on them: freed, they stay free (a's keep-alive would retry every second)
  assert.is_true(b:deregister_channel(ch))
  assert.is_true(b:deregister_system(sys))
  ctx.sleep(2.5)
  assert.is_nil(reg:get_channel(ch))
  assert.is_nil(reg:get_system(sys))
end)

case("lets a registrant deregister its own entry, which its keep-alive then leaves alone", function(ctx)
  local reg = sssn.registry
  local a = ctx.agent("contract-a")
  local ch = ctx.uid("own")
  a:register_channel({ id = ch }, 3)
  assert.is_true(a:deregister_channel(ch))
  assert.is_nil(reg:get_channel(ch))
  local ok, why = a:deregister_channel(ch)
  assert.is_false(ok)
  assert_mentions(why, "is not registered")
  ctx.sleep(2.5) -- past when its keep-alive would have refreshed it
  assert.is_nil(reg:get_channel(ch))
end)

case("deregisters what a system registered when it stops", function(ctx)
  local reg = sssn.registry
  local s = ctx.agent("contract-stop")
  local ch, sys = ctx.uid("stopping"), ctx.uid("stopping-sys")
  s:register_channel({ id = ch }, 30)
  s:register_system({ system_id = sys }, 30)
  s:register_channel({ id = ch .. "-unkept" }, 30, { keepalive = false })
  assert.is_table(reg:get_channel(ch))
  s:stop()
  local gone = ctx.eventually(8, function()
    return reg:get_channel(ch) == nil and reg:get_system(sys) == nil and reg:get_channel(ch .. "-unkept") == nil
  end)
  assert.truthy(gone, "still registered after the system stopped")
  for _, id in ipairs { ch, sys, ch .. "-unkept" } do
    assert.are.same({ "registered", "deregistered" }, names(wait_events(ctx, ctx.events, id, 2)))
  end
end)

-- Events ------------------------------------------------------------------------------------

-- registered, refreshed, replaced, deregistered, expired for channels and systems, as the
-- in-process registry reports them, read from `source`.
local function events_case(source_name)
  return function(ctx)
    local reg = sssn.registry
    local source = ctx[source_name]
    local a = ctx.agent("contract-a")
    local id = ctx.uid("evented")
    local t0 = ctx.now()
    reg:register_channel({ id = id, name = "Evented", endpoint = "http://old.invalid:1" }, 10, { keepalive = false })
    ctx.sleep(0.1)
    reg:register_channel({ id = id, name = "Evented", endpoint = "http://old.invalid:1" }, 20, { keepalive = false })
    a:register_channel({ id = id, name = "Evented", endpoint = "http://new.invalid:2" }, 30, { keepalive = false })
    assert.is_true(a:deregister_channel(id))
    local seen = wait_events(ctx, source, id, 4)
    assert.are.same({ "registered", "refreshed", "replaced", "deregistered" }, names(seen))
    for _, ev in ipairs(seen) do
      assert.are.equal("channel", ev.kind)
      assert.are.equal(id, ev.id)
      assert.are.equal("Evented", ev.entry.name)
    end
    assert.are.equal(ctx.registrant, seen[1].registrant)
    assert.are.equal(ctx.registrant, seen[2].registrant)
    near(t0 + 10, seen[1].entry.expires_at, "registered: entry.expires_at")
    assert.is_true(seen[2].entry.expires_at > seen[1].entry.expires_at + 5)
    assert.are.equal(a.registrant, seen[3].registrant)
    assert.are.equal(ctx.registrant, seen[3].previous_registrant)
    assert.are.equal("http://new.invalid:2", seen[3].entry.endpoint)
    assert.are.equal("http://old.invalid:1", seen[3].previous.endpoint)
    assert.are.equal(a.registrant, seen[4].registrant)
    -- systems, and an expiry
    local sys = ctx.uid("evented-sys")
    reg:register_system({ system_id = sys, services = { { name = "evented-cap" } } }, 10, { keepalive = false })
    assert.is_true(reg:deregister_system(sys))
    local sseen = wait_events(ctx, source, sys, 2)
    assert.are.same({ "registered", "deregistered" }, names(sseen))
    assert.are.equal("system", sseen[1].kind)
    assert.are.equal(sys, sseen[1].entry.system_id)
    assert.are.equal("evented-cap", sseen[1].entry.services[1].name)
    local short = ctx.uid("evented-short")
    reg:register_system({ system_id = short }, TTL, { keepalive = false })
    local eseen = wait_events(ctx, source, short, 2, TTL + 10)
    assert.are.same({ "registered", "expired" }, names(eseen))
    assert.are.equal("system", eseen[2].kind)
    assert.are.equal(short, eseen[2].entry.system_id)
    -- registered anew after it expired
    reg:register_system({ system_id = short }, TTL, { keepalive = false })
    assert.are.same({ "registered", "expired", "registered" }, names(wait_events(ctx, source, short, 3)))
    assert.is_true(reg:deregister_system(short))
  end
end

case("reports registered, refreshed, replaced, deregistered and expired through sssn.registry:events",
  events_case("events"))

case("reports registered, refreshed, replaced, deregistered and expired on the registry channel",
  events_case("channel_events"))

case("answers events(math.maxinteger) at once with the current index, and events(index) with what came since", function(ctx)
  local reg = sssn.registry
  local t0 = ctx.now()
  local none, index = reg:events(math.maxinteger, 30)
  assert.is_true(ctx.now() - t0 < 15, "events(math.maxinteger, 30) waited for an event")
  assert.are.same({}, none)
  assert.is_true(math.type(index) == "integer" and index >= 0)
  local id = ctx.uid("since")
  reg:register_channel({ id = id }, 10, { keepalive = false })
  local mine, next_index
  local from = index
  ctx.eventually(10, function()
    local evs, nxt = reg:events(from, 1) -- events of other cases come too: look for ours
    assert.is_true(nxt >= from)
    for _, ev in ipairs(evs) do
      assert.is_true(ev.index > index)
      if ev.id == id then mine = ev end
    end
    from, next_index = nxt, nxt
    return mine
  end)
  assert.truthy(mine, "events(index) never gave the registration")
  assert.are.equal("registered", mine.event)
  assert.are.equal("channel", mine.kind)
  assert.is_true(next_index >= mine.index)
  assert.is_number(mine.timestamp)
  for _, ev in ipairs((reg:events(mine.index))) do assert.are_not.equal(id, ev.id) end
  assert.is_true(reg:deregister_channel(id))
end)

-- Bad arguments: refused before they reach the backend, the same everywhere -----------------

case("refuses bad arguments, naming the call and what is wrong", function(ctx)
  local reg = sssn.registry
  assert_mentions(error_of(reg.register_channel, reg, { name = "no id" }), "register_channel", "id")
  assert_mentions(error_of(reg.register_channel, reg, { id = "" }), "register_channel", "id")
  assert_mentions(error_of(reg.register_channel, reg, nil), "register_channel", "ChannelInfo")
  assert_mentions(error_of(reg.register_system, reg, { services = {} }), "register_system", "system_id")
  assert_mentions(error_of(reg.register_system, reg, { system_id = ctx.uid("s"), services = { { description = "x" } } }),
    "register_system", "services[1]")
  assert_mentions(error_of(reg.register_channel, reg, { id = ctx.uid("v"), visibility = "secret" }),
    "register_channel", "visibility", "secret")
  assert_mentions(error_of(reg.find_channels, reg, { visibility = "secret" }), "find_channels", "visibility")
  assert_mentions(error_of(reg.register_channel, { id = ctx.uid("dot") }), "colon", "sssn.registry:register_channel")
  assert_mentions(error_of(reg.find_systems, { capability = "x" }), "colon", "find_systems")
  assert_mentions(error_of(reg.get_channel, "x"), "colon", "get_channel")
  local id = ctx.uid("ttl")
  assert_mentions(error_of(reg.register_channel, reg, { id = id }, -1), "register_channel", "ttl", "positive")
  assert_mentions(error_of(reg.register_system, reg, { system_id = id }, 0), "register_system", "ttl", "positive")
  assert.is_nil(reg:get_channel(id))
  assert.is_nil(reg:get_system(id))
  assert_mentions(error_of(reg.get_channel, reg, 42), "get_channel", "id")
  assert_mentions(error_of(reg.deregister_system, reg, nil), "deregister_system", "id")
  assert_mentions(error_of(reg.find_systems, reg, { capability = 1 }), "capability")
end)

case("takes ids of 256 bytes and refuses longer ones, naming the limit", function(ctx)
  local reg = sssn.registry
  local long = ("x"):rep(257)
  assert_mentions(error_of(reg.register_channel, reg, { id = long }), "register_channel", "info.id", "256")
  assert_mentions(error_of(reg.register_system, reg, { system_id = long }), "register_system",
    "descriptor.system_id", "256")
  local tag = ctx.uid("y")
  local longest = tag .. ("y"):rep(256 - #tag)
  reg:register_channel({ id = longest }, 10, { keepalive = false })
  reg:register_system({ system_id = longest }, 10, { keepalive = false })
  assert.are.equal(longest, reg:get_channel(longest).id)
  assert.are.equal(longest, reg:get_system(longest).system_id)
  assert.is_true(reg:deregister_channel(longest))
  assert.is_true(reg:deregister_system(longest))
end)

-- The same registry through the host's HTTP routes ------------------------------------------
-- cases.http run in the spec runner against the child host's --listen API, which answers from
-- the child's registry backend (a PUT on an http-backed host lands on the registry host, on an
-- etcd-backed one in etcd). ctx: uid, eventually, now (as above, on the runner's loop) and
-- ctx.http(method, path, body) -> status, decoded JSON (or nil), raw body.
cases.http = {}
local function http_case(name, run) cases.http[#cases.http + 1] = { name = name, run = run } end

local function q(s) return (s:gsub("[^%w%-._~]", function(c) return ("%%%02X"):format(c:byte()) end)) end

http_case("over HTTP: refuses another registrant's refresh and deletion (409 not_owner, naming the holder); a takeover without refresh works", function(ctx)
  local id = ctx.uid("http-owned")
  local path = "/registry/channels/" .. id
  local one, two = "contract/one-" .. id, "contract/two-" .. id
  local s, e, raw = ctx.http("PUT", path .. "?ttl=30&registrant=" .. q(one), { id = id, endpoint = "http://one.invalid:1" })
  assert.are.equal(200, s, raw)
  local first = e.expires_at
  s, e, raw = ctx.http("PUT", path .. "?ttl=30&refresh=true&registrant=" .. q(two), { id = id, endpoint = "http://two.invalid:2" })
  assert.are.equal(409, s, raw)
  assert.are.equal("not_owner", e.error.type)
  assert.are.equal(one, e.error.registrant)
  assert.are.equal("http://one.invalid:1", e.error.endpoint)
  s, e, raw = ctx.http("DELETE", path .. "?registrant=" .. q(two))
  assert.are.equal(409, s, raw)
  assert.are.equal("not_owner", e.error.type)
  assert.are.equal(one, e.error.registrant)
  s, e, raw = ctx.http("GET", path)
  assert.are.equal(200, s, raw)
  assert.are.equal("http://one.invalid:1", e.endpoint)
  assert.are.equal(first, e.expires_at)
  -- a takeover (no refresh) works; then the first one is refused the same way
  s, e, raw = ctx.http("PUT", path .. "?ttl=30&registrant=" .. q(two), { id = id, endpoint = "http://two.invalid:2" })
  assert.are.equal(200, s, raw)
  s, e, raw = ctx.http("GET", path)
  assert.are.equal("http://two.invalid:2", e.endpoint, raw)
  s, e, raw = ctx.http("PUT", path .. "?ttl=30&refresh=true&registrant=" .. q(one), { id = id, endpoint = "http://one.invalid:1" })
  assert.are.equal(409, s, raw)
  assert.are.equal(two, e.error.registrant)
  s, e, raw = ctx.http("DELETE", path .. "?registrant=" .. q(one))
  assert.are.equal(409, s, raw)
  assert.are.equal(200, (ctx.http("DELETE", path .. "?registrant=" .. q(two))))
  assert.are.equal(404, (ctx.http("GET", path)))
  s, e, raw = ctx.http("DELETE", path .. "?registrant=" .. q(two))
  assert.are.equal(404, s, raw)
end)

http_case("over HTTP: a refresh by the registrant renews its entry, and registers it when absent", function(ctx)
  local id = ctx.uid("http-refresh")
  local path = "/registry/systems/" .. id
  local me = "contract/me-" .. id
  local s, e, raw = ctx.http("PUT", path .. "?ttl=10&refresh=true&registrant=" .. q(me), { system_id = id })
  assert.are.equal(200, s, raw)
  local first = e.expires_at
  s, e, raw = ctx.http("PUT", path .. "?ttl=20&refresh=true&registrant=" .. q(me), { system_id = id })
  assert.are.equal(200, s, raw)
  assert.is_true(e.expires_at > first + 5, raw)
  s, e, raw = ctx.http("GET", path)
  assert.are.equal(200, s, raw)
  assert.are.equal(id, e.system_id)
  -- an operator (no registrant) removes whatever is there
  assert.are.equal(200, (ctx.http("DELETE", path)))
  assert.are.equal(404, (ctx.http("GET", path)))
end)

http_case("over HTTP: lists live channels and systems by name, visibility and capability, a page at a time", function(ctx)
  local tag = ctx.uid("HttpTag")
  local cap = ctx.uid("http-cap")
  for _, suffix in ipairs { "b", "a", "c" } do
    local id = tag .. "-" .. suffix
    assert.are.equal(200, (ctx.http("PUT", "/registry/channels/" .. id .. "?ttl=30",
      { id = id, name = "Feed " .. tag, visibility = suffix == "c" and "private" or "public" })))
    assert.are.equal(200, (ctx.http("PUT", "/registry/systems/" .. id .. "?ttl=30",
      { system_id = id, services = { { name = cap } } })))
  end
  local s, list, raw = ctx.http("GET", "/registry/channels?name=" .. q("feed " .. tag:lower()))
  assert.are.equal(200, s, raw)
  local ids = {}
  for i, c in ipairs(list) do ids[i] = c.id end
  assert.are.same({ tag .. "-a", tag .. "-b", tag .. "-c" }, ids)
  s, list = ctx.http("GET", "/registry/channels?visibility=private&name=" .. q(tag))
  assert.are.equal(1, #list)
  assert.are.equal(tag .. "-c", list[1].id)
  s, list = ctx.http("GET", "/registry/systems?capability=" .. q(cap) .. "&limit=2")
  assert.are.equal(2, #list)
  assert.are.equal(tag .. "-a", list[1].system_id)
  s, list = ctx.http("GET", "/registry/systems?capability=" .. q(cap) .. "&limit=2&after=" .. q(list[2].system_id))
  assert.are.equal(1, #list)
  assert.are.equal(tag .. "-c", list[1].system_id)
  assert.is_number(list[1].expires_at)
  for _, suffix in ipairs { "a", "b", "c" } do
    assert.are.equal(200, (ctx.http("DELETE", "/registry/channels/" .. tag .. "-" .. suffix)))
    assert.are.equal(200, (ctx.http("DELETE", "/registry/systems/" .. tag .. "-" .. suffix)))
  end
  s, list = ctx.http("GET", "/registry/systems?capability=" .. q(cap))
  assert.are.same({}, list)
end)

http_case("over HTTP: /registry/events names the registrants, and an entry expires at its TTL", function(ctx)
  local s, e, raw = ctx.http("GET", "/registry/events?index=" .. math.maxinteger)
  assert.are.equal(200, s, raw)
  local index = e.index
  local id = ctx.uid("http-evented")
  local path = "/registry/channels/" .. id
  local one, two = "contract/one-" .. id, "contract/two-" .. id
  assert.are.equal(200, (ctx.http("PUT", path .. "?ttl=30&registrant=" .. q(one), { id = id, endpoint = "http://one.invalid:1" })))
  local put
  s, put = ctx.http("PUT", path .. "?ttl=" .. TTL .. "&registrant=" .. q(two), { id = id, endpoint = "http://two.invalid:2" })
  assert.are.equal(200, s)
  local gone = ctx.eventually(TTL + 8, function() return ctx.http("GET", path) == 404 and ctx.now() end)
  assert.truthy(gone, "still answered after its TTL")
  assert.is_true(gone >= put.expires_at - SKEW, ("gone %.3f s before its expires_at"):format(put.expires_at - gone))
  local seen = {}
  ctx.eventually(10, function()
    local _, res = ctx.http("GET", "/registry/events?wait=1&index=" .. index)
    for _, ev in ipairs(res and res.events or {}) do
      if ev.id == id then seen[#seen + 1] = ev end
    end
    index = res and res.index or index
    return #seen >= 3
  end)
  assert.are.same({ "registered", "replaced", "expired" }, names(seen))
  assert.are.equal(one, seen[1].registrant)
  assert.are.equal(two, seen[2].registrant)
  assert.are.equal(one, seen[2].previous_registrant)
  assert.are.equal("http://one.invalid:1", seen[2].previous.endpoint)
  assert.are.equal(two, seen[3].registrant)
end)

return cases
