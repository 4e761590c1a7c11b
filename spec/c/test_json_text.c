/* test_json_text.c - unit tests for host/core/json_text.c: json_normalize accepts exactly what
 * json_decode accepts, with the same error, and writes the value without whitespace. */
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "core/json.h"
#include "core/json_text.h"

static int decode_protected(lua_State *L)
{
    size_t n;
    const char *s = lua_tolstring(L, 1, &n);
    json_decode(L, s, n);
    return 1;
}

/* json_decode's verdict: NULL when it accepts, else its message (static buffer). */
static const char *decoder_says(const char *text, size_t len)
{
    static char msg[256];
    lua_State *L = luaL_newstate();
    lua_pushcfunction(L, decode_protected);
    lua_pushlstring(L, text, len);
    int ok = lua_pcall(L, 1, 1, 0) == LUA_OK;
    if (!ok)
        snprintf(msg, sizeof msg, "%s", lua_tostring(L, -1));
    lua_close(L);
    return ok ? NULL : msg;
}

/* Both agree on text: accepted (then out is `compact`) or refused with the same message. */
static int agrees(const char *text, const char *compact)
{
    size_t len = strlen(text);
    strbuf b = STRBUF_INIT;
    char err[256];
    int rc = json_normalize(text, len, &b, err, sizeof err);
    const char *dec = decoder_says(text, len);
    int ok;
    if (rc == 0)
        ok = !dec && compact && strcmp(b.data ? b.data : "", compact) == 0;
    else
        ok = dec && !compact && strcmp(err, dec) == 0;
    if (!ok)
        fprintf(stderr, "  text %s: normalize %s [%s], decode %s\n", text, rc == 0 ? "ok" : "refused",
                rc == 0 ? (b.data ? b.data : "") : err, dec ? dec : "ok");
    strbuf_free(&b);
    return ok;
}

static void test_accepts_values_and_drops_whitespace(void)
{
    CHECK(agrees(" { \"a\" : [ 1 , 2.5 , -0 , 1e3 ] ,\n\t\"b\" : { } , \"c\" : [ ] } ",
                 "{\"a\":[1,2.5,-0,1e3],\"b\":{},\"c\":[]}"));
    CHECK(agrees("\"caf\\u00e9 \\ud83d\\ude00 \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"",
                 "\"caf\\u00e9 \\ud83d\\ude00 \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\""));
    CHECK(agrees("true", "true"));
    CHECK(agrees(" null ", "null"));
    CHECK(agrees("9223372036854775807", "9223372036854775807"));
    CHECK(agrees("-9223372036854775808", "-9223372036854775808"));
    CHECK(agrees("9007199254740993", "9007199254740993"));
    CHECK(agrees("1e-400", "1e-400"));
    CHECK(agrees("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"", "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\""));
}

static void test_refuses_what_the_decoder_refuses_with_the_same_words(void)
{
    const char *bad[] = {
        "", "  ", "{", "[1,]", "[1 2]", "{\"a\" 1}", "{1:2}", "{\"a\":1,}", "01", "-", "1.", "1e", "1e+",
        "+1", ".5", "NaN", "Infinity", "tru", "nul", "[1]x", "{} {}", "\"abc", "\"a\x01b\"", "\"\\x\"",
        "\"\\u12G4\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"\xff\"", "\"\xc3\"", "\"\xc0\xaf\"",
        "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "9223372036854775808", "-9223372036854775809",
        "99999999999999999999", "1e400", "-1e400", "[\"a\" : 1]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(agrees(bad[i], NULL));
}

static void test_nesting_up_to_200_and_no_deeper(void)
{
    char deep[1000];
    size_t n = 0;
    for (int i = 0; i < 200; i++)
        deep[n++] = '[';
    for (int i = 0; i < 200; i++)
        deep[n++] = ']';
    deep[n] = '\0';
    CHECK(agrees(deep, deep));
    char deeper[1010];
    snprintf(deeper, sizeof deeper, "[%s]", deep);
    CHECK(agrees(deeper, NULL));
}

static void test_a_long_float_is_read_whole(void)
{
    char text[1200] = "0.";
    for (int i = 2; i < 1000; i++)
        text[i] = '5';
    text[1000] = '\0';
    CHECK(agrees(text, text));
}

int main(void)
{
    RUN(test_accepts_values_and_drops_whitespace);
    RUN(test_refuses_what_the_decoder_refuses_with_the_same_words);
    RUN(test_nesting_up_to_200_and_no_deeper);
    RUN(test_a_long_float_is_read_whole);
    return check_report();
}
