/*
** crash_async.h: the crash report's async section (crash_async.c), called by
** crash.c's fatal-signal handler.
*/
#ifndef ASYNCSTACK_CRASH_ASYNC_H
#define ASYNCSTACK_CRASH_ASYNC_H

#include "sigsafe.h"

/* Writes the async section to w: "async stack (fork #N 'name'):" and the
** trace of the running fork through the chain of forks after it, or "async
** stack: no fork is running". Async-signal-safe: no Lua API, no
** allocation. May fault on an inconsistent fork chain: run it guarded. */
void as_crash_async_section(as_sigsafe *w);

#endif
