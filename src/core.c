/*
** core.c: luaopen_asyncstack_core. Creates the per-module state (module.h),
** opens each concept's file, and holds the few helpers they share.
*/
#include <string.h>
#include "module.h"
#include "bridge.h"
#include "debuglayout.h"
#include "profile.h"
#include <lauxlib.h>

#define AS_STATE_MT "asyncstack.State"

void as_module_setfuncs(lua_State *L, const luaL_Reg *l) {
  for (; l->name != NULL; l++) {
    lua_pushvalue(L, AS_STATE_UPVALUE);
    lua_pushcclosure(L, l->func, 1);
    lua_setfield(L, -2, l->name);
  }
}

int as_is_internal_function(lua_State *L, as_state *st, int idx) {
  int internal = 0;
  idx = lua_absindex(L, idx);
  if (lua_iscfunction(L, idx) && lua_getupvalue(L, idx, 1) != NULL) {
    internal = lua_touserdata(L, -1) == (void *)st;
    lua_pop(L, 1);
    /* a wrap function keeps its coroutine in upvalue 1, the state in 2 */
    if (!internal && as_bridge_state_upvalue(lua_tocfunction(L, idx)) == 2 &&
        lua_getupvalue(L, idx, 2) != NULL) {
      internal = lua_touserdata(L, -1) == (void *)st;
      lua_pop(L, 1);
    }
  }
  return internal;
}

int as_is_internal_source(const as_state *st, const char *source) {
  return st->internal_prefix != NULL && source != NULL &&
         strncmp(source, st->internal_prefix, st->internal_prefix_len) == 0;
}

static const char *const hook_names[] = {
  "on_failure", "new_error", "on_deadlock", "on_rethrow", "on_unhandled",
  "to_exception", "dump_signal", NULL
};

int as_hook_push(lua_State *L, as_state *st, enum as_hook hook) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, st->hooks_ref);
  if (lua_rawgeti(L, -1, (lua_Integer)hook + 1) == LUA_TFUNCTION) {
    lua_remove(L, -2);
    return 1;
  }
  lua_pop(L, 2);
  return 0;
}

/* core.set_hook(name, fn|nil): installs a policy hook (see module.h). */
static int core_set_hook(lua_State *L) {
  as_state *st = as_state_get(L);
  int hook = luaL_checkoption(L, 1, NULL, hook_names);
  if (!lua_isnil(L, 2)) luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  lua_rawgeti(L, LUA_REGISTRYINDEX, st->hooks_ref);
  lua_insert(L, 2);
  lua_rawseti(L, 2, hook + 1);
  return 0;
}

/* core.set_internal_prefix(source_prefix): Lua frames whose source starts
** with it belong to the front end and are hidden from traces. */
static int core_set_internal_prefix(lua_State *L) {
  as_state *st = as_state_get(L);
  size_t len;
  const char *p = luaL_checklstring(L, 1, &len);
  lua_settop(L, 1);
  luaL_unref(L, LUA_REGISTRYINDEX, st->internal_prefix_ref);
  st->internal_prefix_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  st->internal_prefix = p;   /* anchored by the reference above */
  st->internal_prefix_len = len;
  as_debuglayout_set_internal_prefix(p, len);   /* for memory-level walkers */
  return 0;
}

static int core_state_gc(lua_State *L) {
  as_state *st = (as_state *)luaL_testudata(L, 1, AS_STATE_MT);
  if (st == NULL) return 0;   /* reachable through debug.*: check, don't trust */
  st->sched = NULL;
  return 0;
}

/* core.debug_layout() -> status ("verified"/"unverified"), release
** ("5.4.4", or nil when unknown), message: the published descriptor's
** load-time part (debuglayout.h). */
static int core_debug_layout(lua_State *L) {
  const as_debug_descriptor *d = as_debuglayout_get();
  uint32_t status = __atomic_load_n(&d->status, __ATOMIC_ACQUIRE);
  lua_pushstring(L, status == AS_DEBUG_VERIFIED ? "verified" : "unverified");
  if (status == AS_DEBUG_VERIFIED || status == AS_DEBUG_UNVERIFIED) {
    if (d->lua_release[0] != '\0') lua_pushstring(L, d->lua_release);
    else lua_pushnil(L);
    lua_pushstring(L, d->message);
  } else {
    lua_pushnil(L);
    lua_pushstring(L, "unverified: the layout is being checked by another thread");
  }
  return 3;
}

static int core_open_all(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"set_hook", core_set_hook},
    {"set_internal_prefix", core_set_internal_prefix},
    {"debug_layout", core_debug_layout},
    {NULL, NULL}
  };
  lua_newtable(L);
  as_module_setfuncs(L, funcs);
  as_fork_open(L);
  as_sched_open(L);
  as_run_open(L);
  as_sleep_open(L);
  as_bridge_open(L);
  as_backtrace_open(L);
  as_exception_open(L);
  as_introspect_open(L);
  as_wait_open(L);
  as_channel_open(L);
  as_fdwait_open(L);
  as_crash_open(L);
  as_profile_open(L);
  return 1;
}

/* The only exported function (the build uses -fvisibility=hidden); the
** other exported symbol is the debug descriptor (debuglayout.h). */
__attribute__((visibility("default"))) int luaopen_asyncstack_core(lua_State *L);

int luaopen_asyncstack_core(lua_State *L) {
  as_state *st;
  luaL_checkversion(L);
  /* once per process: the descriptor's Lua layout, verified (issue 14) */
  as_debuglayout_check(L);
  st = (as_state *)lua_newuserdatauv(L, sizeof(as_state), 0);
  memset(st, 0, sizeof *st);
  st->internal_prefix_ref = LUA_NOREF;
  if (luaL_newmetatable(L, AS_STATE_MT)) {
    lua_pushcfunction(L, core_state_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  lua_createtable(L, AS_HOOK_COUNT, 0);
  st->hooks_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  st->exception_class_ref = LUA_NOREF;
  st->cancelled_class_ref = LUA_NOREF;
  /* every core function gets the state as upvalue 1: open them from inside
  ** a closure that has it, so as_module_setfuncs can copy it */
  lua_pushcclosure(L, core_open_all, 1);
  lua_call(L, 0, 1);
  return 1;
}
