/*
** memwalk_render.h: the one conversion from the memory walker's frames
** (memwalk.h, memwalk_forks.h) to the renderer's (render.h), shared by the
** crash report's async section (crash_async.c) and the `asyncstack`
** command (tool/), so both name a frame read from memory as the in-process
** traces name it. No Lua API, no allocation: async-signal-safe.
*/
#ifndef ASYNCSTACK_MEMWALK_RENDER_H
#define ASYNCSTACK_MEMWALK_RENDER_H

#include "memwalk_forks.h"
#include "render.h"

/*
** Fills *r from walker frame f, read from the coroutines of the state that
** `thread` (any of its threads) belongs to: location, kind, name (a called
** function's global name in package.loaded first, found into `global`,
** AS_MEMWALK_NAME_SIZE bytes; else its call-site name; else the walker's
** global or upvalue name), tail call, fork id and name, and the coroutine
** boundary at the first frame of a coroutine that resumed the one above.
** r borrows f's strings, `global` and fork_name. The caller adds what only
** it knows: AS_RFRAME_ROOT, and the boundary of a fork's first frame.
*/
void as_memwalk_render_frame(as_memwalk_target *t, uintptr_t thread,
                             const as_memwalk_frame *f, char *global,
                             long long fork_id, const char *fork_name,
                             as_rframe *r);

#endif
