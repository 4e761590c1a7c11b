/* json.c - JSON for Lua values (see json.h): an encoder that never raises and names the path of
 * what it refuses, and a strict single-pass decoder that pushes Lua values as it reads. Both
 * check UTF-8; both keep integers exact over the whole int64 range. The decoder allocates
 * only through Lua (strings, tables, userdata), so an error raised anywhere leaks nothing. */
#include "core/json.h"

#include <float.h>
#include <lauxlib.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 200              /* tables nested on one path, for both directions */
#define JSON_MAX_EXACT 9007199254740992.0 /* 2^53: integral doubles up to here are exact */

/* One table on the path being encoded, and which of its children is being encoded now. */
typedef struct frame {
    const void *table;  /* lua_topointer of the table, for cycle detection */
    const char *key;    /* key of the child (a string on the Lua stack), NULL for an element */
    size_t keylen;
    lua_Integer index;  /* array index of the child when key is NULL */
} frame;

typedef struct encoder {
    lua_State *L;
    strbuf *out;
    const char *root;
    char *err;
    size_t errlen;
    int depth;              /* tables on the current path: frames[0..depth-1] */
    int array_mt_known;     /* array_mt has been looked up */
    const void *array_mt;   /* the JSON_ARRAY_MT table, NULL when never registered */
    frame frames[JSON_MAX_DEPTH];
} encoder;

/* For each byte: 0 when it is written as is, the letter after the backslash when it is
 * escaped ('u' for \u00XX), and 1 for bytes >= 0x80, which start a UTF-8 sequence to check. */
#define HIGH8 1, 1, 1, 1, 1, 1, 1, 1
#define HIGH128 HIGH8, HIGH8, HIGH8, HIGH8, HIGH8, HIGH8, HIGH8, HIGH8, \
                HIGH8, HIGH8, HIGH8, HIGH8, HIGH8, HIGH8, HIGH8, HIGH8
static const char escape_of[256] = {
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'b', 't', 'n', 'u', 'f', 'r', 'u', 'u',
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u',
    ['"'] = '"',
    ['\\'] = '\\',
    [0x80] = HIGH128,
};

/* ---- UTF-8 ------------------------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at s (s < end, *s >= 0x80), or 0 when there is
 * none (Unicode 15, table 3-7): no overlong forms, no surrogates U+D800..U+DFFF, nothing
 * above U+10FFFF, no sequence cut short by `end`, no stray continuation byte. */
static size_t utf8_sequence(const unsigned char *s, const unsigned char *end)
{
    unsigned c = s[0], lo = 0x80, hi = 0xBF;
    size_t n;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else {
        return 0;
    }
    if ((size_t)(end - s) < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    }
    return n;
}

size_t json_check_utf8(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s, *end = u + len;
    size_t i = 0;
    while (i < len) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = utf8_sequence(u + i, end);
        if (!n)
            return i;
        i += n;
    }
    return len;
}

/* ---- error messages ---------------------------------------------------------------------- */

/* Bounded writer into the caller's err buffer; output is cut at errlen - 1 bytes. */
typedef struct errbuf {
    char *buf;
    size_t cap;
    size_t len;
} errbuf;

static void err_append(errbuf *w, const char *s, size_t n)
{
    if (w->len + 1 >= w->cap)
        return;
    size_t room = w->cap - 1 - w->len;
    if (n > room)
        n = room;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

static void err_puts(errbuf *w, const char *s) { err_append(w, s, strlen(s)); }

static int is_identifier(const char *s, size_t n)
{
    if (n == 0 || (s[0] >= '0' && s[0] <= '9'))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && c != '_')
            return 0;
    }
    return 1;
}

/* Writes `key` as ["key"]: quotes and backslashes escaped, control bytes as \ddd. */
static void err_quoted_key(errbuf *w, const char *s, size_t n)
{
    err_puts(w, "[\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char tmp[8];
        if (c == '"' || c == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            err_append(w, tmp, 2);
        } else if (c < 0x20 || c == 0x7f) {
            int len = snprintf(tmp, sizeof tmp, "\\%u", (unsigned)c);
            err_append(w, tmp, (size_t)len);
        } else {
            err_append(w, (const char *)&s[i], 1);
        }
    }
    err_puts(w, "\"]");
}

/* Writes "<what> at <path><tail>" where the path is the root followed by the first `ncomp`
 * children recorded in the frames. Returns -1 so callers can `return fail(...)`. */
static int fail_with(encoder *e, int ncomp, const char *what, const char *tail)
{
    if (!e->err || e->errlen == 0)
        return -1;
    errbuf w = {e->err, e->errlen, 0};
    e->err[0] = '\0';
    err_puts(&w, what);
    err_puts(&w, " at ");
    err_puts(&w, e->root);
    for (int i = 0; i < ncomp; i++) {
        const frame *f = &e->frames[i];
        if (!f->key) {
            char num[32];
            int len = snprintf(num, sizeof num, "[%lld]", (long long)f->index);
            err_append(&w, num, (size_t)len);
        } else if (is_identifier(f->key, f->keylen)) {
            err_puts(&w, ".");
            err_append(&w, f->key, f->keylen);
        } else {
            err_quoted_key(&w, f->key, f->keylen);
        }
    }
    err_puts(&w, tail);
    return -1;
}

static int fail(encoder *e, int ncomp, const char *what) { return fail_with(e, ncomp, what, ""); }

/* ---- scalars ----------------------------------------------------------------------------- */

static int put(encoder *e, const char *s, size_t n)
{
    if (strbuf_append(e->out, s, n) < 0)
        return fail(e, e->depth, "out of memory");
    return 0;
}

/* Same text as "%lld", without going through printf. */
static int write_integer(encoder *e, lua_Integer v)
{
    char buf[24];
    char *p = buf + sizeof buf;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    return put(e, p, (size_t)(buf + sizeof buf - p));
}

/* Fast path for the common floats (readings, timestamps): x = m / 10^k with k <= 8 and
 * |m| < 2^53. Both m and 10^k are exact doubles, so m / 10^k is the correctly rounded value
 * of that decimal, as strtod would read it back: the test is exact, not approximate. The
 * smallest such k gives the shortest fixed-point text that round-trips. Integral values up to
 * 2^53 are written as integers ("3"), so they read back as Lua integers. Returns 0 if none. */
static int format_decimal(double x, char *buf, size_t size)
{
    static const double p10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8};
    double ax = x < 0 ? -x : x;
    if (ax == floor(ax) && ax <= JSON_MAX_EXACT && ax != 0) /* integral: "3" */
        return snprintf(buf, size, "%s%lld", x < 0 ? "-" : "", (long long)ax);
    if (!(ax >= 1e-4 && ax < 1e15))
        return 0;
    for (int k = 1; k <= 8; k++) {
        double t = ax * p10[k];
        if (t >= JSON_MAX_EXACT)
            return 0;
        double m = (double)(long long)(t + 0.5);
        if (m / p10[k] != ax)
            continue;
        /* digits of m, with the point k places from the right (m < 2^53: 16 digits at most) */
        unsigned long long um = (unsigned long long)m;
        char digits[24];
        int nd = 0;
        do {
            digits[nd++] = (char)('0' + um % 10);
            um /= 10;
        } while (um);
        while (nd <= k)
            digits[nd++] = '0'; /* 0.000123 */
        if ((size_t)nd + 3 > size)
            return 0;
        int n = 0;
        if (x < 0)
            buf[n++] = '-';
        for (int i = nd - 1; i >= 0; i--) {
            buf[n++] = digits[i];
            if (i == k)
                buf[n++] = '.';
        }
        while (buf[n - 1] == '0') /* k is the smallest, but keep it tidy */
            n--;
        if (buf[n - 1] == '.')
            n--;
        return n;
    }
    return 0;
}

/* Writes a finite x into buf (40 bytes) as the shortest of %.15g, %.16g, %.17g that reads back
 * as the same double (%.17g always does); returns the length. The text is valid JSON for every
 * finite value ("1e+20", "-0", "3"): a locale's decimal comma is turned back into a point.
 * A float that is not written as an integer by format_decimal keeps a fraction or an exponent
 * ("9007199254740994.0"), so that json_decode reads it back as a float. */
static int format_double(double x, char *buf)
{
    int n = format_decimal(x, buf, 40);
    if (n > 0)
        return n;
    n = snprintf(buf, 40, "%.15g", x);
    if (strtod(buf, NULL) != x) {
        n = snprintf(buf, 40, "%.16g", x);
        if (strtod(buf, NULL) != x)
            n = snprintf(buf, 40, "%.17g", x);
    }
    int integral = 1;
    for (int i = 0; i < n; i++) {
        char c = buf[i];
        if (!((c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e' || c == 'E'))
            buf[i] = '.'; /* a locale's decimal point */
        if (!(c >= '0' && c <= '9') && c != '-')
            integral = 0;
    }
    if (integral && x != 0) { /* beyond 2^53: "18014398509481984" */
        buf[n++] = '.';
        buf[n++] = '0';
        buf[n] = '\0';
    }
    return n;
}

int json_write_double(strbuf *out, double x)
{
    if (!isfinite(x))
        return strbuf_append(out, "null", 4);
    char buf[40];
    return strbuf_append(out, buf, (size_t)format_double(x, buf));
}

static int write_float(encoder *e, double x)
{
    char buf[40];
    int n = format_double(x, buf);
    return put(e, buf, (size_t)n);
}

/* Appends s as a JSON string literal. Bytes that are not part of well-formed UTF-8 are
 * written as U+FFFD when bad is NULL; otherwise the first one stops the writing: *bad is its
 * offset in s and the result is -2 (out may hold part of the literal). -1 out of memory.
 * The common string needs nothing: ASCII (or well-formed UTF-8) without a byte to escape is
 * checked in one scan, then copied whole after one reservation; otherwise the runs of bytes
 * that need nothing are copied with one append each. */
static int write_json_string(strbuf *out, const char *s, size_t len, size_t *bad)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s, *end = u + len;
    size_t clean = 0;
    for (;;) {
        while (clean < len && !escape_of[u[clean]])
            clean++;
        size_t n;
        if (clean < len && u[clean] >= 0x80 && (n = utf8_sequence(u + clean, end)) > 0)
            clean += n;
        else
            break;
    }
    if (strbuf_reserve(out, len + 2) < 0)
        return -1;
    char *p = out->data + out->len;
    *p++ = '"';
    memcpy(p, s, clean);
    out->len += clean + 1;
    if (clean == len) {
        out->data[out->len++] = '"';
        out->data[out->len] = '\0';
        return 0;
    }
    out->data[out->len] = '\0';
    size_t run = clean;
    for (size_t i = clean; i < len; i++) {
        unsigned char c = u[i];
        char esc = escape_of[c];
        if (!esc)
            continue;
        if (esc == 1) {
            size_t n = utf8_sequence(u + i, end);
            if (n) {
                i += n - 1;
                continue;
            }
            if (bad) {
                *bad = i;
                return strbuf_append(out, s + run, i - run) < 0 ? -1 : -2;
            }
            if (strbuf_append(out, s + run, i - run) < 0 || strbuf_append(out, "\xEF\xBF\xBD", 3) < 0)
                return -1;
        } else {
            char seq[6] = {'\\', esc, '0', '0', hex[c >> 4], hex[c & 15]};
            if (strbuf_append(out, s + run, i - run) < 0
                || strbuf_append(out, seq, esc == 'u' ? 6 : 2) < 0)
                return -1;
        }
        run = i + 1;
    }
    if (strbuf_append(out, s + run, len - run) < 0 || strbuf_putc(out, '"') < 0)
        return -1;
    return 0;
}

int json_write_string(strbuf *out, const char *s, size_t len)
{
    return write_json_string(out, s, len, NULL);
}

/* A string value (key == 0) or object key (key == 1): invalid UTF-8 is refused, naming the
 * path (for a key, the path of its table) and the byte. */
static int write_string(encoder *e, const char *s, size_t len, int key)
{
    size_t bad;
    int rc = write_json_string(e->out, s, len, &bad);
    if (rc == -1)
        return fail(e, key ? e->depth - 1 : e->depth, "out of memory");
    if (rc == -2) {
        char tail[64];
        snprintf(tail, sizeof tail, " (byte %zu of the %s)", bad + 1, key ? "key" : "string");
        return fail_with(e, key ? e->depth - 1 : e->depth,
                         key ? "cannot encode invalid UTF-8 in a key" : "cannot encode invalid UTF-8",
                         tail);
    }
    return 0;
}

/* ---- tables ------------------------------------------------------------------------------ */

static int encode_value(encoder *e, int idx);

/* Raw lookup, run under lua_pcall: interning the key string may need memory, and a failed
 * allocation must not raise out of json_encode. */
static int fetch_array_mt(lua_State *L)
{
    lua_pushliteral(L, JSON_ARRAY_MT);
    lua_rawget(L, LUA_REGISTRYINDEX);
    return 1;
}

/* Whether the table at idx carries the JSON_ARRAY_MT metatable. The registry's entry is looked
 * up once per json_encode call, and only when some table has a metatable at all. */
static int is_marked_array(encoder *e, int idx)
{
    lua_State *L = e->L;
    if (!lua_getmetatable(L, idx))
        return 0;
    if (!e->array_mt_known) {
        e->array_mt_known = 1;
        lua_pushcfunction(L, fetch_array_mt);
        if (lua_pcall(L, 0, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TTABLE)
            e->array_mt = lua_topointer(L, -1); /* kept alive by the registry */
        lua_pop(L, 1);
    }
    int marked = e->array_mt && lua_topointer(L, -1) == e->array_mt;
    lua_pop(L, 1);
    return marked;
}

static const char *key_type_name(lua_State *L, int idx)
{
    if (lua_type(L, idx) == LUA_TNUMBER)
        return lua_isinteger(L, idx) ? "integer" : "float";
    return lua_typename(L, lua_type(L, idx));
}

/* Refuses the key at -2 of the table at frame depth-1; pops the key and value lua_next pushed. */
static int fail_key(encoder *e, int marked, int seen_string)
{
    lua_State *L = e->L;
    char what[80];
    int kt = lua_type(L, -2);
    if ((kt == LUA_TSTRING && !marked) || (lua_isinteger(L, -2) && seen_string))
        snprintf(what, sizeof what, "cannot encode table with mixed string and integer keys");
    else if (kt == LUA_TSTRING)
        snprintf(what, sizeof what, "cannot encode string key in a table marked as array");
    else
        snprintf(what, sizeof what, "cannot encode table key of type %s", key_type_name(L, -2));
    lua_pop(L, 2);
    return fail(e, e->depth - 1, what);
}

/* Key and first value from lua_next are on the stack, the first key is a string. */
static int encode_object(encoder *e, int idx, frame *f)
{
    lua_State *L = e->L;
    if (put(e, "{", 1) < 0) {
        lua_pop(L, 2);
        return -1;
    }
    int first = 1;
    do {
        if (lua_type(L, -2) != LUA_TSTRING)
            return fail_key(e, 0, 1);
        size_t klen;
        const char *k = lua_tolstring(L, -2, &klen);
        if ((!first && put(e, ",", 1) < 0) || write_string(e, k, klen, 1) < 0 || put(e, ":", 1) < 0) {
            lua_pop(L, 2);
            return -1;
        }
        f->key = k;
        f->keylen = klen;
        if (encode_value(e, lua_gettop(L)) < 0) {
            lua_pop(L, 2);
            return -1;
        }
        lua_pop(L, 1);
        first = 0;
    } while (lua_next(L, idx));
    return put(e, "}", 1);
}

/* Key and first value from lua_next are on the stack, the first key is not a string (or the
 * table is marked as array). Checks that the keys are exactly 1..n, then writes elements 1..n. */
static int encode_array(encoder *e, int idx, frame *f, int marked)
{
    lua_State *L = e->L;
    lua_Integer count = 0, max = 0;
    do {
        if (!lua_isinteger(L, -2))
            return fail_key(e, marked, 0);
        lua_Integer k = lua_tointeger(L, -2);
        if (k < 1) {
            lua_pop(L, 2);
            return fail(e, e->depth - 1, "cannot encode sparse array");
        }
        if (k > max)
            max = k;
        count++;
        lua_pop(L, 1);
    } while (lua_next(L, idx));
    if (count != max)
        return fail(e, e->depth - 1, "cannot encode sparse array");
    if (put(e, "[", 1) < 0)
        return -1;
    f->key = NULL;
    for (lua_Integer i = 1; i <= max; i++) {
        if (i > 1 && put(e, ",", 1) < 0)
            return -1;
        f->index = i;
        lua_rawgeti(L, idx, i);
        int rc = encode_value(e, lua_gettop(L));
        lua_pop(L, 1);
        if (rc < 0)
            return -1;
    }
    return put(e, "]", 1);
}

static int encode_table(encoder *e, int idx)
{
    lua_State *L = e->L;
    const void *p = lua_topointer(L, idx);
    for (int i = 0; i < e->depth; i++) {
        if (e->frames[i].table == p)
            return fail(e, e->depth, "cycle");
    }
    /* key + value of lua_next, and one slot for a metatable check */
    if (e->depth >= JSON_MAX_DEPTH || !lua_checkstack(L, 3))
        return fail(e, e->depth, "nesting too deep");
    frame *f = &e->frames[e->depth++];
    f->table = p;
    f->key = NULL;
    f->keylen = 0;
    f->index = 0;
    int marked = is_marked_array(e, idx);
    int rc;
    lua_pushnil(L);
    if (!lua_next(L, idx))
        rc = marked ? put(e, "[]", 2) : put(e, "{}", 2);
    else if (!marked && lua_type(L, -2) == LUA_TSTRING)
        rc = encode_object(e, idx, f);
    else
        rc = encode_array(e, idx, f, marked);
    e->depth--;
    return rc;
}

static int encode_value(encoder *e, int idx)
{
    lua_State *L = e->L;
    char what[64];
    int t = lua_type(L, idx);
    switch (t) {
    case LUA_TNONE:
    case LUA_TNIL:
        return put(e, "null", 4);
    case LUA_TBOOLEAN:
        return lua_toboolean(L, idx) ? put(e, "true", 4) : put(e, "false", 5);
    case LUA_TNUMBER: {
        if (lua_isinteger(L, idx))
            return write_integer(e, lua_tointeger(L, idx));
        double x = (double)lua_tonumber(L, idx);
        if (isnan(x))
            return fail(e, e->depth, "cannot encode NaN");
        if (isinf(x))
            return fail(e, e->depth, x > 0 ? "cannot encode inf" : "cannot encode -inf");
        return write_float(e, x);
    }
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        return write_string(e, s, len, 0);
    }
    case LUA_TTABLE:
        return encode_table(e, idx);
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) /* null (sssn.null) */
            return put(e, "null", 4);
        return fail(e, e->depth, "cannot encode light userdata");
    default:
        snprintf(what, sizeof what, "cannot encode %s", lua_typename(L, t));
        return fail(e, e->depth, what);
    }
}

int json_encode(lua_State *L, int idx, const char *root, strbuf *out, char *err, size_t errlen)
{
    encoder e;
    e.L = L;
    e.out = out;
    e.root = root ? root : "value";
    e.err = err;
    e.errlen = errlen;
    e.depth = 0;
    e.array_mt_known = 0;
    e.array_mt = NULL;
    if (err && errlen)
        err[0] = '\0';
    return encode_value(&e, lua_absindex(L, idx));
}

/* ---- decoding ----------------------------------------------------------------------------
 * Recursive descent over the text, RFC 8259 strict, pushing each value as it is read. A
 * container's members are first left on the Lua stack, up to CHUNK slots, then moved into a
 * table made at the size they need: most message bodies fit in one chunk, so their table is
 * made once at its final size instead of growing key by key. Positions in error messages count
 * bytes from 1. */

#define CHUNK 32 /* stack slots of pending members per open container */

typedef struct decoder {
    lua_State *L;
    const unsigned char *start, *p, *end;
} decoder;

/* What a decoded string byte is, for the scan: 0 plain ASCII, else one to look at. */
enum { S_PLAIN, S_QUOTE, S_ESCAPE, S_CONTROL, S_HIGH };
#define C8 S_CONTROL, S_CONTROL, S_CONTROL, S_CONTROL, S_CONTROL, S_CONTROL, S_CONTROL, S_CONTROL
#define H8 S_HIGH, S_HIGH, S_HIGH, S_HIGH, S_HIGH, S_HIGH, S_HIGH, S_HIGH
#define H128 H8, H8, H8, H8, H8, H8, H8, H8, H8, H8, H8, H8, H8, H8, H8, H8
static const unsigned char string_class[256] = {
    C8, C8, C8, C8,
    ['"'] = S_QUOTE,
    ['\\'] = S_ESCAPE,
    [0x80] = H128,
};

/* Raises "invalid JSON: <what> at byte N" for the byte at `at`. Only Lua values are live, so
 * unwinding from here leaks nothing. */
_Noreturn static void fail_at(decoder *d, const unsigned char *at, const char *what)
{
    char msg[160];
    snprintf(msg, sizeof msg, "invalid JSON: %s at byte %zu", what, (size_t)(at - d->start) + 1);
    lua_pushstring(d->L, msg);
    lua_error(d->L);
    abort(); /* not reached: lua_error does not return */
}

/* "<what> 'c'" for a printable byte, "<what> byte 0xNN" for any other; at the end of the
 * text, "unexpected end of text". */
_Noreturn static void fail_byte(decoder *d, const unsigned char *at, const char *what)
{
    char msg[96];
    if (at >= d->end)
        fail_at(d, at, "unexpected end of text");
    if (*at > 0x20 && *at < 0x7f)
        snprintf(msg, sizeof msg, "%s '%c'", what, *at);
    else
        snprintf(msg, sizeof msg, "%s byte 0x%02x", what, *at);
    fail_at(d, at, msg);
}

static void skip_space(decoder *d)
{
    const unsigned char *p = d->p, *end = d->end;
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    d->p = p;
}

static int hex_value(unsigned c)
{
    if (c >= '0' && c <= '9')
        return (int)(c - '0');
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return (int)(c - 'a' + 10);
    return -1;
}

/* The 4 hex digits at p (p + 4 <= end checked by the caller), or -1. */
static long hex4(const unsigned char *p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_value(p[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

static size_t put_utf8(unsigned char *o, unsigned long cp)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The rest of a string from the first backslash at q, d->p at the opening quote. The text up
 * to the closing quote bounds the result (an escape is never shorter than what it stands for),
 * so it is written into one Lua buffer of that size. */
static void parse_escaped_string(decoder *d, const unsigned char *q)
{
    const unsigned char *body = d->p + 1, *close = q, *end = d->end;
    while (close < end && *close != '"') {
        if (*close == '\\' && ++close == end) /* a backslash escapes the next byte */
            break;
        close++;
    }
    if (close >= end)
        fail_at(d, d->p, "unterminated string");
    luaL_Buffer b;
    unsigned char *out = (unsigned char *)luaL_buffinitsize(d->L, &b, (size_t)(close - body));
    memcpy(out, body, (size_t)(q - body));
    unsigned char *o = out + (q - body);
    while (q < close) {
        unsigned c = *q;
        if (c == '\\') {
            unsigned long cp;
            switch (q[1]) { /* q + 1 < close: the scan above stepped over it */
            case '"': *o++ = '"'; q += 2; continue;
            case '\\': *o++ = '\\'; q += 2; continue;
            case '/': *o++ = '/'; q += 2; continue;
            case 'b': *o++ = '\b'; q += 2; continue;
            case 'f': *o++ = '\f'; q += 2; continue;
            case 'n': *o++ = '\n'; q += 2; continue;
            case 'r': *o++ = '\r'; q += 2; continue;
            case 't': *o++ = '\t'; q += 2; continue;
            case 'u': {
                long u = close - q >= 6 ? hex4(q + 2) : -1;
                if (u < 0)
                    fail_at(d, q, "invalid \\u escape in a string");
                cp = (unsigned long)u;
                if (cp >= 0xDC00 && cp <= 0xDFFF)
                    fail_at(d, q, "lone surrogate in a string");
                if (cp >= 0xD800 && cp <= 0xDBFF) { /* a pair: \uD8xx\uDCxx */
                    long lo = close - q >= 12 && q[6] == '\\' && q[7] == 'u' ? hex4(q + 8) : -1;
                    if (lo < 0xDC00 || lo > 0xDFFF)
                        fail_at(d, q, "lone surrogate in a string");
                    cp = 0x10000 + ((cp - 0xD800) << 10) + ((unsigned long)lo - 0xDC00);
                    q += 6;
                }
                o += put_utf8(o, cp);
                q += 6;
                continue;
            }
            default: {
                char what[48];
                if (q[1] > 0x20 && q[1] < 0x7f)
                    snprintf(what, sizeof what, "invalid escape '\\%c' in a string", q[1]);
                else
                    snprintf(what, sizeof what, "invalid escape in a string");
                fail_at(d, q, what);
            }
            }
        }
        if (c < 0x20)
            fail_at(d, q, "unescaped control character in a string");
        if (c < 0x80) {
            *o++ = (unsigned char)c;
            q++;
            continue;
        }
        size_t n = utf8_sequence(q, close); /* no byte of a sequence is a quote */
        if (!n)
            fail_at(d, q, "invalid UTF-8 in a string");
        memcpy(o, q, n);
        o += n;
        q += n;
    }
    luaL_pushresultsize(&b, (size_t)(o - out));
    d->p = close + 1;
}

/* A string at d->p (the opening quote). The common string, without escapes, is checked in one
 * scan that skips ASCII bytes by table and is pushed straight from the text. */
static void parse_string(decoder *d)
{
    const unsigned char *q = d->p + 1, *end = d->end;
    for (;;) {
        while (q < end && string_class[*q] == S_PLAIN)
            q++;
        if (q >= end)
            fail_at(d, d->p, "unterminated string");
        switch (string_class[*q]) {
        case S_QUOTE:
            lua_pushlstring(d->L, (const char *)d->p + 1, (size_t)(q - d->p - 1));
            d->p = q + 1;
            return;
        case S_HIGH: {
            size_t n = utf8_sequence(q, end);
            if (!n)
                fail_at(d, q, "invalid UTF-8 in a string");
            q += n;
            break;
        }
        case S_ESCAPE:
            parse_escaped_string(d, q);
            return;
        default:
            fail_at(d, q, "unescaped control character in a string");
        }
    }
}

/* strtod on a NUL-terminated copy of the number token [s, e), with the locale's decimal point
 * in place of '.' (the grammar was checked: strtod reads the whole copy). Long tokens are
 * copied into a Lua userdata, popped again. */
static double read_double(decoder *d, const unsigned char *s, const unsigned char *e)
{
    const char *dp = localeconv()->decimal_point;
    size_t dplen = dp && dp[0] ? strlen(dp) : 1, len = (size_t)(e - s);
    char local[64], *buf = local;
    if (len + dplen + 1 > sizeof local)
        buf = lua_newuserdatauv(d->L, len + dplen + 1, 0);
    size_t n = 0;
    for (const unsigned char *p = s; p < e; p++) {
        if (*p == '.' && dp && dp[0]) {
            memcpy(buf + n, dp, dplen);
            n += dplen;
        } else {
            buf[n++] = (char)*p;
        }
    }
    buf[n] = '\0';
    double x = strtod(buf, NULL);
    if (buf != local)
        lua_pop(d->L, 1);
    return x;
}

/* A number at d->p. Integer tokens (no fraction, no exponent) become Lua integers, exactly,
 * or are refused beyond int64; "-0" is the float -0.0, which no integer can hold. Other
 * tokens become floats: exactly by one multiplication or division when the digits fit in
 * 2^53 and the power of ten is at most 10^22 (both exact doubles, so one rounding: Clinger's
 * fast path), else by strtod. Infinite results (1e400) are refused, as the encoder refuses
 * infinities; underflow reads as the nearest double (0 or a subnormal). */
static void parse_number(decoder *d)
{
    static const double p10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    const unsigned char *s = d->p, *p = s, *end = d->end;
    int neg = 0, many = 0, exact_int = 1;
    uint64_t w = 0;   /* the digits, integer and fraction, while they fit */
    long exp10 = 0;   /* value = w * 10^exp10 */
    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (p >= end || *p < '0' || *p > '9')
        fail_byte(d, p, "invalid number: expected a digit, found");
    if (*p == '0') {
        p++;
        if (p < end && *p >= '0' && *p <= '9')
            fail_at(d, s, "invalid number (leading zero)");
    } else {
        for (; p < end && *p >= '0' && *p <= '9'; p++) {
            unsigned dg = *p - '0';
            if (w > (UINT64_MAX - dg) / 10)
                many = 1;
            else if (!many)
                w = w * 10 + dg;
            if (many)
                exp10++;
        }
    }
    if (p < end && *p == '.') {
        exact_int = 0;
        p++;
        if (p >= end || *p < '0' || *p > '9')
            fail_byte(d, p, "invalid number: expected a digit after '.', found");
        for (; p < end && *p >= '0' && *p <= '9'; p++) {
            unsigned dg = *p - '0';
            if (!many && w <= (UINT64_MAX - dg) / 10) {
                w = w * 10 + dg;
                exp10--;
            } else {
                many = 1;
            }
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        exact_int = 0;
        p++;
        int eneg = 0;
        if (p < end && (*p == '+' || *p == '-'))
            eneg = *p++ == '-';
        if (p >= end || *p < '0' || *p > '9')
            fail_byte(d, p, "invalid number: expected a digit in the exponent, found");
        long ev = 0;
        for (; p < end && *p >= '0' && *p <= '9'; p++) {
            if (ev < 100000) /* far past any double either way */
                ev = ev * 10 + (*p - '0');
        }
        exp10 += eneg ? -ev : ev;
    }
    d->p = p;
    lua_State *L = d->L;
    if (exact_int) {
        if (many || w > (neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX))
            fail_at(d, s, "integer out of range");
        if (neg && w == 0)
            lua_pushnumber(L, -0.0);
        else
            lua_pushinteger(L, neg ? -(lua_Integer)(w - 1) - 1 : (lua_Integer)w);
        return;
    }
    double x;
#if FLT_EVAL_METHOD == 0 /* doubles are computed as doubles: the fast path rounds once */
    if (!many && w <= (1ULL << 53) && exp10 >= -22 && exp10 <= 22) {
        x = exp10 >= 0 ? (double)w * p10[exp10] : (double)w / p10[-exp10];
        lua_pushnumber(L, neg ? -x : x);
        return;
    }
#else
    (void)p10;
#endif
    x = read_double(d, s, p);
    if (isinf(x))
        fail_at(d, s, "number out of range");
    lua_pushnumber(L, x);
}

/* The literal `word` (true, false, null) at d->p. */
static void expect_word(decoder *d, const char *word, size_t n)
{
    if ((size_t)(d->end - d->p) < n || memcmp(d->p, word, n) != 0)
        fail_byte(d, d->p, "unexpected character");
    d->p += n;
}

static void parse_value(decoder *d, int depth);

/* Pushes the empty table that stands for []: marked with JSON_ARRAY_MT, made if missing (a
 * registry entry that some script replaced by a non-table leaves it unmarked). */
static void push_empty_array(lua_State *L)
{
    lua_createtable(L, 0, 0);
    if (lua_getfield(L, LUA_REGISTRYINDEX, JSON_ARRAY_MT) != LUA_TTABLE) {
        lua_pop(L, 1);
        if (!luaL_newmetatable(L, JSON_ARRAY_MT)) {
            lua_pop(L, 1);
            return;
        }
        lua_pushliteral(L, "array");
        lua_setfield(L, -2, "__name");
    }
    lua_setmetatable(L, -2);
}

/* Moves the `pending` values above the table's slot into it as elements n+1..n+pending. The
 * table is made on the first call, at the size known then, and slid below the values. */
static void flush_array(lua_State *L, int base, lua_Integer *n, int pending)
{
    int t = base + 1;
    if (*n == 0) {
        lua_createtable(L, pending, 0);
        lua_insert(L, t);
    }
    for (int k = pending; k >= 1; k--) /* pops from the top, the last element first */
        lua_rawseti(L, t, *n + k);
    *n += pending;
}

/* Moves the `pending` key/value slots above the table's slot into it, in text order so that
 * the last of duplicate keys wins. Makes the table on the first call, as flush_array does. */
static void flush_object(lua_State *L, int base, int *made, int pending)
{
    int t = base + 1;
    if (!*made) {
        lua_createtable(L, 0, pending / 2);
        lua_insert(L, t);
        *made = 1;
    }
    for (int i = t + 1; i < t + 1 + pending; i += 2) {
        lua_pushvalue(L, i);
        lua_pushvalue(L, i + 1);
        lua_rawset(L, t);
    }
    lua_settop(L, t);
}

static void parse_array(decoder *d, int depth)
{
    lua_State *L = d->L;
    if (depth > JSON_MAX_DEPTH)
        fail_at(d, d->p, "nesting deeper than 200");
    luaL_checkstack(L, CHUNK + 4, "json_decode"); /* pending members, table, string buffer */
    int base = lua_gettop(L), pending = 0;
    lua_Integer n = 0;
    d->p++;
    skip_space(d);
    if (d->p < d->end && *d->p == ']') {
        d->p++;
        push_empty_array(L);
        return;
    }
    for (;;) {
        parse_value(d, depth);
        pending++;
        skip_space(d);
        if (d->p < d->end && *d->p == ',') {
            d->p++;
            if (pending == CHUNK) {
                flush_array(L, base, &n, pending);
                pending = 0;
            }
            continue;
        }
        if (d->p < d->end && *d->p == ']') {
            d->p++;
            if (pending)
                flush_array(L, base, &n, pending);
            return;
        }
        fail_byte(d, d->p, "expected ',' or ']' in an array, found");
    }
}

static void parse_object(decoder *d, int depth)
{
    lua_State *L = d->L;
    if (depth > JSON_MAX_DEPTH)
        fail_at(d, d->p, "nesting deeper than 200");
    luaL_checkstack(L, CHUNK + 4, "json_decode"); /* pending members, table, copies for rawset */
    int base = lua_gettop(L), pending = 0, made = 0;
    d->p++;
    skip_space(d);
    if (d->p < d->end && *d->p == '}') {
        d->p++;
        lua_createtable(L, 0, 0);
        return;
    }
    for (;;) {
        skip_space(d);
        if (d->p >= d->end || *d->p != '"')
            fail_byte(d, d->p, "expected a string key in an object, found");
        parse_string(d);
        skip_space(d);
        if (d->p >= d->end || *d->p != ':')
            fail_byte(d, d->p, "expected ':' after an object key, found");
        d->p++;
        parse_value(d, depth);
        pending += 2;
        skip_space(d);
        if (d->p < d->end && *d->p == ',') {
            d->p++;
            if (pending == CHUNK) {
                flush_object(L, base, &made, pending);
                pending = 0;
            }
            continue;
        }
        if (d->p < d->end && *d->p == '}') {
            d->p++;
            if (pending)
                flush_object(L, base, &made, pending);
            return;
        }
        fail_byte(d, d->p, "expected ',' or '}' in an object, found");
    }
}

/* One value at d->p (after optional whitespace), pushed; `depth` containers are open. */
static void parse_value(decoder *d, int depth)
{
    skip_space(d);
    if (d->p >= d->end)
        fail_at(d, d->p, "unexpected end of text");
    switch (*d->p) {
    case '{':
        parse_object(d, depth + 1);
        return;
    case '[':
        parse_array(d, depth + 1);
        return;
    case '"':
        parse_string(d);
        return;
    case 't':
        expect_word(d, "true", 4);
        lua_pushboolean(d->L, 1);
        return;
    case 'f':
        expect_word(d, "false", 5);
        lua_pushboolean(d->L, 0);
        return;
    case 'n':
        expect_word(d, "null", 4);
        lua_pushlightuserdata(d->L, NULL);
        return;
    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        parse_number(d);
        return;
    default:
        fail_byte(d, d->p, "unexpected character");
    }
}

void json_decode(lua_State *L, const char *text, size_t len)
{
    decoder d;
    d.L = L;
    d.start = d.p = (const unsigned char *)(text ? text : "");
    d.end = d.start + (text ? len : 0);
    luaL_checkstack(L, 8, "json_decode"); /* a scalar, a string buffer and its box */
    parse_value(&d, 0);
    skip_space(&d);
    if (d.p < d.end)
        fail_byte(&d, d.p, "unexpected character after the value:");
}
