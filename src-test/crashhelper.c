/*
** crashhelper.c: asyncstack_crashhelper, a Lua module that crashes on
** request, for spec/crash_spec.lua and examples/crash.lua. Built into
** build/test/ by `make test` / `make test-helpers`; never installed.
**
**   null_deref()       SIGSEGV: a store through a NULL pointer
**   abort()            SIGABRT through abort(3)
**   stack_overflow()   SIGSEGV: unbounded C recursion hits the stack guard
**   crash_in_malloc([probe])
**                      SIGSEGV while glibc's malloc arena lock is held; with
**                      probe = true, calls malloc there instead of crashing
**                      (which deadlocks: the proof that the lock is held)
**   full_pipe()        the write end of a pipe that is full and never read
**                      (its read end stays open), for the crash report's
**                      bounded writes
**   sleep_then_error(s)
**                      sleeps s seconds in C (through signals), then raises
**                      from C: a coroutine calling it last dies in C code
**
** The crashing functions are noinline and named crash_*, so specs can find
** them among the native frames of a report.
*/
#define _GNU_SOURCE         /* fopencookie */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <time.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <lua.h>
#include <lauxlib.h>

#define NOINLINE __attribute__((noinline))
/* The NULL store is the point: keep UBSan (make asan) from stopping it first. */
#define UNCHECKED __attribute__((no_sanitize("undefined")))

/* volatile: the compiler cannot see that it is NULL, so it emits a real
** store (a visible NULL store could be turned into a trap instruction). */
static int *volatile null_pointer = NULL;

/* Never set: keeps the recursion formally finite for the compiler. */
static volatile int stop_recursion = 0;

NOINLINE UNCHECKED static void crash_null_deref(void) {
  *null_pointer = 42;
}

NOINLINE static void crash_abort(void) {
  abort();
}

/* Each level keeps a live array whose address escapes to the next level and
** reads it after the call returns: neither a tail call nor a loop. */
NOINLINE static int crash_recurse(volatile char *outer, unsigned depth) {
  volatile char frame[256];
  frame[0] = (char)depth;
  frame[255] = outer != NULL ? outer[0] : 0;
  if (stop_recursion) return frame[0];
  return crash_recurse(frame, depth + 1) + frame[255];
}

static int probe_malloc;

static void *idle_thread(void *arg) {
  return arg;
}

/* Called by glibc's malloc_stats() from inside fprintf(stderr, ...), which it
** does while holding each arena's mutex (malloc/malloc.c, __malloc_stats). */
NOINLINE static ssize_t crash_in_stats_write(void *cookie, const char *buf, size_t size) {
  (void)cookie;
  (void)buf;
  if (probe_malloc) {
    /* 4096 bytes is past the tcache, so malloc must lock the arena; the
    ** volatile store keeps the compiler from dropping the malloc/free pair */
    static void *volatile sink;
    alarm(2);                        /* the deadlock ends in SIGALRM */
    sink = malloc(4096);
    free(sink);
    return (ssize_t)size;
  }
  crash_null_deref();
  return (ssize_t)size;
}

static int helper_null_deref(lua_State *L) {
  (void)L;
  crash_null_deref();
  return 0;
}

static int helper_abort(lua_State *L) {
  (void)L;
  crash_abort();
  return 0;
}

static int helper_stack_overflow(lua_State *L) {
  lua_pushinteger(L, crash_recurse(NULL, 0));
  return 1;
}

/* Returns false if malloc_stats never wrote to our stream (under ASan, whose
** malloc_stats is its own and takes no glibc lock). */
static int helper_crash_in_malloc(lua_State *L) {
  static const cookie_io_functions_t io = {NULL, crash_in_stats_write, NULL, NULL};
  FILE *saved = stderr, *stream;
  pthread_t thread;
  probe_malloc = lua_toboolean(L, 1);
  /* glibc's malloc skips its locks while the process has never had a second
  ** thread; after one, every malloc that misses the tcache locks the arena,
  ** as in any threaded program. */
  if (pthread_create(&thread, NULL, idle_thread, NULL) != 0 ||
      pthread_join(thread, NULL) != 0)
    return luaL_error(L, "crash_in_malloc: cannot start a thread");
  stream = fopencookie(NULL, "w", io);
  if (stream == NULL) return luaL_error(L, "crash_in_malloc: fopencookie failed");
  setvbuf(stream, NULL, _IONBF, 0);  /* each fprintf reaches the callback */
  stderr = stream;
  malloc_stats();
  stderr = saved;
  fclose(stream);
  lua_pushboolean(L, 0);
  return 1;
}

static int helper_full_pipe(lua_State *L) {
  int fds[2], flags;
  static char chunk[4096];
  if (pipe(fds) != 0) return luaL_error(L, "full_pipe: pipe failed");
  flags = fcntl(fds[1], F_GETFL);
  fcntl(fds[1], F_SETFL, flags | O_NONBLOCK);
  while (write(fds[1], chunk, sizeof chunk) > 0) {}
  fcntl(fds[1], F_SETFL, flags);       /* blocking again, as a pipe usually is */
  lua_pushinteger(L, fds[1]);
  return 1;
}

static int helper_sleep_then_error(lua_State *L) {
  lua_Number secs = luaL_checknumber(L, 1);
  struct timespec ts;
  ts.tv_sec = (time_t)secs;
  ts.tv_nsec = (long)((secs - (lua_Number)ts.tv_sec) * 1e9);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
  return luaL_error(L, "sleep_then_error: slept %f s", (double)secs);
}

__attribute__((visibility("default"))) int luaopen_asyncstack_crashhelper(lua_State *L);

int luaopen_asyncstack_crashhelper(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"null_deref", helper_null_deref}, {"abort", helper_abort},
    {"stack_overflow", helper_stack_overflow},
    {"crash_in_malloc", helper_crash_in_malloc}, {"full_pipe", helper_full_pipe},
    {"sleep_then_error", helper_sleep_then_error}, {NULL, NULL}
  };
  luaL_newlib(L, funcs);
  return 1;
}
