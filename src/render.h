/*
** render.h: the one trace renderer. Every text form of a trace (traceback,
** exceptions' tostring and rethrow sections, getTraceAsString, the dump's
** frame lines; later the crash report's async section) is written here,
** from plain C frame descriptions, to a sink.
**
** Layers (folly's symbolizer/printer split):
**
**    walker (walk.c)  ──►  raw capture (a Lua table, backtrace.h)
**                               │  backtrace.c reads it into as_rframe
**                               ▼
**    as_rtrace (frame i on demand) ──► as_render_<view> ──► as_sink
**                                                         ├ luaL_Buffer (backtrace.c)
**                                                         └ fd writer (crash handler)
**
** This file knows no Lua API: an as_rframe is plain C (strings are borrowed,
** NUL-terminated, and must stay valid while the frame is rendered), and a
** sink is a write callback. So the crash handler can describe the frames it
** reads itself (no allocation, no Lua call) and render them to a signal-safe
** fd sink: every function here only formats integers and copies strings into
** the sink (no malloc, no stdio, no locale), so it is async-signal-safe when
** the sink is.
**
** Naming (as_render_describe is the one function that names a frame) follows
** Lua 5.4's luaL_traceback: a global name (found in package.loaded, filled
** by the caller into global_name) first, then how the function was called
** (namewhat/name), then, for a fork's root or a spawn site that has neither,
** guessed_name (an upvalue of the spawning function), then "main chunk",
** "function <file:line>" or "?".
*/
#ifndef ASYNCSTACK_RENDER_H
#define ASYNCSTACK_RENDER_H

#include <stddef.h>

typedef struct as_sink {
  /* writes n bytes of s; never fails from the renderer's point of view (a
  ** sink that cannot write drops the bytes) */
  void (*write)(struct as_sink *sink, const char *s, size_t n);
  void *ud;                 /* the sink's own state (a luaL_Buffer, an fd...) */
  /* the renderer stages small pieces here and writes them in chunks (a
  ** trace is made of many short strings); every as_render_* function has
  ** written everything when it returns */
  size_t staged;
  char stage[512];
} as_sink;

/* Prepares a sink over `write` and `ud`. */
void as_sink_init(as_sink *k, void (*write)(as_sink *, const char *, size_t), void *ud);

/* A sink into a fixed buffer buf[0, size) (size >= 1), kept NUL-terminated;
** what does not fit is dropped. `len` counts the bytes kept. */
typedef struct as_text_sink {
  as_sink k;
  char *buf;
  size_t size, len;
} as_text_sink;

/* Empties buf and prepares t over it; returns its sink. */
as_sink *as_text_sink_init(as_text_sink *t, char *buf, size_t size);

/* What joins a frame to the one before it in a trace. */
enum as_boundary {
  AS_BOUND_NONE,
  AS_BOUND_COROUTINE,       /* this coroutine resumed the one above it */
  AS_BOUND_AWAITED,         /* fork `fork_id` waits for fork `from_id` */
  AS_BOUND_SPAWNED,         /* synthetic frame: the site that spawned from_id */
  AS_BOUND_RUN,             /* the code that called run(); from_id is the root */
  AS_BOUND_UNBRIDGED        /* the frames above ran outside the bridge */
};

/* Frame flags (also the raw capture's flags slot). */
enum {
  AS_RFRAME_ROOT = 1,           /* the fork's root function */
  AS_RFRAME_TAILCALL = 2,       /* it was tail-called: its callers are gone */
  AS_RFRAME_SPAWN_SITE = 4,     /* synthetic spawn-site frame (no line of its own) */
  AS_RFRAME_AFTER_TAILCALL = 8  /* a hidden frame above was tail-called */
};

/* How a combinator waits, for "awaited ... in wait_all (index 3)". */
enum as_via { AS_VIA_NONE, AS_VIA_WAIT_ALL, AS_VIA_WAIT_ANY };

typedef struct as_rframe {
  const char *file;         /* short_src; NULL when unknown (printed "nil") */
  long line;                /* current line; <= 0 when none */
  long linedefined;
  char what;                /* 'L' Lua, 'C', 'm' main chunk; 0 when unknown */
  const char *name;         /* call-site name (lua_getinfo "n"), or NULL */
  const char *namewhat;     /* "local", "upvalue", "field", ... or NULL */
  const char *global_name;  /* name in package.loaded ("mod.fn"), or NULL */
  const char *guessed_name; /* root/spawn site: an upvalue name, or NULL */
  long long fork_id;        /* 0: not in a fork */
  const char *fork_name;    /* or NULL */
  int boundary;             /* enum as_boundary */
  long long from_id;        /* the fork the boundary comes from */
  const char *from_name;
  int via;                  /* enum as_via, for AS_BOUND_AWAITED */
  int via_index;
  int flags;                /* AS_RFRAME_* */
} as_rframe;

/* A trace to render: frames fetched one at a time, so a view never needs
** them all in memory. */
typedef struct as_rtrace {
  /* fills *out with frame i (0 = innermost); returns 0 if it cannot */
  int (*frame)(struct as_rtrace *t, long i, as_rframe *out);
  void *ud;
  long n;                   /* frames in the capture */
  long skip_at;             /* the walker left `skipped` frames out before */
  long skipped;             /* frame skip_at (head/tail capture); 0: none */
  long omitted;             /* frames past the capture's limit */
} as_rtrace;

/* Frames shown at each end of a long traceback text. */
#define AS_RENDER_HEAD 100
#define AS_RENDER_TAIL 100

/* Writes exactly `s` (NUL-terminated). */
void as_render_str(as_sink *k, const char *s);
/* Decimal integer, as Lua's "%d". */
void as_render_int(as_sink *k, long long v);

/* The one function that names a frame (see top). php: PHP's form
** ("name()", "{closure}()", "{main chunk}", "{unknown}()"). */
void as_render_describe(as_sink *k, const as_rframe *fr, int php);

/* A profile's frame (flame graphs, profile.c): the name as
** as_render_describe finds it, without its kind ("burn", "string.rep",
** "main chunk", "function <app.lua:12>", "?"), then " (file:line)", or
** " ([C])" for a C function. */
void as_render_profile_frame(as_sink *k, const as_rframe *fr);

/* Where a suspended fork waits, as a profile's await-point frame (the
** in-process wall mode, profile.c, and `asyncstack record`, tool/record.c):
** AS_POINT_RUNNABLE "[runnable]", SLEEP "[sleeping]", YIELD "[yielding]",
** WAIT "[waiting on fork #<target>]", WAIT_ALL/WAIT_ANY "[waiting in
** wait_all]" / "[waiting in wait_any]", CHANNEL_SEND/RECV "[waiting on
** channel #<target> (send)]" / "(recv)]", FD_READ/WRITE "[waiting on fd
** <target> (read)]" / "(write)]", anything else "[suspended]". */
enum as_await_point {
  AS_POINT_RUNNABLE, AS_POINT_SLEEP, AS_POINT_YIELD, AS_POINT_WAIT,
  AS_POINT_WAIT_ALL, AS_POINT_WAIT_ANY, AS_POINT_CHANNEL_SEND,
  AS_POINT_CHANNEL_RECV, AS_POINT_FD_READ, AS_POINT_FD_WRITE, AS_POINT_OTHER
};
void as_render_await_point(as_sink *k, int point, long long target);

/* "file:line", or "file" when there is no line. */
void as_render_location(as_sink *k, const as_rframe *fr);

/* "fork #7" or "fork #7 'name'". */
void as_render_fork_label(as_sink *k, long long id, const char *name);

/* "wait_all (index 3)"; nothing for AS_VIA_NONE. */
void as_render_via(as_sink *k, int via, int index);

/* debug.traceback's shape: [msg "\n"] "stack traceback:" then "\n\t" and one
** line per frame, boundary, tail call and elision. msg may be NULL. */
void as_render_traceback(as_sink *k, as_rtrace *t, const char *msg, size_t msglen);

/* The dump's frame lines: "\t#i location in name", after a
** "\t[coroutine resumed at ...]" line at coroutine boundaries, joined by
** "\n" (no final newline). */
void as_render_dump(as_sink *k, as_rtrace *t);

/* getTraceAsString: "#i file(line): name()" per frame, "#N {main}" last. */
void as_render_php(as_sink *k, as_rtrace *t);

/* A rethrow section's head: "<how> at <location> in <fork label>", for the
** site frame `site` (or "<how> at ?" when site < 0). */
void as_render_rethrow_head(as_sink *k, as_rtrace *t, const char *how, long site);

#endif
