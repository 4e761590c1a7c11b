/* hashmap.h - string-keyed hash map with separate chaining.
 * Keys are copied and owned by the map; values are the caller's (the map never frees them).
 * Every operation is O(1) on average. Iteration order is unspecified; removing the entry the
 * iterator just returned is allowed, any other mutation during iteration is not. */
#ifndef SSSN_HASHMAP_H
#define SSSN_HASHMAP_H

#include <stddef.h>

typedef struct hashmap hashmap;

typedef struct hashmap_iter {
    size_t bucket;
    void *next; /* internal */
} hashmap_iter;

hashmap *hashmap_new(void);                          /* NULL when out of memory */
void hashmap_free(hashmap *m);                       /* frees keys, not values */
void *hashmap_get(const hashmap *m, const char *key);
/* Inserts or replaces. Returns 0, or -1 when out of memory (the map is unchanged). */
int hashmap_put(hashmap *m, const char *key, void *value);
void *hashmap_remove(hashmap *m, const char *key);   /* the removed value, or NULL */
size_t hashmap_count(const hashmap *m);

void hashmap_iter_init(const hashmap *m, hashmap_iter *it);
/* Returns 1 and sets *key / *value (either may be NULL) for the next entry, 0 at the end. */
int hashmap_iter_next(const hashmap *m, hashmap_iter *it, const char **key, void **value);

#endif
