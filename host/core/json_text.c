/* json_text.c - JSON checked and compacted as text (see json_text.h). A recursive descent
 * like json_decode's, writing tokens instead of pushing values. */
#include "core/json_text.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

#define MAX_DEPTH 200

typedef struct scanner {
    const unsigned char *start, *p, *end;
    strbuf *out;
    char *err;
    size_t errlen;
} scanner;

static int fail_at(scanner *s, const unsigned char *at, const char *what)
{
    if (s->errlen)
        snprintf(s->err, s->errlen, "invalid JSON: %s at byte %zu", what, (size_t)(at - s->start) + 1);
    return -1;
}

static int fail_byte(scanner *s, const unsigned char *at, const char *what)
{
    char msg[96];
    if (at >= s->end)
        return fail_at(s, at, "unexpected end of text");
    if (*at > 0x20 && *at < 0x7f)
        snprintf(msg, sizeof msg, "%s '%c'", what, *at);
    else
        snprintf(msg, sizeof msg, "%s byte 0x%02x", what, *at);
    return fail_at(s, at, msg);
}

static int emit(scanner *s, const unsigned char *from, size_t n)
{
    if (strbuf_append(s->out, (const char *)from, n) < 0) {
        if (s->errlen)
            s->err[0] = '\0';
        return -1;
    }
    return 0;
}

static void skip_space(scanner *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

static long hex4(const unsigned char *p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int c = p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static int scan_string(scanner *s)
{
    const unsigned char *q = s->p + 1, *end = s->end;
    while (1) {
        if (q >= end)
            return fail_at(s, s->p, "unterminated string");
        unsigned c = *q;
        if (c == '"')
            break;
        if (c < 0x20)
            return fail_at(s, q, "unescaped control character in a string");
        if (c == '\\') {
            if (q + 1 >= end)
                return fail_at(s, s->p, "unterminated string");
            unsigned e = q[1];
            if (e == 'u') {
                long cp = end - q >= 6 ? hex4(q + 2) : -1;
                if (cp < 0)
                    return fail_at(s, q, "invalid \\u escape in a string");
                if (cp >= 0xDC00 && cp <= 0xDFFF)
                    return fail_at(s, q, "lone surrogate in a string");
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    long lo = end - q >= 12 && q[6] == '\\' && q[7] == 'u' ? hex4(q + 8) : -1;
                    if (lo < 0xDC00 || lo > 0xDFFF)
                        return fail_at(s, q, "lone surrogate in a string");
                    q += 12;
                } else {
                    q += 6;
                }
                continue;
            }
            if (!strchr("\"\\/bfnrt", (int)e) || e == 0) {
                char what[48];
                if (e > 0x20 && e < 0x7f)
                    snprintf(what, sizeof what, "invalid escape '\\%c' in a string", e);
                else
                    snprintf(what, sizeof what, "invalid escape in a string");
                return fail_at(s, q, what);
            }
            q += 2;
            continue;
        }
        if (c < 0x80) {
            q++;
            continue;
        }
        size_t n = json_check_utf8((const char *)q, (size_t)(end - q) < 4 ? (size_t)(end - q) : 4);
        /* a sequence is valid when the check passes its first character */
        size_t seq = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        if (n < seq || seq == 1)
            return fail_at(s, q, "invalid UTF-8 in a string");
        q += seq;
    }
    const unsigned char *from = s->p;
    s->p = q + 1;
    return emit(s, from, (size_t)(s->p - from));
}

static int scan_number(scanner *s)
{
    const unsigned char *st = s->p, *p = s->p, *end = s->end;
    int is_int = 1;
    if (p < end && *p == '-')
        p++;
    if (p >= end || *p < '0' || *p > '9')
        return fail_byte(s, p, "invalid number: expected a digit, found");
    if (*p == '0') {
        p++;
        if (p < end && *p >= '0' && *p <= '9')
            return fail_at(s, st, "invalid number (leading zero)");
    } else {
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && *p == '.') {
        is_int = 0;
        p++;
        if (p >= end || *p < '0' || *p > '9')
            return fail_byte(s, p, "invalid number: expected a digit after '.', found");
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        is_int = 0;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || *p < '0' || *p > '9')
            return fail_byte(s, p, "invalid number: expected a digit in the exponent, found");
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    size_t n = (size_t)(p - st);
    char buf[400];
    if (n >= sizeof buf) {
        if (is_int)
            return fail_at(s, st, "integer out of range");
        /* a float this long: only its magnitude matters; strtod reads it from a copy */
    }
    char *copy = n < sizeof buf ? buf : malloc(n + 1);
    if (!copy) {
        if (s->errlen)
            s->err[0] = '\0';
        return -1;
    }
    memcpy(copy, st, n);
    copy[n] = '\0';
    errno = 0;
    if (is_int) {
        strtoll(copy, NULL, 10);
        if (errno == ERANGE)
            return fail_at(s, st, "integer out of range");
    } else {
        double v = strtod(copy, NULL);
        if (copy != buf)
            free(copy);
        if (isinf(v))
            return fail_at(s, st, "number out of range");
    }
    s->p = p;
    return emit(s, st, n);
}

static int expect_word(scanner *s, const char *word, size_t n)
{
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return fail_byte(s, s->p, "unexpected character");
    const unsigned char *from = s->p;
    s->p += n;
    return emit(s, from, n);
}

static int scan_value(scanner *s, int depth);

static int scan_container(scanner *s, int depth, unsigned char close, int object)
{
    if (depth >= MAX_DEPTH)
        return fail_at(s, s->p, "nesting deeper than 200");
    if (emit(s, s->p, 1) < 0)
        return -1;
    s->p++;
    skip_space(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        return emit(s, &close, 1);
    }
    while (1) {
        skip_space(s);
        if (object) {
            if (s->p >= s->end || *s->p != '"')
                return fail_byte(s, s->p, "expected a string key in an object, found");
            if (scan_string(s) < 0)
                return -1;
            skip_space(s);
            if (s->p >= s->end || *s->p != ':')
                return fail_byte(s, s->p, "expected ':' after an object key, found");
            if (emit(s, s->p, 1) < 0)
                return -1;
            s->p++;
        }
        if (scan_value(s, depth + 1) < 0)
            return -1;
        skip_space(s);
        if (s->p < s->end && *s->p == ',') {
            if (emit(s, s->p, 1) < 0)
                return -1;
            s->p++;
            continue;
        }
        if (s->p < s->end && *s->p == close) {
            s->p++;
            return emit(s, &close, 1);
        }
        return fail_byte(s, s->p, object ? "expected ',' or '}' in an object, found" : "expected ',' or ']' in an array, found");
    }
}

static int scan_value(scanner *s, int depth)
{
    skip_space(s);
    if (s->p >= s->end)
        return fail_at(s, s->p, "unexpected end of text");
    switch (*s->p) {
    case '{':
        return scan_container(s, depth, '}', 1);
    case '[':
        return scan_container(s, depth, ']', 0);
    case '"':
        return scan_string(s);
    case 't':
        return expect_word(s, "true", 4);
    case 'f':
        return expect_word(s, "false", 5);
    case 'n':
        return expect_word(s, "null", 4);
    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        return scan_number(s);
    default:
        return fail_byte(s, s->p, "unexpected character");
    }
}

int json_normalize(const char *text, size_t len, strbuf *out, char *err, size_t errlen)
{
    if (errlen)
        err[0] = '\0';
    scanner s = {(const unsigned char *)text, (const unsigned char *)text, (const unsigned char *)text + len,
                 out, err, errlen};
    if (scan_value(&s, 0) < 0)
        return -1;
    skip_space(&s);
    if (s.p < s.end)
        return fail_byte(&s, s.p, "unexpected character after the value:");
    return 0;
}
