/* pool.h - a small-block allocator for many short-lived objects of a few sizes (Lua's tables,
 * strings and closures). Blocks of up to POOL_MAX_BLOCK bytes come from one free list per size
 * class (multiples of POOL_GRAIN), carved from chunks taken from malloc; a freed block goes
 * back on its class's list and the next allocation of that class takes it, in a few
 * instructions, where malloc and free cost a hundred or more. Chunks are kept until the pool
 * is freed, so the pool's footprint is its peak of small blocks, and freed memory of one class
 * serves only that class. One pool per loop: not thread-safe. */
#ifndef SSSN_POOL_H
#define SSSN_POOL_H

#include <stddef.h>

#define POOL_GRAIN 16
#define POOL_MAX_BLOCK 512
#define POOL_CHUNK (64 * 1024)

typedef struct pool pool;

pool *pool_new(void);  /* NULL when out of memory */
void pool_free(pool *p); /* every block goes with it; NULL is allowed */

/* A block of size bytes, 0 < size <= POOL_MAX_BLOCK, aligned to POOL_GRAIN; NULL when out of
 * memory. Release it with the same size (or any size of the same class). */
void *pool_alloc(pool *p, size_t size);
void pool_release(pool *p, void *block, size_t size);

/* Whether two sizes share a class (a block of one serves the other). */
int pool_same_class(size_t a, size_t b);

size_t pool_footprint(const pool *p); /* bytes of chunks held */
size_t pool_in_use(const pool *p);    /* bytes of the classes of blocks handed out */

#endif
