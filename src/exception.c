/*
** exception.c: as.pcall, the protected call whose failures are exceptions
** with the trace of the raise site.
**
** The Lua policy provides the message handler (hook "to_exception"); it runs
** where the error was raised, before the stack unwinds, so it can capture
** the async chain there. Done in C so that no frame of ours (an xpcall
** called from Lua) shows up between the caller and the protected function.
*/
#include "module.h"
#include <lauxlib.h>

/* as luaB_xpcall's finishpcall: false + error, or true + results */
static int exception_pcall_k(lua_State *L, int status, lua_KContext extra) {
  if (status != LUA_OK && status != LUA_YIELD) {
    lua_pushboolean(L, 0);
    lua_pushvalue(L, -2);
    return 2;
  }
  return lua_gettop(L) - (int)extra;
}

/* core.pcall(f, ...) -> true, ... | false, exception */
static int exception_pcall(lua_State *L) {
  as_state *st = as_state_get(L);
  int n = lua_gettop(L), status;
  luaL_checkany(L, 1);
  if (!as_hook_push(L, st, "to_exception")) lua_pushnil(L);
  lua_insert(L, 1);                 /* handler, f, args */
  lua_pushboolean(L, 1);
  lua_insert(L, 2);                 /* handler, true, f, args */
  status = lua_pcallk(L, n - 1, LUA_MULTRET, lua_isnil(L, 1) ? 0 : 1, 1,
                      exception_pcall_k);
  return exception_pcall_k(L, status, 1);  /* results start after the handler */
}

void as_exception_open(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"pcall", exception_pcall}, {NULL, NULL}
  };
  as_module_setfuncs(L, funcs);
}
