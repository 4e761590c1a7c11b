/* test_store_sqlite.c - unit tests for host/sys/store_sqlite.c: the SQLite store runs the store
 * contract (store_contract.h) with a real reopen of its file, then what is its own: waiters
 * answered only after commit, the trim reaching the disk, files it refuses (corrupt, another
 * kind, held by another connection), a capacity smaller than the log it finds. */
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "model/channel.h"
#include "store_contract.h"
#include "sys/store_sqlite.h"

static rt *loop_rt;
static char dir[64];
static int files; /* each store of the contract gets a new file */
static char path[128];

static const char *new_path(void)
{
    snprintf(path, sizeof path, "%s/s%d.sqlite", dir, ++files);
    return path;
}

static store *open_at(const char *p, const char *kind, const store_config *cfg, char *err, size_t n)
{
    return store_sqlite_open(loop_rt, p, kind, cfg, STORE_SYNC_NORMAL, err, n);
}

static store *make_sqlite(const store_config *cfg, void *ctx)
{
    (void)ctx;
    char err[256];
    store *st = open_at(new_path(), "broadcast", cfg, err, sizeof err);
    if (!st)
        fprintf(stderr, "  cannot open %s: %s\n", path, err);
    return st;
}

/* Runs the loop until the writer reported every commit flushed so far (5 s at most; the
 * store's watchers do not keep the loop waiting, so the test pauses between turns). */
static void settle(store *st, void *ctx)
{
    (void)ctx;
    for (int i = 0; i < 5000 && st->ops->committed(st) < st->ops->mark(st); i++) {
        ev_run(loop_rt->loop, EVRUN_NOWAIT);
        usleep(1000);
    }
    ev_run(loop_rt->loop, EVRUN_NOWAIT);
}

static store *reopen_sqlite(store *st, const store_config *cfg, void *ctx)
{
    (void)ctx;
    char p[128], err[256];
    snprintf(p, sizeof p, "%s", store_sqlite_path(st));
    st->ops->free(st);
    store *again = open_at(p, "broadcast", cfg, err, sizeof err);
    if (!again)
        fprintf(stderr, "  cannot reopen %s: %s\n", p, err);
    return again;
}

static const store_factory sqlite_factory = {
    .name = "sqlite", .make = make_sqlite, .reopen = reopen_sqlite, .settle = settle};

static uint64_t add(store *st, const char *id, const char *data)
{
    return contract_add(st, id, data);
}

/* Rows of a table, read through a second connection (after the store is freed). */
static long long rows(const char *p, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *q;
    long long n = -1;
    if (sqlite3_open_v2(p, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK) {
        if (sqlite3_step(q) == SQLITE_ROW)
            n = sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
    }
    sqlite3_close(db);
    return n;
}

typedef struct seen {
    store_waiter w;
    int calls, err;
} seen;

static void on_done(store_waiter *w, int err)
{
    seen *s = w->data;
    s->calls++;
    s->err = err;
}

static void test_a_waiter_is_answered_once_the_commit_is_in(void)
{
    store_config cfg = contract_config(16, 0, 4);
    store *st = make_sqlite(&cfg, NULL);
    CHECK(st != NULL);
    if (!st)
        return;
    seen s = {.w = {.done = on_done}};
    s.w.data = &s;
    CHECK(store_wait(st, &s.w) == 0); /* nothing changed yet: durable already */
    add(st, "a", "1");
    CHECK(store_wait(st, &s.w) == 1);
    CHECK(s.calls == 0); /* never inside the call, never before the loop turns */
    CHECK(st->ops->range(st).visible_seq == 1); /* readers do not see it yet */
    settle(st, NULL);
    CHECK(st->ops->range(st).visible_seq == 2);
    CHECK(s.calls == 1 && s.err == STORE_OK);
    CHECK(st->ops->committed(st) >= st->ops->mark(st));
    /* a waiter taken back is never called */
    add(st, "b", "2");
    CHECK(store_wait(st, &s.w) == 1);
    store_cancel(st, &s.w);
    settle(st, NULL);
    CHECK(s.calls == 1);
    st->ops->free(st);
}

static void test_the_trim_reaches_the_disk(void)
{
    store_config cfg = contract_config(5, 0, 4);
    store *st = make_sqlite(&cfg, NULL);
    char p[128];
    snprintf(p, sizeof p, "%s", path);
    for (int i = 0; i < 50; i++)
        add(st, NULL, "1");
    st->ops->flush(st);
    settle(st, NULL);
    st->ops->free(st);
    CHECK(rows(p, "SELECT count(*) FROM messages") == 5);
    CHECK(rows(p, "SELECT min(seq) FROM messages") == 46);
    CHECK(rows(p, "SELECT next_seq FROM meta") == 51);
}

static void test_a_smaller_capacity_keeps_the_newest(void)
{
    store_config cfg = contract_config(10, 0, 4);
    store *st = make_sqlite(&cfg, NULL);
    for (int i = 0; i < 10; i++)
        add(st, NULL, "1");
    cfg.capacity = 3;
    st = reopen_sqlite(st, &cfg, NULL);
    CHECK(st != NULL);
    if (!st)
        return;
    store_range r = st->ops->range(st);
    CHECK(r.first_seq == 8 && r.next_seq == 11 && r.count == 3);
    CHECK(add(st, NULL, "1") == 11);
    st->ops->free(st);
}

static void test_files_it_refuses(void)
{
    char err[256];
    store_config cfg = contract_config(10, 0, 4);
    /* not a database */
    const char *p = new_path();
    FILE *f = fopen(p, "w");
    if (f) {
        for (int i = 0; i < 200; i++)
            fputs("this is not a database at all ", f);
        fclose(f);
    }
    CHECK(open_at(p, "broadcast", &cfg, err, sizeof err) == NULL);
    CHECK(strstr(err, "not a database") != NULL);
    /* a file of another kind */
    store *st = open_at(new_path(), "work_queue", &cfg, err, sizeof err);
    CHECK(st != NULL);
    char q[128];
    snprintf(q, sizeof q, "%s", path);
    /* held by another connection (another process would be the same) */
    CHECK(open_at(q, "work_queue", &cfg, err, sizeof err) == NULL);
    CHECK(strstr(err, "locked") != NULL);
    if (st)
        st->ops->free(st);
    CHECK(open_at(q, "broadcast", &cfg, err, sizeof err) == NULL);
    CHECK(strstr(err, "work_queue") != NULL && strstr(err, "broadcast") != NULL);
    st = open_at(q, "work_queue", &cfg, err, sizeof err);
    CHECK(st != NULL); /* the same kind opens again */
    if (st)
        st->ops->free(st);
    /* a directory that is not there */
    CHECK(open_at("/nonexistent-dir/x.sqlite", "broadcast", &cfg, err, sizeof err) == NULL);
    CHECK(err[0] != '\0');
}

static void test_a_closed_store_keeps_serving_from_memory(void)
{
    store_config cfg = contract_config(10, 0, 4);
    store *st = make_sqlite(&cfg, NULL);
    char p[128];
    snprintf(p, sizeof p, "%s", path);
    add(st, "a", "1");
    store_sqlite_close(st); /* commits what is open */
    CHECK(st->ops->committed(st) >= 1);
    CHECK(add(st, "b", "2") == 2); /* memory only from now on */
    CHECK(st->ops->find(st, "b") != NULL);
    seen s = {.w = {.done = on_done}};
    s.w.data = &s;
    CHECK(store_wait(st, &s.w) == 0);
    st->ops->free(st);
    CHECK(rows(p, "SELECT count(*) FROM messages") == 1);
}

static void commit_to_channel(void *data, uint64_t csn, int err)
{
    (void)csn;
    (void)err;
    channel_committed(data);
}

static int woken;
static void on_write(channel_watcher *w, const message *m)
{
    (void)w;
    (void)m;
    woken++;
}

/* Readers see a durable channel's write only once it is committed: no reader can see a
 * message that a crash takes back, whose seq a restart would give another. */
static void test_readers_see_a_write_once_it_is_committed(void)
{
    channel_config cc = {.id = "d", .kind = CHANNEL_BROADCAST, .capacity = 10};
    store_config cfg;
    CHECK(channel_store_config(&cc, &cfg) == 0);
    char err[256];
    store *st = open_at(new_path(), "broadcast", &cfg, err, sizeof err);
    CHECK(st != NULL);
    if (!st)
        return;
    channel *ch = channel_new_with_store(&cc, st);
    CHECK(ch != NULL);
    if (!ch)
        return;
    store_sqlite_on_commit(st, commit_to_channel, ch);
    channel_watcher w = {.on_write = on_write};
    channel_add_watcher(ch, &w);
    woken = 0;
    message_in in = {.data_json = "1"};
    const message *m;
    CHECK(channel_write(ch, &in, 1000.0, &m) == CHANNEL_OK && m->seq == 1);
    channel_batch b;
    CHECK(channel_read(ch, "r", 10, 0, 0, 1000.0, &b) == CHANNEL_OK);
    CHECK(b.count == 0 && woken == 0 && channel_last_seq(ch) == 0);
    channel_batch_free(&b);
    settle(st, NULL);
    CHECK(woken == 1 && channel_last_seq(ch) == 1);
    CHECK(channel_read(ch, "r", 10, 0, 0, 1000.0, &b) == CHANNEL_OK);
    CHECK(b.count == 1 && b.items[0]->seq == 1);
    channel_batch_free(&b);
    channel_remove_watcher(ch, &w);
    channel_free(ch);
}

int main(void)
{
    char tmpl[] = "/tmp/sssn-store-XXXXXX";
    if (!mkdtemp(tmpl))
        return 1;
    snprintf(dir, sizeof dir, "%s", tmpl);
    loop_rt = rt_new(0, 1);
    store_contract(&sqlite_factory);
    RUN(test_a_waiter_is_answered_once_the_commit_is_in);
    RUN(test_the_trim_reaches_the_disk);
    RUN(test_a_smaller_capacity_keeps_the_newest);
    RUN(test_files_it_refuses);
    RUN(test_a_closed_store_keeps_serving_from_memory);
    RUN(test_readers_see_a_write_once_it_is_committed);
    rt_free(loop_rt);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "  could not remove %s\n", dir);
    return check_report();
}
