#define _POSIX_C_SOURCE 200809L
/*
** Allocation-failure test host (`make oomtest`, issue 13), after the
** technique of Lua's own testes/api.lua: a lua_Alloc that fails after N
** allocations, and a sweep over N of a program that uses every feature.
**
**   oomhost PROGRAM.lua count
**   oomhost PROGRAM.lua every|next FROM TO STEP
**   oomhost script SCRIPT.lua [ARGS...]
**
** PROGRAM.lua returns a table with setup(), program() and check(); setup
** runs with no limit (it loads the module), program() runs with the limit,
** check() again with none (a following run() must work). Every N gets a
** fresh Lua state, so one failure point cannot hide or cause another.
**
** Counting: an allocation is a call that asks for a new block or a larger
** one (shrinking and freeing never fail). Mode "every": allocation N and
** every later one fail. Mode "next": only allocation N fails. Lua answers a
** failed allocation with an emergency collection and one retry of the same
** request; the retry fails too (and is not counted), otherwise "next" would
** never reach the code that asked.
**
** One line per N on stdout, flushed (tools/oomtest.lua reads them):
**   N <n> <outcome> allocs=<k> step=<program step> :: <message>
** outcomes: completed (the limit was never reached, or the failure was
** absorbed), memory (a clean "not enough memory" error), error (any other
** error: a defect), broken (the following check() failed: a defect), leak
** (blocks still allocated after lua_close, or file descriptors left open).
** A crash or ASan report ends the process, and so does a hang (SIGALRM after
** HANG_SECONDS); the driver reports it and restarts after that point.
**
** Mode "script" (the allocation-failure regression specs, e.g.
** spec/fixtures/alloc_fail_sched.lua) runs SCRIPT like lua5.4 does (`arg`
** set) in one state with the same allocator and one extra global:
**   failalloc(n)  allocation n from now (n >= 1) fails, once (Lua's retry
**                 after its emergency collection goes through)
**   failalloc()   disarms; returns true when the armed failure happened
** An error out of the script prints "oomhost: <error>" and exits 1.
**
** Test code: links Debian's liblua5.4; the module itself never links liblua.
*/
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

/* A failure point whose program runs longer than this has hung (the whole
** program takes well under a second): SIGALRM ends the host. */
#define HANG_SECONDS 20

typedef struct limiter {
  int active;          /* the limit applies */
  int every;           /* 1: N and all later fail; 0: only N */
  long limit;          /* N (1-based) */
  long count;          /* allocations counted while active */
  long live;           /* blocks allocated and not freed (always) */
  const void *failed_ptr; size_t failed_osize, failed_nsize; int just_failed;
  int fired;           /* the limit was reached (mode "script") */
  int retry_succeeds;  /* mode "script": Lua's retry of a failed request */
} limiter;

static void *limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
  limiter *m = (limiter *)ud;
  void *p;
  if (nsize == 0) {
    if (ptr) { free(ptr); m->live--; }
    return NULL;
  }
  if (m->active && (ptr == NULL || nsize > osize)) {   /* it grows */
    if (m->just_failed && ptr == m->failed_ptr && osize == m->failed_osize &&
        nsize == m->failed_nsize) {
      /* Lua's retry after its emergency collection: it fails too in the
      ** sweeps, and goes through (uncounted) in mode "script" */
      m->just_failed = 0;
      if (!m->retry_succeeds) return NULL;
    } else {
      m->just_failed = 0;
      m->count++;
      if (m->count == m->limit || (m->every && m->count > m->limit)) {
        m->just_failed = 1;
        m->fired = 1;
        m->failed_ptr = ptr; m->failed_osize = osize; m->failed_nsize = nsize;
        return NULL;
      }
    }
  }
  p = realloc(ptr, nsize);
  if (p && !ptr) m->live++;
  return p;
}

static void ignore_warning(void *ud, const char *msg, int tocont)
{
  (void)ud; (void)msg; (void)tocont;
}

/* What the open fds are, for a leak report: "3->socket:[123] ...". */
static void describe_fds(char *buf, size_t n)
{
  size_t used = 0;
  DIR *d;
  struct dirent *e;
  buf[0] = 0;
  d = opendir("/proc/self/fd");
  if (!d) return;
  while ((e = readdir(d)) && used + 64 < n) {
    char path[300], target[128];
    ssize_t k;
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
    k = readlink(path, target, sizeof target - 1);
    if (k < 0) continue;
    target[k] = 0;
    used += (size_t)snprintf(buf + used, n - used, " %s->%s", e->d_name, target);
  }
  closedir(d);
}

static int count_fds(void)
{
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  if (!d) return -1;
  while (readdir(d)) n++;
  closedir(d);
  return n;
}

/* Calls field `name` of the program table at index 1; returns the status
** and leaves the error value (or nothing) on the stack. */
static int call_field(lua_State *L, const char *name)
{
  lua_getfield(L, 1, name);
  return lua_pcall(L, 0, 0, 0);
}

/* Text of the error at the top, with the limit off; "not enough memory"
** anywhere in it makes it a memory error. */
static const char *error_text(lua_State *L)
{
  const char *s = luaL_tolstring(L, -1, NULL);
  lua_replace(L, -2);
  return s;
}

/* PROGRAM.is_memory(value at idx), with no limit: the error is the memory
** error itself or an exception made from it. */
static int is_memory(lua_State *L, int idx)
{
  int yes;
  idx = lua_absindex(L, idx);
  lua_getfield(L, 1, "is_memory");
  lua_pushvalue(L, idx);
  yes = lua_pcall(L, 1, 1, 0) == LUA_OK && lua_toboolean(L, -1);
  lua_pop(L, 1);
  return yes;
}

static void one_line(const char *s)
{
  for (; *s; s++) putchar(*s == '\n' ? '|' : *s);
}

static lua_State *new_state(limiter *m, const char *program)
{
  lua_State *L = lua_newstate(limited_alloc, m);
  if (!L) { fprintf(stderr, "oomhost: cannot create a state\n"); exit(2); }
  lua_setwarnf(L, ignore_warning, NULL);
  luaL_openlibs(L);
  if (luaL_dofile(L, program) != LUA_OK || !lua_istable(L, -1)) {
    fprintf(stderr, "oomhost: %s: %s\n", program, lua_tostring(L, -1));
    exit(2);
  }
  if (call_field(L, "setup") != LUA_OK) {
    fprintf(stderr, "oomhost: setup failed: %s\n", lua_tostring(L, -1));
    exit(2);
  }
  return L;
}

static void step_of(lua_State *L, char *buf, size_t n)
{
  lua_getglobal(L, "OOM_STEP");
  snprintf(buf, n, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
  lua_pop(L, 1);
}

/* "count": the program's allocations with no failure. */
static int count_allocations(const char *program)
{
  limiter m;
  lua_State *L;
  int st;
  memset(&m, 0, sizeof m);
  L = new_state(&m, program);
  m.active = 1; m.limit = -1; m.every = 0;
  st = call_field(L, "program");
  m.active = 0;
  if (st != LUA_OK) { printf("count failed: %s\n", error_text(L)); return 1; }
  printf("allocations %ld\n", m.count);
  lua_close(L);
  return 0;
}

/* Runs the program in a fresh state whose allocation n fails (and every
** later one when `every`), then check(); prints its "N ..." line. *fds0 is
** the count of open fds before, updated so each leak is reported once, at
** the N that caused it. Returns whether the program completed with fewer
** than n allocations (past the end). */
static int try_point(const char *program, int every, long n, int *fds0)
{
  limiter m;
  lua_State *L;
  char step[256], msg[600] = "";
  const char *outcome = "completed";
  long allocs;
  int st, fds;
  memset(&m, 0, sizeof m);
  L = new_state(&m, program);
  m.every = every; m.limit = n; m.active = 1;
  alarm(HANG_SECONDS);          /* a hang ends the host: the driver reports it */
  st = call_field(L, "program");
  alarm(0);
  m.active = 0;
  allocs = m.count;
  step_of(L, step, sizeof step);
  if (st != LUA_OK) {
    outcome = is_memory(L, -1) ? "memory" : "error";
    snprintf(msg, sizeof msg, "%s", error_text(L));
    lua_pop(L, 1);
  }
  lua_gc(L, LUA_GCCOLLECT);
  if (call_field(L, "check") != LUA_OK) {
    outcome = "broken";
    snprintf(msg, sizeof msg, "after the failure, check() failed: %s", error_text(L));
    lua_pop(L, 1);
  }
  lua_close(L);
  fds = count_fds();
  if (strcmp(outcome, "completed") == 0 || strcmp(outcome, "memory") == 0) {
    if (m.live != 0) {
      outcome = "leak";
      snprintf(msg, sizeof msg, "%ld blocks still allocated after lua_close", m.live);
    } else if (fds != *fds0) {
      char open_fds[400];
      describe_fds(open_fds, sizeof open_fds);
      outcome = "leak";
      snprintf(msg, sizeof msg, "%d file descriptors open after lua_close, %d before:%s", fds, *fds0, open_fds);
    }
  } else {
    size_t used = strlen(msg);
    if (m.live != 0)
      used += (size_t)snprintf(msg + used, sizeof msg - used, " (and %ld blocks left after lua_close)", m.live);
    if (fds != *fds0 && used < sizeof msg)
      snprintf(msg + used, sizeof msg - used, " (and %d file descriptors left open)", fds - *fds0);
  }
  *fds0 = fds;
  printf("N %ld %s allocs=%ld step=%s :: ", n, outcome, allocs, step);
  one_line(msg);
  putchar('\n');
  return every && strcmp(outcome, "completed") == 0 && allocs < n;
}

/* failalloc(n) arms the limiter for the n-th allocation from now;
** failalloc() disarms it and returns whether that allocation failed. */
static int script_failalloc(lua_State *L)
{
  limiter *m = (limiter *)lua_touserdata(L, lua_upvalueindex(1));
  lua_Integer n;
  if (lua_isnoneornil(L, 1)) {
    m->active = 0;
    lua_pushboolean(L, m->fired);
    m->fired = 0;
    return 1;
  }
  n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 1, 1, "n >= 1 expected");
  m->active = 0;               /* no counting while it is set */
  m->every = 0;
  m->fired = 0;
  m->just_failed = 0;
  m->limit = m->count + (long)n;
  m->active = 1;
  return 0;
}

/* (argc, argv, limiter): the script of mode "script", in protected mode. */
static int script_main(lua_State *L)
{
  int argc = (int)lua_tointeger(L, 1), i;
  char **argv = (char **)lua_touserdata(L, 2);
  luaL_openlibs(L);
  lua_pushlightuserdata(L, lua_touserdata(L, 3));
  lua_pushcclosure(L, script_failalloc, 1);
  lua_setglobal(L, "failalloc");
  lua_createtable(L, argc, 1);
  for (i = 2; i < argc; i++) {            /* arg[0] is the script */
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - 2);
  }
  lua_setglobal(L, "arg");
  if (luaL_loadfile(L, argv[2]) != LUA_OK) return lua_error(L);
  for (i = 3; i < argc; i++) lua_pushstring(L, argv[i]);
  lua_call(L, argc - 3, 0);
  return 0;
}

static int run_script(int argc, char **argv)
{
  limiter m;
  lua_State *L;
  int status;
  memset(&m, 0, sizeof m);
  m.retry_succeeds = 1;
  L = lua_newstate(limited_alloc, &m);
  if (L == NULL) { fprintf(stderr, "oomhost: cannot create a state\n"); return 2; }
  lua_setwarnf(L, ignore_warning, NULL);
  lua_pushcfunction(L, script_main);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  lua_pushlightuserdata(L, &m);
  status = lua_pcall(L, 3, 0, 0);
  m.active = 0;
  if (status != LUA_OK)   /* an Exception has __tostring */
    fprintf(stderr, "oomhost: %s\n", luaL_tolstring(L, -1, NULL));
  lua_close(L);
  return status == LUA_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
  const char *program, *mode;
  long n, from, to, stepn;
  int every, fds0;
  if (argc < 3) {
    fprintf(stderr, "usage: oomhost PROGRAM.lua count | every|next FROM TO STEP\n"
                    "       oomhost script SCRIPT.lua [ARGS...]\n");
    return 2;
  }
  if (strcmp(argv[1], "script") == 0) return run_script(argc, argv);
  program = argv[1];
  mode = argv[2];
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (strcmp(mode, "count") == 0) return count_allocations(program);
  if (argc < 6) { fprintf(stderr, "oomhost: FROM TO STEP expected\n"); return 2; }
  every = strcmp(mode, "every") == 0;
  if (!every && strcmp(mode, "next") != 0) { fprintf(stderr, "oomhost: bad mode %s\n", mode); return 2; }
  from = atol(argv[3]);
  to = atol(argv[4]);
  stepn = atol(argv[5]);
  if (stepn < 1) stepn = 1;
  fds0 = count_fds();
  for (n = from; n <= to; n += stepn)
    if (try_point(program, every, n, &fds0)) break;   /* past the end */
  return 0;
}
