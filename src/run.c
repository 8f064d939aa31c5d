/*
** run.c: as.run(f, ...): sets up a run's scheduler, runs its loop in a
** protected call, turns the end into results or an error (the root's
** failure, a deadlock), reports unretrieved failures and ends what is left.
**
** The run is active (as_state.sched, as_sched_active) only around protected
** calls: everything that can raise happens before it is marked active or
** inside a pcall, so no error leaves a run marked active (issue 13, D1).
** The Lua-callable functions here use sched.c's prefix: they are its loop's
** entry points (crash reports show them as such).
*/
#include <string.h>

#include "sched.h"
#include "backtrace.h"
#include "bridge.h"
#include "signals.h"
#include "debuglayout.h"
#include <lauxlib.h>

#define AS_SCHED_MT "asyncstack.Scheduler"

/* Frees what the scheduler holds outside the Lua heap and its registry
** references. Idempotent: run() calls it, and so does the collector. */
static int sched_run_gc(lua_State *L) {
  as_sched *s = (as_sched *)luaL_testudata(L, 1, AS_SCHED_MT);
  void *ud;
  lua_Alloc alloc = lua_getallocf(L, &ud);
  if (s == NULL) return 0;   /* the metatable is reachable through debug.* */
  if (s->poller != NULL) s->poller->close(L, s);
  s->poller = NULL;
  as_runq_free(&s->runq, alloc, ud);
  as_timers_free(&s->timers, alloc, ud);
  as_sched_live_free(L, s);
  luaL_unref(L, LUA_REGISTRYINDEX, s->live_ref);
  s->live_ref = LUA_NOREF;
  luaL_unref(L, LUA_REGISTRYINDEX, s->names_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, s->frames_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, s->spawn_func_ref);
  s->names_ref = s->frames_ref = s->spawn_func_ref = LUA_NOREF;
  s->spawn_func = NULL;
  as_unhandled_free(L, &s->unhandled);
  return 0;
}

/* run()'s protected part: (scheduler, root fork) -> nothing when the root
** returned and every fork ended (its results stay on its thread); raises the
** root's failure, or the deadlock error when forks remain that none can
** move. */
static int sched_run_loop_protected(lua_State *L) {
  as_state *st = as_state_get(L);
  as_sched *s = (as_sched *)lua_touserdata(L, 1);
  as_fork *root = s->root;
  as_bridge_install(L, st);   /* for this run, whatever install() said */
  as_sched_loop(L, st, s);
  if (as_signals_push_interrupt(L)) return lua_error(L);   /* Ctrl-C ended it */
  if (root->status == AS_FAILED || root->status == AS_CANCELLED) {
    root->retrieved = 1;      /* run() raises it */
    as_fork_push_failure(L, 2);
    return lua_error(L);
  }
  if (root->status != AS_DONE || s->nlive > 0) {
    /* nothing can progress: every live fork waits on something that will
    ** never come. Let the policy describe them while their stacks exist. */
    if (as_hook_push(L, st, AS_HOOK_ON_DEADLOCK)) {
      as_sched_push_live_list(L, s);
      as_backtrace_push_raise_site(L, st);
      if (lua_pcall(L, 2, 1, 0) != LUA_OK) { /* the hook's own error is raised */ }
    } else {
      lua_pushliteral(L, "run: deadlock: forks remain and none can progress");
    }
    return lua_error(L);
  }
  return 0;
}

/* (state, scheduler): every failure nobody retrieved goes to on_unhandled. */
static int sched_run_report(lua_State *L) {
  as_sched *s = (as_sched *)lua_touserdata(L, 2);
  as_unhandled_report_all(L, (as_state *)lua_touserdata(L, 1), &s->unhandled);
  return 0;
}

static int sched_run(lua_State *L) {
  as_state *st = as_state_get(L);
  as_sched *s;
  as_fork *root;
  int nargs = lua_gettop(L) - 1, status, sidx, ridx;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (st->sched != NULL)
    return luaL_error(L, "run: already inside asyncstack.run() (runs do not nest)");
  s = (as_sched *)lua_newuserdatauv(L, sizeof(as_sched), 0);
  memset(s, 0, sizeof *s);
  s->live_ref = s->names_ref = s->frames_ref = s->unhandled.failed_ref = s->unhandled.pending_ref = LUA_NOREF;
  s->spawn_func_ref = LUA_NOREF;
  luaL_setmetatable(L, AS_SCHED_MT);
  sidx = lua_gettop(L);
  lua_newtable(L);
  s->live_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  as_unhandled_init(L, &s->unhandled);
  s->L = L;
  s->st = st;

  root = as_fork_new(L, 1, nargs);
  ridx = lua_gettop(L);
  as_fork_set_spawn_site(L, ridx, root, 1, NULL);
  lua_pushliteral(L, "main");
  as_fork_set_name(L, ridx, root);
  st->run_serial++;
  root->run_serial = st->run_serial;
  s->now = root->since = as_now();
  s->now_valid = 1;
  s->root = root;
  as_sched_live_add(L, s, root, ridx);
  lua_pushvalue(L, AS_STATE_UPVALUE);
  lua_pushcclosure(L, sched_run_loop_protected, 1);
  lua_pushvalue(L, sidx);
  lua_pushvalue(L, ridx);

  as_signals_run_begin(L, st);   /* Ctrl-C; may raise, so before the run is active */
  /* the run is active from here until the state is restored below, and
  ** nothing in between raises: whatever can runs in protected calls */
  st->sched = s;
  as_sched_active = s;
  as_debuglayout_register(s);   /* seen from outside (debuglayout.h) */
  status = lua_pcall(L, 2, 0, 0);
  if (lua_checkstack(L, 8)) {
    lua_pushcfunction(L, sched_run_report);       /* a light C function: no allocation */
    lua_pushvalue(L, AS_STATE_UPVALUE);
    lua_pushvalue(L, sidx);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
      if (status == LUA_OK) status = LUA_ERRRUN;   /* raise the report's error */
      else lua_pop(L, 1);                          /* keep the run's own */
    }
  }

  /* close handlers run by abandon_live see no scheduler, so they cannot block */
  st->sched = NULL;
  as_sched_active = NULL;
  as_debuglayout_unregister(s);
  as_signals_run_end();
  as_sched_abandon_live(L, st, s);
  as_bridge_clear_stash(L, st);
  /* leave the bridge as install()/uninstall() last said, even if they were
  ** called during this run */
  if (st->bridge_installed) as_bridge_install(L, st);
  else as_bridge_uninstall(L, st);
  lua_pushcfunction(L, sched_run_gc);
  lua_pushvalue(L, sidx);
  lua_call(L, 1, 0);
  if (status != LUA_OK) return lua_error(L);
  luaL_checkstack(L, root->nvalues + 4, "too many results from run");
  lua_xmove(as_fork_thread(root), L, root->nvalues);
  return root->nvalues;
}

void as_run_open(lua_State *L) {
  static const luaL_Reg funcs[] = { {"run", sched_run}, {NULL, NULL} };
  luaL_newmetatable(L, AS_SCHED_MT);
  lua_pushcfunction(L, sched_run_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  as_module_setfuncs(L, funcs);
}
