/* store_sqlite.c - the durable channel store (see store_sqlite.h and model/store.h).
 *
 * Two halves. The loop's half applies every change to a memory store at once (so reads and
 * finds never touch the disk) and records it as row changes of the open commit: messages
 * copied whole, claim states, cursors coalesced per reader, the trim point. flush closes the
 * commit and queues it. The writer's half, a thread that owns the SQLite connection, takes
 * every commit queued, writes them in one transaction (one fsync under --sync full), and
 * reports the last one through an ev_async; the loop's half then calls on_commit. The two
 * share only the queue and the result, under one mutex.
 *
 * On disk: meta (one row: kind, epoch, first_seq, next_seq, cursor_stamp), messages (a row
 * per message held, by seq) and cursors (a row per reader). first_seq is the trim point: rows
 * below it are gone for every reader and are deleted a bounded number per transaction. */
#include "sys/store_sqlite.h"

#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/hashmap.h"
#include "core/log.h"

#define TRIM_STEP 4096 /* rows a transaction deletes at most: a long trim never holds up a commit */

enum { OP_INSERT, OP_STATE };

/* A row change of a message: a copy to insert, or its claim state. */
typedef struct row_op {
    int kind;
    uint64_t seq;
    message *copy;     /* OP_INSERT: the whole message, claim state included */
    char *claimed_by;  /* OP_STATE */
    double deadline;
    int done;
} row_op;

typedef struct cursor_op {
    uint64_t next_seq, missed, stamp;
    int forget;
} cursor_op;

/* One commit: what changed since the last flush. */
typedef struct batch {
    uint64_t csn;
    row_op *ops;
    size_t nops, capops;
    hashmap *cursors;  /* reader -> cursor_op*, the last change of each */
    uint64_t trim_to;  /* the trim point after this commit (0: unchanged) */
    uint64_t next_seq, cursor_stamp;
    struct batch *next;
} batch;

typedef struct sql_store {
    store base;
    store *mem; /* what the channel reads */
    rt *rt;
    char *path;
    char kind[32];
    char epoch[33];
    store_commit_fn on_commit;
    void *commit_data;

    /* the loop's half */
    batch *open;          /* the open commit (NULL only once failed or closed) */
    int dirty;            /* the open commit holds changes */
    uint64_t flushed;     /* CSN of the last commit queued */
    uint64_t committed;   /* CSN of the last commit made durable */
    int failed, closed;
    uint64_t cursor_stamp; /* orders cursors on disk as the memory store orders them */
    uint64_t trim_point;   /* first seq held, as last queued */
    uint64_t visible;      /* the next seq of the last commit made durable: readers see below it */
    ev_async async;
    ev_prepare flusher;    /* flushes the open commit once per loop turn */
    store_waiter *waiters, *waiters_tail; /* by csn, oldest first */

    /* shared, under lock */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    batch *queue, *queue_tail;
    uint64_t done_csn, done_next_seq;
    int done_err;
    char done_msg[256];
    int stop;
    pthread_t thread;
    int thread_started;

    /* the writer's own (the loop's only while opening) */
    sqlite3 *db;
    sqlite3_stmt *st_insert, *st_state, *st_cursor_put, *st_cursor_del, *st_trim, *st_meta;
    uint64_t disk_first;  /* the lowest seq that may still be on disk */
    uint64_t trim_target; /* the trim point the writer knows */
    int writer_failed;
} sql_store;

static sql_store *sq(store *st) { return (sql_store *)st; }
static const sql_store *csq(const store *st) { return (const sql_store *)st; }

/* ---- commits being built (the loop) ---- */

static batch *batch_new(void)
{
    batch *b = calloc(1, sizeof *b);
    if (b && !(b->cursors = hashmap_new())) {
        free(b);
        return NULL;
    }
    return b;
}

static void batch_free(batch *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->nops; i++) {
        message_free(b->ops[i].copy);
        free(b->ops[i].claimed_by);
    }
    free(b->ops);
    hashmap_iter it;
    void *v;
    hashmap_iter_init(b->cursors, &it);
    while (hashmap_iter_next(b->cursors, &it, NULL, &v))
        free(v);
    hashmap_free(b->cursors);
    free(b);
}

/* A change that could not be recorded (out of memory) leaves memory ahead of the disk: the
 * store is failed from then on, as after a commit that failed. */
static void fail(sql_store *s, const char *why)
{
    if (!s->failed)
        rt_log(s->rt, LOG_ERROR, NULL, "durable store %s failed: %s; its channel takes no more changes", s->path,
               why);
    s->failed = 1;
}

/* Room for n more row changes in the open commit. */
static int reserve_ops(sql_store *s, size_t n)
{
    batch *b = s->open;
    if (b->nops + n <= b->capops)
        return 0;
    size_t cap = b->capops ? b->capops : 16;
    while (cap < b->nops + n)
        cap *= 2;
    row_op *ops = realloc(b->ops, cap * sizeof *ops);
    if (!ops)
        return -1;
    b->ops = ops;
    b->capops = cap;
    return 0;
}

static int recording(const sql_store *s) { return !s->closed && !s->failed && s->open; }

/* A copy of m with its id, time and claim state (the one held may be freed before the writer
 * gets to it). */
static message *copy_message(const message *m)
{
    message_in in = {.sender_id = m->sender_id, .data_json = m->data_json, .data_len = m->data_len,
                     .metadata_json = m->metadata_json, .correlation_id = m->correlation_id,
                     .reply_to = m->reply_to, .recipient_id = m->recipient_id, .id = m->id};
    return message_new(&in, m->timestamp);
}

/* The trim point moved to the memory store's first seq: queue it. */
static void note_trim(sql_store *s)
{
    uint64_t first = s->mem->ops->range(s->mem).first_seq;
    if (first > s->trim_point) {
        s->trim_point = first;
        s->dirty = 1;
    }
}

static int sql_append(store *st, message *m, int make_room, size_t max_bytes)
{
    sql_store *s = sq(st);
    if (s->failed)
        return STORE_EIO;
    if (!recording(s))
        return s->mem->ops->append(s->mem, m, make_room, max_bytes);
    message *copy = NULL;
    if (reserve_ops(s, 1) < 0 || !(copy = copy_message(m)))
        return STORE_ENOMEM;
    int rc = s->mem->ops->append(s->mem, m, make_room, max_bytes);
    if (rc != STORE_OK) {
        message_free(copy);
        return rc;
    }
    copy->seq = m->seq;
    s->open->ops[s->open->nops++] = (row_op){.kind = OP_INSERT, .seq = m->seq, .copy = copy};
    s->dirty = 1;
    note_trim(s);
    return STORE_OK;
}

static size_t sql_read(store *st, uint64_t from_seq, const message **out, size_t max)
{
    return sq(st)->mem->ops->read(sq(st)->mem, from_seq, out, max);
}

static store_range sql_range(const store *st)
{
    const sql_store *s = csq(st);
    store_range r = s->mem->ops->range(s->mem);
    if (!s->closed && s->visible < r.next_seq)
        r.visible_seq = s->visible; /* once closed, memory is all there is */
    return r;
}

static void sql_trim(store *st, uint64_t before_seq)
{
    sql_store *s = sq(st);
    s->mem->ops->trim(s->mem, before_seq);
    if (recording(s))
        note_trim(s);
}

static const message *sql_find(store *st, const char *id) { return sq(st)->mem->ops->find(sq(st)->mem, id); }

/* Records the claim state each of ms[0..n) has now. */
static void record_states(sql_store *s, const message *const *ms, size_t n)
{
    if (!recording(s) || n == 0)
        return;
    if (reserve_ops(s, n) < 0) {
        fail(s, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const message *m = ms[i];
        char *holder = NULL;
        if (m->claimed_by && !(holder = strdup(m->claimed_by))) {
            fail(s, "out of memory");
            return;
        }
        s->open->ops[s->open->nops++] = (row_op){.kind = OP_STATE, .seq = m->seq, .claimed_by = holder,
                                                 .deadline = m->claim_deadline, .done = m->done};
    }
    s->dirty = 1;
}

static int sql_claim(store *st, const message *const *ms, size_t n, const char *holder, double deadline)
{
    sql_store *s = sq(st);
    if (s->failed)
        return STORE_EIO;
    if (recording(s) && reserve_ops(s, n) < 0)
        return STORE_ENOMEM;
    int rc = s->mem->ops->claim(s->mem, ms, n, holder, deadline);
    if (rc == STORE_OK)
        record_states(s, ms, n);
    return s->failed ? STORE_EIO : rc;
}

static void sql_done(store *st, const message *const *ms, size_t n)
{
    sql_store *s = sq(st);
    s->mem->ops->done(s->mem, ms, n);
    record_states(s, ms, n);
}

static void sql_release(store *st, const message *const *ms, size_t n)
{
    sql_store *s = sq(st);
    s->mem->ops->release(s->mem, ms, n);
    record_states(s, ms, n);
}

/* ---- cursors ---- */

static store_cursor *sql_cursor_get(store *st, const char *reader)
{
    return sq(st)->mem->ops->cursor_get(sq(st)->mem, reader);
}

/* The last change of a reader's cursor in the open commit. */
static void record_cursor(sql_store *s, const char *reader, uint64_t next_seq, uint64_t missed, int forget)
{
    if (!recording(s))
        return;
    cursor_op *c = hashmap_get(s->open->cursors, reader);
    if (!c) {
        if (!(c = malloc(sizeof *c)) || hashmap_put(s->open->cursors, reader, c) != 0) {
            free(c);
            fail(s, "out of memory");
            return;
        }
    }
    *c = (cursor_op){.next_seq = next_seq, .missed = missed, .stamp = ++s->cursor_stamp, .forget = forget};
    s->dirty = 1;
}

static int sql_cursor_set(store *st, const char *reader, store_cursor *cur, uint64_t next_seq, uint64_t missed)
{
    sql_store *s = sq(st);
    if (s->failed)
        return STORE_EIO;
    int rc = s->mem->ops->cursor_set(s->mem, reader, cur, next_seq, missed);
    if (rc == STORE_OK)
        record_cursor(s, reader, next_seq, missed, 0);
    return s->failed ? STORE_EIO : rc;
}

static void sql_cursor_forget(store *st, const char *reader)
{
    sql_store *s = sq(st);
    s->mem->ops->cursor_forget(s->mem, reader);
    record_cursor(s, reader, 0, 0, 1);
}

/* The memory store evicted a cursor past max_cursors: it goes from the disk too. */
static void on_evict(void *ud, const char *reader) { record_cursor(ud, reader, 0, 0, 1); }

static size_t sql_cursor_count(const store *st) { return csq(st)->mem->ops->cursor_count(csq(st)->mem); }

/* ---- commits ---- */

static uint64_t sql_mark(const store *st) { return csq(st)->flushed + (uint64_t)csq(st)->dirty; }
static uint64_t sql_committed(const store *st) { return csq(st)->committed; }

static int sql_flush(store *st)
{
    sql_store *s = sq(st);
    if (s->failed)
        return STORE_EIO;
    if (!s->dirty || s->closed)
        return STORE_OK;
    batch *next = batch_new();
    if (!next) {
        fail(s, "out of memory");
        return STORE_EIO;
    }
    batch *b = s->open;
    b->csn = ++s->flushed;
    b->trim_to = s->trim_point;
    b->next_seq = s->mem->ops->range(s->mem).next_seq;
    b->cursor_stamp = s->cursor_stamp;
    s->open = next;
    s->dirty = 0;
    pthread_mutex_lock(&s->lock);
    if (s->queue_tail)
        s->queue_tail->next = b;
    else
        s->queue = b;
    s->queue_tail = b;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    return STORE_OK;
}

/* ---- waiters ---- */

static void unlink_waiter(sql_store *s, store_waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        s->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        s->waiters_tail = w->prev;
    w->prev = w->next = NULL;
}

static void finish_waiter(sql_store *s, store_waiter *w, int err)
{
    unlink_waiter(s, w);
    w->done(w, err);
}

int store_wait(store *st, store_waiter *w)
{
    if (!store_is_sqlite(st))
        return 0;
    sql_store *s = sq(st);
    if (s->failed)
        return -1;
    uint64_t mark = sql_mark(st);
    if (s->closed || mark <= s->committed)
        return 0;
    w->csn = mark;
    w->next = NULL;
    w->prev = s->waiters_tail;
    if (s->waiters_tail)
        s->waiters_tail->next = w;
    else
        s->waiters = w;
    s->waiters_tail = w;
    return 1;
}

void store_cancel(store *st, store_waiter *w)
{
    if (store_is_sqlite(st))
        unlink_waiter(sq(st), w);
}

/* What the writer finished: the loop hears it here. A failed commit fails the store, and
 * every commit after it with it. */
static void take_result(sql_store *s)
{
    pthread_mutex_lock(&s->lock);
    uint64_t csn = s->done_csn;
    if (s->done_next_seq > s->visible)
        s->visible = s->done_next_seq;
    int err = s->done_err;
    char msg[sizeof s->done_msg];
    memcpy(msg, s->done_msg, sizeof msg);
    pthread_mutex_unlock(&s->lock);
    if (csn > s->committed) {
        s->committed = csn;
        while (s->waiters && s->waiters->csn <= csn)
            finish_waiter(s, s->waiters, STORE_OK);
        if (s->on_commit)
            s->on_commit(s->commit_data, csn, STORE_OK);
    }
    if (err && !s->failed) {
        rt_log(s->rt, LOG_ERROR, NULL, "durable store %s: a commit failed (%s); its channel takes no more changes",
               s->path, msg);
        s->failed = 1;
    }
    if (s->failed) {
        while (s->waiters)
            finish_waiter(s, s->waiters, STORE_EIO);
        if (err && s->on_commit)
            s->on_commit(s->commit_data, s->committed + 1, STORE_EIO);
    }
}

static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)revents;
    sql_store *s = w->data;
    if (s->dirty)
        sql_flush(&s->base);
}

static void on_async(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop;
    (void)revents;
    take_result(w->data);
}

/* ---- the writer ---- */

static int step(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static int write_message(sql_store *s, const message *m)
{
    sqlite3_stmt *st = s->st_insert;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)m->seq);
    sqlite3_bind_text(st, 2, m->id, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 3, m->timestamp);
    bind_text_or_null(st, 4, m->sender_id);
    sqlite3_bind_text(st, 5, m->data_json, (int)m->data_len, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, m->metadata_json, -1, SQLITE_STATIC);
    bind_text_or_null(st, 7, m->correlation_id);
    bind_text_or_null(st, 8, m->reply_to);
    bind_text_or_null(st, 9, m->recipient_id);
    bind_text_or_null(st, 10, m->claimed_by);
    sqlite3_bind_double(st, 11, m->claim_deadline);
    sqlite3_bind_int(st, 12, m->done);
    return step(st);
}

static int write_batch(sql_store *s, const batch *b)
{
    int rc = SQLITE_OK;
    for (size_t i = 0; rc == SQLITE_OK && i < b->nops; i++) {
        const row_op *op = &b->ops[i];
        if (op->seq < s->trim_target)
            continue; /* trimmed before it reached the disk */
        if (op->kind == OP_INSERT) {
            rc = write_message(s, op->copy);
        } else {
            sqlite3_stmt *st = s->st_state;
            bind_text_or_null(st, 1, op->claimed_by);
            sqlite3_bind_double(st, 2, op->deadline);
            sqlite3_bind_int(st, 3, op->done);
            sqlite3_bind_int64(st, 4, (sqlite3_int64)op->seq);
            rc = step(st);
        }
    }
    hashmap_iter it;
    const char *reader;
    void *v;
    hashmap_iter_init(b->cursors, &it);
    while (rc == SQLITE_OK && hashmap_iter_next(b->cursors, &it, &reader, &v)) {
        const cursor_op *c = v;
        sqlite3_stmt *st = c->forget ? s->st_cursor_del : s->st_cursor_put;
        sqlite3_bind_text(st, 1, reader, -1, SQLITE_STATIC);
        if (!c->forget) {
            sqlite3_bind_int64(st, 2, (sqlite3_int64)c->next_seq);
            sqlite3_bind_int64(st, 3, (sqlite3_int64)c->missed);
            sqlite3_bind_int64(st, 4, (sqlite3_int64)c->stamp);
        }
        rc = step(st);
    }
    return rc;
}

/* One transaction: every commit in `list` (in order), a bounded step of the trim, the meta
 * row. A NULL list is a trim step alone. */
static int write_commits(sql_store *s, const batch *list, char *msg, size_t msglen)
{
    int rc = sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL);
    const batch *last = NULL;
    for (const batch *b = list; b; b = b->next) {
        if (b->trim_to > s->trim_target)
            s->trim_target = b->trim_to;
        last = b;
    }
    for (const batch *b = list; rc == SQLITE_OK && b; b = b->next)
        rc = write_batch(s, b);
    if (rc == SQLITE_OK && s->trim_target > s->disk_first) {
        uint64_t upto = s->trim_target - s->disk_first > TRIM_STEP ? s->disk_first + TRIM_STEP : s->trim_target;
        sqlite3_bind_int64(s->st_trim, 1, (sqlite3_int64)upto);
        if ((rc = step(s->st_trim)) == SQLITE_OK)
            s->disk_first = upto;
    }
    if (rc == SQLITE_OK && last) {
        sqlite3_bind_int64(s->st_meta, 1, (sqlite3_int64)s->trim_target);
        sqlite3_bind_int64(s->st_meta, 2, (sqlite3_int64)last->next_seq);
        sqlite3_bind_int64(s->st_meta, 3, (sqlite3_int64)last->cursor_stamp);
        rc = step(s->st_meta);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        snprintf(msg, msglen, "%s", sqlite3_errmsg(s->db));
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    }
    return rc;
}

static void *writer_main(void *arg)
{
    sql_store *s = arg;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        int trim_left = !s->writer_failed && s->trim_target > s->disk_first;
        while (!s->queue && !s->stop && !trim_left)
            pthread_cond_wait(&s->wake, &s->lock);
        if (!s->queue && (s->stop || !trim_left))
            break; /* what is left of a trim is finished at the next open */
        batch *list = s->queue;
        s->queue = s->queue_tail = NULL;
        pthread_mutex_unlock(&s->lock);
        char msg[sizeof s->done_msg] = "";
        int rc = s->writer_failed ? SQLITE_ERROR : write_commits(s, list, msg, sizeof msg);
        uint64_t csn = 0, next_seq = 0;
        while (list) {
            batch *b = list;
            list = b->next;
            csn = b->csn;
            next_seq = b->next_seq;
            batch_free(b);
        }
        pthread_mutex_lock(&s->lock);
        if (rc != SQLITE_OK && !s->writer_failed) {
            s->writer_failed = 1;
            s->done_err = 1;
            snprintf(s->done_msg, sizeof s->done_msg, "%s", msg);
        }
        if (rc == SQLITE_OK && csn) {
            s->done_csn = csn;
            s->done_next_seq = next_seq;
        }
        if (csn || rc != SQLITE_OK)
            ev_async_send(s->rt->loop, &s->async);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* ---- opening ---- */

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS meta(one INTEGER PRIMARY KEY CHECK (one = 1), kind TEXT NOT NULL, "
    "  epoch TEXT NOT NULL, first_seq INTEGER NOT NULL, next_seq INTEGER NOT NULL, "
    "  cursor_stamp INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS messages(seq INTEGER PRIMARY KEY, id TEXT NOT NULL, ts REAL NOT NULL, "
    "  sender TEXT, data TEXT NOT NULL, metadata TEXT NOT NULL, correlation_id TEXT, reply_to TEXT, "
    "  recipient_id TEXT, claimed_by TEXT, claim_deadline REAL NOT NULL, done INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS cursors(reader TEXT PRIMARY KEY, next_seq INTEGER NOT NULL, "
    "  missed INTEGER NOT NULL, stamp INTEGER NOT NULL);";

static int prepare(sql_store *s, const char *sql, sqlite3_stmt **out)
{
    return sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
}

static const char *text_col(sqlite3_stmt *st, int i) { return (const char *)sqlite3_column_text(st, i); }

/* The meta row: read, or written for a new file. */
static int load_meta(sql_store *s, uint64_t *first_seq, uint64_t *next_seq, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, "SELECT kind, epoch, first_seq, next_seq, cursor_stamp FROM meta", -1, &st,
                                NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *kind = text_col(st, 0), *epoch = text_col(st, 1);
        if (!kind || strcmp(kind, s->kind) != 0) {
            snprintf(err, errlen, "it holds a %s channel, not a %s (remove the file to start it afresh)",
                     kind ? kind : "?", s->kind);
            sqlite3_finalize(st);
            return SQLITE_MISMATCH;
        }
        snprintf(s->epoch, sizeof s->epoch, "%s", epoch ? epoch : "");
        *first_seq = (uint64_t)sqlite3_column_int64(st, 2);
        *next_seq = (uint64_t)sqlite3_column_int64(st, 3);
        s->cursor_stamp = (uint64_t)sqlite3_column_int64(st, 4);
        sqlite3_finalize(st);
        return SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return rc;
    unsigned char rnd[16];
    if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd) {
        snprintf(err, errlen, "no random bytes for its epoch");
        return SQLITE_ERROR;
    }
    for (int i = 0; i < 16; i++)
        snprintf(s->epoch + 2 * i, 3, "%02x", rnd[i]);
    *first_seq = *next_seq = 1;
    if ((rc = sqlite3_prepare_v2(s->db, "INSERT INTO meta VALUES (1, ?, ?, 1, 1, 0)", -1, &st, NULL)) != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, s->kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, s->epoch, -1, SQLITE_STATIC);
    rc = step(st);
    sqlite3_finalize(st);
    return rc;
}

static int load_cursors(sql_store *s)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, "SELECT reader, next_seq, missed FROM cursors ORDER BY stamp", -1, &st, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        const char *reader = text_col(st, 0);
        if (reader && s->mem->ops->cursor_set(s->mem, reader, NULL, (uint64_t)sqlite3_column_int64(st, 1),
                                              (uint64_t)sqlite3_column_int64(st, 2)) != STORE_OK)
            rc = SQLITE_NOMEM;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* The messages from the trim point on, in seq order, with their claims. */
static int load_messages(sql_store *s, uint64_t first_seq, uint64_t next_seq, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db,
                                "SELECT seq, id, ts, sender, data, metadata, correlation_id, reply_to, recipient_id, "
                                "claimed_by, claim_deadline, done FROM messages WHERE seq >= ? ORDER BY seq",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)first_seq);
    uint64_t expect = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        uint64_t seq = (uint64_t)sqlite3_column_int64(st, 0);
        if (expect == 0)
            store_memory_start_at(s->mem, seq);
        else if (seq != expect) {
            snprintf(err, errlen, "its log lacks the messages from seq %llu to %llu", (unsigned long long)expect,
                     (unsigned long long)seq - 1);
            sqlite3_finalize(st);
            return SQLITE_CORRUPT;
        }
        expect = seq + 1;
        message_in in = {.id = text_col(st, 1), .sender_id = text_col(st, 3), .data_json = text_col(st, 4),
                         .data_len = (size_t)sqlite3_column_bytes(st, 4), .metadata_json = text_col(st, 5),
                         .correlation_id = text_col(st, 6), .reply_to = text_col(st, 7),
                         .recipient_id = text_col(st, 8)};
        message *m = in.id && in.data_json ? message_new(&in, sqlite3_column_double(st, 2)) : NULL;
        if (!m || s->mem->ops->append(s->mem, m, 1, 0) != STORE_OK) {
            message_free(m);
            sqlite3_finalize(st);
            if (!in.id || !in.data_json)
                snprintf(err, errlen, "the message of seq %llu has no id or data", (unsigned long long)seq);
            return in.id && in.data_json ? SQLITE_NOMEM : SQLITE_CORRUPT;
        }
        const message *held = m;
        const char *holder = text_col(st, 9);
        double deadline = sqlite3_column_double(st, 10);
        int ok = STORE_OK;
        if (sqlite3_column_int(st, 11))
            s->mem->ops->done(s->mem, &held, 1);
        else if (holder)
            ok = s->mem->ops->claim(s->mem, &held, 1, holder, deadline);
        if (ok != STORE_OK) {
            sqlite3_finalize(st);
            return SQLITE_NOMEM;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return rc;
    if (expect == 0) /* nothing held: the seq goes on from where it stopped */
        store_memory_start_at(s->mem, next_seq > first_seq ? next_seq : first_seq);
    return SQLITE_OK;
}

static int open_file(sql_store *s, store_sync sync, uint64_t *first_seq, char *err, size_t errlen)
{
    int rc = sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_extended_result_codes(s->db, 0);
    /* one process at a time: the exclusive lock is taken at the first read below */
    rc = sqlite3_exec(s->db, "PRAGMA locking_mode = EXCLUSIVE", NULL, NULL, NULL);
    sqlite3_stmt *st = NULL;
    if (rc == SQLITE_OK && (rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL)) == SQLITE_OK) {
        if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            const char *mode = text_col(st, 0);
            rc = mode && strcmp(mode, "wal") == 0 ? SQLITE_OK : SQLITE_ERROR;
            if (rc != SQLITE_OK)
                snprintf(err, errlen, "it cannot be put in WAL mode (journal mode %s)", mode ? mode : "?");
        }
        sqlite3_finalize(st);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->db, sync == STORE_SYNC_FULL ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
                          NULL, NULL, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_prepare_v2(s->db, "PRAGMA quick_check", -1, &st, NULL)) == SQLITE_OK) {
        if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            const char *res = text_col(st, 0);
            rc = res && strcmp(res, "ok") == 0 ? SQLITE_OK : SQLITE_CORRUPT;
            if (rc != SQLITE_OK)
                snprintf(err, errlen, "it fails SQLite's check: %s", res ? res : "?");
        }
        sqlite3_finalize(st);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->db, SCHEMA, NULL, NULL, NULL);
    uint64_t next_seq = 1;
    if (rc == SQLITE_OK)
        rc = load_meta(s, first_seq, &next_seq, err, errlen);
    if (rc == SQLITE_OK)
        rc = load_cursors(s);
    if (rc == SQLITE_OK)
        rc = load_messages(s, *first_seq, next_seq, err, errlen);
    if (rc == SQLITE_OK && (rc = sqlite3_prepare_v2(s->db, "SELECT min(seq) FROM messages", -1, &st, NULL)) == SQLITE_OK) {
        if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            s->disk_first = sqlite3_column_type(st, 0) == SQLITE_NULL ? *first_seq : (uint64_t)sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        }
        sqlite3_finalize(st);
    }
    if (rc == SQLITE_OK)
        rc = prepare(s, "INSERT OR REPLACE INTO messages VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", &s->st_insert);
    if (rc == SQLITE_OK)
        rc = prepare(s, "UPDATE messages SET claimed_by = ?, claim_deadline = ?, done = ? WHERE seq = ?",
                     &s->st_state);
    if (rc == SQLITE_OK)
        rc = prepare(s, "INSERT INTO cursors VALUES (?,?,?,?) ON CONFLICT(reader) DO UPDATE SET "
                        "next_seq = excluded.next_seq, missed = excluded.missed, stamp = excluded.stamp",
                     &s->st_cursor_put);
    if (rc == SQLITE_OK)
        rc = prepare(s, "DELETE FROM cursors WHERE reader = ?", &s->st_cursor_del);
    if (rc == SQLITE_OK)
        rc = prepare(s, "DELETE FROM messages WHERE seq < ?", &s->st_trim);
    if (rc == SQLITE_OK)
        rc = prepare(s, "UPDATE meta SET first_seq = max(first_seq, ?1), next_seq = max(next_seq, ?2), "
                        "cursor_stamp = ?3", &s->st_meta);
    return rc;
}

/* ---- closing ---- */

static void close_db(sql_store *s)
{
    sqlite3_stmt *sts[] = {s->st_insert, s->st_state, s->st_cursor_put, s->st_cursor_del, s->st_trim, s->st_meta};
    for (size_t i = 0; i < sizeof sts / sizeof *sts; i++)
        sqlite3_finalize(sts[i]);
    sqlite3_close(s->db);
    s->db = NULL;
}

void store_sqlite_close(store *st)
{
    sql_store *s = sq(st);
    if (!st || s->closed)
        return;
    if (!s->failed)
        sql_flush(st);
    if (s->thread_started) {
        pthread_mutex_lock(&s->lock);
        s->stop = 1;
        pthread_cond_signal(&s->wake);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->thread, NULL);
        s->thread_started = 0;
        ev_ref(s->rt->loop);
        ev_async_stop(s->rt->loop, &s->async);
        ev_ref(s->rt->loop);
        ev_prepare_stop(s->rt->loop, &s->flusher);
        take_result(s); /* the last commit, reported now */
    }
    while (s->waiters) /* none once the last commit is in, unless it failed */
        finish_waiter(s, s->waiters, STORE_EIO);
    close_db(s);
    batch_free(s->open);
    s->open = NULL;
    s->dirty = 0;
    s->closed = 1;
}

static void sql_free(store *st)
{
    sql_store *s = sq(st);
    if (!s)
        return;
    s->on_commit = NULL; /* whoever waited is gone */
    store_sqlite_close(st);
    batch_free(s->open);
    if (s->mem)
        s->mem->ops->free(s->mem);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->wake);
    free(s->path);
    free(s);
}

static const char *sql_epoch(const store *st) { return csq(st)->epoch; }

static const store_ops sql_ops = {
    .name = "sqlite",
    .append = sql_append,
    .read = sql_read,
    .range = sql_range,
    .trim = sql_trim,
    .find = sql_find,
    .claim = sql_claim,
    .done = sql_done,
    .release = sql_release,
    .cursor_get = sql_cursor_get,
    .cursor_set = sql_cursor_set,
    .cursor_forget = sql_cursor_forget,
    .cursor_count = sql_cursor_count,
    .mark = sql_mark,
    .committed = sql_committed,
    .flush = sql_flush,
    .epoch = sql_epoch,
    .free = sql_free,
};

int store_is_sqlite(const store *st) { return st && st->ops == &sql_ops; }

void store_sqlite_on_commit(store *st, store_commit_fn fn, void *data)
{
    if (!store_is_sqlite(st))
        return;
    sq(st)->on_commit = fn;
    sq(st)->commit_data = data;
}
const char *store_sqlite_path(const store *st) { return store_is_sqlite(st) ? csq(st)->path : NULL; }

static const char *sqlite_reason(int rc, sqlite3 *db)
{
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
        return "another process has it open (database is locked)";
    return db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
}

store *store_sqlite_open(rt *r, const char *path, const char *kind, const store_config *cfg, store_sync sync,
                         char *err, size_t errlen)
{
    err[0] = '\0';
    sql_store *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path)) || !(s->mem = store_memory_new(cfg)) || !(s->open = batch_new())) {
        snprintf(err, errlen, "out of memory");
        if (s) {
            if (s->mem)
                s->mem->ops->free(s->mem);
            free(s->path);
            free(s);
        }
        return NULL;
    }
    s->base.ops = &sql_ops;
    s->rt = r;
    snprintf(s->kind, sizeof s->kind, "%s", kind);
    s->on_commit = cfg->on_commit;
    s->commit_data = cfg->commit_data;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->wake, NULL);
    store_memory_on_evict(s->mem, on_evict, s);
    uint64_t first_seq = 1;
    int rc = open_file(s, sync, &first_seq, err, errlen);
    if (rc != SQLITE_OK) {
        if (!err[0])
            snprintf(err, errlen, "%s", sqlite_reason(rc, s->db));
        s->on_commit = NULL;
        close_db(s);
        s->closed = 1;
        sql_free(&s->base);
        return NULL;
    }
    s->trim_target = first_seq;
    s->trim_point = first_seq;
    s->visible = s->mem->ops->range(s->mem).next_seq; /* what the file held is committed */
    note_trim(s); /* a log longer than the capacity now loses its oldest */
    ev_async_init(&s->async, on_async);
    s->async.data = s;
    ev_async_start(r->loop, &s->async);
    ev_unref(r->loop); /* a store does not keep the loop running by itself */
    ev_prepare_init(&s->flusher, on_prepare);
    s->flusher.data = s;
    ev_prepare_start(r->loop, &s->flusher);
    ev_unref(r->loop);
    /* the writer takes no signals: they are the loop's */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    rc = pthread_create(&s->thread, NULL, writer_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start its writer thread");
        ev_ref(r->loop);
        ev_async_stop(r->loop, &s->async);
        ev_ref(r->loop);
        ev_prepare_stop(r->loop, &s->flusher);
        s->on_commit = NULL;
        close_db(s);
        s->closed = 1;
        sql_free(&s->base);
        return NULL;
    }
    s->thread_started = 1;
    return &s->base;
}
