/*
** memwalk_verify.c: checks a layout (lualayout.h) against the running
** interpreter. It builds a known stack -- a suspended coroutine and, in the
** running thread, a chain of local, field, method, upvalue and tail calls
** through a C function (pcall) -- then walks both threads with the memory
** walker (memwalk.h, reading the own memory) and compares every frame with
** lua_getstack/lua_getinfo("Slnt"), which know the real layout. The first
** difference makes the layout "unverified".
**
** This is the only part of the memory walker that uses the Lua API; it runs
** in normal Lua context (e.g. at require), never in a signal handler.
*/
#include <stdio.h>
#include <string.h>
#include <lua.h>
#include <lauxlib.h>
#include "memwalk_verify.h"

/* Frames compared per thread: the known stack plus whatever called verify. */
#define VERIFY_MAX_FRAMES 48

typedef struct verify_state {
  const as_lualayout *lay;
  char *msg;
  size_t msgsize;
  int checked;   /* the check function ran */
  int ok;
} verify_state;

static int mismatch(verify_state *vs, const char *thread, int level,
                    const char *field, const char *walked, const char *real) {
  snprintf(vs->msg, vs->msgsize,
           "unverified: %s frame %d: %s is '%s' from memory, '%s' from "
           "lua_getinfo (layout of Lua %s)",
           thread, level, field, walked, real, vs->lay->releases);
  vs->ok = 0;
  return 0;
}

static int mismatch_int(verify_state *vs, const char *thread, int level,
                        const char *field, int walked, int real) {
  char a[24], b[24];
  snprintf(a, sizeof a, "%d", walked);
  snprintf(b, sizeof b, "%d", real);
  return mismatch(vs, thread, level, field, a, b);
}

/*
** Compares the frames of `co` walked from memory with lua_getinfo's, from
** level 0. Returns 1 when every frame agrees.
*/
int as_memwalk_compare_thread(lua_State *co, const as_lualayout *lay,
                              const char *thread, char *msg, size_t msgsize) {
  as_memwalk_frame frames[VERIFY_MAX_FRAMES];
  as_memwalk_reader reader;
  pid_t pid;
  verify_state vs;
  lua_Debug ar;
  int n = 0, level;
  as_memwalk_status st;
  vs.lay = lay;
  vs.msg = msg;
  vs.msgsize = msgsize;
  vs.ok = 1;
  /* a layout under test may be wrong: read through the kernel when we may,
  ** so a wrong pointer fails the walk instead of crashing */
  as_memwalk_reader_self(&reader, &pid);
  st = as_memwalk_frames(lay, &reader, (uintptr_t)co, 0, frames,
                         VERIFY_MAX_FRAMES, &n);
  if (st == AS_MEMWALK_FAILED) {
    snprintf(msg, msgsize, "unverified: %s: the walk from memory failed "
             "after %d frames (layout of Lua %s)", thread, n, lay->releases);
    return 0;
  }
  for (level = 0; level < n; level++) {
    const as_memwalk_frame *f = &frames[level];
    const char *realname;
    if (!lua_getstack(co, level, &ar))
      return mismatch_int(&vs, thread, level, "frame count", n, level);
    lua_getinfo(co, "Slnt", &ar);
    realname = ar.name != NULL ? ar.name : "";
    if (strcmp(f->source, ar.short_src) != 0)
      return mismatch(&vs, thread, level, "short_src", f->source, ar.short_src);
    if (strcmp(f->what, ar.what) != 0)
      return mismatch(&vs, thread, level, "what", f->what, ar.what);
    if (f->currentline != ar.currentline)
      return mismatch_int(&vs, thread, level, "currentline", f->currentline,
                          ar.currentline);
    if (f->linedefined != ar.linedefined)
      return mismatch_int(&vs, thread, level, "linedefined", f->linedefined,
                          ar.linedefined);
    if (f->istailcall != (ar.istailcall != 0))
      return mismatch_int(&vs, thread, level, "istailcall", f->istailcall,
                          ar.istailcall != 0);
    if (strcmp(f->namewhat, ar.namewhat) != 0)
      return mismatch(&vs, thread, level, "namewhat", f->namewhat, ar.namewhat);
    if (*ar.namewhat != '\0' &&
        strncmp(f->name, realname, AS_MEMWALK_NAME_SIZE - 1) != 0)
      return mismatch(&vs, thread, level, "name", f->name, realname);
  }
  if (st == AS_MEMWALK_COMPLETE && lua_getstack(co, n, &ar))
    return mismatch_int(&vs, thread, n, "frame count", n, n + 1);
  return 1;
}

/* Called at the top of the known stack: compares both threads. */
static int verify_check(lua_State *L) {
  verify_state *vs = (verify_state *)lua_touserdata(L, lua_upvalueindex(1));
  lua_State *co = lua_tothread(L, 1);
  vs->checked = 1;
  vs->ok = as_memwalk_compare_thread(L, vs->lay, "running thread", vs->msg,
                                     vs->msgsize) &&
           (co == NULL || as_memwalk_compare_thread(co, vs->lay,
                              "suspended coroutine", vs->msg, vs->msgsize));
  lua_pushboolean(L, vs->ok);
  return 1;
}

static int verify_yield(lua_State *L) {
  return lua_yield(L, lua_gettop(L));
}

/* The known stack. `outer(co)` reaches check(co) through a pcall (a C
** frame), a tail call, an upvalue, a method, a field and a local; `body`,
** run in a coroutine, yields from a nested local function. */
static const char verify_chunk[] =
  "local check, yield = ...\n"
  "local M = {}\n"
  "local function leaf(co) local ok = check(co) return ok end\n"
  "function M.field(co) local r = leaf(co) return r end\n"
  "function M:method(co) local r = M.field(co) return r end\n"
  "local function up(...) local r = M:method(...) return r end\n"
  "local function tail(co) return up(co) end\n"
  "local function outer(co)\n"
  "  local ok, r = pcall(tail, co)\n"
  "  if not ok then error(r, 0) end\n"
  "  return r\n"
  "end\n"
  "local function body(a)\n"
  "  local function inner(x) local r = yield(x) return r end\n"
  "  local r = inner(a) return r\n"
  "end\n"
  "return outer, body\n";

int as_memwalk_verify(lua_State *L, const as_lualayout *lay, char *msg,
                      size_t msgsize) {
  verify_state vs;
  lua_State *co;
  int top = lua_gettop(L), nres = 0, status;
  if (msgsize > 0) msg[0] = '\0';
  if (lay == NULL) {
    const char *ident = as_lualayout_running_ident();
    lay = as_lualayout_for_release(as_lualayout_parse_ident(ident));
    if (lay == NULL) {
      snprintf(msg, msgsize, "unverified: no layout for the interpreter's "
               "release (%s)", ident != NULL ? ident : "no lua_ident");
      return 0;
    }
  }
  vs.lay = lay;
  vs.msg = msg;
  vs.msgsize = msgsize;
  vs.checked = 0;
  vs.ok = 0;
  if (!lua_checkstack(L, 8) ||
      luaL_loadbufferx(L, verify_chunk, sizeof verify_chunk - 1,
                       "=asyncstack.memwalk.verify", "t") != LUA_OK) {
    snprintf(msg, msgsize, "unverified: cannot load the known stack");
    lua_settop(L, top);
    return 0;
  }
  lua_pushlightuserdata(L, &vs);
  lua_pushcclosure(L, verify_check, 1);
  lua_pushcfunction(L, verify_yield);
  if (lua_pcall(L, 2, 2, 0) != LUA_OK) {  /* -> outer, body */
    snprintf(msg, msgsize, "unverified: the known stack failed: %s",
             lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
    lua_settop(L, top);
    return 0;
  }
  co = lua_newthread(L);                 /* outer, body, co */
  lua_rotate(L, -2, 1);                  /* outer, co, body */
  lua_xmove(L, co, 1);                   /* outer, co */
  lua_pushinteger(co, 1);
  status = lua_resume(co, L, 1, &nres);
  if (status != LUA_YIELD) {
    snprintf(msg, msgsize, "unverified: the known coroutine did not yield");
    lua_settop(L, top);
    return 0;
  }
  lua_pop(co, nres);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) { /* outer(co) */
    snprintf(msg, msgsize, "unverified: the known stack failed: %s",
             lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
    lua_settop(L, top);
    return 0;
  }
  lua_settop(L, top);
  if (!vs.checked) {
    snprintf(msg, msgsize, "unverified: the known stack did not run");
    return 0;
  }
  if (vs.ok) snprintf(msg, msgsize, "verified (layout of Lua %s)", lay->releases);
  return vs.ok;
}
