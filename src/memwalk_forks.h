/*
** memwalk_forks.h: every fork of every running scheduler, read from memory
** alone through the published descriptor (debuglayout.h) and a read
** callback (memwalk.h): what a debugger, a profiler, a core-file reader or
** the crash handler sees. Same rules as memwalk.h: no Lua API, no
** allocation, every loop bounded, every value checked; the output goes to
** the caller's arrays.
**
** For each fork: id, name, status, await kind, time in state, spawner and
** spawn site, the forks waiting for it, and its frames across all its
** coroutines (innermost coroutine first, down to the fork's root
** function), the frames asyncstack's traces hide left out (its own C
** functions and its Lua front end), named as the in-process traces name
** them: the call-site name (as lua_getinfo), else the global name found in
** package.loaded (as luaL_traceback).
*/
#ifndef ASYNCSTACK_MEMWALK_FORKS_H
#define ASYNCSTACK_MEMWALK_FORKS_H

#include "memwalk.h"
#include "debuglayout.h"

#define AS_MEMWALK_MAX_WAITERS 8
#define AS_MEMWALK_MAX_ASTACK 256     /* coroutines per fork */
#define AS_MEMWALK_MAX_SLOTS (1 << 24) /* forks per scheduler */
#define AS_MEMWALK_FORK_FRAMES 200     /* frames per coroutine walked */

typedef struct as_memwalk_fork {
  uintptr_t addr;            /* the as_fork */
  uintptr_t sched;           /* its as_sched */
  long long id;
  char name[AS_MEMWALK_NAME_SIZE];   /* "" when unnamed */
  int status;                /* enum as_status (fork.h); -1 unreadable */
  int await_kind;            /* enum as_await; 0 when not suspended */
  char await_name[16];       /* "sleep", "wait", ... ("" when none) */
  long long await_target;    /* wait: the id of the one fork awaited (0 for
                                wait_all/wait_any); fd: the fd; else 0 */
  double seconds_in_state;   /* scheduler's now - since (>= 0) */
  long long spawner_id;      /* 0 for run()'s root */
  int spawn_line;            /* -1 when unknown */
  char spawn_source[AS_MEMWALK_SOURCE_SIZE];  /* "" when unknown */
  int spawn_linedefined;     /* of the spawning function; -1 when unknown */
  long long waiters[AS_MEMWALK_MAX_WAITERS];
  int nwaiters;              /* how many ids are in waiters */
  int more_waiters;          /* waiters beyond AS_MEMWALK_MAX_WAITERS */
  int first_frame, nframes;  /* its frames in the caller's frame array */
  as_memwalk_status walk;    /* complete / truncated / failed for this fork */
  /* Added for `asyncstack ps` (issue 15; descriptor version 2). Times are
  ** the scheduler's clock (as_now: CLOCK_MONOTONIC seconds). */
  double since;              /* when it entered its state; 0 unknown */
  double now;                /* its scheduler's batch time (as_sched.now) */
  int has_deadline;          /* a timer is armed (sleep, or a timeout) */
  double deadline;           /* then: when it fires */
  int is_root;               /* run()'s root fork */
  long long channel_id;      /* channel await: the channel's id; else 0 */
  int channel_op;            /* channel await: 1 send, 2 recv */
  int fd_write;              /* fd await: 1 writability, 0 readability */
  int wait_mode;             /* wait await: AS_MEMWALK_WAIT_* */
  long long wait_targets[AS_MEMWALK_MAX_WAITERS];  /* the forks it waits for */
  int nwait_targets;         /* how many ids are in wait_targets */
  int more_wait_targets;     /* targets beyond AS_MEMWALK_MAX_WAITERS */
  int waiter_mode;           /* its first waiter's wait: AS_MEMWALK_WAIT_* */
  int waiter_index;          /* that waiter's node index (combinators: 1-based) */
  uintptr_t thread;          /* its root coroutine (any thread of the state
                                serves as_memwalk_global_name) */
} as_memwalk_fork;

/* as_memwalk_fork.wait_mode, waiter_mode */
enum { AS_MEMWALK_WAIT_ONE = 0, AS_MEMWALK_WAIT_ALL = 1, AS_MEMWALK_WAIT_ANY = 2 };

/* Global names found in package.loaded, by function address: a walk of
** many forks (a tool reading 100,000 of them) searches package.loaded once
** per function instead of once per frame. Caller's storage, about 300 KB;
** valid for one snapshot of the memory. */
#define AS_MEMWALK_NAME_CACHE 4096
typedef struct as_memwalk_name_cache {
  uintptr_t func[AS_MEMWALK_NAME_CACHE];     /* 0: empty entry */
  signed char found[AS_MEMWALK_NAME_CACHE];  /* 1: name[] holds it; 0: none */
  char name[AS_MEMWALK_NAME_CACHE][AS_MEMWALK_NAME_SIZE];
} as_memwalk_name_cache;

typedef struct as_memwalk_forks_result {
  int nforks;                /* entries filled in forks[] */
  int nframes;               /* entries filled in frames[] */
  int nscheds;               /* schedulers found in the registry */
  as_memwalk_status status;  /* of the whole walk */
  const char *error;         /* static text when the descriptor is unusable */
} as_memwalk_forks_result;

/* A process (or core) being read: the reader, the descriptor read from it
** and the Lua layout the descriptor states. About 2 KB: a signal handler
** keeps it static. */
typedef struct as_memwalk_target {
  const as_memwalk_reader *rd;
  as_debug_descriptor d;
  as_lualayout lay;
  /* NULL after as_memwalk_target_open; a caller may then set it (zeroed
  ** storage) so global names are searched once per function */
  as_memwalk_name_cache *names;
} as_memwalk_target;

/* Reads and checks the descriptor at `descriptor`; NULL when usable, else
** why not (static text). */
const char *as_memwalk_target_open(as_memwalk_target *t,
                                   const as_memwalk_reader *rd,
                                   uintptr_t descriptor);

/* One fork at address `fork` of scheduler `sched` (see as_memwalk_fork; a
** fork does not record its scheduler); `now` is that scheduler's time (for
** seconds_in_state). Its frames go to frames[0, room); first_frame is 0. */
void as_memwalk_fork_read(as_memwalk_target *t, uintptr_t sched, uintptr_t fork, double now,
                          as_memwalk_fork *out, as_memwalk_frame *frames,
                          int room);

/* The frames of coroutine `thread` the traces show (hidden ones left out,
** unnamed ones given their global name); returns how many. */
int as_memwalk_thread_visible(as_memwalk_target *t, uintptr_t thread,
                              as_memwalk_frame *frames, int room,
                              as_memwalk_status *status);

/*
** Reads the descriptor at `descriptor` (an address in the inspected
** memory), then every live fork of every registered scheduler, filling up
** to `maxforks` forks and `maxframes` frames. `t` (caller's storage) is
** opened on the descriptor, for later calls. Returns the result; status FAILED with `error`
** when the descriptor cannot be used (bad magic or version, not verified).
*/
as_memwalk_forks_result as_memwalk_forks(as_memwalk_target *t,
                                         const as_memwalk_reader *rd,
                                         uintptr_t descriptor,
                                         as_memwalk_fork *forks, int maxforks,
                                         as_memwalk_frame *frames,
                                         int maxframes);

/*
** Every live fork of every registered scheduler of the opened target `t`,
** one at a time: each is read into *scratch with its frames in
** frames[0, room) (reused for the next fork), then fn(ud, fork, frames) is
** called; a nonzero return stops the walk. For a tool reading many forks
** with a bounded buffer. The result's nforks counts the forks visited,
** nframes the frames of all of them.
*/
typedef int (*as_memwalk_fork_fn)(void *ud, const as_memwalk_fork *fork,
                                  const as_memwalk_frame *frames);
as_memwalk_forks_result as_memwalk_forks_each(as_memwalk_target *t,
                                              as_memwalk_fork_fn fn, void *ud,
                                              as_memwalk_fork *scratch,
                                              as_memwalk_frame *frames,
                                              int room);

/* The name of await kind `kind` (the descriptor's numbering) into out:
** "sleep", "wait", "yield", "channel", "fd", or "" when unknown. */
void as_memwalk_await_name(const as_memwalk_target *t, unsigned kind,
                           char *out, size_t size);

/* The thread that called run() of scheduler `sched` (its as_sched.L), or
** 0 when it cannot be read. */
uintptr_t as_memwalk_sched_caller(as_memwalk_target *t, uintptr_t sched);

/* as_memwalk_global_name through t->names when set (see above). */
int as_memwalk_global_name_cached(as_memwalk_target *t, uintptr_t thread,
                                  const as_memwalk_frame *frame, char *out,
                                  size_t size);

/* The one chain rule (chain.h) read from memory: what follows fork `fork` of
** scheduler `sched`
** in an async trace. AWAITED: *next is the first waiter; SPAWNED: *next is
** the spawner, 0 when it has ended (its slot is free or reused); RUN: the
** chain leaves the forks (run()'s caller, as_memwalk_sched_caller, is
** next); UNREADABLE: the fork could not be read. By address, so a sampler
** follows one chain without listing every fork. */
enum { AS_MEMWALK_LINK_AWAITED, AS_MEMWALK_LINK_SPAWNED, AS_MEMWALK_LINK_RUN,
       AS_MEMWALK_LINK_UNREADABLE };
int as_memwalk_chain_next(as_memwalk_target *t, uintptr_t sched, uintptr_t fork,
                          uintptr_t *next);

#endif
