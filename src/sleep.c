/*
** sleep.c: as.sleep(seconds): the await kind that waits on the timer heap
** alone (the timer is the scheduler's; sleep registers nothing else).
*/
#include "sched.h"
#include <lauxlib.h>

static const as_await_ops sleep_ops = { AS_AWAIT_SLEEP, "sleep", NULL, NULL, NULL };

static int sleep_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  as_sched_continue(L, as_state_get(L));
  return 0;
}

static int sleep_sleep(lua_State *L) {
  as_state *st = as_state_get(L);
  lua_Number secs = luaL_checknumber(L, 1);
  as_fork *f;
  luaL_argcheck(L, secs >= 0, 1, "non-negative number expected");
  f = as_sched_enter_suspend(L, st, "sleep");
  return as_sched_suspend(L, st->sched, f, AS_SLEEPING, &sleep_ops, secs, 0, sleep_k);
}

void as_sleep_open(lua_State *L) {
  static const luaL_Reg funcs[] = { {"sleep", sleep_sleep}, {NULL, NULL} };
  as_sched_register_await(as_state_get(L), &sleep_ops);
  as_module_setfuncs(L, funcs);
}
