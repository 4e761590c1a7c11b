/* fuzz_json_text.c - libFuzzer harness for host/core/json_text.c, the checker that compacts a
 * message or registry body as text without building Lua values. Its rules are json_decode's,
 * so json_decode is the oracle: any bytes are accepted by both or refused by both (the
 * checker's refusal reading "invalid JSON: ... at byte N", or out of memory), what it accepts
 * is no longer than the input, checks again to itself (compacting is idempotent) and decodes.
 * `make fuzz` builds and runs it (needs clang); by hand, from the top of the tree:
 *
 *   clang -std=c11 -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
 *       -fno-sanitize-recover=all -Ihost -I/usr/include/lua5.4 -o /tmp/fuzz_json_text \
 *       spec/fuzz/fuzz_json_text.c host/core/json_text.c host/core/json.c host/core/strbuf.c \
 *       -llua5.4 -lm
 *   mkdir -p /tmp/jt_corpus && /tmp/fuzz_json_text -max_total_time=60 -dict=spec/fuzz/json.dict /tmp/jt_corpus */
#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/json_text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lua_State *L;

static void die(const char *what, const char *text, size_t len)
{
    fprintf(stderr, "fuzz_json_text: %s\ninput (%zu bytes): %.*s\n", what, len, (int)(len > 2000 ? 2000 : len),
            text);
    abort();
}

static int our_decode(lua_State *S)
{
    size_t len;
    const char *s = luaL_checklstring(S, 1, &len);
    json_decode(S, s, len);
    return 1;
}

static int decodes(const char *text, size_t len)
{
    lua_settop(L, 0);
    lua_pushcfunction(L, our_decode);
    lua_pushlstring(L, text, len);
    int ok = lua_pcall(L, 1, 1, 0) == LUA_OK;
    lua_settop(L, 0);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!L) {
        L = luaL_newstate();
        luaL_openlibs(L);
    }
    const char *text = (const char *)data;
    strbuf out = STRBUF_INIT;
    char err[256] = "";
    int ok = json_normalize(text, size, &out, err, sizeof err) == 0;
    if (!ok && err[0] == '\0') { /* out of memory: no verdict */
        strbuf_free(&out);
        return 0;
    }
    if (!ok && strncmp(err, "invalid JSON: ", 14) != 0)
        die("a refusal that does not say 'invalid JSON: '", text, size);
    if (ok != decodes(text, size))
        die(ok ? "the checker accepts what json_decode refuses" : "the checker refuses what json_decode accepts",
            text, size);
    if (ok) {
        if (out.len > size)
            die("compacted text is longer than the input", text, size);
        strbuf again = STRBUF_INIT;
        if (json_normalize(out.data ? out.data : "", out.len, &again, err, sizeof err) != 0)
            die("compacted text does not check again", out.data, out.len);
        if (again.len != out.len || memcmp(again.data, out.data, out.len) != 0)
            die("compacting is not idempotent", out.data, out.len);
        strbuf_free(&again);
    }
    strbuf_free(&out);
    return 0;
}
