/*
** wait.c: waiting for forks: as.wait, as.pwait, as.wait_all, as.wait_any.
**
** A waiting fork is linked into each target's `waiters` list through a wait
** node (fork.h): its own embedded node for wait/pwait, or an array for the
** combinators, kept as a userdata on the combinator's own stack so it lives
** exactly as long as the wait (no allocation for plain waits). When a target
** ends, the scheduler calls the waiter's target_ended op (wait_target_ended)
** per node: wait/pwait/wait_any wake at once; wait_all wakes when its last
** target ends, or at once when one fails (it fails fast, as Promise.all
** does). Waking unlinks every node left (the unlink op).
** The wait fields of a fork are as_fork.await->wait (fork.h), valid while its
** await_kind is AS_AWAIT_WAIT.
*/
#include <math.h>
#include "sched.h"
#include "wait.h"
#include "backtrace.h"
#include <lauxlib.h>

static void wait_unlink_all(as_sched *s, as_fork *f);
static void wait_describe(lua_State *L, const as_fork *f);
static void wait_target_ended(lua_State *L, as_sched *s, as_waitnode *n);

static const as_await_ops wait_ops = {
  AS_AWAIT_WAIT, "wait", wait_unlink_all, wait_describe, wait_target_ended
};

const char *as_wait_mode_name(int mode) {
  switch (mode) {
    case AS_WAIT_ALL: return "wait_all";
    case AS_WAIT_ANY: return "wait_any";
    default: return NULL;
  }
}

int as_wait_node_mode(const as_waitnode *node) {
  as_assert(node->waiter->await_kind == AS_AWAIT_WAIT);
  return node->waiter->await->wait.mode;
}

const char *as_wait_node_combinator(const as_waitnode *node) {
  return as_wait_mode_name(as_wait_node_mode(node));
}

static void node_link(as_waitnode *n) {
  as_fork *t = n->target;
  n->prev = NULL;
  n->next = t->waiters;
  if (t->waiters) t->waiters->prev = n;
  t->waiters = n;
  n->linked = 1;
}

static void node_unlink(as_waitnode *n) {
  if (!n->linked) return;
  if (n->prev) n->prev->next = n->next;
  else n->target->waiters = n->next;
  if (n->next) n->next->prev = n->prev;
  n->next = n->prev = NULL;
  n->linked = 0;
}

static void wait_unlink_all(as_sched *s, as_fork *f) {
  int i;
  (void)s;
  as_assert(f->await_kind == AS_AWAIT_WAIT);
  for (i = 0; i < f->await->wait.nnodes; i++) node_unlink(&f->await->wait.nodes[i]);
  f->await->wait.own_node.target = NULL;   /* unlinked first: it needed it */
}

/* The fork t = n->target ended: wait/pwait/wait_any wake at once; wait_all
** when its last target ended, or at once when one failed. */
static void wait_target_ended(lua_State *L, as_sched *s, as_waitnode *n) {
  as_fork *w = n->waiter, *t = n->target;
  (void)L;
  as_assert(n->linked && w->await_kind == AS_AWAIT_WAIT && w->status == AS_WAITING);
  node_unlink(n);
  w->await->wait.remaining--;
  if (w->await->wait.mode == AS_WAIT_ALL && w->await->wait.remaining > 0 && t->status == AS_DONE)
    return;                                 /* wait_all: not yet */
  w->await->wait.woken_index = n->index;
  as_sched_wake(s, w, AS_WAKE_READY);
}

/* core.fork_info: the ids of the forks it waits for, and the combinator. */
static void wait_describe(lua_State *L, const as_fork *f) {
  int i, n = 0;
  const char *combinator = as_wait_mode_name(f->await->wait.mode);
  lua_createtable(L, f->await->wait.nnodes, 1);
  for (i = 0; i < f->await->wait.nnodes; i++) {
    if (!f->await->wait.nodes[i].linked) continue;
    lua_pushinteger(L, f->await->wait.nodes[i].target->id);
    lua_rawseti(L, -2, ++n);
  }
  lua_setfield(L, -2, "waiting_for");
  if (combinator != NULL) {
    lua_pushstring(L, combinator);
    lua_setfield(L, -2, "combinator");
  }
}

/* The fork a plain wait of f waits for, or NULL. */
static as_fork *plain_wait_target(const as_fork *f) {
  return f->await_kind == AS_AWAIT_WAIT ? f->await->wait.own_node.target : NULL;
}

/* --------------------------------------------------------- wait / pwait */

/* Pushes what waiting on the ended fork at stack index `idx` gives:
** wait:  its results, or raises its error;
** pwait: true + results, or false + error.
** `how` names the call for the rethrow note ("rethrown by wait()"). */
static int deliver(lua_State *L, as_state *st, int idx, int protected, const char *how) {
  as_fork *t = (as_fork *)lua_touserdata(L, idx);
  int i, top;
  idx = lua_absindex(L, idx);
  if (t->status == AS_DONE) {
    luaL_checkstack(L, t->nvalues + 1, "too many results to wait");
    if (protected) lua_pushboolean(L, 1);
    top = lua_gettop(as_fork_thread(t));
    for (i = top - t->nvalues + 1; i <= top; i++) as_push_from_thread(L, as_fork_thread(t), i);
    return t->nvalues + protected;
  }
  t->retrieved = 1;
  as_unhandled_forget(L, st, idx);  /* (unhandled.h) */
  if (protected) lua_pushboolean(L, 0);
  as_fork_push_failure(L, idx);     /* the exception (failed or cancelled) */
  if (lua_isnil(L, -1)) {           /* abandoned by an earlier run's end */
    lua_pop(L, 1);
    lua_pushfstring(L, "fork #%I was cancelled", (LUAI_UACINT)t->id);
    as_sched_push_kind(L, st, "Cancelled", lua_tostring(L, -1));
    lua_remove(L, -2);
  }
  if (as_exception_test(L, st, -1) && as_hook_push(L, st, AS_HOOK_ON_RETHROW)) {
    lua_pushvalue(L, -2);
    lua_pushstring(L, how);
    as_backtrace_push_rethrow_site(L, st, -2);  /* remember this wait's site */
    if (lua_pcall(L, 3, 0, 0) != LUA_OK) lua_pop(L, 1);  /* a note, never a new error */
  }
  if (protected) return 2;
  return lua_error(L);
}

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  as_state *st = as_state_get(L);
  as_fork *me = as_sched_continue(L, st);
  int protected = (int)ctx;
  (void)status;
  if (me && me->wake == AS_WAKE_TIMEOUT && !as_fork_ended((as_fork *)lua_touserdata(L, 1))) {
    as_fork *t = (as_fork *)lua_touserdata(L, 1);
    const char *msg;
    as_backtrace_push_fork_where(L, st, t, 0);
    msg = lua_pushfstring(L, "%s: timed out waiting for %s",
                          protected ? "pwait" : "wait", lua_tostring(L, -1));
    if (!protected) return as_sched_raise_kind(L, st, "Timeout", msg);
    lua_pushboolean(L, 0);
    as_sched_push_kind(L, st, "Timeout", msg);
    return 2;
  }
  return deliver(L, st, 1, protected, protected ? "returned by pwait()" : "rethrown by wait()");
}

/* Checks that `t` may be waited for from this run. */
static void check_same_run(lua_State *L, as_state *st, as_fork *t, const char *name) {
  if (t->run_serial != st->run_serial)
    luaL_error(L, "%s: fork #%I belongs to another asyncstack.run()", name, (LUAI_UACINT)t->id);
}

/* Raises when `me` waiting for `t` closes a cycle of plain waits, naming it. */
static void check_cycle(lua_State *L, as_fork *me, as_fork *t, const char *name) {
  as_fork *p;
  if (t == me)
    luaL_error(L, "%s: fork #%I cannot wait for itself", name, (LUAI_UACINT)me->id);
  for (p = plain_wait_target(t); p != NULL; p = plain_wait_target(p)) {
    if (p == me) {   /* me -> t -> ... -> me */
      luaL_Buffer b;
      luaL_buffinit(L, &b);
      lua_pushfstring(L, "%s: waiting for fork #%I would close a wait cycle: fork #%I",
                      name, (LUAI_UACINT)t->id, (LUAI_UACINT)me->id);
      luaL_addvalue(&b);
      for (p = t; p != me; p = plain_wait_target(p)) {
        lua_pushfstring(L, " -> fork #%I", (LUAI_UACINT)p->id);
        luaL_addvalue(&b);
      }
      lua_pushfstring(L, " -> fork #%I", (LUAI_UACINT)me->id);
      luaL_addvalue(&b);
      luaL_pushresult(&b);
      luaL_where(L, 1);          /* positioned at the caller, as luaL_error does */
      lua_insert(L, -2);
      lua_concat(L, 2);
      lua_error(L);
    }
  }
}

static int wait_common(lua_State *L, int protected) {
  const char *name = protected ? "pwait" : "wait";
  as_state *st = as_state_get(L);
  as_fork *t = as_fork_check_st(L, st, 1);
  double timeout = as_sched_opt_timeout(L, 2);
  as_fork *me;
  struct as_wait_fields *w;
  as_sched_check_in_run(L, st, name);
  lua_settop(L, 1);
  check_same_run(L, st, t, name);
  if (as_fork_ended(t))
    return deliver(L, st, 1, protected, protected ? "returned by pwait()" : "rethrown by wait()");
  me = as_sched_enter_suspend(L, st, name);
  check_cycle(L, me, t, name);
  as_sched_reserve_await(L, st->sched, me);   /* may raise (memory) */
  /* registered: nothing below raises */
  w = &me->await->wait;
  w->own_node.waiter = me;
  w->own_node.target = t;
  w->own_node.index = 0;
  w->nodes = &w->own_node;
  w->nnodes = 1;
  w->remaining = 1;
  w->mode = AS_WAIT_ONE;
  node_link(&w->own_node);
  return as_sched_suspend(L, st->sched, me, AS_WAITING, &wait_ops, timeout,
                          (lua_KContext)protected, wait_k);
}

static int wait_wait(lua_State *L) { return wait_common(L, 0); }
static int wait_pwait(lua_State *L) { return wait_common(L, 1); }

/* ------------------------------------------------- wait_all / wait_any */

/* The fork at list[i] (1-based), already checked. */
static as_fork *list_fork(lua_State *L, int i) {
  as_fork *f;
  lua_rawgeti(L, 1, i);
  f = (as_fork *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  return f;
}

/* The outcome once enough targets ended, or -1 when still waiting.
** wait_all: a table of each fork's first result (n = count), or raises the
** first failure in list order; wait_any: index and results of the first
** ended fork in list order (or raises its failure). */
static int combinator_outcome(lua_State *L, as_state *st, int mode, int n) {
  const char *name = as_wait_mode_name(mode);
  int i, all_done = 1;
  for (i = 1; i <= n; i++) {
    as_fork *f = list_fork(L, i);
    if (!as_fork_ended(f)) {
      all_done = 0;
      continue;
    }
    if (mode == AS_WAIT_ANY && f->status == AS_DONE) {
      int nres;
      lua_pushinteger(L, i);
      lua_rawgeti(L, 1, i);
      nres = deliver(L, st, -1, 0, "");   /* results above the fork */
      lua_remove(L, -(nres + 1));         /* keep index + results */
      return nres + 1;
    }
    if (f->status != AS_DONE) {           /* fail fast, naming the fork */
      const char *note = lua_pushfstring(L, "rethrown by %s() for fork #%I (index %d)",
                                         name, (LUAI_UACINT)f->id, i);
      lua_rawgeti(L, 1, i);
      return deliver(L, st, -1, 0, note);
    }
  }
  if (mode == AS_WAIT_ALL && all_done) {
    lua_createtable(L, n, 1);
    for (i = 1; i <= n; i++) {
      as_fork *f = list_fork(L, i);
      int top = lua_gettop(as_fork_thread(f));
      if (f->nvalues > 0) {
        as_push_from_thread(L, as_fork_thread(f), top - f->nvalues + 1);
        lua_rawseti(L, -2, i);
      }
    }
    lua_pushinteger(L, n);
    lua_setfield(L, -2, "n");
    return 1;
  }
  return -1;
}

static int combinator_k(lua_State *L, int status, lua_KContext ctx) {
  as_state *st = as_state_get(L);
  int mode = (int)ctx, n = (int)lua_rawlen(L, 1), r;
  (void)status;
  as_sched_continue(L, st);
  r = combinator_outcome(L, st, mode, n);
  if (r >= 0) return r;
  {
    /* timed out: name the forks still running */
    luaL_Buffer b;
    int i, first = 1;
    luaL_buffinit(L, &b);
    lua_pushfstring(L, "%s: timed out waiting for ", as_wait_mode_name(mode));
    luaL_addvalue(&b);
    for (i = 1; i <= n; i++) {
      as_fork *f = list_fork(L, i);
      if (as_fork_ended(f)) continue;
      if (!first) luaL_addstring(&b, ", ");
      as_backtrace_push_fork_where(L, st, f, i);
      luaL_addvalue(&b);
      first = 0;
    }
    luaL_pushresult(&b);
    return as_sched_raise_kind(L, st, "Timeout", lua_tostring(L, -1));
  }
}

static int combinator(lua_State *L, int mode) {
  const char *name = as_wait_mode_name(mode);
  as_state *st = as_state_get(L);
  double timeout;
  as_fork *me;
  as_waitnode *nodes;
  int n, i, r, pending = 0;
  luaL_checktype(L, 1, LUA_TTABLE);
  timeout = as_sched_opt_timeout(L, 2);
  as_sched_check_in_run(L, st, name);
  lua_settop(L, 1);
  n = (int)lua_rawlen(L, 1);
  if (n == 0 && mode == AS_WAIT_ANY) luaL_argerror(L, 1, "list of forks is empty");
  /* checked into a private copy: the caller may change its list while we
  ** wait, and the continuation reads the list again */
  lua_createtable(L, n, 0);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    if (as_fork_test(L, -1) == NULL) {
      const char *tname = luaL_getmetafield(L, -1, "__name") == LUA_TSTRING
                          ? lua_tostring(L, -1) : luaL_typename(L, -1);   /* as luaL_typeerror */
      const char *msg = lua_pushfstring(L, "list of forks expected, item %d is %s", i, tname);
      luaL_argerror(L, 1, msg);
    }
    check_same_run(L, st, (as_fork *)lua_touserdata(L, -1), name);
    lua_rawseti(L, 2, i);
  }
  lua_replace(L, 1);
  r = combinator_outcome(L, st, mode, n);
  if (r >= 0) return r;
  me = as_sched_enter_suspend(L, st, name);
  for (i = 1; i <= n; i++)
    if (list_fork(L, i) == me)
      return luaL_error(L, "%s: fork #%I cannot wait for itself (index %d)", name,
                        (LUAI_UACINT)me->id, i);
  nodes = (as_waitnode *)lua_newuserdatauv(L, (size_t)n * sizeof *nodes, 0);  /* index 2 */
  as_sched_reserve_await(L, st->sched, me);   /* may raise (memory) */
  /* registered: nothing below raises */
  for (i = 0; i < n; i++) {
    as_fork *t = list_fork(L, i + 1);
    nodes[i].waiter = me;
    nodes[i].target = t;
    nodes[i].index = i + 1;
    nodes[i].linked = 0;
    nodes[i].next = nodes[i].prev = NULL;
    if (!as_fork_ended(t)) {
      node_link(&nodes[i]);
      pending++;
    }
  }
  me->await->wait.nodes = nodes;
  me->await->wait.nnodes = n;
  me->await->wait.remaining = pending;
  me->await->wait.mode = (unsigned char)mode;
  me->await->wait.own_node.target = NULL;   /* no plain wait */
  return as_sched_suspend(L, st->sched, me, AS_WAITING, &wait_ops, timeout,
                          (lua_KContext)mode, combinator_k);
}

static int wait_wait_all(lua_State *L) { return combinator(L, AS_WAIT_ALL); }
static int wait_wait_any(lua_State *L) { return combinator(L, AS_WAIT_ANY); }

void as_wait_open(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"wait", wait_wait}, {"pwait", wait_pwait},
    {"wait_all", wait_wait_all}, {"wait_any", wait_wait_any}, {NULL, NULL}
  };
  as_sched_register_await(as_state_get(L), &wait_ops);
  as_module_setfuncs(L, funcs);
}
