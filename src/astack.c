/*
** astack.c: growth and release of a fork's async stack (see astack.h).
*/
#include <string.h>
#include "astack.h"
#include <lauxlib.h>

void as_astack_init(as_astack *a, lua_State *root) {
  a->frames = a->inline_frames;
  a->capacity = AS_ASTACK_INLINE;
  a->frames[0].thread = root;
  a->depth = 1;
}

void as_astack_free(lua_State *L, as_astack *a) {
  if (a->frames != a->inline_frames) {
    void *ud;
    lua_Alloc alloc = lua_getallocf(L, &ud);
    alloc(ud, a->frames, sizeof(as_frame) * (size_t)a->capacity, 0);
    a->frames = a->inline_frames;
    a->capacity = AS_ASTACK_INLINE;
  }
  a->depth = 0;
}

/* Allocates, copies, publishes, then frees: a signal handler reading the
** stack (crash.c) sees either the old array or the new one, both whole. */
void as_astack_grow(lua_State *L, as_astack *a) {
  void *ud;
  lua_Alloc alloc = lua_getallocf(L, &ud);
  int newcap = a->capacity * 2;
  as_frame *old = a->frames, *nf;
  int oldcap = a->capacity;
  nf = (as_frame *)alloc(ud, NULL, 0, sizeof(as_frame) * (size_t)newcap);
  if (nf == NULL) luaL_error(L, "not enough memory");
  memcpy(nf, old, sizeof(as_frame) * (size_t)a->depth);
  __atomic_signal_fence(__ATOMIC_RELEASE);
  a->frames = nf;
  a->capacity = newcap;
  __atomic_signal_fence(__ATOMIC_RELEASE);
  if (old != a->inline_frames)
    alloc(ud, old, sizeof(as_frame) * (size_t)oldcap, 0);
}
