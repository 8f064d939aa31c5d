/*
** unhandled.c: reporting failures nobody retrieved (see unhandled.h).
*/
#include "unhandled.h"
#include "sched.h"
#include <lauxlib.h>

void as_unhandled_init(lua_State *L, as_unhandled *u) {
  u->failed_ref = u->pending_ref = LUA_NOREF;
  u->pending = 0;
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  u->failed_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_newtable(L);
  u->pending_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

void as_unhandled_free(lua_State *L, as_unhandled *u) {
  luaL_unref(L, LUA_REGISTRYINDEX, u->failed_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, u->pending_ref);
  u->failed_ref = u->pending_ref = LUA_NOREF;
  u->pending = 0;
}

void as_unhandled_add(lua_State *L, as_unhandled *u, int ud_idx) {
  ud_idx = lua_absindex(L, ud_idx);
  lua_rawgeti(L, LUA_REGISTRYINDEX, u->failed_ref);
  lua_pushvalue(L, ud_idx);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

void as_unhandled_forget(lua_State *L, as_state *st, int ud_idx) {
  as_fork *f = (as_fork *)lua_touserdata(L, ud_idx);
  as_sched *s = st->sched;
  /* a fork of an ended run: its set is gone */
  if (s == NULL || f == NULL || as_fork_sched(st, f) != s || !lua_checkstack(L, 3)) return;
  ud_idx = lua_absindex(L, ud_idx);
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->unhandled.failed_ref);
  lua_pushvalue(L, ud_idx);
  lua_pushnil(L);
  lua_rawset(L, -3);      /* a nil never makes a new key: no allocation */
  lua_pop(L, 1);
}

/* Calls the on_unhandled hook with (error, {id =, name =}) of the failed
** fork at ud_idx, protected: a failing handler must not stop the loop. */
static void call_hook(lua_State *L, as_state *st, int ud_idx) {
  as_fork *f = (as_fork *)lua_touserdata(L, ud_idx);
  ud_idx = lua_absindex(L, ud_idx);
  f->reported = 1;
  if (!as_hook_push(L, st, AS_HOOK_ON_UNHANDLED)) return;
  as_fork_push_failure(L, ud_idx);
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, f->id);
  lua_setfield(L, -2, "id");
  as_fork_push_name(L, ud_idx);
  lua_setfield(L, -2, "name");
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) lua_pop(L, 1);
}

void as_unhandled_report(lua_State *L, as_state *st, int ud_idx) {
  as_fork *f = (as_fork *)lua_touserdata(L, ud_idx);
  as_sched *s = st->sched;
  ud_idx = lua_absindex(L, ud_idx);
  if (s == NULL || as_fork_sched(st, f) != s) {
    call_hook(L, st, ud_idx);
    return;
  }
  /* inside a finalizer of the running loop: queue it (a fresh table holds
  ** the error and the fork's id and name; the fork itself is going away) */
  f->reported = 1;
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->unhandled.pending_ref);
  lua_createtable(L, 0, 3);
  as_fork_push_failure(L, ud_idx);
  lua_setfield(L, -2, "error");
  lua_pushinteger(L, f->id);
  lua_setfield(L, -2, "id");
  as_fork_push_name(L, ud_idx);
  lua_setfield(L, -2, "name");
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  lua_pop(L, 1);
  s->unhandled.pending = 1;
}

/* The queue is swapped for a fresh one before any hook runs: a handler
** allocates, collections run, and the finalizers they run queue more
** reports, which go to the fresh queue and are delivered by the next round
** of this loop. */
void as_unhandled_drain(lua_State *L, as_state *st, as_unhandled *u) {
  while (u->pending) {
    lua_Integer i, n;
    int queue;
    u->pending = 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, u->pending_ref);
    queue = lua_gettop(L);
    lua_newtable(L);
    lua_rawseti(L, LUA_REGISTRYINDEX, u->pending_ref);
    n = (lua_Integer)lua_rawlen(L, queue);   /* no holes: nothing removed here */
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, queue, i);
      if (as_hook_push(L, st, AS_HOOK_ON_UNHANDLED)) {
        lua_getfield(L, -2, "error");
        lua_pushvalue(L, -3);
        if (lua_pcall(L, 2, 0, 0) != LUA_OK) lua_pop(L, 1);
      }
      lua_pop(L, 1);
    }
    lua_settop(L, queue - 1);
  }
}

void as_unhandled_report_all(lua_State *L, as_state *st, as_unhandled *u) {
  lua_Integer i, n;
  if (u->pending) as_unhandled_drain(L, st, u);
  lua_rawgeti(L, LUA_REGISTRYINDEX, u->failed_ref);
  as_sched_push_sorted_forks(L, -1, 1);
  n = (lua_Integer)lua_rawlen(L, -1);
  for (i = 1; i <= n; i++) {
    as_fork *f;
    lua_rawgeti(L, -1, i);
    f = (as_fork *)lua_touserdata(L, -1);
    if (f->status == AS_FAILED && !f->retrieved && !f->reported)
      call_hook(L, st, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
  /* finalizers that ran during those reports queued theirs */
  if (u->pending) as_unhandled_drain(L, st, u);
}

void as_unhandled_push_unretrieved(lua_State *L, as_unhandled *u) {
  lua_Integer i, n, kept = 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, u->failed_ref);
  as_sched_push_sorted_forks(L, -1, 1);
  lua_remove(L, -2);
  n = (lua_Integer)lua_rawlen(L, -1);
  for (i = 1; i <= n; i++) {          /* compact in place, keeping id order */
    as_fork *f;
    lua_rawgeti(L, -1, i);
    f = (as_fork *)lua_touserdata(L, -1);
    if (f->status == AS_FAILED && !f->retrieved && !f->reported)
      lua_rawseti(L, -2, ++kept);
    else
      lua_pop(L, 1);
  }
  for (i = kept + 1; i <= n; i++) {
    lua_pushnil(L);
    lua_rawseti(L, -2, i);
  }
}
