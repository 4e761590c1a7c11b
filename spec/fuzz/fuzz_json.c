/* fuzz_json.c - libFuzzer harness for host/json.c: turns fuzz bytes into a Lua value, encodes
 * it with json_encode and checks that it either refuses cleanly or writes text that lua-cjson
 * and json_decode read back as the same value. `make fuzz FUZZ_SECONDS=60` builds and runs it
 * (needs clang: apt-get install clang); by hand, from the top of the tree:
 *
 *   clang -std=c11 -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
 *       -fno-sanitize-recover=all -Ihost -I/usr/include/lua5.4 -o /tmp/fuzz_json \
 *       spec/fuzz/fuzz_json.c host/json.c host/strbuf.c -llua5.4 -lm
 *   mkdir -p /tmp/fuzz_json_corpus && /tmp/fuzz_json -max_total_time=60 /tmp/fuzz_json_corpus
 *
 * Input: if the bytes are JSON that the default cjson decodes (NaN, Infinity, hex numbers and
 * nesting up to 1000 are accepted there), that value is used; otherwise the bytes drive the
 * small grammar in build() below, which also makes odd floats, NaN/inf, deep nesting, cycles,
 * non-UTF-8 strings, bad keys, functions and userdata. */
#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_OPEN 300 /* tables open at once while building */

typedef struct input {
    const uint8_t *p;
    size_t n;
} input;

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_json: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

static unsigned byte(input *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

static uint64_t bytes64(input *in)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | byte(in);
    return v;
}

static const double interesting[] = {
    0.1, 1.0 / 3, 1e300, -1e300, -0.0, 0.0, 22.4, 1764100000.123456, 9007199254740992.0,
    9007199254740994.0, 9223372036854775808.0, -9223372036854775808.0, 5e-324,
    2.2250738585072014e-308,
    1.7976931348623157e308, 1e20, 1e21, 1e-7, 123456789012345.0, 0.30000000000000004, 3.0, -2.5,
    NAN, INFINITY, -INFINITY,
};

static int dummy_function(lua_State *L) { return lua_gettop(L); }

/* Pushes a key for the next field of the table at `t` following `mode`. */
static void push_key(lua_State *L, int t, unsigned mode, input *in)
{
    switch (mode % 8) {
    case 1: { /* string key, any bytes */
        size_t len = byte(in) % 8;
        char buf[8];
        for (size_t i = 0; i < len; i++)
            buf[i] = (char)byte(in);
        lua_pushlstring(L, buf, len);
        break;
    }
    case 2: /* integer key, often sparse */
        lua_pushinteger(L, (lua_Integer)(int8_t)byte(in));
        break;
    case 3:
        lua_pushnumber(L, 0.5 + byte(in));
        break;
    case 4:
        lua_pushboolean(L, (int)(byte(in) & 1));
        break;
    case 5: { /* identifier-like key */
        char k[2] = {(char)('a' + byte(in) % 26), 0};
        lua_pushstring(L, k);
        break;
    }
    default: /* next array slot */
        lua_pushinteger(L, (lua_Integer)lua_rawlen(L, t) + 1);
        break;
    }
}

/* Builds a value from the bytes; runs under lua_pcall with the input as light userdata and
 * returns the root table. Tables being filled sit on the stack above the input. */
static int build(lua_State *L)
{
    input *in = lua_touserdata(L, 1);
    luaL_checkstack(L, MAX_OPEN + 10, "build");
    lua_getfield(L, LUA_REGISTRYINDEX, JSON_ARRAY_MT);
    int array_mt = lua_gettop(L); /* 2 */
    lua_newtable(L);              /* root, at 3 */
    int first = array_mt + 1;
    unsigned keymode = 0;
    while (in->n > 0) {
        int cur = lua_gettop(L);
        unsigned op = byte(in) % 16;
        switch (op) {
        case 0:
            lua_pushinteger(L, (lua_Integer)bytes64(in));
            break;
        case 1: {
            uint64_t bits = bytes64(in);
            double d;
            memcpy(&d, &bits, sizeof d);
            lua_pushnumber(L, d);
            break;
        }
        case 2:
            lua_pushnumber(L, interesting[byte(in) % (sizeof interesting / sizeof interesting[0])]);
            break;
        case 3:
            lua_pushinteger(L, (lua_Integer)(int8_t)byte(in));
            break;
        case 4: {
            size_t len = byte(in) % 32;
            char buf[32];
            for (size_t i = 0; i < len; i++)
                buf[i] = (char)byte(in);
            lua_pushlstring(L, buf, len);
            break;
        }
        case 5:
            lua_pushboolean(L, (int)(byte(in) & 1));
            break;
        case 6:
            lua_pushlightuserdata(L, NULL); /* cjson.null */
            break;
        case 7: /* open a table: it becomes the current one */
            if (cur - first + 1 < MAX_OPEN) {
                lua_newtable(L);
                continue;
            }
            continue;
        case 8: /* close the current table: it becomes a value of its parent */
            if (cur == first)
                continue;
            break;
        case 9: { /* a chain of nested tables, possibly past the encoder's limit */
            int levels = (int)byte(in) * 2;
            int as_array = levels & 2;
            lua_newtable(L);
            for (int i = 0; i < levels; i++) {
                lua_createtable(L, 1, 1);
                lua_insert(L, -2);
                if (as_array)
                    lua_rawseti(L, -2, 1);
                else
                    lua_setfield(L, -2, "a");
            }
            break;
        }
        case 10: /* one of the open tables again: a cycle */
            lua_pushvalue(L, first + (int)(byte(in) % (unsigned)(cur - first + 1)));
            break;
        case 11: /* mark the current table as an array */
            lua_pushvalue(L, array_mt);
            lua_setmetatable(L, cur);
            continue;
        case 12:
            if (byte(in) & 1)
                lua_pushcfunction(L, dummy_function);
            else
                lua_newuserdatauv(L, 8, 0);
            break;
        case 13:
            lua_pushlightuserdata(L, (void *)in);
            break;
        case 14:
            keymode = byte(in);
            continue;
        default: /* a shared table: the same one twice is fine */
            lua_newtable(L);
            lua_pushinteger(L, 1);
            lua_rawseti(L, -2, 1);
            lua_pushvalue(L, -1);
            push_key(L, cur, 0, in);
            lua_insert(L, -2);
            lua_rawset(L, cur);
            break;
        }
        /* the value on top goes into the table below it */
        int t = lua_gettop(L) - 1;
        push_key(L, t, keymode, in);
        lua_insert(L, -2);
        lua_rawset(L, t);
        keymode = 0;
    }
    lua_settop(L, first);
    return 1;
}

static int is_null(lua_State *L, int i)
{
    return lua_isnoneornil(L, i)
           || (lua_type(L, i) == LUA_TLIGHTUSERDATA && lua_touserdata(L, i) == NULL);
}

static int same_bits(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

/* Whether the decoded value at b matches the encoded value at a. `ints`: b was read by
 * json_decode, so integral numbers within +-2^53 (except -0.0) must be integers there. */
static int same(lua_State *L, int a, int b, int ints, int depth)
{
    if (depth > 250)
        die("comparison nested too deep", NULL);
    if (is_null(L, a))
        return lua_type(L, b) == LUA_TLIGHTUSERDATA && lua_touserdata(L, b) == NULL;
    int ta = lua_type(L, a);
    if (ta != lua_type(L, b))
        return 0;
    switch (ta) {
    case LUA_TBOOLEAN:
        return lua_toboolean(L, a) == lua_toboolean(L, b);
    case LUA_TSTRING: {
        size_t la, lb;
        const char *sa = lua_tolstring(L, a, &la), *sb = lua_tolstring(L, b, &lb);
        return la == lb && memcmp(sa, sb, la) == 0;
    }
    case LUA_TNUMBER: {
        double x = lua_isinteger(L, a) ? (double)lua_tointeger(L, a) : (double)lua_tonumber(L, a);
        int exact = x == floor(x) && fabs(x) <= 9007199254740992.0 && !(x == 0 && signbit(x));
        if (ints && exact)
            return lua_isinteger(L, b) && (double)lua_tointeger(L, b) == x;
        if (lua_isinteger(L, b))
            return 0;
        return same_bits(x, (double)lua_tonumber(L, b));
    }
    case LUA_TTABLE: {
        if (!lua_checkstack(L, 4))
            die("out of Lua stack", NULL);
        lua_Integer na = 0, nb = 0;
        lua_pushnil(L);
        while (lua_next(L, a)) {
            na++;
            lua_pushvalue(L, -2);
            lua_rawget(L, b);
            int ok = same(L, lua_gettop(L) - 1, lua_gettop(L), ints, depth + 1);
            lua_pop(L, 2);
            if (!ok) {
                lua_pop(L, 1);
                return 0;
            }
        }
        lua_pushnil(L);
        while (lua_next(L, b)) {
            nb++;
            lua_pop(L, 1);
        }
        return na == nb;
    }
    default:
        return 0;
    }
}

/* decoder(text) under pcall; aborts when the text is not readable. */
static void decode_with(lua_State *L, int fn, const strbuf *text)
{
    lua_pushvalue(L, fn);
    lua_pushlstring(L, text->data, text->len);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        fprintf(stderr, "text: %.*s\n", (int)(text->len > 2000 ? 2000 : text->len), text->data);
        die("encoder output does not decode", lua_tostring(L, -1));
    }
}

static int our_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    json_decode(L, s, len);
    return 1;
}

/* Encodes the value at v and checks the outcome; returns 0 when the encoder refused it. */
static int encode_and_check(lua_State *L, int v, int cjson_decode, strbuf *out)
{
    char err[512];
    strbuf_reset(out);
    int top = lua_gettop(L);
    int rc = json_encode(L, v, "data", out, err, sizeof err);
    if (lua_gettop(L) != top)
        die("json_encode changed the stack", NULL);
    if (rc != 0) {
        if (rc != -1 || strncmp(err, "", 1) == 0 || !strstr(err, " at data"))
            die("bad refusal", err);
        return 0;
    }
    /* lua-cjson accepts raw control bytes inside strings; RFC 8259 does not, and the encoder
     * writes no whitespace, so no byte below 0x20 may appear at all */
    if (!out->data)
        die("no output", NULL);
    for (size_t i = 0; i < out->len; i++) {
        if ((unsigned char)out->data[i] < 0x20)
            die("output holds a raw control byte", NULL);
    }
    decode_with(L, cjson_decode, out);
    if (!same(L, v, lua_gettop(L), 0, 0)) {
        fprintf(stderr, "text: %.*s\n", (int)(out->len > 2000 ? 2000 : out->len), out->data);
        die("cjson reads back a different value", NULL);
    }
    lua_pop(L, 1);
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = luaL_newstate();
    if (!L)
        return 0;
    luaL_openlibs(L);
    luaL_newmetatable(L, JSON_ARRAY_MT);
    lua_pop(L, 1);
    if (luaL_dostring(L, "return require('cjson').decode") != LUA_OK)
        die("cannot load cjson", lua_tostring(L, -1));
    int cjson_decode = lua_gettop(L);
    lua_pushcfunction(L, our_decode);
    int json_dec = lua_gettop(L);

    /* the value: the input as JSON, else built by the grammar */
    lua_pushvalue(L, cjson_decode);
    lua_pushlstring(L, (const char *)data, size);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        lua_pop(L, 1);
        input in = {data, size};
        lua_pushcfunction(L, build);
        lua_pushlightuserdata(L, &in);
        if (lua_pcall(L, 1, 1, 0) != LUA_OK)
            die("build failed", lua_tostring(L, -1));
    }
    int v = lua_gettop(L);

    strbuf out = STRBUF_INIT;
    if (encode_and_check(L, v, cjson_decode, &out)) {
        /* json_decode reads it back with integers where the value was integral */
        decode_with(L, json_dec, &out);
        int d = lua_gettop(L);
        if (!same(L, v, d, 1, 0)) {
            fprintf(stderr, "text: %.*s\n", (int)(out.len > 2000 ? 2000 : out.len), out.data);
            die("json_decode reads back a different value", NULL);
        }
        /* what was read back encodes again, to a text that reads back the same */
        if (!encode_and_check(L, d, cjson_decode, &out))
            die("decoded value is refused", NULL);
        lua_pop(L, 1);
    }
    if (lua_gettop(L) != v)
        die("stack not balanced", NULL);
    strbuf_free(&out);
    lua_close(L);
    return 0;
}
