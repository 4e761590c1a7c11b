/* alloc.c - the allocator of every Lua state (see alloc.h). */
#include "vm/alloc.h"

#include <stdlib.h>
#include <string.h>

#include "core/pool.h"

static int small(size_t size) { return size <= POOL_MAX_BLOCK; }

/* The block moves between the pool and malloc, or between classes: a new one, copied. */
static void *move(pool *pl, void *ptr, size_t osize, size_t nsize)
{
    void *p = small(nsize) ? pool_alloc(pl, nsize) : malloc(nsize);
    if (!p)
        return NULL;
    memcpy(p, ptr, osize < nsize ? osize : nsize);
    if (small(osize))
        pool_release(pl, ptr, osize);
    else
        free(ptr);
    return p;
}

/* Without a pool, every block is malloc's. Lua gives a block's exact size when it frees or
 * resizes it (osize), which is what lets the pool keep no header. */
static void *resize(pool *pl, void *ptr, size_t osize, size_t nsize)
{
    if (!pl)
        return realloc(ptr, nsize);
    if (!ptr)
        return small(nsize) ? pool_alloc(pl, nsize) : malloc(nsize);
    if (small(osize) && small(nsize) && pool_same_class(osize, nsize))
        return ptr;
    if (!small(osize) && !small(nsize))
        return realloc(ptr, nsize);
    return move(pl, ptr, osize, nsize);
}

void *vm_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    vm_heap *v = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        if (ptr && v->pool && small(osize))
            pool_release(v->pool, ptr, osize);
        else
            free(ptr);
        v->bytes -= old;
        return NULL;
    }
    /* refuse growth past the cap (v->bytes counts the logs of the channels the state's system
     * owns too): Lua raises "not enough memory" in this state only */
    if (v->limit && nsize > old && v->bytes - old + nsize > v->limit) {
        if (v->refusals)
            (*v->refusals)++;
        return NULL;
    }
    void *p = resize(v->pool, ptr, old, nsize);
    if (!p)
        return NULL;
    v->bytes = v->bytes - old + nsize;
    if (v->bytes > v->peak)
        v->peak = v->bytes;
    return p;
}
