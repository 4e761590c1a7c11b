/* test_hashmap.c - unit tests for host/core/hashmap.c against the contract in hashmap.h: put, get,
 * replace and remove; keys copied and owned by the map, values never freed by it; count; growth
 * over many resizes; awkward keys (empty, long keys differing late, prefixes); iteration that
 * visits each entry once, also while removing the entry just returned; a NULL value vs absent.
 * Out-of-memory is not tested: it cannot be provoked deterministically without hooking malloc. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/hashmap.h"

/* ---- basic operations ---- */

static void test_new_map_is_empty(void)
{
    hashmap *m = hashmap_new();
    CHECK(m != NULL);
    CHECK(hashmap_count(m) == 0);
    CHECK(hashmap_get(m, "anything") == NULL);
    CHECK(hashmap_remove(m, "anything") == NULL);
    CHECK(hashmap_count(m) == 0);
    hashmap_iter it;
    const char *k = "untouched";
    void *v = &it;
    hashmap_iter_init(m, &it);
    CHECK(hashmap_iter_next(m, &it, &k, &v) == 0);
    CHECK(hashmap_iter_next(m, &it, &k, &v) == 0); /* stays at the end */
    CHECK(strcmp(k, "untouched") == 0 && v == &it);
    hashmap_free(m);
    hashmap_free(NULL); /* allowed, like free(NULL) */
}

static void test_put_then_get_returns_each_value(void)
{
    int a = 1, b = 2, c = 3;
    hashmap *m = hashmap_new();
    CHECK(hashmap_put(m, "alpha", &a) == 0);
    CHECK(hashmap_put(m, "beta", &b) == 0);
    CHECK(hashmap_put(m, "gamma", &c) == 0);
    CHECK(hashmap_count(m) == 3);
    CHECK(hashmap_get(m, "alpha") == &a);
    CHECK(hashmap_get(m, "beta") == &b);
    CHECK(hashmap_get(m, "gamma") == &c);
    CHECK(hashmap_get(m, "delta") == NULL);
    CHECK(hashmap_get(m, "Alpha") == NULL); /* keys are case-sensitive */
    hashmap_free(m);
}

static void test_put_of_an_existing_key_replaces_the_value(void)
{
    int a = 1, b = 2;
    hashmap *m = hashmap_new();
    CHECK(hashmap_put(m, "key", &a) == 0);
    CHECK(hashmap_put(m, "key", &b) == 0);
    CHECK(hashmap_count(m) == 1);
    CHECK(hashmap_get(m, "key") == &b);
    /* iteration sees the one entry with the new value */
    hashmap_iter it;
    const char *k = NULL;
    void *v = NULL;
    int n = 0;
    hashmap_iter_init(m, &it);
    while (hashmap_iter_next(m, &it, &k, &v)) {
        n++;
        CHECK(strcmp(k, "key") == 0 && v == &b);
    }
    CHECK(n == 1);
    hashmap_free(m);
}

static void test_remove_returns_the_value_once(void)
{
    int a = 1, b = 2;
    hashmap *m = hashmap_new();
    hashmap_put(m, "a", &a);
    hashmap_put(m, "b", &b);
    CHECK(hashmap_remove(m, "a") == &a);
    CHECK(hashmap_count(m) == 1);
    CHECK(hashmap_get(m, "a") == NULL);
    CHECK(hashmap_remove(m, "a") == NULL);
    CHECK(hashmap_count(m) == 1);
    CHECK(hashmap_remove(m, "zzz") == NULL);
    CHECK(hashmap_count(m) == 1);
    CHECK(hashmap_get(m, "b") == &b);
    /* a removed key can be put again */
    CHECK(hashmap_put(m, "a", &b) == 0);
    CHECK(hashmap_get(m, "a") == &b && hashmap_count(m) == 2);
    hashmap_free(m);
}

/* ---- ownership ---- */

static void test_keys_are_copied_so_the_callers_buffer_may_change(void)
{
    int a = 1, b = 2;
    char buf[16];
    hashmap *m = hashmap_new();
    strcpy(buf, "first");
    CHECK(hashmap_put(m, buf, &a) == 0);
    strcpy(buf, "second");
    CHECK(hashmap_put(m, buf, &b) == 0);
    memset(buf, 'x', sizeof buf - 1);
    buf[sizeof buf - 1] = '\0';
    CHECK(hashmap_count(m) == 2);
    CHECK(hashmap_get(m, "first") == &a);
    CHECK(hashmap_get(m, "second") == &b);
    CHECK(hashmap_get(m, buf) == NULL);

    /* a heap-allocated key may be freed at once; the map keeps its own copy */
    char *k = malloc(8);
    strcpy(k, "heapkey");
    CHECK(hashmap_put(m, k, &a) == 0);
    free(k);
    CHECK(hashmap_get(m, "heapkey") == &a);

    /* the key an iterator hands out is the map's copy, not the caller's pointer */
    hashmap_iter it;
    const char *ik;
    int seen = 0;
    hashmap_iter_init(m, &it);
    while (hashmap_iter_next(m, &it, &ik, NULL)) {
        CHECK(ik != buf);
        seen += strcmp(ik, "first") == 0 || strcmp(ik, "second") == 0 || strcmp(ik, "heapkey") == 0;
    }
    CHECK(seen == 3);
    hashmap_free(m);
}

static void test_values_are_never_freed_by_the_map(void)
{
    /* Values the map must not free: a stack object, a static string, and malloc'd blocks the
     * test frees itself after the map is gone. Under ASan a free by the map of any of them
     * (invalid free, or double free later) aborts the run. */
    static const char text[] = "static";
    int local = 7;
    void *owned[4];
    hashmap *m = hashmap_new();
    CHECK(hashmap_put(m, "stack", &local) == 0);
    CHECK(hashmap_put(m, "static", (void *)text) == 0);
    for (int i = 0; i < 4; i++) {
        char key[16];
        snprintf(key, sizeof key, "o%d", i);
        owned[i] = malloc(32);
        memset(owned[i], 'a' + i, 32);
        CHECK(hashmap_put(m, key, owned[i]) == 0);
    }
    /* replacing and removing hand values back without freeing them */
    CHECK(hashmap_put(m, "o0", owned[1]) == 0);
    CHECK(hashmap_remove(m, "o3") == owned[3]);
    hashmap_free(m);
    CHECK(local == 7 && strcmp(text, "static") == 0);
    for (int i = 0; i < 4; i++) {
        CHECK(((unsigned char *)owned[i])[0] == 'a' + i && ((unsigned char *)owned[i])[31] == 'a' + i);
        free(owned[i]);
    }
}

static void test_a_null_value_is_present_but_reads_as_null(void)
{
    int a = 1;
    hashmap *m = hashmap_new();
    CHECK(hashmap_put(m, "nothing", NULL) == 0);
    CHECK(hashmap_count(m) == 1);
    CHECK(hashmap_get(m, "nothing") == NULL); /* same as absent through get */
    /* but it is an entry: iteration finds it, and remove takes it out */
    hashmap_iter it;
    const char *k = NULL;
    void *v = &a;
    hashmap_iter_init(m, &it);
    CHECK(hashmap_iter_next(m, &it, &k, &v) == 1);
    CHECK(strcmp(k, "nothing") == 0 && v == NULL);
    CHECK(hashmap_iter_next(m, &it, &k, &v) == 0);
    /* replacing NULL with a value and back */
    CHECK(hashmap_put(m, "nothing", &a) == 0);
    CHECK(hashmap_get(m, "nothing") == &a && hashmap_count(m) == 1);
    CHECK(hashmap_put(m, "nothing", NULL) == 0);
    CHECK(hashmap_count(m) == 1);
    CHECK(hashmap_remove(m, "nothing") == NULL);
    CHECK(hashmap_count(m) == 0);
    hashmap_free(m);
}

/* ---- awkward keys ---- */

static void test_the_empty_string_is_a_key_like_any_other(void)
{
    int a = 1, b = 2;
    hashmap *m = hashmap_new();
    CHECK(hashmap_get(m, "") == NULL);
    CHECK(hashmap_put(m, "", &a) == 0);
    CHECK(hashmap_put(m, "x", &b) == 0);
    CHECK(hashmap_count(m) == 2);
    CHECK(hashmap_get(m, "") == &a);
    CHECK(hashmap_get(m, "x") == &b);
    hashmap_iter it;
    const char *k;
    int empty_seen = 0;
    hashmap_iter_init(m, &it);
    while (hashmap_iter_next(m, &it, &k, NULL))
        empty_seen += k[0] == '\0';
    CHECK(empty_seen == 1);
    CHECK(hashmap_remove(m, "") == &a);
    CHECK(hashmap_get(m, "") == NULL && hashmap_count(m) == 1);
    hashmap_free(m);
}

static void test_keys_differing_only_in_late_bytes_are_distinct(void)
{
    enum { LEN = 1000, N = 64 };
    static int vals[N];
    char key[LEN + 1];
    hashmap *m = hashmap_new();
    memset(key, 'k', LEN);
    key[LEN] = '\0';
    for (int i = 0; i < N; i++) {
        key[LEN - 1] = (char)(' ' + i); /* only the last byte differs */
        CHECK(hashmap_put(m, key, &vals[i]) == 0);
    }
    CHECK(hashmap_count(m) == N);
    for (int i = 0; i < N; i++) {
        key[LEN - 1] = (char)(' ' + i);
        CHECK(hashmap_get(m, key) == &vals[i]);
    }
    /* a proper prefix, and the key extended by one byte, are other keys */
    key[LEN - 1] = '\0'; /* the first LEN - 1 bytes of every stored key */
    CHECK(hashmap_get(m, key) == NULL);
    char longer[LEN + 2];
    memset(longer, 'k', LEN + 1);
    longer[LEN - 1] = ' ';
    longer[LEN + 1] = '\0';
    CHECK(hashmap_get(m, longer) == NULL);

    /* short prefixes of one another */
    int a = 1, b = 2, c = 3;
    CHECK(hashmap_put(m, "ab", &a) == 0);
    CHECK(hashmap_put(m, "abc", &b) == 0);
    CHECK(hashmap_put(m, "abcd", &c) == 0);
    CHECK(hashmap_get(m, "ab") == &a && hashmap_get(m, "abc") == &b && hashmap_get(m, "abcd") == &c);
    CHECK(hashmap_get(m, "a") == NULL && hashmap_get(m, "abcde") == NULL);
    CHECK(hashmap_remove(m, "abc") == &b);
    CHECK(hashmap_get(m, "ab") == &a && hashmap_get(m, "abcd") == &c);
    CHECK(hashmap_count(m) == N + 2);
    hashmap_free(m);
}

static void test_bytes_above_127_are_part_of_the_key(void)
{
    int a = 1, b = 2;
    hashmap *m = hashmap_new();
    CHECK(hashmap_put(m, "caf\xc3\xa9", &a) == 0); /* "café" in UTF-8 */
    CHECK(hashmap_put(m, "caf\xc3\xa8", &b) == 0);
    CHECK(hashmap_get(m, "caf\xc3\xa9") == &a);
    CHECK(hashmap_get(m, "caf\xc3\xa8") == &b);
    CHECK(hashmap_get(m, "cafe") == NULL);
    hashmap_free(m);
}

/* ---- growth ---- */

static void test_many_keys_survive_growth_and_removal_in_another_order(void)
{
    enum { N = 100000 };
    /* 7919 is prime and shares no factor with 100000 = 2^5 * 5^5, so i -> i * 7919 mod N
     * visits every index exactly once, in an order unrelated to insertion. */
    enum { STRIDE = 7919 };
    static int vals[N];
    char key[32];
    hashmap *m = hashmap_new();
    int put_failed = 0;
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        put_failed += hashmap_put(m, key, &vals[i]) != 0;
        if ((size_t)(i + 1) != hashmap_count(m))
            put_failed++;
    }
    CHECK(put_failed == 0);
    CHECK(hashmap_count(m) == N);

    int missing = 0;
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        missing += hashmap_get(m, key) != &vals[i];
    }
    CHECK(missing == 0);
    snprintf(key, sizeof key, "key-%d", N);
    CHECK(hashmap_get(m, key) == NULL);

    /* remove half in the stride order, check both halves, then remove the rest */
    int wrong = 0;
    for (long j = 0; j < N / 2; j++) {
        int i = (int)(j * STRIDE % N);
        snprintf(key, sizeof key, "key-%d", i);
        wrong += hashmap_remove(m, key) != &vals[i];
    }
    CHECK(wrong == 0);
    CHECK(hashmap_count(m) == N / 2);
    int bad = 0;
    for (long j = 0; j < N; j++) {
        int i = (int)(j * STRIDE % N);
        snprintf(key, sizeof key, "key-%d", i);
        void *want = j < N / 2 ? NULL : &vals[i];
        bad += hashmap_get(m, key) != want;
    }
    CHECK(bad == 0);
    wrong = 0;
    for (long j = N - 1; j >= N / 2; j--) {
        int i = (int)(j * STRIDE % N);
        snprintf(key, sizeof key, "key-%d", i);
        wrong += hashmap_remove(m, key) != &vals[i];
    }
    CHECK(wrong == 0);
    CHECK(hashmap_count(m) == 0);
    hashmap_iter it;
    hashmap_iter_init(m, &it);
    CHECK(hashmap_iter_next(m, &it, NULL, NULL) == 0);
    /* the emptied (large) map still works */
    CHECK(hashmap_put(m, "again", &vals[0]) == 0);
    CHECK(hashmap_get(m, "again") == &vals[0] && hashmap_count(m) == 1);
    hashmap_free(m);
}

/* ---- iteration ---- */

enum { ITER_N = 5000 };

/* A map of ITER_N keys "i<n>" whose values point at vals[n]. */
static hashmap *numbered_map(int *vals)
{
    hashmap *m = hashmap_new();
    char key[16];
    for (int i = 0; i < ITER_N; i++) {
        snprintf(key, sizeof key, "i%d", i);
        if (hashmap_put(m, key, &vals[i]) != 0) {
            hashmap_free(m);
            return NULL;
        }
    }
    return m;
}

/* The n a key "i<n>" names, checking it matches the value; -1 when they disagree. */
static int entry_index(const int *vals, const char *key, const void *value)
{
    int n = atoi(key + 1);
    if (key[0] != 'i' || n < 0 || n >= ITER_N || value != &vals[n])
        return -1;
    return n;
}

static void test_iteration_visits_each_entry_exactly_once(void)
{
    static int vals[ITER_N];
    static unsigned char seen[ITER_N];
    memset(seen, 0, sizeof seen);
    hashmap *m = numbered_map(vals);
    CHECK(m != NULL);
    if (!m)
        return;
    hashmap_iter it;
    const char *k;
    void *v;
    int visits = 0, mismatched = 0, twice = 0;
    hashmap_iter_init(m, &it);
    while (hashmap_iter_next(m, &it, &k, &v)) {
        visits++;
        int n = entry_index(vals, k, v);
        if (n < 0) {
            mismatched++;
            continue;
        }
        twice += seen[n]++ != 0;
    }
    CHECK(visits == ITER_N && mismatched == 0 && twice == 0);
    int unseen = 0;
    for (int i = 0; i < ITER_N; i++)
        unseen += seen[i] != 1;
    CHECK(unseen == 0);
    /* key and value out-pointers may each be NULL */
    int n = 0;
    hashmap_iter_init(m, &it);
    while (hashmap_iter_next(m, &it, NULL, &v))
        n++;
    hashmap_iter_init(m, &it);
    while (hashmap_iter_next(m, &it, &k, NULL))
        n++;
    CHECK(n == 2 * ITER_N);
    hashmap_free(m);
}

/* The map's hashing is fixed, so which buckets are used at each size is too; checking every
 * size from 1 to 2000 (across seven resizes) puts entries in the first and last buckets at
 * some point, so an iterator that skipped either would be caught. */
static void test_iteration_finds_every_entry_at_every_size(void)
{
    enum { N = 2000 };
    static int vals[N];
    hashmap *m = hashmap_new();
    char key[16];
    int first_bad = -1;
    for (int i = 0; i < N && first_bad < 0; i++) {
        snprintf(key, sizeof key, "s%d", i);
        if (hashmap_put(m, key, &vals[i]) != 0) {
            first_bad = i;
            break;
        }
        hashmap_iter it;
        void *v;
        size_t n = 0;
        int wrong = 0;
        hashmap_iter_init(m, &it);
        while (hashmap_iter_next(m, &it, NULL, &v)) {
            n++;
            wrong += (int *)v < vals || (int *)v > &vals[i];
        }
        if (n != (size_t)i + 1 || wrong)
            first_bad = i;
    }
    CHECK(first_bad == -1);
    hashmap_free(m);
}

static void test_removing_each_entry_just_returned_empties_the_map(void)
{
    static int vals[ITER_N];
    static unsigned char seen[ITER_N];
    memset(seen, 0, sizeof seen);
    hashmap *m = numbered_map(vals);
    CHECK(m != NULL);
    if (!m)
        return;
    hashmap_iter it;
    const char *k;
    void *v;
    int visits = 0, bad = 0;
    hashmap_iter_init(m, &it);
    while (hashmap_iter_next(m, &it, &k, &v)) {
        visits++;
        int n = entry_index(vals, k, v);
        if (n < 0 || seen[n]++) {
            bad++;
            continue;
        }
        /* k is the map's own copy of the key, freed by this very call: remove must be done
         * with it before it frees the entry (ASan reports a use after free otherwise) */
        bad += hashmap_remove(m, k) != &vals[n];
    }
    CHECK(visits == ITER_N && bad == 0);
    CHECK(hashmap_count(m) == 0);
    hashmap_free(m);
}

static void test_removing_some_entries_while_iterating_keeps_the_rest(void)
{
    static int vals[ITER_N];
    static unsigned char seen[ITER_N];
    memset(seen, 0, sizeof seen);
    hashmap *m = numbered_map(vals);
    CHECK(m != NULL);
    if (!m)
        return;
    hashmap_iter it;
    const char *k;
    void *v;
    int visits = 0, bad = 0;
    hashmap_iter_init(m, &it);
    while (hashmap_iter_next(m, &it, &k, &v)) {
        visits++;
        int n = entry_index(vals, k, v);
        if (n < 0 || seen[n]++) {
            bad++;
            continue;
        }
        if (n % 3 == 0) {
            char copy[16];
            snprintf(copy, sizeof copy, "%s", k);
            bad += hashmap_remove(m, copy) != &vals[n];
        }
    }
    CHECK(visits == ITER_N && bad == 0);
    CHECK(hashmap_count(m) == ITER_N - (ITER_N + 2) / 3);
    char key[16];
    int wrong = 0;
    for (int i = 0; i < ITER_N; i++) {
        snprintf(key, sizeof key, "i%d", i);
        wrong += hashmap_get(m, key) != (i % 3 == 0 ? NULL : &vals[i]);
    }
    CHECK(wrong == 0);
    /* a second pass sees exactly the survivors */
    int survivors = 0;
    hashmap_iter_init(m, &it);
    while (hashmap_iter_next(m, &it, &k, &v)) {
        int n = entry_index(vals, k, v);
        survivors += n >= 0 && n % 3 != 0;
    }
    CHECK((size_t)survivors == hashmap_count(m));
    hashmap_free(m);
}

int main(void)
{
    RUN(test_new_map_is_empty);
    RUN(test_put_then_get_returns_each_value);
    RUN(test_put_of_an_existing_key_replaces_the_value);
    RUN(test_remove_returns_the_value_once);
    RUN(test_keys_are_copied_so_the_callers_buffer_may_change);
    RUN(test_values_are_never_freed_by_the_map);
    RUN(test_a_null_value_is_present_but_reads_as_null);
    RUN(test_the_empty_string_is_a_key_like_any_other);
    RUN(test_keys_differing_only_in_late_bytes_are_distinct);
    RUN(test_bytes_above_127_are_part_of_the_key);
    RUN(test_many_keys_survive_growth_and_removal_in_another_order);
    RUN(test_iteration_visits_each_entry_exactly_once);
    RUN(test_iteration_finds_every_entry_at_every_size);
    RUN(test_removing_each_entry_just_returned_empties_the_map);
    RUN(test_removing_some_entries_while_iterating_keeps_the_rest);
    return check_report();
}
