/* json.h - JSON for Lua values: the host's own encoder and decoder, RFC 8259 strict.
 * Message content is written here rather than with lua-cjson (which writes at most 14
 * significant digits and passes any bytes through): integers with %lld, floats in the shortest
 * %.17g form that round-trips, strings escaped per RFC 8259 and checked to be UTF-8. The
 * decoder reads in one pass and pushes Lua values directly: integers stay exact integers over
 * the whole int64 range, floats read back bit for bit, invalid UTF-8 is refused.
 *
 * Numbers, both ways: a Lua integer is written as its digits, beyond 2^53 too, and an integer
 * token (no fraction, no exponent) reads back as that Lua integer; an integer token beyond
 * int64 is refused. A float that is integral with |x| <= 2^53 is written as an integer ("3")
 * and so reads back as an integer, as before; -0.0 is written "-0" and reads back as -0.0;
 * every other float is written with a fraction or an exponent and reads back as the same
 * float. */
#ifndef SSSN_JSON_H
#define SSSN_JSON_H

#include <lua.h>
#include <stddef.h>

#include "core/strbuf.h"

/* Encodes the value at `idx` and appends it to `out`. Never raises.
 * Tables: a table whose keys are exactly 1..n (n >= 1), or that has the metatable stored in the
 * Lua registry under JSON_ARRAY_MT (empty arrays), is an array; a table whose keys are all
 * strings is an object (keys in next() order); an empty table is {}; any other key
 * (float, boolean, sparse or mixed integer keys) is refused. nil and the null lightuserdata
 * (NULL, sssn.null) are null. Integers are written exactly, whatever their size; floats as
 * described above. Refused with an error: NaN, +-inf, strings (values or keys) that are not
 * well-formed UTF-8, functions, userdata, threads, other lightuserdata, cycles, nesting deeper
 * than 200. On error returns -1 and writes into err a message naming the path from `root`,
 * e.g. "cannot encode NaN at data.readings[3]", "cannot encode invalid UTF-8 at data.name
 * (byte 3 of the string)", "cannot encode invalid UTF-8 in a key at data.tags (byte 1 of the
 * key)"; `out` may then hold a partial text. Returns 0 on success. */
int json_encode(lua_State *L, int idx, const char *root, strbuf *out, char *err, size_t errlen);

/* Appends s as a JSON string literal (quoted, escaped per RFC 8259) and never writes invalid
 * UTF-8: each byte of s that is not part of a well-formed UTF-8 sequence is written as U+FFFD
 * (the text stays readable by strict clients; use json_check_utf8 first to refuse instead).
 * 0, or -1 out of memory. */
int json_write_string(strbuf *out, const char *s, size_t len);

/* Appends a finite double as JSON that reads back as the same double (non-finite: null),
 * the same text json_encode writes for it. 0, or -1 out of memory. */
int json_write_double(strbuf *out, double x);

/* The offset of the first byte of s that is not part of well-formed UTF-8 (overlong forms,
 * surrogates, code points above U+10FFFF and cut-off sequences are not), or len when all is. */
size_t json_check_utf8(const char *s, size_t len);

/* Registry key of the metatable that marks a table as a JSON array (see sssn.array). */
#define JSON_ARRAY_MT "sssn.array"

/* Decodes `len` bytes of JSON (RFC 8259; the text need not be NUL-terminated) and pushes the
 * value. Objects become tables (the last of duplicate keys wins), arrays sequences; an empty
 * array [] (at any depth, the top level included) comes back as an empty table marked with
 * the JSON_ARRAY_MT metatable (created in the registry if missing), so json_encode writes it
 * back as []; null becomes the NULL lightuserdata (sssn.null); numbers as described above
 * (1e400 is refused as out of range). Refused: anything outside the grammar (NaN, Infinity,
 * hex, leading zeros, comments, trailing commas, whitespace other than space, tab, CR, LF),
 * raw control characters and invalid UTF-8 in strings, lone surrogates in \u escapes, text
 * after the value, nesting deeper than 200. A refusal raises a Lua error
 * "invalid JSON: <what> at byte N" (N counts from 1), e.g. "invalid JSON: invalid UTF-8 in a
 * string at byte 17", "invalid JSON: integer out of range at byte 3"; memory errors raise
 * too, so call it from a binding or under lua_pcall. It allocates only Lua values, so an error
 * leaks nothing. Time and stack are linear in the text (stack: at most 36 slots per level). */
void json_decode(lua_State *L, const char *text, size_t len);

#endif
