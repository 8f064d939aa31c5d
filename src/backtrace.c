/*
** backtrace.c: reading raw captures (walk.c) back, and the Lua entry points
** debug_backtrace, traceback, fork_backtrace, capture, expand and render.
**
** Text is never built here: a raw capture is read frame by frame into the
** renderer's plain C frames (render.h), written to a luaL_Buffer sink. What
** this file adds is what needs the Lua API: file/what from the function,
** and the names of functions:
**   - a global name, as luaL_traceback finds it: the first field of a table
**     in package.loaded (or a module itself) that holds the function, "_G."
**     dropped. One pass over package.loaded per call resolves every
**     function of the capture at once (Lua's own traceback searches once
**     per frame);
**   - for a fork's root function, which no call instruction names: an
**     upvalue of the function that spawned the fork; for a spawn site, an
**     upvalue of the next frame's function.
*/
#include <string.h>
#include "backtrace.h"
#include "render.h"
#include "framename.h"
#include "sched.h"
#include <lauxlib.h>

/* ------------------------------------------------------------ the sink */

static void buffer_write(as_sink *k, const char *s, size_t n) {
  luaL_addlstring((luaL_Buffer *)k->ud, s, n);
}

/* The frames of the userdata at idx, or NULL when it holds none. Trusts
** nothing: what is given to core.render may be anything. */
static const as_rawhead *frames_of(lua_State *L, int idx) {
  const as_rawhead *u = (const as_rawhead *)lua_touserdata(L, idx);
  size_t len = lua_rawlen(L, idx);
  if (u != NULL && len >= AS_RAW_SIZE(0) && u->magic == AS_RAW_MAGIC &&
      u->n >= 0 && u->n <= u->cap && len >= AS_RAW_SIZE(u->cap))
    return u;
  return NULL;
}

const as_rawhead *as_raw_head(lua_State *L, int raw) {
  const as_rawhead *h = NULL;
  int t = lua_type(L, raw);
  if (t == LUA_TUSERDATA) return frames_of(L, raw);   /* a compact capture */
  if (t == LUA_TTABLE) {
    if (lua_rawgeti(L, raw, 1) == LUA_TUSERDATA) h = frames_of(L, -1);
    lua_pop(L, 1);               /* the userdata is anchored by the capture */
  }
  return h;
}

void as_raw_push_value(lua_State *L, int raw, int slot) {
  if (slot <= 1) lua_pushnil(L);
  else if (lua_type(L, raw) == LUA_TUSERDATA) lua_getiuservalue(L, raw, slot - 1);
  else lua_rawgeti(L, raw, slot);
}

/* Checks that argument 1 is a raw capture (a table, or a compact one), with
** luaL_checktype's message for anything else. */
static void check_capture(lua_State *L) {
  if (!lua_istable(L, 1) && (!lua_isuserdata(L, 1) || as_raw_head(L, 1) == NULL))
    luaL_checktype(L, 1, LUA_TTABLE);
}

/* ------------------------------------------------------ reading frames */

typedef struct reader {
  as_rtrace t;
  lua_State *L;
  int raw;                 /* absolute index of the raw capture */
  const as_rawhead *head;  /* its frames (NULL: none) */
  as_fnset *set;           /* as_names_push's set, or NULL */
  int names;               /* and its table (the set is right below) */
  int full;                /* read every field (else what the text needs) */
  lua_Debug ar;            /* of the frame read last: fr->file points in */
} reader;

/* The string in `slot` of the capture at `raw`, or NULL. */
static const char *raw_string(lua_State *L, int raw, int slot) {
  const char *s;
  if (slot <= 1) return NULL;
  as_raw_push_value(L, raw, slot);
  s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  lua_pop(L, 1);                 /* still anchored by the capture */
  return s;
}

/* Fills fr from frame i of the capture. Leaves the stack as it found it
** (the text is being built in a luaL_Buffer above the reader's values).
** Fork fields are read only where a view prints them, unless r->full. */
static void read_frame(reader *r, lua_Integer i, as_rframe *fr) {
  lua_State *L = r->L;
  int raw = r->raw;
  lua_Debug *ar = &r->ar;
  const as_rawframe *rf = &r->head->frames[i];
  lua_Integer info = rf->info;
  memset(fr, 0, sizeof *fr);
  fr->flags = AS_RAW_INFO_FLAGS(info);
  as_raw_push_value(L, raw, rf->func);
  if (lua_isfunction(L, -1)) {
    int fn = lua_gettop(L);
    lua_pushvalue(L, fn);
    lua_getinfo(L, ">S", ar);
    fr->file = ar->short_src;
    fr->what = ar->what[0] == 'm' ? 'm' : ar->what[0] == 'C' ? 'C' : 'L';
    fr->linedefined = ar->linedefined;
    if (r->set != NULL) fr->global_name = as_names_global(L, r->set, r->names, fn);
    if (fr->global_name == NULL && (fr->flags & AS_RFRAME_ROOT)) {
      as_raw_push_value(L, raw, rf->holder);
      fr->guessed_name = as_names_upvalue(L, fn + 1, fn);
      lua_pop(L, 1);
    }
  } else {
    ar->what = NULL;
    ar->source = NULL;
  }
  lua_pop(L, 1);
  fr->line = rf->line;
  fr->name = raw_string(L, raw, rf->name);
  if (fr->name != NULL) fr->namewhat = raw_string(L, raw, rf->namewhat);
  fr->boundary = AS_RAW_INFO_BOUNDARY(info);
  if (r->full || fr->boundary != AS_BOUND_NONE || (fr->flags & AS_RFRAME_ROOT)) {
    fr->fork_id = rf->fork_id;
    fr->fork_name = raw_string(L, raw, rf->fork_name);
  }
  if (r->full || fr->boundary != AS_BOUND_NONE) {
    lua_Integer via = AS_RAW_INFO_VIA(info);
    fr->from_id = rf->from_id;
    fr->from_name = raw_string(L, raw, rf->from_name);
    fr->via = (int)(via % 4);
    fr->via_index = (int)(via / 4);
  }
}

static int reader_frame(as_rtrace *t, long i, as_rframe *fr) {
  reader *r = (reader *)t->ud;
  lua_State *L = r->L;
  read_frame(r, i, fr);
  if (fr->global_name == NULL && fr->guessed_name == NULL &&
      (fr->flags & AS_RFRAME_SPAWN_SITE) && i + 1 < r->t.n) {
    /* a spawn site: an upvalue of the next frame's function */
    as_raw_push_value(L, r->raw, r->head->frames[i].func);
    as_raw_push_value(L, r->raw, r->head->frames[i + 1].func);
    fr->guessed_name = as_names_upvalue(L, -1, -2);
    lua_pop(L, 2);
  }
  return 1;
}

/* Prepares r over the capture at `raw`; with_names pushes the names table
** (call before the buffer is set up: it stays below it). */
static void reader_init(reader *r, lua_State *L, int raw, int with_names) {
  memset(r, 0, sizeof *r);
  r->L = L;
  r->raw = lua_absindex(L, raw);
  r->t.frame = reader_frame;
  r->t.ud = r;
  r->head = as_raw_head(L, r->raw);
  if (r->head != NULL) {
    r->t.n = r->head->n;
    r->t.omitted = r->head->omitted;
    r->t.skipped = r->head->skipped;
    r->t.skip_at = r->head->skip_at;
  }
  if (with_names) {
    r->set = as_names_push(L, r->raw, r->t.n);
    r->names = lua_gettop(L);
  }
}

/* ------------------------------------------------------ frame tables */

static const char *const boundary_names[] = {
  NULL, "coroutine", "awaited", "spawned", "run", "unbridged"
};

static void field_str(lua_State *L, const char *k, const char *v) {
  if (v != NULL) {
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
  }
}

static void field_int(lua_State *L, const char *k, lua_Integer v) {
  if (v > 0) {
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
  }
}

static void field_flag(lua_State *L, const char *k, int on) {
  if (on) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, k);
  }
}

void as_backtrace_expand(lua_State *L, int raw) {
  reader r;
  lua_Integer i;
  int out;
  reader_init(&r, L, raw, 1);
  r.full = 1;
  lua_createtable(L, (int)r.t.n, 1);
  out = lua_gettop(L);
  for (i = 0; i < r.t.n; i++) {
    as_rframe fr;
    reader_frame(&r.t, (long)i, &fr);
    lua_createtable(L, 0, 16);
    as_raw_push_value(L, r.raw, r.head->frames[i].func);
    lua_setfield(L, -2, "func");
    if (fr.file != NULL) {
      field_str(L, "what", r.ar.what);
      field_str(L, "file", fr.file);
      field_str(L, "source", r.ar.source);
    }
    field_int(L, "linedefined", fr.linedefined);
    field_int(L, "line", fr.line);
    /* the call-site name, else the one the text uses (global, upvalue) */
    if (fr.name != NULL) {
      field_str(L, "function", fr.name);
      field_str(L, "namewhat", fr.namewhat);
    } else {
      field_str(L, "function", fr.global_name ? fr.global_name : fr.guessed_name);
    }
    field_int(L, "fork_id", fr.fork_id);
    field_int(L, "fork", fr.fork_id);        /* the old name of fork_id (README) */
    field_str(L, "fork_name", fr.fork_name);
    if (fr.boundary > AS_BOUND_NONE && fr.boundary <= AS_BOUND_UNBRIDGED)
      field_str(L, "boundary", boundary_names[fr.boundary]);
    field_int(L, "from_fork_id", fr.from_id);
    field_int(L, "from_fork", fr.from_id);   /* the old name of from_fork_id */
    field_str(L, "from_fork_name", fr.from_name);
    if (fr.via != AS_VIA_NONE) {
      luaL_Buffer b;
      as_sink k;
      luaL_buffinit(L, &b);
      as_sink_init(&k, buffer_write, &b);
      as_render_via(&k, fr.via, fr.via_index);
      luaL_pushresult(&b);
      lua_setfield(L, -2, "via");
    }
    field_flag(L, "root", fr.flags & AS_RFRAME_ROOT);
    field_flag(L, "tailcall", fr.flags & AS_RFRAME_TAILCALL);
    field_flag(L, "spawn_site", fr.flags & AS_RFRAME_SPAWN_SITE);
    field_flag(L, "after_tailcall", fr.flags & AS_RFRAME_AFTER_TAILCALL);
    lua_rawseti(L, out, i + 1);
  }
  if (r.t.omitted > 0) {
    lua_pushinteger(L, r.t.omitted);
    lua_setfield(L, out, "omitted");
  }
  lua_remove(L, r.names);
  lua_remove(L, r.names - 1);   /* the set */
}

/* ---------------------------------------------------------------- text */

enum view { VIEW_TRACEBACK, VIEW_DUMP, VIEW_PHP, VIEW_RETHROW };

/* Pushes the text of view `v` of the capture at `raw`. msg: the traceback's
** message (or NULL); for VIEW_RETHROW the `how` word, site its frame. */
static void push_view(lua_State *L, int raw, int v, const char *msg,
                      size_t msglen, long site, lua_Integer only_fork) {
  reader r;
  luaL_Buffer b;
  as_sink k;
  int names;
  luaL_checkstack(L, 24, "traceback");
  reader_init(&r, L, raw, 1);
  r.full = v == VIEW_RETHROW;
  if (only_fork > 0) {          /* the leading frames that run in that fork */
    long i = 0;
    while (i < r.t.n && r.head->frames[i].fork_id == only_fork) i++;
    r.t.n = i;
    r.t.omitted = r.t.skipped = r.t.skip_at = 0;
  }
  names = r.names;
  luaL_buffinit(L, &b);
  as_sink_init(&k, buffer_write, &b);
  switch (v) {
    case VIEW_TRACEBACK: as_render_traceback(&k, &r.t, msg, msglen); break;
    case VIEW_DUMP: as_render_dump(&k, &r.t); break;
    case VIEW_PHP: as_render_php(&k, &r.t); break;
    default: as_render_rethrow_head(&k, &r.t, msg, site); break;
  }
  luaL_pushresult(&b);
  lua_remove(L, names);
  lua_remove(L, names - 1);     /* the set */
}

/* core.render(raw, view [, msg | how, site | fork_id]) -> text. Views:
** "traceback" (msg optional), "dump" (fork_id: only the leading frames that
** run in that fork), "php", "rethrow" (how, 1-based site or nil). */
static int bt_render(lua_State *L) {
  static const char *const views[] = { "traceback", "dump", "php", "rethrow", NULL };
  int v;
  size_t len = 0;
  const char *msg;
  check_capture(L);
  v = luaL_checkoption(L, 2, NULL, views);
  if (v == VIEW_DUMP) {
    push_view(L, 1, v, NULL, 0, -1, luaL_optinteger(L, 3, 0));
    return 1;
  }
  msg = luaL_optlstring(L, 3, NULL, &len);
  if (v == VIEW_RETHROW && msg == NULL) msg = luaL_checkstring(L, 3);
  push_view(L, 1, v, msg, len, (long)luaL_optinteger(L, 4, 0) - 1, 0);
  return 1;
}

void as_backtrace_push_fork_label(lua_State *L, lua_Integer id, const char *name) {
  luaL_Buffer b;
  as_sink k;
  luaL_buffinit(L, &b);
  as_sink_init(&k, buffer_write, &b);
  as_render_fork_label(&k, id, name);
  luaL_pushresult(&b);
}

/* core.fork_label(id [, name]) -> "fork #id 'name'" */
static int bt_fork_label(lua_State *L) {
  lua_Integer id = luaL_checkinteger(L, 1);
  as_backtrace_push_fork_label(L, id, luaL_optstring(L, 2, NULL));
  return 1;
}

/* Frames looked at for the place a fork is blocked: the innermost Lua frame
** with a line is usually the first or second (a C primitive such as
** channel:recv may come first). */
#define WHERE_FRAMES 4

/* What a suspended fork is doing, in words (its await kind). */
static const char *await_words(const as_fork *f, const as_await_ops *ops) {
  static const struct { const char *kind, *words; } table[] = {
    {"sleep", "sleeping"}, {"wait", "waiting on a fork"},
    {"channel", "waiting on a channel"}, {"fd", "waiting on an fd"},
  };
  size_t i;
  if (f->status == AS_RUNNABLE) return "runnable after a yield";
  for (i = 0; i < sizeof table / sizeof table[0]; i++)
    if (strcmp(ops->name, table[i].kind) == 0) return table[i].words;
  return ops->name;
}

void as_backtrace_push_fork_where(lua_State *L, as_state *st, as_fork *f, int index) {
  luaL_Buffer b;
  as_sink k;
  reader r;
  as_rframe fr;
  as_walk_opts opts = {0, WHERE_FRAMES, 0, 0, 0, 0};
  long i, site = -1;
  int raw;
  as_backtrace_push_fork(L, st, f, &opts);
  raw = lua_gettop(L);
  reader_init(&r, L, raw, 0);
  for (i = 0; i < r.t.n && site < 0; i++) {
    read_frame(&r, i, &fr);
    if (fr.what != 'C' && fr.line > 0) site = i;
  }
  luaL_buffinit(L, &b);
  as_sink_init(&k, buffer_write, &b);
  as_render_fork_label(&k, f->id, f->name_cstr);
  as_render_str(&k, " (");
  if (index > 0) {
    as_render_str(&k, "index ");
    as_render_int(&k, index);
    as_render_str(&k, ", ");
  }
  if (!f->started) {
    as_render_str(&k, "not started yet)");
  } else {
    const as_await_ops *ops = as_sched_await_ops(st, f);
    if (ops != NULL && !as_fork_ended(f)) {
      as_render_str(&k, await_words(f, ops));
    } else {
      as_render_str(&k, as_fork_status_name(f->status));
    }
    if (site >= 0) {
      read_frame(&r, site, &fr);
      as_render_str(&k, " at ");
      as_render_location(&k, &fr);
    }
    as_render_str(&k, ")");
  }
  luaL_pushresult(&b);
  lua_remove(L, raw);
}

/* Whether the trace of the exception at `exc` (its raw capture is its
** field _raw) has a frame of fork `fork` whose function is at address fn
** (lua_topointer: for functions, equal addresses are equal values) and
** whose line is `line`, as exception.lua's rethrow sections match a site
** (they would not print a capture of it). */
static int site_in_trace(lua_State *L, int exc, const void *fn, long line, lua_Integer fork) {
  int shown = 0, main;
  const as_rawhead *h;
  if (!lua_istable(L, exc) || !lua_checkstack(L, 4)) return 0;
  lua_pushliteral(L, "_raw");
  lua_rawget(L, exc);
  main = lua_gettop(L);
  if ((h = as_raw_head(L, main)) != NULL) {
    int i;
    for (i = 0; i < h->n && !shown; i++) {
      const as_rawframe *rf = &h->frames[i];
      if (rf->fork_id != fork || rf->line != line) continue;
      as_raw_push_value(L, main, rf->func);
      shown = lua_topointer(L, -1) == fn && lua_isfunction(L, -1);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  return shown;
}

/* as_walk_site_shown for a rethrow: the walk's site in the trace of the
** exception at *(int *)ud. */
static int rethrow_site_shown(lua_State *L, int fn, long line, lua_Integer fork, void *ud) {
  return site_in_trace(L, *(int *)ud, lua_topointer(L, fn), line, fork);
}

/* Levels of its own stack a rethrow's quick look goes through. */
#define RETHROW_QUICK_LEVELS 8

/* The quick look of a rethrow (usually all it takes): whether the first
** Lua frame with a line on L's own stack (the frames above it, C functions
** or frames with no line, are never a site) is in the exception's trace:
** same fork, function and line. Then it is the site the walk would find,
** and shown: a trace holds visible frames only, so that function is not
** one of ours the walk would skip. 0: not known, the walk decides. */
static int rethrow_site_quick(lua_State *L, as_state *st, int exc) {
  const void *fn;
  int line;
  lua_Integer fork = st->sched != NULL && st->sched->running != NULL ?
                     st->sched->running->id : 0;
  if (!as_walk_own_site(L, st, RETHROW_QUICK_LEVELS, &fn, &line)) return 0;
  return site_in_trace(L, exc, fn, line, fork);
}

void as_backtrace_push_rethrow_site(lua_State *L, as_state *st, int exc) {
  as_walk_opts opts = AS_WALK_RETHROW_SITE;
  exc = lua_absindex(L, exc);
  if (rethrow_site_quick(L, st, exc)) {
    lua_pushboolean(L, 0);
    return;
  }
  as_walk_push_current_unless(L, st, &opts, rethrow_site_shown, &exc);
}

/* ------------------------------------------------------- entry points */

/* Raises for option `opt` (on top of the stack), which is not a positive
** integer, showing the integer given, or the type of anything else. */
static void bad_count_option(lua_State *L, const char *opt, const char *fname) {
  if (lua_isinteger(L, -1))
    luaL_error(L, "bad option '%s' to '%s' (positive integer expected, got %I)",
               opt, fname, (LUAI_UACINT)lua_tointeger(L, -1));
  luaL_error(L, "bad option '%s' to '%s' (positive integer expected, got %s)",
             opt, fname, luaL_typename(L, -1));
}

static int clamp_count(lua_Integer v) {
  return (int)(v > 1000000 ? 1000000 : v);
}

/* Reads {level=, limit=, async=} from the table at `idx` (absent: defaults). */
static void read_opts(lua_State *L, int idx, as_walk_opts *o, const char *fname) {
  lua_Integer level = 1;
  memset(o, 0, sizeof *o);
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
    o->limit = clamp_count(lua_tointeger(L, -1));
  }
  lua_getfield(L, idx, "async");
  o->async = lua_toboolean(L, -1);
  lua_pop(L, 3);
  o->skip = clamp_count(level - 1);
}

/* as.debug_backtrace([opts]) */
static int bt_debug_backtrace(lua_State *L) {
  as_walk_opts o;
  read_opts(L, 1, &o, "debug_backtrace");
  as_backtrace_push_current(L, as_state_get(L), &o);
  as_backtrace_expand(L, -1);
  return 1;
}

/* core.capture([opts]) -> raw capture of the running code (backtrace.h). */
static int bt_capture(lua_State *L) {
  as_walk_opts o;
  read_opts(L, 1, &o, "capture");
  as_backtrace_push_current(L, as_state_get(L), &o);
  return 1;
}

/* core.expand(raw) -> frame tables. */
static int bt_expand(lua_State *L) {
  check_capture(L);
  as_backtrace_expand(L, 1);
  return 1;
}

/* Pushes the raw capture of the stack of the fork at 1 (the running code
** when it runs), with the options at 2; fname names the call in errors. */
static void push_fork_capture(lua_State *L, const char *fname) {
  as_state *st = as_state_get(L);
  as_fork *f = as_fork_check(L, 1);
  as_walk_opts o;
  read_opts(L, 2, &o, fname);
  if (st->sched != NULL && st->sched->running == f && as_sched_fork_of(st, L) == f)
    as_backtrace_push_current(L, st, &o);
  else
    as_backtrace_push_fork(L, st, f, &o);
}

/* as.fork_backtrace(f [, opts]): the frames of any fork of the current run. */
static int bt_fork_backtrace(lua_State *L) {
  push_fork_capture(L, "fork_backtrace");
  as_backtrace_expand(L, -1);
  return 1;
}

/* core.fork_capture(f [, opts]) -> the raw capture fork_backtrace expands. */
static int bt_fork_capture(lua_State *L) {
  push_fork_capture(L, "fork_capture");
  return 1;
}

int as_backtrace_traceback(lua_State *L, int arg) {
  as_state *st = as_state_get(L);
  size_t len = 0;
  const char *msg = lua_tolstring(L, arg, &len);
  lua_Integer level;
  as_walk_opts o;
  if (msg == NULL && !lua_isnoneornil(L, arg)) {  /* non-string message */
    lua_pushvalue(L, arg);                         /* returned untouched */
    return 1;
  }
  read_opts(L, arg + 2, &o, "traceback");
  /* the positional level wins; else opts.level (default 1) */
  level = lua_isnoneornil(L, arg + 1) ? o.skip + 1 : luaL_checkinteger(L, arg + 1);
  if (st->sched == NULL || st->sched->running == NULL) {
    luaL_traceback(L, L, msg, (int)(level > 1000000 ? 1000000 : level));
    return 1;
  }
  /* level 0 is traceback itself, as in Lua; 1 its caller */
  o.self = level == 0;
  o.skip = level < 0 ? 1000000 : level > 1 ? clamp_count(level - 1) : 0;
  if (o.limit == 0) o.ends = AS_RENDER_HEAD;   /* the text elides the middle */
  as_backtrace_push_current(L, st, &o);
  push_view(L, -1, VIEW_TRACEBACK, msg, len, 0, 0);
  return 1;
}

/* core.walk_stepping([on]) -> whether walks step CallInfo links (walk.c);
** `on` false forces the lua_getstack fallback (specs test both paths). */
static int bt_walk_stepping(lua_State *L) {
  as_state *st = as_state_get(L);
  if (!lua_isnoneornil(L, 1)) st->ci_stepping = lua_toboolean(L, 1) && st->ci_stepping_ok;
  lua_pushboolean(L, st->ci_stepping);
  return 1;
}

static int bt_traceback(lua_State *L) {
  return as_backtrace_traceback(L, 1);
}

void as_backtrace_open(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"debug_backtrace", bt_debug_backtrace}, {"traceback", bt_traceback},
    {"fork_backtrace", bt_fork_backtrace}, {"fork_capture", bt_fork_capture},
    {"capture", bt_capture}, {"expand", bt_expand}, {"render", bt_render},
    {"fork_label", bt_fork_label}, {"walk_stepping", bt_walk_stepping}, {NULL, NULL}
  };
  as_module_setfuncs(L, funcs);
  as_names_open(L);
  lua_pushinteger(L, AS_RAISE_SITE_LIMIT);
  lua_setfield(L, -2, "RAISE_SITE_LIMIT");
  as_walk_check_stepping(L, as_state_get(L));
}
