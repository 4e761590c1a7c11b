/* jsonread.h - reading JSON text from C without building values: the members of an object,
 * the items of an array, a string or a number out of them. For what the host reads in C
 * rather than in Lua: another host's registry answers, its own registry event messages.
 * It checks the structure it walks (objects, arrays, strings and their escapes, numbers,
 * literals, nesting up to JSON_READ_DEPTH) but not UTF-8 inside strings: what it reads out is
 * compared, logged or handed on, never stored as JSON (core/json.h is the strict codec).
 * Nothing here allocates except json_read_string, into the caller's strbuf. */
#ifndef SSSN_JSONREAD_H
#define SSSN_JSONREAD_H

#include <stddef.h>

#include "core/strbuf.h"

/* Deepest nesting walked; deeper text is refused as malformed. */
#define JSON_READ_DEPTH 200

/* One JSON value's text inside a larger one (not NUL-terminated). */
typedef struct json_span {
    const char *p;
    size_t len;
} json_span;

/* The value that the whole of s[0..len) is, whitespace around it allowed: 0 and *out, or -1
 * when the text is not exactly one well-formed value. */
int json_read_value(const char *s, size_t len, json_span *out);

/* The first member named key (compared after unescaping) of the object v: 1 and *out, 0
 * when there is none or v is not an object, -1 when v is malformed. */
int json_read_member(json_span v, const char *key, json_span *out);

/* Walks an object or an array: *pos starts at 0 and is advanced; each call gives the next
 * item (and for an object its key, as raw string text with the quotes; key may be NULL).
 * 1 with the item, 0 at the end, -1 when v is malformed or not an object or array. */
int json_read_next(json_span v, size_t *pos, json_span *key, json_span *val);

/* Appends the unescaped text of the string v to out (\uXXXX as UTF-8, a lone surrogate as
 * U+FFFD): 0, or -1 when v is not a string or memory ran out. */
int json_read_string(json_span v, strbuf *out);
/* Whether the string v, unescaped, is exactly s (no allocation). */
int json_read_string_is(json_span v, const char *s);
/* The number v as a double: 0 and *out, -1 when v is not a number. */
int json_read_number(json_span v, double *out);
int json_read_is_null(json_span v);

#endif
