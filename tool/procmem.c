/*
** procmem.c: another process's memory through /proc and process_vm_readv
** (see procmem.h).
*/
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "procmem.h"
#include "hugemem.h"
#include "elffile.h"
#include "memwalk.h"
#include "debuglayout.h"

#define BLOCK_SHIFT 16
#define BLOCK_SIZE ((uint64_t)1 << BLOCK_SHIFT)
#define TABLE_SIZE 65536
#define MAX_MAP_RELOADS 16

struct tool_block {
  uint64_t base;              /* block number << BLOCK_SHIFT */
  uint64_t lo, hi;            /* the bytes held: [lo, hi), inside one mapping */
  tool_block *next;           /* hash chain */
  unsigned char data[];       /* data[0] is the byte at lo */
};

/* ---------------------------------------------------------- permissions */

/* The value of `key` ("Uid:", "TracerPid:", "CapEff:") in /proc/PID/status
** (pid 0: self), the first number of the line; -1 when absent. */
static long long status_field(pid_t pid, const char *key, int hex) {
  char path[64], line[256];
  long long v = -1;
  size_t klen = strlen(key);
  FILE *f;
  if (pid == 0) snprintf(path, sizeof path, "/proc/self/status");
  else snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  f = fopen(path, "re");
  if (f == NULL) return -1;
  while (fgets(line, sizeof line, f) != NULL)
    if (strncmp(line, key, klen) == 0) {
      v = strtoll(line + klen, NULL, hex ? 16 : 10);
      break;
    }
  fclose(f);
  return v;
}

static const char *user_name(long long uid, char *buf, size_t size) {
  struct passwd *pw = uid >= 0 ? getpwuid((uid_t)uid) : NULL;
  snprintf(buf, size, "%s", pw != NULL ? pw->pw_name : "?");
  return buf;
}

static int have_cap_sys_ptrace(void) {
  long long caps = status_field(0, "CapEff:", 1);
  return caps >= 0 && (caps >> 19 & 1);   /* CAP_SYS_PTRACE is 19 */
}

static int yama_scope(void) {
  FILE *f = fopen("/proc/sys/kernel/yama/ptrace_scope", "re");
  int v = -1;
  if (f == NULL) return -1;
  if (fscanf(f, "%d", &v) != 1) v = -1;
  fclose(f);
  return v;
}

/* The owner of /proc/PID (the process's effective uid). */
static long long proc_owner(pid_t pid) {
  char path[64];
  struct stat st;
  snprintf(path, sizeof path, "/proc/%d", (int)pid);
  return stat(path, &st) == 0 ? (long long)st.st_uid : -1;
}

void tool_proc_why_denied(pid_t pid, char *out, size_t size) {
  long long them = proc_owner(pid), me = (long long)getuid();
  int cap = have_cap_sys_ptrace(), scope = yama_scope();
  char a[64], b[64];
  if (them >= 0 && them != me) {
    snprintf(out, size,
             "process %d belongs to user %s (uid %lld) and the tool runs as "
             "user %s (uid %lld): reading another user's process needs "
             "CAP_SYS_PTRACE%s",
             (int)pid, user_name(them, a, sizeof a), them, user_name(me, b, sizeof b),
             me, cap ? "" : me == 0 ? ", which this root process lacks (it was dropped "
                                       "from its capability set)"
                                     : " (run it as root, or as that user)");
  } else if (!cap && scope == 1) {
    snprintf(out, size,
             "Yama's ptrace_scope is 1 (/proc/sys/kernel/yama/ptrace_scope): "
             "only an ancestor of process %d may read it without CAP_SYS_PTRACE "
             "(run it as root, or set ptrace_scope to 0)", (int)pid);
  } else if (!cap && scope == 2) {
    snprintf(out, size,
             "Yama's ptrace_scope is 2 (/proc/sys/kernel/yama/ptrace_scope): "
             "reading another process needs CAP_SYS_PTRACE (run it as root)");
  } else if (scope == 3) {
    snprintf(out, size,
             "Yama's ptrace_scope is 3 (/proc/sys/kernel/yama/ptrace_scope): "
             "no process may read another until the next boot");
  } else if (!cap) {
    snprintf(out, size,
             "process %d is not dumpable (it changed its user or group, ran "
             "a program it may not read, or called prctl(PR_SET_DUMPABLE, 0)): "
             "reading it needs "
             "CAP_SYS_PTRACE, which the tool lacks", (int)pid);
  } else {
    snprintf(out, size, "the kernel refused it (a security module such as "
                        "SELinux or AppArmor?)");
  }
}

/* ------------------------------------------------------------- mappings */

static void free_maps(tool_proc *p) {
  int i;
  for (i = 0; i < p->nmaps; i++) free(p->maps[i].path);
  free(p->maps);
  p->maps = NULL;
  p->nmaps = 0;
}

/* Reads /proc/PID/maps: 0, or the errno of opening it. */
static int load_maps(tool_proc *p) {
  char path[64], *line = NULL;
  size_t cap = 0;
  int n = 0, room = 0;
  FILE *f;
  snprintf(path, sizeof path, "/proc/%d/maps", (int)p->pid);
  f = fopen(path, "re");
  if (f == NULL) return errno;
  free_maps(p);
  while (getline(&line, &cap, f) > 0) {
    tool_mapping m;
    unsigned long long start, end, off;
    char perms[8];
    int pos = 0;
    if (sscanf(line, "%llx-%llx %7s %llx %*s %*s%n", &start, &end, perms, &off, &pos) < 4)
      continue;
    memset(&m, 0, sizeof m);
    m.start = start;
    m.end = end;
    m.offset = off;
    memcpy(m.perms, perms, 4);
    while (line[pos] == ' ') pos++;
    if (line[pos] == '/') {
      size_t len = strcspn(line + pos, "\n");
      m.path = strndup(line + pos, len);
    }
    if (n == room) {
      tool_mapping *grown;
      room = room ? room * 2 : 256;
      grown = realloc(p->maps, sizeof *grown * (size_t)room);
      if (grown == NULL) { free(m.path); break; }
      p->maps = grown;
    }
    p->maps[n++] = m;
    p->nmaps = n;
  }
  free(line);
  if (ferror(f)) {
    int e = errno ? errno : EIO;
    fclose(f);
    return e;
  }
  fclose(f);
  return 0;
}

static const tool_mapping *mapping_of(const tool_proc *p, uint64_t addr) {
  int lo = 0, hi = p->nmaps - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    const tool_mapping *m = &p->maps[mid];
    if (addr < m->start) hi = mid - 1;
    else if (addr >= m->end) lo = mid + 1;
    else return m;
  }
  return NULL;
}

static int proc_state(pid_t pid) {
  char path[64], buf[512], *paren;
  FILE *f;
  size_t n;
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  f = fopen(path, "re");
  if (f == NULL) return 0;
  n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  paren = strrchr(buf, ')');
  return paren != NULL && paren[1] == ' ' ? paren[2] : '?';
}

int tool_proc_gone(const tool_proc *p) {
  int st = proc_state(p->pid);
  return st == 0 || st == 'Z' || st == 'X';
}

int tool_proc_open(tool_proc *p, pid_t pid, char *err, size_t errsize) {
  int e, st;
  const char *hook = getenv("ASYNCSTACK_TEST_EXIT_AFTER_READS");
  memset(p, 0, sizeof *p);
  p->pid = pid;
  if (hook != NULL) p->exit_after = atol(hook);
  if (pid <= 0 || (kill(pid, 0) != 0 && errno == ESRCH) || (st = proc_state(pid)) == 0) {
    snprintf(err, errsize, "no process with pid %d", (int)pid);
    return -1;
  }
  if (st == 'Z' || st == 'X') {
    snprintf(err, errsize, "process %d has exited (a zombie its parent has not reaped)",
             (int)pid);
    return -1;
  }
  e = load_maps(p);
  if (e == 0 && p->nmaps == 0) e = tool_proc_gone(p) ? ESRCH : EACCES;
  if (e == 0) {
    /* the maps may be readable while the memory is not: try one read */
    unsigned char probe;
    int i;
    for (i = 0; i < p->nmaps && p->maps[i].perms[0] != 'r'; i++) {}
    if (i < p->nmaps && as_memwalk_read_vm(&p->pid, (uintptr_t)p->maps[i].start, 1, &probe) != 0 &&
        errno == EPERM)
      e = EACCES;
  }
  if (e == EACCES || e == EPERM) {
    char why[512];
    tool_proc_why_denied(pid, why, sizeof why);
    snprintf(err, errsize, "cannot read process %d: permission denied: %s", (int)pid, why);
    return -1;
  }
  if (e != 0) {
    if (tool_proc_gone(p)) snprintf(err, errsize, "no process with pid %d", (int)pid);
    else snprintf(err, errsize, "cannot read /proc/%d/maps: %s", (int)pid, strerror(e));
    return -1;
  }
  p->table = calloc(TABLE_SIZE, sizeof *p->table);
  if (p->table == NULL) {
    snprintf(err, errsize, "out of memory");
    return -1;
  }
  return 0;
}

uint64_t tool_proc_find_descriptor(tool_proc *p, char *err, size_t errsize) {
  int i, j;
  for (i = 0; i < p->nmaps; i++) {
    const tool_mapping *m = &p->maps[i];
    tool_elf_section sec;
    char rooted[4200];
    int seen = 0, r;
    if (m->path == NULL || m->offset != 0 || strstr(m->path, " (deleted)") != NULL) continue;
    for (j = 0; j < i && !seen; j++)
      seen = p->maps[j].path != NULL && p->maps[j].offset == 0 &&
             strcmp(p->maps[j].path, m->path) == 0;
    if (seen) continue;
    /* the file as the process sees it (its mount namespace), else by name */
    snprintf(rooted, sizeof rooted, "/proc/%d/root%s", (int)p->pid, m->path);
    r = tool_elf_find_section(rooted, AS_DEBUG_SECTION, &sec);
    if (r < 0) r = tool_elf_find_section(m->path, AS_DEBUG_SECTION, &sec);
    if (r == 1 && sec.size > 0) {
      snprintf(p->library, sizeof p->library, "%s", m->path);
      return m->start - sec.first_vaddr + sec.addr;
    }
  }
  snprintf(err, errsize,
           "process %d has no asyncstack loaded (no file it maps has an "
           AS_DEBUG_SECTION " section)", (int)p->pid);
  return 0;
}

/* ---------------------------------------------------------------- reads */

/* Blocks live in one arena of CACHE_SIZE bytes, in huge pages where the
** kernel allows (one page fault per 2 MB instead of one per 4 KB as
** process_vm_readv first writes them, and fewer TLB misses as the walker
** reads them). When it is full the cache starts over in the same memory:
** the forks are walked in the order they were allocated, so what is still
** needed is mostly what comes next, and reused memory is not zeroed by the
** kernel again (zeroing fresh pages was half the time of `ps` on 100,000
** forks in a virtual machine). */
#define CACHE_SIZE ((size_t)48 << 20)

static void *chunk_alloc(tool_proc *p, size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (n > CACHE_SIZE) return NULL;
  if (p->arena == NULL) {
    p->arena = tool_map_huge(CACHE_SIZE);
    if (p->arena == NULL) return NULL;
    p->arena_used = 0;
  }
  if (CACHE_SIZE - p->arena_used < n) {   /* full: start over */
    memset(p->table, 0, sizeof *p->table * TABLE_SIZE);
    p->nblocks = 0;
    p->last = NULL;
    p->arena_used = 0;
  }
  p->arena_used += n;
  return p->arena + p->arena_used - n;
}

/* Gives back the last chunk_alloc (n bytes). */
static void chunk_unalloc(tool_proc *p, size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (p->arena_used >= n) p->arena_used -= n;
}

/* A block holds one mapping's part of its 64 KB: a block number can have
** several (small mappings side by side), so the address decides. */
static tool_block *find_block(tool_proc *p, uint64_t base, uint64_t addr) {
  tool_block *b = p->table[(base >> BLOCK_SHIFT) % TABLE_SIZE];
  while (b != NULL && !(b->base == base && addr >= b->lo && addr < b->hi)) b = b->next;
  return b;
}

static void drop_blocks(tool_proc *p) {
  memset(p->table, 0, sizeof *p->table * TABLE_SIZE);
  p->arena_used = 0;
  p->nblocks = 0;
  p->last = NULL;
}

/* The arena holds the blocks back to back (chunk_alloc): clearing their
** hash entries costs one step per block, not a sweep of the whole table. */
void tool_proc_forget(tool_proc *p) {
  size_t at = 0;
  if (p->table == NULL) return;
  while (at < p->arena_used) {
    tool_block *b = (tool_block *)(p->arena + at);
    p->table[(b->base >> BLOCK_SHIFT) % TABLE_SIZE] = NULL;
    at += (sizeof *b + (size_t)(b->hi - b->lo) + 15) & ~(size_t)15;
  }
  p->arena_used = 0;
  p->nblocks = 0;
  p->last = NULL;
}

/* The cached block holding addr, filled from the mapping around it; NULL
** when addr is in no readable mapping or the process refuses the read. */
static tool_block *block_for(tool_proc *p, uint64_t addr) {
  uint64_t base = addr & ~(BLOCK_SIZE - 1), lo, hi;
  const tool_mapping *m;
  tool_block *b;
  static int reloads;
  if (p->last != NULL && addr >= p->last->lo && addr < p->last->hi) return p->last;
  b = find_block(p, base, addr);
  if (b != NULL) return p->last = b;
  m = mapping_of(p, addr);
  if (m == NULL && reloads < MAX_MAP_RELOADS) {   /* mapped since we looked */
    reloads++;
    if (load_maps(p) == 0) m = mapping_of(p, addr);
  }
  if (m == NULL || m->perms[0] != 'r') return NULL;
  lo = base > m->start ? base : m->start;
  hi = base + BLOCK_SIZE < m->end ? base + BLOCK_SIZE : m->end;
  b = chunk_alloc(p, sizeof *b + (size_t)(hi - lo));
  if (b == NULL) return NULL;
  if (as_memwalk_read_vm(&p->pid, (uintptr_t)lo, (size_t)(hi - lo), b->data) != 0) {
    chunk_unalloc(p, sizeof *b + (size_t)(hi - lo));
    p->read_failures++;
    return NULL;
  }
  b->base = base;
  b->lo = lo;
  b->hi = hi;
  b->next = p->table[(base >> BLOCK_SHIFT) % TABLE_SIZE];
  p->table[(base >> BLOCK_SHIFT) % TABLE_SIZE] = b;
  p->nblocks++;
  return p->last = b;
}

/* The test hook: the process ends while it is being read. */
static void exit_hook(tool_proc *p) {
  int i;
  kill(p->pid, SIGKILL);
  for (i = 0; i < 200 && !tool_proc_gone(p); i++) {
    struct timespec ts = {0, 5000000};
    nanosleep(&ts, NULL);
  }
  if (p->table != NULL) drop_blocks(p);
}

int tool_proc_read(void *ctx, uintptr_t address, size_t length, void *out) {
  tool_proc *p = (tool_proc *)ctx;
  unsigned char *o = (unsigned char *)out;
  uint64_t addr = address;
  if (++p->reads == p->exit_after) exit_hook(p);
  if (length == 0) return 0;
  if (addr + length < addr) return -1;
  while (length > 0) {
    tool_block *b = block_for(p, addr);
    size_t n;
    if (b == NULL || addr < b->lo || addr >= b->hi) {
      /* no block (or the read crosses into another mapping): read directly */
      if (as_memwalk_read_vm(&p->pid, (uintptr_t)addr, length, o) != 0) {
        p->read_failures++;
        return -1;
      }
      return 0;
    }
    n = (size_t)(b->hi - addr) < length ? (size_t)(b->hi - addr) : length;
    memcpy(o, b->data + (addr - b->lo), n);
    o += n;
    addr += n;
    length -= n;
  }
  return 0;
}

/* ---------------------------------------------------------- stop/resume */

static int is_stopped(const tool_proc *p, pid_t tid) {
  int i;
  for (i = 0; i < p->nstopped; i++)
    if (p->stopped[2 * i] == tid) return 1;
  return 0;
}

int tool_proc_stop(tool_proc *p, char *err, size_t errsize) {
  int round;
  for (round = 0; round < 100; round++) {
    char path[64];
    struct dirent *de;
    int added = 0;
    DIR *d;
    snprintf(path, sizeof path, "/proc/%d/task", (int)p->pid);
    d = opendir(path);
    if (d == NULL) {
      snprintf(err, errsize, "no process with pid %d", (int)p->pid);
      tool_proc_resume(p);
      return -1;
    }
    while ((de = readdir(d)) != NULL) {
      pid_t tid = (pid_t)atoi(de->d_name);
      int st, sig = 0;
      if (tid <= 0 || is_stopped(p, tid)) continue;
      if (ptrace(PTRACE_SEIZE, tid, 0, 0) != 0) {
        int e = errno;
        long long tracer;
        if (e == ESRCH) continue;       /* the thread ended meanwhile */
        closedir(d);
        tool_proc_resume(p);
        tracer = status_field(p->pid, "TracerPid:", 0);
        if (e == EPERM && tracer > 0)
          snprintf(err, errsize,
                   "cannot pause process %d: it is already traced by process "
                   "%lld (a debugger?); read it without --stop", (int)p->pid, tracer);
        else if (e == EPERM) {
          char why[512];
          tool_proc_why_denied(p->pid, why, sizeof why);
          snprintf(err, errsize, "cannot pause process %d: permission denied: %s",
                   (int)p->pid, why);
        } else
          snprintf(err, errsize, "cannot pause process %d: %s", (int)p->pid, strerror(e));
        return -1;
      }
      if (p->nstopped == p->capstopped) {
        pid_t *grown;
        p->capstopped = p->capstopped ? 2 * p->capstopped : 64;
        grown = realloc(p->stopped, sizeof *grown * 2 * (size_t)p->capstopped);
        if (grown == NULL) {
          ptrace(PTRACE_DETACH, tid, 0, 0);
          closedir(d);
          tool_proc_resume(p);
          snprintf(err, errsize, "out of memory");
          return -1;
        }
        p->stopped = grown;
      }
      /* entries: tid, then the signal to hand back when detaching */
      p->stopped[2 * p->nstopped] = tid;
      p->stopped[2 * p->nstopped + 1] = 0;
      p->nstopped++;
      added = 1;
      if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) != 0) continue;
      while (waitpid(tid, &st, __WALL) == tid) {
        if (!WIFSTOPPED(st)) break;               /* it ended */
        if ((st >> 16) == PTRACE_EVENT_STOP) break; /* our interrupt (or a group stop) */
        /* a signal arrived first: keep it for the detach, wait again */
        sig = WSTOPSIG(st);
        p->stopped[2 * (p->nstopped - 1) + 1] = sig;
        if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) != 0) break;
        /* the signal-delivery stop must be resumed for the interrupt to land */
        if (ptrace(PTRACE_CONT, tid, 0, 0) != 0) break;
      }
    }
    closedir(d);
    if (!added) return 0;
  }
  return 0;
}

void tool_proc_resume(tool_proc *p) {
  int i, n = p->nstopped;
  p->nstopped = 0;
  for (i = 0; i < n; i++)
    ptrace(PTRACE_DETACH, p->stopped[2 * i], 0, (void *)(intptr_t)p->stopped[2 * i + 1]);
}

void tool_proc_close(tool_proc *p) {
  tool_proc_resume(p);
  free(p->table);
  if (p->arena != NULL) munmap(p->arena, CACHE_SIZE);
  free_maps(p);
  free(p->stopped);
  memset(p, 0, sizeof *p);
}
