/*
** signals.h: the one owner of process-wide signal state (issue 11 item 4).
**
** Signal dispositions belong to the process, not to a Lua state, and the
** handlers are code of this module, which Lua unloads when the last state
** that required it closes. So every handler asyncstack installs goes
** through here:
**  * a registry: for each signal, which role holds it (crash handler, dump
**    on signal, the Ctrl-C interrupt of a run, the profiler's timer), the action that was there
**    before asyncstack took it, and the guard of the Lua state that took it;
**  * one guard per Lua state (a userdata anchored in its registry, created
**    before any change): when that state closes, every signal it holds is
**    given back before the module's code is unloaded; signals held by
**    another state stay (the guard owns no pointer into a dead state);
**  * the alternate signal stack the crash handler runs on;
**  * one signal-name table;
**  * the two handlers that need the Lua side (dump on signal, SIGINT during
**    as.run): they only set a flag and hook the running fork's innermost
**    coroutine (lua_sethook is the one Lua call that is safe in a signal
**    handler; lua.c does the same for SIGINT); the work is done at the
**    next safe point: that hook, or the scheduler loop (as_signals_pending
**    / as_signals_safe_point, between resumes and after the idle wait,
**    which signals cut short: clock_nanosleep and epoll_wait are never
**    restarted, SA_RESTART or not).
** Written only from Lua-side code (never while a handler of ours runs in
** this thread), read by the handlers.
*/
#ifndef ASYNCSTACK_SIGNALS_H
#define ASYNCSTACK_SIGNALS_H

#include <signal.h>
#include <lua.h>
#include "module.h"
#include "sched.h"

enum as_sigrole {
  AS_SIGROLE_NONE, AS_SIGROLE_CRASH, AS_SIGROLE_DUMP, AS_SIGROLE_INTERRUPT,
  AS_SIGROLE_PROFILE        /* the profiler's timer signal (profile.c) */
};

/* "SIGSEGV" for SIGSEGV; "?" for a signal not in the table (signal-safe). */
const char *as_signals_name(int sig);
/* The number of a signal named "SIGUSR1" (or "USR1" when allow_short), or 0. */
int as_signals_number(const char *name, int allow_short);

/* Creates the state's guard if it has none yet. May raise (memory): call
** it before changing anything. */
void as_signals_guard(lua_State *L);
/* Installs `sa` for sig on behalf of L's state (its guard must exist) in
** role `role`. The action asyncstack found first is kept, whoever takes sig
** later. Returns 0, or errno when sigaction refused. */
struct sigaction;
int as_signals_take(lua_State *L, int sig, int role, const struct sigaction *sa);
/* Gives sig back its pre-asyncstack action, if asyncstack holds it. */
void as_signals_release(int sig);
/* Gives back every signal held in `role`; returns how many there were. */
int as_signals_release_role(int role);
/* The role holding sig (AS_SIGROLE_NONE when asyncstack does not). */
int as_signals_role(int sig);

/* Gives the calling thread asyncstack's alternate signal stack (mapped on
** first use, never unmapped). 0 with errno set on failure. Given back when
** no held signal needs it any more. */
int as_signals_use_altstack(void);

/* Dump on signal (as.dump_on_signal): 0 or errno. */
int as_signals_dump_enable(lua_State *L, int sig);
void as_signals_dump_disable(void);

/* as.run's Ctrl-C (issue 12 item 6). run_begin may raise (memory) before
** it changes anything; run_end never raises. Between them SIGINT (unless
** the process ignores it or dump_on_signal holds it) raises "interrupted!"
** in the running fork, or at the root fork's await point (the oldest live
** fork's when the root has ended); a non-root fork that dies of it hands its
** error to the root, or to run() itself, so run() ends with it. */
void as_signals_run_begin(lua_State *L, as_state *st);
void as_signals_run_end(void);

/* A signal is waiting for the scheduler's safe point (or the profiler has
** raw samples to name: profile.h). */
int as_signals_pending(void);
/* The scheduler's safe point: `resumed` is the fork just resumed (or NULL
** after the idle wait). Prints a requested dump, delivers Ctrl-C, names the
** profiler's raw samples. */
void as_signals_safe_point(lua_State *L, as_state *st, as_sched *s, as_fork *resumed);
/* A fork died of Ctrl-C after the root ended: the loop stops, and run()
** raises what as_signals_push_interrupt pushes (it returns 0 otherwise). */
int as_signals_run_interrupted(void);
int as_signals_push_interrupt(lua_State *L);
/* Called where a cancelled fork's await point raises (as_sched_check_cancel):
** raises the interrupt instead when it was handed to this fork. */
void as_signals_check_interrupt(lua_State *L, as_fork *f);

#endif
