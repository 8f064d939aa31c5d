/*
** sched.c: the scheduler loop, fork(), the fork life cycle, and the
** suspend/wake protocol the blocking primitives share (see sched.h). as.yield
** lives here too: its await kind is the run queue itself. run() is run.c.
**
** Every primitive that blocks follows one protocol: validate arguments, check
** the caller may suspend (as_sched_enter_suspend), register what it waits on,
** and return as_sched_suspend, which marks the fork and lua_yieldk's with zero
** values. Its continuation runs when the loop resumes the fork and reads the
** outcome from the fork struct (`wake`), so nothing travels through the yield
** itself and the bridge can pass the yield through nested coroutines without
** knowing what it is.
*/
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <string.h>
#include <time.h>

#include "sched.h"
#include "backtrace.h"
#include "bridge.h"
#include "signals.h"
#include <lauxlib.h>

as_sched *volatile as_sched_active = NULL;

double as_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double as_now_coarse(void) {
#ifdef CLOCK_MONOTONIC_COARSE
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
#else
  return as_now();
#endif
}

/* as.yield() and a plain coroutine.yield at a fork's root: the fork waits in
** the run queue, which holds nothing to undo. */
static const as_await_ops yield_ops = { AS_AWAIT_YIELD, "yield", NULL, NULL, NULL };

/* ------------------------------------------------------- wake / life cycle */

/* Undoes whatever the fork is registered with while suspended. Never raises. */
static void unblock(as_sched *s, as_fork *f) {
  const as_await_ops *ops = as_sched_await_ops(s->st, f);
  as_timers_remove(&s->timers, f);
  if (ops != NULL && ops->unlink != NULL) ops->unlink(s, f);
}

void as_sched_wake(as_sched *s, as_fork *f, int wake) {
  if (s == NULL) return;   /* run() has ended: nobody is left to wake */
  as_assert(f->status != AS_RUNNABLE && !as_fork_ended(f) && f->slot > 0);
  unblock(s, f);
  f->wake = (unsigned char)wake;
  f->status = AS_RUNNABLE;
  as_runq_push(&s->runq, f);   /* room reserved when f was created */
}

/* A fork ended: wake its waiters and drop it from the live set. */
static void finish(lua_State *L, as_sched *s, as_fork *f, int status) {
  f->status = (unsigned char)status;
  f->await_kind = AS_AWAIT_NONE;
  f->astack.depth = 0;
  /* a done fork's `since` is read by nobody (dumps and tasks list live and
  ** failed forks only): no clock read for it */
  if (status != AS_DONE) f->since = as_sched_stamp(s);
  while (f->waiters != NULL) {
    as_waitnode *n = f->waiters;
    const as_await_ops *ops = as_sched_await_ops(s->st, n->waiter);
    as_assert(ops != NULL && ops->target_ended != NULL);
    ops->target_ended(L, s, n);
    as_assert(f->waiters != n);
  }
  as_sched_live_remove(L, s, f);
}

/* Calls the on_failure policy on (error, trace, fork) at err, trace, ud
** and replaces the error by what waiters see; returns whether it is a
** cancellation. Without the hook, or when it fails, the raw error stays,
** except that a memory error in the hook becomes the outcome. */
static int convert_failure(lua_State *L, as_state *st, int err, int trace, int ud) {
  int cancelled = 0, status;
  if (as_hook_push(L, st, AS_HOOK_ON_FAILURE)) {
    lua_pushvalue(L, err);
    lua_pushvalue(L, trace);
    lua_pushvalue(L, ud);
    status = lua_pcall(L, 3, 2, 0);
    if (status == LUA_OK) {
      cancelled = lua_toboolean(L, -1);
      lua_pop(L, 1);
      lua_replace(L, err);
    } else if (status == LUA_ERRMEM) {
      lua_replace(L, err);                  /* the memory error must not vanish (NEW-C) */
    } else {
      lua_pop(L, 1);                        /* keep the raw error */
    }
  }
  return cancelled;
}

/* The fork's coroutine raised: capture the async trace while its stack is
** intact, let the Lua policy turn the error into what waiters see, then close
** the coroutine inside the fork: its pending to-be-closed variables run with
** the fork as the running fork (they cannot block: the closing is no
** yieldable call) and receive the converted error; an error one of them
** raises replaces the outcome, as Lua's own unwinding does, so it reaches
** the waiters or the unhandled report (issue 13, D9). */
static void fail(lua_State *L, as_state *st, as_sched *s, as_fork *f) {
  lua_State *co = as_fork_thread(f);
  as_walk_opts opts = AS_WALK_RAISE_SITE;  /* bounded: a stack overflow is deep */
  int ud, err, trace, cancelled, closed;
  as_sched_push_fork(L, s, f);
  ud = lua_gettop(L);
  as_fork_reserve_extras(L, ud);   /* room for the failure value (may raise) */
  /* the error value: moved, never copied on co, whose stack may be full
  ** (D12); one is put back below for its close handlers */
  lua_xmove(co, L, 1);
  err = lua_gettop(L);
  /* the trace of the raise site: kept by the bridge when the error came
  ** out of a nested coroutine, else the fork's stack, still intact */
  if (as_exception_test(L, st, err)) {      /* it has its trace: no policy */
    lua_pushnil(L);
    trace = lua_gettop(L);
    cancelled = as_exception_cancelled(L, st, err);
  } else {
    if (!as_bridge_take_stash(L, st, f, err))
      as_backtrace_push_fork(L, st, f, &opts);
    trace = lua_gettop(L);
    cancelled = convert_failure(L, st, err, trace, ud);
  }
  lua_pushvalue(L, err);
  lua_xmove(L, co, 1);                      /* into the slot freed above */
  s->running = f;
  f->status = AS_RUNNING;
  f->cleaning = 1;
  closed = lua_resetthread(co);
  f->cleaning = 0;
  s->running = NULL;
  if (closed != LUA_OK && lua_gettop(co) >= 1) {
    lua_xmove(co, L, 1);
    if (!lua_rawequal(L, -1, err)) {        /* a close handler raised */
      lua_replace(L, err);
      if (lua_isnil(L, trace)) {
        /* the first error was an exception, so nothing was captured; the
        ** handler's own stack is gone: its fork's chain is what is left */
        as_backtrace_push_fork(L, st, f, &opts);
        lua_replace(L, trace);
      }
      cancelled = convert_failure(L, st, err, trace, ud);
    } else {
      lua_pop(L, 1);
    }
  }
  lua_settop(L, err);
  as_fork_set_failure(L, ud);
  as_unhandled_add(L, &s->unhandled, ud);
  lua_pop(L, 1);
  lua_settop(co, 0);
  f->nvalues = 0;                           /* results */
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
  as_fork_set_failure(L, ud);
  lua_pop(L, 2);
  lua_settop(as_fork_thread(f), 0);         /* drop the function and arguments */
  f->nvalues = 0;                           /* results (`started` stays 0: it never ran) */
  f->retrieved = 1;
  finish(L, s, f, AS_CANCELLED);
}

static void resume_fork(lua_State *L, as_state *st, as_sched *s, as_fork *f) {
  int nargs = 0, nres = 0, status;
  if (!f->started) {
    if (f->cancel_requested) {
      cancel_unstarted(L, st, s, f);
      return;
    }
    nargs = f->nvalues;
    f->started = 1;
  }
  s->running = f;
  f->status = AS_RUNNING;
  f->await_kind = AS_AWAIT_NONE;
  f->resumes++;
  status = lua_resume(as_fork_thread(f), L, nargs, &nres);
  s->running = NULL;
  if (status == LUA_YIELD) {
    if (f->suspend_pending) {
      f->suspend_pending = 0;               /* the primitive registered itself */
    } else {
      /* a plain coroutine.yield at the fork's root: same as as.yield() */
      lua_pop(as_fork_thread(f), nres);
      f->await_kind = AS_AWAIT_YIELD;
      f->since = as_sched_stamp(s);
      as_sched_wake(s, f, AS_WAKE_READY);
    }
  } else if (status == LUA_OK) {
    f->nvalues = nres;                      /* results */
    finish(L, s, f, AS_DONE);
  } else {
    fail(L, st, s, f);
  }
}

/* ---------------------------------------------------------------- the loop */

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

void as_sched_loop(lua_State *L, as_state *st, as_sched *s) {
  for (;;) {
    size_t batch;
    as_fork *t;
    /* the clock is read here only when timers may be due; stamps read the
    ** coarse clock once per pass, lazily (as_sched_stamp) */
    s->now_valid = 0;
    if (s->timers.len > 0) {
      s->now = as_now();
      s->now_valid = 1;
      while ((t = as_timers_due(&s->timers, s->now)) != NULL)
        as_sched_wake(s, t, AS_WAKE_TIMEOUT);
    }
    as_assert(s->nwatched == 0 || s->poller != NULL);
    if (s->nwatched > 0 && s->runq.len > 0)
      s->poller->poll(L, s, 0);             /* busy forks must not starve I/O */
    batch = s->runq.len;
    if (batch == 0) {
      t = as_timers_first(&s->timers);
      if (t == NULL && s->nwatched == 0) return;  /* all ended, or deadlock */
      if (s->nwatched > 0) {
        double wait = t != NULL ? t->deadline - as_now() : -1;
        s->poller->poll(L, s, t != NULL && wait < 0 ? 0 : wait);
      } else {
        sleep_until(t->deadline);           /* a signal cuts it short */
      }
      if (as_signals_pending()) as_signals_safe_point(L, st, s, NULL);
      continue;
    }
    while (batch-- > 0 && s->runq.len > 0) {
      as_fork *f = as_runq_pop(&s->runq);
      /* Many forks made runnable at once (timers due, a channel closed)
      ** are scattered in memory: while this one runs, the record of the
      ** fork after the next and the coroutine of the next (whose record
      ** came one turn ago) are fetched (bench row 14: the loop's first read
      ** of each woken fork was its costliest load). */
      if (s->runq.len > 1) {              /* a burst; a short queue stays in cache */
        __builtin_prefetch(as_runq_peek(&s->runq, 1));
        __builtin_prefetch(as_fork_thread(as_runq_peek(&s->runq, 0)));
      }
      resume_fork(L, st, s, f);
      if (as_signals_pending()) {                 /* dump, Ctrl-C, profile */
        as_signals_safe_point(L, st, s, f);
        /* only a safe point after a resume ends a run for an interrupt */
        if (as_signals_run_interrupted()) return;
      }
      if (s->root->status == AS_FAILED || s->root->status == AS_CANCELLED) return;
      if (s->unhandled.pending) as_unhandled_drain(L, st, &s->unhandled);
    }
  }
}

/* ------------------------------------------------------------ run()'s end */

/* Ends every fork still live (run is over): they are cancelled, their
** coroutines closed so pending to-be-closed variables run. */
/* A close handler of a fork abandoned at run()'s end (the fork's userdata on
** top of L) raised: the fork's outcome becomes that error, a failure nobody
** retrieved, reported now (the run is over: on_unhandled is called at once),
** so it does not vanish (issue 13, D9). */
static int reserve_extras(lua_State *L) {
  as_fork_reserve_extras(L, 1);
  return 0;
}

static void abandoned_cleanup_done(lua_State *L, as_state *st, as_fork *f,
                                   lua_State *th, int status) {
  if (status == LUA_OK || lua_gettop(th) < 1) return;
  /* room for the failure value, protected: run() is over and must finish
  ** ending its forks; with no memory left for it, the fork stays cancelled */
  lua_pushcfunction(L, reserve_extras);   /* a light C function: no allocation */
  lua_pushvalue(L, -2);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    lua_pop(L, 1);
    return;
  }
  lua_xmove(th, L, 1);
  as_fork_set_failure(L, -2);
  f->status = AS_FAILED;
  f->retrieved = 0;
  as_unhandled_report(L, st, -1);
}

void as_sched_abandon_live(lua_State *L, as_state *st, as_sched *s) {
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
      f->await = NULL;                 /* the pool goes with the run */
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
        abandoned_cleanup_done(L, st, f, f->astack.frames[i].thread,
                               lua_resetthread(f->astack.frames[i].thread));
      f->astack.depth = 0;
      as_astack_release(&f->astack);   /* the run's anchor of a grown array goes */
      abandoned_cleanup_done(L, st, f, as_fork_thread(f), lua_resetthread(as_fork_thread(f)));
      lua_settop(as_fork_thread(f), 0);
      f->nvalues = 0;                  /* results (`started` says whether it ran) */
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
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
  f->run_serial = st->run_serial;
  if (s->running != NULL) {
    f->spawner_id = s->running->id;
    f->spawner_slot = s->running->slot;
  }
  f->since = as_sched_stamp(s);
  as_fork_set_spawn_site(L, -1, f, 1, s);
  as_sched_live_add(L, s, f, -1);
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
  if (f->cleaning)
    luaL_error(L, "%s: cannot suspend in a cleanup of a failed or cancelled fork "
                  "(its <close> handlers run after the error left it)", name);
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

int as_sched_suspend(lua_State *L, as_sched *s, as_fork *f, int status, const as_await_ops *ops,
                     double timeout, lua_KContext ctx, lua_KFunction k) {
  as_assert(f == s->running && f->status == AS_RUNNING && f->heap_index < 0);
  as_assert(s->st->await_ops[ops->kind] == ops);
  if (s->st->stash_live) as_bridge_clear_stash(L, s->st);   /* the fork went on */
  f->status = (unsigned char)status;
  f->await_kind = ops->kind;
  f->wake = AS_WAKE_NONE;
  f->suspend_pending = 1;
  if (timeout < HUGE_VAL) {
    /* a timer needs the precise time; `since` then shares it, so a dump's
    ** "sleeping 1.5s of 5.0s" adds up exactly */
    f->since = as_now();
    as_timers_add(&s->timers, f, f->since + timeout);   /* room reserved */
  } else {
    f->since = as_sched_stamp(s);
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
  as_signals_check_interrupt(L, f);   /* Ctrl-C handed to the root raises here */
  lua_pushfstring(L, "fork #%I was cancelled", (LUAI_UACINT)f->id);
  as_sched_raise_kind(L, st, "Cancelled", lua_tostring(L, -1));
}

static int sched_yield_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  as_sched_continue(L, as_state_get(L));
  return 0;
}

int as_sched_yield(lua_State *L, as_state *st, const char *name) {
  as_fork *f = as_sched_enter_suspend(L, st, name);
  as_runq_push(&st->sched->runq, f);   /* room reserved; f is running, so not queued */
  return as_sched_suspend(L, st->sched, f, AS_RUNNABLE, &yield_ops, HUGE_VAL, 0, sched_yield_k);
}

static int sched_yield(lua_State *L) {
  return as_sched_yield(L, as_state_get(L), "yield");
}

/* A suspended fork wakes at once with as.Cancelled raised at its await
** point; a fork not started yet ends without running; the running fork
** (cancelling itself) gets it at its next blocking call. */
int as_sched_cancel(lua_State *L, as_state *st, as_fork *f) {
  as_sched *s = st->sched;
  if (as_fork_ended(f)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (s == NULL || as_fork_sched(st, f) != s)
    return luaL_error(L, "cancel: fork #%I belongs to another asyncstack.run()",
                      (LUAI_UACINT)f->id);
  f->cancel_requested = 1;
  if (f->status == AS_SLEEPING || f->status == AS_WAITING) {
    as_sched_wake(s, f, AS_WAKE_CANCEL);
  } else if (f->status == AS_RUNNABLE && f->started && f->wake == AS_WAKE_NONE) {
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

void as_sched_open(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"fork", sched_fork}, {"yield", sched_yield},
    {"now", sched_now}, {"current", sched_current}, {NULL, NULL}
  };
  as_module_setfuncs(L, funcs);
  as_sched_register_await(as_state_get(L), &yield_ops);
}
