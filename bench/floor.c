/*
** bench/floor.c: the floor of bench rows 11 and 14, a measuring instrument,
** not a scheduler anyone should use. It does the least a fork/wait/sleep
** scheduler shaped like asyncstack's must do (DESIGN §2: one flat C loop
** resumes every fork): per fork a coroutine and a handle userdata that
** anchors it, a live anchor for a fork nobody holds, a FIFO run queue, a
** timer heap; wait() yields until its target ends, sleep() until its
** deadline. Nothing else: no async stack, spawn site, names, status, stamps,
** cancellation, timeouts, cycle checks, outside readers or error handling
** beyond raising. `make bench` loads it as the "floor" side of rows 11 and
** 14, so the distance between raw Lua (or a peer), this floor and
** asyncstack is measured in one run: what the target leaves for
** everything asyncstack adds per fork.
**
**   floor.run(fn)      runs fn as the root fork until every fork ended
**   floor.fork(fn)     -> handle (fn gets no arguments)
**   floor.wait(h)      -> the first result of h's function
**   floor.sleep(s)
*/
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <time.h>
#include <lua.h>
#include <lauxlib.h>

typedef struct fork_ {
  lua_State *co;
  struct fork_ *waiter;     /* the one fork waiting for it, or NULL */
  int done, slot;
} fork_;

typedef struct {
  double deadline;
  fork_ *f;
} timer;

typedef struct {
  fork_ **q;                /* run queue: a ring */
  size_t head, len, cap;
  timer *heap;              /* binary min-heap by deadline */
  size_t nheap, heapcap;
  fork_ *running;
  int live_ref;             /* registry: slot -> handle, while it lives */
  int *free_slots, nfree, top_slot, slots_cap;
} floor_state;

static floor_state *state(lua_State *L) {
  return (floor_state *)lua_touserdata(L, lua_upvalueindex(1));
}

static void *grow(lua_State *L, void *p, size_t *cap, size_t size) {
  size_t n = *cap ? *cap * 2 : 64;
  void *q = realloc(p, n * size);
  if (q == NULL) luaL_error(L, "floor: out of memory");
  *cap = n;
  return q;
}

static void runq_push(lua_State *L, floor_state *s, fork_ *f) {
  if (s->len == s->cap) {   /* unroll the ring into a larger one */
    size_t i, old = s->cap;
    fork_ **q = (fork_ **)malloc((old ? old * 2 : 64) * sizeof *q);
    if (q == NULL) luaL_error(L, "floor: out of memory");
    for (i = 0; i < s->len; i++) q[i] = s->q[(s->head + i) % old];
    free(s->q);
    s->q = q;
    s->cap = old ? old * 2 : 64;
    s->head = 0;
  }
  s->q[(s->head + s->len++) % s->cap] = f;
}

static fork_ *runq_pop(floor_state *s) {
  fork_ *f = s->q[s->head];
  s->head = (s->head + 1) % s->cap;
  s->len--;
  return f;
}

static void heap_push(lua_State *L, floor_state *s, fork_ *f, double deadline) {
  size_t i;
  if (s->nheap == s->heapcap) s->heap = (timer *)grow(L, s->heap, &s->heapcap, sizeof *s->heap);
  for (i = s->nheap++; i > 0 && s->heap[(i - 1) / 2].deadline > deadline; i = (i - 1) / 2)
    s->heap[i] = s->heap[(i - 1) / 2];
  s->heap[i].deadline = deadline;
  s->heap[i].f = f;
}

static fork_ *heap_pop(floor_state *s) {
  fork_ *top = s->heap[0].f;
  timer last = s->heap[--s->nheap];
  size_t i = 0, c;
  while ((c = 2 * i + 1) < s->nheap) {
    if (c + 1 < s->nheap && s->heap[c + 1].deadline < s->heap[c].deadline) c++;
    if (!(s->heap[c].deadline < last.deadline)) break;
    s->heap[i] = s->heap[c];
    i = c;
  }
  if (s->nheap > 0) s->heap[i] = last;
  return top;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The fork's handle at the top of L anchored in the live table. */
static void live_add(lua_State *L, floor_state *s, fork_ *f) {
  if (s->nfree > 0) {
    f->slot = s->free_slots[--s->nfree];
  } else {
    f->slot = ++s->top_slot;
    if (s->top_slot >= s->slots_cap) {   /* room to give every slot back */
      size_t cap = (size_t)s->slots_cap;
      s->free_slots = (int *)grow(L, s->free_slots, &cap, sizeof *s->free_slots);
      s->slots_cap = (int)cap;
    }
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->live_ref);
  lua_pushvalue(L, -2);
  lua_rawseti(L, -2, f->slot);
  lua_pop(L, 1);
}

static void live_remove(lua_State *L, floor_state *s, fork_ *f) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->live_ref);
  lua_pushnil(L);
  lua_rawseti(L, -2, f->slot);
  lua_pop(L, 1);
  s->free_slots[s->nfree++] = f->slot;
}

static int floor_fork(lua_State *L) {
  floor_state *s = state(L);
  fork_ *f;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  f = (fork_ *)lua_newuserdatauv(L, sizeof *f, 1);
  f->waiter = NULL;
  f->done = 0;
  f->co = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, f->co, 1);
  lua_setiuservalue(L, -2, 1);   /* the handle anchors the coroutine */
  live_add(L, s, f);
  runq_push(L, s, f);
  return 1;
}

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  fork_ *f = (fork_ *)ctx;
  (void)status;
  lua_xmove(f->co, L, 1);        /* its first result (run() keeps one) */
  return 1;
}

static int floor_wait(lua_State *L) {
  floor_state *s = state(L);
  fork_ *f = (fork_ *)lua_touserdata(L, 1);
  luaL_argcheck(L, f != NULL, 1, "floor handle expected");
  if (f->done) return wait_k(L, 0, (lua_KContext)f);
  if (s->running == NULL) return luaL_error(L, "floor.wait: not inside a fork");
  f->waiter = s->running;
  return lua_yieldk(L, 0, (lua_KContext)f, wait_k);
}

static int floor_sleep(lua_State *L) {
  floor_state *s = state(L);
  double seconds = luaL_checknumber(L, 1);
  if (s->running == NULL) return luaL_error(L, "floor.sleep: not inside a fork");
  heap_push(L, s, s->running, now() + seconds);
  return lua_yield(L, 0);
}

static void sleep_until(double deadline) {
  struct timespec ts;
  ts.tv_sec = (time_t)deadline;
  ts.tv_nsec = (long)((deadline - (double)ts.tv_sec) * 1e9);
  if (ts.tv_nsec > 999999999L) ts.tv_nsec = 999999999L;
  clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

static int floor_run(lua_State *L) {
  floor_state *s = state(L);
  fork_ *root;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (s->live_ref != LUA_NOREF) return luaL_error(L, "floor.run: already running");
  lua_newtable(L);
  s->live_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_settop(L, 1);
  floor_fork(L);
  root = (fork_ *)lua_touserdata(L, -1);
  for (;;) {
    fork_ *f;
    int nres, status;
    if (s->nheap > 0) {
      double t = now();
      while (s->nheap > 0 && s->heap[0].deadline <= t) runq_push(L, s, heap_pop(s));
    }
    if (s->len == 0) {
      if (s->nheap == 0) break;
      sleep_until(s->heap[0].deadline);
      continue;
    }
    f = runq_pop(s);
    s->running = f;
    status = lua_resume(f->co, L, 0, &nres);
    s->running = NULL;
    if (status == LUA_OK) {
      lua_settop(f->co, nres > 0 ? 1 : 0);   /* keep the first result */
      if (nres == 0) lua_pushnil(f->co);
      f->done = 1;
      if (f->waiter != NULL) runq_push(L, s, f->waiter);
      live_remove(L, s, f);
    } else if (status != LUA_YIELD) {
      lua_xmove(f->co, L, 1);
      luaL_unref(L, LUA_REGISTRYINDEX, s->live_ref);
      s->live_ref = LUA_NOREF;
      return lua_error(L);
    }
  }
  luaL_unref(L, LUA_REGISTRYINDEX, s->live_ref);
  s->live_ref = LUA_NOREF;
  s->top_slot = s->nfree = 0;
  lua_xmove(root->co, L, 1);
  return 1;
}

static int floor_gc(lua_State *L) {
  floor_state *s = (floor_state *)lua_touserdata(L, 1);
  free(s->q);
  free(s->heap);
  free(s->free_slots);
  return 0;
}

__attribute__((visibility("default"))) int luaopen_floor(lua_State *L);

int luaopen_floor(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"run", floor_run}, {"fork", floor_fork}, {"wait", floor_wait},
    {"sleep", floor_sleep}, {NULL, NULL}
  };
  floor_state *s;
  lua_createtable(L, 0, 4);
  s = (floor_state *)lua_newuserdatauv(L, sizeof *s, 0);
  s->q = NULL; s->head = s->len = s->cap = 0;
  s->heap = NULL; s->nheap = s->heapcap = 0;
  s->running = NULL;
  s->live_ref = LUA_NOREF;
  s->free_slots = NULL;
  s->nfree = s->top_slot = s->slots_cap = 0;
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, floor_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  luaL_setfuncs(L, funcs, 1);
  return 1;
}
