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
    CHANNEL_EFULL = -3,    /* work queue at capacity with unfinished work: write refused */
    CHANNEL_EKIND = -4,    /* operation not allowed for this kind (exclusive read of broadcast...) */
    CHANNEL_EIO = -5,      /* the store failed (a durable store that cannot commit) */
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
} channel_config;

/* Called after every successful write (m is the message) and after a nack that released work
 * (m is NULL), synchronously. Must not mutate the channel. */
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
    char *owner;    /* system id of the owner, set by the host; NULL when none */
    int stopped;

    /* the log, its claims and the readers' cursors; first_seq, next_seq and count mirror the
     * store's range after every change */
    store *store;
    size_t count;       /* messages held */
    uint64_t first_seq; /* seq of the oldest message held (== next_seq when empty) */
    uint64_t next_seq;  /* seq the next write gets */
    channel_watcher *watchers;

    /* counters */
    uint64_t writes, reads, dropped, acked, nacked, claims;

    /* private */
    uint64_t rng;     /* splitmix64 state for message UUIDs, seeded in channel_new */
    int done_at_head; /* work queues: acknowledged work may sit at the head, to be trimmed */
} channel;

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

/* Appends a message. On success *out (if out) points at the stored message.
 * Full broadcast/mailbox/periodic/passthrough channels drop their oldest message (counted in
 * `dropped`, and as `missed` for readers that had not read it). A full work queue first forgets
 * acknowledged messages at its head, then refuses with CHANNEL_EFULL.
 * Messages older than `retention` are dropped first. */
int channel_write(channel *ch, const message_in *in, double now, const message **out);

typedef struct channel_batch {
    const message **items; /* malloc'd array; free with channel_batch_free */
    size_t count;
    uint64_t missed;       /* messages this reader lost to capacity/retention since it last read */
} channel_batch;

void channel_batch_free(channel_batch *b);

/* Shared read for `reader` (all kinds but work_queue, which gives CHANNEL_EKIND).
 * Starts at the reader's cursor (a new reader starts at the oldest message held), or at
 * after+1 when has_after. Returns up to `limit` (0 -> 100) messages in seq order; mailbox
 * readers only get messages whose recipient_id is NULL or equals `reader`. The cursor moves
 * past every message examined. */
int channel_read(channel *ch, const char *reader, size_t limit, int has_after, uint64_t after,
                 double now, channel_batch *out);

/* Exclusive read (work_queue, passthrough; other kinds give CHANNEL_EKIND).
 * Work queue: up to `limit` messages that are not done and not under a live claim (never
 * claimed, nacked, or claim expired: now >= claim_deadline), in seq order; each becomes
 * claimed by `reader` until now + claim_timeout. Passthrough: up to `limit` messages not yet
 * taken exclusively; each is marked done (taken) at once. */
int channel_claim(channel *ch, const char *reader, size_t limit, double now, channel_batch *out);

/* Work queue acknowledge / negative-acknowledge of message ids. Only the reader holding the
 * claim may do either; ids of other readers' claims, unknown ids and done messages are ignored.
 * Returns how many messages were acknowledged (marked done, and freed once at the head) or
 * released (claim cleared, offered again at once), or CHANNEL_EKIND for other kinds. */
int channel_ack(channel *ch, const char *reader, const char *const *ids, size_t n, double now);
int channel_nack(channel *ch, const char *reader, const char *const *ids, size_t n, double now);

const message *channel_find(const channel *ch, const char *message_id); /* held message or NULL */
uint64_t channel_last_seq(const channel *ch); /* seq of the newest message written, 0 if none */
size_t channel_pending(const channel *ch);    /* work queue: messages not yet done */
void channel_forget_reader(channel *ch, const char *reader);

void channel_add_watcher(channel *ch, channel_watcher *w);
void channel_remove_watcher(channel *ch, channel_watcher *w);

#endif
