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

/* Raises Lua's own memory error: status LUA_ERRMEM and the bare message,
** as when Lua's allocations fail. lua_error raises LUA_ERRMEM for that very
** string (Lua 5.4.1 and later; interned, so pushing it allocates nothing);
** luaL_error would add the caller's "file:line:" and raise LUA_ERRRUN,
** which coroutine.wrap then prefixes again (issue 13, NEW-B). L needs room
** for one value. */
static inline int as_mem_error(lua_State *L) {
  lua_pushliteral(L, "not enough memory");
  return lua_error(L);
}

/* As as_mem_resize, but raises the memory error when refused. */
static inline void *as_mem_realloc(lua_State *L, void *p, size_t oldsz, size_t newsz) {
  void *np = as_mem_resize(L, p, oldsz, newsz);
  if (np == NULL && newsz > 0) as_mem_error(L);
  return np;
}

#endif
