-- Channels as systems see them: the five kinds, the message envelope, content round trips,
-- and the errors a user meets. Runs inside the host (`sssn-host test`) with the real bindings;
-- time-dependent behaviour uses the test clock.
local sssn = require "sssn"
local testing = require "sssn.testing"

local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

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

-- An owner system with one channel of the given kind; returns the owner and the channel id.
local function channel_of(kind, cfg)
  cfg = cfg or {}
  cfg.id = cfg.id or testing.uid(kind)
  local owner = system("owner")
  local ch = owner:add_channel(sssn[kind](cfg))
  return owner, ch.id
end

-- A system connected to channel `id`.
local function reader(id, prefix)
  local r = system(prefix or "reader")
  r:connect(id)
  return r
end

local function datas(messages)
  local out = {}
  for i, m in ipairs(messages) do out[i] = m.content.data end
  return out
end

local function seqs(messages)
  local out = {}
  for i, m in ipairs(messages) do out[i] = m.seq end
  return out
end

local error_of = testing.error_of

local assert_mentions = testing.assert_mentions

local function keys_of(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

-- Writes `value` as content and reads it back through a channel.
local function round_trip(value)
  local owner, id = channel_of("broadcast")
  owner:write_channel(id, value)
  local got = owner:read_channel(id)
  assert.are.equal(1, #got)
  return got[1].content.data
end

describe("channels", function()
  after_each(function()
    for i = #made, 1, -1 do pcall(made[i].stop, made[i]) end
    made = {}
    testing.real()
  end)

  describe("broadcast", function()
    it("lets every reader see every message", function()
      local owner, id = channel_of("broadcast")
      local a, b = reader(id), reader(id)
      for i = 1, 3 do owner:write_channel(id, { n = i }) end
      assert.are.same({ { n = 1 }, { n = 2 }, { n = 3 } }, datas(a:read_channel(id)))
      assert.are.same({ { n = 1 }, { n = 2 }, { n = 3 } }, datas(b:read_channel(id)))
    end)

    it("keeps an independent cursor per reader", function()
      local owner, id = channel_of("broadcast")
      local a, b = reader(id), reader(id)
      owner:write_channel(id, "one")
      owner:write_channel(id, "two")
      assert.are.same({ "one", "two" }, datas(a:read_channel(id)))
      owner:write_channel(id, "three")
      assert.are.same({ "three" }, datas(a:read_channel(id)))
      assert.are.same({}, datas(a:read_channel(id)))
      -- b has read nothing yet: it still gets everything, and a's reads did not move it
      assert.are.same({ "one", "two", "three" }, datas(b:read_channel(id)))
    end)

    it("returns at most `limit` messages and resumes where the reader stopped", function()
      local owner, id = channel_of("broadcast")
      local r = reader(id)
      for i = 1, 5 do owner:write_channel(id, i) end
      assert.are.same({ 1, 2 }, seqs(r:read_channel(id, { limit = 2 })))
      assert.are.same({ 3, 4 }, seqs(r:read_channel(id, { limit = 2 })))
      assert.are.same({ 5 }, seqs(r:read_channel(id, { limit = 2 })))
    end)

    it("reads from just after a given seq with `after`", function()
      local owner, id = channel_of("broadcast")
      local r = reader(id)
      for i = 1, 5 do owner:write_channel(id, i * 10) end
      assert.are.same({ 40, 50 }, datas(r:read_channel(id, { after = 3 })))
      assert.are.same({ 20, 30 }, datas(r:read_channel(id, { after = 1, limit = 2 })))
      assert.are.same({}, r:read_channel(id, { after = 5 }))
    end)

    it("reports messages a slow reader lost to capacity as `missed`", function()
      local owner, id = channel_of("broadcast", { capacity = 3 })
      local slow, fast = reader(id, "slow"), reader(id, "fast")
      local none, missed0 = slow:read_channel(id) -- the slow reader's cursor starts here
      assert.are.same({}, none)
      assert.are.equal(0, missed0)
      local fast_seen = {}
      for i = 1, 5 do
        owner:write_channel(id, i)
        local got, missed = fast:read_channel(id)
        assert.are.equal(0, missed)
        for _, v in ipairs(datas(got)) do fast_seen[#fast_seen + 1] = v end
      end
      assert.are.same({ 1, 2, 3, 4, 5 }, fast_seen)
      local got, missed = slow:read_channel(id)
      assert.are.same({ 3, 4, 5 }, datas(got))
      assert.are.equal(2, missed)
      local again, missed_again = slow:read_channel(id)
      assert.are.same({}, again)
      assert.are.equal(0, missed_again)
    end)

    it("refuses exclusive reads", function()
      local owner, id = channel_of("broadcast")
      owner:write_channel(id, 1)
      local r = reader(id)
      assert_mentions(error_of(r.read_channel, r, id, { exclusive = true }), id, "broadcast", "not allowed")
      assert_mentions(error_of(r.claim_channel, r, id), id, "broadcast", "not allowed")
      -- the refused claims took nothing: a shared read still sees the message
      assert.are.same({ 1 }, datas(r:read_channel(id)))
    end)
  end)

  describe("message envelope", function()
    it("carries exactly id, seq, timestamp, sender, content, metadata and the routing fields", function()
      testing.freeze(1700000000.25)
      local owner, id = channel_of("broadcast")
      local r = reader(id)
      owner:write_channel(id, { celsius = 22.4 }, {
        metadata = { unit = "C", source = { sensor = 7 } },
        correlation_id = "corr-1",
        reply_to = "replies",
        recipient_id = "someone",
      })
      local m = r:read_channel(id)[1]
      assert.are.same({ "content", "correlation_id", "id", "metadata", "recipient_id", "reply_to",
        "sender_id", "seq", "timestamp" }, keys_of(m))
      assert.is_string(m.id)
      assert.matches(UUID, m.id)
      assert.are.equal("integer", math.type(m.seq))
      assert.are.equal(1, m.seq)
      assert.are.equal(1700000000.25, m.timestamp)
      assert.are.equal(owner.id, m.sender_id)
      assert.are.same({ data = { celsius = 22.4 } }, m.content)
      assert.are.same({ unit = "C", source = { sensor = 7 } }, m.metadata)
      assert.are.equal("corr-1", m.correlation_id)
      assert.are.equal("replies", m.reply_to)
      assert.are.equal("someone", m.recipient_id)
    end)

    it("leaves unset routing fields out and gives empty metadata by default", function()
      testing.freeze(1700000000)
      local owner, id = channel_of("broadcast")
      owner:write_channel(id, "hello")
      local m = owner:read_channel(id)[1]
      assert.are.same({ "content", "id", "metadata", "sender_id", "seq", "timestamp" }, keys_of(m))
      assert.are.same({}, m.metadata)
      assert.are.same({ data = "hello" }, m.content)
    end)

    it("returns the message id and seq from write_channel", function()
      local owner, id = channel_of("broadcast")
      local mid1, seq1 = owner:write_channel(id, "a")
      local mid2, seq2 = owner:write_channel(id, "b")
      assert.matches(UUID, mid1)
      assert.matches(UUID, mid2)
      assert.are_not.equal(mid1, mid2)
      assert.are.equal(1, seq1)
      assert.are.equal(2, seq2)
      local got = owner:read_channel(id)
      assert.are.equal(mid1, got[1].id)
      assert.are.equal(mid2, got[2].id)
    end)

    it("stamps messages with the host clock, keeping the sub-second part", function()
      testing.freeze(1700000000.123456)
      local owner, id = channel_of("broadcast")
      owner:write_channel(id, 1)
      testing.advance(0.5)
      owner:write_channel(id, 2)
      local got = owner:read_channel(id)
      assert.are.equal("float", math.type(got[1].timestamp))
      assert.are.equal(1700000000.123456, got[1].timestamp)
      assert.are.equal(1700000000.623456, got[2].timestamp)
      assert.is_true(got[2].timestamp % 1 > 0.6)
    end)
  end)

  describe("content", function()
    it("keeps integers as integers", function()
      local data = round_trip({ n = 42, neg = -7, zero = 0, list = { 1, 2, 3 } })
      assert.are.same({ n = 42, neg = -7, zero = 0, list = { 1, 2, 3 } }, data)
      assert.are.equal("integer", math.type(data.n))
      assert.are.equal("integer", math.type(data.neg))
      assert.are.equal("integer", math.type(data.zero))
      assert.are.equal("integer", math.type(data.list[2]))
    end)

    it("keeps large integers exact up to 2^53", function()
      local data = round_trip({ big = 1 << 53, float_big = 2 ^ 53, id = 123456789012345, neg = -(1 << 53) })
      assert.are.equal(9007199254740992, data.big)
      assert.are.equal("integer", math.type(data.big))
      assert.are.equal(2 ^ 53, data.float_big)
      assert.are.equal(123456789012345, data.id)
      assert.are.equal("integer", math.type(data.id))
      assert.are.equal(-9007199254740992, data.neg)
    end)

    it("keeps floats exact", function()
      local data = round_trip({ a = 0.1, b = 22.4, c = 1 / 3, d = -1.5e-300, e = 1700000000.123456 })
      assert.are.equal(0.1, data.a)
      assert.are.equal(22.4, data.b)
      assert.are.equal(1 / 3, data.c)
      assert.are.equal(-1.5e-300, data.d)
      assert.are.equal(1700000000.123456, data.e)
      assert.are.equal("float", math.type(data.a))
    end)

    it("round-trips nested tables, booleans and strings with quotes, newlines and UTF-8", function()
      local value = {
        text = "she said \"hi\"\nthen left\t\\ back\\slash / \1\31",
        utf8 = "héllo wörld ✓ 温度 🙂",
        nested = { a = { b = { c = { true, false, "deep" } } } },
        empty_string = "",
        bytes = "nul\0inside, del\127, high \u{80}\u{ff}",
      }
      assert.are.same(value, round_trip(value))
      assert.are.equal("a plain string", round_trip("a plain string"))
      assert.are.equal(true, round_trip(true))
    end)

    it("writes an empty sssn.array{} as [] and an empty plain table as {}", function()
      assert.are.equal("[]", sssn.json.encode(sssn.array {}))
      assert.are.equal('{"list":[]}', sssn.json.encode({ list = sssn.array {} }))
      assert.are.equal("{}", sssn.json.encode({}))
    end)

    it("keeps an empty array an array through sssn.json.decode and encode", function()
      -- decoding [] and encoding the result again must give [] back, not {}
      assert.are.equal("[]", sssn.json.encode(sssn.json.decode("[]")))
      assert.are.equal('{"list":[]}', sssn.json.encode(sssn.json.decode('{"list":[]}')))
    end)

    it("keeps an empty array an array when it is read back from a channel", function()
      local data = round_trip({ list = sssn.array {} })
      assert.is_table(data.list)
      assert.are.equal(0, #data.list)
      assert.are.equal('{"list":[]}', sssn.json.encode(data))
    end)

    describe("refuses values JSON cannot carry, naming where they are", function()
      local function refused(value, ...)
        local owner, id = channel_of("broadcast")
        local msg = error_of(owner.write_channel, owner, id, value)
        assert_mentions(msg, id, ...)
        -- nothing was written
        assert.are.equal(0, sssn.channel_stats(id).last_seq)
        assert.are.same({}, owner:read_channel(id))
      end

      it("NaN", function() refused({ x = 0 / 0 }, "NaN", "data.x") end)
      it("infinity", function() refused({ y = math.huge }, "inf", "data.y") end)
      it("functions", function() refused({ cb = function() end }, "function", "data.cb") end)
      it("NaN deep inside", function() refused({ a = { b = { 1, 0 / 0 } } }, "NaN", "data.a.b[2]") end)

      it("cycles", function()
        local t = { name = "loop" }
        t.self = t
        refused({ x = t }, "cycle", "data.x.self")
      end)

      it("bad metadata", function()
        local owner, id = channel_of("broadcast")
        local msg = error_of(owner.write_channel, owner, id, "ok", { metadata = { f = print } })
        assert_mentions(msg, "function", "metadata.f")
        assert.are.same({}, owner:read_channel(id))
      end)
    end)
  end)

  describe("work_queue", function()
    it("refuses shared reads and points to claim_channel", function()
      local owner, id = channel_of("work_queue")
      owner:write_channel(id, "job")
      local w = reader(id, "worker")
      assert_mentions(error_of(w.read_channel, w, id), id, "work_queue", "claim_channel")
      assert_mentions(error_of(w.subscribe_channel, w, id, function() end), id, "claim_channel")
    end)

    it("gives two claimers distinct messages", function()
      local owner, id = channel_of("work_queue")
      owner:write_channel(id, "job-1")
      owner:write_channel(id, "job-2")
      local a, b = reader(id, "worker"), reader(id, "worker")
      local got_a = a:claim_channel(id, { limit = 1 })
      local got_b = b:claim_channel(id, { limit = 1 })
      assert.are.same({ "job-1" }, datas(got_a))
      assert.are.same({ "job-2" }, datas(got_b))
      assert.are_not.equal(got_a[1].id, got_b[1].id)
      -- both are claimed now: nothing left for anyone
      assert.are.same({}, a:claim_channel(id))
      assert.are.same({}, b:claim_channel(id))
    end)

    it("offers a message again once its claim has expired", function()
      testing.freeze(1700000000)
      local owner, id = channel_of("work_queue", { claim_timeout = 5 })
      owner:write_channel(id, "job")
      local a, b = reader(id, "worker"), reader(id, "worker")
      local claimed = a:claim_channel(id)
      assert.are.same({ "job" }, datas(claimed))
      testing.advance(4.9)
      assert.are.same({}, b:claim_channel(id))
      testing.advance(0.1)
      local again = b:claim_channel(id)
      assert.are.same({ "job" }, datas(again))
      assert.are.equal(claimed[1].id, again[1].id)
      -- a's lapsed claim no longer lets it acknowledge; b's does
      assert.are.equal(0, a:acknowledge_channel(id, { claimed[1].id }))
      assert.are.equal(1, b:acknowledge_channel(id, again))
      assert.are.equal(0, sssn.channel_stats(id).pending)
    end)

    it("ignores a nack from a worker that does not hold the claim", function()
      local owner, id = channel_of("work_queue")
      owner:write_channel(id, "job")
      local a, b = reader(id, "worker"), reader(id, "worker")
      local claimed = a:claim_channel(id)
      assert.are.equal(0, b:nack_channel(id, { claimed[1].id }))
      assert.are.same({}, b:claim_channel(id))
    end)

    it("offers a message again at once when its holder nacks it", function()
      local owner, id = channel_of("work_queue")
      owner:write_channel(id, "job")
      local a, b = reader(id, "worker"), reader(id, "worker")
      local claimed = a:claim_channel(id)
      assert.are.equal(1, a:nack_channel(id, claimed))
      local again = b:claim_channel(id)
      assert.are.same({ "job" }, datas(again))
      assert.are.equal(claimed[1].id, again[1].id)
    end)

    it("ignores an acknowledge from a worker that does not hold the claim", function()
      local owner, id = channel_of("work_queue")
      owner:write_channel(id, "job")
      local a, b = reader(id, "worker"), reader(id, "worker")
      local claimed = a:claim_channel(id)
      assert.are.equal(0, b:acknowledge_channel(id, { claimed[1].id }))
      assert.are.equal(1, sssn.channel_stats(id).pending)
      assert.are.equal(1, a:acknowledge_channel(id, { claimed[1].id }))
      assert.are.equal(0, sssn.channel_stats(id).pending)
      -- done work is never offered again
      assert.are.same({}, b:claim_channel(id))
    end)

    it("takes claimed messages or their ids, mixed, in the binding too, and names a bad item", function()
      local core = require "sssn.core"
      local owner, id = channel_of("work_queue")
      for i = 1, 3 do owner:write_channel(id, "job-" .. i) end
      local w = reader(id, "worker")
      local claimed = w:claim_channel(id)
      local handle = rawget(w, "_sys")
      -- the messages themselves, as claim_channel gave them, and a plain id
      assert.are.equal(2, core.ack(handle, id, { claimed[1], claimed[2].id }))
      assert.are.equal(1, sssn.channel_stats(id).pending)
      assert_mentions(error_of(core.ack, handle, id, { claimed[3], {} }), "strings or messages", "item 2")
      assert_mentions(error_of(core.nack, handle, id, { 42 }), "item 1")
      assert.are.equal(1, sssn.channel_stats(id).pending) -- a refused call acknowledged nothing
      assert.are.equal(1, core.ack(handle, id, { claimed[3] }))
      assert.are.equal(0, sssn.channel_stats(id).pending)
    end)

    it("refuses writes when full of unfinished work", function()
      local owner, id = channel_of("work_queue", { capacity = 2 })
      owner:write_channel(id, "job-1")
      owner:write_channel(id, "job-2")
      assert_mentions(error_of(owner.write_channel, owner, id, "job-3"), id, "full")
      local w = reader(id, "worker")
      local first = w:claim_channel(id, { limit = 1 })
      assert.are.equal(1, w:acknowledge_channel(id, first))
      -- the acknowledged work made room
      owner:write_channel(id, "job-3")
      assert.are.same({ "job-2", "job-3" }, datas(w:claim_channel(id)))
    end)
  end)

  describe("mailbox", function()
    it("shows a reader the messages addressed to it or to nobody, not others'", function()
      local owner, id = channel_of("mailbox")
      local alice, bob = reader(id, "alice"), reader(id, "bob")
      owner:write_channel(id, "for alice", { recipient_id = alice.id })
      owner:write_channel(id, "for bob", { recipient_id = bob.id })
      owner:write_channel(id, "for everyone")
      assert.are.same({ "for alice", "for everyone" }, datas(alice:read_channel(id)))
      assert.are.same({ "for bob", "for everyone" }, datas(bob:read_channel(id)))
      local m = alice:read_channel(id, { after = 0 })[1]
      assert.are.equal(alice.id, m.recipient_id)
    end)
  end)

  describe("passthrough", function()
    it("hands each message to one exclusive reader while shared readers still see all", function()
      local owner, id = channel_of("passthrough")
      owner:write_channel(id, "m1")
      owner:write_channel(id, "m2")
      owner:write_channel(id, "m3")
      local x, y, watcher = reader(id, "taker"), reader(id, "taker"), reader(id, "watcher")
      assert.are.same({ "m1", "m2" }, datas(x:read_channel(id, { exclusive = true, limit = 2 })))
      assert.are.same({ "m3" }, datas(y:claim_channel(id)))
      assert.are.same({}, x:claim_channel(id))
      assert.are.same({}, y:read_channel(id, { exclusive = true }))
      assert.are.same({ "m1", "m2", "m3" }, datas(watcher:read_channel(id)))
      assert.are.same({ "m1", "m2", "m3" }, datas(x:read_channel(id)))
    end)
  end)

  describe("periodic", function()
    it("gets one message from its pull function every period as the clock advances", function()
      testing.freeze(1700000000)
      local sys_id, ch_id = testing.uid("sampler"), testing.uid("samples")
      local h = spawn { id = sys_id, source = ([[
local sssn = require "sssn"
local s = sssn.system { id = %q }
local n = 0
function s:setup()
  self:add_channel(sssn.periodic { id = %q, period = 2, pull = function()
    n = n + 1
    return { n = n, at = sssn.now() }
  end })
end
return s
]]):format(sys_id, ch_id) }
      local r = reader(ch_id)
      assert.are.same({}, r:read_channel(ch_id))
      testing.advance(1.9)
      assert.are.same({}, r:read_channel(ch_id))
      testing.advance(0.1)
      assert.are.same({ { n = 1, at = 1700000002 } }, datas(r:read_channel(ch_id)))
      testing.advance(2)
      assert.are.same({ { n = 2, at = 1700000004 } }, datas(r:read_channel(ch_id)))
      testing.advance(6)
      assert.are.same({ 3, 4, 5 }, (function()
        local out = {}
        for i, d in ipairs(datas(r:read_channel(ch_id))) do out[i] = d.n end
        return out
      end)())
      local m = r:read_channel(ch_id, { after = 0, limit = 1 })[1]
      assert.are.equal(sys_id, m.sender_id)
      assert.are.equal(0, h:stats().errors)
    end)
  end)

  describe("subscribe_channel", function()
    it("delivers each message once, in order, through the loop rather than inside write", function()
      testing.freeze(1700000000)
      local owner, id = channel_of("broadcast")
      local sub = reader(id, "subscriber")
      local got = {}
      sub:subscribe_channel(id, function(m) got[#got + 1] = m.content.data end)
      owner:write_channel(id, 1)
      owner:write_channel(id, 2)
      owner:write_channel(id, 3)
      assert.are.same({}, got) -- nothing runs synchronously inside write_channel
      testing.run_pending()
      assert.are.same({ 1, 2, 3 }, got)
      testing.run_pending()
      assert.are.same({ 1, 2, 3 }, got)
      owner:write_channel(id, 4)
      assert.are.same({ 1, 2, 3 }, got)
      testing.advance(0.1)
      assert.are.same({ 1, 2, 3, 4 }, got)
    end)

    it("first delivers what the channel already holds", function()
      testing.freeze(1700000000)
      local owner, id = channel_of("broadcast")
      owner:write_channel(id, "early")
      local sub = reader(id, "subscriber")
      local got = {}
      sub:subscribe_channel(id, function(m) got[#got + 1] = m.content.data end)
      assert.are.same({}, got)
      testing.run_pending()
      assert.are.same({ "early" }, got)
    end)
    it("drains what is there in one task per subscription, not one per message", function()
      testing.freeze(1700000000)
      local owner, id = channel_of("broadcast", { capacity = 1000 })
      local sub = reader(id, "subscriber")
      local got = {}
      sub:subscribe_channel(id, function(m) got[#got + 1] = m.content.data end)
      testing.run_pending()
      for i = 1, 200 do owner:write_channel(id, i) end
      local before = sub:stats().tasks
      testing.run_pending()
      assert.are.equal(200, #got)
      for i = 1, 200 do assert.are.equal(i, got[i]) end
      -- batches of at most 64: four tasks for 200 messages
      assert.are.equal(4, sub:stats().tasks - before)
    end)

    it("goes on with the next message after a callback that fails", function()
      testing.freeze(1700000000)
      local owner, id = channel_of("broadcast")
      local sub = reader(id, "subscriber")
      local got = {}
      sub:subscribe_channel(id, function(m)
        if m.content.data == 2 then error("no twos") end
        got[#got + 1] = m.content.data
      end)
      for i = 1, 5 do owner:write_channel(id, i) end
      testing.run_pending()
      assert.are.same({ 1, 3, 4, 5 }, got)
      assert.are.equal(1, sub:stats().errors)
      testing.assert_logged("no twos")
    end)

    it("keeps order when a callback waits, and delivers later messages after it", function()
      testing.freeze(1700000000)
      local owner, id = channel_of("broadcast")
      local sub = reader(id, "subscriber")
      local got = {}
      sub:subscribe_channel(id, function(m)
        if m.content.data == 2 then sssn.sleep(1) end
        got[#got + 1] = m.content.data
      end)
      for i = 1, 4 do owner:write_channel(id, i) end
      testing.run_pending()
      assert.are.same({ 1 }, got)
      owner:write_channel(id, 5)
      testing.advance(1.5)
      assert.are.same({ 1, 2, 3, 4, 5 }, got)
    end)

    it("gives back to the cursor what it took but did not deliver when unsubscribed", function()
      testing.freeze(1700000000)
      local owner, id = channel_of("broadcast")
      local sub = reader(id, "subscriber")
      local got = {}
      sub:subscribe_channel(id, function(m)
        got[#got + 1] = m.content.data
        if m.content.data == 2 then sub:unsubscribe_channel(id) end
      end)
      for i = 1, 5 do owner:write_channel(id, i) end
      testing.run_pending()
      assert.are.same({ 1, 2 }, got)
      assert.are.same({ 3, 4, 5 }, datas(sub:read_channel(id)))
    end)

    it("still has the watchdog for each callback of a batch", function()
      testing.freeze(1700000000)
      local source = ([[
        local sssn = require "sssn"
        local sys = sssn.system { id = %q, tick_rate = 1 }
        function sys:setup()
          self:add_channel(sssn.broadcast { id = self.id .. "-in" })
          self:add_channel(sssn.broadcast { id = self.id .. "-out" })
          self:subscribe_channel(self.id .. "-in", function(m)
            if m.content.data == 2 or m.content.data == 4 then while true do end end
            self:write_channel(self.id .. "-out", m.content.data)
          end)
          for i = 1, 5 do self:write_channel(self.id .. "-in", i) end
        end
        return sys
      ]]):format(testing.uid("watched"))
      local h = spawn { source = source, step_timeout = 0.05 }
      testing.advance(1)
      local r = reader(h.id .. "-out", "out-reader")
      assert.are.same({ 1, 3, 5 }, datas(r:read_channel(h.id .. "-out")))
      assert.are.equal(2, h:stats().errors)
      testing.assert_logged("interrupted by the watchdog")
    end)
  end)

  describe("errors", function()
    it("refuses a write to a channel whose owner has stopped", function()
      local owner, id = channel_of("broadcast")
      local w = reader(id, "writer")
      w:write_channel(id, "before")
      owner:stop()
      assert_mentions(error_of(w.write_channel, w, id, "after"), id, "stopped")
      -- what was written before stays readable
      assert.are.same({ "before" }, datas(w:read_channel(id)))
    end)

    it("names the option when a write or read option has the wrong type", function()
      local owner, id = channel_of("broadcast")
      assert_mentions(error_of(owner.read_channel, owner, id, { limit = 0 }), "limit")
      assert_mentions(error_of(owner.read_channel, owner, id, { after = -1 }), "after")
      assert_mentions(error_of(owner.write_channel, owner, id, 1, { metadata = "not a table" }), "metadata")
      assert_mentions(error_of(owner.write_channel, owner, id, 1, { correlation_id = {} }), "correlation_id")
      assert.are.same({}, owner:read_channel(id))
    end)

    it("refuses writes from a stopped system", function()
      local owner, id = channel_of("broadcast")
      owner:stop()
      assert_mentions(error_of(owner.write_channel, owner, id, "x"), owner.id, "stopped")
    end)

    it("tells a reader to connect before reading a channel it did not connect", function()
      local owner, id = channel_of("broadcast")
      owner:write_channel(id, 1)
      local r = system("reader")
      assert_mentions(error_of(r.read_channel, r, id), id, "connect")
      assert_mentions(error_of(r.write_channel, r, id, 2), id, "connect")
      r:connect(id)
      assert.are.same({ 1 }, datas(r:read_channel(id)))
    end)

    it("reports a channel that does not exist", function()
      local r = system("reader")
      local missing = testing.uid("no-such-channel")
      assert_mentions(error_of(r.read_channel, r, missing), missing, "not found")
      assert_mentions(error_of(r.connect, r, missing), missing, "not found")
    end)

    it("keeps the registry channel read-only", function()
      local r = system("reader")
      r:connect("registry")
      assert_mentions(error_of(r.write_channel, r, "registry", { event = "registered" }), "registry", "read-only")
    end)

    it("refuses an unknown field in a channel config, naming it and the constructor", function()
      local e = error_of(sssn.broadcast, { id = testing.uid("typo"), capcity = 5 })
      assert_mentions(e, "unknown field 'capcity'", "sssn.broadcast", "capacity")
      assert_mentions(error_of(sssn.work_queue, { id = testing.uid("d"), persistent = true }),
        "unknown field 'persistent'", "sssn.work_queue", "durable")
      assert_mentions(error_of(sssn.mailbox, { id = testing.uid("p"), period = 1 }), "unknown field 'period'")
      assert_mentions(error_of(sssn.broadcast, { id = testing.uid("k"), kind = "mailbox" }), "unknown field 'kind'")
    end)

    it("refuses a durable channel on a host without --data-dir, and a durable that is not a boolean", function()
      local id = testing.uid("d")
      assert_mentions(error_of(sssn.work_queue, { id = id, durable = true }),
        "sssn.work_queue", "durable channel '" .. id .. "'", "--data-dir")
      assert_mentions(error_of(sssn.broadcast, { id = id, durable = "yes" }),
        "sssn.broadcast", "durable must be a boolean (got string)")
      local ch = sssn.broadcast { id = id, durable = false }
      assert.is_false(ch.info.durable)
    end)

    it("names the field and the constructor when a field has the wrong type or range", function()
      local id = testing.uid("typed")
      local function refused(ctor, cfg, ...)
        cfg.id = cfg.id or id
        local e = error_of(sssn[ctor], cfg)
        assert_mentions(e, "sssn." .. ctor .. ": ", ...)
        assert.is_nil(e:find("bad argument", 1, true), e)
      end
      refused("broadcast", { name = 5 }, "name must be a string (got number)")
      refused("broadcast", { capacity = "5" }, "capacity must be an integer")
      refused("broadcast", { capacity = 2.5 }, "capacity must be an integer")
      refused("broadcast", { capacity = 0 }, "capacity", "between 1 and 1000000")
      refused("broadcast", { capacity = 100000000 }, "capacity", "between 1 and 1000000")
      refused("broadcast", { visibility = "secret" }, "visibility", "public", "private")
      refused("work_queue", { claim_timeout = -1 }, "claim_timeout")
      refused("broadcast", { retention = "1h" }, "retention")
      refused("periodic", { period = 1e-300, pull = function() end }, "period", "0.001")
      refused("periodic", { pull = function() end }, "period is required")
      refused("periodic", { period = 1 }, "pull must be a function")
      refused("broadcast", { id = 42 }, "id must be a string")
      refused("broadcast", { id = "" }, "id must not be empty")
      refused("broadcast", { id = ("x"):rep(257) }, "id is longer than 256 bytes")
      refused("broadcast", { id = "a\nb" }, "id contains a control character")
      -- 256 bytes is fine
      local long = system("owner"):add_channel(sssn.broadcast { id = ("y"):rep(256) })
      assert.are.equal(256, #long.id)
    end)

    it("frees the id of a channel that was made but never added", function()
      local id = testing.uid("unadded")
      sssn.broadcast { id = id }
      sssn.broadcast { id = id } -- no system took the first one: its id is not held
      collectgarbage()
      local owner = system("owner")
      owner:add_channel(sssn.broadcast { id = id })
      local first, second = sssn.broadcast { id = testing.uid("twin") }, nil
      second = sssn.broadcast { id = first.id }
      owner:add_channel(first)
      assert_mentions(error_of(owner.add_channel, owner, second), first.id, "already exists")
    end)

    it("refuses unknown options of write_channel, read_channel and claim_channel", function()
      local owner, id = channel_of("broadcast")
      assert_mentions(error_of(owner.write_channel, owner, id, 1, { recipient = "x" }), "unknown option 'recipient'",
        "write_channel")
      assert_mentions(error_of(owner.read_channel, owner, id, { limt = 5 }), "unknown option 'limt'", "read_channel")
      local wq = system("wq-owner")
      local q = wq:add_channel(sssn.work_queue { id = testing.uid("wq") }).id
      assert_mentions(error_of(wq.claim_channel, wq, q, { count = 5 }), "unknown option 'count'", "claim_channel")
      assert.are.same({}, owner:read_channel(id))
    end)

    it("names the option, never an argument number, for a bad limit, after or id list", function()
      local owner, id = channel_of("broadcast")
      for _, call in ipairs {
        function() return owner:read_channel(id, { limit = "ten" }) end,
        function() return owner:read_channel(id, { after = 1.5 }) end,
        function() return sssn.sleep("soon") end,
        function() return sssn.log("loud", "x") end,
      } do
        local e = error_of(call)
        assert.is_nil(e:find("bad argument", 1, true), e)
      end
    end)

    it("refuses an HTTP wait too long to express, instead of overflowing it", function()
      local id = testing.uid("waiter")
      local h = spawn { id = id, source = ([[
        local sssn = require "sssn"
        local s = sssn.system { id = %q }
        function s:setup()
          self:connect { id = "far-away", endpoint = "http://127.0.0.1:9" }
          local ok, err = pcall(self.read_channel, self, "far-away", { wait = 1e300 })
          self:add_channel(sssn.broadcast { id = self.id .. "-out" })
          self:write_channel(self.id .. "-out", { ok = ok, err = tostring(err) })
        end
        return s
      ]]):format(id) }
      local r = reader(id .. "-out")
      local got = datas(r:read_channel(id .. "-out"))[1]
      assert.is_false(got.ok)
      assert_mentions(got.err, "time-out must be a number of seconds")
    end)

    it("refuses to create a channel with an id that already exists", function()
      local _, id = channel_of("broadcast")
      assert_mentions(error_of(sssn.broadcast, { id = id }), id, "already exists")
      assert_mentions(error_of(sssn.work_queue, { id = id }), id, "already exists")
      assert_mentions(error_of(sssn.broadcast, { id = "registry" }), "registry", "already exists")
    end)
  end)
end)
