/* json_text.h - JSON checked and compacted as text, without building Lua values: what the
 * HTTP API does with a message body it stores as it came (a PUT without direct=true). The
 * rules are json_decode's (core/json.h): RFC 8259 strict, valid UTF-8, no lone surrogates,
 * integers within 64 bits, finite numbers, nesting up to 200, nothing after the value; the
 * errors read the same ("invalid JSON: <what> at byte N"). */
#ifndef SSSN_JSON_TEXT_H
#define SSSN_JSON_TEXT_H

#include <stddef.h>

#include "core/strbuf.h"

/* Checks text and appends it to out without the whitespace between tokens (strings and
 * numbers are kept byte for byte). 0, or -1 with the reason in err (out may then hold a
 * partial text) or with an empty err when out of memory. */
int json_normalize(const char *text, size_t len, strbuf *out, char *err, size_t errlen);

#endif
