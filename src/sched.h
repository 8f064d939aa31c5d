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
  int live_ref;             /* registry: table id -> fork userdata of live forks */
  size_t nlive;             /* forks not yet ended */
  as_fork **runq;           /* ring buffer of runnable forks */
  size_t rq_head, rq_len, rq_cap;
  as_fork **heap;           /* timer min-heap by (deadline, timer_seq) */
  int heap_len, heap_cap;
  unsigned long timer_seq;
  unsigned walk_mark;       /* last mark used by a trace walk */
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

/* Pushes the live fork with this id (userdata) or nil. */
int as_sched_push_live(lua_State *L, as_sched *s, lua_Integer id);

/* Looks a live fork up by id; NULL when it has ended or never existed. */
as_fork *as_sched_find_live(lua_State *L, as_sched *s, lua_Integer id);

/* Pushes an array of the live forks' userdata, in id order. */
void as_sched_push_live_list(lua_State *L, as_sched *s);

/* The failed fork at ud_idx was never waited for: report it once, now when
** no run is active, else at the loop's next safe point. */
void as_sched_report_unhandled(lua_State *L, as_state *st, int ud_idx);

#endif
