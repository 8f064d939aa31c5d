/*
** Linked into the test interpreters (build/lua-apicheck/lua, the oom host):
** when an assertion aborts the process (LUA_USE_APICHECK, LUAI_ASSERT, an
** ASan report), print the native stack to stderr first, so the report names
** the C function that broke the API contract and not only lapi.c's line.
** Lines look like `abort-trace: /path/core.so(+0x1234)`; tools/apicheck.lua
** and tools/oomtest.lua turn them into function and file:line with addr2line.
** Test code only: never linked into the module.
*/
#define _GNU_SOURCE
#include <execinfo.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static void on_abort(int sig)
{
  static const char head[] = "abort-trace: native stack at the abort\n";
  void *frames[64];
  int n = backtrace(frames, 64), i;
  if (write(2, head, sizeof head - 1) < 0) { /* nothing to do */ }
  /* backtrace_symbols_fd writes one line per frame and allocates nothing. */
  for (i = 0; i < n; i++) {
    static const char tag[] = "abort-trace: ";
    if (write(2, tag, sizeof tag - 1) < 0) { /* nothing to do */ }
    backtrace_symbols_fd(&frames[i], 1, 2);
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

__attribute__((constructor)) static void install_abort_trace(void)
{
  struct sigaction sa;
  void *warm[1];
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_abort;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGABRT, &sa, NULL);
  /* backtrace() loads libgcc on first use, which may allocate: do it now. */
  backtrace(warm, 1);
}
