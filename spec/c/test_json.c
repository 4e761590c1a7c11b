/* test_json.c - unit tests for host/json.c: json_encode's output and refusals (with paths,
 * invalid UTF-8 included), round trips through lua-cjson's decoder and json_decode (empty
 * arrays included), Lua stack balance, and allocation failures. Built with host/json.c and host/strbuf.c against Lua 5.4;
 * lua-cjson must be installed. */
#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "json.h"

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

/* A state with encode/decode globals, `cjson` loaded, and `array(t)` marking t as an array
 * (the JSON_ARRAY_MT metatable is created only when with_array_mt is set). */
static lua_State *new_state(int with_array_mt)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    lua_register(L, "encode", l_encode);
    lua_register(L, "decode", l_decode);
    if (luaL_dostring(L, "cjson = require 'cjson'") != LUA_OK) {
        fprintf(stderr, "cannot load cjson: %s\n", lua_tostring(L, -1));
        exit(2);
    }
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
    ENCODES(L, "cjson.null", "null");
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
    LUA_TRUE(L, "for _, v in ipairs{0, 1, -1, 1 << 53, -(1 << 53), 123456789012345, 1764100000} do\n"
                "  local t = encode({v = v})\n"
                "  if cjson.decode(t).v ~= v then return false end\n"
                "  local d = decode(t).v\n"
                "  if math.type(d) ~= 'integer' or d ~= v then return false end\n"
                "end\n"
                "return true");
    /* beyond 2^53 the text is exact, lua-cjson's double is not: it stays a float */
    ENCODES(L, "(1 << 53) + 1", "9007199254740993");
    LUA_TRUE(L, "return math.type(decode('9007199254740994')) == 'float'");
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
                "  if bits(cjson.decode(t)[1]) ~= bits(v) then return false end\n"
                "  local d = decode(t)[1]\n"
                "  if math.type(d) ~= 'float' or bits(d) ~= bits(v) then return false end\n"
                "end\n"
                "return true");
    /* integral floats up to 2^53 are written as integers and read back as integers */
    LUA_TRUE(L, "local d = decode(encode({3.0}))[1] return math.type(d) == 'integer' and d == 3");
    ENCODES(L, "1e15", "1000000000000000");
    ENCODES(L, "-2^53", "-9007199254740992");
    LUA_TRUE(L, "local d = decode(encode({1e15, 2^53}))\n"
                "return math.type(d[1]) == 'integer' and d[1] == 1000000000000000\n"
                "  and math.type(d[2]) == 'integer' and d[2] == 1 << 53");
    /* beyond 2^53 a float keeps a fraction or an exponent: it reads back as a float even with
     * a decoder that reads integer tokens as integers */
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
                "  if cjson.decode(t)[v] ~= v or decode(t)[v] ~= v then return false end\n"
                "end\n"
                "return true");
    lua_close(L);
}

static void test_nested_arrays_and_objects(void)
{
    lua_State *L = new_state(1);
    ENCODES(L, "{1, 2, 3}", "[1,2,3]");
    ENCODES(L, "{{1, {2}}, {}}", "[[1,[2]],{}]");
    ENCODES(L, "{a = {b = {c = {1, 'x', true, cjson.null}}}}",
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
                "return not ok and e:find('^invalid JSON: ') ~= nil");
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
    /* strict: no NaN, Infinity or hexadecimal numbers, unlike cjson's defaults */
    LUA_TRUE(L, "for _, text in ipairs{'', 'NaN', '[Infinity]', '[0x10]', '{\"a\" 1}', '[1,]'} do\n"
                "  local ok, e = pcall(decode, text)\n"
                "  if ok or not e:find('^invalid JSON: ') then return false end\n"
                "end\n"
                "return true");
    LUA_TRUE(L, "local v = decode('1') return math.type(v) == 'integer' and v == 1");
    LUA_TRUE(L, "local v = decode('1.5') return math.type(v) == 'float' and v == 1.5");
    LUA_TRUE(L, "local v = decode('[1, 2.0, 1e3, -7, 1.5, -0]')\n"
                "return math.type(v[1]) == 'integer' and math.type(v[2]) == 'integer' and v[2] == 2\n"
                "  and math.type(v[3]) == 'integer' and v[3] == 1000 and math.type(v[4]) == 'integer'\n"
                "  and math.type(v[5]) == 'float' and math.type(v[6]) == 'float' and 1/v[6] < 0");
    LUA_TRUE(L, "local v = decode('{\"a\":[{\"b\":[7, {\"c\": 8}]}], \"d\": 9.25}')\n"
                "return math.type(v.a[1].b[1]) == 'integer' and math.type(v.a[1].b[2].c) == 'integer'\n"
                "  and v.d == 9.25");
    LUA_TRUE(L, "local v = decode('[9007199254740992, -9007199254740992, 9007199254740994]')\n"
                "return math.type(v[1]) == 'integer' and v[1] == 1 << 53 and v[2] == -(1 << 53)\n"
                "  and math.type(v[3]) == 'float'");
    LUA_TRUE(L, "local v = decode('\"s\"') return v == 's'");
    /* null is the cjson.null light userdata (NULL) and is written back as null */
    LUA_TRUE(L, "local v = decode('{\"a\":null,\"b\":[null,1]}')\n"
                "return v.a == cjson.null and v.b[1] == cjson.null and encode(v.b) == '[null,1]'\n"
                "  and encode({a = v.a}) == '{\"a\":null}'");
    LUA_TRUE(L, "return decode('null') == cjson.null");
    /* the host's decoder keeps its own settings and survives the loss of `require` */
    LUA_TRUE(L, "cjson.decode_max_depth(2) cjson.decode_invalid_numbers(true)\n"
                "local a = decode('[[[[1]]]]') require = nil\n"
                "local b = decode('[2]') return a[1][1][1][1] == 1 and b[1] == 2");
    lua_close(L);

    /* json_decode loads cjson by itself in a fresh state */
    L = luaL_newstate();
    luaL_openlibs(L);
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
                "  and math.type(d[5]) == 'integer' and not leaks(d) and not marked(d[3])");
    LUA_TRUE(L, "local t = '[' .. string.rep('[],', 999) .. '[]]'\n"
                "local d = decode(t) return #d == 1000 and empty_array(d[1000]) and encode(d) == t");
    /* every round trip of what json_encode writes gives the same text */
    LUA_TRUE(L, "for _, t in ipairs{'[]', '[[]]', '{\"a\":[]}', '[{\"a\":[[],[{}]]}]', '[\"[]\",[]]'} do\n"
                "  if encode(decode(t)) ~= t then error(t) end\n"
                "end\n"
                "return true");
    /* error positions count the text as given, not the sentinels */
    LUA_TRUE(L, "local ok, e = pcall(decode, '[[],')\n"
                "local ok2, e2 = pcall(cjson.decode, '[[],')\n"
                "return not ok and not ok2 and e == 'invalid JSON: ' .. e2");
    LUA_TRUE(L, "local ok, e = pcall(decode, '{\"a\":[], \"b\" 1}')\n"
                "local ok2, e2 = pcall(cjson.decode, '{\"a\":[], \"b\" 1}')\n"
                "return not ok and not ok2 and e == 'invalid JSON: ' .. e2");
    LUA_TRUE(L, "local ok, e = pcall(decode, '[] x') return not ok and e:find('^invalid JSON: ') ~= nil");
    LUA_TRUE(L, "local ok, e = pcall(decode, '\"[]') return not ok and e:find('^invalid JSON: ') ~= nil");

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

/* Decodes `text` in a fresh state whose decoder is loaded already, with `budget` growing
 * allocations allowed during the call; returns the status and how many were used. */
static int decode_on_budget(const char *text, long budget, long *used)
{
    budget_state a = {0, 0};
    lua_State *L = lua_newstate(budget_alloc, &a);
    luaL_openlibs(L);
    lua_pushcfunction(L, l_decode);
    lua_pushliteral(L, "1");
    if (lua_pcall(L, 1, 1, 0) != LUA_OK)
        exit(2);
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
    }
    lua_close(L);
    return status;
}

/* Memory errors in the pre-pass (sentinel key, metatable, marked copy) and in the walk after
 * cjson (the new empty arrays) raise LUA_ERRMEM and leak nothing. Failures inside cjson's own
 * decode are not tried: lua-cjson 2.1.0 then leaks its scratch buffer. */
static void test_decode_raises_when_lua_is_out_of_memory(void)
{
    const char *text = "{\"a\":[],\"b\":[[],[1.0]],\"c\":\"[]\",\"d\":[ ]}";
    long used;
    CHECK(decode_on_budget(text, 1000000, &used) == LUA_OK);
    long total = used; /* the last three allocations are the walk's three new tables */
    CHECK(total > 6);
    for (long budget = 0; budget < 3; budget++)
        CHECK(decode_on_budget(text, budget, &used) == LUA_ERRMEM);
    for (long budget = total - 3; budget < total; budget++)
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
                "  elseif r == 5 then return cjson.null\n"
                "  elseif r == 6 then return math.random(-1000, 1000)\n"
                "  elseif r == 7 then local t = {} for i = 1, math.random(0, 5) do t[i] = gen(d + 1) end\n"
                "    return t\n"
                "  else local t = {} for _ = 1, math.random(0, 5) do t['k' .. math.random(100)] = gen(d + 1) end\n"
                "    return t end\n"
                "end\n"
                "local function same(a, b)\n"
                "  if math.type(a) == 'integer' and a >= -(1 << 53) and a <= 1 << 53 then\n"
                "    return math.type(b) == 'integer' and a == b end\n"
                "  if math.type(a) == 'integer' then return b == a + 0.0 end\n"
                "  if math.type(a) == 'float' then\n"
                "    if math.type(b) == 'integer' then return a == b and a == math.floor(a) end\n"
                "    return string.pack('<d', a) == string.pack('<d', b) end\n"
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
                "  cjson.decode(text)\n"
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
    RUN(test_check_utf8);
    RUN(test_encode_refuses_invalid_utf8);
    RUN(test_decode_keeps_empty_arrays);
    RUN(test_decode_raises_when_lua_is_out_of_memory);
    RUN(test_random_values_round_trip);
    RUN(test_never_raises_when_lua_is_out_of_memory);
    return check_report();
}
