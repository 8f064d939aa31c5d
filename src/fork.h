/*
** fork.h: a fork is a unit of concurrent work: a root coroutine plus the
** bookkeeping the scheduler and the trace walker need.
**
** A fork lives in a full userdata (metatable AS_FORK_MT) with two uservalues
** (each costs every fork 16 bytes, so the rare ones share the second):
**   1  its root coroutine (anchors as_fork_thread)
**   2  the function that spawned it (spawn site), or nil; once the fork has
**      a name or a failure value, a table holding all three instead (made
**      by as_fork_reserve_extras). Read and written only through the
**      as_fork_push_* / as_fork_set_* functions below:
**        spawn function
**        name (string or nil)
**        for a failed fork: the value a waiter re-raises (see on_failure)
** Kept by the run instead, not in every fork: the async stack's array once
** it outgrew the inline frames (as_sched_reserve_frame), the await fields of
** a fork that waited on a fork, channel or fd (as_sched_reserve_await), and
** the name of an ended spawner (as_sched_push_spawner_name).
** While a fork has not ended, the scheduler's live table anchors it (at
** `slot`), so the pointers between live forks (waiters, run queue, timer
** heap) never dangle. Ended forks are held only by user references.
*/
#ifndef ASYNCSTACK_FORK_H
#define ASYNCSTACK_FORK_H

#include <lua.h>
#include "astack.h"
#include "module.h"

#define AS_FORK_MT "asyncstack.Fork"

/* The status set, defined once: the enum and its names (as_fork_status_name,
** what Fork:status() and core.fork_info say). Ended statuses come last. */
#define AS_STATUS_LIST(X) \
  X(AS_RUNNABLE, "runnable") X(AS_RUNNING, "running") X(AS_SLEEPING, "sleeping") \
  X(AS_WAITING, "waiting") X(AS_DONE, "done") X(AS_FAILED, "failed") \
  X(AS_CANCELLED, "cancelled")

#define AS_STATUS_ENUM(e, name) e,
enum as_status { AS_STATUS_LIST(AS_STATUS_ENUM) AS_STATUS_COUNT };
#undef AS_STATUS_ENUM

/* What a suspended fork waits on (its await point's kind): keys the union
** as_fork.await. */
enum as_await {
  AS_AWAIT_NONE, AS_AWAIT_SLEEP, AS_AWAIT_WAIT, AS_AWAIT_YIELD,
  AS_AWAIT_CHANNEL, AS_AWAIT_FD, AS_AWAIT_COUNT
};

/* Why a suspended fork was made runnable again. */
enum as_wake {
  AS_WAKE_NONE, AS_WAKE_READY, AS_WAKE_TIMEOUT, AS_WAKE_CANCEL, AS_WAKE_CLOSED
};

/* How a waiting fork waits for its wait nodes' targets. */
enum as_wait_mode { AS_WAIT_ONE, AS_WAIT_ALL, AS_WAIT_ANY };

struct as_fork;
struct as_channel;
struct as_await_ops;   /* sched.h */

/* One fork waiting for another: a node in target->waiters. A plain wait uses
** the node inside the waiter (await.wait.own_node); wait_all/wait_any use an
** array the combinator keeps on its own stack for as long as it waits. */
typedef struct as_waitnode {
  struct as_fork *waiter;          /* who waits */
  struct as_fork *target;          /* for whom */
  struct as_waitnode *next, *prev; /* links in target->waiters */
  int index;                       /* 1-based position in a combinator's list; 0 for wait */
  unsigned char linked;            /* in target->waiters now */
} as_waitnode;

/*
** The fields of one await kind (what a suspended fork is registered with).
** Key: as_fork.await_kind. Valid from the moment the primitive fills them
** (just before as_sched_suspend) until its continuation has read them; their
** owner's unlink op undoes the registration and may run more than once
** (waking, then abandoning). Outside that window the bytes belong to
** whichever kind came last: read them only through the key. Sleep and yield
** have no fields (the timer and the run queue are the scheduler's own).
**
** They live out of line (as_fork.await), in records the run hands out from a
** pool (as_sched_reserve_await) and takes back when the fork ends: most forks
** never wait on a fork, a channel or an fd, and the 64 bytes inline cost every
** fork (a sleeping fork's memory, issue 17). A record is never freed while its
** run lives, so a signal handler that reads one of a fork that just ended
** reads stale fields, never freed memory. `next_free` links the pool's free
** records.
*/
typedef union as_await_fields {
  struct as_wait_fields {            /* AS_AWAIT_WAIT: wait.c */
    /* The node of a plain wait. Its `target` is also "the fork a plain wait
    ** waits for" (cycle checks, walkers: debuglayout.h's
    ** fork_await_awaiting): NULL for a combinator and once woken. */
    as_waitnode own_node;
    as_waitnode *nodes;              /* &own_node, or the combinator's array */
    int nnodes;                      /* how many */
    int remaining;                   /* targets not ended yet (wait_all) */
    int woken_index;                 /* node index whose target woke it (wait_any) */
    unsigned char mode;              /* enum as_wait_mode */
  } wait;
  struct as_chan_fields {            /* AS_AWAIT_CHANNEL: channel.c */
    struct as_channel *channel;      /* NULL once unlinked */
    struct as_fork *next, *prev;     /* links in the channel's queue */
    unsigned char op;                /* 1 send, 2 recv */
  } chan;
  struct as_fd_fields {              /* AS_AWAIT_FD: fdwait.c */
    int fd;                          /* -1 once unlinked */
    unsigned char write;             /* waiting for writability, else readability */
    unsigned char closed;            /* why a WAKE_CLOSED woke it (fdwait.c) */
  } fd;
  union as_await_fields *next_free;  /* in the run's pool (live.c) */
} as_await_fields;

typedef struct as_fork {
  /* Ordered for packing: 8-byte fields, then 4-, 2- and 1-byte ones. Every
  ** fork pays for every byte here (a sleeping fork is this userdata beside
  ** its coroutine: issue 17 holds it to 1.2x a bare coroutine), so what most
  ** forks never use lives elsewhere: the await fields in a pooled record,
  ** the name and failure in the extras table (uservalue 2), the owning run
  ** derived from run_serial (as_fork_sched), the root coroutine read from the
  ** async stack's first frame (as_fork_thread). */
  lua_Integer id;             /* never repeats within the process */
  as_astack astack;           /* see astack.h; inline_frames[0].thread is the
                                 root coroutine (uservalue 1) for good */
  double since;               /* monotonic time of the last state change */
  double deadline;            /* timer deadline; valid while heap_index >= 0 */
  /* The await fields (keyed by await_kind), or NULL until the fork first
  ** waits on a fork, channel or fd; then kept until it ends (live.c). */
  as_await_fields *await;
  as_waitnode *waiters;       /* nodes of the forks waiting for this one */
  lua_Integer spawner_id;     /* fork that called fork(); 0 for run()'s root */
  const void *spawn_func;     /* the spawn site's function (uservalue 2
                                 anchors it), for memory-level walkers
                                 (debuglayout.h); NULL when none */
  /* The chars of the name (uservalue 2 anchors them), or NULL. Kept by
  ** as_fork_set_name so the crash handler (crash.c), which may not
  ** call the Lua API, can print the name. */
  const char *name_cstr;
  unsigned run_serial;        /* as_state.run_serial of the owning run */
  /* Before the fork starts: the arguments for its first resume; once it
  ** ended: the results (or 1 error) left on its coroutine. (`started` says
  ** which; in between it is not used.) */
  int nvalues;
  unsigned resumes;           /* times the scheduler resumed it */
  int heap_index;             /* position in the timer heap, or -1 */
  unsigned timer_seq;         /* orders equal deadlines first-in first-out
                                 (compared modulo 2^32: runq.c) */
  int slot;                   /* index in the scheduler's live set; 0 once ended */
  int spawner_slot;           /* its slot then (check the id: slots are reused) */
  /* The spawn site's current line (-1 for a C function, 0 when none), or,
  ** until something reads it through as_fork_spawn_line, AS_SPAWN_PC(pc)
  ** (debuglayout.h, part of what outside readers are told):
  ** the instruction it was at (memory-level readers decode it the same
  ** way, from spawn_func's line info). */
  int spawn_line;
  unsigned live_children;     /* forks it spawned that have not ended (live.c:
                                 an ended named spawner's name is kept while
                                 this is not 0) */
  unsigned char status;       /* enum as_status */
  unsigned char wake;         /* enum as_wake, set by whoever wakes it */
  /* What it waits on (enum as_await; the run's as_await_ops by kind): set by
  ** as_sched_suspend, kept while it is suspended and after it was woken,
  ** until the loop resumes it; AS_AWAIT_NONE otherwise. Keys `await`. */
  unsigned char await_kind;
  unsigned char started : 1;          /* the loop resumed it once (nvalues) */
  unsigned char suspend_pending : 1;  /* a primitive is yielding to the scheduler */
  unsigned char retrieved : 1;        /* a waiter (or pwait) has seen its failure */
  unsigned char reported : 1;         /* its failure went to the unhandled report */
  unsigned char cancel_requested : 1; /* f:cancel() was called; raised at its await point */
  unsigned char cleaning : 1;         /* its <close> handlers run after it failed
                                         (sched.c fail): it is the running fork
                                         but cannot block */
} as_fork;

/* The root coroutine (uservalue 1): the async stack's first frame, set at
** creation and never rewritten (pushes go above it; growing copies it). */
static inline lua_State *as_fork_thread(const as_fork *f) {
  return f->astack.inline_frames[0].thread;
}

/* The fork at idx, or an argument error / NULL when it is not a Fork. By
** metatable address (as_udata_test): call them from a core C function (its
** upvalue 1 is the as_state). */
as_fork *as_fork_check(lua_State *L, int idx);
as_fork *as_fork_test(lua_State *L, int idx);

/* As as_fork_check, for a caller that has the state already (hot paths). */
static inline as_fork *as_fork_check_st(lua_State *L, const as_state *st, int idx) {
  as_fork *f = (as_fork *)as_udata_test(L, idx, st->fork_mt, st->fork_gc_mt);
  if (f == NULL) luaL_typeerror(L, idx, AS_FORK_MT);   /* luaL_checkudata's message */
  return f;
}

/* Gives the fork at ud_idx the metatable with __gc (see fork.c). */
void as_fork_enable_finalizer(lua_State *L, int ud_idx);

/* Creates a fork whose coroutine will call the function at `fn_idx` with the
** `nargs` values above it; pushes the userdata. May raise (memory). */
as_fork *as_fork_new(lua_State *L, int fn_idx, int nargs);

/* Records the caller at `level` of L as the spawn site of the fork at
** `ud_idx`; with the run `s` (NULL for its root), through the run's cache
** of the last spawn site's function. May raise (memory). */
struct as_sched;
void as_fork_set_spawn_site(lua_State *L, int ud_idx, as_fork *f, int level,
                            struct as_sched *s);

/* The spawn site's line (see as_fork.spawn_line), worked out and kept on
** the first call. Never raises. */
int as_fork_spawn_line(as_fork *f);

/* "runnable", "running", ...: the one spelling of each status. */
const char *as_fork_status_name(int status);

/* The fork's extras (uservalue 2); `ud_idx` is the fork's userdata.
** push_*: pushes the value, or nil. Never raise.
** set_*: set it to the value on top of L, popping it; they allocate (and
** may raise a memory error) unless as_fork_reserve_extras ran before for
** that fork. set_name keeps name_cstr. */
void as_fork_push_name(lua_State *L, int ud_idx);
void as_fork_push_spawn_func(lua_State *L, int ud_idx);
void as_fork_push_failure(lua_State *L, int ud_idx);
void as_fork_set_name(lua_State *L, int ud_idx, as_fork *f);
void as_fork_set_failure(lua_State *L, int ud_idx);
/* Makes the extras table if the fork has none. May raise (memory). */
void as_fork_reserve_extras(lua_State *L, int ud_idx);

/* The first fork waiting for f (through any wait node), or NULL. */
static inline struct as_fork *as_fork_first_waiter(const as_fork *f) {
  return f->waiters ? f->waiters->waiter : NULL;
}

/* Ended: done, failed or cancelled. */
static inline int as_fork_ended(const as_fork *f) {
  return f->status >= AS_DONE;
}

#endif
