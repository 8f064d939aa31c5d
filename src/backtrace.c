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
** A walk produces a *raw capture*: a flat table with AS_RAW_STRIDE slots per
** frame (function, current line, name, namewhat, fork id and name, boundary,
** from-fork id and name, flags) and `n`. It holds no per-frame tables and no
** built strings (names and fork names are existing strings), which keeps
** exception construction cheap; as_backtrace_expand turns it into frame
** tables (resolving file/source/what from the function) when someone reads it.
*/
#include <string.h>
#include "backtrace.h"
#include "sched.h"
#include "wait.h"
#include <lauxlib.h>

typedef struct walker {
  lua_State *L;          /* frames are built on this stack */
  as_state *st;
  as_sched *s;           /* NULL outside run() */
  int out;               /* absolute index of the result sequence */
  int n;                 /* frames emitted */
  int skip, limit;
  int stopped;           /* the limit was reached */
  int omitted;           /* frames past the limit (at least) */
  int hidden_tailcall;   /* a hidden frame was tail-called: tell the next one */
  as_fork *named;        /* the fork whose name is in stack slot name_slot */
  int name_slot;         /* caches that name: consecutive frames share a fork */
  const char *boundary;  /* marker for the next emitted frame, or NULL */
  as_fork *boundary_from;
  const as_waitnode *boundary_via;  /* for "awaited": the combinator's node */
} walker;

static void set_boundary(walker *w, const char *kind, as_fork *from) {
  w->boundary = kind;
  w->boundary_from = from;
  w->boundary_via = NULL;
}

/* Pushes the userdata of a live fork, or nil. */
static void push_fork_ud(walker *w, as_fork *f) {
  if (w->s != NULL) as_sched_push_fork(w->L, w->s, f);
  else lua_pushnil(w->L);
}

/* Raw slot offsets (1-based inside a frame's stride). */
enum {
  RAW_FUNC = 1, RAW_LINE, RAW_NAME, RAW_NAMEWHAT, RAW_FORK, RAW_FORK_NAME,
  RAW_BOUNDARY, RAW_FROM, RAW_FROM_NAME, RAW_FLAGS, RAW_VIA
};
enum { FLAG_ROOT = 1, FLAG_TAILCALL = 2, FLAG_SPAWN_SITE = 4, FLAG_AFTER_TAILCALL = 8 };

static void raw_set(walker *w, int slot) {
  lua_rawseti(w->L, w->out, (lua_Integer)w->n * AS_RAW_STRIDE + slot);
}

static void raw_set_fork(walker *w, as_fork *f, int id_slot, int name_slot) {
  lua_State *L = w->L;
  if (f == NULL) {
    lua_pushboolean(L, 0); raw_set(w, id_slot);
    lua_pushboolean(L, 0); raw_set(w, name_slot);
    return;
  }
  lua_pushinteger(L, f->id);
  raw_set(w, id_slot);
  if (f != w->named) {
    push_fork_ud(w, f);
    if (lua_isnil(L, -1)) lua_pushboolean(L, 0);
    else as_fork_push_name(L, -1);
    if (lua_isnil(L, -1)) { lua_pop(L, 1); lua_pushboolean(L, 0); }
    lua_replace(L, w->name_slot);
    lua_pop(L, 1);
    w->named = f;
  }
  lua_pushvalue(L, w->name_slot);
  raw_set(w, name_slot);
}

static void raw_set_str(walker *w, int slot, const char *v) {
  if (v != NULL && *v != '\0') lua_pushstring(w->L, v);
  else lua_pushboolean(w->L, 0);
  raw_set(w, slot);
}

/* Stores one frame: the function on top of L (consumed), its line, name and
** flags; the fork it runs in; the pending boundary. */
static void store_frame(walker *w, int line, const char *name,
                        const char *namewhat, int flags, as_fork *f,
                        lua_Integer fork_id_if_gone) {
  lua_State *L = w->L;
  raw_set(w, RAW_FUNC);
  if (line > 0) lua_pushinteger(L, line); else lua_pushboolean(L, 0);
  raw_set(w, RAW_LINE);
  raw_set_str(w, RAW_NAME, name);
  raw_set_str(w, RAW_NAMEWHAT, namewhat);
  if (f == NULL && fork_id_if_gone > 0) {
    lua_pushinteger(L, fork_id_if_gone); raw_set(w, RAW_FORK);
    lua_pushboolean(L, 0); raw_set(w, RAW_FORK_NAME);
  } else {
    raw_set_fork(w, f, RAW_FORK, RAW_FORK_NAME);
  }
  raw_set_str(w, RAW_BOUNDARY, w->boundary);
  raw_set_fork(w, w->boundary_from, RAW_FROM, RAW_FROM_NAME);
  lua_pushinteger(L, flags);
  raw_set(w, RAW_FLAGS);
  if (w->boundary_via != NULL && as_wait_node_combinator(w->boundary_via) != NULL)
    lua_pushfstring(L, "%s (index %d)", as_wait_node_combinator(w->boundary_via),
                    w->boundary_via->index);
  else
    lua_pushboolean(L, 0);
  raw_set(w, RAW_VIA);
  w->boundary = NULL;
  w->boundary_from = NULL;
  w->boundary_via = NULL;
  w->n++;
  if (w->limit > 0 && w->n >= w->limit) w->stopped = 1;
}

static void emit_frame(walker *w, lua_Debug *ar, as_fork *f) {
  int flags = ar->istailcall ? FLAG_TAILCALL : 0;
  if (w->hidden_tailcall) flags |= FLAG_AFTER_TAILCALL;
  w->hidden_tailcall = 0;
  store_frame(w, ar->currentline, ar->name, ar->namewhat, flags, f, 0);
}

/* Levels of `th` from `level` on: found by doubling then bisection, since
** lua_getstack costs O(level) and a linear count would be quadratic. */
static int count_levels_from(lua_State *th, int level) {
  lua_Debug ar;
  int lo = level, hi = level + 1;
  if (!lua_getstack(th, level, &ar)) return 0;
  while (lua_getstack(th, hi, &ar)) {
    lo = hi;
    if (hi > (1 << 29)) break;
    hi *= 2;
  }
  while (hi - lo > 1) {            /* lo exists, hi does not */
    int mid = lo + (hi - lo) / 2;
    if (lua_getstack(th, mid, &ar)) lo = mid; else hi = mid;
  }
  return lo - level + 1;
}

/* Emits the visible frames of coroutine `th` (part of fork `f`, or NULL);
** with `mark_root`, flags the bottom frame as the fork's root function. */
static void walk_thread(walker *w, lua_State *th, as_fork *f, int mark_root) {
  lua_State *L = w->L;
  lua_Debug ar;
  int level, emitted = 0;
  for (level = 0; lua_getstack(th, level, &ar); level++) {
    if (w->stopped) {
      w->omitted += count_levels_from(th, level);
      break;
    }
    if (!lua_checkstack(L, 8) || (th != L && !lua_checkstack(th, 2))) {
      w->stopped = 1;
      return;
    }
    lua_getinfo(th, "Slntf", &ar);
    if (th != L) lua_xmove(th, L, 1);
    if ((*ar.what == 'C' && as_is_internal_function(L, w->st, -1)) ||
        (*ar.what != 'C' && as_is_internal_source(w->st, ar.source))) {
      /* hidden; but if it was tail-called, the frames that called it are
      ** gone, and the next visible frame must say so */
      if (ar.istailcall) w->hidden_tailcall = 1;
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
    lua_Integer slot = (lua_Integer)(w->n - 1) * AS_RAW_STRIDE + RAW_FLAGS;
    lua_rawgeti(L, w->out, slot);
    lua_pushinteger(L, lua_tointeger(L, -1) | FLAG_ROOT);
    lua_rawseti(L, w->out, slot);
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

/* One synthetic frame for the place that spawned fork f: the spawning
** function (kept by the fork) at the line recorded at spawn time. */
static void emit_spawn_site(walker *w, as_fork *f, as_fork *spawner) {
  lua_State *L = w->L;
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
  set_boundary(w, "spawned", f);
  store_frame(w, f->spawn_line, NULL, NULL, FLAG_SPAWN_SITE, spawner,
              f->spawner_id);
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
        const as_waitnode *node = f->waiters;
        next = node->waiter;
        if (next->walk_mark == mark) return;
        set_boundary(w, "awaited", f);
        w->boundary_via = node;
        f = next;
        top = next->astack.depth - 1;
        break;
      }
      if (f == w->s->root || f->spawner_id == 0) {
        set_boundary(w, "run", f);
        walk_thread(w, w->s->L, NULL, 0);
        return;
      }
      next = as_sched_spawner(w->L, w->s, f);
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
  lua_pushnil(L);
  w->name_slot = lua_gettop(L);
}

/* Records the frame count (and frames left out) in the raw capture. */
static void walker_finish(walker *w) {
  lua_settop(w->L, w->out);   /* drop the name cache slot */
  lua_pushinteger(w->L, w->n);
  lua_setfield(w->L, w->out, "n");
  if (w->omitted > 0) {
    lua_pushinteger(w->L, w->omitted);
    lua_setfield(w->L, w->out, "omitted");
  }
}

void as_backtrace_push_fork(lua_State *L, as_state *st, as_fork *f,
                            const as_walk_opts *opts) {
  walker w;
  walker_init(&w, L, st, opts);
  if (f->sched != st->sched) w.s = NULL;
  if (f->astack.depth > 0) walk_from_fork(&w, f, f->astack.depth - 1, opts->async);
  walker_finish(&w);
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
    walker_finish(&w);
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
  walker_finish(&w);
}

static void field_str(lua_State *L, const char *k, const char *v) {
  if (v != NULL) {
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
  }
}

/* Copies raw slot `slot` of the frame at `base` into field `k` unless false. */
static void field_from_raw(lua_State *L, int raw, lua_Integer base, int slot,
                           const char *k) {
  lua_rawgeti(L, raw, base + slot);
  if (lua_toboolean(L, -1)) lua_setfield(L, -2, k);
  else lua_pop(L, 1);
}

void as_backtrace_expand(lua_State *L, int raw) {
  lua_Integer i, n;
  raw = lua_absindex(L, raw);
  lua_getfield(L, raw, "n");
  n = lua_tointeger(L, -1);
  lua_pop(L, 1);
  lua_createtable(L, (int)n, 1);
  for (i = 0; i < n; i++) {
    lua_Integer base = i * AS_RAW_STRIDE;
    lua_Integer flags;
    lua_Debug ar;
    lua_createtable(L, 0, 16);
    lua_rawgeti(L, raw, base + RAW_FUNC);
    memset(&ar, 0, sizeof ar);
    if (lua_isfunction(L, -1)) {
      lua_pushvalue(L, -1);
      lua_getinfo(L, ">S", &ar);
    }
    lua_setfield(L, -2, "func");
    field_str(L, "what", ar.what);
    if (ar.what != NULL) field_str(L, "file", ar.short_src);
    field_str(L, "source", ar.source);
    if (ar.linedefined > 0) {
      lua_pushinteger(L, ar.linedefined);
      lua_setfield(L, -2, "linedefined");
    }
    field_from_raw(L, raw, base, RAW_LINE, "line");
    field_from_raw(L, raw, base, RAW_NAME, "function");
    field_from_raw(L, raw, base, RAW_NAMEWHAT, "namewhat");
    field_from_raw(L, raw, base, RAW_FORK, "fork");
    field_from_raw(L, raw, base, RAW_FORK_NAME, "fork_name");
    field_from_raw(L, raw, base, RAW_BOUNDARY, "boundary");
    field_from_raw(L, raw, base, RAW_FROM, "from_fork");
    field_from_raw(L, raw, base, RAW_FROM_NAME, "from_fork_name");
    field_from_raw(L, raw, base, RAW_VIA, "via");
    lua_rawgeti(L, raw, base + RAW_FLAGS);
    flags = lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (flags & FLAG_ROOT) { lua_pushboolean(L, 1); lua_setfield(L, -2, "root"); }
    if (flags & FLAG_TAILCALL) { lua_pushboolean(L, 1); lua_setfield(L, -2, "tailcall"); }
    if (flags & FLAG_SPAWN_SITE) { lua_pushboolean(L, 1); lua_setfield(L, -2, "spawn_site"); }
    if (flags & FLAG_AFTER_TAILCALL) { lua_pushboolean(L, 1); lua_setfield(L, -2, "after_tailcall"); }
    lua_rawseti(L, -2, i + 1);
  }
  lua_getfield(L, raw, "omitted");
  lua_setfield(L, -2, "omitted");
}

/* ------------------------------------------------------------- trace text */

/* Pushes a name under which a loaded module holds the function at fn_idx
** ("mod.key", or "key" for _G) and returns 1, or pushes nothing and returns
** 0. Raw iteration of package.loaded and of each module table, string keys
** only, first match: the search of Lua's own traceback. Calls no
** metamethod. */
static int push_global_name(lua_State *L, int fn_idx) {
  int loaded;
  fn_idx = lua_absindex(L, fn_idx);
  luaL_checkstack(L, 6, NULL);
  if (lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE) != LUA_TTABLE) {
    lua_pop(L, 1);
    return 0;
  }
  loaded = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, loaded)) {                 /* loaded+1 name, +2 module */
    int t = lua_type(L, loaded + 1);
    if (lua_type(L, loaded + 2) == LUA_TTABLE && (t == LUA_TSTRING || t == LUA_TNUMBER)) {
      lua_pushnil(L);
      while (lua_next(L, loaded + 2)) {         /* loaded+3 key, +4 value */
        if (lua_rawequal(L, loaded + 4, fn_idx) && lua_type(L, loaded + 3) == LUA_TSTRING) {
          if (t == LUA_TSTRING && strcmp(lua_tostring(L, loaded + 1), LUA_GNAME) == 0) {
            lua_pushvalue(L, loaded + 3);
          } else {
            lua_pushvalue(L, loaded + 1);       /* a copy: concat converts it */
            lua_pushliteral(L, ".");
            lua_pushvalue(L, loaded + 3);
            lua_concat(L, 3);
          }
          lua_replace(L, loaded);
          lua_settop(L, loaded);
          return 1;
        }
        lua_pop(L, 1);
      }
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return 0;
}

/* Pushes the name under which the function at `fn` is an upvalue of the
** value at `holder` and returns 1, or pushes nothing and returns 0. */
static int push_upvalue_name(lua_State *L, int holder, int fn) {
  int i;
  if (!lua_isfunction(L, holder)) return 0;
  for (i = 1; i <= 255; i++) {
    const char *name = lua_getupvalue(L, holder, i);
    if (name == NULL) return 0;
    if (lua_rawequal(L, -1, fn) && *name != '\0') {
      lua_pop(L, 1);
      lua_pushstring(L, name);
      return 1;
    }
    lua_pop(L, 1);
  }
  return 0;
}

/*
** The text of a raw capture, in debug.traceback's shape: exactly what
** trace.lua's format(msg, core.expand(raw)) returns (spec/trace_text_spec.lua
** compares the two on every shape of trace). It is built here, straight
** from the raw capture into one luaL_Buffer, because as.traceback formats
** every frame of every call, and expanding the frame tables only to read
** them once in Lua was most of its cost (bench/run.lua row 5). trace.lua's
** version still formats frame tables (exceptions, dumps).
**
** Buffer discipline: every value read from the capture is pushed right
** before the buffer operation that consumes it (luaL_addvalue), or popped
** before the next one; nothing else stays above the buffer's box.
*/

enum { BOUND_NONE, BOUND_COROUTINE, BOUND_AWAITED, BOUND_SPAWNED, BOUND_RUN,
       BOUND_UNBRIDGED, BOUND_UNKNOWN };

typedef struct text_ctx {
  lua_State *L;
  luaL_Buffer b;
  int raw;               /* absolute index of the raw capture */
  lua_Integer n;         /* its frames */
  int lines;             /* lines added so far */
} text_ctx;

typedef struct text_frame {
  lua_Debug ar;          /* getinfo(">S") of the function */
  int has_func;          /* the stored function is a function */
  int flags;
  int has_line;
  lua_Integer line;
  int boundary;          /* BOUND_* */
} text_frame;

static void raw_push(lua_State *L, int raw, lua_Integer i, int slot) {
  lua_rawgeti(L, raw, i * AS_RAW_STRIDE + slot);
}

/* Whether slot `slot` of frame i holds a true value (a string, a number). */
static int raw_truthy(text_ctx *t, lua_Integer i, int slot) {
  int truthy;
  raw_push(t->L, t->raw, i, slot);
  truthy = lua_toboolean(t->L, -1);
  lua_pop(t->L, 1);
  return truthy;
}

/* Adds slot `slot` of frame i (a string) to the text. */
static void add_raw(text_ctx *t, lua_Integer i, int slot) {
  raw_push(t->L, t->raw, i, slot);
  luaL_addvalue(&t->b);
}

/* Decimal digits, as Lua's "%d" of an integer (no snprintf on this path). */
static void add_integer(text_ctx *t, lua_Integer v) {
  char digits[3 * sizeof(lua_Integer) + 2];
  size_t k = sizeof digits;
  lua_Unsigned u = v < 0 ? 0u - (lua_Unsigned)v : (lua_Unsigned)v;
  do {
    digits[--k] = (char)('0' + (int)(u % 10));
    u /= 10;
  } while (u != 0);
  if (v < 0) digits[--k] = '-';
  luaL_addlstring(&t->b, digits + k, sizeof digits - k);
}

static void begin_line(text_ctx *t) {
  luaL_addstring(&t->b, t->lines++ == 0 ? "stack traceback:\n\t" : "\n\t");
}

static void read_frame(text_ctx *t, lua_Integer i, text_frame *fr) {
  lua_State *L = t->L;
  memset(&fr->ar, 0, sizeof fr->ar);
  raw_push(L, t->raw, i, RAW_FUNC);
  fr->has_func = lua_isfunction(L, -1);
  if (fr->has_func) lua_getinfo(L, ">S", &fr->ar);  /* pops it */
  else lua_pop(L, 1);
  raw_push(L, t->raw, i, RAW_FLAGS);
  fr->flags = (int)lua_tointeger(L, -1);
  raw_push(L, t->raw, i, RAW_LINE);
  fr->has_line = lua_toboolean(L, -1);
  fr->line = lua_tointeger(L, -1);
  raw_push(L, t->raw, i, RAW_BOUNDARY);
  fr->boundary = BOUND_NONE;
  if (lua_type(L, -1) == LUA_TSTRING) {
    const char *kind = lua_tostring(L, -1);
    fr->boundary = strcmp(kind, "coroutine") == 0 ? BOUND_COROUTINE
                 : strcmp(kind, "awaited") == 0 ? BOUND_AWAITED
                 : strcmp(kind, "spawned") == 0 ? BOUND_SPAWNED
                 : strcmp(kind, "run") == 0 ? BOUND_RUN
                 : strcmp(kind, "unbridged") == 0 ? BOUND_UNBRIDGED : BOUND_UNKNOWN;
  }
  lua_pop(L, 3);
}

/* The frame's file as trace.lua sees it: short_src, or "nil" when the stored
** value is not a function (expand leaves `file` out then). */
static void add_file(text_ctx *t, const text_frame *fr) {
  luaL_addstring(&t->b, fr->has_func ? fr->ar.short_src : "nil");
}

/* trace.lua location(fr) */
static void add_location(text_ctx *t, const text_frame *fr) {
  add_file(t, fr);
  if (fr->has_line) {
    luaL_addchar(&t->b, ':');
    add_integer(t, fr->line);
  }
}

/* trace.lua fork_label(id, name), from two raw slots of frame i */
static void add_fork_label(text_ctx *t, lua_Integer i, int id_slot, int name_slot) {
  lua_Integer id;
  raw_push(t->L, t->raw, i, id_slot);
  id = lua_tointeger(t->L, -1);
  lua_pop(t->L, 1);
  luaL_addstring(&t->b, "fork #");
  add_integer(t, id);
  if (raw_truthy(t, i, name_slot)) {
    luaL_addstring(&t->b, " '");
    add_raw(t, i, name_slot);
    luaL_addchar(&t->b, '\'');
  }
}

/* trace.lua guess_name: a name for a fork's root or a spawn site that Lua
** could not name: a field of a loaded module, else an upvalue of the next
** frame's function. Adds "function 'name'" and returns 1, or returns 0. */
static int add_guessed_name(text_ctx *t, lua_Integer i, const text_frame *fr) {
  lua_State *L = t->L;
  int fn, found;
  if (!(fr->flags & (FLAG_ROOT | FLAG_SPAWN_SITE)) || !fr->has_func) return 0;
  raw_push(L, t->raw, i, RAW_FUNC);
  fn = lua_gettop(L);
  found = push_global_name(L, fn);
  if (!found && i + 1 < t->n) {
    raw_push(L, t->raw, i + 1, RAW_FUNC);
    found = push_upvalue_name(L, fn + 1, fn);
    if (found) lua_remove(L, fn + 1);
    else lua_pop(L, 1);
  }
  if (!found) {
    lua_pop(L, 1);
    return 0;
  }
  lua_pushliteral(L, "function '");
  lua_insert(L, -2);
  lua_pushliteral(L, "'");
  lua_concat(L, 3);
  lua_remove(L, fn);              /* the text is now right above the box */
  luaL_addvalue(&t->b);
  return 1;
}

/* trace.lua describe(fr, frames, i): what follows " in " */
static void add_describe(text_ctx *t, lua_Integer i, const text_frame *fr) {
  lua_State *L = t->L;
  char namewhat[32];
  int has_namewhat = 0;
  raw_push(L, t->raw, i, RAW_NAMEWHAT);
  if (lua_type(L, -1) == LUA_TSTRING) {
    size_t len;
    const char *nw = lua_tolstring(L, -1, &len);
    if (len > 0 && len < sizeof namewhat) {   /* Lua's namewhats are short words */
      memcpy(namewhat, nw, len + 1);
      has_namewhat = 1;
    }
  }
  lua_pop(L, 1);
  if (has_namewhat && raw_truthy(t, i, RAW_NAME)) {
    if (strcmp(namewhat, "global") == 0) luaL_addstring(&t->b, "function");
    else luaL_addstring(&t->b, namewhat);
    luaL_addstring(&t->b, " '");
    add_raw(t, i, RAW_NAME);
    luaL_addchar(&t->b, '\'');
  } else if (add_guessed_name(t, i, fr)) {
    /* done */
  } else if (fr->has_func && strcmp(fr->ar.what, "main") == 0) {
    luaL_addstring(&t->b, "main chunk");
  } else if (!fr->has_func || strcmp(fr->ar.what, "C") != 0) {
    luaL_addstring(&t->b, "function <");
    add_file(t, fr);
    luaL_addchar(&t->b, ':');
    add_integer(t, fr->ar.linedefined > 0 ? fr->ar.linedefined : 0);
    luaL_addchar(&t->b, '>');
  } else {
    luaL_addchar(&t->b, '?');
  }
}

/* " at <location> in <describe>]": the end of most boundary lines */
static void add_boundary_site(text_ctx *t, lua_Integer i, const text_frame *fr) {
  luaL_addstring(&t->b, " at ");
  add_location(t, fr);
  luaL_addstring(&t->b, " in ");
  add_describe(t, i, fr);
  luaL_addchar(&t->b, ']');
}

/* trace.lua boundary_line(fr, frames, i) */
static void add_boundary_line(text_ctx *t, lua_Integer i, const text_frame *fr) {
  if (fr->boundary == BOUND_UNKNOWN) return;      /* trace.lua adds no line */
  begin_line(t);
  switch (fr->boundary) {
    case BOUND_COROUTINE:
      luaL_addstring(&t->b, "[coroutine resumed");
      add_boundary_site(t, i, fr);
      break;
    case BOUND_AWAITED:
      luaL_addchar(&t->b, '[');
      add_fork_label(t, i, RAW_FROM, RAW_FROM_NAME);
      luaL_addstring(&t->b, " awaited by ");
      add_fork_label(t, i, RAW_FORK, RAW_FORK_NAME);
      if (raw_truthy(t, i, RAW_VIA)) {
        luaL_addstring(&t->b, " in ");
        add_raw(t, i, RAW_VIA);
      }
      add_boundary_site(t, i, fr);
      break;
    case BOUND_SPAWNED:
      luaL_addchar(&t->b, '[');
      add_fork_label(t, i, RAW_FROM, RAW_FROM_NAME);
      luaL_addstring(&t->b, " spawned by ");
      add_fork_label(t, i, RAW_FORK, RAW_FORK_NAME);
      add_boundary_site(t, i, fr);
      break;
    case BOUND_RUN:
      luaL_addchar(&t->b, '[');
      add_fork_label(t, i, RAW_FROM, RAW_FROM_NAME);
      luaL_addstring(&t->b, " started by run()");
      add_boundary_site(t, i, fr);
      break;
    default:  /* BOUND_UNBRIDGED */
      luaL_addstring(&t->b, "[coroutine resumed outside the asyncstack bridge]");
      break;
  }
}

/* trace.lua add_frame(out, frames, i) */
static void add_frame_text(text_ctx *t, lua_Integer i) {
  text_frame fr;
  read_frame(t, i, &fr);
  if (fr.flags & FLAG_AFTER_TAILCALL) {
    begin_line(t);
    luaL_addstring(&t->b, "(...tail calls...)");
  }
  if (fr.boundary != BOUND_NONE) add_boundary_line(t, i, &fr);
  if (!(fr.flags & FLAG_SPAWN_SITE)) {
    begin_line(t);
    add_location(t, &fr);
    luaL_addstring(&t->b, ": in ");
    add_describe(t, i, &fr);
    if (fr.flags & FLAG_ROOT) {
      luaL_addstring(&t->b, "  (root of ");
      add_fork_label(t, i, RAW_FORK, RAW_FORK_NAME);
      luaL_addchar(&t->b, ')');
    }
  }
  if (fr.flags & FLAG_TAILCALL) {
    begin_line(t);
    luaL_addstring(&t->b, "(...tail calls...)");
  }
}

#define TEXT_HEAD 100   /* frames shown at each end of a very long trace */
#define TEXT_TAIL 100

/* Pushes the text of the raw capture at `raw`, after `msg` and a newline
** when msg is not NULL (see above). */
static void push_text(lua_State *L, int raw, const char *msg) {
  text_ctx t;
  lua_Integer i, omitted;
  t.L = L;
  t.raw = lua_absindex(L, raw);
  t.lines = 0;
  lua_getfield(L, t.raw, "n");
  t.n = lua_tointeger(L, -1);
  lua_getfield(L, t.raw, "omitted");
  omitted = lua_tointeger(L, -1);
  lua_pop(L, 2);
  luaL_checkstack(L, 16, "traceback");
  luaL_buffinit(L, &t.b);
  if (msg != NULL) {
    luaL_addstring(&t.b, msg);
    luaL_addchar(&t.b, '\n');
  }
  if (t.n <= TEXT_HEAD + TEXT_TAIL) {
    for (i = 0; i < t.n; i++) add_frame_text(&t, i);
  } else {
    for (i = 0; i < TEXT_HEAD; i++) add_frame_text(&t, i);
    begin_line(&t);
    luaL_addstring(&t.b, "...\t(skipping ");
    add_integer(&t, t.n - TEXT_HEAD - TEXT_TAIL);
    luaL_addstring(&t.b, " levels)");
    for (i = t.n - TEXT_TAIL; i < t.n; i++) add_frame_text(&t, i);
  }
  if (omitted > 0) {
    begin_line(&t);
    luaL_addstring(&t.b, "...\t(");
    add_integer(&t, omitted);
    luaL_addstring(&t.b, " more frames omitted)");
  }
  if (t.lines == 0) luaL_addstring(&t.b, "stack traceback:");
  luaL_pushresult(&t.b);
}

/* core.global_name(fn) -> "mod.key", "key" (for _G) or nil; see
** push_global_name. */
static int bt_global_name(lua_State *L) {
  lua_settop(L, 1);
  if (!push_global_name(L, 1)) lua_pushnil(L);
  return 1;
}

/* core.format_trace(msg, raw) -> text; see push_text. */
static int bt_format_trace(lua_State *L) {
  const char *msg = luaL_optstring(L, 1, NULL);
  luaL_checktype(L, 2, LUA_TTABLE);
  push_text(L, 2, msg);
  return 1;
}

/* Raises for option `opt` (on top of the stack), which is not a positive
** integer, showing the integer given, or the type of anything else. */
static void bad_count_option(lua_State *L, const char *opt, const char *fname) {
  if (lua_isinteger(L, -1))
    luaL_error(L, "bad option '%s' to '%s' (positive integer expected, got %I)",
               opt, fname, (LUAI_UACINT)lua_tointeger(L, -1));
  luaL_error(L, "bad option '%s' to '%s' (positive integer expected, got %s)",
             opt, fname, luaL_typename(L, -1));
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
      bad_count_option(L, "level", fname);
    level = lua_tointeger(L, -1);
  }
  lua_getfield(L, idx, "limit");
  if (!lua_isnil(L, -1)) {
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1)
      bad_count_option(L, "limit", fname);
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
  as_backtrace_expand(L, -1);
  return 1;
}

/* core.capture([opts]) -> raw capture of the running code (see top). */
static int bt_capture(lua_State *L) {
  as_walk_opts o;
  read_opts(L, 1, &o, "capture");
  as_backtrace_push_current(L, as_state_get(L), &o);
  return 1;
}

/* core.expand(raw) -> frame tables. */
static int bt_expand(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  as_backtrace_expand(L, 1);
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
  as_backtrace_expand(L, -1);
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
  o.skip = level > 1 ? (int)(level > 1000000 ? 1000000 : level - 1) : 0;
  as_backtrace_push_current(L, st, &o);
  if (as_hook_push(L, st, "format")) {   /* the policy overrides the text */
    lua_insert(L, -2);
    if (msg != NULL) lua_pushstring(L, msg);
    else lua_pushnil(L);
    lua_insert(L, -2);
    as_backtrace_expand(L, -1);
    lua_remove(L, -2);
    lua_call(L, 2, 1);
    return 1;
  }
  push_text(L, -1, msg);
  return 1;
}

static int bt_traceback(lua_State *L) {
  return as_backtrace_traceback(L, 1);
}

void as_backtrace_open(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"debug_backtrace", bt_debug_backtrace}, {"traceback", bt_traceback},
    {"fork_backtrace", bt_fork_backtrace}, {"capture", bt_capture},
    {"expand", bt_expand}, {"global_name", bt_global_name},
    {"format_trace", bt_format_trace}, {NULL, NULL}
  };
  as_module_setfuncs(L, funcs);
}
