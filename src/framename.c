/*
** framename.c: the names of functions that need the Lua API, for the
** renderer (render.h) and frame tables: global names as luaL_traceback
** finds them in package.loaded, and upvalue names (see framename.h).
*/
#include <string.h>
#include "framename.h"
#include "backtrace.h"
#include <lauxlib.h>


/* The functions of a capture to name: an open-addressing set of function
** identities (lua_topointer: equal for the same function value, distinct
** for different ones), in a userdata; slot i's name, once found, is at [i+1]
** of a table right above it. */
typedef struct fnslot {
  const void *fn;          /* NULL: empty */
  int named;
} fnslot;

struct as_fnset {
  unsigned mask;           /* capacity - 1 (a power of two) */
  int left;                /* functions not named yet */
  fnslot slots[1];
};

static fnslot *fnset_find(as_fnset *set, const void *fn) {
  unsigned i = (unsigned)(((size_t)fn >> 4) ^ ((size_t)fn >> 12)) & set->mask;
  while (set->slots[i].fn != NULL && set->slots[i].fn != fn) i = (i + 1) & set->mask;
  return &set->slots[i];
}

/* The function at v, if it is one still to be named: its slot. */
static fnslot *wanted(lua_State *L, as_fnset *set, int v) {
  fnslot *sl;
  if (lua_type(L, v) != LUA_TFUNCTION) return NULL;
  sl = fnset_find(set, lua_topointer(L, v));
  return (sl->fn != NULL && !sl->named) ? sl : NULL;
}

/* Names slot sl with the string on top (popped), "_G." dropped. */
static void set_name(lua_State *L, as_fnset *set, int names, fnslot *sl) {
  const char *name = lua_tostring(L, -1);
  if (strncmp(name, LUA_GNAME ".", 3) == 0) {
    lua_pushstring(L, name + 3);
    lua_remove(L, -2);
  }
  lua_rawseti(L, names, (sl - set->slots) + 1);
  sl->named = 1;
  set->left--;
}

/* One pass over package.loaded in the order of luaL_traceback's findfield
** (depth 2, string keys only), naming each function of the set by its
** first match; stops when all are named. Calls no metamethod. */
static void find_global_names(lua_State *L, as_fnset *set, int names) {
  int loaded;
  luaL_checkstack(L, 8, NULL);
  if (lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE) != LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  loaded = lua_gettop(L);
  lua_pushnil(L);
  while (set->left > 0 && lua_next(L, loaded)) {   /* loaded+1 name, +2 module */
    if (lua_type(L, loaded + 1) == LUA_TSTRING) {
      fnslot *sl = wanted(L, set, loaded + 2);
      if (sl != NULL) {
        lua_pushvalue(L, loaded + 1);
        set_name(L, set, names, sl);
      } else if (lua_type(L, loaded + 2) == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, loaded + 2)) {          /* loaded+3 key, +4 value */
          if (lua_type(L, loaded + 3) == LUA_TSTRING &&
              (sl = wanted(L, set, loaded + 4)) != NULL) {
            lua_pushvalue(L, loaded + 1);
            lua_pushliteral(L, ".");
            lua_pushvalue(L, loaded + 3);
            lua_concat(L, 3);
            set_name(L, set, names, sl);
            if (set->left == 0) {
              lua_pop(L, 2);                       /* value, key */
              break;
            }
          }
          lua_pop(L, 1);
        }
      }
    }
    lua_pop(L, 1);
  }
  lua_settop(L, loaded - 1);
}

/* Pushes the set of the functions of frames [0, n) of the raw capture and
** the table of their global names (see fnset); returns the set. */
as_fnset *as_names_push(lua_State *L, int raw, lua_Integer n) {
  lua_Integer i;
  unsigned cap = 16;
  as_fnset *set;
  while (cap < 2 * (lua_Unsigned)n + 2 && cap < (1u << 30)) cap *= 2;
  set = (as_fnset *)lua_newuserdatauv(L, sizeof(as_fnset) + (cap - 1) * sizeof(fnslot), 0);
  memset(set, 0, sizeof(as_fnset) + (cap - 1) * sizeof(fnslot));
  set->mask = cap - 1;
  lua_newtable(L);
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, raw, i * AS_RAW_STRIDE + AS_RAW_FUNC);
    if (lua_isfunction(L, -1)) {
      fnslot *sl = fnset_find(set, lua_topointer(L, -1));
      if (sl->fn == NULL) {
        sl->fn = lua_topointer(L, -1);
        set->left++;
      }
    }
    lua_pop(L, 1);
  }
  if (set->left > 0) find_global_names(L, set, lua_gettop(L));
  return set;
}

/* The global name of the function at fn (a string anchored by `names`). */
const char *as_names_global(lua_State *L, as_fnset *set, int names, int fn) {
  const char *name = NULL;
  fnslot *sl = fnset_find(set, lua_topointer(L, fn));
  if (sl->fn != NULL && sl->named) {
    lua_rawgeti(L, names, (sl - set->slots) + 1);
    name = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  return name;
}

/* The same for functions known by their identities alone (lua_topointer
** values: a profiler's samples keep addresses, not values). */
as_fnset *as_names_push_identities(lua_State *L, const void *const *fns, size_t n) {
  size_t i;
  unsigned cap = 16;
  as_fnset *set;
  while (cap < 2 * n + 2 && cap < (1u << 30)) cap *= 2;
  set = (as_fnset *)lua_newuserdatauv(L, sizeof(as_fnset) + (cap - 1) * sizeof(fnslot), 0);
  memset(set, 0, sizeof(as_fnset) + (cap - 1) * sizeof(fnslot));
  set->mask = cap - 1;
  lua_newtable(L);
  for (i = 0; i < n && (unsigned)set->left < cap / 2; i++) {
    fnslot *sl;
    if (fns[i] == NULL) continue;
    sl = fnset_find(set, fns[i]);
    if (sl->fn == NULL) {
      sl->fn = fns[i];
      set->left++;
    }
  }
  if (set->left > 0) find_global_names(L, set, lua_gettop(L));
  return set;
}

const char *as_names_global_identity(lua_State *L, as_fnset *set, int names,
                                     const void *fn) {
  const char *name = NULL;
  fnslot *sl = fnset_find(set, fn);
  if (fn != NULL && sl->fn != NULL && sl->named) {
    lua_rawgeti(L, names, (sl - set->slots) + 1);
    name = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  return name;
}

/* The name under which the function at `fn` is an upvalue of the value at
** `holder`, or NULL. (Upvalue names are strings of the holder's prototype,
** which the capture keeps alive.) */
const char *as_names_upvalue(lua_State *L, int holder, int fn) {
  int i;
  if (!lua_isfunction(L, holder) || !lua_isfunction(L, fn)) return NULL;
  for (i = 1; i <= 255; i++) {
    const char *name = lua_getupvalue(L, holder, i);
    int same;
    if (name == NULL) return NULL;
    same = lua_rawequal(L, -1, fn);
    lua_pop(L, 1);
    if (same && *name != '\0') return name;
  }
  return NULL;
}
