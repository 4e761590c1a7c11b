-- JSON as scripts see it: sssn.json.encode/decode and message content. The host's own decoder
-- is RFC 8259 strict: it refuses what a strict client could not read back, and says where.
local sssn = require "sssn"
local testing = require "sssn.testing"

local json = sssn.json
local error_of = testing.error_of
local assert_mentions = testing.assert_mentions

local made = {}

describe("sssn.json", function()
  after_each(function()
    for i = #made, 1, -1 do pcall(made[i].stop, made[i]) end
    made = {}
  end)

  describe("decode", function()
    it("reads objects, arrays, strings, numbers, booleans and null", function()
      local v = json.decode('{"celsius": 22.4, "sensor": "s-17", "tags": ["a", "b"], "n": 12,'
        .. ' "ok": true, "off": false, "none": null, "empty": [], "obj": {}}')
      assert.are.equal(22.4, v.celsius)
      assert.are.equal("s-17", v.sensor)
      assert.are.same({ "a", "b" }, v.tags)
      assert.are.equal(12, v.n)
      assert.is_true(v.ok)
      assert.is_false(v.off)
      assert.are.equal(sssn.null, v.none)
      assert.are.equal("[]", json.encode(v.empty))
      assert.are.equal("{}", json.encode(v.obj))
    end)

    it("keeps integers exact beyond 2^53 and refuses those beyond 64 bits", function()
      local v = json.decode("[9007199254740993, 9223372036854775807, -9223372036854775808]")
      assert.are.equal("integer", math.type(v[1]))
      assert.are.equal((1 << 53) + 1, v[1])
      assert.are.equal(math.maxinteger, v[2])
      assert.are.equal(math.mininteger, v[3])
      assert.are.equal("invalid JSON: integer out of range at byte 8",
        error_of(json.decode, '{"id": 9223372036854775808}'))
    end)

    it("reads a number with a fraction or an exponent as a float", function()
      local v = json.decode("[2.0, 1e3, 7, -0]")
      assert.are.equal("float", math.type(v[1]))
      assert.are.equal("float", math.type(v[2]))
      assert.are.equal(1000, v[2])
      assert.are.equal("integer", math.type(v[3]))
      assert.are.equal("float", math.type(v[4]))
      assert.is_true(1 / v[4] < 0)
    end)

    it("reads strings with escapes and surrogate pairs", function()
      assert.are.equal('a"b\\c/\n\t\u{e9}\u{1F600}', json.decode([["a\"b\\c\/\n\t\u00e9\ud83d\ude00"]]))
    end)

    it("refuses invalid UTF-8, naming the byte", function()
      assert.are.equal("invalid JSON: invalid UTF-8 in a string at byte 14",
        error_of(json.decode, '{"name": "caf\xe9", "n": 1}'))
      assert.are.equal("invalid JSON: invalid UTF-8 in a string at byte 2",
        error_of(json.decode, '"\xed\xa0\x80"')) -- a surrogate written in UTF-8
      assert.are.equal("invalid JSON: invalid UTF-8 in a string at byte 2",
        error_of(json.decode, '"\xc0\xaf"')) -- overlong
    end)

    it("refuses raw control characters and lone surrogates in strings", function()
      assert.are.equal("invalid JSON: unescaped control character in a string at byte 3",
        error_of(json.decode, '"a\nb"'))
      assert.are.equal("invalid JSON: lone surrogate in a string at byte 2",
        error_of(json.decode, [["\ud800"]]))
    end)

    it("refuses what is not JSON, saying what and where", function()
      assert.are.equal("invalid JSON: unexpected character 'N' at byte 1", error_of(json.decode, "NaN"))
      assert.are.equal("invalid JSON: invalid number (leading zero) at byte 2", error_of(json.decode, "[01]"))
      assert.are.equal("invalid JSON: unexpected character ']' at byte 4", error_of(json.decode, "[1,]"))
      assert.are.equal("invalid JSON: expected ':' after an object key, found '1' at byte 6",
        error_of(json.decode, '{"a" 1}'))
      assert.are.equal("invalid JSON: unexpected character after the value: 'x' at byte 4",
        error_of(json.decode, "{} x"))
      assert.are.equal("invalid JSON: unexpected end of text at byte 6", error_of(json.decode, '{"a":'))
      assert.are.equal("invalid JSON: number out of range at byte 1", error_of(json.decode, "1e400"))
      assert.are.equal("invalid JSON: nesting deeper than 200 at byte 201",
        error_of(json.decode, ("["):rep(201) .. ("]"):rep(201)))
    end)

    it("lets the last of duplicate keys win", function()
      assert.are.same({ a = 3, b = 2 }, json.decode('{"a": 1, "b": 2, "a": 3}'))
    end)
  end)

  describe("encode", function()
    it("refuses a string that is not UTF-8, naming the path and the byte", function()
      local msg = error_of(json.encode, { readings = { name = "ab\xff" } }, "data")
      assert_mentions(msg, "cannot encode invalid UTF-8 at data.readings.name (byte 3 of the string)")
      msg = error_of(json.encode, { ["k\xe9"] = 1 }, "data")
      assert_mentions(msg, "cannot encode invalid UTF-8 in a key at data (byte 2 of the key)")
    end)

    it("writes integers beyond 2^53 as they are, and they read back exactly", function()
      assert.are.equal("[9007199254740993]", json.encode({ (1 << 53) + 1 }))
      assert.are.equal((1 << 53) + 1, json.decode(json.encode((1 << 53) + 1)))
    end)

    it("writes floats so that they read back as the same float", function()
      for _, x in ipairs { 22.4, 1764100812.512345, 0.1 + 0.2, 2 ^ 53 + 2, 2 ^ 60, -1.5e-300 } do
        local back = json.decode(json.encode(x))
        assert.are.equal("float", math.type(back))
        assert.are.equal(x, back)
      end
      assert.are.equal("integer", math.type(json.decode(json.encode(3.0))))
    end)
  end)

  describe("message content", function()
    it("refuses invalid UTF-8 from write_channel, naming the path", function()
      local owner = testing.system(testing.uid("owner"))
      made[#made + 1] = owner
      local ch = owner:add_channel(sssn.broadcast { id = testing.uid("utf8") })
      local msg = error_of(owner.write_channel, owner, ch.id, { sensor = { name = "caf\xe9" } })
      assert_mentions(msg, "cannot encode invalid UTF-8 at data.sensor.name (byte 4 of the string)",
        "write_channel")
      msg = error_of(owner.write_channel, owner, ch.id, "ok", { metadata = { ["\xff"] = 1 } })
      assert_mentions(msg, "cannot encode invalid UTF-8 in a key at metadata (byte 1 of the key)")
      assert.are.same({}, owner:read_channel(ch.id)) -- nothing was written
      owner:write_channel(ch.id, { name = "caf\u{e9}", big = (1 << 53) + 1 })
      local data = owner:read_channel(ch.id)[1].content.data
      assert.are.equal("caf\u{e9}", data.name)
      assert.are.equal((1 << 53) + 1, data.big)
      assert.are.equal("integer", math.type(data.big))
    end)
  end)
end)
