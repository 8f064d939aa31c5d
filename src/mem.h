/*
** mem.h: the one allocator wrapper: C arrays of the scheduler live in memory
** from the Lua state's allocator (so a host's lua_Alloc sees and may refuse
** every byte), not in malloc's.
*/
#ifndef ASYNCSTACK_MEM_H
#define ASYNCSTACK_MEM_H

#include <stddef.h>
#include <lua.h>
#include <lauxlib.h>

/* Resizes p (oldsz bytes) to newsz bytes; newsz 0 frees. Returns NULL when
** the allocator refuses (p is then untouched). Never raises. */
static inline void *as_mem_resize(lua_State *L, void *p, size_t oldsz, size_t newsz) {
  void *ud;
  lua_Alloc alloc;
  if (p == NULL && newsz == 0) return NULL;   /* nothing to free */
  alloc = lua_getallocf(L, &ud);
  p = alloc(ud, p, oldsz, newsz);
  return newsz > 0 ? p : NULL;
}

/* As as_mem_resize, but raises "not enough memory" when refused. */
static inline void *as_mem_realloc(lua_State *L, void *p, size_t oldsz, size_t newsz) {
  void *np = as_mem_resize(L, p, oldsz, newsz);
  if (np == NULL && newsz > 0) luaL_error(L, "not enough memory");
  return np;
}

#endif
