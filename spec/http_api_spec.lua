-- End to end: the HTTP API of `sssn-host --listen`. Each describe block starts a real host
-- process with `--listen 127.0.0.1:0` (the port it reports is read back; bounded by
-- sssn.testing's limit, stopped in teardown) running a fixture system that owns the channels
-- under test, and talks to it with the runner's own HTTP client and, for the raw HTTP
-- mechanics, with raw TCP connections. Every wait runs the loop; nothing sleeps.
local sssn = require "sssn"
local testing = require "sssn.testing"

local null = sssn.null
local decode = sssn.json.decode

-- Helpers -------------------------------------------------------------------------------

local tmpdir = testing.tmpdir

local write = testing.write_file

local now = testing.walltime

local function try_decode(s)
  local ok, v = pcall(decode, s)
  if ok then return v end
  return nil
end

local FIXTURE = [[
local sssn = require "sssn"
local s = sssn.system { id = "fixture", name = "Fixture", description = "owns the test channels",
  services = { { name = "feeding", description = "a feed" } } }
function s:setup()
  local feed = self:add_channel(sssn.broadcast { id = "feed", name = "Test Feed",
    description = "a broadcast", visibility = "public" })
  for _, id in ipairs { "cursors", "cursors-long", "after", "quiet", "lp", "raw" } do
    self:add_channel(sssn.broadcast { id = id })
  end
  local jobs = self:add_channel(sssn.work_queue { id = "jobs", name = "Job Queue",
    visibility = "private", capacity = 3, claim_timeout = 30 })
  self:add_channel(sssn.work_queue { id = "jobs-wait", capacity = 10 })
  self:add_channel(sssn.work_queue { id = "jobs-short", capacity = 10, claim_timeout = 1 })
  self:add_channel(sssn.mailbox { id = "box", name = "Box" })
  self:add_channel(sssn.periodic { id = "pulse", name = "Pulse", period = 0.5,
    pull = function() return { beat = true } end })
  sssn.registry:register_channel(feed.info)
  sssn.registry:register_channel(jobs.info)
  sssn.registry:register_system(self:descriptor())
  print("fixture ready")
end
function s:step() end
return s
]]

-- A running host: start{args = "..."} -> server with port, dir, request(), stop().
local Server = {}
Server.__index = Server

local function start_server(args)
  local dir = tmpdir()
  write(dir .. "/fixture.lua", FIXTURE)
  local argv = { "--listen", "127.0.0.1:0" }
  for w in (args or ""):gmatch("%S+") do argv[#argv + 1] = w end
  argv[#argv + 1] = dir .. "/fixture.lua"
  local self = setmetatable({ dir = dir, proc = testing.start_host(argv, { dir = dir }) }, Server)
  -- ready when the API answers and the fixture's channels exist (bounded: ~5 s)
  local ok, err = pcall(self.proc.ready, self.proc, "/channels/feed/info", 5)
  if not ok then
    self:stop()
    error(err, 0)
  end
  self.port, self.base = self.proc.port, self.proc.base
  return self
end

function Server:stop()
  self.proc:stop()
  testing.rmtree(self.dir)
end

-- request(method, path, {body=, token=, headers=, max_time=}) -> status, json (or nil), raw
-- body, seconds, content type; a request that got no answer gives nil and the error as body.
function Server:request(method, path, opts)
  opts = opts or {}
  local status, body, secs, ctype = testing.http(method, self.base .. path,
    { body = opts.body, token = opts.token, headers = opts.headers, timeout = opts.max_time or 10 })
  return status, status and try_decode(body), body, secs, ctype
end

function Server:get(path, opts) return self:request("GET", path, opts) end

function Server:put(path, body, opts)
  opts = opts or {}
  opts.body = body
  return self:request("PUT", path, opts)
end

function Server:post(path, body, opts)
  opts = opts or {}
  opts.body = body
  return self:request("POST", path, opts)
end

-- Asserts the error shape every failure has: {"detail": "...", "error": {"type", "message"}}.
local function assert_error(status, expected, json, raw, etype)
  assert.are.equal(expected, status, raw)
  assert.is_table(json, raw)
  assert.is_string(json.detail)
  assert.is_true(#json.detail > 0)
  assert.is_table(json.error)
  assert.are.equal(json.detail, json.error.message)
  assert.is_string(json.error.type)
  if etype then assert.are.equal(etype, json.error.type) end
end

local function ids_of(messages)
  local out = {}
  for i, m in ipairs(messages) do out[i] = m.id end
  return out
end

local function datas_of(messages)
  local out = {}
  for i, m in ipairs(messages) do out[i] = m.content.data end
  return out
end

local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

-- Channels --------------------------------------------------------------------------------

describe("HTTP API channel routes", function()
  local srv
  lazy_setup(function() srv = start_server() end)
  lazy_teardown(function() if srv then srv:stop() end end)

  it("PUT takes the data itself as the body and GET returns the upstream envelope", function()
    local t0 = now()
    local status, json, raw = srv:put("/channels/feed", '{"celsius": 22.5, "tags": ["a", "b"], "n": 7}',
      { token = "writer-1" })
    assert.are.equal(200, status, raw)
    assert.are.equal("accepted", json.status)
    assert.matches(UUID, json.item_id)
    local keys = {}
    for k in pairs(json) do keys[#keys + 1] = k end
    table.sort(keys)
    assert.are.same({ "item_id", "status" }, keys)

    local s2, body, raw2 = srv:get("/channels/feed", { token = "reader-1" })
    assert.are.equal(200, s2, raw2)
    assert.is_table(body.messages)
    assert.are.equal(1, #body.messages)
    local m = body.messages[1]
    assert.are.equal(json.item_id, m.id)
    assert.are.equal(1, m.seq)
    assert.is_number(m.timestamp)
    assert.is_true(m.timestamp >= t0 - 1 and m.timestamp <= now() + 1)
    assert.are.equal("writer-1", m.sender_id)
    assert.are.same({ data = { celsius = 22.5, tags = { "a", "b" }, n = 7 } }, m.content)
    assert.are.equal("integer", math.type(m.content.data.n))
    assert.are.same({}, m.metadata)
    assert.are.equal(null, m.correlation_id)
    assert.are.equal(null, m.reply_to)
    assert.are.equal(null, m.recipient_id)
    -- the raw text carries every envelope field, nulls included
    for _, f in ipairs { '"id":', '"seq":', '"timestamp":', '"sender_id":', '"content":{"data":',
      '"metadata":{}', '"correlation_id":null', '"reply_to":null', '"recipient_id":null' } do
      assert.truthy(raw2:find(f, 1, true), f)
    end
  end)

  it("PUT accepts any JSON value as the data: string, number, array, null", function()
    for _, case in ipairs { { '"hello"', "hello" }, { "42", 42 }, { "[1,2]", { 1, 2 } }, { "null", null } } do
      local status, json, raw = srv:put("/channels/raw", case[1])
      assert.are.equal(200, status, raw)
      assert.are.equal("accepted", json.status)
    end
    local _, body = srv:get("/channels/raw", { token = "raw-reader" })
    local datas = datas_of(body.messages)
    assert.are.same({ "hello", 42, { 1, 2 }, null }, datas)
  end)

  it("PUT with direct=true keeps the envelope's id, sender, metadata and reply fields", function()
    local env = [[{"id": "11111111-2222-3333-4444-555555555555", "sender_id": "sensor-9",
      "timestamp": 1.5, "content": {"data": {"t": 1}}, "metadata": {"unit": "C", "k": [1]},
      "correlation_id": "corr-1", "reply_to": "replies", "recipient_id": "alice"}]]
    local status, json, raw = srv:put("/channels/feed?direct=true", env, { token = "someone-else" })
    assert.are.equal(200, status, raw)
    assert.are.same({ status = "accepted", item_id = "11111111-2222-3333-4444-555555555555" }, json)
    local _, body = srv:get("/channels/feed", { token = "reader-1" })
    assert.are.equal(1, #body.messages)
    local m = body.messages[1]
    assert.are.equal("11111111-2222-3333-4444-555555555555", m.id)
    assert.are.equal(2, m.seq)
    assert.are.equal("sensor-9", m.sender_id)
    assert.are.same({ data = { t = 1 } }, m.content)
    assert.are.same({ unit = "C", k = { 1 } }, m.metadata)
    assert.are.equal("corr-1", m.correlation_id)
    assert.are.equal("replies", m.reply_to)
    assert.are.equal("alice", m.recipient_id)

    -- direct=false is the default: the same body becomes the data
    status, json = srv:put("/channels/feed?direct=false", '{"content": {"data": 1}}')
    assert.are.equal(200, status)
    _, body = srv:get("/channels/feed", { token = "reader-1" })
    assert.are.same({ { content = { data = 1 } } }, datas_of(body.messages))

    -- direct=true without a content object is refused
    local s3, j3, r3 = srv:put("/channels/feed?direct=true", '{"data": 1}')
    assert_error(s3, 400, j3, r3, "bad_request")
  end)

  it("a mailbox shows each reader (the Bearer token) its own messages and unaddressed ones", function()
    assert.are.equal(200, (srv:put("/channels/box?direct=true", '{"content": {"data": "for alice"}, "recipient_id": "alice"}')))
    assert.are.equal(200, (srv:put("/channels/box?direct=true", '{"content": {"data": "for bob"}, "recipient_id": "bob"}')))
    assert.are.equal(200, (srv:put("/channels/box", '"for all"')))
    local _, a = srv:get("/channels/box", { token = "alice" })
    local _, b = srv:get("/channels/box", { token = "bob" })
    assert.are.same({ "for alice", "for all" }, datas_of(a.messages))
    assert.are.same({ "for bob", "for all" }, datas_of(b.messages))
  end)

  it("each Bearer token has its own cursor; no token reads as 'anonymous'", function()
    for i = 1, 3 do assert.are.equal(200, (srv:put("/channels/cursors", ('{"i": %d}'):format(i)))) end
    local _, a1 = srv:get("/channels/cursors", { token = "token-a" })
    assert.are.same({ { i = 1 }, { i = 2 }, { i = 3 } }, datas_of(a1.messages))
    local _, a2 = srv:get("/channels/cursors", { token = "token-a" })
    assert.are.same({}, a2.messages)
    local _, b1 = srv:get("/channels/cursors", { token = "token-b" })
    assert.are.same({ { i = 1 }, { i = 2 }, { i = 3 } }, datas_of(b1.messages))

    -- limit takes that many and advances the cursor past them only
    local _, c1 = srv:get("/channels/cursors?limit=2", { token = "token-c" })
    assert.are.same({ { i = 1 }, { i = 2 } }, datas_of(c1.messages))
    local _, c2 = srv:get("/channels/cursors?limit=2", { token = "token-c" })
    assert.are.same({ { i = 3 } }, datas_of(c2.messages))

    -- without a token the reader is "anonymous": the same cursor as "Bearer anonymous"
    local _, n1 = srv:get("/channels/cursors?limit=1")
    assert.are.same({ { i = 1 } }, datas_of(n1.messages))
    local _, n2 = srv:get("/channels/cursors?limit=1", { token = "anonymous" })
    assert.are.same({ { i = 2 } }, datas_of(n2.messages))
    local _, n3 = srv:get("/channels/cursors")
    assert.are.same({ { i = 3 } }, datas_of(n3.messages))
  end)

  it("refuses a Bearer token over 256 characters with 400 rather than cutting it", function()
    assert.are.equal(200, (srv:put("/channels/cursors-long", '{"i": 1}')))
    local long = ("t"):rep(300)
    local s, j, r = srv:get("/channels/cursors-long", { token = long })
    assert_error(s, 400, j, r, "bad_request")
    assert.truthy(j.detail:find("256", 1, true), j.detail)
    s, j, r = srv:put("/channels/cursors-long", '{"i": 2}', { token = long })
    assert_error(s, 400, j, r, "bad_request")
    -- two tokens that share their first 256 characters are two readers
    local _, a = srv:get("/channels/cursors-long", { token = ("t"):rep(256) })
    assert.are.same({ { i = 1 } }, datas_of(a.messages))
    local _, b = srv:get("/channels/cursors-long", { token = ("t"):rep(255) .. "u" })
    assert.are.same({ { i = 1 } }, datas_of(b.messages))
  end)

  it("after may be a seq or a message id (what the Python client sends)", function()
    local ids = {}
    for i = 1, 4 do
      local _, j = srv:put("/channels/after", ('{"i": %d}'):format(i))
      ids[i] = j.item_id
    end
    local status, body, raw = srv:get("/channels/after?after=" .. ids[2], { token = "after-1" })
    assert.are.equal(200, status, raw)
    assert.are.same({ ids[3], ids[4] }, ids_of(body.messages))
    local _, all = srv:get("/channels/after?after=0", { token = "after-2" })
    assert.are.same(ids, ids_of(all.messages))
    local seq1 = all.messages[1].seq
    local _, from_seq = srv:get("/channels/after?after=" .. (seq1 + 2), { token = "after-3" })
    assert.are.same({ ids[4] }, ids_of(from_seq.messages))
    local _, limited = srv:get("/channels/after?limit=1&after=" .. ids[1], { token = "after-4" })
    assert.are.same({ ids[2] }, ids_of(limited.messages))
  end)

  it("a work_queue is read with exclusive=true: two tokens claim distinct messages", function()
    local put = {}
    for i = 1, 3 do
      local status, j, raw = srv:put("/channels/jobs", ('{"job": %d}'):format(i))
      assert.are.equal(200, status, raw)
      put[i] = j.item_id
    end
    -- capacity 3: a full queue refuses writes with 429
    local s4, j4, r4 = srv:put("/channels/jobs", '{"job": 4}')
    assert_error(s4, 429, j4, r4)

    local sa, a, ra = srv:get("/channels/jobs?exclusive=true&limit=1", { token = "worker-a" })
    assert.are.equal(200, sa, ra)
    local sb, b, rb = srv:get("/channels/jobs?exclusive=true&limit=1", { token = "worker-b" })
    assert.are.equal(200, sb, rb)
    assert.are.equal(1, #a.messages)
    assert.are.equal(1, #b.messages)
    assert.are_not.equal(a.messages[1].id, b.messages[1].id)
    assert.are.same({ job = 1 }, a.messages[1].content.data)
    assert.are.same({ job = 2 }, b.messages[1].content.data)
    local ida, idb = a.messages[1].id, b.messages[1].id

    -- a token that does not hold the claim acknowledges nothing
    local s1, j1, r1 = srv:post("/channels/jobs/acknowledge", ('{"message_ids": ["%s"]}'):format(ida),
      { token = "worker-b" })
    assert.are.equal(200, s1, r1)
    assert.are.same({ status = "ok", acknowledged = 0 }, j1)
    -- the claimer does
    s1, j1, r1 = srv:post("/channels/jobs/acknowledge", ('{"message_ids": ["%s"]}'):format(ida),
      { token = "worker-a" })
    assert.are.equal(200, s1, r1)
    assert.are.same({ status = "ok", acknowledged = 1 }, j1)
    -- acknowledged work frees room: the write that was refused is accepted now
    local s5 = srv:put("/channels/jobs", '{"job": 4}')
    assert.are.equal(200, s5)

    -- nack by a non-claimer counts 0; by the claimer it makes the message claimable again
    local sn, jn, rn = srv:post("/channels/jobs/nack", ('{"message_ids": ["%s"]}'):format(idb),
      { token = "worker-a" })
    assert.are.equal(200, sn, rn)
    assert.are.same({ status = "ok", nacked = 0 }, jn)
    sn, jn, rn = srv:post("/channels/jobs/nack", ('{"message_ids": ["%s"]}'):format(idb), { token = "worker-b" })
    assert.are.equal(200, sn, rn)
    assert.are.same({ status = "ok", nacked = 1 }, jn)
    local _, again = srv:get("/channels/jobs?exclusive=true&limit=10", { token = "worker-c" })
    local seen = {}
    for _, m in ipairs(again.messages) do seen[m.id] = true end
    assert.is_true(seen[idb], "the nacked message is offered again")
    assert.is_nil(seen[ida], "the acknowledged message is gone")
    assert.are.equal(3, #again.messages) -- job 2 (nacked), job 3, job 4
    -- everything is claimed now: another worker gets nothing
    local _, none = srv:get("/channels/jobs?exclusive=true", { token = "worker-d" })
    assert.are.same({}, none.messages)
    -- ack all of them, several ids in one call
    local list = {}
    for _, m in ipairs(again.messages) do list[#list + 1] = ('"%s"'):format(m.id) end
    local sa2, ja2 = srv:post("/channels/jobs/acknowledge", ('{"message_ids": [%s]}'):format(table.concat(list, ",")),
      { token = "worker-c" })
    assert.are.equal(200, sa2)
    assert.are.same({ status = "ok", acknowledged = 3 }, ja2)
    -- an empty list is fine and counts 0
    sa2, ja2 = srv:post("/channels/jobs/acknowledge", '{"message_ids": []}', { token = "worker-c" })
    assert.are.equal(200, sa2)
    assert.are.same({ status = "ok", acknowledged = 0 }, ja2)
  end)

  it("refuses reads the channel kind does not allow with 400", function()
    local s, j, r = srv:get("/channels/feed?exclusive=true")
    assert_error(s, 400, j, r, "bad_request")
    s, j, r = srv:get("/channels/jobs")
    assert_error(s, 400, j, r, "bad_request")
    s, j, r = srv:get("/channels/jobs?exclusive=false")
    assert_error(s, 400, j, r, "bad_request")
    -- acknowledging on a broadcast is refused too
    s, j, r = srv:post("/channels/feed/acknowledge", '{"message_ids": []}')
    assert_error(s, 400, j, r, "bad_request")
  end)

  it("takes booleans as true/false and refuses others with 400", function()
    local s, j, r = srv:get("/channels/feed?exclusive=false", { token = "bool" })
    assert.are.equal(200, s, r)
    assert.is_table(j.messages)
    s, j, r = srv:get("/channels/jobs-wait?exclusive=true", { token = "bool" })
    assert.are.equal(200, s, r)
    assert.are.same({}, j.messages)
    s, j, r = srv:get("/channels/feed?exclusive=maybe")
    assert_error(s, 400, j, r, "bad_request")
    assert.matches("exclusive", j.detail)
    s, j, r = srv:put("/channels/feed?direct=maybe", '{"x": 1}')
    assert_error(s, 400, j, r, "bad_request")
    assert.matches("direct", j.detail)
  end)

  it("refuses a bad limit with 400", function()
    for _, q in ipairs { "limit=0", "limit=abc", "limit=-3", "limit=1.5", "limit=100000", "wait=abc", "wait=-1" } do
      local s, j, r = srv:get("/channels/feed?" .. q)
      assert_error(s, 400, j, r, "bad_request")
    end
  end)

  it("answers 404 for an unknown channel on every route", function()
    local s, j, r = srv:get("/channels/no-such-channel")
    assert_error(s, 404, j, r, "not_found")
    assert.matches("no%-such%-channel", j.detail)
    s, j, r = srv:put("/channels/no-such-channel", '{"x": 1}')
    assert_error(s, 404, j, r, "not_found")
    s, j, r = srv:get("/channels/no-such-channel/info")
    assert_error(s, 404, j, r, "not_found")
    s, j, r = srv:post("/channels/no-such-channel/acknowledge", '{"message_ids": []}')
    assert_error(s, 404, j, r, "not_found")
    s, j, r = srv:post("/channels/no-such-channel/nack", '{"message_ids": []}')
    assert_error(s, 404, j, r, "not_found")
  end)

  it("refuses a malformed or empty body with 400 and a detail", function()
    local s, j, r = srv:put("/channels/feed", '{"celsius": ')
    assert_error(s, 400, j, r, "bad_request")
    assert.matches("JSON", j.detail)
    s, j, r = srv:put("/channels/feed", "not json at all")
    assert_error(s, 400, j, r, "bad_request")
    s, j, r = srv:put("/channels/feed", "")
    assert_error(s, 400, j, r, "bad_request")
    assert.matches("empty", j.detail)
    s, j, r = srv:request("PUT", "/channels/feed")
    assert_error(s, 400, j, r, "bad_request")
  end)

  it("refuses bad acknowledge/nack bodies with 400 and GET on them with 405", function()
    for _, body in ipairs { '{"ids": ["x"]}', '{"message_ids": "x"}', '{"message_ids": [1, 2]}', "[1", "", '"x"' } do
      local s, j, r = srv:post("/channels/jobs/acknowledge", body)
      assert_error(s, 400, j, r, "bad_request")
      s, j, r = srv:post("/channels/jobs/nack", body)
      assert_error(s, 400, j, r, "bad_request")
    end
    local s, j, r = srv:get("/channels/jobs/acknowledge")
    assert_error(s, 405, j, r, "method_not_allowed")
    s, j, r = srv:get("/channels/jobs/nack")
    assert_error(s, 405, j, r, "method_not_allowed")
  end)

  it("refuses writes to the host's read-only 'registry' channel with 405", function()
    local s, j, r = srv:put("/channels/registry", '{"event": "forged"}')
    assert_error(s, 405, j, r, "method_not_allowed")
  end)

  it("answers 413 to a body over 1 MiB and keeps serving", function()
    local big = ('"%s"'):format(("x"):rep(1024 * 1024 + 10))
    local s, j, r = srv:put("/channels/feed", big)
    assert.are.equal(413, s)
    assert_error(s, 413, j, r, "payload_too_large")
    -- exactly at the limit is not "too large" (the JSON string of 1 MiB - 2 chars)
    s = srv:put("/channels/raw", ('"%s"'):format(("y"):rep(1024 * 1024 - 2)))
    assert.are.equal(200, s)
    local h
    s, h = srv:get("/health")
    assert.are.equal(200, s)
    assert.are.equal("ok", h.status)
    -- a chunked body that grows past the limit is refused the same way
    s = srv:request("PUT", "/channels/feed", { body = big, headers = { "Transfer-Encoding: chunked" } })
    assert.are.equal(413, s)
    s = srv:get("/health")
    assert.are.equal(200, s)
  end)

  it("refuses a direct envelope id that could break the JSON, or one the channel holds", function()
    local s, j, r = srv:put("/channels/raw?direct=true", '{"id": "x\\",\\"pwn\\":\\"1", "content": {"data": 1}}')
    assert_error(s, 400, j, r, "bad_request")
    s = srv:put("/channels/raw?direct=true", '{"id": "fixed-id-1", "content": {"data": 1}}')
    assert.are.equal(200, s)
    s, j, r = srv:put("/channels/raw?direct=true", '{"id": "fixed-id-1", "content": {"data": 2}}')
    assert_error(s, 400, j, r, "bad_request")
    local _, list = srv:get("/channels/raw?after=0&limit=100", { token = "ids" })
    for _, m in ipairs(list.messages) do assert.is_nil(m.pwn) end
  end)

  it("answers HEAD with the headers of GET and no body, and the connection goes on", function()
    -- two requests one after the other on one connection: the first answer's head ends the
    -- answer, and the second answer follows it directly
    local c = assert(testing.tcp(srv.port))
    finally(function() c:close() end)
    assert(c:send("HEAD /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
    local out, why = c:receive(5, "\r\n\r\n")
    assert.are.equal("matched", why, out)
    assert(c:send("HEAD /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"))
    out = out .. c:receive(5)
    local first = out:match("^(.-)\r\n\r\n")
    assert.matches("^HTTP/1.1 200", first)
    assert.matches("Content%-Length: %d+", first)
    local rest = out:sub(#first + 5)
    assert.matches("^HTTP/1.1 200", rest) -- no body between the two answers
  end)

  it("keeps '+' in a path and refuses a NUL byte in it", function()
    local s, j, r = srv:get("/channels/a+b/info")
    assert_error(s, 404, j, r, "not_found")
    assert.matches("'a%+b'", j.detail)
    s, j, r = srv:get("/channels/feed%00x")
    assert_error(s, 400, j, r, "bad_request")
  end)

  it("GET /channels/{id}/info returns the ChannelInfo with the host's endpoint", function()
    local s, j, r = srv:get("/channels/feed/info")
    assert.are.equal(200, s, r)
    assert.are.same({ id = "feed", name = "Test Feed", description = "a broadcast", visibility = "public",
      kind = "broadcast", period = null, owner = "fixture", durable = false, endpoint = srv.base }, j)
    s, j = srv:get("/channels/jobs/info")
    assert.are.equal(200, s)
    assert.are.equal("work_queue", j.kind)
    assert.are.equal("private", j.visibility)
    assert.are.equal("Job Queue", j.name)
    assert.are.equal(srv.base, j.endpoint)
    s, j = srv:get("/channels/pulse/info")
    assert.are.equal(200, s)
    assert.are.equal("periodic", j.kind)
    assert.are.equal(0.5, j.period)
    s, j = srv:get("/channels/box/info")
    assert.are.equal("mailbox", j.kind)
    -- only GET
    local s2, j2, r2 = srv:put("/channels/feed/info", "{}")
    assert_error(s2, 405, j2, r2, "method_not_allowed")
  end)
end)

-- Long-poll -------------------------------------------------------------------------------

describe("HTTP API long-poll", function()
  local srv
  lazy_setup(function() srv = start_server() end)
  lazy_teardown(function() if srv then srv:stop() end end)

  it("wait=2 on an empty channel answers {\"messages\": []} after about 2 s", function()
    local s, j, r, secs = srv:get("/channels/quiet?wait=2", { token = "sleeper" })
    assert.are.equal(200, s, r)
    assert.are.same({}, j.messages)
    assert.truthy(r:find('"messages":[]', 1, true), r)
    assert.is_true(secs >= 1.5, "took " .. secs)
    assert.is_true(secs <= 4, "took " .. secs)
  end)

  it("wait on a channel with messages answers at once", function()
    assert.are.equal(200, (srv:put("/channels/feed", '{"ready": true}')))
    local s, j, _, secs = srv:get("/channels/feed?wait=5", { token = "eager" })
    assert.are.equal(200, s)
    assert.are.same({ { ready = true } }, datas_of(j.messages))
    assert.is_true(secs < 1, "took " .. secs)
  end)

  -- Starts a long-poll read, lets it wait 0.5 s, asks /health meanwhile, then PUTs {"wake": "up"}
  -- to write_path; returns the three answers {status=, body=, secs=}, the long-poll's last.
  local function wake(read_path, write_path, token)
    local lp = testing.http_start("GET", srv.base .. read_path, { token = token, timeout = 15 })
    testing.run_for(0.5)
    local h, p, l = {}, {}, {}
    h.status, h.body, h.secs = testing.http("GET", srv.base .. "/health", { timeout = 2 })
    p.status, p.body = testing.http("PUT", srv.base .. write_path, { body = '{"wake": "up"}', timeout = 2 })
    l.status, l.body, l.secs = lp:wait()
    return h, p, l
  end

  it("a waiting read is woken by a PUT well before its wait ends; the host keeps serving meanwhile", function()
    -- drain what "waiter" could see so the read has to wait
    srv:get("/channels/lp?limit=10000", { token = "waiter" })
    local h, put, lp = wake("/channels/lp?wait=10", "/channels/lp", "waiter")
    -- /health answered at once while the long-poll waited
    assert.are.equal(200, h.status, h.body)
    assert.is_true(h.secs < 0.5, "health took " .. tostring(h.secs))
    assert.are.equal("ok", try_decode(h.body).status)
    assert.are.equal(200, put.status, put.body)
    assert.are.equal(200, lp.status, lp.body)
    assert.is_true(lp.secs >= 0.4, "answered before the PUT: " .. tostring(lp.secs))
    assert.is_true(lp.secs < 3, "the long-poll was not woken: " .. tostring(lp.secs))
    local body = try_decode(lp.body)
    assert.are.same({ { wake = "up" } }, datas_of(body.messages))
  end)

  it("a waiting exclusive claim is woken when another worker nacks its claim", function()
    srv:put("/channels/jobs-wait", '{"job": "nacked"}')
    local _, held = srv:get("/channels/jobs-wait?exclusive=true&limit=1", { token = "holder" })
    local id = held.messages[1].id
    local waiting = testing.http_start("GET", srv.base .. "/channels/jobs-wait?exclusive=true&wait=8",
      { token = "waiter", timeout = 10 })
    testing.run_for(0.5)
    srv:post("/channels/jobs-wait/nack", ('{"message_ids": ["%s"]}'):format(id), { token = "holder", max_time = 5 })
    local _, out, secs = waiting:wait()
    assert.is_true(secs < 3, out)
    assert.matches('"nacked"', out)
    local got = decode(out)
    srv:post("/channels/jobs-wait/acknowledge", ('{"message_ids": ["%s"]}'):format(got.messages[1].id), { token = "waiter" })
  end)

  it("a waiting exclusive claim gets work whose claim lapsed, within about a second", function()
    srv:put("/channels/jobs-short", '{"job": "lapsing"}')
    local _, held = srv:get("/channels/jobs-short?exclusive=true&limit=1", { token = "slow" })
    assert.are.equal(1, #held.messages)
    local s, j, _, secs = srv:get("/channels/jobs-short?exclusive=true&wait=6", { token = "quick" })
    assert.are.equal(200, s)
    assert.are.equal(1, #j.messages)
    assert.are.equal("lapsing", j.messages[1].content.data.job)
    assert.is_true(secs < 3.5, tostring(secs))
  end)

  it("a waiting exclusive claim on a work_queue is woken by a PUT", function()
    local _, _, lp = wake("/channels/jobs-wait?exclusive=true&wait=10", "/channels/jobs-wait", "claimer")
    assert.are.equal(200, lp.status, lp.body)
    assert.is_true(lp.secs < 3, "the long-poll was not woken: " .. tostring(lp.secs))
    local body = try_decode(lp.body)
    assert.are.same({ { wake = "up" } }, datas_of(body.messages))
    -- the claim is held by "claimer": another token cannot acknowledge it, the claimer can
    local id = body.messages[1].id
    local _, j = srv:post("/channels/jobs-wait/acknowledge", ('{"message_ids": ["%s"]}'):format(id), { token = "other" })
    assert.are.equal(0, j.acknowledged)
    _, j = srv:post("/channels/jobs-wait/acknowledge", ('{"message_ids": ["%s"]}'):format(id), { token = "claimer" })
    assert.are.equal(1, j.acknowledged)
  end)
end)

-- Registry ------------------------------------------------------------------------------

describe("HTTP API registry watch", function()
  local srv
  lazy_setup(function() srv = start_server() end)
  lazy_teardown(function() if srv then srv:stop() end end)

  it("answers at once an index from before a restart (ahead of the host's)", function()
    local s, j, _, secs = srv:get("/registry/events?index=999999&wait=3")
    assert.are.equal(200, s)
    assert.is_true(secs < 1.5)
    assert.is_true(j.index < 999999)
  end)
end)

describe("HTTP API registry routes", function()
  local srv
  lazy_setup(function() srv = start_server("--maintenance 0.5") end)
  lazy_teardown(function() if srv then srv:stop() end end)

  local function ids(list, field)
    local out = {}
    for i, e in ipairs(list) do out[i] = e[field or "id"] end
    table.sort(out)
    return out
  end

  local function count(list, id, field)
    local n = 0
    for _, e in ipairs(list) do if e[field or "id"] == id then n = n + 1 end end
    return n
  end

  it("lists channels the host's systems registered, filtered by visibility and name", function()
    local s, list, r = srv:get("/registry/channels")
    assert.are.equal(200, s, r)
    assert.are.same({ "feed", "jobs" }, ids(list))
    for _, e in ipairs(list) do
      assert.are.equal(srv.base, e.endpoint)
      assert.are.equal("fixture", e.owner)
      assert.is_number(e.expires_at)
    end
    local _, pub = srv:get("/registry/channels?visibility=public")
    assert.are.same({ "feed" }, ids(pub))
    local feed = pub[1]
    assert.are.equal("Test Feed", feed.name)
    assert.are.equal("a broadcast", feed.description)
    assert.are.equal("broadcast", feed.kind)
    assert.are.equal("public", feed.visibility)
    local _, priv = srv:get("/registry/channels?visibility=private")
    assert.are.same({ "jobs" }, ids(priv))
    local _, byname = srv:get("/registry/channels?name=TEST%20fe")
    assert.are.same({ "feed" }, ids(byname))
    local _, both = srv:get("/registry/channels?name=o&visibility=private")
    assert.are.same({ "jobs" }, ids(both))
    local _, none = srv:get("/registry/channels?name=nothing-like-this")
    assert.are.same({}, none)
    local s2, j2, r2 = srv:get("/registry/channels?visibility=secret")
    assert_error(s2, 400, j2, r2, "bad_request")
  end)

  it("lists systems, filtered by exact capability", function()
    local s, list, r = srv:get("/registry/systems")
    assert.are.equal(200, s, r)
    assert.are.same({ "fixture" }, ids(list, "system_id"))
    local d = list[1]
    assert.are.equal("Fixture", d.system_name)
    assert.are.equal("owns the test channels", d.description)
    assert.are.same({ { name = "feeding", description = "a feed" } }, d.services)
    assert.is_number(d.expires_at)
    local _, found = srv:get("/registry/systems?capability=feeding")
    assert.are.same({ "fixture" }, ids(found, "system_id"))
    local _, partial = srv:get("/registry/systems?capability=feed")
    assert.are.same({}, partial)
    local _, upper = srv:get("/registry/systems?capability=FEEDING")
    assert.are.same({}, upper)
  end)

  it("gets one entry, 404 when absent", function()
    local s, e, r = srv:get("/registry/channels/feed")
    assert.are.equal(200, s, r)
    assert.are.equal("feed", e.id)
    assert.are.equal("Test Feed", e.name)
    assert.is_number(e.expires_at)
    s, e, r = srv:get("/registry/systems/fixture")
    assert.are.equal(200, s, r)
    assert.are.equal("fixture", e.system_id)
    local s2, j2, r2 = srv:get("/registry/channels/absent")
    assert_error(s2, 404, j2, r2, "not_found")
    s2, j2, r2 = srv:get("/registry/systems/absent")
    assert_error(s2, 404, j2, r2, "not_found")
    -- a channel the host has but nobody registered is not in the registry
    s2, j2, r2 = srv:get("/registry/channels/cursors")
    assert_error(s2, 404, j2, r2, "not_found")
  end)

  it("registers a channel with PUT ?ttl=S, replaces it on a re-PUT, deregisters with DELETE", function()
    local before = now()
    local s, e, r = srv:put("/registry/channels/ext-1?ttl=60", [[{"id": "ext-1", "name": "External One",
      "description": "elsewhere", "visibility": "public", "kind": "broadcast",
      "endpoint": "http://127.0.0.1:9", "owner": "remote-sys"}]])
    local after = now()
    assert.are.equal(200, s, r)
    assert.are.equal("ext-1", e.id)
    assert.are.equal("External One", e.name)
    assert.are.equal("elsewhere", e.description)
    assert.are.equal("public", e.visibility)
    assert.are.equal("broadcast", e.kind)
    assert.are.equal("http://127.0.0.1:9", e.endpoint)
    assert.are.equal("remote-sys", e.owner)
    assert.is_number(e.expires_at)
    assert.is_true(e.expires_at >= before + 60 - 0.5 and e.expires_at <= after + 60 + 0.5,
      ("expires_at %.3f not within [%.3f, %.3f] + 60"):format(e.expires_at, before, after))
    local s2, got = srv:get("/registry/channels/ext-1")
    assert.are.equal(200, s2)
    assert.are.same(e, got)

    -- re-PUT replaces: new name, same single entry
    s, e, r = srv:put("/registry/channels/ext-1?ttl=120", '{"id": "ext-1", "name": "External Renamed", "visibility": "private"}')
    assert.are.equal(200, s, r)
    assert.are.equal("External Renamed", e.name)
    assert.are.equal("private", e.visibility)
    assert.is_true(e.expires_at >= before + 120 - 0.5)
    local _, list = srv:get("/registry/channels")
    assert.are.equal(1, count(list, "ext-1"))
    local _, pub = srv:get("/registry/channels?visibility=public")
    assert.are.equal(0, count(pub, "ext-1"))
    local _, byname = srv:get("/registry/channels?name=renamed")
    assert.are.same({ "ext-1" }, ids(byname))

    -- the id may be left out of the body: the URL names it
    s, e, r = srv:put("/registry/channels/ext-2", '{"name": "Two"}')
    assert.are.equal(200, s, r)
    assert.are.equal("ext-2", e.id)
    assert.are.equal("public", e.visibility) -- the default
    -- without ?ttl the host's default (300 s) applies
    assert.is_true(e.expires_at > now() + 250)

    -- DELETE: 200, then 404 for the next DELETE and GET
    local sd, jd, rd = srv:request("DELETE", "/registry/channels/ext-1")
    assert.are.equal(200, sd, rd)
    assert.are.same({ status = "ok", deregistered = "ext-1" }, jd)
    local sd2, jd2, rd2 = srv:request("DELETE", "/registry/channels/ext-1")
    assert_error(sd2, 404, jd2, rd2, "not_found")
    local sg, jg, rg = srv:get("/registry/channels/ext-1")
    assert_error(sg, 404, jg, rg, "not_found")
    _, list = srv:get("/registry/channels")
    assert.are.equal(0, count(list, "ext-1"))
    assert.are.equal(200, (srv:request("DELETE", "/registry/channels/ext-2")))
  end)

  it("registers a system descriptor; capability queries find it; re-PUT replaces", function()
    local s, e, r = srv:put("/registry/systems/remote-ocr?ttl=60", [[{"system_id": "remote-ocr",
      "system_name": "Remote OCR", "description": "reads text",
      "services": [{"name": "ocr", "description": "image to text"}, {"name": "translate"}],
      "channels_read": ["images"], "channels_write": ["texts"]}]])
    assert.are.equal(200, s, r)
    assert.are.equal("remote-ocr", e.system_id)
    assert.are.equal("Remote OCR", e.system_name)
    assert.are.equal("reads text", e.description)
    assert.are.equal(2, #e.services)
    assert.are.equal("ocr", e.services[1].name)
    assert.are.equal("image to text", e.services[1].description)
    assert.are.equal("translate", e.services[2].name)
    assert.are.same({ "images" }, e.channels_read)
    assert.are.same({ "texts" }, e.channels_write)
    assert.is_true(math.abs(e.expires_at - (now() + 60)) < 2)
    local _, found = srv:get("/registry/systems?capability=translate")
    assert.are.same({ "remote-ocr" }, ids(found, "system_id"))

    -- re-PUT with other services: the old capability no longer finds it, no duplicate
    s, e, r = srv:put("/registry/systems/remote-ocr", '{"system_id": "remote-ocr", "services": [{"name": "ocr"}]}')
    assert.are.equal(200, s, r)
    local _, gone = srv:get("/registry/systems?capability=translate")
    assert.are.same({}, gone)
    local _, ocr = srv:get("/registry/systems?capability=ocr")
    assert.are.same({ "remote-ocr" }, ids(ocr, "system_id"))
    local _, all = srv:get("/registry/systems")
    assert.are.equal(1, count(all, "remote-ocr", "system_id"))

    local sd, jd = srv:request("DELETE", "/registry/systems/remote-ocr")
    assert.are.equal(200, sd)
    assert.are.same({ status = "ok", deregistered = "remote-ocr" }, jd)
    local sd2, jd2, rd2 = srv:request("DELETE", "/registry/systems/remote-ocr")
    assert_error(sd2, 404, jd2, rd2, "not_found")
    local sg, jg, rg = srv:get("/registry/systems/remote-ocr")
    assert_error(sg, 404, jg, rg, "not_found")
  end)

  it("refuses bad registrations with 400", function()
    local cases = {
      { "/registry/channels/bad-1", '{"id": "bad-1", "visibility": "secret"}' },
      { "/registry/channels/bad-1", '{"id": "other-id"}' },
      { "/registry/systems/bad-1", '{"system_id": "other-id"}' },
      { "/registry/channels/bad-1", '{"id": "bad-1", ' },
      { "/registry/systems/bad-1", "{oops" },
      { "/registry/channels/bad-1", "" },
      { "/registry/channels/bad-1", '"just a string"' },
      { "/registry/channels/bad-1?ttl=abc", '{"id": "bad-1"}' },
      { "/registry/channels/bad-1?ttl=0", '{"id": "bad-1"}' },
      { "/registry/channels/bad-1?ttl=-5", '{"id": "bad-1"}' },
      { "/registry/systems/bad-1", '{"system_id": "bad-1", "services": [{"description": "no name"}]}' },
    }
    for _, c in ipairs(cases) do
      local s, j, r = srv:put(c[1], c[2])
      assert_error(s, 400, j, r, "bad_request")
    end
    local _, list = srv:get("/registry/channels")
    assert.are.equal(0, count(list, "bad-1"))
    assert.are.equal(0, count(list, "other-id"))
    local _, systems = srv:get("/registry/systems")
    assert.are.equal(0, count(systems, "bad-1", "system_id"))
    -- the list routes take GET only
    local s, j, r = srv:put("/registry/channels", '{"id": "x"}')
    assert_error(s, 405, j, r, "method_not_allowed")
    s, j, r = srv:request("POST", "/registry/channels/feed", { body = '{"id": "feed"}' })
    assert_error(s, 405, j, r, "method_not_allowed")
  end)

  it("refuses a JSON array as a registration body with 400 (it is not an object)", function()
    for _, path in ipairs { "/registry/channels/arr-1", "/registry/systems/arr-1" } do
      local s, j, r = srv:put(path, "[1, 2]")
      assert_error(s, 400, j, r, "bad_request")
      s, j, r = srv:put(path, "[]")
      assert_error(s, 400, j, r, "bad_request")
      srv:request("DELETE", path) -- clean up if it was taken
    end
  end)

  it("gives an entry to its registrant: a PUT from another takes it over, a refresh or DELETE of theirs is 409", function()
    local blue, green = "blue-instance/svc", "green-instance/svc"
    local _, ev0 = srv:get("/registry/events?index=" .. math.maxinteger)
    local s, e, r = srv:put("/registry/channels/owned-1?ttl=60&registrant=" .. blue,
      '{"id": "owned-1", "endpoint": "http://blue:1"}')
    assert.are.equal(200, s, r)
    -- a refresh by the owner renews; by another, or by an operator, it is refused and changes nothing
    s, e, r = srv:put("/registry/channels/owned-1?ttl=60&refresh=true&registrant=" .. blue,
      '{"id": "owned-1", "endpoint": "http://blue:1"}')
    assert.are.equal(200, s, r)
    local blue_expires = e.expires_at
    s, e, r = srv:put("/registry/channels/owned-1?ttl=90&refresh=true&registrant=" .. green,
      '{"id": "owned-1", "endpoint": "http://green:2"}')
    assert_error(s, 409, e, r, "not_owner")
    assert.are.equal(blue, e.error.registrant)
    assert.are.equal("http://blue:1", e.error.endpoint)
    assert.matches(blue, e.detail, 1, true)
    assert.matches("http://blue:1", e.detail, 1, true)
    s, e, r = srv:put("/registry/channels/owned-1?refresh=true", '{"id": "owned-1"}')
    assert_error(s, 409, e, r, "not_owner")
    local _, got = srv:get("/registry/channels/owned-1")
    assert.are.equal("http://blue:1", got.endpoint)
    assert.are.equal(blue_expires, got.expires_at)

    -- a plain PUT from another registrant takes it over: "replaced", with both entries
    s, e, r = srv:put("/registry/channels/owned-1?ttl=90&registrant=" .. green,
      '{"id": "owned-1", "endpoint": "http://green:2"}')
    assert.are.equal(200, s, r)
    assert.are.equal("http://green:2", e.endpoint)
    local _, ev = srv:get("/registry/events?index=" .. ev0.index)
    local names, replaced = {}, nil
    for _, x in ipairs(ev.events) do
      if x.id == "owned-1" then
        names[#names + 1] = x.event
        if x.event == "replaced" then replaced = x end
      end
    end
    assert.are.same({ "registered", "refreshed", "replaced" }, names)
    assert.are.equal(green, replaced.registrant)
    assert.are.equal(blue, replaced.previous_registrant)
    assert.are.equal("http://green:2", replaced.entry.endpoint)
    assert.are.equal("http://blue:1", replaced.previous.endpoint)
    assert.are.equal(blue_expires, replaced.previous.expires_at)

    -- the old owner can neither refresh nor delete it now
    s, e, r = srv:put("/registry/channels/owned-1?refresh=true&registrant=" .. blue,
      '{"id": "owned-1", "endpoint": "http://blue:1"}')
    assert_error(s, 409, e, r, "not_owner")
    assert.are.equal(green, e.error.registrant)
    s, e, r = srv:request("DELETE", "/registry/channels/owned-1?registrant=" .. blue)
    assert_error(s, 409, e, r, "not_owner")
    assert.are.equal("http://green:2", e.error.endpoint)
    assert.are.equal(200, (srv:get("/registry/channels/owned-1")))
    -- the owner can; then it is absent (404) for everyone
    s, e, r = srv:request("DELETE", "/registry/channels/owned-1?registrant=" .. green)
    assert.are.equal(200, s, r)
    assert.are.same({ status = "ok", deregistered = "owned-1" }, e)
    s, e, r = srv:request("DELETE", "/registry/channels/owned-1?registrant=" .. green)
    assert_error(s, 404, e, r, "not_found")
    -- a refresh of an absent entry registers it again
    s, e, r = srv:put("/registry/channels/owned-1?refresh=true&registrant=" .. blue, '{"id": "owned-1"}')
    assert.are.equal(200, s, r)
    -- DELETE without a registrant is an operator's: it removes whoever's entry it is
    s, e, r = srv:request("DELETE", "/registry/channels/owned-1")
    assert.are.equal(200, s, r)
  end)

  it("filters registry events by registrant, moving the index past the others", function()
    local _, ev0 = srv:get("/registry/events?index=" .. math.maxinteger)
    assert.are.equal(200, (srv:put("/registry/systems/watched?registrant=w1", '{"system_id": "watched"}')))
    assert.are.equal(200, (srv:put("/registry/systems/unwatched?registrant=w2", '{"system_id": "unwatched"}')))
    assert.are.equal(200, (srv:put("/registry/systems/watched?registrant=w2", '{"system_id": "watched"}')))
    local s, ev, r = srv:get(("/registry/events?index=%d&registrant=w1"):format(ev0.index))
    assert.are.equal(200, s, r)
    local seen = {}
    for i, x in ipairs(ev.events) do seen[i] = x.event .. " " .. x.id end
    assert.are.same({ "registered watched", "replaced watched" }, seen)
    -- nothing more for w1: a wait ends at its deadline with the index past the others' events
    local s2, ev2, r2, secs = srv:get(("/registry/events?index=%d&registrant=w1&wait=1"):format(ev.index))
    assert.are.equal(200, s2, r2)
    assert.are.same({}, ev2.events)
    assert.is_true(secs >= 0.9, tostring(secs))
    assert.are.equal(200, (srv:request("DELETE", "/registry/systems/watched")))
    assert.are.equal(200, (srv:request("DELETE", "/registry/systems/unwatched")))
  end)

  it("refuses bad registrants, refresh values and ids over 256 bytes with 400", function()
    local long_id = ("i"):rep(257)
    local cases = {
      { "PUT", "/registry/channels/r-1?registrant=", '{"id": "r-1"}' },
      { "PUT", "/registry/channels/r-1?registrant=" .. ("r"):rep(513), '{"id": "r-1"}' },
      { "PUT", "/registry/channels/r-1?refresh=maybe", '{"id": "r-1"}' },
      { "PUT", "/registry/channels/" .. long_id, "{}" },
      { "PUT", "/registry/systems/" .. long_id, "{}" },
      { "DELETE", "/registry/channels/r-1?registrant=" },
      { "DELETE", "/registry/channels/" .. long_id },
      { "GET", "/registry/events?registrant=" },
    }
    for _, c in ipairs(cases) do
      local s, j, r = srv:request(c[1], c[2], { body = c[3] })
      assert_error(s, 400, j, r, "bad_request")
    end
    local s, j = srv:request("PUT", "/registry/channels/" .. long_id, { body = "{}" })
    assert.are.equal(400, s)
    assert.matches("256", j.detail)
    assert.are.equal(404, (srv:get("/registry/channels/r-1")))
    -- 256 bytes and a 512-byte registrant are fine
    s = srv:put(("/registry/channels/%s?registrant=%s"):format(("i"):rep(256), ("r"):rep(512)), "{}")
    assert.are.equal(200, s)
    assert.are.equal(200, (srv:request("DELETE", "/registry/channels/" .. ("i"):rep(256))))
  end)

  it("words registration errors without the router's source location", function()
    local s, j, r = srv:put("/registry/channels/bad-2", '{"id": "bad-2", "visibility": "secret"}')
    assert_error(s, 400, j, r, "bad_request")
    assert.matches("visibility", j.detail)
    assert.is_nil(j.detail:find("%.lua:%d+:"), j.detail)
    s, j, r = srv:put("/registry/systems/bad-2", '{"services": [{"description": "no name"}]}')
    assert_error(s, 400, j, r, "bad_request")
    assert.is_nil(j.detail:find("%.lua:%d+:"), j.detail)
  end)

  it("drops entries registered with ttl=1 after about a second", function()
    local _, ev0 = srv:get("/registry/events?index=" .. math.maxinteger)
    local t_put = now()
    assert.are.equal(200, (srv:put("/registry/channels/short-lived?ttl=1", '{"id": "short-lived", "name": "Short"}')))
    assert.are.equal(200, (srv:put("/registry/systems/short-sys?ttl=1",
      '{"system_id": "short-sys", "services": [{"name": "blink"}]}')))
    assert.are.equal(200, (srv:get("/registry/channels/short-lived")))
    local _, found = srv:get("/registry/systems?capability=blink")
    assert.are.same({ "short-sys" }, ids(found, "system_id"))
    -- hidden once the ttl has passed: by 1.25 s after the PUT
    testing.eventually(math.max(0, t_put + 1.25 - now()), function()
      return srv:get("/registry/channels/short-lived") == 404
    end, 0.05)
    local s, j, r = srv:get("/registry/channels/short-lived")
    assert_error(s, 404, j, r, "not_found")
    s, j, r = srv:get("/registry/systems/short-sys")
    assert_error(s, 404, j, r, "not_found")
    local _, list = srv:get("/registry/channels")
    assert.are.equal(0, count(list, "short-lived"))
    local _, caps = srv:get("/registry/systems?capability=blink")
    assert.are.same({}, caps)
    -- maintenance (every 0.5 s here) purged them: counted and published as "expired" (the
    -- watch waits for those events, for at most 1 s)
    local purged, index = {}, ev0.index
    testing.eventually(1, function()
      local _, ev = srv:get(("/registry/events?index=%d&wait=0.5"):format(index))
      for _, e in ipairs(ev.events) do
        if e.event == "expired" then purged[e.id] = true end
      end
      index = ev.index
      return purged["short-lived"] and purged["short-sys"]
    end, 0)
    local _, _, metrics = srv:get("/metrics")
    local expired = tonumber(metrics:match("\nsssn_registry_expired_total (%d+)"))
    assert.is_true(expired >= 2, metrics)
    local _, ev = srv:get("/registry/events?index=0")
    local seen = {}
    for _, e in ipairs(ev.events) do
      if e.event == "expired" then seen[e.id] = e.kind end
    end
    assert.are.same({ ["short-lived"] = "channel", ["short-sys"] = "system" }, seen)
  end)

  it("watches registry events: index=0 answers at once with every event and the current index", function()
    local s, j, r, secs = srv:get("/registry/events?index=0")
    assert.are.equal(200, s, r)
    assert.is_true(secs < 1)
    assert.is_number(j.index)
    assert.is_table(j.events)
    assert.is_true(#j.events >= 3)
    local prev = 0
    for _, e in ipairs(j.events) do
      assert.is_number(e.index)
      assert.is_true(e.index > prev)
      prev = e.index
      assert.is_string(e.event)
      assert.truthy(({ registered = 1, refreshed = 1, replaced = 1, expired = 1, deregistered = 1 })[e.event], e.event)
      assert.truthy(e.kind == "channel" or e.kind == "system", e.kind)
      assert.is_string(e.id)
      assert.is_table(e.entry)
      assert.is_number(e.entry.expires_at)
      assert.truthy(e.registrant == null or type(e.registrant) == "string", tostring(e.registrant))
      if e.event == "replaced" then
        assert.is_number(e.previous.expires_at)
        assert.truthy(e.previous_registrant == null or type(e.previous_registrant) == "string")
      else
        assert.is_nil(e.previous)
      end
    end
    assert.are.equal(prev, j.index)
    -- the first events are the fixture's registrations, in order
    assert.are.same({ 1, "registered", "channel", "feed" },
      { j.events[1].index, j.events[1].event, j.events[1].kind, j.events[1].id })
    assert.are.equal("Test Feed", j.events[1].entry.name)
    assert.are.same({ "registered", "system", "fixture" }, { j.events[3].event, j.events[3].kind, j.events[3].id })
    -- index=N returns only what came after N
    local _, tail = srv:get("/registry/events?index=" .. (j.index - 1))
    assert.are.equal(1, #tail.events)
    assert.are.equal(j.index, tail.events[1].index)
    local _, limited = srv:get("/registry/events?index=0&limit=2")
    assert.are.equal(2, #limited.events)
    assert.are.equal(2, limited.index)
    -- bad parameters
    for _, q in ipairs { "index=-1", "index=abc", "wait=abc", "limit=0" } do
      local s2, j2, r2 = srv:get("/registry/events?" .. q)
      assert_error(s2, 400, j2, r2, "bad_request")
    end
  end)

  it("a watch at the current index waits and is woken by a registry PUT; a stale index answers at once", function()
    local _, cur = srv:get("/registry/events?index=0")
    local index = cur.index
    -- nothing new: wait=1 times out with no events and the same index
    local s, j, r, secs = srv:get(("/registry/events?index=%d&wait=1"):format(index))
    assert.are.equal(200, s, r)
    assert.are.same({}, j.events)
    assert.are.equal(index, j.index)
    assert.is_true(secs >= 0.8 and secs < 3, "took " .. secs)

    local watch = testing.http_start("GET", ("%s/registry/events?index=%d&wait=3"):format(srv.base, index),
      { timeout = 15 })
    testing.run_for(0.4)
    srv:put("/registry/channels/watched?ttl=30", '{"id": "watched", "name": "Watched"}', { max_time = 2 })
    local ws, wbody, wsecs = watch:wait()
    assert.are.equal(200, ws, wbody)
    assert.is_true(wsecs >= 0.3 and wsecs < 2, "the watch took " .. tostring(wsecs))
    local w = try_decode(wbody)
    assert.are.equal(1, #w.events)
    local e = w.events[1]
    assert.are.equal(index + 1, e.index)
    assert.are.equal(index + 1, w.index)
    assert.are.equal("registered", e.event)
    assert.are.equal("channel", e.kind)
    assert.are.equal("watched", e.id)
    assert.are.equal("Watched", e.entry.name)

    -- a stale index answers at once, even with a wait
    s, j, r, secs = srv:get(("/registry/events?index=%d&wait=3"):format(index - 1))
    assert.are.equal(200, s, r)
    assert.is_true(secs < 1, "took " .. secs)
    assert.are.equal(2, #j.events)
    assert.are.equal(index + 1, j.index)

    -- re-PUT and DELETE are events too
    srv:put("/registry/channels/watched", '{"id": "watched"}')
    srv:request("DELETE", "/registry/channels/watched")
    local _, more = srv:get(("/registry/events?index=%d"):format(index + 1))
    local kinds = {}
    for i, ev in ipairs(more.events) do kinds[i] = ev.event .. " " .. ev.id end
    assert.are.same({ "refreshed watched", "deregistered watched" }, kinds)
  end)
end)

-- Health, metrics, errors -----------------------------------------------------------------

describe("HTTP API /health, /metrics and errors", function()
  local srv
  lazy_setup(function() srv = start_server() end)
  lazy_teardown(function() if srv then srv:stop() end end)

  it("GET /health answers status ok with the host's counts", function()
    local s, j, r, _, ctype = srv:get("/health")
    assert.are.equal(200, s, r)
    assert.matches("^application/json", ctype)
    assert.are.equal("ok", j.status)
    assert.is_string(j.version)
    assert.are.equal(1, j.systems)
    assert.is_number(j.channels)
    assert.are.same({ channels = 2, systems = 1 }, j.registry)
  end)

  it("GET /metrics answers Prometheus text with the host's counters", function()
    srv:put("/channels/feed", '{"m": 1}')
    srv:get("/no/such/route")
    -- the fixture steps at 1 Hz: wait (at most 2 s) for its first step
    local s, _, text, _, ctype
    testing.eventually(2, function()
      s, _, text, _, ctype = srv:get("/metrics")
      return s == 200 and tonumber(text:match("\nsssn_steps_total (%d+)\n") or 0) >= 1
    end, 0.05)
    assert.are.equal(200, s)
    assert.matches("^text/plain", ctype)
    local function value(pattern)
      local v = text:match("\n" .. pattern .. " (%d+)\n")
      assert.is_not_nil(v, pattern .. " in\n" .. text)
      return tonumber(v)
    end
    assert.are.equal(1, value("sssn_systems"))
    assert.is_true(value("sssn_steps_total") >= 1)
    assert.are.equal(0, value("sssn_step_errors_total"))
    assert.is_number(value("sssn_overruns_total"))
    assert.is_true(value("sssn_channel_writes_total") >= 1)
    assert.is_number(value("sssn_channel_reads_total"))
    assert.are.equal(2, value('sssn_registry_entries{kind="channel"}'))
    assert.are.equal(1, value('sssn_registry_entries{kind="system"}'))
    assert.are.equal(0, value("sssn_registry_expired_total"))
    assert.is_true(value('sssn_http_requests_total{status="2xx"}') >= 2)
    assert.is_true(value('sssn_http_requests_total{status="4xx"}') >= 1)
    assert.truthy(text:find("# TYPE sssn_steps_total counter", 1, true))
    assert.truthy(text:find("# TYPE sssn_systems gauge", 1, true))
    -- tick lateness as a histogram: cumulative buckets, +Inf equal to the count of steps timed
    assert.truthy(text:find("# TYPE sssn_tick_lateness_seconds histogram", 1, true))
    local previous, buckets = 0, 0
    for le, n in text:gmatch('\nsssn_tick_lateness_seconds_bucket{le="([^"]+)"} (%d+)') do
      assert.is_true(tonumber(n) >= previous, le)
      previous, buckets = tonumber(n), buckets + 1
    end
    assert.are.equal(10, buckets)
    local count = value("sssn_tick_lateness_seconds_count")
    assert.is_true(count >= 1)
    assert.are.equal(count, value('sssn_tick_lateness_seconds_bucket{le="%+Inf"}'))
    assert.is_not_nil(text:match("\nsssn_tick_lateness_seconds_sum [%d.e+-]+\n"), text)
  end)

  it("answers unknown routes with 404 and wrong methods with 405, always as JSON errors", function()
    for _, path in ipairs { "/nope", "/ui/nope.js", "/channels/feed/bogus", "/registry", "/registry/other",
      "/registry/channels/feed/extra", "/health/x" } do
      local s, j, r = srv:get(path)
      assert_error(s, 404, j, r, "not_found")
    end
    for _, c in ipairs { { "POST", "/health" }, { "DELETE", "/metrics" }, { "DELETE", "/channels/feed" },
      { "PUT", "/channels/feed/acknowledge" }, { "POST", "/registry/events" }, { "DELETE", "/registry/systems" } } do
      local s, j, r = srv:request(c[1], c[2], { body = "{}" })
      assert_error(s, 405, j, r, "method_not_allowed")
      assert.truthy(j.detail:find(c[1], 1, true), j.detail)
    end
    -- where GET is allowed, so is HEAD, and the list says so
    local _, j = srv:request("POST", "/health", { body = "{}" })
    assert.truthy(j.detail:find("allowed: GET, HEAD", 1, true), j.detail)
  end)

  it("decodes percent-escapes in paths and queries", function()
    assert.are.equal(200, (srv:put("/channels/%66eed", '{"escaped": true}')))
    local s, j = srv:get("/channels/feed?limit=%31%30", { token = "esc" })
    assert.are.equal(200, s)
    local last = j.messages[#j.messages]
    assert.are.same({ escaped = true }, last.content.data)
  end)

  it("refuses invalid UTF-8 in a path, a query or a body with 400, and keeps serving", function()
    local s, j, r = srv:get("/channels/%FF")
    assert_error(s, 400, j, r, "bad_request")
    s, j, r = srv:get("/channels/feed?limit=1&x=%C3")
    assert_error(s, 400, j, r, "bad_request")
    s, j, r = srv:put("/channels/feed", '{"name": "caf\xe9"}')
    assert_error(s, 400, j, r, "bad_request")
    assert.truthy(j.detail:find("invalid UTF-8", 1, true), j.detail)
    s = srv:put("/channels/feed", '{"name": "caf\\u00e9", "big": 9007199254740993}')
    assert.are.equal(200, s)
    local _, got = srv:get("/channels/feed", { token = "utf8-reader" })
    local last = got.messages[#got.messages].content.data
    assert.are.equal("café", last.name)
  end)

  it("keeps integers beyond 2^53 exact and refuses those beyond 64 bits with 400", function()
    assert.are.equal(200, (srv:put("/channels/raw", '{"n": 9007199254740993}')))
    local _, _, raw = srv:get("/channels/raw?limit=1000", { token = "big-ints" })
    assert.truthy(raw:find('"n":9007199254740993', 1, true), raw)
    local s, j, r = srv:put("/channels/raw", '{"n": 99999999999999999999}')
    assert_error(s, 400, j, r, "bad_request")
    assert.truthy(j.detail:find("out of range", 1, true), j.detail)
  end)
end)

-- HTTP mechanics --------------------------------------------------------------------------

describe("HTTP mechanics", function()
  local srv
  lazy_setup(function() srv = start_server() end)
  lazy_teardown(function() if srv then srv:stop() end end)

  -- Writes the bytes of `payload` to a fresh connection (all at once, or one byte at a time
  -- with `bytewise`, each its own segment a few ms apart) and returns everything the host
  -- sent until it closed (bounded by 5 s).
  local function raw(payload, bytewise)
    local c = assert(testing.tcp(srv.port))
    if bytewise then
      for i = 1, #payload do
        assert(c:send(payload:sub(i, i)))
        testing.run_for(0.003)
      end
    else
      assert(c:send(payload))
    end
    local out = c:receive(5)
    c:close()
    return out
  end

  -- Splits a stream of responses into {status=, headers=, body=} in order.
  local function responses(stream)
    local out, pos = {}, 1
    while pos <= #stream do
      local head_end = stream:find("\r\n\r\n", pos, true)
      if not head_end then break end
      local head = stream:sub(pos, head_end - 1)
      local status = tonumber(head:match("^HTTP/1%.1 (%d%d%d)"))
      local len = tonumber(head:match("\r\n[Cc]ontent%-[Ll]ength: *(%d+)"))
      local body = stream:sub(head_end + 4, head_end + 3 + (len or 0))
      out[#out + 1] = { status = status, head = head, body = body }
      pos = head_end + 4 + (len or 0)
    end
    return out
  end

  local function get_req(path, extra) return ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n"):format(path, extra or "") end

  it("keeps a connection alive across requests (the client connects once)", function()
    -- the first request opens a new connection; the others find it (or another) kept alive
    local lines = {}
    for i, path in ipairs { "/health", "/channels/feed/info", "/nope", "/metrics" } do
      local status, body, _, _, connects = testing.http("GET", srv.base .. path, { fresh = i == 1 })
      assert.is_number(status, body)
      lines[i] = ("%d %d"):format(status, connects)
    end
    assert.are.same({ "200 1", "200 0", "404 0", "200 0" }, lines)
  end)

  it("answers pipelined requests sent in one write, in order", function()
    local pipe_body = '{"pipe": 1}\r\n'
    local payload = get_req("/health")
      .. ("PUT /channels/raw HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n%s"):format(#pipe_body, pipe_body)
      .. get_req("/channels/nope")
      .. get_req("/channels/raw", "Authorization: Bearer piper\r\n")
      .. get_req("/channels/feed/info", "Connection: close\r\n")
    local rs = responses(raw(payload))
    assert.are.equal(5, #rs)
    assert.are.equal(200, rs[1].status)
    assert.are.equal("ok", try_decode(rs[1].body).status)
    assert.are.equal(200, rs[2].status)
    assert.are.equal("accepted", try_decode(rs[2].body).status)
    assert.are.equal(404, rs[3].status)
    assert.matches("nope", try_decode(rs[3].body).detail)
    assert.are.equal(200, rs[4].status)
    assert.are.same({ { pipe = 1 } }, datas_of(try_decode(rs[4].body).messages))
    assert.are.equal(200, rs[5].status)
    assert.are.equal("feed", try_decode(rs[5].body).id)
    assert.matches("\r\nConnection: close", rs[5].head)
    assert.matches("\r\nConnection: keep%-alive", rs[1].head)
  end)

  it("parses a request written one byte at a time", function()
    local body = '{"slow": "yes"}'
    local payload = "PUT /channels/raw HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer slow\r\n"
      .. ("Content-Length: %d\r\nConnection: close\r\n\r\n%s"):format(#body, body)
    local rs = responses(raw(payload, true))
    assert.are.equal(1, #rs)
    assert.are.equal(200, rs[1].status, rs[1].body)
    local item = try_decode(rs[1].body).item_id
    local _, j = srv:get("/channels/raw?after=0", { token = "check-slow" })
    local m = j.messages[#j.messages]
    assert.are.equal(item, m.id)
    assert.are.equal("slow", m.sender_id)
    assert.are.same({ slow = "yes" }, m.content.data)
  end)

  it("answers a malformed request line with a JSON 400 and keeps serving new connections", function()
    for _, payload in ipairs { "BLAH\r\n\r\n", "GET\r\n\r\n", "GET /health HTTP/9.Z\r\n\r\n",
      "GET /health HTTP/1.1\r\nContent-Length: nope\r\n\r\n" } do
      local rs = responses(raw(payload))
      assert.are.equal(1, #rs, payload)
      assert.are.equal(400, rs[1].status, payload)
      assert_error(400, 400, try_decode(rs[1].body), rs[1].body, "bad_request")
      local s, j = srv:get("/health")
      assert.are.equal(200, s)
      assert.are.equal("ok", j.status)
    end
    -- a good request before the bad one on the same connection is still answered
    local rs = responses(raw(get_req("/health") .. "NOT HTTP AT ALL\r\n\r\n"))
    assert.are.equal(2, #rs)
    assert.are.equal(200, rs[1].status)
    assert.are.equal(400, rs[2].status)
  end)

  it("answers a long-poll on one connection and then serves the next request on it", function()
    local payload = get_req("/channels/quiet?wait=0.5", "Authorization: Bearer lp-keep\r\n")
      .. get_req("/health", "Connection: close\r\n")
    local rs = responses(raw(payload))
    assert.are.equal(2, #rs)
    assert.are.equal(200, rs[1].status)
    assert.are.same({}, try_decode(rs[1].body).messages)
    assert.are.equal(200, rs[2].status)
  end)

  it("still answers after all of that (and its metrics count the 4xx)", function()
    local s, _, text = srv:get("/metrics")
    assert.are.equal(200, s)
    local n4 = tonumber(text:match('sssn_http_requests_total{status="4xx"} (%d+)'))
    assert.is_true(n4 >= 5, text)
    assert.are.equal("0", text:match('sssn_http_requests_total{status="5xx"} (%d+)'))
  end)
end)
