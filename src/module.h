/*
** module.h: per-module state shared by every C function of asyncstack.core.
**
** One as_state exists per `require "asyncstack.core"` in a lua_State. It is a
** full userdata passed as upvalue 1 to every core function (no globals, no
** registry lookups on hot paths). Because every core C function carries it,
** "is this C function one of ours?" is answered by comparing upvalue 1 with
** the state (see as_is_internal_function); trace walking uses that to hide
** scheduler and bridge internals.
*/
#ifndef ASYNCSTACK_MODULE_H
#define ASYNCSTACK_MODULE_H

#include <lua.h>
#include <lauxlib.h>
#include "mem.h"

#define AS_STATE_UPVALUE lua_upvalueindex(1)

struct as_sched;

typedef struct as_state {
  struct as_sched *sched;   /* the active run(), or NULL outside run() */
  unsigned run_serial;      /* increments per run(); forks remember theirs */
  int hooks_ref;            /* table of Lua policy hooks (see as_hook_push) */
  int originals_ref;        /* table of the original coroutine/debug functions */
  int stash_ref;            /* {value, raw}: raise-site trace of the last error
                               that came out of a bridged coroutine (bridge.c) */
  int stash_live;           /* stash_ref holds an entry */
  lua_Integer stash_fork;   /* ... for an error of this fork */
  unsigned stash_run;       /* ... in this run */
  int internal_prefix_ref;  /* string: source prefix of our Lua front end */
  const char *internal_prefix;  /* points into the anchored string above */
  size_t internal_prefix_len;
  int bridge_installed;     /* installed by as.install() (not just by run) */
} as_state;

static inline as_state *as_state_get(lua_State *L) {
  return (as_state *)lua_touserdata(L, AS_STATE_UPVALUE);
}

/* Pushes the Lua hook `name` set by the front end (core.set_hook) and returns
** 1, or pushes nothing and returns 0 when it is not set. Hooks are policy
** (lua/asyncstack/init.lua sets them):
**   on_failure(err, raw, fork) -> value, cancelled   what waiters of a failed
**                                         fork see; cancelled ends it "cancelled"
**   new_error(kind, message) -> value     Timeout, Cancelled, Deadlock errors
**   on_deadlock(blocked_forks) -> value   the error run() raises
**   on_rethrow(err, how)                  wait/pwait/wait_all handed err on
**   on_unhandled(err, {id =, name =})     a failure nobody retrieved
**   to_exception(err) -> exception        as.pcall's message handler
**   dump_signal()                         print the dump a signal asked for
**   format(msg, frames) -> string         optional: overrides the traceback
**                                         text backtrace.c builds itself */
int as_hook_push(lua_State *L, as_state *st, const char *name);

/* Pushes onto L a copy of the value at index idx of another thread `from`
** (suspended or ended). lua_pushvalue there needs one free slot on `from`,
** whose stack may be full (a coroutine that returned or raised leaves none):
** that slot is made first, and a failure raises in L, never in `from`
** (issue 13, D12). L needs room for one value. */
static inline void as_push_from_thread(lua_State *L, lua_State *from, int idx) {
  idx = lua_absindex(from, idx);
  if (!lua_checkstack(from, 1)) as_mem_error(L);
  lua_pushvalue(from, idx);
  lua_xmove(from, L, 1);
}

/* Registers `l` into the table on top of the stack with the state as upvalue. */
void as_module_setfuncs(lua_State *L, const luaL_Reg *l);

/* True when the value at `idx` is a C function that belongs to this module. */
int as_is_internal_function(lua_State *L, as_state *st, int idx);

/* True when a Lua source name belongs to our Lua front end. */
int as_is_internal_source(const as_state *st, const char *source);

/* Per-file open functions, called by luaopen_asyncstack_core. Each adds its
** functions to the module table on top of the stack. */
void as_fork_open(lua_State *L);
void as_sched_open(lua_State *L);
void as_run_open(lua_State *L);
void as_sleep_open(lua_State *L);
void as_bridge_open(lua_State *L);
void as_backtrace_open(lua_State *L);
void as_exception_open(lua_State *L);
void as_introspect_open(lua_State *L);
void as_wait_open(lua_State *L);
void as_channel_open(lua_State *L);
void as_fdwait_open(lua_State *L);
void as_crash_open(lua_State *L);

#endif
