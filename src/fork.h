/*
** fork.h: a fork is a unit of concurrent work: a root coroutine plus the
** bookkeeping the scheduler and the trace walker need.
**
** A fork lives in a full userdata (metatable AS_FORK_MT) with uservalues:
**   1  its root coroutine (anchors `thread`)
**   2  its name (string or nil)
**   3  the function that spawned it (spawn site), or nil
**   4  for a failed fork: the value a waiter re-raises (see on_failure)
** While a fork has not ended, the scheduler's live table (id -> userdata)
** anchors it, so the pointers between live forks (waiters, run queue, timer
** heap) never dangle. Ended forks are held only by user references.
*/
#ifndef ASYNCSTACK_FORK_H
#define ASYNCSTACK_FORK_H

#include <lua.h>
#include "astack.h"

#define AS_FORK_MT "asyncstack.Fork"

enum as_status {
  AS_RUNNABLE, AS_RUNNING, AS_SLEEPING, AS_WAITING,
  AS_DONE, AS_FAILED, AS_CANCELLED
};

/* What a suspended fork waits on (its await point's kind). */
enum as_await {
  AS_AWAIT_NONE, AS_AWAIT_SLEEP, AS_AWAIT_WAIT, AS_AWAIT_YIELD,
  AS_AWAIT_CHANNEL, AS_AWAIT_FD
};

/* Why a suspended fork was made runnable again. */
enum as_wake { AS_WAKE_NONE, AS_WAKE_READY, AS_WAKE_TIMEOUT };

typedef struct as_fork {
  lua_Integer id;             /* never repeats within the process */
  struct as_sched *sched;     /* owning run(); NULL once that run ended */
  lua_State *thread;          /* root coroutine (uservalue 1) */
  unsigned run_serial;        /* as_state.run_serial of the owning run */
  unsigned char status;       /* enum as_status */
  unsigned char await_kind;   /* enum as_await, valid while suspended */
  unsigned char wake;         /* enum as_wake, set by whoever wakes it */
  unsigned char suspend_pending; /* a primitive is yielding to the scheduler */
  unsigned char retrieved;    /* a waiter (or pwait) has seen its failure */
  unsigned char reported;     /* its failure went to the unhandled report */
  int nargs;                  /* arguments for the first resume; -1 once started */
  int nresults;               /* results (or 1 error) left on `thread` when ended */
  unsigned resumes;           /* times the scheduler resumed it */
  as_astack astack;           /* see astack.h */
  double since;               /* monotonic time of the last state change */
  double deadline;            /* timer deadline; valid while heap_index >= 0 */
  int heap_index;             /* position in the timer heap, or -1 */
  unsigned long timer_seq;    /* orders equal deadlines first-in first-out */
  struct as_fork *awaiting;   /* the fork it waits for (AS_AWAIT_WAIT) */
  struct as_fork *waiters;    /* first fork waiting for this one */
  struct as_fork *next_waiter, *prev_waiter;  /* links in awaiting->waiters */
  lua_Integer spawner_id;     /* fork that called fork(); 0 for run()'s root */
  int spawn_line;             /* current line of the spawn site */
  unsigned walk_mark;         /* trace walks stamp visited forks (cycle safety) */
  /* The chars of the name in uservalue 2 (which anchors them), or NULL. Kept
  ** by whoever sets uservalue 2 so the crash handler (crash.c), which may not
  ** call the Lua API, can print the name. */
  const char *name_cstr;
} as_fork;

as_fork *as_fork_check(lua_State *L, int idx);

/* Creates a fork whose coroutine will call the function at `fn_idx` with the
** `nargs` values above it; pushes the userdata. May raise (memory). */
as_fork *as_fork_new(lua_State *L, int fn_idx, int nargs);

/* Records the caller at `level` of L as the spawn site of the fork at `ud_idx`. */
void as_fork_set_spawn_site(lua_State *L, int ud_idx, as_fork *f, int level);

const char *as_fork_status_name(int status);
const char *as_fork_await_name(int kind);

/* Pushes the fork's name (or nil). `ud_idx` is the fork's userdata. */
void as_fork_push_name(lua_State *L, int ud_idx);

/* Ended: done, failed or cancelled. */
static inline int as_fork_ended(const as_fork *f) {
  return f->status >= AS_DONE;
}

#endif
