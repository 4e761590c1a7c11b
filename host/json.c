/* json.c - JSON for Lua values (see json.h): an encoder that never raises and names the path of
 * what it refuses (invalid UTF-8 included), and decoding through a private lua-cjson instance
 * whose integral numbers are turned back into Lua integers. */
#include "json.h"

#include <lauxlib.h>
#include <math.h>
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
        if (lua_touserdata(L, idx) == NULL) /* cjson.null */
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

/* ---- decoding ---------------------------------------------------------------------------- */

/* Its address is the registry key of this state's cjson decode function. */
static const char decoder_key = 'j';

/* Pushes the decode function of a private cjson instance, creating it on first use, so that
 * scripts changing the shared `cjson` module's settings do not change how the host decodes. */
static void push_decoder(lua_State *L)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &decoder_key) == LUA_TFUNCTION)
        return;
    lua_pop(L, 1);
    int base = lua_gettop(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    if (lua_getfield(L, -1, "cjson") != LUA_TTABLE) {
        lua_pop(L, 1);
        if (lua_getglobal(L, "require") != LUA_TFUNCTION)
            luaL_error(L, "json: cannot load lua-cjson ('require' is not available)");
        lua_pushliteral(L, "cjson");
        lua_call(L, 1, 1);
        if (lua_type(L, -1) != LUA_TTABLE)
            luaL_error(L, "json: cannot load lua-cjson");
    }
    if (lua_getfield(L, -1, "new") == LUA_TFUNCTION) {
        lua_call(L, 0, 1);
        if (lua_type(L, -1) != LUA_TTABLE)
            luaL_error(L, "json: cjson.new() did not return a module");
    } else {
        lua_pop(L, 1);
        lua_pushvalue(L, -1); /* old cjson without new(): share the module */
    }
    if (lua_getfield(L, -1, "decode_max_depth") == LUA_TFUNCTION) {
        lua_pushinteger(L, JSON_MAX_DEPTH);
        lua_call(L, 1, 0);
    } else {
        lua_pop(L, 1);
    }
    /* strict RFC 8259: no NaN, Infinity or hexadecimal numbers */
    if (lua_getfield(L, -1, "decode_invalid_numbers") == LUA_TFUNCTION) {
        lua_pushboolean(L, 0);
        lua_call(L, 1, 0);
    } else {
        lua_pop(L, 1);
    }
    if (lua_getfield(L, -1, "decode") != LUA_TFUNCTION)
        luaL_error(L, "json: lua-cjson has no decode function");
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &decoder_key);
    lua_replace(L, base + 1);
    lua_settop(L, base + 1);
}

/* An integral double within +-2^53 as an integer. -0.0 stays a float so that its sign
 * survives a round trip. */
static int exact_integer(double x, lua_Integer *out)
{
    if (x != floor(x) || fabs(x) > JSON_MAX_EXACT || (x == 0 && signbit(x)))
        return 0;
    *out = (lua_Integer)x;
    return 1;
}

/* ---- empty arrays ------------------------------------------------------------------------
 * lua-cjson 2.1.0 (Debian) has no decode_array_with_array_mt: it decodes [] as a plain empty
 * table, which json_encode writes back as {}. So when the text holds an empty array, every
 * `[` ws* `]` outside a string is first replaced by SENTINEL_TEXT, an object whose only key
 * starts with a NUL byte, and the walk after decoding turns each table whose only key is
 * sentinel_key into a fresh empty table carrying the JSON_ARRAY_MT metatable. An empty array
 * and the sentinel object nest equally deep, so cjson's depth limit is unchanged. The one
 * input that is misread is an object whose only key is exactly "\u0000sssn[]" (decoded as
 * an empty array), in a text that also holds an empty array. When such a text is malformed
 * it is decoded again as given, so that cjson's error message counts the right positions. */
#define SENTINEL_TEXT "{\"\\u0000sssn[]\":0}"
static const char sentinel_key[] = "\0sssn[]"; /* SENTINEL_TEXT's key once decoded */
#define SENTINEL_KEYLEN (sizeof sentinel_key - 1)

static int is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Quick test, blind to strings: is there a `]` whose previous non-whitespace byte is `[`?
 * Each whitespace run is looked at once at most, as a `]` ends it. */
static int may_hold_empty_array(const char *s, size_t len)
{
    const char *end = s + len, *p = s;
    while (p < end && (p = memchr(p, ']', (size_t)(end - p))) != NULL) {
        const char *q = p;
        while (q > s && is_json_space(q[-1]))
            q--;
        if (q > s && q[-1] == '[')
            return 1;
        p++;
    }
    return 0;
}

/* Pushes a copy of the text in which every `[` ws* `]` outside a JSON string is replaced by
 * SENTINEL_TEXT, and returns how many were replaced. Strings are followed through their
 * backslash escapes; malformed text is copied in some way and left for cjson to refuse. */
static int push_marked_text(lua_State *L, const char *s, size_t len)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    int count = 0, in_string = 0;
    size_t run = 0; /* start of the bytes not yet copied */
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '[') {
            size_t j = i + 1;
            while (j < len && is_json_space(s[j]))
                j++;
            if (j < len && s[j] == ']') {
                luaL_addlstring(&b, s + run, i - run);
                luaL_addlstring(&b, SENTINEL_TEXT, sizeof SENTINEL_TEXT - 1);
                count++;
                run = j + 1;
                i = j;
            } else {
                i = j - 1; /* the whitespace needs no second look */
            }
        }
    }
    luaL_addlstring(&b, s + run, len - run);
    luaL_pushresult(&b);
    return count;
}

/* Stack slots of what the walk needs to turn sentinels into arrays; key == 0: no sentinels. */
typedef struct marks {
    int key; /* the sentinel_key string */
    int mt;  /* the JSON_ARRAY_MT metatable */
} marks;

/* Whether the table at idx (absolute) has exactly one key, the sentinel's. */
static int is_sentinel(lua_State *L, int idx, const marks *m)
{
    lua_pushvalue(L, m->key);
    int found = lua_rawget(L, idx) != LUA_TNIL;
    lua_pop(L, 1);
    if (!found)
        return 0;
    lua_pushnil(L);
    (void)lua_next(L, idx); /* not empty: the sentinel key is there */
    lua_pop(L, 1);
    if (lua_next(L, idx)) {
        lua_pop(L, 2);
        return 0;
    }
    return 1;
}

/* Pushes a new empty table carrying the array metatable. */
static void push_empty_array(lua_State *L, const marks *m)
{
    lua_newtable(L);
    lua_pushvalue(L, m->mt);
    lua_setmetatable(L, -2);
}

/* Replaces integral float values of the table at t (absolute index) and below by integers,
 * and sentinel objects by marked empty arrays (when m->key is set).
 * Assigning to existing fields during lua_next is allowed. */
static void integerize(lua_State *L, int t, int depth, const marks *m)
{
    if (depth > JSON_MAX_DEPTH)
        luaL_error(L, "invalid JSON: nesting too deep");
    luaL_checkstack(L, 5, "json_decode");
    lua_pushnil(L);
    while (lua_next(L, t)) {
        int vt = lua_type(L, -1);
        lua_Integer i;
        if (vt == LUA_TNUMBER && !lua_isinteger(L, -1)
            && exact_integer((double)lua_tonumber(L, -1), &i)) {
            lua_pushvalue(L, -2);
            lua_pushinteger(L, i);
            lua_rawset(L, t);
        } else if (vt == LUA_TTABLE) {
            int v = lua_gettop(L);
            if (m->key && is_sentinel(L, v, m)) {
                lua_pushvalue(L, -2);
                push_empty_array(L, m);
                lua_rawset(L, t);
            } else {
                integerize(L, v, depth + 1, m);
            }
        }
        lua_pop(L, 1);
    }
}

void json_decode(lua_State *L, const char *text, size_t len)
{
    /* key and metatable, push_decoder's 5 slots at most, a luaL_Buffer with its box */
    luaL_checkstack(L, 10, "json_decode");
    int base = lua_gettop(L);
    marks m = {0, 0};
    int marking = may_hold_empty_array(text, len);
    if (marking) {
        lua_pushlstring(L, sentinel_key, SENTINEL_KEYLEN);
        if (luaL_newmetatable(L, JSON_ARRAY_MT)) {
            lua_pushliteral(L, "array");
            lua_setfield(L, -2, "__name");
        }
        m.mt = base + 2;
    }
    push_decoder(L);
    if (marking)
        marking = push_marked_text(L, text, len);
    else
        lua_pushlstring(L, text, len);
    if (marking)
        m.key = base + 1;
    int status = lua_pcall(L, 1, 1, 0);
    if (status == LUA_ERRRUN && marking) {
        /* positions in cjson's message would count the sentinels: decode the text as given */
        push_decoder(L);
        lua_pushlstring(L, text, len);
        if (lua_pcall(L, 1, 1, 0) != LUA_OK)
            lua_replace(L, -2);
        else
            lua_pop(L, 1);
    }
    if (status != LUA_OK) {
        if (status == LUA_ERRRUN) {
            const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?";
            lua_pushfstring(L, "invalid JSON: %s", msg);
        }
        lua_error(L);
    }
    int top = lua_gettop(L);
    lua_Integer i;
    if (lua_type(L, top) == LUA_TTABLE) {
        if (m.key && is_sentinel(L, top, &m)) {
            lua_pop(L, 1);
            push_empty_array(L, &m);
        } else {
            integerize(L, top, 1, &m);
        }
    } else if (lua_type(L, top) == LUA_TNUMBER && !lua_isinteger(L, top)
               && exact_integer((double)lua_tonumber(L, top), &i)) {
        lua_pop(L, 1);
        lua_pushinteger(L, i);
    }
    if (top != base + 1) { /* drop the sentinel key and the metatable below the value */
        lua_replace(L, base + 1);
        lua_settop(L, base + 1);
    }
}
