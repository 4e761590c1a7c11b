/* alloc.c - the allocator of every Lua state (see alloc.h). */
#include "vm/alloc.h"

#include <stdlib.h>

void *vm_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    vm_heap *v = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
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
    void *p = realloc(ptr, nsize);
    if (!p)
        return NULL;
    v->bytes = v->bytes - old + nsize;
    if (v->bytes > v->peak)
        v->peak = v->bytes;
    return p;
}
