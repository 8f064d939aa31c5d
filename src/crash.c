/*
** crash.c: as.crash.install / as.crash.uninstall, a fatal-signal handler that
** prints what folly prints when a coroutine program crashes: the native stack
** (libunwind), then the async stack of the fork that was running.
**
**   *** asyncstack: fatal signal 11 (SIGSEGV), fault address 0x0 ***
**   native stack:
**     #0 0x00007f1c2a4b1207 crash_null_deref+0x7 (asyncstack_crashhelper.so)
**     #1 0x000055d0c2e0afbe ?? (lua5.4+0xdfbe)
**     ...
**   async stack (fork #3 'co_funcC'):
**   stack traceback:
**   	[C]: in field 'null_deref'
**   	crash.lua:16: in function <crash.lua:15>  (root of fork #3 'co_funcC')
**   	[fork #3 'co_funcC' awaited by fork #2 'co_funcB' at crash.lua:22 in ...]
**     ...
**
** then the default action is restored and the signal raised again, so the
** exit status and the core dump are the signal's.
**
** The handler runs at an arbitrary instruction: inside malloc with its lock
** held, half way through a Lua API call, on a C stack that has just
** overflowed. So it keeps to what is safe there:
**  * Output goes through the signal-safe writer (sigsafe.h): formatted by
**    hand, write(2) only, never blocking for long (a full pipe makes it give
**    up, then the signal is raised again: issue 13 D11). No stdio, no
**    malloc: the malloc lock may be held by the very frame that faulted
**    (spec "while the allocator's lock is held").
**  * It runs on the alternate stack signals.c maps (with a guard page), so
**    a C stack overflow still gets a report.
**  * Native frames: symbolize.h (libunwind, /proc/self/maps, ELF symbols).
**  * The async section (crash_async.c) reads Lua and asyncstack memory only
**    through the memory walker (memwalk_forks.h): no Lua API call, no
**    allocation; it renders with the one renderer (render.h).
**  * The async stack is read while the program may have been changing it
**    when the signal came. Reading is guarded: a fault during it jumps back
**    (siglongjmp, the handler is installed with SA_NODEFER so a nested fault
**    reaches it) and the report says the walk ended early. Every loop is
**    bounded: 64 native frames, 256 Lua frames, 64 forks, truncated names.
**
** The dispositions, the alternate stack and the guard that gives them back
** when the installing state closes are signals.c's; the report's fd is a
** static here (signals belong to the process).
*/
#define _DEFAULT_SOURCE     /* syscall, NSIG */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "module.h"
#include "sched.h"
#include "signals.h"
#include "sigsafe.h"
#include "crash_async.h"
#include "symbolize.h"
#include <lauxlib.h>


/* Signals install() accepts; the first five are the default. */
static const int crash_signals[] = {
  SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS
};
#define N_CRASH ((int)(sizeof crash_signals / sizeof crash_signals[0]))
#define N_DEFAULT 5

/* Where reports go. Written by install (Lua side, never while the handler
** runs in this thread); read by the handler. */
static int report_fd = 2;

/* Everything the handler writes. Static (not on the small alternate stack),
** used by one thread at a time: `owner_tid` admits one reporter. */
static struct {
  long owner_tid;                   /* thread writing a report, or 0 */
  volatile sig_atomic_t guarded;    /* a fault now jumps back to `jmp` */
  sigjmp_buf jmp;
  as_sigsafe w;
} h;

/* ------------------------------------------------------- the header line */

static void report_header(int sig, const siginfo_t *info) {
  as_sigsafe_str(&h.w, "*** asyncstack: fatal signal ");
  as_sigsafe_dec(&h.w, sig);
  as_sigsafe_str(&h.w, " (");
  as_sigsafe_str(&h.w, as_signals_name(sig));
  as_sigsafe_str(&h.w, ")");
  if (info != NULL && info->si_code > 0 && sig != SIGABRT) {
    /* sent by the kernel for a fault: the address is meaningful */
    as_sigsafe_str(&h.w, ", fault address ");
    as_sigsafe_hex(&h.w, (uintptr_t)info->si_addr, 1);
  } else if (info != NULL && info->si_code <= 0) {
    if (info->si_pid == getpid()) {
      as_sigsafe_str(&h.w, ", raised by this process");
    } else {
      as_sigsafe_str(&h.w, ", sent by pid ");
      as_sigsafe_dec(&h.w, info->si_pid);
    }
  }
  as_sigsafe_str(&h.w, " ***\n");
}

/* The async section is crash_async.c's: the memory walker over the
** published descriptor, the chain rule and the one renderer, with no Lua
** API call and no allocation (issue 14 item 4). */

/* ------------------------------------------------------------ handler */

/* Default action back, signal unblocked, raised again: for every signal we
** handle that ends the process with the signal's status and core dump. If
** raise returned all the same, the handler returns and a fault re-executes
** the faulting instruction, now with the default action. */
static void reraise(int sig) {
  struct sigaction dfl;
  sigset_t set;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(sig, &dfl, NULL);
  sigemptyset(&set);
  sigaddset(&set, sig);
  pthread_sigmask(SIG_UNBLOCK, &set, NULL);
  raise(sig);
}

static void crash_handler(int sig, siginfo_t *info, void *ucontext);

/* The guarded sections rely on a fault re-entering crash_handler. When the
** report is for SIGABRT only, say, route SIGSEGV and SIGBUS there too for
** the rest of the process's life, which is short now. */
static void catch_faults_while_reporting(void) {
  static const int faults[] = {SIGSEGV, SIGBUS};
  struct sigaction sa;
  size_t i;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = crash_handler;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  for (i = 0; i < sizeof faults / sizeof faults[0]; i++)
    if (as_signals_role(faults[i]) != AS_SIGROLE_CRASH) sigaction(faults[i], &sa, NULL);
}

static void report(int sig, const siginfo_t *info) {
  catch_faults_while_reporting();
  as_sigsafe_open(&h.w, report_fd);
  report_header(sig, info);
  as_sigsafe_flush(&h.w);             /* should anything below go wrong */
  as_sigsafe_str(&h.w, "native stack:\n");
  if (sigsetjmp(h.jmp, 1) == 0) {
    h.guarded = 1;
    as_native_collect();
    as_native_resolve();
    h.guarded = 0;
    as_native_print(&h.w);
  } else {
    h.guarded = 0;
    as_native_print(&h.w);
    as_sigsafe_str(&h.w, "  ... (a fault while unwinding ended the native stack here)\n");
  }
  as_sigsafe_flush(&h.w);             /* the riskier part comes next */
  if (sigsetjmp(h.jmp, 1) == 0) {
    h.guarded = 1;
    as_crash_async_section(&h.w);
    h.guarded = 0;
  } else {
    h.guarded = 0;
    as_sigsafe_str(&h.w, "  ... (a fault while reading the async stack ended it here: it was "
                         "inconsistent, e.g. being changed when the signal came)\n");
  }
  as_sigsafe_close(&h.w);
}

static void crash_handler(int sig, siginfo_t *info, void *ucontext) {
  long tid = (long)syscall(SYS_gettid), none = 0;
  (void)ucontext;
  if (__atomic_load_n(&h.owner_tid, __ATOMIC_SEQ_CST) == tid) {
    /* a fault inside our own report */
    if (h.guarded) siglongjmp(h.jmp, 1);
    reraise(sig);
    return;
  }
  if (!__atomic_compare_exchange_n(&h.owner_tid, &none, tid, 0,
                                   __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
    /* another thread is reporting and will end the process; give it a few
    ** seconds in case it is stuck, then die of our own signal */
    struct timespec ts = {0, 100 * 1000 * 1000};
    int i;
    for (i = 0; i < 50; i++) nanosleep(&ts, NULL);
    reraise(sig);
    return;
  }
  report(sig, info);
  reraise(sig);
}

/* ------------------------------------------------------- install / uninstall */

static int install_error(lua_State *L, const char *detail) {
  return luaL_error(L, "bad argument #1 to 'install' (%s)", detail);
}

static void read_signals(lua_State *L, int idx, unsigned char want[NSIG]) {
  lua_Integer n, i;
  if (!lua_istable(L, idx))
    install_error(L, lua_pushfstring(L, "field 'signals': table expected, got %s",
                                     luaL_typename(L, idx)));
  n = (lua_Integer)lua_rawlen(L, idx);
  if (n == 0) install_error(L, "field 'signals': at least one signal name expected");
  for (i = 1; i <= n; i++) {
    const char *name;
    int k;
    lua_rawgeti(L, idx, i);
    if (lua_type(L, -1) != LUA_TSTRING)
      install_error(L, lua_pushfstring(L, "field 'signals': signal name expected at "
                                       "index %I, got %s", (LUAI_UACINT)i,
                                       luaL_typename(L, -1)));
    name = lua_tostring(L, -1);
    for (k = 0; k < N_CRASH; k++) {
      if (as_signals_number(name, 0) == crash_signals[k]) {
        want[crash_signals[k]] = 1;
        break;
      }
    }
    if (k == N_CRASH)
      install_error(L, lua_pushfstring(L, "field 'signals': '%s' is not one of SIGSEGV, "
                                       "SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS",
                                       name));
    lua_pop(L, 1);
  }
}

static int read_fd(lua_State *L, int idx) {
  int isint;
  lua_Integer fd = lua_tointegerx(L, idx, &isint);
  if (!isint || lua_type(L, idx) != LUA_TNUMBER || fd < 0 || fd > INT_MAX) {
    if (lua_type(L, idx) == LUA_TNUMBER)
      install_error(L, lua_pushfstring(L, "field 'fd': non-negative integer expected, "
                                       "got %s", lua_tostring(L, idx)));
    install_error(L, lua_pushfstring(L, "field 'fd': non-negative integer expected, "
                                     "got %s", luaL_typename(L, idx)));
  }
  if (fcntl((int)fd, F_GETFD) == -1)
    install_error(L, lua_pushfstring(L, "field 'fd': %I is not an open file descriptor",
                                     (LUAI_UACINT)fd));
  return (int)fd;
}

/* Reads install's options table at index 1 into `want` and `fd`. */
static void read_options(lua_State *L, unsigned char want[NSIG], int *fd) {
  int i;
  memset(want, 0, NSIG);
  for (i = 0; i < N_DEFAULT; i++) want[crash_signals[i]] = 1;
  *fd = 2;
  if (lua_isnoneornil(L, 1)) return;
  if (!lua_istable(L, 1))
    install_error(L, lua_pushfstring(L, "table expected, got %s", luaL_typename(L, 1)));
  lua_settop(L, 1);
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING ||
        (strcmp(lua_tostring(L, -1), "signals") != 0 && strcmp(lua_tostring(L, -1), "fd") != 0)) {
      if (lua_type(L, -1) == LUA_TSTRING)
        install_error(L, lua_pushfstring(L, "unknown option '%s'", lua_tostring(L, -1)));
      install_error(L, lua_pushfstring(L, "unknown option (a %s key)", luaL_typename(L, -1)));
    }
  }
  if (lua_getfield(L, 1, "signals") != LUA_TNIL) {
    memset(want, 0, NSIG);
    read_signals(L, 2, want);
  }
  lua_pop(L, 1);
  if (lua_getfield(L, 1, "fd") != LUA_TNIL) *fd = read_fd(L, 2);
  lua_pop(L, 1);
}

/* as.crash.install([opts]) -> true | nil, message. A second call replaces
** the first one's configuration. */
static int crash_install(lua_State *L) {
  unsigned char want[NSIG];
  int fd, sig;
  struct sigaction sa;
  read_options(L, want, &fd);
  as_signals_guard(L);                /* may raise: before any change */
  if (!as_signals_use_altstack()) {
    int err = errno;
    luaL_pushfail(L);
    lua_pushfstring(L, "install: cannot set up the alternate signal stack (%s)",
                    strerror(err));
    return 2;
  }
  as_native_warm_up();
  report_fd = fd;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = crash_handler;
  /* SA_NODEFER: a fault while reading the async stack re-enters the handler,
  ** which jumps back (see report). Other signals wait until we are done. */
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigfillset(&sa.sa_mask);
  for (sig = 0; sig < N_CRASH; sig++) sigdelset(&sa.sa_mask, crash_signals[sig]);
  /* a second call replaces the first one's signals (the altstack stays:
  ** this call's signals need it) */
  for (sig = 1; sig < NSIG; sig++)
    if (!want[sig] && as_signals_role(sig) == AS_SIGROLE_CRASH) as_signals_release(sig);
  for (sig = 1; sig < NSIG; sig++) {
    int err;
    if (!want[sig]) continue;
    err = as_signals_take(L, sig, AS_SIGROLE_CRASH, &sa);
    if (err != 0) {
      as_signals_release_role(AS_SIGROLE_CRASH);
      luaL_pushfail(L);
      lua_pushfstring(L, "install: cannot handle %s (%s)", as_signals_name(sig), strerror(err));
      return 2;
    }
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* as.crash.uninstall() -> true if a handler was installed. */
static int crash_uninstall(lua_State *L) {
  lua_pushboolean(L, as_signals_release_role(AS_SIGROLE_CRASH) > 0);
  return 1;
}

void as_crash_open(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"crash_install", crash_install}, {"crash_uninstall", crash_uninstall},
    {NULL, NULL}
  };
  as_module_setfuncs(L, funcs);
}
