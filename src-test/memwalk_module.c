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
**   descriptor(core_path)      the address of core.so's debug descriptor by
**                              its exported symbol, and by its ELF section
**                              (file's section header + load base)
**   forks(core_path [, reader])
**                              every fork of the running schedulers, read
**                              through the descriptor (memwalk_forks.h):
**                              {status=, error=, nscheds=, forks = {{id=,
**                              name=, status=, await=, seconds=, spawner=,
**                              spawn_line=, spawn_source=, waiters={...},
**                              walk=, frames={{file=, line=, what=, name=,
**                              namewhat=, linedefined=}...}}...}}
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
#include "memwalk_forks.h"
#include "fork.h"
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <stdio.h>

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

/* The descriptor's address by the exported symbol of the loaded core.so at
** `path` (dlopen RTLD_NOLOAD: only an object loaded already). */
static uintptr_t descriptor_by_symbol(lua_State *L, const char *path,
                                      uintptr_t *base) {
  void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD), *sym;
  Dl_info info;
  if (h == NULL) luaL_error(L, "asyncstack_memwalk: %s is not loaded", path);
  sym = dlsym(h, "asyncstack_debug_descriptor");
  dlclose(h);   /* still loaded by require */
  if (sym == NULL) luaL_error(L, "asyncstack_memwalk: no descriptor symbol in %s", path);
  if (base != NULL) *base = dladdr(sym, &info) ? (uintptr_t)info.dli_fbase : 0;
  return (uintptr_t)sym;
}

/* The descriptor's address as a tool without symbols finds it: the
** "asyncstack_debug" section's address in the file, plus the load base. */
static uintptr_t descriptor_by_section(const char *path, uintptr_t base) {
  FILE *fp = fopen(path, "rb");
  Elf64_Ehdr eh;
  Elf64_Shdr sh, strsh;
  uintptr_t found = 0;
  int i;
  if (fp == NULL) return 0;
  if (fread(&eh, sizeof eh, 1, fp) == 1 && eh.e_shentsize == sizeof sh &&
      fseek(fp, (long)(eh.e_shoff + (Elf64_Off)eh.e_shstrndx * sizeof sh), SEEK_SET) == 0 &&
      fread(&strsh, sizeof strsh, 1, fp) == 1) {
    for (i = 0; i < eh.e_shnum && found == 0; i++) {
      char name[32] = {0};
      if (fseek(fp, (long)(eh.e_shoff + (Elf64_Off)i * sizeof sh), SEEK_SET) != 0 ||
          fread(&sh, sizeof sh, 1, fp) != 1 ||
          fseek(fp, (long)(strsh.sh_offset + sh.sh_name), SEEK_SET) != 0 ||
          fread(name, 1, sizeof name - 1, fp) == 0)
        break;
      if (strcmp(name, "asyncstack_debug") == 0) found = base + sh.sh_addr;
    }
  }
  fclose(fp);
  return found;
}

static int mw_descriptor(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  uintptr_t base = 0, sym = descriptor_by_symbol(L, path, &base);
  lua_pushinteger(L, (lua_Integer)sym);
  lua_pushinteger(L, (lua_Integer)descriptor_by_section(path, base));
  return 2;
}

#define STATUS_NAME(e, name) name,
static const char *const fork_status_names[] = { AS_STATUS_LIST(STATUS_NAME) NULL };
#undef STATUS_NAME

#define FORKS_MAX 512
#define FORKS_FRAMES 20000

static void push_fork(lua_State *L, const as_memwalk_fork *f,
                      const as_memwalk_frame *frames) {
  int i;
  lua_createtable(L, 0, 12);
  lua_pushinteger(L, f->id); lua_setfield(L, -2, "id");
  if (f->name[0]) { lua_pushstring(L, f->name); lua_setfield(L, -2, "name"); }
  if (f->status >= 0 && f->status < AS_STATUS_COUNT) {
    lua_pushstring(L, fork_status_names[f->status]);
    lua_setfield(L, -2, "status");
  }
  if (f->await_name[0]) { lua_pushstring(L, f->await_name); lua_setfield(L, -2, "await"); }
  if (f->await_target) { lua_pushinteger(L, f->await_target); lua_setfield(L, -2, "await_target"); }
  lua_pushnumber(L, f->seconds_in_state); lua_setfield(L, -2, "seconds");
  lua_pushinteger(L, f->spawner_id); lua_setfield(L, -2, "spawner");
  lua_pushinteger(L, f->spawn_line); lua_setfield(L, -2, "spawn_line");
  lua_pushstring(L, f->spawn_source); lua_setfield(L, -2, "spawn_source");
  lua_createtable(L, f->nwaiters, 0);
  for (i = 0; i < f->nwaiters; i++) {
    lua_pushinteger(L, f->waiters[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "waiters");
  lua_pushstring(L, status_name(f->walk)); lua_setfield(L, -2, "walk");
  lua_createtable(L, f->nframes, 0);
  for (i = 0; i < f->nframes; i++) {
    const as_memwalk_frame *fr = &frames[f->first_frame + i];
    lua_createtable(L, 0, 6);
    lua_pushstring(L, fr->source); lua_setfield(L, -2, "file");
    lua_pushinteger(L, fr->currentline); lua_setfield(L, -2, "line");
    lua_pushinteger(L, fr->linedefined); lua_setfield(L, -2, "linedefined");
    lua_pushstring(L, fr->what); lua_setfield(L, -2, "what");
    if (fr->name[0]) { lua_pushstring(L, fr->name); lua_setfield(L, -2, "name"); }
    if (*fr->namewhat) { lua_pushstring(L, fr->namewhat); lua_setfield(L, -2, "namewhat"); }
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "frames");
}

static int mw_forks(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  static const char *const names[] = {"memcpy", "vm", NULL};
  int which = luaL_checkoption(L, 2, "vm", names), i;
  uintptr_t desc = descriptor_by_symbol(L, path, NULL);
  as_memwalk_reader rd;
  as_memwalk_target *target = (as_memwalk_target *)lua_newuserdatauv(L, sizeof *target, 0);
  as_memwalk_forks_result res;
  as_memwalk_fork *forks = (as_memwalk_fork *)lua_newuserdatauv(L, sizeof *forks * FORKS_MAX, 0);
  as_memwalk_frame *frames =
      (as_memwalk_frame *)lua_newuserdatauv(L, sizeof *frames * FORKS_FRAMES, 0);
  if (which == 0) {
    rd.read = as_memwalk_read_memcpy;
    rd.ctx = NULL;
  } else {
    self_pid = getpid();
    rd.read = as_memwalk_read_vm;
    rd.ctx = &self_pid;
  }
  res = as_memwalk_forks(target, &rd, desc, forks, FORKS_MAX, frames, FORKS_FRAMES);
  lua_createtable(L, 0, 4);
  lua_pushstring(L, status_name(res.status)); lua_setfield(L, -2, "status");
  if (res.error) { lua_pushstring(L, res.error); lua_setfield(L, -2, "error"); }
  lua_pushinteger(L, res.nscheds); lua_setfield(L, -2, "nscheds");
  lua_createtable(L, res.nforks, 0);
  for (i = 0; i < res.nforks; i++) {
    push_fork(L, &forks[i], frames);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "forks");
  return 1;
}

static const luaL_Reg mw_funcs[] = {
  {"descriptor", mw_descriptor},
  {"forks", mw_forks},
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
