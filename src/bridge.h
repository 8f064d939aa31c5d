/*
** bridge.h: the coroutine bridge (coroutine.resume/wrap/close and
** debug.traceback replacements) that keeps the async stack true.
*/
#ifndef ASYNCSTACK_BRIDGE_H
#define ASYNCSTACK_BRIDGE_H

#include <lua.h>
#include "module.h"

/* Puts the bridged functions in the global `coroutine` and `debug` tables
** (where they are not there already). */
void as_bridge_install(lua_State *L, as_state *st);

/* Puts back the originals where the bridged functions still stand. */
void as_bridge_uninstall(lua_State *L, as_state *st);

struct as_fork;

/* The raise-site trace stash (bridge.c): when an error leaves a bridged
** coroutine, the trace of its raise site is kept for the one place that
** turns that very value into an exception (the fork failing, or as.pcall)
** a moment later. It is dropped as soon as the error has evidently been
** handled: a new bridged resume starts, the fork suspends, or run ends. */

/* Pushes the stashed raw trace and returns 1 when it belongs to the error
** value at err_idx raised in fork f (then the stash is emptied); else 0. */
int as_bridge_take_stash(lua_State *L, as_state *st, const struct as_fork *f, int err_idx);

/* Empties the stash. Cheap when it is empty. */
void as_bridge_clear_stash(lua_State *L, as_state *st);

/* The upvalue that holds the module state in the core C function `fn`: 1
** for every one (module.h) but the function coroutine.wrap returns, whose
** upvalue 1 is its coroutine as in Lua (debug.getupvalue(g, 1) is the
** thread) and whose state is upvalue 2. as_is_internal_function asks. */
int as_bridge_state_upvalue(lua_CFunction fn);

#endif
