/* store_contract.h - the channel store contract (host/model/store.h) as test cases that reach a
 * store through its function table alone, so every implementation runs the same ones: a test
 * of a store defines a store_factory and calls store_contract(&factory) (test_store.c does so
 * for the memory store; issue 13's SQLite store is meant to do the same). Include check.h
 * first. */
#ifndef SSSN_STORE_CONTRACT_H
#define SSSN_STORE_CONTRACT_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "model/store.h"

typedef struct store_factory {
    const char *name;
    /* A new, empty store with these settings. */
    store *(*make)(const store_config *cfg, void *ctx);
    /* Frees st (a durable store flushes first) and opens what it kept, as a restart would. */
    store *(*reopen)(store *st, const store_config *cfg, void *ctx);
    /* Returns once every commit flushed so far has been reported (a durable store's writer
     * thread); NULL when commits are made at once. */
    void (*settle)(store *st, void *ctx);
    void *ctx;
} store_factory;

static const store_factory *contract_factory;

static store_config contract_config(size_t capacity, int index_ids, size_t max_cursors)
{
    return (store_config){.capacity = capacity, .index_ids = index_ids,
                          .max_cursors = max_cursors};
}

static store *contract_make(size_t capacity, int index_ids, size_t max_cursors)
{
    store_config cfg = contract_config(capacity, index_ids, max_cursors);
    return contract_factory->make(&cfg, contract_factory->ctx);
}

static void contract_settle(store *st)
{
    if (contract_factory->settle)
        contract_factory->settle(st, contract_factory->ctx);
}

static message *contract_message(const char *id, const char *data)
{
    message_in in = {.data_json = data, .id = id};
    message *m = message_new(&in, 1000.5);
    if (m && !id) /* the channel names messages; here a name is enough */
        snprintf(m->id, sizeof m->id, "auto-%p", (void *)m);
    return m;
}

/* Appends a message (making room when full); returns its seq, or 0 when refused. */
static uint64_t contract_add(store *st, const char *id, const char *data)
{
    message *m = contract_message(id, data);
    if (!m)
        return 0;
    if (st->ops->append(st, m, 1, 0) != STORE_OK) {
        message_free(m);
        return 0;
    }
    return m->seq;
}

static int range_is(const store *st, uint64_t first, uint64_t next, size_t count)
{
    store_range r = st->ops->range(st);
    return r.first_seq == first && r.next_seq == next && r.count == count;
}

/* The seqs read from `from`, at most max of them, as text: "3 4 5". */
static const char *seqs_from(store *st, uint64_t from, size_t max)
{
    static char text[256];
    const message *got[32];
    size_t n = st->ops->read(st, from, got, max < 32 ? max : 32), used = 0;
    text[0] = '\0';
    for (size_t i = 0; i < n && used < sizeof text - 24; i++)
        used += (size_t)snprintf(text + used, sizeof text - used, i ? " %llu" : "%llu",
                                 (unsigned long long)got[i]->seq);
    return text;
}

/* ---- the log ---- */

static void contract_a_new_store_is_empty(void)
{
    store *st = contract_make(4, 0, 4);
    CHECK(st != NULL);
    if (!st)
        return;
    CHECK(st->ops->name != NULL);
    CHECK(range_is(st, 1, 1, 0));
    const message *got[1];
    CHECK(st->ops->read(st, 0, got, 1) == 0);
    CHECK(st->ops->find(st, "nothing") == NULL);
    CHECK(st->ops->cursor_count(st) == 0);
    CHECK(st->ops->cursor_get(st, "r") == NULL);
    CHECK(st->ops->committed(st) >= st->ops->mark(st));
    st->ops->free(st);
}

static void contract_append_numbers_messages_and_keeps_them_as_built(void)
{
    store *st = contract_make(8, 0, 4);
    message *m = contract_message("first", "{\"n\":1}");
    CHECK(st->ops->append(st, m, 0, 0) == STORE_OK);
    CHECK(m->seq == 1);
    CHECK(contract_add(st, "second", "2") == 2);
    CHECK(contract_add(st, "third", "3") == 3);
    CHECK(range_is(st, 1, 4, 3));

    const message *got[8];
    CHECK(st->ops->read(st, 1, got, 8) == 3);
    CHECK(got[0] == m); /* the very message appended: the store owns it now */
    CHECK(strcmp(got[0]->id, "first") == 0 && strcmp(got[0]->data_json, "{\"n\":1}") == 0);
    CHECK(got[0]->timestamp == 1000.5 && strcmp(got[0]->metadata_json, "{}") == 0);
    CHECK(got[0]->claimed_by == NULL && !got[0]->done);
    CHECK(strcmp(got[2]->id, "third") == 0 && got[2]->seq == 3);
    st->ops->free(st);
}

static void contract_read_starts_at_a_seq_and_stops_at_max(void)
{
    store *st = contract_make(8, 0, 4);
    for (int i = 0; i < 5; i++)
        contract_add(st, NULL, "0");
    CHECK(strcmp(seqs_from(st, 0, 8), "1 2 3 4 5") == 0); /* before the oldest: from it */
    CHECK(strcmp(seqs_from(st, 3, 8), "3 4 5") == 0);
    CHECK(strcmp(seqs_from(st, 2, 2), "2 3") == 0);
    CHECK(strcmp(seqs_from(st, 5, 8), "5") == 0);
    CHECK(strcmp(seqs_from(st, 6, 8), "") == 0);
    CHECK(strcmp(seqs_from(st, UINT64_MAX, 8), "") == 0);
    CHECK(strcmp(seqs_from(st, 1, 0), "") == 0);
    st->ops->free(st);
}

static void contract_a_full_store_refuses_or_makes_room(void)
{
    store *st = contract_make(3, 1, 4);
    for (int i = 0; i < 3; i++)
        contract_add(st, NULL, "0");
    uint64_t mark = st->ops->mark(st);
    message *m = contract_message("refused", "4");
    CHECK(st->ops->append(st, m, 0, 0) == STORE_EFULL);
    CHECK(m->seq == 0);           /* untouched, still the caller's */
    CHECK(range_is(st, 1, 4, 3)); /* nothing changed */
    CHECK(st->ops->find(st, "refused") == NULL);
    CHECK(st->ops->mark(st) == mark);

    CHECK(st->ops->append(st, m, 1, 0) == STORE_OK); /* the oldest makes room */
    CHECK(m->seq == 4);
    CHECK(range_is(st, 2, 5, 3));
    CHECK(strcmp(seqs_from(st, 0, 8), "2 3 4") == 0);
    CHECK(st->ops->find(st, "refused") == m);
    st->ops->free(st);
}

static void contract_the_log_wraps_and_keeps_order(void)
{
    store *st = contract_make(5, 0, 4);
    for (int i = 1; i <= 103; i++)
        CHECK(contract_add(st, NULL, "0") == (uint64_t)i);
    CHECK(range_is(st, 99, 104, 5));
    CHECK(strcmp(seqs_from(st, 0, 8), "99 100 101 102 103") == 0);
    CHECK(strcmp(seqs_from(st, 101, 8), "101 102 103") == 0);

    /* A capacity larger than any first allocation: order holds across growth and wrap. */
    store *big = contract_make(300, 0, 4);
    char data[16];
    for (int i = 1; i <= 1000; i++) {
        snprintf(data, sizeof data, "%d", i);
        contract_add(big, NULL, data);
    }
    CHECK(range_is(big, 701, 1001, 300));
    const message *got[300];
    CHECK(big->ops->read(big, 0, got, 300) == 300);
    int in_order = 1;
    for (size_t i = 0; i < 300; i++) {
        snprintf(data, sizeof data, "%zu", 701 + i);
        in_order &= got[i]->seq == 701 + i && strcmp(got[i]->data_json, data) == 0;
    }
    CHECK(in_order);
    big->ops->free(big);
    st->ops->free(st);
}

static void contract_trim_drops_the_oldest_and_seqs_go_on(void)
{
    store *st = contract_make(8, 1, 4);
    contract_add(st, "a", "1");
    contract_add(st, "b", "2");
    contract_add(st, "c", "3");
    st->ops->trim(st, 1); /* nothing is older than 1 */
    CHECK(range_is(st, 1, 4, 3));
    st->ops->trim(st, 3);
    CHECK(range_is(st, 3, 4, 1));
    CHECK(st->ops->find(st, "a") == NULL && st->ops->find(st, "b") == NULL);
    CHECK(st->ops->find(st, "c") != NULL);
    st->ops->trim(st, UINT64_MAX); /* everything */
    CHECK(range_is(st, 4, 4, 0));
    CHECK(st->ops->find(st, "c") == NULL);
    CHECK(contract_add(st, "d", "4") == 4); /* a seq is never reused */
    CHECK(range_is(st, 4, 5, 1));
    st->ops->free(st);
}

/* Both with an index and without: the newest of two messages that share an id is found. */
static void contract_find_gives_the_newest_message_with_an_id(void)
{
    for (int index = 0; index <= 1; index++) {
        store *st = contract_make(8, index, 4);
        contract_add(st, "same", "1");
        contract_add(st, "other", "2");
        contract_add(st, "same", "3");
        const message *m = st->ops->find(st, "same");
        CHECK(m && m->seq == 3);
        CHECK(st->ops->find(st, "other") && st->ops->find(st, "other")->seq == 2);
        CHECK(st->ops->find(st, "missing") == NULL);
        st->ops->trim(st, 2); /* the older "same" goes; the newer is still found */
        m = st->ops->find(st, "same");
        CHECK(m && m->seq == 3);
        st->ops->trim(st, 4);
        CHECK(st->ops->find(st, "same") == NULL);
        st->ops->free(st);
    }
}

/* ---- bytes ---- */

static size_t bytes_held(const store *st) { return st->ops->range(st).bytes; }

static void contract_the_store_accounts_the_bytes_it_holds(void)
{
    store *st = contract_make(3, 1, 4);
    CHECK(bytes_held(st) == 0);
    message *a = contract_message("a", "\"aaaaaaaaaa\"");
    size_t sa = a->bytes;
    CHECK(sa == message_in_size(&(message_in){.data_json = "\"aaaaaaaaaa\"", .id = "a"}));
    CHECK(st->ops->append(st, a, 0, 0) == STORE_OK);
    CHECK(bytes_held(st) == sa);
    contract_add(st, "b", "1");
    contract_add(st, "c", "2");
    const message *got[3];
    CHECK(st->ops->read(st, 0, got, 3) == 3);
    size_t sb = got[1]->bytes, sc = got[2]->bytes;
    CHECK(bytes_held(st) == sa + sb + sc);
    contract_add(st, "d", "3"); /* full by count: "a" makes room, and its bytes go with it */
    const message *d = st->ops->find(st, "d");
    CHECK(d && bytes_held(st) == sb + sc + d->bytes);
    st->ops->trim(st, d->seq);
    CHECK(bytes_held(st) == d->bytes);
    st->ops->trim(st, UINT64_MAX);
    CHECK(bytes_held(st) == 0);
    st->ops->free(st);
}

static void contract_a_byte_bound_drops_the_oldest_or_refuses(void)
{
    store *st = contract_make(100, 1, 4);
    for (int i = 0; i < 5; i++)
        contract_add(st, NULL, "\"0123456789\"");
    size_t one = bytes_held(st) / 5;
    CHECK(bytes_held(st) == 5 * one);

    /* Room for three: without make_room refused and nothing changes, with it the two oldest go. */
    uint64_t mark = st->ops->mark(st);
    message *m = contract_message("sixth", "\"0123456789\"");
    CHECK(m->bytes == one);
    CHECK(st->ops->append(st, m, 0, 3 * one) == STORE_EFULL);
    CHECK(range_is(st, 1, 6, 5) && bytes_held(st) == 5 * one && st->ops->mark(st) == mark);
    CHECK(st->ops->append(st, m, 1, 3 * one) == STORE_OK);
    CHECK(range_is(st, 4, 7, 3) && bytes_held(st) == 3 * one);
    CHECK(strcmp(seqs_from(st, 0, 8), "4 5 6") == 0);

    /* Exactly at the bound fits; 0 is no bound. */
    CHECK(contract_add(st, NULL, "\"0123456789\"") == 7); /* make_room, no bound */
    message *exact = contract_message("exact", "\"0123456789\"");
    CHECK(st->ops->append(st, exact, 0, 5 * one) == STORE_OK);
    CHECK(range_is(st, 4, 9, 5));

    /* A message larger than the bound by itself is refused either way, dropping nothing. */
    message *huge = contract_message("huge", "\"0123456789\"");
    CHECK(st->ops->append(st, huge, 1, one - 1) == STORE_EFULL);
    CHECK(huge->seq == 0 && st->ops->find(st, "huge") == NULL);
    CHECK(range_is(st, 4, 9, 5) && bytes_held(st) == 5 * one);
    message_free(huge);

    /* A large one makes several small ones go at once. */
    char big[2048];
    CHECK(2 * one + 3 < sizeof big);
    snprintf(big, sizeof big, "\"%0*d\"", (int)(2 * one), 0);
    message *two = contract_message("two", big); /* more than three small ones' bytes */
    CHECK(two->bytes > 2 * one && two->bytes < 3 * one + one);
    CHECK(st->ops->append(st, two, 1, 5 * one) == STORE_OK);
    size_t left = (5 * one - two->bytes) / one; /* the newest small ones that still fit */
    CHECK(bytes_held(st) <= 5 * one && st->ops->range(st).count == 1 + left && left < 3);
    CHECK(st->ops->find(st, "two") == two);
    st->ops->free(st);
}

/* ---- claims ---- */

static void contract_claims_are_set_released_and_finished(void)
{
    store *st = contract_make(8, 1, 4);
    for (int i = 0; i < 3; i++)
        contract_add(st, NULL, "0");
    const message *got[3];
    CHECK(st->ops->read(st, 1, got, 3) == 3);

    char holder[] = "worker-1";
    CHECK(st->ops->claim(st, got, 2, holder, 130.0) == STORE_OK);
    holder[0] = 'X'; /* the store keeps its own copy */
    CHECK(got[0]->claimed_by && strcmp(got[0]->claimed_by, "worker-1") == 0);
    CHECK(got[1]->claimed_by && got[1]->claim_deadline == 130.0);
    CHECK(got[2]->claimed_by == NULL && !got[2]->done);

    /* A claim that lapsed is taken over. */
    CHECK(st->ops->claim(st, got + 1, 1, "worker-2", 200.0) == STORE_OK);
    CHECK(strcmp(got[1]->claimed_by, "worker-2") == 0 && got[1]->claim_deadline == 200.0);

    st->ops->release(st, got + 1, 1);
    CHECK(got[1]->claimed_by == NULL && got[1]->claim_deadline == 0 && !got[1]->done);

    st->ops->done(st, got, 1);
    CHECK(got[0]->done && got[0]->claimed_by == NULL);
    CHECK(st->ops->find(st, got[0]->id) == got[0]); /* done work is held until trimmed */
    CHECK(st->ops->claim(st, got, 0, "nobody", 1.0) == STORE_OK);
    st->ops->free(st);
}

/* ---- cursors ---- */

static void contract_cursors_are_kept_per_reader(void)
{
    store *st = contract_make(8, 0, 4);
    CHECK(st->ops->cursor_set(st, "alice", NULL, 5, 2) == STORE_OK);
    CHECK(st->ops->cursor_set(st, "bob", NULL, 1, 0) == STORE_OK);
    store_cursor *a = st->ops->cursor_get(st, "alice");
    CHECK(a && a->next_seq == 5 && a->missed == 2);
    CHECK(st->ops->cursor_count(st) == 2);

    /* With the handle cursor_get gave, and without. */
    CHECK(st->ops->cursor_set(st, "alice", a, 7, 3) == STORE_OK);
    a = st->ops->cursor_get(st, "alice");
    CHECK(a && a->next_seq == 7 && a->missed == 3);
    CHECK(st->ops->cursor_set(st, "alice", NULL, 8, 3) == STORE_OK);
    a = st->ops->cursor_get(st, "alice");
    CHECK(a && a->next_seq == 8);
    CHECK(st->ops->cursor_count(st) == 2);

    st->ops->cursor_forget(st, "alice");
    st->ops->cursor_forget(st, "nobody"); /* harmless */
    CHECK(st->ops->cursor_get(st, "alice") == NULL);
    CHECK(st->ops->cursor_count(st) == 1);
    store_cursor *b = st->ops->cursor_get(st, "bob");
    CHECK(b && b->next_seq == 1 && b->missed == 0);
    st->ops->free(st);
}

static void contract_past_max_cursors_the_least_recently_set_goes(void)
{
    store *st = contract_make(8, 0, 3);
    st->ops->cursor_set(st, "r1", NULL, 1, 0);
    st->ops->cursor_set(st, "r2", NULL, 1, 0);
    st->ops->cursor_set(st, "r3", NULL, 1, 0);
    st->ops->cursor_set(st, "r1", st->ops->cursor_get(st, "r1"), 2, 0); /* r2 is stalest now */
    CHECK(st->ops->cursor_set(st, "r4", NULL, 1, 0) == STORE_OK);
    CHECK(st->ops->cursor_count(st) == 3);
    CHECK(st->ops->cursor_get(st, "r2") == NULL);
    CHECK(st->ops->cursor_get(st, "r1") && st->ops->cursor_get(st, "r3"));
    CHECK(st->ops->cursor_get(st, "r4") && st->ops->cursor_get(st, "r4")->next_seq == 1);
    st->ops->free(st);
}

/* ---- durability ---- */

static void contract_every_change_is_committed_once_flushed(void)
{
    store *st = contract_make(4, 1, 4);
    uint64_t before = st->ops->mark(st);
    contract_add(st, "m", "1");
    uint64_t after_write = st->ops->mark(st);
    CHECK(after_write >= before);
    CHECK(st->ops->flush(st) == STORE_OK);
    contract_settle(st);
    CHECK(st->ops->committed(st) >= after_write);
    CHECK(st->ops->range(st).visible_seq == 2); /* what is committed, readers may see */

    const message *m = st->ops->find(st, "m");
    CHECK(st->ops->claim(st, &m, 1, "w", 10.0) == STORE_OK);
    st->ops->done(st, &m, 1);
    CHECK(st->ops->cursor_set(st, "r", NULL, 2, 0) == STORE_OK);
    st->ops->trim(st, 2);
    uint64_t after_all = st->ops->mark(st);
    CHECK(after_all >= after_write);
    CHECK(st->ops->flush(st) == STORE_OK);
    CHECK(st->ops->flush(st) == STORE_OK); /* nothing new: harmless */
    contract_settle(st);
    CHECK(st->ops->committed(st) >= after_all);
    const char *epoch = st->ops->epoch(st);
    CHECK(epoch == st->ops->epoch(st) || (epoch && strcmp(epoch, st->ops->epoch(st)) == 0));
    st->ops->free(st);
}

/* What a restart keeps: messages with ids and seqs in order, claims, done work, cursors, and
 * the seq goes on from where it stopped. */
static void contract_a_reopened_store_has_what_it_had(void)
{
    store_config cfg = contract_config(8, 1, 4);
    store *st = contract_factory->make(&cfg, contract_factory->ctx);
    contract_add(st, "gone", "0");
    contract_add(st, "a", "1");
    contract_add(st, "b", "2");
    contract_add(st, "c", "3");
    st->ops->trim(st, 2);
    const message *got[3];
    st->ops->read(st, 2, got, 3);
    st->ops->claim(st, got, 1, "w1", 500.0);
    st->ops->done(st, got + 1, 1);
    st->ops->cursor_set(st, "reader", NULL, 3, 1);
    const char *epoch = st->ops->epoch(st);
    char kept_epoch[64] = "";
    if (epoch)
        snprintf(kept_epoch, sizeof kept_epoch, "%s", epoch);
    st->ops->flush(st);
    contract_settle(st);

    st = contract_factory->reopen(st, &cfg, contract_factory->ctx);
    CHECK(st != NULL);
    if (!st)
        return;
    CHECK(range_is(st, 2, 5, 3));
    CHECK(strcmp(seqs_from(st, 0, 8), "2 3 4") == 0);
    const message *a = st->ops->find(st, "a"), *b = st->ops->find(st, "b");
    CHECK(a && a->seq == 2 && strcmp(a->data_json, "1") == 0);
    CHECK(a && a->claimed_by && strcmp(a->claimed_by, "w1") == 0 && a->claim_deadline == 500.0);
    CHECK(b && b->done && b->claimed_by == NULL);
    CHECK(st->ops->find(st, "gone") == NULL);
    store_cursor *c = st->ops->cursor_get(st, "reader");
    CHECK(c && c->next_seq == 3 && c->missed == 1);
    epoch = st->ops->epoch(st);
    CHECK(epoch ? strcmp(epoch, kept_epoch) == 0 : kept_epoch[0] == '\0');
    CHECK(contract_add(st, "d", "4") == 5);
    st->ops->free(st);
}

/* Runs every case against the stores f makes; results go to check.h's counters. */
static void store_contract(const store_factory *f)
{
    contract_factory = f;
    printf("# store contract: %s\n", f->name);
    RUN(contract_a_new_store_is_empty);
    RUN(contract_append_numbers_messages_and_keeps_them_as_built);
    RUN(contract_read_starts_at_a_seq_and_stops_at_max);
    RUN(contract_a_full_store_refuses_or_makes_room);
    RUN(contract_the_log_wraps_and_keeps_order);
    RUN(contract_trim_drops_the_oldest_and_seqs_go_on);
    RUN(contract_find_gives_the_newest_message_with_an_id);
    RUN(contract_the_store_accounts_the_bytes_it_holds);
    RUN(contract_a_byte_bound_drops_the_oldest_or_refuses);
    RUN(contract_claims_are_set_released_and_finished);
    RUN(contract_cursors_are_kept_per_reader);
    RUN(contract_past_max_cursors_the_least_recently_set_goes);
    RUN(contract_every_change_is_committed_once_flushed);
    if (f->reopen)
        RUN(contract_a_reopened_store_has_what_it_had);
}

#endif
