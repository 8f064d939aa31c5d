/*
** bench/luaprof.c: a minimal stand-alone Lua 5.4 interpreter linked with the
** static liblua5.4.a, which (unlike Debian's stripped lua5.4 binary) keeps the
** names of Lua's internal functions. `make bench-profile` runs the rows under
** callgrind with it, so profiles name luaH_resize, luaE_extendCI, ... instead
** of raw addresses. Only for profiling: `lua5.4 script args...` semantics,
** nothing else (no REPL, no -e, no LUA_INIT).
*/
#include <stdio.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

static int traceback_handler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
  return 1;
}

int main(int argc, char **argv) {
  lua_State *L;
  int i, status;
  if (argc < 2) {
    fprintf(stderr, "usage: %s script.lua [args...]\n", argv[0]);
    return 2;
  }
  L = luaL_newstate();
  luaL_openlibs(L);
  lua_createtable(L, argc, 1);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - 1);  /* argv[1] (the script) is arg[0] */
  }
  lua_setglobal(L, "arg");
  lua_pushcfunction(L, traceback_handler);
  status = luaL_loadfile(L, argv[1]);
  if (status == LUA_OK) {
    for (i = 2; i < argc; i++) lua_pushstring(L, argv[i]);
    status = lua_pcall(L, argc - 2, 0, 1);
  }
  if (status != LUA_OK) fprintf(stderr, "%s\n", lua_tostring(L, -1));
  lua_close(L);
  return status == LUA_OK ? 0 : 1;
}
