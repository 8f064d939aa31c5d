/*
** backtrace.h: walking the async stack (astack.h) into raw captures
** (walk.c), and reading them back as frame tables or text (backtrace.c,
** through the renderer of render.h).
*/
#ifndef ASYNCSTACK_BACKTRACE_H
#define ASYNCSTACK_BACKTRACE_H

#include <stddef.h>
#include <lua.h>
#include "module.h"
#include "fork.h"

typedef struct as_walk_opts {
  int skip;     /* visible frames to skip before the first one emitted */
  int limit;    /* most frames to visit; <= 0 for no limit */
  int async;    /* go on through awaiters/spawners past the fork root */
  int ends;     /* > 0: keep only the first and last `ends` frames, count
                   the ones between (a text form that elides the middle) */
  int self;     /* emit the caller's level 0 even though it is ours
                   (debug.traceback(msg, 0): level 0 is traceback itself) */
  int compact;  /* a capture of a few frames may be compact (see below):
                   for the captures no Lua API hands out as they are */
} as_walk_opts;

/* Frames an error's raise-site capture keeps (a stack overflow is deep). */
#define AS_RAISE_SITE_LIMIT 256
/* The walk of an error's raise site: bounded, through the chain (its
** capture becomes the exception's trace: compact). */
#define AS_WALK_RAISE_SITE {0, AS_RAISE_SITE_LIMIT, 1, 0, 0, 1}
/* The walk of a rethrow site (wait handing an exception on): this fork only. */
#define AS_WALK_RETHROW_SITE {0, 32, 0, 0, 0, 0}

/* A raw capture is a Lua table: [1] is a userdata holding an as_rawhead and
** its frames (as_rawframe, innermost first), [2...] the Lua values those
** frames refer to by slot number (functions, strings; slot 0: none). So a
** frame costs a few C fields and the values it has, and a string used by
** several frames of a walk (a fork's name, a call-site name) is stored
** once. Capturing builds no strings of its own: names of functions are
** resolved when the capture is read. A table without the userdata (as
** { n = 0 }) reads as an empty capture.
** An error's raise site (as_walk_opts.compact) of a few frames (walk.c:
** all of them held back to the end, as it usually is) is compact instead:
** the userdata alone, its user value k holding slot k + 1 (one object,
** made at its size, where the error path counts every allocation). Only
** walk.c writes captures; read them with as_raw_head and
** as_raw_push_value, which take both forms (core.render and core.expand
** too). */
#define AS_RAW_MAGIC 0x61737263u    /* "asrc" */

typedef struct as_rawframe {
  lua_Integer fork_id;   /* the fork it runs in (0: none; for a spawn site
                            whose spawner has ended, that spawner's id) */
  lua_Integer from_id;   /* boundary: the fork it comes from (0: none) */
  lua_Integer info;      /* AS_RAW_INFO_OF(flags, boundary, via) */
  int line;              /* current line (0: none) */
  int func;              /* slots of: the function, */
  int name;              /* its call-site name and */
  int namewhat;          /* its kind, */
  int fork_name;         /* the name of fork_id, */
  int from_name;         /* the name of from_id, */
  int holder;            /* a root's spawning function (names it by upvalue) */
} as_rawframe;

typedef struct as_rawhead {
  unsigned magic;        /* AS_RAW_MAGIC */
  int n;                 /* frames */
  int cap;               /* room for frames after the head */
  int omitted;           /* frames past the limit */
  int skipped;           /* `ends` walk: frames left out before frame */
  int skip_at;           /* skip_at (0-based) */
  as_rawframe frames[1]; /* cap of them (the array goes on) */
} as_rawhead;

/* Bytes of a capture's userdata with room for `cap` frames. */
#define AS_RAW_SIZE(cap) \
  (offsetof(as_rawhead, frames) + (size_t)(cap) * sizeof(as_rawframe))

/* The head of the raw capture at index `raw` (anchored by it), or NULL
** when it has none (an empty capture) or it is not one. */
const as_rawhead *as_raw_head(lua_State *L, int raw);

/* Pushes the value in `slot` of the raw capture at absolute index `raw`
** (nil for slot 0). */
void as_raw_push_value(lua_State *L, int raw, int slot);

/* The INFO slot: AS_RFRAME_* flags (4 bits), enum as_boundary (3 bits) and
** the combinator a boundary comes through (index * 4 + enum as_via). */
#define AS_RAW_INFO_OF(flags, boundary, via) \
  ((lua_Integer)(flags) | ((lua_Integer)(boundary) << 4) | ((lua_Integer)(via) << 7))
#define AS_RAW_INFO_FLAGS(info) ((int)((info) & 15))
#define AS_RAW_INFO_BOUNDARY(info) ((int)(((info) >> 4) & 7))
#define AS_RAW_INFO_VIA(info) ((info) >> 7)

/* Pushes the raw capture of the walk that starts at the innermost coroutine
** of fork `f` (running, suspended or just failed with its stack intact). */
void as_backtrace_push_fork(lua_State *L, as_state *st, as_fork *f,
                            const as_walk_opts *opts);

/* Pushes the raw capture of the walk that starts at the running code of L. */
void as_backtrace_push_current(lua_State *L, as_state *st,
                               const as_walk_opts *opts);

/* Whether a walk's site is shown already: the stack slot of its function,
** its line, the id of its fork (0: none). Must leave the stack as it is. */
typedef int (*as_walk_site_shown)(lua_State *L, int fn, long line,
                                  lua_Integer fork, void *ud);

/* as_backtrace_push_current (opts->ends is ignored), except that when the
** walk has a site (its first Lua frame with a line) and `shown` says it is
** shown already, it pushes false and makes no capture (walk.c). */
void as_walk_push_current_unless(lua_State *L, as_state *st, const as_walk_opts *opts,
                                 as_walk_site_shown shown, void *ud);

/* Pushes the raw capture of an error's raise site: the running code of L,
** bounded (AS_WALK_RAISE_SITE). For the hooks of module.h. */
void as_backtrace_push_raise_site(lua_State *L, as_state *st);

/* Pushes what a wait handing on the exception at `exc` gives the rethrow
** note (hook on_rethrow): the capture of this fork's frames at the wait
** (AS_WALK_RETHROW_SITE), or false when the exception's own trace already
** shows the wait's site (its waiter was waiting when it was raised), so
** that exception.lua would never print that capture. Walks only a few
** frames to tell (issue 17). */
void as_backtrace_push_rethrow_site(lua_State *L, as_state *st, int exc);

/* The first Lua frame with a line among the first `levels` levels of L's
** own stack (no other coroutine; C functions and frames with no line come
** before it): its function's address (as lua_topointer gives it) in *fn
** and its line in *line. 0 when there is none among them. Pushes nothing
** (walk.c: through the checked layout, one lua_getinfo "l"). */
int as_walk_own_site(lua_State *L, as_state *st, int levels, const void **fn, int *line);

/* Pushes "fork #id 'name'" (render.c's label): the one label of a fork. */
void as_backtrace_push_fork_label(lua_State *L, lua_Integer id, const char *name);

/* Pushes fork f's label and where it is: "fork #5 'worker' (blocked in sleep
** at t.lua:4)", "(runnable after yield at ...)", "(not started yet)"; with
** index > 0, "(index 3, blocked in ...)". For messages (timeouts) that name
** a fork the reader cannot see. */
void as_backtrace_push_fork_where(lua_State *L, as_state *st, as_fork *f, int index);

/* Pushes the frame tables (innermost first) of the raw capture at `raw`. */
void as_backtrace_expand(lua_State *L, int raw);

/* as.traceback / debug.traceback body: message at `arg`, level at arg + 1,
** options table at arg + 2. Pushes the result and returns 1. */
int as_backtrace_traceback(lua_State *L, int arg);

/* walk.c: checks (once, at open) that this Lua's CallInfo chain can be
** followed level by level; see walk.c. */
void as_walk_check_stepping(lua_State *L, as_state *st);

#endif
