/*
** bridge.c: replacements for coroutine.resume, coroutine.wrap,
** coroutine.close and debug.traceback that keep the async stack true.
**
** Outside a fork they do exactly what lcorolib/ldblib do (same results, same
** messages). Inside the running fork, resume/wrap push the resumed coroutine
** as an async frame (astack.h) and pop it when it yields back or ends. When
** the resumed coroutine instead yields to the scheduler (the fork's
** suspend_pending is set), the frame stays and the bridge yields its own
** coroutine with a continuation: the suspension travels up to the fork's
** root, and on wake-up each continuation resumes the coroutine above it.
** That is how OpenResty bridges its light threads; it keeps C stack use equal
** to the nesting depth, never to the number of suspensions.
**
** Upvalues: every bridged function has the module state as upvalue 1 (like
** every core function, module.h), except the function coroutine.wrap
** returns: there upvalue 1 is the coroutine, as in lcorolib (code reads a
** wrap's thread with debug.getupvalue(g, 1)), and the state is upvalue 2
** (as_bridge_state_upvalue tells as_is_internal_function so).
*/
#include <string.h>
#include "bridge.h"
#include "sched.h"
#include "backtrace.h"
#include <lauxlib.h>

enum { BRIDGE_RESUME, BRIDGE_WRAP };

/* The state upvalue of the running bridged function: a wrap closure keeps
** the coroutine in upvalue 1 (see the top of this file). */
#define WRAP_THREAD_UPVALUE lua_upvalueindex(1)
#define WRAP_STATE_UPVALUE lua_upvalueindex(2)

static as_state *bridge_state(lua_State *L, int mode) {
  return (as_state *)lua_touserdata(L, mode == BRIDGE_WRAP ? WRAP_STATE_UPVALUE
                                                           : AS_STATE_UPVALUE);
}

/* True when `co` is suspended inside one of our blocking calls (its level 0 is
** a core function): it belongs to a suspended fork and only that fork's
** wake-up may resume it. bridge_yield is one of those only when it made a
** fork-level yield (as.yield()), which it marks by leaving fork_yield_mark
** in its stack slot 1; a plain yield (inside a coroutine the fork resumed)
** leaves no values there once the resumer has taken the yielded ones. */
static int bridge_yield(lua_State *L);
static const char fork_yield_mark = 'y';

static int bridge_wrap_call(lua_State *L);

static int is_parked(lua_State *co, as_state *st) {
  lua_Debug ar;
  lua_CFunction fn;
  int parked = 0;
  if (st->sched == NULL || lua_status(co) != LUA_YIELD) return 0;
  if (!lua_getstack(co, 0, &ar) || !lua_checkstack(co, 2)) return 0;
  lua_getinfo(co, "f", &ar);
  fn = lua_tocfunction(co, -1);
  if (fn == bridge_yield)
    parked = lua_touserdata(co, 1) == (void *)&fork_yield_mark;
  else if (fn == bridge_wrap_call)   /* yields only to pass a suspension up */
    parked = 1;
  else if (fn != NULL && lua_getupvalue(co, -1, 1) != NULL) {
    parked = lua_touserdata(co, -1) == (void *)st;   /* a core function */
    lua_pop(co, 1);
  }
  lua_pop(co, 1);
  return parked;
}

static int bridge_finish(lua_State *L, lua_State *co, int status, int nres,
                         int mode, as_fork *f);

/* Keeps the raw trace (at raw_idx) of the error value at val_idx raised in
** the running fork: when that value ends the fork or reaches as.pcall, its
** trace is the raise site inside the coroutine, not the place the bridge
** re-raised it (see bridge.h). */
static void stash_error_trace(lua_State *L, as_state *st, int raw_idx, int val_idx) {
  as_fork *f = st->sched ? st->sched->running : NULL;
  if (f == NULL) return;
  raw_idx = lua_absindex(L, raw_idx);
  val_idx = lua_absindex(L, val_idx);
  lua_rawgeti(L, LUA_REGISTRYINDEX, st->stash_ref);
  lua_pushvalue(L, val_idx);
  lua_setfield(L, -2, "value");
  lua_pushvalue(L, raw_idx);
  lua_setfield(L, -2, "raw");
  lua_pop(L, 1);
  st->stash_live = 1;
  st->stash_fork = f->id;
  st->stash_run = st->run_serial;
}

void as_bridge_clear_stash(lua_State *L, as_state *st) {
  if (!st->stash_live) return;
  st->stash_live = 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, st->stash_ref);
  lua_pushnil(L);
  lua_setfield(L, -2, "value");
  lua_pushnil(L);
  lua_setfield(L, -2, "raw");
  lua_pop(L, 1);
}

int as_bridge_take_stash(lua_State *L, as_state *st, const as_fork *f, int err_idx) {
  int same;
  if (!st->stash_live || f == NULL || st->stash_fork != f->id ||
      st->stash_run != st->run_serial)
    return 0;
  err_idx = lua_absindex(L, err_idx);
  lua_rawgeti(L, LUA_REGISTRYINDEX, st->stash_ref);
  lua_getfield(L, -1, "value");
  same = lua_rawequal(L, -1, err_idx);
  lua_pop(L, 1);
  if (!same) {
    lua_pop(L, 1);
    return 0;
  }
  lua_getfield(L, -1, "raw");
  lua_remove(L, -2);
  as_bridge_clear_stash(L, st);
  return 1;
}

/* The resume failed with the message on top of L (and, when raw_idx is not
** 0, the raw trace of the failure at raw_idx): resume returns false +
** message; wrap closes a failed coroutine and raises, prefixing the caller's
** position to string messages (lcorolib's auxwrap). */
static int bridge_fail(lua_State *L, as_state *st, lua_State *co, int mode,
                       int raw_idx) {
  if (mode == BRIDGE_RESUME) {
    if (raw_idx) {
      stash_error_trace(L, st, raw_idx, -1);
      lua_remove(L, raw_idx);
    }
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
  } else {
    int stat = lua_status(co);
    if (stat != LUA_OK && stat != LUA_YIELD) {  /* error in the coroutine */
      stat = lua_resetthread(co);               /* close its tbc variables */
      lua_xmove(co, L, 1);
    }
    if (stat != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
      luaL_where(L, 1);
      lua_insert(L, -2);
      lua_concat(L, 2);
    }
    if (raw_idx) {
      stash_error_trace(L, st, raw_idx, -1);
      lua_remove(L, raw_idx);
    }
    return lua_error(L);
  }
}

static lua_State *bridge_co(lua_State *L, int mode) {
  return mode == BRIDGE_RESUME ? lua_tothread(L, 1)
                               : lua_tothread(L, WRAP_THREAD_UPVALUE);
}

/* Continuation: the fork woke up; resume the coroutine above us, which is
** still suspended inside the blocking call, and carry on as after any resume. */
static int bridge_continue(lua_State *L, int status, lua_KContext ctx) {
  int mode = (int)ctx, nres = 0;
  as_state *st = bridge_state(L, mode);
  lua_State *co = bridge_co(L, mode);
  as_fork *f = st->sched ? st->sched->running : NULL;
  (void)status;
  status = lua_resume(co, L, 0, &nres);
  return bridge_finish(L, co, status, nres, mode, f);
}

/* Body of the raise-site capture, run by capture_raise_site under lua_pcall:
** (state, fork, error value) -> raw trace. The error came up either from co
** itself (its stack is intact and co still on the async stack: walk it) or
** from a coroutine further in, which kept a nearer raise site in the stash. */
static int capture_body(lua_State *L) {
  as_state *st = (as_state *)lua_touserdata(L, 1);
  as_fork *f = (as_fork *)lua_touserdata(L, 2);
  if (!as_bridge_take_stash(L, st, f, 3)) {
    as_walk_opts opts = AS_WALK_RAISE_SITE;
    as_backtrace_push_fork(L, st, f, &opts);
  }
  return 1;
}

static const char capture_key = 'c';   /* registry: the capture_body closure */

/* co failed in fork f with its error on top of L: pushes the raw trace of
** the raise site below the error and returns its index, or returns 0 when
** the capture failed (memory; a hook raising), which leaves the error alone:
** the trace is best effort, the error and the async stack are not. Pops co's
** async frame in every case: a frame left behind would keep the fork from
** ever blocking again (issue 13 D4). */
static int capture_raise_site(lua_State *L, as_state *st, as_fork *f) {
  int status = -1;                                    /* not run */
  if (lua_checkstack(L, 5)) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &capture_key);  /* internal: hidden */
    lua_pushlightuserdata(L, st);
    lua_pushlightuserdata(L, f);
    lua_pushvalue(L, -4);                             /* the error */
    status = lua_pcall(L, 3, 1, 0);                   /* nothing escapes */
  }
  as_astack_pop(&f->astack);
  if (status != LUA_OK) {
    if (status != -1) lua_pop(L, 1);                  /* the capture's error */
    return 0;
  }
  lua_insert(L, -2);        /* raw below the error */
  return lua_gettop(L) - 1;
}

/* Turns the outcome of lua_resume(co) into the results of resume or wrap,
** exactly as lcorolib's auxresume/luaB_coresume/auxwrap do. */
static int bridge_finish(lua_State *L, lua_State *co, int status, int nres,
                         int mode, as_fork *f) {
  as_state *st;
  int raw_idx = 0;
  if (status == LUA_OK || status == LUA_YIELD) {
    if (f != NULL) {
      if (status == LUA_YIELD && f->suspend_pending) {
        /* a scheduler suspension: leave co on the async stack, pass it up */
        lua_pop(co, nres);
        return lua_yieldk(L, 0, (lua_KContext)mode, bridge_continue);
      }
      as_astack_pop(&f->astack);
    }
    if (!lua_checkstack(L, nres + 1)) {
      lua_pop(co, nres);
      lua_pushliteral(L, "too many results to resume");
      return bridge_fail(L, bridge_state(L, mode), co, mode, 0);
    }
    lua_xmove(co, L, nres);
    if (mode == BRIDGE_WRAP) return nres;
    lua_pushboolean(L, 1);
    lua_insert(L, -(nres + 1));
    return nres + 1;
  }
  /* co failed: move its error object over first (never push onto co, which
  ** may have no room left: lua_xmove only takes from it) */
  st = bridge_state(L, mode);
  if (!lua_checkstack(L, 2)) {
    if (f != NULL) as_astack_pop(&f->astack);
    return luaL_error(L, "stack overflow");
  }
  lua_xmove(co, L, 1);
  if (f != NULL) {
    if (as_exception_test(L, st, -1)) as_astack_pop(&f->astack);  /* carries its trace */
    else raw_idx = capture_raise_site(L, st, f);
  }
  return bridge_fail(L, st, co, mode, raw_idx);
}

static int bridge_start(lua_State *L, as_state *st, lua_State *co, int narg,
                        int mode) {
  as_fork *f = as_sched_fork_of(st, L);
  int status, nres = 0;
  if (st->stash_live) as_bridge_clear_stash(L, st);   /* the last error was handled */
  if (!lua_checkstack(co, narg)) {
    lua_pushliteral(L, "too many arguments to resume");
    return bridge_fail(L, st, co, mode, 0);
  }
  if (is_parked(co, st)) {
    lua_pushliteral(L, "cannot resume a coroutine that is blocked in an "
                       "asyncstack call of a suspended fork");
    return bridge_fail(L, st, co, mode, 0);
  }
  if (f != NULL) {
    as_sched_reserve_frame(L, st->sched, f);   /* may raise: before anything moves */
    as_astack_push(&f->astack, co);
  }
  lua_xmove(L, co, narg);
  status = lua_resume(co, L, narg, &nres);
  return bridge_finish(L, co, status, nres, mode, f);
}

static int bridge_resume(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  luaL_argexpected(L, co, 1, "thread");  /* lcorolib 5.4.4 says "thread" */
  return bridge_start(L, as_state_get(L), co, lua_gettop(L) - 1, BRIDGE_RESUME);
}

static int bridge_wrap_call(lua_State *L) {
  lua_State *co = lua_tothread(L, WRAP_THREAD_UPVALUE);
  return bridge_start(L, bridge_state(L, BRIDGE_WRAP), co, lua_gettop(L),
                      BRIDGE_WRAP);
}

int as_bridge_state_upvalue(lua_CFunction fn) {
  return fn == bridge_wrap_call ? 2 : 1;
}

static int bridge_wrap(lua_State *L) {
  lua_State *co;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  co = lua_newthread(L);                 /* upvalue 1: the coroutine */
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushvalue(L, AS_STATE_UPVALUE);    /* upvalue 2: the state */
  lua_pushcclosure(L, bridge_wrap_call, 2);
  return 1;
}

/* coroutine.yield: Lua's own, except at a fork's own level (its root
** coroutine, not a coroutine resumed inside it), where there is nobody to
** yield to but the scheduler: there it is as.yield(), an await point like
** any other (cancel reaches it), and the mark in slot 1 makes is_parked
** refuse other forks' resume/close as at as.yield(). Values yielded there
** are dropped, and it returns nothing, as the scheduler resumes forks with
** no values. */
static int bridge_yield(lua_State *L) {
  as_state *st = as_state_get(L);
  as_fork *f = as_sched_fork_of(st, L);
  if (f != NULL && f->astack.depth == 1) {
    lua_settop(L, 0);
    lua_pushlightuserdata(L, (void *)&fork_yield_mark);
    return as_sched_yield(L, st, "yield");
  }
  return lua_yield(L, lua_gettop(L));
}

/* coroutine.close, refusing coroutines parked by a suspended fork. */
static int bridge_close(lua_State *L) {
  as_state *st = as_state_get(L);
  lua_State *co = lua_tothread(L, 1);
  int status;
  luaL_argexpected(L, co, 1, "thread");  /* lcorolib 5.4.4 says "thread" */
  if (is_parked(co, st))
    return luaL_error(L, "cannot close a coroutine that is blocked in an "
                         "asyncstack call of a suspended fork");
  if (L == co) return luaL_error(L, "cannot close a %s coroutine", "running");
  status = lua_status(co);
  if (status == LUA_OK) {
    lua_Debug ar;
    if (lua_getstack(co, 0, &ar))
      return luaL_error(L, "cannot close a %s coroutine", "normal");
  }
  status = lua_resetthread(co);
  if (status == LUA_OK) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushboolean(L, 0);
  lua_xmove(co, L, 1);
  return 2;
}

/* debug.traceback: async-aware for the calling thread inside a fork. */
static int bridge_traceback(lua_State *L) {
  lua_State *L1 = lua_tothread(L, 1);
  if (L1 != NULL && L1 != L) {
    /* another thread: exactly what ldblib does */
    const char *msg = lua_tostring(L, 2);
    if (msg == NULL && !lua_isnoneornil(L, 2)) lua_pushvalue(L, 2);
    else luaL_traceback(L, L1, msg, (int)luaL_optinteger(L, 3, 0));
    return 1;
  }
  return as_backtrace_traceback(L, L1 != NULL ? 2 : 1);
}

/* ------------------------------------------------------ install/uninstall */

static const struct { const char *lib, *name; } bridged_slots[] = {
  {"coroutine", "resume"}, {"coroutine", "wrap"}, {"coroutine", "close"},
  {"coroutine", "yield"},
  {"debug", "traceback"}, {NULL, NULL}
};

/* Pushes the bridge table {originals = {}, bridged = {}}. */
static void push_bridge_table(lua_State *L, as_state *st) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, st->originals_ref);
}

/* Pushes the library tables named `lib` that the bridge patches and returns
** how many: the one in package.loaded (what require returns, even after the
** program dropped the global, as Lua's test suite does with `debug = nil`)
** and the global one when it is another table. */
static int push_lib_tables(lua_State *L, const char *lib) {
  int n = 0;
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, lib) == LUA_TTABLE) n++;
  else lua_pop(L, 1);
  lua_remove(L, -1 - n);
  if (lua_getglobal(L, lib) == LUA_TTABLE && !(n == 1 && lua_rawequal(L, -1, -2))) n++;
  else lua_pop(L, 1);
  return n;
}

/* In the library table at lib_idx, puts ours (install) or the original
** (uninstall) for slot `name`, whose bridge entry {original, ours} is at
** entry_idx. Install leaves a slot that already holds ours; uninstall
** leaves one the program replaced after install. */
static void patch_slot(lua_State *L, int lib_idx, int entry_idx,
                       const char *name, int install) {
  lua_rawgeti(L, entry_idx, 2);                    /* ours */
  lua_getfield(L, lib_idx, name);                  /* current */
  if (install && !lua_rawequal(L, -1, -2)) {
    lua_rawseti(L, entry_idx, 1);                  /* remember the original */
    lua_setfield(L, lib_idx, name);                /* lib[name] = ours */
    return;
  }
  if (!install && lua_rawequal(L, -1, -2)) {
    lua_rawgeti(L, entry_idx, 1);                  /* original */
    lua_setfield(L, lib_idx, name);
  }
  lua_pop(L, 2);
}

static void patch_all(lua_State *L, as_state *st, int install) {
  int i, base = lua_gettop(L);
  push_bridge_table(L, st);
  for (i = 0; bridged_slots[i].lib; i++) {
    int j, n = push_lib_tables(L, bridged_slots[i].lib);
    lua_getfield(L, base + 1, bridged_slots[i].name);   /* {original, ours} */
    for (j = 0; j < n; j++)
      patch_slot(L, base + 2 + j, lua_gettop(L), bridged_slots[i].name, install);
    lua_settop(L, base + 1);
  }
  lua_settop(L, base);
}

void as_bridge_install(lua_State *L, as_state *st) {
  patch_all(L, st, 1);
}

void as_bridge_uninstall(lua_State *L, as_state *st) {
  patch_all(L, st, 0);
}

static int bridge_l_install(lua_State *L) {
  as_state *st = as_state_get(L);
  as_bridge_install(L, st);
  st->bridge_installed = 1;
  return 0;
}

static int bridge_l_uninstall(lua_State *L) {
  as_state *st = as_state_get(L);
  st->bridge_installed = 0;
  /* inside run() the bridge stays until run returns */
  if (st->sched == NULL) as_bridge_uninstall(L, st);
  return 0;
}

void as_bridge_open(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"install", bridge_l_install}, {"uninstall", bridge_l_uninstall},
    {NULL, NULL}
  };
  static const luaL_Reg bridged[] = {
    {"resume", bridge_resume}, {"wrap", bridge_wrap}, {"close", bridge_close},
    {"yield", bridge_yield},
    {"traceback", bridge_traceback}, {NULL, NULL}
  };
  as_state *st = as_state_get(L);
  int i;
  as_module_setfuncs(L, funcs);
  lua_newtable(L);
  st->stash_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  /* bridge table: name -> {original (filled at install), bridged function} */
  lua_newtable(L);
  for (i = 0; bridged[i].name; i++) {
    lua_createtable(L, 2, 0);
    lua_setfield(L, -2, bridged[i].name);
  }
  st->originals_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  /* the bridged closures need the state upvalue: build them via setfuncs */
  lua_newtable(L);
  as_module_setfuncs(L, bridged);
  /* the raise-site capture, called under lua_pcall on a failure */
  lua_pushvalue(L, AS_STATE_UPVALUE);
  lua_pushcclosure(L, capture_body, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &capture_key);
  push_bridge_table(L, st);
  for (i = 0; bridged[i].name; i++) {
    lua_getfield(L, -1, bridged[i].name);
    lua_getfield(L, -3, bridged[i].name);
    lua_rawseti(L, -2, 2);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lua_setfield(L, -2, "bridged");  /* core.bridged: the replacement functions */
}
