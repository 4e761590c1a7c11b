/* channel.c - a channel's semantics over its store (see channel.h and store.h): kinds, reader
 * cursors, the mailbox filter, exclusive claims, retention and capacity, watchers, counters.
 * The messages, claims and cursors live in the store; time comes from the caller; nothing here
 * blocks. */
#include "model/channel.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define DEFAULT_CAPACITY 1000
#define DEFAULT_CLAIM_TIMEOUT 30.0
#define DEFAULT_LIMIT 100
#define SCAN 64 /* messages a scan of the log asks the store for at a time */

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
    case CHANNEL_EIO:
        return "channel store failed";
    case CHANNEL_ETOOBIG:
        return "message is too large";
    default:
        return "unknown error";
    }
}

/* A store's failure as a channel's. */
static int from_store(int rc)
{
    switch (rc) {
    case STORE_OK:
        return CHANNEL_OK;
    case STORE_ENOMEM:
        return CHANNEL_ENOMEM;
    case STORE_EFULL:
        return CHANNEL_EFULL;
    default:
        return CHANNEL_EIO;
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

/* The text of a UUID v4 from two random words, most significant digit first: each digit goes
 * straight to its place, no byte array and no test for the dashes on the way. */
static void make_uuid(channel *ch, char out[37])
{
    static const char hex[] = "0123456789abcdef";
    /* where the i-th of the 32 digits goes: dashes after digits 8, 12, 16 and 20 */
    static const unsigned char at[32] = {0,  1,  2,  3,  4,  5,  6,  7,  9,  10, 11,
                                         12, 14, 15, 16, 17, 19, 20, 21, 22, 24, 25,
                                         26, 27, 28, 29, 30, 31, 32, 33, 34, 35};
    uint64_t hi = splitmix64(&ch->rng), lo = splitmix64(&ch->rng);
    hi = (hi & ~0xf000ULL) | 0x4000ULL;       /* version 4: digit 13 */
    lo = (lo & ~(3ULL << 62)) | (2ULL << 62); /* variant 10xx: digit 17 */
    for (int i = 0; i < 16; i++) {
        out[at[i]] = hex[(hi >> (60 - 4 * i)) & 15];
        out[at[16 + i]] = hex[(lo >> (60 - 4 * i)) & 15];
    }
    out[8] = out[13] = out[18] = out[23] = '-';
    out[36] = '\0';
}

/* ---- the log ---- */

/* The channel's copy of what the store holds, taken after every change to it; the owner's
 * account follows the bytes. */
static void sync_range(channel *ch)
{
    store_range r = ch->store->ops->range(ch->store);
    if (ch->owner_used)
        *ch->owner_used = *ch->owner_used - ch->bytes + r.bytes;
    ch->bytes = r.bytes;
    ch->first_seq = r.first_seq;
    ch->next_seq = r.next_seq;
    ch->visible_seq = r.visible_seq < r.first_seq ? r.first_seq : r.visible_seq;
    ch->count = r.count;
}

/* Tells the watchers something changed. Save next first: a watcher may remove itself from
 * inside its callback. */
static void notify(channel *ch, const message *m)
{
    for (channel_watcher *w = ch->watchers, *next; w; w = next) {
        next = w->next;
        w->on_write(w, m);
    }
}

/* What readers may see: held messages from `from` on, below visible_seq (a durable store's
 * messages once committed). */
static size_t visible_read(channel *ch, uint64_t from, const message **out, size_t max)
{
    if (from >= ch->visible_seq)
        return 0;
    if (ch->visible_seq - from < max)
        max = (size_t)(ch->visible_seq - from);
    return ch->store->ops->read(ch->store, from, out, max);
}

void channel_committed(channel *ch)
{
    uint64_t before = ch->visible_seq;
    sync_range(ch);
    if (ch->visible_seq > before)
        notify(ch, NULL);
}

/* Drops what retention has expired and, in work queues, acknowledged work at the head.
 * Readers' cursors are not touched: each notices the gap (as missed) on its next read. */
static void trim_head(channel *ch, double now)
{
    int wq = ch->kind == CHANNEL_WORK_QUEUE;
    store *st = ch->store;
    const message *buf[SCAN];
    uint64_t cut = ch->first_seq, expired = 0;
    size_t want = 1; /* the head is usually kept: look at it alone first */
    for (;;) {
        size_t k = st->ops->read(st, cut, buf, want), i = 0;
        for (; i < k; i++) {
            const message *m = buf[i];
            if (ch->retention > 0 && m->timestamp <= now - ch->retention)
                expired++;
            else if (!(wq && m->done))
                break;
        }
        if (i < k) {
            cut = buf[i]->seq;
            break;
        }
        if (k < want) {
            cut = ch->next_seq;
            break;
        }
        cut = buf[k - 1]->seq + 1;
        want = SCAN;
    }
    ch->done_at_head = 0; /* the head is now work not yet done, or there is none */
    if (cut == ch->first_seq)
        return;
    st->ops->trim(st, cut);
    ch->dropped += expired;
    sync_range(ch);
}

/* Every operation trims first; most channels have nothing that could be trimmed: no retention,
 * and no acknowledgement since the head was last found unfinished. */
static inline void trim(channel *ch, double now)
{
    if (ch->count > 0 && (ch->retention > 0 || ch->done_at_head))
        trim_head(ch, now);
}

/* ---- lifecycle ---- */

int channel_store_config(const channel_config *cfg, store_config *out)
{
    if (!cfg || !cfg->id || !cfg->id[0])
        return -1;
    size_t capacity = cfg->capacity ? cfg->capacity : DEFAULT_CAPACITY;
    if (capacity > CHANNEL_MAX_CAPACITY)
        return -1;
    *out = (store_config){
        .capacity = capacity,
        .index_ids = cfg->kind == CHANNEL_WORK_QUEUE,
        .max_cursors = CHANNEL_MAX_READERS,
    };
    return 0;
}

channel *channel_new(const channel_config *cfg)
{
    store_config sc;
    if (channel_store_config(cfg, &sc) != 0)
        return NULL;
    store *st = store_memory_new(&sc);
    return st ? channel_new_with_store(cfg, st) : NULL;
}

channel *channel_new_with_store(const channel_config *cfg, store *st)
{
    if (!st)
        return NULL;
    store_config sc;
    channel *ch = channel_store_config(cfg, &sc) == 0 ? calloc(1, sizeof *ch) : NULL;
    if (!ch) {
        st->ops->free(st);
        return NULL;
    }
    ch->store = st;
    sync_range(ch);
    ch->is_public = cfg->is_public;
    ch->kind = cfg->kind;
    ch->period = cfg->period;
    ch->retention = cfg->retention;
    ch->claim_timeout = cfg->claim_timeout > 0 ? cfg->claim_timeout : DEFAULT_CLAIM_TIMEOUT;
    ch->capacity = sc.capacity;
    ch->max_bytes = cfg->max_bytes;
    ch->max_message = cfg->max_message;
    ch->done_at_head = ch->kind == CHANNEL_WORK_QUEUE; /* a store may open with finished work */
    ch->rng = seed_rng(ch);

    ch->id = strdup(cfg->id);
    ch->name = strdup(cfg->name ? cfg->name : cfg->id);
    ch->description = strdup(cfg->description ? cfg->description : "");
    if (!ch->id || !ch->name || !ch->description) {
        channel_free(ch);
        return NULL;
    }
    return ch;
}

void channel_free(channel *ch)
{
    if (!ch)
        return;
    ch->store->ops->free(ch->store);
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

void channel_set_account(channel *ch, size_t *used, const size_t *limit)
{
    if (ch->owner_used)
        *ch->owner_used -= ch->bytes;
    ch->owner_used = used;
    ch->owner_limit = used ? limit : NULL;
    if (used)
        *used += ch->bytes;
}

int channel_size_problem(const channel *ch, const message_in *in, size_t *size, size_t *limit)
{
    size_t content = ch->max_message ? message_in_content_size(in) : 0, need = message_in_size(in);
    if (ch->max_message && content > ch->max_message) {
        *size = content;
        *limit = ch->max_message;
        return 1;
    }
    if (ch->max_bytes && need > ch->max_bytes) {
        *size = need;
        *limit = ch->max_bytes;
        return 1;
    }
    return 0;
}

/* The bytes the log may hold after this write: max_bytes, and no more than what it holds plus
 * what its owner has left under its limit (less, should the owner be past it); SIZE_MAX when
 * nothing bounds it. */
static size_t write_budget(const channel *ch)
{
    size_t budget = ch->max_bytes ? ch->max_bytes : SIZE_MAX;
    if (ch->owner_used && ch->owner_limit && *ch->owner_limit) {
        size_t used = *ch->owner_used, limit = *ch->owner_limit, share;
        if (used <= limit)
            share = ch->bytes + (limit - used);
        else
            share = ch->bytes > used - limit ? ch->bytes - (used - limit) : 0;
        if (share < budget)
            budget = share;
    }
    return budget;
}

/* ---- writing ---- */

int channel_write(channel *ch, const message_in *in, double now, const message **out)
{
    if (ch->stopped)
        return CHANNEL_ESTOPPED;
    size_t need = message_in_size(in), size, limit;
    if (channel_size_problem(ch, in, &size, &limit)) {
        ch->refused_large++;
        return CHANNEL_ETOOBIG;
    }
    trim(ch, now);
    /* trim() has already forgotten acknowledged work at the head. */
    int wq = ch->kind == CHANNEL_WORK_QUEUE;
    size_t budget = write_budget(ch);
    if (need > budget || (wq && (ch->count == ch->capacity || ch->bytes + need > budget))) {
        ch->refused_full++;
        return CHANNEL_EFULL;
    }

    /* Build the whole message before the store sees it, and the store does everything that
     * can fail before it changes: a failure changes nothing. */
    message *m = message_new(in, now);
    if (!m)
        return CHANNEL_ENOMEM;
    if (!m->id[0])
        make_uuid(ch, m->id);
    size_t before = ch->count;
    int full = before == ch->capacity;
    /* full, or over budget: the oldest make room */
    int rc = ch->store->ops->append(ch->store, m, !wq, budget == SIZE_MAX ? 0 : budget);
    if (rc != STORE_OK) {
        message_free(m);
        if (rc == STORE_EFULL)
            ch->refused_full++;
        return from_store(rc);
    }
    sync_range(ch);
    uint64_t gone = before + 1 - ch->count; /* the one capacity makes room for, and the bytes' */
    ch->dropped += gone;
    ch->dropped_bytes += gone - (uint64_t)(full && gone > 0);
    ch->writes++;
    if (out)
        *out = m;
    if (ch->visible_seq > m->seq) /* in memory: readers see it at once; durable: at its commit */
        notify(ch, m);
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
    b->more = 0;
}

/* A read's running total against its bound. */
typedef struct tally {
    const channel_read_bound *bound; /* NULL: none */
    size_t used;
} tally;

/* Whether m still fits in the batch (counting it if so); the first message always does. */
static int fits(tally *t, const message *m, size_t taken)
{
    if (!t->bound)
        return 1;
    size_t c = t->bound->cost(m, t->bound->ud);
    if (taken > 0 && (c > t->bound->max || t->used > t->bound->max - c))
        return 0;
    t->used += c;
    return 1;
}

/* Sizes out->items for n messages; an empty batch allocates nothing. */
static int batch_alloc(channel_batch *out, size_t n)
{
    if (n == 0)
        return 0;
    out->items = malloc(n * sizeof *out->items);
    return out->items ? 0 : -1;
}

/* Fills out with up to n messages from `seq` on that are for `reader` (addressed to it or to
 * nobody), within the tally's bound; returns the seq after the last message examined (a
 * message left out by the bound is not examined: the reader gets it next time). */
static uint64_t mailbox_fill(channel *ch, const char *reader, uint64_t seq, size_t n, tally *t,
                             channel_batch *out)
{
    const message *buf[SCAN];
    while (out->count < n) {
        size_t k = visible_read(ch, seq, buf, SCAN), i = 0;
        for (; i < k && out->count < n; i++) {
            const message *m = buf[i];
            if (m->recipient_id && strcmp(m->recipient_id, reader) != 0)
                continue;
            if (!fits(t, m, out->count)) {
                out->more = 1;
                return m->seq;
            }
            out->items[out->count++] = m;
        }
        if (i < k) /* stopped at the n-th: buf[i - 1] was the last examined */
            return buf[i - 1]->seq + 1;
        if (k < SCAN)
            return ch->visible_seq;
        seq = buf[k - 1]->seq + 1;
    }
    return seq;
}

int channel_read(channel *ch, const char *reader, size_t limit, int has_after, uint64_t after,
                 double now, channel_batch *out)
{
    return channel_read_bounded(ch, reader, limit, has_after, after, now, NULL, out);
}

void channel_sync(channel *ch)
{
    if (ch->before_read)
        ch->before_read(ch, ch->before_read_ud);
}

int channel_read_bounded(channel *ch, const char *reader, size_t limit, int has_after, uint64_t after,
                         double now, const channel_read_bound *bound, channel_batch *out)
{
    channel_sync(ch);
    out->items = NULL;
    out->count = 0;
    out->missed = 0;
    out->more = 0;
    tally t = {bound, 0};
    if (ch->kind == CHANNEL_WORK_QUEUE)
        return CHANNEL_EKIND;
    trim(ch, now);

    /* Find the start before allocating anything, so a failure leaves no new reader behind. */
    store *st = ch->store;
    store_cursor *r = st->ops->cursor_get(st, reader);
    uint64_t start = r ? r->next_seq : ch->first_seq;
    if (has_after)
        start = after >= ch->visible_seq ? ch->visible_seq : after + 1;
    uint64_t missed = 0;
    if (start < ch->first_seq) {
        missed = ch->first_seq - start;
        start = ch->first_seq;
    }
    if (start > ch->visible_seq)
        start = ch->visible_seq;

    size_t n = limit ? limit : DEFAULT_LIMIT;
    if (ch->visible_seq - start < n)
        n = (size_t)(ch->visible_seq - start);
    if (batch_alloc(out, n) != 0)
        return CHANNEL_ENOMEM;

    uint64_t seq; /* the reader's next seq: past every message examined */
    if (ch->kind == CHANNEL_MAILBOX) {
        seq = mailbox_fill(ch, reader, start, n, &t, out);
    } else {
        size_t k = visible_read(ch, start, out->items, n);
        while (out->count < k && fits(&t, out->items[out->count], out->count))
            out->count++;
        out->more = out->count < k;
        seq = (out->count == n || out->more) && out->count > 0 ? out->items[out->count - 1]->seq + 1
                                                               : ch->visible_seq;
    }
    int rc = st->ops->cursor_set(st, reader, r, seq, (r ? r->missed : 0) + missed);
    if (rc != STORE_OK) {
        channel_batch_free(out);
        return from_store(rc);
    }
    out->missed = missed;
    ch->reads += out->count;
    return CHANNEL_OK;
}

uint64_t channel_cursor(channel *ch, const char *reader)
{
    store_cursor *r = ch->store->ops->cursor_get(ch->store, reader);
    return r ? r->next_seq : 0;
}

int channel_rewind(channel *ch, const char *reader, uint64_t at, uint64_t back_to)
{
    store *st = ch->store;
    store_cursor *r = st->ops->cursor_get(st, reader);
    if (!r || r->next_seq != at || back_to > at)
        return 0;
    return st->ops->cursor_set(st, reader, r, back_to, r->missed) == STORE_OK;
}

static int claimable(const message *m, double now)
{
    return !m->done && (!m->claimed_by || now >= m->claim_deadline);
}

int channel_claim(channel *ch, const char *reader, size_t limit, double now, channel_batch *out)
{
    return channel_claim_bounded(ch, reader, limit, now, NULL, out);
}

int channel_claim_bounded(channel *ch, const char *reader, size_t limit, double now,
                          const channel_read_bound *bound, channel_batch *out)
{
    channel_sync(ch);
    out->items = NULL;
    out->count = 0;
    out->missed = 0;
    out->more = 0;
    tally t = {bound, 0};
    if (ch->kind != CHANNEL_WORK_QUEUE && ch->kind != CHANNEL_PASSTHROUGH)
        return CHANNEL_EKIND;
    trim(ch, now);

    /* Find the first claimable message before allocating: polls of a busy queue usually find
     * nothing and should allocate nothing. */
    store *st = ch->store;
    const message *buf[SCAN], *first = NULL;
    size_t want = limit ? limit : DEFAULT_LIMIT, chunk = 1; /* often the head: look at it alone */
    for (uint64_t from = ch->first_seq; !first;) {
        size_t k = visible_read(ch, from, buf, chunk);
        for (size_t i = 0; i < k && !first; i++)
            if (claimable(buf[i], now))
                first = buf[i];
        if (k < chunk)
            break;
        from = buf[k - 1]->seq + 1;
        chunk = SCAN;
    }
    if (!first)
        return CHANNEL_OK;
    /* No more than this many can be claimable: read straight into the batch, keep those that are. */
    size_t cap = ch->visible_seq - first->seq < want ? (size_t)(ch->visible_seq - first->seq) : want;
    if (batch_alloc(out, cap) != 0)
        return CHANNEL_ENOMEM;
    for (uint64_t from = first->seq; out->count < cap && !out->more;) {
        const message **got = out->items + out->count;
        size_t k = visible_read(ch, from, got, cap - out->count);
        if (k == 0)
            break;
        from = got[k - 1]->seq + 1;
        for (size_t i = 0; i < k && !out->more; i++) {
            if (!claimable(got[i], now))
                continue;
            if (fits(&t, got[i], out->count))
                out->items[out->count++] = got[i];
            else
                out->more = 1;
        }
    }

    if (ch->kind == CHANNEL_PASSTHROUGH) {
        st->ops->done(st, out->items, out->count); /* taken */
    } else {
        int rc = st->ops->claim(st, out->items, out->count, reader, now + ch->claim_timeout);
        if (rc != STORE_OK) {
            channel_batch_free(out);
            return from_store(rc);
        }
    }
    ch->claims += out->count;
    ch->reads += out->count;
    return CHANNEL_OK;
}

/* The message `id` names, when `reader` holds its claim and the work is not done. */
static const message *held_by(channel *ch, const char *reader, const char *id)
{
    if (!id)
        return NULL;
    const message *m = ch->store->ops->find(ch->store, id);
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
        const message *m = held_by(ch, reader, ids[i]);
        if (!m)
            continue;
        ch->store->ops->done(ch->store, &m, 1);
        acked++;
    }
    ch->acked += (uint64_t)acked;
    ch->done_at_head |= acked > 0;
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
        const message *m = held_by(ch, reader, ids[i]);
        if (!m)
            continue;
        ch->store->ops->release(ch->store, &m, 1);
        released++;
    }
    ch->nacked += (uint64_t)released;
    if (released > 0) /* work is on offer again: wake whoever waits for it */
        notify(ch, NULL);
    return released;
}

/* ---- queries ---- */

const message *channel_find(const channel *ch, const char *message_id)
{
    return ch->store->ops->find(ch->store, message_id);
}

uint64_t channel_last_seq(const channel *ch)
{
    return ch->visible_seq - 1;
}

size_t channel_pending(const channel *ch)
{
    store *st = ch->store;
    const message *buf[SCAN];
    size_t pending = 0, k;
    uint64_t from = ch->first_seq;
    do {
        k = st->ops->read(st, from, buf, SCAN);
        for (size_t i = 0; i < k; i++)
            pending += !buf[i]->done;
        if (k > 0)
            from = buf[k - 1]->seq + 1;
    } while (k == SCAN);
    return pending;
}

void channel_forget_reader(channel *ch, const char *reader)
{
    ch->store->ops->cursor_forget(ch->store, reader);
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
