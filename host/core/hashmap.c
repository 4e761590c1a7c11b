/* hashmap.c - string-keyed hash map with separate chaining (see hashmap.h).
 * FNV-1a hashing; the table doubles when the load factor passes 1. */
#include "core/hashmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    struct entry *next;
    uint64_t hash;
    void *value;
    char key[]; /* NUL-terminated copy */
} entry;

struct hashmap {
    entry **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
};

static uint64_t hash_key(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

hashmap *hashmap_new(void)
{
    hashmap *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->nbuckets = 16;
    m->buckets = calloc(m->nbuckets, sizeof *m->buckets);
    if (!m->buckets) {
        free(m);
        return NULL;
    }
    return m;
}

void hashmap_free(hashmap *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        entry *e = m->buckets[i];
        while (e) {
            entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(m->buckets);
    free(m);
}

static entry **find_slot(const hashmap *m, const char *key, uint64_t h)
{
    entry **slot = &m->buckets[h & (m->nbuckets - 1)];
    while (*slot && ((*slot)->hash != h || strcmp((*slot)->key, key) != 0))
        slot = &(*slot)->next;
    return slot;
}

void *hashmap_get(const hashmap *m, const char *key)
{
    entry *e = *find_slot(m, key, hash_key(key));
    return e ? e->value : NULL;
}

static void grow(hashmap *m)
{
    size_t n = m->nbuckets * 2;
    entry **b = calloc(n, sizeof *b);
    if (!b)
        return; /* keep the longer chains; still correct */
    for (size_t i = 0; i < m->nbuckets; i++) {
        entry *e = m->buckets[i];
        while (e) {
            entry *next = e->next;
            entry **slot = &b[e->hash & (n - 1)];
            e->next = *slot;
            *slot = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

int hashmap_put(hashmap *m, const char *key, void *value)
{
    uint64_t h = hash_key(key);
    entry **slot = find_slot(m, key, h);
    if (*slot) {
        (*slot)->value = value;
        return 0;
    }
    size_t klen = strlen(key);
    entry *e = malloc(sizeof *e + klen + 1);
    if (!e)
        return -1;
    memcpy(e->key, key, klen + 1);
    e->hash = h;
    e->value = value;
    e->next = NULL;
    *slot = e;
    if (++m->count > m->nbuckets)
        grow(m);
    return 0;
}

void *hashmap_remove(hashmap *m, const char *key)
{
    entry **slot = find_slot(m, key, hash_key(key));
    entry *e = *slot;
    if (!e)
        return NULL;
    void *v = e->value;
    *slot = e->next;
    free(e);
    m->count--;
    return v;
}

size_t hashmap_count(const hashmap *m) { return m->count; }

void hashmap_iter_init(const hashmap *m, hashmap_iter *it)
{
    it->bucket = 0;
    it->next = m->nbuckets ? m->buckets[0] : NULL;
}

int hashmap_iter_next(const hashmap *m, hashmap_iter *it, const char **key, void **value)
{
    while (!it->next) {
        if (++it->bucket >= m->nbuckets)
            return 0;
        it->next = m->buckets[it->bucket];
    }
    entry *e = it->next;
    it->next = e->next; /* read before the caller may remove e */
    if (key)
        *key = e->key;
    if (value)
        *value = e->value;
    return 1;
}
