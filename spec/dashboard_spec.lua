-- The host's side of the dashboard, end to end: GET / and /ui/<file> serve web/ from memory
-- with a Content-Security-Policy that allows no inline script, and need no credential; GET
-- /channels lists this host's channels with their counts, only those the caller may read. (The
-- page itself is tested in a real browser: spec/browser/.)
local sssn = require "sssn"
local testing = require "sssn.testing"

local decode = sssn.json.decode

local live, dirs = {}, {}
after_each(function()
  for i = #live, 1, -1 do live[i]:stop() end
  for _, d in ipairs(dirs) do testing.rmtree(d) end
  live, dirs = {}, {}
end)

local FIXTURE = [[
local sssn = require "sssn"
return sssn.system { id = "owner", setup = function(self)
  self:add_channel(sssn.broadcast { id = "pub" })
  self:add_channel(sssn.broadcast { id = "priv", visibility = "private" })
  self:write_channel("pub", { n = 1 })
  self:write_channel("pub", { n = 2 })
end }
]]

-- A static token for ROLE: the token and its --auth-file line.
local function token(sub, role)
  local out, err, code = testing.run({ testing.exe, "token", "--static", "--sub", sub, "--role", role })
  assert.are.equal(0, code, err)
  local tok, line = out:match("^(%S+)\n(.-)\n")
  return tok, line
end

local function start(args)
  local dir = testing.tmpdir()
  dirs[#dirs + 1] = dir
  testing.write_file(dir .. "/owner.lua", FIXTURE)
  local argv = { "--listen", "127.0.0.1:0" }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  argv[#argv + 1] = dir .. "/owner.lua"
  local p = testing.start_host(argv, { limit = 30 })
  live[#live + 1] = p
  p:ready()
  return p, dir
end

-- The raw answer to a request without credentials: status line, headers and body.
local function raw(port, method, path)
  local c = assert(testing.tcp(port))
  assert(c:send(("%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"):format(method, path)))
  local text = c:receive(5)
  c:close()
  local head, body = text:match("^(.-)\r\n\r\n(.*)$")
  return tonumber(head:match("^HTTP/1.1 (%d+)")), head, body
end

local function json_get(url, tok)
  local status, body = testing.http("GET", url, { token = tok })
  local ok, value = pcall(decode, body or "")
  return status, ok and value or body
end

local function ids(list)
  local out = {}
  for _, c in ipairs(list) do out[c.id] = c end
  return out
end

describe("the dashboard's files", function()
  it("are served at / and /ui/<file> without a credential, with a CSP that forbids inline script", function()
    local _, line = token("ops", "read")
    local dir = testing.tmpdir()
    dirs[#dirs + 1] = dir
    testing.write_file(dir .. "/auth", line .. "\n")
    local p = start { "--auth-file", dir .. "/auth" }
    local status, head, body = raw(p.port, "GET", "/")
    assert.are.equal(200, status, head)
    assert.matches("\r\nContent%-Type: text/html; charset=utf%-8\r\n", head)
    assert.matches("\r\nContent%-Security%-Policy: default%-src 'none'; script%-src 'self'; style%-src 'self';", head)
    assert.matches("\r\nX%-Content%-Type%-Options: nosniff\r\n", head)
    assert.are.equal(testing.read_file("web/index.html"), body)
    assert.not_matches("<script>", body) -- no inline script: every script has a src
    status, head = raw(p.port, "GET", "/ui/app.js")
    assert.are.equal(200, status, head)
    assert.matches("\r\nContent%-Type: text/javascript; charset=utf%-8\r\n", head)
    status, head = raw(p.port, "GET", "/ui/style.css")
    assert.are.equal(200, status, head)
    assert.matches("\r\nContent%-Type: text/css; charset=utf%-8\r\n", head)
    status, head, body = raw(p.port, "HEAD", "/")
    assert.are.equal(200, status)
    assert.are.equal("", body)
    -- a path under /ui/ that is none of the files is 404 for anyone; other paths are the router's
    for _, path in ipairs { "/ui/nope.js", "/ui/../README.md", "/ui/" } do
      assert.are.equal(404, (raw(p.port, "GET", path)), path)
    end
    assert.are.equal(401, (raw(p.port, "GET", "/index.html")))
    assert.are.equal(401, (raw(p.port, "GET", "/channels")))
  end)
end)

describe("GET /channels", function()
  it("lists this host's channels with their counts, only those the caller may read", function()
    local reader, reader_line = token("ops", "read")
    local admin, admin_line = token("root", "admin")
    local dir = testing.tmpdir()
    dirs[#dirs + 1] = dir
    testing.write_file(dir .. "/auth", reader_line .. "\n" .. admin_line .. "\n")
    local p = start { "--auth-file", dir .. "/auth" }
    local status, body = json_get(p.base .. "/channels")
    assert.are.equal(401, status)
    status, body = json_get(p.base .. "/channels", reader)
    assert.are.equal(200, status)
    local seen = ids(body.channels)
    assert.is_nil(seen.priv) -- a private channel this token may not see is absent
    assert.is_nil(seen.registry) -- the registry's channel is an admin's
    assert.are.same({ id = "pub", name = "pub", kind = "broadcast", visibility = "public", owner = "owner",
      endpoint = p.base, durable = false, held = 2, writes = 2, last_seq = 2 }, seen.pub)
    status, body = json_get(p.base .. "/channels", admin)
    assert.are.equal(200, status)
    seen = ids(body.channels)
    assert.is_table(seen.priv)
    assert.are.equal("private", seen.priv.visibility)
    assert.is_table(seen.registry)
    assert.are.equal(405, (testing.http("PUT", p.base .. "/channels", { token = admin, body = "{}" })))
  end)

  it("answers an empty list as [] on a host without channels", function()
    local p = testing.start_host({ "--listen", "127.0.0.1:0" }, { limit = 30 })
    live[#live + 1] = p
    p:ready()
    local status, body = testing.http("GET", p.base .. "/channels")
    assert.are.equal(200, status)
    assert.matches('"channels":%[', body)
  end)
end)
