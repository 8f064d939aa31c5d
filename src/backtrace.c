/*
** backtrace.c: walking the async stack into frame tables, and the Lua entry
** points debug_backtrace, traceback and fork_backtrace.
**
** A walk emits, innermost first: the Lua frames of a fork's innermost
** coroutine, then of each coroutine below it on the fork's async stack down
** to the fork's root function (the KPHP rule: that is where a fork's trace
** ends). With `async`, it goes on to the fork that waits for this one, or,
** when none waits, to the spawn site recorded when the fork was created, and
** from the root fork of run() to the code that called run(). Forks already
** visited end the walk, so a cycle cannot loop.
**
** Frames of our own C functions and of our Lua front end are never emitted.
** The first frame of each segment carries a `boundary` field:
**   "coroutine"  this coroutine resumed the one above it (the resume site)
**   "awaited"    this fork waits for the fork above it (from_fork)
**   "spawned"    synthetic frame: the site that spawned from_fork
**   "run"        the code that called run(); from_fork is the root fork
**   "unbridged"  the code above ran in a coroutine resumed outside the bridge
** Names, sources and lines are resolved here, at walk time, never earlier.
*/
#include <string.h>
#include "backtrace.h"
#include "sched.h"
#include <lauxlib.h>

typedef struct walker {
  lua_State *L;          /* frames are built on this stack */
  as_state *st;
  as_sched *s;           /* NULL outside run() */
  int out;               /* absolute index of the result sequence */
  int n;                 /* frames emitted */
  int skip, limit;
  int stopped;           /* the limit was reached */
  const char *boundary;  /* marker for the next emitted frame, or NULL */
  as_fork *boundary_from;
} walker;

static void set_boundary(walker *w, const char *kind, as_fork *from) {
  w->boundary = kind;
  w->boundary_from = from;
}

/* Pushes the userdata of a live fork, or nil. */
static void push_fork_ud(walker *w, as_fork *f) {
  if (f != NULL && w->s != NULL) as_sched_push_live(w->L, w->s, f->id);
  else lua_pushnil(w->L);
}

static void set_fork_fields(walker *w, as_fork *f, const char *idkey,
                            const char *namekey) {
  lua_State *L = w->L;
  lua_pushinteger(L, f->id);
  lua_setfield(L, -2, idkey);
  push_fork_ud(w, f);
  if (!lua_isnil(L, -1)) {
    as_fork_push_name(L, -1);
    lua_setfield(L, -3, namekey);
  }
  lua_pop(L, 1);
}

/* Fills the frame table on top with the pending boundary, then stores it. */
static void store_frame(walker *w, as_fork *f) {
  lua_State *L = w->L;
  if (f != NULL) set_fork_fields(w, f, "fork", "fork_name");
  if (w->boundary != NULL) {
    lua_pushstring(L, w->boundary);
    lua_setfield(L, -2, "boundary");
    if (w->boundary_from != NULL)
      set_fork_fields(w, w->boundary_from, "from_fork", "from_fork_name");
    w->boundary = NULL;
    w->boundary_from = NULL;
  }
  lua_rawseti(L, w->out, ++w->n);
  if (w->limit > 0 && w->n >= w->limit) w->stopped = 1;
}

static void set_str(lua_State *L, const char *k, const char *v) {
  if (v != NULL) {
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
  }
}

static void set_int(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

/* Builds a frame table from `ar` and the function on top of L (consumed). */
static void emit_frame(walker *w, lua_Debug *ar, as_fork *f) {
  lua_State *L = w->L;
  lua_createtable(L, 0, 14);
  lua_insert(L, -2);
  lua_setfield(L, -2, "func");
  set_str(L, "function", ar->name);
  set_str(L, "namewhat", ar->namewhat);
  set_str(L, "what", ar->what);
  set_str(L, "file", ar->short_src);
  set_str(L, "source", ar->source);
  if (ar->currentline > 0) set_int(L, "line", ar->currentline);
  if (ar->linedefined > 0) set_int(L, "linedefined", ar->linedefined);
  if (ar->istailcall) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "tailcall");
  }
  store_frame(w, f);
}

/* Emits the visible frames of coroutine `th` (part of fork `f`, or NULL);
** with `mark_root`, flags the bottom frame as the fork's root function. */
static void walk_thread(walker *w, lua_State *th, as_fork *f, int mark_root) {
  lua_State *L = w->L;
  lua_Debug ar;
  int level, emitted = 0;
  for (level = 0; !w->stopped && lua_getstack(th, level, &ar); level++) {
    if (!lua_checkstack(L, 8) || (th != L && !lua_checkstack(th, 2))) {
      w->stopped = 1;
      return;
    }
    lua_getinfo(th, "Slntf", &ar);
    if (th != L) lua_xmove(th, L, 1);
    if ((*ar.what == 'C' && as_is_internal_function(L, w->st, -1)) ||
        (*ar.what != 'C' && as_is_internal_source(w->st, ar.source))) {
      lua_pop(L, 1);
      continue;
    }
    if (w->skip > 0) {
      w->skip--;
      lua_pop(L, 1);
      continue;
    }
    emit_frame(w, &ar, f);
    emitted++;
  }
  if (mark_root && emitted && !w->stopped) {
    lua_rawgeti(L, w->out, w->n);
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "root");
    lua_pop(L, 1);
  }
}

/* The coroutines of fork f's async stack, from index `top` down to its root. */
static void walk_fork_stack(walker *w, as_fork *f, int top) {
  int i;
  for (i = top; i >= 0 && !w->stopped; i--) {
    if (i < top) set_boundary(w, "coroutine", NULL);
    walk_thread(w, f->astack.frames[i].thread, f, i == 0);
  }
}

/* One synthetic frame for the place that spawned fork f. */
static void emit_spawn_site(walker *w, as_fork *f, as_fork *spawner) {
  lua_State *L = w->L;
  lua_Debug ar;
  push_fork_ud(w, f);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  lua_getiuservalue(L, -1, 3);
  lua_remove(L, -2);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  lua_pushvalue(L, -1);
  lua_getinfo(L, ">S", &ar);
  lua_createtable(L, 0, 12);
  lua_insert(L, -2);
  lua_setfield(L, -2, "func");
  set_str(L, "what", ar.what);
  set_str(L, "file", ar.short_src);
  set_str(L, "source", ar.source);
  if (f->spawn_line > 0) set_int(L, "line", f->spawn_line);
  if (ar.linedefined > 0) set_int(L, "linedefined", ar.linedefined);
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "spawn_site");
  set_boundary(w, "spawned", f);
  if (spawner != NULL) {
    store_frame(w, spawner);
  } else {
    set_int(L, "fork", f->spawner_id);
    store_frame(w, NULL);
  }
}

static void walk_from_fork(walker *w, as_fork *f, int top, int async) {
  unsigned mark;
  if (w->s == NULL) {           /* a fork of a run that has ended */
    walk_fork_stack(w, f, top);
    return;
  }
  mark = ++w->s->walk_mark;
  while (f != NULL && !w->stopped) {
    f->walk_mark = mark;
    walk_fork_stack(w, f, top);
    if (!async) return;
    /* follow "awaited by", else "spawned by" through spawn sites */
    for (;;) {
      as_fork *next;
      if (w->stopped) return;
      if (f->waiters != NULL) {
        next = f->waiters;
        if (next->walk_mark == mark) return;
        set_boundary(w, "awaited", f);
        f = next;
        top = next->astack.depth - 1;
        break;
      }
      if (f == w->s->root || f->spawner_id == 0) {
        set_boundary(w, "run", f);
        walk_thread(w, w->s->L, NULL, 0);
        return;
      }
      next = as_sched_find_live(w->L, w->s, f->spawner_id);
      emit_spawn_site(w, f, next);
      if (next == NULL || next->walk_mark == mark) return;
      next->walk_mark = mark;
      f = next;
    }
  }
}

static void walker_init(walker *w, lua_State *L, as_state *st,
                        const as_walk_opts *opts) {
  memset(w, 0, sizeof *w);
  w->L = L;
  w->st = st;
  w->s = st->sched;
  w->skip = opts->skip;
  w->limit = opts->limit;
  lua_newtable(L);
  w->out = lua_gettop(L);
}

void as_backtrace_push_fork(lua_State *L, as_state *st, as_fork *f,
                            const as_walk_opts *opts) {
  walker w;
  walker_init(&w, L, st, opts);
  if (f->sched != st->sched) w.s = NULL;
  if (f->astack.depth > 0) walk_from_fork(&w, f, f->astack.depth - 1, opts->async);
}

void as_backtrace_push_current(lua_State *L, as_state *st,
                               const as_walk_opts *opts) {
  walker w;
  as_fork *f;
  int i;
  walker_init(&w, L, st, opts);
  f = w.s ? w.s->running : NULL;
  if (f == NULL) {
    walk_thread(&w, L, NULL, 0);
    return;
  }
  for (i = f->astack.depth - 1; i >= 0; i--)
    if (f->astack.frames[i].thread == L) break;
  if (i < 0) {
    /* L was resumed by an unbridged resume somewhere inside the fork */
    walk_thread(&w, L, f, 0);
    set_boundary(&w, "unbridged", NULL);
    i = f->astack.depth - 1;
  }
  walk_from_fork(&w, f, i, opts->async);
}

/* Reads {level=, limit=, async=} from the table at `idx` (absent: defaults). */
static void read_opts(lua_State *L, int idx, as_walk_opts *o, const char *fname) {
  lua_Integer level = 1;
  o->skip = 0;
  o->limit = 0;
  o->async = 0;
  if (lua_isnoneornil(L, idx)) return;
  luaL_argexpected(L, lua_istable(L, idx), idx, "table");
  lua_getfield(L, idx, "level");
  if (!lua_isnil(L, -1)) {
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1)
      luaL_error(L, "bad option 'level' to '%s' (positive integer expected, got %s)",
                 fname, lua_isinteger(L, -1) ? "a smaller number" : luaL_typename(L, -1));
    level = lua_tointeger(L, -1);
  }
  lua_getfield(L, idx, "limit");
  if (!lua_isnil(L, -1)) {
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1)
      luaL_error(L, "bad option 'limit' to '%s' (positive integer expected, got %s)",
                 fname, lua_isinteger(L, -1) ? "a smaller number" : luaL_typename(L, -1));
    o->limit = (int)(lua_tointeger(L, -1) > 1000000 ? 1000000 : lua_tointeger(L, -1));
  }
  lua_getfield(L, idx, "async");
  o->async = lua_toboolean(L, -1);
  lua_pop(L, 3);
  o->skip = (int)(level > 1000000 ? 1000000 : level - 1);
}

/* as.debug_backtrace([opts]) */
static int bt_debug_backtrace(lua_State *L) {
  as_walk_opts o;
  read_opts(L, 1, &o, "debug_backtrace");
  as_backtrace_push_current(L, as_state_get(L), &o);
  return 1;
}

/* as.fork_backtrace(f [, opts]): the frames of any fork of the current run. */
static int bt_fork_backtrace(lua_State *L) {
  as_state *st = as_state_get(L);
  as_fork *f = as_fork_check(L, 1);
  as_walk_opts o;
  read_opts(L, 2, &o, "fork_backtrace");
  if (st->sched != NULL && st->sched->running == f && as_sched_fork_of(st, L) == f)
    as_backtrace_push_current(L, st, &o);
  else
    as_backtrace_push_fork(L, st, f, &o);
  return 1;
}

int as_backtrace_traceback(lua_State *L, int arg) {
  as_state *st = as_state_get(L);
  const char *msg = lua_tostring(L, arg);
  lua_Integer level;
  as_walk_opts o;
  if (msg == NULL && !lua_isnoneornil(L, arg)) {  /* non-string message */
    lua_pushvalue(L, arg);                         /* returned untouched */
    return 1;
  }
  level = luaL_optinteger(L, arg + 1, 1);
  read_opts(L, arg + 2, &o, "traceback");
  if (st->sched == NULL || st->sched->running == NULL) {
    luaL_traceback(L, L, msg, (int)level);
    return 1;
  }
  if (!as_hook_push(L, st, "format")) {
    luaL_traceback(L, L, msg, (int)level);
    return 1;
  }
  if (msg != NULL) lua_pushstring(L, msg);
  else lua_pushnil(L);
  o.skip = level > 1 ? (int)(level > 1000000 ? 1000000 : level - 1) : 0;
  as_backtrace_push_current(L, st, &o);
  lua_call(L, 2, 1);
  return 1;
}

static int bt_traceback(lua_State *L) {
  return as_backtrace_traceback(L, 1);
}

void as_backtrace_open(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"debug_backtrace", bt_debug_backtrace}, {"traceback", bt_traceback},
    {"fork_backtrace", bt_fork_backtrace}, {NULL, NULL}
  };
  as_module_setfuncs(L, funcs);
}
