/* store_sqlite.h - the durable channel store (see model/store.h): the memory store keeps what
 * the channel reads, and every change is also queued as rows for one SQLite file (WAL mode),
 * which a writer thread of the store's own commits in the background. The loop never waits
 * for the disk: flush hands the open commit to the thread, and on_commit comes back through
 * an ev_async. Opening loads the file (messages with their claims, cursors, the seq, the
 * epoch) and is the one call that reads the disk on the loop's thread. */
#ifndef SSSN_STORE_SQLITE_H
#define SSSN_STORE_SQLITE_H

#include <stddef.h>

#include "model/store.h"
#include "rt/rt.h"

typedef enum {
    STORE_SYNC_FULL,   /* fsync the WAL at every commit: a commit survives a power loss */
    STORE_SYNC_NORMAL, /* fsync at checkpoints only: a commit survives the process dying
                        * (kill -9), the last ones may go with a power loss or an OS crash */
} store_sync;

/* Opens the store at path, creating the file when it is missing, for a channel of `kind`
 * (a file made for another kind is refused). NULL with the reason in err: a file that is not
 * a database or fails its check, one another process holds, a kind that differs, a gap in
 * its log. cfg->on_commit is called from r's loop. */
store *store_sqlite_open(rt *r, const char *path, const char *kind, const store_config *cfg, store_sync sync,
                         char *err, size_t errlen);
/* Whether st is a SQLite store. */
int store_is_sqlite(const store *st);
/* Who hears of commits from now on, in place of cfg->on_commit (the channel made over st). */
void store_sqlite_on_commit(store *st, store_commit_fn fn, void *data);
/* Commits what is open, waits for the writer and closes the file: later changes stay in
 * memory only (a retired channel's readers may still read it). on_commit reports the last
 * commit before it returns. Waits for the disk: for a channel that stops, not the hot path. */
void store_sqlite_close(store *st);
/* The file's path (for messages). */
const char *store_sqlite_path(const store *st);

/* A wait for the changes made to a store so far to be durable: an acknowledgement that must
 * come only after commit (write_channel returning, an HTTP 200). The store flushes its open
 * commit once per loop turn (an ev_prepare watcher: every change of a turn shares a commit). */
typedef struct store_waiter {
    uint64_t csn; /* set by store_wait */
    void (*done)(struct store_waiter *w, int err); /* STORE_OK, or STORE_EIO: it never will be */
    void *data;
    struct store_waiter *prev, *next; /* the store's */
} store_waiter;

/* 0 when the changes so far are durable already (any memory store; w is not queued), -1 when
 * st failed (they never will be), 1 when w is queued: w->done runs once, from the loop, never
 * inside this call, unless store_cancel takes w back first. */
int store_wait(store *st, store_waiter *w);
void store_cancel(store *st, store_waiter *w);

#endif
