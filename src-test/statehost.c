/*
** statehost.c: a host program that opens and closes Lua states, for the
** specs of signal handlers that must not outlive the state that installed
** them (spec/regress/11-dump-handler-outlives-state_spec.lua,
** spec/regress/10-dump-on-signal-after-close_spec.lua). Built into
** build/test/ by `make test-helpers`; never installed. The asyncstack
** module is loaded by the states through require, as in any host.
**
**   statehost CMD ...    runs the commands in order, prints "host: ok"
**     new N          opens state N (0-3) with the standard libraries
**     do N CODE      runs CODE in state N (HOST_PID is the process id);
**                    an error prints "host: error: ..." and exits 1
**     close N        closes state N (lua_close)
**     catch SIG      installs the host's own handler for SIG (counting)
**     raise SIG      sends SIG to the process
**     count SIG N    exits 1 unless the host's handler saw SIG N times
**     handler SIG WHAT
**                    exits 1 unless SIG's action is WHAT: "host" (ours),
**                    "default" or "other"
** SIG is a name without "SIG": USR1, USR2, INT, SEGV, ABRT, PROF.
*/
#define _DEFAULT_SOURCE     /* NSIG */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#define MAX_STATES 4

static volatile sig_atomic_t seen[NSIG];

static void host_handler(int sig) {
  seen[sig]++;
}

static int sig_of(const char *name) {
  static const struct { const char *name; int sig; } names[] = {
    {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"INT", SIGINT}, {"SEGV", SIGSEGV},
    {"ABRT", SIGABRT}, {"PROF", SIGPROF}
  };
  size_t i;
  for (i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(name, names[i].name) == 0) return names[i].sig;
  fprintf(stderr, "host: unknown signal %s\n", name);
  exit(2);
}

static void fail(const char *what, const char *detail) {
  printf("host: %s%s\n", what, detail);
  fflush(stdout);
  exit(1);
}

int main(int argc, char **argv) {
  lua_State *states[MAX_STATES] = {NULL};
  int i;
  for (i = 1; i < argc; i++) {
    const char *cmd = argv[i];
    if (i + 1 >= argc) fail("missing argument to ", cmd);
    if (strcmp(cmd, "new") == 0 || strcmp(cmd, "do") == 0 || strcmp(cmd, "close") == 0) {
      int n = atoi(argv[++i]);
      if (n < 0 || n >= MAX_STATES) fail("bad state number ", argv[i]);
      if (strcmp(cmd, "new") == 0) {
        states[n] = luaL_newstate();
        if (states[n] == NULL) fail("cannot create a state", "");
        luaL_openlibs(states[n]);
        lua_pushinteger(states[n], (lua_Integer)getpid());
        lua_setglobal(states[n], "HOST_PID");
      } else if (states[n] == NULL) {
        fail("no state ", argv[i]);
      } else if (strcmp(cmd, "close") == 0) {
        lua_close(states[n]);
        states[n] = NULL;
      } else {
        if (i + 1 >= argc) fail("missing code for do", "");
        if (luaL_dostring(states[n], argv[++i]) != LUA_OK)
          fail("error: ", lua_tostring(states[n], -1));
      }
    } else if (strcmp(cmd, "catch") == 0) {
      struct sigaction sa;
      memset(&sa, 0, sizeof sa);
      sa.sa_handler = host_handler;
      sa.sa_flags = SA_RESTART;
      sigemptyset(&sa.sa_mask);
      sigaction(sig_of(argv[++i]), &sa, NULL);
    } else if (strcmp(cmd, "raise") == 0) {
      raise(sig_of(argv[++i]));
    } else if (strcmp(cmd, "count") == 0) {
      int sig = sig_of(argv[++i]);
      if (i + 1 >= argc) fail("missing count", "");
      if (seen[sig] != atoi(argv[++i])) {
        printf("host: %s seen %d times, expected %s\n", argv[i - 1], (int)seen[sig], argv[i]);
        return 1;
      }
    } else if (strcmp(cmd, "handler") == 0) {
      struct sigaction cur;
      const char *what;
      int sig = sig_of(argv[++i]);
      if (i + 1 >= argc) fail("missing handler kind", "");
      sigaction(sig, NULL, &cur);
      what = cur.sa_handler == host_handler ? "host"
           : cur.sa_handler == SIG_DFL ? "default" : "other";
      if (strcmp(what, argv[++i]) != 0) {
        printf("host: SIG%s handler is %s, expected %s\n", argv[i - 1], what, argv[i]);
        return 1;
      }
    } else {
      fail("unknown command ", cmd);
    }
  }
  for (i = 0; i < MAX_STATES; i++)
    if (states[i] != NULL) lua_close(states[i]);
  printf("host: ok\n");
  return 0;
}
