/* channel.c - a channel: a bounded ring of messages with per-reader cursors (see channel.h).
 * Broadcast-like kinds share the log through cursors; work queues and passthrough channels
 * also hand messages out exclusively. Time comes from the caller; nothing here blocks. */
#include "model/channel.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define DEFAULT_CAPACITY 1000
#define DEFAULT_CLAIM_TIMEOUT 30.0
#define DEFAULT_LIMIT 100
#define RING_START 64 /* slots a new channel's ring starts with */

static const char *const kind_names[] = {
    [CHANNEL_BROADCAST] = "broadcast",
    [CHANNEL_WORK_QUEUE] = "work_queue",
    [CHANNEL_MAILBOX] = "mailbox",
    [CHANNEL_PERIODIC] = "periodic",
    [CHANNEL_PASSTHROUGH] = "passthrough",
};

#define NKINDS (sizeof kind_names / sizeof kind_names[0])

const char *channel_kind_name(channel_kind k)
{
    if ((size_t)k >= NKINDS)
        return "unknown";
    return kind_names[k];
}

int channel_kind_parse(const char *s, channel_kind *out)
{
    if (!s)
        return -1;
    for (size_t i = 0; i < NKINDS; i++) {
        if (strcmp(s, kind_names[i]) == 0) {
            *out = (channel_kind)i;
            return 0;
        }
    }
    return -1;
}

const char *channel_strerror(int err)
{
    switch (err) {
    case CHANNEL_OK:
        return "ok";
    case CHANNEL_ENOMEM:
        return "out of memory";
    case CHANNEL_ESTOPPED:
        return "channel is stopped";
    case CHANNEL_EFULL:
        return "channel is full";
    case CHANNEL_EKIND:
        return "operation not allowed for this channel kind";
    default:
        return "unknown error";
    }
}

/* ---- UUIDs ---- */

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t seed_rng(const channel *ch)
{
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) == (ssize_t)sizeof seed)
        return seed;
    /* No entropy yet (early boot) or no syscall: unique enough for message ids. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)ch;
}

static void make_uuid(channel *ch, char out[37])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    uint64_t hi = splitmix64(&ch->rng), lo = splitmix64(&ch->rng);
    for (int i = 0; i < 8; i++) {
        b[i] = (unsigned char)(hi >> (56 - 8 * i));
        b[8 + i] = (unsigned char)(lo >> (56 - 8 * i));
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* variant 10xx */
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[b[i] >> 4];
        *p++ = hex[b[i] & 0x0f];
    }
    *p = '\0';
}

/* ---- messages and the ring ---- */

/* The i-th message held, counting from the oldest. */
static message *ring_at(const channel *ch, size_t i)
{
    return ch->ring[(ch->head + i) % ch->ring_size];
}

/* The ring grows as messages arrive, up to capacity slots, so a large capacity costs memory
 * only once it is used. Called before a write changes anything: a failure changes nothing. */
static int ring_reserve(channel *ch)
{
    if (ch->count < ch->ring_size || ch->ring_size == ch->capacity)
        return 0;
    size_t size = ch->ring_size * 2 < ch->capacity ? ch->ring_size * 2 : ch->capacity;
    message **ring = calloc(size, sizeof *ring);
    if (!ring)
        return -1;
    for (size_t i = 0; i < ch->count; i++)
        ring[i] = ring_at(ch, i);
    free(ch->ring);
    ch->ring = ring;
    ch->ring_size = size;
    ch->head = 0;
    return 0;
}

/* Unlinks and frees the oldest message. The by_id entry is removed only when it still points
 * here: a later message written with the same explicit id owns the entry now. */
static void drop_head(channel *ch)
{
    message *m = ch->ring[ch->head];
    ch->ring[ch->head] = NULL;
    ch->head = (ch->head + 1) % ch->ring_size;
    ch->count--;
    ch->first_seq++;
    if (ch->by_id && hashmap_get(ch->by_id, m->id) == m)
        hashmap_remove(ch->by_id, m->id);
    message_free(m);
}

/* Drops what retention has expired and, in work queues, acknowledged work at the head.
 * Readers' cursors are not touched: each notices the gap (as missed) on its next read. */
static void trim(channel *ch, double now)
{
    while (ch->count > 0) {
        message *m = ch->ring[ch->head];
        if (ch->retention > 0 && m->timestamp <= now - ch->retention) {
            drop_head(ch);
            ch->dropped++;
        } else if (ch->kind == CHANNEL_WORK_QUEUE && m->done) {
            drop_head(ch);
        } else {
            break;
        }
    }
}

/* ---- lifecycle ---- */

channel *channel_new(const channel_config *cfg)
{
    if (!cfg || !cfg->id || !cfg->id[0])
        return NULL;
    channel *ch = calloc(1, sizeof *ch);
    if (!ch)
        return NULL;
    ch->is_public = cfg->is_public;
    ch->kind = cfg->kind;
    ch->period = cfg->period;
    ch->retention = cfg->retention;
    ch->claim_timeout = cfg->claim_timeout > 0 ? cfg->claim_timeout : DEFAULT_CLAIM_TIMEOUT;
    ch->capacity = cfg->capacity ? cfg->capacity : DEFAULT_CAPACITY;
    if (ch->capacity > CHANNEL_MAX_CAPACITY) {
        free(ch);
        return NULL;
    }
    ch->ring_size = ch->capacity < RING_START ? ch->capacity : RING_START;
    ch->first_seq = ch->next_seq = 1;
    ch->rng = seed_rng(ch);

    ch->id = strdup(cfg->id);
    ch->name = strdup(cfg->name ? cfg->name : cfg->id);
    ch->description = strdup(cfg->description ? cfg->description : "");
    ch->ring = calloc(ch->ring_size, sizeof *ch->ring);
    if (cfg->kind == CHANNEL_WORK_QUEUE)
        ch->by_id = hashmap_new();
    ch->readers = hashmap_new();
    if (!ch->id || !ch->name || !ch->description || !ch->ring ||
        (cfg->kind == CHANNEL_WORK_QUEUE && !ch->by_id) || !ch->readers) {
        channel_free(ch);
        return NULL;
    }
    return ch;
}

void channel_free(channel *ch)
{
    if (!ch)
        return;
    if (ch->ring) {
        while (ch->count > 0)
            drop_head(ch);
        free(ch->ring);
    }
    if (ch->readers) {
        hashmap_iter it;
        void *r;
        hashmap_iter_init(ch->readers, &it);
        while (hashmap_iter_next(ch->readers, &it, NULL, &r))
            free(r);
        hashmap_free(ch->readers);
    }
    hashmap_free(ch->by_id);
    free(ch->id);
    free(ch->name);
    free(ch->description);
    free(ch->owner); /* the host sets it with a malloc'd copy; it goes with the channel */
    free(ch);
}

void channel_stop(channel *ch)
{
    ch->stopped = 1;
}

/* ---- writing ---- */

int channel_write(channel *ch, const message_in *in, double now, const message **out)
{
    if (ch->stopped)
        return CHANNEL_ESTOPPED;
    trim(ch, now);
    /* trim() has already forgotten acknowledged work at the head. */
    if (ch->kind == CHANNEL_WORK_QUEUE && ch->count == ch->capacity)
        return CHANNEL_EFULL;

    if (ring_reserve(ch) < 0)
        return CHANNEL_ENOMEM;

    /* Build the whole message before touching the ring, so a failure changes nothing. */
    message *m = message_new(in, now);
    if (!m)
        return CHANNEL_ENOMEM;
    if (!m->id[0])
        make_uuid(ch, m->id);
    if (ch->by_id && hashmap_put(ch->by_id, m->id, m) != 0) {
        message_free(m);
        return CHANNEL_ENOMEM;
    }

    if (ch->count == ch->capacity) {
        drop_head(ch);
        ch->dropped++;
    }
    m->seq = ch->next_seq++;
    ch->ring[(ch->head + ch->count) % ch->ring_size] = m;
    ch->count++;
    ch->writes++;
    if (out)
        *out = m;

    /* Save next first: a watcher may remove itself from inside its callback. */
    for (channel_watcher *w = ch->watchers, *next; w; w = next) {
        next = w->next;
        w->on_write(w, m);
    }
    return CHANNEL_OK;
}

/* ---- reading ---- */

void channel_batch_free(channel_batch *b)
{
    if (!b)
        return;
    free(b->items);
    b->items = NULL;
    b->count = 0;
    b->missed = 0;
}

/* Sizes out->items for n messages; an empty batch allocates nothing. */
static int batch_alloc(channel_batch *out, size_t n)
{
    if (n == 0)
        return 0;
    out->items = malloc(n * sizeof *out->items);
    return out->items ? 0 : -1;
}

/* A new reader starts at the oldest message held, having missed nothing. */
static void evict_stalest_reader(channel *ch)
{
    hashmap_iter it;
    const char *key, *stalest = NULL;
    void *v;
    uint64_t oldest = UINT64_MAX;
    hashmap_iter_init(ch->readers, &it);
    while (hashmap_iter_next(ch->readers, &it, &key, &v)) {
        channel_reader *r = v;
        if (r->stamp < oldest) {
            oldest = r->stamp;
            stalest = key;
        }
    }
    if (stalest)
        free(hashmap_remove(ch->readers, stalest));
}

static channel_reader *add_reader(channel *ch, const char *name)
{
    if (hashmap_count(ch->readers) >= CHANNEL_MAX_READERS)
        evict_stalest_reader(ch);
    channel_reader *r = malloc(sizeof *r);
    if (!r)
        return NULL;
    r->stamp = 0;
    r->next_seq = ch->first_seq;
    r->missed = 0;
    if (hashmap_put(ch->readers, name, r) != 0) {
        free(r);
        return NULL;
    }
    return r;
}

int channel_read(channel *ch, const char *reader, size_t limit, int has_after, uint64_t after,
                 double now, channel_batch *out)
{
    out->items = NULL;
    out->count = 0;
    out->missed = 0;
    if (ch->kind == CHANNEL_WORK_QUEUE)
        return CHANNEL_EKIND;
    trim(ch, now);

    /* Find the start before allocating anything, so a failure leaves no new reader behind. */
    channel_reader *r = hashmap_get(ch->readers, reader);
    uint64_t start = r ? r->next_seq : ch->first_seq;
    if (has_after)
        start = after >= ch->next_seq ? ch->next_seq : after + 1;
    uint64_t missed = 0;
    if (start < ch->first_seq) {
        missed = ch->first_seq - start;
        start = ch->first_seq;
    }
    if (start > ch->next_seq)
        start = ch->next_seq;

    size_t n = limit ? limit : DEFAULT_LIMIT;
    if (ch->next_seq - start < n)
        n = (size_t)(ch->next_seq - start);
    if (batch_alloc(out, n) != 0)
        return CHANNEL_ENOMEM;
    if (!r && !(r = add_reader(ch, reader))) {
        channel_batch_free(out);
        return CHANNEL_ENOMEM;
    }
    r->stamp = ++ch->read_clock;

    uint64_t seq = start;
    while (seq < ch->next_seq && out->count < n) {
        message *m = ring_at(ch, (size_t)(seq - ch->first_seq));
        seq++;
        if (ch->kind == CHANNEL_MAILBOX && m->recipient_id && strcmp(m->recipient_id, reader) != 0)
            continue;
        out->items[out->count++] = m;
    }
    r->next_seq = seq;
    r->missed += missed;
    out->missed = missed;
    ch->reads += out->count;
    return CHANNEL_OK;
}

static int claimable(const message *m, double now)
{
    return !m->done && (!m->claimed_by || now >= m->claim_deadline);
}

int channel_claim(channel *ch, const char *reader, size_t limit, double now, channel_batch *out)
{
    out->items = NULL;
    out->count = 0;
    out->missed = 0;
    if (ch->kind != CHANNEL_WORK_QUEUE && ch->kind != CHANNEL_PASSTHROUGH)
        return CHANNEL_EKIND;
    trim(ch, now);

    /* Count first: polls of a busy queue usually find nothing and should allocate nothing. */
    size_t want = limit ? limit : DEFAULT_LIMIT, n = 0;
    for (size_t i = 0; i < ch->count && n < want; i++)
        if (claimable(ring_at(ch, i), now))
            n++;
    if (n == 0)
        return CHANNEL_OK;
    if (batch_alloc(out, n) != 0)
        return CHANNEL_ENOMEM;
    for (size_t i = 0; i < ch->count && out->count < n; i++) {
        message *m = ring_at(ch, i);
        if (claimable(m, now))
            out->items[out->count++] = m;
    }

    if (ch->kind == CHANNEL_PASSTHROUGH) {
        for (size_t i = 0; i < out->count; i++)
            ((message *)out->items[i])->done = 1;
    } else {
        /* Copy the holder's name for every message first, so running out of memory halfway
         * leaves no claim half made. */
        char **names = malloc(out->count * sizeof *names);
        size_t made = 0;
        if (names) {
            for (; made < out->count; made++) {
                names[made] = strdup(reader);
                if (!names[made])
                    break;
            }
        }
        if (!names || made < out->count) {
            while (made > 0)
                free(names[--made]);
            free(names);
            channel_batch_free(out);
            return CHANNEL_ENOMEM;
        }
        for (size_t i = 0; i < out->count; i++) {
            message *m = (message *)out->items[i];
            free(m->claimed_by); /* a lapsed claim of another reader */
            m->claimed_by = names[i];
            m->claim_deadline = now + ch->claim_timeout;
        }
        free(names);
    }
    ch->claims += out->count;
    ch->reads += out->count;
    return CHANNEL_OK;
}

/* The message `id` names, when `reader` holds its claim and the work is not done. */
static message *held_by(channel *ch, const char *reader, const char *id)
{
    if (!id)
        return NULL;
    message *m = ch->by_id ? hashmap_get(ch->by_id, id) : NULL;
    if (!m || m->done || !m->claimed_by || strcmp(m->claimed_by, reader) != 0)
        return NULL;
    return m;
}

int channel_ack(channel *ch, const char *reader, const char *const *ids, size_t n, double now)
{
    if (ch->kind != CHANNEL_WORK_QUEUE)
        return CHANNEL_EKIND;
    trim(ch, now);
    int acked = 0;
    for (size_t i = 0; i < n; i++) {
        message *m = held_by(ch, reader, ids[i]);
        if (!m)
            continue;
        m->done = 1;
        free(m->claimed_by);
        m->claimed_by = NULL;
        acked++;
    }
    ch->acked += (uint64_t)acked;
    trim(ch, now); /* forget the work just finished if it sits at the head */
    return acked;
}

int channel_nack(channel *ch, const char *reader, const char *const *ids, size_t n, double now)
{
    if (ch->kind != CHANNEL_WORK_QUEUE)
        return CHANNEL_EKIND;
    trim(ch, now);
    int released = 0;
    for (size_t i = 0; i < n; i++) {
        message *m = held_by(ch, reader, ids[i]);
        if (!m)
            continue;
        free(m->claimed_by);
        m->claimed_by = NULL;
        m->claim_deadline = 0;
        released++;
    }
    ch->nacked += (uint64_t)released;
    if (released > 0) /* work is on offer again: wake whoever waits for it */
        for (channel_watcher *w = ch->watchers, *next; w; w = next) {
            next = w->next;
            w->on_write(w, NULL);
        }
    return released;
}

/* ---- queries ---- */

/* Work queues keep an id index (acknowledgements look ids up all the time); other kinds are
 * searched from the newest message back, which spares every write an index update. */
const message *channel_find(const channel *ch, const char *message_id)
{
    if (ch->by_id)
        return hashmap_get(ch->by_id, message_id);
    for (size_t i = ch->count; i-- > 0;) {
        const message *m = ring_at(ch, i);
        if (strcmp(m->id, message_id) == 0)
            return m;
    }
    return NULL;
}

uint64_t channel_last_seq(const channel *ch)
{
    return ch->next_seq - 1;
}

size_t channel_pending(const channel *ch)
{
    size_t pending = 0;
    for (size_t i = 0; i < ch->count; i++)
        if (!ring_at(ch, i)->done)
            pending++;
    return pending;
}

void channel_forget_reader(channel *ch, const char *reader)
{
    free(hashmap_remove(ch->readers, reader));
}

/* ---- watchers ---- */

void channel_add_watcher(channel *ch, channel_watcher *w)
{
    w->prev = NULL;
    w->next = ch->watchers;
    if (ch->watchers)
        ch->watchers->prev = w;
    ch->watchers = w;
}

void channel_remove_watcher(channel *ch, channel_watcher *w)
{
    if (!w->prev && ch->watchers != w)
        return; /* not in this channel's list */
    if (w->prev)
        w->prev->next = w->next;
    else
        ch->watchers = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
}
