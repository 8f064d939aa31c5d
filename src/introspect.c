/*
** introspect.c: what the Lua policy needs to list every fork and dump the
** scheduler (as.tasks, as.dump), and dump_on_signal's argument checking.
**
** Dump on signal: signals.c's handler only sets a flag and, when a fork is
** running, hooks its innermost coroutine. The dump itself is made at the
** next safe point: the hook, when that fork runs Lua code (a fork spinning
** in a pure-Lua loop included), or the scheduler loop, between resumes or
** when its idle sleep is interrupted by the signal.
*/
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <string.h>

#include "sched.h"
#include "signals.h"
#include <lauxlib.h>

/* Signals dump_on_signal accepts, with or without "SIG" (names: signals.c). */
static const int dump_signals[] = {
  SIGUSR1, SIGUSR2, SIGHUP, SIGQUIT, SIGINT, SIGTERM, SIGWINCH
};

/* core.dump_on_signal([name | false]): installs the dump handler for one
** signal (default SIGUSR1); false removes it. Returns the signal's name.
** The handler and its safe point are signals.c's. */
static int introspect_dump_on_signal(lua_State *L) {
  const char *name = "SIGUSR1";
  int signo = 0, i, sig;
  if (lua_isboolean(L, 1) && !lua_toboolean(L, 1)) {
    as_signals_dump_disable();
    return 0;
  }
  if (!lua_isnoneornil(L, 1)) {
    if (lua_type(L, 1) != LUA_TSTRING) luaL_typeerror(L, 1, "string");
    name = lua_tostring(L, 1);
  }
  sig = as_signals_number(name, 1);
  for (i = 0; i < (int)(sizeof dump_signals / sizeof dump_signals[0]); i++)
    if (sig == dump_signals[i]) signo = sig;
  if (signo == 0)
    return luaL_argerror(L, 1, lua_pushfstring(L, "unknown or unsupported signal '%s' "
                         "(use SIGUSR1, SIGUSR2, SIGHUP, SIGQUIT, SIGINT, SIGTERM or SIGWINCH)", name));
  name = as_signals_name(signo);
  as_signals_guard(L);                /* may raise: before any change */
  if (as_signals_dump_enable(L, signo) != 0)
    return luaL_error(L, "dump_on_signal: cannot install a handler for %s", name);
  lua_pushstring(L, name);
  return 1;
}

/* core.scheduler_info() -> nil outside run, else {forks = {live forks by id},
** failed = {failed forks nobody retrieved yet, by id}, runq = n, timers = n,
** running = id | nil} */
static int introspect_scheduler_info(lua_State *L) {
  as_state *st = as_state_get(L);
  as_sched *s = st->sched;
  if (s == NULL) {
    lua_pushnil(L);
    return 1;
  }
  lua_createtable(L, 0, 5);
  as_sched_push_live_list(L, s);
  lua_setfield(L, -2, "forks");
  as_unhandled_push_unretrieved(L, &s->unhandled);
  lua_setfield(L, -2, "failed");
  lua_pushinteger(L, (lua_Integer)s->runq.len);
  lua_setfield(L, -2, "runq");
  lua_pushinteger(L, (lua_Integer)s->timers.len);
  lua_setfield(L, -2, "timers");
  if (s->running != NULL) {
    lua_pushinteger(L, s->running->id);
    lua_setfield(L, -2, "running");
  }
  return 1;
}

void as_introspect_open(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"dump_on_signal", introspect_dump_on_signal},
    {"scheduler_info", introspect_scheduler_info}, {NULL, NULL}
  };
  as_module_setfuncs(L, funcs);
}
