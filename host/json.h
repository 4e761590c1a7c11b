/* json.h - JSON for Lua values: the host's own encoder, and decoding through lua-cjson.
 * lua-cjson 2.1.0 writes at most 14 significant digits and passes any bytes through, so message
 * content is written here: integers with %lld (exact, beyond 2^53 too), floats in the shortest
 * %.17g form that round-trips, strings escaped per RFC 8259 and checked to be UTF-8. A float
 * that is integral with |x| <= 2^53 is written as an integer ("3"); any other float keeps a
 * fraction or an exponent ("9007199254740994.0", "-0" aside). Decoding uses lua-cjson (exact up
 * to 2^53) and turns integral numbers within +-2^53 back into Lua integers in the same pass. */
#ifndef SSSN_JSON_H
#define SSSN_JSON_H

#include <lua.h>
#include <stddef.h>

#include "strbuf.h"

/* Encodes the value at `idx` and appends it to `out`. Never raises.
 * Tables: a table whose keys are exactly 1..n (n >= 1), or that has the metatable stored in the
 * Lua registry under JSON_ARRAY_MT (empty arrays), is an array; a table whose keys are all
 * strings is an object (keys in next() order); an empty table is {}; any other key
 * (float, boolean, sparse or mixed integer keys) is refused. nil and the cjson.null
 * lightuserdata (NULL) are null. Refused with an error: NaN, +-inf, strings (values or keys)
 * that are not well-formed UTF-8, functions, userdata, threads, other lightuserdata, cycles,
 * nesting deeper than 200. On error returns -1 and writes into err a message naming the path
 * from `root`, e.g. "cannot encode NaN at data.readings[3]", "cannot encode invalid UTF-8 at
 * data.name (byte 3 of the string)", "cannot encode invalid UTF-8 in a key at data.tags
 * (byte 1 of the key)"; `out` may then hold a partial text. Returns 0 on success. */
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

/* Decodes `len` bytes of JSON and pushes the value. Integral numbers with |x| <= 2^53 become
 * integers (at any depth); null becomes the cjson.null lightuserdata; an empty array [] (at
 * any depth, the top level included) comes back as an empty table marked as an array with the
 * JSON_ARRAY_MT metatable (created in the registry if missing), so json_encode writes it back
 * as []. Raises a Lua error on malformed input ("invalid JSON: ..."), and on memory errors
 * (also from the walk over the result), so call it from a binding or under lua_pcall.
 * Loads lua-cjson into L on first use (kept in the Lua registry). */
void json_decode(lua_State *L, const char *text, size_t len);

#endif
