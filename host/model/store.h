/* store.h - the channel store: where a channel's log, the claims on its messages and its
 * readers' cursors are kept. One interface, a table of functions over an opaque state; the
 * channel (channel.c) reaches its data through nothing else. The channel decides (kinds, cursor
 * policy, the mailbox filter, who may claim, retention and capacity); a store keeps what it is
 * told and hands it back, and assigns the seqs.
 *
 * Two of them: the memory store (store_memory.c): a ring that grows up to capacity, an id
 * index for work queues, a cursor table that evicts its stalest entry; and the SQLite store of
 * durable channels (sys/store_sqlite.c, over a memory store), as outlined at the end.
 *
 * The contract, for every implementation:
 * - Single-threaded: called on the loop thread only. No call blocks: a durable store reads from
 *   memory and writes through commits (see Durability); a thread of its own is its business.
 * - Errors: a call that can fail returns STORE_OK or a STORE_E* code, and a call that fails
 *   changes nothing (so the channel builds everything before it calls, as channel_write does).
 *   Calls that return void cannot fail. A store whose commit failed is failed: append, claim,
 *   cursor_set and flush return STORE_EIO from then on, so it never runs on ahead of what it
 *   could keep, and the host stops serving its channel.
 * - Messages: a message is built with message_new; append takes it and the store owns it from
 *   then on (freeing it with message_free when it is trimmed and at free). Pointers the store
 *   hands out (read, find) stay valid until the next append, trim or free of that store; claim,
 *   done and release change a message's claim fields in place and never move it. Callers
 *   only read messages: every change goes through the store, so a durable one sees it.
 * - Bytes: a store accounts the bytes of what it holds (message->bytes, summed, in range), so
 *   the channel can bound its log by bytes as well as by count.
 * - Seqs: the store numbers appended messages 1, 2, 3... and never reuses one, not even once
 *   every message is trimmed; a durable store goes on counting after a restart.
 * - Cursors: a cursor is a reader's place (the next seq it has not seen) and how many messages
 *   it missed in all. A store keeps at most max_cursors; creating one past that evicts the one
 *   set least recently. A cursor pointer stays valid until the next cursor_set that creates a
 *   cursor, cursor_forget or free. */
#ifndef SSSN_STORE_H
#define SSSN_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "model/message.h"

enum {
    STORE_OK = 0,
    STORE_ENOMEM = -1, /* out of memory */
    STORE_EFULL = -3,  /* append to a full store without make_room */
    STORE_EIO = -5,    /* a durable store could not read or commit: it takes no more changes */
};

typedef struct store store;
typedef struct store_ops store_ops;

/* Called by a durable store on the loop thread once commit `csn` is durable (err STORE_OK) or
 * has failed (err STORE_EIO; then every later change is refused too). */
typedef void (*store_commit_fn)(void *data, uint64_t csn, int err);

typedef struct store_config {
    size_t capacity;      /* messages held at most, >= 1; the memory store's ring grows to it */
    int index_ids;        /* keep an id index (work queues: acks look ids up all the time); else
                           * find may search the log */
    size_t max_cursors;   /* cursors kept at most, >= 1 (the channel passes CHANNEL_MAX_READERS) */
    store_commit_fn on_commit; /* durable stores; NULL allowed, never called by the memory store */
    void *commit_data;
} store_config;

/* What a store holds: seqs [first_seq, next_seq), `count` messages (every seq in the range for
 * the memory store; a store may lack some, count says how many it has). Empty: first == next. */
typedef struct store_range {
    uint64_t first_seq, next_seq;
    size_t count;
    size_t bytes; /* the sizes (message->bytes) of the messages held, summed */
    uint64_t visible_seq; /* readers may see seqs below it: the next seq of what is committed
                           * (<= next_seq; may be below first_seq); next_seq in memory */
} store_range;

typedef struct store_cursor {
    uint64_t next_seq; /* the next seq this reader has not seen */
    uint64_t missed;   /* total messages dropped before this reader read them */
} store_cursor;

struct store_ops {
    const char *name; /* "memory", "sqlite" */

    /* ---- the log ---- */
    /* Takes m (built by message_new), gives it the next seq and keeps it. When the store holds
     * capacity messages, or holding m too would take its bytes (range().bytes) past max_bytes
     * (0: no bound), the oldest are dropped in the same step until m fits if make_room, else
     * STORE_EFULL. A message larger than max_bytes by itself is STORE_EFULL either way (nothing
     * is dropped for it). The byte bound is an argument, not a setting: the channel works it
     * out for each write (its own budget, and what its owner has left). Fails with
     * STORE_ENOMEM or STORE_EIO too; on any failure m is still the caller's and the store is
     * unchanged. */
    int (*append)(store *st, message *m, int make_room, size_t max_bytes);
    /* Fills out with up to max messages held whose seq >= from_seq, in seq order; returns how
     * many. Fewer than max means there are no more. Never fails (a durable store reads memory). */
    size_t (*read)(store *st, uint64_t from_seq, const message **out, size_t max);
    store_range (*range)(const store *st);
    /* Drops every message with seq < before_seq (the oldest first, as retention, capacity and
     * finished work do); a durable store may delete on disk in bounded steps later, but the
     * messages are gone for read and find at once. */
    void (*trim)(store *st, uint64_t before_seq);
    /* The held message with this id (the newest, should two share it), or NULL. O(1) with
     * index_ids; without, may take O(count). */
    const message *(*find)(store *st, const char *id);

    /* ---- claims: the exclusive-read state of held messages ---- */
    /* Sets claimed_by (a copy of holder) and claim_deadline on each of ms[0..n): all or none.
     * Fails with STORE_ENOMEM or STORE_EIO. */
    int (*claim)(store *st, const message *const *ms, size_t n, const char *holder,
                 double deadline);
    void (*done)(store *st, const message *const *ms, size_t n);    /* done = 1, claim cleared */
    void (*release)(store *st, const message *const *ms, size_t n); /* claim cleared, deadline 0 */

    /* ---- reader cursors ---- */
    store_cursor *(*cursor_get)(store *st, const char *reader); /* NULL when it has none */
    /* Sets the reader's cursor and marks it the most recently set. `cur` is NULL or what
     * cursor_get returned for this reader, still valid (a handle that spares a second look-up);
     * a reader without a cursor gets one, evicting the least recently set past max_cursors.
     * Fails with STORE_ENOMEM or STORE_EIO. */
    int (*cursor_set)(store *st, const char *reader, store_cursor *cur, uint64_t next_seq,
                      uint64_t missed);
    void (*cursor_forget)(store *st, const char *reader);
    size_t (*cursor_count)(const store *st);

    /* ---- durability (group commit) ----
     * Every change (append, trim, claim, done, release, cursor_set, cursor_forget) belongs to
     * a commit, numbered 1, 2, 3... (a commit sequence number, CSN). `mark` is the CSN of the
     * commit that carries the changes made so far (0 before any), `committed` the highest CSN
     * made durable. A change is durable once committed(st) >= the mark read right after it.
     * `flush` closes the open commit (later changes go into the next) and starts
     * making it durable; the host calls it once per loop turn for each store whose mark moved
     * since its last flush, so every write of a turn shares one commit, and the store calls
     * on_commit when that commit is done.
     * A caller that must acknowledge only durable writes (the HTTP 200, write_channel
     * returning) reads mark after channel_write and waits until on_commit reports a CSN >= it.
     * The memory store commits each change at once: committed == mark (the changes made so
     * far), flush does nothing. */
    uint64_t (*mark)(const store *st);
    uint64_t (*committed)(const store *st);
    int (*flush)(store *st); /* STORE_OK, or STORE_EIO when the store is failed */

    /* The store's own epoch: an id that stays the same for as long as its seqs mean the same
     * messages (a durable store keeps it across restarts), or NULL when the log lives only as
     * long as this process (the host's instance id is its epoch). */
    const char *(*epoch)(const store *st);

    void (*free)(store *st); /* frees every message and cursor; a durable store flushes first */
};

/* A store: its functions and, after this header, its state (each implementation embeds this). */
struct store {
    const store_ops *ops;
};

/* The memory store. NULL when out of memory or cfg is invalid (capacity or max_cursors 0). */
store *store_memory_new(const store_config *cfg);
size_t store_memory_slots(const store *st); /* ring slots allocated (tests: it grows lazily) */
/* An empty memory store numbers its next append next_seq (>= 1): a durable store over it
 * loads a log that starts past 1. 0, or -1 when it holds messages. */
int store_memory_start_at(store *st, uint64_t next_seq);
/* fn(ud, reader) is called when a cursor is evicted past max_cursors, before it goes (a
 * durable store over it forgets it on disk too). */
void store_memory_on_evict(store *st, void (*fn)(void *ud, const char *reader), void *ud);

/* ---- The SQLite store (sys/store_sqlite.h) ----
 * A file per channel under --data-dir, WAL mode; tables for messages (seq key, id, fields,
 * claimed_by, claim_deadline, done), cursors (reader key, next_seq, missed, last set) and one
 * meta row (next_seq, epoch). What the contract above asks of it:
 * - Held messages stay in memory as well (the log is bounded by capacity): read and find never
 *   touch the disk, and the pointer lifetimes above hold. Opening loads them, the cursors and
 *   next_seq; a file it cannot read is STORE_EIO at open, and the host does not serve the
 *   channel.
 * - Each change is applied in memory at once and queued as row changes of the open commit
 *   (cursor_set coalesced per reader); flush hands the commit to a writer thread that owns the
 *   connection (one transaction, one fsync per --sync policy) and on_commit comes back through
 *   an ev_async, so the loop never waits for the disk; trim's deletes go in bounded steps.
 * - A write is acknowledged after commit: callers wait on mark/on_commit as described above.
 * - Claim deadlines are host clock times (Unix seconds), so claims survive a restart and one
 *   that lapsed while the host was down is offered again at once; done work never comes back.
 * - epoch returns the id kept in the meta row.
 * It needs the loop (ev_async), so it lives above rt/ and implements this table from there;
 * the channel takes it through channel_new_with_store. */

#endif
