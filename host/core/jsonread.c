/* jsonread.c - walking JSON text from C (see jsonread.h): a scanner that finds where each
 * value ends, and readers of strings and numbers. Recursion is bounded by JSON_READ_DEPTH. */
#include "core/jsonread.h"

#include <stdlib.h>
#include <string.h>

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* p at the opening quote; returns the byte after the closing one, or NULL. */
static const char *scan_string(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            return p + 1;
        if (c < 0x20)
            return NULL;
        if (c != '\\')
            continue;
        if (++p >= end)
            return NULL;
        if (*p == 'u') {
            if (end - p < 5)
                return NULL;
            for (int i = 1; i <= 4; i++)
                if (hex_value(p[i]) < 0)
                    return NULL;
            p += 4;
        } else if (!strchr("\"\\/bfnrt", *p) || !*p) {
            return NULL;
        }
    }
    return NULL;
}

static const char *scan_number(const char *p, const char *end)
{
    if (p < end && *p == '-')
        p++;
    if (p >= end)
        return NULL;
    if (*p == '0')
        p++;
    else if (is_digit(*p))
        while (p < end && is_digit(*p))
            p++;
    else
        return NULL;
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !is_digit(*p))
            return NULL;
        while (p < end && is_digit(*p))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || !is_digit(*p))
            return NULL;
        while (p < end && is_digit(*p))
            p++;
    }
    return p;
}

static const char *scan_literal(const char *p, const char *end, const char *word)
{
    size_t n = strlen(word);
    return (size_t)(end - p) >= n && memcmp(p, word, n) == 0 ? p + n : NULL;
}

static const char *scan_value(const char *p, const char *end, int depth);

/* p at '{' or '['; returns the byte after the matching close, or NULL. */
static const char *scan_container(const char *p, const char *end, int depth)
{
    char close = *p == '{' ? '}' : ']';
    int object = *p == '{';
    if (depth >= JSON_READ_DEPTH)
        return NULL;
    p = skip_ws(p + 1, end);
    if (p < end && *p == close)
        return p + 1;
    for (;;) {
        if (object) {
            if (p >= end || *p != '"' || !(p = scan_string(p, end)))
                return NULL;
            p = skip_ws(p, end);
            if (p >= end || *p != ':')
                return NULL;
            p = skip_ws(p + 1, end);
        }
        if (!(p = scan_value(p, end, depth + 1)))
            return NULL;
        p = skip_ws(p, end);
        if (p >= end)
            return NULL;
        if (*p == close)
            return p + 1;
        if (*p != ',')
            return NULL;
        p = skip_ws(p + 1, end);
    }
}

static const char *scan_value(const char *p, const char *end, int depth)
{
    if (p >= end)
        return NULL;
    switch (*p) {
    case '{':
    case '[':
        return scan_container(p, end, depth);
    case '"':
        return scan_string(p, end);
    case 't':
        return scan_literal(p, end, "true");
    case 'f':
        return scan_literal(p, end, "false");
    case 'n':
        return scan_literal(p, end, "null");
    default:
        return scan_number(p, end);
    }
}

int json_read_value(const char *s, size_t len, json_span *out)
{
    const char *end = s + len, *p = skip_ws(s, end);
    const char *after = scan_value(p, end, 0);
    if (!after || skip_ws(after, end) != end)
        return -1;
    out->p = p;
    out->len = (size_t)(after - p);
    return 0;
}

int json_read_next(json_span v, size_t *pos, json_span *key, json_span *val)
{
    const char *start = v.p, *end = v.p + v.len;
    if (v.len < 2 || (*start != '{' && *start != '['))
        return -1;
    int object = *start == '{';
    char close = object ? '}' : ']';
    const char *p = skip_ws(start + (*pos ? *pos : 1), end);
    if (*pos) { /* after an item: a comma or the end */
        if (p >= end)
            return -1;
        if (*p == close)
            return 0;
        if (*p != ',')
            return -1;
        p = skip_ws(p + 1, end);
    } else if (p < end && *p == close) {
        return 0;
    }
    if (object) {
        const char *k = p;
        if (p >= end || *p != '"' || !(p = scan_string(p, end)))
            return -1;
        if (key)
            *key = (json_span){k, (size_t)(p - k)};
        p = skip_ws(p, end);
        if (p >= end || *p != ':')
            return -1;
        p = skip_ws(p + 1, end);
    }
    const char *item = p;
    if (!(p = scan_value(p, end, 1)))
        return -1;
    *val = (json_span){item, (size_t)(p - item)};
    *pos = (size_t)(p - start);
    return 1;
}

/* Unescaping: each byte of the string's text goes to emit(ctx, byte); -1 when emit fails. */
typedef int (*emit_fn)(void *ctx, const char *bytes, size_t n);

static int put_utf8(emit_fn emit, void *ctx, unsigned long cp)
{
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return emit(ctx, b, n);
}

static unsigned long hex4(const char *p)
{
    unsigned long v = 0;
    for (int i = 0; i < 4; i++)
        v = v * 16 + (unsigned long)hex_value(p[i]);
    return v;
}

static int unescape(json_span v, emit_fn emit, void *ctx)
{
    if (v.len < 2 || v.p[0] != '"' || scan_string(v.p, v.p + v.len) != v.p + v.len)
        return -1;
    const char *p = v.p + 1, *end = v.p + v.len - 1;
    while (p < end) {
        const char *run = p;
        while (p < end && *p != '\\')
            p++;
        if (p > run && emit(ctx, run, (size_t)(p - run)) < 0)
            return -1;
        if (p >= end)
            break;
        char c = p[1];
        p += 2;
        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        if (c != 'u') {
            if (emit(ctx, &to[strchr(from, c) - from], 1) < 0)
                return -1;
            continue;
        }
        unsigned long cp = hex4(p);
        p += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
            unsigned long lo = hex4(p + 2);
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            }
        }
        if (cp >= 0xD800 && cp <= 0xDFFF)
            cp = 0xFFFD; /* a lone surrogate */
        if (put_utf8(emit, ctx, cp) < 0)
            return -1;
    }
    return 0;
}

static int emit_strbuf(void *ctx, const char *bytes, size_t n) { return strbuf_append(ctx, bytes, n); }

int json_read_string(json_span v, strbuf *out) { return unescape(v, emit_strbuf, out); }

typedef struct compare_ctx {
    const char *s; /* what is left to match */
} compare_ctx;

static int emit_compare(void *ctx, const char *bytes, size_t n)
{
    compare_ctx *c = ctx;
    if (strlen(c->s) < n || memcmp(c->s, bytes, n) != 0)
        return -1;
    c->s += n;
    return 0;
}

int json_read_string_is(json_span v, const char *s)
{
    compare_ctx c = {s};
    return unescape(v, emit_compare, &c) == 0 && *c.s == '\0';
}

int json_read_member(json_span v, const char *key, json_span *out)
{
    if (v.len == 0 || v.p[0] != '{')
        return 0;
    size_t pos = 0;
    json_span k, val;
    int rc;
    while ((rc = json_read_next(v, &pos, &k, &val)) == 1)
        if (json_read_string_is(k, key)) {
            *out = val;
            return 1;
        }
    return rc < 0 ? -1 : 0;
}

int json_read_number(json_span v, double *out)
{
    if (v.len == 0 || v.len > 64 || scan_number(v.p, v.p + v.len) != v.p + v.len)
        return -1;
    char buf[65];
    memcpy(buf, v.p, v.len);
    buf[v.len] = '\0';
    *out = strtod(buf, NULL);
    return 0;
}

int json_read_is_null(json_span v) { return v.len == 4 && memcmp(v.p, "null", 4) == 0; }
