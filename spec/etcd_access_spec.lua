-- End to end: an etcd registry reached over TLS with etcd's auth on (issue 12): a real etcd
-- serving its clients over https with a certificate of a CA made here, users and roles made
-- with etcdctl, and hosts started with --registry etcd+https://... --ca-file, --etcd-user and
-- --etcd-password-file. A token etcd hands out is forgotten after 2 s unused here, so a host
-- that was quiet must log in again. etcd and every host are stopped after each test.
local sssn = require "sssn"
local testing = require "sssn.testing"

local decode = sssn.json.decode

local function run(argv)
  local out, err, code = testing.run(argv, { limit = 15 })
  return out, err, code
end

-- A CA and a certificate it signed for 127.0.0.1: paths in dir.
local function make_certs(dir)
  local function p(name) return dir .. "/" .. name end
  local ec = { "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes" }
  local function openssl(args, with_ec)
    local argv = { "openssl", args[1] }
    if with_ec then for _, a in ipairs(ec) do argv[#argv + 1] = a end end
    for i = 2, #args do argv[#argv + 1] = args[i] end
    local out, err, code = run(argv)
    assert(code == 0, "openssl " .. table.concat(args, " ") .. ": " .. out .. err)
  end
  openssl({ "req", "-x509", "-keyout", p("ca.key"), "-out", p("ca.pem"), "-days", "2", "-subj", "/CN=sssn etcd CA" },
    true)
  openssl({ "req", "-keyout", p("etcd.key"), "-out", p("etcd.csr"), "-subj", "/CN=127.0.0.1" }, true)
  testing.write_file(p("ext.cnf"), "subjectAltName=IP:127.0.0.1\n")
  openssl { "x509", "-req", "-in", p("etcd.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"), "-CAcreateserial",
    "-out", p("etcd.pem"), "-days", "2", "-extfile", p("ext.cnf") }
  return { ca = p("ca.pem"), cert = p("etcd.pem"), key = p("etcd.key") }
end

local dir, etcd_proc, hosts

-- One etcd member serving https on a free port, with users root and app (app may read and
-- write /sssn/ only) and auth on. Returns its client address.
local function start_etcd()
  dir = testing.tmpdir()
  local certs = make_certs(dir)
  local client, peer = testing.free_port(), testing.free_port()
  local url = ("https://127.0.0.1:%d"):format(client)
  etcd_proc = testing.start({ "/usr/bin/etcd", "--name", "tls1", "--data-dir", dir .. "/data",
    "--listen-client-urls", url, "--advertise-client-urls", url,
    "--listen-peer-urls", ("http://127.0.0.1:%d"):format(peer),
    "--initial-advertise-peer-urls", ("http://127.0.0.1:%d"):format(peer),
    "--initial-cluster", ("tls1=http://127.0.0.1:%d"):format(peer),
    "--cert-file", certs.cert, "--key-file", certs.key, "--auth-token", "simple", "--auth-token-ttl", "2",
    "--heartbeat-interval", "50", "--election-timeout", "500", "--log-level", "warn" },
    { stdout = dir .. "/etcd.log", stderr = dir .. "/etcd.log", limit = 120 })
  local function ctl(...)
    local argv = { "/usr/bin/etcdctl", "--endpoints", url, "--cacert", certs.ca }
    for _, a in ipairs({ ... }) do argv[#argv + 1] = a end
    local out, err, code = run(argv)
    return code == 0, out .. err
  end
  testing.eventually(15, function() return ctl("endpoint", "health") end)
  for _, cmd in ipairs {
    { "user", "add", "root:rootpw" }, { "role", "add", "root" }, { "user", "grant-role", "root", "root" },
    { "user", "add", "app:apppw" }, { "role", "add", "app" },
    { "role", "grant-permission", "app", "--prefix=true", "readwrite", "/sssn/" },
    { "user", "grant-role", "app", "app" }, { "auth", "enable" },
  } do
    local ok, out = ctl(table.unpack(cmd))
    assert(ok, "etcdctl " .. table.concat(cmd, " ") .. ": " .. out)
  end
  testing.write_file(dir .. "/app.pw", "apppw\n")
  testing.write_file(dir .. "/bad.pw", "not-the-password\n")
  return ("127.0.0.1:%d"):format(client), certs
end

local SENSOR = [[
local sssn = require "sssn"
local sys = sssn.system { id = "tls-sensor", tick_rate = 2 }
function sys:setup()
  self.feed = self:add_channel(sssn.broadcast { id = "tls-temps" })
  sssn.registry:register_channel(self.feed.info, 30)
  print("registered")
end
function sys:step() end
return sys
]]

local function host(name, args, script)
  local path = ("%s/%s.lua"):format(dir, name)
  testing.write_file(path, script or "return nil")
  local argv = { "--listen", "127.0.0.1:0" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  if script then argv[#argv + 1] = path end
  local p = testing.start_host(argv, { dir = dir, name = name, limit = 120 })
  hosts[#hosts + 1] = p
  p:ready(nil, 10)
  return p
end

local function entry_status(p, id)
  local status = testing.http("GET", ("%s/registry/channels/%s"):format(p.base, id), { timeout = 5 })
  return status
end

describe("an etcd registry over TLS with etcd's auth", function()
  before_each(function() hosts = {} end)
  after_each(function()
    for i = #hosts, 1, -1 do pcall(hosts[i].stop, hosts[i]) end
    if etcd_proc then pcall(etcd_proc.stop, etcd_proc) end
    etcd_proc = nil
    if dir then testing.rmtree(dir) end
    dir = nil
  end)

  it("registers and finds across hosts, fetching new tokens as they expire", function()
    local addr, certs = start_etcd()
    local common = { "--registry", "etcd+https://" .. addr, "--ca-file", certs.ca,
      "--etcd-user", "app", "--etcd-password-file", dir .. "/app.pw" }
    local a = host("a", common, SENSOR)
    local b = host("b", common)
    a:wait_output("registered", 15)
    testing.eventually(10, function() return entry_status(b, "tls-temps") == 200 end)
    -- a token unused for 2 s is forgotten by etcd: after 4 s of quiet (the lease of 30 s is
    -- renewed every 10 s), A's next registration goes through only if A logs in again
    local t0 = testing.walltime()
    testing.eventually(20, function() return testing.walltime() - t0 > 4 end, 0.5)
    local put = testing.http("PUT", a.base .. "/registry/channels/tls-later?ttl=30",
      { body = '{"id":"tls-later","name":"later","visibility":"public"}', timeout = 15 })
    assert.are.equal(200, put)
    testing.eventually(10, function() return entry_status(b, "tls-later") == 200 end)
    assert.are.equal(200, entry_status(b, "tls-temps"))
    local _, health = testing.http("GET", b.base .. "/health")
    assert.are.equal("ok", decode(health).etcd)
    assert.is_nil(a:err():find("refused the login", 1, true), a:err())
  end)

  it("revokes its leases at a clean stop: what an operator registered through it goes at once", function()
    local addr, certs = start_etcd()
    local common = { "--registry", "etcd+https://" .. addr, "--ca-file", certs.ca,
      "--etcd-user", "app", "--etcd-password-file", dir .. "/app.pw" }
    local a = host("a", common)
    local b = host("b", common)
    local put = testing.http("PUT", a.base .. "/registry/channels/tls-op?ttl=60",
      { body = '{"id":"tls-op","name":"op","visibility":"public"}', timeout = 15 })
    assert.are.equal(200, put)
    testing.eventually(10, function() return entry_status(b, "tls-op") == 200 end)
    local t0 = testing.walltime()
    a:stop() -- SIGTERM: a clean stop
    testing.eventually(10, function() return entry_status(b, "tls-op") == 404 end)
    assert.is_true(testing.walltime() - t0 < 10, "gone with the lease, long before its 60 s TTL")
  end)

  it("says once that etcd refused a wrong password, and registers nothing", function()
    local addr, certs = start_etcd()
    local c = host("c", { "--registry", "etcd+https://" .. addr, "--ca-file", certs.ca,
      "--etcd-user", "app", "--etcd-password-file", dir .. "/bad.pw" }, SENSOR)
    c:wait_err("etcd refused the login of user 'app'", 20)
    testing.eventually(20, function() return c:err():find("tls-sensor", 1, true) and c:err():find("error", 1, true) end)
    local _, n = c:err():gsub("etcd refused the login", "")
    assert.are.equal(1, n, c:err())
    local root = { "/usr/bin/etcdctl", "--endpoints", "https://" .. addr, "--cacert", certs.ca,
      "--user", "root:rootpw", "get", "--prefix", "/sssn/", "--keys-only" }
    local out, err, code = run(root)
    assert.are.equal(0, code, err)
    assert.are.equal("", (out:gsub("%s", "")))
  end)

  it("does not trust etcd's certificate without the CA that signed it", function()
    local addr = start_etcd()
    local d = host("d", { "--registry", "etcd+https://" .. addr, "--etcd-user", "app",
      "--etcd-password-file", dir .. "/app.pw" })
    d:wait_err("etcd is unreachable", 30)
    local _, health = testing.http("GET", d.base .. "/health")
    assert.are.equal("unreachable", decode(health).etcd)
  end)
end)
