/* api_channel.h - the HTTP API's channel read and plain write as C operations on JSON text, with
 * no Lua state: the API's C fast path (svc/api.c) answers through them, and so can the router's
 * bindings (core.api_read, core.api_write_text in lua_api.c), so that both paths say the same.
 * A failure fills an api_failure with what the API answers: status, error type and message. */
#ifndef SSSN_API_CHANNEL_H
#define SSSN_API_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

#include "core/strbuf.h"
#include "model/channel.h"

struct host;

typedef struct api_failure {
    int status;       /* 400, 405, 413, 429, 500 */
    const char *type; /* "bad_request", "payload_too_large", ... (static text) */
    char message[768];
} api_failure;

/* A channel's info as GET /channels/{id}/info serves it. */
void api_channel_info_json(strbuf *out, const struct host *h, const channel *ch);

/* A read for `reader`, as GET /channels/{id} answers it: appends {"messages":[...],"missed":N,
 * "epoch":"...","more":false} to out, with at most `limit` (1 to 10000) messages after `after`
 * (has_after) or from the reader's cursor, or claimed (exclusive); at most --max-read-bytes (one
 * message larger than that by itself comes alone), "more": true when it stopped there. *count is
 * how many it holds. 0, or -1 with f filled (nothing read then). */
int api_read_json(struct host *h, channel *ch, const char *reader, size_t limit, int has_after, uint64_t after,
                  int exclusive, strbuf *out, size_t *count, api_failure *f);

/* A PUT of the data itself: body checked and compacted as JSON text (core/json_text.h) into
 * scratch, and written from sender (NULL: none); *m is the stored message (valid until the
 * channel changes). 0, or -1 with f filled: 405 a host-owned channel, 400 malformed JSON, 413 too
 * large, 429 full, 500 out of memory. */
int api_write_json_text(struct host *h, channel *ch, const char *sender, const char *body, size_t len,
                        strbuf *scratch, const message **m, api_failure *f);

#endif
