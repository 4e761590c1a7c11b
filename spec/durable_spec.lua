-- End to end: durable channels (issue 13). Each spec starts real `sssn-host --listen
-- 127.0.0.1:0 --data-dir DIR SCRIPT...` processes as children of the runner, writes, claims,
-- acknowledges and reads through the HTTP API (many requests in flight at once with
-- testing.http_start), kills the host with a real SIGKILL (kill -9, by its pid) while requests
-- are still in flight, starts it again on the same DIR, and checks what comes back: every
-- acknowledged message with its id and seq, in order; claims, acks and cursors as they were;
-- retention on disk; corrupt files refused with a clear error. Every wait has a deadline, and
-- every host is stopped and every directory removed after each test, even when it fails.
local sssn = require "sssn"
local testing = require "sssn.testing"

local decode, encode = sssn.json.decode, sssn.json.encode
local now = testing.walltime

-- Helpers -------------------------------------------------------------------------------

local function try_decode(s)
  local ok, v = pcall(decode, s or "")
  if ok then return v end
  return nil
end

local function fill(src, vars)
  return (src:gsub("@(%u+)@", function(k) return tostring(vars[k]) end))
end

local function file_size(path)
  local f = io.open(path, "rb")
  if not f then return 0 end
  local n = f:seek("end")
  f:close()
  return n
end

-- A world: a directory with the scripts, the hosts' output (hostN.out, hostN.err) and the
-- data directory (DIR/data) every host of the world is started on. Closed after each test.
local World = {}
World.__index = World
local world

after_each(function()
  if world then world:close() world = nil end
end)

local function new_world(scripts)
  local w = setmetatable({ dir = testing.tmpdir(), procs = {}, starts = 0, paths = {} }, World)
  w.data = w.dir .. "/data"
  for name, src in pairs(scripts or {}) do
    w.paths[name] = ("%s/%s.lua"):format(w.dir, name)
    testing.write_file(w.paths[name], src)
  end
  world = w
  return w
end

-- Starts a host on the world's data directory running the named scripts (all of them by
-- default, in name order): opts.args (more options), opts.no_data_dir, opts.ready (a path that
-- must answer 200 before this returns, /health by default).
function World:start(opts)
  opts = opts or {}
  self.starts = self.starts + 1
  local args = { "--listen", "127.0.0.1:" .. (opts.port or 0) }
  if not opts.no_data_dir then args[#args + 1], args[#args + 2] = "--data-dir", opts.data_dir or self.data end
  for _, a in ipairs(opts.args or {}) do args[#args + 1] = a end
  local names = opts.scripts
  if not names then
    names = {}
    for name in pairs(self.paths) do names[#names + 1] = name end
    table.sort(names)
  end
  for _, name in ipairs(names) do args[#args + 1] = assert(self.paths[name], name) end
  local p = testing.start_host(args, { dir = self.dir, name = "host" .. self.starts, limit = 40 })
  self.procs[#self.procs + 1] = p
  p:ready(opts.ready, 10)
  return p
end

-- kill -9, by pid, and reap it.
function World:kill(p)
  assert.is_true(p:signal("KILL"), "the host had already exited:\n" .. p:err())
  p:wait_exit(5)
  assert.is_not_nil(p:status(), "the host did not die of SIGKILL")
end

-- SIGTERM, waited for: a clean stop.
function World:stop(p)
  local rc = p:stop(5)
  assert.is_not_nil(rc, "the host did not stop on SIGTERM")
end

function World:close()
  for i = #self.procs, 1, -1 do pcall(self.procs[i].stop, self.procs[i]) end
  testing.rmtree(self.dir)
end

-- Every host's stderr (for failure messages).
function World:logs()
  local parts = {}
  for _, p in ipairs(self.procs) do parts[#parts + 1] = ("--- %s stderr:\n%s"):format(p.name, p:err()) end
  return table.concat(parts, "\n")
end

-- http(method, url, {body=, token=, timeout=}) -> status, decoded JSON (or nil), raw body
local function http(method, url, opts)
  opts = opts or {}
  local status, body = testing.http(method, url, { body = opts.body, token = opts.token, timeout = opts.timeout or 5 })
  return status, status and try_decode(body), body
end

-- PUT data on channel id: the item_id of a 200 answer (fails the spec otherwise).
local function put(p, id, data)
  local s, j, raw = http("PUT", ("%s/channels/%s"):format(p.base, id), { body = encode(data) })
  assert.are.equal(200, s, raw)
  assert.is_string(j.item_id, raw)
  return j.item_id
end

-- One read: GET /channels/{id}?query as token: the decoded answer (fails the spec unless 200).
local function get(p, id, query, token)
  local url = ("%s/channels/%s%s"):format(p.base, id, query and ("?" .. query) or "")
  local s, j, raw = http("GET", url, { token = token })
  assert.are.equal(200, s, raw)
  return j
end

-- Everything channel id holds, oldest first, read page by page with a fresh reader.
local function read_all(p, id)
  local token = testing.uid("all")
  local out, after = {}, 0
  for _ = 1, 1000 do
    local j = get(p, id, ("limit=1000&after=%d"):format(after), token)
    for _, m in ipairs(j.messages) do out[#out + 1] = m end
    if #j.messages == 0 then return out, j end
    after = j.messages[#j.messages].seq
  end
  error("read_all: more than 1000 pages")
end

local function seqs_of(messages)
  local out = {}
  for i, m in ipairs(messages) do out[i] = m.seq end
  return out
end

-- a short textual list of numbers, for failure messages
local function list(t)
  local out = {}
  for i, v in ipairs(t) do
    if i > 40 then out[#out + 1] = ("... (%d in all)"):format(#t) break end
    out[#out + 1] = tostring(v)
  end
  return table.concat(out, ",")
end

local function range(a, b)
  local out = {}
  for i = a, b do out[#out + 1] = i end
  return out
end

-- Fixtures ------------------------------------------------------------------------------

-- Owns one durable channel of each shape the specs need, and one that is not durable.
local STORE = [[
local sssn = require "sssn"
local s = sssn.system { id = "store", name = "Durable Store" }
function s:setup()
  self:add_channel(sssn.broadcast { id = "feed", capacity = 100000, durable = true })
  self:add_channel(sssn.work_queue { id = "jobs", capacity = 1000, claim_timeout = @CLAIM@, durable = true })
  self:add_channel(sssn.broadcast { id = "cap10", capacity = 10, durable = true })
  self:add_channel(sssn.broadcast { id = "aged", retention = @AGE@, durable = true })
  self:add_channel(sssn.broadcast { id = "small", max_bytes = 4096, durable = true })
  self:add_channel(sssn.mailbox { id = "box", durable = true })
  self:add_channel(sssn.passthrough { id = "pass", durable = true })
  self:add_channel(sssn.broadcast { id = "memory" })
end
function s:step() end
return s
]]
local CLAIM, AGE = 3, 2

local function store_world(extra)
  local scripts = { store = fill(STORE, { CLAIM = CLAIM, AGE = AGE }) }
  for k, v in pairs(extra or {}) do scripts[k] = v end
  return new_world(scripts)
end

local STORE_READY = "/channels/memory/info"

-- A system owning one channel: OWNER{SYS=, KIND=, ID=, OPTS=}.
local OWNER = [[
local sssn = require "sssn"
local s = sssn.system { id = "@SYS@" }
function s:setup()
  self:add_channel(sssn.@KIND@ { id = "@ID@"@OPTS@ })
  print("@SYS@ set up")
end
function s:step() end
return s
]]
local function owner(sys, kind, id, opts)
  return fill(OWNER, { SYS = sys, KIND = kind, ID = id, OPTS = opts or ", durable = true" })
end

-- Writes one message from Lua on each start, after printing what the channel held for it:
-- "had ID SEQ RUN" per message its own cursor gives, then "wrote ID SEQ RUN".
local NOTES = [[
local sssn = require "sssn"
local s = sssn.system { id = "notes-writer" }
function s:setup()
  self:add_channel(sssn.broadcast { id = "notes", durable = true })
  local msgs = self:read_channel("notes", { limit = 100 })
  for _, m in ipairs(msgs) do
    print(("had %s %d %d"):format(m.id, m.seq, m.content.data.run))
  end
  local run = sssn.channel_stats("notes").last_seq + 1
  local id, seq = self:write_channel("notes", { run = run, text = "note " .. run },
    { metadata = { run = run }, correlation_id = "corr-" .. run })
  print(("wrote %s %s %d"):format(tostring(id), tostring(seq), run))
end
function s:step() end
return s
]]

-- Specs ---------------------------------------------------------------------------------

-- Keeps `width` PUTs of {n = N, pad = ...} on channel id in flight at once (each new one
-- started as soon as one is answered, a reader reading the channel alongside), until `target`
-- have been answered 200; then kills the host with SIGKILL while the last ones are still in
-- flight, and collects what they got. Returns the round: writes[n] = {n, after (acks seen when
-- it started), status, item_id}, acks (writes in the order their 200s came), seen[id] = seq
-- (what the reader was given before the kill), unanswered (how many got no answer).
local function write_then_kill(w, p, id, first_n, target, width)
  local round = { writes = {}, acks = {}, seen = {}, unanswered = 0, max_seen = 0 }
  local n = first_n - 1
  local url = ("%s/channels/%s"):format(p.base, id)
  local pad = ("x"):rep(100)
  local function launch()
    n = n + 1
    local wr = { n = n, after = #round.acks }
    wr.call = testing.http_start("PUT", url, { body = encode { n = n, pad = pad }, timeout = 5 })
    round.writes[n] = wr
    return wr
  end
  local function collect(wr)
    local status, body = wr.call:wait()
    wr.status = status
    if status == 200 then
      local j = try_decode(body)
      assert.is_table(j, body)
      assert.is_string(j.item_id, body)
      wr.item_id = j.item_id
      round.acks[#round.acks + 1] = wr
    elseif status == nil then
      round.unanswered = round.unanswered + 1
    else
      error(("PUT %d answered %s: %s"):format(wr.n, tostring(status), tostring(body)))
    end
  end
  local reader_token, reader_after, reader = testing.uid("watcher"), 0, nil
  local function read_on()
    if reader and not reader:done() then return end
    if reader then
      local s, body = reader:wait()
      local j = s == 200 and try_decode(body)
      if j then
        for _, m in ipairs(j.messages) do
          round.seen[m.id] = m.seq
          reader_after = math.max(reader_after, m.seq)
        end
      end
    end
    reader = testing.http_start("GET", ("%s?limit=1000&after=%d"):format(url, reader_after),
      { token = reader_token, timeout = 5 })
  end

  local slots = {}
  for i = 1, width do slots[i] = launch() end
  local deadline = now() + 8
  while #round.acks < target and now() < deadline do
    testing.run_for(0.001)
    for i, wr in ipairs(slots) do
      if wr.call:done() then
        collect(wr)
        slots[i] = launch()
      end
    end
    read_on()
  end
  assert.is_true(#round.acks >= target,
    ("only %d of %d writes were acknowledged within 8 s\n%s"):format(#round.acks, target, w:logs()))
  -- the kill lands while `width` PUTs are in flight
  w:kill(p)
  for _, wr in ipairs(slots) do collect(wr) end
  if reader then
    local s, body = reader:wait()
    local j = s == 200 and try_decode(body)
    for _, m in ipairs(j and j.messages or {}) do round.seen[m.id] = m.seq end
  end
  for _, seq in pairs(round.seen) do round.max_seen = math.max(round.max_seen, seq) end
  round.last_n = n
  return round
end

-- Checks the log read back after a restart against the rounds of writes before it: every
-- acknowledged item_id is there, once, with the seq a reader saw before the crash; seqs
-- strictly increase in the read's order; a write acknowledged before another was sent has the
-- lower seq; every message is one of the writes; no seq a reader saw went to another message.
local function check_log(log, rounds, logs)
  local by_id, by_n, seq_of_n = {}, {}, {}
  for i, m in ipairs(log) do
    assert.is_string(m.id)
    assert.is_number(m.seq)
    if i > 1 then
      assert.is_true(m.seq > log[i - 1].seq,
        ("seq %d comes after seq %d in the read"):format(m.seq, log[i - 1].seq))
    end
    assert.is_nil(by_id[m.id], "message id twice in the log: " .. m.id)
    by_id[m.id] = m
    local d = m.content and m.content.data
    assert.is_table(d, encode(m))
    assert.is_nil(by_n[d.n], ("write n=%s is in the log twice (seqs %s and %d)"):format(tostring(d.n),
      tostring(by_n[d.n] and by_n[d.n].seq), m.seq))
    by_n[d.n] = m
    seq_of_n[d.n] = m.seq
  end
  local seen_seq = {}
  for r, round in ipairs(rounds) do
    local missing = {}
    for _, wr in ipairs(round.acks) do
      local m = by_id[wr.item_id]
      if not m then
        missing[#missing + 1] = wr.n
      else
        assert.are.equal(wr.n, m.content.data.n, "item " .. wr.item_id .. " holds another write")
      end
    end
    assert.are.equal(0, #missing, ("round %d: %d acknowledged writes are gone after the restart: n = %s\n%s"):format(
      r, #missing, list(missing), logs))
    -- the seq a reader was given before the crash is the seq after it
    for id, seq in pairs(round.seen) do
      local m = by_id[id]
      if m then
        assert.are.equal(seq, m.seq, ("message %s had seq %d before the crash and %d after"):format(id, seq, m.seq))
      end
      seen_seq[seq] = seen_seq[seq] or id
    end
    -- order: a write sent after k acknowledgements came has a higher seq than those k
    local max_before = {}
    local maxs = 0
    for k, wr in ipairs(round.acks) do
      maxs = math.max(maxs, by_id[wr.item_id].seq)
      max_before[k] = maxs
    end
    for _, wr in pairs(round.writes) do
      local s = seq_of_n[wr.n]
      if s and wr.after > 0 then
        assert.is_true(s > max_before[wr.after], ("write n=%d (seq %d) was sent after %d writes were " ..
          "acknowledged, one of them with seq %d"):format(wr.n, s, wr.after, max_before[wr.after]))
      end
    end
    -- every message in the log is one of the writes
  end
  for n in pairs(by_n) do
    local known = false
    for _, round in ipairs(rounds) do if round.writes[n] then known = true end end
    assert.is_true(known, ("the log has a write n=%s that nobody sent"):format(tostring(n)))
  end
  -- no seq that a reader saw before a crash went to another message
  for _, m in ipairs(log) do
    local id = seen_seq[m.seq]
    assert.is_true(id == nil or id == m.id,
      ("seq %d went to message %s after the crash; a reader was given it for message %s before"):format(
        m.seq, m.id, tostring(id)))
  end
  return by_id
end

describe("a durable broadcast", function()
  for _, sync in ipairs { "full", "normal" } do
  it(("keeps every acknowledged write of 16 concurrent HTTP writers through kill -9, in order, with its seq " ..
    "(--sync %s)"):format(sync), function()
    local w = store_world()
    local rounds = {}
    local args = { "--sync", sync }
    local p = w:start { ready = STORE_READY, args = args }
    -- two rounds: the second crash hits a log that was itself recovered from a crash
    local first = 1
    for r = 1, 2 do
      rounds[r] = write_then_kill(w, p, "feed", first, 300, 16)
      assert.is_true(rounds[r].unanswered > 0,
        "every PUT was answered before the kill: it did not land in the middle of the writing")
      first = rounds[r].last_n + 1
      p = w:start { ready = STORE_READY, args = args }
      local log = read_all(p, "feed")
      check_log(log, rounds, w:logs())
      if r == 2 then
        -- every acknowledged write of round 1 is before every one of round 2
        local last1, first2 = 0, math.huge
        local by_id = {}
        for _, m in ipairs(log) do by_id[m.id] = m end
        for _, wr in ipairs(rounds[1].acks) do last1 = math.max(last1, by_id[wr.item_id].seq) end
        for _, wr in ipairs(rounds[2].acks) do first2 = math.min(first2, by_id[wr.item_id].seq) end
        assert.is_true(last1 < first2, ("round 2 has seq %d, below round 1's %d"):format(first2, last1))
      end
    end

    -- the next write gets a higher seq than any message before the crashes had
    local log = read_all(p, "feed")
    local top = 0
    for _, m in ipairs(log) do top = math.max(top, m.seq) end
    for _, round in ipairs(rounds) do top = math.max(top, round.max_seen) end
    local id = put(p, "feed", { n = 0, after = "restart" })
    local j = get(p, "feed", ("after=%d"):format(top), testing.uid("next"))
    assert.are.equal(1, #j.messages, encode(j))
    assert.are.equal(id, j.messages[1].id)
    assert.is_true(j.messages[1].seq > top, ("the write after the restart got seq %d; %d was used before"):format(
      j.messages[1].seq, top))
    -- the channel says it is durable; the one that is not came back empty
    local s, info, raw = http("GET", p.base .. "/channels/feed/info")
    assert.are.equal(200, s, raw)
    assert.is_true(info.durable, raw)
    s, info, raw = http("GET", p.base .. "/channels/memory/info")
    assert.are.equal(200, s, raw)
    assert.is_false(info.durable, raw)
  end)
  end

  it("keeps only what its capacity holds through kill -9 under concurrent writers, the newest acknowledged among them", function()
    local w = store_world()
    local p = w:start { ready = STORE_READY }
    local round = write_then_kill(w, p, "cap10", 1, 200, 16)
    p = w:start { ready = STORE_READY }
    local log = read_all(p, "cap10")
    assert.are.equal(10, #log, "capacity 10, after a crash: " .. list(seqs_of(log)))
    for i = 2, #log do assert.are.equal(log[i - 1].seq + 1, log[i].seq, list(seqs_of(log))) end
    local by_id = {}
    for _, m in ipairs(log) do
      by_id[m.id] = m
      assert.is_truthy(round.writes[m.content.data.n], "a message nobody wrote: " .. encode(m))
    end
    -- an acknowledged write a reader saw at a seq the log still covers is there
    for _, wr in ipairs(round.acks) do
      local seq = round.seen[wr.item_id]
      if seq and seq >= log[1].seq then
        assert.is_truthy(by_id[wr.item_id], ("acknowledged write n=%d (seq %d) is gone; the log holds %s"):format(
          wr.n, seq, list(seqs_of(log))))
        assert.are.equal(seq, by_id[wr.item_id].seq)
      end
    end
  end)

  it("never gives a seq a reader was shown before kill -9 to another message after it", function()
    -- a long-polling reader is answered as soon as a write lands; the host is killed the moment
    -- that answer arrives, while 16 more writes are in flight
    local w = store_world()
    local p = w:start { ready = STORE_READY }
    local shown, top, n = {}, 0, 0
    for _ = 1, 5 do
      local url = p.base .. "/channels/feed"
      local lp = testing.http_start("GET", ("%s?after=%d&wait=5&limit=1000"):format(url, top),
        { token = testing.uid("shown"), timeout = 8 })
      local puts = {}
      for i = 1, 16 do
        n = n + 1
        puts[i] = testing.http_start("PUT", url, { body = encode { n = n }, timeout = 5 })
      end
      local s, body = lp:wait()
      w:kill(p)
      assert.are.equal(200, s, body)
      for _, m in ipairs(decode(body).messages) do shown[m.seq] = m.id end
      for _, c in ipairs(puts) do c:wait() end
      p = w:start { ready = STORE_READY }
      -- more writes after the restart: a seq handed out again would show now
      for _ = 1, 16 do
        n = n + 1
        put(p, "feed", { n = n })
      end
      local log = read_all(p, "feed")
      for _, m in ipairs(log) do
        assert.is_true(shown[m.seq] == nil or shown[m.seq] == m.id, ("seq %d was shown to a reader as message %s " ..
          "before the crash, and is message %s (n=%s) after it"):format(m.seq, tostring(shown[m.seq]), m.id,
          tostring(m.content.data.n)))
      end
      top = log[#log].seq
    end
  end)

end)

describe("durable channels", function()
  it("are kept and a channel that is not durable is not: it starts empty after a restart, in a new epoch", function()
    local w = store_world()
    local p = w:start { ready = STORE_READY }
    put(p, "memory", { n = 1 })
    put(p, "feed", { n = 1 })
    local _, before_memory = read_all(p, "memory")
    local _, before_feed = read_all(p, "feed")
    w:stop(p)
    p = w:start { ready = STORE_READY }
    local memory, after_memory = read_all(p, "memory")
    local feed, after_feed = read_all(p, "feed")
    assert.are.equal(0, #memory)
    assert.are.equal(1, #feed)
    assert.are_not.equal(before_memory.epoch, after_memory.epoch, "a channel in memory kept its epoch across a restart")
    assert.are.equal(before_feed.epoch, after_feed.epoch, "a durable channel changed its epoch across a restart")
  end)

  it("do not give a message taken from a passthrough channel again after kill -9", function()
    local w = store_world()
    local p = w:start { ready = STORE_READY }
    for n = 1, 6 do put(p, "pass", { n = n }) end
    local took = get(p, "pass", "exclusive=true&limit=2", "taker")
    assert.are.equal(2, #took.messages)
    w:kill(p)
    p = w:start { ready = STORE_READY }
    local rest = get(p, "pass", "exclusive=true&limit=100", "taker-2")
    local ns = {}
    for i, m in ipairs(rest.messages) do ns[i] = m.content.data.n end
    assert.are.same({ 3, 4, 5, 6 }, ns)
  end)

  it("are each a file of its own under --data-dir (made 0700), named by the id escaped", function()
    local ids = { "plain.id-1_X", "a/b", "a%2Fb", "caf\u{e9} 1" }
    local w = new_world { ids = ([[
local sssn = require "sssn"
local s = sssn.system { id = "ids" }
local IDS = { "plain.id-1_X", "a/b", "a%2Fb", "caf\u{e9} 1" }
function s:setup()
  for _, id in ipairs(IDS) do
    self:add_channel(sssn.broadcast { id = id, durable = true })
    local msgs = self:read_channel(id, { limit = 10 })
    local got = {}
    for _, m in ipairs(msgs) do got[#got + 1] = m.content.data.id end
    print(("%q had {%s}"):format(id, table.concat(got, ",")))
    self:write_channel(id, { id = id })
  end
  print("ids done")
end
function s:step() end
return s
]]) }
    local p = w:start {}
    p:wait_output("ids done", 10)
    w:stop(p)
    local names = testing.run { "ls", "-1", w.data }
    local want = { "plain.id-1_X.sqlite", "a%2Fb.sqlite", "a%252Fb.sqlite", "caf%C3%A9%201.sqlite" }
    for _, name in ipairs(want) do
      local found = false
      for line in names:gmatch("[^\n]+") do if line:upper() == name:upper() then found = true end end
      assert.is_true(found, ("no %s in %s:\n%s"):format(name, w.data, names))
    end
    local mode = testing.run { "stat", "-c", "%a", w.data }
    assert.are.equal("700\n", mode)
    p = w:start {}
    p:wait_output("ids done", 10)
    for _, id in ipairs(ids) do
      local line = ("%q had {%s}\n"):format(id, id)
      assert.truthy(p:out():find(line, 1, true), "missing: " .. line .. p:out())
    end
  end)

  it("keep whole messages on broadcast, mailbox and passthrough: id, seq, timestamp, sender, data, metadata", function()
    local w = store_world()
    local p = w:start { ready = STORE_READY }
    local function put_env(id, env)
      local s, j, raw = http("PUT", ("%s/channels/%s?direct=true"):format(p.base, id), { body = encode(env) })
      assert.are.equal(200, s, raw)
      assert.are.equal(env.id, j.item_id, raw)
    end
    local big = ("0123456789abcdef"):rep(32 * 1024) -- 512 KiB
    for _, id in ipairs { "feed", "box", "pass" } do
      put_env(id, { id = testing.uid(id .. "-msg"), sender_id = "anonymous",
        content = { data = { id = id, deep = { 1, 2.5, "x", { (1 << 53) + 1 } }, text = "caf\u{e9} \u{1F600}" } },
        metadata = { k = "v" }, correlation_id = "c-" .. id, reply_to = "replies", recipient_id = sssn.null })
    end
    put_env("feed", { id = "big-one", content = { data = { big = big } } })
    put_env("box", { id = "for-alice", content = { data = "for alice" }, recipient_id = "alice" })
    local function snapshot()
      local out = {}
      for _, id in ipairs { "feed", "box", "pass" } do out[id] = read_all(p, id) end
      out.alice = get(p, "box", "limit=10&after=0", "alice").messages
      return out
    end
    local before = snapshot()
    assert.are.equal(2, #before.feed)
    assert.are.equal(big, before.feed[2].content.data.big)
    assert.are.equal(1, #before.box, "a mailbox shows another reader's message")
    assert.are.equal(2, #before.alice)
    w:kill(p)
    p = w:start { ready = STORE_READY }
    local after = snapshot()
    for _, id in ipairs { "feed", "box", "pass", "alice" } do
      assert.are.same(before[id], after[id], id)
    end
    -- a message id still finds its place in the log: after=<id> reads on from it
    local j = get(p, "feed", "after=" .. before.feed[1].id, testing.uid("by-id"))
    assert.are.equal(1, #j.messages)
    assert.are.equal("big-one", j.messages[1].id)
  end)
end)

describe("a durable work queue", function()
  it("never offers acknowledged work again after kill -9, and offers claimed work only once its claim lapsed", function()
    local w = store_world()
    local p = w:start { ready = STORE_READY }
    local N, CLAIMED, ACKED, NACKED = 30, 12, 6, 2
    local ids, n_of = {}, {}
    for n = 1, N do
      ids[n] = put(p, "jobs", { n = n })
      n_of[ids[n]] = n
    end
    -- worker-a claims the oldest 12, nacks 2 and acknowledges 6 of them; 18 were never claimed
    local sent = now()
    local claim = get(p, "jobs", ("exclusive=true&limit=%d"):format(CLAIMED), "worker-a")
    assert.are.equal(CLAIMED, #claim.messages, encode(claim))
    local acked, held, nacked = {}, {}, {}
    local ack_ids, nack_ids = {}, {}
    for i, m in ipairs(claim.messages) do
      if i <= ACKED then
        acked[m.id] = true
        ack_ids[#ack_ids + 1] = m.id
      elseif i <= ACKED + NACKED then
        nacked[m.id] = true
        nack_ids[#nack_ids + 1] = m.id
      else
        held[m.id] = true
      end
    end
    -- a nack is not waited for (README): the acknowledgement after it commits it too
    local s, j, raw = http("POST", p.base .. "/channels/jobs/nack", { body = encode { message_ids = nack_ids }, token = "worker-a" })
    assert.are.equal(200, s, raw)
    assert.are.equal(NACKED, j.nacked, raw)
    s, j, raw = http("POST", p.base .. "/channels/jobs/acknowledge",
      { body = encode { message_ids = ack_ids }, token = "worker-a" })
    assert.are.equal(200, s, raw)
    assert.are.equal(ACKED, j.acknowledged, raw)
    w:kill(p)

    p = w:start { ready = STORE_READY }
    assert.is_true(now() < sent + CLAIM - 0.5, "the restart took too long to tell a lapsed claim from a kept one")
    -- the never-claimed and the nacked ones are offered at once, and nothing else
    local got = get(p, "jobs", "exclusive=true&limit=100", "worker-b")
    local offered = {}
    for _, m in ipairs(got.messages) do
      assert.is_nil(acked[m.id], "acknowledged work came back: n=" .. tostring(n_of[m.id]))
      assert.is_nil(held[m.id], ("work claimed %.2f s ago (claim_timeout %d) was offered again: n=%s"):format(
        now() - sent, CLAIM, tostring(n_of[m.id])))
      offered[#offered + 1] = n_of[m.id]
    end
    table.sort(offered)
    local expect = range(ACKED + 1, ACKED + NACKED)
    for n = CLAIMED + 1, N do expect[#expect + 1] = n end
    assert.are.same(expect, offered)
    s, j, raw = http("POST", p.base .. "/channels/jobs/acknowledge",
      { body = encode { message_ids = (function()
        local t = {}
        for i, m in ipairs(got.messages) do t[i] = m.id end
        return t
      end)() }, token = "worker-b" })
    assert.are.equal(200, s, raw)
    assert.are.equal(N - CLAIMED + NACKED, j.acknowledged, raw)

    -- worker-a still holds its claims: it acknowledges one of them after the restart
    local done_late
    for id in pairs(held) do done_late = id break end
    s, j, raw = http("POST", p.base .. "/channels/jobs/acknowledge",
      { body = encode { message_ids = { done_late } }, token = "worker-a" })
    assert.are.equal(200, s, raw)
    assert.are.equal(1, j.acknowledged, "the claim did not survive the restart: " .. raw)
    held[done_late] = nil
    local want = {}
    for id in pairs(held) do want[#want + 1] = n_of[id] end
    table.sort(want)

    -- the rest of worker-a's claims lapse CLAIM s after they were made, not before
    local back, back_ids = {}, {}
    testing.eventually(CLAIM + 4, function()
      local r = get(p, "jobs", "exclusive=true&limit=100", "worker-c")
      local answered = now()
      for _, m in ipairs(r.messages) do
        assert.is_nil(acked[m.id], "acknowledged work came back: n=" .. tostring(n_of[m.id]))
        assert.is_true(held[m.id], ("n=%s was offered to worker-c, who should only see lapsed claims"):format(
          tostring(n_of[m.id])))
        assert.is_true(answered >= sent + CLAIM - 0.05, ("claimed work was offered %.2f s after its claim " ..
          "(claim_timeout %d)"):format(answered - sent, CLAIM))
        back[#back + 1] = n_of[m.id]
        back_ids[#back_ids + 1] = m.id
      end
      return #back >= #want
    end, 0.1)
    table.sort(back)
    assert.are.same(want, back)
    s, j, raw = http("POST", p.base .. "/channels/jobs/acknowledge",
      { body = encode { message_ids = back_ids }, token = "worker-c" })
    assert.are.equal(#want, j.acknowledged, raw)

    -- all acknowledged now: nothing comes back after another kill -9
    w:kill(p)
    p = w:start { ready = STORE_READY }
    assert.are.equal(0, #get(p, "jobs", "exclusive=true&limit=100", "worker-d").messages)
  end)

  it("offers at once, after a restart, work whose claim lapsed while the host was down", function()
    local w = new_world { quick = owner("quick-owner", "work_queue", "quick", ", durable = true, claim_timeout = 1") }
    local p = w:start { ready = "/channels/quick/info" }
    for n = 1, 3 do put(p, "quick", { n = n }) end
    assert.are.equal(3, #get(p, "quick", "exclusive=true&limit=10", "gone-worker").messages)
    w:kill(p)
    testing.run_for(1.3)
    p = w:start { ready = "/channels/quick/info" }
    local r = get(p, "quick", "exclusive=true&limit=10", "next-worker")
    assert.are.equal(3, #r.messages, "work whose claim lapsed while the host was down is not on offer: " .. encode(r))
  end)

  it("keeps what concurrent writers, claimers and ackers were told through kill -9", function()
    local w = store_world()
    local p = w:start { ready = STORE_READY }
    local url = p.base .. "/channels/jobs"
    -- 8 writers, 2 workers claiming and acknowledging at once; killed in the middle
    local written, acked = {}, {}
    local n = 0
    local writers, workers = {}, {}
    local function put_one()
      n = n + 1
      return { n = n, call = testing.http_start("PUT", url, { body = encode { n = n }, timeout = 5 }) }
    end
    for i = 1, 8 do writers[i] = put_one() end
    for i = 1, 2 do workers[i] = { token = "busy-" .. i } end
    -- a worker claims up to 5, acknowledges them, claims again
    local function work(wk)
      if wk.call and not wk.call:done() then return end
      if wk.call then
        local s, body = wk.call:wait()
        assert.are.equal(200, s, body)
        local j = decode(body)
        local was_ack = wk.acking
        wk.acking = nil
        if was_ack then
          assert.are.equal(#was_ack, j.acknowledged, body)
          for _, id in ipairs(was_ack) do acked[id] = true end
        elseif #j.messages > 0 then
          wk.acking = {}
          for _, m in ipairs(j.messages) do wk.acking[#wk.acking + 1] = m.id end
          wk.call = testing.http_start("POST", url .. "/acknowledge",
            { body = encode { message_ids = wk.acking }, token = wk.token, timeout = 5 })
          return
        end
      end
      wk.call = testing.http_start("GET", url .. "?exclusive=true&limit=5", { token = wk.token, timeout = 5 })
    end
    local acked_count = 0
    local deadline = now() + 6
    while acked_count < 100 and now() < deadline do
      testing.run_for(0.001)
      for i, wr in ipairs(writers) do
        if wr.call:done() then
          local s, body = wr.call:wait()
          assert.are.equal(200, s, body)
          written[decode(body).item_id] = wr.n
          writers[i] = put_one()
        end
      end
      for _, wk in ipairs(workers) do work(wk) end
      acked_count = 0
      for _ in pairs(acked) do acked_count = acked_count + 1 end
    end
    assert.is_true(acked_count >= 100, ("only %d acknowledged within 6 s\n%s"):format(acked_count, w:logs()))
    w:kill(p)
    for _, wr in ipairs(writers) do
      local s, body = wr.call:wait()
      if s == 200 then written[decode(body).item_id] = wr.n end
    end
    -- an acknowledgement in flight at the kill may or may not have been committed
    local maybe_acked = {}
    for _, wk in ipairs(workers) do
      if wk.call then
        local s, body = wk.call:wait()
        local j = s == 200 and try_decode(body)
        for _, id in ipairs(wk.acking or {}) do
          if j then acked[id] = true else maybe_acked[id] = true end
        end
      end
    end

    p = w:start { ready = STORE_READY }
    -- wait out every claim, then take everything on offer
    testing.run_for(CLAIM + 1.2)
    local offered = {}
    testing.eventually(3, function()
      local r = get(p, "jobs", "exclusive=true&limit=1000", "after-crash")
      for _, m in ipairs(r.messages) do
        assert.is_nil(offered[m.id], "offered twice: " .. m.id)
        offered[m.id] = true
      end
      return #r.messages == 0
    end, 0.2)
    for id in pairs(acked) do
      assert.is_nil(offered[id], ("acknowledged work came back: n=%s"):format(tostring(written[id])))
    end
    local lost = {}
    for id, wn in pairs(written) do
      if not acked[id] and not offered[id] and not maybe_acked[id] then lost[#lost + 1] = wn end
    end
    table.sort(lost)
    assert.are.equal(0, #lost, ("acknowledged writes neither acknowledged as done nor offered again: n = %s\n%s"):format(
      list(lost), w:logs()))
  end)
end)

describe("durable cursors", function()
  it("resume where an HTTP reader stopped, after kill -9 and after a clean stop, in the same epoch", function()
    local w = store_world()
    local p = w:start { ready = STORE_READY }
    for n = 1, 30 do put(p, "feed", { n = n }) end
    -- a reader named by its token, and one named with ?reader= under a token
    local function read5(reader)
      local j = get(p, "feed", "limit=5" .. (reader.name and "&reader=" .. reader.name or ""), reader.token)
      return seqs_of(j.messages), j.epoch
    end
    local readers = { { token = "cursor-token" }, { token = "cursor-host", name = "sys-a" } }
    local epoch
    for _, r in ipairs(readers) do
      local seqs, e = read5(r)
      assert.are.same(range(1, 5), seqs)
      epoch = epoch or e
      assert.are.equal(epoch, e)
      assert.is_string(e)
    end
    -- the host has had time to commit the cursors: the next read goes on exactly there
    testing.run_for(0.3)
    w:kill(p)
    p = w:start { ready = STORE_READY }
    for _, r in ipairs(readers) do
      local seqs, e = read5(r)
      assert.are.same(range(6, 10), seqs)
      assert.are.equal(epoch, e, "the epoch changed across the restart")
    end
    w:stop(p)
    p = w:start { ready = STORE_READY }
    for _, r in ipairs(readers) do
      local seqs, e = read5(r)
      assert.are.same(range(11, 15), seqs)
      assert.are.equal(epoch, e, "the epoch changed across the clean restart")
    end
    -- killed right after a read's answer: the reader may get those again, but never skips any
    w:kill(p)
    p = w:start { ready = STORE_READY }
    for _, r in ipairs(readers) do
      local seqs = read5(r)
      assert.is_true(seqs[1] >= 11 and seqs[1] <= 16, "after a kill right after a read, the next one starts at " ..
        list(seqs))
      for i = 2, #seqs do assert.are.equal(seqs[i - 1] + 1, seqs[i]) end
    end
    -- a new reader starts at the oldest message, as on any channel
    assert.are.same(range(1, 5), (read5 { token = "cursor-new" }))
  end)

  it("resume a system's own cursor, and keep what write_channel returned: id and seq", function()
    local w = new_world { notes = NOTES }
    local function run_once(stop)
      local p = w:start {}
      p:wait_output("wrote ", 10)
      local out = p:out()
      if stop == "kill" then w:kill(p) elseif stop == "stop" then w:stop(p) end
      local had, wrote = {}, nil
      for id, seq, run in out:gmatch("had (%S+) (%d+) (%d+)\n") do had[#had + 1] = { id, tonumber(seq), tonumber(run) } end
      local id, seq, run = out:match("wrote (%S+) (%S+) (%d+)\n")
      assert.is_truthy(id, out)
      wrote = { id, tonumber(seq), tonumber(run) }
      return had, wrote, out, p
    end
    local had1, wrote1, out1 = run_once("kill")
    assert.are.same({}, had1, out1)
    assert.are.equal(1, wrote1[2], "write_channel's seq: " .. out1)
    -- the message written before kill -9 is there for the system's cursor, as written
    local had2, wrote2, out2 = run_once("stop")
    assert.are.same({ wrote1 }, had2, out2)
    assert.are.equal(2, wrote2[2], out2)
    -- the cursor moved past message 1 in the last run: only message 2 is new to it
    local had3, wrote3, out3 = run_once("kill")
    assert.are.same({ wrote2 }, had3, out3)
    assert.are.equal(3, wrote3[2], out3)
    -- over HTTP: all four, with the ids and seqs write_channel returned, and all they carried
    local had4, wrote4, out4, p = run_once("keep")
    assert.are.same({ wrote3 }, had4, out4)
    p:ready("/channels/notes/info")
    local log = read_all(p, "notes")
    assert.are.equal(4, #log)
    for i, wrote in ipairs { wrote1, wrote2, wrote3, wrote4 } do
      local m = log[i]
      assert.are.equal(wrote[1], m.id)
      assert.are.equal(wrote[2], m.seq)
      assert.are.same({ run = i, text = "note " .. i }, m.content.data)
      assert.are.same({ run = i }, m.metadata)
      assert.are.equal("corr-" .. i, m.correlation_id)
      assert.are.equal("notes-writer", m.sender_id)
      assert.is_number(m.timestamp)
    end
  end)
end)

-- Registers a durable broadcast 'news' in this host's registry.
local PUBLISHER = [[
local sssn = require "sssn"
local s = sssn.system { id = "publisher" }
function s:setup()
  local news = self:add_channel(sssn.broadcast { id = "news", durable = true })
  sssn.registry:register_channel(news.info)
end
function s:step() end
return s
]]

-- On another host (--registry URL): finds 'news', subscribes to it and prints what comes.
local SUBSCRIBER = [[
local sssn = require "sssn"
local s = sssn.system { id = "news-reader", tick_rate = 10 }
function s:step()
  if self.subscribed then return end
  local info = sssn.registry:get_channel("news")
  if not info then return end
  self:connect(info)
  self:subscribe_channel("news", function(m) print(("got n=%d seq=%d"):format(m.content.data.n, m.seq)) end)
  self.subscribed = true
  print("subscribed")
end
return s
]]

describe("a remote subscriber of a durable channel", function()
  it("resumes after the last message it got when the serving host is killed and restarted", function()
    local w = new_world { publisher = PUBLISHER, subscriber = SUBSCRIBER }
    local port = testing.free_port()
    local a = w:start { scripts = { "publisher" }, port = port, ready = "/channels/news/info" }
    local b = w:start { scripts = { "subscriber" }, no_data_dir = true, args = { "--registry", a.base } }
    b:wait_output("subscribed", 10)
    for n = 1, 5 do put(a, "news", { n = n }) end
    b:wait_output("got n=5 ", 10)
    w:kill(a)
    a = w:start { scripts = { "publisher" }, port = port, ready = "/channels/news/info" }
    for n = 6, 8 do put(a, "news", { n = n }) end
    b:wait_output("got n=8 ", 15)
    testing.run_for(0.3)
    local got = {}
    for n, seq in b:out():gmatch("got n=(%d+) seq=(%d+)\n") do
      got[#got + 1] = tonumber(n)
      assert.are.equal(n, seq, "n and seq differ: " .. b:out())
    end
    assert.are.same(range(1, 8), got, "the subscriber started over, or lost some:\n" .. b:out())
    assert.are.same(range(1, 8), seqs_of(read_all(a, "news")), "the serving host lost some")
  end)
end)

describe("two hosts on one --data-dir", function()
  it("do not share a channel's file: the second is refused it, naming the channel, and the first serves on", function()
    local w = store_world()
    local a = w:start { ready = STORE_READY }
    put(a, "feed", { n = 1 })
    local b = w:start {}
    local line = testing.eventually(5, function()
      for l in b:err():gmatch("[^\n]+") do if l:find("'feed'", 1, true) then return l end end
    end)
    assert.is_truthy(line, "no error naming channel 'feed':\n" .. b:err())
    assert.truthy(line:find(w.data .. "/feed.sqlite", 1, true), line)
    local s, _, raw = http("PUT", b.base .. "/channels/feed", { body = "{}" })
    assert.are.equal(404, s, raw)
    put(a, "feed", { n = 2 })
    w:stop(b)
    w:stop(a)
    a = w:start { ready = STORE_READY }
    local ns = {}
    for i, m in ipairs(read_all(a, "feed")) do ns[i] = m.content.data.n end
    assert.are.same({ 1, 2 }, ns)
  end)
end)

describe("retention of a durable channel", function()
  it("applies on disk: after kill -9 only what capacity, max_bytes and retention keep comes back", function()
    local w = store_world()
    local p = w:start { ready = STORE_READY }
    local pad = ("p"):rep(300)
    for n = 1, 25 do put(p, "cap10", { n = n }) end
    for n = 1, 40 do put(p, "small", { n = n, pad = pad }) end
    for n = 1, 3 do put(p, "aged", { n = n, age = "old" }) end
    local kept = {}
    for _, id in ipairs { "cap10", "small" } do kept[id] = read_all(p, id) end
    assert.are.same(range(16, 25), seqs_of(kept.cap10))
    assert.is_true(#kept.small > 1 and #kept.small < 40, "small keeps " .. #kept.small)
    assert.are.equal(40, kept.small[#kept.small].seq)
    -- the old ones pass their retention; new ones are written
    testing.run_for(AGE + 0.3)
    for n = 4, 6 do put(p, "aged", { n = n, age = "new" }) end
    local written = now()
    w:kill(p)

    p = w:start { ready = STORE_READY }
    for _, id in ipairs { "cap10", "small" } do
      assert.are.same(kept[id], read_all(p, id), id .. " came back with another log")
    end
    local aged = read_all(p, "aged")
    assert.is_true(now() < written + AGE, "the restart took too long to tell what retention keeps")
    local ns = {}
    for i, m in ipairs(aged) do ns[i] = m.content.data.n end
    assert.are.same({ 4, 5, 6 }, ns)
    -- and retention goes on from there: more writes still drop the oldest
    for n = 26, 30 do put(p, "cap10", { n = n }) end
    assert.are.same(range(21, 30), seqs_of(read_all(p, "cap10")))
  end)

  it("applies at start-up: what aged past retention while the host was down, and what a lowered capacity drops", function()
    local w = new_world { aging = owner("aging-owner", "broadcast", "aging", ", durable = true, retention = 1"),
      shrink = owner("shrink-owner", "broadcast", "shrink", ", durable = true, capacity = 100") }
    local p = w:start { ready = "/channels/shrink/info" }
    for n = 1, 3 do put(p, "aging", { n = n }) end
    for n = 1, 50 do put(p, "shrink", { n = n }) end
    w:kill(p)
    testing.run_for(1.2)
    testing.write_file(w.paths.shrink, owner("shrink-owner", "broadcast", "shrink", ", durable = true, capacity = 10"))
    p = w:start { ready = "/channels/shrink/info" }
    assert.are.same({}, read_all(p, "aging"), "messages older than their retention came back")
    assert.are.same(range(41, 50), seqs_of(read_all(p, "shrink")))
    -- the seq goes on from the last one written, not from what was kept
    put(p, "aging", { n = 4 })
    assert.are.same({ 4 }, seqs_of(read_all(p, "aging")))
  end)

  it("keeps a full work queue full: after a restart it still refuses writes (429) until work is acknowledged", function()
    local w = new_world { small = owner("small-owner", "work_queue", "tight", ", durable = true, capacity = 3") }
    local p = w:start { ready = "/channels/tight/info" }
    for n = 1, 3 do put(p, "tight", { n = n }) end
    local s, _, raw = http("PUT", p.base .. "/channels/tight", { body = "{}" })
    assert.are.equal(429, s, raw)
    w:kill(p)
    p = w:start { ready = "/channels/tight/info" }
    s, _, raw = http("PUT", p.base .. "/channels/tight", { body = "{}" })
    assert.are.equal(429, s, raw)
    local got = get(p, "tight", "exclusive=true&limit=1", "worker")
    assert.are.equal(1, #got.messages)
    local j
    s, j, raw = http("POST", p.base .. "/channels/tight/acknowledge",
      { body = encode { message_ids = { got.messages[1].id } }, token = "worker" })
    assert.are.equal(1, j.acknowledged, raw)
    put(p, "tight", { n = 4 })
  end)

  it("keeps the file of a channel with capacity 10 small however many messages go through it", function()
    local w = store_world()
    -- --sync normal: the size of the files does not depend on when they are synced
    local p = w:start { ready = STORE_READY, args = { "--sync", "normal" } }
    local url = p.base .. "/channels/cap10"
    local body = encode { pad = ("z"):rep(2000) }
    local TOTAL, WIDTH = 4000, 32
    local sent, done, biggest = 0, 0, 0
    local files = { w.data .. "/cap10.sqlite", w.data .. "/cap10.sqlite-wal" }
    local function size()
      local s = 0
      for _, f in ipairs(files) do s = s + file_size(f) end
      return s
    end
    local slots = {}
    for i = 1, WIDTH do
      sent = sent + 1
      slots[i] = testing.http_start("PUT", url, { body = body, timeout = 5 })
    end
    local deadline = now() + 15
    while done < TOTAL and now() < deadline do
      testing.run_for(0.001)
      for i, c in ipairs(slots) do
        if c and c:done() then
          local s, raw = c:wait()
          assert.are.equal(200, s, raw)
          done = done + 1
          if sent < TOTAL then
            sent = sent + 1
            slots[i] = testing.http_start("PUT", url, { body = body, timeout = 5 })
          else
            slots[i] = false
          end
        end
      end
      if done % 200 == 0 then biggest = math.max(biggest, size()) end
    end
    assert.are.equal(TOTAL, done, "not every write was answered within 15 s")
    biggest = math.max(biggest, size())
    assert.is_true(file_size(files[1]) > 0, "no database file at " .. files[1])
    -- 8 MB went through; 10 messages of 2 KB are kept. SQLite's WAL grows to about 4 MB
    -- (1000 pages) before a checkpoint moves it into the database and starts it over.
    local BOUND = 6 * 1024 * 1024
    assert.is_true(biggest < BOUND, ("the files reached %d bytes after %d writes of %d bytes"):format(biggest, TOTAL, #body))
    assert.are.equal(10, #read_all(p, "cap10"))
    w:stop(p)
    assert.is_true(size() < BOUND, "after a clean stop the files hold " .. size() .. " bytes")
  end)
end)

describe("a durable channel that cannot be opened", function()
  local GOOD = owner("good-owner", "broadcast", "good")

  local function assert_refused(p, id)
    for _, req in ipairs { { "GET", "/info" }, { "GET", "" }, { "PUT", "" } } do
      local s, _, raw = http(req[1], ("%s/channels/%s%s"):format(p.base, id, req[2]), { body = req[1] == "PUT" and "{}" or nil })
      assert.are.equal(404, s, req[1] .. " " .. req[2] .. ": " .. tostring(raw))
    end
  end

  local function assert_good_served(p)
    local id = put(p, "good", { ok = true })
    local log = read_all(p, "good")
    assert.are.equal(id, log[#log].id)
  end

  it("is refused at start-up when the file is not a database, naming the channel and the path", function()
    local w = new_world { bad = owner("bad-owner", "work_queue", "bad"), good = GOOD }
    testing.run { "mkdir", "-p", w.data }
    local garbage = ("this is not a database, only garbage\n"):rep(200)
    local path = w.data .. "/bad.sqlite"
    testing.write_file(path, garbage)
    local p = w:start { ready = "/channels/good/info" }
    local line = testing.eventually(5, function()
      for l in p:err():gmatch("[^\n]+") do if l:find("'bad'", 1, true) then return l end end
    end)
    assert.is_truthy(line, "no error naming channel 'bad':\n" .. p:err())
    assert.truthy(line:find(path, 1, true), "the error does not name the file " .. path .. ": " .. line)
    assert.truthy(line:find("durable", 1, true), line)
    assert_refused(p, "bad")
    assert_good_served(p)
    assert.is_true(p:alive())
    -- the file is left as it was, for its operator
    assert.are.equal(garbage, testing.read_file(path), "the host changed the corrupt file")
  end)

  it("is refused at start-up when its pages are damaged, and the host serves its other channels", function()
    local w = new_world { bad = owner("bad-owner", "broadcast", "bad"), good = GOOD }
    local p = w:start { ready = "/channels/good/info" }
    for n = 1, 50 do put(p, "bad", { n = n, pad = ("q"):rep(200) }) end
    w:stop(p)
    -- everything after SQLite's 100-byte header overwritten, and no WAL to heal it
    local path = w.data .. "/bad.sqlite"
    local text = testing.read_file(path)
    assert.is_true(#text > 4096, "the database file has " .. #text .. " bytes")
    local damaged = text:sub(1, 100) .. ("\xA5\x5A"):rep((#text - 100) // 2) .. (#text % 2 == 1 and "\0" or "")
    testing.write_file(path, damaged)
    os.remove(path .. "-wal")
    os.remove(path .. "-shm")
    p = w:start { ready = "/channels/good/info" }
    local line = testing.eventually(5, function()
      for l in p:err():gmatch("[^\n]+") do if l:find("'bad'", 1, true) then return l end end
    end)
    assert.is_truthy(line, "no error naming channel 'bad':\n" .. p:err())
    assert.truthy(line:find(path, 1, true), "the error does not name the file " .. path .. ": " .. line)
    assert_refused(p, "bad")
    assert_good_served(p)
    assert.is_true(p:alive())
  end)

  it("is refused when the file was made by another kind of channel, naming both kinds", function()
    local w = new_world { shape = owner("shape-owner", "broadcast", "shape"), good = GOOD }
    local p = w:start { ready = "/channels/shape/info" }
    put(p, "shape", { n = 1 })
    w:stop(p)
    testing.write_file(w.paths.shape, owner("shape-owner", "work_queue", "shape"))
    p = w:start { ready = "/channels/good/info" }
    local line = testing.eventually(5, function()
      for l in p:err():gmatch("[^\n]+") do if l:find("'shape'", 1, true) then return l end end
    end)
    assert.is_truthy(line, "no error naming channel 'shape':\n" .. p:err())
    assert.truthy(line:find("broadcast", 1, true) and line:find("work_queue", 1, true), line)
    assert_refused(p, "shape")
    assert_good_served(p)
  end)

  it("is a clear error without --data-dir, and the host serves the channels that are not durable", function()
    local w = new_world { bad = owner("bad-owner", "broadcast", "bad"),
      plain = owner("plain-owner", "broadcast", "plain", "") }
    local p = w:start { ready = "/channels/plain/info", no_data_dir = true }
    local line = testing.eventually(5, function()
      for l in p:err():gmatch("[^\n]+") do if l:find("--data-dir", 1, true) then return l end end
    end)
    assert.is_truthy(line, "no error mentioning --data-dir:\n" .. p:err())
    assert.truthy(line:find("durable", 1, true), line)
    assert_refused(p, "bad")
    put(p, "plain", { n = 1 })
    assert.is_true(p:alive())
  end)
end)

describe("--data-dir", function()
  it("that cannot be made or written stops start-up with status 2, naming it; so does a bad --sync", function()
    local w = new_world { plain = owner("plain-owner", "broadcast", "plain", "") }
    local file = w.dir .. "/a-file"
    testing.write_file(file, "not a directory\n")
    for _, dir in ipairs { file, file .. "/below" } do
      local out, err, code = testing.run({ testing.exe, "--data-dir", dir, "--duration", "1", w.paths.plain }, { limit = 10 })
      assert.are.equal(2, code, err)
      assert.truthy(err:find(dir, 1, true), err)
      assert.truthy(err:find("--data-dir", 1, true), err)
      assert.are.equal("", out)
    end
    local _, err, code = testing.run({ testing.exe, "--sync", "sometimes", w.paths.plain }, { limit = 10 })
    assert.are.equal(2, code, err)
    assert.truthy(err:find("--sync", 1, true), err)
  end)
end)

describe("durable = ...", function()
  it("must be a boolean, in every channel constructor", function()
    for _, kind in ipairs { "broadcast", "work_queue", "mailbox", "passthrough" } do
      local msg = testing.error_of(sssn[kind], { id = testing.uid("d"), durable = "yes" })
      testing.assert_mentions(msg, "durable")
      -- false is the default: a channel in memory
      local ok = pcall(sssn[kind], { id = testing.uid("d"), durable = false })
      assert.is_true(ok, kind)
    end
  end)
end)
