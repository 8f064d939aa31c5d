/*
** memwalk_module.c: asyncstack_memwalk, a test-only Lua module over the
** memory walker (src/lualayout.c, src/memwalk.c, src/memwalk_verify.c), for
** spec/memwalk_spec.lua. Built into build/test/ by `make test-helpers`;
** never installed and not part of core.so.
**
**   release()                  lua_ident, and the layout's releases (or nil)
**   verify([minor])            true, message | false, "unverified: ..."
**                              (minor: check the layout of 5.4.minor instead
**                              of the running release's, to fake a mismatch)
**   frames([co [, level [, max [, reader]]]])
**                              the walker's frames of coroutine co (default:
**                              the running one, level 0 = frames itself) as
**                              tables {source, currentline, linedefined,
**                              what, namewhat, name, istailcall, global},
**                              and the walk's status: "complete",
**                              "truncated" or "failed". reader: "memcpy"
**                              (default) or "vm" (process_vm_readv on self).
**   walk_address(address, reader [, pid])
**                              the same from any integer address (to show
**                              that garbage gives "failed", not a crash), in
**                              this process or (reader "vm") in process pid
**   depth([co])                frames counted from memory
**   bench(co, rounds)          seconds per frame: walker, lua_getinfo "Slnt"
**   fuzz(co, seed, rounds)     walks through a reader that fails and
**                              corrupts reads: counts of complete,
**                              truncated, failed walks (no crash is the test)
*/
#define _GNU_SOURCE
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <lua.h>
#include <lauxlib.h>
#include "lualayout.h"
#include "memwalk.h"
#include "memwalk_verify.h"

#define MODULE_MAX_FRAMES 200000

static const as_lualayout *running_layout(void) {
  return as_lualayout_for_release(
      as_lualayout_parse_ident(as_lualayout_running_ident()));
}

static const as_lualayout *check_layout(lua_State *L) {
  const as_lualayout *lay = running_layout();
  if (lay == NULL)
    luaL_error(L, "asyncstack_memwalk: no layout for %s",
               as_lualayout_running_ident() ? as_lualayout_running_ident()
                                            : "this interpreter");
  return lay;
}

static int mw_release(lua_State *L) {
  const char *ident = as_lualayout_running_ident();
  const as_lualayout *lay = running_layout();
  if (ident != NULL) lua_pushstring(L, ident); else lua_pushnil(L);
  if (lay != NULL) lua_pushstring(L, lay->releases); else lua_pushnil(L);
  return 2;
}

static int mw_verify(lua_State *L) {
  char msg[512];
  const as_lualayout *lay = NULL;
  int ok;
  if (!lua_isnoneornil(L, 1)) {
    lay = as_lualayout_for_release((int)luaL_checkinteger(L, 1));
    luaL_argcheck(L, lay != NULL, 1, "no layout for this release");
  }
  ok = as_memwalk_verify(L, lay, msg, sizeof msg);
  lua_pushboolean(L, ok);
  lua_pushstring(L, msg);
  return 2;
}

static const char *status_name(as_memwalk_status st) {
  switch (st) {
    case AS_MEMWALK_COMPLETE: return "complete";
    case AS_MEMWALK_TRUNCATED: return "truncated";
    default: return "failed";
  }
}

static pid_t self_pid;

static void reader_from(lua_State *L, int arg, as_memwalk_reader *rd) {
  static const char *const names[] = {"memcpy", "vm", NULL};
  int which = luaL_checkoption(L, arg, "memcpy", names);
  if (which == 0) {
    rd->read = as_memwalk_read_memcpy;
    rd->ctx = NULL;
  } else {
    self_pid = getpid();
    rd->read = as_memwalk_read_vm;
    rd->ctx = &self_pid;
  }
}

static void push_frames(lua_State *L, const as_lualayout *lay,
                        const as_memwalk_reader *rd, uintptr_t thread,
                        const as_memwalk_frame *fr, int n) {
  int i;
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    char global[128];
    const as_memwalk_frame *f = &fr[i];
    lua_createtable(L, 0, 9);
    lua_pushstring(L, f->source); lua_setfield(L, -2, "source");
    lua_pushinteger(L, f->currentline); lua_setfield(L, -2, "currentline");
    lua_pushinteger(L, f->linedefined); lua_setfield(L, -2, "linedefined");
    lua_pushstring(L, f->what); lua_setfield(L, -2, "what");
    lua_pushstring(L, f->namewhat); lua_setfield(L, -2, "namewhat");
    if (*f->namewhat) { lua_pushstring(L, f->name); lua_setfield(L, -2, "name"); }
    lua_pushboolean(L, f->istailcall); lua_setfield(L, -2, "istailcall");
    lua_pushstring(L, status_name((as_memwalk_status)f->status));
    lua_setfield(L, -2, "status");
    if (f->status != AS_MEMWALK_FAILED &&
        as_memwalk_global_name(lay, rd, thread, f, global, sizeof global) == 1) {
      lua_pushstring(L, global);
      lua_setfield(L, -2, "global");
    }
    lua_rawseti(L, -2, i + 1);
  }
}

static int walk_and_push(lua_State *L, const as_lualayout *lay,
                         const as_memwalk_reader *rd, uintptr_t thread,
                         int level, int max) {
  as_memwalk_frame *fr;
  int n = 0;
  as_memwalk_status st;
  fr = (as_memwalk_frame *)lua_newuserdatauv(L, sizeof *fr * (size_t)(max > 0 ? max : 1), 0);
  st = as_memwalk_frames(lay, rd, thread, level, fr, max, &n);
  push_frames(L, lay, rd, thread, fr, n);
  lua_pushstring(L, status_name(st));
  return 2;
}

static int mw_frames(lua_State *L) {
  const as_lualayout *lay = check_layout(L);
  lua_State *co = lua_isnoneornil(L, 1) ? L : lua_tothread(L, 1);
  int level = (int)luaL_optinteger(L, 2, 0);
  int max = (int)luaL_optinteger(L, 3, 1000);
  as_memwalk_reader rd;
  luaL_argexpected(L, co != NULL, 1, "thread or nil");
  luaL_argcheck(L, max >= 0 && max <= MODULE_MAX_FRAMES, 3, "out of range");
  reader_from(L, 4, &rd);
  return walk_and_push(L, lay, &rd, (uintptr_t)co, level, max);
}

static pid_t other_pid;

static int mw_walk_address(lua_State *L) {
  const as_lualayout *lay = check_layout(L);
  uintptr_t address = (uintptr_t)luaL_checkinteger(L, 1);
  as_memwalk_reader rd;
  reader_from(L, 2, &rd);
  if (!lua_isnoneornil(L, 3)) {  /* another process's memory */
    luaL_argcheck(L, rd.read == as_memwalk_read_vm, 3, "needs the 'vm' reader");
    other_pid = (pid_t)luaL_checkinteger(L, 3);
    rd.ctx = &other_pid;
  }
  return walk_and_push(L, lay, &rd, address, 0, 64);
}

static int mw_depth(lua_State *L) {
  const as_lualayout *lay = check_layout(L);
  lua_State *co = lua_isnoneornil(L, 1) ? L : lua_tothread(L, 1);
  as_memwalk_reader rd;
  luaL_argexpected(L, co != NULL, 1, "thread or nil");
  rd.read = as_memwalk_read_memcpy;
  rd.ctx = NULL;
  lua_pushinteger(L, as_memwalk_depth(lay, &rd, (uintptr_t)co, MODULE_MAX_FRAMES));
  return 1;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Seconds per frame of: the walker (frames and names), lua_getinfo "Slnt"
** over lua_getstack levels (which is itself linear per level), for all
** frames of co, `rounds` times. */
static int mw_bench(lua_State *L) {
  const as_lualayout *lay = check_layout(L);
  lua_State *co = lua_tothread(L, 1);
  int rounds = (int)luaL_optinteger(L, 2, 100), r, n = 0, level;
  as_memwalk_reader rd;
  as_memwalk_frame *fr;
  lua_Debug ar;
  double t0, t1, t2;
  luaL_argexpected(L, co != NULL, 1, "thread");
  rd.read = as_memwalk_read_memcpy;
  rd.ctx = NULL;
  fr = (as_memwalk_frame *)lua_newuserdatauv(L, sizeof *fr * 4096, 0);
  t0 = now();
  for (r = 0; r < rounds; r++)
    as_memwalk_frames(lay, &rd, (uintptr_t)co, 0, fr, 4096, &n);
  t1 = now();
  for (r = 0; r < rounds; r++)
    for (level = 0; level < n && lua_getstack(co, level, &ar); level++)
      lua_getinfo(co, "Slnt", &ar);
  t2 = now();
  lua_pushnumber(L, (t1 - t0) / ((double)rounds * (n > 0 ? n : 1)));
  lua_pushnumber(L, (t2 - t1) / ((double)rounds * (n > 0 ? n : 1)));
  lua_pushinteger(L, n);
  return 3;
}

/* A reader over the own memory (process_vm_readv, so any address is safe)
** that fails some reads and corrupts a byte of others: what a walk of a
** running process can see when the reads are torn. */
typedef struct fuzz_reader {
  pid_t pid;
  uint64_t rng;
  unsigned fail_per_1024, flip_per_1024;
} fuzz_reader;

static unsigned fuzz_next(fuzz_reader *f) {
  f->rng ^= f->rng << 13;
  f->rng ^= f->rng >> 7;
  f->rng ^= f->rng << 17;
  return (unsigned)(f->rng >> 11);
}

static int fuzz_read(void *ctx, uintptr_t address, size_t length, void *out) {
  fuzz_reader *f = (fuzz_reader *)ctx;
  if (fuzz_next(f) % 1024 < f->fail_per_1024) return -1;
  if (as_memwalk_read_vm(&f->pid, address, length, out) != 0) return -1;
  if (length > 0 && fuzz_next(f) % 1024 < f->flip_per_1024)
    ((unsigned char *)out)[fuzz_next(f) % length] = (unsigned char)fuzz_next(f);
  return 0;
}

/* fuzz(co, seed, rounds) -> complete, truncated, failed counts of walks
** (with package.loaded searches) through the corrupting reader. */
static int mw_fuzz(lua_State *L) {
  const as_lualayout *lay = check_layout(L);
  lua_State *co = lua_tothread(L, 1);
  lua_Integer seed = luaL_checkinteger(L, 2);
  int rounds = (int)luaL_checkinteger(L, 3), r, counts[3] = {0, 0, 0};
  as_memwalk_frame *fr;
  fuzz_reader f;
  as_memwalk_reader rd;
  luaL_argexpected(L, co != NULL, 1, "thread");
  fr = (as_memwalk_frame *)lua_newuserdatauv(L, sizeof *fr * 256, 0);
  f.pid = getpid();
  f.rng = (uint64_t)seed * 2654435761u + 1;
  rd.read = fuzz_read;
  rd.ctx = &f;
  for (r = 0; r < rounds; r++) {
    int n = 0, i;
    as_memwalk_status st;
    char name[64];
    f.fail_per_1024 = fuzz_next(&f) % 8;
    f.flip_per_1024 = fuzz_next(&f) % 64;
    st = as_memwalk_frames(lay, &rd, (uintptr_t)co, 0, fr, 256, &n);
    for (i = 0; i < n && i < 2; i++)
      as_memwalk_global_name(lay, &rd, (uintptr_t)co, &fr[i], name, sizeof name);
    counts[st]++;
  }
  lua_pushinteger(L, counts[0]);
  lua_pushinteger(L, counts[1]);
  lua_pushinteger(L, counts[2]);
  return 3;
}

static const luaL_Reg mw_funcs[] = {
  {"release", mw_release},
  {"verify", mw_verify},
  {"frames", mw_frames},
  {"walk_address", mw_walk_address},
  {"depth", mw_depth},
  {"bench", mw_bench},
  {"fuzz", mw_fuzz},
  {NULL, NULL}
};

__attribute__((visibility("default")))
int luaopen_asyncstack_memwalk(lua_State *L);

int luaopen_asyncstack_memwalk(lua_State *L) {
  luaL_newlib(L, mw_funcs);
  return 1;
}
