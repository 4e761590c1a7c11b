/* alloc.h - the allocator of every Lua state (a lua_Alloc with its vm as ud): it counts the
 * state's heap (vm.bytes, vm.peak) and refuses growth past the state's cap (vm.limit). */
#ifndef SSSN_VM_ALLOC_H
#define SSSN_VM_ALLOC_H

#include <stddef.h>

void *vm_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

#endif
