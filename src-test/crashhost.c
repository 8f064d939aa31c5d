/*
** crashhost.c: a Lua 5.4.4 host (Lua compiled in from ../shared/lua, see the
** Makefile) for the spec that the crash handler's async section makes no Lua
** API call and no allocation inside the signal handler (issue 14 item 4).
**
** Lua is compiled with lua_lock(L) defined as crashhost_lua_lock(L): every
** API function takes that lock on entry. The Lua allocator and the lock both
** end the process with status 97 and a message once `armed` is set, which
** crash_now() does right before it dereferences NULL: from then on only the
** crash handler runs. Controls (api_after_arm, alloc_after_arm) show that
** the host does catch a call.
**
**   crashhost SCRIPT [MODE]   runs SCRIPT with the globals crash_now,
**                             api_after_arm, alloc_after_arm and
**                             CRASHHOST_MODE (MODE, default "crash")
*/
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

void crashhost_lua_lock(void *L);

#define MAKE_LIB
#include "onelua.c"

static volatile sig_atomic_t armed;

static void violation(const char *what) {
  static const char pre[] = "crashhost: ";
  ssize_t r = write(2, pre, sizeof pre - 1);
  r = write(2, what, strlen(what));
  (void)r;
  _exit(97);
}

void crashhost_lua_lock(void *L) {
  (void)L;
  if (armed) violation("a Lua API call after the signal\n");
}

static void *host_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  (void)osize;
  if (armed) violation("a Lua allocation after the signal\n");
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  return realloc(ptr, nsize);
}

static int crash_now(lua_State *L) {
  (void)L;
  armed = 1;
  *(volatile int *)(uintptr_t)0 = 0;   /* SIGSEGV: the crash handler runs */
  return 0;
}

static int api_after_arm(lua_State *L) {
  armed = 1;
  lua_pushnil(L);                      /* the control: must be caught */
  return 1;
}

static int alloc_after_arm(lua_State *L) {
  void *p;
  (void)L;
  armed = 1;
  p = host_alloc(NULL, NULL, 0, 16);   /* the control: must be caught */
  free(p);
  return 0;
}

int main(int argc, char **argv) {
  lua_State *L;
  int status;
  if (argc < 2) {
    fprintf(stderr, "usage: crashhost SCRIPT\n");
    return 2;
  }
  L = lua_newstate(host_alloc, NULL);
  luaL_openlibs(L);
  lua_register(L, "crash_now", crash_now);
  lua_register(L, "api_after_arm", api_after_arm);
  lua_register(L, "alloc_after_arm", alloc_after_arm);
  lua_pushstring(L, argc > 2 ? argv[2] : "crash");
  lua_setglobal(L, "CRASHHOST_MODE");
  status = luaL_dofile(L, argv[1]);
  if (status != LUA_OK) {
    fprintf(stderr, "crashhost: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return 1;
  }
  lua_close(L);
  return 0;
}
