/* api_channel.c - the HTTP API's channel read and plain write on JSON text (see api_channel.h):
 * the stored JSON is copied into the answer as it is (so [] stays [] and numbers keep their
 * digits), and nothing is formatted with printf, which showed up in profiles of the read. */
#include "bind/api_channel.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/json.h"
#include "core/json_text.h"
#include "sys/host.h"

#define PUT_LIT(b, s) strbuf_append((b), (s), sizeof(s) - 1)

/* What a read's answer holds besides its messages: {"messages":[ ... ],"missed":N,
 * "epoch":"...","more":false} */
#define READ_FRAME 128

static int fail(api_failure *f, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(api_failure *f, int status, const char *type, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    f->status = status;
    f->type = type;
    vsnprintf(f->message, sizeof f->message, fmt, ap);
    va_end(ap);
    return -1;
}

static void put_u64(strbuf *b, uint64_t v)
{
    char tmp[24];
    size_t n = sizeof tmp;
    do {
        tmp[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    strbuf_append(b, tmp + n, sizeof tmp - n);
}

static void put_str_or_null(strbuf *b, const char *s)
{
    if (s)
        json_write_string(b, s, strlen(s));
    else
        PUT_LIT(b, "null");
}

void api_channel_info_json(strbuf *b, const host *h, const channel *ch)
{
    strbuf_puts(b, "{\"id\":");
    put_str_or_null(b, ch->id);
    strbuf_puts(b, ",\"name\":");
    put_str_or_null(b, ch->name);
    strbuf_puts(b, ",\"description\":");
    put_str_or_null(b, ch->description);
    strbuf_printf(b, ",\"visibility\":\"%s\",\"kind\":\"%s\",\"period\":", ch->is_public ? "public" : "private",
                  channel_kind_name(ch->kind));
    if (ch->period > 0)
        json_write_double(b, ch->period);
    else
        strbuf_puts(b, "null");
    strbuf_puts(b, ",\"owner\":");
    put_str_or_null(b, ch->owner);
    strbuf_puts(b, channel_epoch(ch) ? ",\"durable\":true" : ",\"durable\":false");
    strbuf_puts(b, ",\"endpoint\":");
    put_str_or_null(b, h->endpoint);
    strbuf_putc(b, '}');
}

/* One message as the API serves it (the Python sssn's envelope). */
static void message_json(strbuf *b, const message *m)
{
    PUT_LIT(b, "{\"id\":");
    json_write_string(b, m->id, strlen(m->id));
    PUT_LIT(b, ",\"seq\":");
    put_u64(b, m->seq);
    PUT_LIT(b, ",\"timestamp\":");
    json_write_double(b, m->timestamp);
    PUT_LIT(b, ",\"sender_id\":");
    put_str_or_null(b, m->sender_id);
    PUT_LIT(b, ",\"content\":{\"data\":");
    strbuf_append(b, m->data_json, m->data_len);
    PUT_LIT(b, "},\"metadata\":");
    strbuf_puts(b, m->metadata_json);
    PUT_LIT(b, ",\"correlation_id\":");
    put_str_or_null(b, m->correlation_id);
    PUT_LIT(b, ",\"reply_to\":");
    put_str_or_null(b, m->reply_to);
    PUT_LIT(b, ",\"recipient_id\":");
    put_str_or_null(b, m->recipient_id);
    strbuf_putc(b, '}');
}

/* At most what message_json writes for m, and its comma: a string escapes to at most six
 * bytes a byte (\u00XX), the numbers and the keys take less than 200. Found without writing,
 * so a read can stop before a message that would take its answer past the bound. */
static size_t str_bound(const char *s) { return s ? 6 * strlen(s) + 2 : 4; }

static size_t message_json_bound(const message *m, void *ud)
{
    (void)ud;
    return 200 + str_bound(m->id) + str_bound(m->sender_id) + m->data_len + strlen(m->metadata_json) +
           str_bound(m->correlation_id) + str_bound(m->reply_to) + str_bound(m->recipient_id);
}

int api_read_json(host *h, channel *ch, const char *reader, size_t limit, int has_after, uint64_t after,
                  int exclusive, strbuf *out, size_t *count, api_failure *f)
{
    if (limit < 1 || limit > 10000)
        return fail(f, 400, "bad_request", "limit must be between 1 and 10000");
    channel_batch batch;
    size_t most = h->cfg.max_read_bytes;
    channel_read_bound bound = {.max = most > READ_FRAME ? most - READ_FRAME : 1, .cost = message_json_bound};
    int rc = exclusive ? channel_claim_bounded(ch, reader, limit, host_now(h), most ? &bound : NULL, &batch)
                       : channel_read_bounded(ch, reader, limit, has_after, after, host_now(h),
                                              most ? &bound : NULL, &batch);
    if (rc == CHANNEL_EKIND) {
        if (ch->kind == CHANNEL_WORK_QUEUE && !exclusive)
            return fail(f, 400, "bad_request", "channel '%s' is a work_queue: read it with exclusive=true", ch->id);
        return fail(f, 400, "bad_request", "channel '%s' does not allow exclusive reads", ch->id);
    }
    if (rc != CHANNEL_OK)
        return fail(f, 500, "internal", "%s", channel_strerror(rc));
    size_t need = READ_FRAME;
    for (size_t i = 0; i < batch.count; i++)
        need += message_json_bound(batch.items[i], NULL);
    strbuf_reserve(out, need); /* one allocation for the whole answer */
    PUT_LIT(out, "{\"messages\":[");
    for (size_t i = 0; i < batch.count; i++) {
        if (i)
            strbuf_putc(out, ',');
        message_json(out, batch.items[i]);
    }
    PUT_LIT(out, "],\"missed\":");
    put_u64(out, batch.missed);
    PUT_LIT(out, ",\"epoch\":\"");
    /* hex digits; a durable channel's own, so that readers resume across restarts */
    strbuf_puts(out, channel_epoch(ch) ? channel_epoch(ch) : h->instance_id);
    if (batch.more)
        PUT_LIT(out, "\",\"more\":true}");
    else
        PUT_LIT(out, "\",\"more\":false}");
    h->reads_cut += (uint64_t)batch.more;
    *count = batch.count;
    channel_batch_free(&batch);
    return 0;
}

int api_write_json_text(host *h, channel *ch, const char *sender, const char *body, size_t len,
                        strbuf *scratch, const message **m, api_failure *f)
{
    if (ch->owner && strcmp(ch->owner, HOST_OWNER) == 0)
        return fail(f, 405, "method_not_allowed", "channel '%s' is read-only", ch->id);
    strbuf_reset(scratch);
    char err[256];
    if (json_normalize(body, len, scratch, err, sizeof err) < 0) {
        if (!err[0])
            return fail(f, 500, "internal", "out of memory");
        const char *why = strncmp(err, "invalid JSON: ", 14) == 0 ? err + 14 : err;
        return fail(f, 400, "bad_request", "malformed JSON body: %s", why);
    }
    message_in in = {.sender_id = sender, .data_json = scratch->data, .data_len = scratch->len};
    int rc = channel_write(ch, &in, host_now(h), m);
    if (rc == CHANNEL_OK)
        return 0;
    if (rc == CHANNEL_ETOOBIG) {
        size_t size = message_in_size(&in), lim = 0;
        channel_size_problem(ch, &in, &size, &lim);
        return fail(f, 413, "payload_too_large", "the message is %zu bytes, more than the %zu a message of "
                    "channel '%s' may have", size, lim, ch->id);
    }
    if (rc == CHANNEL_EFULL) {
        if (ch->kind == CHANNEL_WORK_QUEUE)
            return fail(f, 429, "channel_full", "channel '%s' is full: acknowledge work before writing more", ch->id);
        return fail(f, 429, "channel_full", "channel '%s' is full: its owner '%s' has no room left for %zu bytes "
                    "under its memory limit", ch->id, ch->owner ? ch->owner : "?", message_in_size(&in));
    }
    return fail(f, 500, "internal", "%s", channel_strerror(rc));
}
