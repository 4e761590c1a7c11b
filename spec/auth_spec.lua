-- End to end: the HTTP API's authentication stages (--jwt-secret-file, --auth-file) and
-- `sssn-host token`. The tokens are minted and checked by Python (python3 with hmac, hashlib,
-- base64 and json only: nothing shared with the host), so both sides of HS256 are tested
-- against an independent implementation. Which role may do which operation is the router's
-- business and is specified elsewhere; here a token is only let in or refused.
local sssn = require "sssn"
local testing = require "sssn.testing"

local decode = sssn.json.decode
local encode = sssn.json.encode

local FIXTURE = [[
local sssn = require "sssn"
local s = sssn.system { id = "auth-fixture" }
function s:setup() self:add_channel(sssn.broadcast { id = "feed" }) end
function s:step() end
return s
]]

-- mint.py SECRET_FILE HEADER_JSON CLAIMS_JSON [SIGNATURE]: prints header.claims.signature,
-- signed with HMAC-SHA256 over the file's bytes (one trailing newline stripped), or with
-- SIGNATURE given ("" for none) that text instead.
local MINT = [[
import base64, hashlib, hmac, sys
def b64(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
secret = open(sys.argv[1], "rb").read()
if secret.endswith(b"\n"): secret = secret[:-1]
signing = b64(sys.argv[2].encode()) + "." + b64(sys.argv[3].encode())
if len(sys.argv) > 4:
    print(signing + "." + sys.argv[4])
else:
    sig = hmac.new(secret, signing.encode(), hashlib.sha256).digest()
    print(signing + "." + b64(sig))
]]

-- check.py SECRET_FILE TOKEN: recomputes the signature; prints "ok" and the header and claims
-- as JSON on three lines, or "bad signature".
local CHECK = [[
import base64, hashlib, hmac, json, sys
def unb64(s): return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
secret = open(sys.argv[1], "rb").read()
if secret.endswith(b"\n"): secret = secret[:-1]
h, c, s = sys.argv[2].strip().split(".")
want = hmac.new(secret, (h + "." + c).encode(), hashlib.sha256).digest()
if not hmac.compare_digest(want, unb64(s)):
    print("bad signature"); sys.exit(0)
print("ok"); print(json.dumps(json.loads(unb64(h)))); print(json.dumps(json.loads(unb64(c))))
]]

local dir
local function path(name) return dir .. "/" .. name end

local function python(script, ...)
  local out, err, code = testing.run({ "python3", path(script), ... })
  assert.are.equal(0, code, err)
  return (out:gsub("\n$", ""))
end

local HS256 = '{"alg":"HS256","typ":"JWT"}'
local function claims(t) return encode(t) end
local function mint(t, header, sig)
  if sig then return python("mint.py", path("secret"), header or HS256, claims(t), sig) end
  return python("mint.py", path("secret"), header or HS256, claims(t))
end

-- A host with the given auth flags: waits for its API, then for the fixture's channel (asked
-- with the token ok_token, since every request now needs one).
local function start(flags, ok_token)
  local argv = { "--listen", "127.0.0.1:0" }
  for _, f in ipairs(flags) do argv[#argv + 1] = f end
  argv[#argv + 1] = path("fixture.lua")
  local p = testing.start_host(argv, { dir = dir, name = testing.uid("host") })
  p:listening()
  local ok = testing.eventually(5, function()
    return testing.http("GET", p.base .. "/channels/feed/info", { token = ok_token, timeout = 1 }) == 200
      or not p:alive()
  end)
  if ok ~= true or not p:alive() then
    p:stop()
    error("the host did not serve /channels/feed/info:\n" .. p:err(), 2)
  end
  return p
end

-- GET /channels/feed/info with token (nil: no Authorization header) -> status, decoded body.
local function get_info(p, token)
  local status, body = testing.http("GET", p.base .. "/channels/feed/info", { token = token, timeout = 5 })
  local ok, json = pcall(decode, body)
  return status, ok and json or body
end

local function assert_refused(p, token, status, detail)
  local got, json = get_info(p, token)
  assert.are.equal(status, got, type(json) == "table" and json.detail or json)
  assert.is_table(json)
  assert.are.equal(detail, json.detail)
  assert.are.equal(detail, json.error.message)
end

setup(function()
  dir = testing.tmpdir()
  testing.write_file(path("fixture.lua"), FIXTURE)
  testing.write_file(path("mint.py"), MINT)
  testing.write_file(path("check.py"), CHECK)
  testing.write_file(path("secret"), "a secret of thirty-two bytes or more, for the specs\n")
end)

teardown(function() if dir then testing.rmtree(dir) end end)

describe("--jwt-secret-file", function()
  local p, good
  lazy_setup(function()
    good = mint { sub = "reader-1", role = "read", exp = testing.walltime() + 600, jti = "00ff" }
    p = start({ "--jwt-secret-file", path("secret") }, good)
  end)
  lazy_teardown(function() if p then p:stop() end end)

  it("lets a valid read token minted by Python read a channel's info", function()
    local status, json = get_info(p, good)
    assert.are.equal(200, status)
    assert.are.equal("feed", json.id)
  end)

  it("takes an integer exp, a role in capitals and a channel list", function()
    local t = mint { sub = "reader-2", role = "READ", exp = math.floor(testing.walltime()) + 600,
      channels = { "feed", "other" } }
    assert.are.equal(200, (get_info(p, t)))
  end)

  it("answers 401 'Missing Bearer token.' without an Authorization header", function()
    assert_refused(p, nil, 401, "Missing Bearer token.")
  end)

  it("refuses an expired token with 403, with a float exp and an integer one", function()
    assert_refused(p, mint { sub = "r", role = "read", exp = testing.walltime() - 1.5 }, 403, "the token has expired")
    assert_refused(p, mint { sub = "r", role = "read", exp = math.floor(testing.walltime()) - 10 }, 403,
      "the token has expired")
  end)

  it("refuses a tampered token with 403", function()
    -- the claims swapped for admin ones, the read token's signature kept
    local h, _, s = good:match("^([^.]+)%.([^.]+)%.([^.]+)$")
    local forged = mint({ sub = "reader-1", role = "admin", exp = testing.walltime() + 600 }, nil, s)
    assert.are.equal(h, forged:match("^[^.]+"))
    assert_refused(p, forged, 403, "the token's signature does not match")
    -- signed with another secret
    testing.write_file(path("other"), "another secret entirely, not the host's one")
    local other = python("mint.py", path("other"), HS256, claims { sub = "r", role = "read",
      exp = testing.walltime() + 600 })
    assert_refused(p, other, 403, "the token's signature does not match")
  end)

  it("refuses alg none and other algs with 403", function()
    local c = { sub = "r", role = "admin", exp = testing.walltime() + 600 }
    assert_refused(p, mint(c, '{"alg":"none","typ":"JWT"}', ""), 403, "alg 'none' is not accepted")
    assert_refused(p, mint(c, '{"alg":"HS512","typ":"JWT"}'), 403, "alg 'HS512' is not accepted (only HS256)")
  end)

  it("refuses what is not a JWT, and bad claims, with 403 saying why", function()
    assert_refused(p, "reader-1", 403, "the token is not a JWT (three base64url parts)")
    assert_refused(p, mint { role = "read", exp = testing.walltime() + 600 }, 403, "the token has no sub claim")
    assert_refused(p, mint { sub = "r", role = "owner", exp = testing.walltime() + 600 }, 403,
      "the token's role 'owner' is not read, write or admin")
  end)
end)

describe("sssn-host token", function()
  it("prints a JWT that Python's hmac verifies and the host accepts", function()
    local out, err, code = testing.run({ testing.exe, "token", "--sub", "svc-9", "--role", "Write",
      "--channels", "feed,jobs", "--ttl", "120", "--jwt-secret-file", path("secret") })
    assert.are.equal(0, code, err)
    local token = out:match("^(%S+)\n$")
    assert.truthy(token, out)
    local checked = python("check.py", path("secret"), token)
    local verdict, header, body = checked:match("^(%S+)\n([^\n]*)\n([^\n]*)$")
    assert.are.equal("ok", verdict, checked)
    header, body = decode(header), decode(body)
    assert.are.same({ alg = "HS256", typ = "JWT" }, header)
    assert.are.equal("svc-9", body.sub)
    assert.are.equal("write", body.role)
    assert.are.same({ "feed", "jobs" }, body.channels)
    assert.truthy(body.jti:match("^%x+$") and #body.jti == 32, body.jti)
    assert.is_true(math.abs(body.exp - (testing.walltime() + 120)) < 30, tostring(body.exp))
    local p = start({ "--jwt-secret-file", path("secret") }, token)
    finally(function() p:stop() end)
    assert.are.equal(200, (get_info(p, token)))
  end)

  it("refuses a bad role and a missing secret file with exit status 2", function()
    local _, err, code = testing.run({ testing.exe, "token", "--sub", "a", "--role", "owner",
      "--jwt-secret-file", path("secret") })
    assert.are.equal(2, code)
    assert.truthy(err:find("--role wants read, write or admin, not 'owner'", 1, true), err)
    _, err, code = testing.run({ testing.exe, "token", "--sub", "a", "--role", "read",
      "--jwt-secret-file", path("no-such-file") })
    assert.are.equal(2, code)
    assert.truthy(err:find("no-such-file", 1, true), err)
  end)
end)

describe("--auth-file", function()
  local p, token, line
  lazy_setup(function()
    local out, err, code = testing.run({ testing.exe, "token", "--static", "--sub", "static-svc", "--role", "read" })
    assert.are.equal(0, code, err)
    token, line = out:match("^(%S+)\n([^\n]+)\n$")
    -- the line lists the token by its SHA-256, as Python computes it
    local hashed = testing.run({ "python3", "-c",
      "import hashlib, sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest())", token })
    local digest = hashed:gsub("\n$", "")
    assert.are.equal("sha256:" .. digest .. " static-svc read", line)
    testing.write_file(path("auth.txt"), "# tokens for the specs\n\n" .. line .. "\n")
    p = start({ "--auth-file", path("auth.txt") }, token)
  end)
  lazy_teardown(function() if p then p:stop() end end)

  it("lets a listed static token in", function()
    assert.are.equal(200, (get_info(p, token)))
  end)

  it("refuses a token it does not list with 403, and no token with 401", function()
    assert_refused(p, "0123456789abcdef", 403, "the token is not known")
    assert_refused(p, nil, 401, "Missing Bearer token.")
  end)

  it("with --jwt-secret-file too, takes both its tokens and JWTs", function()
    local jwt = mint { sub = "j", role = "read", exp = testing.walltime() + 600 }
    local q = start({ "--auth-file", path("auth.txt"), "--jwt-secret-file", path("secret") }, token)
    finally(function() q:stop() end)
    assert.are.equal(200, (get_info(q, jwt)))
    assert_refused(q, "not-listed", 403, "the token is not known")
    assert_refused(q, mint { sub = "j", role = "read", exp = testing.walltime() - 5 }, 403, "the token has expired")
  end)

  it("fails start-up on a malformed line, naming file and line", function()
    testing.write_file(path("bad-auth.txt"), "# a comment\n" .. line .. "\nsha256:abcd someone read\n")
    local _, err, code = testing.run({ testing.exe, "--listen", "127.0.0.1:0", "--auth-file", path("bad-auth.txt"),
      path("fixture.lua") })
    assert.are.equal(2, code, err)
    assert.truthy(err:find(path("bad-auth.txt") .. ":3: ", 1, true), err)
    assert.truthy(err:find("64 hex digits", 1, true), err)
  end)
end)
