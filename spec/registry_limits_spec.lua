-- The registry's limits over HTTP: entries per subject and in all, the longest TTL, and
-- listings by page. A real host with --listen and small limits; the subject of an open host is
-- the caller's Bearer token ("anonymous" without one), so the limits hold there too.
local sssn = require "sssn"
local testing = require "sssn.testing"

local decode = sssn.json.decode

local function request(base, method, path, opts)
  opts = opts or {}
  local status, body = testing.http(method, base .. path, { body = opts.body, token = opts.token, timeout = 10 })
  local ok, json = pcall(decode, body or "")
  return status, ok and json or nil, body
end

local function put_channel(base, id, token, ttl)
  return request(base, "PUT", ("/registry/channels/%s?ttl=%s"):format(id, ttl or 60),
    { body = ('{"id": "%s", "name": "%s"}'):format(id, id), token = token })
end

describe("registry limits over HTTP", function()
  local p

  before_each(function()
    p = testing.start_host { "--listen", "127.0.0.1:0", "--registry-max-entries", "8",
      "--registry-max-per-subject", "5", "--registry-max-ttl", "100" }
    p:ready()
  end)

  after_each(function() p:stop() end)

  it("refuses a subject's entry past its limit with 429 naming the subject and the flag", function()
    for i = 1, 5 do
      local status, _, raw = put_channel(p.base, "a" .. i)
      assert.are.equal(200, status, raw)
    end
    local status, json, raw = put_channel(p.base, "a6")
    assert.are.equal(429, status, raw)
    assert.are.equal("limit", json.error.type)
    testing.assert_mentions(json.detail, "subject 'anonymous' holds 5 entries", "--registry-max-per-subject")
    -- renewing one it holds adds nothing, and another subject has its own count
    assert.are.equal(200, (put_channel(p.base, "a1")))
    assert.are.equal(200, (put_channel(p.base, "b1", "bob")))
    assert.are.equal(404, (request(p.base, "GET", "/registry/channels/a6")))
    local _, _, metrics = request(p.base, "GET", "/metrics")
    assert.matches('sssn_registry_refused_total{reason="subject"} 1\n', metrics, 1, true)
  end)

  it("refuses any entry past the total with 429, and takes one again once an entry goes", function()
    for i = 1, 4 do assert.are.equal(200, (put_channel(p.base, "a" .. i))) end
    for i = 1, 4 do assert.are.equal(200, (put_channel(p.base, "b" .. i, "bob"))) end
    local status, json, raw = put_channel(p.base, "c1", "carol")
    assert.are.equal(429, status, raw)
    testing.assert_mentions(json.detail, "holds 8 entries", "--registry-max-entries")
    assert.are.equal(200, (request(p.base, "DELETE", "/registry/channels/a4")))
    assert.are.equal(200, (put_channel(p.base, "c1", "carol")))
  end)

  it("refuses a TTL longer than --registry-max-ttl with 400", function()
    local status, json, raw = put_channel(p.base, "long", nil, 101)
    assert.are.equal(400, status, raw)
    testing.assert_mentions(json.detail, "ttl 101", "100", "--registry-max-ttl")
    assert.are.equal(200, (put_channel(p.base, "long", nil, 100)))
  end)

  it("lists by page: ?limit= entries in id order, continued with ?after= the last id", function()
    local ids = {}
    for i = 1, 5 do ids[i] = ("p%d"):format(6 - i) end -- registered out of order
    for _, id in ipairs(ids) do assert.are.equal(200, (put_channel(p.base, id))) end
    local seen, after = {}, nil
    for _ = 1, 10 do
      local status, page, raw = request(p.base, "GET", "/registry/channels?limit=2" .. (after and "&after=" .. after or ""))
      assert.are.equal(200, status, raw)
      for _, e in ipairs(page) do seen[#seen + 1] = e.id end
      if #page < 2 then break end
      after = page[#page].id
    end
    assert.are.same({ "p1", "p2", "p3", "p4", "p5" }, seen)
    local status, json = request(p.base, "GET", "/registry/channels?limit=0")
    assert.are.equal(400, status)
    testing.assert_mentions(json.detail, "limit")
  end)
end)
