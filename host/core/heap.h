/* heap.h - binary min-heap of intrusive nodes ordered by (key, insertion order).
 * Embed a heap_node in your struct and recover it with container_of-style arithmetic.
 * Push, remove and update are O(log n); peek is O(1). Equal keys pop in insertion order.
 * The heap never owns the nodes. */
#ifndef SSSN_HEAP_H
#define SSSN_HEAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct heap_node {
    double key;
    uint64_t order; /* tie-break, set by heap_push */
    size_t index;   /* position in the heap, SIZE_MAX when not in one */
} heap_node;

typedef struct heap {
    heap_node **items;
    size_t count, cap;
    uint64_t pushes;
} heap;

#define HEAP_NODE_INIT {0, 0, SIZE_MAX}

void heap_init(heap *h);
void heap_free(heap *h);                 /* frees the array; never touches the nodes */
int heap_push(heap *h, heap_node *n, double key); /* 0, or -1 when out of memory */
void heap_remove(heap *h, heap_node *n); /* no-op when n is not in the heap */
void heap_update(heap *h, heap_node *n, double key); /* n must be in the heap */
heap_node *heap_peek(const heap *h);     /* NULL when empty */
heap_node *heap_pop(heap *h);            /* NULL when empty */
static inline int heap_contains(const heap_node *n) { return n->index != SIZE_MAX; }

#endif
