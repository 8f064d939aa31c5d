/*
** profile.h: the in-process sampling profiler (issue 16): as.profile.start
** / stop, and the profile object (asyncstack.Profile).
**
** How a sample is taken
** ---------------------
** A POSIX timer (timer_create: CLOCK_PROCESS_CPUTIME_ID in "cpu" mode,
** CLOCK_MONOTONIC in "wall" mode) sends SIGPROF to the thread that called
** start (SIGEV_THREAD_ID). The handler (profile_sample.c, installed by
** profile.c through signals.c, role AS_SIGROLE_PROFILE) records RAW frames
** only -- for each frame the called value, its Proto (or C function), the
** saved pc and the CallInfo's status -- of the running fork's async stack: its coroutines innermost first, a
** separator for the fork, then the fork after it by the one chain rule
** (chain.h: awaiter, else spawner, else run()'s caller, whose frames end the
** sample). Outside run() it records the main thread's frames.
** In "wall" mode every other live fork is recorded too, as a sample of its
** own that starts with its await point ([sleeping], [waiting on fork #5],
** [waiting on channel #3], [waiting on fd 7 (read)], [runnable]).
**
** What the handler trusts (the walker's rules, memwalk.h)
** --------------------------------------------------------
**  * asyncstack's own structs (the scheduler, its live slots, forks and
**    their async stacks), read with plain loads as crash_async.c and chain.c
**    do: they are published before the counts that cover them (sched.h,
**    astack.h), and the handler interrupts the only thread that writes them.
**  * A thread's lua_State and its CallInfo list from L->ci back to base_ci:
**    the threads are reachable (astack.h), and Lua frees CallInfo nodes only
**    past L->ci (luaE_shrinkCI) or with the thread. Read with plain loads.
**  * Nothing else: the value in a frame's stack slot (ci->func) and the
**    closure it names are read with process_vm_readv on the own pid, which
**    fails instead of faulting on a freed or unmapped address: the stack may
**    be in the middle of a reallocation (5.4.0-5.4.5 free the old stack
**    before fixing the frames' pointers; 5.4.6+ turn them into offsets
**    meanwhile), a reused CallInfo may hold a stale ci->func. ci->func must
**    also lie inside the thread's stack as L->stack states it. A tick costs
**    two such calls, batched over all its samples' frames (one for the
**    slots, one for the closures), not one per read: a call costs 1-3 us. Where the kernel refuses
**    process_vm_readv on the own process, plain loads are used after the
**    same checks (stated by profile:info().safe_reads == false).
** No Lua API call, no allocation, no lock: the sample is built in a static
** buffer and copied into a preallocated ring (single producer: the handler;
** single consumer: the drain below, in the same thread). The raw format is
** stated in profile_sample.h.
**
** When frames are named
** ---------------------
** At the scheduler's safe point (signals.c asks as_profile_pending and
** calls as_profile_safe_point between resumes) and at stop, outside any
** handler: each raw frame is named through the memory walker
** (as_memwalk_raw_frame with the safe reader, so a Proto freed since the
** sample reads as a wrong or unreadable frame, never a fault), as the traces
** name it (render.h's as_render_profile_frame: "name (file:line)"), the
** frames the traces hide left out. Cached by function (its line table read
** once: as_memwalk_proto_lines), line and call site; global names are
** found through the Lua API (framename.h), one pass over package.loaded
** per batch of new functions. Stacks go
** into a flame aggregator (flame.h), which the profile's folded(),
** speedscope() and svg() write.
**
** One profile runs at a time in the process. stop() deletes the timer,
** discards a tick still pending and gives SIGPROF back its previous action;
** so does the collection of a running profile's anchor and the closing of
** the Lua state that started it (signals.c's guard calls
** as_profile_shutdown first).
*/
#ifndef ASYNCSTACK_PROFILE_H
#define ASYNCSTACK_PROFILE_H

#include <lua.h>
#include "module.h"

#define AS_PROFILE_MT "asyncstack.Profile"

/* Raw samples are waiting to be named (signal-safe, cheap). */
int as_profile_pending(void);
/* The scheduler's safe point: names the raw samples of the profile `st`'s
** state started. Never raises (a memory error counts the sample as lost). */
void as_profile_safe_point(lua_State *L, as_state *st);
/* The state that started the running profile is closing: stop sampling
** (timer deleted, SIGPROF given back) without naming anything. */
void as_profile_shutdown(void);

void as_profile_open(lua_State *L);

#endif
