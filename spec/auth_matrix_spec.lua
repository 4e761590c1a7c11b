-- Authorisation end to end: a host with --jwt-secret-file, tokens minted by Python's own
-- hmac, hashlib, base64 and json in the shape the Python sssn JWTChannelSecurity issues (no
-- code shared with the host), and every operation tried with every kind of caller: role x
-- operation x channel scope; missing, expired, tampered, wrong-secret and wrong-alg tokens;
-- ownership of registry entries; forged senders; private channels and entries hidden.
local sssn = require "sssn"
local testing = require "sssn.testing"

local decode = sssn.json.decode

local SECRET = "matrix-secret-of-some-length"

-- Mints tokens from a list of {name, claims (a JSON object text), mode}; mode "none" makes an
-- alg-none token, "hs512" an HS512 one, "tamper" changes the payload after signing, "wrong"
-- signs with another secret. exp_in is added to the time as exp (a float, as Python's is).
local MINT = [[
import base64, hashlib, hmac, json, sys, time
def b64(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
secret = sys.argv[1].encode()
for line in sys.stdin:
    name, mode, claims = line.rstrip("\n").split("\t")
    claims = json.loads(claims)
    if "exp_in" in claims: claims["exp"] = time.time() + claims.pop("exp_in")
    claims.setdefault("jti", "0123456789abcdef0123456789abcdef")
    alg = {"none": "none", "hs512": "HS512"}.get(mode, "HS256")
    head = b64(json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":")).encode())
    body = b64(json.dumps(claims, separators=(",", ":")).encode())
    digest = {"HS512": hashlib.sha512}.get(alg, hashlib.sha256)
    key = b"another secret" if mode == "wrong" else secret
    sig = "" if alg == "none" else b64(hmac.new(key, (head + "." + body).encode(), digest).digest())
    if mode == "tamper":
        claims["role"] = "admin"
        body = b64(json.dumps(claims, separators=(",", ":")).encode())
    print(name + "\t" + head + "." + body + "." + sig)
]]

local TOKENS = {
  { "reader", "", '{"sub": "alice", "role": "read", "exp_in": 3600}' },
  { "writer", "", '{"sub": "alice", "role": "write", "exp_in": 3600}' },
  { "bob", "", '{"sub": "bob", "role": "write", "exp_in": 3600, "channels": null}' },
  { "admin", "", '{"sub": "root", "role": "ADMIN", "exp_in": 3600}' },
  { "scoped", "", '{"sub": "carol", "role": "write", "exp_in": 3600, "channels": ["pub"]}' },
  { "private_reader", "", '{"sub": "dave", "role": "read", "exp_in": 3600, "channels": ["priv", "pub"]}' },
  { "expired", "", '{"sub": "alice", "role": "write", "exp_in": -10}' },
  { "tampered", "tamper", '{"sub": "alice", "role": "read", "exp_in": 3600}' },
  { "wrong_secret", "wrong", '{"sub": "alice", "role": "write", "exp_in": 3600}' },
  { "alg_none", "none", '{"sub": "alice", "role": "admin", "exp_in": 3600}' },
  { "hs512", "hs512", '{"sub": "alice", "role": "admin", "exp_in": 3600}' },
}

local FIXTURE = [[
local sssn = require "sssn"
local s = sssn.system { id = "owner" }
function s:setup()
  self:add_channel(sssn.broadcast { id = "pub", visibility = "public" })
  self:add_channel(sssn.broadcast { id = "priv", visibility = "private" })
  self:add_channel(sssn.work_queue { id = "jobs", visibility = "public" })
  print("fixture ready")
end
function s:step() end
return s
]]

local function mint(dir)
  testing.write_file(dir .. "/mint.py", MINT)
  local lines = {}
  for _, t in ipairs(TOKENS) do lines[#lines + 1] = table.concat(t, "\t", 1, 1) .. "\t" .. t[2] .. "\t" .. t[3] end
  local out, err, code = testing.run({ "python3", dir .. "/mint.py", SECRET }, { input = table.concat(lines, "\n") .. "\n" })
  assert.are.equal(0, code, err)
  local tokens = {}
  for name, token in out:gmatch("([%w_]+)\t(%S+)") do tokens[name] = token end
  return tokens
end

describe("authorisation with JWTs from the Python sssn's format", function()
  local dir, p, tok

  local function call(method, path, who, body)
    local status, raw = testing.http(method, p.base .. path, { token = who and tok[who], body = body, timeout = 10 })
    local ok, json = pcall(decode, raw or "")
    return status, ok and json or nil, raw
  end

  local function expect(status, method, path, who, body)
    local got, json, raw = call(method, path, who, body)
    assert.are.equal(status, got, ("%s %s as %s: %s"):format(method, path, tostring(who), tostring(raw)))
    return json
  end

  setup(function()
    dir = testing.tmpdir()
    tok = mint(dir)
    testing.write_file(dir .. "/secret", SECRET .. "\n")
    testing.write_file(dir .. "/fixture.lua", FIXTURE)
    p = testing.start_host({ "--listen", "127.0.0.1:0", "--jwt-secret-file", dir .. "/secret", dir .. "/fixture.lua" },
      { dir = dir })
    p:listening()
    p:wait_output("fixture ready", 5)
  end)

  teardown(function()
    if p then p:stop() end
    testing.rmtree(dir)
  end)

  it("answers 401 'Missing Bearer token.' without a token, on every route", function()
    for _, r in ipairs { { "GET", "/channels/pub" }, { "PUT", "/channels/pub" }, { "GET", "/channels/pub/info" },
      { "GET", "/registry/channels" }, { "PUT", "/registry/channels/x" }, { "GET", "/registry/events" } } do
      local json = expect(401, r[1], r[2], nil, "{}")
      assert.are.equal("Missing Bearer token.", json.detail)
    end
  end)

  it("answers 403 to an expired, tampered, wrong-secret, alg-none or HS512 token, saying why", function()
    local why = { expired = "expired", tampered = "signature", wrong_secret = "signature", alg_none = "none",
      hs512 = "HS512" }
    for name, word in pairs(why) do
      local json = expect(403, "GET", "/channels/pub/info", name)
      assert.is_truthy(json.detail:find(word, 1, true), name .. ": " .. json.detail)
    end
  end)

  it("lets read do reads, info and acks, and nothing that writes (the Python wording)", function()
    expect(200, "GET", "/channels/pub", "reader")
    expect(200, "GET", "/channels/pub/info", "reader")
    expect(200, "GET", "/registry/channels", "reader")
    local json = expect(403, "PUT", "/channels/pub", "reader", '{"x": 1}')
    assert.are.equal("Token does not permit 'write' on channel 'pub'.", json.detail)
    expect(403, "PUT", "/registry/channels/r1", "reader", '{"id": "r1"}')
    expect(403, "DELETE", "/registry/channels/r1", "reader")
  end)

  it("lets write write and read, within its channel scope", function()
    expect(200, "PUT", "/channels/pub", "writer", '{"x": 1}')
    expect(200, "PUT", "/channels/jobs", "writer", '{"job": 1}')
    expect(200, "PUT", "/channels/pub", "scoped", '{"x": 2}')
    local json = expect(403, "PUT", "/channels/jobs", "scoped", '{"job": 2}')
    assert.are.equal("Token does not permit 'write' on channel 'jobs'.", json.detail)
    expect(403, "GET", "/channels/jobs?exclusive=true", "scoped")
    expect(403, "GET", "/channels/jobs/info", "scoped")
  end)

  it("reads as the token's subject; ?reader= names a cursor within it, never another's", function()
    expect(200, "PUT", "/channels/pub", "writer", '{"n": "cursor"}')
    local function count(who, q)
      local json = expect(200, "GET", "/channels/pub?limit=1000" .. (q or ""), who)
      return #json.messages
    end
    local all = count("bob", "&reader=sys1")
    assert.is_true(all > 0)
    assert.are.equal(0, count("bob", "&reader=sys1"))        -- bob/sys1's cursor moved
    assert.are.equal(all, count("bob", "&reader=bob/sys2"))  -- another of bob's
    assert.are.equal(all, count("bob"))                       -- bob himself
    -- bob naming alice's cursor reads as bob/alice: alice's own cursor has not moved
    assert.are.equal(all, count("bob", "&reader=alice"))
    assert.are.equal(all, count("reader"))
  end)

  it("refuses a forged sender unless an admin writes it", function()
    local env = '{"content": {"data": 1}, "sender_id": "%s"}'
    local json = expect(403, "PUT", "/channels/pub?direct=true", "writer", env:format("bob"))
    assert.is_truthy(json.detail:find("only an admin", 1, true), json.detail)
    expect(200, "PUT", "/channels/pub?direct=true", "writer", env:format("alice"))
    expect(200, "PUT", "/channels/pub?direct=true", "writer", env:format("alice/sys1"))
    expect(200, "PUT", "/channels/pub?direct=true", "admin", env:format("bob"))
    local msgs = expect(200, "GET", "/channels/pub?limit=1000&reader=senders", "admin").messages
    local senders = {}
    for _, m in ipairs(msgs) do senders[#senders + 1] = m.sender_id end
    local text = table.concat(senders, ",")
    assert.is_truthy(text:find("alice/sys1", 1, true), text)
    assert.is_truthy(text:find("bob", 1, true), text)
    -- a plain write's sender is the subject
    expect(200, "PUT", "/channels/pub", "scoped", '{"from": "carol"}')
    msgs = expect(200, "GET", "/channels/pub?limit=1000&reader=senders", "admin").messages
    assert.are.equal("carol", msgs[#msgs].sender_id)
  end)

  it("hides a private channel from callers it is not shown to (404, as for none)", function()
    local json = expect(404, "GET", "/channels/priv", "reader")
    assert.are.equal("channel 'priv' not found", json.detail)
    expect(404, "GET", "/channels/priv/info", "reader")
    expect(404, "PUT", "/channels/priv", "writer", '{"x": 1}')
    expect(200, "GET", "/channels/priv/info", "private_reader")
    expect(200, "GET", "/channels/priv", "private_reader")
    expect(200, "PUT", "/channels/priv", "admin", '{"x": 1}')
  end)

  it("keeps registry entries to the subject that registered them", function()
    expect(200, "PUT", "/registry/channels/shared?ttl=60", "bob", '{"id": "shared"}')
    local json = expect(403, "PUT", "/registry/channels/shared?ttl=60", "writer", '{"id": "shared"}')
    assert.is_truthy(json.detail:find("belongs to subject 'bob'", 1, true), json.detail)
    expect(403, "PUT", "/registry/channels/shared?ttl=60&refresh=true", "writer", '{"id": "shared"}')
    expect(403, "DELETE", "/registry/channels/shared", "writer")
    expect(200, "GET", "/registry/channels/shared", "writer")
    expect(200, "PUT", "/registry/channels/shared?ttl=60", "bob", '{"id": "shared", "name": "renewed"}')
    expect(200, "DELETE", "/registry/channels/shared", "admin")
    expect(404, "GET", "/registry/channels/shared", "bob")
    -- alice may register it now that it is free
    expect(200, "PUT", "/registry/channels/shared?ttl=60", "writer", '{"id": "shared"}')
    expect(200, "DELETE", "/registry/channels/shared", "writer")
  end)

  it("takes a second host's registrations and remote reads under its --token-file credential", function()
    testing.write_file(dir .. "/bob.token", tok.bob .. "\n")
    expect(200, "PUT", "/registry/channels/pub?ttl=60", "admin",
      ('{"id": "pub", "name": "pub", "endpoint": "%s"}'):format(p.base))
    expect(200, "PUT", "/channels/pub", "writer", '{"for": "b"}')
    testing.write_file(dir .. "/b.lua", [[
local sssn = require "sssn"
local s = sssn.system { id = "b-sys", services = { { name = "b-service" } } }
function s:setup()
  sssn.registry:register_system(self:descriptor(), 60)
  local info = sssn.registry:get_channel("pub")
  self:connect(info)
  local msgs = self:read_channel("pub", { limit = 1000 })
  self:write_channel("pub", { from = "b-sys" })
  print(("b read %d"):format(#msgs))
end
function s:step() end
return s
]])
    local b = testing.start_host({ "--registry", p.base, "--token-file", dir .. "/bob.token", dir .. "/b.lua" },
      { dir = dir, name = "b" })
    local ok, err = pcall(function()
      b:wait_output("b read", 10)
      -- registered as bob: alice cannot take it, and B's write carries bob/b-sys as its sender
      expect(200, "GET", "/registry/systems/b-sys", "writer")
      expect(403, "PUT", "/registry/systems/b-sys?ttl=60", "writer", '{"system_id": "b-sys"}')
      local msgs = expect(200, "GET", "/channels/pub?limit=1000&reader=b-check", "admin").messages
      assert.are.equal("bob/b-sys", msgs[#msgs].sender_id)
    end)
    local log = b:err()
    b:stop()
    assert.is_true(ok, tostring(err) .. "\n" .. log)
    -- when B stops it deregisters what it registered, as bob
    testing.eventually(5, function() return call("GET", "/registry/systems/b-sys", "admin") == 404 end)
    expect(404, "GET", "/registry/systems/b-sys", "admin")
  end)

  it("lists and serves private registry entries only to those who may see them", function()
    expect(200, "PUT", "/registry/channels/notes?ttl=60", "bob", '{"id": "notes", "visibility": "private"}')
    expect(200, "PUT", "/registry/systems/hidden-sys?ttl=60", "bob",
      '{"system_id": "hidden-sys", "visibility": "private"}')
    local function listed(who, kind, id)
      for _, e in ipairs(expect(200, "GET", "/registry/" .. kind, who)) do
        if (e.id or e.system_id) == id then return true end
      end
      return false
    end
    assert.is_false(listed("writer", "channels", "notes"))
    assert.is_false(listed("writer", "systems", "hidden-sys"))
    assert.is_true(listed("bob", "channels", "notes"))
    assert.is_true(listed("admin", "systems", "hidden-sys"))
    expect(404, "GET", "/registry/channels/notes", "writer")
    expect(404, "DELETE", "/registry/channels/notes", "writer")
    expect(200, "GET", "/registry/channels/notes", "bob")
    -- the events: alice sees none about them, bob and the admin do
    local function events_about(who, id)
      local n = 0
      for _, ev in ipairs(expect(200, "GET", "/registry/events?index=0", who).events) do
        if ev.id == id then n = n + 1 end
      end
      return n
    end
    assert.are.equal(0, events_about("writer", "notes"))
    assert.is_true(events_about("bob", "notes") > 0)
    assert.is_true(events_about("admin", "hidden-sys") > 0)
    -- the registry's own event channel carries everything: admins only
    expect(403, "GET", "/channels/registry", "bob")
    expect(200, "GET", "/channels/registry", "admin")
  end)
end)
