/* alloc.h - the allocator of every Lua state: a lua_Alloc whose ud is the state's vm_heap. It
 * counts the state's heap and refuses growth past the state's cap, so a system's memory is
 * known and bounded. Small blocks come from the heap's pool (core/pool.h), shared by every
 * state of a host, so a block one state frees serves the next allocation of any; larger ones
 * from malloc. */
#ifndef SSSN_VM_ALLOC_H
#define SSSN_VM_ALLOC_H

#include <stddef.h>
#include <stdint.h>

#include "core/pool.h"

typedef struct vm_heap {
    size_t bytes;        /* Lua heap in use, and the logs of channels charged to it
                          * (channel_set_account): the cap covers both */
    size_t peak;
    size_t limit;        /* 0 = unlimited; growth past it is refused ("not enough memory") */
    uint64_t *refusals;  /* where refused allocations are counted (the env's), or NULL */
    pool *pool;          /* small blocks (the env's); NULL: every block from malloc */
} vm_heap;

void *vm_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

#endif
