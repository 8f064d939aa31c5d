/*
** introspect.c: what the Lua policy needs to list every fork and dump the
** scheduler (as.tasks, as.dump), and dump-on-signal.
**
** Dump on signal: the handler only sets a flag and, when a fork is running,
** hooks its innermost coroutine (lua_sethook is the one Lua call that is safe
** in a signal handler; lua.c does the same for SIGINT). The dump itself is
** made at the next safe point: the hook, when that fork runs Lua code (a
** fork spinning in a pure-Lua loop included), or the scheduler loop, between
** resumes or when its idle sleep is interrupted by the signal.
*/
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <string.h>

#include "introspect.h"
#include "sched.h"
#include <lauxlib.h>

/* Process-wide, as signals are: the request flag, the state whose Lua hook
** prints the dump, and the hook the user had on the coroutine we hooked. */
static volatile sig_atomic_t dump_requested = 0;
static as_state *dump_state = NULL;
static lua_State *hooked_thread = NULL;
static lua_Hook saved_hook = NULL;
static int saved_mask = 0, saved_count = 0;
static int dump_signal = 0;
static struct sigaction previous_action;

int as_introspect_dump_pending(void) {
  return dump_requested != 0;
}

void as_introspect_dump_now(lua_State *L, as_state *st) {
  dump_requested = 0;
  if (st != NULL && as_hook_push(L, st, AS_HOOK_DUMP_SIGNAL)) {
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) lua_pop(L, 1);
  }
}

static void dump_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  if (L == hooked_thread) {
    lua_sethook(L, saved_hook, saved_mask, saved_count);
    hooked_thread = NULL;
  }
  if (dump_requested) as_introspect_dump_now(L, dump_state);
}

static void on_dump_signal(int signo) {
  as_sched *s = as_sched_active;
  (void)signo;
  dump_requested = 1;
  if (s != NULL && s->running != NULL && hooked_thread == NULL) {
    lua_State *th = as_astack_top(&s->running->astack);
    if (th != NULL) {
      saved_hook = lua_gethook(th);
      saved_mask = lua_gethookmask(th);
      saved_count = lua_gethookcount(th);
      hooked_thread = th;
      lua_sethook(th, dump_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
    }
  }
}

static const struct { const char *name; int signo; } dump_signals[] = {
  {"SIGUSR1", SIGUSR1}, {"SIGUSR2", SIGUSR2}, {"SIGHUP", SIGHUP},
  {"SIGQUIT", SIGQUIT}, {"SIGINT", SIGINT}, {"SIGTERM", SIGTERM},
  {"SIGWINCH", SIGWINCH}, {NULL, 0}
};

/* core.dump_on_signal([name | false]): installs the dump handler for one
** signal (default SIGUSR1); false removes it. Returns the signal's name. */
static int introspect_dump_on_signal(lua_State *L) {
  const char *name = "SIGUSR1";
  int signo = 0, i;
  struct sigaction sa;
  if (lua_isboolean(L, 1) && !lua_toboolean(L, 1)) {
    if (dump_signal != 0) sigaction(dump_signal, &previous_action, NULL);
    dump_signal = 0;
    dump_state = NULL;
    return 0;
  }
  if (!lua_isnoneornil(L, 1)) {
    if (lua_type(L, 1) != LUA_TSTRING) luaL_typeerror(L, 1, "string");
    name = lua_tostring(L, 1);
  }
  for (i = 0; dump_signals[i].name != NULL; i++) {
    if (strcmp(name, dump_signals[i].name) == 0 ||
        strcmp(name, dump_signals[i].name + 3) == 0) {
      signo = dump_signals[i].signo;
      name = dump_signals[i].name;
    }
  }
  if (signo == 0)
    return luaL_argerror(L, 1, lua_pushfstring(L, "unknown or unsupported signal '%s' "
                         "(use SIGUSR1, SIGUSR2, SIGHUP, SIGQUIT, SIGINT, SIGTERM or SIGWINCH)", name));
  if (dump_signal != 0 && dump_signal != signo)
    sigaction(dump_signal, &previous_action, NULL);
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_dump_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;   /* no SA_RESTART: an idle scheduler's sleep must wake */
  if (sigaction(signo, &sa, dump_signal == signo ? NULL : &previous_action) != 0)
    return luaL_error(L, "dump_on_signal: cannot install a handler for %s", name);
  dump_signal = signo;
  dump_state = as_state_get(L);
  lua_pushstring(L, name);
  return 1;
}

/* core.scheduler_info() -> nil outside run, else {forks = {live forks by id},
** runq = n, timers = n, running = id | nil} */
static int introspect_scheduler_info(lua_State *L) {
  as_state *st = as_state_get(L);
  as_sched *s = st->sched;
  if (s == NULL) {
    lua_pushnil(L);
    return 1;
  }
  lua_createtable(L, 0, 4);
  as_sched_push_live_list(L, s);
  lua_setfield(L, -2, "forks");
  lua_pushinteger(L, (lua_Integer)s->rq_len);
  lua_setfield(L, -2, "runq");
  lua_pushinteger(L, s->heap_len);
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
