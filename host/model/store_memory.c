/* store_memory.c - the memory store (see store.h): a channel's log as a ring of message pointers
 * that grows as it fills, up to capacity; an id index when asked (work queues); reader cursors
 * in a hash map, the least recently set evicted past max_cursors. Everything is O(1) but find
 * without an index (O(count), newest first) and creating a cursor past the cap (O(cursors)). */
#include "model/store.h"

#include <stdlib.h>
#include <string.h>

#include "core/hashmap.h"

#define RING_START 64 /* slots a new ring starts with */

typedef struct mem_cursor {
    store_cursor pub;
    uint64_t stamp; /* when it was last set, on the store's cursor clock (for eviction) */
} mem_cursor;

typedef struct mem_store {
    store base;
    size_t capacity, max_cursors;
    /* the log: a ring holding seqs [first_seq, next_seq); it grows up to capacity slots */
    message **ring;
    size_t ring_size;   /* slots allocated */
    size_t head;        /* ring index of first_seq */
    size_t count;       /* messages held */
    size_t bytes;       /* their sizes (message->bytes), summed */
    uint64_t first_seq; /* seq of the oldest message held (== next_seq when empty) */
    uint64_t next_seq;  /* seq the next append gets */
    hashmap *by_id;     /* message id -> message*, for messages held; NULL without index_ids */
    hashmap *cursors;   /* reader name -> mem_cursor* */
    uint64_t cursor_clock; /* counts cursor_set calls, to stamp cursors */
    uint64_t csn;       /* changes made: each is its own commit */
    void (*on_evict)(void *ud, const char *reader); /* store_memory_on_evict */
    void *evict_ud;
} mem_store;

static mem_store *mem(store *st) { return (mem_store *)st; }
static const mem_store *cmem(const store *st) { return (const mem_store *)st; }

/* ---- the log ---- */

/* The i-th message held, counting from the oldest. */
static message *ring_at(const mem_store *s, size_t i)
{
    size_t pos = s->head + i;
    return s->ring[pos < s->ring_size ? pos : pos - s->ring_size];
}

/* The ring grows as messages arrive, up to capacity slots, so a large capacity costs memory
 * only once it is used. Called before an append changes anything: a failure changes nothing. */
static int ring_reserve(mem_store *s)
{
    if (s->count < s->ring_size || s->ring_size == s->capacity)
        return 0;
    size_t size = s->ring_size * 2 < s->capacity ? s->ring_size * 2 : s->capacity;
    message **ring = calloc(size, sizeof *ring);
    if (!ring)
        return -1;
    for (size_t i = 0; i < s->count; i++)
        ring[i] = ring_at(s, i);
    free(s->ring);
    s->ring = ring;
    s->ring_size = size;
    s->head = 0;
    return 0;
}

/* Unlinks and frees the oldest message. The by_id entry is removed only when it still points
 * here: a later message written with the same explicit id owns the entry now. */
static void drop_head(mem_store *s)
{
    message *m = s->ring[s->head];
    s->ring[s->head] = NULL;
    s->head = s->head + 1 < s->ring_size ? s->head + 1 : 0;
    s->count--;
    s->bytes -= m->bytes;
    s->first_seq++;
    if (s->by_id && hashmap_get(s->by_id, m->id) == m)
        hashmap_remove(s->by_id, m->id);
    message_free(m);
}

static int mem_append(store *st, message *m, int make_room, size_t max_bytes)
{
    mem_store *s = mem(st);
    int full = s->count == s->capacity;
    int over = max_bytes && s->bytes + m->bytes > max_bytes;
    if ((max_bytes && m->bytes > max_bytes) || ((full || over) && !make_room))
        return STORE_EFULL;
    /* Everything that can fail comes first: room in the ring, then the index entry. */
    if (ring_reserve(s) < 0)
        return STORE_ENOMEM;
    if (s->by_id && hashmap_put(s->by_id, m->id, m) != 0)
        return STORE_ENOMEM;
    if (full)
        drop_head(s);
    while (max_bytes && s->bytes + m->bytes > max_bytes) /* m alone fits: this ends */
        drop_head(s);
    m->seq = s->next_seq++;
    size_t pos = s->head + s->count;
    s->ring[pos < s->ring_size ? pos : pos - s->ring_size] = m;
    s->count++;
    s->bytes += m->bytes;
    s->csn++;
    return STORE_OK;
}

static size_t mem_read(store *st, uint64_t from_seq, const message **out, size_t max)
{
    const mem_store *s = mem(st);
    if (from_seq < s->first_seq)
        from_seq = s->first_seq;
    if (from_seq >= s->next_seq || max == 0)
        return 0;
    size_t i = (size_t)(from_seq - s->first_seq);
    size_t n = s->count - i < max ? s->count - i : max;
    /* Two runs at most: up to the end of the ring, then from its start. */
    size_t pos = s->head + i;
    if (pos >= s->ring_size)
        pos -= s->ring_size;
    size_t run = s->ring_size - pos < n ? s->ring_size - pos : n;
    if (n <= 8) { /* a few: cheaper than calling memcpy */
        for (size_t j = 0; j < run; j++)
            out[j] = s->ring[pos + j];
        for (size_t j = run; j < n; j++)
            out[j] = s->ring[j - run];
        return n;
    }
    memcpy(out, s->ring + pos, run * sizeof *out);
    if (n > run)
        memcpy(out + run, s->ring, (n - run) * sizeof *out);
    return n;
}

static store_range mem_range(const store *st)
{
    const mem_store *s = cmem(st);
    return (store_range){.first_seq = s->first_seq, .next_seq = s->next_seq, .count = s->count,
                         .bytes = s->bytes, .visible_seq = s->next_seq};
}

static void mem_trim(store *st, uint64_t before_seq)
{
    mem_store *s = mem(st);
    int changed = 0;
    while (s->count > 0 && s->first_seq < before_seq) {
        drop_head(s);
        changed = 1;
    }
    s->csn += (uint64_t)changed;
}

/* With an index, a look-up; without, a search from the newest message back, which spares every
 * append an index update. */
static const message *mem_find(store *st, const char *id)
{
    const mem_store *s = mem(st);
    if (s->by_id)
        return hashmap_get(s->by_id, id);
    for (size_t i = s->count; i-- > 0;) {
        const message *m = ring_at(s, i);
        if (strcmp(m->id, id) == 0)
            return m;
    }
    return NULL;
}

/* ---- claims ---- */

/* The store owns every message it holds: changing one it handed out as const is its right. */
static message *owned(const message *m) { return (message *)m; }

static int mem_claim(store *st, const message *const *ms, size_t n, const char *holder,
                     double deadline)
{
    if (n == 0)
        return STORE_OK;
    /* Copy the holder's name for every message first, so running out of memory halfway leaves
     * no claim half made. */
    char **names = malloc(n * sizeof *names);
    size_t made = 0;
    if (names) {
        for (; made < n; made++) {
            names[made] = strdup(holder);
            if (!names[made])
                break;
        }
    }
    if (!names || made < n) {
        while (made > 0)
            free(names[--made]);
        free(names);
        return STORE_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        message *m = owned(ms[i]);
        free(m->claimed_by); /* a lapsed claim of another reader */
        m->claimed_by = names[i];
        m->claim_deadline = deadline;
    }
    free(names);
    mem(st)->csn++;
    return STORE_OK;
}

static void mem_done(store *st, const message *const *ms, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        message *m = owned(ms[i]);
        m->done = 1;
        free(m->claimed_by);
        m->claimed_by = NULL;
    }
    mem(st)->csn += n > 0;
}

static void mem_release(store *st, const message *const *ms, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        message *m = owned(ms[i]);
        free(m->claimed_by);
        m->claimed_by = NULL;
        m->claim_deadline = 0;
    }
    mem(st)->csn += n > 0;
}

/* ---- cursors ---- */

static store_cursor *mem_cursor_get(store *st, const char *reader)
{
    mem_cursor *c = hashmap_get(mem(st)->cursors, reader);
    return c ? &c->pub : NULL;
}

/* Called once the map holds more than max_cursors: the newest cursor has the highest stamp,
 * so it is never the one to go. */
static void evict_stalest(mem_store *s)
{
    hashmap_iter it;
    const char *key, *stalest = NULL;
    void *v;
    uint64_t oldest = UINT64_MAX;
    hashmap_iter_init(s->cursors, &it);
    while (hashmap_iter_next(s->cursors, &it, &key, &v)) {
        const mem_cursor *c = v;
        if (c->stamp < oldest) {
            oldest = c->stamp;
            stalest = key;
        }
    }
    if (!stalest)
        return;
    if (s->on_evict)
        s->on_evict(s->evict_ud, stalest);
    free(hashmap_remove(s->cursors, stalest));
}

static int mem_cursor_set(store *st, const char *reader, store_cursor *cur, uint64_t next_seq,
                          uint64_t missed)
{
    mem_store *s = mem(st);
    mem_cursor *c = cur ? (mem_cursor *)cur : hashmap_get(s->cursors, reader);
    uint64_t stamp = s->cursor_clock + 1;
    if (!c) {
        c = malloc(sizeof *c);
        if (!c)
            return STORE_ENOMEM;
        if (hashmap_put(s->cursors, reader, c) != 0) {
            free(c);
            return STORE_ENOMEM;
        }
        c->stamp = stamp;
        if (hashmap_count(s->cursors) > s->max_cursors)
            evict_stalest(s);
    }
    c->pub.next_seq = next_seq;
    c->pub.missed = missed;
    c->stamp = s->cursor_clock = stamp;
    s->csn++;
    return STORE_OK;
}

static void mem_cursor_forget(store *st, const char *reader)
{
    mem_store *s = mem(st);
    mem_cursor *c = hashmap_remove(s->cursors, reader);
    s->csn += c != NULL;
    free(c);
}

static size_t mem_cursor_count(const store *st)
{
    return hashmap_count(cmem(st)->cursors);
}

/* ---- durability: every change is its own commit, made at once ---- */

static uint64_t mem_mark(const store *st) { return cmem(st)->csn; }
static uint64_t mem_committed(const store *st) { return cmem(st)->csn; }
static int mem_flush(store *st) { (void)st; return STORE_OK; }
static const char *mem_epoch(const store *st) { (void)st; return NULL; }

/* ---- lifecycle ---- */

static void mem_free(store *st)
{
    mem_store *s = mem(st);
    if (!s)
        return;
    if (s->ring) {
        while (s->count > 0)
            drop_head(s);
        free(s->ring);
    }
    if (s->cursors) {
        hashmap_iter it;
        void *c;
        hashmap_iter_init(s->cursors, &it);
        while (hashmap_iter_next(s->cursors, &it, NULL, &c))
            free(c);
        hashmap_free(s->cursors);
    }
    hashmap_free(s->by_id);
    free(s);
}

static const store_ops mem_ops = {
    .name = "memory",
    .append = mem_append,
    .read = mem_read,
    .range = mem_range,
    .trim = mem_trim,
    .find = mem_find,
    .claim = mem_claim,
    .done = mem_done,
    .release = mem_release,
    .cursor_get = mem_cursor_get,
    .cursor_set = mem_cursor_set,
    .cursor_forget = mem_cursor_forget,
    .cursor_count = mem_cursor_count,
    .mark = mem_mark,
    .committed = mem_committed,
    .flush = mem_flush,
    .epoch = mem_epoch,
    .free = mem_free,
};

store *store_memory_new(const store_config *cfg)
{
    if (!cfg || cfg->capacity == 0 || cfg->max_cursors == 0)
        return NULL;
    mem_store *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->base.ops = &mem_ops;
    s->capacity = cfg->capacity;
    s->max_cursors = cfg->max_cursors;
    s->ring_size = cfg->capacity < RING_START ? cfg->capacity : RING_START;
    s->first_seq = s->next_seq = 1;
    s->ring = calloc(s->ring_size, sizeof *s->ring);
    s->by_id = cfg->index_ids ? hashmap_new() : NULL;
    s->cursors = hashmap_new();
    if (!s->ring || (cfg->index_ids && !s->by_id) || !s->cursors) {
        mem_free(&s->base);
        return NULL;
    }
    return &s->base;
}

size_t store_memory_slots(const store *st)
{
    return st && st->ops == &mem_ops ? cmem(st)->ring_size : 0;
}

int store_memory_start_at(store *st, uint64_t next_seq)
{
    if (!st || st->ops != &mem_ops || next_seq == 0)
        return -1;
    mem_store *s = mem(st);
    if (s->count > 0)
        return -1;
    s->first_seq = s->next_seq = next_seq;
    return 0;
}

void store_memory_on_evict(store *st, void (*fn)(void *ud, const char *reader), void *ud)
{
    if (!st || st->ops != &mem_ops)
        return;
    mem(st)->on_evict = fn;
    mem(st)->evict_ud = ud;
}
