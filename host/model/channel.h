/* channel.h - a channel: a bounded log of messages with integer sequence numbers.
 * Pure data structure: no event loop, no Lua. Time is passed in by the caller (host clock).
 * The channel holds the semantics (kinds, cursors, the mailbox filter, claims, retention and
 * capacity, watchers, counters); its messages, claims and cursors live in a store (store.h),
 * in memory unless the caller gives another. The host owns channels; readers are named by
 * string (a system id) and each keeps its own cursor in the store. Message pointers handed out
 * stay valid until the next call that mutates the channel (write, read, claim, ack, nack,
 * stop, free): copy what you keep. */
#ifndef SSSN_CHANNEL_H
#define SSSN_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

#include "model/message.h"
#include "model/store.h"

typedef enum {
    CHANNEL_BROADCAST,   /* every reader sees every message; exclusive reads refused */
    CHANNEL_WORK_QUEUE,  /* exclusive claims only; ack / nack; claims expire */
    CHANNEL_MAILBOX,     /* a reader sees messages whose recipient_id is itself or unset */
    CHANNEL_PERIODIC,    /* like broadcast; the host writes the result of a pull function */
    CHANNEL_PASSTHROUGH, /* shared reads (cursor) and exclusive reads (each message taken once) */
} channel_kind;

/* Results of channel operations. */
enum {
    CHANNEL_OK = 0,
    CHANNEL_ENOMEM = -1,
    CHANNEL_ESTOPPED = -2, /* write to a stopped channel */
    CHANNEL_EFULL = -3,    /* work queue at capacity or at its byte budget with unfinished work,
                            * or an owner without room left for the message: write refused */
    CHANNEL_EKIND = -4,    /* operation not allowed for this kind (exclusive read of broadcast...) */
    CHANNEL_EIO = -5,      /* the store failed (a durable store that cannot commit) */
    CHANNEL_ETOOBIG = -6,  /* the message is too large for the channel (channel_size_problem) */
};

const char *channel_kind_name(channel_kind k);          /* "broadcast", "work_queue", ... */
int channel_kind_parse(const char *s, channel_kind *out); /* 0, or -1 for an unknown name */
const char *channel_strerror(int err);                    /* text for a CHANNEL_E* code */

typedef struct channel_config {
    const char *id;          /* required, non-empty */
    const char *name;        /* NULL -> id */
    const char *description; /* NULL -> "" */
    int is_public;           /* visibility: 1 public, 0 private */
    channel_kind kind;
    double period;           /* seconds; meaningful for periodic channels, else 0 */
    size_t capacity;         /* 0 -> 1000 messages; at most CHANNEL_MAX_CAPACITY */
    double retention;        /* seconds a message is kept; 0 -> no time limit */
    double claim_timeout;    /* seconds; 0 -> 30 */
    size_t max_bytes;        /* bytes of messages (message->bytes) the log holds at most; 0 -> no bound */
    size_t max_message;      /* bytes a message may have at most; 0 -> no bound */
} channel_config;

/* Called after every successful write readers may see (m is the message), after a nack that
 * released work and after a commit that made writes visible (m is NULL), synchronously. Must
 * not mutate the channel. */
typedef struct channel_watcher {
    void (*on_write)(struct channel_watcher *w, const message *m);
    void *data;
    struct channel_watcher *prev, *next; /* owned by the channel's list */
} channel_watcher;

/* Cursors a channel keeps at most: past that, a new reader evicts the one that read least
 * recently (which, should it come back, starts again at the oldest message held). Readers are
 * named by callers, HTTP tokens included, so their number must be bounded. */
#define CHANNEL_MAX_READERS 10000

/* Messages a channel may hold at most (the memory store allocates ring slots as it fills). */
#define CHANNEL_MAX_CAPACITY 1000000

typedef struct channel {
    char *id, *name, *description;
    int is_public;
    channel_kind kind;
    double period, retention, claim_timeout;
    size_t capacity;
    size_t max_bytes;   /* the byte budget of the log, 0 = none; may be changed at any time */
    size_t max_message; /* bytes a message may have at most, 0 = none; may be changed too */
    char *owner;    /* system id of the owner, set by the host; NULL when none */
    int stopped;

    /* the log, its claims and the readers' cursors; first_seq, next_seq and count mirror the
     * store's range after every change */
    store *store;
    size_t count;       /* messages held */
    size_t bytes;       /* their sizes, summed (the store's range().bytes) */
    uint64_t first_seq; /* seq of the oldest message held (== next_seq when empty) */
    uint64_t next_seq;  /* seq the next write gets */
    uint64_t visible_seq; /* readers see seqs below it: next_seq in memory, the seq after the
                           * last one committed in a durable store (so no reader sees a write
                           * that a crash could take back, and whose seq it could reuse) */
    channel_watcher *watchers;

    /* counters */
    uint64_t writes, reads, dropped, acked, nacked, claims;
    uint64_t dropped_bytes; /* of `dropped`: messages dropped to keep within the byte budget */
    uint64_t refused_large; /* writes refused with CHANNEL_ETOOBIG */
    uint64_t refused_full;  /* writes refused with CHANNEL_EFULL */

    /* called at the start of every read and claim (and by channel_sync), before the store is
     * looked at: lets whoever writes into the channel lazily append what it deferred (the
     * registry's events after a purge). NULL when none. It may write to the channel. */
    void (*before_read)(struct channel *ch, void *ud);
    void *before_read_ud;

    /* the owner's memory account (channel_set_account), or NULL */
    size_t *owner_used;
    const size_t *owner_limit;

    /* private */
    uint64_t rng;     /* splitmix64 state for message UUIDs, seeded in channel_new */
    int done_at_head; /* work queues: acknowledged work may sit at the head, to be trimmed */
} channel;

/* The epoch of a durable channel's log (the same across restarts), or NULL for a log that
 * lives as long as this process: whether the channel is durable. */
static inline const char *channel_epoch(const channel *ch) { return ch->store->ops->epoch(ch->store); }

/* NULL when cfg->id is empty, capacity is over CHANNEL_MAX_CAPACITY, or out of memory. */
channel *channel_new(const channel_config *cfg);
/* The same over a store the caller made (a durable one), with the settings that
 * channel_store_config gives for cfg. The channel takes st (and frees it when it fails) and
 * starts from what st holds: seqs, messages with their claims, cursors. */
channel *channel_new_with_store(const channel_config *cfg, store *st);
/* The store settings a channel made with cfg needs; -1 when cfg is refused as above. */
int channel_store_config(const channel_config *cfg, store_config *out);
void channel_free(channel *ch);                  /* frees the store; watchers are the caller's */
void channel_stop(channel *ch);                  /* later writes fail with CHANNEL_ESTOPPED; reads go on */

/* Charges the bytes of the channel's log to an owner's memory account from now on: *used
 * goes up and down with ch->bytes (this channel's share is added at once), and a write may
 * take the log only as far as *limit (0 = none) leaves room: the write's byte budget is the
 * smaller of max_bytes and ch->bytes plus what is left under *limit. Pass NULLs to detach
 * (its share is taken back). Detach before the account's memory goes: channel_free does not
 * touch it. */
void channel_set_account(channel *ch, size_t *used, const size_t *limit);

/* Whether the channel takes a message this large: 0 when it does; else 1, with *size and *limit
 * the sizes compared: its content size (message_in_content_size) over max_message, or the
 * bytes it would take (message_in_size) over max_bytes, the whole budget. */
int channel_size_problem(const channel *ch, const message_in *in, size_t *size, size_t *limit);

/* Appends a message. On success *out (if out) points at the stored message.
 * A message too large for the channel (channel_size_problem) is refused with CHANNEL_ETOOBIG.
 * Full broadcast/mailbox/periodic/passthrough channels (at capacity, or at their byte budget)
 * drop their oldest messages until the new one fits (counted in `dropped`, by bytes also in
 * `dropped_bytes`, and as `missed` for readers that had not read them). A full work queue
 * first forgets acknowledged messages at its head, then refuses with CHANNEL_EFULL; so does
 * any channel when the message is larger than what its owner has left (see
 * channel_set_account). Messages older than `retention` are dropped first. */
int channel_write(channel *ch, const message_in *in, double now, const message **out);

typedef struct channel_batch {
    const message **items; /* malloc'd array; free with channel_batch_free */
    size_t count;
    uint64_t missed;       /* messages this reader lost to capacity/retention since it last read */
    int more;              /* the read stopped at its byte bound (channel_read_bound) */
} channel_batch;

/* A bound on what one read hands out, in bytes as the caller counts them: cost(m, ud) is what
 * m adds to the answer. A bounded read stops before the message that would take the sum past
 * max (it always takes the first, so a reader never stalls) and sets the batch's `more`; the
 * reader's cursor, or the claims, cover only what the batch holds. */
typedef struct channel_read_bound {
    size_t max;
    size_t (*cost)(const message *m, void *ud);
    void *ud;
} channel_read_bound;

void channel_batch_free(channel_batch *b);

/* Shared read for `reader` (all kinds but work_queue, which gives CHANNEL_EKIND).
 * Starts at the reader's cursor (a new reader starts at the oldest message held), or at
 * after+1 when has_after. Returns up to `limit` (0 -> 100) messages in seq order; mailbox
 * readers only get messages whose recipient_id is NULL or equals `reader`. The cursor moves
 * past every message examined. */
int channel_read(channel *ch, const char *reader, size_t limit, int has_after, uint64_t after,
                 double now, channel_batch *out);
/* The same within a byte bound (NULL: none). */
int channel_read_bounded(channel *ch, const char *reader, size_t limit, int has_after, uint64_t after,
                         double now, const channel_read_bound *bound, channel_batch *out);

/* A durable store committed: what it committed becomes visible to readers, and the watchers
 * hear of it. The store's commit hook calls it (sys/host.c). */
void channel_committed(channel *ch);

/* The reader's next seq (what its next read starts at), or 0 when it has no cursor. */
uint64_t channel_cursor(channel *ch, const char *reader);
/* Gives a reader back the tail of its last read that it did not use: when its cursor is still
 * at `at` (nothing read since), moves it back to `back_to` (<= at); else changes nothing.
 * Returns 1 when it moved. Messages dropped meanwhile count as missed on the next read. */
int channel_rewind(channel *ch, const char *reader, uint64_t at, uint64_t back_to);

/* Exclusive read (work_queue, passthrough; other kinds give CHANNEL_EKIND).
 * Work queue: up to `limit` messages that are not done and not under a live claim (never
 * claimed, nacked, or claim expired: now >= claim_deadline), in seq order; each becomes
 * claimed by `reader` until now + claim_timeout. Passthrough: up to `limit` messages not yet
 * taken exclusively; each is marked done (taken) at once. */
int channel_claim(channel *ch, const char *reader, size_t limit, double now, channel_batch *out);
/* The same within a byte bound (NULL: none). */
int channel_claim_bounded(channel *ch, const char *reader, size_t limit, double now,
                          const channel_read_bound *bound, channel_batch *out);

/* Work queue acknowledge / negative-acknowledge of message ids. Only the reader holding the
 * claim may do either; ids of other readers' claims, unknown ids and done messages are ignored.
 * Returns how many messages were acknowledged (marked done, and freed once at the head) or
 * released (claim cleared, offered again at once), or CHANNEL_EKIND for other kinds. */
int channel_ack(channel *ch, const char *reader, const char *const *ids, size_t n, double now);
int channel_nack(channel *ch, const char *reader, const char *const *ids, size_t n, double now);

/* Runs the channel's before_read hook, if any: callers that look at the channel's range or
 * counters without reading (info, last_seq, waits) call it first. */
void channel_sync(channel *ch);

const message *channel_find(const channel *ch, const char *message_id); /* held message or NULL */
uint64_t channel_last_seq(const channel *ch); /* seq of the newest message written, 0 if none */
size_t channel_pending(const channel *ch);    /* work queue: messages not yet done */
void channel_forget_reader(channel *ch, const char *reader);

void channel_add_watcher(channel *ch, channel_watcher *w);
void channel_remove_watcher(channel *ch, channel_watcher *w);

#endif
