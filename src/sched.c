/*
** sched.c: as.run's scheduler loop, the run queue and timer heap, fork
** creation, and the blocking primitives (sleep, yield, wait, pwait).
**
** Every primitive that blocks follows one protocol: validate arguments, check
** the caller may suspend (enter_suspend), register what it waits on, mark the
** fork (mark_suspended) and lua_yieldk with zero values. Its continuation runs
** when the loop resumes the fork and reads the outcome from the fork struct
** (`wake`), so nothing travels through the yield itself and the bridge can pass
** the yield through nested coroutines without knowing what it is.
*/
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sched.h"
#include "backtrace.h"
#include "bridge.h"
#include "introspect.h"
#include <lauxlib.h>

as_sched *volatile as_sched_active = NULL;

#define AS_SCHED_MT "asyncstack.Scheduler"

double as_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Allocation through Lua's allocator, raising on failure. */
static void *sched_realloc(lua_State *L, void *p, size_t oldsz, size_t newsz) {
  void *ud;
  lua_Alloc alloc = lua_getallocf(L, &ud);
  void *np = alloc(ud, p, oldsz, newsz);
  if (np == NULL && newsz > 0) luaL_error(L, "not enough memory");
  return np;
}

/* ---------------------------------------------------------------- run queue */

static void runq_push(lua_State *L, as_sched *s, as_fork *f) {
  if (s->rq_len == s->rq_cap) {
    size_t newcap = s->rq_cap ? s->rq_cap * 2 : 64, i;
    as_fork **nq = (as_fork **)sched_realloc(L, NULL, 0, newcap * sizeof *nq);
    for (i = 0; i < s->rq_len; i++) nq[i] = s->runq[(s->rq_head + i) % s->rq_cap];
    sched_realloc(L, s->runq, s->rq_cap * sizeof *nq, 0);
    s->runq = nq;
    s->rq_cap = newcap;
    s->rq_head = 0;
  }
  s->runq[(s->rq_head + s->rq_len) % s->rq_cap] = f;
  s->rq_len++;
}

static as_fork *runq_pop(as_sched *s) {
  as_fork *f = s->runq[s->rq_head];
  s->rq_head = (s->rq_head + 1) % s->rq_cap;
  s->rq_len--;
  return f;
}

/* ------------------------------------------------------------- timer heap */

static int timer_before(const as_fork *a, const as_fork *b) {
  return a->deadline < b->deadline ||
         (a->deadline == b->deadline && a->timer_seq < b->timer_seq);
}

static void heap_set(as_sched *s, int i, as_fork *f) {
  s->heap[i] = f;
  f->heap_index = i;
}

static void heap_up(as_sched *s, int i) {
  as_fork *f = s->heap[i];
  while (i > 0) {
    int parent = (i - 1) / 2;
    if (!timer_before(f, s->heap[parent])) break;
    heap_set(s, i, s->heap[parent]);
    i = parent;
  }
  heap_set(s, i, f);
}

static void heap_down(as_sched *s, int i) {
  as_fork *f = s->heap[i];
  for (;;) {
    int child = 2 * i + 1;
    if (child >= s->heap_len) break;
    if (child + 1 < s->heap_len && timer_before(s->heap[child + 1], s->heap[child]))
      child++;
    if (!timer_before(s->heap[child], f)) break;
    heap_set(s, i, s->heap[child]);
    i = child;
  }
  heap_set(s, i, f);
}

static void timer_add(lua_State *L, as_sched *s, as_fork *f, double deadline) {
  if (s->heap_len == s->heap_cap) {
    int newcap = s->heap_cap ? s->heap_cap * 2 : 64;
    s->heap = (as_fork **)sched_realloc(L, s->heap, (size_t)s->heap_cap * sizeof *s->heap,
                                        (size_t)newcap * sizeof *s->heap);
    s->heap_cap = newcap;
  }
  f->deadline = deadline;
  f->timer_seq = s->timer_seq++;
  s->heap[s->heap_len] = f;
  f->heap_index = s->heap_len++;
  heap_up(s, f->heap_index);
}

static void timer_remove(as_sched *s, as_fork *f) {
  int i = f->heap_index;
  if (i < 0) return;
  f->heap_index = -1;
  s->heap_len--;
  if (i == s->heap_len) return;
  {
    as_fork *moved = s->heap[s->heap_len];
    heap_set(s, i, moved);
    heap_up(s, i);
    heap_down(s, moved->heap_index);
  }
}

/* ------------------------------------------------------------- live forks */

/* The live table is an array of slots (ids only grow, so a table keyed by
** id would churn through its hash part); freed slots are reused through a
** C free list. Looking a fork up by id is rare (spawners) and goes through
** the slot it had, checking the id. */

int as_sched_push_fork(lua_State *L, as_sched *s, const as_fork *f) {
  if (f == NULL || f->slot <= 0 || f->sched != s) {
    lua_pushnil(L);
    return 0;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->live_ref);
  lua_rawgeti(L, -1, f->slot);
  lua_remove(L, -2);
  return 1;
}

as_fork *as_sched_fork_at_slot(const as_sched *s, int slot) {
  if (s == NULL || slot <= 0 || slot >= s->slots_cap || s->slots == NULL) return NULL;
  return s->slots[slot];
}

as_fork *as_sched_spawner(lua_State *L, as_sched *s, const as_fork *f) {
  as_fork *p;
  if (f->spawner_id <= 0 || f->spawner_slot <= 0) return NULL;
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->live_ref);
  lua_rawgeti(L, -1, f->spawner_slot);
  p = (as_fork *)lua_touserdata(L, -1);
  lua_pop(L, 2);
  return (p != NULL && p->id == f->spawner_id) ? p : NULL;
}

/* live[new slot] = the fork userdata at ud_idx */
static void live_add(lua_State *L, as_sched *s, as_fork *f, int ud_idx) {
  int slot;
  ud_idx = lua_absindex(L, ud_idx);
  slot = s->nfree > 0 ? s->free_slots[--s->nfree] : ++s->top_slot;
  if (slot >= s->slots_cap) {   /* publish a complete new array, then free */
    int cap = s->slots_cap ? s->slots_cap * 2 : 64;
    int old_cap = s->slots_cap;
    as_fork **old = s->slots, **grown;
    while (cap <= slot) cap *= 2;
    grown = (as_fork **)sched_realloc(L, NULL, 0, (size_t)cap * sizeof *grown);
    memset(grown, 0, (size_t)cap * sizeof *grown);
    if (old != NULL) memcpy(grown, old, (size_t)old_cap * sizeof *grown);
    s->slots = grown;
    __atomic_signal_fence(__ATOMIC_RELEASE);
    s->slots_cap = cap;
    sched_realloc(L, old, (size_t)old_cap * sizeof *grown, 0);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->live_ref);
  lua_pushvalue(L, ud_idx);
  lua_rawseti(L, -2, slot);
  lua_pop(L, 1);
  f->slot = slot;
  s->slots[slot] = f;
  s->nlive++;
}

static void live_remove(lua_State *L, as_sched *s, as_fork *f) {
  if (s->nfree == s->free_cap) {
    int cap = s->free_cap ? s->free_cap * 2 : 64;
    s->free_slots = (int *)sched_realloc(L, s->free_slots, (size_t)s->free_cap * sizeof(int),
                                         (size_t)cap * sizeof(int));
    s->free_cap = cap;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->live_ref);
  lua_pushnil(L);
  lua_rawseti(L, -2, f->slot);
  lua_pop(L, 1);
  s->free_slots[s->nfree++] = f->slot;
  s->slots[f->slot] = NULL;
  f->slot = 0;
  s->nlive--;
}

void as_sched_reserve_frame(lua_State *L, as_fork *f) {
  if (!as_astack_full(&f->astack)) return;
  as_sched_push_fork(L, f->sched, f);
  as_fork_grow_astack(L, -1, f);
  lua_pop(L, 1);
}

/* ------------------------------------------------------- fork life cycle */

/* Undoes whatever the fork is registered with while suspended. */
static void unblock(as_sched *s, as_fork *f) {
  timer_remove(s, f);
  switch (f->await_kind) {
    case AS_AWAIT_WAIT: as_wait_unlink(f); break;
    case AS_AWAIT_CHANNEL: as_channel_unlink(f); break;
    case AS_AWAIT_FD: as_fdwait_unlink(s, f); break;
    default: break;
  }
}

void as_sched_wake(lua_State *L, as_sched *s, as_fork *f, int wake) {
  if (s == NULL) return;   /* run() has ended: nobody is left to wake */
  unblock(s, f);
  f->wake = (unsigned char)wake;
  f->status = AS_RUNNABLE;
  runq_push(L, s, f);
}


/* A fork ended: wake its waiters and drop it from the live set. */
static void finish(lua_State *L, as_sched *s, as_fork *f, int status) {
  f->status = (unsigned char)status;
  f->await_kind = AS_AWAIT_NONE;
  f->astack.depth = 0;
  f->since = s->now;
  as_wait_target_ended(L, s, f);
  live_remove(L, s, f);
}

/* The fork's coroutine raised: capture the async trace while its stack is
** intact, let the Lua policy turn the error into what waiters see, then close
** the coroutine (running its pending to-be-closed variables). */
static void fail(lua_State *L, as_state *st, as_sched *s, as_fork *f) {
  lua_State *co = f->thread;
  as_walk_opts opts = AS_WALK_RAISE_SITE;  /* bounded: a stack overflow is deep */
  int ud, cancelled = 0;
  as_sched_push_fork(L, s, f);
  ud = lua_gettop(L);
  lua_pushvalue(co, -1);
  lua_xmove(co, L, 1);                      /* error value */
  if (as_hook_push(L, st, AS_HOOK_ON_FAILURE)) {
    lua_pushvalue(L, ud + 1);
    /* the trace of the raise site: kept by the bridge when the error came
    ** out of a nested coroutine, else the fork's stack, still intact */
    if (as_exception_test(L, st, ud + 1)) lua_pushnil(L);   /* has its trace */
    else if (!as_bridge_take_stash(L, st, f, ud + 1))
      as_backtrace_push_fork(L, st, f, &opts);
    lua_pushvalue(L, ud);
    /* -> the value waiters see, and whether it is a cancellation */
    if (lua_pcall(L, 3, 2, 0) == LUA_OK) {
      cancelled = lua_toboolean(L, -1);
      lua_pop(L, 1);
      lua_replace(L, ud + 1);
    } else {
      lua_pop(L, 1);                        /* keep the raw error */
    }
  }
  lua_setiuservalue(L, ud, 4);
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->failed_ref);
  lua_pushvalue(L, ud);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  lua_pop(L, 2);
  lua_resetthread(co);
  lua_settop(co, 0);
  f->nresults = 0;
  if (cancelled) f->retrieved = 1;          /* a cancellation is no lost failure */
  else {
    /* nobody has seen it yet: report it if the fork is collected unseen */
    as_sched_push_fork(L, s, f);
    as_fork_enable_finalizer(L, -1);
    lua_pop(L, 1);
  }
  finish(L, s, f, cancelled ? AS_CANCELLED : AS_FAILED);
}

/* A fork cancelled before it ever ran: it ends without running, and its
** waiters see as.Cancelled. */
static void cancel_unstarted(lua_State *L, as_state *st, as_sched *s, as_fork *f) {
  int ud;
  as_sched_push_fork(L, s, f);
  ud = lua_gettop(L);
  lua_pushfstring(L, "fork #%I was cancelled before it started", (LUAI_UACINT)f->id);
  as_sched_push_kind(L, st, "Cancelled", lua_tostring(L, -1));
  lua_setiuservalue(L, ud, 4);
  lua_pop(L, 2);
  lua_settop(f->thread, 0);                 /* drop the function and arguments */
  f->nresults = 0;
  f->retrieved = 1;
  finish(L, s, f, AS_CANCELLED);
}

static void push_sorted_keys(lua_State *L, int t_idx);

/* Calls the on_unhandled hook with (error, {id =, name =}) of the failed
** fork at ud_idx, protected: a failing handler must not stop the loop. */
static void call_unhandled(lua_State *L, as_state *st, int ud_idx) {
  as_fork *f = (as_fork *)lua_touserdata(L, ud_idx);
  ud_idx = lua_absindex(L, ud_idx);
  f->reported = 1;
  if (!as_hook_push(L, st, AS_HOOK_ON_UNHANDLED)) return;
  lua_getiuservalue(L, ud_idx, 4);
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, f->id);
  lua_setfield(L, -2, "id");
  as_fork_push_name(L, ud_idx);
  lua_setfield(L, -2, "name");
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) lua_pop(L, 1);
}

void as_sched_report_unhandled(lua_State *L, as_state *st, int ud_idx) {
  as_fork *f = (as_fork *)lua_touserdata(L, ud_idx);
  as_sched *s = st->sched;
  ud_idx = lua_absindex(L, ud_idx);
  if (s == NULL || f->sched != s) {
    call_unhandled(L, st, ud_idx);
    return;
  }
  /* inside a finalizer of the running loop: queue it (a fresh table holds
  ** the error and the fork's id and name; the fork itself is going away) */
  f->reported = 1;
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->pending_ref);
  lua_createtable(L, 0, 3);
  lua_getiuservalue(L, ud_idx, 4);
  lua_setfield(L, -2, "error");
  lua_pushinteger(L, f->id);
  lua_setfield(L, -2, "id");
  as_fork_push_name(L, ud_idx);
  lua_setfield(L, -2, "name");
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  lua_pop(L, 1);
  s->pending = 1;
}

/* Delivers the reports queued by finalizers. The queue is swapped for a
** fresh one before any hook runs: a handler allocates, collections run,
** and the finalizers they run queue more reports, which go to the fresh
** queue and are delivered by the next round of this loop. */
static void drain_pending(lua_State *L, as_state *st, as_sched *s) {
  while (s->pending) {
    lua_Integer i, n;
    int queue;
    s->pending = 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->pending_ref);
    queue = lua_gettop(L);
    lua_newtable(L);
    lua_rawseti(L, LUA_REGISTRYINDEX, s->pending_ref);
    n = (lua_Integer)lua_rawlen(L, queue);   /* no holes: nothing removed here */
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, queue, i);
      if (as_hook_push(L, st, AS_HOOK_ON_UNHANDLED)) {
        lua_getfield(L, -2, "error");
        lua_pushvalue(L, -3);
        if (lua_pcall(L, 2, 0, 0) != LUA_OK) lua_pop(L, 1);
      }
      lua_pop(L, 1);
    }
    lua_settop(L, queue - 1);
  }
}

/* At the end of run: every failure nobody retrieved is reported. */
static void report_unretrieved(lua_State *L, as_state *st, as_sched *s) {
  if (s->pending) drain_pending(L, st, s);
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->failed_ref);
  push_sorted_keys(L, -1);
  {
    lua_Integer i, n = (lua_Integer)lua_rawlen(L, -1);
    for (i = 1; i <= n; i++) {
      as_fork *f;
      lua_rawgeti(L, -1, i);
      f = (as_fork *)lua_touserdata(L, -1);
      if (f->status == AS_FAILED && !f->retrieved && !f->reported)
        call_unhandled(L, st, -1);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 2);
  /* finalizers that ran during those reports queued theirs */
  if (s->pending) drain_pending(L, st, s);
}

static void resume_fork(lua_State *L, as_state *st, as_sched *s, as_fork *f) {
  int nargs = 0, nres = 0, status;
  if (f->nargs >= 0 && f->cancel_requested) {
    cancel_unstarted(L, st, s, f);
    return;
  }
  if (f->nargs >= 0) {
    nargs = f->nargs;
    f->nargs = -1;
  }
  s->running = f;
  f->status = AS_RUNNING;
  f->await_kind = AS_AWAIT_NONE;
  f->resumes++;
  status = lua_resume(f->thread, L, nargs, &nres);
  s->running = NULL;
  if (status == LUA_YIELD) {
    if (f->suspend_pending) {
      f->suspend_pending = 0;               /* the primitive registered itself */
    } else {
      /* a plain coroutine.yield at the fork's root: same as as.yield() */
      lua_pop(f->thread, nres);
      f->await_kind = AS_AWAIT_YIELD;
      f->since = s->now;
      as_sched_wake(L, s, f, AS_WAKE_READY);
    }
  } else if (status == LUA_OK) {
    f->nresults = nres;
    finish(L, s, f, AS_DONE);
  } else {
    fail(L, st, s, f);
  }
}

/* Longest single idle sleep: a far deadline (sleep(1e308)) must neither
** overflow time_t, which made clock_nanosleep fail at once and the loop
** spin, nor keep the loop from re-checking. */
#define AS_MAX_IDLE 3600.0

static void sleep_until(double deadline) {
  struct timespec ts;
  double limit = as_now() + AS_MAX_IDLE;
  if (!(deadline < limit)) deadline = limit;   /* also catches NaN */
  ts.tv_sec = (time_t)deadline;
  ts.tv_nsec = (long)((deadline - (double)ts.tv_sec) * 1e9);
  if (ts.tv_nsec >= 1000000000L) ts.tv_nsec = 999999999L;
  /* EINTR just returns early: the loop re-reads the clock. */
  clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

/* Runs until every fork has ended, the root failed, or nothing can progress. */
static void sched_loop(lua_State *L, as_state *st, as_sched *s) {
  for (;;) {
    size_t batch;
    s->now = as_now();
    while (s->heap_len > 0 && s->heap[0]->deadline <= s->now)
      as_sched_wake(L, s, s->heap[0], AS_WAKE_TIMEOUT);
    if (s->nwatched > 0 && s->rq_len > 0)
      as_fdwait_poll(L, s, 0);              /* busy forks must not starve I/O */
    batch = s->rq_len;
    if (batch == 0) {
      if (s->heap_len == 0 && s->nwatched == 0) return;  /* all ended, or deadlock */
      if (s->nwatched > 0) {
        double wait = s->heap_len > 0 ? s->heap[0]->deadline - as_now() : -1;
        as_fdwait_poll(L, s, s->heap_len > 0 && wait < 0 ? 0 : wait);
      } else {
        sleep_until(s->heap[0]->deadline);  /* a signal cuts it short */
      }
      if (as_introspect_dump_pending()) as_introspect_dump_now(L, st);
      continue;
    }
    while (batch-- > 0 && s->rq_len > 0) {
      resume_fork(L, st, s, runq_pop(s));
      if (s->root->status == AS_FAILED || s->root->status == AS_CANCELLED) return;
      if (s->pending) drain_pending(L, st, s);
      if (as_introspect_dump_pending()) as_introspect_dump_now(L, st);
    }
  }
}

/* ---------------------------------------------------------------- run() */

static int sched_gc(lua_State *L) {
  as_sched *s = (as_sched *)luaL_testudata(L, 1, AS_SCHED_MT);
  if (s == NULL) return 0;   /* the metatable is reachable through debug.* */
  sched_realloc(L, s->runq, s->rq_cap * sizeof *s->runq, 0);
  sched_realloc(L, s->heap, (size_t)s->heap_cap * sizeof *s->heap, 0);
  sched_realloc(L, s->free_slots, (size_t)s->free_cap * sizeof(int), 0);
  s->free_slots = NULL;
  s->free_cap = s->nfree = 0;
  sched_realloc(L, s->slots, (size_t)s->slots_cap * sizeof *s->slots, 0);
  s->slots = NULL;
  s->slots_cap = 0;
  s->runq = NULL;
  s->heap = NULL;
  s->rq_cap = s->rq_len = 0;
  s->heap_cap = s->heap_len = 0;
  return 0;
}

static int run_loop_protected(lua_State *L) {
  sched_loop(L, as_state_get(L), (as_sched *)lua_touserdata(L, 1));
  return 0;
}

/* Ends every fork still live (run is over): they are cancelled, their
** coroutines closed so pending to-be-closed variables run. */
static void abandon_live(lua_State *L, as_sched *s) {
  int live;
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->live_ref);
  live = lua_gettop(L);
  /* first every fork lets go of what it waits on (channel queues, waiter
  ** lists, timers, fds) and ends: the <close> handlers the second pass runs
  ** may close channels or send on them, and must find nobody to wake */
  lua_pushnil(L);
  while (lua_next(L, live)) {
    as_fork *f = (as_fork *)lua_touserdata(L, -1);
    if (f != NULL) {
      unblock(s, f);
      f->waiters = NULL;
      f->status = AS_CANCELLED;
      f->await_kind = AS_AWAIT_NONE;
      f->sched = NULL;
    }
    lua_pop(L, 1);
  }
  /* then close their coroutines, innermost first, as their own unwinding
  ** would: their <close> variables run */
  lua_pushnil(L);
  while (lua_next(L, live)) {
    as_fork *f = (as_fork *)lua_touserdata(L, -1);
    if (f != NULL) {
      int i;
      for (i = f->astack.depth - 1; i >= 1; i--)
        lua_resetthread(f->astack.frames[i].thread);
      f->astack.depth = 0;
      lua_resetthread(f->thread);
      lua_settop(f->thread, 0);
      f->nresults = 0;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

static int compare_fork_ids(const void *a, const void *b) {
  lua_Integer x = (*(as_fork *const *)a)->id, y = (*(as_fork *const *)b)->id;
  return (x > y) - (x < y);
}

/* Pushes an array of the fork userdata found as keys (use_keys) or values
** of the table at t_idx, sorted by id (qsort over a scratch array: the
** tables are keyed by id or userdata, so their order is arbitrary). */
static void push_sorted_forks(lua_State *L, int t_idx, int use_keys) {
  size_t n = 0, cap = 0, i;
  as_fork **v = NULL;
  int vidx;
  t_idx = lua_absindex(L, t_idx);
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, t_idx)) {
    if (!lua_isuserdata(L, use_keys ? -2 : -1)) {   /* not a fork */
      lua_pop(L, 1);
      continue;
    }
    if (use_keys) lua_pushvalue(L, -2);
    else lua_pushvalue(L, -1);
    lua_rawseti(L, -4, (lua_Integer)++n);  /* anchors it while we sort */
    lua_pop(L, 1);
  }
  cap = n ? n : 1;
  /* the scratch array is a userdata so an error cannot leak it */
  v = (as_fork **)lua_newuserdatauv(L, cap * sizeof *v, 0);
  vidx = lua_gettop(L);
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, vidx - 1, (lua_Integer)i + 1);
    v[i] = (as_fork *)lua_touserdata(L, -1);
    lua_pop(L, 1);
  }
  qsort(v, n, sizeof *v, compare_fork_ids);
  /* v[] points into the userdata we are re-storing; pushing them back by
  ** pointer is not possible, so look each up in the unsorted copy's order */
  lua_createtable(L, (int)n, 0);
  {
    /* map pointer -> userdata through a temporary table keyed by light ud */
    lua_createtable(L, 0, (int)n);
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, vidx - 1, (lua_Integer)i);
      lua_rawsetp(L, -2, lua_touserdata(L, -1));
    }
    for (i = 0; i < n; i++) {
      lua_rawgetp(L, -1, v[i]);
      lua_rawseti(L, -3, (lua_Integer)i + 1);
    }
    lua_pop(L, 1);
  }
  lua_replace(L, vidx - 1);   /* sorted array replaces the unsorted one */
  lua_pop(L, 1);              /* scratch */
}

static void push_sorted_keys(lua_State *L, int t_idx) {
  push_sorted_forks(L, t_idx, 1);
}

/* Pushes an array of the live forks' userdata, in id order. */
void as_sched_push_live_list(lua_State *L, as_sched *s) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->live_ref);
  push_sorted_forks(L, -1, 0);
  lua_remove(L, -2);
}

static int sched_run(lua_State *L) {
  as_state *st = as_state_get(L);
  as_sched *s;
  as_fork *root;
  int nargs = lua_gettop(L) - 1, status, nres = 0, sidx, ridx;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (st->sched != NULL)
    return luaL_error(L, "run: already inside asyncstack.run() (runs do not nest)");
  s = (as_sched *)lua_newuserdatauv(L, sizeof(as_sched), 0);
  memset(s, 0, sizeof *s);
  s->live_ref = LUA_NOREF;
  s->epfd = -1;
  luaL_setmetatable(L, AS_SCHED_MT);
  sidx = lua_gettop(L);
  lua_newtable(L);
  s->live_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  s->failed_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_newtable(L);
  s->pending_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  s->L = L;

  root = as_fork_new(L, 1, nargs);
  ridx = lua_gettop(L);
  as_fork_set_spawn_site(L, ridx, root, 1);
  lua_pushliteral(L, "main");
  root->name_cstr = lua_tostring(L, -1);  /* for crash.c; see fork.h */
  lua_setiuservalue(L, ridx, 2);
  st->run_serial++;
  root->sched = s;
  root->run_serial = st->run_serial;
  s->now = root->since = as_now();
  s->root = root;
  live_add(L, s, root, ridx);
  runq_push(L, s, root);

  st->sched = s;
  as_sched_active = s;
  as_bridge_install(L, st);   /* for this run, whatever install() said */

  lua_pushvalue(L, AS_STATE_UPVALUE);
  lua_pushcclosure(L, run_loop_protected, 1);
  lua_pushvalue(L, sidx);
  status = lua_pcall(L, 1, 0, 0);

  if (status == LUA_OK && root->status == AS_DONE && s->nlive > 0) {
    /* nothing can progress: every live fork waits on something that will
    ** never come. Let the policy describe them while their stacks exist. */
    if (as_hook_push(L, st, AS_HOOK_ON_DEADLOCK)) {
      as_sched_push_live_list(L, s);
      as_backtrace_push_raise_site(L, st);
      if (lua_pcall(L, 2, 1, 0) != LUA_OK) { /* the hook's own error is raised */ }
    } else {
      lua_pushliteral(L, "run: deadlock: forks remain and none can progress");
    }
    status = -1;
  } else if (status == LUA_OK && root->status != AS_DONE) {
    if (root->status == AS_FAILED || root->status == AS_CANCELLED) {
      root->retrieved = 1;   /* run() raises it */
      lua_getiuservalue(L, ridx, 4);
    } else if (as_hook_push(L, st, AS_HOOK_ON_DEADLOCK)) {
      as_sched_push_live_list(L, s);
      as_backtrace_push_raise_site(L, st);
      if (lua_pcall(L, 2, 1, 0) != LUA_OK) { /* the hook's own error is raised */ }
    } else {
      lua_pushliteral(L, "run: deadlock: forks remain and none can progress");
    }
    status = -1;
  } else if (status == LUA_OK) {
    nres = root->nresults;
    luaL_checkstack(L, nres + 4, "too many results from run");
    lua_xmove(root->thread, L, nres);
  }

  if (lua_checkstack(L, 8)) report_unretrieved(L, st, s);

  /* from here on nothing may raise before the state is restored; close
  ** handlers run by abandon_live see no scheduler, so they cannot block */
  st->sched = NULL;
  as_sched_active = NULL;
  abandon_live(L, s);
  as_fdwait_close(L, s);
  as_bridge_clear_stash(L, st);
  /* leave the bridge as install()/uninstall() last said, even if they were
  ** called during this run */
  if (st->bridge_installed) as_bridge_install(L, st);
  else as_bridge_uninstall(L, st);
  root->sched = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, s->live_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, s->failed_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, s->pending_ref);
  s->live_ref = s->failed_ref = s->pending_ref = LUA_NOREF;
  lua_pushcfunction(L, sched_gc);
  lua_pushvalue(L, sidx);
  lua_call(L, 1, 0);
  if (status != LUA_OK) return lua_error(L);
  return nres;
}

/* --------------------------------------------------------------- fork() */

as_sched *as_sched_check_in_run(lua_State *L, as_state *st, const char *name) {
  if (st->sched == NULL)
    luaL_error(L, "%s: not inside asyncstack.run()", name);
  return st->sched;
}

static int sched_fork(lua_State *L) {
  as_state *st = as_state_get(L);
  as_sched *s;
  as_fork *f;
  int nargs = lua_gettop(L) - 1;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  s = as_sched_check_in_run(L, st, "fork");
  f = as_fork_new(L, 1, nargs);
  f->sched = s;
  f->run_serial = st->run_serial;
  if (s->running != NULL) {
    f->spawner_id = s->running->id;
    f->spawner_slot = s->running->slot;
  }
  f->since = s->now;
  as_fork_set_spawn_site(L, -1, f, 1);
  live_add(L, s, f, -1);
  runq_push(L, s, f);
  return 1;
}

/* ------------------------------------------------------ blocking protocol */

/* Checks that the calling coroutine may suspend the running fork; returns it.
** The whole chain of bridged coroutines must be yieldable, since the yield
** passes through each of them. A pending cancel is raised here. */
as_fork *as_sched_enter_suspend(lua_State *L, as_state *st, const char *name) {
  as_sched *s = as_sched_check_in_run(L, st, name);
  as_fork *f = s->running;
  int i;
  if (f == NULL)
    luaL_error(L, "%s: not inside a fork (called from the scheduler itself, "
                  "e.g. a finalizer)", name);
  if (as_astack_top(&f->astack) != L)
    luaL_error(L, "%s: cannot suspend: this coroutine was resumed by an "
                  "unbridged coroutine.resume (call asyncstack.install() before "
                  "the code that keeps a copy of coroutine.resume/wrap)", name);
  for (i = f->astack.depth - 1; i >= 0; i--) {
    if (!lua_isyieldable(f->astack.frames[i].thread))
      luaL_error(L, "%s: cannot suspend here: a C call that cannot yield "
                    "(a metamethod, a table.sort comparator, a C callback) "
                    "is on the stack", name);
  }
  if (f->cancel_requested) {
    f->wake = AS_WAKE_CANCEL;
    as_sched_check_cancel(L, st, f);
  }
  return f;
}

static void mark_suspended(as_fork *f, int status, int kind) {
  f->status = (unsigned char)status;
  f->await_kind = (unsigned char)kind;
  f->since = f->sched->now;
  f->wake = AS_WAKE_NONE;
  f->suspend_pending = 1;
}

int as_sched_suspend(lua_State *L, as_fork *f, int status, int kind,
                     double timeout, lua_KContext ctx, lua_KFunction k) {
  as_state *st = as_state_get(L);
  if (st->stash_live) as_bridge_clear_stash(L, st);   /* the fork went on */
  mark_suspended(f, status, kind);
  if (timeout < HUGE_VAL) {
    /* a timer needs the real time; `since` then shares it, so a dump's
    ** "sleeping 1.5s of 5.0s" adds up exactly */
    f->since = as_now();
    timer_add(L, f->sched, f, f->since + timeout);
  }
  return lua_yieldk(L, 0, ctx, k);
}

double as_sched_opt_timeout(lua_State *L, int arg) {
  lua_Number t;
  if (lua_isnoneornil(L, arg)) return HUGE_VAL;
  t = luaL_checknumber(L, arg);
  luaL_argcheck(L, t >= 0, arg, "timeout must be a non-negative number");
  return (double)t;
}

void as_sched_push_kind(lua_State *L, as_state *st, const char *kind, const char *msg) {
  if (as_hook_push(L, st, AS_HOOK_NEW_ERROR)) {
    lua_pushstring(L, kind);
    lua_pushstring(L, msg);
    as_backtrace_push_raise_site(L, st);
    lua_call(L, 3, 1);
  } else {
    lua_pushstring(L, msg);
  }
}

int as_sched_raise_kind(lua_State *L, as_state *st, const char *kind, const char *msg) {
  if (!as_hook_push(L, st, AS_HOOK_NEW_ERROR)) return luaL_error(L, "%s", msg);
  lua_pop(L, 1);
  as_sched_push_kind(L, st, kind, msg);
  return lua_error(L);
}

void as_sched_check_cancel(lua_State *L, as_state *st, as_fork *f) {
  if (f == NULL || f->wake != AS_WAKE_CANCEL) return;
  f->wake = AS_WAKE_NONE;
  f->cancel_requested = 0;   /* one cancel, one Cancelled: the fork may catch it */
  lua_pushfstring(L, "fork #%I was cancelled", (LUAI_UACINT)f->id);
  as_sched_raise_kind(L, st, "Cancelled", lua_tostring(L, -1));
}

static int sched_sleep_k(lua_State *L, int status, lua_KContext ctx) {
  as_state *st = as_state_get(L);
  (void)status; (void)ctx;
  as_sched_check_cancel(L, st, as_sched_fork_of(st, L));
  return 0;
}

static int sched_sleep(lua_State *L) {
  as_state *st = as_state_get(L);
  lua_Number secs = luaL_checknumber(L, 1);
  as_fork *f;
  luaL_argcheck(L, secs >= 0, 1, "non-negative number expected");
  f = as_sched_enter_suspend(L, st, "sleep");
  return as_sched_suspend(L, f, AS_SLEEPING, AS_AWAIT_SLEEP, secs, 0, sched_sleep_k);
}

int as_sched_yield(lua_State *L, as_state *st, const char *name) {
  as_fork *f = as_sched_enter_suspend(L, st, name);
  runq_push(L, st->sched, f);
  return as_sched_suspend(L, f, AS_RUNNABLE, AS_AWAIT_YIELD, HUGE_VAL, 0, sched_sleep_k);
}

static int sched_yield(lua_State *L) {
  return as_sched_yield(L, as_state_get(L), "yield");
}

/* f:cancel() -> true, or false when f has already ended. A suspended fork
** wakes at once with as.Cancelled raised at its await point; a fork not
** started yet ends without running; the running fork (cancelling itself)
** gets it at its next blocking call. */
static int sched_cancel(lua_State *L) {
  as_state *st = as_state_get(L);
  as_fork *f = as_fork_check(L, 1);
  as_sched *s = st->sched;
  if (as_fork_ended(f)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (s == NULL || f->sched != s)
    return luaL_error(L, "cancel: fork #%I belongs to another asyncstack.run()",
                      (LUAI_UACINT)f->id);
  f->cancel_requested = 1;
  if (f->status == AS_SLEEPING || f->status == AS_WAITING) {
    as_sched_wake(L, s, f, AS_WAKE_CANCEL);
  } else if (f->status == AS_RUNNABLE && f->nargs < 0 && f->wake == AS_WAKE_NONE) {
    f->wake = AS_WAKE_CANCEL;   /* queued by yield(): raised when it resumes */
  }
  /* else running, or woken because its operation completed (a value was
  ** received or sent, a wait ended): that result stands, and the cancel
  ** stays pending for its next blocking call */
  lua_pushboolean(L, 1);
  return 1;
}

static int sched_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)as_now());
  return 1;
}

static int sched_current(lua_State *L) {
  as_state *st = as_state_get(L);
  if (st->sched == NULL || st->sched->running == NULL) lua_pushnil(L);
  else as_sched_push_fork(L, st->sched, st->sched->running);
  return 1;
}

/* core.fork_info(f) -> table: the raw state of a fork, for the Lua policy
** (deadlock reports, dumps). Times are as.now() based. */
static int sched_fork_info(lua_State *L) {
  as_fork *f = as_fork_check(L, 1);
  lua_createtable(L, 0, 12);
  lua_pushinteger(L, f->id); lua_setfield(L, -2, "id");
  as_fork_push_name(L, 1); lua_setfield(L, -2, "name");
  lua_pushstring(L, as_fork_status_name(f->status)); lua_setfield(L, -2, "status");
  if (f->await_kind != AS_AWAIT_NONE && !as_fork_ended(f)) {
    lua_pushstring(L, as_fork_await_name(f->await_kind));
    lua_setfield(L, -2, "await_kind");
  }
  lua_pushnumber(L, f->since); lua_setfield(L, -2, "since");
  if (f->heap_index >= 0) { lua_pushnumber(L, f->deadline); lua_setfield(L, -2, "deadline"); }
  if (f->status == AS_WAITING && f->await_kind == AS_AWAIT_WAIT) {
    int i, n = 0;
    lua_createtable(L, f->nnodes, 1);          /* ids of the forks it waits for */
    for (i = 0; i < f->nnodes; i++) {
      if (!f->nodes[i].linked) continue;
      lua_pushinteger(L, f->nodes[i].target->id);
      lua_rawseti(L, -2, ++n);
    }
    lua_setfield(L, -2, "waiting_for");
    if (f->wait_mode != AS_WAIT_ONE) {
      lua_pushstring(L, f->wait_mode == AS_WAIT_ALL ? "wait_all" : "wait_any");
      lua_setfield(L, -2, "combinator");
    }
  } else if (f->status == AS_WAITING && f->await_kind == AS_AWAIT_CHANNEL && f->channel) {
    lua_pushfstring(L, "channel #%I (%s)", (LUAI_UACINT)as_channel_id(f->channel),
                    f->chan_op == 1 ? "send" : "recv");
    lua_setfield(L, -2, "waiting_for");
  } else if (f->status == AS_WAITING && f->await_kind == AS_AWAIT_FD) {
    lua_pushfstring(L, "fd %d (%s)", f->wait_fd, f->fd_write ? "write" : "read");
    lua_setfield(L, -2, "waiting_for");
  }
  lua_pushinteger(L, f->spawner_id); lua_setfield(L, -2, "spawned_by");
  lua_pushinteger(L, (lua_Integer)f->resumes); lua_setfield(L, -2, "resumes");
  lua_getiuservalue(L, 1, 3);
  if (!lua_isnil(L, -1)) {
    lua_Debug ar;
    if (lua_getinfo(L, ">S", &ar)) {
      lua_pushstring(L, ar.short_src); lua_setfield(L, -2, "spawn_file");
      lua_pushinteger(L, f->spawn_line); lua_setfield(L, -2, "spawn_line");
      lua_pushinteger(L, ar.linedefined); lua_setfield(L, -2, "spawn_linedefined");
      lua_pushstring(L, ar.what); lua_setfield(L, -2, "spawn_what");
    }
    lua_getiuservalue(L, 1, 3);
    lua_setfield(L, -2, "spawn_func");
  } else {
    lua_pop(L, 1);
  }
  {
    lua_Integer nwaiters = 0;
    as_waitnode *w;
    lua_newtable(L);
    for (w = f->waiters; w; w = w->next) {
      lua_pushinteger(L, w->waiter->id);
      lua_rawseti(L, -2, ++nwaiters);
    }
    lua_setfield(L, -2, "waiters");
  }
  return 1;
}

void as_sched_open(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"run", sched_run}, {"fork", sched_fork}, {"sleep", sched_sleep},
    {"yield", sched_yield},
    {"now", sched_now}, {"current", sched_current},
    {"fork_info", sched_fork_info}, {NULL, NULL}
  };
  luaL_newmetatable(L, AS_SCHED_MT);
  lua_pushcfunction(L, sched_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  as_module_setfuncs(L, funcs);
  /* Fork:cancel lives here, with the life cycle it changes */
  luaL_getmetatable(L, AS_FORK_MT);
  lua_getfield(L, -1, "__index");
  lua_pushvalue(L, AS_STATE_UPVALUE);
  lua_pushcclosure(L, sched_cancel, 1);
  lua_setfield(L, -2, "cancel");
  lua_pop(L, 2);
}
