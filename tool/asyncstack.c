/*
** asyncstack.c: the `asyncstack` command (issue 15): the forks of another
** Lua process, or of a core file, read from memory through the one memory
** walker (src/memwalk_forks.h) and printed by the one renderer
** (src/render.h). No Lua is linked and nothing runs in the target.
**
**   asyncstack ps PID [--format table|csv|json] [--stop]
**   asyncstack pstree PID [--stop]
**   asyncstack bt PID [--fork N | --all] [--async] [--stop]
**   asyncstack ps|pstree|bt --core FILE [--exe BIN] ...
**
** Where the data comes from: procmem.c (a live process: /proc/PID/maps,
** process_vm_readv, --stop's ptrace pause) or coremem.c (an ELF core); in
** both the debug descriptor is found through the mapped file holding the
** "asyncstack_debug" section, so no symbols are needed. snapshot.c reads
** every fork once; views.c prints them.
**
** Exit status: 0 done, 1 the target cannot be read (the message says why),
** 2 a usage error (the message names the argument).
*/
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "coremem.h"
#include "procmem.h"
#include "record.h"
#include "snapshot.h"
#include "views.h"

#define TOOL_VERSION "asyncstack 0.1.0-dev"

typedef struct options {
  const char *command;
  pid_t pid;
  const char *core, *exe;
  int format, stop, all, async;
  long long fork_id;
} options;

static const char usage_text[] =
  "usage: asyncstack ps PID [--format table|csv|json] [--stop]\n"
  "       asyncstack pstree PID [--stop]\n"
  "       asyncstack bt PID [--fork N | --all] [--async] [--stop]\n"
  "       asyncstack ps|pstree|bt --core FILE [--exe BIN] [options as above]\n"
  "       asyncstack record PID [--hz 199] [--duration 10] [--mode cpu|wall]\n"
  "                             [--format folded|speedscope|svg] -o FILE\n"
  "\n"
  "Reads the forks of a Lua process running asyncstack (or of its core file)\n"
  "from memory: nothing runs in the process. Without --stop the process keeps\n"
  "running while it is read (a fork changing meanwhile may read torn: the WALK\n"
  "column says so); --stop pauses every thread for the read and resumes them.\n";

static int usage_error(const char *command, const char *fmt, const char *arg) {
  fprintf(stderr, "asyncstack%s%s: ", command ? " " : "", command ? command : "");
  fprintf(stderr, fmt, arg);
  fputc('\n', stderr);
  return 2;
}

static int parse_id(const char *s, long long *out) {
  char *end;
  long long v;
  errno = 0;
  v = strtoll(s, &end, 10);
  if (*s == '\0' || *end != '\0' || errno != 0 || v <= 0) return -1;
  *out = v;
  return 0;
}

static int parse(int argc, char **argv, options *o) {
  int i;
  const char *c;
  memset(o, 0, sizeof *o);
  if (argc < 2) return usage_error(NULL, "%sa command is needed (ps, pstree or bt); "
                                         "asyncstack --help says more", "");
  c = argv[1];
  if (strcmp(c, "--help") == 0 || strcmp(c, "-h") == 0) {
    fputs(usage_text, stdout);
    exit(0);
  }
  if (strcmp(c, "--version") == 0) {
    puts(TOOL_VERSION);
    exit(0);
  }
  if (strcmp(c, "ps") != 0 && strcmp(c, "pstree") != 0 && strcmp(c, "bt") != 0)
    return usage_error(NULL, "unknown command '%s' (ps, pstree or bt)", c);
  o->command = c;
  for (i = 2; i < argc; i++) {
    const char *a = argv[i];
    int is_bt = strcmp(c, "bt") == 0, is_ps = strcmp(c, "ps") == 0;
    if (strcmp(a, "--stop") == 0) {
      o->stop = 1;
    } else if (strcmp(a, "--core") == 0 || strcmp(a, "--exe") == 0 ||
               (is_ps && strcmp(a, "--format") == 0) || (is_bt && strcmp(a, "--fork") == 0)) {
      const char *v = i + 1 < argc ? argv[i + 1] : NULL;
      if (v == NULL)
        return usage_error(c, "%s needs a value", a);
      i++;
      if (strcmp(a, "--core") == 0) o->core = v;
      else if (strcmp(a, "--exe") == 0) o->exe = v;
      else if (strcmp(a, "--format") == 0) {
        if (strcmp(v, "table") == 0) o->format = TOOL_FORMAT_TABLE;
        else if (strcmp(v, "csv") == 0) o->format = TOOL_FORMAT_CSV;
        else if (strcmp(v, "json") == 0) o->format = TOOL_FORMAT_JSON;
        else return usage_error(c, "bad --format '%s' (table, csv or json)", v);
      } else if (parse_id(v, &o->fork_id) != 0) {
        return usage_error(c, "bad fork id '%s' for --fork", v);
      }
    } else if (is_bt && strcmp(a, "--all") == 0) {
      o->all = 1;
    } else if (is_bt && strcmp(a, "--async") == 0) {
      o->async = 1;
    } else if (a[0] == '-') {
      return usage_error(c, "unknown option '%s'", a);
    } else if (o->pid != 0) {
      return usage_error(c, "one process id only (got another: '%s')", a);
    } else {
      long long v;
      if (parse_id(a, &v) != 0 || v > 0x7fffffff)
        return usage_error(c, "bad process id '%s'", a);
      o->pid = (pid_t)v;
    }
  }
  if (o->core != NULL && o->pid != 0)
    return usage_error(c, "%sgive a process id or --core FILE, not both", "");
  if (o->core == NULL && o->pid == 0)
    return usage_error(c, "%sa process id or --core FILE is needed", "");
  if (o->exe != NULL && o->core == NULL)
    return usage_error(c, "%s--exe goes with --core", "");
  if (o->stop && o->core != NULL)
    return usage_error(c, "%s--stop is for a live process, not --core", "");
  if (o->all && o->fork_id != 0)
    return usage_error(c, "%s--fork and --all exclude each other", "");
  return 0;
}

/* --stop: whatever ends the tool resumes the process first. */
static tool_proc *volatile paused;

static void on_fatal(int sig) {
  tool_proc *p = paused;
  if (p != NULL) tool_proc_resume(p);
  signal(sig, SIG_DFL);
  raise(sig);
}

static void guard_signals(void) {
  static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGSEGV,
                              SIGBUS, SIGABRT, SIGFPE, SIGILL };
  struct sigaction sa;
  size_t i;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_fatal;
  sigemptyset(&sa.sa_mask);
  for (i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, NULL);
}

static double monotonic(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int fail(const char *fmt, const char *a) {
  fprintf(stderr, "asyncstack: ");
  fprintf(stderr, fmt, a);
  fputc('\n', stderr);
  return 1;
}

static int show(const options *o, tool_snapshot *s, const tool_source *src) {
  if (strcmp(o->command, "ps") == 0) {
    tool_view_ps(stdout, s, src, o->format);
    return 0;
  }
  if (strcmp(o->command, "pstree") == 0) {
    tool_view_pstree(stdout, s, src);
    return 0;
  }
  return tool_view_bt(stdout, stderr, s, src, o->fork_id, o->all, o->async);
}

static int run_live(const options *o) {
  static tool_proc p;
  char err[8192], what[64];
  tool_snapshot s;
  tool_source src;
  const char *werr;
  uint64_t desc;
  int status;
  if (tool_proc_open(&p, o->pid, err, sizeof err) != 0) return fail("%s", err);
  desc = tool_proc_find_descriptor(&p, err, sizeof err);
  if (desc == 0) {
    tool_proc_close(&p);
    return fail("%s", err);
  }
  if (o->stop) {
    const char *wait_env = getenv("ASYNCSTACK_TEST_PAUSED_SECONDS");
    guard_signals();
    paused = &p;
    if (tool_proc_stop(&p, err, sizeof err) != 0) {
      paused = NULL;
      tool_proc_close(&p);
      return fail("%s", err);
    }
    if (wait_env != NULL) {   /* test hook: a window to interrupt the tool in */
      struct timespec ts = { atoi(wait_env), 0 };
      fprintf(stderr, "asyncstack: paused\n");
      while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
    }
  }
  snprintf(what, sizeof what, "process %d", (int)o->pid);
  memset(&src, 0, sizeof src);
  src.what = what;
  src.live = 1;
  src.stopped = o->stop;
  src.library = p.library;
  werr = tool_snapshot_take(&s, tool_proc_read, &p, (uintptr_t)desc, monotonic());
  if (werr != NULL || (p.read_failures > 0 && tool_proc_gone(&p))) {
    if (tool_proc_gone(&p))
      fprintf(stderr, "asyncstack: process %d exited while it was being read\n", (int)o->pid);
    else
      fprintf(stderr, "asyncstack: process %d: %s (descriptor in %s)\n", (int)o->pid, werr,
              p.library);
    tool_proc_close(&p);
    paused = NULL;
    tool_snapshot_free(&s);
    return 1;
  }
  status = show(o, &s, &src);
  fflush(stdout);
  if (p.read_failures > 0 && tool_proc_gone(&p)) {
    snprintf(err, sizeof err, "process %d exited while it was being read", (int)o->pid);
    status = fail("%s", err);
  }
  tool_proc_close(&p);   /* resumes it when paused */
  paused = NULL;
  tool_snapshot_free(&s);
  return status;
}

static int run_core(const options *o) {
  static tool_core c;
  char err[8192], what[8192];
  tool_snapshot s;
  tool_source src;
  const char *werr;
  uint64_t desc;
  int status;
  if (tool_core_open(&c, o->core, o->exe, err, sizeof err) != 0) {
    tool_core_close(&c);
    return fail("%s", err);
  }
  desc = tool_core_find_descriptor(&c, err, sizeof err);
  if (desc == 0) {
    tool_core_close(&c);
    fprintf(stderr, "asyncstack: %s: %s\n", o->core, err);
    return 1;
  }
  snprintf(what, sizeof what, "core file %s", o->core);
  memset(&src, 0, sizeof src);
  src.what = what;
  src.library = c.library;
  werr = tool_snapshot_take(&s, tool_core_read, &c, (uintptr_t)desc, 0);
  if (werr != NULL) {
    fprintf(stderr, "asyncstack: %s: %s (descriptor in %s)\n", o->core, werr, c.library);
    tool_snapshot_free(&s);
    tool_core_close(&c);
    return 1;
  }
  status = show(o, &s, &src);
  tool_snapshot_free(&s);
  tool_core_close(&c);
  return status;
}

int main(int argc, char **argv) {
  options o;
  int r;
  if (argc >= 2 && strcmp(argv[1], "record") == 0) return tool_record_main(argc, argv);
  r = parse(argc, argv, &o);
  if (r != 0) return r;
  return o.core != NULL ? run_core(&o) : run_live(&o);
}
