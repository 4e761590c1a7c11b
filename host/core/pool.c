/* pool.c - size-class free lists over bump-allocated chunks (see pool.h). */
#include "core/pool.h"

#include <stdint.h>
#include <stdlib.h>

#define CLASSES (POOL_MAX_BLOCK / POOL_GRAIN)

typedef struct free_block {
    struct free_block *next;
} free_block;

typedef struct chunk {
    struct chunk *next;
    /* blocks follow, from the first POOL_GRAIN boundary after the header */
} chunk;

struct pool {
    free_block *free[CLASSES]; /* class c holds blocks of (c + 1) * POOL_GRAIN bytes */
    char *bump, *end;          /* what is left of the newest chunk */
    chunk *chunks;
    size_t footprint, in_use;
};

static size_t class_of(size_t size) { return (size - 1) / POOL_GRAIN; }

pool *pool_new(void) { return calloc(1, sizeof(pool)); }

void pool_free(pool *p)
{
    if (!p)
        return;
    while (p->chunks) {
        chunk *c = p->chunks;
        p->chunks = c->next;
        free(c);
    }
    free(p);
}

/* A new chunk to carve from; what was left of the last one is given to the free lists. */
static int grow(pool *p)
{
    while (p->end - p->bump >= POOL_GRAIN) {
        size_t left = (size_t)(p->end - p->bump);
        size_t size = left > POOL_MAX_BLOCK ? POOL_MAX_BLOCK : left / POOL_GRAIN * POOL_GRAIN;
        free_block *b = (free_block *)p->bump;
        b->next = p->free[class_of(size)];
        p->free[class_of(size)] = b;
        p->bump += size;
    }
    chunk *c = malloc(POOL_CHUNK);
    if (!c)
        return -1;
    c->next = p->chunks;
    p->chunks = c;
    p->footprint += POOL_CHUNK;
    uintptr_t first = ((uintptr_t)(c + 1) + POOL_GRAIN - 1) & ~(uintptr_t)(POOL_GRAIN - 1);
    p->bump = (char *)first;
    p->end = (char *)c + POOL_CHUNK;
    return 0;
}

void *pool_alloc(pool *p, size_t size)
{
    size_t c = class_of(size);
    free_block *b = p->free[c];
    if (b) {
        p->free[c] = b->next;
    } else {
        size_t rounded = (c + 1) * POOL_GRAIN;
        if ((size_t)(p->end - p->bump) < rounded && grow(p) < 0)
            return NULL;
        b = (free_block *)p->bump;
        p->bump += rounded;
    }
    p->in_use += (c + 1) * POOL_GRAIN;
    return b;
}

void pool_release(pool *p, void *block, size_t size)
{
    size_t c = class_of(size);
    free_block *b = block;
    b->next = p->free[c];
    p->free[c] = b;
    p->in_use -= (c + 1) * POOL_GRAIN;
}

int pool_same_class(size_t a, size_t b) { return class_of(a) == class_of(b); }

size_t pool_footprint(const pool *p) { return p->footprint; }
size_t pool_in_use(const pool *p) { return p->in_use; }
