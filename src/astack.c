/*
** astack.c: setting up and growing a fork's async stack (see astack.h).
*/
#include <string.h>
#include "astack.h"

void as_astack_init(as_astack *a, lua_State *root) {
  a->frames = a->inline_frames;
  a->capacity = AS_ASTACK_INLINE;
  a->frames[0].thread = root;
  a->depth = 1;
}

void as_astack_adopt(as_astack *a, as_frame *frames, int capacity) {
  memcpy(frames, a->frames, sizeof(as_frame) * (size_t)a->depth);
  __atomic_signal_fence(__ATOMIC_RELEASE);   /* contents before the pointer */
  a->frames = frames;
  a->capacity = (unsigned short)capacity;
}

void as_astack_release(as_astack *a) {
  as_assert(a->depth == 0);
  __atomic_signal_fence(__ATOMIC_RELEASE);   /* depth 0 before the pointer */
  a->frames = a->inline_frames;
  a->capacity = AS_ASTACK_INLINE;
}
