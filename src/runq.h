/*
** runq.h: the scheduler's two queues, in pure C (no Lua stack work, never
** raises): the FIFO run queue of runnable forks and the timer min-heap of
** suspended forks with a deadline.
**
** Growth is separate from use, so that nothing can fail half-way through a
** state change: the scheduler reserves room for every live fork when the fork
** is created (a fork is in the run queue at most once and has at most one
** timer), and pushing or arming a timer is then a few stores. Memory comes
** from the Lua state's allocator, passed in by the caller.
*/
#ifndef ASYNCSTACK_RUNQ_H
#define ASYNCSTACK_RUNQ_H

#include <stddef.h>
#include <lua.h>
#include "fork.h"
#include "check.h"

typedef struct as_runq {
  as_fork **ring;             /* ring buffer of `cap` entries */
  size_t head, len, cap;      /* entries head .. head+len-1 (mod cap); cap is
                                 0 or a power of two (indexes are masked) */
} as_runq;

/* A timer: its fork and a copy of the fork's deadline, so that ordering
** the heap reads the heap's own array and not a fork record per comparison
** (bench row 14: 100,000 timers are 17 levels of forks scattered in memory). */
typedef struct as_timer {
  double deadline;            /* == fork->deadline */
  as_fork *fork;
} as_timer;

#define AS_TIMER_ARITY 4      /* children per heap entry (runq.c) */

typedef struct as_timers {
  as_timer *heap;             /* 4-ary min-heap by (deadline, fork->timer_seq):
                                 half the levels of a binary one, and the four
                                 children of an entry are next to each other */
  size_t len, cap;
  unsigned seq;               /* next timer_seq: orders equal deadlines FIFO */
} as_timers;

/* Makes room for at least n entries. Returns 0 (queue unchanged) when the
** allocator refuses. */
int as_runq_reserve(as_runq *q, size_t n, lua_Alloc alloc, void *ud);
int as_timers_reserve(as_timers *t, size_t n, lua_Alloc alloc, void *ud);

/* Frees the arrays (queues become empty). */
void as_runq_free(as_runq *q, lua_Alloc alloc, void *ud);
void as_timers_free(as_timers *t, lua_Alloc alloc, void *ud);

/* Appends f. Precondition: room reserved (len < cap). */
static inline void as_runq_push(as_runq *q, as_fork *f) {
  as_assert(q->len < q->cap);
  q->ring[(q->head + q->len) & (q->cap - 1)] = f;
  q->len++;
}

/* Removes and returns the oldest entry. Precondition: len > 0. */
static inline as_fork *as_runq_pop(as_runq *q) {
  as_fork *f;
  as_assert(q->len > 0);
  f = q->ring[q->head];
  q->head = (q->head + 1) & (q->cap - 1);
  q->len--;
  return f;
}

/* The entry `k` places after the oldest (0: the oldest). Precondition: k < len. */
static inline as_fork *as_runq_peek(const as_runq *q, size_t k) {
  as_assert(k < q->len);
  return q->ring[(q->head + k) & (q->cap - 1)];
}

/* Arms f's timer at `deadline` (monotonic seconds). Preconditions: room
** reserved, f has no timer (heap_index < 0). */
void as_timers_add(as_timers *t, as_fork *f, double deadline);

/* Disarms f's timer if it has one (heap_index >= 0); else does nothing
** (inline: most wakes have no timer). */
void as_timers_take_out(as_timers *t, as_fork *f);
static inline void as_timers_remove(as_timers *t, as_fork *f) {
  if (f->heap_index >= 0) as_timers_take_out(t, f);
}

/* The fork with the earliest deadline, or NULL. */
static inline as_fork *as_timers_first(const as_timers *t) {
  return t->len > 0 ? t->heap[0].fork : NULL;
}

/* The fork with the earliest deadline if that deadline is at or before
** `now`, else NULL; reads the heap only, not the fork. */
static inline as_fork *as_timers_due(const as_timers *t, double now) {
  return t->len > 0 && t->heap[0].deadline <= now ? t->heap[0].fork : NULL;
}

#endif
