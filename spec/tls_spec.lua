-- End to end: the HTTP API over TLS (--tls-cert/--tls-key) and https:// clients trusting a
-- private CA (--ca-file). The spec makes a CA and a server certificate for 127.0.0.1 and
-- localhost with the openssl command in a temporary directory, starts host A serving a
-- channel over HTTPS and host B using A's registry at https://127.0.0.1:PORT, whose system
-- finds the channel there and reads it over HTTPS. curl checks the certificate from outside.
-- Every process listens on a port it picks and is stopped in teardown.
local testing = require "sssn.testing"

local function run(argv) return testing.run(argv, { limit = 30 }) end

-- A CA and a certificate it signed for 127.0.0.1/localhost, and a second key that is no
-- certificate's: paths in dir.
local function make_certs(dir)
  local function p(name) return dir .. "/" .. name end
  local ec = { "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes" }
  local function openssl(args)
    local argv = { "openssl" }
    for _, a in ipairs(args) do argv[#argv + 1] = a end
    local out, err, code = run(argv)
    assert(code == 0, "openssl " .. table.concat(args, " ") .. ": " .. out .. err)
  end
  local function with_ec(args)
    local out = { args[1] }
    for _, a in ipairs(ec) do out[#out + 1] = a end
    for i = 2, #args do out[#out + 1] = args[i] end
    return out
  end
  openssl(with_ec { "req", "-x509", "-keyout", p("ca.key"), "-out", p("ca.pem"), "-days", "2",
    "-subj", "/CN=sssn test CA" })
  openssl(with_ec { "req", "-keyout", p("server.key"), "-out", p("server.csr"), "-subj", "/CN=localhost" })
  testing.write_file(p("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
  openssl { "x509", "-req", "-in", p("server.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"),
    "-CAcreateserial", "-out", p("server.pem"), "-days", "2", "-extfile", p("ext.cnf") }
  openssl(with_ec { "req", "-x509", "-keyout", p("other.key"), "-out", p("other.pem"), "-days", "2",
    "-subj", "/CN=other" })
  return { ca = p("ca.pem"), cert = p("server.pem"), key = p("server.key"), other_key = p("other.key") }
end

local FEED = [[
local sssn = require "sssn"
local s = sssn.system { id = "tls-svc", tick_rate = 10 }
local n = 0
function s:setup()
  self.feed = self:add_channel(sssn.broadcast { id = "tls-feed", name = "Secure Feed", visibility = "public" })
  sssn.registry:register_channel(self.feed.info)
end
function s:step()
  n = n + 1
  self:write_channel("tls-feed", { n = n })
end
return s
]]

local READER = [[
local sssn = require "sssn"
local s = sssn.system { id = "tls-reader", tick_rate = 10 }
function s:step()
  if not self.feed then
    local found = sssn.registry:find_channels { name = "secure feed" }
    if not found[1] then return end
    print("found at " .. tostring(found[1].endpoint))
    self:connect(found[1])
    self.feed = found[1].id
  end
  for _, m in ipairs(self:read_channel(self.feed, { limit = 5 })) do
    print("read n=" .. tostring(m.content.data.n))
  end
end
return s
]]

-- The port a host reports once its API listens over HTTPS.
local function https_port(p)
  local port = testing.eventually(10, function()
    return p:err():match("HTTP API on https://[^:\n]+:(%d+)") or not p:alive()
  end)
  assert(type(port) == "string", "no HTTPS API reported:\n" .. p:err())
  return tonumber(port)
end

describe("TLS", function()
  local dir, certs
  local procs = {}
  local function start(name, args)
    local p = testing.start_host(args, { dir = dir, name = name })
    procs[#procs + 1] = p
    return p
  end

  lazy_setup(function()
    dir = testing.tmpdir()
    certs = make_certs(dir)
    testing.write_file(dir .. "/feed.lua", FEED)
    testing.write_file(dir .. "/reader.lua", READER)
  end)
  after_each(function()
    for i = #procs, 1, -1 do pcall(procs[i].stop, procs[i]) end
    procs = {}
  end)
  lazy_teardown(function() if dir then testing.rmtree(dir) end end)

  it("carries a channel between two hosts over HTTPS, a private CA trusted with --ca-file", function()
    local a = start("a", { "--listen", "127.0.0.1:0", "--tls-cert", certs.cert, "--tls-key", certs.key,
      dir .. "/feed.lua" })
    local port = https_port(a)
    local base = ("https://127.0.0.1:%d"):format(port)
    local health = testing.eventually(10, function()
      local out = run { "curl", "-sS", "--max-time", "5", "--cacert", certs.ca, base .. "/health" }
      return out:find('"status":"ok"', 1, true) and out
    end)
    assert.truthy(health, "curl --cacert could not reach " .. base .. "\n" .. a:err())
    local b = start("b", { "--registry", base, "--ca-file", certs.ca, dir .. "/reader.lua" })
    b:wait_output("found at " .. base, 15)
    b:wait_output("read n=", 15)
    assert.truthy(b:alive() and a:alive())
    assert.falsy(b:err():find("unreachable", 1, true), b:err())
  end)

  it("refuses a client that does not trust the CA, with the reason", function()
    local a = start("a", { "--listen", "127.0.0.1:0", "--tls-cert", certs.cert, "--tls-key", certs.key })
    local base = ("https://127.0.0.1:%d"):format(https_port(a))
    testing.eventually(10, function()
      local _, _, code = run { "curl", "-s", "--max-time", "5", "--cacert", certs.ca, base .. "/health" }
      return code == 0
    end)
    -- curl with the system's CAs only: certificate verification fails (curl's status 60)
    local _, err, code = run { "curl", "-sS", "--max-time", "5", base .. "/health" }
    assert.are.equal(60, code)
    assert.truthy(err:lower():find("certificate", 1, true), err)
    -- a host without --ca-file cannot use A's registry, and says why
    local b = start("b", { "--registry", base, dir .. "/reader.lua" })
    b:wait_err("unreachable", 15)
    assert.truthy(b:err():lower():find("certificate", 1, true), b:err())
    assert.falsy(b:out():find("read n=", 1, true))
    -- plain HTTP on the HTTPS port gets no answer
    local status = testing.http("GET", ("http://127.0.0.1:%d/health"):format(https_port(a)), { timeout = 3 })
    assert.is_nil(status)
  end)

  it("refuses to start with a key that is not the certificate's, or a file it cannot read", function()
    local _, err, code = run { testing.exe, "--listen", "127.0.0.1:0", "--tls-cert", certs.cert,
      "--tls-key", certs.other_key }
    assert.are.equal(1, code)
    testing.assert_mentions(err, "the TLS key '" .. certs.other_key .. "' does not belong to the certificate '",
      "key values mismatch")
    _, err, code = run { testing.exe, "--listen", "127.0.0.1:0", "--tls-cert", dir .. "/missing.pem",
      "--tls-key", certs.key }
    assert.are.equal(1, code)
    testing.assert_mentions(err, "cannot read the TLS certificate '" .. dir .. "/missing.pem': No such file")
    _, err, code = run { testing.exe, "--listen", "127.0.0.1:0", "--tls-cert", certs.cert }
    assert.are.equal(2, code)
    testing.assert_mentions(err, "--tls-cert needs --tls-key")
    _, err, code = run { testing.exe, "--registry", "https://127.0.0.1:1", "--ca-file", dir .. "/ext.cnf", "x.lua" }
    assert.are.equal(2, code)
    testing.assert_mentions(err, "--ca-file: the CA file '" .. dir .. "/ext.cnf' holds no PEM certificate")
  end)
end)
