/* test_channel.c - unit tests for host/model/channel.c: the message log, cursors and exclusive reads.
 * Each test builds the smallest channel that shows one behaviour and drives it with an explicit
 * clock (the `now` argument), never with sleeps. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/channel.h"
#include "check.h"

static channel *make(channel_kind kind, size_t capacity, double retention)
{
    channel_config cfg = {
        .id = "test-channel",
        .kind = kind,
        .capacity = capacity,
        .retention = retention,
    };
    return channel_new(&cfg);
}

/* Writes `data` (a JSON text) with no other fields set; returns the stored seq or 0. */
static uint64_t put(channel *ch, const char *data, double now)
{
    message_in in = {.data_json = data, .data_len = strlen(data)};
    const message *m = NULL;
    if (channel_write(ch, &in, now, &m) != CHANNEL_OK || !m)
        return 0;
    return m->seq;
}

static uint64_t put_to(channel *ch, const char *recipient, double now)
{
    message_in in = {.data_json = "1", .data_len = 1, .recipient_id = recipient};
    const message *m = NULL;
    if (channel_write(ch, &in, now, &m) != CHANNEL_OK || !m)
        return 0;
    return m->seq;
}

/* A reader's cursor, as the channel's store keeps it. */
static store_cursor *cursor(channel *ch, const char *reader)
{
    return ch->store->ops->cursor_get(ch->store, reader);
}

static size_t cursors(channel *ch)
{
    return ch->store->ops->cursor_count(ch->store);
}

/* Whether a channel of this kind asks its store for an id index. */
static int indexes_ids(channel_kind kind)
{
    channel_config cfg = {.id = "x", .kind = kind};
    store_config sc;
    return channel_store_config(&cfg, &sc) == 0 && sc.index_ids;
}

static int is_uuid_v4(const char *s)
{
    if (strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!strchr("0123456789abcdef", s[i]) || s[i] == '\0') {
            return 0;
        }
    }
    return s[14] == '4' && strchr("89ab", s[19]) != NULL;
}

/* ---- names and construction ---- */

static void test_kind_names_and_errors(void)
{
    channel_kind k;
    const channel_kind all[] = {CHANNEL_BROADCAST, CHANNEL_WORK_QUEUE, CHANNEL_MAILBOX,
                                CHANNEL_PERIODIC, CHANNEL_PASSTHROUGH};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        CHECK(channel_kind_parse(channel_kind_name(all[i]), &k) == 0);
        CHECK(k == all[i]);
    }
    CHECK(strcmp(channel_kind_name(CHANNEL_WORK_QUEUE), "work_queue") == 0);
    CHECK(channel_kind_parse("fanout", &k) == -1);
    CHECK(strcmp(channel_strerror(CHANNEL_ENOMEM), "out of memory") == 0);
    CHECK(strcmp(channel_strerror(CHANNEL_ESTOPPED), "channel is stopped") == 0);
    CHECK(strcmp(channel_strerror(CHANNEL_EFULL), "channel is full") == 0);
    CHECK(strcmp(channel_strerror(CHANNEL_EKIND),
                 "operation not allowed for this channel kind") == 0);
    CHECK(strcmp(channel_strerror(CHANNEL_EIO), "channel store failed") == 0);
}

static void test_new_applies_defaults(void)
{
    channel_config empty = {.id = ""};
    CHECK(channel_new(&empty) == NULL);

    channel *ch = make(CHANNEL_BROADCAST, 0, 0);
    CHECK(ch != NULL);
    if (!ch)
        return;
    CHECK(ch->capacity == 1000);
    CHECK(ch->claim_timeout == 30);
    CHECK(strcmp(ch->id, "test-channel") == 0);
    CHECK(strcmp(ch->name, "test-channel") == 0); /* name defaults to the id */
    CHECK(strcmp(ch->description, "") == 0);
    CHECK(ch->first_seq == 1 && ch->next_seq == 1);
    CHECK(channel_last_seq(ch) == 0);
    channel_free(ch);
}

/* ---- writing ---- */

static void test_write_numbers_messages_with_unique_uuids(void)
{
    channel *ch = make(CHANNEL_BROADCAST, 0, 0);
    char ids[3][37];
    for (int i = 0; i < 3; i++) {
        message_in in = {.data_json = "{\"n\":1}", .data_len = 7, .sender_id = "sys-a"};
        const message *m = NULL;
        CHECK(channel_write(ch, &in, 100.25 + i, &m) == CHANNEL_OK);
        CHECK(m && m->seq == (uint64_t)i + 1);
        CHECK(m && is_uuid_v4(m->id));
        CHECK(m && m->timestamp == 100.25 + i);
        CHECK(m && strcmp(m->sender_id, "sys-a") == 0);
        CHECK(m && m->data_len == 7 && strcmp(m->data_json, "{\"n\":1}") == 0);
        CHECK(m && m->correlation_id == NULL && m->reply_to == NULL && m->recipient_id == NULL);
        if (m)
            memcpy(ids[i], m->id, sizeof ids[i]);
    }
    CHECK(strcmp(ids[0], ids[1]) != 0 && strcmp(ids[1], ids[2]) != 0
          && strcmp(ids[0], ids[2]) != 0);
    CHECK(channel_last_seq(ch) == 3);
    CHECK(ch->writes == 3);
    channel_free(ch);
}

static void test_write_keeps_given_fields_and_defaults_metadata(void)
{
    channel *ch = make(CHANNEL_BROADCAST, 0, 0);
    const message *m = NULL;
    message_in plain = {.data_json = "null", .data_len = 4};
    CHECK(channel_write(ch, &plain, 1, &m) == CHANNEL_OK);
    CHECK(m && strcmp(m->metadata_json, "{}") == 0);

    message_in full = {
        .data_json = "[1,2]xyz", .data_len = 5, /* only the first data_len bytes count */
        .metadata_json = "{\"k\":\"v\"}",
        .correlation_id = "corr-1",
        .reply_to = "replies",
        .id = "envelope-id-1",
    };
    CHECK(channel_write(ch, &full, 2, &m) == CHANNEL_OK);
    CHECK(m && strcmp(m->id, "envelope-id-1") == 0);
    CHECK(m && m->data_len == 5 && strcmp(m->data_json, "[1,2]") == 0);
    CHECK(m && strcmp(m->metadata_json, "{\"k\":\"v\"}") == 0);
    CHECK(m && strcmp(m->correlation_id, "corr-1") == 0);
    CHECK(m && strcmp(m->reply_to, "replies") == 0);
    CHECK(channel_find(ch, "envelope-id-1") == m);

    /* Longer ids are cut to the 36 characters a UUID has. */
    message_in long_id = {.data_json = "1", .data_len = 1,
                          .id = "0123456789012345678901234567890123456789"};
    CHECK(channel_write(ch, &long_id, 3, &m) == CHANNEL_OK);
    CHECK(m && strcmp(m->id, "012345678901234567890123456789012345") == 0);
    channel_free(ch);
}

static void test_find_by_id_follows_the_log(void)
{
    channel *ch = make(CHANNEL_BROADCAST, 2, 0);
    const message *first = NULL;
    message_in in = {.data_json = "1", .data_len = 1};
    CHECK(channel_write(ch, &in, 1, &first) == CHANNEL_OK);
    char id[37];
    memcpy(id, first->id, sizeof id);
    CHECK(channel_find(ch, id) == first);
    CHECK(channel_find(ch, "no-such-id") == NULL);
    put(ch, "2", 2);
    put(ch, "3", 3); /* pushes the first message out */
    CHECK(channel_find(ch, id) == NULL);
    CHECK(!indexes_ids(CHANNEL_BROADCAST)); /* only work queues keep an id index */
    CHECK(indexes_ids(CHANNEL_WORK_QUEUE));
    channel_free(ch);
}

static void test_ring_wraps_many_times(void)
{
    channel *ch = make(CHANNEL_BROADCAST, 4, 0);
    for (int i = 0; i < 103; i++)
        put(ch, "0", i);
    CHECK(ch->count == 4);
    CHECK(ch->first_seq == 100 && ch->next_seq == 104);
    CHECK(ch->dropped == 99);
    CHECK(!indexes_ids(CHANNEL_BROADCAST));
    channel_batch b;
    CHECK(channel_read(ch, "r", 0, 0, 0, 200, &b) == CHANNEL_OK);
    CHECK(b.count == 4);
    for (size_t i = 0; i < b.count; i++)
        CHECK(b.items[i]->seq == 100 + i);
    channel_batch_free(&b);
    channel_free(ch);
}

static void test_stopped_channel_refuses_writes_but_reads_go_on(void)
{
    channel *ch = make(CHANNEL_BROADCAST, 0, 0);
    put(ch, "1", 1);
    channel_stop(ch);
    message_in in = {.data_json = "2", .data_len = 1};
    const message *m = NULL;
    CHECK(channel_write(ch, &in, 2, &m) == CHANNEL_ESTOPPED);
    CHECK(m == NULL);
    CHECK(ch->writes == 1 && channel_last_seq(ch) == 1);
    channel_batch b;
    CHECK(channel_read(ch, "r", 0, 0, 0, 3, &b) == CHANNEL_OK);
    CHECK(b.count == 1);
    channel_batch_free(&b);
    channel_free(ch);
}

/* ---- shared reads ---- */

static void test_read_honours_limit_and_moves_the_cursor(void)
{
    channel *ch = make(CHANNEL_BROADCAST, 0, 0);
    for (int i = 0; i < 5; i++)
        put(ch, "0", i);
    channel_batch b;
    CHECK(channel_read(ch, "r", 2, 0, 0, 10, &b) == CHANNEL_OK);
    CHECK(b.count == 2 && b.missed == 0);
    CHECK(b.count == 2 && b.items[0]->seq == 1 && b.items[1]->seq == 2);
    channel_batch_free(&b);

    CHECK(channel_read(ch, "r", 0, 0, 0, 10, &b) == CHANNEL_OK); /* limit 0 -> 100 */
    CHECK(b.count == 3 && b.items[0]->seq == 3 && b.items[2]->seq == 5);
    channel_batch_free(&b);

    CHECK(channel_read(ch, "r", 0, 0, 0, 10, &b) == CHANNEL_OK);
    CHECK(b.count == 0);
    channel_batch_free(&b);

    put(ch, "0", 11);
    CHECK(channel_read(ch, "r", 0, 0, 0, 12, &b) == CHANNEL_OK);
    CHECK(b.count == 1 && b.items[0]->seq == 6);
    channel_batch_free(&b);
    CHECK(ch->reads == 6);
    channel_free(ch);
}

static void test_readers_have_independent_cursors(void)
{
    channel *ch = make(CHANNEL_BROADCAST, 0, 0);
    for (int i = 0; i < 4; i++)
        put(ch, "0", i);
    channel_batch a, b;
    CHECK(channel_read(ch, "alice", 3, 0, 0, 10, &a) == CHANNEL_OK);
    CHECK(a.count == 3);
    channel_batch_free(&a);
    CHECK(channel_read(ch, "bob", 1, 0, 0, 10, &b) == CHANNEL_OK);
    CHECK(b.count == 1 && b.items[0]->seq == 1); /* bob starts at the oldest message */
    channel_batch_free(&b);
    CHECK(channel_read(ch, "alice", 0, 0, 0, 10, &a) == CHANNEL_OK);
    CHECK(a.count == 1 && a.items[0]->seq == 4);
    channel_batch_free(&a);
    CHECK(channel_read(ch, "bob", 0, 0, 0, 10, &b) == CHANNEL_OK);
    CHECK(b.count == 3 && b.items[0]->seq == 2);
    channel_batch_free(&b);

    /* A forgotten reader starts over at the oldest message. */
    channel_forget_reader(ch, "bob");
    CHECK(cursor(ch, "bob") == NULL);
    CHECK(channel_read(ch, "bob", 0, 0, 0, 10, &b) == CHANNEL_OK);
    CHECK(b.count == 4);
    channel_batch_free(&b);
    channel_free(ch);
}

static void test_read_after_a_seq(void)
{
    channel *ch = make(CHANNEL_BROADCAST, 0, 0);
    for (int i = 0; i < 5; i++)
        put(ch, "0", i);
    channel_batch b;
    CHECK(channel_read(ch, "r", 0, 1, 3, 10, &b) == CHANNEL_OK);
    CHECK(b.count == 2 && b.items[0]->seq == 4 && b.items[1]->seq == 5);
    channel_batch_free(&b);
    CHECK(channel_read(ch, "r", 0, 0, 0, 10, &b) == CHANNEL_OK); /* cursor followed */
    CHECK(b.count == 0);
    channel_batch_free(&b);

    /* after 0 re-reads from the start, and after beyond the end gives nothing */
    CHECK(channel_read(ch, "r", 2, 1, 0, 10, &b) == CHANNEL_OK);
    CHECK(b.count == 2 && b.items[0]->seq == 1 && b.missed == 0);
    channel_batch_free(&b);
    CHECK(channel_read(ch, "r", 0, 1, 99, 10, &b) == CHANNEL_OK);
    CHECK(b.count == 0);
    channel_batch_free(&b);
    CHECK(channel_read(ch, "r", 0, 1, UINT64_MAX, 10, &b) == CHANNEL_OK);
    CHECK(b.count == 0);
    channel_batch_free(&b);
    put(ch, "0", 11);
    CHECK(channel_read(ch, "r", 0, 0, 0, 12, &b) == CHANNEL_OK);
    CHECK(b.count == 1 && b.items[0]->seq == 6);
    channel_batch_free(&b);
    channel_free(ch);
}

static void test_capacity_drops_count_as_missed_for_a_slow_reader(void)
{
    channel *ch = make(CHANNEL_BROADCAST, 3, 0);
    put(ch, "0", 1);
    put(ch, "0", 2);
    channel_batch b;
    CHECK(channel_read(ch, "slow", 1, 0, 0, 3, &b) == CHANNEL_OK); /* saw seq 1 */
    channel_batch_free(&b);
    for (int i = 0; i < 4; i++)
        put(ch, "0", 4 + i); /* seqs 3..6; 1, 2, 3 fall out */
    CHECK(ch->dropped == 3);
    CHECK(ch->first_seq == 4);

    CHECK(channel_read(ch, "slow", 0, 0, 0, 10, &b) == CHANNEL_OK);
    CHECK(b.missed == 2); /* seqs 2 and 3, never seen */
    CHECK(b.count == 3 && b.items[0]->seq == 4);
    channel_batch_free(&b);
    store_cursor *r = cursor(ch, "slow");
    CHECK(r && r->missed == 2 && r->next_seq == 7);

    /* Missed is reported once: the next read starts clean. */
    CHECK(channel_read(ch, "slow", 0, 0, 0, 10, &b) == CHANNEL_OK);
    CHECK(b.missed == 0 && b.count == 0);
    channel_batch_free(&b);

    /* A new reader never missed anything. */
    CHECK(channel_read(ch, "fresh", 0, 0, 0, 10, &b) == CHANNEL_OK);
    CHECK(b.missed == 0 && b.count == 3);
    channel_batch_free(&b);
    channel_free(ch);
}

static void test_after_before_the_oldest_counts_the_gap_as_missed(void)
{
    channel *ch = make(CHANNEL_BROADCAST, 2, 0);
    for (int i = 0; i < 5; i++)
        put(ch, "0", i); /* holds 4, 5 */
    channel_batch b;
    CHECK(channel_read(ch, "r", 0, 1, 1, 10, &b) == CHANNEL_OK);
    CHECK(b.missed == 2); /* 2 and 3 are gone */
    CHECK(b.count == 2 && b.items[0]->seq == 4);
    channel_batch_free(&b);
    store_cursor *r = cursor(ch, "r");
    CHECK(r && r->missed == 2 && r->next_seq == 6);
    channel_free(ch);
}

static void test_retention_drops_old_messages(void)
{
    channel *ch = make(CHANNEL_BROADCAST, 0, 10);
    put(ch, "0", 100);
    put(ch, "0", 105);
    channel_batch b;
    CHECK(channel_read(ch, "early", 1, 0, 0, 106, &b) == CHANNEL_OK);
    CHECK(b.count == 1 && b.items[0]->seq == 1);
    channel_batch_free(&b);

    /* At 110 the first message is exactly `retention` old: gone. */
    CHECK(channel_read(ch, "late", 0, 0, 0, 110, &b) == CHANNEL_OK);
    CHECK(b.count == 1 && b.items[0]->seq == 2 && b.missed == 0);
    channel_batch_free(&b);
    CHECK(ch->dropped == 1 && ch->first_seq == 2);

    /* A write also expires what is old; the reader still at seq 2 missed it. */
    put(ch, "0", 120);
    CHECK(ch->dropped == 2 && ch->count == 1);
    CHECK(channel_read(ch, "early", 0, 0, 0, 120, &b) == CHANNEL_OK);
    CHECK(b.missed == 1 && b.count == 1 && b.items[0]->seq == 3);
    channel_batch_free(&b);
    channel_free(ch);
}

static void test_mailbox_readers_see_their_own_and_unaddressed_messages(void)
{
    channel *ch = make(CHANNEL_MAILBOX, 0, 0);
    put_to(ch, "alice", 1);  /* 1 */
    put_to(ch, "bob", 2);    /* 2 */
    put_to(ch, NULL, 3);     /* 3: everyone */
    put_to(ch, "bob", 4);    /* 4 */
    put_to(ch, "alice", 5);  /* 5 */
    channel_batch b;
    CHECK(channel_read(ch, "alice", 0, 0, 0, 10, &b) == CHANNEL_OK);
    CHECK(b.count == 3);
    CHECK(b.count == 3 && b.items[0]->seq == 1 && b.items[1]->seq == 3 && b.items[2]->seq == 5);
    channel_batch_free(&b);

    CHECK(channel_read(ch, "bob", 2, 0, 0, 10, &b) == CHANNEL_OK);
    CHECK(b.count == 2 && b.items[0]->seq == 2 && b.items[1]->seq == 3);
    channel_batch_free(&b);
    CHECK(channel_read(ch, "bob", 0, 0, 0, 10, &b) == CHANNEL_OK);
    CHECK(b.count == 1 && b.items[0]->seq == 4);
    channel_batch_free(&b);

    /* Skipped messages still move the cursor. */
    put_to(ch, "bob", 11);
    CHECK(channel_read(ch, "alice", 0, 0, 0, 12, &b) == CHANNEL_OK);
    CHECK(b.count == 0);
    channel_batch_free(&b);
    store_cursor *r = cursor(ch, "alice");
    CHECK(r && r->next_seq == 7);
    channel_free(ch);
}

/* ---- kinds ---- */

static void test_each_kind_refuses_the_reads_it_does_not_offer(void)
{
    channel_batch b;
    const char *ids[] = {"x"};

    channel *wq = make(CHANNEL_WORK_QUEUE, 0, 0);
    put(wq, "0", 1);
    CHECK(channel_read(wq, "r", 0, 0, 0, 1, &b) == CHANNEL_EKIND);
    CHECK(b.count == 0 && b.items == NULL);
    channel_free(wq);

    const channel_kind shared_only[] = {CHANNEL_BROADCAST, CHANNEL_MAILBOX, CHANNEL_PERIODIC};
    for (size_t i = 0; i < 3; i++) {
        channel *ch = make(shared_only[i], 0, 0);
        put(ch, "0", 1);
        CHECK(channel_claim(ch, "r", 0, 1, &b) == CHANNEL_EKIND);
        CHECK(b.count == 0);
        CHECK(channel_ack(ch, "r", ids, 1, 1) == CHANNEL_EKIND);
        CHECK(channel_nack(ch, "r", ids, 1, 1) == CHANNEL_EKIND);
        channel_free(ch);
    }

    channel *pt = make(CHANNEL_PASSTHROUGH, 0, 0);
    CHECK(channel_ack(pt, "r", ids, 1, 1) == CHANNEL_EKIND);
    channel_free(pt);
}

static void test_claims_give_distinct_messages_to_two_claimers(void)
{
    channel *ch = make(CHANNEL_WORK_QUEUE, 0, 0);
    for (int i = 0; i < 5; i++)
        put(ch, "0", i);
    channel_batch a, b, c;
    CHECK(channel_claim(ch, "w1", 2, 10, &a) == CHANNEL_OK);
    CHECK(channel_claim(ch, "w2", 2, 10, &b) == CHANNEL_OK);
    CHECK(channel_claim(ch, "w3", 0, 10, &c) == CHANNEL_OK);
    CHECK(a.count == 2 && b.count == 2 && c.count == 1);
    CHECK(a.count == 2 && a.items[0]->seq == 1 && a.items[1]->seq == 2);
    CHECK(b.count == 2 && b.items[0]->seq == 3 && b.items[1]->seq == 4);
    CHECK(c.count == 1 && c.items[0]->seq == 5);
    CHECK(a.count && strcmp(a.items[0]->claimed_by, "w1") == 0);
    CHECK(a.count && a.items[0]->claim_deadline == 10 + 30);
    channel_batch_free(&c);
    CHECK(channel_claim(ch, "w3", 0, 11, &c) == CHANNEL_OK);
    CHECK(c.count == 0); /* everything is under a live claim */
    channel_batch_free(&a);
    channel_batch_free(&b);
    channel_batch_free(&c);
    CHECK(ch->claims == 5 && ch->reads == 5);
    CHECK(channel_pending(ch) == 5);
    channel_free(ch);
}

static void test_an_expired_claim_is_offered_again(void)
{
    channel_config cfg = {.id = "jobs", .kind = CHANNEL_WORK_QUEUE, .claim_timeout = 5};
    channel *ch = channel_new(&cfg);
    put(ch, "0", 0);
    channel_batch b;
    CHECK(channel_claim(ch, "w1", 0, 100, &b) == CHANNEL_OK);
    CHECK(b.count == 1);
    channel_batch_free(&b);
    CHECK(channel_claim(ch, "w2", 0, 104.9, &b) == CHANNEL_OK);
    CHECK(b.count == 0);
    channel_batch_free(&b);
    CHECK(channel_claim(ch, "w2", 0, 105, &b) == CHANNEL_OK); /* deadline reached */
    CHECK(b.count == 1 && strcmp(b.items[0]->claimed_by, "w2") == 0);
    CHECK(b.count == 1 && b.items[0]->claim_deadline == 110);
    char id[37];
    memcpy(id, b.items[0]->id, sizeof id);
    channel_batch_free(&b);

    /* The first holder lost its claim: its ack is ignored, the new holder's counts. */
    const char *ids[] = {id};
    CHECK(channel_ack(ch, "w1", ids, 1, 106) == 0);
    CHECK(channel_ack(ch, "w2", ids, 1, 106) == 1);
    channel_free(ch);
}

static void test_ack_of_a_lapsed_claim_nobody_took_is_accepted(void)
{
    channel_config cfg = {.id = "jobs", .kind = CHANNEL_WORK_QUEUE, .claim_timeout = 5};
    channel *ch = channel_new(&cfg);
    const message *m = NULL;
    message_in in = {.data_json = "0", .data_len = 1};
    channel_write(ch, &in, 0, &m);
    char id[37];
    memcpy(id, m->id, sizeof id);
    channel_batch b;
    CHECK(channel_claim(ch, "w1", 0, 100, &b) == CHANNEL_OK);
    channel_batch_free(&b);
    const char *ids[] = {id};
    CHECK(channel_ack(ch, "w1", ids, 1, 500) == 1);
    CHECK(channel_pending(ch) == 0 && ch->count == 0);
    channel_free(ch);
}

static void test_nack_by_the_holder_releases_at_once_and_others_are_ignored(void)
{
    channel *ch = make(CHANNEL_WORK_QUEUE, 0, 0);
    const message *m = NULL;
    message_in in = {.data_json = "0", .data_len = 1};
    channel_write(ch, &in, 0, &m);
    char id[37];
    memcpy(id, m->id, sizeof id);
    channel_batch b;
    CHECK(channel_claim(ch, "w1", 0, 1, &b) == CHANNEL_OK);
    CHECK(b.count == 1);
    channel_batch_free(&b);

    const char *ids[] = {id, "unknown-id", NULL};
    CHECK(channel_nack(ch, "w2", ids, 3, 2) == 0);
    CHECK(channel_claim(ch, "w2", 0, 2, &b) == CHANNEL_OK);
    CHECK(b.count == 0); /* still w1's */
    channel_batch_free(&b);

    CHECK(channel_nack(ch, "w1", ids, 3, 2) == 1);
    CHECK(ch->nacked == 1);
    CHECK(channel_nack(ch, "w1", ids, 1, 2) == 0); /* no longer held */
    CHECK(channel_claim(ch, "w2", 0, 2, &b) == CHANNEL_OK);
    CHECK(b.count == 1 && b.items[0]->seq == 1 && strcmp(b.items[0]->claimed_by, "w2") == 0);
    channel_batch_free(&b);
    CHECK(channel_pending(ch) == 1);
    channel_free(ch);
}

static void test_ack_by_the_holder_finishes_work_and_frees_the_head(void)
{
    channel *ch = make(CHANNEL_WORK_QUEUE, 0, 0);
    for (int i = 0; i < 3; i++)
        put(ch, "0", i);
    channel_batch b;
    CHECK(channel_claim(ch, "w1", 0, 10, &b) == CHANNEL_OK);
    CHECK(b.count == 3);
    char ids[3][37];
    for (size_t i = 0; i < b.count; i++)
        memcpy(ids[i], b.items[i]->id, sizeof ids[i]);
    channel_batch_free(&b);

    /* The middle one is done first: it stays until it reaches the head. */
    const char *mid[] = {ids[1]};
    CHECK(channel_ack(ch, "w2", mid, 1, 11) == 0); /* not the holder */
    CHECK(channel_ack(ch, "w1", mid, 1, 11) == 1);
    CHECK(channel_ack(ch, "w1", mid, 1, 11) == 0); /* already done */
    CHECK(ch->count == 3 && channel_pending(ch) == 2);
    CHECK(channel_find(ch, ids[1]) != NULL);

    const char *head[] = {ids[0]};
    CHECK(channel_ack(ch, "w1", head, 1, 12) == 1);
    CHECK(ch->count == 1 && ch->first_seq == 3); /* 1 and 2 are forgotten together */
    CHECK(channel_find(ch, ids[0]) == NULL && channel_find(ch, ids[1]) == NULL);
    CHECK(ch->acked == 2 && ch->dropped == 0);
    channel_free(ch);
}

static void test_full_work_queue_refuses_until_work_is_acked(void)
{
    channel *ch = make(CHANNEL_WORK_QUEUE, 2, 0);
    CHECK(put(ch, "0", 1) == 1);
    CHECK(put(ch, "0", 2) == 2);
    message_in in = {.data_json = "3", .data_len = 1};
    const message *m = NULL;
    CHECK(channel_write(ch, &in, 3, &m) == CHANNEL_EFULL);
    CHECK(m == NULL && ch->dropped == 0 && ch->count == 2);

    channel_batch b;
    CHECK(channel_claim(ch, "w", 0, 4, &b) == CHANNEL_OK);
    CHECK(b.count == 2);
    char second[37];
    memcpy(second, b.items[1]->id, sizeof second);
    const char *ids[] = {b.items[0]->id};
    CHECK(channel_ack(ch, "w", ids, 1, 5) == 1);
    channel_batch_free(&b);

    CHECK(channel_write(ch, &in, 6, &m) == CHANNEL_OK);
    CHECK(m && m->seq == 3);
    CHECK(channel_write(ch, &in, 7, &m) == CHANNEL_EFULL);

    /* Work that is done but not yet forgotten makes room at write time too. */
    const char *ids2[] = {second};
    CHECK(channel_ack(ch, "w", ids2, 1, 8) == 1);
    CHECK(channel_write(ch, &in, 9, &m) == CHANNEL_OK);
    CHECK(m && m->seq == 4);
    channel_free(ch);
}

static void test_claims_skip_done_messages_in_the_middle(void)
{
    channel_config cfg = {.id = "jobs", .kind = CHANNEL_WORK_QUEUE, .claim_timeout = 5};
    channel *ch = channel_new(&cfg);
    for (int i = 0; i < 3; i++)
        put(ch, "0", i);
    channel_batch b;
    CHECK(channel_claim(ch, "w", 0, 10, &b) == CHANNEL_OK);
    const char *mid[] = {b.items[1]->id};
    CHECK(channel_ack(ch, "w", mid, 1, 10) == 1);
    channel_batch_free(&b);
    /* After every claim lapsed, only the unfinished work comes back. */
    CHECK(channel_claim(ch, "w2", 0, 20, &b) == CHANNEL_OK);
    CHECK(b.count == 2 && b.items[0]->seq == 1 && b.items[1]->seq == 3);
    channel_batch_free(&b);
    channel_free(ch);
}

static void test_passthrough_takes_each_message_once_while_shared_reads_see_all(void)
{
    channel *ch = make(CHANNEL_PASSTHROUGH, 3, 0);
    for (int i = 0; i < 3; i++)
        put(ch, "0", i);
    channel_batch a, b;
    CHECK(channel_claim(ch, "t1", 2, 10, &a) == CHANNEL_OK);
    CHECK(a.count == 2 && a.items[0]->seq == 1 && a.items[1]->seq == 2);
    CHECK(a.count == 2 && a.items[0]->done);
    channel_batch_free(&a);
    CHECK(channel_claim(ch, "t2", 0, 10, &b) == CHANNEL_OK);
    CHECK(b.count == 1 && b.items[0]->seq == 3);
    channel_batch_free(&b);
    CHECK(channel_claim(ch, "t1", 0, 10, &a) == CHANNEL_OK);
    CHECK(a.count == 0);
    channel_batch_free(&a);

    CHECK(channel_read(ch, "watcher", 0, 0, 0, 10, &b) == CHANNEL_OK);
    CHECK(b.count == 3); /* taken messages are still in the log */
    channel_batch_free(&b);

    /* Full: the oldest goes, like broadcast, without any ack. */
    CHECK(put(ch, "0", 11) == 4);
    CHECK(ch->dropped == 1 && ch->count == 3 && ch->first_seq == 2);
    CHECK(channel_claim(ch, "t1", 0, 12, &a) == CHANNEL_OK);
    CHECK(a.count == 1 && a.items[0]->seq == 4);
    channel_batch_free(&a);
    CHECK(ch->claims == 4);
    channel_free(ch);
}

/* ---- watchers ---- */

typedef struct probe {
    channel_watcher w;
    channel *ch;
    int calls;
    uint64_t last_seq;
    int remove_self_after;
} probe;

static void on_write(channel_watcher *w, const message *m)
{
    probe *p = (probe *)w; /* w is the first member */
    p->calls++;
    p->last_seq = m->seq;
    if (p->remove_self_after && p->calls >= p->remove_self_after)
        channel_remove_watcher(p->ch, w);
}

static void test_watchers_are_called_and_can_leave_from_their_callback(void)
{
    channel *ch = make(CHANNEL_BROADCAST, 0, 0);
    probe a = {.w = {.on_write = on_write}, .ch = ch, .remove_self_after = 1};
    probe b = {.w = {.on_write = on_write}, .ch = ch};
    probe c = {.w = {.on_write = on_write}, .ch = ch, .remove_self_after = 2};
    channel_add_watcher(ch, &a.w);
    channel_add_watcher(ch, &b.w);
    channel_add_watcher(ch, &c.w);

    put(ch, "0", 1);
    CHECK(a.calls == 1 && b.calls == 1 && c.calls == 1);
    CHECK(b.last_seq == 1);
    put(ch, "0", 2);
    CHECK(a.calls == 1 && b.calls == 2 && c.calls == 2);
    put(ch, "0", 3);
    CHECK(a.calls == 1 && b.calls == 3 && c.calls == 2);
    CHECK(ch->watchers == &b.w && b.w.next == NULL && b.w.prev == NULL);

    channel_remove_watcher(ch, &b.w);
    channel_remove_watcher(ch, &b.w); /* a second removal is harmless */
    CHECK(ch->watchers == NULL);
    put(ch, "0", 4);
    CHECK(b.calls == 3);

    /* A refused write calls nobody. */
    channel_add_watcher(ch, &b.w);
    channel_stop(ch);
    put(ch, "0", 5);
    CHECK(b.calls == 3);
    channel_remove_watcher(ch, &b.w);
    channel_free(ch);
}

static void test_readers_are_capped_and_the_stalest_goes(void)
{
    channel *ch = make(CHANNEL_BROADCAST, 10, 0);
    put(ch, "1", 1);
    channel_batch b;
    CHECK(channel_read(ch, "system", 10, 0, 0, 2, &b) == CHANNEL_OK && b.count == 1);
    channel_batch_free(&b);
    char name[32];
    for (int i = 0; i < CHANNEL_MAX_READERS - 1; i++) {
        snprintf(name, sizeof name, "token-%d", i);
        CHECK(channel_read(ch, name, 10, 0, 0, 2, &b) == CHANNEL_OK);
        channel_batch_free(&b);
    }
    CHECK(cursors(ch) == CHANNEL_MAX_READERS);
    /* the system reads again: it is no longer the stalest */
    CHECK(channel_read(ch, "system", 10, 0, 0, 2, &b) == CHANNEL_OK && b.count == 0);
    channel_batch_free(&b);
    CHECK(channel_read(ch, "newcomer", 10, 0, 0, 2, &b) == CHANNEL_OK && b.count == 1);
    channel_batch_free(&b);
    CHECK(cursors(ch) == CHANNEL_MAX_READERS);
    CHECK(cursor(ch, "token-0") == NULL); /* the one that read least recently */
    CHECK(cursor(ch, "system") != NULL);
    channel_free(ch);
}

/* A large capacity costs memory only as the channel fills: the ring starts small and grows,
 * keeping order across growth and wrap-around; a capacity past the bound is refused. */
static void test_ring_grows_as_it_fills_up_to_capacity(void)
{
    channel *big = make(CHANNEL_BROADCAST, CHANNEL_MAX_CAPACITY, 0);
    CHECK(big && store_memory_slots(big->store) < 1000);
    channel_free(big);
    CHECK(make(CHANNEL_BROADCAST, CHANNEL_MAX_CAPACITY + 1, 0) == NULL);

    channel *ch = make(CHANNEL_BROADCAST, 300, 0);
    size_t start = store_memory_slots(ch->store);
    CHECK(start < 300);
    for (int i = 1; i <= 1000; i++) {
        char data[16];
        snprintf(data, sizeof data, "%d", i);
        CHECK(put(ch, data, i) == (uint64_t)i);
    }
    CHECK(store_memory_slots(ch->store) == 300 && ch->count == 300 && ch->dropped == 700);
    channel_batch b;
    CHECK(channel_read(ch, "r", 1000, 0, 0, 2000, &b) == CHANNEL_OK);
    CHECK(b.count == 300);
    for (size_t i = 0; i < b.count; i++) {
        char want[16];
        snprintf(want, sizeof want, "%zu", 701 + i);
        CHECK(b.items[i]->seq == 701 + i && strcmp(b.items[i]->data_json, want) == 0);
    }
    channel_batch_free(&b);
    channel_free(ch);
}

/* ---- the store underneath ---- */

/* A channel over a store that already holds messages, claims and cursors (as a durable store
 * does after a restart) goes on from there. */
static void test_a_channel_starts_from_what_its_store_holds(void)
{
    channel_config cfg = {.id = "jobs", .kind = CHANNEL_WORK_QUEUE, .capacity = 8};
    store_config sc;
    CHECK(channel_store_config(&cfg, &sc) == 0);
    CHECK(sc.capacity == 8 && sc.index_ids && sc.max_cursors == CHANNEL_MAX_READERS);
    store *st = store_memory_new(&sc);
    const char *ids[] = {"done-1", "open-2", "open-3"};
    for (int i = 0; i < 3; i++) {
        message_in in = {.data_json = "0", .id = ids[i]};
        message *m = message_new(&in, 5);
        CHECK(st->ops->append(st, m, 0, 0) == STORE_OK);
    }
    const message *got[2];
    st->ops->read(st, 1, got, 2);
    st->ops->done(st, got, 1);                /* acknowledged before the "restart" */
    st->ops->claim(st, got + 1, 1, "w1", 60); /* claimed until 60 */

    channel *ch = channel_new_with_store(&cfg, st);
    CHECK(ch && ch->first_seq == 1 && ch->next_seq == 4 && ch->count == 3);
    CHECK(channel_pending(ch) == 2);
    channel_batch b;
    CHECK(channel_claim(ch, "w2", 0, 50, &b) == CHANNEL_OK); /* finished work is forgotten */
    CHECK(b.count == 1 && strcmp(b.items[0]->id, "open-3") == 0);
    channel_batch_free(&b);
    CHECK(ch->first_seq == 2 && ch->count == 2);
    CHECK(channel_claim(ch, "w2", 0, 60, &b) == CHANNEL_OK); /* w1's claim lapsed */
    CHECK(b.count == 1 && strcmp(b.items[0]->id, "open-2") == 0);
    channel_batch_free(&b);
    CHECK(put(ch, "4", 101) == 4); /* seqs go on */
    channel_free(ch);

    /* A refused configuration frees the store it was given. */
    channel_config bad = {.id = ""};
    CHECK(channel_new_with_store(&bad, store_memory_new(&sc)) == NULL);
    CHECK(channel_new_with_store(&cfg, NULL) == NULL);
}

/* A store that fails on demand: the memory store with some of its functions replaced. */
static store_ops failing_ops;
static const store_ops *memory_ops;
static int store_fails;

static int failing_append(store *st, message *m, int make_room, size_t max_bytes)
{
    return store_fails ? STORE_EIO : memory_ops->append(st, m, make_room, max_bytes);
}

static int failing_claim(store *st, const message *const *ms, size_t n, const char *holder,
                         double deadline)
{
    return store_fails ? STORE_EIO : memory_ops->claim(st, ms, n, holder, deadline);
}

static int failing_cursor_set(store *st, const char *reader, store_cursor *cur, uint64_t next,
                              uint64_t missed)
{
    return store_fails ? STORE_EIO : memory_ops->cursor_set(st, reader, cur, next, missed);
}

static channel *over_failing_store(channel_kind kind)
{
    channel_config cfg = {.id = "failing", .kind = kind};
    store_config sc;
    channel_store_config(&cfg, &sc);
    store *st = store_memory_new(&sc);
    memory_ops = st->ops;
    failing_ops = *st->ops;
    failing_ops.append = failing_append;
    failing_ops.claim = failing_claim;
    failing_ops.cursor_set = failing_cursor_set;
    st->ops = &failing_ops;
    store_fails = 0;
    return channel_new_with_store(&cfg, st);
}

static void test_a_store_failure_fails_the_operation_and_changes_nothing(void)
{
    channel *ch = over_failing_store(CHANNEL_BROADCAST);
    probe p = {.w = {.on_write = on_write}, .ch = ch};
    channel_add_watcher(ch, &p.w);
    put(ch, "1", 1);
    store_fails = 1;
    message_in in = {.data_json = "2"};
    const message *m = NULL;
    CHECK(channel_write(ch, &in, 2, &m) == CHANNEL_EIO); /* the message built is freed */
    CHECK(m == NULL && ch->writes == 1 && channel_last_seq(ch) == 1 && p.calls == 1);
    channel_batch b;
    CHECK(channel_read(ch, "r", 0, 0, 0, 3, &b) == CHANNEL_EIO);
    CHECK(b.count == 0 && b.items == NULL && ch->reads == 0 && cursor(ch, "r") == NULL);
    store_fails = 0;
    CHECK(channel_read(ch, "r", 0, 0, 0, 3, &b) == CHANNEL_OK && b.count == 1);
    channel_batch_free(&b);
    channel_remove_watcher(ch, &p.w);
    channel_free(ch);

    ch = over_failing_store(CHANNEL_WORK_QUEUE);
    put(ch, "1", 1);
    store_fails = 1;
    CHECK(channel_claim(ch, "w", 0, 2, &b) == CHANNEL_EIO);
    CHECK(b.count == 0 && b.items == NULL && ch->claims == 0 && ch->reads == 0);
    store_fails = 0;
    CHECK(channel_claim(ch, "w", 0, 2, &b) == CHANNEL_OK && b.count == 1);
    channel_batch_free(&b);
    channel_free(ch);
}


/* ---- limits: message size, byte budgets, the owner's account, bounded reads ---- */

static channel *make_limited(channel_kind kind, size_t capacity, size_t max_bytes, size_t max_message)
{
    channel_config cfg = {.id = "limited", .kind = kind, .capacity = capacity, .max_bytes = max_bytes,
                          .max_message = max_message};
    return channel_new(&cfg);
}

/* A JSON string of n bytes, quotes included (n >= 2). */
static const char *json_of(size_t n)
{
    static char text[8192];
    if (n > sizeof text - 1)
        n = sizeof text - 1;
    memset(text, 'x', n);
    text[0] = text[n - 1] = '"';
    text[n] = '\0';
    return text;
}

static size_t size_of(const char *data) { return message_in_size(&(message_in){.data_json = data}); }

static void test_a_message_over_the_size_limit_is_refused(void)
{
    channel *ch = make_limited(CHANNEL_BROADCAST, 10, 0, 100);
    CHECK(put(ch, json_of(100), 1) == 1); /* exactly at the limit: the data's JSON is what counts */
    message_in big = {.data_json = json_of(101)};
    CHECK(channel_write(ch, &big, 1, NULL) == CHANNEL_ETOOBIG);
    size_t size = 0, limit = 0;
    CHECK(channel_size_problem(ch, &big, &size, &limit) == 1 && size == 101 && limit == 100);
    /* metadata and routing strings count, the sender does not */
    message_in meta = {.data_json = json_of(90), .metadata_json = "{\"k\":\"0123456789\"}"};
    CHECK(channel_write(ch, &meta, 1, NULL) == CHANNEL_ETOOBIG);
    message_in sender = {.data_json = json_of(100), .sender_id = "a-long-sender-name"};
    CHECK(channel_write(ch, &sender, 1, NULL) == CHANNEL_OK);
    CHECK(ch->refused_large == 2 && ch->writes == 2 && ch->count == 2);
    CHECK(strcmp(channel_strerror(CHANNEL_ETOOBIG), "message is too large") == 0);

    /* a channel's byte budget bounds a message too: its whole size */
    channel *small = make_limited(CHANNEL_BROADCAST, 10, size_of(json_of(50)), 0);
    CHECK(put(small, json_of(50), 1) == 1);
    message_in over = {.data_json = json_of(51)};
    CHECK(channel_write(small, &over, 1, NULL) == CHANNEL_ETOOBIG);
    CHECK(channel_size_problem(small, &over, &size, &limit) == 1 && limit == small->max_bytes);
    CHECK(small->count == 1 && small->refused_large == 1);
    channel_free(small);
    channel_free(ch);
}

static void test_a_broadcast_over_its_byte_budget_drops_its_oldest_counted_as_missed(void)
{
    size_t one = size_of(json_of(1000));
    channel *ch = make_limited(CHANNEL_BROADCAST, 1000, 4 * one, 0);
    channel_batch b;
    for (int i = 0; i < 4; i++)
        put(ch, json_of(1000), 1);
    CHECK(channel_read(ch, "slow", 1, 0, 0, 1, &b) == CHANNEL_OK && b.count == 1 && b.items[0]->seq == 1);
    channel_batch_free(&b);
    CHECK(ch->count == 4 && ch->bytes == 4 * one && ch->dropped == 0);
    for (int i = 0; i < 3; i++)
        put(ch, json_of(1000), 1);
    CHECK(ch->count == 4 && ch->bytes == 4 * one && ch->first_seq == 4);
    CHECK(ch->dropped == 3 && ch->dropped_bytes == 3);
    /* a message as large as two makes two go at once */
    put(ch, json_of(1000 + one), 1);
    CHECK(ch->count == 3 && ch->first_seq == 6 && ch->dropped == 5 && ch->dropped_bytes == 5);
    CHECK(ch->bytes <= 4 * one);
    CHECK(channel_read(ch, "slow", 100, 0, 0, 1, &b) == CHANNEL_OK);
    CHECK(b.count == 3 && b.missed == 4 && b.items[0]->seq == 6); /* seqs 2..5 were dropped unread */
    channel_batch_free(&b);
    channel_free(ch);
}

static void test_a_work_queue_over_its_byte_budget_refuses_until_work_is_acked(void)
{
    size_t one = size_of(json_of(500));
    channel *ch = make_limited(CHANNEL_WORK_QUEUE, 1000, 3 * one, 0);
    for (int i = 0; i < 3; i++)
        CHECK(put(ch, json_of(500), 1) != 0);
    message_in in = {.data_json = json_of(500)};
    CHECK(channel_write(ch, &in, 1, NULL) == CHANNEL_EFULL);
    CHECK(ch->count == 3 && ch->refused_full == 1 && ch->dropped == 0);
    channel_batch b;
    CHECK(channel_claim(ch, "w", 1, 1, &b) == CHANNEL_OK && b.count == 1);
    const char *id = b.items[0]->id;
    CHECK(channel_ack(ch, "w", &id, 1, 1) == 1);
    channel_batch_free(&b);
    CHECK(ch->count == 2 && ch->bytes == 2 * one);
    CHECK(channel_write(ch, &in, 1, NULL) == CHANNEL_OK);
    CHECK(channel_write(ch, &in, 1, NULL) == CHANNEL_EFULL);
    channel_free(ch);
}

static void test_the_log_counts_against_its_owners_account(void)
{
    size_t one = size_of(json_of(1000));
    size_t used = 100, limit = 100 + 3 * one; /* the owner's heap is 100 bytes: room for three */
    channel *ch = make_limited(CHANNEL_BROADCAST, 1000, 0, 0);
    put(ch, json_of(1000), 1);
    channel_set_account(ch, &used, &limit); /* what it holds is charged at once */
    CHECK(used == 100 + one);
    put(ch, json_of(1000), 1);
    put(ch, json_of(1000), 1);
    CHECK(used == 100 + 3 * one && ch->count == 3);
    put(ch, json_of(1000), 1); /* no room left: the oldest goes, the account stays */
    CHECK(used == 100 + 3 * one && ch->count == 3 && ch->dropped_bytes == 1);
    used += one; /* the owner's heap grew: the log's share shrinks at the next write */
    put(ch, json_of(1000), 1);
    CHECK(ch->count == 2 && used == 100 + one + 2 * one && used <= limit);

    /* a work queue refuses instead; so does any kind when the owner has no room at all */
    channel *wq = make_limited(CHANNEL_WORK_QUEUE, 1000, 0, 0);
    channel_set_account(wq, &used, &limit);
    message_in in = {.data_json = json_of(1000)};
    CHECK(channel_write(wq, &in, 1, NULL) == CHANNEL_EFULL && wq->refused_full == 1);
    used = limit + 1;
    channel *empty = make_limited(CHANNEL_BROADCAST, 1000, 0, 0);
    channel_set_account(empty, &used, &limit);
    CHECK(channel_write(empty, &in, 1, NULL) == CHANNEL_EFULL && empty->count == 0);
    used = 100 + 3 * one;

    /* detaching takes the log's share back; an unlimited account only counts */
    channel_set_account(ch, NULL, NULL);
    CHECK(used == 100 + one);
    size_t none = 0;
    channel_set_account(ch, &used, &none);
    for (int i = 0; i < 10; i++)
        put(ch, json_of(1000), 1);
    CHECK(ch->count == 12 && used == 100 + one + 12 * one);
    channel_set_account(ch, NULL, NULL);
    channel_set_account(wq, NULL, NULL);
    channel_set_account(empty, NULL, NULL);
    CHECK(used == 100 + one);
    channel_free(empty);
    channel_free(wq);
    channel_free(ch);
}

static size_t data_cost(const message *m, void *ud)
{
    (void)ud;
    return m->data_len;
}

static void test_a_bounded_read_stops_at_its_bound_and_the_next_read_goes_on(void)
{
    channel *ch = make_limited(CHANNEL_BROADCAST, 1000, 0, 0);
    for (int i = 0; i < 10; i++)
        put(ch, json_of(100), 1);
    channel_read_bound bound = {.max = 350, .cost = data_cost};
    channel_batch b;
    uint64_t next = 1;
    int reads = 0;
    for (;;) {
        CHECK(channel_read_bounded(ch, "r", 100, 0, 0, 1, &bound, &b) == CHANNEL_OK);
        if (b.count == 0)
            break;
        reads++;
        CHECK(b.count <= 3);
        for (size_t i = 0; i < b.count; i++)
            CHECK(b.items[i]->seq == next + i); /* nothing skipped, nothing twice */
        next += b.count;
        CHECK(b.more == (next <= 10));
        channel_batch_free(&b);
    }
    CHECK(next == 11 && reads == 4);
    /* with after: from the last seq returned */
    CHECK(channel_read_bounded(ch, "r2", 100, 1, 3, 1, &bound, &b) == CHANNEL_OK);
    CHECK(b.count == 3 && b.items[0]->seq == 4 && b.more);
    channel_batch_free(&b);
    /* the first message always comes, even past the bound */
    channel_read_bound tiny = {.max = 10, .cost = data_cost};
    CHECK(channel_read_bounded(ch, "r3", 100, 0, 0, 1, &tiny, &b) == CHANNEL_OK);
    CHECK(b.count == 1 && b.more && b.items[0]->seq == 1);
    channel_batch_free(&b);
    CHECK(channel_read_bounded(ch, "r3", 100, 0, 0, 1, &tiny, &b) == CHANNEL_OK);
    CHECK(b.count == 1 && b.items[0]->seq == 2);
    channel_batch_free(&b);
    channel_free(ch);

    /* a mailbox: the bound counts only the reader's messages, the cursor stops before the rest */
    ch = make_limited(CHANNEL_MAILBOX, 1000, 0, 0);
    for (int i = 0; i < 6; i++) {
        message_in in = {.data_json = json_of(100), .recipient_id = i % 2 ? "bob" : "alice"};
        channel_write(ch, &in, 1, NULL);
    }
    channel_read_bound two = {.max = 200, .cost = data_cost};
    CHECK(channel_read_bounded(ch, "alice", 100, 0, 0, 1, &two, &b) == CHANNEL_OK);
    CHECK(b.count == 2 && b.more && b.items[0]->seq == 1 && b.items[1]->seq == 3);
    channel_batch_free(&b);
    CHECK(channel_read_bounded(ch, "alice", 100, 0, 0, 1, &two, &b) == CHANNEL_OK);
    CHECK(b.count == 1 && !b.more && b.items[0]->seq == 5);
    channel_batch_free(&b);
    channel_free(ch);

    /* claims: only what the batch holds is claimed */
    ch = make_limited(CHANNEL_WORK_QUEUE, 1000, 0, 0);
    for (int i = 0; i < 5; i++)
        put(ch, json_of(100), 1);
    CHECK(channel_claim_bounded(ch, "w", 100, 1, &two, &b) == CHANNEL_OK);
    CHECK(b.count == 2 && b.more);
    channel_batch_free(&b);
    CHECK(channel_claim_bounded(ch, "w2", 100, 1, NULL, &b) == CHANNEL_OK);
    CHECK(b.count == 3 && !b.more && b.items[0]->seq == 3);
    channel_batch_free(&b);
    channel_free(ch);
}

int main(void)
{
    RUN(test_readers_are_capped_and_the_stalest_goes);
    RUN(test_kind_names_and_errors);
    RUN(test_new_applies_defaults);
    RUN(test_write_numbers_messages_with_unique_uuids);
    RUN(test_write_keeps_given_fields_and_defaults_metadata);
    RUN(test_find_by_id_follows_the_log);
    RUN(test_ring_wraps_many_times);
    RUN(test_ring_grows_as_it_fills_up_to_capacity);
    RUN(test_stopped_channel_refuses_writes_but_reads_go_on);
    RUN(test_read_honours_limit_and_moves_the_cursor);
    RUN(test_readers_have_independent_cursors);
    RUN(test_read_after_a_seq);
    RUN(test_capacity_drops_count_as_missed_for_a_slow_reader);
    RUN(test_after_before_the_oldest_counts_the_gap_as_missed);
    RUN(test_retention_drops_old_messages);
    RUN(test_mailbox_readers_see_their_own_and_unaddressed_messages);
    RUN(test_each_kind_refuses_the_reads_it_does_not_offer);
    RUN(test_claims_give_distinct_messages_to_two_claimers);
    RUN(test_an_expired_claim_is_offered_again);
    RUN(test_ack_of_a_lapsed_claim_nobody_took_is_accepted);
    RUN(test_nack_by_the_holder_releases_at_once_and_others_are_ignored);
    RUN(test_ack_by_the_holder_finishes_work_and_frees_the_head);
    RUN(test_full_work_queue_refuses_until_work_is_acked);
    RUN(test_claims_skip_done_messages_in_the_middle);
    RUN(test_passthrough_takes_each_message_once_while_shared_reads_see_all);
    RUN(test_watchers_are_called_and_can_leave_from_their_callback);
    RUN(test_a_channel_starts_from_what_its_store_holds);
    RUN(test_a_store_failure_fails_the_operation_and_changes_nothing);
    RUN(test_a_message_over_the_size_limit_is_refused);
    RUN(test_a_broadcast_over_its_byte_budget_drops_its_oldest_counted_as_missed);
    RUN(test_a_work_queue_over_its_byte_budget_refuses_until_work_is_acked);
    RUN(test_the_log_counts_against_its_owners_account);
    RUN(test_a_bounded_read_stops_at_its_bound_and_the_next_read_goes_on);
    return check_report();
}
