/*
** exception.c: as.pcall, the protected call whose failures are exceptions
** with the trace of the raise site, and the test "is this an exception?"
** that lets C skip walking a stack for an error that carries its own trace.
**
** The message handler runs where the error was raised, before the stack
** unwinds: it captures the async chain there (or takes the one the bridge
** kept when the error came out of a nested coroutine) and hands it to the
** Lua policy (hook "to_exception"), which only builds the exception. Done
** in C so that no frame of ours (an xpcall called from Lua) shows up
** between the caller and the protected function.
*/
#include "module.h"
#include "backtrace.h"
#include "bridge.h"
#include "sched.h"
#include <lauxlib.h>

/* Whether the value at idx is an instance of the class whose address
** (lua_topointer) is `cls`: its metatable, or one reached from it through
** raw __parent fields, is the class; bounded as exception.lua's class
** chains are. Reads raw fields only (no metamethod runs); needs 1 stack
** slot (it checks for more). Addresses are compared while the class is
** anchored, so equal addresses are the same table. */
static int instance_of(lua_State *L, int idx, const void *cls) {
  int top = lua_gettop(L), hops, found = 1;
  if (cls == NULL || !lua_getmetatable(L, idx)) return 0;
  /* (every class of the chain stays on the stack until the end: one
  ** settop, and rawget's result says whether the next one is a table) */
  for (hops = 1; lua_topointer(L, -1) != cls; hops++) {
    if (hops == 64 || !lua_checkstack(L, 2)) {
      found = 0;
      break;
    }
    lua_pushliteral(L, "__parent");
    if (lua_rawget(L, -2) != LUA_TTABLE) {
      found = 0;
      break;
    }
  }
  lua_settop(L, top);
  return found;
}

/* Whether the value at idx is an instance of the class at address cls. */
static int instance_of_class(lua_State *L, const void *cls, int idx) {
  if (cls == NULL || !lua_istable(L, idx)) return 0;
  if (!lua_checkstack(L, 2)) return 0;
  return instance_of(L, idx, cls);
}

int as_exception_test(lua_State *L, as_state *st, int idx) {
  return instance_of_class(L, st->exception_class, idx);
}

int as_exception_cancelled(lua_State *L, as_state *st, int idx) {
  return instance_of_class(L, st->cancelled_class, idx);
}

/* core.instance_of(value, class) -> whether value is an instance of class
** or of a subclass (exception.lua's class test, one call). */
static int exception_instance_of(lua_State *L) {
  luaL_checkany(L, 1);
  luaL_checkany(L, 2);
  lua_settop(L, 2);
  /* (only a table can be a class: another value is never an ancestor) */
  lua_pushboolean(L, lua_istable(L, 2) && instance_of(L, 1, lua_topointer(L, 2)));
  return 1;
}

/* core.set_exception_class(Exception, Cancelled): the root class
** as_exception_test knows, and the class of cancellations
** (as_exception_cancelled). */
static int exception_set_class(lua_State *L) {
  as_state *st = as_state_get(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  luaL_unref(L, LUA_REGISTRYINDEX, st->cancelled_class_ref);
  st->cancelled_class = lua_topointer(L, 2);
  st->cancelled_class_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  luaL_unref(L, LUA_REGISTRYINDEX, st->exception_class_ref);
  st->exception_class = lua_topointer(L, 1);
  st->exception_class_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

/* Pushes one entry of the rethrow list: {how = arg 2, raw = arg 3}, or
** false when there is no capture (arg 3 false). */
static void push_rethrow_entry(lua_State *L) {
  if (lua_toboolean(L, 3)) {
    lua_createtable(L, 0, 2);
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "how");
    lua_pushvalue(L, 3);
    lua_setfield(L, -2, "raw");
  } else {
    lua_pushboolean(L, 0);
  }
}

/* Upvalues of the rethrow note: the state, `kept`, and the strings it
** uses as keys (pushed from an upvalue: no string lookup per rethrow). */
enum { NOTE_KEPT = 2, NOTE_KEY_LIST, NOTE_KEY_N };

/* The rethrow note (hook on_rethrow, exception.lua): note(e, how, raw)
** counts a rethrow of exception e in its list _rethrows (n = the count),
** and keeps the first `kept` (upvalue 2) of them: {how =, raw =} for a
** capture, false for none (the trace shows the site). It runs on the
** waiter's coroutine at every wait that hands an exception on, where a Lua
** function and its calls cost more than the note itself; the list is made
** on the first rethrow, in the hash part (room for 8 keys: one allocation
** less than an array part and a hash part, for a list the waits rarely
** grow). */
static int exception_note_rethrow(lua_State *L) {
  lua_Integer n;
  lua_settop(L, 3);
  if (!lua_istable(L, 1)) return 0;
  lua_pushvalue(L, lua_upvalueindex(NOTE_KEY_LIST));
  lua_rawget(L, 1);                         /* the list: 4 */
  if (!lua_toboolean(L, 4)) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 8);
    lua_pushvalue(L, lua_upvalueindex(NOTE_KEY_LIST));
    lua_pushvalue(L, -2);
    lua_rawset(L, 1);
    n = 0;
  } else if (lua_istable(L, 4) && !lua_getmetatable(L, 4)) {
    /* the usual list (no metatable: plain indexing is raw) */
    lua_pushvalue(L, lua_upvalueindex(NOTE_KEY_N));
    if (lua_rawget(L, 4) != LUA_TNUMBER || !lua_isinteger(L, 5)) goto any_list;
    n = lua_tointeger(L, 5);
    lua_pop(L, 1);
  } else {
    goto any_list;
  }
  /* n = list.n + 1 */
  n = (lua_Integer)((lua_Unsigned)n + 1u);
  lua_pushvalue(L, lua_upvalueindex(NOTE_KEY_N));
  lua_pushinteger(L, n);
  lua_rawset(L, 4);
  if (n > lua_tointeger(L, lua_upvalueindex(NOTE_KEPT))) return 0;
  push_rethrow_entry(L);
  lua_rawseti(L, 4, n);
  return 0;
any_list:                                   /* what a Lua note would do */
  lua_settop(L, 4);
  lua_getfield(L, 4, "n");
  lua_pushinteger(L, 1);
  lua_arith(L, LUA_OPADD);                  /* 5 */
  lua_pushvalue(L, 5);
  lua_setfield(L, 4, "n");
  if (lua_compare(L, 5, lua_upvalueindex(NOTE_KEPT), LUA_OPLE)) {
    lua_pushvalue(L, 5);
    push_rethrow_entry(L);
    lua_settable(L, 4);
  }
  return 0;
}

/* core.rethrow_note(kept) -> the note function above, keeping `kept`. */
static int exception_rethrow_note(lua_State *L) {
  luaL_checkinteger(L, 1);
  lua_settop(L, 1);
  lua_pushvalue(L, AS_STATE_UPVALUE);
  lua_insert(L, 1);
  lua_pushliteral(L, "_rethrows");
  lua_pushliteral(L, "n");
  lua_pushcclosure(L, exception_note_rethrow, 4);
  return 1;
}

void as_backtrace_push_raise_site(lua_State *L, as_state *st) {
  as_walk_opts opts = AS_WALK_RAISE_SITE;
  as_backtrace_push_current(L, st, &opts);
}

/* as.pcall's message handler: an exception as it is, anything else through
** the policy with the raise site's capture. */
static int exception_handler(lua_State *L) {
  as_state *st = as_state_get(L);
  lua_settop(L, 1);
  if (as_exception_test(L, st, 1) || !as_hook_push(L, st, AS_HOOK_TO_EXCEPTION))
    return 1;
  lua_pushvalue(L, 1);
  if (!as_bridge_take_stash(L, st, st->sched ? st->sched->running : NULL, 1))
    as_backtrace_push_raise_site(L, st);
  lua_call(L, 2, 1);
  return 1;
}

/* as luaB_xpcall's finishpcall: false + error, or true + results */
static int exception_pcall_k(lua_State *L, int status, lua_KContext extra) {
  if (status != LUA_OK && status != LUA_YIELD) {
    lua_pushboolean(L, 0);
    lua_pushvalue(L, -2);
    return 2;
  }
  return lua_gettop(L) - (int)extra;
}

/* Registry key of the handler closure (made once: it carries the state, so
** traces hide its frame like every function of ours). */
static const char handler_key = 'h';

/* core.pcall(f, ...) -> true, ... | false, exception */
static int exception_pcall(lua_State *L) {
  int n = lua_gettop(L), status;
  luaL_checkany(L, 1);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &handler_key);
  lua_insert(L, 1);                 /* handler, f, args */
  lua_pushboolean(L, 1);
  lua_insert(L, 2);                 /* handler, true, f, args */
  status = lua_pcallk(L, n - 1, LUA_MULTRET, 1, 1, exception_pcall_k);
  return exception_pcall_k(L, status, 1);  /* results start after the handler */
}

void as_exception_open(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"pcall", exception_pcall}, {"set_exception_class", exception_set_class},
    {"instance_of", exception_instance_of}, {"rethrow_note", exception_rethrow_note},
    {NULL, NULL}
  };
  as_module_setfuncs(L, funcs);
  lua_pushvalue(L, AS_STATE_UPVALUE);
  lua_pushcclosure(L, exception_handler, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &handler_key);
}
