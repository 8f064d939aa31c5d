/*
** hugemem.h: large buffers of the `asyncstack` command (tool/) in huge
** pages. Reading 100,000 forks fills hundreds of megabytes (the target's
** heap in blocks, one record per fork); with 4 KB pages each first write
** is an exception and each later read a likely TLB miss, which in a
** virtual machine costs more than the reading itself.
*/
#ifndef ASYNCSTACK_TOOL_HUGEMEM_H
#define ASYNCSTACK_TOOL_HUGEMEM_H

#include <stddef.h>

/* `size` bytes of zeroed memory, 2 MB aligned, in huge pages where the
** kernel allows (MADV_HUGEPAGE; plain pages otherwise); NULL when it
** cannot be mapped. Give it back with munmap(ptr, size); it may be grown
** with mremap. */
void *tool_map_huge(size_t size);

#endif
