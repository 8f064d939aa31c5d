/*
** signals.c: process-wide signal state, its guard, the dump and Ctrl-C
** handlers and their safe point (see signals.h). The crash handler itself
** lives in crash.c and installs through the registry here.
*/
#define _DEFAULT_SOURCE     /* sigaltstack, MAP_ANONYMOUS, NSIG */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "signals.h"
#include "profile.h"
#include <lauxlib.h>

#define ALTSTACK_SIZE (256 * 1024)
#define GUARD_MT "asyncstack.SignalGuard"
#define ARMED_MAX 8           /* coroutines hooked by a signal at once */

/* ----------------------------------------------------------- names */

static const struct { const char *name; int sig; } signal_names[] = {
  {"SIGSEGV", SIGSEGV}, {"SIGBUS", SIGBUS}, {"SIGILL", SIGILL},
  {"SIGFPE", SIGFPE}, {"SIGABRT", SIGABRT}, {"SIGTRAP", SIGTRAP},
  {"SIGSYS", SIGSYS}, {"SIGUSR1", SIGUSR1}, {"SIGUSR2", SIGUSR2},
  {"SIGHUP", SIGHUP}, {"SIGQUIT", SIGQUIT}, {"SIGINT", SIGINT},
  {"SIGTERM", SIGTERM}, {"SIGWINCH", SIGWINCH}, {"SIGPROF", SIGPROF}
};
#define N_NAMES ((int)(sizeof signal_names / sizeof signal_names[0]))

const char *as_signals_name(int sig) {
  int i;
  for (i = 0; i < N_NAMES; i++)
    if (signal_names[i].sig == sig) return signal_names[i].name;
  return "?";
}

int as_signals_number(const char *name, int allow_short) {
  int i;
  for (i = 0; i < N_NAMES; i++)
    if (strcmp(name, signal_names[i].name) == 0 ||
        (allow_short && strcmp(name, signal_names[i].name + 3) == 0))
      return signal_names[i].sig;
  return 0;
}

/* -------------------------------------------------------- registry */

static struct {
  unsigned char role;               /* enum as_sigrole */
  unsigned char onstack;            /* installed with SA_ONSTACK */
  const void *owner;                /* guard of the state that took it */
  struct sigaction original;        /* what was there before asyncstack */
} held[NSIG];

static struct {
  char *base;                       /* mapping: guard page, then the stack */
  size_t page;
  int set;                          /* we set the installing thread's */
  stack_t saved;                    /* what we replaced there */
} alt;

int as_signals_role(int sig) {
  return sig > 0 && sig < NSIG ? held[sig].role : AS_SIGROLE_NONE;
}

static char *altstack_stack(void) {
  return alt.base + alt.page;
}

int as_signals_use_altstack(void) {
  stack_t ss, old;
  if (alt.base == NULL) {
    long page = sysconf(_SC_PAGESIZE);
    void *p;
    if (page <= 0) page = 4096;
    p = mmap(NULL, (size_t)page + ALTSTACK_SIZE, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return 0;
    mprotect(p, (size_t)page, PROT_NONE);   /* guard page below the stack */
    alt.base = (char *)p;
    alt.page = (size_t)page;
  }
  if (sigaltstack(NULL, &old) != 0) return 0;
  if (!(old.ss_flags & SS_DISABLE) && old.ss_sp == (void *)altstack_stack())
    return 1;                               /* already ours */
  ss.ss_sp = altstack_stack();
  ss.ss_size = ALTSTACK_SIZE;
  ss.ss_flags = 0;
  if (sigaltstack(&ss, NULL) != 0) return 0;
  alt.saved = old;
  alt.set = 1;
  return 1;
}

/* Puts back the thread's previous alternate stack, only if this thread has
** ours and is not running on it. */
static void release_altstack(void) {
  stack_t cur;
  if (!alt.set) return;
  alt.set = 0;
  if (sigaltstack(NULL, &cur) != 0 || (cur.ss_flags & (SS_DISABLE | SS_ONSTACK)) ||
      cur.ss_sp != (void *)altstack_stack())
    return;
  if (alt.saved.ss_flags & SS_DISABLE) {
    stack_t off;
    memset(&off, 0, sizeof off);
    off.ss_flags = SS_DISABLE;
    sigaltstack(&off, NULL);
  } else {
    sigaltstack(&alt.saved, NULL);
  }
}

static const char guard_key = 'G';  /* its address keys the registry */

static const void *guard_of(lua_State *L) {
  const void *g;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &guard_key);
  g = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return g;
}

int as_signals_take(lua_State *L, int sig, int role, const struct sigaction *sa) {
  struct sigaction old;
  if (sig <= 0 || sig >= NSIG) return EINVAL;
  if (sigaction(sig, sa, &old) != 0) return errno;
  if (held[sig].role == AS_SIGROLE_NONE) held[sig].original = old;
  held[sig].role = (unsigned char)role;
  held[sig].onstack = (sa->sa_flags & SA_ONSTACK) != 0;
  held[sig].owner = guard_of(L);
  return 0;
}

void as_signals_release(int sig) {
  int s, onstack = 0;
  if (sig <= 0 || sig >= NSIG || held[sig].role == AS_SIGROLE_NONE) return;
  sigaction(sig, &held[sig].original, NULL);
  held[sig].role = AS_SIGROLE_NONE;
  held[sig].owner = NULL;
  for (s = 1; s < NSIG; s++)
    if (held[s].role != AS_SIGROLE_NONE && held[s].onstack) onstack = 1;
  if (!onstack) release_altstack();
}

int as_signals_release_role(int role) {
  int sig, n = 0;
  for (sig = 1; sig < NSIG; sig++) {
    if (held[sig].role == role) {
      as_signals_release(sig);
      n++;
    }
  }
  return n;
}

/* The state is closing: give back what it holds, before Lua unloads this
** module's code. */
static int guard_gc(lua_State *L) {
  const void *g = lua_touserdata(L, 1);
  int sig;
  /* a running profile's timer goes before its signal's action does */
  for (sig = 1; sig < NSIG; sig++)
    if (held[sig].role == AS_SIGROLE_PROFILE && held[sig].owner == g) as_profile_shutdown();
  for (sig = 1; sig < NSIG; sig++)
    if (held[sig].role != AS_SIGROLE_NONE && held[sig].owner == g) as_signals_release(sig);
  return 0;
}

void as_signals_guard(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &guard_key) == LUA_TUSERDATA) {
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);
  lua_newuserdatauv(L, 1, 0);
  if (luaL_newmetatable(L, GUARD_MT)) {
    lua_pushcfunction(L, guard_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &guard_key);
}

/* ------------------------------------- hooking the running coroutine */

/* Coroutines a handler hooked, with the hook each had. Written by the
** handlers and by signal_hook (with our signals blocked); a pointer here is
** only compared, never followed: the coroutine may be dead and collected
** by now (issue 13 D6: it may die in C code without running the hook). */
static struct {
  lua_State *volatile thread;
  lua_Hook hook;
  int mask, count;
} armed[ARMED_MAX];
static volatile sig_atomic_t armed_next;

static volatile sig_atomic_t dump_requested;
static volatile sig_atomic_t interrupt_requested;   /* SIGINT not yet raised */
static as_fork *interrupt_raised_in;    /* the hook raised it in this fork */
static as_fork *interrupt_target;       /* handed to this fork's await point
                                           (compared only: may have ended) */
static int interrupt_ends_run;          /* run() raises the stored error */
static as_state *run_state;             /* the state whose run() is active */
static const as_state *interrupt_state; /* the run that took SIGINT */
static const char interrupt_error_key = 'I';  /* registry: error for the root */

static void signal_hook(lua_State *L, lua_Debug *ar);

/* In a handler: hook th (the running fork's innermost coroutine) so the
** next Lua instruction it runs reaches signal_hook. */
static void arm(lua_State *th) {
  int i;
  if (th == NULL || lua_gethook(th) == signal_hook) return;
  i = armed_next;
  armed_next = (i + 1) % ARMED_MAX;
  /* a full table forgets its oldest entry: that coroutine, if it runs Lua
  ** again, loses its own hook to signal_hook's reset, not our signals */
  armed[i].thread = NULL;
  armed[i].hook = lua_gethook(th);
  armed[i].mask = lua_gethookmask(th);
  armed[i].count = lua_gethookcount(th);
  armed[i].thread = th;
  lua_sethook(th, signal_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT, 1);
}

static void arm_running(void) {
  as_sched *s = as_sched_active;
  if (s != NULL && s->running != NULL) arm(as_astack_top(&s->running->astack));
}

/* Puts back the hook L had before a handler hooked it. */
static void disarm(lua_State *L) {
  sigset_t block, old;
  lua_Hook hook = NULL;
  int mask = 0, count = 0, i;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  for (i = 1; i < NSIG; i++)
    if (held[i].role == AS_SIGROLE_DUMP) sigaddset(&block, i);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  for (i = 0; i < ARMED_MAX; i++) {
    if (armed[i].thread == L) {
      hook = armed[i].hook;
      mask = armed[i].mask;
      count = armed[i].count;
      armed[i].thread = NULL;
      break;
    }
  }
  lua_sethook(L, hook, mask, count);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* ------------------------------------------------------------ dump */

static void dump_now(lua_State *L, as_state *st) {
  dump_requested = 0;
  if (st != NULL && as_hook_push(L, st, AS_HOOK_DUMP_SIGNAL)) {
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) lua_pop(L, 1);
  }
}

static void on_dump_signal(int sig) {
  int saved = errno;
  (void)sig;
  dump_requested = 1;
  arm_running();
  errno = saved;
}

int as_signals_dump_enable(lua_State *L, int sig) {
  struct sigaction sa;
  int old;
  for (old = 1; old < NSIG; old++)
    if (old != sig && held[old].role == AS_SIGROLE_DUMP) as_signals_release(old);
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_dump_signal;
  sigemptyset(&sa.sa_mask);
  /* SA_RESTART: a read, popen or write anywhere in the process goes on
  ** (issue 13 D7); the scheduler's idle wait still wakes, since
  ** clock_nanosleep and epoll_wait are never restarted */
  sa.sa_flags = SA_RESTART;
  return as_signals_take(L, sig, AS_SIGROLE_DUMP, &sa);
}

void as_signals_dump_disable(void) {
  as_signals_release_role(AS_SIGROLE_DUMP);
}

/* --------------------------------------------------------- Ctrl-C */

static void on_interrupt(int sig) {
  int saved = errno;
  struct sigaction dfl;
  /* as lua.c does: a second Ctrl-C ends the process */
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(sig, &dfl, NULL);
  interrupt_requested = 1;
  arm_running();
  errno = saved;
}

void as_signals_run_begin(lua_State *L, as_state *st) {
  struct sigaction cur, sa;
  as_signals_guard(L);              /* may raise: before any change */
  interrupt_requested = 0;
  interrupt_raised_in = NULL;
  interrupt_target = NULL;
  interrupt_ends_run = 0;
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &interrupt_error_key);
  run_state = st;
  if (held[SIGINT].role != AS_SIGROLE_NONE) return;   /* dump_on_signal's */
  if (sigaction(SIGINT, NULL, &cur) != 0 || cur.sa_handler == SIG_IGN) return;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;   /* as lua.c: a blocking read is cut short */
  if (as_signals_take(L, SIGINT, AS_SIGROLE_INTERRUPT, &sa) == 0) interrupt_state = st;
}

void as_signals_run_end(void) {
  if (held[SIGINT].role == AS_SIGROLE_INTERRUPT && interrupt_state == run_state) {
    struct sigaction cur;
    int fired = sigaction(SIGINT, NULL, &cur) == 0 && cur.sa_handler == SIG_DFL;
    as_signals_release(SIGINT);
    if (fired) {
      /* as lua.c leaves it after a Ctrl-C: the next one ends the process
      ** (the <close> handlers run() is about to run included) */
      cur.sa_handler = SIG_DFL;
      sigaction(SIGINT, &cur, NULL);
    }
  }
  interrupt_state = NULL;
  run_state = NULL;
  interrupt_requested = 0;
  interrupt_raised_in = NULL;
  interrupt_target = NULL;
  interrupt_ends_run = 0;
}

/* Raises the interrupt in fork f, whose innermost coroutine is L: the
** error a non-root fork died of when the root gets it from that fork, else
** "interrupted!" with the position, as lua.c raises it. */
static void raise_interrupt(lua_State *L, as_fork *f) {
  interrupt_requested = 0;
  interrupt_target = NULL;
  interrupt_raised_in = f;
  f->cancel_requested = 0;
  if (f->wake == AS_WAKE_CANCEL) f->wake = AS_WAKE_NONE;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &interrupt_error_key) != LUA_TNIL) {
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &interrupt_error_key);
    lua_error(L);
  }
  lua_pop(L, 1);
  luaL_error(L, "interrupted!");
}

void as_signals_check_interrupt(lua_State *L, as_fork *f) {
  if (interrupt_target != NULL && f == interrupt_target) raise_interrupt(L, f);
}

static void signal_hook(lua_State *L, lua_Debug *ar) {
  as_sched *s = as_sched_active;
  (void)ar;
  disarm(L);
  if (s != NULL && s->running != NULL && as_astack_top(&s->running->astack) == L &&
      (interrupt_requested || s->running == interrupt_target))
    raise_interrupt(L, s->running);
  if (dump_requested && run_state != NULL) dump_now(L, run_state);
}

/* Pushes the failure value of the failed fork f (found among the run's
** failed forks by address; f itself is not read). */
static int push_failure(lua_State *L, as_sched *s, const as_fork *f) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->unhandled.failed_ref);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    lua_pop(L, 1);
    if (lua_touserdata(L, -1) == f) {
      as_fork_push_failure(L, -1);
      lua_replace(L, -3);
      lua_pop(L, 1);
      return 1;
    }
  }
  lua_pop(L, 1);
  return 0;
}

/* Hands the interrupt to fork f (not running): cancelled at its await
** point, the cancel raises the interrupt instead (as_signals_check_interrupt);
** if it runs Lua before its next await, the hook raises it there. */
static void interrupt_fork(lua_State *L, as_sched *s, as_fork *f) {
  interrupt_target = f;
  if (as_sched_push_fork(L, s, f) && lua_getfield(L, -1, "cancel") == LUA_TFUNCTION) {
    lua_pushvalue(L, -2);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1);
  } else {
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  arm(as_astack_top(&f->astack));
}

/* The fork that gets an interrupt no running fork took: the root, or when
** it has ended the oldest live fork. NULL when no fork is live. */
static as_fork *interrupt_victim(lua_State *L, as_sched *s) {
  as_fork *f = NULL;
  if (s->root != NULL && !as_fork_ended(s->root)) return s->root;
  as_sched_push_live_list(L, s);
  if (lua_rawgeti(L, -1, 1) == LUA_TUSERDATA) f = (as_fork *)lua_touserdata(L, -1);
  lua_pop(L, 2);
  return f;
}

int as_signals_pending(void) {
  return dump_requested || interrupt_requested || interrupt_raised_in != NULL ||
         as_profile_pending();
}

void as_signals_safe_point(lua_State *L, as_state *st, as_sched *s, as_fork *resumed) {
  if (resumed != NULL && resumed == interrupt_raised_in) {
    interrupt_raised_in = NULL;
    if (resumed->status == AS_FAILED && resumed != s->root) {
      /* it died of it: the root raises the same error, or run() does when
      ** the root has ended */
      if (push_failure(L, s, resumed)) {
        resumed->retrieved = 1;
        lua_rawsetp(L, LUA_REGISTRYINDEX, &interrupt_error_key);
      }
      if (!as_fork_ended(s->root)) interrupt_fork(L, s, s->root);
      else interrupt_ends_run = 1;
    }
    /* else it caught the error and went on, as a Lua program may */
  } else if (resumed == NULL && interrupt_raised_in != NULL) {
    interrupt_raised_in = NULL;
  }
  if (interrupt_requested) {
    as_fork *f = interrupt_victim(L, s);
    interrupt_requested = 0;
    if (f != NULL) interrupt_fork(L, s, f);
  }
  if (dump_requested) dump_now(L, st);
  if (as_profile_pending()) as_profile_safe_point(L, st);
}

int as_signals_run_interrupted(void) {
  return interrupt_ends_run;
}

int as_signals_push_interrupt(lua_State *L) {
  if (!interrupt_ends_run) return 0;
  interrupt_ends_run = 0;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &interrupt_error_key) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_pushliteral(L, "interrupted!");
  }
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &interrupt_error_key);
  return 1;
}
