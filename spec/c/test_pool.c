/* test_pool.c - unit tests for host/core/pool.c against pool.h: blocks are aligned, distinct
 * and writable over their whole size; a released block is the next one its class hands out
 * (and serves every size of the class); classes do not mix; chunks are taken as needed and
 * what was left of a full chunk still serves; the counters follow; and a long seeded run of
 * random allocations and releases keeps every live block's contents intact. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/pool.h"

static void test_blocks_are_aligned_distinct_and_writable(void)
{
    pool *p = pool_new();
    CHECK(p != NULL);
    char *a = pool_alloc(p, 1), *b = pool_alloc(p, 1), *c = pool_alloc(p, POOL_MAX_BLOCK);
    CHECK(a && b && c);
    CHECK((uintptr_t)a % POOL_GRAIN == 0 && (uintptr_t)b % POOL_GRAIN == 0 && (uintptr_t)c % POOL_GRAIN == 0);
    CHECK(a != b && b != c && a != c);
    memset(a, 1, POOL_GRAIN);
    memset(b, 2, POOL_GRAIN);
    memset(c, 3, POOL_MAX_BLOCK);
    CHECK(a[POOL_GRAIN - 1] == 1 && b[0] == 2 && c[POOL_MAX_BLOCK - 1] == 3);
    CHECK(pool_in_use(p) == 2 * POOL_GRAIN + POOL_MAX_BLOCK);
    CHECK(pool_footprint(p) == POOL_CHUNK);
    pool_free(p);
    pool_free(NULL);
}

static void test_a_released_block_is_reused_by_its_class_only(void)
{
    pool *p = pool_new();
    void *a = pool_alloc(p, 40); /* class of 33..48 */
    pool_release(p, a, 40);
    CHECK(pool_in_use(p) == 0);
    void *other = pool_alloc(p, 64); /* another class: not a */
    CHECK(other != a);
    void *again = pool_alloc(p, 33); /* the same class: a, whatever the exact size */
    CHECK(again == a);
    CHECK(pool_same_class(33, 48) && !pool_same_class(48, 49) && pool_same_class(1, POOL_GRAIN));
    pool_free(p);
}

static void test_chunks_are_added_and_their_rest_still_serves(void)
{
    pool *p = pool_new();
    size_t per_chunk = POOL_CHUNK / POOL_MAX_BLOCK;
    void **blocks = malloc(3 * per_chunk * sizeof *blocks);
    for (size_t i = 0; i < 3 * per_chunk; i++) {
        blocks[i] = pool_alloc(p, POOL_MAX_BLOCK);
        CHECK(blocks[i] != NULL);
    }
    CHECK(pool_footprint(p) >= 3 * (size_t)POOL_CHUNK);
    CHECK(pool_footprint(p) <= 4 * (size_t)POOL_CHUNK);
    /* the tail a full chunk could not fit a 512-byte block into is on a free list: small
     * blocks come from it without a new chunk */
    size_t before = pool_footprint(p);
    void *small = pool_alloc(p, POOL_GRAIN);
    CHECK(small != NULL);
    CHECK(pool_footprint(p) == before);
    free(blocks);
    pool_free(p);
}

/* Random allocations and releases; every live block holds a pattern of its own, checked
 * before it is released and at the end. */
static void test_random_use_keeps_contents(void)
{
    enum { SLOTS = 2000, ROUNDS = 200000 };
    pool *p = pool_new();
    unsigned char *live[SLOTS] = {0};
    size_t size[SLOTS] = {0};
    uint64_t rng = 42;
    int bad = 0;
    for (int r = 0; r < ROUNDS; r++) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t i = (rng >> 33) % SLOTS;
        if (live[i]) {
            for (size_t k = 0; k < size[i]; k++)
                bad += live[i][k] != (unsigned char)(i + k);
            pool_release(p, live[i], size[i]);
            live[i] = NULL;
        } else {
            size[i] = 1 + (rng >> 13) % POOL_MAX_BLOCK;
            live[i] = pool_alloc(p, size[i]);
            if (!live[i]) {
                bad++;
                continue;
            }
            for (size_t k = 0; k < size[i]; k++)
                live[i][k] = (unsigned char)(i + k);
        }
    }
    size_t used = 0;
    for (size_t i = 0; i < SLOTS; i++)
        if (live[i]) {
            for (size_t k = 0; k < size[i]; k++)
                bad += live[i][k] != (unsigned char)(i + k);
            used += (size[i] + POOL_GRAIN - 1) / POOL_GRAIN * POOL_GRAIN;
        }
    CHECK(bad == 0);
    CHECK(pool_in_use(p) == used);
    CHECK(pool_footprint(p) < 4 * (size_t)SLOTS * POOL_MAX_BLOCK); /* freed blocks were reused */
    pool_free(p);
}

int main(void)
{
    RUN(test_blocks_are_aligned_distinct_and_writable);
    RUN(test_a_released_block_is_reused_by_its_class_only);
    RUN(test_chunks_are_added_and_their_rest_still_serves);
    RUN(test_random_use_keeps_contents);
    return check_report();
}
