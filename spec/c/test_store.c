/* test_store.c - unit tests for host/model/store_memory.c: the memory store runs the store
 * contract (store_contract.h, the cases every store must pass), then what is its own: the ring
 * grows as it fills, settings it refuses. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "store_contract.h"

static store *make_memory(const store_config *cfg, void *ctx)
{
    (void)ctx;
    return store_memory_new(cfg);
}

static const store_factory memory = {.name = "memory", .make = make_memory};

/* The memory store keeps nothing past free; a "reopen" that hands back the same store runs the
 * restart case anyway, to check the case itself before a durable store relies on it. */
static store *same_store(store *st, const store_config *cfg, void *ctx)
{
    (void)cfg;
    (void)ctx;
    return st;
}

static const store_factory memory_same = {
    .name = "memory, reopen = the same store", .make = make_memory, .reopen = same_store};

/* ---- the memory store's own ---- */

static void test_settings_it_refuses(void)
{
    store_config none = {.capacity = 0, .max_cursors = 1};
    CHECK(store_memory_new(&none) == NULL);
    store_config no_cursors = {.capacity = 1, .max_cursors = 0};
    CHECK(store_memory_new(&no_cursors) == NULL);
    CHECK(store_memory_new(NULL) == NULL);
    store_config one = {.capacity = 1, .max_cursors = 1};
    store *st = store_memory_new(&one);
    CHECK(st && strcmp(st->ops->name, "memory") == 0);
    st->ops->free(st);
}

/* A large capacity costs memory only as the store fills. */
static void test_the_ring_grows_as_it_fills_up_to_capacity(void)
{
    store_config cfg = {.capacity = 1000000, .max_cursors = 1};
    store *big = store_memory_new(&cfg);
    CHECK(big && store_memory_slots(big) < 1000);
    big->ops->free(big);

    cfg.capacity = 300;
    store *st = store_memory_new(&cfg);
    size_t start = store_memory_slots(st);
    CHECK(start > 0 && start < 300);
    for (int i = 0; i < 200; i++)
        contract_add(st, NULL, "0");
    CHECK(store_memory_slots(st) > start && store_memory_slots(st) <= 300);
    for (int i = 0; i < 200; i++)
        contract_add(st, NULL, "0");
    CHECK(store_memory_slots(st) == 300);
    st->ops->free(st);

    cfg.capacity = 10; /* smaller than the first allocation */
    st = store_memory_new(&cfg);
    CHECK(store_memory_slots(st) == 10);
    st->ops->free(st);
}

/* Every change is its own commit, made at once. */
static void test_commits_are_made_at_once(void)
{
    store_config cfg = {.capacity = 4, .max_cursors = 4};
    store *st = store_memory_new(&cfg);
    uint64_t m0 = st->ops->mark(st);
    contract_add(st, "x", "1");
    CHECK(st->ops->mark(st) > m0);
    CHECK(st->ops->committed(st) == st->ops->mark(st));
    CHECK(st->ops->epoch(st) == NULL); /* the host's instance id serves */
    st->ops->free(st);
}

int main(void)
{
    store_contract(&memory);
    contract_factory = &memory_same;
    RUN(contract_a_reopened_store_has_what_it_had);
    RUN(test_settings_it_refuses);
    RUN(test_the_ring_grows_as_it_fills_up_to_capacity);
    RUN(test_commits_are_made_at_once);
    return check_report();
}
