/*
** sched.h: the scheduler of one as.run(): the loop, the live set, and the
** suspend/wake protocol every blocking primitive uses.
**
** Forks are resumed from one flat C loop (sched.c): a fork never resumes
** another one, so chains of forks waiting on each other cost no C stack.
** A blocking primitive (sleep, wait, recv, ...) registers what the fork waits
** for, sets fork->suspend_pending and yields; the bridge passes that yield up
** through any nested coroutines to the fork's root, where the loop sees it.
**
** The scheduler knows no primitive: a primitive describes its await kind by
** an as_await_ops table it registers when the module opens
** (as_sched_register_await) and names in as_sched_suspend; the scheduler
** reaches the primitive only through it (unlink on wake, describe for
** core.fork_info, the ended-target notice for waits). A fork records only
** the kind (one byte; as_sched_await_ops finds the table). The fd poller plugs
** into the loop the same way (as_poller).
*/
#ifndef ASYNCSTACK_SCHED_H
#define ASYNCSTACK_SCHED_H

#include <lua.h>
#include "fork.h"
#include "module.h"
#include "runq.h"
#include "unhandled.h"

struct as_sched;

/* One await kind, described by the file that implements it. */
typedef struct as_await_ops {
  unsigned char kind;   /* enum as_await: as_fork.await_kind, keys as_fork.await */
  const char *name;     /* core.fork_info's await_kind ("sleep", "wait", ...) */
  /* Undoes f's registration (wait nodes, channel queue, fd watch). Never
  ** raises; runs when f is woken and again when run() abandons it, so it
  ** must be idempotent. NULL: nothing to undo. */
  void (*unlink)(struct as_sched *s, as_fork *f);
  /* Sets the fields that say what f waits for (waiting_for, combinator) in
  ** the core.fork_info table on top of L; called only while f's status is
  ** "waiting". May raise (memory). NULL: nothing to say. */
  void (*describe)(lua_State *L, const as_fork *f);
  /* The fork that node->target names has ended; node is in its waiters
  ** list and node->waiter has these ops. Must unlink node (and may wake
  ** the waiter). Only kinds that link wait nodes have it. */
  void (*target_ended)(lua_State *L, struct as_sched *s, as_waitnode *node);
} as_await_ops;

/* An event source the loop polls besides its timers (fdwait.c installs one
** into a run on its first use). */
typedef struct as_poller {
  /* Wakes the forks whose events arrived, blocking at most `timeout`
  ** seconds (< 0: until an event, 0: not at all). Returns 0 when a signal
  ** cut the wait short. */
  int (*poll)(lua_State *L, struct as_sched *s, double timeout);
  /* run() is over: releases the poller's state (s->poller_state). Never
  ** raises. */
  void (*close)(lua_State *L, struct as_sched *s);
} as_poller;

/*
** One run()'s state. Invariants (checked by as_assert under `make asan`):
**  * every fork in `runq` or `timers` is live, in the run queue at most
**    once, with at most one timer; so both have room for nlive forks,
**    reserved when a fork is created, and pushing never allocates;
**  * slots[1..top_slot] hold the live forks by slot (NULL for a free slot),
**    readable from a signal handler: a slot is stored before top_slot covers
**    it, and a grown array is complete before it is published.
*/
typedef struct as_sched {
  lua_State *L;             /* the thread that called run() */
  as_fork *running;         /* async stack root (astack.h); NULL in the loop */
  as_fork *root;            /* run()'s fork */
  int live_ref;             /* registry: table slot -> userdata (anchors them) */
  as_fork **slots;          /* slot -> live fork, or NULL (see above) */
  int slots_cap;            /* length of slots (index 0 unused) */
  int top_slot;             /* highest slot handed out */
  size_t nlive;             /* forks not yet ended */
  int *free_slots;          /* slots of ended forks, for reuse (room for all) */
  int nfree;
  double now;               /* the time of this loop pass, for `since` stamps
                               (never timers): as_now() when the pass read it
                               for due timers, else the coarse clock, read on
                               the pass's first stamp (as_sched_stamp) */
  as_runq runq;             /* runnable forks, FIFO */
  as_timers timers;         /* deadlines of suspended forks */
  const as_poller *poller;  /* NULL until a primitive installs one */
  void *poller_state;       /* owned by the poller (opaque here) */
  int nwatched;             /* forks waiting on the poller (it writes this) */
  as_unhandled unhandled;   /* failures nobody retrieved (unhandled.h) */
  as_state *st;             /* the module state of the run's Lua state */
  int frames_ref;           /* registry: [slot] = grown async-stack array of
                               the live fork in that slot, or LUA_NOREF until
                               the first (as_sched_reserve_frame) */
  int names_ref;            /* registry: names of ended named forks that have
                               live children ([id] = name, [-id] = how many
                               of its children live), or LUA_NOREF until the
                               first (as_sched_push_spawner_name); never the
                               root's (run() holds the root) */
  int now_valid;            /* `now` was read in this loop pass */
  /* The await records' pool (fork.h, as_await_fields): the free ones,
  ** linked by next_free, and the chunks they were cut from (freed when
  ** run() ends, by as_sched_live_free). */
  as_await_fields *await_free;
  struct as_await_chunk *await_chunks;
  /* The function of the last spawn site (as_fork_set_spawn_site): forks
  ** spawned from it again (a loop) find it here, anchored at
  ** registry[spawn_func_ref], instead of asking lua_getinfo for it.
  ** LUA_NOREF until the first spawn site in a Lua function. */
  const void *spawn_func;
  int spawn_func_ref;
} as_sched;

/* The run fork f belongs to while that run is active, else NULL (runs do
** not nest within a Lua state, so it is the state's run or none). */
static inline as_sched *as_fork_sched(const as_state *st, const as_fork *f) {
  return st->sched != NULL && f->run_serial == st->run_serial ? st->sched : NULL;
}

/* Registers the ops of an await kind for the state (each primitive's
** as_*_open; st->await_ops). */
static inline void as_sched_register_await(as_state *st, const as_await_ops *ops) {
  st->await_ops[ops->kind] = ops;
}

/* The ops of what f waits on, or NULL (AS_AWAIT_NONE). */
static inline const as_await_ops *as_sched_await_ops(const as_state *st, const as_fork *f) {
  return st->await_ops[f->await_kind];
}

/* Process-wide pointer to the scheduler that runs now, for signal handlers
** (they get no Lua state). Written by run() only. */
extern as_sched *volatile as_sched_active;

/* The monotonic clock: as_now() precise (timers, as.now()); the coarse one
** (CLOCK_MONOTONIC_COARSE: a few ns, no hardware counter read, never ahead
** of as_now()) for `since` stamps. */
double as_now(void);
double as_now_coarse(void);

/* The time of the current loop pass for a `since` stamp (see as_sched.now):
** at most one clock read per pass, and none in a pass that stamps nothing. */
static inline double as_sched_stamp(as_sched *s) {
  if (!s->now_valid) {
    s->now = as_now_coarse();
    s->now_valid = 1;
  }
  return s->now;
}

/* The fork whose innermost coroutine is L, or NULL (outside run, outside a
** fork, or L was resumed by an unbridged resume). */
static inline as_fork *as_sched_fork_of(as_state *st, lua_State *L) {
  as_sched *s = st->sched;
  if (s == NULL || s->running == NULL) return NULL;
  return as_astack_top(&s->running->astack) == L ? s->running : NULL;
}

/* ---- the live set (live.c) */

/* The live fork in `slot` of s, or NULL. Reads a C array only: no Lua API,
** safe in a signal handler (slots are published before the count that
** covers them). */
as_fork *as_sched_fork_at_slot(const as_sched *s, int slot);

/* Pushes the userdata of fork f if it is live in s, else nil; returns 1
** when it pushed the fork. */
int as_sched_push_fork(lua_State *L, as_sched *s, const as_fork *f);

/* The fork that spawned f, if it is still live; NULL otherwise. No Lua API
** (L is unused; kept for the callers). */
as_fork *as_sched_spawner(lua_State *L, as_sched *s, const as_fork *f);

/* Pushes the name of f's spawner, or nil: a live spawner's own name, else
** the name an ended spawner had when it ended (kept while children it
** spawned live, for "spawned by fork #3 'x' (ended)"), else nil. */
void as_sched_push_spawner_name(lua_State *L, as_sched *s, const as_fork *f);

/* Adds the new fork at ud_idx to the live set and the run queue. Everything
** that can raise (the live table, room in the run queue, timer heap and slot
** arrays) happens before anything is published. */
void as_sched_live_add(lua_State *L, as_sched *s, as_fork *f, int ud_idx);

/* Drops an ended fork from the live set. Never raises. */
void as_sched_live_remove(lua_State *L, as_sched *s, as_fork *f);

/* Gives f an await record (fork.h) unless it has one: from the pool, or a
** new chunk of them. Call it where the primitive may still raise (memory);
** f keeps the record until it ends. */
void as_sched_take_await(lua_State *L, as_sched *s, as_fork *f);
static inline void as_sched_reserve_await(lua_State *L, as_sched *s, as_fork *f) {
  if (f->await == NULL) as_sched_take_await(L, s, f);   /* kept until it ends */
}

/* Frees the C arrays of the live set and the await records' pool. */
void as_sched_live_free(lua_State *L, as_sched *s);

/* Pushes an array of the live forks' userdata, in id order. */
void as_sched_push_live_list(lua_State *L, as_sched *s);

/* Pushes an array of the fork userdata found as keys (use_keys) or values
** of the table at t_idx, sorted by id. */
void as_sched_push_sorted_forks(lua_State *L, int t_idx, int use_keys);

/* Makes room for one more async frame in the running fork f (grows its
** array when full: a userdata the run anchors by f's slot until f ends).
** May raise a memory error. */
void as_sched_reserve_frame(lua_State *L, as_sched *s, as_fork *f);

/* ---- the loop and run()'s end (sched.c) */

/* Runs until every fork has ended, the root failed, or nothing can progress. */
void as_sched_loop(lua_State *L, as_state *st, as_sched *s);

/* Ends every fork still live (run is over): each lets go of what it waits
** on, then its coroutines are closed so pending to-be-closed variables run
** (they cannot block: no run is active); an error one raises becomes the
** fork's outcome and goes to on_unhandled at once. Call with the run no
** longer active. */
void as_sched_abandon_live(lua_State *L, as_state *st, as_sched *s);

/* ---- the blocking protocol, shared by the primitives. A primitive:
** validates its arguments; calls as_sched_enter_suspend (raises unless the
** caller may suspend, and raises Cancelled when a cancel is pending); does
** everything that can raise; then registers what it waits on (from here
** nothing may raise) and returns as_sched_suspend(...), which marks the fork,
** arms the timeout and yields with continuation k. Its continuation starts
** with as_sched_continue and then reads fork->wake: READY (what it waited for
** happened), TIMEOUT, CLOSED (channels). Whoever wakes a fork calls
** as_sched_wake, which undoes the registration (timer, and the ops' unlink)
** and never raises. */

as_sched *as_sched_check_in_run(lua_State *L, as_state *st, const char *name);
as_fork *as_sched_enter_suspend(lua_State *L, as_state *st, const char *name);
/* Marks f, the running fork of s, suspended (status, await kind, since),
** arms a timer `timeout` seconds from now unless it is HUGE_VAL, and yields;
** k continues. Never raises before the yield. */
int as_sched_suspend(lua_State *L, as_sched *s, as_fork *f, int status, const as_await_ops *ops,
                     double timeout, lua_KContext ctx, lua_KFunction k);
/* Makes suspended f runnable with reason `wake`. Never raises. */
void as_sched_wake(as_sched *s, as_fork *f, int wake);

/* Raises as.Cancelled in the fork when it was woken by a cancel. */
void as_sched_check_cancel(lua_State *L, as_state *st, as_fork *f);

/* The prologue of every continuation: the fork that resumes (or NULL when
** L is no fork's innermost coroutine), after raising as.Cancelled when a
** cancel woke it. */
static inline as_fork *as_sched_continue(lua_State *L, as_state *st) {
  as_fork *f = as_sched_fork_of(st, L);
  if (f != NULL && f->wake == AS_WAKE_CANCEL) as_sched_check_cancel(L, st, f);
  return f;
}

/* as.yield() for the running fork (the bridge's coroutine.yield at a fork's
** own level calls it too); `name` names the call in errors. */
int as_sched_yield(lua_State *L, as_state *st, const char *name);

/* f:cancel() (fork.c): true, or false when f has already ended. */
int as_sched_cancel(lua_State *L, as_state *st, as_fork *f);

/* Raises the error of `kind` ("Timeout", "Cancelled", ...) the policy builds. */
int as_sched_raise_kind(lua_State *L, as_state *st, const char *kind, const char *msg);

/* Pushes the error value of `kind` without raising it. */
void as_sched_push_kind(lua_State *L, as_state *st, const char *kind, const char *msg);

/* An optional timeout argument: nil/none gives HUGE_VAL; negative or NaN
** raise an argument error. */
double as_sched_opt_timeout(lua_State *L, int arg);

#endif
