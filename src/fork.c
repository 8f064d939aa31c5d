/*
** fork.c: the asyncstack.Fork userdata: creation, methods (all of them,
** cancel included), finalizer, and core.fork_info. Scheduling (when a fork
** runs, what wakes it) lives in sched.c.
*/
#include <string.h>
#include "fork.h"
#include "module.h"
#include "sched.h"
#include "check.h"
#include "backtrace.h"
#include <lauxlib.h>
#include "debuglayout.h"
#include "memwalk.h"

/* Fork ids are unique per process (DESIGN §2), so the counter cannot live in
** a per-state structure; it is the one piece of process-wide state here. */
static lua_Integer next_fork_id = 1;

#define AS_STATUS_NAME(e, name) name,
static const char *const status_names[AS_STATUS_COUNT] = { AS_STATUS_LIST(AS_STATUS_NAME) };
#undef AS_STATUS_NAME

const char *as_fork_status_name(int status) {
  as_assert(status >= 0 && status < AS_STATUS_COUNT);
  return status_names[status];
}

/* Forks have one of two metatables, alike but for __gc: a finalizer costs
** every object that has one an extra collection cycle and a call, so only a
** fork holding a failure nobody has retrieved gets it (to report that
** failure when the fork is collected; as_fork_enable_finalizer). Both are
** kept at registry[&key] so the hot paths (fork creation, every wait) find
** them by a light userdata key, not by interning their name (bench row 1),
** and as_fork_test compares their addresses (as_state.fork_mt). */
static const char fork_mt_key = 'F';
static const char fork_gc_mt_key = 'G';

as_fork *as_fork_test(lua_State *L, int idx) {
  as_state *st = as_state_get(L);
  return (as_fork *)as_udata_test(L, idx, st->fork_mt, st->fork_gc_mt);
}

as_fork *as_fork_check(lua_State *L, int idx) {
  return as_fork_check_st(L, as_state_get(L), idx);
}

void as_fork_enable_finalizer(lua_State *L, int ud_idx) {
  ud_idx = lua_absindex(L, ud_idx);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &fork_gc_mt_key);
  lua_setmetatable(L, ud_idx);
}

as_fork *as_fork_new(lua_State *L, int fn_idx, int nargs) {
  as_fork *f;
  lua_State *co;
  int i;
  fn_idx = lua_absindex(L, fn_idx);
  /* the userdata, the thread and a copy of the function and arguments
  ** (issue 13, D12: up to 20 arguments overflowed the caller's stack) */
  luaL_checkstack(L, nargs + 3, "too many arguments to fork");
  f = (as_fork *)lua_newuserdatauv(L, sizeof(as_fork), 2);
  memset(f, 0, sizeof *f);
  f->heap_index = -1;
  f->slot = f->spawner_slot = 0;
  f->nvalues = nargs;                 /* started = 0: the arguments */
  f->status = AS_RUNNABLE;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &fork_mt_key);
  lua_setmetatable(L, -2);
  co = lua_newthread(L);
  if (!lua_checkstack(co, nargs + 1)) as_mem_error(L);
  for (i = 0; i <= nargs; i++) lua_pushvalue(L, fn_idx + i);
  lua_xmove(L, co, nargs + 1);
  lua_setiuservalue(L, -2, 1);
  as_astack_init(&f->astack, co);     /* as_fork_thread(f) from now on */
  f->id = __atomic_fetch_add(&next_fork_id, 1, __ATOMIC_RELAXED);
  return f;
}

/* The spawn function of a fork spawned from the Lua frame `ci` when it is
** the run's cached one (pushed, with the frame's pc), else NULL. */
static const void *cached_spawn_func(lua_State *L, const as_lualayout *lay, as_sched *s,
                                     const void *ci, int *pc) {
  const void *cl = as_lualayout_frame_lclosure(lay, ci);
  if (cl == NULL || cl != s->spawn_func) return NULL;
  *pc = as_lualayout_frame_pc(lay, ci, cl);
  if (*pc < 0) return NULL;
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->spawn_func_ref);
  return cl;
}

/* Makes the Lua function on top the run's cached spawn function. May raise
** (memory): before the fork is published. */
static void cache_spawn_func(lua_State *L, as_sched *s) {
  lua_pushvalue(L, -1);
  if (s->spawn_func_ref == LUA_NOREF) s->spawn_func_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  else lua_rawseti(L, LUA_REGISTRYINDEX, s->spawn_func_ref);
  s->spawn_func = lua_topointer(L, -1);
}

void as_fork_set_spawn_site(lua_State *L, int ud_idx, as_fork *f, int level, as_sched *s) {
  lua_Debug ar;
  const as_lualayout *lay;
  int pc = -1;
#ifdef ASYNCSTACK_NO_TRACKING
  /* benchmark-only build without watchers (see astack.h): no spawn site */
  (void)L; (void)ud_idx; (void)f; (void)level; (void)s; (void)ar; (void)lay; (void)pc;
  (void)cached_spawn_func; (void)cache_spawn_func;
  return;
#endif
  ud_idx = lua_absindex(L, ud_idx);
  if (!lua_getstack(L, level, &ar)) return;
  /* The line waits until something shows it (as_fork_spawn_line): where
  ** the layout is verified, the pc is two loads, while lua_getinfo's "l"
  ** walks up to 128 entries of line info, most of a spawn site's cost
  ** (issue 17: fork + wait, sleepers). A loop that forks finds its
  ** function in the run's cache, so lua_getinfo is not asked for it
  ** either (issue 7 row 4: what the watchers cost). */
  lay = as_debuglayout_lua();
  if (lay != NULL && s != NULL && s->spawn_func != NULL &&
      (f->spawn_func = cached_spawn_func(L, lay, s, ar.i_ci, &pc)) != NULL) {
    f->spawn_line = AS_SPAWN_PC(pc);
    lua_setiuservalue(L, ud_idx, 2);
    return;
  }
  if (!lua_getinfo(L, "f", &ar)) return;
  if (lay != NULL && lua_type(L, -1) == LUA_TFUNCTION && !lua_iscfunction(L, -1)) {
    pc = as_lualayout_frame_pc(lay, ar.i_ci, lua_topointer(L, -1));
    if (pc >= 0 && s != NULL) cache_spawn_func(L, s);
  }
  if (pc >= 0) {
    f->spawn_line = AS_SPAWN_PC(pc);
  } else {
    lua_getinfo(L, "l", &ar);
    f->spawn_line = ar.currentline;
  }
  f->spawn_func = lua_topointer(L, -1);   /* for debuglayout.h */
  /* a new fork: uservalue 2 is still nil, never the table */
  lua_setiuservalue(L, ud_idx, 2);
}

int as_fork_spawn_line(as_fork *f) {
  if (f->spawn_line <= AS_SPAWN_PC(0)) {
    const as_lualayout *lay = as_debuglayout_lua();
    as_memwalk_reader rd;
    rd.read = as_memwalk_read_memcpy;   /* the closure is anchored (uservalue 2) */
    rd.ctx = NULL;
    f->spawn_line = lay != NULL
      ? as_memwalk_closure_line(lay, &rd, (uintptr_t)f->spawn_func, AS_SPAWN_PC_OF(f->spawn_line))
      : -1;
  }
  return f->spawn_line;
}

/* Uservalue 2 (see fork.h): the spawn function alone, or the extras table
** {[X_FUNC] = spawn function, [X_NAME] = name, [X_FAILURE] = failure}. */
enum { X_FUNC = 1, X_NAME = 2, X_FAILURE = 3 };

/* Pushes the extra `key` of the fork at ud_idx (nil when absent). */
static void push_extra(lua_State *L, int ud_idx, int key) {
  if (lua_getiuservalue(L, ud_idx, 2) == LUA_TTABLE) {
    lua_rawgeti(L, -1, key);
    lua_remove(L, -2);
  } else if (key != X_FUNC) {
    lua_pop(L, 1);
    lua_pushnil(L);
  }
}

void as_fork_reserve_extras(lua_State *L, int ud_idx) {
  ud_idx = lua_absindex(L, ud_idx);
  if (lua_getiuservalue(L, ud_idx, 2) == LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  lua_createtable(L, 3, 0);   /* may raise: nothing changed yet */
  lua_insert(L, -2);
  lua_rawseti(L, -2, X_FUNC); /* inside the array part: no allocation */
  lua_setiuservalue(L, ud_idx, 2);
}

/* Sets the extra `key` of the fork at ud_idx to the value on top, popping
** it. Allocates only when the fork has no extras table yet. */
static void set_extra(lua_State *L, int ud_idx, int key) {
  ud_idx = lua_absindex(L, ud_idx);
  as_fork_reserve_extras(L, ud_idx);
  lua_getiuservalue(L, ud_idx, 2);
  lua_insert(L, -2);
  lua_rawseti(L, -2, key);
  lua_pop(L, 1);
}

void as_fork_push_name(lua_State *L, int ud_idx) {
  push_extra(L, ud_idx, X_NAME);
}

void as_fork_set_name(lua_State *L, int ud_idx, as_fork *f) {
  /* name_cstr first: the old string stays anchored until set_extra
  ** replaces it, and nothing is freed before the collector runs (which a
  ** signal handler reading name_cstr interrupts) */
  f->name_cstr = lua_tostring(L, -1);
  set_extra(L, ud_idx, X_NAME);
}

void as_fork_push_spawn_func(lua_State *L, int ud_idx) {
  push_extra(L, ud_idx, X_FUNC);
}

void as_fork_push_failure(lua_State *L, int ud_idx) {
  push_extra(L, ud_idx, X_FAILURE);
}

void as_fork_set_failure(lua_State *L, int ud_idx) {
  set_extra(L, ud_idx, X_FAILURE);
}

/* The self of a method, or an error that says how to call it: `f.id` is
** the method (a function, as Lua's own methods are), so `f.id()` or
** `f.id(x)` are the mistakes that reach here. */
static as_fork *check_self(lua_State *L, const char *method) {
  as_fork *f = as_fork_test(L, 1);
  if (f == NULL) {
    const char *got = luaL_typename(L, 1);
    if (luaL_getmetafield(L, 1, "__name") == LUA_TSTRING) got = lua_tostring(L, -1);
    luaL_argerror(L, 1, lua_pushfstring(L, "%s expected, got %s; call it as f:%s()",
                                        AS_FORK_MT, got, method));
  }
  return f;
}

static int fork_id(lua_State *L) {
  lua_pushinteger(L, check_self(L, "id")->id);
  return 1;
}

static int fork_name(lua_State *L) {
  as_fork *f = check_self(L, "name");
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TSTRING);
    lua_settop(L, 2);
    as_fork_set_name(L, 1, f);
  }
  as_fork_push_name(L, 1);
  return 1;
}

static int fork_status(lua_State *L) {
  lua_pushstring(L, as_fork_status_name(check_self(L, "status")->status));
  return 1;
}

/* "fork #7 'worker'": the label every view uses (render.c). */
static int fork_tostring(lua_State *L) {
  as_fork *f = as_fork_check(L, 1);
  as_fork_push_name(L, 1);
  as_backtrace_push_fork_label(L, f->id, lua_tostring(L, -1));
  return 1;
}

/* f:cancel() -> true, or false when f has already ended (sched.c says what
** a cancel does to each state). */
static int fork_cancel(lua_State *L) {
  return as_sched_cancel(L, as_state_get(L), check_self(L, "cancel"));
}

/* Only forks with an unretrieved failure have this (see above). */
static int fork_gc(lua_State *L) {
  as_fork *f = as_fork_test(L, 1);   /* getmetatable(fork) hands this out */
  if (f == NULL) return 0;
  if (f->status == AS_FAILED && !f->retrieved && !f->reported)
    as_unhandled_report(L, as_state_get(L), 1);
  return 0;
}

/* core.fork_info(f) -> table: the raw state of a fork, for the Lua policy
** (deadlock reports, dumps). Times are as.now() based. What a waiting fork
** waits for comes from its await kind's describe op. */
static int fork_info(lua_State *L) {
  as_state *st = as_state_get(L);
  as_fork *f = as_fork_check_st(L, st, 1);
  as_sched *s = as_fork_sched(st, f);
  const as_await_ops *ops = as_sched_await_ops(st, f);
  lua_createtable(L, 0, 12);
  lua_pushinteger(L, f->id); lua_setfield(L, -2, "id");
  as_fork_push_name(L, 1); lua_setfield(L, -2, "name");
  lua_pushstring(L, as_fork_status_name(f->status)); lua_setfield(L, -2, "status");
  if (ops != NULL && !as_fork_ended(f)) {
    lua_pushstring(L, ops->name);
    lua_setfield(L, -2, "await_kind");
  }
  lua_pushnumber(L, f->since); lua_setfield(L, -2, "since");
  if (f->heap_index >= 0) { lua_pushnumber(L, f->deadline); lua_setfield(L, -2, "deadline"); }
  if (f->status == AS_WAITING && ops != NULL && ops->describe != NULL)
    ops->describe(L, f);
  if (f->status == AS_FAILED) {
    as_fork_push_failure(L, 1);
    lua_setfield(L, -2, "error");
  }
  lua_pushinteger(L, f->spawner_id); lua_setfield(L, -2, "spawned_by");
  if (s != NULL) as_sched_push_spawner_name(L, s, f);
  else lua_pushnil(L);
  lua_setfield(L, -2, "spawner_name");
  lua_pushinteger(L, (lua_Integer)f->resumes); lua_setfield(L, -2, "resumes");
  as_fork_push_spawn_func(L, 1);
  if (!lua_isnil(L, -1)) {
    lua_Debug ar;
    if (lua_getinfo(L, ">S", &ar)) {
      lua_pushstring(L, ar.short_src); lua_setfield(L, -2, "spawn_file");
      lua_pushinteger(L, as_fork_spawn_line(f)); lua_setfield(L, -2, "spawn_line");
      lua_pushinteger(L, ar.linedefined); lua_setfield(L, -2, "spawn_linedefined");
      lua_pushstring(L, ar.what); lua_setfield(L, -2, "spawn_what");
    }
    as_fork_push_spawn_func(L, 1);
    lua_setfield(L, -2, "spawn_func");
  } else {
    lua_pop(L, 1);
  }
  {
    lua_Integer nwaiters = 0;
    as_waitnode *w;
    lua_newtable(L);
    for (w = f->waiters; w; w = w->next) {
      lua_pushinteger(L, w->waiter->id);
      lua_rawseti(L, -2, ++nwaiters);
    }
    lua_setfield(L, -2, "waiters");
  }
  return 1;
}

void as_fork_open(lua_State *L) {
  static const luaL_Reg methods[] = {
    {"id", fork_id}, {"name", fork_name}, {"status", fork_status},
    {"cancel", fork_cancel}, {NULL, NULL}
  };
  static const luaL_Reg funcs[] = { {"fork_info", fork_info}, {NULL, NULL} };
  static const luaL_Reg meta[] = {
    {"__tostring", fork_tostring}, {NULL, NULL}
  };
  as_state *st = as_state_get(L);
  int methods_idx;
  lua_newtable(L);
  as_module_setfuncs(L, methods);
  methods_idx = lua_gettop(L);
  /* the plain metatable is also the one registered under the name */
  luaL_newmetatable(L, AS_FORK_MT);
  as_module_setfuncs(L, meta);
  lua_pushvalue(L, methods_idx);
  lua_setfield(L, -2, "__index");
  st->fork_mt = lua_topointer(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &fork_mt_key);
  lua_createtable(L, 0, 4);
  lua_pushliteral(L, AS_FORK_MT);
  lua_setfield(L, -2, "__name");
  as_module_setfuncs(L, meta);
  lua_pushvalue(L, methods_idx);
  lua_setfield(L, -2, "__index");
  lua_pushvalue(L, AS_STATE_UPVALUE);
  lua_pushcclosure(L, fork_gc, 1);
  lua_setfield(L, -2, "__gc");
  st->fork_gc_mt = lua_topointer(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &fork_gc_mt_key);
  lua_pop(L, 1);   /* methods */
  as_module_setfuncs(L, funcs);
}

/* A sleeping fork is this struct in a userdata with two user values (72
** bytes of header) beside its coroutine: 136 bytes keep it within 1.2x a bare
** coroutine (issue 17, bench row 16a). Grow it only knowingly. */
typedef char as_fork_size_check[sizeof(as_fork) <= 136 ? 1 : -1];
/* as_state.await_ops has room for every kind */
typedef char as_await_count_check[AS_AWAIT_COUNT <= 8 ? 1 : -1];
