/*
** failalloc.c: a Lua host whose allocator fails on request, for the
** allocation-failure regression specs of the scheduler (issue 13 D2, D3).
**
**   failalloc SCRIPT [ARGS...]
**
** runs SCRIPT like lua5.4 does (LUA_PATH/LUA_CPATH honoured, `arg` set) with
** one extra global:
**   failalloc(n)  the n-th allocation from now (n >= 1) fails, once
**   failalloc()   disarms; returns true when the armed failure happened
** Only requests that need new memory count (a new block or a bigger one);
** frees and shrinks always succeed, as Lua requires.
*/
#include <stdio.h>
#include <stdlib.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

typedef struct failstate {
  long countdown;   /* fail when it reaches 0; < 0: disarmed */
  int fired;
} failstate;

static void *failing_alloc(void *ud, void *p, size_t osize, size_t nsize) {
  failstate *fs = (failstate *)ud;
  if (nsize == 0) {
    free(p);
    return NULL;
  }
  if ((p == NULL || nsize > osize) && fs->countdown > 0 && --fs->countdown == 0) {
    fs->countdown = -1;
    fs->fired = 1;
    return NULL;
  }
  return realloc(p, nsize);
}

static int failalloc_arm(lua_State *L) {
  failstate *fs = (failstate *)lua_touserdata(L, lua_upvalueindex(1));
  if (lua_isnoneornil(L, 1)) {
    fs->countdown = -1;
    lua_pushboolean(L, fs->fired);
    fs->fired = 0;
    return 1;
  }
  fs->countdown = (long)luaL_checkinteger(L, 1);
  luaL_argcheck(L, fs->countdown >= 1, 1, "n >= 1 expected");
  fs->fired = 0;
  return 0;
}

static int failalloc_main(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1), i;
  char **argv = (char **)lua_touserdata(L, 2);
  luaL_openlibs(L);
  lua_pushlightuserdata(L, lua_touserdata(L, 3));
  lua_pushcclosure(L, failalloc_arm, 1);
  lua_setglobal(L, "failalloc");
  lua_createtable(L, argc, 1);
  for (i = 1; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - 1);
  }
  lua_setglobal(L, "arg");
  if (luaL_loadfile(L, argv[1]) != LUA_OK) return lua_error(L);
  for (i = 2; i < argc; i++) lua_pushstring(L, argv[i]);
  lua_call(L, argc - 2, 0);
  return 0;
}

int main(int argc, char **argv) {
  failstate fs = { -1, 0 };
  lua_State *L = lua_newstate(failing_alloc, &fs);
  int status;
  if (L == NULL || argc < 2) {
    fprintf(stderr, "usage: failalloc SCRIPT [ARGS...]\n");
    return 2;
  }
  lua_pushcfunction(L, failalloc_main);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  lua_pushlightuserdata(L, &fs);
  status = lua_pcall(L, 3, 0, 0);
  if (status != LUA_OK) {
    const char *msg = luaL_tolstring(L, -1, NULL);   /* an Exception has __tostring */
    fprintf(stderr, "failalloc: %s\n", msg);
  }
  lua_close(L);
  return status == LUA_OK ? 0 : 1;
}
