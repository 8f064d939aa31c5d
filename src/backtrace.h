/*
** backtrace.h: walking the async stack (astack.h) into frame tables.
*/
#ifndef ASYNCSTACK_BACKTRACE_H
#define ASYNCSTACK_BACKTRACE_H

#include <lua.h>
#include "module.h"
#include "fork.h"

/* Most frames a capture of a failure's raise site keeps (a stack overflow
** is deep); the rest are counted. */
#define AS_CAPTURE_LIMIT 256

typedef struct as_walk_opts {
  int skip;     /* visible frames to skip before the first one emitted */
  int limit;    /* most frames to emit; <= 0 for no limit */
  int async;    /* go on through awaiters/spawners past the fork root */
} as_walk_opts;

/* Frames in a raw capture: a flat table, AS_RAW_STRIDE slots per frame
** (see backtrace.c), plus `n` (frames) and `omitted` (frames left out). */
#define AS_RAW_STRIDE 11

/* Pushes the raw capture of the walk that starts at the innermost coroutine
** of fork `f` (running, suspended or just failed with its stack intact). */
void as_backtrace_push_fork(lua_State *L, as_state *st, as_fork *f,
                            const as_walk_opts *opts);

/* Pushes the raw capture of the walk that starts at the running code of L. */
void as_backtrace_push_current(lua_State *L, as_state *st,
                               const as_walk_opts *opts);

/* Pushes the frame tables (innermost first) of the raw capture at `raw`. */
void as_backtrace_expand(lua_State *L, int raw);

/* as.traceback / debug.traceback body: message at `arg`, level at arg + 1,
** options table at arg + 2. Pushes the result and returns 1. */
int as_backtrace_traceback(lua_State *L, int arg);

#endif
