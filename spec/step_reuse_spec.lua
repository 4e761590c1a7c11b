-- The host reuses a task's coroutine for the state's next task once the task returned
-- normally (host/vm/task.c): nothing of one step may show in the next, and a coroutine that
-- ended any other way (an error, the watchdog, a stop while waiting) is not reused.
local sssn = require "sssn"
local testing = require "sssn.testing"

local readers = {} -- stopped after each test, so their ids are free for the next spec file

-- A system whose step is `body`; trace(t) writes t to its trace channel, which traces() reads.
local function spawn(body, opts)
  opts = opts or {}
  local id = testing.uid("reuse")
  local source = ([[
    local sssn = require "sssn"
    local sys = sssn.system { id = %q, tick_rate = 1 }
    local function trace(t) sys:write_channel(%q, t) end
    local n = 0
    function sys:setup() self:add_channel(sssn.broadcast { id = %q, capacity = 10000 }) end
    %s
    return sys
  ]]):format(id, id .. "-trace", id .. "-trace", body)
  local h = testing.spawn { id = id, source = source, step_timeout = opts.step_timeout }
  local reader = testing.system(testing.uid("reader"))
  reader:connect(id .. "-trace")
  readers[#readers + 1] = reader
  local function traces()
    local out = {}
    for _, m in ipairs(reader:read_channel(id .. "-trace", { limit = 10000 })) do
      out[#out + 1] = m.content.data
    end
    return out
  end
  return h, traces
end

-- How many frames the calling coroutine has (this function's excluded).
local FRAMES = [[
    local function frames()
      local k = 2
      while debug.getinfo(k, "l") do k = k + 1 end
      return k - 2
    end
]]

describe("a step's coroutine", function()
  local handles
  before_each(function()
    handles = {}
    testing.freeze(1000)
  end)
  after_each(function()
    for _, h in ipairs(handles) do h:stop() end
    for _, r in ipairs(readers) do r:stop() end
    readers = {}
    testing.real()
  end)
  local function track(h, ...)
    handles[#handles + 1] = h
    return h, ...
  end

  it("starts each step with only (self, dt) and no frames or locals left from the one before", function()
    local h, traces = track(spawn(FRAMES .. [[
      function sys:step(...)
        n = n + 1
        local nargs, self_ok = select("#", ...), self == sys
        local mine = n
        local seen = {}
        for i = 1, 200 do
          local name, value = debug.getlocal(1, i)
          if not name then break end
          seen[#seen + 1] = name
        end
        trace { n = n, nargs = nargs, self_ok = self_ok, frames = frames(), mine = mine,
          locals = table.concat(seen, ","), running = tostring(coroutine.running()) }
      end
    ]]))
    testing.advance(3)
    local t = traces()
    assert.are.equal(4, #t)
    for i, r in ipairs(t) do
      assert.are.same({ i, 1, true, i }, { r.n, r.nargs, r.self_ok, r.mine })
      assert.are.equal(t[1].frames, r.frames)
      assert.are.equal(t[1].locals, r.locals)
    end
    -- the same coroutine serves step after step: that is the reuse
    assert.are.equal(t[1].running, t[4].running)
  end)

  it("runs the next step normally after a step that raised, with the error's own line", function()
    local h, traces = track(spawn(FRAMES .. [[
      function sys:step()
        n = n + 1
        trace { n = n, frames = frames(), running = tostring(coroutine.running()) }
        if n % 2 == 1 then
          local function deep(k) if k == 0 then error("odd step " .. n) end return deep(k - 1) + 1 end
          deep(50)
        end
      end
    ]]))
    testing.advance(3)
    local t = traces()
    assert.are.equal(4, #t)
    for _, r in ipairs(t) do assert.are.equal(t[1].frames, r.frames) end
    assert.are.equal(2, h:stats().errors)
    assert.are.equal("running", h:stats().state)
    local log = testing.log()
    testing.assert_mentions(log, "error in step: [string \"" .. h.id .. "\"]:15: odd step 1")
    testing.assert_mentions(log, "error in step: [string \"" .. h.id .. "\"]:15: odd step 3")
    -- a coroutine that died of an error is not used again
    assert.are_not.equal(t[1].running, t[2].running)
  end)

  it("keeps waiting steps their own coroutine; the next step runs after the one that slept", function()
    local h, traces = track(spawn([[
      function sys:step()
        n = n + 1
        local mine = n
        if mine == 1 then
          local guard <close> = setmetatable({}, { __close = function() trace { closed = mine } end })
          sssn.sleep(2.5)
        end
        trace { step = mine, still = mine }
      end
    ]]))
    testing.advance(4)
    local t = traces()
    -- step 1 sleeps 2.5 s: slots 1 and 2 pass meanwhile and are merged into one step at 2.5
    assert.are.same({ closed = 1 }, t[1])
    assert.are.same({ step = 1, still = 1 }, t[2])
    assert.are.same({ step = 2, still = 2 }, t[3])
    assert.are.same({ step = 3, still = 3 }, t[4])
    assert.are.equal(0, h:stats().errors)
    assert.are.equal(2, h:stats().overruns)
  end)

  it("still has the watchdog in the step after one it interrupted", function()
    local h = track(spawn([[
      function sys:step()
        n = n + 1
        if n <= 2 then while true do end end
      end
    ]], { step_timeout = 0.1 }))
    testing.advance(2)
    assert.are.equal(2, h:stats().errors)
    assert.are.equal(3, h:stats().steps)
    assert.are.equal("running", h:stats().state)
  end)

  it("still has the watchdog in the step after one that caught the interruption", function()
    local h, traces = track(spawn([[
      function sys:step()
        n = n + 1
        if n == 1 then
          local ok, err = pcall(function() while true do end end)
          trace { ok = ok, err = tostring(err) }
        elseif n == 2 then
          while true do end
        end
      end
    ]], { step_timeout = 0.1 }))
    testing.advance(2)
    local t = traces()
    assert.is_false(t[1].ok)
    testing.assert_mentions(t[1].err, "interrupted by the watchdog")
    assert.are.equal(1, h:stats().errors)
    assert.are.equal(3, h:stats().steps)
  end)

  it("cannot be resumed once its step ended, though the next step will run in it", function()
    local h, traces = track(spawn([[
      function sys:step()
        n = n + 1
        if n > 1 then return end
        local saved = coroutine.running()
        sssn.spawn(function()
          sssn.sleep(0.5) -- between the first step and the second
          local status = coroutine.status(saved)
          local ok, err = coroutine.resume(saved, function() trace { ran = true } end)
          trace { status = status, ok = ok, err = err }
        end)
      end
    ]]))
    testing.advance(2)
    local t = traces()
    assert.are.equal(1, #t)
    assert.are.equal("dead", t[1].status)
    assert.is_false(t[1].ok)
    testing.assert_mentions(t[1].err, "cannot resume dead coroutine")
    assert.are.equal(0, h:stats().errors)
    assert.are.equal(3, h:stats().steps)
  end)

  it("keeps an idle system's memory flat over many steps", function()
    local h = track(spawn([[ function sys:step() n = n + 1 end ]]))
    testing.advance(10)
    collectgarbage()
    local m10 = h:stats().memory
    testing.advance(1000)
    assert.is_true(h:stats().memory <= m10 + 4096, ("%d -> %d bytes"):format(m10, h:stats().memory))
  end)
end)
