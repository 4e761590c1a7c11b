-- sssn.testing_etcd: a real etcd cluster on loopback for specs run by `sssn-host test`.
--
--   local etcd = require "sssn.testing_etcd"
--   local c = etcd.start { members = 3 }   -- 1 (default) or more; waits for a leader
--   finally(function() c:stop() end)       -- or after_each / lazy_teardown: see below
--   c.endpoints, c.url                     -- "127.0.0.1:p1,...", "etcd://" .. endpoints
--   c:leader(), c:kill(i), c:restart(i), c:compact(), c:get(key), c:put(key, value), c:stop()
--   (and c:range(prefix), c:delete(key), c:revision(), c:status(i), c:pids(), c:url_from(i), c:logs())
--
-- Each member is /usr/bin/etcd (or $SSSN_ETCD) started by sssn.testing.start, never through a
-- shell: 127.0.0.1 only, a free client and peer port each, its data and its log (stdout and
-- stderr, m<i>.log; m<i>-<k>.log after the k-th start) in one testing.tmpdir, and election
-- timings made for tests (heartbeat 50 ms, election 500 ms) so a lost leader is replaced within
-- about a second. The rig talks to etcd through its v3 JSON gateway (POST /v3/...) with the
-- runner's own HTTP client: keys and values are base64 there, int64 numbers are strings. Every
-- wait runs the host's loop (testing.eventually, proc:wait) and has a deadline; nothing sleeps.
--
-- Stopping. A member is a child of the runner: it gets SIGKILL if the runner dies
-- (PR_SET_PDEATHSIG), and when its process handle is collected. Within a run, stop every
-- cluster a test started even when the test fails, in one of these ways:
--   it("...", function() local c = etcd.start{}; finally(function() c:stop() end) ... end)
--   lazy_setup(function() c = etcd.start{} end); lazy_teardown(function() if c then c:stop() end end)
--   after_each(etcd.stop_all)   -- stops every cluster this module started and has not stopped
-- c:stop() sends SIGKILL to every member, reaps it and removes the directory; it is safe to
-- call twice. etcd.start stops what it started before it raises.
local sssn = require "sssn"
local testing = require "sssn.testing"

local M = {}

M.exe = os.getenv("SSSN_ETCD") or "/usr/bin/etcd"

local json_encode, json_decode = sssn.json.encode, sssn.json.decode

-- base64 (RFC 4648, with padding), as the gateway wants keys and values ----------------------

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local B64_INDEX = {}
for i = 1, 64 do B64_INDEX[B64:byte(i)] = i - 1 end

function M.b64encode(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = (a << 16) | ((b or 0) << 8) | (c or 0)
    out[#out + 1] = B64:sub((n >> 18) + 1, (n >> 18) + 1) .. B64:sub(((n >> 12) & 63) + 1, ((n >> 12) & 63) + 1)
      .. (b and B64:sub(((n >> 6) & 63) + 1, ((n >> 6) & 63) + 1) or "=")
      .. (c and B64:sub((n & 63) + 1, (n & 63) + 1) or "=")
  end
  return table.concat(out)
end

function M.b64decode(s)
  s = s:gsub("[=%s]", "")
  local out, bits, nbits = {}, 0, 0
  for i = 1, #s do
    local v = B64_INDEX[s:byte(i)]
    if not v then error(("sssn.testing_etcd: not base64: %q"):format(s), 2) end
    bits, nbits = (bits << 6) | v, nbits + 6
    if nbits >= 8 then
      nbits = nbits - 8
      out[#out + 1] = string.char((bits >> nbits) & 255)
    end
  end
  return table.concat(out)
end

-- The end of the range of keys that start with prefix (etcd's range_end for a prefix).
local function prefix_end(prefix)
  for i = #prefix, 1, -1 do
    local b = prefix:byte(i)
    if b < 255 then return prefix:sub(1, i - 1) .. string.char(b + 1) end
  end
  return "\0"
end

local function int(v) return v and math.tointeger(tonumber(v)) end

-- A cluster ------------------------------------------------------------------------------

local Cluster = {}
Cluster.__index = Cluster

local live = {} -- clusters started and not stopped, for stop_all

local function tail(text, n)
  n = n or 1500
  if #text > n then return "..." .. text:sub(-n) end
  return text
end

-- The logs of every member (their ends), for error messages.
function Cluster:logs()
  local parts = {}
  for i, m in ipairs(self.members) do
    parts[#parts + 1] = ("--- etcd member %d (%s, %s):\n%s"):format(i, m.name,
      m.proc and (m.proc:alive() and "running" or "exited " .. tostring(m.proc:status())) or "not started",
      tail(testing.read_file(m.log or "")))
  end
  return table.concat(parts, "\n")
end

--- The log of member i (its current run).
function Cluster:log(i) return testing.read_file(self.members[i].log or "") end

local function member_argv(self, m)
  local argv = { M.exe,
    "--name", m.name,
    "--data-dir", m.data,
    "--listen-client-urls", m.client_url,
    "--advertise-client-urls", m.client_url,
    "--listen-peer-urls", m.peer_url,
    "--initial-advertise-peer-urls", m.peer_url,
    "--initial-cluster", self.initial_cluster,
    "--initial-cluster-state", "new", -- ignored by a member that has data (a restart)
    "--initial-cluster-token", self.token,
    "--heartbeat-interval", tostring(self.heartbeat),
    "--election-timeout", tostring(self.election),
    "--logger", "zap", "--log-level", self.log_level,
  }
  for _, a in ipairs(self.args) do argv[#argv + 1] = a end
  return argv
end

local function spawn(self, i)
  local m = self.members[i]
  m.runs = m.runs + 1
  m.log = m.runs == 1 and ("%s/%s.log"):format(self.dir, m.name)
    or ("%s/%s-%d.log"):format(self.dir, m.name, m.runs)
  -- limit 0: etcd (Go) ignores SIGALRM anyway; the runner's death and stop() bound it
  m.proc = testing.start(member_argv(self, m), { stdout = m.log, stderr = m.log, limit = 0 })
  m.pid = m.proc.pid
end

local function is_alive(m) return m.proc ~= nil and m.proc:alive() end

--- Whether member i runs.
function Cluster:alive(i) return is_alive(self.members[i]) end

--- The pids of the members that run.
function Cluster:pids()
  local out = {}
  for _, m in ipairs(self.members) do
    if is_alive(m) then out[#out + 1] = m.pid end
  end
  return out
end

-- One POST to member i's gateway: the decoded answer, or nil and why (err.code is etcd's gRPC
-- code when etcd answered an error, nil when it did not answer).
local function post(self, i, path, body, timeout)
  local m = self.members[i]
  local status, text = testing.http("POST", m.gateway .. path,
    { body = json_encode(body or {}), timeout = timeout or 5, fresh = m.fresh })
  m.fresh = nil
  if not status then return nil, { message = ("member %d: %s"):format(i, tostring(text)) } end
  local ok, v = pcall(json_decode, text)
  if not ok or type(v) ~= "table" then
    return nil, { message = ("member %d: HTTP %d %s"):format(i, status, tail(text, 300)) }
  end
  if status ~= 200 or v.error then
    return nil, { message = ("member %d: HTTP %d %s"):format(i, status, tostring(v.message or v.error)),
      code = int(v.code), status = status }
  end
  return v
end

-- etcd errors worth trying again (elsewhere, or a moment later): no answer, Unknown (a leader
-- change, a proposal dropped), DeadlineExceeded, Unavailable.
local RETRY = { [2] = true, [4] = true, [14] = true }

--- A gateway call (path like "/v3/kv/put", body a table) to a running member, failing over to
--- the others and trying again for a moment (opts.timeout, 10 s) while etcd cannot answer
--- (no leader, a member down); opts.member: only that member. Returns the decoded answer, or
--- raises with the last error (err.code: etcd's code) when etcd refused it or the time ran out.
function Cluster:call(path, body, opts)
  opts = opts or {}
  local last
  local got = testing.eventually(opts.timeout or 10, function()
    local order = {}
    if opts.member then
      order[1] = opts.member
    else
      for k = 0, #self.members - 1 do order[#order + 1] = (self.prefer + k - 1) % #self.members + 1 end
    end
    for _, i in ipairs(order) do
      if is_alive(self.members[i]) then
        local v, err = post(self, i, path, body, opts.request_timeout)
        if v then
          if not opts.member then self.prefer = i end
          return { answer = v }
        end
        last = err
        if err.code and not RETRY[err.code] then return { failed = err } end -- etcd refused it
      else
        last = last or { message = ("member %d is not running"):format(i) }
      end
    end
    return nil
  end, 0.05)
  if got and got.answer then return got.answer end
  last = got and got.failed or last or { message = "no member is running" }
  error(setmetatable({ code = last.code, message = ("sssn.testing_etcd: %s: %s"):format(path, last.message) },
    { __tostring = function(e) return e.message end }), 2)
end

--- Member i's status (POST /v3/maintenance/status), or nil and why.
function Cluster:status(i)
  if not is_alive(self.members[i]) then return nil, "not running" end
  local s, err = post(self, i, "/v3/maintenance/status", {}, 1)
  if not s then return nil, err.message end
  return s
end

-- The leader the running members agree on: its index, or nil. Every running member answers,
-- names the same leader, and that leader is a running member that names itself.
local function agreed_leader(self)
  local leader_id
  for i, m in ipairs(self.members) do
    if is_alive(m) then
      local s = self:status(i)
      if not s or not s.leader or s.leader == "0" then return nil end
      m.id = s.header.member_id
      if leader_id and leader_id ~= s.leader then return nil end
      leader_id = s.leader
    end
  end
  for i, m in ipairs(self.members) do
    if is_alive(m) and m.id == leader_id then return i end
  end
  return nil
end

--- The index (1..n) of the current leader, waiting up to `timeout` s (10) until the running
--- members agree on one; raises when they do not.
function Cluster:leader(timeout)
  local i = testing.eventually(timeout or 10, function() return agreed_leader(self) end, 0.05)
  if not i then
    error(("sssn.testing_etcd: no leader after %ss\n%s"):format(timeout or 10, self:logs()), 2)
  end
  return i
end

-- Waits until every running member answers, they agree on a leader and a linearizable read
-- goes through; raises (with the logs) when a member exits first or time runs out.
function Cluster:wait_ready(timeout)
  timeout = timeout or 20
  local ok = testing.eventually(timeout, function()
    for _, m in ipairs(self.members) do
      if m.proc and m.wanted and not m.proc:alive() then return "exited" end
    end
    if not agreed_leader(self) then return nil end
    return pcall(self.call, self, "/v3/kv/range", { key = M.b64encode("/sssn-testing-etcd/ready") },
      { timeout = 1 }) or nil
  end, 0.05)
  if ok ~= true then
    error(("sssn.testing_etcd: the cluster %s\n%s"):format(
      ok == "exited" and "lost a member while starting" or ("was not ready after " .. timeout .. " s"),
      self:logs()), 3)
  end
end

--- SIGKILL member i (kill -9: no clean shutdown; sig = "TERM" stops it cleanly) and reap it.
function Cluster:kill(i, sig)
  local m = assert(self.members[i], "no such member")
  m.wanted = false
  if m.proc and m.proc:alive() then
    m.proc:signal(sig or "KILL")
    if not m.proc:wait_exit(sig and sig ~= "KILL" and 10 or 5) then
      error(("sssn.testing_etcd: member %d (pid %d) did not exit after SIG%s"):format(i, m.pid, sig or "KILL"), 2)
    end
  end
end

--- The URL of the cluster with member i's endpoint first (the one a host tries first), then
--- the others in order.
function Cluster:url_from(i)
  local eps = {}
  for k = 0, #self.members - 1 do
    eps[#eps + 1] = ("127.0.0.1:%d"):format(self.members[(i + k - 1) % #self.members + 1].client_port)
  end
  return "etcd://" .. table.concat(eps, ",")
end

--- Starts member i again, with its data and ports, and waits until the cluster is ready.
function Cluster:restart(i, timeout)
  local m = assert(self.members[i], "no such member")
  if is_alive(m) then error(("sssn.testing_etcd: member %d still runs: kill it first"):format(i), 2) end
  spawn(self, i)
  m.wanted, m.fresh = true, true
  self:wait_ready(timeout)
end

--- put(key, value[, opts]) -> the revision of the put. opts.lease: a lease id (string or
--- number); opts.member: through that member only.
function Cluster:put(key, value, opts)
  opts = opts or {}
  local v = self:call("/v3/kv/put", { key = M.b64encode(key), value = M.b64encode(value),
    lease = opts.lease and tostring(opts.lease) or nil }, opts)
  return int(v.header.revision)
end

--- get(key[, opts]) -> the value (a string) or nil, then the key's record (mod_revision,
--- version, lease: numbers) and the store's revision. opts.revision: read as of that revision
--- (raises when it was compacted: err.code 11); opts.serializable: the member's own copy,
--- without asking the leader (with opts.member, to see what one member holds).
function Cluster:get(key, opts)
  opts = opts or {}
  local v = self:call("/v3/kv/range", { key = M.b64encode(key), revision = opts.revision and tostring(opts.revision),
    serializable = opts.serializable or nil }, opts)
  local kv = v.kvs and v.kvs[1]
  local rev = int(v.header.revision)
  if not kv then return nil, nil, rev end
  return kv.value and M.b64decode(kv.value) or "", { mod_revision = int(kv.mod_revision),
    create_revision = int(kv.create_revision), version = int(kv.version), lease = int(kv.lease) or 0 }, rev
end

--- Every key starting with prefix: a table key -> value, and how many.
function Cluster:range(prefix, opts)
  local v = self:call("/v3/kv/range", { key = M.b64encode(prefix), range_end = M.b64encode(prefix_end(prefix)) }, opts)
  local out, n = {}, 0
  for _, kv in ipairs(v.kvs or {}) do
    out[M.b64decode(kv.key)] = kv.value and M.b64decode(kv.value) or ""
    n = n + 1
  end
  return out, n
end

--- Deletes key (or, with opts.prefix, every key starting with it): how many went.
function Cluster:delete(key, opts)
  opts = opts or {}
  local v = self:call("/v3/kv/deleterange", { key = M.b64encode(key),
    range_end = opts.prefix and M.b64encode(prefix_end(key)) or nil }, opts)
  return int(v.deleted) or 0
end

--- The store's current revision.
function Cluster:revision()
  return int(self:call("/v3/kv/range", { key = M.b64encode("/sssn-testing-etcd/revision") }).header.revision)
end

--- Compacts the store to its current revision (physically, before returning): that revision.
--- A store already compacted there is left as it is.
function Cluster:compact()
  local rev = self:revision()
  local ok, err = pcall(self.call, self, "/v3/kv/compaction", { revision = tostring(rev), physical = true })
  if not ok and not (type(err) == "table" and err.code == 11) then error(err, 2) end
  return rev
end

--- Kills every member (SIGKILL), reaps it and removes the directory. Safe to call twice.
function Cluster:stop()
  for _, m in ipairs(self.members) do
    m.wanted = false
    if m.proc then
      if m.proc:alive() then m.proc:signal("KILL") end
      if not m.proc:status() then m.proc:wait_exit(5) end
    end
  end
  if self.dir then
    testing.rmtree(self.dir)
    self.dir = nil
  end
  live[self] = nil
end

--- Starts a cluster and waits until it has a leader and answers. opts: members (1), timeout
--- (20 s), heartbeat (50 ms), election (500 ms), log_level ("warn"), args (more etcd
--- arguments). Raises, after stopping what it started, when etcd does not come up.
function M.start(opts)
  opts = opts or {}
  local n = opts.members or 1
  assert(math.type(n) == "integer" and n >= 1 and n <= 9, "members: 1 to 9")
  local self = setmetatable({ members = {}, prefer = 1, heartbeat = opts.heartbeat or 50,
    election = opts.election or 500, log_level = opts.log_level or "warn", args = opts.args or {},
    dir = testing.tmpdir() }, Cluster)
  self.token = "sssn-test-" .. self.dir:match("[^/]+$")
  live[self] = true
  -- 2n distinct ports that were free a moment ago
  local ports, seen = {}, {}
  while #ports < 2 * n do
    local p = testing.free_port()
    if not seen[p] then seen[p], ports[#ports + 1] = true, p end
  end
  local peers, clients = {}, {}
  for i = 1, n do
    local m = { name = "m" .. i, client_port = ports[2 * i - 1], peer_port = ports[2 * i], runs = 0,
      data = ("%s/m%d.data"):format(self.dir, i), wanted = true }
    m.client_url = ("http://127.0.0.1:%d"):format(m.client_port)
    m.peer_url = ("http://127.0.0.1:%d"):format(m.peer_port)
    m.gateway = m.client_url
    self.members[i] = m
    peers[i] = ("%s=%s"):format(m.name, m.peer_url)
    clients[i] = ("127.0.0.1:%d"):format(m.client_port)
  end
  self.initial_cluster = table.concat(peers, ",")
  self.endpoints = table.concat(clients, ",")
  self.url = "etcd://" .. self.endpoints
  local ok, err = pcall(function()
    for i = 1, n do spawn(self, i) end
    self:wait_ready(opts.timeout or 20)
  end)
  if not ok then
    local logs = self:logs()
    self:stop()
    error(tostring(err):find("sssn.testing_etcd", 1, true) and err
      or ("sssn.testing_etcd: %s\n%s"):format(tostring(err), logs), 2)
  end
  return self
end

--- Stops every cluster started here and not stopped yet (for after_each / lazy_teardown).
function M.stop_all()
  local all = {}
  for c in pairs(live) do all[#all + 1] = c end
  for _, c in ipairs(all) do c:stop() end
  return #all
end

--- Whether process pid exists (a zombie counts: it is not reaped).
function M.pid_exists(pid)
  local f = io.open(("/proc/%d/stat"):format(pid), "r")
  if f then f:close() return true end
  return false
end

return M
