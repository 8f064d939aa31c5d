/*
** framename.c: the names of functions that need the Lua API, for the
** renderer (render.h) and frame tables: global names as luaL_traceback
** finds them in package.loaded, and upvalue names (see framename.h).
*/
#include <string.h>
#include "framename.h"
#include "backtrace.h"
#include "module.h"
#include <lauxlib.h>


/* The functions of a capture to name: an open-addressing set of function
** identities (lua_topointer: equal for the same function value, distinct
** for different ones), in a userdata; slot i's name, once found, is at [i+1]
** of a table right above it. */
typedef struct fnslot {
  const void *fn;          /* NULL: empty */
  int named;
  int known;               /* taken from, or given to, the session's cache */
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

/* ------------------------------------------------------------ sessions */

/* Registry key of the names session: nil, or a table {depth = open
** sessions, cache = function -> its global name, or false when a full pass
** found none}. */
static const char session_key = 's';

/* Pushes the cache of the open session (function -> its global name, or
** false: it has none), or nothing and returns 0 when no session is open. */
static int push_session_cache(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &session_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    return 0;
  }
  if (lua_getfield(L, -1, "cache") != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "cache");
  }
  lua_remove(L, -2);
  return 1;
}

/* The closer's __close: ends its session (once). */
static int session_close(lua_State *L) {
  lua_Integer depth;
  if (!lua_istable(L, 1) || lua_getfield(L, 1, "open") != LUA_TBOOLEAN || !lua_toboolean(L, -1))
    return 0;
  lua_pushboolean(L, 0);
  lua_setfield(L, 1, "open");
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &session_key) != LUA_TTABLE) return 0;
  lua_getfield(L, -1, "depth");
  depth = lua_tointeger(L, -1) - 1;
  lua_pop(L, 1);
  if (depth <= 0) {
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &session_key);
  } else {
    lua_pushinteger(L, depth);
    lua_setfield(L, -2, "depth");
  }
  return 0;
}

static const char closer_meta_key = 'm';

/* core.names_session() -> closer: until the closer is closed (a <close>
** variable), the global name found for a function (or that it has none)
** is remembered and reused by every trace made meanwhile: a dump renders
** one per fork, an exception's text several, and they share their
** functions. Whoever opens one must not change package.loaded or the
** modules in it before closing it. */
static int names_session(lua_State *L) {
  lua_Integer depth = 0;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &session_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 2);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &session_key);
  }
  lua_getfield(L, -1, "depth");
  depth = lua_tointeger(L, -1);
  lua_pop(L, 1);
  lua_pushinteger(L, depth + 1);
  lua_setfield(L, -2, "depth");
  lua_createtable(L, 0, 1);
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "open");
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &closer_meta_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, session_close);
    lua_setfield(L, -2, "__close");
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &closer_meta_key);
  }
  lua_setmetatable(L, -2);
  return 1;
}

void as_names_open(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"names_session", names_session}, {NULL, NULL}
  };
  as_module_setfuncs(L, funcs);
}

/* Gives the session's cache what the pass found for the functions of the
** capture it did not know: their names, and, when the pass was complete
** (`complete`), false for the ones it did not name. */
static void remember(lua_State *L, as_fnset *set, int raw, lua_Integer n,
                     int names, int cache, int complete) {
  lua_Integer i;
  const as_rawhead *h = as_raw_head(L, raw);
  for (i = 0; i < n && h != NULL && i < h->n; i++) {
    fnslot *sl;
    as_raw_push_value(L, raw, h->frames[i].func);
    if (!lua_isfunction(L, -1)) {
      lua_pop(L, 1);
      continue;
    }
    sl = fnset_find(set, lua_topointer(L, -1));
    if (sl->known || (!sl->named && !complete)) {
      lua_pop(L, 1);
      continue;
    }
    sl->known = 1;
    if (sl->named) lua_rawgeti(L, names, (sl - set->slots) + 1);
    else lua_pushboolean(L, 0);
    lua_rawset(L, cache);
  }
}

/* ----------------------------------------------------------- the pass */

/* Pushes the set of the functions of frames [0, n) of the raw capture and
** the table of their global names (see fnset); returns the set. Inside a
** session, functions it knows are not looked for, and what the pass finds
** is remembered. */
as_fnset *as_names_push(lua_State *L, int raw, lua_Integer n) {
  lua_Integer i;
  unsigned cap = 16;
  as_fnset *set;
  const as_rawhead *h;
  int cache = 0, names;
  while (cap < 2 * (lua_Unsigned)n + 2 && cap < (1u << 30)) cap *= 2;
  set = (as_fnset *)lua_newuserdatauv(L, sizeof(as_fnset) + (cap - 1) * sizeof(fnslot), 0);
  memset(set, 0, sizeof(as_fnset) + (cap - 1) * sizeof(fnslot));
  set->mask = cap - 1;
  lua_newtable(L);
  names = lua_gettop(L);
  if (push_session_cache(L)) cache = lua_gettop(L);
  h = as_raw_head(L, raw);
  for (i = 0; i < n && h != NULL && i < h->n; i++) {
    as_raw_push_value(L, raw, h->frames[i].func);
    if (lua_isfunction(L, -1)) {
      fnslot *sl = fnset_find(set, lua_topointer(L, -1));
      if (sl->fn == NULL) {
        sl->fn = lua_topointer(L, -1);
        lua_pushvalue(L, -1);
        if (cache != 0 && lua_rawget(L, cache) != LUA_TNIL) {
          sl->named = sl->known = 1;    /* a string, or false: none */
          if (lua_type(L, -1) == LUA_TSTRING) lua_rawseti(L, names, (sl - set->slots) + 1);
          else lua_pop(L, 1);
        } else {
          lua_pop(L, 1);                /* nil, or the copy of the function */
          set->left++;
        }
      }
    }
    lua_pop(L, 1);
  }
  if (set->left > 0) {
    /* a pass that ends with functions left has looked everywhere */
    find_global_names(L, set, names);
    if (cache != 0) remember(L, set, raw, n, names, cache, set->left > 0);
  }
  if (cache != 0) lua_pop(L, 1);
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
