/*
** introspect.h: the scheduler's side of dump-on-signal (see introspect.c).
*/
#ifndef ASYNCSTACK_INTROSPECT_H
#define ASYNCSTACK_INTROSPECT_H

#include <lua.h>
#include "module.h"

/* A dump was requested by the signal and not printed yet. */
int as_introspect_dump_pending(void);

/* Prints the requested dump now (through the Lua hook "dump_signal"). */
void as_introspect_dump_now(lua_State *L, as_state *st);

#endif
