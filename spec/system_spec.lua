-- Systems: setup and step, the tick schedule, yielding calls, error containment, memory caps.
-- Spawned systems report what they see on a "trace" channel the spec reads; the test clock
-- drives every tick, so nothing here sleeps.
local sssn = require "sssn"
local testing = require "sssn.testing"

-- Spawns a system from source; `body` is Lua code that may use `sys` (the system table)
-- and trace(t) (writes t to the system's trace channel). Returns the handle and a reader.
local function spawn(body, opts)
  opts = opts or {}
  local id = testing.uid(opts.prefix or "sys")
  local source = ([[
    local sssn = require "sssn"
    local sys = sssn.system { id = %q, tick_rate = %s, on_error = %s, max_errors = %s }
    local feed
    local function trace(t) sys:write_channel(%q, t) end
    local user_setup
    function sys:setup()
      feed = self:add_channel(sssn.broadcast { id = %q, capacity = 10000 })
      if user_setup then user_setup(self) end
    end
    %s
    if sys.setup_body then user_setup = sys.setup_body end
    return sys
  ]]):format(id, opts.tick_rate or 1, opts.on_error and ("%q"):format(opts.on_error) or "nil",
    opts.max_errors or "nil", id .. "-trace", id .. "-trace", body)
  local handle = testing.spawn { id = id, source = source, memory_limit = opts.memory_limit,
    step_timeout = opts.step_timeout }
  local reader = testing.system(testing.uid("reader"))
  reader:connect(id .. "-trace")
  local function traces()
    local out = {}
    for _, m in ipairs(reader:read_channel(id .. "-trace", { limit = 10000 })) do
      out[#out + 1] = m.content.data
    end
    return out
  end
  return handle, traces, reader
end

describe("a system", function()
  local cleanup
  before_each(function()
    cleanup = {}
    testing.freeze(1000)
  end)
  after_each(function()
    for _, s in ipairs(cleanup) do s:stop() end
    testing.real()
  end)
  local function track(...)
    for _, s in ipairs { ... } do cleanup[#cleanup + 1] = s end
    return ...
  end

  it("runs setup once, before the first step, and passes self and dt to step", function()
    local h, traces, r = spawn([[
      function sys:setup_body() trace { ev = "setup", is_self = self == sys } end
      function sys:step(dt) trace { ev = "step", dt = dt, is_self = self == sys } end
    ]], { tick_rate = 2 })
    track(h, r)
    testing.advance(1)
    local t = traces()
    assert.are.same({ ev = "setup", is_self = true }, t[1])
    assert.are.same({ ev = "step", dt = 0, is_self = true }, t[2])
    assert.are.same({ ev = "step", dt = 0.5, is_self = true }, t[3])
    assert.are.same({ ev = "step", dt = 0.5, is_self = true }, t[4])
    assert.are.equal(4, #t)
  end)

  it("steps at tick_rate on a fixed schedule", function()
    local h, _, r = spawn([[ function sys:step(dt) end ]], { tick_rate = 4 })
    track(h, r)
    testing.advance(0)
    assert.are.equal(1, h:stats().steps)
    testing.advance(1)
    assert.are.equal(5, h:stats().steps)
    testing.advance(0.125)
    assert.are.equal(5, h:stats().steps)
    testing.advance(0.125)
    assert.are.equal(6, h:stats().steps)
    testing.advance(10)
    assert.are.equal(46, h:stats().steps)
    assert.are.equal(0, h:stats().overruns)
  end)

  it("never overlaps steps and merges the ticks missed by a long step into overruns", function()
    local h, traces, r = spawn([[
      local active, n = 0, 0
      function sys:step(dt)
        n = n + 1
        active = active + 1
        trace { ev = "start", n = n, active = active, dt = dt, at = sssn.now() }
        if n == 1 then sssn.sleep(2.5) end
        active = active - 1
      end
    ]], { tick_rate = 1 })
    track(h, r)
    testing.advance(3)
    local t = traces()
    assert.are.equal(3, #t)
    for _, e in ipairs(t) do assert.are.equal(1, e.active) end
    assert.are.same({ 1000, 1002.5, 1003 }, { t[1].at, t[2].at, t[3].at })
    assert.are.equal(2.5, t[2].dt)
    assert.are.equal(0.5, t[3].dt)
    assert.are.equal(2, h:stats().overruns)
  end)

  it("yields in sssn.sleep without holding up other systems", function()
    local sleeper, _, r1 = spawn([[ function sys:step() sssn.sleep(60) end ]])
    local ticker, _, r2 = spawn([[ function sys:step() end ]])
    track(sleeper, ticker, r1, r2)
    testing.advance(3)
    assert.are.equal(1, sleeper:stats().steps)
    assert.are.equal(4, ticker:stats().steps)
  end)

  it("can sleep in setup; the first step waits for setup to finish", function()
    local h, traces, r = spawn([[
      function sys:setup_body() sssn.sleep(2); trace { ev = "setup done", at = sssn.now() } end
      function sys:step() trace { ev = "step", at = sssn.now() } end
    ]])
    track(h, r)
    testing.advance(1)
    assert.are.equal(0, h:stats().steps)
    testing.advance(1)
    local t = traces()
    assert.are.same({ ev = "setup done", at = 1002 }, t[1])
    assert.are.same({ ev = "step", at = 1002 }, t[2])
  end)

  it("logs and counts errors in step and keeps stepping, while other systems carry on", function()
    local bad, _, r1 = spawn([[ function sys:step() error("boom") end ]])
    local good, _, r2 = spawn([[ function sys:step() end ]])
    track(bad, good, r1, r2)
    testing.advance(4)
    assert.are.equal(5, bad:stats().errors)
    assert.are.equal(5, bad:stats().steps)
    assert.are.equal("running", bad:stats().state)
    assert.are.equal(5, good:stats().steps)
    assert.are.equal(0, good:stats().errors)
  end)

  it("counts an error in setup and still starts stepping", function()
    local h, _, r = spawn([[
      function sys:setup_body() error("setup failed") end
      function sys:step() end
    ]])
    track(h, r)
    testing.advance(1)
    assert.are.equal(1, h:stats().errors)
    assert.are.equal(2, h:stats().steps)
  end)

  it("stops after max_errors consecutive errors when on_error is 'stop'", function()
    local h, _, r = spawn([[ function sys:step() error("boom") end ]],
      { on_error = "stop", max_errors = 3 })
    track(h, r)
    testing.advance(10)
    assert.are.equal("stopped", h:stats().state)
    assert.are.equal(3, h:stats().errors)
  end)

  it("stops at once when it calls self:stop() from step; the step ends at its next wait", function()
    local h, traces, r = spawn([[
      local n = 0
      function sys:step()
        n = n + 1
        trace { ev = "step", n = n }
        if n == 2 then
          self:stop()
          sssn.sleep(1)
          trace { ev = "never" }
        end
      end
    ]])
    track(r)
    testing.advance(1)
    assert.are.equal("stopped", h:stats().state)
    testing.advance(5)
    assert.are.equal(2, h:stats().steps)
    assert.are.equal(0, h:stats().errors)
    assert.are.same({ { ev = "step", n = 1 }, { ev = "step", n = 2 } }, traces())
  end)

  it("refuses to resume or close the host's own coroutines, and stops cleanly after the attempt", function()
    local h, traces, r = spawn([[
      function sys:step()
        local me = coroutine.running()
        local ok1, e1 = pcall(coroutine.resume, me)
        sssn.spawn(function()
          sssn.sleep(0) -- until the step waits in its sleep below
          local ok2, e2 = pcall(coroutine.resume, me)
          local ok3, e3 = pcall(coroutine.close, me)
          local own = coroutine.create(function(x) coroutine.yield(x + 1) end)
          local ok4, v4 = coroutine.resume(own, 1)
          trace { ok1 = ok1, e1 = e1, ok2 = ok2, e2 = e2, ok3 = ok3, e3 = e3, ok4 = ok4, v4 = v4,
            status = coroutine.status(me) }
          sys:stop()
        end)
        sssn.sleep(10)
        trace { ev = "resumed by someone else" }
      end
    ]])
    track(r)
    testing.advance(0)
    testing.advance(1)
    assert.are.equal("stopped", h:stats().state)
    local t = traces()
    assert.are.equal(1, #t)
    assert.is_false(t[1].ok1)
    assert.is_false(t[1].ok2)
    assert.is_false(t[1].ok3)
    testing.assert_mentions(t[1].e2, "coroutine.resume: this coroutine is the host's step task of system")
    testing.assert_mentions(t[1].e3, "coroutine.close: this coroutine is the host's step task")
    assert.are.same({ true, 2, "suspended" }, { t[1].ok4, t[1].v4, t[1].status })
    testing.advance(20)
    assert.are.equal(0, h:stats().errors)
  end)

  it("survives a subscriber that unsubscribes or stops its system from inside its callback", function()
    local h1, _, r1 = spawn([[
      function sys:setup_body()
        self:add_channel(sssn.broadcast { id = self.id .. "-in" })
        self:subscribe_channel(self.id .. "-in", function(m)
          trace { got = m.content.data.n }
          self:unsubscribe_channel(self.id .. "-in")
        end)
      end
      function sys:step() self:write_channel(self.id .. "-in", { n = self:stats().steps }) end
    ]])
    local h2, _, r2 = spawn([[
      function sys:setup_body()
        self:add_channel(sssn.broadcast { id = self.id .. "-in" })
        self:subscribe_channel(self.id .. "-in", function() self:stop() end)
      end
      function sys:step() self:write_channel(self.id .. "-in", { x = 1 }) end
    ]])
    local h3, _, r3 = spawn([[
      function sys:setup_body()
        self:add_channel(sssn.periodic { id = self.id .. "-p", period = 0.5, pull = function() self:stop() end })
      end
    ]])
    track(h1, r1, r2, r3)
    testing.advance(3)
    assert.are.equal("running", h1:stats().state)
    assert.are.equal("stopped", h2:stats().state)
    assert.are.equal("stopped", h3:stats().state)
  end)

  it("counts a memory error that escapes step without taking the host down", function()
    local h, _, r = spawn([[
      function sys:step()
        local t = {}
        for i = 1, 1e7 do t[i] = ("y"):rep(64) .. i end
      end
    ]], { memory_limit = 2 * 1024 * 1024 })
    local other, _, r2 = spawn([[ function sys:step() end ]])
    track(h, other, r, r2)
    testing.advance(2)
    assert.are.equal(3, h:stats().errors)
    assert.are.equal("running", h:stats().state)
    assert.are.equal(3, other:stats().steps)
  end)

  it("keeps ticking at its rate when the spec switches to the test clock", function()
    testing.real()
    local h, _, r = spawn([[ function sys:step() end ]], { tick_rate = 10 })
    track(h, r)
    testing.freeze(5000)
    local before = h:stats().steps
    testing.advance(1)
    assert.is_true(h:stats().steps - before >= 9)
  end)

  it("refuses the host's reserved id", function()
    assert.has_error(function()
      testing.spawn { id = "sssn-host", source = "return require('sssn').system { id = 'sssn-host' }" }
    end)
  end)

  it("closes to-be-closed variables of a stopped step without harm", function()
    local h, _, r = spawn([[
      function sys:step()
        local guard <close> = setmetatable({}, { __close = function() pcall(sssn.sleep, 0.1) end })
        sssn.sleep(10)
      end
    ]])
    track(r)
    testing.advance(1)
    h:stop()
    testing.advance(1)
    assert.are.equal("stopped", h:stats().state)
  end)

  it("raises 'not enough memory' in a system over its cap, without harming others", function()
    local h, traces, r = spawn([[
      function sys:step()
        if self.done then return end
        self.done = true
        local ok, err = pcall(function()
          local t = {}
          for i = 1, 1e7 do t[i] = ("x"):rep(64) .. i end
        end)
        collectgarbage()
        trace { ok = ok, err = tostring(err) }
      end
    ]], { memory_limit = 2 * 1024 * 1024 })
    local other, _, r2 = spawn([[ function sys:step() local t = {} for i = 1, 1e5 do t[i] = i end end ]])
    track(h, other, r, r2)
    testing.advance(2)
    local t = traces()
    assert.are.equal(false, t[1].ok)
    assert.matches("not enough memory", t[1].err)
    assert.is_true(h:stats().memory_peak <= 2 * 1024 * 1024)
    assert.are.equal(3, h:stats().steps)
    assert.are.equal(0, other:stats().errors)
  end)

  it("interrupts a step that loops without yielding (watchdog)", function()
    local h, _, r = spawn([[
      function sys:step() if not self.looped then self.looped = true; while true do end end end
    ]], { step_timeout = 0.2 })
    track(h, r)
    testing.advance(1)
    assert.are.equal(1, h:stats().errors)
    assert.are.equal(2, h:stats().steps)
  end)

  it("can be written as global setup/step functions, named after the chunk", function()
    local id = testing.uid("globals")
    local h = track(testing.spawn { id = id, source = [[
      local sssn = require "sssn"
      tick_rate = 4
      function setup(self) self.feed = self:add_channel(sssn.broadcast { id = self.id .. "-out" }) end
      function step(self, dt) self:write_channel(self.id .. "-out", { dt = dt }) end
    ]] })
    testing.advance(1)
    assert.are.equal(id, h.id)
    assert.are.equal(5, h:stats().steps)
    local r = track(testing.system(testing.uid("reader")))
    r:connect(id .. "-out")
    assert.are.equal(5, #r:read_channel(id .. "-out"))
  end)

  it("refuses a second system with the same id", function()
    local h, _, r = spawn([[ ]])
    track(h, r)
    assert.has_error(function()
      testing.spawn { id = h.id, source = ("return require('sssn').system { id = %q }"):format(h.id) }
    end)
  end)

  it("reports a script that does not load", function()
    assert.has_error(function() testing.spawn { id = "broken", source = "local x = = 1" } end,
      "sssn.testing.spawn: the system did not load (see the log above)")
    assert.has_error(function() testing.spawn { id = "empty", source = "local x = 1" } end)
  end)

  it("refuses sssn.sleep outside a system's coroutine with a clear error", function()
    assert.has_error(function() sssn.sleep(1) end,
      "sssn.sleep: not inside a system's setup, step, subscriber or pull, or inside a coroutine of your own (waiting calls must run in the host's coroutines)")
  end)

  it("checks the config given to sssn.system", function()
    assert.has_error(function() sssn.system { name = "no id" } end,
      "sssn: a system needs an id (a non-empty string) (sssn.system)")
    assert.has_error(function() testing.spawn { id = "bad-rate", source =
      "return require('sssn').system { id = 'bad-rate', tick_rate = -1 }" } end)
  end)

  it("refuses unknown fields in sssn.system, naming them", function()
    testing.assert_mentions(testing.error_of(sssn.system, { id = "typo", tick_rat = 10 }),
      "unknown field 'tick_rat'", "sssn.system", "tick_rate")
  end)

  it("refuses a system id longer than 256 bytes without harm to the host", function()
    local long = ("x"):rep(9000)
    assert.has_error(function() testing.spawn { id = "long-id", source =
      ("return require('sssn').system { id = %q }"):format(long) } end)
    assert.has_error(function() testing.system(long) end, "sssn.testing.system: the id is longer than 256 bytes")
    local ok = testing.spawn { id = "id-256", source =
      ("return require('sssn').system { id = %q }"):format(("y"):rep(256)) }
    track(ok)
    assert.are.equal(256, #ok.id)
    testing.advance(1)
    assert.are.equal("running", ok:stats().state)
  end)

  it("makes a request and waits for the reply with the same correlation_id", function()
    local q = testing.uid("adder-q")
    local server, _, r1 = spawn(([[
      function sys:setup_body() self:add_channel(sssn.work_queue { id = %q }) end
      function sys:step()
        for _, m in ipairs(self:claim_channel(%q)) do
          self:connect(m.reply_to)
          self:write_channel(m.reply_to, { noise = true }, { correlation_id = "other" })
          self:write_channel(m.reply_to, { sum = m.content.data.a + m.content.data.b },
            { correlation_id = m.correlation_id })
          self:acknowledge_channel(%q, { m })
        end
      end
    ]]):format(q, q, q), { tick_rate = 4 })
    track(server, r1)
    -- a queue nobody serves, for the time-out case
    local other = track(testing.system(testing.uid("q-owner")))
    other:add_channel(sssn.work_queue { id = q .. "-nobody" })
    local client, traces, r2 = spawn(([[
      function sys:setup_body()
        self:add_channel(sssn.mailbox { id = self.id .. "-replies" })
        self:connect(%q); self:connect(%q .. "-nobody")
      end
      function sys:step()
        if self.asked then return end
        self.asked = true
        local t0 = sssn.now()
        local reply = self:request(%q, { a = 2, b = 3 }, { reply_to = self.id .. "-replies", timeout = 5 })
        trace { sum = reply.content.data.sum, waited = sssn.now() - t0 }
        local none, err = self:request(%q .. "-nobody", { a = 1, b = 1 }, { reply_to = self.id .. "-replies", timeout = 2 })
        trace { none = none == nil, err = err }
      end
    ]]):format(q, q, q, q))
    track(client, r2)
    testing.advance(4)
    local t = traces()
    assert.are.equal(5, t[1].sum)
    assert.is_true(t[1].waited <= 0.25)
    assert.are.same({ none = true, err = "timeout" }, t[2])
  end)

  it("describes itself with upstream descriptor fields", function()
    local s = track(testing.system(testing.uid("desc"), nil))
    s.services = { { name = "thing", description = "does it" } }
    local ch = s:add_channel(sssn.broadcast { id = s.id .. "-out" })
    local d = s:descriptor()
    assert.are.equal(s.id, d.system_id)
    assert.are.equal(s.id, d.system_name)
    assert.are.same({ ch.id }, d.channels_write)
    assert.are.same({}, d.channels_read)
    assert.are.same({ { name = "thing", description = "does it" } }, d.services)
  end)
end)
