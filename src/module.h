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
struct as_await_ops;

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
  int ci_stepping;          /* walks step CallInfo links (walk.c) */
  int ci_stepping_ok;       /* ... which this Lua's layout allows */
  unsigned ci_previous_offset;  /* offset of CallInfo.previous (lualayout.c) */
  struct as_walk_cache *walk_cache;  /* walk.c's checked layout and call-site
                               names (anchored in the registry), or NULL */
  int exception_class_ref;  /* asyncstack.Exception (as_exception_test) */
  int cancelled_class_ref;  /* asyncstack.Cancelled (as_exception_cancelled) */
  const void *exception_class, *cancelled_class;  /* their addresses (anchored by the refs) */
  /* The metatables of our userdata types, by address (as_udata_test):
  ** each is anchored in the registry under a light-userdata key of the file
  ** that owns it, so no other object can take its address while the state
  ** lives. Set by that file's as_*_open. */
  const void *fork_mt, *fork_gc_mt;   /* fork.c: plain, and with __gc */
  /* The ops of each await kind (enum as_await, fork.h), registered by the
  ** primitive that implements it (as_sched_register_await); [0] is NULL. */
  const struct as_await_ops *await_ops[8];
} as_state;

static inline as_state *as_state_get(lua_State *L) {
  return (as_state *)lua_touserdata(L, AS_STATE_UPVALUE);
}

/* The Lua policy hooks (lua/asyncstack/init.lua sets them with
** core.set_hook(name, fn), name as in the comments). Hooks are one-way: C
** hands them everything they need, including the raw capture of the place
** concerned (backtrace.h), so no hook calls back into the walker.
**   on_failure(err, raw, fork) -> value, cancelled   what waiters of a
**          failed fork see when err is not an exception yet; cancelled
**          ends it "cancelled". An exception (it carries its own trace)
**          needs no policy call: waiters see it as it is, and it is a
**          cancellation when as_exception_cancelled says so
**   new_error(kind, message, raw) -> value   Timeout, Cancelled errors
**   on_deadlock(blocked_forks, raw) -> value the error run() raises
**   on_rethrow(err, how, raw)                wait/pwait/wait_all handed the
**          exception err on (called for exceptions only)
**   on_unhandled(err, {id =, name =})        a failure nobody retrieved
**   to_exception(err, raw) -> exception      as.pcall's message handler, for
**          errors that are not exceptions yet
**   dump_signal()                            print the dump a signal asked for */
enum as_hook {
  AS_HOOK_ON_FAILURE, AS_HOOK_NEW_ERROR, AS_HOOK_ON_DEADLOCK, AS_HOOK_ON_RETHROW,
  AS_HOOK_ON_UNHANDLED, AS_HOOK_TO_EXCEPTION, AS_HOOK_DUMP_SIGNAL,
  AS_HOOK_COUNT
};

/* Pushes hook `hook` and returns 1, or pushes nothing and returns 0 when the
** policy has not set it. */
int as_hook_push(lua_State *L, as_state *st, enum as_hook hook);

/* True when the value at idx is an asyncstack.Exception (its class was
** registered by the front end): raw metatable walk, no metamethod runs. */
int as_exception_test(lua_State *L, as_state *st, int idx);

/* True when the value at idx is an asyncstack.Cancelled (the class the
** front end registered with set_exception_class), same raw walk. */
int as_exception_cancelled(lua_State *L, as_state *st, int idx);

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

/* The userdata at idx when its metatable is `mt` or `mt2` (addresses from
** as_state), else NULL: a type check by pointer, which luaL_testudata does
** by looking the metatable up by name (a string hash and a table lookup on
** every channel operation, bench row 9). */
static inline void *as_udata_test(lua_State *L, int idx, const void *mt, const void *mt2) {
  void *p = lua_touserdata(L, idx);
  const void *m;
  if (p == NULL || !lua_getmetatable(L, idx)) return NULL;
  m = lua_topointer(L, -1);
  lua_pop(L, 1);
  return (m == mt || m == mt2) ? p : NULL;
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
