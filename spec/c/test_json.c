/* test_json.c - unit tests for host/core/json.c: json_encode's output and refusals (with paths),
 * json_decode's grammar, numbers, strings, UTF-8 and error messages, round trips (empty arrays
 * included), Lua stack balance, and allocation failures. Built with host/core/json.c and
 * host/core/strbuf.c against Lua 5.4; no Lua module is needed. */
#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/json.h"

/* encode(v) -> text | nil, err  (root "data"); the value's stack slot is the argument's */
static int l_encode(lua_State *L)
{
    strbuf out = STRBUF_INIT;
    char err[256];
    lua_settop(L, 1);
    int rc = json_encode(L, 1, "data", &out, err, sizeof err);
    if (lua_gettop(L) != 1) {
        strbuf_free(&out);
        return luaL_error(L, "json_encode left %d values on the stack", lua_gettop(L) - 1);
    }
    if (rc < 0) {
        strbuf_free(&out);
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushlstring(L, out.data ? out.data : "", out.len);
    strbuf_free(&out);
    return 1;
}

/* decode(text) -> value, raising on malformed text */
static int l_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    int top = lua_gettop(L);
    json_decode(L, s, len);
    if (lua_gettop(L) != top + 1)
        return luaL_error(L, "json_decode pushed %d values", lua_gettop(L) - top);
    return 1;
}

/* A state with encode/decode globals, `null` (the NULL light userdata), and `array(t)` marking
 * t as an array (the JSON_ARRAY_MT metatable is created only when with_array_mt is set). */
static lua_State *new_state(int with_array_mt)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    lua_register(L, "encode", l_encode);
    lua_register(L, "decode", l_decode);
    lua_pushlightuserdata(L, NULL);
    lua_setglobal(L, "null");
    if (with_array_mt) {
        luaL_newmetatable(L, JSON_ARRAY_MT);
        lua_pop(L, 1);
        if (luaL_dostring(L, "function array(t) return setmetatable(t, debug.getregistry()['"
                             JSON_ARRAY_MT "']) end") != LUA_OK)
            exit(2);
    }
    return L;
}

/* Pushes the value of the Lua expression `expr`. */
static void push_expr(lua_State *L, const char *expr)
{
    char code[4096];
    snprintf(code, sizeof code, "return %s", expr);
    if (luaL_loadstring(L, code) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
        fprintf(stderr, "  bad test expression %s: %s\n", expr, lua_tostring(L, -1));
        exit(2);
    }
}

/* Encodes `expr` with json_encode under root "data" and checks that it gives `want` (text on
 * success, error message on failure, as selected by want_ok) and leaves the stack as it was. */
static int encodes_as(lua_State *L, const char *expr, int want_ok, const char *want)
{
    strbuf out = STRBUF_INIT;
    char err[512];
    push_expr(L, expr);
    int top = lua_gettop(L);
    int rc = json_encode(L, -1, "data", &out, err, sizeof err);
    int ok = lua_gettop(L) == top;
    if (!ok)
        fprintf(stderr, "  stack changed by %d encoding %s\n", lua_gettop(L) - top, expr);
    lua_pop(L, 1);
    const char *got = rc == 0 ? (out.data ? out.data : "") : err;
    if ((rc == 0) != want_ok || strcmp(got, want) != 0) {
        fprintf(stderr, "  %s: got %s '%s', want %s '%s'\n", expr, rc == 0 ? "text" : "error", got,
                want_ok ? "text" : "error", want);
        ok = 0;
    }
    if (rc != 0 && strcmp(err, "") == 0)
        ok = 0;
    strbuf_free(&out);
    return ok;
}

#define ENCODES(L, expr, text) CHECK(encodes_as(L, expr, 1, text))
#define REFUSES(L, expr, msg) CHECK(encodes_as(L, expr, 0, msg))

/* Runs a Lua chunk that must return true; its error or false result is reported. */
static int lua_true(lua_State *L, const char *chunk)
{
    int top = lua_gettop(L);
    if (luaL_loadstring(L, chunk) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
        fprintf(stderr, "  error: %s\n", lua_tostring(L, -1));
        lua_settop(L, top);
        return 0;
    }
    int ok = lua_toboolean(L, -1);
    if (!ok)
        fprintf(stderr, "  chunk returned false:\n%s\n", chunk);
    lua_settop(L, top);
    return ok;
}

#define LUA_TRUE(L, chunk) CHECK(lua_true(L, chunk))

static void test_scalars(void)
{
    lua_State *L = new_state(1);
    ENCODES(L, "nil", "null");
    ENCODES(L, "null", "null");
    ENCODES(L, "true", "true");
    ENCODES(L, "false", "false");
    ENCODES(L, "0", "0");
    ENCODES(L, "-1", "-1");
    ENCODES(L, "42", "42");
    ENCODES(L, "math.maxinteger", "9223372036854775807");
    ENCODES(L, "math.mininteger", "-9223372036854775808");
    ENCODES(L, "''", "\"\"");
    ENCODES(L, "'hello'", "\"hello\"");
    lua_close(L);
}

static void test_integers_round_trip_exactly(void)
{
    lua_State *L = new_state(1);
    ENCODES(L, "1 << 53", "9007199254740992");
    ENCODES(L, "-(1 << 53)", "-9007199254740992");
    ENCODES(L, "123456789012345", "123456789012345");
    ENCODES(L, "{n = 123456789012345}", "{\"n\":123456789012345}");
    /* beyond 2^53 too: integers are written as they are and read back exactly (int64) */
    ENCODES(L, "(1 << 53) + 1", "9007199254740993");
    ENCODES(L, "-(1 << 53) - 1", "-9007199254740993");
    LUA_TRUE(L, "for _, v in ipairs{0, 1, -1, 1 << 53, -(1 << 53), 123456789012345, 1764100000,\n"
                "                   (1 << 53) + 1, -(1 << 53) - 1, (1 << 62) + 7, 1234567890123456789,\n"
                "                   math.maxinteger, math.mininteger, math.maxinteger - 1} do\n"
                "  local t = encode({v = v})\n"
                "  local d = decode(t).v\n"
                "  if math.type(d) ~= 'integer' or d ~= v then error(t) end\n"
                "end\n"
                "return true");
    /* lua-cjson read 2^53 + 1 as the double 2^53, 2^53 + 3 as 2^53 + 4 */
    LUA_TRUE(L, "local v = decode('[9007199254740993, 9007199254740995, -9007199254740993]')\n"
                "return math.type(v[1]) == 'integer' and v[1] == (1 << 53) + 1\n"
                "  and v[2] == (1 << 53) + 3 and v[3] == -(1 << 53) - 1");
    LUA_TRUE(L, "local v = decode('[9223372036854775807, -9223372036854775808]')\n"
                "return v[1] == math.maxinteger and v[2] == math.mininteger\n"
                "  and math.type(v[1]) == 'integer' and math.type(v[2]) == 'integer'");
    lua_close(L);
}

/* Whether decode(text) fails with exactly "invalid JSON: <msg>". */
static int refused_as(lua_State *L, const char *text, size_t len, const char *msg)
{
    int top = lua_gettop(L);
    lua_pushcfunction(L, l_decode);
    lua_pushlstring(L, text, len);
    int ok = 1;
    if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
        fprintf(stderr, "  decoded, want refused: %.*s\n", (int)len, text);
        ok = 0;
    } else {
        const char *got = lua_tostring(L, -1);
        char want[256];
        snprintf(want, sizeof want, "invalid JSON: %s", msg);
        if (!got || strcmp(got, want) != 0) {
            fprintf(stderr, "  %.*s: got '%s', want '%s'\n", (int)len, text, got ? got : "?", want);
            ok = 0;
        }
    }
    lua_settop(L, top);
    return ok;
}

#define DECODE_REFUSES(L, text, msg) CHECK(refused_as(L, text, sizeof text - 1, msg))

static void test_integers_beyond_int64_are_refused(void)
{
    lua_State *L = new_state(1);
    DECODE_REFUSES(L, "9223372036854775808", "integer out of range at byte 1");
    DECODE_REFUSES(L, "-9223372036854775809", "integer out of range at byte 1");
    DECODE_REFUSES(L, "[1, 18446744073709551616]", "integer out of range at byte 5");
    DECODE_REFUSES(L, "{\"id\": 123456789012345678901234567890}", "integer out of range at byte 8");
    /* as floats they are fine: a fraction or an exponent says so */
    LUA_TRUE(L, "local v = decode('[9223372036854775808.0, 1e19, 123456789012345678901234567890.5]')\n"
                "return math.type(v[1]) == 'float' and v[1] == 2^63 and v[2] == 1e19\n"
                "  and v[3] == 1.2345678901234568e29");
    lua_close(L);
}

static void test_floats_round_trip_bit_exactly(void)
{
    lua_State *L = new_state(1);
    ENCODES(L, "0.1", "0.1");
    ENCODES(L, "22.4", "22.4");
    ENCODES(L, "1/3", "0.3333333333333333");
    ENCODES(L, "1e300", "1e+300");
    ENCODES(L, "1e20", "1e+20");
    ENCODES(L, "1764100000.123456", "1764100000.123456");
    ENCODES(L, "3.0", "3");
    ENCODES(L, "-0.0", "-0");
    ENCODES(L, "2^53", "9007199254740992");
    ENCODES(L, "0.1 + 0.2", "0.30000000000000004");
    LUA_TRUE(L, "local bits = function(x) return string.pack('<d', x) end\n"
                "for _, v in ipairs{0.1, 1/3, 1e300, -1e300, 22.4, 1764100000.123456, 5e-324,\n"
                "                   2.2250738585072014e-308, 1.7976931348623157e308, -0.0,\n"
                "                   0.1 + 0.2, 2^63, 1.5, -2.5e-7, math.pi} do\n"
                "  local t = encode({v})\n"
                "  local d = decode(t)[1]\n"
                "  if math.type(d) ~= 'float' or bits(d) ~= bits(v) then error(t) end\n"
                "end\n"
                "return true");
    /* integral floats up to 2^53 are written as integers and read back as integers */
    LUA_TRUE(L, "local d = decode(encode({3.0}))[1] return math.type(d) == 'integer' and d == 3");
    ENCODES(L, "1e15", "1000000000000000");
    ENCODES(L, "-2^53", "-9007199254740992");
    LUA_TRUE(L, "local d = decode(encode({1e15, 2^53}))\n"
                "return math.type(d[1]) == 'integer' and d[1] == 1000000000000000\n"
                "  and math.type(d[2]) == 'integer' and d[2] == 1 << 53");
    /* beyond 2^53 a float keeps a fraction or an exponent: it reads back as a float, now that
     * integer tokens read back as integers */
    ENCODES(L, "2^53 + 2", "9007199254740994.0");
    ENCODES(L, "-2^54", "-18014398509481984.0");
    ENCODES(L, "2^63", "9.223372036854776e+18");
    LUA_TRUE(L, "for _, v in ipairs{2^53 + 2, 2^54, -2^54, 2^60, 2^63, 1e17, 1e16 + 2} do\n"
                "  local d = decode(encode(v))\n"
                "  if math.type(d) ~= 'float' or d ~= v then error(encode(v)) end\n"
                "end\n"
                "return true");
    /* json_write_double writes the same text */
    const double xs[] = {22.4, 1764100812.512345, 3.0, -0.0, 0.0, 1e300, 9007199254740994.0, 5e-324};
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
        strbuf a = STRBUF_INIT, b = STRBUF_INIT;
        char err[64];
        CHECK(json_write_double(&a, xs[i]) == 0);
        lua_pushnumber(L, xs[i]);
        CHECK(json_encode(L, -1, "data", &b, err, sizeof err) == 0);
        lua_pop(L, 1);
        CHECK(a.data && b.data && strcmp(a.data, b.data) == 0);
        strbuf_free(&a);
        strbuf_free(&b);
    }
    strbuf nb = STRBUF_INIT;
    CHECK(json_write_double(&nb, 0.0 / 0.0) == 0 && json_write_double(&nb, 1.0 / 0.0) == 0);
    CHECK(strcmp(nb.data, "nullnull") == 0);
    strbuf_free(&nb);
    lua_close(L);
}

static void test_strings_are_escaped(void)
{
    lua_State *L = new_state(1);
    ENCODES(L, "'say \"hi\"'", "\"say \\\"hi\\\"\"");
    ENCODES(L, "'a\\\\b'", "\"a\\\\b\"");
    ENCODES(L, "'\\0\\1\\8\\9\\10\\12\\13\\31 \\127'",
            "\"\\u0000\\u0001\\b\\t\\n\\f\\r\\u001f \x7f\"");
    ENCODES(L, "'a/b'", "\"a/b\"");
    ENCODES(L, "'h\\u{e9}llo \\u{2713}'", "\"h\xc3\xa9llo \xe2\x9c\x93\"");
    ENCODES(L, "{['k\"\\n'] = 'v'}", "{\"k\\\"\\n\":\"v\"}");
    LUA_TRUE(L, "local s = {'say \"hi\"', 'a\\\\b\\\\', '\\0\\1\\31\\127', 'tab\\there\\r\\n',\n"
                "           'h\\u{e9}llo \\u{2713} \\u{1F600}', string.rep('x', 10000) .. '\"'}\n"
                "for i = 0, 127 do s[#s + 1] = string.char(i) .. 'x' .. string.char(i) end\n"
                "for _, c in ipairs{0x80, 0x7ff, 0x800, 0xd7ff, 0xe000, 0xfffd, 0xffff, 0x10000,\n"
                "                   0x10ffff} do s[#s + 1] = utf8.char(c) .. 'x' .. utf8.char(c) end\n"
                "for _, v in ipairs(s) do\n"
                "  local t = encode({[v] = v})\n"
                "  if decode(t)[v] ~= v then error(t) end\n"
                "end\n"
                "return true");
    lua_close(L);
}

static void test_nested_arrays_and_objects(void)
{
    lua_State *L = new_state(1);
    ENCODES(L, "{1, 2, 3}", "[1,2,3]");
    ENCODES(L, "{{1, {2}}, {}}", "[[1,[2]],{}]");
    ENCODES(L, "{a = {b = {c = {1, 'x', true, null}}}}",
            "{\"a\":{\"b\":{\"c\":[1,\"x\",true,null]}}}");
    ENCODES(L, "{[1] = 'a', [2] = 'b'}", "[\"a\",\"b\"]");
    LUA_TRUE(L, "local v = {id = 'm1', seq = 7, content = {data = {celsius = 22.4, ts = 1764100000.5,\n"
                "  tags = {'a', 'b'}, nested = {{x = 1}, {y = {2, 3}}}}}, metadata = {}}\n"
                "local d = decode(encode(v))\n"
                "return d.id == 'm1' and math.type(d.seq) == 'integer' and d.seq == 7\n"
                "  and d.content.data.celsius == 22.4 and d.content.data.ts == 1764100000.5\n"
                "  and #d.content.data.tags == 2 and d.content.data.tags[2] == 'b'\n"
                "  and d.content.data.nested[1].x == 1 and d.content.data.nested[2].y[2] == 3\n"
                "  and next(d.metadata) == nil");
    /* the same table twice, side by side, is not a cycle */
    LUA_TRUE(L, "local s = {1} return encode({s, s, {s}}) == '[[1],[1],[[1]]]'");
    lua_close(L);
}

static void test_empty_tables(void)
{
    lua_State *L = new_state(1);
    ENCODES(L, "{}", "{}");
    ENCODES(L, "array({})", "[]");
    ENCODES(L, "{list = array({}), map = nil}", "{\"list\":[]}");
    ENCODES(L, "array({1, 2})", "[1,2]");
    ENCODES(L, "setmetatable({}, {})", "{}");
    REFUSES(L, "array({x = 1})", "cannot encode string key in a table marked as array at data");
    REFUSES(L, "array({[2] = 1})", "cannot encode sparse array at data");
    lua_close(L);

    /* the array metatable was never registered: other metatables change nothing */
    L = new_state(0);
    ENCODES(L, "setmetatable({}, {})", "{}");
    ENCODES(L, "setmetatable({1}, {__index = function() error('no') end})", "[1]");
    lua_close(L);
}

static void test_refusals_name_the_path(void)
{
    lua_State *L = new_state(1);
    REFUSES(L, "{readings = {1, 2, 0/0}}", "cannot encode NaN at data.readings[3]");
    REFUSES(L, "{t = math.huge}", "cannot encode inf at data.t");
    REFUSES(L, "{t = {-math.huge}}", "cannot encode -inf at data.t[1]");
    REFUSES(L, "0/0", "cannot encode NaN at data");
    REFUSES(L, "{cb = print}", "cannot encode function at data.cb");
    REFUSES(L, "{out = io.stdout}", "cannot encode userdata at data.out");
    REFUSES(L, "{co = coroutine.create(print)}", "cannot encode thread at data.co");
    REFUSES(L, "{[true] = 1}", "cannot encode table key of type boolean at data");
    REFUSES(L, "{a = {[1.5] = 1}}", "cannot encode table key of type float at data.a");
    REFUSES(L, "{a = {{}, {[print] = 1}}}", "cannot encode table key of type function at data.a[2]");
    REFUSES(L, "{1, 2, x = 3}", "cannot encode table with mixed string and integer keys at data");
    REFUSES(L, "{x = 3, [7] = 1}", "cannot encode table with mixed string and integer keys at data");
    REFUSES(L, "{list = {[1] = 1, [3] = 3}}", "cannot encode sparse array at data.list");
    REFUSES(L, "{[0] = 'zero'}", "cannot encode sparse array at data");
    REFUSES(L, "{[-1] = 'minus'}", "cannot encode sparse array at data");
    REFUSES(L, "{['a b'] = {['x\"y'] = {0/0}}}", "cannot encode NaN at data[\"a b\"][\"x\\\"y\"][1]");
    REFUSES(L, "{['1st'] = {_ok9 = print}}", "cannot encode function at data[\"1st\"]._ok9");
    REFUSES(L, "(function() local t = {} t.self = t return t end)()", "cycle at data.self");
    REFUSES(L, "(function() local t = {a = {b = {}}} t.a.b.c = {t.a} return t end)()",
            "cycle at data.a.b.c[1]");

    /* light userdata other than NULL, and the root name */
    int x = 0;
    char err[128];
    strbuf out = STRBUF_INIT;
    lua_newtable(L);
    lua_pushlightuserdata(L, &x);
    lua_setfield(L, -2, "p");
    int top = lua_gettop(L);
    CHECK(json_encode(L, -1, "content", &out, err, sizeof err) == -1);
    CHECK(strcmp(err, "cannot encode light userdata at content.p") == 0);
    CHECK(lua_gettop(L) == top);
    lua_pop(L, 1);
    strbuf_free(&out);
    lua_close(L);
}

/* Pushes tables nested `levels` deep: {a = {a = ... {}}} */
static void push_nested(lua_State *L, int levels, int as_array)
{
    char code[128];
    snprintf(code, sizeof code, "local t = {} for _ = 2, %d do t = %s end return t", levels,
             as_array ? "{t}" : "{a = t}");
    CHECK(luaL_dostring(L, code) == LUA_OK);
}

static void test_nesting_limit(void)
{
    lua_State *L = new_state(1);
    strbuf out = STRBUF_INIT;
    char err[2048];
    int top = lua_gettop(L);

    push_nested(L, 200, 0);
    CHECK(json_encode(L, -1, "data", &out, err, sizeof err) == 0);
    CHECK(out.len == 200 * 6 - 4); /* {"a": x199, {}, } x199 */
    CHECK(lua_gettop(L) == top + 1);
    lua_pop(L, 1);

    strbuf_reset(&out);
    push_nested(L, 201, 0);
    CHECK(json_encode(L, -1, "data", &out, err, sizeof err) == -1);
    CHECK(strncmp(err, "nesting too deep at data.a.a.a.", 31) == 0);
    CHECK(strlen(err) == strlen("nesting too deep at data") + 200 * 2);
    CHECK(lua_gettop(L) == top + 1);
    lua_pop(L, 1);

    strbuf_reset(&out);
    push_nested(L, 1000, 1);
    CHECK(json_encode(L, -1, "data", &out, err, sizeof err) == -1);
    CHECK(strncmp(err, "nesting too deep at data[1][1][1]", 33) == 0);
    CHECK(lua_gettop(L) == top + 1);
    lua_pop(L, 1);

    /* decoding: 200 levels are accepted, 201 are not */
    LUA_TRUE(L, "local d = decode(string.rep('[', 200) .. string.rep(']', 200))\n"
                "for _ = 2, 200 do d = d[1] end return type(d) == 'table' and next(d) == nil");
    LUA_TRUE(L, "local ok, e = pcall(decode, string.rep('[', 201) .. string.rep(']', 201))\n"
                "return not ok and e == 'invalid JSON: nesting deeper than 200 at byte 201'");
    LUA_TRUE(L, "local ok, e = pcall(decode, string.rep('{\"a\":', 200) .. '[1]' .. string.rep('}', 200))\n"
                "return not ok and e == 'invalid JSON: nesting deeper than 200 at byte 1001'");
    LUA_TRUE(L, "local d = decode(string.rep('{\"a\":', 199) .. '[1]' .. string.rep('}', 199))\n"
                "for _ = 1, 199 do d = d.a end return d[1] == 1");
    /* far deeper than the limit: refused without a C stack overflow */
    LUA_TRUE(L, "local ok, e = pcall(decode, string.rep('[', 1000000))\n"
                "return not ok and e == 'invalid JSON: nesting deeper than 200 at byte 201'");
    strbuf_free(&out);
    lua_close(L);
}

static void test_stack_stays_balanced(void)
{
    lua_State *L = new_state(1);
    strbuf out = STRBUF_INIT;
    char err[256];
    const char *values[] = {
        "{1, 2, {a = {b = 'c'}}}", "{x = {y = {0/0}}}", "{1, x = 2}", "{[true] = {}}",
        "{a = {[1] = 1, [5] = 5}}", "{f = print}",
        "(function() local t = {} t[1] = {t} return t end)()",
        "array({})", "{a = array({1, {b = math.huge}})}",
    };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        lua_pushinteger(L, 7); /* something below */
        push_expr(L, values[i]);
        lua_pushstring(L, "above"); /* and above: a relative index */
        int top = lua_gettop(L);
        json_encode(L, -2, "data", &out, err, sizeof err);
        CHECK(lua_gettop(L) == top);
        CHECK(lua_tointeger(L, top - 2) == 7);
        CHECK(lua_type(L, top - 1) == LUA_TTABLE);
        CHECK(strcmp(lua_tostring(L, top), "above") == 0);
        lua_settop(L, 0);
        strbuf_reset(&out);
    }
    strbuf_free(&out);
    lua_close(L);
}

static void test_error_buffer_is_bounded(void)
{
    lua_State *L = new_state(1);
    strbuf out = STRBUF_INIT;
    char err[16];
    memset(err, 'z', sizeof err);
    push_expr(L, "{readings = {0/0}}");
    CHECK(json_encode(L, -1, "data", &out, err, 10) == -1);
    CHECK(strcmp(err, "cannot en") == 0);
    CHECK(err[10] == 'z');
    CHECK(json_encode(L, -1, "data", &out, NULL, 0) == -1);
    lua_pop(L, 1);
    strbuf_free(&out);
    lua_close(L);
}

static void test_appends_to_existing_text(void)
{
    lua_State *L = new_state(1);
    strbuf out = STRBUF_INIT;
    char err[64];
    strbuf_puts(&out, "{\"data\":");
    push_expr(L, "{1.5, 'x'}");
    CHECK(json_encode(L, -1, "data", &out, err, sizeof err) == 0);
    strbuf_putc(&out, '}');
    CHECK(strcmp(out.data, "{\"data\":[1.5,\"x\"]}") == 0);
    lua_pop(L, 1);
    strbuf_free(&out);
    lua_close(L);
}

static void test_decode(void)
{
    lua_State *L = new_state(1);
    LUA_TRUE(L, "local ok, e = pcall(decode, '{\"a\":')\n"
                "return not ok and type(e) == 'string' and e:find('^invalid JSON: ') ~= nil");
    LUA_TRUE(L, "local v = decode('1') return math.type(v) == 'integer' and v == 1");
    LUA_TRUE(L, "local v = decode('1.5') return math.type(v) == 'float' and v == 1.5");
    /* a fraction or an exponent makes a float (lua-cjson's pass made 2.0 and 1e3 integers);
     * "-0" is the float -0.0 */
    LUA_TRUE(L, "local v = decode('[1, 2.0, 1e3, -7, 1.5, -0, -0.0, 0, 1E+2, 25e-1]')\n"
                "return math.type(v[1]) == 'integer' and math.type(v[2]) == 'float' and v[2] == 2\n"
                "  and math.type(v[3]) == 'float' and v[3] == 1000 and math.type(v[4]) == 'integer'\n"
                "  and math.type(v[5]) == 'float' and math.type(v[6]) == 'float' and 1/v[6] < 0\n"
                "  and math.type(v[7]) == 'float' and 1/v[7] < 0 and math.type(v[8]) == 'integer'\n"
                "  and v[9] == 100.0 and v[10] == 2.5");
    LUA_TRUE(L, "local v = decode('{\"a\":[{\"b\":[7, {\"c\": 8}]}], \"d\": 9.25}')\n"
                "return math.type(v.a[1].b[1]) == 'integer' and math.type(v.a[1].b[2].c) == 'integer'\n"
                "  and v.d == 9.25");
    LUA_TRUE(L, "local v = decode('\"s\"') return v == 's'");
    LUA_TRUE(L, "return decode('true') == true and decode('false') == false");
    /* null is the null light userdata (NULL) and is written back as null */
    LUA_TRUE(L, "local v = decode('{\"a\":null,\"b\":[null,1]}')\n"
                "return v.a == null and v.b[1] == null and #v.b == 2 and encode(v.b) == '[null,1]'\n"
                "  and encode({a = v.a}) == '{\"a\":null}'");
    LUA_TRUE(L, "return decode('null') == null");
    /* duplicate keys: the last wins, also across the decoder's chunks of 16 members */
    LUA_TRUE(L, "local v = decode('{\"a\":1,\"b\":2,\"a\":3}') return v.a == 3 and v.b == 2");
    LUA_TRUE(L, "local parts = {} for i = 1, 100 do parts[i] = ('\"k%d\":%d'):format(i % 7, i) end\n"
                "local v = decode('{' .. table.concat(parts, ',') .. '}')\n"
                "local n = 0 for _ in pairs(v) do n = n + 1 end\n"
                "return n == 7 and v.k2 == 100 and v.k1 == 99 and v.k0 == 98 and v.k3 == 94");
    /* long arrays and objects keep every member, in order */
    LUA_TRUE(L, "local parts, obj = {}, {} for i = 1, 1000 do parts[i] = tostring(i)\n"
                "  obj[i] = ('\"k%d\":%d'):format(i, i) end\n"
                "local a = decode('[' .. table.concat(parts, ',') .. ']')\n"
                "local o = decode('{' .. table.concat(obj, ',') .. '}')\n"
                "if #a ~= 1000 then return false end\n"
                "for i = 1, 1000 do if a[i] ~= i or o['k' .. i] ~= i then return false end end\n"
                "return true");
    /* whitespace as RFC 8259 allows it, around and between everything */
    LUA_TRUE(L, "local v = decode(' \\t\\r\\n{ \"a\" :\\n[ 1 ,\\t2 ] , \"b\" : { } } \\n')\n"
                "return v.a[2] == 2 and next(v.b) == nil");
    lua_close(L);

    /* json_decode needs no library: a bare state decodes, and it is left as it was */
    L = luaL_newstate();
    lua_pushcfunction(L, l_decode);
    lua_pushliteral(L, "{\"x\": [1, 2.5]}");
    CHECK(lua_pcall(L, 1, 1, 0) == LUA_OK);
    CHECK(lua_type(L, -1) == LUA_TTABLE);
    lua_getfield(L, -1, "x");
    lua_rawgeti(L, -1, 1);
    CHECK(lua_isinteger(L, -1) && lua_tointeger(L, -1) == 1);
    lua_rawgeti(L, -2, 2);
    CHECK(!lua_isinteger(L, -1) && lua_tonumber(L, -1) == 2.5);
    CHECK(lua_gettop(L) == 4);
    lua_close(L);
}

/* Texts outside the grammar, each refused with what was wrong and where. */
static void test_decode_refuses_what_rfc_8259_does_not_allow(void)
{
    lua_State *L = new_state(1);
    DECODE_REFUSES(L, "", "unexpected end of text at byte 1");
    DECODE_REFUSES(L, "   ", "unexpected end of text at byte 4");
    DECODE_REFUSES(L, "{\"a\":", "unexpected end of text at byte 6");
    DECODE_REFUSES(L, "[1,", "unexpected end of text at byte 4");
    DECODE_REFUSES(L, "[1", "unexpected end of text at byte 3");
    DECODE_REFUSES(L, "NaN", "unexpected character 'N' at byte 1");
    DECODE_REFUSES(L, "[Infinity]", "unexpected character 'I' at byte 2");
    DECODE_REFUSES(L, "[-Infinity]", "invalid number: expected a digit, found 'I' at byte 3");
    DECODE_REFUSES(L, "[0x10]", "expected ',' or ']' in an array, found 'x' at byte 3");
    DECODE_REFUSES(L, "{\"a\" 1}", "expected ':' after an object key, found '1' at byte 6");
    DECODE_REFUSES(L, "{\"a\":1,}", "expected a string key in an object, found '}' at byte 8");
    DECODE_REFUSES(L, "{a:1}", "expected a string key in an object, found 'a' at byte 2");
    DECODE_REFUSES(L, "{1:1}", "expected a string key in an object, found '1' at byte 2");
    DECODE_REFUSES(L, "{\"a\":1 \"b\":2}", "expected ',' or '}' in an object, found '\"' at byte 8");
    DECODE_REFUSES(L, "[1,]", "unexpected character ']' at byte 4");
    DECODE_REFUSES(L, "[,1]", "unexpected character ',' at byte 2");
    DECODE_REFUSES(L, "[1 2]", "expected ',' or ']' in an array, found '2' at byte 4");
    /* numbers: no leading zeros, no '+', no bare point, digits after '.' and 'e' */
    DECODE_REFUSES(L, "01", "invalid number (leading zero) at byte 1");
    DECODE_REFUSES(L, "[-01]", "invalid number (leading zero) at byte 2");
    DECODE_REFUSES(L, "+1", "unexpected character '+' at byte 1");
    DECODE_REFUSES(L, ".5", "unexpected character '.' at byte 1");
    DECODE_REFUSES(L, "1.", "unexpected end of text at byte 3");
    DECODE_REFUSES(L, "1.e5", "invalid number: expected a digit after '.', found 'e' at byte 3");
    DECODE_REFUSES(L, "1e", "unexpected end of text at byte 3");
    DECODE_REFUSES(L, "1e+", "unexpected end of text at byte 4");
    DECODE_REFUSES(L, "-", "unexpected end of text at byte 2");
    DECODE_REFUSES(L, "[1e400]", "number out of range at byte 2");
    DECODE_REFUSES(L, "-1e400", "number out of range at byte 1");
    /* literals are exact and lower case */
    DECODE_REFUSES(L, "tru", "unexpected character 't' at byte 1");
    DECODE_REFUSES(L, "[True]", "unexpected character 'T' at byte 2");
    DECODE_REFUSES(L, "nul", "unexpected character 'n' at byte 1");
    DECODE_REFUSES(L, "truex", "unexpected character after the value: 'x' at byte 5");
    /* one value, and nothing after it but whitespace */
    DECODE_REFUSES(L, "1 2", "unexpected character after the value: '2' at byte 3");
    DECODE_REFUSES(L, "[] x", "unexpected character after the value: 'x' at byte 4");
    DECODE_REFUSES(L, "{}}", "unexpected character after the value: '}' at byte 3");
    DECODE_REFUSES(L, "\"a\"\"b\"", "unexpected character after the value: '\"' at byte 4");
    DECODE_REFUSES(L, "1\0", "unexpected character after the value: byte 0x00 at byte 2");
    /* only space, tab, CR and LF are whitespace */
    DECODE_REFUSES(L, "\f1", "unexpected character byte 0x0c at byte 1");
    DECODE_REFUSES(L, "[1,\v2]", "unexpected character byte 0x0b at byte 4");
    DECODE_REFUSES(L, "\xc2\xa0" "1", "unexpected character byte 0xc2 at byte 1");
    DECODE_REFUSES(L, "\xef\xbb\xbf{}", "unexpected character byte 0xef at byte 1"); /* BOM */
    DECODE_REFUSES(L, "/* c */ 1", "unexpected character '/' at byte 1");
    /* the text is read to its length: no NUL terminator is needed, none is a stop */
    CHECK(refused_as(L, "[1]", 2, "unexpected end of text at byte 3"));
    lua_close(L);
}

/* Numbers: exact integers, floats that read back bit for bit. */
static void test_decode_numbers(void)
{
    lua_State *L = new_state(1);
    /* integers of every size up to int64, exact */
    LUA_TRUE(L, "for _, v in ipairs{0, 7, -7, 12, 1 << 31, 1 << 32, (1 << 53) + 1, 1 << 62,\n"
                "                   math.maxinteger, math.mininteger, -1} do\n"
                "  local d = decode(tostring(v))\n"
                "  if math.type(d) ~= 'integer' or d ~= v then error(v) end\n"
                "end\n"
                "return true");
    /* floats: the fast path and strtod give the correctly rounded double */
    LUA_TRUE(L, "local bits = function(x) return string.pack('<d', x) end\n"
                "for _, t in ipairs{'22.4', '1764100812.512345', '0.1', '0.30000000000000004',\n"
                "    '1e22', '1e23', '1.7976931348623157e308', '2.2250738585072014e-308', '5e-324',\n"
                "    '4.9406564584124654e-324', '9007199254740993.0', '123456789012345678.9',\n"
                "    '0.000001', '1E-7', '3.141592653589793', '-2.5e-7', '1e-22', '8.5e-23',\n"
                "    '2.2250738585072011e-308', '1.00000000000000011102230246251565404236316680908203125',\n"
                "    '179769313486231570000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000.0'} do\n"
                "  local d = decode(t)\n"
                "  if math.type(d) ~= 'float' or bits(d) ~= bits(tonumber(t)) then error(t) end\n"
                "end\n"
                "return true");
    /* long tokens: many zeros, many digits; underflow reads as 0 or a subnormal */
    LUA_TRUE(L, "local d = decode('0.' .. string.rep('0', 300) .. '1') return d == 1e-301");
    LUA_TRUE(L, "local d = decode('1' .. string.rep('0', 300) .. '.0') return d == 1e300");
    LUA_TRUE(L, "local d = decode('[1e-400, -1e-400]') return d[1] == 0 and 1/d[2] < 0");
    LUA_TRUE(L, "local d = decode('1' .. string.rep('0', 40) .. 'e-40') return d == 1.0");
    /* what json_write_double and json_encode write reads back bit for bit */
    LUA_TRUE(L, "math.randomseed(7)\n"
                "for i = 1, 20000 do\n"
                "  local x = string.unpack('<d', string.pack('<i8', math.random(math.mininteger, math.maxinteger)))\n"
                "  if x == x and x ~= math.huge and x ~= -math.huge then\n"
                "    local d = decode(encode(x))\n"
                "    if string.pack('<d', d) ~= string.pack('<d', x) then error(encode(x)) end\n"
                "    if math.type(d) == 'integer' ~= (x == math.floor(x) and math.abs(x) <= 2^53 and x ~= 0)\n"
                "      then error('type of ' .. encode(x)) end\n"
                "  end\n"
                "  local y = (math.random() - 0.5) * 10 ^ math.random(-30, 30)\n"
                "  if string.pack('<d', decode(encode(y)) + 0.0) ~= string.pack('<d', y) then error(encode(y)) end\n"
                "end\n"
                "return true");
    lua_close(L);
}

/* Strings: every escape, surrogate pairs, and nothing that is not UTF-8. */
static void test_decode_strings(void)
{
    lua_State *L = new_state(1);
    LUA_TRUE(L, "return decode('\"\\\\\" \\\\\\\\ \\\\/ \\\\b \\\\f \\\\n \\\\r \\\\t\"') == '\" \\\\ / \\b \\f \\n \\r \\t'");
    LUA_TRUE(L, "return decode('\"\\\\u0041\\\\u00e9\\\\u00E9\\\\u2713\\\\u0000x\"') == 'A\\u{e9}\\u{e9}\\u{2713}\\0x'");
    LUA_TRUE(L, "return decode('\"\\\\ud83d\\\\ude00\"') == '\\u{1F600}' and decode('\"\\\\uDBFF\\\\uDFFF\"') == '\\u{10FFFF}'");
    LUA_TRUE(L, "return decode('\"h\\u{e9}llo \\u{2713} \\u{1F600}\"') == 'h\\u{e9}llo \\u{2713} \\u{1F600}'");
    LUA_TRUE(L, "local long = string.rep('ab\\\\n', 2000) local d = decode('\"' .. long .. '\\u{e9}\"')\n"
                "return d == string.rep('ab\\n', 2000) .. '\\u{e9}'");
    LUA_TRUE(L, "local d = decode('{\"k\\\\u00e9\":\"v\",\"\":1}') return d['k\\u{e9}'] == 'v' and d[''] == 1");
    DECODE_REFUSES(L, "\"ab\\qc\"", "invalid escape '\\q' in a string at byte 4");
    DECODE_REFUSES(L, "\"\\x41\"", "invalid escape '\\x' in a string at byte 2");
    DECODE_REFUSES(L, "\"\\u12\"", "invalid \\u escape in a string at byte 2");
    DECODE_REFUSES(L, "\"\\u12G4\"", "invalid \\u escape in a string at byte 2");
    DECODE_REFUSES(L, "\"ab\\ud800\"", "lone surrogate in a string at byte 4");
    DECODE_REFUSES(L, "\"\\udc00\\ud800\"", "lone surrogate in a string at byte 2");
    DECODE_REFUSES(L, "\"\\ud800\\u0041\"", "lone surrogate in a string at byte 2");
    DECODE_REFUSES(L, "\"\\ud800x\"", "lone surrogate in a string at byte 2");
    DECODE_REFUSES(L, "\"abc", "unterminated string at byte 1");
    DECODE_REFUSES(L, "[\"a\\\"]", "unterminated string at byte 2");
    DECODE_REFUSES(L, "\"\\", "unterminated string at byte 1");
    /* raw control characters must be escaped (lua-cjson let them through) */
    DECODE_REFUSES(L, "\"a\nb\"", "unescaped control character in a string at byte 3");
    DECODE_REFUSES(L, "\"tab\there\"", "unescaped control character in a string at byte 5");
    DECODE_REFUSES(L, "[\"\\n\", \"\x1f\"]", "unescaped control character in a string at byte 9");
    DECODE_REFUSES(L, "\"a\\n\x01\"", "unescaped control character in a string at byte 5");
    CHECK(refused_as(L, "\"a\0b\"", 5, "unescaped control character in a string at byte 3"));
    LUA_TRUE(L, "return decode('\"del\\127\"') == 'del\\127'"); /* DEL is not a control here */
    lua_close(L);
}

/* Invalid UTF-8 is refused wherever it is, with the byte where the bad sequence starts;
 * lua-cjson passed every one of these through. */
static void test_decode_refuses_invalid_utf8(void)
{
    lua_State *L = new_state(1);
    DECODE_REFUSES(L, "\"\xff\"", "invalid UTF-8 in a string at byte 2");
    DECODE_REFUSES(L, "\"\x80\"", "invalid UTF-8 in a string at byte 2");          /* stray continuation */
    DECODE_REFUSES(L, "\"\xc0\xaf\"", "invalid UTF-8 in a string at byte 2");      /* overlong '/' */
    DECODE_REFUSES(L, "\"\xc1\xbf\"", "invalid UTF-8 in a string at byte 2");      /* overlong */
    DECODE_REFUSES(L, "\"\xe0\x80\xaf\"", "invalid UTF-8 in a string at byte 2");  /* overlong */
    DECODE_REFUSES(L, "\"\xf0\x80\x80\xaf\"", "invalid UTF-8 in a string at byte 2");
    DECODE_REFUSES(L, "\"\xed\xa0\x80\"", "invalid UTF-8 in a string at byte 2");  /* U+D800 */
    DECODE_REFUSES(L, "\"\xed\xbf\xbf\"", "invalid UTF-8 in a string at byte 2");  /* U+DFFF */
    DECODE_REFUSES(L, "\"\xf4\x90\x80\x80\"", "invalid UTF-8 in a string at byte 2"); /* U+110000 */
    DECODE_REFUSES(L, "\"\xf5\x80\x80\x80\"", "invalid UTF-8 in a string at byte 2");
    DECODE_REFUSES(L, "\"ab\xe2\x82\"", "invalid UTF-8 in a string at byte 4");    /* cut short */
    DECODE_REFUSES(L, "\"\xe2\x82", "invalid UTF-8 in a string at byte 2");        /* at the end */
    DECODE_REFUSES(L, "\"\xc3\"", "invalid UTF-8 in a string at byte 2");
    DECODE_REFUSES(L, "\"\xc3x\"", "invalid UTF-8 in a string at byte 2");
    /* the case: a message body with a Latin-1 byte */
    DECODE_REFUSES(L, "{\"name\": \"caf\xe9\", \"n\": 1}", "invalid UTF-8 in a string at byte 14");
    /* keys, and strings with escapes (the slower path) too */
    DECODE_REFUSES(L, "{\"k\xff\": 1}", "invalid UTF-8 in a string at byte 4");
    DECODE_REFUSES(L, "\"\\n\xff\"", "invalid UTF-8 in a string at byte 4");
    DECODE_REFUSES(L, "\"\\n\xed\xa0\x80\"", "invalid UTF-8 in a string at byte 4");
    /* the edges of each range are fine */
    LUA_TRUE(L, "for _, c in ipairs{0x7f, 0x80, 0x7ff, 0x800, 0xfff, 0x1000, 0xd7ff, 0xe000, 0xffff,\n"
                "                   0x10000, 0x3ffff, 0x40000, 0xfffff, 0x100000, 0x10ffff} do\n"
                "  local s = utf8.char(c)\n"
                "  if decode('\"' .. s .. '\"') ~= s or decode('\"\\\\n' .. s .. '\"') ~= '\\n' .. s then\n"
                "    error(c) end\n"
                "end\n"
                "return true");
    /* every 1- and 2-byte sequence: accepted exactly when Lua's utf8 (strict) accepts it */
    LUA_TRUE(L, "for a = 0x20, 0xff do for b = 0x20, 0xff do\n"
                "  local s = string.char(a, b)\n"
                "  if a ~= 0x22 and a ~= 0x5c and b ~= 0x22 and b ~= 0x5c then\n"
                "    local ok = pcall(decode, '\"' .. s .. '\"')\n"
                "    if ok ~= (utf8.len(s) ~= nil) then error(('%02x %02x'):format(a, b)) end\n"
                "  end\n"
                "end end\n"
                "return true");
    lua_close(L);
}

static void test_check_utf8(void)
{
    CHECK(json_check_utf8("", 0) == 0);
    CHECK(json_check_utf8("plain", 5) == 5);
    CHECK(json_check_utf8("h\xc3\xa9llo \xf0\x9f\x98\x80", 11) == 11);
    CHECK(json_check_utf8("ab\xff", 3) == 2);
    CHECK(json_check_utf8("ab\xe2\x82", 4) == 2);
    CHECK(json_check_utf8("\xed\xa0\x80", 3) == 0);
    CHECK(json_check_utf8("x\xf4\x90\x80\x80", 5) == 1);
    CHECK(json_check_utf8("\xc0\x80", 2) == 0);
    CHECK(json_check_utf8("a\0b", 3) == 3);
}

/* json_encode refuses invalid UTF-8, naming the path and the byte; json_write_string writes
 * U+FFFD for it instead. Both wrote the bytes as they were before. */
static void test_encode_refuses_invalid_utf8(void)
{
    lua_State *L = new_state(1);
    REFUSES(L, "{name = 'ab\\xff'}", "cannot encode invalid UTF-8 at data.name (byte 3 of the string)");
    REFUSES(L, "'caf\\xe9'", "cannot encode invalid UTF-8 at data (byte 4 of the string)");
    REFUSES(L, "{list = {'ok', '\\xed\\xa0\\x80'}}",
            "cannot encode invalid UTF-8 at data.list[2] (byte 1 of the string)");
    REFUSES(L, "{a = {['k\\xc0\\xaf'] = 1}}",
            "cannot encode invalid UTF-8 in a key at data.a (byte 2 of the key)");
    REFUSES(L, "{['x\"y'] = {['\\xf4\\x90\\x80\\x80'] = 1}}",
            "cannot encode invalid UTF-8 in a key at data[\"x\\\"y\"] (byte 1 of the key)");
    REFUSES(L, "{s = 'tab\\t\\n\\xe2\\x82'}", "cannot encode invalid UTF-8 at data.s (byte 6 of the string)");
    REFUSES(L, "{s = string.rep('x', 5000) .. '\\x80'}",
            "cannot encode invalid UTF-8 at data.s (byte 5001 of the string)");
    ENCODES(L, "'\\u{7ff}\\u{800}\\u{ffff}\\u{10000}\\u{10ffff}'",
            "\"\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"");
    ENCODES(L, "{['\\u{e9}'] = '\\n\\u{e9}'}", "{\"\xc3\xa9\":\"\\n\xc3\xa9\"}");

    /* json_write_string: each bad byte becomes U+FFFD, good sequences stay */
    struct { const char *in; size_t len; const char *out; } cases[] = {
        {"ab", 2, "\"ab\""},
        {"a\xff" "b", 3, "\"a\xef\xbf\xbd" "b\""},
        {"\xe2\x82", 2, "\"\xef\xbf\xbd\xef\xbf\xbd\""},
        {"\xc3\xa9\n\x80", 4, "\"\xc3\xa9\\n\xef\xbf\xbd\""},
        {"\xed\xa0\x80", 3, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        strbuf out = STRBUF_INIT;
        CHECK(json_write_string(&out, cases[i].in, cases[i].len) == 0);
        CHECK(out.data && strcmp(out.data, cases[i].out) == 0);
        CHECK(out.data && json_check_utf8(out.data, out.len) == out.len);
        strbuf_free(&out);
    }
    lua_close(L);
}

/* Lua helpers for the empty-array tests: marked(t) is whether t carries the array metatable,
 * empty_array(t) whether it is an empty table so marked, and leaks(v) whether the decoder's
 * sentinel key is left anywhere in v. */
static const char empty_array_helpers[] =
    "function marked(t) return getmetatable(t) == debug.getregistry()['" JSON_ARRAY_MT "'] end\n"
    "function empty_array(t) return type(t) == 'table' and next(t) == nil and marked(t) end\n"
    "function leaks(v)\n"
    "  if type(v) ~= 'table' then return false end\n"
    "  for k, x in pairs(v) do\n"
    "    if type(k) == 'string' and k:find('\\0', 1, true) or leaks(x) then return true end\n"
    "  end\n"
    "  return false\n"
    "end\n";

static void test_decode_keeps_empty_arrays(void)
{
    lua_State *L = new_state(1);
    CHECK(luaL_dostring(L, empty_array_helpers) == LUA_OK);
    /* top level, with and without whitespace inside and around */
    LUA_TRUE(L, "local d = decode('[]') return empty_array(d) and encode(d) == '[]'");
    LUA_TRUE(L, "local d = decode(' [ \\n ] ') return empty_array(d) and encode(d) == '[]'");
    LUA_TRUE(L, "local d = decode('[\\t\\r\\n ]') return empty_array(d) and encode(d) == '[]'");
    /* nested, next to a string that merely looks like one */
    LUA_TRUE(L, "local d = decode('{\"a\":[],\"b\":[[],[1]],\"c\":\"[]\"}')\n"
                "local n = 0 for _ in pairs(d) do n = n + 1 end\n"
                "return n == 3 and empty_array(d.a) and empty_array(d.b[1]) and #d.b == 2\n"
                "  and math.type(d.b[2][1]) == 'integer' and d.b[2][1] == 1 and d.c == '[]'\n"
                "  and not leaks(d)\n"
                "  and encode({a = d.a}) == '{\"a\":[]}' and encode({b = d.b}) == '{\"b\":[[],[1]]}'\n"
                "  and encode({c = d.c}) == '{\"c\":\"[]\"}'");
    /* whitespace inside and between */
    LUA_TRUE(L, "local d = decode('{ \"a\" : [ \\n ] , \"b\" : [ [\\t] , [ 1 ] ] }')\n"
                "return empty_array(d.a) and empty_array(d.b[1]) and encode({a = d.a}) == '{\"a\":[]}'\n"
                "  and encode({b = d.b}) == '{\"b\":[[],[1]]}'");
    /* escaped quotes and backslashes in strings before brackets */
    LUA_TRUE(L, "local d = decode('{\"s\":\"\\\\\"[]\",\"l\":[]}')\n"
                "return d.s == '\"[]' and empty_array(d.l) and not leaks(d)\n"
                "  and encode({s = d.s}) == '{\"s\":\"\\\\\"[]\"}' and encode({l = d.l}) == '{\"l\":[]}'");
    LUA_TRUE(L, "local d = decode('[\"a\\\\\\\\\",[],\"\\\\\\\\[]\",\"[\\\\\"]\",[ ]]')\n"
                "return #d == 5 and d[1] == 'a\\\\' and empty_array(d[2]) and d[3] == '\\\\[]'\n"
                "  and d[4] == '[\"]' and empty_array(d[5])\n"
                "  and encode(d) == '[\"a\\\\\\\\\",[],\"\\\\\\\\[]\",\"[\\\\\"]\",[]]'");
    /* only strings hold brackets: nothing is marked, nothing leaks */
    LUA_TRUE(L, "local d = decode('{\"s\":\"[ ]\",\"t\":{}}')\n"
                "local n = 0 for _ in pairs(d) do n = n + 1 end\n"
                "return n == 2 and d.s == '[ ]' and not marked(d.t) and not marked(d)\n"
                "  and encode({t = d.t}) == '{\"t\":{}}'");
    /* deeply nested, many of them, beside integers, floats, nulls and empty objects */
    LUA_TRUE(L, "local d = decode('[[[]],[],{},[[],{\"x\":[]}],2.0,1.5,null]')\n"
                "return encode(d) == '[[[]],[],{},[[],{\"x\":[]}],2,1.5,null]'\n"
                "  and math.type(d[5]) == 'float' and not leaks(d) and not marked(d[3])");
    LUA_TRUE(L, "local t = '[' .. string.rep('[],', 999) .. '[]]'\n"
                "local d = decode(t) return #d == 1000 and empty_array(d[1000]) and encode(d) == t");
    /* every round trip of what json_encode writes gives the same text */
    LUA_TRUE(L, "for _, t in ipairs{'[]', '[[]]', '{\"a\":[]}', '[{\"a\":[[],[{}]]}]', '[\"[]\",[]]'} do\n"
                "  if encode(decode(t)) ~= t then error(t) end\n"
                "end\n"
                "return true");
    /* error positions count the text as given */
    DECODE_REFUSES(L, "[[],", "unexpected end of text at byte 5");
    DECODE_REFUSES(L, "{\"a\":[], \"b\" 1}", "expected ':' after an object key, found '1' at byte 14");
    DECODE_REFUSES(L, "[] x", "unexpected character after the value: 'x' at byte 4");
    DECODE_REFUSES(L, "\"[]", "unterminated string at byte 1");
    /* the object lua-cjson's sentinel pass misread as an empty array is an object now */
    LUA_TRUE(L, "local d = decode('[[], {\"\\\\u0000sssn[]\":0}]')\n"
                "return empty_array(d[1]) and not marked(d[2]) and d[2]['\\0sssn[]'] == 0");

    /* values below the stack top are left alone */
    lua_settop(L, 0);
    lua_pushinteger(L, 7);
    lua_pushliteral(L, "below");
    json_decode(L, "{\"a\":[], \"b\":[ [] ]}", 20);
    CHECK(lua_gettop(L) == 3);
    CHECK(lua_tointeger(L, 1) == 7);
    CHECK(lua_type(L, 2) == LUA_TSTRING && strcmp(lua_tostring(L, 2), "below") == 0);
    CHECK(lua_type(L, 3) == LUA_TTABLE);
    json_decode(L, "[]", 2);
    CHECK(lua_gettop(L) == 4);
    CHECK(lua_type(L, 4) == LUA_TTABLE && lua_getmetatable(L, 4));
    luaL_getmetatable(L, JSON_ARRAY_MT);
    CHECK(lua_rawequal(L, -1, -2));
    lua_settop(L, 0);
    lua_close(L);

    /* the array metatable is created when missing, named "array" */
    L = new_state(0);
    LUA_TRUE(L, "return debug.getregistry()['" JSON_ARRAY_MT "'] == nil");
    LUA_TRUE(L, "local d = decode('{\"list\":[]}')\n"
                "local mt = debug.getregistry()['" JSON_ARRAY_MT "']\n"
                "return type(mt) == 'table' and mt.__name == 'array' and getmetatable(d.list) == mt\n"
                "  and encode(d) == '{\"list\":[]}'");
    lua_close(L);
}

/* ---- allocation failure while decoding: a Lua error, never a crash or a leak ----------- */

typedef struct budget_state {
    int limited;
    long left; /* growing allocations still allowed while limited */
} budget_state;

static void *budget_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    budget_state *a = ud;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    if (a->limited && nsize > (ptr ? osize : 0) && a->left-- <= 0)
        return NULL;
    return realloc(ptr, nsize);
}

/* Decodes `text` in a fresh state with `budget` growing allocations allowed during the call;
 * returns the status and how many were used. */
static int decode_on_budget(const char *text, long budget, long *used)
{
    budget_state a = {0, 0};
    lua_State *L = lua_newstate(budget_alloc, &a);
    luaL_openlibs(L);
    lua_settop(L, 0);
    lua_pushcfunction(L, l_decode);
    lua_pushstring(L, text);
    a.left = budget;
    a.limited = 1;
    int status = lua_pcall(L, 1, 1, 0);
    a.limited = 0;
    *used = budget - a.left;
    CHECK(lua_gettop(L) == 1);
    if (status == LUA_OK) {
        strbuf out = STRBUF_INIT;
        char err[64];
        lua_getfield(L, 1, "b");
        CHECK(json_encode(L, -1, "data", &out, err, sizeof err) == 0);
        CHECK(out.data && strcmp(out.data, "[[],[1]]") == 0);
        strbuf_free(&out);
    } else if (status != LUA_ERRMEM) {
        fprintf(stderr, "  budget %ld: %s\n", budget, lua_tostring(L, -1));
    }
    lua_close(L);
    return status;
}

/* A memory error at any allocation of the decoder (tables, strings, the array metatable, the
 * string buffer, the copy of a long number, the Lua stack) raises LUA_ERRMEM, and leaks
 * nothing (LeakSanitizer checks this under make test SANITIZE=1). */
static void test_decode_raises_when_lua_is_out_of_memory(void)
{
    char text[8192];
    int n = snprintf(text, sizeof text,
                     "{\"a\":[],\"b\":[[],[1.0]],\"c\":\"[]\",\"d\":[ ],\"e\":\"x\\u00e9\\n\","
                     "\"g\":0.%0200d1,\"h\":[", 0);
    for (int i = 0; i < 100; i++)
        n += snprintf(text + n, sizeof text - (size_t)n, "%s{\"k%d\":%d}", i ? "," : "", i % 40, i);
    n += snprintf(text + n, sizeof text - (size_t)n, "],\"s\":\"");
    for (int i = 0; i < 1500; i++)
        n += snprintf(text + n, sizeof text - (size_t)n, "ab\\t");
    snprintf(text + n, sizeof text - (size_t)n, "\"}");
    long used, total;
    CHECK(decode_on_budget(text, 1000000, &total) == LUA_OK);
    CHECK(total > 100);
    for (long budget = 0; budget < total; budget++)
        CHECK(decode_on_budget(text, budget, &used) == LUA_ERRMEM);
    CHECK(decode_on_budget(text, total, &used) == LUA_OK);
}

static void test_random_values_round_trip(void)
{
    lua_State *L = new_state(1);
    LUA_TRUE(L, "math.randomseed(42)\n"
                "local function gen(d)\n"
                "  local r = math.random(d > 4 and 6 or 8)\n"
                "  if r == 1 then return math.random(math.mininteger, math.maxinteger)\n"
                "  elseif r == 2 then return (math.random() - 0.5) * 10 ^ math.random(-300, 300)\n"
                "  elseif r == 3 then local b = {} for i = 1, math.random(0, 12) do\n"
                "    b[i] = math.random(4) == 1 and string.char(math.random(0, 127))\n"
                "      or utf8.char(math.random(2) == 1 and math.random(0x80, 0xd7ff)\n"
                "        or math.random(0xe000, 0x10ffff)) end\n"
                "    return table.concat(b)\n"
                "  elseif r == 4 then return math.random(2) == 1\n"
                "  elseif r == 5 then return null\n"
                "  elseif r == 6 then return math.random(-1000, 1000)\n"
                "  elseif r == 7 then local t = {} for i = 1, math.random(0, 5) do t[i] = gen(d + 1) end\n"
                "    return t\n"
                "  else local t = {} for _ = 1, math.random(0, 5) do t['k' .. math.random(100)] = gen(d + 1) end\n"
                "    return t end\n"
                "end\n"
                "local function same(a, b)\n"
                "  if math.type(a) == 'integer' then return math.type(b) == 'integer' and a == b end\n"
                "  if math.type(a) == 'float' then\n"
                "    if a == math.floor(a) and math.abs(a) <= 2^53 and string.pack('<d', a) ~= string.pack('<d', -0.0) then\n"
                "      return math.type(b) == 'integer' and a == b end\n"
                "    return math.type(b) == 'float' and string.pack('<d', a) == string.pack('<d', b) end\n"
                "  if type(a) ~= 'table' then return a == b end\n"
                "  if type(b) ~= 'table' then return false end\n"
                "  local n = 0\n"
                "  for k, v in pairs(a) do n = n + 1 if not same(v, b[k]) then return false end end\n"
                "  for _ in pairs(b) do n = n - 1 end\n"
                "  return n == 0\n"
                "end\n"
                "for _ = 1, 2000 do\n"
                "  local v = gen(0)\n"
                "  local text, err = encode(v)\n"
                "  if not text then error(err) end\n"
                "  if not same(v, decode(text)) then error('mismatch: ' .. text) end\n"
                "  if encode(decode(text)) ~= text and not text:find('{.*,') then error('text: ' .. text) end\n"
                "end\n"
                "-- random bytes: written and read back exactly when they are UTF-8, else refused\n"
                "for _ = 1, 5000 do\n"
                "  local b = {} for i = 1, math.random(1, 6) do b[i] = string.char(math.random(0, 255)) end\n"
                "  local s = table.concat(b)\n"
                "  local text, err = encode(s)\n"
                "  if utf8.len(s) then\n"
                "    if not text or decode(text) ~= s then error('refused ' .. s:byte(1, -1)) end\n"
                "  elseif text or not err:find('^cannot encode invalid UTF%-8 at data %(byte %d+ of the string%)$') then\n"
                "    error('accepted ' .. s:byte(1, -1)) end\n"
                "end\n"
                "return true");
    lua_close(L);
}

/* ---- allocation failure: json_encode must not raise even when Lua cannot allocate ------- */

typedef struct alloc_state {
    int refuse;
} alloc_state;

static void *refusing_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    alloc_state *a = ud;
    (void)osize;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    if (a->refuse && nsize > osize)
        return NULL;
    return realloc(ptr, nsize);
}

static void test_never_raises_when_lua_is_out_of_memory(void)
{
    alloc_state a = {0};
    lua_State *L = lua_newstate(refusing_alloc, &a);
    luaL_openlibs(L);
    /* a table with a metatable makes the encoder look up JSON_ARRAY_MT, a string this state
     * has never interned: creating it would need memory */
    CHECK(luaL_dostring(L, "return {list = setmetatable({}, {}), n = 1}") == LUA_OK);
    int top = lua_gettop(L);
    strbuf out = STRBUF_INIT;
    char err[128];
    a.refuse = 1;
    int rc = json_encode(L, -1, "data", &out, err, sizeof err);
    a.refuse = 0;
    CHECK(rc == 0);
    CHECK(lua_gettop(L) == top);
    CHECK(out.data && (strcmp(out.data, "{\"list\":{},\"n\":1}") == 0
                       || strcmp(out.data, "{\"n\":1,\"list\":{}}") == 0));
    strbuf_free(&out);
    lua_close(L);
}

int main(void)
{
    RUN(test_scalars);
    RUN(test_integers_round_trip_exactly);
    RUN(test_integers_beyond_int64_are_refused);
    RUN(test_floats_round_trip_bit_exactly);
    RUN(test_strings_are_escaped);
    RUN(test_nested_arrays_and_objects);
    RUN(test_empty_tables);
    RUN(test_refusals_name_the_path);
    RUN(test_nesting_limit);
    RUN(test_stack_stays_balanced);
    RUN(test_error_buffer_is_bounded);
    RUN(test_appends_to_existing_text);
    RUN(test_decode);
    RUN(test_decode_refuses_what_rfc_8259_does_not_allow);
    RUN(test_decode_numbers);
    RUN(test_decode_strings);
    RUN(test_decode_refuses_invalid_utf8);
    RUN(test_check_utf8);
    RUN(test_encode_refuses_invalid_utf8);
    RUN(test_decode_keeps_empty_arrays);
    RUN(test_decode_raises_when_lua_is_out_of_memory);
    RUN(test_random_values_round_trip);
    RUN(test_never_raises_when_lua_is_out_of_memory);
    return check_report();
}
