/* heap.c - binary min-heap of intrusive nodes (see heap.h). */
#include "core/heap.h"

#include <stdlib.h>

static int less(const heap_node *a, const heap_node *b)
{
    return a->key < b->key || (a->key == b->key && a->order < b->order);
}

static void place(heap *h, size_t i, heap_node *n)
{
    h->items[i] = n;
    n->index = i;
}

static void sift_up(heap *h, size_t i)
{
    heap_node *n = h->items[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!less(n, h->items[parent]))
            break;
        place(h, i, h->items[parent]);
        i = parent;
    }
    place(h, i, n);
}

static void sift_down(heap *h, size_t i)
{
    heap_node *n = h->items[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->count)
            break;
        if (child + 1 < h->count && less(h->items[child + 1], h->items[child]))
            child++;
        if (!less(h->items[child], n))
            break;
        place(h, i, h->items[child]);
        i = child;
    }
    place(h, i, n);
}

void heap_init(heap *h)
{
    h->items = NULL;
    h->count = h->cap = 0;
    h->pushes = 0;
}

void heap_free(heap *h)
{
    /* nodes still in the heap are not touched: their owners may already be gone */
    free(h->items);
    heap_init(h);
}

int heap_push(heap *h, heap_node *n, double key)
{
    if (h->count == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        heap_node **items = realloc(h->items, cap * sizeof *items);
        if (!items)
            return -1;
        h->items = items;
        h->cap = cap;
    }
    n->key = key;
    n->order = h->pushes++;
    place(h, h->count++, n);
    sift_up(h, n->index);
    return 0;
}

void heap_remove(heap *h, heap_node *n)
{
    size_t i = n->index;
    if (i == SIZE_MAX || i >= h->count || h->items[i] != n)
        return;
    n->index = SIZE_MAX;
    h->count--;
    if (i == h->count)
        return;
    place(h, i, h->items[h->count]);
    sift_down(h, i);
    sift_up(h, h->items[i]->index);
}

void heap_update(heap *h, heap_node *n, double key)
{
    n->key = key;
    n->order = h->pushes++;
    sift_down(h, n->index);
    sift_up(h, n->index);
}

heap_node *heap_peek(const heap *h) { return h->count ? h->items[0] : NULL; }

heap_node *heap_pop(heap *h)
{
    heap_node *n = heap_peek(h);
    if (n)
        heap_remove(h, n);
    return n;
}
