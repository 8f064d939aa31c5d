/*
** astack.h: the async stack, the structure every asyncstack trace is read from.
**
** Overview
** --------
** Lua can walk the frames of one coroutine (lua_getstack), but it does not
** record who resumed a coroutine, so a plain traceback stops at the first
** coroutine boundary. asyncstack records that link itself, in the style of
** folly's AsyncStackRoot/AsyncStackFrame and KPHP's async_stack_root:
**
**  * An *async frame* is one coroutine activation inside a fork. It holds the
**    lua_State of that coroutine; its Lua frames are walked with lua_getstack
**    whether the coroutine is running, "normal" (it resumed another one) or
**    suspended.
**  * Each fork owns an *async stack*: the async frames of the coroutines that
**    are active inside it, as an array. frames[0] is the fork's root coroutine;
**    frames[i] was resumed by frames[i - 1]; frames[depth - 1] is the innermost
**    one: the coroutine that runs while the fork runs, or the one that made the
**    blocking call while the fork is suspended.
**  * The *async stack root* is as_sched.running: the fork that runs now, or
**    NULL while the scheduler loop itself runs. With it, the running async
**    frame is running->astack.frames[running->astack.depth - 1]: two loads,
**    no allocation, so a signal handler can read it.
**
**       as_sched.running ──► as_fork #7 (waited on by #3 ──► #1)
**                              astack.frames[2]  generator coroutine  ◄─ running
**                                   ▲ resumed by
**                              astack.frames[1]  helper coroutine   ("normal")
**                                   ▲ resumed by
**                              astack.frames[0]  root coroutine of fork #7
**
** The chain between forks is not part of the async stack: a trace continues
** from a fork's root to its awaiter (as_fork.waiters) or, when nobody waits, to
** the spawn site of the fork (as_fork.spawner_id, spawn line and function).
**
** Watchers (who writes what)
** --------------------------
**  * The scheduler loop (sched.c) sets as_sched.running before lua_resume of
**    a fork's root and clears it after; frames[0] is set once at fork creation.
**  * The coroutine bridge (bridge.c) pushes an async frame before it resumes a
**    coroutine from inside the running fork and pops it when that coroutine
**    yields back normally, returns or fails. When the coroutine instead makes a
**    scheduler suspension (sleep, wait, yield...), the frame stays pushed while
**    the fork is suspended and the bridge yields its own coroutine in turn, up
**    to the fork's root; on wake-up the bridge continuation resumes it again.
**  * A suspension records its kind and time in the fork (await_ops, since);
**    the file/line of the await point is not recorded: it is read lazily from
**    the suspended coroutine's stack, which stays intact while suspended.
**
** Invariants
** ----------
**  * While a fork is running or suspended, 1 <= depth <= capacity and every
**    frames[i].thread is reachable (frames[0] through the fork's uservalue,
**    frames[i > 0] through the stack of frames[i - 1], where the bridge holds
**    it as an argument or upvalue). No references are taken here.
**  * A signal handler may read the stack at any instruction: push stores the
**    frame before the depth that covers it, and growing publishes a complete
**    new array; the old one is freed later by the collector (compiler
**    fences, no atomics).
**  * Push, pop and reading the root are a few pointer stores/loads: no
**    allocation except when depth exceeds every earlier depth of that fork (the
**    array then grows once, as a userdata the run anchors while the fork
**    lives: see as_sched_reserve_frame), and no string work.
**  * After a fork ends its depth is 0 and its coroutine stack is gone.
*/
#ifndef ASYNCSTACK_ASTACK_H
#define ASYNCSTACK_ASTACK_H

#include <lua.h>
#include "check.h"

/* Async frames held inside the fork itself (its root and one nested
** coroutine); deeper nesting grows an array the fork anchors. */
#define AS_ASTACK_INLINE 2
/* Most frames an async stack holds (what 16 bits count). */
#define AS_ASTACK_MAX 32768

typedef struct as_frame {
  lua_State *thread;  /* the coroutine of this activation; valid while pushed */
} as_frame;

typedef struct as_astack {
  as_frame *frames;   /* inline_frames, or a heap array once grown */
  /* (16 bits: Lua's C-stack limit keeps coroutine nesting in the
  ** hundreds, and as_sched_reserve_frame refuses to grow past AS_ASTACK_MAX) */
  unsigned short depth;     /* frames in use */
  unsigned short capacity;  /* length of `frames` */
  as_frame inline_frames[AS_ASTACK_INLINE];
} as_astack;

/* Prepares an empty stack whose bottom frame is `root`. */
void as_astack_init(as_astack *a, lua_State *root);

/* Switches to `frames` (capacity `capacity` > depth), copying the frames in
** use. The caller owns the new array (the run anchors it as a userdata, so
** the old one stays valid until the collector frees it: a signal handler
** reading the stack never sees freed memory). Never raises. */
void as_astack_adopt(as_astack *a, as_frame *frames, int capacity);

/* The fork has ended (depth 0): back to the inline frames. The caller then
** drops its anchor of a grown array (the collector frees it later). */
void as_astack_release(as_astack *a);

/* True when a push needs a bigger array first (see as_astack_adopt). */
static inline int as_astack_full(const as_astack *a) {
  return a->depth == a->capacity;
}

#ifdef ASYNCSTACK_NO_TRACKING
/*
** Benchmark-only build (`make notrack`, row 4 of `make bench`): the watchers
** are compiled out. Push and pop do nothing, so every fork's async stack stays
** at its root frame (depth 1), and fork.c records no spawn site. Traces are
** WRONG in this build: they miss every nested coroutine and spawn site, and a
** scheduler suspension from a nested coroutine is refused as "unbridged". It
** exists only to measure what the watchers cost; never ship or test it.
*/
static inline void as_astack_push(as_astack *a, lua_State *co) {
  (void)a; (void)co;
}

static inline void as_astack_pop(as_astack *a) {
  (void)a;
}
#else
/* Pushes `co` as the innermost frame. Precondition: !as_astack_full(a). */
static inline void as_astack_push(as_astack *a, lua_State *co) {
  as_assert(a->depth >= 1 && a->depth < a->capacity);
  a->frames[a->depth].thread = co;
  /* a signal handler must never see the new depth before the frame: a
  ** compiler-only fence, free at run time */
  __atomic_signal_fence(__ATOMIC_RELEASE);
  a->depth++;
}

static inline void as_astack_pop(as_astack *a) {
  if (a->depth > 1) a->depth--;
}
#endif

/* The innermost coroutine, or NULL once the fork has ended. */
static inline lua_State *as_astack_top(const as_astack *a) {
  return a->depth > 0 ? a->frames[a->depth - 1].thread : NULL;
}

#endif
