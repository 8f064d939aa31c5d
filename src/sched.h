/*
** sched.h: the scheduler of one as.run(): a FIFO run queue, a timer heap over
** CLOCK_MONOTONIC, the set of live forks, and the async stack root.
**
** Forks are resumed from one flat C loop (as_sched_loop): a fork never resumes
** another one, so chains of forks waiting on each other cost no C stack.
** A blocking primitive (sleep, wait, yield, ...) registers what the fork waits
** for, sets fork->suspend_pending and yields; the bridge passes that yield up
** through any nested coroutines to the fork's root, where the loop sees it.
*/
#ifndef ASYNCSTACK_SCHED_H
#define ASYNCSTACK_SCHED_H

#include <lua.h>
#include "fork.h"
#include "module.h"

typedef struct as_sched {
  lua_State *L;             /* the thread that called run() */
  as_fork *running;         /* async stack root (astack.h); NULL in the loop */
  as_fork *root;            /* run()'s fork */
  int live_ref;             /* registry: table slot -> userdata of live forks */
  size_t nlive;             /* forks not yet ended */
  int *free_slots;          /* slots of ended forks, for reuse */
  int nfree, free_cap;
  int top_slot;             /* highest slot handed out */
  as_fork **slots;          /* slot -> live fork or NULL (signal-safe reads) */
  int slots_cap;            /* length of slots; set after the array */
  double now;               /* as_now() at the start of the loop's batch:
                               cheap enough for `since` stamps, never timers */
  as_fork **runq;           /* ring buffer of runnable forks */
  size_t rq_head, rq_len, rq_cap;
  as_fork **heap;           /* timer min-heap by (deadline, timer_seq) */
  int heap_len, heap_cap;
  unsigned long timer_seq;
  unsigned walk_mark;       /* last mark used by a trace walk */
  int epfd;                 /* epoll instance for wait_fd, or -1 until needed */
  struct as_fdwatch *fds;   /* per-fd waiters, indexed by fd (fdwait.c) */
  int fds_cap;              /* length of fds */
  int nwatched;             /* forks waiting for an fd */
  int failed_ref;           /* registry: weak-keyed set of failed forks */
  int pending_ref;          /* registry: unhandled reports queued by __gc */
  int pending;              /* pending_ref holds something */
} as_sched;

/* Process-wide pointer to the scheduler that runs now, for signal handlers
** (they get no Lua state). Written by run() only. */
extern as_sched *volatile as_sched_active;

double as_now(void);

/* The fork whose innermost coroutine is L, or NULL (outside run, outside a
** fork, or L was resumed by an unbridged resume). */
static inline as_fork *as_sched_fork_of(as_state *st, lua_State *L) {
  as_sched *s = st->sched;
  if (s == NULL || s->running == NULL) return NULL;
  return as_astack_top(&s->running->astack) == L ? s->running : NULL;
}

/* Pushes the userdata of fork f if it is live in s, else nil; returns 1
** when it pushed the fork. */
int as_sched_push_fork(lua_State *L, as_sched *s, const as_fork *f);

/* The live fork in `slot` of s, or NULL. Reads a C array only: no Lua API,
** safe in a signal handler (slots are published before the count that
** covers them). */
as_fork *as_sched_fork_at_slot(const as_sched *s, int slot);

/* The fork that spawned f, if it is still live; NULL otherwise. */
as_fork *as_sched_spawner(lua_State *L, as_sched *s, const as_fork *f);

/* Makes room for one more async frame in the running fork f (grows its
** array when full). May raise a memory error. */
void as_sched_reserve_frame(lua_State *L, as_fork *f);

/* ---- the blocking protocol, shared by the primitives (sched.c, wait.c,
** channel.c, fdwait.c). A primitive: validates its arguments; calls
** as_sched_enter_suspend (raises unless the caller may suspend, and raises
** Cancelled when a cancel is pending); registers what it waits on; then
** returns as_sched_suspend(...), which marks the fork, arms the timeout and
** yields with continuation k. Its continuation reads fork->wake: READY (what
** it waited for happened), TIMEOUT, CANCEL (call as_sched_check_cancel),
** CLOSED (channels). Whoever wakes a fork calls as_sched_wake, which also
** undoes every registration (timer, wait nodes, channel queue, fd). */

as_sched *as_sched_check_in_run(lua_State *L, as_state *st, const char *name);
as_fork *as_sched_enter_suspend(lua_State *L, as_state *st, const char *name);
/* Marks f suspended (status, await kind, since), arms a timer `timeout`
** seconds from now unless it is HUGE_VAL, and yields; k continues. */
int as_sched_suspend(lua_State *L, as_fork *f, int status, int kind,
                     double timeout, lua_KContext ctx, lua_KFunction k);
void as_sched_wake(lua_State *L, as_sched *s, as_fork *f, int wake);

/* as.yield() for the running fork (the bridge's coroutine.yield at a fork's
** own level calls it too); `name` names the call in errors. */
int as_sched_yield(lua_State *L, as_state *st, const char *name);

/* Raises as.Cancelled in the fork when it was woken by a cancel. */
void as_sched_check_cancel(lua_State *L, as_state *st, as_fork *f);

/* Raises the error of `kind` ("Timeout", "Cancelled", ...) the policy builds. */
int as_sched_raise_kind(lua_State *L, as_state *st, const char *kind, const char *msg);

/* Pushes the error value of `kind` without raising it. */
void as_sched_push_kind(lua_State *L, as_state *st, const char *kind, const char *msg);

/* An optional timeout argument: nil/none gives HUGE_VAL; negative or NaN
** raise an argument error. */
double as_sched_opt_timeout(lua_State *L, int arg);

/* channel.c: the id of a channel (for reports). */
lua_Integer as_channel_id(const struct as_channel *ch);

/* Undo registrations owned by other files (called by as_sched_wake). */
void as_wait_unlink(as_fork *f);                 /* wait.c */
void as_channel_unlink(as_fork *f);              /* channel.c */
void as_fdwait_unlink(as_sched *s, as_fork *f);  /* fdwait.c */

/* fdwait.c: polls the fds; blocks at most `timeout` seconds (< 0: forever,
** 0: not at all), waking ready forks. Returns 0 when interrupted by a signal. */
int as_fdwait_poll(lua_State *L, as_sched *s, double timeout);
void as_fdwait_close(lua_State *L, as_sched *s);

/* wait.c: a fork ended; wake the forks waiting for it as their mode says. */
void as_wait_target_ended(lua_State *L, as_sched *s, as_fork *t);

/* Pushes an array of the live forks' userdata, in id order. */
void as_sched_push_live_list(lua_State *L, as_sched *s);

/* The failed fork at ud_idx was never waited for: report it once, now when
** no run is active, else at the loop's next safe point. */
void as_sched_report_unhandled(lua_State *L, as_state *st, int ud_idx);

#endif
