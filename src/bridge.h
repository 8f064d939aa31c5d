/*
** bridge.h: the coroutine bridge (coroutine.resume/wrap/close and
** debug.traceback replacements) that keeps the async stack true.
*/
#ifndef ASYNCSTACK_BRIDGE_H
#define ASYNCSTACK_BRIDGE_H

#include <lua.h>
#include "module.h"

/* Puts the bridged functions in the global `coroutine` and `debug` tables.
** Returns 1 when it replaced anything. */
int as_bridge_install(lua_State *L, as_state *st);

/* Puts back the originals where the bridged functions still stand. */
void as_bridge_uninstall(lua_State *L, as_state *st);

#endif
