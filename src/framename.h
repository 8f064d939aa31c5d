/*
** framename.h: names of functions found through the Lua API.
**
** A global name is what luaL_traceback prints first: the first field of a
** table in package.loaded (or a module itself) holding the function, by
** lua_next order at depth 2, string keys only, "_G." dropped. Looking it
** up per frame costs a walk over every loaded module, so a trace resolves
** all of its functions in one pass: as_names_push collects them in a set
** and names them, stopping early when all are named.
*/
#ifndef ASYNCSTACK_FRAMENAME_H
#define ASYNCSTACK_FRAMENAME_H

#include <lua.h>

typedef struct as_fnset as_fnset;

/* Pushes two values, the set of the functions of frames [0, n) of the raw
** capture at absolute index `raw` and a table of their names (read them with
** as_names_global), and returns the set. Calls no metamethod; may raise a
** memory error. */
as_fnset *as_names_push(lua_State *L, int raw, lua_Integer n);

/* The global name of the function at `fn`, or NULL; `names` is the table
** as_names_push pushed, which anchors the string. */
const char *as_names_global(lua_State *L, as_fnset *set, int names, int fn);

/* As as_names_push, for functions known by identity (lua_topointer of the
** value) rather than by value, as a profiler keeps them; the identity is
** only compared, never followed, so a function collected since is simply
** not found. as_names_global_identity reads a name from that set. */
as_fnset *as_names_push_identities(lua_State *L, const void *const *fns, size_t n);
const char *as_names_global_identity(lua_State *L, as_fnset *set, int names,
                                     const void *fn);

/* The name under which the function at `fn` is an upvalue of the value at
** `holder`, or NULL. (Upvalue names are strings of the holder's prototype,
** valid while the holder is.) */
const char *as_names_upvalue(lua_State *L, int holder, int fn);

/* Adds core.names_session (a batch of traces sharing one pass over
** package.loaded) to the module table on top. */
void as_names_open(lua_State *L);

#endif
