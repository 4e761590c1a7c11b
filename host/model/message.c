/* message.c - building and freeing a message (see message.h): one allocation for the struct and
 * every string, so a write that fails halfway has nothing to undo and freeing is one free
 * (the discipline of Lua's luaM_ and redis' sds). */
#include "model/message.h"

#include <stdlib.h>
#include <string.h>

/* The lengths of what a message holds, and the total it allocates. */
typedef struct layout {
    const char *data, *meta, *opt[4];
    size_t len, meta_len, optlen[4], total;
} layout;

static void lay_out(const message_in *in, layout *l)
{
    l->data = in->data_json ? in->data_json : "null";
    /* data_len 0 means "NUL-terminated": empty text is never valid JSON. */
    l->len = in->data_json && in->data_len ? in->data_len : strlen(l->data);
    l->meta = in->metadata_json ? in->metadata_json : "{}";
    l->meta_len = strlen(l->meta);
    l->total = sizeof(message) + l->len + 1 + l->meta_len + 1;
    const char *opt[4] = {in->sender_id, in->correlation_id, in->reply_to, in->recipient_id};
    for (int i = 0; i < 4; i++) {
        l->opt[i] = opt[i];
        l->optlen[i] = opt[i] ? strlen(opt[i]) : 0;
        l->total += opt[i] ? l->optlen[i] + 1 : 0;
    }
}

size_t message_in_size(const message_in *in)
{
    layout l;
    lay_out(in, &l);
    return l.total;
}

size_t message_in_content_size(const message_in *in)
{
    layout l;
    lay_out(in, &l);
    return l.len + (in->metadata_json ? l.meta_len : 0) + l.optlen[1] + l.optlen[2] + l.optlen[3];
}

message *message_new(const message_in *in, double timestamp)
{
    layout l;
    lay_out(in, &l);
    const char *data = l.data, *meta = l.meta;
    const char *const *opt = l.opt;
    const size_t *optlen = l.optlen;
    size_t len = l.len, meta_len = l.meta_len, total = l.total;
    message *m = malloc(total);
    if (!m)
        return NULL;
    memset(m, 0, sizeof *m);
    char *p = (char *)(m + 1);
    m->data_json = p;
    memcpy(p, data, len);
    p[len] = '\0';
    m->data_len = len;
    p += len + 1;
    m->metadata_json = p;
    memcpy(p, meta, meta_len + 1);
    p += meta_len + 1;
    char **slots[4] = {&m->sender_id, &m->correlation_id, &m->reply_to, &m->recipient_id};
    for (int i = 0; i < 4; i++) {
        if (!opt[i])
            continue;
        *slots[i] = p;
        memcpy(p, opt[i], optlen[i] + 1);
        p += optlen[i] + 1;
    }
    if (in->id) {
        /* An envelope's own id is kept, up to the 36 characters of a UUID. */
        size_t idlen = strnlen(in->id, sizeof m->id - 1);
        memcpy(m->id, in->id, idlen);
        m->id[idlen] = '\0';
    }
    m->timestamp = timestamp;
    m->bytes = total;
    return m;
}

void message_free(message *m)
{
    if (!m)
        return;
    free(m->claimed_by);
    free(m);
}
