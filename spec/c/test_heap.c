/* test_heap.c - unit tests for host/core/heap.c against the contract in heap.h: pop order by key,
 * equal keys in insertion order, remove from the middle (and of a node not in the heap), update
 * up and down, heap_contains, peek, heap_free leaving nodes alone, and a long seeded run of
 * random operations checked against a plain reference model. Out-of-memory is not tested: it
 * cannot be provoked deterministically without hooking realloc. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/heap.h"

/* An owner struct with the node embedded, recovered container_of-style as the header says. */
typedef struct item {
    int id;
    heap_node node;
} item;

static item *item_of(heap_node *n)
{
    return n ? (item *)((char *)n - offsetof(item, node)) : NULL;
}

static void init_items(item *it, int n)
{
    for (int i = 0; i < n; i++) {
        it[i].id = i;
        it[i].node = (heap_node)HEAP_NODE_INIT;
    }
}

/* Pops everything; writes the ids in pop order to out (up to max) and returns how many. */
static int drain(heap *h, int *out, int max)
{
    int n = 0;
    heap_node *hn;
    while ((hn = heap_pop(h)) != NULL) {
        if (n < max)
            out[n] = item_of(hn)->id;
        n++;
    }
    return n;
}

/* xorshift64: a tiny seeded PRNG, so every run makes the same operations. */
static uint64_t rng_state;
static uint64_t rng_next(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}
static unsigned rng_below(unsigned n) { return (unsigned)(rng_next() % n); }

/* ---- push, pop, peek ---- */

static void test_empty_heap_peeks_and_pops_null(void)
{
    heap h;
    heap_init(&h);
    CHECK(h.count == 0);
    CHECK(heap_peek(&h) == NULL);
    CHECK(heap_pop(&h) == NULL);
    heap_node n = HEAP_NODE_INIT;
    CHECK(!heap_contains(&n));
    heap_free(&h);
}

static void test_pops_come_out_in_key_order(void)
{
    static const double keys[] = {5, 3, 8, 1, 9, 2, 7, 4, 6, 0, -1.5, 2.5};
    enum { N = sizeof keys / sizeof keys[0] };
    static const int want[N] = {10, 9, 3, 5, 11, 1, 7, 0, 8, 6, 2, 4};
    item it[N];
    init_items(it, N);
    heap h;
    heap_init(&h);
    for (int i = 0; i < N; i++) {
        CHECK(heap_push(&h, &it[i].node, keys[i]) == 0);
        CHECK(heap_contains(&it[i].node));
        CHECK(it[i].node.key == keys[i]);
    }
    CHECK(h.count == N);
    int got[N];
    CHECK(drain(&h, got, N) == N);
    CHECK(memcmp(got, want, sizeof want) == 0);
    for (int i = 0; i < N; i++)
        CHECK(!heap_contains(&it[i].node));
    heap_free(&h);
}

static void test_peek_shows_the_minimum_without_taking_it(void)
{
    item it[3];
    init_items(it, 3);
    heap h;
    heap_init(&h);
    heap_push(&h, &it[0].node, 2);
    CHECK(heap_peek(&h) == &it[0].node);
    heap_push(&h, &it[1].node, 1);
    CHECK(heap_peek(&h) == &it[1].node);
    heap_push(&h, &it[2].node, 3);
    CHECK(heap_peek(&h) == &it[1].node);
    CHECK(heap_peek(&h) == &it[1].node); /* again: still there */
    CHECK(h.count == 3 && heap_contains(&it[1].node));
    CHECK(heap_pop(&h) == &it[1].node);
    CHECK(heap_peek(&h) == &it[0].node);
    heap_free(&h);
}

static void test_many_pushes_grow_the_array_and_keep_order(void)
{
    enum { N = 1000 }; /* well past the first capacity of 64 */
    static item it[N];
    static int got[N];
    init_items(it, N);
    heap h;
    heap_init(&h);
    int failed = 0;
    for (int i = 0; i < N; i++) /* keys descending: every push sifts to the top */
        failed += heap_push(&h, &it[i].node, (double)(N - i)) != 0;
    CHECK(failed == 0 && h.count == N);
    CHECK(drain(&h, got, N) == N);
    int wrong = 0;
    for (int i = 0; i < N; i++)
        wrong += got[i] != N - 1 - i;
    CHECK(wrong == 0);
    heap_free(&h);
}

static void test_infinite_keys_sort_at_the_ends(void)
{
    item it[4];
    init_items(it, 4);
    heap h;
    heap_init(&h);
    heap_push(&h, &it[0].node, INFINITY);
    heap_push(&h, &it[1].node, 0);
    heap_push(&h, &it[2].node, -INFINITY);
    heap_push(&h, &it[3].node, 1e300);
    int got[4], want[4] = {2, 1, 3, 0};
    CHECK(drain(&h, got, 4) == 4);
    CHECK(memcmp(got, want, sizeof want) == 0);
    heap_free(&h);
}

/* ---- stability ---- */

static void test_equal_keys_pop_in_insertion_order(void)
{
    enum { N = 300 };
    static item it[N];
    static int got[N];
    init_items(it, N);
    heap h;
    heap_init(&h);
    /* three interleaved keys, pushed in a scrambled pattern */
    for (int i = 0; i < N; i++)
        heap_push(&h, &it[i].node, (double)((i * 7) % 3));
    CHECK(drain(&h, got, N) == N);
    /* key 0 first (ids with i*7%3 == 0, ascending), then key 1, then key 2 */
    int k = 0, wrong = 0;
    for (int key = 0; key < 3; key++)
        for (int i = 0; i < N; i++)
            if ((i * 7) % 3 == key)
                wrong += got[k++] != i;
    CHECK(k == N && wrong == 0);
    heap_free(&h);
}

static void test_equal_keys_stay_in_insertion_order_after_removals(void)
{
    enum { N = 100 };
    item it[N];
    int got[N];
    init_items(it, N);
    heap h;
    heap_init(&h);
    for (int i = 0; i < N; i++)
        heap_push(&h, &it[i].node, 1.0);
    for (int i = 0; i < N; i += 3) /* remove every third, mostly from the middle */
        heap_remove(&h, &it[i].node);
    int n = drain(&h, got, N);
    CHECK(n == N - (N + 2) / 3);
    int k = 0, wrong = 0;
    for (int i = 0; i < N; i++)
        if (i % 3 != 0)
            wrong += k < n && got[k++] != i;
    CHECK(k == n && wrong == 0);
    heap_free(&h);
}

/* ---- remove ---- */

static void test_remove_from_the_middle_keeps_the_rest_in_order(void)
{
    enum { N = 20 };
    item it[N];
    int got[N];
    init_items(it, N);
    heap h;
    heap_init(&h);
    for (int i = 0; i < N; i++) /* key of id i is (i * 7) % 20: a permutation of 0..19 */
        heap_push(&h, &it[i].node, (double)((i * 7) % N));
    int removed[] = {5, 12, 0, 19, 8}; /* keys 15, 4, 0, 13, 16 */
    for (size_t r = 0; r < sizeof removed / sizeof removed[0]; r++) {
        heap_remove(&h, &it[removed[r]].node);
        CHECK(!heap_contains(&it[removed[r]].node));
    }
    CHECK(h.count == N - 5);
    int n = drain(&h, got, N);
    CHECK(n == N - 5);
    /* the survivors come out by ascending key */
    int k = 0, wrong = 0;
    for (int key = 0; key < N; key++) {
        int id = (key * 3) % N; /* 3 is the inverse of 7 mod 20 */
        if (id == 5 || id == 12 || id == 0 || id == 19 || id == 8)
            continue;
        wrong += k < n && got[k++] != id;
    }
    CHECK(k == n && wrong == 0);
    heap_free(&h);
}

static void test_remove_of_the_last_and_only_nodes(void)
{
    item it[2];
    init_items(it, 2);
    heap h;
    heap_init(&h);
    heap_push(&h, &it[0].node, 1);
    heap_remove(&h, &it[0].node);
    CHECK(h.count == 0 && heap_peek(&h) == NULL && !heap_contains(&it[0].node));
    heap_push(&h, &it[0].node, 1);
    heap_push(&h, &it[1].node, 2); /* sits in the last slot */
    heap_remove(&h, &it[1].node);
    CHECK(h.count == 1 && heap_peek(&h) == &it[0].node && !heap_contains(&it[1].node));
    heap_free(&h);
}

static void test_remove_of_a_node_not_in_the_heap_is_a_no_op(void)
{
    item it[4], other;
    init_items(it, 4);
    init_items(&other, 1);
    heap h, h2;
    heap_init(&h);
    heap_init(&h2);
    for (int i = 0; i < 3; i++)
        heap_push(&h, &it[i].node, (double)i);

    /* never pushed */
    heap_remove(&h, &it[3].node);
    CHECK(h.count == 3 && !heap_contains(&it[3].node));
    /* already popped, then removed again: still one pop's worth gone */
    CHECK(heap_pop(&h) == &it[0].node);
    heap_remove(&h, &it[0].node);
    CHECK(h.count == 2 && heap_peek(&h) == &it[1].node);
    /* removed twice */
    heap_remove(&h, &it[2].node);
    heap_remove(&h, &it[2].node);
    CHECK(h.count == 1 && heap_peek(&h) == &it[1].node);
    /* a node in another heap, at an index that is valid in this one: neither heap changes */
    heap_push(&h2, &other.node, 0);
    CHECK(other.node.index == 0 && it[1].node.index == 0);
    heap_remove(&h, &other.node);
    CHECK(h.count == 1 && heap_peek(&h) == &it[1].node && heap_contains(&it[1].node));
    CHECK(h2.count == 1 && heap_peek(&h2) == &other.node && heap_contains(&other.node));
    /* removing from an empty heap */
    heap empty;
    heap_init(&empty);
    heap_remove(&empty, &it[1].node);
    CHECK(heap_contains(&it[1].node) && h.count == 1);
    heap_free(&empty);
    heap_free(&h);
    heap_free(&h2);
}

static void test_contains_follows_push_pop_and_remove(void)
{
    item it[3];
    init_items(it, 3);
    heap h;
    heap_init(&h);
    CHECK(!heap_contains(&it[0].node));
    heap_push(&h, &it[0].node, 1);
    heap_push(&h, &it[1].node, 2);
    heap_push(&h, &it[2].node, 3);
    CHECK(heap_contains(&it[0].node) && heap_contains(&it[1].node) && heap_contains(&it[2].node));
    heap_pop(&h);
    CHECK(!heap_contains(&it[0].node) && it[0].node.index == SIZE_MAX);
    heap_remove(&h, &it[2].node);
    CHECK(!heap_contains(&it[2].node) && heap_contains(&it[1].node));
    /* a popped node can be pushed again, into this heap or another */
    heap_push(&h, &it[0].node, 0);
    CHECK(heap_contains(&it[0].node) && heap_peek(&h) == &it[0].node);
    heap_free(&h);
}

/* ---- update ---- */

static void test_update_moves_a_node_up_and_down(void)
{
    enum { N = 10 };
    item it[N];
    int got[N];
    init_items(it, N);
    heap h;
    heap_init(&h);
    for (int i = 0; i < N; i++)
        heap_push(&h, &it[i].node, (double)(i + 1) * 10); /* 10, 20, ..., 100 */
    heap_update(&h, &it[9].node, 5); /* from the bottom to the top */
    CHECK(heap_peek(&h) == &it[9].node && it[9].node.key == 5);
    heap_update(&h, &it[9].node, 1000); /* from the top to the bottom */
    CHECK(heap_peek(&h) == &it[0].node);
    heap_update(&h, &it[0].node, 55); /* root into the middle */
    heap_update(&h, &it[6].node, 15); /* middle up */
    CHECK(h.count == N);
    /* keys now: id1..5 = 20..60 except id0 = 55, id6 = 15, id7 = 80, id8 = 90, id9 = 1000 */
    int want[N] = {6, 1, 2, 3, 4, 0, 5, 7, 8, 9};
    CHECK(drain(&h, got, N) == N);
    CHECK(memcmp(got, want, sizeof want) == 0);
    heap_free(&h);
}

/* heap.h is silent on where an updated node ranks among nodes with the same key; heap.c gives it
 * a fresh insertion order, as if pushed at the update (a rescheduled timer fires after timers
 * already due then). This pins that, so a change to it is deliberate. */
static void test_update_ranks_the_node_newest_among_equal_keys(void)
{
    item it[3];
    int got[3];
    init_items(it, 3);
    heap h;
    heap_init(&h);
    heap_push(&h, &it[0].node, 1);
    heap_push(&h, &it[1].node, 1);
    heap_push(&h, &it[2].node, 1);
    heap_update(&h, &it[0].node, 1); /* same key: goes behind 1 and 2 */
    int want[3] = {1, 2, 0};
    CHECK(drain(&h, got, 3) == 3);
    CHECK(memcmp(got, want, sizeof want) == 0);
    heap_free(&h);
}

/* ---- free ---- */

static void test_free_leaves_the_nodes_untouched(void)
{
    enum { N = 100 };
    item it[N], before[N];
    init_items(it, N);
    heap h;
    heap_init(&h);
    for (int i = 0; i < N; i++)
        heap_push(&h, &it[i].node, (double)(i % 7));
    for (int i = 0; i < 10; i++)
        heap_pop(&h);
    memcpy(before, it, sizeof it);
    heap_free(&h);
    CHECK(memcmp(before, it, sizeof it) == 0); /* indices included: not reset to SIZE_MAX */
    /* the heap is empty and usable again */
    CHECK(h.count == 0 && heap_peek(&h) == NULL && heap_pop(&h) == NULL);
    item fresh;
    init_items(&fresh, 1);
    CHECK(heap_push(&h, &fresh.node, 3) == 0 && heap_pop(&h) == &fresh.node);
    heap_free(&h);
    heap_free(&h); /* twice is harmless */
}

static void test_free_after_the_owners_are_gone(void)
{
    /* Owners freed while their nodes are still in the heap (the case heap.c's comment names):
     * heap_free must not read them. Under ASan any touch is a use after free. */
    enum { N = 70 };
    item *owners[N];
    heap h;
    heap_init(&h);
    for (int i = 0; i < N; i++) {
        owners[i] = malloc(sizeof *owners[i]);
        init_items(owners[i], 1);
        CHECK(heap_push(&h, &owners[i]->node, (double)i) == 0);
    }
    CHECK(h.count == N);
    for (int i = 0; i < N; i++)
        free(owners[i]);
    heap_free(&h);
    CHECK(h.count == 0 && h.items == NULL);
}

/* ---- random operations against a reference model ---- */

enum { MODEL_NODES = 200 };

typedef struct model {
    int in[MODEL_NODES];
    double key[MODEL_NODES];
    uint64_t order[MODEL_NODES];
    uint64_t clock; /* bumped by every push and update, like insertion order */
    size_t count;
} model;

/* The id the model says is at the top: least (key, order); -1 when empty. */
static int model_min(const model *m)
{
    int best = -1;
    for (int i = 0; i < MODEL_NODES; i++) {
        if (!m->in[i])
            continue;
        if (best < 0 || m->key[i] < m->key[best] ||
            (m->key[i] == m->key[best] && m->order[i] < m->order[best]))
            best = i;
    }
    return best;
}

static void test_random_operations_match_a_reference_model(void)
{
    enum { OPS = 200000 };
    static item it[MODEL_NODES];
    static model m;
    memset(&m, 0, sizeof m);
    init_items(it, MODEL_NODES);
    heap h;
    heap_init(&h);
    rng_state = 0x9e3779b97f4a7c15ULL;
    int mismatches = 0, peeks = 0, pops = 0;

    for (int op = 0; op < OPS; op++) {
        int id = (int)rng_below(MODEL_NODES);
        heap_node *n = &it[id].node;
        /* keys from a small range, so ties (and the tie-break) come up all the time */
        double key = (double)rng_below(32) / 2.0 - 4.0;
        switch (rng_below(8)) {
        case 0:
        case 1:
        case 2: /* push, or update when already in */
            if (!m.in[id]) {
                mismatches += heap_push(&h, n, key) != 0;
                m.in[id] = 1;
                m.count++;
            } else {
                heap_update(&h, n, key);
            }
            m.key[id] = key;
            m.order[id] = m.clock++;
            break;
        case 3:
        case 4: { /* pop */
            int want = model_min(&m);
            heap_node *got = heap_pop(&h);
            pops++;
            if (want < 0) {
                mismatches += got != NULL;
            } else {
                mismatches += got != &it[want].node;
                m.in[want] = 0;
                m.count--;
            }
            break;
        }
        case 5:
        case 6: /* remove, whether in the heap or not */
            heap_remove(&h, n);
            if (m.in[id]) {
                m.in[id] = 0;
                m.count--;
            }
            break;
        default: { /* peek */
            int want = model_min(&m);
            heap_node *got = heap_peek(&h);
            peeks++;
            mismatches += want < 0 ? got != NULL : got != &it[want].node;
            break;
        }
        }
        mismatches += h.count != m.count;
        if (op % 64 == 0) /* membership of every node, now and then */
            for (int i = 0; i < MODEL_NODES; i++)
                mismatches += heap_contains(&it[i].node) != m.in[i];
        if (mismatches) { /* stop at once: the model no longer says which nodes are in */
            fprintf(stderr, "  heap and model disagree after operation %d\n", op);
            break;
        }
    }
    CHECK(mismatches == 0);
    CHECK(pops > 0 && peeks > 0);
    if (mismatches) {
        heap_free(&h);
        return;
    }

    /* finally drain: the rest come out exactly in model order */
    int left = 0;
    for (;;) {
        int want = model_min(&m);
        heap_node *got = heap_pop(&h);
        if (want < 0) {
            CHECK(got == NULL);
            break;
        }
        mismatches += got != &it[want].node;
        m.in[want] = 0;
        left++;
    }
    CHECK(mismatches == 0);
    CHECK(left > 0 && h.count == 0);
    heap_free(&h);
}

int main(void)
{
    RUN(test_empty_heap_peeks_and_pops_null);
    RUN(test_pops_come_out_in_key_order);
    RUN(test_peek_shows_the_minimum_without_taking_it);
    RUN(test_many_pushes_grow_the_array_and_keep_order);
    RUN(test_infinite_keys_sort_at_the_ends);
    RUN(test_equal_keys_pop_in_insertion_order);
    RUN(test_equal_keys_stay_in_insertion_order_after_removals);
    RUN(test_remove_from_the_middle_keeps_the_rest_in_order);
    RUN(test_remove_of_the_last_and_only_nodes);
    RUN(test_remove_of_a_node_not_in_the_heap_is_a_no_op);
    RUN(test_contains_follows_push_pop_and_remove);
    RUN(test_update_moves_a_node_up_and_down);
    RUN(test_update_ranks_the_node_newest_among_equal_keys);
    RUN(test_free_leaves_the_nodes_untouched);
    RUN(test_free_after_the_owners_are_gone);
    RUN(test_random_operations_match_a_reference_model);
    return check_report();
}
