/* test_jsonread.c - unit tests for reading JSON text from C (host/core/jsonread.c): members,
 * iteration, strings with escapes, numbers, and malformed text refused without reading past
 * its end. */
#include <string.h>

#include "check.h"
#include "core/jsonread.h"

static json_span span(const char *s) { return (json_span){s, strlen(s)}; }

static int is_value(const char *s)
{
    json_span v;
    return json_read_value(s, strlen(s), &v) == 0;
}

static void test_takes_well_formed_values(void)
{
    const char *good[] = {"{}", "[]", " {\"a\": [1, -2.5e3, true, false, null, \"x\\n\"]} ", "0", "-0.5",
                          "\"\\u00e9\\ud83d\\ude00\"", "{\"a\":{\"b\":{\"c\":[[]]}}}"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        CHECK(is_value(good[i]));
}

static void test_refuses_malformed_text(void)
{
    const char *bad[] = {"", "{", "[1,]", "{\"a\"}", "{\"a\":}", "{a:1}", "01", "1.", "-", "tru", "\"\\x\"",
                         "\"\\u12\"", "\"open", "[1] 2", "{\"a\":1,}", "nul", "\"tab\there\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(!is_value(bad[i]));
    char deep[2 * JSON_READ_DEPTH + 8];
    size_t n = 0;
    for (int i = 0; i < JSON_READ_DEPTH + 2; i++)
        deep[n++] = '[';
    for (int i = 0; i < JSON_READ_DEPTH + 2; i++)
        deep[n++] = ']';
    deep[n] = '\0';
    CHECK(!is_value(deep));
}

static void test_finds_members_by_their_unescaped_name(void)
{
    json_span v, x;
    const char *text = "{\"index\": 7, \"ev\\u0065nts\": [{\"id\": \"a\"}], \"index\": 8}";
    CHECK(json_read_value(text, strlen(text), &v) == 0);
    double d;
    CHECK(json_read_member(v, "index", &x) == 1 && json_read_number(x, &d) == 0 && d == 7); /* the first */
    CHECK(json_read_member(v, "events", &x) == 1 && x.p[0] == '[');
    CHECK(json_read_member(v, "nothing", &x) == 0);
    CHECK(json_read_member(span("[1]"), "index", &x) == 0);
}

static void test_walks_arrays_and_objects(void)
{
    json_span v = span("[ 1 , {\"k\": [2]} , \"s\" ]"), item, key;
    size_t pos = 0, n = 0;
    while (json_read_next(v, &pos, NULL, &item) == 1)
        n++;
    CHECK(n == 3);
    pos = 0;
    CHECK(json_read_next(span("[]"), &pos, NULL, &item) == 0);
    pos = 0;
    json_span o = span("{\"a\": 1, \"b\": null}");
    CHECK(json_read_next(o, &pos, &key, &item) == 1 && json_read_string_is(key, "a"));
    CHECK(json_read_next(o, &pos, &key, &item) == 1 && json_read_string_is(key, "b") && json_read_is_null(item));
    CHECK(json_read_next(o, &pos, &key, &item) == 0);
    pos = 0;
    CHECK(json_read_next(span("7"), &pos, NULL, &item) == -1);
}

static void test_reads_strings_with_escapes(void)
{
    strbuf b = STRBUF_INIT;
    CHECK(json_read_string(span("\"a\\\"b\\\\c\\/d\\n\\u00e9\\ud83d\\ude00\""), &b) == 0);
    CHECK(strcmp(b.data, "a\"b\\c/d\n\xc3\xa9\xf0\x9f\x98\x80") == 0);
    strbuf_reset(&b);
    CHECK(json_read_string(span("\"\\ud800x\""), &b) == 0); /* a lone surrogate */
    CHECK(strcmp(b.data, "\xef\xbf\xbdx") == 0);
    CHECK(json_read_string(span("12"), &b) == -1);
    CHECK(json_read_string_is(span("\"inst/sys\""), "inst/sys"));
    CHECK(!json_read_string_is(span("\"inst/sys\""), "inst/sy"));
    CHECK(!json_read_string_is(span("\"inst\""), "inst/sys"));
    strbuf_free(&b);
}

static void test_reads_numbers(void)
{
    double d;
    CHECK(json_read_number(span("1764101100.25"), &d) == 0 && d == 1764101100.25);
    CHECK(json_read_number(span("-3e2"), &d) == 0 && d == -300);
    CHECK(json_read_number(span("\"3\""), &d) == -1);
    CHECK(json_read_number(span("3x"), &d) == -1);
}

int main(void)
{
    RUN(test_takes_well_formed_values);
    RUN(test_refuses_malformed_text);
    RUN(test_finds_members_by_their_unescaped_name);
    RUN(test_walks_arrays_and_objects);
    RUN(test_reads_strings_with_escapes);
    RUN(test_reads_numbers);
    return check_report();
}
