/* fuzz_json.c - libFuzzer harness for host/core/json.c, both directions. The fuzz bytes are first
 * decoded with json_decode: any bytes must decode or be refused with "invalid JSON: ... at
 * byte N", never crash; what decodes must be UTF-8 text, encode again, and read back as the
 * same value. Bytes that are not JSON drive a small grammar that builds a Lua value, which
 * json_encode must either refuse cleanly or write as UTF-8 text without raw control bytes that
 * json_decode reads back as the same value (integers exact, floats bit for bit).
 * `make fuzz FUZZ_SECONDS=60` builds and runs it (needs clang: apt-get install clang); by hand,
 * from the top of the tree:
 *
 *   clang -std=c11 -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
 *       -fno-sanitize-recover=all -Ihost -I/usr/include/lua5.4 -o /tmp/fuzz_json \
 *       spec/fuzz/fuzz_json.c host/core/json.c host/core/strbuf.c -llua5.4 -lm
 *   mkdir -p /tmp/fuzz_json_corpus && /tmp/fuzz_json -max_total_time=60 -dict=spec/fuzz/json.dict \
 *       /tmp/fuzz_json_corpus
 *
 * The grammar in build() below also makes odd floats, NaN/inf, deep nesting, cycles, non-UTF-8
 * strings and keys, bad keys, functions and userdata. */
#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

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
            lua_pushlightuserdata(L, NULL); /* null (sssn.null) */
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

/* Whether the decoded value at b matches the encoded value at a: integers exactly, integral
 * floats within +-2^53 (except -0.0) as integers (the encoder writes them so), any other float
 * bit for bit. */
static int same(lua_State *L, int a, int b, int depth)
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
        if (lua_isinteger(L, a))
            return lua_isinteger(L, b) && lua_tointeger(L, a) == lua_tointeger(L, b);
        double x = (double)lua_tonumber(L, a);
        if (x == floor(x) && fabs(x) <= 9007199254740992.0 && !(x == 0 && signbit(x)))
            return lua_isinteger(L, b) && (double)lua_tointeger(L, b) == x;
        return !lua_isinteger(L, b) && same_bits(x, (double)lua_tonumber(L, b));
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
            int ok = same(L, lua_gettop(L) - 1, lua_gettop(L), depth + 1);
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

static int our_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    json_decode(L, s, len);
    return 1;
}

/* json_decode(text) under pcall: 1 with the value pushed, or 0 after checking the refusal. */
static int try_decode(lua_State *L, const char *text, size_t len)
{
    lua_pushcfunction(L, our_decode);
    lua_pushlstring(L, text, len);
    int st = lua_pcall(L, 1, 1, 0);
    if (st == LUA_OK)
        return 1;
    if (st != LUA_ERRRUN || lua_type(L, -1) != LUA_TSTRING)
        die("decode failed without a message", NULL);
    const char *msg = lua_tostring(L, -1);
    const char *at = strstr(msg, " at byte ");
    if (strncmp(msg, "invalid JSON: ", 14) != 0 || !at)
        die("bad refusal from json_decode", msg);
    char *end;
    unsigned long long pos = strtoull(at + 9, &end, 10);
    if (*end != '\0' || pos < 1 || pos > (unsigned long long)len + 1)
        die("refusal names a byte outside the text", msg);
    lua_pop(L, 1);
    return 0;
}

/* json_decode(text), which must succeed: the encoder wrote it. */
static void decode_written(lua_State *L, const strbuf *text)
{
    if (!try_decode(L, text->data, text->len)) {
        fprintf(stderr, "text: %.*s\n", (int)(text->len > 2000 ? 2000 : text->len), text->data);
        die("encoder output does not decode", NULL);
    }
}

/* Encodes the value at v and checks the outcome; returns 0 when the encoder refused it, else
 * leaves the text in out. */
static int encode_and_check(lua_State *L, int v, strbuf *out)
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
    /* RFC 8259 wants control bytes escaped, and the encoder writes no whitespace, so no byte
     * below 0x20 may appear at all; and the text must be UTF-8 */
    if (!out->data)
        die("no output", NULL);
    for (size_t i = 0; i < out->len; i++) {
        if ((unsigned char)out->data[i] < 0x20)
            die("output holds a raw control byte", NULL);
    }
    if (json_check_utf8(out->data, out->len) != out->len)
        die("output is not UTF-8", NULL);
    return 1;
}

/* Encodes the value at v; when the encoder takes it, the text must read back as the same
 * value, and that value must encode again to a text that reads back the same. */
static void round_trip(lua_State *L, int v, strbuf *out)
{
    if (!encode_and_check(L, v, out))
        return;
    decode_written(L, out);
    int d = lua_gettop(L);
    if (!same(L, v, d, 0)) {
        fprintf(stderr, "text: %.*s\n", (int)(out->len > 2000 ? 2000 : out->len), out->data);
        die("json_decode reads back a different value", NULL);
    }
    if (!encode_and_check(L, d, out))
        die("decoded value is refused", NULL);
    decode_written(L, out);
    if (!same(L, d, lua_gettop(L), 0))
        die("second round trip differs", NULL);
    lua_pop(L, 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = luaL_newstate();
    if (!L)
        return 0;
    luaL_openlibs(L);
    luaL_newmetatable(L, JSON_ARRAY_MT);
    lua_pop(L, 1);
    int base = lua_gettop(L);
    strbuf out = STRBUF_INIT;

    if (try_decode(L, (const char *)data, size)) {
        /* JSON: only UTF-8 text is, and what it says must survive a round trip */
        if (json_check_utf8((const char *)data, size) != size)
            die("json_decode took text that is not UTF-8", NULL);
        int v = lua_gettop(L);
        if (!encode_and_check(L, v, &out))
            die("a decoded value is refused by the encoder", NULL);
        round_trip(L, v, &out);
    } else {
        input in = {data, size};
        lua_pushcfunction(L, build);
        lua_pushlightuserdata(L, &in);
        if (lua_pcall(L, 1, 1, 0) != LUA_OK)
            die("build failed", lua_tostring(L, -1));
        round_trip(L, lua_gettop(L), &out);
    }
    lua_pop(L, 1);
    if (lua_gettop(L) != base)
        die("stack not balanced", NULL);
    strbuf_free(&out);
    lua_close(L);
    return 0;
}
