-- --token-file: the credential a host sends to other hosts. Host B (and the REPL) reach host
-- A through a recording proxy (a few lines of Python's own http.server, nothing shared with
-- the host) that writes down the method, path, query, Authorization header and body of every
-- request before it passes it on; A advertises the proxy as its endpoint, so remote channel
-- calls go through it too. The specs then check what each client sent.
local testing = require "sssn.testing"
local json = require("sssn").json

local exe = testing.exe

local PROXY = [[
import http.client, http.server, json, sys
log_path, upstream_path = sys.argv[1], sys.argv[2]
log = open(log_path, "a", buffering=1)

class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def relay(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        path, _, query = self.path.partition("?")
        log.write(json.dumps({"method": self.command, "path": path, "query": query,
                              "auth": self.headers.get("Authorization") or "",
                              "body": body.decode("utf-8", "replace")}) + "\n")
        with open(upstream_path) as f:
            port = int(f.read().strip())
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")}
        up = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        up.request(self.command, self.path, body if n else None, headers)
        r = up.getresponse()
        data = r.read()
        up.close()
        self.send_response(r.status)
        self.send_header("Content-Type", r.getheader("Content-Type") or "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    do_GET = do_PUT = do_POST = do_DELETE = relay

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
]]

-- Host A: owns a broadcast, a work queue and a channel to subscribe to, registers them.
local OWNER = [[
local sssn = require "sssn"
local s = sssn.system { id = "far" }
function s:setup()
  for _, ch in ipairs { sssn.broadcast { id = "feed" }, sssn.work_queue { id = "jobs" },
      sssn.broadcast { id = "news" } } do
    self:add_channel(ch)
    sssn.registry:register_channel(ch.info)
  end
  self:write_channel("feed", { n = 1 })
  self:write_channel("jobs", { job = 1 })
  self:write_channel("jobs", { job = 2 })
  self:write_channel("news", { n = 7 })
  print("owner ready")
end
function s:step() end
return s
]]

-- Host B: a system named ID registers itself through A, then reads, writes, claims, acks,
-- nacks and subscribes to A's channels.
local CLIENT = [[
local sssn = require "sssn"
local s = sssn.system { id = ID, tick_rate = 5 }
function s:setup() sssn.registry:register_system(self:descriptor()) end
function s:step()
  if self.started then return end
  self.started = true
  for _, id in ipairs { "feed", "jobs", "news" } do self:connect(sssn.registry:get_channel(id)) end
  self:subscribe_channel("news", function(m) print("news " .. m.content.data.n) end)
  print("read " .. #self:read_channel("feed"))
  print("wrote " .. type(self:write_channel("feed", { n = 2 })))
  local jobs = self:claim_channel("jobs", { limit = 2 })
  print("claimed " .. #jobs)
  print("acked " .. self:acknowledge_channel("jobs", { jobs[1] }))
  print("nacked " .. self:nack_channel("jobs", { jobs[2] }))
  print("client done")
end
return s
]]

local function query_of(r)
  local q = {}
  for k, v in (r.query or ""):gmatch("([^&=]+)=([^&]*)") do
    q[k] = v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  end
  return q
end

-- The requests the proxy recorded, decoded.
local function recorded(world)
  local list = {}
  for line in testing.read_file(world.dir .. "/requests.log"):gmatch("[^\n]+") do
    local r = json.decode(line)
    r.q = query_of(r)
    list[#list + 1] = r
  end
  return list
end

local function find(list, method, path, pred)
  for _, r in ipairs(list) do
    if r.method == method and r.path == path and (not pred or pred(r)) then return r end
  end
end

local function describe_all(list)
  local t = {}
  for _, r in ipairs(list) do t[#t + 1] = ("%s %s?%s [%s]"):format(r.method, r.path, r.query, r.auth) end
  return table.concat(t, "\n")
end

-- The proxy and host A behind it.
local function start_world()
  local w = { dir = testing.tmpdir(), procs = {} }
  testing.write_file(w.dir .. "/proxy.py", PROXY)
  testing.write_file(w.dir .. "/owner.lua", OWNER)
  local proxy = testing.start({ "python3", w.dir .. "/proxy.py", w.dir .. "/requests.log", w.dir .. "/upstream" },
    { stdout = w.dir .. "/proxy.out", stderr = w.dir .. "/proxy.err" })
  w.procs[#w.procs + 1] = proxy
  local port = testing.eventually(10, function() return proxy:out():match("^(%d+)\n") or not proxy:alive() end)
  assert(type(port) == "string", "the recording proxy did not start: " .. proxy:err())
  w.url = "http://127.0.0.1:" .. port
  local a = testing.start_host({ "--listen", "127.0.0.1:0", "--advertise", w.url, w.dir .. "/owner.lua" },
    { dir = w.dir, name = "a" })
  w.procs[#w.procs + 1] = a
  a:ready()
  a:wait_output("owner ready")
  testing.write_file(w.dir .. "/upstream", tostring(a.port))
  function w.stop()
    for i = #w.procs, 1, -1 do pcall(w.procs[i].stop, w.procs[i]) end
    testing.rmtree(w.dir)
  end
  return w
end

-- Starts host B running CLIENT as system `id` through the world's proxy, with extra args.
local function start_client(w, id, args)
  testing.write_file(("%s/%s.lua"):format(w.dir, id), ("local ID = %q\n"):format(id) .. CLIENT)
  local argv = { "--registry", w.url, "--log-level", "warn" }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  argv[#argv + 1] = ("%s/%s.lua"):format(w.dir, id)
  local b = testing.start_host(argv, { dir = w.dir, name = id })
  w.procs[#w.procs + 1] = b
  b:wait_output("client done", 10)
  b:wait_output("news 7", 5)
  return b
end

describe("a host started with --token-file", function()
  local w
  setup(function() w = start_world() end)
  teardown(function() if w then w.stop() end end)

  local TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJob3N0LWIifQ.c2lnbmF0dXJl"

  it("sends its credential with every request to the --registry host, the events long-poll too", function()
    testing.write_file(w.dir .. "/b.token", "\n  " .. TOKEN .. "  \n\n")
    start_client(w, "near", { "--token-file", w.dir .. "/b.token" })
    local list = testing.eventually(10, function()
      local l = recorded(w)
      return find(l, "GET", "/registry/events", function(r) return r.q.wait end) and l
    end) or recorded(w)
    local put = find(list, "PUT", "/registry/systems/near")
    assert.is_truthy(put, describe_all(list))
    assert.are.equal("Bearer " .. TOKEN, put.auth)
    assert.are.equal("Bearer " .. TOKEN, find(list, "GET", "/registry/channels/feed").auth)
    local watch = find(list, "GET", "/registry/events", function(r) return r.q.wait end)
    assert.is_truthy(watch, describe_all(list))
    assert.are.equal("Bearer " .. TOKEN, watch.auth)
    for _, r in ipairs(list) do
      if r.path:match("^/registry/") and (r.q.registrant or r.q.registrant_prefix or ""):find("/", 1, true) then
        assert.are.equal("Bearer " .. TOKEN, r.auth, describe_all(list))
      end
    end
  end)

  it("sends it from remote channels, naming the reading system with ?reader=", function()
    local list = recorded(w)
    local function mine(r) return r.auth == "Bearer " .. TOKEN end
    local read = find(list, "GET", "/channels/feed", mine)
    assert.is_truthy(read, describe_all(list))
    assert.are.equal("near", read.q.reader)
    local claim = find(list, "GET", "/channels/jobs", mine)
    assert.are.equal("true", claim.q.exclusive)
    assert.are.equal("near", claim.q.reader)
    assert.are.equal("near", find(list, "POST", "/channels/jobs/acknowledge", mine).q.reader)
    assert.are.equal("near", find(list, "POST", "/channels/jobs/nack", mine).q.reader)
    local sub = find(list, "GET", "/channels/news", mine)
    assert.are.equal("near", sub.q.reader)
    -- the write names no sender of its own: the server makes it "<subject>/near" from ?reader=
    local write = find(list, "PUT", "/channels/feed", mine)
    assert.are.equal("true", write.q.direct)
    assert.are.equal("near", write.q.reader)
    assert.is_nil(json.decode(write.body).sender_id)
    -- and nothing of B's went without it
    for _, r in ipairs(list) do
      if r.path:match("^/channels/") and r.auth ~= "Bearer " .. TOKEN then
        error("a channel request without the credential: " .. describe_all(list))
      end
    end
  end)

  it("sends it from `sssn-host repl URL --token-file FILE`, reading as system repl", function()
    testing.write_file(w.dir .. "/repl.token", "repl-static-token-1\n")
    local out, _, code = testing.run({ exe, "repl", w.url, "--token-file", w.dir .. "/repl.token" },
      { input = 'channel("news").id\nread("news", 1)[1].content.data.n\nwrite("news", { n = 8 }) ~= nil\n',
        merge = true })
    assert.are.equal(0, code, out)
    assert.are.equal("news\n7\ntrue\n", out)
    local list = recorded(w)
    local function mine(r) return r.auth == "Bearer repl-static-token-1" end
    assert.is_truthy(find(list, "GET", "/registry/channels/news", mine), describe_all(list))
    local read = find(list, "GET", "/channels/news", function(r) return mine(r) and not r.q.wait end)
    assert.is_truthy(read, describe_all(list))
    assert.are.equal("repl", read.q.reader)
    assert.is_truthy(find(list, "PUT", "/channels/news", mine), describe_all(list))
  end)

  it("without it, sends the system id as its Bearer and no reader, as before", function()
    start_client(w, "plain")
    local list = recorded(w)
    local put = find(list, "PUT", "/registry/systems/plain")
    assert.is_truthy(put, describe_all(list))
    assert.are.equal("", put.auth)
    local function mine(r) return r.auth == "Bearer plain" end
    for _, spec in ipairs { { "GET", "/channels/feed" }, { "GET", "/channels/jobs" },
        { "POST", "/channels/jobs/acknowledge" }, { "POST", "/channels/jobs/nack" }, { "GET", "/channels/news" } } do
      local r = find(list, spec[1], spec[2], mine)
      assert.is_truthy(r, spec[1] .. " " .. spec[2] .. "\n" .. describe_all(list))
      assert.is_nil(r.q.reader)
    end
    assert.are.equal("plain", json.decode(find(list, "PUT", "/channels/feed", mine).body).sender_id)
  end)
end)

describe("--token-file refuses at start-up", function()
  local dir
  setup(function() dir = testing.tmpdir() end)
  teardown(function() testing.rmtree(dir) end)

  local function start(path, extra)
    local argv = { exe }
    for _, a in ipairs(extra or { "-e", "print('ran')" }) do argv[#argv + 1] = a end
    argv[#argv + 1] = "--token-file"
    argv[#argv + 1] = path
    return testing.run(argv)
  end

  it("a file that does not exist, naming it and why", function()
    local out, err, code = start(dir .. "/missing.token")
    assert.are.equal(2, code)
    assert.are.equal("", out)
    testing.assert_mentions(err, "--token-file", dir .. "/missing.token", "No such file or directory")
  end)

  it("an empty file, or one with only whitespace", function()
    for _, text in ipairs { "", " \n\t\n" } do
      testing.write_file(dir .. "/empty.token", text)
      local out, err, code = start(dir .. "/empty.token")
      assert.are.equal(2, code)
      assert.are.equal("", out)
      testing.assert_mentions(err, "--token-file", "empty.token' is empty")
    end
  end)

  it("a newline, a space or a control character inside the credential", function()
    testing.write_file(dir .. "/two.token", "first\nsecond\n")
    local _, err, code = start(dir .. "/two.token")
    assert.are.equal(2, code)
    testing.assert_mentions(err, "two.token' has a newline at byte 6 inside the credential")
    testing.write_file(dir .. "/bearer.token", "Bearer abc\n")
    _, err, code = start(dir .. "/bearer.token")
    assert.are.equal(2, code)
    testing.assert_mentions(err, "a space at byte 7", "without 'Bearer'")
    testing.write_file(dir .. "/ctl.token", "ab\1cd")
    _, err, code = start(dir .. "/ctl.token")
    assert.are.equal(2, code)
    testing.assert_mentions(err, "a control character at byte 3")
  end)

  it("for the REPL too, before it opens", function()
    local out, err, code = start(dir .. "/missing.token", { "repl", "http://127.0.0.1:9" })
    assert.are.equal(2, code)
    assert.are.equal("", out)
    testing.assert_mentions(err, "--token-file", "missing.token")
  end)
end)
