/*
** hugemem.c: large buffers in huge pages (see hugemem.h).
*/
#define _GNU_SOURCE
#include <stdint.h>
#include <sys/mman.h>
#include "hugemem.h"

void *tool_map_huge(size_t size) {
  size_t huge = (size_t)2 << 20;
  size_t span = size + huge;
  unsigned char *m = mmap(NULL, span, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), *aligned;
  if (m == MAP_FAILED) return NULL;
  aligned = (unsigned char *)(((uintptr_t)m + huge - 1) & ~(uintptr_t)(huge - 1));
  if (aligned > m) munmap(m, (size_t)(aligned - m));
  if (aligned + size < m + span) munmap(aligned + size, (size_t)(m + span - (aligned + size)));
#ifdef MADV_HUGEPAGE
  madvise(aligned, size, MADV_HUGEPAGE);
#endif
  return aligned;
}
