-- Issue 11 in the registry: decoded entries cached across collections (and never stale), and
-- the "expired" events of a purge written lazily, when the registry channel is read, yet seen
-- whole and in order by every reader: a system reading the channel, sssn.registry:events, a
-- Lua waiter and the HTTP API's /registry/events long-poll.
local sssn = require "sssn"
local testing = require "sssn.testing"

local registry = sssn.registry

local made = {}
local function system(prefix)
  local s = testing.system(testing.uid(prefix))
  made[#made + 1] = s
  return s
end

after_each(function()
  for _, s in ipairs(made) do s:stop() end
  made = {}
  testing.real()
end)

describe("the per-state cache of decoded entries", function()
  it("hands back the same table across collections while the entry does not change", function()
    local id = testing.uid("cached")
    registry:register_channel({ id = id, name = "One" }, 60)
    -- held only weakly here: the cache itself keeps the table through full collections
    local held = setmetatable({ registry:get_channel(id) }, { __mode = "v" })
    collectgarbage("collect")
    collectgarbage("collect")
    assert.is_table(held[1])
    assert.are.equal(held[1], registry:get_channel(id))
  end)

  it("never returns a changed, removed or expired entry as it was", function()
    testing.freeze()
    local id = testing.uid("changing")
    registry:register_channel({ id = id, name = "One" }, 60)
    assert.are.equal("One", registry:get_channel(id).name)
    registry:register_channel({ id = id, name = "Two" }, 60)
    assert.are.equal("Two", registry:get_channel(id).name)
    local before = registry:get_channel(id).expires_at
    testing.advance(1)
    registry:register_channel({ id = id, name = "Two" }, 60) -- a heartbeat: only the expiry moves
    assert.is_true(registry:get_channel(id).expires_at > before)
    assert.is_true(registry:deregister_channel(id))
    assert.is_nil(registry:get_channel(id))
    registry:register_channel({ id = id, name = "Three" }, 5)
    assert.are.equal("Three", registry:get_channel(id).name)
    testing.advance(5)
    assert.is_nil(registry:get_channel(id))
    registry:register_channel({ id = id, name = "Four" }, 5)
    assert.are.equal("Four", registry:get_channel(id).name)
    registry:deregister_channel(id)
  end)

  it("stays right when more ids are looked up than it holds", function()
    local prefix = testing.uid("many")
    for i = 1, 5000 do registry:register_channel({ id = prefix .. i, description = tostring(i) }, 60) end
    for round = 1, 2 do
      for i = 1, 5000 do
        local e = registry:get_channel(prefix .. i)
        assert(e and e.description == tostring(i), ("round %d, id %d"):format(round, i))
      end
      collectgarbage("collect")
    end
    registry:register_channel({ id = prefix .. 1, description = "changed" }, 60)
    assert.are.equal("changed", registry:get_channel(prefix .. 1).description)
    for i = 1, 5000 do registry:deregister_channel(prefix .. i) end
    assert.is_nil(registry:get_channel(prefix .. 4999))
  end)

  it("keeps systems apart from channels of the same id", function()
    local id = testing.uid("both")
    registry:register_channel({ id = id, name = "channel" }, 60)
    registry:register_system({ system_id = id, system_name = "system" }, 60)
    assert.are.equal("channel", registry:get_channel(id).name)
    assert.are.equal("system", registry:get_system(id).system_name)
    registry:deregister_channel(id)
    registry:deregister_system(id)
  end)
end)

describe("expired events after a purge", function()
  local N = 2500 -- more than one loop turn writes by itself

  -- Registers N channels expiring in order (prefix..1 first), on the frozen clock at t.
  local function fill(prefix, t)
    testing.freeze(t)
    for i = 1, N do registry:register_channel({ id = prefix .. i }, 1 + i / 1e4) end
  end

  local function expired_of(events, prefix)
    local out = {}
    for _, ev in ipairs(events) do
      if ev.event == "expired" and ev.id:sub(1, #prefix) == prefix then out[#out + 1] = ev end
    end
    return out
  end

  it("are counted in /metrics right after the purge, before any loop turn", function()
    local core = require "sssn.core"
    local prefix, t = testing.uid("lazymetrics") .. "-", 1700000000
    fill(prefix, t)
    local function writes()
      return tonumber(core.metrics():match("\nsssn_channel_writes_total (%d+)"))
    end
    local before = writes()
    testing.freeze(t + 10)
    assert.is_true(registry:maintain() >= N)
    assert.is_true(writes() >= before + N, "the expired events are not in sssn_channel_writes_total")
  end)

  it("are all there, in order and before later events, for a reader right after the purge", function()
    local prefix, t = testing.uid("lazy") .. "-", 1700000000
    fill(prefix, t)
    local _, index0 = registry:events(math.maxinteger)
    local r = system("reader")
    r:connect("registry")
    r:read_channel("registry", { after = index0 })
    testing.freeze(t + 10) -- the maintenance timer does not fire on a switch
    assert.is_true(registry:maintain() >= N)
    local later = prefix .. "later"
    registry:register_channel({ id = later }, 60)
    -- read by a system, at once: no loop turn ran
    local read = {}
    repeat
      local batch = r:read_channel("registry", { limit = 1000 })
      for _, m in ipairs(batch) do read[#read + 1] = m.content.data end
    until #batch == 0
    local exp = expired_of(read, prefix)
    assert.are.equal(N, #exp)
    for i, ev in ipairs(exp) do
      assert(ev.id == prefix .. i, ("event %d is about %s"):format(i, ev.id))
      assert.are.equal("channel", ev.kind)
      assert.are.equal(t + 1 + i / 1e4, ev.entry.expires_at)
    end
    assert.are.equal(later, read[#read].id)
    assert.are.equal("registered", read[#read].event)
    -- sssn.registry:events shows the same events, with their index and the purge's time
    local all, index = {}, index0
    repeat
      local events
      events, index = registry:events(index)
      for _, ev in ipairs(events) do all[#all + 1] = ev end
    until #events == 0
    assert.are.equal(#read, #all)
    for i, ev in ipairs(all) do
      assert.are.equal(read[i].id, ev.id)
      assert.are.equal(read[i].event, ev.event)
    end
    for _, ev in ipairs(expired_of(all, prefix)) do assert.are.equal(t + 10, ev.timestamp) end
    registry:deregister_channel(later)
  end)

  it("wake a Lua waiter on the registry's events", function()
    local prefix, t = testing.uid("wake") .. "-", 1700000000
    fill(prefix, t)
    local _, index0 = registry:events(math.maxinteger)
    local sys_id = testing.uid("waiter")
    local h = testing.spawn { id = sys_id, source = ([[
local sssn = require "sssn"
local s = sssn.system { id = %q }
function s:setup()
  self:add_channel(sssn.broadcast { id = %q })
  sssn.spawn(function()
    local index, n, ordered, prefix = %d, 0, true, %q
    while n < %d do
      local events
      events, index = sssn.registry:events(index, 30)
      for _, ev in ipairs(events) do
        if ev.event == "expired" and ev.id:sub(1, #prefix) == prefix then
          n = n + 1
          if ev.id ~= prefix .. n then ordered = false end
        end
      end
    end
    self:write_channel(%q, { n = n, ordered = ordered })
  end)
end
return s
]]):format(sys_id, sys_id .. "-out", index0, prefix, N, sys_id .. "-out") }
    made[#made + 1] = h
    local reader = system("reader")
    reader:connect(sys_id .. "-out")
    testing.advance(0)
    testing.freeze(t + 10)
    assert.is_true(registry:maintain() >= N)
    -- nobody reads the channel: the loop writes the events in bounded steps and the waiter
    -- wakes on the first of them
    local out
    for _ = 1, 20 do
      testing.advance(0)
      out = reader:read_channel(sys_id .. "-out")
      if #out > 0 then break end
    end
    assert.are.equal(1, #out)
    assert.are.same({ n = N, ordered = true }, out[1].content.data)
  end)

  it("are written by the loop when nobody reads, so the channel's counters catch up", function()
    local prefix, t = testing.uid("turns") .. "-", 1700000000
    fill(prefix, t)
    local before = sssn.channel_stats("registry").writes
    testing.freeze(t + 10)
    local purged = registry:maintain()
    assert.is_true(purged >= N)
    testing.run_pending()
    testing.run_pending()
    testing.run_pending()
    assert.are.equal(before + purged, sssn.channel_stats("registry").writes)
  end)
end)

describe("expired events over HTTP", function()
  local FIXTURE = [[
local sssn = require "sssn"
local s = sssn.system { id = "filler" }
function s:setup()
  self:add_channel(sssn.broadcast { id = "ready" })
  for i = 1, %d do
    sssn.registry:register_channel({ id = "x" .. i }, 1.5 + i / 1e5, { keepalive = false })
  end
end
function s:step() end
return s
]]

  it("are all seen in order by a long-poll of /registry/events across the purge", function()
    local N = 3000
    local dir = testing.tmpdir()
    testing.write_file(dir .. "/fixture.lua", FIXTURE:format(N))
    local proc = testing.start_host({ "--listen", "127.0.0.1:0", "--maintenance", "0.5", dir .. "/fixture.lua" },
      { dir = dir })
    local ok, err = pcall(function()
      proc:ready("/channels/ready/info", 5)
      local decode = sssn.json.decode
      local index, seen, order_ok, registered = 0, {}, true, {}
      local deadline = testing.walltime() + 10
      while #seen < N and testing.walltime() < deadline do
        local status, body = testing.http("GET", ("%s/registry/events?index=%d&wait=2"):format(proc.base, index),
          { timeout = 5 })
        assert.are.equal(200, status, body)
        local res = decode(body)
        for _, ev in ipairs(res.events) do
          if ev.event == "registered" then registered[ev.id] = true end
          if ev.event == "expired" then
            seen[#seen + 1] = ev.id
            if ev.id ~= "x" .. #seen or not registered[ev.id] then order_ok = false end
            if ev.timestamp < ev.entry.expires_at then order_ok = false end
          end
        end
        index = res.index
      end
      assert.are.equal(N, #seen)
      assert.is_true(order_ok)
      -- and the same expired events for a watcher that asks afterwards from the start
      local again, after = {}, 0
      repeat
        local _, body = testing.http("GET", ("%s/registry/events?index=%d"):format(proc.base, after), { timeout = 5 })
        local res = decode(body)
        for _, ev in ipairs(res.events) do
          if ev.event == "expired" then again[#again + 1] = ev.id end
        end
        after = res.index
      until #res.events == 0
      assert.are.same(seen, again)
    end)
    proc:stop()
    testing.rmtree(dir)
    assert(ok, err)
  end)
end)
